//! The unit the transport moves: one [`Block`] of exactly [`BLOCK_LEN`]
//! bytes, as defined by `passage-wire`. The transport never looks inside.

pub use passage_wire::{BLOCK_LEN, Block};

/// The bytes the transport writes for `block`.
pub(crate) fn as_bytes(block: &Block) -> &[u8; BLOCK_LEN] {
    block.as_bytes()
}

/// The block the transport hands up after reading exactly [`BLOCK_LEN`] bytes.
pub(crate) fn from_bytes(bytes: Box<[u8; BLOCK_LEN]>) -> Block {
    Block::from_bytes(bytes)
}
