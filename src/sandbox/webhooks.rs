//! Meta-shaped webhook payloads, as WhatsApp sends them through the BSP, and their signature.
//!
//! The simulated users speak only through these, so the bridge's webhook path is exercised exactly
//! as in production: raw bytes, `X-Hub-Signature-256`, the `entry[].changes[].value` envelope.

use serde_json::{Value, json};

/// Who the business is, as `metadata` names it in every webhook.
#[derive(Debug, Clone)]
pub struct Business {
    pub waba_id: String,
    pub phone_number: String,
    pub phone_number_id: String,
}

fn envelope(biz: &Business, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": biz.waba_id,
            "changes": [{ "field": "calls", "value": value }]
        }]
    })
}

fn metadata(biz: &Business) -> Value {
    json!({ "display_phone_number": biz.phone_number, "phone_number_id": biz.phone_number_id })
}

fn now_unix() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string()
}

/// A `calls` value with one call of `user`, as every call webhook carries it.
fn one_call(biz: &Business, user: &str, name: &str, call: Value) -> Value {
    envelope(
        biz,
        json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(biz),
            "contacts": [{ "profile": { "name": name }, "wa_id": user }],
            "calls": [call]
        }),
    )
}

/// A user calls the business: `connect` with the user's offer.
pub fn user_call(biz: &Business, call_id: &str, user: &str, name: &str, offer: &str) -> Value {
    one_call(
        biz,
        user,
        name,
        json!({
            "id": call_id,
            "from": user,
            "to": biz.phone_number,
            "event": "connect",
            "timestamp": now_unix(),
            "direction": "USER_INITIATED",
            "session": { "sdp_type": "offer", "sdp": offer }
        }),
    )
}

/// The user's answer to a business call.
pub fn user_answer(
    biz: &Business,
    call_id: &str,
    user: &str,
    answer: &str,
    opaque: Option<&str>,
) -> Value {
    let mut call = json!({
        "id": call_id,
        "from": biz.phone_number,
        "to": user,
        "event": "connect",
        "timestamp": now_unix(),
        "direction": "BUSINESS_INITIATED",
        "session": { "sdp_type": "answer", "sdp": answer }
    });
    if let Some(o) = opaque {
        call["biz_opaque_callback_data"] = json!(o);
    }
    one_call(biz, user, "", call)
}

/// Progress of a business call: `RINGING`, `ACCEPTED` or `REJECTED`.
pub fn status(biz: &Business, call_id: &str, user: &str, status: &str) -> Value {
    envelope(
        biz,
        json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(biz),
            "statuses": [{
                "id": call_id,
                "type": "call",
                "status": status,
                "timestamp": now_unix(),
                "recipient_id": user
            }]
        }),
    )
}

/// The end of a call. `connected` carries start/end/duration as Meta does for answered calls.
pub fn terminate(
    biz: &Business,
    call_id: &str,
    user: &str,
    user_initiated: bool,
    status: &str,
    connected: Option<(u64, u64)>,
) -> Value {
    let (from, to) = if user_initiated {
        (user.to_string(), biz.phone_number.clone())
    } else {
        (biz.phone_number.clone(), user.to_string())
    };
    let mut call = json!({
        "id": call_id,
        "from": from,
        "to": to,
        "event": "terminate",
        "timestamp": now_unix(),
        "direction": if user_initiated { "USER_INITIATED" } else { "BUSINESS_INITIATED" },
        "status": status
    });
    if let Some((start, end)) = connected {
        call["start_time"] = json!(start.to_string());
        call["end_time"] = json!(end.to_string());
        call["duration"] = json!(end.saturating_sub(start));
    }
    one_call(biz, user, "", call)
}

/// The user's answer to a call-permission request (or WhatsApp's on their behalf), on the
/// `messages` field as Meta documents it.
pub fn permission_reply(
    biz: &Business,
    user: &str,
    accepted: bool,
    permanent: bool,
    expires_at: Option<i64>,
    automatic: bool,
    context_id: &str,
) -> Value {
    let mut reply = json!({
        "response": if accepted { "accept" } else { "reject" },
        "is_permanent": permanent,
        "response_source": if automatic { "automatic" } else { "user_action" },
    });
    if let Some(t) = expires_at {
        reply["expiration_timestamp"] = json!(t);
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": biz.waba_id,
            "changes": [{ "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": metadata(biz),
                "contacts": [{ "profile": { "name": "" }, "wa_id": user }],
                "messages": [{
                    "from": user,
                    "id": format!("wamid.SBXREPLY{:016X}", rand::random::<u64>()),
                    "timestamp": now_unix(),
                    "type": "interactive",
                    "context": { "id": context_id },
                    "interactive": {
                        "type": "call_permission_reply",
                        "call_permission_reply": reply
                    }
                }]
            }}]
        }]
    })
}

/// A file Meta made of a call: its recording (Ogg Opus) or transcript (JSON).
pub struct MetaFile<'a> {
    pub transcript: bool,
    pub media_id: &'a str,
    pub url: &'a str,
    pub sha256: &'a str,
    pub mime_type: &'a str,
}

/// Meta's recording or transcript of a call is ready: `call_recording_available` /
/// `call_transcription_available`.
pub fn media_available(biz: &Business, call_id: &str, user: &str, f: &MetaFile<'_>) -> Value {
    let mut call = json!({
        "id": call_id,
        "from": biz.phone_number,
        "to": user,
        "timestamp": now_unix(),
    });
    if f.transcript {
        call["event"] = json!("call_transcription_available");
        call["call_transcript"] =
            json!({"document": {"id": f.media_id, "mime_type": f.mime_type, "url": f.url}});
    } else {
        call["event"] = json!("call_recording_available");
        call["call_recording"] = json!({"audio": {
            "id": f.media_id, "sha256": f.sha256, "mime_type": f.mime_type, "url": f.url}});
    }
    one_call(biz, user, "", call)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    /// The sandbox signs with the bridge's own `webhook::sign`; this pins it to a vector
    /// computed outside Rust.
    fn signature_matches_an_independent_vector() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"key",b"The quick brown fox jumps over the lazy dog",hashlib.sha256).hexdigest())'
        assert_eq!(
            crate::webhook::sign(b"key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn envelopes_have_meta_shape() {
        let biz = Business {
            waba_id: "1".into(),
            phone_number: "5215500000001".into(),
            phone_number_id: "2".into(),
        };
        let v = user_call(&biz, "wacid.X", "5215500000002", "Ana", "v=0");
        assert_eq!(v["entry"][0]["changes"][0]["field"], "calls");
        let call = &v["entry"][0]["changes"][0]["value"]["calls"][0];
        assert_eq!(call["session"]["sdp_type"], "offer");
        assert_eq!(call["direction"], "USER_INITIATED");
        let t = terminate(
            &biz,
            "wacid.X",
            "5215500000002",
            true,
            "COMPLETED",
            Some((10, 25)),
        );
        assert_eq!(
            t["entry"][0]["changes"][0]["value"]["calls"][0]["duration"],
            15
        );
    }
}
