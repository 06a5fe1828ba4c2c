//! The hybrid handshake (PQXDH-style, X25519 + ML-KEM-768) that turns an invitation
//! into a double-ratchet session.
//!
//! Inviter A published (in the [`Invitation`]) identity keys `IK_A` and one-time
//! keys `OTK_A` (X25519) and `PQK_A` (ML-KEM-768). Acceptor B, with a fresh identity
//! `IK_B` and ephemeral key `EK_B`, computes
//!
//! ```text
//! DH1 = X25519(IK_B, OTK_A)   DH2 = X25519(EK_B, IK_A)   DH3 = X25519(EK_B, OTK_A)
//! (CT, SS) = ML-KEM-768.Encaps(PQK_A)
//! transcript = SHA-256("passage/1 handshake transcript" ‖ version ‖ invitation ‖ EK_B ‖ CT ‖ IK_B)
//! root ‖ HK_B ‖ NHK_A = HKDF-SHA256(salt = transcript,
//!                                   ikm = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3 ‖ SS,
//!                                   info = "passage/1 PQXDH X25519 SHA-256 ML-KEM-768")
//! ```
//!
//! The transcript covers the whole signed invitation (both of A's identity keys, the
//! one-time X25519 key and the ML-KEM key: the re-encapsulation attack on PQXDH needs
//! the KEM key bound in), B's ephemeral key, the KEM ciphertext and B's identity keys.
//! It is also the ratchet's associated data. B signs the transcript with its Ed25519
//! identity key. B's identity keys and signature travel encrypted under a key from
//! DH3 and SS only, so the relay never sees which identity accepted.
//!
//! The accept message is exactly [`crate::ENVELOPE_LEN`] bytes, like every message:
//!
//! ```text
//! version u16 ‖ invitation id (16) ‖ EK_B (32) ‖ CT (1088)
//! ‖ ChaCha20-Poly1305(box key, IK_B (64) ‖ signature (64))   (144)
//! ‖ B's first ratchet message                                 (the rest)
//! ```
//!
//! Single use: [`PendingInvitation::complete`] consumes the pending invitation when it
//! succeeds, so its one-time secrets are gone and a second accept of the same
//! invitation has nothing to complete against. On failure the pending invitation is
//! handed back unchanged.

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::ENVELOPE_LEN;
use crate::codec::{DecodeError, Reader, Writer};
use crate::identity::{Identity, IdentityPublic};
use crate::invitation::{INVITATION_ID_LEN, INVITATION_VERSION, Invitation, PendingInvitation};
use crate::primitives::{
    AEAD_TAG_LEN, CHACHA_NONCE_LEN, DhPublic, DhSecret, ED25519_SIGNATURE_LEN, KemCiphertext,
    MLKEM768_CIPHERTEXT_LEN, Secret32, Signature, chacha_open, chacha_seal, hkdf_sha256, sha256,
};
use crate::ratchet::keys::split32;
use crate::ratchet::{DecryptError, EncryptError, RatchetSeed, RatchetState, max_plaintext_for};

const TRANSCRIPT_LABEL: &[u8] = b"passage/1 handshake transcript";
const OUTER_LABEL: &[u8] = b"passage/1 handshake outer";
const IDENTITY_BOX_LABEL: &[u8] = b"passage/1 accept identity box";
const SIGNATURE_LABEL: &[u8] = b"passage/1 accept signature";
const ROOT_LABEL: &[u8] = b"passage/1 PQXDH X25519 SHA-256 ML-KEM-768";

const SEALED_IDENTITY_LEN: usize = IdentityPublic::LEN + ED25519_SIGNATURE_LEN + AEAD_TAG_LEN;
const OUTER_LEN: usize = 2 + INVITATION_ID_LEN + 32 + MLKEM768_CIPHERTEXT_LEN;

/// Bytes of the accept message before the first ratchet message.
pub const ACCEPT_HEADER_LEN: usize = OUTER_LEN + SEALED_IDENTITY_LEN;

/// Length of the acceptor's first ratchet message inside the accept message.
pub const FIRST_MESSAGE_LEN: usize = ENVELOPE_LEN - ACCEPT_HEADER_LEN;

/// Largest plaintext the accept message carries (the acceptor's queue and profile).
pub const MAX_FIRST_PLAINTEXT_LEN: usize = max_plaintext_for(FIRST_MESSAGE_LEN);

/// Seconds by which an accept may arrive after the invitation's expiry, as stamped
/// by the relay: the clocks of the acceptor's phone and the relay may disagree.
pub const EXPIRY_CLOCK_SKEW: u64 = 3600;

/// Why accepting an invitation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The invitation's time has passed.
    #[error("invitation has expired; ask for a new one")]
    Expired,
    /// The first message does not fit the accept message.
    #[error("first message of {len} bytes exceeds the limit of {max}")]
    FirstMessageTooLong {
        /// Its length.
        len: usize,
        /// [`MAX_FIRST_PLAINTEXT_LEN`].
        max: usize,
    },
    /// A key in the invitation is of low order: it was forged.
    #[error("invitation carries an invalid key")]
    InvalidKey,
}

/// Why an accept message was refused by the inviter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompleteError {
    /// Not [`crate::ENVELOPE_LEN`] bytes.
    #[error("accept message has the wrong length")]
    Length,
    /// Made with a protocol version this build does not speak.
    #[error("accept message uses unsupported protocol version {0}")]
    UnsupportedVersion(u16),
    /// Answers another invitation.
    #[error("accept message answers a different invitation")]
    WrongInvitation,
    /// Arrived (by the relay's clock) after the invitation expired.
    #[error("accept arrived after the invitation expired")]
    Expired,
    /// Does not decrypt under this invitation's keys, or its signature fails: forged,
    /// altered, or made for other keys.
    #[error("accept message failed authentication")]
    Authentication,
    /// Carries a low-order key.
    #[error("accept message carries an invalid key")]
    InvalidKey,
    /// The embedded first message did not decrypt.
    #[error("first message of the accept failed: {0}")]
    FirstMessage(DecryptError),
}

/// The acceptor's result: its session, and the message to send to the inviter's queue.
#[derive(Debug)]
pub struct Accepted {
    /// The acceptor's ratchet, ready to send and (after the inviter replies) receive.
    pub state: RatchetState,
    /// The accept message, exactly [`crate::ENVELOPE_LEN`] bytes.
    pub message: Vec<u8>,
}

/// The inviter's result.
#[derive(Debug)]
pub struct Completed {
    /// The inviter's ratchet, ready to send and receive.
    pub state: RatchetState,
    /// The acceptor's identity keys (for the safety number).
    pub contact: IdentityPublic,
    /// The plaintext of the acceptor's first message.
    pub first_plaintext: Zeroizing<Vec<u8>>,
}

/// An accept that failed: the pending invitation comes back unchanged with the reason.
#[derive(Debug)]
pub struct Rejected {
    /// The pending invitation, still usable for a genuine accept.
    pub pending: Box<PendingInvitation>,
    /// Why the accept was refused.
    pub error: CompleteError,
}

/// Accepts `invitation` as `identity` (a fresh identity for this contact), carrying
/// `first_plaintext` to the inviter. Refuses an invitation expired at unix time `now`.
pub fn accept<R: CryptoRng + ?Sized>(
    invitation: &Invitation,
    identity: &Identity,
    first_plaintext: &[u8],
    now: u64,
    rng: &mut R,
) -> Result<Accepted, AcceptError> {
    if invitation.is_expired(now) {
        return Err(AcceptError::Expired);
    }
    if first_plaintext.len() > MAX_FIRST_PLAINTEXT_LEN {
        return Err(AcceptError::FirstMessageTooLong {
            len: first_plaintext.len(),
            max: MAX_FIRST_PLAINTEXT_LEN,
        });
    }
    let ephemeral = DhSecret::generate(rng);
    let (ciphertext, kem_secret) = invitation
        .one_time_kem()
        .encapsulate(rng)
        .map_err(|_| AcceptError::InvalidKey)?;
    let dh = |secret: &DhSecret, public: &DhPublic| {
        secret
            .diffie_hellman(public)
            .map_err(|_| AcceptError::InvalidKey)
    };
    let dh1 = dh(&identity.dh, invitation.one_time_dh())?;
    let dh2 = dh(&ephemeral, &invitation.identity().dh)?;
    let dh3 = dh(&ephemeral, invitation.one_time_dh())?;

    let mut w = Writer::with_capacity(ENVELOPE_LEN);
    w.put_u16(INVITATION_VERSION);
    w.put(&invitation.id());
    w.put(ephemeral.public_key().as_bytes());
    w.put(ciphertext.as_bytes());
    let outer = w.as_slice().to_vec();

    let own = identity.public();
    let transcript = transcript(&outer, invitation, &own);
    let signature = identity
        .signing
        .sign(&[SIGNATURE_LABEL, transcript.as_slice()].concat());
    let mut boxed = Zeroizing::new(Vec::with_capacity(128));
    boxed.extend_from_slice(&own.to_bytes());
    boxed.extend_from_slice(signature.as_bytes());
    let (box_key, box_nonce) = identity_box_key(&outer, invitation, &dh3, &kem_secret);
    w.put(&chacha_seal(&box_key, &box_nonce, &outer, &boxed));

    let seed = ratchet_seed(transcript, [&dh1, &dh2, &dh3, &kem_secret]);
    let mut state = RatchetState::new_acceptor(seed, *invitation.one_time_dh(), rng)
        .map_err(|_| AcceptError::InvalidKey)?;
    let first = state
        .encrypt_sized(first_plaintext, FIRST_MESSAGE_LEN, rng)
        .map_err(|e| match e {
            EncryptError::TooLong { len, max } => AcceptError::FirstMessageTooLong { len, max },
            _ => AcceptError::InvalidKey,
        })?;
    w.put(&first);
    Ok(Accepted {
        state,
        message: w.into_vec(),
    })
}

impl PendingInvitation {
    /// Completes the handshake with an accept `message` that the relay stamped as
    /// received at unix time `received_at`. On success the pending invitation is
    /// consumed (single use); on any failure it is handed back unchanged in
    /// [`Rejected`]. `now` dates the session's first skipped keys, if any.
    pub fn complete<R: CryptoRng + ?Sized>(
        self,
        message: &[u8],
        received_at: u64,
        now: u64,
        rng: &mut R,
    ) -> Result<Completed, Rejected> {
        match self.try_complete(message, received_at, now, rng) {
            Ok(done) => Ok(done),
            Err(error) => Err(Rejected {
                pending: Box::new(self),
                error,
            }),
        }
    }

    fn try_complete<R: CryptoRng + ?Sized>(
        &self,
        message: &[u8],
        received_at: u64,
        now: u64,
        rng: &mut R,
    ) -> Result<Completed, CompleteError> {
        if message.len() != ENVELOPE_LEN {
            return Err(CompleteError::Length);
        }
        let parsed = parse_accept(message).map_err(|_| CompleteError::Length)?;
        if parsed.version != INVITATION_VERSION {
            return Err(CompleteError::UnsupportedVersion(parsed.version));
        }
        let invitation = &self.invitation;
        if parsed.invitation_id != invitation.id() {
            return Err(CompleteError::WrongInvitation);
        }
        if received_at > invitation.expires_at().saturating_add(EXPIRY_CLOCK_SKEW) {
            return Err(CompleteError::Expired);
        }
        let dh = |secret: &DhSecret, public: &DhPublic| {
            secret
                .diffie_hellman(public)
                .map_err(|_| CompleteError::InvalidKey)
        };
        let kem_secret = self.one_time_kem.decapsulate(&parsed.ciphertext);
        let dh3 = dh(&self.one_time_dh, &parsed.ephemeral)?;
        let (box_key, box_nonce) = identity_box_key(parsed.outer, invitation, &dh3, &kem_secret);
        let boxed = chacha_open(&box_key, &box_nonce, parsed.outer, parsed.sealed_identity)
            .map_err(|_| CompleteError::Authentication)?;
        let mut r = Reader::new(&boxed);
        let contact =
            IdentityPublic::from_bytes(&r.array().map_err(|_| CompleteError::Authentication)?);
        let signature =
            Signature::from_bytes(r.array().map_err(|_| CompleteError::Authentication)?);
        let transcript = transcript(parsed.outer, invitation, &contact);
        contact
            .signing
            .verify(
                &[SIGNATURE_LABEL, transcript.as_slice()].concat(),
                &signature,
            )
            .map_err(|_| CompleteError::Authentication)?;
        let dh1 = dh(&self.one_time_dh, &contact.dh)?;
        let dh2 = dh(&self.identity.dh, &parsed.ephemeral)?;
        let seed = ratchet_seed(transcript, [&dh1, &dh2, &dh3, &kem_secret]);
        let mut state = RatchetState::new_inviter(seed, self.one_time_dh.clone());
        let first_plaintext = state
            .decrypt_sized(parsed.first_message, now, rng)
            .map_err(CompleteError::FirstMessage)?;
        Ok(Completed {
            state,
            contact,
            first_plaintext,
        })
    }
}

struct ParsedAccept<'a> {
    version: u16,
    invitation_id: [u8; INVITATION_ID_LEN],
    ephemeral: DhPublic,
    ciphertext: KemCiphertext,
    outer: &'a [u8],
    sealed_identity: &'a [u8],
    first_message: &'a [u8],
}

fn parse_accept(message: &[u8]) -> Result<ParsedAccept<'_>, DecodeError> {
    let mut whole = Reader::new(message);
    let outer = whole.take(OUTER_LEN)?;
    let sealed_identity = whole.take(SEALED_IDENTITY_LEN)?;
    let first_message = whole.rest();
    let mut r = Reader::new(outer);
    let version = r.u16()?;
    let invitation_id = r.array()?;
    let ephemeral = DhPublic::from_bytes(r.array()?);
    let ciphertext = KemCiphertext::from_slice(r.take(MLKEM768_CIPHERTEXT_LEN)?).map_err(|_| {
        DecodeError::Invalid {
            field: "KEM ciphertext",
        }
    })?;
    r.finish()?;
    Ok(ParsedAccept {
        version,
        invitation_id,
        ephemeral,
        ciphertext,
        outer,
        sealed_identity,
        first_message,
    })
}

fn transcript(outer: &[u8], invitation: &Invitation, acceptor: &IdentityPublic) -> [u8; 32] {
    sha256(&[
        TRANSCRIPT_LABEL,
        &(invitation.as_bytes().len() as u64).to_be_bytes(),
        invitation.as_bytes(),
        outer,
        &acceptor.to_bytes(),
    ])
}

fn identity_box_key(
    outer: &[u8],
    invitation: &Invitation,
    dh3: &Secret32,
    kem_secret: &Secret32,
) -> (Secret32, [u8; CHACHA_NONCE_LEN]) {
    let salt = sha256(&[
        OUTER_LABEL,
        &(invitation.as_bytes().len() as u64).to_be_bytes(),
        invitation.as_bytes(),
        outer,
    ]);
    let okm: Zeroizing<[u8; 44]> = hkdf_sha256(
        &salt,
        &[dh3.as_bytes().as_slice(), kem_secret.as_bytes()].concat(),
        &[IDENTITY_BOX_LABEL],
    );
    let mut nonce = [0u8; CHACHA_NONCE_LEN];
    nonce.copy_from_slice(&okm[32..]);
    (split32(&okm, 0), nonce)
}

fn ratchet_seed(transcript: [u8; 32], secrets: [&Secret32; 4]) -> RatchetSeed {
    let mut ikm = Zeroizing::new(Vec::with_capacity(32 * 5));
    ikm.extend_from_slice(&[0xFF; 32]);
    for secret in secrets {
        ikm.extend_from_slice(secret.as_bytes());
    }
    let okm: Zeroizing<[u8; 96]> = hkdf_sha256(&transcript, &ikm, &[ROOT_LABEL]);
    RatchetSeed {
        ad: transcript,
        root: split32(&okm, 0),
        header_key_acceptor: split32(&okm, 1),
        next_header_key_inviter: split32(&okm, 2),
    }
}

/// Every domain-separation label this crate feeds a KDF, MAC, hash or signature;
/// a test checks that no two are equal or prefixes of each other.
#[cfg(test)]
pub(crate) const ALL_LABELS: &[&[u8]] = &[
    TRANSCRIPT_LABEL,
    OUTER_LABEL,
    IDENTITY_BOX_LABEL,
    SIGNATURE_LABEL,
    ROOT_LABEL,
    crate::ratchet::keys::ROOT_LABEL,
    crate::ratchet::keys::BODY_LABEL,
    crate::ratchet::keys::LEGACY_MESSAGE_LABEL,
    crate::invitation::SIGNATURE_LABEL,
    crate::invitation::ID_LABEL,
    crate::safety_number::LABEL,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_prefix_free() {
        for (i, a) in ALL_LABELS.iter().enumerate() {
            for (j, b) in ALL_LABELS.iter().enumerate() {
                if i != j {
                    assert!(
                        !b.starts_with(a),
                        "{:?} / {:?}",
                        String::from_utf8_lossy(a),
                        String::from_utf8_lossy(b)
                    );
                }
            }
        }
    }

    // The accept message fills one envelope and leaves room for a queue address
    // and a profile in its first message.
    const _: () = assert!(ACCEPT_HEADER_LEN + FIRST_MESSAGE_LEN == ENVELOPE_LEN);
    const _: () = assert!(MAX_FIRST_PLAINTEXT_LEN >= 2048);
}
