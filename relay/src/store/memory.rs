//! [`MemoryStore`]: the same tables as the redb store, in ordered maps behind one mutex.

use std::collections::BTreeMap;

use crate::id_map::IdMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use passage_wire::{QUEUE_ID_LEN, RecipientId, SenderId};

use super::index::{Entry, QueueIndex};
use super::write_behind::{Change, Durable, Row, RowKey, WriteBehind, store_by_write_behind};
use super::{QueueRecord, StorageFault, StoredMessage};

type Id = [u8; QUEUE_ID_LEN];

/// An in-memory [`Store`](super::Store) with the same semantics as
/// [`RedbStore`](super::RedbStore) (the same code over other tables), for tests and for
/// fuzzing the relay's state machine. Nothing survives a drop.
///
/// [`set_failing`](Self::set_failing) makes every call fail with
/// [`StorageFault::Injected`], to test how the relay handles a broken disk.
pub struct MemoryStore {
    inner: WriteBehind<MemoryTables>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: WriteBehind::new(MemoryTables::default(), IdMap::default()),
        }
    }
}

impl core::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MemoryStore { .. }")
    }
}

/// Mirrors the redb tables (see `codec`): same keys, same order.
#[derive(Default)]
struct MemoryTables {
    rows: Mutex<Rows>,
    failing: AtomicBool,
}

#[derive(Default)]
struct Rows {
    queues: IdMap<Id, QueueRecord>,
    senders: IdMap<Id, RecipientId>,
    messages: BTreeMap<(Id, u64), StoredMessage>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// While `failing` is true, every read, apply and write fails with
    /// [`StorageFault::Injected`] and changes nothing (a failed write discards what was
    /// applied and not yet written, as a broken disk would).
    pub fn set_failing(&self, failing: bool) {
        self.inner
            .backend()
            .failing
            .store(failing, Ordering::SeqCst);
    }
}

store_by_write_behind!(MemoryStore, inner);

#[cfg(test)]
impl MemoryStore {
    /// Rows held back from the disk, acknowledged ones not yet forgotten included.
    pub(crate) fn held_entries(&self) -> usize {
        self.inner.held_entries()
    }
}

impl MemoryTables {
    fn rows(&self) -> Result<MutexGuard<'_, Rows>, StorageFault> {
        self.check()?;
        // Nothing under this lock panics (the lints forbid it), so a poisoned lock can only
        // come from a test's own panic; the data behind it is still usable.
        Ok(self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Durable for MemoryTables {
    fn check(&self) -> Result<(), StorageFault> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StorageFault::Injected);
        }
        Ok(())
    }

    fn queue(&self, rid: &RecipientId) -> Result<Option<QueueRecord>, StorageFault> {
        Ok(self.rows()?.queues.get(rid.as_bytes()).cloned())
    }

    fn sender(&self, sid: &SenderId) -> Result<Option<RecipientId>, StorageFault> {
        Ok(self.rows()?.senders.get(sid.as_bytes()).copied())
    }

    fn messages(
        &self,
        rid: &RecipientId,
        seqs: &[u64],
    ) -> Result<Vec<(u64, StoredMessage)>, StorageFault> {
        let rows = self.rows()?;
        let id = *rid.as_bytes();
        Ok(seqs
            .iter()
            .filter_map(|&seq| rows.messages.get(&(id, seq)).map(|m| (seq, m.clone())))
            .collect())
    }

    fn write(&self, changes: &[(&RowKey, &Change)]) -> Result<(), StorageFault> {
        let mut rows = self.rows()?;
        for (key, change) in changes {
            match (key, change) {
                (
                    RowKey::Queue(id),
                    Change::Put {
                        row: Row::Queue(record),
                        ..
                    },
                ) => {
                    rows.queues.insert(*id, QueueRecord::clone(record));
                }
                (
                    RowKey::Sender(id),
                    Change::Put {
                        row: Row::Sender(rid),
                        ..
                    },
                ) => {
                    rows.senders.insert(*id, *rid);
                }
                (
                    RowKey::Message(id, seq),
                    Change::Put {
                        row: Row::Message(message),
                        ..
                    },
                ) => {
                    rows.messages
                        .insert((*id, *seq), StoredMessage::clone(message));
                }
                (RowKey::Queue(id), Change::Delete { .. }) => {
                    rows.queues.remove(id);
                }
                (RowKey::Sender(id), Change::Delete { .. }) => {
                    rows.senders.remove(id);
                }
                (RowKey::Message(id, seq), Change::Delete { .. }) => {
                    rows.messages.remove(&(*id, *seq));
                }
                _ => {
                    return Err(StorageFault::Corrupt {
                        what: "pending row",
                    });
                }
            }
        }
        Ok(())
    }

    fn load(&self) -> Result<IdMap<RecipientId, QueueIndex>, StorageFault> {
        let rows = self.rows()?;
        let mut queues: IdMap<RecipientId, QueueIndex> = rows
            .queues
            .values()
            .map(|r| (r.recipient_id, QueueIndex::new(r)))
            .collect();
        for ((id, seq), message) in &rows.messages {
            if let Some(queue) = queues.get_mut(&RecipientId::from_bytes(*id)) {
                queue.entries.push_back(Entry {
                    seq: *seq,
                    msg_id: message.msg_id,
                    received_at: message.received_at,
                });
                queue.next_seq = queue.next_seq.max(seq.saturating_add(1));
            }
        }
        Ok(queues)
    }

    fn bytes_on_disk(&self) -> Result<u64, StorageFault> {
        Ok(0)
    }
}
