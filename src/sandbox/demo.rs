//! `wacall sandbox`: the whole product on one machine. Starts the bridge with an in-process bot,
//! the sandbox BSP and simulated users; places one user call in and one business call out; prints
//! a live status line per call and a final table; succeeds only if audio flowed both ways in
//! every call.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::{Business, SimState, UserCall, UserPlan};
use crate::audio::codec::EncoderConfig;
use crate::bot::behaviours::PromptClip;
use crate::bot::runner::{self, BotCommand, BotConfig};
use crate::call_record::CallRecord;
use crate::edge::media_watch::MediaDeadlines;
use crate::media::MediaConfig;
use crate::secret::Secret;

/// Packets a side must have received for "audio flowed" (1 s of 20 ms frames).
const MIN_PACKETS: u64 = 50;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub calls_in: usize,
    pub calls_out: usize,
    /// How long each simulated user talks before hanging up.
    pub talk: Duration,
    pub record_dir: PathBuf,
    pub history_db: PathBuf,
    pub prompt: Option<PathBuf>,
    /// Print a status line while calls run.
    pub live: bool,
    /// The local BSP's API shape (and the bridge's provider).
    pub provider: crate::config::Provider,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            calls_in: 1,
            calls_out: 1,
            talk: Duration::from_secs(6),
            record_dir: PathBuf::from("recordings"),
            history_db: PathBuf::from("wacall-sandbox.sqlite"),
            prompt: Some(PathBuf::from("audio/greeting.wav")),
            live: true,
            provider: crate::config::Provider::Bsp,
        }
    }
}

/// One row of the final table.
#[derive(Debug, Clone)]
pub struct DemoRow {
    pub record: CallRecord,
    pub user_heard_packets: u64,
    pub user_heard_hz: Option<f32>,
    pub setup_ms: Option<u64>,
    pub ok: bool,
}

pub struct DemoOutcome {
    pub rows: Vec<DemoRow>,
}

impl DemoOutcome {
    pub fn success(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.ok)
    }
}

pub fn demo_business() -> Business {
    Business {
        waba_id: "100000000000001".into(),
        phone_number: "5215500000001".into(),
        phone_number_id: "200000000000001".into(),
    }
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<DemoOutcome> {
    let app_secret = format!("sandbox-secret-{:x}", rand::random::<u64>());
    let edge_token = format!("edge-{:x}", rand::random::<u64>());
    let business = demo_business();
    let (sandbox, bridge) = super::start_with_bridge_as(
        opts.provider,
        &app_secret,
        vec![Secret::new(&edge_token)],
        Some(opts.history_db.clone()),
        crate::call::CallTimeouts::default(),
    )
    .await?;

    let prompt = match &opts.prompt {
        Some(p) if p.exists() => {
            let frames = crate::audio::source::read_wav_frames(p)?;
            Some(PromptClip::encode(frames, EncoderConfig::default())?)
        }
        _ => None,
    };
    let bot_cfg = BotConfig {
        name: "sandbox-bot".into(),
        accept_delay: Duration::from_millis(300),
        prompt,
        tone_hz: None,
        echo: true,
        hangup_after_prompt: false,
        loop_prompt: false,
        max_duration: Some(opts.talk + Duration::from_secs(20)),
        record_dir: Some(opts.record_dir.clone()),
        media: MediaConfig::loopback(),
        encoder: EncoderConfig::default(),
        ready_sessions: 2,
        media_deadlines: MediaDeadlines::default(),
        voice_ai: None,
        uploads: None,
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (stop_tx, stop_rx) = watch::channel(false);
    let hub_url = bridge.hub_url();
    let bot =
        tokio::spawn(
            async move { runner::run(bot_cfg, &hub_url, &edge_token, cmd_rx, stop_rx).await },
        );
    bridge.wait_for_edges(1, Duration::from_secs(5)).await?;

    // Each call's tone, as the user plays it: the bot's recording must have it on the
    // customer's channel.
    let mut tones: std::collections::HashMap<String, f32> = Default::default();
    let mut call_ids = Vec::new();
    for i in 0..opts.calls_in {
        let id = sandbox
            .world
            .place_user_call(UserCall {
                user: format!("52155{:08}", 10_000_000 + i),
                name: ["Ana", "Bruno", "Carla", "Diego"][i % 4].to_string(),
                tone_hz: 660.0,
                hangup_after: Some(opts.talk),
            })
            .await
            .map_err(|e| anyhow::anyhow!("simulated user could not call: {e}"))?;
        tones.insert(id.clone(), 660.0);
        call_ids.push(id);
    }
    sandbox.world.set_default_plan(UserPlan {
        answer_after: Duration::from_millis(800),
        hangup_after: Some(opts.talk),
        tone_hz: 520.0,
        ..UserPlan::default()
    });
    for i in 0..opts.calls_out {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        cmd_tx
            .send(BotCommand::Dial {
                to: format!("52155{:08}", 20_000_000 + i),
                options: Default::default(),
                done: Some(done_tx),
                progress: None,
            })
            .await?;
        match tokio::time::timeout(Duration::from_secs(10), done_rx).await {
            Ok(Ok(Ok(id))) => call_ids.push(id),
            Ok(Ok(Err(e))) => anyhow::bail!("the bot could not dial: {e}"),
            _ => anyhow::bail!("the bot did not dial within 10 s"),
        }
    }

    // Live status until every call has ended at the user's side and in the history.
    let started = Instant::now();
    let deadline = opts.talk + Duration::from_secs(30);
    loop {
        let reports: Vec<_> = call_ids
            .iter()
            .filter_map(|id| sandbox.world.report(id))
            .collect();
        let all_ended = reports.len() == call_ids.len()
            && reports.iter().all(|r| r.state == SimState::Ended)
            && call_ids.iter().all(|id| {
                bridge
                    .record(id)
                    .is_some_and(|r| r.recording.is_some() || r.quality.is_some())
            });
        if opts.live {
            let line: Vec<String> = reports
                .iter()
                .map(|r| {
                    format!(
                        "{} {:?} sent {} heard {}{}",
                        short(&r.call_id),
                        r.state,
                        r.voice.packets_sent,
                        r.voice.packets_heard,
                        r.voice
                            .heard_hz
                            .map(|h| format!(" ({h:.0} Hz)"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            eprint!(
                "\r[{:>4.1}s] {}   ",
                started.elapsed().as_secs_f32(),
                line.join(" | ")
            );
        }
        if all_ended || started.elapsed() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if opts.live {
        eprintln!();
    }

    let mut rows = Vec::new();
    for id in &call_ids {
        let report = sandbox.world.report(id);
        let record = bridge.record(id).unwrap_or_else(|| {
            CallRecord::new(
                id,
                crate::call_record::Direction::Inbound,
                "?",
                &business.phone_number,
            )
        });
        let heard = report.as_ref().map_or(0, |r| r.voice.packets_heard);
        let bot_heard = record.quality.map_or(0, |q| q.packets_received);
        // Packets alone would pass fifty packets of silence: the user must have heard sound
        // (its `heard_hz` exists only above a level floor), and the bot the user's tone.
        let user_heard_hz = report.and_then(|r| r.voice.heard_hz);
        let want = tones.get(id).copied().unwrap_or(520.0);
        let bot_heard_tone = record
            .recording
            .as_deref()
            .and_then(customer_channel)
            .is_some_and(|(hz, db)| (hz - want).abs() <= 10.0 && db >= -40.0);
        rows.push(DemoRow {
            setup_ms: bridge.setup_ms(id),
            user_heard_packets: heard,
            user_heard_hz,
            ok: heard >= MIN_PACKETS
                && bot_heard >= MIN_PACKETS
                && user_heard_hz.is_some()
                && bot_heard_tone,
            record,
        });
    }
    let _ = stop_tx.send(true);
    let _ = bot.await;
    bridge.shutdown().await;
    sandbox.shutdown().await;
    Ok(DemoOutcome { rows })
}

/// The dominant frequency and level of the middle half of a recording's customer (left)
/// channel.
fn customer_channel(path: &str) -> Option<(f32, f32)> {
    let mut reader = hound::WavReader::open(path).ok()?;
    let channels = usize::from(reader.spec().channels.max(1));
    let left: Vec<i16> = reader
        .samples::<i16>()
        .filter_map(Result::ok)
        .step_by(channels)
        .collect();
    let n = left.len();
    if n < 48_000 {
        return None;
    }
    let mid = &left[n / 4..n * 3 / 4];
    Some((
        crate::audio::tone::dominant_frequency(mid, 48_000),
        crate::sandbox::voice::rms_dbfs(mid),
    ))
}

fn short(call_id: &str) -> &str {
    &call_id[call_id.len().saturating_sub(8)..]
}

/// The final table.
pub fn format_table(outcome: &DemoOutcome) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<28} {:<9} {:>8} {:>6} {:>9} {:>9} {:>6}  {:<4} {}\n",
        "call id",
        "direction",
        "setup ms",
        "dur s",
        "bot rx",
        "user rx",
        "loss%",
        "ok",
        "recording"
    ));
    for r in &outcome.rows {
        let q = r.record.quality.unwrap_or_default();
        out.push_str(&format!(
            "{:<28} {:<9} {:>8} {:>6} {:>9} {:>9} {:>6.2}  {:<4} {}\n",
            r.record.call_id,
            r.record.direction.as_str(),
            r.setup_ms
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into()),
            r.record
                .duration_s
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            q.packets_received,
            r.user_heard_packets,
            q.loss_pct,
            if r.ok { "yes" } else { "NO" },
            r.record.recording.as_deref().unwrap_or("-"),
        ));
    }
    out
}
