//! The same load through the baseline [`forwarder`](crate::forwarder): each pair's
//! sender and recipient connect with passage-transport's `connect`, say which pair they
//! are, and exchange blocks shaped like the relay protocol's (see the forwarder's
//! picture). Window, pacing, stamps and accounting are the relay load's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use passage_transport::{Block, BlockStream, ConnectOptions, connect_address};
use passage_wire::RelayAddress;
use tokio::sync::{mpsc, watch};

use crate::forwarder::{Tag, block, parse};
use crate::load::{Flow, PairTasks, RecipientLog, Shared, Stamp, stopped};

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
    let sender = tokio::spawn(send(sender, flow, shared));
    Ok(PairTasks {
        pair,
        senders: vec![sender],
        recipient: Some(recipient),
    })
}

/// Sends `DATA` blocks in the window until told to stop, and reads `SENT` until every
/// block written is answered. Returns the sequence numbers answered.
async fn send(stream: BlockStream, flow: Arc<Flow>, shared: Arc<Shared>) -> Vec<u64> {
    let (mut tx, mut rx) = stream.split();
    let written = AtomicU64::new(0);
    let (done_tx, mut done) = watch::channel(false);
    let writing = async {
        let mut stop = shared.stop_sending();
        if shared.started(&mut stop).await {
            while let Some(stamp) = flow.next(&shared, &mut stop).await {
                if let Err(e) = tx.send_block(&block(Tag::Data, &stamp)).await {
                    shared.send_errors.fetch_add(1, Ordering::Relaxed);
                    shared.error(format!("forwarder send failed: {e}"));
                    flow.release();
                    break;
                }
                written.fetch_add(1, Ordering::Relaxed);
            }
        }
        done_tx.send_replace(true);
    };
    let reading = async {
        let mut ok = Vec::new();
        let mut stop = shared.stop_receiving();
        loop {
            if *done.borrow() && ok.len() as u64 >= written.load(Ordering::Relaxed) {
                break;
            }
            tokio::select! {
                block = rx.recv_block() => match block {
                    Ok(Some(block)) => match parse(&block) {
                        Some((Tag::Sent, stamp)) => {
                            ok.push(stamp.seq);
                            shared.sent_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => shared.error("unexpected block to a sender"),
                    },
                    Ok(None) | Err(_) => {
                        shared.error("a sender connection to the forwarder ended");
                        break;
                    }
                },
                _ = done.changed() => {}
                () = stopped(&mut stop) => break,
            }
        }
        ok
    };
    let ((), ok) = tokio::join!(writing, reading);
    ok
}

/// Reads `DATA` (recording it and answering `ACK`) and `ACKED` until told to stop.
async fn receive(stream: BlockStream, flow: Arc<Flow>, shared: Arc<Shared>) -> RecipientLog {
    let (mut tx, mut rx) = stream.split();
    // The reader never waits on a write, so it keeps reading while the writer is slow.
    let (acks, mut to_write) = mpsc::unbounded_channel::<Block>();
    let writing = async {
        while let Some(ack) = to_write.recv().await {
            if tx.send_block(&ack).await.is_err() {
                break;
            }
        }
    };
    let reading = async {
        let mut log = RecipientLog::default();
        let mut stop = shared.stop_receiving();
        loop {
            tokio::select! {
                block = rx.recv_block() => match block {
                    Ok(Some(block)) => match parse(&block) {
                        Some((Tag::Data, stamp)) if stamp.pair == flow.pair => {
                            log.delivered(stamp, &flow, &shared);
                            let _ = acks.send(self::block(Tag::Ack, &stamp));
                        }
                        Some((Tag::Acked, _)) => {}
                        _ => shared.error("unexpected block to a recipient"),
                    },
                    Ok(None) | Err(_) => {
                        shared.error("a recipient connection to the forwarder ended");
                        break;
                    }
                },
                () = stopped(&mut stop) => break,
            }
        }
        drop(acks);
        log
    };
    let ((), log) = tokio::join!(writing, reading);
    log
}
