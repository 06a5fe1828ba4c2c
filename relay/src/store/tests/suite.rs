//! One suite, run against [`MemoryStore`] and [`RedbStore`]: each case gets a fresh store.

use std::sync::Arc;

use super::super::{
    MemoryStore, RedbStore, StorageFault, Store, StoreStats, StoredMessage, WriteError, WriteOp,
    WriteOutcome,
};
use super::{append, assert_same_record, key, message, msg_id, one, record, rid, sid};
use passage_wire::{MsgId, RecipientId};

type Case = fn(&dyn Store);

const CASES: &[(&str, Case)] = &[
    ("create_and_lookup", create_and_lookup),
    ("duplicate_ids_are_refused", duplicate_ids_are_refused),
    (
        "append_keeps_order_and_ack_releases_next",
        append_order_and_ack,
    ),
    (
        "quota_at_the_limit_and_one_past",
        quota_at_the_limit_and_one_past,
    ),
    (
        "sender_key_fixed_by_first_append",
        sender_key_fixed_by_first_append,
    ),
    (
        "delete_queue_removes_everything",
        delete_queue_removes_everything,
    ),
    (
        "expire_at_the_boundary_and_one_past",
        expire_at_the_boundary,
    ),
    ("batch_ops_fail_alone", batch_ops_fail_alone),
    (
        "message_after_and_has_message",
        message_after_and_has_message,
    ),
    ("messages_from_a_cursor", messages_from_a_cursor),
    ("stats_count", stats_count),
    (
        "global_limits_refuse_additions_only",
        global_limits_refuse_additions_only,
    ),
    ("queue_keys_follow_the_queue", queue_keys_follow_the_queue),
];

fn run_suite(make: impl Fn() -> (Box<dyn Store>, Option<tempfile::TempDir>)) {
    for (name, case) in CASES {
        let (store, _dir) = make();
        eprintln!("case {name}");
        case(store.as_ref());
    }
}

#[test]
fn memory_store_passes_the_suite() {
    run_suite(|| (Box::new(MemoryStore::new()), None));
}

#[test]
fn redb_store_passes_the_suite() {
    run_suite(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("store.redb")).unwrap();
        (Box::new(store), Some(dir))
    });
}

fn create_and_lookup(store: &dyn Store) {
    assert!(store.queue(&rid(1)).unwrap().is_none());
    assert!(store.queue_by_sender(&sid(1)).unwrap().is_none());
    assert!(matches!(
        one(store, WriteOp::CreateQueue(record(1))),
        Ok(WriteOutcome::Created)
    ));
    assert_same_record(&store.queue(&rid(1)).unwrap().unwrap(), &record(1));
    assert_same_record(
        &store.queue_by_sender(&sid(1)).unwrap().unwrap(),
        &record(1),
    );
    // The ids of one queue do not cross over.
    assert!(store.queue(&rid(2)).unwrap().is_none());
    assert!(store.queue_by_sender(&sid(2)).unwrap().is_none());
    assert_eq!(store.message_count(&rid(1)).unwrap(), 0);
    assert!(store.first_message(&rid(1)).unwrap().is_none());
    // A sender key set at creation is kept.
    let mut with_key = record(2);
    with_key.sender_auth_key = Some(key(9));
    assert!(one(store, WriteOp::CreateQueue(with_key.clone())).is_ok());
    assert_same_record(&store.queue_by_sender(&sid(2)).unwrap().unwrap(), &with_key);
}

fn duplicate_ids_are_refused(store: &dyn Store) {
    assert!(one(store, WriteOp::CreateQueue(record(1))).is_ok());
    let mut same_rid = record(2);
    same_rid.recipient_id = rid(1);
    let mut same_sid = record(3);
    same_sid.sender_id = sid(1);
    for op in [
        WriteOp::CreateQueue(record(1)),
        WriteOp::CreateQueue(same_rid),
        WriteOp::CreateQueue(same_sid),
    ] {
        assert!(matches!(one(store, op), Err(WriteError::DuplicateId)));
    }
    assert!(store.queue(&rid(3)).unwrap().is_none());
    assert!(store.queue_by_sender(&sid(2)).unwrap().is_none());
    assert!(one(store, append(1, 7, 10)).is_ok());
    assert!(matches!(
        one(store, append(1, 7, 11)),
        Err(WriteError::DuplicateId)
    ));
    assert_eq!(store.message_count(&rid(1)).unwrap(), 1);
}

fn append_order_and_ack(store: &dyn Store) {
    assert!(matches!(
        one(store, append(1, 1, 10)),
        Err(WriteError::NoQueue)
    ));
    let ack = |n| WriteOp::Ack {
        recipient_id: rid(1),
        msg_id: msg_id(n),
    };
    assert!(matches!(one(store, ack(1)), Err(WriteError::NoQueue)));
    assert!(one(store, WriteOp::CreateQueue(record(1))).is_ok());
    assert!(one(store, WriteOp::CreateQueue(record(2))).is_ok());
    // Ids in descending order and equal times: order is arrival, not id or time.
    for n in [30, 20, 10] {
        assert!(matches!(
            one(store, append(1, n, 500)),
            Ok(WriteOutcome::Appended)
        ));
    }
    assert!(one(store, append(2, 99, 1)).is_ok());
    assert_eq!(store.message_count(&rid(1)).unwrap(), 3);
    assert_eq!(
        store.first_message(&rid(1)).unwrap(),
        Some(message(30, 500))
    );
    assert!(matches!(
        one(store, ack(30)),
        Ok(WriteOutcome::Acked { found: true })
    ));
    assert_eq!(
        store.first_message(&rid(1)).unwrap(),
        Some(message(20, 500))
    );
    assert!(matches!(
        one(store, ack(30)),
        Ok(WriteOutcome::Acked { found: false })
    ));
    // Acking out of order removes that one only.
    assert!(matches!(
        one(store, ack(10)),
        Ok(WriteOutcome::Acked { found: true })
    ));
    assert_eq!(
        store.first_message(&rid(1)).unwrap(),
        Some(message(20, 500))
    );
    assert_eq!(store.message_count(&rid(1)).unwrap(), 1);
    // Another queue's message cannot be acked through this one.
    assert!(matches!(
        one(store, ack(99)),
        Ok(WriteOutcome::Acked { found: false })
    ));
    assert_eq!(store.message_count(&rid(2)).unwrap(), 1);
    assert!(one(store, ack(20)).is_ok());
    assert!(store.first_message(&rid(1)).unwrap().is_none());
    assert_eq!(store.message_count(&rid(1)).unwrap(), 0);
}

fn quota_at_the_limit_and_one_past(store: &dyn Store) {
    const QUOTA: usize = 3;
    let append_q = |n| WriteOp::Append {
        recipient_id: rid(1),
        sender_key: None,
        message: message(n, 5),
        quota: QUOTA,
        hold: true,
    };
    assert!(one(store, WriteOp::CreateQueue(record(1))).is_ok());
    for n in 0..QUOTA as u64 {
        assert!(matches!(
            one(store, append_q(n)),
            Ok(WriteOutcome::Appended)
        ));
    }
    assert!(matches!(one(store, append_q(100)), Err(WriteError::Quota)));
    assert_eq!(store.message_count(&rid(1)).unwrap(), QUOTA as u64);
    assert!(
        one(
            store,
            WriteOp::Ack {
                recipient_id: rid(1),
                msg_id: msg_id(0)
            }
        )
        .is_ok()
    );
    assert!(one(store, append_q(100)).is_ok());
    assert!(matches!(one(store, append_q(101)), Err(WriteError::Quota)));
    // A quota of zero refuses everything.
    assert!(one(store, WriteOp::CreateQueue(record(2))).is_ok());
    let zero = WriteOp::Append {
        recipient_id: rid(2),
        sender_key: None,
        message: message(1, 5),
        quota: 0,
        hold: true,
    };
    assert!(matches!(one(store, zero), Err(WriteError::Quota)));
}

fn sender_key_fixed_by_first_append(store: &dyn Store) {
    let send = |n, sender_key, quota| WriteOp::Append {
        recipient_id: rid(1),
        sender_key,
        message: message(n, 5),
        quota,
        hold: true,
    };
    let fixed = |store: &dyn Store| store.queue(&rid(1)).unwrap().unwrap().sender_auth_key;
    assert!(one(store, WriteOp::CreateQueue(record(1))).is_ok());
    // An append without a key leaves it open; a failed append does not fix it.
    assert!(one(store, send(1, None, 10)).is_ok());
    assert!(matches!(
        one(store, send(2, Some(key(7)), 1)),
        Err(WriteError::Quota)
    ));
    assert_eq!(fixed(store), None);
    assert!(one(store, send(3, Some(key(8)), 10)).is_ok());
    assert_eq!(fixed(store), Some(key(8)));
    assert_eq!(
        store
            .queue_by_sender(&sid(1))
            .unwrap()
            .unwrap()
            .sender_auth_key,
        Some(key(8))
    );
    assert!(matches!(
        one(store, send(4, Some(key(7)), 10)),
        Err(WriteError::SenderKeyMismatch)
    ));
    assert!(one(store, send(5, Some(key(8)), 10)).is_ok());
    assert!(one(store, send(6, None, 10)).is_ok());
    assert_eq!(fixed(store), Some(key(8)));
    assert_eq!(store.message_count(&rid(1)).unwrap(), 4);
}

fn delete_queue_removes_everything(store: &dyn Store) {
    let delete = |q| WriteOp::DeleteQueue {
        recipient_id: rid(q),
    };
    assert!(matches!(
        one(store, delete(1)),
        Ok(WriteOutcome::Deleted { found: false })
    ));
    assert!(one(store, WriteOp::CreateQueue(record(1))).is_ok());
    assert!(one(store, WriteOp::CreateQueue(record(2))).is_ok());
    for n in 0..4 {
        assert!(one(store, append(1, n, 10 + n)).is_ok());
    }
    assert!(one(store, append(2, 50, 10)).is_ok());
    assert!(matches!(
        one(store, delete(1)),
        Ok(WriteOutcome::Deleted { found: true })
    ));
    assert!(store.queue(&rid(1)).unwrap().is_none());
    assert!(store.queue_by_sender(&sid(1)).unwrap().is_none());
    assert!(store.first_message(&rid(1)).unwrap().is_none());
    assert_eq!(store.message_count(&rid(1)).unwrap(), 0);
    let stats = store.stats().unwrap();
    assert_eq!((stats.queues, stats.messages), (1, 1));
    // No index entry is left behind: the ids are free again and expiry finds nothing of it.
    assert!(one(store, WriteOp::CreateQueue(record(1))).is_ok());
    assert!(one(store, append(1, 0, 10)).is_ok());
    assert!(matches!(
        one(
            store,
            WriteOp::Expire {
                received_before: u64::MAX
            }
        ),
        Ok(WriteOutcome::Expired { count: 2 })
    ));
    assert_eq!(store.message_count(&rid(2)).unwrap(), 0);
}

fn expire_at_the_boundary(store: &dyn Store) {
    let expire = |before| match one(
        store,
        WriteOp::Expire {
            received_before: before,
        },
    ) {
        Ok(WriteOutcome::Expired { count }) => count,
        other => panic!("{other:?}"),
    };
    assert_eq!(expire(u64::MAX), 0);
    assert!(one(store, WriteOp::CreateQueue(record(1))).is_ok());
    assert!(one(store, WriteOp::CreateQueue(record(2))).is_ok());
    // Arrival times out of order across queues; more messages than one expiry chunk.
    for (q, n, at) in [
        (1, 1, 100),
        (2, 2, 100),
        (1, 3, 200),
        (2, 4, 50),
        (1, 5, 300),
    ] {
        assert!(one(store, append(q, n, at)).is_ok());
    }
    for n in 10..15 {
        assert!(one(store, append(2, n, 150)).is_ok());
    }
    assert_eq!(expire(50), 0);
    assert_eq!(expire(51), 1);
    assert_eq!(expire(100), 0);
    assert_eq!(expire(101), 2);
    assert_eq!(store.first_message(&rid(1)).unwrap(), Some(message(3, 200)));
    assert_eq!(store.message_count(&rid(1)).unwrap(), 2);
    assert_eq!(store.message_count(&rid(2)).unwrap(), 5);
    assert_eq!(expire(151), 5);
    assert_eq!(store.message_count(&rid(2)).unwrap(), 0);
    assert!(store.first_message(&rid(2)).unwrap().is_none());
    assert_eq!(expire(u64::MAX), 2);
    assert_eq!(store.stats().unwrap().messages, 0);
    // Expired ids are free again.
    assert!(one(store, append(1, 1, 400)).is_ok());
}

fn batch_ops_fail_alone(store: &dyn Store) {
    let quota_one = |n| WriteOp::Append {
        recipient_id: rid(1),
        sender_key: None,
        message: message(n, 5),
        quota: 1,
        hold: true,
    };
    let results = store.commit(vec![
        WriteOp::CreateQueue(record(1)),
        quota_one(1),
        append(9, 2, 5),
        quota_one(3),
        WriteOp::CreateQueue(record(1)),
        WriteOp::CreateQueue(record(2)),
        append(2, 4, 5),
        WriteOp::DeleteQueue {
            recipient_id: rid(2),
        },
        append(2, 5, 5),
    ]);
    let summary: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(outcome) => format!("{outcome:?}"),
            Err(error) => format!("{error:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "Created",
            "Appended",
            "NoQueue",
            "Quota",
            "DuplicateId",
            "Created",
            "Appended",
            "Deleted { found: true }",
            "NoQueue",
        ]
    );
    assert_eq!(store.first_message(&rid(1)).unwrap(), Some(message(1, 5)));
    assert!(store.queue(&rid(2)).unwrap().is_none());
    assert_eq!(store.stats().unwrap().messages, 1);
    assert!(store.commit(Vec::new()).is_empty());
}

fn stats_count(store: &dyn Store) {
    let stats = store.stats().unwrap();
    assert_eq!((stats.queues, stats.messages), (0, 0));
    for q in 1..=3 {
        assert!(one(store, WriteOp::CreateQueue(record(q))).is_ok());
    }
    for n in 0..5 {
        assert!(one(store, append(1 + (n % 2) as u8, n, 10)).is_ok());
    }
    let stats = store.stats().unwrap();
    assert_eq!((stats.queues, stats.messages), (3, 5));
    assert!(
        one(
            store,
            WriteOp::DeleteQueue {
                recipient_id: rid(1)
            }
        )
        .is_ok()
    );
    let stats = store.stats().unwrap();
    assert_eq!((stats.queues, stats.messages), (2, 2));
}

#[test]
fn memory_store_can_fail_on_purpose() {
    let store = MemoryStore::new();
    assert!(one(&store, WriteOp::CreateQueue(record(1))).is_ok());
    store.set_failing(true);
    let results = store.commit(vec![append(1, 1, 5), WriteOp::CreateQueue(record(2))]);
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(WriteError::Storage(StorageFault::Injected))))
    );
    assert!(store.queue(&rid(1)).is_err());
    store.set_failing(false);
    assert_eq!(store.message_count(&rid(1)).unwrap(), 0);
    assert!(store.queue(&rid(2)).unwrap().is_none());
    assert_eq!(
        store.stats().unwrap(),
        StoreStats {
            queues: 1,
            messages: 0,
            bytes_on_disk: 0
        }
    );
}

fn message_after_and_has_message(store: &dyn Store) {
    assert!(one(store, WriteOp::CreateQueue(record(1))).is_ok());
    assert!(one(store, WriteOp::CreateQueue(record(2))).is_ok());
    for n in [30, 20, 10] {
        assert!(one(store, append(1, n, 500)).is_ok());
    }
    assert!(one(store, append(2, 99, 1)).is_ok());
    // In arrival order, whatever the ids; never crossing into another queue.
    assert_eq!(
        store.message_after(&rid(1), &msg_id(30)).unwrap(),
        Some(message(20, 500))
    );
    assert_eq!(
        store.message_after(&rid(1), &msg_id(20)).unwrap(),
        Some(message(10, 500))
    );
    assert_eq!(store.message_after(&rid(1), &msg_id(10)).unwrap(), None);
    // An id not (or no longer) in the queue: from the start.
    assert_eq!(
        store.message_after(&rid(1), &msg_id(77)).unwrap(),
        Some(message(30, 500))
    );
    assert!(store.has_message(&rid(1), &msg_id(20)).unwrap());
    assert!(!store.has_message(&rid(2), &msg_id(20)).unwrap());
    let ack = WriteOp::Ack {
        recipient_id: rid(1),
        msg_id: msg_id(20),
    };
    assert!(one(store, ack).is_ok());
    assert!(!store.has_message(&rid(1), &msg_id(20)).unwrap());
    assert_eq!(
        store.message_after(&rid(1), &msg_id(20)).unwrap(),
        Some(message(30, 500))
    );
    assert_eq!(
        store.message_after(&rid(1), &msg_id(30)).unwrap(),
        Some(message(10, 500))
    );
}

fn messages_from_a_cursor(store: &dyn Store) {
    assert!(one(store, WriteOp::CreateQueue(record(1))).is_ok());
    assert!(one(store, WriteOp::CreateQueue(record(2))).is_ok());
    assert_eq!(store.messages_from(&rid(1), 0, 16).unwrap(), vec![]);
    for n in [30, 20, 10] {
        assert!(one(store, append(1, n, 500)).is_ok());
    }
    assert!(one(store, append(2, 99, 1)).is_ok());
    let ids = |found: Vec<(u64, Arc<StoredMessage>)>| -> Vec<(u64, MsgId)> {
        found.into_iter().map(|(seq, m)| (seq, m.msg_id)).collect()
    };
    // In arrival order with their sequence numbers; never crossing into another queue.
    assert_eq!(
        ids(store.messages_from(&rid(1), 0, 16).unwrap()),
        vec![(0, msg_id(30)), (1, msg_id(20)), (2, msg_id(10))]
    );
    assert_eq!(
        store.messages_from(&rid(1), 0, 1).unwrap(),
        vec![(0, Arc::new(message(30, 500)))]
    );
    assert_eq!(
        ids(store.messages_from(&rid(1), 2, 16).unwrap()),
        vec![(2, msg_id(10))]
    );
    assert_eq!(store.messages_from(&rid(1), 3, 16).unwrap(), vec![]);
    assert_eq!(store.messages_from(&rid(1), 0, 0).unwrap(), vec![]);
    assert_eq!(store.messages_from(&rid(3), 0, 16).unwrap(), vec![]);
    // An acknowledged message leaves a gap; the cursor goes on past it, and a new
    // message gets the next sequence number.
    let ack = WriteOp::Ack {
        recipient_id: rid(1),
        msg_id: msg_id(20),
    };
    assert!(one(store, ack).is_ok());
    assert_eq!(
        ids(store.messages_from(&rid(1), 1, 16).unwrap()),
        vec![(2, msg_id(10))]
    );
    assert!(one(store, append(1, 40, 500)).is_ok());
    assert_eq!(
        ids(store.messages_from(&rid(1), 3, 16).unwrap()),
        vec![(3, msg_id(40))]
    );
}

/// At a global limit (queues, bytes, disk), `CreateQueue` and `Append` fail with `Full`
/// and change nothing, in one batch as across batches; `Ack`, `DeleteQueue` and
/// `Expire` still work and make room again.
fn global_limits_refuse_additions_only(store: &dyn Store) {
    use crate::limits::{STORED_MESSAGE_BYTES, STORED_QUEUE_BYTES};
    let capacity = store.capacity();
    capacity.set_limits(2, 2 * STORED_QUEUE_BYTES + 2 * STORED_MESSAGE_BYTES);
    // Three creations in one batch: the third is over the count.
    let results = store.commit(vec![
        WriteOp::CreateQueue(record(1)),
        WriteOp::CreateQueue(record(2)),
        WriteOp::CreateQueue(record(3)),
    ]);
    assert!(matches!(results[0], Ok(WriteOutcome::Created)));
    assert!(matches!(results[1], Ok(WriteOutcome::Created)));
    assert!(matches!(results[2], Err(WriteError::Full)));
    assert!(store.queue(&rid(3)).unwrap().is_none());
    // Bytes: two messages fit, a third in the same batch does not.
    let results = store.commit(vec![append(1, 1, 10), append(2, 2, 10), append(1, 3, 10)]);
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(matches!(results[2], Err(WriteError::Full)), "{results:?}");
    assert!(matches!(
        one(store, append(2, 4, 10)),
        Err(WriteError::Full)
    ));
    assert_eq!(store.stats().unwrap().messages, 2);
    // Removal makes room.
    assert!(matches!(
        one(
            store,
            WriteOp::Ack {
                recipient_id: rid(1),
                msg_id: msg_id(1)
            }
        ),
        Ok(WriteOutcome::Acked { found: true })
    ));
    assert!(matches!(
        one(store, append(2, 4, 10)),
        Ok(WriteOutcome::Appended)
    ));
    // A disk below its watermark refuses both kinds, and nothing else.
    capacity.set_limits(u64::MAX, u64::MAX);
    capacity.set_disk_low(true);
    assert!(matches!(
        one(store, append(1, 5, 10)),
        Err(WriteError::Full)
    ));
    assert!(matches!(
        one(store, WriteOp::CreateQueue(record(3))),
        Err(WriteError::Full)
    ));
    assert!(matches!(
        one(
            store,
            WriteOp::Ack {
                recipient_id: rid(2),
                msg_id: msg_id(2)
            }
        ),
        Ok(WriteOutcome::Acked { found: true })
    ));
    assert!(matches!(
        one(
            store,
            WriteOp::Expire {
                received_before: 11
            }
        ),
        Ok(WriteOutcome::Expired { count: 1 })
    ));
    assert!(matches!(
        one(
            store,
            WriteOp::DeleteQueue {
                recipient_id: rid(2)
            }
        ),
        Ok(WriteOutcome::Deleted { found: true })
    ));
    capacity.set_disk_low(false);
    assert!(matches!(
        one(store, append(1, 5, 10)),
        Ok(WriteOutcome::Appended)
    ));
    assert!(matches!(
        one(store, WriteOp::CreateQueue(record(3))),
        Ok(WriteOutcome::Created)
    ));
}

/// The keys authentication takes from the index: there as soon as the queue is, the
/// sender key once fixed, gone with the queue; by recipient id and by sender id alike.
fn queue_keys_follow_the_queue(store: &dyn Store) {
    assert_eq!(store.queue_keys(&rid(1)).unwrap(), None);
    assert_eq!(store.queue_keys_by_sender(&sid(1)).unwrap(), None);
    one(store, WriteOp::CreateQueue(record(1))).unwrap();
    one(store, WriteOp::CreateQueue(record(2))).unwrap();
    let keys = store.queue_keys_by_sender(&sid(1)).unwrap().unwrap();
    assert_eq!(keys.recipient_id, rid(1));
    assert_eq!(keys.recipient_auth_key, record(1).recipient_auth_key);
    assert_eq!(keys.sender_auth_key, None);
    assert_eq!(store.queue_keys(&rid(1)).unwrap(), Some(keys));
    // Ids do not cross over.
    assert_eq!(
        store
            .queue_keys(&RecipientId::from_bytes(*sid(1).as_bytes()))
            .unwrap(),
        None
    );
    let fix = WriteOp::Append {
        recipient_id: rid(1),
        sender_key: Some(key(9)),
        message: message(1, 10),
        quota: 10,
        hold: false,
    };
    one(store, fix).unwrap();
    assert_eq!(
        store
            .queue_keys_by_sender(&sid(1))
            .unwrap()
            .unwrap()
            .sender_auth_key,
        Some(key(9))
    );
    one(
        store,
        WriteOp::DeleteQueue {
            recipient_id: rid(1),
        },
    )
    .unwrap();
    assert_eq!(store.queue_keys(&rid(1)).unwrap(), None);
    assert_eq!(store.queue_keys_by_sender(&sid(1)).unwrap(), None);
    assert_eq!(
        store
            .queue_keys_by_sender(&sid(2))
            .unwrap()
            .unwrap()
            .recipient_id,
        rid(2)
    );
}
