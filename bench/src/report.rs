//! The figures of a run: human-readable lines, and one JSON object for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::idle::IdleReport;
use crate::load::Outcome;

/// One run: the relay's figures, the baseline's from the same run, and their ratios.
/// Serialized as the `--json` line; `None` is `null` (no sample, or no baseline).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Sender/recipient pairs (one queue each).
    pub pairs: usize,
    /// `tcp` or `quic`.
    pub transport: &'static str,
    /// Measured seconds asked for.
    pub seconds: u64,
    /// Messages in flight per pair.
    pub window: usize,
    /// Total messages per second asked for, if paced.
    pub rate: Option<u64>,
    /// Relay deliveries per second in the measured window.
    pub msgs_per_sec: f64,
    /// Baseline deliveries per second in its measured window.
    pub baseline_msgs_per_sec: Option<f64>,
    /// msgs_per_sec ÷ baseline_msgs_per_sec.
    pub ratio: Option<f64>,
    /// Relay send→delivery latency percentiles, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile, ms.
    pub p999_ms: Option<f64>,
    /// Baseline latency percentiles, ms.
    pub baseline_p50_ms: Option<f64>,
    /// Baseline 99th percentile, ms.
    pub baseline_p99_ms: Option<f64>,
    /// Baseline 99.9th percentile, ms.
    pub baseline_p999_ms: Option<f64>,
    /// Relay CPU (user + system) per delivered message, µs.
    pub relay_cpu_us_per_msg: Option<f64>,
    /// Forwarder CPU per delivered message, µs.
    pub baseline_cpu_us_per_msg: Option<f64>,
    /// relay_cpu_us_per_msg ÷ baseline_cpu_us_per_msg.
    pub cpu_ratio: Option<f64>,
    /// Relay CPU in the window, in cores (1.0 = one core busy all the time).
    pub relay_cpu_cores: f64,
    /// Forwarder CPU in its window, in cores.
    pub baseline_cpu_cores: Option<f64>,
    /// CPU used by unrelated processes during the relay's window, in cores (the
    /// machine has two; a high figure means the throughput figures are disturbed).
    pub other_cpu_cores: f64,
    /// The same during the baseline's window.
    pub baseline_other_cpu_cores: Option<f64>,
    /// The load generator's own CPU per delivered message (relay run), µs.
    pub load_cpu_us_per_msg: Option<f64>,
    /// The load generator's own CPU per delivered message (baseline run), µs.
    pub baseline_load_cpu_us_per_msg: Option<f64>,
    /// Relay: fewest deliveries of one pair over the run.
    pub pair_min_delivered: u64,
    /// Relay: most deliveries of one pair over the run.
    pub pair_max_delivered: u64,
    /// Relay: bytes written to storage per delivered message, KiB.
    pub relay_disk_kib_per_msg: Option<f64>,
    /// Store commits per second in the relay's window (from its metrics endpoint).
    pub relay_commits_per_sec: Option<f64>,
    /// Writes per commit (a `SEND` and its `ACK` are two): how well writes batch.
    pub relay_ops_per_commit: Option<f64>,
    /// Share of the window the relay's commit thread spent committing (near 1: one
    /// commit at a time is the limit).
    pub relay_commit_busy: Option<f64>,
    /// Relay resident memory at the end of the window, KiB.
    pub relay_rss_kib: u64,
    /// Forwarder resident memory at the end of its window, KiB.
    pub baseline_rss_kib: Option<u64>,
    /// Messages the relay answered OK but never delivered (must be 0).
    pub lost: u64,
    /// Messages the forwarder answered but never delivered.
    pub baseline_lost: Option<u64>,
    /// Relay: sends answered OK, whole run.
    pub sent_ok: u64,
    /// Relay: deliveries, whole run.
    pub delivered: u64,
    /// Relay: repeated deliveries.
    pub duplicates: u64,
    /// Relay: deliveries whose send was never answered OK.
    pub unconfirmed: u64,
    /// Relay: failed sends.
    pub send_errors: u64,
    /// Relay: whether every accepted message was delivered within the drain limit.
    pub drained: bool,
    /// Relay: seconds the drain took.
    pub drain_seconds: f64,
    /// Relay: latency samples.
    pub samples: usize,
    /// Relay run failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Baseline run failures by kind.
    pub baseline_errors: BTreeMap<String, u64>,
    /// Every round's figures, in order (one with `--rounds 1`); the fields above are
    /// the median round's, but `lost` counts every round's.
    pub rounds: Vec<RoundFigures>,
}

/// One round's throughput and CPU, relay and baseline.
#[derive(Debug, Clone, Serialize)]
pub struct RoundFigures {
    /// Relay deliveries per second.
    pub msgs_per_sec: f64,
    /// Baseline deliveries per second.
    pub baseline_msgs_per_sec: Option<f64>,
    /// msgs_per_sec ÷ baseline_msgs_per_sec.
    pub ratio: Option<f64>,
    /// Relay CPU per delivered message, µs.
    pub relay_cpu_us_per_msg: Option<f64>,
    /// Forwarder CPU per delivered message, µs.
    pub baseline_cpu_us_per_msg: Option<f64>,
    /// relay_cpu_us_per_msg ÷ baseline_cpu_us_per_msg.
    pub cpu_ratio: Option<f64>,
    /// Relay send→delivery latency, 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Baseline send→delivery latency, 99th percentile, ms.
    pub baseline_p99_ms: Option<f64>,
    /// Sent, answered OK and never delivered by the relay.
    pub lost: u64,
}

impl RoundFigures {
    /// The figures of one round.
    pub fn new(relay: &Outcome, baseline: Option<&Outcome>) -> Self {
        let baseline_msgs_per_sec = baseline.map(|b| b.msgs_per_sec);
        let baseline_cpu_us_per_msg = baseline.and_then(|b| b.cpu_us_per_msg);
        Self {
            msgs_per_sec: relay.msgs_per_sec,
            baseline_msgs_per_sec,
            ratio: quotient(Some(relay.msgs_per_sec), baseline_msgs_per_sec),
            relay_cpu_us_per_msg: relay.cpu_us_per_msg,
            baseline_cpu_us_per_msg,
            cpu_ratio: quotient(relay.cpu_us_per_msg, baseline_cpu_us_per_msg),
            p99_ms: relay.latencies.percentile_ms(99.0),
            baseline_p99_ms: baseline.and_then(|b| b.latencies.percentile_ms(99.0)),
            lost: relay.lost,
        }
    }
}

/// a ÷ b, if both are known and b is positive.
fn quotient(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// What the run asked for.
#[derive(Debug, Clone, Copy)]
pub struct RunShape {
    /// Pairs.
    pub pairs: usize,
    /// Transport name.
    pub transport: &'static str,
    /// Measured seconds.
    pub seconds: u64,
    /// Window per pair.
    pub window: usize,
    /// Total rate, if paced.
    pub rate: Option<u64>,
}

impl RunReport {
    /// The report of a relay run and its baseline.
    pub fn new(shape: RunShape, relay: &Outcome, baseline: Option<&Outcome>) -> Self {
        let ratio = quotient;
        let base = |f: fn(&Outcome) -> Option<f64>| baseline.and_then(f);
        Self {
            pairs: shape.pairs,
            transport: shape.transport,
            seconds: shape.seconds,
            window: shape.window,
            rate: shape.rate,
            msgs_per_sec: relay.msgs_per_sec,
            baseline_msgs_per_sec: baseline.map(|b| b.msgs_per_sec),
            ratio: ratio(Some(relay.msgs_per_sec), baseline.map(|b| b.msgs_per_sec)),
            p50_ms: relay.latencies.percentile_ms(50.0),
            p99_ms: relay.latencies.percentile_ms(99.0),
            p999_ms: relay.latencies.percentile_ms(99.9),
            baseline_p50_ms: base(|b| b.latencies.percentile_ms(50.0)),
            baseline_p99_ms: base(|b| b.latencies.percentile_ms(99.0)),
            baseline_p999_ms: base(|b| b.latencies.percentile_ms(99.9)),
            relay_cpu_us_per_msg: relay.cpu_us_per_msg,
            baseline_cpu_us_per_msg: base(|b| b.cpu_us_per_msg),
            cpu_ratio: ratio(relay.cpu_us_per_msg, base(|b| b.cpu_us_per_msg)),
            relay_cpu_cores: relay.cpu_cores,
            baseline_cpu_cores: baseline.map(|b| b.cpu_cores),
            other_cpu_cores: relay.other_cpu_cores,
            baseline_other_cpu_cores: baseline.map(|b| b.other_cpu_cores),
            load_cpu_us_per_msg: relay.load_cpu_us_per_msg,
            baseline_load_cpu_us_per_msg: base(|b| b.load_cpu_us_per_msg),
            pair_min_delivered: relay.pair_delivered_range.0,
            pair_max_delivered: relay.pair_delivered_range.1,
            relay_disk_kib_per_msg: relay.disk_kib_per_msg,
            relay_commits_per_sec: relay.commits.map(|c| c.per_sec),
            relay_ops_per_commit: relay.commits.and_then(|c| c.ops_per_commit),
            relay_commit_busy: relay.commits.map(|c| c.busy),
            relay_rss_kib: relay.rss_kib,
            baseline_rss_kib: baseline.map(|b| b.rss_kib),
            lost: relay.lost,
            baseline_lost: baseline.map(|b| b.lost),
            sent_ok: relay.sent_ok,
            delivered: relay.delivered,
            duplicates: relay.duplicates,
            unconfirmed: relay.unconfirmed,
            send_errors: relay.send_errors,
            drained: relay.drained,
            drain_seconds: relay.drain.as_secs_f64(),
            samples: relay.latencies.len(),
            errors: relay.errors.clone(),
            baseline_errors: baseline.map(|b| b.errors.clone()).unwrap_or_default(),
            rounds: vec![RoundFigures::new(relay, baseline)],
        }
    }

    /// The human-readable lines.
    pub fn text(&self, relay: &Outcome, baseline: Option<&Outcome>) -> String {
        let mut out = String::new();
        let pace = self
            .rate
            .map_or_else(|| "saturating".to_owned(), |r| format!("{r} msg/s total"));
        let _ = writeln!(
            out,
            "{} pairs over {}, window {}, {}, {} s measured",
            self.pairs, self.transport, self.window, pace, self.seconds
        );
        outcome_lines(&mut out, "relay", relay);
        if let Some(baseline) = baseline {
            outcome_lines(&mut out, "baseline", baseline);
        }
        let _ = writeln!(
            out,
            "ratio     throughput relay/baseline {}   cpu per msg relay/baseline {}",
            fmt_opt(self.ratio, 3),
            fmt_opt(self.cpu_ratio, 2)
        );
        let _ = writeln!(
            out,
            "load      the load generator used {} µs CPU per message in the relay run, {} in the baseline run",
            fmt_opt(self.load_cpu_us_per_msg, 1),
            fmt_opt(self.baseline_load_cpu_us_per_msg, 1),
        );
        if self.rounds.len() > 1 {
            let list = |f: fn(&RoundFigures) -> Option<f64>, digits| {
                self.rounds
                    .iter()
                    .map(|r| fmt_opt(f(r), digits))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let _ = writeln!(
                out,
                "rounds    throughput ratio {}   cpu ratio {}   p99 ms {} (baseline {})   (the lines above are the median round's)",
                list(|r| r.ratio, 3),
                list(|r| r.cpu_ratio, 2),
                list(|r| r.p99_ms, 2),
                list(|r| r.baseline_p99_ms, 2),
            );
        }
        out
    }
}

fn outcome_lines(out: &mut String, name: &str, o: &Outcome) {
    let ms = |p| fmt_opt(o.latencies.percentile_ms(p), 2);
    let _ = writeln!(
        out,
        "{name:<9} {:>9.0} msg/s   latency p50 {} ms  p99 {} ms  p99.9 {} ms   cpu {} µs/msg ({:.2} cores)   disk {} KiB/msg   rss {} KiB",
        o.msgs_per_sec,
        ms(50.0),
        ms(99.0),
        ms(99.9),
        fmt_opt(o.cpu_us_per_msg, 1),
        o.cpu_cores,
        fmt_opt(o.disk_kib_per_msg, 1),
        o.rss_kib,
    );
    let _ = writeln!(
        out,
        "{:<9} delivered {} in {:.2} s ({} in total, {}..{} per pair), sent OK {}, lost {}, duplicates {}, unconfirmed {}, send errors {}, drain {:.2} s{}; other processes used {:.2} cores",
        "",
        o.measured_deliveries,
        o.measured.as_secs_f64(),
        o.delivered,
        o.pair_delivered_range.0,
        o.pair_delivered_range.1,
        o.sent_ok,
        o.lost,
        o.duplicates,
        o.unconfirmed,
        o.send_errors,
        o.drain.as_secs_f64(),
        if o.drained { "" } else { " (NOT DRAINED)" },
        o.other_cpu_cores,
    );
    if let Some(c) = o.commits {
        let _ = writeln!(
            out,
            "{:<9} store: {:.0} commits/s, {} writes per commit, committing {:.0}% of the time",
            "",
            c.per_sec,
            fmt_opt(c.ops_per_commit, 1),
            c.busy * 100.0,
        );
    }
    for (what, count) in &o.errors {
        let _ = writeln!(out, "{:<9} error ×{count}: {what}", "");
    }
}

/// The human-readable lines of an idle run.
pub fn idle_text(r: &IdleReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "idle      {} of {} TCP connections open (handshake + hello + ping) in {:.1} s, {} failed",
        r.connected, r.connections, r.connect_seconds, r.failed
    );
    let _ = writeln!(
        out,
        "relay rss {} KiB before, {} KiB after: {} KiB per idle connection",
        r.relay_rss_before_kib,
        r.relay_rss_after_kib,
        fmt_opt(r.kib_per_connection, 1)
    );
    if let Some(e) = &r.first_error {
        let _ = writeln!(out, "first failure: {e}");
    }
    out
}

fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
}
