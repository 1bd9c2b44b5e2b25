//! `wacall phone --sandbox`: the softphone against a whole local wacall (sandbox BSP, simulated
//! WhatsApp users that are real WebRTC peers, the bridge with its hub and history), for demos,
//! training and the UI tests. Simulated users call in every ~20 s while the agent is free, and
//! answer the agent's calls after a short ring.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::core::{PhoneHandle, PhoneState};
use crate::bridge::Bridge;
use crate::call::CallTimeouts;
use crate::sandbox::{Sandbox, UserCall, UserPlan, World};
use crate::secret::Secret;

/// Sandbox users that never granted call permission: calling them shows that error.
pub const NO_PERMISSION_NUMBER: &str = "5215500000000";

const CALLERS: [(&str, &str); 5] = [
    ("Ana López", "5215512345601"),
    ("Bruno Díaz", "5215512345602"),
    ("Carla Méndez", "5215512345603"),
    ("Diego Ruiz", "5215512345604"),
    ("Elena Soto", "5215512345605"),
];

/// A running local wacall for the phone.
pub struct PhoneSandbox {
    pub sandbox: Sandbox,
    pub bridge: Bridge,
    pub hub_url: String,
    pub edge_token: String,
    pub dir: PathBuf,
}

impl PhoneSandbox {
    /// Starts the sandbox BSP, simulated users and the bridge on 127.0.0.1 (history in a
    /// temporary directory).
    pub async fn start(timeouts: CallTimeouts) -> anyhow::Result<PhoneSandbox> {
        let dir = std::env::temp_dir().join(format!("wacall-phone-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir)?;
        let app_secret = format!("sandbox-secret-{:x}", rand::random::<u64>());
        let edge_token = format!("agent-{:x}", rand::random::<u64>());
        // As `sandbox::start_with_bridge`, plus a store for the recordings the phone uploads.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sandbox = Sandbox::start_for_bridge(listener.local_addr()?, &app_secret).await?;
        let mut cfg = sandbox.bridge_config(
            vec![Secret::new(&edge_token)],
            Some(dir.join("history.sqlite3")),
        );
        cfg.timeouts = timeouts;
        cfg.store_dir = Some(dir.join("stored-recordings"));
        let bridge = Bridge::start_on(listener, cfg).await?;
        // Users the agent calls answer after a short ring and talk (a steady tone).
        sandbox.world.set_default_plan(UserPlan {
            answer_after: Duration::from_millis(1500),
            hangup_after: None,
            tone_hz: 520.0,
            ..UserPlan::default()
        });
        sandbox
            .world
            .faults()
            .no_permission
            .insert(NO_PERMISSION_NUMBER.into());
        Ok(PhoneSandbox {
            hub_url: bridge.hub_url(),
            edge_token,
            sandbox,
            bridge,
            dir,
        })
    }

    /// One simulated user calls the business; `i` picks who. They talk (a tone) and hang up
    /// after `talk` if the agent has not.
    pub async fn place_call(&self, i: usize, talk: Option<Duration>) -> Result<String, String> {
        place_call(&self.sandbox.world, i, talk).await
    }

    /// Simulated users call in: first after `first`, then every `every` whenever the phone is
    /// signed in, available and free.
    pub fn spawn_callers(
        &self,
        phone: PhoneHandle,
        first: Duration,
        every: Duration,
    ) -> JoinHandle<()> {
        let world = self.sandbox.world.clone();
        tokio::spawn(async move {
            tokio::time::sleep(first).await;
            let mut i = 0;
            loop {
                let v = phone.view();
                if v.state == PhoneState::Idle && v.available {
                    if let Err(e) = place_call(&world, i, Some(Duration::from_secs(90))).await {
                        tracing::warn!(error = %e, "simulated caller could not call");
                    }
                    i += 1;
                    tokio::time::sleep(every).await;
                } else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        })
    }

    pub async fn shutdown(self) {
        self.bridge.shutdown().await;
        self.sandbox.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn place_call(
    world: &Arc<World>,
    i: usize,
    talk: Option<Duration>,
) -> Result<String, String> {
    let (name, number) = CALLERS[i % CALLERS.len()];
    world
        .place_user_call(UserCall {
            user: number.to_string(),
            name: name.to_string(),
            tone_hz: 660.0,
            hangup_after: talk,
        })
        .await
}

/// Caller names and numbers the sandbox uses (tests assert on them).
pub fn caller(i: usize) -> (&'static str, &'static str) {
    CALLERS[i % CALLERS.len()]
}
