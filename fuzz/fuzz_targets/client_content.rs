//! What a contact's client can put inside an end-to-end message: the client's content
//! codec (hello, welcome, text, receipt, timer). Decoding must never panic, and what
//! decodes must re-encode to the same bytes (the encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passage_client::agent::Content;

fuzz_target!(|data: &[u8]| {
    if let Ok(content) = Content::decode(data) {
        assert_eq!(content.encode().unwrap(), data);
    }
});
