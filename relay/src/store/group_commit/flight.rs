//! The batches between the two threads of the [`GroupCommitter`](super::GroupCommitter):
//! applied and waiting for their answers, and the commit thread that writes them and
//! answers what each write settled.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{CommitCounters, Reply, UNPERSISTED_LIMIT, closed};
use crate::store::{
    Applied, OpRef, Persisted, StorageFault, Store, WaitFor, WriteError, WriteOp, WriteOutcome,
};

/// Batches applied and not yet answered, between the two threads.
#[derive(Default)]
pub(super) struct Flight {
    /// Held from a batch's apply to its hand-over: batches reach `awaiting` in the order
    /// they were applied, whichever thread applied them.
    pub(super) gate: Mutex<()>,
    /// Wakes [`GroupCommitter::apply_now`] callers waiting for room.
    pub(super) room: tokio::sync::Notify,
    /// The store, for [`GroupCommitter::apply_now`]; let go of when the committer stops,
    /// so that its file can be opened again.
    pub(super) store: Mutex<Option<Arc<dyn Store>>>,
    pub(super) state: Mutex<FlightState>,
    /// Wakes the commit thread: an answer waits for a write, or the apply thread stopped.
    pub(super) to_commit: Condvar,
    /// Wakes the apply thread: answers went out (room under [`UNPERSISTED_LIMIT`]).
    pub(super) to_apply: Condvar,
}

#[derive(Default)]
pub(super) struct FlightState {
    /// In the order applied; the first one has an unanswered op.
    awaiting: VecDeque<Awaiting>,
    /// Unanswered ops in `awaiting`.
    pub(super) ops: usize,
    /// Unanswered ops in `awaiting` that wait for a write ([`WaitFor::Write`]).
    pub(super) urgent: usize,
    /// The batches in `awaiting` with an op that waits for a write, in order: what a
    /// persist settles, without a walk over every batch that waits only for held messages
    /// (at 1,000 busy pairs a second's worth of one- or two-op batches are held, and that
    /// walk, once per commit, took a sixth of the relay's CPU).
    writes_due: VecDeque<u64>,
    /// The apply thread has stopped: write everything, answer, then stop.
    pub(super) applier_done: bool,
    /// How long held messages wait ([`HOLD`] unless [`GroupCommitter::with_hold`]).
    pub(super) hold: Duration,
}

/// One applied batch with ops still to answer.
struct Awaiting {
    batch: u64,
    applied_at: Instant,
    /// `None` once answered.
    replies: Vec<Option<Reply>>,
    results: Vec<Result<WriteOutcome, WriteError>>,
    wait_for: Vec<WaitFor>,
    unanswered: usize,
}

/// An answer to send once the lock is released.
type Answer = (Reply, Result<WriteOutcome, WriteError>);

impl FlightState {
    /// Takes op `index` of the batch at `at` in `awaiting`, if it is still unanswered,
    /// with its result (or `lost`).
    fn answer(&mut self, at: usize, index: usize, lost: Option<&StorageFault>) -> Option<Answer> {
        let batch = self.awaiting.get_mut(at)?;
        let reply = batch.replies.get_mut(index)?.take()?;
        let result = match lost {
            Some(fault) => Err(WriteError::Storage(fault.clone())),
            None => batch
                .results
                .get(index)
                .cloned()
                .unwrap_or_else(|| Err(closed())),
        };
        batch.unanswered = batch.unanswered.saturating_sub(1);
        self.ops = self.ops.saturating_sub(1);
        if batch.wait_for.get(index) == Some(&WaitFor::Write) {
            self.urgent = self.urgent.saturating_sub(1);
        }
        Some((reply, result))
    }

    /// Where batch `batch` is in `awaiting`.
    fn position(&self, batch: u64) -> Option<usize> {
        self.awaiting.binary_search_by_key(&batch, |b| b.batch).ok()
    }

    /// Drops the answered batches at the front.
    fn pop_answered(&mut self) {
        while self.awaiting.front().is_some_and(|b| b.unanswered == 0) {
            self.awaiting.pop_front();
        }
    }

    /// When the commit thread must write next: now if an answer waits for a write (or the
    /// apply thread has stopped), else when the oldest held message has waited [`HOLD`].
    fn write_due(&self) -> Option<Instant> {
        let first = self.awaiting.front()?;
        if self.urgent > 0 || self.applier_done || self.full() {
            return Some(first.applied_at);
        }
        Some(first.applied_at + self.hold)
    }

    /// The apply thread waits for room: everything held is written now.
    pub(super) fn full(&self) -> bool {
        self.ops >= UNPERSISTED_LIMIT
    }

    /// The newest batch whose held messages have waited [`HOLD`] at `now`.
    fn held_due(&self, now: Instant) -> u64 {
        if self.applier_done || self.full() {
            return u64::MAX;
        }
        let due = self
            .awaiting
            .partition_point(|b| b.applied_at + self.hold <= now);
        match due.checked_sub(1).and_then(|at| self.awaiting.get(at)) {
            Some(batch) => batch.batch,
            // Held ops of batches already answered in full are gone: none is due.
            None => self
                .awaiting
                .front()
                .map_or(0, |b| b.batch.saturating_sub(1)),
        }
    }
}

impl Flight {
    pub(super) fn lock(&self) -> MutexGuard<'_, FlightState> {
        // Nothing panics while holding it; a poisoned lock still guards whole data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// No batch is applied from here on: the commit thread writes what is left and stops.
    pub(super) fn stop(&self) {
        let _gate = lock_gate(self);
        self.lock().applier_done = true;
        *self.store.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.to_commit.notify_one();
        self.room.notify_waiters();
    }
}

pub(super) fn lock_gate(flight: &Flight) -> MutexGuard<'_, ()> {
    flight.gate.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Applies a batch, calls its `applied` hooks and hands it to the commit thread; returns
/// the answers due now. The caller holds the gate.
pub(super) fn apply_and_hand_over(
    store: &dyn Store,
    flight: &Flight,
    ops: Vec<WriteOp>,
    replies: &mut Vec<Reply>,
) -> Vec<Answer> {
    let Applied {
        batch,
        results,
        wait_for,
        released,
    } = store.apply(ops);
    for (reply, result) in replies.iter_mut().zip(&results) {
        reply.applied(result);
    }
    hand_over(flight, batch, replies, results, wait_for, &released)
}

/// Waits on `condvar` (for at most `timeout`, if given).
pub(super) fn wait<'a>(
    condvar: &Condvar,
    state: MutexGuard<'a, FlightState>,
    timeout: Option<Duration>,
) -> MutexGuard<'a, FlightState> {
    match timeout {
        Some(timeout) => {
            condvar
                .wait_timeout(state, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0
        }
        None => condvar.wait(state).unwrap_or_else(PoisonError::into_inner),
    }
}

pub(super) fn send_all(answers: Vec<Answer>) {
    for (reply, result) in answers {
        reply.send(result);
    }
}

/// Puts an applied batch in `awaiting` and takes the answers due now: its ops that wait
/// for nothing, and the held ops whose message was acknowledged before it was written.
fn hand_over(
    flight: &Flight,
    batch: u64,
    replies: &mut Vec<Reply>,
    results: Vec<Result<WriteOutcome, WriteError>>,
    wait_for: Vec<WaitFor>,
    released: &[OpRef],
) -> Vec<Answer> {
    let count = replies.len();
    let urgent = wait_for.iter().filter(|w| **w == WaitFor::Write).count();
    let mut state = flight.lock();
    state.awaiting.push_back(Awaiting {
        batch,
        applied_at: Instant::now(),
        replies: replies.drain(..).map(Some).collect(),
        results,
        wait_for,
        unanswered: count,
    });
    state.ops = state.ops.saturating_add(count);
    state.urgent = state.urgent.saturating_add(urgent);
    if urgent > 0 {
        state.writes_due.push_back(batch);
    }
    let mut answers = Vec::new();
    let last = state.awaiting.len().saturating_sub(1);
    for index in 0..count {
        if state.awaiting[last].wait_for.get(index) == Some(&WaitFor::Nothing) {
            answers.extend(state.answer(last, index, None));
        }
    }
    for &(batch, index) in released {
        if let Some(at) = state.position(batch) {
            answers.extend(state.answer(at, index, None));
        }
    }
    state.pop_answered();
    // The commit thread sleeps until the first batch's deadline, or for one hold if there
    // was no batch: either way it is up by the time a batch handed over now is due, so it
    // is woken only for a write due now. (Waking it for every first batch cost a futex
    // call and two context switches per message at a paced rate, where a held message is
    // acknowledged before the next one arrives and `awaiting` keeps emptying.) Without a
    // hold, it sleeps without a deadline when idle and a first batch is due at once.
    let wake = state.urgent > 0 || state.hold.is_zero();
    drop(state);
    if wake {
        flight.to_commit.notify_one();
    }
    answers
}

/// The commit thread: wait until a write is due, persist, answer what it settled, repeat;
/// stops once the apply thread has stopped and every op is answered.
pub(super) fn persist_loop(store: &dyn Store, flight: &Flight, counters: &CommitCounters) {
    loop {
        let held_through = {
            let mut state = flight.lock();
            loop {
                let now = Instant::now();
                match state.write_due() {
                    Some(due) if due <= now => break state.held_due(now),
                    Some(due) => state = wait(&flight.to_commit, state, Some(due - now)),
                    None if state.applier_done => return,
                    // Not woken for a first batch: see `hand_over`.
                    None => {
                        let hold = Some(state.hold).filter(|hold| !hold.is_zero());
                        state = wait(&flight.to_commit, state, hold);
                    }
                }
            }
        };
        let started = Instant::now();
        let persisted = store.persist(held_through);
        if persisted.rows > 0 {
            counters.record_write(persisted.rows, started.elapsed());
        }
        let answers = settle(flight, &persisted);
        counters
            .ops
            .fetch_add(answers.len() as u64, Ordering::Relaxed);
        flight.to_apply.notify_one();
        flight.room.notify_waiters();
        send_all(answers);
    }
}

/// Takes the answers a persist settled: the ops waiting for a write in the batches it
/// covered, the held ops it wrote, and every op of a lost batch.
fn settle(flight: &Flight, persisted: &Persisted) -> Vec<Answer> {
    let mut state = flight.lock();
    let mut answers = Vec::new();
    // Lost batches are the first ones: `awaiting` is in batch order, and the numbers of
    // later batches are higher than any a failed write discarded.
    while let Some(front) = state.awaiting.front()
        && front.batch <= persisted.lost_through
    {
        let (fault, ops) = (persisted.outcome(front.batch).err(), front.replies.len());
        for index in 0..ops {
            answers.extend(state.answer(0, index, fault.as_ref()));
        }
        state.awaiting.pop_front();
    }
    // The lost ones are gone from `awaiting` now: what is left up to `through` is durable.
    while let Some(&batch) = state.writes_due.front()
        && batch <= persisted.through.max(persisted.lost_through)
    {
        state.writes_due.pop_front();
        let Some(at) = state.position(batch) else {
            continue;
        };
        let ops = state.awaiting.get(at).map_or(0, |b| b.wait_for.len());
        for index in 0..ops {
            let waits_for_write =
                state.awaiting.get(at).and_then(|b| b.wait_for.get(index)) == Some(&WaitFor::Write);
            if waits_for_write {
                answers.extend(state.answer(at, index, None));
            }
        }
    }
    for &(batch, index) in &persisted.written {
        if let Some(at) = state.position(batch) {
            let lost = persisted.outcome(batch).err();
            answers.extend(state.answer(at, index, lost.as_ref()));
        }
    }
    state.pop_answered();
    answers
}
