//! Codec negotiation owned by wacall, pure: which audio codec and which telephone-event a call
//! uses, what our SDP says about them, and what the WebRTC stack is shown.
//!
//! Why not leave it to the stack: webrtc 0.21 matches codecs on their fmtp lines and, when any
//! codec matches exactly, drops those that matched only by name. A WhatsApp offer whose Opus
//! fmtp asks for wideband (`maxaveragebitrate=20000;maxplaybackrate=16000;...`) then matched
//! only partially while telephone-event matched exactly, and the answer carried no Opus at all (a
//! silent call); a Chromium offer with telephone-event at 48 kHz and 8 kHz got 110 twice and
//! lost 126. So the rules live here, tested without sockets:
//! - the audio codec is chosen by encoding name, clock rate and channels (Opus/48000/2 first,
//!   then PCMU/8000, then PCMA/8000), whatever its payload type and fmtp, and answered with the
//!   offer's payload type;
//! - telephone-event at 8 kHz is preferred; the 48 kHz one only when it is all there is;
//! - every payload type appears once in the m-line with one `a=rtpmap`, and nothing is answered
//!   that the offer did not contain;
//! - our Opus fmtp and `a=ptime` honour what the peer asked (bitrate cap, playback rate, FEC,
//!   ptime/maxptime), and the encoder is configured from the peer's fmtp
//!   (`EncoderConfig::honour_fmtp`).
//!
//! The stack still builds the ICE, DTLS and SSRC parts of our SDP. It is shown a copy of the
//! peer's SDP reduced to the chosen formats, with the fmtp lines we registered
//! ([`for_stack`]), so its own negotiation lands on the same payload types; what goes on the wire
//! is the stack's SDP with the codec lines written by us ([`shape_local`]).

use std::fmt;

/// The fmtp we register for Opus with the stack (and show it in [`for_stack`]).
pub const STACK_OPUS_FMTP: &str = "minptime=10;useinbandfec=1";
/// The fmtp we register for telephone-event with the stack: the sixteen DTMF events.
pub const STACK_DTMF_FMTP: &str = "0-15";
/// The only packet time we send.
pub const PTIME_MS: u32 = 20;
/// WhatsApp's payload types; we register and offer the same so our offers look like theirs.
pub const OPUS_PT: u8 = 111;
pub const DTMF_PT: u8 = 126;

/// An audio codec wacall can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    Opus,
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl AudioCodec {
    /// RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            AudioCodec::Opus => 48_000,
            AudioCodec::Pcmu | AudioCodec::Pcma => 8_000,
        }
    }

    /// RTP timestamp advance per 20 ms packet.
    pub fn ts_per_packet(self) -> u32 {
        self.clock_rate() / 50
    }

    /// Encoding name as `a=rtpmap` writes it.
    pub fn encoding(self) -> &'static str {
        match self {
            AudioCodec::Opus => "opus",
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
        }
    }
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding())
    }
}

/// One payload type of an audio m-line, as the SDP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub pt: u8,
    /// Encoding name as written (case kept); `?` for a dynamic type without `a=rtpmap`.
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: u16,
    /// The `a=rtpmap` value after the payload type, as written (`opus/48000/2`).
    pub rtpmap: Option<String>,
    pub fmtp: Option<String>,
}

impl Format {
    fn is(&self, encoding: &str, clock_rate: u32) -> bool {
        self.encoding.eq_ignore_ascii_case(encoding) && self.clock_rate == clock_rate
    }

    /// The `a=rtpmap` value to write back: the peer's own spelling, or the static one.
    fn rtpmap_value(&self) -> String {
        self.rtpmap.clone().unwrap_or_else(|| {
            if self.channels > 1 {
                format!("{}/{}/{}", self.encoding, self.clock_rate, self.channels)
            } else {
                format!("{}/{}", self.encoding, self.clock_rate)
            }
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.pt, self.rtpmap_value())
    }
}

/// Static payload types (RFC 3551) that may come without `a=rtpmap`.
fn static_format(pt: u8) -> Option<(&'static str, u32)> {
    match pt {
        0 => Some(("PCMU", 8_000)),
        3 => Some(("GSM", 8_000)),
        4 => Some(("G723", 8_000)),
        8 => Some(("PCMA", 8_000)),
        9 => Some(("G722", 8_000)),
        13 => Some(("CN", 8_000)),
        18 => Some(("G729", 8_000)),
        _ => None,
    }
}

/// The audio section of an SDP: its formats in m-line order, and its packet times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSection {
    pub formats: Vec<Format>,
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
}

impl AudioSection {
    /// Reads the first `m=audio` section (attributes at session level count too, as RFC 8866
    /// allows for `a=rtpmap`-free SDPs). `None` when there is no audio m-line.
    pub fn read(sdp: &str) -> Option<AudioSection> {
        let lines: Vec<&str> = sdp.lines().map(|l| l.trim_end_matches('\r')).collect();
        let (start, end) = audio_bounds(&lines)?;
        let mline = lines[start];
        let mut formats: Vec<Format> = Vec::new();
        for token in mline.split_whitespace().skip(3) {
            let Ok(pt) = token.parse::<u8>() else {
                continue;
            };
            if pt > 127 || formats.iter().any(|f| f.pt == pt) {
                continue;
            }
            let (encoding, clock_rate) = static_format(pt).unwrap_or(("?", 0));
            formats.push(Format {
                pt,
                encoding: encoding.to_owned(),
                clock_rate,
                channels: 1,
                rtpmap: None,
                fmtp: None,
            });
        }
        let session_attrs = lines[..audio_bounds_first_m(&lines)].iter();
        let mut ptime = None;
        let mut maxptime = None;
        for line in session_attrs.chain(lines[start + 1..end].iter()) {
            let Some(attr) = line.strip_prefix("a=") else {
                continue;
            };
            if let Some(v) = attr.strip_prefix("rtpmap:") {
                let Some((pt, value)) = split_pt(v) else {
                    continue;
                };
                let Some(f) = formats.iter_mut().find(|f| f.pt == pt) else {
                    continue;
                };
                if f.rtpmap.is_some() {
                    continue; // the first a=rtpmap of a payload type wins
                }
                let mut parts = value.split('/');
                let encoding = parts.next().unwrap_or("").trim();
                let clock_rate = parts.next().and_then(|c| c.trim().parse().ok());
                let channels = parts
                    .next()
                    .and_then(|c| c.trim().parse().ok())
                    .unwrap_or(1);
                let Some(clock_rate) = clock_rate else {
                    continue;
                };
                f.encoding = encoding.to_owned();
                f.clock_rate = clock_rate;
                f.channels = channels;
                f.rtpmap = Some(value.to_owned());
            } else if let Some(v) = attr.strip_prefix("fmtp:") {
                if let Some((pt, value)) = split_pt(v)
                    && let Some(f) = formats.iter_mut().find(|f| f.pt == pt)
                    && f.fmtp.is_none()
                {
                    f.fmtp = Some(value.to_owned());
                }
            } else if let Some(v) = attr.strip_prefix("ptime:") {
                ptime = ptime.or_else(|| v.trim().parse().ok());
            } else if let Some(v) = attr.strip_prefix("maxptime:") {
                maxptime = maxptime.or_else(|| v.trim().parse().ok());
            }
        }
        Some(AudioSection {
            formats,
            ptime,
            maxptime,
        })
    }

    /// The formats as a list for error messages: `9 G722/8000, 102 ILBC/8000`.
    pub fn describe(&self) -> String {
        if self.formats.is_empty() {
            return "none".to_owned();
        }
        self.formats
            .iter()
            .map(Format::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn find(&self, encoding: &str, clock_rate: u32) -> Option<&Format> {
        self.formats.iter().find(|f| f.is(encoding, clock_rate))
    }
}

/// `"111 opus/48000/2"` → `(111, "opus/48000/2")`.
fn split_pt(v: &str) -> Option<(u8, &str)> {
    let (pt, rest) = v.trim().split_once(char::is_whitespace)?;
    Some((pt.parse().ok()?, rest.trim()))
}

fn audio_bounds_first_m(lines: &[&str]) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with("m="))
        .unwrap_or(lines.len())
}

/// Line range `[m=audio, next m=)` of the first audio section.
fn audio_bounds(lines: &[&str]) -> Option<(usize, usize)> {
    let start = lines.iter().position(|l| l.starts_with("m=audio "))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("m="))
        .map_or(lines.len(), |i| start + 1 + i);
    Some((start, end))
}

/// Why no call can be made from an SDP's audio formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error(
        "the SDP offers no codec wacall speaks (opus/48000/2, PCMU/8000, PCMA/8000); formats offered: {0}"
    )]
    NoCommonCodec(String),
    #[error("the answer picks {picked}, which our offer did not contain (we offered {offered})")]
    NotOffered { picked: String, offered: String },
}

/// What a call uses, chosen from the peer's formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub codec: AudioCodec,
    /// The peer's format for the audio codec (its payload type is ours too).
    pub audio: Format,
    /// The peer's telephone-event, when it offered one.
    pub dtmf: Option<Format>,
    /// The peer's packet times (we always send 20 ms).
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
}

impl Choice {
    /// Picks the codecs for a call from the peer's audio section.
    pub fn from_section(section: &AudioSection) -> Result<Choice, NegotiationError> {
        let opus = section
            .formats
            .iter()
            .find(|f| f.is("opus", 48_000) && f.channels == 2)
            // RFC 7587 says opus/48000/2 always; a peer that writes /1 still means Opus.
            .or_else(|| section.find("opus", 48_000));
        let (codec, audio) = if let Some(f) = opus {
            (AudioCodec::Opus, f)
        } else if let Some(f) = section.find("PCMU", 8_000) {
            (AudioCodec::Pcmu, f)
        } else if let Some(f) = section.find("PCMA", 8_000) {
            (AudioCodec::Pcma, f)
        } else {
            return Err(NegotiationError::NoCommonCodec(section.describe()));
        };
        let dtmf = section
            .find("telephone-event", 8_000)
            .or_else(|| section.find("telephone-event", 48_000))
            .cloned();
        Ok(Choice {
            codec,
            audio: audio.clone(),
            dtmf,
            ptime: section.ptime,
            maxptime: section.maxptime,
        })
    }

    /// Picks the codecs from an SDP's text.
    pub fn from_sdp(sdp: &str) -> Result<Choice, NegotiationError> {
        let section = AudioSection::read(sdp)
            .ok_or_else(|| NegotiationError::NoCommonCodec("no audio m-line".to_owned()))?;
        Choice::from_section(&section)
    }

    /// The peer's answer to our offer: its choice must be among what we offered.
    pub fn from_answer(answer: &str, our_offer: &str) -> Result<Choice, NegotiationError> {
        let choice = Choice::from_sdp(answer)?;
        let offered = AudioSection::read(our_offer)
            .map(|s| s.formats)
            .unwrap_or_default();
        let ours = |f: &Format| {
            offered
                .iter()
                .any(|o| o.pt == f.pt && o.encoding.eq_ignore_ascii_case(&f.encoding))
        };
        if !ours(&choice.audio) {
            return Err(NegotiationError::NotOffered {
                picked: choice.audio.to_string(),
                offered: offered
                    .iter()
                    .map(Format::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let dtmf = choice.dtmf.clone().filter(ours);
        Ok(Choice { dtmf, ..choice })
    }

    pub fn audio_pt(&self) -> u8 {
        self.audio.pt
    }

    pub fn dtmf_pt(&self) -> Option<u8> {
        self.dtmf.as_ref().map(|d| d.pt)
    }

    /// The telephone-event clock (8000, or 48000 when that was all the peer had).
    pub fn dtmf_clock(&self) -> u32 {
        self.dtmf.as_ref().map_or(8_000, |d| d.clock_rate)
    }

    /// The peer's Opus fmtp (what our encoder must honour); empty for G.711.
    pub fn peer_fmtp(&self) -> &str {
        self.audio.fmtp.as_deref().unwrap_or("")
    }

    /// The payload types of the call, in m-line order.
    pub fn payload_types(&self) -> Vec<u8> {
        let mut pts = vec![self.audio.pt];
        pts.extend(self.dtmf_pt());
        pts
    }

    /// The fmtp we write for the audio codec. For Opus it mirrors the peer's limits: we ask to
    /// receive no more than it sends (`maxplaybackrate`, `maxaveragebitrate`, `minptime`), tell
    /// it we capture no wider than it plays (`sprop-maxcapturerate`, true: our encoder is capped
    /// there) and that we decode in-band FEC.
    pub fn local_audio_fmtp(&self) -> Option<String> {
        if self.codec != AudioCodec::Opus {
            return None;
        }
        let peer = parse_fmtp(self.peer_fmtp());
        let get = |k: &str| {
            peer.iter()
                .find(|(key, _)| key == k)
                .and_then(|(_, v)| v.parse::<u32>().ok())
                .filter(|v| *v > 0)
        };
        let mut out = Vec::new();
        if let Some(rate) = get("maxaveragebitrate") {
            out.push(format!("maxaveragebitrate={}", rate.clamp(6_000, 510_000)));
        }
        let playback = get("maxplaybackrate").map(|r| r.clamp(8_000, 48_000));
        if let Some(rate) = playback {
            out.push(format!("maxplaybackrate={rate}"));
        }
        out.push(format!(
            "minptime={}",
            get("minptime").unwrap_or(10).min(PTIME_MS)
        ));
        if let Some(rate) = playback {
            out.push(format!("sprop-maxcapturerate={rate}"));
        }
        out.push("useinbandfec=1".to_owned());
        Some(out.join(";"))
    }

    /// The fmtp we write for telephone-event: the sixteen DTMF events, when the peer gave one.
    pub fn local_dtmf_fmtp(&self) -> Option<String> {
        self.dtmf
            .as_ref()
            .and_then(|d| d.fmtp.as_ref())
            .map(|_| STACK_DTMF_FMTP.to_owned())
    }

    /// Our `a=ptime` / `a=maxptime` lines: we send 20 ms; `maxptime` repeats the peer's, which
    /// we can receive (our decoder takes up to 120 ms).
    fn ptime_lines(&self) -> Vec<String> {
        let mut out = vec![format!("a=ptime:{PTIME_MS}")];
        if let Some(max) = self.maxptime {
            out.push(format!("a=maxptime:{}", max.max(PTIME_MS)));
        }
        out
    }

    /// Whether the peer's packet times allow our 20 ms (a warning, not a failure, when not).
    pub fn ptime_conflict(&self) -> Option<String> {
        let minptime = parse_fmtp(self.peer_fmtp())
            .into_iter()
            .find(|(k, _)| k == "minptime")
            .and_then(|(_, v)| v.parse::<u32>().ok());
        match (self.maxptime, minptime) {
            (Some(max), _) if max < PTIME_MS => Some(format!("peer maxptime {max} ms < 20 ms")),
            (_, Some(min)) if min > PTIME_MS => Some(format!("peer minptime {min} ms > 20 ms")),
            _ => None,
        }
    }
}

/// `a=b;c=d` → `[("a","b"), ("c","d")]`, keys lower-cased.
pub fn parse_fmtp(fmtp: &str) -> Vec<(String, String)> {
    fmtp.split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// Attribute lines of the audio section that describe payload types.
fn pt_attr(line: &str) -> Option<(&'static str, u8)> {
    for key in ["rtpmap", "fmtp", "rtcp-fb"] {
        if let Some(v) = line
            .strip_prefix("a=")
            .and_then(|a| a.strip_prefix(key))
            .and_then(|a| a.strip_prefix(':'))
        {
            let pt = v.split_whitespace().next()?.parse().ok()?;
            return Some((key, pt));
        }
    }
    None
}

/// Rewrites the audio section of `sdp`: the m-line lists `pts`, the payload-type lines are
/// replaced by `codec_lines` (placed where the first of them was, or at the section's end), and
/// `a=ptime` / `a=maxptime` are dropped when `packet_time` gives replacements.
fn rewrite_audio(
    sdp: &str,
    pts: &[u8],
    keep_rtcp_fb: bool,
    codec_lines: Vec<String>,
    packet_time: Option<Vec<String>>,
) -> String {
    let lines: Vec<&str> = sdp.lines().map(|l| l.trim_end_matches('\r')).collect();
    let Some((start, end)) = audio_bounds(&lines) else {
        return sdp.to_owned();
    };
    let mline: Vec<&str> = lines[start].split_whitespace().take(3).collect();
    let formats: Vec<String> = pts.iter().map(u8::to_string).collect();
    let mline = format!("{} {}", mline.join(" "), formats.join(" "));
    // The section without its payload-type lines (rtcp-fb of kept types stays) and, when
    // replaced, its packet times; the new block goes where the first payload-type line was.
    let mut section: Vec<String> = Vec::with_capacity(end - start + 8);
    let mut insert_at = None;
    for line in &lines[start + 1..end] {
        if let Some((key, pt)) = pt_attr(line) {
            insert_at.get_or_insert(section.len());
            if keep_rtcp_fb && key == "rtcp-fb" && pts.contains(&pt) {
                section.push(line.to_string());
            }
        } else if packet_time.is_none()
            || !(line.starts_with("a=ptime:") || line.starts_with("a=maxptime:"))
        {
            section.push(line.to_string());
        }
    }
    let at = insert_at.unwrap_or(section.len());
    section.splice(
        at..at,
        codec_lines
            .into_iter()
            .chain(packet_time.into_iter().flatten()),
    );
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 8);
    out.extend(lines[..start].iter().map(|l| l.to_string()));
    out.push(mline);
    out.extend(section);
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    let mut text = out.join("\r\n");
    text.push_str("\r\n");
    text
}

/// The peer's SDP as the stack is shown it: only the chosen formats, each with the fmtp we
/// registered, so the stack's exact-match negotiation lands on them (see the module doc).
pub fn for_stack(sdp: &str, choice: &Choice) -> String {
    let mut lines = vec![format!(
        "a=rtpmap:{} {}",
        choice.audio.pt,
        choice.audio.rtpmap_value()
    )];
    if choice.codec == AudioCodec::Opus {
        lines.push(format!("a=fmtp:{} {STACK_OPUS_FMTP}", choice.audio.pt));
    }
    if let Some(d) = &choice.dtmf {
        lines.push(format!("a=rtpmap:{} {}", d.pt, d.rtpmap_value()));
        lines.push(format!("a=fmtp:{} {STACK_DTMF_FMTP}", d.pt));
    }
    rewrite_audio(sdp, &choice.payload_types(), true, lines, None)
}

/// Our SDP (the stack's, answering the peer or offering) with the codec lines written by
/// wacall: the chosen payload types once each, the peer's own rtpmap spelling, our fmtp, ptime.
pub fn shape_local(stack_sdp: &str, choice: &Choice) -> String {
    let mut lines = vec![format!(
        "a=rtpmap:{} {}",
        choice.audio.pt,
        choice.audio.rtpmap_value()
    )];
    if let Some(f) = choice.local_audio_fmtp() {
        lines.push(format!("a=fmtp:{} {f}", choice.audio.pt));
    }
    if let Some(d) = &choice.dtmf {
        lines.push(format!("a=rtpmap:{} {}", d.pt, d.rtpmap_value()));
        if let Some(f) = choice.local_dtmf_fmtp() {
            lines.push(format!("a=fmtp:{} {f}", d.pt));
        }
    }
    rewrite_audio(
        stack_sdp,
        &choice.payload_types(),
        true,
        lines,
        Some(choice.ptime_lines()),
    )
}

/// `stack_sdp` with the codec section of `shape_sdp` (its m-line formats, rtpmap, fmtp,
/// rtcp-fb, ptime and maxptime lines): how the sandbox's simulated user takes the shape of
/// another stack's offer (Chromium's, a WhatsApp variant's) while its ICE and DTLS stay its own.
pub fn impose_codecs(stack_sdp: &str, shape_sdp: &str) -> String {
    let lines: Vec<&str> = shape_sdp
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    let Some((start, end)) = audio_bounds(&lines) else {
        return stack_sdp.to_owned();
    };
    let pts: Vec<u8> = lines[start]
        .split_whitespace()
        .skip(3)
        .filter_map(|t| t.parse().ok())
        .collect();
    let section = &lines[start + 1..end];
    let codec_lines = section
        .iter()
        .filter(|l| pt_attr(l).is_some())
        .map(|l| l.to_string())
        .collect();
    let packet_time = section
        .iter()
        .filter(|l| l.starts_with("a=ptime:") || l.starts_with("a=maxptime:"))
        .map(|l| l.to_string())
        .collect();
    rewrite_audio(stack_sdp, &pts, false, codec_lines, Some(packet_time))
}

/// What we offer when we call: Opus at 111 and telephone-event/8000 at 126, WhatsApp's own
/// payload types, whatever else the stack has registered (G.711 is there for answering only).
pub fn our_offer_choice() -> Choice {
    Choice {
        codec: AudioCodec::Opus,
        audio: Format {
            pt: OPUS_PT,
            encoding: "opus".to_owned(),
            clock_rate: 48_000,
            channels: 2,
            rtpmap: Some("opus/48000/2".to_owned()),
            fmtp: Some(STACK_OPUS_FMTP.to_owned()),
        },
        dtmf: Some(Format {
            pt: DTMF_PT,
            encoding: "telephone-event".to_owned(),
            clock_rate: 8_000,
            channels: 1,
            rtpmap: Some("telephone-event/8000".to_owned()),
            fmtp: Some(STACK_DTMF_FMTP.to_owned()),
        }),
        ptime: None,
        maxptime: None,
    }
}

/// Checks an answer against the offer it answers, by the rules in the module doc. Returns every
/// rule broken (empty when the answer is right). Used by the table-driven corpus test, and on
/// every answer we send (a broken one is logged loudly).
pub fn audit_answer(offer: &str, answer: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(off) = AudioSection::read(offer) else {
        return vec!["the offer has no audio m-line".to_owned()];
    };
    let Some(ans) = AudioSection::read(answer) else {
        return vec!["the answer has no audio m-line".to_owned()];
    };
    let lines: Vec<&str> = answer.lines().map(|l| l.trim_end_matches('\r')).collect();
    let (start, end) = audio_bounds(&lines).unwrap_or((0, 0));
    let mline_pts: Vec<&str> = lines[start].split_whitespace().skip(3).collect();
    for (i, pt) in mline_pts.iter().enumerate() {
        if mline_pts[..i].contains(pt) {
            problems.push(format!("payload type {pt} appears twice in the m-line"));
        }
    }
    for f in &ans.formats {
        let rtpmaps = lines[start + 1..end]
            .iter()
            .filter(|l| pt_attr(l) == Some(("rtpmap", f.pt)))
            .count();
        if rtpmaps != 1 {
            problems.push(format!(
                "payload type {} has {rtpmaps} a=rtpmap lines",
                f.pt
            ));
        }
        match off.formats.iter().find(|o| o.pt == f.pt) {
            None => problems.push(format!("answers {f}, which the offer did not contain")),
            Some(o)
                if !(o.encoding.eq_ignore_ascii_case(&f.encoding)
                    && o.clock_rate == f.clock_rate) =>
            {
                problems.push(format!("answers {f} where the offer has {o}"))
            }
            _ => {}
        }
    }
    match Choice::from_section(&off) {
        Err(_) => problems.push("the offer has no codec we speak; it must be refused".to_owned()),
        Ok(want) => {
            if ans.formats.first().map(|f| f.pt) != Some(want.audio.pt) {
                problems.push(format!(
                    "answers {} first, not the offer's {}",
                    ans.formats
                        .first()
                        .map_or("nothing".to_owned(), Format::to_string),
                    want.audio
                ));
            }
            let dtmf: Vec<&Format> = ans
                .formats
                .iter()
                .filter(|f| f.encoding.eq_ignore_ascii_case("telephone-event"))
                .collect();
            match (&want.dtmf, dtmf.as_slice()) {
                (None, []) => {}
                (Some(w), [got]) if got.pt == w.pt => {}
                (w, got) => problems.push(format!(
                    "telephone-event answered as [{}], expected [{}]",
                    got.iter()
                        .map(|f| f.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    w.as_ref().map_or(String::new(), Format::to_string)
                )),
            }
            if ans.formats.len() != want.payload_types().len() {
                problems.push(format!(
                    "answers {} formats ({}), expected {}",
                    ans.formats.len(),
                    ans.describe(),
                    want.payload_types().len()
                ));
            }
            if ans.ptime != Some(PTIME_MS) {
                problems.push(format!("a=ptime is {:?}, expected 20", ans.ptime));
            }
            if let (Some(off_max), ans_max) = (off.maxptime, ans.maxptime)
                && ans_max.is_none_or(|m| m < PTIME_MS || m > off_max.max(PTIME_MS))
            {
                problems.push(format!(
                    "a=maxptime {ans_max:?} does not honour the offer's {off_max}"
                ));
            }
            if want.codec == AudioCodec::Opus {
                let ours = parse_fmtp(
                    ans.formats
                        .first()
                        .and_then(|f| f.fmtp.as_deref())
                        .unwrap_or(""),
                );
                let peer = parse_fmtp(want.peer_fmtp());
                let num = |v: &[(String, String)], k: &str| {
                    v.iter()
                        .find(|(key, _)| key == k)
                        .and_then(|(_, x)| x.parse::<u32>().ok())
                };
                for key in ["maxaveragebitrate", "maxplaybackrate"] {
                    if let Some(p) = num(&peer, key)
                        && num(&ours, key).is_none_or(|o| o > p.max(8_000))
                    {
                        problems.push(format!(
                            "our {key} {:?} exceeds the offer's {p}",
                            num(&ours, key)
                        ));
                    }
                }
                if let Some(p) = num(&peer, "maxplaybackrate")
                    && num(&ours, "sprop-maxcapturerate").is_none_or(|o| o > p.max(8_000))
                {
                    problems.push(format!(
                        "our sprop-maxcapturerate does not honour maxplaybackrate {p}"
                    ));
                }
                if num(&ours, "useinbandfec") != Some(1) {
                    problems.push("our fmtp does not say useinbandfec=1".to_owned());
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDEBAND: &str = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 126\r\nc=IN IP4 0.0.0.0\r\na=mid:audio\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1\r\n\
a=rtpmap:126 telephone-event/8000\r\na=ptime:20\r\na=maxptime:20\r\n";

    const CHROMIUM: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n";

    /// What the stack makes of an offer (it echoes the offer's payload types and registers
    /// fmtp of its own), for shaping.
    fn stack_answer(pts: &str, lines: &str) -> String {
        format!(
            "v=0\r\no=- 9 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF {pts}\r\nc=IN IP4 0.0.0.0\r\na=setup:active\r\na=mid:audio\r\n{lines}\
a=sendrecv\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
        )
    }

    #[test]
    fn wideband_whatsapp_offer_gets_opus_with_its_limits() {
        let c = Choice::from_sdp(WIDEBAND).unwrap();
        assert_eq!(
            (c.codec, c.audio_pt(), c.dtmf_pt()),
            (AudioCodec::Opus, 111, Some(126))
        );
        assert_eq!(
            c.local_audio_fmtp().unwrap(),
            "maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1"
        );
        // The stack's own answer, as webrtc 0.21 made it for this offer: telephone-event only.
        let stack = stack_answer("126", "a=rtpmap:126 telephone-event/8000\r\n");
        let ours = shape_local(&stack, &c);
        assert!(
            ours.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 126\r\n"),
            "{ours}"
        );
        assert!(ours.contains("a=rtpmap:111 opus/48000/2\r\n"));
        assert!(ours.contains("a=ptime:20\r\na=maxptime:20\r\n"));
        assert_eq!(
            audit_answer(WIDEBAND, &ours),
            Vec::<String>::new(),
            "{ours}"
        );
        assert!(!audit_answer(WIDEBAND, &stack).is_empty());
    }

    #[test]
    fn chromium_offer_gets_126_once_and_nothing_else() {
        let c = Choice::from_sdp(CHROMIUM).unwrap();
        assert_eq!(c.payload_types(), [111, 126]);
        let stack = stack_answer(
            "111 110 110",
            "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:110 telephone-event/48000\r\na=rtpmap:110 telephone-event/48000\r\n",
        );
        let problems = audit_answer(CHROMIUM, &stack);
        assert!(
            problems.iter().any(|p| p.contains("appears twice")),
            "{problems:?}"
        );
        let ours = shape_local(&stack, &c);
        assert_eq!(
            audit_answer(CHROMIUM, &ours),
            Vec::<String>::new(),
            "{ours}"
        );
        assert!(!ours.contains("a=maxptime"), "the offer had none");
    }

    #[test]
    fn the_stack_sees_only_the_chosen_formats_with_our_fmtp() {
        let c = Choice::from_sdp(CHROMIUM).unwrap();
        let seen = for_stack(CHROMIUM, &c);
        let s = AudioSection::read(&seen).unwrap();
        assert_eq!(
            s.formats.iter().map(|f| f.pt).collect::<Vec<_>>(),
            [111, 126]
        );
        assert_eq!(s.formats[0].fmtp.as_deref(), Some(STACK_OPUS_FMTP));
        assert_eq!(s.formats[1].fmtp.as_deref(), Some(STACK_DTMF_FMTP));
        assert!(seen.contains("a=rtcp-fb:111 transport-cc\r\n"));
        assert!(!seen.contains("G722") && !seen.contains("a=fmtp:63"));
        assert!(seen.starts_with("v=0\r\n") && seen.contains("a=mid:0\r\n"));
    }

    #[test]
    fn opus_is_found_by_name_on_any_payload_type() {
        let sdp = WIDEBAND.replace("111", "109");
        let c = Choice::from_sdp(&sdp).unwrap();
        assert_eq!((c.codec, c.audio_pt()), (AudioCodec::Opus, 109));
        let upper = WIDEBAND.replace("opus/48000/2", "OPUS/48000/2");
        assert_eq!(Choice::from_sdp(&upper).unwrap().codec, AudioCodec::Opus);
        // Opus at another clock rate is not Opus as RFC 7587 defines it.
        let odd = WIDEBAND.replace("opus/48000/2", "opus/16000/1");
        assert!(Choice::from_sdp(&odd).is_err());
    }

    #[test]
    fn telephone_event_prefers_8k_and_takes_48k_when_alone() {
        let c = Choice::from_sdp(CHROMIUM).unwrap();
        assert_eq!((c.dtmf_pt(), c.dtmf_clock()), (Some(126), 8_000));
        let only48 = CHROMIUM
            .replace(" 110 126\r\n", " 110\r\n")
            .replace("a=rtpmap:126 telephone-event/8000\r\n", "");
        let c = Choice::from_sdp(&only48).unwrap();
        assert_eq!((c.dtmf_pt(), c.dtmf_clock()), (Some(110), 48_000));
        let none = WIDEBAND
            .replace(" 111 126\r\n", " 111\r\n")
            .replace("a=rtpmap:126 telephone-event/8000\r\n", "");
        assert_eq!(Choice::from_sdp(&none).unwrap().dtmf_pt(), None);
    }

    #[test]
    fn g711_is_the_fallback_and_opus_wins_when_both_are_there() {
        let beside = "v=0\r\nm=audio 9 RTP/SAVPF 111 0 8 126\r\na=rtpmap:111 opus/48000/2\r\n\
a=rtpmap:126 telephone-event/8000\r\n";
        assert_eq!(Choice::from_sdp(beside).unwrap().codec, AudioCodec::Opus);
        // Static payload types may come without a=rtpmap.
        let only = "v=0\r\nm=audio 9 RTP/SAVPF 0 8 126\r\na=rtpmap:126 telephone-event/8000\r\n";
        let c = Choice::from_sdp(only).unwrap();
        assert_eq!((c.codec, c.audio_pt()), (AudioCodec::Pcmu, 0));
        assert_eq!(c.local_audio_fmtp(), None);
        let stack = stack_answer(
            "0 126",
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\n",
        );
        let ours = shape_local(&stack, &c);
        assert_eq!(audit_answer(only, &ours), Vec::<String>::new(), "{ours}");
        let pcma = "v=0\r\nm=audio 9 RTP/SAVPF 8\r\n";
        assert_eq!(Choice::from_sdp(pcma).unwrap().codec, AudioCodec::Pcma);
    }

    #[test]
    fn nothing_we_speak_names_what_was_offered() {
        let sdp = "v=0\r\nm=audio 9 RTP/SAVPF 9 102\r\na=rtpmap:9 G722/8000\r\na=rtpmap:102 ILBC/8000\r\n";
        let err = Choice::from_sdp(sdp).unwrap_err().to_string();
        assert!(err.contains("9 G722/8000, 102 ILBC/8000"), "{err}");
    }

    #[test]
    fn an_answer_may_list_more_but_we_take_what_we_offered() {
        let offer = shape_local(
            &stack_answer(
                "111 126 0 8",
                "a=rtpmap:111 opus/48000/2\r\na=rtpmap:126 telephone-event/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n",
            ),
            &our_offer_choice(),
        );
        assert!(offer.contains("UDP/TLS/RTP/SAVPF 111 126\r\n"), "{offer}");
        // Meta's sample answer to a business offer.
        let meta = "v=0\r\na=ice-lite\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 9 0 8 110 126\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n";
        let c = Choice::from_answer(meta, &offer).unwrap();
        assert_eq!(c.payload_types(), [111, 126]);
        let pcmu_only = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n";
        let err = Choice::from_answer(pcmu_only, &offer)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0 PCMU/8000") && err.contains("111 opus/48000/2"),
            "{err}"
        );
    }

    #[test]
    fn an_answer_without_formats_is_a_finding_not_a_panic() {
        // Found by the remote_sdp fuzz target (fuzz/seeds/remote_sdp/crash-audit-answer-empty-formats).
        let offer = "\nm=audio 9 F 111\na=rtpmap:111 opus/48000";
        let answer = "\nm=audio \u{eb} o";
        let problems = audit_answer(offer, answer);
        assert!(!problems.is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            "",
            "m=audio",
            "m=audio 9",
            "m=audio 9 RTP 300 x -1\r\na=rtpmap:",
            "a=rtpmap:1 x\r\nm=audio 1 2 1\r\na=rtpmap:1 /\r\na=fmtp:1\r\n",
        ] {
            let _ = Choice::from_sdp(s);
            let _ = audit_answer(s, s);
            if let Ok(c) = Choice::from_sdp(s) {
                let _ = shape_local(s, &c);
                let _ = for_stack(s, &c);
            }
        }
    }
}
