//! G.711 (µ-law and A-law) as a call codec, for peers that offer no Opus: 20 ms packets of
//! 160 bytes at 8 kHz, converted to and from the pipeline's 48 kHz frames.
//!
//! The 8 kHz ↔ 48 kHz conversion is a fixed ×6 polyphase FIR here rather than the general
//! resampler (`audio::resample`): that one works in chunks of 1024 input samples, 128 ms at
//! 8 kHz, which a telephone call cannot afford. This filter's delay is 2 ms each way.

use std::sync::OnceLock;

use super::codec::FrameDecoder;
use super::frame::{FRAME_SAMPLES, Frame};
use super::mulaw;

/// 8 kHz samples in one 20 ms packet.
pub const PACKET_SAMPLES: usize = 160;
const RATIO: usize = FRAME_SAMPLES / PACKET_SAMPLES;
/// Taps of the low-pass filter at 48 kHz (32 per phase): its transition band is about 1.4 kHz
/// wide, centred on the cutoff.
const TAPS: usize = 192;
const PHASE_TAPS: usize = TAPS / RATIO;
/// Cutoff in Hz: the top of the telephone band, well below 8 kHz's Nyquist of 4 kHz.
const CUTOFF_HZ: f64 = 3_500.0;

/// Which G.711 companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    Mu,
    A,
}

impl Law {
    pub fn encode_sample(self, s: i16) -> u8 {
        match self {
            Law::Mu => mulaw::encode_sample(s),
            Law::A => alaw_encode_sample(s),
        }
    }

    pub fn decode_sample(self, b: u8) -> i16 {
        match self {
            Law::Mu => mulaw::decode_sample(b),
            Law::A => alaw_decode_sample(b),
        }
    }
}

/// Encodes one linear 16-bit sample to A-law (ITU-T G.711, with the even bits inverted).
pub fn alaw_encode_sample(sample: i16) -> u8 {
    // A-law works on 13-bit magnitudes.
    let pcm = i32::from(sample) >> 3;
    let (sign, mag) = if pcm >= 0 {
        (0x80, pcm)
    } else {
        (0x00, -pcm - 1)
    };
    let mag = mag.min(0x0FFF);
    let code = if mag < 32 {
        (mag >> 1) as u8
    } else {
        // Segment = position of the highest set bit, counted from bit 4.
        let seg = (31 - (mag as u32).leading_zeros()) as i32 - 4;
        ((seg << 4) | ((mag >> seg) & 0x0F)) as u8
    };
    (sign | code) ^ 0x55
}

/// Decodes one A-law byte to a linear 16-bit sample.
pub fn alaw_decode_sample(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let seg = i32::from((a >> 4) & 0x07);
    let mant = i32::from(a & 0x0F);
    let mag = if seg == 0 {
        (mant << 4) + 8
    } else {
        ((mant << 4) + 0x108) << (seg - 1)
    };
    if a & 0x80 != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

/// The windowed-sinc low-pass (Blackman), normalised to unity gain at DC.
fn taps() -> &'static [f32; TAPS] {
    static TAPS_CELL: OnceLock<[f32; TAPS]> = OnceLock::new();
    TAPS_CELL.get_or_init(|| {
        let fc = CUTOFF_HZ / 48_000.0;
        let mid = (TAPS - 1) as f64 / 2.0;
        let mut h = [0f64; TAPS];
        for (n, t) in h.iter_mut().enumerate() {
            let x = n as f64 - mid;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
            };
            let w = 2.0 * std::f64::consts::PI * n as f64 / (TAPS - 1) as f64;
            *t = sinc * (0.42 - 0.5 * w.cos() + 0.08 * (2.0 * w).cos());
        }
        let sum: f64 = h.iter().sum();
        let mut out = [0f32; TAPS];
        for (o, t) in out.iter_mut().zip(h) {
            *o = (t / sum) as f32;
        }
        out
    })
}

fn clamp16(v: f32) -> i16 {
    v.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16
}

/// 8 kHz → 48 kHz, stateful across packets.
#[derive(Debug, Clone)]
pub struct Upsampler {
    /// The last `PHASE_TAPS` input samples, newest first.
    hist: [f32; PHASE_TAPS],
}

impl Default for Upsampler {
    fn default() -> Self {
        Upsampler {
            hist: [0.0; PHASE_TAPS],
        }
    }
}

impl Upsampler {
    /// One 20 ms packet's 160 samples → one 48 kHz frame.
    pub fn frame(&mut self, input: &[i16]) -> Frame {
        let h = taps();
        let mut frame = Frame::silence();
        let out = frame.samples_mut();
        for (i, &x) in input.iter().take(PACKET_SAMPLES).enumerate() {
            self.hist.copy_within(0..PHASE_TAPS - 1, 1);
            self.hist[0] = f32::from(x);
            for p in 0..RATIO {
                // Zero-stuffed input: only every RATIO-th tap meets a sample; the gain of RATIO
                // makes up for the zeros.
                let acc: f32 = (0..PHASE_TAPS)
                    .map(|k| h[k * RATIO + p] * self.hist[k])
                    .sum();
                out[i * RATIO + p] = clamp16(acc * RATIO as f32);
            }
        }
        frame
    }
}

/// 48 kHz → 8 kHz, stateful across frames.
#[derive(Debug, Clone)]
pub struct Downsampler {
    /// Ring of the last `TAPS` input samples.
    hist: [f32; TAPS],
    pos: usize,
}

impl Default for Downsampler {
    fn default() -> Self {
        Downsampler {
            hist: [0.0; TAPS],
            pos: 0,
        }
    }
}

impl Downsampler {
    /// One 48 kHz frame → 160 samples at 8 kHz.
    pub fn frame(&mut self, frame: &Frame) -> [i16; PACKET_SAMPLES] {
        let h = taps();
        let mut out = [0i16; PACKET_SAMPLES];
        for (i, &x) in frame.samples().iter().enumerate() {
            self.hist[self.pos] = f32::from(x);
            self.pos = (self.pos + 1) % TAPS;
            if i % RATIO == RATIO - 1 {
                // hist[pos - 1] is the newest sample.
                let acc: f32 = (0..TAPS)
                    .map(|k| h[k] * self.hist[(self.pos + TAPS - 1 - k) % TAPS])
                    .sum();
                out[i / RATIO] = clamp16(acc);
            }
        }
        out
    }
}

/// Our frames → G.711 packets.
#[derive(Debug, Clone)]
pub struct G711Encoder {
    law: Law,
    down: Downsampler,
}

impl G711Encoder {
    pub fn new(law: Law) -> Self {
        G711Encoder {
            law,
            down: Downsampler::default(),
        }
    }

    pub fn encode(&mut self, frame: &Frame) -> Vec<u8> {
        self.down
            .frame(frame)
            .iter()
            .map(|&s| self.law.encode_sample(s))
            .collect()
    }
}

/// G.711 packets → our frames. Concealment repeats the last packet fading out, then silence.
#[derive(Debug, Clone)]
pub struct G711Decoder {
    law: Law,
    up: Upsampler,
    last: Vec<i16>,
    concealed: u32,
}

impl G711Decoder {
    pub fn new(law: Law) -> Self {
        G711Decoder {
            law,
            up: Upsampler::default(),
            last: vec![0; PACKET_SAMPLES],
            concealed: 0,
        }
    }
}

impl FrameDecoder for G711Decoder {
    fn decode(&mut self, payload: &[u8]) -> Frame {
        if payload.is_empty() {
            return self.conceal();
        }
        // A packet of another length (10 or 30 ms from a peer ignoring ptime) is cut or padded
        // to 20 ms: a glitch, not a lost call.
        let mut pcm: Vec<i16> = payload
            .iter()
            .take(PACKET_SAMPLES)
            .map(|&b| self.law.decode_sample(b))
            .collect();
        pcm.resize(PACKET_SAMPLES, 0);
        self.concealed = 0;
        let frame = self.up.frame(&pcm);
        self.last = pcm;
        frame
    }

    fn conceal(&mut self) -> Frame {
        self.concealed += 1;
        // Half the level per lost packet: three lost packets are nearly silent.
        let gain = 0.5f32.powi(self.concealed as i32);
        let faded: Vec<i16> = self
            .last
            .iter()
            .map(|&s| (f32::from(s) * gain) as i16)
            .collect();
        self.up.frame(&faded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone::{ToneGenerator, dominant_frequency};

    #[test]
    fn alaw_known_vectors_and_round_trip() {
        // ITU-T G.711 A-law: the smallest positive and negative values, and full scale.
        assert_eq!(alaw_encode_sample(0), 0xD5);
        assert_eq!(alaw_encode_sample(-8), 0x55);
        assert_eq!(alaw_encode_sample(i16::MAX), 0xAA);
        assert_eq!(alaw_encode_sample(i16::MIN), 0x2A);
        for s in (i16::MIN..=i16::MAX).step_by(97) {
            let back = alaw_decode_sample(alaw_encode_sample(s));
            // A-law's step is at most 1/32 of the magnitude (plus the 16-unit floor).
            let err = (i32::from(back) - i32::from(s)).abs();
            assert!(err <= (i32::from(s).abs() / 16).max(16), "{s} -> {back}");
        }
        for b in 0..=255u8 {
            assert_eq!(alaw_encode_sample(alaw_decode_sample(b)), b, "{b:#x}");
        }
    }

    fn through(law: Law, freq: f32) -> (f32, f32) {
        let mut enc = G711Encoder::new(law);
        let mut dec = G711Decoder::new(law);
        let mut tone = ToneGenerator::new(freq, 0.4);
        let mut out = Vec::new();
        for _ in 0..50 {
            let packet = enc.encode(&tone.next_frame());
            assert_eq!(packet.len(), PACKET_SAMPLES);
            out.extend_from_slice(dec.decode(&packet).samples());
        }
        let tail = &out[out.len() / 2..];
        let rms = (tail.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / tail.len() as f64)
            .sqrt() as f32;
        (
            dominant_frequency(tail, 48_000),
            rms / (0.4 * 32767.0 / 2f32.sqrt()),
        )
    }

    #[test]
    fn a_tone_crosses_both_laws_at_its_frequency_and_level() {
        for law in [Law::Mu, Law::A] {
            for freq in [440.0, 1000.0, 2500.0] {
                let (heard, gain) = through(law, freq);
                assert!((heard - freq).abs() < 15.0, "{law:?} {freq}: heard {heard}");
                assert!((0.85..1.15).contains(&gain), "{law:?} {freq}: gain {gain}");
            }
        }
    }

    #[test]
    fn what_8k_cannot_carry_is_filtered_not_aliased() {
        // 6 kHz is above 8 kHz's Nyquist: it must not come back as a 2 kHz alias.
        let (_, gain) = through(Law::Mu, 6_000.0);
        assert!(gain < 0.05, "gain {gain}");
    }

    #[test]
    fn concealment_fades_and_short_packets_do_not_panic() {
        let mut dec = G711Decoder::new(Law::Mu);
        let loud = vec![mulaw::encode_sample(8_000); PACKET_SAMPLES];
        dec.decode(&loud);
        let a = dec.conceal().level_dbfs();
        let b = dec.conceal().level_dbfs();
        assert!(b < a, "{a} {b}");
        assert_eq!(dec.decode(&[0xFF; 7]).samples().len(), FRAME_SAMPLES);
        assert_eq!(dec.decode(&[]).samples().len(), FRAME_SAMPLES);
    }
}
