//! The panic wipe: no passphrase, no input, well under a second.

use std::io;
use std::path::Path;

use super::fsio;
use super::keyslot;
use super::store::{Vault, vault_file_names};

impl Vault {
    /// The panic wipe of the vault in `dir`, for a panic button: needs no passphrase.
    ///
    /// 1. The whole key-slot file (salt and every position: the real profile's, the
    ///    decoy's, any spare) is overwritten with random bytes in one write and synced.
    ///    From that moment no passphrase opens anything: every data key is gone, and
    ///    the data files are ciphertext under keys that no longer exist.
    /// 2. Every file the vault can have made (32 lower-case hex digits; nothing else in
    ///    the directory is touched) is removed, the key-slot file last, so that a wipe
    ///    cut short can be run again; the directory is synced.
    /// 3. The directory itself is removed if that leaves it empty (an empty directory
    ///    with a telling name is a trace too); a directory holding anything else stays.
    ///
    /// Segments are unlinked, not overwritten: overwriting megabytes would take seconds
    /// and buys nothing once their keys are gone. The cost is one 20 KiB write, two
    /// syncs and a few unlinks, whatever the vault's size. Works while another process
    /// has the vault open (it takes no lock), but that process still holds the keys in
    /// memory and should be stopped: prefer [`Vault::panic_wipe`] in the process that
    /// has it open. A directory without a key-slot file is left as it is (`Ok`), so a
    /// second wipe is harmless. On an error, every step is still attempted and the
    /// first error is returned.
    pub fn panic(dir: impl AsRef<Path>) -> io::Result<()> {
        let dir = dir.as_ref();
        let mut first_error: Option<io::Error> = None;
        let mut note = |result: io::Result<()>| {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        };
        // Every file of the key-slot size is shredded: the vault's (its name is random),
        // and any other that could be one.
        let keyslots = match keyslot::candidates(dir) {
            Ok(found) if found.is_empty() => {
                // Not a vault, or already wiped: only an empty directory is removed.
                let _ = std::fs::remove_dir(dir);
                return Ok(());
            }
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for name in &keyslots {
            match fsio::open_rw(&dir.join(name)) {
                Ok(file) => note(keyslot::shred_file(&file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => note(Err(e)),
            }
        }
        match vault_file_names(dir) {
            Ok(names) => {
                for name in names.iter().filter(|name| !keyslots.contains(name)) {
                    note(fsio::remove_if_present(&dir.join(name)).map(drop));
                }
            }
            Err(e) => note(Err(e)),
        }
        for name in &keyslots {
            note(fsio::remove_if_present(&dir.join(name)).map(drop));
        }
        note(fsio::sync_dir(dir));
        if std::fs::remove_dir(dir).is_ok() {
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            note(fsio::sync_dir(parent.unwrap_or(Path::new("."))));
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The panic wipe of this open vault: its keys are wiped from memory and the
    /// directory is wiped as by [`Vault::panic`] (the key-slot file is first shredded
    /// through the vault's own open file).
    pub fn panic_wipe(self) -> io::Result<()> {
        let dir = self.dir().to_path_buf();
        let shredded = self.keyslot().shred();
        drop(self);
        let wiped = Self::panic(&dir);
        shredded.and(wiped)
    }
}
