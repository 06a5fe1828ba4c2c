//! Byte layouts of the store's keys and values (schema version 1).
//!
//! Keys are fixed-size concatenations, big-endian, so that byte order is the order we
//! scan in (a queue's messages by sequence number, the expiry index by arrival time).
//! Values that may grow new fields start with a version byte and go through the bounded
//! [`Reader`]: a value that does not decode is a [`StorageFault::Corrupt`], never a panic.
//!
//! | table         | key                                   | value                                   |
//! |---------------|---------------------------------------|-----------------------------------------|
//! | `meta`        | name (str)                            | u64 (`schema`: [`SCHEMA_VERSION`])      |
//! | `queues`      | recipient id (24)                     | v1 ‖ sender id ‖ auth key ‖ dh key ‖ relay secret ‖ created_at |
//! | `queue_state` | recipient id (24)                     | v1 ‖ sender key flag (‖ key) ‖ count ‖ next seq |
//! | `senders`     | sender id (24)                        | recipient id (24)                       |
//! | `messages`    | recipient id ‖ seq u64 (32)           | v1 ‖ msg id ‖ received_at ‖ envelope    |
//! | `msg_ids`     | recipient id ‖ msg id (48)            | seq ‖ received_at (16)                  |
//! | `expiry`      | received_at ‖ recipient id ‖ seq (40) | msg id (24)                             |
//!
//! A message value is 1 + 24 + 8 + 3904 = 3937 bytes, so with its 32-byte key it fits one
//! 4 KiB B-tree leaf; the ids and times it needs for ACK and retention live in the two small
//! index tables, so neither ever reads a body. `queue_state` is apart from `queues` so that
//! an append rewrites 50 bytes and never decodes the relay secret.

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::codec::{Reader, Writer};
use passage_crypto::primitives::{DhPublic, DhSecret, X25519_LEN};
use passage_wire::ids::MSG_ID_LEN;
use passage_wire::{MsgId, QUEUE_ID_LEN, RecipientId, SenderId};
use zeroize::Zeroizing;

use super::{QueueRecord, StorageFault, StoredMessage};

/// The layout version written in the `meta` table. A file with another one is refused at
/// open rather than misread.
pub(crate) const SCHEMA_VERSION: u64 = 1;

/// Version byte of the `queues`, `queue_state` and `messages` values.
const VALUE_VERSION: u8 = 1;

/// `messages` key: recipient id ‖ sequence number.
pub(crate) const MESSAGE_KEY_LEN: usize = QUEUE_ID_LEN + 8;
/// `msg_ids` key: recipient id ‖ message id.
pub(crate) const MSG_ID_KEY_LEN: usize = QUEUE_ID_LEN + MSG_ID_LEN;
/// `msg_ids` value: sequence number ‖ received_at.
pub(crate) const MSG_ENTRY_LEN: usize = 16;
/// `expiry` key: received_at ‖ recipient id ‖ sequence number.
pub(crate) const EXPIRY_KEY_LEN: usize = 8 + QUEUE_ID_LEN + 8;

const RECORD_LEN: usize = 1 + QUEUE_ID_LEN + 3 * X25519_LEN + 8;
const MESSAGE_VALUE_LEN: usize = 1 + MSG_ID_LEN + 8 + ENVELOPE_LEN;

/// The most a message's key and value may take together so that one message fits one of
/// redb's 4 KiB leaf pages (4096 less the page header and the entry's offsets, with margin).
/// Past it, each message takes an 8 KiB page: measured, 8.4 KB on disk per entry instead of
/// 4.7 KB. Any new field in the message value must come out of this budget.
const ONE_PAGE_ENTRY: usize = 4096 - 16;
const _: () = assert!(MESSAGE_KEY_LEN + MESSAGE_VALUE_LEN <= ONE_PAGE_ENTRY);

/// The mutable part of a queue: its sender key and message counters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueState {
    /// Fixed by the first append that names one.
    pub sender_auth_key: Option<DhPublic>,
    /// Messages held now.
    pub count: u64,
    /// Sequence number of the next message; never reused, so order is arrival order.
    pub next_seq: u64,
}

/// Where a message sits, found from its id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct MsgEntry {
    /// Its sequence number in its queue.
    pub seq: u64,
    /// Its arrival time (its place in the expiry index).
    pub received_at: u64,
}

fn corrupt(what: &'static str) -> impl Fn(passage_crypto::codec::DecodeError) -> StorageFault {
    move |_| StorageFault::Corrupt { what }
}

/// Encodes the fixed part of a queue (the sender key goes to [`QueueState`]). Holds the
/// relay secret, so the buffer is zeroized when dropped.
pub(crate) fn encode_record(record: &QueueRecord) -> Zeroizing<Vec<u8>> {
    // Exact capacity: a growing Vec would leave copies of the secret behind.
    let mut w = Writer::with_capacity(RECORD_LEN + 8);
    w.put_u8(VALUE_VERSION);
    w.put(record.sender_id.as_bytes());
    w.put(record.recipient_auth_key.as_bytes());
    w.put(record.recipient_dh_key.as_bytes());
    w.put(record.relay_dh_secret.to_bytes().as_slice());
    w.put_u64(record.created_at);
    Zeroizing::new(w.into_vec())
}

/// Decodes a `queues` value into a record, with the sender key from its state.
pub(crate) fn decode_record(
    recipient_id: RecipientId,
    bytes: &[u8],
    sender_auth_key: Option<DhPublic>,
) -> Result<QueueRecord, StorageFault> {
    const WHAT: &str = "queue";
    let mut r = Reader::new(bytes);
    check_version(&mut r, WHAT)?;
    let sender_id = SenderId::from_bytes(r.array().map_err(corrupt(WHAT))?);
    let recipient_auth_key = DhPublic::from_bytes(r.array().map_err(corrupt(WHAT))?);
    let recipient_dh_key = DhPublic::from_bytes(r.array().map_err(corrupt(WHAT))?);
    let secret = Zeroizing::new(r.array::<X25519_LEN>().map_err(corrupt(WHAT))?);
    let created_at = r.u64().map_err(corrupt(WHAT))?;
    r.finish().map_err(corrupt(WHAT))?;
    Ok(QueueRecord {
        recipient_id,
        sender_id,
        recipient_auth_key,
        recipient_dh_key,
        relay_dh_secret: DhSecret::from_bytes(*secret),
        sender_auth_key,
        created_at,
    })
}

/// The sender id of a `queues` value, without touching the secret.
pub(crate) fn decode_record_sender(bytes: &[u8]) -> Result<SenderId, StorageFault> {
    const WHAT: &str = "queue";
    let mut r = Reader::new(bytes);
    check_version(&mut r, WHAT)?;
    Ok(SenderId::from_bytes(r.array().map_err(corrupt(WHAT))?))
}

/// Encodes a `queue_state` value.
pub(crate) fn encode_state(state: &QueueState) -> Vec<u8> {
    let mut w = Writer::with_capacity(2 + X25519_LEN + 16);
    w.put_u8(VALUE_VERSION);
    match &state.sender_auth_key {
        None => w.put_u8(0),
        Some(key) => {
            w.put_u8(1);
            w.put(key.as_bytes());
        }
    }
    w.put_u64(state.count);
    w.put_u64(state.next_seq);
    w.into_vec()
}

/// Decodes a `queue_state` value.
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

/// `msg_ids` key of a message.
pub(crate) fn msg_id_key(recipient_id: &RecipientId, msg_id: &MsgId) -> [u8; MSG_ID_KEY_LEN] {
    let mut key = [0u8; MSG_ID_KEY_LEN];
    let (id, tail) = key.split_at_mut(QUEUE_ID_LEN);
    id.copy_from_slice(recipient_id.as_bytes());
    tail.copy_from_slice(msg_id.as_bytes());
    key
}

/// The `msg_ids` keys of a queue lie within these bounds (inclusive).
pub(crate) fn msg_id_key_bounds(
    recipient_id: &RecipientId,
) -> ([u8; MSG_ID_KEY_LEN], [u8; MSG_ID_KEY_LEN]) {
    (
        msg_id_key(recipient_id, &MsgId::from_bytes([0; MSG_ID_LEN])),
        msg_id_key(recipient_id, &MsgId::from_bytes([0xff; MSG_ID_LEN])),
    )
}

/// The message id in a `msg_ids` key.
pub(crate) fn msg_id_of_key(key: &[u8; MSG_ID_KEY_LEN]) -> MsgId {
    let mut id = [0u8; MSG_ID_LEN];
    id.copy_from_slice(key.split_at(QUEUE_ID_LEN).1);
    MsgId::from_bytes(id)
}

/// Encodes a `msg_ids` value.
pub(crate) fn encode_entry(entry: MsgEntry) -> [u8; MSG_ENTRY_LEN] {
    let mut value = [0u8; MSG_ENTRY_LEN];
    let (seq, at) = value.split_at_mut(8);
    seq.copy_from_slice(&entry.seq.to_be_bytes());
    at.copy_from_slice(&entry.received_at.to_be_bytes());
    value
}

/// Decodes a `msg_ids` value (any 16 bytes are one).
pub(crate) fn decode_entry(value: &[u8; MSG_ENTRY_LEN]) -> MsgEntry {
    let mut r = Reader::new(value);
    // Cannot fail: the array is exactly two u64s.
    let seq = r.u64().unwrap_or_default();
    let received_at = r.u64().unwrap_or_default();
    MsgEntry { seq, received_at }
}

/// `expiry` key of a message.
pub(crate) fn expiry_key(
    received_at: u64,
    recipient_id: &RecipientId,
    seq: u64,
) -> [u8; EXPIRY_KEY_LEN] {
    let mut key = [0u8; EXPIRY_KEY_LEN];
    let (at, rest) = key.split_at_mut(8);
    let (id, seq_bytes) = rest.split_at_mut(QUEUE_ID_LEN);
    at.copy_from_slice(&received_at.to_be_bytes());
    id.copy_from_slice(recipient_id.as_bytes());
    seq_bytes.copy_from_slice(&seq.to_be_bytes());
    key
}

/// The parts of an `expiry` key: received_at, queue, sequence number.
pub(crate) fn expiry_key_parts(key: &[u8; EXPIRY_KEY_LEN]) -> (u64, RecipientId, u64) {
    let mut r = Reader::new(key);
    // Cannot fail: the array is exactly u64 ‖ 24 bytes ‖ u64.
    let at = r.u64().unwrap_or_default();
    let id = r.array().unwrap_or([0; QUEUE_ID_LEN]);
    let seq = r.u64().unwrap_or_default();
    (at, RecipientId::from_bytes(id), seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_number() {
        let rid = RecipientId::from_bytes([7; QUEUE_ID_LEN]);
        assert!(message_key(&rid, 1) < message_key(&rid, 256));
        assert!(expiry_key(1, &rid, 9) < expiry_key(256, &rid, 0));
        assert_eq!(expiry_key_parts(&expiry_key(5, &rid, 6)), (5, rid, 6));
        let entry = MsgEntry {
            seq: 3,
            received_at: 4,
        };
        assert_eq!(decode_entry(&encode_entry(entry)), entry);
        let msg = MsgId::from_bytes([9; MSG_ID_LEN]);
        assert_eq!(msg_id_of_key(&msg_id_key(&rid, &msg)), msg);
        let (lo, hi) = msg_id_key_bounds(&rid);
        assert!(lo <= msg_id_key(&rid, &msg) && msg_id_key(&rid, &msg) <= hi);
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
        assert!(decode_message(&bytes[..bytes.len() - 1]).is_err());
        let state = QueueState {
            sender_auth_key: Some(DhPublic::from_bytes([5; 32])),
            count: 2,
            next_seq: 9,
        };
        assert!(decode_state(&encode_state(&state)).is_ok_and(|s| s == state));
        let mut bad = encode_state(&state);
        bad[0] = 2;
        assert!(matches!(
            decode_state(&bad),
            Err(StorageFault::Corrupt { .. })
        ));
    }
}
