//! Customers' numbers, names and key presses (PINs) in logs: masked unless the operator asks
//! for them (`--log-pii`). A masked number keeps its last four digits, enough to tell calls
//! apart in a log; a key press shows as `•`. History and recordings keep the real values.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static SHOW: AtomicBool = AtomicBool::new(false);

/// Logs show numbers, names and digits in full from now on.
pub fn show_in_logs(show: bool) {
    SHOW.store(show, Ordering::Relaxed);
}

fn shown() -> bool {
    SHOW.load(Ordering::Relaxed)
}

/// A phone number or user id, for a log line.
pub struct Number<'a>(pub &'a str);

impl fmt::Display for Number<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if shown() {
            return f.write_str(self.0);
        }
        let chars: Vec<char> = self.0.chars().collect();
        let keep = if chars.len() > 6 { 4 } else { 0 };
        f.write_str("•••")?;
        for c in &chars[chars.len() - keep..] {
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// A person's name, for a log line: its first letter.
pub struct Name<'a>(pub &'a str);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if shown() {
            return f.write_str(self.0);
        }
        match self.0.chars().next() {
            Some(c) => write!(f, "{c}…"),
            None => Ok(()),
        }
    }
}

/// A key the customer pressed (a PIN digit, perhaps), for a log line.
pub struct Digit(pub char);

impl fmt::Display for Digit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if shown() {
            write!(f, "{}", self.0)
        } else {
            f.write_str("•")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_unless_asked() {
        assert_eq!(Number("5215512345678").to_string(), "•••5678");
        assert_eq!(Number("1234").to_string(), "•••");
        assert_eq!(Name("Ana").to_string(), "A…");
        assert_eq!(Digit('7').to_string(), "•");
    }
}
