//! [`BlockStream`]: the same block API over QUIC and over TLS/TCP.
//!
//! A stream carries a sequence of whole [`Block`]s in each direction. Over
//! TCP it is the TLS byte stream; over QUIC it is the one bidirectional
//! stream of the connection. Either way the bytes are exactly the blocks,
//! back to back (QUIC adds a one-byte preamble when the client opens the
//! stream, see [`crate::quic`]).

use std::io::IoSlice;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use crate::block::{self, BLOCK_LEN, Block};
use crate::error::TransportError;
use crate::read_ahead::ReadAhead;
use crate::rotation::KeyRotation;
use crate::tls::CHANNEL_BINDING_LEN;

/// How long [`BlockSender::finish`] waits, at most, for the peer to
/// acknowledge the last QUIC stream data before giving up. Bounded so that a
/// vanished peer cannot hold a closing task.
pub const QUIC_FINISH_LINGER: Duration = Duration::from_secs(3);

/// Which transport carries a [`BlockStream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// QUIC over UDP.
    Quic,
    /// TLS 1.3 over TCP (directly or through a SOCKS5 proxy).
    Tcp,
}

/// An established, authenticated connection that moves whole blocks.
///
/// Use [`send_block`](Self::send_block) and [`recv_block`](Self::recv_block)
/// directly, or [`split`](Self::split) it to send and receive from two tasks.
/// Close it with [`close`](Self::close) so the last blocks are delivered;
/// dropping it aborts the connection.
#[derive(Debug)]
pub struct BlockStream {
    sender: BlockSender,
    receiver: BlockReceiver,
    rotation: Option<KeyRotation>,
}

/// The sending half of a [`BlockStream`].
pub struct BlockSender {
    half: SendHalf,
    channel_binding: [u8; CHANNEL_BINDING_LEN],
}

/// The receiving half of a [`BlockStream`].
pub struct BlockReceiver {
    half: RecvHalf,
    /// Partial block read so far; kept across calls so that
    /// [`recv_block`](Self::recv_block) is cancel-safe. Reused for every block that
    /// [`recv_block_ref`](Self::recv_block_ref) lends out.
    buf: Block,
    filled: usize,
    /// `buf` holds a whole block lent out by `recv_block_ref`; the next call reuses it.
    lent: bool,
    /// TCP only: the most time allowed between two reads that bring bytes.
    tcp_idle_timeout: Option<Duration>,
    channel_binding: [u8; CHANNEL_BINDING_LEN],
}

/// TLS over TCP, with [`ReadAhead`] between rustls and the socket: one `recvfrom`
/// per burst of records instead of two per block (see [`crate::read_ahead`]).
type Tls = TlsStream<ReadAhead<TcpStream>>;

/// Blocks joined into one plaintext write over TCP (64 KiB: four full TLS records).
const TCP_WRITE_RUN_BLOCKS: usize = 16;

enum SendHalf {
    Tcp(WriteHalf<Tls>),
    Quic(QuicSend),
}

enum RecvHalf {
    Tcp(ReadHalf<Tls>),
    Quic(QuicRecv),
}

struct QuicSend {
    stream: quinn::SendStream,
    conn: quinn::Connection,
    /// The client's own endpoint, kept alive as long as the stream.
    _endpoint: Option<quinn::Endpoint>,
}

struct QuicRecv {
    stream: quinn::RecvStream,
    _conn: quinn::Connection,
    _endpoint: Option<quinn::Endpoint>,
}

impl BlockStream {
    /// Sends one block. Not cancel-safe: if the future is dropped half way,
    /// part of a block may have been written and the stream must be dropped.
    pub async fn send_block(&mut self, block: &Block) -> Result<(), TransportError> {
        self.sender.send_block(block).await
    }

    /// Sends several blocks in order with one flush at the end (fewer TLS records and
    /// system calls than one [`send_block`](Self::send_block) each).
    pub async fn send_blocks(&mut self, blocks: &[Block]) -> Result<(), TransportError> {
        self.sender.send_blocks(blocks).await
    }

    /// Receives the next block; `Ok(None)` when the peer closed cleanly at a
    /// block boundary. Cancel-safe: a partly received block is kept for the
    /// next call, so this can sit in a `tokio::select!`.
    pub async fn recv_block(&mut self) -> Result<Option<Block>, TransportError> {
        self.receiver.recv_block().await
    }

    /// Like [`recv_block`](Self::recv_block), but lends the block out of the
    /// receiver's own buffer, which the next call reuses: no allocation per block.
    pub async fn recv_block_ref(&mut self) -> Result<Option<&Block>, TransportError> {
        self.receiver.recv_block_ref().await
    }

    /// RFC 9266 `tls-exporter` channel binding of this connection: equal on
    /// both ends, different for every connection. Authenticators that cover
    /// it cannot be replayed on another connection.
    pub fn channel_binding(&self) -> [u8; CHANNEL_BINDING_LEN] {
        self.sender.channel_binding
    }

    /// Which transport carries this stream.
    pub fn transport(&self) -> TransportKind {
        self.sender.transport()
    }

    /// Client side: the relay presented a new key that the pinned one endorsed (a key
    /// rotation under way): the pin to keep from now on, and until when the old one
    /// still works. The connection itself is as safe as with the pinned key. `None`
    /// when the relay's key is the pinned one (and always on the relay's side).
    pub fn key_rotation(&self) -> Option<KeyRotation> {
        self.rotation
    }

    pub(crate) fn with_rotation(mut self, rotation: Option<KeyRotation>) -> Self {
        self.rotation = rotation;
        self
    }

    /// Splits into halves that can be used from different tasks.
    pub fn split(self) -> (BlockSender, BlockReceiver) {
        (self.sender, self.receiver)
    }

    /// Closes gracefully: ends the sending direction (the peer reads
    /// `Ok(None)` after the last block) and waits, bounded, for delivery.
    pub async fn close(self) -> Result<(), TransportError> {
        let Self {
            mut sender,
            receiver,
            ..
        } = self;
        let result = sender.finish().await;
        if let SendHalf::Quic(quic) = &sender.half {
            quic.conn.close(0u32.into(), b"");
        }
        drop(receiver);
        result
    }

    pub(crate) fn new_tcp(
        tls: Tls,
        channel_binding: [u8; CHANNEL_BINDING_LEN],
        tcp_idle_timeout: Option<Duration>,
    ) -> Self {
        let (read, write) = tokio::io::split(tls);
        Self {
            sender: BlockSender {
                half: SendHalf::Tcp(write),
                channel_binding,
            },
            receiver: BlockReceiver::new(RecvHalf::Tcp(read), channel_binding, tcp_idle_timeout),
            rotation: None,
        }
    }

    pub(crate) fn new_quic(
        conn: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        endpoint: Option<quinn::Endpoint>,
        channel_binding: [u8; CHANNEL_BINDING_LEN],
    ) -> Self {
        Self {
            sender: BlockSender {
                half: SendHalf::Quic(QuicSend {
                    stream: send,
                    conn: conn.clone(),
                    _endpoint: endpoint.clone(),
                }),
                channel_binding,
            },
            receiver: BlockReceiver::new(
                RecvHalf::Quic(QuicRecv {
                    stream: recv,
                    _conn: conn,
                    _endpoint: endpoint,
                }),
                channel_binding,
                None,
            ),
            rotation: None,
        }
    }
}

impl BlockSender {
    /// Sends one block. Not cancel-safe (see [`BlockStream::send_block`]).
    pub async fn send_block(&mut self, block: &Block) -> Result<(), TransportError> {
        self.send_blocks(std::slice::from_ref(block)).await
    }

    /// Sends several blocks in order with one flush at the end: over TCP the TLS layer
    /// packs them into as few records and writes as it can.
    pub async fn send_blocks(&mut self, blocks: &[Block]) -> Result<(), TransportError> {
        match &mut self.half {
            SendHalf::Tcp(w) => {
                // One vectored plaintext write per run of blocks: rustls then seals
                // full-size records (16 KiB) straight from the blocks and writes them
                // together, instead of a record and a system call per block (and
                // without first joining the blocks into one buffer).
                for run in blocks.chunks(TCP_WRITE_RUN_BLOCKS) {
                    let mut slices: Vec<IoSlice<'_>> = run
                        .iter()
                        .map(|block| IoSlice::new(block::as_bytes(block)))
                        .collect();
                    let mut rest = &mut slices[..];
                    while !rest.is_empty() {
                        let written = w.write_vectored(rest).await.map_err(tcp_error)?;
                        if written == 0 {
                            return Err(tcp_error(std::io::ErrorKind::WriteZero.into()));
                        }
                        IoSlice::advance_slices(&mut rest, written);
                    }
                }
                w.flush().await.map_err(tcp_error)
            }
            SendHalf::Quic(q) => {
                for block in blocks {
                    q.stream
                        .write_all(block::as_bytes(block))
                        .await
                        .map_err(quic_write_error)?;
                }
                Ok(())
            }
        }
    }

    /// Ends the sending direction: TLS close_notify and TCP FIN, or the QUIC
    /// stream's FIN. Over QUIC, waits up to [`QUIC_FINISH_LINGER`] for the
    /// peer to acknowledge everything sent.
    pub async fn finish(&mut self) -> Result<(), TransportError> {
        match &mut self.half {
            SendHalf::Tcp(w) => w.shutdown().await.map_err(tcp_error),
            SendHalf::Quic(q) => {
                q.stream.finish().map_err(|_| TransportError::Closed)?;
                match tokio::time::timeout(QUIC_FINISH_LINGER, q.stream.stopped()).await {
                    Ok(Ok(None)) => Ok(()),
                    // The peer stopped reading: what we sent may be lost.
                    Ok(Ok(Some(_))) => Err(TransportError::ClosedByPeer),
                    Ok(Err(_)) => Err(TransportError::ConnectionLost),
                    // No acknowledgement in time: the peer is probably gone.
                    Err(_) => Err(TransportError::ConnectionLost),
                }
            }
        }
    }

    /// See [`BlockStream::channel_binding`].
    pub fn channel_binding(&self) -> [u8; CHANNEL_BINDING_LEN] {
        self.channel_binding
    }

    /// Which transport carries this stream.
    pub fn transport(&self) -> TransportKind {
        match self.half {
            SendHalf::Tcp(_) => TransportKind::Tcp,
            SendHalf::Quic(_) => TransportKind::Quic,
        }
    }
}

impl BlockReceiver {
    fn new(
        half: RecvHalf,
        channel_binding: [u8; CHANNEL_BINDING_LEN],
        tcp_idle_timeout: Option<Duration>,
    ) -> Self {
        Self {
            half,
            buf: Block::zeroed(),
            filled: 0,
            lent: false,
            tcp_idle_timeout,
            channel_binding,
        }
    }

    /// Receives the next block; `Ok(None)` on a clean close at a block
    /// boundary. Cancel-safe (see [`BlockStream::recv_block`]).
    pub async fn recv_block(&mut self) -> Result<Option<Block>, TransportError> {
        if !self.fill().await? {
            return Ok(None);
        }
        self.filled = 0;
        Ok(Some(std::mem::replace(&mut self.buf, Block::zeroed())))
    }

    /// Receives the next block into the receiver's own buffer and lends it out; the
    /// next call (of either kind) reuses the buffer, so a block costs no allocation.
    /// `Ok(None)` on a clean close at a block boundary. Cancel-safe.
    pub async fn recv_block_ref(&mut self) -> Result<Option<&Block>, TransportError> {
        if !self.fill().await? {
            return Ok(None);
        }
        self.lent = true;
        Ok(Some(&self.buf))
    }

    /// Reads until `buf` holds a whole block: true, or false on a clean close at a
    /// block boundary.
    async fn fill(&mut self) -> Result<bool, TransportError> {
        if std::mem::take(&mut self.lent) {
            self.filled = 0;
        }
        while self.filled < BLOCK_LEN {
            let Some(rest) = self.buf.as_bytes_mut().get_mut(self.filled..) else {
                return Err(TransportError::Truncated);
            };
            let read = match &mut self.half {
                RecvHalf::Tcp(r) => read_tcp(r, rest, self.tcp_idle_timeout).await?,
                RecvHalf::Quic(q) => read_quic(&mut q.stream, rest).await?,
            };
            match read {
                Some(n) if n > 0 => self.filled = self.filled.saturating_add(n).min(BLOCK_LEN),
                // End of stream.
                _ if self.filled == 0 => return Ok(false),
                _ => return Err(TransportError::Truncated),
            }
        }
        Ok(true)
    }

    /// See [`BlockStream::channel_binding`].
    pub fn channel_binding(&self) -> [u8; CHANNEL_BINDING_LEN] {
        self.channel_binding
    }
}

/// One TCP read: `Some(n)` bytes, or `None` at end of stream.
async fn read_tcp(
    r: &mut ReadHalf<Tls>,
    buf: &mut [u8],
    idle: Option<Duration>,
) -> Result<Option<usize>, TransportError> {
    let n = match idle {
        Some(limit) => tokio::time::timeout(limit, r.read(buf))
            .await
            .map_err(|_| TransportError::IdleTimeout)?,
        None => r.read(buf).await,
    }
    .map_err(tcp_error)?;
    Ok((n > 0).then_some(n))
}

/// One QUIC read: `Some(n)` bytes, or `None` at the end of the stream (the
/// peer's FIN). Data and FIN already received are read before any
/// connection error is reported.
async fn read_quic(
    stream: &mut quinn::RecvStream,
    buf: &mut [u8],
) -> Result<Option<usize>, TransportError> {
    match stream.read(buf).await {
        Ok(read) => Ok(read),
        Err(quinn::ReadError::ConnectionLost(e)) => Err(conn_error(e)),
        Err(quinn::ReadError::ClosedStream) => Err(TransportError::Closed),
        Err(_) => Err(TransportError::ConnectionLost),
    }
}

fn quic_write_error(e: quinn::WriteError) -> TransportError {
    match e {
        quinn::WriteError::Stopped(_) => TransportError::ClosedByPeer,
        quinn::WriteError::ConnectionLost(e) => conn_error(e),
        quinn::WriteError::ClosedStream => TransportError::Closed,
        _ => TransportError::ConnectionLost,
    }
}

/// Maps a QUIC connection error on an established connection. A clean
/// close is the stream's FIN, seen before this; code 0 without it is what
/// quinn sends when the peer dropped its connection, like a TCP end without
/// close_notify.
fn conn_error(e: quinn::ConnectionError) -> TransportError {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) if c.error_code == 0u32.into() => {
            TransportError::ConnectionLost
        }
        quinn::ConnectionError::ApplicationClosed(_)
        | quinn::ConnectionError::ConnectionClosed(_) => TransportError::ClosedByPeer,
        quinn::ConnectionError::TimedOut => TransportError::IdleTimeout,
        quinn::ConnectionError::LocallyClosed => TransportError::Closed,
        _ => TransportError::ConnectionLost,
    }
}

/// Maps an I/O error on an established TLS/TCP connection. A TCP end
/// without TLS close_notify is a loss, not a clean close: it can be forged
/// by anyone on the path.
fn tcp_error(e: std::io::Error) -> TransportError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe => TransportError::ConnectionLost,
        _ => TransportError::Io(e),
    }
}

impl std::fmt::Debug for BlockSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockSender")
            .field("transport", &self.transport())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for BlockReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match self.half {
            RecvHalf::Tcp(_) => TransportKind::Tcp,
            RecvHalf::Quic(_) => TransportKind::Quic,
        };
        f.debug_struct("BlockReceiver")
            .field("transport", &transport)
            .field("buffered", &self.filled)
            .finish_non_exhaustive()
    }
}
