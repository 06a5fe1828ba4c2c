//! Delivery: the queues this connection subscribes to and the messages it sends their
//! recipient (`MSG`), `GET`, and the sweep of expired messages found at a queue's head.
//!
//! # Delivery window
//!
//! A subscription keeps a cursor (the sequence number after the last message it
//! delivered) and the ids of the messages delivered and not yet acknowledged. It
//! delivers while fewer than [`DELIVERY_WINDOW`] are unacknowledged, so a recipient
//! that acknowledges each message after handling it always has the next ones already
//! on their way, and several `MSG`s share a write. `ACK` by id deletes that message
//! and frees its slot, in any order. Delivery stays at least once: a message
//! delivered and never acknowledged stays in the queue and comes again on the next
//! `SUB` (a new connection, or `SUB` again on this one), and a client drops a message
//! it has already handled by its id.

use std::collections::VecDeque;

use passage_crypto::primitives::DhPublic;
use passage_wire::{
    CorrId, DeliveryKey, Entity, ErrorCode, MsgId, RecipientId, Reply, seal_delivery,
};

use super::commands::Pending;
use super::{Now, Session};
use crate::metrics::Metrics;
use crate::store::{Store, StoredMessage, WriteOp};

/// Messages of one subscribed queue delivered and not yet acknowledged, at most.
pub const DELIVERY_WINDOW: usize = 16;

/// What waited for a sweep of expired messages.
pub(super) enum AfterSweep {
    /// Deliver the subscribed queue's next message.
    Deliver(RecipientId),
    /// Answer a `GET`.
    Get {
        corr_id: CorrId,
        recipient_id: RecipientId,
    },
}

/// A queue this connection subscribes to.
pub(super) struct Subscription {
    pub(super) key: DeliveryKey,
    /// The recipient's auth key (fixed at `NEW`): its `ACK`s need no store read.
    pub(super) auth_key: DhPublic,
    /// Messages delivered and not yet acknowledged, oldest first; at most
    /// [`DELIVERY_WINDOW`]. An acknowledgement frees a slot at once, while the deletion
    /// is written (a crash before it is durable means the message comes again, and the
    /// client drops it by its id).
    pub(super) in_flight: VecDeque<MsgId>,
    /// Sequence number of the next message to deliver (one above the last delivered).
    pub(super) next_seq: u64,
    /// A sweep of expired messages is under way for this queue.
    pub(super) sweeping: bool,
}

impl Session {
    /// The queues this connection subscribes to.
    pub fn subscriptions(&self) -> impl Iterator<Item = &RecipientId> {
        self.subscriptions.keys()
    }

    /// Delivers to the subscribed queues that waited for the backlog to drain; call
    /// after sending the blocks. True if it queued blocks or actions.
    pub fn resume_deliveries(&mut self, store: &dyn Store, now: Now) -> bool {
        if self.stalled.is_empty() || self.backlog_full() {
            return false;
        }
        let before = (self.encoder.pending_blocks(), self.actions.len());
        for recipient_id in std::mem::take(&mut self.stalled) {
            self.deliver_next(recipient_id, store, now);
        }
        self.encoder.has_partial_block()
            || (self.encoder.pending_blocks(), self.actions.len()) != before
    }

    fn backlog_full(&self) -> bool {
        self.encoder.pending_blocks() >= self.config.limits.max_backlog_blocks
    }

    /// A message may be waiting in a queue this connection subscribes to.
    /// The driver calls this when a message was stored in, or acknowledged from, a
    /// subscribed queue (the acknowledgement may have come over another connection:
    /// the message this connection delivered is then gone, and the next one is due).
    pub fn handle_notify(&mut self, recipient_id: RecipientId, store: &dyn Store, now: Now) {
        if let Some(sub) = self.subscriptions.get_mut(&recipient_id)
            && sub.in_flight.len() >= DELIVERY_WINDOW
        {
            // A full window: messages acknowledged over another connection are gone
            // from the store, and free their slots (index lookups, no read).
            sub.in_flight
                .retain(|id| store.has_message(&recipient_id, id).unwrap_or(true));
        }
        self.deliver_next(recipient_id, store, now);
    }

    /// Another connection took over the subscription: say `END`.
    pub fn handle_end(&mut self, recipient_id: RecipientId) {
        if self.subscriptions.remove(&recipient_id).is_some() {
            self.push_reply(&Reply::End(recipient_id));
        }
    }

    /// Answers `GET` with the queue's first message or `ERR NO_MSG`. An expired
    /// message at the head (not yet swept) is swept first, once, so that a fresh
    /// message behind it is found.
    pub(super) fn answer_get(
        &mut self,
        corr_id: CorrId,
        recipient_id: RecipientId,
        store: &dyn Store,
        now: Now,
        may_sweep: bool,
    ) {
        let entity = Entity::Recipient(recipient_id);
        let message = match store.first_message(&recipient_id) {
            Ok(Some(message)) => message,
            Ok(None) => return self.reply_err(Some(corr_id), entity, ErrorCode::NoMsg),
            Err(_) => return self.reply_err(Some(corr_id), entity, ErrorCode::Internal),
        };
        if self.expired(&message, now) {
            if may_sweep {
                self.sweep(
                    now,
                    AfterSweep::Get {
                        corr_id,
                        recipient_id,
                    },
                );
            } else {
                self.reply_err(Some(corr_id), entity, ErrorCode::NoMsg);
            }
            return;
        }
        let key = match store.queue(&recipient_id) {
            Ok(Some(record)) => {
                DeliveryKey::for_relay(&record.relay_dh_secret, &record.recipient_dh_key)
            }
            _ => return self.reply_err(Some(corr_id), entity, ErrorCode::NoMsg),
        };
        match key {
            Ok(key) => self.push_delivery(recipient_id, &key, &message),
            Err(_) => self.reply_err(Some(corr_id), entity, ErrorCode::Internal),
        }
    }

    /// Deletes every expired message now (the periodic sweep may not have run yet).
    fn sweep(&mut self, now: Now, then: AfterSweep) {
        let received_before = now
            .unix_secs
            .saturating_sub(self.config.limits.retention_secs);
        self.write(WriteOp::Expire { received_before }, Pending::Swept(then));
    }

    /// Delivers the queue's next messages while its window has room and the backlog
    /// is not full (then the queue waits for [`Session::resume_deliveries`]).
    pub(super) fn deliver_next(&mut self, recipient_id: RecipientId, store: &dyn Store, now: Now) {
        let Some(sub) = self.subscriptions.get(&recipient_id) else {
            return;
        };
        if sub.sweeping {
            return;
        }
        let room = DELIVERY_WINDOW.saturating_sub(sub.in_flight.len());
        if room == 0 {
            return;
        }
        // Each MSG takes about a block.
        let backlog_room = self
            .config
            .limits
            .max_backlog_blocks
            .saturating_sub(self.encoder.pending_blocks());
        if backlog_room == 0 {
            if !self.stalled.contains(&recipient_id) {
                self.stalled.push(recipient_id);
            }
            return;
        }
        let messages = self.next_to_deliver(recipient_id, store, room.min(backlog_room));
        if messages.len() == backlog_room && backlog_room < room {
            // More may be waiting once the blocks are sent.
            if !self.stalled.contains(&recipient_id) {
                self.stalled.push(recipient_id);
            }
        }
        let Some(sub) = self.subscriptions.get(&recipient_id) else {
            return;
        };
        let key = sub.key.clone();
        for (seq, message) in messages {
            if self.expired(&message, now) {
                if let Some(sub) = self.subscriptions.get_mut(&recipient_id) {
                    sub.sweeping = true;
                }
                self.sweep(now, AfterSweep::Deliver(recipient_id));
                return;
            }
            self.push_delivery(recipient_id, &key, &message);
            if let Some(sub) = self.subscriptions.get_mut(&recipient_id) {
                sub.in_flight.push_back(message.msg_id);
                sub.next_seq = seq.saturating_add(1);
            }
        }
    }

    /// Up to `max` of the queue's next messages for the subscriber, after the last one
    /// it delivered, with their sequence numbers.
    pub(super) fn next_to_deliver(
        &self,
        recipient_id: RecipientId,
        store: &dyn Store,
        max: usize,
    ) -> Vec<(u64, std::sync::Arc<StoredMessage>)> {
        let Some(sub) = self.subscriptions.get(&recipient_id) else {
            return Vec::new();
        };
        store
            .messages_from(&recipient_id, sub.next_seq, max)
            .unwrap_or_default()
    }

    pub(super) fn expired(&self, message: &StoredMessage, now: Now) -> bool {
        message
            .received_at
            .saturating_add(self.config.limits.retention_secs)
            < now.unix_secs
    }

    fn push_delivery(
        &mut self,
        recipient_id: RecipientId,
        key: &DeliveryKey,
        message: &StoredMessage,
    ) {
        let delivery = seal_delivery(
            key,
            recipient_id,
            message.msg_id,
            message.received_at,
            &message.body,
        );
        Metrics::inc(&self.metrics.messages_delivered);
        let reply = Reply::Msg(delivery);
        self.push_reply(&reply);
        // Copied into the blocks: the next delivery on this thread seals into it.
        if let Reply::Msg(delivery) = reply {
            delivery.sealed.recycle();
        }
    }
}
