//! A relay changed its key: every address this profile keeps for it moves to the new pin.
//!
//! A relay rotating its key presents, to a client holding the old pin, an endorsement of
//! the new key signed by the old one (checked by the transport; see
//! `passage_transport::KeyRotation`). The agent then calls
//! [`Conversations::move_relay`], which rewrites, in one vault transaction, the profile's
//! default relay (so new invitations carry the new pin), the relay of every queue it
//! receives on, and every contact's queue it sends to on that relay. The relay's host and
//! port stay; only the pin changes.

use passage_wire::{QueueAddress, RelayAddress, RelayPin};

use super::super::error::AgentError;
use super::super::records::*;
use super::Conversations;

impl Conversations {
    /// The relays this profile keeps an address of at `current`'s host and port with
    /// another pin (each once).
    pub fn relays_at(&self, current: &RelayAddress) -> Result<Vec<RelayAddress>, AgentError> {
        let mut found: Vec<RelayAddress> = Vec::new();
        let mut note = |address: RelayAddress| {
            if address.host() == current.host()
                && address.port() == current.port()
                && address.pin() != current.pin()
                && !found.contains(&address)
            {
                found.push(address);
            }
        };
        if let Ok(address) = self.profile.default_relay.parse() {
            note(address);
        }
        for record in self.contacts.values() {
            if let Ok(address) = record.own_queue.relay.parse() {
                note(address);
            }
            if let Some(queue) = record
                .their_queue
                .as_ref()
                .and_then(|q| QueueAddress::decode(&q.address).ok())
            {
                note(queue.relay);
            }
        }
        Ok(found)
    }

    /// Moves every address of `relay` this profile keeps to `new_pin`. Returns how many
    /// records changed (0 if none named the relay, or all had the new pin already).
    pub fn move_relay(
        &mut self,
        relay: &RelayAddress,
        new_pin: RelayPin,
    ) -> Result<usize, AgentError> {
        let moved = RelayAddress::new(
            new_pin,
            relay.host().clone(),
            core::num::NonZeroU16::new(relay.port()).ok_or(AgentError::Record(RecordError))?,
        );
        if moved == *relay {
            return Ok(0);
        }
        let old_text = relay.to_string();
        let new_text = moved.to_string();
        let mut contacts = Vec::new();
        for (&id, record) in &self.contacts {
            let own = record.own_queue.relay == old_text;
            let theirs = record
                .their_queue
                .as_ref()
                .and_then(|q| QueueAddress::decode(&q.address).ok())
                .filter(|q| q.relay == *relay);
            if !own && theirs.is_none() {
                continue;
            }
            let mut updated: ContactRecord = decode(&encode(record)?)?;
            if own {
                updated.own_queue.relay = new_text.clone();
            }
            if let (Some(queue), Some(their)) = (theirs, updated.their_queue.as_mut()) {
                their.address = QueueAddress {
                    relay: moved.clone(),
                    sender_id: queue.sender_id,
                }
                .encode();
            }
            contacts.push((id, updated));
        }
        let profile_moves = self.profile.default_relay == old_text;
        if contacts.is_empty() && !profile_moves {
            return Ok(0);
        }
        let mut profile = None;
        if profile_moves {
            let mut updated: ProfileRecord = decode(&encode(&self.profile)?)?;
            updated.default_relay = new_text;
            profile = Some(updated);
        }
        self.vault.transaction(|tx| {
            for (id, record) in &contacts {
                tx.put(contact_key(*id), encode(record)?)?;
            }
            if let Some(profile) = &profile {
                tx.put(PROFILE, encode(profile)?)?;
            }
            Ok::<_, AgentError>(())
        })?;
        let changed = contacts.len() + usize::from(profile.is_some());
        for (id, record) in contacts {
            self.contacts.insert(id, record);
        }
        if let Some(profile) = profile {
            self.profile = profile;
        }
        Ok(changed)
    }
}
