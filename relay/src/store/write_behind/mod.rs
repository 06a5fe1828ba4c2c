//! Apply ahead, persist behind: the one implementation of [`Store`](super::Store) over a
//! [`Durable`] backend (the redb file, or the maps of the memory store).
//!
//! ```text
//!  apply(batch) ──▶ ops (checks on the index) ──▶ index + `dirty` rows   readers see it now
//!  persist()    ──▶ `dirty` becomes `writing` ──▶ backend.write (one transaction, fsync)
//!                                                  └─▶ `writing` emptied: the disk has it
//! ```
//!
//! A batch is applied in memory at once: the index takes its changes and the rows it
//! writes wait in `dirty`, so readers (delivery) see a message before it is on disk.
//! [`persist`](WriteBehind::persist) later writes every waiting row in one transaction;
//! only then may the writer be told `OK` (the committer sees to that). While they wait,
//! rows merge by key: a message acknowledged before its batch reached the disk is never
//! written at all (its put and its delete cancel), which spares the disk and leaves no
//! trace of it there.
//!
//! Rows being written stay readable in `writing` until the transaction is durable, so a
//! row is always in `dirty`, in `writing` or on disk. If a write fails, everything not yet
//! durable is discarded and the index is rebuilt from the disk, keeping every queue's
//! sequence numbers growing (a subscription's delivery cursor must not see a number
//! reused); the batches that were discarded are reported so their writers get the fault.

use std::collections::VecDeque;

use crate::id_map::IdMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use passage_wire::{MsgId, QUEUE_ID_LEN, RecipientId, SenderId};

mod delegate;
mod staged;

pub(crate) use delegate::store_by_write_behind;
use staged::Staged;

use super::capacity::StoreCapacity;
use super::index::{Index, QueueIndex, QueueKeys};
use super::ops;
use super::{
    Applied, OpRef, Persisted, QueueRecord, StorageFault, StoreError, StoreStats, StoredMessage,
    WaitFor, WriteOp, fail_all,
};

/// A row of one of the store's tables. Not `Debug`: it is made of ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum RowKey {
    /// `queues`, by recipient id.
    Queue([u8; QUEUE_ID_LEN]),
    /// `senders`, by sender id.
    Sender([u8; QUEUE_ID_LEN]),
    /// `messages`, by recipient id and sequence number (the order of the file's keys).
    Message([u8; QUEUE_ID_LEN], u64),
}

/// What a row holds.
pub(crate) enum Row {
    Queue(Box<QueueRecord>),
    Sender(RecipientId),
    Message(Arc<StoredMessage>),
}

/// The latest change of a row not yet durable.
pub(crate) enum Change {
    /// The row must hold this. `fresh`: the row is neither on disk nor being written, so
    /// a later delete needs no write. `held`: a message put held back from writes, and the
    /// op that put it (see [`WaitFor::Message`]).
    Put {
        row: Row,
        fresh: bool,
        held: Option<OpRef>,
    },
    /// The row must be gone. Inside a batch, `fresh` marks a delete of a row that never
    /// reached the disk: it only cancels the waiting put. `dirty` holds no fresh delete.
    Delete { fresh: bool },
}

impl Change {
    fn fresh(&self) -> bool {
        match self {
            Change::Put { fresh, .. } | Change::Delete { fresh } => *fresh,
        }
    }
}

type Changes = IdMap<RowKey, Change>;

/// Where the rows live for good: one durable transaction per [`write`](Self::write).
pub(crate) trait Durable: Send + Sync + 'static {
    /// Called before every read and apply; a backend that cannot serve fails it.
    fn check(&self) -> Result<(), StorageFault> {
        Ok(())
    }
    /// A queue's record as the disk holds it.
    fn queue(&self, rid: &RecipientId) -> Result<Option<QueueRecord>, StorageFault>;
    /// The queue a sender id belongs to, as the disk holds it.
    fn sender(&self, sid: &SenderId) -> Result<Option<RecipientId>, StorageFault>;
    /// Those of a queue's messages with these sequence numbers (ascending) that the disk
    /// holds, in order.
    fn messages(
        &self,
        rid: &RecipientId,
        seqs: &[u64],
    ) -> Result<Vec<(u64, StoredMessage)>, StorageFault>;
    /// Writes the rows, in key order, in one durable transaction: all or none.
    fn write(&self, rows: &[(&RowKey, &Change)]) -> Result<(), StorageFault>;
    /// The index as the disk has it (at open, and after a failed write).
    fn load(&self) -> Result<IdMap<RecipientId, QueueIndex>, StorageFault>;
    /// Disk space taken (see [`StoreStats::bytes_on_disk`]).
    fn bytes_on_disk(&self) -> Result<u64, StorageFault>;
}

/// The rows not yet durable, and the batch numbering.
#[derive(Default)]
struct Unwritten {
    /// Number of the last batch applied.
    applied: u64,
    /// Rows of applied batches that no write has taken yet.
    dirty: Changes,
    /// Message puts held back from writes until their batch is old enough (see
    /// [`WaitFor::Message`]); a row waits in `dirty` or here, not both.
    held: Changes,
    /// The held rows by batch, oldest first (a row may have left `held` since).
    held_order: VecDeque<(u64, RowKey)>,
    /// Rows of the write under way; readable until it is durable.
    writing: Arc<Changes>,
    /// Batches up to this number were discarded by a failed write.
    lost_through: u64,
    /// Why (the latest failed write).
    lost: Option<StorageFault>,
}

impl Unwritten {
    fn get(&self, key: &RowKey) -> Option<&Change> {
        self.waiting(key).or_else(|| self.writing.get(key))
    }

    /// The change of a row that no write has taken yet.
    fn waiting(&self, key: &RowKey) -> Option<&Change> {
        self.dirty.get(key).or_else(|| self.held.get(key))
    }

    /// Whether a row is neither on disk nor being written, as a new change to it must
    /// record. A row with a waiting change knows; otherwise only a put of a message can
    /// tell without a read: a message's key is new when it is put (sequence numbers only
    /// grow, and a queue id is free again only once its messages are deleted), so it is on
    /// disk only if a delete of the same key is being written. A delete of a row without a
    /// waiting change must be written.
    fn fresh(&self, key: &RowKey, put: bool) -> bool {
        match self.waiting(key) {
            Some(change) => change.fresh(),
            None => put && matches!(key, RowKey::Message(..)) && !self.writing.contains_key(key),
        }
    }

    fn report(&self, through: u64, rows: usize, written: Vec<OpRef>) -> Persisted {
        Persisted {
            through,
            rows,
            written,
            lost_through: self.lost_through,
            fault: self.lost.clone(),
        }
    }

    /// Takes the latest changes of one batch (see `Staged`); returns the held ops whose
    /// message they deleted before it was written (their answer is due now).
    fn merge(&mut self, local: Changes, released: &mut Vec<OpRef>) {
        for (key, change) in local {
            // A row waits in one place only: the new change replaces the old one.
            let old = self.dirty.remove(&key).or_else(|| self.held.remove(&key));
            if let Some(Change::Put { held: Some(op), .. }) = old {
                released.push(op);
            }
            match change {
                // Nothing ever reached the disk: nothing to write.
                Change::Delete { fresh: true } => {}
                Change::Put {
                    held: Some((batch, _)),
                    ..
                } => {
                    self.held_order.push_back((batch, key));
                    self.held.insert(key, change);
                }
                change => {
                    self.dirty.insert(key, change);
                }
            }
        }
        self.forget_gone_held();
    }

    /// Drops the entries at the front of `held_order` whose row is no longer held (it was
    /// acknowledged): without a write due, nothing else would, and with every recipient
    /// keeping up no write ever is. What stays behind the oldest held row is bounded: that
    /// row is written (and its entry dropped) once its hold ends.
    fn forget_gone_held(&mut self) {
        while let Some((batch, key)) = self.held_order.front() {
            let live = matches!(
                self.held.get(key),
                Some(Change::Put { held: Some((b, _)), .. }) if b == batch
            );
            if live {
                break;
            }
            self.held_order.pop_front();
        }
    }

    /// Entries of `held_order` (for tests: it must not grow while nothing is held).
    #[cfg(test)]
    pub(crate) fn held_entries(&self) -> usize {
        self.held_order.len()
    }

    /// Moves the held puts of batches up to `through` into `dirty`; returns their ops.
    fn release_held(&mut self, through: u64) -> Vec<OpRef> {
        let mut written = Vec::new();
        while let Some(&(batch, key)) = self.held_order.front() {
            if batch > through {
                break;
            }
            self.held_order.pop_front();
            // Gone if it was deleted meanwhile.
            if let Some(change) = self.held.remove(&key) {
                if let Change::Put { held: Some(op), .. } = &change {
                    written.push(*op);
                }
                self.dirty.insert(key, change);
            }
        }
        written
    }
}

/// The store's state: the backend, the index, and the rows waiting for the disk.
pub(crate) struct WriteBehind<B> {
    backend: B,
    index: Index,
    unwritten: Mutex<Unwritten>,
    /// Held while a batch is applied and while a failed write is undone: one at a time.
    applying: Mutex<()>,
    /// Held for a whole write: rows reach the disk in the order they were applied.
    persisting: Mutex<()>,
    /// The index could not be rebuilt after a failed write: every call tries again first,
    /// and fails while it cannot.
    stale: AtomicBool,
    /// The global limits the ops that add data check (none until set).
    capacity: Arc<StoreCapacity>,
}

/// Nothing panics while holding these locks; a poisoned one still guards whole data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Durable> WriteBehind<B> {
    /// The store over `backend`, whose index is `queues` (from [`Durable::load`]).
    pub fn new(backend: B, queues: IdMap<RecipientId, QueueIndex>) -> Self {
        Self {
            backend,
            index: Index::from_queues(queues),
            unwritten: Mutex::default(),
            applying: Mutex::default(),
            persisting: Mutex::default(),
            stale: AtomicBool::new(false),
            capacity: Arc::default(),
        }
    }

    /// The global limits (see [`StoreCapacity`]), to set and to share with the disk watch.
    pub fn capacity(&self) -> Arc<StoreCapacity> {
        Arc::clone(&self.capacity)
    }

    /// See `Unwritten::held_entries`.
    #[cfg(test)]
    pub(crate) fn held_entries(&self) -> usize {
        self.state().held_entries()
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    fn state(&self) -> MutexGuard<'_, Unwritten> {
        lock(&self.unwritten)
    }

    pub fn queue(&self, rid: &RecipientId) -> Result<Option<QueueRecord>, StoreError> {
        self.ready()?;
        Ok(self.queue_row(rid)?)
    }

    fn queue_row(&self, rid: &RecipientId) -> Result<Option<QueueRecord>, StorageFault> {
        match self.state().get(&RowKey::Queue(*rid.as_bytes())) {
            Some(Change::Put {
                row: Row::Queue(record),
                ..
            }) => return Ok(Some(QueueRecord::clone(record))),
            Some(_) => return Ok(None),
            None => {}
        }
        self.backend.queue(rid)
    }

    fn sender_row(&self, sid: &SenderId) -> Result<Option<RecipientId>, StorageFault> {
        match self.state().get(&RowKey::Sender(*sid.as_bytes())) {
            Some(Change::Put {
                row: Row::Sender(rid),
                ..
            }) => return Ok(Some(*rid)),
            Some(_) => return Ok(None),
            None => {}
        }
        self.backend.sender(sid)
    }

    pub fn queue_by_sender(&self, sid: &SenderId) -> Result<Option<QueueRecord>, StoreError> {
        self.ready()?;
        match self.sender_row(sid)? {
            Some(rid) => Ok(self.queue_row(&rid)?),
            None => Ok(None),
        }
    }

    pub fn queue_keys(&self, rid: &RecipientId) -> Result<Option<QueueKeys>, StoreError> {
        self.ready()?;
        Ok(self.index.keys(rid))
    }

    pub fn queue_keys_by_sender(&self, sid: &SenderId) -> Result<Option<QueueKeys>, StoreError> {
        self.ready()?;
        Ok(self.index.keys_by_sender(sid))
    }

    pub fn first_message(&self, rid: &RecipientId) -> Result<Option<StoredMessage>, StoreError> {
        Ok(self.messages_from(rid, 0, 1)?.pop().map(|(_, m)| owned(m)))
    }

    pub fn message_after(
        &self,
        rid: &RecipientId,
        msg_id: &MsgId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        self.ready()?;
        let next = self.index.with(rid, |q| match q.position(msg_id) {
            Some(at) => q.entries.get(at.saturating_add(1)).map(|e| e.seq),
            None => q.entries.front().map(|e| e.seq),
        });
        match next.flatten() {
            Some(seq) => Ok(self
                .messages_from(rid, seq, 1)?
                .pop()
                .map(|(_, m)| owned(m))),
            None => Ok(None),
        }
    }

    /// Bodies come from memory while not yet durable, else from one read of the disk.
    pub fn messages_from(
        &self,
        rid: &RecipientId,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, Arc<StoredMessage>)>, StoreError> {
        self.ready()?;
        let seqs = self.index.seqs_from(rid, from, max);
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let id = *rid.as_bytes();
        let mut found: Vec<(u64, Option<Arc<StoredMessage>>)> = Vec::with_capacity(seqs.len());
        let mut on_disk = Vec::new();
        {
            let state = self.state();
            for seq in seqs {
                match state.get(&RowKey::Message(id, seq)) {
                    Some(Change::Put {
                        row: Row::Message(message),
                        ..
                    }) => found.push((seq, Some(Arc::clone(message)))),
                    // Acknowledged meanwhile.
                    Some(_) => {}
                    None => {
                        found.push((seq, None));
                        on_disk.push(seq);
                    }
                }
            }
        }
        let mut read = if on_disk.is_empty() {
            Vec::new()
        } else {
            self.backend.messages(rid, &on_disk)?
        }
        .into_iter()
        .peekable();
        let mut messages = Vec::with_capacity(found.len());
        for (seq, message) in found {
            match message {
                Some(message) => messages.push((seq, message)),
                None => {
                    // A message not on disk either was acknowledged meanwhile: skipped.
                    while read.peek().is_some_and(|(s, _)| *s < seq) {
                        read.next();
                    }
                    if let Some((seq, message)) = read.next_if(|(s, _)| *s == seq) {
                        messages.push((seq, Arc::new(message)));
                    }
                }
            }
        }
        Ok(messages)
    }

    pub fn has_message(&self, rid: &RecipientId, msg_id: &MsgId) -> Result<bool, StoreError> {
        self.ready()?;
        Ok(self
            .index
            .with(rid, |q| q.position(msg_id).is_some())
            .unwrap_or(false))
    }

    pub fn message_count(&self, rid: &RecipientId) -> Result<u64, StoreError> {
        self.ready()?;
        Ok(self
            .index
            .with(rid, |q| q.entries.len() as u64)
            .unwrap_or(0))
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        self.ready()?;
        Ok(StoreStats {
            queues: self.index.queues(),
            messages: self.index.messages(),
            bytes_on_disk: self.backend.bytes_on_disk()?,
        })
    }

    /// Applies a batch in memory (see [`Store::apply`](super::Store::apply)).
    pub fn apply(&self, ops: Vec<WriteOp>) -> Applied {
        let len = ops.len();
        let _applying = lock(&self.applying);
        // Only this call changes it while `applying` is held.
        let batch = self.state().applied.saturating_add(1);
        let applied = self
            .backend
            .check()
            .and_then(|()| self.reload_if_stale())
            .and_then(|()| {
                let mut overlay = self.index.overlay();
                let mut tables = Staged::new(self, batch, len);
                let mut results = Vec::with_capacity(len);
                for (index, op) in ops.into_iter().enumerate() {
                    tables.begin(index);
                    results.push(ops::apply(&mut tables, &mut overlay, &self.capacity, op)?);
                    tables.end();
                }
                Ok((results, tables, overlay))
            });
        let mut state = self.state();
        state.applied = batch;
        match applied {
            Ok((results, tables, overlay)) => {
                let Staged {
                    local,
                    wait_for,
                    mut released,
                    ..
                } = tables;
                state.merge(local, &mut released);
                // After the rows: a reader that finds a message in the index finds its body.
                overlay.publish();
                Applied {
                    batch,
                    results,
                    wait_for,
                    released,
                }
            }
            Err(fault) => Applied {
                batch,
                results: fail_all(len, &fault),
                wait_for: vec![WaitFor::Nothing; len],
                released: Vec::new(),
            },
        }
    }

    /// Whether the store can serve: the backend works, and the index is rebuilt if a
    /// failed write left it stale.
    fn ready(&self) -> Result<(), StorageFault> {
        self.backend.check()?;
        if self.stale.load(Ordering::Acquire) {
            let _applying = lock(&self.applying);
            self.reload_if_stale()?;
        }
        Ok(())
    }

    /// After a failed write whose index could not be rebuilt: try again. The caller holds
    /// `applying`.
    fn reload_if_stale(&self) -> Result<(), StorageFault> {
        if self.stale.load(Ordering::Acquire) {
            let queues = self.backend.load()?;
            self.index.replace(queues);
            self.stale.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Writes every row not yet durable but the held messages of batches after
    /// `held_through` (see [`Store::persist`](super::Store::persist)).
    pub fn persist(&self, held_through: u64) -> Persisted {
        let _persisting = lock(&self.persisting);
        let (changes, through, written) = {
            let mut state = self.state();
            let written = state.release_held(held_through);
            if state.dirty.is_empty() {
                return state.report(state.applied, 0, written);
            }
            let changes = Arc::new(std::mem::take(&mut state.dirty));
            state.writing = Arc::clone(&changes);
            (changes, state.applied, written)
        };
        let mut rows: Vec<(&RowKey, &Change)> = changes.iter().collect();
        rows.sort_unstable_by_key(|(key, _)| **key);
        let outcome = self.backend.write(&rows);
        let count = rows.len();
        drop(rows);
        match outcome {
            Ok(()) => {
                let mut state = self.state();
                state.writing = Arc::default();
                state.report(through, count, written)
            }
            Err(fault) => self.discard(fault),
        }
    }

    /// Undoes everything not yet durable after a failed write.
    fn discard(&self, fault: StorageFault) -> Persisted {
        let _applying = lock(&self.applying);
        let mut state = self.state();
        state.dirty.clear();
        state.held.clear();
        state.held_order.clear();
        state.writing = Arc::default();
        state.lost_through = state.applied;
        state.lost = Some(fault);
        match self.backend.load() {
            Ok(queues) => self.index.replace(queues),
            Err(_) => self.stale.store(true, Ordering::Release),
        }
        state.report(state.applied, 0, Vec::new())
    }
}

/// A message out of its `Arc`, copied only if it is still shared.
fn owned(message: Arc<StoredMessage>) -> StoredMessage {
    Arc::try_unwrap(message).unwrap_or_else(|shared| StoredMessage::clone(&shared))
}
