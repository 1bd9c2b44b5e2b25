//! Pipeline latency: from the first sample of a 20 ms frame to its decoded audio leaving the
//! playback side of the other peer, on loopback (so the network adds almost nothing).
//!
//! Two real media sessions (a WhatsApp-shaped ICE-lite peer and the business side). The sender
//! produces a 20 ms frame every 20 ms, silent except for a tone burst twice a second; the time the
//! burst frame is complete is noted before encoding, and its first sample was captured 20 ms
//! before that. The receiver runs the edge's playout path (jitter buffer → Opus decode on its own
//! 20 ms clock) and notes when the first loud frame is played. Each trial starts the playout
//! clock at a different phase against the sender's (the latency depends on it), and every
//! arrival feeds two jitter buffers: today's (starting one frame deep) and one starting two deep
//! as the buffer did before, so both are measured on the same packets.
//!
//! Columns: "first sample → playout" is what a listener waits (packetisation included);
//! "added beyond packetisation" is that minus the 20 ms a frame takes to fill, the pipeline's
//! own share (SRTP, network, jitter buffer, decode, playout phase); "old figure" is what this
//! example printed before: the span from the complete frame minus another 20 ms, which
//! subtracted the packetisation twice.
//!
//! ```sh
//! cargo run --release --example latency -- --bursts 12 --phases 5
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use wacall::audio::Frame;
use wacall::audio::codec::{EncoderConfig, OpusDecoder, OpusEncoder};
use wacall::audio::jitter::JitterBuffer;
use wacall::audio::tone::ToneGenerator;
use wacall::media::{MediaConfig, MediaSession};

#[derive(Parser)]
struct Args {
    /// Tone bursts to time per trial.
    #[arg(long, default_value_t = 12)]
    bursts: usize,
    /// Trials, each with the playout clock started at another phase (spread over 20 ms).
    #[arg(long, default_value_t = 5)]
    phases: usize,
}

/// The two buffers compared on the same arrivals: (label, start depth).
const BUFFERS: [(&str, u32); 2] = [
    ("one frame deep at start (now)", 1),
    ("two deep at start (before)", 2),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut spans: Vec<Vec<f64>> = vec![Vec::new(); BUFFERS.len()];
    let mut sent_total = 0;
    let mut last_stats = Vec::new();
    for trial in 0..args.phases.max(1) {
        let phase = Duration::from_micros(20_000 * trial as u64 / args.phases.max(1) as u64);
        let (sent, per_buffer, stats) = trial_run(args.bursts, phase).await?;
        sent_total += sent;
        for (all, got) in spans.iter_mut().zip(per_buffer) {
            all.extend(got);
        }
        last_stats = stats;
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "# pipeline latency ({profile} build, loopback, {} trials at playout phases 0-20 ms, {sent_total} bursts each buffer)",
        args.phases.max(1)
    );
    for ((label, _), lat) in BUFFERS.iter().zip(spans.iter_mut()) {
        if lat.is_empty() {
            anyhow::bail!("no burst was heard ({label})");
        }
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
        let mean = lat.iter().sum::<f64>() / lat.len() as f64;
        println!();
        println!(
            "## jitter buffer {label}: {} of {sent_total} bursts timed",
            lat.len()
        );
        println!(
            "| | first sample → playout | added beyond packetisation | old figure (span − 20 ms) |"
        );
        println!("|---|---|---|---|");
        for (name, span) in [
            ("min", lat[0]),
            ("p50", pct(0.5)),
            ("mean", mean),
            ("p95", pct(0.95)),
            ("max", pct(1.0)),
        ] {
            println!(
                "| {name} | {:.1} ms | {span:.1} ms | {:.1} ms |",
                span + 20.0,
                span - 20.0
            );
        }
    }
    for ((label, _), s) in BUFFERS.iter().zip(last_stats) {
        println!("last trial, {label}: {s:?}");
    }
    Ok(())
}

/// One trial: fresh sessions, the playout clock `phase` after the sender's. Returns the bursts
/// sent and, per buffer, each heard burst's span from the complete frame to its playout (ms).
async fn trial_run(
    bursts: usize,
    phase: Duration,
) -> anyhow::Result<(
    usize,
    Vec<Vec<f64>>,
    Vec<wacall::audio::jitter::JitterStats>,
)> {
    let wa = MediaSession::new(
        &MediaConfig {
            ice_lite: true,
            ..MediaConfig::loopback()
        },
        "lat-wa",
    )
    .await?;
    let biz = MediaSession::new(&MediaConfig::loopback(), "lat-biz").await?;
    let offer = wa.create_offer().await?;
    let answer = biz.answer(&offer).await?;
    wa.apply_answer(&answer).await?;
    wa.wait_connected(Duration::from_secs(10))
        .await
        .map_err(|s| anyhow::anyhow!("{s:?}"))?;
    biz.wait_connected(Duration::from_secs(10))
        .await
        .map_err(|s| anyhow::anyhow!("{s:?}"))?;

    let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let frames = bursts * 25 + 50;
    let t0 = tokio::time::Instant::now() + Duration::from_millis(50);

    // Capture side: the business speaks.
    let sender = {
        let (biz, sent_at) = (biz.clone(), sent_at.clone());
        tokio::spawn(async move {
            let mut enc = OpusEncoder::new(EncoderConfig::default()).expect("encoder");
            let mut tone = ToneGenerator::new(1000.0, 0.5);
            let mut tick = tokio::time::interval_at(t0, Duration::from_millis(20));
            for n in 0..frames {
                tick.tick().await;
                let burst = n % 25 == 10;
                let frame = if burst {
                    tone.next_frame()
                } else {
                    Frame::silence()
                };
                if burst {
                    sent_at.lock().unwrap().push(Instant::now());
                }
                let pkt = enc.encode(&frame).expect("encode");
                let _ = biz.send_opus(pkt.into()).await;
            }
        })
    };

    // Playback side: the user's phone plays out on its own clock.
    let mut rx = wa
        .take_audio()
        .ok_or_else(|| anyhow::anyhow!("audio taken"))?;
    let mut buffers: Vec<(JitterBuffer, OpusDecoder, bool, Vec<Instant>)> = BUFFERS
        .iter()
        .map(|&(_, depth)| {
            Ok::<_, anyhow::Error>((
                JitterBuffer::with_start_depth(depth),
                OpusDecoder::new()?,
                false,
                Vec::new(),
            ))
        })
        .collect::<Result<_, _>>()?;
    let mut tick = tokio::time::interval_at(t0 + phase, Duration::from_millis(20));
    let end = Instant::now() + Duration::from_millis(frames as u64 * 20 + 500);
    while Instant::now() < end {
        tick.tick().await;
        while let Ok(p) = rx.try_recv() {
            for (jitter, ..) in buffers.iter_mut() {
                jitter.push(p.seq, p.timestamp, p.payload.clone(), p.arrival_ms);
            }
        }
        let now = Instant::now();
        for (jitter, dec, loud_before, played_at) in buffers.iter_mut() {
            let loud = jitter.pop_frame(dec).level_dbfs() > -30.0;
            if loud && !*loud_before {
                played_at.push(now);
            }
            *loud_before = loud;
        }
    }
    sender.await?;
    let sent = sent_at.lock().unwrap().clone();
    let spans = buffers
        .iter()
        .map(|(_, _, _, played_at)| {
            sent.iter()
                .filter_map(|s| {
                    played_at
                        .iter()
                        .find(|p| **p > *s)
                        .map(|p| p.duration_since(*s).as_secs_f64() * 1000.0)
                })
                .filter(|ms| *ms < 500.0)
                .collect()
        })
        .collect();
    let stats = buffers.iter().map(|(j, ..)| j.stats()).collect();
    wa.close().await;
    biz.close().await;
    Ok((sent.len(), spans, stats))
}
