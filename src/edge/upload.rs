//! Sends an edge's finished recordings to the bridge (see `bridge::uploads`): each recording's
//! WAV, then its sidecar; resumed from what the bridge already holds; the whole file's SHA-256
//! on the last chunk. A recording is done once both are stored: a `.uploaded` marker beside it
//! says so, and the edge keeps its own copy. Whatever is not marked, after a crash or a restart
//! too, goes on the next pass.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

/// Under the bridge's request body limit (256 KiB by default).
const CHUNK: usize = 192 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a recording sidecar ({message})")]
    Sidecar { path: String, message: String },
    #[error("uploading {file}: {message}")]
    Http { file: String, message: String },
    #[error("the bridge stores no recordings: they stay on this edge")]
    NotTaken,
}

/// Sidecars in `dir` whose recordings are not yet on the bridge, oldest first.
pub fn pending(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| !p.with_extension("uploaded").exists())
        .collect();
    v.sort();
    v
}

/// Uploads one file, resuming at the bridge's offset.
async fn send_file(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    call_id: &str,
    path: &Path,
) -> Result<(), UploadError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let http_err = |message: String| UploadError::Http {
        file: name.clone(),
        message,
    };
    let data = tokio::fs::read(path)
        .await
        .map_err(|source| UploadError::File {
            path: path.display().to_string(),
            source,
        })?;
    let url = format!("{base}/recordings/{call_id}/{name}");
    let head = http
        .head(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| http_err(e.to_string()))?;
    if head.status() == reqwest::StatusCode::NOT_IMPLEMENTED {
        return Err(UploadError::NotTaken);
    }
    if !head.status().is_success() {
        return Err(http_err(format!("the bridge answered {}", head.status())));
    }
    if head.headers().contains_key("upload-complete") {
        return Ok(());
    }
    let offset_of = |r: &reqwest::Response| {
        r.headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
    };
    let mut at = offset_of(&head).unwrap_or(0).min(data.len());
    let checksum = hex::encode(Sha256::digest(&data));
    loop {
        let end = (at + CHUNK).min(data.len());
        let last = end == data.len();
        let mut req = http
            .patch(&url)
            .bearer_auth(token)
            .header("upload-offset", at.to_string())
            .body(data[at..end].to_vec());
        if last {
            req = req.header("upload-checksum", format!("sha256 {checksum}"));
        }
        let r = req.send().await.map_err(|e| http_err(e.to_string()))?;
        match r.status().as_u16() {
            200 | 201 if last => return Ok(()),
            204 => at = end,
            // The bridge holds another amount (a chunk lost in a crash): resume from there.
            409 => at = offset_of(&r).unwrap_or(0).min(data.len()),
            s => {
                let body = r.text().await.unwrap_or_default();
                return Err(http_err(format!("the bridge answered {s}: {body}")));
            }
        }
    }
}

/// Uploads every pending recording in `dir`; returns how many were stored.
pub async fn upload_pending(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    dir: &Path,
) -> Result<usize, UploadError> {
    let mut done = 0;
    for sidecar in pending(dir) {
        let text = tokio::fs::read_to_string(&sidecar)
            .await
            .map_err(|source| UploadError::File {
                path: sidecar.display().to_string(),
                source,
            })?;
        let record: crate::call_record::CallRecord =
            serde_json::from_str(&text).map_err(|e| UploadError::Sidecar {
                path: sidecar.display().to_string(),
                message: e.to_string(),
            })?;
        let wav = sidecar.with_extension("wav");
        if wav.exists() {
            send_file(http, base, token, &record.call_id, &wav).await?;
        }
        send_file(http, base, token, &record.call_id, &sidecar).await?;
        let _ = tokio::fs::write(sidecar.with_extension("uploaded"), b"").await;
        done += 1;
    }
    Ok(done)
}

/// Uploads in the background for as long as the edge runs: at start (what an earlier run left),
/// whenever `more` is notified (a recording finished), and every 30 s; failures back off up to
/// a minute.
pub fn spawn(base: String, token: String, dir: PathBuf, more: std::sync::Arc<Notify>) {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let mut backoff = Duration::from_secs(1);
        loop {
            match upload_pending(&http, &base, &token, &dir).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(recordings = n, "recordings uploaded to the bridge");
                    }
                    backoff = Duration::from_secs(1);
                    let _ = tokio::time::timeout(Duration::from_secs(30), more.notified()).await;
                }
                Err(UploadError::NotTaken) => {
                    tracing::info!("the bridge stores no recordings: they stay on this edge");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "recording upload failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    });
}
