//! Handshake and double-ratchet behaviour through the public API: long
//! conversations, loss, reordering, duplication, delay beyond MAX_SKIP, tampering,
//! replay, expiry of skipped keys, and snapshots mid-conversation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{EXPIRES, NOW, Pair, TestRng, fingerprint, invitation, pair};
use passage_crypto::handshake::{
    AcceptError, CompleteError, EXPIRY_CLOCK_SKEW, MAX_FIRST_PLAINTEXT_LEN,
};
use passage_crypto::ratchet::{
    DecryptError, EncryptError, MAX_PLAINTEXT_LEN, MAX_SKIP, MAX_SKIPPED_KEY_AGE, MAX_SKIPPED_KEYS,
    RatchetSnapshot,
};
use passage_crypto::{ENVELOPE_LEN, Identity, Invitation, RatchetState, SafetyNumber, accept};

fn send(from: &mut RatchetState, text: &str, rng: &mut TestRng) -> Vec<u8> {
    from.encrypt(text.as_bytes(), rng).unwrap()
}

fn recv(to: &mut RatchetState, message: &[u8], rng: &mut TestRng) -> String {
    String::from_utf8(to.decrypt(message, NOW, rng).unwrap().to_vec()).unwrap()
}

#[test]
fn handshake_gives_matching_sessions_and_safety_numbers() {
    let mut rng = TestRng::new(1);
    let Pair {
        mut inviter,
        mut acceptor,
        inviter_id,
        acceptor_id,
    } = pair(&mut rng);
    assert_eq!(
        SafetyNumber::new(&inviter_id, &acceptor_id),
        SafetyNumber::new(&acceptor_id, &inviter_id)
    );
    let m = send(&mut inviter, "first reply", &mut rng);
    assert_eq!(m.len(), ENVELOPE_LEN);
    assert_eq!(recv(&mut acceptor, &m, &mut rng), "first reply");
    let m = send(&mut acceptor, "and back", &mut rng);
    assert_eq!(recv(&mut inviter, &m, &mut rng), "and back");
}

#[test]
fn acceptor_can_send_many_before_any_reply() {
    let mut rng = TestRng::new(2);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    for i in 0..20 {
        let m = send(&mut acceptor, &format!("m{i}"), &mut rng);
        assert_eq!(recv(&mut inviter, &m, &mut rng), format!("m{i}"));
    }
}

#[test]
fn long_conversation_both_ways_with_bursts() {
    let mut rng = TestRng::new(3);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    for round in 0..150 {
        let burst = round % 4 + 1;
        let (from, to) = if round % 2 == 0 {
            (&mut inviter, &mut acceptor)
        } else {
            (&mut acceptor, &mut inviter)
        };
        let messages: Vec<_> = (0..burst)
            .map(|i| send(from, &format!("{round}/{i}"), &mut rng))
            .collect();
        for (i, m) in messages.iter().enumerate() {
            assert_eq!(recv(to, m, &mut rng), format!("{round}/{i}"));
        }
    }
    assert_eq!(inviter.skipped_keys(), 0);
    assert_eq!(acceptor.skipped_keys(), 0);
}

#[test]
fn every_message_of_a_chain_lost_except_the_last() {
    let mut rng = TestRng::new(4);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    let mut last = Vec::new();
    for i in 0..50 {
        last = send(&mut inviter, &format!("lost {i}"), &mut rng);
    }
    assert_eq!(recv(&mut acceptor, &last, &mut rng), "lost 49");
    assert_eq!(acceptor.skipped_keys(), 49);
    // The conversation carries on both ways after the loss.
    let m = send(&mut acceptor, "still here", &mut rng);
    assert_eq!(recv(&mut inviter, &m, &mut rng), "still here");
    let m = send(&mut inviter, "me too", &mut rng);
    assert_eq!(recv(&mut acceptor, &m, &mut rng), "me too");
}

#[test]
fn reordered_across_chains_and_duplicates_refused() {
    let mut rng = TestRng::new(5);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    let a: Vec<_> = (0..5)
        .map(|i| send(&mut inviter, &format!("a{i}"), &mut rng))
        .collect();
    assert_eq!(recv(&mut acceptor, &a[4], &mut rng), "a4");
    let reply = send(&mut acceptor, "r", &mut rng);
    assert_eq!(recv(&mut inviter, &reply, &mut rng), "r");
    let b: Vec<_> = (0..3)
        .map(|i| send(&mut inviter, &format!("b{i}"), &mut rng))
        .collect();
    // New chain first, then the stragglers of the old one, in reverse.
    assert_eq!(recv(&mut acceptor, &b[2], &mut rng), "b2");
    assert_eq!(recv(&mut acceptor, &b[0], &mut rng), "b0");
    for i in (0..4).rev() {
        assert_eq!(recv(&mut acceptor, &a[i], &mut rng), format!("a{i}"));
    }
    assert_eq!(recv(&mut acceptor, &b[1], &mut rng), "b1");
    assert_eq!(acceptor.skipped_keys(), 0);
    // Every one of them again: refused, state untouched.
    let before = fingerprint(&acceptor);
    for m in a.iter().chain(&b) {
        let err = acceptor.decrypt(m, NOW, &mut rng).unwrap_err();
        assert!(
            matches!(
                err,
                DecryptError::AlreadyReceived | DecryptError::Undecryptable
            ),
            "{err:?}"
        );
    }
    assert_eq!(fingerprint(&acceptor), before);
}

#[test]
fn replay_of_the_latest_message_is_refused() {
    let mut rng = TestRng::new(6);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    let m = send(&mut inviter, "once", &mut rng);
    assert_eq!(recv(&mut acceptor, &m, &mut rng), "once");
    let before = fingerprint(&acceptor);
    assert_eq!(
        acceptor.decrypt(&m, NOW, &mut rng).unwrap_err(),
        DecryptError::AlreadyReceived
    );
    assert_eq!(fingerprint(&acceptor), before);
}

#[test]
fn skip_at_max_skip_works_and_one_past_is_refused() {
    let mut rng = TestRng::new(7);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    let messages: Vec<_> = (0..=MAX_SKIP + 1)
        .map(|i| send(&mut inviter, &format!("{i}"), &mut rng))
        .collect();
    // Message number MAX_SKIP + 1 needs MAX_SKIP + 1 skipped keys: refused, no change.
    let before = fingerprint(&acceptor);
    let err = acceptor
        .decrypt(&messages[MAX_SKIP as usize + 1], NOW, &mut rng)
        .unwrap_err();
    assert_eq!(
        err,
        DecryptError::TooFarAhead {
            skip: u64::from(MAX_SKIP) + 1,
            max: MAX_SKIP
        }
    );
    assert_eq!(fingerprint(&acceptor), before);
    // Message number MAX_SKIP needs exactly MAX_SKIP: accepted.
    assert_eq!(
        recv(&mut acceptor, &messages[MAX_SKIP as usize], &mut rng),
        MAX_SKIP.to_string()
    );
    assert_eq!(acceptor.skipped_keys(), MAX_SKIP as usize);
    // And now the one that was too far is the next one.
    assert_eq!(
        recv(&mut acceptor, &messages[MAX_SKIP as usize + 1], &mut rng),
        (MAX_SKIP + 1).to_string()
    );
    assert_eq!(recv(&mut acceptor, &messages[0], &mut rng), "0");
}

#[test]
fn skipped_keys_are_capped_oldest_first() {
    let mut rng = TestRng::new(8);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    let mut first_of_each = Vec::new();
    // Three chains, each skipping MAX_SKIP messages: 3 × 1000 > MAX_SKIPPED_KEYS.
    for _ in 0..3 {
        let chain: Vec<_> = (0..=MAX_SKIP)
            .map(|i| send(&mut inviter, &format!("{i}"), &mut rng))
            .collect();
        recv(&mut acceptor, chain.last().unwrap(), &mut rng);
        first_of_each.push(chain[0].clone());
        let m = send(&mut acceptor, "ack", &mut rng);
        recv(&mut inviter, &m, &mut rng);
    }
    assert_eq!(acceptor.skipped_keys(), MAX_SKIPPED_KEYS);
    // The oldest chain's keys were evicted; the newest are still there.
    assert_eq!(
        acceptor
            .decrypt(&first_of_each[0], NOW, &mut rng)
            .unwrap_err(),
        DecryptError::Undecryptable
    );
    assert_eq!(recv(&mut acceptor, &first_of_each[2], &mut rng), "0");
}

#[test]
fn skipped_keys_expire() {
    let mut rng = TestRng::new(9);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    let late = send(&mut inviter, "late", &mut rng);
    let on_time = send(&mut inviter, "on time", &mut rng);
    assert_eq!(recv(&mut acceptor, &on_time, &mut rng), "on time");
    assert_eq!(acceptor.skipped_keys(), 1);
    // At exactly the age limit the key still opens its message...
    let mut at_limit = acceptor.clone();
    let opened = at_limit
        .decrypt(&late, NOW + MAX_SKIPPED_KEY_AGE, &mut rng)
        .unwrap();
    assert_eq!(opened.as_slice(), b"late");
    // ...one second past it, the key is gone for good.
    let past = NOW + MAX_SKIPPED_KEY_AGE + 1;
    assert_eq!(
        acceptor.decrypt(&late, past, &mut rng).unwrap_err(),
        DecryptError::AlreadyReceived
    );
    let m = send(&mut inviter, "next", &mut rng);
    assert_eq!(
        acceptor.decrypt(&m, past, &mut rng).unwrap().as_slice(),
        b"next"
    );
    assert_eq!(acceptor.skipped_keys(), 0);
}

#[test]
fn one_flipped_bit_anywhere_is_refused_and_changes_nothing() {
    let mut rng = TestRng::new(10);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    // One message that starts a new chain (DH step) and one within the chain.
    let m1 = send(&mut inviter, "new chain", &mut rng);
    let m2 = send(&mut inviter, "same chain", &mut rng);
    let before = fingerprint(&acceptor);
    for message in [&m1, &m2] {
        for i in 0..message.len() {
            let mut bad = message.clone();
            bad[i] ^= 1 << (i % 8);
            assert!(
                acceptor.decrypt(&bad, NOW, &mut rng).is_err(),
                "flip at byte {i}"
            );
        }
    }
    assert_eq!(fingerprint(&acceptor), before);
    assert_eq!(recv(&mut acceptor, &m2, &mut rng), "same chain");
    assert_eq!(recv(&mut acceptor, &m1, &mut rng), "new chain");
}

#[test]
fn wrong_length_is_refused() {
    let mut rng = TestRng::new(11);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    let m = send(&mut inviter, "x", &mut rng);
    for len in [0, 1, ENVELOPE_LEN - 1] {
        assert!(matches!(
            acceptor.decrypt(&m[..len], NOW, &mut rng),
            Err(DecryptError::Length { .. })
        ));
    }
    let mut long = m.clone();
    long.push(0);
    assert!(matches!(
        acceptor.decrypt(&long, NOW, &mut rng),
        Err(DecryptError::Length { .. })
    ));
    assert_eq!(recv(&mut acceptor, &m, &mut rng), "x");
}

#[test]
fn plaintext_size_at_and_past_the_limit() {
    let mut rng = TestRng::new(12);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    let big = vec![b'a'; MAX_PLAINTEXT_LEN];
    let m = inviter.encrypt(&big, &mut rng).unwrap();
    assert_eq!(m.len(), ENVELOPE_LEN);
    assert_eq!(
        acceptor.decrypt(&m, NOW, &mut rng).unwrap().as_slice(),
        big.as_slice()
    );
    let before = fingerprint(&inviter);
    assert_eq!(
        inviter
            .encrypt(&[0; MAX_PLAINTEXT_LEN + 1], &mut rng)
            .unwrap_err(),
        EncryptError::TooLong {
            len: MAX_PLAINTEXT_LEN + 1,
            max: MAX_PLAINTEXT_LEN
        }
    );
    assert_eq!(fingerprint(&inviter), before);
    // Empty and full messages look the same from outside.
    assert_eq!(inviter.encrypt(b"", &mut rng).unwrap().len(), ENVELOPE_LEN);
}

#[test]
fn messages_from_another_session_are_refused() {
    let mut rng = TestRng::new(13);
    let mut one = pair(&mut rng);
    let mut two = pair(&mut rng);
    let m = send(&mut one.inviter, "for one", &mut rng);
    let before = fingerprint(&two.acceptor);
    assert_eq!(
        two.acceptor.decrypt(&m, NOW, &mut rng).unwrap_err(),
        DecryptError::Undecryptable
    );
    assert_eq!(fingerprint(&two.acceptor), before);
    let _ = recv(&mut one.acceptor, &m, &mut rng);
}

#[test]
fn snapshot_mid_conversation_resumes_exactly() {
    let mut rng = TestRng::new(14);
    let Pair {
        mut inviter,
        mut acceptor,
        ..
    } = pair(&mut rng);
    let early = send(&mut inviter, "early", &mut rng);
    let m = send(&mut inviter, "skips early", &mut rng);
    recv(&mut acceptor, &m, &mut rng);
    // Store both sides (postcard, as a vault would, and JSON) and restore.
    let bytes = postcard::to_allocvec(&acceptor.snapshot()).unwrap();
    let snap: RatchetSnapshot = postcard::from_bytes(&bytes).unwrap();
    let mut acceptor = RatchetState::from_snapshot(&snap).unwrap();
    let json = serde_json::to_string(&inviter.snapshot()).unwrap();
    let mut inviter = RatchetState::from_snapshot(&serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(format!("{snap:?}"), "RatchetSnapshot([redacted])");
    assert_eq!(recv(&mut acceptor, &early, &mut rng), "early");
    for i in 0..10 {
        let m = send(&mut acceptor, &format!("{i}"), &mut rng);
        assert_eq!(recv(&mut inviter, &m, &mut rng), format!("{i}"));
        let m = send(&mut inviter, &format!("r{i}"), &mut rng);
        assert_eq!(recv(&mut acceptor, &m, &mut rng), format!("r{i}"));
    }
}

#[test]
fn debug_output_holds_no_secrets() {
    let mut rng = TestRng::new(15);
    let p = pair(&mut rng);
    let shown = format!("{:?}{:?}", p.inviter, p.acceptor);
    let snap = postcard::to_allocvec(&p.inviter.snapshot()).unwrap();
    // No 8-byte window of the secret state appears in the Debug text as hex or bytes.
    for window in snap.windows(8).step_by(8) {
        let hex: String = window.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex));
    }
    assert!(!shown.contains("root"));
}

#[test]
fn expired_invitation_is_refused_by_both_sides() {
    let mut rng = TestRng::new(16);
    let pending = invitation(&mut rng);
    let inv = Invitation::from_link(&pending.invitation().to_link()).unwrap();
    let id = Identity::generate(&mut rng);
    assert_eq!(
        accept(&inv, &id, b"", EXPIRES + 1, &mut rng).unwrap_err(),
        AcceptError::Expired
    );
    let accepted = accept(&inv, &id, b"", EXPIRES, &mut rng).unwrap();
    // Stamped by the relay after expiry plus the allowed clock skew: refused, and the
    // pending invitation comes back intact.
    let rejected = pending
        .complete(
            &accepted.message,
            EXPIRES + EXPIRY_CLOCK_SKEW + 1,
            NOW,
            &mut rng,
        )
        .unwrap_err();
    assert_eq!(rejected.error, CompleteError::Expired);
    let done = rejected
        .pending
        .complete(
            &accepted.message,
            EXPIRES + EXPIRY_CLOCK_SKEW,
            NOW,
            &mut rng,
        )
        .unwrap();
    assert_eq!(done.contact, id.public());
}

#[test]
fn first_message_size_at_and_past_the_limit() {
    let mut rng = TestRng::new(17);
    let pending = invitation(&mut rng);
    let inv = pending.invitation().clone();
    let id = Identity::generate(&mut rng);
    assert_eq!(
        accept(
            &inv,
            &id,
            &vec![0; MAX_FIRST_PLAINTEXT_LEN + 1],
            NOW,
            &mut rng
        )
        .unwrap_err(),
        AcceptError::FirstMessageTooLong {
            len: MAX_FIRST_PLAINTEXT_LEN + 1,
            max: MAX_FIRST_PLAINTEXT_LEN
        }
    );
    let big = vec![7; MAX_FIRST_PLAINTEXT_LEN];
    let accepted = accept(&inv, &id, &big, NOW, &mut rng).unwrap();
    assert_eq!(accepted.message.len(), ENVELOPE_LEN);
    let done = pending
        .complete(&accepted.message, NOW, NOW, &mut rng)
        .unwrap();
    assert_eq!(done.first_plaintext.as_slice(), big.as_slice());
}

#[test]
fn altered_accept_is_refused_and_the_invitation_survives() {
    let mut rng = TestRng::new(18);
    let mut pending = invitation(&mut rng);
    let inv = pending.invitation().clone();
    let accepted = accept(&inv, &Identity::generate(&mut rng), b"hi", NOW, &mut rng).unwrap();
    for i in 0..accepted.message.len() {
        let mut bad = accepted.message.clone();
        bad[i] ^= 0x80;
        let rejected = pending.complete(&bad, NOW, NOW, &mut rng).unwrap_err();
        pending = *rejected.pending;
    }
    let done = pending
        .complete(&accepted.message, NOW, NOW, &mut rng)
        .unwrap();
    assert_eq!(done.first_plaintext.as_slice(), b"hi");
}

#[test]
fn accept_for_another_invitation_is_refused() {
    let mut rng = TestRng::new(19);
    let pending_a = invitation(&mut rng);
    let pending_b = invitation(&mut rng);
    let accepted = accept(
        pending_a.invitation(),
        &Identity::generate(&mut rng),
        b"",
        NOW,
        &mut rng,
    )
    .unwrap();
    let err = pending_b
        .complete(&accepted.message, NOW, NOW, &mut rng)
        .unwrap_err()
        .error;
    assert_eq!(err, CompleteError::WrongInvitation);
}

/// The invitation's one-time keys answer one accept. Once the inviter has completed
/// with the first acceptor, its queue belongs to that session: a second accept of the
/// same invitation (by someone who also learned the link) does not decrypt in it, and
/// the pending invitation that could have answered it no longer exists (`complete`
/// consumed it).
#[test]
fn second_accept_of_a_used_invitation_fails() {
    let mut rng = TestRng::new(20);
    let pending = invitation(&mut rng);
    let inv = Invitation::from_link(&pending.invitation().to_link()).unwrap();
    let first = accept(
        &inv,
        &Identity::generate(&mut rng),
        b"friend",
        NOW,
        &mut rng,
    )
    .unwrap();
    let second = accept(
        &inv,
        &Identity::generate(&mut rng),
        b"intruder",
        NOW,
        &mut rng,
    )
    .unwrap();
    let mut done = pending
        .complete(&first.message, NOW, NOW, &mut rng)
        .unwrap();
    assert_eq!(done.first_plaintext.as_slice(), b"friend");
    assert_eq!(
        done.state
            .decrypt(&second.message, NOW, &mut rng)
            .unwrap_err(),
        DecryptError::Undecryptable
    );
}
