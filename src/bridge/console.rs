//! The supervisor console at `/console`: a page embedded in the binary (no CDN: deployments are
//! often offline), signed in with a supervisor's token, showing what happens now (calls, edges,
//! the queue: pushed every second over server-sent events) and the call history (search,
//! filters, paging, CSV export).

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::console_sessions::{COOKIE, cookie_session, set_cookie};
use super::engine::{EngineInput, LiveView};
use super::history::{Search, csv};
use super::identity::{Role, Who};
use super::server::AppState;
use crate::call_record::Direction;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(page))
        .route("/console/app.js", get(script))
        .route("/console/session", post(sign_in))
        .route("/console/logout", post(sign_out))
        .route("/console/api/me", get(me))
        .route("/console/api/live", get(live))
        .route("/console/api/events", get(events))
        .route("/console/api/history", get(history))
        .route("/console/api/calls/{call_id}", get(call_page))
        .route("/console/api/calls/{call_id}/recording", get(recording))
        .route("/console/api/calls/{call_id}/peaks", get(peaks))
}

#[derive(Deserialize)]
struct PeaksQuery {
    n: Option<usize>,
}

async fn peaks(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(call_id): axum::extract::Path<String>,
    Query(q): Query<PeaksQuery>,
) -> Response {
    if supervisor(&s, &headers).is_none() {
        return sign_in_first();
    }
    let Some(path) = recording_path(&s, call_id).await else {
        return hardened((StatusCode::NOT_FOUND, "no recording for this call").into_response());
    };
    let n = q.n.unwrap_or(800);
    let got = tokio::task::spawn_blocking(move || {
        crate::audio::peaks::recording_peaks(std::path::Path::new(&path), n)
    })
    .await;
    match got {
        Ok(Ok(p)) => hardened(axum::Json(p).into_response()),
        Ok(Err(e)) => hardened((StatusCode::NOT_FOUND, e).into_response()),
        Err(_) => hardened(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    }
}

/// The recording a call's history row names: the only path the console ever opens.
async fn recording_path(s: &AppState, call_id: String) -> Option<String> {
    s.read_history(move |h| h.get(&call_id).ok().flatten().and_then(|r| r.recording))
        .await
        .flatten()
}

/// One call for its page: the history row (the sidecar's fields) and its quality over time.
async fn call_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(call_id): axum::extract::Path<String>,
) -> Response {
    if supervisor(&s, &headers).is_none() {
        return sign_in_first();
    }
    let got = s
        .read_history(move |h| {
            let Some(record) = h.get(&call_id)? else {
                return Ok(None);
            };
            let samples = h.samples(&call_id)?;
            Ok::<_, super::history::HistoryError>(Some((record, samples)))
        })
        .await;
    match got {
        Some(Ok(Some((record, samples)))) => {
            let has_recording = record
                .recording
                .as_deref()
                .is_some_and(|p| std::path::Path::new(p).is_file());
            hardened(
                axum::Json(serde_json::json!({
                    "record": record,
                    "quality": samples,
                    "has_recording": has_recording,
                }))
                .into_response(),
            )
        }
        Some(Ok(None)) => hardened((StatusCode::NOT_FOUND, "no such call").into_response()),
        None => hardened((StatusCode::NOT_FOUND, "no history").into_response()),
        Some(Err(e)) => {
            hardened((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
        }
    }
}

/// `Range: bytes=a-b` (or `a-`, or `-n`) over a body of `len` bytes: the inclusive span to send,
/// or `None` when it cannot be satisfied (416). One range only, as browsers ask for audio.
pub fn byte_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().ok()?;
            (len.saturating_sub(n), len - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().ok()?;
            let end = if b.is_empty() {
                len - 1
            } else {
                b.parse::<u64>().ok()?.min(len - 1)
            };
            (start, end)
        }
        (true, true) => return None,
    };
    (start <= end && start < len).then_some((start, end))
}

/// The call's recording (the WAV its history row names), with range requests so the player
/// seeks without downloading the whole file.
async fn recording(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(call_id): axum::extract::Path<String>,
) -> Response {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    if supervisor(&s, &headers).is_none() {
        return sign_in_first();
    }
    let path = recording_path(&s, call_id).await;
    let Some(path) = path else {
        return hardened((StatusCode::NOT_FOUND, "no recording for this call").into_response());
    };
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return hardened(
            (StatusCode::NOT_FOUND, "the recording is not on this host").into_response(),
        );
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| byte_range(r, len));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(None) => {
            return hardened(
                (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                )
                    .into_response(),
            );
        }
    };
    // A range is read whole into memory: cap it, the player asks again for the rest.
    let end = end.min(start + 8 * 1024 * 1024 - 1);
    let mut body = vec![
        0u8;
        if len == 0 {
            0
        } else {
            (end - start + 1) as usize
        }
    ];
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err()
        || file.read_exact(&mut body).await.is_err()
    {
        return hardened(StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    let kind = if path.ends_with(".opus") {
        "audio/ogg"
    } else {
        "audio/wav"
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    hardened(r)
}

/// Headers every console response carries: no framing, no sniffing, scripts only from here.
fn hardened(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn page() -> Response {
    hardened(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response())
}

async fn script() -> Response {
    hardened(
        (
            [(
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            )],
            SCRIPT,
        )
            .into_response(),
    )
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(State(s): State<AppState>, axum::Json(req): axum::Json<SignIn>) -> Response {
    let name = match s.identities.who(req.token.trim()) {
        Some(Who::Named(id)) if id.role == Role::Supervisor => id.name,
        Some(_) => {
            return hardened(
                (
                    StatusCode::FORBIDDEN,
                    "this is an agent's or a bot's token: the console needs a supervisor's",
                )
                    .into_response(),
            );
        }
        None => return hardened((StatusCode::UNAUTHORIZED, "unknown token").into_response()),
    };
    let id = match s.sessions.lock() {
        Ok(mut sessions) => sessions.open(&name, Instant::now()),
        Err(_) => return hardened(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    };
    tracing::info!(supervisor = %name, "console sign-in");
    hardened(
        (
            [(header::SET_COOKIE, set_cookie(&id, s.secure))],
            axum::Json(serde_json::json!({ "name": name })),
        )
            .into_response(),
    )
}

async fn sign_out(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers)
        && let Ok(mut sessions) = s.sessions.lock()
    {
        sessions.close(&id);
    }
    let expired = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0");
    hardened(([(header::SET_COOKIE, expired)], StatusCode::NO_CONTENT).into_response())
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(cookie_session)
        .map(str::to_owned)
}

/// The signed-in supervisor, if the request carries a current session.
fn supervisor(s: &AppState, headers: &HeaderMap) -> Option<String> {
    let id = session_id(headers)?;
    let sessions = s.sessions.lock().ok()?;
    sessions.who(&id, Instant::now()).map(str::to_owned)
}

fn sign_in_first() -> Response {
    hardened((StatusCode::UNAUTHORIZED, "sign in first").into_response())
}

async fn me(State(s): State<AppState>, headers: HeaderMap) -> Response {
    // Not signed in is an answer here (`null`), not an error: the page asks on every load.
    let name = supervisor(&s, &headers);
    hardened(axum::Json(serde_json::json!({ "name": name })).into_response())
}

async fn snapshot(s: &AppState) -> Option<LiveView> {
    let (reply, rx) = tokio::sync::oneshot::channel();
    s.engine.send(EngineInput::Snapshot { reply }).await.ok()?;
    tokio::time::timeout(Duration::from_secs(2), rx)
        .await
        .ok()?
        .ok()
}

async fn live(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if supervisor(&s, &headers).is_none() {
        return sign_in_first();
    }
    match snapshot(&s).await {
        Some(v) => hardened(axum::Json(v).into_response()),
        None => hardened(StatusCode::SERVICE_UNAVAILABLE.into_response()),
    }
}

/// The live view whenever it changes (looked at twice a second; a keep-alive meanwhile), for
/// as long as the page is open and the session lasts.
async fn events(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if supervisor(&s, &headers).is_none() {
        return sign_in_first();
    }
    let session = session_id(&headers).unwrap_or_default();
    let stream = futures_util::stream::unfold(
        (s, session, None::<String>, true),
        |(s, session, last, mut first)| async move {
            loop {
                // Looked at twice a second, so a change is on screen within a second.
                if !first {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                first = false;
                // A signed-out (or expired) session stops its stream.
                let valid = s
                    .sessions
                    .lock()
                    .map(|x| x.who(&session, Instant::now()).is_some())
                    .unwrap_or(false);
                if !valid {
                    return None;
                }
                let view = snapshot(&s).await?;
                let json = serde_json::to_string(&view).ok()?;
                if last.as_deref() != Some(json.as_str()) {
                    let ev = Event::default().event("live").data(json.clone());
                    let next = (s, session, Some(json), false);
                    return Some((Ok::<_, std::convert::Infallible>(ev), next));
                }
            }
        },
    );
    hardened(
        Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response(),
    )
}

#[derive(Deserialize)]
struct HistoryQuery {
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    direction: Option<String>,
    outcome: Option<String>,
    min_s: Option<u64>,
    max_s: Option<u64>,
    page: Option<usize>,
    per_page: Option<usize>,
    format: Option<String>,
}

async fn history(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Response {
    if supervisor(&s, &headers).is_none() {
        return sign_in_first();
    }
    let direction = match q.direction.as_deref().unwrap_or("") {
        "" => None,
        "inbound" => Some(Direction::Inbound),
        "outbound" => Some(Direction::Outbound),
        other => {
            return hardened(
                (
                    StatusCode::BAD_REQUEST,
                    format!("direction {other:?}: inbound or outbound"),
                )
                    .into_response(),
            );
        }
    };
    let csv_out = q.format.as_deref() == Some("csv");
    let search = Search {
        text: q.q,
        from: q.from.filter(|s| !s.is_empty()),
        // A plain date is inclusive: up to the start of the next day.
        to: q.to.filter(|s| !s.is_empty()).map(|t| {
            chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.succ_opt())
                .map_or(t, |d| d.to_string())
        }),
        direction,
        outcome: q.outcome,
        min_duration_s: q.min_s,
        max_duration_s: q.max_s,
        page: q.page.unwrap_or(0),
        // An export takes everything that matches (bounded), a page 50.
        per_page: if csv_out {
            100_000
        } else {
            q.per_page.unwrap_or(50)
        },
    };
    let found = s
        .read_history(move |h| h.search(&search).map(|r| (r, search)))
        .await;
    match found {
        Some(Ok(((rows, _), _))) if csv_out => hardened(
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"wacall-calls.csv\"",
                    ),
                ],
                csv(&rows),
            )
                .into_response(),
        ),
        Some(Ok(((rows, total), search))) => hardened(
            axum::Json(serde_json::json!({
                "total": total,
                "page": search.page,
                "per_page": search.per_page.clamp(1, 1000),
                "rows": rows,
            }))
            .into_response(),
        ),
        Some(Err(e)) => {
            hardened((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
        }
        None => hardened((StatusCode::NOT_FOUND, "no history").into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges_as_browsers_send_them() {
        assert_eq!(byte_range("bytes=0-", 1000), Some((0, 999)));
        assert_eq!(byte_range("bytes=100-199", 1000), Some((100, 199)));
        assert_eq!(byte_range("bytes=900-5000", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=1000-", 1000), None);
        assert_eq!(byte_range("bytes=5-1", 1000), None);
        assert_eq!(byte_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(byte_range("items=0-1", 1000), None);
        assert_eq!(byte_range("bytes=x-", 1000), None);
    }
}
