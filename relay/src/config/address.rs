//! The address clients are told to connect to: [`PublicAddress`] as configured, and
//! [`Config::relay_address`], which puts it (or the bound address) together with the
//! relay's pin.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU16;

use passage_wire::{DnsName, Host, RelayAddress, RelayPin};

use super::{Config, ConfigError};

/// The address clients are told to connect to, when it is not the listen address (a
/// relay listening on `0.0.0.0`, behind NAT or a port forward).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicAddress {
    /// A DNS name or an IP address.
    pub host: Host,
    /// The port clients connect to; `None` means the port the relay listens on.
    pub port: Option<NonZeroU16>,
}

impl PublicAddress {
    /// Parses `HOST`, `HOST:PORT`, `[IPv6]` or `[IPv6]:PORT`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::PublicAddress {
            value: text.to_owned(),
        };
        let text = text.trim();
        let (host_text, port_text) = if let Some(rest) = text.strip_prefix('[') {
            let (inner, after) = rest.split_once(']').ok_or_else(bad)?;
            let ip: Ipv6Addr = inner.parse().map_err(|_| bad())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            return Self::checked(Host::Ipv6(ip), port).ok_or_else(bad);
        } else if let Ok(ip) = text.parse::<Ipv6Addr>() {
            return Self::checked(Host::Ipv6(ip), None).ok_or_else(bad);
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        let host = match host_text.parse::<Ipv4Addr>() {
            Ok(ip) => Host::Ipv4(ip),
            Err(_) => Host::Dns(DnsName::new(host_text).map_err(|_| bad())?),
        };
        Self::checked(host, port_text).ok_or_else(bad)
    }

    fn checked(host: Host, port: Option<&str>) -> Option<Self> {
        let unusable = match &host {
            Host::Ipv4(ip) => ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast(),
            Host::Ipv6(ip) => ip.is_unspecified() || ip.is_multicast(),
            _ => false,
        };
        if unusable {
            return None;
        }
        let port = match port {
            None => None,
            // Digits only: `u16::from_str` would also take a leading `+`.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse::<NonZeroU16>().ok()?)
            }
            Some(_) => return None,
        };
        Some(Self { host, port })
    }
}

impl Config {
    /// The address clients use: `public_address` if set (its port, or else the bound
    /// one), else the address the listener is bound to (`bound`, whose port is the real
    /// one when `listen` asked for port 0).
    pub fn relay_address(
        &self,
        pin: RelayPin,
        bound: SocketAddr,
    ) -> Result<RelayAddress, ConfigError> {
        let bound_port = NonZeroU16::new(bound.port()).ok_or(ConfigError::NoPort)?;
        let (host, port) = match &self.public_address {
            Some(public) => (public.host.clone(), public.port.unwrap_or(bound_port)),
            None => {
                let host = match bound.ip() {
                    IpAddr::V4(ip) => Host::Ipv4(ip),
                    IpAddr::V6(ip) => Host::Ipv6(ip),
                };
                (host, bound_port)
            }
        };
        Ok(RelayAddress::new(pin, host, port))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::config::test_input::resolve;
    use crate::config::{FileConfig, Overrides};

    #[test]
    fn unspecified_listen_needs_a_public_address() {
        for listen in ["0.0.0.0:5223", "[::]:5223"] {
            let err = resolve(&format!("listen = \"{listen}\"")).unwrap_err();
            assert!(
                matches!(err, ConfigError::PublicAddressRequired { .. }),
                "{err}"
            );
            assert!(err.to_string().contains("--public-address"), "{err}");
        }
        let config = resolve(
            "listen = \"0.0.0.0:5223\"\npublic_address = \"relay.example.org\"\nopen_relay = true",
        )
        .unwrap();
        let pin = RelayPin::from_bytes([7; 32]);
        let address = config
            .relay_address(pin, "0.0.0.0:5223".parse().unwrap())
            .unwrap();
        assert_eq!(address.port(), 5223);
        assert!(address.to_string().ends_with("@relay.example.org:5223"));
        // The flag satisfies it too.
        let flags = Overrides {
            listen: Some("[::]:0".into()),
            public_address: Some("[2001:db8::1]:443".into()),
            open_relay: true,
            ..Overrides::default()
        };
        let config = Config::resolve(FileConfig::default(), flags).unwrap();
        let address = config
            .relay_address(pin, "[::]:41000".parse().unwrap())
            .unwrap();
        assert!(address.to_string().ends_with("@[2001:db8::1]:443"));
    }

    #[test]
    fn relay_address_uses_the_bound_port() {
        let config = resolve("listen = \"127.0.0.1:0\"").unwrap();
        let pin = RelayPin::from_bytes([1; 32]);
        let address = config
            .relay_address(pin, "127.0.0.1:40123".parse().unwrap())
            .unwrap();
        assert_eq!(address.port(), 40123);
        let text = address.to_string();
        assert!(
            text.starts_with("passage://") && text.ends_with("@127.0.0.1:40123"),
            "{text}"
        );
        assert_eq!(text.parse::<RelayAddress>().unwrap(), address);
    }

    #[test]
    fn public_address_forms() {
        let ok = |s: &str| PublicAddress::parse(s).unwrap();
        assert_eq!(
            ok("Relay.Example.org").host,
            Host::Dns(DnsName::new("relay.example.org").unwrap())
        );
        assert_eq!(ok("relay.example.org:443").port, NonZeroU16::new(443));
        assert_eq!(
            ok("203.0.113.7").host,
            Host::Ipv4(Ipv4Addr::new(203, 0, 113, 7))
        );
        assert_eq!(ok("203.0.113.7:1").port, NonZeroU16::new(1));
        assert_eq!(ok("2001:db8::1").port, None);
        assert_eq!(ok("[2001:db8::1]:65535").port, NonZeroU16::new(65535));
        for bad in [
            "",
            "0.0.0.0",
            "[::]",
            "relay.example.org:0",
            "relay.example.org:65536",
            "a:+1",
            "a:",
            "bad_host",
            "[2001:db8::1",
            "[2001:db8::1]x",
            "https://relay.example.org",
            "a b",
        ] {
            assert!(PublicAddress::parse(bad).is_err(), "{bad:?}");
        }
    }
}
