//! What travels inside an end-to-end encrypted envelope: the client's own message
//! format, decoded from bytes a peer chose, so every field is bounded and every decode
//! error is typed.
//!
//! ```text
//!  content   = kind:u8 ‖ body
//!  HELLO     = 0x01 ‖ queue:bytes_u16 (≤ MAX_QUEUE_ADDRESS_LEN)    the acceptor's queue
//!  WELCOME   = 0x02                                                 the inviter's first reply
//!  TEXT      = 0x03 ‖ id:16 ‖ sent_at:u64 ‖ timer:u32 ‖ text:bytes_u16 (UTF-8)
//!  RECEIPT   = 0x04 ‖ count:u8 (1..=MAX_RECEIPT_IDS) ‖ id:16 × count
//!  TIMER     = 0x05 ‖ seconds:u32 (0 = off)
//!  VOICE     = 0x06 ‖ id:16 ‖ sent_at:u64 ‖ timer:u32 ‖ total_len:u32 ‖ digest:32
//!              ‖ count:u16 ‖ index:u16 ‖ data:bytes_u16               one chunk of a voice note
//! ```
//!
//! A voice message is a [`passage_voice::VoiceNote`]'s bytes (at most
//! [`MAX_VOICE_LEN`]) cut into `count` chunks of [`MAX_VOICE_CHUNK_DATA`] bytes, each a
//! ratchet message of its own, so each is authenticated and numbered; `digest` is the
//! SHA-256 of the whole note, checked once every chunk is in. The count is padded up to
//! a bucket ([`voice_chunk_count`]) with chunks whose data is empty, so the number of
//! envelopes tells the duration only to within about an eighth. Every chunk repeats the
//! header, so the chunks may arrive in any order.
//!
//! The ratchet pads every plaintext to the same envelope size, so a receipt and a
//! long text look the same on the wire.

use passage_crypto::codec::{DecodeError, Reader, Writer};
use passage_crypto::handshake::MAX_FIRST_PLAINTEXT_LEN;
use passage_crypto::ratchet::MAX_PLAINTEXT_LEN;
use passage_wire::QueueAddress;
use passage_wire::address::MAX_QUEUE_ADDRESS_LEN;

use super::ids::MessageId;

const KIND_HELLO: u8 = 1;
const KIND_WELCOME: u8 = 2;
const KIND_TEXT: u8 = 3;
const KIND_RECEIPT: u8 = 4;
const KIND_TIMER: u8 = 5;
const KIND_VOICE: u8 = 6;
/// A text with the same layout as `TEXT`, marked as an emergency (SOS).
const KIND_SOS: u8 = 7;

/// Bytes of a `VOICE` chunk besides its data.
const VOICE_OVERHEAD: usize = 1 + MessageId::LEN + 8 + 4 + 4 + 32 + 2 + 2 + 2;

/// Note bytes one chunk carries.
pub const MAX_VOICE_CHUNK_DATA: usize = MAX_PLAINTEXT_LEN - VOICE_OVERHEAD;

/// The largest voice note: five minutes at 16 kbit/s is about 600 KB; a mebibyte leaves
/// room for the variable bit rate's peaks and the per-packet framing.
pub const MAX_VOICE_LEN: usize = 1 << 20;

/// The most chunks of one voice message: [`MAX_VOICE_LEN`] in chunks, bucketed.
pub const MAX_VOICE_CHUNKS: usize = voice_chunk_count(MAX_VOICE_LEN);

/// How many chunks a note of `len` bytes travels in: the chunks it fills, padded up to
/// a bucket — at least 4; from 16 up, a multiple of an eighth of the power of two below
/// (16, 18, 20, …, 32, 36, …, 64, 72, …), so that the count says the length only to
/// within about 12 % while costing at most that much.
pub const fn voice_chunk_count(len: usize) -> usize {
    let filled = if len == 0 {
        1
    } else {
        len.div_ceil(MAX_VOICE_CHUNK_DATA)
    };
    if filled <= 4 {
        return 4;
    }
    let power = usize::BITS - 1 - filled.leading_zeros();
    let step = if power > 3 { 1 << (power - 3) } else { 1 };
    filled.div_ceil(step) * step
}

/// Bytes of a `TEXT` content besides the text itself.
const TEXT_OVERHEAD: usize = 1 + MessageId::LEN + 8 + 4 + 2;

/// The longest text, in UTF-8 bytes, that fits one message.
pub const MAX_TEXT_LEN: usize = MAX_PLAINTEXT_LEN - TEXT_OVERHEAD;

/// Message ids one receipt can acknowledge.
pub const MAX_RECEIPT_IDS: usize = 64;

/// The longest disappearing-message timer a peer may announce: one year.
pub const MAX_TIMER_SECS: u32 = 366 * 24 * 3600;

const _: () = assert!(1 + 2 + MAX_QUEUE_ADDRESS_LEN <= MAX_FIRST_PLAINTEXT_LEN);
const _: () = assert!(1 + 1 + MAX_RECEIPT_IDS * MessageId::LEN <= MAX_PLAINTEXT_LEN);

/// One decoded message content.
#[derive(Clone, PartialEq, Eq)]
pub enum Content {
    /// The acceptor's first message (inside the handshake): where to answer it.
    Hello {
        /// The acceptor's receiving queue.
        queue: QueueAddress,
    },
    /// The inviter's first message on the acceptor's queue: the contact is duplex.
    Welcome,
    /// A text message.
    Text {
        /// The sender's random id for it (dedup, receipts).
        id: MessageId,
        /// The sender's clock when it was written, unix seconds.
        sent_at: u64,
        /// The disappearing-message timer it was sent under, in seconds (0 = none).
        timer_secs: u32,
        /// The text, at most [`MAX_TEXT_LEN`] bytes of UTF-8.
        text: String,
        /// An emergency message (SOS) to the contacts the sender trusts: shown as
        /// such, and sent before anything else queued.
        urgent: bool,
    },
    /// End-to-end delivery receipts: these messages reached the contact's device.
    Receipt {
        /// 1 to [`MAX_RECEIPT_IDS`] ids.
        ids: Vec<MessageId>,
    },
    /// The contact set the conversation's disappearing-message timer (0 = off).
    Timer {
        /// Seconds, at most [`MAX_TIMER_SECS`].
        seconds: u32,
    },
    /// One chunk of a voice message.
    Voice(VoiceChunk),
}

/// One chunk of a voice message (see the module documentation).
#[derive(Clone, PartialEq, Eq)]
pub struct VoiceChunk {
    /// The sender's random id for the voice message (dedup, receipts).
    pub id: MessageId,
    /// The sender's clock when it was recorded, unix seconds.
    pub sent_at: u64,
    /// The disappearing-message timer it was sent under (0 = none).
    pub timer_secs: u32,
    /// The note's length in bytes, at most [`MAX_VOICE_LEN`].
    pub total_len: u32,
    /// SHA-256 of the whole note.
    pub digest: [u8; 32],
    /// Chunks in all, padding included ([`voice_chunk_count`] of `total_len`).
    pub count: u16,
    /// This chunk's number, below `count`.
    pub index: u16,
    /// Its part of the note: [`MAX_VOICE_CHUNK_DATA`] bytes, less for the last one that
    /// carries data, none for padding.
    pub data: Vec<u8>,
}

impl core::fmt::Debug for VoiceChunk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "VoiceChunk({}/{})", self.index, self.count)
    }
}

impl VoiceChunk {
    /// The data this chunk must carry, by its index and the note's length.
    pub fn expected_len(&self) -> usize {
        let start = usize::from(self.index) * MAX_VOICE_CHUNK_DATA;
        (self.total_len as usize)
            .saturating_sub(start)
            .min(MAX_VOICE_CHUNK_DATA)
    }

    /// Whether the header (everything but index and data) is the same as `other`'s.
    pub fn same_message(&self, other: &VoiceChunk) -> bool {
        (
            self.id,
            self.sent_at,
            self.timer_secs,
            self.total_len,
            self.digest,
            self.count,
        ) == (
            other.id,
            other.sent_at,
            other.timer_secs,
            other.total_len,
            other.digest,
            other.count,
        )
    }
}

impl core::fmt::Debug for Content {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the text or the queue: Debug output may reach a log.
        f.write_str(match self {
            Content::Hello { .. } => "Hello",
            Content::Welcome => "Welcome",
            Content::Text { .. } => "Text",
            Content::Receipt { .. } => "Receipt",
            Content::Timer { .. } => "Timer",
            Content::Voice(_) => "Voice",
        })
    }
}

/// Why a content could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// Truncated, too long, or a field out of bounds.
    #[error("malformed message content")]
    Malformed,
    /// A kind this version does not know.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// The text is not UTF-8.
    #[error("message text is not valid UTF-8")]
    NotUtf8,
    /// A text, receipt or timer out of its bounds.
    #[error("message content out of bounds")]
    OutOfBounds,
}

impl From<DecodeError> for ContentError {
    fn from(_: DecodeError) -> Self {
        ContentError::Malformed
    }
}

impl Content {
    /// Encodes the content; fails only if a field is out of bounds.
    pub fn encode(&self) -> Result<Vec<u8>, ContentError> {
        let mut w = Writer::with_capacity(64);
        match self {
            Content::Hello { queue } => {
                w.put_u8(KIND_HELLO);
                w.put_bytes_u16(&queue.encode())
                    .map_err(|_| ContentError::OutOfBounds)?;
            }
            Content::Welcome => w.put_u8(KIND_WELCOME),
            Content::Text {
                id,
                sent_at,
                timer_secs,
                text,
                urgent,
            } => {
                if text.len() > MAX_TEXT_LEN || *timer_secs > MAX_TIMER_SECS {
                    return Err(ContentError::OutOfBounds);
                }
                w.put_u8(if *urgent { KIND_SOS } else { KIND_TEXT });
                w.put(id.as_bytes());
                w.put_u64(*sent_at);
                w.put_u32(*timer_secs);
                w.put_bytes_u16(text.as_bytes())
                    .map_err(|_| ContentError::OutOfBounds)?;
            }
            Content::Receipt { ids } => {
                if ids.is_empty() || ids.len() > MAX_RECEIPT_IDS {
                    return Err(ContentError::OutOfBounds);
                }
                w.put_u8(KIND_RECEIPT);
                w.put_u8(ids.len() as u8);
                for id in ids {
                    w.put(id.as_bytes());
                }
            }
            Content::Timer { seconds } => {
                if *seconds > MAX_TIMER_SECS {
                    return Err(ContentError::OutOfBounds);
                }
                w.put_u8(KIND_TIMER);
                w.put_u32(*seconds);
            }
            Content::Voice(chunk) => {
                check_voice(chunk)?;
                w.put_u8(KIND_VOICE);
                w.put(chunk.id.as_bytes());
                w.put_u64(chunk.sent_at);
                w.put_u32(chunk.timer_secs);
                w.put_u32(chunk.total_len);
                w.put(&chunk.digest);
                w.put_u16(chunk.count);
                w.put_u16(chunk.index);
                w.put_bytes_u16(&chunk.data)
                    .map_err(|_| ContentError::OutOfBounds)?;
            }
        }
        Ok(w.into_vec())
    }

    /// Decodes a content a peer sent. Trailing bytes are refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, ContentError> {
        let mut r = Reader::new(bytes);
        let content = match r.u8()? {
            KIND_HELLO => {
                let queue = r.bytes_u16(MAX_QUEUE_ADDRESS_LEN)?;
                let queue = QueueAddress::decode(queue).map_err(|_| ContentError::Malformed)?;
                Content::Hello { queue }
            }
            KIND_WELCOME => Content::Welcome,
            kind @ (KIND_TEXT | KIND_SOS) => {
                let id = MessageId::from_bytes(r.array()?);
                let sent_at = r.u64()?;
                let timer_secs = r.u32()?;
                if timer_secs > MAX_TIMER_SECS {
                    return Err(ContentError::OutOfBounds);
                }
                let text = r.bytes_u16(MAX_TEXT_LEN)?;
                let text = core::str::from_utf8(text).map_err(|_| ContentError::NotUtf8)?;
                Content::Text {
                    id,
                    sent_at,
                    timer_secs,
                    text: text.to_owned(),
                    urgent: kind == KIND_SOS,
                }
            }
            KIND_RECEIPT => {
                let count = usize::from(r.u8()?);
                if count == 0 || count > MAX_RECEIPT_IDS {
                    return Err(ContentError::OutOfBounds);
                }
                let mut ids = Vec::with_capacity(count);
                for _ in 0..count {
                    ids.push(MessageId::from_bytes(r.array()?));
                }
                Content::Receipt { ids }
            }
            KIND_TIMER => {
                let seconds = r.u32()?;
                if seconds > MAX_TIMER_SECS {
                    return Err(ContentError::OutOfBounds);
                }
                Content::Timer { seconds }
            }
            KIND_VOICE => {
                let chunk = VoiceChunk {
                    id: MessageId::from_bytes(r.array()?),
                    sent_at: r.u64()?,
                    timer_secs: r.u32()?,
                    total_len: r.u32()?,
                    digest: r.array()?,
                    count: r.u16()?,
                    index: r.u16()?,
                    data: r.bytes_u16(MAX_VOICE_CHUNK_DATA)?.to_vec(),
                };
                check_voice(&chunk)?;
                Content::Voice(chunk)
            }
            other => return Err(ContentError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(content)
    }
}

/// The bounds of a voice chunk: length, timer, count for that length, index, data.
fn check_voice(chunk: &VoiceChunk) -> Result<(), ContentError> {
    let total = chunk.total_len as usize;
    if total == 0
        || total > MAX_VOICE_LEN
        || chunk.timer_secs > MAX_TIMER_SECS
        || usize::from(chunk.count) != voice_chunk_count(total)
        || chunk.index >= chunk.count
        || chunk.data.len() != chunk.expected_len()
    {
        return Err(ContentError::OutOfBounds);
    }
    Ok(())
}

const _: () = assert!(MAX_VOICE_CHUNKS <= u16::MAX as usize);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(len: usize) -> Content {
        Content::Text {
            id: MessageId::from_bytes([7; 16]),
            sent_at: 1_800_000_000,
            timer_secs: 30,
            text: "é".repeat(len / 2),
            urgent: len % 2 == 1,
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let queue: QueueAddress = QueueAddress {
            relay: "passage://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@relay.example:443"
                .parse()
                .unwrap(),
            sender_id: passage_wire::SenderId::from_bytes([3; 24]),
        };
        for content in [
            Content::Hello { queue },
            Content::Welcome,
            text(MAX_TEXT_LEN),
            Content::Receipt {
                ids: vec![MessageId::from_bytes([1; 16]); MAX_RECEIPT_IDS],
            },
            Content::Timer { seconds: 5 },
            Content::Voice(VoiceChunk {
                id: MessageId::from_bytes([2; 16]),
                sent_at: 1,
                timer_secs: 0,
                total_len: (MAX_VOICE_CHUNK_DATA * 4 + 5) as u32,
                digest: [4; 32],
                count: 5,
                index: 4,
                data: vec![6; 5],
            }),
        ] {
            let bytes = content.encode().unwrap();
            assert!(bytes.len() <= MAX_PLAINTEXT_LEN);
            assert_eq!(Content::decode(&bytes).unwrap(), content);
        }
    }

    #[test]
    fn out_of_bounds_is_refused_both_ways() {
        assert_eq!(
            text(MAX_TEXT_LEN + 2).encode(),
            Err(ContentError::OutOfBounds)
        );
        assert_eq!(
            Content::Receipt { ids: vec![] }.encode(),
            Err(ContentError::OutOfBounds)
        );
        assert_eq!(
            Content::decode(&[KIND_RECEIPT, 0]),
            Err(ContentError::OutOfBounds)
        );
        assert_eq!(
            Content::decode(&[KIND_RECEIPT, 65]),
            Err(ContentError::OutOfBounds)
        );
        let mut timer = vec![KIND_TIMER];
        timer.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Content::decode(&timer), Err(ContentError::OutOfBounds));
        assert_eq!(Content::decode(&[9]), Err(ContentError::UnknownKind(9)));
        assert_eq!(Content::decode(&[]), Err(ContentError::Malformed));
        assert_eq!(
            Content::decode(&[KIND_WELCOME, 0]),
            Err(ContentError::Malformed)
        );
        let mut bad_utf8 = text(4).encode().unwrap();
        let last = bad_utf8.len() - 1;
        bad_utf8[last] = 0xff;
        assert_eq!(Content::decode(&bad_utf8), Err(ContentError::NotUtf8));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(content) = Content::decode(&bytes) {
                prop_assert_eq!(content.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn texts_round_trip(s in ".{0,300}", sent_at: u64, timer in 0..=MAX_TIMER_SECS) {
            let content = Content::Text {
                id: MessageId::from_bytes([9; 16]),
                sent_at,
                timer_secs: timer,
                text: s,
                urgent: timer % 2 == 1,
            };
            prop_assert_eq!(Content::decode(&content.encode().unwrap()).unwrap(), content);
        }
    }

    #[test]
    fn voice_buckets_are_coarse_and_cheap() {
        let counts: Vec<usize> = [1, 4, 5, 15, 16, 17, 25, 26, 33, 100, 281]
            .iter()
            .map(|&chunks| voice_chunk_count(chunks * MAX_VOICE_CHUNK_DATA))
            .collect();
        assert_eq!(counts, [4, 4, 5, 15, 16, 18, 26, 26, 36, 104, 288]);
        assert_eq!(MAX_VOICE_CHUNKS, 288);
        for chunks in 1..=281usize {
            let count = voice_chunk_count(chunks * MAX_VOICE_CHUNK_DATA);
            assert!(count >= chunks && (count <= 4 || count * 8 <= chunks * 9 + 8));
        }
    }

    #[test]
    fn voice_chunks_out_of_bounds_are_refused() {
        let good = VoiceChunk {
            id: MessageId::from_bytes([2; 16]),
            sent_at: 1,
            timer_secs: 0,
            total_len: 10,
            digest: [4; 32],
            count: 4,
            index: 0,
            data: vec![6; 10],
        };
        assert!(Content::Voice(good.clone()).encode().is_ok());
        for bad in [
            VoiceChunk {
                index: 4,
                ..good.clone()
            },
            VoiceChunk {
                count: 5,
                ..good.clone()
            },
            VoiceChunk {
                data: vec![6; 9],
                ..good.clone()
            },
            VoiceChunk {
                index: 1,
                ..good.clone()
            },
            VoiceChunk {
                total_len: 0,
                data: vec![],
                ..good.clone()
            },
            VoiceChunk {
                total_len: MAX_VOICE_LEN as u32 + 1,
                ..good.clone()
            },
        ] {
            assert_eq!(Content::Voice(bad).encode(), Err(ContentError::OutOfBounds));
        }
        // Padding: an index past the data carries none.
        let padding = VoiceChunk {
            index: 3,
            data: vec![],
            ..good
        };
        let bytes = Content::Voice(padding.clone()).encode().unwrap();
        assert_eq!(Content::decode(&bytes).unwrap(), Content::Voice(padding));
    }
}
