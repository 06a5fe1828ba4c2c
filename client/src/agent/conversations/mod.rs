//! [`Conversations`]: the client agent's protocol core. It owns the vault and decides
//! what every input means — an invitation made or accepted, a text written, a relay's
//! `OK`, a delivered envelope — and hands back events and envelopes to send. It does
//! no network I/O and reads no clock (`now` is an argument, randomness too); the async
//! [`Agent`](super::Agent) moves envelopes between it and the relays.
//!
//! Every input that changes state is one vault transaction: a delivered text commits
//! the advanced ratchet, the history entry, its dedup index and the receipt to send
//! together, and only then may the driver acknowledge it to the relay. An envelope to
//! send is committed to the outbox (with the ratchet that made it) before it goes out,
//! and leaves the outbox only when a relay has `OK`ed it.

mod receive;
mod rotation;
mod send;
#[cfg(test)]
mod tests;
mod voice;

use std::collections::{BTreeMap, HashMap};

use passage_crypto::handshake::accept;
use passage_crypto::primitives::{DhPublic, DhSecret};

use passage_crypto::{Identity, Invitation, PendingInvitation, SafetyNumber};
use passage_wire::{QueueAddress, RecipientId, RelayAddress, SenderId};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::content::{Content, MAX_TIMER_SECS};
use super::error::AgentError;

use super::ids::{ContactId, MessageId};
use super::records::*;
use super::view::{ContactInfo, ContactStatus, HistoryEntry};
use crate::relay::{LinkError, QueueCredentials, SenderCredentials};
use crate::vault::Vault;

/// Longest local contact name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// An envelope waiting to go out, as the driver needs it.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub seq: u64,
    pub relay: RelayAddress,
    pub sender_id: SenderId,
    pub credentials: SenderCredentials,
    pub envelope: Box<[u8; passage_crypto::ENVELOPE_LEN]>,
}

/// What the driver must do with a delivered envelope once [`Conversations`] has
/// handled it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Acknowledge it: it is committed (or was worthless and is dropped).
    Ack,
    /// Leave it at the relay: the vault could not commit it; it comes again.
    Keep,
}

/// The agent's state machine over the vault. See the module documentation.
pub(crate) struct Conversations {
    vault: Vault,
    profile: ProfileRecord,
    contacts: BTreeMap<ContactId, ContactRecord>,
    by_queue: HashMap<[u8; 24], ContactId>,
    next_seq: u64,
    /// The earliest `expires_at` in the history (set by [`Self::expire`]).
    next_expiry: Option<u64>,
}

impl core::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Conversations")
            .field("contacts", &self.contacts.len())
            .finish_non_exhaustive()
    }
}

impl Conversations {
    /// Starts a new profile in an empty vault.
    pub fn create(
        mut vault: Vault,
        default_relay: &RelayAddress,
        at_risk: bool,
        now: u64,
    ) -> Result<Self, AgentError> {
        let profile = ProfileRecord {
            default_relay: default_relay.to_string(),
            created_at: now,
            default_timer_secs: if at_risk { 24 * 3600 } else { 0 },
            no_history: false,
        };
        vault.transaction(|tx| {
            tx.put(PROFILE, encode(&profile)?)?;
            tx.put(NEXT_SEQ, 0u64.to_be_bytes())?;
            Ok::<_, AgentError>(())
        })?;
        Self::open(vault)
    }

    /// Loads the profile and contacts of an opened vault.
    pub fn open(vault: Vault) -> Result<Self, AgentError> {
        let profile: ProfileRecord = match vault.get(PROFILE)? {
            Some(bytes) => decode(&bytes)?,
            None => return Err(AgentError::NotAProfile),
        };
        let next_seq = match vault.get(NEXT_SEQ)? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| AgentError::Record(RecordError))?,
            ),
            None => 0,
        };
        let mut contacts = BTreeMap::new();
        let mut by_queue = HashMap::new();
        for key in vault.keys_with_prefix(CONTACT_PREFIX) {
            let id = ContactId::from_hex(&key[CONTACT_PREFIX.len()..])
                .ok_or(AgentError::Record(RecordError))?;
            let Some(bytes) = vault.get(&*key)? else {
                continue;
            };
            let record: ContactRecord = decode(&bytes)?;
            by_queue.insert(record.own_queue.recipient_id, id);
            contacts.insert(id, record);
        }
        Ok(Self {
            vault,
            profile,
            contacts,
            by_queue,
            next_seq,
            next_expiry: None,
        })
    }

    /// Closes the vault.
    pub fn into_vault(self) -> Vault {
        self.vault
    }

    /// The vault (for passphrase changes and the like).
    pub fn vault_mut(&mut self) -> &mut Vault {
        &mut self.vault
    }

    /// The relay new queues go to.
    pub fn default_relay(&self) -> Result<RelayAddress, AgentError> {
        self.profile
            .default_relay
            .parse()
            .map_err(|_| AgentError::Record(RecordError))
    }

    /// Sets the relay new queues go to.
    pub fn set_default_relay(&mut self, relay: &RelayAddress) -> Result<(), AgentError> {
        self.profile.default_relay = relay.to_string();
        self.vault.put(PROFILE, encode(&self.profile)?)?;
        Ok(())
    }

    /// The profile's default disappearing-message timer for new contacts.
    pub fn default_timer(&self) -> u32 {
        self.profile.default_timer_secs
    }

    /// Sets the default disappearing-message timer for new contacts.
    pub fn set_default_timer(&mut self, seconds: u32) -> Result<(), AgentError> {
        if seconds > MAX_TIMER_SECS {
            return Err(AgentError::TimerTooLong);
        }
        self.profile.default_timer_secs = seconds;
        self.vault.put(PROFILE, encode(&self.profile)?)?;
        Ok(())
    }

    // ---- contacts -------------------------------------------------------------

    fn check_new_name(&self, name: &str) -> Result<(), AgentError> {
        if name.is_empty()
            || name.len() > MAX_NAME_LEN
            || name.chars().any(|c| c.is_control())
            || name.trim() != name
        {
            return Err(AgentError::InvalidName { max: MAX_NAME_LEN });
        }
        if self.contacts.values().any(|c| c.name == name) {
            return Err(AgentError::NameTaken);
        }
        Ok(())
    }

    /// Marks a contact trusted (an SOS goes to it) or not.
    pub fn set_trusted(&mut self, name: &str, on: bool) -> Result<(), AgentError> {
        let id = self.find(name)?;
        self.vault.transaction(|tx| {
            if on {
                tx.put(trusted_key(id), [])
            } else {
                tx.delete(trusted_key(id))
            }
        })?;
        Ok(())
    }

    /// The trusted contacts that can be written to (connected, or accepted), by name.
    pub fn trusted_reachable(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .contacts
            .iter()
            .filter(|(id, c)| c.their_queue.is_some() && self.vault.contains_key(trusted_key(**id)))
            .map(|(_, c)| c.name.clone())
            .collect();
        names.sort();
        names
    }

    /// The name of the contact with this id.
    pub fn contact_name(&self, id: &ContactId) -> Option<&str> {
        self.contacts.get(id).map(|c| c.name.as_str())
    }

    pub(crate) fn find(&self, name: &str) -> Result<ContactId, AgentError> {
        self.contacts
            .iter()
            .find(|(_, c)| c.name == name)
            .map(|(id, _)| *id)
            .ok_or(AgentError::NoSuchContact)
    }

    /// Relays that hold our receiving queues, with those queues.
    pub fn own_queues(&self) -> Vec<(RelayAddress, QueueCredentials)> {
        self.contacts
            .values()
            .filter_map(|c| {
                let relay = c.own_queue.relay.parse().ok()?;
                Some((relay, own_credentials(&c.own_queue).ok()?))
            })
            .collect()
    }

    /// The relays that hold our receiving queues (as `passage://` text), each once.
    pub fn own_relays(&self) -> Vec<String> {
        let mut relays: Vec<String> = self
            .contacts
            .values()
            .map(|c| c.own_queue.relay.clone())
            .collect();
        relays.sort();
        relays.dedup();
        relays
    }

    /// Our credentials for the receiving queue `recipient`, if it is ours.
    pub fn own_queue(&self, recipient: &RecipientId) -> Option<QueueCredentials> {
        let id = self.by_queue.get(recipient.as_bytes())?;
        own_credentials(&self.contacts.get(id)?.own_queue).ok()
    }

    /// Records a new invitation: `queue` is our fresh receiving queue on `relay`.
    /// Returns the invitation link.
    pub fn invite<R: CryptoRng + ?Sized>(
        &mut self,
        name: &str,
        relay: &RelayAddress,
        queue: &QueueCredentials,
        expires_at: u64,
        now: u64,
        rng: &mut R,
    ) -> Result<String, AgentError> {
        self.check_new_name(name)?;
        let identity = Identity::generate(rng);
        let own_identity = identity.public();
        let address = QueueAddress {
            relay: relay.clone(),
            sender_id: queue.sender_id(),
        };
        let pending = PendingInvitation::create(identity, &address.encode(), expires_at, rng)
            .map_err(|_| AgentError::InvalidInvitation)?;
        let link = pending.invitation().to_link();
        let record = ContactRecord {
            name: name.to_owned(),
            created_at: now,
            phase: ContactPhase::Invited,
            verified: false,
            own_identity,
            their_identity: None,
            own_queue: own_queue_record(relay, queue),
            their_queue: None,
            pending: Some(pending.snapshot()),
            invitation_expires_at: expires_at,
            invitation_id: pending.invitation().id(),
            timer_secs: self.profile.default_timer_secs,
            no_history: self.profile.no_history,
        };
        let id = ContactId::generate(rng);
        let floor = self.profile.default_timer_secs;
        self.vault.transaction(|tx| {
            tx.put(contact_key(id), encode(&record)?)?;
            tx.put(timer_floor_key(id), floor.to_be_bytes())?;
            Ok::<_, AgentError>(())
        })?;
        self.by_queue.insert(record.own_queue.recipient_id, id);
        self.contacts.insert(id, record);
        Ok(link)
    }

    /// Checks an invitation before the driver creates a queue for it: it must parse,
    /// not be expired, not be ours, not be accepted already, and `name` must be free.
    pub fn check_invitation(
        &self,
        link: &str,
        name: &str,
        now: u64,
    ) -> Result<Invitation, AgentError> {
        let invitation = Invitation::from_link(link.trim()).map_err(|e| match e {
            passage_crypto::invitation::InvitationError::UnsupportedVersion(_) => {
                AgentError::UnsupportedInvitation
            }
            _ => AgentError::InvalidInvitation,
        })?;
        if invitation.is_expired(now) {
            return Err(AgentError::InvitationExpired);
        }
        if self
            .contacts
            .values()
            .any(|c| c.invitation_id == invitation.id())
        {
            return Err(AgentError::InvitationAlreadyUsed);
        }
        QueueAddress::decode(invitation.queue()).map_err(|_| AgentError::InvalidInvitation)?;
        self.check_new_name(name)?;
        Ok(invitation)
    }

    /// Accepts a checked invitation with our fresh receiving `queue` on `relay`: the
    /// handshake message goes to the outbox. Returns the new contact.
    #[allow(clippy::too_many_arguments)]
    pub fn accept<R: CryptoRng + ?Sized>(
        &mut self,
        invitation: &Invitation,
        name: &str,
        relay: &RelayAddress,
        queue: &QueueCredentials,
        now: u64,
        rng: &mut R,
    ) -> Result<(), AgentError> {
        self.check_new_name(name)?;
        let their_queue =
            QueueAddress::decode(invitation.queue()).map_err(|_| AgentError::InvalidInvitation)?;
        let identity = Identity::generate(rng);
        let hello = Content::Hello {
            queue: QueueAddress {
                relay: relay.clone(),
                sender_id: queue.sender_id(),
            },
        }
        .encode()?;
        let accepted = accept(invitation, &identity, &hello, now, rng).map_err(|e| match e {
            passage_crypto::handshake::AcceptError::Expired => AgentError::InvitationExpired,
            _ => AgentError::InvalidInvitation,
        })?;
        let sender = SenderCredentials::generate(rng);
        let record = ContactRecord {
            name: name.to_owned(),
            created_at: now,
            phase: ContactPhase::Accepted,
            verified: false,
            own_identity: identity.public(),
            their_identity: Some(*invitation.identity()),
            own_queue: own_queue_record(relay, queue),
            their_queue: Some(TheirQueueRecord {
                address: their_queue.encode(),
                sender_secret: *sender.secret().to_bytes(),
                key_fixed: false,
            }),
            pending: None,
            invitation_expires_at: invitation.expires_at(),
            invitation_id: invitation.id(),
            timer_secs: self.profile.default_timer_secs,
            no_history: self.profile.no_history,
        };
        let id = ContactId::generate(rng);
        let seq = self.next_seq;
        let outbox = OutboxRecord {
            contact: id,
            kind: OutboxKind::Accept,
            msg_seq: None,
            envelope: accepted.message,
        };
        // A profile default (e.g. --at-risk) is announced, so the inviter adopts it:
        // sealed after the accept, committed with it.
        let mut ratchet = accepted.state;
        let floor = self.profile.default_timer_secs;
        let announcement = match record.timer_secs {
            0 => None,
            seconds => Some(send::seal_timer(
                &mut ratchet,
                id,
                seconds,
                now,
                seq + 1,
                rng,
            )?),
        };
        let next_seq = seq + if announcement.is_some() { 3 } else { 1 };
        self.vault.transaction(|tx| {
            tx.put(contact_key(id), encode(&record)?)?;
            tx.put(ratchet_key(id), encode(&ratchet.snapshot())?)?;
            tx.put(outbox_key(seq), encode(&outbox)?)?;
            tx.put(timer_floor_key(id), floor.to_be_bytes())?;
            if let Some(announcement) = &announcement {
                announcement.put(tx, id)?;
            }
            tx.put(NEXT_SEQ, next_seq.to_be_bytes())?;
            Ok::<_, AgentError>(())
        })?;
        self.next_seq = next_seq;
        self.by_queue.insert(record.own_queue.recipient_id, id);
        self.contacts.insert(id, record);
        Ok(())
    }

    /// Forgets a contact whose accept the inviter's relay refused (the invitation was
    /// used by someone else): its records, its outbox. Returns our queue to delete.
    fn forget_contact(&mut self, id: ContactId) -> Result<Option<QueueCredentials>, AgentError> {
        let Some(record) = self.contacts.get(&id) else {
            return Ok(None);
        };
        let queue = own_credentials(&record.own_queue).ok();
        let recipient = record.own_queue.recipient_id;
        let mut doomed: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        doomed.extend(self.vault.keys_with_prefix(message_prefix(id)));
        doomed.extend(self.vault.keys_with_prefix(message_index_prefix(id)));
        let mut voice_keys = self.vault.keys_with_prefix(voice_prefix(id));
        voice_keys.extend(self.vault.keys_with_prefix(voice_pending_prefix(id)));
        voice_keys.extend(self.vault.keys_with_prefix(voice_parts_prefix(id)));
        for key in self.vault.keys_with_prefix(OUTBOX_PREFIX) {
            if let Some(bytes) = self.vault.get(&*key)? {
                let item: OutboxRecord = decode(&bytes)?;
                if item.contact == id {
                    doomed.push(key);
                }
            }
        }
        self.vault.transaction(|tx| {
            tx.delete(contact_key(id))?;
            tx.delete(ratchet_key(id))?;
            tx.delete(timer_floor_key(id))?;
            tx.delete(seen_envelopes_key(id))?;
            tx.delete(trusted_key(id))?;
            for key in &voice_keys {
                tx.delete(&**key)?;
            }
            for key in &doomed {
                tx.delete(&**key)?;
            }
            Ok::<_, AgentError>(())
        })?;
        self.by_queue.remove(&recipient);
        self.contacts.remove(&id);
        Ok(queue)
    }

    /// Every contact, by name.
    pub fn contacts(&self) -> Vec<ContactInfo> {
        let mut list: Vec<ContactInfo> = self
            .contacts
            .iter()
            .map(|(id, c)| ContactInfo {
                id: *id,
                name: c.name.clone(),
                status: match c.phase {
                    ContactPhase::Invited => ContactStatus::Invited,
                    ContactPhase::Accepted => ContactStatus::Accepted,
                    ContactPhase::Connected => ContactStatus::Connected,
                },
                verified: c.verified,
                trusted: self.vault.contains_key(trusted_key(*id)),
                disappear_after_secs: c.timer_secs,
                created_at: c.created_at,
                invitation_expires_at: (c.phase == ContactPhase::Invited)
                    .then_some(c.invitation_expires_at),
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// The safety number with a contact, once we know their identity.
    pub fn safety_number(&self, name: &str) -> Result<SafetyNumber, AgentError> {
        let contact = &self.contacts[&self.find(name)?];
        let theirs = contact.their_identity.ok_or(AgentError::NotConnected)?;
        Ok(SafetyNumber::new(&contact.own_identity, &theirs))
    }

    /// Marks a contact verified; with `typed`, only if it matches the safety number.
    pub fn verify(&mut self, name: &str, typed: Option<&str>) -> Result<(), AgentError> {
        let number = self.safety_number(name)?;
        if let Some(typed) = typed
            && !number.matches(typed)
        {
            return Err(AgentError::SafetyNumberMismatch);
        }
        let id = self.find(name)?;
        self.update_contact(id, |c| c.verified = true)
    }

    fn update_contact(
        &mut self,
        id: ContactId,
        change: impl FnOnce(&mut ContactRecord),
    ) -> Result<(), AgentError> {
        let record = self
            .contacts
            .get_mut(&id)
            .ok_or(AgentError::NoSuchContact)?;
        change(record);
        let bytes = encode(record)?;
        self.vault.put(contact_key(id), bytes)?;
        Ok(())
    }

    /// A contact's history, oldest first.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryEntry>, AgentError> {
        let id = self.find(name)?;
        let mut entries = Vec::new();
        for key in self.vault.keys_with_prefix(message_prefix(id)) {
            let Some(bytes) = self.vault.get(&*key)? else {
                continue;
            };
            let record: MessageRecord = decode(&bytes)?;
            entries.push(HistoryEntry::from_record(&record));
        }
        Ok(entries)
    }

    // ---- disappearing messages ------------------------------------------------

    /// Deletes every history entry whose timer ran out by `now`, then compacts the
    /// vault so that their bytes no longer decrypt even with the passphrase. Returns
    /// how many were deleted.
    pub fn expire(&mut self, now: u64) -> Result<usize, AgentError> {
        let mut doomed = Vec::new();
        let mut next: Option<u64> = None;
        for id in self.contacts.keys().copied().collect::<Vec<_>>() {
            for key in self.vault.keys_with_prefix(message_prefix(id)) {
                let Some(bytes) = self.vault.get(&*key)? else {
                    continue;
                };
                let record: MessageRecord = decode(&bytes)?;
                match record.expires_at {
                    Some(at) if at <= now => {
                        if let Some(seq) = seq_of(&key) {
                            doomed.push(Zeroizing::new(voice_key(id, seq).into_bytes()));
                        }
                        doomed.push(key);
                        // The dedup index goes too: not even the id stays behind.
                        doomed.push(Zeroizing::new(
                            message_index_key(id, &record.id).into_bytes(),
                        ));
                    }
                    Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                    None => {}
                }
            }
        }
        self.next_expiry = next;
        if doomed.is_empty() {
            return Ok(0);
        }
        self.vault.transaction(|tx| {
            for key in &doomed {
                tx.delete(&**key)?;
            }
            Ok::<_, AgentError>(())
        })?;
        // Deleted is not enough: compaction re-keys the store, so the old records'
        // bytes no longer decrypt even with the passphrase.
        self.vault.compact()?;
        Ok(doomed.len() / 3)
    }

    /// The status of one message in a contact's history (by its id), if it is there.
    pub fn message_status(
        &self,
        name: &str,
        msg: &MessageId,
    ) -> Result<Option<MessageStatus>, AgentError> {
        let id = self.find(name)?;
        let Some(seq) = self.vault.get(message_index_key(id, msg))? else {
            return Ok(None);
        };
        let seq = u64::from_be_bytes(
            seq.as_slice()
                .try_into()
                .map_err(|_| AgentError::Record(RecordError))?,
        );
        let Some(bytes) = self.vault.get(message_key(id, seq))? else {
            return Ok(None);
        };
        let record: MessageRecord = decode(&bytes)?;
        Ok(Some(record.status))
    }

    /// When the next history entry expires, if any does (unix seconds).
    pub fn next_expiry(&self) -> Option<u64> {
        self.next_expiry
    }

    /// Notes that an entry expiring at `at` was written.
    pub(super) fn note_expiry(&mut self, at: Option<u64>) {
        if let Some(at) = at {
            self.next_expiry = Some(self.next_expiry.map_or(at, |n| n.min(at)));
        }
    }

    /// Turns no-history mode on or off for one contact, or (`None`) for the profile:
    /// the default of new contacts and every existing one.
    pub fn set_no_history(&mut self, name: Option<&str>, on: bool) -> Result<(), AgentError> {
        match name {
            Some(name) => {
                let id = self.find(name)?;
                self.update_contact(id, |c| c.no_history = on)
            }
            None => {
                self.profile.no_history = on;
                self.vault.put(PROFILE, encode(&self.profile)?)?;
                for id in self.contacts.keys().copied().collect::<Vec<_>>() {
                    self.update_contact(id, |c| c.no_history = on)?;
                }
                Ok(())
            }
        }
    }
}

pub(super) fn own_queue_record(relay: &RelayAddress, queue: &QueueCredentials) -> OwnQueueRecord {
    OwnQueueRecord {
        relay: relay.to_string(),
        recipient_id: *queue.recipient_id().as_bytes(),
        sender_id: *queue.sender_id().as_bytes(),
        auth_secret: *queue.recipient_auth_secret().to_bytes(),
        dh_secret: *queue.recipient_dh_secret().to_bytes(),
        relay_dh_key: *queue.relay_dh_key().as_bytes(),
    }
}

pub(super) fn own_credentials(record: &OwnQueueRecord) -> Result<QueueCredentials, LinkError> {
    QueueCredentials::from_parts(
        RecipientId::from_bytes(record.recipient_id),
        SenderId::from_bytes(record.sender_id),
        DhSecret::from_bytes(record.auth_secret),
        DhSecret::from_bytes(record.dh_secret),
        DhPublic::from_bytes(record.relay_dh_key),
    )
}
