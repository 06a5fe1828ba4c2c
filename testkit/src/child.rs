//! A server child process that announces its address with one line on stdout
//! (`relay address: passage://…`, or the bench forwarder's `forwarder address: …`).
//! Its stderr goes to a log file; its stdout is read on a thread (the address line,
//! then every later line is kept, so a test can check there are none). Every wait is
//! bounded; the child is killed and reaped when dropped.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use passage_wire::RelayAddress;

use crate::HarnessError;

/// How often a bounded wait for an exit checks the child.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// A signal asking a server to stop cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopSignal {
    /// SIGTERM (systemd's stop).
    Term,
    /// SIGINT (Ctrl-C).
    Interrupt,
}

impl StopSignal {
    fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Interrupt => "SIGINT",
        }
    }
}

/// A running child that has printed its address. See the module documentation.
#[derive(Debug)]
pub struct AnnouncedChild {
    child: Child,
    /// Closing it tells a child that watches its input (the bench forwarder) to exit.
    stdin: Option<ChildStdin>,
    address: RelayAddress,
    /// The address line as printed, after the prefix.
    line: String,
    later: Arc<Mutex<Vec<String>>>,
}

impl AnnouncedChild {
    /// Spawns `command` (stdin a pipe, stdout read here, stderr appended to `log`) and
    /// waits up to `timeout` for a stdout line starting with `prefix`.
    pub fn spawn(
        mut command: Command,
        prefix: &'static str,
        log: &Path,
        timeout: Duration,
    ) -> Result<Self, HarnessError> {
        let stderr = File::options().create(true).append(true).open(log)?;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let later = Arc::new(Mutex::new(Vec::new()));
        let (line_tx, line_rx) = mpsc::channel();
        if let Some(stdout) = stdout {
            let later = Arc::clone(&later);
            // Reads the address line, then drains stdout so the child never blocks on it.
            std::thread::spawn(move || {
                let mut announced = false;
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match line.strip_prefix(prefix) {
                        Some(address) if !announced => {
                            announced = true;
                            let _ = line_tx.send(address.trim().to_owned());
                        }
                        _ => {
                            if let Ok(mut later) = later.lock() {
                                later.push(line);
                            }
                        }
                    }
                }
            });
        }
        let line = match line_rx.recv_timeout(timeout) {
            Ok(line) => line,
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                let reason = match error {
                    mpsc::RecvTimeoutError::Timeout => format!("timed out after {timeout:?}"),
                    mpsc::RecvTimeoutError::Disconnected => "it exited".to_owned(),
                };
                return Err(HarnessError::Startup {
                    reason,
                    log: std::fs::read_to_string(log).unwrap_or_default(),
                });
            }
        };
        let address = match line.parse() {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::Address(line));
            }
        };
        Ok(Self {
            child,
            stdin,
            address,
            line,
            later,
        })
    }

    /// The address it printed.
    pub fn address(&self) -> &RelayAddress {
        &self.address
    }

    /// The address line as printed (without the prefix).
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Lines it printed on stdout after the address line.
    pub fn later_lines(&self) -> Vec<String> {
        self.later.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Closes its standard input.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: StopSignal) -> Result<(), HarnessError> {
        let pid = rustix::process::Pid::from_child(&self.child);
        let signal = match signal {
            StopSignal::Term => rustix::process::Signal::TERM,
            StopSignal::Interrupt => rustix::process::Signal::INT,
        };
        rustix::process::kill_process(pid, signal)
            .map_err(|e| HarnessError::Io(std::io::Error::from(e)))
    }

    /// Waits up to `limit` for it to exit; `None` if it still runs.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Result<Option<ExitStatus>, HarnessError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    /// Sends `signal` and waits up to `limit` for the exit (killing it if it does not
    /// come, and failing).
    pub fn stop(
        &mut self,
        signal: StopSignal,
        limit: Duration,
    ) -> Result<ExitStatus, HarnessError> {
        self.signal(signal)?;
        match self.wait_for_exit(limit)? {
            Some(status) => Ok(status),
            None => {
                self.kill()?;
                Err(HarnessError::StopTimeout {
                    signal: signal.name(),
                    limit,
                })
            }
        }
    }

    /// Kills it with SIGKILL (if it still runs) and reaps it.
    pub fn kill(&mut self) -> Result<(), HarnessError> {
        if self.is_running() {
            self.child.kill()?;
        }
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for AnnouncedChild {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
