//! The unit the transport moves: one block of exactly [`BLOCK_LEN`] bytes.
//!
//! `passage-wire` owns the block format (length prefix, padding, codec). Until
//! it exports `Block` and `BLOCK_LEN`, this module holds a minimal stand-in
//! with the same shape (`Block([u8; BLOCK_LEN])`); the transport only touches
//! it through [`as_bytes`] and [`from_bytes`] below, so switching to the wire
//! type is a change to this file alone.

/// Size of every block on the wire, in bytes. A receipt, a text and a voice
/// chunk all travel as blocks of this size, so the network learns nothing
/// from frame lengths.
pub const BLOCK_LEN: usize = 4096;

/// One fixed-size block: the only unit a [`BlockStream`](crate::BlockStream)
/// sends or receives. The transport never looks inside.
#[derive(Clone, PartialEq, Eq)]
pub struct Block(pub [u8; BLOCK_LEN]);

impl Block {
    /// Wraps exactly [`BLOCK_LEN`] bytes.
    pub fn from_bytes(bytes: [u8; BLOCK_LEN]) -> Self {
        Self(bytes)
    }

    /// The block's bytes.
    pub fn as_bytes(&self) -> &[u8; BLOCK_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Contents are ciphertext or padding and may be large: never print them.
        f.write_str("Block(..)")
    }
}

/// The bytes the transport writes for `block`.
pub(crate) fn as_bytes(block: &Block) -> &[u8; BLOCK_LEN] {
    block.as_bytes()
}

/// The block the transport hands up after reading exactly [`BLOCK_LEN`] bytes.
pub(crate) fn from_bytes(bytes: [u8; BLOCK_LEN]) -> Block {
    Block::from_bytes(bytes)
}
