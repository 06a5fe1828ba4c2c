//! # passage-client
//!
//! The client core (vault, contacts, conversations). Built so far: [`relay`], the
//! client's link to a relay, and [`vault`], the encrypted store that holds all of a
//! client's state. The rest follows; the crate holds its place in the workspace so
//! the layering is fixed from the start.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod messenger;
pub mod passphrase;
pub mod profile;
pub mod relay;
pub mod vault;
