//! The values that cross the boundary: flat records and enums, ids as hex strings.
//! Conversions from the core's types live here, in one place.

use passage_client::agent::{
    ContactId, ContactInfo, Direction, EntryKind, HistoryEntry, MessageId, MessageStatus,
    SendReport,
};
use passage_client::messenger::{ErrorKind, MessengerError, MessengerEvent};

/// Every error a caller can get: one exception class per kind, with a message that
/// says what happened (never a name, a text, a key or an address).
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
#[non_exhaustive]
pub enum PassageError {
    /// No profile opens with this passphrase (or there is none).
    #[error("{0}")]
    WrongPassphrase(String),
    /// No profile in that directory.
    #[error("{0}")]
    NoProfile(String),
    /// A profile exists there already.
    #[error("{0}")]
    ProfileExists(String),
    /// The profile is open elsewhere.
    #[error("{0}")]
    Busy(String),
    /// The profile has no decoy.
    #[error("{0}")]
    NoDecoy(String),
    /// The profile is locked: unlock it first.
    #[error("{0}")]
    Locked(String),
    /// The profile was wiped.
    #[error("{0}")]
    Wiped(String),
    /// The profile was closed.
    #[error("{0}")]
    Closed(String),
    /// No such contact or message.
    #[error("{0}")]
    NoSuchContact(String),
    /// A contact with that name exists.
    #[error("{0}")]
    NameTaken(String),
    /// The name is empty, too long or has control characters.
    #[error("{0}")]
    InvalidName(String),
    /// Not a valid invitation, or an expired or used one.
    #[error("{0}")]
    InvalidInvitation(String),
    /// The contact has not accepted the invitation yet.
    #[error("{0}")]
    NotConnected(String),
    /// A text, voice message or timer over its limit.
    #[error("{0}")]
    TooLarge(String),
    /// The typed safety number does not match.
    #[error("{0}")]
    SafetyNumberMismatch(String),
    /// The passphrase change or duress setting was refused.
    #[error("{0}")]
    PassphraseRefused(String),
    /// A relay could not be reached or refused.
    #[error("{0}")]
    Relay(String),
    /// The vault's data is damaged, or the disk failed.
    #[error("{0}")]
    Storage(String),
    /// A voice recording or note is not valid.
    #[error("{0}")]
    Voice(String),
    /// An SOS found no trusted contact to go to.
    #[error("{0}")]
    NoTrustedContacts(String),
    /// An argument is malformed (an id, a relay address, a duration).
    #[error("{0}")]
    InvalidArgument(String),
}

impl From<MessengerError> for PassageError {
    fn from(error: MessengerError) -> Self {
        let message = error.to_string();
        match error.kind() {
            ErrorKind::WrongPassphrase => PassageError::WrongPassphrase(message),
            ErrorKind::NoProfile => PassageError::NoProfile(message),
            ErrorKind::ProfileExists => PassageError::ProfileExists(message),
            ErrorKind::Busy => PassageError::Busy(message),
            ErrorKind::NoDecoy => PassageError::NoDecoy(message),
            ErrorKind::Locked => PassageError::Locked(message),
            ErrorKind::Wiped => PassageError::Wiped(message),
            ErrorKind::Closed => PassageError::Closed(message),
            ErrorKind::NoSuchContact => PassageError::NoSuchContact(message),
            ErrorKind::NameTaken => PassageError::NameTaken(message),
            ErrorKind::InvalidName => PassageError::InvalidName(message),
            ErrorKind::InvalidInvitation => PassageError::InvalidInvitation(message),
            ErrorKind::NotConnected => PassageError::NotConnected(message),
            ErrorKind::TooLarge => PassageError::TooLarge(message),
            ErrorKind::SafetyNumberMismatch => PassageError::SafetyNumberMismatch(message),
            ErrorKind::NoTrustedContacts => PassageError::NoTrustedContacts(message),
            ErrorKind::PassphraseRefused => PassageError::PassphraseRefused(message),
            ErrorKind::Relay => PassageError::Relay(message),
            ErrorKind::Voice => PassageError::Voice(message),
            _ => PassageError::Storage(message),
        }
    }
}

pub(crate) fn contact_id(text: &str) -> Result<ContactId, PassageError> {
    ContactId::from_hex(text.trim())
        .ok_or_else(|| PassageError::InvalidArgument("a contact id is 32 hex digits".into()))
}

pub(crate) fn message_id(text: &str) -> Result<MessageId, PassageError> {
    MessageId::from_hex(text.trim())
        .ok_or_else(|| PassageError::InvalidArgument("a message id is 32 hex digits".into()))
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Status {
    /// Waiting in the vault for a relay.
    Queued,
    /// The contact's relay has it.
    Sent,
    /// The contact's device confirmed it.
    Delivered,
    /// The relay refused it for good.
    Failed,
    /// A message the contact sent.
    Received,
}

impl From<MessageStatus> for Status {
    fn from(status: MessageStatus) -> Self {
        match status {
            MessageStatus::Queued => Status::Queued,
            MessageStatus::Sent => Status::Sent,
            MessageStatus::Delivered => Status::Delivered,
            MessageStatus::Failed => Status::Failed,
            MessageStatus::Received => Status::Received,
        }
    }
}

/// Where a contact relationship stands: "invited", "accepted" or "connected".
#[derive(Clone, uniffi::Record)]
pub struct Contact {
    /// The stable id (32 hex digits) every call takes.
    pub id: String,
    /// The local display name.
    pub name: String,
    /// "invited", "accepted" or "connected".
    pub status: String,
    /// Whether the safety number was confirmed.
    pub verified: bool,
    /// Whether an SOS goes to this contact.
    pub trusted: bool,
    /// Disappearing timer, seconds (0 = off).
    pub disappear_after_secs: u32,
}

impl From<ContactInfo> for Contact {
    fn from(contact: ContactInfo) -> Self {
        Self {
            id: contact.id.to_hex(),
            status: contact.status.as_str().to_owned(),
            name: contact.name,
            verified: contact.verified,
            trusted: contact.trusted,
            disappear_after_secs: contact.disappear_after_secs,
        }
    }
}

/// One entry of a conversation.
#[derive(Clone, uniffi::Record)]
pub struct HistoryItem {
    /// The message id (32 hex digits).
    pub id: String,
    /// Whether we wrote it.
    pub outgoing: bool,
    /// The text, for a text message.
    pub text: Option<String>,
    /// For a voice message: how long it plays.
    pub voice_duration_ms: Option<u32>,
    /// Whether it is an emergency text (SOS).
    pub sos: bool,
    /// For a timer change: the new timer (seconds, 0 = off).
    pub timer_secs: Option<u32>,
    /// When it was written (the sender's clock), unix seconds.
    pub sent_at: u64,
    /// Its status.
    pub status: Status,
    /// When it disappears, unix seconds, if a timer applies.
    pub expires_at: Option<u64>,
}

impl From<&HistoryEntry> for HistoryItem {
    fn from(entry: &HistoryEntry) -> Self {
        let (text, voice_duration_ms, timer_secs) = match &entry.kind {
            EntryKind::Text(text) | EntryKind::Sos(text) => (Some(text.clone()), None, None),
            EntryKind::Voice { duration_ms, .. } => (None, Some(*duration_ms), None),
            EntryKind::Timer(seconds) => (None, None, Some(*seconds)),
        };
        Self {
            id: entry.id.to_hex(),
            outgoing: entry.direction == Direction::Outgoing,
            text,
            voice_duration_ms,
            sos: entry.is_sos(),
            timer_secs,
            sent_at: entry.sent_at,
            status: entry.status.into(),
            expires_at: entry.expires_at,
        }
    }
}

/// What a send did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Sent {
    /// The new message's id.
    pub id: String,
    /// `Sent` (the relay has it) or `Queued` (it goes out by itself later).
    pub status: Status,
}

impl From<SendReport> for Sent {
    fn from(report: SendReport) -> Self {
        Self {
            id: report.id.to_hex(),
            status: report.status.into(),
        }
    }
}

/// A new invitation.
#[derive(Clone, uniffi::Record)]
pub struct Invitation {
    /// The new contact's id.
    pub contact_id: String,
    /// The one-time link to give the person.
    pub link: String,
}

/// An accepted invitation.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Accepted {
    /// The new contact's id.
    pub contact_id: String,
    /// `Sent`, or `Queued` if no relay was reachable.
    pub status: Status,
}

/// A profile's settings.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Settings {
    /// The relay new queues go to (`passage://PIN@HOST:PORT`).
    pub default_relay: String,
    /// The timer new contacts start with, seconds (0 = off).
    pub default_disappear_secs: u32,
    /// Idle seconds before the profile locks (`None`: never).
    pub lock_after_secs: Option<u64>,
}

/// Decoded audio of a voice message: mono PCM.
#[derive(Clone, uniffi::Record)]
pub struct VoicePcm {
    /// Samples per second (16000 or 8000).
    pub sample_rate: u32,
    /// The samples.
    pub samples: Vec<i16>,
}

/// Something that happened.
#[derive(Clone, uniffi::Enum)]
pub enum Event {
    /// A new text.
    Message {
        contact_id: String,
        id: String,
        text: String,
        sent_at: u64,
        received_at: u64,
    },
    /// An emergency message (SOS) from a contact who trusts this profile.
    Sos {
        contact_id: String,
        id: String,
        text: String,
        sent_at: u64,
        received_at: u64,
    },
    /// A new voice message, complete ([`crate::Messenger::voice_pcm`] plays it).
    Voice {
        contact_id: String,
        id: String,
        duration_ms: u32,
        sent_at: u64,
        received_at: u64,
    },
    /// Chunks of an outgoing voice message reached the relay.
    VoiceProgress {
        contact_id: String,
        id: String,
        sent: u16,
        total: u16,
    },
    /// An outgoing message changed status.
    Status {
        contact_id: String,
        id: String,
        status: Status,
    },
    /// The contact is connected both ways.
    Connected { contact_id: String },
    /// The contact set the conversation's disappearing timer.
    TimerChanged { contact_id: String, seconds: u32 },
    /// Someone else used the invitation we accepted; the contact was removed.
    InvitationRefused { contact_id: String },
    /// A worthless envelope was dropped.
    Dropped {
        contact_id: Option<String>,
        reason: String,
    },
    /// A relay rotated its key; the profile follows it.
    RelayMoved { old_pin_until: u64 },
    /// The profile locked (idle or asked): unlock it to go on.
    Locked,
    /// The profile opened again.
    Unlocked,
    /// The profile was wiped; the last event.
    Wiped,
    /// Something failed in the background; it carries on.
    Problem { message: String },
}

impl From<MessengerEvent> for Event {
    fn from(event: MessengerEvent) -> Self {
        match event {
            MessengerEvent::Message {
                contact,
                id,
                text,
                sent_at,
                received_at,
            } => Event::Message {
                contact_id: contact.to_hex(),
                id: id.to_hex(),
                text: text.as_str().to_owned(),
                sent_at,
                received_at,
            },
            MessengerEvent::Sos {
                contact,
                id,
                text,
                sent_at,
                received_at,
            } => Event::Sos {
                contact_id: contact.to_hex(),
                id: id.to_hex(),
                text: text.as_str().to_owned(),
                sent_at,
                received_at,
            },
            MessengerEvent::Voice {
                contact,
                id,
                duration_ms,
                sent_at,
                received_at,
                ..
            } => Event::Voice {
                contact_id: contact.to_hex(),
                id: id.to_hex(),
                duration_ms,
                sent_at,
                received_at,
            },
            MessengerEvent::VoiceProgress {
                contact,
                id,
                sent,
                total,
            } => Event::VoiceProgress {
                contact_id: contact.to_hex(),
                id: id.to_hex(),
                sent,
                total,
            },
            MessengerEvent::Status {
                contact,
                id,
                status,
            } => Event::Status {
                contact_id: contact.to_hex(),
                id: id.to_hex(),
                status: status.into(),
            },
            MessengerEvent::Connected { contact } => Event::Connected {
                contact_id: contact.to_hex(),
            },
            MessengerEvent::TimerChanged { contact, seconds } => Event::TimerChanged {
                contact_id: contact.to_hex(),
                seconds,
            },
            MessengerEvent::InvitationRefused { contact } => Event::InvitationRefused {
                contact_id: contact.to_hex(),
            },
            MessengerEvent::Dropped { contact, reason } => Event::Dropped {
                contact_id: contact.map(ContactId::to_hex),
                reason: reason.as_str().to_owned(),
            },
            MessengerEvent::RelayMoved { old_pin_until } => Event::RelayMoved { old_pin_until },
            MessengerEvent::Locked => Event::Locked,
            MessengerEvent::Unlocked => Event::Unlocked,
            MessengerEvent::Wiped => Event::Wiped,
            MessengerEvent::Problem(error) => Event::Problem {
                message: error.to_string(),
            },
            _ => Event::Problem {
                message: "an event this version does not know".to_owned(),
            },
        }
    }
}

/// `Debug` of the values that hold a name, a text, a link or audio: their kind only.
macro_rules! opaque_debug {
    ($($type:ty => $label:literal),* $(,)?) => {
        $(impl core::fmt::Debug for $type {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str($label)
            }
        })*
    };
}

opaque_debug!(
    Contact => "Contact(..)",
    HistoryItem => "HistoryItem(..)",
    Invitation => "Invitation(..)",
    VoicePcm => "VoicePcm(..)",
);

impl core::fmt::Debug for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = match self {
            Event::Message { .. } => "Message",
            Event::Sos { .. } => "Sos",
            Event::Voice { .. } => "Voice",
            Event::VoiceProgress { .. } => "VoiceProgress",
            Event::Status { .. } => "Status",
            Event::Connected { .. } => "Connected",
            Event::TimerChanged { .. } => "TimerChanged",
            Event::InvitationRefused { .. } => "InvitationRefused",
            Event::Dropped { .. } => "Dropped",
            Event::RelayMoved { .. } => "RelayMoved",
            Event::Locked => "Locked",
            Event::Unlocked => "Unlocked",
            Event::Wiped => "Wiped",
            Event::Problem { .. } => "Problem",
        };
        f.write_str(kind)
    }
}
