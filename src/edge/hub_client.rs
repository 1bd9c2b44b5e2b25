//! An edge's connection to the bridge's hub: one WebSocket, JSON messages both ways.

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, warn};

pub use super::link::HubConnection;
use crate::hub_protocol::{EdgeKind, EdgeMessage, HubMessage};

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("cannot connect to the hub at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: tokio_tungstenite::tungstenite::Error,
    },
    #[error("the hub at {url} refused this edge: {message}")]
    Refused { url: String, message: String },
    #[error("the hub at {url} closed the connection before welcoming this edge")]
    ClosedEarly { url: String },
    #[error("cannot connect to the hub at {url}: {source}")]
    Tls {
        url: String,
        #[source]
        source: super::tls::TlsError,
    },
}

/// Connects, introduces the edge, and waits for the hub's welcome.
pub async fn connect(
    url: &str,
    token: &str,
    name: &str,
    kind: EdgeKind,
) -> Result<HubConnection, HubError> {
    connect_with(url, token, name, kind, None).await
}

/// As [`connect`], trusting `tls` for a `wss://` hub (default: the web's roots plus
/// `WACALL_CA_FILE`).
pub async fn connect_with(
    url: &str,
    token: &str,
    name: &str,
    kind: EdgeKind,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> Result<HubConnection, HubError> {
    let connector = match tls {
        Some(cfg) if url.starts_with("wss://") => Some(tokio_tungstenite::Connector::Rustls(cfg)),
        _ => super::tls::connector_for(url).map_err(|source| HubError::Tls {
            url: url.to_string(),
            source,
        })?,
    };
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector)
        .await
        .map_err(|source| HubError::Connect {
            url: url.to_string(),
            source,
        })?;
    let (mut sink, mut stream) = ws.split();
    let hello = EdgeMessage::Hello {
        token: token.to_string(),
        name: name.to_string(),
        kind,
    };
    sink.send(Message::text(hello.to_json()))
        .await
        .map_err(|source| HubError::Connect {
            url: url.to_string(),
            source,
        })?;

    let edge_id = loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => match serde_json::from_str::<HubMessage>(&t) {
                Ok(HubMessage::Welcome { edge_id }) => break edge_id,
                Ok(HubMessage::Error { message, .. }) => {
                    return Err(HubError::Refused {
                        url: url.to_string(),
                        message,
                    });
                }
                Ok(other) => debug!(?other, "hub message before welcome"),
                Err(e) => warn!(error = %e, "unreadable hub message"),
            },
            Some(Ok(_)) => {}
            Some(Err(source)) => {
                return Err(HubError::Connect {
                    url: url.to_string(),
                    source,
                });
            }
            None => {
                return Err(HubError::ClosedEarly {
                    url: url.to_string(),
                });
            }
        }
    };

    let (out_tx, mut out_rx) = mpsc::channel::<EdgeMessage>(256);
    let (in_tx, in_rx) = mpsc::channel::<HubMessage>(256);
    tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(Message::text(m.to_json())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Text(t)) => match serde_json::from_str::<HubMessage>(&t) {
                    Ok(m) => {
                        if in_tx.send(m).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => warn!(error = %e, "unreadable hub message ignored"),
                },
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    Ok(HubConnection {
        edge_id,
        tx: out_tx,
        rx: in_rx,
    })
}
