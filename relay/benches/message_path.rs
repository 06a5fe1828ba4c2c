//! `cargo bench -p passage-relay --bench message_path`: the relay's per-message path
//! without sockets — a `SEND` block through the sender's session (decode, MAC check,
//! append), the write applied to the store, the subscriber's session sealing the `MSG`
//! block, and its `ACK` — so a regression in the protocol core or the store shows up
//! without a network. The baseline of the same run is the same blocks through the
//! framing alone (encode + decode, no queue logic, no store).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::DhSecret;
use passage_relay::limits::Limits;
use passage_relay::metrics::Metrics;
use passage_relay::session::{Action, Now, ServiceConfig, Session};
use passage_relay::store::{MemoryStore, RedbStore, Store};
use passage_wire::{
    AuthKey, AuthRole, Block, ChannelBinding, ClientHello, Command, CorrId, DeliveryKey,
    FrameDecoder, FrameEncoder, NewQueue, RelayHello, Reply, SUPPORTED_VERSIONS, SendMessage,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: Now = Now {
    unix_secs: 1_800_000_000,
    mono_ms: 0,
};

struct Side {
    session: Session,
    key_source: (passage_crypto::primitives::DhPublic, [u8; 32]),
    out: FrameDecoder,
}

fn encode_block(frame: &[u8]) -> Block {
    let mut enc = FrameEncoder::new();
    enc.push_frame(frame).unwrap();
    enc.flush();
    enc.poll_block().unwrap()
}

fn open(config: &Arc<ServiceConfig>, store: &dyn Store, seed: u8, rng: &mut StdRng) -> Side {
    let binding = [seed; 32];
    let mut session = Session::new(
        Arc::clone(config),
        Arc::new(Metrics::default()),
        ChannelBinding::from_bytes(binding),
        NOW,
        rng,
    );
    let mut out = FrameDecoder::new();
    while let Some(b) = session.poll_block() {
        out.handle_block(&b).unwrap();
    }
    let hello = RelayHello::decode(&out.poll_frame().unwrap()).unwrap();
    let version = hello.negotiate(SUPPORTED_VERSIONS).unwrap();
    session.handle_block(
        &encode_block(&ClientHello::new(version).encode()),
        store,
        NOW,
        rng,
    );
    Side {
        session,
        key_source: (hello.session_key, binding),
        out,
    }
}

/// Runs the session's actions against the store; returns the reply frames.
fn drive(side: &mut Side, store: &dyn Store) -> Vec<Vec<u8>> {
    while let Some(action) = side.session.poll_action() {
        if let Action::Write { token, op } = action {
            let result = store.commit(vec![*op]).pop().unwrap();
            side.session.handle_write(token, result, store, NOW);
        }
    }
    while let Some(b) = side.session.poll_block() {
        side.out.handle_block(&b).unwrap();
        // Written: the relay's driver hands its blocks back for reuse.
        b.recycle();
    }
    std::iter::from_fn(|| side.out.poll_frame()).collect()
}

fn key(side: &Side, role: AuthRole, secret: &DhSecret) -> AuthKey {
    AuthKey::derive(
        role,
        secret,
        &side.key_source.0,
        &ChannelBinding::from_bytes(side.key_source.1),
    )
    .unwrap()
}

/// One message through the relay: SEND, store, MSG to the subscriber, ACK.
fn bench_store(c: &mut Criterion, name: &str, store: &dyn Store) {
    let mut rng = StdRng::seed_from_u64(1);
    let config = Arc::new(ServiceConfig {
        limits: Limits {
            command_burst: u32::MAX,
            ..Limits::default()
        },
        password: None,
        queue_budget: None,
    });
    let mut recipient = open(&config, store, 1, &mut rng);
    let mut sender = open(&config, store, 2, &mut rng);
    let auth = DhSecret::generate(&mut rng);
    let dh = DhSecret::generate(&mut rng);
    let new = Command::New(NewQueue {
        recipient_auth_key: auth.public_key(),
        recipient_dh_key: dh.public_key(),
        password: None,
    });
    let rkey = key(&recipient, AuthRole::Recipient, &auth);
    recipient.session.handle_block(
        &encode_block(&new.encode(CorrId::from_bytes([0; 8]), Some(&rkey)).unwrap()),
        store,
        NOW,
        &mut rng,
    );
    let ids = match Reply::decode(&drive(&mut recipient, store)[0]).unwrap() {
        Reply::Ids { ids, .. } => ids,
        other => panic!("{other:?}"),
    };
    let delivery = DeliveryKey::for_recipient(&dh, &ids.relay_dh_key).unwrap();
    let sub = Command::Sub(ids.recipient_id)
        .encode(CorrId::from_bytes([1; 8]), Some(&rkey))
        .unwrap();
    recipient
        .session
        .handle_block(&encode_block(&sub), store, NOW, &mut rng);
    drive(&mut recipient, store);
    let sender_secret = DhSecret::generate(&mut rng);
    let skey = key(&sender, AuthRole::Sender, &sender_secret);
    let send = |first: bool, n: u64| {
        let cmd = Command::Send(SendMessage {
            sender_id: ids.sender_id,
            sender_auth_key: first.then(|| sender_secret.public_key()),
            body: Box::new([n as u8; ENVELOPE_LEN]),
        });
        encode_block(
            &cmd.encode(CorrId::from_bytes(n.to_be_bytes()), Some(&skey))
                .unwrap(),
        )
    };
    let first = send(true, 0);
    sender.session.handle_block(&first, store, NOW, &mut rng);
    drive(&mut sender, store);

    let mut group = c.benchmark_group("message_path");
    group.throughput(Throughput::Elements(1));
    let mut n = 1u64;
    let mut pending_msg: Option<passage_wire::MsgId> = None;
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                n += 1;
                send(false, n)
            },
            |block| {
                // SEND → OK
                sender.session.handle_block(&block, store, NOW, &mut rng);
                drive(&mut sender, store);
                // The driver wakes the subscriber; it seals the MSG.
                recipient
                    .session
                    .handle_notify(ids.recipient_id, store, NOW);
                for frame in drive(&mut recipient, store) {
                    if let Ok(Reply::Msg(d)) = Reply::decode(&frame) {
                        black_box(passage_wire::open_delivery(&delivery, &d).is_ok());
                        pending_msg = Some(d.msg_id);
                    }
                }
                // ACK → OK (and the next message, if any)
                if let Some(msg_id) = pending_msg.take() {
                    let ack = Command::Ack {
                        recipient_id: ids.recipient_id,
                        msg_id,
                    }
                    .encode(CorrId::from_bytes([2; 8]), Some(&rkey))
                    .unwrap();
                    recipient
                        .session
                        .handle_block(&encode_block(&ack), store, NOW, &mut rng);
                    drive(&mut recipient, store);
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    // Baseline: the same two blocks (a SEND in, a MSG out) through framing only.
    let mut group = c.benchmark_group("message_path");
    group.throughput(Throughput::Elements(1));
    let frame = vec![7u8; 4004];
    group.bench_function("framing_only_baseline", |b| {
        b.iter(|| {
            let mut dec = FrameDecoder::new();
            for _ in 0..2 {
                // Blocks and frames go back for reuse, as the relay's do.
                let block = encode_block(black_box(&frame));
                dec.handle_block(&block).unwrap();
                block.recycle();
                if let Some(frame) = dec.poll_frame() {
                    FrameDecoder::recycle(black_box(frame));
                }
            }
        })
    });
    group.finish();

    let memory = MemoryStore::new();
    bench_store(c, "send_deliver_ack_memory_store", &memory);
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open(dir.path().join("store.redb")).unwrap();
    bench_store(c, "send_deliver_ack_redb_durable", &redb);
    bench_batched(c);
}

/// The store's share under group commit: 64 messages appended in one durable commit (over
/// 64 queues, as under load), then acknowledged in another, per message. The single-message
/// figure above is one fsync per write; this one is what a loaded relay pays per message.
fn bench_batched(c: &mut Criterion) {
    use passage_relay::store::{QueueRecord, StoredMessage, WriteOp, WriteOutcome};
    use passage_wire::{MsgId, RecipientId, SenderId};
    const BATCH: u64 = 64;
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("store.redb")).unwrap();
    let id = |tag: u8, n: u64| {
        let mut bytes = [tag; 24];
        bytes[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        bytes
    };
    let creates = (0..BATCH)
        .map(|q| {
            WriteOp::CreateQueue(QueueRecord {
                recipient_id: RecipientId::from_bytes(id(1, q)),
                sender_id: SenderId::from_bytes(id(2, q)),
                recipient_auth_key: DhSecret::from_bytes([3; 32]).public_key(),
                recipient_dh_key: DhSecret::from_bytes([4; 32]).public_key(),
                relay_dh_secret: DhSecret::from_bytes([5; 32]),
                sender_auth_key: None,
            })
        })
        .collect();
    assert!(store.commit(creates).iter().all(Result::is_ok));
    let mut group = c.benchmark_group("message_path");
    group.throughput(Throughput::Elements(BATCH));
    let mut n = 0u64;
    group.bench_function("store_append_ack_redb_batch64", |b| {
        b.iter(|| {
            n += 1;
            let msg_id = |q: u64| {
                let mut bytes = [0u8; 24];
                bytes[..8].copy_from_slice(&n.to_be_bytes());
                bytes[8..16].copy_from_slice(&q.to_be_bytes());
                MsgId::from_bytes(bytes)
            };
            let appends = (0..BATCH)
                .map(|q| WriteOp::Append {
                    recipient_id: RecipientId::from_bytes(id(1, q)),
                    sender_key: None,
                    message: StoredMessage {
                        msg_id: msg_id(q),
                        received_at: NOW.unix_secs,
                        body: Box::new([q as u8; ENVELOPE_LEN]),
                    },
                    quota: 256,
                    hold: false,
                })
                .collect();
            let ok = store.commit(appends);
            assert!(ok.iter().all(|r| matches!(r, Ok(WriteOutcome::Appended))));
            let acks = (0..BATCH)
                .map(|q| WriteOp::Ack {
                    recipient_id: RecipientId::from_bytes(id(1, q)),
                    msg_id: msg_id(q),
                })
                .collect();
            black_box(store.commit(acks));
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
