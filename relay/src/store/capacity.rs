//! [`StoreCapacity`]: the relay's global storage limits, checked by the ops that add
//! data (`CreateQueue`, `Append`) as part of their batch, so that no number of
//! connections racing each other can take the store past them.
//!
//! ```text
//!  config ──set_limits──► StoreCapacity ◄──set_disk_low── disk watch (free space, every few s)
//!                               │
//!  ops::apply(CreateQueue / Append) ── over a limit, or disk low? ──► WriteError::Full
//! ```
//!
//! What is counted is the live data ([`STORED_QUEUE_BYTES`] per queue,
//! [`STORED_MESSAGE_BYTES`] per message), from the in-memory index; the disk's free
//! space comes from the file system. Removals (`ACK`, `DEL`, retention) are never
//! refused: they are how a full relay gets room again.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::limits::{STORED_MESSAGE_BYTES, STORED_QUEUE_BYTES};

/// The limits, shared by the store and whoever watches the disk. `Default`: no limit.
#[derive(Debug)]
pub struct StoreCapacity {
    max_queues: AtomicU64,
    max_stored_bytes: AtomicU64,
    disk_low: AtomicBool,
}

impl Default for StoreCapacity {
    fn default() -> Self {
        Self {
            max_queues: AtomicU64::new(u64::MAX),
            max_stored_bytes: AtomicU64::new(u64::MAX),
            disk_low: AtomicBool::new(false),
        }
    }
}

/// What the store holds now, as the limits count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub queues: u64,
    pub messages: u64,
}

impl Usage {
    fn bytes(self) -> u64 {
        self.queues
            .saturating_mul(STORED_QUEUE_BYTES)
            .saturating_add(self.messages.saturating_mul(STORED_MESSAGE_BYTES))
    }
}

impl StoreCapacity {
    /// Sets the totals: queues at most, and bytes of queues and messages at most.
    pub fn set_limits(&self, max_queues: u64, max_stored_bytes: u64) {
        self.max_queues.store(max_queues, Ordering::Relaxed);
        self.max_stored_bytes
            .store(max_stored_bytes, Ordering::Relaxed);
    }

    /// Says whether the disk is below its free-space watermark (then nothing is added).
    pub fn set_disk_low(&self, low: bool) {
        self.disk_low.store(low, Ordering::Relaxed);
    }

    /// Whether the disk was last found below its watermark.
    pub fn disk_low(&self) -> bool {
        self.disk_low.load(Ordering::Relaxed)
    }

    /// Whether one more queue fits.
    pub(crate) fn queue_fits(&self, usage: Usage) -> bool {
        !self.disk_low()
            && usage.queues < self.max_queues.load(Ordering::Relaxed)
            && usage.bytes().saturating_add(STORED_QUEUE_BYTES)
                <= self.max_stored_bytes.load(Ordering::Relaxed)
    }

    /// Whether one more message fits.
    pub(crate) fn message_fits(&self, usage: Usage) -> bool {
        !self.disk_low()
            && usage.bytes().saturating_add(STORED_MESSAGE_BYTES)
                <= self.max_stored_bytes.load(Ordering::Relaxed)
    }
}

/// Bytes an unprivileged process may still write on the file system holding `path`.
pub fn free_disk_bytes(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_queues_messages_and_the_disk() {
        let capacity = StoreCapacity::default();
        let usage = |queues, messages| Usage { queues, messages };
        assert!(capacity.queue_fits(usage(u64::MAX - 1, u64::MAX)));
        capacity.set_limits(2, 2 * STORED_QUEUE_BYTES + 3 * STORED_MESSAGE_BYTES);
        assert!(capacity.queue_fits(usage(1, 0)));
        assert!(!capacity.queue_fits(usage(2, 0)));
        // Bytes: two queues and three messages fit exactly, a fourth does not.
        assert!(capacity.message_fits(usage(2, 2)));
        assert!(!capacity.message_fits(usage(2, 3)));
        // A queue fits to the byte, then the bytes, not the count, refuse the next one.
        assert!(capacity.queue_fits(usage(1, 3)));
        capacity.set_limits(10, 2 * STORED_QUEUE_BYTES + 3 * STORED_MESSAGE_BYTES);
        assert!(!capacity.queue_fits(usage(2, 3)));
        capacity.set_disk_low(true);
        assert!(!capacity.message_fits(usage(0, 0)) && !capacity.queue_fits(usage(0, 0)));
        capacity.set_disk_low(false);
        assert!(capacity.message_fits(usage(0, 0)));
    }

    #[test]
    fn free_space_is_measured() {
        let dir = std::env::temp_dir();
        assert!(free_disk_bytes(&dir).is_ok_and(|free| free > 0));
        assert!(free_disk_bytes(Path::new("/no/such/dir/for/passage")).is_err());
    }
}
