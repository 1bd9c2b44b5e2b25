//! Checking a peer's SDP before we hand it to the WebRTC stack.
//!
//! The stack's own errors for a bad SDP are generic ("no codecs negotiated"); an operator needs to
//! know *what* WhatsApp (or a simulated user) sent that we cannot use. So the remote description is
//! parsed with the `sdp` crate and checked for exactly what a call needs.

use std::io::Cursor;

use sdp::description::media::MediaDescription;
use sdp::description::session::SessionDescription;

use super::negotiate::{AudioCodec, Choice, NegotiationError};

/// What we learned from a usable remote SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAudio {
    /// The codecs chosen from the peer's formats (`media::negotiate`): audio codec, payload
    /// types, the peer's fmtp; see the accessors below.
    pub choice: Choice,
    /// `a=ice-lite` present: the peer never sends checks, we must control.
    pub ice_lite: bool,
    /// The peer's DTLS role attribute (`actpass`, `active`, `passive`).
    pub setup: String,
    /// The media id of the audio section, echoed in answers.
    pub mid: Option<String>,
    /// Number of `a=candidate` lines (zero is legal: a lite peer learns our address from checks).
    pub candidates: usize,
    /// Requested packet time in ms, if any.
    pub ptime: Option<u32>,
}

impl RemoteAudio {
    /// The call's audio codec: Opus, or G.711 when the peer has no Opus.
    pub fn codec(&self) -> AudioCodec {
        self.choice.codec
    }

    /// Payload type the peer uses for the audio codec (WhatsApp: 111), ours too.
    pub fn audio_pt(&self) -> u8 {
        self.choice.audio_pt()
    }

    /// The peer's fmtp for the audio codec (bitrate caps, FEC, bandwidth): honoured by our
    /// encoder.
    pub fn audio_fmtp(&self) -> &str {
        self.choice.peer_fmtp()
    }

    /// RFC 4733 telephone-event payload type (8 kHz preferred; WhatsApp: 126).
    pub fn dtmf_pt(&self) -> Option<u8> {
        self.choice.dtmf_pt()
    }
}

/// Why a remote SDP cannot be used; each variant names the missing or bad item.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("remote SDP does not parse: {0}")]
    Parse(String),
    #[error("remote SDP has no audio m-line (media sections: {0:?})")]
    NoAudio(Vec<String>),
    #[error("remote SDP audio m-line is disabled (port 0)")]
    AudioDisabled,
    #[error("remote SDP: {0}")]
    NoCodec(#[from] NegotiationError),
    #[error("remote SDP has no a=fingerprint")]
    NoFingerprint,
    #[error("remote SDP has no sha-256 fingerprint (algorithms offered: {0})")]
    NoSha256Fingerprint(String),
    #[error("remote SDP is missing {0}")]
    MissingIce(&'static str),
    #[error("remote SDP a=setup:{0} is not one of actpass, active, passive")]
    BadSetup(String),
}

fn attr<'a>(
    session: &'a SessionDescription,
    media: &'a MediaDescription,
    key: &str,
) -> Option<&'a str> {
    media
        .attribute(key)
        .flatten()
        .or_else(|| session.attribute(key).map(String::as_str))
}

fn all_attrs<'a>(
    session: &'a SessionDescription,
    media: &'a MediaDescription,
    key: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    session
        .attributes
        .iter()
        .chain(media.attributes.iter())
        .filter(move |a| a.key == key)
        .filter_map(|a| a.value.as_deref())
}

/// Parses and checks a remote SDP (offer or answer).
pub fn check_remote_sdp(text: &str) -> Result<RemoteAudio, SdpError> {
    let session = SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
        .map_err(|e| SdpError::Parse(e.to_string()))?;
    let media = session
        .media_descriptions
        .iter()
        .find(|m| m.media_name.media == "audio")
        .ok_or_else(|| {
            SdpError::NoAudio(
                session
                    .media_descriptions
                    .iter()
                    .map(|m| m.media_name.media.clone())
                    .collect(),
            )
        })?;
    if media.media_name.port.value == 0 {
        return Err(SdpError::AudioDisabled);
    }

    let choice = Choice::from_sdp(text)?;

    let fingerprints: Vec<&str> = all_attrs(&session, media, "fingerprint").collect();
    if fingerprints.is_empty() {
        return Err(SdpError::NoFingerprint);
    }
    if !fingerprints
        .iter()
        .any(|f| f.trim_start().to_ascii_lowercase().starts_with("sha-256 "))
    {
        let algs: Vec<&str> = fingerprints
            .iter()
            .map(|f| f.split_whitespace().next().unwrap_or(""))
            .collect();
        return Err(SdpError::NoSha256Fingerprint(algs.join(", ")));
    }
    if attr(&session, media, "ice-ufrag").is_none_or(str::is_empty) {
        return Err(SdpError::MissingIce("a=ice-ufrag"));
    }
    if attr(&session, media, "ice-pwd").is_none_or(str::is_empty) {
        return Err(SdpError::MissingIce("a=ice-pwd"));
    }
    let setup = attr(&session, media, "setup")
        .unwrap_or("actpass")
        .to_string();
    if !matches!(setup.as_str(), "actpass" | "active" | "passive") {
        return Err(SdpError::BadSetup(setup));
    }
    let ice_lite = session.has_attribute("ice-lite") || media.has_attribute("ice-lite");
    let candidates = all_attrs(&session, media, "candidate").count();
    let ptime = attr(&session, media, "ptime").and_then(|p| p.trim().parse().ok());
    Ok(RemoteAudio {
        choice,
        ice_lite,
        setup,
        mid: attr(&session, media, "mid").map(str::to_string),
        candidates,
        ptime,
    })
}

/// Rewrites our own SDP for WhatsApp: only sha-256 fingerprints, no mDNS `.local` candidates,
/// CRLF line ends. WhatsApp refuses other fingerprint algorithms and cannot resolve mDNS.
pub fn sanitize_local_sdp(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(fp) = line.strip_prefix("a=fingerprint:")
            && !fp.to_ascii_lowercase().starts_with("sha-256 ")
        {
            continue;
        }
        if line.starts_with("a=candidate:")
            && line
                .split_whitespace()
                .nth(4)
                .is_some_and(|a| a.ends_with(".local"))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A user-call offer shaped like WhatsApp's (Meta's sample SDP, addresses made local).
    pub(crate) const WHATSAPP_OFFER: &str = "v=0\r\n\
o=- 1234567890 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE audio\r\n\
a=msid-semantic: WMS\r\n\
a=ice-lite\r\n\
m=audio 3480 UDP/TLS/RTP/SAVPF 111 126\r\n\
c=IN IP4 127.0.0.1\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:2 1 udp 2122262783 127.0.0.1 3480 typ host generation 0 network-cost 50 ufrag Ab12\r\n\
a=ice-ufrag:Ab12\r\n\
a=ice-pwd:qwertyuiopasdfghjklzxcvb\r\n\
a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC\r\n\
a=setup:actpass\r\n\
a=mid:audio\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ptime:20\r\n\
a=ssrc:1234 cname:whatsapp\r\n";

    #[test]
    fn whatsapp_offer_is_understood() {
        let r = check_remote_sdp(WHATSAPP_OFFER).unwrap();
        assert_eq!((r.codec(), r.audio_pt()), (AudioCodec::Opus, 111));
        assert_eq!(r.dtmf_pt(), Some(126));
        assert!(r.ice_lite);
        assert_eq!(r.setup, "actpass");
        assert_eq!(r.mid.as_deref(), Some("audio"));
        assert_eq!(r.candidates, 1);
        assert_eq!(r.ptime, Some(20));
        assert!(r.audio_fmtp().contains("maxaveragebitrate=20000"));
    }

    fn without(line_prefix: &str) -> String {
        WHATSAPP_OFFER
            .split("\r\n")
            .filter(|l| !l.starts_with(line_prefix))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    #[test]
    fn each_missing_item_is_named() {
        let cases = [
            ("a=fingerprint", "no a=fingerprint"),
            ("a=ice-ufrag", "a=ice-ufrag"),
            ("a=ice-pwd", "a=ice-pwd"),
            ("a=rtpmap:111", "no codec wacall speaks"),
        ];
        for (prefix, expect) in cases {
            let err = check_remote_sdp(&without(prefix)).unwrap_err().to_string();
            assert!(err.contains(expect), "{prefix}: {err}");
        }
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        for text in [
            "",
            "garbage",
            "v=0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n",
        ] {
            assert!(check_remote_sdp(text).is_err(), "{text:?}");
        }
        let video = WHATSAPP_OFFER.replace("m=audio", "m=video");
        assert!(matches!(
            check_remote_sdp(&video),
            Err(SdpError::NoAudio(_))
        ));
        let sha1 = WHATSAPP_OFFER.replace("sha-256", "sha-1");
        assert_eq!(
            check_remote_sdp(&sha1).unwrap_err(),
            SdpError::NoSha256Fingerprint("sha-1".into())
        );
        let port0 = WHATSAPP_OFFER.replace("m=audio 3480", "m=audio 0");
        assert_eq!(
            check_remote_sdp(&port0).unwrap_err(),
            SdpError::AudioDisabled
        );
    }

    #[test]
    fn sanitize_drops_other_fingerprints_and_mdns() {
        let sdp = "v=0\na=fingerprint:sha-512 AA\na=fingerprint:sha-256 BB\n\
a=candidate:1 1 udp 1 abc.local 5000 typ host\na=candidate:2 1 udp 1 127.0.0.1 5000 typ host\n";
        let out = sanitize_local_sdp(sdp);
        assert_eq!(
            out,
            "v=0\r\na=fingerprint:sha-256 BB\r\na=candidate:2 1 udp 1 127.0.0.1 5000 typ host\r\n"
        );
    }
}
