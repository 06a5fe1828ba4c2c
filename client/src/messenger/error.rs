//! [`MessengerError`]: every error an app can get from a [`Messenger`](super::Messenger),
//! with a flat [`ErrorKind`] to branch on (and to carry across an FFI boundary). The
//! messages say what happened and never name a contact, a text, a key or an address.

use crate::agent::AgentError;
use crate::profile::ProfileError;
use crate::vault::{ChangePassphraseError, OpenError, WriteError};

/// An error of the messenger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessengerError {
    /// The profile as a whole: wrong passphrase, no profile, busy, wiped, I/O.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A contact, a message or a relay (see [`AgentError`]).
    #[error(transparent)]
    Agent(AgentError),
    /// The profile is locked: unlock it first.
    #[error("the profile is locked; unlock it first")]
    Locked,
    /// The messenger was closed (or its driver stopped).
    #[error("this profile was closed")]
    Closed,
    /// A voice note could not be decoded or encoded.
    #[error("the voice note is not valid: {0}")]
    Voice(String),
}

impl From<AgentError> for MessengerError {
    fn from(error: AgentError) -> Self {
        match error {
            AgentError::Open(_) | AgentError::Create(_) | AgentError::Write(_) => {
                MessengerError::Profile(error.into())
            }
            other => MessengerError::Agent(other),
        }
    }
}

/// What kind of error it is, flat (for an app's branches and for foreign languages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No profile opens with this passphrase (or there is none).
    WrongPassphrase,
    /// No profile in that directory.
    NoProfile,
    /// A profile exists there already.
    ProfileExists,
    /// The profile is open elsewhere.
    Busy,
    /// The profile has no decoy (no duress passphrase).
    NoDecoy,
    /// The profile is locked.
    Locked,
    /// The profile was wiped.
    Wiped,
    /// The messenger was closed.
    Closed,
    /// No such contact (or message).
    NoSuchContact,
    /// A contact with that name exists.
    NameTaken,
    /// The name is empty, too long or has control characters.
    InvalidName,
    /// Not an invitation link, an expired or a used one, or one from a newer version.
    InvalidInvitation,
    /// The contact has not accepted the invitation yet.
    NotConnected,
    /// A text, voice message or timer over its limit.
    TooLarge,
    /// The typed safety number does not match.
    SafetyNumberMismatch,
    /// An SOS found no trusted contact to go to.
    NoTrustedContacts,
    /// The passphrase change or duress setting was refused (the current passphrase
    /// is wrong, the new one is the duress one, or the two are the same).
    PassphraseRefused,
    /// A relay could not be reached or refused.
    Relay,
    /// The vault's data is damaged, or the disk failed.
    Storage,
    /// A voice note is invalid.
    Voice,
}

impl MessengerError {
    /// The flat kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MessengerError::Profile(error) => profile_kind(error),
            MessengerError::Agent(error) => agent_kind(error),
            MessengerError::Locked => ErrorKind::Locked,
            MessengerError::Closed => ErrorKind::Closed,
            MessengerError::Voice(_) => ErrorKind::Voice,
        }
    }
}

fn profile_kind(error: &ProfileError) -> ErrorKind {
    match error {
        ProfileError::NoProfile => ErrorKind::NoProfile,
        ProfileError::AlreadyExists => ErrorKind::ProfileExists,
        ProfileError::WrongPassphrase => ErrorKind::WrongPassphrase,
        ProfileError::Busy => ErrorKind::Busy,
        ProfileError::NoDecoy => ErrorKind::NoDecoy,
        ProfileError::Wiped | ProfileError::Write(WriteError::Gone) => ErrorKind::Wiped,
        ProfileError::SetDuress(_) => ErrorKind::PassphraseRefused,
        ProfileError::ChangePassphrase(
            ChangePassphraseError::WrongPassphrase
            | ChangePassphraseError::SameAsDuress
            | ChangePassphraseError::OpenedAsDecoy,
        ) => ErrorKind::PassphraseRefused,
        ProfileError::Open(OpenError::WrongPassphrase) => ErrorKind::WrongPassphrase,
        ProfileError::Agent(error) => agent_kind(error),
        _ => ErrorKind::Storage,
    }
}

fn agent_kind(error: &AgentError) -> ErrorKind {
    match error {
        AgentError::NoSuchContact | AgentError::NoSuchVoiceMessage => ErrorKind::NoSuchContact,
        AgentError::NameTaken => ErrorKind::NameTaken,
        AgentError::InvalidName { .. } => ErrorKind::InvalidName,
        AgentError::InvalidInvitation
        | AgentError::UnsupportedInvitation
        | AgentError::InvitationExpired
        | AgentError::InvitationAlreadyUsed => ErrorKind::InvalidInvitation,
        AgentError::NotConnected => ErrorKind::NotConnected,
        AgentError::TextTooLong { .. }
        | AgentError::VoiceTooLarge { .. }
        | AgentError::TimerTooLong
        | AgentError::ChainExhausted => ErrorKind::TooLarge,
        AgentError::SafetyNumberMismatch => ErrorKind::SafetyNumberMismatch,
        AgentError::NoTrustedContacts => ErrorKind::NoTrustedContacts,
        AgentError::Relay(_) | AgentError::QueuesLost { .. } => ErrorKind::Relay,
        AgentError::Write(WriteError::Gone) => ErrorKind::Wiped,
        _ => ErrorKind::Storage,
    }
}
