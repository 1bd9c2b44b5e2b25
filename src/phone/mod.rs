//! The agent's desktop softphone (`wacall phone`): an edge like the bot, with a human deciding.
//!
//! - `core`: the phone without UI (hub connection with reconnect, one call's media, audio
//!   engine, devices, ringtone, history), driven by commands and read through a snapshot;
//! - `ui`: egui drawing of that snapshot, clicks and shortcuts turned into commands;
//! - `app`: the eframe window and the config file;
//! - `sandbox`: `--sandbox`, a whole local wacall with simulated callers.

pub mod app;
pub mod core;
pub mod sandbox;
pub mod ui;
