//! Relay addresses (`passage://<pin>@host:port`) and queue addresses.
//!
//! The address carries the relay's **pin**: SHA-256 of the DER `SubjectPublicKeyInfo`
//! of the relay's TLS certificate. The transport trusts no certificate authority and
//! accepts the relay only if its key hashes to the pin, so a state CA cannot MITM it.
//!
//! # Text form
//!
//! ```text
//! passage://<pin>@<host>:<port>
//!   pin   43 characters: base64url, no padding, of the 32-byte pin
//!   host  a DNS name (lowercased; labels of 1..=63 letters, digits, '-'; 253 at most),
//!         an IPv4 address, or an IPv6 address in brackets: [2001:db8::1]
//!   port  1..=65535, decimal, no sign or leading zero; always present
//! ```
//!
//! # Binary form (big-endian)
//!
//! ```text
//! RelayAddress:  pin [32] ‖ host_kind u8 ‖ host ‖ port u16 (non-zero)
//!                host_kind 1: len u8 (1..=253) ‖ lowercase DNS name
//!                host_kind 2: IPv4 [4]
//!                host_kind 3: IPv6 [16]
//! QueueAddress:  format u8 (= 1) ‖ RelayAddress ‖ sender_id [24]
//! ```
//!
//! `Debug` shows neither the pin nor the host: a relay address in a log on a seized
//! phone tells which NGO a person uses. `Display` writes the full `passage://` text
//! on purpose, for showing to the user or putting in an invitation; never log it.

use core::fmt;
use core::num::NonZeroU16;
use core::str::FromStr;
use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use passage_crypto::codec::{DecodeError, Reader, Writer};
use passage_crypto::primitives::sha256;

use crate::ids::{QUEUE_ID_LEN, SenderId};

/// Length of a relay pin: a SHA-256 digest.
pub const PIN_LEN: usize = 32;

/// Length of a pin in the text form: 32 bytes in unpadded base64url.
pub const PIN_TEXT_LEN: usize = 43;

/// Longest DNS name, in bytes (RFC 1035 §2.3.4, without the trailing dot).
pub const MAX_HOST_LEN: usize = 253;

/// Longest DNS label, in bytes (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// The scheme of a relay address.
pub const SCHEME: &str = "passage://";

/// Longest relay address text: scheme, pin, `@`, the longest host, `:`, a five-digit
/// port (313 bytes). Longer input is refused before any parsing.
pub const MAX_RELAY_ADDRESS_TEXT_LEN: usize =
    SCHEME.len() + PIN_TEXT_LEN + 1 + MAX_HOST_LEN + 1 + 5;

/// Longest binary relay address: pin, host kind, length byte, longest DNS name, port
/// (289 bytes).
pub const MAX_RELAY_ADDRESS_LEN: usize = PIN_LEN + 1 + 1 + MAX_HOST_LEN + 2;

/// Format byte of a binary [`QueueAddress`], so later formats can be told apart.
pub const QUEUE_ADDRESS_FORMAT: u8 = 1;

/// Longest binary queue address (314 bytes): what an invitation must reserve for it.
/// Longer input is refused before any parsing.
pub const MAX_QUEUE_ADDRESS_LEN: usize = 1 + MAX_RELAY_ADDRESS_LEN + QUEUE_ID_LEN;

const HOST_DNS: u8 = 1;
const HOST_IPV4: u8 = 2;
const HOST_IPV6: u8 = 3;

/// Why a `passage://` address could not be parsed. Never repeats the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressParseError {
    /// Longer than [`MAX_RELAY_ADDRESS_TEXT_LEN`].
    #[error(
        "relay address longer than {MAX_RELAY_ADDRESS_TEXT_LEN} bytes; check it was copied whole and alone"
    )]
    TooLong {
        /// The length of the input.
        len: usize,
    },
    /// Does not start with `passage://`.
    #[error("not a relay address: it must start with passage://")]
    WrongScheme,
    /// The pin is missing, not 43 base64url characters, or not canonical.
    #[error("bad relay pin: expected 43 base64url characters before '@'")]
    BadPin,
    /// The host is not a valid DNS name, IPv4 address or bracketed IPv6 address.
    #[error("bad relay host: expected a DNS name, an IPv4 address or [IPv6]")]
    BadHost,
    /// The port is missing, not decimal, zero, or above 65535.
    #[error("bad relay port: expected :1 to :65535 after the host")]
    BadPort,
}

/// Why a binary relay or queue address could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressDecodeError {
    /// Truncated, trailing bytes, or an unknown tag.
    #[error("malformed address: {0}")]
    Malformed(#[from] DecodeError),
    /// Longer than the format's limit.
    #[error("address of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A format this version does not know.
    #[error("unknown queue address format {0}")]
    UnknownFormat(u8),
    /// The DNS name is not valid (or not lowercase).
    #[error("bad relay host")]
    BadHost,
    /// The port is zero.
    #[error("bad relay port")]
    BadPort,
}

/// A string is not a valid DNS host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid DNS host name")]
pub struct InvalidDnsName;

/// The pin of a relay: SHA-256 of its certificate's DER `SubjectPublicKeyInfo`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayPin([u8; PIN_LEN]);

impl RelayPin {
    /// The pin of a relay key, from its DER `SubjectPublicKeyInfo`.
    pub fn from_spki_der(spki_der: &[u8]) -> Self {
        Self(sha256(&[spki_der]))
    }

    /// Wraps pin bytes.
    pub fn from_bytes(bytes: [u8; PIN_LEN]) -> Self {
        Self(bytes)
    }

    /// The pin bytes.
    pub fn as_bytes(&self) -> &[u8; PIN_LEN] {
        &self.0
    }

    /// Whether a presented key matches this pin. Not constant time: a pin is public.
    pub fn matches(&self, spki_der: &[u8]) -> bool {
        Self::from_spki_der(spki_der) == *self
    }

    fn to_text(self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
    }

    fn from_text(text: &str) -> Result<Self, AddressParseError> {
        if text.len() != PIN_TEXT_LEN {
            return Err(AddressParseError::BadPin);
        }
        // The engine refuses padding and non-zero trailing bits: one text per pin.
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| AddressParseError::BadPin)?;
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| AddressParseError::BadPin)
    }
}

impl fmt::Debug for RelayPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RelayPin(..)")
    }
}

/// A validated, lowercase DNS host name of at most [`MAX_HOST_LEN`] bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DnsName(String);

impl DnsName {
    /// Validates a host name, lowercasing it. Labels are 1..=[`MAX_LABEL_LEN`] ASCII
    /// letters, digits and inner hyphens; the last label is not all digits (that would
    /// be a malformed IPv4 address); no trailing dot. Internationalised names must be
    /// given in their `xn--` form.
    pub fn new(name: &str) -> Result<Self, InvalidDnsName> {
        let name = name.to_ascii_lowercase();
        validate_dns(&name)?;
        Ok(Self(name))
    }

    /// The name, to resolve.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DnsName(..)")
    }
}

/// Where a relay listens.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Host {
    /// A DNS name.
    Dns(DnsName),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (bracketed in the text form).
    Ipv6(Ipv6Addr),
}

impl Host {
    fn parse(text: &str) -> Result<Self, AddressParseError> {
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return inner
                .parse()
                .map(Host::Ipv6)
                .map_err(|_| AddressParseError::BadHost);
        }
        if let Ok(ip) = text.parse() {
            return Ok(Host::Ipv4(ip));
        }
        DnsName::new(text)
            .map(Host::Dns)
            .map_err(|_| AddressParseError::BadHost)
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Host::Dns(_) => "Dns(..)",
            Host::Ipv4(_) => "Ipv4(..)",
            Host::Ipv6(_) => "Ipv6(..)",
        })
    }
}

/// A relay: its pin, host and port. Parse with [`str::parse`]; `Display` writes the
/// canonical `passage://` text (see the [module docs](self)).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelayAddress {
    pin: RelayPin,
    host: Host,
    port: NonZeroU16,
}

impl RelayAddress {
    /// An address from its parts.
    pub fn new(pin: RelayPin, host: Host, port: NonZeroU16) -> Self {
        Self { pin, host, port }
    }

    /// The pin the relay's certificate key must match.
    pub fn pin(&self) -> &RelayPin {
        &self.pin
    }

    /// The host to connect to.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.get()
    }

    /// The binary form (at most [`MAX_RELAY_ADDRESS_LEN`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(MAX_RELAY_ADDRESS_LEN);
        self.write(&mut w);
        w.into_vec()
    }

    /// Decodes the binary form; refuses input over [`MAX_RELAY_ADDRESS_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AddressDecodeError> {
        check_len(bytes, MAX_RELAY_ADDRESS_LEN)?;
        let mut r = Reader::new(bytes);
        let address = Self::read(&mut r)?;
        r.finish()?;
        Ok(address)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.put(self.pin.as_bytes());
        match &self.host {
            Host::Dns(name) => {
                w.put_u8(HOST_DNS);
                // A DnsName is at most 253 bytes, so it fits the u8 prefix.
                let _ = w.put_bytes_u8(name.as_str().as_bytes());
            }
            Host::Ipv4(ip) => {
                w.put_u8(HOST_IPV4);
                w.put(&ip.octets());
            }
            Host::Ipv6(ip) => {
                w.put_u8(HOST_IPV6);
                w.put(&ip.octets());
            }
        }
        w.put_u16(self.port.get());
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, AddressDecodeError> {
        let pin = RelayPin(r.array()?);
        let host = match r.u8()? {
            HOST_DNS => {
                let bytes = r.bytes_u8(MAX_HOST_LEN)?;
                let name = core::str::from_utf8(bytes).map_err(|_| AddressDecodeError::BadHost)?;
                // Strict: the binary form holds the canonical (lowercase) name only.
                validate_dns(name).map_err(|_| AddressDecodeError::BadHost)?;
                Host::Dns(DnsName(name.to_owned()))
            }
            HOST_IPV4 => Host::Ipv4(Ipv4Addr::from(r.array::<4>()?)),
            HOST_IPV6 => Host::Ipv6(Ipv6Addr::from(r.array::<16>()?)),
            value => {
                return Err(DecodeError::UnknownValue {
                    field: "host kind",
                    value: u32::from(value),
                }
                .into());
            }
        };
        let port = NonZeroU16::new(r.u16()?).ok_or(AddressDecodeError::BadPort)?;
        Ok(Self { pin, host, port })
    }
}

impl FromStr for RelayAddress {
    type Err = AddressParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_RELAY_ADDRESS_TEXT_LEN {
            return Err(AddressParseError::TooLong { len: text.len() });
        }
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or(AddressParseError::WrongScheme)?;
        let (pin, host_port) = rest.split_once('@').ok_or(AddressParseError::BadPin)?;
        let pin = RelayPin::from_text(pin)?;
        // The port follows the last ':' (an IPv6 host has its colons inside brackets).
        let (host, port) = host_port
            .rsplit_once(':')
            .ok_or(AddressParseError::BadPort)?;
        let host = Host::parse(host)?;
        let port = parse_port(port)?;
        Ok(Self { pin, host, port })
    }
}

impl fmt::Display for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SCHEME)?;
        f.write_str(&self.pin.to_text())?;
        f.write_str("@")?;
        match &self.host {
            Host::Dns(name) => f.write_str(name.as_str())?,
            Host::Ipv4(ip) => write!(f, "{ip}")?,
            Host::Ipv6(ip) => write!(f, "[{ip}]")?,
        }
        write!(f, ":{}", self.port)
    }
}

impl fmt::Debug for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayAddress")
            .field("pin", &self.pin)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

/// Where to send to a queue: its relay and its sender id. An invitation carries it as
/// opaque bytes ([`encode`](Self::encode), at most [`MAX_QUEUE_ADDRESS_LEN`]).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct QueueAddress {
    /// The relay holding the queue.
    pub relay: RelayAddress,
    /// The queue's sender id.
    pub sender_id: SenderId,
}

impl QueueAddress {
    /// The binary form (at most [`MAX_QUEUE_ADDRESS_LEN`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(MAX_QUEUE_ADDRESS_LEN);
        w.put_u8(QUEUE_ADDRESS_FORMAT);
        self.relay.write(&mut w);
        w.put(self.sender_id.as_bytes());
        w.into_vec()
    }

    /// Decodes the binary form; refuses input over [`MAX_QUEUE_ADDRESS_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AddressDecodeError> {
        check_len(bytes, MAX_QUEUE_ADDRESS_LEN)?;
        let mut r = Reader::new(bytes);
        let format = r.u8()?;
        if format != QUEUE_ADDRESS_FORMAT {
            return Err(AddressDecodeError::UnknownFormat(format));
        }
        let relay = RelayAddress::read(&mut r)?;
        let sender_id = SenderId::from_bytes(r.array()?);
        r.finish()?;
        Ok(Self { relay, sender_id })
    }
}

fn check_len(bytes: &[u8], max: usize) -> Result<(), AddressDecodeError> {
    if bytes.len() > max {
        return Err(AddressDecodeError::TooLong {
            len: bytes.len(),
            max,
        });
    }
    Ok(())
}

/// Checks an already lowercase DNS name.
fn validate_dns(name: &str) -> Result<(), InvalidDnsName> {
    if name.is_empty() || name.len() > MAX_HOST_LEN {
        return Err(InvalidDnsName);
    }
    let mut last_all_digits = false;
    for label in name.split('.') {
        let bytes = label.as_bytes();
        let ok_len = (1..=MAX_LABEL_LEN).contains(&bytes.len());
        let ok_chars = bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_ends = !label.starts_with('-') && !label.ends_with('-');
        if !(ok_len && ok_chars && ok_ends) {
            return Err(InvalidDnsName);
        }
        last_all_digits = bytes.iter().all(u8::is_ascii_digit);
    }
    if last_all_digits {
        return Err(InvalidDnsName);
    }
    Ok(())
}

fn parse_port(text: &str) -> Result<NonZeroU16, AddressParseError> {
    let canonical = (1..=5).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    if !canonical {
        return Err(AddressParseError::BadPort);
    }
    text.parse::<u16>()
        .ok()
        .and_then(NonZeroU16::new)
        .ok_or(AddressParseError::BadPort)
}

#[cfg(test)]
mod tests;
