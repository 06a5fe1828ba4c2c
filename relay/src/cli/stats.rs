//! `stats`: prints the relay's counts, from the stats file a running relay rewrites or,
//! when none runs, from the store; as text for people or as one JSON line.

use std::io::Write as _;

use anyhow::{Context as _, anyhow, bail};
use passage_relay::datadir::{DataDir, StatsSnapshot};
use passage_relay::metrics::ERROR_CODES;
use passage_relay::server::unix_now;
use passage_relay::store::{OpenError, RedbStore, Store};

use super::StatsArgs;
use super::data_dir_of;
use super::error::{causes, plain, store_error};
use super::serve::STATS_FILE_INTERVAL;

/// A stats file older than this, from a relay that said it was running, is stale: the
/// relay was killed, or is stuck.
const STATS_STALE_AFTER_SECS: u64 = 3 * STATS_FILE_INTERVAL.as_secs();

/// Where the counts `stats` prints come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A running relay wrote them moments ago.
    Live,
    /// A relay holds the store, but its last counts are old.
    Stale,
    /// No relay runs; read from the store.
    Store,
}

pub(super) fn run_stats(args: &StatsArgs) -> anyhow::Result<()> {
    let path = data_dir_of(&args.dir)?;
    let dir = DataDir::open(&path).map_err(plain)?;
    let now = unix_now();
    let written = dir.read_stats().map_err(plain)?;
    let fresh =
        |s: &StatsSnapshot| s.running && now.saturating_sub(s.written_at) <= STATS_STALE_AFTER_SECS;
    let (snapshot, source) = match written {
        Some(s) if fresh(&s) => (s, Source::Live),
        written => {
            if !dir.has_store() {
                bail!(
                    "no relay has run with {} yet — start one with `passage-relay serve --data {}`",
                    path.display(),
                    path.display()
                );
            }
            let store_path = dir.store_path();
            match RedbStore::open(&store_path) {
                Ok(store) => {
                    let stats = store.stats().map_err(|e| {
                        anyhow!(
                            "cannot read the store {}: {} — is the disk healthy?",
                            store_path.display(),
                            causes(&e)
                        )
                    })?;
                    (StatsSnapshot::from_store(stats, now), Source::Store)
                }
                Err(OpenError::InUse) => match written {
                    Some(s) => (s, Source::Stale),
                    None => bail!(
                        "a relay holds the store but has written no counts yet — try again in a few seconds"
                    ),
                },
                Err(e) => return Err(store_error(&e, &store_path, &path)),
            }
        }
    };
    let mut out = std::io::stdout().lock();
    let text = if args.json {
        serde_json::to_string(&snapshot).context("cannot encode the counts as JSON")?
    } else {
        render_stats(&snapshot, source, now)
    };
    writeln!(out, "{}", text.trim_end())
        .and_then(|()| out.flush())
        .context("cannot write to standard output")?;
    Ok(())
}

fn render_stats(s: &StatsSnapshot, source: Source, now: u64) -> String {
    let age = now.saturating_sub(s.written_at);
    let mut out = match source {
        Source::Live => format!(
            "relay running (counts from {} ago, up {})\n",
            span(age),
            span(now.saturating_sub(s.started_at))
        ),
        Source::Stale => format!(
            "relay running, but its last counts are {} old: it may be overloaded or stuck (check its log)\n",
            span(age)
        ),
        Source::Store => "relay not running: counts read from the store (activity counts exist only while a relay runs)\n"
            .to_owned(),
    };
    if source == Source::Store {
        out.push_str(&format!("queues       {}\n", s.queues));
        out.push_str(&format!("messages     {} waiting\n", s.messages));
    } else {
        out.push_str(&format!(
            "connections  {} open, {} since start, {} refused at the limit, {} cut\n",
            s.connections_open, s.connections_total, s.connections_refused, s.connections_cut
        ));
        out.push_str(&format!(
            "queues       {} stored; {} created, {} deleted since start\n",
            s.queues, s.queues_created, s.queues_deleted
        ));
        out.push_str(&format!(
            "messages     {} waiting; {} stored, {} delivered, {} acknowledged, {} expired since start\n",
            s.messages, s.messages_stored, s.messages_delivered, s.messages_acked, s.messages_expired
        ));
        out.push_str(&format!("commands     {} since start\n", s.commands));
        // In wire order, then any code this version does not know.
        let mut names: Vec<String> = ERROR_CODES
            .iter()
            .map(|(_, name)| (*name).to_owned())
            .collect();
        names.extend(
            s.errors
                .keys()
                .filter(|k| !names.contains(k))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let errors: Vec<String> = names
            .iter()
            .filter_map(|code| {
                s.errors
                    .get(code)
                    .filter(|&&n| n > 0)
                    .map(|n| format!("{code} {n}"))
            })
            .collect();
        out.push_str(&format!(
            "errors       {}\n",
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join(", ")
            }
        ));
    }
    out.push_str(&format!("store        {} on disk", bytes(s.store_bytes)));
    if source != Source::Store && s.store_commits > 0 {
        out.push_str(&format!(
            "; {} commits since start, {:.1} writes each, {} rows written, {} spent committing",
            s.store_commits,
            s.store_committed_ops as f64 / s.store_commits as f64,
            s.store_written_rows,
            span(s.store_commit_micros / 1_000_000),
        ));
    }
    out.push('\n');
    out
}

/// A duration in seconds for people: `42 s`, `5 min`, `3 h 12 min`, `2 d 4 h`.
fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A size for people: `812 B`, `4.0 KiB`, `1.2 MiB`, `3.4 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use passage_relay::Metrics;

    use super::*;

    #[test]
    fn spans_and_sizes_read_well() {
        assert_eq!(span(5), "5 s");
        assert_eq!(span(125), "2 min");
        assert_eq!(span(3 * 3600 + 12 * 60), "3 h 12 min");
        assert_eq!(span(2 * 86_400 + 4 * 3600), "2 d 4 h");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(1_258_291), "1.2 MiB");
    }

    #[test]
    fn stats_text_names_its_source() {
        let metrics = Metrics::default();
        Metrics::inc(&metrics.messages_stored);
        metrics.error(passage_wire::ErrorCode::Quota);
        let live = StatsSnapshot::from_metrics(&metrics, 100, 160, true);
        let text = render_stats(&live, Source::Live, 162);
        assert!(
            text.starts_with("relay running (counts from 2 s ago, up 1 min)\n"),
            "{text}"
        );
        assert!(text.contains("errors       QUOTA 1\n"), "{text}");
        assert!(text.contains("1 stored,"), "{text}");
        let stored = StatsSnapshot::from_store(Default::default(), 5);
        let text = render_stats(&stored, Source::Store, 5);
        assert!(
            text.starts_with("relay not running: counts read from the store"),
            "{text}"
        );
    }
}
