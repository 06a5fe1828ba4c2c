//! Errors of the relay link. None carries an id, a key, an address or bytes from the
//! relay, so they are safe to show and to log.

use passage_transport::TransportError;
use passage_wire::command::PasswordLengthError;
use passage_wire::version::{HelloDecodeError, VersionError};
use passage_wire::{ErrorCode, FrameError, ReplyDecodeError};

/// Why a relay command or the link failed.
///
/// The relay's refusals (`ERR` codes) come first, then faults of the connection or of
/// the relay's side of the protocol, then misuse by the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// `ERR AUTH`: the command's key is not the queue's (a sender key other than the
    /// one the first `SEND` fixed, a wrong password for `NEW`), or the queue does not
    /// exist (the relay does not tell the two apart).
    #[error("the relay refused: not authorised, or no such queue")]
    Auth,
    /// `ERR QUOTA`: the queue is full and the message was not stored; send again after
    /// the recipient has read some.
    #[error("the queue is full; send again after the recipient has read it")]
    Quota,
    /// `ERR NO_MSG` to an `ACK`: no message with that id (already acknowledged or expired).
    #[error("the relay has no such message")]
    NoMsg,
    /// `ERR RATE_LIMIT`: too many commands or queues on this connection; slow down.
    #[error("the relay is rate limiting this connection; slow down and retry")]
    RateLimited,
    /// `ERR INTERNAL`: the relay failed (e.g. its storage); the command may be retried.
    #[error("the relay failed to carry out the command; try again later")]
    RelayInternal,
    /// `ERR FULL`: the relay is at its storage limit (queues, stored bytes or free disk)
    /// and stored nothing; reading and acknowledging still work. Try again later, or
    /// use another relay.
    #[error("the relay is out of storage space; try again later or use another relay")]
    RelayFull,
    /// Another `ERR` (`SYNTAX`, `CMD`, `LARGE`, `VERSION`): the relay could not read or
    /// does not allow the command. A bug on one side or a version mismatch.
    #[error("the relay refused the command ({0}); update the client or the relay")]
    Refused(ErrorCode),
    /// Connecting failed, or the connection broke.
    #[error("relay connection failed: {0}")]
    Transport(#[from] TransportError),
    /// The connection ended before the relay answered (or before the command was sent).
    #[error("the relay connection is closed")]
    Closed,
    /// The relay did not answer within the reply timeout.
    #[error("the relay did not answer in time")]
    Timeout,
    /// The relay speaks no protocol version this client does.
    #[error("{0}")]
    Version(#[from] VersionError),
    /// The relay broke the protocol; the connection is unusable.
    #[error("the relay broke the protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// A queue password was empty or too long (the caller's mistake).
    #[error("{0}")]
    Password(#[from] PasswordLengthError),
    /// Too many queues in use on one connection (see
    /// [`MAX_QUEUES_PER_LINK`](super::MAX_QUEUES_PER_LINK)); open another connection.
    #[error("too many queues on one relay connection; open another connection")]
    TooManyQueues,
}

impl LinkError {
    /// The error for a relay's `ERR code` answering one of our commands.
    pub fn from_code(code: ErrorCode) -> Self {
        match code {
            ErrorCode::Auth => Self::Auth,
            ErrorCode::Quota => Self::Quota,
            ErrorCode::NoMsg => Self::NoMsg,
            ErrorCode::RateLimit => Self::RateLimited,
            ErrorCode::Internal => Self::RelayInternal,
            ErrorCode::Full => Self::RelayFull,
            other => Self::Refused(other),
        }
    }
}

/// How the relay broke the protocol. Fatal for the connection, except
/// [`UnexpectedReply`](Self::UnexpectedReply) and
/// [`DeliveryDoesNotOpen`](Self::DeliveryDoesNotOpen), which fail one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A block broke the framing rules.
    #[error("bad block: {0}")]
    Framing(#[from] FrameError),
    /// The relay's hello could not be decoded.
    #[error("bad hello: {0}")]
    Hello(#[from] HelloDecodeError),
    /// A reply could not be decoded.
    #[error("bad reply: {0}")]
    Reply(#[from] ReplyDecodeError),
    /// A reply's correlation id names no command in flight.
    #[error("a reply answers no command in flight")]
    UnknownCorrelation,
    /// A reply of the wrong kind for its command (e.g. `IDS` to a `SEND`).
    #[error("a reply of the wrong kind for its command")]
    UnexpectedReply,
    /// A `MSG` answering a `GET` did not open with the queue's delivery key (altered,
    /// or sealed to another key). Fails that `GET` only.
    #[error("a delivered message does not open with the queue's key")]
    DeliveryDoesNotOpen,
    /// The relay's key for a queue has low order.
    #[error("the relay sent an unusable queue key")]
    BadRelayKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each `ERR` code the relay can send becomes an error that says what to do; `FULL`
    /// (added with the relay's global limits) is its own, not a protocol fault.
    #[test]
    fn every_code_maps_to_a_clear_error() {
        assert!(matches!(
            LinkError::from_code(ErrorCode::Full),
            LinkError::RelayFull
        ));
        assert!(
            LinkError::from_code(ErrorCode::Full)
                .to_string()
                .contains("try again later")
        );
        assert!(matches!(
            LinkError::from_code(ErrorCode::Syntax),
            LinkError::Refused(ErrorCode::Syntax)
        ));
    }
}
