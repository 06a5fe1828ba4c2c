//! One client connection's protocol state machine (sans-IO).
//!
//! ```text
//!  blocks in ─► handle_block ─► frames ─► hello / commands ─► verify ─► act
//!                                                               │
//!  store reads (sync, &dyn Store) ◄─────────────────────────────┤
//!  poll_action ◄─ Write / Subscribe / Unsubscribe / Close
//!  handle_write(token, outcome) ─► replies      handle_notify / handle_end ─► MSG / END
//!  poll_block ─► blocks out
//!  poll_timeout ─► next deadline      handle_timeout(now) ─► Close (hello late, idle)
//! ```
//!
//! Calling contract: create with [`Session::new`] (which queues the relay's hello), then
//! feed every received block to [`Session::handle_block`]; after every `handle_*` call,
//! drain [`Session::poll_action`] and carry each action out (a `Write` must be answered
//! with [`Session::handle_write`] with its token, in any order; when an `Append` commits,
//! the driver wakes the queue's subscriber through the hub, even if this connection
//! has gone), then drain
//! [`Session::poll_block`] and send the blocks. Stop reading from the socket while
//! [`Session::wants_read`] is false. Keep one timer armed for
//! [`Session::poll_timeout`] and call [`Session::handle_timeout`] when it fires (the
//! hello and idle deadlines are the session's, see `timers`). A `Close` action ends
//! the connection.
//!
//! Rules enforced here: a command is acted on only once its authenticator verified
//! (the wire crate's `VerifiedCommand` proof); an authentication failure costs the
//! same whether or not the queue exists (keys come from the store's in-memory index,
//! never a file read, and a missing queue gets a dummy key, cached like real ones, so
//! repeated probes time alike); at most [`DELIVERY_WINDOW`] messages per subscribed
//! queue are delivered and not yet acknowledged, in the queue's order; per-connection
//! rate, queue-creation, subscription and backlog limits hold (deliveries, too, wait
//! while the connection's backlog is full: call [`Session::resume_deliveries`] after
//! sending).
//!
//! Where the parts are: this file holds the session's state, the hello, the framing,
//! the rate and malformed-command limits, the outputs (`poll_*`) and closing; `auth`
//! finds the key for each command and verifies it (with the per-connection key
//! caches); `commands` acts on a verified command and answers once its write completes
//! ([`Session::handle_write`]); `delivery` holds the subscriptions and the delivery
//! window, `GET`, and the sweep of expired messages at a queue's head
//! ([`Session::handle_notify`], [`Session::handle_end`],
//! [`Session::resume_deliveries`]).

mod auth;
mod commands;
mod delivery;
mod timers;

use std::collections::VecDeque;

use crate::id_map::IdMap;
use std::sync::Arc;

use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_transport::{SourceBudget, SourceKey};
use passage_wire::{
    AuthKey, AuthRole, Block, ChannelBinding, ClientHello, Command, CorrId, Entity, ErrorCode,
    FrameDecoder, FrameEncoder, QueuePassword, RecipientId, RelayHello, Reply, SUPPORTED_VERSIONS,
    SenderId, UnverifiedCommand,
};
use rand_core::CryptoRng;

use crate::limits::{Limits, TokenBucket};
use crate::metrics::Metrics;
use crate::store::{Store, WriteOp};

use commands::Pending;
use delivery::Subscription;
use timers::Timers;

pub use auth::{AUTH_CACHE_ENTRIES, SENDER_CACHE_ENTRIES};
pub use delivery::DELIVERY_WINDOW;

/// Writes one connection may have in flight; more and the relay stops reading it.
pub const MAX_PENDING_WRITES: usize = 64;

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
    /// If set, the queue creations each source address may make, over all its
    /// connections (see [`Session::set_source`]); shared by every session.
    pub queue_budget: Option<Arc<SourceBudget>>,
}

/// Identifies a write until its outcome comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteToken(u64);

impl WriteToken {
    /// A token made up for a test.
    #[cfg(test)]
    pub(crate) fn for_tests(n: u64) -> Self {
        Self(n)
    }
}

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
    /// No hello within the handshake timeout (a half-open or very slow client).
    HelloTimeout,
    /// Nothing received for the idle timeout.
    IdleTimeout,
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
    /// The peer's source in `config.queue_budget` (a keyed hash, not its address).
    source: Option<SourceKey>,
    next_token: u64,
    pending: IdMap<WriteToken, Pending>,
    subscriptions: IdMap<RecipientId, Subscription>,
    /// Sender id → (queue, fixed sender key), for `SEND`s that verified; oldest first.
    senders: VecDeque<(SenderId, RecipientId, DhPublic)>,
    /// Subscribed queues whose delivery waits for the backlog to drain.
    stalled: Vec<RecipientId>,
    /// The hello and idle deadlines (see `timers`).
    timers: Timers,
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
        let timers = Timers::new(now, timers::millis(config.limits.handshake_timeout));
        let mut session = Self {
            timers,
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
            source: None,
            next_token: 0,
            pending: IdMap::default(),
            subscriptions: IdMap::default(),
            senders: VecDeque::new(),
            stalled: Vec::new(),
        };
        let hello = RelayHello {
            versions: SUPPORTED_VERSIONS,
            session_key: session.session_secret.public_key(),
        };
        session.push_frame(&[&hello.encode()]);
        session
    }

    /// Tells the session where the connection comes from, for the per-source queue
    /// budget ([`ServiceConfig::queue_budget`]). Only the budget's keyed hash of the
    /// source is kept; without a call (or a budget), no per-source limit applies.
    pub fn set_source(&mut self, ip: std::net::IpAddr) {
        self.source = self
            .config
            .queue_budget
            .as_ref()
            .and_then(|budget| budget.key(ip));
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
        self.timers.heard(now);
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
            // Read: a `SEND`'s buffer serves the next large frame on this thread.
            FrameDecoder::recycle(frame);
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

    fn reply_err(&mut self, corr_id: Option<CorrId>, entity: Entity, code: ErrorCode) {
        self.metrics.error(code);
        self.push_reply(&Reply::Err {
            corr_id,
            entity,
            code,
        });
    }

    fn push_reply(&mut self, reply: &Reply) {
        // A `MSG`'s sealed body goes straight into the blocks, not first into a frame.
        let (head, body) = reply.encode_parts();
        self.push_frame(&[&head, body]);
    }

    /// Queues one frame given in parts (see [`FrameEncoder::push_frame_parts`]).
    fn push_frame(&mut self, parts: &[&[u8]]) {
        // Replies are far below the frame limit; a failure here is a bug, not input.
        if self.encoder.push_frame_parts(parts).is_err() {
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
