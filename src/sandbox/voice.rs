//! The simulated user's voice: a real Opus stream out, real Opus decoded in.
//!
//! Outgoing audio is a tone encoded once and replayed (the load generator must not be the
//! bottleneck, see docs/performance.md); incoming audio is decoded and the last second kept, so
//! the sandbox can say which frequency the user heard from the business.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::audio::codec::{EncoderConfig, OpusDecoder, OpusEncoder};
use crate::audio::tone::{ToneGenerator, dominant_frequency};
use crate::audio::{FRAME_SAMPLES, SAMPLE_RATE};
use crate::media::rtp_stats::RecvStats;
use crate::media::{ConnState, MediaSession};

/// One second of heard audio is enough to name a tone to ±2 Hz.
const KEEP_SAMPLES: usize = SAMPLE_RATE as usize;

/// Encodes `seconds` of a tone once; replaying these packets costs no encoder time per call.
/// A whole number of tone periods per loop keeps the replay click-free for the tones we use.
pub fn encode_tone(freq_hz: f32, seconds: usize) -> Vec<Bytes> {
    let mut encoder = match OpusEncoder::new(EncoderConfig::default()) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "cannot create an Opus encoder for the simulated user");
            return Vec::new();
        }
    };
    let mut tone = ToneGenerator::new(freq_hz, 0.3);
    (0..seconds * 50)
        .filter_map(|_| encoder.encode(&tone.next_frame()).ok().map(Bytes::from))
        .collect()
}

/// What a simulated user heard and said.
#[derive(Debug, Default, Clone, Serialize)]
pub struct VoiceReport {
    pub packets_sent: u64,
    pub packets_heard: u64,
    /// Dominant frequency of the last second heard, if a second was heard (not in light mode)
    /// and it was louder than [`HEARD_FLOOR_DBFS`]: silence has no frequency to report.
    pub heard_hz: Option<f32>,
    /// RMS level of the last second heard, in dBFS (not in light mode).
    pub heard_dbfs: Option<f32>,
    /// Packets that arrived more than [`LATE_MS`] behind their 20 ms schedule.
    pub late: u64,
    /// Packets never received (gaps in the sequence numbers).
    pub missing: u64,
}

/// Below this the last second heard counts as silence (the tones here are about -13 dBFS).
pub const HEARD_FLOOR_DBFS: f32 = -50.0;

/// RMS level in dBFS.
pub fn rms_dbfs(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return -96.0;
    }
    let ms = pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64;
    let rms = ms.sqrt() / 32768.0;
    if rms <= 0.0 {
        -96.0
    } else {
        (20.0 * rms.log10()).max(-96.0) as f32
    }
}

/// A packet this far behind its schedule would have missed a 2-frame jitter buffer.
pub const LATE_MS: i64 = 40;

/// Measures arrivals against the sender's 20 ms schedule, from RTP timestamps: the earliest
/// (arrival − media time) seen is the on-time baseline, and a packet later than that by more than
/// [`LATE_MS`] is late. Missing packets are the media engine's own RFC 3550 count.
#[derive(Default)]
struct Schedule {
    base: Option<i64>,
    ts0: Option<u32>,
    late: u64,
    recv: RecvStats,
}

impl Schedule {
    fn on_packet(&mut self, seq: u16, ts: u32, arrival_ms: u64) {
        let ts0 = *self.ts0.get_or_insert(ts);
        let media_ms = (ts.wrapping_sub(ts0) / 48) as i64;
        let offset = arrival_ms as i64 - media_ms;
        let base = self.base.map_or(offset, |b| b.min(offset));
        self.base = Some(base);
        if offset - base > LATE_MS {
            self.late += 1;
        }
        self.recv.on_packet(seq, ts, arrival_ms as i64 * 48, 0);
    }

    fn missing(&self) -> u64 {
        self.recv.summary(SAMPLE_RATE).lost
    }
}

#[derive(Default)]
struct Heard {
    pcm: VecDeque<i16>,
    schedule: Schedule,
    /// The Opus packets heard, kept while Meta-side recording is on (`Voice::start_tape`): under
    /// the lock each packet already takes, so a call without it pays nothing more.
    tape: Option<Vec<Bytes>>,
}

/// Talking and listening tasks of one simulated user in one call.
pub struct Voice {
    sent: Arc<AtomicU64>,
    heard_packets: Arc<AtomicU64>,
    heard: Arc<Mutex<Heard>>,
    talking: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

/// A tape holds at most this many packets (30 minutes).
const TAPE_PACKETS: usize = 30 * 60 * 50;

impl Voice {
    /// Starts listening at once (media flows from pre_accept on) and talking when `talk()` is
    /// called (after the call is accepted, as a phone would).
    pub fn start(media: Arc<MediaSession>, packets: Arc<Vec<Bytes>>, light: bool) -> Voice {
        let sent = Arc::new(AtomicU64::new(0));
        let heard_packets = Arc::new(AtomicU64::new(0));
        let heard = Arc::new(Mutex::new(Heard::default()));
        let talking = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();

        if let Some(mut rx) = media.take_audio() {
            let heard = heard.clone();
            let count = heard_packets.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(mut decoder) = OpusDecoder::new() else {
                    return;
                };
                while let Some(p) = rx.recv().await {
                    count.fetch_add(1, Ordering::Relaxed);
                    // Light mode (load tests): count and time arrivals, don't decode.
                    let frame = (!light).then(|| decoder.decode(&p.payload));
                    if let Ok(mut h) = heard.lock() {
                        h.schedule.on_packet(p.seq, p.timestamp, p.arrival_ms);
                        if let Some(t) = h.tape.as_mut()
                            && t.len() < TAPE_PACKETS
                        {
                            t.push(p.payload.clone());
                        }
                        let Some(frame) = frame else { continue };
                        h.pcm.extend(frame.samples());
                        let excess = h.pcm.len().saturating_sub(KEEP_SAMPLES);
                        h.pcm.drain(..excess);
                    }
                }
            }));
        }
        {
            let sent = sent.clone();
            let talking = talking.clone();
            tasks.push(tokio::spawn(async move {
                if packets.is_empty() {
                    return;
                }
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut i = 0usize;
                loop {
                    tick.tick().await;
                    if !talking.load(Ordering::Relaxed) || media.state() != ConnState::Connected {
                        continue;
                    }
                    let p = packets[i % packets.len()].clone();
                    i += 1;
                    if media.send_opus(p).await.is_err() {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        Voice {
            sent,
            heard_packets,
            heard,
            talking,
            tasks,
        }
    }

    /// Starts keeping what is heard (Meta was asked to record the call).
    pub fn start_tape(&self) {
        if let Ok(mut h) = self.heard.lock() {
            h.tape.get_or_insert_with(Vec::new);
        }
    }

    /// What was kept, if taping was on.
    pub fn take_tape(&self) -> Option<Vec<Bytes>> {
        self.heard.lock().ok().and_then(|mut h| h.tape.take())
    }

    pub fn talk(&self) {
        self.talking.store(true, Ordering::Relaxed);
    }

    /// Stops sending while the connection stays up (ICE consent still answered): a phone
    /// whose sender died, or a middlebox that dropped the audio flow.
    pub fn fall_silent(&self) {
        self.talking.store(false, Ordering::Relaxed);
    }

    pub fn report(&self) -> VoiceReport {
        let (heard_hz, heard_dbfs, late, missing) = self
            .heard
            .lock()
            .map(|h| {
                let pcm: Vec<i16> = h.pcm.iter().copied().collect();
                let enough = pcm.len() >= KEEP_SAMPLES / 2;
                let level = enough.then(|| rms_dbfs(&pcm));
                let hz = level
                    .filter(|db| *db >= HEARD_FLOOR_DBFS)
                    .map(|_| dominant_frequency(&pcm, SAMPLE_RATE));
                (hz, level, h.schedule.late, h.schedule.missing())
            })
            .unwrap_or_default();
        VoiceReport {
            packets_sent: self.sent.load(Ordering::Relaxed),
            packets_heard: self.heard_packets.load(Ordering::Relaxed),
            heard_hz,
            heard_dbfs,
            late,
            missing,
        }
    }
}

impl Drop for Voice {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

const _: () = assert!(FRAME_SAMPLES == 960);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_counts_late_and_missing_packets() {
        let mut s = Schedule::default();
        // On time, 20 ms apart, first one a little late (the baseline adapts down).
        s.on_packet(10, 0, 1_005);
        s.on_packet(11, 960, 1_020);
        s.on_packet(12, 1_920, 1_040);
        // 13 lost; 14 arrives 60 ms behind schedule.
        s.on_packet(14, 3_840, 1_140);
        // Reordered old packet: neither missing nor a sequence reset.
        s.on_packet(13, 2_880, 1_141);
        s.on_packet(15, 4_800, 1_100);
        assert_eq!(s.missing(), 1);
        assert_eq!(s.late, 2, "14 (+60 ms) and the reordered 13 (+81 ms)");
        // Sequence wraparound is not loss.
        let mut w = Schedule::default();
        w.on_packet(65_535, 0, 0);
        w.on_packet(0, 960, 20);
        assert_eq!(w.missing(), 0);
    }
}
