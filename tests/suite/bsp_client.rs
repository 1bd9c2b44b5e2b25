//! The BSP client against a real HTTP server on 127.0.0.1 that records every request and
//! answers from a script.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use wacall::api::{ApiError, BspClient};
use wacall::config::BspConfig;
use wacall::secret::Secret;
use wacall::settings::parse_settings;

const TOKEN: &str = "tok-VERY-SECRET-42";
const BIZ: &str = "5215500000001";
const USER: &str = "5215500000002";
const WABA: &str = "100000000000001";
const CALLS_PATH: &str = "/whatsapp-bsp-api-endpoint/services/v1/call";
const SDP: &str =
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is valid JSON")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: body.to_owned(),
        delay: Duration::ZERO,
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    script: VecDeque<Reply>,
}

#[derive(Clone, Default)]
struct Mock(Arc<Mutex<Inner>>);

impl Mock {
    fn push(&self, r: Reply) {
        self.0.lock().unwrap().script.push_back(r);
    }

    fn requests(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().requests.clone()
    }
}

async fn handler(
    State(mock): State<Mock>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let next = {
        let mut inner = mock.0.lock().unwrap();
        inner.requests.push(Recorded {
            method,
            path: uri.path().to_owned(),
            headers,
            body,
        });
        inner.script.pop_front()
    };
    let r =
        next.unwrap_or_else(|| reply(200, r#"{"messaging_product":"whatsapp","success":true}"#));
    tokio::time::sleep(r.delay).await;
    let mut resp = (StatusCode::from_u16(r.status).unwrap(), r.body).into_response();
    for (k, v) in r.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

/// Starts the mock BSP; returns it and its base URL (with a trailing slash, which must not matter).
async fn start() -> (Mock, String) {
    let mock = Mock::default();
    let app = Router::new().fallback(handler).with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (mock, format!("http://{addr}/"))
}

fn config(base: &str) -> BspConfig {
    BspConfig {
        base_url: base.to_owned(),
        waba_id: WABA.to_owned(),
        phone_number: BIZ.to_owned(),
        token: Secret::new(TOKEN),
        timeout_ms: 2000,
        max_retries: 3,
        ..Default::default()
    }
}

fn client(base: &str) -> BspClient {
    BspClient::new(&config(base))
        .unwrap()
        .with_backoff(Duration::from_millis(5))
}

fn assert_common(r: &Recorded, path: &str) {
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, path);
    assert_eq!(r.header("authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(r.header("content-type"), "application/json");
}

fn assert_no_token(e: &ApiError) {
    assert!(!e.to_string().contains(TOKEN), "{e}");
    assert!(!format!("{e:?}").contains(TOKEN), "{e:?}");
}

#[tokio::test]
async fn connect_sends_the_exact_body_and_returns_the_call_id() {
    let (mock, base) = start().await;
    mock.push(reply(
        200,
        r#"{"messaging_product":"whatsapp","calls":[{"id":"wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh"}]}"#,
    ));
    mock.push(reply(200, r#"{"calls":[{"id":"wacid.SECOND"}]}"#));
    let c = client(&base);
    let id = c.connect(USER, SDP, Some("0fS5cePMok")).await.unwrap();
    assert_eq!(id, "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh");
    let id = c.connect(USER, SDP, None).await.unwrap();
    assert_eq!(id, "wacid.SECOND");

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_common(&reqs[0], CALLS_PATH);
    assert_eq!(
        reqs[0].json(),
        json!({"from": BIZ, "to": USER, "action": "connect", "sdp": SDP,
               "biz_opaque_callback_data": "0fS5cePMok"})
    );
    assert_common(&reqs[1], CALLS_PATH);
    assert_eq!(
        reqs[1].json(),
        json!({"from": BIZ, "to": USER, "action": "connect", "sdp": SDP})
    );
}

#[tokio::test]
async fn answer_and_end_actions_send_the_exact_bodies() {
    let (mock, base) = start().await;
    // Any 2xx body, even empty or not JSON, is success.
    mock.push(reply(
        200,
        r#"{"messaging_product":"whatsapp","success":true}"#,
    ));
    mock.push(reply(200, ""));
    mock.push(reply(202, "ok"));
    mock.push(reply(204, ""));
    let c = client(&base);
    let id = "wacid.ABGG";
    c.pre_accept(id, USER, SDP).await.unwrap();
    c.accept(id, USER, SDP).await.unwrap();
    c.reject(id, USER).await.unwrap();
    c.terminate(id, USER).await.unwrap();

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 4);
    for r in &reqs {
        assert_common(r, CALLS_PATH);
    }
    assert_eq!(
        reqs[0].json(),
        json!({"from": BIZ, "to": USER, "action": "pre_accept", "call_id": id, "sdp": SDP})
    );
    assert_eq!(
        reqs[1].json(),
        json!({"from": BIZ, "to": USER, "action": "accept", "call_id": id, "sdp": SDP})
    );
    assert_eq!(
        reqs[2].json(),
        json!({"from": BIZ, "to": USER, "action": "reject", "call_id": id})
    );
    assert_eq!(
        reqs[3].json(),
        json!({"from": BIZ, "to": USER, "action": "terminate", "call_id": id})
    );
}

#[tokio::test]
async fn settings_go_to_the_admin_path_as_given() {
    let (mock, base) = start().await;
    let text = include_str!("../../examples/call-settings.json");
    let settings = parse_settings(text, Some("json")).unwrap();
    let c = client(&base);
    c.set_call_settings(&settings).await.unwrap();

    let partial = parse_settings(r#"{"callback_permission_status":"DISABLED"}"#, None).unwrap();
    c.set_call_settings(&partial).await.unwrap();

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let path = format!(
        "/whatsapp-bsp-admin-ext-endpoint-ws/services/v1/phone-number/{WABA}/{BIZ}/call-settings"
    );
    assert_common(&reqs[0], &path);
    assert_eq!(reqs[0].json(), serde_json::from_str::<Value>(text).unwrap());
    assert_eq!(
        reqs[1].json(),
        json!({"callback_permission_status": "DISABLED"})
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let (mock, base) = start().await;
    mock.push(reply(500, "oops"));
    mock.push(reply(503, r#"{"error":{"message":"busy","code":2}}"#));
    mock.push(reply(200, r#"{"success":true}"#));
    client(&base).terminate("wacid.R", USER).await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.json()["action"] == "terminate"));
}

#[tokio::test]
async fn retries_stop_at_max_retries() {
    let (mock, base) = start().await;
    for _ in 0..10 {
        mock.push(reply(502, "bad gateway"));
    }
    let e = client(&base)
        .accept("wacid.M", USER, SDP)
        .await
        .unwrap_err();
    assert_eq!(mock.requests().len(), 4, "1 try + 3 retries");
    assert_eq!(e.status(), Some(502));
    assert_eq!(e.attempts(), 4);
    assert!(!e.is_permanent());
    assert_eq!(
        e.to_string(),
        "accept of call wacid.M failed: BSP answered 502: bad gateway (after 4 attempts)"
    );
    assert_no_token(&e);
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let (mock, base) = start().await;
    let mut r = reply(429, r#"{"error":{"message":"slow down","code":4}}"#);
    r.headers.push(("retry-after", "0".into()));
    mock.push(r);
    // A long backoff shows Retry-After (0 s) is used instead of it.
    let c = BspClient::new(&config(&base))
        .unwrap()
        .with_backoff(Duration::from_secs(30));
    // A bound, not a measurement: with the 30 s backoff the retry would not come in time.
    tokio::time::timeout(Duration::from_secs(5), c.reject("wacid.T", USER))
        .await
        .expect("Retry-After: 0 was ignored: the client waited for its own 30 s backoff")
        .unwrap();
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn client_errors_are_permanent_and_surface_the_provider_error() {
    let (mock, base) = start().await;
    mock.push(reply(
        400,
        r#"{"error":{"message":"No call permission","type":"OAuthException","code":138006,"error_subcode":2494011,"fbtrace_id":"AbC"}}"#,
    ));
    let e = client(&base).terminate("wacid.X", USER).await.unwrap_err();
    assert_eq!(mock.requests().len(), 1, "no retry on 400");
    assert!(e.is_permanent());
    assert_eq!(e.provider_code(), Some(138006));
    assert_eq!(e.provider_message(), Some("No call permission"));
    assert_eq!(e.action(), "terminate");
    assert_eq!(e.call_id(), Some("wacid.X"));
    assert!(
        e.to_string().starts_with(
            "terminate of call wacid.X failed: BSP answered 400: (#138006) No call permission"
        ),
        "{e}"
    );
    assert_no_token(&e);
}

#[tokio::test]
async fn connect_with_an_unusable_answer_is_a_bad_response() {
    let (mock, base) = start().await;
    mock.push(reply(200, "<html>hello</html>"));
    mock.push(reply(200, r#"{"calls":[]}"#));
    let c = client(&base);
    for _ in 0..2 {
        let e = c.connect(USER, SDP, None).await.unwrap_err();
        assert!(matches!(e, ApiError::BadResponse { .. }), "{e:?}");
        assert!(e.to_string().contains("calls[0].id"), "{e}");
        assert!(e.is_permanent());
        assert_no_token(&e);
    }
    assert!(
        c.connect(USER, SDP, None)
            .await
            .unwrap_err()
            .to_string()
            .contains("success"),
        "the default reply has no id and its body is quoted"
    );
    assert_eq!(mock.requests().len(), 3, "connect is never retried");
}

#[tokio::test]
async fn connect_is_not_retried_on_server_errors() {
    let (mock, base) = start().await;
    mock.push(reply(500, r#"{"error":{"message":"internal","code":1}}"#));
    mock.push(reply(200, r#"{"calls":[{"id":"wacid.NO"}]}"#));
    let e = client(&base).connect(USER, SDP, None).await.unwrap_err();
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(e.status(), Some(500));
    assert_eq!(
        e.to_string(),
        "connect failed: BSP answered 500: (#1) internal"
    );
}

#[tokio::test]
async fn slow_server_times_out_naming_the_action() {
    let (mock, base) = start().await;
    for _ in 0..3 {
        let mut r = reply(200, r#"{"success":true}"#);
        r.delay = Duration::from_millis(1500);
        mock.push(r);
    }
    let mut cfg = config(&base);
    cfg.timeout_ms = 200;
    cfg.max_retries = 1;
    let c = BspClient::new(&cfg)
        .unwrap()
        .with_backoff(Duration::from_millis(5));
    let e = c.terminate("wacid.SLOW", USER).await.unwrap_err();
    assert!(matches!(e, ApiError::Timeout { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "terminate of call wacid.SLOW failed: timed out after 200 ms (after 2 attempts)"
    );
    assert!(!e.is_permanent());
    assert_eq!(
        mock.requests().len(),
        2,
        "a timeout of terminate is retried"
    );

    // connect: a timeout is not retried (the BSP may have placed the call).
    let e = c.connect(USER, SDP, None).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("connect failed: timed out after 200 ms"),
        "{e}"
    );
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn refused_connections_are_retried_even_for_connect() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut cfg = config(&format!("http://{addr}"));
    cfg.max_retries = 2;
    let c = BspClient::new(&cfg)
        .unwrap()
        .with_backoff(Duration::from_millis(5));
    let e = c.connect(USER, SDP, None).await.unwrap_err();
    assert!(matches!(e, ApiError::Unreachable { .. }), "{e:?}");
    assert_eq!(e.attempts(), 3, "{e}");
    assert!(
        e.to_string()
            .starts_with("connect failed: BSP unreachable: "),
        "{e}"
    );
    assert_no_token(&e);
    let e = c.terminate("wacid.Z", USER).await.unwrap_err();
    assert_eq!(e.attempts(), 3, "{e}");
    assert_eq!(e.call_id(), Some("wacid.Z"));
}

/// Hardening: a redirect is not followed (it would carry the bearer token elsewhere), and an
/// oversized answer is not read into memory.
#[tokio::test]
async fn redirects_are_not_followed_and_huge_answers_not_read() {
    let (mock, base) = start().await;
    let mut moved = reply(302, "");
    moved.headers.push(("location", format!("{base}elsewhere")));
    mock.push(moved);
    let c = client(&base);
    let e = c.terminate("wacid.R", USER).await.unwrap_err();
    assert!(e.to_string().contains("302"), "{e}");
    assert_no_token(&e);
    assert_eq!(mock.requests().len(), 1, "the redirect was followed");

    mock.push(reply(200, &"x".repeat(2 * 1024 * 1024)));
    let e = c.connect(USER, SDP, None).await.unwrap_err();
    assert!(e.to_string().contains("over 1048576 bytes"), "{e}");
    assert_eq!(
        mock.requests().len(),
        2,
        "a connect answer must not be retried"
    );
}
