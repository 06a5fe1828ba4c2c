//! The double ratchet with header encryption (Signal specification, revision 4).
//!
//! ```text
//! message (fixed length) = encrypted header ‖ encrypted body
//! encrypted header       = nonce (24) ‖ XChaCha20-Poly1305(HK, ad, dh ‖ pn ‖ n)
//! encrypted body         = ChaCha20-Poly1305(HKDF(salt = header nonce, mk) → key, nonce;
//!                                           ad ‖ encrypted header, padded plaintext)
//! ```
//!
//! Guarantees of [`RatchetState`]:
//! - Forward secrecy and post-compromise security of the double ratchet; the relay
//!   and the network never see ratchet keys or counters (headers are encrypted).
//! - State changes only after the body's AEAD check succeeds: a forged, corrupted,
//!   replayed or undecryptable message leaves the state exactly as it was.
//! - Out-of-order delivery within bounds: at most [`MAX_SKIP`] message keys are
//!   derived for one incoming message, at most [`MAX_SKIPPED_KEYS`] are kept, each for
//!   at most [`MAX_SKIPPED_KEY_AGE`] seconds.
//! - A message that was already decrypted is refused ([`DecryptError::AlreadyReceived`]
//!   or, once its chain is gone, [`DecryptError::Undecryptable`]).
//! - Every message of a session has the same length ([`crate::ENVELOPE_LEN`]).
//!
//! Calling contract: [`RatchetState::encrypt`] and [`RatchetState::decrypt`] in any
//! order; persist [`RatchetState::snapshot`] after each call that succeeded. Sessions
//! are created by the handshake ([`crate::handshake`]).

pub(crate) mod keys;
mod skipped;
mod snapshot;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use keys::{Chain, Header, body_key_material, header_nonce, kdf_rk, legacy_message_key_material};
pub use keys::{ENCRYPTED_HEADER_LEN, HEADER_LEN};
pub use skipped::{MAX_SKIPPED_KEY_AGE, MAX_SKIPPED_KEYS};
use skipped::{SkippedKey, SkippedKeys};
pub use snapshot::{RatchetSnapshot, SnapshotError};

use crate::ENVELOPE_LEN;
use crate::padding::{PADDING_OVERHEAD, PaddingError, pad, unpad};
use crate::primitives::{
    AEAD_TAG_LEN, DhPublic, DhSecret, PrimitiveError, Secret32, chacha_open, chacha_seal,
};

/// Most message keys derived for one incoming message (skipping over messages that
/// are late or lost). Bounds the work a single message can cause; the relay's queue
/// quota (256 messages) keeps honest gaps far below it.
pub const MAX_SKIP: u32 = 1000;

/// Largest plaintext of a regular message.
pub const MAX_PLAINTEXT_LEN: usize = max_plaintext_for(ENVELOPE_LEN);

/// Shortest ratchet message that can hold anything: header, tag and length prefix.
pub(crate) const MIN_MESSAGE_LEN: usize = ENCRYPTED_HEADER_LEN + AEAD_TAG_LEN + PADDING_OVERHEAD;

/// Largest plaintext a ratchet message of `message_len` bytes carries.
pub const fn max_plaintext_for(message_len: usize) -> usize {
    message_len.saturating_sub(MIN_MESSAGE_LEN)
}

/// Why a message could not be encrypted. The state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptError {
    /// The plaintext does not fit one message.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// [`MAX_PLAINTEXT_LEN`] (or less for the handshake's first message).
        max: usize,
    },
    /// 2^32 messages were sent without a reply: the chain cannot go further.
    #[error("sending chain exhausted; the contact must reply before more can be sent")]
    ChainExhausted,
}

/// Why a message could not be decrypted. In every case the state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The message is not [`crate::ENVELOPE_LEN`] bytes long.
    #[error("message has the wrong length ({actual} bytes, expected {expected})")]
    Length {
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// No header key of this session opens the header: not for this session, forged,
    /// corrupted, from a chain long gone, or a replay of a message already consumed.
    #[error("message cannot be decrypted in this session")]
    Undecryptable,
    /// The header is authentic but the message number was already received (or it
    /// was skipped over so long ago that its key expired).
    #[error("message was already received, or is too old (replay, duplicate or expired)")]
    AlreadyReceived,
    /// The message is more than [`MAX_SKIP`] messages ahead of the last one received.
    #[error("message is too far ahead ({skip} skipped messages, at most {max})")]
    TooFarAhead {
        /// Messages that would have to be skipped.
        skip: u64,
        /// [`MAX_SKIP`].
        max: u32,
    },
    /// The header opened but the body did not: the message was altered.
    #[error("message body failed authentication")]
    BodyAuthentication,
    /// The decrypted body is not validly padded.
    #[error("message body is malformed")]
    Malformed,
    /// The peer's new ratchet key is of low order.
    #[error("peer ratchet key is invalid")]
    BadRatchetKey,
}

/// One end of a double-ratchet session. Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct RatchetState {
    /// Associated data binding every message to the handshake (its transcript hash).
    ad: [u8; 32],
    root: Secret32,
    dh_self: DhSecret,
    send: Chain,
    prev_send_n: u32,
    hk_send: Secret32,
    nhk_send: Secret32,
    recv: Option<Chain>,
    hk_recv: Option<Secret32>,
    nhk_recv: Secret32,
    skipped: SkippedKeys,
}

impl core::fmt::Debug for RatchetState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RatchetState")
            .field("sent_on_chain", &self.send.n)
            .field("skipped_keys", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

/// Shared secrets the handshake hands the ratchet.
pub(crate) struct RatchetSeed {
    pub(crate) ad: [u8; 32],
    pub(crate) root: Secret32,
    /// Header key of the acceptor's first chain (`shared_hka`).
    pub(crate) header_key_acceptor: Secret32,
    /// Next header key of the inviter (`shared_nhkb`).
    pub(crate) next_header_key_inviter: Secret32,
}

impl RatchetState {
    /// `RatchetInitAliceHE`: the acceptor, who sends first, toward the inviter's
    /// first ratchet key (the invitation's one-time key).
    pub(crate) fn new_acceptor<R: CryptoRng + ?Sized>(
        seed: RatchetSeed,
        inviter_ratchet_key: DhPublic,
        rng: &mut R,
    ) -> Result<Self, PrimitiveError> {
        let dh_self = DhSecret::generate(rng);
        let step = kdf_rk(&seed.root, &dh_self.diffie_hellman(&inviter_ratchet_key)?);
        Ok(Self {
            ad: seed.ad,
            root: step.root,
            dh_self,
            send: step.chain,
            prev_send_n: 0,
            hk_send: seed.header_key_acceptor,
            nhk_send: step.next_header_key,
            recv: None,
            hk_recv: None,
            nhk_recv: seed.next_header_key_inviter,
            skipped: SkippedKeys::default(),
        })
    }

    /// `RatchetInitBobHE`: the inviter, who can only receive until the acceptor's first
    /// message arrives. The sending fields are placeholders that the DH ratchet step of
    /// that first message replaces (it must open under `nhk_recv`, since `hk_recv` is
    /// unset and nothing is skipped); the handshake only releases the state once that
    /// message has decrypted.
    pub(crate) fn new_inviter(seed: RatchetSeed, own_ratchet_key: DhSecret) -> Self {
        Self {
            ad: seed.ad,
            dh_self: own_ratchet_key,
            send: Chain::new(seed.root.clone()),
            root: seed.root,
            prev_send_n: 0,
            hk_send: seed.next_header_key_inviter.clone(),
            nhk_send: seed.next_header_key_inviter,
            recv: None,
            hk_recv: None,
            nhk_recv: seed.header_key_acceptor,
            skipped: SkippedKeys::default(),
        }
    }

    /// Encrypts `plaintext` into a message of exactly [`crate::ENVELOPE_LEN`] bytes.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, EncryptError> {
        self.encrypt_sized(plaintext, ENVELOPE_LEN, rng)
    }

    /// Encrypts into a message of exactly `message_len` bytes.
    pub(crate) fn encrypt_sized<R: CryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        message_len: usize,
        rng: &mut R,
    ) -> Result<Vec<u8>, EncryptError> {
        self.encrypt_with(plaintext, message_len, rng, |mk, sealed_header| {
            body_key_material(mk, &header_nonce(sealed_header))
        })
    }

    /// Encrypts as a version-1 sender did (body key from the message key alone): only
    /// for the test that such messages still open.
    #[cfg(test)]
    pub(crate) fn encrypt_v1<R: CryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, EncryptError> {
        self.encrypt_with(plaintext, ENVELOPE_LEN, rng, |mk, _| {
            legacy_message_key_material(mk)
        })
    }

    fn encrypt_with<R: CryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        message_len: usize,
        rng: &mut R,
        body_keys: impl FnOnce(
            &Secret32,
            &[u8; ENCRYPTED_HEADER_LEN],
        ) -> (Secret32, [u8; crate::primitives::CHACHA_NONCE_LEN]),
    ) -> Result<Vec<u8>, EncryptError> {
        let padded_len = message_len.saturating_sub(ENCRYPTED_HEADER_LEN + AEAD_TAG_LEN);
        let padded = pad(plaintext, padded_len).map_err(|e| match e {
            PaddingError::TooLong { len, max } => EncryptError::TooLong { len, max },
            PaddingError::Malformed => EncryptError::TooLong {
                len: plaintext.len(),
                max: 0,
            },
        })?;
        let (mk, next) = self.send.step().ok_or(EncryptError::ChainExhausted)?;
        let header = Header {
            dh: self.dh_self.public_key(),
            pn: self.prev_send_n,
            n: self.send.n,
        };
        let sealed_header = header.seal(&self.hk_send, &self.ad, rng);
        let (key, nonce) = body_keys(&mk, &sealed_header);
        let body = chacha_seal(&key, &nonce, &body_ad(&self.ad, &sealed_header), &padded);
        let mut out = Vec::with_capacity(message_len);
        out.extend_from_slice(&sealed_header);
        out.extend_from_slice(&body);
        self.send = next;
        Ok(out)
    }

    /// Decrypts a message of exactly [`crate::ENVELOPE_LEN`] bytes. `now` (unix
    /// seconds) dates and expires skipped keys; `rng` makes the next ratchet key when
    /// the message starts a new chain.
    pub fn decrypt<R: CryptoRng + ?Sized>(
        &mut self,
        message: &[u8],
        now: u64,
        rng: &mut R,
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        if message.len() != ENVELOPE_LEN {
            return Err(DecryptError::Length {
                expected: ENVELOPE_LEN,
                actual: message.len(),
            });
        }
        self.decrypt_sized(message, now, rng)
    }

    /// `RatchetDecryptHE` on a message of any length the sender chose, computing every
    /// change on the side and committing only after the body authenticates.
    pub(crate) fn decrypt_sized<R: CryptoRng + ?Sized>(
        &mut self,
        message: &[u8],
        now: u64,
        rng: &mut R,
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        if message.len() < MIN_MESSAGE_LEN {
            return Err(DecryptError::Length {
                expected: MIN_MESSAGE_LEN,
                actual: message.len(),
            });
        }
        let (sealed, body) = message.split_at(ENCRYPTED_HEADER_LEN);
        let sealed: &[u8; ENCRYPTED_HEADER_LEN] =
            sealed.try_into().map_err(|_| DecryptError::Undecryptable)?;
        let ad = body_ad(&self.ad, sealed);

        // 1. A message we skipped over earlier.
        if let Some(found) = self.skipped.find(&self.ad, sealed, now) {
            let entry = self
                .skipped
                .entries
                .get(found)
                .ok_or(DecryptError::Undecryptable)?;
            let plaintext = open_body(&entry.message_key, sealed, &ad, body)?;
            self.skipped.remove(found);
            self.skipped.expire(now);
            return Ok(plaintext);
        }

        // 2. The next message of the current receiving chain.
        if let (Some(hk), Some(chain)) = (&self.hk_recv, &self.recv)
            && let Some(header) = Header::open(hk, &self.ad, sealed)
        {
            if header.n < chain.n {
                return Err(DecryptError::AlreadyReceived);
            }
            let mut skipped = Vec::new();
            let chain = skip_to(chain, header.n, hk, MAX_SKIP, now, &mut skipped)?;
            let (mk, next) = chain.step().ok_or(DecryptError::Undecryptable)?;
            let plaintext = open_body(&mk, sealed, &ad, body)?;
            self.recv = Some(next);
            self.skipped.extend(skipped);
            self.skipped.expire(now);
            return Ok(plaintext);
        }

        // 3. The first message of the peer's next chain: a DH ratchet step.
        let header =
            Header::open(&self.nhk_recv, &self.ad, sealed).ok_or(DecryptError::Undecryptable)?;
        let mut skipped = Vec::new();
        let mut budget = MAX_SKIP;
        if let (Some(hk), Some(chain)) = (&self.hk_recv, &self.recv) {
            let end = skip_to(chain, header.pn.max(chain.n), hk, budget, now, &mut skipped)?;
            budget = budget.saturating_sub(end.n.saturating_sub(chain.n));
        }
        let dh_recv = self
            .dh_self
            .diffie_hellman(&header.dh)
            .map_err(|_| DecryptError::BadRatchetKey)?;
        let recv_step = kdf_rk(&self.root, &dh_recv);
        let dh_self = DhSecret::generate(rng);
        let dh_send = dh_self
            .diffie_hellman(&header.dh)
            .map_err(|_| DecryptError::BadRatchetKey)?;
        let send_step = kdf_rk(&recv_step.root, &dh_send);
        let chain = skip_to(
            &recv_step.chain,
            header.n,
            &self.nhk_recv,
            budget,
            now,
            &mut skipped,
        )?;
        let (mk, next) = chain.step().ok_or(DecryptError::Undecryptable)?;
        let plaintext = open_body(&mk, sealed, &ad, body)?;

        self.prev_send_n = self.send.n;
        self.hk_send = std::mem::replace(&mut self.nhk_send, send_step.next_header_key);
        self.hk_recv = Some(std::mem::replace(
            &mut self.nhk_recv,
            recv_step.next_header_key,
        ));
        self.dh_self = dh_self;
        self.root = send_step.root;
        self.send = send_step.chain;
        self.recv = Some(next);
        self.skipped.extend(skipped);
        self.skipped.expire(now);
        Ok(plaintext)
    }

    /// Number of message keys currently held for messages not yet received.
    pub fn skipped_keys(&self) -> usize {
        self.skipped.len()
    }
}

/// Moves `chain` forward to message number `until`, storing the keys passed over.
fn skip_to(
    chain: &Chain,
    until: u32,
    header_key: &Secret32,
    budget: u32,
    now: u64,
    out: &mut Vec<SkippedKey>,
) -> Result<Chain, DecryptError> {
    let skip = until.saturating_sub(chain.n);
    if skip > budget {
        return Err(DecryptError::TooFarAhead {
            skip: u64::from(skip),
            max: MAX_SKIP,
        });
    }
    let mut chain = chain.clone();
    while chain.n < until {
        let (mk, next) = chain.step().ok_or(DecryptError::Undecryptable)?;
        out.push(SkippedKey {
            header_key: header_key.clone(),
            n: chain.n,
            message_key: mk,
            stored_at: now,
        });
        chain = next;
    }
    Ok(chain)
}

fn body_ad(
    ad: &[u8; 32],
    sealed_header: &[u8; ENCRYPTED_HEADER_LEN],
) -> [u8; 32 + ENCRYPTED_HEADER_LEN] {
    let mut out = [0u8; 32 + ENCRYPTED_HEADER_LEN];
    out[..32].copy_from_slice(ad);
    out[32..].copy_from_slice(sealed_header);
    out
}

/// Opens a body under its key and nonce (from the message key and the header nonce),
/// or, failing that, under version 1's (from the message key alone).
fn open_body(
    mk: &Secret32,
    sealed_header: &[u8; ENCRYPTED_HEADER_LEN],
    ad: &[u8],
    body: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    let (key, nonce) = body_key_material(mk, &header_nonce(sealed_header));
    let padded = match chacha_open(&key, &nonce, ad, body) {
        Ok(padded) => padded,
        Err(_) => {
            let (key, nonce) = legacy_message_key_material(mk);
            chacha_open(&key, &nonce, ad, body).map_err(|_| DecryptError::BodyAuthentication)?
        }
    };
    let plaintext = unpad(&padded).map_err(|_| DecryptError::Malformed)?;
    Ok(Zeroizing::new(plaintext.to_vec()))
}

#[cfg(test)]
mod tests {
    use getrandom::SysRng;
    use rand_core::UnwrapErr;

    use crate::{Identity, Invitation, PendingInvitation, accept};

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_body_sealed_by_a_version_1_sender_still_opens() {
        let mut rng = UnwrapErr(SysRng);
        let pending =
            PendingInvitation::create(Identity::generate(&mut rng), b"queue", NOW + 3600, &mut rng)
                .unwrap();
        let invitation = Invitation::from_link(&pending.invitation().to_link()).unwrap();
        let accepted = accept(
            &invitation,
            &Identity::generate(&mut rng),
            b"hi",
            NOW,
            &mut rng,
        )
        .unwrap();
        let mut inviter = pending
            .complete(&accepted.message, NOW, NOW, &mut rng)
            .unwrap()
            .state;
        let mut acceptor = accepted.state;
        let old = acceptor
            .encrypt_v1(b"sealed before the upgrade", &mut rng)
            .unwrap();
        let new = acceptor.encrypt(b"sealed after it", &mut rng).unwrap();
        assert_eq!(
            inviter.decrypt(&old, NOW, &mut rng).unwrap().as_slice(),
            b"sealed before the upgrade"
        );
        assert_eq!(
            inviter.decrypt(&new, NOW, &mut rng).unwrap().as_slice(),
            b"sealed after it"
        );
    }
}
