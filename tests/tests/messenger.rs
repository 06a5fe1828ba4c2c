//! End-to-end tests of the app-shaped API (`passage_client::messenger::Messenger`)
//! against real `passage-relay` processes: one task sends while another waits for
//! events on the same handle; the profile locks when idle and unlocks; messages sent
//! while it was locked arrive after; a duress unlock shows the decoy; the panic wipe
//! ends everything.
//!
//! Every wait is for an event, bounded by a count and by `EXPECT` per event; each test
//! is bounded as a whole by `LIMIT` (a hang guard, not a timing check).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use passage_client::agent::{ContactId, ContactStatus, MessageStatus};
use passage_client::messenger::{ErrorKind, Messenger, MessengerEvent, MessengerOptions};
use passage_client::profile::NewProfile;
use passage_client::vault::{Credentials, Passphrase};
use passage_e2e::{TestRelay, options};
use passage_transport::TransportMode;

const LIMIT: Duration = Duration::from_secs(300);
const EXPECT: Duration = Duration::from_secs(20);

fn credentials(passphrase: &str) -> Credentials {
    Credentials::new(Passphrase::from_bytes(passphrase.as_bytes().to_vec()))
}

fn messenger_options(lock_after: Option<Duration>) -> MessengerOptions {
    let mut messenger = MessengerOptions::default();
    messenger.agent.connect = options(TransportMode::Quic);
    messenger.lock_after = lock_after;
    messenger
}

/// Creates a profile (with a duress passphrase) and opens it.
async fn open_new(dir: &Path, relay: &TestRelay, lock_after: Option<Duration>) -> Messenger {
    Messenger::create(
        dir,
        credentials("real passphrase"),
        Some(credentials("duress passphrase")),
        NewProfile::new(relay.address().clone()),
        messenger_options(lock_after),
    )
    .await
    .unwrap();
    Messenger::open(
        dir,
        credentials("real passphrase"),
        messenger_options(lock_after),
    )
    .await
    .unwrap()
}

/// Waits (bounded) for the first event `wanted` accepts. Fails on a problem event.
async fn wait_for(
    messenger: &Messenger,
    what: &str,
    mut wanted: impl FnMut(&MessengerEvent) -> bool,
) -> MessengerEvent {
    for _ in 0..10_000 {
        let Some(event) = messenger.next_event_within(EXPECT).await else {
            panic!("waited in vain for {what}");
        };
        if let MessengerEvent::Problem(error) = &event {
            panic!("problem while waiting for {what}: {error}");
        }
        if wanted(&event) {
            return event;
        }
    }
    panic!("too many events while waiting for {what}");
}

/// Alice invites Bob; both connected.
async fn connected(alice: &Messenger, bob: &Messenger) -> (ContactId, ContactId) {
    let invitation = alice.invite("bob", None).await.unwrap();
    let accepted = bob.accept(&invitation.link, "alice").await.unwrap();
    assert_eq!(accepted.status, MessageStatus::Sent);
    let bob_at_alice = invitation.contact;
    wait_for(
        alice,
        "bob connected",
        |e| matches!(e, MessengerEvent::Connected { contact } if *contact == bob_at_alice),
    )
    .await;
    let alice_at_bob = accepted.contact;
    wait_for(
        bob,
        "alice connected",
        |e| matches!(e, MessengerEvent::Connected { contact } if *contact == alice_at_bob),
    )
    .await;
    (bob_at_alice, alice_at_bob)
}

/// Two profiles on one relay, connected.
struct Pair {
    _relay: TestRelay,
    dir: tempfile::TempDir,
    alice: Messenger,
    bob: Messenger,
    /// Bob, as Alice knows him.
    bob_id: ContactId,
    /// Alice, as Bob knows her.
    alice_id: ContactId,
}

impl Pair {
    /// Alice, Bob, Bob's id at Alice, Alice's id at Bob.
    fn parts(&self) -> (&Messenger, &Messenger, ContactId, ContactId) {
        (&self.alice, &self.bob, self.bob_id, self.alice_id)
    }
}

async fn pair() -> Pair {
    let relay = TestRelay::start(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let alice = open_new(&dir.path().join("alice"), &relay, None).await;
    let bob = open_new(&dir.path().join("bob"), &relay, None).await;
    let (bob_id, alice_id) = connected(&alice, &bob).await;
    Pair {
        _relay: relay,
        dir,
        alice,
        bob,
        bob_id,
        alice_id,
    }
}

fn text_of(event: &MessengerEvent) -> Option<(ContactId, String)> {
    match event {
        MessengerEvent::Message { contact, text, .. } => Some((*contact, text.to_string())),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_sends_while_another_waits_for_events_on_the_same_handle() {
    tokio::time::timeout(LIMIT, async {
        let pair = pair().await;
        let (alice, bob, bob_id, alice_id) = pair.parts();

        // Bob's listener holds `next_event` the whole time; Bob sends from this task.
        let listener = bob.clone();
        let received = tokio::spawn(async move {
            let mut texts = Vec::new();
            for _ in 0..1000 {
                if texts.len() == 5 {
                    break;
                }
                match listener.next_event_within(EXPECT).await {
                    Some(event) => texts.extend(text_of(&event)),
                    None => break,
                }
            }
            texts
        });
        // Let the listener start waiting first (a yield, not a timing assumption:
        // the sends below work whether or not it waits yet).
        tokio::task::yield_now().await;
        for i in 0..5 {
            let report = bob
                .send_text(alice_id, &format!("from bob {i}"))
                .await
                .unwrap();
            assert_eq!(report.status, MessageStatus::Sent);
            alice
                .send_text(bob_id, &format!("from alice {i}"))
                .await
                .unwrap();
        }
        let texts = received.await.unwrap();
        let expected: Vec<(ContactId, String)> = (0..5)
            .map(|i| (alice_id, format!("from alice {i}")))
            .collect();
        assert_eq!(texts, expected, "Bob got Alice's texts, in order, once");
        for i in 0..5 {
            let event = wait_for(alice, "a text from bob", |e| text_of(e).is_some()).await;
            assert_eq!(text_of(&event), Some((bob_id, format!("from bob {i}"))));
        }
        // History by id; the ids are stable and name the right contact.
        let history = alice.history(bob_id).await.unwrap();
        assert_eq!(history.len(), 10);
        let contacts = alice.contacts().await.unwrap();
        assert_eq!(contacts.len(), 1);
        assert_eq!(contacts[0].id, bob_id);
        assert_eq!(contacts[0].status, ContactStatus::Connected);
        // Verify by safety number: both sides see the same digits.
        let number = alice.safety_number(bob_id).await.unwrap();
        assert_eq!(bob.safety_number(alice_id).await.unwrap(), number);
        let wrong = alice.verify(bob_id, Some("1".repeat(number.len()))).await;
        assert_eq!(wrong.unwrap_err().kind(), ErrorKind::SafetyNumberMismatch);
        alice.verify(bob_id, Some(number)).await.unwrap();
        assert!(alice.contacts().await.unwrap()[0].verified);
        alice.close().await;
        bob.close().await;
        assert_eq!(
            alice.contacts().await.unwrap_err().kind(),
            ErrorKind::Closed
        );
    })
    .await
    .expect("the test took too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_profile_locks_and_what_came_meanwhile_arrives_after_unlock() {
    tokio::time::timeout(LIMIT, async {
        let pair = pair().await;
        let bob_dir = pair.dir.path().join("bob");
        let (alice, bob, bob_id, alice_id) = pair.parts();

        // Bob's profile locks after 1 s without activity.
        bob.set_lock_after(Some(Duration::from_secs(1)))
            .await
            .unwrap();
        wait_for(bob, "the lock", |e| matches!(e, MessengerEvent::Locked)).await;
        assert!(bob.is_locked());
        assert_eq!(bob.contacts().await.unwrap_err().kind(), ErrorKind::Locked);
        // Alice writes while Bob is locked (offline for the relay).
        alice
            .send_text(bob_id, "while you were away")
            .await
            .unwrap();
        let wrong = bob.unlock(credentials("not it")).await.unwrap_err();
        assert_eq!(wrong.kind(), ErrorKind::WrongPassphrase);
        bob.set_lock_after(None).await.unwrap();
        bob.unlock(credentials("real passphrase")).await.unwrap();
        wait_for(bob, "the unlock", |e| matches!(e, MessengerEvent::Unlocked)).await;
        let event = wait_for(bob, "the text", |e| text_of(e).is_some()).await;
        assert_eq!(
            text_of(&event),
            Some((alice_id, "while you were away".to_owned()))
        );

        // Locked again by hand; the duress passphrase opens the decoy instead.
        bob.lock().await.unwrap();
        bob.unlock(credentials("duress passphrase")).await.unwrap();
        assert!(
            bob.contacts().await.unwrap().is_empty(),
            "the decoy knows nobody"
        );
        assert_eq!(
            bob.history(alice_id).await.unwrap_err().kind(),
            ErrorKind::NoSuchContact
        );

        // The panic control: the last event is Wiped, then the stream ends.
        bob.panic_wipe().await.unwrap();
        let mut last = None;
        while let Some(event) = bob.next_event_within(EXPECT).await {
            last = Some(event);
        }
        assert!(matches!(last, Some(MessengerEvent::Wiped)), "{last:?}");
        assert_eq!(bob.contacts().await.unwrap_err().kind(), ErrorKind::Wiped);
        let reopened = Messenger::open(
            &bob_dir,
            credentials("real passphrase"),
            messenger_options(None),
        )
        .await;
        let kind = reopened.unwrap_err().kind();
        assert!(
            matches!(kind, ErrorKind::NoProfile | ErrorKind::WrongPassphrase),
            "{kind:?}"
        );
        alice.close().await;
    })
    .await
    .expect("the test took too long");
}

const THOUSAND: usize = 1000;

/// 1,000 texts in a row from Alice while Bob's listener reads them as they come and
/// Alice's own listener takes Bob's receipts, all on shared handles: Bob gets every one
/// once, in order, and so does his history; every one ends `delivered` in Alice's. The
/// relay has its default queue quota (256), so a reader that falls behind makes the
/// writer meet `ERR QUOTA`, which must only delay messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_arrive_complete_in_order_once() {
    tokio::time::timeout(LIMIT, async {
        let pair = pair().await;
        let (alice, bob, bob_id, alice_id) = pair.parts();

        let reader = {
            let bob = bob.clone();
            tokio::spawn(async move {
                let mut texts = Vec::with_capacity(THOUSAND);
                for _ in 0..THOUSAND * 4 + 100 {
                    if texts.len() == THOUSAND {
                        break;
                    }
                    let Some(event) = bob.next_event_within(EXPECT).await else {
                        break;
                    };
                    match event {
                        MessengerEvent::Message {
                            contact, id, text, ..
                        } if contact == alice_id => texts.push((id, text.to_string())),
                        MessengerEvent::Dropped { reason, .. } => panic!("dropped: {reason}"),
                        MessengerEvent::Problem(error) => panic!("problem: {error}"),
                        _ => {}
                    }
                }
                texts
            })
        };
        let receipts = {
            let alice = alice.clone();
            tokio::spawn(async move {
                let mut delivered = std::collections::HashSet::new();
                for _ in 0..THOUSAND * 8 {
                    if delivered.len() == THOUSAND {
                        break;
                    }
                    match alice.next_event_within(EXPECT).await {
                        Some(MessengerEvent::Status {
                            id,
                            status: MessageStatus::Delivered,
                            ..
                        }) => {
                            delivered.insert(id);
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
                delivered
            })
        };
        let mut sent = Vec::with_capacity(THOUSAND);
        for i in 0..THOUSAND {
            let text = format!("message {i:04} of a long conversation");
            let report = alice.send_text(bob_id, &text).await.unwrap();
            assert_ne!(report.status, MessageStatus::Failed);
            sent.push((report.id, text));
        }
        let received = reader.await.unwrap();
        assert_eq!(received.len(), THOUSAND, "texts missing");
        assert!(
            received == sent,
            "Bob's texts differ from Alice's, in order"
        );
        let delivered = receipts.await.unwrap();
        assert_eq!(delivered.len(), THOUSAND, "receipts missing");
        let history = bob.history(alice_id).await.unwrap();
        let got: Vec<_> = history
            .iter()
            .map(|e| (e.id, e.text().unwrap_or_default().to_owned()))
            .collect();
        assert!(got == sent, "Bob's history differs from what was sent");
        let outgoing = alice.history(bob_id).await.unwrap();
        assert_eq!(outgoing.len(), THOUSAND);
        assert!(
            outgoing
                .iter()
                .all(|e| e.status == MessageStatus::Delivered),
            "entries of Alice's history not delivered"
        );
        alice.close().await;
        bob.close().await;
    })
    .await
    .expect("the test took too long");
}
