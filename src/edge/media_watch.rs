//! When an edge must give up on a call's media: a pure watchdog, fed the connection state,
//! the count of packets received and the time, shared by the bot and the softphone so that
//! they end dead calls by the same rules.
//!
//! Three ways a call goes dead without anyone hanging up:
//! - ICE/DTLS never connects (a firewall, a wrong address): the customer hears nothing;
//! - the connection fails after it had connected (the network went away): webrtc reports
//!   `Failed` once its consent checks have gone unanswered;
//! - the connection stays "connected" but no RTP arrives (the peer's sender died, a middlebox
//!   dropped the flow). WhatsApp sends audio continuously once a call is answered (Opus DTX
//!   still sends a packet every 400 ms at most), so a long gap means the far end is gone.
//!
//! In each case the edge tells the bridge (`MediaFailed`), which terminates the call at the BSP
//! and answers with `Ended`, so the BSP's call, the history row and the recording all close.

use std::time::{Duration, Instant};

use crate::media::ConnState;

/// How long an edge waits before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaDeadlines {
    /// From the moment the edge has both SDPs until ICE and DTLS are up.
    pub connect: Duration,
    /// No packet from the peer for this long, once the call is answered and connected.
    pub silence: Duration,
}

impl Default for MediaDeadlines {
    fn default() -> Self {
        MediaDeadlines {
            connect: Duration::from_secs(10),
            silence: Duration::from_secs(30),
        }
    }
}

/// Why the media was given up on; `Display` is the reason the bridge writes to history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaVerdict {
    NeverConnected(Duration),
    FailedAfterConnect,
    Silent(Duration),
}

impl std::fmt::Display for MediaVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaVerdict::NeverConnected(d) => {
                write!(f, "ICE/DTLS did not connect within {}s", d.as_secs())
            }
            MediaVerdict::FailedAfterConnect => write!(f, "ICE failed after the call connected"),
            MediaVerdict::Silent(d) => {
                write!(f, "no RTP from the peer for {}s after connect", d.as_secs())
            }
        }
    }
}

/// One call's watchdog. It gives one verdict at most: after that the bridge ends the call.
#[derive(Debug)]
pub struct MediaWatch {
    deadlines: MediaDeadlines,
    started: Instant,
    connected: bool,
    /// Set once the call is answered: before that, silence is normal (a ringing user sends
    /// nothing), after it the silence clock runs.
    live: bool,
    packets: u64,
    /// The last time the packet count moved (or the call went live, or connected).
    heard_at: Instant,
    done: bool,
}

impl MediaWatch {
    /// `now` is when the edge has applied both SDPs: the connect deadline runs from here.
    pub fn new(deadlines: MediaDeadlines, now: Instant) -> Self {
        MediaWatch {
            deadlines,
            started: now,
            connected: false,
            live: false,
            packets: 0,
            heard_at: now,
            done: false,
        }
    }

    /// The call is answered (accepted on either side): from now on the peer must send audio.
    pub fn live(&mut self, now: Instant) {
        if !self.live {
            self.live = true;
            self.heard_at = now;
        }
    }

    /// Feed the current state and the total of packets received so far.
    pub fn observe(
        &mut self,
        state: ConnState,
        packets_received: u64,
        now: Instant,
    ) -> Option<MediaVerdict> {
        if self.done {
            return None;
        }
        if packets_received != self.packets {
            self.packets = packets_received;
            self.heard_at = now;
        }
        let verdict = match state {
            ConnState::Connected => {
                if !self.connected {
                    self.connected = true;
                    self.heard_at = self.heard_at.max(now);
                }
                self.silent(now)
            }
            ConnState::Failed if self.connected => Some(MediaVerdict::FailedAfterConnect),
            // Disconnected may recover (webrtc retries consent); silence decides meanwhile.
            ConnState::Disconnected if self.connected => self.silent(now),
            _ if !self.connected
                && now.saturating_duration_since(self.started) >= self.deadlines.connect =>
            {
                Some(MediaVerdict::NeverConnected(self.deadlines.connect))
            }
            _ => None,
        };
        self.done = verdict.is_some();
        verdict
    }

    fn silent(&self, now: Instant) -> Option<MediaVerdict> {
        (self.live && now.saturating_duration_since(self.heard_at) >= self.deadlines.silence)
            .then_some(MediaVerdict::Silent(self.deadlines.silence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> (MediaWatch, Instant) {
        let t0 = Instant::now();
        (MediaWatch::new(MediaDeadlines::default(), t0), t0)
    }
    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn never_connected_fires_at_the_connect_deadline_once() {
        let (mut w, t0) = watch();
        assert_eq!(w.observe(ConnState::Connecting, 0, t0 + S(9)), None);
        assert_eq!(
            w.observe(ConnState::Connecting, 0, t0 + S(10)),
            Some(MediaVerdict::NeverConnected(S(10)))
        );
        assert_eq!(w.observe(ConnState::Connecting, 0, t0 + S(20)), None);
    }

    #[test]
    fn a_failure_before_connect_waits_for_the_deadline() {
        let (mut w, t0) = watch();
        assert_eq!(w.observe(ConnState::Failed, 0, t0 + S(1)), None);
        assert_eq!(
            w.observe(ConnState::Failed, 0, t0 + S(10)),
            Some(MediaVerdict::NeverConnected(S(10)))
        );
    }

    #[test]
    fn failed_after_connect_fires_at_once() {
        let (mut w, t0) = watch();
        assert_eq!(w.observe(ConnState::Connected, 0, t0 + S(1)), None);
        assert_eq!(
            w.observe(ConnState::Failed, 10, t0 + S(2)),
            Some(MediaVerdict::FailedAfterConnect)
        );
    }

    #[test]
    fn silence_counts_only_once_the_call_is_live() {
        let (mut w, t0) = watch();
        assert_eq!(w.observe(ConnState::Connected, 0, t0 + S(1)), None);
        // Ringing for a minute with no audio is normal.
        assert_eq!(w.observe(ConnState::Connected, 0, t0 + S(60)), None);
        w.live(t0 + S(60));
        assert_eq!(w.observe(ConnState::Connected, 0, t0 + S(89)), None);
        assert_eq!(
            w.observe(ConnState::Connected, 0, t0 + S(90)),
            Some(MediaVerdict::Silent(S(30)))
        );
    }

    #[test]
    fn packets_reset_the_silence_clock() {
        let (mut w, t0) = watch();
        w.live(t0);
        for s in 1..100 {
            assert_eq!(w.observe(ConnState::Connected, s, t0 + S(s)), None);
        }
        assert_eq!(w.observe(ConnState::Connected, 99, t0 + S(128)), None);
        assert_eq!(
            w.observe(ConnState::Connected, 99, t0 + S(129)),
            Some(MediaVerdict::Silent(S(30)))
        );
    }

    #[test]
    fn a_disconnect_that_recovers_is_not_fatal_but_a_silent_one_is() {
        let (mut w, t0) = watch();
        w.live(t0);
        assert_eq!(w.observe(ConnState::Connected, 5, t0 + S(1)), None);
        assert_eq!(w.observe(ConnState::Disconnected, 5, t0 + S(10)), None);
        assert_eq!(w.observe(ConnState::Connected, 40, t0 + S(20)), None);
        assert_eq!(w.observe(ConnState::Disconnected, 40, t0 + S(49)), None);
        assert_eq!(
            w.observe(ConnState::Disconnected, 40, t0 + S(50)),
            Some(MediaVerdict::Silent(S(30)))
        );
    }

    #[test]
    fn a_late_connect_starts_the_silence_clock_at_the_connect() {
        let (mut w, t0) = watch();
        w.live(t0);
        assert_eq!(w.observe(ConnState::Connecting, 0, t0 + S(8)), None);
        assert_eq!(w.observe(ConnState::Connected, 0, t0 + S(9)), None);
        assert_eq!(w.observe(ConnState::Connected, 0, t0 + S(38)), None);
        assert!(w.observe(ConnState::Connected, 0, t0 + S(39)).is_some());
    }

    #[test]
    fn reasons_read_as_sentences() {
        assert_eq!(
            MediaVerdict::Silent(S(30)).to_string(),
            "no RTP from the peer for 30s after connect"
        );
        assert_eq!(
            MediaVerdict::NeverConnected(S(10)).to_string(),
            "ICE/DTLS did not connect within 10s"
        );
    }
}
