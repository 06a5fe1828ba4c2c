//! Voice messages: a note cut into chunks that travel as ratchet messages of their
//! own, and put back together (and checked) on the other side before it is shown.
//!
//! Sending commits every chunk's envelope to the outbox in one transaction with the
//! history entry and the note, so a transfer cut by a dropped connection resumes with
//! the chunks the relay has not yet accepted (each leaves the outbox at its `OK`), and
//! a full contact queue (`ERR QUOTA`) only makes the rest wait. Receiving keeps each
//! chunk in the vault until the last one is in; then, in one transaction, the note is
//! checked (length, SHA-256, a valid [`passage_voice::VoiceNote`]), stored with its
//! history entry, its chunks deleted and one receipt queued for the whole message.

use passage_crypto::primitives::sha256;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::super::content::{
    Content, MAX_VOICE_CHUNK_DATA, MAX_VOICE_LEN, VoiceChunk, voice_chunk_count,
};
use super::super::error::AgentError;
use super::super::event::{AgentEvent, DroppedReason};
use super::super::ids::{ContactId, MessageId};
use super::super::records::*;
use super::Conversations;
use super::send::seal;

/// Voice messages of one contact that may be arriving at once (each holds up to a
/// mebibyte of chunks in the vault until it is whole).
pub(crate) const MAX_PENDING_VOICE: usize = 8;

/// What receiving one chunk came to.
pub(super) enum ChunkOutcome {
    /// Stored (or already had); the message is not complete yet.
    Stored,
    /// The message is complete.
    Complete(Vec<AgentEvent>),
    /// The chunk disagrees with the others, or the whole does not check out.
    Malformed,
}

impl Conversations {
    /// Queues voice note `note` (the bytes of a [`passage_voice::VoiceNote`], which
    /// plays for `duration_ms`) to a contact, as one transaction of chunks. Returns its id.
    pub fn compose_voice<R: CryptoRng + ?Sized>(
        &mut self,
        name: &str,
        note: &[u8],
        duration_ms: u32,
        now: u64,
        rng: &mut R,
    ) -> Result<MessageId, AgentError> {
        if note.is_empty() || note.len() > MAX_VOICE_LEN {
            return Err(AgentError::VoiceTooLarge {
                len: note.len(),
                max: MAX_VOICE_LEN,
            });
        }
        let id = self.find(name)?;
        let contact = &self.contacts[&id];
        if contact.their_queue.is_none() {
            return Err(AgentError::NotConnected);
        }
        let timer_secs = contact.timer_secs;
        let mut ratchet = self.ratchet(id)?;
        let msg_id = MessageId::generate(rng);
        let count = voice_chunk_count(note.len());
        let count16 = u16::try_from(count).map_err(|_| AgentError::VoiceTooLarge {
            len: note.len(),
            max: MAX_VOICE_LEN,
        })?;
        let digest = sha256(&[note]);
        let first_seq = self.next_seq;
        let msg_seq = first_seq + count as u64;
        let mut outbox = Vec::with_capacity(count);
        for index in 0..count16 {
            let start = (usize::from(index) * MAX_VOICE_CHUNK_DATA).min(note.len());
            let end = (start + MAX_VOICE_CHUNK_DATA).min(note.len());
            let chunk = VoiceChunk {
                id: msg_id,
                sent_at: now,
                timer_secs,
                total_len: note.len() as u32,
                digest,
                count: count16,
                index,
                data: note[start..end].to_vec(),
            };
            let last = usize::from(index) + 1 == count;
            let kind = OutboxKind::VoiceChunk {
                id: *msg_id.as_bytes(),
                index,
                count: count16,
            };
            let item = seal(
                &mut ratchet,
                id,
                &Content::Voice(chunk),
                kind,
                last.then_some(msg_seq),
                rng,
            )?;
            outbox.push(encode(&item)?);
        }
        let record = MessageRecord {
            id: msg_id,
            direction: Direction::Outgoing,
            kind: EntryKind::Voice {
                duration_ms,
                bytes: note.len() as u32,
            },
            sent_at: now,
            received_at: None,
            status: MessageStatus::Queued,
            expires_at: (timer_secs > 0).then(|| now + u64::from(timer_secs)),
        };
        self.vault.transaction(|tx| {
            tx.put(ratchet_key(id), encode(&ratchet.snapshot())?)?;
            for (i, item) in outbox.iter().enumerate() {
                tx.put(outbox_key(first_seq + i as u64), item)?;
            }
            tx.put(message_key(id, msg_seq), encode(&record)?)?;
            tx.put(message_index_key(id, &msg_id), msg_seq.to_be_bytes())?;
            // In no-history mode too, until delivered (the receipt deletes it).
            tx.put(voice_key(id, msg_seq), note)?;
            tx.put(NEXT_SEQ, (msg_seq + 1).to_be_bytes())?;
            Ok::<_, AgentError>(())
        })?;
        self.next_seq = msg_seq + 1;
        self.note_expiry(record.expires_at);
        Ok(msg_id)
    }

    /// The voice note of message `msg` in a contact's history, if it is there.
    pub fn voice_note(
        &self,
        name: &str,
        msg: &MessageId,
    ) -> Result<Zeroizing<Vec<u8>>, AgentError> {
        let id = self.find(name)?;
        let seq = self
            .vault
            .get(message_index_key(id, msg))?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map(u64::from_be_bytes)
            .ok_or(AgentError::NoSuchVoiceMessage)?;
        self.vault
            .get(voice_key(id, seq))?
            .ok_or(AgentError::NoSuchVoiceMessage)
    }

    /// Takes one chunk of a voice message from contact `id` (already decrypted:
    /// `consumed` is the ratchet step, written in the same transaction).
    pub(super) fn receive_voice_chunk<R: CryptoRng + ?Sized>(
        &mut self,
        id: ContactId,
        chunk: VoiceChunk,
        consumed: &super::receive::Consumed,
        now: u64,
        rng: &mut R,
    ) -> Result<ChunkOutcome, AgentError> {
        let msg = chunk.id;
        // A chunk of a message already complete: nothing more to do.
        if self.vault.contains_key(message_index_key(id, &msg)) {
            self.vault.transaction(|tx| consumed.put(tx, id))?;
            return Ok(ChunkOutcome::Stored);
        }
        let pending_key = voice_pending_key(id, &msg);
        let header = match self.vault.get(&pending_key)? {
            Some(bytes) => Some(decode::<VoicePending>(&bytes)?),
            None => None,
        };
        if let Some(header) = &header
            && (
                header.sent_at,
                header.timer_secs,
                header.total_len,
                header.digest,
                header.count,
            ) != (
                chunk.sent_at,
                chunk.timer_secs,
                chunk.total_len,
                chunk.digest,
                chunk.count,
            )
        {
            self.vault.transaction(|tx| consumed.put(tx, id))?;
            return Ok(ChunkOutcome::Malformed);
        }
        // A contact may keep only a few voice messages half-sent at once: its chunks go
        // in order, so more means abandoned transfers or a contact filling the vault.
        if header.is_none()
            && self.vault.keys_with_prefix(voice_pending_prefix(id)).len() >= MAX_PENDING_VOICE
        {
            self.vault.transaction(|tx| consumed.put(tx, id))?;
            return Ok(ChunkOutcome::Malformed);
        }
        let part_key = voice_part_key(id, &msg, chunk.index);
        let have = self.vault.keys_with_prefix(voice_parts_of(id, &msg));
        let already = self.vault.contains_key(&part_key);
        let received = have.len() + usize::from(!already);
        if received < usize::from(chunk.count) {
            let header_bytes = match header {
                Some(_) => None,
                None => Some(encode(&VoicePending {
                    sent_at: chunk.sent_at,
                    timer_secs: chunk.timer_secs,
                    total_len: chunk.total_len,
                    digest: chunk.digest,
                    count: chunk.count,
                })?),
            };
            self.vault.transaction(|tx| {
                consumed.put(tx, id)?;
                if let Some(bytes) = &header_bytes {
                    tx.put(&pending_key, bytes)?;
                }
                if !already {
                    tx.put(&part_key, &chunk.data)?;
                }
                Ok::<_, AgentError>(())
            })?;
            return Ok(ChunkOutcome::Stored);
        }

        // The last chunk: put the note together and check it.
        let total = chunk.total_len as usize;
        let mut note = Zeroizing::new(Vec::with_capacity(total));
        for index in 0..chunk.count {
            if index == chunk.index {
                note.extend_from_slice(&chunk.data);
            } else {
                match self.vault.get(voice_part_key(id, &msg, index))? {
                    Some(part) => note.extend_from_slice(&part),
                    None => return Err(AgentError::Record(RecordError)),
                }
            }
        }
        let doomed: Vec<Zeroizing<Vec<u8>>> = have;
        let valid = note.len() == total
            && sha256(&[&note[..]]) == chunk.digest
            && passage_voice::VoiceNote::from_bytes(&note).is_ok();
        if !valid {
            self.vault.transaction(|tx| {
                consumed.put(tx, id)?;
                tx.delete(&pending_key)?;
                for key in &doomed {
                    tx.delete(&**key)?;
                }
                Ok::<_, AgentError>(())
            })?;
            return Ok(ChunkOutcome::Malformed);
        }
        let Ok(voice) = passage_voice::VoiceNote::from_bytes(&note) else {
            return Ok(ChunkOutcome::Malformed);
        };
        let duration_ms = voice.duration_ms();
        let name = self.contacts[&id].name.clone();
        let no_history = self.contacts[&id].no_history;
        let own_timer = self.contacts[&id].timer_secs;
        // One receipt for the whole message.
        let receipt = self.seal_receipt(id, Content::Receipt { ids: vec![msg] }, consumed, rng)?;
        let outbox_seq = self.next_seq;
        let msg_seq = outbox_seq + 1;
        let record = MessageRecord {
            id: msg,
            direction: Direction::Incoming,
            kind: EntryKind::Voice {
                duration_ms,
                bytes: total as u32,
            },
            sent_at: chunk.sent_at,
            received_at: Some(now),
            status: MessageStatus::Received,
            expires_at: super::receive::effective_timer(chunk.timer_secs, own_timer)
                .map(|t| now + u64::from(t)),
        };
        self.vault.transaction(|tx| {
            receipt.put(tx, id, consumed, outbox_seq)?;
            tx.delete(&pending_key)?;
            for key in &doomed {
                tx.delete(&**key)?;
            }
            if !no_history {
                tx.put(message_key(id, msg_seq), encode(&record)?)?;
                tx.put(voice_key(id, msg_seq), &note[..])?;
            }
            tx.put(message_index_key(id, &msg), msg_seq.to_be_bytes())?;
            tx.put(NEXT_SEQ, (outbox_seq + 2).to_be_bytes())?;
            Ok::<_, AgentError>(())
        })?;
        self.next_seq = outbox_seq + 2;
        if !no_history {
            self.note_expiry(record.expires_at);
        }
        Ok(ChunkOutcome::Complete(vec![AgentEvent::Voice {
            contact: name,
            id: msg,
            duration_ms,
            bytes: total as u32,
            note,
            sent_at: chunk.sent_at,
            received_at: now,
        }]))
    }
}

/// The reason a voice message that did not check out is dropped.
pub(super) const MALFORMED: DroppedReason = DroppedReason::Malformed;
