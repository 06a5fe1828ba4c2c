//! Latency percentiles over a sorted `Vec` of samples: a run holds at most a few million
//! samples (8 bytes each), so exact percentiles cost less than a histogram dependency.

use std::time::Duration;

/// Send→delivery latencies of one run, sorted once when the run is over.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    sorted_ns: Vec<u64>,
}

impl Latencies {
    /// The latencies in `samples_ns` (nanoseconds, any order).
    pub fn from_samples(mut samples_ns: Vec<u64>) -> Self {
        samples_ns.sort_unstable();
        Self {
            sorted_ns: samples_ns,
        }
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.sorted_ns.len()
    }

    /// The `p`-th percentile (0 < p ≤ 100) by nearest rank: the smallest sample that
    /// at least `p`% of the samples do not exceed. `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.sorted_ns.len();
        if n == 0 || !(p > 0.0 && p <= 100.0) {
            return None;
        }
        // ceil(p/100 · n) as a 1-based rank, computed in integers to avoid float
        // rounding at exact ranks (p = 50 over 10 samples is rank 5, not 6).
        let per_million = (p * 10_000.0).round() as u128;
        let rank = (per_million * n as u128).div_ceil(1_000_000).max(1);
        let index = usize::try_from(rank - 1).unwrap_or(usize::MAX).min(n - 1);
        self.sorted_ns
            .get(index)
            .map(|&ns| Duration::from_nanos(ns))
    }

    /// A percentile in milliseconds (for reports), `None` without samples.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        self.percentile(p).map(|d| d.as_secs_f64() * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Option<Duration> {
        Some(Duration::from_millis(v))
    }

    #[test]
    fn nearest_rank_percentiles() {
        // 1..=1000 ms, shuffled.
        let samples: Vec<u64> = (1..=1000u64).rev().map(|v| v * 1_000_000).collect();
        let l = Latencies::from_samples(samples);
        assert_eq!(l.len(), 1000);
        assert_eq!(l.percentile(50.0), ms(500));
        assert_eq!(l.percentile(99.0), ms(990));
        assert_eq!(l.percentile(99.9), ms(999));
        assert_eq!(l.percentile(100.0), ms(1000));
        assert_eq!(l.percentile(0.01), ms(1));
    }

    #[test]
    fn few_samples_take_the_top_for_high_percentiles() {
        let l = Latencies::from_samples(vec![3_000_000, 1_000_000, 2_000_000]);
        assert_eq!(l.percentile(50.0), ms(2));
        assert_eq!(l.percentile(99.0), ms(3));
        assert_eq!(l.percentile(99.9), ms(3));
        let one = Latencies::from_samples(vec![7_000_000]);
        assert_eq!(one.percentile(50.0), ms(7));
        assert_eq!(one.percentile_ms(99.9), Some(7.0));
    }

    #[test]
    fn no_samples_or_a_bad_percentile_give_none() {
        assert_eq!(Latencies::default().percentile(50.0), None);
        let l = Latencies::from_samples(vec![1]);
        assert_eq!(l.percentile(0.0), None);
        assert_eq!(l.percentile(100.5), None);
        assert_eq!(l.percentile(f64::NAN), None);
    }
}
