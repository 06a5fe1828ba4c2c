//! `passage-relay`: the relay an NGO runs. `serve` runs it; `address` and `stats` read
//! what a running (or stopped) relay left in its data directory.
//!
//! ```text
//!  serve:  config (file + flags) ─► logging ─► fd limit ─► DataDir ─► RedbStore (locks the file)
//!          ─► identity (created once) ─► listen ─► DIR/address + "relay address: …" on stdout
//!          ─► Relay::serve ┬ until SIGINT/SIGTERM
//!                          ├ stats writer: DIR/stats.json every STATS_FILE_INTERVAL
//!                          └ metrics endpoint (optional, loopback)
//!  address: DIR/address ─► stdout          stats: DIR/stats.json (or the store) ─► stdout
//! ```
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
