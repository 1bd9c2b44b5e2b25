//! The media engine: one WebRTC peer per call, audio only (Opus, or G.711 for peers without it,
//! plus RFC 4733 telephone-event), with the codecs chosen by wacall (`negotiate`).
//!
//! We are always the full, controlling ICE agent; answering an offer we are the DTLS client
//! (`a=setup:active`), as WhatsApp expects. The SDP we hand out is complete (ICE gathered,
//! bounded by a timeout) because the BSP has no trickle: one SDP per request.

pub mod config;
pub mod dtmf;
pub mod negotiate;
pub mod packetizer;
pub mod pool;
pub mod remote_sdp;
pub mod rtp_stats;
pub mod session;

pub use config::{IceServer, MediaConfig};
pub use negotiate::AudioCodec;
pub use remote_sdp::{RemoteAudio, SdpError, check_remote_sdp};
pub use rtp_stats::RecvSummary;
pub use session::{ConnState, MediaError, MediaEvent, MediaSession, MediaStats, RtpAudio};
