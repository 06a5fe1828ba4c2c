//! Vault tests. They run with the test-only Argon2id cost (`KdfCost::TestOnly`), which
//! exists only under `cfg(test)`; one test measures the real cost.

mod api;
mod compaction;
mod crash;
mod damage;
mod disk;
mod format;
mod model;

use std::path::{Path, PathBuf};

use super::kdf::KdfCost;
use super::{Credentials, OpenError, Vault};

/// A directory under the system's temporary directory, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new() -> Self {
        let name = format!(
            "vault-test-{}",
            super::format::hex(&super::fsio::random_array::<8>().unwrap())
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) const PASSPHRASE: &str = "correct horse battery staple";

pub(super) fn creds(passphrase: &str) -> Credentials {
    Credentials::new(passphrase)
}

pub(super) fn create(dir: &Path) -> Vault {
    Vault::create_with_cost(dir, &creds(PASSPHRASE), KdfCost::TestOnly).unwrap()
}

pub(super) fn open_with(dir: &Path, credentials: &Credentials) -> Result<Vault, OpenError> {
    Vault::open_with_cost(dir, credentials, KdfCost::TestOnly)
}

pub(super) fn open(dir: &Path) -> Vault {
    open_with(dir, &creds(PASSPHRASE)).unwrap()
}

/// Every file in `dir`: (name, bytes), sorted by name.
pub(super) fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().into_string().unwrap(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// The one segment file in `dir` (the file that is not the key-slot file).
pub(super) fn segment_path(dir: &Path) -> PathBuf {
    let files: Vec<String> = snapshot(dir)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name != super::format::KEYSLOT_FILE_NAME)
        .collect();
    assert_eq!(files.len(), 1, "expected one segment file, found {files:?}");
    dir.join(&files[0])
}

pub(super) fn value(vault: &Vault, key: &str) -> Option<Vec<u8>> {
    vault.get(key).unwrap().map(|v| v.to_vec())
}
