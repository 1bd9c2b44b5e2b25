//! `wacall dial` standalone: a bridge started from `wacall.toml` in the dialler's process places the
//! call at the (sandbox) BSP, receives the user's answer by webhook, shows progress live, and the
//! audio crosses; and a declined call is reported as such.

mod common;

use std::time::Duration;

use wacall::cli::dial;
use wacall::config::Config;
use wacall::media::MediaConfig;
use wacall::sandbox::demo::demo_business;
use wacall::sandbox::{Sandbox, SandboxConfig, UserPlan};

async fn setup() -> (Sandbox, Config) {
    common::init_logs();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let biz = demo_business();
    let sandbox = Sandbox::start(SandboxConfig {
        business: biz.clone(),
        token: "dial-bsp-token".into(),
        app_secret: "dial-secret".into(),
        webhook_url: format!("http://{addr}/webhook"),
        listen: "127.0.0.1:0".parse().unwrap(),
        media: MediaConfig::loopback(),
    })
    .await
    .unwrap();
    let toml = format!(
        "[bsp]\nbase_url = \"{}\"\nwaba_id = \"{}\"\nphone_number = \"{}\"\ntoken = \"dial-bsp-token\"\n\
         [webhook]\napp_secret = \"dial-secret\"\nverify_token = \"v\"\n\
         [server]\nlisten = \"{addr}\"\nhistory_db = \"{}\"\n",
        sandbox.bsp_url,
        biz.waba_id,
        biz.phone_number,
        std::env::temp_dir()
            .join(format!("wacall-dial-{}.sqlite3", rand::random::<u64>()))
            .display()
    );
    (sandbox, Config::from_toml_str(&toml).unwrap())
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
    let mut bot = common::bot_config(&std::env::temp_dir().join("wacall-dial-rec"));
    bot.name = "dialer".into();
    let mut shown = Vec::new();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        dial::standalone(
            &config,
            bot,
            "5215500000321",
            |l| shown.push(l.to_string()),
            std::future::pending(),
        ),
    )
    .await
    .expect("the call ends by itself")
    .unwrap();
    assert_eq!(
        outcome.progress,
        vec!["ringing…", "answered", "ended: customer_hangup"],
        "{shown:?}"
    );
    assert!(!outcome.declined);
    let user = sandbox.world.report(&outcome.call_id).unwrap();
    let hz = user.voice.heard_hz.expect("the user heard the dialler");
    assert!((hz - 880.0).abs() <= 5.0, "user heard {hz} Hz");
    sandbox.shutdown().await;
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
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        dial::standalone(
            &config,
            bot,
            "5215500000322",
            |_| {},
            std::future::pending(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(outcome.declined);
    assert_eq!(
        outcome.progress.last().map(String::as_str),
        Some("ended: rejected_by_customer")
    );
    sandbox.shutdown().await;
}
