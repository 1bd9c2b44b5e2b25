//! The bridge (`wacall serve`): signalling in the middle. Webhooks in, BSP actions out, the call
//! registry driven by the state machine, the hub where edges connect, history and metrics.
//! It never touches audio.

pub mod console;
pub mod console_sessions;
pub mod engine;
pub mod history;
pub mod hub;
pub mod identity;
pub mod listener;
pub mod meta_media;
pub mod metrics;
pub mod permissions;
pub mod queue;
pub mod rate;
pub mod routing;
pub mod server;
pub mod uploads;

pub use server::{Bridge, BridgeConfig};
