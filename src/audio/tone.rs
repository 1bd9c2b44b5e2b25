//! Test tones and the frequency analysis that checks them at the far end.
//!
//! Loopback and sandbox tests send a known tone each way and assert, after Opus, jitter
//! buffering and resampling, that the right tone arrived on the right channel.

use super::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE};
use std::f64::consts::TAU;

/// Lower and upper bound of the band [`dominant_frequency`] searches.
const SCAN_MIN_HZ: f64 = 50.0;
const SCAN_MAX_HZ: f64 = 4000.0;

/// A phase-continuous sine generator producing 48 kHz frames.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    /// Phase in cycles (0..1); kept in f64 so hours of tone do not drift or click.
    phase: f64,
    step: f64,
    amplitude: f64,
}

impl ToneGenerator {
    /// `amplitude` is a fraction of full scale; out-of-range or non-finite values are clamped
    /// (non-finite to silence) rather than rejected, since a tone is never worth an error.
    pub fn new(freq_hz: f32, amplitude: f32) -> Self {
        let freq = if freq_hz.is_finite() {
            freq_hz as f64
        } else {
            0.0
        };
        let amplitude = if amplitude.is_finite() {
            amplitude.clamp(0.0, 1.0) as f64
        } else {
            0.0
        };
        ToneGenerator {
            phase: 0.0,
            step: freq / SAMPLE_RATE as f64,
            amplitude,
        }
    }

    pub fn next_frame(&mut self) -> Frame {
        let mut frame = Frame::silence();
        let peak = self.amplitude * i16::MAX as f64;
        for s in frame.samples_mut().iter_mut() {
            *s = (peak * (TAU * self.phase).sin()).round() as i16;
            self.phase = (self.phase + self.step).fract();
        }
        frame
    }
}

/// |X(f)|² of the signal's DTFT at `freq`, by the Goertzel recurrence: one pass, no FFT
/// size constraints, any frequency (not just bin centres).
fn goertzel_power(samples: &[f64], sample_rate: f64, freq: f64) -> f64 {
    let w = TAU * freq / sample_rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0)
}

/// A Hann window suppresses spectral leakage so a loud tone's sidelobes don't hide the
/// peak of another, and the main lobe is smooth enough to refine on.
fn windowed(samples: &[i16]) -> Vec<f64> {
    let n = samples.len();
    if n < 2 {
        return samples.iter().map(|&s| s as f64).collect();
    }
    samples
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let w = 0.5 - 0.5 * (TAU * i as f64 / (n - 1) as f64).cos();
            s as f64 * w
        })
        .collect()
}

/// Frequency (Hz) of the strongest component between 50 Hz and 4 kHz.
///
/// Coarse Goertzel scan in 10 Hz steps, then 0.5 Hz refinement around the best bin, then a
/// parabolic fit of the three best refinement points; ±2 Hz on one second of a clean tone.
/// Returns 0.0 for empty or silent input or a bad sample rate.
pub fn dominant_frequency(samples: &[i16], sample_rate: u32) -> f32 {
    if samples.len() < 16 || sample_rate == 0 {
        return 0.0;
    }
    let sr = sample_rate as f64;
    let top = SCAN_MAX_HZ.min(sr / 2.0 - 1.0);
    if top <= SCAN_MIN_HZ {
        return 0.0;
    }
    let x = windowed(samples);
    // Long inputs are trimmed: a few seconds already give sub-hertz resolution, and
    // the scan is O(len × bins).
    let x = &x[..x.len().min(sample_rate as usize * 2)];

    let mut best = (0.0f64, 0.0f64);
    let mut f = SCAN_MIN_HZ;
    while f <= top {
        let p = goertzel_power(x, sr, f);
        if p > best.1 {
            best = (f, p);
        }
        f += 10.0;
    }
    if best.1 <= 0.0 {
        return 0.0;
    }

    let centre = best.0;
    let mut fine = (centre, 0.0f64);
    let mut f = (centre - 10.0).max(SCAN_MIN_HZ);
    while f <= (centre + 10.0).min(top) {
        let p = goertzel_power(x, sr, f);
        if p > fine.1 {
            fine = (f, p);
        }
        f += 0.5;
    }
    // Parabolic interpolation on log power between the half-hertz neighbours.
    let (fc, pc) = fine;
    let pl = goertzel_power(x, sr, fc - 0.5);
    let pr = goertzel_power(x, sr, fc + 0.5);
    let (l, c, r) = (pl.max(1e-12).ln(), pc.max(1e-12).ln(), pr.max(1e-12).ln());
    let denom = l - 2.0 * c + r;
    let offset = if denom.abs() > 1e-12 {
        (0.5 * (l - r) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    (fc + offset * 0.5) as f32
}

/// Fraction (0..1) of the signal's energy within ±10 Hz of `freq`.
///
/// The band's energy is integrated from the (Hann-windowed) DTFT sampled every ≤1 Hz and
/// compared with the windowed signal's total energy (Parseval), so it does not matter
/// whether the tone sits on an analysis bin. Needs ~0.2 s or more of audio: on shorter
/// input the window's main lobe is wider than the ±10 Hz band and the ratio reads low.
pub fn tone_power_ratio(samples: &[i16], sample_rate: u32, freq: f32) -> f32 {
    if samples.is_empty() || sample_rate == 0 || !freq.is_finite() || freq <= 0.0 {
        return 0.0;
    }
    let sr = sample_rate as f64;
    let n = samples.len() as f64;
    let x = windowed(samples);
    // Both sides of the ratio use the windowed signal, so the window's gain cancels.
    let total_w: f64 = x.iter().map(|v| v * v).sum();
    if total_w <= 0.0 {
        return 0.0;
    }
    // Parseval for the DTFT: Σx² = (1/sr)·∫|X(f)|² df over (−sr/2, sr/2]. A real signal's
    // spectrum is symmetric, so the one-sided band energy is (2/sr)·∫_band |X(f)|² df.
    let step = (sr / n).min(1.0);
    let lo = (freq as f64 - 10.0).max(0.0);
    let hi = (freq as f64 + 10.0).min(sr / 2.0);
    let mut integral = 0.0;
    let mut f = lo + step / 2.0;
    while f < hi {
        integral += goertzel_power(&x, sr, f) * step;
        f += step;
    }
    let ratio = 2.0 * integral / (sr * total_w);
    ratio.clamp(0.0, 1.0) as f32
}

/// Generates `seconds` of a tone as raw samples; convenient in tests across modules.
pub fn tone_samples(freq_hz: f32, amplitude: f32, seconds: f32) -> Vec<i16> {
    let mut g = ToneGenerator::new(freq_hz, amplitude);
    let frames = ((seconds.max(0.0) * SAMPLE_RATE as f32) as usize).div_ceil(FRAME_SAMPLES);
    let mut out = Vec::with_capacity(frames * FRAME_SAMPLES);
    for _ in 0..frames {
        out.extend_from_slice(g.next_frame().samples());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic white noise (xorshift) so the test needs no rand seed handling.
    fn noise(len: usize, amplitude: f64) -> Vec<i16> {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                ((u * 2.0 - 1.0) * amplitude) as i16
            })
            .collect()
    }

    #[test]
    fn generator_is_phase_continuous_and_scaled() {
        let mut g = ToneGenerator::new(1000.0, 0.5);
        let a = g.next_frame();
        let b = g.next_frame();
        let joined: Vec<i16> = a.samples().iter().chain(b.samples()).copied().collect();
        // The largest sample-to-sample step of a 1 kHz sine at half scale is 2π·f/sr·A.
        let max_step = TAU * 1000.0 / 48_000.0 * 0.5 * 32767.0 + 2.0;
        for w in joined.windows(2) {
            assert!(((w[1] as f64) - (w[0] as f64)).abs() <= max_step);
        }
        let peak = joined.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((16_000..=16_384).contains(&peak), "peak {peak}");
    }

    #[test]
    fn bad_parameters_are_silent_not_panics() {
        let mut g = ToneGenerator::new(f32::NAN, f32::INFINITY);
        assert_eq!(g.next_frame(), Frame::silence());
        let mut g = ToneGenerator::new(440.0, 7.0);
        assert!(g.next_frame().samples().iter().any(|&s| s > 30_000));
    }

    #[test]
    fn dominant_frequency_of_known_tones() {
        for f in [300.0f32, 440.0, 880.0, 1000.0, 1234.5, 3333.0] {
            let s = tone_samples(f, 0.5, 1.0);
            let d = dominant_frequency(&s, SAMPLE_RATE);
            assert!((d - f).abs() <= 2.0, "{f} Hz measured as {d}");
        }
        // Other sample rates too, as used after resampling to 16 kHz.
        let s: Vec<i16> = (0..16_000)
            .map(|i| ((TAU * 440.0 * i as f64 / 16_000.0).sin() * 10_000.0) as i16)
            .collect();
        assert!((dominant_frequency(&s, 16_000) - 440.0).abs() <= 2.0);
    }

    #[test]
    fn dominant_frequency_picks_the_louder_of_two() {
        let a = tone_samples(440.0, 0.2, 1.0);
        let b = tone_samples(880.0, 0.6, 1.0);
        let mixed: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert!((dominant_frequency(&mixed, SAMPLE_RATE) - 880.0).abs() <= 2.0);
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(dominant_frequency(&[], SAMPLE_RATE), 0.0);
        assert_eq!(dominant_frequency(&[0; 48_000], SAMPLE_RATE), 0.0);
        assert_eq!(dominant_frequency(&[1, 2, 3], 0), 0.0);
        assert_eq!(tone_power_ratio(&[], SAMPLE_RATE, 440.0), 0.0);
        assert_eq!(tone_power_ratio(&[0; 100], SAMPLE_RATE, 440.0), 0.0);
        assert_eq!(tone_power_ratio(&[5; 100], SAMPLE_RATE, f32::NAN), 0.0);
    }

    #[test]
    fn power_ratio_of_pure_tone_mixture_and_noise() {
        let pure = tone_samples(440.0, 0.5, 1.0);
        let r = tone_power_ratio(&pure, SAMPLE_RATE, 440.0);
        assert!(r > 0.95, "pure tone ratio {r}");
        assert!(tone_power_ratio(&pure, SAMPLE_RATE, 880.0) < 0.01);

        // Equal amplitudes: each tone holds half of the energy.
        let other = tone_samples(1000.0, 0.3, 1.0);
        let half = tone_samples(440.0, 0.3, 1.0);
        let mixed: Vec<i16> = half.iter().zip(&other).map(|(x, y)| x + y).collect();
        let r = tone_power_ratio(&mixed, SAMPLE_RATE, 440.0);
        assert!((0.4..0.6).contains(&r), "mixture ratio {r}");

        let n = noise(48_000, 10_000.0);
        let r = tone_power_ratio(&n, SAMPLE_RATE, 1000.0);
        // 20 Hz out of a 24 kHz white band is under 0.1 %.
        assert!(r < 0.01, "noise ratio {r}");
        let d = dominant_frequency(&n, SAMPLE_RATE);
        assert!((50.0..=4000.0).contains(&d));
    }

    #[test]
    fn tone_survives_noise() {
        let t = tone_samples(1000.0, 0.3, 1.0);
        let n = noise(t.len(), 3000.0);
        let noisy: Vec<i16> = t.iter().zip(&n).map(|(x, y)| x + y).collect();
        assert!((dominant_frequency(&noisy, SAMPLE_RATE) - 1000.0).abs() <= 2.0);
        let r = tone_power_ratio(&noisy, SAMPLE_RATE, 1000.0);
        assert!(r > 0.8, "noisy ratio {r}");
    }
}
