//! A whole wacall on 127.0.0.1 for end-to-end tests: the sandbox (local BSP + simulated WhatsApp
//! users that are real WebRTC peers), the bridge with its webhook endpoint and hub, and a bot
//! edge connected over WebSocket. Nothing is mocked: signatures, HTTP, ICE, DTLS, SRTP and Opus
//! all run for real.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use wacall::audio::codec::EncoderConfig;
use wacall::bot::runner::{self, BotCommand, BotConfig};
use wacall::bridge::Bridge;
use wacall::call::CallTimeouts;
use wacall::media::MediaConfig;
use wacall::sandbox::{Sandbox, SimState};
use wacall::secret::Secret;

pub const APP_SECRET: &str = "e2e-app-secret";
pub const EDGE_TOKEN: &str = "e2e-edge-token";

pub struct Rig {
    pub sandbox: Sandbox,
    pub bridge: Bridge,
    pub dir: PathBuf,
    pub db: PathBuf,
    bot_cmd: Option<mpsc::Sender<BotCommand>>,
    stop: watch::Sender<bool>,
    bot: Option<JoinHandle<()>>,
}

/// A sandbox and a bridge without a bot, its configuration adjusted by `edit` first (TLS,
/// identities, limits...). The bridge's start is returned as it came: a test may expect a
/// refusal.
pub async fn sandbox_and_bridge(
    history_db: Option<PathBuf>,
    edit: impl FnOnce(&mut wacall::bridge::BridgeConfig),
) -> (Sandbox, Result<Bridge, wacall::bridge::server::BridgeError>) {
    sandbox_and_bridge_as(wacall::config::Provider::Bsp, history_db, edit).await
}

/// [`sandbox_and_bridge`] with the sandbox (and the bridge) in `provider`'s API shape.
pub async fn sandbox_and_bridge_as(
    provider: wacall::config::Provider,
    history_db: Option<PathBuf>,
    edit: impl FnOnce(&mut wacall::bridge::BridgeConfig),
) -> (Sandbox, Result<Bridge, wacall::bridge::server::BridgeError>) {
    init_logs();
    let (sandbox, addr) = Sandbox::start_for_new_bridge_as(provider, APP_SECRET)
        .await
        .unwrap();
    let mut cfg = sandbox.bridge_config(vec![Secret::new(EDGE_TOKEN)], history_db);
    edit(&mut cfg);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let bridge = Bridge::start_on(listener, cfg).await;
    (sandbox, bridge)
}

pub fn bot_config(dir: &std::path::Path) -> BotConfig {
    BotConfig {
        name: "e2e-bot".into(),
        accept_delay: Duration::from_millis(200),
        prompt: None,
        tone_hz: Some(880.0),
        echo: false,
        hangup_after_prompt: false,
        loop_prompt: false,
        max_duration: None,
        record_dir: Some(dir.join("recordings")),
        media: MediaConfig::loopback(),
        encoder: EncoderConfig::default(),
        ready_sessions: 2,
        media_deadlines: wacall::edge::media_watch::MediaDeadlines {
            connect: Duration::from_secs(4),
            ..Default::default()
        },
        voice_ai: None,
        uploads: None,
    }
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

impl Rig {
    /// Starts everything; `bot` = None runs without an edge.
    pub async fn start(bot: Option<BotConfig>, timeouts: CallTimeouts) -> Rig {
        Rig::start_linked(bot, timeouts, false).await
    }

    /// [`Rig::start`] with the sandbox (and the bridge) in `provider`'s API shape.
    pub async fn start_as(
        provider: wacall::config::Provider,
        bot: Option<BotConfig>,
        timeouts: CallTimeouts,
    ) -> Rig {
        Rig::start_linked_as(provider, bot, timeouts, false).await
    }

    /// `local`: the bot is attached inside the bridge's process (as `wacall serve --bot` does)
    /// instead of connecting to the hub over its WebSocket.
    pub async fn start_linked(bot: Option<BotConfig>, timeouts: CallTimeouts, local: bool) -> Rig {
        Rig::start_linked_as(wacall::config::Provider::Bsp, bot, timeouts, local).await
    }

    /// [`Rig::start_linked`] in `provider`'s API shape.
    pub async fn start_linked_as(
        provider: wacall::config::Provider,
        bot: Option<BotConfig>,
        timeouts: CallTimeouts,
        local: bool,
    ) -> Rig {
        init_logs();
        let dir = std::env::temp_dir().join(format!("wacall-e2e-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("history.sqlite3");
        let (sandbox, bridge) = wacall::sandbox::start_with_bridge_as(
            provider,
            APP_SECRET,
            vec![Secret::new(EDGE_TOKEN)],
            Some(db.clone()),
            timeouts,
        )
        .await
        .unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let (mut bot_cmd, mut bot_task) = (None, None);
        if let Some(bot) = bot {
            let (tx, rx) = mpsc::channel(16);
            let hub = bridge.hub_url();
            let link = if local {
                Some(
                    bridge
                        .attach_local_edge(&bot.name, wacall::hub_protocol::EdgeKind::Bot)
                        .await
                        .expect("a local edge"),
                )
            } else {
                None
            };
            bot_task = Some(tokio::spawn(async move {
                match link {
                    Some(link) => runner::run_on(bot, link, rx, stop_rx).await,
                    None => runner::run(bot, &hub, EDGE_TOKEN, rx, stop_rx)
                        .await
                        .unwrap(),
                }
            }));
            bot_cmd = Some(tx);
            bridge
                .wait_for_edges(1, Duration::from_secs(5))
                .await
                .unwrap();
        }
        Rig {
            sandbox,
            bridge,
            dir,
            db,
            bot_cmd,
            stop,
            bot: bot_task,
        }
    }

    pub async fn dial(&self, to: &str) -> Result<String, String> {
        self.dial_watching(to).await.0
    }

    /// Dials and returns the progress stream (`ringing`, `accepted`, `rejected`, `ended: ...`).
    pub async fn dial_watching(
        &self,
        to: &str,
    ) -> (Result<String, String>, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (ptx, prx) = mpsc::unbounded_channel();
        self.bot_cmd
            .as_ref()
            .expect("a bot")
            .send(BotCommand::Dial {
                to: to.into(),
                options: Default::default(),
                done: Some(tx),
                progress: Some(ptx),
            })
            .await
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("dial answered")
            .unwrap()
            .map_err(|e| e.message);
        (r, prx)
    }

    /// Waits until the sandbox says the call ended and the bridge has its final record
    /// (with the edge's quality report when an edge had media for the call).
    pub async fn wait_ended(
        &self,
        call_id: &str,
        timeout: Duration,
    ) -> wacall::call_record::CallRecord {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let user_ended = self
                .sandbox
                .world
                .report(call_id)
                .is_none_or(|r| r.state == SimState::Ended);
            if let Some(r) = self.bridge.record(call_id)
                && user_ended
                && r.end_reason.is_some()
                && (r.edge.is_none() || !Self::had_media(&r) || r.recording.is_some())
            {
                return r;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "call {call_id} did not end in {timeout:?}: bridge {:?}, user {:?}",
                    self.bridge.record(call_id),
                    self.sandbox.world.report(call_id)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether an edge ran media for the call (so its final report, with the recording, follows
    /// the end): every outbound call, and inbound calls once pre-accepted.
    fn had_media(r: &wacall::call_record::CallRecord) -> bool {
        r.direction == wacall::call_record::Direction::Outbound || r.pre_accepted_at.is_some()
    }

    /// The call's history row once `ready` holds (the history writer runs on its own thread).
    pub async fn history_row_when(
        &self,
        call_id: &str,
        timeout: Duration,
        ready: impl Fn(&wacall::call_record::CallRecord) -> bool,
    ) -> wacall::call_record::CallRecord {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let row = self.bridge.history_row(call_id);
            if let Some(r) = row.as_ref().filter(|r| ready(r)) {
                return r.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "history row for {call_id} not as expected within {timeout:?}: {row:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The actions the BSP received for a call, in order.
    pub fn actions(&self, call_id: &str) -> Vec<String> {
        self.sandbox.actions(call_id)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(b) = self.bot {
            let _ = tokio::time::timeout(Duration::from_secs(5), b).await;
        }
        self.bridge.shutdown().await;
        self.sandbox.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads a two-channel recording: (left, right) samples.
pub fn read_stereo(path: &std::path::Path) -> (Vec<i16>, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap();
    assert_eq!(r.spec().channels, 2);
    let s: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let left = s.iter().step_by(2).copied().collect();
    let right = s.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

/// The value of one unlabelled metric in the bridge's `/metrics` (0 when absent).
pub async fn metric_value(bridge_url: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{bridge_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The two channels of a call's finished recording in `dir` (left = the customer, right = the
/// business), waiting for its sidecar: the recorder writes that last, once the WAV is closed.
pub async fn finished_recording(
    dir: &std::path::Path,
    call_id: &str,
    timeout: Duration,
) -> (Vec<i16>, Vec<i16>) {
    let stem_part = format!("_{call_id}");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let sidecar = std::fs::read_dir(dir).ok().and_then(|entries| {
            entries.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && p.file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(|s| s.ends_with(&stem_part))
            })
        });
        if let Some(json) = sidecar {
            return read_stereo(&json.with_extension("wav"));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no finished recording of {call_id} in {} within {timeout:?}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The dominant frequency of the middle half of a channel (skips the start and the end).
pub fn middle_hz(samples: &[i16]) -> f32 {
    let n = samples.len();
    wacall::audio::tone::dominant_frequency(&samples[n / 4..n * 3 / 4], 48_000)
}

/// An edge identity for `[[server.edges]]` in tests: may not dial, default call limit.
pub fn identity(
    name: &str,
    role: wacall::bridge::identity::Role,
    token: &str,
) -> wacall::bridge::identity::EdgeIdentity {
    wacall::bridge::identity::EdgeIdentity {
        name: name.into(),
        role,
        token: Secret::new(token),
        may_dial: false,
        max_calls: None,
    }
}
