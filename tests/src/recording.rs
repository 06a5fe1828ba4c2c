//! A relay store that keeps a copy of every envelope the relay is asked to store, for
//! tests that check what the relay (or anyone who seizes it) sees of the messages.

use std::sync::{Arc, Mutex};

use passage_crypto::ENVELOPE_LEN;
use passage_relay::store::{
    Applied, Persisted, QueueKeys, QueueRecord, Store, StoreCapacity, StoreError, StoreStats,
    StoredMessage, WriteOp,
};
use passage_wire::{MsgId, RecipientId, SenderId};

/// Every envelope a `SEND` delivered to the relay, in the order they reached the store.
pub type Envelopes = Arc<Mutex<Vec<Box<[u8; ENVELOPE_LEN]>>>>;

/// [`Store`] over another store, recording the body of every append.
pub struct RecordingStore {
    inner: Arc<dyn Store>,
    seen: Envelopes,
}

impl core::fmt::Debug for RecordingStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RecordingStore(..)")
    }
}

impl RecordingStore {
    /// Wraps `inner`; the envelopes land in the returned list.
    pub fn new(inner: Arc<dyn Store>) -> (Self, Envelopes) {
        let seen = Envelopes::default();
        (
            Self {
                inner,
                seen: Arc::clone(&seen),
            },
            seen,
        )
    }
}

impl Store for RecordingStore {
    fn capacity(&self) -> Arc<StoreCapacity> {
        self.inner.capacity()
    }
    fn queue_keys(&self, recipient_id: &RecipientId) -> Result<Option<QueueKeys>, StoreError> {
        self.inner.queue_keys(recipient_id)
    }
    fn queue_keys_by_sender(&self, sender_id: &SenderId) -> Result<Option<QueueKeys>, StoreError> {
        self.inner.queue_keys_by_sender(sender_id)
    }
    fn queue(&self, recipient_id: &RecipientId) -> Result<Option<QueueRecord>, StoreError> {
        self.inner.queue(recipient_id)
    }
    fn queue_by_sender(&self, sender_id: &SenderId) -> Result<Option<QueueRecord>, StoreError> {
        self.inner.queue_by_sender(sender_id)
    }
    fn first_message(
        &self,
        recipient_id: &RecipientId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        self.inner.first_message(recipient_id)
    }
    fn message_after(
        &self,
        recipient_id: &RecipientId,
        msg_id: &MsgId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        self.inner.message_after(recipient_id, msg_id)
    }
    fn messages_from(
        &self,
        recipient_id: &RecipientId,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, Arc<StoredMessage>)>, StoreError> {
        self.inner.messages_from(recipient_id, from, max)
    }
    fn has_message(&self, recipient_id: &RecipientId, msg_id: &MsgId) -> Result<bool, StoreError> {
        self.inner.has_message(recipient_id, msg_id)
    }
    fn message_count(&self, recipient_id: &RecipientId) -> Result<u64, StoreError> {
        self.inner.message_count(recipient_id)
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats()
    }
    fn apply(&self, ops: Vec<WriteOp>) -> Applied {
        if let Ok(mut seen) = self.seen.lock() {
            for op in &ops {
                if let WriteOp::Append { message, .. } = op {
                    seen.push(message.body.clone());
                }
            }
        }
        self.inner.apply(ops)
    }
    fn persist(&self, held_through: u64) -> Persisted {
        self.inner.persist(held_through)
    }
}
