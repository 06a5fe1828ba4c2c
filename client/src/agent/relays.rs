//! The agent's network side: connecting relays, sending the outbox, subscribing our
//! queues, acknowledging what the vault has committed, and reconnecting what broke.

use std::collections::HashMap;
use std::task::Poll;
use std::time::Duration;

use passage_wire::{MsgId, RecipientId, RelayAddress};

use super::conversations::{Disposition, Outgoing};
use super::{Agent, AgentError, AgentEvent, DroppedReason, SyncReport, unix_now};
use crate::relay::{Event, LinkError, QueueCredentials, RelayLink};

/// How often envelopes still in the outbox are offered to their relays again while
/// [`Agent::next_event`] waits.
/// How long the agent waits for a relay's answer to one command. Shorter than the
/// link's default: whatever goes unanswered is retried (the outbox) or redelivered
/// (ACKs), so a lost reply costs seconds, not a minute.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// The first interval; it doubles while the outbox does not empty, up to
/// [`OUTBOX_RETRY_MAX`].
pub const OUTBOX_RETRY: Duration = Duration::from_secs(5);

/// The longest interval between two offers of the outbox.
pub const OUTBOX_RETRY_MAX: Duration = Duration::from_secs(300);

impl Agent {
    /// Connects to every relay that holds our queues, sends everything queued and
    /// subscribes our queues, so that [`next_event`](Self::next_event) receives.
    pub async fn sync(&mut self) -> SyncReport {
        let mut unreachable = 0;
        let mut by_relay: HashMap<String, (RelayAddress, Vec<QueueCredentials>)> = HashMap::new();
        for (relay, queue) in self.core.own_queues() {
            by_relay
                .entry(relay.to_string())
                .or_insert_with(|| (relay, Vec::new()))
                .1
                .push(queue);
        }
        for (key, (relay, queues)) in by_relay {
            if self.subscribed.get(&key) == Some(&queues.len()) && self.links.contains_key(&key) {
                continue;
            }
            let Ok(link) = self.link(&relay).await else {
                unreachable += 1;
                continue;
            };
            let mut ok = true;
            let mut refused = 0;
            for queue in &queues {
                match link.subscribe(queue).await {
                    Ok(()) => {}
                    // The relay no longer has this queue (its data was lost, or the
                    // queue expired): the others still work.
                    Err(LinkError::Auth) => refused += 1,
                    Err(_) => ok = false,
                }
            }
            if refused > 0 {
                self.events
                    .push_back(AgentEvent::Error(AgentError::QueuesLost { count: refused }));
            }
            if ok {
                self.subscribed.insert(key, queues.len());
            } else {
                self.drop_link(&key);
                unreachable += 1;
            }
        }
        let (flush_unreachable, queued) = self.flush().await;
        SyncReport {
            unreachable_relays: unreachable + flush_unreachable,
            queued,
            key_refused: self.key_refused.len(),
        }
    }

    /// The next event: one already waiting, or the next one the relays bring within
    /// `idle`. `None` if nothing came for `idle`. Call [`sync`](Self::sync) first.
    /// Connections that broke are reconnected (and the outbox resent) on the way.
    pub async fn next_event(&mut self, idle: Duration) -> Option<AgentEvent> {
        self.next_event_unless(idle, None).await
    }

    /// [`next_event`](Self::next_event) that also returns `None` as soon as
    /// `interrupt` is notified while it waits (for the relays, or before a reconnect),
    /// so that a driver owning the agent can take a request of its user. Nothing is
    /// lost by the interruption: it only happens where the agent waits.
    pub async fn next_event_or_interrupt(
        &mut self,
        idle: Duration,
        interrupt: &tokio::sync::Notify,
    ) -> Option<AgentEvent> {
        self.next_event_unless(idle, Some(interrupt)).await
    }

    async fn next_event_unless(
        &mut self,
        idle: Duration,
        interrupt: Option<&tokio::sync::Notify>,
    ) -> Option<AgentEvent> {
        let interrupted = async {
            match interrupt {
                Some(notify) => notify.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(interrupted);
        let deadline = tokio::time::Instant::now() + idle;
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if self.links.is_empty() || self.subscribed.len() < self.relay_count() {
                // Lost connections: try again, at most every second.
                let report = self.sync().await;
                if report.unreachable_relays > 0 {
                    let retry = tokio::time::Instant::now() + Duration::from_secs(1);
                    tokio::select! {
                        () = tokio::time::sleep_until(retry.min(deadline)) => {}
                        () = &mut interrupted => return None,
                    }
                }
                if let Some(event) = self.events.pop_front() {
                    return Some(event);
                }
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                if report.unreachable_relays > 0 {
                    continue;
                }
            }
            // Wake for the next disappearing message too, then go on waiting.
            let now = unix_now();
            let expiry = self.core.next_expiry();
            if expiry.is_some_and(|at| at <= now) {
                if let Err(error) = self.core.expire(now) {
                    self.events.push_back(AgentEvent::Error(error));
                }
                continue;
            }
            // Envelopes a relay refused for now (a full queue, a timeout) are retried
            // every OUTBOX_RETRY while we wait.
            let clock = tokio::time::Instant::now();
            // A relay that stays unreachable costs a connection timeout per try,
            // so the interval doubles (up to OUTBOX_RETRY_MAX) while nothing gets out.
            if self.core.has_outbox() {
                let retry_at = *self.retry_at.get_or_insert(clock + self.retry_interval);
                if retry_at <= clock {
                    self.retry_at = None;
                    self.flush().await;
                    self.retry_interval = (self.retry_interval * 2).min(OUTBOX_RETRY_MAX);
                    continue;
                }
            } else {
                self.retry_at = None;
                self.retry_interval = OUTBOX_RETRY;
            }
            let mut wake = deadline;
            if let Some(at) = expiry {
                wake = wake.min(clock + Duration::from_secs(at.saturating_sub(now)));
            }
            if let Some(at) = self.retry_at {
                wake = wake.min(at);
            }
            let links = &mut self.links;
            let next = std::future::poll_fn(|cx| {
                for (key, link) in links.iter_mut() {
                    match link.poll_next_event(cx) {
                        Poll::Ready(event) => return Poll::Ready((key.clone(), event)),
                        Poll::Pending => {}
                    }
                }
                Poll::Pending
            });
            let waited = tokio::select! {
                waited = tokio::time::timeout_at(wake, next) => waited,
                () = &mut interrupted => return None,
            };
            match waited {
                Err(_) if wake < deadline => continue,
                Err(_) => return None,
                Ok((key, None)) => self.drop_link(&key),
                Ok((key, Some(event))) => self.handle_relay_event(&key, event).await,
            }
        }
    }

    fn relay_count(&self) -> usize {
        self.core.own_relays().len()
    }

    async fn handle_relay_event(&mut self, key: &str, event: Event) {
        match event {
            Event::Message {
                recipient_id,
                msg_id,
                timestamp,
                body,
            } => {
                let (disposition, events) = self.core.handle_delivery(
                    recipient_id,
                    &body[..],
                    timestamp,
                    unix_now(),
                    &mut self.rng,
                );
                self.events.extend(events);
                if disposition == Disposition::Ack {
                    self.ack(key, recipient_id, msg_id).await;
                }
                self.flush().await;
            }
            Event::Undeliverable {
                recipient_id,
                msg_id,
                ..
            } => {
                self.events.push_back(AgentEvent::Dropped {
                    contact: None,
                    reason: DroppedReason::Undecryptable,
                });
                self.ack(key, recipient_id, msg_id).await;
            }
            // Another connection (another copy of this profile) took the queue over.
            Event::End(_) => {}
            _ => {}
        }
    }

    async fn ack(&mut self, key: &str, recipient: RecipientId, msg_id: MsgId) {
        let Some(queue) = self.core.own_queue(&recipient) else {
            return;
        };
        // Pipelined, not awaited: the message is committed, and an ACK that fails or
        // goes unanswered only means the relay delivers it again (the vault drops the
        // copy). Waiting here would stall every later delivery on one lost reply.
        while self.acks.try_join_next().is_some() {}
        if let Some(link) = self.links.get(key) {
            let handle = link.handle();
            self.acks.spawn(async move {
                let _ = handle.ack(&queue, msg_id).await;
            });
        }
    }

    /// Sends the outbox, oldest first, pipelined per relay. Returns the relays that
    /// could not be reached and how many envelopes remain queued.
    pub(super) async fn flush(&mut self) -> (usize, usize) {
        self.flush_some(None).await
    }

    /// [`flush`](Self::flush) of at most `limit` envelopes, oldest first.
    pub(super) async fn flush_some(&mut self, limit: Option<usize>) -> (usize, usize) {
        let outbox = match self.core.outbox_first(limit) {
            Ok(outbox) => outbox,
            Err(error) => {
                self.events.push_back(AgentEvent::Error(error));
                return (0, 0);
            }
        };
        let mut by_relay: Vec<(RelayAddress, Vec<Outgoing>)> = Vec::new();
        for item in outbox {
            match by_relay.iter_mut().find(|(r, _)| *r == item.relay) {
                Some((_, items)) => items.push(item),
                None => by_relay.push((item.relay.clone(), vec![item])),
            }
        }
        let mut unreachable = 0;
        let mut queued = 0;
        for (relay, items) in by_relay {
            let results = match self.link(&relay).await {
                Ok(link) => {
                    let batch: Vec<_> = items
                        .iter()
                        .map(|i| (i.sender_id, i.credentials.clone(), i.envelope.clone()))
                        .collect();
                    link.handle().send_batch(&batch).await
                }
                Err(_) => {
                    unreachable += 1;
                    queued += items.len();
                    continue;
                }
            };
            let mut broken = false;
            for (item, result) in items.iter().zip(results) {
                if matches!(
                    result,
                    Err(LinkError::Closed | LinkError::Timeout | LinkError::Transport(_))
                ) {
                    broken = true;
                }
                if result.is_err()
                    && !matches!(result, Err(LinkError::Auth | LinkError::Refused(_)))
                {
                    queued += 1;
                }
                match self.core.handle_sent(item.seq, result.as_ref().map(|_| ())) {
                    Ok((events, forget)) => {
                        self.events.extend(events);
                        if let Some(queue) = forget {
                            let key = self.core.default_relay().map(|r| r.to_string());
                            if let Ok(key) = key
                                && let Some(link) = self.links.get(&key)
                            {
                                let _ = link.delete_queue(&queue).await;
                            }
                        }
                    }
                    Err(error) => self.events.push_back(AgentEvent::Error(error)),
                }
            }
            if broken {
                self.drop_link(&relay.to_string());
            }
        }
        (unreachable, queued)
    }

    /// The link to `relay`, connecting if needed.
    pub(super) async fn link(&mut self, relay: &RelayAddress) -> Result<&RelayLink, LinkError> {
        let key = relay.to_string();
        if !self.links.contains_key(&key) {
            let mut link = match RelayLink::connect(relay, &self.options.connect).await {
                Ok(link) => link,
                Err(error) => {
                    if matches!(
                        error,
                        LinkError::Transport(passage_transport::TransportError::PinMismatch)
                    ) {
                        self.key_refused.insert(key);
                    }
                    return Err(error);
                }
            };
            self.key_refused.remove(&key);
            link.set_reply_timeout(REPLY_TIMEOUT);
            // The relay is rotating its key and we hold the old pin: keep the new one
            // from now on (the transport checked the old key's endorsement).
            if let Some(rotation) = link.key_rotation() {
                match self.core.move_relay(relay, rotation.new_pin) {
                    Ok(0) => {}
                    Ok(_) => self.events.push_back(AgentEvent::RelayMoved {
                        old_pin_until: rotation.old_pin_until,
                    }),
                    Err(error) => self.events.push_back(AgentEvent::Error(error)),
                }
            }
            self.links.insert(key.clone(), link);
            self.subscribed.remove(&key);
        }
        self.links.get(&key).ok_or(LinkError::Closed)
    }

    /// Subscribes a queue just made, if we are receiving on that relay already.
    pub(super) async fn subscribe_new(&mut self, relay: &RelayAddress, queue: &QueueCredentials) {
        let key = relay.to_string();
        if let Some(count) = self.subscribed.get(&key).copied()
            && let Some(link) = self.links.get(&key)
        {
            if link.subscribe(queue).await.is_ok() {
                self.subscribed.insert(key, count + 1);
            } else {
                self.drop_link(&key);
            }
        }
    }

    fn drop_link(&mut self, key: &str) {
        self.links.remove(key);
        self.subscribed.remove(key);
    }
}
