//! # passage-relay
//!
//! The store-and-forward queue service (see DESIGN.md). Not built yet: this crate
//! holds its place in the workspace so the layering is fixed from the start.
#![forbid(unsafe_code)]

pub mod store;
