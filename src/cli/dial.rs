//! `wacall dial`: place one call and follow it live, through a running bridge's hub or standalone
//! (a bridge started in this process from `wacall.toml`, whose webhook endpoint must be the one
//! the BSP posts to, as for `serve`).

use std::future::Future;

use tokio::sync::{mpsc, watch};

use crate::bot::runner::{self, BotCommand, BotConfig};
use crate::bridge::{Bridge, BridgeConfig};
use crate::config::Config;
use crate::edge::hub_client;
use crate::hub_protocol::{EdgeKind, HubConnection};

/// How a dialled call went.
#[derive(Debug, Clone, PartialEq)]
pub struct DialOutcome {
    pub call_id: String,
    /// What was shown, in order: `ringing`, `answered`, `declined`, `ended: <reason>`.
    pub progress: Vec<String>,
    /// The user declined (or the call never connected).
    pub declined: bool,
}

/// Words for an operator.
fn plain(p: &str) -> String {
    match p {
        "ringing" => "ringing…".into(),
        "accepted" => "answered".into(),
        "rejected" => "the user declined the call".into(),
        other => other.to_string(),
    }
}

/// Dials `number` through the hub at `hub_url`, prints progress with `show`, and returns when the
/// call ends or `stop` resolves (leaving the hub then makes the bridge terminate the call).
pub async fn through_hub(
    hub_url: &str,
    token: &str,
    bot: BotConfig,
    number: &str,
    show: impl FnMut(&str),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<DialOutcome> {
    let link = hub_client::connect(hub_url, token, &bot.name, EdgeKind::Bot).await?;
    dial_on(link, bot, number, show, stop).await
}

/// Dials with a bridge started here from `config` (its `server.listen` must receive the BSP's
/// webhooks), linked to the dialler in memory, then stops that bridge.
pub async fn standalone(
    config: &Config,
    bot: BotConfig,
    number: &str,
    show: impl FnMut(&str),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<DialOutcome> {
    let bridge = Bridge::start(config.server.listen, BridgeConfig::from_config(config)).await?;
    let outcome = match bridge.attach_local_edge(&bot.name, EdgeKind::Bot).await {
        Some(link) => dial_on(link, bot, number, show, stop).await,
        None => Err(anyhow::anyhow!("the bridge stopped before the call")),
    };
    bridge.shutdown().await;
    outcome
}

/// Runs the dialler as an edge on `link`, places the call and follows it.
async fn dial_on(
    link: HubConnection,
    bot: BotConfig,
    number: &str,
    mut show: impl FnMut(&str),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<DialOutcome> {
    let (cmd_tx, cmd_rx) = mpsc::channel(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(runner::run_on(bot, link, cmd_rx, stop_rx));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (progress_tx, mut progress) = mpsc::unbounded_channel();
    cmd_tx
        .send(BotCommand::Dial {
            to: number.to_string(),
            done: Some(done_tx),
            progress: Some(progress_tx),
        })
        .await
        .map_err(|_| anyhow::anyhow!("the hub connection closed"))?;
    let call_id = match done_rx.await {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => {
            let _ = stop_tx.send(true);
            anyhow::bail!("could not call {number}: {e}");
        }
        Err(_) => {
            // The runner ends (and drops the reply) when the link to the hub closes.
            let _ = stop_tx.send(true);
            anyhow::bail!("the hub connection closed");
        }
    };
    show(&format!("calling {number}: {call_id} (Ctrl-C hangs up)"));
    let mut outcome = DialOutcome {
        call_id,
        progress: Vec::new(),
        declined: false,
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => {
                show("hanging up");
                break;
            }
            p = progress.recv() => match p {
                Some(p) => {
                    let words = plain(&p);
                    show(&words);
                    outcome.declined |= p == "rejected";
                    let ended = p.starts_with("ended");
                    outcome.progress.push(words);
                    if ended {
                        break;
                    }
                }
                None => break,
            }
        }
    }
    let _ = stop_tx.send(true);
    let _ = task.await;
    Ok(outcome)
}
