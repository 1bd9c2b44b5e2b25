//! `wacall history`: the bridge's history database as a table (or JSON): recent calls, one
//! call's quality over time, or the users' call permissions. Rendered to a string, so the
//! command's output is tested without a terminal.

use std::fmt::Write;
use std::path::Path;

use anyhow::bail;

use crate::bridge::history::History;

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Show {
    Calls,
    /// One call's quality samples.
    Quality(String),
    Permissions,
}

pub fn render(db: &Path, what: Show, limit: usize, json: bool) -> anyhow::Result<String> {
    if !db.exists() {
        bail!(
            "no call history at {} (set --db to the bridge's server.history_db)",
            db.display()
        );
    }
    let history = History::open(db)?;
    let mut out = String::new();
    match what {
        Show::Permissions => {
            let rows = history.permissions(None, limit)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
                return Ok(out);
            }
            writeln!(
                out,
                "{:<16} {:<10} {:<21} {:<12} updated",
                "user", "status", "until", "from"
            )?;
            for r in rows {
                writeln!(
                    out,
                    "{:<16} {:<10} {:<21} {:<12} {}",
                    r.customer,
                    r.status,
                    r.expires_at.as_deref().unwrap_or("-"),
                    r.source,
                    r.updated_at
                )?;
            }
        }
        Show::Quality(id) => {
            let samples = history.samples(&id)?;
            if samples.is_empty() && history.get(&id)?.is_none() {
                bail!("no call {id} in {}", db.display());
            }
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&samples)?)?;
            } else {
                out.push_str(&super::ops::quality_table(&samples));
            }
        }
        Show::Calls => {
            let rows = history.recent(limit)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
                return Ok(out);
            }
            writeln!(
                out,
                "{:<24} {:<8} {:<16} {:<12} {:>6} {:<22} {:>6}",
                "offered", "dir", "customer", "name", "dur s", "end", "loss%"
            )?;
            for r in rows {
                writeln!(
                    out,
                    "{:<24} {:<8} {:<16} {:<12} {:>6} {:<22} {:>6}",
                    r.offered_at.get(..23).unwrap_or(&r.offered_at),
                    r.direction.as_str(),
                    r.customer,
                    r.caller_name.as_deref().unwrap_or("-"),
                    r.duration_s
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.end_reason
                        .as_deref()
                        .unwrap_or("(live)")
                        .chars()
                        .take(22)
                        .collect::<String>(),
                    r.quality
                        .map(|q| format!("{:.2}", q.loss_pct))
                        .unwrap_or_else(|| "-".into()),
                )?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call_record::{CallRecord, Direction};

    #[test]
    fn calls_and_permissions_are_listed() {
        let dir = std::env::temp_dir().join(format!("wacall-hist-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("h.sqlite3");
        let mut h = History::open(&db).unwrap();
        let mut r = CallRecord::new("wacid.H1", Direction::Inbound, "5215500000002", "1");
        r.caller_name = Some("Ana".into());
        r.end_reason = Some("customer_hangup".into());
        h.upsert(&r).unwrap();
        h.set_permission(&crate::bridge::history::PermissionRow {
            customer: "5215500000002".into(),
            status: "temporary".into(),
            expires_at: Some("2026-12-09T00:00:00Z".into()),
            source: "user_action".into(),
            updated_at: "2026-12-02T00:00:00Z".into(),
        })
        .unwrap();
        let calls = render(&db, Show::Calls, 10, false).unwrap();
        assert!(
            calls.contains("Ana") && calls.contains("customer_hangup"),
            "{calls}"
        );
        let perms = render(&db, Show::Permissions, 10, false).unwrap();
        assert!(
            perms.contains("temporary") && perms.contains("2026-12-09"),
            "{perms}"
        );
        let e = render(&db, Show::Quality("wacid.NONE".into()), 10, false).unwrap_err();
        assert!(e.to_string().contains("no call wacid.NONE"), "{e}");
        assert!(render(&dir.join("nope"), Show::Calls, 1, false).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
