//! Version negotiation: the first frame each way on a connection.
//!
//! ```text
//! relay  ── RelayHello { versions: min..=max, session_key } ──►  client
//! relay  ◄── ClientHello { version } ───────────────────────────  client
//! ```
//!
//! The client picks the highest version both support ([`negotiate`]); the relay
//! checks the choice ([`ClientHello::accept`]). The session key is the relay's fresh
//! X25519 key for this connection; command authenticators are keyed by it
//! (see [`crate::auth`]).
//!
//! # Byte layout (big-endian)
//!
//! ```text
//! RelayHello:  min u16 ‖ max u16 ‖ session_key [32]     (1 <= min <= max)
//! ClientHello: version u16                              (>= 1)
//! ```

use passage_crypto::codec::{DecodeError, Reader, Writer};
use passage_crypto::primitives::DhPublic;

/// The relay protocol version this crate speaks. Bumped for any change to the wire
/// format or to a key derivation.
pub const PROTOCOL_VERSION: u16 = 1;

/// The versions this crate supports.
pub const SUPPORTED_VERSIONS: VersionRange = VersionRange {
    min: PROTOCOL_VERSION,
    max: PROTOCOL_VERSION,
};

/// Length of an encoded [`RelayHello`].
pub const RELAY_HELLO_LEN: usize = 2 + 2 + 32;

/// Length of an encoded [`ClientHello`].
pub const CLIENT_HELLO_LEN: usize = 2;

/// An agreed protocol version: only [`negotiate`] and [`ClientHello::accept`] make one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ProtocolVersion(u16);

impl ProtocolVersion {
    /// The version number.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// A non-empty range of versions, `min..=max`, not including 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct VersionRange {
    min: u16,
    max: u16,
}

impl VersionRange {
    /// The range `min..=max`; refuses an empty range or version 0.
    pub fn new(min: u16, max: u16) -> Result<Self, VersionError> {
        if min == 0 || min > max {
            return Err(VersionError::InvalidRange { min, max });
        }
        Ok(Self { min, max })
    }

    /// The lowest version.
    pub fn min(&self) -> u16 {
        self.min
    }

    /// The highest version.
    pub fn max(&self) -> u16 {
        self.max
    }

    /// Whether `version` is in the range.
    pub fn contains(&self, version: u16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

/// Why no version was agreed. Versions are public, so errors carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// A range with `min > max` or containing 0.
    #[error("invalid version range {min}..={max}")]
    InvalidRange {
        /// The lowest version given.
        min: u16,
        /// The highest version given.
        max: u16,
    },
    /// The two ranges do not overlap: one side must be updated.
    #[error(
        "no common protocol version: we support {ours_min}..={ours_max}, the peer {theirs_min}..={theirs_max}; update the older side"
    )]
    NoCommonVersion {
        /// Our lowest version.
        ours_min: u16,
        /// Our highest version.
        ours_max: u16,
        /// The peer's lowest version.
        theirs_min: u16,
        /// The peer's highest version.
        theirs_max: u16,
    },
}

/// Why a hello frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HelloDecodeError {
    /// Truncated or trailing bytes.
    #[error("malformed hello: {0}")]
    Malformed(#[from] DecodeError),
    /// A version range that is empty or contains 0.
    #[error("hello has an invalid version: {0}")]
    Version(#[from] VersionError),
}

/// Picks the highest version in both ranges (the client's step).
pub fn negotiate(
    ours: VersionRange,
    theirs: VersionRange,
) -> Result<ProtocolVersion, VersionError> {
    let low = ours.min.max(theirs.min);
    let high = ours.max.min(theirs.max);
    if low > high {
        return Err(VersionError::NoCommonVersion {
            ours_min: ours.min,
            ours_max: ours.max,
            theirs_min: theirs.min,
            theirs_max: theirs.max,
        });
    }
    Ok(ProtocolVersion(high))
}

/// The relay's first frame: the versions it speaks and its session key for this connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RelayHello {
    /// Versions the relay supports.
    pub versions: VersionRange,
    /// The relay's fresh X25519 public key for this connection.
    pub session_key: DhPublic,
}

impl core::fmt::Debug for RelayHello {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RelayHello")
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

impl RelayHello {
    /// Encodes the frame ([`RELAY_HELLO_LEN`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(RELAY_HELLO_LEN);
        w.put_u16(self.versions.min);
        w.put_u16(self.versions.max);
        w.put(self.session_key.as_bytes());
        w.into_vec()
    }

    /// Decodes the frame.
    pub fn decode(frame: &[u8]) -> Result<Self, HelloDecodeError> {
        let mut r = Reader::new(frame);
        let min = r.u16()?;
        let max = r.u16()?;
        let session_key = DhPublic::from_bytes(r.array()?);
        r.finish()?;
        Ok(Self {
            versions: VersionRange::new(min, max)?,
            session_key,
        })
    }

    /// The client's step: picks the version to answer with.
    pub fn negotiate(&self, ours: VersionRange) -> Result<ProtocolVersion, VersionError> {
        negotiate(ours, self.versions)
    }
}

/// The client's first frame: the version it picked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ClientHello {
    /// The version the client will speak.
    pub version: u16,
}

impl ClientHello {
    /// The hello answering with an agreed version.
    pub fn new(version: ProtocolVersion) -> Self {
        Self { version: version.0 }
    }

    /// Encodes the frame ([`CLIENT_HELLO_LEN`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        self.version.to_be_bytes().to_vec()
    }

    /// Decodes the frame.
    pub fn decode(frame: &[u8]) -> Result<Self, HelloDecodeError> {
        let mut r = Reader::new(frame);
        let version = r.u16()?;
        r.finish()?;
        Ok(Self { version })
    }

    /// The relay's step: accepts the client's choice if the relay offered it.
    pub fn accept(&self, offered: VersionRange) -> Result<ProtocolVersion, VersionError> {
        if offered.contains(self.version) {
            Ok(ProtocolVersion(self.version))
        } else {
            Err(VersionError::NoCommonVersion {
                ours_min: offered.min,
                ours_max: offered.max,
                theirs_min: self.version,
                theirs_max: self.version,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: u16, max: u16) -> VersionRange {
        VersionRange::new(min, max).unwrap()
    }

    #[test]
    fn picks_the_highest_common_version() {
        assert_eq!(negotiate(range(1, 3), range(2, 5)).unwrap().get(), 3);
        assert_eq!(negotiate(range(2, 5), range(1, 3)).unwrap().get(), 3);
        assert_eq!(
            negotiate(SUPPORTED_VERSIONS, SUPPORTED_VERSIONS)
                .unwrap()
                .get(),
            PROTOCOL_VERSION
        );
        assert!(matches!(
            negotiate(range(1, 1), range(2, 3)),
            Err(VersionError::NoCommonVersion { .. })
        ));
        assert!(matches!(
            negotiate(range(4, 9), range(2, 3)),
            Err(VersionError::NoCommonVersion { .. })
        ));
        assert_eq!(
            VersionRange::new(0, 1),
            Err(VersionError::InvalidRange { min: 0, max: 1 })
        );
        assert_eq!(
            VersionRange::new(3, 2),
            Err(VersionError::InvalidRange { min: 3, max: 2 })
        );
    }

    #[test]
    fn hellos_round_trip_and_relay_checks_the_choice() {
        let hello = RelayHello {
            versions: range(1, 4),
            session_key: DhPublic::from_bytes([5; 32]),
        };
        let bytes = hello.encode();
        assert_eq!(bytes.len(), RELAY_HELLO_LEN);
        assert_eq!(RelayHello::decode(&bytes).unwrap(), hello);
        let version = hello.negotiate(SUPPORTED_VERSIONS).unwrap();
        let reply = ClientHello::new(version);
        assert_eq!(reply.encode().len(), CLIENT_HELLO_LEN);
        let reply = ClientHello::decode(&reply.encode()).unwrap();
        assert_eq!(reply.accept(hello.versions).unwrap(), version);
        assert!(ClientHello { version: 5 }.accept(hello.versions).is_err());
        assert!(ClientHello { version: 0 }.accept(hello.versions).is_err());
    }

    #[test]
    fn malformed_hellos_are_refused() {
        let bytes = RelayHello {
            versions: range(1, 1),
            session_key: DhPublic::from_bytes([5; 32]),
        }
        .encode();
        for cut in 0..bytes.len() {
            assert!(RelayHello::decode(&bytes[..cut]).is_err());
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(RelayHello::decode(&long).is_err());
        let mut empty = bytes;
        empty[..4].copy_from_slice(&[0, 2, 0, 1]);
        assert!(matches!(
            RelayHello::decode(&empty),
            Err(HelloDecodeError::Version(_))
        ));
        assert!(ClientHello::decode(&[0]).is_err());
        assert!(ClientHello::decode(&[0, 1, 0]).is_err());
    }
}
