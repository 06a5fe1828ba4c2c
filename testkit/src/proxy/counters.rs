//! What crossed the link: bytes and datagrams each way, what was dropped, connections
//! opened and cut. The proxy's tasks add to [`CounterCells`]; a test or a benchmark
//! reads a [`LinkCounters`] snapshot, and subtracts two to measure one phase.

use std::sync::atomic::{AtomicU64, Ordering};

/// One direction's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionCounters {
    /// UDP payload bytes that entered the link (dropped datagrams included; IP and UDP
    /// headers, 28 bytes a datagram over IPv4, not included).
    pub udp_bytes: u64,
    /// Datagrams that entered the link.
    pub datagrams: u64,
    /// Datagrams dropped (by loss, while dark, or because the delay line was full).
    pub dropped: u64,
    /// Datagrams delivered twice.
    pub duplicated: u64,
    /// TCP payload bytes (TLS records) that entered the link (TCP and IP headers not
    /// included).
    pub tcp_bytes: u64,
}

impl DirectionCounters {
    /// Bytes of both transports.
    pub fn bytes(&self) -> u64 {
        self.udp_bytes + self.tcp_bytes
    }

    fn minus(&self, earlier: &Self) -> Self {
        Self {
            udp_bytes: self.udp_bytes.saturating_sub(earlier.udp_bytes),
            datagrams: self.datagrams.saturating_sub(earlier.datagrams),
            dropped: self.dropped.saturating_sub(earlier.dropped),
            duplicated: self.duplicated.saturating_sub(earlier.duplicated),
            tcp_bytes: self.tcp_bytes.saturating_sub(earlier.tcp_bytes),
        }
    }
}

/// A snapshot of a link's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkCounters {
    /// Client → relay.
    pub up: DirectionCounters,
    /// Relay → client.
    pub down: DirectionCounters,
    /// TCP connections accepted.
    pub connections: u64,
    /// TCP connections the proxy cut (reset).
    pub connections_cut: u64,
    /// UDP flows (client source addresses) seen.
    pub udp_flows: u64,
}

impl LinkCounters {
    /// Bytes both ways, both transports.
    pub fn bytes(&self) -> u64 {
        self.up.bytes() + self.down.bytes()
    }

    /// What happened between `earlier` and this snapshot.
    pub fn minus(&self, earlier: &Self) -> Self {
        Self {
            up: self.up.minus(&earlier.up),
            down: self.down.minus(&earlier.down),
            connections: self.connections.saturating_sub(earlier.connections),
            connections_cut: self.connections_cut.saturating_sub(earlier.connections_cut),
            udp_flows: self.udp_flows.saturating_sub(earlier.udp_flows),
        }
    }
}

/// One direction's live counters.
#[derive(Debug, Default)]
pub(crate) struct DirectionCells {
    pub(crate) udp_bytes: AtomicU64,
    pub(crate) datagrams: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) duplicated: AtomicU64,
    pub(crate) tcp_bytes: AtomicU64,
}

impl DirectionCells {
    fn snapshot(&self) -> DirectionCounters {
        DirectionCounters {
            udp_bytes: self.udp_bytes.load(Ordering::Relaxed),
            datagrams: self.datagrams.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            duplicated: self.duplicated.load(Ordering::Relaxed),
            tcp_bytes: self.tcp_bytes.load(Ordering::Relaxed),
        }
    }
}

/// The live counters of one link.
#[derive(Debug, Default)]
pub(crate) struct CounterCells {
    pub(crate) up: DirectionCells,
    pub(crate) down: DirectionCells,
    pub(crate) connections: AtomicU64,
    pub(crate) connections_cut: AtomicU64,
    pub(crate) udp_flows: AtomicU64,
}

impl CounterCells {
    pub(crate) fn snapshot(&self) -> LinkCounters {
        LinkCounters {
            up: self.up.snapshot(),
            down: self.down.snapshot(),
            connections: self.connections.load(Ordering::Relaxed),
            connections_cut: self.connections_cut.load(Ordering::Relaxed),
            udp_flows: self.udp_flows.load(Ordering::Relaxed),
        }
    }
}

/// Adds `n` to a counter.
pub(crate) fn add(cell: &AtomicU64, n: u64) {
    cell.fetch_add(n, Ordering::Relaxed);
}
