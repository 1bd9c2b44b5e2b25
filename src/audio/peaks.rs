//! A recording's waveform in brief: the min and max of each channel over `n` slices, read from
//! the two-channel WAV as a stream, so an hour-long call never sits in memory (the console's
//! call page and `wacall report` draw it).

use std::path::Path;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Peaks {
    pub seconds: f64,
    /// Left channel: what the customer said.
    pub customer: Vec<(i16, i16)>,
    /// Right channel: what the business (agent or bot) said.
    pub business: Vec<(i16, i16)>,
}

/// Peaks of a stored recording: a WAV is read; an Ogg Opus one has its peaks saved beside it
/// (`.peaks.json`, written when it was compacted), resampled to `n` slices.
pub fn recording_peaks(path: &Path, n: usize) -> Result<Peaks, String> {
    if path.extension().is_some_and(|e| e == "wav") {
        return wav_peaks(path, n);
    }
    let saved = path.with_extension("peaks.json");
    let text = std::fs::read_to_string(&saved).map_err(|e| format!("{}: {e}", saved.display()))?;
    let p: Peaks = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", saved.display()))?;
    let n = n.clamp(1, 4000);
    let pick = |v: &[(i16, i16)]| -> Vec<(i16, i16)> {
        if v.is_empty() {
            return Vec::new();
        }
        (0..n)
            .map(|i| {
                let (a, b) = (
                    i * v.len() / n,
                    ((i + 1) * v.len() / n).max(i * v.len() / n + 1),
                );
                v[a..b.min(v.len())]
                    .iter()
                    .fold((0, 0), |(lo, hi), &(l, h)| (lo.min(l), hi.max(h)))
            })
            .collect()
    };
    Ok(Peaks {
        seconds: p.seconds,
        customer: pick(&p.customer),
        business: pick(&p.business),
    })
}

/// Peaks of `path` in `n` slices (1..=4000).
pub fn wav_peaks(path: &Path, n: usize) -> Result<Peaks, String> {
    let mut r = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = r.spec();
    let channels = usize::from(spec.channels.max(1));
    let frames = (r.duration() as usize).max(1);
    let n = n.clamp(1, 4000);
    let per = frames.div_ceil(n);
    let mut peaks = vec![vec![(0i16, 0i16); n]; 2];
    for (i, s) in r.samples::<i16>().enumerate() {
        // A recording cut short by a crash still reads up to where it stopped.
        let Ok(s) = s else { break };
        let (frame, ch) = (i / channels, i % channels);
        if ch > 1 {
            continue;
        }
        let p = &mut peaks[ch][(frame / per).min(n - 1)];
        p.0 = p.0.min(s);
        p.1 = p.1.max(s);
    }
    let business = peaks.pop().unwrap_or_default();
    let customer = peaks.pop().unwrap_or_default();
    Ok(Peaks {
        seconds: frames as f64 / f64::from(spec.sample_rate.max(1)),
        customer,
        business,
    })
}

/// Writes a two-channel 48 kHz recording for tests: `frames` frames, `sample(i)` giving the
/// (customer, business) pair of frame `i`.
#[cfg(test)]
pub(crate) fn write_test_recording(path: &Path, frames: u32, sample: impl Fn(u32) -> (i16, i16)) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..frames {
        let (l, r) = sample(i);
        w.write_sample(l).unwrap();
        w.write_sample(r).unwrap();
    }
    w.finalize().unwrap();
}

/// Frame `i` of a tone at `hz`, for [`write_test_recording`].
#[cfg(test)]
pub(crate) fn test_tone(i: u32, hz: f32) -> i16 {
    ((i as f32 / 48_000.0 * hz * std::f32::consts::TAU).sin() * 9000.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_keeps_its_own_extremes() {
        let path = std::env::temp_dir().join(format!("wacall-peaks-{}.wav", rand::random::<u64>()));
        // Customer loud in the first half only; business quiet throughout.
        write_test_recording(&path, 48_000, |i| {
            (if i < 24_000 { 20_000 } else { 0 }, -100)
        });
        let p = wav_peaks(&path, 10).unwrap();
        assert!((p.seconds - 1.0).abs() < 1e-9);
        assert_eq!(p.customer[0], (0, 20_000));
        assert_eq!(p.customer[9], (0, 0));
        assert!(p.business.iter().all(|&(lo, hi)| lo == -100 && hi == 0));
        let _ = std::fs::remove_file(&path);
    }
}
