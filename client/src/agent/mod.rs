//! The client agent: contacts by invitation, end-to-end encrypted conversations, and
//! the relay connections that carry them, all state in the [`vault`](crate::vault).
//!
//! ```text
//!   interface (CLI, mobile app)
//!        │ invite / accept / send_text / next_event / history
//!        ▼
//!   Agent (tokio) ── connects relays, sends the outbox, subscribes our queues, ACKs
//!        │ inputs with `now` and randomness
//!        ▼
//!   Conversations (sans-IO) ── handshake, ratchets, receipts, dedup, history ── Vault
//! ```
//!
//! ## What a user can rely on
//!
//! - **Nothing acknowledged is lost.** A delivered message is committed to the vault
//!   (with the ratchet step and the receipt to send) before the relay is told to delete
//!   it; a crash in between means the relay delivers it again, and the dedup index drops
//!   the copy. An outgoing message is committed to the outbox before it is sent and stays
//!   there until a relay has `OK`ed it; the same encrypted bytes are resent after a
//!   failure, so the contact's ratchet refuses a second copy.
//! - **Offline is normal.** Writing to a contact whose relay cannot be reached queues
//!   the message ([`MessageStatus::Queued`]); the next [`Agent::sync`] sends it.
//! - **Statuses**: queued → sent (the contact's relay stored it) → delivered (the
//!   contact's device sent a receipt); failed if the relay refuses for good.
//! - **One queue per contact**, on the relay chosen when it was made, so that relays
//!   cannot link one person's contacts by queue.
//! - **Hostile input**: a forged, altered, replayed or malformed envelope is dropped
//!   with an [`AgentEvent::Dropped`] and the conversation goes on.
//! - **No secret, text or name in `Debug` output or errors.**
//!
//! ## The contact handshake
//!
//! 1. Inviter: [`Agent::invite`] creates a receiving queue and a one-time invitation
//!    naming it (a `passage:i1.` link, 7 days by default).
//! 2. Acceptor: [`Agent::accept`] creates its own queue (on its default relay) and sends
//!    the handshake to the inviter's queue, carrying its queue address encrypted. The
//!    relay fixes the acceptor's sender key with this first message, so a second accept
//!    of the same link (by anyone) is refused.
//! 3. Inviter, on receiving it: connected; it answers with a welcome on the acceptor's
//!    queue. 4. Acceptor, on the welcome: connected.

mod content;
mod conversations;
mod error;
mod event;
mod ids;
mod records;
mod relays;

pub use self::relays::{OUTBOX_RETRY, OUTBOX_RETRY_MAX, REPLY_TIMEOUT};
mod view;

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use getrandom::SysRng;
use passage_crypto::SafetyNumber;
use passage_transport::ConnectOptions;
use passage_wire::RelayAddress;
use rand_core::UnwrapErr;

pub use self::content::{
    Content, ContentError, MAX_RECEIPT_IDS, MAX_TEXT_LEN, MAX_TIMER_SECS, MAX_VOICE_CHUNK_DATA,
    MAX_VOICE_CHUNKS, MAX_VOICE_LEN, VoiceChunk, voice_chunk_count,
};
pub use self::conversations::MAX_NAME_LEN;
pub use self::error::AgentError;
pub use self::event::{AgentEvent, DroppedReason};
pub use self::ids::{ContactId, MessageId};
pub use self::records::{Direction, EntryKind, MessageStatus};
pub use self::view::{ContactInfo, ContactStatus, HistoryEntry};

use self::conversations::Conversations;
use zeroize::Zeroizing;

/// Voice chunks sent per round trip while [`Agent::send_voice`] reports progress:
/// enough to keep a slow link busy, few enough that progress moves.
const VOICE_GROUP: usize = 8;
use crate::relay::RelayLink;
use crate::vault::{Credentials, Vault};

/// How long an invitation stays valid unless told otherwise: 7 days.
pub const DEFAULT_INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How the agent reaches relays.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AgentOptions {
    /// Transport options (timeouts, SOCKS5 proxy, QUIC/TCP).
    pub connect: ConnectOptions,
}

/// The result of [`Agent::send_text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// The new message's id.
    pub id: MessageId,
    /// [`MessageStatus::Sent`] if the relay has it, [`MessageStatus::Queued`] if it
    /// waits in the vault for the next connection.
    pub status: MessageStatus,
}

/// The result of [`Agent::sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncReport {
    /// Relays that could not be reached (their traffic waits for the next sync).
    pub unreachable_relays: usize,
    /// Envelopes still waiting in the outbox.
    pub queued: usize,
    /// Of the relays not reached, those whose key no longer matches the pin their
    /// address names: the relay changed its key and its overlap is over (or the
    /// connection is intercepted). Their operator has the current address, which
    /// [`Agent::relay_moved`] takes.
    pub key_refused: usize,
}

/// The client agent: a profile's vault, its conversations, and connections to the
/// relays that hold its queues. See the module documentation.
pub struct Agent {
    core: Conversations,
    links: HashMap<String, RelayLink>,
    /// Relays on whose link our queues are subscribed.
    subscribed: HashMap<String, usize>,
    /// Relays whose last connection failed because their key did not match the pin.
    key_refused: std::collections::HashSet<String>,
    events: VecDeque<AgentEvent>,
    /// When to offer the outbox to the relays again.
    retry_at: Option<tokio::time::Instant>,
    retry_interval: Duration,
    /// ACKs in flight (see `relays.rs`); aborted on close.
    acks: tokio::task::JoinSet<()>,
    options: AgentOptions,
    rng: UnwrapErr<SysRng>,
}

impl core::fmt::Debug for Agent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Agent")
            .field("links", &self.links.len())
            .finish_non_exhaustive()
    }
}

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Agent {
    /// Creates a new profile in `dir` (which must be empty or absent), sending new
    /// queues to `default_relay`. `at_risk` turns disappearing messages on (1 day) for
    /// every new contact.
    pub fn create(
        dir: impl AsRef<Path>,
        credentials: &Credentials,
        default_relay: &RelayAddress,
        at_risk: bool,
        options: AgentOptions,
    ) -> Result<Self, AgentError> {
        let vault = Vault::create(dir, credentials)?;
        let core = Conversations::create(vault, default_relay, at_risk, unix_now())?;
        Ok(Self::with_core(core, options))
    }

    /// Starts a new profile in a vault the caller created or opened empty (e.g. the
    /// decoy profile that a duress passphrase opens).
    pub fn create_in_vault(
        vault: Vault,
        default_relay: &RelayAddress,
        at_risk: bool,
        options: AgentOptions,
    ) -> Result<Self, AgentError> {
        let core = Conversations::create(vault, default_relay, at_risk, unix_now())?;
        Ok(Self::with_core(core, options))
    }

    /// Whether an opened vault holds a profile already.
    pub fn has_profile(vault: &Vault) -> bool {
        vault.contains_key(records::PROFILE)
    }

    /// Opens the profile in `dir`. Messages whose disappearing timer ran out while the
    /// vault was closed are deleted before this returns.
    pub fn open(
        dir: impl AsRef<Path>,
        credentials: &Credentials,
        options: AgentOptions,
    ) -> Result<Self, AgentError> {
        Self::from_vault(Vault::open(dir, credentials)?, options)
    }

    /// Runs the agent on a vault opened by the caller (e.g. a decoy profile).
    pub fn from_vault(vault: Vault, options: AgentOptions) -> Result<Self, AgentError> {
        let mut core = Conversations::open(vault)?;
        core.expire(unix_now())?;
        Ok(Self::with_core(core, options))
    }

    fn with_core(core: Conversations, options: AgentOptions) -> Self {
        Self {
            core,
            links: HashMap::new(),
            subscribed: HashMap::new(),
            key_refused: std::collections::HashSet::new(),
            events: VecDeque::new(),
            retry_at: None,
            retry_interval: OUTBOX_RETRY,
            acks: tokio::task::JoinSet::new(),
            options,
            rng: UnwrapErr(SysRng),
        }
    }

    /// Closes the relay connections and the vault.
    pub async fn close(mut self) {
        self.finish_acks().await;
        for (_, link) in self.links.drain() {
            let _ = link.close().await;
        }
        self.core.into_vault().close();
    }

    /// The panic button: drops every relay connection at once (no goodbye), destroys
    /// every key slot and removes the profile's files (see [`Vault::panic_wipe`]).
    /// Nothing opens afterwards, with any passphrase. Well under a second.
    pub fn panic_wipe(mut self) -> std::io::Result<()> {
        self.acks.abort_all();
        self.links.clear();
        self.core.into_vault().panic_wipe()
    }

    /// Lets the ACKs in flight finish (briefly: an unacknowledged message only comes
    /// again), then drops the rest, so that the links can close.
    async fn finish_acks(&mut self) {
        let drain = async { while self.acks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        self.acks.abort_all();
        // Aborted tasks end at once; reaping them drops their link handles.
        while self.acks.join_next().await.is_some() {}
    }

    /// Closes the connections and hands back the vault (e.g. to change its passphrase).
    pub async fn into_vault(mut self) -> Vault {
        self.finish_acks().await;
        for (_, link) in self.links.drain() {
            let _ = link.close().await;
        }
        self.core.into_vault()
    }

    /// Hands back the vault of an agent that never connected (a profile just made):
    /// nothing to close on the network, so no runtime is needed.
    pub(crate) fn into_vault_unconnected(mut self) -> Vault {
        self.acks.abort_all();
        self.links.clear();
        self.core.into_vault()
    }

    /// The vault, for operations of the vault itself (passphrase, duress).
    pub fn vault_mut(&mut self) -> &mut Vault {
        self.core.vault_mut()
    }

    // ---- profile and contacts ---------------------------------------------------

    /// The relay new queues go to.
    pub fn default_relay(&self) -> Result<RelayAddress, AgentError> {
        self.core.default_relay()
    }

    /// Sets the relay new queues go to.
    pub fn set_default_relay(&mut self, relay: &RelayAddress) -> Result<(), AgentError> {
        self.core.set_default_relay(relay)
    }

    /// Every contact, sorted by name.
    pub fn contacts(&self) -> Vec<ContactInfo> {
        self.core.contacts()
    }

    /// The name of the contact with this id, if there is one.
    pub fn contact_name(&self, id: &ContactId) -> Option<String> {
        self.core.contact_name(id).map(str::to_owned)
    }

    /// The id of the contact with this name, if there is one.
    pub fn contact_id(&self, name: &str) -> Option<ContactId> {
        self.core.find(name).ok()
    }

    /// The conversation with a contact, oldest first.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryEntry>, AgentError> {
        self.core.history(name)
    }

    /// The safety number to compare with a contact (in person or by voice).
    pub fn safety_number(&self, name: &str) -> Result<SafetyNumber, AgentError> {
        self.core.safety_number(name)
    }

    /// Marks a contact verified, after comparing safety numbers. With `typed`, only if
    /// it matches.
    pub fn verify(&mut self, name: &str, typed: Option<&str>) -> Result<(), AgentError> {
        self.core.verify(name, typed)
    }

    /// The default disappearing-message timer for new contacts (seconds, 0 = off).
    pub fn default_disappear_timer(&self) -> u32 {
        self.core.default_timer()
    }

    /// Sets the default disappearing-message timer for new contacts.
    pub fn set_default_disappear_timer(&mut self, seconds: u32) -> Result<(), AgentError> {
        self.core.set_default_timer(seconds)
    }

    /// Makes an invitation for a new contact, to be known here as `name`: a fresh
    /// receiving queue on `relay` (default: the profile's relay) and a one-time
    /// invitation valid for `ttl`. Returns the `passage:i1.` link.
    pub async fn invite(
        &mut self,
        name: &str,
        relay: Option<&RelayAddress>,
        ttl: Duration,
    ) -> Result<String, AgentError> {
        let relay = match relay {
            Some(relay) => relay.clone(),
            None => self.core.default_relay()?,
        };
        // Check the name before creating anything at the relay.
        if self.core.contacts().iter().any(|c| c.name == name) {
            return Err(AgentError::NameTaken);
        }
        let queue = self.link(&relay).await?.create_queue(None).await?;
        let now = unix_now();
        let expires_at = now.saturating_add(ttl.as_secs());
        let link = self
            .core
            .invite(name, &relay, &queue, expires_at, now, &mut self.rng)?;
        self.subscribe_new(&relay, &queue).await;
        Ok(link)
    }

    /// Accepts an invitation link from someone to be known here as `name`: creates our
    /// queue on the default relay and sends the handshake. Returns whether it reached
    /// the inviter's relay (`Sent`) or waits in the vault (`Queued`, no relay reachable).
    ///
    /// Fails with [`AgentError::InvitationAlreadyUsed`] if this profile accepted it
    /// before or the inviter's relay refuses it (someone else did).
    pub async fn accept(&mut self, link: &str, name: &str) -> Result<MessageStatus, AgentError> {
        let now = unix_now();
        let invitation = self.core.check_invitation(link, name, now)?;
        let relay = self.core.default_relay()?;
        let queue = self.link(&relay).await?.create_queue(None).await?;
        self.core
            .accept(&invitation, name, &relay, &queue, now, &mut self.rng)?;
        self.subscribe_new(&relay, &queue).await;
        self.flush().await;
        // The accept went out if it left the outbox; a refusal removed the contact.
        let refused = self
            .events
            .iter()
            .any(|e| matches!(e, AgentEvent::InvitationRefused { contact } if contact == name));
        if refused {
            self.events.retain(
                |e| !matches!(e, AgentEvent::InvitationRefused { contact } if contact == name),
            );
            return Err(AgentError::InvitationAlreadyUsed);
        }
        let queued = self.core.outbox()?.len();
        Ok(if queued == 0 {
            MessageStatus::Sent
        } else {
            MessageStatus::Queued
        })
    }

    /// Writes a text to a contact. It is committed to the vault, then sent; if the
    /// contact's relay cannot be reached it stays queued for the next [`sync`](Self::sync).
    pub async fn send_text(&mut self, name: &str, text: &str) -> Result<SendReport, AgentError> {
        let id = self
            .core
            .compose_text(name, text, unix_now(), &mut self.rng)?;
        self.flush().await;
        let status = self
            .core
            .message_status(name, &id)?
            .unwrap_or(MessageStatus::Sent);
        Ok(SendReport { id, status })
    }

    /// Marks a contact trusted (an [`sos`](Self::send_sos) goes to it) or not.
    pub fn set_trusted(&mut self, name: &str, on: bool) -> Result<(), AgentError> {
        self.core.set_trusted(name, on)
    }

    /// The SOS: an emergency text to every trusted contact that can be written to,
    /// each committed to the vault first and sent before anything else queued. Returns
    /// each contact's name with what became of its copy; fails with
    /// [`AgentError::NoTrustedContacts`] if there is none (nothing is sent then).
    pub async fn send_sos(&mut self, text: &str) -> Result<Vec<(String, SendReport)>, AgentError> {
        let names = self.core.trusted_reachable();
        if names.is_empty() {
            return Err(AgentError::NoTrustedContacts);
        }
        let now = unix_now();
        let mut ids = Vec::with_capacity(names.len());
        for name in &names {
            ids.push(self.core.compose_sos(name, text, now, &mut self.rng)?);
        }
        self.flush().await;
        let mut reports = Vec::with_capacity(names.len());
        for (name, id) in names.into_iter().zip(ids) {
            let status = self
                .core
                .message_status(&name, &id)?
                .unwrap_or(MessageStatus::Sent);
            reports.push((name, SendReport { id, status }));
        }
        Ok(reports)
    }

    /// Sends a voice message: its chunks are committed to the vault in one transaction,
    /// then sent a few at a time, `progress` called after each chunk the relay stored
    /// (with [`AgentEvent::VoiceProgress`]). What the relay did not take (unreachable,
    /// or the contact's queue full: `ERR QUOTA`) stays queued and goes with the next
    /// [`sync`](Self::sync), [`next_event`](Self::next_event) or send, from where it
    /// stopped; the report says `Queued` then.
    pub async fn send_voice(
        &mut self,
        name: &str,
        note: &passage_voice::VoiceNote,
        mut progress: impl FnMut(&AgentEvent),
    ) -> Result<SendReport, AgentError> {
        let bytes = Zeroizing::new(note.to_bytes());
        let id =
            self.core
                .compose_voice(name, &bytes, note.duration_ms(), unix_now(), &mut self.rng)?;
        let total = voice_chunk_count(bytes.len());
        // Bounded: every round sends up to a group, and a round that sends nothing ends it.
        for _ in 0..total + 16 {
            let before = self.core.outbox_len();
            self.flush_some(Some(VOICE_GROUP)).await;
            let mut kept = VecDeque::new();
            while let Some(event) = self.events.pop_front() {
                match &event {
                    AgentEvent::VoiceProgress { id: of, .. } if *of == id => progress(&event),
                    _ => kept.push_back(event),
                }
            }
            self.events = kept;
            let after = self.core.outbox_len();
            if after == 0 || after >= before {
                break;
            }
        }
        let status = self
            .core
            .message_status(name, &id)?
            .unwrap_or(MessageStatus::Sent);
        Ok(SendReport { id, status })
    }

    /// The voice note of message `id` in a contact's history, to play or save.
    pub fn voice_note(
        &self,
        name: &str,
        id: &MessageId,
    ) -> Result<passage_voice::VoiceNote, AgentError> {
        let bytes = self.core.voice_note(name, id)?;
        passage_voice::VoiceNote::from_bytes(&bytes)
            .map_err(|_| AgentError::Record(records::RecordError))
    }

    /// The operator of a relay gave its current address (after a key change this
    /// profile missed): every address of a relay at the same host and port, with
    /// another pin, moves to it. Returns how many records changed; 0 if the profile
    /// uses no relay there.
    pub fn relay_moved(&mut self, current: &RelayAddress) -> Result<usize, AgentError> {
        let mut changed = 0;
        for old in self.core.relays_at(current)? {
            changed += self.core.move_relay(&old, *current.pin())?;
            self.key_refused.remove(&old.to_string());
        }
        Ok(changed)
    }

    /// Sets a contact's disappearing-message timer (seconds, 0 = off): it applies at
    /// once to what we send, and the contact adopts it when it receives the change.
    pub async fn set_disappear_timer(
        &mut self,
        name: &str,
        seconds: u32,
    ) -> Result<(), AgentError> {
        self.core
            .set_timer(name, seconds, unix_now(), &mut self.rng)?;
        self.flush().await;
        Ok(())
    }

    /// No-history mode for one contact, or (`None`) for the whole profile (new and
    /// existing contacts): received messages are shown once (as events) and never
    /// stored; sent ones are deleted when the contact's receipt arrives. The vault keeps
    /// only what delivery needs (keys, queues, message ids for dedup).
    pub fn set_no_history(&mut self, name: Option<&str>, on: bool) -> Result<(), AgentError> {
        self.core.set_no_history(name, on)
    }

    /// Deletes the history entries whose timer has run out, unrecoverably (see
    /// [`Vault::compact`]). Runs at every open and while receiving; returns how many.
    pub fn expire_now(&mut self) -> Result<usize, AgentError> {
        self.core.expire(unix_now())
    }
}
