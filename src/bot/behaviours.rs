//! Small answering behaviours a bot combines: play a prompt (pre-encoded once, shared by every
//! call), echo (relayed without transcoding), a steady tone (tests, line checks), and a cap on
//! call length. Each is one `Behaviour`; `Sequence` plays them one after another.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use crate::audio::Frame;
use crate::audio::codec::{EncoderConfig, OpusEncoder};
use crate::audio::tone::ToneGenerator;
use crate::edge::call_audio::{Behaviour, Outgoing};
use crate::media::AudioCodec;

/// A prompt encoded once per encoder setting: every call with that setting sends the same
/// packets, so a prompt costs no encoder time per call (see docs/performance.md). The PCM is
/// kept for the recording's right channel (and for G.711 calls, which encode it live).
///
/// Encoding runs on a thread of its own, ahead of playback, so a long prompt does not delay
/// start-up (a 120 s prompt took 0.6 s to encode, and `serve --bot` answered nothing meanwhile).
/// libopus runs some 200 times faster than real time, so only a call that starts within
/// milliseconds of the clip hears a few frames of silence first; a peer whose fmtp asks for less
/// (a bitrate cap, wideband) gets its own encoding, made the first time one asks.
#[derive(Clone)]
pub struct PromptClip {
    inner: Arc<ClipInner>,
}

struct ClipInner {
    /// The clip's PCM, once read (a WAV is read on the clip's own thread).
    pcm: OnceLock<Arc<Vec<Frame>>>,
    /// Reading failed: the prompt stays silent (and counts as played).
    failed: std::sync::atomic::AtomicBool,
    variants: Mutex<Vec<(EncoderConfig, Arc<Encoded>)>>,
}

/// One encoding of the clip, growing while its thread runs.
#[derive(Default)]
struct Encoded {
    done: OnceLock<Vec<Bytes>>,
    partial: Mutex<Vec<Bytes>>,
}

impl Encoded {
    fn get(&self, i: usize) -> Option<Bytes> {
        if let Some(all) = self.done.get() {
            return all.get(i).cloned();
        }
        self.partial.lock().ok()?.get(i).cloned()
    }
}

impl PromptClip {
    /// Starts encoding `frames` with `cfg` in the background; fails only if libopus refuses
    /// the setting.
    pub fn encode(
        frames: Vec<Frame>,
        cfg: EncoderConfig,
    ) -> Result<Self, crate::audio::codec::CodecError> {
        let clip = Self::empty();
        let _ = clip.inner.pcm.set(Arc::new(frames));
        clip.start_variant(cfg)?;
        Ok(clip)
    }

    /// A prompt from a WAV file: the file is checked now (a bad one fails start-up), read and
    /// encoded on the clip's own thread. Reading a 120 s file took 150 ms, which `serve --bot`
    /// otherwise spent before opening its port.
    pub fn load(path: &std::path::Path, cfg: EncoderConfig) -> anyhow::Result<Self> {
        crate::audio::source::check_wav(path)?;
        let clip = Self::empty();
        // The encoder is made now so a setting libopus refuses fails here too.
        clip.start_variant(cfg)?;
        let (inner, path) = (clip.inner.clone(), path.to_owned());
        std::thread::Builder::new()
            .name("wacall-prompt-read".into())
            .spawn(move || match crate::audio::source::read_wav_frames(&path) {
                Ok(frames) => {
                    let _ = inner.pcm.set(Arc::new(frames));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "prompt not readable; calls hear silence instead");
                    inner
                        .failed
                        .store(true, std::sync::atomic::Ordering::Release);
                }
            })?;
        Ok(clip)
    }

    fn empty() -> Self {
        PromptClip {
            inner: Arc::new(ClipInner {
                pcm: OnceLock::new(),
                failed: Default::default(),
                variants: Mutex::new(Vec::new()),
            }),
        }
    }

    fn start_variant(
        &self,
        cfg: EncoderConfig,
    ) -> Result<Arc<Encoded>, crate::audio::codec::CodecError> {
        let mut enc = OpusEncoder::new(cfg.clone())?;
        let encoded = Arc::new(Encoded::default());
        if let Ok(mut v) = self.inner.variants.lock() {
            v.push((cfg, encoded.clone()));
        }
        let (inner, out) = (self.inner.clone(), encoded.clone());
        let spawned = std::thread::Builder::new()
            .name("wacall-prompt".into())
            .spawn(move || {
                let pcm = loop {
                    if let Some(p) = inner.pcm.get() {
                        break p.clone();
                    }
                    if inner.failed.load(std::sync::atomic::Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                };
                // Appended in batches: a reader takes the lock 50 times a second per call.
                const BATCH: usize = 50;
                let mut all = Vec::with_capacity(pcm.len());
                for chunk in pcm.chunks(BATCH) {
                    for f in chunk {
                        let packet = enc.encode(f).unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "prompt frame not encoded; silence instead");
                            Vec::new()
                        });
                        all.push(Bytes::from(packet));
                    }
                    if let Ok(mut p) = out.partial.lock() {
                        let have = p.len();
                        p.extend_from_slice(&all[have..]);
                    }
                }
                let _ = out.done.set(all);
                if let Ok(mut p) = out.partial.lock() {
                    *p = Vec::new();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread for the prompt's encoding; the prompt stays silent");
        }
        Ok(encoded)
    }

    /// The encoding for `cfg` (the first one made when `None`), started now if new.
    fn variant(&self, cfg: Option<&EncoderConfig>) -> Option<Arc<Encoded>> {
        {
            let v = self.inner.variants.lock().ok()?;
            let found = match cfg {
                None => v.first(),
                Some(c) => v.iter().find(|(k, _)| k == c),
            };
            if let Some((_, e)) = found {
                return Some(e.clone());
            }
        }
        self.start_variant(cfg?.clone()).ok()
    }

    /// Frames in the clip; `None` while a WAV is still being read.
    pub fn len_frames(&self) -> Option<usize> {
        if self.inner.failed.load(std::sync::atomic::Ordering::Acquire) {
            return Some(0);
        }
        self.inner.pcm.get().map(|p| p.len())
    }

    fn frame(&self, i: usize) -> Option<Frame> {
        self.inner.pcm.get()?.get(i).cloned()
    }

    /// Blocks until the first encoding is complete (tests, benchmarks).
    pub fn wait_encoded(&self) {
        if let Some(e) = self.variant(None) {
            while e.done.get().is_none()
                && !self.inner.failed.load(std::sync::atomic::Ordering::Acquire)
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

/// Plays a prompt once.
pub struct Prompt {
    clip: PromptClip,
    packets: Option<Arc<Encoded>>,
    pos: usize,
    /// Start again at the end (music on hold, load tests that need audio the whole call).
    looping: bool,
}

impl Prompt {
    pub fn new(clip: PromptClip) -> Self {
        let packets = clip.variant(None);
        Prompt {
            clip,
            packets,
            pos: 0,
            looping: false,
        }
    }

    /// The same prompt, played again and again: never done.
    pub fn looping(mut self) -> Self {
        self.looping = true;
        self
    }

    /// Played to the end (a clip still being read is not done).
    fn done(&self) -> bool {
        !self.looping && self.clip.len_frames().is_some_and(|n| self.pos >= n)
    }
}

impl Behaviour for Prompt {
    fn next(&mut self, _heard: &Frame, _arrived: &[Bytes]) -> Outgoing {
        // Not read or not encoded yet (a call in the first milliseconds after start): wait in
        // silence rather than skip the prompt's first words.
        if self.looping
            && self
                .clip
                .len_frames()
                .is_some_and(|n| n > 0 && self.pos >= n)
        {
            self.pos = 0;
        }
        let Some(pcm) = self.clip.frame(self.pos) else {
            return Outgoing::Silence;
        };
        let Some(opus) = self.packets.as_ref().and_then(|p| p.get(self.pos)) else {
            return Outgoing::Silence;
        };
        self.pos += 1;
        Outgoing::Packet { opus, pcm }
    }

    fn configure(&mut self, codec: AudioCodec, encoder: &EncoderConfig) {
        if codec == AudioCodec::Opus {
            self.packets = self.clip.variant(Some(encoder));
        }
    }
}

/// Sends back what the caller says. The arriving Opus payload is relayed as is: no decode for
/// sending, no encode, so echo costs next to nothing per call.
pub struct Echo;

impl Behaviour for Echo {
    fn next(&mut self, heard: &Frame, arrived: &[Bytes]) -> Outgoing {
        match arrived.last() {
            Some(p) => Outgoing::Packet {
                opus: p.clone(),
                pcm: heard.clone(),
            },
            None => Outgoing::Silence,
        }
    }
}

/// A steady tone (line checks and the end-to-end tests' known frequency).
pub struct Tone(pub ToneGenerator);

impl Behaviour for Tone {
    fn next(&mut self, _heard: &Frame, _arrived: &[Bytes]) -> Outgoing {
        Outgoing::Pcm(self.0.next_frame())
    }
}

/// Plays a prompt, then hands over to the next behaviour; optionally hangs up after the prompt.
pub struct Sequence {
    prompt: Option<Prompt>,
    then: Option<Box<dyn Behaviour>>,
    hangup_after_prompt: bool,
}

impl Sequence {
    pub fn new(
        prompt: Option<Prompt>,
        then: Option<Box<dyn Behaviour>>,
        hangup_after_prompt: bool,
    ) -> Self {
        Sequence {
            prompt,
            then,
            hangup_after_prompt,
        }
    }
}

impl Behaviour for Sequence {
    fn next(&mut self, heard: &Frame, arrived: &[Bytes]) -> Outgoing {
        if let Some(p) = self.prompt.as_mut().filter(|p| !p.done()) {
            return p.next(heard, arrived);
        }
        match self.then.as_mut() {
            Some(b) => b.next(heard, arrived),
            None => Outgoing::Silence,
        }
    }

    fn on_dtmf(&mut self, digit: char) {
        if let Some(b) = self.then.as_mut() {
            b.on_dtmf(digit);
        }
    }

    fn configure(&mut self, codec: AudioCodec, encoder: &EncoderConfig) {
        if let Some(p) = self.prompt.as_mut() {
            p.configure(codec, encoder);
        }
        if let Some(b) = self.then.as_mut() {
            b.configure(codec, encoder);
        }
    }

    fn wants_hangup(&self) -> bool {
        let prompt_done = self.prompt.as_ref().is_none_or(Prompt::done);
        (self.hangup_after_prompt && prompt_done && self.prompt.is_some())
            || self.then.as_ref().is_some_and(|b| b.wants_hangup())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize) -> Vec<Frame> {
        let mut t = ToneGenerator::new(440.0, 0.3);
        (0..n).map(|_| t.next_frame()).collect()
    }

    #[test]
    fn prompt_plays_its_packets_once_then_silence() {
        let clip = PromptClip::encode(frames(3), EncoderConfig::default()).unwrap();
        clip.wait_encoded();
        let mut p = Prompt::new(clip);
        let silence = Frame::silence();
        for _ in 0..3 {
            assert!(matches!(p.next(&silence, &[]), Outgoing::Packet { .. }));
        }
        assert!(matches!(p.next(&silence, &[]), Outgoing::Silence));
    }

    #[test]
    fn a_looping_prompt_starts_again_and_is_never_done() {
        let clip = PromptClip::encode(frames(3), EncoderConfig::default()).unwrap();
        clip.wait_encoded();
        let mut p = Prompt::new(clip).looping();
        let silence = Frame::silence();
        for _ in 0..10 {
            assert!(matches!(p.next(&silence, &[]), Outgoing::Packet { .. }));
            assert!(!p.done());
        }
    }

    #[test]
    fn a_wav_prompt_is_checked_now_and_read_in_the_background() {
        let dir = std::env::temp_dir().join(format!("wacall-prompt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wav = dir.join("p.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).unwrap();
        for i in 0..16_000 {
            w.write_sample(((i as f32 * 0.2).sin() * 8000.0) as i16)
                .unwrap();
        }
        w.finalize().unwrap();
        let clip = PromptClip::load(&wav, EncoderConfig::default()).unwrap();
        clip.wait_encoded();
        assert_eq!(
            clip.len_frames(),
            Some(50),
            "1 s at 16 kHz = 50 frames at 48 kHz"
        );
        let mut p = Prompt::new(clip);
        let mut played = 0;
        while !p.done() {
            if matches!(p.next(&Frame::silence(), &[]), Outgoing::Packet { .. }) {
                played += 1;
            }
        }
        assert_eq!(played, 50);
        let missing = PromptClip::load(&dir.join("nope.wav"), EncoderConfig::default());
        assert!(missing.err().unwrap().to_string().contains("nope.wav"));
        std::fs::write(dir.join("bad.wav"), b"RIFF....WAVEjunk").unwrap();
        assert!(PromptClip::load(&dir.join("bad.wav"), EncoderConfig::default()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_peer_asking_for_less_gets_its_own_encoding() {
        let clip = PromptClip::encode(frames(50), EncoderConfig::default()).unwrap();
        clip.wait_encoded();
        let wideband =
            EncoderConfig::default().honour_fmtp("maxaveragebitrate=12000;maxplaybackrate=16000");
        let mut full = Prompt::new(clip.clone());
        let mut narrow = Prompt::new(clip);
        narrow.configure(AudioCodec::Opus, &wideband);
        let size = |p: &mut Prompt| {
            let mut bytes = 0;
            let mut played = 0;
            while played < 50 {
                if let Outgoing::Packet { opus, .. } = p.next(&Frame::silence(), &[]) {
                    bytes += opus.len();
                    played += 1;
                }
            }
            bytes
        };
        let (f, n) = (size(&mut full), size(&mut narrow));
        assert!(n * 3 < f * 2, "capped {n} bytes vs default {f}");
    }

    #[test]
    fn echo_relays_the_last_arrived_payload() {
        let mut e = Echo;
        let pkt = Bytes::from_static(b"opus");
        match e.next(&Frame::silence(), std::slice::from_ref(&pkt)) {
            Outgoing::Packet { opus, .. } => assert_eq!(opus, pkt),
            _ => panic!("echo did not relay"),
        }
        assert!(matches!(e.next(&Frame::silence(), &[]), Outgoing::Silence));
    }

    #[test]
    fn sequence_hands_over_and_hangs_up_when_asked() {
        let clip = PromptClip::encode(frames(2), EncoderConfig::default()).unwrap();
        clip.wait_encoded();
        let mut s = Sequence::new(Some(Prompt::new(clip.clone())), Some(Box::new(Echo)), false);
        let pkt = Bytes::from_static(b"x");
        s.next(&Frame::silence(), &[]);
        s.next(&Frame::silence(), &[]);
        assert!(
            matches!(s.next(&Frame::silence(), std::slice::from_ref(&pkt)), Outgoing::Packet { opus, .. } if opus == pkt)
        );
        assert!(!s.wants_hangup());
        let mut once = Sequence::new(Some(Prompt::new(clip)), None, true);
        once.next(&Frame::silence(), &[]);
        assert!(!once.wants_hangup());
        once.next(&Frame::silence(), &[]);
        assert!(once.wants_hangup());
    }
}
