//! One client connection's protocol state machine (sans-IO).
//!
//! ```text
//!  blocks in ─► handle_block ─► frames ─► hello / commands ─► verify ─► act
//!                                                               │
//!  store reads (sync, &dyn Store) ◄─────────────────────────────┤
//!  poll_action ◄─ Write / Subscribe / Unsubscribe / Close
//!  handle_write(token, outcome) ─► replies      handle_notify / handle_end ─► MSG / END
//!  poll_block ─► blocks out
//! ```
//!
//! Calling contract: create with [`Session::new`] (which queues the relay's hello), then
//! feed every received block to [`Session::handle_block`]; after every `handle_*` call,
//! drain [`Session::poll_action`] and carry each action out (a `Write` must be answered
//! with [`Session::handle_write`] with its token, in any order; when an `Append` commits,
//! the driver wakes the queue's subscriber through the hub, even if this connection
//! has gone), then drain
//! [`Session::poll_block`] and send the blocks. Stop reading from the socket while
//! [`Session::wants_read`] is false. A `Close` action ends the connection.
//!
//! Rules enforced here: a command is acted on only once its authenticator verified
//! (the wire crate's `VerifiedCommand` proof); an authentication failure costs the
//! same whether or not the queue exists (a dummy key, cached like real ones, so
//! repeated probes time alike); at most [`DELIVERY_WINDOW`] messages per subscribed
//! queue are delivered and not yet acknowledged, in the queue's order; per-connection
//! rate, queue-creation, subscription and backlog limits hold (deliveries, too, wait
//! while the connection's backlog is full: call [`Session::resume_deliveries`] after
//! sending).
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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_wire::{
    AuthKey, AuthRole, Block, ChannelBinding, ClientHello, Command, CorrId, DeliveryKey, Entity,
    ErrorCode, FrameDecoder, FrameEncoder, MsgId, QueueIds, QueuePassword, RecipientId, RelayHello,
    Reply, SUPPORTED_VERSIONS, SenderId, UnverifiedCommand, VerifiedCommand, seal_delivery,
};
use rand_core::CryptoRng;

use crate::limits::{Limits, TokenBucket};
use crate::metrics::Metrics;
use crate::store::{QueueRecord, Store, StoredMessage, WriteError, WriteOp, WriteOutcome};

/// Authentication keys cached per connection (real and dummy alike). Bounds memory;
/// a client rarely uses more queues than this on one connection at once.
pub const AUTH_CACHE_ENTRIES: usize = 64;

/// Writes one connection may have in flight; more and the relay stops reading it.
pub const MAX_PENDING_WRITES: usize = 64;

/// Messages of one subscribed queue delivered and not yet acknowledged, at most.
pub const DELIVERY_WINDOW: usize = 16;

/// Sender ids whose fixed sender key and queue one connection remembers, so that its
/// `SEND`s need no store read. A fixed key never changes; a queue deleted meanwhile
/// fails the append itself, which answers as a missing queue does.
pub const SENDER_CACHE_ENTRIES: usize = 64;

/// Malformed commands tolerated on one connection before it is closed.
pub const MAX_MALFORMED_COMMANDS: u32 = 16;

/// The current time, as the driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall-clock unix seconds (message timestamps, retention).
    pub unix_secs: u64,
    /// Monotonic milliseconds (rate limiting).
    pub mono_ms: u64,
}

/// What the relay service needs to know beyond its limits.
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig {
    /// Limits for every connection.
    pub limits: Limits,
    /// If set, `NEW` must carry this password (an NGO restricting who creates queues).
    pub password: Option<QueuePassword>,
}

/// Identifies a write until its outcome comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteToken(u64);

/// Why the relay closes a connection; for counting, never for the peer's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// A block or frame broke the framing rules.
    Framing,
    /// The hello exchange failed (bad frame or no common version).
    Hello,
    /// Too many malformed commands.
    Malformed,
    /// Too many commands over the rate limit.
    RateLimit,
}

/// Something the driver must do for the session.
#[derive(Debug)]
pub enum Action {
    /// Apply `op` durably, then call [`Session::handle_write`] with `token`.
    Write {
        /// Hand it back with the outcome.
        token: WriteToken,
        /// The write (boxed: a queue record is large next to the other actions).
        op: Box<WriteOp>,
    },
    /// Make this connection the queue's subscriber (ending any other's subscription).
    Subscribe(RecipientId),
    /// This connection no longer subscribes to the queue (it was deleted).
    Unsubscribe(RecipientId),
    /// Close the connection.
    Close(CloseReason),
}

enum Phase {
    AwaitingHello,
    Ready,
    Closed,
}

/// What a pending write answers when it completes.
enum Pending {
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

/// What waited for a sweep of expired messages.
enum AfterSweep {
    /// Deliver the subscribed queue's next message.
    Deliver(RecipientId),
    /// Answer a `GET`.
    Get {
        corr_id: CorrId,
        recipient_id: RecipientId,
    },
}

/// A queue this connection subscribes to.
struct Subscription {
    key: DeliveryKey,
    /// The recipient's auth key (fixed at `NEW`): its `ACK`s need no store read.
    auth_key: DhPublic,
    /// Messages delivered and not yet acknowledged, oldest first; at most
    /// [`DELIVERY_WINDOW`]. An acknowledgement frees a slot at once, while the deletion
    /// is written (a crash before it is durable means the message comes again, and the
    /// client drops it by its id).
    in_flight: VecDeque<MsgId>,
    /// Sequence number of the next message to deliver (one above the last delivered).
    next_seq: u64,
    /// A sweep of expired messages is under way for this queue.
    sweeping: bool,
}

/// What a verified command acts on.
enum Target {
    /// The queue's record, read from the store.
    Record(QueueRecord),
    /// A queue known from this connection's caches (`SEND` to a fixed key, `ACK` on a
    /// subscription): its recipient id.
    Known(RecipientId),
}

impl Target {
    fn recipient_id(&self) -> RecipientId {
        match self {
            Target::Record(record) => record.recipient_id,
            Target::Known(id) => *id,
        }
    }
}

/// One connection's state. See the module documentation for the calling contract.
pub struct Session {
    config: Arc<ServiceConfig>,
    metrics: Arc<Metrics>,
    session_secret: DhSecret,
    binding: ChannelBinding,
    phase: Phase,
    decoder: FrameDecoder,
    encoder: FrameEncoder,
    actions: VecDeque<Action>,
    auth_cache: VecDeque<(AuthRole, [u8; 24], DhPublic, AuthKey)>,
    rate: TokenBucket,
    rate_violations: u32,
    malformed: u32,
    queues_created: u32,
    next_token: u64,
    pending: HashMap<WriteToken, Pending>,
    subscriptions: HashMap<RecipientId, Subscription>,
    /// Sender id → (queue, fixed sender key), for `SEND`s that verified; oldest first.
    senders: VecDeque<(SenderId, RecipientId, DhPublic)>,
    /// Subscribed queues whose delivery waits for the backlog to drain.
    stalled: Vec<RecipientId>,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("subscriptions", &self.subscriptions.len())
            .field("pending_writes", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new connection with the TLS channel binding `binding`; queues the relay's hello.
    pub fn new<R: CryptoRng + ?Sized>(
        config: Arc<ServiceConfig>,
        metrics: Arc<Metrics>,
        binding: ChannelBinding,
        now: Now,
        rng: &mut R,
    ) -> Self {
        let session_secret = DhSecret::generate(rng);
        let rate = TokenBucket::new(
            config.limits.commands_per_second,
            config.limits.command_burst,
            now.mono_ms,
        );
        let mut session = Self {
            config,
            metrics,
            session_secret,
            binding,
            phase: Phase::AwaitingHello,
            decoder: FrameDecoder::new(),
            encoder: FrameEncoder::new(),
            actions: VecDeque::new(),
            auth_cache: VecDeque::new(),
            rate,
            rate_violations: 0,
            malformed: 0,
            queues_created: 0,
            next_token: 0,
            pending: HashMap::new(),
            subscriptions: HashMap::new(),
            senders: VecDeque::new(),
            stalled: Vec::new(),
        };
        let hello = RelayHello {
            versions: SUPPORTED_VERSIONS,
            session_key: session.session_secret.public_key(),
        };
        session.push_frame(&hello.encode());
        session
    }

    /// Whether the driver should read more input: false while replies back up or
    /// too many writes are in flight (backpressure on a client that does not read).
    pub fn wants_read(&self) -> bool {
        !matches!(self.phase, Phase::Closed)
            && self.encoder.pending_blocks() < self.config.limits.max_backlog_blocks
            && self.pending.len() < MAX_PENDING_WRITES
    }

    /// Whether the hello exchange is done.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

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

    /// Next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Next block to send; a partly filled block is flushed once nothing else waits.
    pub fn poll_block(&mut self) -> Option<Block> {
        if self.encoder.pending_blocks() == 0 && self.encoder.has_partial_block() {
            self.encoder.flush();
        }
        self.encoder.poll_block()
    }

    /// A block from the client.
    pub fn handle_block<R: CryptoRng + ?Sized>(
        &mut self,
        block: &Block,
        store: &dyn Store,
        now: Now,
        rng: &mut R,
    ) {
        if self.is_closed() {
            return;
        }
        if self.decoder.handle_block(block).is_err() {
            return self.close(CloseReason::Framing);
        }
        while let Some(frame) = self.decoder.poll_frame() {
            if self.is_closed() {
                return;
            }
            match self.phase {
                Phase::AwaitingHello => self.handle_hello(&frame),
                Phase::Ready => self.handle_command(&frame, store, now, rng),
                Phase::Closed => return,
            }
        }
    }

    fn handle_hello(&mut self, frame: &[u8]) {
        match ClientHello::decode(frame).map(|h| h.accept(SUPPORTED_VERSIONS)) {
            Ok(Ok(_version)) => self.phase = Phase::Ready,
            _ => {
                self.reply_err(None, Entity::None, ErrorCode::Version);
                self.close(CloseReason::Hello);
            }
        }
    }

    fn handle_command<R: CryptoRng + ?Sized>(
        &mut self,
        frame: &[u8],
        store: &dyn Store,
        now: Now,
        rng: &mut R,
    ) {
        Metrics::inc(&self.metrics.commands);
        let command = match UnverifiedCommand::decode(frame) {
            Ok(command) => command,
            Err(e) => {
                self.reply_err(None, Entity::None, e.error_code());
                self.malformed += 1;
                if self.malformed > MAX_MALFORMED_COMMANDS {
                    self.close(CloseReason::Malformed);
                }
                return;
            }
        };
        let corr_id = command.corr_id();
        let entity = command.command().entity();
        // Acknowledging the message this connection was just given is the normal pace
        // of draining a queue, and only its recipient can name it: not rate-limited.
        let acks_in_flight = match command.command() {
            Command::Ack {
                recipient_id,
                msg_id,
            } => self
                .subscriptions
                .get(recipient_id)
                .is_some_and(|sub| sub.in_flight.contains(msg_id)),
            _ => false,
        };
        if !acks_in_flight && !self.rate.take(now.mono_ms) {
            self.reply_err(Some(corr_id), entity, ErrorCode::RateLimit);
            self.rate_violations += 1;
            if self.rate_violations > self.config.limits.max_rate_violations {
                self.close(CloseReason::RateLimit);
            }
            return;
        }
        self.rate_violations = 0;
        let (verified, target) = match self.verify(command, store) {
            Ok(Some(verified)) => verified,
            Ok(None) => return self.reply_err(Some(corr_id), entity, ErrorCode::Auth),
            Err(()) => return self.reply_err(Some(corr_id), entity, ErrorCode::Internal),
        };
        let (corr_id, command) = verified.into_parts();
        self.act(corr_id, command, target, store, now, rng);
    }

    /// Finds the key for the command's queue (or a dummy) and verifies. `Ok(None)` is
    /// an authentication failure; `Err` a store fault.
    #[allow(clippy::type_complexity)]
    fn verify(
        &mut self,
        command: UnverifiedCommand,
        store: &dyn Store,
    ) -> Result<Option<(VerifiedCommand, Option<Target>)>, ()> {
        // The caches: a sender whose key is fixed, an acknowledgement on a subscription.
        let cached = match command.command() {
            Command::Send(send) => self
                .senders
                .iter()
                .find(|(sid, ..)| *sid == send.sender_id)
                .map(|&(sid, rid, fixed)| {
                    let key = send.sender_auth_key.is_none_or(|k| k == fixed);
                    (AuthRole::Sender, *sid.as_bytes(), rid, key.then_some(fixed))
                }),
            Command::Ack { recipient_id, .. } => self.subscriptions.get(recipient_id).map(|sub| {
                let id = *recipient_id;
                (AuthRole::Recipient, *id.as_bytes(), id, Some(sub.auth_key))
            }),
            _ => None,
        };
        if let Some((role, id, rid, key)) = cached {
            let auth_key = self.auth_key(role, id, key);
            return Ok(command
                .verify(&auth_key)
                .ok()
                .map(|v| (v, Some(Target::Known(rid)))));
        }
        let (role, id, record, key) = match command.command() {
            Command::Ping => {
                return Ok(command.accept_unauthenticated().ok().map(|v| (v, None)));
            }
            Command::New(new) => (
                AuthRole::Recipient,
                [0; 24],
                None,
                Some(new.recipient_auth_key),
            ),
            Command::Send(send) => {
                let record = store.queue_by_sender(&send.sender_id).map_err(|_| ())?;
                let key = match (&record, send.sender_auth_key) {
                    (Some(r), None) => r.sender_auth_key,
                    (Some(r), Some(offered)) if r.sender_auth_key.is_none_or(|k| k == offered) => {
                        Some(offered)
                    }
                    _ => None,
                };
                (AuthRole::Sender, *send.sender_id.as_bytes(), record, key)
            }
            Command::Sub(id)
            | Command::Get(id)
            | Command::Del(id)
            | Command::Ack {
                recipient_id: id, ..
            } => {
                let record = store.queue(id).map_err(|_| ())?;
                let key = record.as_ref().map(|r| r.recipient_auth_key);
                (AuthRole::Recipient, *id.as_bytes(), record, key)
            }
            _ => return Ok(None),
        };
        let auth_key = self.auth_key(role, id, key);
        let Ok(verified) = command.verify(&auth_key) else {
            return Ok(None);
        };
        // Remembered only once a SEND proved the key: a prober cannot fill the cache.
        if let (Command::Send(send), Some(record)) = (verified.command(), &record)
            && let Some(fixed) = record.sender_auth_key
        {
            if self.senders.len() >= SENDER_CACHE_ENTRIES {
                self.senders.pop_front();
            }
            self.senders
                .push_back((send.sender_id, record.recipient_id, fixed));
        }
        Ok(Some((verified, record.map(Target::Record))))
    }

    /// The cached key for (role, queue id, public key), or a freshly derived one. A
    /// missing key gets a dummy key, cached the same way, so repeated probes of a queue
    /// that does not exist cost what probes of one that does cost.
    fn auth_key(&mut self, role: AuthRole, id: [u8; 24], public: Option<DhPublic>) -> AuthKey {
        let marker = public.unwrap_or(DhPublic::from_bytes([0; 32]));
        if let Some((.., key)) = self
            .auth_cache
            .iter()
            .find(|(r, i, p, _)| *r == role && *i == id && *p == marker)
        {
            return key.clone();
        }
        let key = public
            .and_then(|p| AuthKey::derive(role, &self.session_secret, &p, &self.binding).ok())
            .unwrap_or_else(|| AuthKey::dummy(role, &self.session_secret, &self.binding));
        // NEW's key is single-use: caching it would only evict useful entries.
        if id != [0; 24] {
            if self.auth_cache.len() >= AUTH_CACHE_ENTRIES {
                self.auth_cache.pop_front();
            }
            self.auth_cache.push_back((role, id, marker, key.clone()));
        }
        key
    }

    fn act<R: CryptoRng + ?Sized>(
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
                let relay_dh_secret = DhSecret::generate(rng);
                let ids = QueueIds::generate(rng, relay_dh_secret.public_key());
                let record = QueueRecord {
                    recipient_id: ids.recipient_id,
                    sender_id: ids.sender_id,
                    recipient_auth_key: new.recipient_auth_key,
                    recipient_dh_key: new.recipient_dh_key,
                    relay_dh_secret,
                    sender_auth_key: None,
                    created_at: now.unix_secs,
                };
                self.queues_created += 1;
                self.write(WriteOp::CreateQueue(record), Pending::New { corr_id, ids });
            }
            (Command::Send(send), Some(target)) => {
                let entity = Entity::Sender(send.sender_id);
                let message = StoredMessage {
                    msg_id: MsgId::generate(rng),
                    received_at: now.unix_secs,
                    body: send.body,
                };
                let op = WriteOp::Append {
                    recipient_id: target.recipient_id(),
                    sender_key: send.sender_auth_key,
                    message,
                    quota: limits.queue_quota,
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
    fn answer_get(
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
    fn deliver_next(&mut self, recipient_id: RecipientId, store: &dyn Store, now: Now) {
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
    fn next_to_deliver(
        &self,
        recipient_id: RecipientId,
        store: &dyn Store,
        max: usize,
    ) -> Vec<(u64, StoredMessage)> {
        let Some(sub) = self.subscriptions.get(&recipient_id) else {
            return Vec::new();
        };
        store
            .messages_from(&recipient_id, sub.next_seq, max)
            .unwrap_or_default()
    }

    fn expired(&self, message: &StoredMessage, now: Now) -> bool {
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
        self.push_reply(&Reply::Msg(delivery));
    }

    fn write(&mut self, op: WriteOp, pending: Pending) {
        let token = WriteToken(self.next_token);
        self.next_token = self.next_token.wrapping_add(1);
        self.pending.insert(token, pending);
        self.actions.push_back(Action::Write {
            token,
            op: Box::new(op),
        });
    }

    fn reply_err(&mut self, corr_id: Option<CorrId>, entity: Entity, code: ErrorCode) {
        self.metrics.error(code);
        self.push_reply(&Reply::Err {
            corr_id,
            entity,
            code,
        });
    }

    fn push_reply(&mut self, reply: &Reply) {
        self.push_frame(&reply.encode());
    }

    fn push_frame(&mut self, frame: &[u8]) {
        // Replies are far below the frame limit; a failure here is a bug, not input.
        if self.encoder.push_frame(frame).is_err() {
            self.close(CloseReason::Framing);
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if !self.is_closed() {
            self.phase = Phase::Closed;
            Metrics::inc(&self.metrics.connections_cut);
            self.actions.push_back(Action::Close(reason));
        }
    }
}
