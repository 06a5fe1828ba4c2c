//! WAV files in and out (hound), read block by block.

use std::path::Path;

use crate::{Quality, VoiceEncoder, VoiceError, VoiceNote};

/// Samples read from a WAV file per block pushed to the encoder.
const BLOCK: usize = 4096;

/// Encodes a WAV file (8–32-bit integer or 32-bit float, mono or stereo, any rate from
/// 8 to 192 kHz) block by block.
pub fn encode_file(path: &Path, quality: Quality) -> Result<VoiceNote, VoiceError> {
    let mut reader = hound::WavReader::open(path).map_err(|e| VoiceError::Wav(e.to_string()))?;
    let spec = reader.spec();
    let mut encoder = VoiceEncoder::new(spec.sample_rate, spec.channels, quality)?;
    let mut block = Vec::with_capacity(BLOCK);
    match spec.sample_format {
        hound::SampleFormat::Float => {
            for sample in reader.samples::<f32>() {
                block.push(sample.map_err(|e| VoiceError::Wav(e.to_string()))?);
                if block.len() == BLOCK {
                    encoder.push(&block)?;
                    block.clear();
                }
            }
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            for sample in reader.samples::<i32>() {
                block.push(sample.map_err(|e| VoiceError::Wav(e.to_string()))? as f32 * scale);
                if block.len() == BLOCK {
                    encoder.push(&block)?;
                    block.clear();
                }
            }
        }
    }
    encoder.push(&block)?;
    encoder.finish()
}

/// Writes mono 16-bit PCM at `sample_rate` as a WAV file (created, not overwritten).
pub fn write_file(path: &Path, sample_rate: u32, samples: &[i16]) -> Result<(), VoiceError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| VoiceError::Wav(e.to_string()))?;
    let mut writer = hound::WavWriter::new(std::io::BufWriter::new(file), spec)
        .map_err(|e| VoiceError::Wav(e.to_string()))?;
    for &s in samples {
        writer
            .write_sample(s)
            .map_err(|e| VoiceError::Wav(e.to_string()))?;
    }
    writer
        .finalize()
        .map_err(|e| VoiceError::Wav(e.to_string()))
}
