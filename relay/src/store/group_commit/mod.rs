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

mod flight;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use flight::{Flight, apply_and_hand_over, lock_gate, persist_loop, send_all, wait};

use tokio::sync::{mpsc, oneshot};

use super::{StorageFault, Store, WriteError, WriteOp, WriteOutcome};

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

/// How long an appended message is held back from the disk
/// ([`WaitFor::Message`](super::WaitFor::Message)): a
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
