//! The receive jitter buffer: pushes and pops derived from the input, decoded with G.711
//! (mu-law or A-law), or with Opus for one input in sixteen.
//!
//! First byte: decoder choice. Then operations: an op byte whose low 2 bits are 0 is a pop;
//! otherwise a push of (seq delta: 2 bytes, timestamp delta: 2 bytes, arrival delta: 1 byte,
//! payload length: 1 byte, payload). At most 64 operations per input (kept small for speed).
#![no_main]

#[path = "../bodies/jitter_buffer.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
