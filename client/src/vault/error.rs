//! One error type per vault operation. None of them carries a passphrase, a key, a
//! vault key (an application name) or a value: only what went wrong and what to do.

use super::kdf::ARGON2_MEMORY_MIB;

/// [`Vault::create`](super::Vault::create) failed; nothing usable was left behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The directory already holds a vault (its key-slot file).
    #[error("a vault already exists in this directory: open it, or choose another directory")]
    AlreadyExists,
    /// Argon2id could not get its memory.
    #[error(
        "the key derivation could not get its {ARGON2_MEMORY_MIB} MiB of memory: close other apps and try again"
    )]
    OutOfMemory,
    /// The file system refused a read or a write.
    #[error("could not write the vault: {0}")]
    Io(#[from] std::io::Error),
}

/// [`Vault::open`](super::Vault::open) failed. Every variant but [`OpenError::Corrupted`]
/// leaves the directory exactly as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The directory has no key-slot file: no vault was ever created here.
    #[error("no vault in this directory: check the path, or create one")]
    NoVault,
    /// No key slot opened with these credentials. The vault cannot tell a wrong
    /// passphrase from a key-slot file that is not one: both are random bytes to it.
    #[error(
        "wrong passphrase, or not a vault: check the passphrase (and the device, if one is paired)"
    )]
    WrongPassphrase,
    /// Another process has the vault open.
    #[error("the vault is open in another process: close it there first")]
    Busy,
    /// A committed record fails its integrity check while records after it are intact:
    /// the disk or someone changed the data. Nothing was changed on disk.
    #[error(
        "the vault's data is damaged (a committed record fails its integrity check): keep a copy of the directory before trying anything else"
    )]
    Corrupted,
    /// [`Vault::open_decoy`](super::Vault::open_decoy): the credentials opened a
    /// profile that has no decoy (no duress passphrase was set with it).
    #[error("this profile has no decoy: set a duress passphrase first")]
    NoDecoy,
    /// The key slot opened but was written by a newer format version.
    #[error("the vault was written by a newer version of this program: update it")]
    UnsupportedVersion,
    /// Argon2id could not get its memory.
    #[error(
        "the key derivation could not get its {ARGON2_MEMORY_MIB} MiB of memory: close other apps and try again"
    )]
    OutOfMemory,
    /// The file system refused a read or a write.
    #[error("could not read the vault: {0}")]
    Io(#[from] std::io::Error),
}

/// A read ([`Vault::get`](super::Vault::get)) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The record holding the value no longer passes its integrity check: the file
    /// changed under the open vault.
    #[error("the vault's data changed on disk while it was open: close and reopen it")]
    Corrupted,
    /// The file system refused the read.
    #[error("could not read the vault: {0}")]
    Io(#[from] std::io::Error),
}

/// A write (put, delete, commit, compaction) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A key is longer than [`MAX_KEY_LEN`](super::MAX_KEY_LEN).
    #[error("a vault key is {len} bytes long; the limit is {max}")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A transaction's encoding is larger than
    /// [`MAX_TRANSACTION_LEN`](super::MAX_TRANSACTION_LEN): split it, or store large
    /// values in pieces.
    #[error("a transaction is {len} bytes long; the limit is {max}: split it")]
    TransactionTooLarge {
        /// The transaction's encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier write failed in a way that leaves the disk's state uncertain (an
    /// fsync error); the vault refuses further writes. Sticky.
    #[error("an earlier write failed: close the vault and open it again")]
    Poisoned,
    /// The vault was wiped (or its directory replaced) while it was open: nothing more
    /// is written, so that a running client leaves no new file behind a panic wipe.
    /// Sticky.
    #[error("the profile was wiped while open; nothing more is written")]
    Gone,
    /// The file system refused a write or an fsync. After a failed commit the vault is
    /// poisoned; a compaction that fails before its key-slot step leaves it as it was.
    #[error("could not write the vault: {0}")]
    Io(#[from] std::io::Error),
}

/// [`Vault::set_duress`](super::Vault::set_duress) failed. Unless the error is
/// [`Io`](Self::Io), nothing was changed: the old duress passphrase (if any) still
/// opens the old decoy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetDuressError {
    /// The duress credentials are the profile's own: they would open it, not a decoy.
    #[error("the duress passphrase must differ from the passphrase: nothing was changed")]
    SameAsPassphrase,
    /// The vault was opened with [`Vault::open_decoy`](super::Vault::open_decoy): a
    /// decoy has no decoy of its own. Set the duress passphrase on the real profile.
    ///
    /// Only the owner gets this, holding the real credentials, before any duress
    /// switch. The duress switch stores the decoy as an ordinary profile. After that,
    /// no open returns the decoy as a decoy (the real credentials open nothing), so
    /// someone holding the switched-to profile cannot cause this error.
    #[error("this is the decoy profile: set the duress passphrase from the real one")]
    OpenedAsDecoy,
    /// Argon2id could not get its memory.
    #[error(
        "the key derivation could not get its {ARGON2_MEMORY_MIB} MiB of memory: close other apps and try again"
    )]
    OutOfMemory,
    /// An earlier write failed; reopen the vault first.
    #[error("an earlier write failed: close the vault and open it again")]
    Poisoned,
    /// The file system refused a write. The vault is poisoned if the key slot's state
    /// is uncertain; reopen it and set the duress passphrase again.
    #[error("could not write the decoy profile: {0}")]
    Io(#[from] std::io::Error),
}

/// [`Vault::change_passphrase`](super::Vault::change_passphrase) failed; the old
/// credentials still open the vault. (After an [`Io`](Self::Io) error the new ones may
/// too, from the spare position, until the next key-slot rewrite overwrites it.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChangePassphraseError {
    /// The current credentials given do not open this vault's key slot.
    #[error("the current passphrase is wrong: nothing was changed")]
    WrongPassphrase,
    /// Argon2id could not get its memory.
    #[error(
        "the key derivation could not get its {ARGON2_MEMORY_MIB} MiB of memory: close other apps and try again"
    )]
    OutOfMemory,
    /// An earlier write failed; reopen the vault first.
    #[error("an earlier write failed: close the vault and open it again")]
    Poisoned,
    /// The vault was opened with [`Vault::open_decoy`](super::Vault::open_decoy): the
    /// decoy's passphrase is the duress passphrase, changed with
    /// [`Vault::set_duress`](super::Vault::set_duress) from the real profile.
    ///
    /// Only the owner gets this, holding the real credentials, before any duress
    /// switch. After the switch the decoy is an ordinary profile: it changes its
    /// passphrase like any other, and someone holding it cannot cause this error.
    #[error("this is the decoy profile: change the duress passphrase from the real one")]
    OpenedAsDecoy,
    /// The new passphrase is the duress passphrase: it would open two profiles.
    #[error("the new passphrase is the duress passphrase: choose another")]
    SameAsDuress,
    /// The file system refused a write.
    #[error("could not write the key slot: {0}")]
    Io(#[from] std::io::Error),
}
