//! Replies: what the relay sends to a client.
//!
//! # Byte layout of a reply transmission (one frame, big-endian)
//!
//! ```text
//! corr           flag u8: 0 absent | 1 present ‖ corr_id [8]
//! entity         tag u8: 0 none | 1 recipient ‖ id [24] | 2 sender ‖ id [24]
//! reply          tag u8 ‖ fields:
//!   0x81 IDS     recipient_id [24] ‖ sender_id [24] ‖ relay_dh_key [32]  corr, entity none
//!   0x82 OK                                                             corr
//!   0x83 ERR     code u8                                                corr optional
//!   0x84 MSG     msg_id [24] ‖ timestamp u64 ‖ sealed body [3920]       no corr, entity recipient
//!   0x85 END                                                            no corr, entity recipient
//!   0x86 PONG                                                           corr, entity none
//! ```
//!
//! Reply tags (0x81..) never overlap command tags (0x01..), so a frame sent the wrong
//! way fails to decode. `MSG` and `END` are pushed, never correlated: a `MSG` is
//! sealed once per message with its id as nonce (see [`crate::delivery`]), so every
//! byte of it is authenticated and redelivering it produces the same bytes. An `ERR`
//! without a correlation id answers a frame the relay could not read.

use passage_crypto::codec::{DecodeError, Reader, Writer};
use passage_crypto::primitives::DhPublic;
use rand_core::CryptoRng;

use crate::delivery::{Delivery, SEALED_BODY_LEN, SealedBody};
use crate::ids::{
    CORR_ID_LEN, CorrId, Entity, MSG_ID_LEN, MsgId, QUEUE_ID_LEN, RecipientId, SenderId,
};

/// Length of the largest reply frame: a `MSG` (3979 bytes). Longer frames are refused
/// before parsing.
pub const MAX_REPLY_LEN: usize = 1 + 1 + QUEUE_ID_LEN + 1 + MSG_ID_LEN + 8 + SEALED_BODY_LEN;

/// Room for every reply but `MSG` (the longest, `IDS`: the correlation id, the entity, two
/// 24-byte queue ids and a 32-byte key, under 128 bytes); a longer one would still encode,
/// the buffer grows.
const SHORT_REPLY_CAPACITY: usize = 160;

mod tag {
    pub const IDS: u8 = 0x81;
    pub const OK: u8 = 0x82;
    pub const ERR: u8 = 0x83;
    pub const MSG: u8 = 0x84;
    pub const END: u8 = 0x85;
    pub const PONG: u8 = 0x86;
}

/// Why the relay refused a command. The relay answers [`ErrorCode::Auth`] for a
/// missing queue too, so that ids cannot be probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
#[repr(u8)]
pub enum ErrorCode {
    /// Bad or missing authenticator, wrong password, or no such queue.
    #[error("AUTH: not authorised (or no such queue)")]
    Auth = 1,
    /// The queue is full; the message was not stored.
    #[error("QUOTA: the queue is full, try again after the recipient reads it")]
    Quota = 2,
    /// No message to deliver, or no message with that id.
    #[error("NO_MSG: no such message")]
    NoMsg = 3,
    /// The frame could not be decoded.
    #[error("SYNTAX: malformed command")]
    Syntax = 4,
    /// A command this relay does not know or allow here.
    #[error("CMD: unknown or prohibited command")]
    Cmd = 5,
    /// The frame is longer than any command.
    #[error("LARGE: command too large")]
    Large = 6,
    /// No common protocol version.
    #[error("VERSION: unsupported protocol version")]
    Version = 7,
    /// The relay failed; the command may be retried.
    #[error("INTERNAL: relay error, try again later")]
    Internal = 8,
    /// Too many commands; slow down.
    #[error("RATE_LIMIT: too many commands, slow down")]
    RateLimit = 9,
    /// The relay is at a global storage limit (its total of queues or stored bytes, or
    /// its disk's free-space watermark): a `NEW` or `SEND` was refused and nothing was
    /// stored. Reads, `ACK` and `DEL` still work; retry later or use another relay.
    #[error("FULL: the relay is out of storage space, try again later")]
    Full = 10,
}

impl ErrorCode {
    fn from_u8(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            1 => Self::Auth,
            2 => Self::Quota,
            3 => Self::NoMsg,
            4 => Self::Syntax,
            5 => Self::Cmd,
            6 => Self::Large,
            7 => Self::Version,
            8 => Self::Internal,
            9 => Self::RateLimit,
            10 => Self::Full,
            _ => {
                return Err(DecodeError::UnknownValue {
                    field: "error code",
                    value: u32::from(value),
                });
            }
        })
    }
}

/// The ids and key of a new queue, the answer to `NEW`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct QueueIds {
    /// The id the recipient reads with.
    pub recipient_id: RecipientId,
    /// The id senders send with (goes into invitations).
    pub sender_id: SenderId,
    /// The relay's X25519 public key for this queue's deliveries.
    pub relay_dh_key: DhPublic,
}

impl core::fmt::Debug for QueueIds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QueueIds")
            .field("recipient_id", &self.recipient_id)
            .field("sender_id", &self.sender_id)
            .finish_non_exhaustive()
    }
}

impl QueueIds {
    /// Fresh random ids for a new queue (the relay's step).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R, relay_dh_key: DhPublic) -> Self {
        Self {
            recipient_id: RecipientId::generate(rng),
            sender_id: SenderId::generate(rng),
            relay_dh_key,
        }
    }
}

/// A frame from the relay to a client.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Reply {
    /// The queue `NEW` created.
    Ids {
        /// The `NEW`'s correlation id.
        corr_id: CorrId,
        /// The new queue.
        ids: QueueIds,
    },
    /// The command succeeded.
    Ok {
        /// The command's correlation id.
        corr_id: CorrId,
        /// The command's queue.
        entity: Entity,
    },
    /// The command failed.
    Err {
        /// The command's correlation id; `None` if the frame could not be read.
        corr_id: Option<CorrId>,
        /// The command's queue, if known.
        entity: Entity,
        /// Why.
        code: ErrorCode,
    },
    /// A message for a subscribed or polled queue (pushed, not correlated).
    Msg(Delivery),
    /// The subscription moved to another connection; no more `MSG` for this queue here.
    End(RecipientId),
    /// The answer to `PING`.
    Pong {
        /// The `PING`'s correlation id.
        corr_id: CorrId,
    },
}

/// Why a reply frame was refused. A fault of the peer; carries no frame bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyDecodeError {
    /// Longer than [`MAX_REPLY_LEN`].
    #[error("reply of {len} bytes exceeds {MAX_REPLY_LEN}")]
    TooLong {
        /// The frame's length.
        len: usize,
    },
    /// Truncated, trailing bytes, a bad flag or an unknown error code.
    #[error("malformed reply: {0}")]
    Malformed(#[from] DecodeError),
    /// A reply tag this version does not know.
    #[error("unknown reply {0:#04x}")]
    UnknownReply(u8),
    /// The correlation id or entity is not what this reply carries.
    #[error("the correlation id or entity does not match the reply")]
    Mismatch,
}

impl Reply {
    /// The correlation id, if this reply answers a command.
    pub fn corr_id(&self) -> Option<CorrId> {
        match self {
            Reply::Ids { corr_id, .. } | Reply::Ok { corr_id, .. } | Reply::Pong { corr_id } => {
                Some(*corr_id)
            }
            Reply::Err { corr_id, .. } => *corr_id,
            Reply::Msg(_) | Reply::End(_) => None,
        }
    }

    /// The queue this reply is about.
    pub fn entity(&self) -> Entity {
        match self {
            Reply::Ids { .. } | Reply::Pong { .. } => Entity::None,
            Reply::Ok { entity, .. } | Reply::Err { entity, .. } => *entity,
            Reply::Msg(delivery) => Entity::Recipient(delivery.recipient_id),
            Reply::End(id) => Entity::Recipient(*id),
        }
    }

    /// The reply's name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Reply::Ids { .. } => "IDS",
            Reply::Ok { .. } => "OK",
            Reply::Err { .. } => "ERR",
            Reply::Msg(_) => "MSG",
            Reply::End(_) => "END",
            Reply::Pong { .. } => "PONG",
        }
    }

    /// Encodes the reply as one frame (at most [`MAX_REPLY_LEN`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        let (mut frame, body) = self.encode_parts();
        frame.reserve_exact(body.len());
        frame.extend_from_slice(body);
        frame
    }

    /// Encodes the reply as one frame in two parts, `head ‖ body`: `body` is a `MSG`'s
    /// sealed body, borrowed from the reply, and empty for every other reply. With
    /// [`FrameEncoder::push_frame_parts`](crate::FrameEncoder::push_frame_parts) a
    /// delivery is copied once, into its blocks, instead of first into a frame buffer
    /// (an allocation and a copy of 4 KiB per delivered message).
    pub fn encode_parts(&self) -> (Vec<u8>, &[u8]) {
        let mut w = Writer::with_capacity(SHORT_REPLY_CAPACITY);
        match self.corr_id() {
            None => w.put_u8(0),
            Some(corr_id) => {
                w.put_u8(1);
                w.put(corr_id.as_bytes());
            }
        }
        self.entity().write(&mut w);
        let mut body: &[u8] = &[];
        match self {
            Reply::Ids { ids, .. } => {
                w.put_u8(tag::IDS);
                w.put(ids.recipient_id.as_bytes());
                w.put(ids.sender_id.as_bytes());
                w.put(ids.relay_dh_key.as_bytes());
            }
            Reply::Ok { .. } => w.put_u8(tag::OK),
            Reply::Err { code, .. } => {
                w.put_u8(tag::ERR);
                w.put_u8(*code as u8);
            }
            Reply::Msg(delivery) => {
                w.put_u8(tag::MSG);
                w.put(delivery.msg_id.as_bytes());
                w.put_u64(delivery.timestamp);
                body = delivery.sealed.as_bytes();
            }
            Reply::End(_) => w.put_u8(tag::END),
            Reply::Pong { .. } => w.put_u8(tag::PONG),
        }
        (w.into_vec(), body)
    }

    /// Decodes a reply frame.
    pub fn decode(frame: &[u8]) -> Result<Self, ReplyDecodeError> {
        if frame.len() > MAX_REPLY_LEN {
            return Err(ReplyDecodeError::TooLong { len: frame.len() });
        }
        let mut r = Reader::new(frame);
        let corr_id = match r.u8()? {
            0 => None,
            1 => Some(CorrId::from_bytes(r.array::<CORR_ID_LEN>()?)),
            value => {
                return Err(DecodeError::UnknownValue {
                    field: "corr flag",
                    value: u32::from(value),
                }
                .into());
            }
        };
        let entity = Entity::read(&mut r)?;
        let reply_tag = r.u8()?;
        let reply = match (reply_tag, corr_id, entity) {
            (tag::IDS, Some(corr_id), Entity::None) => Reply::Ids {
                corr_id,
                ids: QueueIds {
                    recipient_id: RecipientId::from_bytes(r.array()?),
                    sender_id: SenderId::from_bytes(r.array()?),
                    relay_dh_key: DhPublic::from_bytes(r.array()?),
                },
            },
            (tag::OK, Some(corr_id), entity) => Reply::Ok { corr_id, entity },
            (tag::ERR, corr_id, entity) => Reply::Err {
                corr_id,
                entity,
                code: ErrorCode::from_u8(r.u8()?)?,
            },
            (tag::MSG, None, Entity::Recipient(recipient_id)) => Reply::Msg(Delivery {
                recipient_id,
                msg_id: MsgId::from_bytes(r.array()?),
                timestamp: r.u64()?,
                sealed: SealedBody::from_bytes(r.boxed_array()?),
            }),
            (tag::END, None, Entity::Recipient(id)) => Reply::End(id),
            (tag::PONG, Some(corr_id), Entity::None) => Reply::Pong { corr_id },
            (tag::IDS..=tag::PONG, _, _) => return Err(ReplyDecodeError::Mismatch),
            (other, _, _) => return Err(ReplyDecodeError::UnknownReply(other)),
        };
        r.finish()?;
        Ok(reply)
    }
}
