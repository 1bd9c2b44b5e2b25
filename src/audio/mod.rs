//! Audio pipeline. One frame currency inside: 20 ms of 48 kHz mono `i16` ([`Frame`]).
//! Devices, files and voice-AI streams convert at their edge.

pub mod codec;
pub mod device;
pub mod frame;
pub mod g711;
pub mod jitter;
pub mod mixer;
pub mod mulaw;
pub mod ogg_opus;
pub mod peaks;
pub mod recorder;
pub mod resample;
pub mod source;
pub mod tone;

pub use frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE};
