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
use passage_transport::{Block, BlockStream, RelayIdentity, ServerOptions, listen};
use passage_wire::RelayAddress;
use passage_wire::address::Host;
use tokio::sync::oneshot;

use crate::load::{STAMP_LEN, Stamp};
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
    let bytes = block.as_bytes_mut();
    bytes[0] = tag as u8;
    if let Some(out) = bytes.get_mut(STAMP_AT..STAMP_AT + STAMP_LEN) {
        stamp.write(out);
    }
    block
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

/// Moves one pair's blocks until both ends have closed.
async fn forward(sender: BlockStream, recipient: BlockStream) {
    let (mut s_tx, mut s_rx) = sender.split();
    let (mut r_tx, mut r_rx) = recipient.split();
    let (mut sender_open, mut recipient_open) = (true, true);
    while sender_open || recipient_open {
        tokio::select! {
            block = s_rx.recv_block(), if sender_open => match block {
                Ok(Some(block)) => {
                    let Some((Tag::Data, stamp)) = parse(&block) else { break };
                    if r_tx.send_block(&block).await.is_err() {
                        break;
                    }
                    if s_tx.send_block(&self::block(Tag::Sent, &stamp)).await.is_err() {
                        break;
                    }
                }
                _ => sender_open = false,
            },
            block = r_rx.recv_block(), if recipient_open => match block {
                Ok(Some(block)) => {
                    let Some((Tag::Ack, stamp)) = parse(&block) else { break };
                    if r_tx.send_block(&self::block(Tag::Acked, &stamp)).await.is_err() {
                        break;
                    }
                }
                _ => recipient_open = false,
            },
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let _ = s_tx.finish().await;
        let _ = r_tx.finish().await;
    })
    .await;
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
}
