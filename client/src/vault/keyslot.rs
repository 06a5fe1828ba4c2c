//! The key-slot file: a salt and [`SLOT_COUNT`] fixed positions, each either a sealed
//! [`SlotPayload`] or random bytes (layout in [`super::format`]). Its name is random,
//! chosen at creation; it is found as the one vault file of [`KEYSLOT_FILE_LEN`] bytes.
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
    KEYSLOT_FILE_LEN, LEGACY_KEYSLOT_FILE_NAME, NAME_HEX_LEN, SALT_BLOCK_LEN, SLOT_COUNT, SLOT_LEN,
    SlotDecodeError, SlotPayload, hex, open_slot, pair_mask, pair_partner, seal_slot,
};
use super::fsio;
use super::kdf::{Kek, SALT_LEN};

/// The open key-slot file. Holds an exclusive lock on it for as long as the vault is
/// open, so that two processes never write the same vault.
pub(crate) struct KeySlotFile {
    file: File,
    salt: [u8; SALT_LEN],
    /// The file's name in the directory (random, 32 hex digits).
    name: String,
}

/// Most files of the key-slot file's size that an open tries (each costs an Argon2id
/// run, its salt being its own). A vault makes one; more come only from someone else.
pub(crate) const MAX_KEYSLOT_CANDIDATES: usize = 4;

/// The names of the files in `dir` that can be a key-slot file: vault file names (32
/// hex digits) of exactly [`KEYSLOT_FILE_LEN`] bytes, in name order. No segment, reserve
/// or temporary file has that size.
pub(crate) fn candidates(dir: &Path) -> io::Result<Vec<String>> {
    let mut found = Vec::new();
    for name in super::store::vault_file_names(dir)? {
        match std::fs::metadata(dir.join(&name)) {
            Ok(meta) if meta.len() == KEYSLOT_FILE_LEN as u64 => found.push(name),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

impl KeySlotFile {
    /// Whether the key-slot file in `dir` is still the one this vault holds open (same
    /// device and inode). False after a panic wipe, or if the directory was replaced,
    /// while the vault was open: then nothing more may be written there.
    pub(crate) fn still_in(&self, dir: &Path) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let (Ok(open), Ok(named)) = (
            self.file.metadata(),
            std::fs::metadata(dir.join(&self.name)),
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
    /// Writing the new copies failed: whether they reached the disk is unknown.
    Uncertain(io::Error),
    /// The new copies are durable (at `moved`), but erasing the old ones failed.
    OldNotErased { moved: Moved, error: io::Error },
}

/// One profile's part in a rewrite: its KEK, the position of its current copy, and the
/// payload (already at its next generation) to seal into the other position of its pair.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotWrite<'a> {
    pub(crate) kek: &'a Kek,
    pub(crate) current: usize,
    pub(crate) payload: &'a SlotPayload,
}

/// Where a rewrite left the profiles' current copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moved {
    pub(crate) own: usize,
    pub(crate) companion: Option<usize>,
}

impl KeySlotFile {
    /// Writes a new key-slot file under `dir` with a random name: salt, `payload` sealed
    /// at `position`, random bytes everywhere else. Complete before it can be taken for a
    /// key-slot file: it is written one block too long under a temporary name, synced,
    /// cut to its size, synced and renamed. A directory that already holds a file of
    /// the key-slot size fails with `AlreadyExists`; a lock on the directory keeps two
    /// creations apart.
    pub(crate) fn create(
        dir: &Path,
        salt: &[u8; SALT_LEN],
        kek: &Kek,
        position: usize,
        payload: &SlotPayload,
    ) -> io::Result<Self> {
        let dir_lock = File::open(dir)?;
        match dir_lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(io::ErrorKind::AlreadyExists.into()),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        if !candidates(dir)?.is_empty() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let name = hex(&fsio::random_array::<{ NAME_HEX_LEN / 2 }>()?);
        let temp_path = dir.join(hex(&fsio::random_array::<{ NAME_HEX_LEN / 2 }>()?));
        let final_path = dir.join(&name);
        let temp = fsio::create_new(&temp_path)?;
        let staged = Self {
            file: temp,
            salt: *salt,
            name: name.clone(),
        };
        let staged_len = (KEYSLOT_FILE_LEN + SLOT_LEN) as u64;
        let written = fsio::fill_random(&staged.file, 0, staged_len)
            .and_then(|()| staged.file.write_all_at(salt, 0))
            .and_then(|()| staged.write_payload(kek, position, payload))
            .and_then(|()| staged.file.sync_all())
            .and_then(|()| staged.file.set_len(KEYSLOT_FILE_LEN as u64))
            .and_then(|()| staged.file.sync_all())
            .and_then(|()| std::fs::rename(&temp_path, &final_path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp_path);
        }
        written?;
        fsio::sync_dir(dir)?;
        drop(staged);
        let (file, _) = Self::open_named(dir, &name).map_err(|e| match e {
            OpenError::Io(e) => e,
            _ => io::Error::other("the new key-slot file could not be opened"),
        })?;
        drop(dir_lock);
        Ok(file)
    }

    /// Opens and locks the key-slot file `name` in `dir` and reads it whole. Writes
    /// nothing.
    pub(crate) fn open_named(dir: &Path, name: &str) -> Result<(Self, Positions), OpenError> {
        let path = dir.join(name);
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
        Ok((
            Self {
                file,
                salt,
                name: name.to_owned(),
            },
            positions,
        ))
    }

    /// The file's name in its directory.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Gives a key-slot file that still has format version 1's fixed name a random one
    /// (its contents were rewritten in version 2 by the open). The old name may linger
    /// in the file system's journal; nothing else of it stays.
    pub(crate) fn rename_if_legacy(&mut self, dir: &Path) -> io::Result<()> {
        if self.name != LEGACY_KEYSLOT_FILE_NAME {
            return Ok(());
        }
        let name = hex(&fsio::random_array::<{ NAME_HEX_LEN / 2 }>()?);
        std::fs::rename(dir.join(&self.name), dir.join(&name))?;
        fsio::sync_dir(dir)?;
        self.name = name;
        Ok(())
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
        let filler = fsio::random_array::<32>()?;
        let sealed = seal_slot(
            &kek.slot_key(&self.salt, index),
            index,
            &self.salt,
            payload,
            &nonce,
            &filler,
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

    /// Moves a profile (and the profile it carries along, if any) to the other position
    /// of its pair, in two synced steps:
    ///
    /// 1. `own`'s new copy is sealed into the other position of its pair; the companion's
    ///    new copy into the other position of *its* pair, or, without a companion,
    ///    every position of the other pair is overwritten with random bytes; sync;
    /// 2. the old copies are overwritten with random bytes; sync.
    ///
    /// So every rewrite (every open, compaction, passphrase change, duress setting)
    /// changes all four positions, whether or not a second profile lives in the file:
    /// two images of the file taken around any of them differ in the same blocks. An
    /// open with the duress passphrase is an ordinary rewrite of a profile that carries
    /// nothing along: its step 1 overwrites the real profile's positions (the other
    /// pair) before anything of the decoy is read. A crash in step 1 leaves the old
    /// copies intact; a crash in step 2 leaves two copies of a profile, and the higher
    /// generation wins at the next open, whose own rewrite erases the other.
    pub(crate) fn rewrite(
        &self,
        own: SlotWrite<'_>,
        companion: Option<SlotWrite<'_>>,
    ) -> Result<Moved, RewriteError> {
        let own_pair = pair_mask(own.current);
        if let Some(c) = companion
            && pair_mask(c.current) & own_pair != 0
        {
            return Err(RewriteError::Uncertain(io::Error::other(
                "two profiles in one pair of key-slot positions",
            )));
        }
        let moved = Moved {
            own: pair_partner(own.current),
            companion: companion.map(|c| pair_partner(c.current)),
        };
        let first = self
            .write_sealed(own.kek, moved.own, own.payload)
            .and_then(|()| match companion {
                Some(c) => self.write_sealed(c.kek, pair_partner(c.current), c.payload),
                None => (0..SLOT_COUNT)
                    .filter(|&i| own_pair & (1 << i) == 0)
                    .try_for_each(|i| self.write_random(i)),
            })
            .and_then(|()| self.file.sync_data());
        first.map_err(RewriteError::Uncertain)?;
        let second = self
            .write_random(own.current)
            .and_then(|()| match companion {
                Some(c) => self.write_random(c.current),
                None => Ok(()),
            })
            .and_then(|()| self.file.sync_data());
        second.map_err(|error| RewriteError::OldNotErased { moved, error })?;
        Ok(moved)
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
/// time taken says nothing about which positions are used — and returns the highest
/// generation found outside the positions set in `exclude`. `Ok(None)`: none opened.
/// Older copies of the same profile (an interrupted rewrite) are ignored: the higher
/// generation is current, and the next [`KeySlotFile::rewrite`] erases the others.
pub(crate) fn unlock(
    kek: &Kek,
    salt: &[u8; SALT_LEN],
    positions: &Positions,
    exclude: u8,
) -> Result<Option<Unlocked>, SlotDecodeError> {
    let mut opened = Vec::new();
    let mut failure = None;
    for (index, position) in positions.iter().enumerate() {
        match try_position(kek, salt, index, position) {
            Some(Ok(payload)) if exclude & (1 << index) == 0 => opened.push((index, payload)),
            Some(Ok(_)) => {}
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
