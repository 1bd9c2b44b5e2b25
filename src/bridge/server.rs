//! `wacall serve`: the HTTP face of the bridge. Webhooks in (signature checked, size limited),
//! edges in over WebSocket, health and Prometheus metrics out, and the history for tools.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::engine::{Engine, EngineConfig, EngineInput, Shared};
use super::history::{History, HistoryWriter};
use super::hub;
use super::metrics::Metrics;
use crate::api::BspClient;
use crate::call::CallTimeouts;
use crate::call_record::CallRecord;
use crate::config::{BspConfig, Config};
use crate::edge::link::HubConnection;
use crate::hub_protocol::EdgeKind;
use crate::secret::Secret;
use crate::webhook;

/// Recent history rows whose call ids are remembered at start (see `Engine::remember_calls`).
const KNOWN_CALLS_AT_START: usize = 10_000;

#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub bsp: BspConfig,
    pub app_secret: Secret,
    pub verify_token: Secret,
    /// Tokens without an identity (`server.edge_tokens`).
    pub edge_tokens: Vec<Secret>,
    /// Edges by identity (`[[server.edges]]`).
    pub edges: Vec<super::identity::EdgeIdentity>,
    pub webhook_path: String,
    pub max_body_bytes: usize,
    pub history_db: Option<PathBuf>,
    pub timeouts: CallTimeouts,
    pub bot_max_calls: usize,
    /// Older (or further ahead) connect webhooks are not answered (`webhook.max_offer_age_s`).
    pub max_offer_age: Duration,
    /// The edge name that takes queued calls whose wait ran out (`routing.overflow`).
    pub overflow: Option<String>,
    /// Answered within this counts toward the service level (`routing.service_level_s`).
    pub service_level: Duration,
    /// `[[routing.groups]]`.
    pub groups: Vec<crate::config::GroupConfig>,
    /// The call settings whose `call_hours` decide when calls are taken (`routing.hours_file`).
    pub hours_file: Option<std::path::PathBuf>,
    /// Where recordings uploaded by edges are stored (`recording.dir`); `None`: not taken.
    pub store_dir: Option<PathBuf>,
    /// Keep uploaded WAVs beside their Ogg Opus form (`recording.keep_wav`).
    pub keep_wav: bool,
    /// Stored recordings are deleted after this long (`recording.keep_days`); `None`: kept.
    pub keep_for: Option<Duration>,
    /// Meta-side recording and transcription asked for on every call (`[recording.meta]`).
    pub meta_capture: crate::config::MetaCaptureConfig,
    /// TLS on the listener: (certificate chain, private key) PEM files.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// Pings to edges and the silence after which one is dropped.
    pub edge_liveness: super::hub::Liveness,
    /// `/health` says `starting` (503) until [`Readiness::set_ready`]: `serve --bot` sets it
    /// once its bot is attached and running. A bridge without one is ready once it listens.
    pub start_ready: bool,
}

/// Whether the bridge can answer a call yet (see [`BridgeConfig::start_ready`]).
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<std::sync::atomic::AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl BridgeConfig {
    pub fn from_config(c: &Config) -> BridgeConfig {
        BridgeConfig {
            bsp: c.bsp.clone(),
            app_secret: c.webhook.app_secret.clone(),
            verify_token: c.webhook.verify_token.clone(),
            edge_tokens: c.server.edge_tokens.clone(),
            edges: c
                .server
                .edges
                .iter()
                .map(|e| super::identity::EdgeIdentity {
                    name: e.name.clone(),
                    role: e.role,
                    token: e.token.clone(),
                    may_dial: e
                        .may_dial
                        .unwrap_or(e.role != super::identity::Role::Supervisor),
                    max_calls: e.max_calls,
                })
                .collect(),
            webhook_path: c.webhook.path.clone(),
            max_body_bytes: c.webhook.max_body_bytes,
            history_db: Some(c.server.history_db.clone()),
            timeouts: CallTimeouts {
                ring: Duration::from_secs(c.routing.ring_timeout_s),
                answer: Duration::from_secs(c.routing.accept_timeout_s),
                max_call: Duration::from_secs(c.routing.max_call_s),
                queue: Duration::from_secs(c.routing.queue_timeout_s),
            },
            bot_max_calls: c.routing.max_calls,
            max_offer_age: Duration::from_secs(c.webhook.max_offer_age_s),
            overflow: c.routing.overflow.clone(),
            service_level: Duration::from_secs(c.routing.service_level_s),
            groups: c.routing.groups.clone(),
            hours_file: c.routing.hours_file.clone(),
            store_dir: Some(c.recording.dir.clone()),
            keep_wav: c.recording.keep_wav,
            keep_for: (c.recording.keep_days > 0)
                .then(|| Duration::from_secs(c.recording.keep_days * 86_400)),
            meta_capture: c.recording.meta.clone(),
            tls: c.server.tls_cert.clone().zip(c.server.tls_key.clone()),
            max_connections: c.server.max_connections,
            header_timeout: Duration::from_secs(c.server.header_timeout_s),
            edge_liveness: super::hub::Liveness::default(),
            start_ready: true,
        }
    }

    /// A bridge for one machine (the sandbox, tests): short BSP timeouts, a fixed verify token,
    /// bots that take many calls.
    pub fn local(
        bsp_url: &str,
        waba_id: &str,
        phone_number: &str,
        token: Secret,
        app_secret: Secret,
        edge_tokens: Vec<Secret>,
        history_db: Option<PathBuf>,
    ) -> BridgeConfig {
        BridgeConfig {
            bsp: BspConfig {
                base_url: bsp_url.to_string(),
                waba_id: waba_id.to_string(),
                phone_number: phone_number.to_string(),
                token,
                timeout_ms: 5_000,
                max_retries: 2,
                ..Default::default()
            },
            app_secret,
            verify_token: Secret::new("sandbox-verify"),
            edge_tokens,
            edges: Vec::new(),
            webhook_path: "/webhook".into(),
            max_body_bytes: 256 * 1024,
            history_db,
            timeouts: CallTimeouts::default(),
            bot_max_calls: 1000,
            max_offer_age: Duration::from_secs(60),
            overflow: None,
            service_level: Duration::from_secs(20),
            groups: Vec::new(),
            hours_file: None,
            store_dir: None,
            keep_wav: false,
            keep_for: None,
            meta_capture: Default::default(),
            tls: None,
            max_connections: 1024,
            header_timeout: Duration::from_secs(30),
            edge_liveness: super::hub::Liveness::default(),
            start_ready: true,
        }
    }
}

#[derive(Clone)]
pub(super) struct AppState {
    pub(super) engine: mpsc::Sender<EngineInput>,
    app_secret: Secret,
    verify_token: Secret,
    pub(super) identities: Arc<super::identity::Identities>,
    liveness: super::hub::Liveness,
    shared: Arc<Mutex<Shared>>,
    pub(super) metrics: Arc<Metrics>,
    /// A reading connection, opened once (the writer thread has its own).
    pub(super) history: Option<Arc<Mutex<History>>>,
    ready: Readiness,
    /// Supervisors signed in to `/console`.
    pub(super) sessions: Arc<Mutex<super::console_sessions::Sessions>>,
    /// The listener serves TLS itself (session cookies get `Secure`).
    pub(super) secure: bool,
    /// Where edges' uploaded recordings go (`recording.dir`); `None`: no uploads taken.
    pub(super) store_dir: Option<PathBuf>,
    pub(super) keep_wav: bool,
}

/// A running bridge.
pub struct Bridge {
    pub addr: SocketAddr,
    /// TLS on the listener (URLs are https:// and wss://).
    secure: bool,
    shared: Arc<Mutex<Shared>>,
    server: JoinHandle<()>,
    engine: JoinHandle<()>,
    stop: watch::Sender<bool>,
    engine_tx: mpsc::Sender<EngineInput>,
    history: Option<Arc<Mutex<History>>>,
    ready: Readiness,
    /// The runtime the bridge's tasks run on (its own thread's).
    runtime: tokio::runtime::Handle,
    thread: Option<ThreadGuard>,
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bsp(#[from] crate::api::ApiError),
    #[error(transparent)]
    History(#[from] super::history::HistoryError),
    #[error(
        "webhook.app_secret is empty: the bridge would accept forged webhooks; set it (or WACALL_APP_SECRET)"
    )]
    NoAppSecret,
    #[error("{0}")]
    Tls(String),
    #[error("routing.hours_file {path}: {message}")]
    Hours { path: String, message: String },
}

/// Reads the `call_hours` of a call-settings file.
fn load_hours(path: &std::path::Path) -> Result<crate::settings::CallHours, BridgeError> {
    let err = |message: String| BridgeError::Hours {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let hint = path.extension().and_then(|e| e.to_str());
    let settings = crate::settings::parse_settings(&text, hint).map_err(|e| err(e.to_string()))?;
    // Not the whole `validate`: a holiday already past must not stop the bridge.
    let hours = settings
        .call_hours
        .ok_or_else(|| err("has no call_hours".to_owned()))?;
    if let Some(tz) = &hours.timezone_id
        && tz.parse::<chrono_tz::Tz>().is_err()
    {
        return Err(err(format!(
            "call_hours.timezone_id {tz:?} is not a time zone"
        )));
    }
    Ok(hours)
}

impl AppState {
    /// Runs `f` on the history's reading connection, on a blocking thread (SQLite must not hold
    /// up the async workers); `None` when the bridge keeps no history.
    pub(super) async fn read_history<T: Send + 'static>(
        &self,
        f: impl FnOnce(&History) -> T + Send + 'static,
    ) -> Option<T> {
        let h = self.history.clone()?;
        tokio::task::spawn_blocking(move || {
            // A panic elsewhere while holding the lock leaves the connection usable.
            let guard = h.lock().unwrap_or_else(|p| p.into_inner());
            f(&guard)
        })
        .await
        .ok()
    }
}

/// The `Authorization: Bearer` token of a request ("" when there is none).
pub(super) fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

impl Bridge {
    pub async fn start(addr: SocketAddr, cfg: BridgeConfig) -> Result<Bridge, BridgeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BridgeError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        Self::start_on(listener, cfg).await
    }

    /// Starts the bridge on `listener`, on a thread and runtime of its own: its work (webhooks,
    /// engine, hub, BSP calls) is short and latency-bound, and on the media runtime each of its
    /// steps would wait behind the set-up and audio work of every other call. The thread asks
    /// for a short scheduler slice, so it runs as soon as it wakes.
    ///
    /// Every way of starting a bridge (serve, standalone dial, the sandbox, the tests) comes
    /// here, so what the tests run is the production start-up.
    pub async fn start_on(listener: TcpListener, cfg: BridgeConfig) -> Result<Bridge, BridgeError> {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let listen_err = |source: std::io::Error| BridgeError::Listen {
            addr: addr.clone(),
            source,
        };
        let listener = listener.into_std().map_err(listen_err)?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("wacall-bridge".into())
            .spawn(move || {
                let favoured = crate::thread_priority::favour_wakeup_latency();
                tracing::debug!(favoured, "bridge thread: short scheduler slice");
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(source) => {
                        let _ = ready_tx.send(Err(BridgeError::Listen {
                            addr: "runtime".into(),
                            source,
                        }));
                        return;
                    }
                };
                rt.block_on(async move {
                    let started = match TcpListener::from_std(listener) {
                        Ok(l) => Self::start_here(l, cfg).await,
                        Err(source) => Err(BridgeError::Listen {
                            addr: "listener".into(),
                            source,
                        }),
                    };
                    let ok = started.is_ok();
                    let _ = ready_tx.send(started);
                    if ok {
                        // Runs the bridge's tasks until `shutdown` (or a dropped Bridge) says
                        // stop.
                        let _ = stop_rx.await;
                    }
                });
                let _ = done_tx.send(());
            })
            .map_err(listen_err)?;
        let mut bridge = ready_rx.await.map_err(|_| {
            listen_err(std::io::Error::other(
                "the bridge thread ended before starting",
            ))
        })??;
        bridge.thread = Some(ThreadGuard { stop, done });
        Ok(bridge)
    }

    /// The bridge's tasks on the current runtime.
    async fn start_here(listener: TcpListener, cfg: BridgeConfig) -> Result<Bridge, BridgeError> {
        if cfg.app_secret.is_empty() {
            return Err(BridgeError::NoAppSecret);
        }
        let hours = match &cfg.hours_file {
            Some(path) => Some(load_hours(path)?),
            None => None,
        };
        let tls = match &cfg.tls {
            Some((cert, key)) => {
                Some(super::listener::tls_config(cert, key).map_err(BridgeError::Tls)?)
            }
            None => None,
        };
        let addr = listener
            .local_addr()
            .map_err(|source| BridgeError::Listen {
                addr: "?".into(),
                source,
            })?;
        let bsp = Arc::new(BspClient::new(&cfg.bsp)?);
        let reader = match &cfg.history_db {
            Some(p) => Some(Arc::new(Mutex::new(History::open(p)?))),
            None => None,
        };
        let history = match &cfg.history_db {
            Some(p) => Some(HistoryWriter::start(History::open(p)?)),
            None => None,
        };
        let shared = Arc::new(Mutex::new(Shared::default()));
        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = mpsc::channel(4096);
        let engine = Engine::new(
            EngineConfig {
                business: cfg.bsp.phone_number.clone(),
                timeouts: cfg.timeouts,
                bot_max_calls: cfg.bot_max_calls,
                max_offer_age: cfg.max_offer_age,
                overflow: cfg.overflow.clone(),
                service_level: cfg.service_level,
                groups: cfg.groups.clone(),
                hours,
                store_dir: cfg.store_dir.clone(),
                keep_wav: cfg.keep_wav,
                meta_capture: cfg.meta_capture.clone(),
            },
            bsp,
            history,
            shared.clone(),
            metrics.clone(),
            tx.clone(),
        );
        // Call ids already in history never become new calls (a replay after a restart).
        let mut engine = engine;
        if let Some(r) = &reader
            && let Ok(h) = r.lock()
        {
            match h.recent_ids(KNOWN_CALLS_AT_START) {
                Ok(ids) => engine.remember_calls(ids),
                Err(e) => warn!(error = %e, "cannot read recent call ids from history"),
            }
        }
        let engine = tokio::spawn(engine.run(rx));
        let ready = Readiness::default();
        if cfg.start_ready {
            ready.set_ready();
        }
        let state = AppState {
            ready: ready.clone(),
            engine: tx.clone(),
            app_secret: cfg.app_secret.clone(),
            verify_token: cfg.verify_token.clone(),
            identities: super::identity::Identities::new(
                cfg.edge_tokens.clone(),
                cfg.edges.clone(),
            ),
            liveness: cfg.edge_liveness,
            shared: shared.clone(),
            metrics: metrics.clone(),
            history: reader.clone(),
            sessions: Arc::default(),
            secure: tls.is_some(),
            store_dir: cfg.store_dir.clone(),
            keep_wav: cfg.keep_wav,
        };
        let app = Router::new()
            .route(&cfg.webhook_path, get(verify).post(webhook_post))
            .route("/hub", get(hub_upgrade))
            .route("/health", get(health))
            .route("/metrics", get(metrics_text))
            .route("/calls", get(calls))
            .route("/calls/{call_id}/quality", get(call_quality))
            .merge(super::console::routes())
            .merge(super::uploads::routes())
            .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
            .with_state(state);
        let (stop, stopped) = watch::channel(false);
        let secure = tls.is_some();
        let listen_cfg = super::listener::ListenerConfig {
            tls,
            max_connections: cfg.max_connections,
            header_timeout: cfg.header_timeout,
        };
        if let Some(store) = &cfg.store_dir {
            super::uploads::count_pending(store, &metrics);
            if let Some(keep) = cfg.keep_for {
                let (store, metrics) = (store.clone(), metrics.clone());
                let mut stop = stopped.clone();
                tokio::spawn(async move {
                    loop {
                        let (s, m) = (store.clone(), metrics.clone());
                        let _ = tokio::task::spawn_blocking(move || {
                            let gone =
                                super::uploads::sweep(&s, keep, std::time::SystemTime::now());
                            m.recordings_expired.add(gone as u64);
                            if gone > 0 {
                                info!(files = gone, "recordings past recording.keep_days deleted");
                            }
                        })
                        .await;
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                            _ = stop.changed() => return,
                        }
                    }
                });
            }
        }
        let server = tokio::spawn(super::listener::serve(
            listener, app, listen_cfg, metrics, stopped,
        ));
        info!(%addr, tls = secure, "bridge listening");
        Ok(Bridge {
            secure,
            addr,
            shared,
            server,
            engine,
            stop,
            engine_tx: tx,
            history: reader,
            ready,
            runtime: tokio::runtime::Handle::current(),
            thread: None,
        })
    }

    /// Marks the bridge ready for `/health` (see [`BridgeConfig::start_ready`]).
    pub fn readiness(&self) -> Readiness {
        self.ready.clone()
    }

    pub fn hub_url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}/hub", self.addr)
    }

    /// Connects an edge that runs in this process (see [`super::hub::attach_local`]).
    pub async fn attach_local_edge(&self, name: &str, kind: EdgeKind) -> Option<HubConnection> {
        // On the bridge's runtime: the link's forwarding task belongs with the engine.
        let (engine, name) = (self.engine_tx.clone(), name.to_owned());
        self.runtime
            .spawn(async move { super::hub::attach_local(engine, &name, kind).await })
            .await
            .ok()
            .flatten()
    }

    pub fn url(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Waits until `n` edges are connected.
    pub async fn wait_for_edges(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.shared.lock().map(|s| s.edges).unwrap_or(0) >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{n} edge(s) did not connect to the hub within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The bridge's record of a call (live or recently ended).
    pub fn record(&self, call_id: &str) -> Option<CallRecord> {
        self.shared.lock().ok()?.records.get(call_id).cloned()
    }

    pub fn setup_ms(&self, call_id: &str) -> Option<u64> {
        self.shared.lock().ok()?.setup_ms.get(call_id).copied()
    }

    /// Live calls by state.
    pub fn phases(&self) -> Vec<(String, usize)> {
        self.shared
            .lock()
            .map(|s| s.phases.iter().map(|(k, v)| (k.to_string(), *v)).collect())
            .unwrap_or_default()
    }

    /// The history row as stored in the database.
    pub fn history_row(&self, call_id: &str) -> Option<CallRecord> {
        self.history.as_ref()?.lock().ok()?.get(call_id).ok()?
    }

    /// What the bridge last learnt of a user's call permission (its history).
    pub fn permission_row(&self, user: &str) -> Option<super::history::PermissionRow> {
        self.history
            .as_ref()?
            .lock()
            .ok()?
            .permissions(Some(user), 1)
            .ok()?
            .pop()
    }

    /// Stops accepting requests, ends live calls at the BSP, and waits for the engine.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        let _ = self.engine_tx.send(EngineInput::Shutdown).await;
        // The engine ends live calls under its own deadline (25 s) and flushes history.
        let _ = tokio::time::timeout(Duration::from_secs(40), self.engine).await;
        if let Some(t) = self.thread {
            let _ = t.stop.send(());
            let _ = t.done.await;
        }
    }
}

/// Ends the bridge's thread: when told (`shutdown`), or when the `Bridge` is dropped.
struct ThreadGuard {
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::sync::oneshot::Receiver<()>,
}

#[derive(Deserialize)]
struct VerifyParams {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

async fn verify(State(s): State<AppState>, Query(q): Query<VerifyParams>) -> Response {
    match webhook::verify_challenge(
        q.mode.as_deref(),
        q.token.as_deref(),
        q.challenge.as_deref(),
        s.verify_token.expose(),
    ) {
        Ok(challenge) => (StatusCode::OK, challenge).into_response(),
        Err(e) => {
            warn!(error = %e, "webhook verification refused");
            (StatusCode::FORBIDDEN, e.to_string()).into_response()
        }
    }
}

async fn webhook_post(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let received = crate::call::Now::new(chrono::Utc::now(), std::time::Instant::now());
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = webhook::verify_signature(s.app_secret.expose().as_bytes(), &body, sig) {
        s.metrics.webhook_bad_signature.inc();
        warn!(error = %e, "webhook refused: signature");
        return (StatusCode::UNAUTHORIZED, "invalid signature").into_response();
    }
    let events = match webhook::parse_webhook(&body) {
        Ok(ev) => ev,
        Err(e) => {
            s.metrics.webhook_malformed.inc();
            warn!(error = %e, "webhook refused: malformed");
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    s.metrics.webhooks.inc();
    for e in &events {
        debug!(call_id = e.call_id().unwrap_or(""), "webhook event");
    }
    if s.engine
        .send(EngineInput::Webhook { events, received })
        .await
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    StatusCode::OK.into_response()
}

async fn hub_upgrade(State(s): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let (ids, engine, liveness) = (s.identities.clone(), s.engine.clone(), s.liveness);
    ws.max_message_size(hub::MAX_MESSAGE)
        .on_upgrade(move |socket| hub::serve_edge(socket, ids, engine, liveness))
}

/// `{"status":"ok"}` once the bridge can answer calls; 503 `{"status":"starting"}` before (a
/// load balancer or orchestrator sends no webhooks to a starting instance).
async fn health(State(s): State<AppState>) -> Response {
    let (edges, live) = s
        .shared
        .lock()
        .map(|sh| (sh.edges, sh.phases.values().sum::<usize>()))
        .unwrap_or((0, 0));
    let ready = s.ready.is_ready();
    let body = axum::Json(serde_json::json!({
        "status": if ready { "ok" } else { "starting" },
        "ready": ready,
        "edges": edges,
        "live_calls": live,
    }));
    if ready {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    let (phases, edges) = s
        .shared
        .lock()
        .map(|sh| {
            (
                sh.phases.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
                sh.edges,
            )
        })
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        s.metrics.render(&phases, edges),
    )
        .into_response()
}

#[derive(Deserialize)]
struct CallsParams {
    limit: Option<usize>,
}

/// One call's quality over time (`[{at, loss_pct, jitter_ms, rtt_ms, levels...}]`, every 2 s):
/// a supervisor's token reads any call, an agent's or a bot's only the calls its edges held.
async fn call_quality(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(call_id): axum::extract::Path<String>,
) -> Response {
    let Some(readable) = s.identities.readable(bearer(&headers)) else {
        return (StatusCode::UNAUTHORIZED, "edge token required").into_response();
    };
    let got = s
        .read_history(move |h| {
            let Some(record) = h.get(&call_id)? else {
                return Ok(None);
            };
            // Someone else's call answers like an unknown one: no hint that it exists.
            if !readable.covers(record.edge.as_deref()) {
                return Ok(None);
            }
            h.samples(&call_id).map(Some)
        })
        .await;
    match got {
        Some(Ok(Some(samples))) => axum::Json(samples).into_response(),
        Some(Ok(None)) => (StatusCode::NOT_FOUND, "no such call").into_response(),
        None => (StatusCode::NOT_FOUND, "no history").into_response(),
        Some(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Recent calls from the history (edges show it; needs an edge token as Bearer).
async fn calls(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallsParams>,
) -> Response {
    // A supervisor reads every call; an agent or bot only its own.
    let Some(readable) = s.identities.readable(bearer(&headers)) else {
        return (StatusCode::UNAUTHORIZED, "edge token required").into_response();
    };
    let limit = q.limit.unwrap_or(50).min(1000);
    let rows = s
        .read_history(move |h| match &readable {
            super::identity::Readable::All => h.recent(limit),
            super::identity::Readable::Names(names) => h.recent_for(names, limit),
        })
        .await;
    match rows {
        Some(Ok(rows)) => axum::Json(rows).into_response(),
        None => axum::Json(Vec::<CallRecord>::new()).into_response(),
        Some(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
