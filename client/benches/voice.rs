//! Voice messages: bytes on the wire for a 60-second message at 6, 12 and 16 kbit/s,
//! padding included (every chunk is one envelope in one 4,096-byte block), next to the
//! anchor — AAC at 32 kbit/s, what Signal and SimpleX record (240 KB a minute before
//! any framing) — and encode and decode speed as multiples of real time, measured in
//! this run.
//!
//! `cargo bench -p passage-client --bench voice` (a plain `main`, no harness).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use passage_client::agent::voice_chunk_count;
use passage_voice::signal::speech_like;
use passage_voice::{Quality, VoiceEncoder, VoiceNote};

/// One relay block per chunk: a `SEND` of one envelope fills exactly one.
const BLOCK: usize = 4096;
const SECONDS: f32 = 60.0;
/// Runs of each timing; the fastest is reported (the machine's noise only slows).
const RUNS: usize = 3;

fn main() {
    let input = speech_like(48_000, 1, SECONDS);
    let anchor = (32_000.0 / 8.0 * SECONDS) as usize;
    println!("voice message of {SECONDS} s (speech-like test signal, 48 kHz mono input)");
    println!(
        "{:<24} {:>10} {:>8} {:>12} {:>10} {:>10} {:>10}",
        "", "note", "chunks", "on the wire", "× anchor", "encode", "decode"
    );
    println!(
        "{:<24} {:>10} {:>8} {:>12} {:>10} {:>10} {:>10}",
        "AAC 32 kbit/s (anchor)",
        kb(anchor),
        "-",
        kb(anchor),
        "1.00",
        "-",
        "-"
    );
    for quality in [Quality::Low, Quality::Normal, Quality::High] {
        let mut best_encode = f64::MAX;
        let mut note: Option<VoiceNote> = None;
        for _ in 0..RUNS {
            let start = Instant::now();
            let mut encoder = VoiceEncoder::new(48_000, 1, quality).unwrap();
            for block in input.chunks(960) {
                encoder.push(block).unwrap();
            }
            note = Some(encoder.finish().unwrap());
            best_encode = best_encode.min(start.elapsed().as_secs_f64());
        }
        let note = note.unwrap();
        let mut best_decode = f64::MAX;
        for _ in 0..RUNS {
            let start = Instant::now();
            let pcm = note.decode().unwrap();
            assert!(!pcm.is_empty());
            best_decode = best_decode.min(start.elapsed().as_secs_f64());
        }
        let bytes = note.to_bytes().len();
        let chunks = voice_chunk_count(bytes);
        let wire = chunks * BLOCK;
        println!(
            "{:<24} {:>10} {:>8} {:>12} {:>10.2} {:>9.0}× {:>9.0}×",
            format!("Opus {} (passage)", quality.name()),
            kb(bytes),
            chunks,
            kb(wire),
            wire as f64 / anchor as f64,
            f64::from(SECONDS) / best_encode,
            f64::from(SECONDS) / best_decode,
        );
    }
    println!("encode/decode: multiples of real time (the fastest of {RUNS} runs)");
}

fn kb(bytes: usize) -> String {
    format!("{:.1} KB", bytes as f64 / 1000.0)
}
