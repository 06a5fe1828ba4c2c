//! Message keys kept for messages that have not arrived yet (out-of-order delivery).
//!
//! Keys are indexed by (header key, message number), as the header-encryption
//! variant of the double ratchet requires. The store is bounded two ways: at most
//! [`MAX_SKIPPED_KEYS`] keys (the oldest go first), and a key older than
//! [`MAX_SKIPPED_KEY_AGE`] seconds is forgotten. A key is deleted the moment it
//! decrypts its message, so a replay finds nothing.

use std::collections::VecDeque;

use super::keys::{ENCRYPTED_HEADER_LEN, Header};
use crate::primitives::Secret32;

/// Most message keys held for messages not yet received, across all chains
/// (libsignal's figure). Each costs about 100 bytes and, at worst, one header
/// trial decryption per distinct chain per incoming message.
pub const MAX_SKIPPED_KEYS: usize = 2000;

/// Seconds a skipped message key is kept: the relay keeps undelivered messages for
/// 21 days by default, so a late message can still arrive within that, plus slack.
pub const MAX_SKIPPED_KEY_AGE: u64 = 31 * 24 * 3600;

#[derive(Clone)]
pub(crate) struct SkippedKey {
    pub(crate) header_key: Secret32,
    pub(crate) n: u32,
    pub(crate) message_key: Secret32,
    pub(crate) stored_at: u64,
}

/// The store, oldest first.
#[derive(Clone, Default)]
pub(crate) struct SkippedKeys {
    pub(crate) entries: VecDeque<SkippedKey>,
}

impl SkippedKeys {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forgets keys older than [`MAX_SKIPPED_KEY_AGE`] at `now`.
    pub(crate) fn expire(&mut self, now: u64) {
        self.entries
            .retain(|k| k.stored_at.saturating_add(MAX_SKIPPED_KEY_AGE) >= now);
    }

    /// Finds the key for an encrypted header, ignoring keys expired at `now`: one
    /// trial decryption per distinct header key (a chain's keys sit next to each other).
    pub(crate) fn find(
        &self,
        ad: &[u8],
        sealed: &[u8; ENCRYPTED_HEADER_LEN],
        now: u64,
    ) -> Option<usize> {
        let mut opened: Option<(&Secret32, Header)> = None;
        let mut last_failed: Option<&Secret32> = None;
        for (index, entry) in self.entries.iter().enumerate() {
            if entry.stored_at.saturating_add(MAX_SKIPPED_KEY_AGE) < now {
                continue;
            }
            let header = match opened {
                Some((hk, header)) if hk.ct_eq(&entry.header_key) => header,
                _ => {
                    if last_failed.is_some_and(|hk| hk.ct_eq(&entry.header_key)) {
                        continue;
                    }
                    match Header::open(&entry.header_key, ad, sealed) {
                        Some(header) => {
                            opened = Some((&entry.header_key, header));
                            header
                        }
                        None => {
                            last_failed = Some(&entry.header_key);
                            continue;
                        }
                    }
                }
            };
            if header.n == entry.n {
                return Some(index);
            }
        }
        None
    }

    pub(crate) fn remove(&mut self, index: usize) -> Option<SkippedKey> {
        self.entries.remove(index)
    }

    /// Adds keys, evicting the oldest beyond [`MAX_SKIPPED_KEYS`].
    pub(crate) fn extend(&mut self, keys: Vec<SkippedKey>) {
        self.entries.extend(keys);
        while self.entries.len() > MAX_SKIPPED_KEYS {
            self.entries.pop_front();
        }
    }
}
