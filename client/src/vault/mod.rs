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
//!   rather than silently rolling values back (see [`segment`](self) docs in source).
//! - **Wrong passphrase**: [`OpenError::WrongPassphrase`], nothing written. The same
//!   work (one Argon2id run, every slot position tried) whatever the outcome.
//! - **Sticky failure**: after an fsync error the vault refuses writes
//!   ([`WriteError::Poisoned`]); reopening recovers the last durable state.
//! - **Secrets**: keys, values, passphrases and derived keys live in zeroize-on-drop
//!   types and never appear in `Debug` or error text.
//!
//! ## Limits, and what the duress and disappearing-messages issues build on
//!
//! - Crypto-shredding is as good as the storage's overwrite in place of a 4 KiB key-slot
//!   position. A log-structured file system (F2FS) or a flash translation layer may keep
//!   the old block until it is trimmed; a [`PlatformSecret`] from a hardware keystore
//!   that can really delete a key is the strong form (rotating it is future work).
//! - A rollback (someone restoring an older copy of the directory) cannot be detected
//!   without a trusted counter.
//! - The number and sizes of segment files show roughly how much a profile holds.

mod error;
mod format;
mod fsio;
mod index;
mod kdf;
mod keyslot;
mod secret;
mod segment;
mod store;

pub use error::{ChangePassphraseError, CreateError, OpenError, ReadError, WriteError};
pub use format::{MAX_KEY_LEN, MAX_TRANSACTION_LEN};
pub use kdf::{ARGON2_LANES, ARGON2_MEMORY_MIB, ARGON2_PASSES};
pub use secret::{Credentials, Passphrase, PlatformSecret};
pub use store::{COMPACT_MIN_GARBAGE, Transaction, Vault};

#[cfg(test)]
mod tests;
