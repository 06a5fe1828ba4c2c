//! [`Staged`]: the tables as one batch sees them while it is applied, and what each of its
//! ops' answers waits for.

use std::sync::Arc;

use passage_wire::{RecipientId, SenderId};

use super::{Change, Changes, Durable, Row, RowKey, WriteBehind};
use crate::store::ops::Tables;
use crate::store::{OpRef, QueueRecord, StorageFault, StoredMessage, WaitFor};

/// The tables as one batch sees them: its own changes over the rows not yet durable over
/// the disk. Writes stay in the batch until it has been applied whole. Also finds out what
/// each op's answer waits for.
pub(super) struct Staged<'a, B> {
    store: &'a WriteBehind<B>,
    pub(super) local: Changes,
    batch: u64,
    /// The op being applied: its index, whether it put a queue record (an append that
    /// fixes the sender key is not held: the key must reach the disk), what it wrote.
    op: usize,
    put_queue: bool,
    writes: bool,
    holds: bool,
    pub(super) wait_for: Vec<WaitFor>,
    pub(super) released: Vec<OpRef>,
}

impl<'a, B: Durable> Staged<'a, B> {
    pub(super) fn new(store: &'a WriteBehind<B>, batch: u64, len: usize) -> Self {
        Self {
            store,
            local: Changes::default(),
            batch,
            op: 0,
            put_queue: false,
            writes: false,
            holds: false,
            wait_for: Vec::with_capacity(len),
            released: Vec::new(),
        }
    }

    pub(super) fn begin(&mut self, op: usize) {
        (self.op, self.put_queue, self.writes, self.holds) = (op, false, false, false);
    }

    pub(super) fn end(&mut self) {
        self.wait_for.push(if self.writes {
            WaitFor::Write
        } else if self.holds {
            WaitFor::Message
        } else {
            WaitFor::Nothing
        });
    }

    fn fresh(&self, key: &RowKey, put: bool) -> bool {
        match self.local.get(key) {
            Some(change) => change.fresh(),
            None => self.store.state().fresh(key, put),
        }
    }

    fn put(&mut self, key: RowKey, row: Row, held: Option<OpRef>) {
        let fresh = self.fresh(&key, true);
        match held {
            Some(_) => self.holds = true,
            None => self.writes = true,
        }
        self.local.insert(key, Change::Put { row, fresh, held });
    }

    fn delete(&mut self, key: RowKey) {
        let fresh = self.fresh(&key, false);
        if !fresh {
            self.writes = true;
        }
        let old = self.local.insert(key, Change::Delete { fresh });
        if let Some(Change::Put { held: Some(op), .. }) = old {
            self.released.push(op);
        }
    }
}

impl<B: Durable> Tables for Staged<'_, B> {
    fn put_queue(&mut self, record: &QueueRecord) -> Result<(), StorageFault> {
        let key = RowKey::Queue(*record.recipient_id.as_bytes());
        self.put_queue = true;
        self.put(key, Row::Queue(Box::new(record.clone())), None);
        Ok(())
    }

    fn queue(&self, rid: &RecipientId) -> Result<Option<QueueRecord>, StorageFault> {
        match self.local.get(&RowKey::Queue(*rid.as_bytes())) {
            Some(Change::Put {
                row: Row::Queue(record),
                ..
            }) => Ok(Some(QueueRecord::clone(record))),
            Some(_) => Ok(None),
            None => self.store.queue_row(rid),
        }
    }

    fn remove_queue(&mut self, rid: &RecipientId) -> Result<(), StorageFault> {
        self.delete(RowKey::Queue(*rid.as_bytes()));
        Ok(())
    }

    fn sender_exists(&self, sid: &SenderId) -> Result<bool, StorageFault> {
        match self.local.get(&RowKey::Sender(*sid.as_bytes())) {
            Some(change) => Ok(matches!(change, Change::Put { .. })),
            None => Ok(self.store.sender_row(sid)?.is_some()),
        }
    }

    fn put_sender(&mut self, sid: &SenderId, rid: &RecipientId) -> Result<(), StorageFault> {
        self.put(RowKey::Sender(*sid.as_bytes()), Row::Sender(*rid), None);
        Ok(())
    }

    fn remove_sender(&mut self, sid: &SenderId) -> Result<(), StorageFault> {
        self.delete(RowKey::Sender(*sid.as_bytes()));
        Ok(())
    }

    fn put_message(
        &mut self,
        rid: &RecipientId,
        seq: u64,
        message: StoredMessage,
        hold: bool,
    ) -> Result<(), StorageFault> {
        let key = RowKey::Message(*rid.as_bytes(), seq);
        let held = (hold && !self.put_queue).then_some((self.batch, self.op));
        self.put(key, Row::Message(Arc::new(message)), held);
        Ok(())
    }

    fn remove_message(&mut self, rid: &RecipientId, seq: u64) -> Result<(), StorageFault> {
        self.delete(RowKey::Message(*rid.as_bytes(), seq));
        Ok(())
    }
}
