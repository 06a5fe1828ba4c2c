//! # passage-crypto
//!
//! How two people who share nothing but an invitation get a shared secret, and keep
//! it safe message after message. Pure: no I/O, no clock (time comes in as `now`),
//! no global RNG (randomness comes in as an argument).
//!
//! ```text
//!  inviter                                   acceptor
//!  Identity ──► Invitation ─ (QR / link) ──► Invitation::decode
//!  PendingInvitation                          accept() ─► AcceptMessage + RatchetState
//!  complete(AcceptMessage) ◄──── relay ─────┘
//!  RatchetState  ◄──────── encrypt / decrypt ────────► RatchetState
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod primitives;

/// Length of every end-to-end message the relay carries (a ratchet message or a
/// handshake accept message): the body of one `SEND`. Every message is exactly this
/// long, so the relay and the network learn nothing from sizes. Chosen so that a
/// `SEND` carrying it, and the re-encrypted `MSG` delivering it, each fit one
/// 4096-byte wire block with the relay protocol's overhead (at most 192 bytes).
pub const ENVELOPE_LEN: usize = 3904;

pub mod handshake;
pub mod identity;
pub mod invitation;
pub mod padding;
pub mod ratchet;
pub mod safety_number;

pub use handshake::{Accepted, Completed, Rejected, accept};
pub use identity::{Identity, IdentityPublic};
pub use invitation::{Invitation, PendingInvitation};
pub use ratchet::RatchetState;
pub use safety_number::SafetyNumber;
