//! A ratchet restored to an earlier state (a vault restored from a backup, a commit
//! lost in a crash, a profile copied to a second device) encrypts new messages with
//! message keys it has used before. The body's key and nonce must still never repeat:
//! with a repeat, two ciphertexts of the same length XOR to the XOR of their
//! plaintexts, and their zero padding shows the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{NOW, TestRng, pair};
use passage_crypto::RatchetState;
use passage_crypto::ratchet::{DecryptError, ENCRYPTED_HEADER_LEN};

/// The ciphertext of the body's tail, where both plaintexts are zero padding: under
/// the same key and nonce it is the same keystream, byte for byte.
fn padding_ciphertext(envelope: &[u8]) -> &[u8] {
    &envelope[envelope.len() - 16 - 512..envelope.len() - 16]
}

#[test]
fn a_restored_ratchet_never_repeats_a_body_key_and_nonce() {
    let mut rng = TestRng::new(7);
    let mut session = pair(&mut rng);
    let backup = session.acceptor.snapshot();

    // Before the restore: three messages, received.
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        let envelope = session.acceptor.encrypt(text.as_bytes(), &mut rng).unwrap();
        assert_eq!(
            session
                .inviter
                .decrypt(&envelope, NOW, &mut rng)
                .unwrap()
                .as_slice(),
            text.as_bytes()
        );
        sent.push(envelope);
    }
    // The backup is restored (twice, as two copies of the profile would) and sends on
    // from the same chain positions.
    for copy in 0..2 {
        let mut restored = RatchetState::from_snapshot(&backup).unwrap();
        for text in ["uno", "dos", "tres"] {
            let envelope = restored
                .encrypt(format!("{text} {copy}").as_bytes(), &mut rng)
                .unwrap();
            // The receiver has used those keys: the copy is refused, never misread,
            // and the ratchet position it reuses is what tells a fork apart.
            assert_eq!(
                session.inviter.decrypt(&envelope, NOW, &mut rng),
                Err(DecryptError::AlreadyReceived)
            );
            sent.push(envelope);
        }
    }
    // Every body (same length, same chain positions three times over) has its own
    // keystream: no two padding ciphertexts are equal, and headers are fresh too.
    for (i, a) in sent.iter().enumerate() {
        for b in &sent[..i] {
            assert_ne!(padding_ciphertext(a), padding_ciphertext(b));
            assert_ne!(a[..ENCRYPTED_HEADER_LEN], b[..ENCRYPTED_HEADER_LEN]);
            // The XOR of the two bodies is not the XOR of their plaintexts, which is
            // zero over the padding.
            let zeros = padding_ciphertext(a)
                .iter()
                .zip(padding_ciphertext(b))
                .filter(|(x, y)| x == y)
                .count();
            assert!(zeros < 32, "{zeros} equal padding bytes");
        }
    }
}
