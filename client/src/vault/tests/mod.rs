//! Vault tests. They run with the test-only Argon2id cost (`KdfCost::TestOnly`), which
//! exists only under `cfg(test)`; one test measures the real cost.

mod api;
mod compaction;
mod crash;
mod damage;
mod disk;
mod duress;
mod format;
mod migration;
mod model;
mod wipe;

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

/// Runs `open` until it is not `Busy`, a bounded number of times: a child process that
/// another test spawns (tests/crash.rs) inherits, between its fork and its exec, every
/// file this process has open, including a key-slot file that a test has just closed,
/// and with it that file's lock for that instant. (Tests that expect `Busy` call the
/// vault directly.)
pub(super) fn retry_busy<T>(
    mut open: impl FnMut() -> Result<T, OpenError>,
) -> Result<T, OpenError> {
    for _ in 0..100 {
        match open() {
            Err(OpenError::Busy) => std::thread::sleep(std::time::Duration::from_millis(10)),
            other => return other,
        }
    }
    open()
}

/// Opens with the test-only cost, `Busy` retried (see [`retry_busy`]).
pub(super) fn open_with(dir: &Path, credentials: &Credentials) -> Result<Vault, OpenError> {
    retry_busy(|| Vault::open_with_cost(dir, credentials, KdfCost::TestOnly))
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

/// Files in a vault's directory: the key-slot file, the segment, and the reserve (or,
/// with a duress passphrase set, the decoy's segment).
pub(super) const FILE_COUNT: usize = 3;

/// The current segment's name, as the test passphrase finds it in `keyslot` (the
/// key-slot file's bytes). Reads only: works while the vault is open.
pub(super) fn segment_name_in(keyslot: &[u8]) -> String {
    segment_name_with(keyslot, &creds(PASSPHRASE)).expect("the test passphrase opens no slot")
}

/// The current segment's name of the profile `credentials` open in `keyslot`.
pub(super) fn segment_name_with(keyslot: &[u8], credentials: &Credentials) -> Option<String> {
    use super::format::{SALT_BLOCK_LEN, SLOT_COUNT, SLOT_LEN, name_key, segment_name};
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&keyslot[..32]);
    let kek = super::kdf::derive_kek(KdfCost::TestOnly, credentials, &salt).unwrap();
    let payload = (0..SLOT_COUNT)
        .filter_map(|i| {
            let start = SALT_BLOCK_LEN + i * SLOT_LEN;
            super::keyslot::try_position(&kek, &salt, i, &keyslot[start..start + SLOT_LEN])
        })
        .map(Result::unwrap)
        .max_by_key(|p| p.generation)?;
    Some(segment_name(&name_key(&payload.data_key), payload.epoch))
}

/// The current segment file of the vault in `dir` (the test passphrase's profile).
pub(super) fn segment_path(dir: &Path) -> PathBuf {
    let keyslot = std::fs::read(keyslot_path(dir)).unwrap();
    dir.join(segment_name_in(&keyslot))
}

/// The name of the key-slot file in `dir` (random per vault): the one vault file of the
/// key-slot size.
pub(super) fn keyslot_name(dir: &Path) -> String {
    let mut found = super::keyslot::candidates(dir).unwrap();
    assert_eq!(found.len(), 1, "one key-slot file");
    found.remove(0)
}

/// The path of the key-slot file in `dir`.
pub(super) fn keyslot_path(dir: &Path) -> PathBuf {
    dir.join(keyslot_name(dir))
}

/// Whether a file of a snapshot is the key-slot file (by its size, as the vault finds it).
pub(super) fn is_keyslot(file: &(String, Vec<u8>)) -> bool {
    file.1.len() == super::format::KEYSLOT_FILE_LEN
}

/// A snapshot without the key-slot file (which every successful open rewrites).
pub(super) fn data_files(files: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .filter(|file| !is_keyslot(file))
        .cloned()
        .collect()
}

pub(super) fn value(vault: &Vault, key: &str) -> Option<Vec<u8>> {
    vault.get(key).unwrap().map(|v| v.to_vec())
}
