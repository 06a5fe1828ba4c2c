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
//!  directory: key-slot file ‖ the profile's segment ‖ one more file of the same kind:
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
//!   (the key-slot file's is fixed, a segment's is an HMAC under a key inside the key
//!   slot), temporary files encrypted and named the same way, record and file sizes
//!   padded to powers of two, nothing written outside the directory.
//! - **Durable**: a write that returned `Ok` survives `kill -9` and power loss (on
//!   storage that honours fsync). A torn last record was never acknowledged and is
//!   ignored; a damaged earlier record fails the open with [`OpenError::Corrupted`]
//!   rather than silently rolling values back to an older ratchet state. Damage to the
//!   very last record cannot be told from a torn write: that one commit is dropped.
//! - **Wrong passphrase**: [`OpenError::WrongPassphrase`], nothing written. The same
//!   work (one Argon2id run, every slot position tried) whatever the outcome. A
//!   successful open rewrites its own key-slot position (see below); nothing else.
//! - **Sticky failure**: after an fsync error the vault refuses writes
//!   ([`WriteError::Poisoned`]); reopening recovers the last durable state.
//! - **Secrets**: keys, values, passphrases and derived keys live in zeroize-on-drop
//!   types and never appear in `Debug` or error text.
//!
//! ## Duress passphrase and decoy profile
//!
//! [`Vault::set_duress`] (on the real profile) makes a decoy: a fresh data key and
//! segment, sealed under the duress passphrase's KEK into a position of the *other
//! pair* of positions (0–1, 2–3; each profile keeps to its pair, so neither's rewrites
//! touch the other). The decoy's payload has kind 1, "duress", and names the real
//! profile's pair as the positions to erase; the real payload names the decoy's pair
//! as reserved and carries the decoy's KEK, so that [`Vault::open_decoy`] opens the
//! decoy with the real passphrase and the owner can give it contacts and history.
//! Setting it again replaces the decoy (its position is erased, its segment removed).
//!
//! [`Vault::open`] with the duress passphrase finds the duress slot and, before it
//! reads anything of the decoy, rewrites it as an ordinary profile that knows of no
//! other: that rewrite overwrites every other position with random bytes (the real
//! data key is gone) in the same synced step as it seals the new copy. The caller gets
//! an ordinary [`Vault`]; no flag says what happened. Afterwards the real passphrase
//! gets [`OpenError::WrongPassphrase`], like any other wrong one, and the decoy lives
//! on as the only profile (it compacts, changes passphrase, even sets its own duress
//! passphrase like any vault). A crash during the switch leaves the duress slot (or
//! its converted copy) in place and the next open with the duress passphrase erases
//! again: tested for both halves of the write.
//!
//! What keeps the switch from showing:
//!
//! - **Every successful open rewrites its key slot** the same way (new copy sealed into
//!   the spare, every other unreserved position overwritten with random bytes, sync,
//!   old copy erased, sync). The switch's erase is that same rewrite: the same writes,
//!   the same file, the same time, and the key-slot file's modification time changes
//!   at every open anyway. A wrong passphrase writes nothing.
//! - **The key-slot file** keeps its size and random look with zero, one or two live
//!   profiles (four fixed positions, unused ones random, all tried at every open).
//! - **The number and sizes of files**: `create` makes a reserve file of random bytes,
//!   which the decoy's segment replaces, so a directory holds three files with or
//!   without a decoy. The switch removes nothing: the real segment stays where it was,
//!   unreadable, and stands for the decoy's reserve.
//! - **Behaviour afterwards**: the switched-to slot is kind 0 with no reserved
//!   positions and no decoy, the same payload shape as a vault that never had a
//!   decoy. Its opens, compactions and passphrase changes make the same writes. It
//!   can also set its own duress passphrase, whose decoy takes the free pair and
//!   whose segment replaces the third file. Each of these returns the same errors
//!   and changes the files the same way as in a vault that never had a decoy (a
//!   test runs one lifecycle on both and compares every error text and file size).
//!   The errors that name the decoy (`OpenedAsDecoy`) come only from a vault opened
//!   with [`Vault::open_decoy`] and the real passphrase, and nothing opens that way
//!   after the switch. [`OpenError::NoDecoy`] (from `open_decoy` with the switched-to
//!   credentials) is the same answer any profile without a duress passphrase gives.
//! - **Open time**: the same one Argon2id run and the same trial decryption of every
//!   position for a real, a duress and a wrong passphrase; the same key-slot writes for
//!   the real and the duress one (`cargo bench -p passage-client --bench vault_open`).
//!   Replaying the log costs about a millisecond per megabyte, so a decoy much smaller
//!   than the real profile opens slightly faster than the real one did.
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
//! - **Two images.** An image of the device taken before the duress switch and
//!   compared with one taken after shows which key-slot positions changed and that a
//!   file stopped being used. It cannot show what the old positions held, but it can
//!   suggest that more than one profile existed. Likewise an image taken before a panic
//!   wipe keeps everything it held (the passphrase still opens that copy).
//! - **Someone who knows this format and has the duress passphrase** sees, inside the
//!   decoy, its counters (how often it was opened or compacted) and a third file that
//!   is not its own: normal for any vault (the reserve), but larger than a fresh
//!   reserve when it is the real profile's old segment.
//! - **Coercion with both passphrases**, and screenshots, copies or backups made by the
//!   other side of a conversation.
//! - A rollback (someone restoring an older copy of the whole directory) cannot be
//!   detected without a trusted counter.
//! - Visible without the passphrase: the key-slot file's fixed name (so a tool that
//!   knows this format can tell the directory is one), the number of files, and each
//!   segment's size to within its power-of-two (then 16 MiB) step.
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
