//! Identity keys: who a person is to one contact.
//!
//! Passage makes a fresh [`Identity`] for every contact relationship, so two
//! contacts comparing notes cannot link the same person by key. An identity is an
//! X25519 key (for the handshake's Diffie-Hellman steps) and an Ed25519 key (which
//! signs the invitation and the accept message, tying the two keys together).

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::primitives::{DhPublic, DhSecret, SigningKey, VerifyingKey};

/// One side's secret identity for one contact. Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct Identity {
    pub(crate) dh: DhSecret,
    pub(crate) signing: SigningKey,
}

impl Identity {
    /// A fresh random identity.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self {
            dh: DhSecret::generate(rng),
            signing: SigningKey::generate(rng),
        }
    }

    /// The public half, which the other side learns during the handshake.
    pub fn public(&self) -> IdentityPublic {
        IdentityPublic {
            dh: self.dh.public_key(),
            signing: self.signing.verifying_key(),
        }
    }

    /// The secret keys as a snapshot, for the caller's encrypted store.
    pub fn snapshot(&self) -> IdentitySnapshot {
        IdentitySnapshot {
            dh: *self.dh.to_bytes(),
            signing: *self.signing.to_bytes(),
        }
    }

    /// Restores an identity from a snapshot.
    pub fn from_snapshot(snapshot: &IdentitySnapshot) -> Self {
        Self {
            dh: DhSecret::from_bytes(snapshot.dh),
            signing: SigningKey::from_bytes(snapshot.signing),
        }
    }
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

/// The public keys of an identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct IdentityPublic {
    /// X25519 key used in the handshake.
    pub dh: DhPublic,
    /// Ed25519 key that signs invitations and accept messages.
    pub signing: VerifyingKey,
}

impl IdentityPublic {
    /// Encoded length: X25519 key then Ed25519 key.
    pub const LEN: usize = 64;

    /// `dh ‖ signing`, the form that goes into transcripts and safety numbers.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..32].copy_from_slice(self.dh.as_bytes());
        out[32..].copy_from_slice(self.signing.as_bytes());
        out
    }

    /// Inverse of [`IdentityPublic::to_bytes`].
    pub fn from_bytes(bytes: &[u8; Self::LEN]) -> Self {
        let mut dh = [0u8; 32];
        let mut signing = [0u8; 32];
        dh.copy_from_slice(&bytes[..32]);
        signing.copy_from_slice(&bytes[32..]);
        Self {
            dh: DhPublic::from_bytes(dh),
            signing: VerifyingKey::from_bytes(signing),
        }
    }
}

/// An identity's secret keys, for storage inside the client's encrypted vault only.
/// Zeroized on drop, redacted in `Debug`.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct IdentitySnapshot {
    dh: [u8; 32],
    signing: [u8; 32],
}

impl core::fmt::Debug for IdentitySnapshot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IdentitySnapshot([redacted])")
    }
}
