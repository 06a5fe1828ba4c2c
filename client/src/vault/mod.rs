//! The vault: all of a client's state in one encrypted key → value store under a data
//! directory, with nothing on disk that tells it apart from random bytes without the
//! passphrase.
//!
//! ```text
//!  passphrase (+ platform secret) ──Argon2id (one run, fixed cost)──► KEK
//!      KEK ──HKDF(position i)──► slot key i ──XChaCha20-Poly1305──► key-slot position i
//!          └─ a used position holds: data key, segment epoch + secret, generation,
//!             and for a real profile with a decoy, the decoy's KEK
//!  data key ──HKDF──► name key ──HMAC(epoch)──► segment file name (32 hex digits)
//!  data key + segment secret ──HKDF(epoch)──► header key, body key
//!      └─► segment: records [nonce ‖ sealed length ‖ sealed (padded transaction)] ‖ random
//!
//!  directory: key-slot file (random name, 20 KiB) ‖ the profile's segment ‖ one more file:
//!             the reserve (64 KiB of random bytes, made by `create`), or the decoy's
//!             segment, or after a duress switch the real profile's old segment
//! ```
//!
//! ## Quick start
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use passage_client::vault::{Credentials, Vault};
//!
//! let mut vault = Vault::create("/data/app", &Credentials::new("correct horse battery"))?;
//! vault.put("settings/theme", b"dark")?;
//! vault.transaction(|tx| {
//!     tx.put("contact/42", b"...")?;
//!     tx.delete("invitation/7")
//! })?;
//! vault.close();
//!
//! let vault = Vault::open("/data/app", &Credentials::new("correct horse battery"))?;
//! assert_eq!(vault.get("settings/theme")?.as_deref().map(Vec::as_slice), Some(&b"dark"[..]));
//! # Ok(()) }
//! ```
//!
//! ## Why an encrypted log, not a database under an encrypting layer
//!
//! The store is an append-only log of encrypted records, each padded to a power-of-two
//! size, replayed into an in-memory index at open and compacted into a fresh segment
//! when more than half of it is garbage. An embedded database (redb, sled, SQLite)
//! under a page-encrypting layer was the alternative. We chose the log because:
//!
//! - **Nothing in clear, by construction.** A database owns its file layout: page
//!   headers, free lists, a WAL or journal, lock and temp files. Each must be found and
//!   encrypted, and a new version of the engine may add one. The log writes exactly two
//!   kinds of files, both of which are fully ours, ciphertext or random. (SQLCipher, the
//!   usual answer, is excluded anyway: plaintext WAL/journal headers, OpenSSL.)
//! - **Deletion that can become final.** A database reuses pages in place and keeps old
//!   ones in its free list and journal; there is no point at which a deleted row's bytes
//!   are known to be unreadable. Here every segment is sealed under a key derived from a
//!   random per-segment secret that lives only in the key slot. Compaction copies the
//!   current values into a new segment under a new secret and overwrites the key slot:
//!   the old segment's blocks, wherever the flash keeps them, become undecryptable even
//!   with the passphrase. Disappearing messages need exactly this.
//! - **Crash safety we can reason about in a page.** A commit is one record, written
//!   and fsynced; replay stops at the first record that fails its AEAD. Every other
//!   step (new segment, key-slot rewrite) is write-new, sync, then switch.
//! - **The state is small.** Identities, contacts, ratchet snapshots and messages of a
//!   phone fit an in-memory index of keys; values stay encrypted on disk until read.
//!
//! What the log costs: the whole log is read at open (fast: ChaCha20 runs at about
//! 1 GB/s), keys are held in memory while the vault is open, and compaction rewrites
//! all current values (amortized by the half-garbage rule).
//!
//! ## Guarantees
//!
//! - **Random-looking**: no magic number, no version in clear, 32-hex-digit file names
//!   (the key-slot file's random, chosen at creation; a segment's an HMAC under a key
//!   inside the key slot), temporary files encrypted and named the same way, record and
//!   file sizes padded to powers of two, nothing written outside the directory.
//! - **Durable**: a write that returned `Ok` survives `kill -9` and power loss (on
//!   storage that honours fsync). A torn last record was never acknowledged and is
//!   ignored; a damaged earlier record fails the open with [`OpenError::Corrupted`]
//!   rather than silently rolling values back to an older ratchet state. Damage to the
//!   very last record cannot be told from a torn write: that one commit is dropped.
//! - **Wrong passphrase**: [`OpenError::WrongPassphrase`], nothing written. The same
//!   work (one Argon2id run, every slot position tried) whatever the outcome. A
//!   successful open rewrites the key-slot file before it reads the log (see below),
//!   even when the log then turns out damaged; nothing else.
//! - **Sticky failure**: after an fsync error the vault refuses writes
//!   ([`WriteError::Poisoned`]); reopening recovers the last durable state.
//! - **Secrets**: keys, values, passphrases and derived keys live in zeroize-on-drop
//!   types and never appear in `Debug` or error text.
//!
//! ## Duress passphrase and decoy profile
//!
//! [`Vault::set_duress`] (on the real profile) makes a decoy: a fresh data key and
//! segment, sealed under the duress passphrase's KEK into a position of the *other
//! pair* of positions (0–1, 2–3; each profile keeps to its pair). The decoy's payload
//! is an ordinary profile's in every field: no kind, no role, no list of positions. The
//! real payload's linked-KEK field holds the decoy's KEK (a profile without a decoy has
//! random bytes there), so that the real passphrase finds the decoy, carries it along
//! and, with [`Vault::open_decoy`], opens it for its owner to fill.
//!
//! What a duress open erases is the code's rule, not the slot's: **every open rewrites
//! the whole key-slot file** in the same two synced steps (see `KeySlotFile::rewrite`):
//! the profile's new copy into the other position of its pair, and the other pair
//! either re-sealed (the companion the profile knows of, one generation on) or, with
//! no companion, overwritten with random bytes; then the old copies erased. The decoy
//! knows of no other profile, so the duress open is simply the decoy's ordinary open:
//! its first step overwrites the real profile's pair before anything of the decoy is
//! read. The caller gets an ordinary [`Vault`]; no flag says what happened. Afterwards
//! the real passphrase gets [`OpenError::WrongPassphrase`], like any other wrong one,
//! and the decoy lives on as the only profile (it compacts, changes passphrase, even
//! sets its own duress passphrase like any vault). A crash during the switch leaves the
//! real pair or the decoy's old copy in place, and the next duress open erases again:
//! tested for both halves of the write.
//!
//! What keeps a duress passphrase from showing, to someone with images of the storage
//! (taken before the passphrase is demanded, and again later):
//!
//! - **Every open changes the same blocks.** All four positions get fresh bytes at
//!   every open, compaction and passphrase change, with or without a decoy; the salt
//!   block never changes; a wrong passphrase writes nothing. Two images taken around
//!   any number of opens differ in the same blocks of the same files for a profile with
//!   a duress passphrase and one without (`tests/tests/forensic_images.rs` compares the
//!   change shapes; the version-1 format failed it).
//! - **The slots are all alike.** Decrypted with the duress passphrase, the decoy's
//!   position reads exactly as a profile that never had a decoy: the same fields, a
//!   linked-KEK field that opens nothing. The real profile's position opens only with
//!   the real passphrase.
//! - **No common name.** The key-slot file's name is random per install (found at open
//!   by its size), segment names derive from the data key.
//! - **The number and sizes of files**: `create` makes a reserve file of random bytes,
//!   which the decoy's segment replaces, so a directory holds three files with or
//!   without a decoy. The switch removes nothing: the real segment stays where it was,
//!   unreadable, and stands for the decoy's reserve.
//! - **Behaviour afterwards**: the switched-to profile is an ordinary one that knows of
//!   no other, the same as a vault that never had a decoy: the same errors, the same
//!   file effects (a test runs one lifecycle on both and compares every error text and
//!   file size). The errors that name the decoy (`OpenedAsDecoy`) come only from a vault
//!   opened with [`Vault::open_decoy`] and the real passphrase, and nothing opens that
//!   way after the switch. [`OpenError::NoDecoy`] (from `open_decoy` with the
//!   switched-to credentials) is the same answer any profile without a duress
//!   passphrase gives.
//! - **Open time**: the same one Argon2id run and the same trial decryption of every
//!   position (and of every position again with the linked-KEK field) for a real, a
//!   duress and a wrong passphrase; the same key-slot writes for the real and the duress
//!   one (`cargo bench -p passage-client --bench vault_open`). Replaying the log costs
//!   about a millisecond per megabyte, so a decoy much smaller than the real profile
//!   opens slightly faster than the real one did.
//!
//! ## Format versions
//!
//! Version 2 (this one) changed only the key-slot file: slot payloads without a role,
//! the whole-file rewrite, and a random file name. A version-1 vault opens as before;
//! its first open rewrites every used position in version 2 (a version-1 duress slot
//! reads as the plain profile it is now) and renames the key-slot file from version
//! 1's fixed name. A version-1 build refuses the rewritten file (it reads as a wrong
//! passphrase), so keep a copy before upgrading if you may go back.
//!
//! ## Panic wipe
//!
//! [`Vault::panic`] needs no passphrase: it overwrites the whole key-slot file (salt,
//! every position) with random bytes and syncs, removes every vault file (32 hex
//! digits; nothing else is touched), the key-slot file last, and removes the directory
//! if that leaves it empty. [`Vault::panic_wipe`] does the same from an open vault and
//! wipes its keys from memory. Tens of milliseconds whatever the vault's size
//! (segments are unlinked, not overwritten: their keys are gone).
//!
//! ## Disappearing messages
//!
//! Delete the expired keys (one transaction), then call [`Vault::compact`]: when it
//! returns `Ok`, the deleted values are unreadable even with the passphrase (the old
//! segment's secret no longer exists; tested against an image of the old segment). It
//! rewrites the live values: about 50 ms for 3,000 messages (1 MB) on the development
//! machine, cheap enough to run at each open that found something expired. For
//! profiles holding tens of megabytes (voice), time-bucketed segments, each with its
//! own secret in the payload, would let expiry drop a whole segment's secret without
//! rewriting anything: not built.
//!
//! ## Limits: what none of this protects against
//!
//! - **Overwrite in place.** Crypto-shredding is as good as the storage's overwrite in
//!   place of a 4 KiB key-slot position. A log-structured file system (F2FS, common on
//!   Android) or a flash translation layer (wear levelling) may keep the old block
//!   until it is trimmed, and a forensic tool reading raw flash may find the real
//!   profile's old position after a duress switch or a panic wipe. A
//!   [`PlatformSecret`] from a hardware keystore that can really delete a key is the
//!   strong form (rotating or deleting it is future work).
//! - **An image taken before the switch.** Ordinary opens cannot be told apart in two
//!   images (above), but an image taken *before* a duress open still holds the real
//!   profile: an examiner who images first, then makes the owner type the duress
//!   passphrase on the device, holds a copy that the real passphrase opens. The duress
//!   passphrase protects the device, not copies of it. Likewise an image taken before a
//!   panic wipe keeps everything it held.
//! - **Someone who knows this format and has the duress passphrase** sees, inside the
//!   decoy, its counters (the generation rises at every open of either profile, as if
//!   the decoy were opened each time, while its log gains only what its owner wrote
//!   into it) and a third file that is not its own: normal for any vault (the reserve),
//!   but larger than a fresh reserve when it is the real profile's old segment.
//! - **Coercion with both passphrases**, and screenshots, copies or backups made by the
//!   other side of a conversation.
//! - A rollback (someone restoring an older copy of the whole directory) cannot be
//!   detected without a trusted counter.
//! - Visible without the passphrase: that a directory holds three 32-hex-named files,
//!   one of exactly 20,480 bytes (a tool that knows this format can guess what it is,
//!   but no name is shared between installs), the number of files, and each segment's
//!   size to within its power-of-two (then 16 MiB) step.
//! - A process that has the vault open holds its keys in memory: a panic wipe run from
//!   elsewhere removes the files, but that process should be stopped too.
//! - [`Vault::get`] returns a `Result`: values stay encrypted on disk and a read can
//!   fail (I/O, or the file changed under the open vault).

mod error;
mod format;
mod fsio;
mod index;
mod kdf;
mod keyslot;
mod secret;
mod segment;
mod store;
mod transaction;
mod wipe;

pub use error::{
    ChangePassphraseError, CreateError, OpenError, ReadError, SetDuressError, WriteError,
};
pub use format::{MAX_KEY_LEN, MAX_TRANSACTION_LEN};
pub use kdf::{ARGON2_LANES, ARGON2_MEMORY_MIB, ARGON2_PASSES};
pub use secret::{Credentials, Passphrase, PlatformSecret};
pub use store::{COMPACT_MIN_GARBAGE, Vault};
pub use transaction::Transaction;

#[cfg(test)]
mod tests;
