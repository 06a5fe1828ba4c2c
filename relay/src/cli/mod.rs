//! The `passage-relay` command line: the subcommands and their flags, and `main`'s
//! dispatch to them. Each subcommand has its module: `serve` runs the relay, `address`
//! and `stats` read what it left in its data directory; `error` turns failures into
//! the one line an operator reads.

mod address;
mod error;
mod rotate_key;
mod serve;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use passage_relay::config::{Config, FileConfig, LogLevel};

use error::plain;

#[derive(Debug, Parser)]
#[command(
    name = "passage-relay",
    version,
    about = "The Passage relay: stores and forwards end-to-end encrypted messages in anonymous queues.",
    long_about = "The Passage relay: stores and forwards end-to-end encrypted messages in anonymous queues.

It keeps no accounts, phone numbers or contact lists, sees only ciphertext, and logs no IP \
addresses. Undelivered messages are deleted after a retention limit (21 days by default).

Start it with:

    passage-relay serve

On first start it creates its key in the data directory (./passage-relay-data unless --data \
says otherwise) and prints one line:

    relay address: passage://<pin>@127.0.0.1:5223

Give that address to the people who will use the relay: the <pin> lets their apps check that \
they reach this relay and no impostor. The key is reused on every start, so the address stays \
the same; back up the data directory, as losing identity.der changes the address.

By default the relay listens on 127.0.0.1 (this machine only). To serve the internet, set a \
queue password (password_file in the config file) so that only the people you give it to can \
create queues:

    passage-relay serve --config relay.toml --listen 0.0.0.0:5223 --public-address relay.example.org

(or pass --open-relay to let anyone create queues, on purpose).

See `passage-relay serve --help` for the configuration file."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay until SIGINT (Ctrl-C) or SIGTERM.
    #[command(long_about = "Run the relay until SIGINT (Ctrl-C) or SIGTERM.

Creates the data directory (mode 0700) and the relay's key on first start, opens the store, \
listens on UDP (QUIC) and TCP (TLS) on the same port, and prints one line on standard output:

    relay address: passage://<pin>@host:port

The same line is saved in DATA_DIR/address (see `passage-relay address`). Counts are written \
to DATA_DIR/stats.json every 5 seconds (see `passage-relay stats`). Logs go to standard error \
and hold counts and errors only: no IP address, queue id or key.

Every setting can be given in a TOML file (--config); relay/relay.example.toml lists them all \
with their defaults. Flags override the file. On SIGINT or SIGTERM the relay stops accepting, \
lets connections finish the writes they started (5 seconds at most) and exits with status 0.")]
    Serve(ServeArgs),
    /// Print the relay's address (also while `serve` runs).
    #[command(
        long_about = "Print the relay's address, `passage://<pin>@host:port`, as the last \
`passage-relay serve` with this data directory printed it. Works while the relay runs."
    )]
    Address(DirArgs),
    /// Print the relay's counts: connections, queues, messages, errors (also while `serve` runs).
    #[command(
        long_about = "Print the relay's counts: connections, queues, messages, errors, \
store size. Counts only: never a queue id, key or address.

While `serve` runs, reads DATA_DIR/stats.json, which the relay rewrites every 5 seconds. When \
no relay runs, opens the store briefly and prints what it holds (activity counters exist only \
while a relay runs). The output says which."
    )]
    Stats(StatsArgs),
    /// Give the relay a new key (a new address); the old one keeps working for an overlap.
    #[command(
        long_about = "Give the relay a new key, and so a new address (the pin changes; host and \
port stay). For the overlap (--overlap-days, default 30), the relay presents the new key \
endorsed by the old one: clients that connect with the old address verify the endorsement and \
are told the new address; after it the old key is destroyed and the old address stops working.

Run it, then restart the relay (e.g. `systemctl restart passage-relay`). Prints the new address \
and saves it in DATA_DIR/address. Give the new address to new users at once. After a suspected \
theft of the key, rotate and hand the new address out by hand too: whoever holds the old key \
can impersonate the relay to clients that still use the old address."
    )]
    RotateKey(RotateKeyArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Read settings from this TOML file (see relay/relay.example.toml). Flags override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Keep the key, store and status files here [default: ./passage-relay-data]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Listen on this IP address and port, UDP and TCP; port 0 picks a free one
    /// [default: 127.0.0.1:5223]
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<String>,
    /// The host (and port) clients connect to, if not the listen address; required when
    /// listening on 0.0.0.0 or [::]
    #[arg(long, value_name = "HOST[:PORT]")]
    public_address: Option<String>,
    /// How much to log to standard error [default: info]
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<LogLevel>,
    /// RISKY: let anyone who reaches the relay create queues without a password, when
    /// listening on a non-loopback address (which otherwise needs a password)
    #[arg(long)]
    open_relay: bool,
}

#[derive(Debug, Args)]
struct DirArgs {
    /// Take the data directory from this configuration file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// The relay's data directory [default: ./passage-relay-data]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RotateKeyArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Days the old address keeps working (1 to 365)
    #[arg(long, value_name = "DAYS", default_value_t = passage_relay::key_rotation::DEFAULT_OVERLAP_DAYS)]
    overlap_days: u64,
}

#[derive(Debug, Args)]
struct StatsArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Print one JSON object on one line instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run_serve(args),
        Command::Address(args) => address::run_address(&args),
        Command::Stats(args) => stats::run_stats(&args),
        Command::RotateKey(args) => rotate_key::run_rotate_key(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what went wrong and what to do (each message says both).
            eprintln!("passage-relay: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn data_dir_of(args: &DirArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.data {
        return Ok(dir.clone());
    }
    let from_file = match &args.config {
        Some(path) => FileConfig::read(path).map_err(plain)?.data_dir,
        None => None,
    };
    Ok(from_file.unwrap_or_else(|| Config::default().data_dir))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
