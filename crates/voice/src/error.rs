//! What can go wrong with a voice message.

/// Why a voice message could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VoiceError {
    /// The recording is longer than [`crate::MAX_DURATION_MS`].
    #[error("the recording is longer than {max_secs} seconds; record a shorter message")]
    TooLong {
        /// The limit, in seconds.
        max_secs: u32,
    },
    /// Input the encoder cannot take: no channels, more than two, or an odd rate.
    #[error("unsupported audio: {0}")]
    Unsupported(&'static str),
    /// The codec failed (a bug, or memory).
    #[error("the Opus codec failed: {0}")]
    Codec(String),
    /// The resampler failed (a bug, or memory).
    #[error("resampling failed: {0}")]
    Resample(String),
    /// A voice message's bytes are not a valid voice message.
    #[error("the voice message is malformed ({0})")]
    Malformed(&'static str),
    /// A WAV file could not be read or written.
    #[error("WAV file: {0}")]
    Wav(String),
}

impl From<opus::Error> for VoiceError {
    fn from(e: opus::Error) -> Self {
        Self::Codec(e.description().to_owned())
    }
}
