//! `idle`: the relay's memory per idle connection. Opens N TCP connections to a fresh
//! relay, each completing the TLS handshake and the hello exchange (checked with one
//! `PING`), lets them idle, and compares the relay's resident memory before and after.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use passage_client::relay::RelayLink;
use passage_transport::{ConnectOptions, TransportMode};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::server::{RelayTuning, ServerProcess};

/// Connections being opened at once (below the relay's 256 handshakes in progress).
pub const CONNECT_CONCURRENCY: usize = 64;

/// Longest time opening all connections may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(300);

/// Time for the relay to settle before each memory reading (allocator, tasks started).
pub const SETTLE: Duration = Duration::from_secs(2);

/// How long the connections idle before the second reading.
pub const IDLE: Duration = Duration::from_secs(3);

/// What `idle` measured.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Connections asked for.
    pub connections: usize,
    /// Connections that completed the handshake, hello and a ping.
    pub connected: usize,
    /// Connections that failed.
    pub failed: usize,
    /// Seconds taken to open them.
    pub connect_seconds: f64,
    /// Relay VmRSS with no connection, KiB.
    pub relay_rss_before_kib: u64,
    /// Relay VmRSS with the connections idle, KiB.
    pub relay_rss_after_kib: u64,
    /// (after − before) ÷ connected.
    pub kib_per_connection: Option<f64>,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Runs `idle` against a relay started from `relay_bin`.
pub async fn run(relay_bin: &Path, connections: usize) -> anyhow::Result<IdleReport> {
    let tuning = RelayTuning {
        max_connections: connections + 64,
        queue_quota: 256,
    };
    let mut relay = ServerProcess::start_relay(relay_bin, &tuning)?;
    tokio::time::sleep(SETTLE).await;
    let before = relay.rss_kib()?;

    let mut options = ConnectOptions::default();
    options.mode = TransportMode::Tcp;
    let address = relay.address().clone();
    let slots = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let mut links = Vec::with_capacity(connections);
    let mut failed = 0usize;
    let mut first_error = None;
    let opened = tokio::time::timeout(CONNECT_TIMEOUT, async {
        for _ in 0..connections {
            let permit = Arc::clone(&slots).acquire_owned().await?;
            let (address, options) = (address.clone(), options.clone());
            tasks.spawn(async move {
                let result = async {
                    let link = RelayLink::connect(&address, &options).await?;
                    link.ping().await?;
                    anyhow::Ok(link)
                }
                .await;
                drop(permit);
                result
            });
            // Collect what finished, so the set does not hold every result.
            while let Some(done) = tasks.try_join_next() {
                record(done, &mut links, &mut failed, &mut first_error);
            }
        }
        while let Some(done) = tasks.join_next().await {
            record(done, &mut links, &mut failed, &mut first_error);
        }
        anyhow::Ok(())
    })
    .await;
    match opened {
        Ok(result) => result?,
        Err(_) => bail!("opening {connections} connections took more than {CONNECT_TIMEOUT:?}"),
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(IDLE).await;
    relay.check_running()?;
    let after = relay.rss_kib()?;
    let connected = links.len();

    drop(links);
    let (status, log) = relay.stop().context("stopping the relay")?;
    if !status.success() {
        bail!("the relay exited with {status}; its log ends with:\n{log}");
    }
    Ok(IdleReport {
        connections,
        connected,
        failed,
        connect_seconds,
        relay_rss_before_kib: before,
        relay_rss_after_kib: after,
        kib_per_connection: (connected > 0)
            .then(|| after.saturating_sub(before) as f64 / connected as f64),
        first_error,
    })
}

fn record(
    done: Result<anyhow::Result<RelayLink>, tokio::task::JoinError>,
    links: &mut Vec<RelayLink>,
    failed: &mut usize,
    first_error: &mut Option<String>,
) {
    match done {
        Ok(Ok(link)) => links.push(link),
        Ok(Err(e)) => {
            *failed += 1;
            first_error.get_or_insert_with(|| format!("{e:#}"));
        }
        Err(e) => {
            *failed += 1;
            first_error.get_or_insert_with(|| format!("task failed: {e}"));
        }
    }
}
