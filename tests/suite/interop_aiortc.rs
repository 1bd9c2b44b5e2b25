//! Interop with an independent WebRTC stack: aiortc (Python, from PyPI) on 127.0.0.1.
//!
//! Each test runs `tests/interop/aiortc_peer.py` in the venv that `.ci/interop-setup.sh`
//! creates, exchanges SDP with it as JSON lines over stdin/stdout, and sends audio both ways:
//! aiortc sends 440 Hz, we send 880 Hz, and each side checks by frequency what it heard.
//! Once with aiortc offering (we answer, DTLS client) and once with us offering.
//!
//! Without the venv the tests skip on a dev box, but fail under CI (`CI` set): CI must not
//! silently skip them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use wacall::audio::codec::{EncoderConfig, OpusDecoder, OpusEncoder};
use wacall::audio::tone::{ToneGenerator, dominant_frequency};
use wacall::media::{MediaConfig, MediaSession};

/// Where `.ci/interop-setup.sh` puts the venv; both honour `WACALL_VENV`.
const DEFAULT_VENV: &str = "/opt/wacall-venv";
/// What aiortc sends and what we send.
const THEIR_HZ: f32 = 440.0;
const OUR_HZ: f32 = 880.0;
/// Audio we send (paced at 20 ms) and how much each side analyses.
const SEND_SECONDS: usize = 4;
const LISTEN_SECONDS: usize = 3;
/// Per-step bound on the Python side; the Rust side's bounds are a little longer.
const PEER_TIMEOUT_S: u64 = 10;
const STEP: Duration = Duration::from_secs(PEER_TIMEOUT_S + 2);

/// The venv's interpreter, or `None` when the test should skip (never under CI).
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("WACALL_VENV").unwrap_or_else(|| DEFAULT_VENV.into());
    let py = Path::new(&venv).join("bin/python");
    if py.exists() {
        return Some(py);
    }
    let msg = format!(
        "{} not found: run `bash .ci/interop-setup.sh` to install aiortc into {}",
        py.display(),
        Path::new(&venv).display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("interop test cannot run under CI: {msg}");
    }
    // Straight to the process's stderr: cargo test captures eprintln! of passing tests, and
    // a skip must be seen.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n*** SKIPPED aiortc interop test: {msg} ***\n"
    );
    None
}

struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    fn spawn(python: &Path, mode: &str) -> Peer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/aiortc_peer.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(mode)
            .args(["--send-hz", &THEIR_HZ.to_string()])
            .args(["--seconds", &LISTEN_SECONDS.to_string()])
            .args(["--timeout", &PEER_TIMEOUT_S.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Its log and any failure reason go straight to the test's output.
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the aiortc peer");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Peer {
            child,
            stdin,
            lines,
        }
    }

    async fn read(&mut self, what: &str) -> Value {
        let line = tokio::time::timeout(STEP, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("aiortc peer sent no {what} within {STEP:?}"))
            .expect("reading the aiortc peer's stdout")
            .unwrap_or_else(|| panic!("aiortc peer exited before sending {what}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what} is not JSON ({e}): {line}"))
    }

    async fn write_sdp(&mut self, sdp: &str) {
        let mut line = serde_json::json!({ "sdp": sdp }).to_string();
        line.push('\n');
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Closes its stdin (the "we are done" signal) and waits for a clean exit.
    async fn finish(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(STEP, self.child.wait())
            .await
            .expect("aiortc peer did not exit after stdin closed")
            .unwrap();
        assert!(status.success(), "aiortc peer exited with {status}");
    }
}

/// Only loopback candidates in an SDP we send or receive.
fn assert_loopback_only(sdp: &str, whose: &str) {
    let cands: Vec<&str> = sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!cands.is_empty(), "{whose} SDP has no candidates:\n{sdp}");
    for c in cands {
        assert_eq!(
            c.split(' ').nth(4),
            Some("127.0.0.1"),
            "{whose} candidate off loopback: {c}"
        );
    }
}

/// Sends OUR_HZ for SEND_SECONDS, one Opus packet every 20 ms.
async fn talk(session: Arc<MediaSession>) {
    let mut enc = OpusEncoder::new(EncoderConfig::default()).unwrap();
    let mut tone = ToneGenerator::new(OUR_HZ, 0.25);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..SEND_SECONDS * 50 {
        tick.tick().await;
        let pkt = enc.encode(&tone.next_frame()).unwrap();
        session.send_opus(pkt.into()).await.unwrap();
    }
}

/// Decodes what arrives until LISTEN_SECONDS of audio (after a 0.2 s start-up) are in.
async fn listen(session: Arc<MediaSession>) -> Vec<i16> {
    let mut rx = session.take_audio().unwrap();
    let mut dec = OpusDecoder::new().unwrap();
    let skip = 48_000 / 5;
    let want = skip + LISTEN_SECONDS * 48_000;
    let mut pcm = Vec::with_capacity(want);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(LISTEN_SECONDS as u64 + 3);
    while let Ok(Some(p)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        pcm.extend_from_slice(dec.decode(&p.payload).samples());
        if pcm.len() >= want {
            break;
        }
    }
    pcm.split_off(skip.min(pcm.len()))
}

/// Both directions after the SDP exchange: connect, talk and listen, check both tones.
async fn exchange_audio(ours: Arc<MediaSession>, mut peer: Peer, started: Instant) {
    ours.wait_connected(STEP)
        .await
        .expect("our side did not connect to aiortc");
    eprintln!("connected after {:?}", started.elapsed());

    let (_, heard_by_us, theirs) = tokio::join!(talk(ours.clone()), listen(ours.clone()), async {
        peer.read("its result").await
    });
    let stats = ours.stats().await;
    peer.finish().await;
    ours.close().await;

    let our_hz = dominant_frequency(&heard_by_us, 48_000);
    let their_hz = theirs["heard_hz"].as_f64().expect("heard_hz") as f32;
    eprintln!(
        "we heard {our_hz:.2} Hz ({} samples); aiortc heard {their_hz:.2} Hz ({theirs}); \
         our stats {stats:?}; total {:?}",
        heard_by_us.len(),
        started.elapsed()
    );
    assert!(
        heard_by_us.len() >= LISTEN_SECONDS * 48_000 * 9 / 10,
        "we received only {} samples",
        heard_by_us.len()
    );
    assert!(
        (our_hz - THEIR_HZ).abs() <= 5.0,
        "we heard {our_hz} Hz, aiortc sent {THEIR_HZ}"
    );
    assert!(
        (their_hz - OUR_HZ).abs() <= 5.0,
        "aiortc heard {their_hz} Hz, we sent {OUR_HZ}"
    );
    assert!(
        theirs["frames"].as_u64().unwrap_or(0) >= (LISTEN_SECONDS * 50) as u64,
        "{theirs}"
    );
    assert!(
        stats.packets_sent >= (SEND_SECONDS * 50) as u64,
        "{stats:?}"
    );
    assert!(
        stats.received.packets >= (LISTEN_SECONDS * 50) as u64,
        "{stats:?}"
    );
    assert!(stats.received.loss_pct < 5.0, "our receive loss: {stats:?}");
    let (got, lost) = (
        theirs["packets_received"].as_f64(),
        theirs["packets_lost"].as_f64(),
    );
    if let (Some(got), Some(lost)) = (got, lost) {
        assert!(
            lost <= 0.05 * (got + lost),
            "aiortc's receive loss: {theirs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_offers_we_answer() {
    let Some(py) = python() else { return };
    let started = Instant::now();
    let mut peer = Peer::spawn(&py, "offer");
    let offer = peer.read("its offer").await;
    let offer = offer["sdp"].as_str().expect("offer sdp");
    assert!(offer.contains("a=setup:actpass"), "{offer}");
    assert_loopback_only(offer, "aiortc's");

    let ours = MediaSession::new(&MediaConfig::loopback(), "interop-answer")
        .await
        .unwrap();
    let answer = ours.answer(offer).await.unwrap();
    assert!(answer.contains("a=setup:active"), "{answer}");
    assert_loopback_only(&answer, "our");
    peer.write_sdp(&answer).await;

    exchange_audio(ours, peer, started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_offer_aiortc_answers() {
    let Some(py) = python() else { return };
    let started = Instant::now();
    let ours = MediaSession::new(&MediaConfig::loopback(), "interop-offer")
        .await
        .unwrap();
    let offer = ours.create_offer().await.unwrap();
    assert_loopback_only(&offer, "our");

    let mut peer = Peer::spawn(&py, "answer");
    peer.write_sdp(&offer).await;
    let answer = peer.read("its answer").await;
    let answer = answer["sdp"].as_str().expect("answer sdp");
    assert_loopback_only(answer, "aiortc's");
    let remote = ours.apply_answer(answer).await.unwrap();
    assert_eq!(
        remote.audio_pt(),
        111,
        "aiortc should answer with our Opus PT"
    );

    exchange_audio(ours, peer, started).await;
}
