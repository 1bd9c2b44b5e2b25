//! Every integration test in one binary: each file here was a test target of its own, and
//! each linked the whole WebRTC, GUI and audio stack again (14 binaries of 135-190 MB per
//! build). Run one file's tests with a filter: `cargo test --test suite e2e_calls::`.
//! `tests/media_cleanup.rs` stays a binary of its own: it counts the process's sockets.

mod common;

mod browser_chromium;
mod bsp_client;
mod cli;
mod devices;
mod dial;
mod e2e_calls;
mod fuzz_smoke;
mod interop_aiortc;
mod media_loopback;
mod phone_ui;
mod sdp_corpus;
mod sdp_shapes_loopback;
mod voice_ai;
