//! The group committer: concurrent writers share commits, each gets its own answer, and
//! `close` drains.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::super::{
    GroupCommitter, MAX_BATCH, MemoryStore, RedbStore, StorageFault, Store, UNPERSISTED_LIMIT,
    WRITE_QUEUE_CAPACITY, WriteError, WriteOp, WriteOutcome,
};
use super::{Counting, append, one, record, rid};

const WRITERS: u64 = 200;
const QUEUES: u8 = 10;
const QUOTA: usize = 15;

/// `WRITERS` tasks append at once to `QUEUES` queues of quota `QUOTA`: 20 writers per queue,
/// so 15 of each must succeed and 5 must hit the quota.
async fn two_hundred_writers(store: Arc<dyn Store>) {
    let committer = Arc::new(GroupCommitter::new(Arc::clone(&store)));
    for q in 0..QUEUES {
        assert!(matches!(
            committer.write(WriteOp::CreateQueue(record(q))).await,
            Ok(WriteOutcome::Created)
        ));
    }
    let tasks: Vec<_> = (0..WRITERS)
        .map(|n| {
            let committer = Arc::clone(&committer);
            tokio::spawn(async move {
                let op = WriteOp::Append {
                    recipient_id: rid((n % u64::from(QUEUES)) as u8),
                    sender_key: None,
                    message: super::message(n, 5),
                    quota: QUOTA,
                    hold: true,
                };
                committer.write(op).await
            })
        })
        .collect();
    let (mut appended, mut full) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(WriteOutcome::Appended) => appended += 1,
            Err(WriteError::Quota) => full += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((appended, full), (usize::from(QUEUES) * QUOTA, 50));
    for q in 0..QUEUES {
        assert_eq!(store.message_count(&rid(q)).unwrap(), QUOTA as u64);
    }
    committer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() {
    let store = Counting::new(MemoryStore::new(), Duration::from_millis(5));
    two_hundred_writers(store.clone()).await;
    let commits = store.commits.load(Ordering::SeqCst);
    let ops = store.ops.load(Ordering::SeqCst);
    eprintln!("{ops} ops in {commits} commits");
    assert_eq!(ops, WRITERS as usize + usize::from(QUEUES));
    // The 10 creates are sequential (10 commits); the 200 appends share a handful. (How
    // they batch when applied depends on timing: applying is quick, so a batch holds what
    // arrived meanwhile; what is shared for certain is the write.)
    assert!(commits <= usize::from(QUEUES) + 10, "{commits} commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_redb_commits() {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open(dir.path().join("store.redb")).unwrap();
    let store = Counting::new(redb, Duration::ZERO);
    two_hundred_writers(store.clone()).await;
    let commits = store.commits.load(Ordering::SeqCst);
    eprintln!(
        "{} ops in {commits} commits",
        store.ops.load(Ordering::SeqCst)
    );
    assert!(commits <= usize::from(QUEUES) + 50, "{commits} commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_commits_everything_submitted_then_refuses() {
    let store = Counting::new(MemoryStore::new(), Duration::from_millis(2));
    let committer = Arc::new(GroupCommitter::new(store.clone()));
    assert!(
        committer
            .write(WriteOp::CreateQueue(record(1)))
            .await
            .is_ok()
    );
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let committer = Arc::clone(&committer);
            tokio::spawn(async move { committer.write(append(1, n, 5)).await })
        })
        .collect();
    // Let every task queue its write (they are waiting for answers by then).
    while store.ops.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    committer.close().await;
    // Every write that got into the queue was committed before close returned.
    let mut appended = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(WriteOutcome::Appended) => appended += 1,
            Err(WriteError::Storage(StorageFault::Closed)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.message_count(&rid(1)).unwrap(), appended);
    assert_eq!(appended, 100);
    assert!(matches!(
        committer.write(append(1, 500, 5)).await,
        Err(WriteError::Storage(StorageFault::Closed))
    ));
    committer.close().await; // a second close returns at once
}

#[tokio::test]
async fn a_lone_writer_is_committed_at_once_and_close_releases_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = Arc::new(RedbStore::open(&path).unwrap());
    let committer = GroupCommitter::new(store.clone());
    // A single write on a single-threaded runtime: nothing else could ever fill a batch,
    // so this only returns if the committer does not wait for one.
    let created = tokio::time::timeout(
        Duration::from_secs(10),
        committer.write(WriteOp::CreateQueue(record(1))),
    )
    .await;
    assert!(matches!(created, Ok(Ok(WriteOutcome::Created))));
    committer.close().await;
    drop(store);
    let reopened = RedbStore::open(&path).unwrap();
    assert!(reopened.queue(&rid(1)).unwrap().is_some());
    assert!(one(&reopened, append(1, 1, 1)).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_holds_writers_back_and_batches_stop_at_max_batch() {
    // More writers than the queue and the limit of unwritten ops hold while slow commits
    // run: the rest wait for room, none is lost, and no batch is larger than MAX_BATCH.
    let writers = (WRITE_QUEUE_CAPACITY + UNPERSISTED_LIMIT + MAX_BATCH) as u64;
    let store = Counting::new(MemoryStore::new(), Duration::from_millis(30));
    let committer = Arc::new(GroupCommitter::new(store.clone()));
    assert!(
        committer
            .write(WriteOp::CreateQueue(record(1)))
            .await
            .is_ok()
    );
    let tasks: Vec<_> = (0..writers)
        .map(|n| {
            let committer = Arc::clone(&committer);
            let op = WriteOp::Append {
                recipient_id: rid(1),
                sender_key: None,
                message: super::message(n, 5),
                quota: usize::MAX,
                hold: true,
            };
            tokio::spawn(async move { committer.write(op).await })
        })
        .collect();
    for task in tasks {
        let result = task.await.unwrap();
        assert!(matches!(result, Ok(WriteOutcome::Appended)), "{result:?}");
    }
    committer.close().await;
    assert_eq!(store.message_count(&rid(1)).unwrap(), writers);
    let largest = store.largest_batch.load(Ordering::SeqCst);
    // Writes queue up while the thread applies: batches form, and stop at the limit.
    assert!(largest <= MAX_BATCH && largest > 1, "{largest}");
}

/// `submit` calls `applied` with each op's own result once its batch is applied, then
/// `done` once it is committed; the ops of one burst share commits, and a closed committer
/// calls back at once with `Closed` (and never `applied`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_ops_are_answered_by_callback() {
    let store = Counting::new(MemoryStore::new(), Duration::from_millis(2));
    let committer = GroupCommitter::new(store.clone());
    // (op, durable?, result): one channel, so its order is the order of the calls.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let applied = |n: u64| -> Option<super::super::OnApplied> {
        let tx = tx.clone();
        Some(Box::new(
            move |result: &Result<WriteOutcome, WriteError>| {
                let _ = tx.send((n, false, result.clone()));
            },
        ))
    };
    let call = |n: u64| -> super::super::Callback {
        let tx = tx.clone();
        Box::new(move |result| {
            let _ = tx.send((n, true, result));
        })
    };
    committer
        .submit(
            Box::new(WriteOp::CreateQueue(record(1))),
            applied(0),
            call(0),
        )
        .await;
    for n in 1..=50 {
        committer
            .submit(Box::new(append(1, n, 5)), applied(n), call(n))
            .await;
    }
    // A message id used twice: this op alone fails.
    committer
        .submit(Box::new(append(1, 7, 5)), applied(51), call(51))
        .await;
    let mut seen_applied = [false; 52];
    let mut results = Vec::new();
    for _ in 0..2 * 52 {
        let (n, durable, result) = rx.recv().await.unwrap();
        let n = usize::try_from(n).unwrap();
        if durable {
            assert!(seen_applied[n], "op {n} answered before it was applied");
            results.push((n, result));
        } else {
            seen_applied[n] = true;
        }
    }
    results.sort_by_key(|(n, _)| *n);
    assert!(matches!(results[0].1, Ok(WriteOutcome::Created)));
    assert!(
        results[1..=50]
            .iter()
            .all(|(_, r)| matches!(r, Ok(WriteOutcome::Appended)))
    );
    assert!(matches!(results[51].1, Err(WriteError::DuplicateId)));
    assert!(store.commits.load(Ordering::SeqCst) < 52);
    committer.close().await;
    committer
        .submit(Box::new(append(1, 99, 5)), applied(99), call(99))
        .await;
    assert!(matches!(
        rx.recv().await,
        Some((99, true, Err(WriteError::Storage(StorageFault::Closed))))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_counters_match_what_the_store_saw() {
    let store = Counting::new(MemoryStore::new(), Duration::from_millis(2));
    let counters = Arc::new(super::super::CommitCounters::default());
    let committer = Arc::new(GroupCommitter::with_counters(
        store.clone(),
        Arc::clone(&counters),
    ));
    committer
        .write(WriteOp::CreateQueue(record(1)))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..50u8)
        .map(|n| {
            let committer = Arc::clone(&committer);
            tokio::spawn(async move { committer.write(append(1, u64::from(n), 5)).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    committer.close().await;
    let commits = counters.commits.load(Ordering::SeqCst);
    assert_eq!(commits, store.commits.load(Ordering::SeqCst) as u64);
    assert_eq!(counters.ops.load(Ordering::SeqCst), 51);
    // Each commit waited at least the pretend fsync.
    assert!(counters.busy_micros.load(Ordering::SeqCst) >= commits * 2_000);
}

/// `apply_now` applies on the caller's thread and answers as `submit` does: `applied` at
/// once, `done` when due (here: a create, once written); after `close`, `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_applied_now_are_answered_like_submitted_ones() {
    let store = Counting::new(MemoryStore::new(), Duration::from_millis(2));
    let committer = GroupCommitter::new(store.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let call = |n: u64| -> (Option<super::super::OnApplied>, super::super::Callback) {
        let (applied_tx, done_tx) = (tx.clone(), tx.clone());
        (
            Some(Box::new(
                move |result: &Result<WriteOutcome, WriteError>| {
                    let _ = applied_tx.send((n, false, result.clone()));
                },
            )),
            Box::new(move |result| {
                let _ = done_tx.send((n, true, result));
            }),
        )
    };
    let (applied, done) = call(0);
    let (quota_applied, quota_done) = call(1);
    committer
        .apply_now(vec![
            (Box::new(WriteOp::CreateQueue(record(1))), applied, done),
            // Fails on its own (no such queue): answered at once.
            (Box::new(append(2, 1, 5)), quota_applied, quota_done),
        ])
        .await;
    // Applied: readable before the answer.
    assert!(store.queue(&rid(1)).unwrap().is_some());
    let mut events = Vec::new();
    while events.len() < 4 {
        events.push(rx.recv().await.unwrap());
    }
    let position = |n, durable| {
        events
            .iter()
            .position(|(m, d, _)| *m == n && *d == durable)
            .unwrap()
    };
    assert!(position(0, false) < position(0, true));
    assert!(matches!(
        events[position(0, true)].2,
        Ok(WriteOutcome::Created)
    ));
    assert!(matches!(
        events[position(1, true)].2,
        Err(WriteError::NoQueue)
    ));
    committer.close().await;
    let (applied, done) = call(2);
    committer
        .apply_now(vec![(Box::new(append(1, 2, 5)), applied, done)])
        .await;
    assert!(matches!(
        rx.recv().await,
        Some((2, true, Err(WriteError::Storage(StorageFault::Closed))))
    ));
    assert_eq!(store.message_count(&rid(1)).unwrap(), 0);
}
