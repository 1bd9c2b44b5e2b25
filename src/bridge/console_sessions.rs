//! Supervisor console sign-ins: a supervisor's token is exchanged once for a random session id
//! kept in an HttpOnly, SameSite=Strict cookie, so the token itself never sits in the browser.
//! Pure: time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A session lasts a working day, then the supervisor signs in again.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; past it the oldest goes (a flood of sign-ins cannot grow memory).
const MAX_SESSIONS: usize = 1000;

#[derive(Debug, Default)]
pub struct Sessions {
    by_id: HashMap<String, (String, Instant)>,
}

impl Sessions {
    /// A new session for supervisor `name`; returns its id (256 random bits, hex).
    pub fn open(&mut self, name: &str, now: Instant) -> String {
        self.by_id
            .retain(|_, (_, since)| now.saturating_duration_since(*since) < SESSION_TTL);
        if self.by_id.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, (_, since))| *since)
                .map(|(id, _)| id.clone())
        {
            self.by_id.remove(&oldest);
        }
        let id = hex::encode(rand::random::<[u8; 32]>());
        self.by_id.insert(id.clone(), (name.to_string(), now));
        id
    }

    /// The supervisor a session id belongs to, if it is current.
    pub fn who(&self, id: &str, now: Instant) -> Option<&str> {
        self.by_id
            .get(id)
            .filter(|(_, since)| now.saturating_duration_since(*since) < SESSION_TTL)
            .map(|(name, _)| name.as_str())
    }

    pub fn close(&mut self, id: &str) {
        self.by_id.remove(id);
    }
}

/// The session id in a `Cookie` header, if any.
pub fn cookie_session(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

pub const COOKIE: &str = "wacall_console";

/// The `Set-Cookie` value for a new session (`Secure` when the bridge itself serves TLS; behind
/// a TLS proxy set it there).
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_close_and_stay_bounded() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let id = s.open("qa-lead", t0);
        assert_eq!(id.len(), 64);
        assert_eq!(s.who(&id, t0 + Duration::from_secs(60)), Some("qa-lead"));
        assert_eq!(s.who(&id, t0 + SESSION_TTL), None);
        assert_eq!(s.who("forged", t0), None);
        s.close(&id);
        assert_eq!(s.who(&id, t0), None);
        for _ in 0..MAX_SESSIONS + 10 {
            s.open("qa", t0);
        }
        assert!(s.by_id.len() <= MAX_SESSIONS);
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = set_cookie("abc", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert_eq!(
            cookie_session("theme=dark; wacall_console=abc; x=1"),
            Some("abc")
        );
        assert_eq!(cookie_session("theme=dark"), None);
    }
}
