//! Voice-AI streaming: call audio to and from an external service over WebSocket, in Twilio Media
//! Streams' message shapes.

pub mod protocol;
