//! End to end over 127.0.0.1: sandbox users (real ICE-lite WebRTC peers) ⇄ signed webhooks ⇄
//! bridge ⇄ BSP actions ⇄ bot edge (real media). Tones prove audio in both directions.
//!
//! Every test runs twice, against each provider shape of the sandbox: `bsp::` (the BSP's call
//! actions) and `meta::` (Meta's Cloud API: Graph paths, `session` bodies, Meta's errors, the
//! permission check before a dial). The bridge speaks the same provider as its sandbox.

use crate::common;

use std::io::Write;
use std::time::Duration;

use common::{EDGE_TOKEN, Rig, bot_config, read_stereo};
use wacall::audio::tone::dominant_frequency;
use wacall::call::CallTimeouts;
use wacall::config::Provider;
use wacall::sandbox::{SimState, UserCall, UserPlan};

/// One `#[tokio::test]` per provider shape for each test of the suite.
macro_rules! in_both_shapes {
    ($($name:ident),* $(,)?) => {
        mod bsp {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(wacall::config::Provider::Bsp).await
                }
            )*
        }
        mod meta {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(wacall::config::Provider::Meta).await
                }
            )*
        }
    };
}

in_both_shapes!(
    user_calls_the_bot_tones_cross_both_ways_and_the_recording_matches_history,
    user_calls_a_bot_in_the_bridges_process_and_tones_cross_both_ways,
    business_calls_a_user_tones_cross_and_the_bot_hangs_up,
    user_rejects_the_business_call,
    call_without_permission_fails_plainly_and_is_not_retried,
    edge_that_never_answers_then_reject,
    call_whose_ice_never_connects_is_terminated,
    a_call_gone_silent_is_ended_by_the_bot,
    duplicate_webhooks_make_one_call,
    reordered_terminate_before_connect,
    forged_signature_is_refused,
    another_edge_cannot_act_on_a_call_it_does_not_hold,
    replayed_connect_webhooks_never_become_calls,
    a_bridge_without_an_app_secret_does_not_start,
    tokens_decide_identity_and_what_calls_an_edge_can_read,
    the_bridge_serves_tls_and_edges_connect_over_wss,
    connections_are_limited_and_slow_clients_cut_off,
    a_call_whose_connect_reply_was_lost_is_terminated,
    an_edge_dialling_in_a_loop_is_rate_limited,
    a_half_open_edge_is_dropped_and_a_live_one_kept,
    callers_wait_in_order_abandon_or_overflow_to_voicemail,
    groups_pick_the_agent_and_closed_hours_send_callers_to_voicemail,
    the_supervisor_console_shows_live_calls_and_searches_history,
    recordings_are_uploaded_to_the_bridge_resumably_by_their_holder,
);

const RATE: u32 = 48_000;

fn near(hz: f32, want: f32) -> bool {
    (hz - want).abs() <= 5.0
}

/// The middle of a channel, away from ramp-up and teardown.
fn middle(x: &[i16]) -> &[i16] {
    let n = x.len();
    &x[n / 4..n * 3 / 4]
}

async fn user_calls_the_bot_tones_cross_both_ways_and_the_recording_matches_history(
    provider: Provider,
) {
    user_calls_the_bot(provider, false).await;
}

/// The same call with the bot inside the bridge's process (`wacall serve --bot`), linked by
/// channels instead of the hub's WebSocket.
async fn user_calls_a_bot_in_the_bridges_process_and_tones_cross_both_ways(provider: Provider) {
    user_calls_the_bot(provider, true).await;
}

async fn user_calls_the_bot(provider: Provider, local: bool) {
    let rig = Rig::start_linked_as(
        provider,
        Some(bot_config(
            &std::env::temp_dir().join(format!("wacall-e2e-1-{provider}")),
        )),
        CallTimeouts::default(),
        local,
    )
    .await;
    let call_id = rig
        .sandbox
        .world
        .place_user_call(UserCall {
            user: "5215512345678".into(),
            name: "Ana".into(),
            tone_hz: 440.0,
            hangup_after: Some(Duration::from_secs(4)),
        })
        .await
        .unwrap();
    let record = rig.wait_ended(&call_id, Duration::from_secs(20)).await;

    // Signalling: one pre_accept then one accept, with the same SDP; nothing else.
    assert_eq!(rig.actions(&call_id), vec!["pre_accept", "accept"]);
    let sent = rig.sandbox.received();
    let sdps: Vec<_> = sent
        .iter()
        .filter(|r| r.call_id.as_deref() == Some(&call_id))
        .map(|r| r.body["sdp"].clone())
        .collect();
    assert_eq!(sdps[0], sdps[1], "accept must repeat the pre_accept SDP");
    assert_eq!(record.end_reason.as_deref(), Some("customer_hangup"));
    assert_eq!(record.caller_name.as_deref(), Some("Ana"));
    assert!(record.pre_accepted_at.is_some() && record.accepted_at.is_some());

    // Audio, user side: heard the bot's 880 Hz.
    let user = rig.sandbox.world.report(&call_id).unwrap();
    assert!(user.voice.packets_heard >= 100, "{user:?}");
    assert!(
        user.voice.heard_hz.is_some_and(|h| near(h, 880.0)),
        "user heard {:?}",
        user.voice.heard_hz
    );

    // Audio, bot side, from the recording: left = the customer (440), right = the bot (880).
    let q = record.quality.expect("bot's quality report");
    assert!(q.packets_received >= 100, "{q:?}");
    assert_eq!(q.packets_lost, 0, "{q:?}");
    // The bot's playout side: frames played, almost none concealed, none late; and the same
    // figures reach /metrics (from the stats the bot sends while the call runs).
    assert!(q.playout.frames >= 100, "{q:?}");
    // When the media came up, for the call's timeline: after the offer, before the end.
    let connected = chrono::DateTime::from_timestamp_millis(q.media_connected_ms.unwrap() as i64)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert!(
        record.offered_at < connected && Some(connected.clone()) < record.ended_at,
        "{connected} vs {record:?}"
    );
    assert_eq!(q.playout.late, 0, "{q:?}");
    assert!(q.playout.concealed * 20 < q.playout.frames, "{q:?}");
    let played = common::metric_value(&rig.bridge.url(), "wacall_edge_frames_played_total").await;
    assert!(played >= 50.0, "frames played in /metrics: {played}");
    let wav = record.recording.clone().expect("a recording");
    let (left, right) = read_stereo(std::path::Path::new(&wav));
    assert!(
        left.len() as u32 >= 2 * RATE,
        "recording too short: {} samples",
        left.len()
    );
    let (l, r) = (
        dominant_frequency(middle(&left), RATE),
        dominant_frequency(middle(&right), RATE),
    );
    assert!(near(l, 440.0), "left channel {l} Hz");
    assert!(near(r, 880.0), "right channel {r} Hz");

    // The sidecar next to the recording is the history row.
    let sidecar_path = std::path::Path::new(&wav).with_extension("json");
    let sidecar: wacall::call_record::CallRecord =
        serde_json::from_str(&std::fs::read_to_string(&sidecar_path).unwrap()).unwrap();
    // The history writer thread stores the final row on its own time: wait for it.
    let row = rig
        .history_row_when(&call_id, Duration::from_secs(5), |r| {
            r.recording.is_some() && r.quality == sidecar.quality
        })
        .await;
    assert_eq!(sidecar.call_id, row.call_id);
    assert_eq!(sidecar.customer, row.customer);
    assert_eq!(sidecar.caller_name, row.caller_name);
    assert_eq!(sidecar.edge, row.edge);
    assert_eq!(sidecar.offered_at, row.offered_at);
    assert_eq!(sidecar.accepted_at, row.accepted_at);
    assert_eq!(sidecar.end_reason, row.end_reason);
    assert_eq!(sidecar.recording, row.recording);
    assert_eq!(sidecar.quality, row.quality);

    // Quality over time: the bot's 2 s reports are kept per call, with the levels heard and
    // said; its token reads them, a token that held no part of the call does not.
    let http = reqwest::Client::new();
    let url = format!("{}/calls/{call_id}/quality", rig.bridge.url());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let samples: Vec<wacall::call_record::QualitySample> = loop {
        // The in-process bot has no token of its own: read its call's samples from history.
        let got: Vec<wacall::call_record::QualitySample> = if local {
            wacall::bridge::history::History::open(&rig.db)
                .unwrap()
                .samples(&call_id)
                .unwrap()
        } else {
            http.get(&url)
                .bearer_auth(EDGE_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        };
        if got.iter().any(|s| s.packets_received > 0) {
            break got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no quality samples: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        samples
            .iter()
            .any(|s| s.level_in_dbfs.is_some_and(|l| l > -50.0)
                && s.level_out_dbfs.is_some_and(|l| l > -50.0)),
        "{samples:?}"
    );
    assert!(samples.windows(2).all(|w| w[0].at <= w[1].at));
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    rig.stop().await;
}

async fn business_calls_a_user_tones_cross_and_the_bot_hangs_up(provider: Provider) {
    let mut bot = bot_config(&std::env::temp_dir().join(format!("wacall-e2e-2-{provider}")));
    bot.max_duration = Some(Duration::from_secs(4));
    let rig = Rig::start_as(provider, Some(bot), CallTimeouts::default()).await;
    rig.sandbox.world.set_default_plan(UserPlan {
        answer_after: Duration::from_millis(500),
        tone_hz: 520.0,
        ..UserPlan::default()
    });
    let call_id = rig.dial("5215587654321").await.unwrap();
    let record = rig.wait_ended(&call_id, Duration::from_secs(20)).await;
    assert_eq!(
        rig.actions(&call_id),
        vec!["terminate"],
        "connect has no call id in the log; then terminate"
    );
    assert_eq!(record.end_reason.as_deref(), Some("business_hangup"));
    assert_eq!(record.answered_by.as_deref(), Some("customer"));
    let user = rig.sandbox.world.report(&call_id).unwrap();
    assert_eq!(user.ended_by.as_deref(), Some("business"));
    assert!(
        user.voice.heard_hz.is_some_and(|h| near(h, 880.0)),
        "user heard {:?}",
        user.voice.heard_hz
    );
    let wav = record.recording.clone().expect("a recording");
    let (left, right) = read_stereo(std::path::Path::new(&wav));
    assert!(near(dominant_frequency(middle(&left), RATE), 520.0));
    assert!(near(dominant_frequency(middle(&right), RATE), 880.0));
    rig.stop().await;
}

async fn user_rejects_the_business_call(provider: Provider) {
    let rig = Rig::start_as(
        provider,
        Some(bot_config(
            &std::env::temp_dir().join(format!("wacall-e2e-3-{provider}")),
        )),
        CallTimeouts::default(),
    )
    .await;
    rig.sandbox.world.set_default_plan(UserPlan {
        answer_after: Duration::from_millis(300),
        reject: true,
        ..UserPlan::default()
    });
    let (call_id, mut progress) = rig.dial_watching("5215500000077").await;
    let call_id = call_id.unwrap();
    let record = rig.wait_ended(&call_id, Duration::from_secs(15)).await;
    assert_eq!(record.end_reason.as_deref(), Some("rejected_by_customer"));
    assert!(record.accepted_at.is_none());
    // What the dialer shows live, in order.
    let mut seen = Vec::new();
    while let Ok(p) = progress.try_recv() {
        seen.push(p);
    }
    assert_eq!(
        seen,
        vec!["ringing", "rejected", "ended: rejected_by_customer"]
    );
    rig.stop().await;
}

async fn call_without_permission_fails_plainly_and_is_not_retried(provider: Provider) {
    let rig = Rig::start_as(
        provider,
        Some(bot_config(
            &std::env::temp_dir().join(format!("wacall-e2e-4-{provider}")),
        )),
        CallTimeouts::default(),
    )
    .await;
    rig.sandbox
        .world
        .faults()
        .no_permission
        .insert("5215500000099".into());
    let err = rig.dial("5215500000099").await.unwrap_err();
    assert!(err.contains("has not allowed calls"), "{err}");
    let received = rig.sandbox.received();
    let connects = received.iter().filter(|r| r.action == "connect").count();
    match provider {
        // The BSP has no permission check: connect is refused (#138006), and not retried.
        Provider::Bsp => assert_eq!(connects, 1, "a permanent provider error is not retried"),
        // Meta's check comes first: nothing is dialled.
        Provider::Meta => {
            assert_eq!(connects, 0, "the permission check came first");
            assert!(received.iter().any(|r| r.action == "call_permissions"));
            assert!(err.contains("call-permission request"), "{err}");
        }
    }
    let bad = rig.dial("not-a-number").await.unwrap_err();
    assert!(bad.contains("to:"), "{bad}");
    rig.stop().await;
}

/// An edge that takes calls and never answers them: the call goes to the next edge, and with
/// none left it is rejected at the BSP.
async fn edge_that_never_answers_then_reject(provider: Provider) {
    let timeouts = CallTimeouts {
        ring: Duration::from_millis(800),
        ..CallTimeouts::default()
    };
    let rig = Rig::start_as(provider, None, timeouts).await;
    let mut silent = Vec::new();
    for name in ["agent-a", "agent-b"] {
        let conn = wacall::edge::hub_client::connect(
            &rig.bridge.hub_url(),
            EDGE_TOKEN,
            name,
            wacall::hub_protocol::EdgeKind::Agent,
        )
        .await
        .unwrap();
        silent.push(conn);
    }
    rig.bridge
        .wait_for_edges(2, Duration::from_secs(5))
        .await
        .unwrap();
    let call_id = rig
        .sandbox
        .world
        .place_user_call(UserCall {
            user: "5215500000055".into(),
            name: "Eva".into(),
            tone_hz: 440.0,
            hangup_after: None,
        })
        .await
        .unwrap();
    let record = rig.wait_ended(&call_id, Duration::from_secs(10)).await;
    assert_eq!(record.end_reason.as_deref(), Some("no_edge_available"));
    assert_eq!(rig.actions(&call_id), vec!["reject"]);
    // Both agents were offered the call, one after the other, and told when it moved on.
    for conn in &mut silent {
        let mut got_incoming = false;
        while let Ok(m) = conn.rx.try_recv() {
            if matches!(m, wacall::hub_protocol::HubMessage::Incoming { .. }) {
                got_incoming = true;
            }
        }
        assert!(got_incoming);
    }
    assert_eq!(
        rig.sandbox.world.report(&call_id).unwrap().state,
        SimState::Ended
    );
    rig.stop().await;
}

/// ICE never connects: the bot gives up, the bridge terminates at the BSP, media is freed.
async fn call_whose_ice_never_connects_is_terminated(provider: Provider) {
    let rig = Rig::start_as(
        provider,
        Some(bot_config(
            &std::env::temp_dir().join(format!("wacall-e2e-6-{provider}")),
        )),
        CallTimeouts::default(),
    )
    .await;
    rig.sandbox.world.faults().unreachable_media = true;
    let call_id = rig
        .sandbox
        .world
        .place_user_call(UserCall {
            user: "5215500000066".into(),
            name: "Ivo".into(),
            tone_hz: 440.0,
            hangup_after: None,
        })
        .await
        .unwrap();
    let record = rig.wait_ended(&call_id, Duration::from_secs(20)).await;
    assert!(
        record
            .end_reason
            .as_deref()
            .unwrap_or("")
            .starts_with("media_failed"),
        "{record:?}"
    );
    assert_eq!(
        rig.actions(&call_id).last().map(String::as_str),
        Some("terminate")
    );
    assert_eq!(
        rig.sandbox.world.report(&call_id).unwrap().state,
        SimState::Ended
    );
    rig.stop().await;
}

/// The user's phone stops sending audio mid-call but never hangs up (ICE stays up): the bot
/// notices the silence, the bridge terminates at the BSP and closes the row.
async fn a_call_gone_silent_is_ended_by_the_bot(provider: Provider) {
    let mut bot = bot_config(&std::env::temp_dir().join(format!("wacall-e2e-silent-{provider}")));
    bot.media_deadlines.silence = Duration::from_secs(3);
    let rig = Rig::start_as(provider, Some(bot), CallTimeouts::default()).await;
    let call_id = rig
        .sandbox
        .world
        .place_user_call(UserCall {
            user: "5215500000067".into(),
            name: "Lia".into(),
            tone_hz: 440.0,
            hangup_after: None,
        })
        .await
        .unwrap();
    // Talking first: the silence clock must not fire while audio flows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = rig.sandbox.world.report(&call_id).unwrap();
        if r.state == SimState::Active && r.voice.packets_sent >= 250 {
            break;
        }
        assert!(r.state != SimState::Ended, "ended while talking: {r:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "never talked: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.sandbox.world.user_falls_silent(&call_id).unwrap();
    let record = rig.wait_ended(&call_id, Duration::from_secs(15)).await;
    let reason = record.end_reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("media_failed") && reason.contains("no RTP"),
        "{record:?}"
    );
    assert_eq!(
        rig.actions(&call_id).last().map(String::as_str),
        Some("terminate")
    );
    assert_eq!(
        rig.sandbox.world.report(&call_id).unwrap().state,
        SimState::Ended
    );
    rig.stop().await;
}

/// WhatsApp may send every webhook twice: still one pre_accept, one accept, one call.
async fn duplicate_webhooks_make_one_call(provider: Provider) {
    let rig = Rig::start_as(
        provider,
        Some(bot_config(
            &std::env::temp_dir().join(format!("wacall-e2e-7-{provider}")),
        )),
        CallTimeouts::default(),
    )
    .await;
    rig.sandbox.world.faults().duplicate_webhooks = true;
    let call_id = rig
        .sandbox
        .world
        .place_user_call(UserCall {
            user: "5215500000044".into(),
            name: "Duo".into(),
            tone_hz: 440.0,
            hangup_after: Some(Duration::from_secs(2)),
        })
        .await
        .unwrap();
    let record = rig.wait_ended(&call_id, Duration::from_secs(15)).await;
    assert_eq!(rig.actions(&call_id), vec!["pre_accept", "accept"]);
    assert_eq!(record.end_reason.as_deref(), Some("customer_hangup"));
    rig.stop().await;
}

/// A terminate that overtakes its own connect webhook: the call ends cleanly, never accepted.
async fn reordered_terminate_before_connect(provider: Provider) {
    let rig = Rig::start_as(
        provider,
        Some(bot_config(
            &std::env::temp_dir().join(format!("wacall-e2e-8-{provider}")),
        )),
        CallTimeouts::default(),
    )
    .await;
    let biz = wacall::sandbox::demo::demo_business();
    let user = "5215500000033";
    let id = "wacid.REORDERED1";
    let offer = wacall::media::MediaSession::new(
        &wacall::media::MediaConfig {
            ice_lite: true,
            ..wacall::media::MediaConfig::loopback()
        },
        id,
    )
    .await
    .unwrap()
    .create_offer()
    .await
    .unwrap();
    rig.sandbox
        .world
        .post_webhook(&wacall::sandbox::webhooks::terminate(
            &biz,
            id,
            user,
            true,
            "COMPLETED",
            None,
        ))
        .await;
    rig.sandbox
        .world
        .post_webhook(&wacall::sandbox::webhooks::user_call(
            &biz, id, user, "Late", &offer,
        ))
        .await;
    let record = rig.wait_ended(id, Duration::from_secs(10)).await;
    assert_eq!(record.end_reason.as_deref(), Some("caller_cancelled"));
    assert!(record.accepted_at.is_none());
    assert!(!rig.actions(id).contains(&"accept".to_string()));
    rig.stop().await;
}

/// A webhook with a forged signature is refused with 401 and creates no call.
async fn forged_signature_is_refused(provider: Provider) {
    let rig = Rig::start_as(provider, None, CallTimeouts::default()).await;
    let biz = wacall::sandbox::demo::demo_business();
    let body = wacall::sandbox::webhooks::user_call(
        &biz,
        "wacid.FORGED",
        "5215500000011",
        "Eve",
        "v=0\r\n",
    )
    .to_string();
    let url = format!("{}/webhook", rig.bridge.url());
    let http = reqwest::Client::new();
    let forged = wacall::webhook::sign(b"not-the-app-secret", body.as_bytes());
    for sig in [Some(forged.as_str()), None, Some("sha256=zz")] {
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(s) = sig {
            req = req.header("x-hub-signature-256", s);
        }
        assert_eq!(req.send().await.unwrap().status().as_u16(), 401);
    }
    // Oversized bodies are refused before anything is parsed.
    let big = vec![b'x'; 300 * 1024];
    let r = http
        .post(&url)
        .header(
            "x-hub-signature-256",
            wacall::webhook::sign(common::APP_SECRET.as_bytes(), &big),
        )
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // The verification handshake.
    let ok = http
        .get(format!(
            "{url}?hub.mode=subscribe&hub.verify_token=sandbox-verify&hub.challenge=12345"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "12345");
    let bad = http
        .get(format!(
            "{url}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 403);
    // Each refusal was answered only after the bridge had decided not to act on it, so
    // nothing can still be on its way to the registry or the BSP.
    assert!(rig.bridge.record("wacid.FORGED").is_none());
    assert!(rig.sandbox.received().is_empty());
    let metrics = http
        .get(format!("{}/metrics", rig.bridge.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("wacall_webhook_errors_total{kind=\"signature\"} 3"),
        "{metrics}"
    );
    rig.stop().await;
}

/// Hardening: a second edge with a valid token tries to end, finish, fail, key and report on
/// a live call the in-process bot holds. Each message is refused and counted; the call goes on
/// and nothing reaches the BSP.
async fn another_edge_cannot_act_on_a_call_it_does_not_hold(provider: Provider) {
    use wacall::call_record::QualitySummary;
    use wacall::hub_protocol::{EdgeKind, EdgeMessage};
    let rig = Rig::start_linked_as(
        provider,
        Some(bot_config(
            &std::env::temp_dir().join(format!("wacall-e2e-intruder-{provider}")),
        )),
        CallTimeouts::default(),
        true,
    )
    .await;
    let intruder = wacall::edge::hub_client::connect(
        &rig.bridge.hub_url(),
        EDGE_TOKEN,
        "serve-bot",
        EdgeKind::Bot,
    )
    .await
    .unwrap();
    let call_id = rig
        .sandbox
        .world
        .place_user_call(UserCall {
            user: "5215512349999".into(),
            name: "Eva".into(),
            tone_hz: 440.0,
            hangup_after: None,
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rig.sandbox.world.report(&call_id).map(|r| r.state) != Some(SimState::Active) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never became active"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = call_id.clone();
    for msg in [
        EdgeMessage::Hangup {
            call_id: id.clone(),
        },
        EdgeMessage::Finished {
            call_id: id.clone(),
            quality: QualitySummary::default(),
            recording: Some("/tmp/forged.wav".into()),
        },
        EdgeMessage::MediaFailed {
            call_id: id.clone(),
            reason: "forged".into(),
            offer_refused: true,
        },
        EdgeMessage::Dtmf {
            call_id: id.clone(),
            digit: '9',
        },
        EdgeMessage::Stats {
            call_id: id.clone(),
            stats: Default::default(),
        },
    ] {
        intruder.tx.send(msg).await.unwrap();
    }
    // The refusals are counted: wait for all five, with a deadline (no fixed sleep).
    metric(
        &rig.bridge.url(),
        "wacall_edge_refused_total 5",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let user = rig.sandbox.world.report(&call_id).unwrap();
    assert_eq!(user.state, SimState::Active, "the call must go on");
    assert_eq!(rig.actions(&call_id), vec!["pre_accept", "accept"]);
    let record = rig.bridge.record(&call_id).unwrap();
    assert_eq!(record.dtmf, "", "the intruder's key is not the customer's");
    assert!(
        record.recording.is_none() && record.end_reason.is_none(),
        "{record:?}"
    );
    rig.sandbox.world.user_hangs_up(&call_id).await;
    let record = rig.wait_ended(&call_id, Duration::from_secs(20)).await;
    assert_eq!(record.end_reason.as_deref(), Some("customer_hangup"));
    assert_ne!(record.recording.as_deref(), Some("/tmp/forged.wav"));
    rig.stop().await;
}

async fn metric(bridge_url: &str, line: &str, within: Duration) -> Result<(), String> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let text = http
            .get(format!("{bridge_url}/metrics"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        if text.lines().any(|l| l == line) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(text);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Hardening: a correctly signed connect webhook an hour old is acknowledged but not answered;
/// a call id already in history (here: after the bridge restarted) never becomes a new call.
async fn replayed_connect_webhooks_never_become_calls(provider: Provider) {
    use wacall::sandbox::webhooks;
    let rig = Rig::start_as(provider, None, CallTimeouts::default()).await;
    let biz = rig.sandbox.world.business().clone();
    let offer = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sdp/whatsapp-wideband-offer.sdp"),
    )
    .unwrap();
    let mut old = webhooks::user_call(&biz, "wacid.REPLAY-OLD", "5215500001111", "Old", &offer);
    let hour_ago = chrono::Utc::now().timestamp() - 3600;
    old["entry"][0]["changes"][0]["value"]["calls"][0]["timestamp"] = hour_ago.to_string().into();
    rig.sandbox.world.post_webhook(&old).await;
    metric(
        &rig.bridge.url(),
        "wacall_webhook_errors_total{kind=\"stale_offer\"} 1",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(rig.bridge.record("wacid.REPLAY-OLD").is_none());
    assert!(rig.actions("wacid.REPLAY-OLD").is_empty());

    // A fresh call (no edge: rejected), in history; then the bridge restarts on the same
    // database and the same webhook arrives again.
    let fresh = webhooks::user_call(&biz, "wacid.REPLAY-1", "5215500002222", "Fresh", &offer);
    rig.sandbox.world.post_webhook(&fresh).await;
    // Rejected at the BSP, and its row closed on disk.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rig.actions("wacid.REPLAY-1").is_empty()
        || rig
            .bridge
            .history_row("wacid.REPLAY-1")
            .is_none_or(|r| r.end_reason.is_none())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not rejected and recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rig.actions("wacid.REPLAY-1"), vec!["reject"]);
    let common::Rig {
        sandbox,
        bridge,
        db,
        ..
    } = rig;
    let addr = bridge.addr;
    bridge.shutdown().await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let cfg = sandbox.bridge_config(vec![wacall::secret::Secret::new(EDGE_TOKEN)], Some(db));
    let bridge = wacall::bridge::Bridge::start_on(listener, cfg)
        .await
        .unwrap();
    sandbox.world.post_webhook(&fresh).await;
    metric(
        &bridge.url(),
        "wacall_webhook_errors_total{kind=\"stale_offer\"} 1",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let actions: Vec<String> = sandbox
        .received()
        .into_iter()
        .filter(|r| r.call_id.as_deref() == Some("wacid.REPLAY-1"))
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, vec!["reject"], "the replay was answered again");
    bridge.shutdown().await;
    sandbox.shutdown().await;
}

/// Hardening: no bridge starts without an app secret (it would accept forged webhooks): the
/// path `serve`, standalone `dial`, the sandbox and the tests all share.
async fn a_bridge_without_an_app_secret_does_not_start(provider: Provider) {
    let (sandbox, bridge) = common::sandbox_and_bridge_as(provider, None, |cfg| {
        cfg.app_secret = wacall::secret::Secret::new("");
    })
    .await;
    let err = bridge.err().expect("started without an app secret");
    assert!(
        err.to_string().contains("webhook.app_secret is empty"),
        "{err}"
    );
    sandbox.shutdown().await;
}

/// Hardening: the token decides who an edge is. An agent's token names it whatever it says in
/// hello, and it may not dial when its identity says so; a supervisor's token reads every call
/// but cannot connect as an edge; `/calls` shows an agent only its own calls.
async fn tokens_decide_identity_and_what_calls_an_edge_can_read(provider: Provider) {
    use wacall::bridge::identity::Role;
    use wacall::hub_protocol::{EdgeKind, EdgeMessage, HubMessage};

    let dir = std::env::temp_dir().join(format!("wacall-e2e-ids-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let (sandbox, bridge) =
        common::sandbox_and_bridge_as(provider, Some(dir.join("h.db")), |cfg| {
            cfg.edges = vec![
                common::identity("ana", Role::Agent, "tok-ana"),
                common::identity("qa", Role::Supervisor, "tok-qa"),
            ];
        })
        .await;
    let bridge = bridge.unwrap();
    let hub = bridge.hub_url();

    // A supervisor's token is not an edge's.
    let refused = wacall::edge::hub_client::connect(&hub, "tok-qa", "qa", EdgeKind::Agent).await;
    assert!(refused.is_err(), "a supervisor token joined the hub");
    // An agent's token names the edge, whatever hello says; and it may not dial.
    let mut ana = wacall::edge::hub_client::connect(&hub, "tok-ana", "e2e-bot", EdgeKind::Bot)
        .await
        .unwrap();
    assert!(ana.edge_id.starts_with("ana-"), "{}", ana.edge_id);
    ana.tx
        .send(EdgeMessage::Available { available: false })
        .await
        .unwrap();
    ana.tx
        .send(EdgeMessage::Dial {
            request_id: "r1".into(),
            to: "5215512340001".into(),
            sdp: "v=0\r\n".into(),
            meta_record: None,
            meta_transcribe: None,
        })
        .await
        .unwrap();
    let refusal = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ana.rx.recv().await {
                Some(HubMessage::Error { message, .. }) => return message,
                Some(_) => continue,
                None => panic!("the hub closed"),
            }
        }
    })
    .await
    .unwrap();
    assert!(refusal.contains("may not place calls"), "{refusal}");

    // A bot on a legacy token takes a call, which ends.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (_cmd, cmd_rx) = tokio::sync::mpsc::channel(1);
    let bot = bot_config(&dir);
    let bot_task = tokio::spawn(async move {
        wacall::bot::runner::run(bot, &hub, EDGE_TOKEN, cmd_rx, stop_rx)
            .await
            .unwrap()
    });
    bridge
        .wait_for_edges(2, Duration::from_secs(5))
        .await
        .unwrap();
    let call_id = sandbox
        .world
        .place_user_call(UserCall {
            user: "5215512340002".into(),
            name: "Lia".into(),
            tone_hz: 440.0,
            hangup_after: Some(Duration::from_secs(1)),
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while bridge
        .history_row(&call_id)
        .is_none_or(|r| r.end_reason.is_none())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let http = reqwest::Client::new();
    let calls = |token: &'static str| {
        let (http, url) = (http.clone(), format!("{}/calls", bridge.url()));
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            let status = r.status().as_u16();
            let ids: Vec<String> = if status == 200 {
                r.json::<Vec<serde_json::Value>>()
                    .await
                    .unwrap()
                    .iter()
                    .map(|c| c["call_id"].as_str().unwrap().to_string())
                    .collect()
            } else {
                vec![]
            };
            (status, ids)
        }
    };
    assert_eq!(
        calls("tok-qa").await,
        (200, vec![call_id.clone()]),
        "supervisor"
    );
    assert_eq!(
        calls("tok-ana").await,
        (200, vec![]),
        "another agent's calls"
    );
    assert_eq!(
        calls(EDGE_TOKEN).await,
        (200, vec![call_id.clone()]),
        "the bot's own"
    );
    assert_eq!(calls("nope").await.0, 401);
    // A call's quality timeline: the same rule (another agent learns nothing, not even that
    // the call exists).
    let quality = |token: &'static str| {
        let (http, url) = (
            http.clone(),
            format!("{}/calls/{call_id}/quality", bridge.url()),
        );
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(quality("tok-qa").await, 200, "supervisor");
    assert_eq!(quality(EDGE_TOKEN).await, 200, "the bot's own");
    assert_eq!(quality("tok-ana").await, 404, "another agent's call");
    let _ = stop.send(true);
    let _ = bot_task.await;
    bridge.shutdown().await;
    sandbox.shutdown().await;
}

/// A CA and a certificate for 127.0.0.1 made with openssl: (ca.pem, cert.pem, key.pem).
fn test_certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=wacall test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// Hardening: the bridge terminates TLS itself (server.tls_cert / tls_key). An edge joins over
/// wss:// trusting a private CA, and not without it; webhooks and /health are served over
/// https; plain http to the TLS port gets nothing.
async fn the_bridge_serves_tls_and_edges_connect_over_wss(provider: Provider) {
    use wacall::hub_protocol::EdgeKind;
    let dir = std::env::temp_dir().join(format!("wacall-e2e-tls-{:016x}", rand::random::<u64>()));
    let (ca, cert, key) = test_certificates(&dir);
    let (sandbox, bridge) =
        common::sandbox_and_bridge_as(provider, None, |cfg| cfg.tls = Some((cert, key))).await;
    let bridge = bridge.unwrap();
    let addr = bridge.addr;
    assert!(
        bridge.hub_url().starts_with("wss://"),
        "{}",
        bridge.hub_url()
    );

    let trusted = wacall::edge::tls::client_config(Some(&ca)).unwrap();
    let edge = wacall::edge::hub_client::connect_with(
        &bridge.hub_url(),
        EDGE_TOKEN,
        "tls-bot",
        EdgeKind::Bot,
        Some(trusted),
    )
    .await
    .unwrap();
    assert!(edge.edge_id.starts_with("tls-bot-"));
    let untrusted = wacall::edge::tls::client_config(None).unwrap();
    let refused = wacall::edge::hub_client::connect_with(
        &bridge.hub_url(),
        EDGE_TOKEN,
        "tls-bot",
        EdgeKind::Bot,
        Some(untrusted),
    )
    .await;
    assert!(refused.is_err(), "an unknown CA was trusted");

    let pem = std::fs::read(&ca).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let health: serde_json::Value = https
        .get(format!("{}/health", bridge.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["edges"], 1, "{health}");
    let unsigned = https
        .post(format!("{}/webhook", bridge.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let plain = reqwest::get(format!("http://{addr}/health")).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    drop(edge);
    bridge.shutdown().await;
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hardening: past server.max_connections a new connection gets 503 at once; a client that
/// sends no headers within server.header_timeout_s is cut off, which frees its place.
async fn connections_are_limited_and_slow_clients_cut_off(provider: Provider) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (sandbox, bridge) = common::sandbox_and_bridge_as(provider, None, |cfg| {
        cfg.max_connections = 2;
        cfg.header_timeout = Duration::from_millis(700);
    })
    .await;
    let bridge = bridge.unwrap();
    let addr = bridge.addr;
    let idle = [
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        tokio::net::TcpStream::connect(addr).await.unwrap(),
    ];
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(2), third.read_to_string(&mut answer))
        .await
        .expect("no answer past the limit")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    // The idle two are closed by the header timeout; then a request gets through.
    for mut s in idle {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf))
            .await
            .expect("an idle connection was not cut off");
        assert!(n.is_ok());
    }
    let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    ok.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    metric(
        &bridge.url(),
        "wacall_http_shed_total 1",
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    bridge.shutdown().await;
    sandbox.shutdown().await;
}

/// Hardening: a `connect` whose reply never came (the BSP made the call but its answer was
/// lost or late) leaves a call at WhatsApp nobody carries. Its first webhook echoes our
/// `biz_opaque_callback_data`; the bridge recognises it and terminates the call.
async fn a_call_whose_connect_reply_was_lost_is_terminated(provider: Provider) {
    use wacall::bot::runner::{self, BotCommand};
    let (sandbox, bridge) =
        common::sandbox_and_bridge_as(provider, None, |cfg| cfg.bsp.timeout_ms = 400).await;
    let bridge = bridge.unwrap();
    sandbox.world.faults().connect_reply_delay = Some(Duration::from_millis(1500));
    sandbox.world.set_default_plan(UserPlan {
        answer_after: Duration::from_secs(30),
        ..UserPlan::default()
    });
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (cmd, cmd_rx) = tokio::sync::mpsc::channel(1);
    let hub = bridge.hub_url();
    let bot = bot_config(&std::env::temp_dir().join(format!("wacall-e2e-lost-{provider}")));
    let task = tokio::spawn(async move {
        runner::run(bot, &hub, EDGE_TOKEN, cmd_rx, stop_rx)
            .await
            .unwrap()
    });
    bridge
        .wait_for_edges(1, Duration::from_secs(5))
        .await
        .unwrap();
    let (done, done_rx) = tokio::sync::oneshot::channel();
    cmd.send(BotCommand::Dial {
        to: "5215512340077".into(),
        options: Default::default(),
        done: Some(done),
        progress: None,
    })
    .await
    .unwrap();
    let dialed = tokio::time::timeout(Duration::from_secs(10), done_rx)
        .await
        .unwrap()
        .unwrap();
    assert!(
        dialed.is_err(),
        "the connect reply came in time: {dialed:?}"
    );
    metric(
        &bridge.url(),
        "wacall_lost_connects_ended_total 1",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let terminated = || {
        sandbox
            .received()
            .into_iter()
            .filter(|r| r.action == "terminate")
            .filter_map(|r| r.call_id)
            .collect::<Vec<String>>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while terminated().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lost call was not terminated at the BSP"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(terminated().len(), 1);
    let _ = stop.send(true);
    let _ = task.await;
    bridge.shutdown().await;
    sandbox.shutdown().await;
}

/// Hardening: an edge placing calls in a loop gets its excess refused (5 at once, then one
/// every 2 s), counted in /metrics; its first dials still go out.
async fn an_edge_dialling_in_a_loop_is_rate_limited(provider: Provider) {
    use wacall::hub_protocol::{EdgeKind, EdgeMessage, HubMessage};
    let rig = Rig::start_as(provider, None, CallTimeouts::default()).await;
    let mut edge = wacall::edge::hub_client::connect(
        &rig.bridge.hub_url(),
        EDGE_TOKEN,
        "looper",
        EdgeKind::Bot,
    )
    .await
    .unwrap();
    for i in 0..20 {
        edge.tx
            .send(EdgeMessage::Dial {
                request_id: format!("r{i}"),
                to: format!("52155123411{i:02}"),
                sdp: "v=0\r\n".into(),
                meta_record: None,
                meta_transcribe: None,
            })
            .await
            .unwrap();
    }
    let mut limited = 0;
    let mut other = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while limited + other < 20 {
        match tokio::time::timeout_at(deadline, edge.rx.recv()).await {
            Ok(Some(HubMessage::Error { message, .. })) if message.contains("too many calls") => {
                limited += 1
            }
            Ok(Some(HubMessage::Error { .. })) => other += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    // The burst of 5 goes out (a sixth only if sending took over 2 s on a loaded machine).
    assert!(
        (5..=6).contains(&other) && other + limited == 20,
        "{other} sent, {limited} refused"
    );
    metric(
        &rig.bridge.url(),
        &format!("wacall_edge_rate_limited_total {limited}"),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    rig.stop().await;
}

/// Hardening: the hub pings its edges; one that stops answering (half-open: no pong, no
/// message) is dropped after the silence limit, while a live edge stays.
async fn a_half_open_edge_is_dropped_and_a_live_one_kept(provider: Provider) {
    use futures_util::{SinkExt, StreamExt};
    use wacall::hub_protocol::{EdgeKind, EdgeMessage};
    let (sandbox, bridge) = common::sandbox_and_bridge_as(provider, None, |cfg| {
        cfg.edge_liveness = wacall::bridge::hub::Liveness {
            every: Duration::from_millis(200),
            silence: Duration::from_millis(1500),
        };
    })
    .await;
    let bridge = bridge.unwrap();
    let live =
        wacall::edge::hub_client::connect(&bridge.hub_url(), EDGE_TOKEN, "live", EdgeKind::Bot)
            .await
            .unwrap();
    // A raw client that says hello, reads the welcome, then reads nothing more (so it answers
    // no ping), as a peer behind a dead NAT mapping would.
    let (mut ws, _) = tokio_tungstenite::connect_async(bridge.hub_url())
        .await
        .unwrap();
    let hello = EdgeMessage::Hello {
        token: EDGE_TOKEN.into(),
        name: "half-open".into(),
        kind: EdgeKind::Bot,
    };
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        serde_json::to_string(&hello).unwrap(),
    ))
    .await
    .unwrap();
    let _welcome = ws.next().await.unwrap().unwrap();
    let edges = || {
        let url = format!("{}/health", bridge.url());
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["edges"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(edges().await, 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while edges().await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent edge was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The live edge (its reader answers pings) is still there well after the limit.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(edges().await, 1);
    drop(live);
    drop(ws);
    bridge.shutdown().await;
    sandbox.shutdown().await;
}

/// The queue: one agent, five callers. The first talks; the second and third wait and reach
/// the agent in order; the fourth hangs up while waiting; the fifth's wait runs out and the
/// voicemail bot (the overflow edge) records its message. Waits are read from history.
async fn callers_wait_in_order_abandon_or_overflow_to_voicemail(provider: Provider) {
    use wacall::bridge::identity::{EdgeIdentity, Role};
    use wacall::secret::Secret;
    let dir = std::env::temp_dir().join(format!("wacall-e2e-queue-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let (sandbox, bridge) =
        common::sandbox_and_bridge_as(provider, Some(dir.join("h.db")), |cfg| {
            cfg.timeouts.queue = Duration::from_secs(10);
            cfg.overflow = Some("voicemail".into());
            cfg.edges = ["agent", "voicemail"]
                .into_iter()
                .map(|name| EdgeIdentity {
                    name: name.into(),
                    role: if name == "agent" {
                        Role::Agent
                    } else {
                        Role::Bot
                    },
                    token: Secret::new(format!("tok-{name}")),
                    may_dial: false,
                    max_calls: Some(if name == "agent" { 1 } else { 10 }),
                })
                .collect();
        })
        .await;
    let bridge = bridge.unwrap();
    let (stop, _) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (name, hz) in [("agent", 880.0), ("voicemail", 660.0)] {
        let mut bot = bot_config(&dir.join(name));
        bot.name = name.into();
        bot.tone_hz = Some(hz);
        let (hub, stop_rx) = (bridge.hub_url(), stop.subscribe());
        let (_cmd, cmd_rx) = tokio::sync::mpsc::channel(1);
        tasks.push(tokio::spawn(async move {
            let _keep = _cmd;
            wacall::bot::runner::run(bot, &hub, &format!("tok-{name}"), cmd_rx, stop_rx)
                .await
                .unwrap()
        }));
    }
    bridge
        .wait_for_edges(2, Duration::from_secs(5))
        .await
        .unwrap();
    // (placed at, hangs up after placement): 1 talks 0–4 s; 2 and 3 queue; 4 gives up at 3 s;
    // 5's 10 s wait runs out at ~11.8 s while 3 still talks (to ~13.5 s).
    let plan: [(u64, u64, f32); 5] = [
        (0, 4_000, 440.0),
        (500, 7_500, 450.0),
        (1_000, 12_500, 460.0),
        (1_500, 1_500, 470.0),
        (1_800, 16_000, 700.0),
    ];
    let t0 = tokio::time::Instant::now();
    let mut ids = Vec::new();
    for (i, (at, hangup, hz)) in plan.iter().enumerate() {
        tokio::time::sleep_until(t0 + Duration::from_millis(*at)).await;
        let id = sandbox
            .world
            .place_user_call(UserCall {
                user: format!("52155000007{i:02}"),
                name: format!("Caller {}", i + 1),
                tone_hz: *hz,
                hangup_after: Some(Duration::from_millis(*hangup)),
            })
            .await
            .unwrap();
        ids.push(id);
    }
    let mut rows = Vec::new();
    for id in &ids {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let row = loop {
            if let Some(r) = bridge.history_row(id).filter(|r| {
                r.end_reason.is_some() && (r.pre_accepted_at.is_none() || r.recording.is_some())
            }) {
                break r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} never finished"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        rows.push(row);
    }
    let edge = |r: &wacall::call_record::CallRecord| r.edge.clone().unwrap_or_default();
    // 1 straight to the agent; 2 and 3 after waiting, in order.
    assert!(edge(&rows[0]).starts_with("agent"), "{:?}", rows[0]);
    assert_eq!(rows[0].queue_wait_s, None);
    for r in &rows[1..3] {
        assert!(edge(r).starts_with("agent"), "{r:?}");
        assert_eq!(r.end_reason.as_deref(), Some("customer_hangup"), "{r:?}");
    }
    let (w2, w3) = (rows[1].queue_wait_s.unwrap(), rows[2].queue_wait_s.unwrap());
    assert!(
        (2..=6).contains(&w2) && (5..=9).contains(&w3),
        "waits {w2} s, {w3} s"
    );
    assert!(
        rows[1].accepted_at < rows[2].accepted_at,
        "served out of order"
    );
    // 4 hung up in the queue: never answered, nothing recorded.
    assert_eq!(rows[3].end_reason.as_deref(), Some("caller_abandoned"));
    assert_eq!(rows[3].pre_accepted_at, None);
    // 5 overflowed to the voicemail bot, which recorded the caller's 700 Hz.
    assert!(edge(&rows[4]).starts_with("voicemail"), "{:?}", rows[4]);
    assert!(rows[4].overflow.is_some(), "{:?}", rows[4]);
    let (left, _) = read_stereo(std::path::Path::new(rows[4].recording.as_deref().unwrap()));
    assert!(near(dominant_frequency(middle(&left), RATE), 700.0));
    let url = bridge.url();
    assert_eq!(
        common::metric_value(&url, "wacall_queue_abandoned_total").await,
        1.0
    );
    assert_eq!(
        common::metric_value(&url, "wacall_queue_overflowed_total").await,
        1.0
    );
    assert_eq!(common::metric_value(&url, "wacall_queue_length").await, 0.0);
    eprintln!("queue waits: caller 2 {w2} s, caller 3 {w3} s");
    let _ = stop.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    bridge.shutdown().await;
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Groups and hours: a caller from Mexico (52) reaches the Mexico group's agent, anyone else
/// the default group's; a caller whose group has nobody signed in, and every caller outside the
/// number's business hours, go straight to the voicemail bot, with the reason in history; with
/// a night team (an `outside_hours` group) the closed hours go to it instead.
async fn groups_pick_the_agent_and_closed_hours_send_callers_to_voicemail(provider: Provider) {
    use chrono::Datelike;
    use wacall::bridge::identity::{EdgeIdentity, Role};
    use wacall::config::GroupConfig;
    use wacall::secret::Secret;
    let dir = std::env::temp_dir().join(format!("wacall-e2e-groups-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let identity = |name: &str, role| EdgeIdentity {
        name: name.into(),
        role,
        token: Secret::new(format!("tok-{name}")),
        may_dial: false,
        max_calls: Some(5),
    };
    let groups = vec![
        GroupConfig {
            name: "mx".into(),
            members: vec!["ana".into()],
            countries: vec!["52".into()],
            default: false,
            outside_hours: false,
        },
        GroupConfig {
            name: "uk".into(),
            members: vec!["uma".into()],
            countries: vec!["44".into()],
            default: false,
            outside_hours: false,
        },
        GroupConfig {
            name: "rest".into(),
            members: vec!["ben".into()],
            countries: vec![],
            default: true,
            outside_hours: false,
        },
    ];
    // Open only on a day that is not today (UTC): the second bridge is closed now.
    let other_day = [
        "TUESDAY",
        "WEDNESDAY",
        "THURSDAY",
        "FRIDAY",
        "SATURDAY",
        "SUNDAY",
        "MONDAY",
    ][chrono::Utc::now().weekday().num_days_from_monday() as usize];
    let hours = dir.join("hours.json");
    std::fs::write(
        &hours,
        format!(
            r#"{{"call_hours":{{"status":"ENABLED","timezone_id":"UTC","weekly_operating_hours":[{{"day_of_week":"{other_day}","open_time":"0000","close_time":"2359"}}]}}}}"#
        ),
    )
    .unwrap();
    // (closed, with a night team): open; closed; closed with ben as the night team.
    for (closed, night) in [(false, false), (true, false), (true, true)] {
        let mut groups = groups.clone();
        if night {
            groups.push(GroupConfig {
                name: "night".into(),
                members: vec!["ben".into()],
                countries: vec![],
                default: false,
                outside_hours: true,
            });
        }
        let (sandbox, bridge) = common::sandbox_and_bridge_as(provider, None, |cfg| {
            cfg.overflow = Some("voicemail".into());
            cfg.groups = groups;
            cfg.hours_file = closed.then(|| hours.clone());
            cfg.edges = vec![
                identity("ana", Role::Agent),
                identity("ben", Role::Agent),
                identity("uma", Role::Agent),
                identity("voicemail", Role::Bot),
            ];
        })
        .await;
        let bridge = bridge.unwrap();
        let (stop, _) = tokio::sync::watch::channel(false);
        // uma (the uk group) is not signed in.
        for name in ["ana", "ben", "voicemail"] {
            let mut bot = bot_config(&dir.join(name));
            bot.name = name.into();
            let (hub, stop_rx) = (bridge.hub_url(), stop.subscribe());
            tokio::spawn(async move {
                let (_cmd, cmd_rx) = tokio::sync::mpsc::channel(1);
                let _keep = _cmd;
                wacall::bot::runner::run(bot, &hub, &format!("tok-{name}"), cmd_rx, stop_rx).await
            });
        }
        bridge
            .wait_for_edges(3, Duration::from_secs(5))
            .await
            .unwrap();
        let mut got = Vec::new();
        for (i, user) in ["5215500000801", "5491100000802", "4420700000803"]
            .iter()
            .enumerate()
        {
            let id = sandbox
                .world
                .place_user_call(UserCall {
                    user: user.to_string(),
                    name: format!("Caller {i}"),
                    tone_hz: 440.0,
                    hangup_after: Some(Duration::from_millis(1500)),
                })
                .await
                .unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            let r = loop {
                if let Some(r) = bridge.record(&id).filter(|r| r.end_reason.is_some()) {
                    break r;
                }
                assert!(tokio::time::Instant::now() < deadline, "{id} never ended");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            got.push((
                r.edge.clone().unwrap_or_default(),
                r.overflow.clone().unwrap_or_default(),
            ));
        }
        let _ = stop.send(true);
        let starts = |i: usize, who: &str| got[i].0.starts_with(who);
        if night {
            for i in 0..3 {
                assert!(starts(i, "ben") && got[i].1.is_empty(), "{got:?}");
            }
        } else if closed {
            for i in 0..3 {
                assert!(starts(i, "voicemail"), "{got:?}");
                assert!(got[i].1.contains("outside business hours"), "{got:?}");
            }
        } else {
            assert!(starts(0, "ana") && got[0].1.is_empty(), "{got:?}");
            assert!(starts(1, "ben") && got[1].1.is_empty(), "{got:?}");
            assert!(starts(2, "voicemail"), "{got:?}");
            assert!(got[2].1.contains("group signed in"), "{got:?}");
        }
        bridge.shutdown().await;
        sandbox.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The supervisor console: only a supervisor's token signs in (an HttpOnly, SameSite cookie
/// after that); the live view shows a call in progress with its bot, pushed over SSE within a
/// second; history is searched by number and exported as CSV.
async fn the_supervisor_console_shows_live_calls_and_searches_history(provider: Provider) {
    use wacall::bridge::identity::Role;

    let dir = std::env::temp_dir().join(format!("wacall-e2e-console-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let (sandbox, bridge) =
        common::sandbox_and_bridge_as(provider, Some(dir.join("h.db")), |cfg| {
            cfg.edges = vec![
                common::identity("qa-lead", Role::Supervisor, "tok-qa"),
                common::identity("ana", Role::Agent, "tok-ana"),
            ];
        })
        .await;
    let bridge = bridge.unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (_cmd, cmd_rx) = tokio::sync::mpsc::channel(1);
    let hub = bridge.hub_url();
    let bot = bot_config(&dir);
    let bot_task = tokio::spawn(async move {
        wacall::bot::runner::run(bot, &hub, EDGE_TOKEN, cmd_rx, stop_rx).await
    });
    bridge
        .wait_for_edges(1, Duration::from_secs(5))
        .await
        .unwrap();
    let base = bridge.url();
    let http = reqwest::Client::new();
    // The page itself, with its script from the same origin and a strict policy.
    let page = http.get(format!("{base}/console")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(page.text().await.unwrap().contains("wacall console"));
    // Sign-in: agents' tokens and unknown ones cannot.
    let sign_in = |token: &'static str| {
        let (http, url) = (http.clone(), format!("{base}/console/session"));
        async move {
            http.post(url)
                .json(&serde_json::json!({ "token": token }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(sign_in("tok-ana").await.status().as_u16(), 403);
    assert_eq!(sign_in(EDGE_TOKEN).await.status().as_u16(), 403);
    assert_eq!(sign_in("nope").await.status().as_u16(), 401);
    let ok = sign_in("tok-qa").await;
    assert_eq!(ok.status().as_u16(), 200);
    let set_cookie = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let get = |path: String| {
        let (http, cookie) = (http.clone(), cookie.clone());
        async move {
            http.get(path)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        http.get(format!("{base}/console/api/live"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401,
        "no cookie"
    );
    // A call in progress appears in the live view, pushed over SSE: the stream is open first,
    // so what is timed is the push (the view is looked at twice a second, sent when it changes).
    let mut sse = get(format!("{base}/console/api/events")).await;
    assert_eq!(sse.status().as_u16(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), sse.chunk())
        .await
        .expect("no first live view")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: live"));
    let placed = tokio::time::Instant::now();
    let call_id = sandbox
        .world
        .place_user_call(UserCall {
            user: "5215500000901".into(),
            name: "Zoe".into(),
            tone_hz: 440.0,
            hangup_after: Some(Duration::from_secs(4)),
        })
        .await
        .unwrap();
    let mut seen = String::new();
    let mut appeared = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !(seen.contains(&call_id) && seen.contains("e2e-bot") && seen.contains("\"active\"")) {
        let chunk = tokio::time::timeout_at(deadline, sse.chunk())
            .await
            .expect("the live view never showed the active call")
            .unwrap()
            .expect("the event stream ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if appeared.is_none() && seen.contains(&call_id) {
            appeared = Some(placed.elapsed());
        }
    }
    let appeared = appeared.unwrap();
    let _ = writeln!(
        std::io::stderr().lock(),
        "console: the call appeared in the live view {} ms after it was placed",
        appeared.as_millis()
    );
    // A bound, not a figure (it is printed above): the view is looked at twice a second, so
    // three seconds means the push is broken, not that the machine is busy.
    assert!(appeared < Duration::from_secs(3), "{appeared:?}");
    let live: serde_json::Value = get(format!("{base}/console/api/live"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        live["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "e2e-bot" && e["calls"] == 1),
        "{live}"
    );
    drop(sse);
    // After the end (and the bot's report of its recording, which follows it): history finds
    // it by number, and exports it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while bridge
        .history_row(&call_id)
        .is_none_or(|r| r.end_reason.is_none() || r.recording.is_none())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let found: serde_json::Value = get(format!(
        "{base}/console/api/history?q=00000901&direction=inbound&outcome=customer_hangup"
    ))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["rows"][0]["call_id"], call_id.as_str());
    let none: serde_json::Value = get(format!("{base}/console/api/history?q=nobody-like-this"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["total"], 0);
    let csv = get(format!("{base}/console/api/history?q=Zoe&format=csv"))
        .await
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("call_id,direction,customer")
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with(&format!("{call_id},inbound,5215500000901,Zoe"))
    );
    // Its page: the row and quality, the recording in ranges, the waveform's peaks.
    let page: serde_json::Value = get(format!("{base}/console/api/calls/{call_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["record"]["call_id"], call_id.as_str());
    assert_eq!(page["has_recording"], true, "{page}");
    let part = http
        .get(format!("{base}/console/api/calls/{call_id}/recording"))
        .header("cookie", cookie.clone())
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert!(
        part.headers()["content-range"]
            .to_str()
            .unwrap()
            .starts_with("bytes 0-99/")
    );
    assert_eq!(&part.bytes().await.unwrap()[..4], b"RIFF");
    let peaks: serde_json::Value = get(format!("{base}/console/api/calls/{call_id}/peaks?n=100"))
        .await
        .json()
        .await
        .unwrap();
    assert!(peaks["seconds"].as_f64().unwrap() > 1.0, "{peaks}");
    let loud = |ch: &str| {
        peaks[ch]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p[1].as_i64().unwrap() > 1000)
    };
    assert!(loud("customer") && loud("business"), "{peaks}");
    // Signed out: the cookie no longer opens anything.
    http.post(format!("{base}/console/logout"))
        .header("cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        get(format!("{base}/console/api/live"))
            .await
            .status()
            .as_u16(),
        401
    );
    let _ = stop.send(true);
    let _ = bot_task.await;
    bridge.shutdown().await;
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Recordings reach the bridge: a bot on a remote hub records a call and uploads the WAV and
/// its sidecar (checked by SHA-256); the history row then points at the bridge's copy. The
/// protocol resumes from the bridge's offset, refuses a bad checksum, and an edge that did not
/// hold the call cannot upload to it. Recordings left unsent by an earlier run go on start.
async fn recordings_are_uploaded_to_the_bridge_resumably_by_their_holder(provider: Provider) {
    use sha2::Digest;
    use wacall::bridge::identity::Role;

    let dir = std::env::temp_dir().join(format!("wacall-e2e-upload-{}", rand::random::<u32>()));
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let (sandbox, bridge) =
        common::sandbox_and_bridge_as(provider, Some(dir.join("h.db")), |cfg| {
            cfg.store_dir = Some(store.clone());
            cfg.edges = vec![common::identity("other", Role::Agent, "tok-other")];
        })
        .await;
    let bridge = bridge.unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (_cmd, cmd_rx) = tokio::sync::mpsc::channel(1);
    let hub = bridge.hub_url();
    let bot = bot_config(&dir.join("bot"));
    let bot_task = tokio::spawn(async move {
        wacall::bot::runner::run(bot, &hub, EDGE_TOKEN, cmd_rx, stop_rx).await
    });
    bridge
        .wait_for_edges(1, Duration::from_secs(5))
        .await
        .unwrap();
    let call_id = sandbox
        .world
        .place_user_call(UserCall {
            user: "5215500000951".into(),
            name: "Ina".into(),
            tone_hz: 440.0,
            hangup_after: Some(Duration::from_secs(2)),
        })
        .await
        .unwrap();
    // The row ends up pointing at the bridge's compact copy (Ogg Opus, peaks beside it); the
    // uploaded WAV is gone from the store (recording.keep_wav is off), the edge keeps its own.
    let in_store = |r: &wacall::call_record::CallRecord| {
        r.recording
            .as_deref()
            .is_some_and(|p| p.starts_with(store.to_str().unwrap()) && p.ends_with(".opus"))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let row = loop {
        if let Some(r) = bridge.history_row(&call_id).filter(in_store) {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not uploaded: {:?}",
            bridge.history_row(&call_id)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stored = std::path::PathBuf::from(row.recording.unwrap());
    let name = stored
        .with_extension("wav")
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let local = dir.join("bot/recordings").join(&name);
    let (opus_len, wav_len) = (
        std::fs::metadata(&stored).unwrap().len(),
        std::fs::metadata(&local).unwrap().len(),
    );
    assert!(
        opus_len * 10 < wav_len,
        "Ogg Opus {opus_len} bytes for a {wav_len}-byte WAV"
    );
    assert!(stored.with_extension("peaks.json").exists());
    assert!(!store.join(&name).exists(), "the WAV stayed in the store");
    assert!(
        local.with_extension("uploaded").exists(),
        "no marker after the upload"
    );
    let sidecar_deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !store.join(name.replace(".wav", ".json")).exists() {
        assert!(
            tokio::time::Instant::now() < sidecar_deadline,
            "sidecar not stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The protocol by hand: resume, a wrong offset, a bad checksum, a stranger.
    let http = reqwest::Client::new();
    let copy = name.replace(".wav", "-copy.wav");
    let url = format!("{}/recordings/{call_id}/{copy}", bridge.url());
    let data = std::fs::read(&local).unwrap();
    let half = data.len() / 2;
    let patch = |at: usize, body: Vec<u8>, sum: Option<String>, token: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut r = http
                .patch(url)
                .bearer_auth(token)
                .header("upload-offset", at.to_string())
                .body(body);
            if let Some(s) = sum {
                r = r.header("upload-checksum", format!("sha256 {s}"));
            }
            r.send().await.unwrap()
        }
    };
    assert_eq!(
        patch(0, data[..half].to_vec(), None, "tok-other")
            .await
            .status()
            .as_u16(),
        404,
        "not its call"
    );
    assert_eq!(
        patch(0, data[..half].to_vec(), None, EDGE_TOKEN)
            .await
            .status()
            .as_u16(),
        204
    );
    let head = http
        .head(&url)
        .bearer_auth(EDGE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["upload-offset"], half.to_string().as_str());
    let wrong = patch(0, data[..10].to_vec(), None, EDGE_TOKEN).await;
    assert_eq!(wrong.status().as_u16(), 409);
    assert_eq!(wrong.headers()["upload-offset"], half.to_string().as_str());
    let bad = patch(
        half,
        data[half..].to_vec(),
        Some("00".repeat(32)),
        EDGE_TOKEN,
    )
    .await;
    assert_eq!(bad.status().as_u16(), 422, "a bad checksum is refused");
    let sum = hex::encode(sha2::Sha256::digest(&data));
    assert_eq!(
        patch(0, data[..half].to_vec(), None, EDGE_TOKEN)
            .await
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        patch(half, data[half..].to_vec(), Some(sum), EDGE_TOKEN)
            .await
            .status()
            .as_u16(),
        201
    );
    // Stored whole, then compacted: the WAV goes, its Ogg Opus form stays.
    let copy_opus = store.join(copy.replace(".wav", ".opus"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !copy_opus.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy was not compacted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An earlier run's recording with no marker goes on the next pass.
    let _ = stop.send(true);
    let _ = bot_task.await;
    std::fs::remove_file(local.with_extension("uploaded")).unwrap();
    std::fs::remove_file(&stored).unwrap();
    let t0 = std::time::Instant::now();
    let n = wacall::edge::upload::upload_pending(
        &http,
        &bridge.url(),
        EDGE_TOKEN,
        &dir.join("bot/recordings"),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    let took = t0.elapsed();
    let _ = writeln!(
        std::io::stderr().lock(),
        "upload: {} bytes in {} chunks in {:.1} ms ({:.0} MB/s, debug build, loopback)",
        data.len(),
        data.len().div_ceil(192 * 1024),
        took.as_secs_f64() * 1000.0,
        data.len() as f64 / took.as_secs_f64() / 1e6
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !stored.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not stored again after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(common::metric_value(&bridge.url(), "wacall_uploads_stored_total").await >= 4.0);
    assert_eq!(
        common::metric_value(&bridge.url(), "wacall_uploads_refused_total").await,
        1.0
    );
    assert_eq!(
        common::metric_value(&bridge.url(), "wacall_uploads_pending").await,
        0.0,
        "a finished or discarded upload is no longer pending"
    );
    bridge.shutdown().await;
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
