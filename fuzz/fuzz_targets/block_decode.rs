//! Arbitrary bytes as a stream of blocks into the FrameDecoder; every frame that comes
//! out is decoded as a command, a reply, a hello and an address. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passage_wire::{BLOCK_LEN, Block, FrameDecoder};
use passage_wire_fuzz::check_frame;

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new();
    for chunk in data.chunks(BLOCK_LEN) {
        // A short last chunk is zero-padded to a whole block.
        let mut block = Block::zeroed();
        block.as_bytes_mut()[..chunk.len()].copy_from_slice(chunk);
        match decoder.handle_block(&block) {
            Ok(()) => {
                while let Some(frame) = decoder.poll_frame() {
                    check_frame(&frame);
                }
            }
            Err(error) => {
                // Sticky: the failed block delivered nothing, and every later block fails.
                assert!(decoder.poll_frame().is_none());
                assert_eq!(decoder.handle_block(&Block::zeroed()), Err(error));
                return;
            }
        }
    }
});
