//! End-to-end tests of the client agent (`passage_client::agent::Agent`, the layer
//! under the app-shaped `Messenger`, which `messenger.rs` tests) against real
//! `passage-relay` processes: a full queue, a relay restarted in the middle of a
//! conversation, and hostile envelopes from a peer played by hand with the crypto and
//! relay-link crates. Each needs the agent's explicit `sync`.
//!
//! Every wait is for an event, bounded by a count and by `EXPECT` per event; each
//! test is bounded as a whole by `LIMIT` (a guard against a hang, not a timing check).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use passage_client::agent::{
    Agent, AgentEvent, AgentOptions, Content, DEFAULT_INVITATION_TTL, Direction, DroppedReason,
    MessageId, MessageStatus,
};
use passage_client::relay::{Event, RelayLink, SenderCredentials};
use passage_client::vault::{Credentials, Passphrase};
use passage_crypto::{ENVELOPE_LEN, Identity, PendingInvitation, RatchetState};
use passage_e2e::{TestRelay, connect, options, rng};
use passage_transport::TransportMode;
use passage_wire::QueueAddress;

/// Upper bound for a whole test (a hang guard; each test normally takes seconds).
const LIMIT: Duration = Duration::from_secs(300);

/// How long to wait for an event that should come.
const EXPECT: Duration = Duration::from_secs(20);

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("the test took too long")
}

fn start(config: Option<&str>) -> TestRelay {
    TestRelay::start(config).unwrap_or_else(|e| panic!("{e}"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn credentials(passphrase: &str) -> Credentials {
    Credentials::new(Passphrase::from_bytes(passphrase.as_bytes().to_vec()))
}

fn agent_options(mode: TransportMode) -> AgentOptions {
    let mut agent = AgentOptions::default();
    agent.connect = options(mode);
    agent
}

/// A new profile in `dir` whose queues go to `relay` (Argon2id runs off the runtime).
async fn create(dir: &Path, relay: &TestRelay, mode: TransportMode) -> Agent {
    let dir = dir.to_owned();
    let relay = relay.address().clone();
    tokio::task::spawn_blocking(move || {
        Agent::create(
            dir,
            &credentials("a passphrase"),
            &relay,
            false,
            agent_options(mode),
        )
    })
    .await
    .unwrap()
    .unwrap()
}

/// Waits (bounded) for the first event that `wanted` accepts; returns the events that
/// came before it too. Fails on an `Error` event.
async fn wait_for(
    agent: &mut Agent,
    what: &str,
    mut wanted: impl FnMut(&AgentEvent) -> bool,
) -> Vec<AgentEvent> {
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        let Some(event) = agent.next_event(EXPECT).await else {
            panic!("waited in vain for {what}; got {seen:?}");
        };
        if let AgentEvent::Error(error) = &event {
            panic!("agent error while waiting for {what}: {error}");
        }
        let done = wanted(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
    panic!("too many events while waiting for {what}");
}

/// Alice invites Bob; both are connected once each has processed the other's first
/// message.
async fn connected_pair(dir: &Path, relay: &TestRelay, mode: TransportMode) -> (Agent, Agent) {
    let mut alice = create(&dir.join("alice"), relay, mode).await;
    let mut bob = create(&dir.join("bob"), relay, mode).await;
    let link = alice
        .invite("bob", None, DEFAULT_INVITATION_TTL)
        .await
        .unwrap();
    assert_eq!(
        bob.accept(&link, "alice").await.unwrap(),
        MessageStatus::Sent
    );
    alice.sync().await;
    wait_for(
        &mut alice,
        "bob connected",
        |e| matches!(e, AgentEvent::Connected { contact } if contact == "bob"),
    )
    .await;
    bob.sync().await;
    wait_for(
        &mut bob,
        "alice connected",
        |e| matches!(e, AgentEvent::Connected { contact } if contact == "alice"),
    )
    .await;
    (alice, bob)
}

fn delivered_ids(events: &[AgentEvent]) -> HashSet<MessageId> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Status {
                id,
                status: MessageStatus::Delivered,
                ..
            } => Some(*id),
            _ => None,
        })
        .collect()
}

/// Receives texts until `count` have come; returns (id, text) in arrival order and
/// fails on any dropped envelope or error.
async fn receive_texts(agent: &mut Agent, count: usize) -> Vec<(MessageId, String)> {
    let mut texts = Vec::with_capacity(count);
    for _ in 0..count * 4 + 100 {
        if texts.len() == count {
            break;
        }
        let Some(event) = agent.next_event(EXPECT).await else {
            panic!("only {} of {count} texts came", texts.len());
        };
        match event {
            AgentEvent::Message { id, text, .. } => texts.push((id, text.to_string())),
            AgentEvent::Dropped { reason, .. } => panic!("an envelope was dropped: {reason}"),
            AgentEvent::Error(error) => panic!("agent error: {error}"),
            _ => {}
        }
    }
    assert_eq!(texts.len(), count);
    texts
}

/// Checks one side's history of a conversation: `expected` (id, text) in this order,
/// each once, all in `direction` with `status`.
fn check_history(
    agent: &Agent,
    name: &str,
    direction: Direction,
    status: MessageStatus,
    expected: &[(MessageId, String)],
) {
    let history: Vec<_> = agent
        .history(name)
        .unwrap()
        .into_iter()
        .filter(|e| e.direction == direction)
        .collect();
    let got: Vec<(MessageId, String)> = history
        .iter()
        .map(|e| (e.id, e.text().expect("a text").to_owned()))
        .collect();
    assert_eq!(got.len(), expected.len());
    assert!(
        got == expected,
        "history differs from what was sent, in order"
    );
    let not_in_status = history.iter().filter(|e| e.status != status).count();
    assert_eq!(not_in_status, 0, "entries not {status:?}");
}

/// Alice writes 300 texts while Bob does not read: the relay's queue quota (256)
/// refuses the last 44, which wait in Alice's vault (`queued`). Bob reads, Alice
/// syncs, and Bob has all 300 once and in order; his receipts, which met the same
/// quota on Alice's queue, all come back too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_delays_messages_but_keeps_them_in_order() {
    const QUOTA: usize = 256;
    const COUNT: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let relay = start(None);
    bounded(async {
        let (mut alice, mut bob) = connected_pair(dir.path(), &relay, TransportMode::Tcp).await;
        let mut sent = Vec::new();
        let mut queued = 0;
        for i in 0..COUNT {
            let text = format!("into a full queue {i:03}");
            let report = alice.send_text("bob", &text).await.unwrap();
            assert_ne!(report.status, MessageStatus::Failed);
            queued += usize::from(report.status == MessageStatus::Queued);
            sent.push((report.id, text));
        }
        assert_eq!(queued, COUNT - QUOTA, "the quota did not apply");
        let mut received = receive_texts(&mut bob, QUOTA).await;
        let report = alice.sync().await;
        assert_eq!(report.queued, 0);
        received.extend(receive_texts(&mut bob, COUNT - QUOTA).await);
        assert!(
            received == sent,
            "Bob's texts differ from Alice's, in order"
        );
        check_history(
            &bob,
            "alice",
            Direction::Incoming,
            MessageStatus::Received,
            &sent,
        );

        // Receipts: Alice reads what her queue holds, Bob sends what waited.
        let mut events = Vec::new();
        for round in 0..4 {
            for _ in 0..COUNT * 2 {
                match alice.next_event(Duration::from_secs(2)).await {
                    Some(event) => events.push(event),
                    None => break,
                }
            }
            if delivered_ids(&events).len() == COUNT {
                break;
            }
            assert!(round < 3, "receipts missing");
            bob.sync().await;
        }
        check_history(
            &alice,
            "bob",
            Direction::Outgoing,
            MessageStatus::Delivered,
            &sent,
        );
        alice.close().await;
        bob.close().await;
    })
    .await;
}

/// The relay is killed (SIGKILL) in the middle of a conversation, with messages stored
/// but not yet delivered, and restarted on its data directory and port; meanwhile
/// both sides write. Everything arrives once, in order, and every receipt comes back.
///
/// Over TCP only: with the relay down, a refused TCP connection fails at once, while
/// QUIC waits for its handshake timeout; that would only make the test slower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_restarts_mid_conversation_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = TestRelay::start_restartable(None).unwrap_or_else(|e| panic!("{e}"));
    bounded(async {
        let (mut alice, mut bob) = connected_pair(dir.path(), &relay, TransportMode::Tcp).await;
        let mut sent = Vec::new();
        for i in 0..10 {
            let text = format!("before the restart {i}");
            let report = alice.send_text("bob", &text).await.unwrap();
            assert_eq!(report.status, MessageStatus::Sent);
            sent.push((report.id, text));
        }
        // Bob reads half; the rest stays stored at the relay.
        let mut received = receive_texts(&mut bob, 5).await;

        relay.process.kill().unwrap();
        let mut bob_sent = Vec::new();
        for i in 0..3 {
            let text = format!("written while the relay is down {i}");
            let report = alice.send_text("bob", &text).await.unwrap();
            assert_eq!(report.status, MessageStatus::Queued);
            sent.push((report.id, text));
        }
        let report = bob.send_text("alice", "Bob, while down").await.unwrap();
        assert_eq!(report.status, MessageStatus::Queued);
        bob_sent.push((report.id, "Bob, while down".to_owned()));
        let report = alice.sync().await;
        assert_eq!(report.queued, 3);
        assert!(report.unreachable_relays > 0);

        relay.process.restart_same_port().unwrap();
        // Both reconnect on their own as they wait for events.
        alice.sync().await;
        received.extend(receive_texts(&mut bob, sent.len() - 5).await);
        assert!(received == sent, "Bob's texts differ from Alice's, in order");
        let mut events = wait_for(&mut alice, "Bob's text", |e| {
            matches!(e, AgentEvent::Message { text, .. } if text.as_str() == "Bob, while down")
        })
        .await;
        for _ in 0..1000 {
            if delivered_ids(&events).len() == sent.len() {
                break;
            }
            match alice.next_event(EXPECT).await {
                Some(event) => events.push(event),
                None => break,
            }
        }
        assert_eq!(delivered_ids(&events).len(), sent.len(), "receipts missing");
        check_history(
            &alice,
            "bob",
            Direction::Outgoing,
            MessageStatus::Delivered,
            &sent,
        );
        check_history(
            &bob,
            "alice",
            Direction::Incoming,
            MessageStatus::Received,
            &sent,
        );
        check_history(
            &alice,
            "bob",
            Direction::Incoming,
            MessageStatus::Received,
            &bob_sent,
        );
        wait_for(&mut bob, "the receipt of Bob's text", |e| {
            matches!(e, AgentEvent::Status { id, status: MessageStatus::Delivered, .. } if *id == bob_sent[0].0)
        })
        .await;
        alice.close().await;
        bob.close().await;
    })
    .await;
}

/// The inviter, played by hand: the crypto crate's handshake and ratchet, the client's
/// relay link, our own sender credentials.
struct HandPlayed {
    link: RelayLink,
    queue: passage_client::relay::QueueCredentials,
    ratchet: RatchetState,
    their_queue: QueueAddress,
    sender: SenderCredentials,
}

impl HandPlayed {
    /// Creates a queue and an invitation; `accept` runs the acceptor's side; then
    /// completes the handshake and sends the welcome.
    async fn invite_and_complete(
        relay: &TestRelay,
        accept: impl AsyncFnOnce(String),
    ) -> HandPlayed {
        let mut link = connect(relay.address(), TransportMode::Tcp).await.unwrap();
        let queue = link.create_queue(None).await.unwrap();
        link.subscribe(&queue).await.unwrap();
        let address = QueueAddress {
            relay: relay.address().clone(),
            sender_id: queue.sender_id(),
        };
        let pending = PendingInvitation::create(
            Identity::generate(&mut rng()),
            &address.encode(),
            now() + 3600,
            &mut rng(),
        )
        .unwrap();
        accept(pending.invitation().to_link()).await;

        let Some(Event::Message {
            msg_id,
            timestamp,
            body,
            ..
        }) = tokio::time::timeout(EXPECT, link.next_event())
            .await
            .unwrap()
        else {
            panic!("no accept message came");
        };
        link.ack(&queue, msg_id).await.unwrap();
        let completed = pending
            .complete(&body[..], timestamp, now(), &mut rng())
            .map_err(|r| r.error)
            .unwrap();
        let Content::Hello { queue: their_queue } =
            Content::decode(&completed.first_plaintext).unwrap()
        else {
            panic!("the accept does not carry a hello");
        };
        assert_eq!(&their_queue.relay, relay.address());
        let mut played = HandPlayed {
            link,
            queue,
            ratchet: completed.state,
            their_queue,
            sender: SenderCredentials::generate(&mut rng()),
        };
        let welcome = played.seal(&Content::Welcome);
        played.send(&welcome).await;
        played
    }

    fn seal(&mut self, content: &Content) -> Box<[u8; ENVELOPE_LEN]> {
        let envelope = self
            .ratchet
            .encrypt(&content.encode().unwrap(), &mut rng())
            .unwrap();
        Box::new(
            envelope
                .try_into()
                .expect("an envelope is ENVELOPE_LEN bytes"),
        )
    }

    async fn send(&mut self, envelope: &[u8; ENVELOPE_LEN]) {
        self.link
            .send(self.their_queue.sender_id, &self.sender, envelope)
            .await
            .unwrap();
        self.sender.mark_key_fixed();
    }

    fn text(text: &str) -> (MessageId, Content) {
        let id = MessageId::generate(&mut rng());
        let content = Content::Text {
            id,
            sent_at: now(),
            timer_secs: 0,
            text: text.to_owned(),
            urgent: false,
        };
        (id, content)
    }

    /// The next content on our queue, decrypted and acknowledged.
    async fn receive(&mut self) -> Content {
        let Some(Event::Message { msg_id, body, .. }) =
            tokio::time::timeout(EXPECT, self.link.next_event())
                .await
                .unwrap()
        else {
            panic!("nothing came on the hand-played queue");
        };
        self.link.ack(&self.queue, msg_id).await.unwrap();
        let plaintext = self.ratchet.decrypt(&body[..], now(), &mut rng()).unwrap();
        Content::decode(&plaintext).unwrap()
    }
}

/// Bob's agent receives from a hand-played Alice: a good text, a replay of it, a
/// tampered envelope, another good text. The two bad ones are dropped with the right
/// reason, each good one arrives once, and the conversation goes on: Bob's receipts
/// and reply decrypt on Alice's side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_replayed_envelopes_are_dropped_and_the_conversation_continues() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(None);
    bounded(async {
        let mut bob = create(&dir.path().join("bob"), &relay, TransportMode::Tcp).await;
        let mut alice = HandPlayed::invite_and_complete(&relay, async |link| {
            assert_eq!(
                bob.accept(&link, "alice").await.unwrap(),
                MessageStatus::Sent
            );
        })
        .await;
        bob.sync().await;
        wait_for(&mut bob, "alice connected", |e| {
            matches!(e, AgentEvent::Connected { contact } if contact == "alice")
        })
        .await;

        let (first_id, first) = HandPlayed::text("the first good text");
        let first = alice.seal(&first);
        alice.send(&first).await;
        alice.send(&first).await; // the replay: the same bytes again
        let (_, bad) = HandPlayed::text("this one is altered on the way");
        let mut tampered = alice.seal(&bad);
        for i in [100, ENVELOPE_LEN / 2, ENVELOPE_LEN - 1] {
            tampered[i] ^= 0x5a;
        }
        alice.send(&tampered).await;
        let (second_id, second) = HandPlayed::text("the second good text");
        let second = alice.seal(&second);
        alice.send(&second).await;

        let events = wait_for(&mut bob, "the second text", |e| {
            matches!(e, AgentEvent::Message { id, .. } if *id == second_id)
        })
        .await;
        let mut texts = Vec::new();
        let mut dropped = Vec::new();
        for event in &events {
            match event {
                AgentEvent::Message {
                    contact, id, text, ..
                } => {
                    assert_eq!(contact, "alice");
                    texts.push((*id, text.to_string()));
                }
                AgentEvent::Dropped { contact, reason } => {
                    assert_eq!(contact.as_deref(), Some("alice"));
                    dropped.push(*reason);
                }
                _ => {}
            }
        }
        assert_eq!(
            texts,
            vec![
                (first_id, "the first good text".to_owned()),
                (second_id, "the second good text".to_owned())
            ]
        );
        assert_eq!(
            dropped,
            vec![DroppedReason::Duplicate, DroppedReason::Undecryptable]
        );
        let history = bob.history("alice").unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].id, first_id);
        assert_eq!(history[1].id, second_id);

        // Bob answers; Alice decrypts his receipts (one per good text) and his reply.
        let reply = bob.send_text("alice", "Bob's reply").await.unwrap();
        assert_eq!(reply.status, MessageStatus::Sent);
        let mut receipts = Vec::new();
        let mut replies = Vec::new();
        for _ in 0..10 {
            if receipts.len() == 2 && !replies.is_empty() {
                break;
            }
            match alice.receive().await {
                Content::Receipt { ids } => receipts.extend(ids),
                Content::Text { id, text, .. } => replies.push((id, text)),
                other => panic!("unexpected content {other:?}"),
            }
        }
        assert_eq!(receipts, vec![first_id, second_id]);
        assert_eq!(replies, vec![(reply.id, "Bob's reply".to_owned())]);
        // And Bob sees his reply delivered once Alice's receipt arrives.
        let receipt = alice.seal(&Content::Receipt {
            ids: vec![reply.id],
        });
        alice.send(&receipt).await;
        wait_for(&mut bob, "the receipt of the reply", |e| {
            matches!(e, AgentEvent::Status { id, status: MessageStatus::Delivered, .. } if *id == reply.id)
        })
        .await;
        bob.close().await;
        alice.link.close().await.unwrap();
    })
    .await;
}
