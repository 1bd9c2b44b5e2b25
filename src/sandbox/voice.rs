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
    /// Dominant frequency of the last second heard, if a second was heard.
    pub heard_hz: Option<f32>,
}

#[derive(Default)]
struct Heard {
    pcm: VecDeque<i16>,
}

/// Talking and listening tasks of one simulated user in one call.
pub struct Voice {
    sent: Arc<AtomicU64>,
    heard_packets: Arc<AtomicU64>,
    heard: Arc<Mutex<Heard>>,
    talking: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Voice {
    /// Starts listening at once (media flows from pre_accept on) and talking when `talk()` is
    /// called (after the call is accepted, as a phone would).
    pub fn start(media: Arc<MediaSession>, packets: Arc<Vec<Bytes>>) -> Voice {
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
                    let frame = decoder.decode(&p.payload);
                    if let Ok(mut h) = heard.lock() {
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

    pub fn talk(&self) {
        self.talking.store(true, Ordering::Relaxed);
    }

    pub fn report(&self) -> VoiceReport {
        let heard_hz = self.heard.lock().ok().and_then(|h| {
            (h.pcm.len() >= KEEP_SAMPLES / 2).then(|| {
                let pcm: Vec<i16> = h.pcm.iter().copied().collect();
                dominant_frequency(&pcm, SAMPLE_RATE)
            })
        });
        VoiceReport {
            packets_sent: self.sent.load(Ordering::Relaxed),
            packets_heard: self.heard_packets.load(Ordering::Relaxed),
            heard_hz,
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
