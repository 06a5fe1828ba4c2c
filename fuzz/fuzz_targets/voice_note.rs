//! What a contact's client can send as a voice note, once its chunks are put together:
//! the note's layout is checked before libopus sees a packet. Parsing must never panic;
//! what parses re-encodes to the same bytes, and decodes without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passage_voice::VoiceNote;

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = VoiceNote::from_bytes(data) {
        assert_eq!(note.to_bytes(), data);
        let _ = note.decode();
    }
});
