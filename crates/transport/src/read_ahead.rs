//! [`ReadAhead`]: one large socket read serves many small TLS reads.
//!
//! ```text
//!  BlockReceiver ── poll_read(4096) ──▶ tokio-rustls ── read_tls: ≤ 4096 B a call ──▶ ReadAhead ── ≤ 32 KiB a call ──▶ TcpStream
//!                                                                                     (lazy buffer, given back when drained)
//! ```
//!
//! Why: rustls asks its transport for at most 4096 bytes per `read_tls` call
//! (`READ_SIZE` in its deframer, not configurable in rustls 0.23 or tokio-rustls
//! 0.26). A wire block is one TLS record of about 4118 bytes, so a lone block
//! cost two `recvfrom` system calls (4096 bytes, then 22). With this layer, one
//! `recvfrom` takes whatever the kernel holds (up to [`READ_AHEAD_LEN`]) and
//! rustls' small reads are served from memory. Because that read usually returns
//! less than it asked for, tokio also knows the socket is drained and the next
//! poll waits for readiness without a system call. Measured on loopback at 11k
//! messages/s: the relay's `recvfrom` per message fell from about 3.7 to 1.7,
//! the load generator's from about 4.8 to 1.9; CPU per message did not change
//! measurably (the kernel time saved is a few percent, within the noise).
//!
//! Memory: one pointer per connection while idle. The buffer is taken only
//! when a read finds it empty and the socket reports readiness
//! ([`PollReadReady`]), and given back as soon as its last byte is handed out,
//! or when the socket has nothing to give after all (`Pending`, end of stream,
//! error). A connection holds [`READ_AHEAD_LEN`] bytes only while bytes it read
//! ahead wait for rustls to take them, e.g. while the application is not reading;
//! the kernel would otherwise hold those same bytes in the socket's receive
//! buffer. Given-back buffers are kept for the next burst on the same thread, a
//! few per thread whatever the number of connections (`passage_wire::spare`), and
//! freed beyond that.
//!
//! Writes, flushes and shutdown go straight through: rustls already gathers a
//! flight of records into one vectored write.

use std::cell::RefCell;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use passage_wire::spare;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Most bytes taken from the socket in one read, and the size of the buffer a
/// busy connection holds.
///
/// 32 KiB: room for a run of seven single-block records (4118 bytes each) or two
/// full-size TLS records (16 KiB of plaintext each, as
/// [`BlockSender::send_blocks`](crate::BlockSender::send_blocks) writes them),
/// so one system call takes a whole burst in the common case; larger buys little
/// (a busy socket is read again at once anyway) and costs more per busy
/// connection. It is also well under glibc's 128 KiB `mmap` threshold, so
/// taking and freeing the buffer is no system call of its own.
pub(crate) const READ_AHEAD_LEN: usize = 32 * 1024;

/// A socket that can tell, without reading, whether a read may find bytes.
///
/// Lets [`ReadAhead`] leave the buffer untaken when the socket has nothing: a
/// poll that ends `Pending` (most polls of a quiet connection, and one after
/// nearly every block) then costs no allocation.
pub(crate) trait PollReadReady {
    /// `Ready` when a read may find bytes (or the end, or an error); otherwise
    /// `Pending`, with the task woken when that changes.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl PollReadReady for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

/// An `AsyncRead + AsyncWrite` wrapper that reads ahead in large chunks and
/// holds no buffer while it has nothing buffered (see the [module](self) doc).
///
/// Reads are cancel-safe in the sense `AsyncRead` requires: a `Pending` poll
/// has taken no bytes, and bytes read ahead stay here for the next poll.
pub(crate) struct ReadAhead<S> {
    inner: S,
    /// Bytes read ahead and not yet handed out; `None` whenever none wait. Boxed
    /// so that an idle connection pays one pointer for this layer, not a `Vec`.
    waiting: Option<Box<Waiting>>,
}

/// Bytes read from the socket: `bytes[pos..]` still wait to be handed out, and
/// there is at least one.
struct Waiting {
    bytes: Vec<u8>,
    pos: usize,
}

/// Drained buffers kept per thread for the next burst of any connection, at most
/// (see `passage_wire::spare`): 128 KiB, whatever the number of connections.
const SPARE_BUFFERS_PER_THREAD: usize = 4;

thread_local! {
    /// Buffers given back by [`Waiting::give_back`] on this thread.
    #[allow(clippy::vec_box, reason = "handed out again as the boxes they came in")]
    static SPARE_BUFFERS: RefCell<Vec<Box<Waiting>>> = const { RefCell::new(Vec::new()) };
}

impl Waiting {
    /// An empty buffer of [`READ_AHEAD_LEN`] bytes: a spare one of this thread if there
    /// is one (a busy relay reads a burst per connection thousands of times a second,
    /// and 32 KiB is well above what the allocator caches per thread), else a new one.
    fn take() -> Box<Self> {
        spare::take(&SPARE_BUFFERS).unwrap_or_else(|| {
            Box::new(Self {
                bytes: Vec::with_capacity(READ_AHEAD_LEN),
                pos: 0,
            })
        })
    }

    /// Empties the buffer and keeps it for the next [`take`](Self::take) on this thread
    /// (or frees it, beyond the cap). A buffer that grew past its size is freed.
    fn give_back(mut self: Box<Self>) {
        if self.bytes.capacity() == READ_AHEAD_LEN {
            self.bytes.clear();
            self.pos = 0;
            spare::give(&SPARE_BUFFERS, self, SPARE_BUFFERS_PER_THREAD);
        }
    }
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`; allocates nothing.
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            waiting: None,
        }
    }

    /// How many bytes read ahead wait to be handed out.
    fn buffered(&self) -> usize {
        self.waiting
            .as_ref()
            .map_or(0, |w| w.bytes.len().saturating_sub(w.pos))
    }

    /// Bytes of buffer held for this connection right now (0 when nothing waits).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.waiting.as_ref().map_or(0, |w| w.bytes.capacity())
    }
}

impl<S: AsyncRead + PollReadReady + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let waiting = match &mut this.waiting {
            Some(waiting) => waiting,
            None => {
                // A caller that asks for at least as much as we would read ahead
                // gains nothing from a copy: read straight into its buffer.
                if out.remaining() >= READ_AHEAD_LEN {
                    return Pin::new(&mut this.inner).poll_read(cx, out);
                }
                // Nothing to read: wait without taking a buffer.
                std::task::ready!(this.inner.poll_read_ready(cx))?;
                // `read_buf` reads into the spare capacity without zeroing it first,
                // and leaves `bytes.len()` at the number of bytes read. End of
                // stream, an error, or nothing after all (readiness can be stale)
                // are passed on, and the buffer goes back on the way out.
                let mut buffer = Waiting::take();
                match pin!(this.inner.read_buf(&mut buffer.bytes)).poll(cx) {
                    Poll::Ready(Ok(n)) if n > 0 => this.waiting.insert(buffer),
                    other => {
                        buffer.give_back();
                        return other.map_ok(|_| ());
                    }
                }
            }
        };
        let rest = waiting.bytes.get(waiting.pos..).unwrap_or_default();
        let n = rest.len().min(out.remaining());
        out.put_slice(rest.get(..n).unwrap_or_default());
        waiting.pos = waiting.pos.saturating_add(n);
        if waiting.pos >= waiting.bytes.len() {
            // Drained: back to the idle state, which holds no buffer.
            if let Some(drained) = this.waiting.take() {
                drained.give_back();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S> std::fmt::Debug for ReadAhead<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("buffered", &self.buffered())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::task::Waker;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// What the scripted socket does on its next read.
    #[derive(Debug)]
    enum Step {
        /// These bytes are available; a read takes what fits, the rest stays.
        Data(Vec<u8>),
        /// Nothing yet, as readiness shows: `Pending` (after waking the task, so
        /// `await` goes on).
        Pending,
        /// Readiness said yes, but the read finds nothing: `Pending` from the read.
        Stale,
        /// A read fails with this kind.
        Fail(io::ErrorKind),
        /// End of stream, for this read and every later one.
        Eof,
    }

    /// A socket that plays a script of reads and records what is written to it.
    #[derive(Debug, Default)]
    struct Scripted {
        steps: RefCell<VecDeque<Step>>,
        /// Readiness checks, reads that reached the socket, and the largest
        /// buffer a read offered.
        ready_checks: Cell<usize>,
        reads: usize,
        largest_ask: usize,
        written: Vec<u8>,
        vectored_writes: usize,
        flushes: usize,
        shutdowns: usize,
    }

    impl Scripted {
        fn new(steps: impl IntoIterator<Item = Step>) -> Self {
            Self {
                steps: RefCell::new(steps.into_iter().collect()),
                ..Self::default()
            }
        }
    }

    impl AsyncRead for Scripted {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            this.reads += 1;
            this.largest_ask = this.largest_ask.max(out.remaining());
            let steps = this.steps.get_mut();
            match steps.pop_front() {
                Some(Step::Data(mut bytes)) => {
                    let n = bytes.len().min(out.remaining());
                    out.put_slice(&bytes[..n]);
                    let rest = bytes.split_off(n);
                    if !rest.is_empty() {
                        steps.push_front(Step::Data(rest));
                    }
                    Poll::Ready(Ok(()))
                }
                Some(Step::Pending | Step::Stale) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Some(Step::Fail(kind)) => Poll::Ready(Err(kind.into())),
                Some(Step::Eof) | None => {
                    steps.push_front(Step::Eof);
                    Poll::Ready(Ok(()))
                }
            }
        }
    }

    impl PollReadReady for Scripted {
        fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.ready_checks.set(self.ready_checks.get() + 1);
            let mut steps = self.steps.borrow_mut();
            if let Some(Step::Pending) = steps.front() {
                steps.pop_front();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Scripted {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.vectored_writes += 1;
            let mut n = 0;
            for buf in bufs {
                this.written.extend_from_slice(buf);
                n += buf.len();
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shutdowns += 1;
            Poll::Ready(Ok(()))
        }
    }

    /// `len` bytes that differ from their neighbours, so misordering shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
            .collect()
    }

    /// One poll with a waker that does nothing, as the relay's `ready_now` does:
    /// `Some(bytes read)` if ready, `None` if pending.
    fn poll_once(r: &mut ReadAhead<Scripted>, buf: &mut [u8]) -> Option<io::Result<usize>> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = ReadBuf::new(buf);
        match Pin::new(r).poll_read(&mut cx, &mut out) {
            Poll::Ready(Ok(())) => Some(Ok(out.filled().len())),
            Poll::Ready(Err(e)) => Some(Err(e)),
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn bytes_arrive_whole_and_in_order_across_odd_reads() {
        let data = pattern(300_000);
        // The socket offers chunks of sizes on both sides of the buffer and of a
        // record, with nothing-yet in between.
        let chunk_sizes = [
            1,
            7,
            4118,
            40_000,
            READ_AHEAD_LEN,
            READ_AHEAD_LEN + 1,
            22,
            65_536,
        ];
        let mut steps = Vec::new();
        let mut at = 0;
        for size in chunk_sizes.iter().cycle() {
            let end = (at + size).min(data.len());
            steps.push(Step::Data(data[at..end].to_vec()));
            steps.push(Step::Pending);
            at = end;
            if at == data.len() {
                break;
            }
        }
        steps.push(Step::Eof);
        let mut r = ReadAhead::new(Scripted::new(steps));

        // The reader asks for sizes below, at and above the buffer (the last go
        // straight to the socket).
        let ask_sizes = [4096, 1, 5, 4095, 3, 33_000, 100_000, 17, READ_AHEAD_LEN - 1];
        let mut got = Vec::new();
        for ask in ask_sizes.iter().cycle() {
            let mut buf = vec![0u8; *ask];
            let n = r.read(&mut buf).await.unwrap();
            assert!(r.capacity() <= READ_AHEAD_LEN);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes reordered or altered");
        assert_eq!(r.capacity(), 0, "buffer held after the end of stream");
    }

    #[tokio::test]
    async fn one_socket_read_serves_many_small_reads_and_the_buffer_is_freed_when_drained() {
        // Three records' worth of bytes wait in the socket.
        let data = pattern(3 * 4118);
        let mut r = ReadAhead::new(Scripted::new([Step::Data(data.clone()), Step::Pending]));
        assert_eq!(r.capacity(), 0, "allocated before the first read");

        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < data.len() {
            let n = r.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            if got.len() < data.len() {
                assert_eq!(r.capacity(), READ_AHEAD_LEN, "busy: one buffer");
            }
        }
        assert_eq!(got, data);
        assert_eq!(r.inner.reads, 1, "one socket read for four small ones");
        assert_eq!(r.inner.largest_ask, READ_AHEAD_LEN);
        assert_eq!(r.capacity(), 0, "drained buffer still held");
    }

    /// A drained buffer serves the next burst on this thread, of any connection, and
    /// holds only that burst's bytes.
    #[tokio::test]
    async fn a_given_back_buffer_serves_the_next_burst_with_only_its_bytes() {
        let long = pattern(20_000);
        let short: Vec<u8> = pattern(9_000).iter().map(|b| b ^ 0xFF).collect();
        let mut first = ReadAhead::new(Scripted::new([Step::Data(long.clone()), Step::Eof]));
        let mut got = Vec::new();
        first.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, long);
        let given_back = SPARE_BUFFERS.with(|spare| {
            let spare = spare.borrow();
            assert_eq!(spare.len(), 1, "the drained buffer is kept");
            spare[0].bytes.as_ptr()
        });

        let mut second = ReadAhead::new(Scripted::new([Step::Data(short.clone()), Step::Eof]));
        let mut buf = [0u8; 100];
        let n = second.read(&mut buf).await.unwrap();
        let in_use = second.waiting.as_ref().map(|w| w.bytes.as_ptr());
        assert_eq!(in_use, Some(given_back), "the spare buffer is reused");
        let mut got = buf[..n].to_vec();
        second.read_to_end(&mut got).await.unwrap();
        assert!(
            got == short,
            "bytes of the earlier burst leaked into this one"
        );
    }

    #[test]
    fn pending_takes_nothing_and_holds_nothing() {
        let mut r = ReadAhead::new(Scripted::new([
            Step::Pending,
            Step::Stale,
            Step::Data(b"abcdef".to_vec()),
            Step::Pending,
        ]));
        let mut buf = [0u8; 4];
        // Not ready: the socket is not read and no buffer is taken.
        assert!(poll_once(&mut r, &mut buf).is_none());
        assert_eq!((r.inner.ready_checks.get(), r.inner.reads), (1, 0));
        assert_eq!(r.capacity(), 0, "buffer kept while waiting");
        // Ready, but the read finds nothing: the buffer goes back at once.
        assert!(poll_once(&mut r, &mut buf).is_none());
        assert_eq!((r.inner.ready_checks.get(), r.inner.reads), (2, 1));
        assert_eq!(
            r.capacity(),
            0,
            "buffer kept after a read that found nothing"
        );

        assert_eq!(poll_once(&mut r, &mut buf).unwrap().unwrap(), 4);
        assert_eq!(&buf, b"abcd");
        // The rest is served from memory even though the socket has nothing now,
        // and a poll that would wait loses none of it.
        assert_eq!(poll_once(&mut r, &mut buf).unwrap().unwrap(), 2);
        assert_eq!(&buf[..2], b"ef");
        assert_eq!(r.capacity(), 0);
        assert!(poll_once(&mut r, &mut buf).is_none());
        assert_eq!((r.inner.ready_checks.get(), r.inner.reads), (4, 2));
    }

    #[test]
    fn bytes_read_ahead_come_before_the_end_of_stream() {
        let mut r = ReadAhead::new(Scripted::new([Step::Data(pattern(10)), Step::Eof]));
        let mut buf = [0u8; 4];
        let mut got = Vec::new();
        for expected in [4, 4, 2] {
            assert_eq!(poll_once(&mut r, &mut buf).unwrap().unwrap(), expected);
            got.extend_from_slice(&buf[..expected]);
        }
        assert_eq!(got, pattern(10));
        for _ in 0..2 {
            assert_eq!(
                poll_once(&mut r, &mut buf).unwrap().unwrap(),
                0,
                "end of stream"
            );
            assert_eq!(r.capacity(), 0);
        }
    }

    #[test]
    fn errors_pass_through_after_the_bytes_before_them() {
        let mut r = ReadAhead::new(Scripted::new([
            Step::Data(b"xyz".to_vec()),
            Step::Fail(io::ErrorKind::ConnectionReset),
            Step::Data(b"after".to_vec()),
        ]));
        let mut buf = [0u8; 2];
        assert_eq!(poll_once(&mut r, &mut buf).unwrap().unwrap(), 2);
        assert_eq!(poll_once(&mut r, &mut buf).unwrap().unwrap(), 1);
        assert_eq!(buf[0], b'z');
        let err = poll_once(&mut r, &mut buf).unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(r.capacity(), 0, "buffer kept after an error");
        // Whatever the socket does next is passed on unchanged.
        assert_eq!(poll_once(&mut r, &mut buf).unwrap().unwrap(), 2);
        assert_eq!(&buf, b"af");
    }

    #[test]
    fn reads_at_least_as_large_as_the_buffer_go_straight_to_the_socket() {
        let data = pattern(READ_AHEAD_LEN + 100);
        let mut r = ReadAhead::new(Scripted::new([Step::Data(data.clone())]));
        let mut big = vec![0u8; READ_AHEAD_LEN];
        assert_eq!(
            poll_once(&mut r, &mut big).unwrap().unwrap(),
            READ_AHEAD_LEN
        );
        assert_eq!(r.capacity(), 0, "a direct read needs no buffer");
        let mut small = [0u8; 10];
        assert_eq!(poll_once(&mut r, &mut small).unwrap().unwrap(), 10);
        assert_eq!(r.capacity(), READ_AHEAD_LEN, "90 bytes still wait");
        // Now bytes wait: even a large read is served from them first, in order.
        assert_eq!(poll_once(&mut r, &mut big).unwrap().unwrap(), 90);
        assert_eq!(
            [&big[..READ_AHEAD_LEN], &small[..], &big[..90]]
                .concat()
                .len(),
            data.len()
        );
        assert_eq!(&big[..90], &data[READ_AHEAD_LEN + 10..]);
        assert_eq!(r.capacity(), 0);
    }

    #[test]
    fn an_idle_connection_pays_one_pointer() {
        assert_eq!(
            std::mem::size_of::<ReadAhead<tokio::net::TcpStream>>(),
            std::mem::size_of::<tokio::net::TcpStream>() + std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn an_empty_read_touches_nothing() {
        let mut r = ReadAhead::new(Scripted::new([Step::Data(b"a".to_vec())]));
        assert_eq!(poll_once(&mut r, &mut []).unwrap().unwrap(), 0);
        assert_eq!(r.inner.reads, 0);
        assert_eq!(r.capacity(), 0);
    }

    #[tokio::test]
    async fn writes_flush_and_shutdown_pass_straight_through() {
        let mut r = ReadAhead::new(Scripted::new([]));
        assert!(r.is_write_vectored());
        r.write_all(b"one ").await.unwrap();
        let bufs = [io::IoSlice::new(b"two "), io::IoSlice::new(b"three")];
        assert_eq!(r.write_vectored(&bufs).await.unwrap(), 9);
        r.flush().await.unwrap();
        r.shutdown().await.unwrap();
        assert_eq!(r.inner.written, b"one two three");
        assert_eq!(r.inner.vectored_writes, 1);
        assert_eq!(r.inner.flushes, 1);
        assert_eq!(r.inner.shutdowns, 1);
        assert_eq!(r.inner.reads, 0);
        assert_eq!(r.capacity(), 0);
    }

    /// Over a real socket pair: a sender writes in sizes unrelated to the
    /// reader's, and the reader sees the same byte stream.
    #[tokio::test]
    async fn a_real_tcp_stream_comes_through_unchanged() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data = pattern(1_000_000);
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            for chunk in sent.chunks(4118 * 3 + 5) {
                tcp.write_all(chunk).await.unwrap();
            }
            tcp.shutdown().await.unwrap();
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let mut r = ReadAhead::new(tcp);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        writer.await.unwrap();
        assert!(got == data, "stream altered");
        assert_eq!(r.capacity(), 0);
    }
}
