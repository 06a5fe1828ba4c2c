//! [`GroupCommitter`]: many async writers, one commit (one fsync) per batch.
//!
//! ```text
//!  task ─write(op)─┐                         ┌─ oneshot ─▶ task
//!  task ─write(op)─┼─▶ bounded queue ─▶ commit thread: take all queued (≤ MAX_BATCH),
//!  task ─write(op)─┘   (backpressure)        store.commit(batch), answer each ─▶ task
//! ```
//!
//! The commit thread never waits for a batch to fill: when the queue is empty it commits
//! the one op that arrives at once. Batches form by themselves under load, from the writes
//! that arrive while the previous commit is waiting for its fsync — so one writer alone pays
//! one fsync, and a burst of N writers pays about two.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

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

/// How many writes may wait for the commit thread; a writer beyond that waits in
/// [`GroupCommitter::write`] until there is room (backpressure on the connections, rather
/// than unbounded memory: at about 4 KiB per queued message this is at most 32 MiB). Two
/// batches' worth, so the next batch can fill while one commits.
pub const WRITE_QUEUE_CAPACITY: usize = 2 * MAX_BATCH;

/// What the commit thread has done since it started, for metrics: how many commits, how
/// many ops they held, and how long they took. Ops per commit shows how well writes batch;
/// busy time against wall time shows whether the disk (one commit at a time) is what
/// limits the relay. Relaxed atomics, updated once per commit.
#[derive(Debug, Default)]
pub struct CommitCounters {
    /// Commits (each one transaction and one fsync).
    pub commits: AtomicU64,
    /// Ops committed, over all commits.
    pub ops: AtomicU64,
    /// Time spent in [`Store::commit`], in microseconds.
    pub busy_micros: AtomicU64,
}

impl CommitCounters {
    fn record(&self, ops: usize, took: std::time::Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.ops.fetch_add(ops as u64, Ordering::Relaxed);
        self.busy_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// The async front of a [`Store`]: `write(op).await` returns once the op's batch is durable.
///
/// Share it between tasks behind an `Arc`. Call [`close`](Self::close) on shutdown, so that
/// every write already submitted is committed and answered; dropping it without `close`
/// also commits them, but nobody waits for it.
pub struct GroupCommitter {
    jobs: mpsc::Sender<Job>,
}

impl core::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GroupCommitter").finish_non_exhaustive()
    }
}

/// Called on the commit thread with an op's result, once its batch is durable (see
/// [`GroupCommitter::submit`]).
pub type Callback = Box<dyn FnOnce(Result<WriteOutcome, WriteError>) + Send + 'static>;

/// Where an op's result goes.
enum Reply {
    /// A task waiting in [`GroupCommitter::write`].
    Task(oneshot::Sender<Result<WriteOutcome, WriteError>>),
    /// A [`GroupCommitter::submit`] callback.
    Call(Callback),
}

impl Reply {
    fn send(self, result: Result<WriteOutcome, WriteError>) {
        match self {
            // The writer may have given up waiting; the op is committed all the same.
            Reply::Task(reply) => {
                let _ = reply.send(result);
            }
            Reply::Call(call) => call(result),
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
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE_CAPACITY);
        // On failure the closure (and with it `queue`) is dropped, which closes the channel.
        let _detached = std::thread::Builder::new()
            .name("passage-store-commit".into())
            .spawn(move || {
                let closers = run(store.as_ref(), queue, &counters);
                // Let go of the store before saying we are done, so that a caller of `close`
                // may reopen its file at once.
                drop(store);
                for done in closers {
                    let _ = done.send(());
                }
            });
        Self { jobs }
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

    /// Submits one op without waiting for it: `done` is called on the commit thread with
    /// its result once its batch is durable (or at once with [`StorageFault::Closed`] if
    /// the committer is closed). Waits only for room in the queue, as
    /// [`write`](Self::write) does. `done` must be quick and must not block: it holds up
    /// the answers to the rest of its batch. Spares the caller a task and a wake-up per
    /// write; the op is committed (and `done` called) even if the caller goes away.
    pub async fn submit(&self, op: Box<WriteOp>, done: Callback) {
        if let Err(mpsc::error::SendError(job)) = self
            .jobs
            .send(Job::Write {
                op,
                reply: Reply::Call(done),
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

/// The commit thread: take what is queued, commit it, answer, repeat; after a `Close`, drain.
/// Returns the `Close` requests to answer.
fn run(
    store: &dyn Store,
    mut queue: mpsc::Receiver<Job>,
    counters: &CommitCounters,
) -> Vec<oneshot::Sender<()>> {
    let mut closers = Vec::new();
    let mut ops = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
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
        let (count, started) = (ops.len(), Instant::now());
        let mut results = store.commit(std::mem::take(&mut ops)).into_iter();
        counters.record(count, started.elapsed());
        // A store that returned too few results would leave writers unanswered: they are
        // told `Closed` rather than left to hang.
        for reply in replies.drain(..) {
            reply.send(results.next().unwrap_or_else(|| Err(closed())));
        }
    }
    closers
}
