//! What the kernel says about a process: CPU time from `/proc/<pid>/stat`, resident
//! memory from `/proc/<pid>/status`.
//!
//! CPU time is the process's user + system time, threads that have already exited
//! included, so it holds although the load clients share the machine's cores: the
//! relay's CPU per message does not depend on who else is running.

use std::time::Duration;

use anyhow::{Context as _, anyhow};

/// User + system CPU time a process has used so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuTime {
    /// Clock ticks (`utime + stime`).
    pub ticks: u64,
}

impl CpuTime {
    /// The time used between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Duration {
        ticks_to_duration(self.ticks.saturating_sub(earlier.ticks))
    }
}

/// The CPU time process `pid` has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<CpuTime> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&text).with_context(|| format!("parsing {path}"))
}

/// The resident set size of process `pid`, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&text).with_context(|| format!("parsing {path}"))
}

/// Bytes process `pid` has caused to be written to storage so far (`write_bytes` of
/// `/proc/<pid>/io`: data dirtied in the page cache, counted when it is dirtied).
pub fn disk_write_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/io");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_write_bytes(&text).with_context(|| format!("parsing {path}"))
}

/// `write_bytes` from the text of `/proc/<pid>/io`.
pub fn parse_write_bytes(text: &str) -> anyhow::Result<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .ok_or_else(|| anyhow!("no write_bytes line (no I/O accounting?)"))?
        .trim()
        .parse::<u64>()
        .context("write_bytes is not a number")
}

/// CPU time the whole machine has spent busy (every core, every process), from the
/// first line of `/proc/stat`: all time but idle and iowait.
pub fn machine_busy() -> anyhow::Result<CpuTime> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_machine_busy(&text).context("parsing /proc/stat")
}

/// Busy ticks from the text of `/proc/stat`: the `cpu` line's fields summed, less idle
/// (4th) and iowait (5th). Guest time is already inside user time, so it is left out.
pub fn parse_machine_busy(text: &str) -> anyhow::Result<CpuTime> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("cpu "))
        .ok_or_else(|| anyhow!("no aggregate cpu line"))?;
    let fields = line
        .split_whitespace()
        .take(8)
        .map(|f| f.parse::<u64>().context("a cpu field is not a number"))
        .collect::<anyhow::Result<Vec<u64>>>()?;
    if fields.len() < 5 {
        return Err(anyhow!("the cpu line has {} fields", fields.len()));
    }
    let busy = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| *v)
        .fold(0u64, u64::saturating_add);
    Ok(CpuTime { ticks: busy })
}

/// `utime + stime` from the text of `/proc/<pid>/stat`.
///
/// The second field, the command name in parentheses, may itself hold spaces and
/// parentheses, so the fields are counted from the last `)`: after it come field 3
/// (state) onwards, utime is field 14 and stime field 15 (proc(5)).
pub fn parse_stat(text: &str) -> anyhow::Result<CpuTime> {
    let (_, rest) = text
        .rsplit_once(')')
        .ok_or_else(|| anyhow!("no command name"))?;
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let mut next = |name: &str| -> anyhow::Result<u64> {
        fields
            .next()
            .ok_or_else(|| anyhow!("no {name} field"))?
            .parse::<u64>()
            .with_context(|| format!("{name} is not a number"))
    };
    let utime = next("utime")?;
    let stime = next("stime")?;
    Ok(CpuTime {
        ticks: utime.saturating_add(stime),
    })
}

/// `VmRSS` in KiB from the text of `/proc/<pid>/status`.
pub fn parse_vm_rss(text: &str) -> anyhow::Result<u64> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS line (a zombie process?)"))?;
    let mut parts = line.split_whitespace();
    let value = parts
        .next()
        .ok_or_else(|| anyhow!("VmRSS has no value"))?
        .parse::<u64>()
        .context("VmRSS is not a number")?;
    match parts.next() {
        Some("kB") => Ok(value),
        other => Err(anyhow!("VmRSS in an unknown unit {other:?}")),
    }
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(per_second);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with spaces and a ')' inside, as a hostile name could be.
        let text = "4242 (passage (relay) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    750 250 0 0 20 0 3 0 123456 1000000 2000 18446744073709551615\n";
        assert_eq!(parse_stat(text).unwrap().ticks, 1000);
    }

    #[test]
    fn stat_without_enough_fields_is_an_error() {
        assert!(parse_stat("1 (x) S 1 2 3").is_err());
        assert!(parse_stat("no parenthesis at all").is_err());
        assert!(parse_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 seven 1").is_err());
    }

    #[test]
    fn machine_busy_leaves_out_idle_iowait_and_guest() {
        let text = "cpu  100 5 50 9000 40 3 2 1 77 0\ncpu0 50 2 25 4500 20 1 1 0 0 0\nintr 1\n";
        assert_eq!(
            parse_machine_busy(text).unwrap().ticks,
            100 + 5 + 50 + 3 + 2 + 1
        );
        assert!(parse_machine_busy("cpu0 1 2 3 4 5\n").is_err());
        assert!(parse_machine_busy("cpu  1 2 3\n").is_err());
    }

    #[test]
    fn write_bytes_is_read_apart_from_cancelled_ones() {
        let text = "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 5\nwrite_bytes: 40960\ncancelled_write_bytes: 7\n";
        assert_eq!(parse_write_bytes(text).unwrap(), 40960);
        assert!(parse_write_bytes("rchar: 1\n").is_err());
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let text = "Name:\tpassage-relay\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t5\n";
        assert_eq!(parse_vm_rss(text).unwrap(), 12345);
        assert!(parse_vm_rss("Name:\tzombie\n").is_err());
        assert!(parse_vm_rss("VmRSS:\t12 MB\n").is_err());
    }

    #[test]
    fn this_process_can_be_read() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        let before = cpu_time(pid).unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_time(pid).unwrap() >= before);
    }

    #[test]
    fn ticks_convert_to_time() {
        let per_second = rustix::param::clock_ticks_per_second();
        assert_eq!(
            CpuTime {
                ticks: 3 * per_second
            }
            .since(CpuTime { ticks: per_second }),
            Duration::from_secs(2)
        );
        assert_eq!(
            CpuTime { ticks: 1 }.since(CpuTime { ticks: 5 }),
            Duration::ZERO
        );
    }
}
