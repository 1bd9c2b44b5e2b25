//! Webhook authenticity: the `X-Hub-Signature-256` HMAC on every POST, and the one-time `GET`
//! verification handshake (`hub.mode` / `hub.verify_token` / `hub.challenge`).
//!
//! Pure functions, no IO. The app secret and the verify token are never logged nor put in errors.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix Meta puts before the hex digest in `X-Hub-Signature-256`.
const PREFIX: &str = "sha256=";
/// Longest `hub.challenge` we echo back.
pub const MAX_CHALLENGE_CHARS: usize = 256;

/// Why a webhook body's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header (or an empty one).
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// The header is not `sha256=<64 hex digits>`.
    #[error("malformed X-Hub-Signature-256 header: {0}")]
    Malformed(String),
    /// Well formed, but not the HMAC of this body under our app secret.
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
    /// No app secret is configured: nothing can be authenticated.
    #[error("no app secret configured: webhooks cannot be authenticated")]
    NoSecret,
}

/// Why a `GET` verification request was refused. The messages name what is wrong, never the
/// expected token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("missing hub.mode")]
    MissingMode,
    #[error("wrong hub.mode {0:?} (expected \"subscribe\")")]
    WrongMode(String),
    #[error("missing hub.verify_token")]
    MissingToken,
    #[error("hub.verify_token mismatch")]
    TokenMismatch,
    #[error("missing hub.challenge")]
    MissingChallenge,
    #[error("hub.challenge longer than {MAX_CHALLENGE_CHARS} chars ({0} chars)")]
    ChallengeTooLong(usize),
    /// We echo the challenge back as the response body, so only visible ASCII is accepted
    /// (Meta sends a decimal number).
    #[error("hub.challenge contains characters other than visible ASCII")]
    InvalidChallenge,
}

/// `"sha256=<lowercase hex HMAC-SHA256(app_secret, body)>"`, the value Meta sends in
/// `X-Hub-Signature-256`.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(app_secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks `header` (the `X-Hub-Signature-256` value) against the HMAC-SHA256 of the raw `body`.
///
/// Accepted: `sha256=` (prefix case-insensitive) followed by 64 hex digits, upper or lower case;
/// surrounding whitespace is ignored. The comparison is constant time (`Mac::verify_slice`).
pub fn verify_signature(
    app_secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    // Anyone can compute an HMAC with an empty key: an unconfigured secret authenticates nothing.
    if app_secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.map(str::trim).unwrap_or("");
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    let hex_part = match header.get(..PREFIX.len()) {
        Some(p) if p.eq_ignore_ascii_case(PREFIX) => &header[PREFIX.len()..],
        _ => {
            return Err(SignatureError::Malformed(format!(
                "expected \"{PREFIX}<hex>\", got {}",
                preview(header)
            )));
        }
    };
    if hex_part.len() != 64 {
        return Err(SignatureError::Malformed(format!(
            "expected 64 hex digits after \"{PREFIX}\", got {} chars",
            hex_part.chars().count()
        )));
    }
    let expected = hex::decode(hex_part)
        .map_err(|e| SignatureError::Malformed(format!("not hex after \"{PREFIX}\": {e}")))?;
    let mut mac = HmacSha256::new_from_slice(app_secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// Answers Meta's subscription check: `Ok(challenge)` (to send back as the response body) when
/// `hub.mode` is `subscribe` and `hub.verify_token` equals `expected_token`.
///
/// The token comparison is constant time (on SHA-256 digests, so the length is not leaked
/// either). An empty `expected_token` never matches: an unconfigured token must not let anyone
/// subscribe. Checks run in order: mode, token, challenge.
pub fn verify_challenge(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&str>,
    expected_token: &str,
) -> Result<String, ChallengeError> {
    match mode {
        None | Some("") => return Err(ChallengeError::MissingMode),
        Some("subscribe") => {}
        Some(other) => {
            return Err(ChallengeError::WrongMode(
                other.chars().take(64).collect::<String>(),
            ));
        }
    }
    let token = verify_token.ok_or(ChallengeError::MissingToken)?;
    if !crate::secret::secrets_match(expected_token, token) {
        return Err(ChallengeError::TokenMismatch);
    }
    let challenge = match challenge {
        None | Some("") => return Err(ChallengeError::MissingChallenge),
        Some(c) => c,
    };
    let n = challenge.chars().count();
    if n > MAX_CHALLENGE_CHARS {
        return Err(ChallengeError::ChallengeTooLong(n));
    }
    if !challenge.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ChallengeError::InvalidChallenge);
    }
    Ok(challenge.to_owned())
}

/// A short, safe rendering of a header value for an error message.
fn preview(s: &str) -> String {
    let mut out: String = s.chars().take(16).collect();
    if s.chars().count() > 16 {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231, test case 1.
    const RFC_KEY: [u8; 20] = [0x0b; 20];
    const RFC_DATA: &[u8] = b"Hi There";
    const RFC_MAC: &str = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";

    #[test]
    fn sign_matches_rfc4231_vector() {
        assert_eq!(sign(&RFC_KEY, RFC_DATA), format!("sha256={RFC_MAC}"));
    }

    #[test]
    fn sign_matches_rfc4231_case2() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn an_empty_app_secret_authenticates_nothing() {
        let body = b"{}";
        let forged = format!(
            "sha256={}",
            hex::encode(
                HmacSha256::new_from_slice(b"")
                    .unwrap()
                    .chain_update(body)
                    .finalize()
                    .into_bytes()
            )
        );
        assert_eq!(
            verify_signature(b"", body, Some(&forged)),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn verify_accepts_rfc_vector() {
        let header = format!("sha256={RFC_MAC}");
        assert_eq!(verify_signature(&RFC_KEY, RFC_DATA, Some(&header)), Ok(()));
    }

    #[test]
    fn verify_accepts_uppercase_hex_prefix_and_whitespace() {
        let header = format!("sha256={}", RFC_MAC.to_uppercase());
        assert_eq!(verify_signature(&RFC_KEY, RFC_DATA, Some(&header)), Ok(()));
        let header = format!("  SHA256={RFC_MAC}\r\n");
        assert_eq!(verify_signature(&RFC_KEY, RFC_DATA, Some(&header)), Ok(()));
    }

    #[test]
    fn verify_round_trip_on_realistic_body() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = sign(b"app-secret", body);
        assert_eq!(verify_signature(b"app-secret", body, Some(&header)), Ok(()));
    }

    #[test]
    fn tampered_body_is_mismatch() {
        let header = format!("sha256={RFC_MAC}");
        assert_eq!(
            verify_signature(&RFC_KEY, b"Hi there", Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&RFC_KEY, b"", Some(&header)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn wrong_secret_is_mismatch() {
        let header = format!("sha256={RFC_MAC}");
        assert_eq!(
            verify_signature(&[0x0c; 20], RFC_DATA, Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"", RFC_DATA, Some(&header)),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn missing_header() {
        assert_eq!(
            verify_signature(&RFC_KEY, RFC_DATA, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(&RFC_KEY, RFC_DATA, Some("  ")),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn missing_prefix_is_malformed() {
        let err = verify_signature(&RFC_KEY, RFC_DATA, Some(RFC_MAC)).unwrap_err();
        assert!(
            matches!(err, SignatureError::Malformed(ref m) if m.contains("sha256=")),
            "{err}"
        );
        let err = verify_signature(&RFC_KEY, RFC_DATA, Some(&format!("sha1={RFC_MAC}")));
        assert!(matches!(err, Err(SignatureError::Malformed(_))));
    }

    #[test]
    fn non_hex_and_wrong_length_are_malformed() {
        let bad = format!("sha256={}zz", &RFC_MAC[..62]);
        let err = verify_signature(&RFC_KEY, RFC_DATA, Some(&bad)).unwrap_err();
        assert!(
            matches!(err, SignatureError::Malformed(ref m) if m.contains("not hex")),
            "{err}"
        );
        let short = format!("sha256={}", &RFC_MAC[..40]);
        let err = verify_signature(&RFC_KEY, RFC_DATA, Some(&short)).unwrap_err();
        assert!(
            matches!(err, SignatureError::Malformed(ref m) if m.contains("64")),
            "{err}"
        );
        // Multi-byte chars must not panic on slicing.
        for h in ["sha256=ééééé", "é", "sha25", "sha256=", "ß h a 2 5 6 ="] {
            assert!(matches!(
                verify_signature(&RFC_KEY, RFC_DATA, Some(h)),
                Err(SignatureError::Malformed(_))
            ));
        }
        let multibyte_64 = format!("sha256={}", "é".repeat(32));
        assert!(matches!(
            verify_signature(&RFC_KEY, RFC_DATA, Some(&multibyte_64)),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn errors_never_show_the_secret() {
        let secret = b"super-secret-value";
        for h in [
            None,
            Some("x"),
            Some("sha256=00"),
            Some(&*sign(b"other", b"b")),
        ] {
            let err = verify_signature(secret, b"b", h).unwrap_err();
            assert!(!err.to_string().contains("super-secret"));
            assert!(!format!("{err:?}").contains("super-secret"));
        }
    }

    #[test]
    fn challenge_ok() {
        assert_eq!(
            verify_challenge(Some("subscribe"), Some("tok"), Some("1158201444"), "tok"),
            Ok("1158201444".to_owned())
        );
    }

    #[test]
    fn challenge_errors_name_the_problem() {
        use ChallengeError::*;
        assert_eq!(
            verify_challenge(None, Some("t"), Some("1"), "t"),
            Err(MissingMode)
        );
        assert_eq!(
            verify_challenge(Some("x"), Some("t"), Some("1"), "t"),
            Err(WrongMode("x".into()))
        );
        assert!(
            WrongMode("x".into()).to_string().contains("\"x\""),
            "{}",
            WrongMode("x".into())
        );
        assert_eq!(
            verify_challenge(Some("subscribe"), None, Some("1"), "t"),
            Err(MissingToken)
        );
        assert_eq!(
            verify_challenge(Some("subscribe"), Some("u"), Some("1"), "t"),
            Err(TokenMismatch)
        );
        assert_eq!(
            verify_challenge(Some("subscribe"), Some("tt"), Some("1"), "t"),
            Err(TokenMismatch)
        );
        assert_eq!(
            verify_challenge(Some("subscribe"), Some("t"), None, "t"),
            Err(MissingChallenge)
        );
        assert_eq!(
            verify_challenge(Some("subscribe"), Some("t"), Some(""), "t"),
            Err(MissingChallenge)
        );
        let long = "9".repeat(257);
        assert_eq!(
            verify_challenge(Some("subscribe"), Some("t"), Some(&long), "t"),
            Err(ChallengeTooLong(257))
        );
        let max = "9".repeat(256);
        assert_eq!(
            verify_challenge(Some("subscribe"), Some("t"), Some(&max), "t"),
            Ok(max.clone())
        );
        assert_eq!(
            verify_challenge(Some("subscribe"), Some("t"), Some("<script>\n"), "t"),
            Err(InvalidChallenge)
        );
    }

    #[test]
    fn empty_expected_token_never_matches() {
        assert_eq!(
            verify_challenge(Some("subscribe"), Some(""), Some("1"), ""),
            Err(ChallengeError::TokenMismatch)
        );
    }
}
