//! A string that must never be printed: tokens, app secrets, edge tokens.
//!
//! `Debug` and `Display` print `***`; serializing writes `"***"`; deserializing takes the plain
//! string. Use [`Secret::expose`] only at the point where the value is really needed (an HTTP header,
//! an HMAC key, a constant-time comparison).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string. Its value only comes out through [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `given` is this secret, in constant time; see [`secrets_match`].
    pub fn matches(&self, given: &str) -> bool {
        secrets_match(&self.0, given)
    }
}

/// Compares a presented token with the expected one in constant time: both are hashed first so
/// neither the content nor the length leaks through timing, and an empty expected value (an unset
/// secret) never matches.
pub fn secrets_match(expected: &str, given: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let (a, b) = (
        Sha256::digest(expected.as_bytes()),
        Sha256::digest(given.as_bytes()),
    );
    let same: bool = a.as_slice().ct_eq(b.as_slice()).into();
    same && !expected.is_empty()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_exact_and_an_unset_secret_matches_nothing() {
        let s = Secret::new("alpha");
        assert!(s.matches("alpha"));
        assert!(!s.matches("alph") && !s.matches("alphaa") && !s.matches(""));
        assert!(!Secret::new("").matches(""));
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
        assert!(!s.is_empty());
        assert!(Secret::default().is_empty());
    }

    #[test]
    fn deserializes_from_string_serializes_masked() {
        let s: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(s, Secret::new("abc"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert!(serde_json::from_str::<Secret>("12").is_err());
    }

    #[test]
    fn equality_compares_values() {
        assert_eq!(Secret::new("a"), Secret::new(String::from("a")));
        assert_ne!(Secret::new("a"), Secret::new("b"));
    }
}
