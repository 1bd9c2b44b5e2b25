//! The `wacall` binary as an operator meets it: help, offline checks with field-named errors,
//! SDP tools, and the README's run command (`wacall sandbox`) end to end.

use crate::common;

use std::process::Command;

fn wacall() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wacall"))
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("wacall runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wacall-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn help_teaches_the_subcommands() {
    let (ok, out, _) = run(wacall().arg("--help"));
    assert!(ok);
    for cmd in [
        "sandbox", "serve", "bot", "dial", "settings", "config", "call", "history", "media",
        "devices", "phone",
    ] {
        assert!(out.contains(cmd), "--help does not mention {cmd}:\n{out}");
    }
}

#[test]
fn settings_check_accepts_the_example_and_names_bad_fields() {
    let (ok, out, err) = run(wacall().args(["settings", "check", "examples/call-settings.json"]));
    assert!(ok, "{out}{err}");
    let bad = temp(
        "bad-settings.json",
        r#"{"status":"ENABLED","call_hours":{"status":"ENABLED","timezone_id":"Mars/Olympus",
            "weekly_operating_hours":[{"day_of_week":"MONDAY","open_time":"0900","close_time":"2460"}]}}"#,
    );
    let (ok, out, err) = run(wacall().args(["settings", "check"]).arg(&bad));
    assert!(!ok);
    let all = format!("{out}{err}");
    assert!(
        all.contains("call_hours.weekly_operating_hours[0].close_time"),
        "{all}"
    );
    assert!(all.contains("2460"), "{all}");
    assert!(all.contains("call_hours.timezone_id"), "{all}");
}

#[test]
fn config_check_explains_what_is_missing() {
    let cfg = temp("empty.toml", "[bsp]\nbase_url = \"\"\n");
    let (ok, out, err) = run(wacall()
        .args(["config", "check", "-c"])
        .arg(&cfg)
        .env_remove("WACALL_BSP_TOKEN"));
    assert!(!ok);
    let all = format!("{out}{err}");
    assert!(all.contains("base_url"), "{all}");
    assert!(all.contains("token"), "{all}");
}

#[test]
fn media_offer_and_answer_print_whatsapp_shaped_sdp() {
    let (ok, offer, err) = run(wacall().args([
        "media",
        "offer",
        "--bind",
        "127.0.0.1",
        "--ports",
        "41000-41100",
    ]));
    assert!(ok, "{err}");
    assert!(offer.starts_with("v=0\r\n"), "{offer}");
    assert!(offer.contains("a=setup:actpass"));
    assert!(offer.contains("a=rtpmap:111 opus/48000/2"));
    let port_ok = offer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .all(|l| {
            let port: u16 = l
                .split(' ')
                .nth(5)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            (41000..=41100).contains(&port)
        });
    assert!(port_ok, "candidates outside the port range:\n{offer}");
    let file = temp("offer.sdp", &offer);
    let (ok, answer, err) = run(wacall()
        .args(["media", "answer", "--bind", "127.0.0.1"])
        .arg(&file));
    assert!(ok, "{err}");
    assert!(answer.contains("a=setup:active"), "{answer}");
    assert!(answer.contains("a=fingerprint:sha-256 "));
    let garbage = temp("garbage.sdp", "v=0\r\nthis is not an offer\r\n");
    let (ok, _, err) = run(wacall()
        .args(["media", "answer", "--bind", "127.0.0.1"])
        .arg(&garbage));
    assert!(!ok);
    assert!(
        err.contains("wacall:"),
        "a friendly error, not a panic: {err}"
    );
}

/// The README's run command, as a user runs it (quiet, short calls).
#[test]
fn sandbox_demo_passes_and_reports_every_call() {
    let dir = std::env::temp_dir().join(format!("wacall-cli-demo-{}", std::process::id()));
    let (ok, out, err) = run(wacall()
        .args(["sandbox", "--quiet", "--talk-secs", "3", "--record-dir"])
        .arg(dir.join("rec"))
        .arg("--history-db")
        .arg(dir.join("h.sqlite3")));
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("OK: audio flowed both ways in every call."),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("wacid.")).count(),
        2,
        "{out}"
    );
    let (ok, hist, err) = run(wacall()
        .args(["history", "--db"])
        .arg(dir.join("h.sqlite3")));
    assert!(ok, "{err}");
    assert!(
        hist.contains("inbound") && hist.contains("outbound"),
        "{hist}"
    );
    // A report for a ticket, from a recording (and the history for its quality timeline).
    let wav = std::fs::read_dir(dir.join("rec"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "wav"))
        .expect("a recording");
    let html = dir.join("report.html");
    let (ok, out, err) = run(wacall()
        .arg("report")
        .arg(&wav)
        .arg("--db")
        .arg(dir.join("h.sqlite3"))
        .arg("--out")
        .arg(&html));
    assert!(ok, "{out}\n{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("data:image/png;base64,"), "no waveform image");
    assert!(
        page.contains("offered") && page.contains("end: "),
        "no timeline"
    );
    let (ok, _, err) = run(wacall()
        .args(["report", "wacid.NOPE", "--db"])
        .arg(dir.join("h.sqlite3")));
    assert!(!ok && err.contains("no call wacid.NOPE"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kill -9` in the middle of calls: every recording stays a playable WAV holding the call so far
/// (its header is rewritten as it grows) with a sidecar naming the call.
#[test]
fn recordings_survive_a_killed_process() {
    let dir = std::env::temp_dir().join(format!("wacall-cli-crash-{}", std::process::id()));
    let rec = dir.join("rec");
    let mut child = wacall()
        .args(["sandbox", "--quiet", "--talk-secs", "30", "--record-dir"])
        .arg(&rec)
        .arg("--history-db")
        .arg(dir.join("h.sqlite3"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Both calls answered and talking for a few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let wavs = std::fs::read_dir(&rec)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
                    .count()
            })
            .unwrap_or(0);
        if wavs >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no recordings appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(5));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut checked = 0;
    for e in std::fs::read_dir(&rec).unwrap().filter_map(Result::ok) {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "wav") {
            continue;
        }
        let reader =
            hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.sample_rate), (2, 48_000));
        let samples = reader.into_samples::<i16>().filter_map(Result::ok).count();
        assert!(
            samples >= 2 * 48_000 * 2,
            "{}: only {samples} samples survived",
            path.display()
        );
        let sidecar: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path.with_extension("json")).unwrap())
                .unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let id = sidecar["call_id"].as_str().unwrap();
        assert!(name.contains(id), "sidecar {id} does not belong to {name}");
        assert!(sidecar["ended_at"].is_null(), "the call never ended");
        checked += 1;
    }
    assert_eq!(checked, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `wacall serve --bot --tone 880` (recording off) against a fresh sandbox, once its
/// `/health` says it can answer calls.
struct ServeBot {
    sandbox: wacall::sandbox::Sandbox,
    child: tokio::process::Child,
    dir: std::path::PathBuf,
    db: std::path::PathBuf,
}

async fn serve_bot(name: &str) -> ServeBot {
    use std::time::{Duration, Instant};
    let dir = std::env::temp_dir().join(format!("wacall-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (sandbox, bridge_addr) = wacall::sandbox::Sandbox::start_for_new_bridge("serve-secret")
        .await
        .unwrap();
    let cfg = dir.join("wacall.toml");
    let db = dir.join("h.sqlite3");
    let toml = sandbox.wacall_toml(bridge_addr, &db);
    // Recording on, as deployed: the tone test reads the customer's side from it.
    let rec = dir.join("recordings");
    std::fs::write(
        &cfg,
        // The WAV is kept beside the compact form, so the test can read the tone from it.
        toml + &format!(
            "[recording]\nenabled = true\nkeep_wav = true\ndir = \"{}\"\n",
            rec.display()
        ),
    )
    .unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wacall"))
        .args(["serve", "-c"])
        .arg(&cfg)
        .args(["--bot", "--media-bind", "127.0.0.1", "--tone", "880"])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = match http
            .get(format!("http://{bridge_addr}/health"))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok(),
            _ => None,
        };
        if health.is_some_and(|v| v["edges"].as_u64() >= Some(1)) {
            break;
        }
        assert!(Instant::now() < deadline, "serve --bot never had its bot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ServeBot {
        sandbox,
        child,
        dir,
        db,
    }
}

/// `wacall serve --bot` as deployed: the bridge on its own thread, the bot linked to it in memory
/// (no edge token configured). A simulated user calls, hears the bot's 880 Hz, and the bridge
/// ends the call at the BSP when the user hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_bot_answers_a_call_and_the_tone_crosses() {
    use std::time::{Duration, Instant};
    use wacall::sandbox::{SimState, UserCall};

    let ServeBot {
        sandbox,
        mut child,
        dir,
        db,
    } = serve_bot("serve").await;
    let id = sandbox
        .world
        .place_user_call(UserCall {
            user: "5215512345678".into(),
            name: "Ana".into(),
            tone_hz: 440.0,
            hangup_after: Some(Duration::from_secs(3)),
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let r = sandbox.world.report(&id).expect("the call is known");
        if r.state == SimState::Ended {
            break r;
        }
        assert!(Instant::now() < deadline, "the call never ended: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let heard = report
        .voice
        .heard_hz
        .expect("the user heard a second of audio");
    assert!((heard - 880.0).abs() <= 5.0, "the user heard {heard} Hz");
    assert_eq!(sandbox.actions(&id), ["pre_accept", "accept"]);
    // The other direction: the bot's recording has the user's 440 Hz.
    let (customer, bot) =
        common::finished_recording(&dir.join("recordings"), &id, Duration::from_secs(10)).await;
    assert!(customer.len() >= 48_000, "{} samples", customer.len());
    let (c, b) = (common::middle_hz(&customer), common::middle_hz(&bot));
    assert!((c - 440.0).abs() <= 5.0, "the bot heard {c} Hz");
    assert!((b - 880.0).abs() <= 5.0, "the bot sent {b} Hz");
    // In the store, the recording is also kept compact (Ogg Opus), and the row points at it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let opus = loop {
        let row = wacall::bridge::history::History::open(&db)
            .ok()
            .and_then(|h| h.get(&id).ok().flatten());
        if let Some(p) = row
            .and_then(|r| r.recording)
            .filter(|p| p.ends_with(".opus"))
        {
            break std::path::PathBuf::from(p);
        }
        assert!(Instant::now() < deadline, "the recording was not compacted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wav_len = std::fs::metadata(opus.with_extension("wav")).unwrap().len();
    assert!(std::fs::metadata(&opus).unwrap().len() * 10 < wav_len);
    let _ = child.kill().await;
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hardening: `serve` with live calls gets SIGTERM (what systemd, Docker and Kubernetes send).
/// Every live call is terminated at the BSP, every history row closed, and it exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_every_live_call_and_exits_cleanly() {
    use std::time::{Duration, Instant};
    use wacall::sandbox::{SimState, UserCall};

    let ServeBot {
        sandbox,
        mut child,
        dir,
        db,
    } = serve_bot("sigterm").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            sandbox
                .world
                .place_user_call(UserCall {
                    user: format!("52155123400{i:02}"),
                    name: format!("Caller {i}"),
                    tone_hz: 440.0,
                    hangup_after: None,
                })
                .await
                .unwrap(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ids.iter().all(|id| {
        sandbox
            .world
            .report(id)
            .is_some_and(|r| r.state == SimState::Active)
    }) {
        assert!(Instant::now() < deadline, "the calls never became active");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("serve did not exit within 30 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    for id in &ids {
        assert_eq!(
            sandbox.actions(id),
            ["pre_accept", "accept", "terminate"],
            "call {id} was not terminated at the BSP"
        );
    }
    let rows = wacall::bridge::history::History::open(&db)
        .unwrap()
        .recent(10)
        .unwrap();
    for id in &ids {
        let row = rows
            .iter()
            .find(|r| &r.call_id == id)
            .expect("a history row");
        assert!(
            row.ended_at.is_some() && row.end_reason.is_some(),
            "history row of {id} not closed: {row:?}"
        );
    }
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The run command in Meta's shape: the same demo through Graph paths and Meta's bodies.
#[test]
fn sandbox_demo_passes_in_metas_shape() {
    let dir = std::env::temp_dir().join(format!("wacall-cli-demo-meta-{}", std::process::id()));
    let (ok, out, err) = run(wacall()
        .args([
            "sandbox",
            "--provider",
            "meta",
            "--quiet",
            "--talk-secs",
            "3",
            "--record-dir",
        ])
        .arg(dir.join("rec"))
        .arg("--history-db")
        .arg(dir.join("h.sqlite3")));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("local Meta Cloud API"), "{out}");
    assert!(
        out.contains("OK: audio flowed both ways in every call."),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `settings set` / `settings get` / `permission` against the sandbox in Meta's shape, as an
/// operator runs them from `wacall.toml`; and the BSP's refusals in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_permissions_through_metas_api() {
    let dir = std::env::temp_dir().join(format!("wacall-cli-meta-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let (sandbox, bridge_addr) = wacall::sandbox::Sandbox::start_for_new_bridge_as(
        wacall::config::Provider::Meta,
        "cli-secret",
    )
    .await
    .unwrap();
    sandbox.world.meta.set_strict(true);
    let cfg = dir.join("wacall.toml");
    std::fs::write(
        &cfg,
        sandbox.wacall_toml(bridge_addr, &dir.join("h.sqlite3")),
    )
    .unwrap();
    let settings = dir.join("meta-settings.json");
    std::fs::write(
        &settings,
        r#"{"status":"ENABLED","call_icons":{"restrict_to_user_countries":["MX","BR"]},
            "audio":{"additional_codecs":["PCMU"]}}"#,
    )
    .unwrap();
    let cli = |args: Vec<String>| {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || run(wacall().args(&args).arg("-c").arg(&cfg)))
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let path = settings.display().to_string();
    let (ok, out, err) = cli(s(&["settings", "set", &path, "--yes"])).await.unwrap();
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = cli(s(&["settings", "get"])).await.unwrap();
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("MX") && out.contains("BR"), "{out}");
    assert!(out.contains("PCMU"), "{out}");
    assert!(out.to_lowercase().contains("sip"), "{out}");
    let set = sandbox
        .received()
        .into_iter()
        .find(|r| r.action == "call_settings")
        .unwrap();
    assert_eq!(set.body["calling"]["audio"]["additional_codecs"][0], "PCMU");
    // A user who never allowed calls: the state and what to do, in words.
    let (ok, out, err) = cli(s(&["permission", "5215500000777"])).await.unwrap();
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("permission: none"), "{out}");
    assert!(
        out.contains("wacall permission request 5215500000777"),
        "{out}"
    );
    let (ok, out, err) = cli(s(&["permission", "request", "5215500000777"]))
        .await
        .unwrap();
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("permission request sent"), "{out}");
    let (ok, out, err) = cli(s(&["permission", "request", "5215500000777"]))
        .await
        .unwrap();
    assert!(!ok, "a second request within 24 h went out: {out}");
    assert!(err.contains("the next one can be sent at"), "{err}");
    sandbox.shutdown().await;

    // The same file for a BSP: refused offline, naming the Meta-only keys.
    let (ok, out, _) = run(wacall()
        .args(["settings", "check", "--provider", "bsp"])
        .arg(&settings));
    assert!(!ok);
    assert!(out.contains("call_icons") && out.contains("audio"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
