//! Meta's own recording and transcript of a call (`[recording.meta]`): the
//! `call_recording_available` / `call_transcription_available` webhooks name a media id and a
//! URL that is valid for five minutes. The file is downloaded with the token into the recordings
//! store, checked against its SHA-256 when Meta gives one, and linked to the call's history row
//! beside wacall's own recording. A failed try asks `GET /{media-id}` for a fresh URL before the
//! next (the first URL may have expired while the webhook waited, or between retries).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::api::BspClient;
use crate::webhook::MetaMediaKind;

/// Tries before giving up on a file (Meta keeps it for 7 days; the operator can fetch it later).
const TRIES: u32 = 5;
/// First wait between tries, doubled each time.
const FIRST_WAIT: Duration = Duration::from_millis(500);
/// A transcript is JSON text; a recording is Ogg Opus (about 15 MB an hour at Meta's rate).
const MAX_BYTES: u64 = 512 * 1024 * 1024;

/// Where a call's Meta file goes in the store.
pub fn path_for(dir: &Path, call_id: &str, kind: MetaMediaKind) -> PathBuf {
    let stem = crate::audio::recorder::file_safe_id(call_id);
    match kind {
        MetaMediaKind::Recording => dir.join(format!("{stem}.meta-recording.ogg")),
        MetaMediaKind::Transcript => dir.join(format!("{stem}.meta-transcript.json")),
    }
}

/// Whether `data` matches Meta's `sha256`, given as hex or as base64 (both are seen).
pub fn checksum_matches(data_sha: &[u8], given: &str) -> bool {
    let given = given.trim();
    let hex: String = data_sha.iter().map(|b| format!("{b:02x}")).collect();
    if given.eq_ignore_ascii_case(&hex) {
        return true;
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(data_sha);
    given == b64 || given.trim_end_matches('=') == b64.trim_end_matches('=')
}

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub call_id: String,
    pub kind: MetaMediaKind,
    pub media_id: String,
    pub url: Option<String>,
    pub sha256: Option<String>,
}

/// Downloads `w` into `dir`; returns the file's path. Never leaves a partial file under the
/// final name: it is written beside it and renamed once complete and checked.
pub async fn fetch(bsp: &BspClient, dir: &Path, w: &Wanted) -> Result<PathBuf, String> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dest = path_for(dir, &w.call_id, w.kind);
    let part = dest.with_extension("part");
    let mut url = w.url.clone();
    let mut sha = w.sha256.clone();
    let mut wait = FIRST_WAIT;
    let mut last = String::new();
    for attempt in 1..=TRIES {
        if url.is_none() || attempt > 1 {
            match bsp.media_info(&w.media_id).await {
                Ok(info) => {
                    url = Some(info.url);
                    sha = info.sha256.or(sha);
                }
                Err(e) => last = format!("media {}: {e}", w.media_id),
            }
        }
        if let Some(u) = &url {
            match bsp.download(u, &part, MAX_BYTES).await {
                Ok(bytes) => match verify(&part, sha.as_deref()).await {
                    Ok(()) => {
                        tokio::fs::rename(&part, &dest)
                            .await
                            .map_err(|e| format!("cannot rename {}: {e}", part.display()))?;
                        info!(call_id = %w.call_id, kind = w.kind.as_str(), bytes, path = %dest.display(), "Meta's file downloaded");
                        return Ok(dest);
                    }
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&part).await;
                        last = e;
                    }
                },
                Err(e) => last = e.to_string(),
            }
        }
        warn!(call_id = %w.call_id, kind = w.kind.as_str(), attempt, error = %last, "Meta's file not downloaded yet");
        if attempt < TRIES {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Err(last)
}

async fn verify(path: &Path, sha: Option<&str>) -> Result<(), String> {
    let Some(sha) = sha.filter(|s| !s.trim().is_empty()) else {
        return Ok(());
    };
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read back {}: {e}", path.display()))?;
    let digest = Sha256::digest(&data);
    if checksum_matches(&digest, sha) {
        Ok(())
    } else {
        Err(format!(
            "the downloaded file's SHA-256 does not match Meta's ({sha}); discarded"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_in_hex_or_base64() {
        let d = Sha256::digest(b"abc");
        assert!(checksum_matches(
            &d,
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        ));
        assert!(checksum_matches(
            &d,
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        ));
        assert!(!checksum_matches(&d, "00"));
    }

    #[test]
    fn files_are_named_after_the_call() {
        let p = path_for(Path::new("/r"), "wacid.A/B", MetaMediaKind::Transcript);
        assert!(p.to_str().unwrap().starts_with("/r/"));
        assert!(p.to_str().unwrap().ends_with(".meta-transcript.json"));
        assert!(!p.file_name().unwrap().to_str().unwrap().contains('/'));
    }
}
