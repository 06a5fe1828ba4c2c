//! Padding inside the AEAD, so every ciphertext of a kind has the same length.
//!
//! ```text
//! padded = length u16 ‖ plaintext ‖ zeros, exactly `padded_len` bytes
//! ```
//!
//! The padding sits inside the authenticated encryption, so only the holder of the
//! message key sees the real length; the relay and the network see a constant.

use zeroize::Zeroizing;

/// Bytes the length prefix takes.
pub const PADDING_OVERHEAD: usize = 2;

/// Why a plaintext could not be padded or a padded buffer not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaddingError {
    /// The plaintext does not fit the padded size.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The plaintext's length.
        len: usize,
        /// The most that fits.
        max: usize,
    },
    /// A padded buffer is malformed: its length prefix overruns or its padding is not zero.
    #[error("malformed padding")]
    Malformed,
}

/// The largest plaintext that fits `padded_len` bytes.
pub const fn max_plaintext_len(padded_len: usize) -> usize {
    padded_len.saturating_sub(PADDING_OVERHEAD)
}

/// Pads `plaintext` to exactly `padded_len` bytes.
pub fn pad(plaintext: &[u8], padded_len: usize) -> Result<Zeroizing<Vec<u8>>, PaddingError> {
    let max = max_plaintext_len(padded_len).min(usize::from(u16::MAX));
    let len = u16::try_from(plaintext.len())
        .ok()
        .filter(|l| usize::from(*l) <= max)
        .ok_or(PaddingError::TooLong {
            len: plaintext.len(),
            max,
        })?;
    let mut out = Zeroizing::new(Vec::with_capacity(padded_len));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(plaintext);
    out.resize(padded_len, 0);
    Ok(out)
}

/// Reads a padded buffer back, checking that every padding byte is zero.
pub fn unpad(padded: &[u8]) -> Result<&[u8], PaddingError> {
    let mut r = crate::codec::Reader::new(padded);
    let len = r.u16().map_err(|_| PaddingError::Malformed)?;
    let plaintext = r
        .take(usize::from(len))
        .map_err(|_| PaddingError::Malformed)?;
    if r.rest().iter().fold(0u8, |acc, b| acc | b) != 0 {
        return Err(PaddingError::Malformed);
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_and_past_the_limit() {
        let padded = pad(&[7; 98], 100).unwrap();
        assert_eq!(padded.len(), 100);
        assert_eq!(unpad(&padded).unwrap(), &[7; 98]);
        assert_eq!(
            pad(&[7; 99], 100),
            Err(PaddingError::TooLong { len: 99, max: 98 })
        );
        assert_eq!(unpad(&pad(b"", 100).unwrap()).unwrap(), b"");
    }

    #[test]
    fn nonzero_padding_and_overrun_are_refused() {
        let mut padded = pad(b"hi", 10).unwrap();
        padded[9] = 1;
        assert_eq!(unpad(&padded), Err(PaddingError::Malformed));
        assert_eq!(unpad(&[0, 9, 1, 2]), Err(PaddingError::Malformed));
        assert_eq!(unpad(&[0]), Err(PaddingError::Malformed));
    }
}
