//! # passage-wire
//!
//! The relay protocol: queue commands and replies, their authenticators, the
//! delivery encryption, relay addresses, and the fixed 4096-byte blocks they travel
//! in. Sans-IO: no sockets, no clock (time comes in as `now`), no global RNG
//! (randomness comes in as an argument). Every decoder is bounded, strict and fuzzed.
//!
//! ```text
//!  client                                                         relay
//!  Command::encode(corr_id, AuthKey) ─► frame                     RelayHello ─┐
//!        FrameEncoder ─► Block (4096 B) ══ TLS ══► FrameDecoder ─► frame      │ first
//!                                  UnverifiedCommand::decode ─► verify(AuthKey)│ frames
//!                                                       VerifiedCommand ─► queue logic
//!  open_delivery(DeliveryKey) ◄─ Reply::decode ◄─ frame ◄─ FrameDecoder
//!        ◄══ TLS ══ Block ◄─ FrameEncoder ◄─ Reply::encode ◄─ seal_delivery(DeliveryKey)
//! ```
//!
//! Modules, in the order a connection uses them: [`version`] (hellos),
//! [`command`], [`auth`], [`reply`], [`delivery`], carried by [`framing`] in
//! [`block`]s. [`address`] parses `passage://` relay addresses.
//!
//! ## Quick start
//!
//! A client creates a queue and a sender sends to it, over an in-memory relay:
//!
//! ```
//! use passage_crypto::primitives::DhSecret;
//! use passage_crypto::ENVELOPE_LEN;
//! use passage_wire::*;
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1); // any CryptoRng
//! # fn pipe(frame: &[u8]) -> Vec<u8> {
//! #     let mut enc = FrameEncoder::new();
//! #     enc.push_frame(frame).unwrap();
//! #     enc.flush();
//! #     let mut dec = FrameDecoder::new();
//! #     while let Some(block) = enc.poll_block() { dec.handle_block(&block).unwrap(); }
//! #     dec.poll_frame().unwrap()
//! # }
//! // The connection: the relay's session key and the TLS channel binding.
//! let session = DhSecret::generate(&mut rng);
//! let hello = RelayHello { versions: SUPPORTED_VERSIONS, session_key: session.public_key() };
//! let hello = RelayHello::decode(&pipe(&hello.encode())).unwrap();
//! let version = hello.negotiate(SUPPORTED_VERSIONS).unwrap();
//! assert_eq!(version.get(), PROTOCOL_VERSION);
//! let binding = ChannelBinding::from_bytes([7; 32]); // from the TLS exporter
//!
//! // Recipient: NEW, authenticated with its new recipient auth key.
//! let auth_secret = DhSecret::generate(&mut rng);
//! let dh_secret = DhSecret::generate(&mut rng);
//! let new = Command::New(NewQueue {
//!     recipient_auth_key: auth_secret.public_key(),
//!     recipient_dh_key: dh_secret.public_key(),
//!     password: None,
//! });
//! let key = AuthKey::derive(AuthRole::Recipient, &auth_secret, &hello.session_key, &binding)?;
//! let frame = new.encode(CorrId::generate(&mut rng), Some(&key))?;
//!
//! // Relay: decode, derive the key from the key NEW carries, verify, answer IDS.
//! let unverified = UnverifiedCommand::decode(&pipe(&frame))?;
//! let Command::New(request) = unverified.command() else { unreachable!() };
//! let relay_key =
//!     AuthKey::derive(AuthRole::Recipient, &session, &request.recipient_auth_key, &binding)?;
//! let recipient_dh_key = request.recipient_dh_key;
//! let verified = unverified.verify(&relay_key)?;
//! let queue_secret = DhSecret::generate(&mut rng);
//! let ids = QueueIds::generate(&mut rng, queue_secret.public_key());
//! let reply = Reply::Ids { corr_id: verified.corr_id(), ids };
//! let Reply::Ids { ids, .. } = Reply::decode(&pipe(&reply.encode()))? else { unreachable!() };
//!
//! // Later the relay delivers a message; only the recipient can open it.
//! let body = Box::new([0x42; ENVELOPE_LEN]);
//! let relay_delivery = DeliveryKey::for_relay(&queue_secret, &recipient_dh_key)?;
//! let msg = Reply::Msg(seal_delivery(&relay_delivery, ids.recipient_id, MsgId::generate(&mut rng), 1_700_000_000, &body));
//! let Reply::Msg(delivery) = Reply::decode(&pipe(&msg.encode()))? else { unreachable!() };
//! let client_delivery = DeliveryKey::for_recipient(&dh_secret, &ids.relay_dh_key)?;
//! assert_eq!(open_delivery(&client_delivery, &delivery)?, body);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
pub mod auth;
pub mod block;
pub mod command;
pub mod delivery;
pub mod framing;
pub mod ids;
pub mod reply;
pub mod spare;
pub mod version;

pub use address::{
    AddressDecodeError, AddressParseError, DnsName, Host, QueueAddress, RelayAddress, RelayPin,
};
pub use auth::{AuthError, AuthKey, AuthKeyError, AuthRole, Authenticator, ChannelBinding};
pub use block::{BLOCK_LEN, Block};
pub use command::{
    Command, CommandDecodeError, CommandEncodeError, NewQueue, QueuePassword, SendMessage,
    UnverifiedCommand, VerifiedCommand,
};
pub use delivery::{
    Delivery, DeliveryError, DeliveryKey, SealedBody, open_delivery, seal_delivery,
};
pub use framing::{FrameDecoder, FrameEncodeError, FrameEncoder, FrameError, MAX_FRAME_LEN};
pub use ids::{CorrId, Entity, IdLengthError, MsgId, QUEUE_ID_LEN, RecipientId, SenderId};
pub use reply::{ErrorCode, QueueIds, Reply, ReplyDecodeError};
pub use version::{
    ClientHello, PROTOCOL_VERSION, ProtocolVersion, RelayHello, SUPPORTED_VERSIONS, VersionRange,
    negotiate,
};

// The largest command and reply each fit one block as a single frame. If an envelope
// or an id grows, this stops the build rather than splitting every message in two.
const _: () = assert!(command::MAX_COMMAND_LEN <= framing::MAX_SEGMENT_LEN);
const _: () = assert!(reply::MAX_REPLY_LEN <= framing::MAX_SEGMENT_LEN);
