//! # passage-ffi
//!
//! UniFFI bindings of the Passage client core for apps: Kotlin (Android), Swift (iOS)
//! and Python (the tests, scripts). The whole surface is
//! [`passage_client::messenger::Messenger`] with flat values: ids as hex strings,
//! errors as one exception class per kind ([`PassageError`]), events as one enum
//! ([`Event`]) taken with an async `next_event`.
//!
//! ```text
//!   Kotlin / Swift / Python ── generated bindings ── this crate (cdylib)
//!       await messenger.send_text(…)                 │ spawns onto its own runtime
//!       await messenger.next_event(…)                ▼
//!                                         tokio runtime (2 threads) ── Messenger ── relays, vault
//! ```
//!
//! Quick start (Python, as the tests run it):
//!
//! ```text
//! import asyncio, passage
//! async def main():
//!     await passage.create_profile(dir, "a long passphrase", None, relay, True)
//!     me = await passage.open_profile(dir, "a long passphrase", 900)
//!     invitation = await me.invite("Sam", None)
//!     print(invitation.link)
//!     event = await me.next_event(30_000)
//! asyncio.run(main())
//! ```
//!
//! Every async function runs on a tokio runtime this crate owns, whatever executor
//! the foreign language polls it from. Passphrases and texts arrive as foreign strings,
//! which the foreign side cannot wipe; on this side they go into zeroizing buffers at
//! once.

mod types;

use std::sync::Mutex;
use std::time::Duration;

use passage_client::messenger::{self, MessengerOptions};
use passage_client::profile::NewProfile;
use passage_client::vault::{Credentials, Passphrase};
use passage_transport::{Socks5Proxy, TransportMode};
use passage_voice::Quality;
use passage_wire::RelayAddress;
use zeroize::Zeroizing;

pub use self::types::{
    Accepted, Contact, Event, HistoryItem, Invitation, PassageError, Sent, Settings, Status,
    VoicePcm,
};

uniffi::setup_scaffolding!();

/// The runtime every call runs on: two worker threads (relay connections, the
/// profile's task) and tokio's blocking pool (Argon2id). Made at the first call, ended
/// by [`shutdown`].
static RUNTIME: Mutex<Option<tokio::runtime::Runtime>> = Mutex::new(None);

fn runtime_handle() -> Result<tokio::runtime::Handle, PassageError> {
    let mut runtime = RUNTIME
        .lock()
        .map_err(|_| PassageError::Storage("the runtime lock is poisoned".into()))?;
    if runtime.is_none() {
        let built = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("passage")
            .enable_all()
            .build()
            .map_err(|e| PassageError::Storage(format!("could not start the runtime: {e}")))?;
        *runtime = Some(built);
    }
    runtime
        .as_ref()
        .map(|r| r.handle().clone())
        .ok_or_else(|| PassageError::Storage("no runtime".into()))
}

/// Runs `work` on the crate's runtime and waits for it from whatever executor polls.
async fn on_runtime<T: Send + 'static>(
    work: impl Future<Output = Result<T, PassageError>> + Send + 'static,
) -> Result<T, PassageError> {
    runtime_handle()?
        .spawn(work)
        .await
        .map_err(|_| PassageError::Closed("the operation was cancelled".into()))?
}

/// Ends the library's threads (waiting up to 2 s for them): call it last, after
/// closing every profile, before the process exits. A language whose exit tears down
/// its runtime while foreign threads may still call back into it (Python's does) needs
/// this; a later call starts a new runtime.
#[uniffi::export]
pub fn shutdown() {
    let runtime = RUNTIME.lock().ok().and_then(|mut r| r.take());
    if let Some(runtime) = runtime {
        runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

fn credentials(passphrase: String) -> Credentials {
    Credentials::new(Passphrase::from_bytes(passphrase.into_bytes()))
}

fn relay(text: &str) -> Result<RelayAddress, PassageError> {
    text.trim().parse().map_err(|_| {
        PassageError::InvalidArgument("a relay address looks like passage://PIN@HOST:PORT".into())
    })
}

fn lock_after(seconds: Option<u64>) -> Option<Duration> {
    seconds.map(|s| Duration::from_secs(s.max(1)))
}

fn options(lock_after_secs: Option<u64>) -> MessengerOptions {
    let mut options = MessengerOptions::default();
    options.lock_after = lock_after(lock_after_secs);
    options
}

/// How a profile is opened, beyond the defaults of [`open_profile`].
#[derive(Debug, Clone, uniffi::Record)]
pub struct OpenOptions {
    /// Idle seconds before the profile locks (`None`: never).
    pub lock_after_secs: Option<u64>,
    /// "quic" or "tcp" only (`None`: QUIC with a TCP fallback).
    pub transport: Option<String>,
    /// Reach relays through this SOCKS5 proxy, `HOST:PORT` (Tor: 127.0.0.1:9050).
    pub socks5: Option<String>,
    /// Open the decoy with the real passphrase, to prepare it.
    pub decoy: bool,
}

fn open_options(open: &OpenOptions) -> Result<MessengerOptions, PassageError> {
    let mut options = options(open.lock_after_secs);
    options.agent.connect.mode = match open.transport.as_deref() {
        None => TransportMode::Auto,
        Some("quic") => TransportMode::Quic,
        Some("tcp") => TransportMode::Tcp,
        Some(_) => {
            return Err(PassageError::InvalidArgument(
                "transport is quic or tcp".into(),
            ));
        }
    };
    if let Some(proxy) = &open.socks5 {
        let (host, port) = proxy
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .ok_or_else(|| PassageError::InvalidArgument("socks5 takes HOST:PORT".into()))?;
        options.agent.connect.proxy = Some(Socks5Proxy::new(host, port));
    }
    Ok(options)
}

/// One copy of an SOS.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SosSent {
    /// The trusted contact it went to.
    pub contact_id: String,
    /// What became of it.
    pub sent: Sent,
}

/// How strong a new passphrase is, before a profile is made with it.
#[derive(Clone, uniffi::Record)]
pub struct PassphraseCheck {
    /// 0 (guessed at once) to 4 (very hard); below 2 an app should refuse it unless
    /// the user insists (the CLI does).
    pub score: u8,
    /// What makes it weak, if anything.
    pub advice: Option<String>,
}

impl core::fmt::Debug for PassphraseCheck {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PassphraseCheck({})", self.score)
    }
}

/// Rates a new passphrase (zxcvbn), for the first-run screen.
#[uniffi::export]
pub fn check_passphrase(passphrase: String) -> PassphraseCheck {
    let passphrase = Zeroizing::new(passphrase);
    let assessment = passage_client::passphrase::assess(passphrase.as_bytes(), &[]);
    PassphraseCheck {
        score: assessment.score(),
        advice: (assessment.score() < 3).then(|| assessment.advice()),
    }
}

/// Creates a profile in `dir` (absent or empty) whose invitations point to `relay`;
/// with `duress_passphrase`, also the duress passphrase and its decoy. `at_risk`:
/// disappearing messages (1 day) for every new contact.
#[uniffi::export]
pub async fn create_profile(
    dir: String,
    passphrase: String,
    duress_passphrase: Option<String>,
    relay_address: String,
    at_risk: bool,
) -> Result<(), PassageError> {
    let new = NewProfile::new(relay(&relay_address)?).at_risk(at_risk);
    on_runtime(async move {
        messenger::Messenger::create(
            dir,
            credentials(passphrase),
            duress_passphrase.map(credentials),
            new,
            MessengerOptions::default(),
        )
        .await
        .map_err(Into::into)
    })
    .await
}

/// Opens the profile in `dir` and starts receiving. The duress passphrase opens the
/// decoy exactly the same way. `lock_after_secs`: idle seconds before it locks
/// (`None`: never).
#[uniffi::export]
pub async fn open_profile(
    dir: String,
    passphrase: String,
    lock_after_secs: Option<u64>,
) -> Result<std::sync::Arc<Messenger>, PassageError> {
    on_runtime(async move {
        let inner =
            messenger::Messenger::open(dir, credentials(passphrase), options(lock_after_secs))
                .await?;
        Ok(std::sync::Arc::new(Messenger { inner }))
    })
    .await
}

/// [`open_profile`] with every option.
#[uniffi::export]
pub async fn open_profile_with(
    dir: String,
    passphrase: String,
    options: OpenOptions,
) -> Result<std::sync::Arc<Messenger>, PassageError> {
    let messenger_options = open_options(&options)?;
    on_runtime(async move {
        let credentials = credentials(passphrase);
        let inner = if options.decoy {
            messenger::Messenger::open_decoy(dir, credentials, messenger_options).await?
        } else {
            messenger::Messenger::open(dir, credentials, messenger_options).await?
        };
        Ok(std::sync::Arc::new(Messenger { inner }))
    })
    .await
}

/// Opens the decoy with the real passphrase, to prepare it.
#[uniffi::export]
pub async fn open_decoy(
    dir: String,
    passphrase: String,
) -> Result<std::sync::Arc<Messenger>, PassageError> {
    on_runtime(async move {
        let inner =
            messenger::Messenger::open_decoy(dir, credentials(passphrase), options(None)).await?;
        Ok(std::sync::Arc::new(Messenger { inner }))
    })
    .await
}

/// Wipes the profile in `dir` without opening it: no passphrase, nothing opens after.
#[uniffi::export]
pub async fn panic_wipe_profile(dir: String) -> Result<(), PassageError> {
    on_runtime(async move {
        messenger::Messenger::panic_wipe_closed(dir)
            .await
            .map_err(Into::into)
    })
    .await
}

/// An open profile. Every method may be called from any thread, also while another
/// waits in [`next_event`](Self::next_event).
#[derive(Debug, uniffi::Object)]
pub struct Messenger {
    inner: messenger::Messenger,
}

#[uniffi::export]
impl Messenger {
    /// The next event, or `None` after `timeout_ms` without one (`None`: wait until
    /// one comes or the profile closes, then `None`).
    pub async fn next_event(&self, timeout_ms: Option<u64>) -> Option<Event> {
        let inner = self.inner.clone();
        on_runtime(async move {
            Ok(match timeout_ms {
                Some(ms) => inner.next_event_within(Duration::from_millis(ms)).await,
                None => inner.next_event().await,
            })
        })
        .await
        .ok()
        .flatten()
        .map(Event::from)
    }

    /// A one-time invitation for a new contact known here as `name`, valid for
    /// `ttl_secs` (default 7 days).
    pub async fn invite(
        &self,
        name: String,
        ttl_secs: Option<u64>,
    ) -> Result<Invitation, PassageError> {
        let inner = self.inner.clone();
        on_runtime(async move {
            let invitation = inner
                .invite(&name, ttl_secs.map(Duration::from_secs))
                .await?;
            Ok(Invitation {
                contact_id: invitation.contact.to_hex(),
                link: invitation.link,
            })
        })
        .await
    }

    /// Accepts an invitation link, the inviter known here as `name`.
    pub async fn accept(&self, link: String, name: String) -> Result<Accepted, PassageError> {
        let inner = self.inner.clone();
        let link = Zeroizing::new(link);
        on_runtime(async move {
            let accepted = inner.accept(&link, &name).await?;
            Ok(Accepted {
                contact_id: accepted.contact.to_hex(),
                status: accepted.status.into(),
            })
        })
        .await
    }

    /// Every contact, sorted by name.
    pub async fn contacts(&self) -> Result<Vec<Contact>, PassageError> {
        let inner = self.inner.clone();
        on_runtime(async move {
            Ok(inner
                .contacts()
                .await?
                .into_iter()
                .map(Into::into)
                .collect())
        })
        .await
    }

    /// The conversation with a contact, oldest first.
    pub async fn history(&self, contact_id: String) -> Result<Vec<HistoryItem>, PassageError> {
        let inner = self.inner.clone();
        let contact = types::contact_id(&contact_id)?;
        on_runtime(async move {
            Ok(inner
                .history(contact)
                .await?
                .iter()
                .map(Into::into)
                .collect())
        })
        .await
    }

    /// Writes a text (queued if the relay cannot be reached; it goes out later).
    pub async fn send_text(&self, contact_id: String, text: String) -> Result<Sent, PassageError> {
        let inner = self.inner.clone();
        let contact = types::contact_id(&contact_id)?;
        let text = Zeroizing::new(text);
        on_runtime(async move { Ok(inner.send_text(contact, &text).await?.into()) }).await
    }

    /// Marks a contact trusted (an SOS goes to it) or not.
    pub async fn set_trusted(&self, contact_id: String, on: bool) -> Result<(), PassageError> {
        let inner = self.inner.clone();
        let contact = types::contact_id(&contact_id)?;
        on_runtime(async move { Ok(inner.set_trusted(contact, on).await?) }).await
    }

    /// The SOS: an emergency text to every trusted contact, before anything queued.
    /// Returns one entry per contact (its id and what became of its copy).
    pub async fn send_sos(&self, text: String) -> Result<Vec<SosSent>, PassageError> {
        let inner = self.inner.clone();
        let text = Zeroizing::new(text);
        on_runtime(async move {
            Ok(inner
                .send_sos(&text)
                .await?
                .into_iter()
                .map(|(contact, report)| SosSent {
                    contact_id: contact.to_hex(),
                    sent: report.into(),
                })
                .collect())
        })
        .await
    }

    /// Sends a voice message recorded as PCM (any rate, `channels` interleaved),
    /// encoded with Opus for speech; `low_data` halves the bytes (6 kbit/s).
    pub async fn send_voice(
        &self,
        contact_id: String,
        samples: Vec<i16>,
        sample_rate: u32,
        channels: u16,
        low_data: bool,
    ) -> Result<Sent, PassageError> {
        let inner = self.inner.clone();
        let contact = types::contact_id(&contact_id)?;
        let samples = Zeroizing::new(samples);
        on_runtime(async move {
            let quality = if low_data {
                Quality::Low
            } else {
                Quality::default()
            };
            let voice = |e: passage_voice::VoiceError| PassageError::Voice(e.to_string());
            let mut encoder =
                passage_voice::VoiceEncoder::new(sample_rate, channels, quality).map_err(voice)?;
            encoder.push_i16(&samples).map_err(voice)?;
            let note = encoder.finish().map_err(voice)?;
            Ok(inner.send_voice(contact, note).await?.into())
        })
        .await
    }

    /// The audio of voice message `message_id`, decoded.
    pub async fn voice_pcm(
        &self,
        contact_id: String,
        message_id: String,
    ) -> Result<VoicePcm, PassageError> {
        let inner = self.inner.clone();
        let contact = types::contact_id(&contact_id)?;
        let id = types::message_id(&message_id)?;
        on_runtime(async move {
            let note = inner.voice_note(contact, id).await?;
            let samples = note
                .decode()
                .map_err(|e| PassageError::Voice(e.to_string()))?;
            Ok(VoicePcm {
                sample_rate: note.quality().sample_rate(),
                samples,
            })
        })
        .await
    }

    /// The safety number to compare with the contact.
    pub async fn safety_number(&self, contact_id: String) -> Result<String, PassageError> {
        let inner = self.inner.clone();
        let contact = types::contact_id(&contact_id)?;
        on_runtime(async move { Ok(inner.safety_number(contact).await?) }).await
    }

    /// Marks the contact verified; with `typed`, only if it matches.
    pub async fn verify(
        &self,
        contact_id: String,
        typed: Option<String>,
    ) -> Result<(), PassageError> {
        let inner = self.inner.clone();
        let contact = types::contact_id(&contact_id)?;
        on_runtime(async move { Ok(inner.verify(contact, typed).await?) }).await
    }

    /// Sets the contact's disappearing timer (seconds, 0 = off).
    pub async fn set_disappear_timer(
        &self,
        contact_id: String,
        seconds: u32,
    ) -> Result<(), PassageError> {
        let inner = self.inner.clone();
        let contact = types::contact_id(&contact_id)?;
        on_runtime(async move { Ok(inner.set_disappear_timer(contact, seconds).await?) }).await
    }

    /// No-history mode for one contact, or (`None`) for the whole profile.
    pub async fn set_no_history(
        &self,
        contact_id: Option<String>,
        on: bool,
    ) -> Result<(), PassageError> {
        let inner = self.inner.clone();
        let contact = contact_id.as_deref().map(types::contact_id).transpose()?;
        on_runtime(async move { Ok(inner.set_no_history(contact, on).await?) }).await
    }

    /// The profile's settings.
    pub async fn settings(&self) -> Result<Settings, PassageError> {
        let inner = self.inner.clone();
        on_runtime(async move {
            let settings = inner.settings().await?;
            Ok(Settings {
                default_relay: settings.default_relay.to_string(),
                default_disappear_secs: settings.default_disappear_secs,
                lock_after_secs: settings.lock_after.map(|d| d.as_secs()),
            })
        })
        .await
    }

    /// Sets the relay new queues go to.
    pub async fn set_default_relay(&self, relay_address: String) -> Result<(), PassageError> {
        let inner = self.inner.clone();
        let address = relay(&relay_address)?;
        on_runtime(async move { Ok(inner.set_default_relay(address).await?) }).await
    }

    /// Sets the disappearing timer new contacts start with.
    pub async fn set_default_disappear_timer(&self, seconds: u32) -> Result<(), PassageError> {
        let inner = self.inner.clone();
        on_runtime(async move { Ok(inner.set_default_disappear_timer(seconds).await?) }).await
    }

    /// Sets the idle seconds before the profile locks (`None`: never).
    pub async fn set_lock_after(&self, seconds: Option<u64>) -> Result<(), PassageError> {
        let inner = self.inner.clone();
        on_runtime(async move { Ok(inner.set_lock_after(lock_after(seconds)).await?) }).await
    }

    /// Changes the passphrase.
    pub async fn change_passphrase(
        &self,
        current: String,
        new: String,
    ) -> Result<(), PassageError> {
        let inner = self.inner.clone();
        on_runtime(async move {
            Ok(inner
                .change_passphrase(credentials(current), credentials(new))
                .await?)
        })
        .await
    }

    /// Whether the profile is locked.
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// Locks now (every key out of memory).
    pub async fn lock(&self) -> Result<(), PassageError> {
        let inner = self.inner.clone();
        on_runtime(async move { Ok(inner.lock().await?) }).await
    }

    /// Opens again after a lock (the duress passphrase opens the decoy).
    pub async fn unlock(&self, passphrase: String) -> Result<(), PassageError> {
        let inner = self.inner.clone();
        on_runtime(async move { Ok(inner.unlock(credentials(passphrase)).await?) }).await
    }

    /// The panic control: wipes the profile at once; `Wiped` is the last event.
    pub async fn panic_wipe(&self) -> Result<(), PassageError> {
        let inner = self.inner.clone();
        on_runtime(async move { Ok(inner.panic_wipe().await?) }).await
    }

    /// Closes the connections and the profile.
    pub async fn close(&self) {
        let inner = self.inner.clone();
        let _ = on_runtime(async move {
            inner.close().await;
            Ok(())
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    /// This crate allows unsafe code only for what UniFFI's macros generate: its own
    /// sources have none.
    #[test]
    fn our_sources_have_no_unsafe_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![dir];
        let mut files = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files += 1;
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    // Built from parts so that this test does not find itself.
                    let word = concat!("uns", "afe");
                    let forms =
                        [" {", " fn", " impl", " extern", "("].map(|f| format!("{word}{f}"));
                    assert!(
                        !text.lines().any(|l| {
                            let code = l.split("//").next().unwrap_or("");
                            forms.iter().any(|f| code.contains(f.as_str()))
                        }),
                        "{} has unsafe code",
                        path.display()
                    );
                }
            }
        }
        assert!(files >= 2);
    }
}
