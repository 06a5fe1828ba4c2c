//! Tests of the store: one suite for both stores (`suite`), redb durability and crash
//! safety (`durability`), the group committer (`group`), changes applied ahead of the disk
//! (`write_behind`).

mod durability;
mod group;
mod suite;
mod write_behind;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_wire::ids::MSG_ID_LEN;
use passage_wire::{MsgId, QUEUE_ID_LEN, RecipientId, SenderId};

use super::{
    Applied, MemoryStore, Persisted, QueueRecord, RedbStore, Store, StoreError, StoreStats,
    StoredMessage, WriteError, WriteOp, WriteOutcome,
};

/// A recipient id made of `n` (distinct from every sender id below).
pub(super) fn rid(n: u8) -> RecipientId {
    let mut bytes = [n; QUEUE_ID_LEN];
    bytes[0] = 0xa0;
    RecipientId::from_bytes(bytes)
}

/// A sender id made of `n`.
pub(super) fn sid(n: u8) -> SenderId {
    let mut bytes = [n; QUEUE_ID_LEN];
    bytes[0] = 0x5e;
    SenderId::from_bytes(bytes)
}

/// A public key made of `n`.
pub(super) fn key(n: u8) -> DhPublic {
    DhPublic::from_bytes([n; 32])
}

/// Queue `n`: ids `rid(n)`/`sid(n)`, no sender key yet.
pub(super) fn record(n: u8) -> QueueRecord {
    QueueRecord {
        recipient_id: rid(n),
        sender_id: sid(n),
        recipient_auth_key: key(0x10 ^ n),
        recipient_dh_key: key(0x20 ^ n),
        relay_dh_secret: DhSecret::from_bytes([0x30 ^ n; 32]),
        sender_auth_key: None,
    }
}

/// A message id from a number.
pub(super) fn msg_id(n: u64) -> MsgId {
    let mut bytes = [0x77; MSG_ID_LEN];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    MsgId::from_bytes(bytes)
}

/// Message `n`, received at `at`, its body filled with `n`'s low byte.
pub(super) fn message(n: u64, at: u64) -> StoredMessage {
    StoredMessage {
        msg_id: msg_id(n),
        received_at: at,
        body: Box::new([n as u8; ENVELOPE_LEN]),
    }
}

/// An append of `message(n, at)` to queue `q`, with no sender key and a large quota.
pub(super) fn append(q: u8, n: u64, at: u64) -> WriteOp {
    WriteOp::Append {
        recipient_id: rid(q),
        sender_key: None,
        message: message(n, at),
        quota: 1_000,
        hold: true,
    }
}

/// Commits one op and returns its result.
pub(super) fn one(store: &dyn Store, op: WriteOp) -> Result<WriteOutcome, WriteError> {
    let mut results = store.commit(vec![op]);
    assert_eq!(results.len(), 1);
    results.remove(0)
}

/// Asserts two records are equal, secret included.
pub(super) fn assert_same_record(a: &QueueRecord, b: &QueueRecord) {
    assert_eq!(a.recipient_id, b.recipient_id);
    assert_eq!(a.sender_id, b.sender_id);
    assert_eq!(a.recipient_auth_key, b.recipient_auth_key);
    assert_eq!(a.recipient_dh_key, b.recipient_dh_key);
    assert_eq!(*a.relay_dh_secret.to_bytes(), *b.relay_dh_secret.to_bytes());
    assert_eq!(a.sender_auth_key, b.sender_auth_key);
}

#[test]
fn debug_shows_no_ids_keys_or_bodies() {
    let mut record = record(0xab);
    record.sender_auth_key = Some(key(0xcd));
    let message = message(0xef, 0x1234_5678);
    let shown = format!(
        "{record:?} {message:?} {:?} {:?} {:?} {:?}",
        WriteOp::CreateQueue(record.clone()),
        append(0xab, 0xef, 7),
        WriteOp::Ack {
            recipient_id: rid(0xab),
            msg_id: msg_id(0xef)
        },
        WriteOp::Expire {
            received_before: 0x1234_5678
        },
    );
    for needle in [
        "ab",
        "AB",
        "171",
        "cd",
        "205",
        "ef",
        "239",
        "a0",
        "5e",
        "77",
        "30",
        "9b",
        "1234",
        "305419896",
        "1171",
    ] {
        assert!(!shown.contains(needle), "{needle} in {shown}");
    }
    assert!(shown.contains("QueueRecord") && shown.contains("sender_key_fixed: true"));
    let error = format!("{} {:?}", WriteError::Quota, WriteError::DuplicateId);
    assert!(!error.contains("ab"), "{error}");
}

/// A store that counts commits and ops, can pretend each commit waits for a disk, and can
/// make its writes fail (while `fail_writes` is set; reads and applies work).
pub(super) struct Counting<S> {
    pub(super) inner: S,
    pub(super) commits: AtomicUsize,
    pub(super) ops: AtomicUsize,
    pub(super) largest_batch: AtomicUsize,
    pub(super) fail_writes: AtomicBool,
    fsync: Duration,
}

/// A store whose disk can be made to fail.
pub(super) trait Failable {
    fn set_failing(&self, failing: bool);
}

impl Failable for MemoryStore {
    fn set_failing(&self, failing: bool) {
        MemoryStore::set_failing(self, failing);
    }
}

/// A real disk fails only by itself.
impl Failable for RedbStore {
    fn set_failing(&self, _: bool) {}
}

impl<S: Store + Failable> Counting<S> {
    pub(super) fn new(inner: S, fsync: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            commits: AtomicUsize::new(0),
            ops: AtomicUsize::new(0),
            largest_batch: AtomicUsize::new(0),
            fail_writes: AtomicBool::new(false),
            fsync,
        })
    }
}

impl<S: Store + Failable> Store for Counting<S> {
    fn capacity(&self) -> Arc<crate::store::StoreCapacity> {
        self.inner.capacity()
    }
    fn queue(&self, id: &RecipientId) -> Result<Option<QueueRecord>, StoreError> {
        self.inner.queue(id)
    }
    fn queue_by_sender(&self, id: &SenderId) -> Result<Option<QueueRecord>, StoreError> {
        self.inner.queue_by_sender(id)
    }
    fn queue_keys(&self, id: &RecipientId) -> Result<Option<crate::store::QueueKeys>, StoreError> {
        self.inner.queue_keys(id)
    }
    fn queue_keys_by_sender(
        &self,
        id: &SenderId,
    ) -> Result<Option<crate::store::QueueKeys>, StoreError> {
        self.inner.queue_keys_by_sender(id)
    }
    fn first_message(&self, id: &RecipientId) -> Result<Option<StoredMessage>, StoreError> {
        self.inner.first_message(id)
    }
    fn message_after(
        &self,
        id: &RecipientId,
        msg_id: &MsgId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        self.inner.message_after(id, msg_id)
    }
    fn messages_from(
        &self,
        id: &RecipientId,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, Arc<StoredMessage>)>, StoreError> {
        self.inner.messages_from(id, from, max)
    }
    fn has_message(&self, id: &RecipientId, msg_id: &MsgId) -> Result<bool, StoreError> {
        self.inner.has_message(id, msg_id)
    }
    fn message_count(&self, id: &RecipientId) -> Result<u64, StoreError> {
        self.inner.message_count(id)
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats()
    }
    fn apply(&self, ops: Vec<WriteOp>) -> Applied {
        self.ops.fetch_add(ops.len(), Ordering::SeqCst);
        self.largest_batch.fetch_max(ops.len(), Ordering::SeqCst);
        self.inner.apply(ops)
    }
    fn persist(&self, held_through: u64) -> Persisted {
        std::thread::sleep(self.fsync);
        let fail = self.fail_writes.load(Ordering::SeqCst);
        self.inner.set_failing(fail);
        let persisted = self.inner.persist(held_through);
        self.inner.set_failing(false);
        if persisted.rows > 0 {
            self.commits.fetch_add(1, Ordering::SeqCst);
        }
        persisted
    }
}
