//! Call settings documents: `wacall::settings::parse_settings` (JSON and TOML), then
//! `validate` and `warnings` on what parses.
//!
//! First byte: format hint (none, "json", "toml", or ".JSON"); the rest is the document.

use chrono::NaiveDate;
use wacall::settings::{parse_date, parse_hhmm, parse_settings, validate, warnings};

/// One input; shared by the libFuzzer target and the stable smoke test (`tests/fuzz_smoke.rs`).
pub fn run(data: &[u8]) {
    let Some((&hint, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let hint = match hint % 4 {
        0 => None,
        1 => Some("json"),
        2 => Some("toml"),
        _ => Some(".JSON"),
    };
    let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    match parse_settings(&text, hint) {
        Ok(s) => {
            let _ = validate(&s, today);
            let _ = warnings(&s);
            let _ = format!("{s:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let line = text.lines().next().unwrap_or("");
    let _ = parse_hhmm(line);
    let _ = parse_date(line);
}
