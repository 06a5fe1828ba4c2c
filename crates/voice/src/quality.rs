//! The three speech settings a user can choose.

use crate::VoiceError;

/// The longest voice message: five minutes. Past it, [`crate::VoiceEncoder::push`]
/// refuses with [`VoiceError::TooLong`]. At 16 kbit/s that is about 600 KB of Opus,
/// a few hundred encrypted chunks.
pub const MAX_DURATION_MS: u32 = 5 * 60 * 1000;

/// Speech settings: mono, VOIP application, variable bit rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Quality {
    /// Low-data mode: 6 kbit/s, 8 kHz narrowband, 40 ms frames (Opus's own floor for
    /// intelligible speech; longer frames halve the per-packet overhead).
    Low,
    /// The default: 12 kbit/s, 16 kHz wideband, 20 ms frames.
    #[default]
    Normal,
    /// 16 kbit/s, 16 kHz wideband, 20 ms frames.
    High,
}

impl Quality {
    /// The codec's sample rate.
    pub fn sample_rate(self) -> u32 {
        match self {
            Quality::Low => 8_000,
            Quality::Normal | Quality::High => 16_000,
        }
    }

    /// Target bit rate, bits per second.
    pub fn bitrate(self) -> u32 {
        match self {
            Quality::Low => 6_000,
            Quality::Normal => 12_000,
            Quality::High => 16_000,
        }
    }

    /// Frame length in milliseconds.
    pub fn frame_ms(self) -> u32 {
        match self {
            Quality::Low => 40,
            Quality::Normal | Quality::High => 20,
        }
    }

    /// Samples per frame at the codec's rate.
    pub fn frame_samples(self) -> usize {
        (self.sample_rate() / 1000 * self.frame_ms()) as usize
    }

    /// The name used on the command line: `6k`, `12k`, `16k`.
    pub fn name(self) -> &'static str {
        match self {
            Quality::Low => "6k",
            Quality::Normal => "12k",
            Quality::High => "16k",
        }
    }

    pub(crate) fn bandwidth(self) -> opus::Bandwidth {
        match self {
            Quality::Low => opus::Bandwidth::Narrowband,
            Quality::Normal | Quality::High => opus::Bandwidth::Wideband,
        }
    }
}

impl core::str::FromStr for Quality {
    type Err = VoiceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "6k" | "6" | "low" => Ok(Quality::Low),
            "12k" | "12" | "normal" => Ok(Quality::Normal),
            "16k" | "16" | "high" => Ok(Quality::High),
            _ => Err(VoiceError::Unsupported("bit rate: choose 6k, 12k or 16k")),
        }
    }
}
