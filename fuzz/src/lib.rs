//! Checks shared by the fuzz targets: every decoder is run on a frame, and whatever
//! decodes must re-encode to the same bytes (the encodings are canonical, which is what
//! lets the relay check an authenticator over the bytes the client sent).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::LazyLock;

use passage_crypto::primitives::DhSecret;
use passage_wire::*;

struct Keys {
    recipient: AuthKey,
    sender: AuthKey,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let session = DhSecret::from_bytes([7; 32]);
    let binding = ChannelBinding::from_bytes([9; 32]);
    Keys {
        recipient: AuthKey::dummy(AuthRole::Recipient, &session, &binding),
        sender: AuthKey::dummy(AuthRole::Sender, &session, &binding),
    }
});

/// Runs every frame decoder on `frame` and checks what decodes.
pub fn check_frame(frame: &[u8]) {
    assert!(!frame.is_empty() && frame.len() <= MAX_FRAME_LEN);
    if let Ok(unverified) = UnverifiedCommand::decode(frame) {
        check_command(frame, unverified);
    }
    if let Ok(reply) = Reply::decode(frame) {
        assert_eq!(reply.encode(), frame, "reply re-encodes");
    }
    if let Ok(hello) = RelayHello::decode(frame) {
        assert_eq!(hello.encode(), frame);
    }
    if let Ok(hello) = ClientHello::decode(frame) {
        assert_eq!(hello.encode(), frame);
    }
    check_addresses(frame);
}

/// Binary address decoders: what decodes re-encodes, and prints as text that parses back.
pub fn check_addresses(bytes: &[u8]) {
    if let Ok(queue) = QueueAddress::decode(bytes) {
        assert_eq!(queue.encode(), bytes, "queue address re-encodes");
        let text = queue.relay.to_string();
        assert_eq!(text.parse::<RelayAddress>().unwrap(), queue.relay);
    }
    if let Ok(relay) = RelayAddress::decode(bytes) {
        assert_eq!(relay.encode(), bytes, "relay address re-encodes");
    }
}

fn check_command(frame: &[u8], unverified: UnverifiedCommand) {
    let command = unverified.command().clone();
    let corr_id = unverified.corr_id();
    let key = command.auth_role().map(|role| match role {
        AuthRole::Recipient => &KEYS.recipient,
        AuthRole::Sender => &KEYS.sender,
    });
    // A dummy key never verifies, whatever the authenticator.
    match key {
        Some(key) => assert!(unverified.verify(key).is_err()),
        None => assert!(unverified.accept_unauthenticated().is_ok()),
    }
    // Canonical: re-encoding gives the same bytes, except the authenticator itself.
    let again = command
        .encode(corr_id, key)
        .expect("a decoded command re-encodes");
    assert_eq!(again.len(), frame.len());
    let entity_len = match command.entity() {
        Entity::None => 1,
        _ => 25,
    };
    let auth_at = 8 + entity_len + 1;
    let auth_end = auth_at + if key.is_some() { 32 } else { 0 };
    assert_eq!(again[..auth_at], frame[..auth_at]);
    assert_eq!(again[auth_end..], frame[auth_end..]);
}

/// A fixed-output RNG (a 64-bit LCG): fuzz runs must be reproducible, and nothing here
/// needs unpredictable keys.
#[derive(Debug)]
pub struct FixedRng(pub u64);

impl rand_core::TryRng for FixedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.try_next_u64().map(|v| (v >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = (self.try_next_u64()? >> 33) as u8;
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FixedRng {}
