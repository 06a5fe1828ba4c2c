//! TLS 1.3 configuration shared by both transports, and the pin verifier.
//!
//! Both sides use rustls with the *ring* provider, chosen explicitly (never a
//! process-wide default). TLS 1.3 only, ALPN `passage/1`, no session
//! resumption, no tickets and no 0-RTT: nothing a relay acts on may arrive
//! in replayable early data.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, ParsedCertificate};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, PeerIncompatible, ServerConfig,
    SignatureScheme,
};

use crate::error::TransportError;
use crate::identity::{RelayIdentity, pins_equal};
use crate::rotation::KeyRotation;
use passage_wire::RelayPin;

/// The ALPN protocol id both transports negotiate.
pub const ALPN: &[u8] = b"passage/1";

/// Length of the channel binding, in bytes.
pub const CHANNEL_BINDING_LEN: usize = 32;

/// RFC 9266 exporter label for `tls-exporter` channel binding.
pub(crate) const CHANNEL_BINDING_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// Server name handed to rustls and quinn on the client. SNI is disabled,
/// so it never goes on the wire, and the pin verifier ignores names; it only
/// has to parse.
pub(crate) const PLACEHOLDER_SERVER_NAME: &str = "relay.invalid";

/// The crypto provider: *ring*, never aws-lc-rs, never a process default.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server TLS config for both transports.
pub(crate) fn server_config(identity: &RelayIdentity) -> Result<ServerConfig, TransportError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TransportError::Config)?
        .with_no_client_auth()
        // A single certificate whatever the SNI (or none).
        .with_single_cert(identity.cert_chain(), identity.private_key())
        .map_err(TransportError::Config)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    // No resumption of any kind: no session cache, no tickets, no early data.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    config.send_half_rtt_data = false;
    Ok(config)
}

/// Client TLS config for one connection attempt, plus the flag its verifier
/// raises on a pin mismatch (quinn reduces handshake failures to a QUIC
/// error code, so the flag is how [`TransportError::PinMismatch`] survives).
pub(crate) fn client_config(
    pin: RelayPin,
) -> Result<(ClientConfig, PinMismatchFlag), TransportError> {
    let provider = provider();
    let flag = PinMismatchFlag::default();
    let verifier = PinVerifier {
        pin,
        algorithms: provider.signature_verification_algorithms,
        mismatch: flag.clone(),
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TransportError::Config)?
        .dangerous() // pin instead of CA: see PinVerifier
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    // No SNI: the relay accepts any, and a host name in the clear only helps
    // a censor. (ALPN is still visible.)
    config.enable_sni = false;
    Ok((config, flag))
}

/// Set by the pin verifier of one connection attempt when the relay's key
/// does not match the pin; also holds the key rotation it verified, if the
/// relay presented its new key endorsed by the pinned one.
#[derive(Debug, Clone, Default)]
pub(crate) struct PinMismatchFlag(Arc<(AtomicBool, Mutex<Option<KeyRotation>>)>);

impl PinMismatchFlag {
    pub(crate) fn is_set(&self) -> bool {
        self.0.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.0.store(true, Ordering::Release);
    }

    /// The rotation the verifier accepted, if any.
    pub(crate) fn rotation(&self) -> Option<KeyRotation> {
        *self.0.1.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_rotation(&self, rotation: KeyRotation) {
        *self.0.1.lock().unwrap_or_else(PoisonError::into_inner) = Some(rotation);
    }
}

/// Accepts exactly the certificate whose SubjectPublicKeyInfo hashes to the
/// pin, and still checks the TLS 1.3 handshake signature made with that key.
/// Names, validity dates and CAs are deliberately ignored: the pin is the
/// whole trust decision.
#[derive(Debug)]
struct PinVerifier {
    pin: RelayPin,
    algorithms: WebPkiSupportedAlgorithms,
    mismatch: PinMismatchFlag,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let actual = RelayPin::from_spki_der(parsed.subject_public_key_info().as_ref());
        // The pinned key, or during a rotation a new key the pinned one endorsed.
        let rotation = || {
            crate::rotation::check(
                intermediates.first()?.as_ref(),
                &self.pin,
                &actual,
                now.as_secs(),
                &self.algorithms,
            )
        };
        if pins_equal(&actual, &self.pin) {
            Ok(ServerCertVerified::assertion())
        } else if let Some(rotation) = rotation() {
            self.mismatch.set_rotation(rotation);
            Ok(ServerCertVerified::assertion())
        } else {
            self.mismatch.set();
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        // Only TLS 1.3 is offered; a TLS 1.2 handshake never gets here.
        Err(Error::PeerIncompatible(
            PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        // rustls calls this with the end-entity certificate that
        // `verify_server_cert` accepted, so the signature is by the pinned key
        // (or by the new key the pinned one endorsed).
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_binding_agrees_with_the_wire_crate_and_rfc_9266() {
        assert_eq!(CHANNEL_BINDING_LABEL, b"EXPORTER-Channel-Binding");
        assert_eq!(
            CHANNEL_BINDING_LABEL,
            passage_wire::auth::CHANNEL_BINDING_EXPORTER_LABEL.as_bytes()
        );
        assert_eq!(CHANNEL_BINDING_LEN, passage_wire::auth::CHANNEL_BINDING_LEN);
    }

    #[test]
    fn nothing_is_resumable_or_replayable() {
        let identity = RelayIdentity::generate().unwrap();
        let server = server_config(&identity).unwrap();
        assert_eq!(server.max_early_data_size, 0);
        assert_eq!(server.send_tls13_tickets, 0);
        assert!(!server.ticketer.enabled());
        assert!(!server.session_storage.can_cache());
        assert_eq!(server.alpn_protocols, vec![ALPN.to_vec()]);

        let (client, flag) = client_config(identity.pin()).unwrap();
        assert!(!client.enable_early_data);
        assert!(!client.enable_sni);
        assert_eq!(client.alpn_protocols, vec![ALPN.to_vec()]);
        assert!(!flag.is_set());
    }

    #[test]
    fn verifier_checks_the_pin() {
        let identity = RelayIdentity::generate().unwrap();
        let cert = CertificateDer::from(identity.certificate_der().to_vec());
        let name = ServerName::try_from(PLACEHOLDER_SERVER_NAME).unwrap();
        let provider = provider();
        let verifier = |pin| PinVerifier {
            pin,
            algorithms: provider.signature_verification_algorithms,
            mismatch: PinMismatchFlag::default(),
        };

        let good = verifier(identity.pin());
        assert!(
            good.verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert!(!good.mismatch.is_set());

        let mut other = *identity.pin().as_bytes();
        other[31] ^= 1;
        let bad = verifier(RelayPin::from_bytes(other));
        assert!(
            bad.verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
                .is_err()
        );
        assert!(bad.mismatch.is_set());

        let garbage = CertificateDer::from(vec![0x30, 0x00]);
        let fresh = verifier(identity.pin());
        assert!(
            fresh
                .verify_server_cert(&garbage, &[], &name, &[], UnixTime::now())
                .is_err()
        );
        // Unparseable is not a mismatch: it is a broken peer.
        assert!(!fresh.mismatch.is_set());
    }
}
