//! The sandbox BSP: the two HTTP endpoints of the BSP page, with Bearer auth, the same checks the
//! real one makes, Meta-shaped answers and errors, and injectable failures.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::world::{ActionError, World};

pub const CALL_PATH: &str = "/whatsapp-bsp-api-endpoint/services/v1/call";
pub const SETTINGS_PATH: &str =
    "/whatsapp-bsp-admin-ext-endpoint-ws/services/v1/phone-number/{waba}/{phone}/call-settings";
pub(crate) const BODY_LIMIT: usize = 256 * 1024;

/// One request the BSP received (tests assert on these).
#[derive(Debug, Clone)]
pub struct Received {
    pub action: String,
    pub call_id: Option<String>,
    pub body: Value,
    /// When it arrived (setup latency = this − when the webhook was sent).
    pub at: std::time::Instant,
}

pub(crate) struct BspState {
    pub world: Arc<World>,
    pub token: String,
    pub log: Mutex<Vec<Received>>,
    /// The number's call settings as last set (Meta's GET reads them back).
    pub settings: Mutex<Value>,
}

#[derive(Deserialize)]
struct ActionBody {
    from: Option<String>,
    to: Option<String>,
    action: Option<String>,
    call_id: Option<String>,
    sdp: Option<String>,
    biz_opaque_callback_data: Option<String>,
}

impl BspState {
    /// Keeps a request for the tests to assert on.
    pub(crate) fn record(&self, action: &str, call_id: Option<String>, body: Value) {
        if let Ok(mut log) = self.log.lock() {
            log.push(Received {
                action: action.to_owned(),
                call_id,
                body,
                at: std::time::Instant::now(),
            });
        }
    }

    /// The injected failure for `action`, if a test asked for one (`Faults::fail_next`).
    pub(crate) fn injected_failure(&self, action: &str) -> Option<Response> {
        let mut faults = self.world.faults();
        let (count, status) = faults.fail_next.get_mut(action)?;
        if *count == 0 {
            return None;
        }
        *count -= 1;
        Some(error(*status, 2, format!("Injected failure for {action}")))
    }
}

/// A request body as JSON, or Meta's 400 saying it is not.
pub(crate) fn json_body(raw: &[u8]) -> Result<Value, ActionError> {
    serde_json::from_slice(raw)
        .map_err(|e| ActionError::bad(format!("Request body is not valid JSON: {e}")))
}

pub(crate) fn error(status: u16, code: u32, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({"error": {
        "message": message.into(),
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "sandbox"
    }});
    (status, Json(body)).into_response()
}

impl IntoResponse for ActionError {
    fn into_response(self) -> Response {
        error(self.status, self.code, self.message)
    }
}

pub(crate) fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    crate::secret::secrets_match(token, given)
}

pub(crate) fn success() -> Response {
    Json(json!({"messaging_product": "whatsapp", "success": true})).into_response()
}

fn required<'a>(field: &str, v: &'a Option<String>) -> Result<&'a str, ActionError> {
    match v.as_deref() {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ActionError::bad(format!(
            "The parameter {field} is required"
        ))),
    }
}

async fn call_action(State(st): State<Arc<BspState>>, headers: HeaderMap, raw: Bytes) -> Response {
    if !authorized(&headers, &st.token) {
        return error(401, 190, "Invalid OAuth access token");
    }
    let body = match json_body(&raw) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let parsed: ActionBody = match serde_json::from_value(body.clone()) {
        Ok(b) => b,
        Err(e) => return error(400, 100, format!("Invalid request: {e}")),
    };
    let action = parsed.action.clone().unwrap_or_default();
    tracing::debug!(%action, call_id = parsed.call_id.as_deref().unwrap_or(""), "BSP request");
    st.record(&action, parsed.call_id.clone(), body);
    if let Some(r) = st.injected_failure(&action) {
        return r;
    }
    match handle(&st, &action, parsed).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(st: &BspState, action: &str, b: ActionBody) -> Result<Response, ActionError> {
    let from = required("from", &b.from)?;
    if from != st.world.business().phone_number {
        return Err(ActionError::bad(format!(
            "Invalid parameter from: {from} is not this business's number"
        )));
    }
    let to = required("to", &b.to)?;
    if !to.chars().all(|c| c.is_ascii_digit()) {
        return Err(ActionError::bad(format!(
            "Invalid parameter to: {to:?} is not a phone number"
        )));
    }
    match action {
        "connect" => {
            let sdp = required("sdp", &b.sdp)?;
            if b.biz_opaque_callback_data
                .as_ref()
                .is_some_and(|o| o.len() > 512)
            {
                return Err(ActionError::bad(
                    "Invalid parameter biz_opaque_callback_data: over 512 characters",
                ));
            }
            let id = st
                .world
                .on_connect(to, sdp, b.biz_opaque_callback_data, Default::default())
                .await?;
            let delay = st.world.faults().connect_reply_delay;
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            Ok(
                Json(json!({"messaging_product": "whatsapp", "calls": [{"id": id}]}))
                    .into_response(),
            )
        }
        "pre_accept" => {
            let id = required("call_id", &b.call_id)?;
            st.world.on_pre_accept(id, required("sdp", &b.sdp)?).await?;
            Ok(success())
        }
        "accept" => {
            let id = required("call_id", &b.call_id)?;
            st.world
                .on_accept(id, required("sdp", &b.sdp)?, Default::default())
                .await?;
            Ok(success())
        }
        "reject" => {
            st.world.on_reject(required("call_id", &b.call_id)?).await?;
            Ok(success())
        }
        "terminate" => {
            st.world
                .on_terminate(required("call_id", &b.call_id)?)
                .await?;
            Ok(success())
        }
        other => Err(ActionError::bad(format!(
            "Invalid parameter action: {other:?}"
        ))),
    }
}

async fn call_settings(
    State(st): State<Arc<BspState>>,
    Path((waba, phone)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if !authorized(&headers, &st.token) {
        return error(401, 190, "Invalid OAuth access token");
    }
    let biz = st.world.business();
    if waba != biz.waba_id || phone != biz.phone_number {
        return error(
            404,
            100,
            format!("Unknown phone number {phone} in WABA {waba}"),
        );
    }
    let body = match json_body(&raw) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    st.record("call_settings", None, body.clone());
    if let Err(message) = super::validate_settings(&body, crate::config::Provider::Bsp) {
        return error(400, 100, message);
    }
    success()
}

pub(crate) fn router(state: Arc<BspState>) -> Router {
    Router::new()
        .route(CALL_PATH, post(call_action))
        .route(SETTINGS_PATH, post(call_settings))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
