//! The unit the transport moves: one [`Block`] of exactly [`BLOCK_LEN`]
//! bytes, as defined by `passage-wire`. The transport never looks inside.

pub use passage_wire::{BLOCK_LEN, Block};

/// The bytes the transport writes for `block`.
pub(crate) fn as_bytes(block: &Block) -> &[u8; BLOCK_LEN] {
    block.as_bytes()
}
