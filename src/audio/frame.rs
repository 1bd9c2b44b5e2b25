//! The one audio currency inside wacall.

/// Internal sample rate: Opus' native rate, so the codec never resamples.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = 960;
/// Frame duration in milliseconds.
pub const FRAME_MS: u64 = 20;

/// 20 ms of 48 kHz mono signed 16-bit audio.
///
/// Boxed so moving a frame through channels copies a pointer, not 1920 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(pub Box<[i16; FRAME_SAMPLES]>);

impl Frame {
    pub fn silence() -> Self {
        Frame(Box::new([0; FRAME_SAMPLES]))
    }

    /// Builds a frame from at most [`FRAME_SAMPLES`] samples, padding with silence.
    pub fn from_slice(samples: &[i16]) -> Self {
        let mut f = Self::silence();
        let n = samples.len().min(FRAME_SAMPLES);
        f.0[..n].copy_from_slice(&samples[..n]);
        f
    }

    pub fn samples(&self) -> &[i16] {
        &self.0[..]
    }

    pub fn samples_mut(&mut self) -> &mut [i16] {
        &mut self.0[..]
    }

    /// Root-mean-square level in dBFS (−96 for digital silence); drives level meters.
    pub fn level_dbfs(&self) -> f32 {
        let sum: f64 = self.0.iter().map(|&s| (s as f64) * (s as f64)).sum();
        let rms = (sum / FRAME_SAMPLES as f64).sqrt();
        if rms < 1.0 {
            -96.0
        } else {
            (20.0 * (rms / 32768.0).log10()) as f32
        }
    }
}

impl Default for Frame {
    fn default() -> Self {
        Self::silence()
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({:.1} dBFS)", self.level_dbfs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_slice_pads_and_truncates() {
        assert_eq!(Frame::from_slice(&[1, 2]).samples()[..3], [1, 2, 0]);
        let long = vec![7i16; FRAME_SAMPLES + 10];
        assert!(Frame::from_slice(&long).samples().iter().all(|&s| s == 7));
    }

    #[test]
    fn level_of_silence_and_full_scale() {
        assert_eq!(Frame::silence().level_dbfs(), -96.0);
        let loud = Frame::from_slice(&[i16::MAX; FRAME_SAMPLES]);
        assert!(loud.level_dbfs() > -0.1);
    }
}
