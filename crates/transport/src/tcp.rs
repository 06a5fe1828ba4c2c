//! TLS 1.3 over TCP: the fallback when UDP is blocked, and the only
//! transport through a SOCKS5 proxy.
//!
//! Callers bound every function here with the handshake timeout.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::TransportError;
use crate::read_ahead::ReadAhead;
use crate::stream::BlockStream;
use crate::tls::{self, ALPN, CHANNEL_BINDING_LABEL, CHANNEL_BINDING_LEN};
use passage_wire::RelayPin;

/// Connects to the first of `addrs` that accepts, in order, from `local` if given
/// (addresses of the other family are skipped then).
pub(crate) async fn connect_direct(
    addrs: &[SocketAddr],
    local: Option<IpAddr>,
) -> Result<TcpStream, TransportError> {
    let mut last = None;
    for addr in addrs {
        let attempt = match local {
            None => TcpStream::connect(addr).await,
            Some(ip) if ip.is_ipv4() != addr.is_ipv4() => continue,
            Some(ip) => {
                let socket = if ip.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                };
                match socket.and_then(|s| s.bind(SocketAddr::new(ip, 0)).map(|()| s)) {
                    Ok(socket) => socket.connect(*addr).await,
                    Err(e) => Err(e),
                }
            }
        };
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or(TransportError::NoAddress, TransportError::Connect))
}

/// Runs the client side of the TLS handshake on a connected TCP stream.
pub(crate) async fn client_handshake(
    tcp: TcpStream,
    pin: RelayPin,
    keep_alive: Option<Duration>,
    idle_timeout: Option<Duration>,
) -> Result<BlockStream, TransportError> {
    configure_socket(&tcp, keep_alive);
    let (config, mismatch) = tls::client_config(pin)?;
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(tls::PLACEHOLDER_SERVER_NAME).map_err(|_| {
        TransportError::Config(rustls::Error::General(
            "invalid placeholder server name".into(),
        ))
    })?;
    // Under rustls from the first handshake byte: bytes the relay sends right
    // after its handshake flight may be read ahead with it and wait here.
    let tls = match connector.connect(name, ReadAhead::new(tcp)).await {
        Ok(tls) => tls,
        Err(_) if mismatch.is_set() => return Err(TransportError::PinMismatch),
        Err(e) => return Err(handshake_error(e)),
    };
    let binding = checked_binding(tls.get_ref().1)?;
    Ok(BlockStream::new_tcp(tls.into(), binding, idle_timeout).with_rotation(mismatch.rotation()))
}

/// After a handshake, on either side: the ALPN must be ours (a peer that offers none
/// would otherwise get through), then the RFC 9266 channel binding.
fn checked_binding<D>(
    conn: &rustls::ConnectionCommon<D>,
) -> Result<[u8; CHANNEL_BINDING_LEN], TransportError> {
    if conn.alpn_protocol() != Some(ALPN) {
        return Err(TransportError::AlpnMismatch);
    }
    conn.export_keying_material([0u8; CHANNEL_BINDING_LEN], CHANNEL_BINDING_LABEL, Some(&[]))
        .map_err(TransportError::Tls)
}

/// Runs the server side of the TLS handshake on an accepted TCP stream.
pub(crate) async fn server_handshake(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    keep_alive: Option<Duration>,
    idle_timeout: Option<Duration>,
) -> Result<BlockStream, TransportError> {
    configure_socket(&tcp, keep_alive);
    let tls = acceptor
        .accept(ReadAhead::new(tcp))
        .await
        .map_err(handshake_error)?;
    let binding = checked_binding(tls.get_ref().1)?;
    Ok(BlockStream::new_tcp(tls.into(), binding, idle_timeout))
}

/// No Nagle delay (blocks are written whole), and TCP keep-alive probes so
/// that NAT mappings survive and a vanished peer is noticed by the kernel.
/// Both are best effort: failure to set them is not fatal.
fn configure_socket(tcp: &TcpStream, keep_alive: Option<Duration>) {
    let _ = tcp.set_nodelay(true);
    if let Some(interval) = keep_alive {
        let params = socket2::TcpKeepalive::new()
            .with_time(interval)
            .with_interval(interval);
        let _ = socket2::SockRef::from(tcp).set_tcp_keepalive(&params);
    }
}

/// tokio-rustls reports TLS failures as `io::Error`s wrapping a
/// `rustls::Error`; unwrap them so the caller gets a typed TLS error.
fn handshake_error(e: std::io::Error) -> TransportError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => TransportError::Tls(tls.clone()),
        None => TransportError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RelayIdentity, ServerOptions, listen};

    /// A client that offers `alpn` instead of `passage/1`.
    async fn handshake_with_alpn(
        port: u16,
        pin: RelayPin,
        alpn: Vec<Vec<u8>>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TransportError> {
        let (mut config, _) = tls::client_config(pin)?;
        config.alpn_protocols = alpn;
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(TransportError::Connect)?;
        let name = ServerName::try_from(tls::PLACEHOLDER_SERVER_NAME).unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(handshake_error)
    }

    #[tokio::test]
    async fn relay_rejects_clients_without_passage_alpn() {
        let identity = RelayIdentity::generate().unwrap();
        let options = ServerOptions {
            serve_quic: false,
            ..ServerOptions::default()
        };
        let listener = listen("127.0.0.1:0".parse().unwrap(), &identity, options)
            .await
            .unwrap();
        let port = listener.local_addr().port();

        // Another protocol: rustls refuses during the handshake.
        let err = handshake_with_alpn(port, identity.pin(), vec![b"h2".to_vec()])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                TransportError::Tls(rustls::Error::AlertReceived(
                    rustls::AlertDescription::NoApplicationProtocol
                ))
            ),
            "{err:?}"
        );

        // No ALPN at all: the handshake completes but the relay drops it.
        let stream = handshake_with_alpn(port, identity.pin(), vec![]).await;
        assert!(stream.is_ok());
        for _ in 0..100 {
            if listener.failed_handshakes() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(listener.failed_handshakes(), 2);
    }
}
