//! [`RedbStore`]: the default store, one redb file in the relay's data directory.
//!
//! Layout: see the `codec` module. Every [`Store::commit`] is one redb write transaction
//! with [`Durability::Immediate`]: redb writes the new pages and its commit slot, then
//! fsyncs, before `commit` returns; a crash at any point leaves the previous commit or this
//! one, never part of it.

use std::path::{Path, PathBuf};

use passage_wire::ids::MSG_ID_LEN;
use passage_wire::{MsgId, QUEUE_ID_LEN, RecipientId, SenderId};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition, WriteTransaction,
};

use super::codec::{
    self, EXPIRY_KEY_LEN, MESSAGE_KEY_LEN, MSG_ENTRY_LEN, MSG_ID_KEY_LEN, MsgEntry, QueueState,
    SCHEMA_VERSION,
};
use super::ops::{self, Tables};
use super::{
    QueueRecord, StorageFault, Store, StoreError, StoreStats, StoredMessage, WriteError, WriteOp,
    WriteOutcome, fail_all,
};

/// Memory redb may use to cache pages. Reads of recent messages (delivery follows arrival
/// closely) hit the cache; 64 MiB holds about 16,000 messages and suits a small VPS, where
/// redb's default of 1 GiB would not.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SCHEMA_KEY: &str = "schema";
const QUEUES: TableDefinition<&[u8; QUEUE_ID_LEN], &[u8]> = TableDefinition::new("queues");
const QUEUE_STATE: TableDefinition<&[u8; QUEUE_ID_LEN], &[u8]> =
    TableDefinition::new("queue_state");
const SENDERS: TableDefinition<&[u8; QUEUE_ID_LEN], &[u8; QUEUE_ID_LEN]> =
    TableDefinition::new("senders");
const MESSAGES: TableDefinition<&[u8; MESSAGE_KEY_LEN], &[u8]> = TableDefinition::new("messages");
const MSG_IDS: TableDefinition<&[u8; MSG_ID_KEY_LEN], &[u8; MSG_ENTRY_LEN]> =
    TableDefinition::new("msg_ids");
const EXPIRY: TableDefinition<&[u8; EXPIRY_KEY_LEN], &[u8; MSG_ID_LEN]> =
    TableDefinition::new("expiry");

/// Why [`RedbStore::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file could not be created (directory missing or not writable?).
    #[error("could not create the store file")]
    Create(#[source] std::io::Error),
    /// Another process (another relay?) has the file open; stop it or use another data
    /// directory.
    #[error("the store file is already open in another process")]
    InUse,
    /// The file is not a redb database, is damaged, or could not be read.
    #[error("could not open the store file")]
    Storage(#[source] StorageFault),
    /// The file was written by a relay with another storage layout.
    #[error("the store file has layout version {found}, this relay reads version {SCHEMA_VERSION}")]
    UnknownSchema {
        /// The version found in the file.
        found: u64,
    },
}

/// The default [`Store`]: a redb database in one file. See the module doc of
/// [`store`](super) for what the file holds, and [`CACHE_BYTES`] for its memory use.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl core::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the store at `path`, creating it (readable by its owner only) if it does not
    /// exist. After a crash, redb checks and repairs the file first, which reads all of it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        create_private(&path).map_err(OpenError::Create)?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse,
                e => OpenError::Storage(StorageFault::engine(e)),
            })?;
        let txn = db
            .begin_write()
            .map_err(|e| OpenError::Storage(StorageFault::engine(e)))?;
        prepare(&txn)?;
        txn.commit()
            .map_err(|e| OpenError::Storage(StorageFault::engine(e)))?;
        Ok(Self { db, path })
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StorageFault>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(StorageFault::engine)?;
        Ok(f(&txn)?)
    }

    /// The queue's first message with sequence number `from` or later.
    fn first_from(
        txn: &redb::ReadTransaction,
        recipient_id: &RecipientId,
        from: u64,
    ) -> Result<Option<StoredMessage>, StorageFault> {
        let messages = txn.open_table(MESSAGES).map_err(StorageFault::engine)?;
        let (lo, hi) = (
            codec::message_key(recipient_id, from),
            codec::message_key(recipient_id, u64::MAX),
        );
        let mut range = messages
            .range::<&[u8; MESSAGE_KEY_LEN]>(&lo..=&hi)
            .map_err(StorageFault::engine)?;
        match range.next() {
            Some(entry) => {
                let (_, value) = entry.map_err(StorageFault::engine)?;
                codec::decode_message(value.value()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn record_in(
        txn: &redb::ReadTransaction,
        rid: &RecipientId,
    ) -> Result<Option<QueueRecord>, StorageFault> {
        let queues = txn.open_table(QUEUES).map_err(StorageFault::engine)?;
        let Some(fixed) = queues.get(rid.as_bytes()).map_err(StorageFault::engine)? else {
            return Ok(None);
        };
        let states = txn.open_table(QUEUE_STATE).map_err(StorageFault::engine)?;
        let sender_key = match states.get(rid.as_bytes()).map_err(StorageFault::engine)? {
            Some(state) => codec::decode_state(state.value())?.sender_auth_key,
            None => {
                return Err(StorageFault::Corrupt {
                    what: "queue state",
                });
            }
        };
        codec::decode_record(*rid, fixed.value(), sender_key).map(Some)
    }

    fn try_commit(
        &self,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Result<WriteOutcome, WriteError>>, StorageFault> {
        let mut txn = self.db.begin_write().map_err(StorageFault::engine)?;
        txn.set_durability(Durability::Immediate)
            .map_err(StorageFault::engine)?;
        let applied = RedbTables::open(&txn).and_then(|mut t| ops::apply_batch(&mut t, ops));
        match applied {
            Ok(results) => {
                txn.commit().map_err(StorageFault::engine)?;
                Ok(results)
            }
            Err(fault) => {
                // The fault is what the caller needs to know; an abort error adds nothing.
                let _ = txn.abort();
                Err(fault)
            }
        }
    }
}

/// Creates an empty file only its owner can read, unless the file exists. redb would create
/// it with the default mode, and it holds every queue's relay secret.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Checks or writes the layout version and creates every table, so reads never meet a
/// missing one.
fn prepare(txn: &WriteTransaction) -> Result<(), OpenError> {
    let storage = |e: redb::TableError| OpenError::Storage(StorageFault::engine(e));
    let mut meta = txn.open_table(META).map_err(storage)?;
    let found = meta
        .get(SCHEMA_KEY)
        .map_err(|e| OpenError::Storage(StorageFault::engine(e)))?
        .map(|v| v.value());
    match found {
        Some(SCHEMA_VERSION) => {}
        Some(found) => return Err(OpenError::UnknownSchema { found }),
        None => {
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION)
                .map_err(|e| OpenError::Storage(StorageFault::engine(e)))?;
        }
    }
    RedbTables::open(txn).map_err(OpenError::Storage)?;
    Ok(())
}

impl Store for RedbStore {
    fn queue(&self, recipient_id: &RecipientId) -> Result<Option<QueueRecord>, StoreError> {
        self.read(|txn| Self::record_in(txn, recipient_id))
    }

    fn queue_by_sender(&self, sender_id: &SenderId) -> Result<Option<QueueRecord>, StoreError> {
        self.read(|txn| {
            let senders = txn.open_table(SENDERS).map_err(StorageFault::engine)?;
            let rid = senders
                .get(sender_id.as_bytes())
                .map_err(StorageFault::engine)?
                .map(|rid| RecipientId::from_bytes(*rid.value()));
            match rid {
                Some(rid) => Self::record_in(txn, &rid),
                None => Ok(None),
            }
        })
    }

    fn first_message(
        &self,
        recipient_id: &RecipientId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        self.read(|txn| Self::first_from(txn, recipient_id, 0))
    }

    fn message_after(
        &self,
        recipient_id: &RecipientId,
        msg_id: &MsgId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        self.read(|txn| {
            let msg_ids = txn.open_table(MSG_IDS).map_err(StorageFault::engine)?;
            let from = msg_ids
                .get(&codec::msg_id_key(recipient_id, msg_id))
                .map_err(StorageFault::engine)?
                .map_or(0, |entry| {
                    codec::decode_entry(entry.value()).seq.saturating_add(1)
                });
            Self::first_from(txn, recipient_id, from)
        })
    }

    fn has_message(&self, recipient_id: &RecipientId, msg_id: &MsgId) -> Result<bool, StoreError> {
        self.read(|txn| {
            let msg_ids = txn.open_table(MSG_IDS).map_err(StorageFault::engine)?;
            Ok(msg_ids
                .get(&codec::msg_id_key(recipient_id, msg_id))
                .map_err(StorageFault::engine)?
                .is_some())
        })
    }

    fn message_count(&self, recipient_id: &RecipientId) -> Result<u64, StoreError> {
        self.read(|txn| {
            let states = txn.open_table(QUEUE_STATE).map_err(StorageFault::engine)?;
            match states
                .get(recipient_id.as_bytes())
                .map_err(StorageFault::engine)?
            {
                Some(state) => Ok(codec::decode_state(state.value())?.count),
                None => Ok(0),
            }
        })
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let (queues, messages) = self.read(|txn| {
            let queues = txn.open_table(QUEUES).map_err(StorageFault::engine)?;
            let messages = txn.open_table(MESSAGES).map_err(StorageFault::engine)?;
            Ok((
                queues.len().map_err(StorageFault::engine)?,
                messages.len().map_err(StorageFault::engine)?,
            ))
        })?;
        let metadata = std::fs::metadata(&self.path).map_err(StorageFault::engine)?;
        // redb grows the file by doubling it, sparsely: what the disk holds is the blocks
        // written, which can be half the file's length.
        #[cfg(unix)]
        let bytes_on_disk = std::os::unix::fs::MetadataExt::blocks(&metadata).saturating_mul(512);
        #[cfg(not(unix))]
        let bytes_on_disk = metadata.len();
        Ok(StoreStats {
            queues,
            messages,
            bytes_on_disk,
        })
    }

    fn commit(&self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutcome, WriteError>> {
        if ops.is_empty() {
            return Vec::new();
        }
        let len = ops.len();
        self.try_commit(ops)
            .unwrap_or_else(|fault| fail_all(len, &fault))
    }
}

/// The tables of one write transaction.
struct RedbTables<'t> {
    queues: Table<'t, &'static [u8; QUEUE_ID_LEN], &'static [u8]>,
    states: Table<'t, &'static [u8; QUEUE_ID_LEN], &'static [u8]>,
    senders: Table<'t, &'static [u8; QUEUE_ID_LEN], &'static [u8; QUEUE_ID_LEN]>,
    messages: Table<'t, &'static [u8; MESSAGE_KEY_LEN], &'static [u8]>,
    msg_ids: Table<'t, &'static [u8; MSG_ID_KEY_LEN], &'static [u8; MSG_ENTRY_LEN]>,
    expiry: Table<'t, &'static [u8; EXPIRY_KEY_LEN], &'static [u8; MSG_ID_LEN]>,
}

impl<'t> RedbTables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StorageFault> {
        Ok(Self {
            queues: txn.open_table(QUEUES).map_err(StorageFault::engine)?,
            states: txn.open_table(QUEUE_STATE).map_err(StorageFault::engine)?,
            senders: txn.open_table(SENDERS).map_err(StorageFault::engine)?,
            messages: txn.open_table(MESSAGES).map_err(StorageFault::engine)?,
            msg_ids: txn.open_table(MSG_IDS).map_err(StorageFault::engine)?,
            expiry: txn.open_table(EXPIRY).map_err(StorageFault::engine)?,
        })
    }
}

impl Tables for RedbTables<'_> {
    fn queue_sender(&self, rid: &RecipientId) -> Result<Option<SenderId>, StorageFault> {
        match self
            .queues
            .get(rid.as_bytes())
            .map_err(StorageFault::engine)?
        {
            Some(v) => codec::decode_record_sender(v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn put_queue(&mut self, record: &QueueRecord) -> Result<(), StorageFault> {
        let value = codec::encode_record(record);
        self.queues
            .insert(record.recipient_id.as_bytes(), value.as_slice())
            .map_err(StorageFault::engine)?;
        Ok(())
    }

    fn remove_queue(&mut self, rid: &RecipientId) -> Result<(), StorageFault> {
        self.queues
            .remove(rid.as_bytes())
            .map_err(StorageFault::engine)?;
        Ok(())
    }

    fn state(&self, rid: &RecipientId) -> Result<Option<QueueState>, StorageFault> {
        match self
            .states
            .get(rid.as_bytes())
            .map_err(StorageFault::engine)?
        {
            Some(v) => codec::decode_state(v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn put_state(&mut self, rid: &RecipientId, state: &QueueState) -> Result<(), StorageFault> {
        self.states
            .insert(rid.as_bytes(), codec::encode_state(state).as_slice())
            .map_err(StorageFault::engine)?;
        Ok(())
    }

    fn remove_state(&mut self, rid: &RecipientId) -> Result<(), StorageFault> {
        self.states
            .remove(rid.as_bytes())
            .map_err(StorageFault::engine)?;
        Ok(())
    }

    fn sender_exists(&self, sid: &SenderId) -> Result<bool, StorageFault> {
        Ok(self
            .senders
            .get(sid.as_bytes())
            .map_err(StorageFault::engine)?
            .is_some())
    }

    fn put_sender(&mut self, sid: &SenderId, rid: &RecipientId) -> Result<(), StorageFault> {
        self.senders
            .insert(sid.as_bytes(), rid.as_bytes())
            .map_err(StorageFault::engine)?;
        Ok(())
    }

    fn remove_sender(&mut self, sid: &SenderId) -> Result<(), StorageFault> {
        self.senders
            .remove(sid.as_bytes())
            .map_err(StorageFault::engine)?;
        Ok(())
    }

    fn msg_entry(
        &self,
        rid: &RecipientId,
        msg_id: &MsgId,
    ) -> Result<Option<MsgEntry>, StorageFault> {
        Ok(self
            .msg_ids
            .get(&codec::msg_id_key(rid, msg_id))
            .map_err(StorageFault::engine)?
            .map(|v| codec::decode_entry(v.value())))
    }

    fn queue_entries(&self, rid: &RecipientId) -> Result<Vec<(MsgId, MsgEntry)>, StorageFault> {
        let (lo, hi) = codec::msg_id_key_bounds(rid);
        let mut entries = Vec::new();
        for item in self
            .msg_ids
            .range::<&[u8; MSG_ID_KEY_LEN]>(&lo..=&hi)
            .map_err(StorageFault::engine)?
        {
            let (key, value) = item.map_err(StorageFault::engine)?;
            entries.push((
                codec::msg_id_of_key(key.value()),
                codec::decode_entry(value.value()),
            ));
        }
        Ok(entries)
    }

    fn put_message(
        &mut self,
        rid: &RecipientId,
        seq: u64,
        message: &StoredMessage,
    ) -> Result<(), StorageFault> {
        let entry = MsgEntry {
            seq,
            received_at: message.received_at,
        };
        self.messages
            .insert(
                &codec::message_key(rid, seq),
                codec::encode_message(message).as_slice(),
            )
            .map_err(StorageFault::engine)?;
        self.msg_ids
            .insert(
                &codec::msg_id_key(rid, &message.msg_id),
                &codec::encode_entry(entry),
            )
            .map_err(StorageFault::engine)?;
        self.expiry
            .insert(
                &codec::expiry_key(message.received_at, rid, seq),
                message.msg_id.as_bytes(),
            )
            .map_err(StorageFault::engine)?;
        Ok(())
    }

    fn remove_message(
        &mut self,
        rid: &RecipientId,
        msg_id: &MsgId,
        entry: MsgEntry,
    ) -> Result<(), StorageFault> {
        self.messages
            .remove(&codec::message_key(rid, entry.seq))
            .map_err(StorageFault::engine)?;
        self.msg_ids
            .remove(&codec::msg_id_key(rid, msg_id))
            .map_err(StorageFault::engine)?;
        self.expiry
            .remove(&codec::expiry_key(entry.received_at, rid, entry.seq))
            .map_err(StorageFault::engine)?;
        Ok(())
    }

    fn expired(
        &self,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(RecipientId, MsgId, MsgEntry)>, StorageFault> {
        let end = codec::expiry_key(before, &RecipientId::from_bytes([0; QUEUE_ID_LEN]), 0);
        let mut found = Vec::new();
        for item in self
            .expiry
            .range::<&[u8; EXPIRY_KEY_LEN]>(..&end)
            .map_err(StorageFault::engine)?
        {
            if found.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(StorageFault::engine)?;
            let (received_at, rid, seq) = codec::expiry_key_parts(key.value());
            found.push((
                rid,
                MsgId::from_bytes(*value.value()),
                MsgEntry { seq, received_at },
            ));
        }
        Ok(found)
    }
}
