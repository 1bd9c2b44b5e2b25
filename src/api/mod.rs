//! The calling API: call actions and call settings, from a BSP or from Meta's Cloud API
//! (`[bsp] provider`).
//!
//! - BSP calls: `POST {base}/whatsapp-bsp-api-endpoint/services/v1/call` (flat bodies, `from`)
//! - BSP settings: `POST {base}/whatsapp-bsp-admin-ext-endpoint-ws/services/v1/phone-number/{waba}/{phone}/call-settings`
//! - Meta: `POST {graph}/{version}/{phone-number-id}/calls` (`messaging_product`, `session`),
//!   `GET|POST .../settings` (`{"calling": ...}`), `GET .../call_permissions?user_wa_id=`,
//!   `POST .../messages` (the call-permission request), `GET {graph}/{version}/{media-id}`.
//!
//! All with `Authorization: Bearer <token>` and JSON. Responses are read leniently: any 2xx
//! is success (the BSP documents no response bodies; we assume Meta's shapes), `connect` needs
//! Meta's `calls[0].id`, and non-2xx answers are searched for Meta's `error` object, whose
//! calling codes are put into words (`codes`).
//!
//! Retries: `pre_accept`, `accept`, `reject`, `terminate`, the settings, the permission check
//! and media lookups are retried on network errors, timeouts, 408, 429 (honouring
//! `Retry-After`) and 5xx, with exponential backoff and jitter, at most `max_retries` times.
//! `connect` and the permission request are not idempotent (a retry could ring the user, or
//! message them, twice) and are retried only when the connection was refused before anything
//! was sent.
//!
//! The token is only ever put in the `Authorization` header; headers are never logged.

pub mod codes;
mod error;
pub mod meta;
pub mod permission;
pub mod types;

use std::time::Duration;

use rand::Rng;
use reqwest::{Method, StatusCode};
use tracing::{Instrument, debug, info_span, warn};

pub use error::{ApiError, ProviderError};
use error::{parse_provider_error, snippet};
pub use meta::{Capture, CaptureRequest, MediaInfo};
pub use permission::{CallPermission, PermissionAction, PermissionLimit, PermissionStatus};
pub use types::{AnswerRequest, ConnectRequest, EndRequest};

use crate::config::{BspConfig, Provider};
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

/// Where requests go and in which shape: the provider chosen in `[bsp]`.
#[derive(Debug, Clone)]
enum Endpoints {
    /// The BSP's call actions and call settings (flat bodies with `from` and `to`).
    Bsp { calls: String, settings: String },
    /// Meta's Graph API below `{base}/{version}`: `/{phone-number-id}/calls`, `/settings`,
    /// `/call_permissions`, `/messages`, and `/{media-id}`.
    Meta {
        graph: String,
        calls: String,
        settings: String,
        permissions: String,
        messages: String,
    },
}

/// Client of the calling API for one business number: a BSP's, or Meta's Cloud API. One
/// interface; the provider decides the URLs and bodies, the transport (timeouts, retries,
/// size limits, redaction) is shared.
#[derive(Clone)]
pub struct BspClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    from: String,
    token: Secret,
    timeout_ms: u64,
    max_retries: u32,
    backoff: Duration,
}

impl std::fmt::Debug for BspClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BspClient")
            .field("endpoints", &self.endpoints)
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

/// Whether `url`'s host is this machine (plain http is allowed only there).
fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl BspClient {
    /// Builds a client from `[bsp]`. Fails on a base URL that is not http(s), or (Meta) on a
    /// missing phone-number id or a malformed Graph version.
    pub fn new(cfg: &BspConfig) -> Result<Self, ApiError> {
        let base = cfg.effective_base_url();
        let base = base.trim_end_matches('/');
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
        let loopback = is_loopback(&url);
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
        let endpoints = match cfg.provider {
            Provider::Bsp => Endpoints::Bsp {
                calls: format!("{base}/{CALLS_PATH}"),
                settings: format!(
                    "{base}/{ADMIN_PATH}/{}/{}/call-settings",
                    cfg.waba_id.trim(),
                    cfg.phone_number.trim()
                ),
            },
            Provider::Meta => {
                let id = cfg.phone_number_id.trim();
                if id.is_empty() || !id.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(setup_error(format!(
                        "bsp.phone_number_id {id:?} must be the number's phone-number id (digits)"
                    )));
                }
                let version = cfg.graph_version.trim();
                if !crate::config::valid_graph_version(version) {
                    return Err(setup_error(format!(
                        "bsp.graph_version {version:?} must look like \"v23.0\""
                    )));
                }
                let graph = format!("{base}/{version}");
                Endpoints::Meta {
                    calls: format!("{graph}/{id}/calls"),
                    settings: format!("{graph}/{id}/settings"),
                    permissions: format!("{graph}/{id}/call_permissions"),
                    messages: format!("{graph}/{id}/messages"),
                    graph,
                }
            }
        };
        Ok(BspClient {
            http,
            endpoints,
            from: cfg.phone_number.trim().to_owned(),
            token: cfg.token.clone(),
            timeout_ms: cfg.timeout_ms,
            max_retries: cfg.max_retries,
            backoff: DEFAULT_BACKOFF,
        })
    }

    /// Which API this client speaks.
    pub fn provider(&self) -> Provider {
        match self.endpoints {
            Endpoints::Bsp { .. } => Provider::Bsp,
            Endpoints::Meta { .. } => Provider::Meta,
        }
    }

    fn who(&self) -> &'static str {
        match self.endpoints {
            Endpoints::Bsp { .. } => "BSP",
            Endpoints::Meta { .. } => "Meta",
        }
    }

    /// Sets the first retry delay (tests use a few milliseconds).
    pub fn with_backoff(mut self, base: Duration) -> Self {
        self.backoff = base;
        self
    }

    /// The calls endpoint URL.
    pub fn calls_url(&self) -> &str {
        match &self.endpoints {
            Endpoints::Bsp { calls, .. } | Endpoints::Meta { calls, .. } => calls,
        }
    }

    /// The call-settings endpoint URL.
    pub fn settings_url(&self) -> &str {
        match &self.endpoints {
            Endpoints::Bsp { settings, .. } | Endpoints::Meta { settings, .. } => settings,
        }
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
        self.connect_with(to, sdp, biz_opaque_callback_data, &Capture::default())
            .await
    }

    /// [`BspClient::connect`] asking Meta to record and/or transcribe the call.
    pub async fn connect_with(
        &self,
        to: &str,
        sdp: &str,
        biz_opaque_callback_data: Option<&str>,
        capture: &Capture,
    ) -> Result<String, ApiError> {
        let body = match &self.endpoints {
            Endpoints::Bsp { .. } => {
                self.refuse_capture("connect", capture)?;
                serde_json::to_value(ConnectRequest {
                    from: &self.from,
                    to,
                    action: "connect",
                    sdp,
                    biz_opaque_callback_data,
                })
            }
            Endpoints::Meta { .. } => serde_json::to_value(meta::Connect {
                messaging_product: "whatsapp",
                to,
                action: "connect",
                session: meta::Session {
                    sdp_type: "offer",
                    sdp,
                },
                biz_opaque_callback_data,
                recording: capture.recording.as_ref(),
                transcription: capture.transcription.as_ref(),
            }),
        };
        let body = body.map_err(|e| encode_error("connect", None, e))?;
        let answer = self
            .send(
                Method::POST,
                "connect",
                None,
                self.calls_url(),
                Some(&body),
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
        self.answer("pre_accept", call_id, to, sdp, &Capture::default())
            .await
    }

    /// Answers a user's call (same SDP as `pre_accept`).
    pub async fn accept(&self, call_id: &str, to: &str, sdp: &str) -> Result<(), ApiError> {
        self.answer("accept", call_id, to, sdp, &Capture::default())
            .await
    }

    /// [`BspClient::accept`] asking Meta to record and/or transcribe the call.
    pub async fn accept_with(
        &self,
        call_id: &str,
        to: &str,
        sdp: &str,
        capture: &Capture,
    ) -> Result<(), ApiError> {
        self.answer("accept", call_id, to, sdp, capture).await
    }

    /// Declines a ringing user call.
    pub async fn reject(&self, call_id: &str, to: &str) -> Result<(), ApiError> {
        self.end("reject", call_id, to).await
    }

    /// Hangs up a call.
    pub async fn terminate(&self, call_id: &str, to: &str) -> Result<(), ApiError> {
        self.end("terminate", call_id, to).await
    }

    /// Replaces the number's call settings (validate them first; for the BSP, without the
    /// Meta-only keys). Meta takes them inside `{"calling": ...}`.
    pub async fn set_call_settings(&self, s: &CallSettings) -> Result<(), ApiError> {
        let body = match &self.endpoints {
            Endpoints::Bsp { .. } => serde_json::to_value(s),
            Endpoints::Meta { .. } => Ok(serde_json::json!({ "calling": s })),
        }
        .map_err(|e| encode_error("call-settings", None, e))?;
        self.send(
            Method::POST,
            "call-settings",
            None,
            self.settings_url(),
            Some(&body),
            Retry::Transient,
        )
        .await
        .map(drop)
    }

    /// The number's current call settings as Meta returns them (`{"calling": {...}}`). The
    /// BSP's API has no read of the settings.
    pub async fn get_call_settings(&self) -> Result<serde_json::Value, ApiError> {
        let Endpoints::Meta { settings, .. } = &self.endpoints else {
            return Err(ApiError::Unsupported {
                action: "get-settings",
                detail: "the BSP's API cannot read call settings back (only Meta's Cloud API, bsp.provider = \"meta\", can)".into(),
            });
        };
        let body = self
            .send(
                Method::GET,
                "get-settings",
                None,
                settings,
                None,
                Retry::Transient,
            )
            .await?;
        json_body("get-settings", &body)
    }

    /// Whether the business may call `user` now: Meta's permission state, the actions allowed
    /// and their limits (`GET /{phone-number-id}/call_permissions?user_wa_id=`).
    pub async fn call_permission(&self, user: &str) -> Result<CallPermission, ApiError> {
        let Endpoints::Meta { permissions, .. } = &self.endpoints else {
            return Err(no_permission_api("call-permissions"));
        };
        let mut url = reqwest::Url::parse(permissions)
            .map_err(|e| setup_error(format!("permissions URL: {e}")))?;
        url.query_pairs_mut().append_pair("user_wa_id", user);
        let body = self
            .send(
                Method::GET,
                "call-permissions",
                None,
                url.as_str(),
                None,
                Retry::Transient,
            )
            .await?;
        let v = json_body("call-permissions", &body)?;
        CallPermission::from_json(&v).map_err(|detail| ApiError::BadResponse {
            action: "call-permissions",
            call_id: None,
            detail,
            body_snippet: snippet(&body),
        })
    }

    /// Sends `user` the interactive call-permission request (billed as a message; needs an
    /// open 24-hour conversation window). Returns the message id (`wamid...`) the user's reply
    /// will refer to. Not retried once it may have been sent: the user would get it twice.
    pub async fn request_call_permission(
        &self,
        user: &str,
        text: &str,
    ) -> Result<String, ApiError> {
        let Endpoints::Meta { messages, .. } = &self.endpoints else {
            return Err(no_permission_api("permission-request"));
        };
        let body = serde_json::json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": user,
            "type": "interactive",
            "interactive": {
                "type": "call_permission_request",
                "action": {"name": "call_permission_request"},
                "body": {"text": text},
            },
        });
        let answer = self
            .send(
                Method::POST,
                "permission-request",
                None,
                messages,
                Some(&body),
                Retry::BeforeSendOnly,
            )
            .await?;
        let v = json_body("permission-request", &answer)?;
        v.get("messages")
            .and_then(|m| m.get(0))
            .and_then(|m| m.get("id"))
            .and_then(|id| id.as_str())
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::BadResponse {
                action: "permission-request",
                call_id: None,
                detail: "the answer has no message id (messages[0].id)".into(),
                body_snippet: snippet(&answer),
            })
    }

    /// A fresh download URL (and the checksum and size) for a media id: Meta's URLs expire
    /// after five minutes (`GET /{media-id}`).
    pub async fn media_info(&self, media_id: &str) -> Result<MediaInfo, ApiError> {
        let Endpoints::Meta { graph, .. } = &self.endpoints else {
            return Err(ApiError::Unsupported {
                action: "media",
                detail: "media downloads are a Meta Cloud API feature".into(),
            });
        };
        if media_id.is_empty()
            || !media_id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.')
        {
            return Err(setup_error(format!("media id {media_id:?} is not an id")));
        }
        let body = self
            .send(
                Method::GET,
                "media",
                None,
                &format!("{graph}/{media_id}"),
                None,
                Retry::Transient,
            )
            .await?;
        let v = json_body("media", &body)?;
        let url = v
            .get("url")
            .and_then(|u| u.as_str())
            .filter(|u| !u.is_empty());
        let Some(url) = url else {
            return Err(ApiError::BadResponse {
                action: "media",
                call_id: None,
                detail: "the answer has no url".into(),
                body_snippet: snippet(&body),
            });
        };
        Ok(MediaInfo {
            url: url.to_owned(),
            mime_type: v
                .get("mime_type")
                .and_then(|m| m.as_str())
                .map(str::to_owned),
            sha256: v.get("sha256").and_then(|m| m.as_str()).map(str::to_owned),
            file_size: v
                .get("file_size")
                .and_then(|n| n.as_u64().or_else(|| n.as_str()?.parse().ok())),
        })
    }

    /// Downloads a media URL with the token (Meta requires it on the download too) into
    /// `dest`, at most `max_bytes`. Returns the bytes written. The URL must be https, or http
    /// on this machine: the token goes with it.
    pub async fn download(
        &self,
        url: &str,
        dest: &std::path::Path,
        max_bytes: u64,
    ) -> Result<u64, ApiError> {
        let action = "download";
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| setup_error(format!("download URL is not a URL: {e}")))?;
        if !(parsed.scheme() == "https" || (parsed.scheme() == "http" && is_loopback(&parsed))) {
            return Err(ApiError::Setup {
                action,
                call_id: None,
                detail: format!(
                    "refusing to send the token to {}://{}: media URLs must be https",
                    parsed.scheme(),
                    parsed.host_str().unwrap_or("")
                ),
            });
        }
        let resp = self
            .http
            .get(parsed)
            .bearer_auth(self.token.expose())
            // A media file takes longer than an API answer: the per-request timeout would cut
            // a long recording, so only the connection and each read are bounded.
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(|e| self.transport_failure(action, None, &e).error)?;
        let status = resp.status();
        if !status.is_success() {
            let body = read_limited(resp, 64 * 1024)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            return Err(ApiError::Http {
                action,
                call_id: None,
                who: self.who(),
                status: status.as_u16(),
                provider: Box::new(parse_provider_error(&body)),
                attempts: 1,
            });
        }
        if resp.content_length().is_some_and(|n| n > max_bytes) {
            return Err(ApiError::BadResponse {
                action,
                call_id: None,
                detail: format!("the file is over {max_bytes} bytes; not downloaded"),
                body_snippet: String::new(),
            });
        }
        let io = |e: std::io::Error| ApiError::Setup {
            action,
            call_id: None,
            detail: format!("cannot write {}: {e}", dest.display()),
        };
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut resp = resp;
        let mut written = 0u64;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    drop(file);
                    let _ = tokio::fs::remove_file(dest).await;
                    return Err(self.transport_failure(action, None, &e).error);
                }
            };
            written += chunk.len() as u64;
            if written > max_bytes {
                drop(file);
                let _ = tokio::fs::remove_file(dest).await;
                return Err(ApiError::BadResponse {
                    action,
                    call_id: None,
                    detail: format!("the file is over {max_bytes} bytes; not downloaded"),
                    body_snippet: String::new(),
                });
            }
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        Ok(written)
    }

    /// Meta-side capture asked of a BSP: refused in words (the config check says so too).
    fn refuse_capture(&self, action: &'static str, capture: &Capture) -> Result<(), ApiError> {
        if capture.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Unsupported {
                action,
                detail: "Meta-side recording and transcription need Meta's Cloud API (bsp.provider = \"meta\")".into(),
            })
        }
    }

    async fn answer(
        &self,
        action: &'static str,
        call_id: &str,
        to: &str,
        sdp: &str,
        capture: &Capture,
    ) -> Result<(), ApiError> {
        let body = match &self.endpoints {
            Endpoints::Bsp { .. } => {
                self.refuse_capture(action, capture)?;
                serde_json::to_value(AnswerRequest {
                    from: &self.from,
                    to,
                    action,
                    call_id,
                    sdp,
                })
            }
            Endpoints::Meta { .. } => serde_json::to_value(meta::Answer {
                messaging_product: "whatsapp",
                call_id,
                action,
                session: meta::Session {
                    sdp_type: "answer",
                    sdp,
                },
                recording: capture.recording.as_ref(),
                transcription: capture.transcription.as_ref(),
            }),
        }
        .map_err(|e| encode_error(action, Some(call_id), e))?;
        self.send(
            Method::POST,
            action,
            Some(call_id),
            self.calls_url(),
            Some(&body),
            Retry::Transient,
        )
        .await
        .map(drop)
    }

    async fn end(&self, action: &'static str, call_id: &str, to: &str) -> Result<(), ApiError> {
        let body = match &self.endpoints {
            Endpoints::Bsp { .. } => serde_json::to_value(EndRequest {
                from: &self.from,
                to,
                action,
                call_id,
            }),
            Endpoints::Meta { .. } => serde_json::to_value(meta::End {
                messaging_product: "whatsapp",
                call_id,
                action,
            }),
        }
        .map_err(|e| encode_error(action, Some(call_id), e))?;
        self.send(
            Method::POST,
            action,
            Some(call_id),
            self.calls_url(),
            Some(&body),
            Retry::Transient,
        )
        .await
        .map(drop)
    }

    /// Sends the request (a JSON `body`, or none for a GET) with retries; returns the body of
    /// the 2xx answer.
    async fn send(
        &self,
        method: Method,
        action: &'static str,
        call_id: Option<&str>,
        url: &str,
        body: Option<&serde_json::Value>,
        retry: Retry,
    ) -> Result<bytes::Bytes, ApiError> {
        let span = info_span!("bsp", action, call_id = call_id.unwrap_or(""));
        async {
            let json = match body {
                Some(b) => Some(
                    serde_json::to_vec(b).map_err(|e| encode_error(action, call_id, e))?,
                ),
                None => None,
            };
            let mut attempt: u32 = 0;
            loop {
                attempt += 1;
                let (mut err, retryable, retry_after) =
                    match self.attempt(&method, action, call_id, url, json.as_deref()).await {
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
        method: &Method,
        action: &'static str,
        call_id: Option<&str>,
        url: &str,
        json: Option<&[u8]>,
    ) -> Result<bytes::Bytes, Failure> {
        let call_id_owned = || call_id.map(str::to_owned);
        tracing::debug!("sending to the BSP");
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(json) = json {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json.to_vec());
        }
        let sent = request.send().await;
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
                who: self.who(),
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

fn encode_error(
    action: &'static str,
    call_id: Option<&str>,
    e: impl std::fmt::Display,
) -> ApiError {
    ApiError::Setup {
        action,
        call_id: call_id.map(str::to_owned),
        detail: format!("cannot encode the request: {e}"),
    }
}

fn no_permission_api(action: &'static str) -> ApiError {
    ApiError::Unsupported {
        action,
        detail: "the BSP's API has no call-permission endpoints: a call without permission fails at connect (#138006); Meta's Cloud API (bsp.provider = \"meta\") has them".into(),
    }
}

fn json_body(action: &'static str, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadResponse {
        action,
        call_id: None,
        detail: format!("the answer is not JSON: {e}"),
        body_snippet: snippet(body),
    })
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
