//! Every SDP in `tests/sdp/` (made by `scripts/sdp-corpus/` from Chromium, Firefox ESR,
//! GStreamer webrtcbin, aiortc, plus hand-written WhatsApp variants) is answered by a real media
//! session, and the answer is checked against the negotiation rules (`negotiate::audit_answer`:
//! the offer's Opus payload type, telephone-event/8000 preferred, each payload type once with
//! one rtpmap, nothing not offered, fmtp and ptime that honour the offer) and against what
//! WhatsApp requires of an answer (`a=setup:active`, the offer's mid, no `a=ice-lite`).

use std::path::PathBuf;

use wacall::media::negotiate::{AudioCodec, Choice, audit_answer};
use wacall::media::{MediaConfig, MediaSession};

enum Expect {
    /// Answered with this codec on this payload type, and telephone-event on this one.
    Answer(AudioCodec, u8, Option<u8>),
    /// Refused; the error names these formats.
    Refused(&'static [&'static str]),
    /// A peer's answer to an offer (named file): what we take from it.
    TakeFrom(&'static str, u8, Option<u8>),
}

use Expect::*;

const TABLE: &[(&str, Expect)] = &[
    (
        "chromium-offer.sdp",
        Answer(AudioCodec::Opus, 111, Some(126)),
    ),
    (
        "firefox-esr-offer.sdp",
        Answer(AudioCodec::Opus, 109, Some(101)),
    ),
    (
        "gstreamer-webrtcbin-offer.sdp",
        Answer(AudioCodec::Opus, 96, None),
    ),
    ("aiortc-offer.sdp", Answer(AudioCodec::Opus, 96, None)),
    (
        "whatsapp-wideband-offer.sdp",
        Answer(AudioCodec::Opus, 111, Some(126)),
    ),
    (
        "whatsapp-fullband-offer.sdp",
        Answer(AudioCodec::Opus, 111, Some(126)),
    ),
    (
        "whatsapp-no-candidates-offer.sdp",
        Answer(AudioCodec::Opus, 111, Some(126)),
    ),
    (
        "whatsapp-mid0-offer.sdp",
        Answer(AudioCodec::Opus, 111, Some(126)),
    ),
    (
        "whatsapp-opus109-offer.sdp",
        Answer(AudioCodec::Opus, 109, Some(126)),
    ),
    (
        "whatsapp-dtmf-both-rates-offer.sdp",
        Answer(AudioCodec::Opus, 111, Some(126)),
    ),
    (
        "whatsapp-g711-beside-opus-offer.sdp",
        Answer(AudioCodec::Opus, 111, Some(126)),
    ),
    (
        "whatsapp-g711-only-offer.sdp",
        Answer(AudioCodec::Pcmu, 0, Some(126)),
    ),
    (
        "whatsapp-pcma-only-offer.sdp",
        Answer(AudioCodec::Pcma, 8, Some(126)),
    ),
    (
        "whatsapp-nothing-we-speak-offer.sdp",
        Refused(&["9 G722/8000", "102 ILBC/8000"]),
    ),
    (
        "chromium-answer.sdp",
        TakeFrom("whatsapp-wideband-offer.sdp", 111, Some(126)),
    ),
    (
        "firefox-esr-answer.sdp",
        TakeFrom("whatsapp-wideband-offer.sdp", 111, Some(126)),
    ),
    (
        "aiortc-answer.sdp",
        TakeFrom("whatsapp-wideband-offer.sdp", 111, None),
    ),
    // WhatsApp's answer to a business offer lists more than we offered: we take 111 and 126.
    (
        "meta-sample-answer.sdp",
        TakeFrom("our offer", 111, Some(126)),
    ),
];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdp")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(corpus_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn attr<'a>(sdp: &'a str, key: &str) -> Option<&'a str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix(&format!("a={key}:")))
}

/// The offer without candidates off this host (the hand-written ones carry documentation
/// addresses): our ICE agent must not send checks anywhere but 127.0.0.1 and ::1. The answer is
/// still audited against the offer as written.
fn loopback_only(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| {
            !l.starts_with("a=candidate:")
                || l.split_whitespace()
                    .nth(4)
                    .is_some_and(|a| a == "127.0.0.1" || a == "::1")
        })
        .collect()
}

#[test]
fn every_corpus_file_is_in_the_table() {
    let mut files: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".sdp"))
        .collect();
    files.sort();
    for f in &files {
        assert!(
            TABLE.iter().any(|(name, _)| name == f),
            "{f} is in tests/sdp but not in this test's table"
        );
    }
    assert!(files.len() >= TABLE.len(), "a table entry has no file");
}

#[tokio::test]
async fn every_offer_is_answered_by_the_rules() {
    let cfg = MediaConfig::loopback();
    let mut failures = Vec::new();
    for (name, expect) in TABLE {
        let sdp = read(name);
        match expect {
            Answer(codec, pt, dtmf) => {
                let (media, answer) =
                    match MediaSession::answering(&cfg, name, &loopback_only(&sdp)).await {
                        Ok(x) => x,
                        Err(e) => {
                            failures.push(format!("{name}: not answered: {e}"));
                            continue;
                        }
                    };
                media.close().await;
                for p in audit_answer(&sdp, &answer) {
                    failures.push(format!("{name}: {p}"));
                }
                let c = Choice::from_sdp(&answer).unwrap();
                if (c.codec, c.audio_pt(), c.dtmf_pt()) != (*codec, *pt, *dtmf) {
                    failures.push(format!(
                        "{name}: answered {} {} dtmf {:?}, expected {codec} {pt} dtmf {dtmf:?}",
                        c.codec,
                        c.audio_pt(),
                        c.dtmf_pt()
                    ));
                }
                if attr(&answer, "setup") != Some("active") {
                    failures.push(format!("{name}: answer is not a=setup:active"));
                }
                if attr(&answer, "mid") != attr(&sdp, "mid") {
                    failures.push(format!("{name}: answer's mid differs from the offer's"));
                }
                if answer.contains("a=ice-lite") {
                    failures.push(format!("{name}: we must answer as a full ICE agent"));
                }
                if !answer.split_inclusive('\n').all(|l| l.ends_with("\r\n")) {
                    failures.push(format!("{name}: answer lines must end with CRLF"));
                }
            }
            Refused(names) => match MediaSession::answering(&cfg, name, &loopback_only(&sdp)).await
            {
                Ok((media, answer)) => {
                    media.close().await;
                    failures.push(format!("{name}: answered, should be refused:\n{answer}"));
                }
                Err(e) => {
                    let msg = e.to_string();
                    for n in *names {
                        if !msg.contains(n) {
                            failures.push(format!("{name}: error does not name {n}: {msg}"));
                        }
                    }
                }
            },
            TakeFrom(offer, pt, dtmf) => {
                let offer = if *offer == "our offer" {
                    let (media, offer) = MediaSession::offering(&cfg, name).await.unwrap();
                    media.close().await;
                    offer
                } else {
                    read(offer)
                };
                match Choice::from_answer(&sdp, &offer) {
                    Ok(c) if (c.audio_pt(), c.dtmf_pt()) == (*pt, *dtmf) => {}
                    other => failures.push(format!(
                        "{name}: took {:?}, expected {pt} dtmf {dtmf:?}",
                        other.map(|c| (c.audio_pt(), c.dtmf_pt()))
                    )),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn our_offer_is_opus_111_and_telephone_event_126_only() {
    let (media, offer) = MediaSession::offering(&MediaConfig::loopback(), "offer")
        .await
        .unwrap();
    media.close().await;
    let m = offer.lines().find(|l| l.starts_with("m=audio")).unwrap();
    assert!(m.trim_end().ends_with("UDP/TLS/RTP/SAVPF 111 126"), "{m}");
    assert_eq!(offer.matches("a=rtpmap:").count(), 2, "{offer}");
    assert_eq!(attr(&offer, "setup"), Some("actpass"));
}

/// The fuzz target `remote_sdp`'s seeds (`fuzz/seeds/remote_sdp/`, crash reproducers included)
/// replayed through the same calls on every test run: a fixed finding cannot come back
/// unnoticed, without a nightly fuzz build in CI.
#[test]
fn the_remote_sdp_fuzz_seeds_never_panic() {
    use wacall::media::check_remote_sdp;
    use wacall::media::negotiate::{
        AudioSection, for_stack, impose_codecs, our_offer_choice, shape_local,
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/remote_sdp");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (a, b) = match text.find('\0') {
            Some(i) => (&text[..i], &text[i + 1..]),
            None => text.split_at(text.floor_char_boundary(text.len() / 2)),
        };
        let _ = check_remote_sdp(&text);
        let _ = AudioSection::read(&text).map(|s| s.describe());
        let choice = Choice::from_sdp(&text).unwrap_or_else(|_| our_offer_choice());
        let _ = for_stack(&text, &choice);
        let _ = shape_local(&text, &choice);
        let _ = audit_answer(a, b);
        let _ = impose_codecs(a, b);
        let _ = Choice::from_answer(b, a);
        n += 1;
    }
    assert!(n >= 5, "only {n} seeds in {}", dir.display());
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// The other fuzz targets' seeds through their parsers, on every test run.
#[test]
fn the_parsers_fuzz_seeds_never_panic() {
    for body in seeds("webhook_parse") {
        let _ = wacall::webhook::parse::parse_webhook(&body);
        let good = wacall::webhook::signature::sign(b"k", &body);
        assert!(wacall::webhook::signature::verify_signature(b"k", &body, Some(&good)).is_ok());
    }
    for text in seeds("hub_message") {
        let _ = serde_json::from_slice::<wacall::hub_protocol::EdgeMessage>(&text);
        let _ = serde_json::from_slice::<wacall::hub_protocol::HubMessage>(&text);
    }
    for text in seeds("config") {
        if let Ok(c) = wacall::config::Config::from_toml_str(&String::from_utf8_lossy(&text)) {
            let _ = c.problems();
        }
    }
    for text in seeds("settings") {
        let text = String::from_utf8_lossy(&text);
        for hint in [None, Some("json"), Some("toml")] {
            if let Ok(s) = wacall::settings::parse_settings(&text, hint) {
                let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
                let _ = wacall::settings::validate(&s, today);
            }
        }
    }
}
