//! [`MemoryStore`]: the same tables as the redb store, in ordered maps behind one mutex.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use passage_wire::ids::MSG_ID_LEN;
use passage_wire::{MsgId, QUEUE_ID_LEN, RecipientId, SenderId};

use super::codec::{MsgEntry, QueueState};
use super::ops::{self, Tables};
use super::{
    QueueRecord, StorageFault, Store, StoreError, StoreStats, StoredMessage, WriteError, WriteOp,
    WriteOutcome, fail_all,
};

type Id = [u8; QUEUE_ID_LEN];
type MsgIdBytes = [u8; MSG_ID_LEN];

/// An in-memory [`Store`] with the same semantics as [`RedbStore`](super::RedbStore),
/// for tests and for fuzzing the relay's state machine. Nothing survives a drop.
///
/// [`set_failing`](Self::set_failing) makes every call fail with
/// [`StorageFault::Injected`], to test how the relay handles a broken disk.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryTables>,
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
    states: HashMap<Id, QueueState>,
    senders: HashMap<Id, RecipientId>,
    messages: BTreeMap<(Id, u64), StoredMessage>,
    msg_ids: BTreeMap<(Id, MsgIdBytes), MsgEntry>,
    expiry: BTreeMap<(u64, Id, u64), MsgId>,
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

    fn tables(&self) -> Result<MutexGuard<'_, MemoryTables>, StorageFault> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StorageFault::Injected);
        }
        // Nothing under this lock panics (the lints forbid it), so a poisoned lock can only
        // come from a test's own panic; the data behind it is still usable.
        Ok(self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn record(tables: &MemoryTables, rid: &RecipientId) -> Option<QueueRecord> {
        let mut record = tables.queues.get(rid.as_bytes())?.clone();
        record.sender_auth_key = tables
            .states
            .get(rid.as_bytes())
            .and_then(|s| s.sender_auth_key);
        Some(record)
    }
}

impl Store for MemoryStore {
    fn queue(&self, recipient_id: &RecipientId) -> Result<Option<QueueRecord>, StoreError> {
        let tables = self.tables()?;
        Ok(Self::record(&tables, recipient_id))
    }

    fn queue_by_sender(&self, sender_id: &SenderId) -> Result<Option<QueueRecord>, StoreError> {
        let tables = self.tables()?;
        Ok(tables
            .senders
            .get(sender_id.as_bytes())
            .and_then(|rid| Self::record(&tables, rid)))
    }

    fn first_message(
        &self,
        recipient_id: &RecipientId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let tables = self.tables()?;
        Ok(tables.first_from(recipient_id, 0))
    }

    fn message_after(
        &self,
        recipient_id: &RecipientId,
        msg_id: &MsgId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let tables = self.tables()?;
        let id = *recipient_id.as_bytes();
        let from = tables
            .msg_ids
            .get(&(id, *msg_id.as_bytes()))
            .map_or(0, |entry| entry.seq.saturating_add(1));
        Ok(tables.first_from(recipient_id, from))
    }

    fn has_message(&self, recipient_id: &RecipientId, msg_id: &MsgId) -> Result<bool, StoreError> {
        let tables = self.tables()?;
        Ok(tables
            .msg_ids
            .contains_key(&(*recipient_id.as_bytes(), *msg_id.as_bytes())))
    }

    fn message_count(&self, recipient_id: &RecipientId) -> Result<u64, StoreError> {
        let tables = self.tables()?;
        Ok(tables
            .states
            .get(recipient_id.as_bytes())
            .map_or(0, |s| s.count))
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let tables = self.tables()?;
        Ok(StoreStats {
            queues: tables.queues.len() as u64,
            messages: tables.messages.len() as u64,
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
        match ops::apply_batch(&mut *tables, ops) {
            Ok(results) => results,
            Err(fault) => fail_all(len, &fault),
        }
    }
}

impl MemoryTables {
    /// The queue's first message with sequence number `from` or later.
    fn first_from(&self, recipient_id: &RecipientId, from: u64) -> Option<StoredMessage> {
        let id = *recipient_id.as_bytes();
        self.messages
            .range((id, from)..=(id, u64::MAX))
            .next()
            .map(|(_, m)| m.clone())
    }
}

impl Tables for MemoryTables {
    fn queue_sender(&self, rid: &RecipientId) -> Result<Option<SenderId>, StorageFault> {
        Ok(self.queues.get(rid.as_bytes()).map(|r| r.sender_id))
    }

    fn put_queue(&mut self, record: &QueueRecord) -> Result<(), StorageFault> {
        let mut record = record.clone();
        // The sender key lives in the state, as on disk.
        record.sender_auth_key = None;
        self.queues.insert(*record.recipient_id.as_bytes(), record);
        Ok(())
    }

    fn remove_queue(&mut self, rid: &RecipientId) -> Result<(), StorageFault> {
        self.queues.remove(rid.as_bytes());
        Ok(())
    }

    fn state(&self, rid: &RecipientId) -> Result<Option<QueueState>, StorageFault> {
        Ok(self.states.get(rid.as_bytes()).copied())
    }

    fn put_state(&mut self, rid: &RecipientId, state: &QueueState) -> Result<(), StorageFault> {
        self.states.insert(*rid.as_bytes(), *state);
        Ok(())
    }

    fn remove_state(&mut self, rid: &RecipientId) -> Result<(), StorageFault> {
        self.states.remove(rid.as_bytes());
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

    fn msg_entry(
        &self,
        rid: &RecipientId,
        msg_id: &MsgId,
    ) -> Result<Option<MsgEntry>, StorageFault> {
        Ok(self
            .msg_ids
            .get(&(*rid.as_bytes(), *msg_id.as_bytes()))
            .copied())
    }

    fn queue_entries(&self, rid: &RecipientId) -> Result<Vec<(MsgId, MsgEntry)>, StorageFault> {
        let id = *rid.as_bytes();
        let range = (id, [0u8; MSG_ID_LEN])..=(id, [0xffu8; MSG_ID_LEN]);
        Ok(self
            .msg_ids
            .range(range)
            .map(|((_, m), e)| (MsgId::from_bytes(*m), *e))
            .collect())
    }

    fn put_message(
        &mut self,
        rid: &RecipientId,
        seq: u64,
        message: &StoredMessage,
    ) -> Result<(), StorageFault> {
        let id = *rid.as_bytes();
        self.messages.insert((id, seq), message.clone());
        self.msg_ids.insert(
            (id, *message.msg_id.as_bytes()),
            MsgEntry {
                seq,
                received_at: message.received_at,
            },
        );
        self.expiry
            .insert((message.received_at, id, seq), message.msg_id);
        Ok(())
    }

    fn remove_message(
        &mut self,
        rid: &RecipientId,
        msg_id: &MsgId,
        entry: MsgEntry,
    ) -> Result<(), StorageFault> {
        let id = *rid.as_bytes();
        self.messages.remove(&(id, entry.seq));
        self.msg_ids.remove(&(id, *msg_id.as_bytes()));
        self.expiry.remove(&(entry.received_at, id, entry.seq));
        Ok(())
    }

    fn expired(
        &self,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(RecipientId, MsgId, MsgEntry)>, StorageFault> {
        Ok(self
            .expiry
            .range(..(before, [0u8; QUEUE_ID_LEN], 0))
            .take(limit)
            .map(|((received_at, id, seq), msg_id)| {
                (
                    RecipientId::from_bytes(*id),
                    *msg_id,
                    MsgEntry {
                        seq: *seq,
                        received_at: *received_at,
                    },
                )
            })
            .collect())
    }
}
