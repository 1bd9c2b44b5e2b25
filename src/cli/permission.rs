//! `wacall permission NUMBER` and `wacall permission request NUMBER`: a user's call permission
//! at Meta (the state, what may be done now, the limits and when they reset), what the bridge
//! last learnt of it (its history), and the interactive request that asks the user.

use std::path::Path;

use anyhow::bail;

use crate::bridge::history::History;
use crate::config::Config;

fn check_number(number: &str) -> anyhow::Result<()> {
    crate::bridge::engine::check_recipient(number).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Prints the user's permission as Meta reports it, then the bridge's record when `db` has one.
pub async fn show(config: &Config, number: &str, db: Option<&Path>) -> anyhow::Result<()> {
    check_number(number)?;
    let client = super::ops::client(config)?;
    match client.call_permission(number).await {
        Ok(p) => print!("{}", p.describe(number, chrono::Utc::now())),
        Err(e @ crate::api::ApiError::Unsupported { .. }) => println!("{e}"),
        Err(e) => bail!("{e}"),
    }
    if let Some(db) = db.filter(|d| d.exists()) {
        let h = History::open(db)?;
        for row in h.permissions(Some(number), 1)? {
            println!(
                "the bridge's record: {}{} (from {}, {})",
                row.status,
                row.expires_at
                    .as_deref()
                    .map(|t| format!(" until {t}"))
                    .unwrap_or_default(),
                match row.source.as_str() {
                    "check" => "Meta's check",
                    "user_action" => "the user's reply",
                    "automatic" => "WhatsApp, automatically",
                    other => other,
                },
                row.updated_at
            );
        }
    }
    Ok(())
}

/// Sends the call-permission request; prints the message id and what happens next.
pub async fn request(config: &Config, number: &str, text: Option<&str>) -> anyhow::Result<()> {
    check_number(number)?;
    let text = text
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(crate::bridge::permissions::DEFAULT_REQUEST_TEXT);
    if text.chars().count() > crate::bridge::permissions::MAX_REQUEST_TEXT {
        bail!(
            "--text is {} characters; WhatsApp takes at most {}",
            text.chars().count(),
            crate::bridge::permissions::MAX_REQUEST_TEXT
        );
    }
    let client = super::ops::client(config)?;
    match crate::bridge::permissions::request(&client, number, text).await {
        Ok(id) => {
            println!(
                "permission request sent to {number} ({id}). Their answer reaches the bridge as a webhook; `wacall permission {number}` shows it."
            );
            Ok(())
        }
        Err((message, _)) => bail!("{message}"),
    }
}
