//! A segment: one file of encrypted, padded records, appended to and replayed at open.
//!
//! Appending seals the record, writes it at the end of the log and syncs; only then is
//! the commit acknowledged. The file is pre-filled with random bytes up to a size from
//! [`segment_len_for`], so its length moves in coarse steps and the end of the log is
//! invisible: past it there are only random bytes, which no header key opens.
//!
//! Replay reads records from offset 0 until one fails its AEAD. If none of the aligned
//! offsets after that point holds a valid header, the failure is the log's end: a torn
//! last write, never acknowledged, and ignored (the next append overwrites it). If a
//! valid header follows, a committed record was damaged: [`OpenError::Corrupted`].
//! Falling back to older versions of the keys in a damaged record could roll a ratchet
//! back and reuse message keys, so the vault refuses rather than guesses.
//!
//! One limit follows from the design: damage to the *last* record cannot be told from
//! a torn write, so that one commit is lost without an error.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use passage_crypto::primitives::XCHACHA_NONCE_LEN;
use zeroize::Zeroizing;

use super::error::{OpenError, ReadError};
use super::format::{
    BodyError, MAX_RECORD_LEN, RECORD_ALIGN, RECORD_HEADER_LEN, SegmentKeys, is_record_len,
    open_record_body, open_record_header, record_len_for, seal_record,
};
use super::fsio;

/// The smallest segment file: an empty vault is this long.
pub(crate) const SEGMENT_MIN_LEN: u64 = 64 * 1024;
/// Up to this size segments double; past it they grow in steps of this size, which
/// bounds both the slack (random bytes past the end) and what the size reveals.
pub(crate) const SEGMENT_STEP_LEN: u64 = 16 * 1024 * 1024;
/// Bytes read at once while scanning past a failed record.
const SCAN_CHUNK: usize = 1024 * 1024;

/// The file length for a log that ends at `end`.
pub(crate) fn segment_len_for(end: u64) -> u64 {
    let mut len = SEGMENT_MIN_LEN;
    while len < end && len < SEGMENT_STEP_LEN {
        len *= 2;
    }
    if len >= end {
        len
    } else {
        end.div_ceil(SEGMENT_STEP_LEN)
            .saturating_mul(SEGMENT_STEP_LEN)
    }
}

/// Where a record sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordLoc {
    pub(crate) offset: u64,
    pub(crate) len: usize,
}

/// An open segment.
pub(crate) struct Segment {
    file: File,
    keys: SegmentKeys,
    /// The file's length.
    len: u64,
    /// Where the next record goes: the end of the last valid record.
    end: u64,
}

impl core::fmt::Debug for Segment {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Segment")
            .field("len", &self.len)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl Segment {
    /// Opens the segment at `path` and replays it, handing each record's location and
    /// content to `apply` in log order. Writes nothing.
    pub(crate) fn open(
        path: &Path,
        keys: SegmentKeys,
        mut apply: impl FnMut(RecordLoc, &[u8]) -> Result<(), OpenError>,
    ) -> Result<Self, OpenError> {
        let file = match fsio::open_rw(path) {
            Ok(file) => file,
            // The key slot names a segment that is not there: data is missing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(OpenError::Corrupted),
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata()?.len();
        let mut segment = Self {
            file,
            keys,
            len,
            end: 0,
        };
        let mut record = Vec::new();
        loop {
            let offset = segment.end;
            let Some(loc) = segment.header_at(offset)? else {
                break;
            };
            if loc.offset + loc.len as u64 > len {
                // The size change of a torn append did not reach the disk.
                break;
            }
            record.resize(loc.len, 0);
            segment.file.read_exact_at(&mut record, offset)?;
            match open_record_body(&segment.keys, offset, &record) {
                Ok(content) => apply(loc, &content)?,
                Err(BodyError::Unauthentic) => break,
                Err(BodyError::Malformed) => return Err(OpenError::Corrupted),
            }
            segment.end = offset + loc.len as u64;
        }
        if segment.valid_header_after(segment.end)? {
            return Err(OpenError::Corrupted);
        }
        Ok(segment)
    }

    /// Writes a new segment under `temp` (`fill` appends its records with
    /// [`Segment::write_record`]), pads it with random bytes, syncs it, and renames it to
    /// `path`. The file at `path` is complete or absent, never partial; on error the
    /// temporary file is removed.
    pub(crate) fn create(
        dir: &Path,
        temp: &str,
        path: &str,
        keys: SegmentKeys,
        fill: impl FnOnce(&mut Self) -> io::Result<()>,
    ) -> io::Result<Self> {
        let temp_path = dir.join(temp);
        let file = fsio::create_truncate(&temp_path)?;
        let mut segment = Self {
            file,
            keys,
            len: 0,
            end: 0,
        };
        let written = fill(&mut segment).and_then(|()| {
            let target = segment_len_for(segment.end);
            fsio::fill_random(&segment.file, segment.end, target)?;
            segment.len = target;
            segment.file.sync_all()?;
            std::fs::rename(&temp_path, dir.join(path))?;
            fsio::sync_dir(dir)
        });
        if let Err(e) = written {
            let _ = fsio::remove_if_present(&temp_path);
            return Err(e);
        }
        Ok(segment)
    }

    /// Appends one record and syncs. When this returns `Ok`, the record survives a
    /// crash. On `Err` the record may or may not be on disk: the caller must stop.
    pub(crate) fn append(&mut self, content: &[u8]) -> io::Result<RecordLoc> {
        let loc = self.write_record(content)?;
        if self.end > self.len {
            let target = segment_len_for(self.end);
            fsio::fill_random(&self.file, self.end, target)?;
            self.len = target;
            self.file.sync_all()?;
        } else {
            self.file.sync_data()?;
        }
        Ok(loc)
    }

    /// Reads and opens the record at `loc`, returning its content.
    pub(crate) fn read(&self, loc: RecordLoc) -> Result<Zeroizing<Vec<u8>>, ReadError> {
        let mut record = vec![0u8; loc.len];
        self.file.read_exact_at(&mut record, loc.offset)?;
        open_record_body(&self.keys, loc.offset, &record).map_err(|_| ReadError::Corrupted)
    }

    /// The end of the log.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Seals and writes a record at the end, without syncing (for [`Segment::create`]).
    pub(crate) fn write_record(&mut self, content: &[u8]) -> io::Result<RecordLoc> {
        let len = record_len_for(content.len())
            .ok_or_else(|| io::Error::other("record longer than the format allows"))?;
        let nonce = fsio::random_array::<XCHACHA_NONCE_LEN>()?;
        let offset = self.end;
        let record = seal_record(&self.keys, offset, content, &nonce)
            .ok_or_else(|| io::Error::other("record longer than the format allows"))?;
        self.file.write_all_at(&record, offset)?;
        self.end = offset + len as u64;
        Ok(RecordLoc { offset, len })
    }

    /// The record whose header is at `offset`, if one of ours is there.
    fn header_at(&self, offset: u64) -> Result<Option<RecordLoc>, OpenError> {
        if offset + RECORD_HEADER_LEN as u64 > self.len {
            return Ok(None);
        }
        let mut header = [0u8; RECORD_HEADER_LEN];
        self.file.read_exact_at(&mut header, offset)?;
        match open_record_header(&self.keys, offset, &header) {
            None => Ok(None),
            Some(len) if is_record_len(len) => Ok(Some(RecordLoc { offset, len })),
            // Authentic, yet no writer would have chosen this length.
            Some(_) => Err(OpenError::Corrupted),
        }
    }

    /// Whether any aligned offset after `end` holds a valid header: if so, the record
    /// at `end` was committed and then damaged.
    fn valid_header_after(&self, end: u64) -> Result<bool, OpenError> {
        let align = RECORD_ALIGN as u64;
        let mut chunk = vec![0u8; SCAN_CHUNK];
        let mut start = end + align;
        while start + RECORD_HEADER_LEN as u64 <= self.len {
            let n = usize::try_from(self.len - start).map_or(SCAN_CHUNK, |l| l.min(SCAN_CHUNK));
            self.file.read_exact_at(&mut chunk[..n], start)?;
            let mut at = 0usize;
            while at + RECORD_HEADER_LEN <= n {
                let offset = start + at as u64;
                if open_record_header(&self.keys, offset, &chunk[at..at + RECORD_HEADER_LEN])
                    .is_some()
                {
                    return Ok(true);
                }
                at += RECORD_ALIGN;
            }
            start += (n - n % RECORD_ALIGN).max(RECORD_ALIGN) as u64;
        }
        Ok(false)
    }
}

const _: () =
    assert!(SCAN_CHUNK.is_multiple_of(RECORD_ALIGN) && MAX_RECORD_LEN as u64 <= SEGMENT_STEP_LEN);
