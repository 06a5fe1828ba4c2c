//! # passage-wire
//!
//! The relay protocol. Placeholder until the codec lands.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
