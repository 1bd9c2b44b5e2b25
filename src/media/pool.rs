//! Answering offers for an edge: set-ups in arrival order, on sessions built before they are
//! needed.
//!
//! Building a peer connection (socket, driver task, track) is a third of answering an offer.
//! A bot keeps some ready so that calls arriving together after a quiet spell pre-accept sooner.
//! Ready sessions are built only once set-ups have settled, so refilling never competes with a
//! burst; for the same reason a call's connectivity checks wait until then too (its caller
//! releases them). A session older than [`MAX_AGE`] is replaced (the bot calls
//! [`SessionPool::refill_later`] periodically), so a ready session always carries a recent DTLS
//! certificate.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tracing::warn;

use super::session::ParsedOffer;
use super::{MediaConfig, MediaError, MediaSession};

/// A ready session older than this is closed and replaced, never used.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// How long set-ups must have stopped before [`SessionPool::settled`] lets deferred work run.
pub const SETTLE: Duration = Duration::from_millis(10);

/// The longest [`SessionPool::settled`] defers work, however busy the set-ups.
pub const MAX_DEFER: Duration = Duration::from_millis(250);

/// Refills running now and refills finished, over every pool of the process (`/metrics` shows
/// them when the bot runs in the bridge's process): a burst's cost ends when its refill does.
static REFILLS_RUNNING: AtomicUsize = AtomicUsize::new(0);
static REFILLS_DONE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// (refills running, refills finished) in this process.
pub fn refill_counts() -> (usize, u64) {
    (
        REFILLS_RUNNING.load(Ordering::SeqCst),
        REFILLS_DONE.load(Ordering::SeqCst),
    )
}

pub struct SessionPool {
    cfg: MediaConfig,
    target: usize,
    ready: Mutex<VecDeque<(Instant, Arc<MediaSession>)>>,
    /// Set-ups run in arrival order, this many at once.
    slots: Semaphore,
    /// Set-ups asked for and not finished; refilling waits for zero.
    waiting: AtomicUsize,
    refilling: AtomicBool,
    /// Told when the last waiting set-up ends.
    quiet: Notify,
    /// When the last set-up ended (tokio's clock, so tests can pause it).
    last_end: Mutex<Option<tokio::time::Instant>>,
    /// Set by [`SessionPool::close`]: a refill still running closes what it builds.
    closed: AtomicBool,
    max_age: Duration,
}

impl SessionPool {
    /// `target` ready sessions (0 = build each on demand); `slots` set-ups at once (at least 1).
    pub fn new(cfg: MediaConfig, target: usize, slots: usize) -> Arc<SessionPool> {
        Arc::new(SessionPool {
            cfg,
            target,
            ready: Mutex::new(VecDeque::new()),
            slots: Semaphore::new(slots.max(1)),
            waiting: AtomicUsize::new(0),
            refilling: AtomicBool::new(false),
            quiet: Notify::new(),
            last_end: Mutex::new(None),
            closed: AtomicBool::new(false),
            max_age: MAX_AGE,
        })
    }

    /// A session for `call_id` that answers `offer`: a ready one when there is one. Closed
    /// again when the answer fails, so no caller leaks its socket.
    ///
    /// The peer's candidates are held back (see [`ParsedOffer::parse_holding_candidates`]): the
    /// caller releases them with [`MediaSession::release_candidates`] once the peer has our
    /// answer, since checks cannot succeed before, and once set-ups have [settled](Self::settled),
    /// since in a burst they would take CPU from the set-ups still waiting.
    ///
    /// Only applying the offer holds the slot. Checking and parsing it come before, and waiting
    /// for ICE to gather and reading our SDP back come after, so in a burst the next call's
    /// set-up runs meanwhile (on the other core, or while this one waits on its driver).
    pub async fn answering(
        self: &Arc<Self>,
        call_id: &str,
        offer: &str,
    ) -> Result<(Arc<MediaSession>, String), MediaError> {
        let _waiting = Waiting::enter(self);
        let offer = ParsedOffer::parse_holding_candidates(offer)?;
        let slot = self.slots.acquire().await;
        let media = match self.take() {
            Some(m) => {
                m.assign(call_id);
                m
            }
            None => MediaSession::new(&self.cfg, call_id).await?,
        };
        let answered = async {
            media.apply_offer(offer).await?;
            drop(slot);
            media.local_sdp_after_gathering().await
        }
        .await;
        let answer = media.close_on_error(answered).await?;
        Ok((media, answer))
    }

    /// Returns once set-ups have stopped for [`SETTLE`], or after [`MAX_DEFER`] at the latest:
    /// work that can come later (a call's audio engine, its recording files) waits here, so
    /// during a burst the set-ups behind it go first. A burst arrives with small gaps between
    /// offers; the hold keeps those gaps from letting the deferred work in, and the cap keeps a
    /// steady flood of calls from deferring it for ever.
    pub async fn settled(&self) {
        let _ = tokio::time::timeout(MAX_DEFER, self.quiet_for_settle()).await;
    }

    async fn quiet_for_settle(&self) {
        loop {
            let told = self.quiet.notified();
            if self.waiting.load(Ordering::SeqCst) > 0 {
                told.await;
                continue;
            }
            let since = match self.last_end.lock() {
                Ok(t) => t.map_or(SETTLE, |t| t.elapsed()),
                Err(_) => SETTLE,
            };
            if since >= SETTLE {
                return;
            }
            tokio::time::sleep(SETTLE - since).await;
        }
    }

    /// Sessions ready now.
    pub fn ready(&self) -> usize {
        self.ready.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Starts replacing stale sessions and topping the pool up in the background (no-op when
    /// already refilling or closed).
    pub fn refill_later(self: &Arc<Self>) {
        if self.target == 0 || self.closed.load(Ordering::SeqCst) {
            return;
        }
        // Also reached from a drop, which may happen while the runtime itself shuts down.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refilling.swap(true, Ordering::SeqCst) {
            return;
        }
        let pool = self.clone();
        REFILLS_RUNNING.fetch_add(1, Ordering::SeqCst);
        runtime.spawn(async move {
            // Building a session costs more than a set-up: not between a burst's offers.
            pool.settled().await;
            pool.refill().await;
            pool.refilling.store(false, Ordering::SeqCst);
            REFILLS_RUNNING.fetch_sub(1, Ordering::SeqCst);
            REFILLS_DONE.fetch_add(1, Ordering::SeqCst);
        });
    }

    /// Closes stale sessions, then builds sessions until `target` are ready, stopping as soon
    /// as a set-up is waiting.
    async fn refill(&self) {
        for m in self.evict_stale() {
            m.close().await;
        }
        while self.waiting.load(Ordering::SeqCst) == 0 && self.ready() < self.target {
            match MediaSession::unassigned(&self.cfg).await {
                Ok(m) => {
                    // Checked under the lock that `close` drains with, so nothing slips in after.
                    let refused = match self.ready.lock() {
                        Ok(mut r) if !self.closed.load(Ordering::SeqCst) => {
                            r.push_back((Instant::now(), m));
                            None
                        }
                        _ => Some(m),
                    };
                    if let Some(m) = refused {
                        m.close().await;
                        return;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot build a ready media session");
                    return;
                }
            }
        }
    }

    fn take(&self) -> Option<Arc<MediaSession>> {
        let mut ready = self.ready.lock().ok()?;
        while let Some((made, m)) = ready.pop_front() {
            if made.elapsed() < self.max_age {
                return Some(m);
            }
            tokio::spawn(async move { m.close().await });
        }
        None
    }

    /// Removes the sessions older than the age limit (oldest are at the front).
    fn evict_stale(&self) -> Vec<Arc<MediaSession>> {
        let Ok(mut ready) = self.ready.lock() else {
            return Vec::new();
        };
        let mut stale = Vec::new();
        while ready
            .front()
            .is_some_and(|(made, _)| made.elapsed() >= self.max_age)
        {
            if let Some((_, m)) = ready.pop_front() {
                stale.push(m);
            }
        }
        stale
    }

    /// Closes every ready session and stops refilling (the bot is stopping).
    pub async fn close(&self) {
        let all: Vec<_> = match self.ready.lock() {
            Ok(mut r) => {
                self.closed.store(true, Ordering::SeqCst);
                r.drain(..).map(|(_, m)| m).collect()
            }
            Err(_) => Vec::new(),
        };
        for m in all {
            m.close().await;
        }
    }
}

/// A set-up in progress, counted until it ends however it ends (even if its task is dropped);
/// the last one out starts the refill.
struct Waiting<'a>(&'a Arc<SessionPool>);

impl<'a> Waiting<'a> {
    fn enter(pool: &'a Arc<SessionPool>) -> Self {
        pool.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(pool)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.last_end.lock() {
            *t = Some(tokio::time::Instant::now());
        }
        if self.0.waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.quiet.notify_waiters();
            self.0.refill_later();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lite_offerer() -> MediaConfig {
        MediaConfig {
            ice_lite: true,
            ..MediaConfig::loopback()
        }
    }

    #[tokio::test]
    async fn ready_sessions_answer_offers_and_the_pool_refills_when_idle() {
        let pool = SessionPool::new(MediaConfig::loopback(), 2, 1);
        pool.refill_later();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.ready() < 2 {
            assert!(Instant::now() < deadline, "the pool never filled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut answered = Vec::new();
        for i in 0..3 {
            let (user, offer) = MediaSession::offering(&lite_offerer(), &format!("u{i}"))
                .await
                .unwrap();
            // Two from the pool, the third built on demand.
            let (media, answer) = pool.answering(&format!("c{i}"), &offer).await.unwrap();
            assert!(answer.contains("a=setup:active"), "{answer}");
            user.apply_answer(&answer).await.unwrap();
            // The user has our answer: our checks may start.
            media.release_candidates().await;
            answered.push((user, media));
        }
        // Every call connects, pooled or not.
        for (user, media) in &answered {
            media.wait_connected(Duration::from_secs(10)).await.unwrap();
            user.wait_connected(Duration::from_secs(10)).await.unwrap();
        }
        // Idle again: topped back up to the target.
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.ready() < 2 {
            assert!(Instant::now() < deadline, "the pool was not refilled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for (user, media) in answered {
            user.close().await;
            media.close().await;
        }
        pool.close().await;
        assert_eq!(pool.ready(), 0);
    }

    #[tokio::test]
    async fn stale_sessions_are_replaced_and_a_closed_pool_stays_empty() {
        let mut pool = SessionPool::new(MediaConfig::loopback(), 2, 1);
        Arc::get_mut(&mut pool).unwrap().max_age = Duration::from_millis(200);
        pool.refill_later();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.ready() < 2 {
            assert!(Instant::now() < deadline, "the pool never filled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            pool.evict_stale().len(),
            2,
            "both sessions are past the age limit"
        );
        pool.refill_later();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.ready() < 2 {
            assert!(
                Instant::now() < deadline,
                "stale sessions were not replaced"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(pool.evict_stale().is_empty(), "the replacements are fresh");
        pool.close().await;
        pool.refill_later();
        // Nothing was started: no refill task can add a session later.
        assert!(
            !pool.refilling.load(Ordering::SeqCst),
            "a closed pool started refilling"
        );
        assert_eq!(pool.ready(), 0, "a closed pool does not refill");
    }

    #[tokio::test]
    async fn a_bad_offer_is_refused_before_it_uses_a_ready_session() {
        let pool = SessionPool::new(MediaConfig::loopback(), 1, 1);
        pool.refill_later();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.ready() < 1 {
            assert!(Instant::now() < deadline, "the pool never filled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let Err(err) = pool.answering("c1", "v=0\r\n").await else {
            panic!("an offer without audio was answered");
        };
        assert!(err.to_string().contains("remote SDP"), "{err}");
        assert_eq!(pool.ready(), 1, "the bad offer took a ready session");
        // The refused set-up counts as finished, so deferred work is not held up by it.
        assert_eq!(pool.waiting.load(Ordering::SeqCst), 0);
        pool.close().await;
    }

    #[tokio::test(start_paused = true)]
    async fn deferred_work_waits_for_set_ups_to_stop_for_the_settle_time() {
        // No sessions are built (target 0), so only the clock and the counter are involved.
        let pool = SessionPool::new(MediaConfig::loopback(), 0, 1);
        let t = tokio::time::Instant::now();
        pool.settled().await;
        assert_eq!(
            t.elapsed(),
            Duration::ZERO,
            "a pool that never set up is settled"
        );

        let setup = Waiting::enter(&pool);
        let t = tokio::time::Instant::now();
        pool.settled().await;
        assert_eq!(
            t.elapsed(),
            MAX_DEFER,
            "with a set-up waiting throughout, deferred work waits the cap, no more, no less"
        );
        drop(setup);
        let t = tokio::time::Instant::now();
        pool.settled().await;
        assert!(
            t.elapsed() >= SETTLE,
            "settled {:?} after the last set-up, before the hold",
            t.elapsed()
        );
        let t = tokio::time::Instant::now();
        pool.settled().await;
        assert_eq!(t.elapsed(), Duration::ZERO, "still settled later");
    }
}
