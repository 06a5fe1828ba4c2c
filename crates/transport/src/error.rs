//! Errors. None of their messages carries a host name, an address, a key or
//! text chosen by the peer, so they are safe to show and to log.

use std::io;

/// Why connecting, listening, or moving a block failed.
///
/// Faults of the peer or the network ([`PinMismatch`](Self::PinMismatch),
/// [`Truncated`](Self::Truncated), …) are kept apart from misuse by the caller
/// ([`ProxyRequiresTcp`](Self::ProxyRequiresTcp)). Sources are OS or TLS
/// errors; they never embed an address either.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The relay presented a key other than the one pinned in its address
    /// (and no endorsement of it by the pinned key that is still valid). The
    /// connection may be intercepted, or the relay rotated its key and the
    /// overlap in which the old address still worked is over: do not retry
    /// over this network path without checking the address.
    #[error(
        "the relay's key does not match the pin in its address; the connection may be intercepted, or the relay changed its key — ask its operator for its current address"
    )]
    PinMismatch,
    /// The TLS handshake (including stream setup) did not finish within the
    /// handshake timeout.
    #[error("the relay did not complete the handshake in time")]
    HandshakeTimeout,
    /// Nothing was heard from the peer for longer than the idle timeout.
    #[error("the connection was idle for longer than the idle timeout and was closed")]
    IdleTimeout,
    /// The relay's host name could not be resolved.
    #[error("could not resolve the relay's host name")]
    Resolve(#[source] io::Error),
    /// The relay's host name resolved to no address.
    #[error("the relay's host name resolved to no address")]
    NoAddress,
    /// A socket could not be opened or connected.
    #[error("could not reach the relay")]
    Connect(#[source] io::Error),
    /// The TLS handshake over TCP failed (other than by a pin mismatch).
    #[error("the TLS handshake failed")]
    Tls(#[source] rustls::Error),
    /// The QUIC handshake failed (other than by a pin mismatch or a timeout);
    /// `code` is the QUIC transport error code (0x100–0x1ff: a TLS alert).
    #[error("the QUIC handshake failed (error code {code:#x})")]
    QuicHandshake {
        /// QUIC transport error code.
        code: u64,
    },
    /// The peer does not speak `passage/1` (ALPN).
    #[error("the peer does not speak the passage/1 protocol")]
    AlpnMismatch,
    /// The peer opened the QUIC stream with an unexpected first byte.
    #[error("the peer opened the stream with an unknown preamble")]
    BadPreamble,
    /// The peer closed the connection with an error code.
    #[error("the peer closed the connection with an error")]
    ClosedByPeer,
    /// The peer reset the stream or abandoned the connection.
    #[error("the connection was reset")]
    ConnectionLost,
    /// The peer closed the connection in the middle of a block.
    #[error("the connection ended in the middle of a block")]
    Truncated,
    /// The stream was already closed on this side.
    #[error("the stream is closed")]
    Closed,
    /// An I/O error on an established TCP connection.
    #[error("I/O error on the connection")]
    Io(#[source] io::Error),
    /// The SOCKS5 proxy refused or failed the connection.
    #[error("the SOCKS5 proxy failed")]
    Proxy(#[source] ProxyError),
    /// A proxy was configured together with
    /// [`TransportMode::Quic`](crate::TransportMode::Quic); SOCKS5 carries TCP only.
    #[error("a SOCKS5 proxy carries TCP only; use transport mode auto or tcp with a proxy")]
    ProxyRequiresTcp,
    /// The listening sockets could not be bound.
    #[error("could not bind the listening sockets")]
    Bind(#[source] io::Error),
    /// The TLS library rejected our configuration (a bug or a bad identity).
    #[error("the TLS configuration was rejected")]
    Config(#[source] rustls::Error),
}

/// Why the SOCKS5 proxy did not give us a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy wants authentication, which we do not offer.
    #[error("the proxy requires authentication")]
    AuthRequired,
    /// The proxy answered something that is not SOCKS5.
    #[error("the proxy answered with something that is not SOCKS5")]
    Malformed,
    /// The proxy could not connect to the relay; `reply` is the SOCKS5 reply
    /// code (RFC 1928 §6: 1 general failure, 2 not allowed, 3 network
    /// unreachable, 4 host unreachable, 5 refused, 6 TTL expired, …).
    #[error("the proxy could not connect to the relay (SOCKS5 reply {reply})")]
    Refused {
        /// SOCKS5 reply code.
        reply: u8,
    },
    /// The relay's host name is empty or longer than SOCKS5 allows (255 bytes).
    #[error("the relay's host name is empty or too long for SOCKS5")]
    BadHost,
    /// The proxy closed the connection or an I/O error occurred talking to it.
    #[error("I/O error talking to the proxy")]
    Io(#[source] io::Error),
}

/// Why a relay identity could not be created or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The bytes are not a supported PKCS#8 private key.
    #[error("the relay key is not a valid PKCS#8 key")]
    BadKey,
    /// The certificate could not be parsed.
    #[error("the relay certificate could not be parsed")]
    BadCertificate,
    /// The certificate does not belong to the key.
    #[error("the relay certificate does not match the relay key")]
    KeyMismatch,
    /// Key generation or certificate signing failed.
    #[error("could not generate the relay key or certificate")]
    Generate,
}

/// Why a proxy string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A proxy is written `socks5://host:port` (or `socks5h://`).
    #[error("a proxy is written socks5://host:port")]
    BadProxy,
}
