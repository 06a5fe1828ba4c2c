//! What each [`WriteOp`] means, written once over the [`Tables`] both stores provide.
//!
//! An op first checks everything that can make it fail on its own (queue missing, quota,
//! sender key, duplicate id) and only then writes, so a failed op leaves no trace in the
//! transaction and the rest of the batch goes on. A [`StorageFault`] from a table aborts the
//! whole batch: the caller then discards the transaction.

use std::collections::BTreeMap;

use passage_wire::{MsgId, RecipientId, SenderId};

use super::codec::{MsgEntry, QueueState};
use super::{QueueRecord, StorageFault, StoredMessage, WriteError, WriteOp, WriteOutcome};

/// How many expired messages [`WriteOp::Expire`] gathers before deleting them, so that
/// retention over millions of messages holds a bounded list in memory (about 80 bytes each).
#[cfg(not(test))]
pub(crate) const EXPIRE_CHUNK: usize = 4096;
/// Tests use a tiny chunk so that a handful of messages crosses chunk boundaries.
#[cfg(test)]
pub(crate) const EXPIRE_CHUNK: usize = 3;

/// The store's tables inside one write transaction. Each method is one table access;
/// `put_message` and `remove_message` keep the message table and its two indexes
/// (`msg_ids`, `expiry`) in step.
pub(crate) trait Tables {
    /// The sender id of a queue, if the queue exists.
    fn queue_sender(&self, rid: &RecipientId) -> Result<Option<SenderId>, StorageFault>;
    /// Stores the fixed part of a new queue.
    fn put_queue(&mut self, record: &QueueRecord) -> Result<(), StorageFault>;
    /// Removes the fixed part of a queue.
    fn remove_queue(&mut self, rid: &RecipientId) -> Result<(), StorageFault>;
    /// The mutable part of a queue.
    fn state(&self, rid: &RecipientId) -> Result<Option<QueueState>, StorageFault>;
    /// Stores the mutable part of a queue.
    fn put_state(&mut self, rid: &RecipientId, state: &QueueState) -> Result<(), StorageFault>;
    /// Removes the mutable part of a queue.
    fn remove_state(&mut self, rid: &RecipientId) -> Result<(), StorageFault>;
    /// Whether a sender id is in use.
    fn sender_exists(&self, sid: &SenderId) -> Result<bool, StorageFault>;
    /// Indexes a sender id.
    fn put_sender(&mut self, sid: &SenderId, rid: &RecipientId) -> Result<(), StorageFault>;
    /// Drops a sender id from the index.
    fn remove_sender(&mut self, sid: &SenderId) -> Result<(), StorageFault>;
    /// Where a message of a queue sits, by its id.
    fn msg_entry(
        &self,
        rid: &RecipientId,
        msg_id: &MsgId,
    ) -> Result<Option<MsgEntry>, StorageFault>;
    /// Every message of a queue, by id (from the index: no body is read).
    fn queue_entries(&self, rid: &RecipientId) -> Result<Vec<(MsgId, MsgEntry)>, StorageFault>;
    /// Stores a message under `seq`, with its index entries.
    fn put_message(
        &mut self,
        rid: &RecipientId,
        seq: u64,
        message: &StoredMessage,
    ) -> Result<(), StorageFault>;
    /// Removes a message and its index entries.
    fn remove_message(
        &mut self,
        rid: &RecipientId,
        msg_id: &MsgId,
        entry: MsgEntry,
    ) -> Result<(), StorageFault>;
    /// Up to `limit` messages received before `before`, oldest first.
    fn expired(
        &self,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(RecipientId, MsgId, MsgEntry)>, StorageFault>;
}

/// The result of one op: its own outcome or failure, or a fault that aborts the batch.
pub(crate) type OpResult = Result<Result<WriteOutcome, WriteError>, StorageFault>;

/// Applies every op in order; `Err` if a fault aborts the batch (the caller must then
/// discard the transaction).
pub(crate) fn apply_batch<T: Tables>(
    tables: &mut T,
    ops: Vec<WriteOp>,
) -> Result<Vec<Result<WriteOutcome, WriteError>>, StorageFault> {
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        results.push(apply(tables, op)?);
    }
    Ok(results)
}

/// Applies one op.
pub(crate) fn apply<T: Tables>(tables: &mut T, op: WriteOp) -> OpResult {
    match op {
        WriteOp::CreateQueue(record) => create(tables, &record),
        WriteOp::Append {
            recipient_id,
            sender_key,
            message,
            quota,
        } => {
            let Some(mut state) = tables.state(&recipient_id)? else {
                return Ok(Err(WriteError::NoQueue));
            };
            match (state.sender_auth_key, sender_key) {
                (Some(fixed), Some(key)) if fixed != key => {
                    return Ok(Err(WriteError::SenderKeyMismatch));
                }
                (None, Some(key)) => state.sender_auth_key = Some(key),
                _ => {}
            }
            // A quota larger than u64 cannot be reached: no limit.
            if u64::try_from(quota).is_ok_and(|quota| state.count >= quota) {
                return Ok(Err(WriteError::Quota));
            }
            if tables.msg_entry(&recipient_id, &message.msg_id)?.is_some() {
                return Ok(Err(WriteError::DuplicateId));
            }
            let seq = state.next_seq;
            state.next_seq = seq.checked_add(1).ok_or(StorageFault::Corrupt {
                what: "queue state",
            })?;
            state.count = state.count.saturating_add(1);
            tables.put_message(&recipient_id, seq, &message)?;
            tables.put_state(&recipient_id, &state)?;
            Ok(Ok(WriteOutcome::Appended))
        }
        WriteOp::Ack {
            recipient_id,
            msg_id,
        } => {
            let Some(mut state) = tables.state(&recipient_id)? else {
                return Ok(Err(WriteError::NoQueue));
            };
            let Some(entry) = tables.msg_entry(&recipient_id, &msg_id)? else {
                return Ok(Ok(WriteOutcome::Acked { found: false }));
            };
            tables.remove_message(&recipient_id, &msg_id, entry)?;
            state.count = state.count.saturating_sub(1);
            tables.put_state(&recipient_id, &state)?;
            Ok(Ok(WriteOutcome::Acked { found: true }))
        }
        WriteOp::DeleteQueue { recipient_id } => {
            let Some(sender_id) = tables.queue_sender(&recipient_id)? else {
                return Ok(Ok(WriteOutcome::Deleted { found: false }));
            };
            for (msg_id, entry) in tables.queue_entries(&recipient_id)? {
                tables.remove_message(&recipient_id, &msg_id, entry)?;
            }
            tables.remove_sender(&sender_id)?;
            tables.remove_state(&recipient_id)?;
            tables.remove_queue(&recipient_id)?;
            Ok(Ok(WriteOutcome::Deleted { found: true }))
        }
        WriteOp::Expire { received_before } => expire(tables, received_before),
    }
}

fn create<T: Tables>(tables: &mut T, record: &QueueRecord) -> OpResult {
    if tables.queue_sender(&record.recipient_id)?.is_some()
        || tables.sender_exists(&record.sender_id)?
    {
        return Ok(Err(WriteError::DuplicateId));
    }
    tables.put_queue(record)?;
    tables.put_state(
        &record.recipient_id,
        &QueueState {
            sender_auth_key: record.sender_auth_key,
            count: 0,
            next_seq: 0,
        },
    )?;
    tables.put_sender(&record.sender_id, &record.recipient_id)?;
    Ok(Ok(WriteOutcome::Created))
}

fn expire<T: Tables>(tables: &mut T, received_before: u64) -> OpResult {
    let mut count = 0u64;
    loop {
        let chunk = tables.expired(received_before, EXPIRE_CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        let mut removed_per_queue: BTreeMap<[u8; passage_wire::QUEUE_ID_LEN], u64> =
            BTreeMap::new();
        for (rid, msg_id, entry) in &chunk {
            tables.remove_message(rid, msg_id, *entry)?;
            let removed = removed_per_queue.entry(*rid.as_bytes()).or_default();
            *removed = removed.saturating_add(1);
            count = count.saturating_add(1);
        }
        for (rid, removed) in removed_per_queue {
            let rid = RecipientId::from_bytes(rid);
            // A message whose queue is gone should not exist; deleting it is still right.
            if let Some(mut state) = tables.state(&rid)? {
                state.count = state.count.saturating_sub(removed);
                tables.put_state(&rid, &state)?;
            }
        }
    }
    Ok(Ok(WriteOutcome::Expired { count }))
}
