//! Hub protocol: serde_json decoding of `EdgeMessage` and `HubMessage` from arbitrary bytes; what
//! decodes is re-encoded (`to_json`) and must decode again.

use wacall::hub_protocol::{EdgeMessage, HubMessage};

/// One input; shared by the libFuzzer target and the stable smoke test (`tests/fuzz_smoke.rs`).
pub fn run(data: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<EdgeMessage>(data) {
        let j = m.to_json();
        let again = serde_json::from_str::<EdgeMessage>(&j);
        assert!(
            again.is_ok(),
            "re-encoded EdgeMessage does not decode: {j} ({again:?})"
        );
    }
    if let Ok(m) = serde_json::from_slice::<HubMessage>(data) {
        let _ = m.call_id();
        let j = m.to_json();
        let again = serde_json::from_str::<HubMessage>(&j);
        assert!(
            again.is_ok(),
            "re-encoded HubMessage does not decode: {j} ({again:?})"
        );
    }
}
