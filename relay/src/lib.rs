//! # passage-relay
//!
//! The store-and-forward queue service an NGO runs (see DESIGN.md).
//!
//! ```text
//!  transport::Listener ─► server (a task per connection) ─► Session (sans-IO protocol core)
//!                                        │  writes                   │ reads
//!                                        ▼                           ▼
//!                               store::GroupCommitter ──► store::Store (redb by default)
//!  Hub: which connection subscribes to which queue; wakes it (its Mailbox) when a
//!  message is stored. A connection's write outcomes come back through its Mailbox too.
//! ```
#![forbid(unsafe_code)]

pub mod config;
pub mod datadir;
pub mod hub;
pub mod id_map;
pub mod key_rotation;
pub mod limits;
pub mod mailbox;
pub mod metrics;
pub mod metrics_http;
pub mod server;
pub mod session;
pub mod store;

pub use limits::Limits;
pub use metrics::Metrics;
pub use server::Relay;
pub use session::{ServiceConfig, Session};
