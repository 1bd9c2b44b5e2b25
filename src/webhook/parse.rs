//! Parsing of Meta's webhook envelope into [`CallEvent`]s.
//!
//! Pure code, no IO, and never panics on any input (see the fuzz tests at the bottom).
//!
//! # What is parsed
//! * Changes with `field: "calls"`:
//!   * `value.calls[]`: `connect` ([`CallEvent::Offer`] or [`CallEvent::Answer`]), `terminate`
//!     ([`CallEvent::Terminate`]), and Meta's own recording and transcription,
//!     `call_recording_available` / `call_transcription_available` ([`CallEvent::MetaMedia`]).
//!   * `value.statuses[]` with `type: "call"` ([`CallEvent::Status`]).
//!   * `value.messages[]` call-permission replies ([`CallEvent::PermissionReply`]), since which
//!     field Meta delivers them on is unconfirmed; any other message there is `Ignored`.
//! * Changes with `field: "messages"`: only the call-permission replies in `value.messages[]`
//!   (`interactive.type: "call_permission_reply"`). Everything else in such a change (text and
//!   other messages, message statuses, ...) becomes one `Ignored` whose `what` is
//!   `field "messages"`, as does a change of any other field (`field "<name>"`).
//!
//! Events come out in body order: per change, calls, then statuses, then messages.
//!
//! # Error policy
//! * `Err(WebhookError)` only when the **envelope** is invalid: the body is not JSON, the root is
//!   not an object, `entry` is missing or not an array, an `entry[i]` is not an object or lacks a
//!   `changes` array, or a `changes[j]` is not an object. Such a body is not a Meta webhook at all.
//! * Everything inside a change degrades per item: a malformed call, status or permission reply
//!   (no id, `connect` without `session`/`sdp`, empty offer SDP, a recording without its media id,
//!   a reply without `from` or whose `response` is not `accept`/`reject`, wrong JSON types, ...)
//!   becomes [`CallEvent::Ignored`] whose `what` is `"<json path>: <problem>"`, and is logged with
//!   `tracing::warn!`, so one bad call in a batch never loses the others.
//! * Unknown events, changes for other fields, messages that are not permission replies and
//!   status entries of another `type` become `Ignored` with a `tracing::debug!`.
//!
//! # Leniency (Meta's docs and examples are inconsistent; see `whatsapp-calling.md`)
//! * Timestamps (`timestamp`, `start_time`, `end_time`) and `duration` are accepted as JSON numbers
//!   or numeric strings; an unreadable one becomes `None` (debug log), never an error.
//! * A permission reply's `expiration_timestamp` is also a number or a numeric string, but an
//!   unreadable one makes the reply malformed (a wrong expiry must not pass for a right one).
//!   `is_permanent` is a boolean (or `"true"`/`"false"`), absent meaning `false`;
//!   `response_source` absent or unknown means `user_action`. The user is `from` (else
//!   `from_user_id`).
//! * Media ids are strings or JSON integers; the transcript is read from `call_transcript` (the
//!   documented name) or `call_transcription`.
//! * Customer vs business is decided by `metadata.display_phone_number` first, then by
//!   `contacts[]`, then a username-only party (always the customer), then `direction`
//!   (`USER_INITIATED`: customer is `from`; `BUSINESS_INITIATED`: customer is `to`), then the event
//!   kind (offer: `from`, answer/terminate: `to`).
//! * Phone numbers are normalized to digits (`"+52 1 55..."` → `"52155..."`); user ids such as
//!   `US.13491208655302741918` are kept as given.
//! * `value.errors[]` (Meta puts failure reasons there) is appended to the `errors` of every
//!   `Terminate` in the same value, after the call's own `errors[]`; when the value has no
//!   terminate, the errors come out as one `Ignored` (with a warning) so they are not lost.
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
        /// As given: `COMPLETED` | `FAILED` in Meta's pages; pipecat also expects `REJECTED`.
        status: Option<String>,
        duration_s: Option<u64>,
        start_time: Option<i64>,
        end_time: Option<i64>,
        /// `"code: message (details)"`, from the call's and the value's `errors[]`.
        errors: Vec<String>,
    },
    /// The user answered a call-permission request, or WhatsApp did for them
    /// (`messages[].interactive.call_permission_reply`).
    PermissionReply {
        /// The user (`messages[].from`), normalized like other customer numbers.
        customer: String,
        accepted: bool,
        permanent: bool,
        /// Unix seconds when a temporary permission ends.
        expires_at: Option<i64>,
        /// `response_source: automatic` (the user called, or missed calls revoked it).
        automatic: bool,
        /// `context.id`: the request's wamid, or the user's call id.
        context_id: Option<String>,
        timestamp: Option<i64>,
    },
    /// Meta recorded or transcribed the call on its side: the file can be downloaded.
    MetaMedia {
        call_id: String,
        kind: MetaMediaKind,
        /// The media id (`GET /{id}` gives a fresh download URL once `url` expired).
        media_id: String,
        url: Option<String>,
        mime_type: Option<String>,
        sha256: Option<String>,
    },
    /// Any other calls event, message or unknown shape we tolerate, and malformed items.
    Ignored {
        call_id: Option<String>,
        what: String,
    },
}

impl CallEvent {
    /// The `biz_opaque_callback_data` we gave in `connect`, when the event echoes it.
    pub fn biz_opaque(&self) -> Option<&str> {
        match self {
            Self::Answer { biz_opaque, .. } | Self::Status { biz_opaque, .. } => {
                biz_opaque.as_deref()
            }
            _ => None,
        }
    }

    /// The WhatsApp call id (`wacid...`), when the event has one.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Self::Offer { call_id, .. }
            | Self::Answer { call_id, .. }
            | Self::Status { call_id, .. }
            | Self::Terminate { call_id, .. }
            | Self::MetaMedia { call_id, .. } => Some(call_id),
            Self::Ignored { call_id, .. } => call_id.as_deref(),
            // About the user, not a call (`context_id` may name one, or a message).
            Self::PermissionReply { .. } => None,
        }
    }
}

/// What Meta made of a call it recorded ([`CallEvent::MetaMedia`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MetaMediaKind {
    /// `call_recording_available`: `call_recording.audio` (Ogg Opus).
    Recording,
    /// `call_transcription_available`: `call_transcript.document` (JSON segments).
    Transcript,
}

impl MetaMediaKind {
    /// `"recording"` or `"transcript"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recording => "recording",
            Self::Transcript => "transcript",
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

/// Parses a webhook POST body into call events, in order (per change: calls, then statuses, then
/// messages).
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

/// `true` for the first of two words, `false` for the second (either case); anything else is
/// a `Bad` naming `path` and what was expected.
fn one_of_two(
    value: &str,
    (yes, no): (&str, &str),
    call_id: Option<&str>,
    path: &str,
) -> Result<bool, Bad> {
    if value.eq_ignore_ascii_case(yes) {
        Ok(true)
    } else if value.eq_ignore_ascii_case(no) {
        Ok(false)
    } else {
        Err(Bad::new(
            call_id,
            path,
            format!("unknown {value:?} (expected {yes:?} or {no:?})"),
        ))
    }
}

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
        Some(Value::String(f)) if f == "messages" => {
            parse_messages_change(change.get("value"), &format!("{cpath}.value"), out);
            return;
        }
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

    if let Some(messages) = value.get("messages") {
        let path = format!("{vpath}.messages");
        match messages {
            Value::Array(messages) => {
                for (k, msg) in messages.iter().enumerate() {
                    any_item = true;
                    let path = format!("{path}[{k}]");
                    match parse_message(msg, &path) {
                        Some(Ok(ev)) => out.push(ev),
                        Some(Err(bad)) => push_bad(out, bad),
                        None => push_ignored(out, None, not_a_reply(msg, &path)),
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

/// A change of the `messages` field: only its call-permission replies are ours. Anything else in
/// it (other messages, message statuses, a value of another shape) becomes one
/// `Ignored { what: "field \"messages\"" }` for the whole change, after the replies.
fn parse_messages_change(value: Option<&Value>, vpath: &str, out: &mut Vec<CallEvent>) {
    let mut replies = 0usize;
    let mut others = false;
    match value.and_then(|v| v.get("messages")) {
        Some(Value::Array(messages)) => {
            for (k, msg) in messages.iter().enumerate() {
                match parse_message(msg, &format!("{vpath}.messages[{k}]")) {
                    Some(Ok(ev)) => {
                        replies += 1;
                        out.push(ev);
                    }
                    Some(Err(bad)) => {
                        replies += 1;
                        push_bad(out, bad);
                    }
                    None => others = true,
                }
            }
        }
        _ => others = true,
    }
    if others || replies == 0 {
        push_ignored(out, None, "field \"messages\"".to_owned());
    }
}

/// `what` for a message that is not a permission reply (on a `calls` change).
fn not_a_reply(msg: &Value, path: &str) -> String {
    match msg.get("type").and_then(Value::as_str) {
        Some(t) => format!("{path}: message of type {t:?} (not a call permission reply)"),
        None => format!("{path}: not a call permission reply"),
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
    if v.is_null() {
        return None;
    }
    let n = to_i64(v);
    if n.is_none() {
        debug!(field = key, value = %describe(v), "webhook: unreadable number ignored");
    }
    n
}

/// A number or a numeric string, truncated to an integer; `None` when it is neither or out of
/// range.
fn to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| float_to_i64(n.as_f64()?)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| float_to_i64(s.parse::<f64>().ok()?))
        }
        _ => None,
    }
}

/// An optional integer (number or numeric string) that must be readable when given: absent,
/// `null` or a blank string is `None`, anything else unreadable is an error.
fn opt_int(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    call_id: Option<&str>,
) -> Result<Option<i64>, Bad> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => to_i64(v).map(Some).ok_or_else(|| {
            Bad::new(
                call_id,
                &format!("{path}.{key}"),
                format!("expected a number, got {}", describe(v)),
            )
        }),
    }
}

/// An optional boolean: `true`/`false`, or those words as a string (any case).
fn opt_bool(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    call_id: Option<&str>,
) -> Result<Option<bool>, Bad> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(Bad::new(
            call_id,
            &format!("{path}.{key}"),
            format!("expected a boolean, got {}", describe(v)),
        )),
    }
}

/// A required object field.
fn req_obj<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
    call_id: Option<&str>,
) -> Result<&'a Map<String, Value>, Bad> {
    let p = format!("{path}.{key}");
    match obj.get(key) {
        None | Some(Value::Null) => Err(Bad::new(call_id, &p, "missing")),
        Some(Value::Object(m)) => Ok(m),
        Some(v) => Err(Bad::new(
            call_id,
            &p,
            format!("expected an object, got {}", describe(v)),
        )),
    }
}

fn float_to_i64(f: f64) -> Option<i64> {
    // ±2^63, exactly representable: inside the range the cast is exact (no saturation).
    const LIM: f64 = 9_223_372_036_854_775_808.0;
    (-LIM..LIM).contains(&f).then(|| f.trunc() as i64)
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
    } else if event.eq_ignore_ascii_case("call_recording_available") {
        parse_meta_media(obj, path, call_id, MetaMediaKind::Recording)
    } else if event.eq_ignore_ascii_case("call_transcription_available") {
        parse_meta_media(obj, path, call_id, MetaMediaKind::Transcript)
    } else {
        Ok(CallEvent::Ignored {
            call_id: Some(call_id.to_owned()),
            what: format!("event {event:?}"),
        })
    }
}

/// `call_recording_available` (`call_recording.audio`) or `call_transcription_available`
/// (`call_transcript.document`, or `call_transcription.document`).
fn parse_meta_media(
    obj: &Map<String, Value>,
    path: &str,
    call_id: &str,
    kind: MetaMediaKind,
) -> Result<CallEvent, Bad> {
    let id = Some(call_id);
    let (keys, file): (&[&str], &str) = match kind {
        MetaMediaKind::Recording => (&["call_recording"], "audio"),
        MetaMediaKind::Transcript => (&["call_transcript", "call_transcription"], "document"),
    };
    // The first key present names the container (and the path of its problems).
    let key = keys
        .iter()
        .copied()
        .find(|k| obj.get(*k).is_some_and(|v| !v.is_null()))
        .unwrap_or(keys[0]);
    let container = req_obj(obj, key, path, id)?;
    let fpath = format!("{path}.{key}");
    let media = req_obj(container, file, &fpath, id)?;
    let mpath = format!("{fpath}.{file}");
    let media_id = match media.get("id") {
        // Media ids are digits; tolerate them as a JSON integer.
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        _ => req_str(media, "id", &mpath, id)?.to_owned(),
    };
    Ok(CallEvent::MetaMedia {
        call_id: call_id.to_owned(),
        kind,
        media_id,
        url: opt_str(media, "url"),
        mime_type: opt_str(media, "mime_type"),
        sha256: opt_str(media, "sha256"),
    })
}

/// A `messages[]` entry: `None` when it is not a call-permission reply (not ours), else the reply
/// or why it is malformed. A reply is a message whose `interactive.type` is
/// `call_permission_reply` or whose `interactive` has a `call_permission_reply`.
fn parse_message(msg: &Value, path: &str) -> Option<Result<CallEvent, Bad>> {
    let obj = msg.as_object()?;
    let interactive = obj.get("interactive")?.as_object()?;
    let is_reply = interactive
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("call_permission_reply"))
        || interactive.contains_key("call_permission_reply");
    if !is_reply {
        return None;
    }
    Some(parse_permission_reply(obj, interactive, path))
}

fn parse_permission_reply(
    msg: &Map<String, Value>,
    interactive: &Map<String, Value>,
    path: &str,
) -> Result<CallEvent, Bad> {
    let customer = match ["from", "from_user_id"]
        .iter()
        .find_map(|k| msg.get(*k).and_then(party_str))
    {
        Some(c) => c,
        None => {
            let p = format!("{path}.from");
            return Err(match msg.get("from") {
                None | Some(Value::Null) => Bad::new(None, &p, "missing"),
                Some(Value::String(_)) => Bad::new(None, &p, "empty"),
                Some(v) => Bad::new(None, &p, format!("expected a string, got {}", describe(v))),
            });
        }
    };
    let ipath = format!("{path}.interactive");
    let reply = req_obj(interactive, "call_permission_reply", &ipath, None)?;
    let rpath = format!("{ipath}.call_permission_reply");
    let response = req_str(reply, "response", &rpath, None)?;
    let accepted = one_of_two(
        response,
        ("accept", "reject"),
        None,
        &format!("{rpath}.response"),
    )?;
    let permanent = opt_bool(reply, "is_permanent", &rpath, None)?.unwrap_or(false);
    let expires_at = opt_int(reply, "expiration_timestamp", &rpath, None)?;
    let automatic = match reply.get("response_source") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("automatic") => true,
        Some(Value::String(s)) => {
            if !s.trim().eq_ignore_ascii_case("user_action") {
                debug!(source = %s, path = %rpath, "webhook: unknown response_source, taken as user_action");
            }
            false
        }
        Some(v) => {
            return Err(Bad::new(
                None,
                &format!("{rpath}.response_source"),
                format!("expected a string, got {}", describe(v)),
            ));
        }
    };
    let context_id = msg
        .get("context")
        .and_then(Value::as_object)
        .and_then(|c| opt_str(c, "id"));
    Ok(CallEvent::PermissionReply {
        customer,
        accepted,
        permanent,
        expires_at,
        automatic,
        context_id,
        timestamp: int_field(msg, "timestamp"),
    })
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
    let is_offer = one_of_two(
        sdp_type,
        ("offer", "answer"),
        id,
        &format!("{spath}.sdp_type"),
    )?;
    let sides = resolve_sides(obj, ctx, is_offer);
    let customer = sides.customer.unwrap_or_else(|| {
        warn!(
            call_id,
            path, "webhook: connect without an identifiable customer"
        );
        String::new()
    });
    if is_offer {
        let business = sides.business.unwrap_or_else(|| {
            warn!(
                call_id,
                path, "webhook: offer without an identifiable business number"
            );
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
        && t.as_str()
            .is_none_or(|t| !t.trim().eq_ignore_ascii_case("call"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BIZ: &str = "5215500000001";
    const USER: &str = "5215500000002";
    const SDP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";

    /// Meta's envelope around one `calls` value.
    fn envelope(value: Value) -> Vec<u8> {
        envelope_field("calls", value)
    }

    /// Meta's envelope around one value of `field`.
    fn envelope_field(field: &str, value: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": field, "value": value}]}]
        }))
        .unwrap()
    }

    fn metadata() -> Value {
        json!({"display_phone_number": BIZ, "phone_number_id": "106540352242922"})
    }

    fn user_offer_value() -> Value {
        json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": USER}],
            "calls": [{
                "id": "wacid.ABGGFlA5FpafAgo6EhoYbWVzc2FnZQ",
                "from": USER, "to": BIZ,
                "event": "connect",
                "timestamp": "1760000000",
                "direction": "USER_INITIATED",
                "session": {"sdp_type": "offer", "sdp": SDP}
            }]
        })
    }

    fn parse_one(value: Value) -> CallEvent {
        let mut evs = parse_webhook(&envelope(value)).unwrap();
        assert_eq!(evs.len(), 1, "{evs:#?}");
        evs.pop().unwrap()
    }

    fn ignored_what(ev: &CallEvent) -> &str {
        match ev {
            CallEvent::Ignored { what, .. } => what,
            other => panic!("expected Ignored, got {other:?}"),
        }
    }

    #[test]
    fn user_offer_with_contacts() {
        let ev = parse_one(user_offer_value());
        assert_eq!(
            ev,
            CallEvent::Offer {
                call_id: "wacid.ABGGFlA5FpafAgo6EhoYbWVzc2FnZQ".into(),
                customer: USER.into(),
                business: BIZ.into(),
                caller_name: Some("Ana".into()),
                sdp: SDP.into(),
                timestamp: Some(1_760_000_000),
            }
        );
        assert_eq!(ev.call_id(), Some("wacid.ABGGFlA5FpafAgo6EhoYbWVzc2FnZQ"));
    }

    #[test]
    fn offer_with_swapped_from_to_uses_metadata() {
        // Meta's examples sometimes put the business in `from`: metadata decides, not the name.
        let mut v = user_offer_value();
        v["calls"][0]["from"] = json!(BIZ);
        v["calls"][0]["to"] = json!(USER);
        v["calls"][0]["timestamp"] = json!(1760000001);
        match parse_one(v) {
            CallEvent::Offer {
                customer,
                business,
                caller_name,
                timestamp,
                ..
            } => {
                assert_eq!(customer, USER);
                assert_eq!(business, BIZ);
                assert_eq!(caller_name.as_deref(), Some("Ana"));
                assert_eq!(timestamp, Some(1_760_000_001));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn offer_sides_from_contacts_then_direction() {
        // No metadata: the contact names the customer even when it sits in `to`.
        let mut v = user_offer_value();
        v.as_object_mut().unwrap().remove("metadata");
        v["calls"][0]["from"] = json!(BIZ);
        v["calls"][0]["to"] = json!(USER);
        match parse_one(v) {
            CallEvent::Offer {
                customer, business, ..
            } => assert_eq!((customer.as_str(), business.as_str()), (USER, BIZ)),
            other => panic!("{other:?}"),
        }
        // Neither metadata nor contacts: direction USER_INITIATED means the customer is `from`.
        let mut v = user_offer_value();
        v.as_object_mut().unwrap().remove("metadata");
        v.as_object_mut().unwrap().remove("contacts");
        match parse_one(v) {
            CallEvent::Offer {
                customer,
                business,
                caller_name,
                ..
            } => {
                assert_eq!((customer.as_str(), business.as_str()), (USER, BIZ));
                assert_eq!(caller_name, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn formatted_numbers_are_normalized() {
        let mut v = user_offer_value();
        v["metadata"]["display_phone_number"] = json!("+52 1 55 0000 0001");
        v["calls"][0]["from"] = json!(BIZ);
        v["calls"][0]["to"] = json!(format!("+{USER}"));
        match parse_one(v) {
            CallEvent::Offer {
                customer, business, ..
            } => assert_eq!((customer.as_str(), business.as_str()), (USER, BIZ)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn business_initiated_answer() {
        let ev = parse_one(json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": USER}],
            "calls": [{
                "id": "wacid.BUSINESS1",
                "from": BIZ, "to": USER,
                "event": "connect",
                "timestamp": "1760000100",
                "direction": "BUSINESS_INITIATED",
                "biz_opaque_callback_data": "order-42",
                "session": {"sdp_type": "answer", "sdp": SDP}
            }]
        }));
        assert_eq!(
            ev,
            CallEvent::Answer {
                call_id: "wacid.BUSINESS1".into(),
                customer: USER.into(),
                sdp: SDP.into(),
                biz_opaque: Some("order-42".into()),
            }
        );
    }

    #[test]
    fn answer_without_metadata_or_direction_defaults_to_to() {
        let ev = parse_one(json!({
            "calls": [{"id": "wacid.B2", "from": BIZ, "to": USER, "event": "connect",
                       "session": {"sdp_type": "answer", "sdp": SDP}}]
        }));
        assert!(
            matches!(ev, CallEvent::Answer { ref customer, .. } if customer == USER),
            "{ev:?}"
        );
    }

    #[test]
    fn statuses_ringing_accepted_rejected() {
        let evs = parse_webhook(&envelope(json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "statuses": [
                {"id": "wacid.B1", "type": "call", "status": "RINGING", "timestamp": "1760000101",
                 "recipient_id": USER, "biz_opaque_callback_data": "order-42"},
                {"id": "wacid.B1", "type": "call", "status": "ACCEPTED", "timestamp": 1760000105,
                 "recipient_id": USER},
                {"id": "wacid.B2", "type": "call", "status": "rejected",
                 "recipient_user_id": "US.13491208655302741918"},
                {"id": "wacid.B3", "type": "call", "status": "SOMETHING_NEW"}
            ]
        })))
        .unwrap();
        assert_eq!(
            evs,
            vec![
                CallEvent::Status {
                    call_id: "wacid.B1".into(),
                    status: CallStatus::Ringing,
                    customer: Some(USER.into()),
                    timestamp: Some(1_760_000_101),
                    biz_opaque: Some("order-42".into()),
                },
                CallEvent::Status {
                    call_id: "wacid.B1".into(),
                    status: CallStatus::Accepted,
                    customer: Some(USER.into()),
                    timestamp: Some(1_760_000_105),
                    biz_opaque: None,
                },
                CallEvent::Status {
                    call_id: "wacid.B2".into(),
                    status: CallStatus::Rejected,
                    customer: Some("US.13491208655302741918".into()),
                    timestamp: None,
                    biz_opaque: None,
                },
                CallEvent::Status {
                    call_id: "wacid.B3".into(),
                    status: CallStatus::Other("SOMETHING_NEW".into()),
                    customer: None,
                    timestamp: None,
                    biz_opaque: None,
                },
            ]
        );
    }

    #[test]
    fn status_of_another_type_or_without_fields() {
        let evs = parse_webhook(&envelope(json!({
            "statuses": [
                {"id": "wamid.X", "type": "message", "status": "delivered"},
                {"type": "call", "status": "RINGING"},
                {"id": "wacid.Y", "type": "call"},
                "nonsense"
            ]
        })))
        .unwrap();
        assert_eq!(evs.len(), 4);
        assert_eq!(evs[0].call_id(), Some("wamid.X"));
        assert!(ignored_what(&evs[0]).contains("not a call status"));
        assert_eq!(
            ignored_what(&evs[1]),
            "entry[0].changes[0].value.statuses[1].id: missing"
        );
        assert_eq!(evs[2].call_id(), Some("wacid.Y"));
        assert_eq!(
            ignored_what(&evs[2]),
            "entry[0].changes[0].value.statuses[2].status: missing"
        );
        assert_eq!(
            ignored_what(&evs[3]),
            "entry[0].changes[0].value.statuses[3]: expected an object, got \"nonsense\""
        );
    }

    #[test]
    fn terminate_completed_with_duration() {
        let ev = parse_one(json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": USER}],
            "calls": [{
                "id": "wacid.T1", "from": USER, "to": BIZ,
                "event": "terminate", "direction": "USER_INITIATED",
                "timestamp": "1760000200", "status": "COMPLETED",
                "start_time": "1760000080", "end_time": 1760000200, "duration": "120"
            }]
        }));
        assert_eq!(
            ev,
            CallEvent::Terminate {
                call_id: "wacid.T1".into(),
                status: Some("COMPLETED".into()),
                duration_s: Some(120),
                start_time: Some(1_760_000_080),
                end_time: Some(1_760_000_200),
                errors: vec![],
            }
        );
        // Duration as a number; unreadable times are dropped, not fatal.
        let ev = parse_one(json!({"calls": [{
            "id": "wacid.T2", "event": "terminate", "status": "COMPLETED",
            "duration": 7, "start_time": "soon", "end_time": null
        }]}));
        assert!(
            matches!(
                ev,
                CallEvent::Terminate {
                    duration_s: Some(7),
                    start_time: None,
                    end_time: None,
                    ..
                }
            ),
            "{ev:?}"
        );
        // Negative duration is not a duration.
        let ev =
            parse_one(json!({"calls": [{"id": "wacid.T3", "event": "terminate", "duration": -3}]}));
        assert!(matches!(
            ev,
            CallEvent::Terminate {
                duration_s: None,
                status: None,
                ..
            }
        ));
    }

    #[test]
    fn terminate_failed_with_errors() {
        let ev = parse_one(json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "calls": [{
                "id": "wacid.F1", "from": BIZ, "to": USER,
                "event": "terminate", "direction": "BUSINESS_INITIATED",
                "timestamp": "1760000300", "status": "FAILED",
                "errors": [{"code": "138002", "message": "Call rejected by recipient"}]
            }],
            "errors": [{
                "code": 138006,
                "message": "Unable to connect call",
                "error_data": {"details": "No answer within 60 seconds"}
            }]
        }));
        assert_eq!(
            ev,
            CallEvent::Terminate {
                call_id: "wacid.F1".into(),
                status: Some("FAILED".into()),
                duration_s: None,
                start_time: None,
                end_time: None,
                errors: vec![
                    "138002: Call rejected by recipient".into(),
                    "138006: Unable to connect call (No answer within 60 seconds)".into(),
                ],
            }
        );
    }

    #[test]
    fn value_errors_without_terminate_stay_visible() {
        let ev = parse_one(json!({
            "metadata": metadata(),
            "errors": [{"code": 131000, "message": "Something went wrong"}]
        }));
        assert_eq!(
            ignored_what(&ev),
            "entry[0].changes[0].value.errors: 131000: Something went wrong"
        );
    }

    #[test]
    fn batch_of_two_calls_and_one_bad_call_in_between() {
        let mut v = user_offer_value();
        let first = v["calls"][0].clone();
        let mut second = first.clone();
        second["id"] = json!("wacid.SECOND");
        second["from"] = json!("5215500000003");
        let bad = json!({"from": USER, "to": BIZ, "event": "connect",
                         "session": {"sdp_type": "offer", "sdp": SDP}});
        v["calls"] = json!([first, bad, second]);
        v["contacts"] = json!([
            {"profile": {"name": "Ana"}, "wa_id": USER},
            {"profile": {"name": "Beto"}, "wa_id": "5215500000003"}
        ]);
        let evs = parse_webhook(&envelope(v)).unwrap();
        assert_eq!(evs.len(), 3, "{evs:#?}");
        assert!(
            matches!(&evs[0], CallEvent::Offer { customer, caller_name: Some(n), .. } if customer == USER && n == "Ana")
        );
        assert_eq!(
            evs[1],
            CallEvent::Ignored {
                call_id: None,
                what: "entry[0].changes[0].value.calls[1].id: missing".into()
            }
        );
        assert!(
            matches!(&evs[2], CallEvent::Offer { call_id, customer, caller_name: Some(n), .. }
                if call_id == "wacid.SECOND" && customer == "5215500000003" && n == "Beto")
        );
    }

    #[test]
    fn multiple_entries_and_changes_keep_order() {
        let body = serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "1", "changes": [
                    {"field": "messages", "value": {"messages": [{"id": "wamid.1"}]}},
                    {"field": "calls", "value": {"calls": [
                        {"id": "wacid.A", "event": "terminate", "status": "COMPLETED"}]}}
                ]},
                {"id": "2", "changes": [
                    {"field": "calls", "value": {"statuses": [
                        {"id": "wacid.B", "type": "call", "status": "RINGING"}]}}
                ]}
            ]
        }))
        .unwrap();
        let evs = parse_webhook(&body).unwrap();
        let ids: Vec<_> = evs.iter().map(CallEvent::call_id).collect();
        assert_eq!(ids, vec![None, Some("wacid.A"), Some("wacid.B")]);
        assert_eq!(ignored_what(&evs[0]), "field \"messages\"");
    }

    #[test]
    fn unknown_event_is_ignored_with_its_call_id() {
        let ev = parse_one(json!({
            "metadata": metadata(),
            "calls": [{"id": "wacid.R1", "event": "call_summary_available",
                       "summary": {"url": "https://example.invalid/s.json"}}]
        }));
        assert_eq!(
            ev,
            CallEvent::Ignored {
                call_id: Some("wacid.R1".into()),
                what: "event \"call_summary_available\"".into()
            }
        );
    }

    // ---- call-permission replies -------------------------------------------------------------

    /// A `messages` value holding the given messages.
    fn messages_value(messages: Value) -> Value {
        json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": USER}],
            "messages": messages
        })
    }

    /// One permission-reply message from `from` with the given `call_permission_reply`.
    fn reply_message(from: Value, reply: Value) -> Value {
        json!({
            "from": from, "id": "wamid.REPLY", "timestamp": "1767225600", "type": "interactive",
            "context": {"id": "wamid.REQUEST"},
            "interactive": {"type": "call_permission_reply", "call_permission_reply": reply}
        })
    }

    fn parse_messages(field: &str, messages: Value) -> Vec<CallEvent> {
        parse_webhook(&envelope_field(field, messages_value(messages))).unwrap()
    }

    #[test]
    fn permission_reply_accepted_temporary() {
        let want = CallEvent::PermissionReply {
            customer: USER.into(),
            accepted: true,
            permanent: false,
            expires_at: Some(1_767_830_400),
            automatic: false,
            context_id: Some("wamid.REQUEST".into()),
            timestamp: Some(1_767_225_600),
        };
        // Expiry as a number, and as a numeric string; `is_permanent` explicit or absent.
        for reply in [
            json!({"response": "accept", "is_permanent": false,
                   "expiration_timestamp": 1767830400, "response_source": "user_action"}),
            json!({"response": "accept", "expiration_timestamp": "1767830400"}),
        ] {
            let evs = parse_messages("messages", json!([reply_message(json!(USER), reply)]));
            assert_eq!(evs, vec![want.clone()]);
            assert_eq!(evs[0].call_id(), None);
            assert_eq!(evs[0].biz_opaque(), None);
        }
        // The number is normalized like other customer numbers.
        let evs = parse_messages(
            "messages",
            json!([reply_message(
                json!("+52 1 55 0000 0002"),
                json!({"response": "ACCEPT", "expiration_timestamp": 1767830400})
            )]),
        );
        assert_eq!(evs, vec![want]);
    }

    #[test]
    fn permission_reply_permanent() {
        let evs = parse_messages(
            "messages",
            json!([reply_message(
                json!(USER),
                json!({"response": "accept", "is_permanent": true, "response_source": "user_action"})
            )]),
        );
        assert_eq!(
            evs,
            vec![CallEvent::PermissionReply {
                customer: USER.into(),
                accepted: true,
                permanent: true,
                expires_at: None,
                automatic: false,
                context_id: Some("wamid.REQUEST".into()),
                timestamp: Some(1_767_225_600),
            }]
        );
    }

    #[test]
    fn permission_reply_automatic_reject() {
        // Missed calls revoked the permission: WhatsApp answers for the user, with no context.
        let mut msg = reply_message(
            json!(USER),
            json!({"response": "reject", "response_source": "automatic"}),
        );
        msg.as_object_mut().unwrap().remove("context");
        msg["timestamp"] = json!(1767225601);
        let evs = parse_messages("messages", json!([msg]));
        assert_eq!(
            evs,
            vec![CallEvent::PermissionReply {
                customer: USER.into(),
                accepted: false,
                permanent: false,
                expires_at: None,
                automatic: true,
                context_id: None,
                timestamp: Some(1_767_225_601),
            }]
        );
    }

    #[test]
    fn permission_reply_on_a_calls_change() {
        // Which field carries the replies is unconfirmed: a `calls` change is read too, after its
        // calls; other messages there are ignored by path.
        let mut v = messages_value(json!([
            {"from": USER, "id": "wamid.T", "type": "text", "text": {"body": "hola"}},
            reply_message(json!(USER), json!({"response": "accept", "is_permanent": "true"}))
        ]));
        v["calls"] = json!([{"id": "wacid.T9", "event": "terminate", "status": "COMPLETED"}]);
        let evs = parse_webhook(&envelope(v)).unwrap();
        assert_eq!(evs.len(), 3, "{evs:#?}");
        assert!(matches!(evs[0], CallEvent::Terminate { .. }), "{evs:#?}");
        assert_eq!(
            ignored_what(&evs[1]),
            "entry[0].changes[0].value.messages[0]: message of type \"text\" (not a call permission reply)"
        );
        assert_eq!(
            evs[2],
            CallEvent::PermissionReply {
                customer: USER.into(),
                accepted: true,
                permanent: true,
                expires_at: None,
                automatic: false,
                context_id: Some("wamid.REQUEST".into()),
                timestamp: Some(1_767_225_600),
            }
        );
        // Only a reply: one event, no "no calls or statuses".
        let evs = parse_messages(
            "calls",
            json!([reply_message(json!(USER), json!({"response": "reject"}))]),
        );
        assert!(
            matches!(
                &evs[..],
                [CallEvent::PermissionReply {
                    accepted: false,
                    ..
                }]
            ),
            "{evs:#?}"
        );
        // A username-only user.
        let mut msg = reply_message(Value::Null, json!({"response": "accept"}));
        msg["from_user_id"] = json!("US.13491208655302741918");
        let evs = parse_messages("calls", json!([msg]));
        assert!(
            matches!(&evs[..], [CallEvent::PermissionReply { customer, .. }] if customer == "US.13491208655302741918"),
            "{evs:#?}"
        );
    }

    #[test]
    fn malformed_permission_replies_name_path_and_problem() {
        let base = "entry[0].changes[0].value.messages[0]";
        let r = "interactive.call_permission_reply";
        let cases = [
            (
                reply_message(Value::Null, json!({"response": "accept"})),
                format!("{base}.from: missing"),
            ),
            (
                reply_message(json!(" "), json!({"response": "accept"})),
                format!("{base}.from: empty"),
            ),
            (
                reply_message(json!(true), json!({"response": "accept"})),
                format!("{base}.from: expected a string, got true"),
            ),
            (
                reply_message(json!(USER), json!({"response": "maybe"})),
                format!(
                    "{base}.{r}.response: unknown \"maybe\" (expected \"accept\" or \"reject\")"
                ),
            ),
            (
                reply_message(json!(USER), json!({"is_permanent": true})),
                format!("{base}.{r}.response: missing"),
            ),
            (
                reply_message(json!(USER), json!({"response": 1})),
                format!("{base}.{r}.response: expected a string, got 1"),
            ),
            (
                reply_message(
                    json!(USER),
                    json!({"response": "accept", "is_permanent": 1}),
                ),
                format!("{base}.{r}.is_permanent: expected a boolean, got 1"),
            ),
            (
                reply_message(
                    json!(USER),
                    json!({"response": "accept", "expiration_timestamp": "next week"}),
                ),
                format!("{base}.{r}.expiration_timestamp: expected a number, got \"next week\""),
            ),
            (
                reply_message(
                    json!(USER),
                    json!({"response": "accept", "expiration_timestamp": {}}),
                ),
                format!("{base}.{r}.expiration_timestamp: expected a number, got {{}}"),
            ),
            (
                reply_message(
                    json!(USER),
                    json!({"response": "accept", "response_source": false}),
                ),
                format!("{base}.{r}.response_source: expected a string, got false"),
            ),
            (
                reply_message(json!(USER), json!("accept")),
                format!("{base}.{r}: expected an object, got \"accept\""),
            ),
            (
                reply_message(json!(USER), Value::Null),
                format!("{base}.{r}: missing"),
            ),
        ];
        for (msg, want) in cases {
            for field in ["messages", "calls"] {
                let evs = parse_messages(field, json!([msg.clone()]));
                assert_eq!(evs.len(), 1, "{field}: {evs:#?}");
                assert_eq!(ignored_what(&evs[0]), want, "{field}");
                assert_eq!(evs[0].call_id(), None);
            }
        }
        // One bad reply does not lose the good one after it.
        let evs = parse_messages(
            "messages",
            json!([
                reply_message(json!(USER), json!({"response": "perhaps"})),
                reply_message(
                    json!(USER),
                    json!({"response": "accept", "is_permanent": true})
                )
            ]),
        );
        assert_eq!(evs.len(), 2, "{evs:#?}");
        assert!(ignored_what(&evs[0]).starts_with(&format!("{base}.{r}.response: unknown")));
        assert!(matches!(
            evs[1],
            CallEvent::PermissionReply {
                permanent: true,
                ..
            }
        ));
        // `messages` that is not an array on a calls change is malformed; on a messages change it
        // is simply not ours.
        let evs = parse_messages("calls", json!({"from": USER}));
        assert_eq!(
            ignored_what(&evs[0]),
            "entry[0].changes[0].value.messages: expected an array, got {\"from\":\"5215500000002\"}"
        );
        let evs = parse_messages("messages", json!({"from": USER}));
        assert_eq!(
            evs,
            vec![CallEvent::Ignored {
                call_id: None,
                what: "field \"messages\"".into()
            }]
        );
    }

    #[test]
    fn text_and_other_messages_stay_ignored() {
        let ignored = CallEvent::Ignored {
            call_id: None,
            what: "field \"messages\"".into(),
        };
        let text = json!({"from": USER, "id": "wamid.X", "type": "text", "text": {"body": "hola"}});
        let button = json!({"from": USER, "id": "wamid.Y", "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "b1", "title": "Sí"}}});
        assert_eq!(
            parse_messages("messages", json!([text])),
            vec![ignored.clone()]
        );
        assert_eq!(
            parse_messages("messages", json!([button])),
            vec![ignored.clone()]
        );
        // Several non-replies: still one Ignored for the change.
        assert_eq!(
            parse_messages("messages", json!([text, button, 7])),
            vec![ignored.clone()]
        );
        // Message statuses only.
        let evs = parse_webhook(&envelope_field(
            "messages",
            json!({"metadata": metadata(), "statuses": [{"id": "wamid.X", "status": "read"}]}),
        ))
        .unwrap();
        assert_eq!(evs, vec![ignored.clone()]);
        // A reply next to a text message: the reply, then the Ignored for the rest.
        let evs = parse_messages(
            "messages",
            json!([
                text,
                reply_message(json!(USER), json!({"response": "accept"}))
            ]),
        );
        assert_eq!(evs.len(), 2, "{evs:#?}");
        assert!(matches!(evs[0], CallEvent::PermissionReply { .. }));
        assert_eq!(evs[1], ignored);
    }

    // ---- Meta-side recording and transcription -----------------------------------------------

    #[test]
    fn recording_available() {
        let sha = "3b1f5a3c6d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182";
        let ev = parse_one(json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "calls": [{
                "id": "wacid.ABC", "event": "call_recording_available", "timestamp": "1767225700",
                "call_recording": {"audio": {
                    "id": "MEDIA1", "sha256": sha, "mime_type": "audio/ogg; codecs=opus",
                    "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1"
                }}
            }]
        }));
        assert_eq!(
            ev,
            CallEvent::MetaMedia {
                call_id: "wacid.ABC".into(),
                kind: MetaMediaKind::Recording,
                media_id: "MEDIA1".into(),
                url: Some(
                    "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1".into()
                ),
                mime_type: Some("audio/ogg; codecs=opus".into()),
                sha256: Some(sha.into()),
            }
        );
        assert_eq!(ev.call_id(), Some("wacid.ABC"));
        assert_eq!(MetaMediaKind::Recording.as_str(), "recording");
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["MetaMedia"]["kind"], json!("Recording"));
        // A numeric media id, nothing else.
        let ev = parse_one(
            json!({"calls": [{"id": "wacid.ABD", "event": "call_recording_available",
            "call_recording": {"audio": {"id": 1234567890123u64}}}]}),
        );
        assert_eq!(
            ev,
            CallEvent::MetaMedia {
                call_id: "wacid.ABD".into(),
                kind: MetaMediaKind::Recording,
                media_id: "1234567890123".into(),
                url: None,
                mime_type: None,
                sha256: None,
            }
        );
    }

    #[test]
    fn transcription_available() {
        let want = CallEvent::MetaMedia {
            call_id: "wacid.ABC".into(),
            kind: MetaMediaKind::Transcript,
            media_id: "MEDIA2".into(),
            url: Some("https://lookaside.fbsbx.com/t".into()),
            mime_type: Some("application/json".into()),
            sha256: None,
        };
        for key in ["call_transcript", "call_transcription"] {
            let ev = parse_one(json!({
                "metadata": metadata(),
                "calls": [{
                    "id": "wacid.ABC", "event": "call_transcription_available",
                    key: {"document": {"id": "MEDIA2", "mime_type": "application/json",
                                       "url": "https://lookaside.fbsbx.com/t"}}
                }]
            }));
            assert_eq!(ev, want, "{key}");
        }
        assert_eq!(MetaMediaKind::Transcript.as_str(), "transcript");
    }

    #[test]
    fn meta_media_without_media_id_is_ignored() {
        let p = "entry[0].changes[0].value.calls[0]";
        let rec = "call_recording_available";
        let tr = "call_transcription_available";
        let cases = [
            (
                json!({"id": "wacid.M", "event": rec, "call_recording": {"audio": {"url": "https://x"}}}),
                format!("{p}.call_recording.audio.id: missing"),
            ),
            (
                json!({"id": "wacid.M", "event": rec, "call_recording": {"audio": {"id": " "}}}),
                format!("{p}.call_recording.audio.id: empty"),
            ),
            (
                json!({"id": "wacid.M", "event": rec, "call_recording": {"audio": {"id": [1]}}}),
                format!("{p}.call_recording.audio.id: expected a string, got [1]"),
            ),
            (
                json!({"id": "wacid.M", "event": rec, "call_recording": {}}),
                format!("{p}.call_recording.audio: missing"),
            ),
            (
                json!({"id": "wacid.M", "event": rec, "call_recording": "MEDIA1"}),
                format!("{p}.call_recording: expected an object, got \"MEDIA1\""),
            ),
            (
                json!({"id": "wacid.M", "event": rec}),
                format!("{p}.call_recording: missing"),
            ),
            (
                json!({"id": "wacid.M", "event": tr, "call_transcript": {"document": {}}}),
                format!("{p}.call_transcript.document.id: missing"),
            ),
            (
                json!({"id": "wacid.M", "event": tr, "call_transcription": {"document": 3}}),
                format!("{p}.call_transcription.document: expected an object, got 3"),
            ),
            (
                json!({"id": "wacid.M", "event": tr}),
                format!("{p}.call_transcript: missing"),
            ),
        ];
        for (call, want) in cases {
            let ev = parse_one(json!({"metadata": metadata(), "calls": [call]}));
            assert_eq!(ev.call_id(), Some("wacid.M"));
            assert_eq!(ignored_what(&ev), want);
        }
    }

    #[test]
    fn messages_field_is_ignored() {
        let body = serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp", "metadata": metadata(),
                "messages": [{"from": USER, "id": "wamid.X", "type": "text", "text": {"body": "hola"}}]
            }}]}]
        }))
        .unwrap();
        assert_eq!(
            parse_webhook(&body).unwrap(),
            vec![CallEvent::Ignored {
                call_id: None,
                what: "field \"messages\"".into()
            }]
        );
    }

    #[test]
    fn username_only_user() {
        let uid = "US.13491208655302741918";
        let ev = parse_one(json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{"profile": {"name": "ana_rocks"}, "user_id": uid}],
            "calls": [{
                "id": "wacid.U1", "from_user_id": uid, "to": BIZ,
                "event": "connect", "timestamp": 1760000400, "direction": "USER_INITIATED",
                "session": {"sdp_type": "offer", "sdp": SDP}
            }]
        }));
        assert_eq!(
            ev,
            CallEvent::Offer {
                call_id: "wacid.U1".into(),
                customer: uid.into(),
                business: BIZ.into(),
                caller_name: Some("ana_rocks".into()),
                sdp: SDP.into(),
                timestamp: Some(1_760_000_400),
            }
        );
        // Business-initiated to a username: the answer names the user by to_user_id.
        let ev = parse_one(json!({
            "calls": [{"id": "wacid.U2", "from": BIZ, "to_user_id": uid, "event": "connect",
                       "session": {"sdp_type": "answer", "sdp": SDP}}]
        }));
        assert!(
            matches!(ev, CallEvent::Answer { ref customer, .. } if customer == uid),
            "{ev:?}"
        );
        // Only the contact knows who it is.
        let ev = parse_one(json!({
            "metadata": metadata(),
            "contacts": [{"profile": {"name": "ana_rocks"}, "user_id": uid}],
            "calls": [{"id": "wacid.U3", "to": BIZ, "event": "connect",
                       "session": {"sdp_type": "offer", "sdp": SDP}}]
        }));
        assert!(
            matches!(ev, CallEvent::Offer { ref customer, .. } if customer == uid),
            "{ev:?}"
        );
    }

    #[test]
    fn malformed_calls_name_path_and_problem() {
        let cases = [
            (
                json!({"id": "wacid.1", "event": "connect"}),
                "entry[0].changes[0].value.calls[0].session: missing",
            ),
            (
                json!({"id": "wacid.1", "event": "connect", "session": {"sdp_type": "offer"}}),
                "entry[0].changes[0].value.calls[0].session.sdp: missing",
            ),
            (
                json!({"id": "wacid.1", "event": "connect", "session": {"sdp_type": "offer", "sdp": " "}}),
                "entry[0].changes[0].value.calls[0].session.sdp: empty",
            ),
            (
                json!({"id": "wacid.1", "event": "connect", "session": {"sdp": SDP}}),
                "entry[0].changes[0].value.calls[0].session.sdp_type: missing",
            ),
            (
                json!({"id": "wacid.1", "event": "connect", "session": {"sdp_type": "pranswer", "sdp": SDP}}),
                "entry[0].changes[0].value.calls[0].session.sdp_type: unknown \"pranswer\" (expected \"offer\" or \"answer\")",
            ),
            (
                json!({"id": "wacid.1", "event": "connect", "session": "v=0"}),
                "entry[0].changes[0].value.calls[0].session: expected an object, got \"v=0\"",
            ),
            (
                json!({"id": 12, "event": "connect"}),
                "entry[0].changes[0].value.calls[0].id: expected a string, got 12",
            ),
            (
                json!({"id": "wacid.1"}),
                "entry[0].changes[0].value.calls[0].event: missing",
            ),
        ];
        for (call, want) in cases {
            let ev = parse_one(json!({"metadata": metadata(), "calls": [call]}));
            assert_eq!(ignored_what(&ev), want);
        }
        let ev = parse_one(json!({"calls": {"id": "x"}}));
        assert_eq!(
            ignored_what(&ev),
            "entry[0].changes[0].value.calls: expected an array, got {\"id\":\"x\"}"
        );
        let ev = parse_one(json!({"metadata": metadata()}));
        assert_eq!(
            ignored_what(&ev),
            "entry[0].changes[0].value: no calls or statuses"
        );
    }

    #[test]
    fn malformed_changes_degrade_to_ignored() {
        let body = br#"{"entry":[{"changes":[{"value":{}},{"field":"calls","value":[]},{"field":"calls"},{"field":7}]}]}"#;
        let evs = parse_webhook(body).unwrap();
        let whats: Vec<_> = evs.iter().map(ignored_what).collect();
        assert_eq!(
            whats,
            vec![
                "entry[0].changes[0].field: missing",
                "entry[0].changes[1].value: expected an object, got []",
                "entry[0].changes[2].value: missing",
                "entry[0].changes[3].field: expected a string, got 7",
            ]
        );
    }

    #[test]
    fn invalid_envelopes_are_errors() {
        assert!(matches!(parse_webhook(b""), Err(WebhookError::NotJson(_))));
        assert!(matches!(
            parse_webhook(b"{\"entry\":"),
            Err(WebhookError::NotJson(_))
        ));
        let cases: [(&[u8], &str); 6] = [
            (b"[1,2]", "$: expected an object, got [1,2]"),
            (b"{}", "entry: missing"),
            (
                br#"{"entry":{"id":"1"}}"#,
                "entry: expected an array, got {\"id\":\"1\"}",
            ),
            (br#"{"entry":[3]}"#, "entry[0]: expected an object, got 3"),
            (br#"{"entry":[{"id":"1"}]}"#, "entry[0].changes: missing"),
            (
                br#"{"entry":[{"changes":[{"field":"calls","value":{}}, "x"]}]}"#,
                "entry[0].changes[1]: expected an object, got \"x\"",
            ),
        ];
        for (body, want) in cases {
            let err = parse_webhook(body).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
        assert_eq!(parse_webhook(br#"{"entry":[]}"#).unwrap(), vec![]);
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(1000);
        let err = parse_webhook(format!("{{\"entry\":\"{long}\"}}").as_bytes()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.len() < 150, "{msg}");
        assert!(msg.ends_with('…'));
    }

    #[test]
    fn events_serialize() {
        let ev = parse_one(user_offer_value());
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["Offer"]["customer"], json!(USER));
        let st = serde_json::to_value(CallStatus::Other("X".into())).unwrap();
        assert_eq!(st, json!({"Other": "X"}));
    }

    #[test]
    fn numbers_as_strings_floats_and_out_of_range() {
        let obj = json!({"a": "17", "b": 17.9, "c": " 18.2 ", "d": 1e300, "e": "NaN",
                         "f": u64::MAX, "g": true, "h": "-5"});
        let obj = obj.as_object().unwrap();
        let got: Vec<_> = ["a", "b", "c", "d", "e", "f", "g", "h", "missing"]
            .iter()
            .map(|k| int_field(obj, k))
            .collect();
        assert_eq!(
            got,
            vec![
                Some(17),
                Some(17),
                Some(18),
                None,
                None,
                None,
                None,
                Some(-5),
                None
            ]
        );
    }

    // ---- never panic -------------------------------------------------------------------------

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// All kinds in one realistic body.
    fn rich_payload() -> Vec<u8> {
        let mut v = user_offer_value();
        let calls = v["calls"].as_array_mut().unwrap();
        calls.push(
            json!({"id": "wacid.B1", "from": BIZ, "to_user_id": "US.1", "event": "connect",
            "direction": "BUSINESS_INITIATED", "biz_opaque_callback_data": "o",
            "session": {"sdp_type": "answer", "sdp": SDP}}),
        );
        calls.push(
            json!({"id": "wacid.T1", "from": USER, "to": BIZ, "event": "terminate",
            "status": "FAILED", "start_time": "1", "end_time": 2.5, "duration": "1",
            "errors": [{"code": 1, "message": "m", "error_data": {"details": "d"}}]}),
        );
        calls.push(json!({"id": "wacid.R0", "event": "call_recording_available"}));
        calls.push(
            json!({"id": "wacid.R1", "event": "call_recording_available",
            "call_recording": {"audio": {"id": "M1", "sha256": "ab", "mime_type": "audio/ogg",
                                         "url": "https://example.invalid/r"}}}),
        );
        calls.push(
            json!({"id": "wacid.R1", "event": "call_transcription_available",
            "call_transcript": {"document": {"id": 7, "mime_type": "application/json"}}}),
        );
        v["statuses"] = json!([{"id": "wacid.B1", "type": "call", "status": "RINGING",
            "timestamp": "3", "recipient_id": USER}]);
        v["messages"] = json!([
            {"from": USER, "id": "wamid.1", "type": "text", "text": {"body": "x"}},
            {"from": USER, "id": "wamid.2", "timestamp": "4", "type": "interactive",
             "context": {"id": "wamid.0"},
             "interactive": {"type": "call_permission_reply", "call_permission_reply": {
                 "response": "accept", "is_permanent": false, "expiration_timestamp": 5,
                 "response_source": "user_action"}}}
        ]);
        v["errors"] = json!([{"code": 2, "message": "e"}]);
        envelope(v)
    }

    #[test]
    fn rich_payload_parses() {
        let evs = parse_webhook(&rich_payload()).unwrap();
        assert_eq!(evs.len(), 9, "{evs:#?}");
        assert!(matches!(
            &evs[4],
            CallEvent::MetaMedia {
                kind: MetaMediaKind::Recording,
                ..
            }
        ));
        assert!(matches!(
            &evs[5],
            CallEvent::MetaMedia {
                kind: MetaMediaKind::Transcript,
                ..
            }
        ));
        assert!(
            matches!(
                &evs[8],
                CallEvent::PermissionReply {
                    expires_at: Some(5),
                    ..
                }
            ),
            "{evs:#?}"
        );
        assert!(
            matches!(&evs[2], CallEvent::Terminate { errors, end_time: Some(2), .. } if errors.len() == 2)
        );
    }

    #[test]
    fn truncated_prefixes_never_panic() {
        let body = rich_payload();
        for n in 0..body.len() {
            let _ = parse_webhook(&body[..n]);
        }
    }

    #[test]
    fn byte_mutations_never_panic() {
        let body = rich_payload();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let interesting = b"{}[]\":,0-9.e\\u\xff\x00 ";
        for _ in 0..3000 {
            let mut b = body.clone();
            for _ in 0..=rng.below(4) {
                let i = rng.below(b.len());
                match rng.below(4) {
                    0 => b[i] ^= 1 << rng.below(8),
                    1 => b[i] = interesting[rng.below(interesting.len())],
                    2 => {
                        b.remove(i);
                    }
                    _ => b.insert(i, interesting[rng.below(interesting.len())]),
                }
            }
            let _ = parse_webhook(&b);
        }
    }

    /// Byte mutations mostly break the JSON; these keep it valid and change shapes and types.
    #[test]
    fn structural_mutations_never_panic() {
        fn replacement(rng: &mut XorShift) -> Value {
            match rng.below(10) {
                0 => Value::Null,
                1 => json!(true),
                2 => json!(-1),
                3 => json!(1e300),
                4 => json!(""),
                5 => json!("  "),
                6 => json!([]),
                7 => json!({}),
                8 => json!(u64::MAX),
                _ => json!("é\u{0}x"),
            }
        }
        fn count(v: &Value) -> usize {
            1 + match v {
                Value::Array(a) => a.iter().map(count).sum(),
                Value::Object(o) => o.values().map(count).sum(),
                _ => 0,
            }
        }
        fn mutate(v: &mut Value, target: &mut usize, rng: &mut XorShift) {
            if *target == 0 {
                *v = replacement(rng);
                *target = usize::MAX;
                return;
            }
            *target -= 1;
            match v {
                Value::Array(a) => a.iter_mut().for_each(|c| mutate(c, target, rng)),
                Value::Object(o) => o.values_mut().for_each(|c| mutate(c, target, rng)),
                _ => {}
            }
        }
        let base: Value = serde_json::from_slice(&rich_payload()).unwrap();
        let nodes = count(&base);
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for _ in 0..2000 {
            let mut v = base.clone();
            for _ in 0..=rng.below(3) {
                let mut target = rng.below(nodes);
                mutate(&mut v, &mut target, &mut rng);
            }
            let _ = parse_webhook(&serde_json::to_vec(&v).unwrap());
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse_webhook(deep.as_bytes()),
            Err(WebhookError::NotJson(_))
        ));
    }
}
