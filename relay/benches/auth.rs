//! `cargo bench -p passage-relay --bench auth`: does a `SEND` take as long for a queue
//! that exists as for one that does not? Someone holding an old invitation sends to its
//! sender id with a key that is not the queue's; if the answer (`ERR AUTH` either way)
//! came measurably later for a live queue, they would learn the relationship is alive.
//!
//! One run, one relay session over a redb store of `QUEUES` queues (each with its sender
//! key fixed): rounds of `PER_ROUND` probes of live sender ids alternate with rounds of
//! probes of ids that exist nowhere, each probe a different id (so the per-connection
//! key cache does not answer). Printed: the median time per probe of each case and the
//! ratio live / absent (1.00 means the same). Then the same for the lookup alone that
//! authentication makes (`Store::queue_keys_by_sender`, the in-memory index), next to
//! the record read it replaced (`Store::queue_by_sender`: a `senders` row, then the
//! queue's record, read and decoded, for a live queue; one miss for an absent one).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_relay::limits::Limits;
use passage_relay::metrics::Metrics;
use passage_relay::session::{Now, ServiceConfig, Session};
use passage_relay::store::{QueueRecord, RedbStore, Store, WriteOp};
use passage_wire::{
    AuthKey, AuthRole, Block, ChannelBinding, ClientHello, Command, CorrId, ErrorCode,
    FrameDecoder, FrameEncoder, RecipientId, RelayHello, Reply, SUPPORTED_VERSIONS, SendMessage,
    SenderId,
};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use rand_core::Rng as _;

const QUEUES: usize = 20_000;
const PER_ROUND: usize = 2_000;
const ROUNDS: usize = 10;

const NOW: Now = Now {
    unix_secs: 1_800_000_000,
    mono_ms: 0,
};

fn random<const N: usize>(rng: &mut StdRng) -> [u8; N] {
    let mut bytes = [0u8; N];
    rng.fill_bytes(&mut bytes);
    bytes
}

fn encode_block(frame: &[u8]) -> Block {
    let mut enc = FrameEncoder::new();
    enc.push_frame(frame).unwrap();
    enc.flush();
    enc.poll_block().unwrap()
}

fn main() {
    let mut rng = StdRng::seed_from_u64(23);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut live = Vec::with_capacity(QUEUES);
    {
        let store = RedbStore::open(&path).unwrap();
        for chunk in 0..QUEUES / 1_000 {
            let creates = (0..1_000)
                .map(|_| {
                    let sender_id = SenderId::from_bytes(random(&mut rng));
                    live.push(sender_id);
                    WriteOp::CreateQueue(QueueRecord {
                        recipient_id: RecipientId::from_bytes(random(&mut rng)),
                        sender_id,
                        recipient_auth_key: DhPublic::from_bytes(random(&mut rng)),
                        recipient_dh_key: DhPublic::from_bytes(random(&mut rng)),
                        relay_dh_secret: DhSecret::generate(&mut rng),
                        sender_auth_key: Some(DhSecret::generate(&mut rng).public_key()),
                    })
                })
                .collect();
            assert!(store.commit(creates).iter().all(Result::is_ok), "{chunk}");
        }
    }
    // Opened again: the index is rebuilt from the file, as after a restart.
    let store = RedbStore::open(&path).unwrap();
    let config = Arc::new(ServiceConfig {
        limits: Limits {
            commands_per_second: u32::MAX,
            command_burst: u32::MAX,
            ..Limits::default()
        },
        ..ServiceConfig::default()
    });
    let binding = ChannelBinding::from_bytes([7; 32]);
    let mut session = Session::new(
        config,
        Arc::new(Metrics::default()),
        ChannelBinding::from_bytes([7; 32]),
        NOW,
        &mut rng,
    );
    let mut out = FrameDecoder::new();
    while let Some(block) = session.poll_block() {
        out.handle_block(&block).unwrap();
    }
    let hello = RelayHello::decode(&out.poll_frame().unwrap()).unwrap();
    let version = hello.negotiate(SUPPORTED_VERSIONS).unwrap();
    session.handle_block(
        &encode_block(&ClientHello::new(version).encode()),
        &store,
        NOW,
        &mut rng,
    );
    // The prober's key: not the queue's (it never sent with this invitation).
    let prober = DhSecret::generate(&mut rng);
    let key = AuthKey::derive(AuthRole::Sender, &prober, &hello.session_key, &binding).unwrap();
    let mut corr = 0u64;
    let mut probes = |ids: &mut dyn Iterator<Item = SenderId>| -> Vec<Block> {
        ids.map(|sender_id| {
            corr += 1;
            let send = Command::Send(SendMessage {
                sender_id,
                sender_auth_key: None,
                body: Box::new([0x5a; ENVELOPE_LEN]),
            });
            encode_block(
                &send
                    .encode(CorrId::from_bytes(corr.to_be_bytes()), Some(&key))
                    .unwrap(),
            )
        })
        .collect()
    };

    let mut times = [Vec::new(), Vec::new()];
    let mut next_live = 0usize;
    for round in 0..2 * ROUNDS {
        // Alternate which case goes first, so that drift favours neither.
        let absent_case = (round % 2 == 1) ^ (round / 2 % 2 == 1);
        let blocks = if absent_case {
            probes(&mut (0..PER_ROUND).map(|_| SenderId::from_bytes(random(&mut rng))))
        } else {
            let start = next_live;
            next_live = (next_live + PER_ROUND) % QUEUES;
            probes(&mut (0..PER_ROUND).map(|i| live[(start + i) % QUEUES]))
        };
        let started = Instant::now();
        for block in &blocks {
            session.handle_block(block, &store, NOW, &mut rng);
            while let Some(reply) = session.poll_block() {
                out.handle_block(&reply).unwrap();
            }
        }
        let elapsed = started.elapsed();
        // Every probe was refused as a missing queue would be, and nothing was written.
        let mut refused = 0;
        while let Some(frame) = out.poll_frame() {
            match Reply::decode(&frame).unwrap() {
                Reply::Err {
                    code: ErrorCode::Auth,
                    ..
                } => refused += 1,
                other => panic!("a probe was answered {other:?}"),
            }
        }
        assert_eq!(refused, PER_ROUND);
        assert!(session.poll_action().is_none());
        times[usize::from(absent_case)].push(elapsed.as_nanos() as f64 / PER_ROUND as f64);
    }
    // The lookups alone, live and absent ids alternating by round.
    let lookup = |f: &dyn Fn(&SenderId) -> bool, rng: &mut StdRng| {
        let mut times = [Vec::new(), Vec::new()];
        for round in 0..2 * ROUNDS {
            let absent_case = (round % 2 == 1) ^ (round / 2 % 2 == 1);
            let ids: Vec<SenderId> = if absent_case {
                (0..PER_ROUND)
                    .map(|_| SenderId::from_bytes(random(rng)))
                    .collect()
            } else {
                (0..PER_ROUND)
                    .map(|i| live[(round * PER_ROUND + i) % QUEUES])
                    .collect()
            };
            let started = Instant::now();
            let found = ids.iter().filter(|id| f(id)).count();
            let elapsed = started.elapsed();
            assert_eq!(found, if absent_case { 0 } else { PER_ROUND });
            times[usize::from(absent_case)].push(elapsed.as_nanos() as f64 / PER_ROUND as f64);
        }
        times
    };
    let mut index = lookup(
        &|id| std::hint::black_box(store.queue_keys_by_sender(id).unwrap()).is_some(),
        &mut rng,
    );
    let mut record = lookup(
        &|id| std::hint::black_box(store.queue_by_sender(id).unwrap()).is_some(),
        &mut rng,
    );
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (live_ns, absent_ns) = (median(&mut times[0]), median(&mut times[1]));
    println!(
        "auth probe, {QUEUES} queues, {ROUNDS} rounds of {PER_ROUND} probes each: \
         live queue {live_ns:.0} ns, absent queue {absent_ns:.0} ns, ratio live/absent {:.3}",
        live_ns / absent_ns
    );
    for (name, times) in [
        ("index lookup (what auth uses)", &mut index),
        ("record read (before)", &mut record),
    ] {
        let (live_ns, absent_ns) = (median(&mut times[0]), median(&mut times[1]));
        println!(
            "{name}: live queue {live_ns:.0} ns, absent queue {absent_ns:.0} ns, ratio live/absent {:.3}",
            live_ns / absent_ns
        );
    }
}
