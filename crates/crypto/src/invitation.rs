//! Invitations: what one person hands another out of band (a QR code or a link).
//!
//! An [`Invitation`] carries the inviter's receiving queue (opaque bytes to this
//! crate: the wire crate encodes relay address and sender id), the inviter's identity
//! keys for this contact, a one-time X25519 key and a one-time ML-KEM-768 key, a
//! protocol version and an expiry time, all signed with the inviter's Ed25519
//! identity key. It travels as a link:
//!
//! ```text
//! passage:i1.<base64url, no padding, of: body ‖ signature>
//! body = version u16 ‖ expires_at u64 ‖ queue (u16 length ‖ bytes)
//!        ‖ identity dh (32) ‖ identity signing (32)
//!        ‖ one-time dh (32) ‖ one-time ML-KEM-768 key (1184)
//! signature = Ed25519(identity signing, "passage/1 invitation signature" ‖ body)
//! ```
//!
//! Relay addresses are `passage://…`; an invitation is `passage:i1.…`, so one can
//! never be taken for the other. The inviter keeps the matching secrets in a
//! [`PendingInvitation`] until an accept arrives (see [`crate::handshake`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::codec::{DecodeError, Reader, Writer};
use crate::identity::{Identity, IdentityPublic, IdentitySnapshot};
use crate::primitives::{
    DhPublic, DhSecret, ED25519_SIGNATURE_LEN, KemPublic, KemSecret, MLKEM768_PUBLIC_LEN,
    MLKEM768_SEED_LEN, Signature, sha256,
};

/// The protocol version this crate speaks; the `1` in `passage:i1.`.
pub const INVITATION_VERSION: u16 = 1;

/// What every invitation link starts with.
pub const INVITATION_LINK_PREFIX: &str = "passage:i1.";

/// Largest queue description an invitation carries. The wire crate's queue address
/// (relay pin, host up to 253 bytes, port, sender id) fits with room to spare; the
/// bound keeps a hostile link from growing the QR code or our allocations.
pub const MAX_QUEUE_LEN: usize = 320;

/// Largest link accepted for decoding, checked before any base64 work. An
/// invitation with the largest queue is about 2.3 KB of link text.
pub const MAX_LINK_LEN: usize = 4096;

/// Length of an invitation id (a hash prefix used to match an accept to its invitation).
pub const INVITATION_ID_LEN: usize = 16;

pub(crate) const SIGNATURE_LABEL: &[u8] = b"passage/1 invitation signature";
pub(crate) const ID_LABEL: &[u8] = b"passage/1 invitation id";

/// Why an invitation could not be made, read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvitationError {
    /// The text is a relay address (`passage://`), not an invitation.
    #[error("this is a relay address (passage://…), not an invitation link")]
    RelayAddressGiven,
    /// The text does not start with `passage:i1.`.
    #[error("not a Passage invitation link (it must start with \"passage:i1.\")")]
    NotAnInvitation,
    /// The link is longer than [`MAX_LINK_LEN`].
    #[error("invitation link too long ({len} characters, at most {max})")]
    LinkTooLong {
        /// Characters in the link.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The link's data is not valid unpadded base64url (it was probably cut or altered).
    #[error("invitation link is damaged: not valid base64url")]
    Base64,
    /// The decoded bytes do not form an invitation.
    #[error("invitation link is damaged: {0}")]
    Decode(#[from] DecodeError),
    /// The invitation was made by a protocol version this build does not speak.
    #[error("invitation uses protocol version {0}, this build speaks version 1; update Passage")]
    UnsupportedVersion(u16),
    /// The signature over the invitation does not verify: it was altered.
    #[error("invitation link is damaged or forged: its signature does not verify")]
    BadSignature,
    /// The invitation's time has passed.
    #[error("invitation has expired; ask for a new one")]
    Expired,
    /// The queue description handed to [`PendingInvitation::create`] is too long.
    #[error("queue description of {len} bytes exceeds the limit of {max}")]
    QueueTooLong {
        /// Its length.
        len: usize,
        /// The limit, [`MAX_QUEUE_LEN`].
        max: usize,
    },
}

/// A decoded, signature-checked invitation (public data only).
#[derive(Clone, PartialEq, Eq)]
pub struct Invitation {
    version: u16,
    expires_at: u64,
    queue: Vec<u8>,
    identity: IdentityPublic,
    one_time_dh: DhPublic,
    one_time_kem: KemPublic,
    /// The signed body followed by the signature, exactly as in the link.
    encoded: Vec<u8>,
}

impl Invitation {
    /// Protocol version.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Unix time (seconds) after which the invitation must not be accepted.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The inviter's receiving queue, as the wire crate encoded it.
    pub fn queue(&self) -> &[u8] {
        &self.queue
    }

    /// The inviter's identity keys for this contact.
    pub fn identity(&self) -> &IdentityPublic {
        &self.identity
    }

    /// The one-time X25519 key (also the inviter's first ratchet key).
    pub fn one_time_dh(&self) -> &DhPublic {
        &self.one_time_dh
    }

    /// The one-time ML-KEM-768 encapsulation key.
    pub fn one_time_kem(&self) -> &KemPublic {
        &self.one_time_kem
    }

    /// The exact signed bytes (body ‖ signature); bound into the handshake transcript.
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// A short id, the same on both sides, that lets the inviter match an accept to
    /// its pending invitation.
    pub fn id(&self) -> [u8; INVITATION_ID_LEN] {
        let digest = sha256(&[ID_LABEL, &self.encoded]);
        let mut id = [0u8; INVITATION_ID_LEN];
        id.copy_from_slice(&digest[..INVITATION_ID_LEN]);
        id
    }

    /// Whether the invitation has expired at unix time `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        now > self.expires_at
    }

    /// The `passage:i1.…` link.
    pub fn to_link(&self) -> String {
        let mut link =
            String::with_capacity(INVITATION_LINK_PREFIX.len() + self.encoded.len() * 4 / 3 + 4);
        link.push_str(INVITATION_LINK_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&self.encoded, &mut link);
        link
    }

    /// Parses and checks a link: prefix, size, base64url, every field, the version,
    /// the ML-KEM key (FIPS 203 checks) and the signature. Surrounding whitespace
    /// (from copy and paste) is ignored. Expiry is checked at accept time.
    pub fn from_link(link: &str) -> Result<Self, InvitationError> {
        let link = link.trim();
        if link.len() > MAX_LINK_LEN {
            return Err(InvitationError::LinkTooLong {
                len: link.len(),
                max: MAX_LINK_LEN,
            });
        }
        if link.starts_with("passage://") {
            return Err(InvitationError::RelayAddressGiven);
        }
        let Some(data) = link.strip_prefix(INVITATION_LINK_PREFIX) else {
            return Err(InvitationError::NotAnInvitation);
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| InvitationError::Base64)?;
        Self::from_bytes(&bytes)
    }

    /// Parses and checks the binary form (body ‖ signature).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvitationError> {
        let body_len = bytes
            .len()
            .checked_sub(ED25519_SIGNATURE_LEN)
            .ok_or_else(|| DecodeError::Truncated {
                needed: ED25519_SIGNATURE_LEN.saturating_sub(bytes.len()),
            })?;
        let (body, signature) = bytes.split_at(body_len);
        let mut r = Reader::new(body);
        let version = r.u16()?;
        if version != INVITATION_VERSION {
            return Err(InvitationError::UnsupportedVersion(version));
        }
        let expires_at = r.u64()?;
        let queue = r.bytes_u16(MAX_QUEUE_LEN)?.to_vec();
        let identity = IdentityPublic::from_bytes(&r.array()?);
        let one_time_dh = DhPublic::from_bytes(r.array()?);
        let one_time_kem = KemPublic::from_slice(r.take(MLKEM768_PUBLIC_LEN)?).map_err(|_| {
            DecodeError::Invalid {
                field: "ML-KEM key",
            }
        })?;
        r.finish()?;
        let signature =
            Signature::from_slice(signature).map_err(|_| InvitationError::BadSignature)?;
        identity
            .signing
            .verify(&signed_message(body), &signature)
            .map_err(|_| InvitationError::BadSignature)?;
        Ok(Self {
            version,
            expires_at,
            queue,
            identity,
            one_time_dh,
            one_time_kem,
            encoded: bytes.to_vec(),
        })
    }
}

impl core::fmt::Debug for Invitation {
    // The queue names a relay and a queue id: never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Invitation")
            .field("version", &self.version)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_LABEL.len() + body.len());
    m.extend_from_slice(SIGNATURE_LABEL);
    m.extend_from_slice(body);
    m
}

/// The inviter's side of an invitation: the secrets that answer an accept. Keep it
/// (as a snapshot, in the encrypted vault) until one accept completes, then drop it:
/// its one-time keys are what makes the invitation single-use.
#[derive(Clone)]
pub struct PendingInvitation {
    pub(crate) identity: Identity,
    pub(crate) one_time_dh: DhSecret,
    pub(crate) one_time_kem: KemSecret,
    pub(crate) invitation: Invitation,
}

impl PendingInvitation {
    /// Makes an invitation for `queue` (the inviter's receiving queue, encoded by the
    /// wire crate) that expires at unix time `expires_at`, with fresh one-time keys.
    /// `identity` should be fresh too: one identity per contact relationship.
    pub fn create<R: CryptoRng + ?Sized>(
        identity: Identity,
        queue: &[u8],
        expires_at: u64,
        rng: &mut R,
    ) -> Result<Self, InvitationError> {
        let one_time_dh = DhSecret::generate(rng);
        let one_time_kem = KemSecret::generate(rng);
        Self::assemble(identity, one_time_dh, one_time_kem, queue, expires_at)
    }

    fn assemble(
        identity: Identity,
        one_time_dh: DhSecret,
        one_time_kem: KemSecret,
        queue: &[u8],
        expires_at: u64,
    ) -> Result<Self, InvitationError> {
        if queue.len() > MAX_QUEUE_LEN {
            return Err(InvitationError::QueueTooLong {
                len: queue.len(),
                max: MAX_QUEUE_LEN,
            });
        }
        let public = identity.public();
        let kem_public = one_time_kem.public_key();
        let mut w = Writer::with_capacity(1500);
        w.put_u16(INVITATION_VERSION);
        w.put_u64(expires_at);
        w.put_bytes_u16(queue)
            .map_err(|e| InvitationError::QueueTooLong {
                len: e.len,
                max: MAX_QUEUE_LEN,
            })?;
        w.put(&public.to_bytes());
        w.put(one_time_dh.public_key().as_bytes());
        w.put(kem_public.as_bytes());
        let signature = identity.signing.sign(&signed_message(w.as_slice()));
        w.put(signature.as_bytes());
        let encoded = w.into_vec();
        let invitation = Invitation {
            version: INVITATION_VERSION,
            expires_at,
            queue: queue.to_vec(),
            identity: public,
            one_time_dh: one_time_dh.public_key(),
            one_time_kem: kem_public,
            encoded,
        };
        Ok(Self {
            identity,
            one_time_dh,
            one_time_kem,
            invitation,
        })
    }

    /// The public invitation to hand over.
    pub fn invitation(&self) -> &Invitation {
        &self.invitation
    }

    /// The secrets as a snapshot for the caller's encrypted store.
    pub fn snapshot(&self) -> PendingInvitationSnapshot {
        PendingInvitationSnapshot {
            identity: self.identity.snapshot(),
            one_time_dh: *self.one_time_dh.to_bytes(),
            one_time_kem: self.one_time_kem.to_seed().to_vec(),
            invitation: self.invitation.encoded.clone(),
        }
    }

    /// Restores from a snapshot; the stored invitation is re-checked against the keys.
    pub fn from_snapshot(snapshot: &PendingInvitationSnapshot) -> Result<Self, InvitationError> {
        let invitation = Invitation::from_bytes(&snapshot.invitation)?;
        let seed: [u8; MLKEM768_SEED_LEN] =
            snapshot
                .one_time_kem
                .as_slice()
                .try_into()
                .map_err(|_| DecodeError::Invalid {
                    field: "ML-KEM seed",
                })?;
        let pending = Self {
            identity: Identity::from_snapshot(&snapshot.identity),
            one_time_dh: DhSecret::from_bytes(snapshot.one_time_dh),
            one_time_kem: KemSecret::from_seed(seed),
            invitation,
        };
        let consistent = pending.identity.public() == pending.invitation.identity
            && pending.one_time_dh.public_key() == pending.invitation.one_time_dh
            && pending.one_time_kem.public_key() == pending.invitation.one_time_kem;
        if !consistent {
            return Err(DecodeError::Invalid {
                field: "pending invitation",
            }
            .into());
        }
        Ok(pending)
    }
}

impl core::fmt::Debug for PendingInvitation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingInvitation")
            .field("invitation", &self.invitation)
            .finish_non_exhaustive()
    }
}

/// A pending invitation's secrets, for the client's encrypted vault only.
/// Zeroized on drop, redacted in `Debug`.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct PendingInvitationSnapshot {
    identity: IdentitySnapshot,
    one_time_dh: [u8; 32],
    one_time_kem: Vec<u8>,
    invitation: Vec<u8>,
}

impl core::fmt::Debug for PendingInvitationSnapshot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PendingInvitationSnapshot([redacted])")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::SeedableRng;

    pub(crate) fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    fn pending() -> PendingInvitation {
        let mut rng = rng();
        let identity = Identity::generate(&mut rng);
        PendingInvitation::create(identity, b"queue address", 1_000, &mut rng).unwrap()
    }

    #[test]
    fn link_round_trip() {
        let p = pending();
        let link = p.invitation().to_link();
        assert!(link.starts_with("passage:i1."));
        assert!(link.len() < 2100, "link is {} chars", link.len());
        let back = Invitation::from_link(&format!("  {link}\n")).unwrap();
        assert_eq!(&back, p.invitation());
        assert_eq!(back.queue(), b"queue address");
        assert_eq!(back.id(), p.invitation().id());
        assert!(!back.is_expired(1_000));
        assert!(back.is_expired(1_001));
    }

    #[test]
    fn every_single_byte_change_is_refused() {
        let p = pending();
        let bytes = p.invitation().as_bytes().to_vec();
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x01;
            assert!(Invitation::from_bytes(&changed).is_err(), "byte {i}");
        }
        for len in 0..bytes.len() {
            assert!(
                Invitation::from_bytes(&bytes[..len]).is_err(),
                "length {len}"
            );
        }
    }

    #[test]
    fn relay_address_and_garbage_are_told_apart() {
        assert_eq!(
            Invitation::from_link("passage://abc@relay.example:443"),
            Err(InvitationError::RelayAddressGiven)
        );
        assert_eq!(
            Invitation::from_link("https://x"),
            Err(InvitationError::NotAnInvitation)
        );
        assert_eq!(
            Invitation::from_link("passage:i1.***"),
            Err(InvitationError::Base64)
        );
        let long = format!("passage:i1.{}", "A".repeat(MAX_LINK_LEN));
        assert!(matches!(
            Invitation::from_link(&long),
            Err(InvitationError::LinkTooLong { .. })
        ));
    }

    #[test]
    fn queue_length_at_and_past_the_limit() {
        let mut rng = rng();
        let id = Identity::generate(&mut rng);
        let p = PendingInvitation::create(id.clone(), &[1; MAX_QUEUE_LEN], 5, &mut rng).unwrap();
        let link = p.invitation().to_link();
        assert!(link.len() <= MAX_LINK_LEN);
        assert_eq!(
            Invitation::from_link(&link).unwrap().queue().len(),
            MAX_QUEUE_LEN
        );
        assert!(matches!(
            PendingInvitation::create(id, &[1; MAX_QUEUE_LEN + 1], 5, &mut rng),
            Err(InvitationError::QueueTooLong { .. })
        ));
    }

    #[test]
    fn snapshot_round_trip_and_redaction() {
        let p = pending();
        let snap = p.snapshot();
        assert_eq!(format!("{snap:?}"), "PendingInvitationSnapshot([redacted])");
        let json = serde_json::to_string(&snap).unwrap();
        let back: PendingInvitationSnapshot = serde_json::from_str(&json).unwrap();
        let restored = PendingInvitation::from_snapshot(&back).unwrap();
        assert_eq!(restored.invitation(), p.invitation());
        assert!(!format!("{p:?}").contains("queue address"));
    }
}
