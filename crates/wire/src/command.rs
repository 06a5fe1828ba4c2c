//! Commands: what a client asks of the relay.
//!
//! Recipient commands manage and read a queue (`NEW`, `SUB`, `GET`, `ACK`, `DEL`), the
//! sender command writes to it (`SEND`), and `PING` keeps a connection alive.
//!
//! # Byte layout of a command transmission (one frame, big-endian)
//!
//! ```text
//! corr_id        [8]
//! entity         tag u8: 0 none | 1 recipient ‖ id [24] | 2 sender ‖ id [24]
//! auth           flag u8: 0 absent | 1 present ‖ authenticator [32]
//! command        tag u8 ‖ fields:
//!   0x01 NEW     recipient_auth_key [32] ‖ recipient_dh_key [32]
//!                ‖ password_len u8 (0 = none, 1..=64) ‖ password       entity none
//!   0x02 SUB                                                           entity recipient
//!   0x03 GET                                                           entity recipient
//!   0x04 ACK     msg_id [24]                                           entity recipient
//!   0x05 DEL                                                           entity recipient
//!   0x06 SEND    key_flag u8 (0|1) ‖ sender_auth_key [32] ‖ body [3904] entity sender
//!   0x07 PING                                                          entity none
//! ```
//!
//! Every command but `PING` carries an authenticator (see [`crate::auth`]) computed
//! over the transmission without its `auth` field: `corr_id ‖ entity ‖ command`.
//! Decoding is strict (every tag and flag checked, no trailing bytes), so a frame
//! decodes to exactly one value and re-encodes to the same bytes: the relay checks the
//! authenticator over the bytes the client sent.
//!
//! # What the relay answers
//!
//! `NEW` → `IDS`; `SUB`, `ACK`, `DEL`, `SEND` → `OK`; `GET` → a `MSG` for that queue or
//! `ERR NO_MSG`; `PING` → `PONG`; any failure → `ERR`. A missing queue is answered
//! `ERR AUTH`, exactly like a bad authenticator, so queue ids cannot be probed.
//!
//! # Delivery on a subscription
//!
//! After `SUB` the relay pushes the queue's messages as `MSG`s, oldest first, with up to
//! a window of them (16 in `passage-relay`) delivered and not yet acknowledged; each
//! `ACK` (by message id, in any order) deletes that message and lets the next one come.
//! A client may therefore receive several `MSG`s of one queue before it has answered
//! any. Delivery is at least once: a message never acknowledged stays in the queue and
//! comes again after the next `SUB` (on a new connection, or again on this one), so a
//! client drops a message it has already handled by its id.

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::codec::{DecodeError, Reader, Writer};
use passage_crypto::primitives::{DhPublic, Secret32, sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::auth::{AUTHENTICATOR_LEN, AuthError, AuthKey, AuthRole, Authenticator};
use crate::ids::{
    CORR_ID_LEN, CorrId, Entity, MSG_ID_LEN, MsgId, QUEUE_ID_LEN, RecipientId, SenderId,
};
use crate::reply::ErrorCode;

/// Longest queue-creation password, in bytes. An NGO shares it with the people allowed
/// to create queues; 64 bytes holds any passphrase people type, and keeps `NEW` small.
pub const MAX_PASSWORD_LEN: usize = 64;

/// Length of the largest command frame: a `SEND` with a sender key and an
/// authenticator (4004 bytes). Longer frames are refused before parsing.
pub const MAX_COMMAND_LEN: usize =
    CORR_ID_LEN + 1 + QUEUE_ID_LEN + 1 + AUTHENTICATOR_LEN + 1 + 1 + 32 + ENVELOPE_LEN;

mod tag {
    pub const NEW: u8 = 0x01;
    pub const SUB: u8 = 0x02;
    pub const GET: u8 = 0x03;
    pub const ACK: u8 = 0x04;
    pub const DEL: u8 = 0x05;
    pub const SEND: u8 = 0x06;
    pub const PING: u8 = 0x07;
}

/// The password a relay may require to create a queue: 1..=[`MAX_PASSWORD_LEN`] bytes,
/// zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct QueuePassword(Box<[u8]>);

/// A password was empty or longer than [`MAX_PASSWORD_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a queue password is 1 to {MAX_PASSWORD_LEN} bytes, got {len}")]
pub struct PasswordLengthError {
    /// The length handed in.
    pub len: usize,
}

impl QueuePassword {
    /// Wraps a password, checking its length.
    pub fn new(bytes: &[u8]) -> Result<Self, PasswordLengthError> {
        if bytes.is_empty() || bytes.len() > MAX_PASSWORD_LEN {
            return Err(PasswordLengthError { len: bytes.len() });
        }
        Ok(Self(bytes.into()))
    }

    /// The password bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time comparison, for the relay checking a `NEW`. Compares SHA-256
    /// digests so that neither the bytes nor the length leak through timing.
    pub fn ct_eq(&self, other: &Self) -> bool {
        let ours = Secret32::from_bytes(sha256(&[&self.0]));
        let theirs = Secret32::from_bytes(sha256(&[&other.0]));
        ours.ct_eq(&theirs)
    }
}

impl PartialEq for QueuePassword {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for QueuePassword {}

impl core::fmt::Debug for QueuePassword {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("QueuePassword([redacted])")
    }
}

/// `NEW`: create a queue.
#[derive(Clone, PartialEq, Eq)]
pub struct NewQueue {
    /// Authenticates this and every later recipient command.
    pub recipient_auth_key: DhPublic,
    /// The relay encrypts deliveries to this key (see [`crate::delivery`]).
    pub recipient_dh_key: DhPublic,
    /// The relay's creation password, if it requires one.
    pub password: Option<QueuePassword>,
}

impl core::fmt::Debug for NewQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NewQueue")
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

/// `SEND`: write one message to a queue.
#[derive(Clone, PartialEq, Eq)]
pub struct SendMessage {
    /// The queue, by its sender id.
    pub sender_id: SenderId,
    /// The sender's auth key: present on the first send, which fixes it for the queue;
    /// the relay refuses a key that differs from the one it has.
    pub sender_auth_key: Option<DhPublic>,
    /// The end-to-end encrypted message, always [`ENVELOPE_LEN`] bytes.
    pub body: Box<[u8; ENVELOPE_LEN]>,
}

impl core::fmt::Debug for SendMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SendMessage")
            .field("sender_id", &self.sender_id)
            .field("sender_auth_key", &self.sender_auth_key.map(|_| ".."))
            .finish_non_exhaustive()
    }
}

/// A command from a client to the relay.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Command {
    /// Create a queue; answered by `IDS`.
    New(NewQueue),
    /// Subscribe: deliver this queue's messages as they arrive, several not yet
    /// acknowledged at a time (see the module documentation).
    Sub(RecipientId),
    /// Deliver one message if there is one.
    Get(RecipientId),
    /// Delete a delivered message (and free its place in the subscription's window).
    Ack {
        /// The queue.
        recipient_id: RecipientId,
        /// The message to delete.
        msg_id: MsgId,
    },
    /// Delete the queue and everything in it.
    Del(RecipientId),
    /// Write a message to a queue.
    Send(SendMessage),
    /// Keep the connection alive; answered by `PONG`.
    Ping,
}

/// Why a command frame was refused. A fault of the peer; carries no frame bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandDecodeError {
    /// Longer than [`MAX_COMMAND_LEN`].
    #[error("command of {len} bytes exceeds {MAX_COMMAND_LEN}")]
    TooLong {
        /// The frame's length.
        len: usize,
    },
    /// Truncated, trailing bytes, a bad flag or length.
    #[error("malformed command: {0}")]
    Malformed(#[from] DecodeError),
    /// A command tag this version does not know.
    #[error("unknown command {0:#04x}")]
    UnknownCommand(u8),
    /// The entity is not the kind the command names (none, recipient or sender).
    #[error("the entity does not match the command")]
    EntityMismatch,
    /// A command that needs an authenticator came without one.
    #[error("missing authenticator")]
    MissingAuthenticator,
    /// `PING` came with an authenticator.
    #[error("unexpected authenticator")]
    UnexpectedAuthenticator,
}

impl CommandDecodeError {
    /// The error code the relay answers with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::TooLong { .. } => ErrorCode::Large,
            Self::UnknownCommand(_) => ErrorCode::Cmd,
            Self::MissingAuthenticator => ErrorCode::Auth,
            _ => ErrorCode::Syntax,
        }
    }
}

/// Why [`Command::encode`] refused: the caller's mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandEncodeError {
    /// The command needs an [`AuthKey`] and none was given.
    #[error("this command must be authenticated")]
    AuthKeyRequired,
    /// `PING` is never authenticated.
    #[error("this command is not authenticated")]
    AuthKeyNotAllowed,
    /// The key is for the other role (sender key for a recipient command or the reverse).
    #[error("the auth key is for the wrong role")]
    WrongRole,
}

impl Command {
    /// Which queue key must authenticate this command, if any.
    pub fn auth_role(&self) -> Option<AuthRole> {
        match self {
            Command::New(_)
            | Command::Sub(_)
            | Command::Get(_)
            | Command::Ack { .. }
            | Command::Del(_) => Some(AuthRole::Recipient),
            Command::Send(_) => Some(AuthRole::Sender),
            Command::Ping => None,
        }
    }

    /// The queue the command names.
    pub fn entity(&self) -> Entity {
        match self {
            Command::New(_) | Command::Ping => Entity::None,
            Command::Sub(id) | Command::Get(id) | Command::Del(id) => Entity::Recipient(*id),
            Command::Ack { recipient_id, .. } => Entity::Recipient(*recipient_id),
            Command::Send(send) => Entity::Sender(send.sender_id),
        }
    }

    /// The command's name, for metrics and logs (it reveals nothing about the queue).
    pub fn name(&self) -> &'static str {
        match self {
            Command::New(_) => "NEW",
            Command::Sub(_) => "SUB",
            Command::Get(_) => "GET",
            Command::Ack { .. } => "ACK",
            Command::Del(_) => "DEL",
            Command::Send(_) => "SEND",
            Command::Ping => "PING",
        }
    }

    /// Encodes the command as one frame, authenticated with `key` (which must be given,
    /// with the command's role, for every command but `PING`).
    pub fn encode(
        &self,
        corr_id: CorrId,
        key: Option<&AuthKey>,
    ) -> Result<Vec<u8>, CommandEncodeError> {
        let authenticator = match (self.auth_role(), key) {
            (None, None) => None,
            (None, Some(_)) => return Err(CommandEncodeError::AuthKeyNotAllowed),
            (Some(_), None) => return Err(CommandEncodeError::AuthKeyRequired),
            (Some(role), Some(key)) if role != key.role() => {
                return Err(CommandEncodeError::WrongRole);
            }
            (Some(_), Some(key)) => Some(key.sign(&corr_id, self)),
        };
        let parts = signed_parts(&corr_id, self);
        // Exactly the frame's length: only a `SEND` is long.
        let len = parts.head.len()
            + 1
            + authenticator.as_ref().map_or(0, |_| AUTHENTICATOR_LEN)
            + parts.command.len()
            + parts.body.len();
        let mut w = Writer::with_capacity(len);
        w.put(parts.head.as_slice());
        match authenticator {
            None => w.put_u8(0),
            Some(tag) => {
                w.put_u8(1);
                w.put(tag.as_bytes());
            }
        }
        w.put(parts.command.as_slice());
        w.put(parts.body);
        Ok(w.into_vec())
    }
}

/// A decoded command whose authenticator has not been checked. Look at it only to find
/// the queue and its key, then [`verify`](Self::verify) it; only a [`VerifiedCommand`]
/// should be acted on.
#[derive(Debug)]
pub struct UnverifiedCommand {
    corr_id: CorrId,
    command: Command,
    authenticator: Option<Authenticator>,
}

impl UnverifiedCommand {
    /// Decodes a command frame.
    pub fn decode(frame: &[u8]) -> Result<Self, CommandDecodeError> {
        if frame.len() > MAX_COMMAND_LEN {
            return Err(CommandDecodeError::TooLong { len: frame.len() });
        }
        let mut r = Reader::new(frame);
        let corr_id = CorrId::from_bytes(r.array()?);
        let entity = Entity::read(&mut r)?;
        let authenticator = match r.u8()? {
            0 => None,
            1 => Some(Authenticator::from_bytes(r.array()?)),
            value => return Err(unknown("auth flag", value).into()),
        };
        let command = read_command(&mut r, entity)?;
        r.finish()?;
        match (command.auth_role(), &authenticator) {
            (Some(_), None) => return Err(CommandDecodeError::MissingAuthenticator),
            (None, Some(_)) => return Err(CommandDecodeError::UnexpectedAuthenticator),
            _ => {}
        }
        Ok(Self {
            corr_id,
            command,
            authenticator,
        })
    }

    /// The correlation id, to copy into the reply (also when refusing the command).
    pub fn corr_id(&self) -> CorrId {
        self.corr_id
    }

    /// The command, to find its queue and key. Do not act on it before verifying.
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// Checks the authenticator with the key of the queue the command names (for `NEW`,
    /// the key derived from its `recipient_auth_key`; for the first `SEND`, from its
    /// `sender_auth_key`). For a missing queue, use [`AuthKey::dummy`]: the check then
    /// costs the same and fails the same way.
    pub fn verify(self, key: &AuthKey) -> Result<VerifiedCommand, AuthError> {
        let Some(authenticator) = &self.authenticator else {
            return Err(AuthError::Missing);
        };
        key.verify(&self.corr_id, &self.command, authenticator)?;
        Ok(VerifiedCommand {
            corr_id: self.corr_id,
            command: self.command,
        })
    }

    /// Accepts a command that needs no authenticator (`PING`).
    pub fn accept_unauthenticated(self) -> Result<VerifiedCommand, AuthError> {
        if self.command.auth_role().is_some() {
            return Err(AuthError::Missing);
        }
        Ok(VerifiedCommand {
            corr_id: self.corr_id,
            command: self.command,
        })
    }
}

/// A command whose authenticator checked out (or that needs none): the proof the relay
/// requires before acting.
#[derive(Debug)]
pub struct VerifiedCommand {
    corr_id: CorrId,
    command: Command,
}

impl VerifiedCommand {
    /// The correlation id, to copy into the reply.
    pub fn corr_id(&self) -> CorrId {
        self.corr_id
    }

    /// The command.
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// The correlation id and the command.
    pub fn into_parts(self) -> (CorrId, Command) {
        (self.corr_id, self.command)
    }
}

/// The bytes an authenticator covers (`corr_id ‖ entity ‖ command`), and the command's
/// encoding after the authenticator, in parts that borrow a `SEND`'s body rather than
/// copy it (about 4 KiB a message, on the relay's path and the client's).
pub(crate) struct SignedParts<'a> {
    /// `corr_id ‖ entity`.
    pub head: Writer,
    /// The command up to its body.
    pub command: Writer,
    /// A `SEND`'s body; empty for the others.
    pub body: &'a [u8],
}

impl SignedParts<'_> {
    /// The covered bytes, in order.
    pub fn parts(&self) -> [&[u8]; 3] {
        [self.head.as_slice(), self.command.as_slice(), self.body]
    }
}

pub(crate) fn signed_parts<'a>(corr_id: &CorrId, command: &'a Command) -> SignedParts<'a> {
    let mut head = Writer::with_capacity(CORR_ID_LEN + 1 + QUEUE_ID_LEN);
    head.put(corr_id.as_bytes());
    command.entity().write(&mut head);
    let mut w = Writer::with_capacity(COMMAND_HEAD_CAPACITY);
    let body = write_command(&mut w, command);
    SignedParts {
        head,
        command: w,
        body,
    }
}

/// Room for any command without a `SEND`'s body (`NEW` is the longest).
const COMMAND_HEAD_CAPACITY: usize = 1 + 32 + 32 + 1 + MAX_PASSWORD_LEN;

/// Writes `command` up to a `SEND`'s body, which it returns (empty for the others).
fn write_command<'a>(w: &mut Writer, command: &'a Command) -> &'a [u8] {
    match command {
        Command::New(new) => {
            w.put_u8(tag::NEW);
            w.put(new.recipient_auth_key.as_bytes());
            w.put(new.recipient_dh_key.as_bytes());
            // A QueuePassword is at most MAX_PASSWORD_LEN bytes: it fits the u8 prefix.
            let password = new
                .password
                .as_ref()
                .map_or(&[][..], QueuePassword::as_bytes);
            let _ = w.put_bytes_u8(password);
        }
        Command::Sub(_) => w.put_u8(tag::SUB),
        Command::Get(_) => w.put_u8(tag::GET),
        Command::Ack { msg_id, .. } => {
            w.put_u8(tag::ACK);
            w.put(msg_id.as_bytes());
        }
        Command::Del(_) => w.put_u8(tag::DEL),
        Command::Send(send) => {
            w.put_u8(tag::SEND);
            match &send.sender_auth_key {
                None => w.put_u8(0),
                Some(key) => {
                    w.put_u8(1);
                    w.put(key.as_bytes());
                }
            }
            return send.body.as_slice();
        }
        Command::Ping => w.put_u8(tag::PING),
    }
    &[]
}

fn read_command(r: &mut Reader<'_>, entity: Entity) -> Result<Command, CommandDecodeError> {
    let command_tag = r.u8()?;
    let command = match (command_tag, entity) {
        (tag::NEW, Entity::None) => {
            let recipient_auth_key = DhPublic::from_bytes(r.array()?);
            let recipient_dh_key = DhPublic::from_bytes(r.array()?);
            let password = r.bytes_u8(MAX_PASSWORD_LEN)?;
            let password = if password.is_empty() {
                None
            } else {
                Some(
                    QueuePassword::new(password)
                        .map_err(|_| DecodeError::Invalid { field: "password" })?,
                )
            };
            Command::New(NewQueue {
                recipient_auth_key,
                recipient_dh_key,
                password,
            })
        }
        (tag::SUB, Entity::Recipient(id)) => Command::Sub(id),
        (tag::GET, Entity::Recipient(id)) => Command::Get(id),
        (tag::ACK, Entity::Recipient(recipient_id)) => Command::Ack {
            recipient_id,
            msg_id: MsgId::from_bytes(r.array::<MSG_ID_LEN>()?),
        },
        (tag::DEL, Entity::Recipient(id)) => Command::Del(id),
        (tag::SEND, Entity::Sender(sender_id)) => {
            let sender_auth_key = match r.u8()? {
                0 => None,
                1 => Some(DhPublic::from_bytes(r.array()?)),
                value => return Err(unknown("sender key flag", value).into()),
            };
            Command::Send(SendMessage {
                sender_id,
                sender_auth_key,
                body: r.boxed_array()?,
            })
        }
        (tag::PING, Entity::None) => Command::Ping,
        (tag::NEW..=tag::PING, _) => return Err(CommandDecodeError::EntityMismatch),
        (other, _) => return Err(CommandDecodeError::UnknownCommand(other)),
    };
    Ok(command)
}

fn unknown(field: &'static str, value: u8) -> DecodeError {
    DecodeError::UnknownValue {
        field,
        value: u32::from(value),
    }
}
