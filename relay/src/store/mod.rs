//! The relay's durable state: queues, their sender index, and the messages waiting in them.
//!
//! ```text
//!  service tasks ──submit(op)──▶ GroupCommitter ─ apply thread ──apply(batch)──▶ dyn Store
//!        │                      (answers each op    commit thread ──persist()──▶  │ index + rows
//!        │                       when it is due)                                 ▼ not yet written
//!        └── queue / messages_from / message_count / stats ─────────────────▶ RedbStore (default)
//!                                                                              MemoryStore (tests)
//! ```
//!
//! Reads go straight to the [`Store`]; every change is a [`WriteOp`], applied in memory in
//! batches ([`Store::apply`]: readers see it at once) and written behind ([`Store::persist`]:
//! one transaction and one fsync for everything applied meanwhile). The service does not
//! call these itself but [`GroupCommitter::submit`], which gathers the writes of many
//! connections into one batch, and answers each writer only when its op is settled (see
//! [`WaitFor`]): once durable, or for a held message, once its recipient acknowledged it —
//! so a burst of `SEND`s costs one fsync, and a message its recipient takes at once costs
//! none (DESIGN.md, "Storage and scale").
//!
//! Both stores are the same code (the private `write_behind` module) over another backend:
//! ops mean one thing (the private `ops` module) over the same in-memory index (the private
//! `index` module: counters, message ids and arrival times, rebuilt from the file at open),
//! so they cannot drift apart in what a quota, a sender key or an expiry means; one test
//! suite runs against both. A message costs one table write when it arrives and one delete
//! when it leaves — or nothing, if it leaves before it had to be written.
//!
//! # Quick start
//!
//! ```no_run
//! # async fn demo(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use passage_relay::store::{GroupCommitter, RedbStore, Store, WriteOp};
//! let store = Arc::new(RedbStore::open(dir.join("relay.redb"))?);
//! let committer = GroupCommitter::new(store.clone());
//! # let rid = passage_wire::RecipientId::from_bytes([1; 24]);
//! let outcome = committer.write(WriteOp::DeleteQueue { recipient_id: rid }).await;
//! committer.close().await;
//! # let _ = outcome;
//! # Ok(())
//! # }
//! ```
//!
//! # What the relay's disk holds
//!
//! Queue ids, the queue keys, **the relay's per-queue DH secret in the clear**, and the
//! end-to-end encrypted message bodies with their ids and arrival times. Whoever images the
//! disk can therefore, for queues that still exist, compute each queue's delivery key (and
//! so strip the relay's delivery re-encryption from traffic they also recorded and got out
//! of TLS) and the keys the relay checks senders' MACs with; the end-to-end encryption of
//! the bodies is not affected. Deleted queues and messages leave the file's live data at the
//! next commit, but freed pages are not overwritten until reused, so they may linger on
//! disk: the file is created readable by its owner only, and full-disk encryption of the
//! relay's data directory is what protects it against seizure.

mod capacity;
mod codec;
mod group_commit;
mod index;
mod memory;
mod ops;
mod redb_store;
#[cfg(test)]
mod tests;
mod write_behind;

use std::sync::Arc;

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_wire::{MsgId, RecipientId, SenderId};

pub use capacity::{StoreCapacity, free_disk_bytes};
pub use group_commit::{
    Callback, CommitCounters, GroupCommitter, HOLD, MAX_BATCH, OnApplied, UNPERSISTED_LIMIT,
    WRITE_QUEUE_CAPACITY,
};
pub use index::QueueKeys;
pub use memory::MemoryStore;
pub use redb_store::{OpenError, RedbStore};

/// One queue as the relay keeps it. Every field but `sender_auth_key` is fixed at `NEW`.
///
/// `Debug` shows none of the ids, keys or times: they link a person's traffic.
#[derive(Clone)]
pub struct QueueRecord {
    /// The id the recipient reads with.
    pub recipient_id: RecipientId,
    /// The id senders write with.
    pub sender_id: SenderId,
    /// The X25519 key that authenticates the recipient's commands.
    pub recipient_auth_key: DhPublic,
    /// The recipient's X25519 key for the delivery re-encryption.
    pub recipient_dh_key: DhPublic,
    /// The relay's X25519 secret for this queue (delivery re-encryption and the sender MAC).
    /// Zeroized in memory on drop, but **stored unencrypted on disk** (see the module doc).
    pub relay_dh_secret: DhSecret,
    /// The key that authenticates `SEND`s, fixed by the first one ([`WriteOp::Append`]).
    pub sender_auth_key: Option<DhPublic>,
    // No creation time: the relay has no use for it, and on a seized disk it would help
    // match a queue to an ISP's connection logs (SECURITY.md, "What the relay stores").
}

impl core::fmt::Debug for QueueRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QueueRecord")
            .field("sender_key_fixed", &self.sender_auth_key.is_some())
            .finish_non_exhaustive()
    }
}

/// One message waiting in a queue: exactly one end-to-end envelope.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The relay's id for it (acknowledged with `ACK`, nonce of the delivery encryption).
    pub msg_id: MsgId,
    /// When the relay accepted it, in unix seconds, rounded down to the relay's time
    /// granularity ([`Limits::time_granularity_secs`](crate::Limits::time_granularity_secs),
    /// an hour by default); retention counts from here.
    pub received_at: u64,
    /// The envelope, as the sender sent it.
    pub body: Box<[u8; ENVELOPE_LEN]>,
}

impl core::fmt::Debug for StoredMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StoredMessage { .. }")
    }
}

/// One change to the store. A batch of them goes to [`Store::commit`].
#[non_exhaustive]
pub enum WriteOp {
    /// Creates a queue. Fails with [`WriteError::DuplicateId`] if its recipient id or its
    /// sender id is already in use (by any queue), with [`WriteError::Full`] at a global
    /// limit. A `sender_auth_key` already set in the record is kept.
    CreateQueue(QueueRecord),
    /// Appends one message. If the queue has no sender key yet and `sender_key` is Some, fixes
    /// it atomically with the append; if the queue already has a sender key, `sender_key` must
    /// be None or equal to it, else the op fails with [`WriteError::SenderKeyMismatch`]. Fails
    /// with [`WriteError::Quota`] when the queue already holds `quota` messages,
    /// [`WriteError::NoQueue`] if it doesn't exist, [`WriteError::DuplicateId`] if the queue
    /// already holds a message with this id, [`WriteError::Full`] at a global limit. Checked
    /// in that order; a failed append changes nothing (not even the sender key).
    Append {
        /// The queue.
        recipient_id: RecipientId,
        /// The key that authenticated this `SEND`, to fix or to check.
        sender_key: Option<DhPublic>,
        /// The message.
        message: StoredMessage,
        /// The most messages the queue may hold, this one included.
        quota: usize,
        /// Whether the message may be held back from the disk for a while
        /// ([`WaitFor::Message`]): set when its recipient is online, so that it will likely
        /// be acknowledged soon and then never written. A message for a recipient who is
        /// away is written at once, so that its sender's `OK` does not wait.
        hold: bool,
    },
    /// Deletes one message (returns [`WriteOutcome::Acked`]; `found` is false if the queue
    /// holds no message with this id). Fails with [`WriteError::NoQueue`] if the queue is gone.
    Ack {
        /// The queue.
        recipient_id: RecipientId,
        /// The message to delete.
        msg_id: MsgId,
    },
    /// Deletes a queue, its sender index entry and all its messages (returns
    /// [`WriteOutcome::Deleted`]; `found` is false if there was no such queue).
    DeleteQueue {
        /// The queue.
        recipient_id: RecipientId,
    },
    /// Deletes every message with `received_at < received_before`, in every queue
    /// (retention); returns [`WriteOutcome::Expired`]. It finds them in the in-memory index
    /// (a scan of memory, about 40 bytes per stored message) and writes only the deletions.
    Expire {
        /// The cut-off, in unix seconds (exclusive).
        received_before: u64,
    },
}

impl core::fmt::Debug for WriteOp {
    // Only the kind of operation: ids, keys and bodies stay out of logs.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            WriteOp::CreateQueue(_) => "WriteOp::CreateQueue(..)",
            WriteOp::Append { .. } => "WriteOp::Append { .. }",
            WriteOp::Ack { .. } => "WriteOp::Ack { .. }",
            WriteOp::DeleteQueue { .. } => "WriteOp::DeleteQueue { .. }",
            WriteOp::Expire { .. } => "WriteOp::Expire { .. }",
        })
    }
}

/// What a successful [`WriteOp`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteOutcome {
    /// The queue was created.
    Created,
    /// The message was appended (and the sender key fixed, if it was not yet).
    Appended,
    /// The ack was applied; `found` says whether the message was there.
    Acked {
        /// Whether the queue held the message.
        found: bool,
    },
    /// The delete was applied; `found` says whether the queue existed.
    Deleted {
        /// Whether the queue existed.
        found: bool,
    },
    /// Retention ran; `count` messages were deleted.
    Expired {
        /// How many messages were deleted.
        count: u64,
    },
}

/// Why one [`WriteOp`] was not applied. Every variant but `Storage` is the op's own failure
/// and leaves the rest of its batch untouched.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The queue does not exist (or was deleted earlier in the same batch).
    #[error("no such queue")]
    NoQueue,
    /// The queue already holds as many messages as its quota allows.
    #[error("the queue is full")]
    Quota,
    /// The queue's sender key is fixed and the op named another one.
    #[error("the queue's sender key is fixed to another key")]
    SenderKeyMismatch,
    /// A queue id (create) or message id (append) is already in use.
    #[error("the id is already in use")]
    DuplicateId,
    /// The store is at a global limit (queues, stored bytes, or the disk's free-space
    /// watermark, see [`StoreCapacity`]): nothing was added.
    #[error("the store is at its storage limit")]
    Full,
    /// The store failed; nothing of the batch was applied.
    #[error("storage failure")]
    Storage(#[source] StorageFault),
}

/// Why a read failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store failed.
    #[error("storage failure")]
    Storage(#[from] StorageFault),
}

/// A failure of the storage itself (not of an operation's preconditions). Carries no ids,
/// keys or message bytes.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StorageFault {
    /// The database engine failed (I/O error, full disk, …); the source says how. The relay
    /// should answer `ERR` and may retry; if it persists, the disk needs attention.
    #[error("the database engine failed")]
    Engine(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// A stored record failed to decode: the file was damaged or altered.
    #[error("a stored {what} record is damaged")]
    Corrupt {
        /// Which kind of record.
        what: &'static str,
    },
    /// The store or its committer has shut down (or its commit thread died).
    #[error("the store is closed")]
    Closed,
    /// [`MemoryStore::set_failing`] is on: a failure made on purpose, for tests.
    #[error("storage failure injected by a test")]
    Injected,
}

impl StorageFault {
    pub(crate) fn engine(error: impl Into<redb::Error>) -> Self {
        StorageFault::Engine(Arc::new(error.into()))
    }
}

/// How much the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Number of queues.
    pub queues: u64,
    /// Number of messages waiting, over all queues.
    pub messages: u64,
    /// Disk space the store's file takes (0 for [`MemoryStore`]): on unix the blocks
    /// allocated to it, which is less than its length, since redb grows the file by doubling
    /// it without writing the new half. Space freed by deletions is reused rather than given
    /// back, so this follows the high-water mark of what was stored (about 4.5 KB per
    /// message, see `benches/store.rs`).
    pub bytes_on_disk: u64,
}

/// The relay's storage: reads, and batches of writes applied in one durable transaction.
///
/// Reads see every batch [`apply`](Self::apply) has returned, durable or not.
/// Implementations are shared between tasks (`Arc<dyn Store>`); `persist` blocks for an
/// fsync (and `apply` may read the disk), so async code calls them only through
/// [`GroupCommitter`] (or `spawn_blocking`).
pub trait Store: Send + Sync + 'static {
    /// The global limits that `CreateQueue` and `Append` check (see [`StoreCapacity`]):
    /// none until set.
    fn capacity(&self) -> Arc<StoreCapacity>;

    /// A queue, by its recipient id.
    fn queue(&self, recipient_id: &RecipientId) -> Result<Option<QueueRecord>, StoreError>;

    /// A queue, by its sender id (same cost as [`queue`](Self::queue)).
    fn queue_by_sender(&self, sender_id: &SenderId) -> Result<Option<QueueRecord>, StoreError>;

    /// The keys that authenticate a queue's commands, by recipient id, from the in-memory
    /// index: no read of the file, so a lookup of a queue that exists costs what a lookup
    /// of one that does not costs (the session authenticates with these, and reads the
    /// record only once a command verified). `None` for a missing or damaged queue.
    fn queue_keys(&self, recipient_id: &RecipientId) -> Result<Option<QueueKeys>, StoreError>;

    /// [`queue_keys`](Self::queue_keys), by sender id.
    fn queue_keys_by_sender(&self, sender_id: &SenderId) -> Result<Option<QueueKeys>, StoreError>;

    /// The oldest message of a queue (what `GET` answers). `None` if the queue is empty or does not exist.
    fn first_message(
        &self,
        recipient_id: &RecipientId,
    ) -> Result<Option<StoredMessage>, StoreError>;

    /// The first message of a queue that was stored after `msg_id` (the next one to
    /// deliver while the acknowledgement of `msg_id` is still being written). If `msg_id`
    /// is no longer in the queue, the same as [`first_message`](Self::first_message).
    fn message_after(
        &self,
        recipient_id: &RecipientId,
        msg_id: &MsgId,
    ) -> Result<Option<StoredMessage>, StoreError>;

    /// Up to `max` messages of a queue whose sequence numbers are `from` or above, oldest
    /// first, each with its sequence number; empty if there are none or the queue does not
    /// exist. One read for all of them. A subscription's delivery cursor: a queue's
    /// sequence numbers only grow while the relay runs (they may restart lower after a
    /// restart, when no subscription survives), so the next batch after a message with
    /// sequence number `s` starts at `s + 1`. Costs no read of the file if the in-memory
    /// index has no such message. Shared bodies: a message not yet written is served from
    /// memory without a copy.
    fn messages_from(
        &self,
        recipient_id: &RecipientId,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, Arc<StoredMessage>)>, StoreError>;

    /// Whether a message is still in the queue (an index lookup; no body is read).
    fn has_message(&self, recipient_id: &RecipientId, msg_id: &MsgId) -> Result<bool, StoreError>;

    /// How many messages a queue holds (0 if it does not exist). Reads a counter, no scan.
    fn message_count(&self, recipient_id: &RecipientId) -> Result<u64, StoreError>;

    /// Totals over the whole store.
    fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Applies the ops in order, in memory, and returns the batch's number, one result per
    /// op, and what each op's answer waits for. Readers see the changes at once (a message
    /// can be delivered before it is on disk); a writer must not be told `OK` before what
    /// [`Applied::wait_for`] names. Each op sees the effects of the ops before it; an op's
    /// own failure (Quota, NoQueue, …) does not affect the others; a storage failure fails
    /// every op of the batch (every result is Err(Storage)) and applies none. Batches are
    /// numbered from 1 in the order they are applied.
    fn apply(&self, ops: Vec<WriteOp>) -> Applied;

    /// Writes every change applied so far and not yet durable, except the held messages
    /// ([`WaitFor::Message`]) of batches after `held_through`, in ONE transaction (one
    /// fsync), and returns once it is durable, or at once without a transaction if there
    /// is nothing to write: changes merge while they wait, so a message acknowledged before
    /// it was written costs no write at all. If the write fails, every change not yet
    /// durable is discarded, held ones included (reads show the disk's state again;
    /// sequence numbers still only grow), and the batches up to [`Persisted::lost_through`]
    /// must be answered with the fault. Writes run one at a time, in the order their changes
    /// were applied.
    fn persist(&self, held_through: u64) -> Persisted;

    /// [`apply`](Self::apply) then [`persist`](Self::persist) of everything: the ops are
    /// durable (or failed) when it returns. For callers with one batch at a time; the
    /// relay's service goes through [`GroupCommitter`], which overlaps the two.
    fn commit(&self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutcome, WriteError>> {
        let applied = self.apply(ops);
        match self.persist(u64::MAX).outcome(applied.batch) {
            Ok(()) => applied.results,
            Err(fault) => fail_all(applied.results.len(), &fault),
        }
    }
}

/// One op of one batch: (batch number, index of the op in the batch).
pub type OpRef = (u64, usize);

/// What the answer to an applied op must wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitFor {
    /// Nothing: the op failed, changed nothing, or changed only rows that never reached
    /// the disk (an `ACK` of a message not yet written). Its result is final at once.
    Nothing,
    /// An appended message, held back from the disk for a while because its recipient may
    /// acknowledge it first: then it is never written, and the sender may be told `OK`
    /// then (the recipient has it). Otherwise the answer waits until a persist writes it
    /// ([`Persisted::written`]).
    Message,
    /// The next persist that covers the batch ([`Persisted::through`]).
    Write,
}

/// What [`Store::apply`] did with a batch.
#[derive(Debug)]
pub struct Applied {
    /// The batch's number.
    pub batch: u64,
    /// One result per op, in order: final, unless the batch is lost (see [`Persisted`]).
    pub results: Vec<Result<WriteOutcome, WriteError>>,
    /// One per op: what its answer waits for.
    pub wait_for: Vec<WaitFor>,
    /// Held ops (of this batch or earlier ones) whose message this batch deleted before it
    /// was written: their answer is due now.
    pub released: Vec<OpRef>,
}

/// What [`Store::persist`] did.
#[derive(Debug, Clone)]
pub struct Persisted {
    /// The [`WaitFor::Write`] ops of every batch up to this number are settled: durable,
    /// unless lost (below).
    pub through: u64,
    /// Rows written by this call's transaction (0: there was nothing to write, no
    /// transaction, no fsync).
    pub rows: usize,
    /// Held ops whose message this call wrote: durable, unless lost.
    pub written: Vec<OpRef>,
    /// The batches up to this number were discarded by a failed write (0: none ever was).
    pub lost_through: u64,
    /// Why the latest failed write failed.
    pub fault: Option<StorageFault>,
}

impl Persisted {
    /// Whether batch `batch`'s settled ops are durable, or lost and why.
    pub fn outcome(&self, batch: u64) -> Result<(), StorageFault> {
        if batch <= self.lost_through {
            return Err(self.fault.clone().unwrap_or(StorageFault::Closed));
        }
        Ok(())
    }
}

/// The answer to a batch that failed as a whole: the same fault for every op.
pub(crate) fn fail_all(len: usize, fault: &StorageFault) -> Vec<Result<WriteOutcome, WriteError>> {
    (0..len)
        .map(|_| Err(WriteError::Storage(fault.clone())))
        .collect()
}
