//! The `wacall phone` program: the eframe window around [`ui::show`](super::ui::show), the
//! config file that remembers the sign-in, devices and recent numbers, and `--sandbox`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::core::{self, Command, PhoneConfig, PhoneHandle};
use super::sandbox::PhoneSandbox;
use super::ui::{self, PhoneUi};
use crate::call::CallTimeouts;
use crate::media::MediaConfig;

/// What `~/.config/wacall/phone.toml` keeps. The token is a secret: the file is written 0600.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhoneSettings {
    pub hub_url: String,
    pub token: String,
    pub input: Option<String>,
    pub output: Option<String>,
    pub recent: Vec<String>,
    /// Shown to the bridge and in the history; defaults to the user name.
    pub agent_name: Option<String>,
}

/// `$XDG_CONFIG_HOME/wacall/phone.toml`, else `$HOME/.config/wacall/phone.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("wacall").join("phone.toml"))
}

impl PhoneSettings {
    /// A missing file is an empty configuration; an unreadable one is an error.
    pub fn load(path: &Path) -> anyhow::Result<PhoneSettings> {
        match std::fs::read_to_string(path) {
            Ok(s) => toml::from_str(&s).map_err(|e| {
                anyhow::anyhow!("{} is not a valid phone config: {e}", path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PhoneSettings::default()),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes atomically, readable by the owner only (the token is a secret).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = toml::to_string_pretty(self)?;
        let tmp = path.with_extension("toml.tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// `wacall phone` options.
pub struct PhoneOptions {
    pub hub: Option<String>,
    pub token: Option<String>,
    pub sandbox: bool,
    pub config_path: Option<PathBuf>,
    /// Don't open sound devices (silent phone).
    pub no_devices: bool,
    pub record_dir: Option<PathBuf>,
    /// Save a PNG of the window after this long, then exit (docs, CI).
    pub screenshot: Option<(PathBuf, Duration)>,
    /// If set, the screenshot also waits for this flag (a scripted scene is in place).
    pub screenshot_ready: Option<Arc<AtomicBool>>,
    /// Sandbox: seconds before the first simulated caller, and between callers.
    pub first_call: Duration,
    pub call_every: Duration,
    /// Runs once the phone has started (the screenshot example drives a call with it).
    pub on_start: Option<Box<dyn FnOnce(PhoneHandle) + Send>>,
}

impl Default for PhoneOptions {
    fn default() -> Self {
        PhoneOptions {
            hub: None,
            token: None,
            sandbox: false,
            config_path: default_config_path(),
            no_devices: false,
            record_dir: None,
            screenshot: None,
            screenshot_ready: None,
            first_call: Duration::from_secs(4),
            call_every: Duration::from_secs(20),
            on_start: None,
        }
    }
}

struct PhoneApp {
    ui: PhoneUi,
    settings: PhoneSettings,
    /// `None`: nothing is saved (sandbox sessions must not overwrite the agent's sign-in).
    config_path: Option<PathBuf>,
    screenshot: Option<Screenshot>,
    _sandbox: Option<PhoneSandbox>,
}

struct Screenshot {
    path: PathBuf,
    at: Instant,
    ready: Option<Arc<AtomicBool>>,
    requested: bool,
}

impl PhoneApp {
    fn persist(&mut self) {
        if !std::mem::take(&mut self.ui.settings_changed) {
            return;
        }
        let v = self.ui.phone.view();
        self.settings.hub_url = self.ui.hub_url.trim().to_string();
        self.settings.token = self.ui.token.trim().to_string();
        self.settings.recent = self.ui.recent.clone();
        self.settings.input = v.input.clone();
        self.settings.output = v.output.clone();
        if let Some(p) = &self.config_path
            && let Err(e) = self.settings.save(p)
        {
            tracing::warn!(error = %e, "cannot save the phone config");
        }
    }

    fn screenshot(&mut self, ui: &mut egui::Ui) {
        let Some(s) = self.screenshot.as_mut() else {
            return;
        };
        let ready = s.ready.as_ref().is_none_or(|r| r.load(Ordering::SeqCst));
        if !s.requested && ready && Instant::now() >= s.at {
            s.requested = true;
            let path = s.path.clone();
            let ctx = ui.ctx().clone();
            ui.ctx().request_screenshot(move |image| {
                match save_png(&path, &image) {
                    Ok(()) => eprintln!("screenshot saved to {}", path.display()),
                    Err(e) => eprintln!("screenshot failed: {e}"),
                }
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                ctx.request_repaint();
            });
        }
        ui.ctx().request_repaint_after(Duration::from_millis(100));
    }
}

/// Writes an egui screenshot as PNG.
pub fn save_png(path: &Path, image: &egui::ColorImage) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let rgba: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|c| c.to_srgba_unmultiplied())
        .collect();
    image::save_buffer(
        path,
        &rgba,
        image.size[0] as u32,
        image.size[1] as u32,
        image::ColorType::Rgba8,
    )?;
    Ok(())
}

impl eframe::App for PhoneApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        ui::show(ui, &mut self.ui);
        self.persist();
        self.screenshot(ui);
    }
}

/// Runs the phone window until it is closed. Call on the main thread, outside the runtime.
pub fn run(mut opts: PhoneOptions, rt: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let _enter = rt.enter();
    let mut settings = match &opts.config_path {
        Some(p) if !opts.sandbox => PhoneSettings::load(p)?,
        _ => PhoneSettings::default(),
    };
    let sandbox = if opts.sandbox {
        let sb = rt.block_on(PhoneSandbox::start(CallTimeouts {
            ring: Duration::from_secs(30),
            ..CallTimeouts::default()
        }))?;
        eprintln!(
            "wacall phone --sandbox: bridge {} with simulated callers; call +{} to see a \
             missing call permission",
            sb.bridge.url(),
            super::sandbox::NO_PERMISSION_NUMBER
        );
        settings.hub_url = sb.hub_url.clone();
        settings.token = sb.edge_token.clone();
        Some(sb)
    } else {
        None
    };
    // Given on the command line: remember them (not for the sandbox's throwaway token).
    let from_cli = !opts.sandbox && (opts.hub.is_some() || opts.token.is_some());
    if let Some(h) = opts.hub.take() {
        settings.hub_url = h;
    }
    if let Some(t) = opts.token.take() {
        settings.token = t;
    }
    let name = settings
        .agent_name
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "agent".into());
    let cfg = PhoneConfig {
        name,
        media: if opts.sandbox {
            MediaConfig::loopback()
        } else {
            MediaConfig::default()
        },
        use_devices: !opts.no_devices,
        input: settings.input.clone(),
        output: settings.output.clone(),
        record_dir: opts.record_dir.clone(),
        ..PhoneConfig::default()
    };

    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("wacall phone")
            .with_inner_size([720.0, 820.0])
            .with_min_inner_size([520.0, 560.0]),
        ..Default::default()
    };
    let config_path = if opts.sandbox {
        None
    } else {
        opts.config_path.clone()
    };
    let screenshot = opts.screenshot.take().map(|(path, after)| Screenshot {
        path,
        at: Instant::now() + after,
        ready: opts.screenshot_ready.take(),
        requested: false,
    });
    let (first_call, call_every) = (opts.first_call, opts.call_every);
    let on_start = opts.on_start.take();
    let rt2 = rt.clone();
    eframe::run_native(
        "wacall phone",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let notify: core::Notify = Arc::new(move || ctx.request_repaint());
            let _enter = rt2.enter();
            let phone = core::start(cfg, notify);
            let mut ui_state = PhoneUi::new(phone.clone());
            ui_state.hub_url = settings.hub_url.clone();
            ui_state.token = settings.token.clone();
            ui_state.recent = settings.recent.clone();
            ui_state.settings_changed = from_cli;
            if !settings.hub_url.is_empty() && !settings.token.is_empty() {
                phone.send(Command::SignIn {
                    url: settings.hub_url.clone(),
                    token: settings.token.clone(),
                });
            }
            if let Some(sb) = &sandbox {
                sb.spawn_callers(phone.clone(), first_call, call_every);
            }
            if let Some(f) = on_start {
                f(phone.clone());
            }
            Ok(Box::new(PhoneApp {
                ui: ui_state,
                settings,
                config_path,
                screenshot,
                _sandbox: sandbox,
            }))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the phone window: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_with_private_permissions() {
        let dir =
            std::env::temp_dir().join(format!("wacall-phone-cfg-{:x}", rand::random::<u64>()));
        let path = dir.join("wacall").join("phone.toml");
        assert_eq!(
            PhoneSettings::load(&path).unwrap(),
            PhoneSettings::default()
        );
        let s = PhoneSettings {
            hub_url: "ws://127.0.0.1:8080/hub".into(),
            token: "secret".into(),
            input: Some("wacall_mic".into()),
            output: None,
            recent: vec!["5215512345678".into()],
            agent_name: None,
        };
        s.save(&path).unwrap();
        assert_eq!(PhoneSettings::load(&path).unwrap(), s);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "hub_url = 3").unwrap();
        assert!(PhoneSettings::load(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
