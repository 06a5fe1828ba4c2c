//! Storage figures: durable commits per second (one message per commit, batches, and the
//! group committer under 200 concurrent writers) and bytes on disk per stored message.
//!
//! `cargo bench -p passage-relay --bench store` prints them. The store lives under the
//! target directory (a real disk, so fsync costs what it costs there), or under
//! `PASSAGE_BENCH_DIR` if set. Figures, not assertions: compare runs on the same machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_relay::store::{
    GroupCommitter, QueueRecord, RedbStore, Store, StoredMessage, WriteOp, WriteOutcome,
};
use passage_wire::{MsgId, RecipientId, SenderId};

/// Queues the messages are spread over (ids are random, so their keys interleave).
const QUEUES: u64 = 100;
/// Messages for the single-commit figure (each costs one fsync).
const SINGLE: u64 = 300;
/// Batches and batch size for the batched figure.
const BATCHES: u64 = 10;
const BATCH_LEN: u64 = 1_000;
/// Concurrent writers and messages each for the group-commit figure.
const WRITERS: u64 = 200;
const PER_WRITER: u64 = 25;

fn id24(tag: u8, n: u64) -> [u8; 24] {
    // Spread like random ids: a cheap mix of n, not a counter in the key's first bytes.
    let mut bytes = [tag; 24];
    let mixed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ n;
    bytes[..8].copy_from_slice(&mixed.to_be_bytes());
    bytes[8..16].copy_from_slice(&n.to_be_bytes());
    bytes
}

fn create(q: u64) -> WriteOp {
    WriteOp::CreateQueue(QueueRecord {
        recipient_id: RecipientId::from_bytes(id24(1, q)),
        sender_id: SenderId::from_bytes(id24(2, q)),
        recipient_auth_key: DhPublic::from_bytes([3; 32]),
        recipient_dh_key: DhPublic::from_bytes([4; 32]),
        relay_dh_secret: DhSecret::from_bytes([5; 32]),
        sender_auth_key: None,
    })
}

fn append(n: u64) -> WriteOp {
    WriteOp::Append {
        recipient_id: RecipientId::from_bytes(id24(1, n % QUEUES)),
        sender_key: None,
        message: StoredMessage {
            msg_id: MsgId::from_bytes(id24(6, n)),
            received_at: n,
            body: Box::new([n as u8; ENVELOPE_LEN]),
        },
        quota: usize::MAX,
        hold: false,
    }
}

fn ack(n: u64) -> WriteOp {
    WriteOp::Ack {
        recipient_id: RecipientId::from_bytes(id24(1, n % QUEUES)),
        msg_id: MsgId::from_bytes(id24(6, n)),
    }
}

fn commit_ok(store: &dyn Store, ops: Vec<WriteOp>) {
    for result in store.commit(ops) {
        assert!(result.is_ok(), "{result:?}");
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn fresh_store(dir: &std::path::Path, name: &str) -> (RedbStore, std::path::PathBuf) {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let store = RedbStore::open(&path).unwrap();
    commit_ok(&store, (0..QUEUES).map(create).collect());
    (store, path)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run small then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = if quick { 10 } else { 1 };
    let base = std::env::var_os("PASSAGE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let dir = tempfile::tempdir_in(base).unwrap();

    // One message per commit: one fsync each.
    let (store, _) = fresh_store(dir.path(), "single.redb");
    let n = SINGLE / scale;
    let start = Instant::now();
    for i in 0..n {
        commit_ok(&store, vec![append(i)]);
    }
    let single = per_second(n, start.elapsed());
    println!("store/commit_single       {single:>10.0} msg/s  ({n} commits of 1 message)");
    drop(store);

    // Batches: one fsync per BATCH_LEN messages. Also gives bytes on disk per message.
    let (store, path) = fresh_store(dir.path(), "batched.redb");
    let disk = |store: &RedbStore| store.stats().unwrap().bytes_on_disk;
    let length = || std::fs::metadata(&path).unwrap().len();
    let (disk_before, length_before) = (disk(&store), length());
    let batches = BATCHES / scale.min(BATCHES);
    let start = Instant::now();
    for b in 0..batches {
        commit_ok(
            &store,
            (b * BATCH_LEN..(b + 1) * BATCH_LEN).map(append).collect(),
        );
    }
    let stored = batches * BATCH_LEN;
    let batched = per_second(stored, start.elapsed());
    println!(
        "store/commit_batched      {batched:>10.0} msg/s  ({batches} commits of {BATCH_LEN}; {:.1}x single)",
        batched / single
    );
    let per_message = |bytes: u64| bytes as f64 / stored as f64;
    println!(
        "store/disk_per_message    {:>10.0} B      (allocated blocks grew {} B over {stored} messages of {ENVELOPE_LEN} B)",
        per_message(disk(&store) - disk_before),
        disk(&store) - disk_before,
    );
    println!(
        "store/length_per_message  {:>10.0} B      (file length, grown by doubling and sparse: {} B)",
        per_message(length() - length_before),
        length()
    );
    // Delivery, then as many new messages: freed pages are reused.
    for b in 0..batches {
        commit_ok(
            &store,
            (b * BATCH_LEN..(b + 1) * BATCH_LEN).map(ack).collect(),
        );
    }
    for b in batches..2 * batches {
        commit_ok(
            &store,
            (b * BATCH_LEN..(b + 1) * BATCH_LEN).map(append).collect(),
        );
    }
    println!(
        "store/disk_after_refill   {:>10.0} B/msg  (all acked, {stored} new stored: {} B allocated)",
        per_message(disk(&store)),
        disk(&store)
    );
    drop(store);

    // The group committer: WRITERS tasks, each appending PER_WRITER messages in turn.
    let (store, _) = fresh_store(dir.path(), "group.redb");
    let store: Arc<dyn Store> = Arc::new(store);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let per_writer = PER_WRITER / scale.min(PER_WRITER);
    let start = Instant::now();
    runtime.block_on(async {
        let committer = Arc::new(GroupCommitter::new(Arc::clone(&store)));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let committer = Arc::clone(&committer);
                tokio::spawn(async move {
                    for i in 0..per_writer {
                        let outcome = committer.write(append(w * per_writer + i)).await;
                        assert!(matches!(outcome, Ok(WriteOutcome::Appended)));
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        committer.close().await;
    });
    let total = WRITERS * per_writer;
    let grouped = per_second(total, start.elapsed());
    println!(
        "store/group_commit        {grouped:>10.0} msg/s  ({WRITERS} writers x {per_writer}, each waits for durability; {:.1}x single)",
        grouped / single
    );
}
