//! The task that owns an open profile's [`Agent`]: it carries out the handles'
//! requests one at a time and, between them, waits for the relays, turning what they
//! bring into [`MessengerEvent`]s. A request interrupts the wait (never an operation
//! half done), so a send goes out while the app listens.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};

use crate::agent::{Agent, AgentOptions};
use crate::profile::{self, IdleLock, ProfileError};
use crate::vault::Credentials;

use super::event::ContactIds;
use super::{MessengerError, MessengerEvent};

/// A boxed future borrowing the agent.
pub(super) type AgentFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Work on the open agent; dropped unrun (its caller then learns why from the
/// state) when the profile is locked, wiped or closed.
pub(super) type Job = Box<dyn for<'a> FnOnce(&'a mut Agent) -> AgentFuture<'a> + Send>;

/// What a handle asks of the driver.
pub(super) enum Request {
    Job(Job),
    Lock(oneshot::Sender<()>),
    Unlock(Credentials, oneshot::Sender<Result<(), MessengerError>>),
    LockAfter(Option<Duration>, oneshot::Sender<()>),
    PanicWipe(oneshot::Sender<Result<(), MessengerError>>),
    Close(oneshot::Sender<()>),
}

/// Where the profile stands, shared with the handles so that a request the driver
/// could not take is answered with the reason.
pub(super) const OPEN: u8 = 0;
pub(super) const LOCKED: u8 = 1;
pub(super) const WIPED: u8 = 2;
pub(super) const CLOSED: u8 = 3;

/// Ready events taken between two requests at most.
const READY_EVENTS: usize = 64;

/// How long the driver waits for the relays at most before looking at its timers.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

pub(super) struct Driver {
    pub agent: Option<Agent>,
    pub dir: PathBuf,
    pub decoy: bool,
    pub options: AgentOptions,
    pub lock: IdleLock,
    pub requests: mpsc::UnboundedReceiver<Request>,
    pub wake: Arc<Notify>,
    pub events: mpsc::UnboundedSender<MessengerEvent>,
    pub state: Arc<AtomicU8>,
    pub ids: ContactIds,
}

impl Driver {
    pub(super) async fn run(mut self) {
        self.connect().await;
        loop {
            let request = match self.requests.try_recv() {
                Ok(request) => Some(request),
                Err(mpsc::error::TryRecvError::Empty) => None,
                // Every handle is gone: close the profile.
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.finish(CLOSED).await;
                    return;
                }
            };
            if let Some(request) = request {
                if self.handle(request).await.is_break() {
                    return;
                }
                // Take what the relays brought meanwhile before the next request, so
                // that a stream of requests cannot starve deliveries (and the replies
                // queued behind them on the same connection).
                if self.take_ready_events().await.is_break() {
                    return;
                }
                continue;
            }
            let Some(agent) = self.agent.as_mut() else {
                // Locked: nothing to listen to until a request comes.
                match self.requests.recv().await {
                    Some(request) => {
                        if self.handle(request).await.is_break() {
                            return;
                        }
                    }
                    None => {
                        self.finish(CLOSED).await;
                        return;
                    }
                }
                continue;
            };
            let wait = self
                .lock
                .poll_timeout()
                .map_or(LONGEST_WAIT, |at| {
                    at.saturating_duration_since(Instant::now())
                })
                .min(LONGEST_WAIT);
            match agent.next_event_or_interrupt(wait, &self.wake).await {
                Some(event) => {
                    let delivered = self.deliver(event).await;
                    if delivered.is_break() {
                        return;
                    }
                }
                None if self.lock.handle_timeout(Instant::now()) => self.lock_now().await,
                None => {}
            }
        }
    }

    /// Hands an agent event to the app; breaks if it says the profile was wiped.
    async fn deliver(&mut self, event: crate::agent::AgentEvent) -> std::ops::ControlFlow<()> {
        self.lock.handle_activity(Instant::now());
        let Some(agent) = self.agent.as_ref() else {
            return std::ops::ControlFlow::Continue(());
        };
        let Some(event) = self.ids.translate(agent, event) else {
            return std::ops::ControlFlow::Continue(());
        };
        if is_wiped(&event) {
            // Wiped under us (another process): write nothing more.
            self.agent = None;
            self.finish(WIPED).await;
            return std::ops::ControlFlow::Break(());
        }
        let _ = self.events.send(event);
        std::ops::ControlFlow::Continue(())
    }

    /// The events that are ready now, without waiting (at most [`READY_EVENTS`]).
    async fn take_ready_events(&mut self) -> std::ops::ControlFlow<()> {
        for _ in 0..READY_EVENTS {
            let Some(agent) = self.agent.as_mut() else {
                break;
            };
            // Not interruptible: a waiting request's wake-up must not cut this short
            // (an unacknowledged receipt stalls the contact's relay connection).
            match agent.next_event(Duration::ZERO).await {
                Some(event) => self.deliver(event).await?,
                None => break,
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    /// Connects the relays and subscribes the profile's queues.
    async fn connect(&mut self) {
        if let Some(agent) = self.agent.as_mut() {
            agent.sync().await;
            self.ids.refresh(agent);
        }
    }

    async fn handle(&mut self, request: Request) -> std::ops::ControlFlow<()> {
        use std::ops::ControlFlow::{Break, Continue};
        self.lock.handle_activity(Instant::now());
        match request {
            Request::Job(job) => {
                if let Some(agent) = self.agent.as_mut() {
                    job(agent).await;
                    self.ids.refresh(agent);
                }
                // Locked: the job is dropped and its caller told so.
            }
            Request::Lock(done) => {
                self.lock_now().await;
                let _ = done.send(());
            }
            Request::Unlock(credentials, done) => {
                let result = self.unlock(credentials).await;
                let _ = done.send(result);
            }
            Request::LockAfter(after, done) => {
                self.lock.set_after(after, Instant::now());
                let _ = done.send(());
            }
            Request::PanicWipe(done) => {
                let result = match self.agent.take() {
                    Some(agent) => agent.panic_wipe().map_err(ProfileError::WipeIncomplete),
                    None => profile::panic_wipe(&self.dir),
                };
                self.state.store(WIPED, Ordering::SeqCst);
                let _ = self.events.send(MessengerEvent::Wiped);
                let _ = done.send(result.map_err(MessengerError::from));
                return Break(());
            }
            Request::Close(done) => {
                self.finish(CLOSED).await;
                let _ = done.send(());
                return Break(());
            }
        }
        Continue(())
    }

    async fn lock_now(&mut self) {
        if let Some(agent) = self.agent.take() {
            self.state.store(LOCKED, Ordering::SeqCst);
            agent.close().await;
            let _ = self.events.send(MessengerEvent::Locked);
        }
    }

    async fn unlock(&mut self, credentials: Credentials) -> Result<(), MessengerError> {
        if self.agent.is_some() {
            return Ok(());
        }
        let dir = self.dir.clone();
        let decoy = self.decoy;
        let options = self.options.clone();
        let agent = tokio::task::spawn_blocking(move || {
            if decoy {
                profile::open_decoy(&dir, &credentials, options)
            } else {
                profile::open(&dir, &credentials, options)
            }
        })
        .await
        .map_err(|_| MessengerError::Closed)??;
        self.agent = Some(agent);
        self.lock.handle_activity(Instant::now());
        self.state.store(OPEN, Ordering::SeqCst);
        let _ = self.events.send(MessengerEvent::Unlocked);
        self.connect().await;
        Ok(())
    }

    async fn finish(&mut self, state: u8) {
        self.state.store(state, Ordering::SeqCst);
        if let Some(agent) = self.agent.take() {
            agent.close().await;
        }
        if state == WIPED {
            let _ = self.events.send(MessengerEvent::Wiped);
        }
    }
}

fn is_wiped(event: &MessengerEvent) -> bool {
    matches!(event, MessengerEvent::Problem(error) if error.kind() == super::ErrorKind::Wiped)
}
