//! A real browser calls the bot: Debian's Chromium (headless, driven by Playwright through
//! `tests/browser/chromium_call.js`) makes its own offer, which reaches the bridge as a
//! WhatsApp user's connect webhook from the sandbox; the bot's answer from `pre_accept` goes
//! back to Chromium. Chromium plays 440 Hz and presses keys with `RTCDTMFSender`; the bot plays
//! 880 Hz. Checked: Chromium hears 880 Hz, the bot's recording has 440 Hz on the customer's
//! channel, and the digits are in the history row and the sidecar.
//!
//! Chromium gathers candidates on every interface it sees, so it runs in a network namespace
//! this test makes (`ip netns`, a veth pair on 10.203.N.0/30): media crosses that link only, and
//! nothing reaches the machine's other interfaces. The bot's media binds the host's end.
//!
//! Needs `chromium`, `node`, `tests/browser/node_modules` (`scripts/setup.sh` installs them) and
//! root for `ip netns`. Without them the test says so loudly and passes, except under CI (`CI`
//! set), where it fails.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::net::IpAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wacall::audio::tone::dominant_frequency;

use wacall::call::CallTimeouts;
use wacall::media::MediaConfig;

use common::{Rig, bot_config, read_stereo};

const DIGITS: &str = "1234#";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What is missing to run the browser, if anything.
fn missing() -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium (apt-get install chromium)".into());
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("node".into());
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some("tests/browser/node_modules (cd tests/browser && npm ci)".into());
    }
    if !std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some("`ip netns` (iproute2, as root)".into());
    }
    None
}

/// A network namespace with one veth link to the host: `host` here, `peer` inside.
struct Netns {
    name: String,
    host: std::net::Ipv4Addr,
    peer: std::net::Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespace a browser test runs Chromium in, once Chromium, node and the driver are
/// there. Without them the test is skipped, loudly (on the real stderr: cargo test captures
/// `eprintln!` of passing tests), except under `CI`, which must run it.
fn ready(test: &str, create: fn() -> Result<Netns, String>) -> Option<Netns> {
    let problem = match missing() {
        Some(what) => format!("{what} is missing; run `bash scripts/setup.sh`"),
        None => match create() {
            Ok(ns) => return Some(ns),
            Err(e) => format!("no network namespace: {e}"),
        },
    };
    if std::env::var_os("CI").is_some() {
        panic!("CI must run the browser test {test}, but {problem}");
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n*** SKIPPED {test}...: {problem} ***\n"
    );
    None
}

impl Netns {
    /// The call test's namespace.
    fn create() -> Result<Netns, String> {
        Netns::create_as("chr", ("wch", "wcp"), std::process::id() % 200 + 20)
    }

    /// The console test's: the two tests run at once in one process, so each has its own
    /// names and addresses.
    fn create_for_console() -> Result<Netns, String> {
        Netns::create_as("con", ("wco", "wcq"), std::process::id() % 30 + 220)
    }

    /// `wacall-<tag>-<n>`, a veth pair (`<host><n>`, `<peer><n>`) on 10.203.<n>.0/30.
    fn create_as(tag: &str, (host_if, peer_if): (&str, &str), n: u32) -> Result<Netns, String> {
        let name = format!("wacall-{tag}-{n}");
        let (h, p) = (format!("{host_if}{n}"), format!("{peer_if}{n}"));
        let host = std::net::Ipv4Addr::new(10, 203, n as u8, 1);
        let peer = std::net::Ipv4Addr::new(10, 203, n as u8, 2);
        let _ = ip(&["netns", "del", &name]);
        let ns = Netns { name, host, peer };
        let (hc, pc) = (format!("{host}/30"), format!("{peer}/30"));
        ip(&["netns", "add", &ns.name])?;
        ip(&["link", "add", &h, "type", "veth", "peer", "name", &p])?;
        ip(&["link", "set", &p, "netns", &ns.name])?;
        ip(&["addr", "add", &hc, "dev", &h])?;
        ip(&["link", "set", &h, "up"])?;
        for cmd in [
            vec!["addr", "add", pc.as_str(), "dev", p.as_str()],
            vec!["link", "set", p.as_str(), "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut args = vec!["netns", "exec", ns.name.as_str(), "ip"];
            args.extend(cmd);
            ip(&args)?;
        }
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth pair, and with it the host's end.
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Only the candidates on the namespace's veth address: the bot checks nothing else (the
/// namespace's own loopback is not ours to reach).
fn only_address(sdp: &str, addr: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| !l.starts_with("a=candidate:") || l.split_whitespace().nth(4) == Some(addr))
        .collect()
}

struct Browser {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stdin: tokio::process::ChildStdin,
}

impl Browser {
    /// The next JSON line that has `key` (an `error` line fails the test).
    async fn expect(&mut self, key: &str, within: Duration) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {key:?} from the browser within {within:?}"))
                .expect("reading the browser's output")
                .unwrap_or_else(|| panic!("the browser ended before {key:?}"));
            let v: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if let Some(e) = v.get("error") {
                panic!("browser: {e}");
            }
            if v.get(key).is_some() {
                return v;
            }
        }
    }

    async fn send(&mut self, v: serde_json::Value) {
        let mut line = v.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_calls_the_bot_tones_cross_and_its_keypad_lands_in_history() {
    let Some(ns) = ready("chromium_calls_the_bot", Netns::create) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("wacall-chromium-{}", std::process::id()));
    let mut bot = bot_config(&dir);
    bot.media = MediaConfig {
        bind: vec![IpAddr::V4(ns.host)],
        ..MediaConfig::default()
    };
    let rig = Rig::start(Some(bot), CallTimeouts::default()).await;

    let child = tokio::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "node"])
        .arg(browser_dir().join("chromium_call.js"))
        .args(["--tone", "440", "--digits", DIGITS, "--max-secs", "60"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("starting node");
    let mut child = child;
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let stdin = child.stdin.take().unwrap();
    let mut browser = Browser {
        child,
        lines,
        stdin,
    };

    let offer = browser.expect("offer", Duration::from_secs(30)).await;
    let offer = only_address(
        offer["offer"].as_str().expect("offer is a string"),
        &ns.peer.to_string(),
    );
    assert!(
        offer.contains("a=candidate:"),
        "no candidate on the veth link: {offer}"
    );
    let (call_id, mut answers) = rig
        .sandbox
        .world
        .place_external_user_call("5215512340000", "Chromium", &offer)
        .await;
    let answer = tokio::time::timeout(Duration::from_secs(10), answers.recv())
        .await
        .expect("no pre_accept within 10 s")
        .expect("the sandbox dropped the call");
    browser.send(serde_json::json!({ "answer": answer })).await;
    browser.expect("connected", Duration::from_secs(20)).await;
    let heard = browser.expect("heard_hz", Duration::from_secs(20)).await;
    let stats = browser.expect("stats", Duration::from_secs(5)).await;
    let sent = browser.expect("dtmf_sent", Duration::from_secs(20)).await;
    assert_eq!(sent["dtmf_sent"], DIGITS, "{sent}");
    // Let the last key's end packets arrive and reach the bridge.
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.sandbox.world.user_hangs_up(&call_id).await;
    browser.send(serde_json::json!({ "close": true })).await;
    let record = rig.wait_ended(&call_id, Duration::from_secs(20)).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), browser.child.wait()).await;

    let hz = heard["heard_hz"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (hz - 880.0).abs() < 15.0,
        "Chromium heard {heard} ({stats})"
    );
    assert_eq!(record.dtmf, DIGITS, "history row's digits ({stats})");
    assert_eq!(rig.actions(&call_id), vec!["pre_accept", "accept"]);
    let q = record.quality.expect("the bot's quality report");
    assert_eq!(q.unknown_payload_type, 0, "{q:?}");
    let wav = record.recording.clone().expect("a recording");
    let (left, _) = read_stereo(Path::new(&wav));
    let mid = &left[left.len() / 4..left.len() * 3 / 4];
    let l = dominant_frequency(mid, 48_000);
    assert!(
        (l - 440.0).abs() < 15.0,
        "the customer's channel has {l} Hz"
    );
    let sidecar: wacall::call_record::CallRecord = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&wav).with_extension("json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar.dtmf, DIGITS);
    rig.stop().await;
    drop(ns);
}

/// The supervisor console in a real browser (`tests/browser/console_check.js`): Chromium, in
/// its own network namespace, opens `/console` on the bridge (listening on the host's end of
/// the veth link), is refused a wrong token, signs in with a supervisor's, sees the live call
/// and the bot, finds an earlier call in the history and opens its page (both waveforms drawn,
/// the recording loads, seeks and plays, the timeline has pre_accept and accept); the page
/// must log no error and break no rule of its Content-Security-Policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_to_the_console_sees_the_live_call_and_searches_history() {
    use wacall::bridge::identity::Role;
    use wacall::sandbox::{Sandbox, UserCall};
    use wacall::secret::Secret;
    const SUPERVISOR_TOKEN: &str = "tok-console-supervisor";
    const LIVE_USER: &str = "5215500000802";
    const EARLIER_USER: &str = "5215500000801";

    let Some(ns) = ready(
        "chromium_signs_in_to_the_console",
        Netns::create_for_console,
    ) else {
        return;
    };
    common::init_logs();
    let dir = std::env::temp_dir().join(format!("wacall-chromium-console-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // The bridge listens on the host's end of the link, the one address Chromium can reach;
    // the sandbox and the bot reach it there too.
    let listener = tokio::net::TcpListener::bind((ns.host, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sandbox = Sandbox::start_for_bridge(addr, common::APP_SECRET)
        .await
        .unwrap();
    let mut cfg = sandbox.bridge_config(
        vec![Secret::new(common::EDGE_TOKEN)],
        Some(dir.join("history.sqlite3")),
    );
    cfg.edges = vec![common::identity(
        "qa-lead",
        Role::Supervisor,
        SUPERVISOR_TOKEN,
    )];
    // The bot uploads its recordings; the bridge keeps them as Ogg Opus, which Chromium must
    // then decode and seek on the call page (a decoder that is not ours).
    cfg.store_dir = Some(dir.join("store"));
    let bridge = wacall::bridge::Bridge::start_on(listener, cfg)
        .await
        .expect("the bridge starts");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (_cmd, cmd_rx) = tokio::sync::mpsc::channel(1);
    let hub = bridge.hub_url();
    let bot = bot_config(&dir);
    let bot_task = tokio::spawn(async move {
        wacall::bot::runner::run(bot, &hub, common::EDGE_TOKEN, cmd_rx, stop_rx).await
    });
    bridge
        .wait_for_edges(1, Duration::from_secs(5))
        .await
        .unwrap();

    // An earlier call, over before the browser opens: the history has a row to find (a call
    // gets its row when it ends).
    let earlier = sandbox
        .world
        .place_user_call(UserCall {
            user: EARLIER_USER.into(),
            name: "Earlier".into(),
            tone_hz: 440.0,
            hangup_after: Some(Duration::from_secs(2)),
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while bridge.history_row(&earlier).is_none_or(|r| {
        r.end_reason.is_none() || !r.recording.is_some_and(|p| p.ends_with(".opus"))
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the earlier call never reached the history: {:?}",
            bridge.record(&earlier)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The call the console shows live; it outlasts the browser's visit.
    let live = sandbox
        .world
        .place_user_call(UserCall {
            user: LIVE_USER.into(),
            name: "Live".into(),
            tone_hz: 440.0,
            hangup_after: Some(Duration::from_secs(15)),
        })
        .await
        .unwrap();

    // Screenshots of the Live view and the call page (docs/ has copies of these).
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let node = tokio::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "node"])
        .arg(browser_dir().join("console_check.js"))
        .args(["--url", &format!("http://{addr}")])
        .args(["--token", SUPERVISOR_TOKEN])
        .args(["--expect-call", &live, "--expect-text", LIVE_USER])
        .args(["--expect-bot", "e2e-bot", "--supervisor", "qa-lead"])
        .args(["--history-call", &earlier, "--history-text", EARLIER_USER])
        .args(["--max-secs", "40"])
        .arg("--screenshots")
        .arg(&shots)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), node)
        .await
        .expect("console_check.js did not finish within 60 s")
        .expect("starting node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdict: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON from console_check.js ({}): {stdout}", out.status));
    assert!(
        out.status.success() && verdict["ok"] == true,
        "console_check.js ({}): {verdict}",
        out.status
    );
    let _ = writeln!(std::io::stderr().lock(), "console_check.js: {verdict}");
    assert!(
        verdict["wrong_token_error"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{verdict}"
    );
    assert_eq!(verdict["me"], "qa-lead", "{verdict}");
    assert_eq!(verdict["call_row"][0], LIVE_USER, "{verdict}");
    assert_eq!(verdict["call_row"][2], "e2e-bot", "{verdict}");
    assert_eq!(verdict["bot_row"][0], "e2e-bot", "{verdict}");
    assert_eq!(verdict["history_found"][3], EARLIER_USER, "{verdict}");
    assert_eq!(verdict["csv"], true, "{verdict}");
    // The earlier call's page: its recording loaded (duration > 0), seeked and played.
    let page = &verdict["call_page"];
    assert!(
        page["audio"]["duration"].as_f64().is_some_and(|d| d > 1.0),
        "{verdict}"
    );
    assert!(
        page["audio"]["at"].as_f64().is_some_and(|t| t > 0.4),
        "{verdict}"
    );
    assert!(
        page["played_s"].as_f64().is_some_and(|p| p > 0.1),
        "{verdict}"
    );

    sandbox.world.user_hangs_up(&live).await;
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), bot_task).await;
    bridge.shutdown().await;
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    drop(ns);
}
