//! Prometheus text exposition for the bridge, without a metrics framework: a handful of atomic
//! counters and one histogram are all `/metrics` needs.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Seconds buckets for webhook → pre_accept latency: the target is 15 ms p50, 50 ms p99.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Seconds buckets for a caller's wait in the queue (WhatsApp rings for 30–60 s).
const WAIT_BUCKETS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0];

#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    inner: Mutex<(Vec<u64>, u64, f64)>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::with_bounds(&BUCKETS)
    }
}

/// Queue waits: a histogram with its own buckets.
#[derive(Debug)]
pub struct WaitHistogram(pub Histogram);

impl Default for WaitHistogram {
    fn default() -> Self {
        WaitHistogram(Histogram::with_bounds(&WAIT_BUCKETS))
    }
}

impl Histogram {
    pub fn with_bounds(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            inner: Mutex::new((Vec::new(), 0, 0.0)),
        }
    }

    pub fn observe(&self, secs: f64) {
        if let Ok(mut h) = self.inner.lock() {
            if h.0.is_empty() {
                h.0 = vec![0; self.bounds.len()];
            }
            for (i, b) in self.bounds.iter().enumerate() {
                if secs <= *b {
                    h.0[i] += 1;
                }
            }
            h.1 += 1;
            h.2 += secs;
        }
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let (buckets, count, sum) = self.inner.lock().map(|h| h.clone()).unwrap_or_default();
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in self.bounds.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                buckets.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub calls_inbound: Counter,
    pub calls_outbound: Counter,
    pub webhooks: Counter,
    pub webhook_bad_signature: Counter,
    pub webhook_malformed: Counter,
    pub bsp_errors: Counter,
    /// Connect webhooks not answered: stamped outside the window, or a call id seen before.
    pub webhook_stale_offers: Counter,
    /// Calls made by a `connect` whose reply was lost, found by their webhook and terminated.
    pub lost_connects_ended: Counter,
    /// Dials not placed: no call permission, or a permission limit reached.
    pub dials_without_permission: Counter,
    /// Call-permission requests sent, and replies received (user or automatic).
    pub permission_requests: Counter,
    pub permission_replies: Counter,
    /// Edge messages refused for going over the edge's rate limit.
    pub edge_rate_limited: Counter,
    /// Connections refused at the connection limit (503 at once).
    pub http_shed: Counter,
    /// Edge messages about a call the edge does not hold (refused).
    pub edge_refused: Counter,
    /// RTP packets edges dropped for a payload type the call did not negotiate.
    pub rtp_unknown_payload_type: Counter,
    /// What edges' jitter buffers made of the calls' audio (from the stats edges send every
    /// 2 s): frames played, packets late, frames concealed, packets dropped by a slow loop.
    pub edge_frames_played: Counter,
    pub edge_frames_late: Counter,
    pub edge_frames_concealed: Counter,
    pub edge_packets_dropped: Counter,
    pub setup_latency: Histogram,
    /// The queue: callers waiting now, their waits when they left it, how they left.
    pub queue_length: AtomicU64,
    pub queue_wait: WaitHistogram,
    pub queue_abandoned: Counter,
    pub queue_overflowed: Counter,
    /// Inbound calls answered (pre-accepted), and of those within `routing.service_level_s` of
    /// arriving: their ratio is the service level.
    pub inbound_answered: Counter,
    pub inbound_answered_in_time: Counter,
    /// Recordings edges uploaded: stored whole, failed their checksum, refused (not the
    /// call's holder), and the bytes received.
    pub uploads_stored: Counter,
    pub uploads_failed: Counter,
    pub uploads_refused: Counter,
    pub upload_bytes: Counter,
    /// Bytes of compact (Ogg Opus) recordings written to the store.
    pub stored_bytes: Counter,
    /// Uploads begun and not finished (partial files in the store).
    pub uploads_pending: AtomicU64,
    /// Stored files deleted past `recording.keep_days`.
    pub recordings_expired: Counter,
    ended: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Counts an ended call by the first word of its reason (`media_failed: ...` → `media_failed`).
    pub fn ended(&self, reason: &str) {
        let key = reason
            .split(':')
            .next()
            .unwrap_or(reason)
            .trim()
            .to_string();
        if let Ok(mut m) = self.ended.lock() {
            *m.entry(key).or_default() += 1;
        }
    }

    /// The exposition text; `phases` are live calls by state, `edges` the connected edges.
    pub fn render(&self, phases: &[(&str, usize)], edges: usize) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP wacall_calls_started_total Calls seen, by direction\n# TYPE wacall_calls_started_total counter"
        );
        let _ = writeln!(
            out,
            "wacall_calls_started_total{{direction=\"inbound\"}} {}",
            self.calls_inbound.get()
        );
        let _ = writeln!(
            out,
            "wacall_calls_started_total{{direction=\"outbound\"}} {}",
            self.calls_outbound.get()
        );
        counter(
            &mut out,
            "wacall_webhooks_total",
            "Webhook requests accepted",
            self.webhooks.get(),
        );
        let _ = writeln!(
            out,
            "# HELP wacall_webhook_errors_total Webhook requests refused\n# TYPE wacall_webhook_errors_total counter"
        );
        let _ = writeln!(
            out,
            "wacall_webhook_errors_total{{kind=\"signature\"}} {}",
            self.webhook_bad_signature.get()
        );
        let _ = writeln!(
            out,
            "wacall_webhook_errors_total{{kind=\"malformed\"}} {}",
            self.webhook_malformed.get()
        );
        let _ = writeln!(
            out,
            "wacall_webhook_errors_total{{kind=\"stale_offer\"}} {}",
            self.webhook_stale_offers.get()
        );
        counter(
            &mut out,
            "wacall_bsp_errors_total",
            "BSP actions that failed",
            self.bsp_errors.get(),
        );
        counter(
            &mut out,
            "wacall_lost_connects_ended_total",
            "Calls whose connect reply was lost, found by their webhook and terminated",
            self.lost_connects_ended.get(),
        );
        counter(
            &mut out,
            "wacall_dials_without_permission_total",
            "Dials not placed: the user has not allowed calls, or a permission limit is reached",
            self.dials_without_permission.get(),
        );
        counter(
            &mut out,
            "wacall_permission_requests_total",
            "Call-permission requests sent",
            self.permission_requests.get(),
        );
        counter(
            &mut out,
            "wacall_permission_replies_total",
            "Call-permission replies received (the user's, or WhatsApp's automatic ones)",
            self.permission_replies.get(),
        );
        counter(
            &mut out,
            "wacall_edge_rate_limited_total",
            "Edge messages refused: over the edge's rate limit (messages, dials)",
            self.edge_rate_limited.get(),
        );
        counter(
            &mut out,
            "wacall_http_shed_total",
            "Connections refused at the connection limit (503 before any work)",
            self.http_shed.get(),
        );
        counter(
            &mut out,
            "wacall_edge_refused_total",
            "Edge messages refused: about a call that edge does not hold",
            self.edge_refused.get(),
        );
        counter(
            &mut out,
            "wacall_rtp_unknown_payload_type_total",
            "RTP packets dropped by edges: payload type not negotiated (never decoded)",
            self.rtp_unknown_payload_type.get(),
        );
        for (name, help, c) in [
            (
                "wacall_edge_frames_played_total",
                "20 ms frames edges played out from what they received",
                &self.edge_frames_played,
            ),
            (
                "wacall_edge_frames_late_total",
                "Packets that reached an edge after their frame was played (discarded)",
                &self.edge_frames_late,
            ),
            (
                "wacall_edge_frames_concealed_total",
                "Frames edges concealed (loss, underrun, jitter buffer growing)",
                &self.edge_frames_concealed,
            ),
            (
                "wacall_edge_packets_dropped_total",
                "Audio packets edges dropped because their audio loop fell behind",
                &self.edge_packets_dropped,
            ),
        ] {
            counter(&mut out, name, help, c.get());
        }
        let _ = writeln!(
            out,
            "# HELP wacall_calls_ended_total Calls ended, by reason\n# TYPE wacall_calls_ended_total counter"
        );
        if let Ok(m) = self.ended.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(out, "wacall_calls_ended_total{{reason=\"{reason}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP wacall_calls Live calls by state\n# TYPE wacall_calls gauge"
        );
        for (phase, n) in phases {
            let _ = writeln!(out, "wacall_calls{{state=\"{phase}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP wacall_edges Connected edges\n# TYPE wacall_edges gauge\nwacall_edges {edges}"
        );
        // Ready media sessions being rebuilt by bots in this process (serve --bot).
        let (running, done) = crate::media::pool::refill_counts();
        let _ = writeln!(
            out,
            "# HELP wacall_media_pool_refills_running Ready-session refills running in this process\n# TYPE wacall_media_pool_refills_running gauge\nwacall_media_pool_refills_running {running}"
        );
        counter(
            &mut out,
            "wacall_media_pool_refills_total",
            "Ready-session refills finished in this process",
            done,
        );
        self.setup_latency.render(
            "wacall_setup_latency_seconds",
            "Webhook received to pre_accept submitted",
            &mut out,
        );
        let _ = writeln!(
            out,
            "# HELP wacall_queue_length Callers waiting for a free edge\n# TYPE wacall_queue_length gauge\nwacall_queue_length {}",
            self.queue_length.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP wacall_uploads_pending Recording uploads begun and not finished\n# TYPE wacall_uploads_pending gauge\nwacall_uploads_pending {}",
            self.uploads_pending.load(Ordering::Relaxed)
        );
        self.queue_wait.0.render(
            "wacall_queue_wait_seconds",
            "How long callers waited in the queue (taken, abandoned or overflowed)",
            &mut out,
        );
        for (name, help, c) in [
            (
                "wacall_queue_abandoned_total",
                "Callers who hung up while waiting in the queue",
                &self.queue_abandoned,
            ),
            (
                "wacall_queue_overflowed_total",
                "Queued calls whose wait ran out (sent to the overflow edge, or rejected)",
                &self.queue_overflowed,
            ),
            (
                "wacall_inbound_answered_total",
                "Inbound calls answered (pre-accepted)",
                &self.inbound_answered,
            ),
            (
                "wacall_inbound_answered_in_time_total",
                "Inbound calls answered within routing.service_level_s of arriving",
                &self.inbound_answered_in_time,
            ),
            (
                "wacall_uploads_stored_total",
                "Recordings and sidecars edges uploaded, checked and stored",
                &self.uploads_stored,
            ),
            (
                "wacall_uploads_failed_total",
                "Uploads discarded for a checksum mismatch",
                &self.uploads_failed,
            ),
            (
                "wacall_uploads_refused_total",
                "Uploads refused: the edge did not hold the call",
                &self.uploads_refused,
            ),
            (
                "wacall_upload_bytes_total",
                "Bytes of recordings received from edges",
                &self.upload_bytes,
            ),
            (
                "wacall_stored_bytes_total",
                "Bytes of compact Ogg Opus recordings written to the store",
                &self.stored_bytes,
            ),
            (
                "wacall_recordings_expired_total",
                "Stored recording files deleted past recording.keep_days",
                &self.recordings_expired,
            ),
        ] {
            counter(&mut out, name, help, c.get());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.calls_inbound.inc();
        m.ended("media_failed: ICE");
        m.ended("customer_hangup");
        m.setup_latency.observe(0.012);
        m.setup_latency.observe(0.2);
        let t = m.render(&[("active", 2)], 1);
        assert!(t.contains("wacall_calls_started_total{direction=\"inbound\"} 1"));
        assert!(t.contains("wacall_calls_ended_total{reason=\"media_failed\"} 1"));
        assert!(t.contains("wacall_calls{state=\"active\"} 2"));
        assert!(t.contains("wacall_setup_latency_seconds_bucket{le=\"0.015\"} 1"));
        assert!(t.contains("wacall_setup_latency_seconds_bucket{le=\"0.25\"} 2"));
        assert!(t.contains("wacall_setup_latency_seconds_count 2"));
    }
}
