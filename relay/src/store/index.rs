//! The in-memory index both stores keep next to their tables: per queue, its sender id, its
//! recipient and sender auth keys, its next sequence number and, in arrival order, the id,
//! sequence number and arrival time of every message it holds; and the sender id → queue
//! map.
//!
//! It holds nothing the tables do not (a [`RedbStore`](super::RedbStore) rebuilds it at open
//! from its `queues` and `messages` tables), so a commit writes each message once, to one
//! table: the counters, the id → sequence number lookup of `ACK` and the arrival times of
//! retention cost no disk writes. What it costs instead is memory: about 40 bytes per
//! stored message and about 250 per queue (with its hash table slots).
//!
//! It also answers, without reading the file, which keys authenticate a queue's commands
//! ([`Index::keys`], [`Index::keys_by_sender`]): a command for a queue that exists and one
//! for a queue that does not take the same path up to the MAC check (a hash-map lookup,
//! then one key derivation), so the time of an `ERR AUTH` does not tell them apart.
//!
//! Only one batch at a time changes it: an op works on an [`Overlay`] (copies of the queues
//! it touches), and the overlay replaces those queues in the index once the whole batch
//! has been applied, so readers never see half a batch. The index runs ahead of the disk
//! (see the `write_behind` module): it shows a batch as soon as it is applied.

use std::collections::VecDeque;

use crate::id_map::IdMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use passage_crypto::primitives::DhPublic;
use passage_wire::{MsgId, QUEUE_ID_LEN, RecipientId, SenderId};

use super::QueueRecord;
use super::capacity::Usage;

/// What authenticates a queue's commands, as the index has it (public keys only).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct QueueKeys {
    /// The queue.
    pub recipient_id: RecipientId,
    /// Checks the recipient's commands.
    pub recipient_auth_key: DhPublic,
    /// Checks `SEND`s, once the first one fixed it.
    pub sender_auth_key: Option<DhPublic>,
}

impl core::fmt::Debug for QueueKeys {
    // Ids and keys link a person's traffic: none of them.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QueueKeys")
            .field("sender_key_fixed", &self.sender_auth_key.is_some())
            .finish_non_exhaustive()
    }
}

/// One stored message as the index knows it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Entry {
    /// Its key in the queue (arrival order, never reused while the queue holds messages).
    pub seq: u64,
    /// The relay's id for it.
    pub msg_id: MsgId,
    /// Its arrival time, unix seconds.
    pub received_at: u64,
}

/// One queue as the index knows it.
#[derive(Debug)]
pub(crate) struct QueueIndex {
    /// The queue's sender id (to drop it from the sender table with the queue).
    pub sender_id: SenderId,
    /// The key that authenticates the recipient's commands.
    pub recipient_auth_key: DhPublic,
    /// The key fixed by the first `SEND`, if any.
    pub sender_key: Option<DhPublic>,
    /// Sequence number of the next message.
    pub next_seq: u64,
    /// The queue's messages, oldest first (ascending `seq`).
    pub entries: VecDeque<Entry>,
    /// The queue's record on disk did not decode: every op on it is a fault.
    pub damaged: bool,
}

impl Clone for QueueIndex {
    /// A copy with room for a few more entries: a batch copies the queues it changes
    /// (see [`Overlay::queue`]), and an `Append` then adds one, which would otherwise
    /// reallocate the copy at once.
    fn clone(&self) -> Self {
        let mut entries = VecDeque::with_capacity(self.entries.len() + CLONE_HEADROOM);
        entries.extend(self.entries.iter().copied());
        Self {
            sender_id: self.sender_id,
            recipient_auth_key: self.recipient_auth_key,
            sender_key: self.sender_key,
            next_seq: self.next_seq,
            entries,
            damaged: self.damaged,
        }
    }
}

/// Spare entries in a copied queue.
const CLONE_HEADROOM: usize = 4;

impl QueueIndex {
    /// A new, empty queue with the keys of its record.
    pub fn new(record: &QueueRecord) -> Self {
        Self {
            sender_id: record.sender_id,
            recipient_auth_key: record.recipient_auth_key,
            sender_key: record.sender_auth_key,
            next_seq: 0,
            entries: VecDeque::new(),
            damaged: false,
        }
    }

    /// A queue whose record on disk does not decode: no keys, every op on it a fault.
    pub fn damaged() -> Self {
        Self {
            sender_id: SenderId::from_bytes([0; QUEUE_ID_LEN]),
            recipient_auth_key: DhPublic::from_bytes([0; 32]),
            sender_key: None,
            next_seq: 0,
            entries: VecDeque::new(),
            damaged: true,
        }
    }

    /// The keys its commands are authenticated with; none for a damaged queue.
    fn keys(&self, recipient_id: RecipientId) -> Option<QueueKeys> {
        (!self.damaged).then_some(QueueKeys {
            recipient_id,
            recipient_auth_key: self.recipient_auth_key,
            sender_auth_key: self.sender_key,
        })
    }

    /// Where a message sits, by its id (a scan of at most the queue's quota).
    pub fn position(&self, msg_id: &MsgId) -> Option<usize> {
        self.entries.iter().position(|e| e.msg_id == *msg_id)
    }
}

/// The index: every queue by recipient id, the queues by sender id, and the number of
/// messages over all of them.
#[derive(Debug, Default)]
pub(crate) struct Index {
    maps: RwLock<Maps>,
    messages: AtomicU64,
}

/// The two maps, changed together under one lock.
#[derive(Debug, Default)]
struct Maps {
    queues: IdMap<RecipientId, QueueIndex>,
    /// Sender id → the queue's keys, for every queue that is not damaged: a `SEND`'s
    /// keys in one lookup, whose cost hardly depends on whether the id is there (a
    /// second lookup, in `queues`, only for ids that are would show in the time).
    senders: IdMap<SenderId, QueueKeys>,
}

impl Maps {
    fn from_queues(queues: IdMap<RecipientId, QueueIndex>) -> Self {
        let senders = queues
            .iter()
            .filter_map(|(rid, q)| Some((q.sender_id, q.keys(*rid)?)))
            .collect();
        Self { queues, senders }
    }
}

impl Index {
    /// An index over `queues` (built at open).
    pub fn from_queues(queues: IdMap<RecipientId, QueueIndex>) -> Self {
        let messages = queues.values().map(|q| q.entries.len() as u64).sum();
        Self {
            maps: RwLock::new(Maps::from_queues(queues)),
            messages: AtomicU64::new(messages),
        }
    }

    /// Reads one queue's entry.
    pub fn with<R>(&self, rid: &RecipientId, f: impl FnOnce(&QueueIndex) -> R) -> Option<R> {
        self.read().queues.get(rid).map(f)
    }

    /// The keys of a queue, by recipient id: one hash-map lookup, no file read.
    pub fn keys(&self, rid: &RecipientId) -> Option<QueueKeys> {
        self.read().queues.get(rid).and_then(|q| q.keys(*rid))
    }

    /// The keys of a queue, by sender id: one hash-map lookup, no file read.
    pub fn keys_by_sender(&self, sid: &SenderId) -> Option<QueueKeys> {
        self.read().senders.get(sid).copied()
    }

    /// The sequence numbers of up to `max` of a queue's messages, from `from` on.
    pub fn seqs_from(&self, rid: &RecipientId, from: u64, max: usize) -> Vec<u64> {
        self.with(rid, |q| {
            let start = q.entries.partition_point(|e| e.seq < from);
            q.entries.range(start..).take(max).map(|e| e.seq).collect()
        })
        .unwrap_or_default()
    }

    /// Replaces every queue with `queues` (as the disk has them, after changes not yet
    /// durable were discarded). A queue that was and is still there keeps the higher of its
    /// two next sequence numbers: subscriptions' cursors must never see a number reused.
    pub fn replace(&self, mut queues: IdMap<RecipientId, QueueIndex>) {
        let mut current = self.write();
        for (rid, queue) in &mut queues {
            if let Some(old) = current.queues.get(rid) {
                queue.next_seq = queue.next_seq.max(old.next_seq);
            }
        }
        let messages = queues.values().map(|q| q.entries.len() as u64).sum();
        *current = Maps::from_queues(queues);
        self.messages.store(messages, Ordering::Relaxed);
    }

    /// Number of queues.
    pub fn queues(&self) -> u64 {
        self.read().queues.len() as u64
    }

    /// Number of messages over all queues.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// A fresh overlay for one batch.
    pub fn overlay(&self) -> Overlay<'_> {
        Overlay {
            index: self,
            changed: IdMap::default(),
            added_queues: 0,
            added_messages: 0,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Maps> {
        // Nothing panics while holding the lock; a poisoned lock still holds whole maps.
        self.maps.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The queues one batch changed, over the index as it was before the batch. Dropped
/// without [`publish`](Self::publish) (the batch failed), it changes nothing.
#[derive(Debug)]
pub(crate) struct Overlay<'a> {
    index: &'a Index,
    /// `None`: deleted in this batch.
    changed: IdMap<RecipientId, Option<QueueIndex>>,
    /// Queues and messages this batch added (removals are not subtracted: a limit checked
    /// against this errs on the side of refusing).
    added_queues: u64,
    added_messages: u64,
}

impl Overlay<'_> {
    /// The queue as this batch sees it, to change (copied from the index on first use).
    pub fn queue(&mut self, rid: &RecipientId) -> Option<&mut QueueIndex> {
        if !self.changed.contains_key(rid) {
            let base = self.index.read().queues.get(rid).cloned()?;
            self.changed.insert(*rid, Some(base));
        }
        self.changed.get_mut(rid).and_then(Option::as_mut)
    }

    /// Whether the queue exists as this batch sees it.
    pub fn exists(&self, rid: &RecipientId) -> bool {
        match self.changed.get(rid) {
            Some(queue) => queue.is_some(),
            None => self.index.read().queues.contains_key(rid),
        }
    }

    /// Adds a queue.
    pub fn insert(&mut self, rid: RecipientId, queue: QueueIndex) {
        self.added_queues = self.added_queues.saturating_add(1);
        self.changed.insert(rid, Some(queue));
    }

    /// Counts a message appended by this batch (for [`usage`](Self::usage)).
    pub fn count_appended(&mut self) {
        self.added_messages = self.added_messages.saturating_add(1);
    }

    /// Queues and messages as the index held them before the batch, with what the batch
    /// added so far.
    pub fn usage(&self) -> Usage {
        Usage {
            queues: self.index.queues().saturating_add(self.added_queues),
            messages: self.index.messages().saturating_add(self.added_messages),
        }
    }

    /// Removes a queue.
    pub fn remove(&mut self, rid: RecipientId) {
        self.changed.insert(rid, None);
    }

    /// Every message received before `before`, as this batch sees the queues, at most
    /// `limit` of them: (queue, sequence number). A scan of the index in memory.
    pub fn expired(&self, before: u64, limit: usize) -> Vec<(RecipientId, u64)> {
        let mut found = Vec::new();
        let mut visit = |rid: &RecipientId, queue: &QueueIndex| {
            // A damaged queue's messages stay until the damage is dealt with.
            if queue.damaged {
                return;
            }
            for entry in &queue.entries {
                if found.len() >= limit {
                    return;
                }
                if entry.received_at < before {
                    found.push((*rid, entry.seq));
                }
            }
        };
        for (rid, queue) in &self.changed {
            if let Some(queue) = queue {
                visit(rid, queue);
            }
        }
        for (rid, queue) in self.index.read().queues.iter() {
            if !self.changed.contains_key(rid) {
                visit(rid, queue);
            }
        }
        found
    }

    /// Makes the batch's changes visible to readers: call once the whole batch is applied.
    pub fn publish(self) {
        if self.changed.is_empty() {
            return;
        }
        let mut maps = self.index.write();
        let maps = &mut *maps;
        let mut messages = self.index.messages();
        for (rid, queue) in self.changed {
            let old = match queue {
                Some(queue) => {
                    messages = messages.saturating_add(queue.entries.len() as u64);
                    // Inserted again with each change (the sender key fixed).
                    if let Some(keys) = queue.keys(rid) {
                        maps.senders.insert(queue.sender_id, keys);
                    }
                    maps.queues.insert(rid, queue)
                }
                None => {
                    let old = maps.queues.remove(&rid);
                    if let Some(old) = &old
                        && maps
                            .senders
                            .get(&old.sender_id)
                            .is_some_and(|keys| keys.recipient_id == rid)
                    {
                        maps.senders.remove(&old.sender_id);
                    }
                    old
                }
            };
            if let Some(old) = old {
                messages = messages.saturating_sub(old.entries.len() as u64);
            }
        }
        self.index.messages.store(messages, Ordering::Relaxed);
    }
}
