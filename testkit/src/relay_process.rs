//! The one way every suite and benchmark starts a `passage-relay serve` process.
//!
//! ```text
//!  RelayProcess::launch(data dir, RelayOptions) ──► passage-relay serve --data DIR
//!      --listen 127.0.0.1:0 [--config FILE] [--log-level L]   (under `ulimit -n N`)
//!    reads stdout: "relay address: passage://<pin>@127.0.0.1:<port>"
//!    kill (SIGKILL) / stop (SIGTERM, SIGINT) / restart (same data dir, new port)
//!    / restart_same_port (the port clients have stored)
//! ```
//!
//! The relay's stderr goes to a log file ([`RelayProcess::log`]), appended over its
//! restarts; the process is killed when the [`RelayProcess`] is dropped.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use passage_wire::RelayAddress;

use crate::HarnessError;
use crate::binaries::relay_binary;
use crate::child::{AnnouncedChild, StopSignal};

/// How long a relay may take to print its address. Generating the key and opening
/// the store take milliseconds; the margin covers a loaded CI machine.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a relay may take to exit after SIGTERM or SIGINT: it lets connections
/// finish their writes for up to 5 s, then closes the store.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The prefix of the line the relay prints on stdout once it listens.
pub const ADDRESS_LINE_PREFIX: &str = "relay address: ";

/// Attempts of [`RelayProcess::restart_same_port`], [`RESTART_PAUSE`] apart.
const RESTART_ATTEMPTS: usize = 20;

/// Pause between two attempts of [`RelayProcess::restart_same_port`].
const RESTART_PAUSE: Duration = Duration::from_millis(250);

/// Ports tried by [`RelayOptions::restartable`].
const PORT_ATTEMPTS: usize = 20;

/// How to start a relay. [`Default`]: the binary from [`relay_binary`], no config
/// file, `127.0.0.1:0`, the relay's own log level, no descriptor limit, stderr to
/// `<data dir>.stderr.log`.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The binary (`None`: [`relay_binary`]). A relay crate test passes
    /// `env!("CARGO_BIN_EXE_passage-relay")`.
    pub binary: Option<PathBuf>,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--listen`.
    pub listen: String,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// A hard file-descriptor limit set by the shell before `exec`, so the relay cannot
    /// raise it.
    pub fd_limit: Option<u32>,
    /// Where stderr goes (`None`: `<data dir>.stderr.log`).
    pub log: Option<PathBuf>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            binary: None,
            config: None,
            listen: "127.0.0.1:0".to_owned(),
            log_level: None,
            fd_limit: None,
            log: None,
        }
    }
}

/// A running `passage-relay serve` process. Killed when dropped.
#[derive(Debug)]
pub struct RelayProcess {
    child: Option<AnnouncedChild>,
    address: RelayAddress,
    data_dir: PathBuf,
    options: RelayOptions,
    binary: PathBuf,
    log: PathBuf,
}

impl RelayProcess {
    /// Starts the relay on `data_dir` (with `config`, a TOML file, if given) and waits
    /// for its address line.
    pub fn start(data_dir: &Path, config: Option<&Path>) -> Result<Self, HarnessError> {
        Self::launch(
            data_dir,
            RelayOptions {
                config: config.map(Path::to_owned),
                ..RelayOptions::default()
            },
        )
    }

    /// Starts like [`start`](Self::start), but on a free port below the system's
    /// ephemeral port range, for tests that [`restart_same_port`](Self::restart_same_port):
    /// while the relay is down, a port from the ephemeral range may be taken by any
    /// outgoing socket on the machine (a QUIC client's UDP socket in a test running
    /// alongside), and the relay could not come back on it.
    pub fn start_restartable(data_dir: &Path, config: Option<&Path>) -> Result<Self, HarnessError> {
        let (low, high) = fixed_port_range();
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let mut random = [0u8; 2];
            getrandom::fill(&mut random).map_err(|e| HarnessError::Io(std::io::Error::other(e)))?;
            let port = low + u16::from_le_bytes(random) % (high - low);
            let free = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
                && std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
            if !free {
                continue;
            }
            let options = RelayOptions {
                config: config.map(Path::to_owned),
                listen: format!("127.0.0.1:{port}"),
                ..RelayOptions::default()
            };
            match Self::launch(data_dir, options) {
                Ok(relay) => return Ok(relay),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or(HarnessError::Startup {
            reason: "no free port found below the ephemeral range".to_owned(),
            log: String::new(),
        }))
    }

    /// Starts the relay on `data_dir` with `options` and waits for its address line;
    /// the log file starts empty.
    pub fn launch(data_dir: &Path, options: RelayOptions) -> Result<Self, HarnessError> {
        let binary = match &options.binary {
            Some(binary) => binary.clone(),
            None => relay_binary()?,
        };
        let log = options
            .log
            .clone()
            .unwrap_or_else(|| data_dir.with_extension("stderr.log"));
        File::create(&log)?;
        let mut relay = Self {
            child: None,
            address: placeholder_address(),
            data_dir: data_dir.to_owned(),
            options,
            binary,
            log,
        };
        relay.spawn()?;
        Ok(relay)
    }

    /// The address the relay printed when it last started.
    pub fn address(&self) -> &RelayAddress {
        &self.address
    }

    /// The address line as the relay printed it (after the prefix).
    pub fn address_line(&self) -> &str {
        self.child.as_ref().map_or("", AnnouncedChild::line)
    }

    /// Lines the relay printed on stdout after its address line (there should be none).
    pub fn later_lines(&self) -> Vec<String> {
        self.child
            .as_ref()
            .map(AnnouncedChild::later_lines)
            .unwrap_or_default()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(AnnouncedChild::pid)
    }

    /// Kills the relay with SIGKILL (no chance to flush or close anything) and reaps it.
    pub fn kill(&mut self) -> Result<(), HarnessError> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
        }
        Ok(())
    }

    /// Sends `signal` (SIGTERM or SIGINT) without waiting.
    pub fn signal(&self, signal: StopSignal) -> Result<(), HarnessError> {
        match &self.child {
            Some(child) => child.signal(signal),
            None => Ok(()),
        }
    }

    /// Waits up to [`STOP_TIMEOUT`] for the relay to exit (after a [`signal`](Self::signal)),
    /// killing it and failing if it does not.
    pub fn wait(&mut self) -> Result<ExitStatus, HarnessError> {
        let Some(mut child) = self.child.take() else {
            return Err(HarnessError::Io(std::io::Error::other(
                "the relay is not running",
            )));
        };
        match child.wait_for_exit(STOP_TIMEOUT)? {
            Some(status) => Ok(status),
            None => {
                child.kill()?;
                Err(HarnessError::StopTimeout {
                    signal: "a stop signal",
                    limit: STOP_TIMEOUT,
                })
            }
        }
    }

    /// Stops the relay cleanly with `signal` and returns its exit status.
    pub fn stop(&mut self, signal: StopSignal) -> Result<ExitStatus, HarnessError> {
        self.signal(signal)?;
        self.wait()
    }

    /// Kills the relay if it runs, then starts it again on the same data directory
    /// and configuration, on the same listen setting (a new port if it was port 0);
    /// [`address`](Self::address) is then the new one.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.kill()?;
        self.spawn()
    }

    /// Kills the relay if it runs, then starts it again on the same data directory,
    /// configuration **and port**, so that addresses stored by clients (in their
    /// contacts and invitations) stay valid. Start such a relay with
    /// [`start_restartable`](Self::start_restartable) so that no outgoing socket can
    /// take the port meanwhile; several attempts cover the old sockets' release.
    pub fn restart_same_port(&mut self) -> Result<(), HarnessError> {
        self.kill()?;
        self.options.listen = format!("127.0.0.1:{}", self.address.port());
        let mut last = None;
        for attempt in 0..RESTART_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(RESTART_PAUSE);
            }
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or(HarnessError::Startup {
            reason: "no attempt made".to_owned(),
            log: String::new(),
        }))
    }

    /// The relay's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(AnnouncedChild::is_running)
    }

    /// Everything the relay wrote to stderr so far, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), HarnessError> {
        let mut command = match self.options.fd_limit {
            None => Command::new(&self.binary),
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(&self.binary);
                shell
            }
        };
        command
            .arg("serve")
            .arg("--data")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(&self.options.listen);
        if let Some(config) = &self.options.config {
            command.arg("--config").arg(config);
        }
        if let Some(level) = &self.options.log_level {
            command.arg("--log-level").arg(level);
        }
        let child =
            AnnouncedChild::spawn(command, ADDRESS_LINE_PREFIX, &self.log, STARTUP_TIMEOUT)?;
        self.address = child.address().clone();
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Ports for [`RelayProcess::start_restartable`]: from 10000 up to the start of the
/// system's ephemeral range (Linux: `/proc/sys/net/ipv4/ip_local_port_range`,
/// 32768 by default), at most 32768.
fn fixed_port_range() -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
        .min(32768);
    if ephemeral_start > 11_000 {
        (10_000, ephemeral_start)
    } else {
        (10_000, 11_000)
    }
}

/// A placeholder until the relay has printed its address.
fn placeholder_address() -> RelayAddress {
    RelayAddress::new(
        passage_wire::RelayPin::from_bytes([0; 32]),
        passage_wire::Host::Ipv4(Ipv4Addr::LOCALHOST),
        std::num::NonZeroU16::MIN,
    )
}
