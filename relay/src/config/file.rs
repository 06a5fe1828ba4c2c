//! The configuration file's format: [`FileConfig`] as written in `relay.toml`, the
//! log levels, and the [`Secret`] that keeps the queue password out of any output.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::ConfigError;

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
    /// Queues the relay holds at most.
    pub max_queues: Option<u64>,
    /// MiB of queues and messages the relay holds at most.
    pub max_stored_mib: Option<u64>,
    /// MiB the data directory's file system must keep free (0: no watermark).
    pub min_free_disk_mib: Option<u64>,
    /// Queue creations one source address may make at once.
    pub queues_per_source_burst: Option<u32>,
    /// Queue creations given back to a source address per hour.
    pub queues_per_source_per_hour: Option<u32>,
    /// Handshakes one source address may start at once.
    pub handshakes_per_source_burst: Option<u32>,
    /// Handshakes given back to a source address per minute.
    pub handshakes_per_source_per_minute: Option<u32>,
    /// Whether the per-source budgets apply to loopback peers.
    pub limit_loopback_sources: Option<bool>,
    /// **Risky.** Lets anyone who reaches a relay on a non-loopback address create
    /// queues without a password.
    pub open_relay: Option<bool>,
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
pub struct Secret(pub(super) Zeroizing<String>);

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

/// Reads a UTF-8 file of at most `max` bytes.
pub(super) fn read_small(path: &Path, max: u64) -> std::io::Result<String> {
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
    use crate::config::Config;
    use crate::config::test_input::{parse, resolve};

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

    /// The example file documents every option with its default: as shipped (all
    /// commented out) and with every default uncommented, it gives `Config::default()`.
    #[test]
    fn example_file_matches_the_defaults() {
        let example = include_str!("../../relay.example.toml");
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
                   max_backlog_blocks idle_timeout_secs handshake_timeout_secs max_queues \
                   max_stored_mib min_free_disk_mib queues_per_source_burst queues_per_source_per_hour \
                   handshakes_per_source_burst handshakes_per_source_per_minute \
                   limit_loopback_sources open_relay";
        for field in all.split_whitespace() {
            assert!(
                keys.iter().any(|k| k == field),
                "{field} missing from relay.example.toml"
            );
        }
    }
}
