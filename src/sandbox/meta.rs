//! What the sandbox adds in Meta's Cloud API shape (`Provider::Meta`): the call-permission rules
//! enforced per user ([`super::permissions`], on a clock a test can move forward), the simulated
//! users' answers to permission requests, and Meta-side recording and transcription: the media
//! store behind `GET /{media-id}` and download URLs that expire like Meta's (five minutes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::permissions::{PermissionRules, PermissionStatus, RuleError, Unanswered};

/// How long a download URL works (Meta: 5 minutes).
pub const URL_TTL: Duration = Duration::from_secs(300);
/// Stored files are bounded: the oldest go past this many.
const MAX_MEDIA: usize = 256;

/// How a simulated user answers a call-permission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionAnswer {
    /// Allows calls (temporary, 7 days; or permanent) after `after`.
    Accept {
        permanent: bool,
        after: Duration,
    },
    Reject {
        after: Duration,
    },
    /// Never answers.
    Ignore,
}

impl Default for PermissionAnswer {
    fn default() -> Self {
        PermissionAnswer::Accept {
            permanent: false,
            after: Duration::from_millis(300),
        }
    }
}

/// One stored file.
#[derive(Debug, Clone)]
pub struct Media {
    pub bytes: Bytes,
    pub mime_type: String,
    pub sha256_hex: String,
}

#[derive(Default)]
pub struct MetaSide {
    rules: Mutex<PermissionRules>,
    /// Strict: users have no permission until they grant it. Otherwise (the default, so the
    /// e2e suite dials as in the BSP shape) a user is granted a permanent permission the first
    /// time they are looked up, unless a test marked them with `Faults::no_permission`.
    strict: AtomicBool,
    seen: Mutex<std::collections::HashSet<String>>,
    /// Added to the wall clock (tests move through days and weeks).
    offset: Mutex<chrono::Duration>,
    answers: Mutex<HashMap<String, PermissionAnswer>>,
    media: Mutex<Vec<(String, Media)>>,
    /// Download token → (media id, valid until).
    urls: Mutex<HashMap<String, (String, Instant)>>,
}

impl MetaSide {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn advance_clock(&self, by: chrono::Duration) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    pub fn set_strict(&self, strict: bool) {
        self.strict.store(strict, Ordering::Relaxed);
    }

    pub fn set_answer(&self, user: &str, a: PermissionAnswer) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.to_owned(), a);
    }

    pub fn answer_for(&self, user: &str) -> PermissionAnswer {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .copied()
            .unwrap_or_default()
    }

    /// The rules, with a lenient sandbox's first-sight grant applied for `user`.
    fn rules_for(&self, user: &str, refused: bool) -> std::sync::MutexGuard<'_, PermissionRules> {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        if !self.strict.load(Ordering::Relaxed) && !refused {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.insert(user.to_owned()) {
                rules.reply(user, true, true, self.now());
            }
        }
        rules
    }

    pub fn status_json(&self, user: &str, refused: bool) -> serde_json::Value {
        let now = self.now();
        self.rules_for(user, refused).status_json(user, now)
    }

    pub fn status(&self, user: &str, refused: bool) -> PermissionStatus {
        let now = self.now();
        self.rules_for(user, refused).status(user, now)
    }

    pub fn may_call(&self, user: &str, refused: bool) -> Result<(), RuleError> {
        let now = self.now();
        self.rules_for(user, refused).may_call(user, now)
    }

    pub fn request(&self, user: &str, refused: bool) -> Result<(), RuleError> {
        let now = self.now();
        self.rules_for(user, refused).request(user, now)
    }

    pub fn reply(&self, user: &str, accept: bool, permanent: bool) -> PermissionStatus {
        let now = self.now();
        self.rules_for(user, true)
            .reply(user, accept, permanent, now)
    }

    pub fn user_called(&self, user: &str) -> PermissionStatus {
        let now = self.now();
        self.rules_for(user, true).user_called(user, now)
    }

    pub fn call_connected(&self, user: &str) {
        let now = self.now();
        self.rules_for(user, true).call_connected(user, now);
    }

    pub fn call_unanswered(&self, user: &str) -> Unanswered {
        let now = self.now();
        self.rules_for(user, true).call_unanswered(user, now)
    }

    /// Stores a file; returns its media id.
    pub fn store(&self, bytes: Bytes, mime_type: &str) -> String {
        let id = format!("{}", 1_000_000_000_000u64 + rand::random::<u32>() as u64);
        let sha256_hex = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut media = self.media.lock().unwrap_or_else(|e| e.into_inner());
        if media.len() >= MAX_MEDIA {
            media.remove(0);
        }
        media.push((
            id.clone(),
            Media {
                bytes,
                mime_type: mime_type.to_owned(),
                sha256_hex,
            },
        ));
        id
    }

    pub fn media(&self, id: &str) -> Option<Media> {
        self.media
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, m)| m.clone())
    }

    /// A fresh download token for `id`, valid for `ttl` (zero: already expired, a fault).
    pub fn issue_url(&self, id: &str, ttl: Duration) -> String {
        let token = format!("{:032x}", rand::random::<u128>());
        let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        urls.retain(|_, (_, until)| *until > now);
        urls.insert(token.clone(), (id.to_owned(), now + ttl));
        token
    }

    /// The file behind a download token, if the token is known and not expired.
    pub fn redeem(&self, token: &str) -> Option<Media> {
        let id = {
            let urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
            let (id, until) = urls.get(token)?;
            (*until > Instant::now()).then(|| id.clone())?
        };
        self.media(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_grants_on_first_sight_and_strict_does_not() {
        let m = MetaSide::default();
        assert!(m.may_call("44", false).is_ok());
        assert!(
            m.may_call("45", true).is_err(),
            "a refused user is never granted"
        );
        m.set_strict(true);
        assert_eq!(m.may_call("46", false).unwrap_err().code, 138006);
    }

    #[test]
    fn urls_expire() {
        let m = MetaSide::default();
        let id = m.store(Bytes::from_static(b"abc"), "audio/ogg");
        let ok = m.issue_url(&id, URL_TTL);
        let dead = m.issue_url(&id, Duration::ZERO);
        assert_eq!(&m.redeem(&ok).unwrap().bytes[..], b"abc");
        assert!(m.redeem(&dead).is_none());
        assert!(m.redeem("nope").is_none());
    }
}
