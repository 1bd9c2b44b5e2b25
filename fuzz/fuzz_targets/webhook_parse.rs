//! Webhook bodies: `wacall::webhook::parse::parse_webhook` on the raw bytes, and the
//! `X-Hub-Signature-256` check (`verify_signature`) with a fixed app secret over the same bytes.
#![no_main]

#[path = "../bodies/webhook_parse.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
