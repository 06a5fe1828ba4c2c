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

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::time::Duration;

use passage_transport::ServerOptions;
use passage_wire::{DnsName, Host, QueuePassword, RelayAddress, RelayPin};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::limits::Limits;
use crate::session::ServiceConfig;

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

/// Longest retention accepted (10 years): beyond it a seized relay would hold
/// practically everything ever sent to an offline phone.
pub const MAX_RETENTION_DAYS: u64 = 3650;

/// Longest idle timeout accepted (1 day): each idle connection holds memory and a
/// file descriptor for this long.
pub const MAX_IDLE_TIMEOUT_SECS: u64 = 86_400;

/// Longest handshake timeout accepted (5 minutes): a half-open connection holds a
/// handshake slot for this long.
pub const MAX_HANDSHAKE_TIMEOUT_SECS: u64 = 300;

/// Most connections accepted by `max_connections`: each needs a file descriptor and
/// some tens of KiB, and the system limit on descriptors is rarely above this.
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;

/// Longest configuration file read (1 MiB); the example with every option is 5 KiB.
pub const MAX_CONFIG_FILE_LEN: u64 = 1 << 20;

/// How much is logged, from least to most. Even `trace` logs no peer address, queue id
/// or key: the relay's own code logs counts and errors only.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Failures only.
    Error,
    /// Failures and what an operator should look at.
    Warn,
    /// Start, stop and counts (the default).
    #[default]
    Info,
    /// More detail, for finding a problem.
    Debug,
    /// Everything, for developers.
    Trace,
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        })
    }
}

/// The configuration file as written: every field optional, unknown fields refused.
/// See `relay/relay.example.toml` for each field's meaning and default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `IP:PORT` to listen on (TCP and UDP).
    pub listen: Option<String>,
    /// `HOST` or `HOST:PORT` that clients connect to.
    pub public_address: Option<String>,
    /// Where the key, the store and the status files live.
    pub data_dir: Option<PathBuf>,
    /// The queue-creation password, inline.
    pub password: Option<Secret>,
    /// A file holding the queue-creation password (one trailing newline is ignored).
    pub password_file: Option<PathBuf>,
    /// `IP:PORT` (loopback) for the Prometheus endpoint.
    pub metrics_listen: Option<String>,
    /// How much to log.
    pub log_level: Option<LogLevel>,
    /// Days an undelivered message is kept.
    pub retention_days: Option<u64>,
    /// Seconds an undelivered message is kept, for a retention shorter than a day (tests,
    /// drills); give this or `retention_days`, not both.
    pub retention_secs: Option<u64>,
    /// Messages a queue holds at most.
    pub queue_quota: Option<usize>,
    /// Open connections at most.
    pub max_connections: Option<usize>,
    /// Sustained commands per second per connection.
    pub commands_per_second: Option<u32>,
    /// Commands per connection in a burst above the rate.
    pub command_burst: Option<u32>,
    /// Rate-limited commands in a row before the connection is closed.
    pub max_rate_violations: Option<u32>,
    /// Queues one connection may create.
    pub max_queues_per_connection: Option<u32>,
    /// Queues one connection may subscribe to.
    pub max_subscriptions_per_connection: Option<usize>,
    /// Reply blocks waiting before the relay stops reading a connection.
    pub max_backlog_blocks: Option<usize>,
    /// Seconds without a frame before a connection is closed.
    pub idle_timeout_secs: Option<u64>,
    /// Seconds for the TLS/QUIC handshake and the hello exchange.
    pub handshake_timeout_secs: Option<u64>,
}

impl FileConfig {
    /// Reads and parses a configuration file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text =
            read_small(path, MAX_CONFIG_FILE_LEN).map_err(|source| ConfigError::ReadFile {
                path: path.to_path_buf(),
                source,
            })?;
        Self::parse(path, &text)
    }

    /// Parses the text of a configuration file; `path` is for the error message only.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        // The parser's own rendering quotes the line, which may hold the password:
        // report the line number and the message only.
        toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |span| {
                1 + text.as_bytes()[..span.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
            });
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                message: e.message().trim_end().replace('\n', " "),
            }
        })
    }
}

/// A string from the configuration that must not be printed (the queue password).
/// Zeroized on drop; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

impl Secret {
    /// Wraps a secret string.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// What the command line sets; each `Some` replaces the file's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen IP:PORT`.
    pub listen: Option<String>,
    /// `--public-address HOST[:PORT]`.
    pub public_address: Option<String>,
    /// `--data DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--log-level LEVEL`.
    pub log_level: Option<LogLevel>,
}

/// The address clients are told to connect to, when it is not the listen address (a
/// relay listening on `0.0.0.0`, behind NAT or a port forward).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicAddress {
    /// A DNS name or an IP address.
    pub host: Host,
    /// The port clients connect to; `None` means the port the relay listens on.
    pub port: Option<NonZeroU16>,
}

impl PublicAddress {
    /// Parses `HOST`, `HOST:PORT`, `[IPv6]` or `[IPv6]:PORT`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::PublicAddress {
            value: text.to_owned(),
        };
        let text = text.trim();
        let (host_text, port_text) = if let Some(rest) = text.strip_prefix('[') {
            let (inner, after) = rest.split_once(']').ok_or_else(bad)?;
            let ip: Ipv6Addr = inner.parse().map_err(|_| bad())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            return Self::checked(Host::Ipv6(ip), port).ok_or_else(bad);
        } else if let Ok(ip) = text.parse::<Ipv6Addr>() {
            return Self::checked(Host::Ipv6(ip), None).ok_or_else(bad);
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        let host = match host_text.parse::<Ipv4Addr>() {
            Ok(ip) => Host::Ipv4(ip),
            Err(_) => Host::Dns(DnsName::new(host_text).map_err(|_| bad())?),
        };
        Self::checked(host, port_text).ok_or_else(bad)
    }

    fn checked(host: Host, port: Option<&str>) -> Option<Self> {
        let unusable = match &host {
            Host::Ipv4(ip) => ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast(),
            Host::Ipv6(ip) => ip.is_unspecified() || ip.is_multicast(),
            _ => false,
        };
        if unusable {
            return None;
        }
        let port = match port {
            None => None,
            // Digits only: `u16::from_str` would also take a leading `+`.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse::<NonZeroU16>().ok()?)
            }
            Some(_) => return None,
        };
        Some(Self { host, port })
    }
}

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
    /// create queues); sending to an existing queue never does.
    pub password: Option<QueuePassword>,
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
    ///   `max_queues_per_connection`).
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
            metrics_listen: None,
            log_level: LogLevel::Info,
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// Reads `path` (if given), applies `flags` over it and checks the result.
    pub fn load(path: Option<&Path>, flags: Overrides) -> Result<Self, ConfigError> {
        let file = match path {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(file, flags)
    }

    /// The defaults, with the file's values over them and the flags over those; checks
    /// every value. Reads `password_file` if set.
    pub fn resolve(file: FileConfig, flags: Overrides) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        if let Some(listen) = flags.listen.as_deref().or(file.listen.as_deref()) {
            config.listen = parse_socket_addr("listen", listen)?;
        }
        if let Some(public) = flags
            .public_address
            .as_deref()
            .or(file.public_address.as_deref())
        {
            config.public_address = Some(PublicAddress::parse(public)?);
        }
        if let Some(dir) = flags.data_dir.or(file.data_dir) {
            if dir.as_os_str().is_empty() {
                return Err(ConfigError::EmptyDataDir);
            }
            config.data_dir = dir;
        }
        config.password = match (file.password, file.password_file) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoPasswords),
            (Some(inline), None) => Some(password_from(inline.0.as_bytes(), None)?),
            (None, Some(path)) => {
                let text = read_small(&path, 4096)
                    .map(Zeroizing::new)
                    .map_err(|source| ConfigError::ReadFile {
                        path: path.clone(),
                        source,
                    })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                Some(password_from(text.as_bytes(), Some(path))?)
            }
            (None, None) => None,
        };
        if let Some(metrics) = file.metrics_listen.as_deref() {
            let addr = parse_socket_addr("metrics_listen", metrics)?;
            if !addr.ip().is_loopback() {
                return Err(ConfigError::MetricsNotLoopback { addr });
            }
            config.metrics_listen = Some(addr);
        }
        if let Some(level) = flags.log_level.or(file.log_level) {
            config.log_level = level;
        }

        let limits = &mut config.limits;
        if file.retention_days.is_some() && file.retention_secs.is_some() {
            return Err(ConfigError::BothRetentions);
        }
        if let Some(days) = file.retention_days {
            check_range("retention_days", days, 1, MAX_RETENTION_DAYS)?;
            limits.retention_secs = days * 86_400;
        }
        if let Some(secs) = file.retention_secs {
            check_range("retention_secs", secs, 1, MAX_RETENTION_DAYS * 86_400)?;
            limits.retention_secs = secs;
        }
        set_count(
            &mut limits.queue_quota,
            "queue_quota",
            file.queue_quota,
            usize::from(u16::MAX),
        )?;
        set_count(
            &mut limits.max_connections,
            "max_connections",
            file.max_connections,
            MAX_MAX_CONNECTIONS,
        )?;
        set_count(
            &mut limits.commands_per_second,
            "commands_per_second",
            file.commands_per_second,
            1_000_000,
        )?;
        set_count(
            &mut limits.command_burst,
            "command_burst",
            file.command_burst,
            1_000_000,
        )?;
        set_count(
            &mut limits.max_rate_violations,
            "max_rate_violations",
            file.max_rate_violations,
            u32::MAX,
        )?;
        set_count(
            &mut limits.max_queues_per_connection,
            "max_queues_per_connection",
            file.max_queues_per_connection,
            1_000_000,
        )?;
        set_count(
            &mut limits.max_subscriptions_per_connection,
            "max_subscriptions_per_connection",
            file.max_subscriptions_per_connection,
            1_000_000,
        )?;
        set_count(
            &mut limits.max_backlog_blocks,
            "max_backlog_blocks",
            file.max_backlog_blocks,
            65_536,
        )?;
        if let Some(secs) = file.idle_timeout_secs {
            check_range("idle_timeout_secs", secs, 1, MAX_IDLE_TIMEOUT_SECS)?;
            limits.idle_timeout = Duration::from_secs(secs);
        }
        if let Some(secs) = file.handshake_timeout_secs {
            check_range(
                "handshake_timeout_secs",
                secs,
                1,
                MAX_HANDSHAKE_TIMEOUT_SECS,
            )?;
            limits.handshake_timeout = Duration::from_secs(secs);
        }

        if config.listen.ip().is_unspecified() && config.public_address.is_none() {
            return Err(ConfigError::PublicAddressRequired {
                listen: config.listen,
            });
        }
        Ok(config)
    }

    /// What the relay service needs: its limits and password.
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            limits: self.limits.clone(),
            password: self.password.clone(),
        }
    }

    /// The transport listener's settings: the handshake timeout from the limits, the
    /// rest at the transport's defaults.
    pub fn server_options(&self) -> ServerOptions {
        let mut options = ServerOptions::default();
        options.handshake_timeout = self.limits.handshake_timeout;
        options
    }

    /// The address clients use: `public_address` if set (its port, or else the bound
    /// one), else the address the listener is bound to (`bound`, whose port is the real
    /// one when `listen` asked for port 0).
    pub fn relay_address(
        &self,
        pin: RelayPin,
        bound: SocketAddr,
    ) -> Result<RelayAddress, ConfigError> {
        let bound_port = NonZeroU16::new(bound.port()).ok_or(ConfigError::NoPort)?;
        let (host, port) = match &self.public_address {
            Some(public) => (public.host.clone(), public.port.unwrap_or(bound_port)),
            None => {
                let host = match bound.ip() {
                    IpAddr::V4(ip) => Host::Ipv4(ip),
                    IpAddr::V6(ip) => Host::Ipv6(ip),
                };
                (host, bound_port)
            }
        };
        Ok(RelayAddress::new(pin, host, port))
    }
}

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

fn parse_socket_addr(field: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::SocketAddr {
        field,
        value: value.to_owned(),
    })
}

fn password_from(bytes: &[u8], file: Option<PathBuf>) -> Result<QueuePassword, ConfigError> {
    if bytes.is_empty() {
        return Err(ConfigError::EmptyPassword { file });
    }
    QueuePassword::new(bytes).map_err(|e| ConfigError::LongPassword {
        file,
        len: e.len,
        max: passage_wire::command::MAX_PASSWORD_LEN,
    })
}

fn check_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

/// Sets a count limit (at least 1, at most `max`) if the file gives one.
fn set_count<T>(
    slot: &mut T,
    field: &'static str,
    value: Option<T>,
    max: T,
) -> Result<(), ConfigError>
where
    T: Copy + TryInto<u64>,
{
    let wide = |v: T| v.try_into().unwrap_or(u64::MAX);
    if let Some(value) = value {
        check_range(field, wide(value), 1, wide(max))?;
        *slot = value;
    }
    Ok(())
}

/// Reads a UTF-8 file of at most `max` bytes.
fn read_small(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(max + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::other(format!("longer than {max} bytes")));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(Path::new("relay.toml"), text)
    }

    fn resolve(text: &str) -> Result<Config, ConfigError> {
        Config::resolve(parse(text)?, Overrides::default())
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = resolve("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:5223");
        assert_eq!(config.data_dir, PathBuf::from("./passage-relay-data"));
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.log_level, LogLevel::Info);
        assert!(config.password.is_none() && config.metrics_listen.is_none());
    }

    #[test]
    fn file_sets_every_limit() {
        let config = resolve(
            "retention_days = 7\nqueue_quota = 10\nmax_connections = 50\ncommands_per_second = 5\n\
             command_burst = 6\nmax_rate_violations = 7\nmax_queues_per_connection = 8\n\
             max_subscriptions_per_connection = 9\nmax_backlog_blocks = 11\nidle_timeout_secs = 12\n\
             handshake_timeout_secs = 13\nlog_level = \"debug\"\nlisten = \"127.0.0.1:6000\"\n\
             data_dir = \"/var/lib/relay\"\n",
        )
        .unwrap();
        let l = &config.limits;
        assert_eq!(l.retention_secs, 7 * 86_400);
        assert_eq!(
            (
                l.queue_quota,
                l.max_connections,
                l.commands_per_second,
                l.command_burst
            ),
            (10, 50, 5, 6)
        );
        assert_eq!(
            (
                l.max_rate_violations,
                l.max_queues_per_connection,
                l.max_subscriptions_per_connection
            ),
            (7, 8, 9)
        );
        assert_eq!(l.max_backlog_blocks, 11);
        assert_eq!(l.idle_timeout, Duration::from_secs(12));
        assert_eq!(l.handshake_timeout, Duration::from_secs(13));
        assert_eq!(
            config.server_options().handshake_timeout,
            Duration::from_secs(13)
        );
        assert_eq!(config.log_level, LogLevel::Debug);
        assert_eq!(config.listen.port(), 6000);
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/relay"));
    }

    #[test]
    fn flags_override_the_file() {
        let file = parse(
            "listen = \"127.0.0.1:6000\"\ndata_dir = \"a\"\nlog_level = \"warn\"\npublic_address = \"a.example\"",
        )
        .unwrap();
        let flags = Overrides {
            listen: Some("[::1]:7000".into()),
            public_address: Some("b.example:443".into()),
            data_dir: Some("b".into()),
            log_level: Some(LogLevel::Trace),
        };
        let config = Config::resolve(file.clone(), flags).unwrap();
        assert_eq!(config.listen, "[::1]:7000".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("b"));
        assert_eq!(config.log_level, LogLevel::Trace);
        let public = config.public_address.unwrap();
        assert_eq!(public.port, NonZeroU16::new(443));
        // Without flags, the file's values stand.
        let config = Config::resolve(file, Overrides::default()).unwrap();
        assert_eq!(config.listen.port(), 6000);
        assert_eq!(config.data_dir, PathBuf::from("a"));
        assert_eq!(config.log_level, LogLevel::Warn);
    }

    #[test]
    fn unknown_or_mistyped_fields_are_errors() {
        let err = parse("retention_dayz = 3").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("retention_dayz"), "{err}");
        assert!(parse("queue_quota = \"many\"").is_err());
        assert!(parse("queue_quota = -1").is_err());
        assert!(parse("log_level = \"loud\"").is_err());
        assert!(parse("[limits]\nqueue_quota = 3").is_err());
    }

    #[test]
    fn limits_are_range_checked() {
        for bad in [
            "retention_days = 0",
            "retention_secs = 0",
            "retention_days = 3651",
            "queue_quota = 0",
            "max_connections = 0",
            "max_connections = 1000001",
            "idle_timeout_secs = 0",
            "idle_timeout_secs = 86401",
            "handshake_timeout_secs = 301",
            "commands_per_second = 0",
        ] {
            let err = resolve(bad).unwrap_err();
            assert!(
                matches!(err, ConfigError::OutOfRange { .. }),
                "{bad}: {err}"
            );
        }
        assert!(matches!(
            resolve("retention_days = 1\nretention_secs = 5"),
            Err(ConfigError::BothRetentions)
        ));
        assert_eq!(
            resolve("retention_secs = 2").unwrap().limits.retention_secs,
            2
        );
        // At the limits: accepted.
        for good in [
            "retention_days = 3650",
            "max_connections = 1000000",
            "idle_timeout_secs = 86400",
            "handshake_timeout_secs = 300",
            "queue_quota = 1",
        ] {
            resolve(good).unwrap();
        }
    }

    #[test]
    fn unspecified_listen_needs_a_public_address() {
        for listen in ["0.0.0.0:5223", "[::]:5223"] {
            let err = resolve(&format!("listen = \"{listen}\"")).unwrap_err();
            assert!(
                matches!(err, ConfigError::PublicAddressRequired { .. }),
                "{err}"
            );
            assert!(err.to_string().contains("--public-address"), "{err}");
        }
        let config =
            resolve("listen = \"0.0.0.0:5223\"\npublic_address = \"relay.example.org\"").unwrap();
        let pin = RelayPin::from_bytes([7; 32]);
        let address = config
            .relay_address(pin, "0.0.0.0:5223".parse().unwrap())
            .unwrap();
        assert_eq!(address.port(), 5223);
        assert!(address.to_string().ends_with("@relay.example.org:5223"));
        // The flag satisfies it too.
        let flags = Overrides {
            listen: Some("[::]:0".into()),
            public_address: Some("[2001:db8::1]:443".into()),
            ..Overrides::default()
        };
        let config = Config::resolve(FileConfig::default(), flags).unwrap();
        let address = config
            .relay_address(pin, "[::]:41000".parse().unwrap())
            .unwrap();
        assert!(address.to_string().ends_with("@[2001:db8::1]:443"));
    }

    #[test]
    fn relay_address_uses_the_bound_port() {
        let config = resolve("listen = \"127.0.0.1:0\"").unwrap();
        let pin = RelayPin::from_bytes([1; 32]);
        let address = config
            .relay_address(pin, "127.0.0.1:40123".parse().unwrap())
            .unwrap();
        assert_eq!(address.port(), 40123);
        let text = address.to_string();
        assert!(
            text.starts_with("passage://") && text.ends_with("@127.0.0.1:40123"),
            "{text}"
        );
        assert_eq!(text.parse::<RelayAddress>().unwrap(), address);
    }

    #[test]
    fn public_address_forms() {
        let ok = |s: &str| PublicAddress::parse(s).unwrap();
        assert_eq!(
            ok("Relay.Example.org").host,
            Host::Dns(DnsName::new("relay.example.org").unwrap())
        );
        assert_eq!(ok("relay.example.org:443").port, NonZeroU16::new(443));
        assert_eq!(
            ok("203.0.113.7").host,
            Host::Ipv4(Ipv4Addr::new(203, 0, 113, 7))
        );
        assert_eq!(ok("203.0.113.7:1").port, NonZeroU16::new(1));
        assert_eq!(ok("2001:db8::1").port, None);
        assert_eq!(ok("[2001:db8::1]:65535").port, NonZeroU16::new(65535));
        for bad in [
            "",
            "0.0.0.0",
            "[::]",
            "relay.example.org:0",
            "relay.example.org:65536",
            "a:+1",
            "a:",
            "bad_host",
            "[2001:db8::1",
            "[2001:db8::1]x",
            "https://relay.example.org",
            "a b",
        ] {
            assert!(PublicAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_listen_is_refused() {
        for bad in ["localhost:5223", "127.0.0.1", "5223", "127.0.0.1:99999"] {
            let err = resolve(&format!("listen = \"{bad}\"")).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::SocketAddr {
                        field: "listen",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn metrics_listen_must_be_loopback() {
        let config = resolve("metrics_listen = \"127.0.0.1:9223\"").unwrap();
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9223".parse().unwrap())
        );
        resolve("metrics_listen = \"[::1]:9223\"").unwrap();
        for bad in ["0.0.0.0:9223", "192.168.1.2:9223", "[::]:9223"] {
            let err = resolve(&format!("metrics_listen = \"{bad}\"")).unwrap_err();
            assert!(
                matches!(err, ConfigError::MetricsNotLoopback { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn passwords() {
        let config = resolve("password = \"open sesame\"").unwrap();
        assert_eq!(
            config.password,
            Some(QueuePassword::new(b"open sesame").unwrap())
        );
        assert!(!format!("{config:?}").contains("sesame"));
        assert!(!format!("{:?}", parse("password = \"open sesame\"").unwrap()).contains("sesame"));

        let err = resolve("password = \"\"").unwrap_err();
        assert!(
            matches!(err, ConfigError::EmptyPassword { file: None }),
            "{err}"
        );
        let long = "x".repeat(65);
        assert!(matches!(
            resolve(&format!("password = \"{long}\"")).unwrap_err(),
            ConfigError::LongPassword { len: 65, .. }
        ));
        resolve(&format!("password = \"{}\"", "x".repeat(64))).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "from a file\n").unwrap();
        let text = format!("password_file = {:?}", file.to_str().unwrap());
        let config = resolve(&text).unwrap();
        assert_eq!(
            config.password,
            Some(QueuePassword::new(b"from a file").unwrap())
        );

        for empty in ["", "\n", "\r\n"] {
            std::fs::write(&file, empty).unwrap();
            let err = resolve(&text).unwrap_err();
            assert!(
                matches!(err, ConfigError::EmptyPassword { file: Some(_) }),
                "{err}"
            );
        }
        let both = format!("{text}\npassword = \"x\"");
        assert!(matches!(
            resolve(&both).unwrap_err(),
            ConfigError::TwoPasswords
        ));
        let missing = format!(
            "password_file = {:?}",
            dir.path().join("nope").to_str().unwrap()
        );
        assert!(matches!(
            resolve(&missing).unwrap_err(),
            ConfigError::ReadFile { .. }
        ));
    }

    #[test]
    fn empty_data_dir_is_refused() {
        assert!(matches!(
            resolve("data_dir = \"\"").unwrap_err(),
            ConfigError::EmptyDataDir
        ));
    }

    /// The example file documents every option with its default: as shipped (all
    /// commented out) and with every default uncommented, it gives `Config::default()`.
    #[test]
    fn example_file_matches_the_defaults() {
        let example = include_str!("../relay.example.toml");
        assert_eq!(resolve(example).unwrap(), Config::default());

        let mut uncommented = String::new();
        let mut keys = Vec::new();
        for line in example.lines() {
            // Options are written `# key = value`; prose has no ` = ` right after a word.
            if let Some(option) = line.strip_prefix("# ")
                && let Some((key, _)) = option.split_once(" = ")
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                keys.push(key.to_owned());
                // Options without a default are shown as examples; leave them off.
                if ![
                    "public_address",
                    "password",
                    "password_file",
                    "metrics_listen",
                    "retention_secs",
                ]
                .contains(&key)
                {
                    uncommented.push_str(option);
                    uncommented.push('\n');
                }
            }
        }
        assert_eq!(
            resolve(&uncommented).unwrap(),
            Config::default(),
            "{uncommented}"
        );
        // Every field of the file is documented in the example.
        let all = "listen public_address data_dir password password_file metrics_listen log_level \
                   retention_days retention_secs queue_quota max_connections commands_per_second command_burst \
                   max_rate_violations max_queues_per_connection max_subscriptions_per_connection \
                   max_backlog_blocks idle_timeout_secs handshake_timeout_secs";
        for field in all.split_whitespace() {
            assert!(
                keys.iter().any(|k| k == field),
                "{field} missing from relay.example.toml"
            );
        }
    }
}
