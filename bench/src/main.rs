//! `passage-relay-bench`: the relay's throughput, latency, CPU and memory under load,
//! each figure next to a plain TLS forwarder's measured in the same run.
//!
//! ```text
//!  bench process (multi-threaded tokio)             child processes (measured via /proc)
//!  ────────────────────────────────────             ────────────────────────────────────
//!  N pairs: sender link ─SEND─► ┐                ┌─ passage-relay serve (temp data dir)
//!           recipient link ◄MSG─┴─ TLS/TCP|QUIC ─┤
//!  window, pace, stamps, tally                   └─ passage-relay-bench forwarder (baseline)
//!  ─► figures (text; --json: one JSON line last)
//! ```
//!
//! Quick start (release build, from the workspace root):
//!
//! ```text
//! cargo build --release -p passage-relay -p passage-relay-bench
//! target/release/passage-relay-bench --pairs 100 --seconds 10 --transport tcp --json
//! target/release/passage-relay-bench idle --connections 10000
//! ```
#![forbid(unsafe_code)]

mod forward_load;
mod forwarder;
mod idle;
mod latency;
mod load;
mod procfs;
mod relay_load;
mod report;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use passage_transport::{ConnectOptions, TransportMode};

use crate::forward_load::ForwardPairPlan;
use crate::load::{Outcome, Phases, Shared};
use crate::relay_load::RelayPairPlan;
use crate::report::{RoundFigures, RunReport, RunShape};
use crate::server::{RelayTuning, ServerProcess};

/// Most pairs in one run: each costs two connections (file descriptors) in the bench
/// and in the server.
const MAX_PAIRS: usize = 5_000;

/// Longest measured window.
const MAX_SECONDS: u64 = 3_600;

/// Most rounds of one run.
const MAX_ROUNDS: usize = 9;

/// Largest window per pair: the relay's default queue quota is 256 messages.
const MAX_WINDOW: usize = 256;

/// Most idle connections (the relay's `max_connections` may be at most 1,000,000, but
/// every connection is a file descriptor here too).
const MAX_IDLE_CONNECTIONS: usize = 100_000;

#[derive(Debug, Parser)]
#[command(
    name = "passage-relay-bench",
    version,
    about = "Load generator for passage-relay: throughput, latency, CPU and memory, each next to a plain TLS forwarder's from the same run.",
    long_about = "Load generator for passage-relay: throughput, latency, CPU and memory, each next to a plain TLS forwarder's from the same run.

Starts a real passage-relay (a fresh temporary data directory, 127.0.0.1, port 0, rate limits \
lifted), drives --pairs sender/recipient pairs through it (one queue per pair, 4096-byte blocks, \
each message a full-size SEND whose body carries a sequence number and a send time; recipients \
subscribe and ACK), then drives the same traffic through `passage-relay-bench forwarder`, a \
plain forwarder over the same transport. Each pair keeps --window messages in flight.

Prints the relay's and the baseline's messages per second, send→delivery latency percentiles, \
server CPU time per message (from /proc, so the figure holds while the load shares the cores), \
server memory, and messages lost (answered OK, never delivered: must be 0). Exits with status 2 \
if any message was lost.

Examples:
    passage-relay-bench --pairs 100 --seconds 10 --transport tcp --json
    passage-relay-bench --pairs 100 --seconds 10 --rate 2000      # latency at a set rate
    passage-relay-bench idle --connections 10000",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The baseline server: forwards blocks between paired connections (started by the
    /// bench itself; exits when its standard input closes).
    Forwarder(ForwarderArgs),
    /// Memory per idle connection: opens N TCP connections to a fresh relay.
    Idle(IdleArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Sender/recipient pairs, each with its own queue and two connections.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pairs: usize,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 10, value_name = "S")]
    seconds: u64,
    /// The transport, for the relay and the baseline alike.
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    transport: Transport,
    /// Messages each pair keeps sent and not yet delivered.
    #[arg(long, default_value_t = 8, value_name = "W")]
    window: usize,
    /// Pace the sends at R messages per second in total (split evenly across pairs)
    /// instead of saturating; for latency at a given load.
    #[arg(long, value_name = "R")]
    rate: Option<u64>,
    /// Seconds of traffic before the measured window.
    #[arg(long, default_value_t = 2, value_name = "S")]
    warmup: u64,
    /// Longest wait, after sending stops, for every accepted message to be delivered.
    #[arg(long, default_value_t = 30, value_name = "S")]
    drain: u64,
    /// Skip the baseline (the ratios are then null).
    #[arg(long)]
    no_baseline: bool,
    /// Measure the relay and the baseline alternately N times (fresh servers and
    /// connections each round) and report the round whose throughput ratio is the
    /// median (at a set --rate: whose CPU ratio is), with every round's ratios: evens
    /// out the machine's own drift.
    #[arg(long, default_value_t = 1, value_name = "N")]
    rounds: usize,
    /// Print the figures as one JSON object on the last line too.
    #[arg(long)]
    json: bool,
    /// The passage-relay binary [default: passage-relay next to this executable].
    #[arg(long, value_name = "PATH")]
    relay_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ForwarderArgs {
    /// Listen on this loopback address (TCP and UDP).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "IP:PORT")]
    listen: SocketAddr,
}

#[derive(Debug, Args)]
struct IdleArgs {
    /// Idle TCP connections to open.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    connections: usize,
    /// Print the figures as one JSON object on the last line too.
    #[arg(long)]
    json: bool,
    /// The passage-relay binary [default: passage-relay next to this executable].
    #[arg(long, value_name = "PATH")]
    relay_bin: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// TLS 1.3 over TCP.
    Tcp,
    /// QUIC.
    Quic,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Quic => "quic",
        }
    }

    fn options(self) -> ConnectOptions {
        let mut options = ConnectOptions::default();
        options.mode = match self {
            Self::Tcp => TransportMode::Tcp,
            Self::Quic => TransportMode::Quic,
        };
        options
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Forwarder(args)) => forwarder_main(&args).map(|()| ExitCode::SUCCESS),
        Some(Command::Idle(args)) => idle_main(&args),
        None => run_main(&cli.run),
    };
    result.unwrap_or_else(|e| {
        eprintln!("passage-relay-bench: error: {e:#}");
        ExitCode::FAILURE
    })
}

fn forwarder_main(args: &ForwarderArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!(
            "the forwarder listens on loopback only, not {} — use 127.0.0.1:PORT",
            args.listen
        );
    }
    raise_fd_limit();
    forwarder::run(args.listen)
}

fn idle_main(args: &IdleArgs) -> anyhow::Result<ExitCode> {
    if !(1..=MAX_IDLE_CONNECTIONS).contains(&args.connections) {
        bail!("--connections must be from 1 to {MAX_IDLE_CONNECTIONS}");
    }
    let relay_bin = relay_bin(args.relay_bin.as_ref())?;
    raise_fd_limit();
    let report = runtime()?.block_on(idle::run(&relay_bin, args.connections))?;
    print!("{}", report::idle_text(&report));
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn run_main(args: &RunArgs) -> anyhow::Result<ExitCode> {
    if !(1..=MAX_PAIRS).contains(&args.pairs) {
        bail!("--pairs must be from 1 to {MAX_PAIRS}");
    }
    if !(1..=MAX_SECONDS).contains(&args.seconds) {
        bail!("--seconds must be from 1 to {MAX_SECONDS}");
    }
    if !(1..=MAX_ROUNDS).contains(&args.rounds) {
        bail!("--rounds must be from 1 to {MAX_ROUNDS}");
    }
    if !(1..=MAX_WINDOW).contains(&args.window) {
        bail!("--window must be from 1 to {MAX_WINDOW} (the relay's queue quota)");
    }
    if args.warmup > MAX_SECONDS || args.drain > MAX_SECONDS {
        bail!("--warmup and --drain must be at most {MAX_SECONDS}");
    }
    let interval = match args.rate {
        Some(0) => bail!("--rate must be at least 1 message per second"),
        // Each pair sends every pairs/rate seconds.
        Some(rate) => Some(Duration::from_secs_f64(args.pairs as f64 / rate as f64)),
        None => None,
    };
    let relay_bin = relay_bin(args.relay_bin.as_ref())?;
    raise_fd_limit();
    let phases = Phases {
        warmup: Duration::from_secs(args.warmup),
        measure: Duration::from_secs(args.seconds),
        drain: Duration::from_secs(args.drain),
    };
    let runtime = runtime()?;

    let tuning = RelayTuning {
        max_connections: 2 * args.pairs + 64,
        queue_quota: 256,
    };
    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        if args.rounds > 1 {
            progress(&format!("round {round} of {}", args.rounds));
        }
        let relay = runtime.block_on(async {
            let mut relay = ServerProcess::start_relay(&relay_bin, &tuning)?;
            progress(&format!(
                "relay pid {} at {}; setting up {} pairs over {}",
                relay.pid(),
                relay.address(),
                args.pairs,
                args.transport.name()
            ));
            let shared = Shared::new();
            let plan = Arc::new(RelayPairPlan {
                address: relay.address().clone(),
                options: args.transport.options(),
                window: args.window,
                interval,
            });
            let pairs = load::set_up_pairs(args.pairs, |pair| {
                relay_load::set_up_pair(Arc::clone(&plan), pair, Arc::clone(&shared))
            })
            .await?;
            progress("relay: measuring");
            let outcome = load::measure(&mut relay, &shared, pairs, phases).await;
            finish(relay, outcome)
        })?;

        let baseline = if args.no_baseline {
            None
        } else {
            Some(runtime.block_on(async {
                let mut forwarder = ServerProcess::start_forwarder()?;
                progress(&format!(
                    "baseline: forwarder pid {}; setting up {} pairs",
                    forwarder.pid(),
                    args.pairs
                ));
                let shared = Shared::new();
                let plan = Arc::new(ForwardPairPlan {
                    address: forwarder.address().clone(),
                    options: args.transport.options(),
                    window: args.window,
                    interval,
                });
                let pairs = load::set_up_pairs(args.pairs, |pair| {
                    forward_load::set_up_pair(Arc::clone(&plan), pair, Arc::clone(&shared))
                })
                .await?;
                progress("baseline: measuring");
                let outcome = load::measure(&mut forwarder, &shared, pairs, phases).await;
                finish(forwarder, outcome)
            })?)
        };
        rounds.push((relay, baseline));
    }
    let summaries: Vec<RoundFigures> = rounds
        .iter()
        .map(|(relay, baseline)| RoundFigures::new(relay, baseline.as_ref()))
        .collect();
    let failed = rounds
        .iter()
        .find(|(relay, _)| relay.lost > 0 || !relay.drained)
        .map(|(relay, _)| (relay.lost, relay.drained));
    let (relay, baseline) = median_round(rounds, args.rate.is_some());

    let shape = RunShape {
        pairs: args.pairs,
        transport: args.transport.name(),
        seconds: args.seconds,
        window: args.window,
        rate: args.rate,
    };
    let mut report = RunReport::new(shape, &relay, baseline.as_ref());
    report.lost = summaries.iter().map(|r| r.lost).sum();
    report.rounds = summaries;
    print!("{}", report.text(&relay, baseline.as_ref()));
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("writing the JSON report")?
        );
    }
    if let Some((lost, drained)) = failed {
        eprintln!(
            "passage-relay-bench: FAILED: the relay answered OK to {} messages it never delivered{}",
            lost,
            if drained {
                ""
            } else {
                " (the drain did not finish)"
            }
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// The median round: by throughput ratio (or, without a baseline, throughput); at a set
/// `--rate` (`paced`), where every round delivers that rate and the throughput ratio is
/// 1.00 in each, by CPU ratio (or, without a baseline, relay CPU per message) instead, the
/// figure that then varies.
fn median_round(
    mut rounds: Vec<(Outcome, Option<Outcome>)>,
    paced: bool,
) -> (Outcome, Option<Outcome>) {
    let key = |(relay, baseline): &(Outcome, Option<Outcome>)| {
        if paced {
            let relay_cpu = relay.cpu_us_per_msg.unwrap_or(f64::MAX);
            match baseline.as_ref().and_then(|b| b.cpu_us_per_msg) {
                Some(b) if b > 0.0 => relay_cpu / b,
                _ => relay_cpu,
            }
        } else {
            match baseline {
                Some(b) if b.msgs_per_sec > 0.0 => relay.msgs_per_sec / b.msgs_per_sec,
                _ => relay.msgs_per_sec,
            }
        }
    };
    rounds.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let middle = rounds.len() / 2;
    rounds.swap_remove(middle)
}

/// Stops the server after a measured run; its warnings and errors go to stderr.
fn finish(server: ServerProcess, outcome: anyhow::Result<Outcome>) -> anyhow::Result<Outcome> {
    let name = server.kind().name();
    let tail_on_error = outcome.as_ref().err().map(|_| server.log_tail());
    let (status, log) = server
        .stop()
        .with_context(|| format!("stopping the {name}"))?;
    let outcome = match (outcome, tail_on_error) {
        (Ok(outcome), _) => outcome,
        (Err(e), tail) => {
            return Err(e.context(format!(
                "the {name}'s log ends with:\n{}",
                tail.unwrap_or_default()
            )));
        }
    };
    if !log.trim().is_empty() {
        progress(&format!("{name} logged:\n{log}"));
    }
    if !status.success() {
        progress(&format!("warning: the {name} exited with {status}"));
    }
    Ok(outcome)
}

fn relay_bin(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match given {
        Some(path) => path.clone(),
        None => server::default_relay_bin()?,
    };
    if !bin.is_file() {
        bail!(
            "no relay binary at {} — build it with `cargo build --release -p passage-relay`, or give --relay-bin PATH",
            bin.display()
        );
    }
    Ok(bin)
}

/// Lifts this process's file-descriptor limit to the hard limit: two per pair (and one
/// UDP socket per QUIC connection), or one per idle connection.
fn raise_fd_limit() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        progress(&format!(
            "warning: could not raise the file descriptor limit: {e}"
        ));
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A progress line on stderr (stdout holds the figures).
fn progress(line: &str) {
    eprintln!("passage-relay-bench: {line}");
}
