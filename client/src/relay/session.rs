//! The client's side of the relay protocol, sans-IO.
//!
//! ```text
//!  blocks in ─► AwaitingHello::handle_block ─► RelayClientSession (ClientHello queued)
//!  create_queue / send / subscribe / get / ack / delete_queue / ping ─► CorrId
//!  blocks in ─► handle_block ─► poll_output: Reply { corr_id, result } | Event
//!  poll_block ─► blocks out
//! ```
//!
//! # Calling order
//!
//! 1. [`AwaitingHello::new`] with the connection's channel binding; feed it received
//!    blocks with [`AwaitingHello::handle_block`] until it returns
//!    [`HelloProgress::Ready`]. It consumes itself at each step.
//! 2. On the [`RelayClientSession`]: issue commands (each returns the [`CorrId`] its
//!    reply will carry), feed every received block to
//!    [`handle_block`](RelayClientSession::handle_block), then drain
//!    [`poll_output`](RelayClientSession::poll_output) and
//!    [`poll_block`](RelayClientSession::poll_block) (send each block) until `None`.
//!    The first `poll_block` after the hello carries the `ClientHello`.
//!
//! An error from `handle_block` is fatal and sticky: the relay broke the protocol and
//! the connection must be dropped.
//!
//! # What the session keeps
//!
//! The relay's session key and the channel binding, the per-queue [`AuthKey`]s derived
//! from them (cached, [`AUTH_KEY_CACHE_ENTRIES`]), the delivery key of every queue it
//! was told about (to open `MSG`s, at most [`MAX_QUEUES_PER_LINK`]), and the commands
//! in flight by correlation id.
//!
//! `MSG` carries no correlation id. A `MSG` for a queue with a `GET` in flight answers
//! the oldest such `GET`; any other is a push from a subscription and becomes an
//! [`Event::Message`]. Do not `GET` a queue this connection subscribes to: a pushed
//! message would answer the `GET` and the relay's answer to it would arrive as an event.

use std::collections::{HashMap, VecDeque};

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_wire::{
    AuthKey, AuthRole, Block, ChannelBinding, ClientHello, Command, CorrId, Delivery, DeliveryKey,
    ErrorCode, FrameDecoder, FrameEncoder, MsgId, NewQueue, ProtocolVersion, QueuePassword,
    RecipientId, RelayHello, Reply, SUPPORTED_VERSIONS, SendMessage, SenderId, open_delivery,
};
use rand_core::CryptoRng;

use super::credentials::{QueueCredentials, SenderCredentials};
use super::error::{LinkError, ProtocolError};

/// Auth keys cached per connection. Deriving one costs an X25519 and an HKDF; a
/// client rarely uses more queues than this at once, and a miss only costs that again.
pub const AUTH_KEY_CACHE_ENTRIES: usize = 256;

/// Queues whose delivery keys one connection keeps, to open their `MSG`s. The relay
/// lets a connection subscribe to 1,000 queues by default; this leaves room above
/// that and bounds memory (about 100 bytes a queue).
pub const MAX_QUEUES_PER_LINK: usize = 4096;

/// Stage one: waiting for the relay's hello.
#[derive(Debug)]
pub struct AwaitingHello {
    binding: ChannelBinding,
    decoder: FrameDecoder,
}

/// What [`AwaitingHello::handle_block`] led to.
#[derive(Debug)]
#[non_exhaustive]
pub enum HelloProgress {
    /// No hello yet: feed the next block.
    Pending(AwaitingHello),
    /// Versions agreed; the session has queued its `ClientHello`.
    Ready(Box<RelayClientSession>),
}

impl AwaitingHello {
    /// A connection whose TLS channel binding is `binding`.
    pub fn new(binding: ChannelBinding) -> Self {
        Self {
            binding,
            decoder: FrameDecoder::new(),
        }
    }

    /// Feeds one block from the relay.
    pub fn handle_block(mut self, block: &Block) -> Result<HelloProgress, LinkError> {
        self.decoder
            .handle_block(block)
            .map_err(ProtocolError::from)?;
        let Some(frame) = self.decoder.poll_frame() else {
            return Ok(HelloProgress::Pending(self));
        };
        let hello = RelayHello::decode(&frame).map_err(ProtocolError::from)?;
        let version = hello.negotiate(SUPPORTED_VERSIONS)?;
        let mut session = RelayClientSession {
            version,
            session_key: hello.session_key,
            binding: self.binding,
            decoder: self.decoder,
            encoder: FrameEncoder::new(),
            pending: HashMap::new(),
            gets: HashMap::new(),
            delivery_keys: HashMap::new(),
            auth_keys: VecDeque::new(),
            outputs: VecDeque::new(),
            error: None,
        };
        session.push_frame(&ClientHello::new(version).encode());
        // Frames after the hello in the same block are replies like any other.
        session.drain_frames()?;
        Ok(HelloProgress::Ready(Box::new(session)))
    }
}

/// What a command came to, once its reply arrived.
#[derive(Debug)]
#[non_exhaustive]
pub enum Completion {
    /// `NEW` → `IDS`: the new queue.
    Created(QueueCredentials),
    /// `OK` (to `SEND`, `SUB`, `ACK` or `DEL`).
    Done,
    /// `GET` → `MSG`, or `ERR NO_MSG` (`None`).
    Message(Option<ReceivedMessage>),
    /// `PING` → `PONG`.
    Pong,
}

/// A message delivered by the relay, opened with the queue's delivery key.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The queue.
    pub recipient_id: RecipientId,
    /// The relay's id of the message: acknowledge it with `ACK` to delete it.
    pub msg_id: MsgId,
    /// When the relay received it, in unix seconds.
    pub timestamp: u64,
    /// The end-to-end encrypted envelope, as the sender sent it.
    pub body: Box<[u8; ENVELOPE_LEN]>,
}

impl core::fmt::Debug for ReceivedMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReceivedMessage")
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// Something the relay pushed, not an answer to a command. `Debug` shows no ids and
/// no message bytes.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message from a subscribed queue. Acknowledge it (`ACK`) once it is handled:
    /// the relay delivers a queue's messages in order, with a bounded window of them
    /// (16) delivered and not yet acknowledged, so several may arrive before the first
    /// `ACK`; one never acknowledged comes again after the next `SUB`.
    Message {
        /// The queue.
        recipient_id: RecipientId,
        /// The relay's id of the message, for `ACK`.
        msg_id: MsgId,
        /// When the relay received it, in unix seconds.
        timestamp: u64,
        /// The end-to-end encrypted envelope, as the sender sent it.
        body: Box<[u8; ENVELOPE_LEN]>,
    },
    /// Another connection subscribed to the queue: no more messages for it here.
    End(RecipientId),
    /// A `MSG` that could not be opened. The relay keeps it (and, on a subscription,
    /// holds a place in the queue's delivery window with it) until it is acknowledged
    /// with `msg_id`.
    Undeliverable {
        /// The queue the `MSG` named.
        recipient_id: RecipientId,
        /// The relay's id of the message.
        msg_id: MsgId,
        /// Why it could not be opened.
        reason: Undeliverable,
    },
    /// An `ERR` the relay could not relate to a command (it could not read a frame).
    RelayError(ErrorCode),
}

impl core::fmt::Debug for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Event::Message { timestamp, .. } => f
                .debug_struct("Message")
                .field("timestamp", timestamp)
                .finish_non_exhaustive(),
            Event::End(_) => f.write_str("End(..)"),
            Event::Undeliverable { reason, .. } => f
                .debug_struct("Undeliverable")
                .field("reason", reason)
                .finish_non_exhaustive(),
            Event::RelayError(code) => f.debug_tuple("RelayError").field(code).finish(),
        }
    }
}

/// Why a delivered message could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Undeliverable {
    /// This connection knows no delivery key for the queue (it neither created,
    /// subscribed to nor polled it).
    #[error("a message for a queue this connection does not know")]
    UnknownQueue,
    /// The delivery did not authenticate under the queue's key.
    #[error("a message that does not open with the queue's delivery key")]
    DoesNotOpen,
}

/// An output of the session.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// The answer to the command sent with `corr_id`.
    Reply {
        /// The command's correlation id, as returned when it was issued.
        corr_id: CorrId,
        /// What it came to; `Err` carries the relay's refusal as a typed error.
        result: Result<Completion, LinkError>,
    },
    /// A push from the relay.
    Event(Event),
}

/// What a command in flight waits for.
enum Pending {
    New(Box<NewSecrets>),
    Send,
    Sub,
    Get(RecipientId),
    Ack,
    Del(RecipientId),
    Ping,
}

struct NewSecrets {
    auth: DhSecret,
    dh: DhSecret,
}

/// Stage two: the session after the hello. See the module documentation for the
/// calling order.
pub struct RelayClientSession {
    version: ProtocolVersion,
    session_key: DhPublic,
    binding: ChannelBinding,
    decoder: FrameDecoder,
    encoder: FrameEncoder,
    pending: HashMap<CorrId, Pending>,
    /// `GET`s in flight per queue, oldest first.
    gets: HashMap<RecipientId, VecDeque<CorrId>>,
    delivery_keys: HashMap<RecipientId, DeliveryKey>,
    auth_keys: VecDeque<(AuthRole, DhPublic, AuthKey)>,
    outputs: VecDeque<Output>,
    error: Option<ProtocolError>,
}

impl core::fmt::Debug for RelayClientSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RelayClientSession")
            .field("version", &self.version)
            .field("pending", &self.pending.len())
            .field("queues", &self.delivery_keys.len())
            .finish_non_exhaustive()
    }
}

impl RelayClientSession {
    /// The agreed protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Commands sent and not yet answered.
    pub fn pending_commands(&self) -> usize {
        self.pending.len()
    }

    /// `NEW`: creates a queue with fresh recipient auth and DH secrets. The reply is
    /// [`Completion::Created`].
    pub fn create_queue<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        password: Option<&[u8]>,
    ) -> Result<CorrId, LinkError> {
        let password = password.map(QueuePassword::new).transpose()?;
        let secrets = Box::new(NewSecrets {
            auth: DhSecret::generate(rng),
            dh: DhSecret::generate(rng),
        });
        let command = Command::New(NewQueue {
            recipient_auth_key: secrets.auth.public_key(),
            recipient_dh_key: secrets.dh.public_key(),
            password,
        });
        let key = self.auth_key(AuthRole::Recipient, &secrets.auth)?;
        self.issue(rng, command, Some(&key), Pending::New(secrets))
    }

    /// `SEND`: writes `body` to the queue `sender_id`, authenticated by the sender key
    /// (announced if `credentials` says so). The reply is [`Completion::Done`].
    pub fn send<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        sender_id: SenderId,
        credentials: &SenderCredentials,
        body: &[u8; ENVELOPE_LEN],
    ) -> Result<CorrId, LinkError> {
        let command = Command::Send(SendMessage {
            sender_id,
            sender_auth_key: credentials
                .announces_key()
                .then(|| credentials.public_key()),
            body: Box::new(*body),
        });
        let key = self.auth_key(AuthRole::Sender, credentials.secret())?;
        self.issue(rng, command, Some(&key), Pending::Send)
    }

    /// `SUB`: the relay delivers the queue's messages as [`Event::Message`], one at a
    /// time until each is acknowledged. The reply is [`Completion::Done`].
    pub fn subscribe<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        queue: &QueueCredentials,
    ) -> Result<CorrId, LinkError> {
        self.know_queue(queue)?;
        let command = Command::Sub(queue.recipient_id());
        self.recipient_command(rng, queue, command, Pending::Sub)
    }

    /// `GET`: the queue's first message, if any. The reply is [`Completion::Message`].
    pub fn get<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        queue: &QueueCredentials,
    ) -> Result<CorrId, LinkError> {
        self.know_queue(queue)?;
        let id = queue.recipient_id();
        let corr_id = self.recipient_command(rng, queue, Command::Get(id), Pending::Get(id))?;
        self.gets.entry(id).or_default().push_back(corr_id);
        Ok(corr_id)
    }

    /// `ACK`: deletes a delivered message; on a subscription the relay then delivers the
    /// next one. The reply is [`Completion::Done`], or [`LinkError::NoMsg`].
    pub fn ack<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        queue: &QueueCredentials,
        msg_id: MsgId,
    ) -> Result<CorrId, LinkError> {
        let command = Command::Ack {
            recipient_id: queue.recipient_id(),
            msg_id,
        };
        self.recipient_command(rng, queue, command, Pending::Ack)
    }

    /// `DEL`: deletes the queue and every message in it. The reply is
    /// [`Completion::Done`].
    pub fn delete_queue<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        queue: &QueueCredentials,
    ) -> Result<CorrId, LinkError> {
        let id = queue.recipient_id();
        self.recipient_command(rng, queue, Command::Del(id), Pending::Del(id))
    }

    /// `PING`. The reply is [`Completion::Pong`].
    pub fn ping<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<CorrId, LinkError> {
        self.issue(rng, Command::Ping, None, Pending::Ping)
    }

    /// Feeds one block from the relay. An error is fatal and returned again by every
    /// later call.
    pub fn handle_block(&mut self, block: &Block) -> Result<(), LinkError> {
        if let Some(error) = self.error {
            return Err(error.into());
        }
        if let Err(error) = self.decoder.handle_block(block) {
            return Err(self.fail(error.into()));
        }
        self.drain_frames()
    }

    /// The next reply or event.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next block to send; a partly filled block is flushed once nothing else
    /// waits, so several commands issued together share blocks.
    pub fn poll_block(&mut self) -> Option<Block> {
        if self.encoder.pending_blocks() == 0 && self.encoder.has_partial_block() {
            self.encoder.flush();
        }
        self.encoder.poll_block()
    }

    fn recipient_command<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        queue: &QueueCredentials,
        command: Command,
        pending: Pending,
    ) -> Result<CorrId, LinkError> {
        let key = self.auth_key(AuthRole::Recipient, queue.recipient_auth_secret())?;
        self.issue(rng, command, Some(&key), pending)
    }

    fn issue<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        command: Command,
        key: Option<&AuthKey>,
        pending: Pending,
    ) -> Result<CorrId, LinkError> {
        if let Some(error) = self.error {
            return Err(error.into());
        }
        let mut corr_id = CorrId::generate(rng);
        while self.pending.contains_key(&corr_id) {
            corr_id = CorrId::generate(rng);
        }
        // Our own commands with the key of their role: a failure is a bug here.
        let frame = command
            .encode(corr_id, key)
            .map_err(|_| LinkError::Refused(ErrorCode::Cmd))?;
        self.push_frame(&frame);
        self.pending.insert(corr_id, pending);
        Ok(corr_id)
    }

    /// The cached MAC key of `secret` for `role` on this connection, or a new one.
    fn auth_key(&mut self, role: AuthRole, secret: &DhSecret) -> Result<AuthKey, LinkError> {
        let public = secret.public_key();
        if let Some((.., key)) = self
            .auth_keys
            .iter()
            .find(|(r, p, _)| *r == role && *p == public)
        {
            return Ok(key.clone());
        }
        let key = AuthKey::derive(role, secret, &self.session_key, &self.binding)
            .map_err(|_| self.fail(ProtocolError::BadRelayKey))?;
        if self.auth_keys.len() >= AUTH_KEY_CACHE_ENTRIES {
            self.auth_keys.pop_front();
        }
        self.auth_keys.push_back((role, public, key.clone()));
        Ok(key)
    }

    fn know_queue(&mut self, queue: &QueueCredentials) -> Result<(), LinkError> {
        let id = queue.recipient_id();
        if !self.delivery_keys.contains_key(&id) && self.delivery_keys.len() >= MAX_QUEUES_PER_LINK
        {
            return Err(LinkError::TooManyQueues);
        }
        self.delivery_keys.insert(id, queue.delivery_key().clone());
        Ok(())
    }

    fn drain_frames(&mut self) -> Result<(), LinkError> {
        while let Some(frame) = self.decoder.poll_frame() {
            let decoded = Reply::decode(&frame);
            // Decoded: a `MSG`'s buffer serves the next one.
            FrameDecoder::recycle(frame);
            let reply = match decoded {
                Ok(reply) => reply,
                Err(error) => return Err(self.fail(error.into())),
            };
            if let Err(error) = self.handle_reply(reply) {
                return Err(self.fail(error));
            }
        }
        Ok(())
    }

    fn handle_reply(&mut self, reply: Reply) -> Result<(), ProtocolError> {
        match reply {
            Reply::Msg(delivery) => {
                self.handle_msg(delivery);
                Ok(())
            }
            Reply::End(id) => {
                self.outputs.push_back(Output::Event(Event::End(id)));
                Ok(())
            }
            Reply::Err {
                corr_id: None,
                code,
                ..
            } => {
                self.outputs
                    .push_back(Output::Event(Event::RelayError(code)));
                Ok(())
            }
            other => {
                let corr_id = other.corr_id().ok_or(ProtocolError::UnexpectedReply)?;
                let pending = self
                    .pending
                    .remove(&corr_id)
                    .ok_or(ProtocolError::UnknownCorrelation)?;
                let result = self.complete(corr_id, pending, other);
                self.outputs.push_back(Output::Reply { corr_id, result });
                Ok(())
            }
        }
    }

    fn complete(
        &mut self,
        corr_id: CorrId,
        pending: Pending,
        reply: Reply,
    ) -> Result<Completion, LinkError> {
        if let Pending::Get(id) = &pending {
            self.forget_get(*id, corr_id);
        }
        match (pending, reply) {
            (Pending::New(secrets), Reply::Ids { ids, .. }) => {
                let NewSecrets { auth, dh } = *secrets;
                let credentials = QueueCredentials::from_parts(
                    ids.recipient_id,
                    ids.sender_id,
                    auth,
                    dh,
                    ids.relay_dh_key,
                )?;
                // Best effort: a link at its queue limit still returns the queue.
                let _ = self.know_queue(&credentials);
                Ok(Completion::Created(credentials))
            }
            (
                Pending::Get(_),
                Reply::Err {
                    code: ErrorCode::NoMsg,
                    ..
                },
            ) => Ok(Completion::Message(None)),
            (Pending::Del(id), Reply::Ok { .. }) => {
                self.delivery_keys.remove(&id);
                Ok(Completion::Done)
            }
            (Pending::Send | Pending::Sub | Pending::Ack, Reply::Ok { .. }) => Ok(Completion::Done),
            (Pending::Ping, Reply::Pong { .. }) => Ok(Completion::Pong),
            (_, Reply::Err { code, .. }) => Err(LinkError::from_code(code)),
            _ => Err(ProtocolError::UnexpectedReply.into()),
        }
    }

    fn handle_msg(&mut self, delivery: Delivery) {
        let recipient_id = delivery.recipient_id;
        let msg_id = delivery.msg_id;
        let opened = match self.delivery_keys.get(&recipient_id) {
            None => Err(Undeliverable::UnknownQueue),
            Some(key) => open_delivery(key, &delivery).map_err(|_| Undeliverable::DoesNotOpen),
        };
        let get = self
            .gets
            .get_mut(&recipient_id)
            .and_then(VecDeque::pop_front);
        if let Some(corr_id) = get {
            self.pending.remove(&corr_id);
            if self.gets.get(&recipient_id).is_some_and(VecDeque::is_empty) {
                self.gets.remove(&recipient_id);
            }
            let result = opened
                .map(|body| {
                    Completion::Message(Some(ReceivedMessage {
                        recipient_id,
                        msg_id,
                        timestamp: delivery.timestamp,
                        body,
                    }))
                })
                .map_err(|_| ProtocolError::DeliveryDoesNotOpen.into());
            self.outputs.push_back(Output::Reply { corr_id, result });
            return;
        }
        let event = match opened {
            Ok(body) => Event::Message {
                recipient_id,
                msg_id,
                timestamp: delivery.timestamp,
                body,
            },
            Err(reason) => Event::Undeliverable {
                recipient_id,
                msg_id,
                reason,
            },
        };
        self.outputs.push_back(Output::Event(event));
    }

    fn forget_get(&mut self, id: RecipientId, corr_id: CorrId) {
        if let Some(gets) = self.gets.get_mut(&id) {
            gets.retain(|c| *c != corr_id);
            if gets.is_empty() {
                self.gets.remove(&id);
            }
        }
    }

    fn push_frame(&mut self, frame: &[u8]) {
        // Every command is far below the frame limit (checked at compile time in the
        // wire crate), so this cannot fail.
        let _ = self.encoder.push_frame(frame);
    }

    fn fail(&mut self, error: ProtocolError) -> LinkError {
        self.error.get_or_insert(error);
        error.into()
    }
}
