//! Per-edge rate limits, pure (time passed in): a token bucket each for an edge's messages and
//! for its dials. A runaway or hostile edge gets its excess refused instead of flooding the
//! engine or placing calls (which cost money and need the user's permission) in a loop.

use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(rate: f64, burst: f64, now: Instant) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Messages: 100 a second sustained (a call sends a few plus stats every 2 s), bursts of 400.
pub const MESSAGES_PER_S: f64 = 100.0;
pub const MESSAGE_BURST: f64 = 400.0;
/// Dials: one every 2 s sustained, bursts of 5.
pub const DIALS_PER_S: f64 = 0.5;
pub const DIAL_BURST: f64 = 5.0;

/// An edge's two buckets.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    pub messages: Bucket,
    pub dials: Bucket,
    /// When a refusal was last logged (one line per second at most).
    pub warned_at: Option<Instant>,
}

impl EdgeLimits {
    pub fn new(now: Instant) -> EdgeLimits {
        EdgeLimits {
            messages: Bucket::new(MESSAGES_PER_S, MESSAGE_BURST, now),
            dials: Bucket::new(DIALS_PER_S, DIAL_BURST, now),
            warned_at: None,
        }
    }

    /// Whether to log a refusal now (throttled).
    pub fn should_warn(&mut self, now: Instant) -> bool {
        if self
            .warned_at
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return false;
        }
        self.warned_at = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(0.5, 5.0, t0);
        assert_eq!((0..10).filter(|_| b.take(t0)).count(), 5);
        assert!(!b.take(t0 + Duration::from_secs(1)));
        assert!(b.take(t0 + Duration::from_secs(2)));
        // Saved up no further than the burst.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 5);
    }
}
