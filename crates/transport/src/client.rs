//! Client side: [`connect`] to a relay by host, port and pin.
//!
//! In [`TransportMode::Auto`] QUIC starts first; if it has not finished
//! within [`ConnectOptions::quic_head_start`], TLS over TCP starts too and
//! the first to finish wins (the other attempt is dropped). A QUIC attempt
//! that fails outright hands over to TCP at once. A pin mismatch on either
//! transport ends the attempt: it is an attack or a wrong address, not a
//! blocked port, and must not be retried another way.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::error::TransportError;
use crate::quic::{self, QuicTimers};
use crate::socks::{self, Socks5Proxy};
use crate::stream::BlockStream;
use crate::tcp;
use passage_wire::{Host, RelayAddress, RelayPin};

/// Which transports [`connect`] may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TransportMode {
    /// QUIC with a TCP fallback raced after a short head start.
    #[default]
    Auto,
    /// QUIC only.
    Quic,
    /// TLS over TCP only.
    Tcp,
}

/// How to connect. `Default` gives the values documented on each field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Transports to use. Default [`TransportMode::Auto`].
    pub mode: TransportMode,
    /// SOCKS5 proxy (e.g. Tor at `127.0.0.1:9050`). TCP only: with a proxy,
    /// `Auto` means TCP and `Quic` is rejected. Default none.
    pub proxy: Option<Socks5Proxy>,
    /// Longest time for name resolution, proxy negotiation, the TLS handshake
    /// and stream setup, per attempt. Default 20 s: on a 1 s round trip with
    /// 30 % loss each way a QUIC handshake needs its first flight resent a few
    /// times (probe timeouts of about 1, 2, 4 s…), and a TCP connection a lost
    /// SYN resent (after 1 s, then 3 s); 20 s lets most such attempts finish,
    /// while one that has not by then is better started again (the caller's
    /// retry policy) than waited for. Through Tor, circuits take seconds too.
    pub handshake_timeout: Duration,
    /// In `Auto` mode, how long QUIC runs alone before TCP starts too.
    /// Default 250 ms: enough for QUIC on a working path (a loopback or LAN
    /// handshake takes a few ms), short enough that a blocked UDP costs little.
    /// On a long path neither finishes in 250 ms, both run, and the first to
    /// finish wins.
    pub quic_head_start: Duration,
    /// QUIC: close when nothing at all has been heard for this long (the
    /// relay's own limit applies if smaller). Default 60 s: three keep-alive
    /// intervals, so three PINGs (each retransmitted by QUIC's loss recovery)
    /// must all be lost before a live path is given up, even at 30 % loss.
    pub quic_idle_timeout: Duration,
    /// QUIC PING interval and TCP keep-alive probe interval, keeping NAT
    /// mappings open. Costs a small packet per interval on an idle
    /// connection (about 50 bytes, 4.5 KB an hour with QUIC's answer). Default
    /// 20 s: below the 30 s UDP mapping timeout of the strictest carrier NATs,
    /// and a third of the idle timeout; `None` disables.
    pub keep_alive: Option<Duration>,
    /// TCP: fail `recv_block` when no byte arrives for this long. The relay
    /// sends nothing on an idle connection, so set it only together with an
    /// application-level ping. Default none.
    pub tcp_idle_timeout: Option<Duration>,
    /// The local address to connect from (a machine with several addresses; tests of
    /// per-source limits from several loopback addresses). Ignored with a proxy.
    /// Default none: the system chooses.
    pub local_ip: Option<IpAddr>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            mode: TransportMode::Auto,
            proxy: None,
            handshake_timeout: Duration::from_secs(20),
            quic_head_start: Duration::from_millis(250),
            quic_idle_timeout: Duration::from_secs(60),
            keep_alive: Some(Duration::from_secs(20)),
            tcp_idle_timeout: None,
            local_ip: None,
        }
    }
}

/// Connects to the relay named by a `passage://` address (see [`connect`]).
pub async fn connect_address(
    address: &RelayAddress,
    options: &ConnectOptions,
) -> Result<BlockStream, TransportError> {
    let host = match address.host() {
        Host::Dns(name) => name.as_str().to_owned(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
        // A host kind this version does not know how to reach.
        _ => return Err(TransportError::NoAddress),
    };
    connect(&host, address.port(), address.pin(), options).await
}

/// Connects to the relay at `host:port` and authenticates it by `pin` alone.
///
/// `host` is a DNS name or an IP literal (IPv6 with or without brackets).
/// With a proxy the name is resolved by the proxy, never locally.
pub async fn connect(
    host: &str,
    port: u16,
    pin: &RelayPin,
    options: &ConnectOptions,
) -> Result<BlockStream, TransportError> {
    let pin = *pin;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Some(proxy) = &options.proxy {
        if options.mode == TransportMode::Quic {
            return Err(TransportError::ProxyRequiresTcp);
        }
        return bounded(options.handshake_timeout, async {
            let stream = socks::connect(proxy, host, port).await?;
            tcp::client_handshake(stream, pin, options.keep_alive, options.tcp_idle_timeout).await
        })
        .await;
    }

    let addrs = bounded(options.handshake_timeout, resolve(host, port)).await?;
    match options.mode {
        TransportMode::Tcp => connect_tcp(&addrs, pin, options).await,
        TransportMode::Quic => connect_quic(&addrs, pin, options).await,
        TransportMode::Auto => race(&addrs, pin, options).await,
    }
}

/// QUIC first, TCP after the head start, first to finish wins.
/// How long QUIC may still try once TCP has failed (see `race`).
pub const QUIC_GRACE_AFTER_TCP_FAILS: Duration = Duration::from_secs(3);

async fn race(
    addrs: &[SocketAddr],
    pin: RelayPin,
    options: &ConnectOptions,
) -> Result<BlockStream, TransportError> {
    let quic = connect_quic(addrs, pin, options);
    tokio::pin!(quic);
    let quic_failed = tokio::select! {
        result = &mut quic => match result {
            Ok(stream) => return Ok(stream),
            Err(TransportError::PinMismatch) => return Err(TransportError::PinMismatch),
            Err(e) => Some(e),
        },
        () = tokio::time::sleep(options.quic_head_start) => None,
    };
    let tcp = connect_tcp(addrs, pin, options);
    if quic_failed.is_some() {
        return tcp.await;
    }
    tokio::pin!(tcp);
    tokio::select! {
        biased;
        result = &mut quic => match result {
            Ok(stream) => Ok(stream),
            Err(TransportError::PinMismatch) => Err(TransportError::PinMismatch),
            Err(_) => tcp.await,
        },
        result = &mut tcp => match result {
            Ok(stream) => Ok(stream),
            Err(TransportError::PinMismatch) => Err(TransportError::PinMismatch),
            // TCP's error says more (refused, unreachable) than a QUIC timeout. A relay
            // listens on both, so TCP refused usually means QUIC will not answer either:
            // QUIC gets a short grace (for a network that blocks only TCP), not the
            // whole handshake timeout, so that "relay down" is known in seconds.
            Err(tcp_error) => match tokio::time::timeout(QUIC_GRACE_AFTER_TCP_FAILS, quic).await {
                Ok(Ok(stream)) => Ok(stream),
                Ok(Err(TransportError::PinMismatch)) => Err(TransportError::PinMismatch),
                _ => Err(tcp_error),
            },
        },
    }
}

async fn connect_quic(
    addrs: &[SocketAddr],
    pin: RelayPin,
    options: &ConnectOptions,
) -> Result<BlockStream, TransportError> {
    let addr = *addrs.first().ok_or(TransportError::NoAddress)?;
    let timers = QuicTimers {
        idle_timeout: options.quic_idle_timeout,
        keep_alive: options.keep_alive,
    };
    bounded(
        options.handshake_timeout,
        quic::connect(addr, options.local_ip, pin, timers),
    )
    .await
}

async fn connect_tcp(
    addrs: &[SocketAddr],
    pin: RelayPin,
    options: &ConnectOptions,
) -> Result<BlockStream, TransportError> {
    bounded(options.handshake_timeout, async {
        let stream = tcp::connect_direct(addrs, options.local_ip).await?;
        tcp::client_handshake(stream, pin, options.keep_alive, options.tcp_idle_timeout).await
    })
    .await
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, TransportError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(TransportError::Resolve)?
        .collect();
    if addrs.is_empty() {
        return Err(TransportError::NoAddress);
    }
    Ok(addrs)
}

/// Runs `fut` for at most `limit`; running out is a handshake timeout.
pub(crate) async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or(Err(TransportError::HandshakeTimeout))
}
