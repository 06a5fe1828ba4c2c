//! The relay's data directory: its key, its store, and two small status files that
//! other commands read while the relay runs.
//!
//! ```text
//!  DIR/              mode 0700, created so (never chmod-ed afterwards)
//!    identity.der    the relay's private key, PKCS#8 DER; its pin is in the address
//!    identity.retired.der, rotation   during a key rotation only (see key_rotation)
//!    store.redb      queues and waiting messages (created by store::RedbStore, 0600)
//!    address         `passage://<pin>@host:port`, written at every start
//!    stats.json      counts, rewritten every few seconds while `serve` runs
//! ```
//!
//! Every file is created with mode 0600 (`O_CREAT` with the mode, not a later
//! `chmod`). The key, `address` and `stats.json` are written to `NAME.tmp` and renamed
//! over `NAME`, so a reader never sees half a file and a crash never leaves half a key.
//! A directory or key that other users can read is refused, with the `chmod` that fixes
//! it: `serve` does not silently run with a key someone else may have copied.
//!
//! # Quick start
//!
//! ```no_run
//! use passage_relay::datadir::DataDir;
//! let dir = DataDir::create("./passage-relay-data".as_ref())?;
//! let (identity, _created) = dir.load_or_create_identity()?;
//! println!("pin is stable across starts: {:?}", identity.pin());
//! # Ok::<(), passage_relay::datadir::DataDirError>(())
//! ```

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use passage_transport::{IdentityError, RelayIdentity};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::metrics::Metrics;

/// The relay's private key (PKCS#8 DER).
pub const IDENTITY_FILE: &str = "identity.der";
/// The store (see [`crate::store::RedbStore`]).
pub const STORE_FILE: &str = "store.redb";
/// The relay's address, one line.
pub const ADDRESS_FILE: &str = "address";
/// The latest counts, written by `serve` (see [`StatsSnapshot`]).
pub const STATS_FILE: &str = "stats.json";

/// Mode of the data directory: its owner only.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in it: its owner only.
pub const FILE_MODE: u32 = 0o600;

/// Largest key file read: an Ed25519 PKCS#8 key is under 100 bytes.
pub const MAX_IDENTITY_LEN: u64 = 4096;
/// Largest address or stats file read.
pub const MAX_STATUS_FILE_LEN: u64 = 64 * 1024;

/// Version of the stats file's layout, written into it.
pub const STATS_FORMAT: u32 = 1;

/// An open data directory. Holds only its path; see the module doc for its layout.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Opens the directory, creating it (and missing parents) with mode 0700. Refuses a
    /// path that is not a directory, or a directory that other users can access.
    pub fn create(path: &Path) -> Result<Self, DataDirError> {
        match DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(path)
        {
            Ok(()) => {}
            Err(source) => {
                return Err(if path.exists() && !path.is_dir() {
                    DataDirError::NotADirectory {
                        path: path.to_path_buf(),
                    }
                } else {
                    DataDirError::Create {
                        path: path.to_path_buf(),
                        source,
                    }
                });
            }
        }
        Self::open(path)
    }

    /// Opens a directory that must already exist (for `address` and `stats`).
    pub fn open(path: &Path) -> Result<Self, DataDirError> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DataDirError::Missing {
                    path: path.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(DataDirError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        if !meta.is_dir() {
            return Err(DataDirError::NotADirectory {
                path: path.to_path_buf(),
            });
        }
        check_private(path, meta.mode(), true)?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the store lives.
    pub fn store_path(&self) -> PathBuf {
        self.path.join(STORE_FILE)
    }

    /// Checks that the store file, if it exists, is not readable by others: it holds
    /// every queue's relay secret (see [`crate::store`]).
    pub fn check_store_file(&self) -> Result<(), DataDirError> {
        let path = self.store_path();
        match std::fs::metadata(&path) {
            Ok(meta) => check_private(&path, meta.mode(), false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(DataDirError::Read { path, source }),
        }
    }

    /// Whether the store file exists.
    pub fn has_store(&self) -> bool {
        self.store_path().is_file()
    }

    /// Loads the relay's key, or creates and saves one on first start. The bool is
    /// true if the key is new (the relay has a new address then).
    pub fn load_or_create_identity(&self) -> Result<(RelayIdentity, bool), DataDirError> {
        match self.read_private(IDENTITY_FILE, MAX_IDENTITY_LEN)? {
            Some(der) => {
                let identity = RelayIdentity::from_pkcs8_der(&der).map_err(|source| {
                    DataDirError::BadIdentity {
                        path: self.path.join(IDENTITY_FILE),
                        source: Some(source),
                    }
                })?;
                Ok((identity, false))
            }
            None => {
                let identity = RelayIdentity::generate()
                    .map_err(|source| DataDirError::Generate { source })?;
                self.write_atomic(IDENTITY_FILE, &identity.to_pkcs8_der(), true)?;
                Ok((identity, true))
            }
        }
    }

    /// Saves the address line (durably: `address` must work after a crash too).
    pub fn write_address(&self, address: &str) -> Result<(), DataDirError> {
        self.write_atomic(ADDRESS_FILE, format!("{address}\n").as_bytes(), true)
    }

    /// The saved address line; `None` if the relay never started with this directory.
    pub fn read_address(&self) -> Result<Option<String>, DataDirError> {
        Ok(self
            .read_status(ADDRESS_FILE)?
            .map(|text| text.trim().to_owned()))
    }

    /// Replaces the stats file. Not fsync-ed: it is rewritten every few seconds, and a
    /// stale or missing one after a crash only means old counts.
    pub fn write_stats(&self, stats: &StatsSnapshot) -> Result<(), DataDirError> {
        let mut json = serde_json::to_vec(stats).map_err(|e| DataDirError::Write {
            path: self.path.join(STATS_FILE),
            source: io::Error::other(e),
        })?;
        json.push(b'\n');
        self.write_atomic(STATS_FILE, &json, false)
    }

    /// The stats file; `None` if there is none.
    pub fn read_stats(&self) -> Result<Option<StatsSnapshot>, DataDirError> {
        let Some(text) = self.read_status(STATS_FILE)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| DataDirError::BadStats {
                path: self.path.join(STATS_FILE),
                reason: e.to_string(),
            })
    }

    fn read_status(&self, name: &str) -> Result<Option<String>, DataDirError> {
        let path = self.path.join(name);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(DataDirError::Read { path, source }),
        };
        let mut text = String::new();
        file.take(MAX_STATUS_FILE_LEN)
            .read_to_string(&mut text)
            .map_err(|source| DataDirError::Read { path, source })?;
        Ok(Some(text))
    }

    /// A private file's bytes (at most `max`), checked not readable by others; `None`
    /// if it is not there. Zeroized when dropped: it may be a key.
    pub(crate) fn read_private(
        &self,
        name: &str,
        max: u64,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, DataDirError> {
        let path = self.path.join(name);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(DataDirError::Read { path, source }),
        };
        let meta = file.metadata().map_err(|source| DataDirError::Read {
            path: path.clone(),
            source,
        })?;
        check_private(&path, meta.mode(), false)?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| DataDirError::Read {
                path: path.clone(),
                source,
            })?;
        if bytes.len() as u64 > max {
            return Err(DataDirError::BadIdentity { path, source: None });
        }
        Ok(Some(bytes))
    }

    /// Syncs the directory itself (after files were renamed or removed in it).
    pub(crate) fn sync(&self) -> Result<(), DataDirError> {
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(|source| DataDirError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Writes `NAME.tmp` (created 0600) and renames it over `NAME`. With `durable`,
    /// the file and then the directory are fsync-ed.
    pub(crate) fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        durable: bool,
    ) -> Result<(), DataDirError> {
        let path = self.path.join(name);
        let tmp = self.path.join(format!("{name}.tmp"));
        let write_err = |source| DataDirError::Write {
            path: path.clone(),
            source,
        };
        // A leftover from a crash may have any mode; start afresh so the mode holds.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(e)),
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .map_err(write_err)?;
        file.write_all(bytes).map_err(write_err)?;
        if durable {
            file.sync_all().map_err(write_err)?;
        }
        drop(file);
        std::fs::rename(&tmp, &path).map_err(write_err)?;
        if durable {
            File::open(&self.path)
                .and_then(|d| d.sync_all())
                .map_err(write_err)?;
        }
        Ok(())
    }
}

/// What the stats file holds: counts only (no id, key or address), and when they were
/// taken. `passage-relay stats --json` prints it as one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// [`STATS_FORMAT`].
    pub format: u32,
    /// Where the counts come from: `"relay"` (written by a running `serve`), or
    /// `"store"` (read from the store by `stats` while no relay ran).
    pub source: String,
    /// Whether the relay was running when this was written (false in the file `serve`
    /// writes as it stops).
    pub running: bool,
    /// When this was taken, unix seconds.
    pub written_at: u64,
    /// When the relay started, unix seconds (0 if unknown).
    pub started_at: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections refused at `max_connections` since start.
    pub connections_refused: u64,
    /// Connections the relay closed for a violation or timeout since start.
    pub connections_cut: u64,
    /// Queues in the store.
    pub queues: u64,
    /// Queues created since start.
    pub queues_created: u64,
    /// Queues deleted since start.
    pub queues_deleted: u64,
    /// Undelivered messages in the store.
    pub messages: u64,
    /// Messages stored since start.
    pub messages_stored: u64,
    /// Messages delivered since start.
    pub messages_delivered: u64,
    /// Messages acknowledged (deleted) since start.
    pub messages_acked: u64,
    /// Messages deleted by retention since start.
    pub messages_expired: u64,
    /// Commands handled since start.
    pub commands: u64,
    /// `ERR` replies since start, by code (`AUTH`, `QUOTA`, …), every code listed.
    pub errors: BTreeMap<String, u64>,
    /// Size of the store file in bytes (a high-water mark).
    pub store_bytes: u64,
    /// Store commits since start (each one transaction and one fsync). Absent from files
    /// written before these counters existed: read as 0.
    #[serde(default)]
    pub store_commits: u64,
    /// Writes those commits held (over `store_commits`: how well writes batch).
    #[serde(default)]
    pub store_committed_ops: u64,
    /// Time spent committing since start, in microseconds (close to the time since
    /// start: the disk is what limits the relay).
    #[serde(default)]
    pub store_commit_micros: u64,
    /// Rows those commits wrote: a message stored then deleted is two, one acknowledged
    /// before it had to be written none (read as 0 from older files).
    #[serde(default)]
    pub store_written_rows: u64,
}

impl StatsSnapshot {
    /// The counts of a running relay.
    pub fn from_metrics(
        metrics: &Metrics,
        started_at: u64,
        written_at: u64,
        running: bool,
    ) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self {
            format: STATS_FORMAT,
            source: "relay".to_owned(),
            running,
            written_at,
            started_at,
            connections_open: metrics.connections_open.load(Relaxed),
            connections_total: metrics.connections_total.load(Relaxed),
            connections_refused: metrics.connections_refused.load(Relaxed),
            connections_cut: metrics.connections_cut.load(Relaxed),
            queues: metrics.stored_queues.load(Relaxed),
            queues_created: metrics.queues_created.load(Relaxed),
            queues_deleted: metrics.queues_deleted.load(Relaxed),
            messages: metrics.stored_messages.load(Relaxed),
            messages_stored: metrics.messages_stored.load(Relaxed),
            messages_delivered: metrics.messages_delivered.load(Relaxed),
            messages_acked: metrics.messages_acked.load(Relaxed),
            messages_expired: metrics.messages_expired.load(Relaxed),
            commands: metrics.commands.load(Relaxed),
            errors: metrics
                .error_counts()
                .map(|(name, count)| (name.to_owned(), count))
                .collect(),
            store_bytes: metrics.store_bytes.load(Relaxed),
            store_commits: metrics.commits.commits.load(Relaxed),
            store_committed_ops: metrics.commits.ops.load(Relaxed),
            store_commit_micros: metrics.commits.busy_micros.load(Relaxed),
            store_written_rows: metrics.commits.rows.load(Relaxed),
        }
    }

    /// Counts read from the store itself while no relay runs: what is stored, no
    /// activity counters.
    pub fn from_store(stats: crate::store::StoreStats, written_at: u64) -> Self {
        Self {
            source: "store".to_owned(),
            queues: stats.queues,
            messages: stats.messages,
            store_bytes: stats.bytes_on_disk,
            ..Self::from_metrics(&Metrics::default(), 0, written_at, false)
        }
    }
}

/// Why the data directory or a file in it could not be used. Each message names the
/// path and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// The directory could not be created.
    #[error("cannot create data directory {}: {source} — choose another --data DIR", .path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The directory does not exist (for commands that do not create it).
    #[error(
        "data directory {} does not exist — pass the --data DIR that `passage-relay serve` uses (default ./passage-relay-data)",
        .path.display()
    )]
    Missing {
        /// The directory.
        path: PathBuf,
    },
    /// The path is a file, not a directory.
    #[error("{} is not a directory — choose another --data DIR", .path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Other users may access the directory or file.
    #[error(
        "{} can be accessed by other users (mode {mode:03o}) — run `chmod {fix:o} {}` and start again",
        .path.display(), .path.display()
    )]
    NotPrivate {
        /// The directory or file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The mode to set.
        fix: u32,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source} — check its permissions (run as the user that runs the relay)", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source} — check free disk space and the data directory's permissions", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The key file does not hold a key.
    #[error(
        "{} does not hold a valid relay key — restore it from a backup (deleting it gives the relay a new address, which every client must then be given again)",
        .path.display()
    )]
    BadIdentity {
        /// The file.
        path: PathBuf,
        /// The parser's error, if the file was not too long.
        #[source]
        source: Option<IdentityError>,
    },
    /// A new key could not be generated.
    #[error("cannot generate the relay key: {source}")]
    Generate {
        /// Why.
        source: IdentityError,
    },
    /// The stats file is not what `serve` writes.
    #[error("{} is damaged ({reason}) — a running relay rewrites it within seconds; otherwise delete it", .path.display())]
    BadStats {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
}

fn check_private(path: &Path, mode: u32, is_dir: bool) -> Result<(), DataDirError> {
    let mode = mode & 0o7777;
    if mode & 0o077 == 0 {
        Ok(())
    } else {
        Err(DataDirError::NotPrivate {
            path: path.to_path_buf(),
            mode,
            fix: if is_dir { DIR_MODE } else { FILE_MODE },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_a_private_directory_and_key() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("nested").join("data");
        let dir = DataDir::create(&path).unwrap();
        assert_eq!(mode(&path), 0o700);
        let (first, created) = dir.load_or_create_identity().unwrap();
        assert!(created);
        let key = path.join(IDENTITY_FILE);
        assert_eq!(mode(&key), 0o600);
        assert!(!path.join("identity.der.tmp").exists());

        // A second open, as on the next start, loads the same key.
        let again = DataDir::create(&path).unwrap();
        let (second, created) = again.load_or_create_identity().unwrap();
        assert!(!created);
        assert_eq!(first.pin(), second.pin());
        assert_eq!(*first.to_pkcs8_der(), *second.to_pkcs8_der());
    }

    #[test]
    fn status_files_are_private_and_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::create(&tmp.path().join("d")).unwrap();
        assert_eq!(dir.read_address().unwrap(), None);
        assert_eq!(dir.read_stats().unwrap(), None);
        dir.write_address("passage://x@127.0.0.1:1").unwrap();
        assert_eq!(
            dir.read_address().unwrap().as_deref(),
            Some("passage://x@127.0.0.1:1")
        );
        assert_eq!(mode(&dir.path().join(ADDRESS_FILE)), 0o600);

        let metrics = Metrics::default();
        Metrics::inc(&metrics.messages_stored);
        metrics.error(passage_wire::ErrorCode::RateLimit);
        let snapshot = StatsSnapshot::from_metrics(&metrics, 10, 20, true);
        dir.write_stats(&snapshot).unwrap();
        assert_eq!(dir.read_stats().unwrap(), Some(snapshot.clone()));
        assert_eq!(mode(&dir.path().join(STATS_FILE)), 0o600);
        assert_eq!(snapshot.messages_stored, 1);
        assert_eq!(snapshot.errors.get("RATE_LIMIT"), Some(&1));
        assert_eq!(snapshot.errors.len(), crate::metrics::ERROR_CODES.len());

        // A leftover temporary file with a loose mode does not leak into the result.
        let tmp_file = dir.path().join("stats.json.tmp");
        std::fs::write(&tmp_file, "junk").unwrap();
        std::fs::set_permissions(&tmp_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        dir.write_stats(&snapshot).unwrap();
        assert_eq!(mode(&dir.path().join(STATS_FILE)), 0o600);

        std::fs::write(dir.path().join(STATS_FILE), "{").unwrap();
        assert!(matches!(
            dir.read_stats().unwrap_err(),
            DataDirError::BadStats { .. }
        ));
    }

    #[test]
    fn refuses_open_directories_and_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("d");
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = DataDir::create(&path).unwrap_err();
        assert!(
            matches!(err, DataDirError::NotPrivate { mode: 0o755, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 700"), "{err}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        let dir = DataDir::create(&path).unwrap();
        dir.load_or_create_identity().unwrap();
        let key = path.join(IDENTITY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = dir.load_or_create_identity().unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn refuses_a_damaged_key_and_a_file_as_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::create(&tmp.path().join("d")).unwrap();
        let key = dir.path().join(IDENTITY_FILE);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        file.write_all(b"not a key").unwrap();
        let err = dir.load_or_create_identity().unwrap_err();
        assert!(matches!(err, DataDirError::BadIdentity { .. }), "{err}");
        // Not replaced: a damaged key needs the operator, not a silent new address.
        assert_eq!(std::fs::read(&key).unwrap(), b"not a key");

        let err = DataDir::create(&key).unwrap_err();
        assert!(matches!(err, DataDirError::NotADirectory { .. }), "{err}");
        let err = DataDir::open(&tmp.path().join("missing")).unwrap_err();
        assert!(matches!(err, DataDirError::Missing { .. }), "{err}");
    }
}
