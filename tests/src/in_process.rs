//! The relay's library served in this test process, for settings the binary's
//! configuration does not offer (retention in seconds, a recording store).

use std::net::Ipv4Addr;
use std::num::NonZeroU16;
use std::sync::Arc;

use passage_relay::store::RedbStore;
use passage_relay::{Limits, Metrics, Relay, ServiceConfig};
use passage_testkit::HarnessError;
use passage_transport::{RelayIdentity, ServerOptions, listen};
use passage_wire::{Host, RelayAddress};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// both transports) over a redb store in a temporary directory, for settings the
/// binary's configuration does not offer.
/// The relay's library served in this process on a real listener (`127.0.0.1:0`,
/// both transports) over a redb store in a temporary directory, for settings the
/// binary's configuration does not offer.
#[derive(Debug)]
pub struct InProcessRelay {
    address: RelayAddress,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl InProcessRelay {
    /// Starts serving with `limits`.
    pub async fn start(limits: Limits) -> Result<Self, HarnessError> {
        Self::start_with_store(limits, |store| store).await
    }

    /// Starts serving with `limits` over the store `wrap` makes of the redb store (a
    /// [`recording::RecordingStore`], say).
    pub async fn start_with_store(
        limits: Limits,
        wrap: impl FnOnce(Arc<dyn passage_relay::store::Store>) -> Arc<dyn passage_relay::store::Store>,
    ) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir()?;
        let store = RedbStore::open(dir.path().join("relay.redb"))
            .map_err(|e| HarnessError::InProcess(e.to_string()))?;
        let store = wrap(Arc::new(store));
        let identity =
            RelayIdentity::generate().map_err(|e| HarnessError::InProcess(e.to_string()))?;
        let listener = listen(
            (Ipv4Addr::LOCALHOST, 0).into(),
            &identity,
            ServerOptions::default(),
        )
        .await
        .map_err(|e| HarnessError::InProcess(e.to_string()))?;
        let port = NonZeroU16::new(listener.local_addr().port())
            .ok_or_else(|| HarnessError::InProcess("listening on port 0".into()))?;
        let address = RelayAddress::new(identity.pin(), Host::Ipv4(Ipv4Addr::LOCALHOST), port);
        let config = ServiceConfig {
            limits,
            ..ServiceConfig::default()
        };
        let relay = Relay::new(config, store, Arc::new(Metrics::default()));
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.serve(listener, async {
            let _ = stop.await;
        }));
        Ok(Self {
            address,
            shutdown: Some(shutdown),
            task: Some(task),
            _dir: dir,
        })
    }

    /// The relay's address.
    pub fn address(&self) -> &RelayAddress {
        &self.address
    }

    /// Shuts the relay down gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for InProcessRelay {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
