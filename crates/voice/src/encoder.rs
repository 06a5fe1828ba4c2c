//! [`VoiceEncoder`]: PCM in as it is recorded, a [`VoiceNote`] out.

use zeroize::Zeroize;

use crate::note::MAX_PACKET_LEN;
use crate::resample::MonoResampler;
use crate::{MAX_DURATION_MS, Quality, VoiceError, VoiceNote};

/// Input sample rates the encoder takes (Hz): from telephone to studio rates.
const INPUT_RATES: core::ops::RangeInclusive<u32> = 8_000..=192_000;

/// Encodes speech as it is recorded. Push interleaved PCM (`f32` in −1..1, or `i16`)
/// in blocks of any length; [`finish`](Self::finish) gives the note. Memory holds at
/// most one frame and one resampler chunk of PCM, plus the Opus packets so far.
pub struct VoiceEncoder {
    quality: Quality,
    channels: usize,
    resampler: Option<MonoResampler>,
    encoder: opus::Encoder,
    /// Mono samples at the codec's rate, waiting for a whole frame.
    frame: Vec<f32>,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    packets: Vec<Vec<u8>>,
    /// Codec-rate samples of the recording so far.
    samples: u64,
    pre_skip: u16,
    max_samples: u64,
}

impl core::fmt::Debug for VoiceEncoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VoiceEncoder")
            .field("quality", &self.quality)
            .field("packets", &self.packets.len())
            .finish_non_exhaustive()
    }
}

impl VoiceEncoder {
    /// An encoder for PCM at `input_rate` Hz with `channels` (1 or 2) interleaved.
    pub fn new(input_rate: u32, channels: u16, quality: Quality) -> Result<Self, VoiceError> {
        if !(1..=2).contains(&channels) {
            return Err(VoiceError::Unsupported("only mono or stereo input"));
        }
        if !INPUT_RATES.contains(&input_rate) {
            return Err(VoiceError::Unsupported("sample rate outside 8–192 kHz"));
        }
        let rate = quality.sample_rate();
        let mut encoder = opus::Encoder::new(rate, opus::Channels::Mono, opus::Application::Voip)?;
        encoder.set_bitrate(opus::Bitrate::Bits(quality.bitrate() as i32))?;
        encoder.set_max_bandwidth(quality.bandwidth())?;
        encoder.set_signal(opus::Signal::Voice)?;
        encoder.set_vbr(true)?;
        encoder.set_complexity(10)?;
        let pre_skip = u16::try_from(encoder.get_lookahead()?)
            .map_err(|_| VoiceError::Codec("lookahead out of range".into()))?;
        Ok(Self {
            quality,
            channels: usize::from(channels),
            resampler: Some(MonoResampler::new(input_rate, rate)?),
            encoder,
            frame: Vec::with_capacity(quality.frame_samples()),
            mono: Vec::new(),
            resampled: Vec::new(),
            packets: Vec::new(),
            samples: 0,
            pre_skip,
            max_samples: u64::from(MAX_DURATION_MS) * u64::from(rate) / 1000,
        })
    }

    /// How long the recording is so far, in milliseconds.
    pub fn duration_ms(&self) -> u32 {
        u32::try_from(self.samples * 1000 / u64::from(self.quality.sample_rate()))
            .unwrap_or(u32::MAX)
    }

    /// Takes interleaved samples in −1.0..=1.0. Past [`MAX_DURATION_MS`] it refuses
    /// with [`VoiceError::TooLong`] (what was pushed before stays encoded).
    pub fn push(&mut self, interleaved: &[f32]) -> Result<(), VoiceError> {
        self.mono.clear();
        if self.channels == 1 {
            self.mono.extend_from_slice(interleaved);
        } else {
            self.mono.extend(
                interleaved
                    .chunks_exact(self.channels)
                    .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32),
            );
        }
        let mut resampled = core::mem::take(&mut self.resampled);
        resampled.clear();
        let pushed = match self.resampler.as_mut() {
            Some(resampler) => resampler.push(&self.mono, &mut resampled),
            None => Err(VoiceError::Codec("pushed after finish".into())),
        };
        self.mono.zeroize();
        let result = pushed.and_then(|()| self.take_samples(&resampled));
        resampled.zeroize();
        self.resampled = resampled;
        result
    }

    /// Takes interleaved 16-bit samples.
    pub fn push_i16(&mut self, interleaved: &[i16]) -> Result<(), VoiceError> {
        let mut floats: Vec<f32> = interleaved
            .iter()
            .map(|&s| f32::from(s) / 32_768.0)
            .collect();
        let result = self.push(&floats);
        floats.zeroize();
        result
    }

    /// Ends the recording: the resampler's tail, the last frame padded with silence,
    /// and as many more as the encoder's lookahead needs.
    pub fn finish(mut self) -> Result<VoiceNote, VoiceError> {
        let mut tail = Vec::new();
        if let Some(resampler) = self.resampler.take() {
            resampler.finish(&mut tail)?;
        }
        self.take_samples(&tail)?;
        tail.zeroize();
        let frame = self.quality.frame_samples() as u64;
        let needed = self.samples + u64::from(self.pre_skip);
        while (self.packets.len() as u64) * frame < needed {
            self.frame.resize(frame as usize, 0.0);
            self.encode_frame()?;
        }
        Ok(VoiceNote {
            quality: self.quality,
            samples: u32::try_from(self.samples).map_err(|_| VoiceError::TooLong {
                max_secs: MAX_DURATION_MS / 1000,
            })?,
            pre_skip: self.pre_skip,
            packets: core::mem::take(&mut self.packets),
        })
    }

    fn take_samples(&mut self, samples: &[f32]) -> Result<(), VoiceError> {
        if self.samples + samples.len() as u64 > self.max_samples {
            return Err(VoiceError::TooLong {
                max_secs: MAX_DURATION_MS / 1000,
            });
        }
        self.samples += samples.len() as u64;
        let frame = self.quality.frame_samples();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (frame - self.frame.len()).min(rest.len());
            self.frame.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.frame.len() == frame {
                self.encode_frame()?;
            }
        }
        Ok(())
    }

    fn encode_frame(&mut self) -> Result<(), VoiceError> {
        for s in &mut self.frame {
            *s = s.clamp(-1.0, 1.0);
        }
        let packet = self.encoder.encode_vec_float(&self.frame, MAX_PACKET_LEN)?;
        self.frame.zeroize();
        self.frame.clear();
        self.packets.push(packet);
        Ok(())
    }
}
