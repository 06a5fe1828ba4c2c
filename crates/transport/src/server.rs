//! Relay side: [`listen`] on one port number for QUIC (UDP) and TLS (TCP).
//!
//! Each accepted connection's handshake runs in its own task, bounded by the
//! handshake timeout and by [`ServerOptions::max_pending_handshakes`];
//! finished streams queue for [`Listener::accept`]. Failed handshakes are
//! counted, never logged.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::client::bounded;
use crate::error::TransportError;
use crate::identity::RelayIdentity;
use crate::quic::{self, QuicTimers};
use crate::source_budget::{SourceBudget, SourceRate};
use crate::stream::BlockStream;
use crate::{tcp, tls};

/// How many times [`listen`] on port 0 retries when the port the system gave
/// the TCP socket is taken for UDP.
const BIND_ATTEMPTS: usize = 16;

/// TCP listen backlog: connections the kernel queues before we accept them.
const TCP_BACKLOG: i32 = 1024;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop
/// does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Listener settings. `Default` gives the values documented on each field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Longest time for a client's TLS handshake and stream setup. Default
    /// 30 s: a client on a 1 s round trip with 30 % loss each way may need
    /// several probe timeouts (about 1, 2, 4, 8 s) before its first flight and
    /// the relay's answer both get through. Half-open connections cannot pile
    /// up meanwhile: [`max_pending_handshakes`](Self::max_pending_handshakes)
    /// bounds them all and
    /// [`handshakes_per_source`](Self::handshakes_per_source) each source's.
    pub handshake_timeout: Duration,
    /// Handshakes in progress plus streams waiting for [`Listener::accept`];
    /// connections beyond it are refused at once. Bounds the memory and CPU
    /// a flood of half-open connections can take. Default 256.
    pub max_pending_handshakes: usize,
    /// QUIC: close when nothing at all (keep-alives included) has been
    /// heard for this long. Default 60 s.
    pub quic_idle_timeout: Duration,
    /// QUIC PING interval from the relay. Default none: clients send them.
    pub quic_keep_alive: Option<Duration>,
    /// TCP: fail `recv_block` when no byte arrives for this long. Clients
    /// on TCP must then send a block more often. Default none (dead peers
    /// are found by keep-alive probes).
    pub tcp_idle_timeout: Option<Duration>,
    /// TCP keep-alive probe interval. Default 60 s; `None` disables.
    pub tcp_keep_alive: Option<Duration>,
    /// Serve QUIC on the UDP port. Default true.
    pub serve_quic: bool,
    /// Serve TLS on the TCP port. Default true.
    pub serve_tcp: bool,
    /// Handshakes one source address (an IPv4 address, an IPv6 /64) may start: a
    /// connection over its budget is closed before any TLS work. Kept in memory only,
    /// as keyed hashes (see [`SourceBudget`]). QUIC handshakes whose address is not yet
    /// validated (which a spoofer can send) draw on a budget of their own; when that
    /// runs out, the client is sent a Retry and comes back validated, so spoofed
    /// packets cannot spend a real source's budget. Default none (no budget).
    pub handshakes_per_source: Option<SourceRate>,
    /// Whether [`handshakes_per_source`](Self::handshakes_per_source) applies to
    /// loopback peers too. Default false: behind a local Tor onion service or reverse
    /// proxy every client comes from loopback.
    pub limit_loopback_sources: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(30),
            max_pending_handshakes: 256,
            quic_idle_timeout: Duration::from_secs(60),
            quic_keep_alive: None,
            tcp_idle_timeout: None,
            tcp_keep_alive: Some(Duration::from_secs(60)),
            serve_quic: true,
            serve_tcp: true,
            handshakes_per_source: None,
            limit_loopback_sources: false,
        }
    }
}

/// The peer's address, for rate limiting only. Its `Debug` is redacted and
/// it has no `Display`: never log it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(SocketAddr);

impl PeerAddr {
    /// The peer's IP address.
    pub fn ip(&self) -> IpAddr {
        self.0.ip()
    }

    /// The peer's IP address and port.
    pub fn socket_addr(&self) -> SocketAddr {
        self.0
    }
}

impl std::fmt::Debug for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerAddr(..)")
    }
}

/// A connection that completed its handshake.
#[derive(Debug)]
#[non_exhaustive]
pub struct Accepted {
    /// The authenticated block stream.
    pub stream: BlockStream,
    /// Where it came from (see [`PeerAddr`]).
    pub peer: PeerAddr,
}

/// Accepts QUIC and TLS/TCP connections on one port number. Dropping it
/// stops accepting; established streams live on.
#[derive(Debug)]
pub struct Listener {
    accepted: mpsc::Receiver<Accepted>,
    local_addr: SocketAddr,
    endpoint: Option<quinn::Endpoint>,
    udp_buffers: Option<(usize, usize)>,
    failed: Arc<AtomicU64>,
    over_budget: Arc<AtomicU64>,
    _loops: JoinSet<()>,
}

/// Binds `bind` on TCP and UDP (the same port number; with port 0 the
/// system picks one free on both) and starts accepting.
pub async fn listen(
    bind: SocketAddr,
    identity: &RelayIdentity,
    options: ServerOptions,
) -> Result<Listener, TransportError> {
    let (tcp_listener, udp_socket, local_addr) = bind_sockets(bind, &options)?;
    let options = Arc::new(options);
    let permits = Arc::new(Semaphore::new(options.max_pending_handshakes.max(1)));
    let failed = Arc::new(AtomicU64::new(0));
    let over_budget = Arc::new(AtomicU64::new(0));
    let budget = options
        .handshakes_per_source
        .map(|rate| Arc::new(SourceBudget::new(rate, options.limit_loopback_sources)));
    let started = Instant::now();
    let (tx, accepted) = mpsc::channel(options.max_pending_handshakes.max(1));
    let mut loops = JoinSet::new();

    if let Some(listener) = tcp_listener {
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(identity)?));
        let listener = tokio::net::TcpListener::from_std(listener).map_err(TransportError::Bind)?;
        let ctx = Ctx {
            options: options.clone(),
            permits: permits.clone(),
            failed: failed.clone(),
            over_budget: over_budget.clone(),
            budget: budget.clone(),
            started,
            tx: tx.clone(),
        };
        loops.spawn(tcp_accept_loop(listener, acceptor, ctx));
    }
    let mut endpoint = None;
    let udp_buffers = udp_socket.as_ref().and_then(quic::udp_buffer_sizes);
    if let Some(socket) = udp_socket {
        let timers = QuicTimers {
            idle_timeout: options.quic_idle_timeout,
            keep_alive: options.quic_keep_alive,
        };
        let ep = quic::server_endpoint(socket, identity, timers, options.max_pending_handshakes)?;
        let ctx = Ctx {
            options,
            permits,
            failed: failed.clone(),
            over_budget: over_budget.clone(),
            budget,
            started,
            tx,
        };
        loops.spawn(quic_accept_loop(ep.clone(), ctx));
        endpoint = Some(ep);
    }
    Ok(Listener {
        accepted,
        local_addr,
        endpoint,
        udp_buffers,
        failed,
        over_budget,
        _loops: loops,
    })
}

impl Listener {
    /// The next connection that completed its handshake. `None` only if
    /// both accept loops ended (which they do not while the listener lives).
    pub async fn accept(&mut self) -> Option<Accepted> {
        self.accepted.recv().await
    }

    /// The bound address; its port is the same for TCP and UDP.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The receive and send buffer sizes of the QUIC socket, in bytes, as the
    /// kernel granted them (it caps the request of
    /// [`SERVER_UDP_SOCKET_BUFFER`](crate::SERVER_UDP_SOCKET_BUFFER) at
    /// `net.core.rmem_max` / `wmem_max`); `None` without QUIC.
    pub fn udp_buffer_sizes(&self) -> Option<(usize, usize)> {
        self.udp_buffers
    }

    /// How many handshakes failed or timed out so far (for metrics).
    pub fn failed_handshakes(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// How many connections were closed before their handshake because their source
    /// was over [`ServerOptions::handshakes_per_source`] (for metrics).
    pub fn over_budget_handshakes(&self) -> u64 {
        self.over_budget.load(Ordering::Relaxed)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Refuse new QUIC connections; existing ones keep the endpoint alive.
        if let Some(ep) = &self.endpoint {
            ep.set_server_config(None);
        }
    }
}

/// What every handshake task needs.
#[derive(Clone)]
struct Ctx {
    options: Arc<ServerOptions>,
    permits: Arc<Semaphore>,
    failed: Arc<AtomicU64>,
    over_budget: Arc<AtomicU64>,
    budget: Option<Arc<SourceBudget>>,
    started: Instant,
    tx: mpsc::Sender<Accepted>,
}

/// What the handshake budget says about one incoming connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Accept,
    /// QUIC only: ask the client to prove its address first.
    Retry,
    Refuse,
}

impl Ctx {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Spends one handshake of the source's budget. `validated`: the peer has shown
    /// it receives at its address (TCP always has; QUIC after a Retry or a token).
    fn admit(&self, ip: IpAddr, validated: bool) -> Admission {
        let Some(budget) = &self.budget else {
            return Admission::Accept;
        };
        let (Some(checked), Some(unchecked)) =
            (budget.key_in_class(ip, 0), budget.key_in_class(ip, 1))
        else {
            return Admission::Accept;
        };
        let now = self.now_ms();
        let admission = if validated {
            if budget.take_key(checked, now) {
                Admission::Accept
            } else {
                Admission::Refuse
            }
        } else if budget.take_key(unchecked, now) {
            Admission::Accept
        } else if budget.has_key(checked, now) {
            Admission::Retry
        } else {
            Admission::Refuse
        };
        if admission == Admission::Refuse {
            self.over_budget.fetch_add(1, Ordering::Relaxed);
        }
        admission
    }

    /// Runs one handshake in its own task and queues the result. The permit
    /// is held until the stream is queued (or dropped).
    fn spawn_handshake(
        &self,
        permit: OwnedSemaphorePermit,
        peer: SocketAddr,
        handshake: impl Future<Output = Result<BlockStream, TransportError>> + Send + 'static,
    ) {
        let ctx = self.clone();
        tokio::spawn(async move {
            match bounded(ctx.options.handshake_timeout, handshake).await {
                Ok(stream) => {
                    let accepted = Accepted {
                        stream,
                        peer: PeerAddr(peer),
                    };
                    // Fails only when the listener is gone: drop the stream.
                    let _ = ctx.tx.send(accepted).await;
                }
                Err(_) => {
                    ctx.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(permit);
        });
    }
}

async fn tcp_accept_loop(listener: tokio::net::TcpListener, acceptor: TlsAcceptor, ctx: Ctx) {
    while !ctx.tx.is_closed() {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        if ctx.admit(peer.ip(), true) != Admission::Accept {
            continue; // over its source's budget: dropping the stream closes it
        }
        let Ok(permit) = ctx.permits.clone().try_acquire_owned() else {
            continue; // over the limit: dropping the stream closes it
        };
        let handshake = tcp::server_handshake(
            stream,
            acceptor.clone(),
            ctx.options.tcp_keep_alive,
            ctx.options.tcp_idle_timeout,
        );
        ctx.spawn_handshake(permit, peer, handshake);
    }
}

async fn quic_accept_loop(endpoint: quinn::Endpoint, ctx: Ctx) {
    while let Some(incoming) = endpoint.accept().await {
        if ctx.tx.is_closed() {
            break;
        }
        let peer = incoming.remote_address();
        match ctx.admit(peer.ip(), incoming.remote_address_validated()) {
            Admission::Accept => {}
            Admission::Retry if incoming.may_retry() => {
                // Fails only if the endpoint cannot retry (then it drops the packet).
                let _ = incoming.retry();
                continue;
            }
            Admission::Retry | Admission::Refuse => {
                incoming.refuse();
                continue;
            }
        }
        let Ok(permit) = ctx.permits.clone().try_acquire_owned() else {
            incoming.refuse();
            continue;
        };
        ctx.spawn_handshake(permit, peer, quic::server_handshake(incoming));
    }
}

type BoundSockets = (
    Option<std::net::TcpListener>,
    Option<std::net::UdpSocket>,
    SocketAddr,
);

/// Binds TCP and UDP on the same port number.
fn bind_sockets(bind: SocketAddr, options: &ServerOptions) -> Result<BoundSockets, TransportError> {
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        let tcp = if options.serve_tcp {
            Some(bind_tcp(bind).map_err(TransportError::Bind)?)
        } else {
            None
        };
        let tcp_addr = match &tcp {
            Some(l) => Some(l.local_addr().map_err(TransportError::Bind)?),
            None => None,
        };
        if !options.serve_quic {
            let local = tcp_addr.unwrap_or(bind);
            return Ok((tcp, None, local));
        }
        let udp_addr = SocketAddr::new(bind.ip(), tcp_addr.map_or(bind.port(), |a| a.port()));
        match quic::udp_socket(udp_addr, quic::SERVER_UDP_SOCKET_BUFFER) {
            Ok(udp) => {
                let local = udp.local_addr().map_err(TransportError::Bind)?;
                return Ok((tcp, Some(udp), local));
            }
            // Port 0: the port the system chose for TCP is taken on UDP; try another.
            Err(e) if bind.port() == 0 && tcp.is_some() => last = Some(e),
            Err(e) => return Err(TransportError::Bind(e)),
        }
    }
    Err(TransportError::Bind(last.unwrap_or_else(|| {
        std::io::Error::from(std::io::ErrorKind::AddrInUse)
    })))
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
