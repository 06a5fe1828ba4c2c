//! The kit's one error type.

use std::time::Duration;

/// Why the kit could not do what a test asked.
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
    /// A process did not exit within its limit after being asked to stop.
    #[error("the process did not exit within {limit:?} after {signal}")]
    StopTimeout {
        /// The signal sent.
        signal: &'static str,
        /// The limit.
        limit: Duration,
    },
}
