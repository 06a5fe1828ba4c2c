//! How the agent's state is laid out in the vault: one record per profile, contact,
//! ratchet, history entry and outgoing envelope, each a postcard-encoded serde value
//! under a short key. The vault encrypts keys and values alike; these names never
//! reach the disk in clear.
//!
//! ```text
//!  p                     ProfileRecord      default relay, settings
//!  n                     u64 (BE)           next sequence number (history, outbox)
//!  c/<contact>           ContactRecord      name, status, queues, keys
//!  r/<contact>           RatchetSnapshot    the double ratchet
//!  m/<contact>/<seq>     MessageRecord      one history entry
//!  i/<contact>/<msg id>  u64 (BE)           history seq of a message id (dedup, receipts)
//!  o/<seq>               OutboxRecord       an encrypted envelope waiting for the relay's OK
//!  f/<contact>           u32 (BE)           the timer this user set for the contact (floor)
//!  e/<contact>           SeenEnvelopes      digests of the last envelopes received from it
//!  t/<contact>           (empty)            the contact is trusted (an SOS goes to it)
//!  a/<contact>/<seq>     bytes              the voice note of history entry <seq>
//!  w/<contact>/<msg id>  VoiceChunk header  a voice message being received (its first chunk)
//!  v/<contact>/<msg id>/<index>  bytes      its chunks received so far
//! ```
//!
//! A change that spans records (a message received: ratchet + history + receipt in the
//! outbox) is one vault transaction, so a crash leaves all of it or none.

use passage_crypto::IdentityPublic;
use passage_crypto::invitation::PendingInvitationSnapshot;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::ids::{ContactId, MessageId};

pub(crate) const PROFILE: &str = "p";
pub(crate) const NEXT_SEQ: &str = "n";

pub(crate) fn contact_key(id: ContactId) -> String {
    format!("c/{}", id.to_hex())
}
pub(crate) fn ratchet_key(id: ContactId) -> String {
    format!("r/{}", id.to_hex())
}
pub(crate) fn message_key(id: ContactId, seq: u64) -> String {
    format!("m/{}/{seq:016x}", id.to_hex())
}
pub(crate) fn message_prefix(id: ContactId) -> String {
    format!("m/{}/", id.to_hex())
}
pub(crate) fn message_index_key(id: ContactId, msg: &MessageId) -> String {
    format!("i/{}/{}", id.to_hex(), msg.to_hex())
}
pub(crate) fn message_index_prefix(id: ContactId) -> String {
    format!("i/{}/", id.to_hex())
}
pub(crate) fn outbox_key(seq: u64) -> String {
    format!("o/{seq:016x}")
}
pub(crate) const OUTBOX_PREFIX: &str = "o/";
/// The disappearing timer this user chose for a contact (0 = off): a floor that the
/// contact's announcements may shorten, never lengthen or switch off. Absent: the
/// profile default (which is what contacts made before the floor existed keep).
pub(crate) fn timer_floor_key(id: ContactId) -> String {
    format!("f/{}", id.to_hex())
}
/// Present (empty value) when this user marked the contact trusted: an SOS goes to it.
pub(crate) fn trusted_key(id: ContactId) -> String {
    format!("t/{}", id.to_hex())
}
pub(crate) fn seen_envelopes_key(id: ContactId) -> String {
    format!("e/{}", id.to_hex())
}
pub(crate) fn voice_key(id: ContactId, seq: u64) -> String {
    format!("a/{}/{seq:016x}", id.to_hex())
}
pub(crate) fn voice_prefix(id: ContactId) -> String {
    format!("a/{}/", id.to_hex())
}
pub(crate) fn voice_pending_key(id: ContactId, msg: &MessageId) -> String {
    format!("w/{}/{}", id.to_hex(), msg.to_hex())
}
pub(crate) fn voice_pending_prefix(id: ContactId) -> String {
    format!("w/{}/", id.to_hex())
}
pub(crate) fn voice_part_key(id: ContactId, msg: &MessageId, index: u16) -> String {
    format!("v/{}/{}/{index:04x}", id.to_hex(), msg.to_hex())
}
pub(crate) fn voice_parts_of(id: ContactId, msg: &MessageId) -> String {
    format!("v/{}/{}/", id.to_hex(), msg.to_hex())
}
pub(crate) fn voice_parts_prefix(id: ContactId) -> String {
    format!("v/{}/", id.to_hex())
}

/// The header of a voice message being received, from its first chunk to arrive; the
/// others must agree with it.
#[derive(Serialize, Deserialize)]
pub(crate) struct VoicePending {
    pub sent_at: u64,
    pub timer_secs: u32,
    pub total_len: u32,
    pub digest: [u8; 32],
    pub count: u16,
}

/// How many received envelopes' digests a contact keeps: more than the relay ever has
/// delivered and unacknowledged on one queue (16), so that every redelivery after a
/// lost `ACK` is recognised as one.
pub(crate) const SEEN_ENVELOPES: usize = 64;

/// Digests (16 bytes of SHA-256) of the last envelopes received from a contact, oldest
/// first. An envelope the ratchet has consumed before is a redelivery when its digest
/// is here; a *different* envelope at a consumed ratchet position means the contact's
/// profile was restored from an older copy, or copied, and is sending from it.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct SeenEnvelopes {
    pub digests: Vec<[u8; 16]>,
}
pub(crate) const CONTACT_PREFIX: &str = "c/";

/// Parses the `<seq>` at the end of a history or outbox key.
pub(crate) fn seq_of(key: &[u8]) -> Option<u64> {
    let tail = key.rsplit(|b| *b == b'/').next()?;
    let text = core::str::from_utf8(tail).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// Encodes a record. Postcard of our own types cannot fail short of memory.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, RecordError> {
    postcard::to_stdvec(value).map_err(|_| RecordError)
}

/// Decodes a record read back from the vault.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    postcard::from_bytes(bytes).map_err(|_| RecordError)
}

/// A record in the vault that does not decode: written by another version, or a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a record in the vault could not be read")]
pub struct RecordError;

/// Profile-wide settings.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ProfileRecord {
    /// The relay new queues go to, as `passage://` text.
    pub default_relay: String,
    pub created_at: u64,
    /// Disappearing-message timer for new contacts, seconds (0 = off).
    pub default_timer_secs: u32,
    /// Whether new contacts keep no history (see the no-history mode).
    pub no_history: bool,
}

/// Where a contact relationship stands.
#[derive(Serialize, Deserialize, Zeroize, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ContactPhase {
    /// We invited; nobody has accepted yet.
    Invited,
    /// We accepted; the inviter has not answered yet (we can already send).
    Accepted,
    /// Both sides have each other's queue.
    Connected,
}

/// A queue this client receives on.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Clone)]
pub(crate) struct OwnQueueRecord {
    /// The relay, as `passage://` text.
    pub relay: String,
    pub recipient_id: [u8; 24],
    pub sender_id: [u8; 24],
    pub auth_secret: [u8; 32],
    pub dh_secret: [u8; 32],
    pub relay_dh_key: [u8; 32],
}

/// The contact's queue, which this client sends to.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Clone)]
pub(crate) struct TheirQueueRecord {
    /// [`passage_wire::QueueAddress::encode`].
    pub address: Vec<u8>,
    /// Our sender auth secret for it.
    pub sender_secret: [u8; 32],
    /// Whether the relay has fixed our sender key (a send was `OK`ed).
    pub key_fixed: bool,
}

/// One contact.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ContactRecord {
    pub name: String,
    pub created_at: u64,
    pub phase: ContactPhase,
    pub verified: bool,
    /// Our identity for this relationship (public half; the secret half lives in the
    /// pending invitation until the handshake is done, and is not needed after).
    #[zeroize(skip)]
    pub own_identity: IdentityPublic,
    #[zeroize(skip)]
    pub their_identity: Option<IdentityPublic>,
    pub own_queue: OwnQueueRecord,
    pub their_queue: Option<TheirQueueRecord>,
    /// The inviter's secrets until an accept arrives.
    pub pending: Option<PendingInvitationSnapshot>,
    /// When our invitation expires (inviter side), unix seconds.
    pub invitation_expires_at: u64,
    /// The invitation this relationship came from (acceptor side: refuses a second
    /// accept of the same link).
    pub invitation_id: [u8; 16],
    /// Disappearing-message timer, seconds (0 = off).
    pub timer_secs: u32,
    /// No-history mode for this contact.
    pub no_history: bool,
}

/// Who wrote a history entry.
#[derive(Serialize, Deserialize, Zeroize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// We sent it.
    Outgoing,
    /// The contact sent it.
    Incoming,
}

/// Where a message stands.
#[derive(Serialize, Deserialize, Zeroize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum MessageStatus {
    /// Written, waiting in the vault for a relay to accept it.
    Queued,
    /// The contact's relay stored it (`OK`).
    Sent,
    /// The contact's device confirmed it (end-to-end receipt).
    Delivered,
    /// The relay refused it for good (the contact's queue is gone).
    Failed,
    /// A message the contact sent us.
    Received,
}

impl MessageStatus {
    /// Lowercase name, for the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Received => "received",
        }
    }
}

/// What a history entry records.
#[derive(Serialize, Deserialize, Zeroize, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A text message.
    Text(String),
    /// The disappearing-message timer changed to this many seconds (0 = off).
    Timer(u32),
    /// A voice message (its Opus note is kept beside the entry, see
    /// `Conversations::voice_note`).
    Voice {
        /// How long it plays.
        duration_ms: u32,
        /// The note's size in bytes.
        bytes: u32,
    },
    /// An emergency text (SOS), sent to or received from a trusted contact.
    Sos(String),
}

/// One history entry.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Clone)]
pub(crate) struct MessageRecord {
    #[zeroize(skip)]
    pub id: MessageId,
    pub direction: Direction,
    pub kind: EntryKind,
    pub sent_at: u64,
    pub received_at: Option<u64>,
    pub status: MessageStatus,
    /// When it disappears (unix seconds), if a timer applies.
    pub expires_at: Option<u64>,
}

/// What an outgoing envelope is, so its `OK` updates the right thing.
#[derive(Serialize, Deserialize, Zeroize, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum OutboxKind {
    /// The handshake (accept) message: its `OK` fixes our sender key; `ERR AUTH`
    /// means the invitation was used already.
    Accept,
    /// The inviter's first message.
    Welcome,
    /// A text (history entry `msg_seq`).
    Text,
    /// Receipts.
    Receipt,
    /// A timer announcement (history entry `msg_seq`).
    Timer,
    /// Chunk `index` of `count` of voice message `id` (its last chunk names the history
    /// entry in `msg_seq`).
    VoiceChunk {
        id: [u8; 16],
        index: u16,
        count: u16,
    },
    /// An emergency text (history entry `msg_seq`): sent before everything else queued.
    Sos,
}

/// An encrypted envelope waiting for the relay's `OK`. The ratchet has already moved
/// past it, so it is resent byte for byte; the contact's ratchet refuses a second copy.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct OutboxRecord {
    #[zeroize(skip)]
    pub contact: ContactId,
    pub kind: OutboxKind,
    pub msg_seq: Option<u64>,
    pub envelope: Vec<u8>,
}
