//! `wacall dial` standalone: a bridge started from `wacall.toml` in the dialler's process places the
//! call at the (sandbox) BSP, receives the user's answer by webhook, shows progress live, and the
//! audio crosses; and a declined call is reported as such.

mod common;

use std::time::Duration;

use wacall::cli::dial;
use wacall::config::Config;
use wacall::sandbox::{Sandbox, UserPlan};

async fn setup() -> (Sandbox, Config) {
    common::init_logs();
    let (sandbox, addr) = Sandbox::start_for_new_bridge("dial-secret").await.unwrap();
    let history =
        std::env::temp_dir().join(format!("wacall-dial-{}.sqlite3", rand::random::<u64>()));
    let toml = sandbox.wacall_toml(addr, &history);
    (sandbox, Config::from_toml_str(&toml).unwrap())
}

/// `wacall dial` without a hub, as the CLI runs it, bounded so a hung call fails the test.
async fn dial_standalone(
    config: &Config,
    bot: wacall::bot::runner::BotConfig,
    number: &str,
    show: impl FnMut(&str),
) -> dial::DialOutcome {
    tokio::time::timeout(
        Duration::from_secs(20),
        dial::standalone(config, bot, number, show, std::future::pending()),
    )
    .await
    .expect("the call ends by itself")
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_dial_follows_the_call_to_its_end() {
    let (sandbox, config) = setup().await;
    sandbox.world.set_default_plan(UserPlan {
        answer_after: Duration::from_millis(400),
        hangup_after: Some(Duration::from_secs(2)),
        tone_hz: 520.0,
        ..UserPlan::default()
    });
    let rec = std::env::temp_dir().join(format!("wacall-dial-rec-{}", rand::random::<u32>()));
    let mut bot = common::bot_config(&rec);
    bot.name = "dialer".into();
    let mut shown = Vec::new();
    let outcome =
        dial_standalone(&config, bot, "5215500000321", |l| shown.push(l.to_string())).await;
    assert_eq!(
        outcome.progress,
        vec!["ringing…", "answered", "ended: customer_hangup"],
        "{shown:?}"
    );
    assert!(!outcome.declined);
    let user = sandbox.world.report(&outcome.call_id).unwrap();
    let hz = user.voice.heard_hz.expect("the user heard the dialler");
    assert!((hz - 880.0).abs() <= 5.0, "user heard {hz} Hz");
    // And the other way: the dialler's recording has the user's 520 Hz on the customer's
    // channel (its own 880 Hz on the other).
    let (customer, ours) = common::finished_recording(
        &rec.join("recordings"),
        &outcome.call_id,
        Duration::from_secs(10),
    )
    .await;
    assert!(customer.len() >= 48_000, "{} samples", customer.len());
    let (c, o) = (common::middle_hz(&customer), common::middle_hz(&ours));
    assert!((c - 520.0).abs() <= 5.0, "the dialler heard {c} Hz");
    assert!((o - 880.0).abs() <= 5.0, "the dialler sent {o} Hz");
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&rec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_dial_reports_a_declined_call() {
    let (sandbox, config) = setup().await;
    sandbox.world.set_default_plan(UserPlan {
        answer_after: Duration::from_millis(200),
        reject: true,
        ..UserPlan::default()
    });
    let bot = common::bot_config(&std::env::temp_dir().join("wacall-dial-rec"));
    let outcome = dial_standalone(&config, bot, "5215500000322", |_| {}).await;
    assert!(outcome.declined);
    assert_eq!(
        outcome.progress.last().map(String::as_str),
        Some("ended: rejected_by_customer")
    );
    sandbox.shutdown().await;
}
