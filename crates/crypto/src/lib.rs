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
