//! The explicit, versioned form in which a ratchet is stored (by the client, inside
//! its encrypted vault). It holds every secret of the session: never write it
//! anywhere unencrypted. Zeroized on drop, redacted in `Debug`.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::RatchetState;
use super::keys::Chain;
use super::skipped::{MAX_SKIPPED_KEYS, SkippedKey, SkippedKeys};
use crate::primitives::{DhSecret, Secret32};

/// Snapshot format version written by this build.
pub const SNAPSHOT_VERSION: u8 = 1;

/// A stored ratchet, for the caller's encrypted store only.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct RatchetSnapshot {
    version: u8,
    ad: [u8; 32],
    root: [u8; 32],
    dh_self: [u8; 32],
    send: ChainSnapshot,
    prev_send_n: u32,
    hk_send: [u8; 32],
    nhk_send: [u8; 32],
    recv: Option<ChainSnapshot>,
    hk_recv: Option<[u8; 32]>,
    nhk_recv: [u8; 32],
    skipped: Vec<SkippedSnapshot>,
}

#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct ChainSnapshot {
    key: [u8; 32],
    n: u32,
}

#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SkippedSnapshot {
    header_key: [u8; 32],
    n: u32,
    message_key: [u8; 32],
    stored_at: u64,
}

impl core::fmt::Debug for RatchetSnapshot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RatchetSnapshot([redacted])")
    }
}

/// Why a snapshot could not be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Written by a format version this build does not read.
    #[error("ratchet snapshot version {0} is not supported")]
    UnsupportedVersion(u8),
    /// Its fields contradict each other or exceed a limit.
    #[error("ratchet snapshot is inconsistent")]
    Inconsistent,
}

fn chain_snapshot(chain: &Chain) -> ChainSnapshot {
    ChainSnapshot {
        key: *chain.key.as_bytes(),
        n: chain.n,
    }
}

fn chain_from(snapshot: &ChainSnapshot) -> Chain {
    Chain {
        key: Secret32::from_bytes(snapshot.key),
        n: snapshot.n,
    }
}

impl RatchetState {
    /// Everything needed to resume this session later.
    pub fn snapshot(&self) -> RatchetSnapshot {
        RatchetSnapshot {
            version: SNAPSHOT_VERSION,
            ad: self.ad,
            root: *self.root.as_bytes(),
            dh_self: *self.dh_self.to_bytes(),
            send: chain_snapshot(&self.send),
            prev_send_n: self.prev_send_n,
            hk_send: *self.hk_send.as_bytes(),
            nhk_send: *self.nhk_send.as_bytes(),
            recv: self.recv.as_ref().map(chain_snapshot),
            hk_recv: self.hk_recv.as_ref().map(|k| *k.as_bytes()),
            nhk_recv: *self.nhk_recv.as_bytes(),
            skipped: self
                .skipped
                .entries
                .iter()
                .map(|k| SkippedSnapshot {
                    header_key: *k.header_key.as_bytes(),
                    n: k.n,
                    message_key: *k.message_key.as_bytes(),
                    stored_at: k.stored_at,
                })
                .collect(),
        }
    }

    /// Resumes a session from a snapshot.
    pub fn from_snapshot(s: &RatchetSnapshot) -> Result<Self, SnapshotError> {
        if s.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(s.version));
        }
        if s.recv.is_some() != s.hk_recv.is_some() || s.skipped.len() > MAX_SKIPPED_KEYS {
            return Err(SnapshotError::Inconsistent);
        }
        Ok(Self {
            ad: s.ad,
            root: Secret32::from_bytes(s.root),
            dh_self: DhSecret::from_bytes(s.dh_self),
            send: chain_from(&s.send),
            prev_send_n: s.prev_send_n,
            hk_send: Secret32::from_bytes(s.hk_send),
            nhk_send: Secret32::from_bytes(s.nhk_send),
            recv: s.recv.as_ref().map(chain_from),
            hk_recv: s.hk_recv.map(Secret32::from_bytes),
            nhk_recv: Secret32::from_bytes(s.nhk_recv),
            skipped: SkippedKeys {
                entries: s
                    .skipped
                    .iter()
                    .map(|k| SkippedKey {
                        header_key: Secret32::from_bytes(k.header_key),
                        n: k.n,
                        message_key: Secret32::from_bytes(k.message_key),
                        stored_at: k.stored_at,
                    })
                    .collect(),
            },
        })
    }
}
