//! The secrets a client holds for a queue: the recipient's ([`QueueCredentials`]) and a
//! sender's ([`SenderCredentials`]). Boxed, zeroized on drop, never printed.

use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_wire::{DeliveryKey, RecipientId, SenderId};
use rand_core::CryptoRng;

use super::error::{LinkError, ProtocolError};

/// What the recipient of a queue holds: both ids, the recipient auth and DH secrets,
/// the relay's delivery key for the queue, and the delivery key derived from them.
///
/// Made by [`RelayLink::create_queue`](super::RelayLink::create_queue) (or restored
/// with [`from_parts`](Self::from_parts)). The secrets are boxed and zeroized on drop;
/// `Debug` prints nothing of them, nor the ids (an id in a log links a person's traffic).
#[derive(Clone)]
pub struct QueueCredentials {
    recipient_id: RecipientId,
    sender_id: SenderId,
    relay_dh_key: DhPublic,
    secrets: Box<RecipientSecrets>,
}

/// The recipient's secrets of one queue. Each field zeroizes itself on drop.
#[derive(Clone)]
struct RecipientSecrets {
    auth: DhSecret,
    dh: DhSecret,
    delivery: DeliveryKey,
}

impl QueueCredentials {
    /// Restores credentials from their parts (e.g. from the client's encrypted vault).
    /// Fails if `relay_dh_key` has low order, which no honest relay sends.
    pub fn from_parts(
        recipient_id: RecipientId,
        sender_id: SenderId,
        recipient_auth_secret: DhSecret,
        recipient_dh_secret: DhSecret,
        relay_dh_key: DhPublic,
    ) -> Result<Self, LinkError> {
        let delivery = DeliveryKey::for_recipient(&recipient_dh_secret, &relay_dh_key)
            .map_err(|_| LinkError::Protocol(ProtocolError::BadRelayKey))?;
        Ok(Self {
            recipient_id,
            sender_id,
            relay_dh_key,
            secrets: Box::new(RecipientSecrets {
                auth: recipient_auth_secret,
                dh: recipient_dh_secret,
                delivery,
            }),
        })
    }

    /// The id the recipient reads the queue with. Keep it secret: only the relay and
    /// the recipient know it.
    pub fn recipient_id(&self) -> RecipientId {
        self.recipient_id
    }

    /// The id senders send with; it goes into invitations.
    pub fn sender_id(&self) -> SenderId {
        self.sender_id
    }

    /// The relay's X25519 key for this queue's deliveries.
    pub fn relay_dh_key(&self) -> DhPublic {
        self.relay_dh_key
    }

    /// The secret that authenticates recipient commands (`SUB`, `GET`, `ACK`, `DEL`).
    pub fn recipient_auth_secret(&self) -> &DhSecret {
        &self.secrets.auth
    }

    /// The secret the relay's deliveries are encrypted to.
    pub fn recipient_dh_secret(&self) -> &DhSecret {
        &self.secrets.dh
    }

    /// The key that opens this queue's deliveries.
    pub fn delivery_key(&self) -> &DeliveryKey {
        &self.secrets.delivery
    }
}

impl core::fmt::Debug for QueueCredentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("QueueCredentials([redacted])")
    }
}

/// What a sender holds for a queue: its auth secret, and whether the next `SEND` must
/// carry the matching public key.
///
/// The first `SEND` to a queue carries the sender's public key, and the relay fixes it
/// for the queue; later sends are authenticated by it and need not carry it. A new
/// `SenderCredentials` announces its key; call [`mark_key_fixed`](Self::mark_key_fixed)
/// after the first send succeeded. Announcing the key again is harmless (the relay
/// accepts the key it already has), so a sender that is unsure may keep announcing it.
#[derive(Clone)]
pub struct SenderCredentials {
    secret: Box<DhSecret>,
    announce_key: bool,
}

impl SenderCredentials {
    /// A fresh sender key that the next `SEND` announces.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret(DhSecret::generate(rng), true)
    }

    /// Restores a sender key; `announce_key` says whether the next `SEND` carries the
    /// public key (true until the relay has accepted a send with it).
    pub fn from_secret(secret: DhSecret, announce_key: bool) -> Self {
        Self {
            secret: Box::new(secret),
            announce_key,
        }
    }

    /// Later sends omit the public key: the relay has fixed it for the queue.
    pub fn mark_key_fixed(&mut self) {
        self.announce_key = false;
    }

    /// Whether the next `SEND` carries the public key.
    pub fn announces_key(&self) -> bool {
        self.announce_key
    }

    /// The sender's public auth key.
    pub fn public_key(&self) -> DhPublic {
        self.secret.public_key()
    }

    /// The sender's auth secret.
    pub fn secret(&self) -> &DhSecret {
        &self.secret
    }
}

impl core::fmt::Debug for SenderCredentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SenderCredentials")
            .field("announce_key", &self.announce_key)
            .finish_non_exhaustive()
    }
}
