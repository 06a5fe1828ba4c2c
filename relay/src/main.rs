//! `passage-relay`: the relay an NGO runs. `serve` runs it; `address` and `stats` read
//! what a running (or stopped) relay left in its data directory.
//!
//! ```text
//!  serve:  config (file + flags) ─► logging ─► fd limit ─► DataDir ─► RedbStore (locks the file)
//!          ─► identity (created once) ─► listen ─► DIR/address + "relay address: …" on stdout
//!          ─► Relay::serve ┬ until SIGINT/SIGTERM
//!                          ├ stats writer: DIR/stats.json every STATS_FILE_INTERVAL
//!                          └ metrics endpoint (optional, loopback)
//!  address: DIR/address ─► stdout          stats: DIR/stats.json (or the store) ─► stdout
//! ```
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use passage_relay::config::{Config, FileConfig, LogLevel, Overrides};
use passage_relay::datadir::{DataDir, StatsSnapshot};
use passage_relay::metrics::ERROR_CODES;
use passage_relay::server::unix_now;
use passage_relay::store::{OpenError, RedbStore, Store};
use passage_relay::{Metrics, Relay, metrics_http};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{info, warn};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How often `serve` rewrites `DIR/stats.json`.
const STATS_FILE_INTERVAL: Duration = Duration::from_secs(5);

/// A stats file older than this, from a relay that said it was running, is stale: the
/// relay was killed, or is stuck.
const STATS_STALE_AFTER_SECS: u64 = 3 * STATS_FILE_INTERVAL.as_secs();

/// File descriptors kept for the store, the listener, logs and the metrics endpoint,
/// on top of one per connection.
const SPARE_FDS: u64 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "passage-relay",
    version,
    about = "The Passage relay: stores and forwards end-to-end encrypted messages in anonymous queues.",
    long_about = "The Passage relay: stores and forwards end-to-end encrypted messages in anonymous queues.

It keeps no accounts, phone numbers or contact lists, sees only ciphertext, and logs no IP \
addresses. Undelivered messages are deleted after a retention limit (21 days by default).

Start it with:

    passage-relay serve

On first start it creates its key in the data directory (./passage-relay-data unless --data \
says otherwise) and prints one line:

    relay address: passage://<pin>@127.0.0.1:5223

Give that address to the people who will use the relay: the <pin> lets their apps check that \
they reach this relay and no impostor. The key is reused on every start, so the address stays \
the same; back up the data directory, as losing identity.der changes the address.

By default the relay listens on 127.0.0.1 (this machine only). To serve the internet:

    passage-relay serve --listen 0.0.0.0:5223 --public-address relay.example.org

See `passage-relay serve --help` for the configuration file."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay until SIGINT (Ctrl-C) or SIGTERM.
    #[command(long_about = "Run the relay until SIGINT (Ctrl-C) or SIGTERM.

Creates the data directory (mode 0700) and the relay's key on first start, opens the store, \
listens on UDP (QUIC) and TCP (TLS) on the same port, and prints one line on standard output:

    relay address: passage://<pin>@host:port

The same line is saved in DATA_DIR/address (see `passage-relay address`). Counts are written \
to DATA_DIR/stats.json every 5 seconds (see `passage-relay stats`). Logs go to standard error \
and hold counts and errors only: no IP address, queue id or key.

Every setting can be given in a TOML file (--config); relay/relay.example.toml lists them all \
with their defaults. Flags override the file. On SIGINT or SIGTERM the relay stops accepting, \
lets connections finish the writes they started (5 seconds at most) and exits with status 0.")]
    Serve(ServeArgs),
    /// Print the relay's address (also while `serve` runs).
    #[command(
        long_about = "Print the relay's address, `passage://<pin>@host:port`, as the last \
`passage-relay serve` with this data directory printed it. Works while the relay runs."
    )]
    Address(DirArgs),
    /// Print the relay's counts: connections, queues, messages, errors (also while `serve` runs).
    #[command(
        long_about = "Print the relay's counts: connections, queues, messages, errors, \
store size. Counts only: never a queue id, key or address.

While `serve` runs, reads DATA_DIR/stats.json, which the relay rewrites every 5 seconds. When \
no relay runs, opens the store briefly and prints what it holds (activity counters exist only \
while a relay runs). The output says which."
    )]
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Read settings from this TOML file (see relay/relay.example.toml). Flags override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Keep the key, store and status files here [default: ./passage-relay-data]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Listen on this IP address and port, UDP and TCP; port 0 picks a free one
    /// [default: 127.0.0.1:5223]
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<String>,
    /// The host (and port) clients connect to, if not the listen address; required when
    /// listening on 0.0.0.0 or [::]
    #[arg(long, value_name = "HOST[:PORT]")]
    public_address: Option<String>,
    /// How much to log to standard error [default: info]
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<LogLevel>,
}

#[derive(Debug, Args)]
struct DirArgs {
    /// Take the data directory from this configuration file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// The relay's data directory [default: ./passage-relay-data]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct StatsArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Print one JSON object on one line instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => run_serve(args),
        Command::Address(args) => run_address(&args),
        Command::Stats(args) => run_stats(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what went wrong and what to do (each message says both).
            eprintln!("passage-relay: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// serve

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let flags = Overrides {
        listen: args.listen,
        public_address: args.public_address,
        data_dir: args.data,
        log_level: args.log_level,
    };
    // Every setting is checked before anything is created or bound.
    let config = Config::load(args.config.as_deref(), flags).map_err(plain)?;
    init_logging(config.log_level);
    raise_fd_limit(config.limits.max_connections);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            anyhow!(
                "cannot start the async runtime: {e} — check the system's thread and memory limits"
            )
        })?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let dir = DataDir::create(&config.data_dir).map_err(plain)?;
    dir.check_store_file().map_err(plain)?;
    // The store first: its lock keeps a second relay off this directory before it
    // touches the key or the status files.
    let store_path = dir.store_path();
    let store = {
        let path = store_path.clone();
        tokio::task::spawn_blocking(move || RedbStore::open(path))
            .await
            .map_err(|e| anyhow!("opening the store failed: {e}"))?
            .map_err(|e| store_error(&e, &store_path, dir.path()))?
    };
    let store: Arc<dyn Store> = Arc::new(store);
    let metrics = Arc::new(Metrics::default());
    // The relay refreshes these every few seconds; set them now for the first stats file.
    if let Ok(stats) = store.stats() {
        metrics.stored_queues.store(stats.queues, Ordering::Relaxed);
        metrics
            .stored_messages
            .store(stats.messages, Ordering::Relaxed);
        metrics
            .store_bytes
            .store(stats.bytes_on_disk, Ordering::Relaxed);
    }
    let (identity, created) = dir.load_or_create_identity().map_err(plain)?;
    if created {
        info!("created a new relay key: this relay has a new address");
    } else {
        info!("loaded the relay key");
    }

    // Signal handlers before the address line, so a signal right after it is handled.
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| anyhow!("cannot handle SIGTERM: {e}"))?;
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| anyhow!("cannot handle SIGINT: {e}"))?;

    let listener = passage_transport::listen(config.listen, &identity, config.server_options())
        .await
        .map_err(|e| {
            anyhow!(
                "cannot listen on {}: {} — is another program using that port? Choose another --listen IP:PORT",
                config.listen,
                causes(&e)
            )
        })?;
    let bound = listener.local_addr();
    let address = config.relay_address(identity.pin(), bound).map_err(plain)?;
    drop(identity);
    info!("listening on 1 address (QUIC on UDP, TLS on TCP)");
    if let Some((recv, _send)) = listener.udp_buffer_sizes() {
        // Linux reports twice what it grants; every QUIC connection shares this buffer.
        let granted = recv / 2;
        if granted < passage_transport::SERVER_UDP_SOCKET_BUFFER {
            warn!(
                "the QUIC socket's receive buffer is {} KiB (the kernel's net.core.rmem_max caps it); \
                 with many QUIC clients, raise it (sysctl -w net.core.rmem_max={} net.core.wmem_max={}) \
                 so that bursts are not dropped",
                granted / 1024,
                passage_transport::SERVER_UDP_SOCKET_BUFFER,
                passage_transport::SERVER_UDP_SOCKET_BUFFER
            );
        } else {
            info!("QUIC socket buffers: {} KiB", granted / 1024);
        }
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    if let Some(addr) = config.metrics_listen {
        let http = metrics_http::bind(addr).await.map_err(|e| {
            anyhow!("cannot listen for metrics on {addr}: {e} — choose another metrics_listen or remove it")
        })?;
        background.spawn(metrics_http::serve(
            http,
            Arc::clone(&metrics),
            stopped(stop_rx.clone()),
        ));
        info!("metrics endpoint on (loopback)");
    }

    let started_at = unix_now();
    dir.write_stats(&StatsSnapshot::from_metrics(
        &metrics, started_at, started_at, true,
    ))
    .map_err(plain)?;
    let address_line = address.to_string();
    dir.write_address(&address_line).map_err(plain)?;
    print_address(&address_line);
    background.spawn(write_stats_until_stopped(
        dir.clone(),
        Arc::clone(&metrics),
        started_at,
        stop_rx.clone(),
    ));
    info!("relay started");

    let shutdown = {
        let metrics = Arc::clone(&metrics);
        async move {
            let name = tokio::select! {
                _ = sigterm.recv() => "SIGTERM",
                _ = sigint.recv() => "SIGINT",
            };
            let open = metrics.connections_open.load(Ordering::Relaxed);
            info!("{name}: shutting down, {open} connections open");
            let _ = stop_tx.send(true);
        }
    };
    let relay = Relay::new(config.service_config(), store, Arc::clone(&metrics));
    relay.serve(listener, shutdown).await;
    // The relay (and with it the store) is closed; stop the helpers and leave final counts.
    let asked_to_stop = *stop_rx.borrow();
    background.abort_all();
    while background.join_next().await.is_some() {}
    let now = unix_now();
    if let Err(e) = dir.write_stats(&StatsSnapshot::from_metrics(
        &metrics, started_at, now, false,
    )) {
        warn!("could not write the final stats file: {}", kind_only(&e));
    }
    if !asked_to_stop {
        bail!("the listener stopped unexpectedly — see the log above, then start the relay again");
    }
    info!("relay stopped");
    Ok(())
}

/// Prints the address line on stdout and flushes it. A closed stdout is not fatal: the
/// address is also in `DIR/address`.
fn print_address(address: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "relay address: {address}")
        .and_then(|()| out.flush())
        .is_err()
    {
        warn!(
            "could not write the address line to standard output; `passage-relay address` prints it"
        );
    }
}

/// Completes when the stop flag is set (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|&stop| stop).await;
}

async fn write_stats_until_stopped(
    dir: DataDir,
    metrics: Arc<Metrics>,
    started_at: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut failing = false;
    let mut tick = tokio::time::interval(STATS_FILE_INTERVAL);
    tick.tick().await; // The first tick is immediate; the file was just written.
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|&stop| stop) => return,
        }
        let snapshot = StatsSnapshot::from_metrics(&metrics, started_at, unix_now(), true);
        let dir = dir.clone();
        let result = tokio::task::spawn_blocking(move || dir.write_stats(&snapshot)).await;
        match result {
            Ok(Ok(())) if failing => {
                failing = false;
                info!("writing the stats file works again");
            }
            Ok(Ok(())) => {}
            Ok(Err(e)) if !failing => {
                failing = true;
                warn!(
                    "could not write the stats file: {} (retrying every 5 s)",
                    kind_only(&e)
                );
            }
            Ok(Err(_)) | Err(_) => {}
        }
    }
}

fn store_error(e: &OpenError, path: &Path, dir: &Path) -> anyhow::Error {
    let path = path.display();
    match e {
        OpenError::InUse => anyhow!(
            "the store {path} is in use by another process — is a relay already running with --data {}? Stop it, or choose another --data DIR",
            dir.display()
        ),
        OpenError::Create(io) => anyhow!(
            "cannot create the store {path}: {io} — check the data directory's permissions and free disk space"
        ),
        OpenError::UnknownSchema { found } => anyhow!(
            "the store {path} was written by another version of passage-relay (layout {found}) — run that version, or move the file away to start with an empty store"
        ),
        other => anyhow!(
            "cannot open the store {path}: {} — the file may be damaged; restore it from a backup, or move it away to start with an empty store (undelivered messages are then lost)",
            causes(other)
        ),
    }
}

// ---------------------------------------------------------------------------------------
// address, stats

fn data_dir_of(args: &DirArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.data {
        return Ok(dir.clone());
    }
    let from_file = match &args.config {
        Some(path) => FileConfig::read(path).map_err(plain)?.data_dir,
        None => None,
    };
    Ok(from_file.unwrap_or_else(|| Config::default().data_dir))
}

fn run_address(args: &DirArgs) -> anyhow::Result<()> {
    let path = data_dir_of(args)?;
    let dir = DataDir::open(&path).map_err(plain)?;
    match dir.read_address().map_err(plain)? {
        Some(address) if !address.is_empty() => {
            println!("{address}");
            Ok(())
        }
        _ => bail!(
            "no address in {} yet — start the relay once with `passage-relay serve --data {}`",
            path.display(),
            path.display()
        ),
    }
}

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

fn run_stats(args: &StatsArgs) -> anyhow::Result<()> {
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
    out.push_str(&format!("store        {} on disk\n", bytes(s.store_bytes)));
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

// ---------------------------------------------------------------------------------------
// logging, limits, errors

/// Logs to stderr at `level`. The transport libraries stay at `warn` whatever the level
/// (their debug output names peers); quinn-udp stays at `error`, as its warnings carry
/// the peer's address.
fn init_logging(level: LogLevel) {
    let level = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let libraries = level.min(LevelFilter::WARN);
    let filter = Targets::new()
        .with_default(level)
        .with_target("quinn", libraries)
        .with_target("quinn_proto", libraries)
        .with_target("rustls", libraries)
        .with_target("tokio_rustls", libraries)
        .with_target("quinn_udp", level.min(LevelFilter::ERROR));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    // Fails only if a subscriber is already set, which nothing here does.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init();
}

/// Raises the soft limit on open files to the hard limit: each connection needs one,
/// and the usual soft limit (1,024) is far below `max_connections`.
fn raise_fd_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            info!("file descriptor limit: {limit}");
            let needed = (max_connections as u64).saturating_add(SPARE_FDS);
            if limit < needed {
                warn!(
                    "file descriptor limit {limit} is below max_connections + {SPARE_FDS} ({needed}): \
                     connections beyond about {} will fail; raise the hard limit (LimitNOFILE= in a \
                     systemd unit, or `ulimit -Hn`) or lower max_connections",
                    limit.saturating_sub(SPARE_FDS)
                );
            }
        }
        Err(e) => warn!("could not raise the file descriptor limit: {e}"),
    }
}

/// An error whose message already says what to do (our own types), as anyhow's.
fn plain(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

/// An error and its sources on one line.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// The kind of a failure to write a status file, for the log: short, without the path
/// (the operator knows the data directory; the log line stays the same on every relay).
fn kind_only(e: &passage_relay::datadir::DataDirError) -> String {
    match std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()) {
        Some(io) => io.kind().to_string(),
        None => "invalid data".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

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
