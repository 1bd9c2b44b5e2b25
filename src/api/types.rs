//! Request bodies of the calls endpoint, field for field as the BSP expects them.

use serde::Serialize;

/// `connect`: the business calls a user with an SDP offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectRequest<'a> {
    pub from: &'a str,
    pub to: &'a str,
    /// Always `"connect"`.
    pub action: &'a str,
    pub sdp: &'a str,
    /// Echoed back in the call's webhooks (≤ 512 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<&'a str>,
}

/// `pre_accept` / `accept`: our SDP answer to a user's call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerRequest<'a> {
    pub from: &'a str,
    pub to: &'a str,
    /// `"pre_accept"` or `"accept"`.
    pub action: &'a str,
    pub call_id: &'a str,
    pub sdp: &'a str,
}

/// `reject` / `terminate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndRequest<'a> {
    pub from: &'a str,
    pub to: &'a str,
    /// `"reject"` or `"terminate"`.
    pub action: &'a str,
    pub call_id: &'a str,
}
