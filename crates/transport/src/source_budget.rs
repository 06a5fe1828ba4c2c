//! [`SourceBudget`]: how much one source address may do (handshakes here, queue
//! creations in the relay), as a token bucket per source, in memory only.
//!
//! ```text
//!  peer IP ─► source (IPv4 address, IPv6 /64) ─► keyed hash ─► bucket ─► take(): yes / no
//! ```
//!
//! The table holds no address: a source is kept as a 64-bit hash under a key drawn at
//! random when the budget is made, so a memory image shows no IP address, and nothing
//! here is logged, printed or written. An IPv6 host is given a whole /64 by its
//! provider, so a /64 is one source; one IPv4 address is one source (a carrier-grade
//! NAT or a camp's shared Wi-Fi is one source too: budgets are meant for floods, not
//! for one person's pace).
//!
//! Time comes in as milliseconds of the caller's monotonic clock.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Sources tracked at most (about 40 bytes each). Past it, buckets that have filled
/// up again are dropped (at most once a second); if none has, new sources share one
/// overflow bucket until some do, so an attacker with many addresses cannot grow the
/// table without bound, only slow down the other new sources while it lasts.
pub const MAX_TRACKED_SOURCES: usize = 65_536;

/// How often a full table is swept for buckets that filled up again.
const PRUNE_INTERVAL_MS: u64 = 1_000;

/// A budget's rate: `burst` at once, refilled at `count` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRate {
    /// Taken at once from a full bucket (at least 1).
    pub burst: u32,
    /// Given back per `period` (0: never refilled).
    pub count: u32,
    /// The refill period (at least 1 ms).
    pub period: Duration,
}

impl SourceRate {
    /// `burst` at once, then `count` per `period`.
    pub fn new(burst: u32, count: u32, period: Duration) -> Self {
        Self {
            burst,
            count,
            period,
        }
    }

    fn period_ms(&self) -> u64 {
        u64::try_from(self.period.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// A full bucket, in units of 1/period_ms of a token.
    fn capacity(&self) -> u64 {
        u64::from(self.burst.max(1)).saturating_mul(self.period_ms())
    }
}

/// One source's tokens, × `period_ms` so that refills add up exactly.
#[derive(Clone, Copy)]
struct Bucket {
    scaled: u64,
    last_ms: u64,
}

impl Bucket {
    fn full(rate: &SourceRate, now_ms: u64) -> Self {
        Self {
            scaled: rate.capacity(),
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, rate: &SourceRate, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.scaled = self
            .scaled
            .saturating_add(elapsed.saturating_mul(u64::from(rate.count)))
            .min(rate.capacity());
    }

    fn take(&mut self, rate: &SourceRate, now_ms: u64) -> bool {
        self.refill(rate, now_ms);
        let cost = rate.period_ms();
        if self.scaled >= cost {
            self.scaled -= cost;
            true
        } else {
            false
        }
    }

    fn has(&mut self, rate: &SourceRate, now_ms: u64) -> bool {
        self.refill(rate, now_ms);
        self.scaled >= rate.period_ms()
    }
}

struct Table {
    buckets: HashMap<u64, Bucket>,
    overflow: Bucket,
    last_prune_ms: u64,
}

/// A token bucket per source address; see the module doc. Shared between tasks.
pub struct SourceBudget {
    rate: SourceRate,
    limit_loopback: bool,
    hash_key: std::collections::hash_map::RandomState,
    table: Mutex<Table>,
}

impl std::fmt::Debug for SourceBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The number of sources only: never a source.
        let sources = self.table.lock().map_or(0, |table| table.buckets.len());
        f.debug_struct("SourceBudget")
            .field("rate", &self.rate)
            .field("sources", &sources)
            .finish()
    }
}

/// A source as the budget knows it: a keyed hash, not an address. No `Debug` of its
/// value, no `Display`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey(u64);

impl std::fmt::Debug for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceKey(..)")
    }
}

impl SourceBudget {
    /// An empty budget table at `rate`, with a fresh random hash key. Unless
    /// `limit_loopback`, loopback peers (127.0.0.0/8, ::1) have no budget: behind a local
    /// Tor onion service or reverse proxy, every client comes from loopback.
    pub fn new(rate: SourceRate, limit_loopback: bool) -> Self {
        Self {
            rate,
            limit_loopback,
            hash_key: std::collections::hash_map::RandomState::new(),
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                overflow: Bucket::full(&rate, 0),
                last_prune_ms: 0,
            }),
        }
    }

    /// The rate this budget gives each source.
    pub fn rate(&self) -> SourceRate {
        self.rate
    }

    /// The source `ip` belongs to (its IPv4 address, or its IPv6 /64), hashed; `None`
    /// if it has no budget (loopback, unless limited).
    pub fn key(&self, ip: IpAddr) -> Option<SourceKey> {
        self.key_in_class(ip, 0)
    }

    /// `key` in one of several independent budgets over the same table (the QUIC
    /// listener keeps sources whose address is not yet validated apart).
    pub(crate) fn key_in_class(&self, ip: IpAddr, class: u8) -> Option<SourceKey> {
        if !self.limit_loopback && ip.to_canonical().is_loopback() {
            return None;
        }
        let mut hasher = self.hash_key.build_hasher();
        class.hash(&mut hasher);
        match ip.to_canonical() {
            IpAddr::V4(v4) => (4u8, v4.octets()).hash(&mut hasher),
            IpAddr::V6(v6) => {
                let prefix = v6.segments();
                (6u8, prefix[0], prefix[1], prefix[2], prefix[3]).hash(&mut hasher);
            }
        }
        Some(SourceKey(hasher.finish()))
    }

    /// Takes one token for the source of `ip`; false if its bucket is empty. Always
    /// true for a source without a budget.
    pub fn take(&self, ip: IpAddr, now_ms: u64) -> bool {
        self.key(ip).is_none_or(|key| self.take_key(key, now_ms))
    }

    /// Takes one token for `key`; false if its bucket is empty.
    pub fn take_key(&self, key: SourceKey, now_ms: u64) -> bool {
        let rate = self.rate;
        self.with_bucket(key, now_ms, |bucket| bucket.take(&rate, now_ms))
    }

    /// Whether `key` has a token left, without taking it.
    pub(crate) fn has_key(&self, key: SourceKey, now_ms: u64) -> bool {
        let rate = self.rate;
        self.with_bucket(key, now_ms, |bucket| bucket.has(&rate, now_ms))
    }

    /// Sources tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.lock().buckets.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Nothing panics while holding it; a poisoned table is still a whole table.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_bucket<T>(&self, key: SourceKey, now_ms: u64, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let rate = self.rate;
        let mut table = self.lock();
        let table = &mut *table;
        if !table.buckets.contains_key(&key.0) && table.buckets.len() >= MAX_TRACKED_SOURCES {
            if now_ms.saturating_sub(table.last_prune_ms) >= PRUNE_INTERVAL_MS {
                table.last_prune_ms = now_ms;
                table.buckets.retain(|_, bucket| {
                    bucket.refill(&rate, now_ms);
                    bucket.scaled < rate.capacity()
                });
            }
            if table.buckets.len() >= MAX_TRACKED_SOURCES {
                return f(&mut table.overflow);
            }
        }
        let bucket = table
            .buckets
            .entry(key.0)
            .or_insert_with(|| Bucket::full(&rate, now_ms));
        f(bucket)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn a_source_gets_its_burst_then_the_rate_and_others_are_apart() {
        let budget = SourceBudget::new(SourceRate::new(3, 2, Duration::from_secs(1)), true);
        assert_eq!((0..10).filter(|_| budget.take(v4(1), 0)).count(), 3);
        // Another source has its own bucket.
        assert_eq!((0..10).filter(|_| budget.take(v4(2), 0)).count(), 3);
        // Two a second: one after 500 ms, not before.
        assert!(!budget.take(v4(1), 499));
        assert!(budget.take(v4(1), 500));
        assert!(!budget.take(v4(1), 500));
        // Refills stop at the burst.
        assert_eq!((0..10).filter(|_| budget.take(v4(1), 60_000)).count(), 3);
        assert_eq!(budget.tracked(), 2);
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_ipv4_is_its_address() {
        let budget = SourceBudget::new(SourceRate::new(2, 0, Duration::from_secs(1)), true);
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 1));
        let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0xffff, 0, 0, 9));
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(budget.take(a, 0) && budget.take(b, 0));
        assert!(!budget.take(a, 0) && !budget.take(b, 0));
        assert!(budget.take(other, 0));
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 5).to_ipv6_mapped());
        assert_eq!(budget.key(mapped), budget.key(v4(5)));
        // Classes are apart.
        assert_ne!(budget.key_in_class(v4(5), 1), budget.key(v4(5)));
    }

    #[test]
    fn a_full_table_drops_refilled_buckets_and_else_shares_an_overflow_bucket() {
        let budget = SourceBudget::new(SourceRate::new(1, 1, Duration::from_secs(1)), true);
        for i in 0..MAX_TRACKED_SOURCES as u32 {
            assert!(budget.take(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 0));
        }
        assert_eq!(budget.tracked(), MAX_TRACKED_SOURCES);
        // Nobody refilled yet: new sources share one bucket (one token).
        assert!(budget.take(v4(1), 10));
        assert!(!budget.take(v4(2), 10));
        assert_eq!(budget.tracked(), MAX_TRACKED_SOURCES);
        // A second later every bucket is full again: they are dropped, room is made.
        assert!(budget.take(v4(3), 1_010));
        assert_eq!(budget.tracked(), 1);
    }

    #[test]
    fn loopback_has_no_budget_unless_limited() {
        let budget = SourceBudget::new(SourceRate::new(1, 0, Duration::from_secs(1)), false);
        assert!((0..10).all(|_| budget.take(v4(1), 0)));
        assert!(budget.key(IpAddr::V6(Ipv6Addr::LOCALHOST)).is_none());
        let public = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
        assert!(budget.take(public, 0) && !budget.take(public, 0));
        assert_eq!(budget.tracked(), 1);
    }

    #[test]
    fn debug_shows_no_source() {
        let budget = SourceBudget::new(SourceRate::new(1, 1, Duration::from_secs(1)), true);
        budget.take(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77)), 0);
        let text = format!("{budget:?} {:?}", budget.key(v4(9)));
        assert!(!text.contains("203") && !text.contains("113"), "{text}");
        assert!(text.contains("sources: 1"), "{text}");
    }
}
