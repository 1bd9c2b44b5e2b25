//! Small answering behaviours a bot combines: play a prompt (pre-encoded once, shared by every
//! call), echo (relayed without transcoding), a steady tone (tests, line checks), and a cap on
//! call length. Each is one `Behaviour`; `Sequence` plays them one after another.

use std::sync::Arc;

use bytes::Bytes;

use crate::audio::Frame;
use crate::audio::codec::{EncoderConfig, OpusEncoder};
use crate::audio::tone::ToneGenerator;
use crate::edge::call_audio::{Behaviour, Outgoing};

/// A prompt encoded once: every call sends the same packets, so a prompt costs no encoder time
/// per call (see docs/performance.md). The PCM is kept for the recording's right channel.
#[derive(Clone)]
pub struct PromptClip {
    frames: Arc<Vec<(Bytes, Frame)>>,
}

impl PromptClip {
    pub fn encode(
        frames: Vec<Frame>,
        cfg: EncoderConfig,
    ) -> Result<Self, crate::audio::codec::CodecError> {
        let mut enc = OpusEncoder::new(cfg)?;
        let mut out = Vec::with_capacity(frames.len());
        for f in frames {
            out.push((Bytes::from(enc.encode(&f)?), f));
        }
        Ok(PromptClip {
            frames: Arc::new(out),
        })
    }

    pub fn len_frames(&self) -> usize {
        self.frames.len()
    }
}

/// Plays a prompt once.
pub struct Prompt {
    clip: PromptClip,
    pos: usize,
}

impl Prompt {
    pub fn new(clip: PromptClip) -> Self {
        Prompt { clip, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.clip.frames.len()
    }
}

impl Behaviour for Prompt {
    fn next(&mut self, _heard: &Frame, _arrived: &[Bytes]) -> Outgoing {
        match self.clip.frames.get(self.pos) {
            Some((opus, pcm)) => {
                self.pos += 1;
                Outgoing::Packet {
                    opus: opus.clone(),
                    pcm: pcm.clone(),
                }
            }
            None => Outgoing::Silence,
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

    fn wants_hangup(&self) -> bool {
        let prompt_done = self.prompt.as_ref().is_none_or(Prompt::done);
        (self.hangup_after_prompt && prompt_done && self.prompt.is_some())
            || self.then.as_ref().is_some_and(|b| b.wants_hangup())
    }
}

/// Ends the call after a number of 20 ms slots.
pub struct MaxDuration {
    inner: Box<dyn Behaviour>,
    left: u64,
}

impl MaxDuration {
    pub fn new(inner: Box<dyn Behaviour>, max: std::time::Duration) -> Self {
        MaxDuration {
            inner,
            left: (max.as_millis() / 20) as u64,
        }
    }
}

impl Behaviour for MaxDuration {
    fn next(&mut self, heard: &Frame, arrived: &[Bytes]) -> Outgoing {
        self.left = self.left.saturating_sub(1);
        self.inner.next(heard, arrived)
    }

    fn wants_hangup(&self) -> bool {
        self.left == 0 || self.inner.wants_hangup()
    }

    fn on_dtmf(&mut self, digit: char) {
        self.inner.on_dtmf(digit);
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
        let mut p = Prompt::new(clip);
        let silence = Frame::silence();
        for _ in 0..3 {
            assert!(matches!(p.next(&silence, &[]), Outgoing::Packet { .. }));
        }
        assert!(matches!(p.next(&silence, &[]), Outgoing::Silence));
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

    #[test]
    fn max_duration_counts_slots() {
        let mut m = MaxDuration::new(Box::new(Echo), std::time::Duration::from_millis(60));
        for _ in 0..2 {
            m.next(&Frame::silence(), &[]);
            assert!(!m.wants_hangup());
        }
        m.next(&Frame::silence(), &[]);
        assert!(m.wants_hangup());
    }
}
