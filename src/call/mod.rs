//! The per-call state machine, sans IO: one [`Call`] per WhatsApp call id, for both directions.
//!
//! The shape follows str0m: feed one [`Input`] with the time passed in (`handle`), get back the
//! [`Command`]s to carry out (submit a BSP action, message an edge, arm a timer, route the call,
//! finish it). Nothing here sleeps, sends or reads a clock, so every race WhatsApp can produce
//! (duplicate webhooks, a terminate before our pre_accept returns, a status before the answer) is a
//! plain unit test.
//!
//! Inputs that make no sense in the current phase are either harmless repeats (ignored, logged) or
//! real protocol errors ([`CallError`]): the caller logs those, the call is never corrupted, and
//! nothing panics.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::call_record::{CallRecord, Direction, QualitySummary};
use crate::hub_protocol::HubMessage;

pub mod registry;

pub use registry::Registry;

/// The BSP actions a call can ask for. `connect` is not here: it happens before a call id exists
/// (the engine submits it for a dial request and creates the call from its answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    PreAccept { sdp: String },
    Accept { sdp: String },
    Reject,
    Terminate,
}

impl Action {
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    pub fn kind(&self) -> ActionKind {
        match self {
            Action::PreAccept { .. } => ActionKind::PreAccept,
            Action::Accept { .. } => ActionKind::Accept,
            Action::Reject => ActionKind::Reject,
            Action::Terminate => ActionKind::Terminate,
        }
    }
}

/// Which action a BSP result is about: results reach the call typed, not as names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    PreAccept,
    Accept,
    Reject,
    Terminate,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::PreAccept => "pre_accept",
            ActionKind::Accept => "accept",
            ActionKind::Reject => "reject",
            ActionKind::Terminate => "terminate",
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Keys kept per call in its record (history, sidecar).
pub const MAX_DTMF: usize = 128;

/// Which deadline fired. Each is armed by a [`Command::SetTimer`]; a stale one (the phase moved
/// on) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The edge holding an inbound call has not answered (no SDP, or no accept) in time.
    Ring,
    /// An outbound call was neither answered nor rejected in time.
    Answer,
    /// An answered call reached the maximum call length.
    MaxLength,
    /// Time to try ending the call at the BSP again (the last terminate or reject failed).
    RetryEnd,
    /// A queued caller has waited `routing.queue_timeout_s`: overflow, or reject.
    Queue,
}

/// Deadline kinds, for the per-kind arming table.
const TIMERS: usize = 5;

/// Retries of a failed terminate (or reject): 1, 2, 4 … 64 s apart, some four minutes in all.
pub const END_RETRIES: u32 = 8;

/// Outbound progress as WhatsApp reports it in `statuses[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Ringing,
    Accepted,
    Rejected,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    // -- webhooks --
    /// The user's answer to our offer (outbound).
    RemoteAnswer {
        sdp: String,
    },
    Status(Progress),
    /// WhatsApp ended the call (either side hung up, or it was not answered in time).
    Terminated {
        status: Option<String>,
        duration_s: Option<u64>,
        errors: Vec<String>,
    },
    /// The same `connect` offer again (webhook retries): ignored.
    OfferRepeated,
    // -- routing --
    /// The router chose an edge for this inbound call.
    Assigned {
        edge: String,
    },
    /// No edge is left to take it.
    NoEdge,
    /// The call left the queue: an edge may be free for it (route it again).
    Dequeued,
    /// Nobody is to take this call in the normal way (`reason`: `outside_hours`, or
    /// `group_empty`): straight to the overflow edge, or rejected with that reason.
    Overflow {
        reason: String,
    },
    // -- edge decisions --
    EdgeAnswer {
        edge: String,
        sdp: String,
    },
    EdgeAccept {
        edge: String,
    },
    EdgeReject {
        edge: String,
    },
    EdgeHangup {
        edge: String,
    },
    EdgeMediaFailed {
        edge: String,
        reason: String,
        /// The offer cannot be answered by anyone (no common codec): reject, don't reroute.
        offer_refused: bool,
    },
    EdgeLeft {
        edge: String,
    },
    EdgeFinished {
        edge: String,
        quality: QualitySummary,
        recording: Option<String>,
    },
    /// The bridge is stopping: end the call at WhatsApp rather than leave it ringing.
    Shutdown,
    Dtmf {
        digit: char,
    },
    // -- BSP results --
    ActionDone {
        action: ActionKind,
    },
    ActionFailed {
        action: ActionKind,
        message: String,
        permanent: bool,
    },
    // -- time --
    /// A deadline fired: its kind and which arming it was ([`Command::SetTimer`]'s `seq`).
    Timeout(Timer, u32),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Ask the router for an edge (excluding those already tried) and answer with `Assigned` or
    /// `NoEdge`.
    Route,
    /// No edge is free: put the call in the queue (it keeps ringing at WhatsApp). The engine
    /// feeds `Dequeued` when an edge may take it.
    Enqueue,
    /// The wait is over with nobody to take the call: offer it to the overflow edge
    /// (`routing.overflow`), answering `Assigned` or `NoEdge`.
    Overflow,
    Submit(Action),
    ToEdge {
        edge: String,
        msg: HubMessage,
    },
    /// Arm a deadline; when it fires, feed back `Timeout(timer, seq)`. Only the latest arming
    /// of each kind counts: an earlier one firing is stale (it belonged to another edge's turn).
    SetTimer {
        timer: Timer,
        after: Duration,
        seq: u32,
    },
    /// The call is over at WhatsApp and here: write the history row, free the edge's slot.
    /// The call object stays a little longer to take the edge's final `Finished` report.
    Finished {
        reason: String,
    },
    /// The record changed after the end (quality or recording arrived): rewrite the history row.
    RecordUpdated,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("call {call_id}: {input} is not possible while {phase}")]
pub struct CallError {
    pub call_id: String,
    pub input: String,
    pub phase: &'static str,
}

/// Timeouts the machine arms. Defaults match WhatsApp's 30–60 s answer window.
#[derive(Debug, Clone, Copy)]
pub struct CallTimeouts {
    /// How long one edge may hold a ringing inbound call before it goes to the next.
    pub ring: Duration,
    /// How long an outbound call may ring.
    pub answer: Duration,
    /// The longest a call may last once answered (`routing.max_call_s`): a call an edge
    /// forgot, or a stuck peer, still ends.
    pub max_call: Duration,
    /// How long an inbound call with no free edge waits in the queue (`routing.queue_timeout_s`);
    /// zero = no queue, such a call is rejected at once.
    pub queue: Duration,
}

impl Default for CallTimeouts {
    fn default() -> Self {
        CallTimeouts {
            ring: Duration::from_secs(20),
            answer: Duration::from_secs(45),
            max_call: Duration::from_secs(4 * 3600),
            queue: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Inbound, waiting for the router.
    Routing,
    /// Inbound, no edge free: waiting in the queue, still ringing at WhatsApp.
    Queued,
    /// Inbound, offered to `edge`, no SDP answer from it yet.
    Ringing,
    /// Inbound, our pre_accept is on its way to the BSP.
    PreAccepting,
    /// Inbound, pre-accepted: media connects while the call still rings.
    PreAccepted,
    /// Inbound, our accept is on its way.
    Accepting,
    /// Outbound, `connect` returned: waiting for the user.
    Dialing,
    /// Talking.
    Active,
    Ended,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Routing => "routing",
            Phase::Queued => "queued",
            Phase::Ringing => "ringing",
            Phase::PreAccepting => "pre_accepting",
            Phase::PreAccepted => "pre_accepted",
            Phase::Accepting => "accepting",
            Phase::Dialing => "dialing",
            Phase::Active => "active",
            Phase::Ended => "ended",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub id: String,
    pub direction: Direction,
    pub phase: Phase,
    /// The edge holding the call (the one that must hear about everything).
    pub edge: Option<String>,
    /// Edges that already had this call and gave it back.
    pub tried: std::collections::HashSet<String>,
    /// The user's offer (inbound), kept to offer the call to another edge.
    offer: Option<String>,
    /// Our answer, once pre_accept was submitted: accept must repeat it byte for byte.
    our_answer: Option<String>,
    /// The edge asked to accept while pre_accept was still in flight.
    accept_wanted: bool,
    /// Outbound: the user's answer arrived (acceptance is `record.accepted_at`).
    remote_answered: bool,
    pub record: CallRecord,
    timeouts: CallTimeouts,
    /// When the call was offered (inbound) or dialled; for setup latency.
    started: std::time::Instant,
    /// When it was answered (its length counts from there).
    accepted: Option<std::time::Instant>,
    /// Webhook → pre_accept submitted, the figure the bridge reports as setup latency.
    pub setup_ms: Option<u64>,
    /// The arming of each deadline kind that counts ([`Timer`] as index), and the last number
    /// given out.
    armed: [Option<u32>; TIMERS],
    timer_seq: u32,
    /// When the call first entered the queue (its wait counts from there, across re-queues).
    queued_at: Option<std::time::Instant>,
    /// The queue's deadline passed: the next `NoEdge` overflows.
    queue_expired: bool,
    /// Offered to the overflow edge, and why (`queue_timeout`, `outside_hours`, `group_empty`):
    /// a `NoEdge` now ends the call with that reason.
    overflowing: Option<String>,
    /// How we ended the call at the BSP and how many retries that took, until it is confirmed.
    end_retry: Option<(Action, u32)>,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The time an input arrives, both ways: the wall clock for the record's stamps, the
/// monotonic clock for every duration the call measures (setup, queue wait, length), so a
/// clock step (NTP, a VM resumed) never makes one negative or huge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub wall: DateTime<Utc>,
    pub mono: std::time::Instant,
}

impl Now {
    pub fn new(wall: DateTime<Utc>, mono: std::time::Instant) -> Now {
        Now { wall, mono }
    }
}

impl Call {
    /// The parts every call starts with; the direction decides the rest.
    fn fresh(
        record: CallRecord,
        phase: Phase,
        edge: Option<String>,
        offer: Option<String>,
        timeouts: CallTimeouts,
        now: Now,
    ) -> Call {
        Call {
            id: record.call_id.clone(),
            direction: record.direction,
            phase,
            edge,
            tried: Default::default(),
            offer,
            our_answer: None,
            accept_wanted: false,
            remote_answered: false,
            record,
            timeouts,
            started: now.mono,
            accepted: None,
            setup_ms: None,
            armed: [None; TIMERS],
            timer_seq: 0,
            queued_at: None,
            queue_expired: false,
            overflowing: None,
            end_retry: None,
        }
    }

    /// Arms `timer` (replacing its earlier arming) and returns the command that does it.
    fn arm(&mut self, timer: Timer, after: Duration) -> Command {
        self.timer_seq = self.timer_seq.wrapping_add(1);
        self.armed[timer as usize] = Some(self.timer_seq);
        Command::SetTimer {
            timer,
            after,
            seq: self.timer_seq,
        }
    }

    /// The arming of `timer` that counts, if any (tests feed it back as a `Timeout`).
    pub fn armed(&self, timer: Timer) -> Option<u32> {
        self.armed[timer as usize]
    }

    /// A user's call arrived with its offer. Returns the call and its first commands.
    pub fn inbound(
        id: &str,
        customer: &str,
        business: &str,
        caller_name: Option<String>,
        offer: String,
        timeouts: CallTimeouts,
        now: Now,
    ) -> (Call, Vec<Command>) {
        let mut record = CallRecord::new(id, Direction::Inbound, customer, business);
        record.caller_name = caller_name;
        record.offered_at = stamp(now.wall);
        let call = Call::fresh(record, Phase::Routing, None, Some(offer), timeouts, now);
        (call, vec![Command::Route])
    }

    /// `connect` returned this call id for `edge`'s dial request.
    pub fn outbound(
        id: &str,
        customer: &str,
        business: &str,
        edge: &str,
        timeouts: CallTimeouts,
        now: Now,
    ) -> (Call, Vec<Command>) {
        let mut record = CallRecord::new(id, Direction::Outbound, customer, business);
        record.offered_at = stamp(now.wall);
        record.edge = Some(edge.to_string());
        let mut call = Call::fresh(
            record,
            Phase::Dialing,
            Some(edge.to_string()),
            None,
            timeouts,
            now,
        );
        let cmds = vec![call.arm(Timer::Answer, timeouts.answer)];
        (call, cmds)
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// True once WhatsApp has been asked to pre-accept: from then on this edge's SDP is committed
    /// and the call cannot move to another edge.
    fn committed(&self) -> bool {
        self.our_answer.is_some()
    }

    fn holder(&self, edge: &str) -> bool {
        self.edge.as_deref() == Some(edge)
    }

    fn err(&self, input: &Input) -> CallError {
        let name = format!("{input:?}");
        CallError {
            call_id: self.id.clone(),
            input: name
                .split([' ', '(', '{'])
                .next()
                .unwrap_or("input")
                .to_string(),
            phase: self.phase.as_str(),
        }
    }

    fn to_edge(&self, msg: HubMessage) -> Option<Command> {
        self.edge.as_ref().map(|e| Command::ToEdge {
            edge: e.clone(),
            msg,
        })
    }

    /// Ends the call here: tells the edge, asks the BSP to end it at WhatsApp when `action` is
    /// given, and records why.
    fn end(&mut self, reason: &str, action: Option<Action>, now: Now) -> Vec<Command> {
        let mut cmds = Vec::new();
        if let Some(a) = action {
            if matches!(a, Action::Terminate | Action::Reject) {
                self.end_retry = Some((a.clone(), 0));
            }
            cmds.push(Command::Submit(a));
        }
        self.phase = Phase::Ended;
        self.record.ended_at = Some(stamp(now.wall));
        self.record.end_reason = Some(reason.to_string());
        if self.record.duration_s.is_none()
            && let Some(acc) = self.accepted
        {
            self.record.duration_s = Some(now.mono.saturating_duration_since(acc).as_secs());
        }
        if let Some(c) = self.to_edge(HubMessage::Ended {
            call_id: self.id.clone(),
            reason: reason.to_string(),
            record: Some(Box::new(self.record.clone())),
        }) {
            cmds.push(c);
        }
        cmds.push(Command::Finished {
            reason: reason.to_string(),
        });
        cmds
    }

    /// How to end a call at WhatsApp from where it stands: a call nobody answered is rejected,
    /// an answered (or pre-accepted) one is terminated.
    fn hangup_action(&self) -> Action {
        match (self.direction, &self.phase) {
            (Direction::Inbound, Phase::Routing | Phase::Queued | Phase::Ringing) => Action::Reject,
            _ => Action::Terminate,
        }
    }

    /// Feed one input; returns what to do. Inputs after the end are ignored except the edge's
    /// final report, which completes the record.
    pub fn handle(&mut self, input: Input, now: Now) -> Result<Vec<Command>, CallError> {
        use Input::*;
        if self.phase == Phase::Ended {
            return Ok(match input {
                EdgeFinished {
                    quality, recording, ..
                } => {
                    self.record.quality = Some(quality);
                    if recording.is_some() {
                        self.record.recording = recording;
                    }
                    vec![Command::RecordUpdated]
                }
                Terminated { duration_s, .. } => {
                    // WhatsApp says the call is over: no retry of our end is needed any more.
                    self.end_retry = None;
                    self.armed[Timer::RetryEnd as usize] = None;
                    match duration_s {
                        Some(d) if self.record.duration_s.is_none() => {
                            self.record.duration_s = Some(d);
                            vec![Command::RecordUpdated]
                        }
                        _ => vec![],
                    }
                }
                // Our terminate (or reject) did not go through: the call may still be up at
                // WhatsApp. Again later, backing off, until the BSP confirms, WhatsApp says it
                // ended, or the BSP says no for good.
                ActionFailed {
                    action: ActionKind::Terminate | ActionKind::Reject,
                    permanent,
                    ..
                } => match self.end_retry.take() {
                    Some((action, tries)) if !permanent && tries < END_RETRIES => {
                        let after = Duration::from_secs(1 << tries.min(6));
                        self.end_retry = Some((action, tries + 1));
                        vec![self.arm(Timer::RetryEnd, after)]
                    }
                    _ => vec![],
                },
                ActionDone {
                    action: ActionKind::Terminate | ActionKind::Reject,
                } => {
                    self.end_retry = None;
                    vec![]
                }
                Timeout(Timer::RetryEnd, seq) if self.armed(Timer::RetryEnd) == Some(seq) => {
                    match &self.end_retry {
                        Some((action, _)) => vec![Command::Submit(action.clone())],
                        None => vec![],
                    }
                }
                _ => vec![],
            });
        }
        match input {
            OfferRepeated => Ok(vec![]),
            Dtmf { digit } => {
                // A PIN or a menu choice is a few keys; a flood is not kept.
                if self.record.dtmf.chars().count() < MAX_DTMF {
                    self.record.dtmf.push(digit);
                    self.record.dtmf_at.push(stamp(now.wall));
                }
                Ok(vec![])
            }
            Terminated {
                status,
                duration_s,
                errors,
            } => {
                if let Some(d) = duration_s {
                    self.record.duration_s = Some(d);
                }
                let mut reason = match (&self.phase, status.as_deref()) {
                    (_, Some("FAILED")) => "failed".to_string(),
                    (Phase::Active, _) => "customer_hangup".to_string(),
                    (Phase::Dialing, _) => "not_answered".to_string(),
                    (Phase::Queued, _) => "caller_abandoned".to_string(),
                    _ => "caller_cancelled".to_string(),
                };
                if !errors.is_empty() {
                    reason = format!("{reason}: {}", errors.join("; "));
                }
                // WhatsApp already ended it: nothing to submit.
                Ok(self.end(&reason, None, now))
            }
            Assigned { edge } => {
                if self.phase != Phase::Routing {
                    return Err(self.err(&Assigned { edge }));
                }
                // From the first entry into the queue to the edge that has the call now.
                if let Some(q) = self.queued_at {
                    self.record.queue_wait_s =
                        Some(now.mono.saturating_duration_since(q).as_secs());
                }
                if let Some(why) = &self.overflowing {
                    let detail = match why.as_str() {
                        "queue_timeout" => format!(
                            "nobody free within the queue time ({} s)",
                            self.timeouts.queue.as_secs()
                        ),
                        "outside_hours" => "outside business hours".to_owned(),
                        "group_empty" => "nobody of the caller's group signed in".to_owned(),
                        other => other.to_owned(),
                    };
                    self.record.overflow = Some(format!("to {edge}: {detail}"));
                }
                self.tried.insert(edge.clone());
                self.edge = Some(edge.clone());
                self.record.edge = Some(edge.clone());
                self.phase = Phase::Ringing;
                let ring = self.arm(Timer::Ring, self.timeouts.ring);
                Ok(vec![
                    Command::ToEdge {
                        edge,
                        msg: HubMessage::Incoming {
                            call_id: self.id.clone(),
                            from: self.record.customer.clone(),
                            caller_name: self.record.caller_name.clone(),
                            sdp: self.offer.clone().unwrap_or_default(),
                        },
                    },
                    ring,
                ])
            }
            NoEdge => {
                if self.phase != Phase::Routing {
                    return Err(self.err(&NoEdge));
                }
                if let Some(why) = self.overflowing.clone() {
                    return Ok(self.end(&why, Some(Action::Reject), now));
                }
                if self.queue_expired {
                    self.overflowing = Some("queue_timeout".into());
                    return Ok(vec![Command::Overflow]);
                }
                if self.direction == Direction::Inbound && !self.timeouts.queue.is_zero() {
                    // Keeps ringing at WhatsApp while it waits; the deadline is armed once, at
                    // the first entry, however often the call comes back to the queue.
                    self.phase = Phase::Queued;
                    let mut cmds = vec![Command::Enqueue];
                    if self.queued_at.is_none() {
                        self.queued_at = Some(now.mono);
                        cmds.push(self.arm(Timer::Queue, self.timeouts.queue));
                    }
                    return Ok(cmds);
                }
                Ok(self.end("no_edge_available", Some(Action::Reject), now))
            }
            Dequeued => {
                if self.phase != Phase::Queued {
                    return Ok(vec![]);
                }
                self.phase = Phase::Routing;
                Ok(vec![Command::Route])
            }
            Overflow { reason } => {
                if !matches!(self.phase, Phase::Routing | Phase::Queued) {
                    return Err(self.err(&Overflow { reason }));
                }
                self.phase = Phase::Routing;
                self.overflowing = Some(reason);
                Ok(vec![Command::Overflow])
            }
            EdgeAnswer { edge, sdp } => {
                if !self.holder(&edge) || self.phase != Phase::Ringing {
                    // A repeat of the answer we already used is harmless.
                    if self.holder(&edge) && self.our_answer.as_deref() == Some(sdp.as_str()) {
                        return Ok(vec![]);
                    }
                    return Err(self.err(&EdgeAnswer { edge, sdp }));
                }
                self.our_answer = Some(sdp.clone());
                self.phase = Phase::PreAccepting;
                self.setup_ms =
                    Some(now.mono.saturating_duration_since(self.started).as_millis() as u64);
                Ok(vec![Command::Submit(Action::PreAccept { sdp })])
            }
            EdgeAccept { edge } => {
                if !self.holder(&edge) {
                    return Err(self.err(&EdgeAccept { edge }));
                }
                match self.phase {
                    Phase::PreAccepting => {
                        self.accept_wanted = true;
                        Ok(vec![])
                    }
                    Phase::PreAccepted => Ok(self.submit_accept()),
                    Phase::Accepting | Phase::Active => Ok(vec![]),
                    _ => Err(self.err(&EdgeAccept { edge })),
                }
            }
            EdgeReject { edge } => {
                if !self.holder(&edge) {
                    return Err(self.err(&EdgeReject { edge }));
                }
                if self.direction == Direction::Inbound && !self.committed() {
                    Ok(self.reroute(&edge))
                } else {
                    let action = self.hangup_action();
                    Ok(self.end("rejected_by_edge", Some(action), now))
                }
            }
            EdgeHangup { edge } => {
                if !self.holder(&edge) {
                    return Err(self.err(&EdgeHangup { edge }));
                }
                let action = self.hangup_action();
                Ok(self.end("business_hangup", Some(action), now))
            }
            EdgeMediaFailed {
                edge,
                reason,
                offer_refused,
            } => {
                if !self.holder(&edge) {
                    return Err(self.err(&EdgeMediaFailed {
                        edge,
                        reason,
                        offer_refused,
                    }));
                }
                if offer_refused && self.direction == Direction::Inbound && !self.committed() {
                    let action = self.hangup_action();
                    return Ok(self.end(&format!("offer_refused: {reason}"), Some(action), now));
                }
                if self.direction == Direction::Inbound && !self.committed() {
                    return Ok(self.reroute(&edge));
                }
                let action = self.hangup_action();
                Ok(self.end(&format!("media_failed: {reason}"), Some(action), now))
            }
            EdgeLeft { edge } => {
                if !self.holder(&edge) {
                    return Ok(vec![]);
                }
                // The edge is gone: nobody to tell.
                self.edge = None;
                if self.direction == Direction::Inbound && !self.committed() {
                    self.phase = Phase::Routing;
                    return Ok(vec![Command::Route]);
                }
                let action = self.hangup_action();
                Ok(self.end("edge_lost", Some(action), now))
            }
            Shutdown => {
                let action = self.hangup_action();
                Ok(self.end("bridge_shutdown", Some(action), now))
            }
            EdgeFinished {
                quality, recording, ..
            } => {
                // Normally after the end; an edge that gives up early still ends the call.
                self.record.quality = Some(quality);
                self.record.recording = recording;
                let action = self.hangup_action();
                Ok(self.end("edge_finished", Some(action), now))
            }
            ActionDone { action } => match (action, &self.phase) {
                (ActionKind::PreAccept, Phase::PreAccepting) => {
                    self.phase = Phase::PreAccepted;
                    self.record.pre_accepted_at = Some(stamp(now.wall));
                    let mut cmds: Vec<Command> = self
                        .to_edge(HubMessage::PreAccepted {
                            call_id: self.id.clone(),
                        })
                        .into_iter()
                        .collect();
                    if self.accept_wanted {
                        cmds.extend(self.submit_accept());
                    }
                    Ok(cmds)
                }
                (ActionKind::Accept, Phase::Accepting) => {
                    self.phase = Phase::Active;
                    self.record.accepted_at = Some(stamp(now.wall));
                    self.accepted = Some(now.mono);
                    self.record.answered_by = self.edge.clone();
                    let mut cmds: Vec<Command> = self
                        .to_edge(HubMessage::Accepted {
                            call_id: self.id.clone(),
                        })
                        .into_iter()
                        .collect();
                    cmds.push(self.arm(Timer::MaxLength, self.timeouts.max_call));
                    Ok(cmds)
                }
                // Late confirmations of actions that no longer matter.
                _ => Ok(vec![]),
            },
            ActionFailed {
                action,
                message,
                permanent,
            } => {
                let reason = format!("bsp_{action}_failed: {message}");
                match (action, &self.phase) {
                    (ActionKind::PreAccept, Phase::PreAccepting) => {
                        // The SDP never reached WhatsApp: tell the caller no.
                        Ok(self.end(&reason, Some(Action::Reject), now))
                    }
                    (ActionKind::Accept, Phase::Accepting) => {
                        Ok(self.end(&reason, Some(Action::Terminate), now))
                    }
                    _ => {
                        let _ = permanent;
                        Ok(vec![])
                    }
                }
            }
            Status(p) => {
                if self.direction != Direction::Outbound {
                    return Err(self.err(&Status(p)));
                }
                let status = match p {
                    Progress::Ringing => "ringing",
                    Progress::Accepted => "accepted",
                    Progress::Rejected => "rejected",
                };
                let mut cmds: Vec<Command> = self
                    .to_edge(HubMessage::Status {
                        call_id: self.id.clone(),
                        status: status.into(),
                    })
                    .into_iter()
                    .collect();
                match p {
                    Progress::Ringing => {}
                    Progress::Accepted => {
                        // The first ACCEPTED counts; repeats keep its time.
                        if self.record.accepted_at.is_none() {
                            self.record.accepted_at = Some(stamp(now.wall));
                            self.accepted = Some(now.mono);
                            self.record.answered_by = Some("customer".into());
                            cmds.push(self.arm(Timer::MaxLength, self.timeouts.max_call));
                        }
                        self.phase = Phase::Active;
                    }
                    Progress::Rejected => {
                        cmds.extend(self.end("rejected_by_customer", None, now));
                    }
                }
                Ok(cmds)
            }
            RemoteAnswer { sdp } => {
                if self.direction != Direction::Outbound {
                    return Err(self.err(&RemoteAnswer { sdp }));
                }
                if self.remote_answered {
                    return Ok(vec![]);
                }
                self.remote_answered = true;
                self.setup_ms =
                    Some(now.mono.saturating_duration_since(self.started).as_millis() as u64);
                Ok(self
                    .to_edge(HubMessage::RemoteAnswer {
                        call_id: self.id.clone(),
                        sdp,
                    })
                    .into_iter()
                    .collect())
            }
            Timeout(timer, seq) if self.armed(timer) != Some(seq) => {
                tracing::debug!(?timer, seq, "a stale deadline fired; ignored");
                Ok(vec![])
            }
            Timeout(timer, _) => match (timer, &self.phase) {
                (Timer::Ring, Phase::Ringing) => {
                    let edge = self.edge.clone().unwrap_or_default();
                    Ok(self.reroute(&edge))
                }
                (Timer::Ring, Phase::PreAccepting | Phase::PreAccepted | Phase::Accepting) => {
                    Ok(self.end("not_answered", Some(Action::Terminate), now))
                }
                (Timer::Queue, phase) => {
                    self.queue_expired = true;
                    if *phase == Phase::Queued {
                        self.overflowing = Some("queue_timeout".into());
                        self.phase = Phase::Routing;
                        return Ok(vec![Command::Overflow]);
                    }
                    // Offered to an edge meanwhile: if it gives the call back, the next
                    // `NoEdge` overflows.
                    Ok(vec![])
                }
                (Timer::MaxLength, Phase::Active) => {
                    Ok(self.end("max_call_length", Some(Action::Terminate), now))
                }
                (Timer::Answer, Phase::Dialing) => {
                    Ok(self.end("not_answered", Some(Action::Terminate), now))
                }
                _ => Ok(vec![]),
            },
        }
    }

    fn submit_accept(&mut self) -> Vec<Command> {
        self.phase = Phase::Accepting;
        let sdp = self.our_answer.clone().unwrap_or_default();
        vec![Command::Submit(Action::Accept { sdp })]
    }

    /// Takes an uncommitted inbound call back from `edge` and asks for another.
    fn reroute(&mut self, edge: &str) -> Vec<Command> {
        let mut cmds = Vec::new();
        if !edge.is_empty() {
            cmds.push(Command::ToEdge {
                edge: edge.to_string(),
                msg: HubMessage::Ended {
                    call_id: self.id.clone(),
                    reason: "passed_to_another_edge".into(),
                    record: None,
                },
            });
        }
        self.edge = None;
        self.phase = Phase::Routing;
        cmds.push(Command::Route);
        cmds
    }
}

#[cfg(test)]
mod tests;
