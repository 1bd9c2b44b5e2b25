//! The calls the bridge knows, by WhatsApp call id. Ended calls linger for a while so late
//! webhooks and the edge's final report still find them (and are recognised as repeats instead of
//! new calls), then are dropped so memory stays bounded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Call;

/// How long an ended call is remembered.
pub const LINGER: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct Registry {
    calls: HashMap<String, Call>,
    ended: HashMap<String, Instant>,
}

impl Registry {
    pub fn get(&self, id: &str) -> Option<&Call> {
        self.calls.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Call> {
        self.calls.get_mut(id)
    }

    pub fn insert(&mut self, call: Call) {
        self.calls.insert(call.id.clone(), call);
    }

    pub fn contains(&self, id: &str) -> bool {
        self.calls.contains_key(id)
    }

    /// Marks a call ended at `now`; it is forgotten after [`LINGER`].
    pub fn mark_ended(&mut self, id: &str, now: Instant) {
        self.ended.entry(id.to_string()).or_insert(now);
    }

    /// Drops calls that ended more than [`LINGER`] ago.
    pub fn sweep(&mut self, now: Instant) {
        let old: Vec<String> = self
            .ended
            .iter()
            .filter(|(_, t)| now.duration_since(**t) > LINGER)
            .map(|(id, _)| id.clone())
            .collect();
        for id in old {
            self.ended.remove(&id);
            self.calls.remove(&id);
        }
    }

    /// Calls not yet ended.
    pub fn live(&self) -> impl Iterator<Item = &Call> {
        self.calls.values().filter(|c| !c.is_ended())
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}
