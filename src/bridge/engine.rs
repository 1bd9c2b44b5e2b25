//! The bridge's engine: one task that owns the call registry, the router and the edges, and
//! drives each call's state machine. Everything reaches it as an [`EngineInput`] on one channel
//! (webhooks, edge messages, BSP results, timers), so call state needs no locks and events for one
//! call are handled in the order they arrived.
//!
//! IO never happens inside the loop: BSP actions and timers run in spawned tasks that report back
//! as inputs, and history writes go to a writer thread. A slow BSP therefore never delays another
//! call's webhook.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

use super::history::HistoryWriter;
use super::metrics::Metrics;
use super::queue::{CallQueue, Left};
use super::routing::Router;
use crate::api::{ApiError, BspClient};
use crate::call::{Action, Call, CallTimeouts, Command, Input, Progress, Registry, Timer};
use crate::call_record::{CallRecord, QualitySummary};
use crate::hub_protocol::{EdgeKind, EdgeMessage, HubMessage};
use crate::webhook::{CallEvent, CallStatus};

/// Webhooks for a call id we don't know yet (a `connect` answer can overtake the BSP's reply
/// that tells us the id) wait this long for the call to appear.
const ORPHAN_TTL: Duration = Duration::from_secs(15);

pub enum EngineInput {
    Webhook {
        events: Vec<CallEvent>,
        /// When it arrived, on both clocks (the call's durations count from here).
        received: crate::call::Now,
    },
    EdgeJoined {
        edge_id: String,
        name: String,
        kind: EdgeKind,
        may_dial: bool,
        max_calls: Option<usize>,
        tx: mpsc::Sender<HubMessage>,
    },
    Edge {
        edge_id: String,
        msg: EdgeMessage,
    },
    EdgeLeft {
        edge_id: String,
    },
    ActionResult {
        call_id: String,
        action: crate::call::ActionKind,
        result: Result<(), ActionFailure>,
    },
    DialResult {
        edge_id: String,
        request_id: String,
        to: String,
        result: Result<String, ActionFailure>,
    },
    /// A dial was not placed for want of permission (Meta's check, or `connect`'s refusal).
    DialRefused {
        edge_id: String,
        request_id: String,
        to: String,
        refusal: super::permissions::Refusal,
    },
    /// A permission request an edge asked for was sent (the message id), or why not.
    PermissionRequested {
        edge_id: String,
        request_id: String,
        to: String,
        result: Result<String, (String, Option<String>)>,
    },
    /// What Meta's check said of a user's permission (remembered in history).
    PermissionSeen(super::history::PermissionRow),
    /// Meta's recording or transcript of a call is in the store.
    MetaMediaStored {
        call_id: String,
        kind: crate::webhook::MetaMediaKind,
        path: String,
    },
    Timer {
        call_id: String,
        timer: Timer,
        seq: u32,
    },
    Sweep,
    /// A call's recording is now at `path` in the store (uploaded, or compacted to Ogg Opus).
    RecordingStored {
        call_id: String,
        path: String,
    },
    /// What is happening now, for the supervisor console.
    Snapshot {
        reply: tokio::sync::oneshot::Sender<LiveView>,
    },
    /// Stop: end live calls at the BSP and return.
    Shutdown,
}

/// The console's live view: calls in progress, the edges with their presence, the queue.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LiveView {
    pub calls: Vec<LiveCall>,
    pub edges: Vec<LiveEdge>,
    pub queue_waiting: usize,
    pub queue_longest_s: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveCall {
    pub call_id: String,
    pub direction: &'static str,
    pub customer: String,
    pub caller_name: Option<String>,
    pub edge: Option<String>,
    pub state: &'static str,
    /// RFC 3339: when it was offered (or dialled), and answered.
    pub offered_at: String,
    pub accepted_at: Option<String>,
    /// good, fair or poor, from the edge's last report (none yet: `None`).
    pub grade: Option<&'static str>,
    pub loss_pct: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveEdge {
    pub edge_id: String,
    pub name: String,
    pub available: bool,
    pub calls: usize,
    pub call_ids: Vec<String>,
}

/// A coarse grade for a supervisor's glance: loss and jitter as the softphone grades them.
fn grade(q: &QualitySummary) -> &'static str {
    if q.loss_pct >= 5.0 || q.jitter_ms >= 60.0 {
        "poor"
    } else if q.loss_pct >= 1.0 || q.jitter_ms >= 30.0 {
        "fair"
    } else {
        "good"
    }
}

#[derive(Debug, Clone)]
pub struct ActionFailure {
    pub message: String,
    pub permanent: bool,
    /// The request may have reached the BSP (a timeout, a dropped connection after sending):
    /// a `connect` may then have made a call we never heard the id of.
    pub outcome_unknown: bool,
}

impl From<&ApiError> for ActionFailure {
    fn from(e: &ApiError) -> Self {
        ActionFailure {
            message: e.to_string(),
            permanent: e.is_permanent(),
            outcome_unknown: matches!(e, ApiError::Timeout { .. } | ApiError::Unreachable { .. }),
        }
    }
}

/// How long a `connect` whose reply was lost is remembered: its call's first webhook (the
/// user's answer or RINGING) comes within WhatsApp's ring time.
const LOST_CONNECT_MEMORY: Duration = Duration::from_secs(120);

/// What the server and tools may read while the engine runs.
#[derive(Debug, Default)]
pub struct Shared {
    /// Records of calls this process handled, live or recently ended.
    pub records: HashMap<String, CallRecord>,
    /// Webhook → pre_accept submitted (inbound) or dial → answer (outbound), per call.
    pub setup_ms: HashMap<String, u64>,
    pub edges: usize,
    pub phases: HashMap<&'static str, usize>,
}

pub struct EngineConfig {
    pub business: String,
    pub timeouts: CallTimeouts,
    /// Concurrent calls one bot edge takes (agents take one).
    pub bot_max_calls: usize,
    /// Connect webhooks stamped further than this from now are not answered.
    pub max_offer_age: Duration,
    /// The edge (by name) that takes queued calls whose wait ran out (`routing.overflow`).
    pub overflow: Option<String>,
    /// Answered within this of arriving counts toward the service level.
    pub service_level: Duration,
    /// `[[routing.groups]]`: which edges take which callers.
    pub groups: Vec<crate::config::GroupConfig>,
    /// Outside these hours calls overflow at once (`routing.hours_file`).
    pub hours: Option<crate::settings::CallHours>,
    /// The recordings store (`recording.dir`): a recording an edge finished there (a bot in
    /// this process) is compacted like an upload; `keep_wav` keeps its WAV too.
    pub store_dir: Option<std::path::PathBuf>,
    pub keep_wav: bool,
    /// Meta-side recording and transcription asked for by default (`[recording.meta]`).
    pub meta_capture: crate::config::MetaCaptureConfig,
}

/// Numbers whose permission edges asked about, and which edges: bounded, oldest dropped.
const PERMISSION_WATCHES: usize = 10_000;

struct EdgeInfo {
    name: String,
    tx: mpsc::Sender<HubMessage>,
    /// Whether its identity may place calls.
    may_dial: bool,
    limits: super::rate::EdgeLimits,
}

pub struct Engine {
    cfg: EngineConfig,
    bsp: Arc<BspClient>,
    registry: Registry,
    router: Router,
    edges: HashMap<String, EdgeInfo>,
    /// The edge holding a router slot for each call.
    slots: HashMap<String, String>,
    orphans: HashMap<String, (Instant, Vec<Input>)>,
    /// The `biz_opaque_callback_data` (our dial request id) of parked webhooks → their call id.
    orphan_opaque: HashMap<String, String>,
    history: Option<HistoryWriter>,
    shared: Arc<Mutex<Shared>>,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<EngineInput>,
    /// (edge, call) pairs already warned about: a refused edge is logged once per call.
    refused: std::collections::HashSet<(String, String)>,
    /// Call ids that became calls (from history at start, and since), oldest first.
    known: std::collections::HashSet<String>,
    known_order: std::collections::VecDeque<String>,
    /// `connect`s whose reply never came (request id = our `biz_opaque_callback_data` → the
    /// number and when): a webhook echoing one is a call nobody carries, ended at once.
    lost_connects: HashMap<String, (String, Instant)>,
    /// Callers waiting for a free edge, in order.
    queue: CallQueue,
    /// The group (index in `cfg.groups`) of each inbound call that has one.
    call_group: HashMap<String, usize>,
    /// Edges waiting to hear a user's permission reply, by the user's number.
    permission_watch: HashMap<String, Vec<String>>,
}

/// How long shutdown waits for the BSP to confirm the ends of live calls: longer than one
/// request with its retries (5 s timeout, 2 retries with backoff in the default config).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(25);

/// Call ids remembered so that a replayed connect never becomes a second call.
const KNOWN_CALLS: usize = 100_000;

/// What the refusal log remembers at most; past it, it starts again.
const REFUSED_MEMORY: usize = 10_000;

impl Engine {
    pub fn new(
        cfg: EngineConfig,
        bsp: Arc<BspClient>,
        history: Option<HistoryWriter>,
        shared: Arc<Mutex<Shared>>,
        metrics: Arc<Metrics>,
        tx: mpsc::Sender<EngineInput>,
    ) -> Engine {
        Engine {
            cfg,
            bsp,
            registry: Registry::default(),
            router: Router::default(),
            edges: HashMap::new(),
            slots: HashMap::new(),
            orphans: HashMap::new(),
            orphan_opaque: HashMap::new(),
            history,
            shared,
            metrics,
            tx,
            refused: Default::default(),
            known: Default::default(),
            known_order: Default::default(),
            lost_connects: HashMap::new(),
            queue: CallQueue::default(),
            call_group: HashMap::new(),
            permission_watch: HashMap::new(),
        }
    }

    /// Remembers call ids that already were calls (history rows, at start).
    pub fn remember_calls(&mut self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.remember(id);
        }
    }

    fn remember(&mut self, id: String) {
        if self.known.insert(id.clone()) {
            self.known_order.push_back(id);
            if self.known_order.len() > KNOWN_CALLS
                && let Some(old) = self.known_order.pop_front()
            {
                self.known.remove(&old);
            }
        }
    }

    /// Why a connect webhook must not become a call: stamped outside the window, or a call id
    /// that already was a call. `None`: a fresh call.
    fn refuse_offer(
        &self,
        call_id: &str,
        timestamp: Option<i64>,
        now: DateTime<Utc>,
    ) -> Option<String> {
        if let Some(ts) = timestamp {
            let age = now.timestamp() - ts;
            let max = self.cfg.max_offer_age.as_secs() as i64;
            if age.abs() > max {
                return Some(format!(
                    "its timestamp is {age} s from now (window ±{max} s)"
                ));
            }
        }
        if self.known.contains(call_id) {
            return Some("its call id already was a call (history)".to_owned());
        }
        None
    }

    /// Whether `edge_id` may act on `call_id`: only the edge holding a call does. Anything else
    /// is refused; an edge that never held the call is counted and logged once (an edge that
    /// held it and gave it back, sending late, is not an intruder).
    fn holds(&mut self, edge_id: &str, call_id: &str) -> bool {
        let Some(call) = self.registry.get(call_id) else {
            debug!(
                edge = edge_id,
                call_id, "edge message for an unknown call ignored"
            );
            return false;
        };
        if call.edge.as_deref() == Some(edge_id) {
            return true;
        }
        if call.tried.contains(edge_id) {
            debug!(
                edge = edge_id,
                call_id, "late message from an edge that gave the call back"
            );
            return false;
        }
        self.metrics.edge_refused.inc();
        if self.refused.len() >= REFUSED_MEMORY {
            self.refused.clear();
        }
        if self
            .refused
            .insert((edge_id.to_owned(), call_id.to_owned()))
        {
            warn!(edge = edge_id, call_id, holder = ?call.edge, "edge acted on a call it does not hold: refused");
        }
        false
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<EngineInput>) {
        let sweeper = {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    if tx.send(EngineInput::Sweep).await.is_err() {
                        break;
                    }
                }
            })
        };
        while let Some(input) = rx.recv().await {
            if matches!(input, EngineInput::Shutdown) {
                break;
            }
            self.step(input);
            // Whatever the input, an edge may have become free for a waiting caller.
            self.drain_queue();
        }
        sweeper.abort();
        // The server is gone: end what is still up so WhatsApp does not keep ringing. The calls
        // decide how (reject or terminate); the actions are awaited here, not spawned, because
        // nothing will read their results any more.
        // All at once, under one deadline longer than a BSP request with its retries.
        let live: Vec<String> = self.registry.live().map(|c| c.id.clone()).collect();
        let mut ending = Vec::new();
        for id in live {
            let Some(call) = self.registry.get_mut(&id) else {
                continue;
            };
            let to = call.record.customer.clone();
            let Ok(cmds) = call.handle(Input::Shutdown, now()) else {
                continue;
            };
            for cmd in cmds {
                match cmd {
                    Command::Submit(action) => {
                        let (bsp, id) = (self.bsp.clone(), id.clone());
                        let to = to.clone();
                        ending.push(async move {
                            if let Err(e) = perform(&bsp, &id, &to, &action, &Default::default()).await {
                                warn!(call_id = %id, error = %e, "could not end the call at shutdown");
                            }
                        });
                    }
                    Command::ToEdge { edge, msg } => self.send_edge(&edge, msg),
                    Command::Finished { .. } | Command::RecordUpdated => self.write_history(&id),
                    Command::Route
                    | Command::Enqueue
                    | Command::Overflow
                    | Command::SetTimer { .. } => {}
                }
            }
        }
        let n = ending.len();
        if tokio::time::timeout(SHUTDOWN_DEADLINE, futures_util::future::join_all(ending))
            .await
            .is_err()
        {
            warn!(calls = n, deadline = ?SHUTDOWN_DEADLINE, "shutdown: not every call was ended at the BSP in time");
        }
        // Every row closed is on disk before the process exits.
        if let Some(h) = self.history.take() {
            let _ = tokio::task::spawn_blocking(move || h.finish()).await;
        }
    }

    fn step(&mut self, input: EngineInput) {
        match input {
            EngineInput::Webhook { events, received } => {
                for ev in events {
                    self.webhook_event(ev, received);
                }
            }
            EngineInput::EdgeJoined {
                edge_id,
                name,
                kind,
                may_dial,
                max_calls,
                tx,
            } => {
                let max = max_calls.unwrap_or(if kind == EdgeKind::Bot {
                    self.cfg.bot_max_calls
                } else {
                    1
                });
                let overflow = self.cfg.overflow.as_deref() == Some(name.as_str());
                self.router.join_as(&edge_id, max, overflow, Instant::now());
                info!(%edge_id, %name, ?kind, may_dial, max_calls = max, "edge joined");
                let limits = super::rate::EdgeLimits::new(max, Instant::now());
                self.edges.insert(
                    edge_id,
                    EdgeInfo {
                        name,
                        tx,
                        may_dial,
                        limits,
                    },
                );
                self.publish();
            }
            EngineInput::EdgeLeft { edge_id } => {
                self.router.leave(&edge_id);
                self.edges.remove(&edge_id);
                let held: Vec<String> = self
                    .slots
                    .iter()
                    .filter(|(_, e)| **e == edge_id)
                    .map(|(c, _)| c.clone())
                    .collect();
                for call_id in held {
                    self.slots.remove(&call_id);
                    self.feed(
                        &call_id,
                        Input::EdgeLeft {
                            edge: edge_id.clone(),
                        },
                        now(),
                    );
                }
                self.publish();
            }
            EngineInput::Edge { edge_id, msg } => self.edge_message(edge_id, msg),
            EngineInput::ActionResult {
                call_id,
                action,
                result,
            } => {
                let input = match result {
                    Ok(()) => Input::ActionDone { action },
                    Err(f) => {
                        self.metrics.bsp_errors.inc();
                        warn!(%call_id, %action, error = %f.message, "BSP action failed");
                        Input::ActionFailed {
                            action,
                            message: f.message,
                            permanent: f.permanent,
                        }
                    }
                };
                self.feed(&call_id, input, now());
            }
            EngineInput::DialResult {
                edge_id,
                request_id,
                to,
                result,
            } => self.dial_result(edge_id, request_id, to, result),
            EngineInput::DialRefused {
                edge_id,
                request_id,
                to,
                refusal:
                    super::permissions::Refusal {
                        message,
                        can_request,
                        resets_at,
                    },
            } => {
                info!(%request_id, to = %crate::pii::Number(&to), %message, "dial not placed");
                self.metrics.dials_without_permission.inc();
                if can_request {
                    self.watch_permission(&to, &edge_id);
                }
                self.send_edge(
                    &edge_id,
                    HubMessage::NoPermission {
                        request_id,
                        to,
                        message,
                        can_request,
                        resets_at,
                    },
                );
            }
            EngineInput::PermissionRequested {
                edge_id,
                request_id,
                to,
                result,
            } => {
                let msg = match result {
                    Ok(message_id) => {
                        info!(%request_id, to = %crate::pii::Number(&to), %message_id, "call permission requested");
                        self.metrics.permission_requests.inc();
                        self.watch_permission(&to, &edge_id);
                        HubMessage::PermissionRequest {
                            request_id,
                            to,
                            sent: true,
                            message: "permission request sent: waiting for the user to answer in WhatsApp".into(),
                            resets_at: None,
                        }
                    }
                    Err((message, resets_at)) => HubMessage::PermissionRequest {
                        request_id,
                        to,
                        sent: false,
                        message,
                        resets_at,
                    },
                };
                self.send_edge(&edge_id, msg);
            }
            EngineInput::PermissionSeen(row) => {
                if let Some(h) = &self.history {
                    h.set_permission(row);
                }
            }
            EngineInput::MetaMediaStored {
                call_id,
                kind,
                path,
            } => {
                if let Some(h) = &self.history {
                    h.set_meta_media(&call_id, kind, &path);
                }
                if let Ok(mut s) = self.shared.lock()
                    && let Some(r) = s.records.get_mut(&call_id)
                {
                    match kind {
                        crate::webhook::MetaMediaKind::Recording => r.meta_recording = Some(path),
                        crate::webhook::MetaMediaKind::Transcript => r.meta_transcript = Some(path),
                    }
                }
            }
            EngineInput::Timer {
                call_id,
                timer,
                seq,
            } => self.feed(&call_id, Input::Timeout(timer, seq), now()),
            EngineInput::Shutdown => {}
            EngineInput::RecordingStored { call_id, path } => {
                if let Some(h) = &self.history {
                    h.set_recording(&call_id, &path);
                }
                if let Ok(mut s) = self.shared.lock()
                    && let Some(r) = s.records.get_mut(&call_id)
                {
                    r.recording = Some(path);
                }
            }
            EngineInput::Snapshot { reply } => {
                let _ = reply.send(self.live_view());
            }
            EngineInput::Sweep => {
                let now = Instant::now();
                self.registry.sweep(now);
                self.orphans.retain(|id, (t, _)| {
                    let keep = now.duration_since(*t) < ORPHAN_TTL;
                    if !keep {
                        warn!(call_id = %id, "webhook for an unknown call dropped");
                    }
                    keep
                });
                let orphans = &self.orphans;
                self.orphan_opaque.retain(|_, id| orphans.contains_key(id));
                if let Ok(mut s) = self.shared.lock() {
                    let ids: Vec<String> = s.records.keys().cloned().collect();
                    for id in ids {
                        if !self.registry.contains(&id) {
                            s.records.remove(&id);
                            s.setup_ms.remove(&id);
                        }
                    }
                }
            }
        }
    }

    fn webhook_event(&mut self, ev: CallEvent, received: crate::call::Now) {
        if let CallEvent::PermissionReply {
            customer,
            accepted,
            permanent,
            expires_at,
            automatic,
            ..
        } = &ev
        {
            self.permission_reply(customer, *accepted, *permanent, *expires_at, *automatic);
            return;
        }
        if let CallEvent::MetaMedia {
            call_id,
            kind,
            media_id,
            url,
            sha256,
            ..
        } = &ev
        {
            self.fetch_meta_media(super::meta_media::Wanted {
                call_id: call_id.clone(),
                kind: *kind,
                media_id: media_id.clone(),
                url: url.clone(),
                sha256: sha256.clone(),
            });
            return;
        }
        let Some(call_id) = ev.call_id().map(str::to_string) else {
            debug!(?ev, "webhook event without a call ignored");
            return;
        };
        if let CallEvent::Offer {
            customer,
            business,
            caller_name,
            sdp,
            ..
        } = &ev
        {
            if self.registry.contains(&call_id) {
                debug!(%call_id, "repeated connect webhook ignored");
                self.feed(&call_id, Input::OfferRepeated, received);
                return;
            }
            let timestamp = match &ev {
                CallEvent::Offer { timestamp, .. } => *timestamp,
                _ => None,
            };
            if let Some(why) = self.refuse_offer(&call_id, timestamp, received.wall) {
                // Acknowledged (WhatsApp must not resend it) but not answered.
                self.metrics.webhook_stale_offers.inc();
                warn!(%call_id, %why, "connect webhook not answered");
                return;
            }
            self.remember(call_id.clone());
            let span = info_span!("call", call_id = %call_id);
            let _g = span.enter();
            info!(from = %crate::pii::Number(customer), name = %crate::pii::Name(caller_name.as_deref().unwrap_or("")), "incoming call");
            self.metrics.calls_inbound.inc();
            let (call, cmds) = Call::inbound(
                &call_id,
                customer,
                business,
                caller_name.clone(),
                sdp.clone(),
                self.cfg.timeouts,
                received,
            );
            self.registry.insert(call);
            let open = self
                .cfg
                .hours
                .as_ref()
                .is_none_or(|h| h.is_open(received.wall));
            let group = self.group_for(customer, open);
            if let Some(g) = group {
                self.call_group.insert(call_id.clone(), g);
            }
            let night_team = group.is_some_and(|g| self.cfg.groups[g].outside_hours);
            drop(_g);
            match open || night_team {
                // Closed and no group for it: nobody is to ring; the overflow edge (voicemail)
                // or a reject.
                false => {
                    info!(%call_id, "outside business hours");
                    self.feed(
                        &call_id,
                        Input::Overflow {
                            reason: "outside_hours".into(),
                        },
                        received,
                    );
                }
                true => self.run_commands(&call_id, cmds),
            }
            self.replay_orphans(&call_id);
            return;
        }
        let lost_opaque = ev.biz_opaque().map(str::to_owned);
        let input = match ev {
            CallEvent::Answer { sdp, .. } => Input::RemoteAnswer { sdp },
            CallEvent::Status { status, .. } => match status {
                CallStatus::Ringing => Input::Status(Progress::Ringing),
                CallStatus::Accepted => Input::Status(Progress::Accepted),
                CallStatus::Rejected => Input::Status(Progress::Rejected),
                CallStatus::Other(s) => {
                    debug!(%call_id, status = %s, "unknown call status ignored");
                    return;
                }
            },
            CallEvent::Terminate {
                status,
                duration_s,
                errors,
                ..
            } => Input::Terminated {
                status,
                duration_s,
                errors,
            },
            CallEvent::Ignored { what, .. } => {
                debug!(%call_id, %what, "webhook event ignored");
                return;
            }
            CallEvent::Offer { .. }
            | CallEvent::PermissionReply { .. }
            | CallEvent::MetaMedia { .. } => return,
        };
        if self.registry.contains(&call_id) {
            self.feed(&call_id, input, received);
        } else if let Some((to, _)) = lost_opaque
            .as_ref()
            .and_then(|o| self.lost_connects.remove(o))
        {
            // The call of a `connect` whose reply we lost: nobody carries it, end it.
            warn!(%call_id, "a call whose connect reply was lost reached WhatsApp; terminating it");
            self.metrics.lost_connects_ended.inc();
            self.submit(&call_id, &to, Action::Terminate);
        } else {
            // Possibly the answer to a dial whose `connect` reply is still on its way.
            if let Some(o) = lost_opaque {
                self.orphan_opaque.insert(o, call_id.clone());
            }
            let entry = self
                .orphans
                .entry(call_id)
                .or_insert_with(|| (Instant::now(), Vec::new()));
            entry.1.push(input);
        }
    }

    fn replay_orphans(&mut self, call_id: &str) {
        if let Some((_, events)) = self.orphans.remove(call_id) {
            for input in events {
                self.feed(call_id, input, now());
            }
        }
    }

    fn edge_message(&mut self, edge_id: String, msg: EdgeMessage) {
        let now = now();
        // Rate limits: every message, and dials apart.
        if let Some(e) = self.edges.get_mut(&edge_id) {
            let t = Instant::now();
            let is_dial = matches!(
                msg,
                EdgeMessage::Dial { .. } | EdgeMessage::RequestPermission { .. }
            );
            let ok = e.limits.messages.take(t) && (!is_dial || e.limits.dials.take(t));
            if !ok {
                self.metrics.edge_rate_limited.inc();
                if e.limits.should_warn(t) {
                    warn!(edge = %edge_id, dial = is_dial, "edge over its rate limit: message refused");
                }
                if let EdgeMessage::Dial { request_id, .. }
                | EdgeMessage::RequestPermission { request_id, .. } = msg
                {
                    self.send_edge(
                        &edge_id,
                        HubMessage::Error {
                            call_id: None,
                            request_id: Some(request_id),
                            message: "too many calls placed too fast; try again in a few seconds"
                                .into(),
                            permanent: false,
                        },
                    );
                }
                return;
            }
        }
        // Every message about a call counts only from the edge holding it.
        if let Some(call_id) = msg.call_id()
            && !self.holds(&edge_id, call_id)
        {
            return;
        }
        match msg {
            EdgeMessage::Hello { .. } => {}
            EdgeMessage::Available { available } => self.router.set_available(&edge_id, available),
            EdgeMessage::Answer { call_id, sdp } => {
                tracing::debug!(call_id = %call_id, "answer from the edge");
                self.feed(&call_id, Input::EdgeAnswer { edge: edge_id, sdp }, now)
            }
            EdgeMessage::Accept { call_id } => {
                self.feed(&call_id, Input::EdgeAccept { edge: edge_id }, now)
            }
            EdgeMessage::Reject { call_id } => {
                self.feed(&call_id, Input::EdgeReject { edge: edge_id }, now)
            }
            EdgeMessage::Hangup { call_id } => {
                self.feed(&call_id, Input::EdgeHangup { edge: edge_id }, now)
            }
            EdgeMessage::MediaFailed {
                call_id,
                reason,
                offer_refused,
            } => self.feed(
                &call_id,
                Input::EdgeMediaFailed {
                    edge: edge_id,
                    reason,
                    offer_refused,
                },
                now,
            ),
            EdgeMessage::Dtmf { call_id, digit } => self.feed(&call_id, Input::Dtmf { digit }, now),
            EdgeMessage::Finished {
                call_id,
                quality,
                recording,
            } => {
                // The call machine stores this one (it completes the record).
                self.count_quality(&call_id, &quality, false);
                self.compact_if_stored(&call_id, recording.as_deref());
                self.feed(
                    &call_id,
                    Input::EdgeFinished {
                        edge: edge_id,
                        quality,
                        recording,
                    },
                    now,
                )
            }
            EdgeMessage::Stats { call_id, stats } => {
                self.count_quality(&call_id, &(&stats).into(), true);
                if let Some(h) = &self.history {
                    let at = now
                        .wall
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                    h.sample(
                        &call_id,
                        crate::call_record::QualitySample::from_stats(&stats, at),
                    );
                }
            }
            EdgeMessage::Dial {
                request_id,
                to,
                sdp,
                meta_record,
                meta_transcribe,
            } => {
                let capture = crate::api::Capture::from_config(
                    &self.cfg.meta_capture,
                    meta_record,
                    meta_transcribe,
                );
                self.dial(edge_id, request_id, to, sdp, capture)
            }
            EdgeMessage::RequestPermission {
                request_id,
                to,
                text,
            } => self.request_permission(edge_id, request_id, to, text),
        }
    }

    /// Whether `edge_id` may place calls (and ask permission to); refuses in words if not.
    fn may_dial(&self, edge_id: &str, request_id: &str) -> bool {
        if self.edges.get(edge_id).is_some_and(|e| !e.may_dial) {
            warn!(edge = %edge_id, "edge may not place calls: refused");
            self.send_edge(
                edge_id,
                HubMessage::Error {
                    call_id: None,
                    request_id: Some(request_id.to_owned()),
                    message: "this edge's identity may not place calls (server.edges may_dial)"
                        .into(),
                    permanent: true,
                },
            );
            return false;
        }
        true
    }

    fn watch_permission(&mut self, to: &str, edge_id: &str) {
        if self.permission_watch.len() >= PERMISSION_WATCHES
            && !self.permission_watch.contains_key(to)
        {
            // Bounded: a flood of numbers forgets the watches, not the permissions.
            self.permission_watch.clear();
        }
        let edges = self.permission_watch.entry(to.to_owned()).or_default();
        if !edges.iter().any(|e| e == edge_id) {
            edges.push(edge_id.to_owned());
        }
    }

    fn request_permission(
        &mut self,
        edge_id: String,
        request_id: String,
        to: String,
        text: Option<String>,
    ) {
        if !self.may_dial(&edge_id, &request_id) {
            return;
        }
        let text = text
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| super::permissions::DEFAULT_REQUEST_TEXT.to_owned());
        let problem = check_recipient(&to).err().or_else(|| {
            (text.chars().count() > super::permissions::MAX_REQUEST_TEXT).then(|| {
                format!(
                    "text: {} characters; WhatsApp takes at most {}",
                    text.chars().count(),
                    super::permissions::MAX_REQUEST_TEXT
                )
            })
        });
        if let Some(problem) = problem {
            self.send_edge(
                &edge_id,
                HubMessage::PermissionRequest {
                    request_id,
                    to,
                    sent: false,
                    message: problem,
                    resets_at: None,
                },
            );
            return;
        }
        let (bsp, tx) = (self.bsp.clone(), self.tx.clone());
        let span = info_span!("permission_request", %request_id);
        tokio::spawn(
            async move {
                let result = super::permissions::request(&bsp, &to, &text).await;
                let _ = tx
                    .send(EngineInput::PermissionRequested {
                        edge_id,
                        request_id,
                        to,
                        result,
                    })
                    .await;
            }
            .instrument(span),
        );
    }

    /// The user answered (or WhatsApp did): remember it, tell the edges that asked.
    fn permission_reply(
        &mut self,
        customer: &str,
        accepted: bool,
        permanent: bool,
        expires_at: Option<i64>,
        automatic: bool,
    ) {
        use crate::api::permission::PermissionStatus;
        let status = match (accepted, permanent) {
            (false, _) => PermissionStatus::None,
            (true, true) => PermissionStatus::Permanent,
            (true, false) => PermissionStatus::Temporary {
                until: expires_at.and_then(|t| DateTime::from_timestamp(t, 0)),
            },
        };
        info!(customer = %crate::pii::Number(customer), status = %status.words(), automatic, "call permission reply");
        self.metrics.permission_replies.inc();
        let source = if automatic {
            "automatic"
        } else {
            "user_action"
        };
        if let Some(h) = &self.history {
            h.set_permission(super::permissions::row(customer, &status, source));
        }
        for edge in self.permission_watch.remove(customer).unwrap_or_default() {
            self.send_edge(
                &edge,
                HubMessage::Permission {
                    to: customer.to_owned(),
                    granted: accepted,
                    status: status.words(),
                },
            );
        }
    }

    /// Downloads Meta's file of a call into the store, in the background.
    fn fetch_meta_media(&self, wanted: super::meta_media::Wanted) {
        let Some(dir) = self.cfg.store_dir.clone() else {
            warn!(call_id = %wanted.call_id, kind = wanted.kind.as_str(), "Meta's file not downloaded: no recording.dir");
            return;
        };
        let (bsp, tx) = (self.bsp.clone(), self.tx.clone());
        let span = info_span!("call", call_id = %wanted.call_id);
        tokio::spawn(
            async move {
                match super::meta_media::fetch(&bsp, &dir, &wanted).await {
                    Ok(path) => {
                        let _ = tx
                            .send(EngineInput::MetaMediaStored {
                                call_id: wanted.call_id,
                                kind: wanted.kind,
                                path: path.display().to_string(),
                            })
                            .await;
                    }
                    Err(e) => {
                        tracing::error!(kind = wanted.kind.as_str(), media_id = %wanted.media_id, error = %e, "Meta's file could not be downloaded (Meta keeps it 7 days)");
                    }
                }
            }
            .instrument(span),
        );
    }

    fn dial(
        &mut self,
        edge_id: String,
        request_id: String,
        to: String,
        sdp: String,
        capture: crate::api::Capture,
    ) {
        if !self.may_dial(&edge_id, &request_id) {
            return;
        }
        let capture_refused = (!capture.is_empty()
            && self.bsp.provider() != crate::config::Provider::Meta)
            .then(|| "Meta-side recording and transcription need Meta's Cloud API (bsp.provider = \"meta\")".to_owned());
        if let Some(problem) = check_recipient(&to).err().or(capture_refused) {
            self.send_edge(
                &edge_id,
                HubMessage::Error {
                    call_id: None,
                    request_id: Some(request_id),
                    message: problem,
                    permanent: true,
                },
            );
            return;
        }
        let bsp = self.bsp.clone();
        let tx = self.tx.clone();
        let span = info_span!("dial", %request_id, %to);
        tokio::spawn(
            async move {
                let (outcome, seen) =
                    super::permissions::dial(&bsp, &to, &sdp, &request_id, &capture).await;
                if let Some(row) = seen {
                    let _ = tx.send(EngineInput::PermissionSeen(row)).await;
                }
                let input = match outcome {
                    Err(refusal) => EngineInput::DialRefused {
                        edge_id,
                        request_id,
                        to,
                        refusal,
                    },
                    Ok(result) => EngineInput::DialResult {
                        edge_id,
                        request_id,
                        to,
                        result: result.map_err(|e| ActionFailure::from(&e)),
                    },
                };
                let _ = tx.send(input).await;
            }
            .instrument(span),
        );
    }

    fn dial_result(
        &mut self,
        edge_id: String,
        request_id: String,
        to: String,
        result: Result<String, ActionFailure>,
    ) {
        match result {
            Ok(call_id) => {
                if !self.edges.contains_key(&edge_id) {
                    // The edge left while connect was in flight: nobody will carry the media.
                    warn!(%call_id, "dialling edge left; terminating the new call");
                    self.submit(&call_id, &to, Action::Terminate);
                    return;
                }
                info!(%call_id, to = %crate::pii::Number(&to), "outbound call placed");
                self.metrics.calls_outbound.inc();
                let (call, cmds) = Call::outbound(
                    &call_id,
                    &to,
                    &self.cfg.business,
                    &edge_id,
                    self.cfg.timeouts,
                    now(),
                );
                self.registry.insert(call);
                self.send_edge(
                    &edge_id,
                    HubMessage::Dialing {
                        request_id,
                        call_id: call_id.clone(),
                    },
                );
                self.sync_slot(&call_id);
                self.run_commands(&call_id, cmds);
                self.publish_call(&call_id);
                self.replay_orphans(&call_id);
            }
            Err(f) => {
                warn!(%request_id, to = %crate::pii::Number(&to), error = %f.message, "connect failed");
                self.metrics.bsp_errors.inc();
                if f.outcome_unknown {
                    // The call may exist at WhatsApp: its webhook may already be parked here,
                    // or come later.
                    if let Some(call_id) = self.orphan_opaque.remove(&request_id) {
                        self.orphans.remove(&call_id);
                        warn!(%call_id, "a call whose connect reply was lost reached WhatsApp; terminating it");
                        self.metrics.lost_connects_ended.inc();
                        self.submit(&call_id, &to, Action::Terminate);
                    } else {
                        let now = Instant::now();
                        self.lost_connects
                            .retain(|_, (_, at)| now.duration_since(*at) < LOST_CONNECT_MEMORY);
                        self.lost_connects
                            .insert(request_id.clone(), (to.clone(), now));
                    }
                }
                self.send_edge(
                    &edge_id,
                    HubMessage::Error {
                        call_id: None,
                        request_id: Some(request_id),
                        message: f.message,
                        permanent: f.permanent,
                    },
                );
            }
        }
    }

    /// Feeds one input to a call and carries out what it says.
    fn feed(&mut self, call_id: &str, input: Input, now: crate::call::Now) {
        let span = info_span!("call", call_id = %call_id);
        let _g = span.enter();
        let Some(call) = self.registry.get_mut(call_id) else {
            debug!(?input, "input for an unknown call ignored");
            return;
        };
        match call.handle(input, now) {
            Ok(cmds) => {
                drop(_g);
                self.run_commands(call_id, cmds);
            }
            Err(e) => warn!(error = %e, "ignored"),
        }
    }

    fn run_commands(&mut self, call_id: &str, cmds: Vec<Command>) {
        for cmd in cmds {
            match cmd {
                Command::Route => {
                    let input = match self.pick_for(call_id) {
                        Some(edge) => Input::Assigned { edge },
                        None if !self.group_signed_in(call_id) => Input::Overflow {
                            reason: "group_empty".into(),
                        },
                        None => Input::NoEdge,
                    };
                    self.feed(call_id, input, now());
                }
                Command::Enqueue => {
                    info!(
                        call_id,
                        waiting = self.queue.len() + 1,
                        "no edge free: the caller waits in the queue"
                    );
                    self.queue.push(call_id, Instant::now());
                    self.queue_changed();
                }
                Command::Overflow => {
                    self.leave_queue(call_id, Left::Overflowed);
                    let input = match self.router.pick_overflow() {
                        Some(edge) => {
                            info!(call_id, %edge, "the queue time ran out: to the overflow edge");
                            Input::Assigned { edge }
                        }
                        None => Input::NoEdge,
                    };
                    self.feed(call_id, input, now());
                }
                Command::Submit(action) => {
                    let to = self
                        .registry
                        .get(call_id)
                        .map(|c| c.record.customer.clone())
                        .unwrap_or_default();
                    if matches!(action, Action::PreAccept { .. })
                        && let Some(ms) = self.registry.get(call_id).and_then(|c| c.setup_ms)
                    {
                        self.metrics.setup_latency.observe(ms as f64 / 1000.0);
                        // From the webhook to the answer, queue wait included.
                        self.metrics.inbound_answered.inc();
                        if u128::from(ms) <= self.cfg.service_level.as_millis() {
                            self.metrics.inbound_answered_in_time.inc();
                        }
                    }
                    self.submit(call_id, &to, action);
                }
                Command::ToEdge { edge, msg } => self.send_edge(&edge, msg),
                Command::SetTimer { timer, after, seq } => {
                    let tx = self.tx.clone();
                    let call_id = call_id.to_string();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = tx
                            .send(EngineInput::Timer {
                                call_id,
                                timer,
                                seq,
                            })
                            .await;
                    });
                }
                Command::Finished { reason } => {
                    info!(call_id, %reason, "call finished");
                    if self.queue.contains(call_id) {
                        self.leave_queue(call_id, Left::Abandoned);
                    }
                    self.call_group.remove(call_id);
                    self.metrics.ended(&reason);
                    self.registry.mark_ended(call_id, Instant::now());
                    self.write_history(call_id);
                }
                Command::RecordUpdated => self.write_history(call_id),
            }
        }
        self.sync_slot(call_id);
        self.publish_call(call_id);
    }

    fn submit(&self, call_id: &str, to: &str, action: Action) {
        // A user's call is recorded by Meta when `[recording.meta]` says so (asked on accept).
        let capture = match &action {
            Action::Accept { .. } if self.bsp.provider() == crate::config::Provider::Meta => {
                crate::api::Capture::from_config(&self.cfg.meta_capture, None, None)
            }
            _ => crate::api::Capture::default(),
        };
        let bsp = self.bsp.clone();
        let tx = self.tx.clone();
        let (call_id, to) = (call_id.to_string(), to.to_string());
        let name = action.kind();
        // The client's own `bsp` span (action, call id) covers what is logged on the way.
        tokio::spawn(async move {
            let result = perform(&bsp, &call_id, &to, &action, &capture)
                .await
                .map_err(|e| ActionFailure::from(&e));
            let _ = tx
                .send(EngineInput::ActionResult {
                    call_id,
                    action: name,
                    result,
                })
                .await;
        });
    }

    /// Keeps the router's view of who is busy in step with the calls.
    fn sync_slot(&mut self, call_id: &str) {
        let want = self
            .registry
            .get(call_id)
            .filter(|c| !c.is_ended())
            .and_then(|c| c.edge.clone());
        let have = self.slots.get(call_id).cloned();
        if want == have {
            return;
        }
        if let Some(old) = have {
            self.router.call_ended(&old, Instant::now());
            self.slots.remove(call_id);
        }
        if let Some(new) = want {
            self.router.call_started(&new);
            self.slots.insert(call_id.to_string(), new);
        }
    }

    /// A recording written into the store on this host (by a bot in this process) gets the
    /// uploads' treatment: Ogg Opus on a blocking thread, then the row points at it.
    fn compact_if_stored(&self, call_id: &str, recording: Option<&str>) {
        let (Some(store), Some(wav)) = (self.cfg.store_dir.as_ref(), recording) else {
            return;
        };
        let wav = std::path::PathBuf::from(wav);
        if wav.extension().is_none_or(|e| e != "wav") || !wav.starts_with(store) || !wav.is_file() {
            return;
        }
        super::uploads::compact_in_background(
            call_id,
            wav,
            self.cfg.keep_wav,
            self.metrics.clone(),
            self.tx.clone(),
        );
    }

    /// Edges report running totals (every 2 s, and once more when they finish): each counter
    /// in `/metrics` grows by what is new since the call's last report.
    /// With `keep`, the report also becomes the call's live quality (one lock for both).
    fn count_quality(&self, call_id: &str, now: &QualitySummary, keep: bool) {
        let Some(before) = self.shared.lock().ok().and_then(|mut s| {
            let r = s.records.get_mut(call_id)?;
            let before = r.quality.unwrap_or_default();
            if keep {
                r.quality = Some(*now);
            }
            Some(before)
        }) else {
            return;
        };
        let m = &self.metrics;
        let grew = |c: &super::metrics::Counter, now: u64, was: u64| c.add(now.saturating_sub(was));
        grew(
            &m.rtp_unknown_payload_type,
            now.unknown_payload_type,
            before.unknown_payload_type,
        );
        let (p, q) = (now.playout, before.playout);
        grew(&m.edge_frames_played, p.frames, q.frames);
        grew(&m.edge_frames_late, p.late, q.late);
        grew(&m.edge_frames_concealed, p.concealed, q.concealed);
        grew(
            &m.edge_packets_dropped,
            now.dropped_in_queue,
            before.dropped_in_queue,
        );
    }

    /// Offers waiting calls, longest-waiting first, to edges that have become free. A call
    /// no free edge may take (they all declined it) keeps its place; the next is tried.
    fn drain_queue(&mut self) {
        while !self.queue.is_empty() {
            let next = self.queue.in_order().find(|id| self.pick_for(id).is_some());
            let Some(call_id) = next.map(str::to_owned) else {
                return;
            };
            self.leave_queue(&call_id, Left::Taken);
            self.feed(&call_id, Input::Dequeued, now());
        }
    }

    /// The group a caller belongs to. Outside business hours an `outside_hours` group takes
    /// everyone; otherwise (and inside hours) the first group whose country codes prefix the
    /// number, else the default group, else none (every edge may take the call).
    fn group_for(&self, customer: &str, open: bool) -> Option<usize> {
        let groups = &self.cfg.groups;
        if !open && let Some(night) = groups.iter().position(|g| g.outside_hours) {
            return Some(night);
        }
        let day = |g: &&crate::config::GroupConfig| !g.outside_hours;
        groups
            .iter()
            .position(|g| day(&g) && g.countries.iter().any(|c| customer.starts_with(c.as_str())))
            .or_else(|| groups.iter().position(|g| day(&g) && g.default))
    }

    /// Whether `edge_id` may take `call_id`: a member of the call's group, if it has one.
    fn in_group(&self, call_id: &str, edge_id: &str) -> bool {
        match self.call_group.get(call_id) {
            None => true,
            Some(&g) => self
                .edges
                .get(edge_id)
                .is_some_and(|e| self.cfg.groups[g].members.contains(&e.name)),
        }
    }

    /// The edge to offer a call to now: free, not tried for it, in its group.
    fn pick_for(&self, call_id: &str) -> Option<String> {
        let call = self.registry.get(call_id)?;
        self.router
            .pick_where(&call.tried, |edge_id| self.in_group(call_id, edge_id))
    }

    /// Whether anyone of the call's group is connected at all (busy or not).
    fn group_signed_in(&self, call_id: &str) -> bool {
        !self.call_group.contains_key(call_id)
            || self.edges.keys().any(|id| self.in_group(call_id, id))
    }

    fn leave_queue(&mut self, call_id: &str, why: Left) {
        let Some(waited) = self.queue.remove(call_id, Instant::now()) else {
            return;
        };
        self.metrics.queue_wait.0.observe(waited.as_secs_f64());
        match why {
            Left::Abandoned => self.metrics.queue_abandoned.inc(),
            Left::Overflowed => self.metrics.queue_overflowed.inc(),
            Left::Taken => {}
        }
        info!(call_id, ?why, waited = ?waited, "left the queue");
        self.queue_changed();
    }

    /// The queue's length and longest wait, to `/metrics` and to every agent's phone.
    fn queue_changed(&self) {
        let now = Instant::now();
        self.metrics.queue_length.store(
            self.queue.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let msg = HubMessage::Queue {
            waiting: self.queue.len(),
            longest_wait_s: self.queue.longest_wait(now).map_or(0, |d| d.as_secs()),
        };
        for (id, e) in &self.edges {
            if self.cfg.overflow.as_deref() != Some(e.name.as_str()) {
                deliver(&e.tx, msg.clone(), id, &e.name);
            }
        }
    }

    fn send_edge(&self, edge: &str, msg: HubMessage) {
        match self.edges.get(edge) {
            Some(e) => deliver(&e.tx, msg, edge, &e.name),
            None => debug!(edge, "message for a departed edge dropped"),
        }
    }

    fn write_history(&self, call_id: &str) {
        if let (Some(h), Some(call)) = (&self.history, self.registry.get(call_id)) {
            h.upsert(call.record.clone());
        }
    }

    fn publish_call(&self, call_id: &str) {
        let Some(call) = self.registry.get(call_id) else {
            return;
        };
        if let Ok(mut s) = self.shared.lock() {
            s.records.insert(call_id.to_string(), call.record.clone());
            if let Some(ms) = call.setup_ms {
                s.setup_ms.insert(call_id.to_string(), ms);
            }
        }
        self.publish();
    }

    fn live_view(&self) -> LiveView {
        let records = self.shared.lock().ok();
        let calls: Vec<LiveCall> = self
            .registry
            .live()
            .map(|c| {
                let r = records
                    .as_ref()
                    .and_then(|s| s.records.get(&c.id).cloned())
                    .unwrap_or_else(|| c.record.clone());
                LiveCall {
                    call_id: c.id.clone(),
                    direction: r.direction.as_str(),
                    customer: r.customer.clone(),
                    caller_name: r.caller_name.clone(),
                    edge: c
                        .edge
                        .as_ref()
                        .and_then(|e| self.edges.get(e).map(|i| i.name.clone())),
                    state: c.phase.as_str(),
                    offered_at: r.offered_at.clone(),
                    accepted_at: r.accepted_at.clone(),
                    grade: r.quality.as_ref().map(grade),
                    loss_pct: r.quality.map(|q| q.loss_pct),
                }
            })
            .collect();
        drop(records);
        let mut edges: Vec<LiveEdge> = self
            .edges
            .iter()
            .map(|(id, e)| {
                let (available, calls) = self.router.presence(id).unwrap_or((false, 0));
                LiveEdge {
                    edge_id: id.clone(),
                    name: e.name.clone(),
                    available,
                    calls,
                    call_ids: self
                        .slots
                        .iter()
                        .filter(|(_, holder)| *holder == id)
                        .map(|(c, _)| c.clone())
                        .collect(),
                }
            })
            .collect();
        edges.sort_by(|a, b| a.name.cmp(&b.name).then(a.edge_id.cmp(&b.edge_id)));
        LiveView {
            calls,
            edges,
            queue_waiting: self.queue.len(),
            queue_longest_s: self
                .queue
                .longest_wait(Instant::now())
                .map_or(0, |d| d.as_secs()),
        }
    }

    fn publish(&self) {
        if let Ok(mut s) = self.shared.lock() {
            s.edges = self.edges.len();
            s.phases.clear();
            for c in self.registry.live() {
                *s.phases.entry(c.phase.as_str()).or_default() += 1;
            }
        }
    }
}

/// This moment on both clocks, for the call machines.
fn now() -> crate::call::Now {
    crate::call::Now::new(Utc::now(), Instant::now())
}

/// Submits one call action at the BSP.
async fn perform(
    bsp: &BspClient,
    call_id: &str,
    to: &str,
    action: &Action,
    capture: &crate::api::Capture,
) -> Result<(), ApiError> {
    match action {
        Action::PreAccept { sdp } => bsp.pre_accept(call_id, to, sdp).await,
        Action::Accept { sdp } => bsp.accept_with(call_id, to, sdp, capture).await,
        Action::Reject => bsp.reject(call_id, to).await,
        Action::Terminate => bsp.terminate(call_id, to).await,
    }
}

/// A recipient is a phone number in international form (digits, optional `+`) or a
/// business-scoped user id (`US.1349...`).
pub fn check_recipient(to: &str) -> Result<(), String> {
    let digits = to.strip_prefix('+').unwrap_or(to);
    let is_number = (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    let is_user_id = to.len() > 3
        && to.len() <= 64
        && to.contains('.')
        && to.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
    if is_number || is_user_id {
        Ok(())
    } else {
        Err(format!(
            "to: {to:?} is not a phone number (7 to 15 digits, country code first) or a WhatsApp user id"
        ))
    }
}

/// Queues a message for an edge without waiting. `Ended` frees the edge's media, sockets and
/// recorder: it must arrive even when the edge is behind, so it waits for room on a task of its
/// own (bounded: an edge that reads nothing for 30 s is gone); anything else may be dropped.
fn deliver(tx: &mpsc::Sender<HubMessage>, msg: HubMessage, edge: &str, name: &str) {
    match tx.try_send(msg) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(msg @ HubMessage::Ended { .. })) => {
            let (tx, name, edge) = (tx.clone(), name.to_owned(), edge.to_owned());
            tokio::spawn(async move {
                let sent = tokio::time::timeout(Duration::from_secs(30), tx.send(msg)).await;
                if !matches!(sent, Ok(Ok(()))) {
                    warn!(%edge, %name, "edge took no Ended within 30 s");
                }
            });
        }
        Err(_) => warn!(edge, %name, "edge is not keeping up; message dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(n: usize) -> HubMessage {
        HubMessage::Status {
            call_id: format!("c{n}"),
            status: "ringing".into(),
        }
    }

    /// An edge whose queue is full still gets `Ended` (once it reads again); other messages
    /// are dropped rather than piling up.
    #[tokio::test]
    async fn ended_reaches_an_edge_whose_queue_is_full() {
        let (tx, mut rx) = mpsc::channel(2);
        deliver(&tx, status(1), "e1", "agent");
        deliver(&tx, status(2), "e1", "agent");
        deliver(&tx, status(3), "e1", "agent");
        let ended = HubMessage::Ended {
            call_id: "c1".into(),
            reason: "customer_hangup".into(),
            record: None,
        };
        deliver(&tx, ended, "e1", "agent");
        let mut got = Vec::new();
        while got.len() < 3 {
            let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("Ended never arrived")
                .unwrap();
            got.push(m);
        }
        assert!(matches!(&got[0], HubMessage::Status { call_id, .. } if call_id == "c1"));
        assert!(matches!(&got[1], HubMessage::Status { call_id, .. } if call_id == "c2"));
        assert!(matches!(&got[2], HubMessage::Ended { .. }), "{got:?}");
        assert!(rx.try_recv().is_err(), "the third status was queued anyway");
    }
}
