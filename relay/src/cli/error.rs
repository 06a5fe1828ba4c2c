//! How failures become the one line an operator reads: what went wrong and what to do.

use std::path::Path;

use anyhow::anyhow;
use passage_relay::store::OpenError;

/// An error whose message already says what to do (our own types), as anyhow's.
pub(super) fn plain(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

/// An error and its sources on one line.
pub(super) fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Why the store could not be opened, and what to do about it.
pub(super) fn store_error(e: &OpenError, path: &Path, dir: &Path) -> anyhow::Error {
    let path = path.display();
    match e {
        OpenError::InUse => anyhow!(
            "the store {path} is in use by another process — is a relay already running with --data {}? Stop it, or choose another --data DIR",
            dir.display()
        ),
        OpenError::Create(io) => anyhow!(
            "cannot create the store {path}: {io} — check the data directory's permissions and free disk space"
        ),
        OpenError::UnknownSchema { found } => anyhow!(
            "the store {path} was written by another version of passage-relay (layout {found}) — run that version, or move the file away to start with an empty store"
        ),
        other => anyhow!(
            "cannot open the store {path}: {} — the file may be damaged; restore it from a backup, or move it away to start with an empty store (undelivered messages are then lost)",
            causes(other)
        ),
    }
}

/// The kind of a failure to write a status file, for the log: short, without the path
/// (the operator knows the data directory; the log line stays the same on every relay).
pub(super) fn kind_only(e: &passage_relay::datadir::DataDirError) -> String {
    match std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()) {
        Some(io) => io.kind().to_string(),
        None => "invalid data".to_owned(),
    }
}
