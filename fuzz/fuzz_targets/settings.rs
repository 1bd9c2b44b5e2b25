//! Call settings documents: `wacall::settings::parse_settings` (JSON and TOML), then
//! `validate` and `warnings` on what parses.
//!
//! First byte: format hint (none, "json", "toml", or ".JSON"); the rest is the document.
#![no_main]

#[path = "../bodies/settings.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
