//! A call's media figures as plain data: what edges report (`Stats`, `Finished`), what the
//! history keeps and the console shows. Core types may use these without pulling in the peer
//! connection (`media`): they carry no IO.

use serde::{Deserialize, Serialize};

/// A copy of the figures at one instant, for the UI, the metrics and the sidecar.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecvSummary {
    pub packets: u64,
    pub bytes: u64,
    pub expected: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub jitter_ms: f64,
}

/// Live figures for one call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MediaStats {
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub received: RecvSummary,
    /// Round-trip time of the selected ICE pair (STUN), in ms.
    pub rtt_ms: Option<f64>,
    /// Audio packets dropped because our consumer was too slow.
    pub dropped_in_queue: u64,
    /// Packets whose payload type was neither the negotiated codec nor telephone-event:
    /// dropped, never decoded.
    #[serde(default)]
    pub unknown_payload_type: u64,
    /// Filled by the audio engine that plays the call out (the session does not see it).
    #[serde(default)]
    pub playout: crate::call_record::Playout,
    /// Levels of the last 20 ms heard and sent, in dBFS (also from the audio engine).
    #[serde(default)]
    pub level_in_dbfs: Option<f32>,
    #[serde(default)]
    pub level_out_dbfs: Option<f32>,
    /// When the call's media first connected (unix ms).
    #[serde(default)]
    pub connected_at_ms: Option<u64>,
}
