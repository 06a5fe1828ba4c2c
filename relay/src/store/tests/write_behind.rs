//! Apply ahead, persist behind: applied changes are readable at once, durable only once
//! persisted; waiting rows merge (a message acknowledged before its write is never
//! written); a failed write discards what is not durable and answers its writers with the
//! fault; and any interleaving of applies and persists ends where one-batch-at-a-time
//! commits end.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use passage_wire::MsgId;
use proptest::prelude::*;

use super::super::{
    GroupCommitter, MemoryStore, RedbStore, StorageFault, Store, WriteError, WriteOp, WriteOutcome,
};
use super::{Counting, append, message, msg_id, one, record, rid};

fn ack(q: u8, n: u64) -> WriteOp {
    WriteOp::Ack {
        recipient_id: rid(q),
        msg_id: msg_id(n),
    }
}

/// The ids of a queue's messages, oldest first, with their sequence numbers.
fn listed(store: &dyn Store, q: u8) -> Vec<(u64, MsgId)> {
    store
        .messages_from(&rid(q), 0, 1_000)
        .unwrap()
        .into_iter()
        .map(|(seq, m)| (seq, m.msg_id))
        .collect()
}

#[test]
fn applied_changes_are_readable_at_once_and_durable_only_once_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        assert!(one(&store, WriteOp::CreateQueue(record(1))).is_ok());
        assert!(one(&store, append(1, 1, 10)).is_ok());
        let applied = store.apply(vec![append(1, 2, 11)]);
        assert!(matches!(applied.results[..], [Ok(WriteOutcome::Appended)]));
        // Readable before it is on disk: body from memory, the older one from the file.
        let read = store.messages_from(&rid(1), 0, 10).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(*read[0].1, message(1, 10));
        assert_eq!(*read[1].1, message(2, 11));
        assert_eq!(store.message_count(&rid(1)).unwrap(), 2);
        // Dropped without a persist: as a crash would, it loses what was not written.
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(listed(&store, 1), vec![(0, msg_id(1))]);
}

#[test]
fn a_message_acknowledged_before_its_write_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        assert!(one(&store, WriteOp::CreateQueue(record(1))).is_ok());
        let first = store.apply(vec![append(1, 1, 10), append(1, 2, 10)]);
        let second = store.apply(vec![ack(1, 1)]);
        assert!(matches!(
            second.results[..],
            [Ok(WriteOutcome::Acked { found: true })]
        ));
        let persisted = store.persist(u64::MAX);
        assert!(persisted.through >= second.batch && first.batch < second.batch);
        assert!(persisted.outcome(first.batch).is_ok());
        // Message 1 came and went in memory: only message 2 is written.
        assert_eq!(persisted.rows, 1);
        // Acknowledged once on disk: its delete is written.
        store.apply(vec![ack(1, 2)]);
        assert_eq!(store.persist(u64::MAX).rows, 1);
        // Acknowledged during the write of its put: both reach the disk, in order.
        assert!(one(&store, append(1, 3, 10)).is_ok());
        // Nothing to write: no transaction.
        assert_eq!(store.persist(u64::MAX).rows, 0);
        assert_eq!(listed(&store, 1), vec![(2, msg_id(3))]);
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(listed(&store, 1), vec![(2, msg_id(3))]);
}

/// With every message acknowledged while held, no write is ever due: what the store keeps
/// to find held messages by age must not grow with the traffic.
#[test]
fn messages_acknowledged_while_held_leave_nothing_behind() {
    let store = MemoryStore::new();
    assert!(one(&store, WriteOp::CreateQueue(record(1))).is_ok());
    for n in 0..1_000 {
        store.apply(vec![append(1, n, 10)]);
        store.apply(vec![ack(1, n)]);
    }
    assert_eq!(store.held_entries(), 0);
    assert_eq!(store.message_count(&rid(1)).unwrap(), 0);
    // Out of order: the oldest stays held, what is behind it waits for it.
    store.apply(vec![append(1, 2_000, 10)]);
    store.apply(vec![append(1, 2_001, 10)]);
    store.apply(vec![ack(1, 2_001)]);
    assert_eq!(store.held_entries(), 2);
    store.apply(vec![ack(1, 2_000)]);
    assert_eq!(store.held_entries(), 0);
}

#[test]
fn a_failed_write_discards_what_is_not_durable_and_numbers_still_grow() {
    let store = MemoryStore::new();
    assert!(one(&store, WriteOp::CreateQueue(record(1))).is_ok());
    assert!(one(&store, append(1, 1, 10)).is_ok());
    let lost = store.apply(vec![append(1, 2, 10), WriteOp::CreateQueue(record(2))]);
    assert_eq!(store.message_count(&rid(1)).unwrap(), 2);
    store.set_failing(true);
    let persisted = store.persist(u64::MAX);
    assert!(persisted.through >= lost.batch);
    assert!(matches!(
        persisted.outcome(lost.batch),
        Err(StorageFault::Injected)
    ));
    store.set_failing(false);
    // The disk's state again: message 2 and queue 2 are gone, message 1 is there.
    assert_eq!(listed(&store, 1), vec![(0, msg_id(1))]);
    assert!(store.queue(&rid(2)).unwrap().is_none());
    assert_eq!(store.stats().unwrap().messages, 1);
    // The lost message's sequence number is not given again.
    assert!(one(&store, append(1, 3, 10)).is_ok());
    assert_eq!(listed(&store, 1), vec![(0, msg_id(1)), (2, msg_id(3))]);
    // Later batches are durable again; the old loss does not cover them.
    let later = store.apply(vec![append(1, 4, 10)]);
    assert!(store.persist(u64::MAX).outcome(later.batch).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_answers_its_writers_with_the_fault() {
    let store = Counting::new(MemoryStore::new(), std::time::Duration::ZERO);
    let committer = GroupCommitter::new(store.clone());
    assert!(
        committer
            .write(WriteOp::CreateQueue(record(1)))
            .await
            .is_ok()
    );
    store.fail_writes.store(true, Ordering::SeqCst);
    assert!(matches!(
        committer.write(append(1, 1, 10)).await,
        Err(WriteError::Storage(StorageFault::Injected))
    ));
    store.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(store.message_count(&rid(1)).unwrap(), 0);
    assert!(matches!(
        committer.write(append(1, 2, 10)).await,
        Ok(WriteOutcome::Appended)
    ));
    committer.close().await;
    assert_eq!(listed(store.as_ref(), 1), vec![(1, msg_id(2))]);
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Step {
    /// A batch of ops, by (kind, queue, message number).
    Apply(Vec<(u8, u8, u64)>),
    /// A write of everything applied.
    Persist,
    /// A write that fails (memory store only).
    FailedPersist,
}

fn op((kind, q, n): (u8, u8, u64)) -> WriteOp {
    match kind {
        0 => WriteOp::CreateQueue(record(q)),
        1 => WriteOp::DeleteQueue {
            recipient_id: rid(q),
        },
        2 => ack(q, n),
        // Appends are the most common op, as in the relay.
        _ => append(q, n, 10),
    }
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let op = (0u8..6, 1u8..4, 0u64..6);
    let step = prop_oneof![
        6 => prop::collection::vec(op, 1..6).prop_map(Step::Apply),
        2 => Just(Step::Persist),
        1 => Just(Step::FailedPersist),
    ];
    prop::collection::vec(step, 1..40)
}

/// A store committed one batch at a time with `batches`.
fn replayed(batches: &[Vec<(u8, u8, u64)>]) -> MemoryStore {
    let model = MemoryStore::new();
    for ops in batches {
        model.commit(ops.iter().copied().map(op).collect());
    }
    model
}

/// What a reader sees of queues 1 to 3.
fn view(store: &dyn Store) -> Vec<(bool, Vec<MsgId>, u64)> {
    (1..4)
        .map(|q| {
            (
                store.queue(&rid(q)).unwrap().is_some(),
                listed(store, q).into_iter().map(|(_, id)| id).collect(),
                store.message_count(&rid(q)).unwrap(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any interleaving of applies and persists gives the results, the reads and (after
    /// the last persist and a reopen) the file that committing each batch at once gives.
    #[test]
    fn write_behind_matches_committing_each_batch(steps in steps()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let model = MemoryStore::new();
        {
            let store = RedbStore::open(&path).unwrap();
            for step in steps {
                match step {
                    Step::Apply(ops) => {
                        let applied = store.apply(ops.iter().copied().map(op).collect());
                        let expected = model.commit(ops.into_iter().map(op).collect());
                        prop_assert_eq!(
                            format!("{:?}", applied.results),
                            format!("{expected:?}")
                        );
                    }
                    Step::Persist | Step::FailedPersist => {
                        prop_assert!(store.persist(u64::MAX).fault.is_none());
                    }
                }
                prop_assert_eq!(view(&store), view(&model));
            }
            prop_assert!(store.persist(u64::MAX).fault.is_none());
        }
        let store = RedbStore::open(&path).unwrap();
        prop_assert_eq!(view(&store), view(&model));
    }

    /// With failed writes too: a failed write takes the store back to what the batches
    /// written before it give, and the store goes on from there as that would.
    #[test]
    fn a_failed_write_goes_back_to_the_written_batches(steps in steps()) {
        let store = MemoryStore::new();
        let (mut written, mut unwritten) = (Vec::new(), Vec::new());
        let mut model = MemoryStore::new();
        for step in steps {
            match step {
                Step::Apply(ops) => {
                    let applied = store.apply(ops.iter().copied().map(op).collect());
                    let expected = model.commit(ops.iter().copied().map(op).collect());
                    prop_assert_eq!(
                        format!("{:?}", applied.results),
                        format!("{expected:?}")
                    );
                    unwritten.push(ops);
                }
                Step::Persist => {
                    let batch = store.apply(Vec::new()).batch;
                    prop_assert!(store.persist(u64::MAX).outcome(batch).is_ok());
                    written.append(&mut unwritten);
                }
                Step::FailedPersist => {
                    let batch = store.apply(Vec::new()).batch;
                    store.set_failing(true);
                    let persisted = store.persist(u64::MAX);
                    store.set_failing(false);
                    if persisted.outcome(batch).is_ok() {
                        // Nothing to write (no change, or every change cancelled out).
                        written.append(&mut unwritten);
                    } else {
                        unwritten.clear();
                        model = replayed(&written);
                    }
                }
            }
            prop_assert_eq!(view(&store), view(&model));
        }
    }
}

/// A committer holding messages for `hold`, over a store with queue 1 created.
async fn held_committer(
    store: Arc<dyn Store>,
    hold: std::time::Duration,
) -> (GroupCommitter, Arc<super::super::CommitCounters>) {
    let counters = Arc::new(super::super::CommitCounters::default());
    let committer = GroupCommitter::with_hold(store, Arc::clone(&counters), hold);
    assert!(
        committer
            .write(WriteOp::CreateQueue(record(1)))
            .await
            .is_ok()
    );
    (committer, counters)
}

/// Through the committer: a message acknowledged while it is held is answered `OK` at the
/// acknowledgement and never written; one that nobody acknowledges is answered once written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committer_answers_a_held_message_at_its_ack_or_once_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = Arc::new(RedbStore::open(&path).unwrap());
    // Held far longer than the test takes: nothing here depends on the machine's speed.
    let hold = std::time::Duration::from_secs(600);
    let (committer, counters) = held_committer(store.clone(), hold).await;
    let rows = || counters.rows.load(Ordering::SeqCst);
    let created_rows = rows();
    let (tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let answer = |n: u64| -> super::super::Callback {
        let tx = tx.clone();
        Box::new(move |result| {
            let _ = tx.send((n, result));
        })
    };
    // Sent, delivered (readable at once), acknowledged: the sender's answer comes with the
    // acknowledgement, and nothing is written.
    committer
        .submit(Box::new(append(1, 1, 10)), None, answer(1))
        .await;
    while store.message_count(&rid(1)).unwrap() == 0 {
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        committer.write(ack(1, 1)).await,
        Ok(WriteOutcome::Acked { found: true })
    ));
    assert!(matches!(
        answers.recv().await,
        Some((1, Ok(WriteOutcome::Appended)))
    ));
    assert_eq!(rows(), created_rows);
    // Not acknowledged: answered once written (here by `close`, which writes everything).
    committer
        .submit(Box::new(append(1, 2, 10)), None, answer(2))
        .await;
    committer.close().await;
    assert!(matches!(
        answers.try_recv(),
        Ok((2, Ok(WriteOutcome::Appended)))
    ));
    assert_eq!(rows(), created_rows + 1);
    drop(committer);
    drop(store);
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(listed(&store, 1), vec![(1, msg_id(2))]);
}

/// The commit thread is not woken for a held message (only for writes due now), so it must
/// be up by itself when the hold ends: a message nobody acknowledges, appended while the
/// committer was idle, is written and answered once its hold is over — not before, and
/// not never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_message_appended_to_an_idle_committer_is_written_when_its_hold_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path().join("store.redb")).unwrap());
    let hold = std::time::Duration::from_millis(300);
    let (committer, counters) = held_committer(store.clone(), hold).await;
    let rows = || counters.rows.load(Ordering::SeqCst);
    let created_rows = rows();
    for n in 1..=2 {
        // Idle for part of a hold: the commit thread sleeps with nothing to write.
        tokio::time::sleep(hold / 2).await;
        let (tx, answer) = tokio::sync::oneshot::channel();
        let submitted = std::time::Instant::now();
        committer
            .submit(
                Box::new(append(1, n, 10)),
                None,
                Box::new(move |result| {
                    let _ = tx.send((result, submitted.elapsed()));
                }),
            )
            .await;
        // A bound for liveness only (a lost wake-up would never answer); hold is 0.3 s.
        let (result, after) = tokio::time::timeout(std::time::Duration::from_secs(60), answer)
            .await
            .expect("a held message is written once its hold ends")
            .unwrap();
        assert!(matches!(result, Ok(WriteOutcome::Appended)));
        assert!(after >= hold, "answered before its hold ended");
        assert_eq!(rows(), created_rows + n);
    }
    committer.close().await;
}

/// A failed write discards held messages too: their senders get the fault, as do the
/// writers whose op waited for that write, and the committer goes on afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_answers_held_messages_with_the_fault_too() {
    let store = Counting::new(MemoryStore::new(), std::time::Duration::ZERO);
    let hold = std::time::Duration::from_secs(600);
    let (committer, _) = held_committer(store.clone(), hold).await;
    let (tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for n in 1..=3 {
        let tx = tx.clone();
        committer
            .submit(
                Box::new(append(1, n, 10)),
                None,
                Box::new(move |result| {
                    let _ = tx.send((n, result));
                }),
            )
            .await;
    }
    while store.message_count(&rid(1)).unwrap() < 3 {
        tokio::task::yield_now().await;
    }
    store.fail_writes.store(true, Ordering::SeqCst);
    assert!(matches!(
        committer.write(WriteOp::CreateQueue(record(2))).await,
        Err(WriteError::Storage(StorageFault::Injected))
    ));
    let mut held: Vec<u64> = Vec::new();
    for _ in 1..=3 {
        let (n, result) = answers.recv().await.unwrap();
        assert!(matches!(
            result,
            Err(WriteError::Storage(StorageFault::Injected))
        ));
        held.push(n);
    }
    held.sort_unstable();
    assert_eq!(held, vec![1, 2, 3]);
    store.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(store.message_count(&rid(1)).unwrap(), 0);
    assert!(
        committer
            .write(WriteOp::CreateQueue(record(2)))
            .await
            .is_ok()
    );
    committer.close().await;
}
