//! The headless bot: answers (or places) calls and runs combinable behaviours on them: prompt,
//! echo, tone, record, hang up after a prompt or a maximum duration, voice-AI streaming.

pub mod behaviours;
pub mod runner;
pub mod voice_ai;
