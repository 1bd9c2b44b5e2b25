//! Pipeline latency: from a frame entering the capture side to its decoded audio leaving the
//! playback side of the other peer, on loopback (so the network adds almost nothing).
//!
//! Two real media sessions (a WhatsApp-shaped ICE-lite peer and the business side). The sender
//! produces a 20 ms frame every 20 ms, silent except for a tone burst twice a second; the time the
//! burst frame is produced is noted before encoding. The receiver runs the edge's playout path
//! (jitter buffer → Opus decode on its own 20 ms clock) and notes when the first loud frame is
//! played. The difference, minus one 20 ms frame, is what the pipeline adds.
//!
//! ```sh
//! cargo run --release --example latency -- --bursts 40
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
    /// Tone bursts to time.
    #[arg(long, default_value_t = 40)]
    bursts: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
    let frames = args.bursts * 25 + 50;

    // Capture side: the business speaks.
    let sender = {
        let (biz, sent_at) = (biz.clone(), sent_at.clone());
        tokio::spawn(async move {
            let mut enc = OpusEncoder::new(EncoderConfig::default()).expect("encoder");
            let mut tone = ToneGenerator::new(1000.0, 0.5);
            let mut tick = tokio::time::interval(Duration::from_millis(20));
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
    let mut jitter = JitterBuffer::new();
    let mut dec = OpusDecoder::new()?;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut played_at = Vec::new();
    let mut loud_before = false;
    let end = Instant::now() + Duration::from_millis(frames as u64 * 20 + 500);
    while Instant::now() < end {
        tick.tick().await;
        while let Ok(p) = rx.try_recv() {
            jitter.push(p.seq, p.timestamp, p.payload, p.arrival_ms);
        }
        let out = jitter.pop_frame(&mut dec);
        let loud = out.level_dbfs() > -30.0;
        if loud && !loud_before {
            played_at.push(Instant::now());
        }
        loud_before = loud;
    }
    sender.await?;
    let sent = sent_at.lock().unwrap().clone();
    let mut lat: Vec<f64> = sent
        .iter()
        .filter_map(|s| {
            played_at
                .iter()
                .find(|p| **p > *s)
                .map(|p| p.duration_since(*s).as_secs_f64() * 1000.0)
        })
        .filter(|ms| *ms < 500.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    if lat.is_empty() {
        anyhow::bail!("no burst was heard");
    }
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "# pipeline latency ({profile} build, loopback, {} of {} bursts timed)",
        lat.len(),
        sent.len()
    );
    println!("| | capture → playout | beyond one 20 ms frame |");
    println!("|---|---|---|");
    for (name, v) in [
        ("min", lat[0]),
        ("p50", pct(0.5)),
        ("mean", mean),
        ("p95", pct(0.95)),
        ("max", pct(1.0)),
    ] {
        println!("| {name} | {v:.1} ms | {:.1} ms |", v - 20.0);
    }
    println!("jitter buffer: {:?}", jitter.stats());
    wa.close().await;
    biz.close().await;
    Ok(())
}
