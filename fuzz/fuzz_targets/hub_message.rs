//! Hub protocol: serde_json decoding of `EdgeMessage` and `HubMessage` from arbitrary bytes; what
//! decodes is re-encoded (`to_json`) and must decode again.
#![no_main]

#[path = "../bodies/hub_message.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
