//! Load through a real relay, driving the client's sans-IO [`RelayClientSession`]
//! directly: one task per connection, no driver or writer task, no channel or oneshot
//! per command, no task per `ACK`.
//!
//! ```text
//!  pair i:  sender task ── SEND ×W (pipelined) ──►  relay  ── MSG ──► recipient task
//!                       ◄── OK (after the fsync) ──        ◄── ACK ──  (subscribed)
//!  each task: recv block ─► session.handle_block ─► poll_output ─► issue ─► poll_block ─► write
//! ```
//!
//! Each pair has its own queue and two connections. The first `SEND` announces the
//! sender key (during setup); the measured ones are authenticated by the fixed key, as
//! a real sender's are. The protocol work is the client's own: the session derives the
//! auth keys, MACs every command and opens every `MSG` with the queue's delivery key.
//!
//! A task writes inline, without reading meanwhile. That cannot deadlock: what either
//! side has in flight is bounded (the pair's window of `SEND`s and their `OK`s; the
//! relay's delivery window of `MSG`s and their `ACK`s), far below the socket buffers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use chacha20::ChaCha20Rng;
use getrandom::SysRng;
use passage_client::relay::{
    Completion, Event, LinkError, Output, QueueCredentials, RelayClientSession, SenderCredentials,
    read_hello,
};
use passage_crypto::ENVELOPE_LEN;
use passage_transport::{
    Block, BlockReceiver, BlockSender, ConnectOptions, TransportError, connect_address,
};
use passage_wire::{ChannelBinding, CorrId, RelayAddress, SenderId};
use rand_core::{SeedableRng as _, UnwrapErr};
use tokio::sync::watch;

use crate::load::{
    Flow, PairTasks, READ_BATCH, RecipientLog, Shared, Stamp, now_or_never, stopped,
};

/// How long a command waits for the relay's reply: a sender whose oldest reply is this
/// late counts its sends in flight as failed and stops, so that a stuck relay shows
/// within a run. Longer than any healthy fsync.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a sender checks its replies against [`REPLY_TIMEOUT`].
const REPLY_CHECK: Duration = Duration::from_secs(1);

/// Pause after a failed send that leaves the connection usable (quota, rate limit), so
/// a failing pair does not spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// How long a recipient waits, once told to stop, for the answers to its `ACK`s and
/// for the end of its connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(6);

/// What every pair of a run shares.
#[derive(Debug, Clone)]
pub struct RelayPairPlan {
    /// The relay.
    pub address: RelayAddress,
    /// How to connect (the transport is fixed, never raced).
    pub options: ConnectOptions,
    /// Messages in flight per pair.
    pub window: usize,
    /// Each pair's pace, if rate-limited.
    pub interval: Option<Duration>,
}

/// Connects pair `pair`: a recipient that creates and subscribes to a queue, and a
/// sender that sends its first message (announcing its key); then starts their tasks.
pub async fn set_up_pair(
    plan: Arc<RelayPairPlan>,
    pair: u64,
    shared: Arc<Shared>,
) -> anyhow::Result<PairTasks> {
    let flow = Flow::new(pair, plan.window, plan.interval);
    let mut recipient = Conn::connect(&plan)
        .await
        .context("connecting the recipient")?;
    let corr_id = recipient
        .session
        .create_queue(&mut recipient.rng, None)
        .context("creating the queue")?;
    let queue = match recipient
        .reply(corr_id)
        .await
        .context("creating the queue")?
    {
        Completion::Created(queue) => queue,
        other => bail!("NEW answered with {other:?}"),
    };
    let corr_id = recipient
        .session
        .subscribe(&mut recipient.rng, &queue)
        .context("subscribing to the queue")?;
    recipient
        .reply(corr_id)
        .await
        .context("subscribing to the queue")?;
    let recipient_task = tokio::spawn(receive(
        recipient,
        queue.clone(),
        Arc::clone(&flow),
        Arc::clone(&shared),
    ));

    let mut sender = Conn::connect(&plan)
        .await
        .context("connecting the sender")?;
    let mut credentials = SenderCredentials::generate(&mut UnwrapErr(SysRng));
    let mut stop = shared.stop_sending();
    let first = flow
        .next(&shared, &mut stop)
        .await
        .ok_or_else(|| anyhow!("stopped during setup"))?;
    let mut body = Box::new([0u8; ENVELOPE_LEN]);
    first.write(&mut body[..]);
    let corr_id = sender
        .session
        .send(&mut sender.rng, queue.sender_id(), &credentials, &body)
        .context("the first send (announcing the sender key)")?;
    sender
        .reply(corr_id)
        .await
        .context("the first send (announcing the sender key)")?;
    shared.sent_ok.fetch_add(1, Ordering::Relaxed);
    credentials.mark_key_fixed();

    let sender_task = tokio::spawn(send_loop(
        sender,
        queue.sender_id(),
        credentials,
        flow,
        shared,
        vec![first.seq],
    ));
    Ok(PairTasks {
        pair,
        senders: vec![sender_task],
        recipient: Some(recipient_task),
    })
}

/// One connection to the relay: the session and both halves of its stream, owned by
/// one task.
struct Conn {
    session: RelayClientSession,
    tx: BlockSender,
    rx: BlockReceiver,
    /// The client's random numbers: ChaCha20 seeded from the OS (no system call per
    /// command).
    rng: ChaCha20Rng,
    /// Blocks to write, reused.
    out: Vec<Block>,
}

impl Conn {
    /// Connects and exchanges hellos within the handshake timeout.
    async fn connect(plan: &RelayPairPlan) -> anyhow::Result<Self> {
        let stream = connect_address(&plan.address, &plan.options).await?;
        let binding = ChannelBinding::from_bytes(stream.channel_binding());
        let (tx, mut rx) = stream.split();
        let session =
            tokio::time::timeout(plan.options.handshake_timeout, read_hello(binding, &mut rx))
                .await
                .map_err(|_| anyhow!("no relay hello in time"))??;
        let mut conn = Self {
            session,
            tx,
            rx,
            rng: ChaCha20Rng::from_rng(&mut UnwrapErr(SysRng)),
            out: Vec::new(),
        };
        // The client's hello.
        conn.flush().await?;
        Ok(conn)
    }

    /// Writes every block the session has ready, in one write.
    async fn flush(&mut self) -> Result<(), TransportError> {
        self.out.clear();
        while let Some(block) = self.session.poll_block() {
            self.out.push(block);
        }
        if self.out.is_empty() {
            return Ok(());
        }
        self.tx.send_blocks(&self.out).await
    }

    /// Feeds every block already received, without waiting, up to [`READ_BATCH`].
    fn handle_ready(&mut self) -> Result<(), String> {
        for _ in 0..READ_BATCH {
            let Some(block) = now_or_never(self.rx.recv_block_ref()) else {
                break;
            };
            handle(&mut self.session, block)?;
        }
        Ok(())
    }

    /// Writes what is queued and reads until the reply to `corr_id` (during setup, when
    /// nothing else is in flight).
    async fn reply(&mut self, corr_id: CorrId) -> anyhow::Result<Completion> {
        self.flush().await?;
        let wait = async {
            loop {
                if let Some(output) = self.session.poll_output() {
                    match output {
                        Output::Reply { corr_id: c, result } if c == corr_id => return Ok(result?),
                        other => bail!("unexpected during setup: {other:?}"),
                    }
                }
                let block = self.rx.recv_block_ref().await;
                self.session
                    .handle_block(block?.ok_or(LinkError::Closed)?)?;
            }
        };
        tokio::time::timeout(REPLY_TIMEOUT, wait)
            .await
            .map_err(|_| anyhow!("no reply within {REPLY_TIMEOUT:?}"))?
    }
}

/// Feeds one received block to the session; `Err` once the connection is unusable.
fn handle(
    session: &mut RelayClientSession,
    block: Result<Option<&Block>, TransportError>,
) -> Result<(), String> {
    match block {
        Ok(Some(block)) => session
            .handle_block(block)
            .map_err(|e| format!("the relay broke the protocol: {e}")),
        Ok(None) => Err("the relay closed the connection".into()),
        Err(e) => Err(format!("the connection failed: {e}")),
    }
}

type NextStamp = Pin<Box<dyn Future<Output = Option<Stamp>> + Send>>;

/// The pair's next window slot (and pace), as a future the sender keeps across its
/// loop: taking a slot is not cancel-safe once paced.
fn next_stamp(flow: &Arc<Flow>, shared: &Arc<Shared>, stop: &watch::Receiver<bool>) -> NextStamp {
    let (flow, shared, mut stop) = (Arc::clone(flow), Arc::clone(shared), stop.clone());
    Box::pin(async move { flow.next(&shared, &mut stop).await })
}

/// The sender: takes window slots and pipelines one `SEND` per slot, reading the
/// `OK`s as they come; once told to stop, waits for the replies in flight. Returns the
/// sequence numbers the relay answered OK.
async fn send_loop(
    mut conn: Conn,
    sender_id: SenderId,
    credentials: SenderCredentials,
    flow: Arc<Flow>,
    shared: Arc<Shared>,
    mut ok: Vec<u64>,
) -> Vec<u64> {
    let mut stop = shared.stop_sending();
    if !shared.started(&mut stop).await {
        return ok;
    }
    let mut body = Box::new([0u8; ENVELOPE_LEN]);
    // Sends in flight: correlation id → sequence number.
    let mut in_flight: HashMap<CorrId, u64> = HashMap::new();
    let mut next = next_stamp(&flow, &shared, &stop);
    let mut sending = true;
    let mut last_reply = Instant::now();
    let mut check = tokio::time::interval(REPLY_CHECK);
    let fail = |what: String| {
        shared.send_errors.fetch_add(1, Ordering::Relaxed);
        shared.error(what);
        flow.release();
    };
    let fatal = 'run: loop {
        if !sending && in_flight.is_empty() {
            break None;
        }
        let mut backoff = false;
        tokio::select! {
            stamp = &mut next, if sending => {
                let mut stamp = stamp;
                if stamp.is_none() {
                    sending = false;
                }
                // Every slot free now goes out in the same write.
                while let Some(s) = stamp {
                    s.write(&mut body[..]);
                    match conn.session.send(&mut conn.rng, sender_id, &credentials, &body) {
                        Ok(corr_id) => {
                            if in_flight.is_empty() {
                                last_reply = Instant::now();
                            }
                            in_flight.insert(corr_id, s.seq);
                        }
                        Err(e) => {
                            fail(format!("SEND failed: {e}"));
                            break 'run Some(format!("SEND failed: {e}"));
                        }
                    }
                    next = next_stamp(&flow, &shared, &stop);
                    stamp = match now_or_never(&mut next) {
                        Some(None) => {
                            sending = false;
                            None
                        }
                        Some(Some(s)) => Some(s),
                        None => None,
                    };
                }
            }
            block = conn.rx.recv_block_ref() => {
                let handled =
                    handle(&mut conn.session, block).and_then(|()| conn.handle_ready());
                while let Some(output) = conn.session.poll_output() {
                    match output {
                        Output::Reply { corr_id, result } => {
                            let Some(seq) = in_flight.remove(&corr_id) else {
                                shared.error("a reply to no SEND in flight");
                                continue;
                            };
                            last_reply = Instant::now();
                            match result {
                                Ok(_) => {
                                    ok.push(seq);
                                    shared.sent_ok.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(e) => {
                                    fail(format!("SEND failed: {e}"));
                                    backoff = true;
                                }
                            }
                        }
                        other => {
                            shared.error(format!("unexpected output to a sender: {other:?}"));
                        }
                    }
                }
                if let Err(e) = handled {
                    break 'run Some(e);
                }
            }
            _ = check.tick(), if !in_flight.is_empty() => {
                if last_reply.elapsed() >= REPLY_TIMEOUT {
                    break 'run Some(format!("no reply within {REPLY_TIMEOUT:?}"));
                }
            }
        }
        if let Err(e) = conn.flush().await {
            break Some(format!("the connection failed: {e}"));
        }
        if backoff {
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    };
    if let Some(why) = fatal {
        shared.error(format!("a sender connection ended: {why}"));
        // The sends in flight will get no answer.
        for _ in in_flight.drain() {
            fail(format!("SEND failed: {why}"));
        }
    } else {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.tx.finish()).await;
    }
    ok
}

/// The recipient: records each delivery and acknowledges it (pipelined, without
/// waiting for the deletion's fsync: the relay keeps delivering within its window
/// meanwhile, as a client that handles one message while the previous one's `ACK` is
/// written), until told to stop.
async fn receive(
    mut conn: Conn,
    queue: QueueCredentials,
    flow: Arc<Flow>,
    shared: Arc<Shared>,
) -> RecipientLog {
    let mut stop = shared.stop_receiving();
    let mut log = RecipientLog::default();
    loop {
        let handled = tokio::select! {
            block = conn.rx.recv_block_ref() => {
                handle(&mut conn.session, block).and_then(|()| conn.handle_ready())
            }
            () = stopped(&mut stop) => break,
        };
        while let Some(output) = conn.session.poll_output() {
            let msg_id = match output {
                Output::Event(Event::Message { msg_id, body, .. }) => {
                    match Stamp::read(&body[..]) {
                        Some(stamp) if stamp.pair == flow.pair => {
                            log.delivered(stamp, &flow, &shared);
                        }
                        _ => shared.error("a delivered body is not this pair's message"),
                    }
                    msg_id
                }
                Output::Event(Event::Undeliverable { msg_id, reason, .. }) => {
                    shared.error(format!("undeliverable message: {reason}"));
                    msg_id
                }
                Output::Event(Event::End(_)) => {
                    shared.error("the relay ended a subscription (END)");
                    continue;
                }
                Output::Event(other) => {
                    shared.error(format!("unexpected event: {other:?}"));
                    continue;
                }
                Output::Reply { result, .. } => {
                    if let Err(e) = result {
                        shared.error(format!("ACK failed: {e}"));
                    }
                    continue;
                }
                other => {
                    shared.error(format!("unexpected output: {other:?}"));
                    continue;
                }
            };
            if let Err(e) = conn.session.ack(&mut conn.rng, &queue, msg_id) {
                shared.error(format!("ACK failed: {e}"));
            }
        }
        if let Err(e) = handled {
            shared.error(format!("a recipient connection ended: {e}"));
            return log;
        }
        if let Err(e) = conn.flush().await {
            shared.error(format!("a recipient connection ended: {e}"));
            return log;
        }
    }
    // Wait for the answers to the ACKs in flight, then end the connection.
    let closing = async {
        while conn.session.pending_commands() > 0 {
            let block = conn.rx.recv_block_ref().await;
            if handle(&mut conn.session, block).is_err() {
                return;
            }
            while let Some(output) = conn.session.poll_output() {
                if let Output::Reply { result: Err(e), .. } = output {
                    shared.error(format!("ACK failed: {e}"));
                }
            }
        }
        let _ = conn.tx.finish().await;
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
    log
}
