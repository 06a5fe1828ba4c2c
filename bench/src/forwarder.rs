//! The baseline: a plain forwarder over the same transport (passage-transport's
//! `listen`, TLS 1.3 over TCP or QUIC, 4096-byte blocks) with no storage, no queue and
//! no protocol beyond a one-byte tag.
//!
//! ```text
//!  sender ── HELLO(pair) ─┐                            ┌─ HELLO(pair) ── recipient
//!                         └─► pair by id ─► one task ◄─┘
//!  sender ── DATA ─────────► forward ───── DATA ─────────────────────► recipient
//!  sender ◄─ SENT ─────────  (after forwarding)
//!                            ACKED ───────────────────────────────────► recipient
//!                            ◄──────────────────────────────── ACK ── recipient
//! ```
//!
//! Per message it reads two blocks and writes three, as the relay does (`SEND` in, `OK`
//! and `MSG` out, `ACK` in, `OK` out), so the ratio compares the relay's queue logic and
//! storage with moving the same blocks through the same TLS.
//!
//! It runs as its own process (`passage-relay-bench forwarder`), so its CPU time is
//! measured from `/proc` like the relay's, and exits when its standard input closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use passage_transport::{
    Block, BlockSender, BlockStream, RelayIdentity, ServerOptions, TransportError, listen,
};
use passage_wire::RelayAddress;
use passage_wire::address::Host;
use tokio::sync::oneshot;

use crate::load::{READ_BATCH, STAMP_LEN, Stamp, now_or_never};
use crate::server::FORWARDER_ADDRESS_PREFIX;

/// How long a new connection may take to say which pair it belongs to.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the stamp starts in a block (after the tag).
const STAMP_AT: usize = 8;

/// What a block is, in its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// First block of a sender connection; the stamp's `pair` names the pair.
    HelloSender = 1,
    /// First block of a recipient connection.
    HelloRecipient = 2,
    /// A message, sender → forwarder → recipient.
    Data = 3,
    /// Forwarder → sender: the message was forwarded (the relay's `OK` to `SEND`).
    Sent = 4,
    /// Recipient → forwarder: the message arrived (the relay's `ACK`).
    Ack = 5,
    /// Forwarder → recipient: the `ACK` was taken (the relay's `OK` to `ACK`).
    Acked = 6,
}

impl Tag {
    fn of(byte: u8) -> Option<Self> {
        [
            Self::HelloSender,
            Self::HelloRecipient,
            Self::Data,
            Self::Sent,
            Self::Ack,
            Self::Acked,
        ]
        .into_iter()
        .find(|tag| *tag as u8 == byte)
    }
}

/// A block with `tag` and `stamp`.
pub fn block(tag: Tag, stamp: &Stamp) -> Block {
    let mut block = Block::zeroed();
    write(&mut block, tag, stamp);
    block
}

/// Writes `tag` and `stamp` into `block` (the rest of it is left as it is).
pub fn write(block: &mut Block, tag: Tag, stamp: &Stamp) {
    let bytes = block.as_bytes_mut();
    bytes[0] = tag as u8;
    if let Some(out) = bytes.get_mut(STAMP_AT..STAMP_AT + STAMP_LEN) {
        stamp.write(out);
    }
}

/// The tag and stamp of a block, if it is a well-formed one.
pub fn parse(block: &Block) -> Option<(Tag, Stamp)> {
    let bytes = block.as_bytes();
    let tag = Tag::of(*bytes.first()?)?;
    let stamp = Stamp::read(bytes.get(STAMP_AT..)?)?;
    Some((tag, stamp))
}

/// A connection waiting for the other end of its pair.
struct Waiting {
    role: Tag,
    stream: BlockStream,
}

type Registry = Arc<Mutex<HashMap<u64, Waiting>>>;

/// `passage-relay-bench forwarder`: listens on `listen` (TCP and UDP) until standard
/// input closes, printing `forwarder address: passage://<pin>@<ip>:<port>` first.
pub fn run(listen_on: SocketAddr) -> anyhow::Result<()> {
    // The same runtime as the relay's: multi-threaded, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(listen_on))
}

async fn serve(listen_on: SocketAddr) -> anyhow::Result<()> {
    let identity = RelayIdentity::generate().context("generating a TLS identity")?;
    let mut listener = listen(listen_on, &identity, ServerOptions::default())
        .await
        .with_context(|| format!("listening on {listen_on}"))?;
    let bound = listener.local_addr();
    let host = match bound.ip() {
        std::net::IpAddr::V4(ip) => Host::Ipv4(ip),
        std::net::IpAddr::V6(ip) => Host::Ipv6(ip),
    };
    let port = NonZeroU16::new(bound.port()).ok_or_else(|| anyhow!("bound to port 0"))?;
    let address = RelayAddress::new(identity.pin(), host, port);
    println!("{FORWARDER_ADDRESS_PREFIX}{address}");

    let (closed_tx, mut closed) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            // Returns at end of input: the bench is gone or done with us.
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = closed_tx.send(());
        })
        .context("starting the stdin watcher")?;

    let registry: Registry = Arc::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Some(accepted) = accepted else { break };
                tokio::spawn(handle(accepted.stream, Arc::clone(&registry)));
            }
            _ = &mut closed => break,
        }
    }
    Ok(())
}

/// Reads the hello, then waits for the pair's other end or forwards between them.
async fn handle(mut stream: BlockStream, registry: Registry) {
    let Ok(Ok(Some(hello))) = tokio::time::timeout(HELLO_TIMEOUT, stream.recv_block()).await else {
        return;
    };
    let Some((role @ (Tag::HelloSender | Tag::HelloRecipient), stamp)) = parse(&hello) else {
        return;
    };
    let other = {
        let mut waiting = registry.lock().unwrap_or_else(PoisonError::into_inner);
        match waiting.remove(&stamp.pair) {
            Some(other) if other.role != role => Some(other.stream),
            // A second connection in the same role: keep the first, drop this one.
            Some(same) => {
                waiting.insert(stamp.pair, same);
                None
            }
            None => {
                waiting.insert(stamp.pair, Waiting { role, stream });
                return;
            }
        }
    };
    let Some(other) = other else { return };
    let (sender, recipient) = if role == Tag::HelloSender {
        (stream, other)
    } else {
        (other, stream)
    };
    forward(sender, recipient).await;
}

/// Moves one pair's blocks until both ends have closed. Each round waits for a block
/// from either end, then takes every block already received from both (up to
/// [`READ_BATCH`], without waiting), then writes what they call for: one write to the
/// recipient (`DATA`, `ACKED`), then one to the sender (`SENT`, once its `DATA` went).
/// Blocks are read into the receivers' buffers and written from reused ones.
///
/// It writes inline, without reading meanwhile, as the relay does. Unlike the relay it
/// has no delivery window: what it writes to a recipient (`DATA` and `ACKED`) is not
/// bounded by the socket buffers, so the load's tasks keep reading while they write
/// (see [`forward_load`](crate::forward_load)), and so the writes here always end.
async fn forward(sender: BlockStream, recipient: BlockStream) {
    let (mut s_tx, mut s_rx) = sender.split();
    let (mut r_tx, mut r_rx) = recipient.split();
    let mut to_sender = Outbox::default();
    let mut to_recipient = Outbox::default();
    let (mut sender_open, mut recipient_open) = (true, true);
    while sender_open || recipient_open {
        let mut well_formed = tokio::select! {
            block = s_rx.recv_block_ref(), if sender_open => match block {
                Ok(Some(block)) => from_sender(block, &mut to_recipient, &mut to_sender),
                _ => {
                    sender_open = false;
                    true
                }
            },
            block = r_rx.recv_block_ref(), if recipient_open => match block {
                Ok(Some(block)) => from_recipient(block, &mut to_recipient),
                _ => {
                    recipient_open = false;
                    true
                }
            },
        };
        let mut taken = 1;
        while well_formed && taken < READ_BATCH {
            let before = taken;
            if sender_open {
                match now_or_never(s_rx.recv_block_ref()) {
                    Some(Ok(Some(block))) => {
                        well_formed = from_sender(block, &mut to_recipient, &mut to_sender);
                        taken += 1;
                    }
                    Some(_) => sender_open = false,
                    None => {}
                }
            }
            if well_formed && recipient_open {
                match now_or_never(r_rx.recv_block_ref()) {
                    Some(Ok(Some(block))) => {
                        well_formed = from_recipient(block, &mut to_recipient);
                        taken += 1;
                    }
                    Some(_) => recipient_open = false,
                    None => {}
                }
            }
            if taken == before {
                break;
            }
        }
        if !well_formed
            || to_recipient.flush(&mut r_tx).await.is_err()
            || to_sender.flush(&mut s_tx).await.is_err()
        {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let _ = s_tx.finish().await;
        let _ = r_tx.finish().await;
    })
    .await;
}

/// A block from the sender: `DATA` is forwarded and answered `SENT`. False if it is
/// anything else.
fn from_sender(block: &Block, to_recipient: &mut Outbox, to_sender: &mut Outbox) -> bool {
    let Some((Tag::Data, stamp)) = parse(block) else {
        return false;
    };
    *to_recipient.push().as_bytes_mut() = *block.as_bytes();
    to_sender.push_stamped(Tag::Sent, &stamp);
    true
}

/// A block from the recipient: `ACK` is answered `ACKED`. False if it is anything else.
fn from_recipient(block: &Block, to_recipient: &mut Outbox) -> bool {
    let Some((Tag::Ack, stamp)) = parse(block) else {
        return false;
    };
    to_recipient.push_stamped(Tag::Acked, &stamp);
    true
}

/// Blocks to write in one go, kept from one write to the next: once it has held as
/// many, a block costs no allocation.
#[derive(Debug, Default)]
pub struct Outbox {
    blocks: Vec<Block>,
    len: usize,
}

impl Outbox {
    /// A block to fill, appended to those the next [`flush`](Self::flush) writes. It
    /// holds what a previous write left in it.
    pub fn push(&mut self) -> &mut Block {
        if self.len == self.blocks.len() {
            self.blocks.push(Block::zeroed());
        }
        self.len += 1;
        &mut self.blocks[self.len - 1]
    }

    /// Appends a block with `tag` and `stamp`.
    pub fn push_stamped(&mut self, tag: Tag, stamp: &Stamp) {
        write(self.push(), tag, stamp);
    }

    /// Blocks appended since the last flush.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was appended since the last flush.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the blocks appended since the last flush, in one write; they are gone
    /// from the outbox either way.
    pub async fn flush(&mut self, tx: &mut BlockSender) -> Result<(), TransportError> {
        let blocks = self.take();
        if blocks.is_empty() {
            return Ok(());
        }
        tx.send_blocks(blocks).await
    }

    /// The blocks appended since the last flush; the next ones reuse them.
    fn take(&mut self) -> &[Block] {
        let len = std::mem::take(&mut self.len);
        self.blocks.get(..len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip() {
        let stamp = Stamp {
            pair: 3,
            seq: 5,
            sent_ns: 8,
        };
        for tag in [Tag::HelloSender, Tag::Data, Tag::Acked] {
            assert_eq!(parse(&block(tag, &stamp)), Some((tag, stamp)));
        }
        assert_eq!(parse(&Block::zeroed()), None);
    }

    #[test]
    fn outbox_reuses_its_blocks() {
        let stamp = |seq| Stamp {
            pair: 1,
            seq,
            sent_ns: 2,
        };
        let mut out = Outbox::default();
        out.push_stamped(Tag::Data, &stamp(0));
        out.push_stamped(Tag::Data, &stamp(1));
        assert_eq!(out.len(), 2);
        let taken: Vec<_> = out.take().iter().map(parse).collect();
        assert_eq!(
            taken,
            [Some((Tag::Data, stamp(0))), Some((Tag::Data, stamp(1)))]
        );
        assert!(out.is_empty());
        out.push_stamped(Tag::Ack, &stamp(2));
        let taken: Vec<_> = out.take().iter().map(parse).collect();
        assert_eq!(taken, [Some((Tag::Ack, stamp(2)))]);
        assert_eq!(out.blocks.len(), 2, "no new block");
        assert!(out.take().is_empty());
    }
}
