//! Real sound devices through cpal's real ALSA code, on the virtual devices of
//! `.ci/audio-setup.sh` (PulseAudio null sinks behind ALSA; no sound card needed):
//!   - `wacall_speaker`          playback into the null sink `wacall_speaker`
//!   - `wacall_speaker_monitor`  capture of what that sink played
//!
//! Without the daemon the tests fail under `CI` (with the command to run) and skip elsewhere.

use std::io::Write;
use std::time::Duration;

use wacall::audio::Frame;
use wacall::audio::device::{CaptureDevice, DeviceError, PlaybackDevice, list_devices};
use wacall::audio::tone::{ToneGenerator, dominant_frequency};

const SPEAKER: &str = "wacall_speaker";
const SPEAKER_MONITOR: &str = "wacall_speaker_monitor";

/// The device tests share one sound server; run them one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// True when the PulseAudio daemon of `.ci/audio-setup.sh` answers on its socket.
fn audio_available(test: &str) -> bool {
    let dir = std::env::var("WACALL_PULSE_DIR").unwrap_or_else(|_| "/tmp/wacall-pulse".into());
    let socket = format!("{dir}/native");
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return true;
    }
    let msg = format!(
        "no audio daemon on {socket}: run `bash .ci/audio-setup.sh` (virtual PulseAudio devices \
         behind ALSA) before the device tests"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {msg}");
    }
    // Straight to the process's stderr: cargo test captures eprintln! of passing tests, and
    // a skip must be seen.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n*** SKIPPED {test}: {msg} ***\n"
    );
    false
}

#[test]
fn lists_input_and_output_devices() {
    if !audio_available("lists_input_and_output_devices") {
        return;
    }
    let _guard = SERIAL.blocking_lock();
    // A bound on a hang (a sound server that never answers), not a timing figure.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(list_devices());
    });
    let list = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("list_devices hung for 15 s")
        .expect("list_devices");
    println!("{list}");
    assert!(!list.inputs.is_empty(), "no input device:\n{list}");
    assert!(!list.outputs.is_empty(), "no output device:\n{list}");
    assert!(
        list.inputs.iter().any(|d| d.is_default),
        "no default input:\n{list}"
    );
    assert!(
        list.outputs.iter().any(|d| d.is_default),
        "no default output:\n{list}"
    );
    let monitor = list
        .inputs
        .iter()
        .find(|d| d.name == SPEAKER_MONITOR)
        .unwrap_or_else(|| panic!("{SPEAKER_MONITOR} not listed as an input:\n{list}"));
    assert!(
        !monitor.configs.is_empty(),
        "{SPEAKER_MONITOR} has no configs: {:?}",
        monitor.error
    );
    assert!(list.outputs.iter().any(|d| d.name == SPEAKER), "{list}");
    let table = list.to_string();
    assert!(table.contains("Input devices") && table.contains("Output devices"));
}

/// A 1 kHz tone pushed into the speaker comes back from the speaker's monitor: both the
/// playback path (call audio reaches the device) and the capture path (what the device hears
/// becomes frames) work, through resampling at whatever rate/format the devices chose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tone_played_to_speaker_is_captured_from_its_monitor() {
    if !audio_available("tone_played_to_speaker_is_captured_from_its_monitor") {
        return;
    }
    let _guard = SERIAL.lock().await;

    let (capture, mut frames) = CaptureDevice::open(Some(SPEAKER_MONITOR)).expect("open capture");
    let playback = std::sync::Arc::new(PlaybackDevice::open(Some(SPEAKER)).expect("open playback"));
    println!("capture {capture:?}, playback {playback:?}");
    assert_eq!(capture.name(), SPEAKER_MONITOR);
    assert_eq!(playback.name(), SPEAKER);

    // Push the tone in real time (20 ms per frame), for at most 6 s.
    let player = playback.clone();
    let pusher = tokio::spawn(async move {
        let mut tone = ToneGenerator::new(1000.0, 0.5);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for _ in 0..300 {
            tick.tick().await;
            player.push(&tone.next_frame());
        }
    });

    // Wait for the tone to arrive, then keep 1.2 s of it.
    let mut tone: Vec<i16> = Vec::new();
    let mut frames_seen = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while tone.len() < 60 * 960 {
        let frame: Frame = match tokio::time::timeout_at(deadline, frames.recv()).await {
            Ok(Some(f)) => f,
            Ok(None) => panic!("capture channel closed; failed: {:?}", capture.failed()),
            Err(_) => panic!(
                "timed out after {frames_seen} frames with {} tone samples; capture failed: {:?}, \
                 playback failed: {:?}, underruns {}, level {:.1} dBFS",
                tone.len(),
                capture.failed(),
                playback.failed(),
                playback.underruns(),
                capture.level()
            ),
        };
        frames_seen += 1;
        // Skip the silence before the tone and the first frames of its onset.
        if frame.level_dbfs() > -20.0 {
            tone.extend_from_slice(frame.samples());
        } else {
            tone.clear();
        }
    }
    // Meters while the tone is still flowing.
    let (capture_level, playback_level) = (capture.level(), playback.level());
    pusher.abort();

    let f = dominant_frequency(&tone, 48_000);
    println!(
        "captured {frames_seen} frames; tone {:.2} s at {f:.2} Hz; capture level \
         {capture_level:.1} dBFS, playback level {playback_level:.1} dBFS, playback underruns \
         {} (startup), dropped {}/{}",
        tone.len() as f64 / 48_000.0,
        playback.underruns(),
        playback.dropped_frames(),
        capture.dropped_frames()
    );
    assert!(
        (f - 1000.0).abs() <= 5.0,
        "dominant frequency {f} Hz, want 1000 ± 5"
    );
    assert!(capture_level > -20.0, "capture level {capture_level}");
    assert!(playback_level > -20.0, "playback level {playback_level}");
    assert_eq!(capture.failed(), None);
    assert_eq!(playback.failed(), None);
    // Closing must not hang either (the 8 s deadline above bounds the rest).
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::task::spawn_blocking(move || {
            drop(capture);
            drop(playback);
        }),
    )
    .await
    .expect("closing the devices hung")
    .unwrap();
}

#[test]
fn unknown_device_names_are_errors_naming_them() {
    if !audio_available("unknown_device_names_are_errors_naming_them") {
        return;
    }
    let _guard = SERIAL.blocking_lock();
    let err = CaptureDevice::open(Some("no-such-mic")).expect_err("capture must fail");
    let msg = err.to_string();
    assert!(matches!(err, DeviceError::NotFound { .. }), "{err:?}");
    assert!(msg.contains("input device named \"no-such-mic\""), "{msg}");
    assert!(
        msg.contains(SPEAKER_MONITOR),
        "available devices missing: {msg}"
    );

    let err = PlaybackDevice::open(Some("no-such-speaker")).expect_err("playback must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("output device named \"no-such-speaker\""),
        "{msg}"
    );
    assert!(msg.contains(SPEAKER), "{msg}");
}
