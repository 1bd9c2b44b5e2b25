use super::*;
use chrono::TimeZone;

/// `ms` after a fixed start, on both clocks.
fn t(ms: i64) -> Now {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    Now::new(
        Utc.timestamp_millis_opt(1_760_000_000_000 + ms)
            .single()
            .unwrap(),
        start + std::time::Duration::from_millis(ms.max(0) as u64),
    )
}

fn inbound() -> Call {
    inbound_with("wacid.1", Some("Ana".into()), CallTimeouts::default())
}

/// A user's call at t(0); its first command is always `Route`.
fn inbound_with(id: &str, name: Option<String>, timeouts: CallTimeouts) -> Call {
    let (call, cmds) = Call::inbound(
        id,
        "5215500000002",
        "5215500000001",
        name,
        "offer-sdp".into(),
        timeouts,
        t(0),
    );
    assert_eq!(cmds, vec![Command::Route]);
    call
}

fn submits(cmds: &[Command]) -> Vec<&'static str> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Submit(a) => Some(a.name()),
            _ => None,
        })
        .collect()
}

fn edge_msgs(cmds: &[Command]) -> Vec<(String, HubMessage)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::ToEdge { edge, msg } => Some((edge.clone(), msg.clone())),
            _ => None,
        })
        .collect()
}

fn finished(cmds: &[Command]) -> Option<String> {
    cmds.iter().find_map(|c| match c {
        Command::Finished { reason } => Some(reason.clone()),
        _ => None,
    })
}

/// Routing, answer, pre_accept, accept: the happy inbound path.
fn to_active(call: &mut Call) {
    let c = call
        .handle(
            Input::Assigned {
                edge: "bot-1".into(),
            },
            t(1),
        )
        .unwrap();
    assert!(
        matches!(&edge_msgs(&c)[0].1, HubMessage::Incoming { sdp, caller_name: Some(n), .. } if sdp == "offer-sdp" && n == "Ana")
    );
    let c = call
        .handle(
            Input::EdgeAnswer {
                edge: "bot-1".into(),
                sdp: "answer".into(),
            },
            t(40),
        )
        .unwrap();
    assert_eq!(
        c,
        vec![Command::Submit(Action::PreAccept {
            sdp: "answer".into()
        })]
    );
    assert_eq!(call.setup_ms, Some(40));
    let c = call
        .handle(
            Input::ActionDone {
                action: ActionKind::PreAccept,
            },
            t(60),
        )
        .unwrap();
    assert!(matches!(
        &edge_msgs(&c)[0].1,
        HubMessage::PreAccepted { .. }
    ));
    let c = call
        .handle(
            Input::EdgeAccept {
                edge: "bot-1".into(),
            },
            t(300),
        )
        .unwrap();
    assert_eq!(
        c,
        vec![Command::Submit(Action::Accept {
            sdp: "answer".into()
        })]
    );
    let c = call
        .handle(
            Input::ActionDone {
                action: ActionKind::Accept,
            },
            t(320),
        )
        .unwrap();
    assert!(matches!(&edge_msgs(&c)[0].1, HubMessage::Accepted { .. }));
    assert_eq!(call.phase, Phase::Active);
    assert_eq!(call.record.answered_by.as_deref(), Some("bot-1"));
}

#[test]
fn inbound_call_answered_then_customer_hangs_up() {
    let mut call = inbound();
    to_active(&mut call);
    let c = call
        .handle(
            Input::Terminated {
                status: Some("COMPLETED".into()),
                duration_s: Some(12),
                errors: vec![],
            },
            t(12_400),
        )
        .unwrap();
    assert!(submits(&c).is_empty(), "WhatsApp already ended it");
    assert_eq!(finished(&c).as_deref(), Some("customer_hangup"));
    let ended = edge_msgs(&c);
    assert!(
        matches!(&ended[0].1, HubMessage::Ended { record: Some(r), .. } if r.duration_s == Some(12))
    );
    assert!(call.is_ended());
    // The same terminate again: nothing happens.
    let again = call
        .handle(
            Input::Terminated {
                status: Some("COMPLETED".into()),
                duration_s: Some(12),
                errors: vec![],
            },
            t(12_500),
        )
        .unwrap();
    assert!(again.is_empty());
}

#[test]
fn business_hangup_terminates_at_the_bsp() {
    let mut call = inbound();
    to_active(&mut call);
    let c = call
        .handle(
            Input::EdgeHangup {
                edge: "bot-1".into(),
            },
            t(5_320),
        )
        .unwrap();
    assert_eq!(submits(&c), vec!["terminate"]);
    assert_eq!(finished(&c).as_deref(), Some("business_hangup"));
    assert_eq!(call.record.duration_s, Some(5));
}

#[test]
fn accept_requested_while_pre_accept_in_flight_is_sent_after_it() {
    let mut call = inbound();
    call.handle(Input::Assigned { edge: "e".into() }, t(1))
        .unwrap();
    call.handle(
        Input::EdgeAnswer {
            edge: "e".into(),
            sdp: "a".into(),
        },
        t(2),
    )
    .unwrap();
    let c = call
        .handle(Input::EdgeAccept { edge: "e".into() }, t(3))
        .unwrap();
    assert!(c.is_empty(), "accept must wait for pre_accept's 200");
    let c = call
        .handle(
            Input::ActionDone {
                action: ActionKind::PreAccept,
            },
            t(4),
        )
        .unwrap();
    assert_eq!(submits(&c), vec!["accept"]);
}

#[test]
fn terminate_before_pre_accept_returns_ends_cleanly() {
    let mut call = inbound();
    call.handle(Input::Assigned { edge: "e".into() }, t(1))
        .unwrap();
    call.handle(
        Input::EdgeAnswer {
            edge: "e".into(),
            sdp: "a".into(),
        },
        t(2),
    )
    .unwrap();
    let c = call
        .handle(
            Input::Terminated {
                status: Some("COMPLETED".into()),
                duration_s: None,
                errors: vec![],
            },
            t(3),
        )
        .unwrap();
    assert_eq!(finished(&c).as_deref(), Some("caller_cancelled"));
    // The late 200 for pre_accept and the edge's accept change nothing.
    assert!(
        call.handle(
            Input::ActionDone {
                action: ActionKind::PreAccept
            },
            t(5)
        )
        .unwrap()
        .is_empty()
    );
    assert!(
        call.handle(Input::EdgeAccept { edge: "e".into() }, t(6))
            .unwrap()
            .is_empty()
    );
    assert!(call.is_ended());
}

#[test]
fn terminate_before_any_edge_answers() {
    let mut call = inbound();
    let c = call
        .handle(
            Input::Terminated {
                status: None,
                duration_s: None,
                errors: vec![],
            },
            t(1),
        )
        .unwrap();
    assert_eq!(finished(&c).as_deref(), Some("caller_cancelled"));
    assert!(edge_msgs(&c).is_empty(), "no edge held it");
    // The router's late answer is ignored.
    assert!(
        call.handle(Input::Assigned { edge: "e".into() }, t(2))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn edge_that_never_answers_passes_the_call_on_then_it_is_rejected() {
    let mut call = inbound();
    call.handle(Input::Assigned { edge: "a".into() }, t(1))
        .unwrap();
    let c = call.handle(ring_fires(&call), t(20_001)).unwrap();
    assert!(c.contains(&Command::Route));
    assert!(matches!(&edge_msgs(&c)[0], (e, HubMessage::Ended { .. }) if e == "a"));
    call.handle(Input::Assigned { edge: "b".into() }, t(20_002))
        .unwrap();
    let c = call
        .handle(Input::EdgeReject { edge: "b".into() }, t(20_003))
        .unwrap();
    assert_eq!(c.last(), Some(&Command::Route));
    let c = call.handle(Input::NoEdge, t(20_004)).unwrap();
    assert_eq!(submits(&c), vec!["reject"]);
    assert_eq!(finished(&c).as_deref(), Some("no_edge_available"));
    assert!(call.tried.contains("a") && call.tried.contains("b"));
}

#[test]
fn stale_ring_timer_is_ignored() {
    let mut call = inbound();
    to_active(&mut call);
    assert!(
        call.handle(ring_fires(&call), t(20_001))
            .unwrap()
            .is_empty()
    );
    assert_eq!(call.phase, Phase::Active);
}

#[test]
fn pre_accepted_but_never_accepted_is_terminated() {
    let mut call = inbound();
    call.handle(Input::Assigned { edge: "e".into() }, t(1))
        .unwrap();
    call.handle(
        Input::EdgeAnswer {
            edge: "e".into(),
            sdp: "a".into(),
        },
        t(2),
    )
    .unwrap();
    call.handle(
        Input::ActionDone {
            action: ActionKind::PreAccept,
        },
        t(3),
    )
    .unwrap();
    let c = call.handle(ring_fires(&call), t(20_001)).unwrap();
    assert_eq!(submits(&c), vec!["terminate"]);
    assert_eq!(finished(&c).as_deref(), Some("not_answered"));
}

#[test]
fn an_offer_no_edge_can_answer_is_rejected_with_the_reason() {
    let mut call = inbound();
    call.handle(Input::Assigned { edge: "e".into() }, t(1))
        .unwrap();
    let c = call
        .handle(
            Input::EdgeMediaFailed {
                edge: "e".into(),
                reason: "no codec wacall speaks; formats offered: 9 G722/8000".into(),
                offer_refused: true,
            },
            t(2),
        )
        .unwrap();
    assert_eq!(submits(&c), vec!["reject"]);
    assert!(
        finished(&c).is_some_and(|r| r.starts_with("offer_refused:") && r.contains("9 G722/8000")),
        "{c:?}"
    );
}

#[test]
fn media_failure_after_pre_accept_terminates_and_before_it_reroutes() {
    let mut call = inbound();
    call.handle(Input::Assigned { edge: "e".into() }, t(1))
        .unwrap();
    let c = call
        .handle(
            Input::EdgeMediaFailed {
                edge: "e".into(),
                reason: "no sockets".into(),
                offer_refused: false,
            },
            t(2),
        )
        .unwrap();
    assert_eq!(c.last(), Some(&Command::Route));
    call.handle(Input::Assigned { edge: "f".into() }, t(3))
        .unwrap();
    call.handle(
        Input::EdgeAnswer {
            edge: "f".into(),
            sdp: "a".into(),
        },
        t(4),
    )
    .unwrap();
    call.handle(
        Input::ActionDone {
            action: ActionKind::PreAccept,
        },
        t(5),
    )
    .unwrap();
    let c = call
        .handle(
            Input::EdgeMediaFailed {
                edge: "f".into(),
                reason: "ICE failed".into(),
                offer_refused: false,
            },
            t(6),
        )
        .unwrap();
    assert_eq!(submits(&c), vec!["terminate"]);
    assert_eq!(finished(&c).as_deref(), Some("media_failed: ICE failed"));
}

#[test]
fn pre_accept_refused_by_the_bsp_rejects_the_call() {
    let mut call = inbound();
    call.handle(Input::Assigned { edge: "e".into() }, t(1))
        .unwrap();
    call.handle(
        Input::EdgeAnswer {
            edge: "e".into(),
            sdp: "a".into(),
        },
        t(2),
    )
    .unwrap();
    let c = call
        .handle(
            Input::ActionFailed {
                action: ActionKind::PreAccept,
                message: "bad sdp".into(),
                permanent: true,
            },
            t(3),
        )
        .unwrap();
    assert_eq!(submits(&c), vec!["reject"]);
    assert!(finished(&c).unwrap().contains("bad sdp"));
}

#[test]
fn impossible_inputs_are_errors_not_panics() {
    let mut call = inbound();
    // Accept before anyone holds the call.
    let e = call
        .handle(Input::EdgeAccept { edge: "x".into() }, t(1))
        .unwrap_err();
    assert_eq!(e.phase, "routing");
    assert!(e.to_string().contains("wacid.1"));
    call.handle(Input::Assigned { edge: "e".into() }, t(1))
        .unwrap();
    // Another edge meddling.
    assert!(
        call.handle(
            Input::EdgeHangup {
                edge: "intruder".into()
            },
            t(2)
        )
        .is_err()
    );
    // A status webhook for an inbound call.
    assert!(call.handle(Input::Status(Progress::Ringing), t(3)).is_err());
    // Accept without an answer.
    assert!(
        call.handle(Input::EdgeAccept { edge: "e".into() }, t(4))
            .is_err()
    );
    assert_eq!(
        call.phase,
        Phase::Ringing,
        "errors leave the call as it was"
    );
}

#[test]
fn duplicate_answer_from_the_edge_is_harmless() {
    let mut call = inbound();
    call.handle(Input::Assigned { edge: "e".into() }, t(1))
        .unwrap();
    call.handle(
        Input::EdgeAnswer {
            edge: "e".into(),
            sdp: "a".into(),
        },
        t(2),
    )
    .unwrap();
    assert!(
        call.handle(
            Input::EdgeAnswer {
                edge: "e".into(),
                sdp: "a".into()
            },
            t(3)
        )
        .unwrap()
        .is_empty()
    );
    assert!(
        call.handle(
            Input::EdgeAnswer {
                edge: "e".into(),
                sdp: "other".into()
            },
            t(3)
        )
        .is_err()
    );
}

fn outbound() -> Call {
    let (call, cmds) = Call::outbound(
        "wacid.out",
        "5215500000002",
        "5215500000001",
        "bot-1",
        CallTimeouts::default(),
        t(0),
    );
    assert_eq!(
        cmds,
        vec![Command::SetTimer {
            timer: Timer::Answer,
            after: Duration::from_secs(45),
            seq: 1,
        }]
    );
    call
}

#[test]
fn outbound_call_answered_and_hung_up_by_the_business() {
    let mut call = outbound();
    let c = call
        .handle(Input::Status(Progress::Ringing), t(100))
        .unwrap();
    assert!(
        matches!(&edge_msgs(&c)[0].1, HubMessage::Status { status, .. } if status == "ringing")
    );
    let c = call
        .handle(
            Input::RemoteAnswer {
                sdp: "their-answer".into(),
            },
            t(900),
        )
        .unwrap();
    assert!(
        matches!(&edge_msgs(&c)[0].1, HubMessage::RemoteAnswer { sdp, .. } if sdp == "their-answer")
    );
    call.handle(Input::Status(Progress::Accepted), t(950))
        .unwrap();
    assert_eq!(call.phase, Phase::Active);
    assert_eq!(call.record.answered_by.as_deref(), Some("customer"));
    let c = call
        .handle(
            Input::EdgeHangup {
                edge: "bot-1".into(),
            },
            t(10_950),
        )
        .unwrap();
    assert_eq!(submits(&c), vec!["terminate"]);
    assert_eq!(call.record.duration_s, Some(10));
}

#[test]
fn outbound_status_before_answer_and_duplicates() {
    let mut call = outbound();
    // ACCEPTED overtakes the answer webhook; then both arrive twice.
    call.handle(Input::Status(Progress::Accepted), t(10))
        .unwrap();
    let c = call
        .handle(Input::RemoteAnswer { sdp: "s".into() }, t(11))
        .unwrap();
    assert_eq!(edge_msgs(&c).len(), 1);
    assert!(
        call.handle(Input::RemoteAnswer { sdp: "s".into() }, t(12))
            .unwrap()
            .is_empty()
    );
    call.handle(Input::Status(Progress::Accepted), t(13))
        .unwrap();
    assert_eq!(
        call.record.accepted_at.as_deref(),
        Some(stamp(t(10).wall).as_str()),
        "first accept wins"
    );
    assert_eq!(call.phase, Phase::Active);
}

#[test]
fn outbound_rejected_by_the_user() {
    let mut call = outbound();
    let c = call
        .handle(Input::Status(Progress::Rejected), t(10))
        .unwrap();
    assert_eq!(finished(&c).as_deref(), Some("rejected_by_customer"));
    assert!(submits(&c).is_empty());
}

#[test]
fn outbound_not_answered_in_time_is_terminated() {
    let mut call = outbound();
    let c = call
        .handle(
            Input::Timeout(Timer::Answer, call.armed(Timer::Answer).unwrap()),
            t(45_000),
        )
        .unwrap();
    assert_eq!(submits(&c), vec!["terminate"]);
    assert_eq!(finished(&c).as_deref(), Some("not_answered"));
}

#[test]
fn failed_terminate_keeps_the_provider_errors() {
    let mut call = outbound();
    let c = call
        .handle(
            Input::Terminated {
                status: Some("FAILED".into()),
                duration_s: None,
                errors: vec!["138006: no permission".into()],
            },
            t(10),
        )
        .unwrap();
    assert_eq!(
        finished(&c).as_deref(),
        Some("failed: 138006: no permission")
    );
}

#[test]
fn edge_report_after_the_end_completes_the_record() {
    let mut call = inbound();
    to_active(&mut call);
    call.handle(
        Input::EdgeHangup {
            edge: "bot-1".into(),
        },
        t(2_000),
    )
    .unwrap();
    let q = QualitySummary {
        packets_received: 100,
        ..Default::default()
    };
    let c = call
        .handle(
            Input::EdgeFinished {
                edge: "bot-1".into(),
                quality: q,
                recording: Some("r.wav".into()),
            },
            t(2_100),
        )
        .unwrap();
    assert_eq!(c, vec![Command::RecordUpdated]);
    assert_eq!(call.record.quality.unwrap().packets_received, 100);
    assert_eq!(call.record.recording.as_deref(), Some("r.wav"));
}

#[test]
fn edge_lost_mid_call_terminates() {
    let mut call = inbound();
    to_active(&mut call);
    let c = call
        .handle(
            Input::EdgeLeft {
                edge: "bot-1".into(),
            },
            t(3_000),
        )
        .unwrap();
    assert_eq!(submits(&c), vec!["terminate"]);
    assert!(edge_msgs(&c).is_empty());
}

#[test]
fn dtmf_is_kept_in_the_record() {
    let mut call = inbound();
    to_active(&mut call);
    call.handle(Input::Dtmf { digit: '1' }, t(400)).unwrap();
    call.handle(Input::Dtmf { digit: '#' }, t(500)).unwrap();
    assert_eq!(call.record.dtmf, "1#");
}

#[test]
fn shutdown_rejects_a_ringing_call_and_terminates_a_dialled_one() {
    let mut call = inbound();
    call.handle(Input::Assigned { edge: "e".into() }, t(1))
        .unwrap();
    let c = call.handle(Input::Shutdown, t(2)).unwrap();
    assert_eq!(submits(&c), vec!["reject"]);
    assert_eq!(finished(&c).as_deref(), Some("bridge_shutdown"));
    let mut out = outbound();
    let c = out.handle(Input::Shutdown, t(2)).unwrap();
    assert_eq!(
        submits(&c),
        vec!["terminate"],
        "reject is only for a user's call"
    );
}

/// The ring deadline armed last (the one that counts) firing.
fn ring_fires(call: &Call) -> Input {
    Input::Timeout(
        Timer::Ring,
        call.armed(Timer::Ring).expect("a ring deadline"),
    )
}

/// Hardening: edge A is offered the call at 0 s and rejects it at 15 s; edge B takes it and
/// pre-accepts. A's ring deadline still fires at 20 s: it must not end B's call.
#[test]
fn a_stale_ring_deadline_does_not_end_the_next_edges_call() {
    let mut call = inbound();
    let c = call
        .handle(Input::Assigned { edge: "a".into() }, t(0))
        .unwrap();
    let a_ring = match c.iter().find(|c| matches!(c, Command::SetTimer { .. })) {
        Some(Command::SetTimer { seq, .. }) => *seq,
        _ => panic!("no ring deadline armed: {c:?}"),
    };
    call.handle(Input::EdgeReject { edge: "a".into() }, t(15_000))
        .unwrap();
    call.handle(Input::Assigned { edge: "b".into() }, t(15_001))
        .unwrap();
    call.handle(
        Input::EdgeAnswer {
            edge: "b".into(),
            sdp: "answer".into(),
        },
        t(15_100),
    )
    .unwrap();
    call.handle(
        Input::ActionDone {
            action: ActionKind::PreAccept,
        },
        t(15_200),
    )
    .unwrap();
    let c = call
        .handle(Input::Timeout(Timer::Ring, a_ring), t(20_000))
        .unwrap();
    assert!(c.is_empty(), "A's deadline acted on B's call: {c:?}");
    assert!(!call.is_ended());
    // B's own deadline still holds B to answering in time.
    let c = call.handle(ring_fires(&call), t(35_001)).unwrap();
    assert_eq!(submits(&c), vec!["terminate"]);
    assert_eq!(finished(&c).as_deref(), Some("not_answered"));
}

/// Hardening: an answered call that nobody ends is terminated at the maximum call length.
#[test]
fn an_answered_call_ends_at_the_maximum_length() {
    let mut call = inbound();
    to_active(&mut call);
    let seq = call
        .armed(Timer::MaxLength)
        .expect("the maximum length is armed on accept");
    let c = call
        .handle(Input::Timeout(Timer::MaxLength, seq), t(4 * 3600 * 1000))
        .unwrap();
    assert_eq!(submits(&c), vec!["terminate"]);
    assert_eq!(finished(&c).as_deref(), Some("max_call_length"));
}

/// Hardening: a terminate the BSP did not take is tried again, backing off, until it is
/// confirmed or WhatsApp reports the call ended.
#[test]
fn a_failed_terminate_is_retried_until_confirmed() {
    // An answered call the bot hangs up: terminate goes to the BSP.
    let hung_up = || {
        let mut call = inbound();
        to_active(&mut call);
        let c = call
            .handle(
                Input::EdgeHangup {
                    edge: "bot-1".into(),
                },
                t(10_000),
            )
            .unwrap();
        assert_eq!(submits(&c), vec!["terminate"]);
        call
    };
    let fail = || Input::ActionFailed {
        action: ActionKind::Terminate,
        message: "BSP unreachable".into(),
        permanent: false,
    };
    let mut call = hung_up();
    for _ in 0..3 {
        let c = call.handle(fail(), t(10_100)).unwrap();
        assert!(
            matches!(
                c.as_slice(),
                [Command::SetTimer {
                    timer: Timer::RetryEnd,
                    ..
                }]
            ),
            "no retry armed: {c:?}"
        );
        let seq = call.armed(Timer::RetryEnd).unwrap();
        let c = call
            .handle(Input::Timeout(Timer::RetryEnd, seq), t(12_000))
            .unwrap();
        assert_eq!(submits(&c), vec!["terminate"]);
    }
    // Confirmed: nothing more.
    call.handle(
        Input::ActionDone {
            action: ActionKind::Terminate,
        },
        t(20_000),
    )
    .unwrap();
    assert!(call.handle(fail(), t(20_100)).unwrap().is_empty());

    // Another call: WhatsApp's terminate webhook makes the retry unnecessary.
    let mut call = hung_up();
    call.handle(fail(), t(10_100)).unwrap();
    let seq = call.armed(Timer::RetryEnd).expect("a retry armed");
    call.handle(
        Input::Terminated {
            status: Some("COMPLETED".into()),
            duration_s: Some(10),
            errors: vec![],
        },
        t(10_500),
    )
    .unwrap();
    assert!(
        call.handle(Input::Timeout(Timer::RetryEnd, seq), t(12_000))
            .unwrap()
            .is_empty()
    );
}

fn queued_inbound(queue_s: u64) -> Call {
    let timeouts = CallTimeouts {
        queue: Duration::from_secs(queue_s),
        ..CallTimeouts::default()
    };
    inbound_with("wacid.Q", None, timeouts)
}

fn queue_timer(c: &[Command]) -> Option<u32> {
    c.iter().find_map(|c| match c {
        Command::SetTimer {
            timer: Timer::Queue,
            seq,
            ..
        } => Some(*seq),
        _ => None,
    })
}

/// No edge free: the call waits (nothing is submitted, WhatsApp keeps ringing), then an edge
/// frees up and takes it; the wait is in the record.
#[test]
fn a_call_with_no_free_edge_waits_then_goes_to_the_first_free_one() {
    let mut call = queued_inbound(25);
    let c = call.handle(Input::NoEdge, t(1)).unwrap();
    assert!(c.contains(&Command::Enqueue), "{c:?}");
    assert!(queue_timer(&c).is_some());
    assert!(submits(&c).is_empty());
    assert_eq!(call.phase, Phase::Queued);
    let c = call.handle(Input::Dequeued, t(8_001)).unwrap();
    assert_eq!(c, vec![Command::Route]);
    call.handle(
        Input::Assigned {
            edge: "agent".into(),
        },
        t(8_002),
    )
    .unwrap();
    assert_eq!(call.phase, Phase::Ringing);
    assert_eq!(call.record.queue_wait_s, Some(8));
    assert_eq!(call.record.overflow, None);
}

/// The caller hangs up while waiting: abandoned, nothing to submit.
#[test]
fn a_caller_who_hangs_up_in_the_queue_is_abandoned() {
    let mut call = queued_inbound(25);
    call.handle(Input::NoEdge, t(1)).unwrap();
    let c = call
        .handle(
            Input::Terminated {
                status: Some("COMPLETED".into()),
                duration_s: None,
                errors: vec![],
            },
            t(5_000),
        )
        .unwrap();
    assert!(submits(&c).is_empty());
    assert_eq!(finished(&c).as_deref(), Some("caller_abandoned"));
}

/// The wait runs out: the overflow edge is asked for; without one the call is rejected with
/// the reason in history. The queue's deadline is armed once, however often the call comes
/// back (an agent that declines it puts it back in the queue, not at its end).
#[test]
fn the_queue_time_runs_out_into_overflow_or_a_reject() {
    let mut call = queued_inbound(25);
    let c = call.handle(Input::NoEdge, t(1)).unwrap();
    let seq = queue_timer(&c).unwrap();
    call.handle(Input::Dequeued, t(2_000)).unwrap();
    call.handle(Input::Assigned { edge: "a".into() }, t(2_001))
        .unwrap();
    call.handle(Input::EdgeReject { edge: "a".into() }, t(3_000))
        .unwrap();
    let c = call.handle(Input::NoEdge, t(3_001)).unwrap();
    assert_eq!(c, vec![Command::Enqueue], "no second deadline");
    let c = call
        .handle(Input::Timeout(Timer::Queue, seq), t(25_001))
        .unwrap();
    assert_eq!(c, vec![Command::Overflow]);
    // A voicemail bot takes it.
    call.handle(
        Input::Assigned {
            edge: "voicemail".into(),
        },
        t(25_002),
    )
    .unwrap();
    assert!(
        call.record
            .overflow
            .as_deref()
            .unwrap()
            .contains("voicemail")
    );
    assert_eq!(call.record.queue_wait_s, Some(25));

    // Without an overflow edge: rejected.
    let mut call = queued_inbound(25);
    let c = call.handle(Input::NoEdge, t(1)).unwrap();
    let seq = queue_timer(&c).unwrap();
    call.handle(Input::Timeout(Timer::Queue, seq), t(25_001))
        .unwrap();
    let c = call.handle(Input::NoEdge, t(25_002)).unwrap();
    assert_eq!(submits(&c), vec!["reject"]);
    assert_eq!(finished(&c).as_deref(), Some("queue_timeout"));
}

/// The deadline passes while an edge is ringing: when that edge gives the call back, it
/// overflows at once instead of queueing again.
#[test]
fn a_deadline_passed_while_ringing_overflows_when_the_call_comes_back() {
    let mut call = queued_inbound(25);
    let c = call.handle(Input::NoEdge, t(1)).unwrap();
    let seq = queue_timer(&c).unwrap();
    call.handle(Input::Dequeued, t(20_000)).unwrap();
    call.handle(Input::Assigned { edge: "a".into() }, t(20_001))
        .unwrap();
    let c = call
        .handle(Input::Timeout(Timer::Queue, seq), t(25_001))
        .unwrap();
    assert!(c.is_empty());
    call.handle(Input::EdgeReject { edge: "a".into() }, t(26_000))
        .unwrap();
    let c = call.handle(Input::NoEdge, t(26_001)).unwrap();
    assert_eq!(c, vec![Command::Overflow]);
}

/// Without a queue (`queue` zero) no edge means an immediate reject, as before.
#[test]
fn without_a_queue_no_edge_is_a_reject() {
    let mut call = queued_inbound(0);
    let c = call.handle(Input::NoEdge, t(1)).unwrap();
    assert_eq!(finished(&c).as_deref(), Some("no_edge_available"));
}

/// Outside business hours (or with nobody of its group signed in) a call overflows at once;
/// without an overflow edge it is rejected with that reason.
#[test]
fn outside_hours_a_call_overflows_at_once_or_is_rejected_with_the_reason() {
    let mut call = queued_inbound(25);
    let c = call
        .handle(
            Input::Overflow {
                reason: "outside_hours".into(),
            },
            t(1),
        )
        .unwrap();
    assert_eq!(c, vec![Command::Overflow]);
    call.handle(Input::Assigned { edge: "vm".into() }, t(2))
        .unwrap();
    assert_eq!(
        call.record.overflow.as_deref(),
        Some("to vm: outside business hours")
    );
    let mut call = queued_inbound(25);
    call.handle(
        Input::Overflow {
            reason: "group_empty".into(),
        },
        t(1),
    )
    .unwrap();
    let c = call.handle(Input::NoEdge, t(2)).unwrap();
    assert_eq!(submits(&c), vec!["reject"]);
    assert_eq!(finished(&c).as_deref(), Some("group_empty"));
}

/// The wall clock steps back an hour mid-call (NTP, a resumed VM): the setup latency and the
/// call's length still count on the monotonic clock, the stamps follow the wall clock.
#[test]
fn durations_count_on_the_monotonic_clock_when_the_wall_clock_steps() {
    let mut call = inbound();
    call.handle(
        Input::Assigned {
            edge: "bot-1".into(),
        },
        t(5),
    )
    .unwrap();
    let back = |ms: i64| {
        let n = t(ms);
        Now::new(n.wall - chrono::Duration::hours(1), n.mono)
    };
    call.handle(
        Input::EdgeAnswer {
            edge: "bot-1".into(),
            sdp: "answer".into(),
        },
        back(40),
    )
    .unwrap();
    assert_eq!(call.setup_ms, Some(40));
    call.handle(
        Input::ActionDone {
            action: ActionKind::PreAccept,
        },
        back(60),
    )
    .unwrap();
    call.handle(
        Input::EdgeAccept {
            edge: "bot-1".into(),
        },
        back(100),
    )
    .unwrap();
    call.handle(
        Input::ActionDone {
            action: ActionKind::Accept,
        },
        back(120),
    )
    .unwrap();
    call.handle(
        Input::EdgeHangup {
            edge: "bot-1".into(),
        },
        back(5_120),
    )
    .unwrap();
    assert_eq!(call.record.duration_s, Some(5));
    assert!(
        call.record.ended_at.as_deref() < Some(call.record.offered_at.as_str()),
        "stamps are wall-clock: {:?} {:?}",
        call.record.ended_at,
        call.record.offered_at
    );
}
