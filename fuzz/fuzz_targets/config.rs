//! wacall.toml: `Config::from_toml_str`, then `problems` and the `WACALL_*` overrides
//! (`apply_env`, with values taken from the input's lines instead of the environment).
#![no_main]

#[path = "../bodies/config.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
