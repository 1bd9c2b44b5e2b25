//! The hub: edges (bots, softphones) connect over WebSocket, prove who they are with a per-edge
//! token, and from then on exchange `hub_protocol` messages with the engine.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

use super::engine::EngineInput;
use crate::edge::link::HubConnection;
use crate::hub_protocol::{EdgeKind, EdgeMessage, HubMessage};

/// An edge must say hello this soon after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Edge messages are small JSON; anything bigger is refused (SDP is a few KiB).
pub const MAX_MESSAGE: usize = 256 * 1024;
/// A `hello` is a token, a name and a kind: nothing bigger is read before an edge is known.
pub const MAX_HELLO: usize = 4 * 1024;

/// How the hub notices an edge that is gone without closing (a laptop lid, a dead NAT
/// mapping): a ping every `every`, and a connection silent for `silence` (no pong, no message)
/// is dropped, so its calls are taken back.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub every: Duration,
    pub silence: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            every: Duration::from_secs(20),
            silence: Duration::from_secs(60),
        }
    }
}

/// Serves one edge connection until it closes.
pub async fn serve_edge(
    ws: WebSocket,
    identities: std::sync::Arc<super::identity::Identities>,
    engine: mpsc::Sender<EngineInput>,
    liveness: Liveness,
) {
    let (mut sink, mut stream) = ws.split();
    let hello = tokio::time::timeout(HELLO_TIMEOUT, stream.next()).await;
    let grant = match hello {
        Ok(Some(Ok(Message::Text(t)))) if t.len() <= MAX_HELLO => {
            match serde_json::from_str::<EdgeMessage>(&t) {
                Ok(EdgeMessage::Hello { token, name, kind }) => {
                    match identities.admit(&token, &name, kind) {
                        Ok(grant) => grant,
                        Err(why) => {
                            warn!(edge = %super::identity::clean_name(&name), %why, "edge refused");
                            let _ = sink.send(Message::text(refusal(why))).await;
                            return;
                        }
                    }
                }
                _ => {
                    let _ = sink
                        .send(Message::text(refusal("the first message must be hello")))
                        .await;
                    return;
                }
            }
        }
        _ => {
            debug!("edge did not say hello in time");
            return;
        }
    };
    let Some((edge_id, mut rx)) = join(&engine, &grant).await else {
        return;
    };
    let span = info_span!("edge", edge_id = %edge_id);
    info!(parent: &span, "edge connected");

    // The socket's first message is the welcome naming the edge; then whatever the engine sends.
    let welcome = HubMessage::Welcome {
        edge_id: edge_id.clone(),
    };
    let writer = tokio::spawn(
        async move {
            if sink.send(Message::text(welcome.to_json())).await.is_err() {
                return;
            }
            let mut ping = tokio::time::interval(liveness.every);
            ping.tick().await;
            loop {
                let sent = tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => sink.send(Message::text(m.to_json())).await,
                        None => break,
                    },
                    _ = ping.tick() => sink.send(Message::Ping(Default::default())).await,
                };
                if sent.is_err() {
                    break;
                }
            }
        }
        .instrument(span.clone()),
    );
    loop {
        let frame = match tokio::time::timeout(liveness.silence, stream.next()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => {
                warn!(parent: &span, silence = ?liveness.silence, "edge silent (no pong, no message): dropped");
                break;
            }
        };
        let text = match frame {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        if text.len() > MAX_MESSAGE {
            warn!(parent: &span, len = text.len(), "edge message too large; ignored");
            continue;
        }
        match serde_json::from_str::<EdgeMessage>(&text) {
            Ok(msg) => {
                if engine
                    .send(EngineInput::Edge {
                        edge_id: edge_id.clone(),
                        msg,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Err(e) => warn!(parent: &span, error = %e, "unreadable edge message ignored"),
        }
    }
    info!(parent: &span, "edge disconnected");
    let _ = engine.send(EngineInput::EdgeLeft { edge_id }).await;
    writer.abort();
}

/// An edge in the bridge's own process (`wacall serve --bot`): the same messages as over the
/// WebSocket, passed as values. No token (it is our own code), no JSON, and no socket reader
/// and writer tasks between the engine and the bot: each of those was a queue that a call's
/// offer and answer waited in while fifty calls were being set up.
pub async fn attach_local(
    engine: mpsc::Sender<EngineInput>,
    name: &str,
    kind: EdgeKind,
) -> Option<HubConnection> {
    let grant = super::identity::Grant {
        name: name.to_owned(),
        kind,
        may_dial: true,
        max_calls: None,
    };
    let (edge_id, hub_rx) = join(&engine, &grant).await?;
    let (edge_tx, mut edge_rx) = mpsc::channel::<EdgeMessage>(256);
    let id = edge_id.clone();
    tokio::spawn(
        async move {
            while let Some(msg) = edge_rx.recv().await {
                let input = EngineInput::Edge {
                    edge_id: id.clone(),
                    msg,
                };
                if engine.send(input).await.is_err() {
                    return;
                }
            }
            info!("local edge left");
            let _ = engine.send(EngineInput::EdgeLeft { edge_id: id }).await;
        }
        .instrument(info_span!("edge", edge_id = %edge_id)),
    );
    info!(edge_id, "local edge attached");
    Some(HubConnection {
        edge_id,
        tx: edge_tx,
        rx: hub_rx,
    })
}

/// Gives a new edge its id and registers it with the engine; the receiver gets what the engine
/// sends that edge. `None` when the engine has stopped.
async fn join(
    engine: &mpsc::Sender<EngineInput>,
    grant: &super::identity::Grant,
) -> Option<(String, mpsc::Receiver<HubMessage>)> {
    let edge_id = format!("{}-{:08x}", grant.name, rand::random::<u32>());
    let (tx, rx) = mpsc::channel::<HubMessage>(256);
    engine
        .send(EngineInput::EdgeJoined {
            edge_id: edge_id.clone(),
            name: grant.name.clone(),
            kind: grant.kind,
            may_dial: grant.may_dial,
            max_calls: grant.max_calls,
            tx,
        })
        .await
        .ok()?;
    Some((edge_id, rx))
}

fn refusal(message: &str) -> String {
    HubMessage::Error {
        call_id: None,
        request_id: None,
        message: message.to_string(),
        permanent: true,
    }
    .to_json()
}
