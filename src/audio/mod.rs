//! Audio pipeline. One frame currency inside: 20 ms of 48 kHz mono `i16` ([`Frame`]).
//! Devices, files and voice-AI streams convert at their edge.

pub mod device;
pub mod frame;

pub use frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE};
