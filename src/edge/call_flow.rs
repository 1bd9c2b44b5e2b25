//! One call on an edge as a pure machine, in the shape of the bridge's `call::Call` and of
//! str0m's `Rtc`: it is fed what happened (the bridge's messages, the media's set-up and
//! state, the user's or the behaviour's decisions, the time) and says what to do (messages to
//! send, media commands, what to show), and which deadline it wants to be woken at. The bot and
//! `wacall dial` drive it and keep only IO (sockets, media, files) of their own.
//!
//! Every edge-side deadline lives here: answering after the configured delay (a bot), the media
//! watchdog (never connected, failed after connect, silent; `media_watch`) and the maximum call
//! length. The bridge keeps the call's own deadlines (ring, answer, queue) in `call::Call`.
//!
//! The order matters where WhatsApp says so: no audio before the bridge confirms the accept
//! (`Accepted`, inbound) or the user answers (`Status accepted`, outbound); our SDP answer goes
//! first (pre_accept), the accept after it.

use std::time::{Duration, Instant};

use crate::call_record::CallRecord;
use crate::hub_protocol::{EdgeMessage, HubMessage};
use crate::media::ConnState;

use super::media_watch::{MediaDeadlines, MediaVerdict, MediaWatch};

/// Why a dial did not become a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialFailure {
    pub message: String,
    /// The user has not allowed calls and a permission request may be sent now.
    pub can_request_permission: bool,
    /// When the limit in the way resets (RFC 3339), if one is.
    pub resets_at: Option<String>,
}

impl DialFailure {
    pub fn plain(message: impl Into<String>) -> Self {
        DialFailure {
            message: message.into(),
            can_request_permission: false,
            resets_at: None,
        }
    }
}

impl std::fmt::Display for DialFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A dial's own choices (Meta-side recording and transcription; `None`: the bridge's config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DialOptions {
    pub meta_record: Option<bool>,
    pub meta_transcribe: Option<bool>,
}

/// The edge's deadlines for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallRules {
    pub media: MediaDeadlines,
    /// Answer a user's call this long after our SDP answer went out (a bot). `None`: wait for
    /// [`Input::Accept`] (an agent).
    pub auto_accept: Option<Duration>,
    /// Hang up this long after the call is answered.
    pub max_length: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Our SDP (answer or offer) is being built.
    Preparing,
    /// Inbound: our answer is with the bridge; waiting to accept.
    Ringing,
    /// Outbound: `Dial` sent, waiting for the call id.
    Dialing,
    /// Outbound: the call exists, the user has not answered yet.
    Calling,
    /// Inbound: accept sent, waiting for the bridge's confirmation.
    Accepting,
    /// Audio flows.
    Live,
    /// We hung up (or gave up on the media); waiting for the bridge's `Ended`.
    Ending,
    Ended,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Inbound: our SDP answer to the user's offer is ready.
    AnswerReady(String),
    /// Outbound: our SDP offer is ready.
    OfferReady(String),
    /// The media could not be set up (no codec in common, no sockets, the audio engine).
    SetupFailed {
        reason: String,
        offer_refused: bool,
    },
    /// A message from the bridge about this call.
    Hub(HubMessage),
    /// Outbound: the user's SDP answer could not be applied.
    RemoteAnswerFailed(String),
    /// The media's state and the packets received so far (polled by the IO side).
    Media {
        state: ConnState,
        packets: u64,
    },
    /// The agent (or behaviour) answers, declines, hangs up, or the user pressed a key.
    Accept,
    Decline,
    Hangup,
    Dtmf(char),
    /// Time passed (the IO side wakes the machine at [`EdgeCall::next_deadline`]).
    Tick,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Build the SDP answer to this offer (then feed `AnswerReady` or `SetupFailed`).
    BuildAnswer(String),
    /// Build an SDP offer (then feed `OfferReady` or `SetupFailed`).
    BuildOffer,
    Send(EdgeMessage),
    /// WhatsApp has our answer: connectivity checks may start.
    ReleaseCandidates,
    ApplyRemoteAnswer(String),
    /// The call is answered and confirmed: start sending audio.
    AudioOn,
    /// The outbound dial's result: the call id, or why not.
    Dialed(Result<String, DialFailure>),
    /// Progress in words for whoever follows the call (`ringing`, `accepted`, `rejected`,
    /// `ended: <reason>`).
    Progress(String),
    /// The media was given up on (reason as the bridge records it).
    MediaGivenUp(MediaVerdict),
    /// Tear the call down: report quality and recording with `record` as the sidecar.
    Finish {
        record: Option<Box<CallRecord>>,
    },
    /// Free the media without a report: the call never had any.
    Close,
}

#[derive(Debug)]
enum Side {
    Inbound,
    Outbound {
        request_id: String,
        to: String,
        options: DialOptions,
    },
}

/// One call on an edge.
#[derive(Debug)]
pub struct EdgeCall {
    side: Side,
    /// Known from the start inbound, from `Dialing` outbound.
    call_id: Option<String>,
    phase: Phase,
    rules: CallRules,
    watch: Option<MediaWatch>,
    accept_at: Option<Instant>,
    end_at: Option<Instant>,
    hangup_sent: bool,
    media_failed: bool,
    /// Inbound: [`Input::Accept`] came while our answer was still being built.
    accept_wanted: bool,
    /// How long to wait for the bridge's `Ended` once we ended the call (see
    /// [`EdgeCall::finish_unanswered_after`]); `None`: as long as it takes.
    end_wait: Option<Duration>,
    /// When to stop waiting for `Ended`.
    finish_at: Option<Instant>,
}

impl EdgeCall {
    /// A user's call offered to this edge: build an answer first.
    pub fn inbound(call_id: &str, offer: &str, rules: CallRules) -> (EdgeCall, Vec<Output>) {
        let call = EdgeCall::new(Side::Inbound, Some(call_id.to_owned()), rules);
        (call, vec![Output::BuildAnswer(offer.to_owned())])
    }

    /// A call this edge places to `to`: build an offer first.
    pub fn outbound(
        request_id: &str,
        to: &str,
        options: DialOptions,
        rules: CallRules,
    ) -> (EdgeCall, Vec<Output>) {
        let side = Side::Outbound {
            request_id: request_id.to_owned(),
            to: to.to_owned(),
            options,
        };
        (EdgeCall::new(side, None, rules), vec![Output::BuildOffer])
    }

    fn new(side: Side, call_id: Option<String>, rules: CallRules) -> EdgeCall {
        EdgeCall {
            side,
            call_id,
            phase: Phase::Preparing,
            rules,
            watch: None,
            accept_at: None,
            end_at: None,
            hangup_sent: false,
            media_failed: false,
            accept_wanted: false,
            end_wait: None,
            finish_at: None,
        }
    }

    /// Once this edge ended the call (hang-up, decline, media given up), finish it this long
    /// after without the bridge's `Ended` if that has not come: an agent's phone goes back to
    /// idle rather than wait for a bridge that does not answer.
    pub fn finish_unanswered_after(mut self, wait: Duration) -> EdgeCall {
        self.end_wait = Some(wait);
        self
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn call_id(&self) -> Option<&str> {
        self.call_id.as_deref()
    }

    /// The dial's request id (outbound calls).
    pub fn request_id(&self) -> Option<&str> {
        match &self.side {
            Side::Outbound { request_id, .. } => Some(request_id),
            Side::Inbound => None,
        }
    }

    /// When to feed [`Input::Tick`] next (besides the media polls).
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.accept_at, self.end_at, self.finish_at]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    fn id(&self) -> String {
        self.call_id.clone().unwrap_or_default()
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        if self.phase == Phase::Ended {
            return Vec::new();
        }
        let mut out = Vec::new();
        match input {
            Input::AnswerReady(sdp) if self.phase == Phase::Preparing => {
                out.push(Output::Send(EdgeMessage::Answer {
                    call_id: self.id(),
                    sdp,
                }));
                self.phase = Phase::Ringing;
                // Both SDPs are known: the connect deadline runs from here.
                self.watch = Some(MediaWatch::new(self.rules.media, now));
                self.accept_at = self.rules.auto_accept.map(|d| now + d);
                if self.accept_wanted {
                    self.accept(&mut out);
                }
            }
            Input::OfferReady(sdp) if self.phase == Phase::Preparing => {
                if let Side::Outbound {
                    request_id,
                    to,
                    options,
                } = &self.side
                {
                    out.push(Output::Send(EdgeMessage::Dial {
                        request_id: request_id.clone(),
                        to: to.clone(),
                        sdp,
                        meta_record: options.meta_record,
                        meta_transcribe: options.meta_transcribe,
                    }));
                    self.phase = Phase::Dialing;
                }
            }
            Input::SetupFailed {
                reason,
                offer_refused,
            } => match (&self.side, &self.call_id) {
                (Side::Outbound { .. }, None) => {
                    out.push(Output::Dialed(Err(DialFailure::plain(reason))));
                    out.push(Output::Close);
                    self.phase = Phase::Ended;
                }
                _ => {
                    // The bridge ends the call (reject or terminate) and answers `Ended`.
                    out.push(Output::Send(EdgeMessage::MediaFailed {
                        call_id: self.id(),
                        reason,
                        offer_refused,
                    }));
                    out.push(Output::Close);
                    self.phase = Phase::Ended;
                }
            },
            Input::Hub(msg) => self.hub(msg, now, &mut out),
            Input::RemoteAnswerFailed(reason) => self.give_up_media(reason, now, &mut out),
            Input::Media { state, packets } => {
                if let Some(v) = self
                    .watch
                    .as_mut()
                    .and_then(|w| w.observe(state, packets, now))
                {
                    out.push(Output::MediaGivenUp(v));
                    self.give_up_media(v.to_string(), now, &mut out);
                }
            }
            Input::Accept => {
                if self.phase == Phase::Preparing && matches!(self.side, Side::Inbound) {
                    // Accepted as soon as our answer is out (WhatsApp wants it first).
                    self.accept_wanted = true;
                }
                self.accept(&mut out);
            }
            Input::Decline => {
                if matches!(self.phase, Phase::Ringing | Phase::Preparing)
                    && matches!(self.side, Side::Inbound)
                {
                    out.push(Output::Send(EdgeMessage::Reject { call_id: self.id() }));
                    self.ending(now);
                }
            }
            Input::Hangup => self.hangup(now, &mut out),
            Input::Dtmf(digit) => {
                if self.call_id.is_some() {
                    out.push(Output::Send(EdgeMessage::Dtmf {
                        call_id: self.id(),
                        digit,
                    }));
                }
            }
            Input::Tick => {
                if self.accept_at.is_some_and(|t| now >= t) {
                    self.accept_at = None;
                    self.accept(&mut out);
                }
                if self.end_at.is_some_and(|t| now >= t) {
                    self.end_at = None;
                    self.hangup(now, &mut out);
                }
                if self.finish_at.is_some_and(|t| now >= t) {
                    // The bridge did not answer our end: finish without its record.
                    out.push(Output::Progress("ended: no answer from the bridge".into()));
                    out.push(Output::Finish { record: None });
                    self.phase = Phase::Ended;
                    self.finish_at = None;
                }
            }
            // Inputs that do not fit the phase (a late answer, a second offer) change nothing.
            Input::AnswerReady(_) | Input::OfferReady(_) => {}
        }
        out
    }

    fn hub(&mut self, msg: HubMessage, now: Instant, out: &mut Vec<Output>) {
        match msg {
            HubMessage::Dialing { call_id, .. } if self.phase == Phase::Dialing => {
                out.push(Output::Dialed(Ok(call_id.clone())));
                self.call_id = Some(call_id);
                self.phase = Phase::Calling;
                self.watch = Some(MediaWatch::new(self.rules.media, now));
            }
            HubMessage::Error { message, .. } if self.phase == Phase::Dialing => {
                out.push(Output::Dialed(Err(DialFailure::plain(message))));
                out.push(Output::Close);
                self.phase = Phase::Ended;
            }
            HubMessage::NoPermission {
                message,
                can_request,
                resets_at,
                ..
            } if self.phase == Phase::Dialing => {
                out.push(Output::Dialed(Err(DialFailure {
                    message,
                    can_request_permission: can_request,
                    resets_at,
                })));
                out.push(Output::Close);
                self.phase = Phase::Ended;
            }
            // WhatsApp has our answer now, so connectivity checks can succeed.
            HubMessage::PreAccepted { .. } => out.push(Output::ReleaseCandidates),
            HubMessage::Accepted { .. } => {
                out.push(Output::ReleaseCandidates);
                self.go_live(now, out);
            }
            HubMessage::RemoteAnswer { sdp, .. } => out.push(Output::ApplyRemoteAnswer(sdp)),
            HubMessage::Status { status, .. } => {
                if status == "accepted" && matches!(self.side, Side::Outbound { .. }) {
                    self.go_live(now, out);
                }
                out.push(Output::Progress(status));
            }
            HubMessage::Ended { reason, record, .. } => {
                out.push(Output::Progress(format!("ended: {reason}")));
                out.push(Output::Finish { record });
                self.phase = Phase::Ended;
                self.accept_at = None;
                self.end_at = None;
                self.finish_at = None;
            }
            _ => {}
        }
    }

    fn go_live(&mut self, now: Instant, out: &mut Vec<Output>) {
        if matches!(self.phase, Phase::Live | Phase::Ending) {
            return;
        }
        self.phase = Phase::Live;
        self.accept_at = None;
        if let Some(w) = self.watch.as_mut() {
            w.live(now);
        }
        self.end_at = self.rules.max_length.map(|d| now + d);
        out.push(Output::AudioOn);
    }

    fn accept(&mut self, out: &mut Vec<Output>) {
        if self.phase == Phase::Ringing && matches!(self.side, Side::Inbound) {
            out.push(Output::Send(EdgeMessage::Accept { call_id: self.id() }));
            self.phase = Phase::Accepting;
            self.accept_at = None;
        }
    }

    fn hangup(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.call_id.is_none() {
            if matches!(self.phase, Phase::Preparing | Phase::Dialing)
                && matches!(self.side, Side::Outbound { .. })
            {
                // A dial given up before the bridge placed it: nothing to hang up yet; a late
                // `Dialing` for it is hung up by [`stray`].
                out.push(Output::Dialed(Err(DialFailure::plain("cancelled"))));
                out.push(Output::Close);
                self.phase = Phase::Ended;
            }
            return;
        }
        if self.hangup_sent {
            return;
        }
        self.hangup_sent = true;
        out.push(Output::Send(EdgeMessage::Hangup { call_id: self.id() }));
        self.ending(now);
    }

    /// Once: the bridge terminates the call at the BSP and answers `Ended`.
    fn give_up_media(&mut self, reason: String, now: Instant, out: &mut Vec<Output>) {
        if self.media_failed || self.call_id.is_none() {
            return;
        }
        self.media_failed = true;
        out.push(Output::Send(EdgeMessage::MediaFailed {
            call_id: self.id(),
            reason,
            offer_refused: false,
        }));
        self.ending(now);
    }

    /// We ended the call; the bridge's `Ended` is awaited (for [`Self::finish_unanswered_after`]
    /// at most).
    fn ending(&mut self, now: Instant) {
        self.phase = Phase::Ending;
        self.accept_at = None;
        self.end_at = None;
        if self.finish_at.is_none() {
            self.finish_at = self.end_wait.map(|d| now + d);
        }
    }
}

/// What to do about a message for a call this edge no longer has: a `Dialing` for a dial given
/// up on (hung up while the bridge placed it) is hung up at once.
pub fn stray(msg: &HubMessage) -> Option<EdgeMessage> {
    match msg {
        HubMessage::Dialing { call_id, .. } => Some(EdgeMessage::Hangup {
            call_id: call_id.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> CallRules {
        CallRules {
            media: MediaDeadlines {
                connect: Duration::from_secs(10),
                silence: Duration::from_secs(30),
            },
            auto_accept: Some(Duration::from_millis(200)),
            max_length: Some(Duration::from_secs(60)),
        }
    }

    fn sends(out: &[Output]) -> Vec<EdgeMessage> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn ended(call_id: &str) -> Input {
        Input::Hub(HubMessage::Ended {
            call_id: call_id.into(),
            reason: "customer_hangup".into(),
            record: None,
        })
    }

    /// A bot's inbound call: answer, pre-accept, accept after the delay, audio only once the
    /// bridge confirms, then the end.
    #[test]
    fn inbound_answers_then_accepts_after_the_delay_and_talks_only_when_confirmed() {
        let t0 = Instant::now();
        let (mut c, out) = EdgeCall::inbound("wacid.1", "offer", rules());
        assert_eq!(out, vec![Output::BuildAnswer("offer".into())]);
        let out = c.handle(Input::AnswerReady("answer".into()), t0);
        assert_eq!(
            sends(&out),
            vec![EdgeMessage::Answer {
                call_id: "wacid.1".into(),
                sdp: "answer".into()
            }]
        );
        assert_eq!(c.phase(), Phase::Ringing);
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_millis(200)));
        let out = c.handle(
            Input::Hub(HubMessage::PreAccepted {
                call_id: "wacid.1".into(),
            }),
            t0 + Duration::from_millis(50),
        );
        assert_eq!(out, vec![Output::ReleaseCandidates]);
        assert!(
            c.handle(Input::Tick, t0 + Duration::from_millis(199))
                .is_empty()
        );
        let out = c.handle(Input::Tick, t0 + Duration::from_millis(200));
        assert_eq!(
            sends(&out),
            vec![EdgeMessage::Accept {
                call_id: "wacid.1".into()
            }]
        );
        assert_eq!(c.phase(), Phase::Accepting);
        assert!(
            !out.contains(&Output::AudioOn),
            "no audio before the 200 OK"
        );
        let out = c.handle(
            Input::Hub(HubMessage::Accepted {
                call_id: "wacid.1".into(),
            }),
            t0 + Duration::from_millis(260),
        );
        assert!(out.contains(&Output::AudioOn));
        assert_eq!(c.phase(), Phase::Live);
        let out = c.handle(ended("wacid.1"), t0 + Duration::from_secs(5));
        assert_eq!(out.last(), Some(&Output::Finish { record: None }));
        assert!(c.is_ended());
        assert!(
            c.handle(Input::Hangup, t0 + Duration::from_secs(6))
                .is_empty()
        );
    }

    /// An agent's call waits for the agent: no deadline of its own; declining rejects it.
    #[test]
    fn an_agent_decides_and_a_declined_call_is_rejected() {
        let t0 = Instant::now();
        let r = CallRules {
            auto_accept: None,
            ..rules()
        };
        let (mut c, _) = EdgeCall::inbound("wacid.2", "offer", r);
        c.handle(Input::AnswerReady("a".into()), t0);
        assert_eq!(c.next_deadline(), None);
        assert!(
            c.handle(Input::Tick, t0 + Duration::from_secs(30))
                .is_empty()
        );
        let out = c.handle(Input::Decline, t0 + Duration::from_secs(31));
        assert_eq!(
            sends(&out),
            vec![EdgeMessage::Reject {
                call_id: "wacid.2".into()
            }]
        );
        assert_eq!(c.phase(), Phase::Ending);
        assert!(
            c.handle(Input::Accept, t0 + Duration::from_secs(32))
                .is_empty()
        );
    }

    #[test]
    fn an_offer_we_cannot_answer_is_refused_once_and_closed() {
        let (mut c, _) = EdgeCall::inbound("wacid.3", "offer", rules());
        let out = c.handle(
            Input::SetupFailed {
                reason: "no codec".into(),
                offer_refused: true,
            },
            Instant::now(),
        );
        assert_eq!(
            sends(&out),
            vec![EdgeMessage::MediaFailed {
                call_id: "wacid.3".into(),
                reason: "no codec".into(),
                offer_refused: true
            }]
        );
        assert_eq!(out.last(), Some(&Output::Close));
        assert!(c.is_ended());
    }

    /// Media that never connects is given up on after the connect deadline, once.
    #[test]
    fn media_that_never_connects_is_given_up_once() {
        let t0 = Instant::now();
        let (mut c, _) = EdgeCall::inbound("wacid.4", "offer", rules());
        c.handle(Input::AnswerReady("a".into()), t0);
        let poll = |c: &mut EdgeCall, s| {
            c.handle(
                Input::Media {
                    state: ConnState::Connecting,
                    packets: 0,
                },
                t0 + Duration::from_secs(s),
            )
        };
        assert!(poll(&mut c, 9).is_empty());
        let out = poll(&mut c, 10);
        assert!(matches!(
            out[0],
            Output::MediaGivenUp(MediaVerdict::NeverConnected(_))
        ));
        assert!(matches!(
            &sends(&out)[0],
            EdgeMessage::MediaFailed { reason, .. } if reason.contains("did not connect")
        ));
        assert_eq!(c.phase(), Phase::Ending);
        assert!(poll(&mut c, 11).is_empty(), "given up once");
    }

    /// Silence counts only once the call is live; then 30 s of it ends the call.
    #[test]
    fn silence_counts_from_the_answer() {
        let t0 = Instant::now();
        let (mut c, _) = EdgeCall::inbound("wacid.5", "offer", rules());
        c.handle(Input::AnswerReady("a".into()), t0);
        let media = |packets| Input::Media {
            state: ConnState::Connected,
            packets,
        };
        c.handle(media(0), t0 + Duration::from_secs(1));
        assert!(c.handle(media(0), t0 + Duration::from_secs(40)).is_empty());
        c.handle(Input::Accept, t0 + Duration::from_secs(40));
        c.handle(
            Input::Hub(HubMessage::Accepted {
                call_id: "wacid.5".into(),
            }),
            t0 + Duration::from_secs(40),
        );
        assert!(c.handle(media(10), t0 + Duration::from_secs(50)).is_empty());
        let out = c.handle(media(10), t0 + Duration::from_secs(80));
        assert!(matches!(
            out[0],
            Output::MediaGivenUp(MediaVerdict::Silent(_))
        ));
    }

    /// ICE failing after the call connected ends it at once.
    #[test]
    fn a_connection_lost_after_connect_is_given_up() {
        let t0 = Instant::now();
        let (mut c, _) = EdgeCall::inbound("wacid.6", "offer", rules());
        c.handle(Input::AnswerReady("a".into()), t0);
        c.handle(
            Input::Media {
                state: ConnState::Connected,
                packets: 1,
            },
            t0 + Duration::from_secs(1),
        );
        let out = c.handle(
            Input::Media {
                state: ConnState::Failed,
                packets: 1,
            },
            t0 + Duration::from_secs(2),
        );
        assert_eq!(
            out[0],
            Output::MediaGivenUp(MediaVerdict::FailedAfterConnect)
        );
    }

    /// The maximum length is a deadline from the answer: the edge hangs up, once.
    #[test]
    fn the_maximum_length_hangs_up_once() {
        let t0 = Instant::now();
        let (mut c, _) = EdgeCall::inbound("wacid.7", "offer", rules());
        c.handle(Input::AnswerReady("a".into()), t0);
        c.handle(Input::Tick, t0 + Duration::from_millis(200));
        c.handle(
            Input::Hub(HubMessage::Accepted {
                call_id: "wacid.7".into(),
            }),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_secs(61)));
        assert!(
            c.handle(Input::Tick, t0 + Duration::from_secs(60))
                .is_empty()
        );
        let out = c.handle(Input::Tick, t0 + Duration::from_secs(61));
        assert_eq!(
            sends(&out),
            vec![EdgeMessage::Hangup {
                call_id: "wacid.7".into()
            }]
        );
        assert!(
            c.handle(Input::Hangup, t0 + Duration::from_secs(62))
                .is_empty()
        );
        assert_eq!(c.next_deadline(), None);
    }

    /// Outbound: offer, dial, the call id, the user's answer applied, audio when they answer,
    /// progress in words; keys pressed are reported.
    #[test]
    fn outbound_dials_applies_the_answer_and_talks_when_the_user_answers() {
        let t0 = Instant::now();
        let opts = DialOptions {
            meta_record: Some(true),
            meta_transcribe: None,
        };
        let (mut c, out) = EdgeCall::outbound("dial-1", "5215500000002", opts, rules());
        assert_eq!(out, vec![Output::BuildOffer]);
        let out = c.handle(Input::OfferReady("offer".into()), t0);
        assert_eq!(
            sends(&out),
            vec![EdgeMessage::Dial {
                request_id: "dial-1".into(),
                to: "5215500000002".into(),
                sdp: "offer".into(),
                meta_record: Some(true),
                meta_transcribe: None
            }]
        );
        let out = c.handle(
            Input::Hub(HubMessage::Dialing {
                request_id: "dial-1".into(),
                call_id: "wacid.9".into(),
            }),
            t0,
        );
        assert_eq!(out, vec![Output::Dialed(Ok("wacid.9".into()))]);
        let out = c.handle(
            Input::Hub(HubMessage::RemoteAnswer {
                call_id: "wacid.9".into(),
                sdp: "their answer".into(),
            }),
            t0,
        );
        assert_eq!(out, vec![Output::ApplyRemoteAnswer("their answer".into())]);
        let status = |s: &str| {
            Input::Hub(HubMessage::Status {
                call_id: "wacid.9".into(),
                status: s.into(),
            })
        };
        assert_eq!(
            c.handle(status("ringing"), t0),
            vec![Output::Progress("ringing".into())]
        );
        let out = c.handle(status("accepted"), t0 + Duration::from_secs(2));
        assert_eq!(
            out,
            vec![Output::AudioOn, Output::Progress("accepted".into())]
        );
        assert_eq!(c.phase(), Phase::Live);
        let out = c.handle(Input::Dtmf('5'), t0 + Duration::from_secs(3));
        assert_eq!(
            sends(&out),
            vec![EdgeMessage::Dtmf {
                call_id: "wacid.9".into(),
                digit: '5'
            }]
        );
        let out = c.handle(ended("wacid.9"), t0 + Duration::from_secs(9));
        assert_eq!(
            out,
            vec![
                Output::Progress("ended: customer_hangup".into()),
                Output::Finish { record: None }
            ]
        );
    }

    #[test]
    fn a_refused_dial_says_why_and_whether_permission_may_be_asked() {
        let t0 = Instant::now();
        let (mut c, _) = EdgeCall::outbound("dial-2", "44", DialOptions::default(), rules());
        c.handle(Input::OfferReady("o".into()), t0);
        let out = c.handle(
            Input::Hub(HubMessage::NoPermission {
                request_id: "dial-2".into(),
                to: "44".into(),
                message: "44 has not allowed calls".into(),
                can_request: true,
                resets_at: None,
            }),
            t0,
        );
        assert_eq!(
            out,
            vec![
                Output::Dialed(Err(DialFailure {
                    message: "44 has not allowed calls".into(),
                    can_request_permission: true,
                    resets_at: None
                })),
                Output::Close
            ]
        );
        assert!(c.is_ended());
        let (mut c, _) = EdgeCall::outbound("dial-3", "44", DialOptions::default(), rules());
        c.handle(Input::OfferReady("o".into()), t0);
        let out = c.handle(
            Input::Hub(HubMessage::Error {
                call_id: None,
                request_id: Some("dial-3".into()),
                message: "too fast".into(),
                permanent: false,
            }),
            t0,
        );
        assert_eq!(out[0], Output::Dialed(Err(DialFailure::plain("too fast"))));
        let (mut c, _) = EdgeCall::outbound("dial-4", "44", DialOptions::default(), rules());
        let out = c.handle(
            Input::SetupFailed {
                reason: "no sockets".into(),
                offer_refused: false,
            },
            t0,
        );
        assert_eq!(
            out,
            vec![
                Output::Dialed(Err(DialFailure::plain("no sockets"))),
                Output::Close
            ]
        );
    }

    /// The user's answer cannot be applied: the media is given up on (the bridge ends it).
    #[test]
    fn an_unusable_remote_answer_ends_the_call() {
        let t0 = Instant::now();
        let (mut c, _) = EdgeCall::outbound("dial-5", "44", DialOptions::default(), rules());
        c.handle(Input::OfferReady("o".into()), t0);
        c.handle(
            Input::Hub(HubMessage::Dialing {
                request_id: "dial-5".into(),
                call_id: "wacid.5".into(),
            }),
            t0,
        );
        let out = c.handle(Input::RemoteAnswerFailed("bad fingerprint".into()), t0);
        assert_eq!(
            sends(&out),
            vec![EdgeMessage::MediaFailed {
                call_id: "wacid.5".into(),
                reason: "bad fingerprint".into(),
                offer_refused: false
            }]
        );
        assert!(
            c.handle(Input::RemoteAnswerFailed("again".into()), t0)
                .is_empty()
        );
    }

    /// An agent may press Answer while our answer is still being built: the accept follows
    /// the answer at once.
    #[test]
    fn an_accept_before_the_answer_is_ready_goes_out_right_after_it() {
        let t0 = Instant::now();
        let r = CallRules {
            auto_accept: None,
            ..rules()
        };
        let (mut c, _) = EdgeCall::inbound("wacid.10", "offer", r);
        assert!(c.handle(Input::Accept, t0).is_empty());
        let out = c.handle(Input::AnswerReady("a".into()), t0);
        assert_eq!(
            sends(&out),
            vec![
                EdgeMessage::Answer {
                    call_id: "wacid.10".into(),
                    sdp: "a".into()
                },
                EdgeMessage::Accept {
                    call_id: "wacid.10".into()
                }
            ]
        );
        assert_eq!(c.phase(), Phase::Accepting);
    }

    /// Hanging up a dial before the bridge placed it cancels it: the media is freed, the dial
    /// fails, and a late `Dialing` for it is hung up.
    #[test]
    fn a_dial_hung_up_before_it_is_placed_is_cancelled() {
        let t0 = Instant::now();
        for offered in [false, true] {
            let (mut c, _) = EdgeCall::outbound("dial-6", "44", DialOptions::default(), rules());
            if offered {
                c.handle(Input::OfferReady("o".into()), t0);
                assert_eq!(c.phase(), Phase::Dialing);
            }
            let out = c.handle(Input::Hangup, t0);
            assert_eq!(
                out,
                vec![
                    Output::Dialed(Err(DialFailure::plain("cancelled"))),
                    Output::Close
                ]
            );
            assert!(c.is_ended());
        }
        let late = HubMessage::Dialing {
            request_id: "dial-6".into(),
            call_id: "wacid.11".into(),
        };
        assert_eq!(
            stray(&late),
            Some(EdgeMessage::Hangup {
                call_id: "wacid.11".into()
            })
        );
        assert_eq!(
            stray(&HubMessage::PreAccepted {
                call_id: "wacid.11".into()
            }),
            None
        );
        // An inbound call has a call id from the start: a hang-up is a hang-up.
        let (mut c, _) = EdgeCall::inbound("wacid.12", "offer", rules());
        c.handle(Input::AnswerReady("a".into()), t0);
        assert_eq!(
            sends(&c.handle(Input::Hangup, t0)),
            vec![EdgeMessage::Hangup {
                call_id: "wacid.12".into()
            }]
        );
    }

    /// With a wait set, a call we ended finishes without the bridge's `Ended` once the wait is
    /// over; without one (the bot) it waits for `Ended`.
    #[test]
    fn a_call_we_ended_finishes_when_the_bridge_does_not_answer() {
        let t0 = Instant::now();
        let r = CallRules {
            auto_accept: None,
            max_length: None,
            ..rules()
        };
        let (c, _) = EdgeCall::inbound("wacid.13", "offer", r);
        let mut c = c.finish_unanswered_after(Duration::from_secs(5));
        c.handle(Input::AnswerReady("a".into()), t0);
        assert_eq!(c.next_deadline(), None);
        c.handle(Input::Decline, t0 + Duration::from_secs(1));
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_secs(6)));
        assert!(
            c.handle(Input::Tick, t0 + Duration::from_secs(5))
                .is_empty()
        );
        let out = c.handle(Input::Tick, t0 + Duration::from_secs(6));
        assert_eq!(out.last(), Some(&Output::Finish { record: None }));
        assert!(c.is_ended());
        // The bridge answers in time: its `Ended` finishes the call, and the wait is gone.
        let (c, _) = EdgeCall::inbound("wacid.14", "offer", r);
        let mut c = c.finish_unanswered_after(Duration::from_secs(5));
        c.handle(Input::AnswerReady("a".into()), t0);
        c.handle(Input::Hangup, t0);
        let out = c.handle(ended("wacid.14"), t0 + Duration::from_secs(1));
        assert_eq!(out.last(), Some(&Output::Finish { record: None }));
        assert_eq!(c.next_deadline(), None);
        // No wait set: the call waits for the bridge.
        let (mut c, _) = EdgeCall::inbound("wacid.15", "offer", r);
        c.handle(Input::AnswerReady("a".into()), t0);
        c.handle(Input::Hangup, t0);
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.phase(), Phase::Ending);
    }
}
