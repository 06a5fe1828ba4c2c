//! The connection's deadlines, decided by the session and carried out by the driver:
//! the hello must come within [`Limits::handshake_timeout`] of the connection's start,
//! and a connection that sends nothing for [`Limits::idle_timeout`] is closed.
//!
//! Time is the driver's monotonic clock in milliseconds ([`Now::mono_ms`]); the
//! driver arms one timer for [`Session::poll_timeout`] and calls
//! [`Session::handle_timeout`] when it fires. A block received moves the idle deadline
//! later without the driver touching its timer: when the timer fires early,
//! `handle_timeout` does nothing and `poll_timeout` gives the deadline as it is now
//! (a timer reset per block cost more than the block's session work).
//!
//! [`Limits::handshake_timeout`]: crate::limits::Limits::handshake_timeout
//! [`Limits::idle_timeout`]: crate::limits::Limits::idle_timeout

use super::{CloseReason, Now, Phase, Session};

/// When the connection started and when it last sent something.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timers {
    /// The hello must have come by then (ms).
    hello_deadline_ms: u64,
    /// The last block received (ms).
    last_heard_ms: u64,
}

impl Timers {
    pub(super) fn new(now: Now, hello_timeout_ms: u64) -> Self {
        Self {
            hello_deadline_ms: now.mono_ms.saturating_add(hello_timeout_ms),
            last_heard_ms: now.mono_ms,
        }
    }

    /// A block came in at `now`.
    pub(super) fn heard(&mut self, now: Now) {
        self.last_heard_ms = self.last_heard_ms.max(now.mono_ms);
    }
}

/// Milliseconds in `duration`, saturating.
pub(super) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Session {
    /// When [`handle_timeout`](Self::handle_timeout) must be called next, in the
    /// driver's monotonic milliseconds ([`Now::mono_ms`]); `None` once closed.
    pub fn poll_timeout(&self) -> Option<u64> {
        let idle = self
            .timers
            .last_heard_ms
            .saturating_add(millis(self.config.limits.idle_timeout));
        match self.phase {
            Phase::AwaitingHello => Some(idle.min(self.timers.hello_deadline_ms)),
            Phase::Ready => Some(idle),
            Phase::Closed => None,
        }
    }

    /// Time has come to `now`: closes the connection (a `Close` action) if the hello
    /// is late or the peer has been silent for the idle timeout; otherwise nothing.
    pub fn handle_timeout(&mut self, now: Now) {
        match self.phase {
            Phase::AwaitingHello if now.mono_ms >= self.timers.hello_deadline_ms => {
                self.close(CloseReason::HelloTimeout);
            }
            Phase::Closed => {}
            _ => {
                let idle = millis(self.config.limits.idle_timeout);
                if now.mono_ms.saturating_sub(self.timers.last_heard_ms) >= idle {
                    self.close(CloseReason::IdleTimeout);
                }
            }
        }
    }
}
