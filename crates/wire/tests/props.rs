//! Property tests: random frames through the block codec, random commands and replies
//! through their encodings, random bytes into every decoder.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::DhPublic;
use passage_wire::command::MAX_PASSWORD_LEN;
use passage_wire::framing::MAX_SEGMENT_LEN;
use passage_wire::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// Deterministic filler so large frames are cheap to generate.
fn filled(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(167).wrapping_add(seed))
        .collect()
}

fn frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => vec(any::<u8>(), 1..64),
        4 => (1..=MAX_SEGMENT_LEN + 8, any::<u8>()).prop_map(|(len, seed)| filled(len, seed)),
        1 => (1..=MAX_FRAME_LEN, any::<u8>()).prop_map(|(len, seed)| filled(len, seed)),
        1 => (MAX_FRAME_LEN - 8..=MAX_FRAME_LEN, any::<u8>()).prop_map(|(len, seed)| filled(len, seed)),
    ]
}

fn envelope(seed: u8) -> Box<[u8; ENVELOPE_LEN]> {
    Box::new(core::array::from_fn(|i| (i as u8) ^ seed))
}

fn command() -> impl Strategy<Value = Command> {
    let id = any::<[u8; 24]>();
    prop_oneof![
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            option::of(vec(any::<u8>(), 1..=MAX_PASSWORD_LEN))
        )
            .prop_map(|(auth, dh, password)| Command::New(NewQueue {
                recipient_auth_key: DhPublic::from_bytes(auth),
                recipient_dh_key: DhPublic::from_bytes(dh),
                password: password.map(|p| QueuePassword::new(&p).unwrap()),
            })),
        id.prop_map(|id| Command::Sub(RecipientId::from_bytes(id))),
        id.prop_map(|id| Command::Get(RecipientId::from_bytes(id))),
        id.prop_map(|id| Command::Del(RecipientId::from_bytes(id))),
        (id, id).prop_map(|(id, msg)| Command::Ack {
            recipient_id: RecipientId::from_bytes(id),
            msg_id: MsgId::from_bytes(msg),
        }),
        (id, option::of(any::<[u8; 32]>()), any::<u8>()).prop_map(|(id, key, seed)| {
            Command::Send(SendMessage {
                sender_id: SenderId::from_bytes(id),
                sender_auth_key: key.map(DhPublic::from_bytes),
                body: envelope(seed),
            })
        }),
        Just(Command::Ping),
    ]
}

fn entity() -> impl Strategy<Value = Entity> {
    prop_oneof![
        Just(Entity::None),
        any::<[u8; 24]>().prop_map(|id| Entity::Recipient(RecipientId::from_bytes(id))),
        any::<[u8; 24]>().prop_map(|id| Entity::Sender(SenderId::from_bytes(id))),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::Auth),
        Just(ErrorCode::Quota),
        Just(ErrorCode::NoMsg),
        Just(ErrorCode::Syntax),
        Just(ErrorCode::Cmd),
        Just(ErrorCode::Large),
        Just(ErrorCode::Version),
        Just(ErrorCode::Internal),
        Just(ErrorCode::RateLimit),
        Just(ErrorCode::Full),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    let id = any::<[u8; 24]>();
    let corr = any::<[u8; 8]>().prop_map(CorrId::from_bytes);
    prop_oneof![
        (corr.clone(), id, id, any::<[u8; 32]>()).prop_map(|(corr_id, r, s, k)| Reply::Ids {
            corr_id,
            ids: QueueIds {
                recipient_id: RecipientId::from_bytes(r),
                sender_id: SenderId::from_bytes(s),
                relay_dh_key: DhPublic::from_bytes(k),
            },
        }),
        (corr.clone(), entity()).prop_map(|(corr_id, entity)| Reply::Ok { corr_id, entity }),
        (option::of(corr.clone()), entity(), error_code()).prop_map(|(corr_id, entity, code)| {
            Reply::Err {
                corr_id,
                entity,
                code,
            }
        }),
        (id, id, any::<u64>(), any::<u8>()).prop_map(|(r, m, timestamp, seed)| {
            Reply::Msg(Delivery {
                recipient_id: RecipientId::from_bytes(r),
                msg_id: MsgId::from_bytes(m),
                timestamp,
                sealed: SealedBody::from_bytes(Box::new(core::array::from_fn(|i| {
                    (i as u8) ^ seed
                }))),
            })
        }),
        id.prop_map(|r| Reply::End(RecipientId::from_bytes(r))),
        corr.prop_map(|corr_id| Reply::Pong { corr_id }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_survive_the_block_codec(
        frames in vec(frame(), 0..24),
        flush_after in vec(any::<bool>(), 24),
    ) {
        let mut enc = FrameEncoder::new();
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        let mut pump = |enc: &mut FrameEncoder, got: &mut Vec<Vec<u8>>| {
            while let Some(block) = enc.poll_block() {
                prop_assert_eq!(block.as_bytes().len(), BLOCK_LEN);
                dec.handle_block(&block).unwrap();
                got.extend(std::iter::from_fn(|| dec.poll_frame()));
            }
            Ok(())
        };
        for (frame, flush) in frames.iter().zip(&flush_after) {
            enc.push_frame(frame).unwrap();
            if *flush {
                enc.flush();
            }
            pump(&mut enc, &mut got)?;
        }
        enc.flush();
        pump(&mut enc, &mut got)?;
        prop_assert_eq!(&got, &frames);
    }

    /// A frame pushed in parts gives the very blocks of the frame pushed whole, whatever
    /// the split and whatever the encoder already held.
    #[test]
    fn a_frame_in_parts_encodes_as_the_joined_frame(
        before in option::of(frame()),
        frame in frame(),
        cuts in vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(frame.len() + 1)).collect();
        points.sort_unstable();
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut from = 0;
        for point in points.into_iter().chain([frame.len()]) {
            parts.push(&frame[from..point]);
            from = point;
        }
        let (mut whole, mut split) = (FrameEncoder::new(), FrameEncoder::new());
        if let Some(before) = &before {
            whole.push_frame(before).unwrap();
            split.push_frame(before).unwrap();
        }
        whole.push_frame(&frame).unwrap();
        split.push_frame_parts(&parts).unwrap();
        whole.flush();
        split.flush();
        let blocks = |enc: &mut FrameEncoder| std::iter::from_fn(|| enc.poll_block()).collect::<Vec<_>>();
        prop_assert_eq!(blocks(&mut whole), blocks(&mut split));
    }

    /// A reply's two parts are its frame.
    #[test]
    fn a_reply_in_parts_is_its_frame(reply in reply()) {
        let (head, body) = reply.encode_parts();
        prop_assert_eq!([head.as_slice(), body].concat(), reply.encode());
    }

    #[test]
    fn commands_round_trip_and_authenticate(cmd in command(), corr in any::<[u8; 8]>()) {
        let world = World::new(40);
        let corr_id = CorrId::from_bytes(corr);
        let key = cmd.auth_role().map(|role| world.client_key(role));
        let frame = cmd.encode(corr_id, key.as_ref()).unwrap();
        prop_assert!(frame.len() <= MAX_SEGMENT_LEN);
        let frames = from_blocks(&to_blocks(std::slice::from_ref(&frame))).unwrap();
        let unverified = UnverifiedCommand::decode(&frames[0]).unwrap();
        prop_assert_eq!(unverified.command(), &cmd);
        prop_assert_eq!(unverified.corr_id(), corr_id);
        let verified = match &key {
            Some(key) => {
                // The relay-side key (derived from the session secret) verifies it.
                let relay_key = AuthKey::derive(
                    key.role(),
                    &world.session,
                    &match key.role() {
                        AuthRole::Recipient => world.recipient_auth.public_key(),
                        AuthRole::Sender => world.sender_auth.public_key(),
                    },
                    &world.binding,
                ).unwrap();
                unverified.verify(&relay_key).unwrap()
            }
            None => unverified.accept_unauthenticated().unwrap(),
        };
        prop_assert_eq!(verified.command(), &cmd);
        prop_assert_eq!(cmd.encode(corr_id, key.as_ref()).unwrap(), frame);
    }

    #[test]
    fn replies_round_trip(reply in reply()) {
        let frame = reply.encode();
        prop_assert!(frame.len() <= passage_wire::reply::MAX_REPLY_LEN);
        let decoded = Reply::decode(&frame).unwrap();
        prop_assert_eq!(&decoded, &reply);
        prop_assert_eq!(decoded.encode(), frame);
    }

    #[test]
    fn random_bytes_never_panic_a_decoder(bytes in vec(any::<u8>(), 0..4200)) {
        let _ = UnverifiedCommand::decode(&bytes);
        let _ = Reply::decode(&bytes);
        let _ = RelayHello::decode(&bytes);
        let _ = ClientHello::decode(&bytes);
        let _ = QueueAddress::decode(&bytes);
        let _ = RelayAddress::decode(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = text.parse::<RelayAddress>();
        }
        let mut block = [0u8; BLOCK_LEN];
        let n = bytes.len().min(BLOCK_LEN);
        block[..n].copy_from_slice(&bytes[..n]);
        let mut dec = FrameDecoder::new();
        let _ = dec.handle_block(&Block::from_bytes(Box::new(block)));
        while dec.poll_frame().is_some() {}
    }

    #[test]
    fn random_address_text_never_panics(
        tail in "[a-zA-Z0-9_.:@\\[\\]%+/-]{0,80}",
        pin in "[A-Za-z0-9_-]{43}",
    ) {
        for text in [format!("passage://{pin}@{tail}"), format!("passage://{tail}")] {
            if let Ok(address) = text.parse::<RelayAddress>() {
                // Whatever parses prints back to text that parses to the same address.
                prop_assert_eq!(address.to_string().parse::<RelayAddress>().unwrap(), address.clone());
                prop_assert_eq!(RelayAddress::decode(&address.encode()).unwrap(), address);
            }
        }
    }
}
