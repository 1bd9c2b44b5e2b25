//! An edge's live link to the bridge's engine: the channels a WebSocket (`hub_client::connect`)
//! or the bridge's own process (`Bridge::attach_local_edge`) feeds. Kept out of `hub_protocol`,
//! which is the messages only and holds no IO.

use crate::hub_protocol::{EdgeMessage, HubMessage};

/// An edge's live link to the engine, whatever carries it: a WebSocket to a remote hub
/// (`edge::hub_client::connect`) or channels inside one process (`Bridge::attach_local_edge`).
/// Dropping `tx` ends the link.
pub struct HubConnection {
    pub edge_id: String,
    pub tx: tokio::sync::mpsc::Sender<EdgeMessage>,
    pub rx: tokio::sync::mpsc::Receiver<HubMessage>,
}
