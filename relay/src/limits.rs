//! The relay's limits: every value a hostile or broken client could otherwise push
//! without bound, with a safe default, its unit and what it costs.

use std::time::Duration;

pub use passage_transport::SourceRate;

/// Bytes one stored message counts for against [`Limits::max_stored_bytes`]: its value
/// and key take one 4 KiB page of the store file (measured 4.5 to 4.7 KB on disk per
/// message with the B-tree's own pages, see `benches/store.rs`).
pub const STORED_MESSAGE_BYTES: u64 = 4096;

/// Bytes one queue counts for against [`Limits::max_stored_bytes`]: its record (about
/// 170 bytes), its sender-index row and their share of B-tree pages, rounded up.
pub const STORED_QUEUE_BYTES: u64 = 512;

/// Limits for the queue service and each connection. `Default` is what a relay runs
/// with unless its configuration says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// How long an undelivered message is kept (seconds). Default 21 days: long enough
    /// for someone whose phone was off for weeks, short enough that a seized relay
    /// holds little.
    pub retention_secs: u64,
    /// Messages a queue holds before `SEND` is answered `ERR QUOTA` (never dropped
    /// silently). Default 256. Each costs about one 4 KiB body on disk.
    pub queue_quota: usize,
    /// Open connections at most; further ones are refused until one closes. Default
    /// 10,000; each idle connection costs some tens of KiB.
    pub max_connections: usize,
    /// Sustained commands per second per connection. Default 200.
    pub commands_per_second: u32,
    /// Commands a connection may send in a burst above the sustained rate. Default 400.
    pub command_burst: u32,
    /// Rate-limited commands in a row after which the connection is closed. Default 1,000.
    pub max_rate_violations: u32,
    /// Queues one connection may create. Default 100.
    pub max_queues_per_connection: u32,
    /// Queues one connection may subscribe to. Default 1,000 (a client with many
    /// contacts, each with one receiving queue on this relay).
    pub max_subscriptions_per_connection: usize,
    /// Reply blocks waiting to be written before the relay stops reading a
    /// connection's commands (a client that does not read its replies cannot make the
    /// relay buffer without bound). Default 64 blocks = 256 KiB.
    pub max_backlog_blocks: usize,
    /// A connection that sends no block for this long is closed. Default 10 minutes;
    /// clients send `PING` to stay connected. A slow client is not cut by it (a block
    /// every 10 minutes keeps it); a dead one holds its slot (about 10 KB) for that
    /// long at most.
    pub idle_timeout: Duration,
    /// The TLS/QUIC handshake must finish within this, and then the client's hello
    /// within as much again (timed by the session from the connection's start).
    /// Default 30 s: at a 1 s round trip with 30 % loss each way a handshake may need
    /// several probe timeouts (about 1, 2, 4, 8 s) and the hello a retransmission or
    /// two more. Half-open connections cannot pile up meanwhile: the transport admits
    /// 256 handshakes at once and each source only its handshake budget, and a
    /// connection whose hello is late is closed by the session.
    pub handshake_timeout: Duration,
    /// Queues the relay holds at most, from all clients together; past it `NEW` is
    /// answered `ERR FULL`. Default 100,000: with [`STORED_QUEUE_BYTES`] each, about
    /// 50 MB of records and 15 MB of memory for the index.
    pub max_queues: u64,
    /// Bytes of queues and waiting messages the relay holds at most, counted as
    /// [`STORED_MESSAGE_BYTES`] per message and [`STORED_QUEUE_BYTES`] per queue (the
    /// live data, not the file's size, which keeps its high-water mark); past it `SEND`
    /// and `NEW` are answered `ERR FULL` while reads, `ACK` and `DEL` go on. Default
    /// 8 GiB (about two million messages).
    pub max_stored_bytes: u64,
    /// Free space the data directory's file system must keep (bytes); below it `SEND`
    /// and `NEW` are answered `ERR FULL` before the disk fills, while reads, `ACK` and
    /// `DEL` go on. Checked every few seconds. Default 1 GiB.
    pub min_free_disk_bytes: u64,
    /// Queue creations one source address (an IPv4 address, an IPv6 /64) may make
    /// across all its connections; past it `NEW` is answered `ERR RATE_LIMIT`. Held in
    /// memory only, as keyed hashes, never logged or stored. Default a burst of 20, then
    /// 60 an hour.
    pub queues_per_source: SourceRate,
    /// TLS/QUIC handshakes one source address may start; past it a connection is
    /// closed before any TLS work. Default a burst of 120, then 600 a minute (a shared
    /// NAT, a camp's Wi-Fi, is one source).
    pub handshakes_per_source: SourceRate,
    /// Whether the per-source budgets apply to loopback peers (127.0.0.0/8, ::1).
    /// Default false: behind a local Tor onion service or reverse proxy every client
    /// comes from loopback and would share one budget.
    pub limit_loopback_sources: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            retention_secs: 21 * 24 * 3600,
            queue_quota: 256,
            max_connections: 10_000,
            commands_per_second: 200,
            command_burst: 400,
            max_rate_violations: 1_000,
            max_queues_per_connection: 100,
            max_subscriptions_per_connection: 1_000,
            max_backlog_blocks: 64,
            idle_timeout: Duration::from_secs(600),
            handshake_timeout: Duration::from_secs(30),
            max_queues: 100_000,
            max_stored_bytes: 8 << 30,
            min_free_disk_bytes: 1 << 30,
            queues_per_source: SourceRate::new(20, 60, Duration::from_secs(3600)),
            handshakes_per_source: SourceRate::new(120, 600, Duration::from_secs(60)),
            limit_loopback_sources: false,
        }
    }
}

/// The coarsest granularity of stored message times: an hour. Retention is counted in
/// days; an hour is all it needs, and an hour-wide window matches a message against an
/// ISP's connection logs far worse than a second does.
pub const TIME_GRANULARITY_SECS: u64 = 3600;

impl Limits {
    /// What message arrival times are rounded down to: an hour
    /// ([`TIME_GRANULARITY_SECS`]), or a 24th of the retention when that is shorter (a
    /// retention of seconds, for drills and tests), at least one second. A message is
    /// thus kept between retention less one granule and retention.
    pub fn time_granularity_secs(&self) -> u64 {
        (self.retention_secs / 24).clamp(1, TIME_GRANULARITY_SECS)
    }

    /// `unix_secs` rounded down to [`time_granularity_secs`](Self::time_granularity_secs).
    pub fn coarse_time(&self, unix_secs: u64) -> u64 {
        unix_secs - unix_secs % self.time_granularity_secs()
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up. Time comes in
/// as milliseconds of a monotonic clock.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate_per_sec: u64,
    burst_milli: u64,
    /// Tokens × 1000, so that fractional refills add up exactly.
    tokens_milli: u64,
    last_ms: u64,
}

impl TokenBucket {
    pub(crate) fn new(rate_per_sec: u32, burst: u32, now_ms: u64) -> Self {
        let burst_milli = u64::from(burst.max(1)) * 1000;
        Self {
            rate_per_sec: u64::from(rate_per_sec),
            burst_milli,
            tokens_milli: burst_milli,
            last_ms: now_ms,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens_milli = self
            .tokens_milli
            .saturating_add(elapsed.saturating_mul(self.rate_per_sec))
            .min(self.burst_milli);
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_times_are_rounded_to_the_hour_or_a_24th_of_a_short_retention() {
        let limits = Limits::default();
        assert_eq!(limits.time_granularity_secs(), 3600);
        assert_eq!(limits.coarse_time(1_700_003_599), 1_700_002_800);
        assert_eq!(limits.coarse_time(1_700_002_800), 1_700_002_800);
        let short = |retention_secs| Limits {
            retention_secs,
            ..Limits::default()
        };
        assert_eq!(short(86_400).time_granularity_secs(), 3600);
        assert_eq!(short(86_399).time_granularity_secs(), 3599);
        assert_eq!(short(240).time_granularity_secs(), 10);
        assert_eq!(short(2).time_granularity_secs(), 1);
        assert_eq!(short(2).coarse_time(1_700_000_001), 1_700_000_001);
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut b = TokenBucket::new(10, 5, 0);
        assert_eq!((0..5).filter(|_| b.take(0)).count(), 5);
        assert!(!b.take(0));
        assert!(!b.take(99));
        assert!(b.take(100));
        assert_eq!((0..20).filter(|_| b.take(10_000)).count(), 5);
    }
}
