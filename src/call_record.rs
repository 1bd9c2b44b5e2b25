//! One call as history and QA remember it: the same record is a row of the call history and the
//! JSON sidecar next to the recording, so the two always agree.

use serde::{Deserialize, Serialize};

use crate::media_stats::MediaStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The user called the business.
    Inbound,
    /// The business called the user.
    Outbound,
}

impl Direction {
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// What the receiving edge's jitter buffer made of the packets: running totals for a call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Playout {
    /// 20 ms frames played out since the first packet.
    pub frames: u64,
    /// Packets that came after their frame had been played (discarded).
    pub late: u64,
    /// Frames made up by concealment (loss, underrun, the buffer growing).
    pub concealed: u64,
    /// Lost frames rebuilt from the next packet's in-band FEC.
    pub fec_recovered: u64,
}

/// One point of a call's quality over time: what its edge reported at `at` (every 2 s), so a
/// report can show when a call went bad. Loss and jitter are the running figures of the call
/// so far; levels are what was heard and said in the last 20 ms.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualitySample {
    pub at: String,
    pub packets_received: u64,
    pub packets_lost: u64,
    pub loss_pct: f64,
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    pub frames_concealed: u64,
    /// The customer's audio as the edge heard it, and the edge's own, in dBFS.
    pub level_in_dbfs: Option<f32>,
    pub level_out_dbfs: Option<f32>,
}

impl QualitySample {
    pub fn from_stats(s: &MediaStats, at: String) -> Self {
        QualitySample {
            at,
            packets_received: s.received.packets,
            packets_lost: s.received.lost,
            loss_pct: s.received.loss_pct,
            jitter_ms: s.received.jitter_ms,
            rtt_ms: s.rtt_ms,
            frames_concealed: s.playout.concealed,
            level_in_dbfs: s.level_in_dbfs,
            level_out_dbfs: s.level_out_dbfs,
        }
    }
}

/// Loss, jitter and RTT summarised for QA.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QualitySummary {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: u64,
    pub loss_pct: f64,
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    /// RTP packets dropped for a payload type the call did not negotiate.
    #[serde(default)]
    pub unknown_payload_type: u64,
    /// Audio packets the edge dropped because its audio loop fell behind.
    #[serde(default)]
    pub dropped_in_queue: u64,
    #[serde(default)]
    pub playout: Playout,
    /// When the call's media first connected at the edge (unix ms).
    #[serde(default)]
    pub media_connected_ms: Option<u64>,
}

impl From<&MediaStats> for QualitySummary {
    fn from(s: &MediaStats) -> Self {
        QualitySummary {
            packets_sent: s.packets_sent,
            packets_received: s.received.packets,
            packets_lost: s.received.lost,
            loss_pct: s.received.loss_pct,
            jitter_ms: s.received.jitter_ms,
            rtt_ms: s.rtt_ms,
            unknown_payload_type: s.unknown_payload_type,
            dropped_in_queue: s.dropped_in_queue,
            playout: s.playout,
            media_connected_ms: s.connected_at_ms,
        }
    }
}

/// Times are RFC 3339 UTC strings (sortable, readable in the sidecar and in SQL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_id: String,
    pub direction: Direction,
    /// The WhatsApp user's number (or business-scoped user id when they hide it).
    pub customer: String,
    pub business: String,
    pub caller_name: Option<String>,
    /// Which edge (bot or agent) had the call.
    pub edge: Option<String>,
    /// Who answered: the edge name for inbound calls, "customer" for outbound ones.
    pub answered_by: Option<String>,
    pub offered_at: String,
    pub pre_accepted_at: Option<String>,
    pub accepted_at: Option<String>,
    pub ended_at: Option<String>,
    /// Why it ended, e.g. `customer_hangup`, `business_hangup`, `rejected`, `no_answer`, `failed`.
    pub end_reason: Option<String>,
    pub duration_s: Option<u64>,
    pub quality: Option<QualitySummary>,
    pub recording: Option<String>,
    pub dtmf: String,
    /// Seconds the caller waited in the queue for a free edge (inbound; `None` = not queued).
    #[serde(default)]
    pub queue_wait_s: Option<u64>,
    /// The call went to the overflow edge (voicemail, say), and why.
    #[serde(default)]
    pub overflow: Option<String>,
    /// When each key of `dtmf` was pressed (RFC 3339, in the same order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dtmf_at: Vec<String>,
    /// Meta's own recording of the call (`[recording.meta]`), downloaded into the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_recording: Option<String>,
    /// Meta's transcript of the call (JSON segments), downloaded into the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_transcript: Option<String>,
}

impl CallRecord {
    pub fn new(call_id: &str, direction: Direction, customer: &str, business: &str) -> Self {
        CallRecord {
            call_id: call_id.to_string(),
            direction,
            customer: customer.to_string(),
            business: business.to_string(),
            caller_name: None,
            edge: None,
            answered_by: None,
            offered_at: now_rfc3339(),
            pre_accepted_at: None,
            accepted_at: None,
            ended_at: None,
            end_reason: None,
            duration_s: None,
            quality: None,
            recording: None,
            dtmf: String::new(),
            queue_wait_s: None,
            overflow: None,
            dtmf_at: Vec::new(),
            meta_recording: None,
            meta_transcript: None,
        }
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
