//! The in-memory index: which record holds the current value of each key, and how much
//! of the segment is garbage. Values stay on disk, encrypted; only keys are in memory.

use std::collections::{BTreeMap, HashMap};

use super::format::Op;
use super::secret::SecretBytes;
use super::segment::RecordLoc;

/// Per record: its length and how many keys it still holds the current value of.
#[derive(Debug, Clone, Copy)]
struct RecordUse {
    len: usize,
    live: u32,
}

/// Key → record, and garbage accounting for compaction.
#[derive(Debug, Default)]
pub(crate) struct Index {
    keys: BTreeMap<SecretBytes, u64>,
    records: HashMap<u64, RecordUse>,
    /// Bytes of records that hold no current value.
    garbage: u64,
}

impl Index {
    /// Applies a committed record's ops, in order.
    pub(crate) fn apply(&mut self, loc: RecordLoc, ops: &[Op<'_>]) {
        self.records.insert(
            loc.offset,
            RecordUse {
                len: loc.len,
                live: 0,
            },
        );
        for op in ops {
            let key = SecretBytes::new(op.key());
            let previous = match op {
                Op::Put(..) => {
                    self.bump(loc.offset, 1);
                    self.keys.insert(key, loc.offset)
                }
                Op::Delete(_) => self.keys.remove(&key),
            };
            if let Some(previous) = previous {
                self.bump(previous, -1);
                // The record being applied is only judged once all its ops are in.
                if previous != loc.offset {
                    self.collect(previous);
                }
            }
        }
        self.collect(loc.offset);
    }

    /// The record holding `key`'s current value.
    pub(crate) fn get(&self, key: &[u8]) -> Option<RecordLoc> {
        let offset = *self.keys.get(&SecretBytes::new(key))?;
        let used = self.records.get(&offset)?;
        Some(RecordLoc {
            offset,
            len: used.len,
        })
    }

    /// Whether `key` has a value.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.keys.contains_key(&SecretBytes::new(key))
    }

    /// Keys starting with `prefix`, in byte order.
    pub(crate) fn keys_with_prefix<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = &'a SecretBytes> + 'a {
        self.keys
            .range(SecretBytes::new(prefix)..)
            .map(|(key, _)| key)
            .take_while(move |key| key.as_bytes().starts_with(prefix))
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Bytes of garbage in the segment.
    pub(crate) fn garbage(&self) -> u64 {
        self.garbage
    }

    /// Records that still hold a current value, in log order.
    pub(crate) fn live_records(&self) -> Vec<RecordLoc> {
        let mut out: Vec<RecordLoc> = self
            .records
            .iter()
            .map(|(&offset, used)| RecordLoc {
                offset,
                len: used.len,
            })
            .collect();
        out.sort_by_key(|loc| loc.offset);
        out
    }

    /// Whether the current value of `key` is in the record at `offset`.
    pub(crate) fn is_current(&self, key: &[u8], offset: u64) -> bool {
        self.keys.get(&SecretBytes::new(key)) == Some(&offset)
    }

    fn bump(&mut self, offset: u64, by: i32) {
        if let Some(used) = self.records.get_mut(&offset) {
            used.live = used.live.saturating_add_signed(by);
        }
    }

    /// Drops a record that holds nothing current and counts it as garbage.
    fn collect(&mut self, offset: u64) {
        if let Some(used) = self.records.get(&offset).copied()
            && used.live == 0
        {
            self.records.remove(&offset);
            self.garbage += used.len as u64;
        }
    }
}
