//! The `passage` CLI driven as a person or a script would: one profile per
//! [`CliClient`], every invocation under a time limit, `passage run` left running as a
//! [`CliProcess`].

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use passage_testkit::{HarnessError, client_binary};

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
