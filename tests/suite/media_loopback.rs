//! Two real WebRTC peers on 127.0.0.1: a simulated WhatsApp side (ICE-lite, actpass offer, mid
//! `audio`, PT 111/126) and the business side. Audio goes both ways as real Opus and is checked
//! by frequency; a DTMF key crosses; the answer has the shape WhatsApp requires.

use std::sync::Arc;
use std::time::Duration;

use wacall::media::{MediaConfig, MediaEvent, MediaSession};

const SECONDS: usize = 3;

fn tone_frame(freq: f64, n: usize) -> Vec<i16> {
    (0..960)
        .map(|i| {
            let t = (n * 960 + i) as f64 / 48_000.0;
            (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// Goertzel power at one frequency.
fn power(samples: &[i16], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

fn dominant(samples: &[i16]) -> f64 {
    (100..2000)
        .map(f64::from)
        .max_by(|a, b| power(samples, *a).total_cmp(&power(samples, *b)))
        .unwrap()
}

/// Sends `freq` for SECONDS on `tx`'s session, paced at 20 ms like a real call.
async fn talk(session: Arc<MediaSession>, freq: f64) {
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for n in 0..SECONDS * 50 {
        tick.tick().await;
        let pkt = enc.encode_vec(&tone_frame(freq, n), 4000).unwrap();
        session.send_opus(pkt.into()).await.unwrap();
    }
}

/// Collects and decodes what arrives for SECONDS.
async fn listen(session: Arc<MediaSession>) -> Vec<i16> {
    let mut rx = session.take_audio().unwrap();
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut pcm = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(SECONDS as u64 + 2);
    while let Ok(Some(p)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let mut out = [0i16; 960];
        let n = dec.decode(&p.payload, &mut out, false).unwrap();
        pcm.extend_from_slice(&out[..n]);
        if pcm.len() >= SECONDS * 48_000 {
            break;
        }
    }
    pcm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_shaped_call_carries_audio_both_ways_and_dtmf() {
    let wa_cfg = MediaConfig {
        ice_lite: true,
        ..MediaConfig::loopback()
    };
    let wa = MediaSession::new(&wa_cfg, "sim-user").await.unwrap();
    let biz = MediaSession::new(&MediaConfig::loopback(), "biz")
        .await
        .unwrap();

    let offer = wa.create_offer().await.unwrap();
    assert!(offer.contains("a=ice-lite"), "{offer}");
    assert!(offer.contains("a=setup:actpass"));
    assert!(offer.contains("a=mid:audio"), "{offer}");

    let answer = biz.answer(&offer).await.unwrap();
    assert!(answer.contains("a=setup:active"), "{answer}");
    assert!(
        answer.contains("a=candidate:"),
        "answer has no candidates: {answer}"
    );
    assert!(answer.contains("a=rtpmap:111 opus/48000/2"));
    assert!(answer.contains("a=rtpmap:126 telephone-event/8000"));
    assert!(!answer.contains("a=ice-lite"));
    let fps: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=fingerprint:"))
        .collect();
    assert!(!fps.is_empty() && fps.iter().all(|l| l.starts_with("a=fingerprint:sha-256 ")));
    assert!(answer.contains("\r\n"));

    let remote = wa.apply_answer(&answer).await.unwrap();
    assert_eq!(remote.setup, "active");

    let (a, b) = tokio::join!(
        wa.wait_connected(Duration::from_secs(10)),
        biz.wait_connected(Duration::from_secs(10))
    );
    a.unwrap();
    b.unwrap();

    let (_, _, heard_by_biz, heard_by_wa) = tokio::join!(
        talk(wa.clone(), 440.0),
        talk(biz.clone(), 880.0),
        listen(biz.clone()),
        listen(wa.clone()),
    );
    assert!(
        heard_by_biz.len() >= (SECONDS * 48_000) * 9 / 10,
        "{}",
        heard_by_biz.len()
    );
    assert!(
        heard_by_wa.len() >= (SECONDS * 48_000) * 9 / 10,
        "{}",
        heard_by_wa.len()
    );
    let skip = 48_000 / 5; // the decoder's start-up
    let f_biz = dominant(&heard_by_biz[skip..]);
    let f_wa = dominant(&heard_by_wa[skip..]);
    assert!((f_biz - 440.0).abs() <= 5.0, "business heard {f_biz} Hz");
    assert!((f_wa - 880.0).abs() <= 5.0, "user heard {f_wa} Hz");

    let (sb, sw) = (biz.stats().await, wa.stats().await);
    assert_eq!(sb.received.lost, 0, "{sb:?}");
    assert_eq!(sw.received.lost, 0, "{sw:?}");
    assert!(sb.packets_sent >= (SECONDS * 50) as u64);

    // DTMF from the business to the user, carried in the audio slots.
    let mut events = wa.take_events().unwrap();
    biz.send_dtmf('7').await.unwrap();
    let sender = {
        let biz = biz.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                biz.send_opus(bytes::Bytes::from_static(&[0xf8, 0xff, 0xfe]))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let digit = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match events.recv().await {
                Some(MediaEvent::Dtmf(d)) => return Some(d),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .expect("no DTMF within 3 s");
    assert_eq!(digit, Some('7'));
    sender.await.unwrap();

    wa.close().await;
    biz.close().await;
}
