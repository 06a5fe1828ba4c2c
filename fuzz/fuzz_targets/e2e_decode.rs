//! Everything of the end-to-end layer that parses bytes a stranger can send: an
//! invitation link or its binary form, a handshake accept message arriving at an
//! inviter's queue, and a ratchet message arriving in an established session. None may
//! panic; a refused accept must hand the pending invitation back; a refused message
//! must leave the session unchanged.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use passage_crypto::{ENVELOPE_LEN, Identity, Invitation, PendingInvitation, RatchetState, accept};
use passage_wire_fuzz::FixedRng;

struct Fixture {
    pending: PendingInvitation,
    session: RatchetState,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = FixedRng(0);
        let pending =
            PendingInvitation::create(Identity::generate(&mut rng), b"queue", u64::MAX, &mut rng)
                .unwrap();
        let other =
            PendingInvitation::create(Identity::generate(&mut rng), b"queue", u64::MAX, &mut rng)
                .unwrap();
        let accepted = accept(
            other.invitation(),
            &Identity::generate(&mut rng),
            b"hi",
            0,
            &mut rng,
        )
        .unwrap();
        let session = other
            .complete(&accepted.message, 0, 0, &mut rng)
            .unwrap()
            .state;
        Fixture { pending, session }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut rng = FixedRng(1);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Invitation::from_link(text);
    }
    if let Ok(invitation) = Invitation::from_bytes(data) {
        // Whatever decodes re-encodes to the same link.
        assert_eq!(
            Invitation::from_link(&invitation.to_link()).unwrap(),
            invitation
        );
    }
    let mut message = data.to_vec();
    message.resize(ENVELOPE_LEN, 0);
    if let Err(rejected) = f.pending.clone().complete(&message, 0, 0, &mut rng) {
        assert_eq!(rejected.pending.invitation(), f.pending.invitation());
    }
    let mut session = f.session.clone();
    let before = fingerprint(&session);
    if session.decrypt(&message, 0, &mut rng).is_err() {
        assert_eq!(fingerprint(&session), before);
    }
});

fn fingerprint(state: &RatchetState) -> Vec<u8> {
    serde_json::to_vec(&state.snapshot()).unwrap()
}
