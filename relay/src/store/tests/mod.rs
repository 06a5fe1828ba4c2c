//! Tests of the store: one suite for both stores (`suite`), redb durability and crash
//! safety (`durability`), the group committer (`group`), changes applied ahead of the disk
//! (`write_behind`).

mod durability;
mod group;
mod suite;
mod write_behind;

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_wire::ids::MSG_ID_LEN;
use passage_wire::{MsgId, QUEUE_ID_LEN, RecipientId, SenderId};

use super::{QueueRecord, Store, StoredMessage, WriteError, WriteOp, WriteOutcome};

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
        created_at: 1_000 + u64::from(n),
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
    assert_eq!(a.created_at, b.created_at);
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
