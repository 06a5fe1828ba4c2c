//! [`RedbStore`]: the default store, one redb file in the relay's data directory.
//!
//! Layout: see the `codec` module; the counters and lookups beside it: the `index` module;
//! how changes wait in memory before they are written: the `write_behind` module. Every
//! [`Store::persist`](super::Store::persist) that has rows to write is one redb write transaction with
//! [`Durability::Immediate`]: redb writes the new pages and its commit slot, then fsyncs,
//! before `persist` returns; a crash at any point leaves the previous write or this one,
//! never part of it.

use crate::id_map::IdMap;
use std::path::{Path, PathBuf};

use passage_wire::{QUEUE_ID_LEN, RecipientId, SenderId};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};

use super::codec::{
    self, MESSAGE_KEY_LEN, MIGRATED_TIME_GRANULARITY_SECS, SCHEMA_V1, SCHEMA_V2, SCHEMA_VERSION,
};
use super::index::{Entry, QueueIndex};
use super::write_behind::{Change, Durable, Row, RowKey, WriteBehind, store_by_write_behind};
use super::{QueueRecord, StorageFault, StoredMessage};

/// Memory redb may use to cache pages. Reads of recent messages (delivery follows arrival
/// closely) hit the cache; 64 MiB holds about 16,000 messages and suits a small VPS, where
/// redb's default of 1 GiB would not.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SCHEMA_KEY: &str = "schema";
const QUEUES: TableDefinition<&[u8; QUEUE_ID_LEN], &[u8]> = TableDefinition::new("queues");
const SENDERS: TableDefinition<&[u8; QUEUE_ID_LEN], &[u8; QUEUE_ID_LEN]> =
    TableDefinition::new("senders");
const MESSAGES: TableDefinition<&[u8; MESSAGE_KEY_LEN], &[u8]> = TableDefinition::new("messages");

/// Schema 1 tables, dropped when a file is converted (see `codec`).
const V1_QUEUE_STATE: TableDefinition<&[u8; QUEUE_ID_LEN], &[u8]> =
    TableDefinition::new("queue_state");
const V1_MSG_IDS: TableDefinition<&[u8; 48], &[u8; 16]> = TableDefinition::new("msg_ids");
const V1_EXPIRY: TableDefinition<&[u8; 40], &[u8; 24]> = TableDefinition::new("expiry");

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

/// The default [`Store`](super::Store): a redb database in one file, its in-memory index, and the
/// changes not yet written. See the module doc of [`store`](super) for what the file
/// holds, and `CACHE_BYTES` (64 MiB) for its memory use.
pub struct RedbStore {
    inner: WriteBehind<RedbFile>,
}

/// The file, as the backend of [`WriteBehind`].
struct RedbFile {
    db: Database,
    path: PathBuf,
}

impl core::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

fn engine(e: impl Into<redb::Error>) -> OpenError {
    OpenError::Storage(StorageFault::engine(e))
}

impl RedbStore {
    /// Opens the store at `path`, creating it (readable by its owner only) if it does not
    /// exist, converting a schema 1 or 2 file, and building the index from every queue record
    /// and message header (so opening reads the whole file). After a crash, redb checks and
    /// repairs the file first, which reads all of it too.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        create_private(&path).map_err(OpenError::Create)?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse,
                e => engine(e),
            })?;
        let txn = db.begin_write().map_err(engine)?;
        prepare(&txn)?;
        txn.commit().map_err(engine)?;
        let file = RedbFile { db, path };
        let queues = file.load().map_err(OpenError::Storage)?;
        Ok(Self {
            inner: WriteBehind::new(file, queues),
        })
    }
}

store_by_write_behind!(RedbStore, inner);

impl RedbFile {
    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StorageFault>,
    ) -> Result<T, StorageFault> {
        let txn = self.db.begin_read().map_err(StorageFault::engine)?;
        f(&txn)
    }
}

impl Durable for RedbFile {
    fn queue(&self, rid: &RecipientId) -> Result<Option<QueueRecord>, StorageFault> {
        self.read(|txn| {
            let queues = txn.open_table(QUEUES).map_err(StorageFault::engine)?;
            match queues.get(rid.as_bytes()).map_err(StorageFault::engine)? {
                Some(value) => codec::decode_record(*rid, value.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    fn sender(&self, sid: &SenderId) -> Result<Option<RecipientId>, StorageFault> {
        self.read(|txn| {
            let senders = txn.open_table(SENDERS).map_err(StorageFault::engine)?;
            Ok(senders
                .get(sid.as_bytes())
                .map_err(StorageFault::engine)?
                .map(|rid| RecipientId::from_bytes(*rid.value())))
        })
    }

    fn messages(
        &self,
        rid: &RecipientId,
        seqs: &[u64],
    ) -> Result<Vec<(u64, StoredMessage)>, StorageFault> {
        self.read(|txn| {
            let messages = txn.open_table(MESSAGES).map_err(StorageFault::engine)?;
            let mut found = Vec::with_capacity(seqs.len());
            for &seq in seqs {
                let value = messages
                    .get(&codec::message_key(rid, seq))
                    .map_err(StorageFault::engine)?;
                if let Some(value) = value {
                    found.push((seq, codec::decode_message(value.value())?));
                }
            }
            Ok(found)
        })
    }

    fn write(&self, rows: &[(&RowKey, &Change)]) -> Result<(), StorageFault> {
        let mut txn = self.db.begin_write().map_err(StorageFault::engine)?;
        txn.set_durability(Durability::Immediate)
            .map_err(StorageFault::engine)?;
        let written = RedbTables::open(&txn).and_then(|mut tables| {
            rows.iter()
                .try_for_each(|(key, change)| tables.write(key, change))
        });
        match written {
            Ok(()) => txn.commit().map_err(StorageFault::engine),
            Err(fault) => {
                // The fault is what the caller needs to know; an abort error adds nothing.
                let _ = txn.abort();
                Err(fault)
            }
        }
    }

    fn load(&self) -> Result<IdMap<RecipientId, QueueIndex>, StorageFault> {
        self.read(|txn| {
            let queues = txn.open_table(QUEUES).map_err(StorageFault::engine)?;
            let messages = txn.open_table(MESSAGES).map_err(StorageFault::engine)?;
            load_index(&queues, &messages)
        })
    }

    fn bytes_on_disk(&self) -> Result<u64, StorageFault> {
        let metadata = std::fs::metadata(&self.path).map_err(StorageFault::engine)?;
        // redb grows the file by doubling it, sparsely: what the disk holds is the blocks
        // written, which can be half the file's length.
        #[cfg(unix)]
        return Ok(std::os::unix::fs::MetadataExt::blocks(&metadata).saturating_mul(512));
        #[cfg(not(unix))]
        return Ok(metadata.len());
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

/// Checks or writes the layout version (converting a schema 1 or 2 file) and creates
/// every table, so reads never meet a missing one.
fn prepare(txn: &WriteTransaction) -> Result<(), OpenError> {
    let mut meta = txn.open_table(META).map_err(engine)?;
    let found = meta.get(SCHEMA_KEY).map_err(engine)?.map(|v| v.value());
    match found {
        Some(SCHEMA_VERSION) => {}
        Some(SCHEMA_V1) => {
            convert_v1(txn)?;
            coarsen_message_times(txn)?;
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(engine)?;
        }
        Some(SCHEMA_V2) => {
            convert_v2(txn)?;
            coarsen_message_times(txn)?;
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(engine)?;
        }
        Some(found) => return Err(OpenError::UnknownSchema { found }),
        None => {
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(engine)?;
        }
    }
    RedbTables::open(txn).map_err(OpenError::Storage)?;
    Ok(())
}

/// Converts a schema 1 file in the open transaction: the sender key moves from
/// `queue_state` into the queue record; the counters and both message indexes are dropped
/// (the index is rebuilt from the messages). A record that does not decode is left as it
/// is: its queue is then marked damaged, as in a schema 2 file.
fn convert_v1(txn: &WriteTransaction) -> Result<(), OpenError> {
    {
        let mut queues = txn.open_table(QUEUES).map_err(engine)?;
        let states = txn.open_table(V1_QUEUE_STATE).map_err(engine)?;
        let mut converted = Vec::new();
        for item in queues.iter().map_err(engine)? {
            let (key, value) = item.map_err(engine)?;
            let rid = RecipientId::from_bytes(*key.value());
            let sender_key = match states.get(key.value()).map_err(engine)? {
                Some(state) => match codec::decode_state(state.value()) {
                    Ok(state) => state.sender_auth_key,
                    Err(_) => continue,
                },
                None => continue,
            };
            if let Ok(record) = codec::decode_record_v1(rid, value.value(), sender_key) {
                converted.push((rid, codec::encode_record(&record)));
            }
        }
        for (rid, value) in converted {
            queues
                .insert(rid.as_bytes(), value.as_slice())
                .map_err(engine)?;
        }
    }
    txn.delete_table(V1_QUEUE_STATE).map_err(engine)?;
    txn.delete_table(V1_MSG_IDS).map_err(engine)?;
    txn.delete_table(V1_EXPIRY).map_err(engine)?;
    Ok(())
}

/// Converts a schema 2 file's queue records in the open transaction: each is rewritten
/// without its creation time. A record that does not decode is left as it is (its queue
/// is then marked damaged).
fn convert_v2(txn: &WriteTransaction) -> Result<(), OpenError> {
    let mut queues = txn.open_table(QUEUES).map_err(engine)?;
    let mut converted = Vec::new();
    for item in queues.iter().map_err(engine)? {
        let (key, value) = item.map_err(engine)?;
        let rid = RecipientId::from_bytes(*key.value());
        if let Ok(record) = codec::decode_record_v2(rid, value.value()) {
            converted.push((rid, codec::encode_record(&record)));
        }
    }
    for (rid, value) in converted {
        queues
            .insert(rid.as_bytes(), value.as_slice())
            .map_err(engine)?;
    }
    Ok(())
}

/// Rounds every message's arrival time down to the hour, in the open transaction, as
/// the relay now stores them (see `codec`). A value that does not decode is left alone.
/// Only the keys of the messages to rewrite are gathered first (32 bytes each, not the
/// values), so a large store converts in bounded memory.
fn coarsen_message_times(txn: &WriteTransaction) -> Result<(), OpenError> {
    let mut messages = txn.open_table(MESSAGES).map_err(engine)?;
    let mut keys = Vec::new();
    for item in messages.iter().map_err(engine)? {
        let (key, value) = item.map_err(engine)?;
        let precise = codec::decode_message_meta(value.value())
            .is_ok_and(|(_, at)| at % MIGRATED_TIME_GRANULARITY_SECS != 0);
        if precise {
            keys.push(*key.value());
        }
    }
    for key in keys {
        let coarse = match messages.get(&key).map_err(engine)? {
            Some(value) => codec::coarsen_message(value.value(), MIGRATED_TIME_GRANULARITY_SECS),
            None => None,
        };
        if let Some(coarse) = coarse {
            messages.insert(&key, coarse.as_slice()).map_err(engine)?;
        }
    }
    Ok(())
}

/// Builds the index from every queue record and every message's id and arrival time.
fn load_index(
    queues: &impl ReadableTable<&'static [u8; QUEUE_ID_LEN], &'static [u8]>,
    messages: &impl ReadableTable<&'static [u8; MESSAGE_KEY_LEN], &'static [u8]>,
) -> Result<IdMap<RecipientId, QueueIndex>, StorageFault> {
    let mut map = IdMap::default();
    for item in queues.iter().map_err(StorageFault::engine)? {
        let (key, value) = item.map_err(StorageFault::engine)?;
        let rid = RecipientId::from_bytes(*key.value());
        let queue = match codec::decode_record(rid, value.value()) {
            Ok(record) => QueueIndex::new(&record),
            Err(_) => QueueIndex::damaged(),
        };
        map.insert(rid, queue);
    }
    // Key order: by queue, then by sequence number, so each queue's entries come in order.
    for item in messages.iter().map_err(StorageFault::engine)? {
        let (key, value) = item.map_err(StorageFault::engine)?;
        let (rid, seq) = codec::message_key_parts(key.value());
        // A message without a queue cannot be reached (nor arise: a queue's deletion takes
        // its messages in the same transaction); it is left alone.
        let Some(queue) = map.get_mut(&rid) else {
            continue;
        };
        match codec::decode_message_meta(value.value()) {
            Ok((msg_id, received_at)) => {
                queue.entries.push_back(Entry {
                    seq,
                    msg_id,
                    received_at,
                });
                queue.next_seq = queue.next_seq.max(seq.saturating_add(1));
            }
            Err(_) => queue.damaged = true,
        }
    }
    Ok(map)
}

/// The tables of one write transaction.
struct RedbTables<'t> {
    queues: Table<'t, &'static [u8; QUEUE_ID_LEN], &'static [u8]>,
    senders: Table<'t, &'static [u8; QUEUE_ID_LEN], &'static [u8; QUEUE_ID_LEN]>,
    messages: Table<'t, &'static [u8; MESSAGE_KEY_LEN], &'static [u8]>,
}

impl<'t> RedbTables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StorageFault> {
        Ok(Self {
            queues: txn.open_table(QUEUES).map_err(StorageFault::engine)?,
            senders: txn.open_table(SENDERS).map_err(StorageFault::engine)?,
            messages: txn.open_table(MESSAGES).map_err(StorageFault::engine)?,
        })
    }
}

impl RedbTables<'_> {
    /// Writes one row's change.
    fn write(&mut self, key: &RowKey, change: &Change) -> Result<(), StorageFault> {
        match (key, change) {
            (
                RowKey::Queue(_),
                Change::Put {
                    row: Row::Queue(record),
                    ..
                },
            ) => {
                let value = codec::encode_record(record);
                self.queues
                    .insert(record.recipient_id.as_bytes(), value.as_slice())
                    .map(drop)
            }
            (
                RowKey::Sender(sid),
                Change::Put {
                    row: Row::Sender(rid),
                    ..
                },
            ) => self.senders.insert(sid, rid.as_bytes()).map(drop),
            (
                RowKey::Message(rid, seq),
                Change::Put {
                    row: Row::Message(message),
                    ..
                },
            ) => {
                let key = codec::message_key(&RecipientId::from_bytes(*rid), *seq);
                self.messages
                    .insert(&key, codec::encode_message(message).as_slice())
                    .map(drop)
            }
            (RowKey::Queue(rid), Change::Delete { .. }) => self.queues.remove(rid).map(drop),
            (RowKey::Sender(sid), Change::Delete { .. }) => self.senders.remove(sid).map(drop),
            (RowKey::Message(rid, seq), Change::Delete { .. }) => {
                let key = codec::message_key(&RecipientId::from_bytes(*rid), *seq);
                self.messages.remove(&key).map(drop)
            }
            // A row under another table's key: cannot be built (see `Staged`).
            _ => {
                return Err(StorageFault::Corrupt {
                    what: "pending row",
                });
            }
        }
        .map_err(StorageFault::engine)
    }
}
