//! A minimal SOCKS5 CONNECT client (RFC 1928), no authentication.
//!
//! The relay's host name goes to the proxy as a domain name (address type
//! 3), so DNS is resolved by the proxy — through Tor when the proxy is Tor —
//! and never on this device. Callers bound [`connect`] with the handshake
//! timeout.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::error::{ParseError, ProxyError, TransportError};

const VERSION: u8 = 5;
const METHOD_NO_AUTH: u8 = 0;
const METHOD_NONE_ACCEPTABLE: u8 = 0xff;
const CMD_CONNECT: u8 = 1;
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;
const REPLY_SUCCEEDED: u8 = 0;

/// Longest host name SOCKS5 can carry (its length is one byte).
pub const MAX_SOCKS_HOST_LEN: usize = 255;

/// A SOCKS5 proxy, such as Tor's at `127.0.0.1:9050`.
#[derive(Clone, PartialEq, Eq)]
pub struct Socks5Proxy {
    host: String,
    port: u16,
}

impl Socks5Proxy {
    /// A proxy at `host:port` (a name or an IP literal, without brackets).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// Parses `socks5://host:port` or `socks5h://host:port` (both resolve
    /// names through the proxy). IPv6 literals go in brackets:
    /// `socks5://[::1]:9050`. User info, paths and port 0 are rejected.
    pub fn parse(url: &str) -> Result<Self, ParseError> {
        let rest = url
            .strip_prefix("socks5://")
            .or_else(|| url.strip_prefix("socks5h://"))
            .ok_or(ParseError::BadProxy)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = rest.rsplit_once(':').ok_or(ParseError::BadProxy)?;
        let host = match host.strip_prefix('[') {
            Some(inner) => {
                let v6 = inner.strip_suffix(']').ok_or(ParseError::BadProxy)?;
                v6.parse::<std::net::Ipv6Addr>()
                    .map_err(|_| ParseError::BadProxy)?;
                v6
            }
            None => host,
        };
        let port: u16 = port.parse().map_err(|_| ParseError::BadProxy)?;
        let bad_char =
            |c: char| matches!(c, '/' | '@' | '[' | ']' | '?' | '#') || c.is_whitespace();
        if host.is_empty() || port == 0 || host.contains(bad_char) {
            return Err(ParseError::BadProxy);
        }
        Ok(Self::new(host, port))
    }

    /// The proxy's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl std::fmt::Debug for Socks5Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Usually a local Tor port, but keep addresses out of logs anyway.
        f.write_str("Socks5Proxy(..)")
    }
}

/// Opens a TCP connection to `host:port` through the proxy.
pub(crate) async fn connect(
    proxy: &Socks5Proxy,
    host: &str,
    port: u16,
) -> Result<TcpStream, TransportError> {
    let request = connect_request(host, port).map_err(TransportError::Proxy)?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((proxy.host.as_str(), proxy.port))
        .await
        .map_err(TransportError::Resolve)?
        .collect();
    let mut stream = crate::tcp::connect_direct(&addrs, None).await?;
    handshake(&mut stream, &request)
        .await
        .map_err(TransportError::Proxy)?;
    Ok(stream)
}

/// The CONNECT request for `host:port`: IP literals as addresses, anything
/// else as a domain name for the proxy to resolve.
fn connect_request(host: &str, port: u16) -> Result<Vec<u8>, ProxyError> {
    let mut req = vec![VERSION, CMD_CONNECT, 0];
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match literal.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            req.push(ATYP_IPV4);
            req.extend_from_slice(&ip.octets());
        }
        Ok(IpAddr::V6(ip)) => {
            req.push(ATYP_IPV6);
            req.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            let len = u8::try_from(host.len()).map_err(|_| ProxyError::BadHost)?;
            if len == 0 {
                return Err(ProxyError::BadHost);
            }
            req.push(ATYP_DOMAIN);
            req.push(len);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    Ok(req)
}

async fn handshake(stream: &mut TcpStream, request: &[u8]) -> Result<(), ProxyError> {
    // Greeting: version 5, one method, "no authentication".
    stream
        .write_all(&[VERSION, 1, METHOD_NO_AUTH])
        .await
        .map_err(ProxyError::Io)?;
    let mut choice = [0u8; 2];
    stream
        .read_exact(&mut choice)
        .await
        .map_err(ProxyError::Io)?;
    match choice {
        [VERSION, METHOD_NO_AUTH] => {}
        [VERSION, METHOD_NONE_ACCEPTABLE] => return Err(ProxyError::AuthRequired),
        _ => return Err(ProxyError::Malformed),
    }

    stream.write_all(request).await.map_err(ProxyError::Io)?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await.map_err(ProxyError::Io)?;
    let [version, reply, _reserved, atyp] = head;
    if version != VERSION {
        return Err(ProxyError::Malformed);
    }
    if reply != REPLY_SUCCEEDED {
        return Err(ProxyError::Refused { reply });
    }
    // Skip the bound address and port; their length depends on the type.
    let addr_len = match atyp {
        ATYP_IPV4 => 4,
        ATYP_IPV6 => 16,
        ATYP_DOMAIN => usize::from(stream.read_u8().await.map_err(ProxyError::Io)?),
        _ => return Err(ProxyError::Malformed),
    };
    let mut bound = [0u8; MAX_SOCKS_HOST_LEN + 2];
    let skip = bound
        .get_mut(..addr_len.saturating_add(2))
        .ok_or(ProxyError::Malformed)?;
    stream.read_exact(skip).await.map_err(ProxyError::Io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxy_urls() {
        let p = Socks5Proxy::parse("socks5://127.0.0.1:9050").unwrap();
        assert_eq!((p.host(), p.port()), ("127.0.0.1", 9050));
        let p = Socks5Proxy::parse("socks5h://localhost:9150/").unwrap();
        assert_eq!((p.host(), p.port()), ("localhost", 9150));
        let p = Socks5Proxy::parse("socks5://[::1]:9050").unwrap();
        assert_eq!((p.host(), p.port()), ("::1", 9050));
        for bad in [
            "http://127.0.0.1:9050",
            "socks5://127.0.0.1",
            "socks5://127.0.0.1:0",
            "socks5://127.0.0.1:65536",
            "socks5://:9050",
            "socks5://user:pw@host:9050",
            "socks5://[::1:9050",
            "socks5://[zz]:9050",
            "socks5://host/path:9050",
        ] {
            assert_eq!(Socks5Proxy::parse(bad), Err(ParseError::BadProxy), "{bad}");
        }
    }

    #[test]
    fn request_uses_domain_names_for_names_and_addresses_for_literals() {
        let req = connect_request("relay.example", 443).unwrap();
        assert_eq!(&req[..5], &[5, 1, 0, ATYP_DOMAIN, 13]);
        assert_eq!(&req[5..18], b"relay.example");
        assert_eq!(&req[18..], &[1, 187]);
        let req = connect_request("10.1.2.3", 80).unwrap();
        assert_eq!(req, vec![5, 1, 0, ATYP_IPV4, 10, 1, 2, 3, 0, 80]);
        let req = connect_request("[::1]", 80).unwrap();
        assert_eq!(req.len(), 4 + 16 + 2);
        assert_eq!(req[3], ATYP_IPV6);
    }

    #[test]
    fn host_length_limit() {
        let at_limit = "a".repeat(MAX_SOCKS_HOST_LEN);
        assert!(connect_request(&at_limit, 1).is_ok());
        let past = "a".repeat(MAX_SOCKS_HOST_LEN + 1);
        assert!(matches!(
            connect_request(&past, 1),
            Err(ProxyError::BadHost)
        ));
        assert!(matches!(connect_request("", 1), Err(ProxyError::BadHost)));
    }
}
