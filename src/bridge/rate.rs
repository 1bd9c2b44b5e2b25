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

/// Messages: 100 a second sustained, bursts of 400, plus as much again per call the edge may
/// hold: a call sends its stats every 2 s and a handful of messages when it starts and ends, so
/// a bot carrying hundreds of calls needs hundreds of messages a second. (A flat limit refused
/// a 200-call bot's stats in a load test, and would have refused its hang-ups next.)
pub const MESSAGES_PER_S: f64 = 100.0;
pub const MESSAGE_BURST: f64 = 400.0;
pub const MESSAGES_PER_S_PER_CALL: f64 = 1.0;
pub const MESSAGE_BURST_PER_CALL: f64 = 8.0;
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
    /// Limits for an edge that may hold `max_calls` calls at once.
    pub fn new(max_calls: usize, now: Instant) -> EdgeLimits {
        let calls = max_calls as f64;
        EdgeLimits {
            messages: Bucket::new(
                MESSAGES_PER_S + MESSAGES_PER_S_PER_CALL * calls,
                MESSAGE_BURST + MESSAGE_BURST_PER_CALL * calls,
                now,
            ),
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

    /// A bot at its call limit, each call sending stats every 2 s, and a burst of 50 calls
    /// set up and ended (four messages each) on top: nothing is refused. An agent (one call)
    /// flooding at 1000 messages a second is cut to its budget.
    #[test]
    fn a_full_bot_stays_within_its_budget_and_a_flood_does_not() {
        let t0 = Instant::now();
        let mut bot = EdgeLimits::new(500, t0);
        let mut refused = 0;
        for tick in 0..600u64 {
            // 100 ms ticks for 60 s: 500 calls x 0.5 stats/s = 25 per tick.
            let now = t0 + Duration::from_millis(tick * 100);
            let burst = if tick % 100 == 50 { 200 } else { 0 };
            for _ in 0..25 + burst {
                if !bot.messages.take(now) {
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 0);
        let mut agent = EdgeLimits::new(1, t0);
        let sent = (0..10_000u64)
            .filter(|i| agent.messages.take(t0 + Duration::from_millis(i / 10)))
            .count();
        // 10 s at 1000/s: the burst (408) and 101 a second get through.
        assert!(sent < 1_500, "{sent}");
    }
}
