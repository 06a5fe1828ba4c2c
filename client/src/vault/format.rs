//! Every byte layout, file name and key-derivation label of vault format version 2
//! (and what version 1 left that version 2 still reads). Pure: no I/O. Integers are
//! big-endian; parsing goes through [`passage_crypto::codec::Reader`].
//!
//! ```text
//! key-slot file (KEYSLOT_FILE_LEN = 20,480 bytes; a random 32-hex-digit name chosen at
//! creation, found at open as the vault file of exactly this size)
//!   [0, 4096)             salt (32 random bytes) ‖ 4064 random bytes
//!   [4096·(i+1), +4096)   position i < SLOT_COUNT: nonce (24) ‖ XChaCha20-Poly1305(
//!                           slot key i, aad = "slot" ‖ i ‖ salt, slot payload (4056))
//!                         or, if unused, 4096 random bytes
//! slot payload (v2)       version u8 = 2 ‖ generation u64 ‖ profile id (16)
//!                         ‖ data key (32) ‖ segment epoch u64 ‖ segment secret (32)
//!                         ‖ linked KEK (32) ‖ zeros
//!   Every used position has this one shape, whatever the profile's role. The linked
//!   KEK is the KEK of the profile this one carries along (a real profile's decoy), or
//!   32 random bytes, drawn afresh at every seal, when there is none: the two cannot be
//!   told apart without trying the key. Nothing in a payload names a role, a kind or
//!   another position; which positions an open rewrites is the code's rule (see
//!   `keyslot::KeySlotFile::rewrite`), not the slot's.
//! slot payload (v1, read   version u8 = 1 ‖ kind u8 ‖ reserved positions u8
//!   for migration only)   ‖ generation u64 ‖ profile id (16) ‖ data key (32)
//!                         ‖ segment epoch u64 ‖ segment secret (32)
//!                         ‖ erase-on-open positions u8 ‖ decoy flag u8
//!                         ‖ [decoy KEK (32) if the flag is 1] ‖ zeros
//!   (kind, reserved and erase-on-open are read and ignored: version 2 derives them.)
//!
//! segment file (name = hex(HMAC(name key, "segment" ‖ epoch))[..32], size from
//! SEGMENT_SIZES, records from offset 0, every byte past the last record random)
//!   record at offset o, length L (a power of two, 256 ≤ L ≤ 4 MiB):
//!     nonce (24) ‖ XChaCha20-Poly1305(header key, nonce, aad = o, L as u32)   (20)
//!                ‖ XChaCha20-Poly1305(body key,   nonce, aad = o,
//!                      content length u32 ‖ content ‖ zeros to L − 60)          (L − 44)
//!   content (one transaction): count u32 ‖ count × op
//!     op: 1 ‖ key (u16 length ‖ bytes) ‖ value (u32 length ‖ bytes)    put
//!         2 ‖ key (u16 length ‖ bytes)                                  delete
//! ```
//!
//! Segments and records are unchanged from version 1; a version-1 vault opens, and its
//! first open rewrites every slot position in version 2 and renames the key-slot file
//! from the fixed name version 1 used to a random one.

use passage_crypto::codec::{DecodeError, Reader};
use passage_crypto::primitives::{
    AEAD_TAG_LEN, Secret32, XCHACHA_NONCE_LEN, hkdf_sha256, hmac_sha256, xchacha_open, xchacha_seal,
};
use zeroize::Zeroizing;

use super::kdf::SALT_LEN;

// ---------------------------------------------------------------------------
// Key-slot file

/// The fixed name format version 1 gave the key-slot file on every install. Version 2
/// picks a random name at creation; a version-1 file is renamed at its first open.
pub(crate) const LEGACY_KEYSLOT_FILE_NAME: &str = "9c41e07a5b38f2d6e15a0c7b94d2836f";
/// Bytes of the block holding the salt: one 4 KiB sector of its own, so that a torn
/// write of a slot position can never reach it.
pub(crate) const SALT_BLOCK_LEN: usize = 4096;
/// Key-slot positions. Every one is always present; a used one is indistinguishable from
/// an unused one without its key. Four leave room for a real profile, a decoy profile,
/// and a spare that a rewrite goes to before the old position is erased.
pub(crate) const SLOT_COUNT: usize = 4;
/// Bytes of one position: a 4 KiB sector each, so a torn write harms one position only.
pub(crate) const SLOT_LEN: usize = 4096;
/// Total size of the key-slot file.
pub(crate) const KEYSLOT_FILE_LEN: usize = SALT_BLOCK_LEN + SLOT_COUNT * SLOT_LEN;
/// Plaintext bytes in a position.
pub(crate) const SLOT_PLAINTEXT_LEN: usize = SLOT_LEN - XCHACHA_NONCE_LEN - AEAD_TAG_LEN;
/// The format version a slot payload carries (inside the encryption, never in clear).
pub(crate) const FORMAT_VERSION: u8 = 2;
/// The previous format version, still read so that its vaults open and are rewritten.
const LEGACY_FORMAT_VERSION: u8 = 1;
/// Version 1's slot kinds (ordinary profile, duress slot), read and ignored.
const LEGACY_SLOT_KINDS: [u8; 2] = [0, 1];
/// Length of a profile's random id.
pub(crate) const PROFILE_ID_LEN: usize = 16;
/// Length of the linked-KEK field.
const LINKED_KEK_LEN: usize = 32;

/// What a used key-slot position holds: everything needed to read one profile's data,
/// and nothing about its role.
pub(crate) struct SlotPayload {
    /// Increases by one at every rewrite; if two positions hold the same profile (a
    /// rewrite was interrupted), the higher generation is current.
    pub(crate) generation: u64,
    /// Random; tells positions of the same profile apart from another profile's.
    pub(crate) profile_id: [u8; PROFILE_ID_LEN],
    /// The profile's data key: root of its file names and record keys.
    pub(crate) data_key: Secret32,
    /// The current segment's epoch, which names it.
    pub(crate) epoch: u64,
    /// The current segment's random secret; compaction replaces it, which is what makes
    /// the old segment's records unreadable even with the passphrase.
    pub(crate) segment_secret: Secret32,
    /// The KEK of the profile this one carries along in its rewrites (a real profile's
    /// decoy: the duress passphrase's KEK, so that the owner can open and fill the
    /// decoy with the real passphrase). `None` when there is none; the field is then
    /// sealed as fresh random bytes, so a payload read back always has `Some`, which
    /// opens nothing when it was random.
    pub(crate) linked_kek: Option<Secret32>,
}

impl core::fmt::Debug for SlotPayload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SlotPayload")
            .field("generation", &self.generation)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// The two positions of key-slot position `index`'s pair, as a bit mask. A profile
/// keeps to its pair: its rewrites move it between the two, so that a profile it
/// carries along can keep to the other pair.
pub(crate) fn pair_mask(index: usize) -> u8 {
    0b11 << ((index / 2) * 2)
}

/// The other position of `index`'s pair: where the next rewrite seals its new copy.
pub(crate) fn pair_partner(index: usize) -> usize {
    index ^ 1
}

/// Every position, as a bit mask.
pub(crate) const ALL_POSITIONS: u8 = (1 << SLOT_COUNT) - 1;

const _: () = assert!(SLOT_COUNT == 4, "pair_mask assumes two pairs");

/// A position decrypted but its payload is not one this version reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SlotDecodeError {
    /// A newer format version.
    Unsupported,
    /// Authenticated, yet malformed: a bug, or someone holding the key.
    Malformed,
}

impl SlotPayload {
    /// The same profile at the next generation (same keys, same link).
    pub(crate) fn next_generation(&self) -> Self {
        Self {
            generation: self.generation.saturating_add(1),
            profile_id: self.profile_id,
            data_key: self.data_key.clone(),
            epoch: self.epoch,
            segment_secret: self.segment_secret.clone(),
            linked_kek: self.linked_kek.clone(),
        }
    }

    /// The version-2 plaintext; `filler` (random) stands in for an absent linked KEK.
    pub(crate) fn encode(&self, filler: &[u8; LINKED_KEK_LEN]) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(SLOT_PLAINTEXT_LEN));
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.profile_id);
        out.extend_from_slice(self.data_key.as_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(self.segment_secret.as_bytes());
        match &self.linked_kek {
            Some(kek) => out.extend_from_slice(kek.as_bytes()),
            None => out.extend_from_slice(filler),
        }
        out.resize(SLOT_PLAINTEXT_LEN, 0);
        out
    }

    /// Reads a version-2 payload, or a version-1 one (whose kind, reserved and
    /// erase-on-open fields are ignored: a version-1 duress slot reads as the ordinary
    /// profile it is in version 2).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, SlotDecodeError> {
        let malformed = |_: DecodeError| SlotDecodeError::Malformed;
        let secret = |r: &mut Reader<'_>| {
            Secret32::from_slice(r.take(32).map_err(malformed)?)
                .map_err(|_| SlotDecodeError::Malformed)
        };
        let mut r = Reader::new(bytes);
        let version = r.u8().map_err(malformed)?;
        let payload = match version {
            FORMAT_VERSION => Self {
                generation: r.u64().map_err(malformed)?,
                profile_id: r.array::<PROFILE_ID_LEN>().map_err(malformed)?,
                data_key: secret(&mut r)?,
                epoch: r.u64().map_err(malformed)?,
                segment_secret: secret(&mut r)?,
                linked_kek: Some(secret(&mut r)?),
            },
            LEGACY_FORMAT_VERSION => {
                let kind = r.u8().map_err(malformed)?;
                if !LEGACY_SLOT_KINDS.contains(&kind) {
                    return Err(SlotDecodeError::Unsupported);
                }
                let _reserved_positions = r.u8().map_err(malformed)?;
                let generation = r.u64().map_err(malformed)?;
                let profile_id = r.array::<PROFILE_ID_LEN>().map_err(malformed)?;
                let data_key = secret(&mut r)?;
                let epoch = r.u64().map_err(malformed)?;
                let segment_secret = secret(&mut r)?;
                let _erase_on_open = r.u8().map_err(malformed)?;
                let linked_kek = match r.u8().map_err(malformed)? {
                    0 => None,
                    1 => Some(secret(&mut r)?),
                    _ => return Err(SlotDecodeError::Malformed),
                };
                Self {
                    generation,
                    profile_id,
                    data_key,
                    epoch,
                    segment_secret,
                    linked_kek,
                }
            }
            _ => return Err(SlotDecodeError::Unsupported),
        };
        if r.rest().iter().any(|&b| b != 0) || bytes.len() != SLOT_PLAINTEXT_LEN {
            return Err(SlotDecodeError::Malformed);
        }
        Ok(payload)
    }
}

fn slot_aad(index: usize, salt: &[u8; SALT_LEN]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(5 + SALT_LEN);
    aad.extend_from_slice(b"slot");
    aad.push(u8::try_from(index).unwrap_or(u8::MAX));
    aad.extend_from_slice(salt);
    aad
}

/// Seals a payload for position `index` under that position's key.
pub(crate) fn seal_slot(
    slot_key: &Secret32,
    index: usize,
    salt: &[u8; SALT_LEN],
    payload: &SlotPayload,
    nonce: &[u8; XCHACHA_NONCE_LEN],
    filler: &[u8; 32],
) -> Vec<u8> {
    let plaintext = payload.encode(filler);
    let mut out = Vec::with_capacity(SLOT_LEN);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&xchacha_seal(
        slot_key,
        nonce,
        &slot_aad(index, salt),
        &plaintext,
    ));
    out
}

/// Trial-decrypts position `index`: `None` if it is not sealed under this key (random
/// bytes, or another profile's slot).
pub(crate) fn open_slot(
    slot_key: &Secret32,
    index: usize,
    salt: &[u8; SALT_LEN],
    position: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let mut r = Reader::new(position);
    let nonce = r.array::<XCHACHA_NONCE_LEN>().ok()?;
    xchacha_open(slot_key, &nonce, &slot_aad(index, salt), r.rest()).ok()
}

// ---------------------------------------------------------------------------
// Names and keys derived from the data key

/// Length of every file name in the directory, in hex digits.
pub(crate) const NAME_HEX_LEN: usize = 32;

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The profile's file-name key: names look random to anyone without the data key, yet
/// the profile finds its own files without a directory listing to trust.
pub(crate) fn name_key(data_key: &Secret32) -> Secret32 {
    let okm = hkdf_sha256::<32>(&[], data_key.as_bytes(), &[b"passage/vault/v1/names"]);
    Secret32::from_bytes(*okm)
}

fn derived_name(name_key: &Secret32, role: &[u8], epoch: u64) -> String {
    let tag = hmac_sha256(name_key.as_bytes(), &[role, &epoch.to_be_bytes()]);
    hex(&tag[..NAME_HEX_LEN / 2])
}

/// The name of the segment of `epoch`.
pub(crate) fn segment_name(name_key: &Secret32, epoch: u64) -> String {
    derived_name(name_key, b"segment", epoch)
}

/// The name a segment of `epoch` is written under before it is renamed into place.
pub(crate) fn temp_name(name_key: &Secret32, epoch: u64) -> String {
    derived_name(name_key, b"temp", epoch)
}

/// The two keys that seal a segment's records.
pub(crate) struct SegmentKeys {
    header: Secret32,
    body: Secret32,
}

impl core::fmt::Debug for SegmentKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SegmentKeys([redacted])")
    }
}

impl SegmentKeys {
    /// Both the data key and the segment's own secret are needed: dropping the secret
    /// from the key slot makes the segment unreadable, passphrase or not.
    pub(crate) fn derive(data_key: &Secret32, segment_secret: &Secret32, epoch: u64) -> Self {
        let root = hkdf_sha256::<32>(
            data_key.as_bytes(),
            segment_secret.as_bytes(),
            &[b"passage/vault/v1/segment", &epoch.to_be_bytes()],
        );
        let header = hkdf_sha256::<32>(&[], root.as_ref(), &[b"record header"]);
        let body = hkdf_sha256::<32>(&[], root.as_ref(), &[b"record body"]);
        Self {
            header: Secret32::from_bytes(*header),
            body: Secret32::from_bytes(*body),
        }
    }
}

// ---------------------------------------------------------------------------
// Records

/// Records start at multiples of this, and the smallest record is this long.
pub(crate) const RECORD_ALIGN: usize = 256;
/// The largest record: 4 MiB, enough for several minutes of Opus voice at 16 kbit/s in
/// one transaction, small enough that reading one value never decrypts more than this.
pub(crate) const MAX_RECORD_LEN: usize = 4 << 20;
/// A record's header: nonce ‖ sealed length.
pub(crate) const RECORD_HEADER_LEN: usize = XCHACHA_NONCE_LEN + 4 + AEAD_TAG_LEN;
/// Bytes of a record that are not content: header, body tag, content length.
pub(crate) const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + AEAD_TAG_LEN + 4;
/// The largest transaction, encoded: a 4-byte count, then per put 1 + 2 + key + 4 +
/// value bytes and per delete 1 + 2 + key bytes.
pub const MAX_TRANSACTION_LEN: usize = MAX_RECORD_LEN - RECORD_OVERHEAD;
/// The longest vault key (application name). Keys live in memory in the index; a
/// limit keeps a caller's bug from filling it.
pub const MAX_KEY_LEN: usize = 1024;

/// The record length for `content_len` bytes of content: the smallest power of two from
/// [`RECORD_ALIGN`] that holds it, so sizes on disk say little about what they hold.
pub(crate) fn record_len_for(content_len: usize) -> Option<usize> {
    let needed = content_len.checked_add(RECORD_OVERHEAD)?;
    let len = needed.max(RECORD_ALIGN).checked_next_power_of_two()?;
    (len <= MAX_RECORD_LEN).then_some(len)
}

/// Whether a length read from a header is one a writer could have chosen.
pub(crate) fn is_record_len(len: usize) -> bool {
    len.is_power_of_two() && (RECORD_ALIGN..=MAX_RECORD_LEN).contains(&len)
}

/// Seals `content` as the record at `offset`. Returns the record's bytes.
pub(crate) fn seal_record(
    keys: &SegmentKeys,
    offset: u64,
    content: &[u8],
    nonce: &[u8; XCHACHA_NONCE_LEN],
) -> Option<Vec<u8>> {
    let len = record_len_for(content.len())?;
    let aad = offset.to_be_bytes();
    let mut body = Zeroizing::new(Vec::with_capacity(len - RECORD_HEADER_LEN - AEAD_TAG_LEN));
    body.extend_from_slice(&u32::try_from(content.len()).ok()?.to_be_bytes());
    body.extend_from_slice(content);
    body.resize(len - RECORD_HEADER_LEN - AEAD_TAG_LEN, 0);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&xchacha_seal(
        &keys.header,
        nonce,
        &aad,
        &u32::try_from(len).ok()?.to_be_bytes(),
    ));
    out.extend_from_slice(&xchacha_seal(&keys.body, nonce, &aad, &body));
    Some(out)
}

/// Opens a record's header: its length, if the header is ours and for this offset.
pub(crate) fn open_record_header(keys: &SegmentKeys, offset: u64, header: &[u8]) -> Option<usize> {
    let mut r = Reader::new(header);
    let nonce = r.array::<XCHACHA_NONCE_LEN>().ok()?;
    let sealed = r.take(4 + AEAD_TAG_LEN).ok()?;
    let plain = xchacha_open(&keys.header, &nonce, &offset.to_be_bytes(), sealed).ok()?;
    let mut r = Reader::new(&plain);
    usize::try_from(r.u32().ok()?).ok()
}

/// Why a record's body was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// The AEAD refused it: torn, damaged, or not ours.
    Unauthentic,
    /// Authentic but malformed (bad length or non-zero padding).
    Malformed,
}

/// Opens a whole record (header checked by the caller) and returns its content.
pub(crate) fn open_record_body(
    keys: &SegmentKeys,
    offset: u64,
    record: &[u8],
) -> Result<Zeroizing<Vec<u8>>, BodyError> {
    let mut r = Reader::new(record);
    let nonce = r
        .array::<XCHACHA_NONCE_LEN>()
        .map_err(|_| BodyError::Unauthentic)?;
    r.take(4 + AEAD_TAG_LEN)
        .map_err(|_| BodyError::Unauthentic)?;
    let mut body = xchacha_open(&keys.body, &nonce, &offset.to_be_bytes(), r.rest())
        .map_err(|_| BodyError::Unauthentic)?;
    let mut r = Reader::new(&body);
    let content_len = r.u32().map_err(|_| BodyError::Malformed)?;
    let content_len = usize::try_from(content_len).map_err(|_| BodyError::Malformed)?;
    r.take(content_len).map_err(|_| BodyError::Malformed)?;
    if r.rest().iter().any(|&b| b != 0) {
        return Err(BodyError::Malformed);
    }
    body.drain(..4);
    body.truncate(content_len);
    Ok(body)
}

// ---------------------------------------------------------------------------
// Transactions (record content)

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// One change in a transaction.
#[derive(Clone, Copy)]
pub(crate) enum Op<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
}

impl Op<'_> {
    pub(crate) fn key(&self) -> &[u8] {
        match self {
            Op::Put(key, _) | Op::Delete(key) => key,
        }
    }
}

/// Encoded length of an op (key assumed within [`MAX_KEY_LEN`]).
pub(crate) fn op_len(key_len: usize, value_len: Option<usize>) -> usize {
    let base = 1 + 2 + key_len;
    match value_len {
        Some(len) => base.saturating_add(4).saturating_add(len),
        None => base,
    }
}

/// Encodes a transaction into a buffer wiped on drop, sized exactly once so that no
/// reallocation leaves a plaintext copy behind. `None` if a length does not fit.
pub(crate) fn encode_ops<'a, I>(ops: I) -> Option<Zeroizing<Vec<u8>>>
where
    I: Iterator<Item = Op<'a>> + Clone,
{
    let mut total = 4usize;
    let mut count = 0u32;
    for op in ops.clone() {
        let value_len = match op {
            Op::Put(_, value) => Some(value.len()),
            Op::Delete(_) => None,
        };
        total = total.checked_add(op_len(op.key().len(), value_len))?;
        count = count.checked_add(1)?;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(total));
    out.extend_from_slice(&count.to_be_bytes());
    for op in ops {
        let key_len = u16::try_from(op.key().len()).ok()?;
        match op {
            Op::Put(key, value) => {
                out.push(OP_PUT);
                out.extend_from_slice(&key_len.to_be_bytes());
                out.extend_from_slice(key);
                out.extend_from_slice(&u32::try_from(value.len()).ok()?.to_be_bytes());
                out.extend_from_slice(value);
            }
            Op::Delete(key) => {
                out.push(OP_DELETE);
                out.extend_from_slice(&key_len.to_be_bytes());
                out.extend_from_slice(key);
            }
        }
    }
    Some(out)
}

/// Decodes a transaction. Content is authenticated, so an error here means a bug or a
/// forger holding the key; it is reported as corruption.
pub(crate) fn decode_ops(content: &[u8]) -> Result<Vec<Op<'_>>, DecodeError> {
    let mut r = Reader::new(content);
    let count = r.u32()?;
    let mut ops = Vec::new();
    for _ in 0..count {
        let op = match r.u8()? {
            OP_PUT => {
                let key = r.bytes_u16(MAX_KEY_LEN)?;
                let value_len = usize::try_from(r.u32()?).map_err(|_| DecodeError::Invalid {
                    field: "value length",
                })?;
                Op::Put(key, r.take(value_len)?)
            }
            OP_DELETE => Op::Delete(r.bytes_u16(MAX_KEY_LEN)?),
            other => {
                return Err(DecodeError::UnknownValue {
                    field: "op",
                    value: u32::from(other),
                });
            }
        };
        ops.push(op);
    }
    r.finish()?;
    Ok(ops)
}
