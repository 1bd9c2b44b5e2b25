//! A headless edge: connects to the hub, answers every call it is offered (or dials), and runs
//! one task per call that owns the call's media, audio engine and recording.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{Instrument, info, info_span, warn};

use super::behaviours::{Echo, Prompt, PromptClip, Sequence, Tone};
use super::voice_ai::{VoiceAi, VoiceAiConfig};
use crate::audio::codec::EncoderConfig;
use crate::audio::recorder::{CallRecorder, recording_stem};
use crate::audio::tone::ToneGenerator;
use crate::call_record::{CallRecord, Direction, QualitySummary};
use crate::edge::call_audio::{Behaviour, CallAudio};
use crate::edge::call_flow::{CallRules, EdgeCall, Input, Output};
use crate::edge::hub_client::{self, HubConnection, HubError};
use crate::edge::media_watch::MediaDeadlines;
use crate::hub_protocol::{EdgeKind, EdgeMessage, HubMessage};
use crate::media::pool::SessionPool;
use crate::media::{MediaConfig, MediaSession};

/// Concurrent media set-ups: half the cores, at least one. Set-ups run in arrival order; the
/// other half of the runtime stays free for the calls already up (their DTLS handshakes and
/// 20 ms audio), so a burst neither starves them nor is slowed by them. On 2 cores one at a
/// time measured best for fifty calls arriving at once (p50 and p99).
fn setup_slots() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores / 2).max(1)
}

/// What a bot does with a call.
#[derive(Clone)]
pub struct BotConfig {
    pub name: String,
    /// Answer (accept) this long after pre-accepting.
    pub accept_delay: Duration,
    pub prompt: Option<PromptClip>,
    /// A steady tone after the prompt (line checks, tests).
    pub tone_hz: Option<f32>,
    /// Echo the caller after the prompt.
    pub echo: bool,
    pub hangup_after_prompt: bool,
    /// Play the prompt again and again instead of once.
    pub loop_prompt: bool,
    pub max_duration: Option<Duration>,
    /// Where recordings go; `None` = no recording.
    pub record_dir: Option<PathBuf>,
    pub media: MediaConfig,
    /// Media sessions kept built for the next calls (see `media::pool`); 0 = none.
    pub ready_sessions: usize,
    pub encoder: EncoderConfig,
    /// When to give up on a call's media (never connected, failed, silent).
    pub media_deadlines: MediaDeadlines,
    /// Stream the call to a voice-AI server after the prompt (instead of echo or tone).
    pub voice_ai: Option<VoiceAiConfig>,
    /// Told when a recording is finished, so the uploader sends it to the bridge at once (set
    /// by [`run`] for a bot on a remote hub that records).
    pub uploads: Option<Arc<tokio::sync::Notify>>,
}

impl BotConfig {
    /// The behaviour for one call. `customer` and `business` are the two parties (for the
    /// voice-AI stream's `start`).
    fn behaviour(&self, call_id: &str, customer: &str) -> Box<dyn Behaviour> {
        let ai: Option<Box<dyn Behaviour>> = self.voice_ai.as_ref().and_then(|cfg| {
            match VoiceAi::start(cfg, call_id, customer, &self.name) {
                Ok(v) => Some(Box::new(v) as Box<dyn Behaviour>),
                Err(e) => {
                    warn!(error = %e, "cannot start the voice-AI stream");
                    None
                }
            }
        });
        let then: Option<Box<dyn Behaviour>> = match (ai, self.tone_hz, self.echo) {
            (Some(ai), _, _) => Some(ai),
            (None, Some(hz), _) => Some(Box::new(Tone(ToneGenerator::new(hz, 0.3)))),
            (None, None, true) => Some(Box::new(Echo)),
            (None, None, false) => None,
        };
        Box::new(Sequence::new(
            self.prompt.clone().map(|clip| {
                let p = Prompt::new(clip);
                if self.loop_prompt { p.looping() } else { p }
            }),
            then,
            self.hangup_after_prompt,
        ))
    }

    /// The edge's deadlines for each call (see `edge::call_flow`).
    fn rules(&self) -> CallRules {
        CallRules {
            media: self.media_deadlines,
            auto_accept: Some(self.accept_delay),
            max_length: self.max_duration,
        }
    }
}

pub use crate::edge::call_flow::{DialFailure, DialOptions};

/// The user's answer to a permission request: granted or not, and the status in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionAnswer {
    pub granted: bool,
    pub status: String,
}

/// Commands for a running bot from its own process (the sandbox, `wacall dial`).
#[derive(Debug)]
pub enum BotCommand {
    Dial {
        to: String,
        options: DialOptions,
        done: Option<tokio::sync::oneshot::Sender<Result<String, DialFailure>>>,
        /// Progress as it happens: `ringing`, `accepted`, `rejected`, then `ended: <reason>`.
        progress: Option<mpsc::UnboundedSender<String>>,
    },
    /// Ask `to` for permission to call: `sent` hears whether the request went out, `answer`
    /// the user's reply when it comes.
    RequestPermission {
        to: String,
        text: Option<String>,
        sent: tokio::sync::oneshot::Sender<Result<(), DialFailure>>,
        answer: Option<tokio::sync::oneshot::Sender<PermissionAnswer>>,
    },
}

/// Connects to the hub and serves calls until `shutdown` turns true or the hub goes away.
pub async fn run(
    cfg: BotConfig,
    hub_url: &str,
    token: &str,
    commands: mpsc::Receiver<BotCommand>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), HubError> {
    let conn = hub_client::connect(hub_url, token, &cfg.name, EdgeKind::Bot).await?;
    let mut cfg = cfg;
    // A bot elsewhere sends its recordings to the bridge (one in the bridge's process writes
    // them where the bridge keeps them already).
    if let Some(dir) = cfg.record_dir.clone() {
        let more = Arc::new(tokio::sync::Notify::new());
        crate::edge::upload::spawn(
            crate::phone::core::http_base(hub_url),
            token.to_owned(),
            dir,
            more.clone(),
        );
        cfg.uploads = Some(more);
    }
    run_on(cfg, conn, commands, shutdown).await;
    Ok(())
}

/// Runs the bot on a link that is already up (remote hub or an edge in the bridge's process)
/// until the link closes or `shutdown` says so.
pub async fn run_on(
    cfg: BotConfig,
    conn: HubConnection,
    mut commands: mpsc::Receiver<BotCommand>,
    mut shutdown: watch::Receiver<bool>,
) {
    let HubConnection {
        edge_id,
        tx,
        mut rx,
    } = conn;
    info!(edge_id, name = %cfg.name, "bot connected to the hub");
    let pool = SessionPool::new(cfg.media.clone(), cfg.ready_sessions, setup_slots());
    let cfg = Arc::new(cfg);
    // Per-call tasks, keyed by call id (and by dial request id until the call id is known).
    let mut calls: HashMap<String, mpsc::Sender<HubMessage>> = HashMap::new();
    let (gone_tx, mut gone_rx) = mpsc::channel::<String>(64);
    // Replaces ready media sessions before they age out, so a quiet bot still has fresh ones.
    let mut freshen = tokio::time::interval(crate::media::pool::MAX_AGE / 4);
    // Permission requests in flight (by request id) and those waiting for the user's reply
    // (by number).
    type Sent = tokio::sync::oneshot::Sender<Result<(), DialFailure>>;
    type Answer = tokio::sync::oneshot::Sender<PermissionAnswer>;
    let mut requests: HashMap<String, (Sent, Option<Answer>)> = HashMap::new();
    let mut answers: HashMap<String, Vec<Answer>> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = freshen.tick() => pool.refill_later(),
            Some(key) = gone_rx.recv() => { calls.remove(&key); }
            Some(cmd) = commands.recv() => match cmd {
                BotCommand::Dial { to, options, done, progress } => {
                    let request_id = format!("dial-{:016x}", rand::random::<u64>());
                    let (ctx, crx) = mpsc::channel(32);
                    calls.insert(request_id.clone(), ctx);
                    let span = info_span!("call", request_id = %request_id, to = %crate::pii::Number(&to));
                    tokio::spawn(
                        outbound(cfg.clone(), pool.clone(), request_id, to, options, crx, tx.clone(), gone_tx.clone(), done, progress)
                            .instrument(span),
                    );
                }
                BotCommand::RequestPermission { to, text, sent, answer } => {
                    let request_id = format!("perm-{:016x}", rand::random::<u64>());
                    let msg = EdgeMessage::RequestPermission { request_id: request_id.clone(), to, text };
                    if tx.send(msg).await.is_ok() {
                        requests.insert(request_id, (sent, answer));
                    } else {
                        let _ = sent.send(Err(DialFailure::plain("the hub connection closed")));
                    }
                }
            },
            msg = rx.recv() => {
                let Some(msg) = msg else { warn!("hub connection closed"); break };
                match msg {
                    HubMessage::Incoming { call_id, from, caller_name, sdp } => {
                        // With the call task's "incoming call", splits engine → bot from the
                        // wait for the runtime in a per-call timeline.
                        tracing::debug!(%call_id, "offered to the bot");
                        let (ctx, crx) = mpsc::channel(32);
                        calls.insert(call_id.clone(), ctx);
                        let span = info_span!("call", call_id = %call_id);
                        tokio::spawn(
                            inbound(cfg.clone(), pool.clone(), call_id, from, caller_name, sdp, crx, tx.clone(), gone_tx.clone())
                                .instrument(span),
                        );
                    }
                    HubMessage::Dialing { request_id, call_id } => {
                        if let Some(ctx) = calls.get(&request_id).cloned() {
                            calls.insert(call_id.clone(), ctx.clone());
                            let _ = ctx.send(HubMessage::Dialing { request_id, call_id }).await;
                        }
                    }
                    HubMessage::Error { call_id: None, request_id: Some(r), message, permanent } => {
                        if let Some((sent, _)) = requests.remove(&r) {
                            let _ = sent.send(Err(DialFailure::plain(message)));
                        } else if let Some(ctx) = calls.get(&r) {
                            let _ = ctx.send(HubMessage::Error { call_id: None, request_id: Some(r.clone()), message, permanent }).await;
                        }
                    }
                    m @ HubMessage::NoPermission { .. } => {
                        if let HubMessage::NoPermission { request_id, .. } = &m
                            && let Some(ctx) = calls.get(request_id)
                        {
                            let _ = ctx.send(m).await;
                        }
                    }
                    HubMessage::PermissionRequest { request_id, to, sent: ok, message, resets_at } => {
                        if let Some((sent, answer)) = requests.remove(&request_id) {
                            if ok {
                                if let Some(a) = answer {
                                    answers.entry(to).or_default().push(a);
                                }
                                let _ = sent.send(Ok(()));
                            } else {
                                let _ = sent.send(Err(DialFailure { message, can_request_permission: false, resets_at }));
                            }
                        }
                    }
                    HubMessage::Permission { to, granted, status } => {
                        for a in answers.remove(&to).unwrap_or_default() {
                            let _ = a.send(PermissionAnswer { granted, status: status.clone() });
                        }
                    }
                    other => {
                        if let Some(id) = other.call_id()
                            && let Some(ctx) = calls.get(id)
                        {
                            let _ = ctx.send(other).await;
                        }
                    }
                }
            }
        }
    }
    pool.close().await;
}

/// [`recorder_for`] on the background lane: creating files must not stall the async workers
/// that set up other calls and pace their audio, nor compete with them for the cores.
async fn recorder(
    cfg: &Arc<BotConfig>,
    call_id: &str,
    direction: Direction,
    customer: &str,
) -> Option<CallRecorder> {
    cfg.record_dir.as_ref()?;
    let (cfg, call_id, customer) = (cfg.clone(), call_id.to_string(), customer.to_string());
    crate::background::run(move || recorder_for(&cfg, &call_id, direction, &customer))
        .await
        .flatten()
}

/// The call's recorder, with a provisional sidecar (no end yet) written at once: if the process
/// dies mid-call, the WAV (kept playable as it grows) still has its call id, parties and start.
fn recorder_for(
    cfg: &BotConfig,
    call_id: &str,
    direction: Direction,
    customer: &str,
) -> Option<CallRecorder> {
    let dir = cfg.record_dir.as_ref()?;
    let stem = recording_stem(chrono::Utc::now(), call_id);
    match CallRecorder::create(dir, &stem) {
        Ok(r) => {
            let mut provisional = CallRecord::new(call_id, direction, customer, "");
            provisional.edge = Some(cfg.name.clone());
            provisional.recording = Some(r.wav_path().display().to_string());
            if let Err(e) = r.write_sidecar(&provisional, false) {
                warn!(error = %e, "cannot write the recording's sidecar");
            }
            Some(r)
        }
        Err(e) => {
            warn!(error = %e, dir = %dir.display(), "cannot record this call");
            None
        }
    }
}

/// A user's call offered to this bot: the call's flow is the edge machine's; this task does
/// its IO.
#[allow(clippy::too_many_arguments)]
async fn inbound(
    cfg: Arc<BotConfig>,
    pool: Arc<SessionPool>,
    call_id: String,
    from: String,
    caller_name: Option<String>,
    offer: String,
    rx: mpsc::Receiver<HubMessage>,
    tx: mpsc::Sender<EdgeMessage>,
    gone: mpsc::Sender<String>,
) {
    info!(from = %crate::pii::Number(&from), name = %crate::pii::Name(caller_name.as_deref().unwrap_or("")), "incoming call");
    let (call, first) = EdgeCall::inbound(&call_id, &offer, cfg.rules());
    let driver = Driver::new(cfg, call, tx, Direction::Inbound, from, None, None, pool);
    driver.run(first, rx).await;
    let _ = gone.send(call_id).await;
}

/// A call this bot places: offer, dial through the hub, talk when the user answers.
#[allow(clippy::too_many_arguments)]
async fn outbound(
    cfg: Arc<BotConfig>,
    pool: Arc<SessionPool>,
    request_id: String,
    to: String,
    options: DialOptions,
    rx: mpsc::Receiver<HubMessage>,
    tx: mpsc::Sender<EdgeMessage>,
    gone: mpsc::Sender<String>,
    done: Option<tokio::sync::oneshot::Sender<Result<String, DialFailure>>>,
    progress: Option<mpsc::UnboundedSender<String>>,
) {
    let (call, first) = EdgeCall::outbound(&request_id, &to, options, cfg.rules());
    let driver = Driver::new(cfg, call, tx, Direction::Outbound, to, done, progress, pool);
    let call_id = driver.run(first, rx).await;
    if let Some(id) = call_id {
        let _ = gone.send(id).await;
    }
    let _ = gone.send(request_id).await;
}

/// The IO of one call: carries out what its [`EdgeCall`] says (media, audio, recording,
/// messages) and feeds it what happens.
struct Driver {
    cfg: Arc<BotConfig>,
    call: EdgeCall,
    tx: mpsc::Sender<EdgeMessage>,
    direction: Direction,
    customer: String,
    done: Option<tokio::sync::oneshot::Sender<Result<String, DialFailure>>>,
    progress: Option<mpsc::UnboundedSender<String>>,
    pool: Arc<SessionPool>,
    media: Option<Arc<MediaSession>>,
    audio: Option<CallAudio>,
    /// The machine said the call is over (`Finish` or `Close` carried out).
    over: bool,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cfg: Arc<BotConfig>,
        call: EdgeCall,
        tx: mpsc::Sender<EdgeMessage>,
        direction: Direction,
        customer: String,
        done: Option<tokio::sync::oneshot::Sender<Result<String, DialFailure>>>,
        progress: Option<mpsc::UnboundedSender<String>>,
        pool: Arc<SessionPool>,
    ) -> Driver {
        Driver {
            cfg,
            call,
            tx,
            direction,
            customer,
            done,
            progress,
            pool,
            media: None,
            audio: None,
            over: false,
        }
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        self.call.handle(input, std::time::Instant::now())
    }

    /// Runs the call to its end; returns its call id (none when a dial never became a call).
    async fn run(
        mut self,
        first: Vec<Output>,
        mut rx: mpsc::Receiver<HubMessage>,
    ) -> Option<String> {
        self.apply(first).await;
        let mut stats_tick = tokio::time::interval(Duration::from_secs(2));
        // The media is polled every half second: cheap (a counter and a state), and precise
        // enough for deadlines of seconds.
        let mut watch_tick = tokio::time::interval(Duration::from_millis(500));
        let mut hangup = self.audio.as_ref().map(CallAudio::hangup_requested);
        let mut dtmf = self.audio.as_ref().and_then(CallAudio::take_dtmf);
        while !self.over {
            if hangup.is_none() && self.audio.is_some() {
                hangup = self.audio.as_ref().map(CallAudio::hangup_requested);
                dtmf = self.audio.as_ref().and_then(CallAudio::take_dtmf);
            }
            let deadline = self
                .call
                .next_deadline()
                .map(tokio::time::Instant::from_std);
            let outs = tokio::select! {
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    self.feed(Input::Tick)
                }
                _ = watch_tick.tick() => match &self.media {
                    Some(m) => {
                        let input = Input::Media { state: m.state(), packets: m.packets_received() };
                        self.feed(input)
                    }
                    None => Vec::new(),
                },
                changed = async { match hangup.as_mut() { Some(h) => h.changed().await.map(|_| *h.borrow()), None => std::future::pending().await } } => {
                    match changed {
                        Ok(true) => {
                            info!("bot hangs up");
                            hangup = None;
                            self.feed(Input::Hangup)
                        }
                        Ok(false) => Vec::new(),
                        Err(_) => { hangup = None; Vec::new() }
                    }
                }
                Some(digit) = async { match dtmf.as_mut() { Some(d) => d.recv().await, None => None } } => {
                    info!(digit = %crate::pii::Digit(digit), "caller pressed a key");
                    self.feed(Input::Dtmf(digit))
                }
                _ = stats_tick.tick() => {
                    self.report_stats().await;
                    Vec::new()
                }
                msg = rx.recv() => match msg {
                    Some(HubMessage::Error { message, permanent, .. }) if self.call.call_id().is_some() => {
                        warn!(%message, permanent, "bridge reported an error");
                        Vec::new()
                    }
                    Some(m) => self.feed(Input::Hub(m)),
                    None => {
                        // The hub went away: tear down what there is.
                        self.dialed(Err(DialFailure::plain("hub connection closed")));
                        vec![Output::Finish { record: None }]
                    }
                },
            };
            self.apply(outs).await;
        }
        self.call.call_id().map(str::to_owned)
    }

    fn dialed(&mut self, r: Result<String, DialFailure>) {
        if let Some(d) = self.done.take() {
            let _ = d.send(r);
        }
    }

    /// Carries out the machine's outputs in order, feeding back what they produce.
    async fn apply(&mut self, outs: Vec<Output>) {
        let mut queue: std::collections::VecDeque<Output> = outs.into();
        while let Some(o) = queue.pop_front() {
            let more = match o {
                Output::BuildAnswer(offer) => {
                    let id = self.call.call_id().unwrap_or_default().to_owned();
                    match self.pool.answering(&id, &offer).await {
                        Ok((media, answer)) => {
                            tracing::debug!("answer ready");
                            self.media = Some(media);
                            self.feed(Input::AnswerReady(answer))
                        }
                        Err(e) => {
                            warn!(error = %e, "cannot set up media");
                            self.feed(Input::SetupFailed {
                                reason: e.to_string(),
                                offer_refused: e.offer_refused(),
                            })
                        }
                    }
                }
                Output::BuildOffer => {
                    let key = self.call.request_id().unwrap_or("dial").to_owned();
                    match MediaSession::offering(&self.cfg.media, &key).await {
                        Ok((media, offer)) => {
                            self.media = Some(media);
                            self.feed(Input::OfferReady(offer))
                        }
                        Err(e) => self.feed(Input::SetupFailed {
                            reason: e.to_string(),
                            offer_refused: false,
                        }),
                    }
                }
                Output::Send(m) => {
                    let answer = matches!(m, EdgeMessage::Answer { .. });
                    let _ = self.tx.send(m).await;
                    if answer {
                        // The answer goes first: the audio engine and the recording file are
                        // not needed before accept, and every millisecond here delays
                        // pre_accept. They also wait for the other calls' set-ups to finish
                        // (`settled`): in a burst, starting this call's audio would delay theirs.
                        self.pool.settled().await;
                        self.start_audio().await
                    } else {
                        Vec::new()
                    }
                }
                Output::ReleaseCandidates => {
                    if let Some(m) = &self.media {
                        m.release_candidates().await;
                    }
                    Vec::new()
                }
                Output::ApplyRemoteAnswer(sdp) => match &self.media {
                    Some(m) => match m.apply_answer(&sdp).await {
                        Ok(_) => Vec::new(),
                        Err(e) => {
                            warn!(error = %e, "the user's answer is unusable");
                            self.feed(Input::RemoteAnswerFailed(e.to_string()))
                        }
                    },
                    None => Vec::new(),
                },
                Output::AudioOn => {
                    info!("answered: audio on");
                    if let Some(a) = &self.audio {
                        a.unmute_call();
                    }
                    Vec::new()
                }
                Output::Dialed(r) => {
                    let ok = r.is_ok();
                    match &r {
                        Ok(id) => info!(call_id = %id, "dialing"),
                        Err(f) => warn!(message = %f.message, "dial failed"),
                    }
                    self.dialed(r);
                    if ok {
                        self.start_audio().await
                    } else {
                        Vec::new()
                    }
                }
                Output::Progress(p) => {
                    if let Some(tx) = &self.progress {
                        let _ = tx.send(p);
                    }
                    Vec::new()
                }
                Output::MediaGivenUp(v) => {
                    warn!(verdict = %v, "giving up on the call's media");
                    Vec::new()
                }
                Output::Finish { record } => {
                    self.finish(record).await;
                    self.over = true;
                    Vec::new()
                }
                Output::Close => {
                    if let Some(a) = self.audio.take() {
                        let _ = a.stop().await;
                    }
                    if let Some(m) = self.media.take() {
                        m.close().await;
                    }
                    self.over = true;
                    Vec::new()
                }
            };
            queue.extend(more);
        }
    }

    /// The call's audio engine and recording, once there is a call id and media.
    async fn start_audio(&mut self) -> Vec<Output> {
        let (Some(media), Some(call_id)) = (self.media.clone(), self.call.call_id()) else {
            return Vec::new();
        };
        if self.audio.is_some() {
            return Vec::new();
        }
        let call_id = call_id.to_owned();
        let recorder = recorder(&self.cfg, &call_id, self.direction, &self.customer).await;
        match CallAudio::start(
            media,
            self.cfg.behaviour(&call_id, &self.customer),
            self.cfg.encoder.clone(),
            recorder,
        ) {
            Ok(a) => {
                self.audio = Some(a);
                Vec::new()
            }
            Err(e) => {
                warn!(error = %e, "cannot start the audio engine");
                self.feed(Input::SetupFailed {
                    reason: e.to_string(),
                    offer_refused: false,
                })
            }
        }
    }

    async fn report_stats(&self) {
        let (Some(media), Some(audio), Some(call_id)) =
            (&self.media, &self.audio, self.call.call_id())
        else {
            return;
        };
        let mut stats = media.stats().await;
        stats.playout = audio.playout();
        let (heard, said) = audio.levels();
        (stats.level_in_dbfs, stats.level_out_dbfs) = (Some(heard), Some(said));
        let _ = self
            .tx
            .send(EdgeMessage::Stats {
                call_id: call_id.to_string(),
                stats,
            })
            .await;
    }

    /// Tears the call down: final quality, the recording finished with the bridge's row as its
    /// sidecar, and `Finished` to the bridge.
    async fn finish(&mut self, record: Option<Box<CallRecord>>) {
        let Some(call_id) = self.call.call_id().map(str::to_owned) else {
            if let Some(m) = self.media.take() {
                m.close().await;
            }
            return;
        };
        let (Some(media), Some(audio)) = (self.media.take(), self.audio.take()) else {
            if let Some(m) = self.media.take() {
                m.close().await;
            }
            return;
        };
        let mut stats = media.stats().await;
        stats.playout = audio.playout();
        let quality = QualitySummary::from(&stats);
        let recorder = audio.stop().await;
        media.close().await;
        let mut recording = None;
        if let Some(rec) = recorder {
            let path = rec.wav_path().display().to_string();
            let mut sidecar = record.map(|b| *b).unwrap_or_else(|| {
                CallRecord::new(&call_id, crate::call_record::Direction::Inbound, "", "")
            });
            sidecar.quality = Some(quality);
            sidecar.recording = Some(path.clone());
            // File IO (and its fsync) runs off the async workers, which carry other calls' audio.
            match tokio::task::spawn_blocking(move || rec.finish(&sidecar)).await {
                Ok(Ok(_)) => {
                    recording = Some(path);
                    if let Some(more) = &self.cfg.uploads {
                        more.notify_one();
                    }
                }
                Ok(Err(e)) => warn!(error = %e, "finishing the recording"),
                Err(e) => warn!(error = %e, "finishing the recording"),
            }
        }
        let _ = self
            .tx
            .send(EdgeMessage::Finished {
                call_id,
                quality,
                recording,
            })
            .await;
    }
}
