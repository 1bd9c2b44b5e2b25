//! The BSP's HTTP API: call actions and call settings.
//!
//! - calls: `POST {base}/whatsapp-bsp-api-endpoint/services/v1/call`
//! - settings: `POST {base}/whatsapp-bsp-admin-ext-endpoint-ws/services/v1/phone-number/{waba}/{phone}/call-settings`
//!
//! Both with `Authorization: Bearer <token>` and a JSON body. Responses are read leniently: any 2xx
//! is success (the BSP documents no response bodies; we assume Meta's shapes), `connect` needs
//! Meta's `calls[0].id`, and non-2xx answers are searched for Meta's `error` object.
//!
//! Retries: `pre_accept`, `accept`, `reject`, `terminate` and the settings are retried on network
//! errors, timeouts, 408, 429 (honouring `Retry-After`) and 5xx, with exponential backoff and
//! jitter, at most `max_retries` times. `connect` is not idempotent (a retry could ring the user
//! twice) and is retried only when the connection was refused before anything was sent.
//!
//! The token is only ever put in the `Authorization` header; headers are never logged.

mod error;
pub mod types;

use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use serde::Serialize;
use tracing::{Instrument, debug, info_span, warn};

pub use error::{ApiError, ProviderError};
use error::{parse_provider_error, snippet};
pub use types::{AnswerRequest, ConnectRequest, EndRequest};

use crate::config::BspConfig;
use crate::secret::Secret;
use crate::settings::CallSettings;

/// Path of the calls endpoint below the base URL.
pub const CALLS_PATH: &str = "whatsapp-bsp-api-endpoint/services/v1/call";
/// Path prefix of the admin endpoint below the base URL.
pub const ADMIN_PATH: &str = "whatsapp-bsp-admin-ext-endpoint-ws/services/v1/phone-number";

/// Default first retry delay (doubled on each retry, plus up to 50 % jitter).
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(250);
/// No retry delay exceeds this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A `Retry-After` longer than this is shortened to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Whether a request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Idempotent: retry transient failures.
    Transient,
    /// Not idempotent: retry only when nothing reached the BSP (connection refused).
    BeforeSendOnly,
}

/// Client of the BSP's API for one business number.
#[derive(Clone)]
pub struct BspClient {
    http: reqwest::Client,
    calls_url: String,
    settings_url: String,
    from: String,
    token: Secret,
    timeout_ms: u64,
    max_retries: u32,
    backoff: Duration,
}

impl std::fmt::Debug for BspClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BspClient")
            .field("calls_url", &self.calls_url)
            .field("settings_url", &self.settings_url)
            .field("from", &self.from)
            .field("token", &self.token)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_retries", &self.max_retries)
            .field("backoff", &self.backoff)
            .finish()
    }
}

fn setup_error(detail: impl Into<String>) -> ApiError {
    ApiError::Setup {
        action: "setup",
        call_id: None,
        detail: detail.into(),
    }
}

impl BspClient {
    /// Builds a client from `[bsp]`. Fails on a base URL that is not http(s).
    pub fn new(cfg: &BspConfig) -> Result<Self, ApiError> {
        let base = cfg.base_url.trim().trim_end_matches('/');
        let url = reqwest::Url::parse(base)
            .map_err(|e| setup_error(format!("bsp.base_url {base:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(setup_error(format!(
                "bsp.base_url {base:?} must be an http(s) URL with a host"
            )));
        }
        if cfg.timeout_ms == 0 {
            return Err(setup_error("bsp.timeout_ms must be above 0"));
        }
        let host = url.host_str().unwrap_or("");
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        // The token and customers' SDP travel in every request: clear text only on this machine.
        if url.scheme() == "http" && !loopback {
            return Err(setup_error(format!(
                "bsp.base_url {base:?} must be https:// (http:// only for a BSP on this machine)"
            )));
        }
        let mut builder = reqwest::Client::builder()
            // A redirect would carry the bearer token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms))
            .user_agent(concat!("wacall/", env!("CARGO_PKG_VERSION")));
        if loopback {
            // A local BSP (sandbox, tests) must never go through an environment proxy.
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| setup_error(format!("HTTP client: {e}")))?;
        Ok(BspClient {
            http,
            calls_url: format!("{base}/{CALLS_PATH}"),
            settings_url: format!(
                "{base}/{ADMIN_PATH}/{}/{}/call-settings",
                cfg.waba_id.trim(),
                cfg.phone_number.trim()
            ),
            from: cfg.phone_number.trim().to_owned(),
            token: cfg.token.clone(),
            timeout_ms: cfg.timeout_ms,
            max_retries: cfg.max_retries,
            backoff: DEFAULT_BACKOFF,
        })
    }

    /// Sets the first retry delay (tests use a few milliseconds).
    pub fn with_backoff(mut self, base: Duration) -> Self {
        self.backoff = base;
        self
    }

    /// The calls endpoint URL.
    pub fn calls_url(&self) -> &str {
        &self.calls_url
    }

    /// The call-settings endpoint URL.
    pub fn settings_url(&self) -> &str {
        &self.settings_url
    }

    /// The business number requests are sent from.
    pub fn from_number(&self) -> &str {
        &self.from
    }

    /// Starts a call to `to` with our SDP offer; returns the new call id (`calls[0].id`).
    /// Not retried once the request may have reached the BSP.
    pub async fn connect(
        &self,
        to: &str,
        sdp: &str,
        biz_opaque_callback_data: Option<&str>,
    ) -> Result<String, ApiError> {
        let body = ConnectRequest {
            from: &self.from,
            to,
            action: "connect",
            sdp,
            biz_opaque_callback_data,
        };
        let answer = self
            .post(
                "connect",
                None,
                &self.calls_url,
                &body,
                Retry::BeforeSendOnly,
            )
            .await?;
        let id = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| {
                v.get("calls")?
                    .get(0)?
                    .get("id")?
                    .as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            });
        id.ok_or_else(|| ApiError::BadResponse {
            action: "connect",
            call_id: None,
            detail: "the answer has no call id (calls[0].id)".to_owned(),
            body_snippet: snippet(&answer),
        })
    }

    /// Sends our SDP answer for a user's call before accepting it, so media can start early.
    pub async fn pre_accept(&self, call_id: &str, to: &str, sdp: &str) -> Result<(), ApiError> {
        self.answer("pre_accept", call_id, to, sdp).await
    }

    /// Answers a user's call (same SDP as `pre_accept`).
    pub async fn accept(&self, call_id: &str, to: &str, sdp: &str) -> Result<(), ApiError> {
        self.answer("accept", call_id, to, sdp).await
    }

    /// Declines a ringing user call.
    pub async fn reject(&self, call_id: &str, to: &str) -> Result<(), ApiError> {
        self.end("reject", call_id, to).await
    }

    /// Hangs up a call.
    pub async fn terminate(&self, call_id: &str, to: &str) -> Result<(), ApiError> {
        self.end("terminate", call_id, to).await
    }

    /// Replaces the number's call settings (validate them first).
    pub async fn set_call_settings(&self, s: &CallSettings) -> Result<(), ApiError> {
        self.post(
            "call-settings",
            None,
            &self.settings_url,
            s,
            Retry::Transient,
        )
        .await
        .map(drop)
    }

    async fn answer(
        &self,
        action: &'static str,
        call_id: &str,
        to: &str,
        sdp: &str,
    ) -> Result<(), ApiError> {
        let body = AnswerRequest {
            from: &self.from,
            to,
            action,
            call_id,
            sdp,
        };
        self.post(
            action,
            Some(call_id),
            &self.calls_url,
            &body,
            Retry::Transient,
        )
        .await
        .map(drop)
    }

    async fn end(&self, action: &'static str, call_id: &str, to: &str) -> Result<(), ApiError> {
        let body = EndRequest {
            from: &self.from,
            to,
            action,
            call_id,
        };
        self.post(
            action,
            Some(call_id),
            &self.calls_url,
            &body,
            Retry::Transient,
        )
        .await
        .map(drop)
    }

    /// Sends `body` with retries; returns the body of the 2xx answer.
    async fn post<B: Serialize + ?Sized>(
        &self,
        action: &'static str,
        call_id: Option<&str>,
        url: &str,
        body: &B,
        retry: Retry,
    ) -> Result<bytes::Bytes, ApiError> {
        let span = info_span!("bsp", action, call_id = call_id.unwrap_or(""));
        async {
            let json = serde_json::to_vec(body).map_err(|e| ApiError::Setup {
                action,
                call_id: call_id.map(str::to_owned),
                detail: format!("cannot encode the request: {e}"),
            })?;
            let mut attempt: u32 = 0;
            loop {
                attempt += 1;
                let (mut err, retryable, retry_after) =
                    match self.attempt(action, call_id, url, &json).await {
                        Ok(answer) => {
                            debug!(attempt, "BSP accepted");
                            return Ok(answer);
                        }
                        Err(f) => f.into_parts(retry),
                    };
                err.set_attempts(attempt);
                if !retryable || attempt > self.max_retries {
                    warn!(attempt, error = %err, "BSP request failed");
                    return Err(err);
                }
                let delay = retry_after
                    .map(|d| d.min(MAX_RETRY_AFTER))
                    .unwrap_or_else(|| self.backoff_delay(attempt));
                warn!(attempt, delay_ms = delay.as_millis() as u64, error = %err, "BSP request failed, retrying");
                tokio::time::sleep(delay).await;
            }
        }
        .instrument(span)
        .await
    }

    /// Delay before retry number `attempt` (1-based): base * 2^(attempt-1) plus up to half again.
    fn backoff_delay(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(MAX_BACKOFF);
        let jitter_ms = (exp.as_millis() as u64) / 2;
        let jitter = if jitter_ms > 0 {
            Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
        } else {
            Duration::ZERO
        };
        (exp + jitter).min(MAX_BACKOFF)
    }

    async fn attempt(
        &self,
        action: &'static str,
        call_id: Option<&str>,
        url: &str,
        json: &[u8],
    ) -> Result<bytes::Bytes, Failure> {
        let call_id_owned = || call_id.map(str::to_owned);
        tracing::debug!("sending to the BSP");
        let sent = self
            .http
            .post(url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(json.to_vec())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Err(self.transport_failure(action, call_id_owned(), &e)),
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match read_limited(resp, MAX_RESPONSE_BYTES).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(Failure {
                    error: ApiError::BadResponse {
                        action,
                        call_id: call_id_owned(),
                        detail: format!(
                            "the BSP's {status} answer is over {MAX_RESPONSE_BYTES} bytes; not read"
                        ),
                        body_snippet: String::new(),
                    },
                    transient: false,
                    before_send: false,
                    retry_after: None,
                });
            }
            Err(e) => {
                let mut f = self.transport_failure(action, call_id_owned(), &e);
                // The request was sent: only a status of success is known.
                f.before_send = false;
                if status.is_success() {
                    // The BSP took the request; the body does not matter except for connect.
                    if action != "connect" {
                        return Ok(bytes::Bytes::new());
                    }
                }
                return Err(f);
            }
        };
        debug!(status = status.as_u16(), bytes = body.len(), "BSP answered");
        if status.is_success() {
            return Ok(body);
        }
        let transient = status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error();
        Err(Failure {
            error: ApiError::Http {
                action,
                call_id: call_id_owned(),
                status: status.as_u16(),
                provider: Box::new(parse_provider_error(&body)),
                attempts: 1,
            },
            transient,
            before_send: false,
            retry_after: if status == StatusCode::TOO_MANY_REQUESTS {
                retry_after
            } else {
                None
            },
        })
    }

    fn transport_failure(
        &self,
        action: &'static str,
        call_id: Option<String>,
        e: &reqwest::Error,
    ) -> Failure {
        let before_send = e.is_connect();
        let error = if e.is_timeout() {
            ApiError::Timeout {
                action,
                call_id,
                timeout_ms: self.timeout_ms,
                attempts: 1,
            }
        } else {
            ApiError::Unreachable {
                action,
                call_id,
                detail: error_chain(e),
                attempts: 1,
            }
        };
        Failure {
            error,
            transient: true,
            // A connect timeout never reached the BSP either, but treat timeouts as unknown.
            before_send: before_send && !e.is_timeout(),
            retry_after: None,
        }
    }
}

/// Largest BSP answer read: a call id, a settings object or an error is a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The body, or `None` when it grows past `limit` (a misbehaving BSP cannot fill our memory).
async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Option<bytes::Bytes>, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// One failed attempt and what it allows.
struct Failure {
    error: ApiError,
    transient: bool,
    before_send: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn into_parts(self, retry: Retry) -> (ApiError, bool, Option<Duration>) {
        let retryable = match retry {
            Retry::Transient => self.transient,
            Retry::BeforeSendOnly => self.before_send,
        };
        (self.error, retryable, self.retry_after)
    }
}

/// An error and its causes on one line, without the URL's query (there is none with secrets,
/// but keep messages short).
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = vec![e.without_url_ref()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut s = self.to_string();
        if let Some(u) = self.url() {
            s = s.replace(&format!(" ({u})"), "").replace(u.as_str(), "");
        }
        s.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(base: &str) -> BspConfig {
        BspConfig {
            base_url: base.into(),
            waba_id: "111".into(),
            phone_number: "5215500000001".into(),
            token: Secret::new("TOKEN-xyz"),
            ..Default::default()
        }
    }

    #[test]
    fn urls_tolerate_trailing_slash() {
        for base in [
            "https://bsp.example.com",
            "https://bsp.example.com/",
            "https://bsp.example.com//",
        ] {
            let c = BspClient::new(&cfg(base)).unwrap();
            assert_eq!(
                c.calls_url(),
                "https://bsp.example.com/whatsapp-bsp-api-endpoint/services/v1/call"
            );
            assert_eq!(
                c.settings_url(),
                "https://bsp.example.com/whatsapp-bsp-admin-ext-endpoint-ws/services/v1/phone-number/111/5215500000001/call-settings"
            );
        }
        let c = BspClient::new(&cfg("http://127.0.0.1:9/prefix/")).unwrap();
        assert_eq!(
            c.calls_url(),
            "http://127.0.0.1:9/prefix/whatsapp-bsp-api-endpoint/services/v1/call"
        );
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for base in [
            "",
            "bsp.example.com",
            "ftp://x",
            "https://",
            "http://bsp.example.com",
        ] {
            let e = BspClient::new(&cfg(base)).unwrap_err();
            assert_eq!(e.action(), "setup");
            assert!(e.to_string().contains("bsp.base_url"), "{e}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let c = BspClient::new(&cfg("https://bsp.example.com")).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("TOKEN-xyz"), "{d}");
        assert!(d.contains("***"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let c = BspClient::new(&cfg("https://bsp.example.com"))
            .unwrap()
            .with_backoff(Duration::from_millis(100));
        for _ in 0..20 {
            let d1 = c.backoff_delay(1);
            assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(150));
            let d3 = c.backoff_delay(3);
            assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(600));
            assert!(c.backoff_delay(40) <= MAX_BACKOFF);
        }
    }
}
