//! # passage-e2e
//!
//! Helpers for the end-to-end tests in `tests/tests/`: they start the real
//! `passage-relay` binary on loopback and talk to it with the real client link
//! ([`passage_client::relay::RelayLink`]).
//!
//! ```text
//!  test ── RelayProcess::start(data dir, config) ──► passage-relay serve --listen 127.0.0.1:0
//!    │        reads stdout: "relay address: passage://<pin>@127.0.0.1:<port>"
//!    └── RelayLink::connect(address) ══ QUIC or TLS/TCP ══► relay
//!        RelayProcess::kill (SIGKILL) / restart (same data dir, new port)
//! ```
//!
//! # Where the relay binary comes from
//!
//! Cargo only tells a crate's own tests where that crate's binaries are
//! (`CARGO_BIN_EXE_<name>`), so [`relay_binary`] looks for `passage-relay` next to
//! the test executable (`target/<profile>/`, the parent of its `deps/` directory).
//! If it is missing, or older than any source file it is built from (`relay/`,
//! `crates/`, `Cargo.lock`), it runs `cargo build -p passage-relay --bin passage-relay`
//! for that profile and target directory, once per test process, so a test never
//! runs a stale relay. `cargo test --workspace` builds the binary itself (the relay
//! crate has integration tests), so in CI the build step is skipped; after an edit to
//! the relay, the first e2e test waits for that build (start relays before the time
//! limit of a test, as the tests here do). `PASSAGE_RELAY_BIN=/path/to/binary` skips
//! all of this and uses that binary.
//!
//! The `passage` CLI comes the same way from [`client_binary`] (`cargo build -p
//! passage-cli --bin passage`, or `PASSAGE_CLIENT_BIN`); [`CliClient`] runs it on one
//! profile, with the passphrase from a file and `HOME` and `TMPDIR` pointing into the
//! test's own directories, under a time limit; [`CliClient::spawn`] leaves one running
//! (`passage run`) as a [`CliProcess`] whose stdout is read line by line.
//!
//! [`scan`] is the seized-device scan: markers in every encoding, entropy, file
//! signatures, file listings.
//!
//! Tests that need a setting the binary's configuration does not offer (retention in
//! seconds) run the relay's library in process instead: [`InProcessRelay`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod recording;
pub mod scan;

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::net::Ipv4Addr;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use getrandom::SysRng;
use passage_client::relay::{Event, LinkError, RelayLink};
use passage_crypto::ENVELOPE_LEN;
use passage_relay::store::RedbStore;
use passage_relay::{Limits, Metrics, Relay, ServiceConfig};
use passage_transport::{ConnectOptions, RelayIdentity, ServerOptions, TransportMode, listen};
use passage_wire::{Host, MsgId, RecipientId, RelayAddress};
use rand_core::UnwrapErr;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a relay may take to print its address. Generating the key and opening
/// the store take milliseconds; the margin covers a loaded CI machine.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection attempt may take (both transports, loopback).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The prefix of the line the relay prints on stdout once it listens.
pub const ADDRESS_LINE_PREFIX: &str = "relay address: ";

/// Why the harness could not do what a test asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// Starting a process, reading its output or a temporary file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// `cargo build` of a binary (the relay, the CLI) failed.
    #[error("building a binary failed: {0}")]
    Build(String),
    /// The relay exited or timed out before printing its address; `log` is its stderr.
    #[error("the relay did not print its address: {reason}\n--- relay stderr ---\n{log}")]
    Startup {
        /// What happened.
        reason: String,
        /// The relay's stderr so far.
        log: String,
    },
    /// The address line could not be parsed.
    #[error("the relay printed an address that does not parse: {0}")]
    Address(String),
    /// The in-process relay could not start.
    #[error("the in-process relay could not start: {0}")]
    InProcess(String),
    /// A CLI invocation ran past its time limit and was killed; `stderr` is what it
    /// wrote.
    #[error("`passage {command}` did not finish within {limit:?}\n--- stderr ---\n{stderr}")]
    CliTimeout {
        /// The subcommand.
        command: String,
        /// The limit.
        limit: Duration,
        /// Its stderr.
        stderr: String,
    },
}

/// The `passage-relay` binary: `PASSAGE_RELAY_BIN` if set, else the one next to the
/// test executable, built (or brought up to date) once per test process.
pub fn relay_binary() -> Result<PathBuf, HarnessError> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(path) = std::env::var_os("PASSAGE_RELAY_BIN") {
        return Ok(PathBuf::from(path));
    }
    BINARY
        .get_or_init(|| {
            build_binary("passage-relay", "passage-relay", &["relay"]).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(HarnessError::Build)
}

/// The `passage` CLI binary: `PASSAGE_CLIENT_BIN` if set, else the one next to the
/// test executable, built (or brought up to date) once per test process, like
/// [`relay_binary`].
pub fn client_binary() -> Result<PathBuf, HarnessError> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(path) = std::env::var_os("PASSAGE_CLIENT_BIN") {
        return Ok(PathBuf::from(path));
    }
    BINARY
        .get_or_init(|| {
            build_binary("passage-cli", "passage", &["client", "cli"]).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(HarnessError::Build)
}

/// Builds `bin` of `package` next to the test executable unless it is newer than
/// every file under `crate_dirs`, `crates/`, `Cargo.lock` and `Cargo.toml`.
fn build_binary(package: &str, bin: &str, crate_dirs: &[&str]) -> Result<PathBuf, HarnessError> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test>-<hash> → target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| HarnessError::Build("the test executable has no target directory".into()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| HarnessError::Build("the profile directory has no parent".into()))?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let binary = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    let built_at = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let sources: Vec<PathBuf> = crate_dirs
        .iter()
        .chain(&["crates", "Cargo.lock", "Cargo.toml"])
        .map(|p| workspace.join(p))
        .collect();
    if built_at.is_some_and(|built| newest_change(&sources).is_some_and(|newest| newest <= built)) {
        return Ok(binary);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = workspace.join("Cargo.toml");
    let output = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .arg("--profile")
        .arg(&profile)
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .output()?;
    if !output.status.success() {
        return Err(HarnessError::Build(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    if !binary.exists() {
        return Err(HarnessError::Build(format!(
            "cargo built no binary at {}",
            binary.display()
        )));
    }
    Ok(binary)
}

/// Deepest directory level searched by [`newest_change`]; the sources are far shallower.
const MAX_SOURCE_DEPTH: usize = 8;

/// The latest modification time of the files under `paths` (skipping `target`
/// directories and hidden entries), or `None` if one cannot be read.
fn newest_change(paths: &[PathBuf]) -> Option<std::time::SystemTime> {
    let mut newest = std::time::UNIX_EPOCH;
    let mut stack: Vec<(PathBuf, usize)> = paths.iter().map(|p| (p.clone(), 0)).collect();
    while let Some((path, depth)) = stack.pop() {
        let metadata = std::fs::metadata(&path).ok()?;
        if metadata.is_dir() {
            if depth >= MAX_SOURCE_DEPTH {
                continue;
            }
            for entry in std::fs::read_dir(&path).ok()? {
                let entry = entry.ok()?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') || name == "target" {
                    continue;
                }
                stack.push((entry.path(), depth + 1));
            }
        } else {
            newest = newest.max(metadata.modified().ok()?);
        }
    }
    Some(newest)
}

/// Attempts of [`RelayProcess::restart_same_port`], [`RESTART_PAUSE`] apart.
const RESTART_ATTEMPTS: usize = 20;

/// Pause between two attempts of [`RelayProcess::restart_same_port`].
const RESTART_PAUSE: Duration = Duration::from_millis(250);

/// Ports tried by [`RelayProcess::start_restartable`].
const PORT_ATTEMPTS: usize = 20;

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

/// A running `passage-relay serve` process on `127.0.0.1:0`. Killed when dropped.
#[derive(Debug)]
pub struct RelayProcess {
    child: Option<Child>,
    address: RelayAddress,
    data_dir: PathBuf,
    config: Option<PathBuf>,
    log: PathBuf,
    starts: u32,
    listen: String,
}

impl RelayProcess {
    /// Starts the relay on `data_dir` (with `config`, a TOML file, if given) and waits
    /// for its address line.
    pub fn start(data_dir: &Path, config: Option<&Path>) -> Result<Self, HarnessError> {
        let mut relay = Self {
            child: None,
            address: placeholder_address(),
            data_dir: data_dir.to_owned(),
            config: config.map(Path::to_owned),
            log: data_dir.with_extension("stderr.log"),
            starts: 0,
            listen: "127.0.0.1:0".to_owned(),
        };
        relay.spawn()?;
        Ok(relay)
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
            let mut relay = Self {
                child: None,
                address: placeholder_address(),
                data_dir: data_dir.to_owned(),
                config: config.map(Path::to_owned),
                log: data_dir.with_extension("stderr.log"),
                starts: 0,
                listen: format!("127.0.0.1:{port}"),
            };
            match relay.spawn() {
                Ok(()) => return Ok(relay),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or(HarnessError::Startup {
            reason: "no free port found below the ephemeral range".to_owned(),
            log: String::new(),
        }))
    }

    /// The address the relay printed when it last started.
    pub fn address(&self) -> &RelayAddress {
        &self.address
    }

    /// Kills the relay with SIGKILL (no chance to flush or close anything) and reaps it.
    pub fn kill(&mut self) -> Result<(), HarnessError> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Kills the relay if it runs, then starts it again on the same data directory
    /// and configuration, on a new port; [`address`](Self::address) is then the new one.
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
        self.listen = format!("127.0.0.1:{}", self.address.port());
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
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Everything the relay wrote to stderr so far, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), HarnessError> {
        let binary = relay_binary()?;
        self.starts += 1;
        let stderr = File::options().create(true).append(true).open(&self.log)?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--data")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(&self.listen);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let stdout = child.stdout.take();
        self.child = Some(child);
        let (line_tx, line_rx) = mpsc::channel();
        if let Some(stdout) = stdout {
            // Reads the address line, then drains stdout so the relay never blocks on it.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(address) = line.strip_prefix(ADDRESS_LINE_PREFIX) {
                        let _ = line_tx.send(address.trim().to_owned());
                    }
                }
            });
        }
        let address = match line_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(address) => address,
            Err(error) => {
                let _ = self.kill();
                let reason = match error {
                    mpsc::RecvTimeoutError::Timeout => "timed out",
                    mpsc::RecvTimeoutError::Disconnected => "it exited",
                };
                return Err(HarnessError::Startup {
                    reason: reason.to_owned(),
                    log: self.log(),
                });
            }
        };
        self.address = address
            .parse()
            .map_err(|_| HarnessError::Address(address))?;
        Ok(())
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A relay process with its own temporary directory (data directory, config file,
/// stderr log), removed when dropped.
#[derive(Debug)]
pub struct TestRelay {
    /// The process.
    pub process: RelayProcess,
    dir: TempDir,
}

/// Writes `config` (TOML text), if given, to `relay.toml` in `dir`.
fn write_config(dir: &TempDir, config: Option<&str>) -> Result<Option<PathBuf>, HarnessError> {
    let Some(text) = config else {
        return Ok(None);
    };
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, text)?;
    Ok(Some(path))
}

impl TestRelay {
    /// Starts a relay with `config` (TOML text) if given, else with the defaults.
    pub fn start(config: Option<&str>) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir()?;
        let config_path = write_config(&dir, config)?;
        let process = RelayProcess::start(&dir.path().join("data"), config_path.as_deref())?;
        Ok(Self { process, dir })
    }

    /// Like [`start`](Self::start), with [`RelayProcess::start_restartable`].
    pub fn start_restartable(config: Option<&str>) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir()?;
        let config_path = write_config(&dir, config)?;
        let process =
            RelayProcess::start_restartable(&dir.path().join("data"), config_path.as_deref())?;
        Ok(Self { process, dir })
    }

    /// The relay's current address.
    pub fn address(&self) -> &RelayAddress {
        self.process.address()
    }

    /// The temporary directory holding the data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The relay's library served in this process on a real listener (`127.0.0.1:0`,
/// both transports) over a redb store in a temporary directory, for settings the
/// binary's configuration does not offer.
#[derive(Debug)]
pub struct InProcessRelay {
    address: RelayAddress,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl InProcessRelay {
    /// Starts serving with `limits`.
    pub async fn start(limits: Limits) -> Result<Self, HarnessError> {
        Self::start_with_store(limits, |store| store).await
    }

    /// Starts serving with `limits` over the store `wrap` makes of the redb store (a
    /// [`recording::RecordingStore`], say).
    pub async fn start_with_store(
        limits: Limits,
        wrap: impl FnOnce(Arc<dyn passage_relay::store::Store>) -> Arc<dyn passage_relay::store::Store>,
    ) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir()?;
        let store = RedbStore::open(dir.path().join("relay.redb"))
            .map_err(|e| HarnessError::InProcess(e.to_string()))?;
        let store = wrap(Arc::new(store));
        let identity =
            RelayIdentity::generate().map_err(|e| HarnessError::InProcess(e.to_string()))?;
        let listener = listen(
            (Ipv4Addr::LOCALHOST, 0).into(),
            &identity,
            ServerOptions::default(),
        )
        .await
        .map_err(|e| HarnessError::InProcess(e.to_string()))?;
        let port = NonZeroU16::new(listener.local_addr().port())
            .ok_or_else(|| HarnessError::InProcess("listening on port 0".into()))?;
        let address = RelayAddress::new(identity.pin(), Host::Ipv4(Ipv4Addr::LOCALHOST), port);
        let config = ServiceConfig {
            limits,
            ..ServiceConfig::default()
        };
        let relay = Relay::new(config, store, Arc::new(Metrics::default()));
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.serve(listener, async {
            let _ = stop.await;
        }));
        Ok(Self {
            address,
            shutdown: Some(shutdown),
            task: Some(task),
            _dir: dir,
        })
    }

    /// The relay's address.
    pub fn address(&self) -> &RelayAddress {
        &self.address
    }

    /// Shuts the relay down gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for InProcessRelay {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Connect options for one transport, with a short handshake timeout.
pub fn options(mode: TransportMode) -> ConnectOptions {
    let mut options = ConnectOptions::default();
    options.mode = mode;
    options.handshake_timeout = CONNECT_TIMEOUT;
    options
}

/// Connects a link to `address` over `mode`.
pub async fn connect(address: &RelayAddress, mode: TransportMode) -> Result<RelayLink, LinkError> {
    RelayLink::connect(address, &options(mode)).await
}

/// The system RNG, as the client uses it.
pub fn rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

/// A test envelope naming its queue and a counter (bytes 0..4 and 4..12), the rest
/// filled from both so that every envelope's content is unique.
pub fn envelope(queue: u32, counter: u64) -> Box<[u8; ENVELOPE_LEN]> {
    let mut body = Box::new([0u8; ENVELOPE_LEN]);
    body[..4].copy_from_slice(&queue.to_be_bytes());
    body[4..12].copy_from_slice(&counter.to_be_bytes());
    let seed = counter.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(queue);
    for (i, byte) in body.iter_mut().enumerate().skip(12) {
        *byte = (seed >> ((i % 8) * 8)) as u8 ^ (i as u8);
    }
    body
}

/// The queue and counter written by [`envelope`], if `body` is exactly such an envelope.
pub fn envelope_tag(body: &[u8; ENVELOPE_LEN]) -> Option<(u32, u64)> {
    let queue = u32::from_be_bytes(body[..4].try_into().ok()?);
    let counter = u64::from_be_bytes(body[4..12].try_into().ok()?);
    (*envelope(queue, counter) == *body).then_some((queue, counter))
}

/// A message event, reduced to what tests check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The queue.
    pub recipient_id: RecipientId,
    /// The relay's message id.
    pub msg_id: MsgId,
    /// The [`envelope_tag`] of the body (`None` if it was not a test envelope).
    pub tag: Option<(u32, u64)>,
}

/// Waits up to `limit` for the next event; `None` if none came (or the link ended).
pub async fn next_event(link: &mut RelayLink, limit: Duration) -> Option<Event> {
    tokio::time::timeout(limit, link.next_event())
        .await
        .ok()
        .flatten()
}

/// Waits up to `limit` for the next event and reduces a message to [`Delivered`];
/// `Err` carries any other event (or `None`: nothing came).
pub async fn next_message(
    link: &mut RelayLink,
    limit: Duration,
) -> Result<Delivered, Option<Event>> {
    match next_event(link, limit).await {
        Some(Event::Message {
            recipient_id,
            msg_id,
            body,
            ..
        }) => Ok(Delivered {
            recipient_id,
            msg_id,
            tag: envelope_tag(&body),
        }),
        other => Err(other),
    }
}

/// A placeholder until the relay has printed its address.
fn placeholder_address() -> RelayAddress {
    RelayAddress::new(
        passage_wire::RelayPin::from_bytes([0; 32]),
        Host::Ipv4(Ipv4Addr::LOCALHOST),
        NonZeroU16::MIN,
    )
}

// ---------------------------------------------------------------------------
// The `passage` CLI

/// Longest time one CLI invocation may take before [`run_limited`] kills it: a guard
/// against a hung process (a failure), not a performance expectation. An invocation
/// normally takes about a second (half of it Argon2id).
pub const CLI_LIMIT: Duration = Duration::from_secs(120);

/// How often [`run_limited`] checks whether the process has exited.
const CLI_POLL: Duration = Duration::from_millis(10);

/// What a finished CLI invocation left.
#[derive(Debug)]
pub struct CliOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Standard output as JSON objects, one a line (`--json`); a line that is not
    /// JSON becomes `Err` with the line.
    pub fn json_lines(&self) -> Vec<Result<serde_json::Value, String>> {
        self.stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).map_err(|_| line.to_owned()))
            .collect()
    }
}

/// One profile driven through the `passage` binary. Its directory holds `vault/` (the
/// data directory, created by `passage init`), `home/` and `tmp/` (the child's `HOME`
/// and `TMPDIR`: a seized-device test scans all three) and the passphrase file, which
/// is outside the three. Every invocation runs with an emptied environment plus
/// `PATH`, `HOME` and `TMPDIR`, and standard input closed.
#[derive(Debug, Clone)]
pub struct CliClient {
    binary: PathBuf,
    root: PathBuf,
    passphrase_file: PathBuf,
    socks5: Option<String>,
}

impl CliClient {
    /// A client in `root` (created if missing) with `passphrase`.
    pub fn new(root: &Path, passphrase: &str) -> Result<Self, HarnessError> {
        let binary = client_binary()?;
        std::fs::create_dir_all(root.join("home"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        let passphrase_file = root.join("passphrase.txt");
        std::fs::write(&passphrase_file, format!("{passphrase}\n"))?;
        Ok(Self {
            binary,
            root: root.to_owned(),
            passphrase_file,
            socks5: None,
        })
    }

    /// The same profile (data directory, `HOME`, `TMPDIR`) opened with another
    /// passphrase, kept in `<root>/<file_name>`: a duress passphrase, or a wrong one.
    pub fn with_passphrase(&self, file_name: &str, passphrase: &str) -> Result<Self, HarnessError> {
        let passphrase_file = self.root.join(file_name);
        std::fs::write(&passphrase_file, format!("{passphrase}\n"))?;
        Ok(Self {
            passphrase_file,
            ..self.clone()
        })
    }

    /// Reach relays through this SOCKS5 proxy (`HOST:PORT`) from now on.
    pub fn set_socks5(&mut self, proxy: &str) {
        self.socks5 = Some(proxy.to_owned());
    }

    /// The data directory (`--vault`).
    pub fn vault(&self) -> PathBuf {
        self.root.join("vault")
    }

    /// The child's `HOME`.
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// The child's `TMPDIR`.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The file holding the passphrase.
    pub fn passphrase_file(&self) -> &Path {
        &self.passphrase_file
    }

    /// `passage --vault DIR [--socks5 P] ARGS` with the environment described above
    /// and no passphrase: add `--passphrase-file` or `PASSAGE_PASSPHRASE` yourself.
    pub fn bare_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .env("HOME", self.home())
            .env("TMPDIR", self.tmp())
            .arg("--vault")
            .arg(self.vault());
        if let Some(proxy) = &self.socks5 {
            command.args(["--socks5", proxy]);
        }
        command.args(args).stdin(Stdio::null());
        command
    }

    /// [`bare_command`](Self::bare_command) with `--passphrase-file`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.bare_command(&[]);
        command.arg("--passphrase-file").arg(&self.passphrase_file);
        command.args(args);
        command
    }

    /// Runs `passage ARGS` on this profile within [`CLI_LIMIT`].
    pub fn run(&self, args: &[&str]) -> Result<CliOutput, HarnessError> {
        run_limited(self.command(args), CLI_LIMIT)
    }

    /// Starts `passage ARGS` on this profile (`run`, which does not end by itself) and
    /// returns at once; read its stdout with [`CliProcess::next_line`].
    pub fn spawn(&self, args: &[&str]) -> Result<CliProcess, HarnessError> {
        CliProcess::spawn(self.command(args))
    }
}

/// A `passage` process left running (`passage run`): its stdout read line by line on
/// a thread, its stderr collected. Killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct CliProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl CliProcess {
    /// Spawns `command` with stdout and stderr piped.
    pub fn spawn(mut command: Command) -> Result<Self, HarnessError> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take();
        let stderr = read_to_end_in_thread(child.stderr.take());
        let (line_tx, lines) = mpsc::channel();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line_tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Self {
            child,
            lines,
            stderr: Some(stderr),
        })
    }

    /// The next line on stdout, waiting at most `limit`; `None` if none came in time
    /// or stdout was closed (the process ended).
    pub fn next_line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Reads stdout lines, each within `limit`, until `found` accepts one, which it
    /// returns; the lines before it are pushed to `skipped`. `None` if a line did not
    /// come in time (or the process ended) first.
    pub fn line_where(
        &self,
        limit: Duration,
        skipped: &mut Vec<String>,
        found: impl Fn(&str) -> bool,
    ) -> Option<String> {
        while let Some(line) = self.next_line(limit) {
            if found(&line) {
                return Some(line);
            }
            skipped.push(line);
        }
        None
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process with SIGKILL (if it still runs), reaps it and returns what it
    /// wrote on stderr.
    pub fn kill(mut self) -> Result<String, HarnessError> {
        if self.is_running() {
            self.child.kill()?;
        }
        self.child.wait()?;
        Ok(self
            .stderr
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default())
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` to its end, capturing its output; kills it and fails with
/// [`HarnessError::CliTimeout`] if it runs longer than `limit`.
pub fn run_limited(mut command: Command, limit: Duration) -> Result<CliOutput, HarnessError> {
    let name = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .find(|a| {
            !a.is_empty()
                && a.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                && !a.starts_with('-')
        })
        .unwrap_or_default();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = read_to_end_in_thread(child.stdout.take());
    let stderr = read_to_end_in_thread(child.stderr.take());
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(CLI_POLL);
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Ok(CliOutput {
            status,
            stdout,
            stderr,
        }),
        None => Err(HarnessError::CliTimeout {
            command: name,
            limit,
            stderr,
        }),
    }
}

/// Reads a child's pipe to its end on a thread (so that neither pipe can fill up and
/// block the child); the thread returns what it read, lossily decoded.
pub fn read_to_end_in_thread<R: std::io::Read + Send + 'static>(
    pipe: Option<R>,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
