//! The per-call audio engine: one 20 ms loop per call that moves audio between the media session
//! and whatever the edge plugs in (a bot behaviour, the agent's devices).
//!
//! Each tick: queued RTP goes into the jitter buffer, one frame of what the remote party said
//! comes out (decoded, or concealed), the behaviour answers with our frame (as PCM to encode, or
//! as a ready Opus packet to relay), and the recorder gets both sides, aligned.
//! Nothing is sent before `unmute` (WhatsApp: no audio until `accept` returned 200 OK).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, warn};

use crate::audio::Frame;
use crate::audio::codec::{EncoderConfig, FrameDecoder, OpusDecoder, OpusEncoder};
use crate::audio::g711::{G711Decoder, G711Encoder, Law};
use crate::audio::jitter::JitterBuffer;
use crate::audio::recorder::CallRecorder;
use crate::call_record::Playout;
use crate::media::{AudioCodec, ConnState, MediaEvent, MediaSession, RtpAudio};

/// What we say in one 20 ms slot.
pub enum Outgoing {
    /// PCM to encode.
    Pcm(Frame),
    /// A ready Opus packet (cached prompt, relayed echo) and the PCM it stands for (recording).
    Packet { opus: Bytes, pcm: Frame },
    /// Nothing to say: a cached silence packet keeps the stream (and the peer's jitter buffer) alive.
    Silence,
}

/// What an edge plugs into a call: bots implement it with prompts, echo, AI streams; the
/// softphone with its microphone and speaker.
pub trait Behaviour: Send + 'static {
    /// `heard`: the remote party's audio for this slot. `arrived`: packets that arrived since the
    /// last slot (for relaying without transcoding).
    fn next(&mut self, heard: &Frame, arrived: &[Bytes]) -> Outgoing;

    /// The behaviour wants the call to end (prompt done, max duration reached).
    fn wants_hangup(&self) -> bool {
        false
    }

    /// The caller pressed a key (RFC 4733).
    fn on_dtmf(&mut self, _digit: char) {}

    /// The call's codec and the Opus encoder setting the peer asked for, told once before the
    /// first slot (a cached prompt picks the encoding that fits).
    fn configure(&mut self, _codec: AudioCodec, _encoder: &EncoderConfig) {}
}

/// Live controls and meters of a running engine.
pub struct CallAudio {
    sending: Arc<AtomicBool>,
    muted: Arc<AtomicBool>,
    recording: Arc<AtomicBool>,
    /// Level meters in hundredths of a dBFS.
    level_in: Arc<AtomicI32>,
    level_out: Arc<AtomicI32>,
    hangup: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Option<CallRecorder>>>,
    dtmf: StdMutex<Option<mpsc::Receiver<char>>>,
    playout: Arc<StdMutex<Playout>>,
}

/// A codec made on first use. A failure is logged once and not retried every 20 ms: the call
/// goes on in silence that way.
enum OnFirstUse<T> {
    NotYet,
    Ready(T),
    Failed,
}

impl<T> OnFirstUse<T> {
    fn make_once(
        &mut self,
        make: impl FnOnce() -> Result<T, crate::audio::codec::CodecError>,
        failed: &str,
    ) {
        if let OnFirstUse::NotYet = self {
            *self = match make() {
                Ok(t) => OnFirstUse::Ready(t),
                Err(e) => {
                    warn!(error = %e, "{failed}");
                    OnFirstUse::Failed
                }
            };
        }
    }

    fn ready(&mut self) -> Option<&mut T> {
        match self {
            OnFirstUse::Ready(t) => Some(t),
            _ => None,
        }
    }
}

/// Frames between updates of the playout figures the edge reports (25 = twice a second).
const PUBLISH_PLAYOUT_EVERY: u64 = 25;

/// Received audio on its way to the jitter buffer.
#[derive(Default)]
struct Incoming {
    jitter: JitterBuffer,
    ssrc: Option<u32>,
    /// Totals of the buffers replaced on SSRC changes, so the call's totals only grow.
    earlier: Playout,
    frames: u64,
}

impl Incoming {
    /// Queues one packet. Returns true when it starts a new sender stream (another SSRC): the
    /// buffer was reset and the caller must reset its decoder. A new stream has its own
    /// sequence and clock; played into the old buffer it would be a burst of late or concealed
    /// frames.
    fn push(&mut self, p: RtpAudio, codec: Option<AudioCodec>) -> bool {
        let reset = self.ssrc.is_some_and(|s| s != p.ssrc);
        if reset {
            debug!(old = ?self.ssrc, new = p.ssrc, "remote SSRC changed; jitter buffer and decoder reset");
            self.earlier = self.playout();
            self.earlier.frames = 0;
            self.jitter = JitterBuffer::new();
        }
        self.ssrc = Some(p.ssrc);
        // The jitter buffer counts time in 48 kHz units; G.711's clock is 8 kHz.
        let scale = codec.map_or(1, |c| 48_000 / c.clock_rate());
        self.jitter.push(
            p.seq,
            p.timestamp.wrapping_mul(scale),
            p.payload,
            p.arrival_ms,
        );
        reset
    }

    /// The call's playout totals so far.
    fn playout(&self) -> Playout {
        let j = self.jitter.stats();
        Playout {
            frames: self.frames,
            late: self.earlier.late + j.late,
            concealed: self.earlier.concealed + j.concealed,
            fec_recovered: self.earlier.fec_recovered + j.fec_recovered,
        }
    }
}

/// The decoder for the call's codec.
fn make_decoder(
    codec: AudioCodec,
) -> Result<Box<dyn FrameDecoder>, crate::audio::codec::CodecError> {
    Ok(match codec {
        AudioCodec::Opus => Box::new(OpusDecoder::new()?),
        AudioCodec::Pcmu => Box::new(G711Decoder::new(Law::Mu)),
        AudioCodec::Pcma => Box::new(G711Decoder::new(Law::A)),
    })
}

/// The encoder for live audio (tone, voice-AI, microphone); Opus with the setting the peer's
/// fmtp asked for (bitrate cap, bandwidth, FEC).
enum LiveEncoder {
    Opus(OpusEncoder),
    /// Boxed: its filter history is 200 samples, the Opus encoder a pointer.
    G711(Box<G711Encoder>),
}

impl LiveEncoder {
    fn new(
        codec: AudioCodec,
        cfg: &EncoderConfig,
    ) -> Result<Self, crate::audio::codec::CodecError> {
        Ok(match codec {
            AudioCodec::Opus => LiveEncoder::Opus(OpusEncoder::new(cfg.clone())?),
            AudioCodec::Pcmu => LiveEncoder::G711(Box::new(G711Encoder::new(Law::Mu))),
            AudioCodec::Pcma => LiveEncoder::G711(Box::new(G711Encoder::new(Law::A))),
        })
    }

    fn encode(&mut self, pcm: &Frame) -> Result<Vec<u8>, crate::audio::codec::CodecError> {
        match self {
            LiveEncoder::Opus(e) => e.encode(pcm),
            LiveEncoder::G711(e) => Ok(e.encode(pcm)),
        }
    }
}

/// One Opus packet of silence, encoded once per process (every call sends the same bytes).
fn silence_packet() -> Result<Bytes, crate::audio::codec::CodecError> {
    static SILENCE: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    if let Some(b) = SILENCE.get() {
        return Ok(b.clone());
    }
    let packet =
        Bytes::from(OpusEncoder::new(EncoderConfig::default())?.encode(&Frame::silence())?);
    Ok(SILENCE.get_or_init(|| packet).clone())
}

impl CallAudio {
    /// Starts the loop. `recorder`: where both sides are written once the call is answered.
    pub fn start(
        media: Arc<MediaSession>,
        mut behaviour: Box<dyn Behaviour>,
        encoder: EncoderConfig,
        mut recorder: Option<CallRecorder>,
    ) -> Result<CallAudio, crate::audio::codec::CodecError> {
        // The encoder is made on the first live frame: a bot that only plays cached prompts and
        // silence, or relays, never pays for one. The decoder is made on the first packet, so
        // neither sits on the path from offer to answer (a profile of fifty calls arriving at
        // once showed decoder set-up there).
        let mut encoder_cfg = encoder;
        let mut encoder: OnFirstUse<LiveEncoder> = OnFirstUse::NotYet;
        let mut decoder: OnFirstUse<Box<dyn FrameDecoder>> = OnFirstUse::NotYet;
        let silence = silence_packet()?;
        let sending = Arc::new(AtomicBool::new(false));
        let muted = Arc::new(AtomicBool::new(false));
        let recording = Arc::new(AtomicBool::new(false));
        let level_in = Arc::new(AtomicI32::new(-9600));
        let level_out = Arc::new(AtomicI32::new(-9600));
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (hangup_tx, hangup_rx) = watch::channel(false);
        let mut audio_rx = media.take_audio();
        let mut events_rx = media.take_events();
        let (dtmf_tx, dtmf_rx) = mpsc::channel::<char>(32);
        let playout = Arc::new(StdMutex::new(Playout::default()));
        let playout_out = playout.clone();

        let (s, m, r, li, lo) = (
            sending.clone(),
            muted.clone(),
            recording.clone(),
            level_in.clone(),
            level_out.clone(),
        );
        let task = tokio::spawn(
            async move {
                let mut incoming = Incoming::default();
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut arrived: Vec<Bytes> = Vec::new();
                // Known once the SDP is negotiated (before any packet can arrive).
                let mut codec: Option<AudioCodec> = None;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop_rx.changed() => break,
                    }
                    if let Some(ev) = events_rx.as_mut() {
                        while let Ok(e) = ev.try_recv() {
                            if let MediaEvent::Dtmf(d) = e {
                                behaviour.on_dtmf(d);
                                let _ = dtmf_tx.try_send(d);
                            }
                        }
                    }
                    arrived.clear();
                    // Once negotiated: the codec, and the encoder setting the peer asked for (live
                    // audio and cached prompts alike).
                    if codec.is_none()
                        && let Some(remote) = media.remote_audio()
                    {
                        encoder_cfg = encoder_cfg.honour_fmtp(remote.audio_fmtp());
                        behaviour.configure(remote.codec(), &encoder_cfg);
                        codec = Some(remote.codec());
                    }
                    if let Some(rx) = audio_rx.as_mut() {
                        while let Ok(p) = rx.try_recv() {
                            arrived.push(p.payload.clone());
                            if incoming.push(p, codec) {
                                decoder = OnFirstUse::NotYet;
                            }
                        }
                    }
                    if !arrived.is_empty()
                        && let Some(c) = codec
                    {
                        decoder.make_once(|| make_decoder(c), "no audio decoder; hearing silence");
                    }
                    let heard = match decoder.ready() {
                        Some(d) => {
                            incoming.frames += 1;
                            let f = incoming.jitter.pop_frame(d.as_mut());
                            // Read every 2 s for stats: published twice a second, not
                            // every frame.
                            if incoming.frames % PUBLISH_PLAYOUT_EVERY == 0
                                && let Ok(mut p) = playout_out.try_lock()
                            {
                                *p = incoming.playout();
                            }
                            f
                        }
                        None => Frame::silence(),
                    };
                    li.store((heard.level_dbfs() * 100.0) as i32, Ordering::Relaxed);
                    // Until accept returned 200 OK (and SRTP is up) nothing is sent, and the
                    // behaviour does not advance: a prompt must start at its first word.
                    if !s.load(Ordering::Relaxed) || media.state() != ConnState::Connected {
                        continue;
                    }
                    let out = behaviour.next(&heard, &arrived);
                    let muted_now = m.load(Ordering::Relaxed);
                    let opus = codec.is_none_or(|c| c == AudioCodec::Opus);
                    // Cached packets are Opus: a G.711 call encodes what they stand for.
                    let out = match out {
                        _ if muted_now && !opus => Outgoing::Pcm(Frame::silence()),
                        Outgoing::Packet { pcm, .. } if !opus => Outgoing::Pcm(pcm),
                        Outgoing::Silence if !opus => Outgoing::Pcm(Frame::silence()),
                        other => other,
                    };
                    let (packet, ours) = match out {
                        _ if muted_now && opus => (silence.clone(), Frame::silence()),
                        Outgoing::Packet { opus, pcm } => (opus, pcm),
                        Outgoing::Silence => (silence.clone(), Frame::silence()),
                        Outgoing::Pcm(pcm) => {
                            let c = codec.unwrap_or(AudioCodec::Opus);
                            encoder.make_once(
                                || LiveEncoder::new(c, &encoder_cfg),
                                "no audio encoder; sending silence",
                            );
                            match encoder.ready().map(|e| e.encode(&pcm)) {
                                Some(Ok(p)) => (Bytes::from(p), pcm),
                                Some(Err(e)) => {
                                    warn!(error = %e, "Opus encode failed; sending silence");
                                    (silence.clone(), Frame::silence())
                                }
                                None => (silence.clone(), Frame::silence()),
                            }
                        }
                    };
                    lo.store((ours.level_dbfs() * 100.0) as i32, Ordering::Relaxed);
                    if let Err(e) = media.send_opus(packet).await {
                        debug!(error = %e, "send failed; the call is ending");
                    }
                    if r.load(Ordering::Relaxed)
                        && let Some(rec) = recorder.as_mut()
                        && let Err(e) = rec.write(&heard, &ours)
                    {
                        warn!(error = %e, "recording stopped");
                        recorder = None;
                    }
                    if behaviour.wants_hangup() {
                        let _ = hangup_tx.send(true);
                    }
                }
                if let Ok(mut p) = playout_out.lock() {
                    *p = incoming.playout();
                }
                if let Some(rec) = recorder.as_mut()
                    && let Err(e) = rec.finish_audio()
                {
                    warn!(error = %e, "closing the recording");
                }
                recorder
            }
            .in_current_span(),
        );
        Ok(CallAudio {
            sending,
            muted,
            recording,
            level_in,
            level_out,
            hangup: hangup_rx,
            stop: stop_tx,
            task: Some(task),
            dtmf: StdMutex::new(Some(dtmf_rx)),
            playout,
        })
    }

    /// What the jitter buffer made of the call's packets so far (for the stats edges send).
    pub fn playout(&self) -> Playout {
        self.playout.lock().map(|p| *p).unwrap_or_default()
    }

    /// `accept` returned 200 OK: start sending and recording.
    pub fn unmute_call(&self) {
        self.sending.store(true, Ordering::Relaxed);
        self.recording.store(true, Ordering::Relaxed);
    }

    /// The agent's mute button: we keep sending, but silence.
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    pub fn is_muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    /// (remote, ours) levels in dBFS, for meters.
    pub fn levels(&self) -> (f32, f32) {
        (
            self.level_in.load(Ordering::Relaxed) as f32 / 100.0,
            self.level_out.load(Ordering::Relaxed) as f32 / 100.0,
        )
    }

    /// DTMF keys the caller pressed (once; the owner reports them).
    pub fn take_dtmf(&self) -> Option<mpsc::Receiver<char>> {
        self.dtmf.lock().ok()?.take()
    }

    /// Resolves when the behaviour asks to hang up.
    pub fn hangup_requested(&self) -> watch::Receiver<bool> {
        self.hangup.clone()
    }

    /// Stops the loop, closes the recording's audio and hands the recorder back so the caller
    /// can write the sidecar.
    pub async fn stop(mut self) -> Option<CallRecorder> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(t) => t.await.ok().flatten(),
            None => None,
        }
    }
}

impl Drop for CallAudio {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ssrc: u32, seq: u16, ts: u32, at: u64) -> RtpAudio {
        RtpAudio {
            ssrc,
            seq,
            timestamp: ts,
            payload: Bytes::from(vec![0xFF; 160]),
            arrival_ms: at,
        }
    }

    #[test]
    fn a_new_ssrc_restarts_playout_without_a_burst_of_concealment() {
        let mut inc = Incoming::default();
        let mut dec = G711Decoder::new(Law::Mu);
        let mut at = 0;
        for i in 0..50u16 {
            assert!(!inc.push(
                packet(1, 100 + i, 1000 + u32::from(i) * 160, at),
                Some(AudioCodec::Pcmu)
            ));
            inc.jitter.pop_frame(&mut dec);
            at += 20;
        }
        let before = inc.jitter.stats().concealed;
        // The sender restarts: new SSRC, a sequence and clock far from the old ones.
        let mut resets = 0;
        for i in 0..50u16 {
            if inc.push(
                packet(2, 40_000 + i, 9_000_000 + u32::from(i) * 160, at),
                Some(AudioCodec::Pcmu),
            ) {
                resets += 1;
            }
            inc.jitter.pop_frame(&mut dec);
            at += 20;
        }
        assert_eq!(resets, 1);
        let after = inc.jitter.stats();
        // Only the new buffer's start-up, not a stream of "lost" packets.
        assert!(after.concealed <= 3, "{before} then {after:?}");
        assert!(after.late == 0, "{after:?}");
    }
}
