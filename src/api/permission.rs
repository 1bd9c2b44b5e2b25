//! A user's call permission as Meta's `GET /{phone-number-id}/call_permissions` reports it, read
//! leniently into types, and put into words: whether the business may call now, and if not,
//! what to do and when the limit resets (`../shared/meta-cloud-api.md` §4).

use chrono::{DateTime, Utc};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionStatus {
    /// `no_permission`.
    None,
    /// Lasts until `until` (7 days from the grant).
    Temporary {
        until: Option<DateTime<Utc>>,
    },
    Permanent,
}

impl PermissionStatus {
    /// Valid at `now`: permanent, or temporary and not yet expired.
    pub fn valid_at(&self, now: DateTime<Utc>) -> bool {
        match self {
            PermissionStatus::None => false,
            PermissionStatus::Temporary { until } => until.is_none_or(|u| u > now),
            PermissionStatus::Permanent => true,
        }
    }

    /// `none`, `temporary until 2026-12-09 10:00 UTC`, `permanent`.
    pub fn words(&self) -> String {
        match self {
            PermissionStatus::None => "none".into(),
            PermissionStatus::Temporary { until: Some(u) } => {
                format!("temporary until {}", when(*u))
            }
            PermissionStatus::Temporary { until: None } => "temporary".into(),
            PermissionStatus::Permanent => "permanent".into(),
        }
    }
}

/// One of an action's limits: `max_allowed` per `period`, `current_usage` used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionLimit {
    /// ISO 8601 duration as Meta gives it: `PT24H`, `P7D`.
    pub period: String,
    pub max_allowed: u64,
    pub current_usage: u64,
    /// Given only when the limit is reached.
    pub resets_at: Option<DateTime<Utc>>,
}

impl PermissionLimit {
    /// `PT24H` → `24 hours`, `P7D` → `7 days`; anything else as given.
    pub fn period_words(&self) -> String {
        match self.period.as_str() {
            "PT24H" | "P1D" => "24 hours".into(),
            "P7D" => "7 days".into(),
            other => other.to_owned(),
        }
    }

    pub fn reached(&self) -> bool {
        self.resets_at.is_some() || self.current_usage >= self.max_allowed
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionAction {
    /// `send_call_permission_request` or `start_call`.
    pub name: String,
    pub allowed: bool,
    pub limits: Vec<PermissionLimit>,
}

impl PermissionAction {
    /// The latest reset among the reached limits: when the action is possible again.
    pub fn resets_at(&self) -> Option<DateTime<Utc>> {
        self.limits
            .iter()
            .filter(|l| l.reached())
            .filter_map(|l| l.resets_at)
            .max()
    }
}

pub const START_CALL: &str = "start_call";
pub const SEND_REQUEST: &str = "send_call_permission_request";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPermission {
    pub status: PermissionStatus,
    pub actions: Vec<PermissionAction>,
}

/// What a dial should do, decided from the permission check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialAdvice {
    /// Go ahead.
    Call,
    /// No permission, and a request may be sent now.
    RequestPermission { message: String },
    /// Not now: a limit is reached (or nothing may be done); `resets_at` when it may.
    Wait {
        message: String,
        resets_at: Option<DateTime<Utc>>,
    },
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn unix(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let v = v?;
    let n = v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())?;
    DateTime::from_timestamp(n, 0)
}

fn count(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
}

impl CallPermission {
    /// Reads Meta's answer. Unknown fields are ignored; a missing or unknown `permission.status`
    /// is an error naming it.
    pub fn from_json(v: &Value) -> Result<CallPermission, String> {
        let p = v
            .get("permission")
            .ok_or("permission: missing from the answer")?;
        let status = match p.get("status").and_then(Value::as_str) {
            Some("no_permission") => PermissionStatus::None,
            Some("temporary") => PermissionStatus::Temporary {
                until: unix(p.get("expiration_time")),
            },
            Some("permanent") => PermissionStatus::Permanent,
            Some(other) => return Err(format!("permission.status: unknown value {other:?}")),
            None => return Err("permission.status: missing".into()),
        };
        let mut actions = Vec::new();
        if let Some(list) = v.get("actions").and_then(Value::as_array) {
            for (i, a) in list.iter().enumerate() {
                let name = a
                    .get("action_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("actions[{i}].action_name: missing"))?;
                let allowed = a
                    .get("can_perform_action")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| format!("actions[{i}].can_perform_action: missing"))?;
                let limits = a
                    .get("limits")
                    .and_then(Value::as_array)
                    .map(|ls| {
                        ls.iter()
                            .map(|l| PermissionLimit {
                                period: l
                                    .get("time_period")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_owned(),
                                max_allowed: count(l.get("max_allowed")).unwrap_or(0),
                                current_usage: count(l.get("current_usage")).unwrap_or(0),
                                resets_at: unix(l.get("limit_expiration_time")),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                actions.push(PermissionAction {
                    name: name.to_owned(),
                    allowed,
                    limits,
                });
            }
        }
        Ok(CallPermission { status, actions })
    }

    pub fn action(&self, name: &str) -> Option<&PermissionAction> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// Whether Meta says a call may be started now (no `start_call` entry: by the status).
    pub fn may_call(&self, now: DateTime<Utc>) -> bool {
        match self.action(START_CALL) {
            Some(a) => a.allowed,
            None => self.status.valid_at(now),
        }
    }

    /// What a dial to `user` should do, in words an agent can act on.
    pub fn advice(&self, user: &str, now: DateTime<Utc>) -> DialAdvice {
        if self.may_call(now) {
            return DialAdvice::Call;
        }
        let call = self.action(START_CALL);
        if self.status.valid_at(now) {
            let resets_at = call.and_then(PermissionAction::resets_at);
            let limit = call
                .and_then(|a| a.limits.iter().find(|l| l.reached()))
                .map(|l| {
                    format!(
                        "{} of {} calls in {} used",
                        l.current_usage,
                        l.max_allowed,
                        l.period_words()
                    )
                })
                .unwrap_or_else(|| "a calling limit is reached".into());
            let message = match resets_at {
                Some(t) => format!(
                    "{user} allows calls ({}), but {limit}: you can call again at {}.",
                    self.status.words(),
                    when(t)
                ),
                None => format!(
                    "{user} allows calls ({}), but {limit}: try again later.",
                    self.status.words()
                ),
            };
            return DialAdvice::Wait { message, resets_at };
        }
        let request = self.action(SEND_REQUEST);
        match request {
            Some(r) if !r.allowed => {
                let resets_at = r.resets_at();
                let why = r
                    .limits
                    .iter()
                    .find(|l| l.reached())
                    .map(|l| format!("{} per {}", l.max_allowed, l.period_words()))
                    .unwrap_or_else(|| "the limit".into());
                let message = match resets_at {
                    Some(t) => format!(
                        "{user} has not allowed calls from this business, and no more permission requests may be sent for now ({why}): the next one can be sent at {}.",
                        when(t)
                    ),
                    None => format!(
                        "{user} has not allowed calls from this business, and a permission request cannot be sent now ({why})."
                    ),
                };
                DialAdvice::Wait { message, resets_at }
            }
            _ => DialAdvice::RequestPermission {
                message: format!(
                    "{user} has not allowed calls from this business yet. Send them a call-permission request (in WhatsApp they tap Allow), then call again."
                ),
            },
        }
    }

    /// Several lines for `wacall permission NUMBER`: the state, what may be done now, the limits.
    pub fn describe(&self, user: &str, now: DateTime<Utc>) -> String {
        let mut out = format!("permission: {}\n", self.status.words());
        for a in &self.actions {
            let what = match a.name.as_str() {
                START_CALL => "start a call",
                SEND_REQUEST => "send a permission request",
                other => other,
            };
            out.push_str(&format!(
                "{what}: {}\n",
                if a.allowed { "yes" } else { "no" }
            ));
            for l in &a.limits {
                out.push_str(&format!(
                    "  {} of {} per {} used",
                    l.current_usage,
                    l.max_allowed,
                    l.period_words()
                ));
                if let Some(t) = l.resets_at {
                    out.push_str(&format!(", resets at {}", when(t)));
                }
                out.push('\n');
            }
        }
        match self.advice(user, now) {
            DialAdvice::Call => out.push_str(&format!("=> you may call {user} now\n")),
            DialAdvice::RequestPermission { message } => {
                out.push_str(&format!(
                    "=> {message}\n   wacall permission request {user}\n"
                ));
            }
            DialAdvice::Wait { message, .. } => out.push_str(&format!("=> {message}\n")),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap()
    }

    #[test]
    fn no_permission_offers_the_request() {
        let p = CallPermission::from_json(&json!({
            "permission": {"status": "no_permission"},
            "actions": [
                {"action_name": "send_call_permission_request", "can_perform_action": true,
                 "limits": [{"time_period": "PT24H", "max_allowed": 1, "current_usage": 0}]},
                {"action_name": "start_call", "can_perform_action": false}
            ]
        }))
        .unwrap();
        assert!(!p.may_call(now()));
        match p.advice("5215512345678", now()) {
            DialAdvice::RequestPermission { message } => {
                assert!(message.contains("not allowed calls"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            p.describe("5215512345678", now())
                .contains("wacall permission request 5215512345678")
        );
    }

    #[test]
    fn a_reached_request_limit_says_when_it_resets() {
        let reset = now().timestamp() + 86_400 * 3;
        let p = CallPermission::from_json(&json!({
            "permission": {"status": "no_permission"},
            "actions": [
                {"action_name": "send_call_permission_request", "can_perform_action": false,
                 "limits": [{"time_period": "PT24H", "max_allowed": 1, "current_usage": 0},
                            {"time_period": "P7D", "max_allowed": 2, "current_usage": 2,
                             "limit_expiration_time": reset}]},
                {"action_name": "start_call", "can_perform_action": false}
            ]
        }))
        .unwrap();
        match p.advice("44", now()) {
            DialAdvice::Wait { message, resets_at } => {
                assert_eq!(resets_at.unwrap().timestamp(), reset);
                assert!(message.contains("2 per 7 days"), "{message}");
                assert!(message.contains("2026-01-04 00:00 UTC"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn temporary_permission_and_the_call_limit() {
        let until = now().timestamp() + 86_400 * 7;
        let p = CallPermission::from_json(&json!({
            "permission": {"status": "temporary", "expiration_time": until.to_string()},
            "actions": [{"action_name": "start_call", "can_perform_action": true,
                         "limits": [{"time_period": "PT24H", "max_allowed": 100, "current_usage": 3}]}]
        }))
        .unwrap();
        assert_eq!(
            p.status,
            PermissionStatus::Temporary {
                until: DateTime::from_timestamp(until, 0)
            }
        );
        assert_eq!(p.advice("44", now()), DialAdvice::Call);
        let full = CallPermission::from_json(&json!({
            "permission": {"status": "permanent"},
            "actions": [{"action_name": "start_call", "can_perform_action": false,
                         "limits": [{"time_period": "PT24H", "max_allowed": 100, "current_usage": 100,
                                     "limit_expiration_time": until}]}]
        }))
        .unwrap();
        match full.advice("44", now()) {
            DialAdvice::Wait { message, .. } => {
                assert!(
                    message.contains("100 of 100 calls in 24 hours"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_answers_name_the_field() {
        assert_eq!(
            CallPermission::from_json(&json!({})).unwrap_err(),
            "permission: missing from the answer"
        );
        assert!(
            CallPermission::from_json(&json!({"permission": {"status": "maybe"}}))
                .unwrap_err()
                .contains("permission.status")
        );
        assert!(
            CallPermission::from_json(&json!({"permission": {"status": "permanent"},
                "actions": [{"can_perform_action": true}]}))
            .unwrap_err()
            .contains("actions[0].action_name")
        );
    }
}
