//! [`VoiceDecoder`]: PCM frames from a note, one packet at a time.

use crate::{VoiceError, VoiceNote};

/// Decodes a [`VoiceNote`] packet by packet into mono PCM at the codec's rate, dropping
/// the pre-skip at the start and the padding at the end: what an app plays as it goes.
pub struct VoiceDecoder<'a> {
    note: &'a VoiceNote,
    decoder: opus::Decoder,
    next: usize,
    skip: usize,
    left: usize,
    buffer: Vec<i16>,
}

impl core::fmt::Debug for VoiceDecoder<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VoiceDecoder")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<'a> VoiceDecoder<'a> {
    /// A decoder at the start of `note`.
    pub fn new(note: &'a VoiceNote) -> Result<Self, VoiceError> {
        let decoder = opus::Decoder::new(note.quality.sample_rate(), opus::Channels::Mono)?;
        Ok(Self {
            note,
            decoder,
            next: 0,
            skip: usize::from(note.pre_skip),
            left: note.samples as usize,
            // The longest Opus frame is 120 ms.
            buffer: vec![0; note.quality.sample_rate() as usize * 120 / 1000],
        })
    }

    /// The sample rate of the frames.
    pub fn sample_rate(&self) -> u32 {
        self.note.quality.sample_rate()
    }

    /// The next frame of PCM (empty frames are skipped), or `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<Vec<i16>>, VoiceError> {
        while self.left > 0 {
            let Some(packet) = self.note.packets.get(self.next) else {
                return Err(VoiceError::Malformed("fewer packets than its duration"));
            };
            self.next += 1;
            let decoded = self.decoder.decode(packet, &mut self.buffer, false)?;
            let start = self.skip.min(decoded);
            self.skip -= start;
            let end = decoded.min(start + self.left);
            if end > start {
                self.left -= end - start;
                return Ok(Some(self.buffer[start..end].to_vec()));
            }
        }
        Ok(None)
    }
}
