//! Authentication of commands: finding the key a command must be signed with (from
//! the store's in-memory index or this connection's caches, or a dummy for a queue that
//! does not exist) and verifying it, which yields the wire crate's `VerifiedCommand`
//! proof that [`Session`]'s `act` requires.
//!
//! One path for present and absent queues: the key comes from a hash-map lookup in
//! memory ([`Store::queue_keys`], [`Store::queue_keys_by_sender`]), never from a read of
//! the file, and costs one key derivation either way (a dummy key costs what a real one
//! does). A queue's record is read only after its command verified (`SUB` needs it), so
//! someone holding an old invitation learns nothing from how long `ERR AUTH` takes.
//! `benches/auth.rs` times both cases in one run.

use passage_crypto::primitives::DhPublic;
use passage_wire::{AuthKey, AuthRole, Command, RecipientId, UnverifiedCommand, VerifiedCommand};

use super::Session;
use crate::store::{QueueRecord, Store};

/// Authentication keys cached per connection (real and dummy alike). Bounds memory;
/// a client rarely uses more queues than this on one connection at once.
pub const AUTH_CACHE_ENTRIES: usize = 64;

/// Sender ids whose fixed sender key and queue one connection remembers, so that its
/// `SEND`s need no store read. A fixed key never changes; a queue deleted meanwhile
/// fails the append itself, which answers as a missing queue does.
pub const SENDER_CACHE_ENTRIES: usize = 64;

/// What a verified command acts on.
pub(super) enum Target {
    /// The queue's record, read from the store once the command verified (`SUB`).
    Record(QueueRecord),
    /// A queue known from the index or this connection's caches: its recipient id.
    Known(RecipientId),
}

impl Target {
    pub(super) fn recipient_id(&self) -> RecipientId {
        match self {
            Target::Record(record) => record.recipient_id,
            Target::Known(id) => *id,
        }
    }
}

impl Session {
    /// Finds the key for the command's queue (or a dummy) and verifies. `Ok(None)` is
    /// an authentication failure; `Err` a store fault.
    #[allow(clippy::type_complexity)]
    pub(super) fn verify(
        &mut self,
        command: UnverifiedCommand,
        store: &dyn Store,
    ) -> Result<Option<(VerifiedCommand, Option<Target>)>, ()> {
        // The caches: a sender whose key is fixed, an acknowledgement on a subscription.
        let cached = match command.command() {
            Command::Send(send) => self
                .senders
                .iter()
                .find(|(sid, ..)| *sid == send.sender_id)
                .map(|&(sid, rid, fixed)| {
                    let key = send.sender_auth_key.is_none_or(|k| k == fixed);
                    (AuthRole::Sender, *sid.as_bytes(), rid, key.then_some(fixed))
                }),
            Command::Ack { recipient_id, .. } => self.subscriptions.get(recipient_id).map(|sub| {
                let id = *recipient_id;
                (AuthRole::Recipient, *id.as_bytes(), id, Some(sub.auth_key))
            }),
            _ => None,
        };
        if let Some((role, id, rid, key)) = cached {
            let auth_key = self.auth_key(role, id, key);
            return Ok(command
                .verify(&auth_key)
                .ok()
                .map(|v| (v, Some(Target::Known(rid)))));
        }
        let (role, id, keys, key) = match command.command() {
            Command::Ping => {
                return Ok(command.accept_unauthenticated().ok().map(|v| (v, None)));
            }
            Command::New(new) => (
                AuthRole::Recipient,
                [0; 24],
                None,
                Some(new.recipient_auth_key),
            ),
            Command::Send(send) => {
                let keys = store
                    .queue_keys_by_sender(&send.sender_id)
                    .map_err(|_| ())?;
                let key = match (&keys, send.sender_auth_key) {
                    (Some(k), None) => k.sender_auth_key,
                    (Some(k), Some(offered))
                        if k.sender_auth_key.is_none_or(|fixed| fixed == offered) =>
                    {
                        Some(offered)
                    }
                    _ => None,
                };
                (AuthRole::Sender, *send.sender_id.as_bytes(), keys, key)
            }
            Command::Sub(id)
            | Command::Get(id)
            | Command::Del(id)
            | Command::Ack {
                recipient_id: id, ..
            } => {
                let keys = store.queue_keys(id).map_err(|_| ())?;
                let key = keys.map(|k| k.recipient_auth_key);
                (AuthRole::Recipient, *id.as_bytes(), keys, key)
            }
            _ => return Ok(None),
        };
        let auth_key = self.auth_key(role, id, key);
        let Ok(verified) = command.verify(&auth_key) else {
            return Ok(None);
        };
        let Some(keys) = keys else {
            // NEW (no queue yet), or a queue that vanished: `act` answers.
            return Ok(Some((verified, None)));
        };
        let target = match verified.command() {
            // Remembered only once a SEND proved the key, and only a key already fixed
            // (a first SEND's may still lose a race to fix another): a prober cannot fill
            // the cache.
            Command::Send(send) => {
                if let Some(fixed) = keys.sender_auth_key {
                    if self.senders.len() >= SENDER_CACHE_ENTRIES {
                        self.senders.pop_front();
                    }
                    self.senders
                        .push_back((send.sender_id, keys.recipient_id, fixed));
                }
                Target::Known(keys.recipient_id)
            }
            // Only the recipient gets here: its record is read now (deleted meanwhile,
            // `act` answers as for a missing queue).
            Command::Sub(id) => match store.queue(id).map_err(|_| ())? {
                Some(record) => Target::Record(record),
                None => return Ok(Some((verified, None))),
            },
            _ => Target::Known(keys.recipient_id),
        };
        Ok(Some((verified, Some(target))))
    }

    /// The cached key for (role, queue id, public key), or a freshly derived one. A
    /// missing key gets a dummy key, cached the same way, so repeated probes of a queue
    /// that does not exist cost what probes of one that does cost.
    fn auth_key(&mut self, role: AuthRole, id: [u8; 24], public: Option<DhPublic>) -> AuthKey {
        let marker = public.unwrap_or(DhPublic::from_bytes([0; 32]));
        if let Some((.., key)) = self
            .auth_cache
            .iter()
            .find(|(r, i, p, _)| *r == role && *i == id && *p == marker)
        {
            return key.clone();
        }
        let key = public
            .and_then(|p| AuthKey::derive(role, &self.session_secret, &p, &self.binding).ok())
            .unwrap_or_else(|| AuthKey::dummy(role, &self.session_secret, &self.binding));
        // NEW's key is single-use: caching it would only evict useful entries.
        if id != [0; 24] {
            if self.auth_cache.len() >= AUTH_CACHE_ENTRIES {
                self.auth_cache.pop_front();
            }
            self.auth_cache.push_back((role, id, marker, key.clone()));
        }
        key
    }
}
