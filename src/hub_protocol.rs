//! The JSON messages between the bridge's hub and its edges (bots, softphones), over WebSocket.
//!
//! Edges own media; the bridge owns the BSP credentials and call state. So an edge never talks to
//! the BSP: it hands the bridge its SDP and its decisions, and the bridge submits the actions and
//! tells the edge what happened. Every message that concerns a call carries the WhatsApp call id.
//! The messages only: what carries them (a socket, or channels in one process) is the edge's
//! `edge::link::HubConnection`.

use serde::{Deserialize, Serialize};

use crate::call_record::{CallRecord, QualitySummary};
use crate::media_stats::MediaStats;

/// Edge → bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EdgeMessage {
    /// First message: who this edge is. The token is checked in constant time.
    Hello {
        token: String,
        name: String,
        kind: EdgeKind,
    },
    /// Whether the edge takes new calls (an agent going away, a bot at capacity).
    Available { available: bool },
    /// Our SDP answer to an offered call is ready: the bridge pre-accepts with it.
    Answer { call_id: String, sdp: String },
    /// The agent (or bot) answers: the bridge submits `accept` with the same SDP.
    Accept { call_id: String },
    /// Decline a ringing call, or pass it on to the next edge.
    Reject { call_id: String },
    /// Hang up.
    Hangup { call_id: String },
    /// Place a call to a user with our SDP offer. `request_id` ties the reply to the request.
    /// `meta_record` / `meta_transcribe`: this call's choice of Meta-side recording and
    /// transcription (`None`: `[recording.meta]` decides).
    Dial {
        request_id: String,
        to: String,
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meta_record: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meta_transcribe: Option<bool>,
    },
    /// Ask the user for permission to call them (Meta's interactive call-permission request).
    /// The bridge answers `PermissionRequest`, and `Permission` once the user replies.
    RequestPermission {
        request_id: String,
        to: String,
        /// The request's text; the bridge has a default.
        #[serde(default)]
        text: Option<String>,
    },
    /// The edge could not set up media for a call (bad SDP, no sockets, ICE failed).
    /// `offer_refused`: the offer itself cannot be answered (no codec we speak), so no other
    /// edge could do better and the call is rejected at once.
    MediaFailed {
        call_id: String,
        reason: String,
        #[serde(default)]
        offer_refused: bool,
    },
    /// Media figures, sent periodically during a call and once at its end.
    Stats { call_id: String, stats: MediaStats },
    /// The edge has torn the call down: final quality and where the recording is. The bridge
    /// adds these to the history row; the edge wrote the same record as the recording sidecar.
    Finished {
        call_id: String,
        quality: QualitySummary,
        recording: Option<String>,
    },
    /// A DTMF key the user pressed, for the call history and routing.
    Dtmf { call_id: String, digit: char },
}

impl EdgeMessage {
    /// The call this message is about, if it is about one (the bridge honours it only from the
    /// edge holding that call).
    pub fn call_id(&self) -> Option<&str> {
        match self {
            EdgeMessage::Answer { call_id, .. }
            | EdgeMessage::Accept { call_id }
            | EdgeMessage::Reject { call_id }
            | EdgeMessage::Hangup { call_id }
            | EdgeMessage::MediaFailed { call_id, .. }
            | EdgeMessage::Stats { call_id, .. }
            | EdgeMessage::Finished { call_id, .. }
            | EdgeMessage::Dtmf { call_id, .. } => Some(call_id),
            EdgeMessage::Hello { .. }
            | EdgeMessage::Available { .. }
            | EdgeMessage::Dial { .. }
            | EdgeMessage::RequestPermission { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    Bot,
    Agent,
}

/// Bridge → edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubMessage {
    Welcome {
        edge_id: String,
    },
    /// A user calls: build an answer to this offer, then ring (agent) or answer (bot).
    Incoming {
        call_id: String,
        from: String,
        caller_name: Option<String>,
        sdp: String,
    },
    /// The BSP accepted our pre_accept: media may connect, but send no audio yet.
    PreAccepted {
        call_id: String,
    },
    /// The BSP accepted our accept (200 OK): start sending audio now, not earlier.
    Accepted {
        call_id: String,
    },
    /// Our dial request became a WhatsApp call.
    Dialing {
        request_id: String,
        call_id: String,
    },
    /// The user's SDP answer to our offer.
    RemoteAnswer {
        call_id: String,
        sdp: String,
    },
    /// Progress of an outbound call: `ringing`, `accepted`, `rejected`.
    Status {
        call_id: String,
        status: String,
    },
    /// The call is over; free its media. `record` is the bridge's history row for the call, so
    /// the sidecar the edge writes next to the recording matches it.
    Ended {
        call_id: String,
        reason: String,
        record: Option<Box<CallRecord>>,
    },
    /// A request failed. `call_id` or `request_id` say which; `permanent` means don't retry.
    Error {
        call_id: Option<String>,
        request_id: Option<String>,
        message: String,
        permanent: bool,
    },
    /// Callers waiting for a free edge (sent to edges whenever it changes).
    Queue {
        waiting: usize,
        longest_wait_s: u64,
    },
    /// A dial was not placed: the user has not allowed calls, or a limit is reached.
    /// `message` says so in words; `can_request`: a permission request may be sent now;
    /// `resets_at` (RFC 3339): when the limit in the way resets.
    NoPermission {
        request_id: String,
        to: String,
        message: String,
        can_request: bool,
        resets_at: Option<String>,
    },
    /// The answer to `RequestPermission`: sent (`message_id`), or why not (`message`).
    PermissionRequest {
        request_id: String,
        to: String,
        sent: bool,
        message: String,
        resets_at: Option<String>,
    },
    /// The user answered a permission request (or WhatsApp did for them): sent to the edges
    /// that asked for `to`. `status` in words (`temporary until ...`, `none`).
    Permission {
        to: String,
        granted: bool,
        status: String,
    },
}

impl EdgeMessage {
    pub fn to_json(&self) -> String {
        // Serialising these plain enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl HubMessage {
    /// The call a message is about (an edge routes it to that call's task).
    pub fn call_id(&self) -> Option<&str> {
        match self {
            HubMessage::Incoming { call_id, .. }
            | HubMessage::PreAccepted { call_id }
            | HubMessage::Accepted { call_id }
            | HubMessage::Dialing { call_id, .. }
            | HubMessage::RemoteAnswer { call_id, .. }
            | HubMessage::Status { call_id, .. }
            | HubMessage::Ended { call_id, .. } => Some(call_id),
            HubMessage::Error { call_id, .. } => call_id.as_deref(),
            HubMessage::Welcome { .. }
            | HubMessage::Queue { .. }
            | HubMessage::NoPermission { .. }
            | HubMessage::PermissionRequest { .. }
            | HubMessage::Permission { .. } => None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_a_type_tag() {
        let m = EdgeMessage::Answer {
            call_id: "wacid.1".into(),
            sdp: "v=0".into(),
        };
        let j = m.to_json();
        assert!(j.contains(r#""type":"answer""#), "{j}");
        assert_eq!(serde_json::from_str::<EdgeMessage>(&j).unwrap(), m);
        let h = HubMessage::Ended {
            call_id: "wacid.1".into(),
            reason: "remote_hangup".into(),
            record: None,
        };
        assert_eq!(serde_json::from_str::<HubMessage>(&h.to_json()).unwrap(), h);
    }

    #[test]
    fn unknown_or_malformed_messages_are_errors() {
        assert!(serde_json::from_str::<EdgeMessage>(r#"{"type":"explode"}"#).is_err());
        assert!(serde_json::from_str::<EdgeMessage>(r#"{"type":"answer"}"#).is_err());
        assert!(serde_json::from_str::<EdgeMessage>("not json").is_err());
    }
}
