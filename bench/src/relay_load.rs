//! Load through a real relay, over the client's own [`RelayLink`].
//!
//! ```text
//!  pair i:  sender link ── SEND (window W, W workers) ──►  relay  ── MSG ──► recipient link
//!                       ◄── OK (after the fsync) ───────         ◄── ACK ──   (subscribed)
//! ```
//!
//! Each pair has its own queue and two connections. The first `SEND` announces the
//! sender key (during setup); the measured ones are authenticated by the fixed key, as
//! a real sender's are.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use getrandom::SysRng;
use passage_client::relay::{Event, LinkError, QueueCredentials, RelayLink, SenderCredentials};
use passage_crypto::ENVELOPE_LEN;
use passage_transport::ConnectOptions;
use passage_wire::{RelayAddress, SenderId};
use rand_core::UnwrapErr;

use crate::load::{Flow, PairTasks, RecipientLog, Shared, Stamp, stopped};

/// How long a command waits for the relay's reply. Shorter than the link's default
/// minute, so that a stuck relay shows within a run, and longer than any healthy fsync.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause after a failed send that leaves the link usable (quota, rate limit), so a
/// failing pair does not spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// How long closing a recipient link may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(6);

/// What every pair of a run shares.
#[derive(Debug, Clone)]
pub struct RelayPairPlan {
    /// The relay.
    pub address: RelayAddress,
    /// How to connect (the transport is fixed, never raced).
    pub options: ConnectOptions,
    /// Messages in flight per pair; also the number of sending workers.
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
    let mut recipient = RelayLink::connect(&plan.address, &plan.options)
        .await
        .context("connecting the recipient")?;
    recipient.set_reply_timeout(REPLY_TIMEOUT);
    let queue = recipient
        .create_queue(None)
        .await
        .context("creating the queue")?;
    recipient
        .subscribe(&queue)
        .await
        .context("subscribing to the queue")?;
    let recipient_task = tokio::spawn(receive(
        recipient,
        queue.clone(),
        Arc::clone(&flow),
        Arc::clone(&shared),
    ));

    let mut sender = RelayLink::connect(&plan.address, &plan.options)
        .await
        .context("connecting the sender")?;
    sender.set_reply_timeout(REPLY_TIMEOUT);
    let mut credentials = SenderCredentials::generate(&mut UnwrapErr(SysRng));
    let mut stop = shared.stop_sending();
    let first = flow
        .next(&shared, &mut stop)
        .await
        .ok_or_else(|| anyhow!("stopped during setup"))?;
    let mut body = Box::new([0u8; ENVELOPE_LEN]);
    first.write(&mut body[..]);
    sender
        .send(queue.sender_id(), &credentials, &body)
        .await
        .context("the first send (announcing the sender key)")?;
    shared.sent_ok.fetch_add(1, Ordering::Relaxed);
    credentials.mark_key_fixed();

    let sender = Arc::new(sender);
    let senders = (0..plan.window)
        .map(|worker| {
            let already_ok = if worker == 0 { vec![first.seq] } else { vec![] };
            tokio::spawn(send_loop(
                Arc::clone(&sender),
                queue.sender_id(),
                credentials.clone(),
                Arc::clone(&flow),
                Arc::clone(&shared),
                already_ok,
            ))
        })
        .collect();
    Ok(PairTasks {
        pair,
        senders,
        recipient: Some(recipient_task),
    })
}

/// One sending worker: a slot, a `SEND`, its reply; until told to stop. Returns the
/// sequence numbers the relay answered OK.
async fn send_loop(
    link: Arc<RelayLink>,
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
    while let Some(stamp) = flow.next(&shared, &mut stop).await {
        stamp.write(&mut body[..]);
        match link.send(sender_id, &credentials, &body).await {
            Ok(()) => {
                ok.push(stamp.seq);
                shared.sent_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                shared.send_errors.fetch_add(1, Ordering::Relaxed);
                shared.error(format!("SEND failed: {e}"));
                flow.release();
                if link_is_gone(&e) {
                    break;
                }
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    ok
}

/// The recipient: records each delivery and acknowledges it, until told to stop.
async fn receive(
    mut link: RelayLink,
    queue: QueueCredentials,
    flow: Arc<Flow>,
    shared: Arc<Shared>,
) -> RecipientLog {
    let mut stop = shared.stop_receiving();
    let mut log = RecipientLog::default();
    let mut acks = tokio::task::JoinSet::new();
    loop {
        let event = tokio::select! {
            event = link.next_event() => event,
            () = stopped(&mut stop) => break,
        };
        let msg_id = match event {
            Some(Event::Message { msg_id, body, .. }) => {
                match Stamp::read(&body[..]) {
                    Some(stamp) if stamp.pair == flow.pair => log.delivered(stamp, &flow, &shared),
                    _ => shared.error("a delivered body is not this pair's message"),
                }
                msg_id
            }
            Some(Event::Undeliverable { msg_id, reason, .. }) => {
                shared.error(format!("undeliverable message: {reason}"));
                msg_id
            }
            Some(Event::End(_)) => {
                shared.error("the relay ended a subscription (END)");
                continue;
            }
            Some(other) => {
                shared.error(format!("unexpected event: {other:?}"));
                continue;
            }
            None => {
                shared.error("a recipient connection ended");
                break;
            }
        };
        // Acknowledged without waiting for the answer (the deletion's fsync): the relay
        // keeps delivering within its window meanwhile, as a client that handles one
        // message while the previous one's ACK is written.
        let handle = link.handle();
        let (queue, shared) = (queue.clone(), Arc::clone(&shared));
        acks.spawn(async move {
            if let Err(e) = handle.ack(&queue, msg_id).await {
                shared.error(format!("ACK failed: {e}"));
            }
        });
        while acks.try_join_next().is_some() {}
    }
    while acks.join_next().await.is_some() {}
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, link.close()).await;
    log
}

/// Whether the link can carry no more commands.
fn link_is_gone(e: &LinkError) -> bool {
    matches!(
        e,
        LinkError::Closed | LinkError::Transport(_) | LinkError::Protocol(_)
    )
}
