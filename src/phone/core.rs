//! The softphone without its face: hub connection (with automatic reconnect), one call at a time
//! with its media, audio engine, devices and ringtone, and the call history. The UI only reads a
//! [`PhoneView`] snapshot and sends [`Command`]s, so everything here is testable without a window.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::audio::Frame;
use crate::audio::codec::EncoderConfig;
use crate::audio::device::{CaptureDevice, PlaybackDevice};
use crate::audio::recorder::{CallRecorder, recording_stem};
use crate::call_record::{CallRecord, Direction, QualitySummary};
use crate::edge::call_audio::{Behaviour, CallAudio, Outgoing};
use crate::edge::call_flow::{
    self, CallRules, DialFailure, DialOptions, EdgeCall, Input, Output, Phase,
};
use crate::edge::hub_client::{self, HubConnection};
use crate::edge::media_watch::MediaDeadlines;
use crate::hub_protocol::{EdgeKind, EdgeMessage, HubMessage};
use crate::media::{MediaConfig, MediaSession, MediaStats};

/// How the phone is set up; the sign-in fields come from the UI.
#[derive(Clone, Debug)]
pub struct PhoneConfig {
    /// Shown to the bridge (history's `edge`, logs).
    pub name: String,
    pub media: MediaConfig,
    /// Open sound devices at all (false: silent, for machines without any).
    pub use_devices: bool,
    pub input: Option<String>,
    pub output: Option<String>,
    /// Record calls here (two-channel WAV + sidecar); `None` = no recording.
    pub record_dir: Option<PathBuf>,
    /// Wait between reconnect attempts grows up to this.
    pub max_backoff: Duration,
    pub history_limit: usize,
    /// A call whose media has not connected this long after both SDPs are known, fails, or
    /// goes silent once answered is ended (by the bot's rules, `edge::call_flow`): the customer
    /// would hear nothing.
    pub media_deadlines: MediaDeadlines,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        PhoneConfig {
            name: "agent".into(),
            media: MediaConfig::default(),
            use_devices: true,
            input: None,
            output: None,
            record_dir: None,
            max_backoff: Duration::from_secs(10),
            history_limit: 30,
            media_deadlines: MediaDeadlines::default(),
        }
    }
}

/// What the UI asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    SignIn {
        url: String,
        token: String,
    },
    SignOut,
    Answer,
    Reject,
    Hangup,
    Mute(bool),
    Dtmf(char),
    Dial(String),
    SetAvailable(bool),
    SetInput(Option<String>),
    SetOutput(Option<String>),
    RefreshHistory,
    /// Forget the last notice (the agent read it), and the permission offer beside it.
    DismissNotice,
    /// Ask this number for permission to call it (the "Ask for permission" of a refused dial).
    RequestPermission(String),
}

/// Progress of a call we place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialProgress {
    /// Preparing media and asking the bridge.
    Starting,
    /// The bridge placed the call; WhatsApp is reaching the user.
    Calling,
    /// The user's phone rings.
    Ringing,
}

/// The phone's state, as the agent sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum PhoneState {
    SignedOut,
    /// Connecting or reconnecting; `error` says why the last attempt failed.
    Connecting {
        attempt: u32,
        error: Option<String>,
    },
    Idle,
    Ringing {
        call_id: String,
        name: Option<String>,
        number: String,
        since: Instant,
    },
    InCall {
        call_id: String,
        direction: Direction,
        name: Option<String>,
        number: String,
        /// When the call was answered (timer start).
        since: Instant,
    },
    Dialing {
        number: String,
        call_id: Option<String>,
        progress: DialProgress,
        since: Instant,
    },
}

/// A refused dial's way forward (Meta's call permissions), shown beside the notice: ask the
/// user for permission, wait for the answer, then call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionOffer {
    /// The number, as the bridge names it (digits).
    pub number: String,
    pub state: PermissionStep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionStep {
    /// The dial was refused and a request may be sent: "Ask for permission".
    CanAsk,
    /// The request went to the bridge under this id; its answer is awaited.
    Asking { request_id: String },
    /// WhatsApp delivered the request; the user has not answered yet.
    Waiting,
    /// The user allowed calls: "Call now".
    Granted,
}

/// The bridge's permission words, with the reset time added when they do not give it.
pub fn permission_words(message: &str, resets_at: Option<&str>) -> String {
    match resets_at {
        Some(t) if !t.is_empty() && !message.contains(t) => {
            format!("{} (possible again at {t})", message.trim_end_matches('.'))
        }
        _ => message.to_string(),
    }
}

impl PhoneState {
    pub fn is_online(&self) -> bool {
        !matches!(self, PhoneState::SignedOut | PhoneState::Connecting { .. })
    }
}

/// Call quality from the media stats, graded for a glance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    pub loss_pct: f64,
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    pub grade: Grade,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grade {
    Good,
    Fair,
    Poor,
}

impl Grade {
    pub fn as_str(&self) -> &'static str {
        match self {
            Grade::Good => "Good",
            Grade::Fair => "Fair",
            Grade::Poor => "Poor",
        }
    }
}

impl Quality {
    pub fn from_stats(s: &MediaStats) -> Quality {
        let q = QualitySummary::from(s);
        let rtt = q.rtt_ms.unwrap_or(0.0);
        let grade = if q.loss_pct < 2.0 && q.jitter_ms < 30.0 && rtt < 300.0 {
            Grade::Good
        } else if q.loss_pct < 6.0 && q.jitter_ms < 60.0 && rtt < 600.0 {
            Grade::Fair
        } else {
            Grade::Poor
        };
        Quality {
            loss_pct: q.loss_pct,
            jitter_ms: q.jitter_ms,
            rtt_ms: q.rtt_ms,
            grade,
        }
    }
}

/// Everything the UI shows, refreshed by the phone task; the UI copies it each frame.
#[derive(Debug, Clone)]
pub struct PhoneView {
    pub state: PhoneState,
    pub hub_url: String,
    pub available: bool,
    pub muted: bool,
    pub recording: bool,
    /// Levels in dBFS (−96 = silence): what the agent hears and what the agent says.
    pub speaker_db: f32,
    pub mic_db: f32,
    /// The playback device's own meter (what was really pushed to the device), if open.
    pub device_out_db: Option<f32>,
    pub quality: Option<Quality>,
    pub input: Option<String>,
    pub output: Option<String>,
    /// Problems with the sound devices, in plain words (the call goes on silently).
    pub device_problem: Option<String>,
    /// The last thing worth telling the agent ("Call ended: the customer hung up").
    pub notice: Option<String>,
    pub dtmf_sent: String,
    /// Keys the customer pressed during this call (menus, PINs), as they arrived.
    pub dtmf_received: String,
    pub history: Vec<CallRecord>,
    pub history_error: Option<String>,
    /// Counts calls that ended, so tests and the UI can notice a new end.
    pub calls_ended: u64,
    /// Callers waiting in the bridge's queue, and since when the longest has waited.
    pub queue_waiting: usize,
    pub queue_oldest_since: Option<Instant>,
    /// What the agent may do about a dial refused for want of call permission.
    pub permission: Option<PermissionOffer>,
}

impl PhoneView {
    /// A new call (ringing or dialled) starts with no notice, unmuted, no keys, no grade, and
    /// no permission offer.
    fn begin_call(&mut self) {
        self.notice = None;
        self.permission = None;
        self.muted = false;
        self.dtmf_sent.clear();
        self.dtmf_received.clear();
        self.quality = None;
    }

    /// `NoPermission`: the dial was not placed; say why, and offer a request if one may be sent.
    fn permission_refused(
        &mut self,
        to: &str,
        message: &str,
        can_request: bool,
        resets_at: Option<&str>,
    ) {
        self.notice = Some(permission_words(message, resets_at));
        self.permission = can_request.then(|| PermissionOffer {
            number: to.to_string(),
            state: PermissionStep::CanAsk,
        });
    }

    /// The agent pressed "Ask for permission": false if there is nothing to ask for `number`.
    fn permission_asking(&mut self, number: &str, request_id: &str) -> bool {
        let Some(offer) = self
            .permission
            .as_mut()
            .filter(|o| o.number == number && o.state == PermissionStep::CanAsk)
        else {
            return false;
        };
        offer.state = PermissionStep::Asking {
            request_id: request_id.to_string(),
        };
        self.notice = Some(format!("Asking {number} for permission…"));
        true
    }

    /// The bridge's answer to our request (`PermissionRequest`, or an `Error` for it, which has
    /// `sent` false): false if it is not about the request we are waiting for.
    fn permission_request_answered(
        &mut self,
        request_id: &str,
        sent: bool,
        message: &str,
        resets_at: Option<&str>,
    ) -> bool {
        let ours = self.permission.as_ref().is_some_and(
            |o| matches!(&o.state, PermissionStep::Asking { request_id: r } if r == request_id),
        );
        if !ours {
            return false;
        }
        self.notice = Some(permission_words(message, resets_at));
        if sent {
            if let Some(o) = self.permission.as_mut() {
                o.state = PermissionStep::Waiting;
            }
        } else {
            self.permission = None;
        }
        true
    }

    /// The user answered (`Permission`). During a call only the words are shown: "Call now"
    /// belongs to the dialer.
    fn permission_answered(&mut self, to: &str, granted: bool, status: &str, in_call: bool) {
        self.notice = Some(if granted {
            format!("{to} allowed calls ({status})")
        } else {
            format!("{to} declined calls")
        });
        if !in_call {
            self.permission = granted.then(|| PermissionOffer {
                number: to.to_string(),
                state: PermissionStep::Granted,
            });
        }
    }
}

impl Default for PhoneView {
    fn default() -> Self {
        PhoneView {
            state: PhoneState::SignedOut,
            hub_url: String::new(),
            available: true,
            muted: false,
            recording: false,
            speaker_db: -96.0,
            mic_db: -96.0,
            device_out_db: None,
            quality: None,
            input: None,
            output: None,
            device_problem: None,
            notice: None,
            dtmf_sent: String::new(),
            dtmf_received: String::new(),
            history: Vec::new(),
            history_error: None,
            calls_ended: 0,
            queue_waiting: 0,
            queue_oldest_since: None,
            permission: None,
        }
    }
}

/// The UI's side: send commands, read the snapshot.
#[derive(Clone)]
pub struct PhoneHandle {
    tx: mpsc::UnboundedSender<Command>,
    view: Arc<Mutex<PhoneView>>,
}

impl PhoneHandle {
    pub fn send(&self, c: Command) {
        let _ = self.tx.send(c);
    }

    pub fn view(&self) -> PhoneView {
        self.view.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Called whenever the view changed (the UI asks for a repaint).
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// Starts the phone task on the current tokio runtime.
pub fn start(cfg: PhoneConfig, notify: Notify) -> PhoneHandle {
    spawn(cfg, notify, None)
}

/// Starts the phone already linked to a hub (an in-process bridge's local edge, or a test
/// playing the bridge over channels): online at once, without signing in. When that link
/// ends the phone is signed out (there is nothing to reconnect to).
pub fn start_linked(cfg: PhoneConfig, notify: Notify, conn: HubConnection) -> PhoneHandle {
    spawn(cfg, notify, Some(conn))
}

fn spawn(cfg: PhoneConfig, notify: Notify, linked: Option<HubConnection>) -> PhoneHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (itx, irx) = mpsc::unbounded_channel();
    let view = Arc::new(Mutex::new(PhoneView {
        input: cfg.input.clone(),
        output: cfg.output.clone(),
        ..PhoneView::default()
    }));
    let phone = Phone {
        cfg,
        view: view.clone(),
        notify,
        devices: Arc::new(Mutex::new(Devices::default())),
        available: true,
        call: None,
        credentials: None,
        uploader: None,
        reopens: [(0, None); 2],
        itx,
    };
    tokio::spawn(phone.run(rx, irx, linked));
    PhoneHandle { tx, view }
}

/// Turns a number as typed ("+52 1 55-1234 5678") into digits, or says what is wrong.
pub fn normalize_number(input: &str) -> Result<String, String> {
    let t = input.trim();
    if t.is_empty() {
        return Err("Type a number first.".into());
    }
    let mut digits = String::new();
    for (i, c) in t.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '(' | ')' | '.' => {}
            '+' if i == 0 => {}
            _ => return Err(format!("\"{c}\" can't be part of a phone number.")),
        }
    }
    if digits.len() < 7 {
        return Err("Too short: include the country code, e.g. 52 155 1234 5678.".into());
    }
    if digits.len() > 15 {
        return Err("Too long: a phone number has at most 15 digits.".into());
    }
    Ok(digits)
}

/// The bridge's error text in words an agent understands.
pub fn plain_error(message: &str) -> String {
    let m = message.to_ascii_lowercase();
    if m.contains("138006") || m.contains("permission") {
        "This customer has not allowed calls from this business yet. Ask them to accept a call \
         permission request in WhatsApp first."
            .into()
    } else if m.contains("not a phone number") {
        "That is not a phone number: use 7 to 15 digits, country code first.".into()
    } else if m.contains("429") || m.contains("rate") {
        "Too many calls right now. Wait a minute and try again.".into()
    } else if m.contains("401") || m.contains("403") || m.contains("token") {
        "The bridge is not allowed to place calls (check its BSP token).".into()
    } else {
        format!("The call could not be placed: {message}")
    }
}

/// Why a call ended, in plain words.
pub fn plain_end_reason(reason: &str) -> String {
    // Reasons may carry a detail after a colon (`media_failed: ICE/DTLS did not connect...`).
    let (word, detail) = reason.split_once(':').unwrap_or((reason, ""));
    match word.trim() {
        "media_failed" if detail.contains("no RTP") => {
            return "the customer's audio stopped arriving".into();
        }
        "media_failed" if detail.contains("after the call connected") => {
            return "the connection to the customer was lost".into();
        }
        "media_failed" => return "the call's audio could not connect".into(),
        "max_call_length" => return "it reached the maximum call length".into(),
        _ => {}
    }
    match reason {
        "customer_hangup" | "remote_hangup" => "the customer hung up".into(),
        "business_hangup" | "agent_hangup" | "local_hangup" => "you hung up".into(),
        "rejected" => "the customer declined".into(),
        "no_answer" => "no answer".into(),
        "failed" | "media_failed" => "the connection failed".into(),
        other => other.replace('_', " "),
    }
}

/// http(s)://host for a hub URL like ws://host/hub.
pub fn http_base(hub_url: &str) -> String {
    let u = hub_url.trim().trim_end_matches('/');
    let u = u.strip_suffix("/hub").unwrap_or(u);
    if let Some(rest) = u.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = u.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        u.to_string()
    }
}

/// A hub URL as typed ("127.0.0.1:8080", "http://host:8080") made into ws://host/hub.
pub fn normalize_hub_url(input: &str) -> String {
    let u = input.trim().trim_end_matches('/');
    let u = if let Some(r) = u.strip_prefix("https://") {
        format!("wss://{r}")
    } else if let Some(r) = u.strip_prefix("http://") {
        format!("ws://{r}")
    } else if u.starts_with("ws://") || u.starts_with("wss://") {
        u.to_string()
    } else {
        format!("ws://{u}")
    };
    let after_scheme = u.split_once("://").map(|(_, r)| r).unwrap_or("");
    if after_scheme.contains('/') {
        u
    } else {
        format!("{u}/hub")
    }
}

// ---------------------------------------------------------------------------------------------
// Devices and the phone's audio behaviour
// ---------------------------------------------------------------------------------------------

static DEVICE_OPEN: Mutex<()> = Mutex::new(());

#[derive(Default)]
struct Devices {
    capture: Option<(CaptureDevice, mpsc::Receiver<Frame>)>,
    playback: Option<PlaybackDevice>,
}

/// Microphone → call, call → speaker. Silence when a device is missing or failed.
struct PhoneAudio {
    devices: Arc<Mutex<Devices>>,
}

impl Behaviour for PhoneAudio {
    fn next(&mut self, heard: &Frame, _arrived: &[Bytes]) -> Outgoing {
        let Ok(mut d) = self.devices.lock() else {
            return Outgoing::Silence;
        };
        if let Some(p) = d.playback.as_ref() {
            p.push(heard);
        }
        let Some((_, rx)) = d.capture.as_mut() else {
            return Outgoing::Silence;
        };
        // Keep latency low: if the microphone got ahead, drop to the newest frames.
        let mut latest = None;
        let mut n = 0;
        while let Ok(f) = rx.try_recv() {
            latest = Some(f);
            n += 1;
            if n >= 1 && rx.len() <= 2 {
                break;
            }
        }
        match latest {
            Some(f) => Outgoing::Pcm(f),
            None => Outgoing::Silence,
        }
    }
}

/// A calm two-tone ring (440 + 480 Hz), 1 s on, 2 s off.
pub struct Ringtone {
    n: u64,
}

impl Ringtone {
    pub fn new() -> Self {
        Ringtone { n: 0 }
    }

    pub fn next_frame(&mut self) -> Frame {
        let mut f = Frame::silence();
        let rate = crate::audio::frame::SAMPLE_RATE as f64;
        for s in f.samples_mut() {
            let t = self.n as f64 / rate;
            let cycle = t % 3.0;
            if cycle < 1.0 {
                let v = (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                    + (2.0 * std::f64::consts::PI * 480.0 * t).sin();
                // Soft edges so the bursts do not click.
                let env = (cycle / 0.02).min(1.0).min((1.0 - cycle) / 0.02);
                *s = (v * 0.12 * env * i16::MAX as f64) as i16;
            }
            self.n += 1;
        }
        f
    }
}

impl Default for Ringtone {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------------
// The phone task
// ---------------------------------------------------------------------------------------------

/// Results of work the phone task hands off (so it never blocks on media or HTTP).
enum Internal {
    /// Media for an incoming call is ready (or not: why, and whether the offer itself is
    /// unusable).
    Answered {
        call_id: String,
        result: Result<(Arc<MediaSession>, String), (String, bool)>,
    },
    /// Media for a call we place is ready (or not).
    Offered {
        request_id: String,
        result: Result<(Arc<MediaSession>, String), String>,
    },
    History(Result<Vec<CallRecord>, String>),
    Devices {
        which: Which,
        result: Result<DeviceOpened, String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Input = 0,
    Output = 1,
}

enum DeviceOpened {
    Capture(CaptureDevice, mpsc::Receiver<Frame>),
    Playback(PlaybackDevice),
}

/// How long a call the agent ended waits for the bridge's `Ended` before it is torn down
/// anyway.
const END_WAIT: Duration = Duration::from_secs(5);

/// The one call the agent has (agents take one call at a time). Its flow is the edge-call
/// machine's ([`EdgeCall`]); the rest is its IO (media, audio) and how it is shown.
struct Call {
    flow: EdgeCall,
    direction: Direction,
    number: String,
    name: Option<String>,
    media: Option<Arc<MediaSession>>,
    audio: Option<CallAudio>,
    /// The customer's key presses, from the audio engine.
    dtmf_in: Option<mpsc::Receiver<char>>,
    /// Audio flows and the timer runs (the machine said `AudioOn`).
    live_since: Option<Instant>,
    stats_at: Instant,
    /// The words the end is told in when the agent (or the set-up) ended the call; they win
    /// over the bridge's reason. Empty: the end is not told (a dial that failed says why
    /// itself).
    own_words: Option<String>,
    /// Why the call ended, as the bridge said (or the watchdog, until the bridge says).
    end_reason: Option<String>,
    /// What a failed dial's words come from.
    dial_trouble: Option<DialTrouble>,
}

/// Where a dial's failure came from, for the words the agent is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DialTrouble {
    /// Our offer could not be built.
    Setup,
    /// The bridge refused it for want of call permission.
    Permission,
}

struct Credentials {
    url: String,
    token: String,
}

struct Phone {
    cfg: PhoneConfig,
    view: Arc<Mutex<PhoneView>>,
    notify: Notify,
    devices: Arc<Mutex<Devices>>,
    available: bool,
    call: Option<Call>,
    credentials: Option<Credentials>,
    /// The recording uploader, for the bridge and token it was started with.
    uploader: Option<((String, String), Arc<tokio::sync::Notify>)>,
    /// Per device (input, output): reopen attempts during this call and when the last was.
    reopens: [(u32, Option<Instant>); 2],
    /// Where work handed off (media set-up, devices, history) reports back.
    itx: mpsc::UnboundedSender<Internal>,
}

enum Online {
    SignedOut,
    Lost(String),
}

impl Phone {
    fn update(&self, f: impl FnOnce(&mut PhoneView)) {
        if let Ok(mut v) = self.view.lock() {
            f(&mut v);
        }
        (self.notify)();
    }

    fn set_state(&self, s: PhoneState) {
        self.update(|v| v.state = s);
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut irx: mpsc::UnboundedReceiver<Internal>,
        linked: Option<HubConnection>,
    ) {
        let itx = self.itx.clone();
        if let Some(conn) = linked {
            info!(edge_id = %conn.edge_id, "linked to the hub");
            if let Online::Lost(why) = self.online(conn, &mut rx, &itx, &mut irx).await {
                warn!(%why, "hub link lost");
                self.update(|v| v.notice = Some(format!("Connection lost ({why}).")));
            }
            if let Some(call) = self.call.take() {
                self.end_call(
                    call,
                    None,
                    "the connection to the bridge was lost".into(),
                    None,
                    true,
                )
                .await;
            }
            if rx.is_closed() {
                return;
            }
        }
        loop {
            // Signed out: wait for credentials.
            while self.credentials.is_none() {
                self.set_state(PhoneState::SignedOut);
                match rx.recv().await {
                    Some(Command::SignIn { url, token }) => {
                        let url = normalize_hub_url(&url);
                        self.update(|v| {
                            v.hub_url = url.clone();
                            v.notice = None;
                        });
                        self.credentials = Some(Credentials { url, token });
                    }
                    Some(c) => self.offline_command(c, &itx),
                    None => return,
                }
            }
            // Connect, with backoff, until signed out.
            let mut attempt = 0u32;
            let mut last_error: Option<String> = None;
            let conn = loop {
                attempt += 1;
                self.set_state(PhoneState::Connecting {
                    attempt,
                    error: last_error.clone(),
                });
                let Some(c) = self.credentials.as_ref() else {
                    break None;
                };
                match hub_client::connect(&c.url, &c.token, &self.cfg.name, EdgeKind::Agent).await {
                    Ok(conn) => {
                        // Recordings go to the bridge (what an earlier run left unsent first),
                        // one uploader per signed-in bridge and token.
                        if let Some(dir) = self.cfg.record_dir.clone() {
                            let key = (c.url.clone(), c.token.clone());
                            if self.uploader.as_ref().map(|u| &u.0) != Some(&key) {
                                let more = Arc::new(tokio::sync::Notify::new());
                                crate::edge::upload::spawn(
                                    http_base(&c.url),
                                    c.token.clone(),
                                    dir,
                                    more.clone(),
                                );
                                self.uploader = Some((key, more));
                            }
                        }
                        break Some(conn);
                    }
                    Err(e) => {
                        let refused = matches!(e, hub_client::HubError::Refused { .. });
                        last_error = Some(e.to_string());
                        warn!(error = %e, attempt, "hub connection failed");
                        if refused {
                            // A wrong token will not get better by retrying.
                            self.credentials = None;
                            self.update(|v| {
                                v.notice =
                                    Some(format!("Sign-in refused: {}. Check the agent token.", e))
                            });
                            break None;
                        }
                    }
                }
                let wait =
                    Duration::from_millis(500 * 2u64.pow(attempt.min(6))).min(self.cfg.max_backoff);
                self.set_state(PhoneState::Connecting {
                    attempt,
                    error: last_error.clone(),
                });
                let sleep = tokio::time::sleep(wait);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        c = rx.recv() => match c {
                            None => return,
                            Some(Command::SignOut) => { self.credentials = None; break; }
                            Some(Command::SignIn { url, token }) => {
                                let url = normalize_hub_url(&url);
                                self.update(|v| v.hub_url = url.clone());
                                self.credentials = Some(Credentials { url, token });
                                break;
                            }
                            Some(c) => self.offline_command(c, &itx),
                        },
                        Some(i) = irx.recv() => self.internal(i, None).await,
                    }
                }
                if self.credentials.is_none() {
                    break None;
                }
            };
            let Some(conn) = conn else { continue };
            info!(edge_id = %conn.edge_id, "signed in to the hub");
            match self.online(conn, &mut rx, &itx, &mut irx).await {
                Online::SignedOut => {
                    self.credentials = None;
                }
                Online::Lost(why) => {
                    warn!(%why, "hub connection lost; reconnecting");
                    self.update(|v| {
                        v.notice = Some(format!("Connection lost ({why}); reconnecting…"))
                    });
                }
            }
            if let Some(call) = self.call.take() {
                self.end_call(
                    call,
                    None,
                    "the connection to the bridge was lost".into(),
                    None,
                    true,
                )
                .await;
            }
            if rx.is_closed() {
                return;
            }
        }
    }

    /// Commands that make sense while not connected.
    fn offline_command(&mut self, c: Command, itx: &mpsc::UnboundedSender<Internal>) {
        match c {
            Command::SetAvailable(a) => {
                self.available = a;
                self.update(|v| v.available = a);
            }
            Command::SetInput(name) => {
                self.cfg.input = name.clone();
                self.update(|v| v.input = name);
            }
            Command::SetOutput(name) => {
                self.cfg.output = name.clone();
                self.update(|v| v.output = name);
            }
            Command::DismissNotice => self.update(|v| {
                v.notice = None;
                v.permission = None;
            }),
            Command::RefreshHistory => self.fetch_history(itx),
            Command::SignOut => self.credentials = None,
            other => debug!(?other, "ignored while offline"),
        }
    }

    async fn online(
        &mut self,
        conn: HubConnection,
        rx: &mut mpsc::UnboundedReceiver<Command>,
        itx: &mpsc::UnboundedSender<Internal>,
        irx: &mut mpsc::UnboundedReceiver<Internal>,
    ) -> Online {
        let HubConnection {
            tx: hub,
            rx: mut hub_rx,
            ..
        } = conn;
        let _ = hub
            .send(EdgeMessage::Available {
                available: self.available,
            })
            .await;
        self.set_state(PhoneState::Idle);
        // Requests made on an earlier link are not answered on this one.
        self.update(|v| {
            v.notice = None;
            v.permission = None;
        });
        self.fetch_history(itx);
        let mut meter = tokio::time::interval(Duration::from_millis(100));
        meter.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut ring_tick = tokio::time::interval(Duration::from_millis(20));
        ring_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut ringtone = Ringtone::new();
        loop {
            let ringing = self.is_ringing();
            let deadline = self
                .call
                .as_ref()
                .and_then(|c| c.flow.next_deadline())
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                c = rx.recv() => match c {
                    None => return Online::SignedOut,
                    Some(Command::SignOut) => {
                        self.hang_up_and_end(&hub).await;
                        return Online::SignedOut;
                    }
                    Some(c) => self.command(c, &hub, itx).await,
                },
                m = hub_rx.recv() => match m {
                    None => return Online::Lost("the bridge closed the connection".into()),
                    Some(m) => self.hub_message(m, &hub, itx).await,
                },
                Some(i) = irx.recv() => self.internal(i, Some(&hub)).await,
                _ = ring_tick.tick(), if ringing => {
                    let frame = ringtone.next_frame();
                    if let Ok(d) = self.devices.lock() && let Some(p) = d.playback.as_ref() {
                        p.push(&frame);
                    }
                }
                _ = meter.tick() => self.tick(&hub, itx).await,
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    let outs = self.feed(Input::Tick);
                    self.apply(outs, Some(&hub)).await;
                }
            }
            if !ringing {
                ringtone = Ringtone::new();
            }
        }
    }

    fn is_ringing(&self) -> bool {
        self.view
            .lock()
            .map(|v| matches!(v.state, PhoneState::Ringing { .. }))
            .unwrap_or(false)
    }

    async fn command(
        &mut self,
        c: Command,
        hub: &mpsc::Sender<EdgeMessage>,
        itx: &mpsc::UnboundedSender<Internal>,
    ) {
        match c {
            Command::SignIn { .. } | Command::SignOut => {}
            Command::SetAvailable(a) => {
                self.available = a;
                self.update(|v| v.available = a);
                let _ = hub.send(EdgeMessage::Available { available: a }).await;
            }
            // The timer starts when the machine says audio flows (the bridge confirmed).
            Command::Answer => self.decide(Input::Accept, "", hub).await,
            Command::Reject => {
                self.decide(Input::Decline, "you declined the call", hub)
                    .await
            }
            Command::Hangup => {
                let placed = self
                    .call
                    .as_ref()
                    .is_some_and(|c| c.flow.call_id().is_some());
                let why = if placed {
                    "you hung up"
                } else {
                    "you cancelled the call"
                };
                self.decide(Input::Hangup, why, hub).await;
            }
            Command::Mute(m) => {
                if let Some(a) = self.call.as_ref().and_then(|c| c.audio.as_ref()) {
                    a.set_muted(m);
                }
                self.update(|v| v.muted = m);
            }
            Command::Dtmf(d) => {
                let Some(call) = self.call.as_ref() else {
                    return;
                };
                if call.flow.phase() != Phase::Live {
                    return;
                }
                if let Some(media) = call.media.clone() {
                    match media.send_dtmf(d).await {
                        Ok(()) => self.update(|v| v.dtmf_sent.push(d)),
                        Err(e) => warn!(error = %e, "DTMF not sent"),
                    }
                }
            }
            Command::Dial(input) => {
                if self.call.is_some() {
                    self.update(|v| v.notice = Some("Finish the current call first.".into()));
                    return;
                }
                let number = match normalize_number(&input) {
                    Ok(n) => n,
                    Err(e) => {
                        self.update(|v| v.notice = Some(e));
                        return;
                    }
                };
                let request_id = format!("dial-{:016x}", rand::random::<u64>());
                let (flow, first) =
                    EdgeCall::outbound(&request_id, &number, DialOptions::default(), self.rules());
                self.call = Some(Call::new(flow, Direction::Outbound, number.clone(), None));
                self.update(|v| {
                    v.state = PhoneState::Dialing {
                        number: number.clone(),
                        call_id: None,
                        progress: DialProgress::Starting,
                        since: Instant::now(),
                    };
                    v.begin_call();
                });
                self.open_devices(itx);
                self.apply(first, Some(hub)).await;
            }
            Command::SetInput(name) => {
                self.cfg.input = name.clone();
                self.update(|v| v.input = name);
                if self.call.is_some() {
                    self.open_device(Which::Input, itx);
                }
            }
            Command::SetOutput(name) => {
                self.cfg.output = name.clone();
                self.update(|v| v.output = name);
                if self.call.is_some() {
                    self.open_device(Which::Output, itx);
                }
            }
            Command::RefreshHistory => self.fetch_history(itx),
            Command::DismissNotice => self.update(|v| {
                v.notice = None;
                v.permission = None;
            }),
            Command::RequestPermission(number) => {
                if self.call.is_some() {
                    return;
                }
                let request_id = format!("permission-{:016x}", rand::random::<u64>());
                let mut asking = false;
                self.update(|v| asking = v.permission_asking(&number, &request_id));
                if !asking {
                    debug!("no permission request to send for this number");
                    return;
                }
                info!(to = %crate::pii::Number(&number), "asking for call permission");
                let _ = hub
                    .send(EdgeMessage::RequestPermission {
                        request_id,
                        to: number,
                        text: None,
                    })
                    .await;
            }
        }
    }

    async fn hub_message(
        &mut self,
        m: HubMessage,
        hub: &mpsc::Sender<EdgeMessage>,
        itx: &mpsc::UnboundedSender<Internal>,
    ) {
        match m {
            HubMessage::Queue {
                waiting,
                longest_wait_s,
            } => {
                let since = Instant::now().checked_sub(Duration::from_secs(longest_wait_s));
                self.update(|v| {
                    v.queue_waiting = waiting;
                    v.queue_oldest_since = since.filter(|_| waiting > 0);
                });
            }
            HubMessage::Incoming {
                call_id,
                from,
                caller_name,
                sdp,
            } => {
                if self.call.is_some() || !self.available {
                    // Busy (or away): pass it on to someone else.
                    let _ = hub.send(EdgeMessage::Reject { call_id }).await;
                    return;
                }
                info!(%call_id, from = %crate::pii::Number(&from), "incoming call: ringing");
                let (flow, first) = EdgeCall::inbound(&call_id, &sdp, self.rules());
                self.call = Some(Call::new(
                    flow,
                    Direction::Inbound,
                    from.clone(),
                    caller_name.clone(),
                ));
                self.update(|v| {
                    v.state = PhoneState::Ringing {
                        call_id: call_id.clone(),
                        name: caller_name.clone(),
                        number: from.clone(),
                        since: Instant::now(),
                    };
                    v.begin_call();
                });
                self.open_devices(itx);
                // Our answer is built (and pre-accepted) at once, so media is up before the
                // agent answers.
                self.apply(first, Some(hub)).await;
            }
            m @ HubMessage::Dialing { .. } => {
                let HubMessage::Dialing { request_id, .. } = &m else {
                    return;
                };
                if self.dialing(request_id) {
                    let outs = self.feed(Input::Hub(m));
                    self.apply(outs, Some(hub)).await;
                } else if let Some(reply) = call_flow::stray(&m) {
                    // A dial we gave up on.
                    let _ = hub.send(reply).await;
                }
            }
            m @ HubMessage::Error {
                request_id: Some(_),
                ..
            } if matches!(&m, HubMessage::Error { request_id: Some(r), .. } if self.dialing(r)) => {
                let outs = self.feed(Input::Hub(m));
                self.apply(outs, Some(hub)).await;
            }
            m @ HubMessage::NoPermission { .. } => {
                let HubMessage::NoPermission {
                    request_id,
                    to,
                    can_request,
                    ..
                } = &m
                else {
                    return;
                };
                if !self.dialing(request_id) {
                    debug!(%request_id, "no permission for a dial we gave up on");
                    return;
                }
                info!(to = %crate::pii::Number(to), can_request, "dial refused: no call permission");
                if let Some(c) = self.call.as_mut() {
                    c.dial_trouble = Some(DialTrouble::Permission);
                }
                let outs = self.feed(Input::Hub(m));
                self.apply(outs, Some(hub)).await;
            }
            HubMessage::PermissionRequest {
                request_id,
                sent,
                message,
                resets_at,
                ..
            } => {
                let mut ours = false;
                self.update(|v| {
                    ours = v.permission_request_answered(
                        &request_id,
                        sent,
                        &message,
                        resets_at.as_deref(),
                    )
                });
                if !ours {
                    debug!(%request_id, "answer to a permission request we no longer wait for");
                }
            }
            HubMessage::Error {
                call_id: None,
                request_id: Some(r),
                message,
                ..
            } if self.view.lock().is_ok_and(|v| {
                v.permission.as_ref().is_some_and(|o| {
                    matches!(&o.state, PermissionStep::Asking { request_id } if *request_id == r)
                })
            }) =>
            {
                warn!(%message, "permission request refused");
                self.update(|v| {
                    let why = format!("The permission request was not sent: {message}");
                    v.permission_request_answered(&r, false, &why, None);
                });
            }
            HubMessage::Permission {
                to,
                granted,
                status,
            } => {
                info!(to = %crate::pii::Number(&to), granted, %status, "call permission answered");
                let in_call = self.call.is_some();
                self.update(|v| v.permission_answered(&to, granted, &status, in_call));
            }
            other => {
                let Some(id) = other.call_id() else { return };
                let mine = self
                    .call
                    .as_ref()
                    .is_some_and(|c| c.flow.call_id() == Some(id));
                if !mine {
                    debug!(?other, "message for a call we no longer have");
                    return;
                }
                if let HubMessage::Error {
                    message, permanent, ..
                } = &other
                {
                    warn!(%message, permanent, "bridge error for our call");
                    let words = plain_error(message);
                    self.update(|v| v.notice = Some(words));
                    return;
                }
                let outs = self.feed(Input::Hub(other));
                self.apply(outs, Some(hub)).await;
            }
        }
    }

    /// The edge-call rules of an agent's calls: the agent decides, nothing answers or hangs up
    /// on its own but the media watchdog.
    fn rules(&self) -> CallRules {
        CallRules {
            media: self.cfg.media_deadlines,
            auto_accept: None,
            max_length: None,
        }
    }

    /// Whether our call is the dial `request_id` that has no call id yet.
    fn dialing(&self, request_id: &str) -> bool {
        self.call
            .as_ref()
            .is_some_and(|c| c.flow.request_id() == Some(request_id) && c.flow.call_id().is_none())
    }

    /// Feeds the call's machine (when there is a call).
    fn feed(&mut self, input: Input) -> Vec<Output> {
        match self.call.as_mut() {
            Some(c) => c.flow.handle(input, Instant::now()),
            None => Vec::new(),
        }
    }

    /// The agent's decision about the call; `why` is how its end is told if it ends it.
    async fn decide(&mut self, input: Input, why: &str, hub: &mpsc::Sender<EdgeMessage>) {
        let outs = self.feed(input);
        if !outs.is_empty()
            && !why.is_empty()
            && let Some(c) = self.call.as_mut()
        {
            c.own_words = Some(why.to_owned());
        }
        self.apply(outs, Some(hub)).await;
    }

    /// Carries out the call machine's outputs in order, feeding back what they produce.
    async fn apply(&mut self, outs: Vec<Output>, hub: Option<&mpsc::Sender<EdgeMessage>>) {
        let mut queue: std::collections::VecDeque<Output> = outs.into();
        while let Some(o) = queue.pop_front() {
            let more = self.carry_out(o, hub).await;
            queue.extend(more);
        }
    }

    async fn carry_out(
        &mut self,
        o: Output,
        hub: Option<&mpsc::Sender<EdgeMessage>>,
    ) -> Vec<Output> {
        let Some(call) = self.call.as_mut() else {
            return Vec::new();
        };
        match o {
            // Built off the phone task; the result comes back as `Internal`.
            Output::BuildAnswer(offer) => {
                let call_id = call.flow.call_id().unwrap_or_default().to_owned();
                let (media_cfg, itx) = (self.cfg.media.clone(), self.itx.clone());
                tokio::spawn(async move {
                    let result = MediaSession::answering(&media_cfg, &call_id, &offer)
                        .await
                        .map_err(|e| (e.to_string(), e.offer_refused()));
                    let _ = itx.send(Internal::Answered { call_id, result });
                });
            }
            Output::BuildOffer => {
                let request_id = call.flow.request_id().unwrap_or("dial").to_owned();
                let (media_cfg, itx) = (self.cfg.media.clone(), self.itx.clone());
                tokio::spawn(async move {
                    let result = MediaSession::offering(&media_cfg, &request_id)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = itx.send(Internal::Offered { request_id, result });
                });
            }
            Output::Send(m) => {
                if let Some(hub) = hub {
                    let _ = hub.send(m).await;
                }
            }
            Output::ReleaseCandidates => {
                if let Some(m) = &call.media {
                    m.release_candidates().await;
                }
            }
            Output::ApplyRemoteAnswer(sdp) => {
                if let Some(media) = call.media.clone()
                    && let Err(e) = media.apply_answer(&sdp).await
                {
                    warn!(error = %e, "the user's answer is unusable");
                    return self.feed(Input::RemoteAnswerFailed(e.to_string()));
                }
            }
            Output::AudioOn => self.go_live(),
            Output::Dialed(Ok(call_id)) => return self.dialed(call_id),
            Output::Dialed(Err(f)) => self.dial_failed(f),
            Output::Progress(p) => match p.strip_prefix("ended: ") {
                Some(reason) => call.end_reason = Some(reason.to_owned()),
                None if p == "ringing" => self.update(|v| {
                    if let PhoneState::Dialing { progress, .. } = &mut v.state {
                        *progress = DialProgress::Ringing;
                    }
                }),
                None => debug!(status = %p, "call status"),
            },
            Output::MediaGivenUp(verdict) => {
                warn!(%verdict, "giving up on the call's media");
                // Told in the bridge's words when its `Ended` comes; these until then.
                call.end_reason = Some(format!("media_failed: {verdict}"));
            }
            Output::Finish { record } => {
                if let Some(call) = self.call.take() {
                    let why = call.end_words();
                    self.end_call(call, hub, why, record, true).await;
                }
            }
            Output::Close => {
                if let Some(call) = self.call.take() {
                    let why = call.end_words();
                    self.end_call(call, hub, why, None, false).await;
                }
            }
        }
        Vec::new()
    }

    /// The bridge placed our dial: the call's audio engine starts (muted until answered).
    fn dialed(&mut self, call_id: String) -> Vec<Output> {
        let media = self.call.as_ref().and_then(|c| c.media.clone());
        let audio = media.map(|m| self.start_audio(&m, &call_id));
        self.update(|v| {
            if let PhoneState::Dialing {
                call_id: c,
                progress,
                ..
            } = &mut v.state
            {
                *c = Some(call_id.clone());
                *progress = DialProgress::Calling;
            }
        });
        let Some(call) = self.call.as_mut() else {
            return Vec::new();
        };
        match audio {
            Some(Ok(a)) => {
                call.dtmf_in = a.take_dtmf();
                call.audio = Some(a);
                Vec::new()
            }
            Some(Err(reason)) => {
                call.own_words = Some(format!("audio could not start: {reason}"));
                self.feed(Input::SetupFailed {
                    reason,
                    offer_refused: false,
                })
            }
            None => Vec::new(),
        }
    }

    /// The dial did not become a call: say why (the machine then frees what it had).
    fn dial_failed(&mut self, f: DialFailure) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if call.own_words.is_some() {
            // The agent cancelled it: told as an ended call.
            return;
        }
        // A refused dial is not an ended call: its own words say why.
        call.own_words = Some(String::new());
        let number = call.number.clone();
        match call.dial_trouble {
            Some(DialTrouble::Permission) => self.update(|v| {
                v.permission_refused(
                    &number,
                    &f.message,
                    f.can_request_permission,
                    f.resets_at.as_deref(),
                )
            }),
            Some(DialTrouble::Setup) => {
                self.update(|v| v.notice = Some(format!("The call could not start: {}", f.message)))
            }
            None => {
                warn!(message = %f.message, "dial failed");
                self.update(|v| v.notice = Some(plain_error(&f.message)));
            }
        }
    }

    /// The machine says audio flows (Accepted inbound, the user answered outbound): unmute,
    /// start the timer, show the call.
    fn go_live(&mut self) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if call.live_since.is_some() {
            return;
        }
        let now = Instant::now();
        call.live_since = Some(now);
        if let Some(a) = call.audio.as_ref() {
            a.unmute_call();
            a.set_muted(false);
        }
        let state = PhoneState::InCall {
            call_id: call.flow.call_id().unwrap_or_default().to_owned(),
            direction: call.direction,
            name: call.name.clone(),
            number: call.number.clone(),
            since: now,
        };
        let recording = call.audio.is_some() && self.cfg.record_dir.is_some();
        info!("call is live");
        self.update(|v| {
            v.state = state;
            v.muted = false;
            v.recording = recording;
        });
    }

    async fn internal(&mut self, i: Internal, hub: Option<&mpsc::Sender<EdgeMessage>>) {
        match i {
            Internal::Answered { call_id, result } => {
                let mine = self
                    .call
                    .as_ref()
                    .is_some_and(|c| c.flow.call_id() == Some(&call_id) && c.media.is_none());
                let outs = match result {
                    Ok((media, sdp)) if mine => {
                        let audio = self.start_audio(&media, &call_id);
                        let Some(call) = self.call.as_mut() else {
                            return;
                        };
                        call.media = Some(media);
                        match audio {
                            Ok(a) => {
                                call.dtmf_in = a.take_dtmf();
                                call.audio = Some(a);
                                self.feed(Input::AnswerReady(sdp))
                            }
                            Err(reason) => {
                                call.own_words = Some(format!("audio could not start: {reason}"));
                                self.feed(Input::SetupFailed {
                                    reason,
                                    offer_refused: false,
                                })
                            }
                        }
                    }
                    Ok((media, _)) => {
                        media.close().await;
                        return;
                    }
                    Err((reason, offer_refused)) if mine => {
                        warn!(%reason, "cannot set up media for the incoming call");
                        if let Some(c) = self.call.as_mut() {
                            c.own_words = Some(format!("audio could not start: {reason}"));
                        }
                        self.feed(Input::SetupFailed {
                            reason,
                            offer_refused,
                        })
                    }
                    Err(_) => return,
                };
                self.apply(outs, hub).await;
            }
            Internal::Offered { request_id, result } => {
                let mine = self
                    .call
                    .as_ref()
                    .is_some_and(|c| c.flow.request_id() == Some(&request_id) && c.media.is_none());
                let outs = match result {
                    Ok((media, offer)) if mine => {
                        if let Some(c) = self.call.as_mut() {
                            c.media = Some(media);
                        }
                        self.feed(Input::OfferReady(offer))
                    }
                    Ok((media, _)) => {
                        media.close().await;
                        return;
                    }
                    Err(reason) if mine => {
                        if let Some(c) = self.call.as_mut() {
                            c.dial_trouble = Some(DialTrouble::Setup);
                        }
                        self.feed(Input::SetupFailed {
                            reason,
                            offer_refused: false,
                        })
                    }
                    Err(_) => return,
                };
                self.apply(outs, hub).await;
            }
            Internal::History(r) => self.update(|v| match r {
                Ok(rows) => {
                    v.history = rows;
                    v.history_error = None;
                }
                Err(e) => v.history_error = Some(e),
            }),
            Internal::Devices { which, result } => {
                if self.call.is_none() {
                    return; // the call ended while the device opened
                }
                match result {
                    Ok(DeviceOpened::Capture(dev, rx)) => {
                        if let Ok(mut d) = self.devices.lock() {
                            d.capture = Some((dev, rx));
                        }
                        self.update(|v| v.device_problem = None);
                    }
                    Ok(DeviceOpened::Playback(dev)) => {
                        if let Ok(mut d) = self.devices.lock() {
                            d.playback = Some(dev);
                        }
                        self.update(|v| v.device_problem = None);
                    }
                    Err(e) => {
                        let what = match which {
                            Which::Input => "Microphone",
                            Which::Output => "Speaker",
                        };
                        self.update(|v| {
                            v.device_problem = Some(format!("{what} unavailable: {e}"))
                        });
                    }
                }
            }
        }
    }

    fn start_audio(&self, media: &Arc<MediaSession>, call_id: &str) -> Result<CallAudio, String> {
        let recorder = self.cfg.record_dir.as_ref().and_then(|dir| {
            let stem = recording_stem(chrono::Utc::now(), call_id);
            CallRecorder::create(dir, &stem)
                .map_err(|e| warn!(error = %e, "cannot record this call"))
                .ok()
        });
        match CallAudio::start(
            media.clone(),
            Box::new(PhoneAudio {
                devices: self.devices.clone(),
            }),
            EncoderConfig::default(),
            recorder,
        ) {
            Ok(a) => Ok(a),
            Err(e) => {
                warn!(error = %e, "cannot start the audio engine");
                Err(e.to_string())
            }
        }
    }

    fn open_devices(&self, itx: &mpsc::UnboundedSender<Internal>) {
        self.open_device(Which::Output, itx);
        self.open_device(Which::Input, itx);
    }

    /// Opens (or reopens) a device off the async threads; the result comes back as `Internal`.
    fn open_device(&self, which: Which, itx: &mpsc::UnboundedSender<Internal>) {
        if !self.cfg.use_devices {
            return;
        }
        // Close the old one first: some ALSA devices can be opened once only.
        if let Ok(mut d) = self.devices.lock() {
            match which {
                Which::Input => d.capture = None,
                Which::Output => d.playback = None,
            }
        }
        let name = match which {
            Which::Input => self.cfg.input.clone(),
            Which::Output => self.cfg.output.clone(),
        };
        let itx = itx.clone();
        tokio::task::spawn_blocking(move || {
            // ALSA's configuration handling is not safe for concurrent opens (seen as
            // `snd_pcm_avail_delay: I/O error` on a stream opened alongside another): one at a time.
            let _one_at_a_time = DEVICE_OPEN.lock().unwrap_or_else(|e| e.into_inner());
            let result = match which {
                Which::Input => {
                    CaptureDevice::open(name.as_deref()).map(|(d, rx)| DeviceOpened::Capture(d, rx))
                }
                Which::Output => PlaybackDevice::open(name.as_deref()).map(DeviceOpened::Playback),
            }
            .map_err(|e| e.to_string());
            let _ = itx.send(Internal::Devices { which, result });
        });
    }

    fn fetch_history(&self, itx: &mpsc::UnboundedSender<Internal>) {
        let Some(c) = self.credentials.as_ref() else {
            return;
        };
        let url = format!(
            "{}/calls?limit={}",
            http_base(&c.url),
            self.cfg.history_limit
        );
        let token = c.token.clone();
        let itx = itx.clone();
        tokio::spawn(async move {
            let r = async {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| e.to_string())?;
                let resp = client
                    .get(&url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .map_err(|e| format!("history unavailable: {e}"))?;
                if !resp.status().is_success() {
                    return Err(format!("history unavailable (HTTP {})", resp.status()));
                }
                resp.json::<Vec<CallRecord>>()
                    .await
                    .map_err(|e| format!("history unreadable: {e}"))
            }
            .await;
            let _ = itx.send(Internal::History(r));
        });
    }

    /// Every 100 ms: meters, stats, device health.
    async fn tick(
        &mut self,
        hub: &mpsc::Sender<EdgeMessage>,
        itx: &mpsc::UnboundedSender<Internal>,
    ) {
        let (mut speaker, mut mic) = (-96.0f32, -96.0f32);
        let mut device_out = None;
        let mut problem = None;
        let mut failed = Vec::new();
        if let Ok(d) = self.devices.lock() {
            if let Some(p) = d.playback.as_ref() {
                device_out = Some(p.level());
                if let Some(f) = p.failed() {
                    problem = Some(format!("Speaker stopped: {f}"));
                    failed.push(Which::Output);
                }
            }
            if let Some((c, _)) = d.capture.as_ref() {
                mic = c.level();
                if let Some(f) = c.failed() {
                    problem = Some(format!("Microphone stopped: {f}"));
                    failed.push(Which::Input);
                }
            }
        }
        if self.call.is_none() {
            return;
        }
        // A device that stopped (unplugged, sound server hiccup) is reopened a few times,
        // two seconds apart; meanwhile the call goes on silently on that side.
        for which in failed {
            let slot = &mut self.reopens[which as usize];
            if slot.0 < 5 && slot.1.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                *slot = (slot.0 + 1, Some(Instant::now()));
                warn!(?which, attempt = slot.0, "reopening a failed sound device");
                self.open_device(which, itx);
            }
        }
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if let Some(a) = call.audio.as_ref() {
            let (heard, ours) = a.levels();
            speaker = heard;
            if call.live_since.is_some() {
                // Without a microphone the meter shows what is actually sent (silence).
                mic = if a.is_muted() { -96.0 } else { mic.max(ours) };
            }
        }
        // The media's state for the machine's watchdog (never connected, failed, silent).
        let poll = call.media.as_ref().map(|m| Input::Media {
            state: m.state(),
            packets: m.packets_received(),
        });
        // The customer's keys: shown to the agent, and reported for the call's history.
        let mut pressed = String::new();
        if let Some(rx) = call.dtmf_in.as_mut() {
            while let Ok(d) = rx.try_recv() {
                pressed.push(d);
            }
        }
        let mut quality = None;
        if call.stats_at.elapsed() >= Duration::from_secs(2)
            && let (Some(media), Some(id)) = (call.media.clone(), call.flow.call_id())
            && call.live_since.is_some()
        {
            call.stats_at = Instant::now();
            let mut stats = media.stats().await;
            if let Some(a) = call.audio.as_ref() {
                stats.playout = a.playout();
                let (heard, said) = a.levels();
                (stats.level_in_dbfs, stats.level_out_dbfs) = (Some(heard), Some(said));
            }
            quality = Some(Quality::from_stats(&stats));
            let call_id = id.to_owned();
            let _ = hub.send(EdgeMessage::Stats { call_id, stats }).await;
        }
        self.update(|v| {
            v.speaker_db = speaker;
            v.mic_db = mic;
            v.device_out_db = device_out;
            if problem.is_some() {
                v.device_problem = problem;
            }
            if quality.is_some() {
                v.quality = quality;
            }
            v.dtmf_received.push_str(&pressed);
        });
        let mut outs = poll.map(|p| self.feed(p)).unwrap_or_default();
        for digit in pressed.chars() {
            outs.extend(self.feed(Input::Dtmf(digit)));
        }
        self.apply(outs, Some(hub)).await;
    }

    /// Signing out during a call: hang it up as the machine says, and tear it down without
    /// waiting for the bridge (the link is going away).
    async fn hang_up_and_end(&mut self, hub: &mpsc::Sender<EdgeMessage>) {
        let why = "you signed out";
        self.decide(Input::Hangup, why, hub).await;
        if let Some(call) = self.call.take() {
            self.end_call(call, Some(hub), why.into(), None, true).await;
        }
    }

    /// Tears a call down, reports quality and recording (with the bridge's `record` as the
    /// sidecar) when `report`, and returns to Idle.
    async fn end_call(
        &mut self,
        call: Call,
        hub: Option<&mpsc::Sender<EdgeMessage>>,
        why: String,
        record: Option<Box<CallRecord>>,
        report: bool,
    ) {
        let was_live = call.live_since.is_some();
        let mut quality = None;
        if let Some(media) = call.media.as_ref() {
            quality = Some(QualitySummary::from(&media.stats().await));
        }
        let recorder = match call.audio {
            Some(a) => a.stop().await,
            None => None,
        };
        if let Some(media) = call.media.as_ref() {
            media.close().await;
        }
        if let Ok(mut d) = self.devices.lock() {
            *d = Devices::default();
        }
        self.reopens = [(0, None); 2];
        let mut recording = None;
        let call_id = call.flow.call_id().map(str::to_owned);
        if let (Some(rec), Some(id)) = (recorder, call_id.as_ref()) {
            let path = rec.wav_path().display().to_string();
            let mut sidecar = record
                .map(|b| *b)
                .unwrap_or_else(|| CallRecord::new(id, call.direction, &call.number, ""));
            sidecar.quality = quality;
            sidecar.recording = Some(path.clone());
            match rec.finish(&sidecar) {
                Ok(_) if was_live => recording = Some(path),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "finishing the recording"),
            }
            if let Some((_, more)) = &self.uploader {
                more.notify_one();
            }
        }
        if let (Some(hub), Some(id), Some(q)) = (hub, call_id, quality)
            && call.media.is_some()
            && report
        {
            let _ = hub
                .send(EdgeMessage::Finished {
                    call_id: id,
                    quality: q,
                    recording,
                })
                .await;
        }
        let online = hub.is_some();
        self.update(|v| {
            v.state = if online {
                PhoneState::Idle
            } else {
                v.state.clone()
            };
            if !why.is_empty() {
                v.notice = Some(format!("Call ended: {why}."));
            }
            v.muted = false;
            v.recording = false;
            v.speaker_db = -96.0;
            v.mic_db = -96.0;
            v.device_out_db = None;
            v.calls_ended += 1;
        });
        // The bridge writes the final row when it has our Finished: ask a moment later.
        if online && let Some(c) = self.credentials.as_ref() {
            let url = format!(
                "{}/calls?limit={}",
                http_base(&c.url),
                self.cfg.history_limit
            );
            let token = c.token.clone();
            let view = self.view.clone();
            let notify = self.notify.clone();
            tokio::spawn(async move {
                for delay in [300u64, 1500] {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    if let Ok(rows) = get_history(&url, &token).await {
                        if let Ok(mut v) = view.lock() {
                            v.history = rows;
                            v.history_error = None;
                        }
                        notify();
                    }
                }
            });
        }
    }
}

async fn get_history(url: &str, token: &str) -> Result<Vec<CallRecord>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}

impl Call {
    fn new(flow: EdgeCall, direction: Direction, number: String, name: Option<String>) -> Call {
        Call {
            flow: flow.finish_unanswered_after(END_WAIT),
            direction,
            number,
            name,
            media: None,
            audio: None,
            dtmf_in: None,
            live_since: None,
            stats_at: Instant::now(),
            own_words: None,
            end_reason: None,
            dial_trouble: None,
        }
    }

    /// How the end is told: the agent's (or the set-up's) words, else the bridge's reason.
    fn end_words(&self) -> String {
        self.own_words
            .clone()
            .or_else(|| self.end_reason.as_deref().map(plain_end_reason))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised_or_explained() {
        assert_eq!(
            normalize_number("+52 1 55-1234 5678").unwrap(),
            "5215512345678"
        );
        assert_eq!(normalize_number("(55) 1234.5678").unwrap(), "5512345678");
        assert!(normalize_number("").unwrap_err().contains("Type a number"));
        assert!(normalize_number("12345").unwrap_err().contains("Too short"));
        assert!(
            normalize_number("1234567890123456")
                .unwrap_err()
                .contains("Too long")
        );
        assert!(
            normalize_number("55a1234567")
                .unwrap_err()
                .contains("\"a\"")
        );
    }

    #[test]
    fn hub_urls_are_completed_and_history_derived() {
        assert_eq!(
            normalize_hub_url("127.0.0.1:8080"),
            "ws://127.0.0.1:8080/hub"
        );
        assert_eq!(
            normalize_hub_url("https://bridge.example/"),
            "wss://bridge.example/hub"
        );
        assert_eq!(normalize_hub_url("ws://h:1/hub"), "ws://h:1/hub");
        assert_eq!(
            http_base("ws://127.0.0.1:8080/hub"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(http_base("wss://b.example/hub"), "https://b.example");
    }

    #[test]
    fn errors_are_plain_words() {
        assert!(
            plain_error("connect failed: BSP answered 400: (#138006) No call permission")
                .contains("not allowed calls")
        );
        assert_eq!(plain_end_reason("customer_hangup"), "the customer hung up");
        use crate::edge::media_watch::MediaVerdict;
        let silent = format!(
            "media_failed: {}",
            MediaVerdict::Silent(Duration::from_secs(30))
        );
        assert_eq!(
            plain_end_reason(&silent),
            "the customer's audio stopped arriving"
        );
        let lost = format!("media_failed: {}", MediaVerdict::FailedAfterConnect);
        assert_eq!(
            plain_end_reason(&lost),
            "the connection to the customer was lost"
        );
    }

    const N: &str = "5215512340000";

    #[test]
    fn a_dial_without_permission_leads_to_a_request_then_a_call() {
        let mut v = PhoneView::default();
        let refusal = format!("{N} has not allowed calls from this business yet.");
        v.permission_refused(N, &refusal, true, None);
        assert_eq!(v.notice.as_deref(), Some(refusal.as_str()));
        let offer = |state| {
            Some(PermissionOffer {
                number: N.into(),
                state,
            })
        };
        assert_eq!(v.permission, offer(PermissionStep::CanAsk));
        // Only the offered number, once.
        assert!(!v.permission_asking("5215599999999", "permission-1"));
        assert!(v.permission_asking(N, "permission-1"));
        assert!(!v.permission_asking(N, "permission-2"));
        assert_eq!(
            v.notice.as_deref(),
            Some("Asking 5215512340000 for permission…")
        );
        // Only the answer to that request counts.
        assert!(!v.permission_request_answered("permission-2", true, "sent", None));
        let sent = "permission request sent: waiting for the user to answer in WhatsApp";
        assert!(v.permission_request_answered("permission-1", true, sent, None));
        assert_eq!(v.notice.as_deref(), Some(sent));
        assert_eq!(v.permission, offer(PermissionStep::Waiting));
        v.permission_answered(N, true, "temporary until 2026-01-08 10:00 UTC", false);
        assert_eq!(
            v.notice.as_deref(),
            Some("5215512340000 allowed calls (temporary until 2026-01-08 10:00 UTC)")
        );
        assert_eq!(v.permission, offer(PermissionStep::Granted));
        // A new call (the "Call now", or someone ringing) starts clean.
        v.begin_call();
        assert_eq!((v.notice, v.permission), (None, None));
    }

    #[test]
    fn permission_refusals_say_why_and_until_when() {
        let reset = "2026-01-02T10:00:00Z";
        // The bridge's words keep their own reset time; words without one get it added.
        let with = format!("No more requests for now: the next one can be sent at {reset}.");
        assert_eq!(permission_words(&with, Some(reset)), with);
        assert_eq!(
            permission_words("Limit reached.", Some(reset)),
            format!("Limit reached (possible again at {reset})")
        );
        assert_eq!(permission_words("No.", None), "No.");
        // No request may be sent: words, no button.
        let mut v = PhoneView::default();
        v.permission_refused(N, "Limit reached.", false, Some(reset));
        assert!(v.notice.as_deref().unwrap().contains(reset));
        assert_eq!(v.permission, None);
        // The request was not sent: why, and the offer is gone.
        v.permission_refused(N, "Not allowed yet.", true, None);
        assert!(v.permission_asking(N, "permission-1"));
        assert!(v.permission_request_answered("permission-1", false, &with, Some(reset)));
        assert_eq!(v.notice.as_deref(), Some(with.as_str()));
        assert_eq!(v.permission, None);
        // Declined: words only.
        v.permission_answered(N, false, "none", false);
        assert_eq!(v.notice.as_deref(), Some("5215512340000 declined calls"));
        assert_eq!(v.permission, None);
        // Allowed while the agent is on another call: the words, but no "Call now" mid-call.
        v.permission_answered(N, true, "permanent", true);
        assert_eq!(
            v.notice.as_deref(),
            Some("5215512340000 allowed calls (permanent)")
        );
        assert_eq!(v.permission, None);
    }

    #[test]
    fn quality_grades() {
        let mut s = MediaStats::default();
        assert_eq!(Quality::from_stats(&s).grade, Grade::Good);
        s.received.loss_pct = 10.0;
        assert_eq!(Quality::from_stats(&s).grade, Grade::Poor);
    }

    #[test]
    fn ringtone_rings_then_pauses() {
        let mut r = Ringtone::new();
        let on = r.next_frame();
        assert!(on.level_dbfs() > -30.0, "{}", on.level_dbfs());
        for _ in 0..60 {
            r.next_frame();
        }
        assert!(r.next_frame().level_dbfs() < -90.0);
    }
}
