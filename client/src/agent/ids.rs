//! Ids the client makes: message ids (sent to the contact, for dedup and receipts) and
//! contact ids (local only: vault keys). Both random; neither says anything about who
//! talks to whom.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

/// A message's random id, chosen by its sender. Shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId([u8; 16]);

impl MessageId {
    /// Length in bytes.
    pub const LEN: usize = 16;

    /// A fresh random id.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        Self(id)
    }

    /// The id from its bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The id as 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(text, &mut id).ok()?;
        Some(Self(id))
    }
}

impl core::fmt::Display for MessageId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl core::fmt::Debug for MessageId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // A message id is not secret from its two parties, and helps debugging.
        write!(f, "MessageId({})", self.to_hex())
    }
}

/// A contact's local id: names the contact's records in the vault, and is how an app
/// addresses a contact (stable for the contact's life, unlike its display name). Random;
/// never leaves the device. Shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContactId([u8; 16]);

impl ContactId {
    pub(crate) fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        Self(id)
    }

    /// Parses the 32 hex digits of [`to_hex`](Self::to_hex) (as bytes, e.g. a vault key's
    /// tail).
    pub fn from_hex(text: impl AsRef<[u8]>) -> Option<Self> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(text.as_ref(), &mut id).ok()?;
        Some(Self(id))
    }

    /// The id as 32 lowercase hex digits.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl core::fmt::Debug for ContactId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ContactId(..)")
    }
}
