//! Sample-rate conversion and sample-format helpers for the edges of the pipeline
//! (sound devices, files, voice-AI streams). The DSP itself is rubato's.

use super::frame::{FRAME_SAMPLES, Frame};
use rubato::{
    FftFixedInOut, SincFixedIn, SincInterpolationParameters, SincInterpolationType, VecResampler,
    WindowFunction,
};
use std::collections::VecDeque;

/// Input chunk we ask rubato for: ~20 ms at 48 kHz keeps latency low without making the
/// FFT resampler inefficient.
const CHUNK: usize = 1024;
/// Above this many input samples per rate-ratio period the synchronous FFT resampler's
/// chunks get too long (latency, memory), so the sinc resampler is used instead.
const MAX_FFT_PERIOD: usize = 4096;
/// Highest rate we accept; anything larger is a corrupt header, not audio.
const MAX_RATE: u32 = 1_536_000;

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("unsupported sample rate conversion {from_hz} Hz -> {to_hz} Hz")]
    InvalidRate { from_hz: u32, to_hz: u32 },
    #[error("creating the resampler for {from_hz} Hz -> {to_hz} Hz: {source}")]
    Construction {
        from_hz: u32,
        to_hz: u32,
        #[source]
        source: rubato::ResamplerConstructionError,
    },
}

/// Streaming mono resampler that accepts chunks of any length.
///
/// Output is aligned with the input: the filter delay is removed at the start and
/// [`Resampler::flush`] drains the tail, so `n` input samples become
/// `round(n · to / from)` output samples in total.
pub struct Resampler {
    from_hz: u32,
    to_hz: u32,
    inner: Option<Box<dyn VecResampler<f32>>>,
    pending: Vec<f32>,
    /// Reused rubato input/output buffers: no allocation per chunk on the audio path.
    in_buf: Vec<Vec<f32>>,
    out_buf: Vec<Vec<f32>>,
    delay_left: usize,
    in_total: u64,
    out_total: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from_hz", &self.from_hz)
            .field("to_hz", &self.to_hz)
            .finish_non_exhaustive()
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Resampler {
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        if from_hz == 0 || to_hz == 0 || from_hz > MAX_RATE || to_hz > MAX_RATE {
            return Err(ResampleError::InvalidRate { from_hz, to_hz });
        }
        let inner = if from_hz == to_hz {
            None
        } else {
            Some(Self::build(from_hz, to_hz)?)
        };
        let delay_left = inner.as_ref().map_or(0, |r| r.output_delay());
        let out_buf = inner
            .as_ref()
            .map_or_else(Vec::new, |r| r.output_buffer_allocate(true));
        Ok(Resampler {
            from_hz,
            to_hz,
            inner,
            pending: Vec::new(),
            in_buf: vec![Vec::with_capacity(CHUNK)],
            out_buf,
            delay_left,
            in_total: 0,
            out_total: 0,
        })
    }

    fn build(from_hz: u32, to_hz: u32) -> Result<Box<dyn VecResampler<f32>>, ResampleError> {
        let err = |source| ResampleError::Construction {
            from_hz,
            to_hz,
            source,
        };
        let period = (from_hz / gcd(from_hz, to_hz)) as usize;
        if period <= MAX_FFT_PERIOD {
            // Rational ratios between common rates: exact, cheap, synchronous.
            let r = FftFixedInOut::<f32>::new(from_hz as usize, to_hz as usize, CHUNK, 1)
                .map_err(err)?;
            Ok(Box::new(r))
        } else {
            let params = SincInterpolationParameters {
                sinc_len: 128,
                f_cutoff: 0.95,
                oversampling_factor: 128,
                interpolation: SincInterpolationType::Cubic,
                window: WindowFunction::BlackmanHarris2,
            };
            let r = SincFixedIn::<f32>::new(
                f64::from(to_hz) / f64::from(from_hz),
                1.0,
                params,
                CHUNK,
                1,
            )
            .map_err(err)?;
            Ok(Box::new(r))
        }
    }

    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Appends the output for `produced` fresh samples, dropping the filter's start-up delay.
    fn emit(&mut self, produced: usize, out: &mut Vec<f32>) {
        let fresh = &self.out_buf[0][..produced];
        let skip = self.delay_left.min(fresh.len());
        self.delay_left -= skip;
        out.extend_from_slice(&fresh[skip..]);
        self.out_total += (fresh.len() - skip) as u64;
    }

    /// Converts as much as the buffered input allows; the remainder waits for the next call.
    pub fn process(&mut self, input: &[f32]) -> Vec<f32> {
        self.in_total += input.len() as u64;
        if self.inner.is_none() {
            self.out_total += input.len() as u64;
            return input.to_vec();
        }
        self.pending.extend_from_slice(input);
        let mut out = Vec::new();
        let mut consumed = 0;
        while let Some(inner) = self.inner.as_mut() {
            let need = inner.input_frames_next();
            if self.pending.len() - consumed < need {
                break;
            }
            self.in_buf[0].clear();
            self.in_buf[0].extend_from_slice(&self.pending[consumed..consumed + need]);
            match inner.process_into_buffer(&self.in_buf, &mut self.out_buf, None) {
                Ok((used, produced)) => {
                    consumed += used.max(1).min(need);
                    self.emit(produced, &mut out);
                }
                Err(e) => {
                    // Cannot happen with buffers sized by rubato itself; dropping the chunk
                    // keeps the stream going rather than panicking in an audio callback.
                    tracing::warn!(error = %e, "resampler rejected a chunk");
                    consumed += need;
                }
            }
        }
        self.pending.drain(..consumed);
        out
    }

    /// Drains buffered input and the filter tail, then resets for a new stream.
    pub fn flush(&mut self) -> Vec<f32> {
        let expected = (self.in_total as u128 * u128::from(self.to_hz)
            + u128::from(self.from_hz) / 2)
            / u128::from(self.from_hz);
        let expected = expected as u64;
        let mut out = Vec::new();
        if self.inner.is_some() {
            // Zero padding pushes the real tail out; bounded so a logic slip cannot spin.
            let mut rounds = 0;
            while self.out_total < expected && rounds < 64 {
                rounds += 1;
                let need = self.inner.as_ref().map_or(0, |r| r.input_frames_next());
                let fill = need.saturating_sub(self.pending.len());
                let mut padded = std::mem::take(&mut self.pending);
                padded.resize(padded.len() + fill, 0.0);
                let in_total = self.in_total;
                out.extend(self.process(&padded));
                self.in_total = in_total;
            }
            let surplus = (self.out_total.saturating_sub(expected)) as usize;
            out.truncate(out.len().saturating_sub(surplus));
        }
        self.reset();
        out
    }

    fn reset(&mut self) {
        // The object-safe rubato trait has no reset, so a fresh resampler is built; the
        // parameters already worked once, so this only fails if memory does.
        if self.inner.is_some() {
            match Self::build(self.from_hz, self.to_hz) {
                Ok(fresh) => {
                    self.delay_left = fresh.output_delay();
                    self.inner = Some(fresh);
                }
                Err(e) => tracing::warn!(error = %e, "could not reset the resampler"),
            }
        }
        self.pending.clear();
        self.in_total = 0;
        self.out_total = 0;
    }
}

/// Averages interleaved channels to mono. A trailing partial frame is ignored, and zero
/// channels yields nothing.
pub fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 0 {
        return Vec::new();
    }
    if channels == 1 {
        return interleaved.to_vec();
    }
    let scale = 1.0 / channels as f32;
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() * scale)
        .collect()
}

/// Copies mono to every channel of an interleaved buffer.
pub fn upmix(mono: &[f32], channels: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(mono.len() * channels);
    for &s in mono {
        out.extend(std::iter::repeat_n(s, channels));
    }
    out
}

pub fn i16_to_f32(samples: &[i16]) -> Vec<f32> {
    samples.iter().map(|&s| f32::from(s) / 32768.0).collect()
}

/// Converts to i16, clamping out-of-range values (and mapping NaN to 0) instead of wrapping.
pub fn f32_to_i16(samples: &[f32]) -> Vec<i16> {
    // `as` saturates and turns NaN into 0, which is exactly the required behaviour.
    samples
        .iter()
        .map(|&s| (s * 32768.0).round() as i16)
        .collect()
}

/// Collects arbitrary-length 48 kHz chunks into whole 20 ms frames.
#[derive(Debug, Default, Clone)]
pub struct FrameAssembler {
    buf: VecDeque<i16>,
}

impl FrameAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, samples: &[f32]) {
        self.buf.extend(f32_to_i16(samples));
    }

    pub fn push_i16(&mut self, samples: &[i16]) {
        self.buf.extend(samples.iter().copied());
    }

    pub fn pop(&mut self) -> Option<Frame> {
        if self.buf.len() < FRAME_SAMPLES {
            return None;
        }
        let mut frame = Frame::silence();
        for (dst, src) in frame
            .samples_mut()
            .iter_mut()
            .zip(self.buf.drain(..FRAME_SAMPLES))
        {
            *dst = src;
        }
        Some(frame)
    }

    /// Samples waiting for a frame to fill.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The partial last frame, padded with silence; `None` if nothing is buffered.
    pub fn finish(&mut self) -> Option<Frame> {
        if self.buf.is_empty() {
            return None;
        }
        let rest: Vec<i16> = self.buf.drain(..).collect();
        Some(Frame::from_slice(&rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone::dominant_frequency;
    use std::f64::consts::TAU;

    fn sine(freq: f64, rate: u32, seconds: f64) -> Vec<f32> {
        let n = (rate as f64 * seconds) as usize;
        (0..n)
            .map(|i| (0.5 * (TAU * freq * i as f64 / rate as f64).sin()) as f32)
            .collect()
    }

    /// Feeds `input` in awkward chunk sizes, as a sound card callback would.
    fn run(from: u32, to: u32, input: &[f32]) -> Vec<f32> {
        let mut r = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        let sizes = [1usize, 441, 1000, 7, 4096, 333];
        let mut pos = 0;
        let mut k = 0;
        while pos < input.len() {
            let n = sizes[k % sizes.len()].min(input.len() - pos);
            out.extend(r.process(&input[pos..pos + n]));
            pos += n;
            k += 1;
        }
        out.extend(r.flush());
        out
    }

    fn check(from: u32, to: u32) {
        let input = sine(1000.0, from, 1.0);
        let out = run(from, to, &input);
        let expected = input.len() as f64 * to as f64 / from as f64;
        let ratio = out.len() as f64 / expected;
        assert!(
            (ratio - 1.0).abs() < 0.01,
            "{from}->{to}: {} vs {expected}",
            out.len()
        );
        let f = dominant_frequency(&f32_to_i16(&out), to);
        assert!((f - 1000.0).abs() < 2.0, "{from}->{to}: {f} Hz");
        // The start is aligned: no long run of filter-delay silence.
        let first_loud = out.iter().position(|s| s.abs() > 0.1).unwrap();
        assert!(
            first_loud < (to / 500) as usize,
            "{from}->{to}: starts at {first_loud}"
        );
    }

    #[test]
    fn cd_rate_to_48k_keeps_the_tone() {
        check(44_100, 48_000);
    }

    #[test]
    fn from_48k_to_16k_keeps_the_tone() {
        check(48_000, 16_000);
    }

    #[test]
    fn other_rates() {
        check(8_000, 48_000);
        check(48_000, 22_050);
        // No small common period: takes the sinc path.
        check(44_101, 48_000);
    }

    #[test]
    fn identity_is_passthrough() {
        let mut r = Resampler::new(48_000, 48_000).unwrap();
        let x = [0.1f32, -0.2, 0.3];
        assert_eq!(r.process(&x), x.to_vec());
        assert!(r.flush().is_empty());
    }

    #[test]
    fn invalid_rates_are_errors() {
        assert!(Resampler::new(0, 48_000).is_err());
        assert!(Resampler::new(48_000, 0).is_err());
        assert!(Resampler::new(u32::MAX, 48_000).is_err());
    }

    #[test]
    fn reusable_after_flush() {
        let mut r = Resampler::new(16_000, 48_000).unwrap();
        let a = sine(440.0, 16_000, 0.5);
        let mut first = r.process(&a);
        first.extend(r.flush());
        let mut second = r.process(&a);
        second.extend(r.flush());
        assert_eq!(first.len(), 24_000);
        assert_eq!(second.len(), 24_000);
    }

    #[test]
    fn channel_helpers() {
        assert_eq!(downmix(&[1.0, 0.0, 0.5, 0.5, 9.0], 2), vec![0.5, 0.5]);
        assert_eq!(downmix(&[0.25, 0.5], 1), vec![0.25, 0.5]);
        assert!(downmix(&[1.0], 0).is_empty());
        assert_eq!(upmix(&[0.1, 0.2], 2), vec![0.1, 0.1, 0.2, 0.2]);
        assert!(upmix(&[0.1], 0).is_empty());
    }

    #[test]
    fn sample_conversions_saturate() {
        assert_eq!(i16_to_f32(&[0, 16_384, -32_768]), vec![0.0, 0.5, -1.0]);
        assert_eq!(
            f32_to_i16(&[0.0, 0.5, -1.0, 1.0, 7.0, -7.0, f32::NAN]),
            vec![0, 16_384, -32_768, 32_767, 32_767, -32_768, 0]
        );
        let x: Vec<i16> = (-100..100).map(|i| i * 300).collect();
        assert_eq!(f32_to_i16(&i16_to_f32(&x)), x);
    }

    #[test]
    fn assembler_makes_whole_frames() {
        let mut a = FrameAssembler::new();
        assert!(a.pop().is_none());
        a.push(&vec![0.5; 500]);
        assert!(a.pop().is_none());
        a.push_i16(&vec![-3; 1500]);
        let f = a.pop().unwrap();
        assert_eq!(f.samples()[0], 16_384);
        assert_eq!(f.samples()[500], -3);
        assert_eq!(a.buffered(), 1040);
        assert!(a.pop().is_some());
        assert_eq!(a.buffered(), 80);
        let last = a.finish().unwrap();
        assert_eq!(last.samples()[79], -3);
        assert_eq!(last.samples()[80], 0);
        assert!(a.finish().is_none());
    }
}
