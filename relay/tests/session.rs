//! The relay's protocol core on a virtual clock, without sockets: real wire frames in,
//! real blocks out, writes applied to an in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_relay::limits::Limits;
use passage_relay::metrics::Metrics;
use passage_relay::session::{Action, CloseReason, DELIVERY_WINDOW, Now, ServiceConfig, Session};
use passage_relay::store::{MemoryStore, Store};
use passage_wire::{
    AuthKey, AuthRole, Block, ChannelBinding, ClientHello, Command, CorrId, DeliveryKey, ErrorCode,
    FrameDecoder, FrameEncoder, MsgId, NewQueue, QueuePassword, RecipientId, RelayHello, Reply,
    SUPPORTED_VERSIONS, SendMessage, SenderId, open_delivery,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const T0: Now = Now {
    unix_secs: 1_800_000_000,
    mono_ms: 0,
};

/// One client connection driven by hand against a session.
struct Client {
    session: Session,
    binding: ChannelBinding,
    relay_key: DhPublic,
    enc: FrameEncoder,
    dec: FrameDecoder,
    replies: Vec<Reply>,
    closed: Option<CloseReason>,
    subscribed: Vec<RecipientId>,
    rng: StdRng,
    corr: u64,
}

struct Queue {
    recipient_id: RecipientId,
    sender_id: SenderId,
    auth: DhSecret,
    delivery: DeliveryKey,
}

fn config(limits: Limits, password: Option<&[u8]>) -> Arc<ServiceConfig> {
    Arc::new(ServiceConfig {
        limits,
        password: password.map(|p| QueuePassword::new(p).unwrap()),
        queue_budget: None,
    })
}

impl Client {
    fn connect(config: &Arc<ServiceConfig>, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let binding = ChannelBinding::from_bytes([seed as u8; 32]);
        let session = Session::new(
            Arc::clone(config),
            Arc::new(Metrics::default()),
            ChannelBinding::from_bytes(*binding.as_bytes()),
            T0,
            &mut rng,
        );
        let mut client = Self {
            session,
            binding,
            relay_key: DhPublic::from_bytes([0; 32]),
            enc: FrameEncoder::new(),
            dec: FrameDecoder::new(),
            replies: vec![],
            closed: None,
            subscribed: vec![],
            rng,
            corr: 0,
        };
        client.pump_out();
        let hello = RelayHello::decode(&client.take_frame()).unwrap();
        hello.negotiate(SUPPORTED_VERSIONS).unwrap();
        client.relay_key = hello.session_key;
        client
    }

    fn hello(&mut self, store: &dyn Store) {
        self.send_frame(
            &ClientHello::new(SUPPORTED_VERSIONS_MAX()).encode(),
            store,
            T0,
        );
    }

    fn take_frame(&mut self) -> Vec<u8> {
        self.dec.poll_frame().expect("a frame")
    }

    fn send_frame(&mut self, frame: &[u8], store: &dyn Store, now: Now) {
        self.enc.push_frame(frame).unwrap();
        self.enc.flush();
        while let Some(block) = self.enc.poll_block() {
            self.session.handle_block(&block, store, now, &mut self.rng);
            self.run(store, now);
        }
    }

    fn send_raw_block(&mut self, block: &Block, store: &dyn Store) {
        self.session.handle_block(block, store, T0, &mut self.rng);
        self.run(store, T0);
    }

    /// Carries out actions (writes applied at once) until the session is idle.
    fn run(&mut self, store: &dyn Store, now: Now) {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Write { token, op } => {
                    let result = store.commit(vec![*op]).pop().unwrap();
                    self.session.handle_write(token, result, store, now);
                }
                Action::Subscribe(q) => self.subscribed.push(q),
                Action::Unsubscribe(q) => self.subscribed.retain(|x| *x != q),
                Action::Close(reason) => self.closed = Some(reason),
            }
        }
        self.pump_out();
        while let Some(frame) = self.dec.poll_frame() {
            self.replies.push(Reply::decode(&frame).unwrap());
        }
    }

    fn pump_out(&mut self) {
        while let Some(block) = self.session.poll_block() {
            self.dec.handle_block(&block).unwrap();
        }
    }

    fn corr(&mut self) -> CorrId {
        self.corr += 1;
        CorrId::from_bytes(self.corr.to_be_bytes())
    }

    fn command(&mut self, command: Command, key: Option<&AuthKey>, store: &dyn Store) -> Reply {
        let corr = self.corr();
        let frame = command.encode(corr, key).unwrap();
        self.replies.clear();
        self.send_frame(&frame, store, T0);
        self.replies
            .iter()
            .find(|r| r.corr_id() == Some(corr))
            .cloned()
            .expect("a reply")
    }

    fn key(&self, role: AuthRole, secret: &DhSecret) -> AuthKey {
        AuthKey::derive(role, secret, &self.relay_key, &self.binding).unwrap()
    }

    fn new_queue(
        &mut self,
        store: &dyn Store,
        password: Option<&[u8]>,
    ) -> Result<Queue, ErrorCode> {
        let auth = DhSecret::generate(&mut self.rng);
        let dh = DhSecret::generate(&mut self.rng);
        let new = Command::New(NewQueue {
            recipient_auth_key: auth.public_key(),
            recipient_dh_key: dh.public_key(),
            password: password.map(|p| QueuePassword::new(p).unwrap()),
        });
        let key = self.key(AuthRole::Recipient, &auth);
        match self.command(new, Some(&key), store) {
            Reply::Ids { ids, .. } => Ok(Queue {
                recipient_id: ids.recipient_id,
                sender_id: ids.sender_id,
                delivery: DeliveryKey::for_recipient(&dh, &ids.relay_dh_key).unwrap(),
                auth,
            }),
            Reply::Err { code, .. } => Err(code),
            other => panic!("{other:?}"),
        }
    }

    fn send(
        &mut self,
        q: &Queue,
        sender: &DhSecret,
        first: bool,
        body: u8,
        store: &dyn Store,
    ) -> Reply {
        let cmd = Command::Send(SendMessage {
            sender_id: q.sender_id,
            sender_auth_key: first.then(|| sender.public_key()),
            body: Box::new([body; ENVELOPE_LEN]),
        });
        let key = self.key(AuthRole::Sender, sender);
        self.command(cmd, Some(&key), store)
    }

    fn recipient(&mut self, q: &Queue, command: Command, store: &dyn Store) -> Reply {
        let key = self.key(AuthRole::Recipient, &q.auth);
        self.command(command, Some(&key), store)
    }

    fn messages(&self, q: &Queue) -> Vec<(MsgId, u8)> {
        self.replies
            .iter()
            .filter_map(|r| match r {
                Reply::Msg(d) if d.recipient_id == q.recipient_id => {
                    Some((d.msg_id, open_delivery(&q.delivery, d).unwrap()[0]))
                }
                _ => None,
            })
            .collect()
    }
}

#[allow(non_snake_case)]
fn SUPPORTED_VERSIONS_MAX() -> passage_wire::ProtocolVersion {
    RelayHello {
        versions: SUPPORTED_VERSIONS,
        session_key: DhPublic::from_bytes([9; 32]),
    }
    .negotiate(SUPPORTED_VERSIONS)
    .unwrap()
}

fn is_err(reply: &Reply, want: ErrorCode) -> bool {
    matches!(reply, Reply::Err { code, .. } if *code == want)
}

#[test]
fn queue_lifecycle_with_a_delivery_window() {
    let store = MemoryStore::new();
    let cfg = config(Limits::default(), None);
    let mut recipient = Client::connect(&cfg, 1);
    recipient.hello(&store);
    let mut sender = Client::connect(&cfg, 2);
    sender.hello(&store);
    assert!(matches!(
        recipient.command(Command::Ping, None, &store),
        Reply::Pong { .. }
    ));
    let q = recipient.new_queue(&store, None).unwrap();
    let sender_key = DhSecret::generate(&mut sender.rng);
    for (i, first) in [(1u8, true), (2, false), (3, false)] {
        assert!(matches!(
            sender.send(&q, &sender_key, first, i, &store),
            Reply::Ok { .. }
        ));
    }
    // SUB delivers every message the window holds, in order; ACKs in any order
    // delete each, and deliver nothing twice.
    let reply = recipient.recipient(&q, Command::Sub(q.recipient_id), &store);
    assert!(matches!(reply, Reply::Ok { .. }));
    assert_eq!(recipient.subscribed, vec![q.recipient_id]);
    let msgs = recipient.messages(&q);
    assert_eq!(msgs.iter().map(|m| m.1).collect::<Vec<_>>(), vec![1, 2, 3]);
    for at in [1, 0, 2] {
        let reply = recipient.recipient(
            &q,
            Command::Ack {
                recipient_id: q.recipient_id,
                msg_id: msgs[at].0,
            },
            &store,
        );
        assert!(matches!(reply, Reply::Ok { .. }));
        assert!(recipient.messages(&q).is_empty());
    }
    assert!(is_err(
        &recipient.recipient(&q, Command::Get(q.recipient_id), &store),
        ErrorCode::NoMsg
    ));
    // A message arriving for a subscriber is pushed when the driver notifies it.
    sender.send(&q, &sender_key, false, 4, &store);
    recipient.replies.clear();
    recipient.session.handle_notify(q.recipient_id, &store, T0);
    recipient.run(&store, T0);
    assert_eq!(
        recipient
            .messages(&q)
            .iter()
            .map(|m| m.1)
            .collect::<Vec<_>>(),
        vec![4]
    );
    // DEL: gone for everyone; the sender gets the same AUTH as for a queue never made.
    assert!(matches!(
        recipient.recipient(&q, Command::Del(q.recipient_id), &store),
        Reply::Ok { .. }
    ));
    assert!(recipient.subscribed.is_empty());
    assert!(is_err(
        &sender.send(&q, &sender_key, false, 5, &store),
        ErrorCode::Auth
    ));
}

#[test]
fn the_window_bounds_unacknowledged_messages_and_a_new_sub_redelivers_them() {
    let store = MemoryStore::new();
    let cfg = config(Limits::default(), None);
    let mut c = Client::connect(&cfg, 40);
    c.hello(&store);
    let q = c.new_queue(&store, None).unwrap();
    let s = DhSecret::generate(&mut c.rng);
    let total = DELIVERY_WINDOW + 4;
    for i in 0..total {
        assert!(matches!(
            c.send(&q, &s, i == 0, i as u8, &store),
            Reply::Ok { .. }
        ));
    }
    c.recipient(&q, Command::Sub(q.recipient_id), &store);
    let window = c.messages(&q);
    let numbers = |m: &[(MsgId, u8)]| m.iter().map(|m| m.1).collect::<Vec<_>>();
    assert_eq!(
        numbers(&window),
        (0..DELIVERY_WINDOW as u8).collect::<Vec<_>>()
    );
    // A wake-up with a full window delivers nothing.
    c.replies.clear();
    c.session.handle_notify(q.recipient_id, &store, T0);
    c.run(&store, T0);
    assert!(c.messages(&q).is_empty());
    // An ACK in the middle frees one slot: exactly the next message follows.
    let ack = |msg_id| Command::Ack {
        recipient_id: q.recipient_id,
        msg_id,
    };
    c.recipient(&q, ack(window[5].0), &store);
    assert_eq!(numbers(&c.messages(&q)), vec![DELIVERY_WINDOW as u8]);
    // Acknowledging an unknown id frees nothing.
    let reply = c.recipient(&q, ack(MsgId::from_bytes([7; 24])), &store);
    assert!(is_err(&reply, ErrorCode::NoMsg));
    assert!(c.messages(&q).is_empty());
    // A new connection's SUB (the old one dropped without acknowledging) delivers
    // the unacknowledged ones again, in order, the acknowledged one not.
    let mut again = Client::connect(&cfg, 41);
    again.hello(&store);
    again.recipient(&q, Command::Sub(q.recipient_id), &store);
    let expected: Vec<u8> = (0..=DELIVERY_WINDOW as u8).filter(|n| *n != 5).collect();
    assert_eq!(numbers(&again.messages(&q)), expected);
    // Draining the rest, acknowledging each as it comes.
    let mut pending: std::collections::VecDeque<_> = again.messages(&q).into();
    let mut got = Vec::new();
    while let Some((msg_id, n)) = pending.pop_front() {
        got.push(n);
        assert!(matches!(
            again.recipient(&q, ack(msg_id), &store),
            Reply::Ok { .. }
        ));
        pending.extend(again.messages(&q));
    }
    let all: Vec<u8> = (0..total as u8).filter(|n| *n != 5).collect();
    assert_eq!(got, all);
    assert_eq!(store.message_count(&q.recipient_id).unwrap(), 0);
}

#[test]
fn a_full_backlog_holds_deliveries_until_resumed() {
    let store = MemoryStore::new();
    let cfg = config(
        Limits {
            max_backlog_blocks: 3,
            ..Limits::default()
        },
        None,
    );
    let mut c = Client::connect(&cfg, 42);
    c.hello(&store);
    let q = c.new_queue(&store, None).unwrap();
    let s = DhSecret::generate(&mut c.rng);
    for i in 0..10u8 {
        c.send(&q, &s, i == 0, i, &store);
    }
    // Deliver into the backlog without sending it: at most 3 blocks wait.
    let key = c.key(AuthRole::Recipient, &q.auth);
    let corr = c.corr();
    let mut enc = FrameEncoder::new();
    enc.push_frame(
        &Command::Sub(q.recipient_id)
            .encode(corr, Some(&key))
            .unwrap(),
    )
    .unwrap();
    enc.flush();
    c.replies.clear();
    c.session
        .handle_block(&enc.poll_block().unwrap(), &store, T0, &mut c.rng);
    while let Some(action) = c.session.poll_action() {
        if let Action::Subscribe(q) = action {
            c.subscribed.push(q);
        }
    }
    let mut blocks = 0;
    while let Some(block) = c.session.poll_block() {
        blocks += 1;
        c.dec.handle_block(&block).unwrap();
    }
    assert!(blocks <= 4, "{blocks}");
    while let Some(frame) = c.dec.poll_frame() {
        c.replies.push(Reply::decode(&frame).unwrap());
    }
    let mut got: Vec<u8> = c.messages(&q).iter().map(|m| m.1).collect();
    assert!(got.len() < 10);
    // Sent: the rest follows, a backlog at a time, in order.
    while c.session.resume_deliveries(&store, T0) {
        c.replies.clear();
        c.run(&store, T0);
        got.extend(c.messages(&q).iter().map(|m| m.1));
    }
    assert_eq!(got, (0..10).collect::<Vec<u8>>());
}

#[test]
fn first_send_fixes_the_sender_key() {
    let store = MemoryStore::new();
    let cfg = config(Limits::default(), None);
    let mut c = Client::connect(&cfg, 3);
    c.hello(&store);
    let q = c.new_queue(&store, None).unwrap();
    let (a, b) = (
        DhSecret::generate(&mut c.rng),
        DhSecret::generate(&mut c.rng),
    );
    // Without a key and none fixed yet: refused.
    assert!(is_err(&c.send(&q, &a, false, 0, &store), ErrorCode::Auth));
    assert!(matches!(c.send(&q, &a, true, 1, &store), Reply::Ok { .. }));
    // Someone else who learned the sender id, with their own key: refused, both ways.
    assert!(is_err(&c.send(&q, &b, true, 2, &store), ErrorCode::Auth));
    assert!(is_err(&c.send(&q, &b, false, 2, &store), ErrorCode::Auth));
    // The fixed key keeps working, with or without repeating it.
    assert!(matches!(c.send(&q, &a, false, 3, &store), Reply::Ok { .. }));
    assert!(matches!(c.send(&q, &a, true, 4, &store), Reply::Ok { .. }));
    assert_eq!(store.message_count(&q.recipient_id).unwrap(), 3);
}

#[test]
fn commands_with_another_connections_binding_are_refused() {
    let store = MemoryStore::new();
    let cfg = config(Limits::default(), None);
    let mut a = Client::connect(&cfg, 4);
    a.hello(&store);
    let q = a.new_queue(&store, None).unwrap();
    let mut b = Client::connect(&cfg, 5);
    b.hello(&store);
    // A key derived for connection `a` (its relay key and binding) replayed on `b`.
    let stale = a.key(AuthRole::Recipient, &q.auth);
    let reply = b.command(Command::Sub(q.recipient_id), Some(&stale), &store);
    assert!(is_err(&reply, ErrorCode::Auth));
    assert!(b.subscribed.is_empty());
}

#[test]
fn missing_queue_and_wrong_key_answer_alike() {
    let store = MemoryStore::new();
    let cfg = config(Limits::default(), None);
    let mut c = Client::connect(&cfg, 6);
    c.hello(&store);
    let q = c.new_queue(&store, None).unwrap();
    let stranger = Queue {
        recipient_id: RecipientId::from_bytes([7; 24]),
        sender_id: SenderId::from_bytes([8; 24]),
        auth: DhSecret::generate(&mut c.rng),
        delivery: q.delivery.clone(),
    };
    let wrong_key = Queue {
        auth: DhSecret::generate(&mut c.rng),
        ..q
    };
    for q in [&stranger, &wrong_key, &stranger] {
        let reply = c.recipient(q, Command::Get(q.recipient_id), &store);
        assert!(is_err(&reply, ErrorCode::Auth), "{reply:?}");
    }
}

#[test]
fn password_quota_and_queue_limits() {
    let store = MemoryStore::new();
    let limits = Limits {
        queue_quota: 2,
        max_queues_per_connection: 2,
        ..Limits::default()
    };
    let cfg = config(limits, Some(b"ngo-secret"));
    let mut c = Client::connect(&cfg, 7);
    c.hello(&store);
    assert_eq!(c.new_queue(&store, None).err(), Some(ErrorCode::Auth));
    assert_eq!(
        c.new_queue(&store, Some(b"wrong")).err(),
        Some(ErrorCode::Auth)
    );
    let q = c.new_queue(&store, Some(b"ngo-secret")).unwrap();
    let _ = c.new_queue(&store, Some(b"ngo-secret")).unwrap();
    assert_eq!(
        c.new_queue(&store, Some(b"ngo-secret")).err(),
        Some(ErrorCode::RateLimit)
    );
    let s = DhSecret::generate(&mut c.rng);
    assert!(matches!(c.send(&q, &s, true, 1, &store), Reply::Ok { .. }));
    assert!(matches!(c.send(&q, &s, false, 2, &store), Reply::Ok { .. }));
    assert!(is_err(&c.send(&q, &s, false, 3, &store), ErrorCode::Quota));
    let msg = match c.recipient(&q, Command::Sub(q.recipient_id), &store) {
        Reply::Ok { .. } => c.messages(&q)[0].0,
        other => panic!("{other:?}"),
    };
    c.recipient(
        &q,
        Command::Ack {
            recipient_id: q.recipient_id,
            msg_id: msg,
        },
        &store,
    );
    assert!(matches!(c.send(&q, &s, false, 3, &store), Reply::Ok { .. }));
}

#[test]
fn expired_messages_are_not_delivered() {
    let store = MemoryStore::new();
    let cfg = config(
        Limits {
            retention_secs: 10,
            ..Limits::default()
        },
        None,
    );
    let mut c = Client::connect(&cfg, 8);
    c.hello(&store);
    let q = c.new_queue(&store, None).unwrap();
    let s = DhSecret::generate(&mut c.rng);
    c.send(&q, &s, true, 1, &store);
    let later = Now {
        unix_secs: T0.unix_secs + 11,
        mono_ms: 11_000,
    };
    let key = c.key(AuthRole::Recipient, &q.auth);
    let corr = c.corr();
    c.replies.clear();
    c.send_frame(
        &Command::Get(q.recipient_id)
            .encode(corr, Some(&key))
            .unwrap(),
        &store,
        later,
    );
    assert!(c.replies.iter().any(|r| is_err(r, ErrorCode::NoMsg)));
}

#[test]
fn subscription_takeover_says_end() {
    let store = MemoryStore::new();
    let cfg = config(Limits::default(), None);
    let mut a = Client::connect(&cfg, 9);
    a.hello(&store);
    let q = a.new_queue(&store, None).unwrap();
    a.recipient(&q, Command::Sub(q.recipient_id), &store);
    a.replies.clear();
    a.session.handle_end(q.recipient_id);
    a.run(&store, T0);
    assert!(
        a.replies
            .iter()
            .any(|r| matches!(r, Reply::End(id) if *id == q.recipient_id))
    );
    assert_eq!(a.session.subscriptions().count(), 0);
}

#[test]
fn rate_limit_answers_then_cuts_off() {
    let store = MemoryStore::new();
    let limits = Limits {
        commands_per_second: 1,
        command_burst: 3,
        max_rate_violations: 5,
        ..Limits::default()
    };
    let cfg = config(limits, None);
    let mut c = Client::connect(&cfg, 10);
    c.hello(&store);
    let answers: Vec<_> = (0..9)
        .map(|_| c.command(Command::Ping, None, &store))
        .collect();
    assert!(answers[..3].iter().all(|r| matches!(r, Reply::Pong { .. })));
    assert!(
        answers[3..8]
            .iter()
            .all(|r| is_err(r, ErrorCode::RateLimit))
    );
    c.send_frame(
        &Command::Ping
            .encode(CorrId::from_bytes([0; 8]), None)
            .unwrap(),
        &store,
        T0,
    );
    assert_eq!(c.closed, Some(CloseReason::RateLimit));
    assert!(c.session.is_closed() && !c.session.wants_read());
}

#[test]
fn garbage_is_answered_then_cut_off_and_never_panics() {
    let store = MemoryStore::new();
    let cfg = config(Limits::default(), None);
    // Before the hello: anything that is not a hello closes the connection.
    let mut c = Client::connect(&cfg, 11);
    c.send_frame(b"not a hello", &store, T0);
    assert_eq!(c.closed, Some(CloseReason::Hello));
    // After it: malformed commands get ERR, then the connection is cut.
    let mut c = Client::connect(&cfg, 12);
    c.hello(&store);
    for i in 0..=passage_relay::session::MAX_MALFORMED_COMMANDS {
        c.replies.clear();
        c.send_frame(&[0xff; 40], &store, T0);
        assert!(
            c.replies.iter().any(|r| matches!(r, Reply::Err { .. })),
            "{i}"
        );
    }
    assert_eq!(c.closed, Some(CloseReason::Malformed));
    // Random blocks: framing errors close, nothing panics.
    let mut rng = StdRng::seed_from_u64(99);
    for _ in 0..200 {
        let mut c = Client::connect(&cfg, 13);
        let mut bytes = [0u8; 4096];
        rand_core::Rng::fill_bytes(&mut rng, &mut bytes);
        c.send_raw_block(&Block::from_slice(&bytes).unwrap(), &store);
        assert!(c.closed.is_some());
    }
}

#[test]
fn a_client_that_does_not_read_stops_being_read() {
    let store = MemoryStore::new();
    let limits = Limits {
        max_backlog_blocks: 4,
        command_burst: 100_000,
        ..Limits::default()
    };
    let cfg = config(limits, None);
    let mut c = Client::connect(&cfg, 14);
    c.hello(&store);
    let q = c.new_queue(&store, None).unwrap();
    let key = c.key(AuthRole::Recipient, &q.auth);
    // GETs of an empty queue, never reading the answers: each is a small ERR frame.
    let mut n = 0;
    while c.session.wants_read() {
        let frame = Command::Get(q.recipient_id)
            .encode(c.corr(), Some(&key))
            .unwrap();
        let mut enc = FrameEncoder::new();
        enc.push_frame(&frame).unwrap();
        enc.flush();
        let block = enc.poll_block().unwrap();
        c.session.handle_block(&block, &store, T0, &mut c.rng);
        n += 1;
        assert!(n < 10_000, "backpressure never engaged");
    }
    assert!(n > 4);
    assert!(!c.session.is_closed());
}

#[test]
fn a_fresh_message_behind_an_expired_one_is_delivered() {
    let store = MemoryStore::new();
    let cfg = config(
        Limits {
            retention_secs: 10,
            ..Limits::default()
        },
        None,
    );
    let mut c = Client::connect(&cfg, 15);
    c.hello(&store);
    let q = c.new_queue(&store, None).unwrap();
    let s = DhSecret::generate(&mut c.rng);
    c.send(&q, &s, true, 1, &store); // at T0: expires at T0 + 10
    let later = Now {
        unix_secs: T0.unix_secs + 11,
        mono_ms: 11_000,
    };
    let key = c.key(AuthRole::Recipient, &q.auth);
    // A fresh message arrives after the first expired, before any periodic sweep.
    let send = Command::Send(SendMessage {
        sender_id: q.sender_id,
        sender_auth_key: None,
        body: Box::new([2; ENVELOPE_LEN]),
    });
    let skey = c.key(AuthRole::Sender, &s);
    let corr = c.corr();
    c.send_frame(&send.encode(corr, Some(&skey)).unwrap(), &store, later);
    // GET finds the fresh one.
    let corr = c.corr();
    c.replies.clear();
    c.send_frame(
        &Command::Get(q.recipient_id)
            .encode(corr, Some(&key))
            .unwrap(),
        &store,
        later,
    );
    assert_eq!(
        c.messages(&q).iter().map(|m| m.1).collect::<Vec<_>>(),
        vec![2]
    );
    // And so does a subscription (the expired head is gone now; make another).
    let mut c2 = Client::connect(&cfg, 16);
    c2.hello(&store);
    let q2 = c2.new_queue(&store, None).unwrap();
    let s2 = DhSecret::generate(&mut c2.rng);
    c2.send(&q2, &s2, true, 3, &store);
    let send = Command::Send(SendMessage {
        sender_id: q2.sender_id,
        sender_auth_key: None,
        body: Box::new([4; ENVELOPE_LEN]),
    });
    let skey = c2.key(AuthRole::Sender, &s2);
    let corr = c2.corr();
    c2.send_frame(&send.encode(corr, Some(&skey)).unwrap(), &store, later);
    let key2 = c2.key(AuthRole::Recipient, &q2.auth);
    let corr = c2.corr();
    c2.replies.clear();
    c2.send_frame(
        &Command::Sub(q2.recipient_id)
            .encode(corr, Some(&key2))
            .unwrap(),
        &store,
        later,
    );
    assert_eq!(
        c2.messages(&q2).iter().map(|m| m.1).collect::<Vec<_>>(),
        vec![4]
    );
}

#[test]
fn an_ack_over_another_connection_releases_the_next_message() {
    let store = MemoryStore::new();
    let cfg = config(Limits::default(), None);
    let mut a = Client::connect(&cfg, 17);
    a.hello(&store);
    let q = a.new_queue(&store, None).unwrap();
    let s = DhSecret::generate(&mut a.rng);
    // A full window and one more.
    for i in 0..=DELIVERY_WINDOW {
        a.send(&q, &s, i == 0, i as u8 + 1, &store);
    }
    a.recipient(&q, Command::Sub(q.recipient_id), &store);
    assert_eq!(a.messages(&q).len(), DELIVERY_WINDOW);
    let (first, _) = a.messages(&q)[0];
    // The same recipient, on another connection, acknowledges the first message.
    let mut b = Client::connect(&cfg, 18);
    b.hello(&store);
    let reply = b.recipient(
        &q,
        Command::Ack {
            recipient_id: q.recipient_id,
            msg_id: first,
        },
        &store,
    );
    assert!(matches!(reply, Reply::Ok { .. }));
    // The driver wakes the subscriber; the next message follows.
    a.replies.clear();
    a.session.handle_notify(q.recipient_id, &store, T0);
    a.run(&store, T0);
    assert_eq!(
        a.messages(&q).iter().map(|m| m.1).collect::<Vec<_>>(),
        vec![DELIVERY_WINDOW as u8 + 1]
    );
    // A wake-up with nothing new delivers nothing twice.
    a.replies.clear();
    a.session.handle_notify(q.recipient_id, &store, T0);
    a.run(&store, T0);
    assert!(a.messages(&q).is_empty());
}

#[test]
fn draining_past_the_burst_is_not_rate_limited() {
    let store = MemoryStore::new();
    let limits = Limits {
        commands_per_second: 1,
        command_burst: 5,
        queue_quota: 50,
        ..Limits::default()
    };
    let cfg = config(limits, None);
    let mut sender = Client::connect(&cfg, 19);
    sender.hello(&store);
    let mut c = Client::connect(&cfg, 20);
    c.hello(&store);
    let q = c.new_queue(&store, None).unwrap();
    let s = DhSecret::generate(&mut sender.rng);
    for i in 0..20u8 {
        // A fresh sender connection per few sends keeps the sender within its own burst.
        if i % 4 == 0 {
            sender = Client::connect(&cfg, 100 + u64::from(i));
            sender.hello(&store);
        }
        assert!(
            matches!(sender.send(&q, &s, i == 0, i, &store), Reply::Ok { .. }),
            "{i}"
        );
    }
    c.recipient(&q, Command::Sub(q.recipient_id), &store);
    let mut pending: std::collections::VecDeque<_> = c.messages(&q).into();
    let mut got = Vec::new();
    while let Some((msg_id, n)) = pending.pop_front() {
        got.push(n);
        let reply = c.recipient(
            &q,
            Command::Ack {
                recipient_id: q.recipient_id,
                msg_id,
            },
            &store,
        );
        assert!(matches!(reply, Reply::Ok { .. }), "{reply:?}");
        pending.extend(c.messages(&q));
    }
    assert_eq!(got, (0..20).collect::<Vec<u8>>());
}

#[test]
fn the_next_message_goes_out_while_the_ack_is_written() {
    let store = MemoryStore::new();
    let cfg = config(Limits::default(), None);
    let mut c = Client::connect(&cfg, 21);
    c.hello(&store);
    let q = c.new_queue(&store, None).unwrap();
    let s = DhSecret::generate(&mut c.rng);
    // A full window and two more.
    let last = DELIVERY_WINDOW as u8 + 2;
    for i in 1..=last {
        c.send(&q, &s, i == 1, i, &store);
    }
    c.recipient(&q, Command::Sub(q.recipient_id), &store);
    assert_eq!(c.messages(&q).len(), DELIVERY_WINDOW);
    let (first, n) = c.messages(&q)[0];
    assert_eq!(n, 1);
    // ACK the first, but hold its write back.
    let key = c.key(AuthRole::Recipient, &q.auth);
    let corr = c.corr();
    let ack = Command::Ack {
        recipient_id: q.recipient_id,
        msg_id: first,
    };
    let mut enc = FrameEncoder::new();
    enc.push_frame(&ack.encode(corr, Some(&key)).unwrap())
        .unwrap();
    enc.flush();
    c.replies.clear();
    c.session
        .handle_block(&enc.poll_block().unwrap(), &store, T0, &mut c.rng);
    let held: Vec<_> = std::iter::from_fn(|| c.session.poll_action()).collect();
    c.pump_out();
    while let Some(frame) = c.dec.poll_frame() {
        c.replies.push(Reply::decode(&frame).unwrap());
    }
    // The next message is already out; the first is still stored.
    assert_eq!(
        c.messages(&q).iter().map(|m| m.1).collect::<Vec<_>>(),
        vec![last - 1]
    );
    assert!(store.has_message(&q.recipient_id, &first).unwrap());
    // A wake-up meanwhile (another message stored) sends nothing twice.
    c.replies.clear();
    c.session.handle_notify(q.recipient_id, &store, T0);
    c.run(&store, T0);
    assert!(c.messages(&q).is_empty());
    // The write completes: the OK comes, and still no duplicate.
    for action in held {
        if let Action::Write { token, op } = action {
            let result = store.commit(vec![*op]).pop().unwrap();
            c.session.handle_write(token, result, &store, T0);
        }
    }
    c.run(&store, T0);
    assert!(
        c.replies
            .iter()
            .any(|r| matches!(r, Reply::Ok { corr_id, .. } if *corr_id == corr))
    );
    assert!(c.messages(&q).is_empty());
    assert!(!store.has_message(&q.recipient_id, &first).unwrap());
}
