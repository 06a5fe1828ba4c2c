//! Talking to a relay with the real client link ([`RelayLink`]): connect options, test
//! envelopes that name their queue and counter, and bounded waits for events.

use std::time::Duration;

use getrandom::SysRng;
use passage_client::relay::{Event, LinkError, RelayLink};
use passage_crypto::ENVELOPE_LEN;
use passage_transport::{ConnectOptions, TransportMode};
use passage_wire::{MsgId, RecipientId, RelayAddress};
use rand_core::UnwrapErr;

/// How long a connection attempt may take (both transports, loopback).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect options for one transport, with a short handshake timeout.
pub fn options(mode: TransportMode) -> ConnectOptions {
    let mut options = ConnectOptions::default();
    options.mode = mode;
    options.handshake_timeout = CONNECT_TIMEOUT;
    options
}

/// Connects a link to `address` over `mode`.
pub async fn connect(address: &RelayAddress, mode: TransportMode) -> Result<RelayLink, LinkError> {
    RelayLink::connect(address, &options(mode)).await
}

/// The system RNG, as the client uses it.
pub fn rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

/// A test envelope naming its queue and a counter (bytes 0..4 and 4..12), the rest
/// filled from both so that every envelope's content is unique.
pub fn envelope(queue: u32, counter: u64) -> Box<[u8; ENVELOPE_LEN]> {
    let mut body = Box::new([0u8; ENVELOPE_LEN]);
    body[..4].copy_from_slice(&queue.to_be_bytes());
    body[4..12].copy_from_slice(&counter.to_be_bytes());
    let seed = counter.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(queue);
    for (i, byte) in body.iter_mut().enumerate().skip(12) {
        *byte = (seed >> ((i % 8) * 8)) as u8 ^ (i as u8);
    }
    body
}

/// The queue and counter written by [`envelope`], if `body` is exactly such an envelope.
pub fn envelope_tag(body: &[u8; ENVELOPE_LEN]) -> Option<(u32, u64)> {
    let queue = u32::from_be_bytes(body[..4].try_into().ok()?);
    let counter = u64::from_be_bytes(body[4..12].try_into().ok()?);
    (*envelope(queue, counter) == *body).then_some((queue, counter))
}

/// A message event, reduced to what tests check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The queue.
    pub recipient_id: RecipientId,
    /// The relay's message id.
    pub msg_id: MsgId,
    /// The [`envelope_tag`] of the body (`None` if it was not a test envelope).
    pub tag: Option<(u32, u64)>,
}

/// Waits up to `limit` for the next event; `None` if none came (or the link ended).
pub async fn next_event(link: &mut RelayLink, limit: Duration) -> Option<Event> {
    tokio::time::timeout(limit, link.next_event())
        .await
        .ok()
        .flatten()
}

/// Waits up to `limit` for the next event and reduces a message to [`Delivered`];
/// `Err` carries any other event (or `None`: nothing came).
pub async fn next_message(
    link: &mut RelayLink,
    limit: Duration,
) -> Result<Delivered, Option<Event>> {
    match next_event(link, limit).await {
        Some(Event::Message {
            recipient_id,
            msg_id,
            body,
            ..
        }) => Ok(Delivered {
            recipient_id,
            msg_id,
            tag: envelope_tag(&body),
        }),
        other => Err(other),
    }
}
