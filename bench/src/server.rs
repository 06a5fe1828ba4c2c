//! The server under test, as a child process: a real `passage-relay` in a temporary
//! data directory, or this binary's own `forwarder` mode (the baseline).
//!
//! Both print one address line on stdout (`relay address: passage://…` or
//! `forwarder address: passage://…`); the bench reads it, then measures the child's CPU
//! time and memory through `/proc`. Both are started by the shared kit's launcher
//! (`passage_testkit::AnnouncedChild`); dropping a [`ServerProcess`] kills the child, so
//! a bench that fails half way leaves nothing running.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use passage_testkit::{AnnouncedChild, StopSignal};
use passage_wire::RelayAddress;
use tempfile::TempDir;

use crate::procfs::{self, CpuTime};

/// How long a child may take to print its address line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a child may take to exit after SIGTERM before it is killed. The relay
/// waits up to 5 s for connections to finish their writes.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The line prefix of `passage-relay serve`'s address line.
pub const RELAY_ADDRESS_PREFIX: &str = "relay address: ";

/// The line prefix of the forwarder's address line.
pub const FORWARDER_ADDRESS_PREFIX: &str = "forwarder address: ";

/// Relay settings raised for the load, written to the relay's config file.
#[derive(Debug, Clone)]
pub struct RelayTuning {
    /// `max_connections`.
    pub max_connections: usize,
    /// `queue_quota`.
    pub queue_quota: usize,
}

impl RelayTuning {
    /// The TOML config file. Rate limits are lifted (a saturating pair sends far more
    /// than a person does); the metrics endpoint listens on `metrics` (loopback), so the
    /// bench can read the store's commit counters; everything else stays at the relay's
    /// defaults.
    fn to_toml(&self, metrics: SocketAddr) -> String {
        format!(
            "# Written by passage-relay-bench.\n\
             log_level = \"warn\"\n\
             max_connections = {}\n\
             queue_quota = {}\n\
             commands_per_second = 1000000\n\
             command_burst = 1000000\n\
             metrics_listen = \"{metrics}\"\n",
            self.max_connections, self.queue_quota
        )
    }
}

/// The relay's store commit counters at one moment, read from its metrics endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitSample {
    /// `passage_store_commits_total`.
    pub commits: u64,
    /// `passage_store_committed_ops_total`.
    pub ops: u64,
    /// `passage_store_commit_microseconds_total`.
    pub busy_micros: u64,
}

/// How long a metrics request may take.
const METRICS_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest metrics response read.
const MAX_METRICS_LEN: u64 = 64 * 1024;

/// Reads the commit counters from the relay's metrics endpoint at `addr`.
fn scrape_commits(addr: SocketAddr) -> anyhow::Result<CommitSample> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, METRICS_TIMEOUT)
        .context("connecting to the relay's metrics endpoint")?;
    stream.set_read_timeout(Some(METRICS_TIMEOUT))?;
    stream.set_write_timeout(Some(METRICS_TIMEOUT))?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .context("asking for the relay's metrics")?;
    let mut text = String::new();
    stream
        .take(MAX_METRICS_LEN)
        .read_to_string(&mut text)
        .context("reading the relay's metrics")?;
    parse_commits(&text)
}

/// The commit counters in a metrics response (headers, then the Prometheus text).
fn parse_commits(text: &str) -> anyhow::Result<CommitSample> {
    let value = |name: &str| -> anyhow::Result<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .ok_or_else(|| anyhow!("the relay's metrics have no {name}"))?
            .trim()
            .parse()
            .with_context(|| format!("the relay's {name}"))
    };
    Ok(CommitSample {
        commits: value("passage_store_commits_total")?,
        ops: value("passage_store_committed_ops_total")?,
        busy_micros: value("passage_store_commit_microseconds_total")?,
    })
}

/// A loopback port free now (for the relay's metrics endpoint; the relay binds it a
/// moment later, and fails to start, which the bench reports, if something took it).
fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("finding a free port for the relay's metrics endpoint")?;
    Ok(listener.local_addr()?)
}

/// Which server a [`ServerProcess`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// `passage-relay serve`.
    Relay,
    /// `passage-relay-bench forwarder`.
    Forwarder,
}

impl ServerKind {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relay => "relay",
            Self::Forwarder => "forwarder",
        }
    }
}

/// A running server child process and its address.
#[derive(Debug)]
pub struct ServerProcess {
    kind: ServerKind,
    /// The child (the kit's launcher). The forwarder exits when its input closes, so it
    /// cannot outlive the bench.
    child: AnnouncedChild,
    /// The relay's metrics endpoint (none for the forwarder).
    metrics: Option<SocketAddr>,
    log: PathBuf,
    /// The relay's data directory and the log; removed on drop.
    _dir: TempDir,
}

impl ServerProcess {
    /// Starts `passage-relay serve` from `bin` on 127.0.0.1 (port 0) in a fresh
    /// temporary data directory, with `tuning` in a config file.
    pub fn start_relay(bin: &Path, tuning: &RelayTuning) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("passage-relay-bench-")
            .tempdir()
            .context("creating a temporary directory for the relay")?;
        let config = dir.path().join("relay.toml");
        let metrics = free_loopback_port()?;
        std::fs::write(&config, tuning.to_toml(metrics))
            .context("writing the relay config file")?;
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--config")
            .arg(&config);
        let mut relay = Self::start(ServerKind::Relay, command, dir, RELAY_ADDRESS_PREFIX)
            .with_context(|| {
            format!(
                "starting the relay {} (build it with `cargo build --release -p passage-relay`, or pass --relay-bin)",
                bin.display()
            )
        })?;
        relay.metrics = Some(metrics);
        Ok(relay)
    }

    /// Starts this binary's `forwarder` mode on 127.0.0.1 (port 0).
    pub fn start_forwarder() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let dir = tempfile::Builder::new()
            .prefix("passage-relay-bench-fwd-")
            .tempdir()
            .context("creating a temporary directory for the forwarder's log")?;
        let mut command = Command::new(exe);
        command.arg("forwarder").arg("--listen").arg("127.0.0.1:0");
        Self::start(
            ServerKind::Forwarder,
            command,
            dir,
            FORWARDER_ADDRESS_PREFIX,
        )
        .context("starting the forwarder")
    }

    fn start(
        kind: ServerKind,
        command: Command,
        dir: TempDir,
        prefix: &'static str,
    ) -> anyhow::Result<Self> {
        let log = dir.path().join(format!("{}.log", kind.name()));
        let child = AnnouncedChild::spawn(command, prefix, &log, STARTUP_TIMEOUT)
            .map_err(|e| anyhow!("{e}"))?;
        Ok(Self {
            kind,
            child,
            metrics: None,
            log,
            _dir: dir,
        })
    }

    /// Which server this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The address it printed.
    pub fn address(&self) -> &RelayAddress {
        self.child.address()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// CPU time used so far.
    pub fn cpu_time(&self) -> anyhow::Result<CpuTime> {
        procfs::cpu_time(self.pid())
    }

    /// Bytes written to storage so far.
    pub fn disk_write_bytes(&self) -> anyhow::Result<u64> {
        procfs::disk_write_bytes(self.pid())
    }

    /// The relay's store commit counters now (`None` for the forwarder).
    pub fn commit_sample(&self) -> anyhow::Result<Option<CommitSample>> {
        self.metrics.map(scrape_commits).transpose()
    }

    /// Resident memory now, KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        procfs::rss_kib(self.pid())
    }

    /// Fails if the child has exited (with its log's end).
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if self.child.is_running() {
            return Ok(());
        }
        bail!(
            "the {} exited during the run; its log ends with:\n{}",
            self.kind.name(),
            self.log_tail()
        )
    }

    /// The last lines of its standard error.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Stops it (the relay with SIGTERM, the forwarder by closing its input), killing
    /// it after [`STOP_TIMEOUT`], and returns how it exited and the end of its log.
    pub fn stop(mut self) -> anyhow::Result<(ExitStatus, String)> {
        self.child.close_stdin();
        if self.kind == ServerKind::Relay {
            let _ = self.child.signal(StopSignal::Term);
        }
        let status = match self.child.wait_for_exit(STOP_TIMEOUT)? {
            Some(status) => status,
            None => {
                self.child.kill()?;
                self.child
                    .wait_for_exit(STOP_TIMEOUT)?
                    .ok_or_else(|| anyhow!("the {} does not exit", self.kind.name()))?
            }
        };
        Ok((status, self.log_tail()))
    }
}

/// The last lines of a log file (empty if it cannot be read).
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    lines.get(start..).unwrap_or_default().join("\n")
}

/// The relay binary next to this executable (`target/<profile>/passage-relay`).
pub fn default_relay_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("this executable has no directory"))?;
    Ok(dir.join("passage-relay"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_counters_are_read_from_the_metrics_text() {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n\
            # HELP passage_store_commits_total Store commits.\n\
            # TYPE passage_store_commits_total counter\n\
            passage_store_commits_total 12\n\
            passage_store_committed_ops_total 340\n\
            passage_store_commit_microseconds_total 56789\n\
            passage_up 1\n";
        let sample = parse_commits(text).unwrap();
        assert_eq!(
            (sample.commits, sample.ops, sample.busy_micros),
            (12, 340, 56789)
        );
        // A relay without the counters (an older build) is an error, not zeros.
        assert!(parse_commits("passage_up 1\n").is_err());
        assert!(parse_commits("passage_store_commits_total x\n").is_err());
    }
}
