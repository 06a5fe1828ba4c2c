//! What each verified command does: `act` answers at once or starts a write; the
//! write's outcome comes back through [`Session::handle_write`], which answers the
//! command.

use std::collections::VecDeque;

use passage_crypto::primitives::DhSecret;
use passage_wire::{
    Command, CorrId, DeliveryKey, Entity, ErrorCode, MsgId, QueueIds, RecipientId, Reply,
};
use rand_core::CryptoRng;

use super::auth::Target;
use super::delivery::{AfterSweep, Subscription};
use super::{Action, Now, Session, WriteToken};
use crate::metrics::Metrics;
use crate::store::{QueueRecord, Store, StoredMessage, WriteError, WriteOp, WriteOutcome};

/// What a pending write answers when it completes.
pub(super) enum Pending {
    New {
        corr_id: CorrId,
        ids: QueueIds,
    },
    Send {
        corr_id: CorrId,
        entity: Entity,
    },
    Ack {
        corr_id: CorrId,
        recipient_id: RecipientId,
    },
    Del {
        corr_id: CorrId,
        recipient_id: RecipientId,
    },
    /// Expired messages were swept because one blocked a queue's head; then go on.
    Swept(AfterSweep),
}

impl Session {
    pub(super) fn act<R: CryptoRng + ?Sized>(
        &mut self,
        corr_id: CorrId,
        command: Command,
        target: Option<Target>,
        store: &dyn Store,
        now: Now,
        rng: &mut R,
    ) {
        let limits = &self.config.limits;
        match (command, target) {
            (Command::Ping, _) => self.push_reply(&Reply::Pong { corr_id }),
            (Command::New(new), _) => {
                let password_ok = match (&self.config.password, &new.password) {
                    (None, _) => true,
                    (Some(required), Some(given)) => required.ct_eq(given),
                    (Some(_), None) => false,
                };
                if !password_ok {
                    return self.reply_err(Some(corr_id), Entity::None, ErrorCode::Auth);
                }
                if self.queues_created >= limits.max_queues_per_connection {
                    return self.reply_err(Some(corr_id), Entity::None, ErrorCode::RateLimit);
                }
                // The source's budget, over all its connections: a reconnect does not
                // reset it as it does the per-connection count.
                if let (Some(budget), Some(source)) = (&self.config.queue_budget, self.source)
                    && !budget.take_key(source, now.mono_ms)
                {
                    return self.reply_err(Some(corr_id), Entity::None, ErrorCode::RateLimit);
                }
                let relay_dh_secret = DhSecret::generate(rng);
                let ids = QueueIds::generate(rng, relay_dh_secret.public_key());
                let record = QueueRecord {
                    recipient_id: ids.recipient_id,
                    sender_id: ids.sender_id,
                    recipient_auth_key: new.recipient_auth_key,
                    recipient_dh_key: new.recipient_dh_key,
                    relay_dh_secret,
                    sender_auth_key: None,
                };
                self.queues_created += 1;
                self.write(WriteOp::CreateQueue(record), Pending::New { corr_id, ids });
            }
            (Command::Send(send), Some(target)) => {
                let entity = Entity::Sender(send.sender_id);
                // Only as precise as retention needs (SECURITY.md, "What the relay
                // stores"): the relay never holds the second a message came in.
                let message = StoredMessage {
                    msg_id: MsgId::generate(rng),
                    received_at: limits.coarse_time(now.unix_secs),
                    body: send.body,
                };
                let op = WriteOp::Append {
                    recipient_id: target.recipient_id(),
                    sender_key: send.sender_auth_key,
                    message,
                    quota: limits.queue_quota,
                    // The driver knows whether the recipient is online (see `WriteOp`).
                    hold: false,
                };
                self.write(op, Pending::Send { corr_id, entity });
            }
            (Command::Sub(id), Some(Target::Record(record))) => {
                if !self.subscriptions.contains_key(&id)
                    && self.subscriptions.len() >= limits.max_subscriptions_per_connection
                {
                    return self.reply_err(
                        Some(corr_id),
                        Entity::Recipient(id),
                        ErrorCode::RateLimit,
                    );
                }
                let Ok(key) =
                    DeliveryKey::for_relay(&record.relay_dh_secret, &record.recipient_dh_key)
                else {
                    return self.reply_err(
                        Some(corr_id),
                        Entity::Recipient(id),
                        ErrorCode::Internal,
                    );
                };
                self.subscriptions.insert(
                    id,
                    Subscription {
                        key,
                        auth_key: record.recipient_auth_key,
                        in_flight: VecDeque::new(),
                        next_seq: 0,
                        sweeping: false,
                    },
                );
                self.actions.push_back(Action::Subscribe(id));
                self.push_reply(&Reply::Ok {
                    corr_id,
                    entity: Entity::Recipient(id),
                });
                self.deliver_next(id, store, now);
            }
            (Command::Get(id), Some(_)) => self.answer_get(corr_id, id, store, now, true),
            (
                Command::Ack {
                    recipient_id,
                    msg_id,
                },
                Some(_),
            ) => {
                let op = WriteOp::Ack {
                    recipient_id,
                    msg_id,
                };
                self.write(
                    op,
                    Pending::Ack {
                        corr_id,
                        recipient_id,
                    },
                );
                // A delivered message is acknowledged: its slot is free now, while the
                // deletion is written.
                if let Some(sub) = self.subscriptions.get_mut(&recipient_id)
                    && let Some(at) = sub.in_flight.iter().position(|m| *m == msg_id)
                {
                    sub.in_flight.remove(at);
                    self.deliver_next(recipient_id, store, now);
                }
            }
            (Command::Del(recipient_id), Some(_)) => {
                self.write(
                    WriteOp::DeleteQueue { recipient_id },
                    Pending::Del {
                        corr_id,
                        recipient_id,
                    },
                );
            }
            // A verified command whose queue vanished meanwhile (deleted by another
            // connection between lookup and use): the same answer as a missing queue.
            (command, _) => self.reply_err(Some(corr_id), command.entity(), ErrorCode::Auth),
        }
    }

    /// The outcome of the write `token`.
    pub fn handle_write(
        &mut self,
        token: WriteToken,
        result: Result<WriteOutcome, WriteError>,
        store: &dyn Store,
        now: Now,
    ) {
        let Some(pending) = self.pending.remove(&token) else {
            return;
        };
        match pending {
            Pending::New { corr_id, ids } => match result {
                Ok(_) => {
                    Metrics::inc(&self.metrics.queues_created);
                    self.push_reply(&Reply::Ids { corr_id, ids });
                }
                Err(WriteError::Full) => {
                    self.reply_err(Some(corr_id), Entity::None, ErrorCode::Full);
                }
                Err(_) => self.reply_err(Some(corr_id), Entity::None, ErrorCode::Internal),
            },
            Pending::Send { corr_id, entity } => match result {
                Ok(_) => {
                    Metrics::inc(&self.metrics.messages_stored);
                    // The driver wakes the queue's subscriber when the append commits,
                    // whether or not this connection is still there to see the outcome.
                    self.push_reply(&Reply::Ok { corr_id, entity });
                }
                Err(WriteError::Quota) => self.reply_err(Some(corr_id), entity, ErrorCode::Quota),
                Err(WriteError::Full) => self.reply_err(Some(corr_id), entity, ErrorCode::Full),
                Err(WriteError::NoQueue | WriteError::SenderKeyMismatch) => {
                    if let Entity::Sender(sid) = entity {
                        self.senders.retain(|(s, ..)| *s != sid);
                    }
                    self.reply_err(Some(corr_id), entity, ErrorCode::Auth);
                }
                Err(_) => self.reply_err(Some(corr_id), entity, ErrorCode::Internal),
            },
            Pending::Ack {
                corr_id,
                recipient_id,
            } => {
                let entity = Entity::Recipient(recipient_id);
                match result {
                    Ok(WriteOutcome::Acked { found: true }) => {
                        Metrics::inc(&self.metrics.messages_acked);
                        self.push_reply(&Reply::Ok { corr_id, entity });
                    }
                    Ok(_) => self.reply_err(Some(corr_id), entity, ErrorCode::NoMsg),
                    // Deleted meanwhile (over another connection): as a missing queue.
                    Err(WriteError::NoQueue) => {
                        self.reply_err(Some(corr_id), entity, ErrorCode::Auth);
                    }
                    Err(_) => self.reply_err(Some(corr_id), entity, ErrorCode::Internal),
                }
            }
            Pending::Swept(then) => {
                if let Ok(WriteOutcome::Expired { count }) = result {
                    self.metrics
                        .messages_expired
                        .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
                }
                match then {
                    AfterSweep::Deliver(recipient_id) => {
                        if let Some(sub) = self.subscriptions.get_mut(&recipient_id) {
                            sub.sweeping = false;
                        }
                        // A message that is still expired (the sweep failed) waits for
                        // the periodic sweep rather than looping here.
                        let next_expired = matches!(
                            self.next_to_deliver(recipient_id, store, 1).first(),
                            Some((_, m)) if self.expired(m, now)
                        );
                        if !next_expired {
                            self.deliver_next(recipient_id, store, now);
                        }
                    }
                    AfterSweep::Get {
                        corr_id,
                        recipient_id,
                    } => self.answer_get(corr_id, recipient_id, store, now, false),
                }
            }
            Pending::Del {
                corr_id,
                recipient_id,
            } => {
                let entity = Entity::Recipient(recipient_id);
                match result {
                    Ok(_) => {
                        Metrics::inc(&self.metrics.queues_deleted);
                        self.senders.retain(|(_, rid, _)| *rid != recipient_id);
                        self.subscriptions.remove(&recipient_id);
                        self.actions.push_back(Action::Unsubscribe(recipient_id));
                        self.push_reply(&Reply::Ok { corr_id, entity });
                    }
                    Err(_) => self.reply_err(Some(corr_id), entity, ErrorCode::Internal),
                }
            }
        }
    }

    pub(super) fn write(&mut self, op: WriteOp, pending: Pending) {
        let token = WriteToken(self.next_token);
        self.next_token = self.next_token.wrapping_add(1);
        self.pending.insert(token, pending);
        self.actions.push_back(Action::Write {
            token,
            op: Box::new(op),
        });
    }
}
