//! The relay's configuration: a TOML file, command-line flags over it, and the
//! defaults of [`Config::default`] under both.
//!
//! ```text
//!  relay.toml ──parse──► FileConfig ─┐
//!                                    ├─ Config::resolve ─► Config (validated) ─► ServiceConfig,
//!  --listen, --data, … ─► Overrides ─┘   (flags win)                             ServerOptions,
//!                                                                                 RelayAddress
//! ```
//!
//! Every field of the file is optional; an unknown field is an error (a typo must not
//! silently leave a limit at its default). Durations are integers whose unit is in the
//! name (`retention_days`, `idle_timeout_secs`). `relay/relay.example.toml` lists every
//! option with its default; a test keeps it in step with [`Config::default`].
//!
//! Where each part lives: this file holds [`Config`], its defaults and what it hands to
//! the service and the listener; `file` the file format ([`FileConfig`], [`LogLevel`],
//! [`Secret`]); `resolve` the flags ([`Overrides`]), how file and flags become a
//! [`Config`] and the accepted range of each value; `address` the address clients are
//! told ([`PublicAddress`], [`Config::relay_address`]); `error` why a configuration is
//! refused ([`ConfigError`]).
//!
//! # Quick start
//!
//! ```
//! use passage_relay::config::{Config, FileConfig, Overrides};
//! let file: FileConfig = toml::from_str("queue_quota = 512\nlisten = \"127.0.0.1:7000\"")?;
//! let flags = Overrides { listen: Some("127.0.0.1:7001".into()), ..Overrides::default() };
//! let config = Config::resolve(file, flags)?;
//! assert_eq!(config.limits.queue_quota, 512);
//! assert_eq!(config.listen.port(), 7001);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod address;
mod error;
mod file;
mod resolve;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use passage_transport::{ServerOptions, SourceBudget};
use passage_wire::QueuePassword;

use crate::limits::Limits;
use crate::session::ServiceConfig;

pub use address::PublicAddress;
pub use error::ConfigError;
pub use file::{FileConfig, LogLevel, MAX_CONFIG_FILE_LEN, Secret};
pub use resolve::{
    MAX_HANDSHAKE_TIMEOUT_SECS, MAX_IDLE_TIMEOUT_SECS, MAX_MAX_CONNECTIONS, MAX_MIB,
    MAX_RETENTION_DAYS, Overrides,
};

/// The port a relay listens on unless told otherwise. Unprivileged (above 1024, so the
/// relay needs no root), and the port of XMPP over TLS, which firewalls commonly let
/// through. Behind heavy censorship, 443 blends in better (it needs
/// `CAP_NET_BIND_SERVICE` or a port forward).
pub const DEFAULT_PORT: u16 = 5223;

/// Where the relay listens unless told otherwise: this machine only, so that a first
/// `passage-relay serve` exposes nothing. To serve the internet, listen on `0.0.0.0`
/// or `[::]` and set `public_address`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);

/// The data directory unless told otherwise, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./passage-relay-data";

/// The relay's configuration, resolved and checked. [`Config::default`] documents every
/// value; the limits are [`Limits::default`] (see each field there for unit and cost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the relay listens, TCP and UDP on the same port (QUIC, with TLS over TCP as
    /// the fallback). Port 0 picks a free port (the address line shows which).
    pub listen: SocketAddr,
    /// What the address line says clients connect to; `None` uses `listen`. Required
    /// when `listen` is `0.0.0.0` or `[::]`, which is no address a client can use.
    pub public_address: Option<PublicAddress>,
    /// The data directory: key, store, address and stats files (mode 0700).
    pub data_dir: PathBuf,
    /// If set, creating a queue requires this password (an NGO restricting who may
    /// create queues); sending to an existing queue never does. Required when `listen`
    /// is not a loopback address, unless `open_relay`.
    pub password: Option<QueuePassword>,
    /// **Risky, off by default.** Lets anyone who reaches a relay listening on a
    /// non-loopback address create queues without a password (each costs disk up to
    /// `queue_quota` × 4 KiB; the global and per-source limits still hold). Without it
    /// (or a password), such a relay refuses to start.
    pub open_relay: bool,
    /// **Risky, off by default.** Where to serve Prometheus metrics (counts only, no
    /// authentication), loopback addresses only; put a proxy with authentication in
    /// front to expose them further.
    pub metrics_listen: Option<SocketAddr>,
    /// How much to log to standard error.
    pub log_level: LogLevel,
    /// Limits for the queue service and every connection.
    pub limits: Limits,
}

impl Default for Config {
    /// - `listen`: `127.0.0.1:5223` ([`DEFAULT_LISTEN`]): reachable from this machine only.
    /// - `public_address`: none (the address line shows `listen`).
    /// - `data_dir`: `./passage-relay-data` ([`DEFAULT_DATA_DIR`]).
    /// - `password`: none: anyone who reaches the relay may create queues (each costs
    ///   disk up to `queue_quota` × 4 KiB, bounded per connection by
    ///   `max_queues_per_connection`, per source address by `queues_per_source` and in
    ///   total by `max_queues` and `max_stored_bytes`). Fine on loopback; on any other
    ///   listen address a password or `open_relay` is required.
    /// - `open_relay`: false.
    /// - `metrics_listen`: none (no HTTP endpoint; `passage-relay stats` still works).
    /// - `log_level`: `info`.
    /// - `limits`: [`Limits::default`]: 21 days retention, 256 messages per queue,
    ///   10,000 connections, 200 commands/s with a burst of 400, …
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            public_address: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            password: None,
            open_relay: false,
            metrics_listen: None,
            log_level: LogLevel::Info,
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// What the relay service needs: its limits, password and per-source queue budget
    /// (a fresh, empty one at each call).
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            limits: self.limits.clone(),
            password: self.password.clone(),
            queue_budget: Some(Arc::new(SourceBudget::new(
                self.limits.queues_per_source,
                self.limits.limit_loopback_sources,
            ))),
        }
    }

    /// The transport listener's settings: the handshake timeout and the per-source
    /// handshake budget from the limits, the rest at the transport's defaults.
    pub fn server_options(&self) -> ServerOptions {
        let mut options = ServerOptions::default();
        options.handshake_timeout = self.limits.handshake_timeout;
        options.handshakes_per_source = Some(self.limits.handshakes_per_source);
        options.limit_loopback_sources = self.limits.limit_loopback_sources;
        options
    }
}

/// The tests' way in: the text of a `relay.toml`, parsed, or resolved with no flags.
#[cfg(test)]
mod test_input {
    use std::path::Path;

    use super::{Config, ConfigError, FileConfig, Overrides};

    pub(super) fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(Path::new("relay.toml"), text)
    }

    pub(super) fn resolve(text: &str) -> Result<Config, ConfigError> {
        Config::resolve(parse(text)?, Overrides::default())
    }
}
