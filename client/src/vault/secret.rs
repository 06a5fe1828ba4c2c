//! What unlocks a vault, and the byte strings it holds in memory. Every type here is
//! zeroized on drop and prints redacted in `Debug`.

use zeroize::{Zeroize, Zeroizing};

/// A passphrase, as the bytes the user typed. The vault does no Unicode normalization:
/// an app that lets the same passphrase arrive in two forms (NFC and NFD) normalizes it
/// before it gets here.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Takes the passphrase's bytes (the buffer is moved, not copied).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<String> for Passphrase {
    fn from(text: String) -> Self {
        Self::from_bytes(text.into_bytes())
    }
}

impl From<&str> for Passphrase {
    fn from(text: &str) -> Self {
        Self::from_bytes(text.as_bytes().to_vec())
    }
}

impl core::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Passphrase([redacted])")
    }
}

/// Secret bytes a platform keeps outside the data directory, such as a key held by a
/// phone's hardware keystore, mixed into the key derivation as Argon2's secret input
/// (RFC 9106 §3.1, `K`). With one, an image of the disk plus the passphrase is not
/// enough: the device itself is needed. The CLI has none.
pub struct PlatformSecret(Zeroizing<Vec<u8>>);

impl PlatformSecret {
    /// Takes the secret's bytes (the buffer is moved, not copied).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl core::fmt::Debug for PlatformSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PlatformSecret([redacted])")
    }
}

/// Everything that unlocks a vault: a passphrase and, on a platform that has one, a
/// [`PlatformSecret`].
#[derive(Debug)]
pub struct Credentials {
    pub(crate) passphrase: Passphrase,
    pub(crate) platform_secret: Option<PlatformSecret>,
}

impl Credentials {
    /// A passphrase alone (the CLI's case).
    pub fn new(passphrase: impl Into<Passphrase>) -> Self {
        Self {
            passphrase: passphrase.into(),
            platform_secret: None,
        }
    }

    /// Adds a platform secret; the same one is then needed at every open.
    pub fn with_platform_secret(mut self, secret: PlatformSecret) -> Self {
        self.platform_secret = Some(secret);
        self
    }
}

/// An owned byte string that is wiped when dropped: vault keys (application names such
/// as `contact/<id>`) as the index holds them. Ordered bytewise, so prefixes are ranges.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl core::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretBytes([redacted; {}])", self.0.len())
    }
}
