//! Spare buffers kept per thread, so a busy relay refills the buffers it has finished
//! with instead of allocating new ones.
//!
//! The relay moves a few buffers of 4–8 KiB per message (blocks, a reassembled frame,
//! a sealed delivery). That is above what the allocator's per-thread cache holds, so
//! each allocation and free took its slow path, more so with thousands of connections
//! fragmenting the heap. A buffer that is done with is handed back with its type's
//! `recycle` and taken again by the code that fills that type of buffer on the same
//! thread. Each list is capped, whatever the number of connections, so idle
//! connections cost nothing more; beyond the cap a buffer is freed as before.
//!
//! A spare buffer holds the bytes it last carried until it is overwritten, as freed
//! memory would; every taker overwrites the whole buffer (or clears it) before use.
//! Spares are for buffers of wire traffic (blocks, frames, TLS records, sealed
//! bodies), never for keys or message plaintext, which are zeroized when dropped
//! instead.
//!
//! Users: [`Block::recycle`](crate::Block::recycle),
//! [`FrameDecoder::recycle`](crate::FrameDecoder::recycle),
//! [`SealedBody::recycle`](crate::delivery::SealedBody::recycle), and the transport's
//! read-ahead buffer.

use std::cell::RefCell;
use std::thread::LocalKey;

/// A per-thread list of spare buffers of one kind.
pub type SpareList<T> = LocalKey<RefCell<Vec<T>>>;

/// A spare buffer from `list`, if this thread has one.
pub fn take<T: 'static>(list: &'static SpareList<T>) -> Option<T> {
    // `try_with`: while the thread's locals are being destroyed there are no spares,
    // and no panic.
    list.try_with(|spare| {
        spare
            .try_borrow_mut()
            .ok()
            .and_then(|mut spare| spare.pop())
    })
    .ok()
    .flatten()
}

/// Keeps `item` in `list` for reuse on this thread, unless `cap` are already kept (then
/// it is dropped, as it is while the thread's locals are being destroyed).
pub fn give<T: 'static>(list: &'static SpareList<T>, item: T, cap: usize) {
    let _ = list.try_with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut()
            && spare.len() < cap
        {
            spare.push(item);
        }
    });
}
