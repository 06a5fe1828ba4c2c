//! Fixed known answers for our own constructions: the invitation, the handshake and
//! the first ratchet messages, produced from a fixed-output RNG. Any change to a
//! label, a KDF input, a layout or an algorithm changes these digests; if a change is
//! intended, it is a protocol version change and the digests are updated with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{EXPIRES, NOW, TestRng};
use passage_crypto::primitives::sha256;
use passage_crypto::{Identity, Invitation, PendingInvitation, SafetyNumber, accept};

fn digest(bytes: &[u8]) -> String {
    sha256(&[bytes])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn handshake_and_first_messages_match_recorded_vectors() {
    let mut rng = TestRng::new(0x5041_5353_4147_45);
    let inviter_identity = Identity::generate(&mut rng);
    let pending =
        PendingInvitation::create(inviter_identity, b"relay+queue", EXPIRES, &mut rng).unwrap();
    let link = pending.invitation().to_link();
    let invitation = Invitation::from_link(&link).unwrap();
    let acceptor_identity = Identity::generate(&mut rng);
    let accepted = accept(&invitation, &acceptor_identity, b"first", NOW, &mut rng).unwrap();
    let mut acceptor = accepted.state;
    let done = pending
        .complete(&accepted.message, NOW, NOW, &mut rng)
        .unwrap();
    let mut inviter = done.state;
    let reply = inviter.encrypt(b"reply", &mut rng).unwrap();
    let second = acceptor.encrypt(b"second", &mut rng).unwrap();
    assert_eq!(
        acceptor.decrypt(&reply, NOW, &mut rng).unwrap().as_slice(),
        b"reply"
    );
    assert_eq!(
        inviter.decrypt(&second, NOW, &mut rng).unwrap().as_slice(),
        b"second"
    );

    let got = [
        ("invitation", digest(link.as_bytes())),
        ("accept", digest(&accepted.message)),
        ("reply", digest(&reply)),
        ("second", digest(&second)),
    ];
    let expected = [
        (
            "invitation",
            "9180f44e259e6295bd31664192d62e6ca515b5b88eefe0c6d002785d95ec9d7b",
        ),
        (
            "accept",
            "a98aea3ca5877ffa67340b5908dd8715fffa6ec8b33ccdd1986fbd316395f359",
        ),
        (
            "reply",
            "bb7d54843c328db8c8a3fe6a7812c30d26fb3569ebe8d997fc0a244fb09d764d",
        ),
        (
            "second",
            "7e285974280fa75e79be20cf9899a6b6587b590be5999f8e20208f7b65d9358a",
        ),
    ];
    let safety = SafetyNumber::new(invitation.identity(), &acceptor_identity.public());
    for (name, got) in &got {
        eprintln!("{name}: {got}");
    }
    eprintln!("safety: {safety}");
    for ((name, got), (_, want)) in got.iter().zip(expected) {
        assert_eq!(got, want, "{name} changed");
    }
    assert_eq!(
        safety.to_string(),
        "21270 45644 08003 02719 29765 62769 69375 78406 25404 19479 62262 44077"
    );
}
