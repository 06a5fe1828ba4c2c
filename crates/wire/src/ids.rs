//! Random identifiers: queue ids, message ids and correlation ids.
//!
//! Queue and message ids are drawn from the caller's RNG, never from a counter or a
//! clock, so they say nothing about when or in which order they were made. None of
//! them prints in `Debug`: a queue id in a log is enough to link a person's traffic.

use rand_core::CryptoRng;

/// Length of a recipient id and of a sender id. 24 random bytes (192 bits) cannot be
/// guessed or collide, and keep a `SEND` within one block.
pub const QUEUE_ID_LEN: usize = 24;

/// Length of a message id. It doubles as the XChaCha20-Poly1305 nonce of the delivery
/// encryption, so it is exactly the 24 bytes such a nonce takes, and random.
pub const MSG_ID_LEN: usize = 24;

/// Length of a correlation id. The client picks it to match a reply to its command;
/// 8 bytes is plenty for the commands one connection has in flight.
pub const CORR_ID_LEN: usize = 8;

/// A byte string handed to an id's `from_slice` had the wrong length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("wrong id length: expected {expected} bytes, got {actual}")]
pub struct IdLengthError {
    /// The id's length.
    pub expected: usize,
    /// The length handed in.
    pub actual: usize,
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name([u8; $len]);

        impl $name {
            /// A fresh random id.
            pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
                let mut bytes = [0u8; $len];
                rng.fill_bytes(&mut bytes);
                Self(bytes)
            }

            /// Wraps id bytes (from storage or from a decoded message).
            pub fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// Copies id bytes from a slice (from storage), reporting a length mismatch.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, IdLengthError> {
                bytes.try_into().map(Self).map_err(|_| IdLengthError {
                    expected: $len,
                    actual: bytes.len(),
                })
            }

            /// The id bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl core::fmt::Debug for $name {
            // Never print the bytes: they link a queue or a message across logs.
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

random_id!(
    /// The id a recipient reads its queue with (`SUB`, `GET`, `ACK`, `DEL`). Only the
    /// recipient and the relay know it.
    RecipientId,
    QUEUE_ID_LEN
);

random_id!(
    /// The id senders write to a queue with (`SEND`). It travels in invitations, inside a
    /// [`QueueAddress`](crate::QueueAddress).
    SenderId,
    QUEUE_ID_LEN
);

random_id!(
    /// The relay's id for one stored message: the recipient acknowledges it with `ACK`,
    /// and it is the nonce of the delivery encryption (see [`crate::delivery`]).
    MsgId,
    MSG_ID_LEN
);

random_id!(
    /// A client-chosen id that the relay copies into its reply to a command.
    CorrId,
    CORR_ID_LEN
);

/// The queue a transmission names: none (`NEW`, `PING`, `PONG`, `IDS`), the recipient
/// side or the sender side. On the wire: a tag byte (0, 1, 2) and the 24 id bytes if any.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Entity {
    /// No queue.
    None,
    /// A queue, by its recipient id.
    Recipient(RecipientId),
    /// A queue, by its sender id.
    Sender(SenderId),
}

/// Wire tags of [`Entity`].
pub(crate) mod entity_tag {
    pub const NONE: u8 = 0;
    pub const RECIPIENT: u8 = 1;
    pub const SENDER: u8 = 2;
}

impl Entity {
    pub(crate) fn write(&self, w: &mut passage_crypto::codec::Writer) {
        match self {
            Entity::None => w.put_u8(entity_tag::NONE),
            Entity::Recipient(id) => {
                w.put_u8(entity_tag::RECIPIENT);
                w.put(id.as_bytes());
            }
            Entity::Sender(id) => {
                w.put_u8(entity_tag::SENDER);
                w.put(id.as_bytes());
            }
        }
    }

    pub(crate) fn read(
        r: &mut passage_crypto::codec::Reader<'_>,
    ) -> Result<Self, passage_crypto::codec::DecodeError> {
        match r.u8()? {
            entity_tag::NONE => Ok(Entity::None),
            entity_tag::RECIPIENT => Ok(Entity::Recipient(RecipientId(r.array()?))),
            entity_tag::SENDER => Ok(Entity::Sender(SenderId(r.array()?))),
            value => Err(passage_crypto::codec::DecodeError::UnknownValue {
                field: "entity",
                value: u32::from(value),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ids_are_random_and_never_printed() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = RecipientId::generate(&mut rng);
        let b = RecipientId::generate(&mut rng);
        assert_ne!(a, b);
        let id = SenderId::from_bytes([0xab; QUEUE_ID_LEN]);
        let shown = format!("{id:?} {:?}", Entity::Sender(id));
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
        assert_eq!(
            format!("{:?}", MsgId::from_bytes([1; MSG_ID_LEN])),
            "MsgId(..)"
        );
        assert_eq!(
            format!("{:?}", CorrId::from_bytes([1; CORR_ID_LEN])),
            "CorrId(..)"
        );
        assert_eq!(RecipientId::from_slice(a.as_bytes()), Ok(a));
        assert_eq!(
            RecipientId::from_slice(&[0; QUEUE_ID_LEN + 1]),
            Err(IdLengthError {
                expected: QUEUE_ID_LEN,
                actual: QUEUE_ID_LEN + 1
            })
        );
    }
}
