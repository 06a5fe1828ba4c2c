//! QUIC (quinn) endpoints and handshakes.
//!
//! One connection carries one bidirectional stream, opened by the client.
//! QUIC announces a stream only when data is sent on it, so the client
//! writes a single byte, [`QUIC_PREAMBLE`], right after opening it; the
//! server reads and checks that byte before handing the stream out. After it
//! both directions carry exactly the same block sequence as over TCP, so
//! either side may speak first.
//!
//! No 0-RTT, no NEW_TOKEN address-validation tokens (they would let the relay
//! link a client's connections), no datagrams, no peer-opened streams beyond
//! the one. Callers bound every async function here with the handshake
//! timeout.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};

use crate::error::TransportError;
use crate::identity::RelayIdentity;
use crate::stream::BlockStream;
use crate::tls::{self, ALPN, CHANNEL_BINDING_LABEL, CHANNEL_BINDING_LEN, PinMismatchFlag};
use passage_wire::RelayPin;

/// The first byte the client sends on the QUIC stream ("P"). It exists only
/// to announce the stream; it is not part of any block.
pub const QUIC_PREAMBLE: u8 = 0x50;

/// Requested UDP socket buffer size of a client's socket (one connection),
/// each direction. Kernel defaults (about 200 KiB) drop packets on loopback
/// under load; the kernel caps the request at `net.core.rmem_max`/`wmem_max`,
/// so this is best effort.
pub const UDP_SOCKET_BUFFER: usize = 2 * 1024 * 1024;

/// Requested UDP socket buffer size of the server's socket, each direction:
/// every QUIC connection shares it, so a burst from a thousand clients must fit
/// (measured: 1,000 pairs on loopback dropped packets with 2 MiB). The kernel
/// caps it at `net.core.rmem_max`/`wmem_max` (often 208 KiB by default);
/// [`Listener::udp_buffer_sizes`](crate::Listener::udp_buffer_sizes) tells what
/// was granted, so the operator can raise the limit.
pub const SERVER_UDP_SOCKET_BUFFER: usize = 32 * 1024 * 1024;

/// Application close code for a connection that broke the protocol.
const CLOSE_PROTOCOL_VIOLATION: u32 = 1;

/// Transport settings for QUIC on either side.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuicTimers {
    /// Close the connection when nothing at all (not even a keep-alive) has
    /// been heard for this long. The smaller of both sides' values applies.
    pub(crate) idle_timeout: Duration,
    /// Send a PING when nothing else was sent for this long.
    pub(crate) keep_alive: Option<Duration>,
}

/// A UDP socket bound to `addr` with buffers enlarged towards `buffer` bytes
/// each direction, ready for quinn.
pub(crate) fn udp_socket(addr: SocketAddr, buffer: usize) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel silently caps the sizes (see UDP_SOCKET_BUFFER),
    // and a refusal leaves the defaults, which still work.
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The receive and send buffer sizes the kernel granted a UDP socket (as it
/// reports them: Linux doubles the request for its bookkeeping).
pub(crate) fn udp_buffer_sizes(socket: &std::net::UdpSocket) -> Option<(usize, usize)> {
    let socket = socket2::SockRef::from(socket);
    Some((
        socket.recv_buffer_size().ok()?,
        socket.send_buffer_size().ok()?,
    ))
}

/// A server endpoint on an already bound UDP socket.
pub(crate) fn server_endpoint(
    socket: std::net::UdpSocket,
    identity: &RelayIdentity,
    timers: QuicTimers,
    max_pending: usize,
) -> Result<quinn::Endpoint, TransportError> {
    let tls = Arc::new(tls::server_config(identity)?);
    let crypto = QuicServerConfig::try_from(tls).map_err(|_| no_initial_suite())?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = transport_config(timers);
    // The client opens exactly one bidirectional stream.
    transport.max_concurrent_bidi_streams(VarInt::from_u32(1));
    config.transport_config(Arc::new(transport));
    let mut tokens = quinn::ValidationTokenConfig::default();
    tokens.sent(0).log(Arc::new(quinn::NoneTokenLog));
    config.validation_token_config(tokens);
    config.max_incoming(max_pending.max(1));
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(TransportError::Bind)
}

/// Server side: completes the handshake of an incoming connection and
/// accepts its stream.
pub(crate) async fn server_handshake(
    incoming: quinn::Incoming,
) -> Result<BlockStream, TransportError> {
    let connecting = incoming.accept().map_err(handshake_error)?;
    let conn = connecting.await.map_err(handshake_error)?;
    check_alpn(&conn)?;
    let (send, mut recv) = conn.accept_bi().await.map_err(handshake_error)?;
    let mut preamble = [0u8; 1];
    match recv.read_exact(&mut preamble).await {
        Ok(()) if preamble == [QUIC_PREAMBLE] => {}
        Ok(()) => {
            conn.close(VarInt::from_u32(CLOSE_PROTOCOL_VIOLATION), b"");
            return Err(TransportError::BadPreamble);
        }
        Err(quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(e))) => {
            return Err(handshake_error(e));
        }
        Err(_) => return Err(TransportError::BadPreamble),
    }
    let binding = channel_binding(&conn)?;
    Ok(BlockStream::new_quic(conn, send, recv, None, binding))
}

/// Client side: connects to `addr` from a fresh endpoint (a fresh UDP port
/// per connection, so connections cannot be linked by port) and opens the
/// stream.
pub(crate) async fn connect(
    addr: SocketAddr,
    local_ip: Option<std::net::IpAddr>,
    pin: RelayPin,
    timers: QuicTimers,
) -> Result<BlockStream, TransportError> {
    let (tls, mismatch) = tls::client_config(pin)?;
    let crypto = QuicClientConfig::try_from(Arc::new(tls)).map_err(|_| no_initial_suite())?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = transport_config(timers);
    // The relay opens no streams.
    transport.max_concurrent_bidi_streams(VarInt::from_u32(0));
    config.transport_config(Arc::new(transport));
    config.token_store(Arc::new(quinn::NoneTokenStore));

    let local: SocketAddr = match local_ip {
        Some(ip) => (ip, 0).into(),
        None if addr.is_ipv6() => (Ipv6Addr::UNSPECIFIED, 0).into(),
        None => (Ipv4Addr::UNSPECIFIED, 0).into(),
    };
    let socket = udp_socket(local, UDP_SOCKET_BUFFER).map_err(TransportError::Connect)?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(TransportError::Connect)?;
    // quinn's ConnectError would print the address: replace it.
    let connecting = endpoint
        .connect_with(config, addr, tls::PLACEHOLDER_SERVER_NAME)
        .map_err(|_| {
            TransportError::Connect(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "QUIC cannot connect to this address",
            ))
        })?;
    let conn = match connecting.await {
        Ok(conn) => conn,
        Err(e) => return Err(client_error(e, &mismatch)),
    };
    check_alpn(&conn)?;
    let (mut send, recv) = conn.open_bi().await.map_err(handshake_error)?;
    send.write_all(&[QUIC_PREAMBLE])
        .await
        .map_err(|_| TransportError::ConnectionLost)?;
    let binding = channel_binding(&conn)?;
    Ok(
        BlockStream::new_quic(conn, send, recv, Some(endpoint), binding)
            .with_rotation(mismatch.rotation()),
    )
}

/// The RTT assumed before the first sample: RFC 9002's 333 ms, kept on purpose for the
/// long, lossy paths we target (round trips near 1 s, 10–30 % loss). The first probe
/// timeout is about three times this, so on a 1 s path a lost first flight is resent
/// after about 1 s, and one that was not lost is resent once for nothing (1.2 KB):
/// on a path that loses 30 % that spare copy often is what gets through. A larger
/// estimate would delay the recovery of every lost handshake packet by as much, on
/// good networks too. After the first sample quinn uses the measured RTT.
pub const INITIAL_RTT: Duration = Duration::from_millis(333);

/// Loss recovery, reviewed for 1 s round trips and 30 % loss each way, is quinn's
/// (RFC 9002) apart from the settings below: a packet is declared lost three packets
/// or 9/8 RTT after a later one was acknowledged, probes back off exponentially, and
/// the congestion controller (Cubic) may shrink the window to its minimum of two
/// packets, which carries our traffic (a few 4 KiB blocks a message) in a round
/// trip or two. The idle timeout and keep-alive come from [`QuicTimers`]; see
/// `ConnectOptions` and `ServerOptions` for why their values were chosen.
fn transport_config(timers: QuicTimers) -> TransportConfig {
    let mut transport = TransportConfig::default();
    let idle_ms = u32::try_from(timers.idle_timeout.as_millis()).unwrap_or(u32::MAX);
    transport
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(idle_ms))))
        .keep_alive_interval(timers.keep_alive)
        .initial_rtt(INITIAL_RTT)
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None);
    transport
}

fn check_alpn(conn: &quinn::Connection) -> Result<(), TransportError> {
    let protocol = conn
        .handshake_data()
        .and_then(|data| data.downcast::<HandshakeData>().ok())
        .and_then(|data| data.protocol);
    if protocol.as_deref() == Some(ALPN) {
        Ok(())
    } else {
        conn.close(VarInt::from_u32(CLOSE_PROTOCOL_VIOLATION), b"");
        Err(TransportError::AlpnMismatch)
    }
}

fn channel_binding(conn: &quinn::Connection) -> Result<[u8; CHANNEL_BINDING_LEN], TransportError> {
    let mut out = [0u8; CHANNEL_BINDING_LEN];
    conn.export_keying_material(&mut out, CHANNEL_BINDING_LABEL, &[])
        .map_err(|_| {
            TransportError::Config(rustls::Error::General(
                "keying material export failed".into(),
            ))
        })?;
    Ok(out)
}

/// A failed client handshake: the pin verifier's flag wins over the QUIC
/// error code it caused.
fn client_error(e: quinn::ConnectionError, mismatch: &PinMismatchFlag) -> TransportError {
    if mismatch.is_set() {
        TransportError::PinMismatch
    } else {
        handshake_error(e)
    }
}

/// Maps a connection error during the handshake or stream setup.
fn handshake_error(e: quinn::ConnectionError) -> TransportError {
    match e {
        quinn::ConnectionError::TimedOut => TransportError::HandshakeTimeout,
        quinn::ConnectionError::TransportError(t) => TransportError::QuicHandshake {
            code: u64::from(t.code),
        },
        quinn::ConnectionError::ConnectionClosed(c) => TransportError::QuicHandshake {
            code: u64::from(c.error_code),
        },
        quinn::ConnectionError::ApplicationClosed(_) => TransportError::ClosedByPeer,
        quinn::ConnectionError::LocallyClosed => TransportError::Closed,
        _ => TransportError::ConnectionLost,
    }
}

fn no_initial_suite() -> TransportError {
    TransportError::Config(rustls::Error::General(
        "no QUIC initial cipher suite".into(),
    ))
}
