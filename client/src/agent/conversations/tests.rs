//! The agent's protocol core without a network: two (or three) profiles in real vaults,
//! envelopes carried by hand, so every rule is checked deterministically — the
//! handshake, receipts, statuses, replays, tampering, timers and forgetting.

use std::path::PathBuf;

use passage_crypto::primitives::DhSecret;
use passage_wire::{RecipientId, RelayAddress, SenderId};
use rand_core::UnwrapErr;

use super::*;
use crate::agent::event::{AgentEvent, DroppedReason};
use crate::agent::records::{Direction, MessageStatus};
use crate::relay::{LinkError, QueueCredentials};
use crate::vault::{Credentials, Vault};

const NOW: u64 = 1_800_000_000;

fn rng() -> UnwrapErr<getrandom::SysRng> {
    UnwrapErr(getrandom::SysRng)
}

struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).unwrap();
        Self(std::env::temp_dir().join(format!("agent-test-{}", hex::encode(id))))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn relay() -> RelayAddress {
    "passage://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@relay.invalid:443"
        .parse()
        .unwrap()
}

/// A queue as the relay would make it (the relay's key is any valid X25519 key).
fn queue() -> QueueCredentials {
    let mut rng = rng();
    QueueCredentials::from_parts(
        RecipientId::generate(&mut rng),
        SenderId::generate(&mut rng),
        DhSecret::generate(&mut rng),
        DhSecret::generate(&mut rng),
        DhSecret::generate(&mut rng).public_key(),
    )
    .unwrap()
}

struct Profile {
    _dir: Dir,
    core: Conversations,
    /// Our receiving queues, by contact name.
    queues: Vec<(String, QueueCredentials)>,
}

impl Profile {
    fn new() -> Self {
        let dir = Dir::new();
        let vault = Vault::create(&dir.0, &Credentials::new("pass")).unwrap();
        let core = Conversations::create(vault, &relay(), false, NOW).unwrap();
        Self {
            _dir: dir,
            core,
            queues: Vec::new(),
        }
    }

    fn queue_of(&self, name: &str) -> RecipientId {
        self.queues
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .recipient_id()
    }

    /// Takes everything from the outbox as the relay would (`OK` to each).
    fn drain(&mut self) -> Vec<(SenderId, Vec<u8>)> {
        let mut out = Vec::new();
        for item in self.core.outbox().unwrap() {
            out.push((item.sender_id, item.envelope.to_vec()));
            self.core.handle_sent(item.seq, Ok(())).unwrap();
        }
        out
    }

    fn deliver(&mut self, from: &str, envelope: &[u8]) -> (Disposition, Vec<AgentEvent>) {
        let queue = self.queue_of(from);
        self.core
            .handle_delivery(queue, envelope, NOW, NOW, &mut rng())
    }
}

/// Alice invites Bob and Bob accepts (nothing delivered yet).
fn invite_and_accept(alice: &mut Profile, bob: &mut Profile) {
    let qa = queue();
    let link = alice
        .core
        .invite("Bob", &relay(), &qa, NOW + 3600, NOW, &mut rng())
        .unwrap();
    alice.queues.push(("Bob".into(), qa));
    let invitation = bob.core.check_invitation(&link, "Alice", NOW).unwrap();
    let qb = queue();
    bob.core
        .accept(&invitation, "Alice", &relay(), &qb, NOW, &mut rng())
        .unwrap();
    bob.queues.push(("Alice".into(), qb));
}

/// Alice invites Bob; Bob accepts; both connected.
fn connected_pair() -> (Profile, Profile) {
    let mut alice = Profile::new();
    let mut bob = Profile::new();
    invite_and_accept(&mut alice, &mut bob);
    assert_eq!(bob.core.contacts()[0].status, ContactStatus::Accepted);

    let accept = bob.drain();
    assert_eq!(accept.len(), 1);
    let (disposition, events) = alice.deliver("Bob", &accept[0].1);
    assert_eq!(disposition, Disposition::Ack);
    assert!(matches!(&events[..], [AgentEvent::Connected { contact }] if contact == "Bob"));

    let welcome = alice.drain();
    assert_eq!(welcome.len(), 1);
    let (_, events) = bob.deliver("Alice", &welcome[0].1);
    assert!(matches!(&events[..], [AgentEvent::Connected { contact }] if contact == "Alice"));
    assert_eq!(bob.core.contacts()[0].status, ContactStatus::Connected);
    assert_eq!(
        alice.core.safety_number("Bob").unwrap().digits(),
        bob.core.safety_number("Alice").unwrap().digits()
    );
    (alice, bob)
}

#[test]
fn texts_receipts_and_statuses() {
    let (mut alice, mut bob) = connected_pair();
    let id = alice
        .core
        .compose_text("Bob", "meet at the station", NOW, &mut rng())
        .unwrap();
    assert_eq!(
        alice.core.history("Bob").unwrap()[0].status,
        MessageStatus::Queued
    );
    let sent = alice.drain();
    assert_eq!(
        alice.core.history("Bob").unwrap()[0].status,
        MessageStatus::Sent
    );
    let (_, events) = bob.deliver("Alice", &sent[0].1);
    match &events[..] {
        [
            AgentEvent::Message {
                contact,
                id: got,
                text,
                ..
            },
        ] => {
            assert_eq!(contact, "Alice");
            assert_eq!(*got, id);
            assert_eq!(text.as_str(), "meet at the station");
        }
        other => panic!("unexpected events {other:?}"),
    }
    let receipt = bob.drain();
    let (_, events) = alice.deliver("Bob", &receipt[0].1);
    assert!(matches!(
        &events[..],
        [AgentEvent::Status {
            status: MessageStatus::Delivered,
            ..
        }]
    ));
    let history = alice.core.history("Bob").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, MessageStatus::Delivered);
    assert_eq!(history[0].direction, Direction::Outgoing);
    let history = bob.core.history("Alice").unwrap();
    assert_eq!(history[0].text(), Some("meet at the station"));
    assert_eq!(history[0].status, MessageStatus::Received);
}

#[test]
fn replayed_and_tampered_envelopes_are_dropped_and_the_conversation_goes_on() {
    let (mut alice, mut bob) = connected_pair();
    alice
        .core
        .compose_text("Bob", "one", NOW, &mut rng())
        .unwrap();
    let first = alice.drain().remove(0).1;
    alice
        .core
        .compose_text("Bob", "two", NOW, &mut rng())
        .unwrap();
    let second = alice.drain().remove(0).1;

    assert!(matches!(
        &bob.deliver("Alice", &first).1[..],
        [AgentEvent::Message { .. }]
    ));
    // The relay (or a crash before ACK) hands the same envelope over again.
    let (disposition, events) = bob.deliver("Alice", &first);
    assert_eq!(disposition, Disposition::Ack);
    assert!(matches!(&events[..], [AgentEvent::Dropped { .. }]));
    // One flipped byte anywhere: header or body.
    for position in [10, 2000, second.len() - 1] {
        let mut tampered = second.clone();
        tampered[position] ^= 0x40;
        let (disposition, events) = bob.deliver("Alice", &tampered);
        assert_eq!(disposition, Disposition::Ack);
        assert!(
            matches!(
                &events[..],
                [AgentEvent::Dropped {
                    reason: DroppedReason::Undecryptable,
                    ..
                }]
            ),
            "{events:?}"
        );
    }
    assert!(matches!(
        &bob.deliver("Alice", &second).1[..],
        [AgentEvent::Message { .. }]
    ));
    let texts: Vec<_> = bob
        .core
        .history("Alice")
        .unwrap()
        .iter()
        .map(|e| e.text().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["one", "two"]);
    // Bob's answer still decrypts at Alice's.
    bob.drain();
    bob.core
        .compose_text("Alice", "three", NOW, &mut rng())
        .unwrap();
    let answer = bob.drain().remove(0).1;
    assert!(matches!(
        &alice.deliver("Bob", &answer).1[..],
        [AgentEvent::Message { .. }]
    ));
}

#[test]
fn invitations_are_single_use_and_checked() {
    let (mut alice, mut bob) = connected_pair();
    // The same vault cannot accept the same link twice.
    let qa = queue();
    let link = alice
        .core
        .invite("Carol", &relay(), &qa, NOW + 60, NOW, &mut rng())
        .unwrap();
    let invitation = bob.core.check_invitation(&link, "Carol", NOW).unwrap();
    bob.core
        .accept(&invitation, "Carol", &relay(), &queue(), NOW, &mut rng())
        .unwrap();
    assert!(matches!(
        bob.core.check_invitation(&link, "Carol2", NOW),
        Err(AgentError::InvitationAlreadyUsed)
    ));
    // Expired, garbage, taken names.
    assert!(matches!(
        Profile::new().core.check_invitation(&link, "X", NOW + 61),
        Err(AgentError::InvitationExpired)
    ));
    assert!(matches!(
        bob.core.check_invitation("passage:i1.AAAA", "X", NOW),
        Err(AgentError::InvalidInvitation)
    ));
    assert!(matches!(
        alice
            .core
            .invite("Bob", &relay(), &queue(), NOW + 60, NOW, &mut rng()),
        Err(AgentError::NameTaken)
    ));
    assert!(matches!(
        alice
            .core
            .invite(" x", &relay(), &queue(), NOW + 60, NOW, &mut rng()),
        Err(AgentError::InvalidName { .. })
    ));

    // Someone else's accept reached the relay first: ours is refused for good, and
    // the half-made contact disappears.
    let pending = bob.core.outbox().unwrap();
    let accept = pending
        .iter()
        .find(|i| i.sender_id == qa.sender_id())
        .unwrap();
    let (events, forget) = bob
        .core
        .handle_sent(accept.seq, Err(&LinkError::Auth))
        .unwrap();
    assert!(
        matches!(&events[..], [AgentEvent::InvitationRefused { contact }] if contact == "Carol")
    );
    assert!(forget.is_some());
    assert!(bob.core.contacts().iter().all(|c| c.name != "Carol"));
    assert!(bob.core.outbox().unwrap().is_empty());

    // A stranger's accept on a connected queue does not decrypt: dropped.
    let mut mallory = Profile::new();
    let invitation = mallory.core.check_invitation(&link, "A", NOW).unwrap();
    mallory
        .core
        .accept(&invitation, "A", &relay(), &queue(), NOW, &mut rng())
        .unwrap();
    let forged = mallory.drain().remove(0).1;
    let (_, events) = alice.deliver("Bob", &forged);
    assert!(matches!(&events[..], [AgentEvent::Dropped { .. }]));
}

#[test]
fn a_temporary_failure_keeps_the_envelope_and_a_permanent_one_fails_the_message() {
    let (mut alice, _bob) = connected_pair();
    alice
        .core
        .compose_text("Bob", "x", NOW, &mut rng())
        .unwrap();
    let item = alice.core.outbox().unwrap().remove(0);
    let (events, _) = alice
        .core
        .handle_sent(item.seq, Err(&LinkError::Timeout))
        .unwrap();
    assert!(events.is_empty());
    let again = alice.core.outbox().unwrap().remove(0);
    assert_eq!(again.envelope, item.envelope, "resent byte for byte");
    alice
        .core
        .handle_sent(again.seq, Err(&LinkError::Auth))
        .unwrap();
    assert!(alice.core.outbox().unwrap().is_empty());
    assert_eq!(
        alice.core.history("Bob").unwrap()[0].status,
        MessageStatus::Failed
    );
}

#[test]
fn state_survives_reopening_the_vault() {
    let (mut alice, mut bob) = connected_pair();
    alice
        .core
        .compose_text("Bob", "queued", NOW, &mut rng())
        .unwrap();
    let dir = alice._dir.0.clone();
    let core = std::mem::replace(&mut alice.core, Profile::new().core);
    core.into_vault().close();
    let vault = Vault::open(&dir, &Credentials::new("pass")).unwrap();
    alice.core = Conversations::open(vault).unwrap();
    let sent = alice.drain();
    assert_eq!(sent.len(), 1);
    assert!(matches!(
        &bob.deliver("Alice", &sent[0].1).1[..],
        [AgentEvent::Message { .. }]
    ));
}

#[test]
fn timers_are_adopted_and_expired_messages_are_deleted_on_both_sides() {
    let (mut alice, mut bob) = connected_pair();
    alice.core.set_timer("Bob", 5, NOW, &mut rng()).unwrap();
    let announce = alice.drain().remove(0).1;
    let (_, events) = bob.deliver("Alice", &announce);
    assert!(matches!(
        &events[..],
        [AgentEvent::TimerChanged { seconds: 5, .. }]
    ));
    assert_eq!(bob.core.contacts()[0].disappear_after_secs, 5);

    alice
        .core
        .compose_text("Bob", "gone soon", NOW, &mut rng())
        .unwrap();
    let text = alice.drain().remove(0).1;
    bob.deliver("Alice", &text);
    bob.core
        .compose_text("Alice", "me too", NOW, &mut rng())
        .unwrap();
    assert_eq!(bob.core.expire(NOW + 4).unwrap(), 0);
    assert_eq!(bob.core.expire(NOW + 6).unwrap(), 2);
    assert_eq!(alice.core.expire(NOW + 6).unwrap(), 1);
    for history in [
        alice.core.history("Bob").unwrap(),
        bob.core.history("Alice").unwrap(),
    ] {
        assert!(
            history.iter().all(|e| e.text().is_none()),
            "only timer entries remain"
        );
    }
}

#[test]
fn no_history_keeps_only_what_delivery_needs() {
    let (mut alice, mut bob) = connected_pair();
    bob.core.set_no_history(None, true).unwrap();
    alice.core.set_no_history(Some("Bob"), true).unwrap();
    alice
        .core
        .compose_text("Bob", "read once", NOW, &mut rng())
        .unwrap();
    assert_eq!(
        alice.core.history("Bob").unwrap().len(),
        1,
        "kept until delivered"
    );
    let text = alice.drain().remove(0).1;
    let (_, events) = bob.deliver("Alice", &text);
    assert!(
        matches!(&events[..], [AgentEvent::Message { text, .. }] if text.as_str() == "read once")
    );
    assert!(
        bob.core.history("Alice").unwrap().is_empty(),
        "shown once, never stored"
    );
    // The same envelope again is still recognised.
    assert!(matches!(
        &bob.deliver("Alice", &text).1[..],
        [AgentEvent::Dropped { .. }]
    ));
    let receipt = bob.drain().remove(0).1;
    let (_, events) = alice.deliver("Bob", &receipt);
    assert!(matches!(
        &events[..],
        [AgentEvent::Status {
            status: MessageStatus::Delivered,
            ..
        }]
    ));
    assert!(
        alice.core.history("Bob").unwrap().is_empty(),
        "deleted on the receipt"
    );
}

#[test]
fn a_timer_applies_at_once_to_what_the_setter_receives() {
    let (mut alice, mut bob) = connected_pair();
    // Bob turns the timer on; Alice has not processed the change yet.
    bob.core.set_timer("Alice", 10, NOW, &mut rng()).unwrap();
    alice
        .core
        .compose_text("Bob", "sent without a timer", NOW, &mut rng())
        .unwrap();
    let text = alice.drain().remove(0).1;
    bob.deliver("Alice", &text);
    let entry = bob
        .core
        .history("Alice")
        .unwrap()
        .into_iter()
        .find(|e| e.text().is_some())
        .unwrap();
    assert_eq!(entry.expires_at, Some(NOW + 10));
}

#[test]
fn a_profile_default_timer_is_announced_to_new_contacts() {
    let mut alice = Profile::new();
    alice.core.set_default_timer(86_400).unwrap();
    let mut bob = Profile::new();
    invite_and_accept(&mut alice, &mut bob);
    for (_, envelope) in bob.drain() {
        alice.deliver("Bob", &envelope);
    }
    let mut adopted = false;
    for (_, envelope) in alice.drain() {
        let (_, events) = bob.deliver("Alice", &envelope);
        adopted |= events.iter().any(|e| {
            matches!(
                e,
                AgentEvent::TimerChanged {
                    seconds: 86_400,
                    ..
                }
            )
        });
    }
    assert!(adopted, "Bob adopts Alice's default");
    assert_eq!(bob.core.contacts()[0].disappear_after_secs, 86_400);
}

/// The inviter's handling of an accept is one transaction: a commit failure anywhere
/// in it changes nothing, and the relay's copy, delivered again, connects the contact.
#[test]
fn an_accept_that_fails_to_commit_is_handled_again_from_the_start() {
    // Failing at once, and failing after one commit (where the ratchet alone was
    // committed before, so that the retried accept was dropped and the relationship
    // lost): either way the retry connects.
    for commits_first in [0, 1] {
        let mut alice = Profile::new();
        alice.core.set_default_timer(3600).unwrap();
        let mut bob = Profile::new();
        invite_and_accept(&mut alice, &mut bob);
        let accept = bob.drain().remove(0).1;
        alice
            .core
            .vault_mut()
            .fail_commits_after(Some(commits_first));
        let (disposition, events) = alice.deliver("Bob", &accept);
        alice.core.vault_mut().fail_commits_after(None);
        if commits_first == 0 {
            assert_eq!(disposition, Disposition::Keep);
            assert!(matches!(&events[..], [AgentEvent::Error(_)]), "{events:?}");
            assert_eq!(alice.core.contacts()[0].status, ContactStatus::Invited);
            assert!(!alice.core.has_outbox());
            let (disposition, events) = alice.deliver("Bob", &accept);
            assert_eq!(disposition, Disposition::Ack);
            assert!(matches!(&events[..], [AgentEvent::Connected { .. }]));
        } else {
            assert_eq!(disposition, Disposition::Ack);
            assert!(matches!(&events[..], [AgentEvent::Connected { .. }]));
        }
        // Welcome and the default timer's announcement, then a text both ways.
        let mut connected = false;
        for (_, envelope) in alice.drain() {
            let (_, events) = bob.deliver("Alice", &envelope);
            connected |= events
                .iter()
                .any(|e| matches!(e, AgentEvent::Connected { .. }));
        }
        assert!(connected);
        assert_eq!(bob.core.contacts()[0].disappear_after_secs, 3600);
        bob.core
            .compose_text("Alice", "hello", NOW, &mut rng())
            .unwrap();
        let (_, events) = alice.deliver("Bob", &bob.drain().remove(0).1);
        assert!(matches!(&events[..], [AgentEvent::Message { .. }]));
        // A reopened vault says the same.
        let dir = alice._dir.0.clone();
        alice.core.into_vault().close();
        let vault = Vault::open(&dir, &Credentials::new("pass")).unwrap();
        let reopened = Conversations::open(vault).unwrap();
        assert_eq!(reopened.contacts()[0].status, ContactStatus::Connected);
        reopened.into_vault().close();
    }
}

/// A contact may shorten the timer this user set, never lengthen or disable it.
#[test]
fn a_contact_cannot_lengthen_or_switch_off_the_timer_this_user_set() {
    let (mut alice, mut bob) = connected_pair();
    bob.core.set_timer("Alice", 3600, NOW, &mut rng()).unwrap();
    let (_, events) = alice.deliver("Bob", &bob.drain().remove(0).1);
    assert!(matches!(
        &events[..],
        [AgentEvent::TimerChanged { seconds: 3600, .. }]
    ));

    // Alice switches it off: Bob keeps his hour and tells her so; she adopts it.
    alice.core.set_timer("Bob", 0, NOW, &mut rng()).unwrap();
    let (_, events) = bob.deliver("Alice", &alice.drain().remove(0).1);
    assert!(matches!(
        &events[..],
        [AgentEvent::TimerChanged { seconds: 3600, .. }]
    ));
    assert_eq!(bob.core.contacts()[0].disappear_after_secs, 3600);
    let answer = bob.drain();
    assert_eq!(answer.len(), 1, "Bob announces his timer back");
    let (_, events) = alice.deliver("Bob", &answer[0].1);
    assert!(matches!(
        &events[..],
        [AgentEvent::TimerChanged { seconds: 3600, .. }]
    ));
    assert_eq!(alice.core.contacts()[0].disappear_after_secs, 3600);

    // A longer one is refused the same way; a shorter one is taken.
    alice
        .core
        .set_timer("Bob", 86_400, NOW, &mut rng())
        .unwrap();
    bob.deliver("Alice", &alice.drain().remove(0).1);
    assert_eq!(bob.core.contacts()[0].disappear_after_secs, 3600);
    alice.deliver("Bob", &bob.drain().remove(0).1);
    alice.core.set_timer("Bob", 60, NOW, &mut rng()).unwrap();
    let (_, events) = bob.deliver("Alice", &alice.drain().remove(0).1);
    assert!(matches!(
        &events[..],
        [AgentEvent::TimerChanged { seconds: 60, .. }]
    ));
    assert_eq!(bob.core.contacts()[0].disappear_after_secs, 60);
    assert!(bob.drain().is_empty(), "nothing to answer");

    // Bob himself may switch his own off; Alice's 60 s (her floor now) still holds...
    bob.core.set_timer("Alice", 0, NOW, &mut rng()).unwrap();
    alice.deliver("Bob", &bob.drain().remove(0).1);
    assert_eq!(alice.core.contacts()[0].disappear_after_secs, 60);
    bob.deliver("Alice", &alice.drain().remove(0).1);
    assert_eq!(bob.core.contacts()[0].disappear_after_secs, 60);
    // ...until she switches hers off too.
    alice.core.set_timer("Bob", 0, NOW, &mut rng()).unwrap();
    bob.deliver("Alice", &alice.drain().remove(0).1);
    assert_eq!(bob.core.contacts()[0].disappear_after_secs, 0);
    assert!(bob.drain().is_empty());
}

/// An at-risk profile's default is the floor for every new contact.
#[test]
fn an_at_risk_default_survives_a_contact_switching_the_timer_off() {
    let mut alice = Profile::new();
    let mut bob = Profile::new();
    bob.core.set_default_timer(86_400).unwrap();
    invite_and_accept(&mut alice, &mut bob);
    for (_, envelope) in bob.drain() {
        alice.deliver("Bob", &envelope);
    }
    for (_, envelope) in alice.drain() {
        bob.deliver("Alice", &envelope);
    }
    assert_eq!(alice.core.contacts()[0].disappear_after_secs, 86_400);
    alice.core.set_timer("Bob", 0, NOW, &mut rng()).unwrap();
    bob.deliver("Alice", &alice.drain().remove(0).1);
    assert_eq!(bob.core.contacts()[0].disappear_after_secs, 86_400);
}

/// A contact whose profile was restored from an older copy sends from ratchet positions
/// it used before: those messages are reported as such, not as replays, and an
/// ordinary redelivery is still a plain duplicate.
#[test]
fn messages_from_a_restored_profile_are_told_from_redeliveries() {
    let (mut alice, mut bob) = connected_pair();
    let dir = alice._dir.0.clone();
    let backup = Dir::new();
    std::fs::create_dir_all(&backup.0).unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        for entry in std::fs::read_dir(to).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    };
    copy(&dir, &backup.0);
    for text in ["one", "two"] {
        alice
            .core
            .compose_text("Bob", text, NOW, &mut rng())
            .unwrap();
    }
    let sent = alice.drain();
    for (_, envelope) in &sent {
        let (_, events) = bob.deliver("Alice", envelope);
        assert!(matches!(&events[..], [AgentEvent::Message { .. }]));
    }
    // The relay delivers "two" again (its ACK was lost): a plain duplicate.
    assert!(matches!(
        &bob.deliver("Alice", &sent[1].1).1[..],
        [AgentEvent::Dropped {
            reason: DroppedReason::Duplicate,
            ..
        }]
    ));
    // Alice's vault is restored from the backup and she writes again.
    alice.core.into_vault().close();
    copy(&backup.0, &dir);
    let vault = Vault::open(&dir, &Credentials::new("pass")).unwrap();
    alice.core = Conversations::open(vault).unwrap();
    alice
        .core
        .compose_text("Bob", "three", NOW, &mut rng())
        .unwrap();
    let (_, events) = bob.deliver("Alice", &alice.drain().remove(0).1);
    assert!(
        matches!(
            &events[..],
            [AgentEvent::Dropped {
                reason: DroppedReason::Forked,
                ..
            }]
        ),
        "{events:?}"
    );
}

fn voice_note(seconds: f32) -> Vec<u8> {
    let rate = 16_000;
    let samples: Vec<f32> = (0..(rate as f32 * seconds) as usize)
        .map(|i| {
            let t = i as f32 / rate as f32;
            0.3 * (t * 180.0 * std::f32::consts::TAU).sin()
                * (t * 4.0 * std::f32::consts::PI).sin().abs()
        })
        .collect();
    let mut encoder =
        passage_voice::VoiceEncoder::new(rate, 1, passage_voice::Quality::Normal).unwrap();
    encoder.push(&samples).unwrap();
    encoder.finish().unwrap().to_bytes()
}

/// A voice message goes as bucketed chunks, arrives in any order, is shown once whole
/// and checked, stored encrypted, and gets one receipt.
#[test]
fn a_voice_message_arrives_whole_in_any_order_with_one_receipt() {
    let (mut alice, mut bob) = connected_pair();
    let note = voice_note(12.0);
    let id = alice
        .core
        .compose_voice("Bob", &note, 12_000, NOW, &mut rng())
        .unwrap();
    let chunks = alice.drain();
    assert_eq!(chunks.len(), crate::agent::voice_chunk_count(note.len()));
    assert_eq!(
        alice.core.history("Bob").unwrap()[0].status,
        MessageStatus::Sent
    );
    // Reverse order, with a duplicate in the middle.
    let mut order: Vec<usize> = (0..chunks.len()).rev().collect();
    order.insert(2, order[1]);
    let mut voice = Vec::new();
    for (n, &i) in order.iter().enumerate() {
        let (disposition, events) = bob.deliver("Alice", &chunks[i].1);
        assert_eq!(disposition, Disposition::Ack);
        if n + 1 < order.len() {
            assert!(
                events
                    .iter()
                    .all(|e| !matches!(e, AgentEvent::Voice { .. })),
                "shown only when whole"
            );
        }
        if n == 2 {
            assert!(matches!(
                &events[..],
                [AgentEvent::Dropped {
                    reason: DroppedReason::Duplicate,
                    ..
                }]
            ));
        }
        voice.extend(
            events
                .into_iter()
                .filter(|e| matches!(e, AgentEvent::Voice { .. })),
        );
    }
    match &voice[..] {
        [
            AgentEvent::Voice {
                contact,
                id: got,
                duration_ms,
                bytes,
                note: got_note,
                ..
            },
        ] => {
            assert_eq!(contact, "Alice");
            assert_eq!(*got, id);
            assert_eq!(*duration_ms, 12_000);
            assert_eq!(*bytes as usize, note.len());
            assert_eq!(&got_note[..], &note[..]);
        }
        other => panic!("unexpected events {other:?}"),
    }
    assert_eq!(&bob.core.voice_note("Alice", &id).unwrap()[..], &note[..]);
    let history = bob.core.history("Alice").unwrap();
    assert_eq!(history[0].voice(), Some((12_000, note.len() as u32)));
    // One receipt for the whole message.
    let receipts = bob.drain();
    assert_eq!(receipts.len(), 1);
    let (_, events) = alice.deliver("Bob", &receipts[0].1);
    assert!(matches!(
        &events[..],
        [AgentEvent::Status {
            status: MessageStatus::Delivered,
            ..
        }]
    ));
    // A chunk delivered again after completion changes nothing.
    let (_, events) = bob.deliver("Alice", &chunks[0].1);
    assert!(matches!(
        &events[..],
        [AgentEvent::Dropped {
            reason: DroppedReason::Duplicate,
            ..
        }]
    ));
}

/// A note that does not check out once whole (not a valid voice note) is dropped, and
/// nothing of it stays.
#[test]
fn a_voice_message_that_does_not_check_out_is_dropped_and_forgotten() {
    let (mut alice, mut bob) = connected_pair();
    let garbage = vec![7u8; 9_000];
    let id = alice
        .core
        .compose_voice("Bob", &garbage, 1_000, NOW, &mut rng())
        .unwrap();
    let mut events = Vec::new();
    for (_, envelope) in alice.drain() {
        events.extend(bob.deliver("Alice", &envelope).1);
    }
    assert!(
        matches!(
            &events[..],
            [AgentEvent::Dropped {
                reason: DroppedReason::Malformed,
                ..
            }]
        ),
        "{events:?}"
    );
    assert!(bob.core.voice_note("Alice", &id).is_err());
    assert!(bob.core.history("Alice").unwrap().is_empty());
    let vault = bob.core.vault_mut();
    assert!(vault.keys_with_prefix("v/").is_empty() && vault.keys_with_prefix("w/").is_empty());
    assert!(bob.drain().is_empty(), "no receipt for it");
}

/// Disappearing messages cover voice as text: the note goes with its entry.
#[test]
fn a_voice_message_disappears_with_its_note() {
    let (mut alice, mut bob) = connected_pair();
    alice.core.set_timer("Bob", 5, NOW, &mut rng()).unwrap();
    for (_, envelope) in alice.drain() {
        bob.deliver("Alice", &envelope);
    }
    let note = voice_note(2.0);
    let id = alice
        .core
        .compose_voice("Bob", &note, 2_000, NOW, &mut rng())
        .unwrap();
    for (_, envelope) in alice.drain() {
        bob.deliver("Alice", &envelope);
    }
    assert!(bob.core.voice_note("Alice", &id).is_ok());
    assert_eq!(bob.core.expire(NOW + 6).unwrap(), 1);
    assert_eq!(alice.core.expire(NOW + 6).unwrap(), 1);
    assert!(bob.core.voice_note("Alice", &id).is_err());
    assert!(alice.core.voice_note("Bob", &id).is_err());
    for profile in [&mut alice, &mut bob] {
        assert!(profile.core.vault_mut().keys_with_prefix("a/").is_empty());
    }
}

/// No-history mode covers voice: shown once (the event carries the note), never stored.
#[test]
fn no_history_mode_shows_a_voice_message_once_and_keeps_nothing() {
    let (mut alice, mut bob) = connected_pair();
    bob.core.set_no_history(None, true).unwrap();
    let note = voice_note(2.0);
    let id = alice
        .core
        .compose_voice("Bob", &note, 2_000, NOW, &mut rng())
        .unwrap();
    let mut shown = Vec::new();
    for (_, envelope) in alice.drain() {
        shown.extend(bob.deliver("Alice", &envelope).1);
    }
    assert!(matches!(&shown[..], [AgentEvent::Voice { note: got, .. }] if got[..] == note[..]));
    assert!(bob.core.history("Alice").unwrap().is_empty());
    assert!(bob.core.voice_note("Alice", &id).is_err());
    let vault = bob.core.vault_mut();
    for prefix in ["a/", "v/", "w/"] {
        assert!(vault.keys_with_prefix(prefix).is_empty(), "{prefix}");
    }
}

/// A contact cannot fill the vault with voice messages it never finishes.
#[test]
fn half_sent_voice_messages_of_a_contact_are_bounded() {
    let (mut alice, mut bob) = connected_pair();
    let note = voice_note(1.0);
    let mut dropped = 0;
    for _ in 0..super::voice::MAX_PENDING_VOICE + 2 {
        alice
            .core
            .compose_voice("Bob", &note, 1_000, NOW, &mut rng())
            .unwrap();
        // Only the first chunk of each arrives.
        let first = alice.drain().remove(0).1;
        let (_, events) = bob.deliver("Alice", &first);
        dropped += events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    AgentEvent::Dropped {
                        reason: DroppedReason::Malformed,
                        ..
                    }
                )
            })
            .count();
    }
    assert_eq!(dropped, 2);
    assert_eq!(
        bob.core.vault_mut().keys_with_prefix("w/").len(),
        super::voice::MAX_PENDING_VOICE
    );
}

#[test]
fn an_sos_goes_before_what_was_queued_and_arrives_as_an_sos() {
    let (mut alice, mut bob) = connected_pair();
    assert!(alice.core.trusted_reachable().is_empty());
    alice.core.set_trusted("Bob", true).unwrap();
    assert_eq!(alice.core.trusted_reachable(), ["Bob"]);
    assert!(alice.core.contacts()[0].trusted);
    for text in ["one", "two", "three"] {
        alice
            .core
            .compose_text("Bob", text, NOW, &mut rng())
            .unwrap();
    }
    let sos = alice
        .core
        .compose_sos("Bob", "taken at the border", NOW, &mut rng())
        .unwrap();
    // Even a limited flush (a voice message's group) takes the SOS first.
    let first = alice.core.outbox_first(Some(1)).unwrap();
    assert_eq!(first.len(), 1);
    let out = alice.drain();
    assert_eq!(out.len(), 4);
    assert_eq!(first[0].envelope[..], out[0].1[..], "the SOS leaves first");
    let mut texts = Vec::new();
    for (i, (_, envelope)) in out.iter().enumerate() {
        let (_, events) = bob.deliver("Alice", envelope);
        match &events[..] {
            [AgentEvent::Sos { id, text, .. }] if i == 0 => {
                assert_eq!(*id, sos);
                assert_eq!(text.as_str(), "taken at the border");
            }
            [AgentEvent::Message { text, .. }] if i > 0 => texts.push(text.to_string()),
            other => panic!("unexpected events {other:?} at {i}"),
        }
    }
    assert_eq!(
        texts,
        ["one", "two", "three"],
        "the rest in order, after it"
    );
    let history = bob.core.history("Alice").unwrap();
    assert_eq!(history.iter().filter(|e| e.is_sos()).count(), 1);
    assert_eq!(
        alice
            .core
            .history("Bob")
            .unwrap()
            .iter()
            .filter(|e| e.is_sos())
            .count(),
        1
    );
    alice.core.set_trusted("Bob", false).unwrap();
    assert!(alice.core.trusted_reachable().is_empty());
}
