//! `wacall dial` standalone: a bridge started from `wacall.toml` in the dialler's process places the
//! call at the (sandbox) BSP, receives the user's answer by webhook, shows progress live, and the
//! audio crosses; and a declined call is reported as such. In Meta's Cloud API shape, with its
//! permission rules enforced: a dial without permission is explained and the request offered,
//! goes through once the user allows calls, Meta's recording and transcript end up linked in
//! history, requests past Meta's limits are refused with the reset time, and four unanswered
//! calls revoke the permission.

use crate::common;

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
        dial::standalone(
            config,
            bot,
            number,
            dial::DialPlan::default(),
            show,
            std::future::pending(),
        ),
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

/// A bridge that keeps running (as `wacall serve`) and the sandbox, both in Meta's shape with
/// its permission rules enforced; Meta-side recording and transcription on, with a store.
/// Also the `wacall.toml` of that business, for the CLI's own requests.
struct Meta {
    sandbox: Sandbox,
    bridge: wacall::bridge::Bridge,
    config: Config,
    dir: std::path::PathBuf,
}

async fn meta_setup() -> Meta {
    let dir = std::env::temp_dir().join(format!("wacall-dial-meta-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join("history.sqlite3");
    let store = dir.join("store");
    let (sandbox, bridge) =
        common::sandbox_and_bridge_as(wacall::config::Provider::Meta, Some(history.clone()), |c| {
            c.store_dir = Some(store.clone());
            c.meta_capture = wacall::config::MetaCaptureConfig {
                record: true,
                transcribe: true,
                purpose: "quality assurance".into(),
                announcement_language: "en_US".into(),
            };
        })
        .await;
    let bridge = bridge.unwrap();
    sandbox.world.meta.set_strict(true);
    let config = Config::from_toml_str(&sandbox.wacall_toml(bridge.addr, &history)).unwrap();
    assert_eq!(config.bsp.provider, wacall::config::Provider::Meta);
    Meta {
        sandbox,
        bridge,
        config,
        dir,
    }
}

impl Meta {
    /// `wacall dial --hub ...` as the CLI runs it, bounded so a hung call fails the test.
    async fn dial(
        &self,
        number: &str,
        plan: dial::DialPlan,
        shown: &mut Vec<String>,
    ) -> anyhow::Result<dial::DialOutcome> {
        let mut bot = common::bot_config(&self.dir.join("bot"));
        bot.name = "dialer".into();
        tokio::time::timeout(
            Duration::from_secs(30),
            dial::through_hub(
                &self.bridge.hub_url(),
                common::EDGE_TOKEN,
                bot,
                number,
                plan,
                |l| shown.push(l.to_string()),
                std::future::pending(),
            ),
        )
        .await
        .expect("the dial ends by itself")
    }

    async fn stop(self) {
        self.bridge.shutdown().await;
        self.sandbox.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The history row of `call_id` once `ready` holds.
async fn row_when(
    bridge: &wacall::bridge::Bridge,
    call_id: &str,
    ready: impl Fn(&wacall::call_record::CallRecord) -> bool,
) -> wacall::call_record::CallRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row = bridge.history_row(call_id);
        if let Some(r) = row.as_ref().filter(|r| ready(r)) {
            return r.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history row of {call_id} not ready: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bridge's record of a user's permission, once `ready` holds.
async fn permission_when(
    bridge: &wacall::bridge::Bridge,
    user: &str,
    ready: impl Fn(&wacall::bridge::history::PermissionRow) -> bool,
) -> wacall::bridge::history::PermissionRow {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row = bridge.permission_row(user);
        if let Some(r) = row.as_ref().filter(|r| ready(r)) {
            return r.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "permission of {user} not as expected: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_metas_shape_a_dial_without_permission_asks_then_calls_and_metas_files_are_linked() {
    let m = meta_setup().await;
    let user = "5215500000401";
    m.sandbox.world.set_default_plan(UserPlan {
        answer_after: Duration::from_millis(400),
        hangup_after: Some(Duration::from_secs(3)),
        tone_hz: 520.0,
        ..UserPlan::default()
    });
    // The first download URL Meta gives has expired by the time it is used: the bridge must
    // ask `GET /{media-id}` for a fresh one.
    m.sandbox.world.faults().expire_media_urls = 1;

    // No permission, and the dialler may not ask: it says so in words and how to ask.
    let mut shown = Vec::new();
    let plan = dial::DialPlan {
        ask: dial::Ask::Never,
        ..Default::default()
    };
    let err = m
        .dial(user, plan, &mut shown)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        shown.iter().any(|l| l.contains("has not allowed calls")),
        "{shown:?}"
    );
    assert!(
        err.contains(&format!("wacall permission request {user}")),
        "{err}"
    );
    assert!(
        !m.sandbox.received().iter().any(|r| r.action == "connect"),
        "nothing was dialled: the check came first"
    );

    // Allowed to ask: the request goes out, the simulated user accepts, the call goes through.
    let mut shown = Vec::new();
    let plan = dial::DialPlan {
        ask: dial::Ask::Always,
        wait: Duration::from_secs(10),
        ..Default::default()
    };
    let outcome = m.dial(user, plan, &mut shown).await.unwrap();
    assert!(
        shown.iter().any(|l| l.contains("permission request sent")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|l| l.contains("allowed calls (temporary until")),
        "{shown:?}"
    );
    assert_eq!(
        outcome.progress,
        vec!["ringing…", "answered", "ended: customer_hangup"],
        "{shown:?}"
    );
    let heard = m
        .sandbox
        .world
        .report(&outcome.call_id)
        .unwrap()
        .voice
        .heard_hz;
    assert!(
        heard.is_some_and(|hz| (hz - 880.0).abs() <= 5.0),
        "{heard:?}"
    );

    // What went to Meta, in Meta's shape.
    let received = m.sandbox.received();
    let connect = received.iter().find(|r| r.action == "connect").unwrap();
    assert_eq!(connect.body["messaging_product"], "whatsapp");
    assert_eq!(connect.body["session"]["sdp_type"], "offer");
    assert_eq!(connect.body["recording"]["status"], "ENABLED");
    assert_eq!(connect.body["recording"]["purpose"], "quality assurance");
    assert_eq!(
        connect.body["transcription"]["announcement_language"],
        "en_US"
    );
    assert!(connect.body.get("from").is_none(), "{}", connect.body);
    let request = received
        .iter()
        .find(|r| r.action == "permission_request")
        .unwrap();
    assert_eq!(
        request.body["interactive"]["type"],
        "call_permission_request"
    );

    // Meta's recording and transcript are downloaded (the expired URL refreshed) and linked.
    let row = row_when(&m.bridge, &outcome.call_id, |r| {
        r.meta_recording.is_some() && r.meta_transcript.is_some()
    })
    .await;
    let ogg = std::fs::read(row.meta_recording.as_deref().unwrap()).unwrap();
    assert_eq!(&ogg[..4], b"OggS");
    assert!(ogg.len() > 4_000, "{} bytes of Ogg Opus", ogg.len());
    let transcript = std::fs::read_to_string(row.meta_transcript.as_deref().unwrap()).unwrap();
    assert!(transcript.contains("880 Hz"), "{transcript}");
    assert!(
        m.sandbox.received().iter().any(|r| r.action == "media"),
        "a fresh URL was asked for"
    );
    // The bridge keeps what it learnt: the user's answer, then the next dial's check.
    let p = permission_when(&m.bridge, user, |p| p.status == "temporary").await;
    assert!(p.expires_at.is_some(), "{p:?}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_metas_shape_permission_requests_past_the_limits_are_refused_with_the_reset_time() {
    let m = meta_setup().await;
    let user = "5215500000402";
    m.sandbox
        .world
        .meta
        .set_answer(user, wacall::sandbox::meta::PermissionAnswer::Ignore);
    let meta = &m.sandbox.world.meta;
    let t0 = meta.now();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M").to_string();
    let reset_day = fmt(t0 + chrono::Duration::hours(24));
    let reset_week = fmt(t0 + chrono::Duration::days(7));
    let request = || wacall::cli::permission::request(&m.config, user, Some("May we call you?"));
    // 1: sent. 2 (an hour later): 1 a day. 3 (25 h): sent. 4 (50 h): 2 a week.
    // 5 (6 days): still 2 a week, with the same reset.
    request().await.unwrap();
    meta.advance_clock(chrono::Duration::hours(1));
    let e = request().await.unwrap_err().to_string();
    assert!(e.contains(&reset_day), "{e}");
    meta.advance_clock(chrono::Duration::hours(24));
    request().await.unwrap();
    meta.advance_clock(chrono::Duration::hours(25));
    let e = request().await.unwrap_err().to_string();
    assert!(e.contains(&reset_week), "{e}");
    meta.advance_clock(chrono::Duration::hours(24 * 6 - 50));
    let fifth = request().await.unwrap_err().to_string();
    assert!(fifth.contains(&reset_week), "{fifth}");
    assert!(fifth.contains("1 a day, 2 a week"), "{fifth}");
    // `wacall permission NUMBER` reads the same from Meta's check.
    let client = wacall::api::BspClient::new(&m.config.bsp).unwrap();
    let p = client.call_permission(user).await.unwrap();
    let words = p.describe(user, meta.now());
    assert!(words.contains("permission: none"), "{words}");
    assert!(words.contains("send a permission request: no"), "{words}");
    assert!(
        words.contains("2 of 2 per 7 days used, resets at"),
        "{words}"
    );
    let asked = m
        .sandbox
        .received()
        .iter()
        .filter(|r| r.action == "permission_request")
        .count();
    assert_eq!(asked, 5);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_metas_shape_four_unanswered_calls_revoke_the_permission() {
    let m = meta_setup().await;
    let user = "5215500000403";
    m.sandbox.world.set_default_plan(UserPlan {
        answer_after: Duration::from_millis(100),
        reject: true,
        ..UserPlan::default()
    });
    m.sandbox.world.meta.reply(user, true, true);
    for i in 0..4 {
        let mut shown = Vec::new();
        let outcome = m
            .dial(user, dial::DialPlan::default(), &mut shown)
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e} {shown:?}"));
        assert!(outcome.declined, "call {i}: {shown:?}");
    }
    // WhatsApp's automatic reject reached the bridge, and the fifth dial is refused before
    // connect.
    let p = permission_when(&m.bridge, user, |p| p.source == "automatic").await;
    assert_eq!(p.status, "none", "{p:?}");
    let mut shown = Vec::new();
    let plan = dial::DialPlan {
        ask: dial::Ask::Never,
        ..Default::default()
    };
    let err = m
        .dial(user, plan, &mut shown)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        shown.iter().any(|l| l.contains("has not allowed calls")),
        "{shown:?} {err}"
    );
    let connects = m
        .sandbox
        .received()
        .iter()
        .filter(|r| r.action == "connect")
        .count();
    assert_eq!(connects, 4);
    m.stop().await;
}

/// A user's call to a bot, in Meta's shape with `[recording.meta]` on: recording and
/// transcription are asked on `accept` (never on `pre_accept`), and Meta's files are linked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_metas_shape_a_users_call_is_recorded_by_meta_when_asked_on_accept() {
    let m = meta_setup().await;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (_cmd, cmd_rx) = tokio::sync::mpsc::channel(1);
    let bot = common::bot_config(&m.dir.join("answering-bot"));
    let hub = m.bridge.hub_url();
    let bot_task = tokio::spawn(async move {
        wacall::bot::runner::run(bot, &hub, common::EDGE_TOKEN, cmd_rx, stop_rx)
            .await
            .unwrap()
    });
    m.bridge
        .wait_for_edges(1, Duration::from_secs(5))
        .await
        .unwrap();
    let call_id = m
        .sandbox
        .world
        .place_user_call(wacall::sandbox::UserCall {
            user: "5215500000404".into(),
            name: "Ivo".into(),
            tone_hz: 440.0,
            hangup_after: Some(Duration::from_secs(3)),
        })
        .await
        .unwrap();
    let row = row_when(&m.bridge, &call_id, |r| {
        r.meta_recording.is_some() && r.meta_transcript.is_some()
    })
    .await;
    let transcript = std::fs::read_to_string(row.meta_transcript.as_deref().unwrap()).unwrap();
    assert!(
        transcript.contains("880 Hz"),
        "the user heard the bot: {transcript}"
    );
    let bodies: Vec<_> = m
        .sandbox
        .received()
        .into_iter()
        .filter(|r| r.call_id.as_deref() == Some(call_id.as_str()))
        .collect();
    let pre = bodies.iter().find(|r| r.action == "pre_accept").unwrap();
    let accept = bodies.iter().find(|r| r.action == "accept").unwrap();
    assert!(pre.body.get("recording").is_none(), "{}", pre.body);
    assert_eq!(accept.body["recording"]["status"], "ENABLED");
    assert_eq!(accept.body["transcription"]["purpose"], "quality assurance");
    assert_eq!(accept.body["session"]["sdp"], pre.body["session"]["sdp"]);
    // The user called: WhatsApp lets the business call back (an automatic permission).
    let p = permission_when(&m.bridge, "5215500000404", |p| p.source == "automatic").await;
    assert_eq!(p.status, "temporary");
    let _ = stop.send(true);
    let _ = bot_task.await;
    m.stop().await;
}
