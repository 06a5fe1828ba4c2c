//! When to connect to a relay again: exponential backoff with jitter, a cap, a reset
//! once connected, and either "for ever" (`passage run`, the agent) or "until a
//! deadline" (a one-shot command with `--timeout`). Sans-IO: time comes in as `now`,
//! randomness as an RNG argument; the async code only carries out what it is told.
//!
//! ```text
//!  Reconnect::new(policy, Persistence, now) ─► poll_action: Connect { attempt: 1, until }
//!    driver connects, bounded by `until` ─► handle_connected(now) | handle_failed(now, rng)
//!    handle_failed ─► waits a jittered backoff ─► poll_timeout / handle_timeout(now)
//!                 ─► Connect { attempt: 2, .. } … or GiveUp { attempts } past the deadline
//!    connected … cut ─► handle_disconnected(now, rng) ─► Connect again after a short pause
//! ```
//!
//! # Calling order
//!
//! 1. [`Reconnect::new`] queues the first [`ReconnectAction::Connect`].
//! 2. After `new` and after every `handle_*` call, drain [`Reconnect::poll_action`]:
//!    on `Connect { attempt, until }`, start one connection attempt and give it up at
//!    `until` (or let [`Reconnect::handle_timeout`] do that); report its end with
//!    [`handle_connected`](Reconnect::handle_connected) or
//!    [`handle_failed`](Reconnect::handle_failed). On `GiveUp`, stop: what can wait
//!    stays queued, and the caller says so.
//! 3. Arm one timer for [`Reconnect::poll_timeout`] and call
//!    [`Reconnect::handle_timeout`] when it fires (early or late calls are harmless).
//! 4. When an established connection ends, call
//!    [`handle_disconnected`](Reconnect::handle_disconnected).
//!
//! There is never more than one attempt at a time: `Connect` is only given while no
//! attempt runs, and the reports of an attempt that is not running are ignored.
//! [`Reconnect::attempt`] numbers the attempts of the current outage for progress
//! ("connecting…", then "retrying (1)…" for attempt 2).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand_core::Rng;

/// How the waits between attempts grow. [`Default`] suits people on 2G/3G with a
/// round trip near a second, heavy loss and connections cut every few seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The wait after the first failure (before jitter). 500 ms: a failed attempt on a
    /// bad link has already taken seconds, so waiting longer first buys nothing, and
    /// a relay that refused at once (it restarts) is back soon.
    pub first_backoff: Duration,
    /// The longest wait (before jitter). 30 s: a phone that regains its link is
    /// connected within half a minute at worst, and a relay down for an hour sees one
    /// attempt per client every 15–30 s, not a storm.
    pub max_backoff: Duration,
    /// The fraction of each wait that is random: a wait of `b` is drawn uniformly from
    /// `[b × (1 − jitter), b]`. 0.5 ("equal jitter"): clients cut at the same moment
    /// (a relay restart) spread over half the backoff, and no wait is shorter than
    /// half of it.
    pub jitter: f64,
    /// How long one attempt may take before it counts as failed. 20 s: a QUIC
    /// handshake at a 1 s RTT and 30 % loss each way needs several retransmissions of
    /// its Initial packets (PTO 3 s, then doubling), and a TLS handshake over TCP a
    /// SYN retransmission (1 s, then 3 s) or two; 20 s lets most of them through.
    pub attempt_timeout: Duration,
    /// A connection that ends sooner than this after it was established did no useful
    /// work: the backoff goes on growing instead of starting again (so a relay that
    /// accepts and drops at once is not hammered). 1 s: one round trip on the worst
    /// path we target.
    pub min_useful_connection: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            jitter: 0.5,
            attempt_timeout: Duration::from_secs(20),
            min_useful_connection: Duration::from_secs(1),
        }
    }
}

/// Default deadline of a one-shot command (`--timeout`): 60 s, enough for several
/// attempts on a bad link and short enough that a person is told what happened.
pub const DEFAULT_COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// How long to keep trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Until connected, for ever (`passage run`, the agent): never gives up.
    Forever,
    /// Until this moment (a one-shot command): no attempt starts after it and none
    /// runs past it; then [`ReconnectAction::GiveUp`].
    Until(Instant),
}

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconnectAction {
    /// Start connection attempt number `attempt` (1 for the first of an outage) and
    /// abandon it at `until`.
    Connect {
        /// The attempt's number in this outage.
        attempt: u32,
        /// When the attempt must be given up.
        until: Instant,
    },
    /// The deadline passed: stop trying.
    GiveUp {
        /// Attempts made in this outage.
        attempts: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The next attempt starts at this moment.
    Waiting(Instant),
    /// An attempt runs and is abandoned at this moment.
    Connecting(Instant),
    /// Connected since this moment.
    Connected(Instant),
    /// Gave up (deadline passed).
    Done,
}

/// The reconnection policy's state. See the module documentation for the calling order.
#[derive(Debug)]
pub struct Reconnect {
    policy: RetryPolicy,
    persistence: Persistence,
    state: State,
    /// Attempts in the current outage.
    attempt: u32,
    /// Failures in a row, counting short-lived connections: the backoff's exponent.
    level: u32,
    /// `level` when the current connection was established (restored if it dies young).
    level_at_connect: u32,
    actions: VecDeque<ReconnectAction>,
}

impl Reconnect {
    /// A policy that wants to connect now; queues the first `Connect`.
    pub fn new(policy: RetryPolicy, persistence: Persistence, now: Instant) -> Self {
        let mut reconnect = Self {
            policy,
            persistence,
            state: State::Waiting(now),
            attempt: 0,
            level: 0,
            level_at_connect: 0,
            actions: VecDeque::new(),
        };
        reconnect.handle_timeout(now);
        reconnect
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<ReconnectAction> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next: the start of
    /// the next attempt, or the end of the running one; `None` while connected or
    /// after giving up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(at) | State::Connecting(at) => Some(at),
            State::Connected(_) | State::Done => None,
        }
    }

    /// Time has come to `now`: starts the next attempt if its time has come, and
    /// treats a running attempt past its end as failed (its wait is then the full
    /// backoff, unjittered: the attempt already spread itself out by running long).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Waiting(at) if now >= at => self.start_attempt(now),
            State::Connecting(until) if now >= until => self.fail(now, 0.0),
            _ => {}
        }
    }

    /// The running attempt succeeded: the backoff starts again from the first wait.
    pub fn handle_connected(&mut self, now: Instant) {
        if let State::Connecting(_) = self.state {
            self.state = State::Connected(now);
            self.level_at_connect = self.level;
            self.level = 0;
            self.attempt = 0;
        }
    }

    /// The running attempt failed: waits a jittered backoff, or gives up if the next
    /// attempt could not start before the deadline.
    pub fn handle_failed<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) {
        if let State::Connecting(_) = self.state {
            self.fail(now, unit(rng));
        }
    }

    /// The established connection ended: the next attempt comes after a first,
    /// jittered wait, or after a longer one if the connection died young (see
    /// [`RetryPolicy::min_useful_connection`]).
    pub fn handle_disconnected<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) {
        if let State::Connected(since) = self.state {
            if now.saturating_duration_since(since) < self.policy.min_useful_connection {
                self.level = self.level_at_connect.saturating_add(1);
            }
            self.schedule(now, unit(rng));
        }
    }

    /// The number of the running (or last) attempt in this outage; 0 while connected.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether a connection is established.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    /// Whether it gave up.
    pub fn has_given_up(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The wait before jitter after `level` failures in a row:
    /// `first_backoff × 2^level`, capped at `max_backoff`.
    pub fn backoff(&self, level: u32) -> Duration {
        let factor = 1u32.checked_shl(level.min(31)).unwrap_or(u32::MAX);
        self.policy
            .first_backoff
            .saturating_mul(factor)
            .min(self.policy.max_backoff)
    }

    fn start_attempt(&mut self, now: Instant) {
        let mut until = now + self.policy.attempt_timeout;
        if let Persistence::Until(deadline) = self.persistence {
            if now >= deadline {
                return self.give_up();
            }
            until = until.min(deadline);
        }
        self.attempt = self.attempt.saturating_add(1);
        self.state = State::Connecting(until);
        self.actions.push_back(ReconnectAction::Connect {
            attempt: self.attempt,
            until,
        });
    }

    fn fail(&mut self, now: Instant, unit: f64) {
        self.schedule(now, unit);
        self.level = self.level.saturating_add(1);
    }

    /// Waits the backoff of the current level, jittered by `unit` (in `[0, 1)`).
    fn schedule(&mut self, now: Instant, unit: f64) {
        let backoff = self.backoff(self.level);
        let jitter = self.policy.jitter.clamp(0.0, 1.0);
        let wait = backoff.mul_f64(1.0 - jitter * unit.clamp(0.0, 1.0));
        let at = now + wait;
        match self.persistence {
            Persistence::Until(deadline) if at >= deadline => self.give_up(),
            _ => self.state = State::Waiting(at),
        }
    }

    fn give_up(&mut self) {
        self.state = State::Done;
        self.actions.push_back(ReconnectAction::GiveUp {
            attempts: self.attempt,
        });
    }
}

/// A uniform draw from `[0, 1)` (53 random bits).
fn unit<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    fn connect(action: Option<ReconnectAction>) -> (u32, Instant) {
        match action {
            Some(ReconnectAction::Connect { attempt, until }) => (attempt, until),
            other => panic!("expected Connect, got {other:?}"),
        }
    }

    /// Runs the policy on a virtual clock: each attempt fails at once; returns when
    /// it gives up, with the start times of the attempts.
    fn fail_until_give_up(policy: RetryPolicy, budget: Duration, seed: u64) -> Vec<Instant> {
        let start = Instant::now();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut reconnect = Reconnect::new(policy, Persistence::Until(start + budget), start);
        let mut now = start;
        let mut starts = Vec::new();
        for _ in 0..10_000 {
            while let Some(action) = reconnect.poll_action() {
                match action {
                    ReconnectAction::Connect { .. } => {
                        starts.push(now);
                        reconnect.handle_failed(now, &mut rng);
                    }
                    ReconnectAction::GiveUp { attempts } => {
                        assert_eq!(attempts as usize, starts.len());
                        return starts;
                    }
                }
            }
            now = reconnect.poll_timeout().expect("a timer while trying");
            reconnect.handle_timeout(now);
        }
        panic!("never gave up");
    }

    #[test]
    fn the_first_attempt_starts_at_once_and_success_resets_the_backoff() {
        let start = Instant::now();
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(1);
        let mut reconnect = Reconnect::new(policy, Persistence::Forever, start);
        let (attempt, until) = connect(reconnect.poll_action());
        assert_eq!((attempt, until), (1, start + policy.attempt_timeout));
        // Three failures: waits grow.
        let mut now = start;
        for expected in 2..=4 {
            reconnect.handle_failed(now, &mut rng);
            now = reconnect.poll_timeout().unwrap();
            reconnect.handle_timeout(now);
            assert_eq!(connect(reconnect.poll_action()).0, expected);
        }
        assert_eq!(reconnect.attempt(), 4);
        reconnect.handle_connected(now);
        assert!(reconnect.is_connected());
        assert_eq!(reconnect.poll_timeout(), None);
        assert_eq!(reconnect.attempt(), 0);
        // Long after: the cut is followed by a first wait only.
        now += Duration::from_secs(60);
        reconnect.handle_disconnected(now, &mut rng);
        let at = reconnect.poll_timeout().unwrap();
        assert!(at - now <= policy.first_backoff && at - now >= policy.first_backoff / 2);
        reconnect.handle_timeout(at);
        assert_eq!(connect(reconnect.poll_action()).0, 1);
    }

    #[test]
    fn a_connection_that_dies_young_keeps_the_backoff_growing() {
        let start = Instant::now();
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let mut rng = StdRng::seed_from_u64(2);
        let mut reconnect = Reconnect::new(policy, Persistence::Forever, start);
        let mut now = start;
        for level in 0..6 {
            connect(reconnect.poll_action());
            reconnect.handle_connected(now);
            // Dropped at once, again and again: 0.5 s, 1 s, 2 s, … between attempts.
            reconnect.handle_disconnected(now, &mut rng);
            let at = reconnect.poll_timeout().unwrap();
            assert_eq!(at - now, reconnect.backoff(level + 1), "level {level}");
            now = at;
            reconnect.handle_timeout(now);
        }
    }

    #[test]
    fn forever_never_gives_up_and_waits_stay_at_the_cap() {
        let start = Instant::now();
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(3);
        let mut reconnect = Reconnect::new(policy, Persistence::Forever, start);
        let mut now = start;
        for n in 1..=1000u32 {
            assert_eq!(connect(reconnect.poll_action()).0, n);
            reconnect.handle_failed(now, &mut rng);
            let at = reconnect.poll_timeout().unwrap();
            assert!(at - now <= policy.max_backoff);
            if n > 10 {
                assert!(at - now >= policy.max_backoff / 2);
            }
            now = at;
            reconnect.handle_timeout(now);
        }
        assert!(!reconnect.has_given_up());
    }

    #[test]
    fn an_attempt_past_its_end_counts_as_failed() {
        let start = Instant::now();
        let policy = RetryPolicy::default();
        let mut reconnect = Reconnect::new(policy, Persistence::Forever, start);
        let (_, until) = connect(reconnect.poll_action());
        // Early calls change nothing.
        reconnect.handle_timeout(until - Duration::from_millis(1));
        assert_eq!(reconnect.poll_timeout(), Some(until));
        reconnect.handle_timeout(until);
        let next = reconnect.poll_timeout().unwrap();
        assert_eq!(next - until, policy.first_backoff);
        // A late report of the abandoned attempt is ignored.
        reconnect.handle_connected(until);
        assert!(!reconnect.is_connected());
    }

    #[test]
    fn the_default_command_deadline_allows_several_attempts() {
        let starts = fail_until_give_up(RetryPolicy::default(), DEFAULT_COMMAND_DEADLINE, 4);
        // 0.5 + 1 + 2 + 4 + 8 + 16 s of backoff at most before the sixth retry.
        assert!(starts.len() >= 6, "{}", starts.len());
    }

    proptest! {
        #[test]
        fn the_deadline_is_respected_and_attempts_never_overlap(
            budget_ms in 1u64..200_000,
            first_ms in 1u64..5_000,
            max_factor in 1u32..100,
            jitter in 0.0f64..=1.0,
            attempt_ms in 1u64..30_000,
            outcomes in proptest::collection::vec((0u8..4, 0u64..40_000), 1..60),
            seed in any::<u64>(),
        ) {
            let policy = RetryPolicy {
                first_backoff: Duration::from_millis(first_ms),
                max_backoff: Duration::from_millis(first_ms) * max_factor,
                jitter,
                attempt_timeout: Duration::from_millis(attempt_ms),
                min_useful_connection: Duration::from_secs(1),
            };
            let start = Instant::now();
            let deadline = start + Duration::from_millis(budget_ms);
            let mut rng = StdRng::seed_from_u64(seed);
            let mut reconnect = Reconnect::new(policy, Persistence::Until(deadline), start);
            let mut now = start;
            let mut running: Option<Instant> = None;
            let mut last_end = start;
            let mut outcomes = outcomes.into_iter().cycle().take(2_000);
            let mut gave_up = false;
            while !gave_up {
                while let Some(action) = reconnect.poll_action() {
                    match action {
                        ReconnectAction::Connect { attempt, until } => {
                            prop_assert!(running.is_none(), "two attempts at once");
                            prop_assert!(now < deadline, "an attempt after the deadline");
                            prop_assert!(until <= deadline && until > now);
                            prop_assert!(attempt >= 1);
                            // Backoff bounded: never more than the cap after the last end.
                            prop_assert!(now - last_end <= policy.max_backoff);
                            running = Some(until);
                        }
                        ReconnectAction::GiveUp { .. } => gave_up = true,
                    }
                }
                if gave_up {
                    break;
                }
                let Some((kind, after_ms)) = outcomes.next() else { break };
                match (running, kind) {
                    (Some(until), 0 | 1) => {
                        // The attempt ends (fails, or succeeds and is cut later) before its end.
                        now = (now + Duration::from_millis(after_ms)).min(until);
                        running = None;
                        last_end = now;
                        if kind == 0 || now >= until {
                            reconnect.handle_failed(now, &mut rng);
                            reconnect.handle_timeout(now);
                        } else {
                            reconnect.handle_connected(now);
                            prop_assert!(reconnect.poll_timeout().is_none());
                            now += Duration::from_millis(after_ms);
                            last_end = now;
                            reconnect.handle_disconnected(now, &mut rng);
                        }
                    }
                    _ => {
                        // Time passes to the next timer.
                        match reconnect.poll_timeout() {
                            Some(at) => {
                                if let Some(until) = running && at >= until {
                                    running = None;
                                    last_end = until;
                                }
                                now = now.max(at);
                                reconnect.handle_timeout(now);
                            }
                            None => prop_assert!(reconnect.has_given_up() || reconnect.is_connected()),
                        }
                    }
                }
                if now > deadline + Duration::from_secs(100) {
                    break;
                }
            }
            if gave_up {
                prop_assert!(reconnect.has_given_up());
            }
        }

        #[test]
        fn each_wait_is_within_its_jitter_bounds(
            level_failures in 1u32..20,
            jitter in 0.0f64..=1.0,
            seed in any::<u64>(),
        ) {
            let policy = RetryPolicy { jitter, ..RetryPolicy::default() };
            let start = Instant::now();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut reconnect = Reconnect::new(policy, Persistence::Forever, start);
            let mut now = start;
            for failures in 0..level_failures {
                connect(reconnect.poll_action());
                reconnect.handle_failed(now, &mut rng);
                let at = reconnect.poll_timeout().unwrap();
                let backoff = reconnect.backoff(failures);
                let wait = at - now;
                prop_assert!(wait <= backoff);
                prop_assert!(wait >= backoff.mul_f64(1.0 - jitter) - Duration::from_nanos(1));
                now = at;
                reconnect.handle_timeout(now);
            }
        }
    }
}
