//! Byte layouts of the store's keys and values (schema version 3).
//!
//! Keys are fixed-size concatenations, big-endian, so that byte order is the order we
//! scan in (a queue's messages by sequence number).
//! Values that may grow new fields start with a version byte and go through the bounded
//! [`Reader`]: a value that does not decode is a [`StorageFault::Corrupt`], never a panic.
//!
//! | table      | key                         | value                                               |
//! |------------|-----------------------------|-----------------------------------------------------|
//! | `meta`     | name (str)                  | u64 (`schema`: [`SCHEMA_VERSION`])                  |
//! | `queues`   | recipient id (24)           | v3 ‖ sender id ‖ auth key ‖ dh key ‖ relay secret ‖ sender key flag (‖ key) |
//! | `senders`  | sender id (24)              | recipient id (24)                                   |
//! | `messages` | recipient id ‖ seq u64 (32) | v1 ‖ msg id ‖ received_at ‖ envelope                |
//!
//! No time is kept for a queue. A message's `received_at` is what retention needs and
//! no more: the relay rounds it down when it accepts the message (to the hour, see
//! [`crate::limits::Limits::time_granularity_secs`]), so neither the file nor the index
//! holds a time a seized relay could match to the second against connection logs.
//! SECURITY.md lists every field and why it is kept.
//!
//! A message value is 1 + 24 + 8 + 3904 = 3937 bytes, so with its 32-byte key it fits one
//! 4 KiB B-tree leaf. A message is written once (append) and deleted once (ack or expiry):
//! the counters, the id → sequence number lookup and the arrival times live in the
//! in-memory index (`index` module), rebuilt at open from these values. The queue record
//! is rewritten once per queue, when the first `SEND` fixes its sender key.
//!
//! Schema version 1 (until 0.1) kept the sender key and counters in a `queue_state` table
//! and two message indexes (`msg_ids`, `expiry`) on disk, so that each message touched four
//! tables when it arrived and again when it left. Schema version 2 kept each queue's
//! creation time (to the second) in its record, and full-precision arrival times.
//! [`RedbStore::open`](super::RedbStore::open) converts either in place, in one
//! transaction: records rewritten without the creation time, every arrival time rounded
//! down to [`MIGRATED_TIME_GRANULARITY_SECS`] (the `messages` layout is the same).

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::codec::{Reader, Writer};
use passage_crypto::primitives::{DhPublic, DhSecret, X25519_LEN};
use passage_wire::ids::MSG_ID_LEN;
use passage_wire::{MsgId, QUEUE_ID_LEN, RecipientId, SenderId};
use zeroize::Zeroizing;

use super::{QueueRecord, StorageFault, StoredMessage};

/// The layout version written in the `meta` table. A file with another one (other than
/// [`SCHEMA_V1`] and [`SCHEMA_V2`], which are converted) is refused at open rather than
/// misread.
pub(crate) const SCHEMA_VERSION: u64 = 3;

/// The first layout, converted at open.
pub(crate) const SCHEMA_V1: u64 = 1;

/// The layout with creation times and full-precision arrival times, converted at open.
pub(crate) const SCHEMA_V2: u64 = 2;

/// What a converted file's arrival times are rounded down to: the granularity of the
/// default retention (the store does not know the relay's retention setting; with a
/// retention under a day, converted messages may expire up to an hour early).
pub(crate) const MIGRATED_TIME_GRANULARITY_SECS: u64 = 3600;

/// Version byte of the `messages` values and of the version 1 `queues` and `queue_state`
/// values.
const VALUE_VERSION: u8 = 1;

/// Version byte of the `queues` values of schema 3 (with the sender key, without the
/// creation time).
const RECORD_VERSION: u8 = 3;

/// Version byte of the `queues` values of schema 2 (with the creation time).
const RECORD_V2: u8 = 2;

/// `messages` key: recipient id ‖ sequence number.
pub(crate) const MESSAGE_KEY_LEN: usize = QUEUE_ID_LEN + 8;
const RECORD_LEN: usize = 1 + QUEUE_ID_LEN + 3 * X25519_LEN + 1 + X25519_LEN;
/// A schema 1 or 2 record at its longest (with the creation time).
#[cfg(test)]
const OLD_RECORD_LEN: usize = RECORD_LEN + 8;
const MESSAGE_VALUE_LEN: usize = 1 + MSG_ID_LEN + 8 + ENVELOPE_LEN;

/// The most a message's key and value may take together so that one message fits one of
/// redb's 4 KiB leaf pages (4096 less the page header and the entry's offsets, with margin).
/// Past it, each message takes an 8 KiB page: measured, 8.4 KB on disk per entry instead of
/// 4.7 KB. Any new field in the message value must come out of this budget.
const ONE_PAGE_ENTRY: usize = 4096 - 16;
const _: () = assert!(MESSAGE_KEY_LEN + MESSAGE_VALUE_LEN <= ONE_PAGE_ENTRY);

/// The mutable part of a queue in schema 1: its sender key and message counters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueState {
    /// Fixed by the first append that names one.
    pub sender_auth_key: Option<DhPublic>,
    /// Messages held now.
    pub count: u64,
    /// Sequence number of the next message; never reused, so order is arrival order.
    pub next_seq: u64,
}

fn corrupt(what: &'static str) -> impl Fn(passage_crypto::codec::DecodeError) -> StorageFault {
    move |_| StorageFault::Corrupt { what }
}

/// Encodes a queue's record. Holds the relay secret, so the buffer is zeroized when
/// dropped.
pub(crate) fn encode_record(record: &QueueRecord) -> Zeroizing<Vec<u8>> {
    // Exact capacity: a growing Vec would leave copies of the secret behind.
    let mut w = Writer::with_capacity(RECORD_LEN);
    w.put_u8(RECORD_VERSION);
    w.put(record.sender_id.as_bytes());
    w.put(record.recipient_auth_key.as_bytes());
    w.put(record.recipient_dh_key.as_bytes());
    w.put(record.relay_dh_secret.to_bytes().as_slice());
    put_sender_key(&mut w, record.sender_auth_key.as_ref());
    Zeroizing::new(w.into_vec())
}

fn put_sender_key(w: &mut Writer, key: Option<&DhPublic>) {
    match key {
        None => w.put_u8(0),
        Some(key) => {
            w.put_u8(1);
            w.put(key.as_bytes());
        }
    }
}

/// Decodes a `queues` value.
pub(crate) fn decode_record(
    recipient_id: RecipientId,
    bytes: &[u8],
) -> Result<QueueRecord, StorageFault> {
    decode_record_with(recipient_id, bytes, RECORD_VERSION)
}

/// Decodes a schema 2 `queues` value; its creation time is read and dropped.
pub(crate) fn decode_record_v2(
    recipient_id: RecipientId,
    bytes: &[u8],
) -> Result<QueueRecord, StorageFault> {
    decode_record_with(recipient_id, bytes, RECORD_V2)
}

fn decode_record_with(
    recipient_id: RecipientId,
    bytes: &[u8],
    version: u8,
) -> Result<QueueRecord, StorageFault> {
    const WHAT: &str = "queue";
    let mut r = Reader::new(bytes);
    if r.u8().map_err(corrupt(WHAT))? != version {
        return Err(StorageFault::Corrupt { what: WHAT });
    }
    let mut record = decode_record_fields(recipient_id, &mut r, None)?;
    if version == RECORD_V2 {
        r.u64().map_err(corrupt(WHAT))?;
    }
    record.sender_auth_key = match r.u8().map_err(corrupt(WHAT))? {
        0 => None,
        1 => Some(DhPublic::from_bytes(r.array().map_err(corrupt(WHAT))?)),
        _ => return Err(StorageFault::Corrupt { what: WHAT }),
    };
    r.finish().map_err(corrupt(WHAT))?;
    Ok(record)
}

/// Decodes a schema 1 `queues` value, with the sender key from its state.
pub(crate) fn decode_record_v1(
    recipient_id: RecipientId,
    bytes: &[u8],
    sender_auth_key: Option<DhPublic>,
) -> Result<QueueRecord, StorageFault> {
    const WHAT: &str = "queue";
    let mut r = Reader::new(bytes);
    check_version(&mut r, WHAT)?;
    let record = decode_record_fields(recipient_id, &mut r, sender_auth_key)?;
    // The creation time, dropped.
    r.u64().map_err(corrupt(WHAT))?;
    r.finish().map_err(corrupt(WHAT))?;
    Ok(record)
}

/// The fields every record version shares, after the version byte.
fn decode_record_fields(
    recipient_id: RecipientId,
    r: &mut Reader<'_>,
    sender_auth_key: Option<DhPublic>,
) -> Result<QueueRecord, StorageFault> {
    const WHAT: &str = "queue";
    let sender_id = SenderId::from_bytes(r.array().map_err(corrupt(WHAT))?);
    let recipient_auth_key = DhPublic::from_bytes(r.array().map_err(corrupt(WHAT))?);
    let recipient_dh_key = DhPublic::from_bytes(r.array().map_err(corrupt(WHAT))?);
    let secret = Zeroizing::new(r.array::<X25519_LEN>().map_err(corrupt(WHAT))?);
    Ok(QueueRecord {
        recipient_id,
        sender_id,
        recipient_auth_key,
        recipient_dh_key,
        relay_dh_secret: DhSecret::from_bytes(*secret),
        sender_auth_key,
    })
}

/// Decodes a schema 1 `queue_state` value.
pub(crate) fn decode_state(bytes: &[u8]) -> Result<QueueState, StorageFault> {
    const WHAT: &str = "queue state";
    let mut r = Reader::new(bytes);
    check_version(&mut r, WHAT)?;
    let sender_auth_key = match r.u8().map_err(corrupt(WHAT))? {
        0 => None,
        1 => Some(DhPublic::from_bytes(r.array().map_err(corrupt(WHAT))?)),
        _ => return Err(StorageFault::Corrupt { what: WHAT }),
    };
    let count = r.u64().map_err(corrupt(WHAT))?;
    let next_seq = r.u64().map_err(corrupt(WHAT))?;
    r.finish().map_err(corrupt(WHAT))?;
    Ok(QueueState {
        sender_auth_key,
        count,
        next_seq,
    })
}

/// Encodes a `messages` value.
pub(crate) fn encode_message(message: &StoredMessage) -> Vec<u8> {
    let mut w = Writer::with_capacity(MESSAGE_VALUE_LEN);
    w.put_u8(VALUE_VERSION);
    w.put(message.msg_id.as_bytes());
    w.put_u64(message.received_at);
    w.put(message.body.as_slice());
    w.into_vec()
}

/// Decodes a `messages` value.
pub(crate) fn decode_message(bytes: &[u8]) -> Result<StoredMessage, StorageFault> {
    const WHAT: &str = "message";
    let mut r = Reader::new(bytes);
    check_version(&mut r, WHAT)?;
    let msg_id = MsgId::from_bytes(r.array().map_err(corrupt(WHAT))?);
    let received_at = r.u64().map_err(corrupt(WHAT))?;
    let mut body = Box::new([0u8; ENVELOPE_LEN]);
    body.copy_from_slice(r.take(ENVELOPE_LEN).map_err(corrupt(WHAT))?);
    r.finish().map_err(corrupt(WHAT))?;
    Ok(StoredMessage {
        msg_id,
        received_at,
        body,
    })
}

/// The id and arrival time of a `messages` value, without copying its body (the index
/// is built from these at open). Checks the value's length all the same.
pub(crate) fn decode_message_meta(bytes: &[u8]) -> Result<(MsgId, u64), StorageFault> {
    const WHAT: &str = "message";
    if bytes.len() != MESSAGE_VALUE_LEN {
        return Err(StorageFault::Corrupt { what: WHAT });
    }
    let mut r = Reader::new(bytes);
    check_version(&mut r, WHAT)?;
    let msg_id = MsgId::from_bytes(r.array().map_err(corrupt(WHAT))?);
    let received_at = r.u64().map_err(corrupt(WHAT))?;
    Ok((msg_id, received_at))
}

/// Rewrites a `messages` value with its arrival time rounded down to `granularity`
/// seconds (conversion of an older file); `None` if it needs no change or does not
/// decode (a damaged value is left for the index to report).
pub(crate) fn coarsen_message(bytes: &[u8], granularity: u64) -> Option<Vec<u8>> {
    let (_, received_at) = decode_message_meta(bytes).ok()?;
    let coarse = received_at - received_at % granularity.max(1);
    if coarse == received_at {
        return None;
    }
    let mut value = bytes.to_vec();
    value[1 + MSG_ID_LEN..1 + MSG_ID_LEN + 8].copy_from_slice(&coarse.to_be_bytes());
    Some(value)
}

/// Test only: a schema 2 `queues` value (with the creation time), to build old files.
#[cfg(test)]
pub(crate) fn encode_v2(record: &QueueRecord, created_at: u64) -> Vec<u8> {
    let mut w = Writer::with_capacity(OLD_RECORD_LEN);
    w.put_u8(RECORD_V2);
    w.put(record.sender_id.as_bytes());
    w.put(record.recipient_auth_key.as_bytes());
    w.put(record.recipient_dh_key.as_bytes());
    w.put(record.relay_dh_secret.to_bytes().as_slice());
    w.put_u64(created_at);
    put_sender_key(&mut w, record.sender_auth_key.as_ref());
    w.into_vec()
}

/// Test only: a schema 1 `queues` value and `queue_state` value, to build old files.
#[cfg(test)]
pub(crate) fn encode_v1(record: &QueueRecord, count: u64, next_seq: u64) -> (Vec<u8>, Vec<u8>) {
    let mut w = Writer::with_capacity(OLD_RECORD_LEN);
    w.put_u8(VALUE_VERSION);
    w.put(record.sender_id.as_bytes());
    w.put(record.recipient_auth_key.as_bytes());
    w.put(record.recipient_dh_key.as_bytes());
    w.put(record.relay_dh_secret.to_bytes().as_slice());
    w.put_u64(1_700_000_123);
    let mut state = Writer::with_capacity(2 + X25519_LEN + 16);
    state.put_u8(VALUE_VERSION);
    match &record.sender_auth_key {
        None => state.put_u8(0),
        Some(key) => {
            state.put_u8(1);
            state.put(key.as_bytes());
        }
    }
    state.put_u64(count);
    state.put_u64(next_seq);
    (w.into_vec(), state.into_vec())
}

fn check_version(r: &mut Reader<'_>, what: &'static str) -> Result<(), StorageFault> {
    match r.u8().map_err(corrupt(what))? {
        VALUE_VERSION => Ok(()),
        _ => Err(StorageFault::Corrupt { what }),
    }
}

/// `messages` key of a queue's message.
pub(crate) fn message_key(recipient_id: &RecipientId, seq: u64) -> [u8; MESSAGE_KEY_LEN] {
    let mut key = [0u8; MESSAGE_KEY_LEN];
    let (id, tail) = key.split_at_mut(QUEUE_ID_LEN);
    id.copy_from_slice(recipient_id.as_bytes());
    tail.copy_from_slice(&seq.to_be_bytes());
    key
}

/// The queue and sequence number in a `messages` key.
pub(crate) fn message_key_parts(key: &[u8; MESSAGE_KEY_LEN]) -> (RecipientId, u64) {
    let mut r = Reader::new(key);
    // Cannot fail: the array is exactly 24 bytes ‖ u64.
    let id = r.array().unwrap_or([0; QUEUE_ID_LEN]);
    let seq = r.u64().unwrap_or_default();
    (RecipientId::from_bytes(id), seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_number() {
        let rid = RecipientId::from_bytes([7; QUEUE_ID_LEN]);
        assert!(message_key(&rid, 1) < message_key(&rid, 256));
        assert_eq!(message_key_parts(&message_key(&rid, 6)), (rid, 6));
        assert!(
            message_key(&rid, u64::MAX)
                < message_key(&RecipientId::from_bytes([8; QUEUE_ID_LEN]), 0)
        );
    }

    #[test]
    fn values_round_trip_and_damage_is_a_fault() {
        let message = StoredMessage {
            msg_id: MsgId::from_bytes([1; MSG_ID_LEN]),
            received_at: 42,
            body: Box::new([3; ENVELOPE_LEN]),
        };
        let bytes = encode_message(&message);
        assert_eq!(bytes.len(), MESSAGE_VALUE_LEN);
        assert!(decode_message(&bytes).is_ok_and(|m| m == message));
        assert!(decode_message_meta(&bytes).is_ok_and(|m| m == (message.msg_id, 42)));
        assert!(decode_message(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_message_meta(&bytes[..bytes.len() - 1]).is_err());
        let rid = RecipientId::from_bytes([7; QUEUE_ID_LEN]);
        let mut record = QueueRecord {
            recipient_id: rid,
            sender_id: SenderId::from_bytes([8; QUEUE_ID_LEN]),
            recipient_auth_key: DhPublic::from_bytes([1; 32]),
            recipient_dh_key: DhPublic::from_bytes([2; 32]),
            relay_dh_secret: DhSecret::from_bytes([3; 32]),
            sender_auth_key: None,
        };
        for key in [None, Some(DhPublic::from_bytes([5; 32]))] {
            record.sender_auth_key = key;
            let bytes = encode_record(&record);
            // Never grown (a reallocation would leave a copy of the secret behind).
            assert_eq!(bytes.capacity(), RECORD_LEN);
            let back = decode_record(rid, &bytes).unwrap();
            assert_eq!(back.sender_auth_key, key);
            assert_eq!(
                back.relay_dh_secret.to_bytes(),
                record.relay_dh_secret.to_bytes()
            );
            assert!(decode_record(rid, &bytes[..bytes.len() - 1]).is_err());
            // A version 2 record decodes without its creation time, and is not version 3.
            let v2 = encode_v2(&record, 1_700_000_123);
            assert_eq!(v2.len(), bytes.len() + 8);
            let back = decode_record_v2(rid, &v2).unwrap();
            assert_eq!(back.sender_auth_key, key);
            assert_eq!(encode_record(&back).as_slice(), bytes.as_slice());
            assert!(decode_record(rid, &v2).is_err());
            assert!(decode_record_v2(rid, &bytes).is_err());
            let (v1, state) = encode_v1(&record, 2, 9);
            let state = decode_state(&state).unwrap();
            assert_eq!(
                (state.sender_auth_key, state.count, state.next_seq),
                (key, 2, 9)
            );
            assert!(decode_record_v1(rid, &v1, key).is_ok_and(|r| r.sender_auth_key == key));
            // A version 1 record is not a version 2 one, and the other way round.
            assert!(decode_record(rid, &v1).is_err());
            assert!(decode_record_v1(rid, &bytes, key).is_err());
        }
        // Conversion rounds arrival times down, and leaves a rounded one alone.
        let precise = encode_message(&StoredMessage {
            received_at: 7_200 + 59,
            ..message.clone()
        });
        let coarse = coarsen_message(&precise, 3600).unwrap();
        assert!(
            decode_message(&coarse).is_ok_and(|m| m.received_at == 7_200 && m.body == message.body)
        );
        assert_eq!(coarsen_message(&coarse, 3600), None);
        assert_eq!(coarsen_message(&precise[..10], 3600), None);
        let (_, mut bad) = encode_v1(&record, 2, 9);
        bad[0] = 2;
        assert!(matches!(
            decode_state(&bad),
            Err(StorageFault::Corrupt { .. })
        ));
    }
}
