//! [`Vault`]: open, read, write in transactions, compact, re-key, destroy.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use passage_crypto::primitives::Secret32;
use zeroize::Zeroizing;

use super::error::{
    ChangePassphraseError, CreateError, OpenError, ReadError, SetDuressError, WriteError,
};
use super::format::{
    ALL_POSITIONS, MAX_TRANSACTION_LEN, NAME_HEX_LEN, Op, PROFILE_ID_LEN, RECORD_OVERHEAD,
    SLOT_COUNT, SegmentKeys, SlotDecodeError, SlotPayload, decode_ops, encode_ops, hex, name_key,
    op_len, pair_mask, segment_name, temp_name,
};
use super::fsio;
use super::index::Index;
use super::kdf::{KdfCost, Kek, SALT_LEN, derive_kek};
use super::keyslot::{
    self, KeySlotFile, MAX_KEYSLOT_CANDIDATES, Positions, RewriteError, SlotWrite,
};
use super::secret::{Credentials, SecretBytes};
use super::segment::{RecordLoc, SEGMENT_MIN_LEN, Segment};
use super::transaction::Transaction;

/// Garbage (bytes of records holding no current value) below which the vault never
/// compacts on its own: rewriting a small vault to save little is not worth the writes.
pub const COMPACT_MIN_GARBAGE: u64 = 256 * 1024;
/// Compaction packs small values into records of at most this many bytes, so that
/// reading one value decrypts little more than itself.
const PACKED_RECORD_LEN: usize = 4096;

/// An open vault: one profile's encrypted key → value store. See the [module
/// documentation](super) for the format and the guarantees.
///
/// Reads take `&self`; writes take `&mut self` and are durable when they return `Ok`.
/// Dropping the vault (or [`Vault::close`]) wipes its keys from memory and releases the
/// directory for another process.
pub struct Vault {
    dir: PathBuf,
    cost: KdfCost,
    keyslot: KeySlotFile,
    kek: Kek,
    position: usize,
    payload: SlotPayload,
    /// The other profile in the key-slot file that this one knows of and re-seals at
    /// each of its rewrites (see [`Companion`]).
    companion: Option<Companion>,
    /// Opened with [`Vault::open_decoy`]: the decoy, reached with the real passphrase.
    decoy_view: bool,
    name_key: Secret32,
    segment: Segment,
    index: Index,
    /// Garbage at which automatic compaction is next tried (raised after a failure).
    compact_at: u64,
    /// An earlier write failed in a way that leaves the disk's state unknown. Sticky.
    poisoned: bool,
    /// Set once the key-slot file was found wiped or replaced under the open vault.
    wiped: bool,
    /// Tests only: commits left before every further one fails (fault injection).
    #[cfg(test)]
    commits_before_failure: Option<usize>,
}

/// The profile an open vault carries along in its key-slot rewrites: a real profile's
/// decoy (found with the KEK its payload links), or, in a vault from
/// [`Vault::open_decoy`], the real profile. Each rewrite re-seals it, one generation on,
/// into the other position of its pair, so that every rewrite changes the same
/// positions whether or not a second profile exists. Known in memory only: no payload
/// says that another profile exists, let alone where.
struct Companion {
    kek: Kek,
    position: usize,
    payload: SlotPayload,
}

impl core::fmt::Debug for Companion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Companion(..)")
    }
}

impl core::fmt::Debug for Vault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vault")
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Creates a vault in `dir` (made, owner-only, if missing) that `credentials` open.
    /// Runs Argon2id once.
    pub fn create(dir: impl AsRef<Path>, credentials: &Credentials) -> Result<Self, CreateError> {
        Self::create_with_cost(dir.as_ref(), credentials, KdfCost::Standard)
    }

    /// Opens the vault in `dir`. Runs Argon2id once and tries every key-slot position.
    /// A wrong passphrase changes nothing on disk ([`OpenError::WrongPassphrase`]); a
    /// right one rewrites every key-slot position (two synced writes) before it reads the log.
    ///
    /// Given the duress passphrase (see [`Vault::set_duress`]), this is the duress
    /// switch: the real profile's key slot is overwritten with random bytes, then the
    /// decoy opens. The result looks exactly like an ordinary open.
    pub fn open(dir: impl AsRef<Path>, credentials: &Credentials) -> Result<Self, OpenError> {
        Self::open_with_cost(dir.as_ref(), credentials, KdfCost::Standard)
    }

    /// Opens the decoy profile of the vault in `dir` with the **real** credentials, so
    /// that its owner can give it contacts and history (`passage --decoy COMMAND`).
    /// Runs Argon2id once, like [`Vault::open`] (and rewrites the real profile's
    /// key slot the same way). The vault returned reads and writes the decoy; its
    /// compactions stay inside the decoy's key-slot positions.
    ///
    /// [`OpenError::NoDecoy`] if the credentials open a profile without a decoy. Given
    /// the duress credentials, this performs the duress switch exactly as
    /// [`Vault::open`] does and then reports `NoDecoy`, as any profile without a decoy
    /// would.
    pub fn open_decoy(
        dir: impl AsRef<Path>,
        real_credentials: &Credentials,
    ) -> Result<Self, OpenError> {
        Self::open_decoy_with_cost(dir.as_ref(), real_credentials, KdfCost::Standard)
    }

    /// The current value of `key`, decrypted from its record.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Zeroizing<Vec<u8>>>, ReadError> {
        let key = key.as_ref();
        match self.index.get(key) {
            Some(loc) => self.read_value(loc, key),
            None => Ok(None),
        }
    }

    /// Whether `key` has a value (no disk read).
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> bool {
        self.index.contains(key.as_ref())
    }

    /// Every key that starts with `prefix`, in byte order (no disk read).
    pub fn keys_with_prefix(&self, prefix: impl AsRef<[u8]>) -> Vec<Zeroizing<Vec<u8>>> {
        self.index
            .keys_with_prefix(prefix.as_ref())
            .map(|key| Zeroizing::new(key.as_bytes().to_vec()))
            .collect()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the vault holds no key.
    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    /// Sets `key` to `value`, durably (a one-change transaction).
    pub fn put(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), WriteError> {
        let mut tx = self.begin();
        tx.put(key, value)?;
        tx.commit()
    }

    /// Removes `key`, durably. Removing an absent key writes nothing. The old value stays
    /// in the segment, encrypted, until the next compaction ([`Vault::compact`]).
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> Result<(), WriteError> {
        let mut tx = self.begin();
        tx.delete(key)?;
        tx.commit()
    }

    /// Starts a transaction: changes are buffered and written as one record by
    /// [`Transaction::commit`], all or nothing. Dropping it discards them.
    pub fn begin(&mut self) -> Transaction<'_> {
        Transaction::new(self)
    }

    /// Runs `f` in a transaction and commits it if `f` returns `Ok`: atomic, and durable
    /// when this returns `Ok`.
    pub fn transaction<T, E>(
        &mut self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<WriteError>,
    {
        let mut tx = self.begin();
        let out = f(&mut tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Rewrites the current values into a new segment under a new random secret, then
    /// rewrites the key slot and removes the old segment. Deleted and overwritten values
    /// are then unreadable even with the passphrase, as far as the storage really
    /// overwrites the key-slot position (see the module documentation). Runs on its own
    /// once garbage passes [`COMPACT_MIN_GARBAGE`] and half the log.
    ///
    /// Called directly it always compacts, whatever the garbage: this is the step that
    /// makes disappearing messages final. Delete the expired keys, then call this; when
    /// it returns `Ok`, their values are unreadable even with the passphrase. It costs
    /// a rewrite of the live values (about 50 ms per megabyte of them here, syncs
    /// included). On `Err` the deleted values may still be readable with the
    /// passphrase until a later compaction succeeds.
    pub fn compact(&mut self) -> Result<(), WriteError> {
        if self.poisoned {
            return Err(WriteError::Poisoned);
        }
        self.check_not_wiped()?;
        let epoch = self
            .payload
            .epoch
            .checked_add(1)
            .ok_or_else(|| io::Error::other("segment epochs exhausted"))?;
        let secret = Secret32::from_bytes(fsio::random_array()?);
        let keys = SegmentKeys::derive(&self.payload.data_key, &secret, epoch);
        let mut index = Index::default();
        let segment = Segment::create(
            &self.dir,
            &temp_name(&self.name_key, epoch),
            &segment_name(&self.name_key, epoch),
            keys,
            |new| self.copy_current_values(new, &mut index),
        )?;
        let payload = SlotPayload {
            epoch,
            segment_secret: secret,
            ..self.payload.next_generation()
        };
        let rewritten = carry_rewrite(
            &self.keyslot,
            &self.kek,
            self.position,
            &payload,
            self.companion.as_mut(),
        );
        let (position, outcome) = match rewritten {
            Ok(position) => (position, Ok(())),
            Err(RewriteError::Uncertain(e)) => {
                self.poisoned = true;
                return Err(e.into());
            }
            Err(RewriteError::OldNotErased { moved, error }) => {
                self.poisoned = true;
                (moved.own, Err(error.into()))
            }
        };
        let old = segment_name(&self.name_key, self.payload.epoch);
        self.position = position;
        self.payload = payload;
        self.segment = segment;
        self.index = index;
        self.compact_at = COMPACT_MIN_GARBAGE;
        // The old segment is unreadable now; removing it only frees space. If this fails,
        // the next open removes it.
        if fsio::remove_if_present(&self.dir.join(old)).is_ok() {
            let _ = fsio::sync_dir(&self.dir);
        }
        outcome
    }

    /// Re-wraps the data key under `new` credentials after checking `current` (two
    /// Argon2id runs). Only the key-slot file changes; the segment is not touched.
    ///
    /// [`ChangePassphraseError::OpenedAsDecoy`] only for a vault from
    /// [`Vault::open_decoy`]. A decoy reached through the duress switch is an ordinary
    /// profile, and the old passphrase then opens nothing.
    pub fn change_passphrase(
        &mut self,
        current: &Credentials,
        new: &Credentials,
    ) -> Result<(), ChangePassphraseError> {
        if self.poisoned {
            return Err(ChangePassphraseError::Poisoned);
        }
        if self.decoy_view {
            return Err(ChangePassphraseError::OpenedAsDecoy);
        }
        let salt = *self.keyslot.salt();
        let check = derive_kek(self.cost, current, &salt)
            .map_err(|_| ChangePassphraseError::OutOfMemory)?;
        let on_disk = self.keyslot.read_position(self.position)?;
        let opened = keyslot::try_position(&check, &salt, self.position, &on_disk);
        if !matches!(opened, Some(Ok(p)) if p.profile_id == self.payload.profile_id) {
            return Err(ChangePassphraseError::WrongPassphrase);
        }
        let kek =
            derive_kek(self.cost, new, &salt).map_err(|_| ChangePassphraseError::OutOfMemory)?;
        if self
            .payload
            .linked_kek
            .as_ref()
            .is_some_and(|decoy| decoy.ct_eq(kek.secret()))
        {
            return Err(ChangePassphraseError::SameAsDuress);
        }
        let payload = self.payload.next_generation();
        let rewritten = carry_rewrite(
            &self.keyslot,
            &kek,
            self.position,
            &payload,
            self.companion.as_mut(),
        );
        match rewritten {
            Ok(position) => {
                self.position = position;
                self.payload = payload;
                self.kek = kek;
                Ok(())
            }
            Err(RewriteError::Uncertain(e)) => Err(e.into()),
            Err(RewriteError::OldNotErased { moved, error }) => {
                // Both passphrases may open the vault until the next open erases the
                // old copy; writes stop so the caller reopens.
                self.position = moved.own;
                self.payload = payload;
                self.kek = kek;
                self.poisoned = true;
                Err(error.into())
            }
        }
    }

    /// Sets the duress passphrase: creates a fresh, empty decoy profile (its own data
    /// key, segment and key-slot position, sealed under `duress`), replacing the decoy
    /// of an earlier call, whose data is then crypto-shredded and its segment removed.
    /// Runs Argon2id once. Fill the decoy with [`Vault::open_decoy`].
    ///
    /// From then on, [`Vault::open`] with `duress` overwrites this profile's key-slot
    /// positions with random bytes (its data key is gone) and opens the decoy, which
    /// from then on is an ordinary profile; the real credentials get
    /// [`OpenError::WrongPassphrase`]. The directory keeps its number of files: the
    /// decoy's segment takes the place of the random reserve file `create` made (or of
    /// the replaced decoy's segment).
    ///
    /// [`SetDuressError::OpenedAsDecoy`] only for a vault from [`Vault::open_decoy`]. A
    /// decoy reached through the duress switch is an ordinary profile and gets a decoy
    /// of its own, in the pair it does not use. That decoy's segment replaces the third
    /// file: the erased real profile's old segment.
    pub fn set_duress(&mut self, duress: &Credentials) -> Result<(), SetDuressError> {
        if self.poisoned {
            return Err(SetDuressError::Poisoned);
        }
        if self.decoy_view {
            return Err(SetDuressError::OpenedAsDecoy);
        }
        let salt = *self.keyslot.salt();
        let duress_kek =
            derive_kek(self.cost, duress, &salt).map_err(|_| SetDuressError::OutOfMemory)?;
        if duress_kek.secret().ct_eq(self.kek.secret()) {
            return Err(SetDuressError::SameAsPassphrase);
        }
        let decoy_pair = ALL_POSITIONS & !pair_mask(self.position);
        // The rewrite below seals the new decoy into one position of the other pair and
        // overwrites the other one: the replaced decoy's, if there is one.
        let old = self.companion.take();
        let replaced = match &old {
            Some(old) => old.position,
            None => (0..SLOT_COUNT)
                .find(|&i| decoy_pair & (1 << i) != 0)
                .ok_or_else(|| io::Error::other("no key-slot position for the decoy"))?,
        };

        // 1. The decoy's empty segment: an ordinary profile that knows of no other.
        let decoy = SlotPayload {
            generation: 0,
            profile_id: fsio::random_array::<PROFILE_ID_LEN>()?,
            data_key: Secret32::from_bytes(fsio::random_array()?),
            epoch: 0,
            segment_secret: Secret32::from_bytes(fsio::random_array()?),
            linked_kek: None,
        };
        let decoy_names = name_key(&decoy.data_key);
        let decoy_segment = segment_name(&decoy_names, 0);
        let keys = SegmentKeys::derive(&decoy.data_key, &decoy.segment_secret, 0);
        if let Err(e) = Segment::create(
            &self.dir,
            &temp_name(&decoy_names, 0),
            &decoy_segment,
            keys,
            |_| Ok(()),
        ) {
            self.companion = old;
            return Err(e.into());
        }

        // 2. One rewrite: this profile's slot now links the duress passphrase's KEK, and
        //    the decoy is sealed as its companion, replacing the old one.
        let mut companion = Companion {
            kek: duress_kek,
            position: replaced,
            payload: decoy,
        };
        let payload = SlotPayload {
            linked_kek: Some(companion.kek.secret().clone()),
            ..self.payload.next_generation()
        };
        match carry_rewrite(
            &self.keyslot,
            &self.kek,
            self.position,
            &payload,
            Some(&mut companion),
        ) {
            Ok(position) => {
                self.position = position;
                self.payload = payload;
                self.companion = Some(companion);
            }
            Err(RewriteError::Uncertain(e)) => {
                self.poisoned = true;
                return Err(e.into());
            }
            Err(RewriteError::OldNotErased { moved, error }) => {
                self.position = moved.own;
                self.payload = payload;
                self.companion = Some(companion);
                self.poisoned = true;
                return Err(error.into());
            }
        }

        // 3. The old decoy's segment, or the reserve file, goes: the number of files
        //    stays the same.
        match old {
            Some(old) => {
                let names = name_key(&old.payload.data_key);
                fsio::remove_if_present(&self.dir.join(segment_name(&names, old.payload.epoch)))?;
            }
            None => {
                let own = segment_name(&self.name_key, self.payload.epoch);
                let keyslot_name = self.keyslot.name();
                let reserve = vault_file_names(&self.dir)?
                    .into_iter()
                    .find(|name| name != keyslot_name && *name != own && *name != decoy_segment);
                if let Some(reserve) = reserve {
                    fsio::remove_if_present(&self.dir.join(reserve))?;
                }
            }
        }
        fsio::sync_dir(&self.dir)?;
        Ok(())
    }

    /// Crypto-shreds this profile: its key-slot position is overwritten with random bytes
    /// and synced, after which no passphrase opens it, and its segment file is removed.
    /// The key-slot file stays (other profiles may live in it), looking as before.
    pub fn destroy(self) -> io::Result<()> {
        self.keyslot.erase(self.position)?;
        fsio::remove_if_present(
            &self
                .dir
                .join(segment_name(&self.name_key, self.payload.epoch)),
        )?;
        fsio::sync_dir(&self.dir)
    }

    /// Closes the vault: keys are wiped from memory, the directory is unlocked. Every
    /// commit was already durable; nothing is written.
    pub fn close(self) {}

    // -----------------------------------------------------------------------
    // Construction

    pub(crate) fn create_with_cost(
        dir: &Path,
        credentials: &Credentials,
        cost: KdfCost,
    ) -> Result<Self, CreateError> {
        let existed = dir.try_exists()?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        if !existed {
            // Make the new directory's own entry durable (a sync, not a write).
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            fsio::sync_dir(parent.unwrap_or(Path::new(".")))?;
        }
        if !keyslot::candidates(dir)?.is_empty() {
            return Err(CreateError::AlreadyExists);
        }
        let salt: [u8; SALT_LEN] = fsio::random_array()?;
        let kek = derive_kek(cost, credentials, &salt).map_err(|_| CreateError::OutOfMemory)?;
        let payload = SlotPayload {
            generation: 1,
            profile_id: fsio::random_array::<PROFILE_ID_LEN>()?,
            data_key: Secret32::from_bytes(fsio::random_array()?),
            epoch: 0,
            segment_secret: Secret32::from_bytes(fsio::random_array()?),
            linked_kek: None,
        };
        let name_key = name_key(&payload.data_key);
        let keys = SegmentKeys::derive(&payload.data_key, &payload.segment_secret, 0);
        let segment_file = segment_name(&name_key, 0);
        let segment = Segment::create(dir, &temp_name(&name_key, 0), &segment_file, keys, |_| {
            Ok(())
        })?;
        // The reserve: random bytes standing in for the decoy's segment, so that the
        // directory holds three files whether or not a duress passphrase is set.
        let reserve_file = hex(&fsio::random_array::<{ NAME_HEX_LEN / 2 }>()?);
        let reserve = write_reserve(dir, &reserve_file);
        let position = usize::from(fsio::random_array::<1>()?[0]) % SLOT_COUNT;
        let keyslot = match reserve
            .and_then(|()| KeySlotFile::create(dir, &salt, &kek, position, &payload))
        {
            Ok(keyslot) => keyslot,
            Err(e) => {
                // Without its key-slot file the new segment is an orphan; once the key-slot
                // file is in place (a failure after the link), the segment is the vault's.
                if keyslot::candidates(dir).is_ok_and(|found| found.is_empty()) {
                    let _ = fsio::remove_if_present(&dir.join(&segment_file));
                    let _ = fsio::remove_if_present(&dir.join(&reserve_file));
                }
                return Err(match e.kind() {
                    io::ErrorKind::AlreadyExists => CreateError::AlreadyExists,
                    _ => e.into(),
                });
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            cost,
            keyslot,
            kek,
            position,
            payload,
            companion: None,
            decoy_view: false,
            name_key,
            segment,
            index: Index::default(),
            compact_at: COMPACT_MIN_GARBAGE,
            poisoned: false,
            wiped: false,
            #[cfg(test)]
            commits_before_failure: None,
        })
    }

    pub(crate) fn open_with_cost(
        dir: &Path,
        credentials: &Credentials,
        cost: KdfCost,
    ) -> Result<Self, OpenError> {
        let (mut keyslot, positions, kek, unlocked) = unlock_dir(dir, credentials, cost)?;
        let (position, payload) = (unlocked.position, unlocked.payload);
        let mut companion = find_companion(&keyslot, &positions, position, &payload)?;
        // Every open rewrites the key slot before it reads anything else, the same way
        // whatever the profile: without a companion, the rewrite overwrites the other
        // pair of positions. That is the duress switch when these are the duress
        // passphrase's credentials (the decoy knows of no other profile, so the real
        // one's positions go), and nothing at all otherwise (the other pair is random).
        let next = payload.next_generation();
        let position = carry_rewrite(&keyslot, &kek, position, &next, companion.as_mut()).map_err(
            |e| match e {
                RewriteError::Uncertain(e) | RewriteError::OldNotErased { error: e, .. } => {
                    OpenError::from(e)
                }
            },
        )?;
        keyslot.rename_if_legacy(dir)?;
        let (segment, index) = replay(dir, &next)?;
        Self::assemble(
            dir,
            cost,
            Unlock {
                keyslot,
                kek,
                position,
                payload: next,
                companion,
                decoy_view: false,
            },
            segment,
            index,
        )
    }

    pub(crate) fn open_decoy_with_cost(
        dir: &Path,
        credentials: &Credentials,
        cost: KdfCost,
    ) -> Result<Self, OpenError> {
        let mut real = Self::open_with_cost(dir, credentials, cost)?;
        let Some(decoy) = real.companion.take() else {
            return Err(OpenError::NoDecoy);
        };
        let (segment, index) = replay(dir, &decoy.payload)?;
        let Self {
            dir,
            keyslot,
            kek,
            position,
            payload,
            ..
        } = real;
        Self::assemble(
            &dir,
            cost,
            Unlock {
                keyslot,
                kek: decoy.kek,
                position: decoy.position,
                payload: decoy.payload,
                companion: Some(Companion {
                    kek,
                    position,
                    payload,
                }),
                decoy_view: true,
            },
            segment,
            index,
        )
    }

    /// The open vault, once its log is read: removes what a crash interrupted.
    fn assemble(
        dir: &Path,
        cost: KdfCost,
        unlock: Unlock,
        segment: Segment,
        index: Index,
    ) -> Result<Self, OpenError> {
        let Unlock {
            keyslot,
            kek,
            position,
            payload,
            companion,
            decoy_view,
        } = unlock;
        let name_key = name_key(&payload.data_key);
        let epoch = payload.epoch;
        let mut leftovers = vec![
            segment_name(&name_key, epoch + 1),
            temp_name(&name_key, epoch + 1),
        ];
        leftovers.push(temp_name(&name_key, epoch));
        if let Some(previous) = epoch.checked_sub(1) {
            leftovers.push(segment_name(&name_key, previous));
        }
        let mut removed = false;
        for name in leftovers {
            removed |= fsio::remove_if_present(&dir.join(name))?;
        }
        if removed {
            fsio::sync_dir(dir)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            cost,
            keyslot,
            kek,
            position,
            payload,
            companion,
            decoy_view,
            name_key,
            segment,
            index,
            compact_at: COMPACT_MIN_GARBAGE,
            poisoned: false,
            wiped: false,
            #[cfg(test)]
            commits_before_failure: None,
        })
    }

    // -----------------------------------------------------------------------
    // Helpers

    fn read_value(
        &self,
        loc: RecordLoc,
        key: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ReadError> {
        let content = self.segment.read(loc)?;
        let ops = decode_ops(&content).map_err(|_| ReadError::Corrupted)?;
        let mut found = None;
        for op in ops {
            match op {
                Op::Put(k, value) if k == key => found = Some(value),
                Op::Delete(k) if k == key => found = None,
                _ => {}
            }
        }
        Ok(found.map(|value| Zeroizing::new(value.to_vec())))
    }

    /// Refuses every write from the moment the key-slot file is no longer ours (a panic
    /// wipe by another process): a running client must not recreate files in a wiped
    /// directory.
    fn check_not_wiped(&mut self) -> Result<(), WriteError> {
        if self.wiped || !self.keyslot.still_in(&self.dir) {
            self.wiped = true;
            return Err(WriteError::Gone);
        }
        Ok(())
    }

    pub(crate) fn commit_changes(
        &mut self,
        changes: &BTreeMap<SecretBytes, Option<Zeroizing<Vec<u8>>>>,
    ) -> Result<(), WriteError> {
        if self.poisoned {
            return Err(WriteError::Poisoned);
        }
        self.check_not_wiped()?;
        #[cfg(test)]
        if let Some(left) = self.commits_before_failure.as_mut() {
            if *left == 0 {
                return Err(io::Error::other("injected commit failure").into());
            }
            *left -= 1;
        }
        let ops: Vec<Op<'_>> = changes
            .iter()
            .filter_map(|(key, value)| match value {
                Some(value) => Some(Op::Put(key.as_bytes(), value)),
                // Deleting what is not there needs no record.
                None => self
                    .index
                    .contains(key.as_bytes())
                    .then(|| Op::Delete(key.as_bytes())),
            })
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        let len = ops.iter().fold(4usize, |total, op| {
            let value_len = match op {
                Op::Put(_, value) => Some(value.len()),
                Op::Delete(_) => None,
            };
            total.saturating_add(op_len(op.key().len(), value_len))
        });
        if len > MAX_TRANSACTION_LEN {
            return Err(WriteError::TransactionTooLarge {
                len,
                max: MAX_TRANSACTION_LEN,
            });
        }
        let content = encode_ops(ops.iter().copied()).ok_or(WriteError::TransactionTooLarge {
            len,
            max: MAX_TRANSACTION_LEN,
        })?;
        let loc = match self.segment.append(&content) {
            Ok(loc) => loc,
            Err(e) => {
                self.poisoned = true;
                return Err(e.into());
            }
        };
        self.index.apply(loc, &ops);
        self.maybe_compact();
        Ok(())
    }

    /// Compacts when garbage passes both [`COMPACT_MIN_GARBAGE`] and half the log. A
    /// failure is not the commit's: it is retried once garbage has grown again.
    fn maybe_compact(&mut self) {
        let garbage = self.index.garbage();
        if garbage >= self.compact_at
            && garbage.saturating_mul(2) >= self.segment.end()
            && self.compact().is_err()
        {
            self.compact_at = garbage.saturating_add(COMPACT_MIN_GARBAGE);
        }
    }

    /// Copies every current value into `new`, packing small ones together.
    fn copy_current_values(&self, new: &mut Segment, index: &mut Index) -> io::Result<()> {
        let mut batch: Vec<(SecretBytes, Zeroizing<Vec<u8>>)> = Vec::new();
        let mut batch_len = 4usize;
        let flush = |batch: &mut Vec<(SecretBytes, Zeroizing<Vec<u8>>)>,
                     new: &mut Segment,
                     index: &mut Index|
         -> io::Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let ops: Vec<Op<'_>> = batch
                .iter()
                .map(|(key, value)| Op::Put(key.as_bytes(), value))
                .collect();
            let content = encode_ops(ops.iter().copied())
                .ok_or_else(|| io::Error::other("value too large to copy"))?;
            let loc = new.write_record(&content)?;
            index.apply(loc, &ops);
            drop(ops);
            batch.clear();
            Ok(())
        };
        for loc in self.index.live_records() {
            let content = self.segment.read(loc).map_err(|e| match e {
                ReadError::Io(e) => e,
                _ => io::Error::other("a record failed its integrity check during compaction"),
            })?;
            let ops = decode_ops(&content).map_err(|_| io::Error::other("malformed record"))?;
            for op in ops {
                let Op::Put(key, value) = op else { continue };
                if !self.index.is_current(key, loc.offset) {
                    continue;
                }
                let len = op_len(key.len(), Some(value.len()));
                if batch_len + len > PACKED_RECORD_LEN - RECORD_OVERHEAD {
                    flush(&mut batch, new, index)?;
                    batch_len = 4;
                }
                batch.push((SecretBytes::new(key), Zeroizing::new(value.to_vec())));
                batch_len += len;
            }
        }
        flush(&mut batch, new, index)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn keyslot(&self) -> &KeySlotFile {
        &self.keyslot
    }

    #[cfg(test)]
    pub(crate) fn payload_for_tests(&self) -> &SlotPayload {
        &self.payload
    }

    /// Tests only: after `commits` more commits, every commit fails with an I/O error
    /// and writes nothing (not poisoning the vault); `None` lifts it.
    #[cfg(test)]
    pub(crate) fn fail_commits_after(&mut self, commits: Option<usize>) {
        self.commits_before_failure = commits;
    }

    #[cfg(test)]
    pub(crate) fn has_companion_for_tests(&self) -> bool {
        self.companion.is_some()
    }

    #[cfg(test)]
    pub(crate) fn garbage_bytes(&self) -> u64 {
        self.index.garbage()
    }

    #[cfg(test)]
    pub(crate) fn log_end(&self) -> u64 {
        self.segment.end()
    }
}

fn slot_error(e: SlotDecodeError) -> OpenError {
    match e {
        SlotDecodeError::Unsupported => OpenError::UnsupportedVersion,
        SlotDecodeError::Malformed => OpenError::Corrupted,
    }
}

/// Replays the segment `payload` names into an index.
fn replay(dir: &Path, payload: &SlotPayload) -> Result<(Segment, Index), OpenError> {
    let names = name_key(&payload.data_key);
    let keys = SegmentKeys::derive(&payload.data_key, &payload.segment_secret, payload.epoch);
    let mut index = Index::default();
    let segment = Segment::open(
        &dir.join(segment_name(&names, payload.epoch)),
        keys,
        |loc, content| {
            let ops = decode_ops(content).map_err(|_| OpenError::Corrupted)?;
            index.apply(loc, &ops);
            Ok(())
        },
    )?;
    Ok((segment, index))
}

/// What an open found in the key-slot file, before the log is read.
struct Unlock {
    keyslot: KeySlotFile,
    kek: Kek,
    position: usize,
    payload: SlotPayload,
    companion: Option<Companion>,
    decoy_view: bool,
}

/// Finds the key-slot file in `dir` that `credentials` open: Argon2id once per file of
/// the key-slot size (one, in a vault this code made), every position tried.
fn unlock_dir(
    dir: &Path,
    credentials: &Credentials,
    cost: KdfCost,
) -> Result<(KeySlotFile, Positions, Kek, keyslot::Unlocked), OpenError> {
    let names = match keyslot::candidates(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(OpenError::NoVault),
        Err(e) => return Err(e.into()),
    };
    if names.is_empty() {
        return Err(OpenError::NoVault);
    }
    let mut failure = OpenError::WrongPassphrase;
    for name in names.iter().take(MAX_KEYSLOT_CANDIDATES) {
        let (keyslot, positions) = KeySlotFile::open_named(dir, name)?;
        let kek =
            derive_kek(cost, credentials, keyslot.salt()).map_err(|_| OpenError::OutOfMemory)?;
        match keyslot::unlock(&kek, keyslot.salt(), &positions, 0) {
            Ok(Some(unlocked)) => return Ok((keyslot, positions, kek, unlocked)),
            Ok(None) => {}
            Err(e) => failure = slot_error(e),
        }
    }
    Err(failure)
}

/// The profile `payload` links (its decoy), if its linked KEK opens a position of the
/// other pair. Tried every time: the linked field of a profile without a decoy is
/// random and opens nothing, at the same cost.
fn find_companion(
    keyslot: &KeySlotFile,
    positions: &Positions,
    position: usize,
    payload: &SlotPayload,
) -> Result<Option<Companion>, OpenError> {
    let Some(linked) = &payload.linked_kek else {
        return Ok(None);
    };
    let kek = Kek::from_secret(linked.clone());
    match keyslot::unlock(&kek, keyslot.salt(), positions, pair_mask(position)) {
        Ok(Some(found)) => Ok(Some(Companion {
            kek,
            position: found.position,
            payload: found.payload,
        })),
        Ok(None) => Ok(None),
        Err(e) => Err(slot_error(e)),
    }
}

/// Rewrites the key slot with `payload` (this profile's next state) at the other
/// position of its pair, and re-seals `companion`, one generation on, at the other
/// position of its own pair (see [`KeySlotFile::rewrite`]). Returns this profile's new
/// position; the companion's is updated in place once its new copy is durable.
fn carry_rewrite(
    keyslot: &KeySlotFile,
    kek: &Kek,
    position: usize,
    payload: &SlotPayload,
    companion: Option<&mut Companion>,
) -> Result<usize, RewriteError> {
    let own = SlotWrite {
        kek,
        current: position,
        payload,
    };
    let Some(companion) = companion else {
        return keyslot.rewrite(own, None).map(|moved| moved.own);
    };
    let next = companion.payload.next_generation();
    let result = keyslot.rewrite(
        own,
        Some(SlotWrite {
            kek: &companion.kek,
            current: companion.position,
            payload: &next,
        }),
    );
    let moved = match &result {
        Ok(moved) | Err(RewriteError::OldNotErased { moved, .. }) => *moved,
        Err(RewriteError::Uncertain(_)) => return result.map(|moved| moved.own),
    };
    if let Some(at) = moved.companion {
        companion.position = at;
        companion.payload = next;
    }
    result.map(|moved| moved.own)
}

/// Writes the reserve file: [`SEGMENT_MIN_LEN`] random bytes, synced.
fn write_reserve(dir: &Path, name: &str) -> io::Result<()> {
    let file = fsio::create_new(&dir.join(name))?;
    fsio::fill_random(&file, 0, SEGMENT_MIN_LEN)?;
    file.sync_all()
}

/// The names of the regular files in `dir` that the vault could have made: 32
/// lower-case hex digits. Files with other names are never touched.
pub(crate) fn vault_file_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.len() == NAME_HEX_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
