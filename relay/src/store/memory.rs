//! [`MemoryStore`]: the same tables as the redb store, in ordered maps behind one mutex.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use passage_wire::{MsgId, QUEUE_ID_LEN, RecipientId, SenderId};

use super::index::Index;
use super::ops::{self, Tables};
use super::{
    QueueRecord, StorageFault, Store, StoreError, StoreStats, StoredMessage, WriteError, WriteOp,
    WriteOutcome, fail_all,
};

type Id = [u8; QUEUE_ID_LEN];

/// An in-memory [`Store`] with the same semantics as [`RedbStore`](super::RedbStore),
/// for tests and for fuzzing the relay's state machine. Nothing survives a drop.
///
/// [`set_failing`](Self::set_failing) makes every call fail with
/// [`StorageFault::Injected`], to test how the relay handles a broken disk.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryTables>,
    index: Index,
    failing: AtomicBool,
}

impl core::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MemoryStore { .. }")
    }
}

/// Mirrors the redb tables (see `codec`): same keys, same order.
#[derive(Default)]
struct MemoryTables {
    queues: HashMap<Id, QueueRecord>,
    senders: HashMap<Id, RecipientId>,
    messages: BTreeMap<(Id, u64), StoredMessage>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// While `failing` is true, every read and every commit fails with
    /// [`StorageFault::Injected`] and changes nothing.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StorageFault> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StorageFault::Injected);
        }
        Ok(())
    }

    fn tables(&self) -> Result<MutexGuard<'_, MemoryTables>, StorageFault> {
        self.check()?;
        // Nothing under this lock panics (the lints forbid it), so a poisoned lock can only
        // come from a test's own panic; the data behind it is still usable.
        Ok(self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The queue's first message with sequence number `from` or later.
    fn first_from(
        &self,
        recipient_id: &RecipientId,
        from: Option<u64>,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let tables = self.tables()?;
        let Some(from) = from else {
            return Ok(None);
        };
        let id = *recipient_id.as_bytes();
        Ok(tables
            .messages
            .range((id, from)..=(id, u64::MAX))
            .next()
            .map(|(_, m)| m.clone()))
    }
}

impl Store for MemoryStore {
    fn queue(&self, recipient_id: &RecipientId) -> Result<Option<QueueRecord>, StoreError> {
        let tables = self.tables()?;
        Ok(tables.queues.get(recipient_id.as_bytes()).cloned())
    }

    fn queue_by_sender(&self, sender_id: &SenderId) -> Result<Option<QueueRecord>, StoreError> {
        let tables = self.tables()?;
        Ok(tables
            .senders
            .get(sender_id.as_bytes())
            .and_then(|rid| tables.queues.get(rid.as_bytes()).cloned()))
    }

    fn first_message(
        &self,
        recipient_id: &RecipientId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let head = self
            .index
            .with(recipient_id, |q| q.entries.front().map(|e| e.seq));
        self.first_from(recipient_id, head.flatten())
    }

    fn message_after(
        &self,
        recipient_id: &RecipientId,
        msg_id: &MsgId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let next = self.index.with(recipient_id, |q| match q.position(msg_id) {
            Some(at) => q.entries.get(at.saturating_add(1)).map(|e| e.seq),
            None => q.entries.front().map(|e| e.seq),
        });
        self.first_from(recipient_id, next.flatten())
    }

    fn messages_from(
        &self,
        recipient_id: &RecipientId,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, StoredMessage)>, StoreError> {
        let tables = self.tables()?;
        let id = *recipient_id.as_bytes();
        Ok(tables
            .messages
            .range((id, from)..=(id, u64::MAX))
            .take(max)
            .map(|((_, seq), m)| (*seq, m.clone()))
            .collect())
    }

    fn has_message(&self, recipient_id: &RecipientId, msg_id: &MsgId) -> Result<bool, StoreError> {
        self.check()?;
        Ok(self
            .index
            .with(recipient_id, |q| q.position(msg_id).is_some())
            .unwrap_or(false))
    }

    fn message_count(&self, recipient_id: &RecipientId) -> Result<u64, StoreError> {
        self.check()?;
        Ok(self
            .index
            .with(recipient_id, |q| q.entries.len() as u64)
            .unwrap_or(0))
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.check()?;
        Ok(StoreStats {
            queues: self.index.queues(),
            messages: self.index.messages(),
            bytes_on_disk: 0,
        })
    }

    fn commit(&self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutcome, WriteError>> {
        let len = ops.len();
        let mut tables = match self.tables() {
            Ok(tables) => tables,
            Err(fault) => return fail_all(len, &fault),
        };
        // Ops check before they write, so applying them in place is safe; only a fault (which
        // this store never has mid-batch) would need the copy a transaction gives.
        let mut overlay = self.index.overlay();
        match ops::apply_batch(&mut *tables, &mut overlay, ops) {
            Ok(results) => {
                overlay.publish();
                results
            }
            Err(fault) => fail_all(len, &fault),
        }
    }
}

impl Tables for MemoryTables {
    fn put_queue(&mut self, record: &QueueRecord) -> Result<(), StorageFault> {
        self.queues
            .insert(*record.recipient_id.as_bytes(), record.clone());
        Ok(())
    }

    fn queue(&self, rid: &RecipientId) -> Result<Option<QueueRecord>, StorageFault> {
        Ok(self.queues.get(rid.as_bytes()).cloned())
    }

    fn remove_queue(&mut self, rid: &RecipientId) -> Result<(), StorageFault> {
        self.queues.remove(rid.as_bytes());
        Ok(())
    }

    fn sender_exists(&self, sid: &SenderId) -> Result<bool, StorageFault> {
        Ok(self.senders.contains_key(sid.as_bytes()))
    }

    fn put_sender(&mut self, sid: &SenderId, rid: &RecipientId) -> Result<(), StorageFault> {
        self.senders.insert(*sid.as_bytes(), *rid);
        Ok(())
    }

    fn remove_sender(&mut self, sid: &SenderId) -> Result<(), StorageFault> {
        self.senders.remove(sid.as_bytes());
        Ok(())
    }

    fn put_message(
        &mut self,
        rid: &RecipientId,
        seq: u64,
        message: &StoredMessage,
    ) -> Result<(), StorageFault> {
        self.messages
            .insert((*rid.as_bytes(), seq), message.clone());
        Ok(())
    }

    fn remove_message(&mut self, rid: &RecipientId, seq: u64) -> Result<(), StorageFault> {
        self.messages.remove(&(*rid.as_bytes(), seq));
        Ok(())
    }
}
