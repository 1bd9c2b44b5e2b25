//! The voice-AI behaviour: the caller's audio streams to a WebSocket server and the server's audio
//! is played to the caller, in Twilio Media Streams' message shapes (see [`super::protocol`]).
//!
//! The 20 ms audio loop must never wait on the network, so the behaviour only touches queues: it
//! resamples and encodes the caller's frame and hands it to a socket task (dropping audio if the
//! server falls behind, rather than delaying the call), and it plays whatever the socket task has
//! queued (silence when nothing is queued). Marks are acknowledged when the audio queued before
//! them has actually been played, and `clear` drops queued audio at once (barge-in).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tracing::{Instrument, debug, info, warn};

use super::protocol::{Inbound, Outbound, StreamFormat, parse_inbound};
use crate::audio::resample::{Resampler, f32_to_i16, i16_to_f32};
use crate::audio::{FRAME_SAMPLES, Frame, SAMPLE_RATE, mulaw};
use crate::edge::call_audio::{Behaviour, Outgoing};

/// Where and how to stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceAiConfig {
    /// `ws://` or `wss://` URL of the voice-AI server.
    pub url: String,
    pub format: StreamFormat,
}

/// What the behaviour asks the socket task to send.
enum Up {
    Audio(Vec<u8>),
    Mark(String),
    Dtmf(char),
}

/// Audio from the server waiting to be played, with the marks placed in it.
#[derive(Default)]
struct Playout {
    samples: VecDeque<i16>,
    /// (samples still to play before the mark is reached, name)
    marks: VecDeque<(usize, String)>,
}

pub struct VoiceAi {
    up: mpsc::Sender<Up>,
    playout: Arc<Mutex<Playout>>,
    failed: Arc<AtomicBool>,
    to_ai: Resampler,
    rate: u32,
    format: StreamFormat,
    /// Server-side audio resampled to 48 kHz, not yet a whole frame.
    from_ai: Resampler,
}

/// Audio up to this much may wait for the socket; beyond that the server is too slow and
/// audio is dropped (a voice-AI that lags by seconds is worse than one that misses a frame).
const UP_QUEUE: usize = 50;

impl VoiceAi {
    /// Starts streaming for one call; the socket connects in the background.
    pub fn start(
        cfg: &VoiceAiConfig,
        call_id: &str,
        from: &str,
        to: &str,
    ) -> Result<VoiceAi, String> {
        let rate = cfg.format.sample_rate();
        let to_ai = Resampler::new(SAMPLE_RATE, rate).map_err(|e| e.to_string())?;
        let from_ai = Resampler::new(rate, SAMPLE_RATE).map_err(|e| e.to_string())?;
        let (up_tx, up_rx) = mpsc::channel(UP_QUEUE);
        let playout = Arc::new(Mutex::new(Playout::default()));
        let failed = Arc::new(AtomicBool::new(false));
        let task = SocketTask {
            url: cfg.url.clone(),
            out: Outbound::new(call_id, cfg.format),
            format: cfg.format,
            from: from.to_string(),
            to: to.to_string(),
            playout: playout.clone(),
            failed: failed.clone(),
        };
        tokio::spawn(task.run(up_rx).in_current_span());
        Ok(VoiceAi {
            up: up_tx,
            playout,
            failed,
            to_ai,
            rate,
            format: cfg.format,
            from_ai,
        })
    }

    fn send_caller_audio(&mut self, heard: &Frame) {
        let pcm = f32_to_i16(&self.to_ai.process(&i16_to_f32(heard.samples())));
        let bytes = match self.format {
            StreamFormat::Mulaw8k => mulaw::encode(&pcm),
            StreamFormat::Pcm16k => pcm.iter().flat_map(|s| s.to_le_bytes()).collect(),
        };
        if !bytes.is_empty() && self.up.try_send(Up::Audio(bytes)).is_err() {
            debug!("voice-AI server is behind; caller audio dropped");
        }
    }

    fn next_frame(&mut self) -> Frame {
        // Pull enough server audio (at its rate) to make one 48 kHz frame.
        let need = (FRAME_SAMPLES as u32 * self.rate / SAMPLE_RATE) as usize;
        let (chunk, reached) = {
            let Ok(mut p) = self.playout.lock() else {
                return Frame::silence();
            };
            let n = need.min(p.samples.len());
            let chunk: Vec<i16> = p.samples.drain(..n).collect();
            let mut reached = Vec::new();
            for m in p.marks.iter_mut() {
                m.0 = m.0.saturating_sub(n);
            }
            while p.marks.front().is_some_and(|m| m.0 == 0) {
                if let Some((_, name)) = p.marks.pop_front() {
                    reached.push(name);
                }
            }
            (chunk, reached)
        };
        for name in reached {
            let _ = self.up.try_send(Up::Mark(name));
        }
        let mut pcm = chunk;
        pcm.resize(need, 0);
        let up = f32_to_i16(&self.from_ai.process(&i16_to_f32(&pcm)));
        let mut frame = Frame::silence();
        let n = up.len().min(FRAME_SAMPLES);
        frame.samples_mut()[..n].copy_from_slice(&up[..n]);
        frame
    }
}

impl Behaviour for VoiceAi {
    fn next(&mut self, heard: &Frame, _arrived: &[Bytes]) -> Outgoing {
        self.send_caller_audio(heard);
        Outgoing::Pcm(self.next_frame())
    }

    /// Forwarded as Twilio's `dtmf` event.
    fn on_dtmf(&mut self, digit: char) {
        let _ = self.up.try_send(Up::Dtmf(digit));
    }

    fn wants_hangup(&self) -> bool {
        // A bot whose brain is unreachable should not hold the caller in silence.
        self.failed.load(Ordering::Relaxed)
    }
}

/// How long the end of a stream waits for the server's Close after ours.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

struct SocketTask {
    url: String,
    out: Outbound,
    format: StreamFormat,
    from: String,
    to: String,
    playout: Arc<Mutex<Playout>>,
    failed: Arc<AtomicBool>,
}

impl SocketTask {
    async fn run(mut self, mut up: mpsc::Receiver<Up>) {
        let connector = match crate::edge::tls::connector_for(&self.url) {
            Ok(c) => c,
            Err(e) => {
                warn!(url = %self.url, error = %e, "voice-AI TLS set-up failed; the bot hangs up");
                self.failed.store(true, Ordering::Relaxed);
                return;
            }
        };
        let ws = match tokio_tungstenite::connect_async_tls_with_config(
            self.url.as_str(),
            None,
            false,
            connector,
        )
        .await
        {
            Ok((ws, _)) => ws,
            Err(e) => {
                warn!(url = %self.url, error = %e, "voice-AI server unreachable; the bot hangs up");
                self.failed.store(true, Ordering::Relaxed);
                return;
            }
        };
        info!(url = %self.url, "voice-AI stream started");
        let (mut sink, mut stream) = ws.split();
        let hello = [self.out.connected(), self.out.start(&self.from, &self.to)];
        for m in hello {
            if sink.send(Message::text(m.to_string())).await.is_err() {
                self.failed.store(true, Ordering::Relaxed);
                return;
            }
        }
        let started = tokio::time::Instant::now();
        loop {
            tokio::select! {
                item = up.recv() => {
                    let msg = match item {
                        Some(Up::Audio(bytes)) => self.out.media(&bytes, started.elapsed().as_millis() as u64),
                        Some(Up::Mark(name)) => self.out.mark(&name),
                        Some(Up::Dtmf(d)) => self.out.dtmf(d),
                        // The call ended (the behaviour was dropped).
                        None => break,
                    };
                    if sink.send(Message::text(msg.to_string())).await.is_err() {
                        warn!("voice-AI stream closed by the server");
                        self.failed.store(true, Ordering::Relaxed);
                        return;
                    }
                }
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(t))) => self.inbound(&t),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        info!("voice-AI server ended the stream");
                        self.failed.store(true, Ordering::Relaxed);
                        return;
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
        let _ = sink.send(Message::text(self.out.stop().to_string())).await;
        let _ = sink.close().await;
        // The closing handshake: wait (briefly) for the server's Close before dropping the
        // socket. Dropping at once while the server still streams makes our kernel answer its
        // next packet with a reset, and a reset discards what the server had not read yet,
        // `stop` included: the server would see a broken connection instead of the end.
        let drain = async {
            while let Some(Ok(frame)) = stream.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
    }

    fn inbound(&mut self, text: &str) {
        let Ok(mut p) = self.playout.lock() else {
            return;
        };
        match parse_inbound(text) {
            Ok(Inbound::Media(bytes)) => {
                let pcm: Vec<i16> = match self.format {
                    StreamFormat::Mulaw8k => mulaw::decode(&bytes),
                    StreamFormat::Pcm16k => bytes
                        .chunks_exact(2)
                        .map(|c| i16::from_le_bytes([c[0], c[1]]))
                        .collect(),
                };
                p.samples.extend(pcm);
            }
            Ok(Inbound::Mark(name)) => {
                let at = p.samples.len();
                p.marks.push_back((at, name));
            }
            Ok(Inbound::Clear) => {
                // Barge-in: what was queued is dropped, and its marks count as played.
                p.samples.clear();
                for m in p.marks.iter_mut() {
                    m.0 = 0;
                }
            }
            Ok(Inbound::Other(event)) => debug!(%event, "voice-AI event ignored"),
            Err(e) => warn!(error = %e, "unreadable voice-AI message ignored"),
        }
    }
}
