//! The `wacall` binary as an operator meets it: help, offline checks with field-named errors,
//! SDP tools, and the README's run command (`wacall sandbox`) end to end.

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
    let _ = std::fs::remove_dir_all(&dir);
}
