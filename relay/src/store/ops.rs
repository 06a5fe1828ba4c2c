//! What each [`WriteOp`] means, written once over the [`Tables`] both stores provide and
//! the in-memory [`Overlay`] of the index.
//!
//! An op first checks everything that can make it fail on its own (queue missing, quota,
//! sender key, duplicate id) and only then writes, so a failed op leaves no trace in the
//! batch and the rest of the batch goes on. A [`StorageFault`] from a table aborts the
//! whole batch: the caller then discards the batch's changes and the overlay.
//!
//! The checks read only the index (in memory); a message costs one table write when it
//! arrives and one delete when it is acknowledged.

use passage_crypto::primitives::DhPublic;
use passage_wire::{RecipientId, SenderId};

use super::capacity::StoreCapacity;
use super::index::{Entry, Overlay, QueueIndex};
use super::{QueueRecord, StorageFault, StoredMessage, WriteError, WriteOp, WriteOutcome};

/// How many expired messages [`WriteOp::Expire`] gathers before deleting them, so that
/// retention over millions of messages holds a bounded list in memory.
#[cfg(not(test))]
pub(crate) const EXPIRE_CHUNK: usize = 4096;
/// Tests use a tiny chunk so that a handful of messages crosses chunk boundaries.
#[cfg(test)]
pub(crate) const EXPIRE_CHUNK: usize = 3;

/// The store's tables inside one write transaction. Each method is one table access.
pub(crate) trait Tables {
    /// Stores a queue's record (a new queue, or its sender key fixed).
    fn put_queue(&mut self, record: &QueueRecord) -> Result<(), StorageFault>;
    /// A queue's record.
    fn queue(&self, rid: &RecipientId) -> Result<Option<QueueRecord>, StorageFault>;
    /// Removes a queue's record.
    fn remove_queue(&mut self, rid: &RecipientId) -> Result<(), StorageFault>;
    /// Whether a sender id is in use.
    fn sender_exists(&self, sid: &SenderId) -> Result<bool, StorageFault>;
    /// Indexes a sender id.
    fn put_sender(&mut self, sid: &SenderId, rid: &RecipientId) -> Result<(), StorageFault>;
    /// Drops a sender id from the index.
    fn remove_sender(&mut self, sid: &SenderId) -> Result<(), StorageFault>;
    /// Stores a message under `seq`; `hold`: it may be held back from the disk.
    fn put_message(
        &mut self,
        rid: &RecipientId,
        seq: u64,
        message: StoredMessage,
        hold: bool,
    ) -> Result<(), StorageFault>;
    /// Removes a message.
    fn remove_message(&mut self, rid: &RecipientId, seq: u64) -> Result<(), StorageFault>;
}

/// The result of one op: its own outcome or failure, or a fault that aborts the batch.
pub(crate) type OpResult = Result<Result<WriteOutcome, WriteError>, StorageFault>;

fn damaged() -> StorageFault {
    StorageFault::Corrupt { what: "queue" }
}

/// Applies one op; the ops that add data first check `capacity`.
pub(crate) fn apply<T: Tables>(
    tables: &mut T,
    index: &mut Overlay<'_>,
    capacity: &StoreCapacity,
    op: WriteOp,
) -> OpResult {
    match op {
        WriteOp::CreateQueue(record) => {
            if !capacity.queue_fits(index.usage()) {
                return Ok(Err(WriteError::Full));
            }
            create(tables, index, &record)
        }
        WriteOp::Append {
            recipient_id,
            sender_key,
            message,
            quota,
            hold,
        } => append(
            tables,
            index,
            capacity,
            recipient_id,
            sender_key,
            message,
            (quota, hold),
        ),
        WriteOp::Ack {
            recipient_id,
            msg_id,
        } => {
            let Some(queue) = index.queue(&recipient_id) else {
                return Ok(Err(WriteError::NoQueue));
            };
            if queue.damaged {
                return Err(damaged());
            }
            let Some(at) = queue.position(&msg_id) else {
                return Ok(Ok(WriteOutcome::Acked { found: false }));
            };
            let Some(entry) = queue.entries.remove(at) else {
                return Ok(Ok(WriteOutcome::Acked { found: false }));
            };
            tables.remove_message(&recipient_id, entry.seq)?;
            Ok(Ok(WriteOutcome::Acked { found: true }))
        }
        WriteOp::DeleteQueue { recipient_id } => {
            let Some(queue) = index.queue(&recipient_id) else {
                return Ok(Ok(WriteOutcome::Deleted { found: false }));
            };
            if queue.damaged {
                return Err(damaged());
            }
            for entry in &queue.entries {
                tables.remove_message(&recipient_id, entry.seq)?;
            }
            tables.remove_sender(&queue.sender_id)?;
            tables.remove_queue(&recipient_id)?;
            index.remove(recipient_id);
            Ok(Ok(WriteOutcome::Deleted { found: true }))
        }
        WriteOp::Expire { received_before } => expire(tables, index, received_before),
    }
}

fn create<T: Tables>(tables: &mut T, index: &mut Overlay<'_>, record: &QueueRecord) -> OpResult {
    if index.exists(&record.recipient_id) || tables.sender_exists(&record.sender_id)? {
        return Ok(Err(WriteError::DuplicateId));
    }
    tables.put_queue(record)?;
    tables.put_sender(&record.sender_id, &record.recipient_id)?;
    index.insert(record.recipient_id, QueueIndex::new(record));
    Ok(Ok(WriteOutcome::Created))
}

fn append<T: Tables>(
    tables: &mut T,
    index: &mut Overlay<'_>,
    capacity: &StoreCapacity,
    recipient_id: RecipientId,
    sender_key: Option<DhPublic>,
    message: StoredMessage,
    (quota, hold): (usize, bool),
) -> OpResult {
    let usage = index.usage();
    let Some(queue) = index.queue(&recipient_id) else {
        return Ok(Err(WriteError::NoQueue));
    };
    if queue.damaged {
        return Err(damaged());
    }
    let fixes_key = match (queue.sender_key, sender_key) {
        (Some(fixed), Some(key)) if fixed != key => {
            return Ok(Err(WriteError::SenderKeyMismatch));
        }
        (None, Some(key)) => Some(key),
        _ => None,
    };
    // A quota larger than u64 cannot be reached: no limit.
    if u64::try_from(quota).is_ok_and(|quota| queue.entries.len() as u64 >= quota) {
        return Ok(Err(WriteError::Quota));
    }
    if queue.position(&message.msg_id).is_some() {
        return Ok(Err(WriteError::DuplicateId));
    }
    if !capacity.message_fits(usage) {
        return Ok(Err(WriteError::Full));
    }
    let seq = queue.next_seq;
    let next_seq = seq.checked_add(1).ok_or(StorageFault::Corrupt {
        what: "queue state",
    })?;
    if let Some(key) = fixes_key {
        // Once per queue: its record on disk takes the key.
        let mut record = tables.queue(&recipient_id)?.ok_or_else(damaged)?;
        record.sender_auth_key = Some(key);
        tables.put_queue(&record)?;
    }
    let (msg_id, received_at) = (message.msg_id, message.received_at);
    tables.put_message(&recipient_id, seq, message, hold)?;
    index.count_appended();
    if let Some(queue) = index.queue(&recipient_id) {
        if fixes_key.is_some() {
            queue.sender_key = fixes_key;
        }
        queue.next_seq = next_seq;
        queue.entries.push_back(Entry {
            seq,
            msg_id,
            received_at,
        });
    }
    Ok(Ok(WriteOutcome::Appended))
}

fn expire<T: Tables>(tables: &mut T, index: &mut Overlay<'_>, received_before: u64) -> OpResult {
    let mut count = 0u64;
    loop {
        let chunk = index.expired(received_before, EXPIRE_CHUNK);
        if chunk.is_empty() {
            break;
        }
        let mut removed = false;
        for (rid, seq) in chunk {
            let Some(queue) = index.queue(&rid) else {
                continue;
            };
            if let Some(at) = queue.entries.iter().position(|e| e.seq == seq) {
                queue.entries.remove(at);
                tables.remove_message(&rid, seq)?;
                count = count.saturating_add(1);
                removed = true;
            }
        }
        // Cannot happen (the chunk comes from the same overlay); guards against a loop.
        if !removed {
            break;
        }
    }
    Ok(Ok(WriteOutcome::Expired { count }))
}
