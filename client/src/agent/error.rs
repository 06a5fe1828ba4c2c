//! [`AgentError`]: what can go wrong in the client agent. Messages say what happened
//! and what to do; none carries a contact name, a text, a key, a queue id or an
//! address.

use crate::relay::LinkError;
use crate::vault::{CreateError, OpenError, ReadError, WriteError};

use super::content::ContentError;
use super::records::RecordError;

/// An error of the client agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The vault could not be opened (wrong passphrase, damaged, missing).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The vault could not be created.
    #[error(transparent)]
    Create(#[from] CreateError),
    /// Reading the vault failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Writing the vault failed; nothing of the operation was kept.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A record in the vault does not decode.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The vault opened but holds no profile (made by something else).
    #[error("the vault holds no Passage profile")]
    NotAProfile,
    /// No contact has that name (or id).
    #[error("no such contact")]
    NoSuchContact,
    /// Another contact already has that name.
    #[error("a contact with that name exists already; choose another name")]
    NameTaken,
    /// The name is empty, too long, has control characters or surrounding spaces.
    #[error("contact names are 1 to {max} bytes, without control characters or surrounding spaces")]
    InvalidName {
        /// The longest name.
        max: usize,
    },
    /// The invitation link does not decode or its signature fails.
    #[error("this is not a valid invitation link; ask for a new one")]
    InvalidInvitation,
    /// The invitation comes from a newer version.
    #[error("this invitation needs a newer version of Passage")]
    UnsupportedInvitation,
    /// The invitation has expired.
    #[error("this invitation has expired; ask for a new one")]
    InvitationExpired,
    /// This vault accepted the invitation already, or the inviter's relay says
    /// someone did.
    #[error("this invitation was used already; ask for a new one")]
    InvitationAlreadyUsed,
    /// The contact cannot be written to yet (our invitation is not accepted).
    #[error("the contact has not accepted the invitation yet")]
    NotConnected,
    /// The text does not fit one message.
    #[error("the message is {len} bytes; the limit is {max}")]
    TextTooLong {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_TEXT_LEN`](super::MAX_TEXT_LEN).
        max: usize,
    },
    /// The voice note is larger than a voice message may be.
    #[error("the voice message is {len} bytes; the limit is {max}")]
    VoiceTooLarge {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_VOICE_LEN`](super::content::MAX_VOICE_LEN).
        max: usize,
    },
    /// No voice message with this id in the contact's history (or it disappeared).
    #[error("no such voice message in this conversation")]
    NoSuchVoiceMessage,
    /// The disappearing-message timer is over a year.
    #[error("the timer is too long; at most 366 days")]
    TimerTooLong,
    /// 2^32 messages without a reply.
    #[error("too many messages without a reply; wait for the contact to answer")]
    ChainExhausted,
    /// The typed safety number is not the contact's.
    #[error("the safety number does not match: do not trust this contact until you know why")]
    SafetyNumberMismatch,
    /// A relay no longer knows some of our receiving queues: those contacts cannot
    /// reach us there until they are invited again.
    #[error("a relay has lost {count} of our receiving queues; invite those contacts again")]
    QueuesLost {
        /// How many queues.
        count: usize,
    },
    /// An SOS needs at least one trusted contact that can be written to.
    #[error("no trusted contact to send an SOS to; mark contacts trusted first")]
    NoTrustedContacts,
    /// A relay refused or could not be reached.
    #[error(transparent)]
    Relay(#[from] LinkError),
    /// A content could not be encoded (a bug) or decoded.
    #[error(transparent)]
    Content(#[from] ContentError),
}
