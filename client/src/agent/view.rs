//! What the agent shows of its state: contacts and history entries, as plain values
//! for an interface. `Debug` never prints a name or a text.

use super::ids::{ContactId, MessageId};
use super::records::{Direction, EntryKind, MessageRecord, MessageStatus};

/// Where a contact relationship stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactStatus {
    /// We invited them; the invitation has not been accepted yet.
    Invited,
    /// We accepted their invitation; they have not answered yet (we can already write).
    Accepted,
    /// Connected both ways.
    Connected,
}

impl ContactStatus {
    /// Lowercase name, for the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactStatus::Invited => "invited",
            ContactStatus::Accepted => "accepted",
            ContactStatus::Connected => "connected",
        }
    }
}

/// One contact.
#[derive(Clone)]
pub struct ContactInfo {
    /// The contact's stable local id.
    pub id: ContactId,
    /// The local name (never sent anywhere).
    pub name: String,
    /// Where the relationship stands.
    pub status: ContactStatus,
    /// Whether the safety number was confirmed.
    pub verified: bool,
    /// Whether this user trusts the contact with an SOS.
    pub trusted: bool,
    /// Disappearing-message timer in seconds (0 = off).
    pub disappear_after_secs: u32,
    /// When the contact was added, unix seconds.
    pub created_at: u64,
    /// For an open invitation: when it expires, unix seconds.
    pub invitation_expires_at: Option<u64>,
}

impl core::fmt::Debug for ContactInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ContactInfo")
            .field("status", &self.status)
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

/// One entry of a conversation's history.
#[derive(Clone)]
pub struct HistoryEntry {
    /// The message id.
    pub id: MessageId,
    /// Who wrote it.
    pub direction: Direction,
    /// A text, or a timer change.
    pub kind: EntryKind,
    /// When it was written (the sender's clock), unix seconds.
    pub sent_at: u64,
    /// When this device received it (incoming only), unix seconds.
    pub received_at: Option<u64>,
    /// Where it stands.
    pub status: MessageStatus,
    /// When it disappears, if a timer applies, unix seconds.
    pub expires_at: Option<u64>,
}

impl HistoryEntry {
    pub(crate) fn from_record(record: &MessageRecord) -> Self {
        Self {
            id: record.id,
            direction: record.direction,
            kind: record.kind.clone(),
            sent_at: record.sent_at,
            received_at: record.received_at,
            status: record.status,
            expires_at: record.expires_at,
        }
    }

    /// The text, if this entry is a text message.
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            EntryKind::Text(text) | EntryKind::Sos(text) => Some(text),
            EntryKind::Timer(_) | EntryKind::Voice { .. } => None,
        }
    }

    /// Whether this entry is an emergency text (SOS).
    pub fn is_sos(&self) -> bool {
        matches!(self.kind, EntryKind::Sos(_))
    }

    /// (duration in ms, size in bytes), if this entry is a voice message.
    pub fn voice(&self) -> Option<(u32, u32)> {
        match self.kind {
            EntryKind::Voice { duration_ms, bytes } => Some((duration_ms, bytes)),
            _ => None,
        }
    }
}

impl Drop for HistoryEntry {
    fn drop(&mut self) {
        // The text is plaintext: wipe it when the interface is done with it.
        zeroize::Zeroize::zeroize(&mut self.kind);
    }
}

impl core::fmt::Debug for HistoryEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HistoryEntry")
            .field("id", &self.id)
            .field("direction", &self.direction)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for EntryKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EntryKind::Text(_) => f.write_str("Text(..)"),
            EntryKind::Sos(_) => f.write_str("Sos(..)"),
            EntryKind::Timer(seconds) => write!(f, "Timer({seconds})"),
            EntryKind::Voice { duration_ms, .. } => write!(f, "Voice({duration_ms} ms)"),
        }
    }
}
