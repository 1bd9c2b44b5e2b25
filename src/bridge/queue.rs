//! Callers waiting for a free edge, first come first served. Pure: the engine feeds arrivals and
//! departures with the time passed in, and asks for the waiting calls in order whenever an edge
//! may have become free.
//!
//! A queued call is still ringing on the customer's phone (no `pre_accept` yet), so any edge can
//! take it; WhatsApp's ring window bounds the wait (`routing.queue_timeout_s`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a call left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// An edge became free and took it.
    Taken,
    /// The caller hung up while waiting.
    Abandoned,
    /// Its wait ran out (or nobody can take it): overflow or reject.
    Overflowed,
}

#[derive(Debug, Default)]
pub struct CallQueue {
    waiting: VecDeque<(String, Instant)>,
}

impl CallQueue {
    /// Queues a call (a call already waiting keeps its place).
    pub fn push(&mut self, call_id: &str, now: Instant) {
        if !self.contains(call_id) {
            self.waiting.push_back((call_id.to_string(), now));
        }
    }

    pub fn contains(&self, call_id: &str) -> bool {
        self.waiting.iter().any(|(id, _)| id == call_id)
    }

    /// Takes a call out; returns how long it waited (None if it was not queued).
    pub fn remove(&mut self, call_id: &str, now: Instant) -> Option<Duration> {
        let i = self.waiting.iter().position(|(id, _)| id == call_id)?;
        let (_, since) = self.waiting.remove(i)?;
        Some(now.saturating_duration_since(since))
    }

    /// The waiting calls, longest-waiting first.
    pub fn in_order(&self) -> impl Iterator<Item = &str> {
        self.waiting.iter().map(|(id, _)| id.as_str())
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How long the longest-waiting caller has waited.
    pub fn longest_wait(&self, now: Instant) -> Option<Duration> {
        self.waiting
            .front()
            .map(|(_, since)| now.saturating_duration_since(*since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_come_first_served_and_waits_are_measured() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut q = CallQueue::default();
        q.push("a", t0);
        q.push("b", t0 + s(1));
        q.push("c", t0 + s(2));
        q.push("a", t0 + s(3)); // a repeat keeps its place
        assert_eq!(q.in_order().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(q.longest_wait(t0 + s(5)), Some(s(5)));
        // b hangs up while waiting; a is taken; c is next.
        assert_eq!(q.remove("b", t0 + s(4)), Some(s(3)));
        assert_eq!(q.remove("a", t0 + s(6)), Some(s(6)));
        assert_eq!(q.remove("a", t0 + s(7)), None);
        assert_eq!(q.in_order().collect::<Vec<_>>(), ["c"]);
        assert_eq!(q.longest_wait(t0 + s(7)), Some(s(5)));
        assert_eq!(q.remove("c", t0 + s(8)), Some(s(6)));
        assert!(q.is_empty());
        assert_eq!(q.longest_wait(t0 + s(9)), None);
    }
}
