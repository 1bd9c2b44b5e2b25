//! Call permissions at the bridge (Meta's Cloud API): a dial is checked against Meta's
//! `call_permissions` before `connect`, so an agent hears "ask them first" (or when a limit
//! resets) instead of a failed call; permission requests are sent for edges; the user's reply
//! webhook updates what the bridge knows (history's `call_permissions` table) and reaches the
//! edges that asked.
//!
//! The check is advice, `connect` is the authority: when the check itself fails (rate limited,
//! unreachable), the dial goes ahead and a refusal comes back from `connect` (#138006), put
//! into the same words.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::history::PermissionRow;
use crate::api::permission::{CallPermission, DialAdvice, PermissionStatus};
use crate::api::{ApiError, BspClient};

/// The request's text when an edge gives none.
pub const DEFAULT_REQUEST_TEXT: &str =
    "We would like to call you on WhatsApp about your enquiry. May we?";
/// WhatsApp's limit on an interactive message body.
pub const MAX_REQUEST_TEXT: usize = 1024;

/// Why a dial is not placed: in words, whether a permission request may be sent now, and when
/// the limit in the way resets (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub can_request: bool,
    pub resets_at: Option<String>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The history row for a status learnt now from `source`.
pub fn row(customer: &str, status: &PermissionStatus, source: &str) -> PermissionRow {
    let (word, expires_at) = match status {
        PermissionStatus::None => ("none", None),
        PermissionStatus::Temporary { until } => ("temporary", until.map(rfc3339)),
        PermissionStatus::Permanent => ("permanent", None),
    };
    PermissionRow {
        customer: customer.to_owned(),
        status: word.to_owned(),
        expires_at,
        source: source.to_owned(),
        updated_at: rfc3339(Utc::now()),
    }
}

/// Meta's answer as a refusal, or `None` when `to` may be called.
pub fn refusal(p: &CallPermission, to: &str, now: DateTime<Utc>) -> Option<Refusal> {
    match p.advice(to, now) {
        DialAdvice::Call => None,
        DialAdvice::RequestPermission { message } => Some(Refusal {
            message,
            can_request: true,
            resets_at: None,
        }),
        DialAdvice::Wait { message, resets_at } => Some(Refusal {
            message,
            can_request: false,
            resets_at: resets_at.map(rfc3339),
        }),
    }
}

/// Asks Meta whether `to` may be called: a refusal, or `None` (allowed, or the check could not
/// be made and the dial goes ahead); and the permission seen, to be remembered.
pub async fn check(bsp: &BspClient, to: &str) -> (Option<Refusal>, Option<PermissionRow>) {
    match bsp.call_permission(to).await {
        Ok(p) => {
            let r = refusal(&p, to, Utc::now());
            info!(to = %crate::pii::Number(to), status = %p.status.words(), may_call = r.is_none(), "call permission checked");
            (r, Some(row(to, &p.status, "check")))
        }
        Err(e) => {
            warn!(to = %crate::pii::Number(to), error = %e, "call permission check failed; dialling anyway");
            (None, None)
        }
    }
}

/// One dial: with Meta the permission is checked first; then `connect`, whose refusal for want
/// of permission is put into the same words. Returns the refusal or `connect`'s own result, and
/// the permission the check saw.
pub async fn dial(
    bsp: &BspClient,
    to: &str,
    sdp: &str,
    request_id: &str,
    capture: &crate::api::Capture,
) -> (
    Result<Result<String, ApiError>, Refusal>,
    Option<PermissionRow>,
) {
    let meta = bsp.provider() == crate::config::Provider::Meta;
    let (refused, seen) = if meta {
        check(bsp, to).await
    } else {
        (None, None)
    };
    if let Some(r) = refused {
        return (Err(r), seen);
    }
    let result = bsp.connect_with(to, sdp, Some(request_id), capture).await;
    match result
        .as_ref()
        .err()
        .and_then(|e| refused_connect(e, to, meta))
    {
        Some(r) => (Err(r), seen),
        None => (Ok(result), seen),
    }
}

/// A refused `connect` in the same words as a refused check (the BSP has no check: this is
/// where it learns of a missing permission).
pub fn refused_connect(e: &ApiError, to: &str, can_request: bool) -> Option<Refusal> {
    match e.provider_code()? {
        138006 => Some(Refusal {
            message: format!(
                "{to} has not allowed calls from this business yet. {}",
                if can_request {
                    "Send them a call-permission request (in WhatsApp they tap Allow), then call again."
                } else {
                    "Ask them to allow calls (a call-permission request from your BSP's tools, or a call from them to you), then call again."
                }
            ),
            can_request,
            resets_at: None,
        }),
        138012 => Some(Refusal {
            message: format!(
                "{to} has had 100 connected calls from this business in 24 hours: call again once the limit resets."
            ),
            can_request: false,
            resets_at: None,
        }),
        _ => None,
    }
}

/// Sends the permission request; `Err((message, resets_at))` says why not, in words.
pub async fn request(
    bsp: &BspClient,
    to: &str,
    text: &str,
) -> Result<String, (String, Option<String>)> {
    match bsp.request_call_permission(to, text).await {
        Ok(id) => Ok(id),
        Err(e) => {
            // When a limit stands in the way, say when it resets (Meta's check knows).
            let resets_at = if e.provider_code() == Some(138009) {
                bsp.call_permission(to).await.ok().and_then(|p| {
                    p.action(crate::api::permission::SEND_REQUEST)
                        .and_then(|a| a.resets_at())
                        .map(rfc3339)
                })
            } else {
                None
            };
            let message = match (&resets_at, e.meaning()) {
                (Some(t), _) => format!(
                    "No more call-permission requests may be sent to {to} for now (1 a day, 2 a week): the next one can be sent at {t}."
                ),
                (None, Some(words)) => format!("The permission request was not sent: {words}."),
                (None, None) => format!("The permission request was not sent: {e}"),
            };
            Err((message, resets_at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verdicts_follow_metas_answer() {
        let now = Utc::now();
        let none = CallPermission::from_json(&json!({
            "permission": {"status": "no_permission"},
            "actions": [{"action_name": "send_call_permission_request", "can_perform_action": true},
                        {"action_name": "start_call", "can_perform_action": false}]
        }))
        .unwrap();
        assert!(refusal(&none, "44", now).is_some_and(|r| r.can_request));
        let ok = CallPermission::from_json(&json!({
            "permission": {"status": "permanent"},
            "actions": [{"action_name": "start_call", "can_perform_action": true}]
        }))
        .unwrap();
        assert_eq!(refusal(&ok, "44", now), None);
        let r = row("44", &PermissionStatus::Permanent, "user_action");
        assert_eq!((r.status.as_str(), r.expires_at), ("permanent", None));
    }
}
