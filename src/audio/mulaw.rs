//! G.711 µ-law (ITU-T G.711, continuous-bias variant used by every telephony stack).
//!
//! Only needed at edges that speak 8 kHz telephony (e.g. voice-AI streams that want
//! `audio/x-mulaw`); inside wacall everything stays 48 kHz PCM.

/// Bias added before the segment search so that the segment boundaries fall on powers of two.
const BIAS: i32 = 0x84;
/// Largest magnitude that still fits in segment 7 once the bias is added.
const CLIP: i32 = 32_635;

/// Encodes one linear 16-bit sample to µ-law.
pub fn encode_sample(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        // Negating i16::MIN would overflow in i16; in i32 it is fine and then clipped.
        pcm = -pcm;
        0x80
    } else {
        0x00
    };
    pcm = pcm.min(CLIP) + BIAS;
    // Segment = position of the highest set bit above bit 7 (pcm is at least 0x84).
    let exponent = (31 - (pcm as u32).leading_zeros()) as i32 - 7;
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Decodes one µ-law byte to a linear 16-bit sample.
pub fn decode_sample(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

pub fn encode(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| encode_sample(s)).collect()
}

pub fn decode(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| decode_sample(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(encode_sample(0), 0xFF);
        assert_eq!(encode_sample(-1), 0x7F);
        assert_eq!(encode_sample(i16::MAX), 0x80);
        assert_eq!(encode_sample(i16::MIN), 0x00);
        assert_eq!(encode_sample(32_124), 0x80);
        assert_eq!(encode_sample(120), 0xF0);
        assert_eq!(decode_sample(0xFF), 0);
        assert_eq!(decode_sample(0x7F), 0);
        assert_eq!(decode_sample(0x80), 32_124);
        assert_eq!(decode_sample(0x00), -32_124);
        assert_eq!(decode_sample(0xF0), 120);
        assert_eq!(decode_sample(0x70), -120);
    }

    #[test]
    fn every_code_round_trips_exactly() {
        for b in 0..=255u8 {
            let s = decode_sample(b);
            let again = encode_sample(s);
            // 0x7F and 0xFF both mean zero; the encoder prefers positive zero.
            if b == 0x7F {
                assert_eq!(again, 0xFF);
            } else {
                assert_eq!(again, b, "code {b:#04x} -> {s}");
            }
        }
    }

    #[test]
    fn round_trip_error_is_bounded_by_segment_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let back = decode_sample(encode_sample(s));
            let mag = i32::from(s).abs().min(CLIP);
            // Quantisation step doubles per segment; half a step is the worst case, plus clipping.
            let bound = (mag / 16).max(8) + 4;
            let err = (i32::from(back) - i32::from(s).clamp(-CLIP, CLIP)).abs();
            assert!(err <= bound, "sample {s} -> {back} (err {err} > {bound})");
        }
    }

    #[test]
    fn slices() {
        let pcm = [0i16, 1000, -1000, 20_000];
        let coded = encode(&pcm);
        assert_eq!(coded.len(), 4);
        let back = decode(&coded);
        assert_eq!(back.len(), 4);
        assert!((back[1] - 1000).abs() < 40);
        assert!((back[2] + 1000).abs() < 40);
    }
}
