//! The voice note's byte layout: it round-trips, and every malformed or hostile input
//! is refused with an error, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use passage_voice::{MAX_NOTE_LEN, Quality, VoiceEncoder, VoiceNote};
use proptest::prelude::*;

fn note() -> VoiceNote {
    let mut encoder = VoiceEncoder::new(16_000, 1, Quality::Normal).unwrap();
    encoder.push(&common::speech_like(16_000, 1, 1.0)).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn malformed_notes_are_refused() {
    let good = note().to_bytes();
    assert_eq!(VoiceNote::from_bytes(&good).unwrap(), note_from(&good));
    for cut in [0, 1, 5, 11, good.len() - 1] {
        assert!(VoiceNote::from_bytes(&good[..cut]).is_err(), "cut at {cut}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(VoiceNote::from_bytes(&trailing).is_err());
    let mut version = good.clone();
    version[0] = 2;
    assert!(VoiceNote::from_bytes(&version).is_err());
    let mut quality = good.clone();
    quality[1] = 9;
    assert!(VoiceNote::from_bytes(&quality).is_err());
    // A duration the packets do not cover, or that they overshoot by a frame.
    let mut longer = good.clone();
    let samples = u32::from_be_bytes(longer[2..6].try_into().unwrap());
    longer[2..6].copy_from_slice(&(samples + 320).to_be_bytes());
    assert!(VoiceNote::from_bytes(&longer).is_err());
    let mut shorter = good.clone();
    shorter[2..6].copy_from_slice(&(samples - 320).to_be_bytes());
    assert!(VoiceNote::from_bytes(&shorter).is_err());
    // A packet count past the limit.
    let mut count = good.clone();
    count[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(VoiceNote::from_bytes(&count).is_err());
    assert!(VoiceNote::from_bytes(&vec![1u8; MAX_NOTE_LEN + 1]).is_err());
}

fn note_from(bytes: &[u8]) -> VoiceNote {
    VoiceNote::from_bytes(bytes).unwrap()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = VoiceNote::from_bytes(&bytes);
    }

    #[test]
    fn one_changed_byte_is_refused_or_still_a_valid_note(at in 0usize..200, to in any::<u8>()) {
        let mut bytes = note().to_bytes();
        let at = at % bytes.len();
        bytes[at] = to;
        if let Ok(parsed) = VoiceNote::from_bytes(&bytes) {
            // Then it decodes without a panic (libopus takes any packet).
            let _ = parsed.decode();
        }
    }
}
