//! [`GroupCommitter`]: many async writers; batches applied at once, persisted behind, one
//! transaction (one fsync) for everything applied while the previous one was written.
//!
//! ```text
//!  task ─submit(op)─┐                      apply thread: take all queued (≤ MAX_BATCH),
//!  task ─submit(op)─┼─▶ bounded queue ─▶   store.apply(batch) ─▶ `applied` hooks (wake
//!  task ─submit(op)─┘   (backpressure)     subscribers) ─▶ awaiting ─┐
//!                                                                    ▼
//!  task ◀─ answer (OK only once durable) ◀─ commit thread: store.persist(), answer the
//!                                           batches it made durable (or lost), repeat
//! ```
//!
//! Neither thread waits for a batch to fill: the apply thread applies what is queued the
//! moment it arrives, and the commit thread writes whatever has been applied as soon as
//! the previous write is done. Batches form by themselves under load — everything applied
//! while one write waits for its fsync goes into the next — so one writer alone pays one
//! fsync, and a burst of N writers pays about two. Since a batch is readable as soon as it
//! is applied, delivery does not wait for the disk; and a message acknowledged before the
//! write of its batch began is never written (see the `write_behind` module).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{
    Applied, OpRef, Persisted, StorageFault, Store, WaitFor, WriteError, WriteOp, WriteOutcome,
};

/// The most ops in one commit. A batch of appends holds about 4 KiB per op, so 4,096 ops
/// is a 16 MiB transaction. Under heavy load the batch limit, not the fsync, sets the
/// pace: each op of a full batch costs a b-tree update in a different place of the file,
/// and the pages near the root are copied once per commit whatever its size. Measured with
/// `passage-relay-bench --pairs 1000` (commits back to back, every batch full): 1,024 ops
/// per batch gave 14.9k messages/s, 75 µs of relay CPU and 8.5 KiB written per message;
/// 4,096 gave 22.5k/s, 52 µs and 4.9 KiB (8,192: 22.8k/s, little more). A lone writer
/// still commits alone: batches only fill while the previous commit runs.
pub const MAX_BATCH: usize = 4096;

/// How many writes may wait for the apply thread; a writer beyond that waits in
/// [`GroupCommitter::write`] until there is room (backpressure on the connections, rather
/// than unbounded memory). One batch's worth: applying is quick, the wait is for the disk.
pub const WRITE_QUEUE_CAPACITY: usize = MAX_BATCH;

/// How long an appended message is held back from the disk ([`WaitFor::Message`]): a
/// recipient who is online acknowledges it well within this, and then it is never written
/// and its sender is told `OK` at the acknowledgement. A message still unacknowledged after
/// it is written with the next write; its sender waits that much longer for `OK`, and its
/// recipient's next messages are written at once until it acknowledges one (see
/// `Hub::held_too_long`). Measured with `passage-relay-bench` (saturated; send to delivery
/// p99 50–100 ms at 100 pairs, 0.3–0.6 s at 1,000): with 50 ms, 0.6 KiB per message still
/// reached the disk over TCP at 100 pairs and 4.5 KiB (all of them) over QUIC; with 200 ms,
/// none at 100 pairs but all at 1,000 pairs (22.5k messages/s); with 500 ms, 2.7–3.4 KiB
/// at 1,000 (18.5k–21k/s: the writes slow the relay, which makes more messages wait past
/// the hold); with 1 s, 0.01 KiB (26.4k/s). Held messages count against
/// [`UNPERSISTED_LIMIT`]; when it is reached they are written at once.
pub const HOLD: Duration = Duration::from_millis(1000);

/// How many applied ops may wait for their answer (held messages included) before the
/// apply thread waits too (the bodies of their messages stay in memory meanwhile, unless
/// acknowledged). With the queue above, at about 4 KiB per message at most 80 MiB wait in
/// all; 1,000 busy pairs hold about 8,000.
pub const UNPERSISTED_LIMIT: usize = 4 * MAX_BATCH;

/// What the commit thread has done since it started, for metrics: how many commits
/// (transactions written), how many ops they settled, how many rows they wrote and how long
/// they took. Ops per commit shows how well writes batch; rows per op shows how much never
/// reached the disk (a message delivered and acknowledged before its write costs no row);
/// busy time against wall time shows whether the disk (one write at a time) is what limits
/// the relay. Relaxed atomics, updated once per write.
#[derive(Debug, Default)]
pub struct CommitCounters {
    /// Commits (each one transaction and one fsync).
    pub commits: AtomicU64,
    /// Ops settled (answered after their batch was persisted), over all commits.
    pub ops: AtomicU64,
    /// Rows written (each a b-tree insert or delete), over all commits.
    pub rows: AtomicU64,
    /// Time spent writing (in [`Store::persist`] calls that wrote), in microseconds.
    pub busy_micros: AtomicU64,
}

impl CommitCounters {
    fn record_write(&self, rows: usize, took: std::time::Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.busy_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// The async front of a [`Store`]: `write(op).await` returns once the op's batch is durable.
/// Runs two threads: one applies batches, the other persists them.
///
/// Share it between tasks behind an `Arc`. Call [`close`](Self::close) on shutdown, so that
/// every write already submitted is committed and answered; dropping it without `close`
/// also commits them, but nobody waits for it.
pub struct GroupCommitter {
    jobs: mpsc::Sender<Job>,
    /// For [`apply_now`](Self::apply_now).
    flight: Arc<Flight>,
}

impl core::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GroupCommitter").finish_non_exhaustive()
    }
}

/// Called on the commit thread with an op's result, once its batch is durable (see
/// [`GroupCommitter::submit`]).
pub type Callback = Box<dyn FnOnce(Result<WriteOutcome, WriteError>) + Send + 'static>;

/// Called on the apply thread with an op's result as soon as its batch is applied, before
/// it is durable: readers see its effect already. The result is final unless the write of
/// the batch fails; then [`Callback`] gets the fault instead.
pub type OnApplied = Box<dyn FnOnce(&Result<WriteOutcome, WriteError>) + Send + 'static>;

/// Where an op's result goes.
enum Reply {
    /// A task waiting in [`GroupCommitter::write`].
    Task(oneshot::Sender<Result<WriteOutcome, WriteError>>),
    /// [`GroupCommitter::submit`] callbacks.
    Call {
        applied: Option<OnApplied>,
        done: Callback,
    },
}

impl Reply {
    fn applied(&mut self, result: &Result<WriteOutcome, WriteError>) {
        if let Reply::Call { applied, .. } = self
            && let Some(applied) = applied.take()
        {
            applied(result);
        }
    }

    fn send(self, result: Result<WriteOutcome, WriteError>) {
        match self {
            // The writer may have given up waiting; the op is committed all the same.
            Reply::Task(reply) => {
                let _ = reply.send(result);
            }
            Reply::Call { done, .. } => done(result),
        }
    }
}

/// Batches applied and not yet answered, between the two threads.
#[derive(Default)]
struct Flight {
    /// Held from a batch's apply to its hand-over: batches reach `awaiting` in the order
    /// they were applied, whichever thread applied them.
    gate: Mutex<()>,
    /// Wakes [`GroupCommitter::apply_now`] callers waiting for room.
    room: tokio::sync::Notify,
    /// The store, for [`GroupCommitter::apply_now`]; let go of when the committer stops,
    /// so that its file can be opened again.
    store: Mutex<Option<Arc<dyn Store>>>,
    state: Mutex<FlightState>,
    /// Wakes the commit thread: an answer waits for a write, or the apply thread stopped.
    to_commit: Condvar,
    /// Wakes the apply thread: answers went out (room under [`UNPERSISTED_LIMIT`]).
    to_apply: Condvar,
}

#[derive(Default)]
struct FlightState {
    /// In the order applied; the first one has an unanswered op.
    awaiting: VecDeque<Awaiting>,
    /// Unanswered ops in `awaiting`.
    ops: usize,
    /// Unanswered ops in `awaiting` that wait for a write ([`WaitFor::Write`]).
    urgent: usize,
    /// The apply thread has stopped: write everything, answer, then stop.
    applier_done: bool,
    /// How long held messages wait ([`HOLD`] unless [`GroupCommitter::with_hold`]).
    hold: Duration,
}

/// One applied batch with ops still to answer.
struct Awaiting {
    batch: u64,
    applied_at: Instant,
    /// `None` once answered.
    replies: Vec<Option<Reply>>,
    results: Vec<Result<WriteOutcome, WriteError>>,
    wait_for: Vec<WaitFor>,
    unanswered: usize,
}

/// An answer to send once the lock is released.
type Answer = (Reply, Result<WriteOutcome, WriteError>);

impl FlightState {
    /// Takes op `index` of the batch at `at` in `awaiting`, if it is still unanswered,
    /// with its result (or `lost`).
    fn answer(&mut self, at: usize, index: usize, lost: Option<&StorageFault>) -> Option<Answer> {
        let batch = self.awaiting.get_mut(at)?;
        let reply = batch.replies.get_mut(index)?.take()?;
        let result = match lost {
            Some(fault) => Err(WriteError::Storage(fault.clone())),
            None => batch
                .results
                .get(index)
                .cloned()
                .unwrap_or_else(|| Err(closed())),
        };
        batch.unanswered = batch.unanswered.saturating_sub(1);
        self.ops = self.ops.saturating_sub(1);
        if batch.wait_for.get(index) == Some(&WaitFor::Write) {
            self.urgent = self.urgent.saturating_sub(1);
        }
        Some((reply, result))
    }

    /// Where batch `batch` is in `awaiting`.
    fn position(&self, batch: u64) -> Option<usize> {
        self.awaiting.binary_search_by_key(&batch, |b| b.batch).ok()
    }

    /// Drops the answered batches at the front.
    fn pop_answered(&mut self) {
        while self.awaiting.front().is_some_and(|b| b.unanswered == 0) {
            self.awaiting.pop_front();
        }
    }

    /// When the commit thread must write next: now if an answer waits for a write (or the
    /// apply thread has stopped), else when the oldest held message has waited [`HOLD`].
    fn write_due(&self) -> Option<Instant> {
        let first = self.awaiting.front()?;
        if self.urgent > 0 || self.applier_done || self.full() {
            return Some(first.applied_at);
        }
        Some(first.applied_at + self.hold)
    }

    /// The apply thread waits for room: everything held is written now.
    fn full(&self) -> bool {
        self.ops >= UNPERSISTED_LIMIT
    }

    /// The newest batch whose held messages have waited [`HOLD`] at `now`.
    fn held_due(&self, now: Instant) -> u64 {
        if self.applier_done || self.full() {
            return u64::MAX;
        }
        let due = self
            .awaiting
            .partition_point(|b| b.applied_at + self.hold <= now);
        match due.checked_sub(1).and_then(|at| self.awaiting.get(at)) {
            Some(batch) => batch.batch,
            // Held ops of batches already answered in full are gone: none is due.
            None => self
                .awaiting
                .front()
                .map_or(0, |b| b.batch.saturating_sub(1)),
        }
    }
}

impl Flight {
    fn lock(&self) -> MutexGuard<'_, FlightState> {
        // Nothing panics while holding it; a poisoned lock still guards whole data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// No batch is applied from here on: the commit thread writes what is left and stops.
    fn stop(&self) {
        let _gate = lock_gate(self);
        self.lock().applier_done = true;
        *self.store.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.to_commit.notify_one();
        self.room.notify_waiters();
    }
}

fn lock_gate(flight: &Flight) -> MutexGuard<'_, ()> {
    flight.gate.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Applies a batch, calls its `applied` hooks and hands it to the commit thread; returns
/// the answers due now. The caller holds the gate.
fn apply_and_hand_over(
    store: &dyn Store,
    flight: &Flight,
    ops: Vec<WriteOp>,
    replies: &mut Vec<Reply>,
) -> Vec<Answer> {
    let Applied {
        batch,
        results,
        wait_for,
        released,
    } = store.apply(ops);
    for (reply, result) in replies.iter_mut().zip(&results) {
        reply.applied(result);
    }
    hand_over(flight, batch, replies, results, wait_for, &released)
}

/// Waits on `condvar` (for at most `timeout`, if given).
fn wait<'a>(
    condvar: &Condvar,
    state: MutexGuard<'a, FlightState>,
    timeout: Option<Duration>,
) -> MutexGuard<'a, FlightState> {
    match timeout {
        Some(timeout) => {
            condvar
                .wait_timeout(state, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0
        }
        None => condvar.wait(state).unwrap_or_else(PoisonError::into_inner),
    }
}

fn send_all(answers: Vec<Answer>) {
    for (reply, result) in answers {
        reply.send(result);
    }
}

/// One entry of the queue to the commit thread.
enum Job {
    Write {
        // Boxed: a `Close` should not take a queue slot as large as a `CreateQueue`.
        op: Box<WriteOp>,
        reply: Reply,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

impl GroupCommitter {
    /// Starts the commit thread over `store`. Needs no runtime: the thread is a plain OS
    /// thread, since a commit blocks on the disk.
    ///
    /// If the OS refuses to start a thread, the committer is closed from the start: every
    /// [`write`](Self::write) fails with [`StorageFault::Closed`].
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_counters(store, Arc::default())
    }

    /// As [`new`](Self::new), counting every commit in `counters`.
    pub fn with_counters(store: Arc<dyn Store>, counters: Arc<CommitCounters>) -> Self {
        Self::with_hold(store, counters, HOLD)
    }

    /// As [`with_counters`](Self::with_counters), holding appended messages back from the
    /// disk for `hold` instead of [`HOLD`] (tests use a long one, so that what they check
    /// does not depend on how fast the machine is; `close` writes everything held).
    pub fn with_hold(store: Arc<dyn Store>, counters: Arc<CommitCounters>, hold: Duration) -> Self {
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE_CAPACITY);
        let flight = Arc::new(Flight::default());
        flight.lock().hold = hold;
        *flight.store.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&store));
        let (thread_store, thread_flight) = (store, Arc::clone(&flight));
        // On failure the closure (and with it `queue`) is dropped, which closes the channel.
        let started = std::thread::Builder::new()
            .name("passage-store-apply".into())
            .spawn(move || {
                let (store, flight) = (thread_store, thread_flight);
                let persister = {
                    let (store, flight) = (Arc::clone(&store), Arc::clone(&flight));
                    std::thread::Builder::new()
                        .name("passage-store-commit".into())
                        .spawn(move || persist_loop(store.as_ref(), &flight, &counters))
                };
                // Without a commit thread nothing could be answered: close at once.
                let Ok(persister) = persister else {
                    flight.stop();
                    return;
                };
                let closers = apply_loop(store.as_ref(), queue, &flight);
                flight.stop();
                // It returns once every applied batch is answered; it does not panic.
                let _ = persister.join();
                // Let go of the store before saying we are done, so that a caller of `close`
                // may reopen its file at once.
                drop(store);
                for done in closers {
                    let _ = done.send(());
                }
            });
        if started.is_err() {
            flight.stop();
        }
        Self { jobs, flight }
    }

    /// Applies `ops` as one batch now, on the calling task's thread, and answers each as
    /// [`submit`](Self::submit) would (`applied` at once, `done` when its answer is due;
    /// `done` may be called before this returns). Spares the apply thread's wake-up and
    /// the queue: for a task that has its ops at hand (a connection, after reading what its
    /// peer sent). Blocks the thread only while it applies (memory work, and a disk read
    /// for a queue record not cached); waits without blocking while
    /// [`UNPERSISTED_LIMIT`] ops wait for their answer. After [`close`](Self::close), every
    /// op is answered [`StorageFault::Closed`].
    pub async fn apply_now(&self, ops: Vec<(Box<WriteOp>, Option<OnApplied>, Callback)>) {
        if ops.is_empty() {
            return;
        }
        loop {
            let room = self.flight.room.notified();
            {
                let state = self.flight.lock();
                if state.applier_done || !state.full() {
                    break;
                }
            }
            self.flight.to_commit.notify_one();
            room.await;
        }
        let gate = lock_gate(&self.flight);
        let store = self
            .flight
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(store) = store.filter(|_| !self.flight.lock().applier_done) else {
            drop(gate);
            for (_, _, done) in ops {
                done(Err(closed()));
            }
            return;
        };
        let (mut batch, mut replies) = (Vec::with_capacity(ops.len()), Vec::new());
        for (op, applied, done) in ops {
            batch.push(*op);
            replies.push(Reply::Call { applied, done });
        }
        let answers = apply_and_hand_over(store.as_ref(), &self.flight, batch, &mut replies);
        drop(gate);
        send_all(answers);
    }

    /// Submits one op and waits until its batch is committed and durable.
    ///
    /// Waits for room first if [`WRITE_QUEUE_CAPACITY`] writes are already queued. Fails with
    /// [`StorageFault::Closed`] after [`close`](Self::close). If this future is dropped once
    /// the op is queued, the op may still be applied.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutcome, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Write {
                op: Box::new(op),
                reply: Reply::Task(reply),
            })
            .await
            .map_err(|_| closed())?;
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Submits one op without waiting for it: `applied` is called on the apply thread
    /// with its result as soon as its batch is applied (readers see it), and `done` on the
    /// commit thread once the batch is durable (or at once with [`StorageFault::Closed`]
    /// if the committer is closed; `applied` is then not called). Waits only for room in
    /// the queue, as [`write`](Self::write) does. Both must be quick and must not block:
    /// they hold up the rest of their batch. Spares the caller a task and a wake-up per
    /// write; the op is committed (and `done` called) even if the caller goes away.
    pub async fn submit(&self, op: Box<WriteOp>, applied: Option<OnApplied>, done: Callback) {
        if let Err(mpsc::error::SendError(job)) = self
            .jobs
            .send(Job::Write {
                op,
                reply: Reply::Call { applied, done },
            })
            .await
            && let Job::Write { reply, .. } = job
        {
            reply.send(Err(closed()));
        }
    }

    /// Stops taking writes, commits every write already queued, and returns when they are
    /// answered and the commit thread has finished. Later writes fail with
    /// [`StorageFault::Closed`]. Returns at once if the committer is already closed.
    pub async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.jobs.send(Job::Close { done }).await.is_ok() {
            // An error only means the thread is gone already.
            let _ = finished.await;
        }
    }
}

fn closed() -> WriteError {
    WriteError::Storage(StorageFault::Closed)
}

/// The apply thread: take what is queued, apply it, call the `applied` hooks, answer
/// what needs no write, hand the rest to the commit thread, repeat; after a `Close`, drain.
/// Returns the `Close` requests to answer.
fn apply_loop(
    store: &dyn Store,
    mut queue: mpsc::Receiver<Job>,
    flight: &Flight,
) -> Vec<oneshot::Sender<()>> {
    let mut closers = Vec::new();
    let mut ops = Vec::with_capacity(MAX_BATCH);
    let mut replies: Vec<Reply> = Vec::new();
    // Blocks only while the queue is empty; `None` once it is closed and drained.
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::Write { op, reply } => {
                    ops.push(*op);
                    replies.push(reply);
                }
                Job::Close { done } => {
                    // No new writes from here on; those already queued are still received.
                    queue.close();
                    closers.push(done);
                }
            }
            next = if ops.len() < MAX_BATCH {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if ops.is_empty() {
            continue;
        }
        {
            let mut state = flight.lock();
            while state.full() {
                // The commit thread writes what is held at once when it sees this.
                flight.to_commit.notify_one();
                state = wait(&flight.to_apply, state, None);
            }
        }
        let gate = lock_gate(flight);
        let answers = apply_and_hand_over(store, flight, std::mem::take(&mut ops), &mut replies);
        drop(gate);
        send_all(answers);
    }
    closers
}

/// Puts an applied batch in `awaiting` and takes the answers due now: its ops that wait
/// for nothing, and the held ops whose message was acknowledged before it was written.
fn hand_over(
    flight: &Flight,
    batch: u64,
    replies: &mut Vec<Reply>,
    results: Vec<Result<WriteOutcome, WriteError>>,
    wait_for: Vec<WaitFor>,
    released: &[OpRef],
) -> Vec<Answer> {
    let count = replies.len();
    let urgent = wait_for.iter().filter(|w| **w == WaitFor::Write).count();
    let mut state = flight.lock();
    let was_empty = state.awaiting.is_empty();
    state.awaiting.push_back(Awaiting {
        batch,
        applied_at: Instant::now(),
        replies: replies.drain(..).map(Some).collect(),
        results,
        wait_for,
        unanswered: count,
    });
    state.ops = state.ops.saturating_add(count);
    state.urgent = state.urgent.saturating_add(urgent);
    let mut answers = Vec::new();
    let last = state.awaiting.len().saturating_sub(1);
    for index in 0..count {
        if state.awaiting[last].wait_for.get(index) == Some(&WaitFor::Nothing) {
            answers.extend(state.answer(last, index, None));
        }
    }
    for &(batch, index) in released {
        if let Some(at) = state.position(batch) {
            answers.extend(state.answer(at, index, None));
        }
    }
    state.pop_answered();
    // The commit thread sleeps until the first batch's deadline, or without one if there
    // was no batch: wake it for a write due now or a first deadline.
    let wake = state.urgent > 0 || (was_empty && !state.awaiting.is_empty());
    drop(state);
    if wake {
        flight.to_commit.notify_one();
    }
    answers
}

/// The commit thread: wait until a write is due, persist, answer what it settled, repeat;
/// stops once the apply thread has stopped and every op is answered.
fn persist_loop(store: &dyn Store, flight: &Flight, counters: &CommitCounters) {
    loop {
        let held_through = {
            let mut state = flight.lock();
            loop {
                let now = Instant::now();
                match state.write_due() {
                    Some(due) if due <= now => break state.held_due(now),
                    Some(due) => state = wait(&flight.to_commit, state, Some(due - now)),
                    None if state.applier_done => return,
                    None => state = wait(&flight.to_commit, state, None),
                }
            }
        };
        let started = Instant::now();
        let persisted = store.persist(held_through);
        if persisted.rows > 0 {
            counters.record_write(persisted.rows, started.elapsed());
        }
        let answers = settle(flight, &persisted);
        counters
            .ops
            .fetch_add(answers.len() as u64, Ordering::Relaxed);
        flight.to_apply.notify_one();
        flight.room.notify_waiters();
        send_all(answers);
    }
}

/// Takes the answers a persist settled: the ops waiting for a write in the batches it
/// covered, the held ops it wrote, and every op of a lost batch.
fn settle(flight: &Flight, persisted: &Persisted) -> Vec<Answer> {
    let mut state = flight.lock();
    let mut answers = Vec::new();
    for at in 0..state.awaiting.len() {
        let batch = &state.awaiting[at];
        if batch.batch > persisted.through.max(persisted.lost_through) {
            break;
        }
        let lost = persisted.outcome(batch.batch).err();
        let due: Vec<usize> = (0..batch.replies.len())
            .filter(|&i| lost.is_some() || batch.wait_for.get(i) == Some(&WaitFor::Write))
            .collect();
        for index in due {
            answers.extend(state.answer(at, index, lost.as_ref()));
        }
    }
    for &(batch, index) in &persisted.written {
        if let Some(at) = state.position(batch) {
            let lost = persisted.outcome(batch).err();
            answers.extend(state.answer(at, index, lost.as_ref()));
        }
    }
    state.pop_answered();
    answers
}
