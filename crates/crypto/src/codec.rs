//! The one bounded reader and writer every Passage binary format goes through.
//!
//! Untrusted bytes are never indexed directly: a [`Reader`] hands out exactly the
//! number of bytes asked for or a [`DecodeError`], and [`Reader::finish`] refuses
//! trailing bytes. Integers are big-endian. A variable-length field is always a
//! length prefix followed by the bytes, and the caller names the largest length it
//! accepts, so no length read from the wire can make us allocate or read more than
//! a named limit.
//!
//! ```
//! use passage_crypto::codec::{Reader, Writer};
//! let mut w = Writer::new();
//! w.put_u8(7);
//! w.put_bytes_u8(b"queue").unwrap();
//! let bytes = w.into_vec();
//! let mut r = Reader::new(&bytes);
//! assert_eq!(r.u8().unwrap(), 7);
//! assert_eq!(r.bytes_u8(16).unwrap(), b"queue");
//! r.finish().unwrap();
//! ```

/// Why a byte string could not be decoded. Every variant is a fault of the input,
/// never of the caller; none of them carries the input bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended `needed` bytes too early.
    #[error("input truncated: {needed} more bytes needed")]
    Truncated {
        /// How many more bytes the field needed.
        needed: usize,
    },
    /// Bytes were left after the last field.
    #[error("{count} unexpected trailing bytes")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
    /// A length prefix exceeded the limit for its field.
    #[error("length {len} exceeds the limit of {max} for this field")]
    TooLong {
        /// The length found in the input.
        len: usize,
        /// The largest length the field accepts.
        max: usize,
    },
    /// A tag, flag or enum value is not one this version knows.
    #[error("unknown value {value} for {field}")]
    UnknownValue {
        /// The field that held the value.
        field: &'static str,
        /// The value found.
        value: u32,
    },
    /// A field is well-formed bytes but not a valid value (a bad key, say).
    #[error("invalid {field}")]
    Invalid {
        /// The field that was rejected.
        field: &'static str,
    },
}

/// Why a value could not be encoded: a caller handed a field longer than its format allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a field of {len} bytes does not fit a length prefix of at most {max}")]
pub struct EncodeError {
    /// The length handed in.
    pub len: usize,
    /// The largest length the prefix can carry.
    pub max: usize,
}

/// A cursor over untrusted bytes that never reads past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Takes exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.rest.len() {
            return Err(DecodeError::Truncated {
                needed: n - self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Takes exactly `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads `N` bytes into a new box: one allocation and one copy (no zeroed array on
    /// the stack first), for the large fixed-size fields of the wire (a message body).
    pub fn boxed_array<const N: usize>(&mut self) -> Result<Box<[u8; N]>, DecodeError> {
        let bytes: Box<[u8]> = Box::from(self.take(N)?);
        // `take` gave exactly N bytes, so this cannot fail.
        bytes
            .try_into()
            .map_err(|_| DecodeError::Invalid { field: "array" })
    }

    /// Takes every byte that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// A reader over the next `n` bytes; this reader moves past them.
    pub fn sub(&mut self, n: usize) -> Result<Reader<'a>, DecodeError> {
        self.take(n).map(Reader::new)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a one-byte length prefix, checks it against `max`, and takes that many bytes.
    pub fn bytes_u8(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u8()?);
        self.bounded(len, max)
    }

    /// Reads a two-byte length prefix, checks it against `max`, and takes that many bytes.
    pub fn bytes_u16(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16()?);
        self.bounded(len, max)
    }

    fn bounded(&mut self, len: usize, max: usize) -> Result<&'a [u8], DecodeError> {
        if len > max {
            return Err(DecodeError::TooLong { len, max });
        }
        self.take(len)
    }

    /// Ends the read: any byte left over is an error.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                count: self.rest.len(),
            })
        }
    }
}

/// Builds an encoding; the counterpart of [`Reader`].
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends raw bytes, no prefix.
    pub fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends one byte.
    pub fn put_u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a big-endian `u16`.
    pub fn put_u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    /// Appends a big-endian `u32`.
    pub fn put_u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    /// Appends a big-endian `u64`.
    pub fn put_u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }

    /// Appends a one-byte length prefix and the bytes.
    pub fn put_bytes_u8(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let len = u8::try_from(bytes.len()).map_err(|_| EncodeError {
            len: bytes.len(),
            max: usize::from(u8::MAX),
        })?;
        self.put_u8(len);
        self.put(bytes);
        Ok(())
    }

    /// Appends a two-byte length prefix and the bytes.
    pub fn put_bytes_u16(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(bytes.len()).map_err(|_| EncodeError {
            len: bytes.len(),
            max: usize::from(u16::MAX),
        })?;
        self.put_u16(len);
        self.put(bytes);
        Ok(())
    }

    /// The bytes written.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the bytes written.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boxed_array_is_the_array_and_refuses_short_input() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let mut r = Reader::new(&bytes);
        let boxed: Box<[u8; 3904]> = r.boxed_array().unwrap();
        assert_eq!(boxed[..], bytes[..3904]);
        assert_eq!(r.remaining(), 5000 - 3904);
        assert_eq!(
            r.boxed_array::<3904>(),
            Err(DecodeError::Truncated {
                needed: 3904 - (5000 - 3904)
            })
        );
    }

    #[test]
    fn reads_exactly_and_rejects_trailing_bytes() {
        let mut r = Reader::new(&[1, 0, 2, 3]);
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 2);
        assert_eq!(
            r.clone().finish(),
            Err(DecodeError::TrailingBytes { count: 1 })
        );
        assert_eq!(r.u32(), Err(DecodeError::Truncated { needed: 3 }));
    }

    #[test]
    fn length_prefix_at_and_past_the_limit() {
        let mut w = Writer::new();
        w.put_bytes_u16(&[9; 5]).unwrap();
        let bytes = w.into_vec();
        assert_eq!(Reader::new(&bytes).bytes_u16(5).unwrap(), &[9; 5]);
        assert_eq!(
            Reader::new(&bytes).bytes_u16(4),
            Err(DecodeError::TooLong { len: 5, max: 4 })
        );
        assert_eq!(
            Writer::new().put_bytes_u8(&[0; 256]),
            Err(EncodeError { len: 256, max: 255 })
        );
    }
}
