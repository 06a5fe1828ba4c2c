//! [`AgentEvent`]: what the agent reports to the user interface. `Debug` shows the
//! kind of event only: never a name, a text or an id.

use zeroize::Zeroizing;

use super::error::AgentError;
use super::ids::MessageId;
use super::records::MessageStatus;

/// Something that happened, for the interface to show.
#[non_exhaustive]
pub enum AgentEvent {
    /// A new text from a contact (committed to the vault before it is reported).
    Message {
        /// The contact's local name.
        contact: String,
        /// The sender's id of the message.
        id: MessageId,
        /// The text (wiped from memory when the event is dropped).
        text: Zeroizing<String>,
        /// When the sender wrote it (their clock), unix seconds.
        sent_at: u64,
        /// When this device received it, unix seconds.
        received_at: u64,
    },
    /// An emergency message (SOS) from a contact who trusts this profile; committed
    /// like a text, and to be shown as an emergency.
    Sos {
        /// The contact's local name.
        contact: String,
        /// The sender's id of the message.
        id: MessageId,
        /// The text (wiped from memory when the event is dropped).
        text: Zeroizing<String>,
        /// When the sender wrote it (their clock), unix seconds.
        sent_at: u64,
        /// When this device received it, unix seconds.
        received_at: u64,
    },
    /// A new voice message from a contact, complete and verified (committed to the vault
    /// before it is reported, unless the contact is in no-history mode).
    Voice {
        /// The contact's local name.
        contact: String,
        /// The sender's id of the message.
        id: MessageId,
        /// How long it plays.
        duration_ms: u32,
        /// The Opus note's size in bytes.
        bytes: u32,
        /// The note itself ([`passage_voice::VoiceNote::from_bytes`]), for playing it at
        /// once: in no-history mode it is nowhere else.
        note: Zeroizing<Vec<u8>>,
        /// When the sender recorded it (their clock), unix seconds.
        sent_at: u64,
        /// When this device had all of it, unix seconds.
        received_at: u64,
    },
    /// A chunk of an outgoing voice message reached the contact's relay.
    VoiceProgress {
        /// The contact's local name.
        contact: String,
        /// The voice message.
        id: MessageId,
        /// Chunks the relay has stored so far (padding included).
        sent: u16,
        /// Chunks in all.
        total: u16,
    },
    /// A relay this profile uses changed its key (its operator rotated it): every
    /// address of it the profile keeps now has the new pin. The old pin works until
    /// `old_pin_until` (unix seconds); invitations made from now on carry the new one.
    RelayMoved {
        /// Until when the relay still accepts the old pin.
        old_pin_until: u64,
    },
    /// An outgoing message changed status (sent, delivered, failed).
    Status {
        /// The contact's local name.
        contact: String,
        /// The message.
        id: MessageId,
        /// Its new status.
        status: MessageStatus,
    },
    /// The contact is connected both ways.
    Connected {
        /// The contact's local name.
        contact: String,
    },
    /// The contact set the conversation's disappearing-message timer.
    TimerChanged {
        /// The contact's local name.
        contact: String,
        /// Seconds (0 = off).
        seconds: u32,
    },
    /// The inviter's relay refused our accept: the invitation was used by someone
    /// else. The contact was removed.
    InvitationRefused {
        /// The name we had given the contact.
        contact: String,
    },
    /// A delivered envelope was worthless (forged, altered, replayed) and was dropped.
    Dropped {
        /// The contact whose queue it came on, if known.
        contact: Option<String>,
        /// Why.
        reason: DroppedReason,
    },
    /// Something failed; the agent carries on (what failed is retried later).
    Error(AgentError),
}

impl core::fmt::Debug for AgentEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AgentEvent::Message { .. } => f.write_str("Message"),
            AgentEvent::Sos { .. } => f.write_str("Sos"),
            AgentEvent::RelayMoved { .. } => f.write_str("RelayMoved"),
            AgentEvent::Voice { duration_ms, .. } => write!(f, "Voice({duration_ms} ms)"),
            AgentEvent::VoiceProgress { sent, total, .. } => {
                write!(f, "VoiceProgress({sent}/{total})")
            }
            AgentEvent::Status { status, .. } => write!(f, "Status({status:?})"),
            AgentEvent::Connected { .. } => f.write_str("Connected"),
            AgentEvent::TimerChanged { seconds, .. } => write!(f, "TimerChanged({seconds})"),
            AgentEvent::InvitationRefused { .. } => f.write_str("InvitationRefused"),
            AgentEvent::Dropped { reason, .. } => write!(f, "Dropped({reason:?})"),
            AgentEvent::Error(error) => write!(f, "Error({error})"),
        }
    }
}

/// Why a delivered envelope was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DroppedReason {
    /// It does not decrypt in the contact's session: forged, altered or garbage.
    #[error("a message that does not decrypt was dropped (forged or altered)")]
    Undecryptable,
    /// It was received before: a replay or a resend.
    #[error("a message received before was dropped (replay or duplicate)")]
    Duplicate,
    /// A new message at a place in the conversation that an earlier message took: the
    /// contact's profile was restored from an older copy (a backup, a crash) or copied
    /// to a second device, and sends from it. It cannot be read (its key was used up,
    /// as forward secrecy requires); the contact should send it again.
    #[error(
        "a message from a restored or copied profile could not be read; ask the contact to send it again"
    )]
    Forked,
    /// It decrypted but its content is malformed.
    #[error("a malformed message was dropped")]
    Malformed,
    /// An accept arrived after our invitation expired.
    #[error("an accept of an expired invitation was dropped")]
    InvitationExpired,
    /// It came on a queue this profile does not know.
    #[error("a message on an unknown queue was dropped")]
    UnknownQueue,
}

impl DroppedReason {
    /// A short machine-readable name.
    pub fn as_str(self) -> &'static str {
        match self {
            DroppedReason::Undecryptable => "undecryptable",
            DroppedReason::Duplicate => "duplicate",
            DroppedReason::Forked => "forked",
            DroppedReason::Malformed => "malformed",
            DroppedReason::InvitationExpired => "invitation_expired",
            DroppedReason::UnknownQueue => "unknown_queue",
        }
    }
}
