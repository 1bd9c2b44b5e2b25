//! Which edge gets a call: available edges, longest-idle first, each tried at most once per call.
//! Pure: the hub feeds it presence and busy/idle changes with the time passed in.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

#[derive(Debug, Clone)]
struct Presence {
    available: bool,
    /// When the edge last became free; the longest-idle edge is offered the next call.
    idle_since: Instant,
    calls: usize,
    max_calls: usize,
    /// Takes only calls nobody else could (`routing.overflow`): never picked in normal routing.
    overflow: bool,
}

#[derive(Debug, Default)]
pub struct Router {
    edges: HashMap<String, Presence>,
}

impl Router {
    /// A new edge; bots take many calls at once, agents one.
    pub fn join(&mut self, edge: &str, max_calls: usize, now: Instant) {
        self.join_as(edge, max_calls, false, now);
    }

    /// `overflow`: the edge only takes calls whose wait ran out ([`Router::pick_overflow`]).
    pub fn join_as(&mut self, edge: &str, max_calls: usize, overflow: bool, now: Instant) {
        self.edges.insert(
            edge.to_string(),
            Presence {
                available: true,
                idle_since: now,
                calls: 0,
                max_calls: max_calls.max(1),
                overflow,
            },
        );
    }

    /// A free overflow edge, if one is connected.
    pub fn pick_overflow(&self) -> Option<String> {
        self.edges
            .iter()
            .filter(|(_, p)| p.overflow && p.available && p.calls < p.max_calls)
            .min_by(|(a_id, a), (b_id, b)| (a.calls, a_id.as_str()).cmp(&(b.calls, b_id.as_str())))
            .map(|(id, _)| id.clone())
    }

    pub fn leave(&mut self, edge: &str) {
        self.edges.remove(edge);
    }

    pub fn set_available(&mut self, edge: &str, available: bool) {
        if let Some(p) = self.edges.get_mut(edge) {
            p.available = available;
        }
    }

    pub fn call_started(&mut self, edge: &str) {
        if let Some(p) = self.edges.get_mut(edge) {
            p.calls += 1;
        }
    }

    pub fn call_ended(&mut self, edge: &str, now: Instant) {
        if let Some(p) = self.edges.get_mut(edge) {
            p.calls = p.calls.saturating_sub(1);
            if p.calls == 0 {
                p.idle_since = now;
            }
        }
    }

    /// The next edge to offer a call to, skipping those already tried for it.
    pub fn pick(&self, tried: &HashSet<String>) -> Option<String> {
        self.pick_where(tried, |_| true)
    }

    /// [`Router::pick`] among the edges `allowed` accepts (a call's group).
    pub fn pick_where(
        &self,
        tried: &HashSet<String>,
        allowed: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.edges
            .iter()
            .filter(|(id, p)| {
                !p.overflow
                    && p.available
                    && p.calls < p.max_calls
                    && !tried.contains(*id)
                    && allowed(id)
            })
            .min_by(|(a_id, a), (b_id, b)| {
                (a.calls, a.idle_since, a_id.as_str()).cmp(&(b.calls, b.idle_since, b_id.as_str()))
            })
            .map(|(id, _)| id.clone())
    }

    /// (available, calls held) of an edge.
    pub fn presence(&self, edge: &str) -> Option<(bool, usize)> {
        self.edges.get(edge).map(|p| (p.available, p.calls))
    }

    pub fn len(&self) -> usize {
        self.edges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn longest_idle_available_edge_first_then_the_next() {
        let t0 = Instant::now();
        let mut r = Router::default();
        r.join("a", 1, t0 + Duration::from_secs(2));
        r.join("b", 1, t0);
        r.join("c", 1, t0 + Duration::from_secs(1));
        let mut tried = HashSet::new();
        assert_eq!(r.pick(&tried).as_deref(), Some("b"));
        tried.insert("b".to_string());
        assert_eq!(r.pick(&tried).as_deref(), Some("c"));
        r.set_available("c", false);
        assert_eq!(r.pick(&tried).as_deref(), Some("a"));
        tried.insert("a".to_string());
        assert_eq!(r.pick(&tried), None);
    }

    #[test]
    fn busy_edges_are_skipped_until_their_call_ends() {
        let t0 = Instant::now();
        let mut r = Router::default();
        r.join("agent", 1, t0);
        r.call_started("agent");
        assert_eq!(r.pick(&HashSet::new()), None);
        r.call_ended("agent", t0 + Duration::from_secs(5));
        assert_eq!(r.pick(&HashSet::new()).as_deref(), Some("agent"));
        r.leave("agent");
        assert!(r.is_empty());
    }

    #[test]
    fn a_bot_takes_several_calls_and_prefers_the_least_loaded() {
        let t0 = Instant::now();
        let mut r = Router::default();
        r.join("bot1", 100, t0);
        r.join("bot2", 100, t0 + Duration::from_secs(1));
        r.call_started("bot1");
        assert_eq!(r.pick(&HashSet::new()).as_deref(), Some("bot2"));
        r.call_started("bot2");
        r.call_started("bot2");
        assert_eq!(r.pick(&HashSet::new()).as_deref(), Some("bot1"));
    }

    #[test]
    fn an_overflow_edge_is_never_picked_in_normal_routing() {
        let t0 = Instant::now();
        let mut r = Router::default();
        r.join_as("voicemail", 10, true, t0);
        assert_eq!(r.pick(&HashSet::new()), None);
        assert_eq!(r.pick_overflow().as_deref(), Some("voicemail"));
        r.join("agent", 1, t0);
        assert_eq!(r.pick(&HashSet::new()).as_deref(), Some("agent"));
        r.set_available("voicemail", false);
        assert_eq!(r.pick_overflow(), None);
    }
}
