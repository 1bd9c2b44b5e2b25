//! The message shapes of Twilio Media Streams (bidirectional), which many voice-AI servers speak:
//! `connected`, `start`, `media` (base64 audio), `dtmf`, `mark`, `stop` from us; `media`, `mark`,
//! `clear` from the server. Pure: building and reading messages, no sockets.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// Audio format on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// G.711 µ-law at 8 kHz: Twilio's own format, what servers built for it expect.
    Mulaw8k,
    /// 16-bit little-endian PCM at 16 kHz, for servers that take wideband audio.
    Pcm16k,
}

impl StreamFormat {
    pub fn sample_rate(&self) -> u32 {
        match self {
            StreamFormat::Mulaw8k => 8_000,
            StreamFormat::Pcm16k => 16_000,
        }
    }

    fn encoding(&self) -> &'static str {
        match self {
            StreamFormat::Mulaw8k => "audio/x-mulaw",
            StreamFormat::Pcm16k => "audio/l16",
        }
    }
}

/// Builds the messages we send, numbering them as Twilio does.
#[derive(Debug)]
pub struct Outbound {
    stream_sid: String,
    call_sid: String,
    seq: u64,
    chunk: u64,
    format: StreamFormat,
}

impl Outbound {
    pub fn new(call_id: &str, format: StreamFormat) -> Self {
        Outbound {
            stream_sid: format!("MZ{:032x}", rand::random::<u128>()),
            call_sid: call_id.to_string(),
            seq: 0,
            chunk: 0,
            format,
        }
    }

    fn next_seq(&mut self) -> String {
        self.seq += 1;
        self.seq.to_string()
    }

    pub fn connected(&self) -> Value {
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    }

    pub fn start(&mut self, from: &str, to: &str) -> Value {
        json!({
            "event": "start",
            "sequenceNumber": self.next_seq(),
            "start": {
                "accountSid": "wacall",
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": {"from": from, "to": to},
                "mediaFormat": {
                    "encoding": self.format.encoding(),
                    "sampleRate": self.format.sample_rate(),
                    "channels": 1
                }
            },
            "streamSid": self.stream_sid
        })
    }

    /// One chunk of the caller's audio; `timestamp_ms` since the stream started.
    pub fn media(&mut self, payload: &[u8], timestamp_ms: u64) -> Value {
        self.chunk += 1;
        json!({
            "event": "media",
            "sequenceNumber": self.next_seq(),
            "media": {
                "track": "inbound",
                "chunk": self.chunk.to_string(),
                "timestamp": timestamp_ms.to_string(),
                "payload": B64.encode(payload)
            },
            "streamSid": self.stream_sid
        })
    }

    pub fn dtmf(&mut self, digit: char) -> Value {
        json!({
            "event": "dtmf",
            "sequenceNumber": self.next_seq(),
            "dtmf": {"track": "inbound_track", "digit": digit.to_string()},
            "streamSid": self.stream_sid
        })
    }

    /// Tells the server its audio up to this mark has been played to the caller.
    pub fn mark(&mut self, name: &str) -> Value {
        json!({
            "event": "mark",
            "sequenceNumber": self.next_seq(),
            "mark": {"name": name},
            "streamSid": self.stream_sid
        })
    }

    pub fn stop(&mut self) -> Value {
        json!({
            "event": "stop",
            "sequenceNumber": self.next_seq(),
            "stop": {"accountSid": "wacall", "callSid": self.call_sid},
            "streamSid": self.stream_sid
        })
    }
}

/// What the voice-AI server told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Audio to play to the caller, in the stream's format.
    Media(Vec<u8>),
    /// Tell us back when the audio queued before this mark has been played.
    Mark(String),
    /// Drop the audio queued so far (the caller barged in).
    Clear,
    /// Anything else (tolerated and ignored).
    Other(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboundError {
    #[error("voice-AI message is not JSON: {0}")]
    Json(String),
    #[error("voice-AI message has no \"event\" field")]
    NoEvent,
    #[error("voice-AI media.payload: {0}")]
    Payload(String),
    #[error("voice-AI mark has no mark.name")]
    MarkName,
}

pub fn parse_inbound(text: &str) -> Result<Inbound, InboundError> {
    let v: Value = serde_json::from_str(text).map_err(|e| InboundError::Json(e.to_string()))?;
    let event = v
        .get("event")
        .and_then(Value::as_str)
        .ok_or(InboundError::NoEvent)?;
    match event {
        "media" => {
            let payload = v
                .pointer("/media/payload")
                .and_then(Value::as_str)
                .ok_or_else(|| InboundError::Payload("missing".into()))?;
            let bytes = B64
                .decode(payload)
                .map_err(|e| InboundError::Payload(e.to_string()))?;
            Ok(Inbound::Media(bytes))
        }
        "mark" => v
            .pointer("/mark/name")
            .and_then(Value::as_str)
            .map(|n| Inbound::Mark(n.to_string()))
            .ok_or(InboundError::MarkName),
        "clear" => Ok(Inbound::Clear),
        other => Ok(Inbound::Other(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_messages_have_twilio_shape_and_sequence() {
        let mut o = Outbound::new("wacid.1", StreamFormat::Mulaw8k);
        let start = o.start("5215500000002", "5215500000001");
        assert_eq!(start["event"], "start");
        assert_eq!(start["start"]["mediaFormat"]["encoding"], "audio/x-mulaw");
        assert_eq!(start["start"]["mediaFormat"]["sampleRate"], 8000);
        assert_eq!(start["start"]["callSid"], "wacid.1");
        let m = o.media(&[0xff, 0x7f], 20);
        assert_eq!(m["sequenceNumber"], "2");
        assert_eq!(m["media"]["payload"], "/38=");
        assert_eq!(m["media"]["chunk"], "1");
        assert_eq!(m["streamSid"], start["streamSid"]);
        assert_eq!(o.stop()["event"], "stop");
    }

    #[test]
    fn inbound_messages_parse_and_bad_ones_are_named_errors() {
        assert_eq!(
            parse_inbound(r#"{"event":"media","streamSid":"x","media":{"payload":"/38="}}"#),
            Ok(Inbound::Media(vec![0xff, 0x7f]))
        );
        assert_eq!(
            parse_inbound(r#"{"event":"mark","mark":{"name":"greeting"}}"#),
            Ok(Inbound::Mark("greeting".into()))
        );
        assert_eq!(parse_inbound(r#"{"event":"clear"}"#), Ok(Inbound::Clear));
        assert_eq!(
            parse_inbound(r#"{"event":"hello"}"#),
            Ok(Inbound::Other("hello".into()))
        );
        assert_eq!(parse_inbound(r#"{"x":1}"#), Err(InboundError::NoEvent));
        assert!(matches!(parse_inbound("nope"), Err(InboundError::Json(_))));
        assert!(matches!(
            parse_inbound(r#"{"event":"media","media":{"payload":"!!"}}"#),
            Err(InboundError::Payload(_))
        ));
        assert_eq!(
            parse_inbound(r#"{"event":"mark"}"#),
            Err(InboundError::MarkName)
        );
    }
}
