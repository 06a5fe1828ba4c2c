//! Counters an operator reads: counts only, never a queue id, key or address.
//! Rendered in the Prometheus text format for the optional metrics endpoint and
//! written to the stats file that `passage-relay stats` reads.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use passage_wire::ErrorCode;

use crate::store::CommitCounters;

/// Error codes counted, in the order of [`ErrorCode`]'s wire values, with the name
/// they carry in metrics labels and the stats file.
pub const ERROR_CODES: [(ErrorCode, &str); 10] = [
    (ErrorCode::Auth, "AUTH"),
    (ErrorCode::Quota, "QUOTA"),
    (ErrorCode::NoMsg, "NO_MSG"),
    (ErrorCode::Syntax, "SYNTAX"),
    (ErrorCode::Cmd, "CMD"),
    (ErrorCode::Large, "LARGE"),
    (ErrorCode::Version, "VERSION"),
    (ErrorCode::Internal, "INTERNAL"),
    (ErrorCode::RateLimit, "RATE_LIMIT"),
    (ErrorCode::Full, "FULL"),
];

/// The relay's counters. Cheap to update from any task (relaxed atomics).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub connections_refused: AtomicU64,
    /// Connections closed by the relay for a protocol violation, rate or timeout.
    pub connections_cut: AtomicU64,
    /// Queues created since start.
    pub queues_created: AtomicU64,
    /// Queues deleted since start.
    pub queues_deleted: AtomicU64,
    /// Messages stored (answered `OK`) since start.
    pub messages_stored: AtomicU64,
    /// Messages delivered (`MSG` sent) since start.
    pub messages_delivered: AtomicU64,
    /// Messages acknowledged (deleted on `ACK`) since start.
    pub messages_acked: AtomicU64,
    /// Messages deleted by retention since start.
    pub messages_expired: AtomicU64,
    /// Commands handled since start.
    pub commands: AtomicU64,
    errors: [AtomicU64; ERROR_CODES.len()],
    /// Queues in the store (set periodically from the store's statistics).
    pub stored_queues: AtomicU64,
    /// Messages in the store (set periodically).
    pub stored_messages: AtomicU64,
    /// Bytes of the store on disk (set periodically).
    pub store_bytes: AtomicU64,
    /// What the store's commit thread has done (updated by it at each commit).
    pub commits: Arc<CommitCounters>,
}

impl Metrics {
    /// Counts one `ERR` reply.
    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = ERROR_CODES.iter().position(|(c, _)| *c == code) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `ERR` replies with `code` since start.
    pub fn errors(&self, code: ErrorCode) -> u64 {
        ERROR_CODES
            .iter()
            .position(|(c, _)| *c == code)
            .map_or(0, |i| self.errors[i].load(Ordering::Relaxed))
    }

    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every error code's name and count, in wire order.
    pub fn error_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ERROR_CODES
            .iter()
            .zip(&self.errors)
            .map(|((_, name), count)| (*name, count.load(Ordering::Relaxed)))
    }

    /// The Prometheus text exposition of every counter.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::with_capacity(2048);
        let gauges: [(&str, &str, &AtomicU64, &str); 19] = [
            (
                "passage_connections_open",
                "Connections open now.",
                &self.connections_open,
                "gauge",
            ),
            (
                "passage_connections_total",
                "Connections accepted since start.",
                &self.connections_total,
                "counter",
            ),
            (
                "passage_connections_refused_total",
                "Connections refused at the connection limit.",
                &self.connections_refused,
                "counter",
            ),
            (
                "passage_connections_cut_total",
                "Connections closed by the relay for a violation or timeout.",
                &self.connections_cut,
                "counter",
            ),
            (
                "passage_queues_created_total",
                "Queues created since start.",
                &self.queues_created,
                "counter",
            ),
            (
                "passage_queues_deleted_total",
                "Queues deleted since start.",
                &self.queues_deleted,
                "counter",
            ),
            (
                "passage_messages_stored_total",
                "Messages stored since start.",
                &self.messages_stored,
                "counter",
            ),
            (
                "passage_messages_delivered_total",
                "Messages delivered since start.",
                &self.messages_delivered,
                "counter",
            ),
            (
                "passage_messages_acked_total",
                "Messages acknowledged and deleted since start.",
                &self.messages_acked,
                "counter",
            ),
            (
                "passage_messages_expired_total",
                "Messages deleted by retention since start.",
                &self.messages_expired,
                "counter",
            ),
            (
                "passage_commands_total",
                "Commands handled since start.",
                &self.commands,
                "counter",
            ),
            (
                "passage_queues",
                "Queues in the store.",
                &self.stored_queues,
                "gauge",
            ),
            (
                "passage_messages",
                "Undelivered messages in the store.",
                &self.stored_messages,
                "gauge",
            ),
            (
                "passage_store_bytes",
                "Bytes of the store on disk.",
                &self.store_bytes,
                "gauge",
            ),
            (
                "passage_store_commits_total",
                "Store commits (one transaction and one fsync each) since start.",
                &self.commits.commits,
                "counter",
            ),
            (
                "passage_store_committed_ops_total",
                "Writes committed since start (over commits: how well writes batch).",
                &self.commits.ops,
                "counter",
            ),
            (
                "passage_store_written_rows_total",
                "Rows written since start: a message stored then deleted is two, one acknowledged before it had to be written none.",
                &self.commits.rows,
                "counter",
            ),
            (
                "passage_store_commit_microseconds_total",
                "Time spent committing since start (near wall time: the disk is the limit).",
                &self.commits.busy_micros,
                "counter",
            ),
            ("passage_up", "1 while the relay runs.", &ONE, "gauge"),
        ];
        for (name, help, value, kind) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP passage_errors_total ERR replies by code.\n# TYPE passage_errors_total counter"
        );
        for (i, (_, label)) in ERROR_CODES.iter().enumerate() {
            let _ = writeln!(
                out,
                "passage_errors_total{{code=\"{label}\"}} {}",
                self.errors[i].load(Ordering::Relaxed)
            );
        }
        out
    }
}

static ONE: AtomicU64 = AtomicU64::new(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_error_codes() {
        let m = Metrics::default();
        Metrics::inc(&m.messages_stored);
        m.error(ErrorCode::Quota);
        let text = m.render_prometheus();
        assert!(text.contains("passage_messages_stored_total 1"));
        assert!(text.contains("passage_errors_total{code=\"QUOTA\"} 1"));
        m.commits.commits.fetch_add(3, Ordering::Relaxed);
        m.commits.rows.fetch_add(5, Ordering::Relaxed);
        let text = m.render_prometheus();
        assert!(text.contains("passage_store_commits_total 3"));
        assert!(text.contains("passage_store_written_rows_total 5"));
        assert_eq!(m.errors(ErrorCode::Quota), 1);
    }
}
