//! Parsing of Meta's webhook envelope into [`CallEvent`]s.
//!
//! Pure code, no IO, and never panics on any input (see the fuzz tests at the bottom).
//!
//! # Error policy
//! * `Err(WebhookError)` only when the **envelope** is invalid: the body is not JSON, the root is
//!   not an object, `entry` is missing or not an array, an `entry[i]` is not an object or lacks a
//!   `changes` array, or a `changes[j]` is not an object. Such a body is not a Meta webhook at all.
//! * Everything inside a change degrades per item: a malformed call or status (no id, `connect`
//!   without `session`/`sdp`, empty offer SDP, wrong JSON types, ...) becomes
//!   [`CallEvent::Ignored`] whose `what` is `"<json path>: <problem>"`, and is logged with
//!   `tracing::warn!`, so one bad call in a batch never loses the others.
//! * Unknown events (`call_recording_available`, ...), changes for other fields (`messages`) and
//!   status entries of another `type` become `Ignored` with a `tracing::debug!`.
//!
//! # Leniency (Meta's docs and examples are inconsistent; see `whatsapp-calling.md`)
//! * Timestamps (`timestamp`, `start_time`, `end_time`) and `duration` are accepted as JSON numbers
//!   or numeric strings; an unreadable one becomes `None` (debug log), never an error.
//! * Customer vs business is decided by `metadata.display_phone_number` first, then by
//!   `contacts[]`, then a username-only party (always the customer), then `direction`
//!   (`USER_INITIATED`: customer is `from`; `BUSINESS_INITIATED`: customer is `to`), then the event
//!   kind (offer: `from`, answer/terminate: `to`).
//! * Phone numbers are normalized to digits (`"+52 1 55..."` → `"52155..."`); user ids such as
//!   `US.13491208655302741918` are kept as given.
//! * A `connect` whose customer or business cannot be determined still yields its event, with an
//!   empty string in that field and a warning: the call id and SDP are what the bridge needs.

use serde_json::{Map, Value};
use tracing::{debug, warn};

/// Progress of a business-initiated call (`value.statuses[]` with `type: "call"`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum CallStatus {
    Ringing,
    Accepted,
    Rejected,
    /// Any other status string, as given.
    Other(String),
}

impl CallStatus {
    /// Case-insensitive: `"RINGING"` → `Ringing`; anything unknown → `Other(s)`.
    pub fn parse(s: &str) -> Self {
        let t = s.trim();
        if t.eq_ignore_ascii_case("RINGING") {
            Self::Ringing
        } else if t.eq_ignore_ascii_case("ACCEPTED") {
            Self::Accepted
        } else if t.eq_ignore_ascii_case("REJECTED") {
            Self::Rejected
        } else {
            Self::Other(t.to_owned())
        }
    }
}

/// One thing a webhook tells us about a call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum CallEvent {
    /// A user calls the business (connect, USER_INITIATED, sdp_type offer).
    Offer {
        call_id: String,
        customer: String,
        business: String,
        caller_name: Option<String>,
        sdp: String,
        timestamp: Option<i64>,
    },
    /// The user's SDP answer to our connect (connect event with sdp_type answer).
    Answer {
        call_id: String,
        customer: String,
        sdp: String,
        biz_opaque: Option<String>,
    },
    /// statuses[] entry with type "call".
    Status {
        call_id: String,
        status: CallStatus,
        customer: Option<String>,
        timestamp: Option<i64>,
        biz_opaque: Option<String>,
    },
    /// terminate event.
    Terminate {
        call_id: String,
        /// `COMPLETED` | `FAILED` (as given).
        status: Option<String>,
        duration_s: Option<u64>,
        start_time: Option<i64>,
        end_time: Option<i64>,
        /// `"code: message (details)"`, from the call's and the value's `errors[]`.
        errors: Vec<String>,
    },
    /// Any other calls event or unknown shape we tolerate (call_recording_available, ...).
    Ignored {
        call_id: Option<String>,
        what: String,
    },
}

impl CallEvent {
    /// The WhatsApp call id (`wacid...`), when the event has one.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Self::Offer { call_id, .. }
            | Self::Answer { call_id, .. }
            | Self::Status { call_id, .. }
            | Self::Terminate { call_id, .. } => Some(call_id),
            Self::Ignored { call_id, .. } => call_id.as_deref(),
        }
    }
}

/// The webhook body is not a Meta webhook envelope (see the module docs for what counts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Not parseable as JSON (serde's message, with line and column).
    #[error("webhook body is not JSON: {0}")]
    NotJson(String),
    /// The envelope has the wrong shape at `path` (e.g. `entry[0].changes: missing`).
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
}

/// Parses a webhook POST body into call events, in order (per change: calls, then statuses).
pub fn parse_webhook(body: &[u8]) -> Result<Vec<CallEvent>, WebhookError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::NotJson(e.to_string()))?;
    let root = envelope_object(&root, "$")?;
    let entries = envelope_array(root, "entry", "entry")?;
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("entry[{i}]");
        let entry = envelope_object(entry, &path)?;
        let changes = envelope_array(entry, "changes", &format!("{path}.changes"))?;
        for (j, change) in changes.iter().enumerate() {
            let cpath = format!("{path}.changes[{j}]");
            let change = envelope_object(change, &cpath)?;
            parse_change(change, &cpath, &mut out);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Envelope

fn invalid(path: &str, problem: impl Into<String>) -> WebhookError {
    WebhookError::Invalid {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

fn envelope_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, WebhookError> {
    v.as_object()
        .ok_or_else(|| invalid(path, format!("expected an object, got {}", describe(v))))
}

fn envelope_array<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Vec<Value>, WebhookError> {
    match obj.get(key) {
        None => Err(invalid(path, "missing")),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(invalid(
            path,
            format!("expected an array, got {}", describe(v)),
        )),
    }
}

/// A short rendering of a JSON value for messages (at most ~60 chars).
fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let mut t: String = s.chars().take(57).collect();
        t.push('…');
        t
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Per item

/// A call or status that could not be read: becomes `Ignored` with a warning.
struct Bad {
    call_id: Option<String>,
    what: String,
}

impl Bad {
    fn new(call_id: Option<&str>, path: &str, problem: impl std::fmt::Display) -> Self {
        Self {
            call_id: call_id.map(str::to_owned),
            what: format!("{path}: {problem}"),
        }
    }
}

fn push_bad(out: &mut Vec<CallEvent>, bad: Bad) {
    warn!(call_id = ?bad.call_id, what = %bad.what, "webhook: malformed item ignored");
    out.push(CallEvent::Ignored {
        call_id: bad.call_id,
        what: bad.what,
    });
}

fn push_ignored(out: &mut Vec<CallEvent>, call_id: Option<String>, what: String) {
    debug!(call_id = ?call_id, what = %what, "webhook: item ignored");
    out.push(CallEvent::Ignored { call_id, what });
}

#[derive(Debug, Default)]
struct Contact {
    wa_id: Option<String>,
    user_id: Option<String>,
    name: Option<String>,
}

impl Contact {
    fn has_id(&self, id: &str) -> bool {
        self.wa_id.as_deref() == Some(id) || self.user_id.as_deref() == Some(id)
    }
}

/// What a `value` tells about every call in it.
struct Ctx {
    /// `metadata.display_phone_number`, normalized.
    business: Option<String>,
    contacts: Vec<Contact>,
}

fn parse_change(change: &Map<String, Value>, cpath: &str, out: &mut Vec<CallEvent>) {
    match change.get("field") {
        Some(Value::String(f)) if f == "calls" => {}
        Some(Value::String(f)) => {
            push_ignored(out, None, format!("field {f:?}"));
            return;
        }
        None => {
            push_bad(out, Bad::new(None, &format!("{cpath}.field"), "missing"));
            return;
        }
        Some(v) => {
            let problem = format!("expected a string, got {}", describe(v));
            push_bad(out, Bad::new(None, &format!("{cpath}.field"), problem));
            return;
        }
    }
    let vpath = format!("{cpath}.value");
    let value = match change.get("value") {
        Some(Value::Object(m)) => m,
        None => return push_bad(out, Bad::new(None, &vpath, "missing")),
        Some(v) => {
            let problem = format!("expected an object, got {}", describe(v));
            return push_bad(out, Bad::new(None, &vpath, problem));
        }
    };

    let ctx = Ctx {
        business: value
            .get("metadata")
            .and_then(|m| m.get("display_phone_number"))
            .and_then(party_str),
        contacts: parse_contacts(value.get("contacts")),
    };
    let value_errors = parse_errors(value.get("errors"));
    let mut errors_used = false;
    let mut any_item = false;

    if let Some(calls) = value.get("calls") {
        let path = format!("{vpath}.calls");
        match calls {
            Value::Array(calls) => {
                for (k, call) in calls.iter().enumerate() {
                    any_item = true;
                    let path = format!("{path}[{k}]");
                    match parse_call(call, &path, &ctx, &value_errors) {
                        Ok(ev) => {
                            if matches!(ev, CallEvent::Terminate { .. }) {
                                errors_used = true;
                            }
                            if let CallEvent::Ignored { call_id, what } = ev {
                                push_ignored(out, call_id, what);
                            } else {
                                out.push(ev);
                            }
                        }
                        Err(bad) => push_bad(out, bad),
                    }
                }
            }
            v => {
                any_item = true;
                let problem = format!("expected an array, got {}", describe(v));
                push_bad(out, Bad::new(None, &path, problem));
            }
        }
    }

    if let Some(statuses) = value.get("statuses") {
        let path = format!("{vpath}.statuses");
        match statuses {
            Value::Array(statuses) => {
                for (k, st) in statuses.iter().enumerate() {
                    any_item = true;
                    let path = format!("{path}[{k}]");
                    match parse_status(st, &path) {
                        Ok(CallEvent::Ignored { call_id, what }) => {
                            push_ignored(out, call_id, what)
                        }
                        Ok(ev) => out.push(ev),
                        Err(bad) => push_bad(out, bad),
                    }
                }
            }
            v => {
                any_item = true;
                let problem = format!("expected an array, got {}", describe(v));
                push_bad(out, Bad::new(None, &path, problem));
            }
        }
    }

    if !value_errors.is_empty() && !errors_used {
        // Errors not attached to any terminate (e.g. a value with only `errors`): keep them visible.
        let what = format!("{vpath}.errors: {}", value_errors.join("; "));
        warn!(what = %what, "webhook: errors without a terminate event");
        out.push(CallEvent::Ignored {
            call_id: None,
            what,
        });
    } else if !any_item {
        push_ignored(out, None, format!("{vpath}: no calls or statuses"));
    }
}

fn parse_contacts(v: Option<&Value>) -> Vec<Contact> {
    let Some(Value::Array(items)) = v else {
        if let Some(v) = v {
            debug!(contacts = %describe(v), "webhook: contacts is not an array, ignored");
        }
        return Vec::new();
    };
    items
        .iter()
        .filter_map(Value::as_object)
        .map(|c| Contact {
            wa_id: c.get("wa_id").and_then(party_str),
            user_id: c.get("user_id").and_then(party_str),
            name: c
                .get("profile")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
        .collect()
}

/// `errors[]` entries as `"code: message (details)"`; a single object is accepted too.
fn parse_errors(v: Option<&Value>) -> Vec<String> {
    let items: &[Value] = match v {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(a)) => a,
        Some(other) => std::slice::from_ref(other),
    };
    items.iter().map(format_error).collect()
}

fn format_error(e: &Value) -> String {
    let Some(obj) = e.as_object() else {
        return describe(e);
    };
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let code = text(obj.get("code"));
    let message = text(obj.get("message")).or_else(|| text(obj.get("title")));
    let details = text(obj.get("error_data").and_then(|d| d.get("details")));
    let mut s = match (code, message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        (None, Some(m)) => m,
        (None, None) => String::new(),
    };
    if let Some(d) = details {
        if s.is_empty() {
            s = d;
        } else {
            s = format!("{s} ({d})");
        }
    }
    if s.is_empty() { describe(e) } else { s }
}

/// A required non-empty string field.
fn req_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
    call_id: Option<&str>,
) -> Result<&'a str, Bad> {
    let p = format!("{path}.{key}");
    match obj.get(key) {
        None | Some(Value::Null) => Err(Bad::new(call_id, &p, "missing")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(Bad::new(call_id, &p, "empty")),
        Some(Value::String(s)) => Ok(s.trim()),
        Some(v) => Err(Bad::new(
            call_id,
            &p,
            format!("expected a string, got {}", describe(v)),
        )),
    }
}

/// An optional string field (empty or non-string → `None`).
fn opt_str(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A phone number or user id: numbers (digits, `+`, spaces, dashes, parentheses) are normalized
/// to their digits; anything else (`US.1349...`) is kept, trimmed. Numbers given as JSON numbers
/// are accepted.
fn party_str(v: &Value) -> Option<String> {
    let raw = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if raw.is_empty() {
        return None;
    }
    let phone_like = raw
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
        && raw.chars().any(|c| c.is_ascii_digit());
    if phone_like {
        Some(raw.chars().filter(char::is_ascii_digit).collect())
    } else {
        Some(raw)
    }
}

/// Seconds since the epoch, from a number or a numeric string.
fn int_field(obj: &Map<String, Value>, key: &str) -> Option<i64> {
    let v = obj.get(key)?;
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| float_to_i64(n.as_f64()?)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| float_to_i64(s.parse::<f64>().ok()?))
        }
        Value::Null => return None,
        _ => None,
    };
    if n.is_none() {
        debug!(field = key, value = %describe(v), "webhook: unreadable number ignored");
    }
    n
}

fn float_to_i64(f: f64) -> Option<i64> {
    // The bounds are exact powers of two, so the cast below cannot saturate.
    (f.is_finite() && f >= -9.223_372_036_854_775e18 && f < 9.223_372_036_854_775e18)
        .then_some(f.trunc() as i64)
}

#[derive(Debug, Default)]
struct Party {
    number: Option<String>,
    user_id: Option<String>,
}

impl Party {
    fn read(obj: &Map<String, Value>, number_keys: &[&str], user_keys: &[&str]) -> Self {
        let first = |keys: &[&str]| keys.iter().find_map(|k| obj.get(*k).and_then(party_str));
        Self {
            number: first(number_keys),
            user_id: first(user_keys),
        }
    }

    fn id(&self) -> Option<&str> {
        self.number.as_deref().or(self.user_id.as_deref())
    }

    fn is(&self, id: &str) -> bool {
        self.number.as_deref() == Some(id) || self.user_id.as_deref() == Some(id)
    }

    fn username_only(&self) -> bool {
        self.number.is_none() && self.user_id.is_some()
    }
}

/// Who is the customer in a call object; `default_customer_is_from` is the last resort.
struct Sides {
    customer: Option<String>,
    business: Option<String>,
    caller_name: Option<String>,
}

fn resolve_sides(obj: &Map<String, Value>, ctx: &Ctx, default_customer_is_from: bool) -> Sides {
    let from = Party::read(obj, &["from"], &["from_user_id"]);
    let to = Party::read(
        obj,
        &["to", "recipient_id"],
        &["to_user_id", "recipient_user_id", "recipient"],
    );
    let is_biz = |p: &Party| {
        ctx.business
            .as_deref()
            .is_some_and(|b| p.number.as_deref() == Some(b))
    };
    let is_contact = |p: &Party| {
        ctx.contacts.iter().any(|c| {
            p.number.as_deref().is_some_and(|n| c.has_id(n))
                || p.user_id.as_deref().is_some_and(|u| c.has_id(u))
        })
    };
    let direction = obj.get("direction").and_then(Value::as_str).unwrap_or("");
    let customer_is_from = if is_biz(&to) != is_biz(&from) {
        is_biz(&to)
    } else if is_contact(&from) != is_contact(&to) {
        is_contact(&from)
    } else if from.username_only() && to.number.is_some() {
        true
    } else if to.username_only() && from.number.is_some() {
        false
    } else if direction.eq_ignore_ascii_case("USER_INITIATED") {
        true
    } else if direction.eq_ignore_ascii_case("BUSINESS_INITIATED") {
        false
    } else {
        default_customer_is_from
    };
    let (cust, biz) = if customer_is_from {
        (&from, &to)
    } else {
        (&to, &from)
    };

    // The contact that is the customer: matched by id, else the only contact (unless that one is
    // plainly the business).
    let contact = ctx
        .contacts
        .iter()
        .find(|c| {
            cust.number.as_deref().is_some_and(|n| c.has_id(n))
                || cust.user_id.as_deref().is_some_and(|u| c.has_id(u))
        })
        .or_else(|| match ctx.contacts.as_slice() {
            [only] if !ctx.business.as_deref().is_some_and(|b| only.has_id(b)) => {
                // Only when it does not name another party of this call.
                let other = only
                    .wa_id
                    .iter()
                    .chain(only.user_id.iter())
                    .any(|id| biz.is(id));
                (!other).then_some(only)
            }
            _ => None,
        });

    let customer = cust
        .id()
        .map(str::to_owned)
        .or_else(|| contact.and_then(|c| c.wa_id.clone().or_else(|| c.user_id.clone())));
    let business = ctx.business.clone().or_else(|| biz.number.clone());
    Sides {
        customer,
        business,
        caller_name: contact.and_then(|c| c.name.clone()),
    }
}

fn parse_call(
    call: &Value,
    path: &str,
    ctx: &Ctx,
    value_errors: &[String],
) -> Result<CallEvent, Bad> {
    let obj = call.as_object().ok_or_else(|| {
        Bad::new(
            None,
            path,
            format!("expected an object, got {}", describe(call)),
        )
    })?;
    let call_id = req_str(obj, "id", path, None)?;
    let id = Some(call_id);
    let event = req_str(obj, "event", path, id)?;
    if event.eq_ignore_ascii_case("connect") {
        parse_connect(obj, path, call_id, ctx)
    } else if event.eq_ignore_ascii_case("terminate") {
        let mut errors = parse_errors(obj.get("errors"));
        errors.extend(value_errors.iter().cloned());
        let duration_s = int_field(obj, "duration").and_then(|d| u64::try_from(d).ok());
        Ok(CallEvent::Terminate {
            call_id: call_id.to_owned(),
            status: opt_str(obj, "status"),
            duration_s,
            start_time: int_field(obj, "start_time"),
            end_time: int_field(obj, "end_time"),
            errors,
        })
    } else {
        Ok(CallEvent::Ignored {
            call_id: Some(call_id.to_owned()),
            what: format!("event {event:?}"),
        })
    }
}

fn parse_connect(
    obj: &Map<String, Value>,
    path: &str,
    call_id: &str,
    ctx: &Ctx,
) -> Result<CallEvent, Bad> {
    let id = Some(call_id);
    let spath = format!("{path}.session");
    let session = match obj.get("session") {
        None | Some(Value::Null) => return Err(Bad::new(id, &spath, "missing")),
        Some(Value::Object(s)) => s,
        Some(v) => {
            return Err(Bad::new(
                id,
                &spath,
                format!("expected an object, got {}", describe(v)),
            ));
        }
    };
    let sdp_type = req_str(session, "sdp_type", &spath, id)?;
    let sdp = match session.get("sdp") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => {
            return Err(Bad::new(id, &format!("{spath}.sdp"), "empty"));
        }
        None | Some(Value::Null) => {
            return Err(Bad::new(id, &format!("{spath}.sdp"), "missing"));
        }
        Some(v) => {
            return Err(Bad::new(
                id,
                &format!("{spath}.sdp"),
                format!("expected a string, got {}", describe(v)),
            ));
        }
    };
    let is_offer = if sdp_type.eq_ignore_ascii_case("offer") {
        true
    } else if sdp_type.eq_ignore_ascii_case("answer") {
        false
    } else {
        return Err(Bad::new(
            id,
            &format!("{spath}.sdp_type"),
            format!("unknown {sdp_type:?} (expected \"offer\" or \"answer\")"),
        ));
    };
    let sides = resolve_sides(obj, ctx, is_offer);
    let customer = sides.customer.unwrap_or_else(|| {
        warn!(call_id, path, "webhook: connect without an identifiable customer");
        String::new()
    });
    if is_offer {
        let business = sides.business.unwrap_or_else(|| {
            warn!(call_id, path, "webhook: offer without an identifiable business number");
            String::new()
        });
        Ok(CallEvent::Offer {
            call_id: call_id.to_owned(),
            customer,
            business,
            caller_name: sides.caller_name,
            sdp,
            timestamp: int_field(obj, "timestamp"),
        })
    } else {
        Ok(CallEvent::Answer {
            call_id: call_id.to_owned(),
            customer,
            sdp,
            biz_opaque: opt_str(obj, "biz_opaque_callback_data"),
        })
    }
}

fn parse_status(st: &Value, path: &str) -> Result<CallEvent, Bad> {
    let obj = st.as_object().ok_or_else(|| {
        Bad::new(
            None,
            path,
            format!("expected an object, got {}", describe(st)),
        )
    })?;
    let call_id = req_str(obj, "id", path, None)?;
    // `type` is always "call" in the calls field; tolerate it missing, skip other types.
    if let Some(t) = obj.get("type")
        && t.as_str().is_none_or(|t| !t.trim().eq_ignore_ascii_case("call"))
    {
        return Ok(CallEvent::Ignored {
            call_id: Some(call_id.to_owned()),
            what: format!("{path}.type: {} (not a call status)", describe(t)),
        });
    }
    let status = req_str(obj, "status", path, Some(call_id))?;
    let customer = ["recipient_id", "recipient_user_id", "to", "to_user_id"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(party_str));
    Ok(CallEvent::Status {
        call_id: call_id.to_owned(),
        status: CallStatus::parse(status),
        customer,
        timestamp: int_field(obj, "timestamp"),
        biz_opaque: opt_str(obj, "biz_opaque_callback_data"),
    })
}
