//! Call settings of the business number (the BSP's admin `call-settings` endpoint).
//!
//! The shape is the BSP's (Meta's) exactly:
//!
//! ```json
//! {"status":"ENABLED","call_icon_visibility":"DEFAULT",
//!  "call_hours":{"status":"ENABLED","timezone_id":"America/Manaus",
//!                "weekly_operating_hours":[{"day_of_week":"MONDAY","open_time":"0400","close_time":"1020"}],
//!                "holiday_schedule":[{"date":"2027-01-01","start_time":"0000","end_time":"2359"}]},
//!  "callback_permission_status":"ENABLED"}
//! ```
//!
//! Every top-level field is optional so that a partial update can be sent. Files are read with
//! [`parse_settings`] (JSON or TOML), which walks the document by hand so that a wrong field is
//! named by its path; [`validate`] then checks the rules WhatsApp enforces and reports all problems
//! at once; [`warnings`] lists things that are valid but probably not meant (such as deleting the
//! stored holidays).

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// At most this many `weekly_operating_hours` entries per day.
pub const MAX_ENTRIES_PER_DAY: usize = 2;
/// At most this many `holiday_schedule` entries.
pub const MAX_HOLIDAYS: usize = 20;

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

/// The settings document. `None` fields are not sent (left as stored by the BSP).
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
pub fn settings_from_value(v: &Value) -> Result<CallSettings, SettingsError> {
    let obj = object(v, "(document)")?;
    check_keys(
        obj,
        "",
        &[
            "status",
            "call_icon_visibility",
            "call_hours",
            "callback_permission_status",
        ],
    )?;
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
        s.call_hours = Some(call_hours_from_value(x)?);
    }
    Ok(s)
}

fn call_hours_from_value(v: &Value) -> Result<CallHours, SettingsError> {
    let obj = object(v, "call_hours")?;
    check_keys(
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
                check_keys(
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
                check_keys(o, &format!("{p}."), &["date", "start_time", "end_time"])?;
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
    if errs.is_empty() { Ok(()) } else { Err(errs) }
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
    w
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
}
