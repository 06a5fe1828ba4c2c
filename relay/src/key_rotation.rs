//! Rotating the relay's key: `passage-relay rotate-key` makes a new identity and keeps
//! the old key for an overlap; `serve` presents the new key endorsed by the old one
//! until the overlap ends (clients with the old pin verify the endorsement and learn the
//! new pin, see `passage_transport`'s rotation module), then destroys the old key.
//!
//! ```text
//!  DIR/identity.der          the current (new) key: its pin is in the address now
//!  DIR/identity.retired.der  the old key, only during the overlap (mode 0600)
//!  DIR/rotation              "until <unix seconds>": the end of the overlap
//!
//!  rotate-key:  retired ← identity; rotation ← now + overlap; identity ← new key
//!  serve:       overlap running → new key + endorsement signed by the old key (the old
//!               key is used once, at start, and not kept in memory);
//!               overlap over    → the retired key is overwritten, synced and removed
//! ```
//!
//! Each step writes a whole file (temporary file, fsync, rename): a crash leaves either
//! the old state or the new one. A crash between the first two steps of `rotate-key`
//! leaves a retired key equal to the current one, which endorses nothing new; running
//! `rotate-key` again then says a rotation is in progress until its end.

use std::fs::OpenOptions;
use std::io::{self, Read as _, Write as _};
use std::path::PathBuf;

use passage_transport::RelayIdentity;
use zeroize::Zeroizing;

use crate::datadir::{DataDir, DataDirError, IDENTITY_FILE, MAX_IDENTITY_LEN};

/// The old key during an overlap.
pub const RETIRED_IDENTITY_FILE: &str = "identity.retired.der";

/// The end of the overlap.
pub const ROTATION_FILE: &str = "rotation";

/// The overlap unless told otherwise (30 days): long enough for people whose phone is
/// off for weeks (the retention is 21 days by default) to come back and be told.
pub const DEFAULT_OVERLAP_DAYS: u64 = 30;

/// The longest overlap (365 days; clients refuse an endorsement valid for longer).
pub const MAX_OVERLAP_DAYS: u64 = 365;

/// Why a rotation step failed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// A rotation's overlap is still running.
    #[error(
        "a key rotation is already under way (its overlap ends at unix time {until}); wait until then — the relay destroys the old key at that time — and rotate again"
    )]
    InProgress {
        /// The end of the running overlap, unix seconds.
        until: u64,
    },
    /// The data directory has no key yet.
    #[error(
        "{} has no relay key yet — start the relay once (passage-relay serve) before rotating its key",
        .path.display()
    )]
    NoKey {
        /// The data directory.
        path: PathBuf,
    },
    /// The rotation file does not say `until <unix seconds>`.
    #[error(
        "{} is damaged — if no rotation is under way, remove it and {RETIRED_IDENTITY_FILE}",
        .path.display()
    )]
    BadRotationFile {
        /// The file.
        path: PathBuf,
    },
    /// The endorsement could not be made.
    #[error("could not sign the new key with the old one: {0}")]
    Endorse(#[source] passage_transport::IdentityError),
    /// Reading or writing the data directory failed.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
}

/// Makes a new key with an overlap of `overlap_secs` from `now`; returns the new key
/// and the end of the overlap. The running relay goes on with the old key until it is
/// restarted.
pub fn rotate(
    dir: &DataDir,
    overlap_secs: u64,
    now: u64,
) -> Result<(RelayIdentity, u64), RotationError> {
    if let Some(until) = read_until(dir)? {
        if now < until {
            return Err(RotationError::InProgress { until });
        }
        // An overlap that ended while no relay ran: finish it first.
        destroy_retired(dir)?;
    }
    let Some(old) = read_key(dir, IDENTITY_FILE)? else {
        return Err(RotationError::NoKey {
            path: dir.path().to_path_buf(),
        });
    };
    let until = now.saturating_add(overlap_secs);
    let new = RelayIdentity::generate().map_err(|source| DataDirError::Generate { source })?;
    dir.write_atomic(RETIRED_IDENTITY_FILE, &old, true)?;
    dir.write_atomic(ROTATION_FILE, format!("until {until}\n").as_bytes(), true)?;
    dir.write_atomic(IDENTITY_FILE, &new.to_pkcs8_der(), true)?;
    Ok((new, until))
}

/// The identity `serve` presents at `now`: the current key, endorsed by the retired one
/// while the overlap runs (with its end); after the overlap, the retired key is
/// destroyed first. The bool of the identity is true if the key was created now.
pub fn serving_identity(
    dir: &DataDir,
    now: u64,
) -> Result<(RelayIdentity, bool, Overlap), RotationError> {
    let (identity, created) = dir.load_or_create_identity()?;
    let Some(until) = read_until(dir)? else {
        return Ok((identity, created, Overlap::None));
    };
    if now >= until {
        destroy_retired(dir)?;
        return Ok((identity, created, Overlap::Ended));
    }
    let Some(old) = read_key(dir, RETIRED_IDENTITY_FILE)? else {
        // The old key is gone already: nothing to endorse with.
        remove_if_present(dir.path().join(ROTATION_FILE))?;
        return Ok((identity, created, Overlap::Ended));
    };
    let old = RelayIdentity::from_pkcs8_der(&old).map_err(|source| DataDirError::BadIdentity {
        path: dir.path().join(RETIRED_IDENTITY_FILE),
        source: Some(source),
    })?;
    let identity = identity
        .endorsed_by(&old, until)
        .map_err(RotationError::Endorse)?;
    Ok((identity, created, Overlap::Running { until }))
}

/// Where a rotation stands when `serve` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// No rotation.
    None,
    /// Clients with the old pin are moved to the new one until then (unix seconds).
    Running {
        /// The end of the overlap.
        until: u64,
    },
    /// An overlap ended: the old key was destroyed now.
    Ended,
}

/// Destroys the retired key (overwritten with zeros and synced before it is removed)
/// and the rotation file. Returns whether there was a key to destroy.
pub fn destroy_retired(dir: &DataDir) -> Result<bool, RotationError> {
    let path = dir.path().join(RETIRED_IDENTITY_FILE);
    let write_err = |source| DataDirError::Write {
        path: path.clone(),
        source,
    };
    let existed = match OpenOptions::new().write(true).open(&path) {
        Ok(mut file) => {
            let len = file.metadata().map_err(write_err)?.len();
            let zeros = vec![0u8; usize::try_from(len.min(MAX_IDENTITY_LEN)).unwrap_or(0)];
            file.write_all(&zeros).map_err(write_err)?;
            file.sync_all().map_err(write_err)?;
            drop(file);
            std::fs::remove_file(&path).map_err(write_err)?;
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(write_err(e).into()),
    };
    remove_if_present(dir.path().join(ROTATION_FILE))?;
    dir.sync()?;
    Ok(existed)
}

fn remove_if_present(path: PathBuf) -> Result<(), RotationError> {
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DataDirError::Write { path, source }.into()),
    }
}

/// The end of the overlap, if a rotation file is there.
pub fn read_until(dir: &DataDir) -> Result<Option<u64>, RotationError> {
    let path = dir.path().join(ROTATION_FILE);
    let mut text = String::new();
    match std::fs::File::open(&path) {
        Ok(file) => {
            file.take(64)
                .read_to_string(&mut text)
                .map_err(|source| DataDirError::Read {
                    path: path.clone(),
                    source,
                })?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(DataDirError::Read { path, source }.into()),
    }
    text.trim()
        .strip_prefix("until ")
        .and_then(|n| n.parse().ok())
        .map(Some)
        .ok_or(RotationError::BadRotationFile { path })
}

/// A key file's bytes (checked private), `None` if it is not there.
fn read_key(dir: &DataDir, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, RotationError> {
    Ok(dir.read_private(name, MAX_IDENTITY_LEN)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_rotation_runs_its_overlap_then_the_old_key_is_destroyed() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::create(&temp.path().join("data")).unwrap();
        assert!(matches!(
            rotate(&dir, 100, 1_000),
            Err(RotationError::NoKey { .. })
        ));
        let (old, _) = dir.load_or_create_identity().unwrap();
        let (new, until) = rotate(&dir, 100, 1_000).unwrap();
        assert_eq!(until, 1_100);
        assert_ne!(new.pin(), old.pin());
        assert!(matches!(
            rotate(&dir, 100, 1_099),
            Err(RotationError::InProgress { until: 1_100 })
        ));
        // During the overlap: the new key, endorsed.
        let (serving, created, overlap) = serving_identity(&dir, 1_050).unwrap();
        assert!(!created && serving.is_endorsed());
        assert_eq!(serving.pin(), new.pin());
        assert_eq!(overlap, Overlap::Running { until: 1_100 });
        // After it: the old key is gone, the new one served plain.
        let (serving, _, overlap) = serving_identity(&dir, 1_100).unwrap();
        assert_eq!(overlap, Overlap::Ended);
        assert!(!serving.is_endorsed());
        assert_eq!(serving.pin(), new.pin());
        assert!(!dir.path().join(RETIRED_IDENTITY_FILE).exists());
        assert!(!dir.path().join(ROTATION_FILE).exists());
        assert!(!destroy_retired(&dir).unwrap());
        let (_, _, overlap) = serving_identity(&dir, 1_200).unwrap();
        assert_eq!(overlap, Overlap::None);
        // An overlap that ended while nothing ran is finished by the next rotation.
        rotate(&dir, 10, 2_000).unwrap();
        let (third, _) = rotate(&dir, 10, 2_010).unwrap();
        assert_ne!(third.pin(), new.pin());
    }

    #[test]
    fn a_damaged_rotation_file_says_what_to_do() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::create(&temp.path().join("data")).unwrap();
        dir.load_or_create_identity().unwrap();
        std::fs::write(dir.path().join(ROTATION_FILE), "soon\n").unwrap();
        let err = serving_identity(&dir, 1).unwrap_err();
        assert!(
            matches!(err, RotationError::BadRotationFile { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("remove it"), "{err}");
    }
}
