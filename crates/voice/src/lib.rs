//! Voice messages: speech in, Opus packets out, and back.
//!
//! ```text
//!  PCM (any rate, mono or stereo) ──downmix──► mono ──resample (rubato)──► 16 or 8 kHz
//!      ──Opus (libopus, VOIP, 20 or 40 ms frames)──► packets ──► VoiceNote bytes
//!  VoiceNote bytes ──► packets ──Opus decode──► 16 or 8 kHz mono PCM ──► WAV (hound)
//! ```
//!
//! [`VoiceEncoder`] takes PCM as it is recorded (a phone pushes frames; the CLI reads a
//! WAV file block by block), so a five-minute recording never sits whole in memory as
//! PCM: only its Opus packets do (about 90 KB a minute at 12 kbit/s). [`VoiceNote`] is
//! the byte layout a voice message travels in, end to end encrypted and split into
//! chunks by the client; [`VoiceDecoder`] gives PCM back packet by packet, for playback.
//!
//! ## Quick start
//!
//! ```
//! use passage_voice::{Quality, VoiceEncoder, VoiceNote};
//!
//! # fn demo() -> Result<(), passage_voice::VoiceError> {
//! let mut encoder = VoiceEncoder::new(48_000, 1, Quality::Normal)?;
//! let second_of_tone: Vec<f32> = (0..48_000)
//!     .map(|i| (i as f32 * 220.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.3)
//!     .collect();
//! encoder.push(&second_of_tone)?;
//! let note: VoiceNote = encoder.finish()?;
//! let bytes = note.to_bytes();
//! let pcm = VoiceNote::from_bytes(&bytes)?.decode()?;
//! assert_eq!(pcm.len(), 16_000); // one second at 16 kHz
//! # Ok(()) }
//! # demo().unwrap();
//! ```
//!
//! ## Why libopus
//!
//! Opus is what speech codecs are measured against at 6–16 kbit/s, and libopus is its
//! reference implementation: what it encodes every Opus decoder reads (a test hands our
//! packets to `opusdec`, libopus's own command-line decoder). No pure-Rust Opus encoder
//! exists that matches it. The `opus` crate binds it over `opusic-sys`, which builds
//! libopus from its bundled source with cmake; only the client depends on this crate,
//! so the relay builds without cmake.

mod decoder;
mod encoder;
mod error;
mod note;
mod quality;
mod resample;
pub mod signal;
pub mod wav;

pub use decoder::VoiceDecoder;
pub use encoder::VoiceEncoder;
pub use error::VoiceError;
pub use note::{MAX_NOTE_LEN, MAX_PACKET_LEN, VoiceNote};
pub use quality::{MAX_DURATION_MS, Quality};
