//! Frames in blocks: a sans-IO [`FrameEncoder`] and [`FrameDecoder`].
//!
//! A *frame* is one encoded message (a command, a reply, a hello). Frames travel in
//! fixed [`BLOCK_LEN`]-byte blocks: several small frames share a block, and a frame
//! longer than one block spans several consecutive blocks.
//!
//! # Byte layout of a block
//!
//! ```text
//! offset  size  field
//! 0       2     content_len   u16 BE, 0..=4094: bytes of segments that follow
//! 2       n     segments      content_len bytes, each:
//!                 kind  u8     1 complete, 2 first, 3 middle, 4 last
//!                 len   u16 BE 1..=4091
//!                 bytes len
//! 2+n     rest  padding       all zero, checked on decode
//! ```
//!
//! A frame that fits is one `complete` segment. A longer frame is a `first` segment
//! that fills the rest of its block, zero or more `middle` segments that each fill a
//! whole block, and a `last` segment that opens the next block (other segments may
//! follow it). A block with `content_len = 0` is empty (cover traffic).
//!
//! The decoder refuses anything else: a continuation without a `first`, a new frame
//! while one is open, a `first` or `middle` that does not fill its block, a `last` that
//! does not open its block, an empty segment, non-zero padding, and a frame longer than
//! [`MAX_FRAME_LEN`]. Each of these is a fault of the peer and ends the connection: the
//! error is sticky, and a block that fails delivers none of its frames.
//!
//! # Calling order
//!
//! Sender: [`FrameEncoder::push_frame`] for each frame, [`FrameEncoder::flush`] when
//! nothing more is coming soon, then [`FrameEncoder::poll_block`] until `None`, writing
//! each block to the transport.
//!
//! Receiver: [`FrameDecoder::handle_block`] for each block read, then
//! [`FrameDecoder::poll_frame`] until `None` before the next block.

use std::cell::RefCell;
use std::collections::VecDeque;

use passage_crypto::codec::{DecodeError, Reader};

use crate::block::{BLOCK_LEN, Block};
use crate::spare;

/// Bytes before the segments: the `u16` content length.
pub const BLOCK_HEADER_LEN: usize = 2;

/// Bytes before each segment's data: kind (`u8`) and length (`u16`).
pub const SEGMENT_HEADER_LEN: usize = 3;

/// Most segment bytes one block holds: [`BLOCK_LEN`] less the block header.
pub const MAX_BLOCK_CONTENT_LEN: usize = BLOCK_LEN - BLOCK_HEADER_LEN;

/// Longest frame that fits one block as a single `complete` segment (4091 bytes), and
/// the longest any one segment may be.
pub const MAX_SEGMENT_LEN: usize = MAX_BLOCK_CONTENT_LEN - SEGMENT_HEADER_LEN;

/// Longest frame, in bytes (64 KiB). Every version-1 message fits one block; the bound
/// leaves room for larger frames later while capping what a hostile peer can make us
/// buffer for one unfinished frame.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// Why a block was refused. Every variant is a fault of the peer and is fatal for the
/// connection; none carries block bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A header or segment was cut short, or a length field was out of bounds.
    #[error("malformed block: {0}")]
    Malformed(#[from] DecodeError),
    /// The content length exceeds [`MAX_BLOCK_CONTENT_LEN`].
    #[error("block content length {len} exceeds {MAX_BLOCK_CONTENT_LEN}")]
    ContentTooLong {
        /// The length found.
        len: usize,
    },
    /// A padding byte after the content was not zero.
    #[error("non-zero block padding")]
    NonZeroPadding,
    /// A segment had no bytes.
    #[error("empty segment")]
    EmptySegment,
    /// A `middle` or `last` segment came with no frame open.
    #[error("continuation segment without a first segment")]
    UnexpectedContinuation,
    /// A `complete` or `first` segment, or an empty block, came while a frame was open.
    #[error("a new frame started before the open one ended")]
    UnfinishedFrame,
    /// A `first` or `middle` segment did not fill its block, or a `last` did not open it.
    #[error("segment out of place in its block")]
    MisplacedSegment,
    /// A frame grew past [`MAX_FRAME_LEN`].
    #[error("frame exceeds {MAX_FRAME_LEN} bytes")]
    FrameTooLong,
}

/// Why [`FrameEncoder::push_frame`] refused a frame: the caller's mistake, nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameEncodeError {
    /// A frame must have at least one byte.
    #[error("empty frame")]
    Empty,
    /// The frame is longer than [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds {MAX_FRAME_LEN}")]
    TooLong {
        /// The frame's length.
        len: usize,
    },
}

/// Segment kinds. Zero is not a kind, so zero bytes never read as a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegmentKind {
    Complete = 1,
    First = 2,
    Middle = 3,
    Last = 4,
}

impl SegmentKind {
    fn from_u8(value: u8) -> Result<Self, DecodeError> {
        match value {
            1 => Ok(Self::Complete),
            2 => Ok(Self::First),
            3 => Ok(Self::Middle),
            4 => Ok(Self::Last),
            _ => Err(DecodeError::UnknownValue {
                field: "segment kind",
                value: u32::from(value),
            }),
        }
    }
}

/// Packs frames into blocks. Sans-IO: the caller moves the blocks.
///
/// Frames are packed greedily: a frame goes into the block being filled, and if it
/// does not fit, it spans into the next blocks. A block is ready when it is full or
/// after [`flush`](Self::flush).
///
/// Segments are written straight into the block being filled: a
/// [recycled](Block::recycle) one of this thread if there is one, else a fresh
/// allocation, taken at its first segment. When it closes, its header is set and the
/// rest zeroed. Between frames an encoder holds no buffer of its own.
#[derive(Default)]
pub struct FrameEncoder {
    /// Blocks ready to send.
    ready: VecDeque<Block>,
    /// The block being filled, once a segment is in it.
    filling: Option<Filling>,
}

/// A block being filled: its bytes and how many content bytes (after the header) are
/// written, at most [`MAX_BLOCK_CONTENT_LEN`].
struct Filling {
    bytes: Box<[u8; BLOCK_LEN]>,
    len: usize,
}

/// Counts only: the blocks hold a connection's traffic.
impl core::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameEncoder")
            .field("ready_blocks", &self.ready.len())
            .field("filled", &self.filled())
            .finish()
    }
}

impl FrameEncoder {
    /// An encoder with nothing queued.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues one frame (1..=[`MAX_FRAME_LEN`] bytes).
    pub fn push_frame(&mut self, frame: &[u8]) -> Result<(), FrameEncodeError> {
        self.push_frame_parts(&[frame])
    }

    /// Queues one frame given in consecutive parts (the frame is their concatenation,
    /// 1..=[`MAX_FRAME_LEN`] bytes): a caller holding a frame's head and body in separate
    /// buffers need not join them first. The blocks are the same as for
    /// [`push_frame`](Self::push_frame) of the joined frame.
    pub fn push_frame_parts(&mut self, parts: &[&[u8]]) -> Result<(), FrameEncodeError> {
        let total = parts
            .iter()
            .try_fold(0usize, |sum, part| sum.checked_add(part.len()))
            .unwrap_or(usize::MAX);
        if total == 0 {
            return Err(FrameEncodeError::Empty);
        }
        if total > MAX_FRAME_LEN {
            return Err(FrameEncodeError::TooLong { len: total });
        }
        let mut source = Parts { parts, offset: 0 };
        let mut rest = total;
        let mut first = true;
        while rest > 0 {
            let Some(space) = MAX_BLOCK_CONTENT_LEN
                .checked_sub(self.filled())
                .and_then(|free| free.checked_sub(SEGMENT_HEADER_LEN))
                .filter(|&space| space > 0)
            else {
                self.close_block();
                continue;
            };
            let ends = rest <= space;
            let kind = match (first, ends) {
                (true, true) => SegmentKind::Complete,
                (true, false) => SegmentKind::First,
                (false, false) => SegmentKind::Middle,
                (false, true) => SegmentKind::Last,
            };
            let len = rest.min(space);
            self.put_segment(kind, len, &mut source);
            rest -= len;
            // A frame that ends here leaves the block open for the next one, unless not
            // even a segment header would fit; one that goes on fills the block.
            if !ends || self.filled() + SEGMENT_HEADER_LEN >= MAX_BLOCK_CONTENT_LEN {
                self.close_block();
            }
            first = false;
        }
        Ok(())
    }

    /// Closes the partly filled block, if any, so [`poll_block`](Self::poll_block) yields it.
    pub fn flush(&mut self) {
        self.close_block();
    }

    /// The next block to send, if one is ready.
    pub fn poll_block(&mut self) -> Option<Block> {
        self.ready.pop_front()
    }

    /// How many blocks are ready to send: a caller can stop accepting frames above a
    /// limit of its own.
    pub fn pending_blocks(&self) -> usize {
        self.ready.len()
    }

    /// Whether a partly filled block is waiting for more frames or a flush.
    pub fn has_partial_block(&self) -> bool {
        self.filling.is_some()
    }

    /// Content bytes in the block being filled (0 if none is).
    fn filled(&self) -> usize {
        self.filling.as_ref().map_or(0, |filling| filling.len)
    }

    /// Writes a segment of the next `len` bytes of `source` (at most MAX_SEGMENT_LEN, and
    /// no more than the block's free space: both checked by the caller, so `len` fits a
    /// u16 and the segment fits the block).
    fn put_segment(&mut self, kind: SegmentKind, len: usize, source: &mut Parts<'_>) {
        let filling = self.filling.get_or_insert_with(|| Filling {
            bytes: Block::spare_storage(),
            len: 0,
        });
        let at = BLOCK_HEADER_LEN + filling.len;
        let end = at + SEGMENT_HEADER_LEN + len;
        debug_assert!(
            end <= BLOCK_LEN,
            "the caller sized the segment to the free space"
        );
        if let Some(segment) = filling.bytes.get_mut(at..end) {
            let (header, data) = segment.split_at_mut(SEGMENT_HEADER_LEN);
            header[0] = kind as u8;
            header[1..].copy_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
            source.copy_to(data);
            filling.len += SEGMENT_HEADER_LEN + len;
        }
    }

    /// Sets the header of the block being filled and zeroes the rest (its storage may be
    /// a recycled block), then queues it. Nothing happens if no block is being filled.
    fn close_block(&mut self) {
        let Some(Filling { mut bytes, len }) = self.filling.take() else {
            return;
        };
        let (header, body) = bytes.split_at_mut(BLOCK_HEADER_LEN);
        header.copy_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
        if let Some(padding) = body.get_mut(len..) {
            padding.fill(0);
        }
        self.ready.push_back(Block::from_bytes(bytes));
    }
}

/// The bytes of a frame given in parts, consumed front to back.
struct Parts<'a> {
    parts: &'a [&'a [u8]],
    /// Bytes of `parts[0]` already consumed.
    offset: usize,
}

impl Parts<'_> {
    /// Fills `out` with the next `out.len()` bytes (the caller asks for no more than
    /// there are).
    fn copy_to(&mut self, mut out: &mut [u8]) {
        while !out.is_empty() {
            let Some((part, later)) = self.parts.split_first() else {
                return;
            };
            let available = part.get(self.offset..).unwrap_or_default();
            let take = available.len().min(out.len());
            let (dst, rest) = out.split_at_mut(take);
            dst.copy_from_slice(&available[..take]);
            out = rest;
            if take == available.len() {
                self.parts = later;
                self.offset = 0;
            } else {
                self.offset += take;
            }
        }
    }
}

/// Frame buffers kept per thread for large frames, at most (8 KiB each).
pub const SPARE_FRAMES_PER_THREAD: usize = 16;

/// The buffer a large frame is decoded into: two blocks' worth, enough for any
/// version-1 frame (a `SEND` fills most of a block, or spans two); a longer frame grows
/// it.
const LARGE_FRAME_CAPACITY: usize = BLOCK_LEN * 2;

/// Frames in one block from this length on (a `SEND`) are decoded into a spare buffer
/// of [`LARGE_FRAME_CAPACITY`]; shorter ones, which the allocator's per-thread cache
/// serves fast, into one of their size.
const LARGE_FRAME_LEN: usize = 1024;

thread_local! {
    /// Buffers handed back by [`FrameDecoder::recycle`] on this thread.
    static SPARE_FRAMES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Checks blocks and reassembles frames. Sans-IO: the caller reads the blocks.
///
/// Memory is bounded: one open frame of at most [`MAX_FRAME_LEN`] bytes, plus the
/// frames of the last block (at most `MAX_BLOCK_CONTENT_LEN / 4`) if the caller drains
/// [`poll_frame`](Self::poll_frame) after each block, as it should.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    ready: VecDeque<Vec<u8>>,
    /// The frame being reassembled from `first`, `middle` and `last` segments.
    partial: Option<Vec<u8>>,
    /// The first error; every later call returns it.
    error: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks one block and queues the frames it completes. A block either delivers
    /// all of its frames or, on error, none; the error is then returned forever.
    pub fn handle_block(&mut self, block: &Block) -> Result<(), FrameError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        match self.parse(block) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.error = Some(error);
                self.partial = None;
                Err(error)
            }
        }
    }

    /// The next complete frame, if any.
    pub fn poll_frame(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    /// Hands back a frame once read, so a large frame later on this thread reuses its
    /// buffer instead of allocating one (see `spare.rs`). Only buffers the decoder made
    /// for large frames are kept, [`SPARE_FRAMES_PER_THREAD`] at most, and emptied
    /// first; any other frame is simply dropped.
    pub fn recycle(mut frame: Vec<u8>) {
        if frame.capacity() == LARGE_FRAME_CAPACITY {
            frame.clear();
            spare::give(&SPARE_FRAMES, frame, SPARE_FRAMES_PER_THREAD);
        }
    }

    /// How many complete frames wait for [`poll_frame`](Self::poll_frame).
    pub fn pending_frames(&self) -> usize {
        self.ready.len()
    }

    /// Whether a frame spanning several blocks has started and not yet ended.
    pub fn is_mid_frame(&self) -> bool {
        self.partial.is_some()
    }

    /// The sticky error, if the connection has failed.
    pub fn error(&self) -> Option<FrameError> {
        self.error
    }

    fn parse(&mut self, block: &Block) -> Result<(), FrameError> {
        let mut r = Reader::new(block.as_bytes());
        let content_len = usize::from(r.u16()?);
        if content_len > MAX_BLOCK_CONTENT_LEN {
            return Err(FrameError::ContentTooLong { len: content_len });
        }
        let mut content = r.sub(content_len)?;
        // An OR over every byte, without an early exit: the compiler turns it into wide
        // vector operations (a short-circuiting `any` goes byte by byte, and most of a
        // block with one small command is padding).
        if r.rest().iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return Err(FrameError::NonZeroPadding);
        }
        let full = content_len == MAX_BLOCK_CONTENT_LEN;

        // First pass: check every rule against a simulated state; nothing changes yet.
        let mut open_len = self.partial.as_ref().map(Vec::len);
        if open_len.is_some() && content_len == 0 {
            return Err(FrameError::UnfinishedFrame);
        }
        let mut segments: Vec<(SegmentKind, &[u8])> = Vec::new();
        while content.remaining() > 0 {
            let kind = SegmentKind::from_u8(content.u8()?)?;
            let bytes = content.bytes_u16(MAX_SEGMENT_LEN)?;
            if bytes.is_empty() {
                return Err(FrameError::EmptySegment);
            }
            let opens_block = segments.is_empty();
            let ends_block = content.remaining() == 0;
            open_len = match (kind, open_len) {
                (SegmentKind::Complete | SegmentKind::First, Some(_)) => {
                    return Err(FrameError::UnfinishedFrame);
                }
                (SegmentKind::Middle | SegmentKind::Last, None) => {
                    return Err(FrameError::UnexpectedContinuation);
                }
                (SegmentKind::Complete, None) => None,
                (SegmentKind::First, None) => {
                    if !(ends_block && full) {
                        return Err(FrameError::MisplacedSegment);
                    }
                    Some(bytes.len())
                }
                (SegmentKind::Middle, Some(len)) => {
                    if !(opens_block && ends_block && full) {
                        return Err(FrameError::MisplacedSegment);
                    }
                    Some(grow(len, bytes.len())?)
                }
                (SegmentKind::Last, Some(len)) => {
                    if !opens_block {
                        return Err(FrameError::MisplacedSegment);
                    }
                    grow(len, bytes.len())?;
                    None
                }
            };
            segments.push((kind, bytes));
        }

        // Second pass: the block is valid, apply it.
        for (kind, bytes) in segments {
            match kind {
                SegmentKind::Complete if bytes.len() < LARGE_FRAME_LEN => {
                    self.ready.push_back(bytes.to_vec());
                }
                SegmentKind::Complete => self.ready.push_back(large_frame(bytes)),
                SegmentKind::First => self.partial = Some(large_frame(bytes)),
                SegmentKind::Middle => {
                    if let Some(frame) = self.partial.as_mut() {
                        frame.extend_from_slice(bytes);
                    }
                }
                SegmentKind::Last => {
                    if let Some(mut frame) = self.partial.take() {
                        frame.extend_from_slice(bytes);
                        self.ready.push_back(frame);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A buffer for a large frame, a spare one if this thread has one, holding `bytes`.
fn large_frame(bytes: &[u8]) -> Vec<u8> {
    let mut frame =
        spare::take(&SPARE_FRAMES).unwrap_or_else(|| Vec::with_capacity(LARGE_FRAME_CAPACITY));
    frame.extend_from_slice(bytes);
    frame
}

/// Length of an open frame after adding a segment, bounded by [`MAX_FRAME_LEN`].
fn grow(len: usize, add: usize) -> Result<usize, FrameError> {
    len.checked_add(add)
        .filter(|&total| total <= MAX_FRAME_LEN)
        .ok_or(FrameError::FrameTooLong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::SPARE_BLOCKS_PER_THREAD;

    fn encode(frames: &[&[u8]]) -> Vec<Block> {
        let mut enc = FrameEncoder::new();
        for frame in frames {
            enc.push_frame(frame).unwrap();
        }
        enc.flush();
        std::iter::from_fn(|| enc.poll_block()).collect()
    }

    fn decode(blocks: &[Block]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut dec = FrameDecoder::new();
        let mut frames = Vec::new();
        for block in blocks {
            dec.handle_block(block)?;
            frames.extend(std::iter::from_fn(|| dec.poll_frame()));
        }
        assert!(!dec.is_mid_frame());
        Ok(frames)
    }

    /// A block built by hand from (kind, bytes) segments.
    fn raw_block(segments: &[(u8, &[u8])]) -> Block {
        let mut content = Vec::new();
        for (kind, bytes) in segments {
            content.push(*kind);
            content.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_be_bytes());
            content.extend_from_slice(bytes);
        }
        let mut block = Block::zeroed();
        let b = block.as_bytes_mut();
        b[..2].copy_from_slice(&u16::try_from(content.len()).unwrap().to_be_bytes());
        b[2..2 + content.len()].copy_from_slice(&content);
        block
    }

    /// The encoder's blocks are byte for byte the layout built by hand (header, segments,
    /// zero padding), a spanning frame's too; its `Debug` shows no byte of them.
    #[test]
    fn encoded_blocks_are_byte_for_byte_the_layout() {
        assert_eq!(
            encode(&[b"one", b"two"]),
            vec![raw_block(&[(1, b"one"), (1, b"two")])]
        );
        let frame: Vec<u8> = (0..MAX_SEGMENT_LEN + 10).map(|i| i as u8).collect();
        assert_eq!(
            encode(&[b"x", &frame]),
            vec![
                raw_block(&[(1, b"x"), (2, &frame[..MAX_SEGMENT_LEN - 4])]),
                raw_block(&[(4, &frame[MAX_SEGMENT_LEN - 4..])]),
            ]
        );
        let mut encoder = FrameEncoder::new();
        encoder.push_frame(b"secret").unwrap();
        assert!(
            !format!("{encoder:?}").contains("115"),
            "Debug shows no bytes"
        );
    }

    /// A recycled block is overwritten whole: nothing it carried before survives in the
    /// padding or past the new content, and the encoder does reuse it.
    #[test]
    fn a_recycled_block_is_overwritten_whole() {
        let mut dirty = Vec::new();
        for _ in 0..SPARE_BLOCKS_PER_THREAD + 3 {
            let mut block = Block::zeroed();
            block.as_bytes_mut().fill(0xA5);
            dirty.push(block);
        }
        let first_storage = dirty[0].as_bytes().as_ptr();
        dirty.into_iter().for_each(Block::recycle);
        let frame: Vec<u8> = (0..MAX_SEGMENT_LEN + 10).map(|i| i as u8).collect();
        let mut encoded = Vec::new();
        for _ in 0..SPARE_BLOCKS_PER_THREAD + 3 {
            encoded.extend(encode(&[b"one", b"two"]));
            encoded.extend(encode(&[&frame]));
        }
        for pair in encoded.chunks(3) {
            assert_eq!(pair[0], raw_block(&[(1, b"one"), (1, b"two")]));
            assert_eq!(pair[1], raw_block(&[(2, &frame[..MAX_SEGMENT_LEN])]));
            assert_eq!(pair[2], raw_block(&[(4, &frame[MAX_SEGMENT_LEN..])]));
        }
        assert!(
            encoded
                .iter()
                .any(|block| block.as_bytes().as_ptr() == first_storage),
            "the encoder refills recycled blocks"
        );
    }

    /// A recycled frame buffer is emptied before reuse: a shorter large frame after a
    /// longer one decodes to exactly its own bytes, in the same buffer.
    #[test]
    fn a_recycled_frame_buffer_holds_only_the_next_frame() {
        let long = vec![0xEEu8; MAX_SEGMENT_LEN + 900];
        let short: Vec<u8> = (0..MAX_SEGMENT_LEN + 5).map(|i| i as u8).collect();
        let mut decoder = FrameDecoder::new();
        for block in encode(&[&long]) {
            decoder.handle_block(&block).unwrap();
        }
        let first = decoder.poll_frame().unwrap();
        assert_eq!(first, long);
        let storage = first.as_ptr();
        FrameDecoder::recycle(first);
        for block in encode(&[&short]) {
            decoder.handle_block(&block).unwrap();
        }
        let second = decoder.poll_frame().unwrap();
        assert_eq!(second, short);
        assert_eq!(second.as_ptr(), storage, "the buffer is reused");
        // A frame that fits one block is not kept: it was not made for spanning frames.
        FrameDecoder::recycle(b"small".to_vec());
        FrameDecoder::recycle(second);
        for block in encode(&[&long]) {
            decoder.handle_block(&block).unwrap();
        }
        let third = decoder.poll_frame().unwrap();
        assert_eq!(third.as_ptr(), storage);
        // A large frame within one block (a `SEND` that starts a block) too.
        FrameDecoder::recycle(third);
        let one_block = vec![0x33u8; 3_000];
        for block in encode(&[&one_block]) {
            decoder.handle_block(&block).unwrap();
        }
        let fourth = decoder.poll_frame().unwrap();
        assert_eq!((fourth.as_ptr(), fourth), (storage, one_block));
    }

    #[test]
    fn small_frames_share_a_block() {
        let blocks = encode(&[b"one", b"two", b"three"]);
        assert_eq!(blocks.len(), 1);
        assert_eq!(
            decode(&blocks).unwrap(),
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }

    #[test]
    fn largest_single_block_frame_and_one_past_it() {
        let frame = vec![7u8; MAX_SEGMENT_LEN];
        let blocks = encode(&[&frame]);
        assert_eq!(blocks.len(), 1);
        assert_eq!(decode(&blocks).unwrap(), vec![frame]);

        let frame = vec![7u8; MAX_SEGMENT_LEN + 1];
        let blocks = encode(&[&frame]);
        assert_eq!(blocks.len(), 2);
        assert_eq!(decode(&blocks).unwrap(), vec![frame]);
    }

    #[test]
    fn max_frame_len_at_the_limit_and_one_past_it() {
        let frame: Vec<u8> = (0..MAX_FRAME_LEN).map(|i| (i % 251) as u8).collect();
        let blocks = encode(&[b"x", &frame, b"y"]);
        assert_eq!(
            decode(&blocks).unwrap(),
            vec![b"x".to_vec(), frame.clone(), b"y".to_vec()]
        );

        let mut enc = FrameEncoder::new();
        assert_eq!(
            enc.push_frame(&vec![0; MAX_FRAME_LEN + 1]),
            Err(FrameEncodeError::TooLong {
                len: MAX_FRAME_LEN + 1
            })
        );
        assert_eq!(enc.push_frame(&[]), Err(FrameEncodeError::Empty));
        assert!(!enc.has_partial_block() && enc.pending_blocks() == 0);

        // A hostile peer sends one byte more than the limit: refused at the block that
        // crosses it, before it is buffered.
        let mut blocks = encode(&[&frame]);
        blocks.pop();
        let mut dec = FrameDecoder::new();
        for block in &blocks {
            dec.handle_block(block).unwrap();
        }
        let tail_len = MAX_FRAME_LEN - blocks.len() * MAX_SEGMENT_LEN;
        let mut at_limit = FrameDecoder::new();
        for block in &blocks {
            at_limit.handle_block(block).unwrap();
        }
        at_limit
            .handle_block(&raw_block(&[(4, &vec![1u8; tail_len])]))
            .unwrap();
        assert_eq!(at_limit.poll_frame().unwrap().len(), MAX_FRAME_LEN);
        let tail = vec![1u8; tail_len + 1];
        assert_eq!(
            dec.handle_block(&raw_block(&[(4, &tail)])),
            Err(FrameError::FrameTooLong)
        );
    }

    #[test]
    fn empty_block_is_cover_traffic() {
        assert_eq!(decode(&[Block::zeroed()]).unwrap(), Vec::<Vec<u8>>::new());
        assert!(encode(&[]).is_empty());
    }

    #[test]
    fn padding_must_be_zero() {
        let mut block = encode(&[b"hi"]).remove(0);
        block.as_bytes_mut()[BLOCK_LEN - 1] = 1;
        assert_eq!(decode(&[block]), Err(FrameError::NonZeroPadding));
    }

    #[test]
    fn segment_rules() {
        let full_first = vec![1u8; MAX_SEGMENT_LEN];
        // Continuation with nothing open.
        assert_eq!(
            decode(&[raw_block(&[(4, b"x")])]),
            Err(FrameError::UnexpectedContinuation)
        );
        assert_eq!(
            decode(&[raw_block(&[(3, &full_first)])]),
            Err(FrameError::UnexpectedContinuation)
        );
        // A first segment that does not fill its block.
        assert_eq!(
            decode(&[raw_block(&[(2, b"x")])]),
            Err(FrameError::MisplacedSegment)
        );
        // A complete frame while one is open.
        let first = raw_block(&[(2, &full_first)]);
        assert_eq!(
            decode(&[first.clone(), raw_block(&[(1, b"x")])]),
            Err(FrameError::UnfinishedFrame)
        );
        // An empty block while one is open.
        assert_eq!(
            decode(&[first.clone(), Block::zeroed()]),
            Err(FrameError::UnfinishedFrame)
        );
        // An empty segment.
        assert_eq!(
            decode(&[raw_block(&[(1, b"")])]),
            Err(FrameError::EmptySegment)
        );
        // A middle segment that does not fill its block.
        let mid = vec![2u8; MAX_SEGMENT_LEN - 4];
        assert_eq!(
            decode(&[first.clone(), raw_block(&[(3, &mid), (4, b"x")])]),
            Err(FrameError::MisplacedSegment)
        );
        // A last segment that does not open its block.
        assert_eq!(
            decode(&[first.clone(), raw_block(&[(4, b"x"), (4, b"y")])]),
            Err(FrameError::UnexpectedContinuation)
        );
        // Unknown kind, zero kind.
        assert!(matches!(
            decode(&[raw_block(&[(0, b"x")])]),
            Err(FrameError::Malformed(DecodeError::UnknownValue { .. }))
        ));
        assert!(matches!(
            decode(&[raw_block(&[(5, b"x")])]),
            Err(FrameError::Malformed(DecodeError::UnknownValue { .. }))
        ));
        // Content length past the block.
        let mut block = Block::zeroed();
        block.as_bytes_mut()[..2].copy_from_slice(&4095u16.to_be_bytes());
        assert_eq!(
            decode(&[block]),
            Err(FrameError::ContentTooLong { len: 4095 })
        );
    }

    #[test]
    fn errors_are_sticky_and_a_bad_block_delivers_nothing() {
        let mut dec = FrameDecoder::new();
        let mut bad = raw_block(&[(1, b"good"), (4, b"bad")]);
        assert_eq!(
            dec.handle_block(&bad),
            Err(FrameError::UnexpectedContinuation)
        );
        assert_eq!(dec.poll_frame(), None);
        bad = encode(&[b"fine"]).remove(0);
        assert_eq!(
            dec.handle_block(&bad),
            Err(FrameError::UnexpectedContinuation)
        );
        assert_eq!(dec.error(), Some(FrameError::UnexpectedContinuation));
        assert_eq!(dec.poll_frame(), None);
    }
}
