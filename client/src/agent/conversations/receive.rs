//! Receiving: what a delivered envelope means — the handshake, a text, a receipt,
//! a timer — committed before the relay may delete it.

use passage_crypto::PendingInvitation;
use passage_crypto::RatchetState;
use passage_crypto::handshake::CompleteError;
use passage_crypto::ratchet::DecryptError;
use passage_wire::RecipientId;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::super::content::Content;
use super::super::error::AgentError;
use super::super::event::{AgentEvent, DroppedReason};
use super::super::ids::{ContactId, MessageId};
use super::super::records::*;
use super::send::{seal, seal_timer};
use super::{Conversations, Disposition};
use crate::relay::SenderCredentials;
use crate::vault::Transaction;

impl Conversations {
    // ---- receiving ------------------------------------------------------------

    /// Handles an envelope delivered on our queue `recipient`, stamped by the relay at
    /// `timestamp`. Returns the events and what to do with the relay's copy.
    pub fn handle_delivery<R: CryptoRng + ?Sized>(
        &mut self,
        recipient: RecipientId,
        envelope: &[u8],
        timestamp: u64,
        now: u64,
        rng: &mut R,
    ) -> (Disposition, Vec<AgentEvent>) {
        match self.try_handle_delivery(recipient, envelope, timestamp, now, rng) {
            Ok(events) => (Disposition::Ack, events),
            Err(Dropped(reason, contact)) => (
                Disposition::Ack,
                vec![AgentEvent::Dropped { contact, reason }],
            ),
            Err(Retry(error)) => (Disposition::Keep, vec![AgentEvent::Error(error)]),
        }
    }

    fn try_handle_delivery<R: CryptoRng + ?Sized>(
        &mut self,
        recipient: RecipientId,
        envelope: &[u8],
        timestamp: u64,
        now: u64,
        rng: &mut R,
    ) -> Result<Vec<AgentEvent>, DeliveryFailure> {
        let Some(&id) = self.by_queue.get(recipient.as_bytes()) else {
            return Err(Dropped(DroppedReason::UnknownQueue, None));
        };
        let contact = &self.contacts[&id];
        let name = contact.name.clone();
        if contact.phase == ContactPhase::Invited {
            return self.handle_accept(id, envelope, timestamp, now, rng);
        }
        let digest = envelope_digest(envelope);
        let mut seen = self.seen_envelopes(id).map_err(Retry)?;
        let mut ratchet = self.ratchet(id).map_err(Retry)?;
        let plaintext = match ratchet.decrypt(envelope, now, rng) {
            Ok(plaintext) => plaintext,
            Err(DecryptError::AlreadyReceived) if seen.digests.contains(&digest) => {
                return Err(Dropped(DroppedReason::Duplicate, Some(name)));
            }
            // A different envelope at a position already consumed: the contact's
            // profile forked (restored from an older copy, or copied).
            Err(DecryptError::AlreadyReceived) => {
                return Err(Dropped(DroppedReason::Forked, Some(name)));
            }
            Err(_) => return Err(Dropped(DroppedReason::Undecryptable, Some(name))),
        };
        if seen.digests.len() >= SEEN_ENVELOPES {
            seen.digests.remove(0);
        }
        seen.digests.push(digest);
        let consumed = Consumed {
            ratchet: encode(&ratchet.snapshot()).map_err(|e| Retry(e.into()))?,
            seen: encode(&seen).map_err(|e| Retry(e.into()))?,
        };
        let content = match Content::decode(&plaintext) {
            Ok(content) => content,
            Err(_) => {
                // The message is consumed: keep the ratchet moving, drop the content.
                self.vault
                    .transaction(|tx| consumed.put(tx, id))
                    .map_err(Retry)?;
                return Err(Dropped(DroppedReason::Malformed, Some(name)));
            }
        };
        self.apply(id, content, consumed, now, rng).map_err(Retry)
    }

    fn handle_accept<R: CryptoRng + ?Sized>(
        &mut self,
        id: ContactId,
        envelope: &[u8],
        timestamp: u64,
        now: u64,
        rng: &mut R,
    ) -> Result<Vec<AgentEvent>, DeliveryFailure> {
        let contact = &self.contacts[&id];
        let name = contact.name.clone();
        let Some(snapshot) = &contact.pending else {
            return Err(Dropped(DroppedReason::Undecryptable, Some(name)));
        };
        let pending = PendingInvitation::from_snapshot(snapshot)
            .map_err(|_| Retry(AgentError::Record(RecordError)))?;
        let completed = match pending.complete(envelope, timestamp, now, rng) {
            Ok(completed) => completed,
            Err(rejected) => {
                let reason = match rejected.error {
                    CompleteError::Expired => DroppedReason::InvitationExpired,
                    _ => DroppedReason::Undecryptable,
                };
                return Err(Dropped(reason, Some(name)));
            }
        };
        let Ok(Content::Hello { queue }) = Content::decode(&completed.first_plaintext) else {
            return Err(Dropped(DroppedReason::Malformed, Some(name)));
        };
        self.connect_inviter(id, completed.contact, queue, completed.state, now, rng)
            .map_err(Retry)?;
        Ok(vec![AgentEvent::Connected { contact: name }])
    }

    /// The inviter's side of a completed handshake, in one vault transaction: the
    /// contact connected (their identity and queue, the invitation's secrets gone), the
    /// ratchet, the welcome and, under a profile default timer, its announcement. A
    /// failure changes nothing, in the vault or in memory, so the relay's copy of the
    /// accept is handled again from the start.
    fn connect_inviter<R: CryptoRng + ?Sized>(
        &mut self,
        id: ContactId,
        their_identity: passage_crypto::IdentityPublic,
        queue: passage_wire::QueueAddress,
        mut ratchet: RatchetState,
        now: u64,
        rng: &mut R,
    ) -> Result<(), AgentError> {
        let current = self.contacts.get(&id).ok_or(AgentError::NoSuchContact)?;
        // A copy to change, so that memory is touched only once the commit succeeded.
        let mut record: ContactRecord = decode(&encode(current)?)?;
        let sender = SenderCredentials::generate(rng);
        record.phase = ContactPhase::Connected;
        record.their_identity = Some(their_identity);
        record.pending = None;
        record.their_queue = Some(TheirQueueRecord {
            address: queue.encode(),
            sender_secret: *sender.secret().to_bytes(),
            key_fixed: false,
        });
        let welcome_seq = self.next_seq;
        let welcome = seal(
            &mut ratchet,
            id,
            &Content::Welcome,
            OutboxKind::Welcome,
            None,
            rng,
        )?;
        // A profile default (e.g. --at-risk) is announced, so the contact adopts it.
        let announcement = match record.timer_secs {
            0 => None,
            seconds => Some(seal_timer(
                &mut ratchet,
                id,
                seconds,
                now,
                welcome_seq + 1,
                rng,
            )?),
        };
        let next_seq = welcome_seq + if announcement.is_some() { 3 } else { 1 };
        let contact_bytes = encode(&record)?;
        self.vault.transaction(|tx| {
            tx.put(contact_key(id), &contact_bytes)?;
            tx.put(ratchet_key(id), encode(&ratchet.snapshot())?)?;
            tx.put(outbox_key(welcome_seq), encode(&welcome)?)?;
            if let Some(announcement) = &announcement {
                announcement.put(tx, id)?;
            }
            tx.put(NEXT_SEQ, next_seq.to_be_bytes())?;
            Ok::<_, AgentError>(())
        })?;
        self.next_seq = next_seq;
        self.contacts.insert(id, record);
        Ok(())
    }

    fn apply<R: CryptoRng + ?Sized>(
        &mut self,
        id: ContactId,
        content: Content,
        consumed: Consumed,
        now: u64,
        rng: &mut R,
    ) -> Result<Vec<AgentEvent>, AgentError> {
        let name = self.contacts[&id].name.clone();
        match content {
            Content::Hello { .. } => {
                self.vault.transaction(|tx| consumed.put(tx, id))?;
                Ok(Vec::new())
            }
            Content::Voice(chunk) => {
                match self.receive_voice_chunk(id, chunk, &consumed, now, rng)? {
                    super::voice::ChunkOutcome::Stored => Ok(Vec::new()),
                    super::voice::ChunkOutcome::Complete(events) => Ok(events),
                    super::voice::ChunkOutcome::Malformed => Ok(vec![AgentEvent::Dropped {
                        contact: Some(name),
                        reason: super::voice::MALFORMED,
                    }]),
                }
            }
            Content::Welcome => {
                let mut events = Vec::new();
                let record = self
                    .contacts
                    .get_mut(&id)
                    .ok_or(AgentError::NoSuchContact)?;
                if record.phase != ContactPhase::Connected {
                    record.phase = ContactPhase::Connected;
                    events.push(AgentEvent::Connected {
                        contact: name.clone(),
                    });
                }
                let contact_bytes = encode(&*record)?;
                self.vault.transaction(|tx| {
                    consumed.put(tx, id)?;
                    tx.put(contact_key(id), &contact_bytes)?;
                    Ok::<_, AgentError>(())
                })?;
                Ok(events)
            }
            Content::Text {
                id: msg_id,
                sent_at,
                timer_secs,
                text,
                urgent,
            } => {
                let text = Incoming {
                    id: msg_id,
                    sent_at,
                    timer_secs,
                    text,
                    urgent,
                };
                self.receive_text(id, text, consumed, now, rng)
            }
            Content::Receipt { ids } => {
                let mut events = Vec::new();
                let mut updates = Vec::new();
                let no_history = self.contacts[&id].no_history;
                for msg_id in ids {
                    let Some(seq) = self.vault.get(message_index_key(id, &msg_id))? else {
                        continue;
                    };
                    let Ok(seq) = <[u8; 8]>::try_from(seq.as_slice()) else {
                        continue;
                    };
                    let seq = u64::from_be_bytes(seq);
                    let Some(bytes) = self.vault.get(message_key(id, seq))? else {
                        continue;
                    };
                    let mut record: MessageRecord = decode(&bytes)?;
                    if record.direction != Direction::Outgoing
                        || record.status == MessageStatus::Delivered
                    {
                        continue;
                    }
                    record.status = MessageStatus::Delivered;
                    events.push(AgentEvent::Status {
                        contact: name.clone(),
                        id: msg_id,
                        status: MessageStatus::Delivered,
                    });
                    updates.push((seq, record));
                }
                self.vault.transaction(|tx| {
                    consumed.put(tx, id)?;
                    for (seq, record) in &updates {
                        if no_history {
                            tx.delete(message_key(id, *seq))?;
                            tx.delete(voice_key(id, *seq))?;
                        } else {
                            tx.put(message_key(id, *seq), encode(record)?)?;
                        }
                    }
                    Ok::<_, AgentError>(())
                })?;
                if no_history && !updates.is_empty() {
                    // Delivered: the text goes, unrecoverably (see `expire`).
                    self.vault.compact()?;
                }
                Ok(events)
            }
            Content::Timer { seconds } => {
                // The contact may shorten the timer this user set, never lengthen it or
                // switch it off: the stricter of the two applies. When the contact's
                // asked for less, ours is announced back, so both sides show the same.
                let effective = effective_timer(seconds, self.timer_floor(id)?).unwrap_or_default();
                let record = MessageRecord {
                    id: MessageId::generate(rng),
                    direction: Direction::Incoming,
                    kind: EntryKind::Timer(effective),
                    // The relay's stamp is coarse (to the hour) and a timer change carries no
                    // time of its own: when it arrived is what the history can say.
                    sent_at: now,
                    received_at: Some(now),
                    status: MessageStatus::Received,
                    expires_at: None,
                };
                let seq = self.next_seq;
                let (ratchet, answer) = if effective == seconds {
                    (consumed.ratchet.clone(), None)
                } else {
                    let mut ratchet = RatchetState::from_snapshot(&decode(&consumed.ratchet)?)
                        .map_err(|_| AgentError::Record(RecordError))?;
                    let answer = seal_timer(&mut ratchet, id, effective, now, seq + 1, rng)?;
                    (encode(&ratchet.snapshot())?, Some(answer))
                };
                let next_seq = seq + if answer.is_some() { 3 } else { 1 };
                let contact = self.contacts.get(&id).ok_or(AgentError::NoSuchContact)?;
                let mut updated: ContactRecord = decode(&encode(contact)?)?;
                updated.timer_secs = effective;
                let contact_bytes = encode(&updated)?;
                self.vault.transaction(|tx| {
                    tx.put(ratchet_key(id), &ratchet)?;
                    tx.put(seen_envelopes_key(id), &consumed.seen)?;
                    tx.put(contact_key(id), &contact_bytes)?;
                    tx.put(message_key(id, seq), encode(&record)?)?;
                    if let Some(answer) = &answer {
                        answer.put(tx, id)?;
                    }
                    tx.put(NEXT_SEQ, next_seq.to_be_bytes())?;
                    Ok::<_, AgentError>(())
                })?;
                self.next_seq = next_seq;
                self.contacts.insert(id, updated);
                Ok(vec![AgentEvent::TimerChanged {
                    contact: name,
                    seconds: effective,
                }])
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn receive_text<R: CryptoRng + ?Sized>(
        &mut self,
        id: ContactId,
        incoming: Incoming,
        consumed: Consumed,
        now: u64,
        rng: &mut R,
    ) -> Result<Vec<AgentEvent>, AgentError> {
        let Incoming {
            id: msg_id,
            sent_at,
            timer_secs,
            text,
            urgent,
        } = incoming;
        let name = self.contacts[&id].name.clone();
        let text = Zeroizing::new(text);
        let duplicate = self.vault.contains_key(message_index_key(id, &msg_id));
        // A receipt goes back either way: the first one may have been lost.
        let receipt = Content::Receipt { ids: vec![msg_id] };
        let no_history = self.contacts[&id].no_history;
        let own_timer = self.contacts[&id].timer_secs;
        let receipt = self.seal_receipt(id, receipt, &consumed, rng)?;
        let outbox_seq = self.next_seq;
        let msg_seq = outbox_seq + 1;
        let record = MessageRecord {
            id: msg_id,
            direction: Direction::Incoming,
            kind: if urgent {
                EntryKind::Sos((*text).clone())
            } else {
                EntryKind::Text((*text).clone())
            },
            sent_at,
            received_at: Some(now),
            status: MessageStatus::Received,
            expires_at: effective_timer(timer_secs, own_timer).map(|t| now + u64::from(t)),
        };
        let received_at = now;
        self.vault.transaction(|tx| {
            receipt.put(tx, id, &consumed, outbox_seq)?;
            if !duplicate {
                if !no_history {
                    tx.put(message_key(id, msg_seq), encode(&record)?)?;
                }
                tx.put(message_index_key(id, &msg_id), msg_seq.to_be_bytes())?;
            }
            tx.put(NEXT_SEQ, (outbox_seq + 2).to_be_bytes())?;
            Ok::<_, AgentError>(())
        })?;
        self.next_seq = outbox_seq + 2;
        if !no_history {
            self.note_expiry(record.expires_at);
        }
        if duplicate {
            return Ok(Vec::new());
        }
        if urgent {
            return Ok(vec![AgentEvent::Sos {
                contact: name,
                id: msg_id,
                text,
                sent_at,
                received_at,
            }]);
        }
        Ok(vec![AgentEvent::Message {
            contact: name,
            id: msg_id,
            text,
            sent_at,
            received_at,
        }])
    }
}

/// A text as it came (its fields, for [`Conversations::receive_text`]).
struct Incoming {
    id: MessageId,
    sent_at: u64,
    timer_secs: u32,
    text: String,
    urgent: bool,
}

use DeliveryFailure::{Dropped, Retry};

/// What decrypting an envelope changed, written in the transaction that records what
/// it meant: the ratchet moved past it, and its digest among the contact's last ones.
pub(super) struct Consumed {
    pub(super) ratchet: Vec<u8>,
    pub(super) seen: Vec<u8>,
}

impl Consumed {
    pub(super) fn put(&self, tx: &mut Transaction<'_>, id: ContactId) -> Result<(), AgentError> {
        tx.put(ratchet_key(id), &self.ratchet)?;
        tx.put(seen_envelopes_key(id), &self.seen)?;
        Ok(())
    }
}

/// A receipt sealed with the ratchet that decrypted what it acknowledges, to commit
/// with what that message meant (or, with no queue of the contact's to send it to yet,
/// just that ratchet step).
pub(super) struct SealedReceipt(Option<(Vec<u8>, OutboxRecord)>);

impl SealedReceipt {
    /// Writes the ratchet (past the receipt), the envelope digests and the receipt at
    /// `outbox_seq`; or only `consumed` when there is no receipt.
    pub(super) fn put(
        &self,
        tx: &mut Transaction<'_>,
        id: ContactId,
        consumed: &Consumed,
        outbox_seq: u64,
    ) -> Result<(), AgentError> {
        match &self.0 {
            Some((ratchet, outbox)) => {
                tx.put(ratchet_key(id), ratchet)?;
                tx.put(seen_envelopes_key(id), &consumed.seen)?;
                tx.put(outbox_key(outbox_seq), encode(outbox)?)?;
            }
            None => consumed.put(tx, id)?,
        }
        Ok(())
    }
}

/// The 16-byte digest an envelope is remembered by (see [`SeenEnvelopes`]).
fn envelope_digest(envelope: &[u8]) -> [u8; 16] {
    let full = passage_crypto::primitives::sha256(&[envelope]);
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&full[..16]);
    digest
}

impl Conversations {
    /// Seals `receipt` to contact `id` with the ratchet `consumed` left, if the contact
    /// has a queue to send it to.
    pub(super) fn seal_receipt<R: CryptoRng + ?Sized>(
        &self,
        id: ContactId,
        receipt: Content,
        consumed: &Consumed,
        rng: &mut R,
    ) -> Result<SealedReceipt, AgentError> {
        if self
            .contacts
            .get(&id)
            .is_none_or(|c| c.their_queue.is_none())
        {
            return Ok(SealedReceipt(None));
        }
        let mut ratchet = RatchetState::from_snapshot(&decode(&consumed.ratchet)?)
            .map_err(|_| AgentError::Record(RecordError))?;
        let outbox = seal(&mut ratchet, id, &receipt, OutboxKind::Receipt, None, rng)?;
        Ok(SealedReceipt(Some((encode(&ratchet.snapshot())?, outbox))))
    }

    /// The digests of the last envelopes received from contact `id`.
    fn seen_envelopes(&self, id: ContactId) -> Result<SeenEnvelopes, AgentError> {
        match self.vault.get(seen_envelopes_key(id))? {
            Some(bytes) => Ok(decode(&bytes)?),
            None => Ok(SeenEnvelopes::default()),
        }
    }
}

/// Why a delivery produced no ordinary events.
enum DeliveryFailure {
    /// Worthless (forged, replayed, malformed): acknowledge and drop it.
    Dropped(DroppedReason, Option<String>),
    /// Our side failed (the vault): leave it at the relay and try again later.
    Retry(AgentError),
}

/// The timer a received message is held under: the shorter of the sender's (carried in
/// the message) and ours (which applies at once to what we hold, even before the
/// contact has processed our change). `None`: no timer.
pub(super) fn effective_timer(sender: u32, ours: u32) -> Option<u32> {
    match (sender, ours) {
        (0, 0) => None,
        (0, t) | (t, 0) => Some(t),
        (a, b) => Some(a.min(b)),
    }
}
