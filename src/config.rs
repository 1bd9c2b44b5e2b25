//! `wacall.toml`: the operator's configuration.
//!
//! Every section and key is optional (defaults below); unknown keys are errors naming the key.
//! Secrets can come from the environment instead of the file: `WACALL_BSP_TOKEN`,
//! `WACALL_APP_SECRET`, `WACALL_VERIFY_TOKEN`, `WACALL_EDGE_TOKENS` (comma separated). An
//! annotated example lives at the repository root in `wacall.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Environment variable overriding `bsp.token`.
pub const ENV_BSP_TOKEN: &str = "WACALL_BSP_TOKEN";
/// Environment variable overriding `webhook.app_secret`.
pub const ENV_APP_SECRET: &str = "WACALL_APP_SECRET";
/// Environment variable overriding `webhook.verify_token`.
pub const ENV_VERIFY_TOKEN: &str = "WACALL_VERIFY_TOKEN";
/// Environment variable overriding `server.edge_tokens` (comma separated).
pub const ENV_EDGE_TOKENS: &str = "WACALL_EDGE_TOKENS";

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub bsp: BspConfig,
    pub webhook: WebhookConfig,
    pub server: ServerConfig,
    pub recording: RecordingConfig,
    pub routing: RoutingConfig,
}

/// Whose API places and answers the calls: a BSP's (the seed's call actions and call settings)
/// or Meta's Cloud API (Graph `/{phone-number-id}/calls`, `/settings`, `/call_permissions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    Bsp,
    Meta,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Bsp => "bsp",
            Provider::Meta => "meta",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "bsp" => Ok(Provider::Bsp),
            "meta" => Ok(Provider::Meta),
            other => Err(format!(
                "provider {other:?} is neither \"bsp\" nor \"meta\""
            )),
        }
    }
}

/// Meta's Graph API host: the default `bsp.base_url` when `provider = "meta"`.
pub const META_GRAPH_URL: &str = "https://graph.facebook.com";
/// The Graph API version used when `bsp.graph_version` is not set (each lives about two years).
pub const DEFAULT_GRAPH_VERSION: &str = "v23.0";

/// `[bsp]`: the calling API (a BSP's, or Meta's Cloud API with `provider = "meta"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BspConfig {
    /// `"bsp"` (default) or `"meta"`.
    pub provider: Provider,
    /// BSP host, e.g. `https://api.example-bsp.com` (a trailing slash is fine). For Meta, the
    /// Graph host; empty means `https://graph.facebook.com`.
    pub base_url: String,
    /// Meta only: the Graph API version in the path, `vNN.N`.
    pub graph_version: String,
    /// Meta only: the business number's phone-number **id** (not its digits) in every path.
    pub phone_number_id: String,
    /// WhatsApp Business Account id (the BSP's settings path; not used by Meta's calling API).
    pub waba_id: String,
    /// Business number: digits, country code first, no `+`.
    pub phone_number: String,
    /// Bearer token.
    pub token: Secret,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Retries of idempotent actions on network errors, 429 and 5xx.
    pub max_retries: u32,
}

impl Default for BspConfig {
    fn default() -> Self {
        BspConfig {
            provider: Provider::Bsp,
            base_url: String::new(),
            graph_version: DEFAULT_GRAPH_VERSION.to_owned(),
            phone_number_id: String::new(),
            waba_id: String::new(),
            phone_number: String::new(),
            token: Secret::default(),
            timeout_ms: 10_000,
            max_retries: 3,
        }
    }
}

/// `[webhook]`: what WhatsApp (through the BSP) posts to us.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Meta app secret: key of the `X-Hub-Signature-256` HMAC.
    pub app_secret: Secret,
    /// Token expected in the `hub.verify_token` subscription check.
    pub verify_token: Secret,
    /// HTTP path of the webhook.
    pub path: String,
    /// Larger bodies are refused.
    pub max_body_bytes: usize,
    /// A connect webhook whose `timestamp` is further than this from now (a replay, or a call
    /// WhatsApp has stopped ringing) is acknowledged but not answered.
    pub max_offer_age_s: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            app_secret: Secret::default(),
            verify_token: Secret::default(),
            path: "/webhook".to_owned(),
            max_body_bytes: 256 * 1024,
            max_offer_age_s: 60,
        }
    }
}

/// `[server]`: the bridge's listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (webhook + edge connections).
    pub listen: SocketAddr,
    /// Tokens edges (softphones, bots) present to connect, without an identity: such an edge
    /// keeps the name and kind it says. Prefer `[[server.edges]]`.
    pub edge_tokens: Vec<Secret>,
    /// Edges by identity: the token decides the name, role and rights.
    pub edges: Vec<EdgeConfig>,
    /// SQLite file of the call history.
    pub history_db: PathBuf,
    /// TLS on the bridge's own port (PEM files), for deployments without a reverse proxy.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Connections held at once; past this a new one gets 503 at once.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers.
    pub header_timeout_s: u64,
}

/// `[[server.edges]]`: one agent, bot or supervisor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    pub name: String,
    pub role: crate::bridge::identity::Role,
    /// The token, or (better) `token_env`: the environment variable that holds it.
    #[serde(default)]
    pub token: Secret,
    #[serde(default)]
    pub token_env: Option<String>,
    /// Whether it may place calls (default: agents and bots yes, supervisors no).
    #[serde(default)]
    pub may_dial: Option<bool>,
    /// Calls it holds at once (default: agents 1, bots `routing.max_calls`).
    #[serde(default)]
    pub max_calls: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            edge_tokens: Vec::new(),
            edges: Vec::new(),
            history_db: PathBuf::from("wacall-history.sqlite3"),
            tls_cert: None,
            tls_key: None,
            max_connections: 1024,
            header_timeout_s: 30,
        }
    }
}

/// `[recording]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    /// Keep the 48 kHz WAV of uploaded recordings beside their compact Ogg Opus form (about
    /// 690 MB an hour instead of 14).
    pub keep_wav: bool,
    /// Recordings in the store older than this many days are deleted (hourly); 0 = kept.
    pub keep_days: u64,
    /// `[recording.meta]`: Meta records (and transcribes) the call on its side too
    /// (`provider = "meta"` only); the files are downloaded into `dir` and linked in history.
    pub meta: MetaCaptureConfig,
}

/// `[recording.meta]`: Meta-side recording and transcription, asked for on `connect` (our calls)
/// and `accept` (the user's). Both parties hear an announcement naming `purpose`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaCaptureConfig {
    /// Ask Meta to record every call (a dial can override it).
    pub record: bool,
    /// Ask Meta to transcribe every call (a dial can override it).
    pub transcribe: bool,
    /// Said in the announcement: "…recorded for the following purpose: <purpose>" (≤ 250).
    pub purpose: String,
    /// The announcement's locale, `en_US`, `es_MX`, `pt_BR`...
    pub announcement_language: String,
}

impl Default for MetaCaptureConfig {
    fn default() -> Self {
        MetaCaptureConfig {
            record: false,
            transcribe: false,
            purpose: String::new(),
            announcement_language: "en_US".to_owned(),
        }
    }
}

/// The longest `purpose` Meta takes.
pub const MAX_CAPTURE_PURPOSE: usize = 250;

impl MetaCaptureConfig {
    /// What is wrong with it for a call that asks for recording or transcription, one sentence
    /// each, naming the field (`recording.meta.purpose`).
    pub fn problems(&self, field: &str) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.record || self.transcribe) {
            return p;
        }
        let purpose = self.purpose.trim();
        if purpose.is_empty() {
            p.push(format!(
                "{field}.purpose is empty: Meta requires the purpose the announcement names when recording or transcription is on"
            ));
        } else if purpose.chars().count() > MAX_CAPTURE_PURPOSE {
            p.push(format!(
                "{field}.purpose is {} characters: Meta takes at most {MAX_CAPTURE_PURPOSE}",
                purpose.chars().count()
            ));
        }
        if !valid_locale(&self.announcement_language) {
            p.push(format!(
                "{field}.announcement_language {:?} must be a locale such as \"en_US\"",
                self.announcement_language
            ));
        }
        p
    }
}

/// `ll_CC` (or a bare `ll`): the announcement locales Meta lists are of this shape.
fn valid_locale(s: &str) -> bool {
    let mut parts = s.split('_');
    let lang = parts.next().unwrap_or("");
    let country = parts.next();
    parts.next().is_none()
        && (2..=3).contains(&lang.len())
        && lang.bytes().all(|c| c.is_ascii_lowercase())
        && country.is_none_or(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: true,
            dir: PathBuf::from("recordings"),
            keep_wav: false,
            keep_days: 0,
            meta: MetaCaptureConfig::default(),
        }
    }
}

/// The longest a caller may wait in the queue (`routing.queue_timeout_s`).
const MAX_QUEUE_S: u64 = 40;

/// `[routing]`: how incoming calls are offered to edges.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Seconds an edge may ring before the call moves on.
    pub ring_timeout_s: u64,
    /// Seconds after the connect webhook before we give up and reject.
    pub accept_timeout_s: u64,
    /// Calls handled at once.
    pub max_calls: usize,
    /// The longest an answered call may last (seconds); it is then terminated at the BSP.
    pub max_call_s: u64,
    /// How long a caller waits in the queue when no edge is free (seconds, 0 = no queue: such
    /// a call is rejected at once). Still ringing on the customer's phone meanwhile, so it must
    /// fit WhatsApp's ring window with the agent's own ring time: at most 40.
    pub queue_timeout_s: u64,
    /// The edge (a `[[server.edges]]` name, or a bot's `--name`) that takes calls whose queue
    /// time ran out, a voicemail bot for example; it takes no other calls. Unset: such calls
    /// are rejected, with `queue_timeout` in history.
    pub overflow: Option<String>,
    /// Calls answered within this many seconds of arriving count toward the service level
    /// (`/metrics`: wacall_inbound_answered_in_time_total / wacall_inbound_answered_total).
    pub service_level_s: u64,
    /// Which edges take which callers (none: every edge takes any caller).
    pub groups: Vec<GroupConfig>,
    /// The number's call settings (the JSON given to `wacall settings set`): outside their
    /// `call_hours` a call goes straight to the overflow edge (or is rejected, `outside_hours`).
    pub hours_file: Option<PathBuf>,
}

/// `[[routing.groups]]`: a set of edges and the callers they take.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    /// Edge names: `[[server.edges]]` names, or the names bots and phones sign in with.
    pub members: Vec<String>,
    /// Country calling codes (`52`, `1`): callers whose number starts with one come here.
    #[serde(default)]
    pub countries: Vec<String>,
    /// Takes the callers no group's countries match.
    #[serde(default)]
    pub default: bool,
    /// Takes calls only outside business hours (`routing.hours_file`), a night team say; the
    /// other groups then only inside them. Outside hours with no such group, calls overflow.
    #[serde(default)]
    pub outside_hours: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            ring_timeout_s: 20,
            accept_timeout_s: 45,
            max_calls: 500,
            max_call_s: 4 * 3600,
            queue_timeout_s: 25,
            overflow: None,
            service_level_s: 20,
            groups: Vec::new(),
            hours_file: None,
        }
    }
}

/// Loading the configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key or a value of the wrong type. `message` is the
    /// TOML parser's, with line and column.
    #[error("config file {path} is invalid: {message}")]
    Parse { path: String, message: String },
}

/// `message` with every quoted stretch (serde quotes the value it found) replaced by `"…"`.
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        match (c, inside) {
            ('"', false) => {
                inside = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                inside = false;
                out.push('"');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out.trim_end().to_owned()
}

impl Config {
    /// Reads `path`, applies the `WACALL_*` environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Self::parse(&text, &path.display().to_string())?;
        cfg.apply_env(|k| std::env::var(k).ok());
        Ok(cfg)
    }

    /// Parses TOML text (no environment overrides).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::parse(text, "(string)")
    }

    /// The parser's own message quotes the offending line, which may hold a secret (a typo in
    /// the token's line): the error names the place and the problem, never the text.
    fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {col}: ")
            });
            ConfigError::Parse {
                path: origin.to_owned(),
                message: format!("{}{}", at.unwrap_or_default(), without_quoted(e.message())),
            }
        })
    }

    /// Applies the `WACALL_*` overrides, reading variables through `get` (pass
    /// `|k| std::env::var(k).ok()` for the process environment). Empty values are ignored.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        for e in &mut self.server.edges {
            if let Some(v) = e.token_env.as_deref().and_then(get) {
                e.token = Secret::new(v.trim());
            }
        }
        if let Some(v) = get(ENV_BSP_TOKEN) {
            self.bsp.token = Secret::new(v.trim());
        }
        if let Some(v) = get(ENV_APP_SECRET) {
            self.webhook.app_secret = Secret::new(v.trim());
        }
        if let Some(v) = get(ENV_VERIFY_TOKEN) {
            self.webhook.verify_token = Secret::new(v.trim());
        }
        if let Some(v) = get(ENV_EDGE_TOKENS) {
            self.server.edge_tokens = v
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(Secret::new)
                .collect();
        }
    }

    /// What stands in the way of `serve`, one sentence each; empty when ready. Entries starting
    /// with `note:` are advice rather than blockers.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let b = &self.bsp;
        let url = b.effective_base_url();
        let url = url.as_str();
        if url.is_empty() {
            p.push("bsp.base_url is empty: set it to the BSP's https URL".to_owned());
        } else if !(url.starts_with("https://") || url.starts_with("http://")) {
            p.push(format!(
                "bsp.base_url {url:?} does not start with https:// (or http://)"
            ));
        } else if url.starts_with("http://") && !is_loopback_url(url) {
            p.push(format!(
                "note: bsp.base_url {url:?} is plain http: the token would travel unencrypted"
            ));
        }
        match b.provider {
            Provider::Bsp => {
                if b.waba_id.trim().is_empty() {
                    p.push("bsp.waba_id is empty: set the WhatsApp Business Account id".to_owned());
                }
            }
            Provider::Meta => {
                let id = b.phone_number_id.trim();
                if id.is_empty() {
                    p.push("bsp.phone_number_id is empty: Meta's API addresses the number by its phone-number id (WhatsApp Manager, API setup)".to_owned());
                } else if !id.bytes().all(|c| c.is_ascii_digit()) {
                    p.push(format!(
                        "bsp.phone_number_id {id:?} must be digits only (the id, not the number)"
                    ));
                }
                if !valid_graph_version(&b.graph_version) {
                    p.push(format!(
                        "bsp.graph_version {:?} must look like \"v23.0\"",
                        b.graph_version
                    ));
                }
            }
        }
        if b.phone_number.is_empty() {
            p.push(
                "bsp.phone_number is empty: set the business number (digits, country code first)"
                    .to_owned(),
            );
        } else if !b.phone_number.bytes().all(|c| c.is_ascii_digit()) {
            p.push(format!(
                "bsp.phone_number {:?} must be digits only, country code first, no '+' or spaces",
                b.phone_number
            ));
        }
        if b.token.is_empty() {
            p.push(format!(
                "bsp.token is empty: set it in the file or in {ENV_BSP_TOKEN}"
            ));
        }
        if b.timeout_ms == 0 {
            p.push("bsp.timeout_ms is 0: give a timeout in milliseconds (10000)".to_owned());
        }
        p.extend(self.recording.meta.problems("recording.meta"));
        if b.provider == Provider::Bsp
            && (self.recording.meta.record || self.recording.meta.transcribe)
        {
            p.push("recording.meta is on but bsp.provider is \"bsp\": Meta-side recording and transcription are Cloud API features (provider = \"meta\")".to_owned());
        }
        let w = &self.webhook;
        if w.app_secret.is_empty() {
            p.push(format!(
                "webhook.app_secret is empty: webhooks cannot be authenticated; set it or {ENV_APP_SECRET}"
            ));
        }
        if w.verify_token.is_empty() {
            p.push(format!(
                "webhook.verify_token is empty: the webhook subscription check cannot succeed; set it or {ENV_VERIFY_TOKEN}"
            ));
        }
        if !w.path.starts_with('/') {
            p.push(format!("webhook.path {:?} must start with '/'", w.path));
        }
        if w.max_body_bytes == 0 {
            p.push("webhook.max_body_bytes is 0".to_owned());
        }
        if !self.server.listen.ip().is_loopback() {
            p.push(format!(
                "note: server.listen {} is reachable from other machines: put it behind a TLS proxy",
                self.server.listen
            ));
        }
        match (&self.server.tls_cert, &self.server.tls_key) {
            (Some(_), None) => {
                p.push("server.tls_cert is set but server.tls_key is not".to_owned())
            }
            (None, Some(_)) => {
                p.push("server.tls_key is set but server.tls_cert is not".to_owned())
            }
            (Some(c), Some(k)) => {
                if let Err(e) = crate::bridge::listener::tls_config(c, k) {
                    p.push(e);
                }
            }
            (None, None) => {}
        }
        if self.server.max_connections == 0 {
            p.push("server.max_connections is 0: nothing could connect".to_owned());
        }
        if self.server.header_timeout_s == 0 {
            p.push("server.header_timeout_s is 0: give seconds (30)".to_owned());
        }
        let mut names = std::collections::HashSet::new();
        for (i, e) in self.server.edges.iter().enumerate() {
            let at = format!("server.edges[{i}]");
            if e.name.is_empty()
                || e.name.len() > crate::bridge::identity::MAX_NAME
                || crate::bridge::identity::clean_name(&e.name) != e.name
            {
                p.push(format!(
                    "{at}.name {:?} must be 1-{} letters, digits, '-', '_' or '.'",
                    e.name,
                    crate::bridge::identity::MAX_NAME
                ));
            } else if !names.insert(e.name.clone()) {
                p.push(format!("{at}.name {:?} is used twice", e.name));
            }
            if e.token.is_empty() {
                p.push(match &e.token_env {
                    Some(v) => format!("{at}.token is empty: set the environment variable {v}"),
                    None => format!("{at}.token is empty: set token_env (or token)"),
                });
            }
        }
        let mut tokens: Vec<&str> = self
            .server
            .edge_tokens
            .iter()
            .chain(self.server.edges.iter().map(|e| &e.token))
            .map(Secret::expose)
            .filter(|t| !t.is_empty())
            .collect();
        let all = tokens.len();
        tokens.sort_unstable();
        tokens.dedup();
        if tokens.len() != all {
            p.push("an edge token is used twice (server.edge_tokens, server.edges): each edge needs its own".to_owned());
        }
        if self.server.edge_tokens.iter().any(Secret::is_empty) {
            p.push("server.edge_tokens contains an empty token".to_owned());
        }
        let r = &self.routing;
        if r.max_calls == 0 {
            p.push("routing.max_calls is 0: no call could be handled".to_owned());
        }
        if r.accept_timeout_s == 0 || r.ring_timeout_s == 0 {
            p.push(
                "routing.ring_timeout_s and routing.accept_timeout_s must be above 0".to_owned(),
            );
        }
        if r.queue_timeout_s > MAX_QUEUE_S {
            p.push(format!(
                "routing.queue_timeout_s = {}: at most {MAX_QUEUE_S} (WhatsApp stops ringing after 30-60 s, and the agent needs time to answer)",
                r.queue_timeout_s
            ));
        }
        if let Some(o) = &r.overflow
            && o.trim().is_empty()
        {
            p.push("routing.overflow is empty: name the overflow edge, or leave it out".to_owned());
        }
        let mut names = std::collections::HashSet::new();
        for (i, g) in r.groups.iter().enumerate() {
            let at = format!("routing.groups[{i}]");
            if g.name.trim().is_empty() || !names.insert(g.name.as_str()) {
                p.push(format!("{at}.name = {:?}: empty or used twice", g.name));
            }
            if g.members.is_empty() {
                p.push(format!(
                    "{at}.members is empty: group {:?} could take no call",
                    g.name
                ));
            }
            for c in &g.countries {
                if c.is_empty() || c.len() > 3 || !c.bytes().all(|b| b.is_ascii_digit()) {
                    p.push(format!(
                        "{at}.countries: {c:?} is not a country calling code (1 to 3 digits)"
                    ));
                }
            }
            if !g.default && g.countries.is_empty() && !g.outside_hours {
                p.push(format!(
                    "{at}: group {:?} has no countries and is not the default: no call would reach it",
                    g.name
                ));
            }
        }
        if r.groups.iter().filter(|g| g.default).count() > 1 {
            p.push("routing.groups: more than one group has default = true".to_owned());
        }
        p
    }
}

/// `vNN.N`: the only shape Graph takes in the path.
pub fn valid_graph_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let mut parts = rest.split('.');
    let (Some(major), Some(minor), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    [major, minor]
        .iter()
        .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| c.is_ascii_digit()))
}

impl BspConfig {
    /// `base_url` trimmed; for Meta an empty one is Graph's host.
    pub fn effective_base_url(&self) -> String {
        let url = self.base_url.trim();
        if url.is_empty() && self.provider == Provider::Meta {
            META_GRAPH_URL.to_owned()
        } else {
            url.to_owned()
        }
    }
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.trim_start_matches("http://");
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host == "127.0.0.1" || rest.starts_with("[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(c.bsp.timeout_ms, 10_000);
        assert_eq!(c.bsp.max_retries, 3);
        assert_eq!(c.webhook.path, "/webhook");
        assert_eq!(c.webhook.max_body_bytes, 256 * 1024);
        assert_eq!(
            c.server.listen,
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(c.server.history_db, PathBuf::from("wacall-history.sqlite3"));
        assert!(c.recording.enabled);
        assert_eq!(c.recording.dir, PathBuf::from("recordings"));
        assert_eq!(c.routing.ring_timeout_s, 20);
        assert_eq!(c.routing.accept_timeout_s, 45);
        assert_eq!(c.routing.max_calls, 500);
    }

    const FULL: &str = r#"
        [bsp]
        base_url = "https://bsp.example.com/"
        waba_id = "1234"
        phone_number = "5215500000001"
        token = "tok-SECRET-1"
        timeout_ms = 5000
        [webhook]
        app_secret = "app-SECRET-2"
        verify_token = "verify-SECRET-3"
        [server]
        listen = "127.0.0.1:9000"
        edge_tokens = ["edge-SECRET-4"]
        [routing]
        max_calls = 3
    "#;

    #[test]
    fn full_file_parses_and_debug_hides_secrets() {
        let c = Config::from_toml_str(FULL).unwrap();
        assert_eq!(c.bsp.token.expose(), "tok-SECRET-1");
        assert_eq!(c.bsp.timeout_ms, 5000);
        assert_eq!(c.bsp.max_retries, 3);
        assert_eq!(c.server.edge_tokens, vec![Secret::new("edge-SECRET-4")]);
        assert_eq!(c.routing.max_calls, 3);
        assert_eq!(c.routing.ring_timeout_s, 20);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn the_queue_is_on_by_default_and_bounded_by_the_ring_window() {
        let c = Config::from_toml_str(FULL).unwrap();
        assert_eq!(c.routing.queue_timeout_s, 25);
        assert_eq!(c.routing.overflow, None);
        let long = FULL.replace("max_calls = 3", "max_calls = 3\nqueue_timeout_s = 90");
        let c = Config::from_toml_str(&long).unwrap();
        let p = c.problems();
        assert!(
            p.iter()
                .any(|m| m.contains("routing.queue_timeout_s = 90") && m.contains("at most 40")),
            "{p:?}"
        );
        let vm = FULL.replace("max_calls = 3", "max_calls = 3\noverflow = \"voicemail\"");
        assert_eq!(
            Config::from_toml_str(&vm)
                .unwrap()
                .routing
                .overflow
                .as_deref(),
            Some("voicemail")
        );
    }

    #[test]
    fn unknown_key_is_named_with_line() {
        let e =
            Config::from_toml_str("[bsp]\nbase_url = \"https://x\"\ntokn = \"x\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("tokn"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        let e = Config::from_toml_str("[bsps]\n").unwrap_err();
        assert!(e.to_string().contains("bsps"), "{e}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let e = Config::from_toml_str("[bsp]\ntimeout_ms = \"ten\"\n").unwrap_err();
        assert!(
            e.to_string().contains("timeout_ms") || e.to_string().contains("line 2"),
            "{e}"
        );
        assert!(Config::from_toml_str("[server]\nlisten = \"nowhere\"\n").is_err());
    }

    #[test]
    fn env_overrides() {
        let mut c = Config::from_toml_str(FULL).unwrap();
        c.apply_env(|k| match k {
            ENV_BSP_TOKEN => Some("t2".into()),
            ENV_APP_SECRET => Some("".into()),
            ENV_EDGE_TOKENS => Some(" a, b ,,c ".into()),
            _ => None,
        });
        assert_eq!(c.bsp.token.expose(), "t2");
        assert_eq!(c.webhook.app_secret.expose(), "app-SECRET-2");
        assert_eq!(c.webhook.verify_token.expose(), "verify-SECRET-3");
        let tokens: Vec<_> = c.server.edge_tokens.iter().map(|t| t.expose()).collect();
        assert_eq!(tokens, ["a", "b", "c"]);
    }

    #[test]
    fn problems_explain_what_is_missing() {
        let c = Config::from_toml_str("[server]\nlisten = \"0.0.0.0:8080\"\n").unwrap();
        let p = c.problems().join("\n");
        for needle in [
            "bsp.base_url is empty",
            "bsp.waba_id",
            "bsp.phone_number is empty",
            "bsp.token",
            "webhook.app_secret",
            "note: server.listen 0.0.0.0:8080",
        ] {
            assert!(p.contains(needle), "missing {needle:?} in {p}");
        }
        let c =
            Config::from_toml_str("[bsp]\nbase_url = \"ftp://x\"\nphone_number = \"+52 1550\"\n")
                .unwrap();
        let p = c.problems().join("\n");
        assert!(p.contains("does not start with https://"), "{p}");
        assert!(p.contains("digits only"), "{p}");
    }

    #[test]
    fn edges_by_identity_take_their_tokens_from_the_environment_and_are_checked() {
        let mut c = Config::from_toml_str(
            "[[server.edges]]\nname = \"ana\"\nrole = \"agent\"\ntoken_env = \"T_ANA\"\n\
             [[server.edges]]\nname = \"qa\"\nrole = \"supervisor\"\ntoken = \"tok-qa\"\n\
             [[server.edges]]\nname = \"bad name\"\nrole = \"bot\"\ntoken = \"tok-qa\"\n",
        )
        .unwrap();
        c.apply_env(|k| (k == "T_ANA").then(|| "tok-ana".to_owned()));
        assert_eq!(c.server.edges[0].token.expose(), "tok-ana");
        let p = c.problems().join("\n");
        assert!(p.contains("server.edges[2].name \"bad name\""), "{p}");
        assert!(p.contains("an edge token is used twice"), "{p}");
        assert!(!p.contains("tok-qa") && !p.contains("tok-ana"), "{p}");
        let e = Config::from_toml_str("[[server.edges]]\nname = \"x\"\nrole = \"boss\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line"), "{e}");
    }

    #[test]
    fn a_syntax_error_names_the_place_never_the_text() {
        for text in [
            "[bsp]\ntoken = \"tok-SECRET-9\n",
            "[bsp]\ntoken = tok-SECRET-9\n",
            "[bsp]\ntimeout_ms = \"tok-SECRET-9\"\n",
            "[server]\nedge_tokens = \"tok-SECRET-9\"\n",
        ] {
            let e = Config::from_toml_str(text).unwrap_err().to_string();
            assert!(!e.contains("SECRET"), "{e}");
            assert!(e.contains("line 2"), "{e}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("wacall-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.toml");
        std::fs::write(&f, "[bsp\n").unwrap();
        let e = Config::load(&f).unwrap_err().to_string();
        assert!(e.contains("bad.toml"), "{e}");
        let e = Config::load(&dir.join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.toml"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../wacall.example.toml");
        let c = Config::from_toml_str(text).unwrap();
        assert_eq!(c.bsp.phone_number, "5215500000001");
    }
}
