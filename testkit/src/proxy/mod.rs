//! A userspace link-fault proxy on loopback, in front of a relay: what kernel netem
//! would do, for machines that do not have it.
//!
//! ```text
//!  client ──UDP──► 127.0.0.1:P ─ loss, delay, jitter, duplicates ─► relay UDP :R
//!         ──TCP──► 127.0.0.1:P ─ delay, bandwidth, cuts (RST)    ─► relay TCP :R
//!                        └─ dark switch: UDP dropped, TCP stalled, both ways
//! ```
//!
//! [`LinkProxy::start`] listens on one port for both transports (like the relay), so
//! a relay address with the proxy's port ([`LinkProxy::address`]) reaches the relay
//! through it over QUIC and over TLS. Every decision comes from seeded [`Dice`], and
//! [`LinkProxy::counters`] counts what crossed. The proxy runs on its own small tokio
//! runtime, so a plain `#[test]` and an async one use it alike; dropping it stops
//! every task at once.
//!
//! Bounds: only loopback targets; at most [`MAX_TCP_CONNECTIONS`] connections and
//! [`MAX_UDP_FLOWS`] flows at once, at most [`MAX_QUEUED_DATAGRAMS`] datagrams waiting
//! in a direction's delay line (more are dropped and counted), TCP chunks queued per
//! direction bounded by [`MAX_QUEUED_CHUNKS`] (the reader then waits), an idle UDP flow
//! forgotten after [`UDP_FLOW_IDLE`], and everything stopped after
//! [`LinkFaults::lifetime`].

mod counters;
mod faults;
mod tcp;
mod udp;

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Duration;

use passage_wire::{Host, RelayAddress};
use tokio::runtime::Runtime;
use tokio::sync::watch;

pub use counters::{DirectionCounters, LinkCounters};
pub use faults::{
    CutRange, DEFAULT_LIFETIME, DatagramFate, Dice, DirectionFaults, LinkFaults, Transports,
};

use counters::CounterCells;

/// TCP connections open through one proxy at once; more are refused (closed at once).
pub const MAX_TCP_CONNECTIONS: usize = 256;

/// UDP flows (client source addresses) one proxy keeps at once; datagrams of a new
/// flow beyond this are dropped.
pub const MAX_UDP_FLOWS: usize = 256;

/// Datagrams waiting in one direction's delay line; more are dropped (and counted).
/// At 1,500 bytes each this is 6 MB, far more than a 1 s delay holds at test rates.
pub const MAX_QUEUED_DATAGRAMS: usize = 4096;

/// TCP chunks (of at most [`TCP_CHUNK`] bytes) queued in one direction of one
/// connection; when full, the proxy stops reading that side (backpressure, as a slow
/// link gives).
pub const MAX_QUEUED_CHUNKS: usize = 256;

/// The most bytes read from a TCP socket at once.
pub const TCP_CHUNK: usize = 16 * 1024;

/// A UDP flow with no datagram either way for this long is forgotten; QUIC's idle
/// timeout is 60 s, so a live connection never comes near it.
pub const UDP_FLOW_IDLE: Duration = Duration::from_secs(300);

/// Attempts at finding a port free for both TCP and UDP.
const PORT_ATTEMPTS: usize = 32;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A socket or the runtime could not be made.
    #[error("the link proxy could not start: {0}")]
    Io(#[from] std::io::Error),
    /// A setting is out of range.
    #[error("bad link proxy setting: {0}")]
    Settings(String),
    /// The proxy forwards to loopback only.
    #[error("the link proxy forwards to loopback addresses only")]
    NotLoopback,
    /// No port was free for both transports.
    #[error("no loopback port was free for both TCP and UDP")]
    NoPort,
}

/// What the proxy's tasks share.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) faults: LinkFaults,
    pub(crate) target: SocketAddr,
    pub(crate) counters: CounterCells,
    dark: watch::Sender<bool>,
    stop: watch::Sender<bool>,
}

impl Link {
    pub(crate) fn is_dark(&self) -> bool {
        *self.dark.borrow()
    }

    /// Returns once the link is not dark (at once if it is not).
    pub(crate) async fn light(&self) {
        let mut dark = self.dark.subscribe();
        let _ = dark.wait_for(|dark| !*dark).await;
    }

    /// Returns once the proxy is stopping.
    pub(crate) async fn stopped(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|stop| *stop).await;
    }
}

/// A running proxy. See the module documentation.
#[derive(Debug)]
pub struct LinkProxy {
    port: NonZeroU16,
    link: Arc<Link>,
    runtime: Option<Runtime>,
}

impl LinkProxy {
    /// Starts a proxy on `127.0.0.1` in front of `target` (a loopback address whose
    /// UDP and TCP ports are the relay's).
    pub fn start(target: SocketAddr, faults: LinkFaults) -> Result<Self, ProxyError> {
        faults.check().map_err(ProxyError::Settings)?;
        if !target.ip().is_loopback() {
            return Err(ProxyError::NotLoopback);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("link-proxy")
            .enable_all()
            .build()?;
        let (port, tcp, udp) = {
            let _context = runtime.enter();
            bind_pair(faults.transports.tcp)?
        };
        let (dark, _) = watch::channel(false);
        let (stop, _) = watch::channel(false);
        let link = Arc::new(Link {
            faults,
            target,
            counters: CounterCells::default(),
            dark,
            stop,
        });
        runtime.spawn(udp::serve(udp, Arc::clone(&link)));
        runtime.spawn(tcp::serve(tcp, Arc::clone(&link)));
        let lifetime = Arc::clone(&link);
        runtime.spawn(async move {
            tokio::time::sleep(lifetime.faults.lifetime).await;
            lifetime.stop.send_replace(true);
        });
        Ok(Self {
            port,
            link,
            runtime: Some(runtime),
        })
    }

    /// Starts a proxy in front of the relay at `relay` (which must be on loopback).
    pub fn in_front_of(relay: &RelayAddress, faults: LinkFaults) -> Result<Self, ProxyError> {
        let ip = match relay.host() {
            Host::Ipv4(ip) => *ip,
            _ => return Err(ProxyError::NotLoopback),
        };
        Self::start(SocketAddr::from((ip, relay.port())), faults)
    }

    /// The port the proxy listens on (TCP and UDP, on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port.get()
    }

    /// `relay` with the proxy's host and port: clients given this address reach the
    /// relay through the proxy (its pin still authenticates the relay end to end).
    pub fn address(&self, relay: &RelayAddress) -> RelayAddress {
        RelayAddress::new(*relay.pin(), Host::Ipv4(Ipv4Addr::LOCALHOST), self.port)
    }

    /// What has crossed the link so far.
    pub fn counters(&self) -> LinkCounters {
        self.link.counters.snapshot()
    }

    /// Turns the link dark (every datagram dropped, every TCP byte held, both ways)
    /// or light again.
    pub fn set_dark(&self, dark: bool) {
        self.link.dark.send_replace(dark);
    }

    /// Whether the link is dark now.
    pub fn is_dark(&self) -> bool {
        self.link.is_dark()
    }

    /// Turns the link dark now and light again after `period`, without the caller
    /// waiting.
    pub fn go_dark_for(&self, period: Duration) {
        self.set_dark(true);
        if let Some(runtime) = &self.runtime {
            let link = Arc::clone(&self.link);
            runtime.spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(period) => {}
                    () = link.stopped() => {}
                }
                link.dark.send_replace(false);
            });
        }
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.link.stop.send_replace(true);
        if let Some(runtime) = self.runtime.take() {
            // Not `drop`: that blocks, which tokio forbids inside an async test.
            runtime.shutdown_background();
        }
    }
}

/// The proxy's TCP side: listening, or (TCP blocked) a bound socket that refuses.
pub(crate) enum TcpSide {
    Listening(tokio::net::TcpListener),
    Refusing(tokio::net::TcpSocket),
}

/// Binds TCP and UDP on one free loopback port (the runtime must be entered).
fn bind_pair(listen_tcp: bool) -> Result<(NonZeroU16, TcpSide, tokio::net::UdpSocket), ProxyError> {
    for _ in 0..PORT_ATTEMPTS {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let addr = socket.local_addr()?;
        let Some(port) = NonZeroU16::new(addr.port()) else {
            continue;
        };
        let Ok(udp) = std::net::UdpSocket::bind(addr) else {
            continue;
        };
        udp.set_nonblocking(true)?;
        let udp = tokio::net::UdpSocket::from_std(udp)?;
        let tcp = if listen_tcp {
            TcpSide::Listening(socket.listen(1024)?)
        } else {
            TcpSide::Refusing(socket)
        };
        return Ok((port, tcp, udp));
    }
    Err(ProxyError::NoPort)
}
