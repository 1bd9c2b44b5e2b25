//! Request bodies of Meta's Cloud API calls endpoint (`POST /{phone-number-id}/calls`), field
//! for field as Meta documents them (`../shared/meta-cloud-api.md` §2, §6): the BSP's `from`
//! becomes the path's id, `sdp` becomes `session{sdp_type, sdp}`, and `messaging_product` is
//! added.

use serde::Serialize;

use crate::config::MetaCaptureConfig;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session<'a> {
    /// `offer` (connect) or `answer` (pre_accept, accept).
    pub sdp_type: &'a str,
    pub sdp: &'a str,
}

/// `connect`: the business calls a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connect<'a> {
    pub messaging_product: &'a str,
    pub to: &'a str,
    pub action: &'a str,
    pub session: Session<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<&'a CaptureRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription: Option<&'a CaptureRequest>,
}

/// `pre_accept` / `accept`. Recording and transcription are documented for `accept` only;
/// `pre_accept` never carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer<'a> {
    pub messaging_product: &'a str,
    pub call_id: &'a str,
    pub action: &'a str,
    pub session: Session<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<&'a CaptureRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription: Option<&'a CaptureRequest>,
}

/// `reject` / `terminate`: the call id only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct End<'a> {
    pub messaging_product: &'a str,
    pub call_id: &'a str,
    pub action: &'a str,
}

/// The `recording` or `transcription` object: `{"status":"ENABLED","purpose","announcement_language"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CaptureRequest {
    pub status: String,
    pub purpose: String,
    pub announcement_language: String,
}

/// What Meta is asked to capture of one call. Empty: nothing (the objects are left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Capture {
    pub recording: Option<CaptureRequest>,
    pub transcription: Option<CaptureRequest>,
}

impl Capture {
    pub fn is_empty(&self) -> bool {
        self.recording.is_none() && self.transcription.is_none()
    }

    /// From `[recording.meta]`, with a dial's own choice (`record`, `transcribe`) winning over
    /// the configured default when given.
    pub fn from_config(
        cfg: &MetaCaptureConfig,
        record: Option<bool>,
        transcribe: Option<bool>,
    ) -> Capture {
        let object = || CaptureRequest {
            status: "ENABLED".into(),
            purpose: cfg.purpose.trim().to_owned(),
            announcement_language: cfg.announcement_language.trim().to_owned(),
        };
        Capture {
            recording: record.unwrap_or(cfg.record).then(object),
            transcription: transcribe.unwrap_or(cfg.transcribe).then(object),
        }
    }
}

/// `GET /{media-id}`: where a recording or transcript can be downloaded now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    pub url: String,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub file_size: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_metas_shape() {
        let rec = CaptureRequest {
            status: "ENABLED".into(),
            purpose: "quality".into(),
            announcement_language: "en_US".into(),
        };
        let c = Connect {
            messaging_product: "whatsapp",
            to: "5215512345678",
            action: "connect",
            session: Session {
                sdp_type: "offer",
                sdp: "v=0",
            },
            biz_opaque_callback_data: Some("req-1"),
            recording: Some(&rec),
            transcription: None,
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"messaging_product":"whatsapp","to":"5215512345678","action":"connect",
                   "session":{"sdp_type":"offer","sdp":"v=0"},"biz_opaque_callback_data":"req-1",
                   "recording":{"status":"ENABLED","purpose":"quality","announcement_language":"en_US"}})
        );
        let e = End {
            messaging_product: "whatsapp",
            call_id: "wacid.1",
            action: "terminate",
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"messaging_product":"whatsapp","call_id":"wacid.1","action":"terminate"})
        );
    }

    #[test]
    fn a_dials_choice_wins_over_the_config() {
        let cfg = MetaCaptureConfig {
            record: true,
            transcribe: false,
            purpose: " training ".into(),
            announcement_language: "es_MX".into(),
        };
        let c = Capture::from_config(&cfg, None, None);
        assert_eq!(c.recording.as_ref().unwrap().purpose, "training");
        assert!(c.transcription.is_none());
        assert!(Capture::from_config(&cfg, Some(false), None).is_empty());
        let c = Capture::from_config(&cfg, None, Some(true));
        assert_eq!(
            c.transcription.unwrap().announcement_language,
            "es_MX".to_string()
        );
    }
}
