//! Audio files in and out: prompts and test signals become 48 kHz mono frames.

use super::frame::{Frame, SAMPLE_RATE};
use super::resample::{FrameAssembler, ResampleError, Resampler, downmix};
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AudioFileError {
    #[error("cannot open WAV file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("cannot read samples of {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("unsupported WAV file {}: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    #[error("cannot resample {}: {source}", path.display())]
    Resample {
        path: PathBuf,
        #[source]
        source: ResampleError,
    },
}

/// Opens a WAV file and checks that [`read_wav_frames`] can read it (format, depth, rate,
/// channels), without reading its samples: fast, for failing at start-up on a bad prompt.
pub fn check_wav(path: &Path) -> Result<(), AudioFileError> {
    let (_, spec) = open_wav(path)?;
    Resampler::new(spec.sample_rate, SAMPLE_RATE)
        .map(|_| ())
        .map_err(|source| AudioFileError::Resample {
            path: path.to_path_buf(),
            source,
        })
}

/// Opens `path` and checks its header: channels, rate, a sample format we read.
fn open_wav(
    path: &Path,
) -> Result<
    (
        hound::WavReader<io::BufReader<std::fs::File>>,
        hound::WavSpec,
    ),
    AudioFileError,
> {
    let reader = hound::WavReader::open(path).map_err(|source| AudioFileError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let spec = reader.spec();
    let unsupported = |reason: String| AudioFileError::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(unsupported(format!(
            "{} channels at {} Hz",
            spec.channels, spec.sample_rate
        )));
    }
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) | (hound::SampleFormat::Int, 1..=32) => Ok((reader, spec)),
        (format, bits) => Err(unsupported(format!("{bits}-bit {format:?} samples"))),
    }
}

/// Reads a WAV file of any rate, depth (8/16/24/32-bit integer or 32-bit float) and
/// channel count as 48 kHz mono frames; the last frame is padded with silence.
///
/// A file whose data ends early (a recording cut off by a crash) yields what could be
/// read, with a warning, rather than nothing.
pub fn read_wav_frames(path: &Path) -> Result<Vec<Frame>, AudioFileError> {
    let (reader, spec) = open_wav(path)?;
    let read_err = |source| AudioFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            collect_lenient(path, reader.into_samples::<f32>()).map_err(read_err)?
        }
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            collect_lenient(path, reader.into_samples::<i32>())
                .map_err(read_err)?
                .into_iter()
                .map(|s| (f64::from(s) * scale) as f32)
                .collect()
        }
        (format, bits) => {
            // open_wav refused these already.
            return Err(AudioFileError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("{bits}-bit {format:?} samples"),
            });
        }
    };

    let mono = downmix(&interleaved, usize::from(spec.channels));
    drop(interleaved);
    let mut resampler = Resampler::new(spec.sample_rate, SAMPLE_RATE).map_err(|source| {
        AudioFileError::Resample {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let mut at_48k = resampler.process(&mono);
    at_48k.extend(resampler.flush());

    let mut assembler = FrameAssembler::new();
    assembler.push(&at_48k);
    let mut frames = Vec::with_capacity(at_48k.len().div_ceil(super::FRAME_SAMPLES));
    while let Some(frame) = assembler.pop() {
        frames.push(frame);
    }
    frames.extend(assembler.finish());
    Ok(frames)
}

/// Collects samples, keeping what was read before an error unless nothing was.
fn collect_lenient<S, I>(path: &Path, samples: I) -> Result<Vec<S>, hound::Error>
where
    I: Iterator<Item = Result<S, hound::Error>>,
{
    let mut out = Vec::new();
    for sample in samples {
        match sample {
            Ok(s) => out.push(s),
            Err(e) if !out.is_empty() => {
                tracing::warn!(path = %path.display(), error = %e, "WAV data ends early; using what was read");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Writes frames as a 48 kHz mono 16-bit WAV.
pub fn write_wav_mono(path: &Path, frames: &[Frame]) -> io::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let to_io = |e: hound::Error| match e {
        hound::Error::IoError(e) => e,
        other => io::Error::other(other),
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(to_io)?;
    for frame in frames {
        for &s in frame.samples() {
            writer.write_sample(s).map_err(to_io)?;
        }
    }
    writer.finalize().map_err(to_io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;
    use crate::audio::tone::{ToneGenerator, dominant_frequency};
    use std::f64::consts::TAU;

    fn temp_path(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        std::env::temp_dir().join(format!(
            "wacall-source-{name}-{}-{nanos}.wav",
            std::process::id()
        ))
    }

    /// Writes `seconds` of a 1 kHz tone (in every channel) in the given format.
    fn write_tone(path: &Path, spec: hound::WavSpec, seconds: f64) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        let n = (spec.sample_rate as f64 * seconds) as usize;
        for i in 0..n {
            let v = 0.5 * (TAU * 1000.0 * i as f64 / spec.sample_rate as f64).sin();
            for _ in 0..spec.channels {
                match spec.sample_format {
                    hound::SampleFormat::Float => w.write_sample(v as f32).unwrap(),
                    hound::SampleFormat::Int => {
                        let max = (1i64 << (spec.bits_per_sample - 1)) - 1;
                        let s = (v * max as f64) as i32;
                        if spec.bits_per_sample == 8 {
                            w.write_sample(s as i8).unwrap()
                        } else if spec.bits_per_sample == 16 {
                            w.write_sample(s as i16).unwrap()
                        } else {
                            w.write_sample(s).unwrap()
                        }
                    }
                }
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn every_format_becomes_48k_mono_frames() {
        let cases = [
            (8_000, 1, 8, hound::SampleFormat::Int),
            (16_000, 1, 16, hound::SampleFormat::Int),
            (44_100, 2, 16, hound::SampleFormat::Int),
            (48_000, 2, 24, hound::SampleFormat::Int),
            (96_000, 1, 32, hound::SampleFormat::Int),
            (22_050, 6, 32, hound::SampleFormat::Float),
        ];
        for (rate, channels, bits, format) in cases {
            let path = temp_path(&format!("{rate}-{channels}-{bits}"));
            let spec = hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: bits,
                sample_format: format,
            };
            write_tone(&path, spec, 1.01);
            let frames = read_wav_frames(&path).unwrap();
            // 1.01 s = 50.5 frames: the half frame is padded.
            assert_eq!(frames.len(), 51, "{spec:?}");
            let pcm: Vec<i16> = frames.iter().flat_map(|f| f.samples().to_vec()).collect();
            let f = dominant_frequency(&pcm[..48_000], 48_000);
            assert!((f - 1000.0).abs() < 2.0, "{spec:?}: {f} Hz");
            let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
            assert!((15_000..=17_500).contains(&peak), "{spec:?}: peak {peak}");
            assert!(pcm[50 * FRAME_SAMPLES + 600..].iter().all(|&s| s == 0));
            let _ = std::fs::remove_file(&path);
        }
    }

    #[test]
    fn round_trip_through_write_wav_mono() {
        let path = temp_path("roundtrip");
        let mut tone = ToneGenerator::new(440.0, 0.3);
        let frames: Vec<Frame> = (0..10).map(|_| tone.next_frame()).collect();
        write_wav_mono(&path, &frames).unwrap();
        assert_eq!(read_wav_frames(&path).unwrap(), frames);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn errors_name_the_path() {
        let missing = temp_path("missing");
        let e = read_wav_frames(&missing).unwrap_err();
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );

        let garbage = temp_path("garbage");
        std::fs::write(&garbage, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk").unwrap();
        let e = read_wav_frames(&garbage).unwrap_err();
        assert!(e.to_string().contains("garbage"), "{e}");
        let _ = std::fs::remove_file(&garbage);

        assert!(write_wav_mono(Path::new("/nonexistent-dir/x.wav"), &[]).is_err());
    }

    #[test]
    fn truncated_file_yields_what_was_read() {
        let path = temp_path("truncated");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        write_tone(&path, spec, 0.5);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10_001]).unwrap();
        let frames = read_wav_frames(&path).unwrap();
        assert!((19..=25).contains(&frames.len()), "{}", frames.len());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn shipped_greeting_is_readable_speech() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("audio/greeting.wav");
        let frames = read_wav_frames(&path).unwrap();
        // About 4.4 s.
        assert!((200..=240).contains(&frames.len()), "{}", frames.len());
        let loud = frames.iter().filter(|f| f.level_dbfs() > -40.0).count();
        assert!(
            loud > frames.len() / 2,
            "{loud} of {} frames audible",
            frames.len()
        );
    }
}
