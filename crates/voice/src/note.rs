//! [`VoiceNote`]: a voice message's Opus packets and what is needed to play them.
//!
//! ```text
//! version u8 = 1 ‖ quality u8 (0 = 6k, 1 = 12k, 2 = 16k) ‖ samples u32 ‖ pre-skip u16
//!   ‖ packet count u32 ‖ count × (length u8 ‖ Opus packet)
//! ```
//!
//! `samples` is the recording's length at the codec's rate; `pre-skip` the samples the
//! decoder drops at the start (the encoder's lookahead, as in Ogg Opus), so the decoded
//! audio lines up with and lasts exactly as long as what was recorded.

use passage_crypto::codec::{Reader, Writer};

use crate::{MAX_DURATION_MS, Quality, VoiceError};

/// The largest Opus packet a note holds: the encoder is given a buffer of this size,
/// which at 6–16 kbit/s it never fills (a 20 ms packet at 16 kbit/s averages 40 bytes,
/// a 40 ms one at 6 kbit/s 30), and one length byte then frames every packet.
pub const MAX_PACKET_LEN: usize = 255;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 1 + 4 + 2 + 4;
/// The most packets a note of [`MAX_DURATION_MS`] holds (20 ms frames), plus the one
/// the encoder's lookahead adds.
const MAX_PACKETS: usize = (MAX_DURATION_MS / 20) as usize + 2;
/// The largest note: every packet at its largest. Bounds what a receiver accepts.
pub const MAX_NOTE_LEN: usize = HEADER_LEN + MAX_PACKETS * (1 + MAX_PACKET_LEN);

/// A voice message: Opus packets of one mono stream.
#[derive(Clone, PartialEq, Eq)]
pub struct VoiceNote {
    pub(crate) quality: Quality,
    pub(crate) samples: u32,
    pub(crate) pre_skip: u16,
    pub(crate) packets: Vec<Vec<u8>>,
}

impl core::fmt::Debug for VoiceNote {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VoiceNote")
            .field("quality", &self.quality)
            .field("duration_ms", &self.duration_ms())
            .field("packets", &self.packets.len())
            .finish()
    }
}

impl VoiceNote {
    /// The settings it was recorded with.
    pub fn quality(&self) -> Quality {
        self.quality
    }

    /// How long it plays, in milliseconds.
    pub fn duration_ms(&self) -> u32 {
        let rate = u64::from(self.quality.sample_rate());
        u32::try_from(u64::from(self.samples) * 1000 / rate).unwrap_or(u32::MAX)
    }

    /// Its length at the codec's rate, in samples.
    pub fn samples(&self) -> u32 {
        self.samples
    }

    /// The Opus packets, in order (for another player or container).
    pub fn packets(&self) -> &[Vec<u8>] {
        &self.packets
    }

    /// Samples the decoder drops at the start (the encoder's lookahead).
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// The bytes it travels in.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = HEADER_LEN + self.packets.iter().map(|p| 1 + p.len()).sum::<usize>();
        let mut w = Writer::with_capacity(len);
        w.put_u8(VERSION);
        w.put_u8(match self.quality {
            Quality::Low => 0,
            Quality::Normal => 1,
            Quality::High => 2,
        });
        w.put_u32(self.samples);
        w.put_u16(self.pre_skip);
        w.put_u32(u32::try_from(self.packets.len()).unwrap_or(u32::MAX));
        for packet in &self.packets {
            // Packets are at most MAX_PACKET_LEN (the encoder's buffer): always fits.
            let _ = w.put_bytes_u8(packet);
        }
        w.into_vec()
    }

    /// Reads a note, checking every length and the duration against its packets.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VoiceError> {
        if bytes.len() > MAX_NOTE_LEN {
            return Err(VoiceError::Malformed("too long"));
        }
        let short = |_| VoiceError::Malformed("truncated");
        let mut r = Reader::new(bytes);
        if r.u8().map_err(short)? != VERSION {
            return Err(VoiceError::Malformed("unknown version"));
        }
        let quality = match r.u8().map_err(short)? {
            0 => Quality::Low,
            1 => Quality::Normal,
            2 => Quality::High,
            _ => return Err(VoiceError::Malformed("unknown quality")),
        };
        let samples = r.u32().map_err(short)?;
        let pre_skip = r.u16().map_err(short)?;
        let count = usize::try_from(r.u32().map_err(short)?).unwrap_or(usize::MAX);
        if count > MAX_PACKETS {
            return Err(VoiceError::Malformed("too many packets"));
        }
        let mut packets = Vec::with_capacity(count);
        for _ in 0..count {
            let packet = r.bytes_u8(MAX_PACKET_LEN).map_err(short)?;
            if packet.is_empty() {
                return Err(VoiceError::Malformed("empty packet"));
            }
            packets.push(packet.to_vec());
        }
        r.finish()
            .map_err(|_| VoiceError::Malformed("trailing bytes"))?;
        let frame = quality.frame_samples() as u64;
        let covered = (count as u64 * frame).saturating_sub(u64::from(pre_skip));
        if u64::from(samples) > covered || covered - u64::from(samples) >= frame {
            return Err(VoiceError::Malformed("duration does not match the packets"));
        }
        if u64::from(samples) * 1000 > u64::from(MAX_DURATION_MS) * u64::from(quality.sample_rate())
        {
            return Err(VoiceError::Malformed("longer than the limit"));
        }
        Ok(Self {
            quality,
            samples,
            pre_skip,
            packets,
        })
    }

    /// Decodes the whole note to mono PCM at the codec's rate (16 or 8 kHz), exactly
    /// [`samples`](Self::samples) long. For playback as it decodes, use
    /// [`crate::VoiceDecoder`].
    pub fn decode(&self) -> Result<Vec<i16>, VoiceError> {
        let mut decoder = crate::VoiceDecoder::new(self)?;
        let mut out = Vec::with_capacity(self.samples as usize);
        while let Some(frame) = decoder.next_frame()? {
            out.extend_from_slice(&frame);
        }
        Ok(out)
    }
}
