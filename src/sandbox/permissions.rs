//! Meta's business-initiated calling permission rules, as a pure model the sandbox enforces so
//! that wacall's behaviour against them is tested.
//!
//! Per (business number, user), after Meta's user-call-permissions page (source \[3\] of
//! `../shared/meta-cloud-api.md`; the rules are its §4, the error codes §7):
//!
//! - A permission is `no_permission`, `temporary` (7 days from the grant, then none again, with
//!   no webhook on expiry) or `permanent`. The user grants or refuses it by answering a
//!   `call_permission_request` message ([`PermissionRules::reply`]) or grants a temporary one by
//!   calling the business ([`PermissionRules::user_called`], `response_source: automatic`).
//! - Permission requests: at most [`REQUESTS_PER_DAY`] per rolling 24 h and
//!   [`REQUESTS_PER_WEEK`] per rolling 7 days (138009, with the time the limit resets), none
//!   while a permanent permission exists (138017). A connected call forgets earlier requests.
//! - Business-initiated calls need a valid permission (138006) and at most [`CALLS_PER_DAY`]
//!   connect per rolling 24 h (138012).
//! - [`REMIND_AFTER`] unanswered calls in a row bring a reminder, [`REVOKE_AFTER`] revoke the
//!   permission (the sandbox then sends the automatic `reject` reply); an answered call ends the
//!   run.
//!
//! The model is sans-IO: it reads no clock, every call is given `now`, and it sends nothing; the
//! sandbox turns its answers into Meta's HTTP errors and webhooks. Windows are half-open: an event
//! at `t` counts while `now < t + window`, so at the reported reset time the action is allowed.
//! Memory stays bounded: every mutation drops timestamps outside their window (7 days for
//! requests, 24 hours for calls), and users with nothing left to remember.
//!
//! Simplified: a test number's 25/day, 100/7 days limits (\[13\], third party) are not
//! modelled, nor billing, nor the open 24-hour window / template choice for requests, nor the
//! 613 rate limit on the status query; a reply is accepted whether or not a request is pending.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

/// How long a temporary permission lasts from its grant.
pub const TEMPORARY_DAYS: i64 = 7;
/// Permission requests allowed per rolling 24 hours.
pub const REQUESTS_PER_DAY: usize = 1;
/// Permission requests allowed per rolling 7 days.
pub const REQUESTS_PER_WEEK: usize = 2;
/// Connected business-initiated calls allowed per rolling 24 hours.
pub const CALLS_PER_DAY: usize = 100;
/// Unanswered calls in a row that bring a reminder.
pub const REMIND_AFTER: u32 = 2;
/// Unanswered calls in a row that revoke the permission.
pub const REVOKE_AFTER: u32 = 4;

/// A user's call permission for the business, as `GET /call_permissions` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionStatus {
    /// `no_permission`.
    None,
    /// `temporary`, valid while `now < until`.
    Temporary { until: DateTime<Utc> },
    /// `permanent`: never expires.
    Permanent,
}

/// A refused action, as Meta's error body carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The HTTP status.
    pub status: u16,
    /// Meta's `error.code`.
    pub code: u32,
    pub message: String,
    /// When a rate limit allows the action again (`None` for non-limit refusals).
    pub resets_at: Option<DateTime<Utc>>,
}

/// What an unanswered business-initiated call led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unanswered {
    /// The run of unanswered calls is now this long; nothing happens.
    Counted(u32),
    /// [`REMIND_AFTER`] in a row: WhatsApp reminds the user.
    Reminder,
    /// [`REVOKE_AFTER`] in a row: the permission is gone; the sandbox sends the automatic
    /// `reject` reply.
    Revoked,
}

/// A rolling-window limit.
struct Limit {
    /// ISO 8601 duration as Meta reports it.
    period: &'static str,
    /// In words, for error messages.
    words: &'static str,
    span: Duration,
    max: usize,
}

const REQUESTS_DAY: Limit = Limit {
    period: "PT24H",
    words: "24 hours",
    span: Duration::hours(24),
    max: REQUESTS_PER_DAY,
};
const REQUESTS_WEEK: Limit = Limit {
    period: "P7D",
    words: "7 days",
    span: Duration::days(7),
    max: REQUESTS_PER_WEEK,
};
const CALLS_DAY: Limit = Limit {
    period: "PT24H",
    words: "24 hours",
    span: Duration::hours(24),
    max: CALLS_PER_DAY,
};

/// Usage of a limit at `now`: how many events are in the window and, when the limit is hit,
/// when the window next has room (when enough of the oldest counted events have left it).
struct Usage {
    current: usize,
    resets_at: Option<DateTime<Utc>>,
}

impl Limit {
    fn usage(&self, times: &VecDeque<DateTime<Utc>>, now: DateTime<Utc>) -> Usage {
        let mut counted: Vec<DateTime<Utc>> = times
            .iter()
            .copied()
            .filter(|&t| now < t + self.span)
            .collect();
        counted.sort();
        let current = counted.len();
        let resets_at = (current >= self.max).then(|| counted[current - self.max] + self.span);
        Usage { current, resets_at }
    }

    fn json(&self, usage: &Usage) -> Value {
        let mut v = json!({
            "time_period": self.period,
            "max_allowed": self.max,
            "current_usage": usage.current,
        });
        if let Some(at) = usage.resets_at {
            v["limit_expiration_time"] = json!(at.timestamp());
        }
        v
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// What is remembered about one user.
#[derive(Debug, Clone)]
struct UserState {
    permission: PermissionStatus,
    /// Permission requests sent, oldest first.
    requests: VecDeque<DateTime<Utc>>,
    /// Connected business-initiated calls, oldest first.
    calls: VecDeque<DateTime<Utc>>,
    /// Unanswered business-initiated calls in a row.
    unanswered: u32,
}

impl Default for UserState {
    fn default() -> Self {
        UserState {
            permission: PermissionStatus::None,
            requests: VecDeque::new(),
            calls: VecDeque::new(),
            unanswered: 0,
        }
    }
}

impl UserState {
    fn status(&self, now: DateTime<Utc>) -> PermissionStatus {
        match self.permission {
            PermissionStatus::Temporary { until } if now >= until => PermissionStatus::None,
            ref p => p.clone(),
        }
    }

    /// Forgets what no window can count any more, and an expired temporary permission.
    fn prune(&mut self, now: DateTime<Utc>) {
        self.permission = self.status(now);
        self.requests.retain(|&t| now < t + REQUESTS_WEEK.span);
        self.calls.retain(|&t| now < t + CALLS_DAY.span);
    }

    fn is_empty(&self) -> bool {
        self.permission == PermissionStatus::None
            && self.requests.is_empty()
            && self.calls.is_empty()
            && self.unanswered == 0
    }

    /// Why a permission request would be refused now.
    fn request_refusal(&self, now: DateTime<Utc>) -> Option<RuleError> {
        if self.status(now) == PermissionStatus::Permanent {
            return Some(RuleError {
                status: 400,
                code: 138017,
                message: "Call permission request not allowed: the user has already granted a \
                          permanent call permission"
                    .into(),
                resets_at: None,
            });
        }
        // When both limits are hit, the later reset is when a request can be sent.
        [&REQUESTS_DAY, &REQUESTS_WEEK]
            .into_iter()
            .filter_map(|l| l.usage(&self.requests, now).resets_at.map(|at| (l, at)))
            .max_by_key(|&(_, at)| at)
            .map(|(l, at)| RuleError {
                status: 400,
                code: 138009,
                message: format!(
                    "Too many call permission requests: {} in {} is the limit; the next one can \
                     be sent at {}",
                    l.max,
                    l.words,
                    rfc3339(at)
                ),
                resets_at: Some(at),
            })
    }

    /// Why a business-initiated call would be refused now.
    fn call_refusal(&self, user: &str, now: DateTime<Utc>) -> Option<RuleError> {
        if self.status(now) == PermissionStatus::None {
            return Some(RuleError {
                status: 400,
                code: 138006,
                message: format!(
                    "No approved call permission from the recipient: {user} has not granted call \
                     permission"
                ),
                resets_at: None,
            });
        }
        let at = CALLS_DAY.usage(&self.calls, now).resets_at?;
        Some(RuleError {
            status: 400,
            code: 138012,
            message: format!(
                "Too many business-initiated calls: {} connected calls in {} is the limit; the \
                 next one can be made at {}",
                CALLS_DAY.max,
                CALLS_DAY.words,
                rfc3339(at)
            ),
            resets_at: Some(at),
        })
    }
}

/// Meta's calling permission rules for one business number, per user (`wa_id`).
#[derive(Debug, Clone, Default)]
pub struct PermissionRules {
    users: HashMap<String, UserState>,
}

impl PermissionRules {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs a mutation on `user`'s state, pruned at `now`; forgets users with nothing left.
    fn update<R>(
        &mut self,
        user: &str,
        now: DateTime<Utc>,
        f: impl FnOnce(&mut UserState) -> R,
    ) -> R {
        let state = self.users.entry(user.to_owned()).or_default();
        state.prune(now);
        let r = f(state);
        if state.is_empty() {
            self.users.remove(user);
        }
        r
    }

    fn state(&self, user: &str) -> Option<&UserState> {
        self.users.get(user)
    }

    /// The user's permission at `now` (an expired temporary one is `None`).
    pub fn status(&self, user: &str, now: DateTime<Utc>) -> PermissionStatus {
        self.state(user)
            .map_or(PermissionStatus::None, |s| s.status(now))
    }

    /// Meta's `GET /{phone-id}/call_permissions?user_wa_id=` body for the user at `now`.
    pub fn status_json(&self, user: &str, now: DateTime<Utc>) -> Value {
        let empty = UserState::default();
        let s = self.state(user).unwrap_or(&empty);
        let permission = match s.status(now) {
            PermissionStatus::None => json!({"status": "no_permission"}),
            PermissionStatus::Temporary { until } => {
                json!({"status": "temporary", "expiration_time": until.timestamp()})
            }
            PermissionStatus::Permanent => json!({"status": "permanent"}),
        };
        let request_limits: Vec<Value> = [&REQUESTS_DAY, &REQUESTS_WEEK]
            .into_iter()
            .map(|l| l.json(&l.usage(&s.requests, now)))
            .collect();
        json!({
            "messaging_product": "whatsapp",
            "permission": permission,
            "actions": [
                {
                    "action_name": "send_call_permission_request",
                    "can_perform_action": s.request_refusal(now).is_none(),
                    "limits": request_limits,
                },
                {
                    "action_name": "start_call",
                    "can_perform_action": s.call_refusal(user, now).is_none(),
                    "limits": [CALLS_DAY.json(&CALLS_DAY.usage(&s.calls, now))],
                },
            ],
        })
    }

    /// The business sends a `call_permission_request`: refused with 138017 while a permanent
    /// permission exists, 138009 over a limit; counted when allowed.
    pub fn request(&mut self, user: &str, now: DateTime<Utc>) -> Result<(), RuleError> {
        self.update(user, now, |s| {
            s.request_refusal(now).map_or(Ok(()), Err)?;
            s.requests.push_back(now);
            Ok(())
        })
    }

    /// The user's answer to a permission request: accept grants a permanent permission when
    /// `permanent`, else a temporary one for [`TEMPORARY_DAYS`]; reject leaves none.
    pub fn reply(
        &mut self,
        user: &str,
        accept: bool,
        permanent: bool,
        now: DateTime<Utc>,
    ) -> PermissionStatus {
        self.update(user, now, |s| {
            s.permission = match (accept, permanent) {
                (false, _) => PermissionStatus::None,
                (true, true) => PermissionStatus::Permanent,
                (true, false) => PermissionStatus::Temporary {
                    until: now + Duration::days(TEMPORARY_DAYS),
                },
            };
            s.permission.clone()
        })
    }

    /// The user called the business: a temporary permission for [`TEMPORARY_DAYS`] from now
    /// (`response_source: automatic`), unless a permanent one exists.
    pub fn user_called(&mut self, user: &str, now: DateTime<Utc>) -> PermissionStatus {
        self.update(user, now, |s| {
            if s.permission != PermissionStatus::Permanent {
                s.permission = PermissionStatus::Temporary {
                    until: now + Duration::days(TEMPORARY_DAYS),
                };
            }
            s.permission.clone()
        })
    }

    /// Whether the business may `connect` a call to the user now: 138006 without a valid
    /// permission, 138012 once [`CALLS_PER_DAY`] calls connected in the last 24 hours.
    pub fn may_call(&self, user: &str, now: DateTime<Utc>) -> Result<(), RuleError> {
        let empty = UserState::default();
        let refusal = self.state(user).unwrap_or(&empty).call_refusal(user, now);
        refusal.map_or(Ok(()), Err)
    }

    /// A business-initiated call was answered: it counts toward [`CALLS_PER_DAY`], forgets
    /// earlier permission requests and ends the run of unanswered calls.
    pub fn call_connected(&mut self, user: &str, now: DateTime<Utc>) {
        self.update(user, now, |s| {
            s.calls.push_back(now);
            s.requests.clear();
            s.unanswered = 0;
        })
    }

    /// A business-initiated call went unanswered: [`Unanswered::Reminder`] at [`REMIND_AFTER`]
    /// in a row, [`Unanswered::Revoked`] (permission back to none, run restarted) at
    /// [`REVOKE_AFTER`].
    pub fn call_unanswered(&mut self, user: &str, now: DateTime<Utc>) -> Unanswered {
        self.update(user, now, |s| {
            s.unanswered += 1;
            if s.unanswered >= REVOKE_AFTER {
                s.unanswered = 0;
                s.permission = PermissionStatus::None;
                Unanswered::Revoked
            } else if s.unanswered == REMIND_AFTER {
                Unanswered::Reminder
            } else {
                Unanswered::Counted(s.unanswered)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const U: &str = "15551230001";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap()
    }

    fn h(n: i64) -> Duration {
        Duration::hours(n)
    }

    fn d(n: i64) -> Duration {
        Duration::days(n)
    }

    fn code(r: Result<(), RuleError>) -> (u32, Option<DateTime<Utc>>) {
        let e = r.expect_err("refused");
        assert_eq!(e.status, 400);
        (e.code, e.resets_at)
    }

    #[test]
    fn no_permission_by_default() {
        let r = PermissionRules::new();
        assert_eq!(r.status(U, t0()), PermissionStatus::None);
        assert_eq!(code(r.may_call(U, t0())), (138006, None));
    }

    #[test]
    fn temporary_expires_after_exactly_seven_days() {
        let mut r = PermissionRules::default();
        let until = t0() + d(TEMPORARY_DAYS);
        assert_eq!(
            r.reply(U, true, false, t0()),
            PermissionStatus::Temporary { until }
        );
        assert_eq!(
            r.status(U, until - Duration::seconds(1)),
            PermissionStatus::Temporary { until }
        );
        assert!(r.may_call(U, until - Duration::seconds(1)).is_ok());
        assert_eq!(r.status(U, until), PermissionStatus::None);
        assert_eq!(code(r.may_call(U, until)), (138006, None));
    }

    #[test]
    fn reply_permanent_and_reject() {
        let mut r = PermissionRules::new();
        assert_eq!(r.reply(U, true, true, t0()), PermissionStatus::Permanent);
        assert_eq!(r.status(U, t0() + d(365)), PermissionStatus::Permanent);
        assert_eq!(
            r.reply(U, false, false, t0() + d(1)),
            PermissionStatus::None
        );
        assert_eq!(r.status(U, t0() + d(1)), PermissionStatus::None);
    }

    #[test]
    fn one_request_per_24_hours() {
        let mut r = PermissionRules::new();
        r.request(U, t0()).unwrap();
        let e = r.request(U, t0() + h(23)).unwrap_err();
        assert_eq!((e.code, e.resets_at), (138009, Some(t0() + h(24))));
        assert_eq!(
            e.message,
            "Too many call permission requests: 1 in 24 hours is the limit; the next one can be \
             sent at 2026-12-03T10:00:00Z"
        );
        r.request(U, t0() + h(24)).unwrap();
    }

    #[test]
    fn two_requests_per_7_days() {
        let mut r = PermissionRules::new();
        r.request(U, t0()).unwrap();
        r.request(U, t0() + d(2)).unwrap();
        let e = r.request(U, t0() + d(4)).unwrap_err();
        assert_eq!((e.code, e.resets_at), (138009, Some(t0() + d(7))));
        assert_eq!(
            e.message,
            "Too many call permission requests: 2 in 7 days is the limit; the next one can be \
             sent at 2026-12-09T10:00:00Z"
        );
        r.request(U, t0() + d(7)).unwrap();
        // The week now holds t0+2d and t0+7d: the next slot opens when t0+2d leaves it.
        assert_eq!(
            code(r.request(U, t0() + d(8) + h(1))),
            (138009, Some(t0() + d(9)))
        );
    }

    #[test]
    fn request_scenario_day_then_week_limit() {
        let mut r = PermissionRules::new();
        r.request(U, t0()).unwrap();
        assert_eq!(
            code(r.request(U, t0() + h(1))),
            (138009, Some(t0() + h(24)))
        );
        r.request(U, t0() + h(25)).unwrap();
        assert_eq!(
            code(r.request(U, t0() + h(50))),
            (138009, Some(t0() + d(7)))
        );
        assert_eq!(code(r.request(U, t0() + d(6))), (138009, Some(t0() + d(7))));
    }

    #[test]
    fn both_request_limits_hit_reports_the_later_reset() {
        let mut r = PermissionRules::new();
        r.request(U, t0()).unwrap();
        r.request(U, t0() + h(25)).unwrap();
        // Day limit resets at t0+49h, week limit at t0+7d: only the latter allows a request.
        assert_eq!(
            code(r.request(U, t0() + h(26))),
            (138009, Some(t0() + d(7)))
        );
    }

    #[test]
    fn refused_requests_are_not_counted() {
        let mut r = PermissionRules::new();
        r.request(U, t0()).unwrap();
        for n in 1..24 {
            assert!(r.request(U, t0() + h(n)).is_err());
        }
        r.request(U, t0() + h(24)).unwrap();
    }

    #[test]
    fn request_with_permanent_permission_is_138017() {
        let mut r = PermissionRules::new();
        r.reply(U, true, true, t0());
        let e = r.request(U, t0() + h(1)).unwrap_err();
        assert_eq!((e.status, e.code, e.resets_at), (400, 138017, None));
        // A temporary permission may still be asked to become permanent.
        let mut r = PermissionRules::new();
        r.user_called(U, t0());
        r.request(U, t0()).unwrap();
    }

    #[test]
    fn connected_call_resets_request_counts() {
        let mut r = PermissionRules::new();
        r.request(U, t0()).unwrap();
        r.reply(U, true, false, t0() + h(1));
        r.request(U, t0() + h(25)).unwrap();
        assert!(r.request(U, t0() + h(50)).is_err());
        r.call_connected(U, t0() + h(51));
        r.request(U, t0() + h(52)).unwrap();
        assert_eq!(
            code(r.request(U, t0() + h(53))),
            (138009, Some(t0() + h(76)))
        );
    }

    #[test]
    fn hundred_connected_calls_then_138012() {
        let mut r = PermissionRules::new();
        r.reply(U, true, true, t0());
        for n in 0..CALLS_PER_DAY as i64 {
            let at = t0() + Duration::minutes(n);
            r.may_call(U, at).unwrap();
            r.call_connected(U, at);
        }
        let e = r.may_call(U, t0() + h(2)).unwrap_err();
        assert_eq!(
            (e.status, e.code, e.resets_at),
            (400, 138012, Some(t0() + h(24)))
        );
        assert!(e.message.ends_with("2026-12-03T10:00:00Z"), "{}", e.message);
        // The first call leaves the window at t0+24h, making room for one more.
        r.may_call(U, t0() + h(24)).unwrap();
        r.call_connected(U, t0() + h(24));
        assert_eq!(
            code(r.may_call(U, t0() + h(24))),
            (138012, Some(t0() + h(24) + Duration::minutes(1)))
        );
    }

    #[test]
    fn no_permission_beats_the_call_limit() {
        let mut r = PermissionRules::new();
        r.user_called(U, t0());
        for _ in 0..CALLS_PER_DAY {
            r.call_connected(U, t0());
        }
        r.reply(U, false, false, t0() + h(1));
        assert_eq!(code(r.may_call(U, t0() + h(1))), (138006, None));
    }

    #[test]
    fn unanswered_calls_remind_then_revoke() {
        let mut r = PermissionRules::new();
        r.reply(U, true, true, t0());
        assert_eq!(r.call_unanswered(U, t0()), Unanswered::Counted(1));
        assert_eq!(r.call_unanswered(U, t0() + h(1)), Unanswered::Reminder);
        assert_eq!(r.call_unanswered(U, t0() + h(2)), Unanswered::Counted(3));
        assert_eq!(r.status(U, t0() + h(2)), PermissionStatus::Permanent);
        assert_eq!(r.call_unanswered(U, t0() + h(3)), Unanswered::Revoked);
        assert_eq!(r.status(U, t0() + h(3)), PermissionStatus::None);
        assert_eq!(code(r.may_call(U, t0() + h(3))), (138006, None));
    }

    #[test]
    fn answered_call_resets_the_unanswered_run() {
        let mut r = PermissionRules::new();
        r.user_called(U, t0());
        assert_eq!(r.call_unanswered(U, t0()), Unanswered::Counted(1));
        assert_eq!(r.call_unanswered(U, t0()), Unanswered::Reminder);
        assert_eq!(r.call_unanswered(U, t0()), Unanswered::Counted(3));
        r.call_connected(U, t0() + h(1));
        assert_eq!(r.call_unanswered(U, t0() + h(2)), Unanswered::Counted(1));
        assert_eq!(r.call_unanswered(U, t0() + h(2)), Unanswered::Reminder);
        assert!(matches!(
            r.status(U, t0() + h(2)),
            PermissionStatus::Temporary { .. }
        ));
    }

    #[test]
    fn user_called_grants_temporary() {
        let mut r = PermissionRules::new();
        let until = t0() + d(7);
        assert_eq!(
            r.user_called(U, t0()),
            PermissionStatus::Temporary { until }
        );
        r.may_call(U, t0()).unwrap();
        // Calling again renews it from that call.
        assert_eq!(
            r.user_called(U, t0() + d(3)),
            PermissionStatus::Temporary {
                until: until + d(3)
            }
        );
        // A permanent permission stays permanent.
        r.reply(U, true, true, t0() + d(4));
        assert_eq!(r.user_called(U, t0() + d(5)), PermissionStatus::Permanent);
    }

    #[test]
    fn status_json_no_permission() {
        let r = PermissionRules::new();
        assert_eq!(
            r.status_json(U, t0()),
            json!({
                "messaging_product": "whatsapp",
                "permission": {"status": "no_permission"},
                "actions": [
                    {
                        "action_name": "send_call_permission_request",
                        "can_perform_action": true,
                        "limits": [
                            {"time_period": "PT24H", "max_allowed": 1, "current_usage": 0},
                            {"time_period": "P7D", "max_allowed": 2, "current_usage": 0},
                        ],
                    },
                    {
                        "action_name": "start_call",
                        "can_perform_action": false,
                        "limits": [
                            {"time_period": "PT24H", "max_allowed": 100, "current_usage": 0},
                        ],
                    },
                ],
            })
        );
    }

    #[test]
    fn status_json_temporary_with_day_limit_hit() {
        let mut r = PermissionRules::new();
        r.request(U, t0()).unwrap();
        r.reply(U, true, false, t0() + h(1));
        let now = t0() + h(2);
        assert_eq!(
            r.status_json(U, now),
            json!({
                "messaging_product": "whatsapp",
                "permission": {
                    "status": "temporary",
                    "expiration_time": (t0() + h(1) + d(7)).timestamp(),
                },
                "actions": [
                    {
                        "action_name": "send_call_permission_request",
                        "can_perform_action": false,
                        "limits": [
                            {
                                "time_period": "PT24H",
                                "max_allowed": 1,
                                "current_usage": 1,
                                "limit_expiration_time": (t0() + h(24)).timestamp(),
                            },
                            {"time_period": "P7D", "max_allowed": 2, "current_usage": 1},
                        ],
                    },
                    {
                        "action_name": "start_call",
                        "can_perform_action": true,
                        "limits": [
                            {"time_period": "PT24H", "max_allowed": 100, "current_usage": 0},
                        ],
                    },
                ],
            })
        );
    }

    #[test]
    fn status_json_permanent_with_call_limit_hit() {
        let mut r = PermissionRules::new();
        r.reply(U, true, true, t0());
        for _ in 0..CALLS_PER_DAY {
            r.call_connected(U, t0());
        }
        let v = r.status_json(U, t0() + h(1));
        assert_eq!(v["permission"], json!({"status": "permanent"}));
        assert_eq!(v["actions"][0]["can_perform_action"], json!(false));
        assert_eq!(v["actions"][0]["limits"][0]["current_usage"], json!(0));
        assert!(
            v["actions"][0]["limits"][0]
                .get("limit_expiration_time")
                .is_none()
        );
        assert_eq!(
            v["actions"][1],
            json!({
                "action_name": "start_call",
                "can_perform_action": false,
                "limits": [{
                    "time_period": "PT24H",
                    "max_allowed": 100,
                    "current_usage": 100,
                    "limit_expiration_time": (t0() + h(24)).timestamp(),
                }],
            })
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let mut r = PermissionRules::new();
        r.reply(U, true, true, t0());
        for n in 0..1000 {
            r.call_connected(U, t0() + h(n));
        }
        let s = &r.users[U];
        assert_eq!(s.calls.len(), 24);
        // A user with nothing left to remember is forgotten.
        let mut r = PermissionRules::new();
        r.request(U, t0()).unwrap();
        r.reply(U, false, false, t0() + d(8));
        assert!(r.users.is_empty());
    }

    #[test]
    fn users_are_independent() {
        let mut r = PermissionRules::new();
        r.request(U, t0()).unwrap();
        r.request("15551230002", t0()).unwrap();
        r.user_called(U, t0());
        assert_eq!(r.status("15551230002", t0()), PermissionStatus::None);
    }
}
