//! The softphone's real widgets (egui, driven through AccessKit by egui_kittest, no display)
//! against a real bridge and sandbox on 127.0.0.1: signalling over the hub, WebRTC media with
//! simulated WhatsApp users, history over HTTP. Every step asserts on what the agent sees.
//!
//! Audio: when the virtual devices of `.ci/audio-setup.sh` are up (PulseAudio null sinks behind
//! ALSA), the phone uses `wacall_mic` / `wacall_speaker` and the test checks, through cpal, that
//! the caller's tone reaches the speaker and a tone fed into the microphone reaches the caller.
//! Without the daemon the test runs with no devices (silent) unless `CI` is set, where it fails.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

use wacall::audio::device::{CaptureDevice, PlaybackDevice};
use wacall::audio::tone::{ToneGenerator, dominant_frequency};
use wacall::call::CallTimeouts;
use wacall::edge::link::HubConnection;
use wacall::hub_protocol::{EdgeMessage, HubMessage};
use wacall::media::MediaConfig;
use wacall::phone::core::{self, PhoneConfig, PhoneState};
use wacall::phone::sandbox::{NO_PERMISSION_NUMBER, PhoneSandbox, caller};
use wacall::phone::ui::{self, PhoneUi};

const MIC: &str = "wacall_mic";
const MIC_FEED: &str = "wacall_mic_feed";
const SPEAKER: &str = "wacall_speaker";
const SPEAKER_MONITOR: &str = "wacall_speaker_monitor";
/// The sandbox's callers talk at this frequency.
const CALLER_HZ: f32 = 660.0;
/// What the test "says" into the microphone.
const AGENT_HZ: f32 = 1000.0;

/// True when the virtual sound devices are up.
fn audio_devices() -> bool {
    let dir = std::env::var("WACALL_PULSE_DIR").unwrap_or_else(|_| "/tmp/wacall-pulse".into());
    let socket = format!("{dir}/native");
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return true;
    }
    let msg = format!(
        "no audio daemon on {socket}: run `bash .ci/audio-setup.sh` for the virtual devices"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    // Straight to the process's stderr: cargo test captures eprintln! of passing tests, and
    // a skip must be seen.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n*** phone_ui: {msg}; its device test runs without sound devices (silent) ***\n"
    );
    false
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

type H = Harness<'static, PhoneUi>;

fn harness(phone: core::PhoneHandle) -> H {
    Harness::builder()
        .with_size([720.0, 900.0])
        .build_ui_state(ui::show, PhoneUi::new(phone))
}

fn visible(h: &H, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

/// Steps the UI in real time until `cond` holds.
fn wait_until(h: &mut H, what: &str, timeout: Duration, cond: impl Fn(&H) -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        h.step();
        if cond(h) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "not seen within {timeout:?}: {what}\nphone: {:?}",
                h.state().phone.view()
            );
        }
        std::thread::sleep(Duration::from_millis(40));
    }
}

/// The tests' runtime: the phone's network side and the in-process bridge and sandbox.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Signs in through the form: bridge address, agent token, the button.
fn sign_in(h: &mut H, hub_url: &str, token: &str) {
    type_into(h, "Bridge address", hub_url);
    type_into(h, "Agent token", token);
    h.get_by_label("Sign in").click();
}

fn wait_text(h: &mut H, text: &str, timeout: Duration) {
    wait_until(h, &format!("text {text:?}"), timeout, |h| visible(h, text));
}

/// Steps the UI while real time passes.
fn pump(h: &mut H, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        h.step();
        std::thread::sleep(Duration::from_millis(40));
    }
    h.step();
}

/// The text a node shows (AccessKit keeps a label's text in `value`).
fn text_of(n: &egui_kittest::kittest::AccessKitNode<'_>) -> Option<String> {
    n.value().or_else(|| n.label())
}

/// The call timer as shown ("mm:ss"), in seconds.
fn timer(h: &H) -> Option<u64> {
    h.query_all_by(|n| {
        text_of(n).is_some_and(|l| l.len() == 5 && l.as_bytes()[2] == b':' && !l.contains(' '))
    })
    .find_map(|n| {
        let l = text_of(&n.accesskit_node())?;
        let (m, s) = l.split_once(':')?;
        Some(m.parse::<u64>().ok()? * 60 + s.parse::<u64>().ok()?)
    })
}

/// A level meter's shown value in dB ("Speaker level: -23 dB").
fn meter(h: &H, which: &str) -> Option<f32> {
    let prefix = format!("{which} level: ");
    h.query_all_by(|n| text_of(n).is_some_and(|l| l.starts_with(&prefix)))
        .find_map(|n| {
            text_of(&n.accesskit_node())?
                .strip_prefix(&prefix)?
                .strip_suffix(" dB")?
                .parse()
                .ok()
        })
}

fn type_into(h: &mut H, field: &str, text: &str) {
    h.get_by_label(field).click();
    h.step();
    h.get_by_label(field).type_text(text);
    h.step();
}

/// Captures `secs` of a device and returns (level dBFS of the loudest frame, dominant Hz).
fn listen(device: &str, secs: f32) -> (f32, f32) {
    let (dev, mut rx) = CaptureDevice::open(Some(device)).expect("open capture");
    let mut samples = Vec::new();
    let mut loudest = -96.0f32;
    let end = Instant::now() + Duration::from_secs_f32(secs);
    while Instant::now() < end {
        match rx.try_recv() {
            Ok(f) => {
                loudest = loudest.max(f.level_dbfs());
                samples.extend_from_slice(f.samples());
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    drop(dev);
    let hz = if samples.len() > 4800 {
        dominant_frequency(&samples[samples.len() - 4800..], 48_000)
    } else {
        0.0
    };
    (loudest, hz)
}

#[test]
fn agent_takes_and_places_calls_through_the_real_ui() {
    init_logs();
    let audio = audio_devices();
    let rt = runtime();
    let sb = rt
        .block_on(PhoneSandbox::start(CallTimeouts {
            ring: Duration::from_secs(40),
            answer: Duration::from_secs(40),
            ..CallTimeouts::default()
        }))
        .unwrap();
    let cfg = PhoneConfig {
        name: "ui-test-agent".into(),
        media: MediaConfig::loopback(),
        use_devices: audio,
        input: audio.then(|| MIC.to_string()),
        output: audio.then(|| SPEAKER.to_string()),
        record_dir: Some(sb.dir.join("recordings")),
        ..PhoneConfig::default()
    };
    let phone = {
        let _g = rt.enter();
        core::start(cfg, Arc::new(|| {}))
    };
    let mut h = harness(phone.clone());
    let t = Duration::from_secs(15);

    // --- Sign in: the form, then "Connected" and "Available" are visible.
    h.step();
    assert!(visible(&h, "Signed out"));
    assert!(visible(&h, "Sign in to your call center"));
    sign_in(&mut h, &sb.hub_url, &sb.edge_token);
    wait_text(&mut h, "Connected", t);
    wait_text(&mut h, "Available: waiting for calls", t);
    assert!(visible(&h, "Recent calls"));
    rt.block_on(sb.bridge.wait_for_edges(1, t)).unwrap();

    // --- A sandbox user calls: the ringing panel shows who.
    let (name, number) = caller(0);
    let call_in = rt.block_on(sb.place_call(0, None)).unwrap();
    wait_text(&mut h, "Incoming call", t);
    assert!(visible(&h, name), "caller name shown");
    assert!(visible(&h, &format!("+{number}")), "caller number shown");
    assert!(h.query_by_label("Answer").is_some() && h.query_by_label("Decline").is_some());
    // Media is pre-accepted while it rings (the first words are not clipped).
    wait_until(&mut h, "media pre-accepted while ringing", t, |_| {
        sb.bridge
            .record(&call_in)
            .is_some_and(|r| r.pre_accepted_at.is_some())
    });
    if audio {
        // The ringtone plays on the speaker device.
        wait_until(&mut h, "ringtone on the speaker", t, |h| {
            h.state()
                .phone
                .view()
                .device_out_db
                .is_some_and(|db| db > -40.0)
        });
    }

    // --- Answer: in call, the timer runs.
    h.get_by_label("Answer").click();
    wait_text(&mut h, "In call (incoming)", t);
    assert!(visible(&h, name));
    wait_text(&mut h, "Recording", t);
    let t0 = timer(&h).expect("timer shown");
    pump(&mut h, Duration::from_millis(2300));
    let t1 = timer(&h).expect("timer shown");
    assert!(t1 >= t0 + 2, "timer advances: {t0} -> {t1}");

    // The caller talks: the speaker meter moves.
    wait_until(&mut h, "speaker meter above -40 dB", t, |h| {
        meter(h, "Speaker").is_some_and(|db| db > -40.0)
    });
    wait_until(&mut h, "quality indicator", t, |h| {
        visible(h, "Quality: Good") || visible(h, "Quality: Fair")
    });
    if audio {
        // What the caller says reaches the speaker device...
        // The phone reopens a device that stopped; wait until both are healthy.
        wait_until(&mut h, "healthy devices", t, |h| {
            h.state().phone.view().device_problem.is_none()
        });
        // (A monitor stream takes a second or so to deliver its first audio.)
        let (level, hz) = listen(SPEAKER_MONITOR, 3.0);
        assert!(level > -40.0, "speaker device level {level} dBFS");
        assert!(
            (hz - CALLER_HZ).abs() < 30.0,
            "speaker plays {hz} Hz, caller says {CALLER_HZ}"
        );
        // ...and what is said into the microphone reaches the caller.
        let mut feed = PlaybackDevice::open(Some(MIC_FEED)).expect("mic feed");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let feeder = std::thread::spawn(move || {
            let mut tone = ToneGenerator::new(AGENT_HZ, 0.3);
            let start = Instant::now();
            let mut n = 0u32;
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                if feed.failed().is_some() {
                    // The sound server hiccuped (loaded CI machine): open the feed again.
                    std::thread::sleep(Duration::from_millis(200));
                    if let Ok(f) = PlaybackDevice::open(Some(MIC_FEED)) {
                        feed = f;
                    }
                }
                feed.push(&tone.next_frame());
                n += 1;
                let due = start + Duration::from_millis(20 * u64::from(n));
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        });
        wait_until(&mut h, "microphone meter above -40 dB", t, |h| {
            meter(h, "Microphone").is_some_and(|db| db > -40.0)
        });
        wait_until(&mut h, "the caller hears the microphone's tone", t, |_| {
            sb.sandbox
                .world
                .report(&call_in)
                .and_then(|r| r.voice.heard_hz)
                .is_some_and(|hz| (hz - AGENT_HZ).abs() < 30.0)
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        feeder.join().unwrap();
    }

    // --- Mute, a DTMF key, hang up.
    h.get_by_label("Mute").click();
    wait_text(&mut h, "Muted: the customer can't hear you", t);
    assert!(h.query_by_label("Unmute").is_some());
    wait_until(&mut h, "microphone meter silent when muted", t, |h| {
        meter(h, "Microphone").is_some_and(|db| db <= -90.0)
    });
    h.get_by_label("5").click();
    wait_text(&mut h, "Sent: 5", t);
    // The customer's keypad: shown to the agent and kept in the call's record.
    rt.block_on(sb.sandbox.world.press_key(&call_in, '9'))
        .unwrap();
    wait_text(&mut h, "Customer pressed: 9", t);
    wait_until(&mut h, "the customer's key in the call's record", t, |_| {
        sb.bridge.record(&call_in).is_some_and(|r| r.dtmf == "9")
    });
    h.get_by_label("Unmute").click();
    wait_until(&mut h, "unmuted", t, |h| h.query_by_label("Mute").is_some());
    h.get_by_label("Hang up").click();
    wait_text(&mut h, "Call ended: you hung up.", t);
    wait_text(&mut h, "Available: waiting for calls", t);

    // --- Dial out: validation, then progress, then answered.
    type_into(&mut h, "Number", "12 34");
    h.get_by_label("Call").click();
    wait_text(&mut h, "Too short", t);
    let dialed = "5215512345699";
    h.get_by_label("Number").click();
    h.step();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.step();
    h.get_by_label("Number").type_text("+52 1 55 1234 5699");
    h.step();
    h.get_by_label("Call").click();
    wait_until(&mut h, "outbound progress", t, |h| {
        visible(h, "Outgoing call")
            && (visible(h, "Calling…") || visible(h, "Ringing…") || visible(h, "Preparing"))
    });
    assert!(visible(&h, &format!("+{dialed}")));
    wait_text(&mut h, "In call (outgoing)", t);
    wait_until(&mut h, "the user's voice on the speaker meter", t, |h| {
        meter(h, "Speaker").is_some_and(|db| db > -40.0)
    });
    // Hang up with the keyboard shortcut.
    h.key_press_modifiers(Modifiers::COMMAND, Key::H);
    wait_text(&mut h, "Call ended: you hung up.", t);
    wait_text(&mut h, "Available: waiting for calls", t);
    // The number is in the recent numbers.
    assert!(
        h.query_all_by_label(&format!("+{dialed}"))
            .any(|n| n.accesskit_node().role() == egui::accesskit::Role::Button),
        "the number is a recent-number button"
    );

    // --- A number without call permission: plain words.
    h.get_by_label("Number").click();
    h.step();
    h.get_by_label("Number").type_text(NO_PERMISSION_NUMBER);
    h.step();
    h.get_by_label("Call").click();
    wait_text(&mut h, "has not allowed calls from this business", t);
    wait_text(&mut h, "Available: waiting for calls", t);

    // --- Another caller; the agent declines with Esc.
    let (name2, _) = caller(1);
    rt.block_on(sb.place_call(1, None)).unwrap();
    wait_text(&mut h, name2, t);
    h.key_press(Key::Escape);
    wait_text(&mut h, "Call ended: you declined the call.", t);

    // --- Away: no calls ring.
    h.get_by_label("Away").click();
    wait_text(&mut h, "Away: calls will not ring here", t);
    h.get_by_label("Available").click();
    wait_text(&mut h, "Available: waiting for calls", t);

    // --- History: the answered inbound and outbound calls, with outcome and duration.
    h.get_by_label("Refresh").click();
    wait_until(&mut h, "history rows", t, |h| {
        visible(h, &format!("{name} (+{number})")) && visible(h, &format!("+{dialed}"))
    });
    wait_until(&mut h, "history outcomes", t, |h| {
        h.query_all_by_label_contains("Answered").count() >= 2
            && h.query_all_by_label("In").next().is_some()
            && h.query_all_by_label("Out").next().is_some()
    });

    // --- Sign out.
    h.get_by_label("Sign out").click();
    wait_text(&mut h, "Signed out", t);
    drop(h);
    rt.block_on(sb.shutdown());
}

#[test]
fn reconnects_on_its_own_when_the_bridge_comes_back() {
    init_logs();
    let rt = runtime();
    // A port nobody listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = PhoneConfig {
        media: MediaConfig::loopback(),
        use_devices: false,
        max_backoff: Duration::from_millis(500),
        ..PhoneConfig::default()
    };
    let phone = {
        let _g = rt.enter();
        core::start(cfg, Arc::new(|| {}))
    };
    let mut h = harness(phone.clone());
    h.step();
    type_into(&mut h, "Bridge address", &format!("127.0.0.1:{port}"));
    type_into(&mut h, "Agent token", "agent-token");
    h.key_press(Key::Enter);
    wait_text(&mut h, "Reconnecting… (attempt", Duration::from_secs(10));
    assert!(visible(&h, "The phone keeps trying on its own."));

    // The bridge appears on that port: the phone connects without help.
    let sb = rt.block_on(async {
        use wacall::bridge::{Bridge, BridgeConfig};
        use wacall::secret::Secret;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let biz = wacall::sandbox::demo::demo_business();
        let cfg = BridgeConfig::local(
            "http://127.0.0.1:9",
            &biz.waba_id,
            &biz.phone_number,
            Secret::new("bsp"),
            Secret::new("app"),
            vec![Secret::new("agent-token")],
            None,
        );
        Bridge::start_on(listener, cfg).await.unwrap()
    });
    wait_text(
        &mut h,
        "Available: waiting for calls",
        Duration::from_secs(10),
    );
    assert!(matches!(phone.view().state, PhoneState::Idle));
    drop(h);
    rt.block_on(sb.shutdown());
}

/// Hardening: the customer's audio stops mid-call, nobody hangs up: the phone ends the call
/// by the same rule as the bot, and tells the agent why.
#[test]
fn a_call_gone_silent_is_ended_by_the_phone() {
    init_logs();
    let rt = runtime();
    let sb = rt
        .block_on(PhoneSandbox::start(CallTimeouts::default()))
        .unwrap();
    let cfg = PhoneConfig {
        name: "silence-agent".into(),
        media: MediaConfig::loopback(),
        use_devices: false,
        media_deadlines: wacall::edge::media_watch::MediaDeadlines {
            silence: Duration::from_secs(2),
            ..Default::default()
        },
        ..PhoneConfig::default()
    };
    let phone = {
        let _g = rt.enter();
        core::start(cfg, Arc::new(|| {}))
    };
    let mut h = harness(phone.clone());
    let t = Duration::from_secs(15);
    h.step();
    sign_in(&mut h, &sb.hub_url, &sb.edge_token);
    wait_text(&mut h, "Available: waiting for calls", t);
    let call = rt.block_on(sb.place_call(0, None)).unwrap();
    wait_text(&mut h, "Incoming call", t);
    h.get_by_label("Answer").click();
    wait_until(&mut h, "the customer talking", t, |_| {
        sb.sandbox
            .world
            .report(&call)
            .is_some_and(|r| r.voice.packets_sent >= 150)
    });
    assert!(
        sb.bridge
            .record(&call)
            .is_none_or(|r| r.end_reason.is_none())
    );
    sb.sandbox.world.user_falls_silent(&call).unwrap();
    wait_text(&mut h, "the customer's audio stopped arriving", t);
    wait_until(&mut h, "terminated at the BSP", t, |_| {
        sb.sandbox.actions(&call).contains(&"terminate".to_string())
    });
    let record = sb.bridge.record(&call).unwrap();
    assert!(
        record
            .end_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("media_failed") && r.contains("no RTP")),
        "{record:?}"
    );
    drop(h);
    rt.block_on(sb.bridge.shutdown());
}

/// Hardening: an answered call whose media never connects is ended by the phone (as the bot
/// does), at the bridge and the BSP, instead of sitting silent.
#[test]
fn a_call_whose_media_never_connects_is_ended() {
    init_logs();
    let rt = runtime();
    let sb = rt
        .block_on(PhoneSandbox::start(CallTimeouts::default()))
        .unwrap();
    sb.sandbox.world.faults().unreachable_media = true;
    let cfg = PhoneConfig {
        name: "deadline-agent".into(),
        media: MediaConfig::loopback(),
        use_devices: false,
        media_deadlines: wacall::edge::media_watch::MediaDeadlines {
            connect: Duration::from_secs(1),
            ..Default::default()
        },
        ..PhoneConfig::default()
    };
    let phone = {
        let _g = rt.enter();
        core::start(cfg, Arc::new(|| {}))
    };
    let mut h = harness(phone.clone());
    let t = Duration::from_secs(15);
    h.step();
    sign_in(&mut h, &sb.hub_url, &sb.edge_token);
    wait_text(&mut h, "Available: waiting for calls", t);
    let call = rt.block_on(sb.place_call(0, None)).unwrap();
    wait_text(&mut h, "Incoming call", t);
    h.get_by_label("Answer").click();
    wait_text(&mut h, "the call's audio could not connect", t);
    wait_until(&mut h, "terminated at the BSP", t, |_| {
        sb.sandbox.actions(&call).contains(&"terminate".to_string())
    });
    let record = sb.bridge.record(&call).unwrap();
    assert!(
        record
            .end_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("media_failed")),
        "{record:?}"
    );
    drop(h);
    rt.block_on(sb.bridge.shutdown());
}

/// QA centre: a softphone call's recording ends up on the bridge (its history row points at
/// the bridge's copy); a phone stopped before uploading (no marker) sends it when started again.
#[test]
fn the_phones_recordings_reach_the_bridge_even_after_a_restart() {
    init_logs();
    let rt = runtime();
    let sb = rt
        .block_on(PhoneSandbox::start(CallTimeouts::default()))
        .unwrap();
    let rec = sb.dir.join("agent-recordings");
    let store = sb.dir.join("stored-recordings");
    let start = |name: &str| {
        let cfg = PhoneConfig {
            name: name.into(),
            media: MediaConfig::loopback(),
            use_devices: false,
            record_dir: Some(rec.clone()),
            ..PhoneConfig::default()
        };
        let _g = rt.enter();
        core::start(cfg, Arc::new(|| {}))
    };
    let t = Duration::from_secs(20);
    let mut h = harness(start("upload-agent"));
    h.step();
    sign_in(&mut h, &sb.hub_url, &sb.edge_token);
    wait_text(&mut h, "Available: waiting for calls", t);
    let call = rt
        .block_on(sb.place_call(0, Some(Duration::from_secs(3))))
        .unwrap();
    wait_text(&mut h, "Incoming call", t);
    h.get_by_label("Answer").click();
    // Kept on the bridge in its compact form (Ogg Opus); the edge keeps its WAV.
    let stored_row = |call: &str| {
        sb.bridge
            .history_row(call)
            .and_then(|r| r.recording)
            .filter(|p| p.starts_with(store.to_str().unwrap()) && p.ends_with(".opus"))
    };
    wait_until(&mut h, "the recording stored on the bridge", t, |_| {
        stored_row(&call).is_some()
    });
    let stored = std::path::PathBuf::from(stored_row(&call).unwrap());
    let local = rec.join(stored.with_extension("wav").file_name().unwrap());
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&stored) * 10 < size(&local), "not compact");
    drop(h);

    // As if the phone had been killed before its upload: no marker, nothing on the bridge.
    std::fs::remove_file(local.with_extension("uploaded")).unwrap();
    std::fs::remove_file(&stored).unwrap();
    std::fs::remove_file(stored.with_extension("json")).unwrap();
    let mut h = harness(start("upload-agent"));
    h.step();
    sign_in(&mut h, &sb.hub_url, &sb.edge_token);
    wait_until(
        &mut h,
        "the earlier recording uploaded after the restart",
        t,
        |_| stored.exists() && local.with_extension("uploaded").exists(),
    );
    drop(h);
    rt.block_on(sb.bridge.shutdown());
}

/// The next message the phone sends its hub that `pick` takes, skipping the others
/// (availability, stats).
fn sent_by_the_phone<T>(
    rt: &tokio::runtime::Runtime,
    rx: &mut tokio::sync::mpsc::Receiver<EdgeMessage>,
    what: &str,
    pick: impl Fn(EdgeMessage) -> Option<T>,
) -> T {
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => {
                    if let Some(t) = pick(m) {
                        return t;
                    }
                }
                Ok(None) => panic!("the phone dropped its hub link before sending {what}"),
                Err(_) => panic!("the phone did not send {what}"),
            }
        }
    })
}

/// Meta's call permissions as the agent meets them, through the real widgets, with the test
/// playing the bridge over the phone's hub link (no sandbox, no bridge): a refused dial ends,
/// says why in the bridge's words and offers "Ask for permission"; the request goes to the
/// bridge; its answer is shown; once the customer allows calls, "Call now" dials them.
#[test]
fn a_dial_without_permission_offers_a_request_then_a_call() {
    init_logs();
    let rt = runtime();
    let (edge_tx, mut from_phone) = tokio::sync::mpsc::channel(64);
    let (to_phone, hub_rx) = tokio::sync::mpsc::channel(64);
    let cfg = PhoneConfig {
        name: "permission-agent".into(),
        media: MediaConfig::loopback(),
        use_devices: false,
        ..PhoneConfig::default()
    };
    let phone = {
        let _g = rt.enter();
        core::start_linked(
            cfg,
            Arc::new(|| {}),
            HubConnection {
                edge_id: "edge-1".into(),
                tx: edge_tx,
                rx: hub_rx,
            },
        )
    };
    let hub = |m: HubMessage| rt.block_on(to_phone.send(m)).unwrap();
    let mut h = harness(phone.clone());
    let t = Duration::from_secs(15);
    let number = "5215512340000";
    wait_text(&mut h, "Available: waiting for calls", t);

    // --- The dial: the phone makes its media offer and asks the bridge, which refuses.
    type_into(&mut h, "Number", &format!("+{number}"));
    h.get_by_label("Call").click();
    wait_text(&mut h, "Outgoing call", t);
    let dial = sent_by_the_phone(&rt, &mut from_phone, "a dial", |m| match m {
        EdgeMessage::Dial {
            request_id,
            to,
            sdp,
            ..
        } => Some((request_id, to, sdp)),
        _ => None,
    });
    assert_eq!(dial.1, number);
    assert!(dial.2.contains("m=audio"), "a media offer: {}", dial.2);
    let refusal = format!(
        "{number} has not allowed calls from this business yet. Send them a call-permission \
         request (in WhatsApp they tap Allow), then call again."
    );
    hub(HubMessage::NoPermission {
        request_id: dial.0.clone(),
        to: number.into(),
        message: refusal.clone(),
        can_request: true,
        resets_at: None,
    });
    // Ended like a failed dial: back in the dialer, the bridge's words, the offer.
    wait_text(&mut h, &refusal, t);
    assert!(visible(&h, "Available: waiting for calls"));
    assert!(!visible(&h, "Outgoing call"));
    assert!(
        !visible(&h, "Call ended"),
        "a refused dial is not an ended call"
    );
    assert!(matches!(phone.view().state, PhoneState::Idle));

    // --- Ask for permission: the request goes to the bridge for that number.
    h.get_by_label("Ask for permission").click();
    wait_text(&mut h, &format!("Asking {number} for permission…"), t);
    assert!(
        h.query_by_label("Ask for permission").is_none(),
        "asked once"
    );
    let asked = sent_by_the_phone(&rt, &mut from_phone, "a permission request", |m| match m {
        EdgeMessage::RequestPermission {
            request_id,
            to,
            text,
        } => Some((request_id, to, text)),
        _ => None,
    });
    assert_eq!((asked.1.as_str(), asked.2.as_deref()), (number, None));
    assert_ne!(asked.0, dial.0, "a fresh request id");
    // An answer to some other request changes nothing.
    hub(HubMessage::PermissionRequest {
        request_id: "someone-else".into(),
        to: number.into(),
        sent: false,
        message: "not ours".into(),
        resets_at: None,
    });
    let sent = "permission request sent: waiting for the user to answer in WhatsApp";
    hub(HubMessage::PermissionRequest {
        request_id: asked.0.clone(),
        to: number.into(),
        sent: true,
        message: sent.into(),
        resets_at: None,
    });
    wait_text(&mut h, sent, t);
    assert!(!visible(&h, "not ours"));
    assert!(h.query_by_label("Call now").is_none(), "not allowed yet");

    // --- The customer allows calls: "Call now" dials them.
    hub(HubMessage::Permission {
        to: number.into(),
        granted: true,
        status: "temporary until 2026-01-08 10:00 UTC".into(),
    });
    wait_text(
        &mut h,
        &format!("{number} allowed calls (temporary until 2026-01-08 10:00 UTC)"),
        t,
    );
    h.get_by_label("Call now").click();
    wait_text(&mut h, "Outgoing call", t);
    assert!(visible(&h, &format!("+{number}")));
    assert!(phone.view().permission.is_none(), "a new dial starts clean");
    let again = sent_by_the_phone(&rt, &mut from_phone, "the second dial", |m| match m {
        EdgeMessage::Dial { request_id, to, .. } => Some((request_id, to)),
        _ => None,
    });
    assert_eq!(again.1, number);
    assert_ne!(again.0, dial.0);
    // The number is remembered like a typed one.
    assert_eq!(h.state().recent.first().map(String::as_str), Some(number));

    // --- Cancelled before the bridge placed it; a refusal that comes late is ignored.
    h.get_by_label("Cancel call").click();
    wait_text(&mut h, "Call ended: you cancelled the call.", t);
    hub(HubMessage::NoPermission {
        request_id: again.0,
        to: number.into(),
        message: refusal.clone(),
        can_request: true,
        resets_at: None,
    });
    pump(&mut h, Duration::from_millis(300));
    assert!(h.query_by_label("Ask for permission").is_none());

    // --- Declined, on another try: words, no button.
    type_into(&mut h, "Number", number);
    h.get_by_label("Call").click();
    wait_text(&mut h, "Outgoing call", t);
    let third = sent_by_the_phone(&rt, &mut from_phone, "the third dial", |m| match m {
        EdgeMessage::Dial { request_id, .. } => Some(request_id),
        _ => None,
    });
    hub(HubMessage::NoPermission {
        request_id: third,
        to: number.into(),
        message: refusal.clone(),
        can_request: true,
        resets_at: None,
    });
    wait_until(&mut h, "the offer again", t, |h| {
        h.query_by_label("Ask for permission").is_some()
    });
    hub(HubMessage::Permission {
        to: number.into(),
        granted: false,
        status: "none".into(),
    });
    wait_text(&mut h, &format!("{number} declined calls"), t);
    assert!(h.query_by_label("Ask for permission").is_none());
    assert!(h.query_by_label("Call now").is_none());
    drop(h);
    drop(to_phone);
}
