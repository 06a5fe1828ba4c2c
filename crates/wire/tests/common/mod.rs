//! Shared helpers: a deterministic RNG, block piping, and one relay connection with
//! one queue, as both ends see it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::DhSecret;
use passage_wire::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Frames → blocks, flushing at the end.
pub fn to_blocks(frames: &[Vec<u8>]) -> Vec<Block> {
    let mut enc = FrameEncoder::new();
    for frame in frames {
        enc.push_frame(frame).unwrap();
    }
    enc.flush();
    std::iter::from_fn(|| enc.poll_block()).collect()
}

/// Blocks → frames.
pub fn from_blocks(blocks: &[Block]) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut dec = FrameDecoder::new();
    let mut frames = Vec::new();
    for block in blocks {
        dec.handle_block(block)?;
        frames.extend(std::iter::from_fn(|| dec.poll_frame()));
    }
    Ok(frames)
}

pub fn body(seed: u8) -> Box<[u8; ENVELOPE_LEN]> {
    Box::new(core::array::from_fn(|i| {
        (i as u8).wrapping_mul(31).wrapping_add(seed)
    }))
}

/// One connection (relay session key, channel binding) and one queue on it, with every
/// secret both sides hold.
pub struct World {
    pub session: DhSecret,
    pub binding: ChannelBinding,
    pub recipient_auth: DhSecret,
    pub recipient_dh: DhSecret,
    pub sender_auth: DhSecret,
    pub relay_queue: DhSecret,
    pub ids: QueueIds,
}

impl World {
    pub fn new(seed: u64) -> Self {
        let mut rng = rng(seed);
        let session = DhSecret::generate(&mut rng);
        let mut binding = [0u8; 32];
        rand::Rng::fill_bytes(&mut rng, &mut binding);
        let relay_queue = DhSecret::generate(&mut rng);
        let ids = QueueIds::generate(&mut rng, relay_queue.public_key());
        Self {
            session,
            binding: ChannelBinding::from_bytes(binding),
            recipient_auth: DhSecret::generate(&mut rng),
            recipient_dh: DhSecret::generate(&mut rng),
            sender_auth: DhSecret::generate(&mut rng),
            relay_queue,
            ids,
        }
    }

    /// The client's key for `role` on this connection.
    pub fn client_key(&self, role: AuthRole) -> AuthKey {
        let secret = match role {
            AuthRole::Recipient => &self.recipient_auth,
            AuthRole::Sender => &self.sender_auth,
        };
        AuthKey::derive(role, secret, &self.session.public_key(), &self.binding).unwrap()
    }

    pub fn new_queue(&self) -> NewQueue {
        NewQueue {
            recipient_auth_key: self.recipient_auth.public_key(),
            recipient_dh_key: self.recipient_dh.public_key(),
            password: Some(QueuePassword::new(b"ngo shared secret").unwrap()),
        }
    }

    /// The relay's view: find the key for a decoded command the way a relay does,
    /// with a dummy key for a queue it does not have.
    pub fn relay_key(&self, command: &Command) -> Option<AuthKey> {
        let role = command.auth_role()?;
        let dummy = || AuthKey::dummy(role, &self.session, &self.binding);
        let derive = |public| AuthKey::derive(role, &self.session, public, &self.binding).ok();
        Some(match command {
            Command::New(new) => derive(&new.recipient_auth_key).unwrap_or_else(dummy),
            Command::Sub(id)
            | Command::Get(id)
            | Command::Del(id)
            | Command::Ack {
                recipient_id: id, ..
            } => {
                if *id == self.ids.recipient_id {
                    derive(&self.recipient_auth.public_key()).unwrap_or_else(dummy)
                } else {
                    dummy()
                }
            }
            // A first SEND fixes the sender key it carries; later ones use the stored one.
            Command::Send(send) if send.sender_id == self.ids.sender_id => {
                match &send.sender_auth_key {
                    Some(key) => derive(key),
                    None => derive(&self.sender_auth.public_key()),
                }
                .unwrap_or_else(dummy)
            }
            _ => dummy(),
        })
    }

    /// Decodes and authenticates every frame of a block as the relay would.
    pub fn relay_accepts(&self, block: &Block) -> Result<Vec<VerifiedCommand>, String> {
        let frames = from_blocks(std::slice::from_ref(block)).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for frame in frames {
            let unverified = UnverifiedCommand::decode(&frame).map_err(|e| e.to_string())?;
            let verified = match self.relay_key(unverified.command()) {
                Some(key) => unverified.verify(&key),
                None => unverified.accept_unauthenticated(),
            };
            out.push(verified.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    pub fn relay_delivery_key(&self) -> DeliveryKey {
        DeliveryKey::for_relay(&self.relay_queue, &self.recipient_dh.public_key()).unwrap()
    }

    pub fn client_delivery_key(&self) -> DeliveryKey {
        DeliveryKey::for_recipient(&self.recipient_dh, &self.ids.relay_dh_key).unwrap()
    }

    /// The recipient's view of a block of MSG replies: every frame must be a MSG for
    /// its queue that opens.
    pub fn client_opens(&self, block: &Block) -> Result<Vec<[u8; ENVELOPE_LEN]>, String> {
        let frames = from_blocks(std::slice::from_ref(block)).map_err(|e| e.to_string())?;
        let key = self.client_delivery_key();
        let mut out = Vec::new();
        for frame in frames {
            let Reply::Msg(delivery) = Reply::decode(&frame).map_err(|e| e.to_string())? else {
                return Err("not a MSG".into());
            };
            if delivery.recipient_id != self.ids.recipient_id {
                return Err("unknown queue".into());
            }
            out.push(*open_delivery(&key, &delivery).map_err(|e| e.to_string())?);
        }
        Ok(out)
    }
}
