//! wacall.toml: `Config::from_toml_str`, then `problems` and the `WACALL_*` overrides
//! (`apply_env`, with values taken from the input's lines instead of the environment).

use wacall::config::Config;

/// One input; shared by the libFuzzer target and the stable smoke test (`tests/fuzz_smoke.rs`).
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Config::from_toml_str(&text) {
        Ok(mut c) => {
            let _ = c.problems();
            let lines: Vec<&str> = text.lines().collect();
            c.apply_env(|k| {
                let i = k.bytes().map(usize::from).sum::<usize>();
                lines.get(i % lines.len().max(1)).map(|s| s.to_string())
            });
            let _ = c.problems();
            let _ = format!("{c:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
