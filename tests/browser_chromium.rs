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

mod common;

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

impl Netns {
    fn create() -> Result<Netns, String> {
        let n = std::process::id() % 200 + 20;
        let name = format!("wacall-chr-{n}");
        let (h, p) = (format!("wch{n}"), format!("wcp{n}"));
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
    if let Some(what) = missing() {
        if std::env::var_os("CI").is_some() {
            panic!("CI must run the browser test, but {what} is missing");
        }
        // Straight to stderr: cargo test captures eprintln! of passing tests.
        let _ = writeln!(
            std::io::stderr().lock(),
            "\n*** SKIPPED chromium_calls_the_bot...: {what} is missing; run `bash scripts/setup.sh` ***\n"
        );
        return;
    }
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) if std::env::var_os("CI").is_some() => panic!("network namespace: {e}"),
        Err(e) => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "\n*** SKIPPED chromium_calls_the_bot...: no network namespace: {e} ***\n"
            );
            return;
        }
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
