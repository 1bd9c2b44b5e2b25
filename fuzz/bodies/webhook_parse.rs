//! Webhook bodies: `wacall::webhook::parse::parse_webhook` on the raw bytes, and the
//! `X-Hub-Signature-256` check (`verify_signature`) with a fixed app secret over the same bytes.

use wacall::webhook::parse::{CallStatus, parse_webhook};
use wacall::webhook::signature::{sign, verify_challenge, verify_signature};

const KEY: &[u8] = b"fuzz-app-secret";

/// One input; shared by the libFuzzer target and the stable smoke test (`tests/fuzz_smoke.rs`).
pub fn run(data: &[u8]) {
    // Parser: any body, never a panic.
    if let Ok(events) = parse_webhook(data) {
        for ev in &events {
            let _ = ev.call_id();
            let _ = format!("{ev:?}");
        }
    }

    // Signature: the body's own signature verifies (lower and upper case hex, any prefix case,
    // surrounding whitespace), a header made of the input's first line never panics.
    let good = sign(KEY, data);
    assert!(verify_signature(KEY, data, Some(&good)).is_ok());
    let upper = format!(
        "  SHA256={}\t",
        good["sha256=".len()..].to_ascii_uppercase()
    );
    assert!(verify_signature(KEY, data, Some(&upper)).is_ok());
    let text = String::from_utf8_lossy(data);
    let first_line = text.lines().next().unwrap_or("");
    let _ = verify_signature(KEY, data, Some(first_line));
    let _ = verify_signature(KEY, data, None);
    let _ = verify_signature(data, first_line.as_bytes(), Some(&good));

    // Subscription check and status words on the same text.
    let mut parts = text.splitn(4, '\n');
    let (mode, token, challenge) = (parts.next(), parts.next(), parts.next());
    let _ = verify_challenge(mode, token, challenge, "fuzz-verify-token");
    let _ = verify_challenge(
        Some("subscribe"),
        Some("fuzz-verify-token"),
        mode,
        "fuzz-verify-token",
    );
    let _ = CallStatus::parse(first_line);
}
