//! # passage-testkit
//!
//! The test kit every suite and benchmark shares: the one way to start a relay
//! process, the binaries it starts, and a link-fault proxy to put between clients and
//! relays.
//!
//! ```text
//!  binaries      relay_binary() / client_binary(): found next to the executable,
//!                built once per process if stale
//!  relay_process RelayProcess::launch(data dir, RelayOptions) ─► passage-relay serve
//!  child         AnnouncedChild: any server that prints "<prefix><address>" on stdout
//!  proxy         LinkProxy::start(relay's 127.0.0.1:port, LinkFaults)
//!                  client ─► 127.0.0.1:P ─ loss/delay/jitter/duplicates (UDP),
//!                                          delay/bandwidth/cuts (TCP), dark switch ─► relay
//! ```
//!
//! The kit depends on neither the relay nor the client library, so the relay's own
//! tests use it (as a dev-dependency) as well as the end-to-end crate (`passage-e2e`,
//! which adds the CLI client, the in-process relay and the seized-device scan) and the
//! bench.
//!
//! ## Quick start
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use passage_testkit::{LinkFaults, LinkProxy, RelayProcess};
//!
//! let dir = tempfile::tempdir()?;
//! let relay = RelayProcess::start(&dir.path().join("data"), None)?;
//! let mut faults = LinkFaults::with_rtt(Duration::from_secs(1));
//! faults.up.loss = 0.3;
//! faults.down.loss = 0.3;
//! let proxy = LinkProxy::in_front_of(relay.address(), faults)?;
//! let through_proxy = proxy.address(relay.address()); // give this to clients
//! # let _ = through_proxy; Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod binaries;
mod child;
mod error;
pub mod proxy;
mod relay_process;

pub use binaries::{client_binary, relay_binary};
pub use child::{AnnouncedChild, StopSignal};
pub use error::HarnessError;
pub use proxy::{LinkCounters, LinkFaults, LinkProxy, ProxyError};
pub use relay_process::{
    ADDRESS_LINE_PREFIX, RelayOptions, RelayProcess, STARTUP_TIMEOUT, STOP_TIMEOUT,
};
