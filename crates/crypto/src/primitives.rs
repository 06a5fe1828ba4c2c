//! Thin, typed wrappers over the vetted primitives Passage uses, so that every
//! rule about them lives in one place:
//!
//! - X25519 (x25519-dalek): a Diffie-Hellman result that is all zeros (a low-order
//!   peer key) is refused, never used as a secret.
//! - Ed25519 (ed25519-dalek): signatures are checked with `verify_strict`, which
//!   refuses non-canonical and small-order encodings.
//! - ML-KEM-768 (RustCrypto `ml-kem`, FIPS 203): decapsulation keys are kept as their
//!   64-byte seed; encapsulation keys are validated when parsed.
//! - ChaCha20-Poly1305 (RFC 8439, ring) and XChaCha20-Poly1305 (24-byte nonces, safe to
//!   pick at random; the subkey by the chacha20 crate's HChaCha20), HKDF-SHA256
//!   (RFC 5869), HMAC-SHA256 and SHA-256.
//!
//! Every secret here is zeroized on drop and prints as `[redacted]` in `Debug`.

use hmac::{Hmac, KeyInit as _, Mac};
use ml_kem::MlKem768;
use ml_kem::kem::{Decapsulate, KeyExport};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of an X25519 key or shared secret.
pub const X25519_LEN: usize = 32;
/// Length of an Ed25519 public key.
pub const ED25519_PUBLIC_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const ED25519_SIGNATURE_LEN: usize = 64;
/// Length of an ML-KEM-768 encapsulation (public) key, FIPS 203 table 3.
pub const MLKEM768_PUBLIC_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext, FIPS 203 table 3.
pub const MLKEM768_CIPHERTEXT_LEN: usize = 1088;
/// Length of the seed (d ‖ z) an ML-KEM-768 decapsulation key is derived from.
pub const MLKEM768_SEED_LEN: usize = 64;
/// Length of the authentication tag both AEADs append.
pub const AEAD_TAG_LEN: usize = 16;
/// Length of a ChaCha20-Poly1305 nonce.
pub const CHACHA_NONCE_LEN: usize = 12;
/// Length of an XChaCha20-Poly1305 nonce.
pub const XCHACHA_NONCE_LEN: usize = 24;
/// Length of a SHA-256 digest and of an HMAC-SHA256 tag.
pub const SHA256_LEN: usize = 32;

/// A primitive refused its input. Carries no key or data bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrimitiveError {
    /// An X25519 exchange gave the all-zero output: the peer key has low order.
    #[error("the peer's X25519 key is of low order (non-contributory result)")]
    NonContributory,
    /// An AEAD refused a ciphertext: wrong key, nonce, associated data, or tampering.
    #[error("authenticated decryption failed")]
    Aead,
    /// An Ed25519 signature did not verify (or a key or signature was malformed).
    #[error("signature verification failed")]
    Signature,
    /// An ML-KEM-768 encapsulation key failed the FIPS 203 input checks.
    #[error("invalid ML-KEM-768 encapsulation key")]
    InvalidKemKey,
    /// A byte string had the wrong length for its key or value type.
    #[error("wrong length: expected {expected} bytes, got {actual}")]
    Length {
        /// The length the type needs.
        expected: usize,
        /// The length handed in.
        actual: usize,
    },
}

fn array_from_slice<const N: usize>(bytes: &[u8]) -> Result<[u8; N], PrimitiveError> {
    bytes.try_into().map_err(|_| PrimitiveError::Length {
        expected: N,
        actual: bytes.len(),
    })
}

/// A 32-byte secret (a DH output, a KEM shared key, a derived key), zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Secret32(Box<[u8; 32]>);

impl Secret32 {
    /// Wraps key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Box::new(bytes))
    }

    /// Copies key bytes from a slice, reporting a length mismatch.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, PrimitiveError> {
        let mut array = array_from_slice::<32>(bytes)?;
        let secret = Self::from_bytes(array);
        array.zeroize();
        Ok(secret)
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl core::fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret32([redacted])")
    }
}

// ---------------------------------------------------------------------------
// X25519

/// An X25519 secret key (static or one-time), zeroized on drop. Its public key is
/// computed once, on first use, and kept: a ratchet needs it for every message it
/// sends, while a relay restoring a queue's secret from storage may never need it.
#[derive(Clone)]
pub struct DhSecret {
    secret: x25519_dalek::StaticSecret,
    public: std::sync::OnceLock<DhPublic>,
}

impl DhSecret {
    /// A fresh random secret.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret(x25519_dalek::StaticSecret::random_from_rng(rng))
    }

    /// Restores a secret from its 32 bytes (clamping happens at use, per RFC 7748).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::from_secret(x25519_dalek::StaticSecret::from(bytes))
    }

    fn from_secret(secret: x25519_dalek::StaticSecret) -> Self {
        Self {
            secret,
            public: std::sync::OnceLock::new(),
        }
    }

    /// The secret bytes, for an encrypted snapshot.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> DhPublic {
        *self
            .public
            .get_or_init(|| DhPublic(x25519_dalek::PublicKey::from(&self.secret).to_bytes()))
    }

    /// X25519(self, their). Refuses an all-zero (non-contributory) result, which a
    /// low-order peer key produces, so an attacker cannot force a known secret.
    pub fn diffie_hellman(&self, their: &DhPublic) -> Result<Secret32, PrimitiveError> {
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(their.0));
        if !shared.was_contributory() {
            return Err(PrimitiveError::NonContributory);
        }
        Ok(Secret32::from_bytes(shared.to_bytes()))
    }
}

impl core::fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DhSecret([redacted])")
    }
}

/// An X25519 public key. Any 32 bytes parse; a low-order key is caught when used.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DhPublic([u8; 32]);

impl DhPublic {
    /// Wraps public key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses a slice, reporting a length mismatch.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, PrimitiveError> {
        array_from_slice(bytes).map(Self)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for DhPublic {
    // Public, but it can link a person across logs: show only a short prefix.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "DhPublic({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

// ---------------------------------------------------------------------------
// Ed25519

/// An Ed25519 signing key, zeroized on drop.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh random key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_bytes(*seed)
    }

    /// Restores a key from its 32-byte seed.
    pub fn from_bytes(seed: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The 32-byte seed, for an encrypted snapshot.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` (RFC 8032 Ed25519, deterministic).
    pub fn sign(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer as _;
        Signature(self.0.sign(message).to_bytes())
    }
}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// An Ed25519 public key, as bytes; checked when a signature is verified.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct VerifyingKey([u8; 32]);

impl VerifyingKey {
    /// Wraps public key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses a slice, reporting a length mismatch.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, PrimitiveError> {
        array_from_slice(bytes).map(Self)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Verifies `signature` over `message` with RFC 8032's strict rules: a malformed
    /// or small-order key, a non-canonical `S` or `R` is refused.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), PrimitiveError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| PrimitiveError::Signature)?;
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &signature)
            .map_err(|_| PrimitiveError::Signature)
    }
}

impl core::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "VerifyingKey({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Wraps signature bytes.
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// Parses a slice, reporting a length mismatch.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, PrimitiveError> {
        array_from_slice(bytes).map(Self)
    }

    /// The signature bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl core::fmt::Debug for Signature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Signature(..)")
    }
}

// ---------------------------------------------------------------------------
// ML-KEM-768

/// An ML-KEM-768 decapsulation key, held as its 64-byte FIPS 203 seed (d ‖ z).
pub struct KemSecret {
    seed: Zeroizing<[u8; MLKEM768_SEED_LEN]>,
    key: ml_kem::DecapsulationKey<MlKem768>,
}

impl KemSecret {
    /// A fresh random key pair.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; MLKEM768_SEED_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(*seed)
    }

    /// Derives the key pair from its seed (FIPS 203 `ML-KEM.KeyGen_internal(d, z)`).
    pub fn from_seed(seed: [u8; MLKEM768_SEED_LEN]) -> Self {
        let seed = Zeroizing::new(seed);
        let key = ml_kem::DecapsulationKey::<MlKem768>::from_seed((*seed).into());
        Self { seed, key }
    }

    /// The seed, for an encrypted snapshot.
    pub fn to_seed(&self) -> Zeroizing<[u8; MLKEM768_SEED_LEN]> {
        self.seed.clone()
    }

    /// The matching encapsulation key.
    pub fn public_key(&self) -> KemPublic {
        let bytes = self.key.encapsulation_key().to_bytes();
        let mut out = Box::new([0u8; MLKEM768_PUBLIC_LEN]);
        out.copy_from_slice(bytes.as_slice());
        KemPublic(out)
    }

    /// Decapsulates. A ciphertext that was not made for this key yields a pseudorandom
    /// key (FIPS 203 implicit rejection), so the mismatch shows up as an AEAD failure later.
    pub fn decapsulate(&self, ciphertext: &KemCiphertext) -> Secret32 {
        let ct = ml_kem::Ciphertext::<MlKem768>::from(*ciphertext.0);
        let shared = self.key.decapsulate(&ct);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(shared.as_slice());
        let secret = Secret32::from_bytes(bytes);
        bytes.zeroize();
        secret
    }
}

impl Clone for KemSecret {
    fn clone(&self) -> Self {
        Self::from_seed(*self.seed)
    }
}

impl core::fmt::Debug for KemSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KemSecret([redacted])")
    }
}

/// A validated ML-KEM-768 encapsulation key (FIPS 203 §7.2 modulus check done on parse).
#[derive(Clone, PartialEq, Eq)]
pub struct KemPublic(Box<[u8; MLKEM768_PUBLIC_LEN]>);

impl KemPublic {
    /// Parses and validates an encapsulation key.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, PrimitiveError> {
        let array: [u8; MLKEM768_PUBLIC_LEN] = array_from_slice(bytes)?;
        let key = ml_kem::Key::<ml_kem::EncapsulationKey<MlKem768>>::from(array);
        ml_kem::EncapsulationKey::<MlKem768>::new(&key)
            .map_err(|_| PrimitiveError::InvalidKemKey)?;
        Ok(Self(Box::new(array)))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; MLKEM768_PUBLIC_LEN] {
        &self.0
    }

    fn key(&self) -> Result<ml_kem::EncapsulationKey<MlKem768>, PrimitiveError> {
        let key = ml_kem::Key::<ml_kem::EncapsulationKey<MlKem768>>::from(*self.0);
        ml_kem::EncapsulationKey::<MlKem768>::new(&key).map_err(|_| PrimitiveError::InvalidKemKey)
    }

    /// Encapsulates a fresh shared key to the holder of the decapsulation key.
    pub fn encapsulate<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<(KemCiphertext, Secret32), PrimitiveError> {
        let mut m = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(m.as_mut());
        self.encapsulate_with_randomness(&m)
    }

    /// Encapsulates with caller-chosen randomness `m` (FIPS 203 `ML-KEM.Encaps_internal`).
    /// Only for known-answer tests: reusing `m` is catastrophic.
    #[doc(hidden)]
    pub fn encapsulate_with_randomness(
        &self,
        m: &[u8; 32],
    ) -> Result<(KemCiphertext, Secret32), PrimitiveError> {
        let key = self.key()?;
        let (ct, shared) = key.encapsulate_deterministic(&(*m).into());
        let mut ct_bytes = Box::new([0u8; MLKEM768_CIPHERTEXT_LEN]);
        ct_bytes.copy_from_slice(ct.as_slice());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(shared.as_slice());
        let secret = Secret32::from_bytes(bytes);
        bytes.zeroize();
        Ok((KemCiphertext(ct_bytes), secret))
    }
}

impl core::fmt::Debug for KemPublic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KemPublic({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// An ML-KEM-768 ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct KemCiphertext(Box<[u8; MLKEM768_CIPHERTEXT_LEN]>);

impl KemCiphertext {
    /// Parses a ciphertext (any bytes of the right length are a ciphertext).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, PrimitiveError> {
        array_from_slice(bytes).map(|a| Self(Box::new(a)))
    }

    /// The ciphertext bytes.
    pub fn as_bytes(&self) -> &[u8; MLKEM768_CIPHERTEXT_LEN] {
        &self.0
    }
}

impl core::fmt::Debug for KemCiphertext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KemCiphertext(..)")
    }
}

// ---------------------------------------------------------------------------
// AEADs

/// ChaCha20-Poly1305 (RFC 8439) encryption; returns ciphertext ‖ tag.
/// The (key, nonce) pair must never repeat.
pub fn chacha_seal(
    key: &Secret32,
    nonce: &[u8; CHACHA_NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    chacha_seal_copy(key.as_bytes(), *nonce, aad, plaintext)
}

/// ChaCha20-Poly1305 decryption of ciphertext ‖ tag; the plaintext is zeroized on drop.
pub fn chacha_open(
    key: &Secret32,
    nonce: &[u8; CHACHA_NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, PrimitiveError> {
    chacha_open_copy(key.as_bytes(), *nonce, aad, ciphertext)
}

/// XChaCha20-Poly1305 encryption; returns ciphertext ‖ tag. A 24-byte random nonce is
/// safe to choose at random for any number of messages under one key.
pub fn xchacha_seal(
    key: &Secret32,
    nonce: &[u8; XCHACHA_NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let (subkey, chacha_nonce) = xchacha_subkey(key, nonce);
    chacha_seal_copy(&subkey, chacha_nonce, aad, plaintext)
}

/// XChaCha20-Poly1305 encryption of `buffer` in place (it becomes the ciphertext); returns
/// the tag. The same cipher as [`xchacha_seal`], without its allocation and copy: for a
/// caller that already owns a buffer of the right size.
pub fn xchacha_seal_in_place(
    key: &Secret32,
    nonce: &[u8; XCHACHA_NONCE_LEN],
    aad: &[u8],
    buffer: &mut [u8],
) -> [u8; AEAD_TAG_LEN] {
    let (subkey, chacha_nonce) = xchacha_subkey(key, nonce);
    chacha_seal_in_place(&subkey, chacha_nonce, aad, buffer)
}

/// XChaCha20-Poly1305 decryption of ciphertext ‖ tag; the plaintext is zeroized on drop.
pub fn xchacha_open(
    key: &Secret32,
    nonce: &[u8; XCHACHA_NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, PrimitiveError> {
    let (subkey, chacha_nonce) = xchacha_subkey(key, nonce);
    chacha_open_copy(&subkey, chacha_nonce, aad, ciphertext)
}

// XChaCha20-Poly1305 is ChaCha20-Poly1305 under a subkey (draft-irtf-cfrg-xchacha-03
// §2.3): subkey = HChaCha20(key, nonce[..16]), ChaCha nonce = 0^4 ‖ nonce[16..]. The
// subkey comes from the chacha20 crate, the AEAD from ring, whose assembly seals a
// 4 KiB block about 2.7 times faster than the portable crate on this project's
// machines. Both halves are checked together against the draft's and Wycheproof's
// XChaCha20-Poly1305 vectors (`tests/wycheproof.rs`, `tests/primitives_kat.rs`).
//
// ring's key object keeps its own copy of the key while it lives (on the stack, for
// the length of one call) and does not zeroize it when dropped, as for TLS's keys.
fn xchacha_subkey(
    key: &Secret32,
    nonce: &[u8; XCHACHA_NONCE_LEN],
) -> (Zeroizing<[u8; 32]>, [u8; CHACHA_NONCE_LEN]) {
    let mut head = [0u8; 16];
    head.copy_from_slice(&nonce[..16]);
    let mut derived = chacha20::hchacha::<chacha20::R20>(&(*key.as_bytes()).into(), &head.into());
    let mut subkey = Zeroizing::new([0u8; 32]);
    subkey.copy_from_slice(&derived);
    derived.as_mut_slice().zeroize();
    let mut chacha_nonce = [0u8; CHACHA_NONCE_LEN];
    chacha_nonce[4..].copy_from_slice(&nonce[16..]);
    (subkey, chacha_nonce)
}

fn chacha_key(key: &[u8; 32]) -> ring::aead::LessSafeKey {
    // Cannot fail: the key has ChaCha20-Poly1305's length.
    #[allow(clippy::expect_used)]
    let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key)
        .expect("a 32-byte ChaCha20-Poly1305 key");
    ring::aead::LessSafeKey::new(key)
}

fn chacha_seal_in_place(
    key: &[u8; 32],
    nonce: [u8; CHACHA_NONCE_LEN],
    aad: &[u8],
    buffer: &mut [u8],
) -> [u8; AEAD_TAG_LEN] {
    let nonce = ring::aead::Nonce::assume_unique_for_key(nonce);
    // Fails only for a buffer longer than the cipher's limit (256 GiB): then all zeros,
    // which no receiver accepts.
    chacha_key(key)
        .seal_in_place_separate_tag(nonce, ring::aead::Aad::from(aad), buffer)
        .ok()
        .and_then(|tag| tag.as_ref().try_into().ok())
        .unwrap_or([0; AEAD_TAG_LEN])
}

fn chacha_seal_copy(
    key: &[u8; 32],
    nonce: [u8; CHACHA_NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + AEAD_TAG_LEN);
    out.extend_from_slice(plaintext);
    let tag = chacha_seal_in_place(key, nonce, aad, &mut out);
    out.extend_from_slice(&tag);
    out
}

fn chacha_open_copy(
    key: &[u8; 32],
    nonce: [u8; CHACHA_NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, PrimitiveError> {
    let nonce = ring::aead::Nonce::assume_unique_for_key(nonce);
    let mut plain = Zeroizing::new(ciphertext.to_vec());
    // ring compares the tag in constant time and zeroes nothing on failure: the copy
    // (ciphertext, never plaintext then) is zeroized on drop either way.
    let len = chacha_key(key)
        .open_in_place(nonce, ring::aead::Aad::from(aad), plain.as_mut_slice())
        .map_err(|_| PrimitiveError::Aead)?
        .len();
    plain.truncate(len);
    Ok(plain)
}

// ---------------------------------------------------------------------------
// Hashes and KDFs

/// Largest HKDF-SHA256 output, 255 × 32 bytes (RFC 5869 §2.3).
pub const HKDF_SHA256_MAX_LEN: usize = 255 * SHA256_LEN;

/// HKDF-SHA256 (RFC 5869) into a fixed-size, zeroize-on-drop array: extract with
/// `salt` (empty means the RFC's all-zero salt), expand with the concatenation of
/// the `info` parts. `N` is checked against [`HKDF_SHA256_MAX_LEN`] at compile time.
pub fn hkdf_sha256<const N: usize>(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; N]> {
    const { assert!(N <= HKDF_SHA256_MAX_LEN) };
    let mut out = Zeroizing::new([0u8; N]);
    // Cannot fail: the length was checked above.
    let _ = hkdf_sha256_into(salt, ikm, info, out.as_mut());
    out
}

/// HKDF-SHA256 (RFC 5869) into a caller-sized buffer; refuses more than
/// [`HKDF_SHA256_MAX_LEN`] bytes (the buffer is then zeroed).
pub fn hkdf_sha256_into(
    salt: &[u8],
    ikm: &[u8],
    info: &[&[u8]],
    out: &mut [u8],
) -> Result<(), PrimitiveError> {
    let salt = if salt.is_empty() { None } else { Some(salt) };
    let hk = hkdf::Hkdf::<Sha256>::new(salt, ikm);
    hk.expand_multi_info(info, out).map_err(|_| {
        out.zeroize();
        PrimitiveError::Length {
            expected: HKDF_SHA256_MAX_LEN,
            actual: out.len(),
        }
    })
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; SHA256_LEN] {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256>>::new_from_slice(key) else {
        return [0; SHA256_LEN];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Checks an HMAC-SHA256 tag in constant time.
pub fn hmac_sha256_verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> Result<(), PrimitiveError> {
    let expected = hmac_sha256(key, parts);
    if expected.as_slice().ct_eq(tag).into() {
        Ok(())
    } else {
        Err(PrimitiveError::Aead)
    }
}

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; SHA256_LEN] {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_order_x25519_key_is_refused() {
        let secret = DhSecret::from_bytes([7; 32]);
        assert_eq!(
            secret.diffie_hellman(&DhPublic::from_bytes([0; 32])),
            Err(PrimitiveError::NonContributory)
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = DhSecret::from_bytes([0xab; 32]);
        assert!(!format!("{s:?}").contains("ab, ab"));
        assert!(format!("{:?}", Secret32::from_bytes([0xcd; 32])).contains("redacted"));
    }
}
