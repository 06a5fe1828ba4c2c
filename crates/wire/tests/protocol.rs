//! Round trips of every command and reply, the one-block guarantee, limits, strictness,
//! authenticator rules and redaction.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use passage_crypto::ENVELOPE_LEN;
use passage_crypto::codec::DecodeError;
use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_wire::command::{MAX_COMMAND_LEN, MAX_PASSWORD_LEN};
use passage_wire::framing::MAX_SEGMENT_LEN;
use passage_wire::reply::MAX_REPLY_LEN;
use passage_wire::*;

fn all_commands(world: &World) -> Vec<Command> {
    let rid = world.ids.recipient_id;
    let mut rng = rng(99);
    vec![
        Command::New(world.new_queue()),
        Command::New(NewQueue {
            password: None,
            ..world.new_queue()
        }),
        Command::New(NewQueue {
            password: Some(QueuePassword::new(&[0xee; MAX_PASSWORD_LEN]).unwrap()),
            ..world.new_queue()
        }),
        Command::Sub(rid),
        Command::Get(rid),
        Command::Ack {
            recipient_id: rid,
            msg_id: MsgId::generate(&mut rng),
        },
        Command::Del(rid),
        Command::Send(SendMessage {
            sender_id: world.ids.sender_id,
            sender_auth_key: Some(world.sender_auth.public_key()),
            body: body(1),
        }),
        Command::Send(SendMessage {
            sender_id: world.ids.sender_id,
            sender_auth_key: None,
            body: body(2),
        }),
        Command::Ping,
    ]
}

fn all_replies(world: &World) -> Vec<Reply> {
    let mut rng = rng(98);
    let corr_id = CorrId::generate(&mut rng);
    let rid = world.ids.recipient_id;
    let mut replies = vec![
        Reply::Ids {
            corr_id,
            ids: world.ids,
        },
        Reply::Ok {
            corr_id,
            entity: Entity::Recipient(rid),
        },
        Reply::Ok {
            corr_id,
            entity: Entity::Sender(world.ids.sender_id),
        },
        Reply::Ok {
            corr_id,
            entity: Entity::None,
        },
        Reply::Msg(seal_delivery(
            &world.relay_delivery_key(),
            rid,
            MsgId::generate(&mut rng),
            1_700_000_000,
            &body(3),
        )),
        Reply::End(rid),
        Reply::Pong { corr_id },
    ];
    for code in [
        ErrorCode::Auth,
        ErrorCode::Quota,
        ErrorCode::NoMsg,
        ErrorCode::Syntax,
        ErrorCode::Cmd,
        ErrorCode::Large,
        ErrorCode::Version,
        ErrorCode::Internal,
        ErrorCode::RateLimit,
        ErrorCode::Full,
    ] {
        replies.push(Reply::Err {
            corr_id: Some(corr_id),
            entity: Entity::Recipient(rid),
            code,
        });
        replies.push(Reply::Err {
            corr_id: None,
            entity: Entity::None,
            code,
        });
    }
    replies
}

#[test]
fn every_command_round_trips_and_authenticates() {
    let world = World::new(1);
    let mut rng = rng(2);
    for command in all_commands(&world) {
        let corr_id = CorrId::generate(&mut rng);
        let key = command.auth_role().map(|role| world.client_key(role));
        let frame = command.encode(corr_id, key.as_ref()).unwrap();
        let blocks = to_blocks(std::slice::from_ref(&frame));
        assert_eq!(blocks.len(), 1, "{}", command.name());
        let frames = from_blocks(&blocks).unwrap();
        assert_eq!(frames, vec![frame.clone()]);

        let unverified = UnverifiedCommand::decode(&frames[0]).unwrap();
        assert_eq!(unverified.corr_id(), corr_id);
        assert_eq!(unverified.command(), &command);
        let verified = match world.relay_key(unverified.command()) {
            Some(key) => unverified.verify(&key).unwrap(),
            None => unverified.accept_unauthenticated().unwrap(),
        };
        let (got_corr, got) = verified.into_parts();
        assert_eq!((got_corr, &got), (corr_id, &command));
        // Canonical: re-encoding gives the same bytes.
        assert_eq!(got.encode(got_corr, key.as_ref()).unwrap(), frame);
    }
}

#[test]
fn every_reply_round_trips() {
    let world = World::new(3);
    for reply in all_replies(&world) {
        let frame = reply.encode();
        let frames = from_blocks(&to_blocks(std::slice::from_ref(&frame))).unwrap();
        let decoded = Reply::decode(&frames[0]).unwrap();
        assert_eq!(decoded, reply, "{}", reply.name());
        assert_eq!(decoded.encode(), frame);
        assert_eq!(decoded.corr_id(), reply.corr_id());
    }
    let Reply::Msg(delivery) = &all_replies(&world)[4] else {
        unreachable!()
    };
    assert_eq!(
        open_delivery(&world.client_delivery_key(), delivery).unwrap(),
        body(3)
    );
}

#[test]
fn all_commands_and_replies_share_blocks() {
    let world = World::new(4);
    let mut frames = Vec::new();
    for command in all_commands(&world) {
        let key = command.auth_role().map(|role| world.client_key(role));
        frames.push(
            command
                .encode(CorrId::from_bytes([1; 8]), key.as_ref())
                .unwrap(),
        );
    }
    frames.extend(all_replies(&world).iter().map(Reply::encode));
    let blocks = to_blocks(&frames);
    let total: usize = frames.iter().map(|f| f.len() + 3).sum();
    assert!(
        blocks.len() <= total / (BLOCK_LEN - 2) + 1,
        "greedy packing"
    );
    assert_eq!(from_blocks(&blocks).unwrap(), frames);
}

#[test]
fn largest_send_and_largest_msg_each_fit_one_block_as_one_frame() {
    let world = World::new(5);
    let send = Command::Send(SendMessage {
        sender_id: world.ids.sender_id,
        sender_auth_key: Some(world.sender_auth.public_key()),
        body: body(9),
    });
    let send = send
        .encode(
            CorrId::from_bytes([0xff; 8]),
            Some(&world.client_key(AuthRole::Sender)),
        )
        .unwrap();
    assert_eq!(send.len(), MAX_COMMAND_LEN);
    let msg = Reply::Msg(seal_delivery(
        &world.relay_delivery_key(),
        world.ids.recipient_id,
        MsgId::from_bytes([0xff; 24]),
        u64::MAX,
        &body(9),
    ))
    .encode();
    assert_eq!(msg.len(), MAX_REPLY_LEN);
    for frame in [send, msg] {
        assert!(frame.len() <= MAX_SEGMENT_LEN);
        let blocks = to_blocks(std::slice::from_ref(&frame));
        assert_eq!(blocks.len(), 1);
        // One `complete` segment holding the whole frame.
        let bytes = blocks[0].as_bytes();
        assert_eq!(
            usize::from(u16::from_be_bytes([bytes[0], bytes[1]])),
            frame.len() + 3
        );
        assert_eq!(bytes[2], 1, "segment kind: complete");
        assert_eq!(&bytes[5..5 + frame.len()], frame.as_slice());
    }
    // The budget crates/crypto sized ENVELOPE_LEN for: at most 192 bytes of overhead.
    const {
        assert!(BLOCK_LEN - ENVELOPE_LEN == 192);
        assert!(MAX_COMMAND_LEN + 2 + 3 - ENVELOPE_LEN <= 192);
        assert!(MAX_REPLY_LEN + 2 + 3 - ENVELOPE_LEN <= 192);
    }
}

#[test]
fn frame_length_limits_at_and_past() {
    let world = World::new(6);
    let send = Command::Send(SendMessage {
        sender_id: world.ids.sender_id,
        sender_auth_key: Some(world.sender_auth.public_key()),
        body: body(9),
    })
    .encode(
        CorrId::from_bytes([0; 8]),
        Some(&world.client_key(AuthRole::Sender)),
    )
    .unwrap();
    assert!(UnverifiedCommand::decode(&send).is_ok());
    let mut long = send.clone();
    long.push(0);
    let err = UnverifiedCommand::decode(&long).unwrap_err();
    assert_eq!(
        err,
        CommandDecodeError::TooLong {
            len: MAX_COMMAND_LEN + 1
        }
    );
    assert_eq!(err.error_code(), ErrorCode::Large);

    let mut msg = all_replies(&world)[4].encode();
    assert!(Reply::decode(&msg).is_ok());
    msg.push(0);
    assert_eq!(
        Reply::decode(&msg),
        Err(ReplyDecodeError::TooLong {
            len: MAX_REPLY_LEN + 1
        })
    );
}

#[test]
fn password_length_at_the_limit_and_one_past_it() {
    assert!(QueuePassword::new(&[1; MAX_PASSWORD_LEN]).is_ok());
    assert_eq!(
        QueuePassword::new(&[1; MAX_PASSWORD_LEN + 1])
            .unwrap_err()
            .len,
        MAX_PASSWORD_LEN + 1
    );
    assert!(QueuePassword::new(&[]).is_err());

    // A peer sends 65 bytes: refused by the length check, with or without a valid tag.
    let world = World::new(7);
    let new = Command::New(NewQueue {
        password: Some(QueuePassword::new(&[1; MAX_PASSWORD_LEN]).unwrap()),
        ..world.new_queue()
    });
    let mut frame = new
        .encode(
            CorrId::from_bytes([0; 8]),
            Some(&world.client_key(AuthRole::Recipient)),
        )
        .unwrap();
    let len_at = frame.len() - MAX_PASSWORD_LEN - 1;
    assert_eq!(frame[len_at], MAX_PASSWORD_LEN as u8);
    frame[len_at] = (MAX_PASSWORD_LEN + 1) as u8;
    frame.push(1);
    assert_eq!(
        UnverifiedCommand::decode(&frame).unwrap_err(),
        CommandDecodeError::Malformed(DecodeError::TooLong {
            len: MAX_PASSWORD_LEN + 1,
            max: MAX_PASSWORD_LEN
        })
    );
}

#[test]
fn strict_decoding_of_tags_flags_and_directions() {
    let world = World::new(8);
    let sub = Command::Sub(world.ids.recipient_id)
        .encode(
            CorrId::from_bytes([0; 8]),
            Some(&world.client_key(AuthRole::Recipient)),
        )
        .unwrap();
    // corr 8 | entity tag 1 + 24 | auth flag 1 + 32 | command tag
    let tag_at = 8 + 25 + 33;
    let mut unknown = sub.clone();
    unknown[tag_at] = 0x08;
    let err = UnverifiedCommand::decode(&unknown).unwrap_err();
    assert_eq!(err, CommandDecodeError::UnknownCommand(0x08));
    assert_eq!(err.error_code(), ErrorCode::Cmd);
    let mut mismatch = sub.clone();
    mismatch[8] = 2; // sender entity for a recipient command
    assert_eq!(
        UnverifiedCommand::decode(&mismatch).unwrap_err(),
        CommandDecodeError::EntityMismatch
    );
    let mut flag = sub.clone();
    flag[8 + 25] = 2;
    assert!(matches!(
        UnverifiedCommand::decode(&flag),
        Err(CommandDecodeError::Malformed(
            DecodeError::UnknownValue { .. }
        ))
    ));
    // Strip the authenticator: refused before any key lookup.
    let mut bare = sub[..8 + 25].to_vec();
    bare.push(0);
    bare.push(sub[tag_at]);
    let err = UnverifiedCommand::decode(&bare).unwrap_err();
    assert_eq!(err, CommandDecodeError::MissingAuthenticator);
    assert_eq!(err.error_code(), ErrorCode::Auth);
    // PING with an authenticator.
    let mut ping = sub[..8].to_vec();
    ping.push(0);
    ping.push(1);
    ping.extend_from_slice(&[0; 32]);
    ping.push(0x07);
    assert_eq!(
        UnverifiedCommand::decode(&ping).unwrap_err(),
        CommandDecodeError::UnexpectedAuthenticator
    );
    // Wrong direction: a command is not a reply and a reply is not a command.
    assert!(Reply::decode(&sub).is_err());
    for reply in all_replies(&world) {
        assert!(UnverifiedCommand::decode(&reply.encode()).is_err());
    }
    // Unknown reply tag and unknown error codes decode to errors (10, FULL, is the last
    // code known).
    let mut pong = Reply::Pong {
        corr_id: CorrId::from_bytes([0; 8]),
    }
    .encode();
    let last = pong.len() - 1;
    pong[last] = 0x87;
    assert_eq!(
        Reply::decode(&pong),
        Err(ReplyDecodeError::UnknownReply(0x87))
    );
    let mut err = Reply::Err {
        corr_id: None,
        entity: Entity::None,
        code: ErrorCode::Auth,
    }
    .encode();
    let last = err.len() - 1;
    for code in [0u8, 11, 0xff] {
        err[last] = code;
        assert!(matches!(
            Reply::decode(&err),
            Err(ReplyDecodeError::Malformed(
                DecodeError::UnknownValue { .. }
            ))
        ));
    }
    // MSG and END are pushed: never with a correlation id (which the delivery AEAD
    // would not cover). A MSG with one is also longer than MAX_REPLY_LEN.
    let mut end = Reply::End(world.ids.recipient_id).encode();
    end[0] = 1;
    end.splice(1..1, [0u8; 8]);
    assert_eq!(Reply::decode(&end), Err(ReplyDecodeError::Mismatch));
    let mut msg = all_replies(&world)[4].encode();
    msg[0] = 1;
    msg.splice(1..1, [0u8; 8]);
    assert!(matches!(
        Reply::decode(&msg),
        Err(ReplyDecodeError::TooLong { .. })
    ));
}

#[test]
fn replay_on_another_connection_fails() {
    let world = World::new(10);
    let command = Command::Sub(world.ids.recipient_id);
    let frame = command
        .encode(
            CorrId::from_bytes([3; 8]),
            Some(&world.client_key(AuthRole::Recipient)),
        )
        .unwrap();
    let block = to_blocks(&[frame]).remove(0);
    assert!(world.relay_accepts(&block).is_ok());

    // Same relay session key, another TLS connection: only the channel binding differs.
    let other = World {
        binding: ChannelBinding::from_bytes([0x42; 32]),
        ..World::new(10)
    };
    assert_eq!(
        other.relay_accepts(&block).unwrap_err(),
        AuthError::Invalid.to_string()
    );
    // A fresh connection: new session key and binding.
    let mut fresh = World::new(10);
    fresh.session = DhSecret::generate(&mut rng(11));
    fresh.binding = ChannelBinding::from_bytes([0x43; 32]);
    assert!(fresh.relay_accepts(&block).is_err());
    // Same for a first SEND, whose key the relay derives from the key it carries.
    let send = Command::Send(SendMessage {
        sender_id: world.ids.sender_id,
        sender_auth_key: Some(world.sender_auth.public_key()),
        body: body(4),
    })
    .encode(
        CorrId::from_bytes([3; 8]),
        Some(&world.client_key(AuthRole::Sender)),
    )
    .unwrap();
    let block = to_blocks(&[send]).remove(0);
    assert!(world.relay_accepts(&block).is_ok());
    assert!(other.relay_accepts(&block).is_err());
}

#[test]
fn keys_are_bound_to_their_role() {
    let world = World::new(12);
    let sub = Command::Sub(world.ids.recipient_id);
    let send = Command::Send(SendMessage {
        sender_id: world.ids.sender_id,
        sender_auth_key: None,
        body: body(0),
    });
    let corr = CorrId::from_bytes([0; 8]);
    let recipient = world.client_key(AuthRole::Recipient);
    let sender = world.client_key(AuthRole::Sender);
    assert_eq!(
        sub.encode(corr, Some(&sender)),
        Err(CommandEncodeError::WrongRole)
    );
    assert_eq!(
        send.encode(corr, Some(&recipient)),
        Err(CommandEncodeError::WrongRole)
    );
    assert_eq!(
        sub.encode(corr, None),
        Err(CommandEncodeError::AuthKeyRequired)
    );
    assert_eq!(
        Command::Ping.encode(corr, Some(&recipient)),
        Err(CommandEncodeError::AuthKeyNotAllowed)
    );
    // Relay side: the same DH secret under the other role's label does not verify.
    let tag = recipient.sign(&corr, &sub);
    assert_eq!(recipient.verify(&corr, &sub, &tag), Ok(()));
    assert_eq!(sender.verify(&corr, &sub, &tag), Err(AuthError::WrongRole));
    let same_dh_other_label = AuthKey::derive(
        AuthRole::Sender,
        &world.recipient_auth,
        &world.session.public_key(),
        &world.binding,
    )
    .unwrap();
    let send_tag = same_dh_other_label.sign(&corr, &send);
    let relabelled = recipient.sign(&corr, &sub);
    assert_ne!(send_tag.as_bytes(), relabelled.as_bytes());
    // A command that needs a key cannot skip verification.
    let frame = sub.encode(corr, Some(&recipient)).unwrap();
    assert_eq!(
        UnverifiedCommand::decode(&frame)
            .unwrap()
            .accept_unauthenticated()
            .unwrap_err(),
        AuthError::Missing
    );
}

#[test]
fn dummy_keys_cost_the_same_and_never_verify() {
    let world = World::new(13);
    let corr = CorrId::from_bytes([0; 8]);
    let sub = Command::Sub(world.ids.recipient_id);
    let dummy = AuthKey::dummy(AuthRole::Recipient, &world.session, &world.binding);
    // Even a tag computed with the dummy key itself (which anyone can derive, since it
    // is built from the public base point) is refused.
    let tag = dummy.sign(&corr, &sub);
    assert_eq!(dummy.verify(&corr, &sub, &tag), Err(AuthError::Invalid));
    let frame = sub.encode(corr, Some(&dummy)).unwrap();
    assert_eq!(
        UnverifiedCommand::decode(&frame)
            .unwrap()
            .verify(&dummy)
            .unwrap_err(),
        AuthError::Invalid
    );
    // A low-order key from a peer is refused when deriving.
    assert_eq!(
        AuthKey::derive(
            AuthRole::Recipient,
            &world.session,
            &DhPublic::from_bytes([0; 32]),
            &world.binding
        )
        .unwrap_err(),
        AuthKeyError::LowOrderKey
    );
}

#[test]
fn debug_and_errors_never_show_ids_keys_or_bodies() {
    let world = World::new(14);
    let id = RecipientId::from_bytes([0xab; 24]);
    let password = QueuePassword::new(b"hunter2-hunter2").unwrap();
    let shown = format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        Command::Ack {
            recipient_id: id,
            msg_id: MsgId::from_bytes([0xab; 24])
        },
        Command::Send(SendMessage {
            sender_id: SenderId::from_bytes([0xab; 24]),
            sender_auth_key: Some(DhPublic::from_bytes([0xab; 32])),
            body: Box::new([0xab; ENVELOPE_LEN]),
        }),
        Command::New(NewQueue {
            recipient_auth_key: DhPublic::from_bytes([0xab; 32]),
            recipient_dh_key: DhPublic::from_bytes([0xab; 32]),
            password: Some(password),
        }),
        all_replies(&world),
        Reply::Ids {
            corr_id: CorrId::from_bytes([0xab; 8]),
            ids: QueueIds {
                recipient_id: id,
                sender_id: SenderId::from_bytes([0xab; 24]),
                relay_dh_key: DhPublic::from_bytes([0xab; 32]),
            },
        },
        RelayHello {
            versions: SUPPORTED_VERSIONS,
            session_key: DhPublic::from_bytes([0xab; 32]),
        },
        world.client_key(AuthRole::Sender),
        ChannelBinding::from_bytes([0xab; 32]),
        Authenticator::from_bytes([0xab; 32]),
    );
    for needle in ["ab", "171", "hunter2"] {
        assert!(!shown.contains(needle), "{needle} in {shown}");
    }
}

#[test]
fn queue_password_compares_in_constant_time() {
    let a = QueuePassword::new(b"correct horse").unwrap();
    assert!(a.ct_eq(&QueuePassword::new(b"correct horse").unwrap()));
    assert!(!a.ct_eq(&QueuePassword::new(b"correct horsf").unwrap()));
    assert!(!a.ct_eq(&QueuePassword::new(b"correct").unwrap()));
}

/// The encoded frames of every command (and so every authenticator) are pinned: a change
/// of the signed or encoded bytes shows here, not in a deployed relay refusing clients.
#[test]
fn encoded_commands_and_authenticators_are_pinned() {
    let world = World::new(1);
    let mut rng = rng(2);
    let mut all = Vec::new();
    for command in all_commands(&world) {
        let corr_id = CorrId::generate(&mut rng);
        let key = command.auth_role().map(|role| world.client_key(role));
        all.extend_from_slice(&command.encode(corr_id, key.as_ref()).unwrap());
    }
    assert_pinned("encoded commands", &all, PINNED_COMMANDS_SHA256);
}

/// SHA-256 of the concatenated frames above, recorded at 35777ec (before the signed
/// bytes were split into borrowed parts) and unchanged since.
const PINNED_COMMANDS_SHA256: &str =
    "5d557b9cb2552d3e8787322703efa1f908a1e042ef754dc5e860de2af5245e8a";

/// The encoded frames of every reply are pinned, the sealed `MSG` included (so the
/// delivery seal's bytes, whichever AEAD implementation computes them, are too).
#[test]
fn encoded_replies_and_sealed_deliveries_are_pinned() {
    let world = World::new(1);
    // `ERR FULL` came later: the pin covers the replies it was recorded with, so that
    // their bytes are shown unchanged; FULL's own frame is checked after.
    let (full, earlier): (Vec<Reply>, Vec<Reply>) =
        all_replies(&world).into_iter().partition(|r| {
            matches!(
                r,
                Reply::Err {
                    code: ErrorCode::Full,
                    ..
                }
            )
        });
    let all: Vec<u8> = earlier.iter().flat_map(Reply::encode).collect();
    assert_pinned("encoded replies", &all, PINNED_REPLIES_SHA256);
    assert_eq!(full.len(), 2);
    for reply in &full {
        let frame = reply.encode();
        assert_eq!(frame.last(), Some(&10), "FULL is code 10");
        let mut auth = frame.clone();
        *auth.last_mut().unwrap() = 1;
        let Reply::Err {
            corr_id, entity, ..
        } = reply.clone()
        else {
            unreachable!()
        };
        let as_auth = Reply::Err {
            corr_id,
            entity,
            code: ErrorCode::Auth,
        };
        assert_eq!(auth, as_auth.encode(), "only the code byte differs");
    }
}

/// Checks that `bytes` hash to the recorded SHA-256 (printing the new one, to record it
/// when a change of the bytes is intended).
fn assert_pinned(what: &str, bytes: &[u8], pinned: &str) {
    let digest = passage_crypto::primitives::sha256(&[bytes]);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    eprintln!("{what}: {} bytes, sha256 {hex}", bytes.len());
    assert_eq!(hex, pinned, "{what} changed");
}

/// SHA-256 of the concatenated replies above, recorded at 35777ec (RustCrypto's
/// XChaCha20-Poly1305, before ring's) and unchanged since.
const PINNED_REPLIES_SHA256: &str =
    "8ffd80877bfeaa03b2a3010484a57f22978e565adfc6dcf91e7ba10e94ee41f3";
