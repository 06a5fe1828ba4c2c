//! What wakes a connection's task besides its own socket: subscription events from the
//! [`Hub`](crate::hub::Hub) and the outcomes of the writes it started.
//!
//! Events land in the connection's [`Mailbox`]: sets of queue ids (so a flood of sends
//! to one queue is one pending wake-up, not a growing queue), the write outcomes in the
//! order they came, and one wake signal.
//!
//! # Why not a channel
//!
//! The outcomes used to come through a tokio channel of their own. One wake-up source
//! per connection is simpler: the task waits on one signal, takes everything at once,
//! and a connection that writes keeps no channel (a tokio channel allocates its first
//! block, about 1.5 KiB, and kept it for the connection's life). The mailbox wakes only
//! a task that waits in [`Mailbox::wait`] (a [`Notify`] wakes only a registered
//! waiter): an event posted while the task runs (its own `ACK`, answered inside its own
//! `apply_now`) leaves a permit instead, so the next `wait` returns at once and no
//! event is missed.

use std::sync::{Mutex, PoisonError};

use passage_wire::RecipientId;
use tokio::sync::Notify;

use crate::id_map::IdSet;
use crate::session::WriteToken;
use crate::store::{WriteError, WriteOutcome};

/// The outcome of one of the connection's writes, for its session.
pub type WriteDone = (WriteToken, Result<WriteOutcome, WriteError>);

/// Events waiting for one connection.
#[derive(Debug, Default)]
pub struct Mailbox {
    events: Mutex<Events>,
    wake: Notify,
}

/// What a connection must handle.
#[derive(Debug, Default)]
pub struct Events {
    /// Queues with a newly stored message (or one acknowledged elsewhere).
    pub notify: IdSet<RecipientId>,
    /// Queues whose subscription moved to another connection.
    pub end: IdSet<RecipientId>,
    /// Outcomes of the connection's writes, in the order they were answered.
    pub done: Vec<WriteDone>,
}

impl Events {
    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.notify.is_empty() && self.end.is_empty() && self.done.is_empty()
    }
}

impl Mailbox {
    /// Waits until an event arrives (returns at once if one arrived since the last wait
    /// returned, even if [`take`](Self::take) has taken it since: the caller then finds
    /// nothing and waits again).
    pub async fn wait(&self) {
        self.wake.notified().await;
    }

    /// Takes every pending event.
    pub fn take(&self) -> Events {
        std::mem::take(&mut *self.lock())
    }

    /// Posts the outcome of a write; wakes the task if it waits.
    pub fn post_done(&self, done: WriteDone) {
        self.post(|e| e.done.push(done));
    }

    /// Changes the pending events with `f`; wakes the task if it waits.
    pub(crate) fn post(&self, f: impl FnOnce(&mut Events)) {
        f(&mut self.lock());
        self.wake.notify_one();
    }

    /// Forgets a pending `END` for `queue` (the connection subscribed to it again);
    /// wakes nobody.
    pub(crate) fn withdraw_end(&self, queue: &RecipientId) {
        self.lock().end.remove(queue);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Events> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn token(n: u64) -> WriteToken {
        WriteToken::for_tests(n)
    }

    #[tokio::test]
    async fn an_event_posted_before_the_wait_is_not_missed() {
        let mailbox = Mailbox::default();
        mailbox.post_done((token(1), Ok(WriteOutcome::Appended)));
        // Posted while nobody waited: the wait returns at once all the same.
        tokio::time::timeout(Duration::from_secs(5), mailbox.wait())
            .await
            .expect("the permit of the earlier post");
        let events = mailbox.take();
        assert_eq!(events.done.len(), 1);
        assert!(mailbox.take().is_empty());
    }

    #[tokio::test]
    async fn outcomes_keep_their_order_and_wake_a_waiting_task() {
        let mailbox = Arc::new(Mailbox::default());
        let waiter = {
            let mailbox = Arc::clone(&mailbox);
            tokio::spawn(async move {
                mailbox.wait().await;
                mailbox.take()
            })
        };
        tokio::task::yield_now().await;
        let poster = Arc::clone(&mailbox);
        std::thread::spawn(move || {
            poster.post_done((token(1), Ok(WriteOutcome::Appended)));
            poster.post_done((token(2), Err(WriteError::Quota)));
        })
        .join()
        .expect("poster");
        let events = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
        let mut done = events.done;
        done.extend(mailbox.take().done);
        let tokens: Vec<_> = done.iter().map(|(t, _)| *t).collect();
        assert_eq!(tokens, [token(1), token(2)]);
    }
}
