//! Recordings uploaded by edges to the bridge's store (`recording.dir`), resumable: an edge asks
//! how much of a file the bridge holds (`HEAD`, `Upload-Offset`), sends the rest in chunks
//! (`PATCH` at that offset), and the last one carries the file's SHA-256 (`Upload-Checksum:
//! sha256 HEX`): the bridge checks it, moves the file into place and links the history row.
//! Only the edge that held the call may upload its recordings (the hardening rule).

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::head;
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;

use std::sync::Arc;

use tokio::sync::mpsc;

use super::engine::EngineInput;
use super::identity::Readable;
use super::metrics::Metrics;
use super::server::{AppState, bearer};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/recordings/{call_id}/{file}", head(offset).patch(append))
}

/// A file name an edge may store: its recording or sidecar, named as the recorder names them
/// (the call id inside), nothing that could leave the store directory.
pub fn valid_name(call_id: &str, file: &str) -> bool {
    file.len() <= 160
        && file.contains(&crate::audio::recorder::file_safe_id(call_id))
        && (file.ends_with(".wav") || file.ends_with(".json"))
        && !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The store and the file's final and partial paths, once the token is the call's holder.
async fn authorised(
    s: &AppState,
    headers: &HeaderMap,
    call_id: &str,
    file: &str,
) -> Result<(PathBuf, PathBuf), Response> {
    let Some(store) = s.store_dir.clone() else {
        // 501: not a failure to retry, the edge keeps its recordings itself.
        return Err((
            StatusCode::NOT_IMPLEMENTED,
            "this bridge stores no recordings",
        )
            .into_response());
    };
    if !valid_name(call_id, file) {
        return Err((StatusCode::BAD_REQUEST, "not a recording name of this call").into_response());
    }
    // Supervisors read calls; only edges, and only the call's holder, store recordings.
    let readable = match s.identities.readable(bearer(headers)) {
        Some(r @ Readable::Names(_)) => r,
        _ => return Err((StatusCode::UNAUTHORIZED, "an edge token is required").into_response()),
    };
    let id = call_id.to_owned();
    let edge = s
        .read_history(move |h| h.get(&id).ok().flatten().and_then(|r| r.edge))
        .await
        .flatten();
    let holder = readable.covers(edge.as_deref());
    if !holder {
        s.metrics.uploads_refused.inc();
        // Someone else's call answers like an unknown one.
        return Err((StatusCode::NOT_FOUND, "no such call of this edge").into_response());
    }
    Ok((store.join(file), store.join(format!(".{file}.part"))))
}

fn with_offset(status: StatusCode, n: u64) -> Response {
    (status, [("upload-offset", n.to_string())]).into_response()
}

async fn offset(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path((call_id, file)): axum::extract::Path<(String, String)>,
) -> Response {
    let (done, part) = match authorised(&s, &headers, &call_id, &file).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Ok(m) = tokio::fs::metadata(&done).await {
        // Already stored whole.
        return (
            StatusCode::OK,
            [
                ("upload-offset", m.len().to_string()),
                ("upload-complete", "1".to_owned()),
            ],
        )
            .into_response();
    }
    let n = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
    with_offset(StatusCode::OK, n)
}

async fn append(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path((call_id, file)): axum::extract::Path<(String, String)>,
    body: Bytes,
) -> Response {
    use tokio::io::AsyncWriteExt;
    let (done, part) = match authorised(&s, &headers, &call_id, &file).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(at) = headers
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            "Upload-Offset is missing or not a number",
        )
            .into_response();
    };
    if tokio::fs::metadata(&done).await.is_ok() {
        return with_offset(StatusCode::OK, at + body.len() as u64);
    }
    if let Some(dir) = part.parent() {
        let _ = crate::private_files::create_dir(dir);
    }
    let existed = tokio::fs::metadata(&part).await.ok();
    let have = existed.as_ref().map_or(0, |m| m.len());
    if at != have {
        // The edge resumes from what the bridge holds.
        return with_offset(StatusCode::CONFLICT, have);
    }
    let written = async {
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&part)
            .await?;
        f.write_all(&body).await?;
        f.flush().await?;
        f.sync_data().await
    }
    .await;
    if let Err(e) = written {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    if existed.is_none() {
        s.metrics.uploads_pending.fetch_add(1, Ordering::Relaxed);
    }
    s.metrics.upload_bytes.add(body.len() as u64);
    let total = have + body.len() as u64;
    let Some(want) = headers
        .get("upload-checksum")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("sha256 "))
        .map(|h| h.trim().to_ascii_lowercase())
    else {
        return with_offset(StatusCode::NO_CONTENT, total);
    };
    // The last chunk: check the whole file, then move it into place and link the row.
    let (p, d) = (part.clone(), done.clone());
    let checked = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
        let got = hex::encode(Sha256::digest(std::fs::read(&p)?));
        if got != want {
            let _ = std::fs::remove_file(&p);
            return Ok(false);
        }
        std::fs::rename(&p, &d)?;
        Ok(true)
    })
    .await;
    if matches!(checked, Ok(Ok(_))) {
        let _ = s
            .metrics
            .uploads_pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
    match checked {
        Ok(Ok(true)) => {
            s.metrics.uploads_stored.inc();
            if file.ends_with(".wav") {
                stored(&s.engine, &call_id, &done).await;
                compact_in_background(
                    &call_id,
                    done.clone(),
                    s.keep_wav,
                    s.metrics.clone(),
                    s.engine.clone(),
                );
            }
            tracing::info!(call_id, file, bytes = total, "recording stored");
            with_offset(StatusCode::CREATED, total)
        }
        Ok(Ok(false)) => {
            s.metrics.uploads_failed.inc();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "checksum mismatch: the upload was discarded; send it again from 0",
            )
                .into_response()
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// On a blocking thread: a stored WAV becomes Ogg Opus (with its waveform's peaks saved beside
/// it), the row points at that, and the WAV goes unless `keep_wav`. Uploads and recordings a
/// bot in the bridge's process wrote into the store both come here.
pub(super) fn compact_in_background(
    call_id: &str,
    wav: PathBuf,
    keep_wav: bool,
    metrics: Arc<Metrics>,
    engine: mpsc::Sender<EngineInput>,
) {
    let id = call_id.to_owned();
    tokio::spawn(async move {
        let w = wav.clone();
        match tokio::task::spawn_blocking(move || compact_stored(&w)).await {
            Ok(Ok((opus, c))) => {
                metrics.stored_bytes.add(c.bytes);
                tracing::info!(call_id = %id, seconds = c.seconds, bytes = c.bytes, "recording compacted to Ogg Opus");
                stored(&engine, &id, &opus).await;
                if !keep_wav {
                    let _ = tokio::fs::remove_file(&wav).await;
                }
            }
            Ok(Err(e)) => tracing::warn!(call_id = %id, error = %e, "recording kept as WAV"),
            Err(_) => {}
        }
    });
}

/// Counts the partial uploads a store holds (at start: uploads an earlier run did not finish).
pub fn count_pending(store: &Path, metrics: &super::metrics::Metrics) {
    let n = std::fs::read_dir(store).map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .count()
    });
    metrics.uploads_pending.store(n as u64, Ordering::Relaxed);
}

/// Deletes the stored recordings, sidecars and peaks last written more than `keep` before
/// `now` (`recording.keep_days`); returns how many files went. Partial uploads are left alone.
pub fn sweep(store: &Path, keep: std::time::Duration, now: std::time::SystemTime) -> usize {
    let Ok(dir) = std::fs::read_dir(store) else {
        return 0;
    };
    let mut gone = 0;
    for e in dir.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = [".opus", ".wav", ".json"].iter().any(|x| name.ends_with(x));
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > keep);
        if ours && !name.starts_with('.') && old && std::fs::remove_file(e.path()).is_ok() {
            gone += 1;
        }
    }
    gone
}

/// A stored WAV's compact form: Ogg Opus beside it (32 kb/s), with its waveform's peaks.
pub fn compact_stored(wav: &Path) -> Result<(PathBuf, crate::audio::ogg_opus::Compacted), String> {
    let opus = wav.with_extension("opus");
    let peaks = crate::audio::peaks::wav_peaks(wav, 4000)?;
    let json = serde_json::to_vec(&peaks).map_err(|e| e.to_string())?;
    std::fs::write(opus.with_extension("peaks.json"), json).map_err(|e| e.to_string())?;
    crate::audio::ogg_opus::compact(wav, &opus, 32_000).map(|c| (opus, c))
}

/// The call's row now points at the bridge's copy (written by the history writer, through the
/// engine, like every other change to a row).
async fn stored(engine: &mpsc::Sender<EngineInput>, call_id: &str, path: &Path) {
    let _ = engine
        .send(EngineInput::RecordingStored {
            call_id: call_id.to_owned(),
            path: path.display().to_string(),
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn only_this_calls_recording_names_are_stored() {
        let id = "wacid.ABC123";
        assert!(valid_name(id, "20261202T101010Z_wacid.ABC123.wav"));
        assert!(valid_name(id, "20261202T101010Z_wacid.ABC123.json"));
        assert!(!valid_name(id, "20261202T101010Z_wacid.OTHER.wav"));
        assert!(!valid_name(id, "../20261202T101010Z_wacid.ABC123.wav"));
        assert!(!valid_name(id, "20261202T101010Z_wacid.ABC123.sh"));
        assert!(!valid_name(id, ".20261202T101010Z_wacid.ABC123.wav.part"));
    }

    #[test]
    fn the_sweep_deletes_only_old_stored_files() {
        use std::time::{Duration, SystemTime};
        let dir = std::env::temp_dir().join(format!("wacall-sweep-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let day = Duration::from_secs(86_400);
        let old = SystemTime::now() - 40 * day;
        for (name, t) in [
            ("a_wacid.1.opus", old),
            ("a_wacid.1.peaks.json", old),
            ("b_wacid.2.opus", SystemTime::now()),
            (".c_wacid.3.wav.part", old),
            ("notes.txt", old),
        ] {
            let f = std::fs::File::create(dir.join(name)).unwrap();
            f.set_modified(t).unwrap();
        }
        assert_eq!(super::sweep(&dir, 30 * day, SystemTime::now()), 2);
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(left.contains(&"b_wacid.2.opus".to_string()));
        let m = crate::bridge::metrics::Metrics::default();
        super::count_pending(&dir, &m);
        assert_eq!(
            m.uploads_pending.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
