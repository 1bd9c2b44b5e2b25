//! The sandbox in Meta's Cloud API shape: `POST /{version}/{phone-number-id}/calls`,
//! `GET|POST .../settings`, `GET .../call_permissions`, `POST .../messages` (call-permission
//! requests), `GET /{version}/{media-id}` and the media downloads it points at. Bodies are
//! checked as Meta does (`messaging_product`, `session{sdp_type, sdp}`, no BSP keys such as
//! `from`), errors come back in Meta's shape with its calling codes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::bsp::{BODY_LIMIT, BspState, authorized, error, json_body, success};
use super::world::ActionError;
use crate::api::{Capture, CaptureRequest};

/// Where the calls endpoint of the sandbox's number lives (tests build URLs with it).
pub const VERSION: &str = "v23.0";

fn refusal(status: u16, code: u32, message: impl Into<String>) -> ActionError {
    ActionError {
        status,
        code,
        message: message.into(),
    }
}

/// The path's version and phone-number id must be this sandbox's.
fn check_path(st: &BspState, version: &str, id: &str) -> Result<(), ActionError> {
    if !crate::config::valid_graph_version(version) {
        return Err(refusal(
            400,
            2500,
            format!("Unknown path components: /{version}"),
        ));
    }
    if id != st.world.business().phone_number_id {
        return Err(refusal(
            400,
            100,
            format!(
                "Unsupported post request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation"
            ),
        ));
    }
    Ok(())
}

fn guard(st: &BspState, headers: &HeaderMap, version: &str, id: &str) -> Result<(), ActionError> {
    if !authorized(headers, &st.token) {
        return Err(refusal(401, 190, "Invalid OAuth access token"));
    }
    check_path(st, version, id)
}

fn str_field<'a>(b: &'a Value, field: &str) -> Result<&'a str, ActionError> {
    match b.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(ActionError::bad(format!(
            "(#100) Param {field} must be a non-empty string"
        ))),
        None => Err(ActionError::bad(format!(
            "(#100) The parameter {field} is required"
        ))),
    }
}

/// `recording` / `transcription`: `{"status","purpose","announcement_language"}`.
fn capture_object(b: &Value, field: &str) -> Result<Option<CaptureRequest>, ActionError> {
    let Some(v) = b.get(field) else {
        return Ok(None);
    };
    let bad = |m: String| ActionError::bad(format!("(#100) Invalid parameter {field}: {m}"));
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("status is required".into()))?;
    match status {
        "DISABLED" => return Ok(None),
        "ENABLED" => {}
        other => return Err(bad(format!("status {other:?} is not ENABLED or DISABLED"))),
    }
    let purpose = v.get("purpose").and_then(Value::as_str).unwrap_or("");
    if purpose.trim().is_empty() || purpose.chars().count() > 250 {
        return Err(bad("purpose is required, at most 250 characters".into()));
    }
    let lang = v
        .get("announcement_language")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad("announcement_language is required".into()))?;
    Ok(Some(CaptureRequest {
        status: status.into(),
        purpose: purpose.into(),
        announcement_language: lang.into(),
    }))
}

fn session_sdp<'a>(b: &'a Value, want: &str) -> Result<&'a str, ActionError> {
    let s = b
        .get("session")
        .ok_or_else(|| ActionError::bad("(#100) The parameter session is required"))?;
    let t = s.get("sdp_type").and_then(Value::as_str).unwrap_or("");
    if t != want {
        return Err(ActionError::bad(format!(
            "(#100) Invalid parameter session.sdp_type: {t:?}, expected {want:?}"
        )));
    }
    str_field(s, "sdp")
}

const CALL_KEYS: &[&str] = &[
    "messaging_product",
    "to",
    "recipient",
    "action",
    "session",
    "call_id",
    "biz_opaque_callback_data",
    "recording",
    "transcription",
];

async fn calls(
    State(st): State<Arc<BspState>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if let Err(e) = guard(&st, &headers, &version, &id) {
        return e.into_response();
    }
    let body = match json_body(&raw) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return error(400, 100, "(#100) The request body must be a JSON object"),
        Err(e) => return e.into_response(),
    };
    let action = body
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let call_id = body
        .get("call_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    tracing::debug!(%action, "Graph calls request");
    st.record(&action, call_id, body.clone());
    if let Some(r) = st.injected_failure(&action) {
        return r;
    }
    match handle_call(&st, &action, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle_call(st: &BspState, action: &str, b: &Value) -> Result<Response, ActionError> {
    if b.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err(ActionError::bad(
            "(#100) The parameter messaging_product is required and must be \"whatsapp\"",
        ));
    }
    if let Some(key) = b
        .as_object()
        .and_then(|o| o.keys().find(|k| !CALL_KEYS.contains(&k.as_str())))
    {
        return Err(ActionError::bad(format!(
            "(#100) Param {key} is not a valid parameter of the calls endpoint"
        )));
    }
    let capture = || -> Result<Capture, ActionError> {
        Ok(Capture {
            recording: capture_object(b, "recording")?,
            transcription: capture_object(b, "transcription")?,
        })
    };
    match action {
        "connect" => {
            let to = str_field(b, "to")?;
            if !to.chars().all(|c| c.is_ascii_digit()) {
                return Err(ActionError::bad(format!(
                    "(#100) Invalid parameter to: {to:?} is not a phone number"
                )));
            }
            let sdp = session_sdp(b, "offer")?;
            let opaque = b
                .get("biz_opaque_callback_data")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if opaque.as_ref().is_some_and(|o| o.len() > 512) {
                return Err(ActionError::bad(
                    "(#100) Invalid parameter biz_opaque_callback_data: over 512 characters",
                ));
            }
            let id = st.world.on_connect(to, sdp, opaque, capture()?).await?;
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
            if b.get("recording").is_some() || b.get("transcription").is_some() {
                return Err(ActionError::bad(
                    "(#100) recording and transcription are taken on accept, not pre_accept",
                ));
            }
            let id = str_field(b, "call_id")?;
            st.world
                .on_pre_accept(id, session_sdp(b, "answer")?)
                .await?;
            Ok(success())
        }
        "accept" => {
            let id = str_field(b, "call_id")?;
            st.world
                .on_accept(id, session_sdp(b, "answer")?, capture()?)
                .await?;
            Ok(success())
        }
        "reject" => {
            st.world.on_reject(str_field(b, "call_id")?).await?;
            Ok(success())
        }
        "terminate" => {
            st.world.on_terminate(str_field(b, "call_id")?).await?;
            Ok(success())
        }
        other => Err(ActionError::bad(format!(
            "(#100) Invalid parameter action: {other:?}"
        ))),
    }
}

async fn settings_post(
    State(st): State<Arc<BspState>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if let Err(e) = guard(&st, &headers, &version, &id) {
        return e.into_response();
    }
    let body = match json_body(&raw) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    st.record("call_settings", None, body.clone());
    let Some(calling) = body.get("calling") else {
        return error(400, 100, "(#100) The parameter calling is required");
    };
    if let Err(message) = super::validate_settings(calling, crate::config::Provider::Meta) {
        return error(400, 100, message);
    }
    // Stored as given: a GET reads back what was set, as Meta's does (merged per key).
    if let Ok(mut stored) = st.settings.lock()
        && let (Value::Object(have), Value::Object(new)) = (&mut *stored, calling)
    {
        for (k, v) in new {
            have.insert(k.clone(), v.clone());
        }
    }
    success()
}

async fn settings_get(
    State(st): State<Arc<BspState>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = guard(&st, &headers, &version, &id) {
        return e.into_response();
    }
    let calling = st.settings.lock().map(|s| s.clone()).unwrap_or_default();
    Json(json!({ "calling": calling })).into_response()
}

async fn permissions(
    State(st): State<Arc<BspState>>,
    Path((version, id)): Path<(String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = guard(&st, &headers, &version, &id) {
        return e.into_response();
    }
    let Some(user) = q.get("user_wa_id").filter(|u| !u.is_empty()) else {
        return error(400, 100, "(#100) The parameter user_wa_id is required");
    };
    st.record("call_permissions", None, json!({ "user_wa_id": user }));
    let refused = st.world.faults().no_permission.contains(user.as_str());
    let mut body = st.world.meta.status_json(user, refused);
    body["messaging_product"] = json!("whatsapp");
    Json(body).into_response()
}

async fn messages(
    State(st): State<Arc<BspState>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if let Err(e) = guard(&st, &headers, &version, &id) {
        return e.into_response();
    }
    let body = match json_body(&raw) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    st.record("permission_request", None, body.clone());
    let to = body.get("to").and_then(Value::as_str).unwrap_or("");
    let interactive_type = body
        .get("interactive")
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str);
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp")
        || body.get("type").and_then(Value::as_str) != Some("interactive")
        || interactive_type != Some("call_permission_request")
        || to.is_empty()
        || !to.bytes().all(|c| c.is_ascii_digit())
    {
        return error(
            400,
            100,
            "(#100) The sandbox takes only interactive call_permission_request messages to a phone number",
        );
    }
    match st.world.on_permission_request(to).await {
        Ok(wamid) => Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid}]
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn media_info(
    State(st): State<Arc<BspState>>,
    Path((version, media_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, &st.token) {
        return error(401, 190, "Invalid OAuth access token");
    }
    if !crate::config::valid_graph_version(&version) {
        return error(400, 2500, format!("Unknown path components: /{version}"));
    }
    st.record("media", None, json!({ "id": media_id }));
    let Some(m) = st.world.meta.media(&media_id) else {
        return error(
            404,
            100,
            format!("Unsupported get request. Object with ID '{media_id}' does not exist"),
        );
    };
    let base = st.world.base_url.get().cloned().unwrap_or_default();
    let token = st.world.meta.issue_url(&media_id, super::meta::URL_TTL);
    Json(json!({
        "messaging_product": "whatsapp",
        "url": format!("{base}/sandbox-media/{token}"),
        "mime_type": m.mime_type,
        "sha256": m.sha256_hex,
        "file_size": m.bytes.len(),
        "id": media_id,
    }))
    .into_response()
}

async fn download(
    State(st): State<Arc<BspState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, &st.token) {
        return error(401, 190, "Invalid OAuth access token");
    }
    st.record("download", None, json!({}));
    match st.world.meta.redeem(&token) {
        Some(m) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, m.mime_type.clone())],
            m.bytes,
        )
            .into_response(),
        // Meta's lookaside answers an expired URL with 404.
        None => error(404, 100, "URL signature expired"),
    }
}

pub(crate) fn router(state: Arc<BspState>) -> Router {
    Router::new()
        .route("/{version}/{id}/calls", post(calls))
        .route(
            "/{version}/{id}/settings",
            post(settings_post).get(settings_get),
        )
        .route("/{version}/{id}/call_permissions", get(permissions))
        .route("/{version}/{id}/messages", post(messages))
        .route("/{version}/{media_id}", get(media_info))
        .route("/sandbox-media/{token}", get(download))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
