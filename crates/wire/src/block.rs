//! The wire block: every unit on the connection is exactly [`BLOCK_LEN`] bytes.
//!
//! A [`Block`] is only a container; [`crate::framing`] gives its bytes a meaning and
//! checks them (content length, segment headers, zero padding).
//!
//! # Reuse
//!
//! A sender that is done with written blocks hands them back with [`Block::recycle`];
//! the [`FrameEncoder`](crate::FrameEncoder) on the same thread then fills one of those
//! instead of a fresh allocation (see `spare.rs`): at most [`SPARE_BLOCKS_PER_THREAD`]
//! per thread (256 KiB), whatever the number of connections. A reused block is
//! overwritten whole (header, content and zero padding) before it is sent again.

use std::cell::RefCell;

use crate::spare;

/// Length of every block on the wire, whatever it carries. A receipt, a text and a voice
/// chunk look the same to the network, so sizes reveal nothing. 4096 bytes holds one
/// end-to-end envelope ([`passage_crypto::ENVELOPE_LEN`]) plus the protocol overhead.
pub const BLOCK_LEN: usize = 4096;

/// Written blocks kept per thread for reuse by the frame encoder, at most.
pub const SPARE_BLOCKS_PER_THREAD: usize = 64;

thread_local! {
    /// Blocks handed back by [`Block::recycle`] on this thread.
    static SPARE_BLOCKS: RefCell<Vec<Box<[u8; BLOCK_LEN]>>> = const { RefCell::new(Vec::new()) };
}

/// One wire block of exactly [`BLOCK_LEN`] bytes, boxed so moving it is cheap.
///
/// Any 4096 bytes are a `Block`; whether they are a *valid* block is decided by
/// [`FrameDecoder::handle_block`](crate::FrameDecoder::handle_block).
#[derive(Clone, PartialEq, Eq)]
pub struct Block(Box<[u8; BLOCK_LEN]>);

/// A byte string handed to [`Block::from_slice`] was not [`BLOCK_LEN`] bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a block is {BLOCK_LEN} bytes, got {actual}")]
pub struct BlockLengthError {
    /// The length handed in.
    pub actual: usize,
}

impl Block {
    /// A block of zeros: valid on the wire as an empty block (cover traffic).
    pub fn zeroed() -> Self {
        Self(Box::new([0u8; BLOCK_LEN]))
    }

    /// Wraps block bytes.
    pub fn from_bytes(bytes: Box<[u8; BLOCK_LEN]>) -> Self {
        Self(bytes)
    }

    /// Copies a block out of a slice (as read from a transport), checking its length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, BlockLengthError> {
        let array: [u8; BLOCK_LEN] = bytes.try_into().map_err(|_| BlockLengthError {
            actual: bytes.len(),
        })?;
        Ok(Self(Box::new(array)))
    }

    /// Hands back a block that has been written (or is no longer needed) so a frame
    /// encoder on this thread can refill it instead of allocating. Beyond
    /// [`SPARE_BLOCKS_PER_THREAD`] spare blocks it is freed.
    pub fn recycle(self) {
        spare::give(&SPARE_BLOCKS, self.0, SPARE_BLOCKS_PER_THREAD);
    }

    /// A block's storage to overwrite whole: a recycled one if this thread has one,
    /// else a fresh (zeroed) allocation.
    pub(crate) fn spare_storage() -> Box<[u8; BLOCK_LEN]> {
        spare::take(&SPARE_BLOCKS).unwrap_or_else(|| Box::new([0u8; BLOCK_LEN]))
    }

    /// The block bytes, to hand to a transport.
    pub fn as_bytes(&self) -> &[u8; BLOCK_LEN] {
        &self.0
    }

    /// The block bytes, mutable: to read a block from a transport in place, or to
    /// alter one in flight in a test.
    pub fn as_bytes_mut(&mut self) -> &mut [u8; BLOCK_LEN] {
        &mut self.0
    }
}

impl core::fmt::Debug for Block {
    // A block carries ids, keys and message bytes: never print them.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Block(..)")
    }
}

impl AsRef<[u8]> for Block {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_slice_takes_exactly_one_block() {
        assert!(Block::from_slice(&[0; BLOCK_LEN]).is_ok());
        assert_eq!(
            Block::from_slice(&[0; BLOCK_LEN + 1]),
            Err(BlockLengthError {
                actual: BLOCK_LEN + 1
            })
        );
        assert_eq!(
            Block::from_slice(&[0; BLOCK_LEN - 1]),
            Err(BlockLengthError {
                actual: BLOCK_LEN - 1
            })
        );
        assert_eq!(format!("{:?}", Block::zeroed()), "Block(..)");
    }
}
