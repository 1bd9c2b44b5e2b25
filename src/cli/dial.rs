//! `wacall dial`: place one call and follow it live, through a running bridge's hub or standalone
//! (a bridge started in this process from `wacall.toml`, whose webhook endpoint must be the one
//! the BSP posts to, as for `serve`).

use std::future::Future;

use tokio::sync::{mpsc, watch};

use crate::bot::runner::{self, BotCommand, BotConfig, DialFailure, DialOptions};
use crate::bridge::{Bridge, BridgeConfig};
use crate::config::Config;
use crate::edge::hub_client;
use crate::edge::link::HubConnection;
use crate::hub_protocol::EdgeKind;

/// How a dialled call went.
#[derive(Debug, Clone, PartialEq)]
pub struct DialOutcome {
    pub call_id: String,
    /// What was shown, in order: `ringing`, `answered`, `declined`, `ended: <reason>`.
    pub progress: Vec<String>,
    /// The user declined (or the call never connected).
    pub declined: bool,
}

/// What to do when the user has not allowed calls yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Say so and how to ask; do not send anything.
    Never,
    /// Send the permission request, wait for the answer, then dial.
    Always,
    /// Ask the operator first (a terminal); without one, as `Never`.
    Prompt,
}

/// How one dial goes: the call's options and the permission flow.
#[derive(Debug, Clone)]
pub struct DialPlan {
    pub options: DialOptions,
    pub ask: Ask,
    /// The permission request's text (the bridge has a default).
    pub text: Option<String>,
    /// How long to wait for the user's answer to a permission request.
    pub wait: std::time::Duration,
}

impl Default for DialPlan {
    fn default() -> Self {
        DialPlan {
            options: DialOptions::default(),
            ask: Ask::Never,
            text: None,
            wait: std::time::Duration::from_secs(300),
        }
    }
}

/// Asks a yes/no question on the terminal (default no).
fn confirm(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
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
    plan: DialPlan,
    show: impl FnMut(&str),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<DialOutcome> {
    let link = hub_client::connect(hub_url, token, &bot.name, EdgeKind::Bot).await?;
    dial_on(link, bot, number, plan, show, stop).await
}

/// Dials with a bridge started here from `config` (its `server.listen` must receive the BSP's
/// webhooks), linked to the dialler in memory, then stops that bridge.
pub async fn standalone(
    config: &Config,
    bot: BotConfig,
    number: &str,
    plan: DialPlan,
    show: impl FnMut(&str),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<DialOutcome> {
    let bridge = Bridge::start(config.server.listen, BridgeConfig::from_config(config)).await?;
    let outcome = match bridge.attach_local_edge(&bot.name, EdgeKind::Bot).await {
        Some(link) => dial_on(link, bot, number, plan, show, stop).await,
        None => Err(anyhow::anyhow!("the bridge stopped before the call")),
    };
    bridge.shutdown().await;
    outcome
}

/// One dial through the running bot: the call id, or why not.
async fn place(
    cmd_tx: &mpsc::Sender<BotCommand>,
    number: &str,
    options: DialOptions,
    progress: mpsc::UnboundedSender<String>,
) -> Result<String, DialFailure> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    cmd_tx
        .send(BotCommand::Dial {
            to: number.to_string(),
            options,
            done: Some(done_tx),
            progress: Some(progress),
        })
        .await
        .map_err(|_| DialFailure::plain("the hub connection closed"))?;
    // The runner ends (and drops the reply) when the link to the hub closes.
    done_rx
        .await
        .unwrap_or_else(|_| Err(DialFailure::plain("the hub connection closed")))
}

/// Sends the permission request and waits for the user's answer: `Ok(status)` when granted.
async fn ask_permission(
    cmd_tx: &mpsc::Sender<BotCommand>,
    number: &str,
    plan: &DialPlan,
    show: &mut impl FnMut(&str),
) -> anyhow::Result<String> {
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    cmd_tx
        .send(BotCommand::RequestPermission {
            to: number.to_string(),
            text: plan.text.clone(),
            sent: sent_tx,
            answer: Some(answer_tx),
        })
        .await
        .map_err(|_| anyhow::anyhow!("the hub connection closed"))?;
    match sent_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(f)) => anyhow::bail!("{}", f.message),
        Err(_) => anyhow::bail!("the hub connection closed"),
    }
    show(&format!(
        "permission request sent to {number}; waiting up to {} s for their answer in WhatsApp",
        plan.wait.as_secs()
    ));
    match tokio::time::timeout(plan.wait, answer_rx).await {
        Ok(Ok(a)) if a.granted => Ok(a.status),
        Ok(Ok(_)) => anyhow::bail!("{number} declined calls from this business"),
        Ok(Err(_)) => anyhow::bail!("the hub connection closed"),
        Err(_) => anyhow::bail!(
            "{number} has not answered the permission request within {} s; call again once they allow calls",
            plan.wait.as_secs()
        ),
    }
}

/// Runs the dialler as an edge on `link`, places the call and follows it.
async fn dial_on(
    link: HubConnection,
    bot: BotConfig,
    number: &str,
    plan: DialPlan,
    mut show: impl FnMut(&str),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<DialOutcome> {
    let (cmd_tx, cmd_rx) = mpsc::channel(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(runner::run_on(bot, link, cmd_rx, stop_rx));
    let (progress_tx, mut progress) = mpsc::unbounded_channel();
    let mut result = place(&cmd_tx, number, plan.options, progress_tx.clone()).await;
    if let Err(f) = &result
        && f.can_request_permission
    {
        show(&f.message);
        let ask = match plan.ask {
            Ask::Always => true,
            Ask::Prompt => confirm(&format!("Send {number} a call-permission request now?")),
            Ask::Never => false,
        };
        if !ask {
            let _ = stop_tx.send(true);
            anyhow::bail!(
                "not called. To ask them: wacall permission request {number} (or dial with --ask-permission)"
            );
        }
        match ask_permission(&cmd_tx, number, &plan, &mut show).await {
            Ok(status) => {
                show(&format!("{number} allowed calls ({status}); calling"));
                result = place(&cmd_tx, number, plan.options, progress_tx.clone()).await;
            }
            Err(e) => {
                let _ = stop_tx.send(true);
                return Err(e);
            }
        }
    }
    drop(progress_tx);
    let call_id = match result {
        Ok(id) => id,
        Err(f) => {
            let _ = stop_tx.send(true);
            anyhow::bail!("could not call {number}: {}", f.message);
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
