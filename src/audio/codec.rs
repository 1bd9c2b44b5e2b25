//! Opus encode/decode for 20 ms mono 48 kHz frames, with loss concealment and in-band FEC.

use super::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE};
use opus::{Application, Bandwidth, Bitrate, Channels};

/// Largest packet we ask libopus for. 1275 bytes is Opus' own maximum for one frame, so
/// no legal packet can be truncated.
const MAX_PACKET: usize = 1275;

/// Opus' lowest and highest meaningful bitrates; values outside are clamped so a remote
/// fmtp cannot make libopus reject the setting.
const MIN_BITRATE: i32 = 6_000;
const MAX_BITRATE: i32 = 510_000;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("creating the Opus encoder: {0}")]
    CreateEncoder(#[source] opus::Error),
    #[error("creating the Opus decoder: {0}")]
    CreateDecoder(#[source] opus::Error),
    #[error("configuring the Opus encoder ({setting}): {source}")]
    Configure {
        setting: &'static str,
        #[source]
        source: opus::Error,
    },
    #[error("encoding a 20 ms frame: {0}")]
    Encode(#[source] opus::Error),
}

#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    pub bitrate_bps: i32,
    /// 0..=10. 5 costs about half of 10 for speech that sounds the same on a phone call
    /// (see the performance notes); the softphone may raise it.
    pub complexity: i32,
    pub fec: bool,
    pub dtx: bool,
    /// Tells the encoder how much redundancy to spend on FEC; 0 disables FEC in practice.
    pub expected_loss_pct: i32,
    /// Audio bandwidth ceiling in Hz of sample rate (48000 = fullband, 16000 = wideband).
    pub max_bandwidth_hz: u32,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            bitrate_bps: 32_000,
            complexity: 5,
            fec: true,
            dtx: false,
            expected_loss_pct: 5,
            max_bandwidth_hz: 48_000,
        }
    }
}

impl EncoderConfig {
    /// Applies the peer's Opus fmtp parameters (RFC 7587 §6.1) to this configuration.
    ///
    /// Only parameters that constrain what we send are honoured: `maxaveragebitrate` caps
    /// the bitrate, `maxplaybackrate` caps the bandwidth, `useinbandfec` says whether the
    /// peer decodes FEC. Unknown keys and unparsable values are ignored, since a peer's
    /// oddity must not cost us the call.
    pub fn honour_fmtp(&self, fmtp: &str) -> EncoderConfig {
        let mut cfg = self.clone();
        for param in fmtp.split(';') {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            match key.as_str() {
                "maxaveragebitrate" => {
                    if let Ok(max) = value.parse::<i32>()
                        && max > 0
                    {
                        cfg.bitrate_bps = cfg.bitrate_bps.min(max.max(MIN_BITRATE));
                    }
                }
                "maxplaybackrate" => {
                    if let Ok(max) = value.parse::<u32>()
                        && max > 0
                    {
                        cfg.max_bandwidth_hz = cfg.max_bandwidth_hz.min(max);
                    }
                }
                "useinbandfec" => match value {
                    "1" => cfg.fec = true,
                    "0" => cfg.fec = false,
                    _ => {}
                },
                _ => {}
            }
        }
        cfg
    }
}

/// Maps a sample-rate ceiling to the widest Opus bandwidth whose content fits under it.
fn bandwidth_for(max_hz: u32) -> Bandwidth {
    match max_hz {
        0..=8_000 => Bandwidth::Narrowband,
        8_001..=12_000 => Bandwidth::Mediumband,
        12_001..=16_000 => Bandwidth::Wideband,
        16_001..=24_000 => Bandwidth::Superwideband,
        _ => Bandwidth::Fullband,
    }
}

pub struct OpusEncoder {
    inner: opus::Encoder,
    cfg: EncoderConfig,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl OpusEncoder {
    /// Mono 48 kHz VoIP encoder. The opus 0.4 crate exposes every control we need
    /// (bitrate, complexity, FEC, loss percentage, DTX, max bandwidth), so all settings
    /// are really applied.
    pub fn new(cfg: EncoderConfig) -> Result<Self, CodecError> {
        let mut inner = opus::Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip)
            .map_err(CodecError::CreateEncoder)?;
        let conf = |setting, source| CodecError::Configure { setting, source };
        inner
            .set_bitrate(Bitrate::Bits(
                cfg.bitrate_bps.clamp(MIN_BITRATE, MAX_BITRATE),
            ))
            .map_err(|e| conf("bitrate", e))?;
        inner
            .set_complexity(cfg.complexity.clamp(0, 10))
            .map_err(|e| conf("complexity", e))?;
        inner
            .set_inband_fec(cfg.fec)
            .map_err(|e| conf("inband_fec", e))?;
        inner
            .set_packet_loss_perc(cfg.expected_loss_pct.clamp(0, 100))
            .map_err(|e| conf("packet_loss_perc", e))?;
        inner.set_dtx(cfg.dtx).map_err(|e| conf("dtx", e))?;
        inner
            .set_max_bandwidth(bandwidth_for(cfg.max_bandwidth_hz))
            .map_err(|e| conf("max_bandwidth", e))?;
        Ok(OpusEncoder { inner, cfg })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    pub fn encode(&mut self, frame: &Frame) -> Result<Vec<u8>, CodecError> {
        self.inner
            .encode_vec(frame.samples(), MAX_PACKET)
            .map_err(CodecError::Encode)
    }
}

/// What the jitter buffer plays out through: one 20 ms frame per packet, concealment for a
/// lost one, and (where the codec has it) recovery of a lost frame from the one after it.
pub trait FrameDecoder: Send {
    fn decode(&mut self, payload: &[u8]) -> Frame;
    fn conceal(&mut self) -> Frame;
    /// Rebuilds the frame before `next_payload`; codecs without FEC conceal instead.
    fn decode_fec(&mut self, next_payload: &[u8]) -> Frame {
        let _ = next_payload;
        self.conceal()
    }
}

impl FrameDecoder for OpusDecoder {
    fn decode(&mut self, payload: &[u8]) -> Frame {
        OpusDecoder::decode(self, payload)
    }
    fn conceal(&mut self) -> Frame {
        OpusDecoder::conceal(self)
    }
    fn decode_fec(&mut self, next_payload: &[u8]) -> Frame {
        OpusDecoder::decode_fec(self, next_payload)
    }
}

pub struct OpusDecoder {
    inner: opus::Decoder,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    pub fn new() -> Result<Self, CodecError> {
        let inner =
            opus::Decoder::new(SAMPLE_RATE, Channels::Mono).map_err(CodecError::CreateDecoder)?;
        Ok(OpusDecoder { inner })
    }

    /// Decodes one packet. A corrupt packet or one that is not 20 ms long is replaced by
    /// concealment: a glitch is better than a dropped call.
    pub fn decode(&mut self, payload: &[u8]) -> Frame {
        if payload.is_empty() {
            return self.conceal();
        }
        // Packets longer than 20 ms (e.g. 40/60 ms from a peer ignoring ptime) would not
        // fit one frame; decode into a buffer big enough for Opus' maximum (120 ms) and
        // keep the first 20 ms rather than failing.
        let mut buf = [0i16; FRAME_SAMPLES * 6];
        match self.inner.decode(payload, &mut buf, false) {
            Ok(n) => {
                if n != FRAME_SAMPLES {
                    tracing::debug!(samples = n, "Opus packet is not 20 ms long");
                }
                Frame::from_slice(&buf[..n.min(FRAME_SAMPLES)])
            }
            Err(e) => {
                tracing::warn!(error = %e, len = payload.len(), "Opus decode failed; concealing");
                self.conceal()
            }
        }
    }

    /// Packet-loss concealment: libopus extrapolates 20 ms from its state.
    pub fn conceal(&mut self) -> Frame {
        let mut frame = Frame::silence();
        if let Err(e) = self.inner.decode(&[], frame.samples_mut(), false) {
            tracing::warn!(error = %e, "Opus concealment failed; playing silence");
            return Frame::silence();
        }
        frame
    }

    /// Rebuilds the lost frame *before* `next_payload` from the FEC data carried in it.
    /// If the packet has no FEC (peer disabled it, or SILK was not used) libopus falls back
    /// to concealment itself; errors also fall back to concealment.
    pub fn decode_fec(&mut self, next_payload: &[u8]) -> Frame {
        if next_payload.is_empty() {
            return self.conceal();
        }
        let mut frame = Frame::silence();
        match self.inner.decode(next_payload, frame.samples_mut(), true) {
            Ok(_) => frame,
            Err(e) => {
                tracing::warn!(error = %e, "Opus FEC decode failed; concealing");
                self.conceal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone::{ToneGenerator, dominant_frequency};

    fn encode_tone(freq: f32, frames: usize, cfg: EncoderConfig) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new(cfg).unwrap();
        let mut tone = ToneGenerator::new(freq, 0.4);
        (0..frames)
            .map(|_| enc.encode(&tone.next_frame()).unwrap())
            .collect()
    }

    #[test]
    fn defaults() {
        let c = EncoderConfig::default();
        assert_eq!(c.bitrate_bps, 32_000);
        assert_eq!(c.complexity, 5);
        assert!(c.fec && !c.dtx);
        assert_eq!(c.expected_loss_pct, 5);
        assert_eq!(c.max_bandwidth_hz, 48_000);
    }

    #[test]
    fn fmtp_caps_and_toggles() {
        let base = EncoderConfig::default();
        let c = base.honour_fmtp(
            "maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=0",
        );
        assert_eq!(c.bitrate_bps, 20_000);
        assert_eq!(c.max_bandwidth_hz, 16_000);
        assert!(!c.fec);
        // Caps never raise.
        let c = base.honour_fmtp("maxaveragebitrate=64000; maxplaybackrate=96000");
        assert_eq!(c, base);
        // FEC only changes when present.
        let no_fec = EncoderConfig {
            fec: false,
            ..base.clone()
        };
        assert!(!no_fec.honour_fmtp("minptime=10").fec);
        assert!(no_fec.honour_fmtp("useinbandfec=1").fec);
    }

    #[test]
    fn fmtp_garbage_is_ignored() {
        let base = EncoderConfig::default();
        for junk in [
            "",
            ";;;",
            "maxaveragebitrate=abc",
            "maxaveragebitrate=-5;maxplaybackrate=0",
            "useinbandfec=yes",
            "=1;foo;bar=;maxplaybackrate=99999999999999",
            "\u{0}\u{ffff}=\u{1}",
        ] {
            assert_eq!(base.honour_fmtp(junk), base, "{junk:?}");
        }
        // A tiny cap is raised to Opus' minimum instead of making the encoder fail.
        let c = base.honour_fmtp("maxaveragebitrate=100");
        assert_eq!(c.bitrate_bps, MIN_BITRATE);
        assert!(OpusEncoder::new(c).is_ok());
    }

    #[test]
    fn every_setting_is_accepted_even_out_of_range() {
        let cfg = EncoderConfig {
            bitrate_bps: -1,
            complexity: 99,
            fec: true,
            dtx: true,
            expected_loss_pct: 1000,
            max_bandwidth_hz: 8000,
        };
        assert!(OpusEncoder::new(cfg).is_ok());
    }

    #[test]
    fn round_trip_keeps_the_tone() {
        let packets = encode_tone(440.0, 50, EncoderConfig::default());
        assert!(packets.iter().all(|p| !p.is_empty() && p.len() < 400));
        let mut dec = OpusDecoder::new().unwrap();
        let mut pcm = Vec::new();
        for p in &packets {
            pcm.extend_from_slice(dec.decode(p).samples());
        }
        assert_eq!(pcm.len(), 50 * FRAME_SAMPLES);
        let f = dominant_frequency(&pcm[FRAME_SAMPLES * 5..], SAMPLE_RATE);
        assert!((f - 440.0).abs() < 2.0, "{f}");
    }

    #[test]
    fn conceal_and_fec_after_real_audio() {
        let packets = encode_tone(440.0, 30, EncoderConfig::default());
        let mut dec = OpusDecoder::new().unwrap();
        for p in &packets[..20] {
            dec.decode(p);
        }
        let plc = dec.conceal();
        assert!(plc.samples().iter().any(|&s| s != 0));
        let fec = dec.decode_fec(&packets[22]);
        assert!(fec.samples().iter().any(|&s| s != 0));
        assert!(dec.decode(&packets[22]).samples().iter().any(|&s| s != 0));
    }

    #[test]
    fn garbage_never_panics() {
        let mut dec = OpusDecoder::new().unwrap();
        for junk in [
            &[][..],
            &[0xFF; 3],
            &[0x00],
            &[0xFC, 0xFF, 0xFF, 0xFF],
            &[7; 2000],
        ] {
            assert_eq!(dec.decode(junk).samples().len(), FRAME_SAMPLES);
            assert_eq!(dec.decode_fec(junk).samples().len(), FRAME_SAMPLES);
        }
        assert_eq!(dec.conceal().samples().len(), FRAME_SAMPLES);
    }

    #[test]
    fn long_packets_are_truncated_to_one_frame() {
        // A 40 ms packet, as a peer ignoring ptime might send.
        let mut enc = opus::Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip).unwrap();
        let pcm = vec![1000i16; FRAME_SAMPLES * 2];
        let p = enc.encode_vec(&pcm, MAX_PACKET).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        assert_eq!(dec.decode(&p).samples().len(), FRAME_SAMPLES);
    }
}
