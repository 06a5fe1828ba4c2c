//! Shared test helpers: a reproducible RNG and a ready-made session pair.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use passage_crypto::{
    Identity, IdentityPublic, Invitation, PendingInvitation, RatchetState, accept,
};

/// A deterministic RNG whose output is fixed forever (SHA-256 in counter mode), so
/// known-answer tests do not depend on any RNG crate's algorithm choice.
pub struct TestRng {
    seed: [u8; 32],
    counter: u64,
    buf: [u8; 32],
    used: usize,
}

impl TestRng {
    pub fn new(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_be_bytes());
        Self {
            seed: s,
            counter: 0,
            buf: [0; 32],
            used: 32,
        }
    }
}

impl rand_core::TryRng for TestRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for byte in dst {
            if self.used == 32 {
                self.buf =
                    passage_crypto::primitives::sha256(&[&self.seed, &self.counter.to_be_bytes()]);
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.buf[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for TestRng {}

pub const NOW: u64 = 1_800_000_000;
pub const EXPIRES: u64 = NOW + 7 * 24 * 3600;

/// Both ends of a fresh session: (inviter, acceptor), with both identities.
pub struct Pair {
    pub inviter: RatchetState,
    pub acceptor: RatchetState,
    pub inviter_id: IdentityPublic,
    pub acceptor_id: IdentityPublic,
}

pub fn invitation(rng: &mut TestRng) -> PendingInvitation {
    PendingInvitation::create(Identity::generate(rng), b"relay+queue", EXPIRES, rng).unwrap()
}

pub fn pair(rng: &mut TestRng) -> Pair {
    let pending = invitation(rng);
    let link = pending.invitation().to_link();
    let invitation = Invitation::from_link(&link).unwrap();
    let acceptor_identity = Identity::generate(rng);
    let accepted = accept(
        &invitation,
        &acceptor_identity,
        b"hello, my queue is ...",
        NOW,
        rng,
    )
    .unwrap();
    let inviter_id = pending.invitation().identity().to_owned();
    let done = pending.complete(&accepted.message, NOW, NOW, rng).unwrap();
    assert_eq!(done.first_plaintext.as_slice(), b"hello, my queue is ...");
    assert_eq!(done.contact, acceptor_identity.public());
    Pair {
        inviter: done.state,
        acceptor: accepted.state,
        inviter_id,
        acceptor_id: acceptor_identity.public(),
    }
}

/// The serialized form of a state, to compare "unchanged" exactly.
pub fn fingerprint(state: &RatchetState) -> Vec<u8> {
    postcard::to_allocvec(&state.snapshot()).unwrap()
}
