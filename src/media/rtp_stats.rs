//! Receive-side RTP statistics (RFC 3550 §6.4.1 and appendix A.3/A.8), pure.
//!
//! Kept by us rather than read from the stack's RTCP reports so that loss and jitter are exact
//! for the audio we actually received, available from the first packet, and testable.

#[derive(Debug, Default, Clone)]
pub struct RecvStats {
    base_seq: Option<u16>,
    max_seq: u16,
    cycles: u32,
    pub packets: u64,
    pub bytes: u64,
    pub duplicates_or_reordered: u64,
    /// Interarrival jitter in RTP timestamp units, as RFC 3550 A.8 (scaled by 16 inside).
    jitter_q4: u64,
    last_transit: Option<i64>,
}

pub use crate::media_stats::RecvSummary;

impl RecvStats {
    /// Records one packet. `arrival_ts` is the arrival time converted to RTP clock units
    /// (48 kHz for Opus), `rtp_ts` the packet's timestamp.
    pub fn on_packet(&mut self, seq: u16, rtp_ts: u32, arrival_ts: i64, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
        match self.base_seq {
            None => {
                self.base_seq = Some(seq);
                self.max_seq = seq;
            }
            Some(_) => {
                let delta = seq.wrapping_sub(self.max_seq);
                if delta != 0 && delta < 0x8000 {
                    if seq < self.max_seq {
                        self.cycles += 1;
                    }
                    self.max_seq = seq;
                } else {
                    self.duplicates_or_reordered += 1;
                }
            }
        }
        let transit = arrival_ts - i64::from(rtp_ts);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // J += (|D| - J) / 16, in fixed point.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    pub fn summary(&self, clock_rate: u32) -> RecvSummary {
        let expected = match self.base_seq {
            None => 0,
            Some(base) => {
                let ext_max = (u64::from(self.cycles) << 16) | u64::from(self.max_seq);
                ext_max - u64::from(base) + 1
            }
        };
        let unique = self.packets - self.duplicates_or_reordered.min(self.packets);
        let lost = expected.saturating_sub(unique);
        RecvSummary {
            packets: self.packets,
            bytes: self.bytes,
            expected,
            lost,
            loss_pct: if expected == 0 {
                0.0
            } else {
                lost as f64 * 100.0 / expected as f64
            },
            jitter_ms: (self.jitter_q4 >> 4) as f64 * 1000.0 / f64::from(clock_rate),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_stream_has_no_loss_or_jitter() {
        let mut s = RecvStats::default();
        for i in 0..100u32 {
            s.on_packet(i as u16, i * 960, i64::from(i * 960) + 5000, 80);
        }
        let sum = s.summary(48_000);
        assert_eq!((sum.packets, sum.expected, sum.lost), (100, 100, 0));
        assert_eq!(sum.jitter_ms, 0.0);
        assert_eq!(sum.bytes, 8000);
    }

    #[test]
    fn gaps_count_as_loss_across_sequence_wrap() {
        let mut s = RecvStats::default();
        let mut seq = 65_500u16;
        for i in 0..100u32 {
            if i % 10 != 3 {
                s.on_packet(seq, i * 960, i64::from(i * 960), 80);
            }
            seq = seq.wrapping_add(1);
        }
        let sum = s.summary(48_000);
        assert_eq!(sum.expected, 100);
        assert_eq!(sum.lost, 10);
        assert!((sum.loss_pct - 10.0).abs() < 1e-9);
    }

    #[test]
    fn jitter_follows_arrival_variation() {
        let mut s = RecvStats::default();
        for i in 0..500u32 {
            // Every other packet arrives 10 ms (480 units) late.
            let wobble = if i % 2 == 0 { 0 } else { 480 };
            s.on_packet(i as u16, i * 960, i64::from(i * 960 + wobble), 80);
        }
        let j = s.summary(48_000).jitter_ms;
        assert!((8.0..=10.5).contains(&j), "jitter {j}");
    }

    #[test]
    fn duplicates_are_not_loss() {
        let mut s = RecvStats::default();
        for i in 0..10u16 {
            s.on_packet(i, u32::from(i) * 960, 0, 10);
            s.on_packet(i, u32::from(i) * 960, 0, 10);
        }
        let sum = s.summary(48_000);
        assert_eq!((sum.expected, sum.lost), (10, 0));
    }
}
