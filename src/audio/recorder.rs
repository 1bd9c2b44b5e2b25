//! Crash-safe QA recording of a call: a stereo WAV (left = remote party, right = our side)
//! and a JSON sidecar describing the call.
//!
//! The WAV header is rewritten every second of audio, so a process killed mid-call leaves
//! a playable file missing at most the last second. The sidecar is written atomically at
//! the end; a WAV without a sidecar therefore marks a call that did not end cleanly.

use super::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE};
use chrono::{DateTime, Utc};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Frames between header rewrites: one second of audio bounds what a crash can lose.
const FLUSH_EVERY_FRAMES: u64 = 50;
/// Room for one second of stereo audio, so the disk sees about one write per second
/// rather than one per frame.
const BUFFER_BYTES: usize = FRAME_SAMPLES * 2 * 2 * FLUSH_EVERY_FRAMES as usize;
const MAX_CALL_ID_CHARS: usize = 80;

/// `<UTC time>_<call id>`: sorts by time, safe as a file name on every OS.
pub fn recording_stem(at: DateTime<Utc>, call_id: &str) -> String {
    format!("{}_{}", at.format("%Y%m%dT%H%M%SZ"), file_safe_id(call_id))
}

/// A call id as it appears in file names: letters, digits, `.`, `_`, `-` (others become `_`),
/// at most 80 characters, never empty.
pub fn file_safe_id(call_id: &str) -> String {
    let mut id: String = call_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_CALL_ID_CHARS)
        .collect();
    if id.is_empty() {
        id.push_str("call");
    }
    id
}

fn hound_to_io(e: hound::Error) -> io::Error {
    match e {
        hound::Error::IoError(e) => e,
        other => io::Error::other(other),
    }
}

pub struct CallRecorder {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    wav_path: PathBuf,
    sidecar_path: PathBuf,
    frames: u64,
}

impl std::fmt::Debug for CallRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecorder")
            .field("wav_path", &self.wav_path)
            .field("frames", &self.frames)
            .field("open", &self.writer.is_some())
            .finish()
    }
}

impl CallRecorder {
    /// Creates `dir` if needed and starts `<stem>.wav`. The stem must be a plain file name
    /// (no separators), as [`recording_stem`] produces.
    pub fn create(dir: &Path, stem: &str) -> io::Result<Self> {
        if stem.is_empty() || stem == "." || stem == ".." || stem.contains(['/', '\\', '\0']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("recording name {stem:?} is not a plain file name"),
            ));
        }
        crate::private_files::create_dir(dir)?;
        let wav_path = dir.join(format!("{stem}.wav"));
        let sidecar_path = dir.join(format!("{stem}.json"));
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let file = crate::private_files::create_file(&wav_path)?;
        let writer = hound::WavWriter::new(BufWriter::with_capacity(BUFFER_BYTES, file), spec)
            .map_err(hound_to_io)?;
        Ok(CallRecorder {
            writer: Some(writer),
            wav_path,
            sidecar_path,
            frames: 0,
        })
    }

    /// Appends 20 ms of both directions.
    pub fn write(&mut self, remote: &Frame, local: &Frame) -> io::Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(io::Error::other("recording already finished"));
        };
        {
            let mut w = writer.get_i16_writer(2 * FRAME_SAMPLES as u32);
            for (&l, &r) in remote.samples().iter().zip(local.samples()) {
                w.write_sample(l);
                w.write_sample(r);
            }
            w.flush().map_err(hound_to_io)?;
        }
        self.frames += 1;
        if self.frames.is_multiple_of(FLUSH_EVERY_FRAMES) {
            writer.flush().map_err(hound_to_io)?;
        }
        Ok(())
    }

    /// Finalises the WAV; later calls do nothing.
    pub fn finish_audio(&mut self) -> io::Result<()> {
        match self.writer.take() {
            Some(writer) => writer.finalize().map_err(hound_to_io),
            None => Ok(()),
        }
    }

    /// Finalises the WAV and writes the final sidecar, synced to disk.
    pub fn finish(mut self, sidecar: &impl serde::Serialize) -> io::Result<PathBuf> {
        self.finish_audio()?;
        self.write_sidecar(sidecar, true)
    }

    /// Writes (or replaces) the sidecar atomically (temporary file, rename), so a reader never
    /// sees half a JSON document. Written once when the call starts too, so a recording cut
    /// short by a crash still says which call it is; that one is not synced: the page cache
    /// already survives a crash of the process, and a sync per call start costs the calls
    /// being set up at the same moment (it showed in the profile of fifty arriving at once).
    pub fn write_sidecar(
        &self,
        sidecar: &impl serde::Serialize,
        sync: bool,
    ) -> io::Result<PathBuf> {
        let json = serde_json::to_vec_pretty(sidecar).map_err(io::Error::other)?;
        let tmp = self.sidecar_path.with_extension("json.tmp");
        {
            let mut f = crate::private_files::create_file(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            if sync {
                f.sync_all()?;
            }
        }
        if let Err(e) = std::fs::rename(&tmp, &self.sidecar_path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(self.sidecar_path.clone())
    }

    pub fn wav_path(&self) -> &Path {
        &self.wav_path
    }

    pub fn sidecar_path(&self) -> PathBuf {
        self.sidecar_path.clone()
    }

    pub fn frames_written(&self) -> u64 {
        self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone::{ToneGenerator, dominant_frequency};
    use chrono::TimeZone;

    fn temp_dir(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        std::env::temp_dir().join(format!(
            "wacall-recorder-{name}-{}-{nanos}",
            std::process::id()
        ))
    }

    fn channels(path: &Path) -> (Vec<i16>, Vec<i16>) {
        let mut reader = hound::WavReader::open(path).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 48_000, 16)
        );
        let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        let left = samples.iter().step_by(2).copied().collect();
        let right = samples.iter().skip(1).step_by(2).copied().collect();
        (left, right)
    }

    fn record(rec: &mut CallRecorder, seconds: usize) {
        let mut remote = ToneGenerator::new(440.0, 0.5);
        let mut local = ToneGenerator::new(880.0, 0.5);
        for _ in 0..seconds * 50 {
            rec.write(&remote.next_frame(), &local.next_frame())
                .unwrap();
        }
    }

    #[test]
    fn stem_sorts_by_time_and_is_sanitised() {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 14, 35, 1).unwrap();
        assert_eq!(
            recording_stem(at, "wacid.ABC"),
            "20261125T143501Z_wacid.ABC"
        );
        assert_eq!(
            recording_stem(at, "../x/y z:é"),
            "20261125T143501Z_.._x_y_z__"
        );
        assert_eq!(recording_stem(at, ""), "20261125T143501Z_call");
        let long = "a".repeat(500);
        assert_eq!(recording_stem(at, &long).len(), 17 + 80);
        let earlier = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert!(recording_stem(earlier, "z") < recording_stem(at, "a"));
    }

    #[test]
    fn bad_stems_are_rejected() {
        let dir = temp_dir("bad");
        for stem in ["", "..", "a/b", "a\\b"] {
            assert!(CallRecorder::create(&dir, stem).is_err(), "{stem:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn finished_recording_has_both_channels_and_sidecar() {
        let dir = temp_dir("finish").join("nested");
        let mut rec = CallRecorder::create(&dir, "20260101T000000Z_call").unwrap();
        record(&mut rec, 1);
        assert_eq!(rec.frames_written(), 50);
        let wav = rec.wav_path().to_path_buf();
        assert_eq!(rec.sidecar_path(), dir.join("20260101T000000Z_call.json"));
        let sidecar = rec
            .finish(&serde_json::json!({"call_id": "call", "seconds": 1}))
            .unwrap();
        let (left, right) = channels(&wav);
        assert_eq!(left.len(), 48_000);
        assert!((dominant_frequency(&left, 48_000) - 440.0).abs() < 2.0);
        assert!((dominant_frequency(&right, 48_000) - 880.0).abs() < 2.0);
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
        assert_eq!(meta["seconds"], 1);
        assert!(!dir.join("20260101T000000Z_call.json.tmp").exists());
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn finish_audio_is_idempotent_and_blocks_writes() {
        let dir = temp_dir("idem");
        let mut rec = CallRecorder::create(&dir, "x").unwrap();
        record(&mut rec, 1);
        rec.finish_audio().unwrap();
        rec.finish_audio().unwrap();
        assert!(rec.write(&Frame::silence(), &Frame::silence()).is_err());
        let (left, _) = channels(rec.wav_path());
        assert_eq!(left.len(), 48_000);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn crash_leaves_a_playable_file() {
        let dir = temp_dir("crash");
        let mut rec = CallRecorder::create(&dir, "crash").unwrap();
        record(&mut rec, 3);
        // A few more frames that the crash is allowed to lose.
        rec.write(&Frame::silence(), &Frame::silence()).unwrap();
        let wav = rec.wav_path().to_path_buf();
        // No destructor, no finalize: what a killed process leaves behind.
        std::mem::forget(rec);
        let (left, right) = channels(&wav);
        assert!(
            left.len() >= 2 * 48_000,
            "only {} samples readable",
            left.len()
        );
        assert!((dominant_frequency(&left, 48_000) - 440.0).abs() < 2.0);
        assert!((dominant_frequency(&right, 48_000) - 880.0).abs() < 2.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
