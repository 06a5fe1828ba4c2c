//! What both load modes share: the stamp each message carries, each pair's window and
//! pacing, the counters, and the measured run itself (warm-up, measured window, stop,
//! drain, tally).
//!
//! ```text
//!  setup pairs ─► warm-up ─► [ t0 ── measured window (S s) ── t1 ] ─► stop sending
//!                              cpu, delivered snapshots at t0, t1     ─► drain: wait until every
//!                              latencies recorded inside              SEND answered OK is delivered
//!                                                                     ─► stop receiving ─► tally (lost)
//! ```
//!
//! A pair may have at most `window` messages sent and not yet delivered: the sender
//! takes a slot before each send, the recipient gives it back on delivery. With a
//! `--rate`, each pair also spaces its sends evenly (rate ÷ pairs per second).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant as TokioInstant;

use crate::latency::Latencies;
use crate::server::{CommitSample, ServerProcess};

/// Bytes a [`Stamp`] takes at the start of a body.
pub const STAMP_LEN: usize = 32;

/// Marks a bench message, so that a stray body is not mistaken for one.
const STAMP_MAGIC: u64 = 0x7061_7373_6265_6e63; // "passbenc"

/// Longest time the bench waits for the senders to stop once told to (each has at
/// most one command in flight, which the reply timeout bounds).
pub const SENDER_STOP_TIMEOUT: Duration = Duration::from_secs(70);

/// Longest time the recipients take to stop once told to.
pub const RECIPIENT_STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What a message carries so that its delivery can be matched and timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The pair (queue) it was sent on.
    pub pair: u64,
    /// Its sequence number within the pair, from 0.
    pub seq: u64,
    /// When it was sent: nanoseconds since the bench's [`Clock`] started.
    pub sent_ns: u64,
}

impl Stamp {
    /// Writes the stamp at the start of `out` (which must hold [`STAMP_LEN`] bytes).
    pub fn write(&self, out: &mut [u8]) {
        let fields = [STAMP_MAGIC, self.pair, self.seq, self.sent_ns];
        for (chunk, value) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
    }

    /// Reads a stamp from the start of `bytes`; `None` if it is not one.
    pub fn read(bytes: &[u8]) -> Option<Self> {
        let mut words = bytes
            .get(..STAMP_LEN)?
            .chunks_exact(8)
            .map(|c| c.try_into().map(u64::from_le_bytes));
        let mut next = || words.next()?.ok();
        if next()? != STAMP_MAGIC {
            return None;
        }
        Some(Self {
            pair: next()?,
            seq: next()?,
            sent_ns: next()?,
        })
    }
}

/// The bench's monotonic clock: nanoseconds since it started. Senders and recipients
/// live in the same process, so send and delivery times compare directly.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Nanoseconds since the start.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Counters and signals shared by every task of one run.
#[derive(Debug)]
pub struct Shared {
    /// The clock stamps are taken from.
    pub clock: Clock,
    /// Set during the measured window: only then are latencies recorded.
    measuring: AtomicBool,
    /// Messages a sender started to send.
    pub attempted: AtomicU64,
    /// Sends answered OK (the relay stored the message; the forwarder forwarded it).
    pub sent_ok: AtomicU64,
    /// Sends that failed.
    pub send_errors: AtomicU64,
    /// Deliveries seen by recipients.
    pub delivered: AtomicU64,
    /// Failures by kind (rare; a mutex is fine).
    errors: Mutex<BTreeMap<String, u64>>,
    go: watch::Sender<bool>,
    sending_stop: watch::Sender<bool>,
    receiving_stop: watch::Sender<bool>,
}

impl Shared {
    /// Fresh counters; nothing stopped.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            clock: Clock::start(),
            measuring: AtomicBool::new(false),
            attempted: AtomicU64::new(0),
            sent_ok: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            go: watch::Sender::new(false),
            sending_stop: watch::Sender::new(false),
            receiving_stop: watch::Sender::new(false),
        })
    }

    /// Whether the measured window is open.
    pub fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    /// Counts one failure of kind `what`.
    pub fn error(&self, what: impl Into<String>) {
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        *errors.entry(what.into()).or_default() += 1;
    }

    /// The failures so far, by kind.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until every pair is set up and traffic may start; false if sending is
    /// stopped first.
    pub async fn started(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let mut go = self.go.subscribe();
        tokio::select! {
            result = go.wait_for(|&go| go) => result.is_ok(),
            () = stopped(stop) => false,
        }
    }

    /// Completes once senders are told to stop.
    pub fn stop_sending(&self) -> watch::Receiver<bool> {
        self.sending_stop.subscribe()
    }

    /// Completes once recipients are told to stop.
    pub fn stop_receiving(&self) -> watch::Receiver<bool> {
        self.receiving_stop.subscribe()
    }
}

/// Waits until the flag in `stop` is set.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&s| s).await;
}

/// Blocks a connection driver (the relay load's, the forwarder's, the baseline load's)
/// reads in one go, without waiting, before it writes the replies: the relay's
/// `MAX_EVENTS_PER_FLUSH`.
pub const READ_BATCH: usize = 64;

/// Polls `future` once: its output if it is ready now. A pending future is dropped;
/// only cancel-safe futures may be passed.
pub fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// How far behind its pace a pair may be and still catch up: a few of tokio's 1 ms timer
/// ticks.
const MAX_CATCH_UP: Duration = Duration::from_millis(3);

/// One pair's flow control: the window of messages in flight and the optional pace.
#[derive(Debug)]
pub struct Flow {
    /// The pair's id (carried in each stamp).
    pub pair: u64,
    window: Semaphore,
    next_seq: AtomicU64,
    pace: Option<Pace>,
}

#[derive(Debug)]
struct Pace {
    interval: Duration,
    next: Mutex<TokioInstant>,
}

impl Flow {
    /// Pair `pair` with `window` slots, sending every `interval` at most if given.
    pub fn new(pair: u64, window: usize, interval: Option<Duration>) -> Arc<Self> {
        Arc::new(Self {
            pair,
            window: Semaphore::new(window),
            next_seq: AtomicU64::new(0),
            pace: interval.map(|interval| Pace {
                interval,
                next: Mutex::new(TokioInstant::now()),
            }),
        })
    }

    /// Waits for a slot in the window (and for the pace), then stamps the next message.
    /// `None` once sending is to stop.
    pub async fn next(&self, shared: &Shared, stop: &mut watch::Receiver<bool>) -> Option<Stamp> {
        tokio::select! {
            permit = self.window.acquire() => permit.ok()?.forget(),
            () = stopped(stop) => return None,
        }
        if let Some(pace) = &self.pace {
            let at = {
                let mut next = pace.next.lock().unwrap_or_else(PoisonError::into_inner);
                // Catch up with what the timer's 1 ms ticks delayed (a pair paced faster
                // than one message a millisecond sends a few per tick), but never with a
                // burst after falling further behind.
                let at = (*next).max(TokioInstant::now() - MAX_CATCH_UP);
                *next = at + pace.interval;
                at
            };
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = stopped(stop) => return None,
            }
        }
        shared.attempted.fetch_add(1, Ordering::Relaxed);
        Some(Stamp {
            pair: self.pair,
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            sent_ns: shared.clock.now_ns(),
        })
    }

    /// A message left the window: delivered, or its send failed.
    pub fn release(&self) {
        self.window.add_permits(1);
    }
}

/// What a recipient saw.
#[derive(Debug, Default)]
pub struct RecipientLog {
    /// Sequence numbers delivered (with repeats, if any).
    pub delivered: Vec<u64>,
    /// Latencies of deliveries inside the measured window, ns.
    pub latencies_ns: Vec<u64>,
}

impl RecipientLog {
    /// Records the delivery of `stamp` now, and frees its window slot.
    pub fn delivered(&mut self, stamp: Stamp, flow: &Flow, shared: &Shared) {
        let now = shared.clock.now_ns();
        self.delivered.push(stamp.seq);
        if shared.measuring() {
            self.latencies_ns.push(now.saturating_sub(stamp.sent_ns));
        }
        shared.delivered.fetch_add(1, Ordering::Relaxed);
        flow.release();
    }
}

/// The tasks of one pair: senders return the sequence numbers answered OK.
#[derive(Debug, Default)]
pub struct PairTasks {
    /// The pair's id.
    pub pair: u64,
    /// Sending tasks.
    pub senders: Vec<tokio::task::JoinHandle<Vec<u64>>>,
    /// The receiving task.
    pub recipient: Option<tokio::task::JoinHandle<RecipientLog>>,
}

/// Pairs being set up at once. The relay refuses connections beyond 256 handshakes in
/// progress (`ServerOptions::max_pending_handshakes`); fewer keep every handshake well
/// inside its timeout on two shared cores.
pub const SETUP_CONCURRENCY: usize = 32;

/// Longest time setting up all pairs may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

/// Sets up `count` pairs with `set_up_pair(pair id)`, [`SETUP_CONCURRENCY`] at a time.
/// Traffic starts only when [`measure`] says go.
pub async fn set_up_pairs<F, Fut>(count: usize, set_up_pair: F) -> anyhow::Result<Vec<PairTasks>>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<PairTasks>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    let all = async {
        let mut pairs = Vec::with_capacity(count);
        for pair in 0..count as u64 {
            // Collect finished setups while waiting for a slot, failing early.
            let permit = loop {
                tokio::select! {
                    permit = Arc::clone(&slots).acquire_owned() => break permit?,
                    Some(done) = tasks.join_next() => pairs.push(setup_result(done)?),
                }
            };
            let fut = set_up_pair(pair);
            tasks.spawn(async move {
                let result = fut.await.with_context(|| format!("setting up pair {pair}"));
                drop(permit);
                result
            });
        }
        while let Some(done) = tasks.join_next().await {
            pairs.push(setup_result(done)?);
        }
        anyhow::Ok(pairs)
    };
    match tokio::time::timeout(SETUP_TIMEOUT, all).await {
        Ok(result) => result,
        Err(_) => bail!("setting up {count} pairs took more than {SETUP_TIMEOUT:?}"),
    }
}

fn setup_result(
    done: Result<anyhow::Result<PairTasks>, tokio::task::JoinError>,
) -> anyhow::Result<PairTasks> {
    done.context("a setup task panicked")?
}

/// What the relay's store commits did inside the measured window.
#[derive(Debug, Clone, Copy)]
pub struct CommitFigures {
    /// Commits (one transaction and one fsync each) per second.
    pub per_sec: f64,
    /// Writes per commit (a `SEND` and its `ACK` are two).
    pub ops_per_commit: Option<f64>,
    /// Share of the window the commit thread spent committing (near 1: the store's one
    /// commit at a time is what limits the relay).
    pub busy: f64,
}

impl CommitFigures {
    fn between(before: CommitSample, after: CommitSample, window: Duration) -> Self {
        let commits = after.commits.saturating_sub(before.commits);
        let ops = after.ops.saturating_sub(before.ops);
        let busy = after.busy_micros.saturating_sub(before.busy_micros) as f64 / 1e6;
        let seconds = window.as_secs_f64().max(f64::MIN_POSITIVE);
        Self {
            per_sec: commits as f64 / seconds,
            ops_per_commit: (commits > 0).then(|| ops as f64 / commits as f64),
            busy: busy / seconds,
        }
    }
}

/// How long each phase lasts.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// Traffic before measuring (connections warm, queues in steady state).
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// Longest wait, after sending stops, for every accepted message to be delivered.
    pub drain: Duration,
}

/// The figures of one measured run against one server.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Deliveries per second inside the measured window.
    pub msgs_per_sec: f64,
    /// Deliveries inside the measured window.
    pub measured_deliveries: u64,
    /// The window's real length.
    pub measured: Duration,
    /// Server CPU time (user + system) inside the window, per delivery, µs.
    pub cpu_us_per_msg: Option<f64>,
    /// Server CPU time inside the window as a share of one core.
    pub cpu_cores: f64,
    /// CPU used inside the window by every other process on the machine (neither the
    /// server nor this bench), in cores: other work competing for the cores.
    pub other_cpu_cores: f64,
    /// This (load) process's CPU time per delivery inside the window, µs.
    pub load_cpu_us_per_msg: Option<f64>,
    /// Bytes the server wrote to storage inside the window, per delivery, KiB.
    pub disk_kib_per_msg: Option<f64>,
    /// The relay's store commits inside the window (none for the forwarder).
    pub commits: Option<CommitFigures>,
    /// Server resident memory at the end of the window, KiB.
    pub rss_kib: u64,
    /// Send→delivery latencies inside the window.
    pub latencies: Latencies,
    /// Sends answered OK, over the whole run.
    pub sent_ok: u64,
    /// Deliveries over the whole run (repeats included).
    pub delivered: u64,
    /// Sends answered OK that were never delivered (after the drain).
    pub lost: u64,
    /// Deliveries of a message already delivered.
    pub duplicates: u64,
    /// Deliveries of a message no send was answered OK for (a send that timed out or
    /// failed after the server stored it).
    pub unconfirmed: u64,
    /// Fewest and most deliveries of one pair over the whole run (fairness).
    pub pair_delivered_range: (u64, u64),
    /// Failed sends.
    pub send_errors: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// How long the drain took.
    pub drain: Duration,
    /// Whether everything accepted was delivered before the drain limit.
    pub drained: bool,
}

/// Runs the phases over pairs already set up and tallies the outcome. `server` is the
/// process whose CPU and memory are measured.
pub async fn measure(
    server: &mut ServerProcess,
    shared: &Arc<Shared>,
    pairs: Vec<PairTasks>,
    phases: Phases,
) -> anyhow::Result<Outcome> {
    let me = std::process::id();
    shared.go.send_replace(true);
    tokio::time::sleep(phases.warmup).await;
    server.check_running()?;

    let cpu0 = server.cpu_time()?;
    let load0 = crate::procfs::cpu_time(me)?;
    let machine0 = crate::procfs::machine_busy()?;
    let disk0 = server.disk_write_bytes()?;
    let commits0 = server.commit_sample()?;
    let delivered0 = shared.delivered.load(Ordering::Relaxed);
    let t0 = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(phases.measure).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let delivered1 = shared.delivered.load(Ordering::Relaxed);
    let measured = t0.elapsed();
    let cpu1 = server.cpu_time()?;
    let load1 = crate::procfs::cpu_time(me)?;
    let machine1 = crate::procfs::machine_busy()?;
    let disk1 = server.disk_write_bytes()?;
    let commits1 = server.commit_sample()?;
    let rss_kib = server.rss_kib()?;
    server.check_running()?;

    // Stop sending; every send in flight is answered (or times out) first.
    shared.sending_stop.send_replace(true);
    let drain_start = Instant::now();
    let mut senders = JoinSet::new();
    let mut recipients = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let id = pair.pair;
        for sender in pair.senders {
            senders.spawn(async move { (id, sender.await) });
        }
        recipients.push((id, pair.recipient));
    }
    let mut ok_by_pair: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let joined = tokio::time::timeout(SENDER_STOP_TIMEOUT, async {
        while let Some(joined) = senders.join_next().await {
            let (id, result) = joined.context("a sender task panicked")?;
            let ok = result.context("a sender task failed")?;
            ok_by_pair.entry(id).or_default().extend(ok);
        }
        anyhow::Ok(())
    })
    .await;
    match joined {
        Ok(result) => result?,
        Err(_) => bail!("the senders did not stop within {SENDER_STOP_TIMEOUT:?}"),
    }

    // Drain: wait until every send answered OK has been delivered.
    let drain_deadline = drain_start + phases.drain;
    let drained = loop {
        let ok = shared.sent_ok.load(Ordering::Relaxed);
        let failed = shared.send_errors.load(Ordering::Relaxed);
        let attempted = shared.attempted.load(Ordering::Relaxed);
        let delivered = shared.delivered.load(Ordering::Relaxed);
        if ok + failed >= attempted && delivered >= ok {
            break true;
        }
        if Instant::now() >= drain_deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let drain = drain_start.elapsed();
    shared.receiving_stop.send_replace(true);

    let mut latencies = Vec::new();
    let mut lost = 0u64;
    let mut duplicates = 0u64;
    let mut unconfirmed = 0u64;
    let mut range = (u64::MAX, 0u64);
    for (id, recipient) in recipients {
        let log = match recipient {
            Some(handle) => tokio::time::timeout(RECIPIENT_STOP_TIMEOUT, handle)
                .await
                .with_context(|| format!("recipient {id} did not stop"))?
                .context("a recipient task panicked")?,
            None => RecipientLog::default(),
        };
        let ok = ok_by_pair.remove(&id).unwrap_or_default();
        let tally = tally(&ok, &log.delivered);
        lost += tally.lost;
        duplicates += tally.duplicates;
        unconfirmed += tally.unconfirmed;
        let count = log.delivered.len() as u64;
        range = (range.0.min(count), range.1.max(count));
        latencies.extend(log.latencies_ns);
    }
    let (measured_deliveries, msgs_per_sec) = rate(delivered0, delivered1, measured);
    let per_msg = |cpu: Duration| {
        (measured_deliveries > 0).then(|| cpu.as_secs_f64() * 1e6 / measured_deliveries as f64)
    };
    let server_cpu = cpu1.since(cpu0);
    let load_cpu = load1.since(load0);
    let cores = |cpu: Duration| cpu.as_secs_f64() / measured.as_secs_f64().max(1e-9);
    let others = machine1
        .since(machine0)
        .saturating_sub(server_cpu)
        .saturating_sub(load_cpu);
    Ok(Outcome {
        msgs_per_sec,
        measured_deliveries,
        measured,
        cpu_us_per_msg: per_msg(server_cpu),
        cpu_cores: cores(server_cpu),
        other_cpu_cores: cores(others),
        load_cpu_us_per_msg: per_msg(load_cpu),
        disk_kib_per_msg: (measured_deliveries > 0)
            .then(|| disk1.saturating_sub(disk0) as f64 / 1024.0 / measured_deliveries as f64),
        commits: commits0
            .zip(commits1)
            .map(|(before, after)| CommitFigures::between(before, after, measured)),
        rss_kib,
        latencies: Latencies::from_samples(latencies),
        sent_ok: shared.sent_ok.load(Ordering::Relaxed),
        delivered: shared.delivered.load(Ordering::Relaxed),
        lost,
        duplicates,
        unconfirmed,
        pair_delivered_range: (range.0.min(range.1), range.1),
        send_errors: shared.send_errors.load(Ordering::Relaxed),
        errors: shared.errors(),
        drain,
        drained,
    })
}

fn rate(before: u64, after: u64, over: Duration) -> (u64, f64) {
    let count = after.saturating_sub(before);
    (count, count as f64 / over.as_secs_f64().max(1e-9))
}

/// How the deliveries of one pair compare with its sends answered OK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Answered OK, never delivered.
    pub lost: u64,
    /// Delivered more than once (each extra delivery counts).
    pub duplicates: u64,
    /// Delivered, never answered OK.
    pub unconfirmed: u64,
}

/// Compares the sequence numbers answered OK with those delivered.
pub fn tally(ok: &[u64], delivered: &[u64]) -> Tally {
    let mut seen = HashSet::with_capacity(delivered.len());
    let mut duplicates = 0;
    for &seq in delivered {
        if !seen.insert(seq) {
            duplicates += 1;
        }
    }
    let ok_set: HashSet<u64> = ok.iter().copied().collect();
    Tally {
        lost: ok_set.iter().filter(|seq| !seen.contains(seq)).count() as u64,
        duplicates,
        unconfirmed: seen.iter().filter(|seq| !ok_set.contains(seq)).count() as u64,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn commit_figures_are_per_second_of_the_window() {
        let before = CommitSample {
            commits: 10,
            ops: 100,
            busy_micros: 1_000_000,
        };
        let after = CommitSample {
            commits: 30,
            ops: 500,
            busy_micros: 2_500_000,
        };
        let f = CommitFigures::between(before, after, Duration::from_secs(2));
        assert_eq!(f.per_sec, 10.0);
        assert_eq!(f.ops_per_commit, Some(20.0));
        assert_eq!(f.busy, 0.75);
        // No commit in the window: no writes-per-commit figure.
        let idle = CommitFigures::between(after, after, Duration::from_secs(2));
        assert_eq!(idle.ops_per_commit, None);
    }

    use super::*;

    #[test]
    fn stamps_round_trip_and_reject_foreign_bytes() {
        let stamp = Stamp {
            pair: 7,
            seq: 123_456,
            sent_ns: 987_654_321,
        };
        let mut body = [0u8; 64];
        stamp.write(&mut body);
        assert_eq!(Stamp::read(&body), Some(stamp));
        assert_eq!(Stamp::read(&[0u8; 64]), None);
        assert_eq!(Stamp::read(&body[..STAMP_LEN - 1]), None);
    }

    #[test]
    fn tally_counts_lost_repeated_and_unconfirmed() {
        let t = tally(&[0, 1, 2, 3], &[0, 2, 2, 3, 9]);
        assert_eq!(
            t,
            Tally {
                lost: 1,
                duplicates: 1,
                unconfirmed: 1
            }
        );
        assert_eq!(tally(&[], &[]), Tally::default());
    }
}
