//! The client side shared by the bot and the softphone: the hub connection, and per call the
//! media session plus the 20 ms audio engine.

pub mod call_audio;
pub mod call_flow;
pub mod hub_client;
pub mod link;
pub mod media_watch;
pub mod tls;
pub mod upload;
