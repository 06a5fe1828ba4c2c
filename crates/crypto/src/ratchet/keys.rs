//! The ratchet's key schedule and header encryption, exactly as the Signal double
//! ratchet specification (revision 4, with header encryption) defines them:
//!
//! - `KDF_RK_HE(rk, dh_out)` = HKDF-SHA256(salt = rk, ikm = dh_out, info =
//!   [`ROOT_LABEL`]) → 96 bytes: new root key ‖ chain key ‖ next header key.
//! - `KDF_CK(ck)`: message key = HMAC-SHA256(ck, 0x01), next chain key =
//!   HMAC-SHA256(ck, 0x02).
//! - A message key expands by HKDF-SHA256(salt = the encrypted header's random 24-byte
//!   nonce, ikm = mk, info = [`BODY_LABEL`]) into a ChaCha20-Poly1305 key and nonce.
//!   The specification uses each message key once; a device restored from a backup, a
//!   vault that lost its last commit, or a profile copied to a second device uses the
//!   same message key again for a different message, and a key and nonce drawn from
//!   the message key alone would then repeat (a two-time pad the relay could XOR, the
//!   zero padding giving the longer tail away in clear). The header nonce is fresh
//!   randomness for every encryption, whatever state the ratchet was restored to, so
//!   the body key and nonce never repeat; the nonce is in the envelope already and is
//!   authenticated with the body (it is part of the body's associated data).
//! - Version 1 expanded the message key alone ([`LEGACY_MESSAGE_LABEL`]); a receiver
//!   still opens such bodies, so that messages in flight across the upgrade are read.
//! - Headers are encrypted with XChaCha20-Poly1305 under the header key and a random
//!   24-byte nonce: header keys stay the same for a whole chain, so the nonce must be
//!   large enough to pick at random.

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::codec::Reader;
use crate::primitives::{
    AEAD_TAG_LEN, CHACHA_NONCE_LEN, DhPublic, PrimitiveError, Secret32, XCHACHA_NONCE_LEN,
    hkdf_sha256, hmac_sha256, xchacha_open, xchacha_seal,
};

/// HKDF info of the root-chain step `KDF_RK_HE`.
pub(crate) const ROOT_LABEL: &[u8] = b"passage/1 ratchet root";
/// HKDF info that expands a message key and the header nonce into an AEAD key and nonce.
pub(crate) const BODY_LABEL: &[u8] = b"passage/2 ratchet body key";
/// HKDF info of version 1, which expanded the message key alone (opened, never sealed).
pub(crate) const LEGACY_MESSAGE_LABEL: &[u8] = b"passage/1 ratchet message key";

/// Plaintext header: ratchet public key ‖ previous chain length ‖ message number.
pub const HEADER_LEN: usize = 32 + 4 + 4;
/// Encrypted header on the wire: nonce ‖ ciphertext ‖ tag.
pub const ENCRYPTED_HEADER_LEN: usize = XCHACHA_NONCE_LEN + HEADER_LEN + AEAD_TAG_LEN;

/// A sending or receiving chain: its key and the number of the next message on it.
#[derive(Clone)]
pub(crate) struct Chain {
    pub(crate) key: Secret32,
    pub(crate) n: u32,
}

impl Chain {
    pub(crate) fn new(key: Secret32) -> Self {
        Self { key, n: 0 }
    }

    /// `KDF_CK`: the current message key, and the chain moved one step.
    /// `None` when the 32-bit message counter is exhausted.
    pub(crate) fn step(&self) -> Option<(Secret32, Chain)> {
        let n = self.n.checked_add(1)?;
        let mk = Secret32::from_bytes(hmac_sha256(self.key.as_bytes(), &[&[0x01]]));
        let next = Secret32::from_bytes(hmac_sha256(self.key.as_bytes(), &[&[0x02]]));
        Some((mk, Chain { key: next, n }))
    }
}

/// The output of one root-chain step.
pub(crate) struct RootStep {
    pub(crate) root: Secret32,
    pub(crate) chain: Chain,
    pub(crate) next_header_key: Secret32,
}

/// `KDF_RK_HE(rk, dh_out)`.
pub(crate) fn kdf_rk(root: &Secret32, dh_out: &Secret32) -> RootStep {
    let okm: Zeroizing<[u8; 96]> = hkdf_sha256(root.as_bytes(), dh_out.as_bytes(), &[ROOT_LABEL]);
    RootStep {
        root: split32(&okm, 0),
        chain: Chain::new(split32(&okm, 1)),
        next_header_key: split32(&okm, 2),
    }
}

/// The `i`-th 32-byte part of key material.
pub(crate) fn split32<const N: usize>(okm: &[u8; N], i: usize) -> Secret32 {
    let mut part = [0u8; 32];
    part.copy_from_slice(&okm[i * 32..(i + 1) * 32]);
    let secret = Secret32::from_bytes(part);
    zeroize::Zeroize::zeroize(&mut part);
    secret
}

/// The AEAD key and nonce of a body: the message key and the sealed header's random
/// nonce expanded together.
pub(crate) fn body_key_material(
    mk: &Secret32,
    header_nonce: &[u8; XCHACHA_NONCE_LEN],
) -> (Secret32, [u8; CHACHA_NONCE_LEN]) {
    expand(header_nonce, mk, BODY_LABEL)
}

/// Version 1's body key and nonce, from the message key alone: only to open bodies
/// sealed by a version-1 sender.
pub(crate) fn legacy_message_key_material(mk: &Secret32) -> (Secret32, [u8; CHACHA_NONCE_LEN]) {
    expand(&[], mk, LEGACY_MESSAGE_LABEL)
}

fn expand(salt: &[u8], mk: &Secret32, label: &[u8]) -> (Secret32, [u8; CHACHA_NONCE_LEN]) {
    let okm: Zeroizing<[u8; 44]> = hkdf_sha256(salt, mk.as_bytes(), &[label]);
    let key = split32(&okm, 0);
    let mut nonce = [0u8; CHACHA_NONCE_LEN];
    nonce.copy_from_slice(&okm[32..]);
    (key, nonce)
}

/// The random nonce at the front of a sealed header.
pub(crate) fn header_nonce(sealed: &[u8; ENCRYPTED_HEADER_LEN]) -> [u8; XCHACHA_NONCE_LEN] {
    let mut nonce = [0u8; XCHACHA_NONCE_LEN];
    nonce.copy_from_slice(&sealed[..XCHACHA_NONCE_LEN]);
    nonce
}

/// A ratchet message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) dh: DhPublic,
    pub(crate) pn: u32,
    pub(crate) n: u32,
}

impl Header {
    fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..32].copy_from_slice(self.dh.as_bytes());
        out[32..36].copy_from_slice(&self.pn.to_be_bytes());
        out[36..].copy_from_slice(&self.n.to_be_bytes());
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        let header = Header {
            dh: DhPublic::from_bytes(r.array().ok()?),
            pn: r.u32().ok()?,
            n: r.u32().ok()?,
        };
        r.finish().ok()?;
        Some(header)
    }

    /// `HENCRYPT(hk, header)` with a random nonce; `ad` binds the session.
    pub(crate) fn seal<R: CryptoRng + ?Sized>(
        self,
        hk: &Secret32,
        ad: &[u8],
        rng: &mut R,
    ) -> [u8; ENCRYPTED_HEADER_LEN] {
        let mut nonce = [0u8; XCHACHA_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let sealed = xchacha_seal(hk, &nonce, ad, &self.to_bytes());
        let mut out = [0u8; ENCRYPTED_HEADER_LEN];
        out[..XCHACHA_NONCE_LEN].copy_from_slice(&nonce);
        out[XCHACHA_NONCE_LEN..].copy_from_slice(&sealed);
        out
    }

    /// `HDECRYPT(hk, enc_header)`: `None` if `hk` is not the key it was sealed with.
    pub(crate) fn open(
        hk: &Secret32,
        ad: &[u8],
        sealed: &[u8; ENCRYPTED_HEADER_LEN],
    ) -> Option<Self> {
        let (nonce, ciphertext) = sealed.split_at(XCHACHA_NONCE_LEN);
        let nonce: &[u8; XCHACHA_NONCE_LEN] = nonce.try_into().ok()?;
        let plain = xchacha_open(hk, nonce, ad, ciphertext)
            .map_err(|_: PrimitiveError| ())
            .ok()?;
        Header::from_bytes(&plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libsignal's chain-key test vector (rust/protocol/src/ratchet/keys.rs).
    #[test]
    fn kdf_ck_matches_libsignal() {
        let ck = hex::decode("8ab72d6f4cc5ac0d387eaf463378ddb28edd07385b1cb01250c715982e7ad48f")
            .unwrap();
        let chain = Chain::new(Secret32::from_slice(&ck).unwrap());
        let (_, next) = chain.step().unwrap();
        assert_eq!(
            hex::encode(next.key.as_bytes()),
            "28e8f8fee54b801eef7c5cfb2f17f32c7b334485bbb70fac6ec10342a246d15d"
        );
        assert_eq!(next.n, 1);
    }

    #[test]
    fn exhausted_chain_stops() {
        let chain = Chain {
            key: Secret32::from_bytes([1; 32]),
            n: u32::MAX,
        };
        assert!(chain.step().is_none());
    }
}
