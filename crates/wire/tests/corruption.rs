//! Blocks altered in flight: every truncation and every single-byte change of a valid
//! block is refused, never accepted and never a panic.
//!
//! For authenticated command blocks the relay's full path (frame decode, command
//! decode, key lookup, authenticator check) must fail; for `MSG` blocks the
//! recipient's full path (frame decode, reply decode, `open_delivery`) must fail.
//! Every one of the 4096 positions is tried with several changes; the `#[ignore]`d
//! variants try all 255 changes at every position (run with `--ignored`).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use passage_wire::command::MAX_PASSWORD_LEN;
use passage_wire::*;

/// Changes tried at every position by the default tests.
const MASKS: [u8; 4] = [0x01, 0x80, 0xff, 0x5a];

fn command_blocks(world: &World) -> Vec<(&'static str, Block)> {
    let corr = CorrId::from_bytes([0x11; 8]);
    let recipient = world.client_key(AuthRole::Recipient);
    let sender = world.client_key(AuthRole::Sender);
    let frame = |command: Command, key: &AuthKey| command.encode(corr, Some(key)).unwrap();
    let rid = world.ids.recipient_id;
    let first_send = Command::Send(SendMessage {
        sender_id: world.ids.sender_id,
        sender_auth_key: Some(world.sender_auth.public_key()),
        body: body(7),
    });
    let later_send = Command::Send(SendMessage {
        sender_id: world.ids.sender_id,
        sender_auth_key: None,
        body: body(8),
    });
    let new = Command::New(NewQueue {
        password: Some(QueuePassword::new(&[0x70; MAX_PASSWORD_LEN]).unwrap()),
        ..world.new_queue()
    });
    let several = vec![
        frame(Command::Sub(rid), &recipient),
        frame(
            Command::Ack {
                recipient_id: rid,
                msg_id: MsgId::from_bytes([0x22; 24]),
            },
            &recipient,
        ),
        frame(Command::Get(rid), &recipient),
        frame(Command::Del(rid), &recipient),
        frame(new.clone(), &recipient),
    ];
    let one = |f: Vec<u8>| {
        let mut blocks = to_blocks(&[f]);
        assert_eq!(blocks.len(), 1);
        blocks.remove(0)
    };
    let several = {
        let mut blocks = to_blocks(&several);
        assert_eq!(blocks.len(), 1);
        blocks.remove(0)
    };
    vec![
        ("first SEND", one(frame(first_send, &sender))),
        ("later SEND", one(frame(later_send, &sender))),
        ("NEW", one(frame(new, &recipient))),
        ("SUB ACK GET DEL NEW", several),
    ]
}

fn msg_blocks(world: &World) -> Vec<(&'static str, Block)> {
    let key = world.relay_delivery_key();
    let msg = |n: u8| {
        Reply::Msg(seal_delivery(
            &key,
            world.ids.recipient_id,
            MsgId::from_bytes([n; 24]),
            1_700_000_000 + u64::from(n),
            &body(n),
        ))
        .encode()
    };
    let mut single = to_blocks(&[msg(1)]);
    assert_eq!(single.len(), 1);
    vec![("MSG", single.remove(0))]
}

/// Tries `change` at every position of `block`; `accepts` must refuse each altered block.
fn every_position<T>(
    name: &str,
    block: &Block,
    changes: &[u8],
    accepts: impl Fn(&Block) -> Result<T, String>,
) {
    assert!(
        accepts(block).is_ok(),
        "{name}: the original must be accepted"
    );
    let mut refused = 0usize;
    for position in 0..BLOCK_LEN {
        for &mask in changes {
            let mut altered = block.clone();
            altered.as_bytes_mut()[position] ^= mask;
            assert!(
                accepts(&altered).is_err(),
                "{name}: byte {position} ^ {mask:#04x} was accepted"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, BLOCK_LEN * changes.len());
}

fn every_truncation<T>(name: &str, block: &Block, accepts: impl Fn(&Block) -> Result<T, String>) {
    let bytes = block.as_bytes();
    for len in 0..BLOCK_LEN {
        assert!(Block::from_slice(&bytes[..len]).is_err());
    }
    // Each frame cut short, re-framed in an otherwise valid block.
    let frames = from_blocks(std::slice::from_ref(block)).unwrap();
    for (i, frame) in frames.iter().enumerate() {
        for len in 1..frame.len() {
            let mut cut = frames.clone();
            cut[i] = frame[..len].to_vec();
            let blocks = to_blocks(&cut);
            let all_ok = blocks.iter().all(|b| accepts(b).is_ok());
            assert!(!all_ok, "{name}: frame {i} cut to {len} bytes was accepted");
        }
    }
}

#[test]
fn altered_command_blocks_never_authenticate() {
    let world = World::new(20);
    for (name, block) in command_blocks(&world) {
        every_position(name, &block, &MASKS, |b| world.relay_accepts(b));
    }
}

#[test]
fn truncated_command_frames_never_authenticate() {
    let world = World::new(21);
    for (name, block) in command_blocks(&world) {
        every_truncation(name, &block, |b| world.relay_accepts(b));
    }
}

#[test]
fn altered_msg_blocks_never_open() {
    let world = World::new(22);
    for (name, block) in msg_blocks(&world) {
        every_position(name, &block, &MASKS, |b| world.client_opens(b));
    }
}

#[test]
fn truncated_msg_frames_never_open() {
    let world = World::new(23);
    for (name, block) in msg_blocks(&world) {
        every_truncation(name, &block, |b| world.client_opens(b));
    }
}

#[test]
fn spanning_frames_altered_in_either_block_are_refused() {
    let world = World::new(24);
    let key = world.relay_delivery_key();
    let frames: Vec<Vec<u8>> = (1..=2u8)
        .map(|n| {
            Reply::Msg(seal_delivery(
                &key,
                world.ids.recipient_id,
                MsgId::from_bytes([n; 24]),
                u64::from(n),
                &body(n),
            ))
            .encode()
        })
        .collect();
    let blocks = to_blocks(&frames);
    assert_eq!(blocks.len(), 2);
    let opens = |blocks: &[Block]| -> Result<(), String> {
        let frames = from_blocks(blocks).map_err(|e| e.to_string())?;
        if frames.len() != 2 {
            return Err("frame count".into());
        }
        for frame in frames {
            let Reply::Msg(d) = Reply::decode(&frame).map_err(|e| e.to_string())? else {
                return Err("not a MSG".into());
            };
            open_delivery(&world.client_delivery_key(), &d).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    assert!(opens(&blocks).is_ok());
    for which in 0..2 {
        for position in 0..BLOCK_LEN {
            let mut altered = blocks.clone();
            altered[which].as_bytes_mut()[position] ^= 0x01;
            assert!(opens(&altered).is_err(), "block {which} byte {position}");
        }
    }
}

#[test]
#[ignore = "exhaustive: 255 changes × 4096 positions per block; run with --ignored"]
fn exhaustive_command_block_changes() {
    let world = World::new(25);
    let all: Vec<u8> = (1..=255).collect();
    for (name, block) in command_blocks(&world) {
        every_position(name, &block, &all, |b| world.relay_accepts(b));
    }
}

#[test]
#[ignore = "exhaustive: 255 changes × 4096 positions; run with --ignored"]
fn exhaustive_msg_block_changes() {
    let world = World::new(26);
    let all: Vec<u8> = (1..=255).collect();
    for (name, block) in msg_blocks(&world) {
        every_position(name, &block, &all, |b| world.client_opens(b));
    }
}

/// Writes valid blocks (one per file) as a seed corpus for the `block_decode` fuzz
/// target: `PASSAGE_FUZZ_SEEDS=fuzz/corpus/block_decode cargo test -p passage-wire
/// --test corruption -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes files; run by hand to seed the fuzz corpus"]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("PASSAGE_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let world = World::new(30);
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, block) in command_blocks(&world).into_iter().chain(msg_blocks(&world)) {
        seeds.push((name.replace(' ', "_"), block.as_bytes().to_vec()));
    }
    let hello = RelayHello {
        versions: SUPPORTED_VERSIONS,
        session_key: world.session.public_key(),
    };
    let mut rng = rng(31);
    let queue = QueueAddress {
        relay: "passage://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8@relay.example.org:443"
            .parse()
            .unwrap(),
        sender_id: world.ids.sender_id,
    };
    let small = vec![
        hello.encode(),
        ClientHello::new(hello.negotiate(SUPPORTED_VERSIONS).unwrap()).encode(),
        Command::Ping
            .encode(CorrId::generate(&mut rng), None)
            .unwrap(),
        Reply::Pong {
            corr_id: CorrId::generate(&mut rng),
        }
        .encode(),
        Reply::Ids {
            corr_id: CorrId::generate(&mut rng),
            ids: world.ids,
        }
        .encode(),
        Reply::End(world.ids.recipient_id).encode(),
        Reply::Err {
            corr_id: None,
            entity: Entity::None,
            code: ErrorCode::Syntax,
        }
        .encode(),
        queue.encode(),
    ];
    let stream: Vec<u8> = to_blocks(&small)
        .iter()
        .flat_map(|b| b.as_bytes().to_vec())
        .collect();
    seeds.push(("hello_ping_pong_ids_end_err".into(), stream));
    let spanning: Vec<u8> = to_blocks(&[vec![0x33; 9000], b"tail".to_vec()])
        .iter()
        .flat_map(|b| b.as_bytes().to_vec())
        .collect();
    seeds.push(("spanning".into(), spanning));
    for (name, bytes) in seeds {
        std::fs::write(dir.join(format!("seed_{name}")), bytes).unwrap();
    }
}
