//! The key-slot file: a salt and [`SLOT_COUNT`] fixed positions, each either a sealed
//! [`SlotPayload`] or random bytes (layout in [`super::format`]).
//!
//! Opening runs Argon2id once and trial-decrypts every position, used or not, so the
//! work is the same for a right, a wrong or a duress passphrase. A payload is
//! rewritten by sealing it into a spare position, syncing, then overwriting the old
//! position with random bytes and syncing again: at every instant one complete copy is
//! on disk, and after a crash between the two steps the higher generation wins (see
//! [`KeySlotFile::rewrite`]).
//! Overwriting a position is crypto-shredding: its data key, and with it the profile's
//! records, are gone.

use std::fs::{File, TryLockError};
use std::io::{self, Read as _};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use passage_crypto::primitives::XCHACHA_NONCE_LEN;

use super::error::OpenError;
use super::format::{
    KEYSLOT_FILE_LEN, KEYSLOT_FILE_NAME, NAME_HEX_LEN, SALT_BLOCK_LEN, SLOT_COUNT, SLOT_LEN,
    SlotDecodeError, SlotPayload, hex, open_slot, seal_slot,
};
use super::fsio;
use super::kdf::{Kek, SALT_LEN};

/// The open key-slot file. Holds an exclusive lock on it for as long as the vault is
/// open, so that two processes never write the same vault.
pub(crate) struct KeySlotFile {
    file: File,
    salt: [u8; SALT_LEN],
}

impl KeySlotFile {
    /// Whether the key-slot file in `dir` is still the one this vault holds open (same
    /// device and inode). False after a panic wipe, or if the directory was replaced,
    /// while the vault was open: then nothing more may be written there.
    pub(crate) fn still_in(&self, dir: &Path) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let (Ok(open), Ok(named)) = (
            self.file.metadata(),
            std::fs::metadata(dir.join(KEYSLOT_FILE_NAME)),
        ) else {
            return false;
        };
        open.dev() == named.dev() && open.ino() == named.ino()
    }
}

impl core::fmt::Debug for KeySlotFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KeySlotFile(..)")
    }
}

/// The positions of a key-slot file as read at open.
pub(crate) type Positions = Vec<Box<[u8]>>;

/// What trial decryption found for one set of credentials.
#[derive(Debug)]
pub(crate) struct Unlocked {
    /// The position holding the current payload.
    pub(crate) position: usize,
    pub(crate) payload: SlotPayload,
}

/// A rewrite did not complete.
#[derive(Debug)]
pub(crate) enum RewriteError {
    /// Writing the new copy failed: whether it reached the disk is unknown.
    Uncertain(io::Error),
    /// The new copy is durable (at `position`), but erasing the old one failed.
    OldNotErased { position: usize, error: io::Error },
}

impl KeySlotFile {
    /// Writes a new key-slot file under `dir`: salt, `payload` sealed at `position`,
    /// random bytes everywhere else. Complete before it appears: it is written and synced
    /// under a random name, then hard-linked into place, which never replaces a file, so
    /// an existing vault fails with `AlreadyExists` even in a race.
    pub(crate) fn create(
        dir: &Path,
        salt: &[u8; SALT_LEN],
        kek: &Kek,
        position: usize,
        payload: &SlotPayload,
    ) -> io::Result<Self> {
        let final_path = dir.join(KEYSLOT_FILE_NAME);
        if final_path.try_exists()? {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let temp_path = dir.join(hex(&fsio::random_array::<{ NAME_HEX_LEN / 2 }>()?));
        let temp = fsio::create_new(&temp_path)?;
        let staged = Self {
            file: temp,
            salt: *salt,
        };
        let written = fsio::fill_random(&staged.file, 0, KEYSLOT_FILE_LEN as u64)
            .and_then(|()| staged.file.write_all_at(salt, 0))
            .and_then(|()| staged.write_payload(kek, position, payload))
            .and_then(|()| staged.file.sync_all())
            .and_then(|()| std::fs::hard_link(&temp_path, &final_path));
        // Once linked, the temporary name is only a second name for the same random-looking
        // bytes: failing to remove it is no reason to fail the create.
        let _ = std::fs::remove_file(&temp_path);
        written?;
        fsio::sync_dir(dir)?;
        drop(staged);
        let (file, _) = Self::open(dir).map_err(|e| match e {
            OpenError::Io(e) => e,
            _ => io::Error::other("the new key-slot file could not be opened"),
        })?;
        Ok(file)
    }

    /// Opens and locks the key-slot file and reads it whole. Writes nothing.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Positions), OpenError> {
        let path = dir.join(KEYSLOT_FILE_NAME);
        let mut file = match fsio::open_rw(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(OpenError::NoVault),
            Err(e) => return Err(e.into()),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(OpenError::Busy),
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        let mut bytes = Vec::with_capacity(KEYSLOT_FILE_LEN);
        file.by_ref()
            .take(KEYSLOT_FILE_LEN as u64 + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() != KEYSLOT_FILE_LEN {
            // Not a key-slot file; to the vault that is the same as random bytes.
            return Err(OpenError::WrongPassphrase);
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[..SALT_LEN]);
        let positions = (0..SLOT_COUNT)
            .map(|i| {
                let start = SALT_BLOCK_LEN + i * SLOT_LEN;
                bytes[start..start + SLOT_LEN].to_vec().into_boxed_slice()
            })
            .collect();
        Ok((Self { file, salt }, positions))
    }

    pub(crate) fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// Reads one position back from disk.
    pub(crate) fn read_position(&self, index: usize) -> io::Result<Box<[u8]>> {
        let mut buf = vec![0u8; SLOT_LEN];
        self.file.read_exact_at(&mut buf, position_offset(index))?;
        Ok(buf.into_boxed_slice())
    }

    /// Seals `payload` into position `index` and syncs.
    pub(crate) fn write_payload(
        &self,
        kek: &Kek,
        index: usize,
        payload: &SlotPayload,
    ) -> io::Result<()> {
        self.write_sealed(kek, index, payload)?;
        self.file.sync_data()
    }

    /// Seals `payload` into position `index`, without syncing.
    fn write_sealed(&self, kek: &Kek, index: usize, payload: &SlotPayload) -> io::Result<()> {
        let nonce = fsio::random_array::<XCHACHA_NONCE_LEN>()?;
        let sealed = seal_slot(
            &kek.slot_key(&self.salt, index),
            index,
            &self.salt,
            payload,
            &nonce,
        );
        self.file.write_all_at(&sealed, position_offset(index))
    }

    /// Writes random bytes over position `index`, without syncing.
    fn write_random(&self, index: usize) -> io::Result<()> {
        let mut noise = vec![0u8; SLOT_LEN];
        fsio::random_bytes(&mut noise)?;
        self.file.write_all_at(&noise, position_offset(index))
    }

    /// Overwrites position `index` with random bytes and syncs: crypto-shredding.
    pub(crate) fn erase(&self, index: usize) -> io::Result<()> {
        self.write_random(index)?;
        self.file.sync_data()
    }

    /// Moves `payload` (already at its new generation) from position `current` to a
    /// spare one, in two synced steps:
    ///
    /// 1. the new copy is sealed into the spare and every other position this profile
    ///    may use (not `current`, not reserved) is overwritten with random bytes; sync;
    /// 2. `current` is overwritten with random bytes; sync.
    ///
    /// Positions set in `payload.reserved_positions` belong to another profile and are
    /// never written. Every rewrite (every open, compaction, passphrase change, and the
    /// duress switch, whose erase of the real profile is step 1's random bytes) is this
    /// same pattern of writes, so none of them stands out on disk or in time. A crash
    /// in step 1 leaves `current` intact; a crash in step 2 leaves two copies, and the
    /// higher generation wins at the next open, whose own rewrite erases the other.
    pub(crate) fn rewrite(
        &self,
        kek: &Kek,
        current: usize,
        payload: &SlotPayload,
    ) -> Result<usize, RewriteError> {
        let usable = |i: usize| i != current && payload.reserved_positions & (1 << i) == 0;
        let spare = (0..SLOT_COUNT).find(|&i| usable(i)).ok_or_else(|| {
            RewriteError::Uncertain(io::Error::other("no spare key-slot position"))
        })?;
        (0..SLOT_COUNT)
            .filter(|&i| usable(i) && i != spare)
            .try_for_each(|i| self.write_random(i))
            .and_then(|()| self.write_sealed(kek, spare, payload))
            .and_then(|()| self.file.sync_data())
            .map_err(RewriteError::Uncertain)?;
        self.erase(current)
            .map_err(|error| RewriteError::OldNotErased {
                position: spare,
                error,
            })?;
        Ok(spare)
    }

    /// Reads every position back from disk.
    pub(crate) fn read_positions(&self) -> io::Result<Positions> {
        (0..SLOT_COUNT).map(|i| self.read_position(i)).collect()
    }

    /// Overwrites the whole file (salt and every position) with random bytes and
    /// syncs: no credentials open anything in it afterwards (the panic wipe).
    pub(crate) fn shred(&self) -> io::Result<()> {
        shred_file(&self.file)
    }
}

/// Overwrites the first [`KEYSLOT_FILE_LEN`] bytes of `file` with random bytes in one
/// write, then syncs.
pub(crate) fn shred_file(file: &File) -> io::Result<()> {
    let mut noise = vec![0u8; KEYSLOT_FILE_LEN];
    fsio::random_bytes(&mut noise)?;
    file.write_all_at(&noise, 0)?;
    file.sync_data()
}

fn position_offset(index: usize) -> u64 {
    (SALT_BLOCK_LEN + index * SLOT_LEN) as u64
}

/// Trial-decrypts every position with `kek` — all of them, whatever the outcome, so the
/// time taken says nothing about which positions are used. `Ok(None)`: none opened.
/// Older copies of the same profile (an interrupted rewrite) are ignored: the higher
/// generation is current, and the next [`KeySlotFile::rewrite`] erases the others.
pub(crate) fn unlock(
    kek: &Kek,
    salt: &[u8; SALT_LEN],
    positions: &Positions,
) -> Result<Option<Unlocked>, SlotDecodeError> {
    let mut opened = Vec::new();
    let mut failure = None;
    for (index, position) in positions.iter().enumerate() {
        match try_position(kek, salt, index, position) {
            Some(Ok(payload)) => opened.push((index, payload)),
            Some(Err(e)) => failure = Some(e),
            None => {}
        }
    }
    let Some(best) = opened
        .iter()
        .enumerate()
        .max_by_key(|(_, (_, payload))| payload.generation)
        .map(|(i, _)| i)
    else {
        return failure.map_or(Ok(None), Err);
    };
    let (position, payload) = opened.swap_remove(best);
    Ok(Some(Unlocked { position, payload }))
}

/// Trial-decrypts the one position `index`: `None` if `kek` does not open it.
pub(crate) fn try_position(
    kek: &Kek,
    salt: &[u8; SALT_LEN],
    index: usize,
    position: &[u8],
) -> Option<Result<SlotPayload, SlotDecodeError>> {
    let plaintext = open_slot(&kek.slot_key(salt, index), index, salt, position)?;
    Some(SlotPayload::decode(&plaintext))
}
