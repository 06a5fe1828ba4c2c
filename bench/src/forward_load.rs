//! The same load through the baseline [`forwarder`](crate::forwarder): each pair's
//! sender and recipient connect with passage-transport's `connect`, say which pair they
//! are, and exchange blocks shaped like the relay protocol's (see the forwarder's
//! picture). Window, pacing, stamps and accounting are the relay load's, and so is the
//! shape: one task per connection, no channel, blocks read into the receiver's buffer
//! and written from reused ones, every block already received taken before one write.
//!
//! Unlike the relay load's, a task keeps reading while its write goes on: the forwarder
//! forwards at once, with no delivery window, so what it writes to a connection (up to
//! the pair's window of `DATA`, and `ACKED`s, which no window bounds) can fill the
//! transport's buffers (a QUIC stream's 1.25 MB flow-control window), and a task that
//! stopped reading while it wrote could wait on the forwarder while the forwarder waits
//! on it (it did over QUIC with `--window 256`).
//!
//! ```text
//!  pair i:  sender task ── DATA ×W (pipelined) ──►  forwarder  ── DATA ──► recipient task
//!                       ◄── SENT (once forwarded) ──            ◄── ACK ──  (ACKED back)
//! ```

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use passage_transport::{Block, BlockStream, ConnectOptions, TransportError, connect_address};
use passage_wire::RelayAddress;
use tokio::sync::watch;

use crate::forwarder::{Outbox, Tag, block, parse};
use crate::load::{
    Flow, PairTasks, READ_BATCH, RecipientLog, Shared, Stamp, now_or_never, stopped,
};

/// How long a task waits, once done, for the end of its connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(6);

/// What every pair of a run shares.
#[derive(Debug, Clone)]
pub struct ForwardPairPlan {
    /// The forwarder.
    pub address: RelayAddress,
    /// How to connect.
    pub options: ConnectOptions,
    /// Messages in flight per pair.
    pub window: usize,
    /// Each pair's pace, if rate-limited.
    pub interval: Option<Duration>,
}

/// Connects pair `pair` (recipient first) and starts its tasks.
pub async fn set_up_pair(
    plan: Arc<ForwardPairPlan>,
    pair: u64,
    shared: Arc<Shared>,
) -> anyhow::Result<PairTasks> {
    let flow = Flow::new(pair, plan.window, plan.interval);
    let hello = |tag| {
        block(
            tag,
            &Stamp {
                pair,
                seq: 0,
                sent_ns: 0,
            },
        )
    };
    let mut recipient = connect_address(&plan.address, &plan.options)
        .await
        .context("connecting the recipient")?;
    recipient
        .send_block(&hello(Tag::HelloRecipient))
        .await
        .context("sending the recipient's hello")?;
    let mut sender = connect_address(&plan.address, &plan.options)
        .await
        .context("connecting the sender")?;
    sender
        .send_block(&hello(Tag::HelloSender))
        .await
        .context("sending the sender's hello")?;
    let recipient = tokio::spawn(receive(recipient, Arc::clone(&flow), Arc::clone(&shared)));
    let sender = tokio::spawn(send_loop(sender, flow, shared));
    Ok(PairTasks {
        pair,
        senders: vec![sender],
        recipient: Some(recipient),
    })
}

type NextStamp = Pin<Box<dyn Future<Output = Option<Stamp>> + Send>>;

/// The pair's next window slot (and pace), as a future the sender keeps across its
/// loop: taking a slot is not cancel-safe once paced.
fn next_stamp(flow: &Arc<Flow>, shared: &Arc<Shared>, stop: &watch::Receiver<bool>) -> NextStamp {
    let (flow, shared, mut stop) = (Arc::clone(flow), Arc::clone(shared), stop.clone());
    Box::pin(async move { flow.next(&shared, &mut stop).await })
}

/// The sender: takes window slots and writes one `DATA` per slot (every slot free at
/// once in one write), reading the `SENT`s as they come; once told to stop, waits for
/// the answers to what it wrote. Returns the sequence numbers answered.
async fn send_loop(stream: BlockStream, flow: Arc<Flow>, shared: Arc<Shared>) -> Vec<u64> {
    let (mut tx, mut rx) = stream.split();
    let mut ok = Vec::new();
    let mut stop = shared.stop_sending();
    if !shared.started(&mut stop).await {
        return ok;
    }
    let mut out = Outbox::default();
    // `DATA` written and not answered yet.
    let mut in_flight = 0u64;
    let mut next = next_stamp(&flow, &shared, &stop);
    let mut sending = true;
    let fatal = 'run: loop {
        if !sending && in_flight == 0 {
            break None;
        }
        tokio::select! {
            stamp = &mut next, if sending => {
                let mut stamp = stamp;
                if stamp.is_none() {
                    sending = false;
                }
                // Every slot free now goes out in the same write.
                while let Some(s) = stamp {
                    out.push_stamped(Tag::Data, &s);
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
            block = rx.recv_block_ref() => {
                let mut handled = sent(block, &mut ok, &mut in_flight, &shared);
                // And every block already received.
                let mut taken = 1;
                while handled.is_ok() && taken < READ_BATCH {
                    let Some(block) = now_or_never(rx.recv_block_ref()) else { break };
                    handled = sent(block, &mut ok, &mut in_flight, &shared);
                    taken += 1;
                }
                if let Err(e) = handled {
                    break 'run Some(e);
                }
            }
        }
        // Counted before the write: a `SENT` may come back while it goes on.
        in_flight += out.len() as u64;
        let mut flushing = pin!(out.flush(&mut tx));
        loop {
            // The write first: it usually ends at once, and then nothing is read.
            tokio::select! {
                biased;
                flushed = &mut flushing => match flushed {
                    Ok(()) => break,
                    Err(e) => break 'run Some(format!("the connection failed: {e}")),
                },
                block = rx.recv_block_ref() => {
                    if let Err(e) = sent(block, &mut ok, &mut in_flight, &shared) {
                        break 'run Some(e);
                    }
                }
            }
        }
    };
    if let Some(why) = fatal {
        shared.error(format!("a sender connection to the forwarder ended: {why}"));
        // What is in flight will get no answer.
        for _ in 0..in_flight {
            shared.send_errors.fetch_add(1, Ordering::Relaxed);
            shared.error(format!("forwarder send failed: {why}"));
            flow.release();
        }
    } else {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, tx.finish()).await;
    }
    ok
}

/// Takes one block to a sender: a `SENT` answers a `DATA`. `Err` once the connection is
/// unusable.
fn sent(
    block: Result<Option<&Block>, TransportError>,
    ok: &mut Vec<u64>,
    in_flight: &mut u64,
    shared: &Shared,
) -> Result<(), String> {
    match block {
        Ok(Some(block)) => {
            match parse(block) {
                Some((Tag::Sent, stamp)) => {
                    ok.push(stamp.seq);
                    *in_flight = in_flight.saturating_sub(1);
                    shared.sent_ok.fetch_add(1, Ordering::Relaxed);
                }
                _ => shared.error("unexpected block to a sender"),
            }
            Ok(())
        }
        Ok(None) => Err("the forwarder closed the connection".into()),
        Err(e) => Err(format!("the connection failed: {e}")),
    }
}

/// The recipient: records each `DATA` and answers it `ACK` (without waiting for the
/// `ACKED`), reading `ACKED`s as they come, until told to stop.
async fn receive(stream: BlockStream, flow: Arc<Flow>, shared: Arc<Shared>) -> RecipientLog {
    let (mut tx, mut rx) = stream.split();
    let mut stop = shared.stop_receiving();
    let mut log = RecipientLog::default();
    let mut out = Outbox::default();
    let mut more = Outbox::default();
    loop {
        let handled = tokio::select! {
            block = rx.recv_block_ref() => {
                let mut handled = delivered(block, &mut out, &mut log, &flow, &shared);
                // And every block already received.
                let mut taken = 1;
                while handled.is_ok() && taken < READ_BATCH {
                    let Some(block) = now_or_never(rx.recv_block_ref()) else { break };
                    handled = delivered(block, &mut out, &mut log, &flow, &shared);
                    taken += 1;
                }
                handled
            }
            () = stopped(&mut stop) => break,
        };
        if let Err(e) = handled {
            shared.error(format!(
                "a recipient connection to the forwarder ended: {e}"
            ));
            return log;
        }
        // Write the `ACK`s, reading meanwhile; `ACK`s for what arrives go next.
        while !out.is_empty() {
            let written = {
                let mut flushing = pin!(out.flush(&mut tx));
                loop {
                    tokio::select! {
                        biased;
                        flushed = &mut flushing => {
                            break flushed.map_err(|e| format!("the connection failed: {e}"));
                        }
                        block = rx.recv_block_ref() => {
                            if let Err(e) = delivered(block, &mut more, &mut log, &flow, &shared) {
                                break Err(e);
                            }
                        }
                    }
                }
            };
            if let Err(e) = written {
                shared.error(format!(
                    "a recipient connection to the forwarder ended: {e}"
                ));
                return log;
            }
            std::mem::swap(&mut out, &mut more);
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, tx.finish()).await;
    log
}

/// Takes one block to a recipient: a `DATA` is recorded and answered `ACK`; an `ACKED`
/// needs nothing. `Err` once the connection is unusable.
fn delivered(
    block: Result<Option<&Block>, TransportError>,
    out: &mut Outbox,
    log: &mut RecipientLog,
    flow: &Flow,
    shared: &Shared,
) -> Result<(), String> {
    match block {
        Ok(Some(block)) => {
            match parse(block) {
                Some((Tag::Data, stamp)) if stamp.pair == flow.pair => {
                    log.delivered(stamp, flow, shared);
                    out.push_stamped(Tag::Ack, &stamp);
                }
                Some((Tag::Acked, _)) => {}
                _ => shared.error("unexpected block to a recipient"),
            }
            Ok(())
        }
        Ok(None) => Err("the forwarder closed the connection".into()),
        Err(e) => Err(format!("the connection failed: {e}")),
    }
}
