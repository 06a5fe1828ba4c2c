//! Key rotation: the relay's old key endorses its new one, so that clients holding
//! the old pin can move to the new key without trusting anyone else.
//!
//! ```text
//!  relay (overlap)   certificate chain = [ new key's certificate, endorsement ]
//!                    endorsement = old SPKI ‖ new pin ‖ until, signed by the OLD key
//!  client, new pin:  the leaf matches: accepted (the endorsement is ignored)
//!  client, old pin:  the leaf does not match; the endorsement's old SPKI hashes to the
//!                    pin, names the leaf's pin, is signed by the old key, and `until`
//!                    has not passed: accepted, and the stream reports the
//!                    [`KeyRotation`] (the client then updates the addresses it keeps)
//!  after `until`:    the relay sends no endorsement and has destroyed the old key;
//!                    old-pin clients get PinMismatch
//! ```
//!
//! The TLS handshake signature (CertificateVerify) is checked against the leaf, so the
//! relay proves it holds the new key; the endorsement proves the holder of the old key
//! chose it. The endorsement travels as the second entry of the certificate chain,
//! which TLS 1.3 encrypts: a network observer does not see it.
//!
//! What this does not do: save clients from a *stolen* old key. Whoever holds it can
//! impersonate the relay to old-pin clients anyway, and could endorse a key of their
//! own; after a suspected compromise an NGO must hand out the new address out of band
//! (README, "Rotating the relay's key").

use passage_crypto::codec::{Reader, Writer};
use passage_wire::RelayPin;
use rustls::SignatureScheme;
use rustls::crypto::WebPkiSupportedAlgorithms;

use crate::error::IdentityError;

/// First bytes of an endorsement (also its format version).
pub const ENDORSEMENT_MAGIC: [u8; 8] = *b"PSGROT01";

/// Longest overlap a client accepts in an endorsement, counted from its own clock (one
/// year): an endorsement valid for longer is refused.
pub const MAX_OVERLAP_SECS: u64 = 366 * 86_400;

/// What the signature covers, before the pins and the end of the overlap.
const SIGNED_CONTEXT: &[u8] = b"passage relay key rotation v1\0";

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

const ED25519_SIGNATURE_LEN: usize = 64;

/// A relay's key rotation, as a client learned it from an endorsement it verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRotation {
    /// The relay's new pin: the address to keep from now on.
    pub new_pin: RelayPin,
    /// Until when (unix seconds) the relay still accepts the old pin.
    pub old_pin_until: u64,
}

/// Signs an endorsement of `new_pin` until `until` with the old key (PKCS#8 DER, an
/// Ed25519 key).
pub(crate) fn endorse(
    old_key_pkcs8: &[u8],
    new_pin: &RelayPin,
    until: u64,
) -> Result<Vec<u8>, IdentityError> {
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(old_key_pkcs8);
    let key = rcgen::KeyPair::try_from(&der).map_err(|_| IdentityError::BadKey)?;
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    if spki.len() != ED25519_SPKI_PREFIX.len() + 32 || !spki.starts_with(&ED25519_SPKI_PREFIX) {
        return Err(IdentityError::BadKey);
    }
    let old_pin = RelayPin::from_spki_der(&spki);
    let signature = rcgen::SigningKey::sign(&key, &signed_bytes(&old_pin, new_pin, until))
        .map_err(|_| IdentityError::Generate)?;
    if signature.len() != ED25519_SIGNATURE_LEN {
        return Err(IdentityError::Generate);
    }
    let mut w = Writer::with_capacity(8 + 1 + spki.len() + 32 + 8 + ED25519_SIGNATURE_LEN);
    w.put(&ENDORSEMENT_MAGIC);
    w.put_u8(spki.len() as u8);
    w.put(&spki);
    w.put(new_pin.as_bytes());
    w.put_u64(until);
    w.put(&signature);
    Ok(w.into_vec())
}

/// Checks an endorsement from the certificate chain: it must be one, name `leaf_pin`,
/// carry the key `expected_pin` pins, be signed by it, and still be valid at `now`
/// (and not for longer than [`MAX_OVERLAP_SECS`]). `None` for anything else.
pub(crate) fn check(
    blob: &[u8],
    expected_pin: &RelayPin,
    leaf_pin: &RelayPin,
    now: u64,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Option<KeyRotation> {
    let mut r = Reader::new(blob);
    if r.array::<8>().ok()? != ENDORSEMENT_MAGIC {
        return None;
    }
    let spki_len = usize::from(r.u8().ok()?);
    let spki = r.take(spki_len).ok()?;
    let new_pin = RelayPin::from_bytes(r.array().ok()?);
    let until = r.u64().ok()?;
    let signature = r.take(ED25519_SIGNATURE_LEN).ok()?;
    r.finish().ok()?;
    let old_pin = RelayPin::from_spki_der(spki);
    if !crate::identity::pins_equal(&old_pin, expected_pin)
        || !crate::identity::pins_equal(&new_pin, leaf_pin)
        || until <= now
        || until > now.saturating_add(MAX_OVERLAP_SECS)
    {
        return None;
    }
    let raw_key = spki.strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    let message = signed_bytes(&old_pin, &new_pin, until);
    let verifiers = algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == SignatureScheme::ED25519)?
        .1;
    verifiers
        .iter()
        .any(|v| v.verify_signature(raw_key, &message, signature).is_ok())
        .then_some(KeyRotation {
            new_pin,
            old_pin_until: until,
        })
}

fn signed_bytes(old_pin: &RelayPin, new_pin: &RelayPin, until: u64) -> Vec<u8> {
    let mut w = Writer::with_capacity(SIGNED_CONTEXT.len() + 32 + 32 + 8);
    w.put(SIGNED_CONTEXT);
    w.put(old_pin.as_bytes());
    w.put(new_pin.as_bytes());
    w.put_u64(until);
    w.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RelayIdentity;

    fn algorithms() -> WebPkiSupportedAlgorithms {
        rustls::crypto::ring::default_provider().signature_verification_algorithms
    }

    #[test]
    fn an_endorsement_by_the_old_key_is_accepted_and_anything_else_is_not() {
        let old = RelayIdentity::generate().unwrap();
        let new = RelayIdentity::generate().unwrap();
        let other = RelayIdentity::generate().unwrap();
        let until = 1_800_000_000;
        let blob = endorse(&old.to_pkcs8_der(), &new.pin(), until).unwrap();
        let algs = algorithms();
        let ok = check(&blob, &old.pin(), &new.pin(), until - 1, &algs).unwrap();
        assert_eq!(ok.new_pin, new.pin());
        assert_eq!(ok.old_pin_until, until);
        // Past the overlap, or valid for longer than a year: refused.
        assert!(check(&blob, &old.pin(), &new.pin(), until, &algs).is_none());
        assert!(
            check(
                &blob,
                &old.pin(),
                &new.pin(),
                until - MAX_OVERLAP_SECS - 1,
                &algs
            )
            .is_none()
        );
        // Another pin expected, another leaf, or signed by another key: refused.
        assert!(check(&blob, &other.pin(), &new.pin(), until - 1, &algs).is_none());
        assert!(check(&blob, &old.pin(), &other.pin(), until - 1, &algs).is_none());
        let forged = endorse(&other.to_pkcs8_der(), &new.pin(), until).unwrap();
        assert!(check(&forged, &old.pin(), &new.pin(), until - 1, &algs).is_none());
        // Any byte changed, cut short or extended: refused.
        for at in 0..blob.len() {
            let mut bad = blob.clone();
            bad[at] ^= 1;
            assert!(
                check(&bad, &old.pin(), &new.pin(), until - 1, &algs).is_none(),
                "{at}"
            );
        }
        assert!(
            check(
                &blob[..blob.len() - 1],
                &old.pin(),
                &new.pin(),
                until - 1,
                &algs
            )
            .is_none()
        );
        let mut long = blob.clone();
        long.push(0);
        assert!(check(&long, &old.pin(), &new.pin(), until - 1, &algs).is_none());
        assert!(check(b"", &old.pin(), &new.pin(), until - 1, &algs).is_none());
    }
}
