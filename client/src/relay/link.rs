//! [`RelayLink`]: the tokio driver around [`RelayClientSession`].
//!
//! ```text
//!  RelayLink::send/get/… ──request──► driver task ──blocks──► writer task ──► BlockSender
//!        ▲  oneshot reply                 │  ▲
//!        └────────────────────────────────┘  └── BlockReceiver ◄── relay
//!  RelayLink::next_event ◄──events── driver task
//! ```
//!
//! One driver task owns the session and the receiving half of the stream; a writer
//! task owns the sending half, so a relay that stops reading while it writes to us
//! cannot deadlock the link. Commands may be issued concurrently (`&self`): they are
//! pipelined on the connection and each waits for its own reply.

use std::collections::HashMap;
use std::time::Duration;

use chacha20::ChaCha20Rng;
use getrandom::SysRng;
use passage_crypto::ENVELOPE_LEN;
use passage_transport::{
    Block, BlockReceiver, BlockSender, BlockStream, ConnectOptions, KeyRotation, RelayAddress,
    TransportKind, connect_address,
};
use passage_wire::{ChannelBinding, CorrId, MsgId, SenderId};
use rand_core::{SeedableRng as _, UnwrapErr};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::credentials::{QueueCredentials, SenderCredentials};
use super::error::{LinkError, ProtocolError};
use super::session::{
    AwaitingHello, Completion, Event, HelloProgress, Output, ReceivedMessage, RelayClientSession,
};

/// How long a command waits for its reply by default. The relay answers at once except
/// for writes, which wait for one fsync; a minute covers a loaded relay on a slow
/// network and still notices one that has silently gone away.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Commands in flight on one link; more wait until replies come back. The relay stops
/// reading a connection with 64 writes in flight, so more would only queue there.
pub const MAX_IN_FLIGHT: usize = 128;

/// Requests waiting for the driver task.
const REQUEST_QUEUE: usize = 64;

/// How long closing waits for the writer to deliver the last blocks.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// How long the client's hello waits for the first command, so that both travel in
/// one block: a link is nearly always opened for a command, issued as soon as
/// [`RelayLink::connect`] returns, and a block is 4 KiB on the wire whatever it holds.
/// Far below a round trip, so a link opened only to listen loses nothing that matters.
pub const HELLO_COALESCE: Duration = Duration::from_millis(20);

type Responder = oneshot::Sender<Result<Completion, LinkError>>;

enum Request {
    New(Option<Box<[u8]>>),
    Send(SenderId, SenderCredentials, Box<[u8; ENVELOPE_LEN]>),
    Sub(QueueCredentials),
    Get(QueueCredentials),
    Ack(QueueCredentials, MsgId),
    Del(QueueCredentials),
    Ping,
}

/// A connection to one relay, speaking the relay protocol.
///
/// Command methods take `&self` and may run concurrently (e.g. many `send`s joined
/// together): they are pipelined and each returns when its reply arrives, or fails
/// with [`LinkError::Timeout`] after the reply timeout. Messages from subscriptions
/// and `END`s arrive through [`next_event`](Self::next_event), which returns `None`
/// once the connection has ended; [`close`](Self::close) then tells why.
///
/// Dropping the link closes the connection.
#[derive(Debug)]
pub struct RelayLink {
    handle: LinkHandle,
    events: mpsc::UnboundedReceiver<Event>,
    driver: JoinHandle<Result<(), LinkError>>,
    transport: TransportKind,
    key_rotation: Option<KeyRotation>,
}

/// A cloneable handle that issues commands on a [`RelayLink`]'s connection, for
/// callers that pipeline commands from several tasks. It has the same command methods
/// as the link; they fail with [`LinkError::Closed`] once the link is gone.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    requests: mpsc::Sender<(Request, Responder)>,
    reply_timeout: Duration,
}

impl RelayLink {
    /// Connects to the relay at `address` (QUIC or TLS/TCP, authenticated by the pin
    /// in the address) and exchanges hellos, within `options.handshake_timeout`.
    pub async fn connect(
        address: &RelayAddress,
        options: &ConnectOptions,
    ) -> Result<Self, LinkError> {
        let stream = connect_address(address, options).await?;
        Self::over(stream, options.handshake_timeout).await
    }

    /// Runs the relay protocol over an established stream; the hello exchange must
    /// finish within `hello_timeout`.
    pub async fn over(stream: BlockStream, hello_timeout: Duration) -> Result<Self, LinkError> {
        let transport = stream.transport();
        let key_rotation = stream.key_rotation();
        let binding = ChannelBinding::from_bytes(stream.channel_binding());
        let (mut tx, mut rx) = stream.split();
        let session = tokio::time::timeout(hello_timeout, read_hello(binding, &mut rx))
            .await
            .map_err(|_| LinkError::Timeout)??;
        let (requests, request_rx) = mpsc::channel(REQUEST_QUEUE);
        let (event_tx, events) = mpsc::unbounded_channel();
        let (block_tx, block_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(async move { write_blocks(&mut tx, block_rx).await });
        let driver = tokio::spawn(drive(session, rx, block_tx, writer, request_rx, event_tx));
        Ok(Self {
            handle: LinkHandle {
                requests,
                reply_timeout: DEFAULT_REPLY_TIMEOUT,
            },
            events,
            driver,
            transport,
            key_rotation,
        })
    }

    /// A handle for issuing commands from other tasks (see [`LinkHandle`]).
    pub fn handle(&self) -> LinkHandle {
        self.handle.clone()
    }

    /// Which transport carries the link.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// The relay is rotating its key and this link was made with the old pin: the
    /// relay's new pin, endorsed by the old key (verified by the transport), and until
    /// when the old pin still works. Whoever keeps this relay's address should replace
    /// its pin with `new_pin` before then.
    pub fn key_rotation(&self) -> Option<KeyRotation> {
        self.key_rotation
    }

    /// Sets how long each command waits for its reply (default
    /// [`DEFAULT_REPLY_TIMEOUT`]).
    pub fn set_reply_timeout(&mut self, timeout: Duration) {
        self.handle.reply_timeout = timeout;
    }

    /// `NEW`: see [`LinkHandle::create_queue`].
    pub async fn create_queue(
        &self,
        password: Option<&[u8]>,
    ) -> Result<QueueCredentials, LinkError> {
        self.handle.create_queue(password).await
    }

    /// `SEND`: see [`LinkHandle::send`].
    pub async fn send(
        &self,
        sender_id: SenderId,
        credentials: &SenderCredentials,
        body: &[u8; ENVELOPE_LEN],
    ) -> Result<(), LinkError> {
        self.handle.send(sender_id, credentials, body).await
    }

    /// `SUB`: see [`LinkHandle::subscribe`].
    pub async fn subscribe(&self, queue: &QueueCredentials) -> Result<(), LinkError> {
        self.handle.subscribe(queue).await
    }

    /// `GET`: see [`LinkHandle::get`].
    pub async fn get(
        &self,
        queue: &QueueCredentials,
    ) -> Result<Option<ReceivedMessage>, LinkError> {
        self.handle.get(queue).await
    }

    /// `ACK`: see [`LinkHandle::ack`].
    pub async fn ack(&self, queue: &QueueCredentials, msg_id: MsgId) -> Result<(), LinkError> {
        self.handle.ack(queue, msg_id).await
    }

    /// `DEL`: see [`LinkHandle::delete_queue`].
    pub async fn delete_queue(&self, queue: &QueueCredentials) -> Result<(), LinkError> {
        self.handle.delete_queue(queue).await
    }

    /// `PING`: see [`LinkHandle::ping`].
    pub async fn ping(&self) -> Result<(), LinkError> {
        self.handle.ping().await
    }

    /// The next message or `END` pushed by the relay; `None` once the connection has
    /// ended. Cancel-safe.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Polls for the next pushed event (for callers that wait on several links at
    /// once); `Ready(None)` once the connection has ended.
    pub fn poll_next_event(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Event>> {
        self.events.poll_recv(cx)
    }

    /// Closes the connection gracefully, after the blocks already issued are sent.
    /// Returns the error that had ended the connection, if one did. The connection
    /// ends once every [`LinkHandle`] cloned from this link is dropped too.
    pub async fn close(self) -> Result<(), LinkError> {
        let Self { handle, driver, .. } = self;
        drop(handle);
        driver.await.unwrap_or(Err(LinkError::Closed))
    }
}

impl LinkHandle {
    /// `NEW`: creates a queue with fresh recipient secrets (and the relay's creation
    /// password if it requires one).
    pub async fn create_queue(
        &self,
        password: Option<&[u8]>,
    ) -> Result<QueueCredentials, LinkError> {
        match self.request(Request::New(password.map(Box::from))).await? {
            Completion::Created(credentials) => Ok(credentials),
            _ => Err(ProtocolError::UnexpectedReply.into()),
        }
    }

    /// `SEND`: writes `body` to the queue `sender_id`; returns once the relay has
    /// stored it durably. The first send with new credentials announces the sender key
    /// (see [`SenderCredentials`]).
    pub async fn send(
        &self,
        sender_id: SenderId,
        credentials: &SenderCredentials,
        body: &[u8; ENVELOPE_LEN],
    ) -> Result<(), LinkError> {
        let request = Request::Send(sender_id, credentials.clone(), Box::new(*body));
        self.request(request).await.map(|_| ())
    }

    /// Several `SEND`s, pipelined in order on the connection; one result per item, in
    /// the same order. Sends to one queue are stored by the relay in this order.
    pub async fn send_batch(
        &self,
        items: &[(SenderId, SenderCredentials, Box<[u8; ENVELOPE_LEN]>)],
    ) -> Vec<Result<(), LinkError>> {
        let mut answers = Vec::with_capacity(items.len());
        for (sender_id, credentials, body) in items {
            let (reply, answer) = oneshot::channel();
            let request = Request::Send(*sender_id, credentials.clone(), body.clone());
            let queued =
                tokio::time::timeout(self.reply_timeout, self.requests.send((request, reply)))
                    .await;
            answers.push(matches!(queued, Ok(Ok(()))).then_some(answer));
        }
        let mut results = Vec::with_capacity(items.len());
        for answer in answers {
            let result = match answer {
                None => Err(LinkError::Closed),
                Some(answer) => match tokio::time::timeout(self.reply_timeout, answer).await {
                    Ok(Ok(reply)) => reply.map(|_| ()),
                    Ok(Err(_)) => Err(LinkError::Closed),
                    Err(_) => Err(LinkError::Timeout),
                },
            };
            results.push(result);
        }
        results
    }

    /// `SUB`: the relay delivers the queue's messages through
    /// [`RelayLink::next_event`], in order, with a bounded window of them (16) delivered
    /// and not yet acknowledged; each `ACK` lets the next one come. Takes the
    /// subscription over from any other connection.
    pub async fn subscribe(&self, queue: &QueueCredentials) -> Result<(), LinkError> {
        self.request(Request::Sub(queue.clone())).await.map(|_| ())
    }

    /// `GET`: the queue's first message, or `None` if it is empty. Do not poll a queue
    /// this link subscribes to (see [`RelayClientSession`]).
    pub async fn get(
        &self,
        queue: &QueueCredentials,
    ) -> Result<Option<ReceivedMessage>, LinkError> {
        match self.request(Request::Get(queue.clone())).await? {
            Completion::Message(message) => Ok(message),
            _ => Err(ProtocolError::UnexpectedReply.into()),
        }
    }

    /// `ACK`: deletes a delivered message. [`LinkError::NoMsg`] if there is none with
    /// that id.
    pub async fn ack(&self, queue: &QueueCredentials, msg_id: MsgId) -> Result<(), LinkError> {
        self.request(Request::Ack(queue.clone(), msg_id))
            .await
            .map(|_| ())
    }

    /// `DEL`: deletes the queue and its messages; later sends to it fail with
    /// [`LinkError::Auth`].
    pub async fn delete_queue(&self, queue: &QueueCredentials) -> Result<(), LinkError> {
        self.request(Request::Del(queue.clone())).await.map(|_| ())
    }

    /// `PING`: checks the relay answers (and keeps the connection from idling out).
    pub async fn ping(&self) -> Result<(), LinkError> {
        self.request(Request::Ping).await.map(|_| ())
    }

    async fn request(&self, request: Request) -> Result<Completion, LinkError> {
        let (reply, answer) = oneshot::channel();
        let exchange = async {
            self.requests
                .send((request, reply))
                .await
                .map_err(|_| LinkError::Closed)?;
            answer.await.unwrap_or(Err(LinkError::Closed))
        };
        tokio::time::timeout(self.reply_timeout, exchange)
            .await
            .unwrap_or(Err(LinkError::Timeout))
    }
}

/// Reads blocks until the relay's hello and returns the session it starts; sends
/// nothing (the session queues the client's hello: send its blocks next). For drivers
/// of [`RelayClientSession`] other than [`RelayLink`] (a load generator, say).
pub async fn read_hello(
    binding: ChannelBinding,
    rx: &mut BlockReceiver,
) -> Result<RelayClientSession, LinkError> {
    let mut stage = AwaitingHello::new(binding);
    loop {
        let block = rx.recv_block_ref().await?.ok_or(LinkError::Closed)?;
        match stage.handle_block(block)? {
            HelloProgress::Pending(next) => stage = next,
            HelloProgress::Ready(session) => return Ok(*session),
        }
    }
}

/// The writer task: sends blocks in order until the driver is done, then ends the
/// sending direction.
async fn write_blocks(tx: &mut BlockSender, mut blocks: mpsc::UnboundedReceiver<Block>) {
    while let Some(block) = blocks.recv().await {
        if tx.send_block(&block).await.is_err() {
            return;
        }
    }
    let _ = tx.finish().await;
}

/// The driver task: feeds requests and received blocks to the session, hands replies
/// to their callers and events to the link, and passes blocks to the writer.
async fn drive(
    mut session: RelayClientSession,
    mut rx: BlockReceiver,
    blocks: mpsc::UnboundedSender<Block>,
    writer: JoinHandle<()>,
    mut requests: mpsc::Receiver<(Request, Responder)>,
    events: mpsc::UnboundedSender<Event>,
) -> Result<(), LinkError> {
    // Correlation ids and nonces: ChaCha20 seeded from the OS once per connection, not a
    // system call per command.
    let mut rng = ChaCha20Rng::from_rng(&mut UnwrapErr(SysRng));
    let mut waiting: HashMap<CorrId, Responder> = HashMap::new();
    // The client's hello is queued; the first command joins it in the same block.
    if let Ok(Some((request, reply))) = tokio::time::timeout(HELLO_COALESCE, requests.recv()).await
    {
        match issue(&mut session, &mut rng, request) {
            Ok(corr_id) => {
                waiting.insert(corr_id, reply);
            }
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        }
    }
    let result = 'run: loop {
        dispatch(&mut session, &mut waiting, &events);
        while let Some(block) = session.poll_block() {
            if blocks.send(block).is_err() {
                // The writer stopped on a send error: the connection is gone.
                break 'run Err(LinkError::Closed);
            }
        }
        tokio::select! {
            request = requests.recv(), if session.pending_commands() < MAX_IN_FLIGHT => {
                let Some((request, reply)) = request else { break 'run Ok(()) };
                match issue(&mut session, &mut rng, request) {
                    Ok(corr_id) => {
                        waiting.insert(corr_id, reply);
                    }
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                }
            }
            block = rx.recv_block() => {
                let handled = match block {
                    Ok(Some(block)) => session.handle_block(&block),
                    Ok(None) => Err(LinkError::Closed),
                    Err(error) => Err(error.into()),
                };
                dispatch(&mut session, &mut waiting, &events);
                if let Err(error) = handled {
                    break 'run Err(error);
                }
            }
        }
    };
    // Commands still waiting will get no reply.
    for (_, reply) in waiting.drain() {
        let _ = reply.send(Err(LinkError::Closed));
    }
    drop(events);
    drop(blocks);
    let _ = tokio::time::timeout(CLOSE_LINGER, writer).await;
    match result {
        // The relay closing the connection is how a link normally ends from its side.
        Err(LinkError::Closed) => Ok(()),
        other => other,
    }
}

fn issue(
    session: &mut RelayClientSession,
    rng: &mut ChaCha20Rng,
    request: Request,
) -> Result<CorrId, LinkError> {
    match request {
        Request::New(password) => session.create_queue(rng, password.as_deref()),
        Request::Send(sender_id, credentials, body) => {
            session.send(rng, sender_id, &credentials, &body)
        }
        Request::Sub(queue) => session.subscribe(rng, &queue),
        Request::Get(queue) => session.get(rng, &queue),
        Request::Ack(queue, msg_id) => session.ack(rng, &queue, msg_id),
        Request::Del(queue) => session.delete_queue(rng, &queue),
        Request::Ping => session.ping(rng),
    }
}

fn dispatch(
    session: &mut RelayClientSession,
    waiting: &mut HashMap<CorrId, Responder>,
    events: &mpsc::UnboundedSender<Event>,
) {
    while let Some(output) = session.poll_output() {
        match output {
            Output::Reply { corr_id, result } => {
                if let Some(reply) = waiting.remove(&corr_id) {
                    // The caller may have timed out and gone; nothing to do then.
                    let _ = reply.send(result);
                }
            }
            Output::Event(event) => {
                // Unbounded, but bounded in practice: the relay pushes at most its
                // delivery window (16) per subscribed queue until they are acknowledged.
                let _ = events.send(event);
            }
        }
    }
}
