//! The sandbox: a local BSP plus simulated WhatsApp users that are real WebRTC peers, so the
//! whole product runs, demos and is tested on one machine without a WhatsApp account.
//!
//! The simulated users behave like WhatsApp's media side (ICE-lite, `actpass` offers, mid
//! `audio`, Opus 111 + telephone-event 126), speak through signed Meta-shaped webhooks, and answer
//! the BSP's actions with Meta's response shapes, so what passes here passes against WhatsApp.

pub mod bsp;
pub mod demo;
pub mod graph;
pub mod meta;
pub mod permissions;
pub mod voice;
pub mod webhooks;
pub mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use bsp::Received;
pub use webhooks::Business;
pub use world::{CallReport, Faults, SandboxEvent, SimState, UserCall, UserPlan, World};

use crate::media::MediaConfig;

/// Everything the sandbox needs to know about the business it simulates WhatsApp for.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Whose API shape the sandbox speaks: the BSP's, or Meta's Cloud API.
    pub provider: crate::config::Provider,
    pub business: Business,
    /// The Bearer token the BSP accepts.
    pub token: String,
    /// The app secret webhooks are signed with.
    pub app_secret: String,
    /// Where the bridge receives webhooks.
    pub webhook_url: String,
    /// Where the BSP listens (127.0.0.1:0 picks a port).
    pub listen: SocketAddr,
    pub media: MediaConfig,
}

/// A sandbox and a bridge wired to each other on 127.0.0.1, as the demo, the softphone's
/// `--sandbox` and the end-to-end tests run them: the demo business, the bridge's webhook URL in
/// the sandbox, the sandbox's BSP (token, app secret) in the bridge.
pub async fn start_with_bridge(
    app_secret: &str,
    edge_tokens: Vec<crate::secret::Secret>,
    history_db: Option<std::path::PathBuf>,
    timeouts: crate::call::CallTimeouts,
) -> anyhow::Result<(Sandbox, crate::bridge::Bridge)> {
    start_with_bridge_as(
        crate::config::Provider::Bsp,
        app_secret,
        edge_tokens,
        history_db,
        timeouts,
    )
    .await
}

/// [`start_with_bridge`] with the sandbox in `provider`'s API shape (and the bridge speaking it).
pub async fn start_with_bridge_as(
    provider: crate::config::Provider,
    app_secret: &str,
    edge_tokens: Vec<crate::secret::Secret>,
    history_db: Option<std::path::PathBuf>,
    timeouts: crate::call::CallTimeouts,
) -> anyhow::Result<(Sandbox, crate::bridge::Bridge)> {
    // Each side must know the other's address before it starts: bind the bridge first, serve
    // it once the sandbox's BSP address is known.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let sandbox =
        Sandbox::start_for_bridge_as(provider, listener.local_addr()?, app_secret).await?;
    let mut cfg = sandbox.bridge_config(edge_tokens, history_db);
    cfg.timeouts = timeouts;
    let bridge = crate::bridge::Bridge::start_on(listener, cfg).await?;
    Ok((sandbox, bridge))
}

/// A running sandbox. Dropping it stops the BSP server; call `shutdown` to end calls cleanly.
pub struct Sandbox {
    pub world: Arc<World>,
    pub bsp_url: String,
    state: Arc<bsp::BspState>,
    server: JoinHandle<()>,
}

impl Sandbox {
    pub async fn start(cfg: SandboxConfig) -> std::io::Result<Sandbox> {
        let world = World::new(world::WorldConfig {
            provider: cfg.provider,
            business: cfg.business.clone(),
            app_secret: cfg.app_secret.clone(),
            webhook_url: cfg.webhook_url.clone(),
            media: cfg.media.clone(),
        });
        let state = Arc::new(bsp::BspState {
            world: world.clone(),
            token: cfg.token.clone(),
            log: Mutex::new(Vec::new()),
            settings: Mutex::new(
                serde_json::json!({"status": "ENABLED", "sip": {"status": "DISABLED"}}),
            ),
        });
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let _ = world.base_url.set(format!("http://{addr}"));
        world.start_meta_worker();
        // One shape at a time: a bridge speaking the other provider's API gets 404s.
        let app = match cfg.provider {
            crate::config::Provider::Bsp => bsp::router(state.clone()),
            crate::config::Provider::Meta => graph::router(state.clone()),
        };
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "sandbox BSP server stopped");
            }
        });
        Ok(Sandbox {
            world,
            bsp_url: format!("http://{addr}"),
            state,
            server,
        })
    }

    /// A sandbox of the demo business for a bridge that listens (or will) at `bridge` on
    /// 127.0.0.1, signing webhooks with `app_secret`; its BSP takes a fresh random token.
    pub async fn start_for_bridge(
        bridge: SocketAddr,
        app_secret: &str,
    ) -> std::io::Result<Sandbox> {
        Sandbox::start_for_bridge_as(crate::config::Provider::Bsp, bridge, app_secret).await
    }

    /// [`Sandbox::start_for_bridge`] in `provider`'s API shape.
    pub async fn start_for_bridge_as(
        provider: crate::config::Provider,
        bridge: SocketAddr,
        app_secret: &str,
    ) -> std::io::Result<Sandbox> {
        Sandbox::start(SandboxConfig {
            provider,
            business: demo::demo_business(),
            token: format!("sandbox-token-{:x}", rand::random::<u64>()),
            app_secret: app_secret.to_string(),
            webhook_url: format!("http://{bridge}/webhook"),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            media: MediaConfig::loopback(),
        })
        .await
    }

    /// [`Sandbox::start_for_bridge`] for a bridge not started yet (another process, or one
    /// started later): picks a free 127.0.0.1 port for it and returns that address too.
    pub async fn start_for_new_bridge(app_secret: &str) -> std::io::Result<(Sandbox, SocketAddr)> {
        Sandbox::start_for_new_bridge_as(crate::config::Provider::Bsp, app_secret).await
    }

    /// [`Sandbox::start_for_new_bridge`] in `provider`'s API shape.
    pub async fn start_for_new_bridge_as(
        provider: crate::config::Provider,
        app_secret: &str,
    ) -> std::io::Result<(Sandbox, SocketAddr)> {
        let bridge = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        Ok((
            Sandbox::start_for_bridge_as(provider, bridge, app_secret).await?,
            bridge,
        ))
    }

    /// What [`Sandbox::bridge_config`] says, as the `wacall.toml` a `wacall` process reads
    /// (`serve -c`, `dial`): BSP, business, token, app secret, listen address, history file.
    /// More sections (recording, routing) can be appended.
    pub fn wacall_toml(&self, listen: SocketAddr, history_db: &std::path::Path) -> String {
        let biz = self.world.business();
        let meta = match self.world.provider() {
            crate::config::Provider::Bsp => String::new(),
            crate::config::Provider::Meta => format!(
                "provider = \"meta\"\ngraph_version = \"{}\"\nphone_number_id = \"{}\"\n",
                graph::VERSION,
                biz.phone_number_id
            ),
        };
        format!(
            "[bsp]\n{meta}base_url = \"{}\"\nwaba_id = \"{}\"\nphone_number = \"{}\"\ntoken = \"{}\"\n\n\
             [webhook]\napp_secret = \"{}\"\nverify_token = \"sandbox-verify\"\n\n\
             [server]\nlisten = \"{listen}\"\nhistory_db = \"{}\"\n\n",
            self.bsp_url,
            biz.waba_id,
            biz.phone_number,
            self.state.token,
            self.world.app_secret(),
            history_db.display(),
        )
    }

    /// The actions the BSP received for `call_id`, in order (`pre_accept`, `accept`, ...).
    pub fn actions(&self, call_id: &str) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| r.call_id.as_deref() == Some(call_id))
            .map(|r| r.action)
            .collect()
    }

    /// The configuration of a bridge that talks to this sandbox: its BSP, its business, its
    /// token and the app secret its webhooks are signed with.
    pub fn bridge_config(
        &self,
        edge_tokens: Vec<crate::secret::Secret>,
        history_db: Option<std::path::PathBuf>,
    ) -> crate::bridge::BridgeConfig {
        let biz = self.world.business();
        let mut cfg = crate::bridge::BridgeConfig::local(
            &self.bsp_url,
            &biz.waba_id,
            &biz.phone_number,
            crate::secret::Secret::new(&self.state.token),
            crate::secret::Secret::new(self.world.app_secret()),
            edge_tokens,
            history_db,
        );
        if self.world.provider() == crate::config::Provider::Meta {
            cfg.bsp.provider = crate::config::Provider::Meta;
            cfg.bsp.graph_version = graph::VERSION.to_owned();
            cfg.bsp.phone_number_id = biz.phone_number_id.clone();
        }
        cfg
    }

    /// Requests the BSP has received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub async fn shutdown(self) {
        self.world.shutdown().await;
        self.server.abort();
    }
}

/// The BSP (or Meta) checks call settings like the real one before storing them: a BSP
/// refuses Meta's own keys.
fn validate_settings(body: &Value, provider: crate::config::Provider) -> Result<(), String> {
    let settings: crate::settings::CallSettings =
        serde_json::from_value(body.clone()).map_err(|e| format!("Invalid call settings: {e}"))?;
    let today = chrono::Utc::now().date_naive();
    let join = |errors: Vec<crate::settings::SettingsError>| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    crate::settings::check_for_provider(&settings, provider).map_err(join)?;
    crate::settings::validate(&settings, today).map_err(join)
}
