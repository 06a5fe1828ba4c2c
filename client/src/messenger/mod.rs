//! The app-shaped API of the client core: one [`Messenger`] per open profile, a
//! cloneable `Send + Sync` handle whose `&self` methods an app calls from anywhere,
//! and a separate stream of [`MessengerEvent`]s, so that sending while listening
//! works. Contacts are addressed by their stable [`ContactId`]. Argon2id (at open and
//! unlock) runs on a blocking thread, and every vault write on the runtime's task that
//! owns the profile, never on the caller's thread.
//!
//! ```text
//!   app (UI thread, any task)           app (one listening task)
//!     │ send_text / invite / lock …        ▲ next_event()
//!     ▼                                    │
//!   Messenger (Clone) ── requests ──▶ driver task ── events ──┘
//!                                       │ owns the Agent; waits for relays
//!                                       │ between requests; idle lock
//!                                       ▼
//!                                     Agent ── relays, vault
//! ```
//!
//! Quick start (inside a tokio runtime):
//!
//! ```no_run
//! # async fn demo() -> Result<(), passage_client::messenger::MessengerError> {
//! use passage_client::messenger::{Messenger, MessengerEvent, MessengerOptions};
//! use passage_client::vault::{Credentials, Passphrase};
//! let pass = Credentials::new(Passphrase::from_bytes(b"correct horse battery".to_vec()));
//! let messenger = Messenger::open("/tmp/p", pass, MessengerOptions::default()).await?;
//! let listener = messenger.clone();
//! tokio::spawn(async move {
//!     while let Some(event) = listener.next_event().await {
//!         if let MessengerEvent::Message { text, .. } = event {
//!             println!("{} bytes", text.len());
//!         }
//!     }
//! });
//! for contact in messenger.contacts().await? {
//!     messenger.send_text(contact.id, "hello").await?;
//! }
//! # Ok(()) }
//! ```

mod driver;
mod error;
mod event;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use passage_wire::RelayAddress;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use zeroize::Zeroizing;

use crate::agent::{
    Agent, AgentOptions, ContactId, ContactInfo, DEFAULT_INVITATION_TTL, HistoryEntry, MessageId,
    MessageStatus, SendReport,
};
use crate::profile::{self, IdleLock, NewProfile};
use crate::vault::Credentials;

pub use self::error::{ErrorKind, MessengerError};
pub use self::event::MessengerEvent;

use self::driver::{AgentFuture, Driver, Request};

/// How a profile is opened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MessengerOptions {
    /// How relays are reached.
    pub agent: AgentOptions,
    /// Lock (drop every key from memory) after this long without activity; `None`
    /// never locks by itself. Default: 15 minutes.
    pub lock_after: Option<Duration>,
}

impl Default for MessengerOptions {
    fn default() -> Self {
        Self {
            agent: AgentOptions::default(),
            lock_after: Some(DEFAULT_LOCK_AFTER),
        }
    }
}

/// The idle time after which a profile locks unless told otherwise.
pub const DEFAULT_LOCK_AFTER: Duration = Duration::from_secs(15 * 60);

/// The result of [`Messenger::invite`].
#[derive(Clone)]
pub struct Invitation {
    /// The new contact (status invited until someone accepts).
    pub contact: ContactId,
    /// The one-time `passage:i1.` link to give the person.
    pub link: String,
}

impl core::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Invitation(..)")
    }
}

/// The result of [`Messenger::accept`].
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// The new contact.
    pub contact: ContactId,
    /// `Sent` if the acceptance reached the inviter's relay, `Queued` if it waits.
    pub status: MessageStatus,
}

/// A profile's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where new receiving queues go (and invitations point).
    pub default_relay: RelayAddress,
    /// The disappearing timer new contacts start with (seconds, 0 = off).
    pub default_disappear_secs: u32,
    /// The idle time that locks the profile (`None`: never).
    pub lock_after: Option<Duration>,
}

/// An open profile: see the module documentation. Cloning gives another handle on
/// the same profile; it closes when [`close`](Self::close) is called or the last
/// handle is dropped.
#[derive(Clone)]
pub struct Messenger {
    inner: Arc<Inner>,
}

struct Inner {
    requests: mpsc::UnboundedSender<Request>,
    wake: Arc<Notify>,
    events: Mutex<mpsc::UnboundedReceiver<MessengerEvent>>,
    /// For events a request makes itself (voice progress, as it happens).
    /// Weak: the stream ends when the driver stops.
    event_tx: mpsc::WeakUnboundedSender<MessengerEvent>,
    state: Arc<AtomicU8>,
    lock_after: std::sync::Mutex<Option<Duration>>,
}

impl core::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Messenger").finish_non_exhaustive()
    }
}

impl Messenger {
    /// Creates a profile in `dir` (absent or empty), with a duress passphrase and its
    /// decoy if `duress` is given. Does not open it.
    pub async fn create(
        dir: impl AsRef<Path>,
        credentials: Credentials,
        duress: Option<Credentials>,
        new: NewProfile,
        options: MessengerOptions,
    ) -> Result<(), MessengerError> {
        let dir = dir.as_ref().to_path_buf();
        blocking(move || profile::create(&dir, &credentials, duress.as_ref(), &new, options.agent))
            .await
    }

    /// Opens the profile in `dir` and starts receiving. The duress passphrase opens
    /// the decoy, exactly as the real one opens the profile.
    pub async fn open(
        dir: impl AsRef<Path>,
        credentials: Credentials,
        options: MessengerOptions,
    ) -> Result<Self, MessengerError> {
        Self::start(dir.as_ref().to_path_buf(), credentials, options, false).await
    }

    /// Opens the decoy profile with the real passphrase, to prepare it (contacts,
    /// history) so that it looks lived in.
    pub async fn open_decoy(
        dir: impl AsRef<Path>,
        credentials: Credentials,
        options: MessengerOptions,
    ) -> Result<Self, MessengerError> {
        Self::start(dir.as_ref().to_path_buf(), credentials, options, true).await
    }

    /// Wipes the profile in `dir` without opening it (see [`profile::panic_wipe`]).
    pub async fn panic_wipe_closed(dir: impl AsRef<Path>) -> Result<(), MessengerError> {
        let dir = dir.as_ref().to_path_buf();
        blocking(move || profile::panic_wipe(&dir)).await
    }

    async fn start(
        dir: PathBuf,
        credentials: Credentials,
        options: MessengerOptions,
        decoy: bool,
    ) -> Result<Self, MessengerError> {
        let agent = {
            let dir = dir.clone();
            let agent_options = options.agent.clone();
            blocking(move || {
                if decoy {
                    profile::open_decoy(&dir, &credentials, agent_options)
                } else {
                    profile::open(&dir, &credentials, agent_options)
                }
            })
            .await?
        };
        let (requests, request_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let wake = Arc::new(Notify::new());
        let state = Arc::new(AtomicU8::new(driver::OPEN));
        let driver = Driver {
            agent: Some(agent),
            dir,
            decoy,
            options: options.agent,
            lock: IdleLock::new(options.lock_after, Instant::now()),
            requests: request_rx,
            wake: wake.clone(),
            events: event_tx.clone(),
            state: state.clone(),
            ids: Default::default(),
        };
        tokio::spawn(driver.run());
        Ok(Self {
            inner: Arc::new(Inner {
                requests,
                wake,
                events: Mutex::new(events),
                event_tx: event_tx.downgrade(),
                state,
                lock_after: std::sync::Mutex::new(options.lock_after),
            }),
        })
    }

    // ---- events -------------------------------------------------------------------

    /// The next event; `None` once the profile is closed or wiped and every event
    /// before that was taken. One listener at a time (a second waits its turn).
    pub async fn next_event(&self) -> Option<MessengerEvent> {
        self.inner.events.lock().await.recv().await
    }

    /// [`next_event`](Self::next_event), or `None` after `wait` without one.
    pub async fn next_event_within(&self, wait: Duration) -> Option<MessengerEvent> {
        tokio::time::timeout(wait, self.next_event())
            .await
            .ok()
            .flatten()
    }

    // ---- contacts -----------------------------------------------------------------

    /// Makes a one-time invitation for a new contact, known here as `name`, valid
    /// for `ttl` (default 7 days).
    pub async fn invite(
        &self,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<Invitation, MessengerError> {
        let name = name.to_owned();
        self.call(move |agent| {
            Box::pin(async move {
                let link = agent
                    .invite(&name, None, ttl.unwrap_or(DEFAULT_INVITATION_TTL))
                    .await?;
                let contact = agent.contact_id(&name).ok_or(MessengerError::Agent(
                    crate::agent::AgentError::NoSuchContact,
                ))?;
                Ok(Invitation { contact, link })
            })
        })
        .await
    }

    /// Accepts an invitation link, the inviter known here as `name`.
    pub async fn accept(&self, link: &str, name: &str) -> Result<Accepted, MessengerError> {
        let link = Zeroizing::new(link.to_owned());
        let name = name.to_owned();
        self.call(move |agent| {
            Box::pin(async move {
                let status = agent.accept(&link, &name).await?;
                let contact = agent.contact_id(&name).ok_or(MessengerError::Agent(
                    crate::agent::AgentError::NoSuchContact,
                ))?;
                Ok(Accepted { contact, status })
            })
        })
        .await
    }

    /// Every contact, sorted by name.
    pub async fn contacts(&self) -> Result<Vec<ContactInfo>, MessengerError> {
        self.call(|agent| Box::pin(async move { Ok(agent.contacts()) }))
            .await
    }

    /// The conversation with a contact, oldest first.
    pub async fn history(&self, contact: ContactId) -> Result<Vec<HistoryEntry>, MessengerError> {
        self.with_contact(contact, |agent, name| {
            Box::pin(async move { Ok(agent.history(&name)?) })
        })
        .await
    }

    /// The safety number to compare with the contact (in person or by voice).
    pub async fn safety_number(&self, contact: ContactId) -> Result<String, MessengerError> {
        self.with_contact(contact, |agent, name| {
            Box::pin(async move { Ok(agent.safety_number(&name)?.digits().to_owned()) })
        })
        .await
    }

    /// Marks the contact verified after comparing safety numbers; with `typed`, only
    /// if it matches.
    pub async fn verify(
        &self,
        contact: ContactId,
        typed: Option<String>,
    ) -> Result<(), MessengerError> {
        self.with_contact(contact, move |agent, name| {
            Box::pin(async move { Ok(agent.verify(&name, typed.as_deref())?) })
        })
        .await
    }

    // ---- messages -----------------------------------------------------------------

    /// Writes a text: committed to the vault, then sent (or queued if the contact's
    /// relay cannot be reached; it goes out by itself later).
    pub async fn send_text(
        &self,
        contact: ContactId,
        text: &str,
    ) -> Result<SendReport, MessengerError> {
        let text = Zeroizing::new(text.to_owned());
        self.with_contact(contact, move |agent, name| {
            Box::pin(async move { Ok(agent.send_text(&name, &text).await?) })
        })
        .await
    }

    /// Marks a contact trusted (an SOS goes to it) or not.
    pub async fn set_trusted(&self, contact: ContactId, on: bool) -> Result<(), MessengerError> {
        self.with_contact(contact, move |agent, name| {
            Box::pin(async move { Ok(agent.set_trusted(&name, on)?) })
        })
        .await
    }

    /// The SOS: an emergency text to every trusted contact, sent before anything else
    /// queued. Returns each contact's id with what became of its copy.
    pub async fn send_sos(
        &self,
        text: &str,
    ) -> Result<Vec<(ContactId, SendReport)>, MessengerError> {
        let text = Zeroizing::new(text.to_owned());
        self.call(move |agent| {
            Box::pin(async move {
                let reports = agent.send_sos(&text).await?;
                Ok(reports
                    .into_iter()
                    .filter_map(|(name, report)| Some((agent.contact_id(&name)?, report)))
                    .collect())
            })
        })
        .await
    }

    /// Sends a voice message; [`MessengerEvent::VoiceProgress`] reports its chunks.
    pub async fn send_voice(
        &self,
        contact: ContactId,
        note: passage_voice::VoiceNote,
    ) -> Result<SendReport, MessengerError> {
        let events = self.inner.event_tx.clone();
        self.with_contact(contact, move |agent, name| {
            Box::pin(async move {
                let report = agent
                    .send_voice(&name, &note, |event| {
                        if let crate::agent::AgentEvent::VoiceProgress {
                            id, sent, total, ..
                        } = event
                            && let Some(events) = events.upgrade()
                        {
                            let _ = events.send(MessengerEvent::VoiceProgress {
                                contact,
                                id: *id,
                                sent: *sent,
                                total: *total,
                            });
                        }
                    })
                    .await?;
                Ok(report)
            })
        })
        .await
    }

    /// The voice note of message `id` in the conversation, to play.
    pub async fn voice_note(
        &self,
        contact: ContactId,
        id: MessageId,
    ) -> Result<passage_voice::VoiceNote, MessengerError> {
        self.with_contact(contact, move |agent, name| {
            Box::pin(async move { Ok(agent.voice_note(&name, &id)?) })
        })
        .await
    }

    /// Sets the contact's disappearing-message timer (seconds, 0 = off).
    pub async fn set_disappear_timer(
        &self,
        contact: ContactId,
        seconds: u32,
    ) -> Result<(), MessengerError> {
        self.with_contact(contact, move |agent, name| {
            Box::pin(async move { Ok(agent.set_disappear_timer(&name, seconds).await?) })
        })
        .await
    }

    /// No-history mode for one contact, or (`None`) for the whole profile.
    pub async fn set_no_history(
        &self,
        contact: Option<ContactId>,
        on: bool,
    ) -> Result<(), MessengerError> {
        self.call(move |agent| {
            Box::pin(async move {
                let name = match contact {
                    Some(id) => Some(name_of(agent, &id)?),
                    None => None,
                };
                Ok(agent.set_no_history(name.as_deref(), on)?)
            })
        })
        .await
    }

    // ---- settings -----------------------------------------------------------------

    /// The profile's settings.
    pub async fn settings(&self) -> Result<Settings, MessengerError> {
        let lock_after = self.lock_after();
        self.call(move |agent| {
            Box::pin(async move {
                Ok(Settings {
                    default_relay: agent.default_relay()?,
                    default_disappear_secs: agent.default_disappear_timer(),
                    lock_after,
                })
            })
        })
        .await
    }

    /// Sets the relay new queues go to.
    pub async fn set_default_relay(&self, relay: RelayAddress) -> Result<(), MessengerError> {
        self.call(move |agent| Box::pin(async move { Ok(agent.set_default_relay(&relay)?) }))
            .await
    }

    /// Sets the disappearing timer new contacts start with (seconds, 0 = off).
    pub async fn set_default_disappear_timer(&self, seconds: u32) -> Result<(), MessengerError> {
        self.call(move |agent| {
            Box::pin(async move { Ok(agent.set_default_disappear_timer(seconds)?) })
        })
        .await
    }

    /// The idle time that locks the profile.
    pub fn lock_after(&self) -> Option<Duration> {
        self.inner
            .lock_after
            .lock()
            .map(|guard| *guard)
            .unwrap_or(Some(DEFAULT_LOCK_AFTER))
    }

    /// Sets the idle time that locks the profile (`None`: never); counting restarts.
    /// Kept while the messenger runs (an app stores its own choice).
    pub async fn set_lock_after(&self, after: Option<Duration>) -> Result<(), MessengerError> {
        let (done, wait) = oneshot::channel();
        self.request(Request::LockAfter(after, done))?;
        wait.await.map_err(|_| self.stopped())?;
        if let Ok(mut guard) = self.inner.lock_after.lock() {
            *guard = after;
        }
        Ok(())
    }

    /// Changes the passphrase (two Argon2id runs, on the profile's task).
    pub async fn change_passphrase(
        &self,
        current: Credentials,
        new: Credentials,
    ) -> Result<(), MessengerError> {
        self.call(move |agent| {
            Box::pin(async move {
                agent
                    .vault_mut()
                    .change_passphrase(&current, &new)
                    .map_err(|e| MessengerError::Profile(e.into()))
            })
        })
        .await
    }

    // ---- the profile's life ---------------------------------------------------------

    /// Whether the profile is locked.
    pub fn is_locked(&self) -> bool {
        self.inner.state.load(Ordering::SeqCst) == driver::LOCKED
    }

    /// Locks now: connections closed, every key out of memory; [`MessengerEvent::Locked`].
    pub async fn lock(&self) -> Result<(), MessengerError> {
        let (done, wait) = oneshot::channel();
        self.request(Request::Lock(done))?;
        wait.await.map_err(|_| self.stopped())
    }

    /// Opens the profile again after a lock (the duress passphrase opens the decoy).
    pub async fn unlock(&self, credentials: Credentials) -> Result<(), MessengerError> {
        let (done, wait) = oneshot::channel();
        self.request(Request::Unlock(credentials, done))?;
        wait.await.map_err(|_| self.stopped())?
    }

    /// The panic control: connections dropped, every key slot destroyed, the files
    /// removed; well under a second. [`MessengerEvent::Wiped`] is the last event.
    pub async fn panic_wipe(&self) -> Result<(), MessengerError> {
        let (done, wait) = oneshot::channel();
        self.request(Request::PanicWipe(done))?;
        wait.await.map_err(|_| self.stopped())?
    }

    /// Closes the connections and the profile. Other handles get
    /// [`ErrorKind::Closed`] afterwards.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.request(Request::Close(done)).is_ok() {
            let _ = wait.await;
        }
    }

    // ---- plumbing -------------------------------------------------------------------

    fn request(&self, request: Request) -> Result<(), MessengerError> {
        self.inner
            .requests
            .send(request)
            .map_err(|_| self.stopped())?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Why the driver did not answer.
    fn stopped(&self) -> MessengerError {
        match self.inner.state.load(Ordering::SeqCst) {
            driver::LOCKED => MessengerError::Locked,
            driver::WIPED => MessengerError::Profile(profile::ProfileError::Wiped),
            _ => MessengerError::Closed,
        }
    }

    async fn call<T, F>(&self, work: F) -> Result<T, MessengerError>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Agent) -> ResultFuture<'a, T> + Send + 'static,
    {
        let (done, wait) = oneshot::channel();
        let job: driver::Job = Box::new(move |agent: &mut Agent| -> AgentFuture<'_> {
            Box::pin(async move {
                let result = work(agent).await;
                let _ = done.send(result);
            })
        });
        self.request(Request::Job(job))?;
        wait.await.map_err(|_| self.stopped())?
    }

    async fn with_contact<T, F>(&self, contact: ContactId, work: F) -> Result<T, MessengerError>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Agent, String) -> ResultFuture<'a, T> + Send + 'static,
    {
        self.call(move |agent: &mut Agent| -> ResultFuture<'_, T> {
            match name_of(agent, &contact) {
                Ok(name) => work(agent, name),
                Err(error) => Box::pin(async move { Err(error) }),
            }
        })
        .await
    }
}

/// A boxed future borrowing the agent, with a result for the caller.
type ResultFuture<'a, T> =
    std::pin::Pin<Box<dyn Future<Output = Result<T, MessengerError>> + Send + 'a>>;

fn name_of(agent: &Agent, id: &ContactId) -> Result<String, MessengerError> {
    agent.contact_name(id).ok_or(MessengerError::Agent(
        crate::agent::AgentError::NoSuchContact,
    ))
}

/// Runs blocking profile work (Argon2id) on tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, profile::ProfileError> + Send + 'static,
) -> Result<T, MessengerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| MessengerError::Closed)?
        .map_err(MessengerError::from)
}
