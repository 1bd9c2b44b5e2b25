//! wacall: WhatsApp Business voice calls without a browser.
//!
//! Signalling lives in the middle (`bridge`: webhooks in, BSP actions out, call state), media lives
//! at the edge (`media` + `audio`: WebRTC, Opus, devices, files). See `ARCHITECTURE.md`.

pub mod api;
pub mod audio;
pub mod background;
pub mod bot;
pub mod bridge;
pub mod call;
pub mod call_record;
pub mod cli;
pub mod config;
pub mod edge;
pub mod hub_protocol;
pub mod layering;
pub mod media;
pub mod media_stats;
pub mod phone;
pub mod pii;
pub mod private_files;
pub mod sandbox;
pub mod secret;
pub mod settings;
pub mod thread_priority;
pub mod webhook;
