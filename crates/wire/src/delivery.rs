//! Delivery encryption: the relay encrypts each message once more, to the recipient.
//!
//! TLS already protects the connection. This layer is for when TLS is broken (a state
//! CA, a compromised relay key): the `SEND` body going into the relay and the `MSG`
//! body coming out are then still different random-looking bytes, so an observer of
//! both connections cannot match a sender to a recipient by content.
//!
//! ```text
//! NEW:   relay makes a per-queue X25519 pair; IDS carries its public key
//! key  = HKDF-SHA256(salt = "", ikm = X25519(relay queue secret, recipient_dh_key),
//!                    info = DELIVERY_KEY_LABEL ‖ relay_dh_key ‖ recipient_dh_key)
//! MSG:   sealed = XChaCha20-Poly1305(key, nonce = msg_id,
//!                    aad = recipient_id ‖ msg_id ‖ timestamp u64 BE, body)
//! ```
//!
//! The associated data binds every other byte of the `MSG` frame, so nothing in it can
//! be altered without [`open_delivery`] failing. Message ids are random and unique per
//! queue, so a nonce is reused only to seal the same message again, which gives the
//! same bytes and reveals nothing new.

use core::fmt;
use std::cell::RefCell;

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::{
    AEAD_TAG_LEN, DhPublic, DhSecret, Secret32, hkdf_sha256, xchacha_open, xchacha_seal_in_place,
};

use crate::ids::{MSG_ID_LEN, MsgId, QUEUE_ID_LEN, RecipientId};
use crate::spare;

/// HKDF info prefix of a queue's delivery key.
pub const DELIVERY_KEY_LABEL: &[u8] = b"passage/1 delivery";

/// Length of a sealed body: the envelope and the AEAD tag (3920 bytes).
pub const SEALED_BODY_LEN: usize = ENVELOPE_LEN + AEAD_TAG_LEN;

/// The key a queue's deliveries are sealed with. Zeroized on drop, never printed.
#[derive(Clone)]
pub struct DeliveryKey(Secret32);

/// A delivery key could not be derived, or a delivery did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The peer's X25519 key has low order.
    #[error("the delivery public key is of low order")]
    LowOrderKey,
    /// The sealed body did not open: wrong key, or any byte of the `MSG` altered.
    #[error("delivery did not authenticate")]
    Open,
}

impl DeliveryKey {
    /// The relay's side, at `NEW` (or when loading the queue).
    pub fn for_relay(
        relay_queue_secret: &DhSecret,
        recipient_dh_key: &DhPublic,
    ) -> Result<Self, DeliveryError> {
        let relay_dh_key = relay_queue_secret.public_key();
        Self::derive(
            relay_queue_secret,
            recipient_dh_key,
            &relay_dh_key,
            recipient_dh_key,
        )
    }

    /// The recipient's side, after `IDS`.
    pub fn for_recipient(
        recipient_dh_secret: &DhSecret,
        relay_dh_key: &DhPublic,
    ) -> Result<Self, DeliveryError> {
        let recipient_dh_key = recipient_dh_secret.public_key();
        Self::derive(
            recipient_dh_secret,
            relay_dh_key,
            relay_dh_key,
            &recipient_dh_key,
        )
    }

    fn derive(
        my_secret: &DhSecret,
        their_public: &DhPublic,
        relay_dh_key: &DhPublic,
        recipient_dh_key: &DhPublic,
    ) -> Result<Self, DeliveryError> {
        let dh = my_secret
            .diffie_hellman(their_public)
            .map_err(|_| DeliveryError::LowOrderKey)?;
        let key = hkdf_sha256::<32>(
            &[],
            dh.as_bytes(),
            &[
                DELIVERY_KEY_LABEL,
                relay_dh_key.as_bytes(),
                recipient_dh_key.as_bytes(),
            ],
        );
        Ok(Self(Secret32::from_bytes(*key)))
    }
}

impl fmt::Debug for DeliveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeliveryKey([redacted])")
    }
}

/// A body sealed to the recipient: [`SEALED_BODY_LEN`] bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBody(Box<[u8; SEALED_BODY_LEN]>);

impl SealedBody {
    /// Wraps sealed bytes.
    pub fn from_bytes(bytes: Box<[u8; SEALED_BODY_LEN]>) -> Self {
        Self(bytes)
    }

    /// The sealed bytes.
    pub fn as_bytes(&self) -> &[u8; SEALED_BODY_LEN] {
        &self.0
    }

    /// Hands back a sealed body once its `MSG` is encoded, so the next
    /// [`seal_delivery`] on this thread seals into it instead of allocating (see
    /// `spare.rs`; [`SPARE_SEALED_BODIES_PER_THREAD`] at most). It holds ciphertext only,
    /// and sealing overwrites every byte.
    pub fn recycle(self) {
        spare::give(&SPARE_SEALED_BODIES, self.0, SPARE_SEALED_BODIES_PER_THREAD);
    }
}

/// Sealed bodies kept per thread for reuse by [`seal_delivery`], at most.
pub const SPARE_SEALED_BODIES_PER_THREAD: usize = 16;

thread_local! {
    /// Bodies handed back by [`SealedBody::recycle`] on this thread.
    #[allow(clippy::vec_box, reason = "handed out again as the boxes they came in")]
    static SPARE_SEALED_BODIES: RefCell<Vec<Box<[u8; SEALED_BODY_LEN]>>> =
        const { RefCell::new(Vec::new()) };
}

impl fmt::Debug for SealedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedBody(..)")
    }
}

/// One message as delivered in `MSG`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Delivery {
    /// The queue.
    pub recipient_id: RecipientId,
    /// The relay's id of the message, for `ACK`; also the nonce.
    pub msg_id: MsgId,
    /// When the relay received it, in unix seconds (from the relay's `now`).
    pub timestamp: u64,
    /// The envelope, sealed to the recipient.
    pub sealed: SealedBody,
}

/// Seals a stored message for delivery (the relay's step).
pub fn seal_delivery(
    key: &DeliveryKey,
    recipient_id: RecipientId,
    msg_id: MsgId,
    timestamp: u64,
    body: &[u8; ENVELOPE_LEN],
) -> Delivery {
    let aad = associated_data(&recipient_id, &msg_id, timestamp);
    // Sealed where it will stay: envelope ‖ tag, no copy of the result. Every byte is
    // written, so the storage may be a recycled body.
    let mut bytes =
        spare::take(&SPARE_SEALED_BODIES).unwrap_or_else(|| Box::new([0u8; SEALED_BODY_LEN]));
    let (text, tag) = bytes.split_at_mut(ENVELOPE_LEN);
    text.copy_from_slice(body);
    tag.copy_from_slice(&xchacha_seal_in_place(
        &key.0,
        msg_id.as_bytes(),
        &aad,
        text,
    ));
    Delivery {
        recipient_id,
        msg_id,
        timestamp,
        sealed: SealedBody(bytes),
    }
}

/// Opens a delivered message (the recipient's step): the envelope, or an error if any
/// byte of the `MSG` was altered.
pub fn open_delivery(
    key: &DeliveryKey,
    delivery: &Delivery,
) -> Result<Box<[u8; ENVELOPE_LEN]>, DeliveryError> {
    let aad = associated_data(&delivery.recipient_id, &delivery.msg_id, delivery.timestamp);
    let plain = xchacha_open(
        &key.0,
        delivery.msg_id.as_bytes(),
        &aad,
        delivery.sealed.as_bytes(),
    )
    .map_err(|_| DeliveryError::Open)?;
    let body: [u8; ENVELOPE_LEN] = plain
        .as_slice()
        .try_into()
        .map_err(|_| DeliveryError::Open)?;
    Ok(Box::new(body))
}

fn associated_data(
    recipient_id: &RecipientId,
    msg_id: &MsgId,
    timestamp: u64,
) -> [u8; QUEUE_ID_LEN + MSG_ID_LEN + 8] {
    let mut aad = [0u8; QUEUE_ID_LEN + MSG_ID_LEN + 8];
    let (id, rest) = aad.split_at_mut(QUEUE_ID_LEN);
    let (msg, time) = rest.split_at_mut(MSG_ID_LEN);
    id.copy_from_slice(recipient_id.as_bytes());
    msg.copy_from_slice(msg_id.as_bytes());
    time.copy_from_slice(&timestamp.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A queue's relay secret, and its delivery key as the relay and as the recipient
    /// derive it.
    fn key_pair(rng: &mut rand::rngs::StdRng) -> (DhSecret, DeliveryKey, DeliveryKey) {
        let relay_secret = DhSecret::generate(rng);
        let recipient_secret = DhSecret::generate(rng);
        let relay_key =
            DeliveryKey::for_relay(&relay_secret, &recipient_secret.public_key()).unwrap();
        let client_key =
            DeliveryKey::for_recipient(&recipient_secret, &relay_secret.public_key()).unwrap();
        (relay_secret, relay_key, client_key)
    }

    /// A recycled body is sealed into: same bytes as a fresh one, nothing of the message
    /// it held before left in it.
    #[test]
    fn sealing_into_a_recycled_body_gives_the_same_bytes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let (_, relay_key, client_key) = key_pair(&mut rng);
        let id = RecipientId::generate(&mut rng);
        let (first_id, second_id) = (MsgId::generate(&mut rng), MsgId::generate(&mut rng));
        let (first_body, second_body) = (
            Box::new([0x11; ENVELOPE_LEN]),
            Box::new([0x22; ENVELOPE_LEN]),
        );

        let fresh = seal_delivery(&relay_key, id, first_id, 7, &first_body);
        let expected = fresh.clone();
        let storage = fresh.sealed.as_bytes().as_ptr();
        fresh.sealed.recycle();
        let second = seal_delivery(&relay_key, id, second_id, 8, &second_body);
        assert_eq!(second.sealed.as_bytes().as_ptr(), storage, "reused");
        assert_eq!(open_delivery(&client_key, &second).unwrap(), second_body);
        second.sealed.recycle();
        let again = seal_delivery(&relay_key, id, first_id, 7, &first_body);
        assert_eq!(again, expected);
        assert_eq!(open_delivery(&client_key, &again).unwrap(), first_body);
    }

    #[test]
    fn both_sides_derive_the_same_key_and_tampering_fails() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (relay_secret, relay_key, client_key) = key_pair(&mut rng);
        let body = Box::new([0x5a; ENVELOPE_LEN]);
        let id = RecipientId::generate(&mut rng);
        let msg_id = MsgId::generate(&mut rng);
        let delivery = seal_delivery(&relay_key, id, msg_id, 1_700_000_000, &body);
        assert_ne!(&delivery.sealed.as_bytes()[..ENVELOPE_LEN], body.as_slice());
        assert_eq!(open_delivery(&client_key, &delivery).unwrap(), body);
        // Sealing again gives the same bytes: redelivery reveals nothing new.
        assert_eq!(
            seal_delivery(&relay_key, id, msg_id, 1_700_000_000, &body),
            delivery
        );

        let mut later = delivery.clone();
        later.timestamp += 1;
        assert_eq!(open_delivery(&client_key, &later), Err(DeliveryError::Open));
        let mut other_queue = delivery.clone();
        other_queue.recipient_id = RecipientId::generate(&mut rng);
        assert_eq!(
            open_delivery(&client_key, &other_queue),
            Err(DeliveryError::Open)
        );
        let wrong =
            DeliveryKey::for_recipient(&DhSecret::generate(&mut rng), &relay_secret.public_key())
                .unwrap();
        assert_eq!(open_delivery(&wrong, &delivery), Err(DeliveryError::Open));
        assert_eq!(
            DeliveryKey::for_relay(&relay_secret, &DhPublic::from_bytes([0; 32])).map(|_| ()),
            Err(DeliveryError::LowOrderKey)
        );
        assert_eq!(format!("{relay_key:?}"), "DeliveryKey([redacted])");
    }
}
