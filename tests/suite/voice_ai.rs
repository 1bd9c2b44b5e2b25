//! The bot streams a call to a voice-AI server in Twilio Media Streams' shapes: the server (a
//! real WebSocket server in this test) hears the caller's tone, answers with its own tone, which
//! the caller hears; marks come back once played; DTMF is forwarded; `stop` ends the stream.

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use common::{Rig, bot_config};
use wacall::audio::mulaw;
use wacall::audio::tone::{ToneGenerator, dominant_frequency};
use wacall::bot::voice_ai::{StreamFormat, VoiceAiConfig};
use wacall::call::CallTimeouts;
use wacall::sandbox::UserCall;

#[derive(Debug, Default)]
struct AiSaw {
    start: Option<Value>,
    caller_pcm: Vec<i16>,
    marks_back: Vec<String>,
    dtmf: Vec<String>,
    stopped: bool,
}

/// A minimal voice-AI server: talks 1000 Hz (8 kHz µ-law, 20 ms chunks), sends one mark.
/// `live` fires on the first media message from the bot: the stream carries the caller.
async fn ai_server(listener: TcpListener, live: tokio::sync::oneshot::Sender<()>) -> AiSaw {
    let mut live = Some(live);
    let (sock, _) = listener.accept().await.unwrap();
    let ws = tokio_tungstenite::accept_async(sock).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    let mut saw = AiSaw::default();
    let mut tone = ToneGenerator::new(1000.0, 0.3);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut sent = 0u32;
    let mut talking = true;
    let b64 = base64::engine::general_purpose::STANDARD;
    loop {
        tokio::select! {
            // A failed send ends the talking, not the test's reading: what the bot sent before
            // closing (its `stop`) is still to be read.
            _ = tick.tick(), if talking => {
                // 48 kHz tone decimated by 6 is an 8 kHz tone (1000 Hz is far below 4 kHz).
                let f = tone.next_frame();
                let pcm8: Vec<i16> = f.samples().iter().step_by(6).copied().collect();
                let msg = json!({"event": "media", "streamSid": "x", "media": {"payload": b64.encode(mulaw::encode(&pcm8))}});
                if sink.send(Message::text(msg.to_string())).await.is_err() { talking = false; continue; }
                sent += 1;
                if sent == 25 {
                    let m = json!({"event": "mark", "streamSid": "x", "mark": {"name": "greeting-done"}});
                    let _ = sink.send(Message::text(m.to_string())).await;
                }
            }
            m = stream.next() => {
                let Some(Ok(Message::Text(t))) = m else { break };
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["event"].as_str().unwrap_or("") {
                    "start" => saw.start = Some(v),
                    "media" => {
                        if let Some(l) = live.take() {
                            let _ = l.send(());
                        }
                        let bytes = b64.decode(v["media"]["payload"].as_str().unwrap()).unwrap();
                        saw.caller_pcm.extend(mulaw::decode(&bytes));
                    }
                    "mark" => saw.marks_back.push(v["mark"]["name"].as_str().unwrap().to_string()),
                    "dtmf" => saw.dtmf.push(v["dtmf"]["digit"].as_str().unwrap().to_string()),
                    "stop" => { saw.stopped = true; break; }
                    _ => {}
                }
            }
        }
    }
    saw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_streams_the_call_to_a_voice_ai_server_both_ways() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/stream", listener.local_addr().unwrap());
    let (live_tx, live_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(ai_server(listener, live_tx));
    let mut bot = bot_config(&std::env::temp_dir().join("wacall-e2e-ai"));
    bot.tone_hz = None;
    bot.voice_ai = Some(VoiceAiConfig {
        url,
        format: StreamFormat::Mulaw8k,
    });
    let rig = Rig::start(Some(bot), CallTimeouts::default()).await;
    let user = "5215500000123";
    let call_id = rig
        .sandbox
        .world
        .place_user_call(UserCall {
            user: user.into(),
            name: "Ada".into(),
            tone_hz: 440.0,
            hangup_after: Some(Duration::from_secs(4)),
        })
        .await
        .unwrap();
    // The key is pressed once the stream is carrying the call (not after a guessed delay).
    tokio::time::timeout(Duration::from_secs(10), live_rx)
        .await
        .expect("the bot never streamed the caller's audio")
        .unwrap();
    rig.sandbox.world.press_key(&call_id, '5').await.unwrap();
    let record = rig.wait_ended(&call_id, Duration::from_secs(20)).await;
    let saw = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stream stopped")
        .unwrap();

    let start = saw.start.expect("a start message");
    assert_eq!(start["start"]["callSid"], call_id.as_str());
    assert_eq!(start["start"]["customParameters"]["from"], user);
    assert_eq!(start["start"]["mediaFormat"]["encoding"], "audio/x-mulaw");
    assert_eq!(start["start"]["mediaFormat"]["sampleRate"], 8000);
    assert!(
        saw.caller_pcm.len() >= 8000 * 2,
        "AI heard {} samples",
        saw.caller_pcm.len()
    );
    let n = saw.caller_pcm.len();
    let heard = dominant_frequency(&saw.caller_pcm[n / 4..n * 3 / 4], 8000);
    assert!((heard - 440.0).abs() <= 5.0, "the AI heard {heard} Hz");
    let user_report = rig.sandbox.world.report(&call_id).unwrap();
    let hz = user_report.voice.heard_hz.expect("the caller heard audio");
    assert!((hz - 1000.0).abs() <= 5.0, "the caller heard {hz} Hz");
    assert_eq!(
        saw.marks_back,
        vec!["greeting-done".to_string()],
        "the mark comes back once played"
    );
    assert_eq!(saw.dtmf, vec!["5".to_string()]);
    assert!(saw.stopped, "the stream ends with stop");
    assert_eq!(record.dtmf, "5", "the key is in the call record");
    // With its time, for the call's timeline: after the answer, before the end.
    assert_eq!(record.dtmf_at.len(), 1, "{record:?}");
    assert!(record.accepted_at.as_deref() < Some(record.dtmf_at[0].as_str()));
    assert!(Some(record.dtmf_at[0].as_str()) < record.ended_at.as_deref());
    rig.stop().await;
}
