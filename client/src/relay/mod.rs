//! The client's link to a relay: the client side of the relay protocol
//! (`passage-wire`) over a `passage-transport` block stream.
//!
//! ```text
//!  RelayLink (tokio)  ── requests ──►  RelayClientSession (sans-IO)  ── blocks ──► BlockStream
//!    create_queue / send / subscribe      correlates replies by CorrId,               │
//!    get / ack / delete_queue / ping      caches per-queue AuthKeys,                  ▼
//!    next_event ◄── Event::Message/End ◄─ opens MSG with the DeliveryKey ◄── blocks ◄ relay
//! ```
//!
//! [`RelayClientSession`] is the protocol core: no sockets, no clock, randomness as an
//! argument (see [`session`] for its calling order). [`RelayLink`] only moves its
//! blocks over a connection and hands replies back to the callers. [`Reconnect`]
//! (in [`reconnect`]) is the sans-IO policy of when to connect again after a failure
//! or a cut: backoff with jitter, for ever or until a deadline.
//!
//! ## Quick start
//!
//! ```no_run
//! # async fn demo(address: passage_wire::RelayAddress) -> Result<(), passage_client::relay::LinkError> {
//! use passage_client::relay::{Event, RelayLink, SenderCredentials};
//! use passage_crypto::ENVELOPE_LEN;
//! use passage_transport::ConnectOptions;
//!
//! // The recipient creates a queue and subscribes to it.
//! let mut recipient = RelayLink::connect(&address, &ConnectOptions::default()).await?;
//! let queue = recipient.create_queue(None).await?;
//! recipient.subscribe(&queue).await?;
//!
//! // A sender (who got the sender id from an invitation) sends to it.
//! let sender = RelayLink::connect(&address, &ConnectOptions::default()).await?;
//! let mut credentials = SenderCredentials::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
//! sender.send(queue.sender_id(), &credentials, &[0x42; ENVELOPE_LEN]).await?;
//! credentials.mark_key_fixed(); // the relay now knows the sender key
//!
//! if let Some(Event::Message { msg_id, body, .. }) = recipient.next_event().await {
//!     assert_eq!(body[0], 0x42);
//!     recipient.ack(&queue, msg_id).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! Nothing here logs. Ids, keys and credentials print redacted in `Debug`; errors
//! carry none of them.

mod credentials;
mod error;
mod link;
pub mod reconnect;
pub mod session;

pub use credentials::{QueueCredentials, SenderCredentials};
pub use error::{LinkError, ProtocolError};
pub use link::{
    DEFAULT_REPLY_TIMEOUT, HELLO_COALESCE, LinkHandle, MAX_IN_FLIGHT, RelayLink, read_hello,
};
pub use reconnect::{
    DEFAULT_COMMAND_DEADLINE, Persistence, Reconnect, ReconnectAction, RetryPolicy,
};
pub use session::{
    AUTH_KEY_CACHE_ENTRIES, AwaitingHello, Completion, Event, HelloProgress, MAX_QUEUES_PER_LINK,
    Output, ReceivedMessage, RelayClientSession, Undeliverable,
};

#[cfg(test)]
mod tests;
