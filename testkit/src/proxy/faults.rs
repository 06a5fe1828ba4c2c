//! What a link does to the traffic crossing it, and the seeded dice that decide it for
//! each datagram and connection. No sockets and no clock here: the proxy's tasks ask
//! [`Dice`] what happens to a datagram and carry the answer out, so the decisions can
//! be tested on their own and replayed from a seed.

use std::num::NonZeroU64;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

/// What one direction of the link does (client → relay is "up", relay → client
/// "down"). [`Default`] is a clean loopback link: nothing delayed, lost or limited.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DirectionFaults {
    /// One-way delay added to every datagram and every byte of a TCP stream. Half the
    /// round trip: a 1 s RTT is 500 ms each way.
    pub delay: Duration,
    /// UDP: an extra delay drawn uniformly from `[0, jitter)` for each datagram, on top
    /// of `delay`; datagrams whose extra delays differ by more than their spacing
    /// arrive reordered. (TCP is a byte stream and is never reordered.)
    pub jitter: Duration,
    /// UDP: the probability (0 to 1) that a datagram is dropped.
    pub loss: f64,
    /// UDP: the probability (0 to 1) that a datagram that is not dropped arrives twice
    /// (the copy with its own jitter).
    pub duplicate: f64,
    /// TCP: the most bytes per second delivered in this direction (`None`: no limit).
    pub bytes_per_second: Option<NonZeroU64>,
}

impl DirectionFaults {
    /// A direction with `delay` and nothing else.
    pub fn delayed(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    /// Checks that the probabilities are within 0 to 1.
    pub(crate) fn check(&self) -> Result<(), String> {
        for (name, p) in [("loss", self.loss), ("duplicate", self.duplicate)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be a probability from 0 to 1, not {p}"));
            }
        }
        Ok(())
    }
}

/// The range a TCP connection's lifetime is drawn from before the proxy cuts it
/// (uniformly, from `min` to `max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutRange {
    /// The shortest lifetime.
    pub min: Duration,
    /// The longest lifetime.
    pub max: Duration,
}

/// Which transports the proxy carries; a blocked one is refused (TCP: the port is
/// held but not listening, so a connection attempt is refused at once; UDP: every
/// datagram is dropped), as on networks that block UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// UDP (QUIC).
    pub udp: bool,
    /// TCP (TLS).
    pub tcp: bool,
}

impl Default for Transports {
    fn default() -> Self {
        Self {
            udp: true,
            tcp: true,
        }
    }
}

/// Everything a link does. [`Default`] (= [`LinkFaults::clean`]) is a clean loopback
/// link carrying both transports; build others from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkFaults {
    /// Client → relay.
    pub up: DirectionFaults,
    /// Relay → client.
    pub down: DirectionFaults,
    /// TCP: if set, every connection is reset (RST to both ends) at a time drawn from
    /// this range after it was accepted.
    pub cut_after: Option<CutRange>,
    /// The transports carried.
    pub transports: Transports,
    /// The seed of every random decision: the same seed and the same traffic give the
    /// same losses, duplicates, jitter and cut times.
    pub seed: u64,
    /// How long the proxy runs at most: every task stops after this, so a test that
    /// forgets the proxy cannot leave it forwarding for ever.
    pub lifetime: Duration,
}

/// Default [`LinkFaults::lifetime`]: longer than any test or benchmark run here.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 60);

impl Default for LinkFaults {
    fn default() -> Self {
        Self::clean()
    }
}

impl LinkFaults {
    /// A clean link (both transports, nothing added), seed 0.
    pub fn clean() -> Self {
        Self {
            up: DirectionFaults::default(),
            down: DirectionFaults::default(),
            cut_after: None,
            transports: Transports::default(),
            seed: 0,
            lifetime: DEFAULT_LIFETIME,
        }
    }

    /// Both directions alike.
    pub fn symmetric(direction: DirectionFaults) -> Self {
        Self {
            up: direction,
            down: direction,
            ..Self::clean()
        }
    }

    /// A round trip of `rtt` (half each way), both transports.
    pub fn with_rtt(rtt: Duration) -> Self {
        Self::symmetric(DirectionFaults::delayed(rtt / 2))
    }

    /// Checks the settings; the proxy refuses to start on a bad one.
    pub(crate) fn check(&self) -> Result<(), String> {
        self.up.check()?;
        self.down.check()?;
        if let Some(range) = self.cut_after
            && (range.min > range.max || range.min.is_zero())
        {
            return Err(format!(
                "cut_after needs 0 < min <= max, not {:?}..{:?}",
                range.min, range.max
            ));
        }
        Ok(())
    }
}

/// What happens to one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramFate {
    /// Lost.
    Dropped,
    /// Delivered once, after this delay.
    Delivered(Duration),
    /// Delivered twice, after these delays.
    Duplicated(Duration, Duration),
}

/// The seeded decisions of one direction (or of the cut times).
#[derive(Debug)]
pub struct Dice(StdRng);

impl Dice {
    /// Dice seeded with `seed` and a `stream` number, so that the directions and the
    /// cut times of one link draw independent sequences from one seed.
    pub fn new(seed: u64, stream: u64) -> Self {
        Self(StdRng::seed_from_u64(
            seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ))
    }

    /// The fate of the next datagram under `faults`.
    pub fn datagram(&mut self, faults: &DirectionFaults) -> DatagramFate {
        if faults.loss > 0.0 && self.0.random_bool(faults.loss) {
            return DatagramFate::Dropped;
        }
        let first = self.delay(faults);
        if faults.duplicate > 0.0 && self.0.random_bool(faults.duplicate) {
            DatagramFate::Duplicated(first, self.delay(faults))
        } else {
            DatagramFate::Delivered(first)
        }
    }

    /// The lifetime of the next TCP connection, within `range`.
    pub fn cut_after(&mut self, range: CutRange) -> Duration {
        let spread = range.max.saturating_sub(range.min);
        range.min + spread.mul_f64(self.0.random::<f64>())
    }

    fn delay(&mut self, faults: &DirectionFaults) -> Duration {
        if faults.jitter.is_zero() {
            faults.delay
        } else {
            faults.delay + faults.jitter.mul_f64(self.0.random::<f64>())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams drawn in the statistical tests: enough that a bound of ±3 points
    /// around the rate is many standard deviations wide (σ ≈ 0.46 points at 30 %).
    const DRAWS: usize = 10_000;

    fn rate(count: usize) -> f64 {
        count as f64 / DRAWS as f64
    }

    #[test]
    fn loss_and_duplication_come_near_their_probabilities() {
        let faults = DirectionFaults {
            loss: 0.3,
            duplicate: 0.1,
            ..DirectionFaults::default()
        };
        let mut dice = Dice::new(7, 0);
        let fates: Vec<_> = (0..DRAWS).map(|_| dice.datagram(&faults)).collect();
        let dropped = fates
            .iter()
            .filter(|f| **f == DatagramFate::Dropped)
            .count();
        let twice = fates
            .iter()
            .filter(|f| matches!(f, DatagramFate::Duplicated(..)))
            .count();
        assert!((0.27..0.33).contains(&rate(dropped)), "{dropped}");
        // 10 % of the 70 % delivered.
        assert!((0.04..0.10).contains(&rate(twice)), "{twice}");
    }

    #[test]
    fn a_clean_direction_delivers_everything_once_without_delay() {
        let mut dice = Dice::new(1, 0);
        for _ in 0..DRAWS {
            assert_eq!(
                dice.datagram(&DirectionFaults::default()),
                DatagramFate::Delivered(Duration::ZERO)
            );
        }
    }

    #[test]
    fn jitter_stays_within_its_bound_above_the_delay() {
        let faults = DirectionFaults {
            delay: Duration::from_millis(500),
            jitter: Duration::from_millis(40),
            ..DirectionFaults::default()
        };
        let mut dice = Dice::new(3, 1);
        let mut distinct = std::collections::BTreeSet::new();
        for _ in 0..DRAWS {
            let DatagramFate::Delivered(delay) = dice.datagram(&faults) else {
                panic!("nothing is lost or duplicated here");
            };
            assert!(delay >= faults.delay && delay < faults.delay + faults.jitter);
            distinct.insert(delay);
        }
        assert!(distinct.len() > DRAWS / 2, "the jitter is not random");
    }

    #[test]
    fn cut_times_stay_within_their_range_and_the_same_seed_repeats_them() {
        let range = CutRange {
            min: Duration::from_secs(2),
            max: Duration::from_secs(6),
        };
        let draw = |seed| {
            let mut dice = Dice::new(seed, 2);
            (0..100).map(|_| dice.cut_after(range)).collect::<Vec<_>>()
        };
        let cuts = draw(11);
        assert!(cuts.iter().all(|c| (range.min..=range.max).contains(c)));
        assert_eq!(cuts, draw(11));
        assert_ne!(cuts, draw(12));
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut faults = LinkFaults::clean();
        faults.up.loss = 1.5;
        assert!(faults.check().is_err());
        let mut faults = LinkFaults::clean();
        faults.down.duplicate = f64::NAN;
        assert!(faults.check().is_err());
        let mut faults = LinkFaults::clean();
        faults.cut_after = Some(CutRange {
            min: Duration::from_secs(6),
            max: Duration::from_secs(2),
        });
        assert!(faults.check().is_err());
        assert!(LinkFaults::with_rtt(Duration::from_secs(1)).check().is_ok());
    }
}
