//! Frame arithmetic for conferencing, hold music under speech and volume controls.

use super::frame::Frame;

/// Sums two frames, clamping at full scale rather than wrapping (wrapping sounds like a crack).
pub fn mix(a: &Frame, b: &Frame) -> Frame {
    let mut out = Frame::silence();
    for ((o, &x), &y) in out.0.iter_mut().zip(a.0.iter()).zip(b.0.iter()) {
        *o = x.saturating_add(y);
    }
    out
}

/// Multiplies every sample by `gain`, clamping at full scale. A non-finite or negative
/// gain is treated as mute, so a bad setting cannot produce noise.
pub fn scale(frame: &Frame, gain: f32) -> Frame {
    let mut out = Frame::silence();
    if !gain.is_finite() || gain <= 0.0 {
        return out;
    }
    for (o, &x) in out.0.iter_mut().zip(frame.0.iter()) {
        // `as` from f32 to i16 saturates, which is exactly the clipping we want.
        *o = (f32::from(x) * gain).round() as i16;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_adds_and_saturates() {
        let a = Frame::from_slice(&[100, 30_000, -30_000, 5]);
        let b = Frame::from_slice(&[23, 30_000, -30_000, -5]);
        let m = mix(&a, &b);
        assert_eq!(&m.samples()[..5], &[123, i16::MAX, i16::MIN, 0, 0]);
    }

    #[test]
    fn scale_gains() {
        let a = Frame::from_slice(&[1000, -1000, 20_000]);
        assert_eq!(&scale(&a, 0.5).samples()[..3], &[500, -500, 10_000]);
        assert_eq!(&scale(&a, 2.0).samples()[..3], &[2000, -2000, i16::MAX]);
        assert_eq!(scale(&a, 0.0), Frame::silence());
        assert_eq!(scale(&a, f32::NAN), Frame::silence());
        assert_eq!(scale(&a, -1.0), Frame::silence());
        assert_eq!(scale(&a, 1.0), a);
    }
}
