//! Voice-AI streaming: call audio to and from an external service over WebSocket, in Twilio Media
//! Streams' message shapes, so voice-AI servers built for that convention work unchanged.

pub mod protocol;
pub mod stream;

pub use protocol::StreamFormat;
pub use stream::{VoiceAi, VoiceAiConfig};
