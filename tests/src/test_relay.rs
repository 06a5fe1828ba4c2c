//! A relay process with its own temporary directory: what most end-to-end tests want.

use std::path::{Path, PathBuf};

use passage_testkit::{HarnessError, RelayProcess};
use passage_wire::RelayAddress;
use tempfile::TempDir;

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
