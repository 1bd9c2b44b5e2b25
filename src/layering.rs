//! The core modules hold no IO: the call machine, webhook parsing, settings, the hub's messages,
//! the history row and the media figures import nothing from the media stack, the audio
//! engine, the services above them, tokio or webrtc. Checked on the source text by a test, so
//! a new `use` that breaks the layering fails CI instead of growing unnoticed.

/// The modules that must stay free of IO (paths below `src/`; a directory means every file in it).
pub const CORE: &[&str] = &[
    "call",
    "webhook",
    "settings.rs",
    "hub_protocol.rs",
    "call_record.rs",
    "media_stats.rs",
];

/// What a core module may not name.
pub const FORBIDDEN: &[&str] = &[
    "crate::media::",
    "crate::media;",
    "crate::audio",
    "crate::edge",
    "crate::bridge",
    "crate::bot",
    "crate::phone",
    "crate::sandbox",
    "crate::api",
    "tokio",
    "webrtc",
    "reqwest",
    "axum",
    "cpal",
];

/// `(line number, line)` of every code line of `source` (comments skipped) that names a
/// forbidden path.
pub fn violations(source: &str) -> Vec<(usize, String)> {
    source
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or("");
            FORBIDDEN.iter().any(|f| code.contains(f))
        })
        .map(|(i, l)| (i + 1, l.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn files(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                files(&e.path(), out);
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p.to_path_buf());
        }
    }

    #[test]
    fn core_modules_import_no_io() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        for m in CORE {
            let p = src.join(m);
            assert!(p.exists(), "core module {m} is missing");
            files(&p, &mut all);
        }
        assert!(all.len() >= CORE.len());
        let mut bad = Vec::new();
        for f in &all {
            let text = std::fs::read_to_string(f).unwrap();
            for (n, l) in violations(&text) {
                bad.push(format!("{}:{n}: {l}", f.display()));
            }
        }
        assert!(
            bad.is_empty(),
            "core modules reach into IO:\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn the_check_sees_a_forbidden_use_and_ignores_comments() {
        let text = "use crate::call_record::X;\n// tokio is not used here\nuse crate::media::MediaStats;\n    let _ = tokio::spawn(x);";
        let v = violations(text);
        assert_eq!(v.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec![3, 4]);
    }
}
