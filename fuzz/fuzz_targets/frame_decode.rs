//! Arbitrary frames through FrameEncoder and FrameDecoder (they must come out
//! unchanged), then into every frame decoder. Input: repeated [len u16 BE, bytes],
//! where the top bit of len asks for a flush after the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passage_wire::{FrameDecoder, FrameEncoder, MAX_FRAME_LEN};
use passage_wire_fuzz::check_frame;

fuzz_target!(|data: &[u8]| {
    let mut frames: Vec<&[u8]> = Vec::new();
    let mut encoder = FrameEncoder::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let header = u16::from_be_bytes([rest[0], rest[1]]);
        rest = &rest[2..];
        let len = usize::from(header & 0x7fff)
            .min(rest.len())
            .min(MAX_FRAME_LEN);
        let (frame, tail) = rest.split_at(len);
        rest = tail;
        if frame.is_empty() {
            assert!(encoder.push_frame(frame).is_err());
            continue;
        }
        encoder.push_frame(frame).unwrap();
        frames.push(frame);
        if header & 0x8000 != 0 {
            encoder.flush();
        }
    }
    encoder.flush();
    let mut decoder = FrameDecoder::new();
    let mut got = Vec::new();
    while let Some(block) = encoder.poll_block() {
        decoder.handle_block(&block).unwrap();
        got.extend(std::iter::from_fn(|| decoder.poll_frame()));
    }
    assert_eq!(got.len(), frames.len());
    for (got, want) in got.iter().zip(&frames) {
        assert_eq!(got.as_slice(), *want);
        check_frame(got);
    }
});
