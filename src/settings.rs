//! Call settings of the business number: the BSP's admin `call-settings` endpoint, or Meta's
//! Cloud API `POST|GET /{phone-number-id}/settings`.
//!
//! The BSP's shape is Meta's exactly:
//!
//! ```json
//! {"status":"ENABLED","call_icon_visibility":"DEFAULT",
//!  "call_hours":{"status":"ENABLED","timezone_id":"America/Manaus",
//!                "weekly_operating_hours":[{"day_of_week":"MONDAY","open_time":"0400","close_time":"1020"}],
//!                "holiday_schedule":[{"date":"2027-01-01","start_time":"0000","end_time":"2359"}]},
//!  "callback_permission_status":"ENABLED"}
//! ```
//!
//! Meta's Cloud API takes that same flat document wrapped as `{"calling": {...}}` ([`meta_body`];
//! [`from_meta_body`] reads a GET answer), plus keys only Meta knows:
//!
//! ```json
//! {"call_icons":{"restrict_to_user_countries":["MX","BR"]},
//!  "audio":{"additional_codecs":["PCMA","PCMU"]},
//!  "sip":{"status":"DISABLED","servers":[{"hostname":"sip.example.com","port":5061,
//!         "request_uri_user_params":{"trunk":"main"}}]},
//!  "voicemail":{"status":"ENABLED","triggers":{...},
//!               "audio":{"default":{"announcement_media_id":"1234567890","timeout_seconds":20}}}}
//! ```
//!
//! [`check_for_provider`] refuses those keys when the provider is the BSP. `voicemail.triggers`
//! is kept as given (any list or object): its inner shape is not described in the notes wacall
//! was built from, so it is passed through rather than guessed at.
//!
//! Every top-level field is optional so that a partial update can be sent. Files are read with
//! [`parse_settings`] (JSON or TOML), which walks the document by hand so that a wrong field is
//! named by its path, and refuses keys it does not know; [`validate`] then checks the rules
//! WhatsApp enforces and reports all problems at once; [`warnings`] lists things that are valid
//! but probably not meant (such as deleting the stored holidays, or SIP turning off the call
//! APIs). Meta's GET answer is read leniently instead: keys wacall does not know are collected in
//! [`CallSettings::unknown`] rather than refused. [`describe`] renders settings for people.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// At most this many `weekly_operating_hours` entries per day.
pub const MAX_ENTRIES_PER_DAY: usize = 2;
/// At most this many `holiday_schedule` entries.
pub const MAX_HOLIDAYS: usize = 20;
/// At most this many `sip.servers`: wacall's own sanity bound (Meta documents none).
pub const MAX_SIP_SERVERS: usize = 10;

/// `ENABLED` | `DISABLED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Toggle {
    Enabled,
    Disabled,
}

impl Toggle {
    const NAMES: &'static [&'static str] = &["ENABLED", "DISABLED"];

    fn from_name(s: &str) -> Option<Self> {
        match s {
            "ENABLED" => Some(Toggle::Enabled),
            "DISABLED" => Some(Toggle::Disabled),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Toggle::Enabled => "ENABLED",
            Toggle::Disabled => "DISABLED",
        }
    }
}

/// `DEFAULT` | `DISABLE_ALL`: whether the call button shows in the WhatsApp chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallIconVisibility {
    Default,
    DisableAll,
}

impl CallIconVisibility {
    const NAMES: &'static [&'static str] = &["DEFAULT", "DISABLE_ALL"];

    fn from_name(s: &str) -> Option<Self> {
        match s {
            "DEFAULT" => Some(CallIconVisibility::Default),
            "DISABLE_ALL" => Some(CallIconVisibility::DisableAll),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallIconVisibility::Default => "DEFAULT",
            CallIconVisibility::DisableAll => "DISABLE_ALL",
        }
    }
}

/// `PCMA` | `PCMU`: audio codecs Meta may offer besides Opus (which is always on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    #[serde(rename = "PCMA")]
    Pcma,
    #[serde(rename = "PCMU")]
    Pcmu,
}

impl Codec {
    const NAMES: &'static [&'static str] = &["PCMA", "PCMU"];

    fn from_name(s: &str) -> Option<Self> {
        match s {
            "PCMA" => Some(Codec::Pcma),
            "PCMU" => Some(Codec::Pcmu),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Pcma => "PCMA",
            Codec::Pcmu => "PCMU",
        }
    }
}

/// `MONDAY` .. `SUNDAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DayOfWeek {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl DayOfWeek {
    const NAMES: &'static [&'static str] = &[
        "MONDAY",
        "TUESDAY",
        "WEDNESDAY",
        "THURSDAY",
        "FRIDAY",
        "SATURDAY",
        "SUNDAY",
    ];
    const ALL: [DayOfWeek; 7] = [
        DayOfWeek::Monday,
        DayOfWeek::Tuesday,
        DayOfWeek::Wednesday,
        DayOfWeek::Thursday,
        DayOfWeek::Friday,
        DayOfWeek::Saturday,
        DayOfWeek::Sunday,
    ];

    fn from_name(s: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The settings document. `None` fields are not sent (left as stored by the BSP or Meta).
///
/// `call_icons`, `audio`, `sip` and `voicemail` are Meta's Cloud API only
/// ([`check_for_provider`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Toggle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_icon_visibility: Option<CallIconVisibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_hours: Option<CallHours>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_permission_status: Option<Toggle>,
    /// Meta only: where the call icon shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_icons: Option<CallIcons>,
    /// Meta only: codecs besides Opus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Audio>,
    /// Meta only: calls delivered over SIP instead of the Graph call APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip: Option<Sip>,
    /// Meta only: voicemail for calls nobody takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voicemail: Option<Voicemail>,
    /// Keys of a Meta GET answer that wacall does not know, by their path in that answer
    /// (`calling.some_new_key`, `calling.sip.servers[0].transport`), with their values. Only
    /// [`from_meta_body`] fills it ([`parse_settings`] refuses unknown keys instead); it is never
    /// serialized, so it is not sent back.
    #[serde(skip)]
    pub unknown: BTreeMap<String, Value>,
}

/// `call_icons` (Meta only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallIcons {
    /// ISO 3166-1 alpha-2 codes (`"MX"`): the call icon shows only to users in these countries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrict_to_user_countries: Option<Vec<String>>,
}

/// `audio` (Meta only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audio {
    /// Offered besides Opus, which is always on and is not listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_codecs: Option<Vec<Codec>>,
}

/// `sip` (Meta only). With `status` `ENABLED` Meta sends the number's calls to these servers and
/// the Graph call APIs wacall uses stop working (error 131055).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sip {
    pub status: Toggle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<SipServer>>,
}

/// One `sip.servers` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipServer {
    /// A bare host name or IP address (no scheme, port or path).
    pub hostname: String,
    /// 1..=65535 ([`validate`] refuses 0).
    pub port: u16,
    /// Parameters added to the user part of the request URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uri_user_params: Option<BTreeMap<String, String>>,
}

/// `voicemail` (Meta only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voicemail {
    pub status: Toggle,
    /// When voicemail answers. Kept as given (a list or an object): its inner shape is not
    /// documented in the notes wacall follows, so it is passed through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<VoicemailAudio>,
}

/// `voicemail.audio`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoicemailAudio {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<VoicemailGreeting>,
}

/// `voicemail.audio.default`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoicemailGreeting {
    /// The id of an uploaded media file played as the greeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announcement_media_id: Option<String>,
    /// Seconds (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

/// `call_hours`. Sending it replaces the stored one as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallHours {
    pub status: Toggle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly_operating_hours: Option<Vec<WeeklyHours>>,
    /// `None` (omitted) deletes the holidays stored on the number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holiday_schedule: Option<Vec<Holiday>>,
}

impl CallHours {
    /// Whether calls are within the hours at `at`: hours switched off count as always open; a
    /// holiday window closes its date's hours; with weekly hours, one of that day's windows must
    /// hold the local time (in `timezone_id`, UTC when absent). Values that do not parse match
    /// nothing (`validate` reports them before the settings are used).
    pub fn is_open(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        use chrono::{Datelike, Timelike};
        if self.status != Toggle::Enabled {
            return true;
        }
        let tz: chrono_tz::Tz = self
            .timezone_id
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(chrono_tz::UTC);
        let local = at.with_timezone(&tz);
        let minute = local.hour() * 60 + local.minute();
        let within = |from: &str, to: &str| matches!((parse_hhmm(from), parse_hhmm(to)), (Some(a), Some(b)) if a <= minute && minute < b);
        let today = local.date_naive();
        let holiday = self
            .holiday_schedule
            .iter()
            .flatten()
            .any(|h| parse_date(&h.date) == Some(today) && within(&h.start_time, &h.end_time));
        if holiday {
            return false;
        }
        let Some(weekly) = &self.weekly_operating_hours else {
            return true;
        };
        let day = DayOfWeek::ALL[local.weekday().num_days_from_monday() as usize];
        weekly
            .iter()
            .any(|w| w.day_of_week == day && within(&w.open_time, &w.close_time))
    }
}

/// One `weekly_operating_hours` entry; times are `HHMM` strings as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyHours {
    pub day_of_week: DayOfWeek,
    pub open_time: String,
    pub close_time: String,
}

/// One `holiday_schedule` entry; `date` is `YYYY-MM-DD`, times `HHMM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    pub date: String,
    pub start_time: String,
    pub end_time: String,
}

/// One problem in a settings document, naming the field path and the offending value.
///
/// Displays as `call_hours.weekly_operating_hours[1].close_time: "2460" is not a valid HHMM time`
/// (or `path: problem` when there is no value to show).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    /// Field path, e.g. `call_hours.holiday_schedule[0].date`; `(document)` for the whole file.
    pub path: String,
    /// The offending value as JSON (strings quoted), or empty.
    pub value: String,
    /// What is wrong, phrased to follow the value.
    pub problem: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.path, self.problem)
        } else {
            write!(f, "{}: {} {}", self.path, self.value, self.problem)
        }
    }
}

impl SettingsError {
    fn new(path: impl Into<String>, value: impl Into<String>, problem: impl Into<String>) -> Self {
        SettingsError {
            path: path.into(),
            value: value.into(),
            problem: problem.into(),
        }
    }

    fn at(path: &str, value: &Value, problem: impl Into<String>) -> Self {
        Self::new(path, show(value), problem)
    }
}

/// A value as shown in messages: JSON, shortened.
fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn quoted(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parses a settings document. `format_hint` is `"json"` or `"toml"` (usually the file
/// extension); without it, a document starting with `{` is JSON and anything else TOML.
///
/// The text is first read into a generic value, then walked field by field, so a wrong enum
/// value or an unknown key comes back as an error naming its path. Value rules (times, dates,
/// time zone, counts) are [`validate`]'s job.
pub fn parse_settings(
    text: &str,
    format_hint: Option<&str>,
) -> Result<CallSettings, SettingsError> {
    let format = match format_hint.map(|h| h.trim().trim_start_matches('.').to_ascii_lowercase()) {
        Some(h) if h == "json" => "json",
        Some(h) if h == "toml" => "toml",
        Some(other) => {
            return Err(SettingsError::new(
                "(document)",
                quoted(&other),
                "is not a known settings format (use json or toml)",
            ));
        }
        None if text.trim_start().starts_with('{') => "json",
        None => "toml",
    };
    let value: Value = if format == "json" {
        serde_json::from_str(text)
            .map_err(|e| SettingsError::new("(document)", "", format!("is not valid JSON: {e}")))?
    } else {
        toml::from_str(text).map_err(|e| {
            SettingsError::new(
                "(document)",
                "",
                format!("is not valid TOML: {}", e.to_string().trim_end()),
            )
        })?
    };
    settings_from_value(&value)
}

/// Builds settings from an already parsed JSON value, naming the path of the first wrong field.
/// Unknown keys are errors (this reads the operator's file).
pub fn settings_from_value(v: &Value) -> Result<CallSettings, SettingsError> {
    walk_settings(v, &mut Walk::strict())
}

/// The top-level keys of a settings document.
const TOP_KEYS: &[&str] = &[
    "status",
    "call_icon_visibility",
    "call_hours",
    "callback_permission_status",
    "call_icons",
    "audio",
    "sip",
    "voicemail",
];

/// How the walker treats keys it does not know: the operator's file refuses them; Meta's answer
/// collects them (by path, with `prefix` in front) and goes on.
struct Walk {
    lenient: bool,
    prefix: &'static str,
    unknown: BTreeMap<String, Value>,
}

impl Walk {
    fn strict() -> Self {
        Walk {
            lenient: false,
            prefix: "",
            unknown: BTreeMap::new(),
        }
    }

    fn check_keys(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        prefix: &str,
        known: &[&str],
    ) -> Result<(), SettingsError> {
        if !self.lenient {
            return check_keys(obj, prefix, known);
        }
        for (key, value) in obj {
            if !known.contains(&key.as_str()) {
                self.unknown
                    .insert(format!("{}{prefix}{key}", self.prefix), value.clone());
            }
        }
        Ok(())
    }
}

fn walk_settings(v: &Value, w: &mut Walk) -> Result<CallSettings, SettingsError> {
    let obj = object(v, "(document)")?;
    w.check_keys(obj, "", TOP_KEYS)?;
    let mut s = CallSettings::default();
    if let Some(x) = present(obj, "status") {
        s.status = Some(enum_field(x, "status", Toggle::NAMES, Toggle::from_name)?);
    }
    if let Some(x) = present(obj, "call_icon_visibility") {
        s.call_icon_visibility = Some(enum_field(
            x,
            "call_icon_visibility",
            CallIconVisibility::NAMES,
            CallIconVisibility::from_name,
        )?);
    }
    if let Some(x) = present(obj, "callback_permission_status") {
        s.callback_permission_status = Some(enum_field(
            x,
            "callback_permission_status",
            Toggle::NAMES,
            Toggle::from_name,
        )?);
    }
    if let Some(x) = present(obj, "call_hours") {
        s.call_hours = Some(call_hours_from_value(x, w)?);
    }
    if let Some(x) = present(obj, "call_icons") {
        s.call_icons = Some(call_icons_from_value(x, w)?);
    }
    if let Some(x) = present(obj, "audio") {
        s.audio = Some(audio_from_value(x, w)?);
    }
    if let Some(x) = present(obj, "sip") {
        s.sip = Some(sip_from_value(x, w)?);
    }
    if let Some(x) = present(obj, "voicemail") {
        s.voicemail = Some(voicemail_from_value(x, w)?);
    }
    Ok(s)
}

fn call_icons_from_value(v: &Value, w: &mut Walk) -> Result<CallIcons, SettingsError> {
    const P: &str = "call_icons.restrict_to_user_countries";
    let obj = object(v, "call_icons")?;
    w.check_keys(obj, "call_icons.", &["restrict_to_user_countries"])?;
    let restrict_to_user_countries = match present(obj, "restrict_to_user_countries") {
        Some(x) => Some(
            array(x, P)?
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    c.as_str().map(str::to_owned).ok_or_else(|| {
                        SettingsError::at(
                            &format!("{P}[{i}]"),
                            c,
                            "is not a string: write country codes quoted, like \"MX\"",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    Ok(CallIcons {
        restrict_to_user_countries,
    })
}

fn audio_from_value(v: &Value, w: &mut Walk) -> Result<Audio, SettingsError> {
    const P: &str = "audio.additional_codecs";
    let obj = object(v, "audio")?;
    w.check_keys(obj, "audio.", &["additional_codecs"])?;
    let additional_codecs = match present(obj, "additional_codecs") {
        Some(x) => {
            let items = array(x, P)?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = format!("{P}[{i}]");
                if item
                    .as_str()
                    .is_some_and(|c| c.eq_ignore_ascii_case("opus"))
                {
                    return Err(SettingsError::at(
                        &p,
                        item,
                        "is not needed: Opus is always on, so additional_codecs lists only the \
                         extra ones (PCMA, PCMU)",
                    ));
                }
                out.push(enum_field(item, &p, Codec::NAMES, Codec::from_name)?);
            }
            Some(out)
        }
        None => None,
    };
    Ok(Audio { additional_codecs })
}

fn sip_from_value(v: &Value, w: &mut Walk) -> Result<Sip, SettingsError> {
    let obj = object(v, "sip")?;
    w.check_keys(obj, "sip.", &["status", "servers"])?;
    let status = status_field(obj, "sip")?;
    let servers = match present(obj, "servers") {
        Some(x) => {
            let items = array(x, "sip.servers")?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = format!("sip.servers[{i}]");
                let o = object(item, &p)?;
                w.check_keys(
                    o,
                    &format!("{p}."),
                    &["hostname", "port", "request_uri_user_params"],
                )?;
                let hostname =
                    string_field(required(o, &p, "hostname")?, &format!("{p}.hostname"))?;
                let port = port_field(required(o, &p, "port")?, &format!("{p}.port"))?;
                let request_uri_user_params = match present(o, "request_uri_user_params") {
                    Some(x) => {
                        let pp = format!("{p}.request_uri_user_params");
                        let params = object(x, &pp)?;
                        let mut out = BTreeMap::new();
                        for (k, val) in params {
                            let value = val.as_str().map(str::to_owned).ok_or_else(|| {
                                SettingsError::at(
                                    &format!("{pp}.{k}"),
                                    val,
                                    "is not a string: parameter values are quoted strings",
                                )
                            })?;
                            out.insert(k.clone(), value);
                        }
                        Some(out)
                    }
                    None => None,
                };
                out.push(SipServer {
                    hostname,
                    port,
                    request_uri_user_params,
                });
            }
            Some(out)
        }
        None => None,
    };
    Ok(Sip { status, servers })
}

fn voicemail_from_value(v: &Value, w: &mut Walk) -> Result<Voicemail, SettingsError> {
    let obj = object(v, "voicemail")?;
    w.check_keys(obj, "voicemail.", &["status", "triggers", "audio"])?;
    let status = status_field(obj, "voicemail")?;
    let triggers = match present(obj, "triggers") {
        Some(x) if x.is_array() || x.is_object() => Some(x.clone()),
        Some(x) => {
            return Err(SettingsError::at(
                "voicemail.triggers",
                x,
                "is not a list or an object",
            ));
        }
        None => None,
    };
    let audio = match present(obj, "audio") {
        Some(x) => {
            let a = object(x, "voicemail.audio")?;
            w.check_keys(a, "voicemail.audio.", &["default"])?;
            let default = match present(a, "default") {
                Some(x) => {
                    const P: &str = "voicemail.audio.default";
                    let d = object(x, P)?;
                    w.check_keys(
                        d,
                        "voicemail.audio.default.",
                        &["announcement_media_id", "timeout_seconds"],
                    )?;
                    let announcement_media_id = match present(d, "announcement_media_id") {
                        Some(x) => Some(x.as_str().map(str::to_owned).ok_or_else(|| {
                            SettingsError::at(
                                &format!("{P}.announcement_media_id"),
                                x,
                                "is not a string: write media ids quoted, like \"1234567890\"",
                            )
                        })?),
                        None => None,
                    };
                    let timeout_seconds = match present(d, "timeout_seconds") {
                        Some(x) => {
                            Some(x.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(
                                || {
                                    SettingsError::at(
                                        &format!("{P}.timeout_seconds"),
                                        x,
                                        "is not a whole number of seconds",
                                    )
                                },
                            )?)
                        }
                        None => None,
                    };
                    Some(VoicemailGreeting {
                        announcement_media_id,
                        timeout_seconds,
                    })
                }
                None => None,
            };
            Some(VoicemailAudio { default })
        }
        None => None,
    };
    Ok(Voicemail {
        status,
        triggers,
        audio,
    })
}

/// The required `status` of the object at `parent`.
fn status_field(
    obj: &serde_json::Map<String, Value>,
    parent: &str,
) -> Result<Toggle, SettingsError> {
    match present(obj, "status") {
        Some(x) => enum_field(
            x,
            &format!("{parent}.status"),
            Toggle::NAMES,
            Toggle::from_name,
        ),
        None => Err(SettingsError::new(
            format!("{parent}.status"),
            "",
            "is missing (ENABLED or DISABLED)",
        )),
    }
}

/// A port: an integer up to 65535 (0 is refused by `validate`, with the other value rules).
fn port_field(v: &Value, path: &str) -> Result<u16, SettingsError> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| SettingsError::at(path, v, "is not a port number (an integer 1-65535)"))
}

fn call_hours_from_value(v: &Value, w: &mut Walk) -> Result<CallHours, SettingsError> {
    let obj = object(v, "call_hours")?;
    w.check_keys(
        obj,
        "call_hours.",
        &[
            "status",
            "timezone_id",
            "weekly_operating_hours",
            "holiday_schedule",
        ],
    )?;
    let status = match present(obj, "status") {
        Some(x) => enum_field(x, "call_hours.status", Toggle::NAMES, Toggle::from_name)?,
        None => {
            return Err(SettingsError::new(
                "call_hours.status",
                "",
                "is missing (ENABLED or DISABLED)",
            ));
        }
    };
    let timezone_id = match present(obj, "timezone_id") {
        Some(x) => Some(string_field(x, "call_hours.timezone_id")?),
        None => None,
    };
    let weekly_operating_hours = match present(obj, "weekly_operating_hours") {
        Some(x) => {
            let items = array(x, "call_hours.weekly_operating_hours")?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = format!("call_hours.weekly_operating_hours[{i}]");
                let o = object(item, &p)?;
                w.check_keys(
                    o,
                    &format!("{p}."),
                    &["day_of_week", "open_time", "close_time"],
                )?;
                let day = enum_field(
                    required(o, &p, "day_of_week")?,
                    &format!("{p}.day_of_week"),
                    DayOfWeek::NAMES,
                    DayOfWeek::from_name,
                )?;
                out.push(WeeklyHours {
                    day_of_week: day,
                    open_time: time_string(
                        required(o, &p, "open_time")?,
                        &format!("{p}.open_time"),
                    )?,
                    close_time: time_string(
                        required(o, &p, "close_time")?,
                        &format!("{p}.close_time"),
                    )?,
                });
            }
            Some(out)
        }
        None => None,
    };
    let holiday_schedule = match present(obj, "holiday_schedule") {
        Some(x) => {
            let items = array(x, "call_hours.holiday_schedule")?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = format!("call_hours.holiday_schedule[{i}]");
                let o = object(item, &p)?;
                w.check_keys(o, &format!("{p}."), &["date", "start_time", "end_time"])?;
                out.push(Holiday {
                    date: date_string(required(o, &p, "date")?, &format!("{p}.date"))?,
                    start_time: time_string(
                        required(o, &p, "start_time")?,
                        &format!("{p}.start_time"),
                    )?,
                    end_time: time_string(required(o, &p, "end_time")?, &format!("{p}.end_time"))?,
                });
            }
            Some(out)
        }
        None => None,
    };
    Ok(CallHours {
        status,
        timezone_id,
        weekly_operating_hours,
        holiday_schedule,
    })
}

/// A key that is present and not `null`.
fn present<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn required<'a>(
    obj: &'a serde_json::Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<&'a Value, SettingsError> {
    present(obj, key).ok_or_else(|| SettingsError::new(format!("{parent}.{key}"), "", "is missing"))
}

fn object<'a>(
    v: &'a Value,
    path: &str,
) -> Result<&'a serde_json::Map<String, Value>, SettingsError> {
    v.as_object()
        .ok_or_else(|| SettingsError::at(path, v, "is not an object (a table in TOML)"))
}

fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, SettingsError> {
    v.as_array()
        .ok_or_else(|| SettingsError::at(path, v, "is not a list"))
}

fn check_keys(
    obj: &serde_json::Map<String, Value>,
    prefix: &str,
    known: &[&str],
) -> Result<(), SettingsError> {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            return Err(SettingsError::new(
                format!("{prefix}{key}"),
                "",
                format!(
                    "is not a known field (expected one of {})",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn string_field(v: &Value, path: &str) -> Result<String, SettingsError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| SettingsError::at(path, v, "is not a string"))
}

fn enum_field<T>(
    v: &Value,
    path: &str,
    names: &[&str],
    from_name: impl Fn(&str) -> Option<T>,
) -> Result<T, SettingsError> {
    let problem = || format!("is not one of {}", names.join(", "));
    let s = v
        .as_str()
        .ok_or_else(|| SettingsError::at(path, v, problem()))?;
    from_name(s).ok_or_else(|| SettingsError::at(path, v, problem()))
}

/// Times must be strings: `0400` is not even a valid TOML integer, and `400` would be ambiguous.
fn time_string(v: &Value, path: &str) -> Result<String, SettingsError> {
    v.as_str().map(str::to_owned).ok_or_else(|| {
        SettingsError::at(path, v, "is not a string: write times as quoted \"HHMM\"")
    })
}

/// Dates are strings; a bare TOML date (`date = 2027-01-01`) is accepted too.
fn date_string(v: &Value, path: &str) -> Result<String, SettingsError> {
    if let Some(s) = v.as_str() {
        return Ok(s.to_owned());
    }
    // toml's serde form of a datetime value.
    if let Some(o) = v.as_object()
        && o.len() == 1
        && let Some(Value::String(s)) = o.get("$__toml_private_datetime")
    {
        return Ok(s.clone());
    }
    Err(SettingsError::at(
        path,
        v,
        "is not a date string: write dates as \"YYYY-MM-DD\"",
    ))
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// `HHMM` 24-hour time as minutes since midnight.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    if s.len() != 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: u32 = s[..2].parse().ok()?;
    let m: u32 = s[2..].parse().ok()?;
    (h <= 23 && m <= 59).then_some(h * 60 + m)
}

/// Strict `YYYY-MM-DD` (a real calendar date).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn time_check(errs: &mut Vec<SettingsError>, path: String, s: &str) -> Option<u32> {
    let t = parse_hhmm(s);
    if t.is_none() {
        errs.push(SettingsError::new(
            path,
            quoted(s),
            "is not a valid HHMM time (00-23 hours, 00-59 minutes)",
        ));
    }
    t
}

/// Checks the rules WhatsApp enforces, reporting every problem found. `today` is the date
/// holidays may not precede (use the business's local date).
pub fn validate(s: &CallSettings, today: NaiveDate) -> Result<(), Vec<SettingsError>> {
    let mut errs = Vec::new();
    if let Some(ch) = &s.call_hours {
        validate_call_hours(ch, today, &mut errs);
    }
    if let Some(countries) = s
        .call_icons
        .as_ref()
        .and_then(|c| c.restrict_to_user_countries.as_ref())
    {
        validate_countries(countries, &mut errs);
    }
    if let Some(codecs) = s.audio.as_ref().and_then(|a| a.additional_codecs.as_ref()) {
        for (i, c) in codecs.iter().enumerate() {
            if let Some(j) = codecs[..i].iter().position(|d| d == c) {
                errs.push(SettingsError::new(
                    format!("audio.additional_codecs[{i}]"),
                    quoted(c.as_str()),
                    format!("duplicates audio.additional_codecs[{j}]"),
                ));
            }
        }
    }
    if let Some(sip) = &s.sip {
        validate_sip(sip, &mut errs);
    }
    if let Some(greeting) = s
        .voicemail
        .as_ref()
        .and_then(|v| v.audio.as_ref())
        .and_then(|a| a.default.as_ref())
    {
        const P: &str = "voicemail.audio.default";
        if let Some(id) = &greeting.announcement_media_id
            && (id.trim().is_empty() || id.chars().any(char::is_whitespace))
        {
            errs.push(SettingsError::new(
                format!("{P}.announcement_media_id"),
                quoted(id),
                "is not a media id (the id of an uploaded audio file, no spaces)",
            ));
        }
        if greeting.timeout_seconds == Some(0) {
            errs.push(SettingsError::new(
                format!("{P}.timeout_seconds"),
                "0",
                "must be at least 1 second",
            ));
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// ISO 3166-1 alpha-2 shape (two capital letters; whether the code is assigned is not checked),
/// no duplicates.
fn validate_countries(countries: &[String], errs: &mut Vec<SettingsError>) {
    const P: &str = "call_icons.restrict_to_user_countries";
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in countries.iter().enumerate() {
        let p = format!("{P}[{i}]");
        let two_letters = c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic());
        if two_letters && !c.bytes().all(|b| b.is_ascii_uppercase()) {
            errs.push(SettingsError::new(
                p,
                quoted(c),
                format!(
                    "is not an ISO 3166-1 alpha-2 country code: write it in capitals ({})",
                    quoted(&c.to_ascii_uppercase())
                ),
            ));
        } else if !two_letters {
            errs.push(SettingsError::new(
                p,
                quoted(c),
                "is not an ISO 3166-1 alpha-2 country code (two capital letters, like \"MX\")",
            ));
        } else if let Some(j) = seen.get(c.as_str()) {
            errs.push(SettingsError::new(
                p,
                quoted(c),
                format!("duplicates {P}[{j}]"),
            ));
        } else {
            seen.insert(c, i);
        }
    }
}

fn validate_sip(sip: &Sip, errs: &mut Vec<SettingsError>) {
    let Some(servers) = &sip.servers else {
        return;
    };
    if servers.len() > MAX_SIP_SERVERS {
        errs.push(SettingsError::new(
            "sip.servers",
            format!("({} entries)", servers.len()),
            format!("has more than {MAX_SIP_SERVERS} entries"),
        ));
    }
    let mut seen: BTreeMap<(String, u16), usize> = BTreeMap::new();
    for (i, server) in servers.iter().enumerate() {
        let p = format!("sip.servers[{i}]");
        let host = server.hostname.as_str();
        let ipv6 = |h: &str| h.parse::<std::net::Ipv6Addr>().is_ok();
        let bracketed_ipv6 = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(ipv6);
        if host.trim().is_empty() {
            errs.push(SettingsError::new(
                format!("{p}.hostname"),
                quoted(host),
                "is empty: give the SIP server's host name or IP address",
            ));
        } else if host.chars().any(|c| c.is_whitespace() || c == '/')
            || (host.contains(':') && !ipv6(host) && !bracketed_ipv6)
        {
            errs.push(SettingsError::new(
                format!("{p}.hostname"),
                quoted(host),
                "is not a bare host name (no scheme, port or path: the port goes in port)",
            ));
        }
        if server.port == 0 {
            errs.push(SettingsError::new(
                format!("{p}.port"),
                "0",
                "is not a port number (an integer 1-65535)",
            ));
        }
        if server
            .request_uri_user_params
            .as_ref()
            .is_some_and(|m| m.keys().any(|k| k.trim().is_empty()))
        {
            errs.push(SettingsError::new(
                format!("{p}.request_uri_user_params"),
                "",
                "has a parameter with an empty name",
            ));
        }
        let key = (host.to_ascii_lowercase(), server.port);
        if let Some(j) = seen.get(&key) {
            errs.push(SettingsError::new(
                p,
                quoted(&format!("{host}:{}", server.port)),
                format!("duplicates sip.servers[{j}]"),
            ));
        } else {
            seen.insert(key, i);
        }
    }
}

fn validate_call_hours(ch: &CallHours, today: NaiveDate, errs: &mut Vec<SettingsError>) {
    let enabled = ch.status == Toggle::Enabled;
    match &ch.timezone_id {
        Some(tz) if tz.parse::<chrono_tz::Tz>().is_err() => {
            errs.push(SettingsError::new(
                "call_hours.timezone_id",
                quoted(tz),
                "is not an IANA time zone name (like \"America/Mexico_City\")",
            ));
        }
        Some(_) => {}
        None if enabled => errs.push(SettingsError::new(
            "call_hours.timezone_id",
            "",
            "is missing (required when call_hours.status is ENABLED)",
        )),
        None => {}
    }

    let weekly = ch.weekly_operating_hours.as_deref().unwrap_or_default();
    if enabled && weekly.is_empty() {
        errs.push(SettingsError::new(
            "call_hours.weekly_operating_hours",
            if ch.weekly_operating_hours.is_some() {
                "[]"
            } else {
                ""
            },
            "must list at least one entry when call_hours.status is ENABLED",
        ));
    }
    // Valid ranges per day, with their index, for the count and overlap checks.
    let mut per_day: BTreeMap<DayOfWeek, Vec<(usize, u32, u32)>> = BTreeMap::new();
    let mut count: BTreeMap<DayOfWeek, usize> = BTreeMap::new();
    for (i, w) in weekly.iter().enumerate() {
        let p = format!("call_hours.weekly_operating_hours[{i}]");
        let n = count.entry(w.day_of_week).or_default();
        *n += 1;
        if *n == MAX_ENTRIES_PER_DAY + 1 {
            errs.push(SettingsError::new(
                format!("{p}.day_of_week"),
                quoted(w.day_of_week.as_str()),
                format!("has more than {MAX_ENTRIES_PER_DAY} entries (at most {MAX_ENTRIES_PER_DAY} per day)"),
            ));
        }
        let open = time_check(errs, format!("{p}.open_time"), &w.open_time);
        let close = time_check(errs, format!("{p}.close_time"), &w.close_time);
        if let (Some(o), Some(c)) = (open, close) {
            if o >= c {
                errs.push(SettingsError::new(
                    format!("{p}.close_time"),
                    quoted(&w.close_time),
                    format!("is not after open_time \"{}\"", w.open_time),
                ));
                continue;
            }
            let ranges = per_day.entry(w.day_of_week).or_default();
            for &(j, o2, c2) in ranges.iter() {
                if o < c2 && o2 < c {
                    errs.push(SettingsError::new(
                        p.clone(),
                        quoted(&format!(
                            "{} {}-{}",
                            w.day_of_week.as_str(),
                            w.open_time,
                            w.close_time
                        )),
                        format!("overlaps call_hours.weekly_operating_hours[{j}] on the same day"),
                    ));
                }
            }
            ranges.push((i, o, c));
        }
    }

    if let Some(holidays) = &ch.holiday_schedule {
        if holidays.len() > MAX_HOLIDAYS {
            errs.push(SettingsError::new(
                "call_hours.holiday_schedule",
                format!("({} entries)", holidays.len()),
                format!("has more than {MAX_HOLIDAYS} entries"),
            ));
        }
        let mut seen: BTreeMap<NaiveDate, usize> = BTreeMap::new();
        for (i, h) in holidays.iter().enumerate() {
            let p = format!("call_hours.holiday_schedule[{i}]");
            match parse_date(&h.date) {
                None => errs.push(SettingsError::new(
                    format!("{p}.date"),
                    quoted(&h.date),
                    "is not a valid YYYY-MM-DD date",
                )),
                Some(d) => {
                    if d < today {
                        errs.push(SettingsError::new(
                            format!("{p}.date"),
                            quoted(&h.date),
                            format!("is in the past (today is {today})"),
                        ));
                    }
                    if let Some(j) = seen.get(&d) {
                        errs.push(SettingsError::new(
                            format!("{p}.date"),
                            quoted(&h.date),
                            format!("duplicates call_hours.holiday_schedule[{j}].date"),
                        ));
                    } else {
                        seen.insert(d, i);
                    }
                }
            }
            let start = time_check(errs, format!("{p}.start_time"), &h.start_time);
            let end = time_check(errs, format!("{p}.end_time"), &h.end_time);
            if let (Some(st), Some(en)) = (start, end)
                && st >= en
            {
                errs.push(SettingsError::new(
                    format!("{p}.end_time"),
                    quoted(&h.end_time),
                    format!("is not after start_time \"{}\"", h.start_time),
                ));
            }
        }
    }
}

/// Things that are valid but likely not what the operator meant. Show them before submitting.
pub fn warnings(s: &CallSettings) -> Vec<String> {
    let mut w = Vec::new();
    if s == &CallSettings::default() {
        w.push("the settings document sets nothing: submitting it changes nothing".to_owned());
    }
    if s.status == Some(Toggle::Disabled) {
        w.push(
            "status is DISABLED: calling will be turned off on this number (no calls in or out)"
                .to_owned(),
        );
    }
    if s.call_icon_visibility == Some(CallIconVisibility::DisableAll) {
        w.push(
            "call_icon_visibility is DISABLE_ALL: users will not see the call button in the chat"
                .to_owned(),
        );
    }
    if let Some(ch) = &s.call_hours {
        w.push(
            "call_hours replaces the stored call hours as a whole (weekly hours and holidays)"
                .to_owned(),
        );
        if ch.holiday_schedule.is_none() {
            w.push(
                "call_hours has no holiday_schedule: submitting it deletes the holidays already \
                 stored on the number"
                    .to_owned(),
            );
        }
        if ch.status == Toggle::Disabled
            && (ch
                .weekly_operating_hours
                .as_ref()
                .is_some_and(|v| !v.is_empty())
                || ch.holiday_schedule.as_ref().is_some_and(|v| !v.is_empty()))
        {
            w.push(
                "call_hours.status is DISABLED: the weekly hours and holidays given have no effect"
                    .to_owned(),
            );
        }
        if ch.status == Toggle::Enabled {
            let days: std::collections::BTreeSet<_> = ch
                .weekly_operating_hours
                .iter()
                .flatten()
                .map(|e| e.day_of_week)
                .collect();
            let missing: Vec<_> = DayOfWeek::ALL
                .iter()
                .filter(|d| !days.contains(d))
                .map(|d| d.as_str())
                .collect();
            if !missing.is_empty() && !days.is_empty() {
                w.push(format!(
                    "call_hours: no operating hours on {}: calls will be closed all day",
                    missing.join(", ")
                ));
            }
        }
    }
    if let Some(sip) = &s.sip
        && sip.status == Toggle::Enabled
    {
        w.push(
            "sip.status is ENABLED: Meta will deliver this number's calls over SIP and turn off \
             the Graph call APIs wacall uses (error 131055): wacall can no longer answer or \
             place calls on this number"
                .to_owned(),
        );
        if sip.servers.as_ref().is_none_or(|v| v.is_empty()) {
            w.push(
                "sip.status is ENABLED with no sip.servers: calls have nowhere to go unless \
                 servers are already stored on the number"
                    .to_owned(),
            );
        }
    }
    if s.call_icons
        .as_ref()
        .and_then(|c| c.restrict_to_user_countries.as_ref())
        .is_some_and(|c| c.is_empty())
    {
        w.push(
            "call_icons.restrict_to_user_countries is empty: Meta does not document whether that \
             lifts the restriction or hides the icon everywhere (call_icon_visibility \
             DISABLE_ALL hides it everywhere)"
                .to_owned(),
        );
    }
    w
}

// ---------------------------------------------------------------------------------------------
// Providers and Meta's Cloud API
// ---------------------------------------------------------------------------------------------

/// Checks that the provider takes every key given: the BSP's call-settings endpoint takes only
/// the flat four (`status`, `call_icon_visibility`, `call_hours`, `callback_permission_status`);
/// Meta's Cloud API takes them all. Each Meta-only key present is one error naming it.
pub fn check_for_provider(
    s: &CallSettings,
    provider: crate::config::Provider,
) -> Result<(), Vec<SettingsError>> {
    use crate::config::Provider;
    if provider == Provider::Meta {
        return Ok(());
    }
    let errs: Vec<SettingsError> = [
        ("call_icons", s.call_icons.is_some()),
        ("audio", s.audio.is_some()),
        ("sip", s.sip.is_some()),
        ("voicemail", s.voicemail.is_some()),
    ]
    .into_iter()
    .filter(|(_, present)| *present)
    .map(|(key, _)| {
        SettingsError::new(
            key,
            "",
            "Meta's Cloud API only; the BSP's call-settings endpoint does not take it",
        )
    })
    .collect();
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// The body of Meta's `POST /{phone-number-id}/settings`: `{"calling": <the settings>}` (the
/// fields given only; [`CallSettings::unknown`] is not sent).
pub fn meta_body(s: &CallSettings) -> Value {
    let calling = serde_json::to_value(s).unwrap_or_else(|_| Value::Object(Default::default()));
    serde_json::json!({ "calling": calling })
}

/// Reads the answer of Meta's `GET /{phone-number-id}/settings` (`{"calling": {...}}`).
///
/// Leniently, since this is Meta's answer and not the operator's file: keys wacall does not know
/// (inside `calling`, or beside it) do not fail; they are returned in [`CallSettings::unknown`]
/// by their path in the answer (`calling.new_key`, `calling.sip.servers[0].transport`, or
/// `new_top_level_key`). Known keys with a wrong value still fail, with the path in the answer
/// (`calling.call_hours.status`). `calling` missing is an error naming it. The values are not
/// [`validate`]d (the stored holidays may be in the past by now, for one).
pub fn from_meta_body(v: &Value) -> Result<CallSettings, SettingsError> {
    let body = object(v, "(document)")?;
    let Some(calling) = present(body, "calling") else {
        return Err(SettingsError::new(
            "calling",
            "",
            "is missing: Meta's settings answer puts the call settings under \"calling\"",
        ));
    };
    let mut w = Walk {
        lenient: true,
        prefix: "calling.",
        unknown: BTreeMap::new(),
    };
    let mut s = walk_settings(calling, &mut w).map_err(|mut e| {
        e.path = if e.path == "(document)" {
            "calling".to_owned()
        } else {
            format!("calling.{}", e.path)
        };
        e
    })?;
    for (key, value) in body {
        if key != "calling" {
            w.unknown.insert(key.clone(), value.clone());
        }
    }
    s.unknown = w.unknown;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// The settings for people, one fact a line (for `wacall settings get`): status, icon
/// visibility, callback permission, the hours day by day and the holidays, then the Meta-only
/// keys (restricted countries, extra codecs, SIP, voicemail) and any keys wacall did not know.
/// A field that is not set reads `(not set)`.
pub fn describe(s: &CallSettings) -> String {
    use std::fmt::Write;
    const NOT_SET: &str = "(not set)";
    let toggle = |t: Option<Toggle>| t.map_or(NOT_SET, Toggle::as_str);
    let mut out = String::new();
    let _ = writeln!(out, "status:               {}", toggle(s.status));
    let _ = writeln!(
        out,
        "call icon visibility: {}",
        s.call_icon_visibility
            .map_or(NOT_SET, CallIconVisibility::as_str)
    );
    let _ = writeln!(
        out,
        "callback permission:  {}",
        toggle(s.callback_permission_status)
    );
    match &s.call_hours {
        None => {
            let _ = writeln!(out, "call hours:           {NOT_SET}");
        }
        Some(ch) => {
            let _ = writeln!(
                out,
                "call hours:           {}{}",
                ch.status.as_str(),
                ch.timezone_id
                    .as_deref()
                    .map(|t| format!(", time zone {t}"))
                    .unwrap_or_default()
            );
            if let Some(weekly) = &ch.weekly_operating_hours {
                for day in DayOfWeek::ALL {
                    let windows: Vec<String> = weekly
                        .iter()
                        .filter(|w| w.day_of_week == day)
                        .map(|w| format!("{}-{}", w.open_time, w.close_time))
                        .collect();
                    let _ = writeln!(
                        out,
                        "  {:<10} {}",
                        day.as_str(),
                        if windows.is_empty() {
                            "closed".to_owned()
                        } else {
                            windows.join(", ")
                        }
                    );
                }
            }
            match ch.holiday_schedule.as_deref() {
                None => {
                    let _ = writeln!(out, "  holidays: {NOT_SET}");
                }
                Some([]) => {
                    let _ = writeln!(out, "  holidays: none");
                }
                Some(hs) => {
                    let _ = writeln!(out, "  holidays:");
                    for h in hs {
                        let _ =
                            writeln!(out, "    {} closed {}-{}", h.date, h.start_time, h.end_time);
                    }
                }
            }
        }
    }
    let countries = s
        .call_icons
        .as_ref()
        .and_then(|c| c.restrict_to_user_countries.as_ref());
    let _ = writeln!(
        out,
        "call icon countries:  {}",
        match countries {
            None => NOT_SET.to_owned(),
            Some(c) if c.is_empty() => "(empty list)".to_owned(),
            Some(c) => format!("only {}", c.join(", ")),
        }
    );
    let codecs = s.audio.as_ref().and_then(|a| a.additional_codecs.as_ref());
    let _ = writeln!(
        out,
        "extra codecs:         {}",
        match codecs {
            None => NOT_SET.to_owned(),
            Some(c) if c.is_empty() => "none (Opus only)".to_owned(),
            Some(c) => format!(
                "{} (besides Opus)",
                c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    );
    match &s.sip {
        None => {
            let _ = writeln!(out, "sip:                  {NOT_SET}");
        }
        Some(sip) => {
            let _ = writeln!(
                out,
                "sip:                  {}{}",
                sip.status.as_str(),
                if sip.status == Toggle::Enabled {
                    " (the Graph call APIs are off for this number: error 131055)"
                } else {
                    ""
                }
            );
            for server in sip.servers.iter().flatten() {
                let params = server
                    .request_uri_user_params
                    .as_ref()
                    .filter(|m| !m.is_empty())
                    .map(|m| {
                        let kv: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        format!(" ;{}", kv.join(";"))
                    })
                    .unwrap_or_default();
                let _ = writeln!(out, "  server {}:{}{params}", server.hostname, server.port);
            }
        }
    }
    match &s.voicemail {
        None => {
            let _ = writeln!(out, "voicemail:            {NOT_SET}");
        }
        Some(vm) => {
            let _ = writeln!(out, "voicemail:            {}", vm.status.as_str());
            if let Some(g) = vm.audio.as_ref().and_then(|a| a.default.as_ref()) {
                if let Some(id) = &g.announcement_media_id {
                    let _ = writeln!(out, "  greeting media:     {id}");
                }
                if let Some(t) = g.timeout_seconds {
                    let _ = writeln!(out, "  timeout:            {t} s");
                }
            }
            if let Some(t) = &vm.triggers {
                let _ = writeln!(out, "  triggers:           {}", show(t));
            }
        }
    }
    if !s.unknown.is_empty() {
        let _ = writeln!(out, "not known to wacall (left as Meta reported them):");
        for (path, value) in &s.unknown {
            let _ = writeln!(out, "  {path} = {}", show(value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn business_hours_in_the_numbers_own_timezone_with_holidays() {
        use chrono::TimeZone;
        let hours = CallHours {
            status: Toggle::Enabled,
            timezone_id: Some("America/Mexico_City".into()),
            weekly_operating_hours: Some(vec![WeeklyHours {
                day_of_week: DayOfWeek::Monday,
                open_time: "0900".into(),
                close_time: "1800".into(),
            }]),
            holiday_schedule: Some(vec![Holiday {
                date: "2026-12-07".into(),
                start_time: "0000".into(),
                end_time: "2359".into(),
            }]),
        };
        // Monday 2026-11-30, 10:00 in Mexico City = 16:00 UTC.
        let utc = |d, h, m| chrono::Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
        assert!(hours.is_open(utc(30, 16, 0)));
        assert!(!hours.is_open(utc(30, 14, 59)), "08:59 local");
        assert!(hours.is_open(utc(30, 23, 59)), "17:59 local");
        let six_pm = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        assert!(!hours.is_open(six_pm), "18:00 local closes");
        assert!(!hours.is_open(utc(29, 16, 0)), "Sunday");
        let holiday = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 16, 0, 0).unwrap();
        assert!(!hours.is_open(holiday), "a Monday that is a holiday");
        let off = CallHours {
            status: Toggle::Disabled,
            ..hours
        };
        assert!(off.is_open(utc(29, 3, 0)));
    }

    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
    }

    const EXAMPLE: &str = r#"{
      "status": "ENABLED",
      "call_icon_visibility": "DEFAULT",
      "call_hours": {
        "status": "ENABLED",
        "timezone_id": "America/Manaus",
        "weekly_operating_hours": [
          {"day_of_week": "MONDAY", "open_time": "0400", "close_time": "1020"},
          {"day_of_week": "TUESDAY", "open_time": "0108", "close_time": "1020"}
        ],
        "holiday_schedule": [
          {"date": "2027-01-01", "start_time": "0000", "end_time": "2359"}
        ]
      },
      "callback_permission_status": "ENABLED"
    }"#;

    /// The example with `field` (a JSON pointer) replaced by `value`.
    fn example_with(pointer: &str, value: Value) -> String {
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        *v.pointer_mut(pointer).unwrap() = value;
        v.to_string()
    }

    fn weekly(entries: &[(&str, &str, &str)]) -> Value {
        Value::Array(
            entries
                .iter()
                .map(|(d, o, c)| serde_json::json!({"day_of_week": d, "open_time": o, "close_time": c}))
                .collect(),
        )
    }

    /// Parses then validates; returns all messages.
    fn check(text: &str) -> Vec<String> {
        match parse_settings(text, None) {
            Err(e) => vec![e.to_string()],
            Ok(s) => match validate(&s, today()) {
                Ok(()) => vec![],
                Err(es) => es.iter().map(|e| e.to_string()).collect(),
            },
        }
    }

    #[test]
    fn table_of_good_and_bad_documents() {
        let holidays = |n: usize| {
            Value::Array(
                (0..n)
                    .map(|i| {
                        serde_json::json!({"date": format!("2027-02-{:02}", i + 1),
                                           "start_time": "0000", "end_time": "2359"})
                    })
                    .collect(),
            )
        };
        // (name, document, expected: None = valid, Some(substrings that one message must contain))
        let cases: Vec<(&str, String, Option<&[&str]>)> = vec![
            ("page example", EXAMPLE.to_owned(), None),
            ("partial: status only", r#"{"status":"DISABLED"}"#.to_owned(), None),
            ("empty document", "{}".to_owned(), None),
            (
                "toml with bare date",
                "status = \"ENABLED\"\n[call_hours]\nstatus = \"ENABLED\"\ntimezone_id = \"UTC\"\n\
                 [[call_hours.weekly_operating_hours]]\nday_of_week = \"FRIDAY\"\nopen_time = \"0900\"\nclose_time = \"1700\"\n\
                 [[call_hours.holiday_schedule]]\ndate = 2027-01-01\nstart_time = \"0000\"\nend_time = \"2359\"\n"
                    .to_owned(),
                None,
            ),
            (
                "two entries a day, not overlapping",
                example_with(
                    "/call_hours/weekly_operating_hours",
                    weekly(&[("MONDAY", "0800", "1200"), ("MONDAY", "1200", "1800")]),
                ),
                None,
            ),
            ("20 holidays", example_with("/call_hours/holiday_schedule", holidays(20)), None),
            (
                "call hours disabled needs no weekly list",
                r#"{"call_hours":{"status":"DISABLED"}}"#.to_owned(),
                None,
            ),
            (
                "bad top-level enum",
                example_with("/status", "ON".into()),
                Some(&["status: \"ON\" is not one of ENABLED, DISABLED"]),
            ),
            (
                "bad icon visibility",
                example_with("/call_icon_visibility", "HIDDEN".into()),
                Some(&["call_icon_visibility: \"HIDDEN\""]),
            ),
            (
                "bad callback permission",
                example_with("/callback_permission_status", true.into()),
                Some(&["callback_permission_status: true is not one of"]),
            ),
            (
                "bad day",
                example_with("/call_hours/weekly_operating_hours/1/day_of_week", "Tuesday".into()),
                Some(&["call_hours.weekly_operating_hours[1].day_of_week: \"Tuesday\""]),
            ),
            (
                "bad close time",
                example_with("/call_hours/weekly_operating_hours/1/close_time", "2460".into()),
                Some(&["call_hours.weekly_operating_hours[1].close_time: \"2460\" is not a valid HHMM time"]),
            ),
            (
                "numeric time",
                example_with("/call_hours/weekly_operating_hours/0/open_time", 400.into()),
                Some(&["call_hours.weekly_operating_hours[0].open_time: 400 is not a string"]),
            ),
            (
                "open after close",
                example_with(
                    "/call_hours/weekly_operating_hours",
                    weekly(&[("MONDAY", "1800", "0900")]),
                ),
                Some(&["call_hours.weekly_operating_hours[0].close_time: \"0900\" is not after open_time"]),
            ),
            (
                "three entries a day",
                example_with(
                    "/call_hours/weekly_operating_hours",
                    weekly(&[
                        ("MONDAY", "0100", "0200"),
                        ("MONDAY", "0300", "0400"),
                        ("MONDAY", "0500", "0600"),
                    ]),
                ),
                Some(&["call_hours.weekly_operating_hours[2].day_of_week: \"MONDAY\" has more than 2"]),
            ),
            (
                "overlap",
                example_with(
                    "/call_hours/weekly_operating_hours",
                    weekly(&[("SUNDAY", "0800", "1200"), ("SUNDAY", "1100", "1500")]),
                ),
                Some(&["call_hours.weekly_operating_hours[1]: \"SUNDAY 1100-1500\" overlaps call_hours.weekly_operating_hours[0]"]),
            ),
            (
                "empty weekly list while enabled",
                example_with("/call_hours/weekly_operating_hours", Value::Array(vec![])),
                Some(&["call_hours.weekly_operating_hours: [] must list at least one entry"]),
            ),
            (
                "bad time zone",
                example_with("/call_hours/timezone_id", "Mars/Olympus".into()),
                Some(&["call_hours.timezone_id: \"Mars/Olympus\" is not an IANA time zone"]),
            ),
            (
                "21 holidays",
                example_with("/call_hours/holiday_schedule", holidays(21)),
                Some(&["call_hours.holiday_schedule: (21 entries) has more than 20"]),
            ),
            (
                "impossible date",
                example_with("/call_hours/holiday_schedule/0/date", "2027-02-30".into()),
                Some(&["call_hours.holiday_schedule[0].date: \"2027-02-30\" is not a valid YYYY-MM-DD"]),
            ),
            (
                "sloppy date",
                example_with("/call_hours/holiday_schedule/0/date", "2027-1-1".into()),
                Some(&["call_hours.holiday_schedule[0].date: \"2027-1-1\""]),
            ),
            (
                "past holiday",
                example_with("/call_hours/holiday_schedule/0/date", "2026-01-01".into()),
                Some(&["call_hours.holiday_schedule[0].date: \"2026-01-01\" is in the past"]),
            ),
            (
                "duplicate holiday",
                example_with(
                    "/call_hours/holiday_schedule",
                    serde_json::json!([
                        {"date": "2027-01-01", "start_time": "0000", "end_time": "1200"},
                        {"date": "2027-01-01", "start_time": "1300", "end_time": "2359"}
                    ]),
                ),
                Some(&["call_hours.holiday_schedule[1].date: \"2027-01-01\" duplicates call_hours.holiday_schedule[0].date"]),
            ),
            (
                "holiday end before start",
                example_with("/call_hours/holiday_schedule/0/end_time", "0000".into()),
                Some(&["call_hours.holiday_schedule[0].end_time: \"0000\" is not after start_time"]),
            ),
            (
                "unknown key",
                example_with("/call_hours/timezone_id", "UTC".into()).replace("\"status\":\"ENABLED\",\"timezone_id\"", "\"statuz\":1,\"status\":\"ENABLED\",\"timezone_id\""),
                Some(&["call_hours.statuz: is not a known field"]),
            ),
            (
                "missing close time",
                r#"{"call_hours":{"status":"ENABLED","timezone_id":"UTC","weekly_operating_hours":[{"day_of_week":"MONDAY","open_time":"0900"}]}}"#.to_owned(),
                Some(&["call_hours.weekly_operating_hours[0].close_time: is missing"]),
            ),
            ("not json", "{\"status\": ".to_owned(), Some(&["(document): is not valid JSON"])),
        ];
        assert!(cases.len() >= 15);
        for (name, doc, expected) in cases {
            let msgs = check(&doc);
            match expected {
                None => assert!(msgs.is_empty(), "{name}: expected valid, got {msgs:?}"),
                Some(needles) => {
                    assert!(!msgs.is_empty(), "{name}: expected an error");
                    for needle in needles {
                        assert!(
                            msgs.iter().any(|m| m.contains(needle)),
                            "{name}: no message contains {needle:?}: {msgs:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn validate_collects_every_problem() {
        let doc = r#"{"call_hours":{"status":"ENABLED","timezone_id":"Nowhere/Else",
            "weekly_operating_hours":[{"day_of_week":"MONDAY","open_time":"2500","close_time":"0961"}],
            "holiday_schedule":[{"date":"2020-01-01","start_time":"0000","end_time":"2359"}]}}"#;
        let s = parse_settings(doc, Some("json")).unwrap();
        let errs = validate(&s, today()).unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "call_hours.timezone_id",
                "call_hours.weekly_operating_hours[0].open_time",
                "call_hours.weekly_operating_hours[0].close_time",
                "call_hours.holiday_schedule[0].date",
            ]
        );
        assert_eq!(errs[1].value, "\"2500\"");
    }

    #[test]
    fn serializes_only_what_was_given() {
        let s = parse_settings(r#"{"callback_permission_status":"DISABLED"}"#, None).unwrap();
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"callback_permission_status":"DISABLED"})
        );
        let full = parse_settings(EXAMPLE, Some("json")).unwrap();
        assert_eq!(
            serde_json::to_value(&full).unwrap(),
            serde_json::from_str::<Value>(EXAMPLE).unwrap()
        );
        // serde's own Deserialize agrees with the hand walker.
        let via_serde: CallSettings = serde_json::from_str(EXAMPLE).unwrap();
        assert_eq!(via_serde, full);
    }

    #[test]
    fn warnings_mention_deleted_holidays() {
        let s = parse_settings(
            r#"{"call_hours":{"status":"ENABLED","timezone_id":"UTC","weekly_operating_hours":[{"day_of_week":"MONDAY","open_time":"0900","close_time":"1700"}]}}"#,
            None,
        )
        .unwrap();
        let w = warnings(&s);
        assert!(
            w.iter().any(|m| m.contains("deletes the holidays")),
            "{w:?}"
        );
        let full = parse_settings(EXAMPLE, None).unwrap();
        assert!(
            !warnings(&full)
                .iter()
                .any(|m| m.contains("deletes the holidays"))
        );
        assert!(warnings(&CallSettings::default())[0].contains("changes nothing"));
    }

    #[test]
    fn hhmm_and_dates() {
        assert_eq!(parse_hhmm("0000"), Some(0));
        assert_eq!(parse_hhmm("2359"), Some(23 * 60 + 59));
        for bad in ["2400", "0060", "930", "09:30", "+930", "abcd", ""] {
            assert_eq!(parse_hhmm(bad), None, "{bad}");
        }
        assert!(parse_date("2028-02-29").is_some());
        assert!(parse_date("2027-02-29").is_none());
        assert!(parse_date("27-01-01").is_none());
    }

    #[test]
    fn format_hint() {
        assert!(parse_settings("status = \"ENABLED\"", Some("toml")).is_ok());
        assert!(parse_settings("status = \"ENABLED\"", Some("json")).is_err());
        let e = parse_settings("{}", Some("yaml")).unwrap_err();
        assert!(e.to_string().contains("\"yaml\""));
        let e = parse_settings("status = ", Some("toml")).unwrap_err();
        assert!(
            e.to_string().starts_with("(document): is not valid TOML"),
            "{e}"
        );
    }

    /// A document with every Meta-only key.
    const META: &str = r#"{
      "status": "ENABLED",
      "call_icon_visibility": "DEFAULT",
      "callback_permission_status": "DISABLED",
      "call_hours": {
        "status": "ENABLED",
        "timezone_id": "America/Sao_Paulo",
        "weekly_operating_hours": [
          {"day_of_week": "MONDAY", "open_time": "0900", "close_time": "1200"},
          {"day_of_week": "MONDAY", "open_time": "1300", "close_time": "1800"},
          {"day_of_week": "FRIDAY", "open_time": "0900", "close_time": "1500"}
        ],
        "holiday_schedule": [{"date": "2027-01-01", "start_time": "0000", "end_time": "2359"}]
      },
      "call_icons": {"restrict_to_user_countries": ["BR", "MX"]},
      "audio": {"additional_codecs": ["PCMA", "PCMU"]},
      "sip": {
        "status": "DISABLED",
        "servers": [
          {"hostname": "sip.example.com", "port": 5061, "request_uri_user_params": {"trunk": "main"}},
          {"hostname": "2001:db8::1", "port": 5060}
        ]
      },
      "voicemail": {
        "status": "ENABLED",
        "triggers": {"unanswered": true},
        "audio": {"default": {"announcement_media_id": "1234567890", "timeout_seconds": 20}}
      }
    }"#;

    /// `META` with the value at `pointer` replaced, or added when the parent object lacks it.
    fn meta_with(pointer: &str, value: Value) -> String {
        let mut v: Value = serde_json::from_str(META).unwrap();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        match v.pointer_mut(parent).unwrap() {
            Value::Object(o) => {
                o.insert(key.to_owned(), value);
            }
            Value::Array(a) => a[key.parse::<usize>().unwrap()] = value,
            other => panic!("{parent} is {other}"),
        }
        v.to_string()
    }

    #[test]
    fn meta_keys_good_and_bad_values_name_their_path() {
        let cases: Vec<(&str, String, Option<&str>)> = vec![
            ("all Meta keys", META.to_owned(), None),
            ("empty country list", meta_with("/call_icons/restrict_to_user_countries", serde_json::json!([])), None),
            ("no extra codecs", meta_with("/audio/additional_codecs", serde_json::json!([])), None),
            ("sip without servers", r#"{"sip":{"status":"DISABLED"}}"#.to_owned(), None),
            ("bracketed IPv6 host", meta_with("/sip/servers/1/hostname", "[2001:db8::1]".into()), None),
            ("triggers as a list", meta_with("/voicemail/triggers", serde_json::json!(["UNANSWERED"])), None),
            ("voicemail status only", r#"{"voicemail":{"status":"DISABLED"}}"#.to_owned(), None),
            // call_icons
            (
                "lowercase country",
                meta_with("/call_icons/restrict_to_user_countries/1", "mx".into()),
                Some("call_icons.restrict_to_user_countries[1]: \"mx\" is not an ISO 3166-1 alpha-2 country code: write it in capitals (\"MX\")"),
            ),
            (
                "three-letter country",
                meta_with("/call_icons/restrict_to_user_countries/0", "BRA".into()),
                Some("call_icons.restrict_to_user_countries[0]: \"BRA\" is not an ISO 3166-1 alpha-2 country code (two capital letters"),
            ),
            (
                "duplicate country",
                meta_with("/call_icons/restrict_to_user_countries", serde_json::json!(["BR", "MX", "BR"])),
                Some("call_icons.restrict_to_user_countries[2]: \"BR\" duplicates call_icons.restrict_to_user_countries[0]"),
            ),
            (
                "numeric country",
                meta_with("/call_icons/restrict_to_user_countries/0", 52.into()),
                Some("call_icons.restrict_to_user_countries[0]: 52 is not a string"),
            ),
            (
                "countries not a list",
                meta_with("/call_icons/restrict_to_user_countries", "MX".into()),
                Some("call_icons.restrict_to_user_countries: \"MX\" is not a list"),
            ),
            (
                "unknown call_icons key",
                meta_with("/call_icons", serde_json::json!({"countries": ["MX"]})),
                Some("call_icons.countries: is not a known field"),
            ),
            // audio
            (
                "opus listed",
                meta_with("/audio/additional_codecs/1", "OPUS".into()),
                Some("audio.additional_codecs[1]: \"OPUS\" is not needed: Opus is always on"),
            ),
            (
                "unknown codec",
                meta_with("/audio/additional_codecs/0", "G722".into()),
                Some("audio.additional_codecs[0]: \"G722\" is not one of PCMA, PCMU"),
            ),
            (
                "duplicate codec",
                meta_with("/audio/additional_codecs", serde_json::json!(["PCMU", "PCMU"])),
                Some("audio.additional_codecs[1]: \"PCMU\" duplicates audio.additional_codecs[0]"),
            ),
            // sip
            (
                "sip status missing",
                r#"{"sip":{"servers":[]}}"#.to_owned(),
                Some("sip.status: is missing (ENABLED or DISABLED)"),
            ),
            (
                "sip status wrong",
                meta_with("/sip/status", "ON".into()),
                Some("sip.status: \"ON\" is not one of ENABLED, DISABLED"),
            ),
            (
                "empty hostname",
                meta_with("/sip/servers/0/hostname", "".into()),
                Some("sip.servers[0].hostname: \"\" is empty"),
            ),
            (
                "hostname with scheme",
                meta_with("/sip/servers/0/hostname", "sip:pbx.example.com".into()),
                Some("sip.servers[0].hostname: \"sip:pbx.example.com\" is not a bare host name"),
            ),
            (
                "hostname with port",
                meta_with("/sip/servers/0/hostname", "pbx.example.com:5060".into()),
                Some("sip.servers[0].hostname: \"pbx.example.com:5060\" is not a bare host name"),
            ),
            (
                "hostname missing",
                meta_with("/sip/servers/0", serde_json::json!({"port": 5060})),
                Some("sip.servers[0].hostname: is missing"),
            ),
            ("port zero", meta_with("/sip/servers/1/port", 0.into()), Some("sip.servers[1].port: 0 is not a port number")),
            (
                "port too big",
                meta_with("/sip/servers/1/port", 65536.into()),
                Some("sip.servers[1].port: 65536 is not a port number (an integer 1-65535)"),
            ),
            (
                "port as string",
                meta_with("/sip/servers/1/port", "5060".into()),
                Some("sip.servers[1].port: \"5060\" is not a port number"),
            ),
            (
                "param value not a string",
                meta_with("/sip/servers/0/request_uri_user_params/trunk", 7.into()),
                Some("sip.servers[0].request_uri_user_params.trunk: 7 is not a string"),
            ),
            (
                "params not an object",
                meta_with("/sip/servers/0/request_uri_user_params", serde_json::json!(["trunk"])),
                Some("sip.servers[0].request_uri_user_params: [\"trunk\"] is not an object"),
            ),
            (
                "duplicate server",
                meta_with("/sip/servers/1", serde_json::json!({"hostname": "SIP.example.com", "port": 5061})),
                Some("sip.servers[1]: \"SIP.example.com:5061\" duplicates sip.servers[0]"),
            ),
            (
                "too many servers",
                meta_with(
                    "/sip/servers",
                    Value::Array(
                        (0..=MAX_SIP_SERVERS)
                            .map(|i| serde_json::json!({"hostname": format!("s{i}.example.com"), "port": 5060}))
                            .collect(),
                    ),
                ),
                Some("sip.servers: (11 entries) has more than 10 entries"),
            ),
            (
                "unknown server key",
                meta_with("/sip/servers/0/transport", "TLS".into()),
                Some("sip.servers[0].transport: is not a known field"),
            ),
            // voicemail
            (
                "voicemail status missing",
                r#"{"voicemail":{"triggers":[]}}"#.to_owned(),
                Some("voicemail.status: is missing"),
            ),
            (
                "triggers a string",
                meta_with("/voicemail/triggers", "always".into()),
                Some("voicemail.triggers: \"always\" is not a list or an object"),
            ),
            (
                "numeric media id",
                meta_with("/voicemail/audio/default/announcement_media_id", 1234.into()),
                Some("voicemail.audio.default.announcement_media_id: 1234 is not a string"),
            ),
            (
                "blank media id",
                meta_with("/voicemail/audio/default/announcement_media_id", " ".into()),
                Some("voicemail.audio.default.announcement_media_id: \" \" is not a media id"),
            ),
            (
                "negative timeout",
                meta_with("/voicemail/audio/default/timeout_seconds", (-5).into()),
                Some("voicemail.audio.default.timeout_seconds: -5 is not a whole number of seconds"),
            ),
            (
                "fractional timeout",
                meta_with("/voicemail/audio/default/timeout_seconds", 2.5.into()),
                Some("voicemail.audio.default.timeout_seconds: 2.5 is not a whole number"),
            ),
            (
                "zero timeout",
                meta_with("/voicemail/audio/default/timeout_seconds", 0.into()),
                Some("voicemail.audio.default.timeout_seconds: 0 must be at least 1 second"),
            ),
            (
                "unknown greeting key",
                meta_with("/voicemail/audio/default/language", "en_US".into()),
                Some("voicemail.audio.default.language: is not a known field"),
            ),
            (
                "unknown audio key",
                meta_with("/voicemail/audio/en_US", serde_json::json!({})),
                Some("voicemail.audio.en_US: is not a known field"),
            ),
        ];
        for (name, doc, expected) in cases {
            let msgs = check(&doc);
            match expected {
                None => assert!(msgs.is_empty(), "{name}: expected valid, got {msgs:?}"),
                Some(needle) => assert!(
                    msgs.iter().any(|m| m.contains(needle)),
                    "{name}: no message contains {needle:?}: {msgs:?}"
                ),
            }
        }
    }

    #[test]
    fn meta_keys_in_toml() {
        let doc = "[call_icons]\nrestrict_to_user_countries = [\"MX\"]\n\
                   [audio]\nadditional_codecs = [\"PCMU\"]\n\
                   [sip]\nstatus = \"DISABLED\"\n\
                   [[sip.servers]]\nhostname = \"pbx.example.com\"\nport = 5060\n\
                   [sip.servers.request_uri_user_params]\ntgrp = \"wacall\"\n\
                   [voicemail]\nstatus = \"ENABLED\"\n\
                   [voicemail.audio.default]\nannouncement_media_id = \"42\"\ntimeout_seconds = 15\n";
        let s = parse_settings(doc, Some("toml")).unwrap();
        validate(&s, today()).unwrap();
        let sip = s.sip.unwrap();
        assert_eq!(sip.servers.as_ref().unwrap()[0].port, 5060);
        assert_eq!(
            sip.servers.unwrap()[0]
                .request_uri_user_params
                .as_ref()
                .unwrap()["tgrp"],
            "wacall"
        );
        assert_eq!(s.audio.unwrap().additional_codecs, Some(vec![Codec::Pcmu]));
        assert_eq!(
            s.voicemail
                .unwrap()
                .audio
                .unwrap()
                .default
                .unwrap()
                .timeout_seconds,
            Some(15)
        );
    }

    #[test]
    fn the_bsp_refuses_meta_only_keys_and_meta_takes_them() {
        use crate::config::Provider;
        let s = parse_settings(META, None).unwrap();
        let errs = check_for_provider(&s, Provider::Bsp).unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            ["call_icons", "audio", "sip", "voicemail"].map(|k| format!(
                "{k}: Meta's Cloud API only; the BSP's call-settings endpoint does not take it"
            ))
        );
        check_for_provider(&s, Provider::Meta).unwrap();
        // The BSP's own keys are fine for both.
        let flat = parse_settings(EXAMPLE, None).unwrap();
        check_for_provider(&flat, Provider::Bsp).unwrap();
        check_for_provider(&flat, Provider::Meta).unwrap();
        let one =
            parse_settings(r#"{"status":"ENABLED","sip":{"status":"DISABLED"}}"#, None).unwrap();
        let errs = check_for_provider(&one, Provider::Bsp).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "sip");
    }

    #[test]
    fn meta_body_round_trips_through_from_meta_body() {
        let s = parse_settings(META, None).unwrap();
        let body = meta_body(&s);
        assert_eq!(
            body["calling"],
            serde_json::from_str::<Value>(META).unwrap()
        );
        assert_eq!(body.as_object().unwrap().len(), 1);
        let back = from_meta_body(&body).unwrap();
        assert_eq!(back, s);
        assert!(back.unknown.is_empty());
        // A partial update stays partial.
        let partial = parse_settings(r#"{"audio":{"additional_codecs":["PCMA"]}}"#, None).unwrap();
        assert_eq!(
            meta_body(&partial),
            serde_json::json!({"calling": {"audio": {"additional_codecs": ["PCMA"]}}})
        );
        assert_eq!(from_meta_body(&meta_body(&partial)).unwrap(), partial);
        // serde's own Deserialize agrees with the hand walker on the Meta keys too.
        let via_serde: CallSettings = serde_json::from_str(META).unwrap();
        assert_eq!(via_serde, s);
    }

    #[test]
    fn from_meta_body_is_lenient_with_keys_meta_adds() {
        let answer = serde_json::json!({
            "calling": {
                "status": "ENABLED",
                "video": {"status": "DISABLED"},
                "sip": {"status": "DISABLED", "servers": [{"hostname": "a.example.com", "port": 5060, "transport": "TLS"}]},
                "call_hours": {"status": "DISABLED", "holiday_schedule": [{"date": "2020-01-01", "start_time": "0000", "end_time": "2359", "note": "x"}]}
            },
            "id": "1234"
        });
        let s = from_meta_body(&answer).unwrap();
        assert_eq!(s.status, Some(Toggle::Enabled));
        assert_eq!(
            s.sip.as_ref().unwrap().servers.as_ref().unwrap()[0].hostname,
            "a.example.com"
        );
        let keys: Vec<&str> = s.unknown.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "calling.call_hours.holiday_schedule[0].note",
                "calling.sip.servers[0].transport",
                "calling.video",
                "id",
            ]
        );
        assert_eq!(
            s.unknown["calling.video"],
            serde_json::json!({"status": "DISABLED"})
        );
        // Unknown keys are never sent back.
        assert!(meta_body(&s)["calling"].get("video").is_none());
        assert!(describe(&s).contains("calling.video = {\"status\":\"DISABLED\"}"));
        // The operator's file stays strict about the same key.
        let e = parse_settings(&answer["calling"].to_string(), None).unwrap_err();
        assert!(
            e.to_string().starts_with("video: is not a known field"),
            "{e}"
        );

        // `calling` missing, or not an object, is named.
        let e = from_meta_body(&serde_json::json!({"status": "ENABLED"})).unwrap_err();
        assert_eq!(e.path, "calling");
        assert!(e.to_string().contains("is missing"), "{e}");
        let e = from_meta_body(&serde_json::json!({"calling": []})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "calling: [] is not an object (a table in TOML)"
        );
        let e = from_meta_body(&serde_json::json!([])).unwrap_err();
        assert_eq!(e.path, "(document)");
        // A known key with a wrong value fails, with its path in the answer.
        let e =
            from_meta_body(&serde_json::json!({"calling": {"call_hours": {"status": "MAYBE"}}}))
                .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("calling.call_hours.status: \"MAYBE\" is not one of"),
            "{e}"
        );
    }

    #[test]
    fn describe_lists_the_key_facts() {
        let mut s = parse_settings(META, None).unwrap();
        let text = describe(&s);
        for needle in [
            "status:               ENABLED",
            "call icon visibility: DEFAULT",
            "callback permission:  DISABLED",
            "call hours:           ENABLED, time zone America/Sao_Paulo",
            "MONDAY     0900-1200, 1300-1800",
            "TUESDAY    closed",
            "FRIDAY     0900-1500",
            "2027-01-01 closed 0000-2359",
            "call icon countries:  only BR, MX",
            "extra codecs:         PCMA, PCMU (besides Opus)",
            "sip:                  DISABLED",
            "server sip.example.com:5061 ;trunk=main",
            "server 2001:db8::1:5060",
            "voicemail:            ENABLED",
            "greeting media:     1234567890",
            "timeout:            20 s",
            "triggers:           {\"unanswered\":true}",
        ] {
            assert!(text.contains(needle), "no {needle:?} in:\n{text}");
        }
        assert!(!text.contains("not known to wacall"));
        s.sip.as_mut().unwrap().status = Toggle::Enabled;
        assert!(describe(&s).contains("error 131055"));

        let empty = describe(&CallSettings::default());
        for line in [
            "status:",
            "call hours:",
            "sip:",
            "voicemail:",
            "extra codecs:",
        ] {
            assert!(
                empty
                    .lines()
                    .any(|l| l.starts_with(line) && l.ends_with("(not set)")),
                "{line} in:\n{empty}"
            );
        }
    }

    #[test]
    fn warnings_say_sip_turns_off_the_call_apis() {
        let on = parse_settings(
            r#"{"sip":{"status":"ENABLED","servers":[{"hostname":"pbx.example.com","port":5060}]}}"#,
            None,
        )
        .unwrap();
        let w = warnings(&on);
        assert!(w.iter().any(|m| m.contains("131055")), "{w:?}");
        assert!(!w.iter().any(|m| m.contains("no sip.servers")), "{w:?}");
        let bare = parse_settings(r#"{"sip":{"status":"ENABLED"}}"#, None).unwrap();
        assert!(warnings(&bare).iter().any(|m| m.contains("no sip.servers")));
        let off = parse_settings(META, None).unwrap();
        assert!(!warnings(&off).iter().any(|m| m.contains("131055")));
        let empty_countries =
            parse_settings(r#"{"call_icons":{"restrict_to_user_countries":[]}}"#, None).unwrap();
        assert!(
            warnings(&empty_countries)
                .iter()
                .any(|m| m.contains("restrict_to_user_countries is empty"))
        );
    }
}
