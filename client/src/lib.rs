//! # passage-client
//!
//! The client core (vault, contacts, conversations). Not built yet: this crate holds
//! its place in the workspace so the layering is fixed from the start.
#![forbid(unsafe_code)]
