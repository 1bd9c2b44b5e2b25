//! Each offer shape of the corpus (`tests/sdp/`) carries a tone both ways between two real
//! WebRTC peers on 127.0.0.1, and a keypad press from the caller reaches us when the shape has
//! telephone-event. The caller is the sandbox's kind of simulated user (ICE-lite, actpass) whose
//! offer takes the shape's codec section (`negotiate::impose_codecs`: payload types, rtpmap,
//! fmtp, ptime), so it sends Opus on 109 or 96, G.711 only, DTMF at 8 kHz beside 48 kHz, as the
//! shape says; we answer it with the production code. Frequencies are measured after decoding
//! with the codec each side negotiated.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wacall::audio::codec::{EncoderConfig, FrameDecoder, OpusDecoder, OpusEncoder};
use wacall::audio::g711::{G711Decoder, G711Encoder, Law};
use wacall::audio::tone::{ToneGenerator, dominant_frequency};
use wacall::media::negotiate::{AudioCodec, impose_codecs};
use wacall::media::{MediaConfig, MediaEvent, MediaSession};

const SHAPES: &[&str] = &[
    "chromium-offer.sdp",
    "firefox-esr-offer.sdp",
    "gstreamer-webrtcbin-offer.sdp",
    "aiortc-offer.sdp",
    "whatsapp-wideband-offer.sdp",
    "whatsapp-fullband-offer.sdp",
    "whatsapp-no-candidates-offer.sdp",
    "whatsapp-mid0-offer.sdp",
    "whatsapp-opus109-offer.sdp",
    "whatsapp-dtmf-both-rates-offer.sdp",
    "whatsapp-g711-beside-opus-offer.sdp",
    "whatsapp-g711-only-offer.sdp",
    "whatsapp-pcma-only-offer.sdp",
];

const FRAMES: usize = 100;

enum Enc {
    Opus(OpusEncoder),
    G711(Box<G711Encoder>),
}

fn encoder(codec: AudioCodec) -> Enc {
    match codec {
        AudioCodec::Opus => Enc::Opus(OpusEncoder::new(EncoderConfig::default()).unwrap()),
        AudioCodec::Pcmu => Enc::G711(Box::new(G711Encoder::new(Law::Mu))),
        AudioCodec::Pcma => Enc::G711(Box::new(G711Encoder::new(Law::A))),
    }
}

fn decoder(codec: AudioCodec) -> Box<dyn FrameDecoder> {
    match codec {
        AudioCodec::Opus => Box::new(OpusDecoder::new().unwrap()),
        AudioCodec::Pcmu => Box::new(G711Decoder::new(Law::Mu)),
        AudioCodec::Pcma => Box::new(G711Decoder::new(Law::A)),
    }
}

/// Sends `freq` for FRAMES × 20 ms, paced like a call, in the session's negotiated codec.
async fn talk(session: Arc<MediaSession>, freq: f32) {
    let mut enc = encoder(session.audio_codec().unwrap());
    let mut tone = ToneGenerator::new(freq, 0.3);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..FRAMES {
        tick.tick().await;
        let frame = tone.next_frame();
        let payload = match &mut enc {
            Enc::Opus(e) => e.encode(&frame).unwrap(),
            Enc::G711(e) => e.encode(&frame),
        };
        session.send_opus(Bytes::from(payload)).await.unwrap();
    }
}

/// Decodes what arrives (in arrival order; loopback does not reorder) until FRAMES or a timeout.
async fn listen(session: Arc<MediaSession>) -> Vec<i16> {
    let mut rx = session.take_audio().unwrap();
    let mut dec = decoder(session.audio_codec().unwrap());
    let mut pcm = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let mut n = 0;
    while let Ok(Some(p)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        pcm.extend_from_slice(dec.decode(&p.payload).samples());
        n += 1;
        if n >= FRAMES {
            break;
        }
    }
    pcm
}

async fn one_shape(name: &str) -> Result<(), String> {
    let shape = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sdp")
            .join(name),
    )
    .map_err(|e| e.to_string())?;
    let user_cfg = MediaConfig {
        ice_lite: true,
        ..MediaConfig::loopback()
    };
    let user = MediaSession::new(&user_cfg, "user")
        .await
        .map_err(|e| e.to_string())?;
    let offer = impose_codecs(
        &user.create_offer().await.map_err(|e| e.to_string())?,
        &shape,
    );
    user.offered_as(offer.clone());
    let (biz, answer) = MediaSession::answering(&MediaConfig::loopback(), "biz", &offer)
        .await
        .map_err(|e| format!("not answered: {e}"))?;
    user.apply_answer(&answer)
        .await
        .map_err(|e| format!("our answer was not applied: {e}\n{answer}"))?;
    let (a, b) = tokio::join!(
        user.wait_connected(Duration::from_secs(10)),
        biz.wait_connected(Duration::from_secs(10))
    );
    a.and(b).map_err(|s| format!("not connected: {s:?}"))?;
    let (_, _, heard_by_biz, heard_by_user) = tokio::join!(
        talk(user.clone(), 440.0),
        talk(biz.clone(), 880.0),
        listen(biz.clone()),
        listen(user.clone()),
    );
    let mut problems = Vec::new();
    for (who, heard, want) in [
        ("we", &heard_by_biz, 440.0),
        ("the user", &heard_by_user, 880.0),
    ] {
        if heard.len() < FRAMES * 960 * 9 / 10 {
            problems.push(format!("{who} heard {} samples", heard.len()));
            continue;
        }
        let f = dominant_frequency(&heard[heard.len() / 4..], 48_000);
        if (f - want).abs() > 10.0 {
            problems.push(format!("{who} heard {f} Hz, expected {want}"));
        }
    }
    // The caller's keypad reaches us when the shape offered telephone-event.
    if let Some(dtmf_pt) = biz.remote_audio().and_then(|r| r.dtmf_pt()) {
        let mut events = biz.take_events().unwrap();
        user.send_dtmf('5').await.map_err(|e| e.to_string())?;
        for _ in 0..12 {
            user.send_opus(Bytes::from_static(&[0xf8, 0xff, 0xfe]))
                .await
                .map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let digit = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match events.recv().await {
                    Some(MediaEvent::Dtmf(d)) => return Some(d),
                    Some(_) => continue,
                    None => return None,
                }
            }
        })
        .await;
        if digit != Ok(Some('5')) {
            problems.push(format!("key 5 on PT {dtmf_pt} arrived as {digit:?}"));
        }
    }
    let stats = biz.stats().await;
    if stats.unknown_payload_type > 0 {
        problems.push(format!(
            "{} packets with an unknown PT",
            stats.unknown_payload_type
        ));
    }
    user.close().await;
    biz.close().await;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_offer_shape_carries_a_tone_both_ways() {
    let results = futures_util::future::join_all(
        SHAPES
            .iter()
            .map(|name| async move { (name, one_shape(name).await) }),
    )
    .await;
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(name, r)| r.err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
