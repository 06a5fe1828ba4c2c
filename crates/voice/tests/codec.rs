//! Speech through Opus and back, at every common input rate, mono and stereo: the
//! decoded audio lasts as long as the recording (within 1 %) and its loudness contour —
//! the syllables and pauses that carry speech's rhythm — matches the original's.
//!
//! The measure is the correlation of the two signals' RMS envelopes in 10 ms windows,
//! after the best alignment within ±50 ms. A speech codec preserves the envelope well
//! even at 6 kbit/s (it drops fine spectral detail, not timing or loudness): thresholds
//! are 0.95 at 12 and 16 kbit/s and 0.90 at 6 kbit/s narrowband. A broken pipeline
//! (wrong rate, lost frames, a channel mix-up, silence) falls far below them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{envelope_correlation, floats, mono, speech_like};
use passage_voice::{Quality, VoiceEncoder, VoiceError, VoiceNote};

fn round_trip(rate: u32, channels: u16, quality: Quality, seconds: f32) -> (f32, f32, usize) {
    let input = speech_like(rate, channels, seconds);
    let mut encoder = VoiceEncoder::new(rate, channels, quality).unwrap();
    // Pushed in uneven blocks, as a recorder hands them over.
    for block in input.chunks(997 * usize::from(channels)) {
        encoder.push(block).unwrap();
    }
    let note = encoder.finish().unwrap();
    let bytes = note.to_bytes();
    let note = VoiceNote::from_bytes(&bytes).unwrap();
    let decoded = note.decode().unwrap();
    let original = mono(&input, channels);
    let duration_in = original.len() as f32 / rate as f32;
    let duration_out = decoded.len() as f32 / quality.sample_rate() as f32;
    let correlation =
        envelope_correlation(&original, rate, &floats(&decoded), quality.sample_rate());
    (
        (duration_out - duration_in).abs() / duration_in,
        correlation,
        bytes.len(),
    )
}

#[test]
fn speech_survives_at_every_common_rate_mono_and_stereo() {
    for rate in [8_000, 16_000, 44_100, 48_000] {
        for channels in [1, 2] {
            let (drift, correlation, _) = round_trip(rate, channels, Quality::Normal, 4.0);
            eprintln!("{rate} Hz × {channels}: drift {drift:.5}, envelope r = {correlation:.4}");
            assert!(
                drift < 0.01,
                "{rate} Hz × {channels}: duration off by {drift}"
            );
            assert!(
                correlation > 0.95,
                "{rate} Hz × {channels}: r = {correlation}"
            );
        }
    }
}

/// The measure tells speech apart: the same signal a quarter second late (a syllable
/// off), or another speaker's rhythm, scores far below the thresholds.
#[test]
fn the_envelope_measure_is_not_fooled() {
    let a = speech_like(16_000, 1, 4.0);
    let late: Vec<f32> = [vec![0.0; 4_000], a.clone()].concat();
    assert!(envelope_correlation(&a, 16_000, &late, 16_000) < 0.5);
    let other: Vec<f32> = speech_like(16_000, 1, 4.6)[9_600..].to_vec();
    assert!(envelope_correlation(&a, 16_000, &other, 16_000) < 0.5);
}

#[test]
fn every_quality_keeps_the_speech_and_its_size() {
    for (quality, threshold) in [
        (Quality::Low, 0.90),
        (Quality::Normal, 0.95),
        (Quality::High, 0.95),
    ] {
        let (drift, correlation, bytes) = round_trip(48_000, 1, quality, 6.0);
        let kbits = bytes as f32 * 8.0 / 6.0 / 1000.0;
        eprintln!(
            "{}: drift {drift:.5}, r = {correlation:.4}, {kbits:.1} kbit/s",
            quality.name()
        );
        assert!(drift < 0.01);
        assert!(
            correlation > threshold,
            "{}: r = {correlation}",
            quality.name()
        );
        // The note stays near its bit rate (VBR, plus one length byte per packet).
        assert!(
            kbits < quality.bitrate() as f32 / 1000.0 * 1.3,
            "{}: {kbits} kbit/s",
            quality.name()
        );
    }
}

#[test]
fn silence_and_a_single_sample_are_notes_too() {
    for samples in [0usize, 1, 319, 320, 321] {
        let mut encoder = VoiceEncoder::new(16_000, 1, Quality::Normal).unwrap();
        encoder.push(&vec![0.0; samples]).unwrap();
        let note = VoiceNote::from_bytes(&encoder.finish().unwrap().to_bytes()).unwrap();
        assert_eq!(note.decode().unwrap().len(), samples);
    }
}

#[test]
fn a_recording_past_five_minutes_is_refused_clearly() {
    let mut encoder = VoiceEncoder::new(8_000, 1, Quality::Low).unwrap();
    let minute = vec![0.0f32; 8_000 * 60];
    for _ in 0..5 {
        encoder.push(&minute).unwrap();
    }
    assert_eq!(encoder.duration_ms(), 300_000);
    let err = encoder.push(&[0.0; 8]).unwrap_err();
    assert!(
        matches!(err, VoiceError::TooLong { max_secs: 300 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("longer than 300 seconds"), "{err}");
    // What was pushed up to the limit is still a whole note.
    let note = encoder.finish().unwrap();
    assert_eq!(note.duration_ms(), 300_000);
}

#[test]
fn odd_input_is_refused() {
    assert!(VoiceEncoder::new(48_000, 0, Quality::Normal).is_err());
    assert!(VoiceEncoder::new(48_000, 3, Quality::Normal).is_err());
    assert!(VoiceEncoder::new(1_000, 1, Quality::Normal).is_err());
    assert!("9k".parse::<Quality>().is_err());
    assert_eq!("6k".parse::<Quality>().unwrap(), Quality::Low);
}
