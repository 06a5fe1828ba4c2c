//! The tokio driver: accepts connections from the transport, runs one task per
//! connection around its [`Session`], carries writes to the group committer, routes
//! subscription events through the [`Hub`], sweeps expired messages, and shuts down
//! without losing an accepted message.
//!
//! Each connection task moves bytes and time only; every protocol decision is the
//! session's, its hello and idle deadlines included (`Session::poll_timeout` /
//! `handle_timeout`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chacha20::ChaCha20Rng;
use getrandom::SysRng;
use passage_transport::{Accepted, Listener};
use passage_wire::{Block, ChannelBinding};
use rand_core::{SeedableRng as _, UnwrapErr};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant as TokioInstant, sleep_until};

use crate::hub::{ConnId, Hub};
use crate::mailbox::{Events, Mailbox};
use crate::metrics::Metrics;
use crate::session::{Action, Now, ServiceConfig, Session};
use crate::store::{
    Callback, GroupCommitter, HOLD, OnApplied, Store, WriteError, WriteOp, WriteOutcome,
};

/// How long shutdown waits for connections to finish their in-flight writes.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Interval at which store statistics are refreshed into the metrics.
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);

/// The relay service: queues over the transport's block streams.
pub struct Relay {
    config: Arc<ServiceConfig>,
    store: Arc<dyn Store>,
    committer: Arc<GroupCommitter>,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    started: Instant,
    next_conn: AtomicU64,
}

impl core::fmt::Debug for Relay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

/// Everything a connection task shares with the relay.
struct Shared {
    config: Arc<ServiceConfig>,
    store: Arc<dyn Store>,
    committer: Arc<GroupCommitter>,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    started: Instant,
}

impl Shared {
    /// The tokio instant of a session deadline given in [`Now::mono_ms`].
    fn instant_at(&self, mono_ms: u64) -> TokioInstant {
        TokioInstant::from_std(self.started + Duration::from_millis(mono_ms))
    }

    fn now(&self) -> Now {
        Now {
            unix_secs: unix_now(),
            mono_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The wall clock in unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Relay {
    /// A relay over `store`, with its limits and password in `config`.
    pub fn new(config: ServiceConfig, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        let slots = Arc::new(Semaphore::new(config.limits.max_connections));
        let committer = Arc::new(GroupCommitter::with_counters(
            Arc::clone(&store),
            Arc::clone(&metrics.commits),
        ));
        Self {
            config: Arc::new(config),
            store,
            committer,
            hub: Arc::new(Hub::default()),
            metrics,
            slots,
            started: Instant::now(),
            next_conn: AtomicU64::new(0),
        }
    }

    /// Serves connections from `listener` until `shutdown` completes; then stops
    /// accepting, lets every connection finish the writes it started (each `SEND`
    /// answered `OK` is durable before the answer), and drains the committer.
    pub async fn serve(self, mut listener: Listener, shutdown: impl Future<Output = ()>) {
        let shared = Arc::new(Shared {
            config: Arc::clone(&self.config),
            store: Arc::clone(&self.store),
            committer: Arc::clone(&self.committer),
            hub: Arc::clone(&self.hub),
            metrics: Arc::clone(&self.metrics),
            started: self.started,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(housekeeping(Arc::clone(&shared), stop_rx.clone()));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Some(accepted) = accepted else { break };
                    let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
                        Metrics::inc(&self.metrics.connections_refused);
                        drop(accepted);
                        continue;
                    };
                    let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
                    let shared = Arc::clone(&shared);
                    let stop = stop_rx.clone();
                    tasks.spawn(async move {
                        run_connection(accepted, conn, shared, stop).await;
                        drop(permit);
                    });
                }
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
        self.committer.close().await;
    }
}

/// Retention sweeps and store statistics, until shutdown.
async fn housekeeping(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let retention = shared.config.limits.retention_secs;
    let sweep = Duration::from_secs((retention / 4).clamp(1, 60));
    let mut next_sweep = TokioInstant::now();
    let mut next_stats = TokioInstant::now();
    loop {
        tokio::select! {
            () = sleep_until(next_sweep.min(next_stats)) => {}
            _ = stop.changed() => return,
        }
        let now = TokioInstant::now();
        if now >= next_sweep {
            next_sweep = now + sweep;
            let op = WriteOp::Expire {
                received_before: unix_now().saturating_sub(retention),
            };
            if let Ok(WriteOutcome::Expired { count }) = shared.committer.write(op).await {
                shared
                    .metrics
                    .messages_expired
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
        if now >= next_stats {
            next_stats = now + STATS_INTERVAL;
            let store = Arc::clone(&shared.store);
            if let Ok(Ok(stats)) = tokio::task::spawn_blocking(move || store.stats()).await {
                shared
                    .metrics
                    .stored_queues
                    .store(stats.queues, Ordering::Relaxed);
                shared
                    .metrics
                    .stored_messages
                    .store(stats.messages, Ordering::Relaxed);
                shared
                    .metrics
                    .store_bytes
                    .store(stats.bytes_on_disk, Ordering::Relaxed);
            }
        }
    }
}

async fn run_connection(
    accepted: Accepted,
    conn: ConnId,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    Metrics::inc(&shared.metrics.connections_total);
    shared
        .metrics
        .connections_open
        .fetch_add(1, Ordering::Relaxed);
    let stream = accepted.stream;
    let source = accepted.peer.ip();
    let binding = ChannelBinding::from_bytes(stream.channel_binding());
    let (mut tx, mut rx) = stream.split();
    // Subscription events and the outcomes of this connection's writes.
    let mut mailbox = LazyMailbox::default();
    // Message ids, queue ids and queue keys: ChaCha20 seeded from the OS once per
    // connection (a system call per message cost more than the message's id is worth).
    let mut rng = ChaCha20Rng::from_rng(&mut UnwrapErr(SysRng));
    let limits = &shared.config.limits;
    let mut session = Session::new(
        Arc::clone(&shared.config),
        Arc::clone(&shared.metrics),
        binding,
        shared.now(),
        &mut rng,
    );
    session.set_source(source);
    // One timer for the session's deadlines (hello, idle), armed for the earliest it
    // gives; when it fires the session decides (a block received meanwhile has moved
    // the idle deadline later, and the timer is armed again for it).
    let deadline_timer = sleep_until(shared.instant_at(session.poll_timeout().unwrap_or(0)));
    tokio::pin!(deadline_timer);
    let mut in_flight = 0usize;
    let mut stopping = false;
    'conn: loop {
        // Carry out what the session asked for, then take every event that is already
        // there (replies of a whole commit batch, blocks the TLS layer already holds,
        // mailbox events) before sending what it wrote: one write for all of them.
        let mut handled = 0usize;
        loop {
            if !carry_out(&mut session, &shared, conn, &mut mailbox, &mut in_flight).await {
                flush(&mut session, &mut tx, limits.idle_timeout).await;
                break 'conn;
            }
            if handled >= MAX_EVENTS_PER_FLUSH {
                break;
            }
            handled += 1;
            let events = mailbox.take();
            if !events.is_empty() {
                handle_events(&mut session, events, &shared, &mut in_flight);
                continue;
            }
            if session.wants_read() && !stopping {
                match ready_now(rx.recv_block_ref()) {
                    Some(Ok(Some(block))) => {
                        session.handle_block(block, shared.store.as_ref(), shared.now(), &mut rng);
                        continue;
                    }
                    // The peer left; writes it started still complete and stay durable.
                    Some(_) => stopping = true,
                    None => {}
                }
            }
            break;
        }
        if !flush(&mut session, &mut tx, limits.idle_timeout).await {
            break;
        }
        // Deliveries that waited for the backlog to drain go out now.
        if session.resume_deliveries(shared.store.as_ref(), shared.now()) {
            continue;
        }
        if stopping && in_flight == 0 {
            break;
        }
        let reading = session.wants_read() && !stopping;
        if let Some(deadline) = session.poll_timeout().map(|ms| shared.instant_at(ms))
            && deadline < deadline_timer.deadline()
        {
            deadline_timer.as_mut().reset(deadline);
        }
        tokio::select! {
            block = rx.recv_block_ref(), if reading => match block {
                Ok(Some(block)) => {
                    session.handle_block(block, shared.store.as_ref(), shared.now(), &mut rng);
                }
                _ => {
                    // The peer left; writes it started still complete and stay durable.
                    stopping = true;
                }
            },
            () = mailbox.wait() => {
                handle_events(&mut session, mailbox.take(), &shared, &mut in_flight);
            }
            () = &mut deadline_timer, if !stopping => {
                // A deadline that passed closes the session (its `Close` action ends the
                // loop above); otherwise the timer waits for the deadline as it is now.
                session.handle_timeout(shared.now());
                if let Some(ms) = session.poll_timeout() {
                    deadline_timer.as_mut().reset(shared.instant_at(ms));
                }
            }
            _ = stop.changed(), if !stopping => stopping = true,
        }
    }
    for queue in session.subscriptions() {
        shared.hub.unsubscribe(queue, conn);
    }
    let _ = tx.finish().await;
    shared
        .metrics
        .connections_open
        .fetch_sub(1, Ordering::Relaxed);
}

/// Events handled in a row before the replies they produced are sent.
const MAX_EVENTS_PER_FLUSH: usize = 64;

/// A connection's [`Mailbox`], made at its first subscription or write: an idle
/// connection keeps none (about 160 bytes less each).
#[derive(Default)]
struct LazyMailbox(Option<Arc<Mailbox>>);

impl LazyMailbox {
    fn get(&mut self) -> &Arc<Mailbox> {
        self.0.get_or_insert_with(Arc::default)
    }

    fn take(&self) -> Events {
        self.0
            .as_ref()
            .map(|mailbox| mailbox.take())
            .unwrap_or_default()
    }

    async fn wait(&self) {
        match &self.0 {
            Some(mailbox) => mailbox.wait().await,
            None => std::future::pending().await,
        }
    }
}

/// Hands the session what its mailbox held: the outcomes of its writes, then the
/// subscriptions it lost, then the queues that may have a message for it.
fn handle_events(session: &mut Session, events: Events, shared: &Shared, in_flight: &mut usize) {
    let store = shared.store.as_ref();
    for (token, result) in events.done {
        *in_flight = in_flight.saturating_sub(1);
        session.handle_write(token, result, store, shared.now());
    }
    for queue in events.end {
        session.handle_end(queue);
    }
    for queue in events.notify {
        session.handle_notify(queue, store, shared.now());
    }
}

/// Carries out every action the session has queued; false if it asked to close.
async fn carry_out(
    session: &mut Session,
    shared: &Arc<Shared>,
    conn: ConnId,
    mailbox: &mut LazyMailbox,
    in_flight: &mut usize,
) -> bool {
    // The writes of this pass, applied together (in order with the other actions).
    let mut writes = Vec::new();
    while let Some(action) = session.poll_action() {
        if !matches!(action, Action::Write { .. }) {
            shared
                .committer
                .apply_now(std::mem::take(&mut writes))
                .await;
        }
        match action {
            Action::Write { token, mut op } => {
                *in_flight += 1;
                // A message for a recipient who is online and reading may wait in memory
                // for its acknowledgement rather than be written (see `WriteOp::Append`).
                let mut held = None;
                if let WriteOp::Append {
                    recipient_id, hold, ..
                } = op.as_mut()
                {
                    *hold = shared.hub.holds(recipient_id);
                    held = hold.then_some((*recipient_id, Instant::now()));
                }
                let mailbox = Arc::clone(mailbox.get());
                let hub = Arc::clone(&shared.hub);
                // A stored message, or an acknowledged one (perhaps over another
                // connection than the subscriber's), makes the queue's next message due.
                let wakes = match op.as_ref() {
                    WriteOp::Append { recipient_id, .. } => Some((*recipient_id, false)),
                    WriteOp::Ack { recipient_id, .. } => Some((*recipient_id, true)),
                    _ => None,
                };
                // Runs as soon as the batch is applied (before it is durable: delivery
                // need not wait for the disk): it wakes the subscriber even if this
                // connection has ended meanwhile.
                let applied = wakes.map(|(queue, ack)| -> OnApplied {
                    let hub = Arc::clone(&hub);
                    Box::new(move |result: &Result<WriteOutcome, WriteError>| {
                        if ack {
                            let found = matches!(result, Ok(WriteOutcome::Acked { found: true }));
                            hub.acknowledged(&queue, conn, found);
                        } else if matches!(result, Ok(WriteOutcome::Appended)) {
                            hub.notify(queue);
                        }
                    })
                });
                // Runs once the op's answer is due (its write is durable, or a held message
                // was acknowledged): the answer.
                let done = Box::new(move |result: Result<WriteOutcome, WriteError>| {
                    if let Some((queue, since)) = held
                        && since.elapsed() >= HOLD
                    {
                        hub.held_too_long(&queue);
                    }
                    mailbox.post_done((token, result));
                });
                writes.push((op, applied, done as Callback));
            }
            Action::Subscribe(queue) => shared.hub.subscribe(queue, conn, mailbox.get()),
            Action::Unsubscribe(queue) => shared.hub.unsubscribe(&queue, conn),
            Action::Close(_) => return false,
        }
    }
    shared.committer.apply_now(writes).await;
    true
}

/// Polls `future` once: its output if it is ready now, else `None` (the future is then
/// dropped, so it must be cancel-safe, as `recv_block_ref` is).
fn ready_now<F: Future>(future: F) -> Option<F::Output> {
    poll_once(std::pin::pin!(future))
}

/// Polls `future` once, without a waker: its output if it is ready now. A future left
/// pending must be polled again with a real waker before the task waits.
fn poll_once<F: Future + ?Sized>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// Sends every block the session has ready; false if the connection is gone or the
/// peer has not taken a block for `limit` (a client that stops reading cannot hold a
/// connection slot forever).
async fn flush(
    session: &mut Session,
    tx: &mut passage_transport::BlockSender,
    limit: Duration,
) -> bool {
    let blocks: Vec<_> = std::iter::from_fn(|| session.poll_block()).collect();
    if blocks.is_empty() {
        return true;
    }
    // One write and one flush for everything ready: fewer TLS records and syscalls.
    let sent = {
        let mut send = std::pin::pin!(tx.send_blocks(&blocks));
        // Most writes complete at once; only one that waits for the peer arms a timer.
        match poll_once(send.as_mut()) {
            Some(sent) => sent.is_ok(),
            None => matches!(tokio::time::timeout(limit, send).await, Ok(Ok(()))),
        }
    };
    // Written (or abandoned with the connection): the encoder refills them.
    blocks.into_iter().for_each(Block::recycle);
    sent
}
