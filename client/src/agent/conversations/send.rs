//! Sending: texts and control messages into the outbox, and what a relay's answer
//! to a `SEND` changes.

use passage_crypto::RatchetState;
use passage_crypto::primitives::DhSecret;
use passage_crypto::ratchet::RatchetSnapshot;
use passage_wire::QueueAddress;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::super::content::{Content, MAX_TEXT_LEN, MAX_TIMER_SECS};
use super::super::error::AgentError;
use super::super::event::AgentEvent;
use super::super::ids::{ContactId, MessageId};
use super::super::records::*;
use super::{Conversations, Outgoing};
use crate::relay::{LinkError, QueueCredentials, SenderCredentials};
use crate::vault::Transaction;

impl Conversations {
    // ---- sending --------------------------------------------------------------

    pub(super) fn ratchet(&self, id: ContactId) -> Result<RatchetState, AgentError> {
        let bytes = self
            .vault
            .get(ratchet_key(id))?
            .ok_or(AgentError::NotConnected)?;
        let snapshot: RatchetSnapshot = decode(&bytes)?;
        RatchetState::from_snapshot(&snapshot).map_err(|_| AgentError::Record(RecordError))
    }

    /// Encrypts a text to a contact and queues it. Returns its id.
    pub fn compose_text<R: CryptoRng + ?Sized>(
        &mut self,
        name: &str,
        text: &str,
        now: u64,
        rng: &mut R,
    ) -> Result<MessageId, AgentError> {
        self.compose(name, text, false, now, rng)
    }

    /// An emergency text (SOS) to one contact: like a text, marked urgent, and sent
    /// before everything else in the outbox.
    pub fn compose_sos<R: CryptoRng + ?Sized>(
        &mut self,
        name: &str,
        text: &str,
        now: u64,
        rng: &mut R,
    ) -> Result<MessageId, AgentError> {
        self.compose(name, text, true, now, rng)
    }

    fn compose<R: CryptoRng + ?Sized>(
        &mut self,
        name: &str,
        text: &str,
        urgent: bool,
        now: u64,
        rng: &mut R,
    ) -> Result<MessageId, AgentError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(AgentError::TextTooLong {
                len: text.len(),
                max: MAX_TEXT_LEN,
            });
        }
        let id = self.find(name)?;
        let timer_secs = self.contacts[&id].timer_secs;
        let msg_id = MessageId::generate(rng);
        let content = Content::Text {
            id: msg_id,
            sent_at: now,
            timer_secs,
            text: text.to_owned(),
            urgent,
        };
        let record = MessageRecord {
            id: msg_id,
            direction: Direction::Outgoing,
            kind: if urgent {
                EntryKind::Sos(text.to_owned())
            } else {
                EntryKind::Text(text.to_owned())
            },
            sent_at: now,
            received_at: None,
            status: MessageStatus::Queued,
            expires_at: (timer_secs > 0).then(|| now + u64::from(timer_secs)),
        };
        let expires_at = record.expires_at;
        let kind = if urgent {
            OutboxKind::Sos
        } else {
            OutboxKind::Text
        };
        self.queue_content(id, &content, kind, Some(record), rng)?;
        self.note_expiry(expires_at);
        Ok(msg_id)
    }

    /// Sets a contact's disappearing-message timer and tells the contact. It is also
    /// this user's floor for the contact: the contact may shorten it later, never
    /// lengthen it or switch it off (`0` removes the floor).
    pub fn set_timer<R: CryptoRng + ?Sized>(
        &mut self,
        name: &str,
        seconds: u32,
        now: u64,
        rng: &mut R,
    ) -> Result<(), AgentError> {
        if seconds > MAX_TIMER_SECS {
            return Err(AgentError::TimerTooLong);
        }
        let id = self.find(name)?;
        self.announce_timer(id, seconds, Some(seconds), now, rng)
    }

    /// The timer this user set for contact `id` (see [`timer_floor_key`]).
    pub(super) fn timer_floor(&self, id: ContactId) -> Result<u32, AgentError> {
        match self.vault.get(timer_floor_key(id))? {
            Some(bytes) => Ok(u32::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| AgentError::Record(RecordError))?,
            )),
            None => Ok(self.profile.default_timer_secs),
        }
    }

    /// Sets contact `id`'s timer and queues the control message that announces it
    /// (with its history entry), and with `floor`, this user's floor for the contact,
    /// all in one transaction.
    pub(super) fn announce_timer<R: CryptoRng + ?Sized>(
        &mut self,
        id: ContactId,
        seconds: u32,
        floor: Option<u32>,
        now: u64,
        rng: &mut R,
    ) -> Result<(), AgentError> {
        let contact = self.contacts.get(&id).ok_or(AgentError::NoSuchContact)?;
        if contact.their_queue.is_none() {
            return Err(AgentError::NotConnected);
        }
        let mut updated: ContactRecord = decode(&encode(contact)?)?;
        updated.timer_secs = seconds;
        let contact_bytes = encode(&updated)?;
        let mut ratchet = self.ratchet(id)?;
        let seq = self.next_seq;
        let announcement = seal_timer(&mut ratchet, id, seconds, now, seq, rng)?;
        self.vault.transaction(|tx| {
            tx.put(contact_key(id), &contact_bytes)?;
            tx.put(ratchet_key(id), encode(&ratchet.snapshot())?)?;
            announcement.put(tx, id)?;
            if let Some(floor) = floor {
                tx.put(timer_floor_key(id), floor.to_be_bytes())?;
            }
            tx.put(NEXT_SEQ, (seq + 2).to_be_bytes())?;
            Ok::<_, AgentError>(())
        })?;
        self.next_seq = seq + 2;
        self.contacts.insert(id, updated);
        Ok(())
    }

    /// Encrypts `content` with the contact's ratchet and commits ratchet, history entry
    /// (if any), outbox and contact record together.
    pub(super) fn queue_content<R: CryptoRng + ?Sized>(
        &mut self,
        id: ContactId,
        content: &Content,
        kind: OutboxKind,
        history: Option<MessageRecord>,
        rng: &mut R,
    ) -> Result<(), AgentError> {
        let contact = self.contacts.get(&id).ok_or(AgentError::NoSuchContact)?;
        if contact.their_queue.is_none() {
            return Err(AgentError::NotConnected);
        }
        let mut ratchet = self.ratchet(id)?;
        let outbox_seq = self.next_seq;
        let msg_seq = outbox_seq + 1;
        let outbox = seal(
            &mut ratchet,
            id,
            content,
            kind,
            history.as_ref().map(|_| msg_seq),
            rng,
        )?;
        let contact_bytes = encode(contact)?;
        self.vault.transaction(|tx| {
            tx.put(contact_key(id), &contact_bytes)?;
            tx.put(ratchet_key(id), encode(&ratchet.snapshot())?)?;
            tx.put(outbox_key(outbox_seq), encode(&outbox)?)?;
            if let Some(record) = &history {
                tx.put(message_key(id, msg_seq), encode(record)?)?;
                tx.put(message_index_key(id, &record.id), msg_seq.to_be_bytes())?;
            }
            tx.put(NEXT_SEQ, (outbox_seq + 2).to_be_bytes())?;
            Ok::<_, AgentError>(())
        })?;
        self.next_seq = outbox_seq + 2;
        Ok(())
    }

    /// How many envelopes wait in the outbox (no disk read).
    pub fn outbox_len(&self) -> usize {
        self.vault.keys_with_prefix(OUTBOX_PREFIX).len()
    }

    /// Whether anything waits in the outbox (no disk read).
    pub fn has_outbox(&self) -> bool {
        !self.vault.keys_with_prefix(OUTBOX_PREFIX).is_empty()
    }

    /// Everything waiting in the outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<Outgoing>, AgentError> {
        self.outbox_first(None)
    }

    /// The first `limit` envelopes of the [`outbox`](Self::outbox) (all with `None`).
    pub fn outbox_first(&self, limit: Option<usize>) -> Result<Vec<Outgoing>, AgentError> {
        let mut items = Vec::new();
        let mut urgent = Vec::new();
        // Every entry is looked at, so that an SOS queued behind the limit still goes
        // first.
        for key in self.vault.keys_with_prefix(OUTBOX_PREFIX) {
            let Some(seq) = seq_of(&key) else { continue };
            let Some(bytes) = self.vault.get(&*key)? else {
                continue;
            };
            let item: OutboxRecord = decode(&bytes)?;
            let Some(contact) = self.contacts.get(&item.contact) else {
                continue;
            };
            let Some(their) = &contact.their_queue else {
                continue;
            };
            let address = QueueAddress::decode(&their.address)
                .map_err(|_| AgentError::Record(RecordError))?;
            let envelope: Box<[u8; passage_crypto::ENVELOPE_LEN]> = item
                .envelope
                .clone()
                .into_boxed_slice()
                .try_into()
                .map_err(|_| AgentError::Record(RecordError))?;
            let into = if item.kind == OutboxKind::Sos {
                &mut urgent
            } else {
                &mut items
            };
            into.push(Outgoing {
                seq,
                relay: address.relay,
                sender_id: address.sender_id,
                credentials: SenderCredentials::from_secret(
                    DhSecret::from_bytes(their.sender_secret),
                    !their.key_fixed,
                ),
                envelope,
            });
        }
        // Emergencies first, then the rest in order, `limit` in all.
        urgent.append(&mut items);
        urgent.truncate(limit.unwrap_or(usize::MAX));
        Ok(urgent)
    }

    /// A relay answered the `SEND` of outbox entry `seq`. Returns the events, and our
    /// queue to delete if a contact had to be forgotten.
    pub fn handle_sent(
        &mut self,
        seq: u64,
        result: Result<(), &LinkError>,
    ) -> Result<(Vec<AgentEvent>, Option<QueueCredentials>), AgentError> {
        let key = outbox_key(seq);
        let Some(bytes) = self.vault.get(&key)? else {
            return Ok((Vec::new(), None));
        };
        let item: OutboxRecord = decode(&bytes)?;
        let id = item.contact;
        let Some(contact) = self.contacts.get(&id) else {
            self.vault.delete(&key)?;
            return Ok((Vec::new(), None));
        };
        let name = contact.name.clone();
        let mut events = Vec::new();
        if result.is_ok()
            && let OutboxKind::VoiceChunk {
                id: msg,
                index,
                count,
            } = item.kind
        {
            events.push(AgentEvent::VoiceProgress {
                contact: name.clone(),
                id: MessageId::from_bytes(msg),
                sent: index + 1,
                total: count,
            });
        }
        let status = match result {
            Ok(()) => MessageStatus::Sent,
            Err(error) if is_permanent(error) => {
                if item.kind == OutboxKind::Accept {
                    // The inviter's queue took another sender's key: the invitation
                    // was used (or the queue is gone). This relationship cannot start.
                    let queue = self.forget_contact(id)?;
                    let event = AgentEvent::InvitationRefused { contact: name };
                    return Ok((vec![event], queue));
                }
                MessageStatus::Failed
            }
            // Temporary (timeout, quota, connection): stays queued for the next try.
            Err(_) => return Ok((Vec::new(), None)),
        };
        let mut contact_bytes = None;
        if status == MessageStatus::Sent
            && let Some(their) = &contact.their_queue
            && !their.key_fixed
        {
            let record = self
                .contacts
                .get_mut(&id)
                .ok_or(AgentError::NoSuchContact)?;
            if let Some(their) = record.their_queue.as_mut() {
                their.key_fixed = true;
            }
            contact_bytes = Some(encode(&*record)?);
        }
        let mut history = None;
        if let Some(msg_seq) = item.msg_seq
            && let Some(bytes) = self.vault.get(message_key(id, msg_seq))?
        {
            let mut record: MessageRecord = decode(&bytes)?;
            if record.status == MessageStatus::Queued {
                record.status = status;
                events.push(AgentEvent::Status {
                    contact: name.clone(),
                    id: record.id,
                    status,
                });
                history = Some((msg_seq, record));
            }
        }
        self.vault.transaction(|tx| {
            tx.delete(&key)?;
            if let Some(bytes) = &contact_bytes {
                tx.put(contact_key(id), bytes)?;
            }
            if let Some((msg_seq, record)) = &history {
                tx.put(message_key(id, *msg_seq), encode(record)?)?;
            }
            Ok::<_, AgentError>(())
        })?;
        Ok((events, None))
    }
}

fn is_permanent(error: &LinkError) -> bool {
    matches!(error, LinkError::Auth | LinkError::Refused(_))
}

/// Encrypts `content` with `ratchet` (which moves on) into an outbox entry for contact
/// `id`; `msg_seq` names the history entry its `OK` updates.
pub(super) fn seal<R: CryptoRng + ?Sized>(
    ratchet: &mut RatchetState,
    id: ContactId,
    content: &Content,
    kind: OutboxKind,
    msg_seq: Option<u64>,
    rng: &mut R,
) -> Result<OutboxRecord, AgentError> {
    let plaintext = Zeroizing::new(content.encode()?);
    let envelope = ratchet
        .encrypt(&plaintext, rng)
        .map_err(|_| AgentError::ChainExhausted)?;
    Ok(OutboxRecord {
        contact: id,
        kind,
        msg_seq,
        envelope,
    })
}

/// A timer announcement sealed but not yet committed: its outbox entry (at
/// `outbox_seq`) and its history entry (at `outbox_seq + 1`).
pub(super) struct Announcement {
    outbox_seq: u64,
    outbox: OutboxRecord,
    record: MessageRecord,
}

impl Announcement {
    /// Writes the outbox entry and the history entry (with its index).
    pub(super) fn put(&self, tx: &mut Transaction<'_>, id: ContactId) -> Result<(), AgentError> {
        let msg_seq = self.outbox_seq + 1;
        tx.put(outbox_key(self.outbox_seq), encode(&self.outbox)?)?;
        tx.put(message_key(id, msg_seq), encode(&self.record)?)?;
        tx.put(
            message_index_key(id, &self.record.id),
            msg_seq.to_be_bytes(),
        )?;
        Ok(())
    }
}

/// Seals the announcement of a `seconds` timer to contact `id` with `ratchet` (which
/// moves on), numbered from `outbox_seq`; the caller commits it with what goes with it.
pub(super) fn seal_timer<R: CryptoRng + ?Sized>(
    ratchet: &mut RatchetState,
    id: ContactId,
    seconds: u32,
    now: u64,
    outbox_seq: u64,
    rng: &mut R,
) -> Result<Announcement, AgentError> {
    let record = MessageRecord {
        id: MessageId::generate(rng),
        direction: Direction::Outgoing,
        kind: EntryKind::Timer(seconds),
        sent_at: now,
        received_at: None,
        status: MessageStatus::Queued,
        expires_at: None,
    };
    let outbox = seal(
        ratchet,
        id,
        &Content::Timer { seconds },
        OutboxKind::Timer,
        Some(outbox_seq + 1),
        rng,
    )?;
    Ok(Announcement {
        outbox_seq,
        outbox,
        record,
    })
}
