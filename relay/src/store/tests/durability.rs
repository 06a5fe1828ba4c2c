//! The redb store keeps what it acknowledged: across a clean reopen, and across SIGKILL.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use super::super::redb_store::OpenError;
use super::super::{RedbStore, StorageFault, Store, StoreError, WriteError, WriteOp, WriteOutcome};
use super::{append, assert_same_record, key, message, msg_id, one, record, rid, sid};

/// Set in the child of the crash test to the store's path.
const CRASH_CHILD_ENV: &str = "PASSAGE_STORE_CRASH_CHILD";
/// The child's batches and their size: bounds the child's run (about 4,000 messages) if the
/// parent never kills it.
const CHILD_BATCHES: u64 = 400;
const CHILD_BATCH_LEN: u64 = 10;
/// The parent kills the child once it has reported this many committed messages.
const KILL_AFTER: usize = 100;

#[test]
fn reopen_keeps_everything_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        assert!(one(&store, WriteOp::CreateQueue(record(1))).is_ok());
        assert!(one(&store, WriteOp::CreateQueue(record(2))).is_ok());
        let results = store.commit(vec![
            WriteOp::Append {
                recipient_id: rid(1),
                sender_key: Some(key(4)),
                message: message(1, 10),
                quota: 10,
                hold: true,
            },
            append(1, 2, 11),
            append(1, 3, 12),
            WriteOp::Ack {
                recipient_id: rid(1),
                msg_id: msg_id(1),
            },
            WriteOp::DeleteQueue {
                recipient_id: rid(2),
            },
        ]);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
    let store = RedbStore::open(&path).unwrap();
    let mut expected = record(1);
    expected.sender_auth_key = Some(key(4));
    assert_same_record(&store.queue(&rid(1)).unwrap().unwrap(), &expected);
    assert_same_record(&store.queue_by_sender(&sid(1)).unwrap().unwrap(), &expected);
    assert!(store.queue(&rid(2)).unwrap().is_none());
    assert_eq!(store.first_message(&rid(1)).unwrap(), Some(message(2, 11)));
    assert_eq!(store.message_count(&rid(1)).unwrap(), 2);
    let stats = store.stats().unwrap();
    assert_eq!((stats.queues, stats.messages), (1, 2));
    assert!(stats.bytes_on_disk > 0);
    // Sequence numbers go on after a reopen: a new message comes after the old ones.
    assert!(one(&store, append(1, 4, 1)).is_ok());
    assert!(
        one(
            &store,
            WriteOp::Ack {
                recipient_id: rid(1),
                msg_id: msg_id(2)
            }
        )
        .is_ok()
    );
    assert_eq!(store.first_message(&rid(1)).unwrap(), Some(message(3, 12)));
}

#[cfg(unix)]
#[test]
fn the_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    drop(RedbStore::open(&path).unwrap());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

#[test]
fn a_second_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let _first = RedbStore::open(&path).unwrap();
    assert!(matches!(RedbStore::open(&path), Err(OpenError::InUse)));
}

#[test]
fn unknown_layout_and_damaged_records_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        assert!(one(&store, WriteOp::CreateQueue(record(1))).is_ok());
    }
    // Damage the queue's record behind the store's back.
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let definition = redb::TableDefinition::<&[u8; 24], &[u8]>::new("queues");
            let mut t = txn.open_table(definition).unwrap();
            t.insert(rid(1).as_bytes(), [2u8, 7].as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    {
        let store = RedbStore::open(&path).unwrap();
        assert!(matches!(
            store.queue(&rid(1)),
            Err(StoreError::Storage(StorageFault::Corrupt { .. }))
        ));
        // A fault fails the whole batch, including ops that were fine on their own.
        let results = store.commit(vec![WriteOp::CreateQueue(record(2)), append(1, 1, 1)]);
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(WriteError::Storage(StorageFault::Corrupt { .. }))))
        );
        assert!(store.queue(&rid(2)).unwrap().is_none());
    }
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let definition = redb::TableDefinition::<&str, u64>::new("meta");
            let mut t = txn.open_table(definition).unwrap();
            t.insert("schema", 99).unwrap();
        }
        txn.commit().unwrap();
    }
    assert!(matches!(
        RedbStore::open(&path),
        Err(OpenError::UnknownSchema { found: 99 })
    ));
}

/// The child half of [`sigkill_loses_no_acknowledged_message`]: does nothing unless started
/// by it.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let store = RedbStore::open(&path).unwrap();
    assert!(one(&store, WriteOp::CreateQueue(record(1))).is_ok());
    let mut out = std::io::stdout().lock();
    for batch in 0..CHILD_BATCHES {
        let first = batch * CHILD_BATCH_LEN;
        let ops = (first..first + CHILD_BATCH_LEN)
            .map(|n| append(1, n, 5))
            .collect();
        for result in store.commit(ops) {
            assert!(matches!(result, Ok(WriteOutcome::Appended)), "{result:?}");
        }
        // Printed only once `commit` has returned: each of these must survive.
        for n in first..first + CHILD_BATCH_LEN {
            writeln!(out, "committed {n}").unwrap();
        }
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::tests::durability::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut committed = Vec::new();
    let mut killed = false;
    // Lines the child wrote before the kill are still read: they were committed too.
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            committed.push(n.parse::<u64>().unwrap());
        }
        if !killed && committed.len() >= KILL_AFTER {
            child.kill().unwrap(); // SIGKILL on unix
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        killed,
        "the child ended on its own ({status}) after {}",
        committed.len()
    );
    assert!(!status.success());

    let store = RedbStore::open(&path).unwrap();
    let count = store.message_count(&rid(1)).unwrap();
    eprintln!(
        "child reported {} commits, store holds {count}",
        committed.len()
    );
    assert!(
        count >= committed.len() as u64,
        "{count} < {}",
        committed.len()
    );
    // Present means an ack finds it.
    let acks = committed
        .iter()
        .map(|&n| WriteOp::Ack {
            recipient_id: rid(1),
            msg_id: msg_id(n),
        })
        .collect();
    for (n, result) in committed.iter().zip(store.commit(acks)) {
        assert!(
            matches!(result, Ok(WriteOutcome::Acked { found: true })),
            "message {n}: {result:?}"
        );
    }
}

/// A schema 2 file (creation times in the queue records, arrival times to the second),
/// written here with the old encoding, is converted at open: records lose the creation
/// time, arrival times are rounded down to the hour, queues, keys and messages are kept
/// and stay usable, and a second open finds schema 3 and changes nothing.
#[test]
fn a_schema_2_file_is_converted_without_creation_times_and_with_coarse_arrival_times() {
    use super::super::codec;
    const CREATED: u64 = 1_700_000_123;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let meta = redb::TableDefinition::<&str, u64>::new("meta");
    let queues_table = redb::TableDefinition::<&[u8; 24], &[u8]>::new("queues");
    let messages_table = redb::TableDefinition::<&[u8; 32], &[u8]>::new("messages");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            txn.open_table(meta).unwrap().insert("schema", 2).unwrap();
            let mut queues = txn.open_table(queues_table).unwrap();
            let senders = redb::TableDefinition::<&[u8; 24], &[u8; 24]>::new("senders");
            let mut senders = txn.open_table(senders).unwrap();
            let mut messages = txn.open_table(messages_table).unwrap();
            let mut fixed = record(1);
            fixed.sender_auth_key = Some(key(4));
            for (n, queue) in [(1u8, fixed), (2, record(2))] {
                let value = codec::encode_v2(&queue, CREATED + u64::from(n));
                queues.insert(rid(n).as_bytes(), value.as_slice()).unwrap();
                senders
                    .insert(sid(n).as_bytes(), rid(n).as_bytes())
                    .unwrap();
            }
            for (seq, n, at) in [(0u64, 30u64, CREATED + 5), (1, 20, CREATED + 3_000)] {
                messages
                    .insert(
                        &codec::message_key(&rid(1), seq),
                        codec::encode_message(&message(n, at)).as_slice(),
                    )
                    .unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let hour = CREATED - CREATED % 3600;
    for n in [40, 41] {
        let store = RedbStore::open(&path).unwrap();
        let mut expected = record(1);
        expected.sender_auth_key = Some(key(4));
        assert_same_record(&store.queue_by_sender(&sid(1)).unwrap().unwrap(), &expected);
        assert_same_record(&store.queue(&rid(2)).unwrap().unwrap(), &record(2));
        assert_eq!(
            store.first_message(&rid(1)).unwrap(),
            Some(message(30, hour))
        );
        let second = store.message_after(&rid(1), &msg_id(30)).unwrap().unwrap();
        assert_eq!(second.received_at % 3600, 0);
        assert!(one(&store, append(2, n, hour)).is_ok());
    }
    // The file itself: schema 3, no creation time, no arrival time finer than an hour.
    let db = redb::Database::create(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert_eq!(
        txn.open_table(meta)
            .unwrap()
            .get("schema")
            .unwrap()
            .unwrap()
            .value(),
        3
    );
    let queues = txn.open_table(queues_table).unwrap();
    for item in redb::ReadableTable::iter(&queues).unwrap() {
        let (_, value) = item.unwrap();
        let value = value.value();
        assert_eq!(value[0], 3);
        for created in [CREATED + 1, CREATED + 2] {
            let bytes = created.to_be_bytes();
            assert!(
                !value.windows(8).any(|w| w == bytes),
                "a creation time is left"
            );
        }
    }
    let messages = txn.open_table(messages_table).unwrap();
    let mut count = 0;
    for item in redb::ReadableTable::iter(&messages).unwrap() {
        let (_, value) = item.unwrap();
        let (_, at) = codec::decode_message_meta(value.value()).unwrap();
        assert_eq!(at % 3600, 0, "{at}");
        count += 1;
    }
    assert_eq!(count, 4);
}

/// A schema 1 file (four tables per message, sender key in `queue_state`) is converted at
/// open: queues, sender keys and messages are kept, in order, and stay usable.
#[test]
fn a_schema_1_file_is_converted() {
    use super::super::codec;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta = redb::TableDefinition::<&str, u64>::new("meta");
            txn.open_table(meta).unwrap().insert("schema", 1).unwrap();
            let bytes = redb::TableDefinition::<&[u8; 24], &[u8]>::new;
            let mut queues = txn.open_table(bytes("queues")).unwrap();
            let mut states = txn.open_table(bytes("queue_state")).unwrap();
            let senders = redb::TableDefinition::<&[u8; 24], &[u8; 24]>::new("senders");
            let mut senders = txn.open_table(senders).unwrap();
            let messages = redb::TableDefinition::<&[u8; 32], &[u8]>::new("messages");
            let mut messages = txn.open_table(messages).unwrap();
            let msg_ids = redb::TableDefinition::<&[u8; 48], &[u8; 16]>::new("msg_ids");
            txn.open_table(msg_ids)
                .unwrap()
                .insert(&[1; 48], &[2; 16])
                .unwrap();
            let mut fixed = record(1);
            fixed.sender_auth_key = Some(key(4));
            for (n, queue, count) in [(1u8, fixed, 2u64), (2, record(2), 0)] {
                let (value, state) = codec::encode_v1(&queue, count, 7);
                queues.insert(rid(n).as_bytes(), value.as_slice()).unwrap();
                states.insert(rid(n).as_bytes(), state.as_slice()).unwrap();
                senders
                    .insert(sid(n).as_bytes(), rid(n).as_bytes())
                    .unwrap();
            }
            for (seq, n) in [(5u64, 30u64), (6, 20)] {
                messages
                    .insert(
                        &codec::message_key(&rid(1), seq),
                        codec::encode_message(&message(n, 7_300)).as_slice(),
                    )
                    .unwrap();
            }
        }
        txn.commit().unwrap();
    }
    for _ in 0..2 {
        let store = RedbStore::open(&path).unwrap();
        let mut expected = record(1);
        expected.sender_auth_key = Some(key(4));
        assert_same_record(&store.queue_by_sender(&sid(1)).unwrap().unwrap(), &expected);
        assert_same_record(&store.queue(&rid(2)).unwrap().unwrap(), &record(2));
        assert_eq!(store.message_count(&rid(1)).unwrap(), 2);
        // Arrival times rounded down to the hour by the conversion.
        assert_eq!(
            store.first_message(&rid(1)).unwrap(),
            Some(message(30, 7_200))
        );
        assert_eq!(
            store.message_after(&rid(1), &msg_id(30)).unwrap(),
            Some(message(20, 7_200))
        );
        assert_eq!(store.stats().unwrap().messages, 2);
    }
    let store = RedbStore::open(&path).unwrap();
    // The fixed key still holds; a new message comes after the old ones.
    assert!(matches!(
        one(
            &store,
            WriteOp::Append {
                recipient_id: rid(1),
                sender_key: Some(key(5)),
                message: message(1, 200),
                quota: 10,
                hold: true,
            }
        ),
        Err(WriteError::SenderKeyMismatch)
    ));
    assert!(one(&store, append(1, 40, 200)).is_ok());
    for n in [30, 20] {
        let ack = WriteOp::Ack {
            recipient_id: rid(1),
            msg_id: msg_id(n),
        };
        assert!(matches!(
            one(&store, ack),
            Ok(WriteOutcome::Acked { found: true })
        ));
    }
    assert_eq!(
        store.first_message(&rid(1)).unwrap(),
        Some(message(40, 200))
    );
    drop(store);
    // The old tables are gone.
    let db = redb::Database::create(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_string())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "queue_state" || n == "msg_ids" || n == "expiry"),
        "{names:?}"
    );
}

/// `commit` called from several threads at once (the trait allows it): the in-memory index
/// loses no update, and agrees with what a reopen rebuilds from the file.
#[test]
fn concurrent_commits_lose_no_update() {
    const THREADS: u64 = 4;
    const EACH: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = std::sync::Arc::new(RedbStore::open(&path).unwrap());
        assert!(one(store.as_ref(), WriteOp::CreateQueue(record(1))).is_ok());
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = std::sync::Arc::clone(&store);
                std::thread::spawn(move || {
                    for n in 0..EACH {
                        assert!(one(store.as_ref(), append(1, t * 1_000 + n, 5)).is_ok());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(store.message_count(&rid(1)).unwrap(), THREADS * EACH);
        assert_eq!(store.stats().unwrap().messages, THREADS * EACH);
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.message_count(&rid(1)).unwrap(), THREADS * EACH);
}
