//! # passage-e2e
//!
//! The end-to-end tests in `tests/tests/` and what they share: real `passage-relay`
//! processes on loopback, the real client link ([`passage_client::relay::RelayLink`])
//! and the real `passage` CLI, optionally through the link-fault proxy.
//!
//! ```text
//!  test ── TestRelay::start(config) ──► passage-relay serve --listen 127.0.0.1:0
//!    │        (passage_testkit::RelayProcess: the one launcher; kill / restart)
//!    ├── connect(address, mode) ══ QUIC or TLS/TCP ══► relay            (link)
//!    ├── CliClient::run(["send", …]) ──► passage --vault DIR …           (cli)
//!    ├── LinkProxy::in_front_of(address, LinkFaults) ──► loss, delay, cuts, dark
//!    └── InProcessRelay::start(limits): the relay's library in this process
//! ```
//!
//! Modules, one concern each: [`link`] (connect options, test envelopes, bounded event
//! waits), [`cli`] (the `passage` binary on one profile, [`CliProcess`] for `passage
//! run`), [`conversation`] (two people over a link through the CLI, phase by phase,
//! for the bad-link tests and benchmark), `test_relay` ([`TestRelay`]: a relay process in its own temporary
//! directory), `in_process` ([`InProcessRelay`], for settings the binary's
//! configuration does not offer, such as retention in seconds), [`recording`] (a store
//! that records what the relay writes) and [`scan`] (the seized-device scan: markers
//! in every encoding, entropy, file signatures, file listings). Where the binaries
//! come from, the relay launcher and the proxy are the shared kit's
//! ([`passage_testkit`]), re-exported here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod conversation;
mod in_process;
pub mod link;
pub mod recording;
pub mod scan;
mod test_relay;

pub use cli::{CLI_LIMIT, CliClient, CliOutput, CliProcess, read_to_end_in_thread, run_limited};
pub use in_process::InProcessRelay;
pub use link::{
    CONNECT_TIMEOUT, Delivered, connect, envelope, envelope_tag, next_event, next_message, options,
    rng,
};
pub use passage_testkit::proxy::{self, LinkCounters, LinkFaults, LinkProxy};
pub use passage_testkit::{
    ADDRESS_LINE_PREFIX, HarnessError, RelayOptions, RelayProcess, STARTUP_TIMEOUT, StopSignal,
    client_binary, relay_binary,
};
pub use test_relay::TestRelay;
