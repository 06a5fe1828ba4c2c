//! The sans-IO session against a scripted relay built from `passage-wire` alone: every
//! command is decoded and its authenticator checked the way the relay checks it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_wire::{
    AuthKey, Block, ChannelBinding, ClientHello, Command, CorrId, DeliveryKey, Entity, ErrorCode,
    FrameDecoder, FrameEncoder, MsgId, QueueIds, RelayHello, Reply, SUPPORTED_VERSIONS,
    UnverifiedCommand, seal_delivery,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

/// The relay's half, scripted by each test.
struct FakeRelay {
    secret: DhSecret,
    binding: ChannelBinding,
    encoder: FrameEncoder,
    decoder: FrameDecoder,
    /// The queue made by the last `NEW`: its relay secret and the recipient's keys.
    queue: Option<(QueueIds, DhSecret, DhPublic, DhPublic)>,
    sender_key: Option<DhPublic>,
}

impl FakeRelay {
    fn new(rng: &mut StdRng) -> Self {
        Self {
            secret: DhSecret::generate(rng),
            binding: ChannelBinding::from_bytes([7; 32]),
            encoder: FrameEncoder::new(),
            decoder: FrameDecoder::new(),
            queue: None,
            sender_key: None,
        }
    }

    fn push(&mut self, frame: &[u8]) -> Vec<Block> {
        self.encoder.push_frame(frame).unwrap();
        self.encoder.flush();
        std::iter::from_fn(|| self.encoder.poll_block()).collect()
    }

    fn reply(&mut self, reply: &Reply) -> Vec<Block> {
        self.push(&reply.encode())
    }

    fn frames(&mut self, session: &mut RelayClientSession) -> Vec<Vec<u8>> {
        while let Some(block) = session.poll_block() {
            self.decoder.handle_block(&block).unwrap();
        }
        std::iter::from_fn(|| self.decoder.poll_frame()).collect()
    }

    /// Decodes and verifies the next command exactly as the relay would.
    fn command(&mut self, session: &mut RelayClientSession) -> (CorrId, Command) {
        let frames = self.frames(session);
        assert_eq!(frames.len(), 1, "one command expected");
        let unverified = UnverifiedCommand::decode(&frames[0]).unwrap();
        let public = match unverified.command() {
            Command::Ping => return unverified.accept_unauthenticated().unwrap().into_parts(),
            Command::New(new) => new.recipient_auth_key,
            Command::Send(send) => send.sender_auth_key.or(self.sender_key).unwrap(),
            _ => self.queue.as_ref().unwrap().2,
        };
        let role = unverified.command().auth_role().unwrap();
        let key = AuthKey::derive(role, &self.secret, &public, &self.binding).unwrap();
        unverified.verify(&key).expect("authenticator").into_parts()
    }

    fn delivery_key(&self) -> DeliveryKey {
        let (_, secret, _, dh) = self.queue.as_ref().unwrap();
        DeliveryKey::for_relay(secret, dh).unwrap()
    }
}

fn feed(session: &mut RelayClientSession, blocks: Vec<Block>) -> Vec<Output> {
    for block in blocks {
        session.handle_block(&block).unwrap();
    }
    std::iter::from_fn(|| session.poll_output()).collect()
}

fn connected(rng: &mut StdRng) -> (FakeRelay, RelayClientSession) {
    let mut relay = FakeRelay::new(rng);
    let hello = RelayHello {
        versions: SUPPORTED_VERSIONS,
        session_key: relay.secret.public_key(),
    };
    let blocks = relay.push(&hello.encode());
    let mut stage = AwaitingHello::new(relay.binding.clone());
    let mut session = None;
    for block in blocks {
        match stage.handle_block(&Block::zeroed()).unwrap() {
            HelloProgress::Pending(next) => stage = next,
            HelloProgress::Ready(_) => panic!("an empty block is no hello"),
        }
        match stage.handle_block(&block).unwrap() {
            HelloProgress::Ready(ready) => {
                session = Some(ready);
                break;
            }
            HelloProgress::Pending(next) => stage = next,
        }
    }
    let mut session = *session.unwrap();
    let frames = relay.frames(&mut session);
    let hello = ClientHello::decode(&frames[0]).unwrap();
    hello.accept(SUPPORTED_VERSIONS).unwrap();
    (relay, session)
}

/// NEW → IDS, returning the credentials the session built.
fn create(
    rng: &mut StdRng,
    relay: &mut FakeRelay,
    session: &mut RelayClientSession,
) -> QueueCredentials {
    let issued = session.create_queue(rng, Some(b"ngo")).unwrap();
    let (corr_id, command) = relay.command(session);
    assert_eq!(corr_id, issued);
    let Command::New(new) = command else {
        panic!("NEW expected")
    };
    assert_eq!(new.password.unwrap().as_bytes(), b"ngo");
    let queue_secret = DhSecret::generate(rng);
    let ids = QueueIds::generate(rng, queue_secret.public_key());
    relay.queue = Some((
        ids,
        queue_secret,
        new.recipient_auth_key,
        new.recipient_dh_key,
    ));
    let outputs = feed(session, relay.reply(&Reply::Ids { corr_id, ids }));
    let [
        Output::Reply {
            corr_id: answered,
            result: Ok(Completion::Created(queue)),
        },
    ] = <[Output; 1]>::try_from(outputs).unwrap()
    else {
        panic!("IDS expected")
    };
    assert_eq!(answered, issued);
    assert_eq!(queue.recipient_id(), ids.recipient_id);
    assert_eq!(queue.sender_id(), ids.sender_id);
    queue
}

#[test]
fn queue_lifecycle_with_pushes_gets_and_errors() {
    let mut rng = StdRng::seed_from_u64(1);
    let (mut relay, mut session) = connected(&mut rng);
    let queue = create(&mut rng, &mut relay, &mut session);
    let ids = relay.queue.as_ref().unwrap().0;

    // SEND with a fresh sender key announces it; after mark_key_fixed it does not.
    let mut sender = SenderCredentials::generate(&mut rng);
    let body = [0x5a; ENVELOPE_LEN];
    let issued = session
        .send(&mut rng, queue.sender_id(), &sender, &body)
        .unwrap();
    let (corr_id, command) = relay.command(&mut session);
    let Command::Send(send) = command else {
        panic!("SEND expected")
    };
    assert_eq!(send.sender_auth_key, Some(sender.public_key()));
    assert_eq!(*send.body, body);
    relay.sender_key = send.sender_auth_key;
    let entity = Entity::Sender(ids.sender_id);
    let outputs = feed(&mut session, relay.reply(&Reply::Ok { corr_id, entity }));
    assert!(matches!(
        outputs.as_slice(),
        [Output::Reply { corr_id: c, result: Ok(Completion::Done) }] if *c == issued
    ));
    sender.mark_key_fixed();
    session
        .send(&mut rng, queue.sender_id(), &sender, &body)
        .unwrap();
    let (corr_id, command) = relay.command(&mut session);
    let Command::Send(send) = command else {
        panic!("SEND expected")
    };
    assert_eq!(send.sender_auth_key, None);
    // ERR QUOTA is a typed error for that command.
    let outputs = feed(
        &mut session,
        relay.reply(&Reply::Err {
            corr_id: Some(corr_id),
            entity,
            code: ErrorCode::Quota,
        }),
    );
    assert!(matches!(
        outputs.as_slice(),
        [Output::Reply {
            result: Err(LinkError::Quota),
            ..
        }]
    ));

    // SUB → OK, then a pushed MSG opens with the delivery key.
    session.subscribe(&mut rng, &queue).unwrap();
    let (corr_id, command) = relay.command(&mut session);
    assert_eq!(command, Command::Sub(ids.recipient_id));
    let msg_id = MsgId::generate(&mut rng);
    let delivery = seal_delivery(
        &relay.delivery_key(),
        ids.recipient_id,
        msg_id,
        1_700_000_000,
        &body,
    );
    let mut blocks = relay.reply(&Reply::Ok {
        corr_id,
        entity: Entity::Recipient(ids.recipient_id),
    });
    blocks.extend(relay.reply(&Reply::Msg(delivery.clone())));
    let outputs = feed(&mut session, blocks);
    assert!(matches!(
        outputs.as_slice(),
        [
            Output::Reply { result: Ok(Completion::Done), .. },
            Output::Event(Event::Message { recipient_id, msg_id: m, timestamp: 1_700_000_000, body: b }),
        ] if *recipient_id == ids.recipient_id && *m == msg_id && **b == body
    ));

    // A MSG altered in flight is an event, not a panic and not a fatal error.
    let mut altered = delivery.clone();
    altered.timestamp += 1;
    let outputs = feed(&mut session, relay.reply(&Reply::Msg(altered)));
    assert!(matches!(
        outputs.as_slice(),
        [Output::Event(Event::Undeliverable {
            reason: Undeliverable::DoesNotOpen,
            ..
        })]
    ));

    // GET is answered by a MSG (uncorrelated) or by ERR NO_MSG.
    let get = session.get(&mut rng, &queue).unwrap();
    let (_, command) = relay.command(&mut session);
    assert_eq!(command, Command::Get(ids.recipient_id));
    let outputs = feed(&mut session, relay.reply(&Reply::Msg(delivery)));
    assert!(matches!(
        outputs.as_slice(),
        [Output::Reply { corr_id, result: Ok(Completion::Message(Some(m))) }]
            if *corr_id == get && m.msg_id == msg_id && *m.body == body
    ));
    session.get(&mut rng, &queue).unwrap();
    let (corr_id, _) = relay.command(&mut session);
    let outputs = feed(
        &mut session,
        relay.reply(&Reply::Err {
            corr_id: Some(corr_id),
            entity: Entity::Recipient(ids.recipient_id),
            code: ErrorCode::NoMsg,
        }),
    );
    assert!(matches!(
        outputs.as_slice(),
        [Output::Reply {
            result: Ok(Completion::Message(None)),
            ..
        }]
    ));

    // ACK of an unknown message → NoMsg; DEL → OK; END and uncorrelated ERR are events.
    session.ack(&mut rng, &queue, msg_id).unwrap();
    let (corr_id, command) = relay.command(&mut session);
    assert_eq!(
        command,
        Command::Ack {
            recipient_id: ids.recipient_id,
            msg_id
        }
    );
    let outputs = feed(
        &mut session,
        relay.reply(&Reply::Err {
            corr_id: Some(corr_id),
            entity: Entity::Recipient(ids.recipient_id),
            code: ErrorCode::NoMsg,
        }),
    );
    assert!(matches!(
        outputs.as_slice(),
        [Output::Reply {
            result: Err(LinkError::NoMsg),
            ..
        }]
    ));
    let mut blocks = relay.reply(&Reply::End(ids.recipient_id));
    blocks.extend(relay.reply(&Reply::Err {
        corr_id: None,
        entity: Entity::None,
        code: ErrorCode::Syntax,
    }));
    let outputs = feed(&mut session, blocks);
    assert!(matches!(
        outputs.as_slice(),
        [
            Output::Event(Event::End(id)),
            Output::Event(Event::RelayError(ErrorCode::Syntax)),
        ] if *id == ids.recipient_id
    ));
    session.delete_queue(&mut rng, &queue).unwrap();
    let (corr_id, command) = relay.command(&mut session);
    assert_eq!(command, Command::Del(ids.recipient_id));
    let outputs = feed(
        &mut session,
        relay.reply(&Reply::Ok {
            corr_id,
            entity: Entity::Recipient(ids.recipient_id),
        }),
    );
    assert!(matches!(
        outputs.as_slice(),
        [Output::Reply {
            result: Ok(Completion::Done),
            ..
        }]
    ));
    // The queue is forgotten: a MSG for it now has no key.
    let late = seal_delivery(&relay.delivery_key(), ids.recipient_id, msg_id, 1, &body);
    let outputs = feed(&mut session, relay.reply(&Reply::Msg(late)));
    assert!(matches!(
        outputs.as_slice(),
        [Output::Event(Event::Undeliverable {
            reason: Undeliverable::UnknownQueue,
            ..
        })]
    ));
    assert_eq!(session.pending_commands(), 0);
}

#[test]
fn a_window_of_messages_arrives_before_any_ack_and_each_ack_is_answered() {
    let mut rng = StdRng::seed_from_u64(5);
    let (mut relay, mut session) = connected(&mut rng);
    let queue = create(&mut rng, &mut relay, &mut session);
    let ids = relay.queue.as_ref().unwrap().0;
    session.subscribe(&mut rng, &queue).unwrap();
    let (corr_id, _) = relay.command(&mut session);
    // The relay answers SUB and pushes several MSGs of the queue at once.
    let mut encoder_frames = vec![
        Reply::Ok {
            corr_id,
            entity: Entity::Recipient(ids.recipient_id),
        }
        .encode(),
    ];
    let sent: Vec<(MsgId, u8)> = (1..=5u8).map(|n| (MsgId::generate(&mut rng), n)).collect();
    for (msg_id, n) in &sent {
        let delivery = seal_delivery(
            &relay.delivery_key(),
            ids.recipient_id,
            *msg_id,
            1_700_000_000,
            &[*n; ENVELOPE_LEN],
        );
        encoder_frames.push(Reply::Msg(delivery).encode());
    }
    for frame in &encoder_frames {
        relay.encoder.push_frame(frame).unwrap();
    }
    relay.encoder.flush();
    let blocks: Vec<_> = std::iter::from_fn(|| relay.encoder.poll_block()).collect();
    let outputs = feed(&mut session, blocks);
    let got: Vec<(MsgId, u8)> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::Message { msg_id, body, .. }) => Some((*msg_id, body[0])),
            _ => None,
        })
        .collect();
    assert_eq!(got, sent, "every message, in order, before any ACK");
    // ACKs pipelined (in another order), then answered together: each gets its OK.
    let mut issued = Vec::new();
    for (msg_id, _) in sent.iter().rev() {
        issued.push(session.ack(&mut rng, &queue, *msg_id).unwrap());
    }
    let frames = relay.frames(&mut session);
    assert_eq!(frames.len(), sent.len());
    for frame in &frames {
        let corr_id = UnverifiedCommand::decode(frame).unwrap().corr_id();
        relay
            .encoder
            .push_frame(
                &Reply::Ok {
                    corr_id,
                    entity: Entity::Recipient(ids.recipient_id),
                }
                .encode(),
            )
            .unwrap();
    }
    relay.encoder.flush();
    let blocks: Vec<_> = std::iter::from_fn(|| relay.encoder.poll_block()).collect();
    let answered: Vec<CorrId> = feed(&mut session, blocks)
        .into_iter()
        .map(|o| match o {
            Output::Reply {
                corr_id,
                result: Ok(Completion::Done),
            } => corr_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(answered, issued);
}

#[test]
fn unknown_correlation_and_bad_blocks_are_fatal_and_sticky() {
    let mut rng = StdRng::seed_from_u64(2);
    let (mut relay, mut session) = connected(&mut rng);
    let issued = session.ping(&mut rng).unwrap();
    let (corr_id, command) = relay.command(&mut session);
    assert_eq!((corr_id, command), (issued, Command::Ping));
    let outputs = feed(&mut session, relay.reply(&Reply::Pong { corr_id }));
    assert!(matches!(
        outputs.as_slice(),
        [Output::Reply {
            result: Ok(Completion::Pong),
            ..
        }]
    ));
    // A second PONG for the same id answers nothing in flight.
    for block in relay.reply(&Reply::Pong { corr_id }) {
        assert!(matches!(
            session.handle_block(&block),
            Err(LinkError::Protocol(ProtocolError::UnknownCorrelation))
        ));
    }
    assert!(matches!(
        session.handle_block(&Block::zeroed()),
        Err(LinkError::Protocol(ProtocolError::UnknownCorrelation))
    ));
    assert!(session.ping(&mut rng).is_err());

    let (_, mut session) = connected(&mut rng);
    let mut garbage = Block::zeroed();
    garbage.as_bytes_mut()[4095] = 1;
    assert!(matches!(
        session.handle_block(&garbage),
        Err(LinkError::Protocol(ProtocolError::Framing(_)))
    ));
    assert!(session.handle_block(&Block::zeroed()).is_err());
}

#[test]
fn wrong_reply_kind_fails_the_command_only() {
    let mut rng = StdRng::seed_from_u64(3);
    let (mut relay, mut session) = connected(&mut rng);
    session.ping(&mut rng).unwrap();
    let (corr_id, _) = relay.command(&mut session);
    let outputs = feed(
        &mut session,
        relay.reply(&Reply::Ok {
            corr_id,
            entity: Entity::None,
        }),
    );
    assert!(matches!(
        outputs.as_slice(),
        [Output::Reply {
            result: Err(LinkError::Protocol(ProtocolError::UnexpectedReply)),
            ..
        }]
    ));
    session.ping(&mut rng).unwrap();
}

#[test]
fn hello_without_common_version_fails() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut relay = FakeRelay::new(&mut rng);
    let hello = RelayHello {
        versions: passage_wire::VersionRange::new(7, 9).unwrap(),
        session_key: relay.secret.public_key(),
    };
    let blocks = relay.push(&hello.encode());
    let stage = AwaitingHello::new(relay.binding.clone());
    assert!(matches!(
        stage.handle_block(&blocks[0]),
        Err(LinkError::Version(_))
    ));
    let stage = AwaitingHello::new(relay.binding.clone());
    let not_hello = relay.push(&[1, 2, 3]);
    assert!(matches!(
        stage.handle_block(&not_hello[0]),
        Err(LinkError::Protocol(ProtocolError::Hello(_)))
    ));
}

#[test]
fn secrets_and_ids_never_print() {
    let mut rng = StdRng::seed_from_u64(5);
    let (mut relay, mut session) = connected(&mut rng);
    let queue = create(&mut rng, &mut relay, &mut session);
    assert_eq!(format!("{queue:?}"), "QueueCredentials([redacted])");
    let sender = SenderCredentials::generate(&mut rng);
    let shown = format!("{sender:?} {session:?}");
    assert!(!shown.contains(&format!("{:?}", sender.public_key().as_bytes())));
    assert!(shown.contains("announce_key: true"), "{shown}");
    let event = Event::Message {
        recipient_id: queue.recipient_id(),
        msg_id: MsgId::from_bytes([0xab; 24]),
        timestamp: 5,
        body: Box::new([0xcd; ENVELOPE_LEN]),
    };
    assert_eq!(format!("{event:?}"), "Message { timestamp: 5, .. }");
    assert!(matches!(
        session.create_queue(&mut rng, Some(&[0; 65])),
        Err(LinkError::Password(_))
    ));
    let restored = QueueCredentials::from_parts(
        queue.recipient_id(),
        queue.sender_id(),
        queue.recipient_auth_secret().clone(),
        queue.recipient_dh_secret().clone(),
        DhPublic::from_bytes([0; 32]),
    );
    assert!(matches!(
        restored,
        Err(LinkError::Protocol(ProtocolError::BadRelayKey))
    ));
}
