//! The `wacall` command line. Thin: every command is a library call; this file only parses
//! arguments, sets up logging, and turns errors into friendly messages and exit codes.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tokio::sync::{mpsc, watch};

use wacall::audio::codec::EncoderConfig;
use wacall::bot::behaviours::PromptClip;
use wacall::bot::runner::{self, BotConfig};
use wacall::bot::voice_ai::{StreamFormat, VoiceAiConfig};
use wacall::bridge::{Bridge, BridgeConfig};
use wacall::cli::{dial, ops};
use wacall::config::Config;
use wacall::edge::media_watch::MediaDeadlines;
use wacall::media::{MediaConfig, MediaSession};
use wacall::sandbox::demo::{self, DemoOptions};

#[derive(Parser)]
#[command(
    name = "wacall",
    version,
    about = "WhatsApp Business voice calls without a browser",
    long_about = "WhatsApp Business voice calls without a browser.\n\n\
        Start here: `wacall sandbox` runs the whole product on this machine (a local BSP, simulated \
        WhatsApp users, the bridge and a bot) and places one call each way.\n\
        In production: `wacall serve` receives webhooks and drives calls; `wacall bot` and the \
        softphone connect to it as edges."
)]
struct Cli {
    /// Log filter (also RUST_LOG), e.g. `info`, `wacall=debug`.
    #[arg(
        long,
        global = true,
        default_value = "warn,rtc=error,rtc_ice=error,rtc_dtls=error,webrtc=error"
    )]
    log: String,
    /// Log lines as `text` or `json` (one object per line, the call id as a field; for log
    /// collectors).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Show customers' numbers, names and key presses in logs (masked by default: `•••5678`).
    #[arg(long, global = true)]
    log_pii: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole product on this machine: local BSP, simulated users, bridge and bot.
    Sandbox(SandboxArgs),
    /// Run the bridge: webhooks, BSP actions, call routing, the edge hub, history, metrics.
    Serve(ServeArgs),
    /// Run a headless bot edge connected to a bridge's hub.
    Bot(BotArgs),
    /// Call a WhatsApp user through a bridge's hub, talk with a tone or prompt, and report.
    Dial(DialArgs),
    /// A user's call permission (Meta's Cloud API): the state, what may be done now and when
    /// limits reset; `permission request NUMBER` asks the user.
    Permission(PermissionArgs),
    /// Call settings of the business number: check a file offline, or submit it.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Configuration file checks.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Operator actions on one call at the BSP.
    #[command(subcommand)]
    Call(CallCmd),
    /// List the call history.
    History(HistoryArgs),
    /// Write one call's report as a self-contained HTML file (history row, timeline, waveform,
    /// quality over the call), from the history or from a recording and its sidecar.
    Report(ReportArgs),
    /// Check this host's SDP without placing a call.
    #[command(subcommand)]
    Media(MediaCmd),
    /// List audio input and output devices and the formats they offer.
    Devices,
    /// The agent's desktop softphone (a window): sign in to a bridge, take and place calls.
    Phone(PhoneArgs),
}

#[derive(Args)]
struct PhoneArgs {
    /// The bridge's hub, e.g. ws://127.0.0.1:8080/hub (remembered in the config file).
    #[arg(long, env = "WACALL_HUB_URL")]
    hub: Option<String>,
    /// This agent's token (one of the bridge's `server.edge_tokens`; remembered, file mode 0600).
    #[arg(long, env = "WACALL_EDGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Run a local sandbox (simulated callers every ~20 s) and sign in to it.
    #[arg(long)]
    sandbox: bool,
    /// Config file (default: $XDG_CONFIG_HOME/wacall/phone.toml or ~/.config/wacall/phone.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Don't open sound devices (a silent phone).
    #[arg(long)]
    no_devices: bool,
    /// Record calls here (two-channel WAV + JSON sidecar).
    #[arg(long)]
    record_dir: Option<PathBuf>,
    /// Save a PNG screenshot of the window after --screenshot-after seconds, then exit.
    #[arg(long, hide = true)]
    screenshot: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 3)]
    screenshot_after: u64,
}

#[derive(Args)]
struct SandboxArgs {
    /// Simulated users calling the business.
    #[arg(long, default_value_t = 1)]
    calls_in: usize,
    /// Calls the business places to simulated users.
    #[arg(long, default_value_t = 1)]
    calls_out: usize,
    /// Seconds each call lasts.
    #[arg(long, default_value_t = 6)]
    talk_secs: u64,
    /// Where recordings and their sidecars go.
    #[arg(long, default_value = "recordings")]
    record_dir: PathBuf,
    /// The history database.
    #[arg(long, default_value = "wacall-sandbox.sqlite3")]
    history_db: PathBuf,
    /// The prompt the bot plays first.
    #[arg(long, default_value = "audio/greeting.wav")]
    prompt: PathBuf,
    /// No live status line.
    #[arg(long)]
    quiet: bool,
    /// Whose API the local BSP speaks: `bsp` (the BSP's call actions) or `meta` (Meta's Cloud
    /// API: Graph paths, permissions, Meta-side recording).
    #[arg(long, default_value = "bsp", value_name = "bsp|meta")]
    provider: wacall::config::Provider,
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, short, default_value = "wacall.toml", env = "WACALL_CONFIG")]
    config: PathBuf,
    /// Also run a bot in this process (answers every call with the prompt, then echoes).
    #[arg(long)]
    bot: bool,
    #[command(flatten)]
    bot_opts: BotBehaviour,
}

#[derive(Args, Clone)]
struct BotBehaviour {
    /// WAV prompt played when the call is answered.
    #[arg(long)]
    prompt: Option<PathBuf>,
    /// Echo the caller after the prompt.
    #[arg(long)]
    echo: bool,
    /// Play a steady tone (Hz) after the prompt.
    #[arg(long)]
    tone: Option<f32>,
    /// Hang up when the prompt ends.
    #[arg(long)]
    hangup_after_prompt: bool,
    /// Play the prompt again and again for the whole call (music on hold, load tests).
    #[arg(long, conflicts_with = "hangup_after_prompt")]
    loop_prompt: bool,
    /// Hang up after this many seconds.
    #[arg(long)]
    max_secs: Option<u64>,
    /// Accept this many milliseconds after pre-accepting.
    #[arg(long, default_value_t = 300)]
    accept_delay_ms: u64,
    /// End an answered call when no audio has arrived from the customer for this long
    /// (the far end is gone though nobody hung up).
    #[arg(long, default_value_t = 30)]
    rtp_timeout_secs: u64,
    /// Media sessions kept built for the next calls, so calls arriving together after a quiet
    /// spell skip building their peer connection. Size it to the largest burst you expect:
    /// each holds a UDP socket and about 0.2 MiB. 0 = build each on demand.
    #[arg(long, default_value_t = 50)]
    ready_sessions: usize,
    /// Record calls here (two-channel WAV + JSON sidecar).
    #[arg(long)]
    record_dir: Option<PathBuf>,
    /// Local address for media (the interface WhatsApp's servers can reach).
    #[arg(long)]
    media_bind: Option<IpAddr>,
    /// Public address to announce (1:1 NAT).
    #[arg(long)]
    public_ip: Option<IpAddr>,
    /// Stream calls to this voice-AI WebSocket (Twilio Media Streams messages) after the prompt.
    #[arg(long)]
    voice_ai: Option<String>,
    /// Audio on the voice-AI stream: `mulaw8k` (Twilio's) or `pcm16k`.
    #[arg(long, default_value = "mulaw8k")]
    voice_ai_format: String,
}

#[derive(Args)]
struct BotArgs {
    /// The bridge's hub, e.g. ws://127.0.0.1:8080/hub
    #[arg(long, env = "WACALL_HUB_URL")]
    hub: String,
    /// This edge's token (one of the bridge's `server.edge_tokens`).
    #[arg(long, env = "WACALL_EDGE_TOKEN", hide_env_values = true)]
    token: String,
    #[arg(long, default_value = "bot")]
    name: String,
    #[command(flatten)]
    behaviour: BotBehaviour,
}

#[derive(Args)]
struct DialArgs {
    /// The user's number, country code first (or a WhatsApp user id).
    number: String,
    /// A running bridge's hub. Without it, a bridge is started here from --config (its
    /// `server.listen` must receive the BSP's webhooks, as for `serve`).
    #[arg(long, env = "WACALL_HUB_URL")]
    hub: Option<String>,
    /// This edge's token at that hub.
    #[arg(long, env = "WACALL_EDGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Configuration for the standalone mode.
    #[arg(long, short, default_value = "wacall.toml", env = "WACALL_CONFIG")]
    config: PathBuf,
    /// When the user has not allowed calls: send them a call-permission request, wait for
    /// their answer (--permission-wait), then call. Without it, a terminal is asked first.
    #[arg(long, conflicts_with = "no_ask_permission")]
    ask_permission: bool,
    /// Never send a permission request; say what to do instead.
    #[arg(long)]
    no_ask_permission: bool,
    /// The permission request's text.
    #[arg(long)]
    permission_text: Option<String>,
    /// Seconds to wait for the user's answer to the permission request.
    #[arg(long, default_value_t = 300)]
    permission_wait: u64,
    /// Ask Meta to record this call (overrides `[recording.meta] record`; Meta's Cloud API).
    #[arg(long, conflicts_with = "no_meta_record")]
    meta_record: bool,
    #[arg(long)]
    no_meta_record: bool,
    /// Ask Meta to transcribe this call (overrides `[recording.meta] transcribe`).
    #[arg(long, conflicts_with = "no_meta_transcribe")]
    meta_transcribe: bool,
    #[arg(long)]
    no_meta_transcribe: bool,
    #[command(flatten)]
    behaviour: BotBehaviour,
}

impl DialArgs {
    fn plan(&self) -> dial::DialPlan {
        let choice = |yes: bool, no: bool| match (yes, no) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        dial::DialPlan {
            options: wacall::bot::runner::DialOptions {
                meta_record: choice(self.meta_record, self.no_meta_record),
                meta_transcribe: choice(self.meta_transcribe, self.no_meta_transcribe),
            },
            ask: match (self.ask_permission, self.no_ask_permission) {
                (true, _) => dial::Ask::Always,
                (_, true) => dial::Ask::Never,
                _ => dial::Ask::Prompt,
            },
            text: self.permission_text.clone(),
            wait: std::time::Duration::from_secs(self.permission_wait.max(1)),
        }
    }
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct PermissionArgs {
    #[command(subcommand)]
    request: Option<PermissionCmd>,
    /// The user's number, country code first.
    number: Option<String>,
    #[arg(long, short, default_value = "wacall.toml", env = "WACALL_CONFIG")]
    config: PathBuf,
    /// The bridge's history (`server.history_db`), for what it last learnt (default: the
    /// config's).
    #[arg(long)]
    db: Option<PathBuf>,
}

#[derive(Subcommand)]
enum PermissionCmd {
    /// Send the user the interactive call-permission request (billed as a message; needs an
    /// open 24-hour window).
    Request {
        number: String,
        /// The request's text.
        #[arg(long)]
        text: Option<String>,
        #[arg(long, short, default_value = "wacall.toml", env = "WACALL_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum SettingsCmd {
    /// Validate a settings file (JSON or TOML) offline; names every wrong field.
    Check {
        file: PathBuf,
        /// Check for this provider (bsp refuses Meta's Cloud API keys such as sip or
        /// call_icons). Default: bsp.provider in --config when given and readable, else bsp.
        #[arg(long, value_name = "bsp|meta")]
        provider: Option<wacall::config::Provider>,
        /// Configuration whose bsp.provider is the default for --provider.
        #[arg(long, short, env = "WACALL_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the number's current call settings, SIP status included (Meta's Cloud API; a
    /// BSP's API cannot read them back).
    Get {
        #[arg(long, short, default_value = "wacall.toml", env = "WACALL_CONFIG")]
        config: PathBuf,
        /// Print Meta's answer as JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// Validate, then submit (to the BSP, or to Meta with bsp.provider = "meta").
    Set {
        file: PathBuf,
        #[arg(long, short, default_value = "wacall.toml", env = "WACALL_CONFIG")]
        config: PathBuf,
        /// Submit even when there are warnings.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Load the configuration and explain what is missing.
    Check {
        #[arg(long, short, default_value = "wacall.toml", env = "WACALL_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum CallCmd {
    /// End a call.
    Terminate(CallTarget),
    /// Decline a ringing call.
    Reject(CallTarget),
}

#[derive(Args)]
struct CallTarget {
    #[arg(long)]
    call_id: String,
    /// The user's number on the call.
    #[arg(long)]
    to: String,
    #[arg(long, short, default_value = "wacall.toml", env = "WACALL_CONFIG")]
    config: PathBuf,
}

#[derive(Args)]
struct HistoryArgs {
    /// The history database (`server.history_db`).
    #[arg(long, default_value = "wacall-history.sqlite3")]
    db: PathBuf,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// One call's quality over time (a line per 2 s report), instead of the list.
    #[arg(long, value_name = "CALL_ID")]
    quality: Option<String>,
    /// The users' call permissions the bridge learnt (Meta's checks and the users' replies),
    /// instead of the calls.
    #[arg(long)]
    permissions: bool,
}

#[derive(Args)]
struct ReportArgs {
    /// A call id (looked up in --db), or a recording's .wav (its .json sidecar beside it).
    call: String,
    /// The history database (`server.history_db`).
    #[arg(long, default_value = "wacall-history.sqlite3")]
    db: PathBuf,
    /// Where to write the report (default: wacall-report-CALL_ID.html here).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum MediaCmd {
    /// Print the SDP offer this host would send in `connect`.
    Offer(MediaArgs),
    /// Answer an offer SDP file as this host would in `pre_accept`.
    Answer {
        file: PathBuf,
        #[command(flatten)]
        media: MediaArgs,
    },
    /// Check an answer SDP against the offer it answers (payload types, telephone-event,
    /// fmtp, ptime): why a call would be silent or lose its keypad. Exit 1 when a rule is broken.
    Check { offer: PathBuf, answer: PathBuf },
}

#[derive(Args)]
struct MediaArgs {
    /// Local address(es) to gather candidates on.
    #[arg(long)]
    bind: Vec<IpAddr>,
    /// Public address to announce (1:1 NAT).
    #[arg(long)]
    public_ip: Vec<IpAddr>,
    /// UDP port range, e.g. 40000-40100.
    #[arg(long)]
    ports: Option<String>,
}

fn media_config(
    bind: &[IpAddr],
    public: &[IpAddr],
    ports: Option<&str>,
) -> anyhow::Result<MediaConfig> {
    let mut m = MediaConfig::default();
    if !bind.is_empty() {
        m.bind = bind.to_vec();
    }
    m.public_ips = public.iter().map(ToString::to_string).collect();
    if let Some(p) = ports {
        let (a, b) = p
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
            .filter(|(a, b)| a <= b && *a > 0)
            .ok_or_else(|| anyhow::anyhow!("--ports: {p:?} is not a range like 40000-40100"))?;
        m.port_range = Some((a, b));
    }
    Ok(m)
}

fn bot_config(name: &str, b: &BotBehaviour) -> anyhow::Result<BotConfig> {
    let prompt = match &b.prompt {
        Some(p) => Some(PromptClip::load(p, EncoderConfig::default())?),
        None => None,
    };
    let voice_ai = match &b.voice_ai {
        None => None,
        Some(url) => {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                anyhow::bail!("--voice-ai: {url:?} is not a ws:// or wss:// URL");
            }
            let format = match b.voice_ai_format.as_str() {
                "mulaw8k" => StreamFormat::Mulaw8k,
                "pcm16k" => StreamFormat::Pcm16k,
                other => anyhow::bail!("--voice-ai-format: {other:?} is not mulaw8k or pcm16k"),
            };
            Some(VoiceAiConfig {
                url: url.clone(),
                format,
            })
        }
    };
    let mut media = MediaConfig::default();
    if let Some(ip) = b.media_bind {
        media.bind = vec![ip];
    }
    if let Some(ip) = b.public_ip {
        media.public_ips = vec![ip.to_string()];
    }
    Ok(BotConfig {
        name: name.to_string(),
        accept_delay: Duration::from_millis(b.accept_delay_ms),
        prompt,
        tone_hz: b.tone,
        echo: b.echo,
        hangup_after_prompt: b.hangup_after_prompt,
        loop_prompt: b.loop_prompt,
        max_duration: b.max_secs.map(Duration::from_secs),
        record_dir: b.record_dir.clone(),
        media,
        encoder: EncoderConfig::default(),
        media_deadlines: MediaDeadlines {
            silence: Duration::from_secs(b.rtp_timeout_secs.max(1)),
            ..MediaDeadlines::default()
        },
        ready_sessions: b.ready_sessions,
        voice_ai,
        uploads: None,
    })
}

async fn sandbox(a: SandboxArgs) -> anyhow::Result<ExitCode> {
    let opts = DemoOptions {
        calls_in: a.calls_in,
        calls_out: a.calls_out,
        talk: Duration::from_secs(a.talk_secs),
        record_dir: a.record_dir,
        history_db: a.history_db,
        prompt: Some(a.prompt),
        live: !a.quiet,
        provider: a.provider,
    };
    println!(
        "wacall sandbox: local {} API, {} simulated caller(s), {} outbound call(s), bridge + bot on 127.0.0.1",
        match a.provider {
            wacall::config::Provider::Bsp => "BSP",
            wacall::config::Provider::Meta => "Meta Cloud",
        },
        opts.calls_in,
        opts.calls_out
    );
    let outcome = demo::run(opts).await?;
    print!("{}", demo::format_table(&outcome));
    if outcome.success() {
        println!("OK: audio flowed both ways in every call.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("FAILED: some call did not carry audio both ways (see the table).");
        Ok(ExitCode::FAILURE)
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    let problems = cfg.problems();
    for p in &problems {
        eprintln!("config: {p}");
    }
    if problems.iter().any(|p| !p.starts_with("note:")) {
        anyhow::bail!(
            "{} is not ready for `serve` (see above; `wacall config check` explains)",
            a.config.display()
        );
    }
    // The bot's configuration (prompt read, its encoding started in the background) comes
    // before the port opens: a bad prompt fails here, and the first webhook finds a bot.
    let bot_cfg = if a.bot {
        let mut bot_cfg = bot_config("serve-bot", &a.bot_opts)?;
        if bot_cfg.record_dir.is_none() && cfg.recording.enabled {
            bot_cfg.record_dir = Some(cfg.recording.dir.clone());
        }
        Some(bot_cfg)
    } else {
        None
    };
    let mut bridge_cfg = BridgeConfig::from_config(&cfg);
    bridge_cfg.start_ready = !a.bot;
    // On a thread and runtime of its own (see `Bridge::start_on`).
    let bridge = Bridge::start(cfg.server.listen, bridge_cfg).await?;
    println!(
        "wacall bridge on {} (webhook {}{}, hub {})",
        bridge.url(),
        bridge.url(),
        cfg.webhook.path,
        bridge.hub_url()
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut bot = None;
    if let Some(bot_cfg) = bot_cfg {
        let link = bridge
            .attach_local_edge("serve-bot", wacall::hub_protocol::EdgeKind::Bot)
            .await
            .ok_or_else(|| anyhow::anyhow!("the bridge did not take the bot's link"))?;
        let (_cmd_tx, cmd_rx) = mpsc::channel(1);
        bot = Some(tokio::spawn(async move {
            let _keep = _cmd_tx;
            runner::run_on(bot_cfg, link, cmd_rx, stop_rx).await
        }));
        bridge.readiness().set_ready();
    }
    let signal = stop_signal().await;
    eprintln!("stopping ({signal}): ending live calls at the BSP; a second signal exits at once");
    tokio::spawn(async {
        let again = stop_signal().await;
        eprintln!("{again} again: exiting without ending calls");
        std::process::exit(130);
    });
    let _ = stop_tx.send(true);
    if let Some(b) = bot {
        let _ = b.await;
    }
    bridge.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM (what systemd, Docker and Kubernetes send to stop a
/// service); returns which. Both mean: stop taking calls and end the live ones cleanly.
async fn stop_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops cleanly");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn bot(a: BotArgs) -> anyhow::Result<ExitCode> {
    let cfg = bot_config(&a.name, &a.behaviour)?;
    let (_cmd_tx, cmd_rx) = mpsc::channel(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let _ = stop_signal().await;
        let _ = stop_tx.send(true);
    });
    runner::run(cfg, &a.hub, &a.token, cmd_rx, stop_rx).await?;
    Ok(ExitCode::SUCCESS)
}

async fn dial(a: DialArgs) -> anyhow::Result<ExitCode> {
    let bot = bot_config("dialer", &a.behaviour)?;
    let show = |line: &str| println!("{line}");
    let stop = async {
        let _ = stop_signal().await;
    };
    let outcome = match (&a.hub, &a.token) {
        (Some(hub), Some(token)) => {
            dial::through_hub(hub, token, bot, &a.number, a.plan(), show, stop).await?
        }
        (Some(_), None) => anyhow::bail!("--hub needs --token (or WACALL_EDGE_TOKEN)"),
        (None, _) => {
            let cfg = Config::load(&a.config)?;
            dial::standalone(&cfg, bot, &a.number, a.plan(), show, stop).await?
        }
    };
    Ok(if outcome.declined {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn report(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let out = wacall::cli::report::write(&a.call, &a.db, a.out)?;
    println!("report written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn history(a: HistoryArgs) -> anyhow::Result<ExitCode> {
    let what = if a.permissions {
        wacall::cli::history::Show::Permissions
    } else if let Some(id) = a.quality {
        wacall::cli::history::Show::Quality(id)
    } else {
        wacall::cli::history::Show::Calls
    };
    print!(
        "{}",
        wacall::cli::history::render(&a.db, what, a.limit, a.json)?
    );
    Ok(ExitCode::SUCCESS)
}

async fn media(cmd: MediaCmd) -> anyhow::Result<ExitCode> {
    let read = |f: &PathBuf| {
        std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))
    };
    let (args, file) = match cmd {
        MediaCmd::Offer(m) => (m, None),
        MediaCmd::Answer { file, media } => (media, Some(file)),
        MediaCmd::Check { offer, answer } => {
            let problems = wacall::media::negotiate::audit_answer(&read(&offer)?, &read(&answer)?);
            for p in &problems {
                println!("{p}");
            }
            if problems.is_empty() {
                println!("ok: the answer follows the negotiation rules");
                return Ok(ExitCode::SUCCESS);
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let cfg = media_config(&args.bind, &args.public_ip, args.ports.as_deref())?;
    let (session, sdp) = match file {
        None => MediaSession::offering(&cfg, "media-check").await?,
        Some(f) => {
            let offer = std::fs::read_to_string(&f)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
            MediaSession::answering(&cfg, "media-check", &offer).await?
        }
    };
    print!("{sdp}");
    session.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli
        .command
        .unwrap_or(Cmd::Sandbox(SandboxArgs::parse_from(["sandbox"])))
    {
        Cmd::Sandbox(a) => sandbox(a).await,
        Cmd::Serve(a) => serve(a).await,
        Cmd::Bot(a) => bot(a).await,
        Cmd::Dial(a) => dial(a).await,
        Cmd::Permission(p) => match p.request {
            Some(PermissionCmd::Request {
                number,
                text,
                config,
            }) => {
                let cfg = Config::load(&config)?;
                wacall::cli::permission::request(&cfg, &number, text.as_deref())
                    .await
                    .map(|_| ExitCode::SUCCESS)
            }
            None => {
                let Some(number) = p.number else {
                    anyhow::bail!("give the user's number: wacall permission NUMBER");
                };
                let cfg = Config::load(&p.config)?;
                let db = p.db.unwrap_or_else(|| cfg.server.history_db.clone());
                wacall::cli::permission::show(&cfg, &number, Some(&db))
                    .await
                    .map(|_| ExitCode::SUCCESS)
            }
        },
        Cmd::Settings(SettingsCmd::Check {
            file,
            provider,
            config,
        }) => {
            let provider = ops::settings_provider(provider, config.as_deref());
            ops::settings_check(&file, provider).map(|_| ExitCode::SUCCESS)
        }
        Cmd::Settings(SettingsCmd::Get { config, json }) => {
            let cfg = Config::load(&config)?;
            ops::settings_get(&cfg, json)
                .await
                .map(|_| ExitCode::SUCCESS)
        }
        Cmd::Settings(SettingsCmd::Set { file, config, yes }) => {
            let cfg = Config::load(&config)?;
            ops::settings_set(&cfg, &file, yes)
                .await
                .map(|_| ExitCode::SUCCESS)
        }
        Cmd::Config(ConfigCmd::Check { config }) => {
            ops::config_check(&config).map(|_| ExitCode::SUCCESS)
        }
        Cmd::Call(c) => {
            let (action, t) = match c {
                CallCmd::Terminate(t) => ("terminate", t),
                CallCmd::Reject(t) => ("reject", t),
            };
            let cfg = Config::load(&t.config)?;
            ops::call_action(&cfg, action, &t.call_id, &t.to)
                .await
                .map(|_| ExitCode::SUCCESS)
        }
        Cmd::History(a) => history(a),
        Cmd::Report(a) => report(a),
        Cmd::Media(m) => media(m).await,
        Cmd::Devices => {
            let list = wacall::audio::device::list_devices()?;
            print!("{list}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Phone(_) => anyhow::bail!("the phone runs on the main thread, outside the runtime"),
    }
}

impl SandboxArgs {
    fn parse_from<I: IntoIterator<Item = &'static str>>(args: I) -> SandboxArgs {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            a: SandboxArgs,
        }
        Only::parse_from(args).a
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    wacall::pii::show_in_logs(cli.log_pii);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        logs.init();
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wacall: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The phone's window needs the main thread; its network side runs on the runtime.
    let cli = match cli.command {
        Some(Cmd::Phone(a)) => return phone(a, rt.handle()),
        command => Cli { command, ..cli },
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wacall: {}", wacall::cli::friendly(&e));
            ExitCode::FAILURE
        }
    }
}

fn phone(a: PhoneArgs, rt: &tokio::runtime::Handle) -> ExitCode {
    let opts = wacall::phone::app::PhoneOptions {
        hub: a.hub,
        token: a.token,
        sandbox: a.sandbox,
        config_path: a.config.or_else(wacall::phone::app::default_config_path),
        no_devices: a.no_devices,
        record_dir: a.record_dir,
        screenshot: a
            .screenshot
            .map(|p| (p, Duration::from_secs(a.screenshot_after))),
        ..Default::default()
    };
    match wacall::phone::app::run(opts, rt) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wacall phone: {}", wacall::cli::friendly(&e));
            ExitCode::FAILURE
        }
    }
}
