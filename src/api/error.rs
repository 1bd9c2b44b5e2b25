//! Errors of BSP requests: what was attempted, on which call, and what the BSP said.

use std::fmt;

/// A BSP request failed. Every variant names the action (`connect`, `terminate`,
/// `call-settings`, ...) and the call id when there is one. Never contains the token.
#[derive(thiserror::Error, Debug)]
pub enum ApiError {
    /// The client could not be built (bad base URL, ...).
    Setup {
        action: &'static str,
        call_id: Option<String>,
        detail: String,
    },
    /// The BSP (or Meta) answered with a non-2xx status.
    Http {
        action: &'static str,
        call_id: Option<String>,
        /// Who answered: `BSP` or `Meta`.
        who: &'static str,
        status: u16,
        /// What the body said (boxed to keep the error small).
        provider: Box<ProviderError>,
        attempts: u32,
    },
    /// No answer within the configured timeout.
    Timeout {
        action: &'static str,
        call_id: Option<String>,
        timeout_ms: u64,
        attempts: u32,
    },
    /// Connection refused, DNS failure, TLS failure, connection reset...
    Unreachable {
        action: &'static str,
        call_id: Option<String>,
        detail: String,
        attempts: u32,
    },
    /// A 2xx answer without what we needed (e.g. no call id after `connect`).
    BadResponse {
        action: &'static str,
        call_id: Option<String>,
        detail: String,
        body_snippet: String,
    },
    /// The provider's API has no such request (call permissions through a BSP, ...).
    Unsupported {
        action: &'static str,
        detail: String,
    },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.call_id() {
            Some(id) => write!(f, "{} of call {id} failed: ", self.action())?,
            None => write!(f, "{} failed: ", self.action())?,
        }
        match self {
            ApiError::Setup { detail, .. } => write!(f, "{detail}")?,
            ApiError::Http {
                status,
                provider,
                who,
                ..
            } => {
                write!(f, "{who} answered {status}: ")?;
                let ProviderError {
                    code,
                    subcode,
                    message,
                    body_snippet,
                    ..
                } = provider.as_ref();
                match (code, message) {
                    (Some(c), Some(m)) => write!(f, "(#{c}) {m}")?,
                    (Some(c), None) => write!(f, "(#{c}) {body_snippet}")?,
                    (None, Some(m)) => write!(f, "{m}")?,
                    (None, None) if body_snippet.is_empty() => write!(f, "(empty body)")?,
                    (None, None) => write!(f, "{body_snippet}")?,
                }
                if let Some(s) = subcode {
                    write!(f, " [subcode {s}]")?;
                }
                if let Some(words) = code.and_then(super::codes::explain) {
                    write!(f, ". Meaning: {words}")?;
                }
            }
            ApiError::Timeout { timeout_ms, .. } => write!(f, "timed out after {timeout_ms} ms")?,
            ApiError::Unreachable { detail, .. } => write!(f, "BSP unreachable: {detail}")?,
            ApiError::BadResponse {
                detail,
                body_snippet,
                ..
            } => write!(f, "unexpected BSP answer: {detail} (body: {body_snippet})")?,
            ApiError::Unsupported { detail, .. } => write!(f, "{detail}")?,
        }
        let attempts = self.attempts();
        if attempts > 1 {
            write!(f, " (after {attempts} attempts)")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// What was attempted: `connect`, `pre_accept`, `accept`, `reject`, `terminate`,
    /// `call-settings`, `setup`.
    pub fn action(&self) -> &'static str {
        match self {
            ApiError::Setup { action, .. }
            | ApiError::Http { action, .. }
            | ApiError::Timeout { action, .. }
            | ApiError::Unreachable { action, .. }
            | ApiError::BadResponse { action, .. }
            | ApiError::Unsupported { action, .. } => action,
        }
    }

    /// The call concerned, when there is one.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            ApiError::Setup { call_id, .. }
            | ApiError::Http { call_id, .. }
            | ApiError::Timeout { call_id, .. }
            | ApiError::Unreachable { call_id, .. }
            | ApiError::BadResponse { call_id, .. } => call_id.as_deref(),
            ApiError::Unsupported { .. } => None,
        }
    }

    /// Requests sent (or tried) before giving up.
    pub fn attempts(&self) -> u32 {
        match self {
            ApiError::Http { attempts, .. }
            | ApiError::Timeout { attempts, .. }
            | ApiError::Unreachable { attempts, .. } => *attempts,
            ApiError::Setup { .. }
            | ApiError::BadResponse { .. }
            | ApiError::Unsupported { .. } => 1,
        }
    }

    /// True when trying again cannot help: 4xx answers other than 408 and 429, unusable
    /// answers, setup errors. Timeouts, network errors, 408, 429 and 5xx are transient.
    pub fn is_permanent(&self) -> bool {
        match self {
            ApiError::Http { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            ApiError::Setup { .. }
            | ApiError::BadResponse { .. }
            | ApiError::Unsupported { .. } => true,
            ApiError::Timeout { .. } | ApiError::Unreachable { .. } => false,
        }
    }

    /// The HTTP status, when the BSP answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Meta's `error.code` (e.g. 138006 for a missing call permission).
    pub fn provider_code(&self) -> Option<i64> {
        match self {
            ApiError::Http { provider, .. } => provider.code,
            _ => None,
        }
    }

    /// What the provider's code means in words, when it is one of Meta's calling codes.
    pub fn meaning(&self) -> Option<&'static str> {
        self.provider_code().and_then(super::codes::explain)
    }

    /// Meta's `error.message`.
    pub fn provider_message(&self) -> Option<&str> {
        match self {
            ApiError::Http { provider, .. } => provider.message.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn set_attempts(&mut self, n: u32) {
        match self {
            ApiError::Http { attempts, .. }
            | ApiError::Timeout { attempts, .. }
            | ApiError::Unreachable { attempts, .. } => *attempts = n,
            ApiError::Setup { .. }
            | ApiError::BadResponse { .. }
            | ApiError::Unsupported { .. } => {}
        }
    }
}

/// What a non-2xx body said: Meta's error fields, read leniently, and the body's start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProviderError {
    /// Meta's `error.code` (e.g. 138006 for a missing call permission).
    pub code: Option<i64>,
    /// Meta's `error.error_subcode`.
    pub subcode: Option<i64>,
    /// Meta's `error.type`.
    pub error_type: Option<String>,
    /// Meta's `error.message` (with `error_data.details`), or a BSP's top-level `message`.
    pub message: Option<String>,
    /// The start of the body on one line, for bodies not in Meta's shape.
    pub body_snippet: String,
}

fn as_i64(v: Option<&serde_json::Value>) -> Option<i64> {
    let v = v?;
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

fn as_string(v: Option<&serde_json::Value>) -> Option<String> {
    v?.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Reads `{"error":{"message","type","code","error_subcode"}}`, or a BSP's flatter
/// `{"message": ..., "code": ...}` / `{"error": "..."}`.
pub(crate) fn parse_provider_error(body: &[u8]) -> ProviderError {
    let mut p = parse_fields(body);
    p.body_snippet = snippet(body);
    p
}

fn parse_fields(body: &[u8]) -> ProviderError {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return ProviderError::default();
    };
    match v.get("error") {
        Some(e) if e.is_object() => {
            let mut message = as_string(e.get("message"));
            // Meta puts the useful part in error_data.details at times.
            if let Some(details) = as_string(e.get("error_data").and_then(|d| d.get("details"))) {
                message = Some(match message {
                    Some(m) if m != details => format!("{m}: {details}"),
                    _ => details,
                });
            }
            ProviderError {
                code: as_i64(e.get("code")),
                subcode: as_i64(e.get("error_subcode")),
                error_type: as_string(e.get("type")),
                message,
                body_snippet: String::new(),
            }
        }
        Some(serde_json::Value::String(s)) => ProviderError {
            message: Some(s.clone()).filter(|s| !s.is_empty()),
            code: as_i64(v.get("code")),
            ..Default::default()
        },
        _ => ProviderError {
            code: as_i64(v.get("code")),
            message: as_string(v.get("message")),
            ..Default::default()
        },
    }
}

/// The start of a body, on one line, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > MAX {
        let cut: String = one_line.chars().take(MAX).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, body: &str) -> ApiError {
        ApiError::Http {
            action: "terminate",
            call_id: Some("wacid.X".into()),
            who: "BSP",
            status,
            provider: Box::new(parse_provider_error(body.as_bytes())),
            attempts: 1,
        }
    }

    #[test]
    fn display_reads_like_a_sentence() {
        let e = http(
            400,
            r#"{"error":{"message":"No call permission","type":"OAuthException","code":138006,"fbtrace_id":"x"}}"#,
        );
        assert_eq!(
            e.to_string(),
            "terminate of call wacid.X failed: BSP answered 400: (#138006) No call permission. \
             Meaning: the user has not given this business permission to call them: send a \
             call-permission request first (wacall permission request NUMBER)"
        );
        assert!(e.is_permanent());
        assert_eq!(e.provider_code(), Some(138006));
        assert_eq!(e.provider_message(), Some("No call permission"));

        let e = ApiError::Timeout {
            action: "connect",
            call_id: None,
            timeout_ms: 10000,
            attempts: 1,
        };
        assert_eq!(e.to_string(), "connect failed: timed out after 10000 ms");
        assert!(!e.is_permanent());

        let e = ApiError::Unreachable {
            action: "accept",
            call_id: Some("wacid.Y".into()),
            detail: "connection refused".into(),
            attempts: 4,
        };
        assert_eq!(
            e.to_string(),
            "accept of call wacid.Y failed: BSP unreachable: connection refused (after 4 attempts)"
        );
    }

    #[test]
    fn permanence_by_status() {
        for (s, perm) in [
            (400, true),
            (401, true),
            (404, true),
            (408, false),
            (429, false),
            (500, false),
            (503, false),
        ] {
            assert_eq!(http(s, "").is_permanent(), perm, "{s}");
        }
    }

    #[test]
    fn lenient_error_bodies() {
        assert_eq!(
            http(502, "<html>Bad gateway</html>")
                .to_string()
                .split(": ")
                .last(),
            Some("<html>Bad gateway</html>")
        );
        let p = parse_provider_error(br#"{"error":{"code":"131000","message":"x","error_subcode":2,"error_data":{"details":"more"}}}"#);
        assert_eq!(p.code, Some(131000));
        assert_eq!(p.subcode, Some(2));
        assert_eq!(p.message.as_deref(), Some("x: more"));
        let p = parse_provider_error(br#"{"message":"flat","code":7}"#);
        assert_eq!((p.code, p.message.as_deref()), (Some(7), Some("flat")));
        let p = parse_provider_error(br#"{"error":"Unauthorized"}"#);
        assert_eq!(p.message.as_deref(), Some("Unauthorized"));
        assert_eq!(
            http(500, "").to_string(),
            "terminate of call wacid.X failed: BSP answered 500: (empty body)"
        );
        assert!(snippet("a".repeat(500).as_bytes()).ends_with("..."));
    }
}
