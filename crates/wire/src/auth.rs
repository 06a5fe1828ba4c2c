//! Command authenticators: a MAC keyed per (connection, queue), not a signature.
//!
//! Checking an Ed25519 signature costs the relay about 26 µs, forwarding a block about
//! 7 µs. So each queue has X25519 *auth keys* (the recipient's from `NEW`, the
//! sender's from the first `SEND`) and each connection a relay *session key* (sent in
//! [`RelayHello`](crate::RelayHello)). Both ends derive the same MAC key:
//!
//! ```text
//! dh       = X25519(queue auth secret, session public)      client
//!          = X25519(session secret, queue auth public)      relay
//! key      = HKDF-SHA256(salt = channel binding, ikm = dh, info = role label)
//! tag      = HMAC-SHA256(key, corr_id ‖ entity ‖ command)
//! ```
//!
//! The role label is [`RECIPIENT_AUTH_LABEL`] or [`SENDER_AUTH_LABEL`], so a key made
//! for one role never checks a command of the other. The channel binding is the TLS
//! exporter value of this connection (RFC 9266): a captured command does not verify on
//! another connection. The relay derives the key once per (connection, queue, role)
//! and caches it; a check is then one HMAC and a constant-time comparison.
//!
//! # Missing queues
//!
//! The relay must answer a command for a queue that does not exist exactly as one with
//! a bad authenticator: `ERR AUTH`, after the same work. Derive
//! [`AuthKey::dummy`] where the key would be derived (and cache it the same way), then
//! verify with it: it costs an X25519 and an HKDF like a real key, runs the same HMAC,
//! and never verifies.

use passage_crypto::primitives::{
    DhPublic, DhSecret, Secret32, hkdf_sha256, hmac_sha256, hmac_sha256_verify,
};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::command::{Command, signed_parts};
use crate::ids::CorrId;

/// Length of a channel binding value: RFC 9266 `tls-exporter` output for TLS 1.3.
pub const CHANNEL_BINDING_LEN: usize = 32;

/// The TLS exporter label the transport passes to get the channel binding (RFC 9266;
/// empty context).
pub const CHANNEL_BINDING_EXPORTER_LABEL: &str = "EXPORTER-Channel-Binding";

/// Length of an authenticator: one HMAC-SHA256 tag.
pub const AUTHENTICATOR_LEN: usize = 32;

/// HKDF info of the MAC key for recipient commands (`NEW`, `SUB`, `GET`, `ACK`, `DEL`).
pub const RECIPIENT_AUTH_LABEL: &[u8] = b"passage/1 recipient command auth";

/// HKDF info of the MAC key for sender commands (`SEND`).
pub const SENDER_AUTH_LABEL: &[u8] = b"passage/1 sender command auth";

/// The connection's channel binding: the TLS exporter output, from the transport.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct ChannelBinding([u8; CHANNEL_BINDING_LEN]);

impl ChannelBinding {
    /// Wraps the exporter output for [`CHANNEL_BINDING_EXPORTER_LABEL`] with an empty context.
    pub fn from_bytes(bytes: [u8; CHANNEL_BINDING_LEN]) -> Self {
        Self(bytes)
    }

    /// The binding bytes.
    pub fn as_bytes(&self) -> &[u8; CHANNEL_BINDING_LEN] {
        &self.0
    }
}

impl core::fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChannelBinding([redacted])")
    }
}

/// Which queue key authenticates a command.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AuthRole {
    /// The recipient's auth key: `NEW`, `SUB`, `GET`, `ACK`, `DEL`.
    Recipient,
    /// The sender's auth key: `SEND`.
    Sender,
}

impl AuthRole {
    /// The HKDF label of this role's MAC key.
    pub fn label(self) -> &'static [u8] {
        match self {
            AuthRole::Recipient => RECIPIENT_AUTH_LABEL,
            AuthRole::Sender => SENDER_AUTH_LABEL,
        }
    }
}

/// An authenticator: HMAC-SHA256 over the transmission without it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Authenticator([u8; AUTHENTICATOR_LEN]);

impl Authenticator {
    /// Wraps tag bytes.
    pub fn from_bytes(bytes: [u8; AUTHENTICATOR_LEN]) -> Self {
        Self(bytes)
    }

    /// The tag bytes.
    pub fn as_bytes(&self) -> &[u8; AUTHENTICATOR_LEN] {
        &self.0
    }
}

impl core::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Authenticator(..)")
    }
}

/// A command did not authenticate. The relay answers `ERR AUTH` to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The command needs an authenticator and has none.
    #[error("missing authenticator")]
    Missing,
    /// The key is for the other role.
    #[error("auth key of the wrong role for this command")]
    WrongRole,
    /// The authenticator is wrong (or the queue does not exist).
    #[error("authenticator does not verify")]
    Invalid,
}

/// An [`AuthKey`] could not be derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthKeyError {
    /// The peer's X25519 key has low order; the relay answers `ERR AUTH`.
    #[error("the auth public key is of low order")]
    LowOrderKey,
}

/// The MAC key for one queue role on one connection. Zeroized on drop, never printed.
#[derive(Clone)]
pub struct AuthKey {
    key: Secret32,
    role: AuthRole,
    /// Set by [`AuthKey::dummy`]: verification does the full work, then fails.
    dummy: bool,
}

impl AuthKey {
    /// Derives the key. The client passes its queue auth secret and the relay's session
    /// key; the relay passes its session secret and the queue's auth key.
    pub fn derive(
        role: AuthRole,
        my_secret: &DhSecret,
        their_public: &DhPublic,
        channel_binding: &ChannelBinding,
    ) -> Result<Self, AuthKeyError> {
        // X25519 fails only for a non-contributory (low-order) peer key.
        let dh = my_secret
            .diffie_hellman(their_public)
            .map_err(|_| AuthKeyError::LowOrderKey)?;
        let key = hkdf_sha256::<32>(channel_binding.as_bytes(), dh.as_bytes(), &[role.label()]);
        Ok(Self {
            key: Secret32::from_bytes(*key),
            role,
            dummy: false,
        })
    }

    /// A key for a queue that does not exist. Costs what [`derive`](Self::derive) costs
    /// (an X25519 with the session secret, an HKDF) and never verifies anything.
    pub fn dummy(
        role: AuthRole,
        session_secret: &DhSecret,
        channel_binding: &ChannelBinding,
    ) -> Self {
        // The X25519 base point: always contributory, so the work matches a real key.
        let mut base_point = [0u8; 32];
        base_point[0] = 9;
        let mut key = Self::derive(
            role,
            session_secret,
            &DhPublic::from_bytes(base_point),
            channel_binding,
        )
        .unwrap_or_else(|_| Self {
            key: Secret32::from_bytes([0; 32]),
            role,
            dummy: true,
        });
        key.dummy = true;
        key
    }

    /// The role this key authenticates.
    pub fn role(&self) -> AuthRole {
        self.role
    }

    /// The authenticator of `command` sent with `corr_id`.
    pub fn sign(&self, corr_id: &CorrId, command: &Command) -> Authenticator {
        Authenticator(hmac_sha256(
            self.key.as_bytes(),
            &signed_parts(corr_id, command).parts(),
        ))
    }

    /// Checks an authenticator in constant time. Fails if the command needs the other
    /// role, if the tag is wrong, or always if this is a [dummy](Self::dummy) key.
    pub fn verify(
        &self,
        corr_id: &CorrId,
        command: &Command,
        authenticator: &Authenticator,
    ) -> Result<(), AuthError> {
        if command.auth_role() != Some(self.role) {
            return Err(AuthError::WrongRole);
        }
        let tag_ok = hmac_sha256_verify(
            self.key.as_bytes(),
            &signed_parts(corr_id, command).parts(),
            authenticator.as_bytes(),
        )
        .is_ok();
        // Non-short-circuit `&`: a dummy key does the same work as a real one.
        if tag_ok & !self.dummy {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }
}

impl core::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AuthKey")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}
