//! The vault: all of a client's state in one encrypted key → value store under a data
//! directory, with nothing on disk that tells it apart from random bytes without the
//! passphrase.
//!
//! ```text
//!  passphrase (+ platform secret) ──Argon2id (one run, fixed cost)──► KEK
//!      KEK ──HKDF(position i)──► slot key i ──XChaCha20-Poly1305──► key-slot position i
//!          └─ a used position holds: data key, segment epoch + secret, generation
//!  data key ──HKDF──► name key ──HMAC(epoch)──► segment file name (32 hex digits)
//!  data key + segment secret ──HKDF(epoch)──► header key, body key
//!      └─► segment: records [nonce ‖ sealed length ‖ sealed (padded transaction)] ‖ random
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
//!   work (one Argon2id run, every slot position tried) whatever the outcome.
//! - **Sticky failure**: after an fsync error the vault refuses writes
//!   ([`WriteError::Poisoned`]); reopening recovers the last durable state.
//! - **Secrets**: keys, values, passphrases and derived keys live in zeroize-on-drop
//!   types and never appear in `Debug` or error text.
//!
//! ## Limits
//!
//! - Crypto-shredding is as good as the storage's overwrite in place of a 4 KiB key-slot
//!   position. A log-structured file system (F2FS) or a flash translation layer may keep
//!   the old block until it is trimmed; a [`PlatformSecret`] from a hardware keystore
//!   that can really delete a key is the strong form (rotating it is future work).
//! - A rollback (someone restoring an older copy of the whole directory) cannot be
//!   detected without a trusted counter.
//! - Visible without the passphrase: the key-slot file's fixed name (so a tool that
//!   knows this format can tell the directory is one), the number of files, and each
//!   segment's size to within its power-of-two (then 16 MiB) step.
//! - [`Vault::get`] returns a `Result`: values stay encrypted on disk and a read can
//!   fail (I/O, or the file changed under the open vault).
//!
//! ## What the duress and disappearing-messages issues build on (no format change)
//!
//! - **Decoy profile**: a second used position, sealed under the duress passphrase's
//!   KEK, with its own data key, segment and profile id. The real profile's payload
//!   marks that position in `reserved_positions`, so its own rewrites never take it,
//!   and can carry the decoy's keys (4 KiB of room) so the real session keeps the decoy
//!   lived in. Four positions hold real + decoy + one spare for atomic rewrites.
//! - **Duress passphrase**: the payload's `kind` byte (0 today) gets a second value
//!   whose payload lists positions to erase. Opening with it erases them (random bytes,
//!   fsync: the real data key is gone) before opening the decoy. The file looks the same
//!   with zero, one or two live positions, because an unused position is random bytes
//!   and every position is tried at every open. Still to do there: equal open times
//!   (every open could rewrite its own position, hiding the duress erase), and a
//!   placeholder file so the file count does not change when a decoy is created (the
//!   real segment, left behind unreadable, still shows its size).
//! - **Panic wipe**: [`Vault::destroy`] (one position overwritten and synced, then the
//!   segment unlinked): well under a second.
//! - **Disappearing messages**: [`Vault::delete`] then [`Vault::compact`] makes a value
//!   unreadable even with the passphrase (tested). If compacting the whole store per
//!   expiry costs too much, the payload can hold several (epoch, secret) pairs, one per
//!   time-bucketed segment, so that expiry drops a whole segment's secret without
//!   rewriting live data.

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
