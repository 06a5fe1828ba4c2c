//! [`MessengerEvent`]: what an open profile reports to its app, contacts addressed by
//! their stable [`ContactId`]. `Debug` shows the kind of event only.

use std::collections::HashMap;

use zeroize::Zeroizing;

use crate::agent::{AgentEvent, ContactId, DroppedReason, MessageId, MessageStatus};

use super::MessengerError;

/// Something that happened, for the app to show.
#[non_exhaustive]
pub enum MessengerEvent {
    /// A new text from a contact (committed to the vault before it is reported).
    Message {
        /// Who wrote it.
        contact: ContactId,
        /// The sender's id of the message.
        id: MessageId,
        /// The text (wiped from memory when the event is dropped).
        text: Zeroizing<String>,
        /// When the sender wrote it (their clock), unix seconds.
        sent_at: u64,
        /// When this device received it, unix seconds.
        received_at: u64,
    },
    /// An emergency message (SOS) from a contact who trusts this profile.
    Sos {
        /// Who sent it.
        contact: ContactId,
        /// The sender's id of the message.
        id: MessageId,
        /// The text (wiped from memory when the event is dropped).
        text: Zeroizing<String>,
        /// When the sender wrote it (their clock), unix seconds.
        sent_at: u64,
        /// When this device received it, unix seconds.
        received_at: u64,
    },
    /// A new voice message from a contact, complete and verified.
    Voice {
        /// Who recorded it.
        contact: ContactId,
        /// The sender's id of the message.
        id: MessageId,
        /// How long it plays.
        duration_ms: u32,
        /// The Opus note ([`passage_voice::VoiceNote::from_bytes`]), to play at once.
        note: Zeroizing<Vec<u8>>,
        /// When the sender recorded it (their clock), unix seconds.
        sent_at: u64,
        /// When this device had all of it, unix seconds.
        received_at: u64,
    },
    /// Chunks of an outgoing voice message reached the contact's relay.
    VoiceProgress {
        /// To whom.
        contact: ContactId,
        /// The voice message.
        id: MessageId,
        /// Chunks stored so far.
        sent: u16,
        /// Chunks in all.
        total: u16,
    },
    /// An outgoing message changed status (sent, delivered, failed).
    Status {
        /// To whom.
        contact: ContactId,
        /// The message.
        id: MessageId,
        /// Its new status.
        status: MessageStatus,
    },
    /// The contact is connected both ways.
    Connected {
        /// The contact.
        contact: ContactId,
    },
    /// The contact set the conversation's disappearing-message timer.
    TimerChanged {
        /// The contact.
        contact: ContactId,
        /// Seconds (0 = off).
        seconds: u32,
    },
    /// Someone else used the invitation we accepted; the contact was removed.
    InvitationRefused {
        /// The contact that was removed.
        contact: ContactId,
    },
    /// A worthless envelope (forged, altered, replayed) was dropped.
    Dropped {
        /// The contact whose queue it came on, if known.
        contact: Option<ContactId>,
        /// Why.
        reason: DroppedReason,
    },
    /// A relay of this profile rotated its key; the profile follows it. The old key
    /// works until `old_pin_until` (unix seconds).
    RelayMoved {
        /// Until when the old pin is accepted.
        old_pin_until: u64,
    },
    /// The profile locked itself (idle time) or was locked: every key is out of memory
    /// until [`Messenger::unlock`](super::Messenger::unlock).
    Locked,
    /// The profile opened again after a lock.
    Unlocked,
    /// The profile was wiped (by this app's panic control or from elsewhere). Nothing
    /// opens any more; this is the last event.
    Wiped,
    /// Something failed in the background; the messenger carries on (what failed is
    /// retried later).
    Problem(MessengerError),
}

impl core::fmt::Debug for MessengerEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MessengerEvent::Message { .. } => f.write_str("Message"),
            MessengerEvent::Sos { .. } => f.write_str("Sos"),
            MessengerEvent::Voice { duration_ms, .. } => write!(f, "Voice({duration_ms} ms)"),
            MessengerEvent::VoiceProgress { sent, total, .. } => {
                write!(f, "VoiceProgress({sent}/{total})")
            }
            MessengerEvent::Status { status, .. } => write!(f, "Status({status:?})"),
            MessengerEvent::Connected { .. } => f.write_str("Connected"),
            MessengerEvent::TimerChanged { seconds, .. } => write!(f, "TimerChanged({seconds})"),
            MessengerEvent::InvitationRefused { .. } => f.write_str("InvitationRefused"),
            MessengerEvent::Dropped { reason, .. } => write!(f, "Dropped({reason:?})"),
            MessengerEvent::RelayMoved { .. } => f.write_str("RelayMoved"),
            MessengerEvent::Locked => f.write_str("Locked"),
            MessengerEvent::Unlocked => f.write_str("Unlocked"),
            MessengerEvent::Wiped => f.write_str("Wiped"),
            MessengerEvent::Problem(error) => write!(f, "Problem({error})"),
        }
    }
}

/// The agent names contacts by display name; the app by id. Names are unique within a
/// profile, and the driver remembers every pair it has seen, so that an event about a
/// contact removed a moment ago (an invitation refused) still names its id.
#[derive(Default)]
pub(super) struct ContactIds {
    by_name: HashMap<String, ContactId>,
}

impl ContactIds {
    pub(super) fn remember(&mut self, name: &str, id: ContactId) {
        self.by_name.insert(name.to_owned(), id);
    }

    /// Remembers every contact the profile has now.
    pub(super) fn refresh(&mut self, agent: &crate::agent::Agent) {
        for contact in agent.contacts() {
            self.remember(&contact.name, contact.id);
        }
    }

    fn id(&mut self, agent: &crate::agent::Agent, name: &str) -> Option<ContactId> {
        if let Some(id) = agent.contact_id(name) {
            self.remember(name, id);
            return Some(id);
        }
        self.by_name.get(name).copied()
    }

    /// The app's view of an agent event; `None` for one about a contact never known
    /// (which the agent does not make).
    pub(super) fn translate(
        &mut self,
        agent: &crate::agent::Agent,
        event: AgentEvent,
    ) -> Option<MessengerEvent> {
        Some(match event {
            AgentEvent::Message {
                contact,
                id,
                text,
                sent_at,
                received_at,
            } => MessengerEvent::Message {
                contact: self.id(agent, &contact)?,
                id,
                text,
                sent_at,
                received_at,
            },
            AgentEvent::Sos {
                contact,
                id,
                text,
                sent_at,
                received_at,
            } => MessengerEvent::Sos {
                contact: self.id(agent, &contact)?,
                id,
                text,
                sent_at,
                received_at,
            },
            AgentEvent::Voice {
                contact,
                id,
                duration_ms,
                note,
                sent_at,
                received_at,
                ..
            } => MessengerEvent::Voice {
                contact: self.id(agent, &contact)?,
                id,
                duration_ms,
                note,
                sent_at,
                received_at,
            },
            AgentEvent::VoiceProgress {
                contact,
                id,
                sent,
                total,
            } => MessengerEvent::VoiceProgress {
                contact: self.id(agent, &contact)?,
                id,
                sent,
                total,
            },
            AgentEvent::Status {
                contact,
                id,
                status,
            } => MessengerEvent::Status {
                contact: self.id(agent, &contact)?,
                id,
                status,
            },
            AgentEvent::Connected { contact } => MessengerEvent::Connected {
                contact: self.id(agent, &contact)?,
            },
            AgentEvent::TimerChanged { contact, seconds } => MessengerEvent::TimerChanged {
                contact: self.id(agent, &contact)?,
                seconds,
            },
            AgentEvent::InvitationRefused { contact } => MessengerEvent::InvitationRefused {
                contact: self.id(agent, &contact)?,
            },
            AgentEvent::Dropped { contact, reason } => MessengerEvent::Dropped {
                contact: contact.and_then(|name| self.id(agent, &name)),
                reason,
            },
            AgentEvent::RelayMoved { old_pin_until } => {
                MessengerEvent::RelayMoved { old_pin_until }
            }
            AgentEvent::Error(error) => MessengerEvent::Problem(error.into()),
        })
    }
}
