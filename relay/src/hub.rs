//! Who subscribes to which queue, across connections.
//!
//! One connection at most subscribes to a queue; a new `SUB` elsewhere ends the old
//! one with `END`. A stored message wakes the subscriber through its
//! [`Mailbox`](crate::mailbox::Mailbox).

use crate::id_map::IdMap;
use crate::mailbox::Mailbox;
use std::sync::{Arc, Mutex, PoisonError};

use passage_wire::RecipientId;

/// A connection's identity inside the relay (a counter; never sent anywhere).
pub type ConnId = u64;

/// The subscription registry.
#[derive(Debug, Default)]
pub struct Hub {
    subscribers: Mutex<IdMap<RecipientId, Subscriber>>,
}

/// The connection that subscribes to a queue.
#[derive(Debug)]
struct Subscriber {
    conn: ConnId,
    mailbox: Arc<Mailbox>,
    /// A message held for this subscriber waited its whole hold unacknowledged (a recipient
    /// online but not reading): its next messages are written at once, until it
    /// acknowledges one.
    slow: bool,
}

impl Hub {
    /// Makes `conn` the subscriber of `queue`; the previous subscriber gets `END`.
    ///
    /// A connection that takes a queue back before it has handled the `END` of losing
    /// it keeps its subscription: the pending `END` is withdrawn (else its session would
    /// drop the queue while the hub still sent it the queue's notices). Both mailboxes
    /// are changed under the hub's lock, so that whichever `SUB` came last wins.
    pub fn subscribe(&self, queue: RecipientId, conn: ConnId, mailbox: &Arc<Mailbox>) {
        let subscriber = Subscriber {
            conn,
            mailbox: Arc::clone(mailbox),
            slow: false,
        };
        let mut subscribers = self.lock();
        let previous = subscribers.insert(queue, subscriber);
        if let Some(old) = previous
            && old.conn != conn
        {
            old.mailbox.post(|e| {
                e.notify.remove(&queue);
                e.end.insert(queue);
            });
        }
        mailbox.withdraw_end(&queue);
    }

    /// Removes `conn`'s subscription to `queue` (if it still holds it).
    pub fn unsubscribe(&self, queue: &RecipientId, conn: ConnId) {
        let mut subscribers = self.lock();
        if subscribers.get(queue).is_some_and(|s| s.conn == conn) {
            subscribers.remove(queue);
        }
    }

    /// Wakes the subscriber of `queue`, if any.
    pub fn notify(&self, queue: RecipientId) {
        let mailbox = self.lock().get(&queue).map(|s| Arc::clone(&s.mailbox));
        if let Some(mailbox) = mailbox {
            mailbox.post(|e| {
                e.notify.insert(queue);
            });
        }
    }

    /// Whether a message for `queue` may be held back from the disk: a connection
    /// subscribes to it (its recipient is online) and acknowledges what it gets.
    pub fn holds(&self, queue: &RecipientId) -> bool {
        self.lock().get(queue).is_some_and(|s| !s.slow)
    }

    /// Connection `by` acknowledged a message of `queue` (`found`: it was there and is
    /// gone now). The subscriber acknowledges, so its messages are held again; and if
    /// the message was removed over another connection than the subscriber's, the
    /// subscriber is woken, since its next message may be due. The subscriber's own
    /// `ACK` needs no wake-up: its session moved on when it read the `ACK`.
    pub fn acknowledged(&self, queue: &RecipientId, by: ConnId, found: bool) {
        let mailbox = {
            let mut subscribers = self.lock();
            let Some(subscriber) = subscribers.get_mut(queue) else {
                return;
            };
            subscriber.slow = false;
            (found && subscriber.conn != by).then(|| Arc::clone(&subscriber.mailbox))
        };
        if let Some(mailbox) = mailbox {
            mailbox.post(|e| {
                e.notify.insert(*queue);
            });
        }
    }

    /// A message held for `queue` was not acknowledged within the hold: write its next
    /// ones at once (their senders need not wait for a recipient who is not reading).
    pub fn held_too_long(&self, queue: &RecipientId) {
        if let Some(subscriber) = self.lock().get_mut(queue) {
            subscriber.slow = true;
        }
    }

    /// Number of subscribed queues.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no queue is subscribed.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdMap<RecipientId, Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hub, a queue and the mailboxes of two connections.
    fn hub_with_two_connections(id: u8) -> (Hub, RecipientId, Arc<Mailbox>, Arc<Mailbox>) {
        let q = RecipientId::from_bytes([id; 24]);
        let (a, b) = (Arc::new(Mailbox::default()), Arc::new(Mailbox::default()));
        (Hub::default(), q, a, b)
    }

    #[test]
    fn takeover_ends_the_old_subscriber_and_notifications_follow() {
        let (hub, q, a, b) = hub_with_two_connections(1);
        hub.subscribe(q, 1, &a);
        hub.notify(q);
        assert!(a.take().notify.contains(&q));
        hub.subscribe(q, 2, &b);
        assert!(a.take().end.contains(&q));
        hub.notify(q);
        hub.notify(q);
        let events = b.take();
        assert_eq!(events.notify.len(), 1);
        hub.unsubscribe(&q, 1); // not the holder: no effect
        // Held messages: while the subscriber acknowledges.
        assert!(hub.holds(&q));
        hub.held_too_long(&q);
        assert!(!hub.holds(&q));
        hub.acknowledged(&q, 2, true);
        assert!(hub.holds(&q));
        // The subscriber's own acknowledgement wakes nobody; another connection's does.
        assert!(b.take().is_empty());
        hub.acknowledged(&q, 1, false);
        assert!(b.take().is_empty());
        hub.acknowledged(&q, 1, true);
        assert!(b.take().notify.contains(&q));
        assert_eq!(hub.len(), 1);
        hub.unsubscribe(&q, 2);
        assert!(hub.is_empty());
    }

    #[test]
    fn taking_a_queue_back_withdraws_its_pending_end() {
        let (hub, q, a, b) = hub_with_two_connections(2);
        hub.subscribe(q, 1, &a);
        hub.subscribe(q, 2, &b);
        // Connection 1 subscribes again before it has taken the END of losing the queue.
        hub.subscribe(q, 1, &a);
        assert!(a.take().end.is_empty());
        assert!(b.take().end.contains(&q));
        hub.notify(q);
        assert!(a.take().notify.contains(&q));
        assert!(b.take().is_empty());
    }
}
