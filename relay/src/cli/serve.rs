//! `serve`: runs the relay. Start-up in the order main.rs's picture shows (config,
//! logging, descriptor limit, data directory, store, key, signals, sockets, address
//! line), the stats file rewritten while it runs, and the shutdown on a signal.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{anyhow, bail};
use passage_relay::config::{Config, LogLevel, Overrides};
use passage_relay::datadir::{DataDir, StatsSnapshot};
use passage_relay::key_rotation::{self, Overlap};
use passage_relay::server::unix_now;
use passage_relay::store::{RedbStore, Store, StoreCapacity, free_disk_bytes};
use passage_relay::{Metrics, Relay, metrics_http};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{info, warn};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::ServeArgs;
use super::error::{causes, kind_only, plain, store_error};

/// How often `serve` rewrites `DIR/stats.json`.
pub(super) const STATS_FILE_INTERVAL: Duration = Duration::from_secs(5);

/// How often `serve` checks the data directory's free space against
/// `min_free_disk_mib`.
pub(super) const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// File descriptors kept for the store, the listener, logs and the metrics endpoint,
/// on top of one per connection.
const SPARE_FDS: u64 = 64;

pub(super) fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let flags = Overrides {
        listen: args.listen,
        public_address: args.public_address,
        data_dir: args.data,
        log_level: args.log_level,
        open_relay: args.open_relay,
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
    if config.open_relay && config.password.is_none() {
        warn!(
            "open_relay is set: anyone who reaches this relay may create queues (the global and \
             per-source limits still hold); set password_file to restrict it"
        );
    }
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
    let capacity = store.capacity();
    capacity.set_limits(config.limits.max_queues, config.limits.max_stored_bytes);
    check_disk(&capacity, dir.path(), config.limits.min_free_disk_bytes);
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
    let (identity, created, overlap) =
        key_rotation::serving_identity(&dir, unix_now()).map_err(plain)?;
    if created {
        info!("created a new relay key: this relay has a new address");
    } else {
        info!("loaded the relay key");
    }
    match overlap {
        Overlap::Running { until } => info!(
            "key rotation under way: clients with the old address are moved to the new one until unix time {until}"
        ),
        Overlap::Ended => {
            info!("the key rotation's overlap is over: the old relay key was destroyed")
        }
        Overlap::None => {}
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

    if let Overlap::Running { until } = overlap {
        background.spawn(end_overlap_at(dir.clone(), until, stop_rx.clone()));
    }
    if config.limits.min_free_disk_bytes > 0 {
        background.spawn(watch_disk(
            capacity,
            dir.path().to_path_buf(),
            config.limits.min_free_disk_bytes,
            stop_rx.clone(),
        ));
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

/// Checks the free space of the file system under `dir` against `min_free` bytes and
/// tells the store (which then refuses new queues and messages with `ERR FULL`); logs
/// when that changes. A check that fails leaves the state as it was.
fn check_disk(capacity: &StoreCapacity, dir: &Path, min_free: u64) {
    if min_free == 0 {
        return;
    }
    let Ok(free) = free_disk_bytes(dir) else {
        return;
    };
    let low = free < min_free;
    if low != capacity.disk_low() {
        capacity.set_disk_low(low);
        if low {
            warn!(
                "the data directory's disk has {} MiB free, below min_free_disk_mib ({} MiB): \
                 new queues and messages are refused (ERR FULL) until space is freed",
                free >> 20,
                min_free >> 20
            );
        } else {
            info!("the data directory's disk has room again: new queues and messages are accepted");
        }
    }
}

async fn watch_disk(
    capacity: Arc<StoreCapacity>,
    dir: PathBuf,
    min_free: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(DISK_CHECK_INTERVAL);
    tick.tick().await; // Immediate; checked at start already.
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|&stop| stop) => return,
        }
        let (capacity, dir) = (Arc::clone(&capacity), dir.clone());
        let _ = tokio::task::spawn_blocking(move || check_disk(&capacity, &dir, min_free)).await;
    }
}

/// Destroys the retired key when the rotation's overlap ends at `until` (unix seconds).
/// The endorsement the listener still sends is refused by clients from then on (they
/// check its end against their clock); the next start sends none.
async fn end_overlap_at(dir: DataDir, until: u64, mut stop: watch::Receiver<bool>) {
    let wait = Duration::from_secs(until.saturating_sub(unix_now()));
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        _ = stop.wait_for(|&stop| stop) => return,
    }
    let result = tokio::task::spawn_blocking(move || key_rotation::destroy_retired(&dir)).await;
    match result {
        Ok(Ok(_)) => info!(
            "the key rotation's overlap is over: the old relay key was destroyed; clients with the old address now fail with a key mismatch"
        ),
        Ok(Err(e)) => warn!("could not destroy the old relay key: {e}"),
        Err(_) => warn!("could not destroy the old relay key"),
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
