//! The sandbox's WhatsApp: simulated users (real WebRTC ICE-lite peers) and the calls between
//! them and the business, driven by the BSP's actions and reported through signed webhooks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;
use tracing::{Instrument, info, info_span, warn};

use super::voice::{Voice, VoiceReport, encode_tone};
use super::webhooks::{self, Business};
use crate::media::{MediaConfig, MediaSession, check_remote_sdp};

/// How long `pre_accept`s must stop before the simulated users apply their answers.
const PRE_ACCEPT_QUIET: Duration = Duration::from_millis(10);

/// How long a pre-accepted call's media may take to connect before it goes unrecorded.
const MEDIA_CONNECT_WAIT: Duration = Duration::from_secs(10);

/// How a simulated user treats a call from the business.
#[derive(Debug, Clone)]
pub struct UserPlan {
    pub answer_after: Duration,
    pub reject: bool,
    /// Never answer: the business gives up (or WhatsApp's own timeout would end it).
    pub no_answer: bool,
    pub hangup_after: Option<Duration>,
    pub tone_hz: f32,
}

impl Default for UserPlan {
    fn default() -> Self {
        UserPlan {
            answer_after: Duration::from_millis(800),
            reject: false,
            no_answer: false,
            hangup_after: None,
            tone_hz: 660.0,
        }
    }
}

/// A user calling the business.
#[derive(Debug, Clone)]
pub struct UserCall {
    pub user: String,
    pub name: String,
    pub tone_hz: f32,
    pub hangup_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimState {
    Offering,
    PreAccepted,
    Ringing,
    Active,
    Ended,
}

/// What the sandbox knows about one call, live or finished.
#[derive(Debug, Clone, Serialize)]
pub struct CallReport {
    pub call_id: String,
    pub user: String,
    pub user_initiated: bool,
    pub state: SimState,
    pub ended_by: Option<String>,
    pub voice: VoiceReport,
    /// The `biz_opaque_callback_data` the business gave in `connect`.
    pub opaque: Option<String>,
    /// Unix seconds at accept and end.
    pub accepted_at: Option<u64>,
    pub ended_at: Option<u64>,
}

/// Something happened in the sandbox (for status lines and tests).
#[derive(Debug, Clone, Serialize)]
pub struct SandboxEvent {
    pub call_id: String,
    pub what: String,
}

/// Faults a test or demo can inject.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Next actions of this name fail with this HTTP status (count, status).
    pub fail_next: HashMap<String, (u32, u16)>,
    /// Numbers that never granted call permission: `connect` to them fails like WhatsApp's.
    pub no_permission: HashSet<String>,
    /// Send every webhook twice (WhatsApp may).
    pub duplicate_webhooks: bool,
    /// Users' offers point at a dead port: ICE never connects.
    pub unreachable_media: bool,
    /// Users time arrivals but don't decode what they hear (load tests: the generator must not
    /// be the bottleneck). `heard_hz` is then absent.
    pub light_users: bool,
    /// `connect` makes its call at once but answers this much later (a reply lost or slow
    /// while the call goes ahead at WhatsApp).
    pub connect_reply_delay: Option<std::time::Duration>,
    /// The next this many media download URLs (Meta shape) are issued already expired: the
    /// bridge must fetch a fresh one (`GET /{media-id}`).
    pub expire_media_urls: u32,
}

/// A call Meta was asked to record or transcribe has ended: its files are made and announced.
struct MetaJob {
    call_id: String,
    user: String,
    capture: crate::api::Capture,
    tape: Option<Vec<Bytes>>,
    heard_hz: Option<f32>,
    seconds: u64,
}

/// A user call whose offer is ready but whose webhook is not sent yet.
struct PreparedCall {
    call_id: String,
    /// The connect webhook, built and signed ahead: sending is all that is left.
    webhook: SignedWebhook,
    call: UserCall,
}

/// A webhook body and its `X-Hub-Signature-256`.
struct SignedWebhook {
    body: Vec<u8>,
    signature: String,
}

/// What a terminate webhook needs about an ended call: the user, whether they placed it, and
/// (accept, end) unix times when it was connected.
type Ended = (String, bool, Option<(u64, u64)>);

/// Points every candidate of an SDP at port 9 (discard), where nothing answers ICE checks.
fn break_candidates(sdp: &str) -> String {
    sdp.split("\r\n")
        .map(|line| {
            if line.starts_with("a=candidate:") {
                let mut parts: Vec<&str> = line.split(' ').collect();
                if parts.len() > 5 {
                    parts[5] = "9";
                }
                parts.join(" ")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The user's end of a call.
#[derive(Clone)]
enum Phone {
    /// A simulated phone: a WebRTC peer of ours shaped like WhatsApp's media servers.
    Sim(Arc<MediaSession>),
    /// Another stack's peer (a browser a test drives): it made the offer, and the business's
    /// answer from `pre_accept` (or `accept`) is handed to it here.
    External(tokio::sync::mpsc::UnboundedSender<String>),
}

impl Phone {
    fn media(&self) -> Option<Arc<MediaSession>> {
        match self {
            Phone::Sim(m) => Some(m.clone()),
            Phone::External(_) => None,
        }
    }
}

struct SimCall {
    user: String,
    user_initiated: bool,
    media: Phone,
    voice: Option<Voice>,
    /// The SDP the business pre-accepted with; `accept` must carry the same.
    pre_accept_sdp: Option<String>,
    state: SimState,
    opaque: Option<String>,
    accepted_at: Option<u64>,
    ended_at: Option<u64>,
    ended_by: Option<String>,
    final_voice: Option<VoiceReport>,
    /// When the user's connect webhook was sent (user calls).
    offered_at: Option<std::time::Instant>,
    /// When the user's media connected after a `pre_accept`.
    media_connected_at: Option<std::time::Instant>,
    /// What Meta was asked to record of the call (Meta shape).
    capture: crate::api::Capture,
}

impl SimCall {
    /// A call as it starts: nothing answered, heard or ended yet.
    fn new(user: String, user_initiated: bool, media: Phone, state: SimState) -> SimCall {
        SimCall {
            user,
            user_initiated,
            media,
            voice: None,
            pre_accept_sdp: None,
            state,
            opaque: None,
            accepted_at: None,
            ended_at: None,
            ended_by: None,
            final_voice: None,
            offered_at: None,
            media_connected_at: None,
            capture: Default::default(),
        }
    }
}

pub(crate) struct WorldConfig {
    pub provider: crate::config::Provider,
    pub business: Business,
    pub app_secret: String,
    pub webhook_url: String,
    pub media: MediaConfig,
}

/// The simulated WhatsApp side.
pub struct World {
    cfg: WorldConfig,
    http: reqwest::Client,
    calls: Mutex<HashMap<String, SimCall>>,
    pub(crate) faults: Mutex<Faults>,
    plans: Mutex<HashMap<String, UserPlan>>,
    default_plan: Mutex<UserPlan>,
    tones: Mutex<HashMap<u32, Arc<Vec<Bytes>>>>,
    events: broadcast::Sender<SandboxEvent>,
    next_id: std::sync::atomic::AtomicU64,
    /// When the last `pre_accept` arrived: users apply answers once these stop (see
    /// [`World::on_pre_accept`]).
    last_pre_accept: Mutex<Option<std::time::Instant>>,
    /// Meta's side (permission rules, media store), used in the Meta shape.
    pub meta: super::meta::MetaSide,
    meta_jobs: tokio::sync::mpsc::UnboundedSender<MetaJob>,
    meta_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<MetaJob>>>,
    /// Where the sandbox's API listens (media download URLs point here).
    pub(crate) base_url: std::sync::OnceLock<String>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An error the BSP returns, in Meta's shape.
#[derive(Debug, Clone)]
pub struct ActionError {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl ActionError {
    pub fn bad(message: impl Into<String>) -> Self {
        ActionError {
            status: 400,
            code: 100,
            message: message.into(),
        }
    }
}

impl World {
    pub(crate) fn new(cfg: WorldConfig) -> Arc<World> {
        let (events, _) = broadcast::channel(256);
        let (meta_jobs, meta_rx) = tokio::sync::mpsc::unbounded_channel();
        Arc::new(World {
            cfg,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            calls: Mutex::new(HashMap::new()),
            faults: Mutex::new(Faults::default()),
            plans: Mutex::new(HashMap::new()),
            default_plan: Mutex::new(UserPlan::default()),
            tones: Mutex::new(HashMap::new()),
            events,
            next_id: std::sync::atomic::AtomicU64::new(1),
            last_pre_accept: Mutex::new(None),
            meta: Default::default(),
            meta_jobs,
            meta_rx: Mutex::new(Some(meta_rx)),
            base_url: std::sync::OnceLock::new(),
        })
    }

    pub fn business(&self) -> &Business {
        &self.cfg.business
    }

    /// Whose API shape this sandbox speaks.
    pub fn provider(&self) -> crate::config::Provider {
        self.cfg.provider
    }

    fn is_meta(&self) -> bool {
        self.cfg.provider == crate::config::Provider::Meta
    }

    /// Makes and announces Meta's recordings and transcripts (runs for the sandbox's life).
    pub(crate) fn start_meta_worker(self: &Arc<Self>) {
        let Some(mut rx) = self.meta_rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let world = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                // Meta announces them "usually under a minute" after the call.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let Some(world) = world.upgrade() else { break };
                world.publish_meta_media(job).await;
            }
        });
    }

    async fn publish_meta_media(&self, job: MetaJob) {
        let biz = self.cfg.business.clone();
        let base = self.base_url.get().cloned().unwrap_or_default();
        let mut files = Vec::new();
        if job.capture.recording.is_some() {
            match crate::audio::ogg_opus::mono_packets_to_ogg(job.tape.as_deref().unwrap_or(&[])) {
                Ok(ogg) => files.push((false, Bytes::from(ogg), "audio/ogg; codecs=opus")),
                Err(e) => warn!(error = %e, "sandbox: cannot make Meta's recording"),
            }
        }
        if job.capture.transcription.is_some() {
            // No speech recognition here: the transcript says what the user heard.
            let text = match job.heard_hz {
                Some(hz) => format!("(a tone of {hz:.0} Hz)"),
                None => "(silence)".to_owned(),
            };
            let doc = serde_json::json!({"segments": [{
                "speaker": "business", "channel": 1, "start": 0.0,
                "end": job.seconds as f64, "text": text}]});
            files.push((true, Bytes::from(doc.to_string()), "application/json"));
        }
        for (transcript, bytes, mime) in files {
            let id = self.meta.store(bytes, mime);
            let sha = self
                .meta
                .media(&id)
                .map(|m| m.sha256_hex)
                .unwrap_or_default();
            let ttl = {
                let mut f = self.faults();
                if f.expire_media_urls > 0 {
                    f.expire_media_urls -= 1;
                    Duration::ZERO
                } else {
                    super::meta::URL_TTL
                }
            };
            let url = format!("{base}/sandbox-media/{}", self.meta.issue_url(&id, ttl));
            self.emit(
                &job.call_id,
                if transcript {
                    "Meta's transcript is ready"
                } else {
                    "Meta's recording is ready"
                },
            );
            self.post_webhook(&webhooks::media_available(
                &biz,
                &job.call_id,
                &job.user,
                &webhooks::MetaFile {
                    transcript,
                    media_id: &id,
                    url: &url,
                    sha256: &sha,
                    mime_type: mime,
                },
            ))
            .await;
        }
    }

    /// A business call the user did not answer counts toward revoking their permission.
    async fn unanswered(&self, user: &str) {
        if !self.is_meta() {
            return;
        }
        if self.meta.call_unanswered(user) == super::permissions::Unanswered::Revoked {
            let biz = self.cfg.business.clone();
            self.post_webhook(&webhooks::permission_reply(
                &biz, user, false, false, None, true, "",
            ))
            .await;
        }
    }

    /// `POST /messages` with a call-permission request: counted against Meta's limits, then
    /// the user answers by their plan. Returns the message id.
    pub(crate) async fn on_permission_request(
        self: &Arc<Self>,
        to: &str,
    ) -> Result<String, ActionError> {
        let refused = self.faults().no_permission.contains(to);
        self.meta.request(to, refused).map_err(|e| ActionError {
            status: e.status,
            code: e.code,
            message: e.message,
        })?;
        let wamid = format!("wamid.SBXREQ{:016X}", rand::random::<u64>());
        let answer = self.meta.answer_for(to);
        let world = self.clone();
        let (user, context) = (to.to_owned(), wamid.clone());
        tokio::spawn(async move {
            let (accept, permanent, after) = match answer {
                super::meta::PermissionAnswer::Accept { permanent, after } => {
                    (true, permanent, after)
                }
                super::meta::PermissionAnswer::Reject { after } => (false, false, after),
                super::meta::PermissionAnswer::Ignore => return,
            };
            tokio::time::sleep(after).await;
            let status = world.meta.reply(&user, accept, permanent);
            if accept {
                // A user who allows calls is no longer held back by the test's fault list.
                world.faults().no_permission.remove(&user);
            }
            let expires = match status {
                super::permissions::PermissionStatus::Temporary { until } => {
                    Some(until.timestamp())
                }
                _ => None,
            };
            let biz = world.cfg.business.clone();
            world.emit(
                &context,
                format!(
                    "{user} {} the call-permission request",
                    if accept { "accepted" } else { "rejected" }
                ),
            );
            world
                .post_webhook(&webhooks::permission_reply(
                    &biz, &user, accept, permanent, expires, false, &context,
                ))
                .await;
        });
        Ok(wamid)
    }

    /// The secret webhooks are signed with.
    pub(crate) fn app_secret(&self) -> &str {
        &self.cfg.app_secret
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SandboxEvent> {
        self.events.subscribe()
    }

    pub fn set_plan(&self, user: &str, plan: UserPlan) {
        if let Ok(mut p) = self.plans.lock() {
            p.insert(user.to_string(), plan);
        }
    }

    pub fn set_default_plan(&self, plan: UserPlan) {
        if let Ok(mut p) = self.default_plan.lock() {
            *p = plan;
        }
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn plan_for(&self, user: &str) -> UserPlan {
        let plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans.get(user).cloned().unwrap_or_else(|| {
            self.default_plan
                .lock()
                .map(|p| p.clone())
                .unwrap_or_default()
        })
    }

    fn tone(&self, hz: f32) -> Arc<Vec<Bytes>> {
        let key = hz.to_bits();
        let mut tones = self.tones.lock().unwrap_or_else(|e| e.into_inner());
        tones
            .entry(key)
            .or_insert_with(|| Arc::new(encode_tone(hz, 1)))
            .clone()
    }

    fn emit(&self, call_id: &str, what: impl Into<String>) {
        let what = what.into();
        info!(call_id, "{what}");
        let _ = self.events.send(SandboxEvent {
            call_id: call_id.to_string(),
            what,
        });
    }

    fn new_call_id(&self) -> String {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("wacid.SBX{n:06}{:08X}", rand::random::<u32>())
    }

    /// Posts a webhook to the bridge, signed like Meta signs it.
    pub async fn post_webhook(&self, payload: &Value) {
        self.send_webhook(&self.sign_webhook(payload)).await;
    }

    fn sign_webhook(&self, payload: &Value) -> SignedWebhook {
        let body = payload.to_string().into_bytes();
        let signature = crate::webhook::sign(self.cfg.app_secret.as_bytes(), &body);
        SignedWebhook { body, signature }
    }

    async fn send_webhook(&self, webhook: &SignedWebhook) {
        let copies = if self.faults().duplicate_webhooks {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let r = self
                .http
                .post(&self.cfg.webhook_url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", &webhook.signature)
                .body(webhook.body.clone())
                .send()
                .await;
            match r {
                Ok(resp) if resp.status().is_success() => {}
                Ok(resp) => warn!(status = %resp.status(), "bridge refused a webhook"),
                Err(e) => warn!(error = %e, "cannot reach the bridge's webhook"),
            }
        }
    }

    /// A simulated user calls the business. Returns the call id.
    pub async fn place_user_call(self: &Arc<Self>, call: UserCall) -> Result<String, String> {
        let prepared = self.prepare_user_call(call).await?;
        Ok(self.ring_business(prepared).await)
    }

    /// A user whose phone is another stack (a browser a test drives) calls the business with
    /// `offer`, that stack's own. Returns the call id and where the business's answer arrives;
    /// the test gives it to the stack, and ends the call with [`World::user_hangs_up`].
    pub async fn place_external_user_call(
        self: &Arc<Self>,
        user: &str,
        name: &str,
        offer: &str,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let call_id = self.new_call_id();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(
            call_id.clone(),
            SimCall::new(
                user.to_string(),
                true,
                Phone::External(tx),
                SimState::Offering,
            ),
        );
        let webhook = self.sign_webhook(&webhooks::user_call(
            &self.cfg.business,
            &call_id,
            user,
            name,
            offer,
        ));
        let call = UserCall {
            user: user.to_string(),
            name: name.to_string(),
            tone_hz: 0.0,
            hangup_after: None,
        };
        let id = self
            .ring_business(PreparedCall {
                call_id,
                webhook,
                call,
            })
            .await;
        (id, rx)
    }

    /// Many users call at the same moment: every offer is built first, then all the connect
    /// webhooks go out together (what "50 calls arriving at once" means for setup latency).
    pub async fn place_user_calls_at_once(
        self: &Arc<Self>,
        calls: Vec<UserCall>,
    ) -> Vec<Result<String, String>> {
        let prepared =
            futures_util::future::join_all(calls.into_iter().map(|c| self.prepare_user_call(c)))
                .await;
        // Each webhook from its own task, as WhatsApp's many senders would: one task sending
        // fifty in turn would itself be the queue the first calls wait in.
        let sends: Vec<_> = prepared
            .into_iter()
            .map(|p| {
                let world = self.clone();
                tokio::spawn(async move {
                    match p {
                        Ok(p) => Ok(world.ring_business(p).await),
                        Err(e) => Err(e),
                    }
                })
            })
            .collect();
        futures_util::future::join_all(sends)
            .await
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| Err(format!("webhook task failed: {e}"))))
            .collect()
    }

    /// The user's phone builds its offer (media ready, listening) but has not called yet.
    async fn prepare_user_call(self: &Arc<Self>, call: UserCall) -> Result<PreparedCall, String> {
        let call_id = self.new_call_id();
        let (media, offer) = MediaSession::offering(&self.lite_media(), &call_id)
            .await
            .map_err(|e| e.to_string())?;
        let offer = if self.faults().unreachable_media {
            break_candidates(&offer)
        } else {
            offer
        };
        let voice = Voice::start(media.clone(), self.tone(call.tone_hz), self.light());
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(
            call_id.clone(),
            SimCall {
                voice: Some(voice),
                ..SimCall::new(
                    call.user.clone(),
                    true,
                    Phone::Sim(media),
                    SimState::Offering,
                )
            },
        );
        let webhook = self.sign_webhook(&webhooks::user_call(
            &self.cfg.business,
            &call_id,
            &call.user,
            &call.name,
            &offer,
        ));
        Ok(PreparedCall {
            call_id,
            webhook,
            call,
        })
    }

    /// Sends the prepared call's connect webhook; returns its call id.
    async fn ring_business(self: &Arc<Self>, p: PreparedCall) -> String {
        let PreparedCall {
            call_id,
            webhook,
            call,
        } = p;
        let span = info_span!("sim_user", call_id = %call_id, user = %call.user);
        self.emit(
            &call_id,
            format!("{} ({}) calls the business", call.name, call.user),
        );
        // Stamped as the webhook leaves: the latency measured from here is the bridge's and the
        // network's, not this sandbox's own preparation.
        if let Some(c) = self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&call_id)
        {
            c.offered_at = Some(std::time::Instant::now());
        }
        self.send_webhook(&webhook).instrument(span).await;
        if self.is_meta() {
            // A user who calls the business lets it call back (WhatsApp says so automatically).
            if let super::permissions::PermissionStatus::Temporary { until } =
                self.meta.user_called(&call.user)
            {
                let biz = self.cfg.business.clone();
                self.post_webhook(&webhooks::permission_reply(
                    &biz,
                    &call.user,
                    true,
                    false,
                    Some(until.timestamp()),
                    true,
                    &call_id,
                ))
                .await;
            }
        }
        if let Some(after) = call.hangup_after {
            let world = self.clone();
            let id = call_id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                world.user_hangs_up(&id).await;
            });
        }
        call_id
    }

    fn light(&self) -> bool {
        self.faults().light_users
    }

    fn lite_media(&self) -> MediaConfig {
        MediaConfig {
            ice_lite: true,
            ..self.cfg.media.clone()
        }
    }

    /// The user presses a key on the phone's keypad (RFC 4733 telephone-event).
    pub async fn press_key(&self, call_id: &str, digit: char) -> Result<(), String> {
        let media = {
            let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            calls
                .get(call_id)
                .map(|c| c.media.media())
                .ok_or_else(|| format!("no call {call_id}"))?
                .ok_or_else(|| format!("call {call_id}'s phone presses its own keys"))?
        };
        media.send_dtmf(digit).await.map_err(|e| e.to_string())
    }

    /// The user ends the call: media closes, WhatsApp reports `terminate`.
    pub async fn user_hangs_up(&self, call_id: &str) {
        let Some((user, initiated, connected)) = self.end_call(call_id, "user") else {
            return;
        };
        self.emit(call_id, "user hung up");
        let payload = webhooks::terminate(
            &self.cfg.business,
            call_id,
            &user,
            initiated,
            "COMPLETED",
            connected,
        );
        self.post_webhook(&payload).await;
    }

    /// The user's phone stops sending audio but neither hangs up nor drops the connection:
    /// the business must notice the silence and end the call itself.
    pub fn user_falls_silent(&self, call_id: &str) -> Result<(), String> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let voice = calls
            .get(call_id)
            .ok_or_else(|| format!("no call {call_id}"))?
            .voice
            .as_ref()
            .ok_or_else(|| format!("call {call_id} has no simulated voice"))?;
        voice.fall_silent();
        self.emit(call_id, "user's audio stopped");
        Ok(())
    }

    /// Marks a call ended, stops its media; returns what the terminate webhook needs, or None
    /// when it had already ended (so a second hang-up is a no-op).
    fn end_call(&self, call_id: &str, by: &str) -> Option<Ended> {
        let (media, out) = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            let c = calls.get_mut(call_id)?;
            if c.state == SimState::Ended {
                return None;
            }
            c.state = SimState::Ended;
            let now = unix_now();
            c.ended_at = Some(now);
            c.ended_by = Some(by.to_string());
            c.final_voice = c.voice.as_ref().map(Voice::report);
            let tape = c.voice.as_ref().and_then(Voice::take_tape);
            c.voice = None;
            let connected = c.accepted_at.map(|a| (a, now));
            if !c.capture.is_empty()
                && let Some(accepted) = c.accepted_at
            {
                let _ = self.meta_jobs.send(MetaJob {
                    call_id: call_id.to_string(),
                    user: c.user.clone(),
                    capture: c.capture.clone(),
                    tape,
                    heard_hz: c.final_voice.as_ref().and_then(|v| v.heard_hz),
                    seconds: now.saturating_sub(accepted),
                });
            }
            (
                c.media.clone(),
                (c.user.clone(), c.user_initiated, connected),
            )
        };
        if let Some(media) = media.media() {
            tokio::spawn(async move { media.close().await });
        }
        Some(out)
    }

    /// When a pre-accepted call's media connected, as the user saw it (load test).
    pub fn media_connected_at(&self, call_id: &str) -> Option<std::time::Instant> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(call_id)?
            .media_connected_at
    }

    /// When the connect webhook of a user's call was sent.
    pub fn offered_at(&self, call_id: &str) -> Option<std::time::Instant> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(call_id)?
            .offered_at
    }

    pub fn report(&self, call_id: &str) -> Option<CallReport> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.get(call_id).map(|c| Self::report_of(call_id, c))
    }

    pub fn reports(&self) -> Vec<CallReport> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<CallReport> = calls.iter().map(|(id, c)| Self::report_of(id, c)).collect();
        v.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        v
    }

    fn report_of(call_id: &str, c: &SimCall) -> CallReport {
        CallReport {
            call_id: call_id.to_string(),
            user: c.user.clone(),
            user_initiated: c.user_initiated,
            state: c.state,
            ended_by: c.ended_by.clone(),
            voice: c
                .voice
                .as_ref()
                .map(Voice::report)
                .or_else(|| c.final_voice.clone())
                .unwrap_or_default(),
            opaque: c.opaque.clone(),
            accepted_at: c.accepted_at,
            ended_at: c.ended_at,
        }
    }

    /// `connect`: the business calls a user. Returns the new call id.
    pub(crate) async fn on_connect(
        self: &Arc<Self>,
        to: &str,
        offer: &str,
        opaque: Option<String>,
        capture: crate::api::Capture,
    ) -> Result<String, ActionError> {
        let refused = self.faults().no_permission.contains(to);
        if self.is_meta() {
            self.meta.may_call(to, refused).map_err(|e| ActionError {
                status: e.status,
                code: e.code,
                message: e.message,
            })?;
        } else if refused {
            return Err(ActionError {
                status: 400,
                code: 138006,
                message: format!(
                    "Business-initiated calling is not permitted: {to} has not granted call permission"
                ),
            });
        }
        crate::media::check_remote_sdp(offer)
            .map_err(|e| ActionError::bad(format!("Invalid parameter sdp: {e}")))?;
        let call_id = self.new_call_id();
        let media = MediaSession::new(&self.lite_media(), &call_id)
            .await
            .map_err(|e| ActionError {
                status: 500,
                code: 1,
                message: e.to_string(),
            })?;
        let plan = self.plan_for(to);
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(
            call_id.clone(),
            SimCall {
                opaque: opaque.clone(),
                capture,
                ..SimCall::new(
                    to.to_string(),
                    false,
                    Phone::Sim(media.clone()),
                    SimState::Ringing,
                )
            },
        );
        self.emit(&call_id, format!("business calls {to}"));
        let world = self.clone();
        let id = call_id.clone();
        let to = to.to_string();
        let offer = offer.to_string();
        let span = info_span!("sim_user", call_id = %call_id, user = %to);
        tokio::spawn(
            async move { world.ring_user(id, to, offer, opaque, media, plan).await }
                .instrument(span),
        );
        Ok(call_id)
    }

    /// The user's phone rings, answers (or not) according to its plan.
    async fn ring_user(
        self: Arc<Self>,
        call_id: String,
        user: String,
        offer: String,
        opaque: Option<String>,
        media: Arc<MediaSession>,
        plan: UserPlan,
    ) {
        let biz = self.cfg.business.clone();
        let answer = match media.answer(&offer).await {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "simulated user cannot answer the business offer");
                self.user_call_fails(&call_id).await;
                return;
            }
        };
        let voice = Voice::start(media, self.tone(plan.tone_hz), self.light());
        if let Some(c) = self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&call_id)
        {
            if c.capture.recording.is_some() {
                voice.start_tape();
            }
            c.voice = Some(voice);
        }
        // WhatsApp sends the user's SDP answer as soon as the phone has it, then progress.
        self.post_webhook(&webhooks::user_answer(
            &biz,
            &call_id,
            &user,
            &answer,
            opaque.as_deref(),
        ))
        .await;
        self.post_webhook(&webhooks::status(&biz, &call_id, &user, "RINGING"))
            .await;
        if plan.no_answer {
            return;
        }
        tokio::time::sleep(plan.answer_after).await;
        if self.state(&call_id) != Some(SimState::Ringing) {
            return;
        }
        if plan.reject {
            self.emit(&call_id, "user rejected");
            self.unanswered(&user).await;
            self.post_webhook(&webhooks::status(&biz, &call_id, &user, "REJECTED"))
                .await;
            if let Some((u, i, c)) = self.end_call(&call_id, "user") {
                self.post_webhook(&webhooks::terminate(&biz, &call_id, &u, i, "COMPLETED", c))
                    .await;
            }
            return;
        }
        self.mark_active(&call_id);
        if self.is_meta() {
            self.meta.call_connected(&user);
        }
        self.emit(&call_id, "user answered");
        self.post_webhook(&webhooks::status(&biz, &call_id, &user, "ACCEPTED"))
            .await;
        if let Some(after) = plan.hangup_after {
            tokio::time::sleep(after).await;
            self.user_hangs_up(&call_id).await;
        }
    }

    fn state(&self, call_id: &str) -> Option<SimState> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(call_id)
            .map(|c| c.state)
    }

    fn mark_active(&self, call_id: &str) {
        if let Some(c) = self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(call_id)
        {
            c.state = SimState::Active;
            c.accepted_at = Some(unix_now());
            if let Some(v) = &c.voice {
                v.talk();
            }
        }
    }

    /// `pre_accept`: the business's answer arrives while the user's call rings.
    pub(crate) async fn on_pre_accept(
        self: &Arc<Self>,
        call_id: &str,
        sdp: &str,
    ) -> Result<(), ActionError> {
        // Checked now, so a bad answer gets its 400 as from WhatsApp; applied below, later.
        check_remote_sdp(sdp)
            .map_err(|e| ActionError::bad(format!("Invalid parameter sdp: {e}")))?;
        let media = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            let c = Self::user_call_mut(&mut calls, call_id)?;
            match c.state {
                SimState::Offering => {}
                SimState::PreAccepted if c.pre_accept_sdp.as_deref() == Some(sdp) => return Ok(()),
                s => {
                    return Err(ActionError::bad(format!(
                        "call {call_id} cannot be pre-accepted in state {s:?}"
                    )));
                }
            }
            c.pre_accept_sdp = Some(sdp.to_string());
            c.state = SimState::PreAccepted;
            match &c.media {
                Phone::Sim(m) => m.clone(),
                Phone::External(to) => {
                    let _ = to.send(sdp.to_string());
                    return Ok(());
                }
            }
        };
        let first = self
            .last_pre_accept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(std::time::Instant::now())
            .is_none_or(|t| t.elapsed() >= PRE_ACCEPT_QUIET);
        self.emit(call_id, "pre-accepted: media connecting while it rings");
        // The user's phone applies the answer at once, unless more pre_accepts are arriving:
        // then once they stop for a moment. WhatsApp does this on its own machines; here it
        // shares the bridge's cores, and the load test measures the bridge while fifty
        // pre_accepts arrive. Nothing is lost meanwhile: our lite user only ever answers the
        // bridge's checks, and the bridge holds those back until its own set-ups settle.
        let (world, id, sdp) = (self.clone(), call_id.to_owned(), sdp.to_owned());
        tokio::spawn(async move {
            if !first {
                world.pre_accepts_quiet().await;
            }
            if let Err(e) = media.apply_answer(&sdp).await {
                warn!(call_id = %id, error = %e, "simulated user cannot apply the business answer");
                world.emit(&id, "media failed");
                world.user_call_fails(&id).await;
                return;
            }
            if media.wait_connected(MEDIA_CONNECT_WAIT).await.is_ok()
                && let Some(c) = world
                    .calls
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(&id)
            {
                c.media_connected_at = Some(std::time::Instant::now());
            }
        });
        Ok(())
    }

    /// Returns once no `pre_accept` has arrived for [`PRE_ACCEPT_QUIET`].
    async fn pre_accepts_quiet(&self) {
        loop {
            let since = self
                .last_pre_accept
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map_or(PRE_ACCEPT_QUIET, |t| t.elapsed());
            if since >= PRE_ACCEPT_QUIET {
                return;
            }
            tokio::time::sleep(PRE_ACCEPT_QUIET - since).await;
        }
    }

    /// The user's media failed: the call ends with a `FAILED` terminate (once).
    async fn user_call_fails(&self, call_id: &str) {
        if let Some((user, initiated, connected)) = self.end_call(call_id, "user") {
            let biz = &self.cfg.business;
            self.post_webhook(&webhooks::terminate(
                biz, call_id, &user, initiated, "FAILED", connected,
            ))
            .await;
        }
    }

    /// `accept`: the business answers; the user starts talking.
    pub(crate) async fn on_accept(
        &self,
        call_id: &str,
        sdp: &str,
        capture: crate::api::Capture,
    ) -> Result<(), ActionError> {
        let needs_answer = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            let c = Self::user_call_mut(&mut calls, call_id)?;
            if capture.recording.is_some()
                && let Some(v) = &c.voice
            {
                v.start_tape();
            }
            if !capture.is_empty() {
                c.capture = capture;
            }
            match (c.state, c.pre_accept_sdp.as_deref()) {
                (SimState::Active, _) => return Ok(()),
                (SimState::PreAccepted, Some(pre)) if pre != sdp => {
                    return Err(ActionError::bad(
                        "Invalid parameter sdp: accept SDP differs from the pre_accept SDP",
                    ));
                }
                (SimState::PreAccepted, _) => None,
                (SimState::Offering, _) => match &c.media {
                    Phone::Sim(m) => Some(m.clone()),
                    Phone::External(to) => {
                        let _ = to.send(sdp.to_string());
                        None
                    }
                },
                (s, _) => {
                    return Err(ActionError::bad(format!(
                        "call {call_id} cannot be accepted in state {s:?}"
                    )));
                }
            }
        };
        if let Some(media) = needs_answer {
            media
                .apply_answer(sdp)
                .await
                .map_err(|e| ActionError::bad(format!("Invalid parameter sdp: {e}")))?;
        }
        self.mark_active(call_id);
        self.emit(call_id, "accepted by the business");
        Ok(())
    }

    /// `reject`: the business declines the user's call.
    pub(crate) async fn on_reject(&self, call_id: &str) -> Result<(), ActionError> {
        {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            Self::user_call_mut(&mut calls, call_id)?;
        }
        if let Some((u, i, c)) = self.end_call(call_id, "business") {
            self.emit(call_id, "rejected by the business");
            let biz = self.cfg.business.clone();
            self.post_webhook(&webhooks::terminate(&biz, call_id, &u, i, "COMPLETED", c))
                .await;
        }
        Ok(())
    }

    /// `terminate`: the business hangs up. Ending an ended call is accepted (idempotent).
    pub(crate) async fn on_terminate(&self, call_id: &str) -> Result<(), ActionError> {
        if !self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(call_id)
        {
            return Err(ActionError::bad(format!(
                "Invalid parameter call_id: unknown call {call_id}"
            )));
        }
        if let Some((u, i, c)) = self.end_call(call_id, "business") {
            self.emit(call_id, "terminated by the business");
            if !i && c.is_none() {
                self.unanswered(&u).await;
            }
            let biz = self.cfg.business.clone();
            self.post_webhook(&webhooks::terminate(&biz, call_id, &u, i, "COMPLETED", c))
                .await;
        }
        Ok(())
    }

    fn user_call_mut<'a>(
        calls: &'a mut HashMap<String, SimCall>,
        call_id: &str,
    ) -> Result<&'a mut SimCall, ActionError> {
        let c = calls.get_mut(call_id).ok_or_else(|| {
            ActionError::bad(format!("Invalid parameter call_id: unknown call {call_id}"))
        })?;
        if !c.user_initiated {
            return Err(ActionError::bad(format!(
                "call {call_id} was placed by the business; only user calls are answered"
            )));
        }
        Ok(c)
    }

    /// Ends every call and frees its media (sandbox shutdown).
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for id in ids {
            self.end_call(&id, "shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::remote_sdp::tests::WHATSAPP_OFFER;
    use crate::sandbox::Sandbox;

    fn state(world: &World, id: &str) -> SimState {
        world.calls.lock().unwrap()[id].state
    }

    #[tokio::test]
    async fn pre_accept_checks_the_sdp_at_once_and_a_later_failure_ends_the_call() {
        let (sandbox, _) = Sandbox::start_for_new_bridge("app-secret").await.unwrap();
        let world = sandbox.world.clone();
        // No bridge listens: the connect webhook is lost, the call still rings.
        let id = world
            .place_user_call(UserCall {
                user: "5215500000077".into(),
                name: "Eva".into(),
                tone_hz: 440.0,
                hangup_after: None,
            })
            .await
            .unwrap();

        let err = world.on_pre_accept(&id, "v=0\r\n").await.unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.message.starts_with("Invalid parameter sdp"),
            "{}",
            err.message
        );
        assert_eq!(
            state(&world, &id),
            SimState::Offering,
            "a refused SDP changes nothing"
        );

        // The user's phone loses its media before it gets to apply the answer.
        let media = world.calls.lock().unwrap()[&id].media.media().unwrap();
        media.close().await;
        // Passes the BSP's check (audio, Opus, ICE credentials, fingerprint, role).
        let answer = WHATSAPP_OFFER.replace("a=setup:actpass", "a=setup:active");
        world.on_pre_accept(&id, &answer).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while state(&world, &id) != SimState::Ended {
            assert!(
                std::time::Instant::now() < deadline,
                "still {:?}: a failed answer must end the call",
                state(&world, &id)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sandbox.shutdown().await;
    }
}
