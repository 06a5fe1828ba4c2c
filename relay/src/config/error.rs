//! Why a configuration is refused: [`ConfigError`], whose every message says what is
//! wrong and what to do.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the configuration was refused. Each message says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Both `retention_days` and `retention_secs` are set.
    #[error(
        "both retention_days and retention_secs are set — keep only one of them in the config file"
    )]
    BothRetentions,
    /// The configuration (or password) file could not be read.
    #[error("cannot read {}: {source} — check the path and its permissions", .path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML or has an unknown or mistyped field.
    #[error(
        "{} line {line}: {message} — see relay/relay.example.toml for every option and its type",
        .path.display()
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line (1-based; 0 if unknown).
        line: usize,
        /// The parser's message (with line and column).
        message: String,
    },
    /// An address field is not `IP:PORT`.
    #[error(
        "{field} = {value:?} is not an IP address with a port — write e.g. \"127.0.0.1:5223\" or \"[::]:5223\""
    )]
    SocketAddr {
        /// Which field.
        field: &'static str,
        /// What was given.
        value: String,
    },
    /// `public_address` is not a usable host (and port).
    #[error(
        "public_address = {value:?} is not a host clients can connect to — write a DNS name or IP address, optionally with :PORT, e.g. \"relay.example.org\" or \"203.0.113.7:443\""
    )]
    PublicAddress {
        /// What was given.
        value: String,
    },
    /// Listening on every interface with no public address.
    #[error(
        "listening on {listen} needs a public address: clients cannot connect to {} — set public_address in the config file or pass --public-address HOST (the name or IP clients use)",
        .listen.ip()
    )]
    PublicAddressRequired {
        /// The listen address.
        listen: SocketAddr,
    },
    /// Listening beyond this machine with neither a queue password nor `open_relay`.
    #[error(
        "listening on {listen} lets anyone who reaches this relay create queues and fill its disk — set password_file (or password) in the config file so that only people you give it to can create queues, or, to run an open relay on purpose, set open_relay = true in the config file or pass --open-relay"
    )]
    PasswordRequired {
        /// The listen address.
        listen: SocketAddr,
    },
    /// `metrics_listen` would expose the metrics beyond this machine.
    #[error(
        "metrics_listen = {addr} is not a loopback address — the metrics endpoint has no authentication; use 127.0.0.1:PORT or [::1]:PORT and put an authenticating proxy in front if needed"
    )]
    MetricsNotLoopback {
        /// The address given.
        addr: SocketAddr,
    },
    /// Both `password` and `password_file` are set.
    #[error(
        "both password and password_file are set — keep one (password_file keeps the secret out of the config file)"
    )]
    TwoPasswords,
    /// The password (or the password file) is empty.
    #[error("the queue password{} is empty — write a password, or remove the option to let anyone create queues", .file.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    EmptyPassword {
        /// The password file, if the password came from one.
        file: Option<PathBuf>,
    },
    /// The password is longer than the protocol allows.
    #[error("the queue password{} is {len} bytes, longer than the {max} bytes the protocol allows — choose a shorter one", .file.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    LongPassword {
        /// The password file, if the password came from one.
        file: Option<PathBuf>,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The data directory is an empty path.
    #[error("data_dir is empty — give a directory, e.g. ./passage-relay-data")]
    EmptyDataDir,
    /// A limit is out of its accepted range.
    #[error("{field} = {value} is out of range — use a value from {min} to {max}")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// What was given.
        value: u64,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// The listener reported port 0 (cannot happen with a bound socket).
    #[error("the listener has no port — report this as a bug")]
    NoPort,
}
