//! How the file and the flags become a checked [`Config`]: the flags ([`Overrides`])
//! win over the file, the file over the defaults; every value is checked against its
//! accepted range, and the password is read (inline or from `password_file`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use passage_wire::QueuePassword;
use zeroize::Zeroizing;

use super::file::read_small;
use super::{Config, ConfigError, FileConfig, LogLevel, PublicAddress};

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

/// Largest size accepted in a `_mib` option (16 TiB): past it, a typo, not a disk.
pub const MAX_MIB: u64 = 1 << 24;

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
    /// `--open-relay` (true when given; the file's `open_relay` otherwise).
    pub open_relay: bool,
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
        config.open_relay = flags.open_relay || file.open_relay.unwrap_or(false);

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

        if let Some(max) = file.max_queues {
            check_range("max_queues", max, 1, u64::from(u32::MAX))?;
            limits.max_queues = max;
        }
        if let Some(mib) = file.max_stored_mib {
            check_range("max_stored_mib", mib, 1, MAX_MIB)?;
            limits.max_stored_bytes = mib << 20;
        }
        if let Some(mib) = file.min_free_disk_mib {
            check_range("min_free_disk_mib", mib, 0, MAX_MIB)?;
            limits.min_free_disk_bytes = mib << 20;
        }
        set_count(
            &mut limits.queues_per_source.burst,
            "queues_per_source_burst",
            file.queues_per_source_burst,
            1_000_000,
        )?;
        set_count(
            &mut limits.queues_per_source.count,
            "queues_per_source_per_hour",
            file.queues_per_source_per_hour,
            1_000_000,
        )?;
        set_count(
            &mut limits.handshakes_per_source.burst,
            "handshakes_per_source_burst",
            file.handshakes_per_source_burst,
            1_000_000,
        )?;
        set_count(
            &mut limits.handshakes_per_source.count,
            "handshakes_per_source_per_minute",
            file.handshakes_per_source_per_minute,
            1_000_000,
        )?;
        if let Some(limit) = file.limit_loopback_sources {
            limits.limit_loopback_sources = limit;
        }

        if config.listen.ip().is_unspecified() && config.public_address.is_none() {
            return Err(ConfigError::PublicAddressRequired {
                listen: config.listen,
            });
        }
        // A relay others can reach must not let anyone fill its disk by default.
        if !config.listen.ip().is_loopback() && config.password.is_none() && !config.open_relay {
            return Err(ConfigError::PasswordRequired {
                listen: config.listen,
            });
        }
        Ok(config)
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::num::NonZeroU16;

    use super::*;
    use crate::config::test_input::{parse, resolve};
    use crate::limits::Limits;

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
            open_relay: false,
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
    fn global_and_source_limits_are_set_and_range_checked() {
        let config = resolve(
            "max_queues = 5\nmax_stored_mib = 3\nmin_free_disk_mib = 0\n\
             queues_per_source_burst = 2\nqueues_per_source_per_hour = 4\n\
             handshakes_per_source_burst = 6\nhandshakes_per_source_per_minute = 7\n\
             limit_loopback_sources = true\n",
        )
        .unwrap();
        let l = &config.limits;
        assert_eq!((l.max_queues, l.max_stored_bytes), (5, 3 << 20));
        assert_eq!(l.min_free_disk_bytes, 0);
        assert_eq!(
            (l.queues_per_source.burst, l.queues_per_source.count),
            (2, 4)
        );
        assert_eq!(l.queues_per_source.period, Duration::from_secs(3600));
        assert_eq!(
            (l.handshakes_per_source.burst, l.handshakes_per_source.count),
            (6, 7)
        );
        assert_eq!(l.handshakes_per_source.period, Duration::from_secs(60));
        let options = config.server_options();
        assert_eq!(options.handshakes_per_source, Some(l.handshakes_per_source));
        assert!(options.limit_loopback_sources);
        assert!(config.service_config().queue_budget.is_some());
        for bad in [
            "max_queues = 0",
            "max_stored_mib = 0",
            "max_stored_mib = 16777217",
            "min_free_disk_mib = 16777217",
            "queues_per_source_burst = 0",
            "handshakes_per_source_per_minute = 0",
        ] {
            let err = resolve(bad).unwrap_err();
            assert!(
                matches!(err, ConfigError::OutOfRange { .. }),
                "{bad}: {err}"
            );
        }
        resolve("max_stored_mib = 16777216\nmin_free_disk_mib = 16777216").unwrap();
    }

    /// A relay others can reach needs a password, or open_relay said by name.
    #[test]
    fn a_non_loopback_listen_needs_a_password_or_open_relay() {
        for listen in ["192.0.2.1:5223", "[2001:db8::1]:5223", "0.0.0.0:5223"] {
            let text = format!("listen = \"{listen}\"\npublic_address = \"relay.example.org\"");
            let err = resolve(&text).unwrap_err();
            assert!(
                matches!(err, ConfigError::PasswordRequired { .. }),
                "{listen}: {err}"
            );
            let message = err.to_string();
            assert!(
                message.contains("password_file")
                    && message.contains("open_relay = true")
                    && message.contains("--open-relay"),
                "{message}"
            );
            assert!(resolve(&format!("{text}\npassword = \"x\"")).is_ok());
            let open = resolve(&format!("{text}\nopen_relay = true")).unwrap();
            assert!(open.open_relay && open.password.is_none());
            let flags = Overrides {
                open_relay: true,
                ..Overrides::default()
            };
            assert!(
                Config::resolve(parse(&text).unwrap(), flags)
                    .unwrap()
                    .open_relay
            );
        }
        // Loopback needs neither.
        for listen in ["127.0.0.1:5223", "127.0.0.9:5223", "[::1]:5223"] {
            assert!(
                resolve(&format!("listen = \"{listen}\"")).is_ok(),
                "{listen}"
            );
        }
    }

    #[test]
    fn empty_data_dir_is_refused() {
        assert!(matches!(
            resolve("data_dir = \"\"").unwrap_err(),
            ConfigError::EmptyDataDir
        ));
    }
}
