//! Call history in an embedded SQLite database: one row per call, the same fields as the
//! recording sidecar (`CallRecord`). Writes go through one writer thread so they keep their order
//! and never block the engine.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::call_record::{CallRecord, Direction, QualitySample, QualitySummary};

#[derive(Debug, thiserror::Error)]
#[error("call history {path}: {source}")]
pub struct HistoryError {
    pub path: PathBuf,
    #[source]
    pub source: rusqlite::Error,
}

pub struct History {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    direction TEXT NOT NULL,
    customer TEXT NOT NULL,
    business TEXT NOT NULL,
    caller_name TEXT,
    edge TEXT,
    answered_by TEXT,
    offered_at TEXT NOT NULL,
    pre_accepted_at TEXT,
    accepted_at TEXT,
    ended_at TEXT,
    end_reason TEXT,
    duration_s INTEGER,
    quality TEXT,
    recording TEXT,
    dtmf TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS calls_offered ON calls(offered_at);
CREATE TABLE IF NOT EXISTS quality_samples (
    call_id TEXT NOT NULL,
    at TEXT NOT NULL,
    sample TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quality_samples_call ON quality_samples(call_id, at);
CREATE TABLE IF NOT EXISTS call_permissions (
    customer TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    expires_at TEXT,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
";

/// Columns added after the first release: (name, type). A history file from before gets them
/// on open (`ALTER TABLE ... ADD COLUMN`), its rows keep NULL there.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("queue_wait_s", "INTEGER"),
    ("overflow", "TEXT"),
    // The bridge's copy of an uploaded recording: read in place of the edge's path, and never
    // overwritten by the edge's later reports.
    ("stored_recording", "TEXT"),
    // When each key was pressed, a JSON array aligned with `dtmf`.
    ("dtmf_at", "TEXT"),
    // Meta's recording and transcript of the call, downloaded into the store.
    ("meta_recording", "TEXT"),
    ("meta_transcript", "TEXT"),
];

/// What the bridge last learnt of a user's call permission (Meta's check, or the user's reply).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PermissionRow {
    pub customer: String,
    /// `none`, `temporary`, `permanent`.
    pub status: String,
    /// RFC 3339, for a temporary permission.
    pub expires_at: Option<String>,
    /// `check` (Meta's permission check), `user_action` or `automatic` (a reply webhook).
    pub source: String,
    pub updated_at: String,
}

fn err_at(path: &Path, source: rusqlite::Error) -> HistoryError {
    HistoryError {
        path: path.to_path_buf(),
        source,
    }
}

impl History {
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        let err = |source| HistoryError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // A missing folder would only surface as SQLite's "unable to open database file".
            let _ = crate::private_files::create_dir(dir);
        }
        // Customers' numbers and names: readable by the service only (SQLite gives its -wal
        // and -shm files the database file's mode).
        if let Err(e) = crate::private_files::ensure_file(path) {
            tracing::debug!(error = %e, "history file not pre-created; SQLite creates it");
        }
        let conn = Connection::open(path).map_err(err)?;
        // WAL: readers (`wacall history`) don't block the bridge's writes, and a crash loses at
        // most the last transaction.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        // In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the process
        // loses nothing and the file never corrupts; only a power cut can drop the last
        // commits, and each recording's sidecar holds the same record durably.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        let have: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('calls')")
            .and_then(|mut st| {
                st.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<_, _>>()
            })
            .map_err(err)?;
        for (name, kind) in ADDED_COLUMNS {
            if !have.iter().any(|h| h == name) {
                conn.execute_batch(&format!("ALTER TABLE calls ADD COLUMN {name} {kind}"))
                    .map_err(err)?;
            }
        }
        Ok(History {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> HistoryError {
        err_at(&self.path, source)
    }

    pub fn upsert(&mut self, r: &CallRecord) -> Result<(), HistoryError> {
        self.upsert_all(std::slice::from_ref(r))
    }

    /// Writes the records in order in one transaction: one commit (and one sync) for a burst of
    /// call events instead of one each.
    pub fn upsert_all(&mut self, records: &[CallRecord]) -> Result<(), HistoryError> {
        let tx = self.conn.transaction().map_err(|e| err_at(&self.path, e))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO calls (call_id, direction, customer, business, caller_name, edge, answered_by,
                    offered_at, pre_accepted_at, accepted_at, ended_at, end_reason, duration_s, quality,
                    recording, dtmf, queue_wait_s, overflow, dtmf_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
                 ON CONFLICT(call_id) DO UPDATE SET
                    direction=excluded.direction, customer=excluded.customer, business=excluded.business,
                    caller_name=excluded.caller_name, edge=excluded.edge, answered_by=excluded.answered_by,
                    offered_at=excluded.offered_at, pre_accepted_at=excluded.pre_accepted_at,
                    accepted_at=excluded.accepted_at, ended_at=excluded.ended_at,
                    end_reason=excluded.end_reason, duration_s=excluded.duration_s,
                    quality=COALESCE(excluded.quality, calls.quality),
                    recording=COALESCE(excluded.recording, calls.recording), dtmf=excluded.dtmf,
                    queue_wait_s=excluded.queue_wait_s, overflow=excluded.overflow,
                    dtmf_at=excluded.dtmf_at",
                )
                .map_err(|e| err_at(&self.path, e))?;
            for r in records {
                let quality = r
                    .quality
                    .map(|q| serde_json::to_string(&q).unwrap_or_default());
                stmt.execute(params![
                    r.call_id,
                    r.direction.as_str(),
                    r.customer,
                    r.business,
                    r.caller_name,
                    r.edge,
                    r.answered_by,
                    r.offered_at,
                    r.pre_accepted_at,
                    r.accepted_at,
                    r.ended_at,
                    r.end_reason,
                    r.duration_s.map(|d| d as i64),
                    quality,
                    r.recording,
                    r.dtmf,
                    r.queue_wait_s.map(|d| d as i64),
                    r.overflow,
                    serde_json::to_string(&r.dtmf_at).unwrap_or_default(),
                ])
                .map_err(|e| err_at(&self.path, e))?;
            }
        }
        tx.commit().map_err(|e| err_at(&self.path, e))
    }

    fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CallRecord> {
        let direction: String = row.get(1)?;
        let quality: Option<String> = row.get(13)?;
        let duration: Option<i64> = row.get(12)?;
        let waited: Option<i64> = row.get(16)?;
        let dtmf_at: Option<String> = row.get(18)?;
        Ok(CallRecord {
            call_id: row.get(0)?,
            direction: if direction == "outbound" {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            customer: row.get(2)?,
            business: row.get(3)?,
            caller_name: row.get(4)?,
            edge: row.get(5)?,
            answered_by: row.get(6)?,
            offered_at: row.get(7)?,
            pre_accepted_at: row.get(8)?,
            accepted_at: row.get(9)?,
            ended_at: row.get(10)?,
            end_reason: row.get(11)?,
            duration_s: duration.map(|d| d.max(0) as u64),
            quality: quality.and_then(|q| serde_json::from_str::<QualitySummary>(&q).ok()),
            recording: row.get(14)?,
            dtmf: row.get(15)?,
            queue_wait_s: waited.map(|d| d.max(0) as u64),
            overflow: row.get(17)?,
            dtmf_at: dtmf_at
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or_default(),
            meta_recording: row.get(19)?,
            meta_transcript: row.get(20)?,
        })
    }

    const COLUMNS: &'static str =
        "call_id, direction, customer, business, caller_name, edge, answered_by, offered_at,
        pre_accepted_at, accepted_at, ended_at, end_reason, duration_s, quality,
        COALESCE(stored_recording, recording), dtmf, queue_wait_s, overflow, dtmf_at,
        meta_recording, meta_transcript";

    /// Calls matching `f`, newest first, and how many match in all (for paging).
    pub fn search(&self, f: &Search) -> Result<(Vec<CallRecord>, u64), HistoryError> {
        let mut cond = vec!["1=1".to_owned()];
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        // Each `?` of `sql` takes the next of `vals`, numbered in order.
        fn arg(
            cond: &mut Vec<String>,
            args: &mut Vec<rusqlite::types::Value>,
            sql: &str,
            vals: Vec<rusqlite::types::Value>,
        ) {
            let mut out = String::new();
            let mut vals = vals.into_iter();
            for part in sql.split('?').enumerate() {
                if part.0 > 0 {
                    if let Some(v) = vals.next() {
                        args.push(v);
                    }
                    out.push_str(&format!("?{}", args.len()));
                }
                out.push_str(part.1);
            }
            cond.push(out);
        }
        if let Some(q) = f.text.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            // Literal text: LIKE's wildcards in it are escaped.
            let like = format!(
                "%{}%",
                q.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            arg(
                &mut cond,
                &mut args,
                "(customer LIKE ? ESCAPE '\\' OR caller_name LIKE ? ESCAPE '\\' OR call_id LIKE ? ESCAPE '\\' OR edge LIKE ? ESCAPE '\\')",
                vec![
                    like.clone().into(),
                    like.clone().into(),
                    like.clone().into(),
                    like.into(),
                ],
            );
        }
        if let Some(from) = &f.from {
            arg(
                &mut cond,
                &mut args,
                "offered_at >= ?",
                vec![from.clone().into()],
            );
        }
        if let Some(to) = &f.to {
            arg(
                &mut cond,
                &mut args,
                "offered_at < ?",
                vec![to.clone().into()],
            );
        }
        if let Some(d) = f.direction {
            arg(
                &mut cond,
                &mut args,
                "direction = ?",
                vec![d.as_str().to_owned().into()],
            );
        }
        if let Some(o) = f.outcome.as_deref().filter(|o| !o.is_empty()) {
            // By the reason's first word (`media_failed: ...` is `media_failed`).
            arg(
                &mut cond,
                &mut args,
                "(end_reason = ? OR end_reason LIKE ?)",
                vec![o.to_owned().into(), format!("{o}:%").into()],
            );
        }
        if let Some(s) = f.min_duration_s {
            arg(
                &mut cond,
                &mut args,
                "duration_s >= ?",
                vec![(s as i64).into()],
            );
        }
        if let Some(s) = f.max_duration_s {
            arg(
                &mut cond,
                &mut args,
                "duration_s <= ?",
                vec![(s as i64).into()],
            );
        }
        let wh = cond.join(" AND ");
        let total: i64 = self
            .conn
            .query_row(
                &format!("SELECT COUNT(*) FROM calls WHERE {wh}"),
                rusqlite::params_from_iter(args.iter()),
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let per_page = f.per_page.clamp(1, 1000);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM calls WHERE {wh} ORDER BY offered_at DESC LIMIT {per_page} OFFSET {}",
                Self::COLUMNS,
                f.page.saturating_mul(per_page)
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), Self::row)
            .map_err(|e| self.err(e))?;
        let rows = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok((rows, total.max(0) as u64))
    }

    /// Points a call's row at its recording (the bridge's stored copy of an upload).
    pub fn set_recording(&self, call_id: &str, path: &str) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "UPDATE calls SET stored_recording = ?2 WHERE call_id = ?1",
                params![call_id, path],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Links Meta's downloaded recording or transcript to the call's row.
    pub fn set_meta_media(
        &self,
        call_id: &str,
        kind: crate::webhook::MetaMediaKind,
        path: &str,
    ) -> Result<(), HistoryError> {
        let sql = match kind {
            crate::webhook::MetaMediaKind::Recording => {
                "UPDATE calls SET meta_recording = ?2 WHERE call_id = ?1"
            }
            crate::webhook::MetaMediaKind::Transcript => {
                "UPDATE calls SET meta_transcript = ?2 WHERE call_id = ?1"
            }
        };
        self.conn
            .execute(sql, params![call_id, path])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Records what is known of a user's call permission (the latest wins).
    pub fn set_permission(&self, p: &PermissionRow) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "INSERT INTO call_permissions (customer, status, expires_at, source, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(customer) DO UPDATE SET status=excluded.status,
                    expires_at=excluded.expires_at, source=excluded.source,
                    updated_at=excluded.updated_at",
                params![p.customer, p.status, p.expires_at, p.source, p.updated_at],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The permissions known, the most recently updated first (`customer`: that user only).
    pub fn permissions(
        &self,
        customer: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PermissionRow>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT customer, status, expires_at, source, updated_at FROM call_permissions
                 WHERE ?1 IS NULL OR customer = ?1 ORDER BY updated_at DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![customer, limit as i64], |row| {
                Ok(PermissionRow {
                    customer: row.get(0)?,
                    status: row.get(1)?,
                    expires_at: row.get(2)?,
                    source: row.get(3)?,
                    updated_at: row.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Appends quality samples in one transaction.
    pub fn append_samples(
        &mut self,
        samples: &[(String, QualitySample)],
    ) -> Result<(), HistoryError> {
        let tx = self.conn.transaction().map_err(|e| err_at(&self.path, e))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO quality_samples (call_id, at, sample) VALUES (?1, ?2, ?3)",
                )
                .map_err(|e| err_at(&self.path, e))?;
            for (id, s) in samples {
                let json = serde_json::to_string(s).unwrap_or_default();
                stmt.execute(params![id, s.at, json])
                    .map_err(|e| err_at(&self.path, e))?;
            }
        }
        tx.commit().map_err(|e| err_at(&self.path, e))
    }

    /// A call's quality over time, oldest first.
    pub fn samples(&self, call_id: &str) -> Result<Vec<QualitySample>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT sample FROM quality_samples WHERE call_id = ?1 ORDER BY at")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([call_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for json in rows {
            let json = json.map_err(|e| self.err(e))?;
            // A row this version cannot read is skipped, not an error for the whole call.
            if let Ok(s) = serde_json::from_str(&json) {
                out.push(s);
            }
        }
        Ok(out)
    }

    pub fn get(&self, call_id: &str) -> Result<Option<CallRecord>, HistoryError> {
        self.conn
            .query_row(
                &format!("SELECT {} FROM calls WHERE call_id = ?1", Self::COLUMNS),
                [call_id],
                Self::row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The newest calls first.
    /// The ids of the `limit` most recent calls (cheap: the id column only).
    pub fn recent_ids(&self, limit: usize) -> Result<Vec<String>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT call_id FROM calls ORDER BY offered_at DESC LIMIT ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit as i64], |row| row.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The `limit` most recent calls held by an edge named in `names` (edge ids are
    /// `<name>-<random>`).
    pub fn recent_for(
        &self,
        names: &[String],
        limit: usize,
    ) -> Result<Vec<CallRecord>, HistoryError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let cond = (1..=names.len())
            .map(|i| format!("substr(edge, 1, length(?{i})) = ?{i}"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM calls WHERE {cond} ORDER BY offered_at DESC LIMIT {}",
                Self::COLUMNS,
                limit
            ))
            .map_err(|e| self.err(e))?;
        let prefixes: Vec<String> = names.iter().map(|n| format!("{n}-")).collect();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(prefixes.iter()), Self::row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    pub fn recent(&self, limit: usize) -> Result<Vec<CallRecord>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM calls ORDER BY offered_at DESC LIMIT ?1",
                Self::COLUMNS
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit as i64], Self::row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}

const MAX_BATCH: usize = 256;

/// A history search (the console's History page). Text matches number, name, call id or
/// edge; dates are RFC 3339 prefixes compared as text (`2026-12-01` works).
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub text: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub direction: Option<Direction>,
    pub outcome: Option<String>,
    pub min_duration_s: Option<u64>,
    pub max_duration_s: Option<u64>,
    pub page: usize,
    pub per_page: usize,
}

/// One row of the CSV export. A cell starting with `=`, `+`, `-` or `@` is prefixed with `'`
/// so a spreadsheet does not run it as a formula (a caller's name is the customer's to choose).
pub fn csv(rows: &[CallRecord]) -> String {
    fn cell(s: &str) -> String {
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_owned()
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let mut out = String::from(
        "call_id,direction,customer,caller_name,edge,offered_at,accepted_at,ended_at,end_reason,duration_s,queue_wait_s,loss_pct\r\n",
    );
    for r in rows {
        let fields = [
            r.call_id.clone(),
            r.direction.as_str().to_owned(),
            r.customer.clone(),
            r.caller_name.clone().unwrap_or_default(),
            r.edge.clone().unwrap_or_default(),
            r.offered_at.clone(),
            r.accepted_at.clone().unwrap_or_default(),
            r.ended_at.clone().unwrap_or_default(),
            r.end_reason.clone().unwrap_or_default(),
            r.duration_s.map(|d| d.to_string()).unwrap_or_default(),
            r.queue_wait_s.map(|d| d.to_string()).unwrap_or_default(),
            r.quality
                .map(|q| format!("{:.2}", q.loss_pct))
                .unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| cell(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// What the writer thread stores.
enum Write {
    Record(Box<CallRecord>),
    Sample(String, QualitySample),
    Recording(String, String),
    MetaMedia(String, crate::webhook::MetaMediaKind, String),
    Permission(PermissionRow),
}

/// Serialises writes on a thread of their own.
#[derive(Clone)]
pub struct HistoryWriter {
    tx: std::sync::mpsc::Sender<Write>,
    thread: std::sync::Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl HistoryWriter {
    pub fn start(mut history: History) -> HistoryWriter {
        let (tx, rx) = std::sync::mpsc::channel::<Write>();
        let thread = std::thread::Builder::new()
            .name("wacall-history".into())
            .spawn(move || {
                // History is read after the fact: under load it waits for the calls.
                crate::thread_priority::step_back();
                // Whatever queued while the last batch was written goes in the next one: fifty
                // calls arriving at once cost a few commits, not a hundred.
                let (mut batch, mut samples, mut stored) = (Vec::new(), Vec::new(), Vec::new());
                let (mut meta, mut permissions) = (Vec::new(), Vec::new());
                while let Ok(first) = rx.recv() {
                    for w in std::iter::once(first).chain(rx.try_iter().take(MAX_BATCH - 1)) {
                        match w {
                            Write::Record(r) => batch.push(*r),
                            Write::Sample(id, s) => samples.push((id, s)),
                            Write::Recording(id, path) => {
                                // After the rows this batch writes: a new row exists then.
                                stored.push((id, path));
                            }
                            Write::MetaMedia(id, kind, path) => meta.push((id, kind, path)),
                            Write::Permission(p) => permissions.push(p),
                        }
                    }
                    if !batch.is_empty()
                        && let Err(e) = history.upsert_all(&batch)
                    {
                        tracing::error!(calls = batch.len(), error = %e, "history write failed");
                    }
                    if !samples.is_empty()
                        && let Err(e) = history.append_samples(&samples)
                    {
                        tracing::error!(samples = samples.len(), error = %e, "quality samples not written");
                    }
                    for (id, path) in stored.drain(..) {
                        if let Err(e) = history.set_recording(&id, &path) {
                            tracing::error!(call_id = %id, error = %e, "stored recording not linked");
                        }
                    }
                    for (id, kind, path) in meta.drain(..) {
                        if let Err(e) = history.set_meta_media(&id, kind, &path) {
                            tracing::error!(call_id = %id, error = %e, "Meta's file not linked");
                        }
                    }
                    for p in permissions.drain(..) {
                        if let Err(e) = history.set_permission(&p) {
                            tracing::error!(error = %e, "call permission not recorded");
                        }
                    }
                    batch.clear();
                    samples.clear();
                }
            })
            .ok();
        HistoryWriter {
            tx,
            thread: std::sync::Arc::new(std::sync::Mutex::new(thread)),
        }
    }

    /// Writes what is queued and waits for the writer thread to end (shutdown: a process that
    /// exits before it would lose the last rows, those of the calls it just ended).
    pub fn finish(self) {
        let HistoryWriter { tx, thread } = self;
        drop(tx);
        let handle = thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle
            && h.join().is_err()
        {
            tracing::error!("the history writer panicked");
        }
    }

    pub fn upsert(&self, r: CallRecord) {
        let _ = self.tx.send(Write::Record(Box::new(r)));
    }

    /// Points a call's row at its stored (compact) recording.
    pub fn set_recording(&self, call_id: &str, path: &str) {
        let _ = self
            .tx
            .send(Write::Recording(call_id.to_string(), path.to_string()));
    }

    /// Links Meta's downloaded recording or transcript to the call's row.
    pub fn set_meta_media(&self, call_id: &str, kind: crate::webhook::MetaMediaKind, path: &str) {
        let _ = self.tx.send(Write::MetaMedia(
            call_id.to_string(),
            kind,
            path.to_string(),
        ));
    }

    /// Records what is known of a user's call permission.
    pub fn set_permission(&self, p: PermissionRow) {
        let _ = self.tx.send(Write::Permission(p));
    }

    /// Adds a point to a call's quality over time.
    pub fn sample(&self, call_id: &str, s: QualitySample) {
        let _ = self.tx.send(Write::Sample(call_id.to_string(), s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history file from before the queue columns existed opens, gains them, keeps its rows,
    /// and stores the new fields.
    #[test]
    fn an_older_history_file_gains_the_new_columns() {
        let path =
            std::env::temp_dir().join(format!("wacall-hist-{}.sqlite3", rand::random::<u64>()));
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute(
                "INSERT INTO calls (call_id, direction, customer, business, offered_at) VALUES ('wacid.OLD', 'inbound', '521', '522', '2026-01-01T00:00:00.000Z')",
                [],
            )
            .unwrap();
        }
        let mut h = History::open(&path).unwrap();
        let old = h.get("wacid.OLD").unwrap().unwrap();
        assert_eq!((old.queue_wait_s, old.overflow), (None, None));
        let mut r = CallRecord::new("wacid.NEW", Direction::Inbound, "521", "522");
        r.queue_wait_s = Some(7);
        r.overflow = Some("to voicemail".into());
        h.upsert(&r).unwrap();
        let back = h.get("wacid.NEW").unwrap().unwrap();
        assert_eq!(back.queue_wait_s, Some(7));
        assert_eq!(back.overflow.as_deref(), Some("to voicemail"));
        drop(h);
        // Opening again adds nothing twice.
        History::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn search_filters_pages_and_exports_safely() {
        let path =
            std::env::temp_dir().join(format!("wacall-hist-{}.sqlite3", rand::random::<u64>()));
        let mut h = History::open(&path).unwrap();
        for i in 0..5u64 {
            let mut r = CallRecord::new(
                &format!("wacid.S{i}"),
                Direction::Inbound,
                &format!("52155{i:04}"),
                "b",
            );
            r.offered_at = format!("2026-12-0{}T10:00:00.000Z", i + 1);
            r.end_reason = Some(if i == 2 {
                "media_failed: no RTP".into()
            } else {
                "customer_hangup".into()
            });
            r.duration_s = Some(i * 10);
            r.caller_name = Some(if i == 4 {
                "=HYPERLINK(\"x\")".into()
            } else {
                format!("Caller_{i}")
            });
            h.upsert(&r).unwrap();
        }
        let find = |f: Search| h.search(&Search { per_page: 50, ..f }).unwrap();
        assert_eq!(find(Search::default()).1, 5);
        assert_eq!(
            find(Search {
                text: Some("0003".into()),
                ..Default::default()
            })
            .0[0]
                .call_id,
            "wacid.S3"
        );
        // `_` is literal, not LIKE's any-character.
        assert_eq!(
            find(Search {
                text: Some("r_1".into()),
                ..Default::default()
            })
            .1,
            1
        );
        assert_eq!(
            find(Search {
                outcome: Some("media_failed".into()),
                ..Default::default()
            })
            .1,
            1
        );
        let window = Search {
            from: Some("2026-12-02".into()),
            to: Some("2026-12-04".into()),
            ..Default::default()
        };
        assert_eq!(find(window).1, 2);
        assert_eq!(
            find(Search {
                min_duration_s: Some(20),
                max_duration_s: Some(30),
                ..Default::default()
            })
            .1,
            2
        );
        let (page, total) = h
            .search(&Search {
                per_page: 2,
                page: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!((page.len(), total), (1, 5));
        let out = csv(&find(Search::default()).0);
        assert!(out.contains(",\"'=HYPERLINK(\"\"x\"\")\","), "{out}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn quality_samples_are_kept_per_call_in_order() {
        let path =
            std::env::temp_dir().join(format!("wacall-hist-{}.sqlite3", rand::random::<u64>()));
        let mut h = History::open(&path).unwrap();
        let sample = |at: &str, lost| QualitySample {
            at: at.into(),
            packets_lost: lost,
            level_in_dbfs: Some(-20.0),
            ..Default::default()
        };
        h.append_samples(&[
            ("a".into(), sample("2026-12-02T10:00:02.000Z", 0)),
            ("b".into(), sample("2026-12-02T10:00:02.000Z", 9)),
            ("a".into(), sample("2026-12-02T10:00:04.000Z", 3)),
        ])
        .unwrap();
        let a = h.samples("a").unwrap();
        assert_eq!(a.iter().map(|s| s.packets_lost).collect::<Vec<_>>(), [0, 3]);
        assert_eq!(a[0].level_in_dbfs, Some(-20.0));
        assert!(h.samples("nobody").unwrap().is_empty());
        let table = crate::cli::ops::quality_table(&a);
        assert!(
            table.lines().nth(2).unwrap().contains("      3 "),
            "{table}"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn rows_round_trip_and_update_in_place() {
        let path =
            std::env::temp_dir().join(format!("wacall-hist-{}.sqlite3", rand::random::<u64>()));
        let mut h = History::open(&path).unwrap();
        let mut r = CallRecord::new(
            "wacid.1",
            Direction::Inbound,
            "5215500000002",
            "5215500000001",
        );
        r.caller_name = Some("Ana".into());
        h.upsert(&r).unwrap();
        r.end_reason = Some("customer_hangup".into());
        r.duration_s = Some(12);
        r.quality = Some(QualitySummary {
            packets_received: 600,
            jitter_ms: 1.5,
            ..Default::default()
        });
        r.recording = Some("recordings/x.wav".into());
        h.upsert(&r).unwrap();
        // A later update without quality keeps the stored one.
        let mut r2 = r.clone();
        r2.quality = None;
        h.upsert(&r2).unwrap();
        assert_eq!(h.get("wacid.1").unwrap().unwrap(), r);
        assert_eq!(h.recent(10).unwrap().len(), 1);
        assert!(h.get("nope").unwrap().is_none());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_batch_applies_in_order_and_the_writer_drains_its_queue() {
        let path =
            std::env::temp_dir().join(format!("wacall-hist-{}.sqlite3", rand::random::<u64>()));
        let mut h = History::open(&path).unwrap();
        let mut a = CallRecord::new("wacid.A", Direction::Inbound, "5215500000002", "52155");
        let mut a_later = a.clone();
        a_later.end_reason = Some("customer_hangup".into());
        a.caller_name = Some("first".into());
        a_later.caller_name = Some("second".into());
        let b = CallRecord::new("wacid.B", Direction::Outbound, "5215500000003", "52155");
        h.upsert_all(&[a, b.clone(), a_later.clone()]).unwrap();
        assert_eq!(h.get("wacid.A").unwrap().unwrap(), a_later);
        assert_eq!(h.get("wacid.B").unwrap().unwrap(), b);

        // Through the writer thread: many records queued at once all land.
        let writer = HistoryWriter::start(h);
        for i in 0..300 {
            writer.upsert(CallRecord::new(
                &format!("wacid.W{i}"),
                Direction::Inbound,
                "5215500000002",
                "52155",
            ));
        }
        drop(writer);
        let reader = History::open(&path).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while reader.recent(1000).unwrap().len() < 302 {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer lost records"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = std::fs::remove_file(&path);
    }
}
