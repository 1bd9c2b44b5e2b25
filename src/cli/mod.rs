//! Operator commands behind `main.rs`: each returns friendly errors.

pub mod dial;
pub mod history;
pub mod ops;
pub mod permission;
pub mod report;

/// The error as one line for the terminal: the message, then each cause that the message does
/// not already carry. Library errors name their cause in their own text (`cannot open WAV file
/// x: No such file…`) and also expose it as their source; `{:#}` would print it twice.
pub fn friendly(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open WAV file {path}: {source}")]
    struct OpenError {
        path: String,
        source: std::io::Error,
    }

    fn not_found() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = anyhow::Error::new(OpenError {
            path: "greeting.wav".into(),
            source: not_found(),
        })
        .context("loading the prompt");
        assert_eq!(
            friendly(&e),
            "loading the prompt: cannot open WAV file greeting.wav: No such file or directory"
        );
    }

    #[test]
    fn causes_the_message_lacks_are_kept() {
        let e = anyhow::Error::new(not_found()).context("reading the config");
        assert_eq!(
            friendly(&e),
            "reading the config: No such file or directory"
        );
    }
}
