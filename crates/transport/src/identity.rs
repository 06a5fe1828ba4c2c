//! The relay's TLS identity and the pin clients check it against.
//!
//! A relay has one long-lived Ed25519 key and a self-signed certificate for
//! it. Clients trust no CA: the relay address carries the [`RelayPin`], the
//! SHA-256 of the certificate's DER SubjectPublicKeyInfo, and the client
//! accepts exactly the certificate whose key hashes to it. Hashing the key
//! rather than the certificate lets the relay re-issue its certificate
//! without changing its address.

use passage_wire::RelayPin;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ParsedCertificate;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::error::IdentityError;

/// The pin of a DER X.509 certificate: SHA-256 of its SubjectPublicKeyInfo.
pub fn pin_of_certificate(cert_der: &[u8]) -> Result<RelayPin, IdentityError> {
    let cert = CertificateDer::from(cert_der);
    let parsed = ParsedCertificate::try_from(&cert).map_err(|_| IdentityError::BadCertificate)?;
    Ok(RelayPin::from_spki_der(
        parsed.subject_public_key_info().as_ref(),
    ))
}

/// Constant-time pin comparison.
pub(crate) fn pins_equal(a: &RelayPin, b: &RelayPin) -> bool {
    a.as_bytes()[..].ct_eq(&b.as_bytes()[..]).into()
}

/// The relay's long-lived TLS identity: an Ed25519 key pair and a
/// self-signed certificate for it.
///
/// Created once with [`generate`](Self::generate); persisted by the caller
/// with [`to_pkcs8_der`](Self::to_pkcs8_der) (and, optionally,
/// [`certificate_der`](Self::certificate_der)); loaded with
/// [`from_pkcs8_der`](Self::from_pkcs8_der) or [`from_parts`](Self::from_parts).
pub struct RelayIdentity {
    key_pkcs8: Zeroizing<Vec<u8>>,
    cert_der: CertificateDer<'static>,
    pin: RelayPin,
    /// During a key rotation: the old key's endorsement of this one, sent as the
    /// second entry of the certificate chain (see the `rotation` module).
    endorsement: Option<CertificateDer<'static>>,
}

impl RelayIdentity {
    /// Generates a new key and its certificate.
    pub fn generate() -> Result<Self, IdentityError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|_| IdentityError::Generate)?;
        Self::with_key(&key)
    }

    /// Loads a key saved by [`to_pkcs8_der`](Self::to_pkcs8_der) and issues
    /// the certificate again. The pin depends on the key only, so the
    /// relay's address does not change (for Ed25519 the certificate comes out
    /// byte for byte the same).
    pub fn from_pkcs8_der(key_pkcs8: &[u8]) -> Result<Self, IdentityError> {
        let key = load_key(key_pkcs8)?;
        Self::with_key(&key)
    }

    /// Loads a key and a certificate saved together; fails with
    /// [`IdentityError::KeyMismatch`] if the certificate is for another key.
    pub fn from_parts(key_pkcs8: &[u8], cert_der: &[u8]) -> Result<Self, IdentityError> {
        let key = load_key(key_pkcs8)?;
        let pin = pin_of_certificate(cert_der)?;
        let key_pin = RelayPin::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(&key));
        if !pins_equal(&pin, &key_pin) {
            return Err(IdentityError::KeyMismatch);
        }
        Ok(Self {
            key_pkcs8: Zeroizing::new(key.serialize_der()),
            cert_der: CertificateDer::from(cert_der.to_vec()),
            pin,
            endorsement: None,
        })
    }

    /// This identity with `old`'s endorsement of it until `until_unix` (the end of a
    /// key rotation's overlap): clients that still hold `old`'s pin accept this key
    /// until then and learn its pin ([`KeyRotation`](crate::KeyRotation)). The old key
    /// is used here once, to sign, and not kept.
    pub fn endorsed_by(
        mut self,
        old: &RelayIdentity,
        until_unix: u64,
    ) -> Result<Self, IdentityError> {
        let blob = crate::rotation::endorse(&old.key_pkcs8, &self.pin, until_unix)?;
        self.endorsement = Some(CertificateDer::from(blob));
        Ok(self)
    }

    /// Whether this identity carries an old key's endorsement.
    pub fn is_endorsed(&self) -> bool {
        self.endorsement.is_some()
    }

    /// The private key as PKCS#8 DER, to persist. Secret: store it encrypted
    /// or with owner-only permissions.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.key_pkcs8.clone()
    }

    /// The self-signed certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        self.cert_der.as_ref()
    }

    /// The pin clients check: SHA-256 of the certificate's SubjectPublicKeyInfo.
    pub fn pin(&self) -> RelayPin {
        self.pin
    }

    /// The certificate chain for rustls: the certificate, and an old key's
    /// endorsement during a rotation.
    pub(crate) fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        let mut chain = vec![self.cert_der.clone()];
        chain.extend(self.endorsement.clone());
        chain
    }

    /// The private key for rustls.
    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.to_vec()))
    }

    fn with_key(key: &rcgen::KeyPair) -> Result<Self, IdentityError> {
        let mut params = rcgen::CertificateParams::default();
        // No names: clients never check them and any SNI is accepted. An
        // empty subject also avoids a recognisable fixed string in the
        // certificate an active prober would receive.
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cert = params
            .self_signed(key)
            .map_err(|_| IdentityError::Generate)?;
        let cert_der = cert.der().clone();
        let pin = pin_of_certificate(cert_der.as_ref())?;
        Ok(Self {
            key_pkcs8: Zeroizing::new(key.serialize_der()),
            cert_der,
            pin,
            endorsement: None,
        })
    }
}

impl std::fmt::Debug for RelayIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayIdentity(..)")
    }
}

fn load_key(key_pkcs8: &[u8]) -> Result<rcgen::KeyPair, IdentityError> {
    let der = PrivatePkcs8KeyDer::from(key_pkcs8);
    rcgen::KeyPair::try_from(&der).map_err(|_| IdentityError::BadKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_is_stable_across_save_and_load() {
        let id = RelayIdentity::generate().unwrap();
        let key = id.to_pkcs8_der();
        let again = RelayIdentity::from_pkcs8_der(&key).unwrap();
        assert_eq!(again.pin(), id.pin());
        assert_eq!(again.certificate_der(), id.certificate_der());
        let parts = RelayIdentity::from_parts(&key, id.certificate_der()).unwrap();
        assert_eq!(parts.pin(), id.pin());
    }

    #[test]
    fn from_parts_rejects_a_foreign_certificate() {
        let a = RelayIdentity::generate().unwrap();
        let b = RelayIdentity::generate().unwrap();
        assert_ne!(a.pin(), b.pin());
        let err = RelayIdentity::from_parts(&a.to_pkcs8_der(), b.certificate_der());
        assert!(matches!(err, Err(IdentityError::KeyMismatch)));
    }

    #[test]
    fn bad_key_and_certificate_are_typed_errors() {
        assert!(matches!(
            RelayIdentity::from_pkcs8_der(&[0u8; 48]),
            Err(IdentityError::BadKey)
        ));
        assert!(matches!(
            pin_of_certificate(&[0x30, 0x03, 0x02, 0x01, 0x01]),
            Err(IdentityError::BadCertificate)
        ));
    }

    #[test]
    fn pin_is_sha256_of_the_spki() {
        let id = RelayIdentity::generate().unwrap();
        let key = load_key(&id.to_pkcs8_der()).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        assert_eq!(id.pin(), RelayPin::from_spki_der(&spki));
        assert!(pins_equal(&id.pin(), &RelayPin::from_spki_der(&spki)));
        let mut other = *id.pin().as_bytes();
        other[0] ^= 0x80;
        assert!(!pins_equal(&id.pin(), &RelayPin::from_bytes(other)));
    }
}
