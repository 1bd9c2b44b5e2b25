//! Webhooks from WhatsApp (Meta's envelope, forwarded by the BSP): signature and subscription
//! checks ([`signature`]) and parsing into [`CallEvent`]s ([`parse`]). Pure code, no IO.

pub mod parse;
pub mod signature;

pub use parse::{CallEvent, CallStatus, MetaMediaKind, WebhookError, parse_webhook};
pub use signature::{
    ChallengeError, MAX_CHALLENGE_CHARS, SignatureError, sign, verify_challenge, verify_signature,
};
