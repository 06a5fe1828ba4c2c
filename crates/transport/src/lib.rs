//! # passage-transport
//!
//! Moves fixed-size [`Block`]s between a Passage client and a relay, over
//! QUIC or over TLS 1.3 on TCP, authenticated by the relay key's pin.
//!
//! ```text
//!  client                                                   relay
//!  ──────                                                   ─────
//!  connect(host, port, pin, opts)                 listen(bind, identity, opts)
//!    ├─ QUIC (UDP :port) ──────────┐           ┌───────── UDP :port ─┤
//!    │   after 250 ms, also:       ├─ TLS 1.3 ─┤                     ├─ Listener::accept()
//!    └─ TCP (:port, or SOCKS5) ────┘ ALPN      └───────── TCP :port ─┘     → Accepted { stream, peer }
//!          │                         passage/1
//!          ▼                                                      ▼
//!     BlockStream  ── send_block(&Block) / recv_block() → Option<Block> ──  BlockStream
//!                     channel_binding(): RFC 9266 tls-exporter, same on both ends
//! ```
//!
//! Trust comes from the [`RelayPin`] in the relay address (SHA-256 of the relay
//! certificate's SubjectPublicKeyInfo), never from a CA. TLS 1.3 only, no
//! session resumption, no tickets, no 0-RTT. rustls runs on the *ring*
//! provider, chosen explicitly. Nothing here logs; errors carry no host,
//! address or key.
//!
//! ## Quick start
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use passage_transport::{Block, ConnectOptions, RelayIdentity, ServerOptions, connect, listen};
//!
//! // Relay: create the identity once and persist `to_pkcs8_der()`; the pin
//! // goes into the relay address (`passage_wire::RelayAddress`).
//! let identity = RelayIdentity::generate()?;
//! let pin = identity.pin();
//! let mut listener = listen("127.0.0.1:0".parse()?, &identity, ServerOptions::default()).await?;
//! let port = listener.local_addr().port();
//! tokio::spawn(async move {
//!     while let Some(accepted) = listener.accept().await {
//!         let mut stream = accepted.stream;
//!         while let Ok(Some(block)) = stream.recv_block().await {
//!             let _ = stream.send_block(&block).await; // echo
//!         }
//!     }
//! });
//!
//! // Client: host, port and pin come from the relay address
//! // (or use `connect_address`).
//! let mut stream = connect("127.0.0.1", port, &pin, &ConnectOptions::default()).await?;
//! stream.send_block(&Block::zeroed()).await?;
//! let echoed = stream.recv_block().await?;
//! stream.close().await?;
//! # let _ = echoed; Ok(()) }
//! ```
//!
//! Modules: [`identity`](RelayIdentity) (key, certificate, pin), `tls`
//! (rustls configs, pin verifier), `quic`, `tcp`, `read_ahead` (large socket
//! reads under TLS), `rotation` ([`KeyRotation`]: the old key endorses the new
//! one during an overlap), `socks` (SOCKS5 client), `source_budget`
//! ([`SourceBudget`]: per-source token buckets, e.g. for handshakes),
//! `stream` ([`BlockStream`]), `client` ([`connect`]) and `server`
//! ([`listen`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod block;
mod client;
mod error;
mod identity;
mod quic;
mod read_ahead;
mod rotation;
mod server;
mod socks;
mod source_budget;
mod stream;
mod tcp;
mod tls;

pub use block::{BLOCK_LEN, Block};
pub use client::{
    ConnectOptions, QUIC_GRACE_AFTER_TCP_FAILS, TransportMode, connect, connect_address,
};
pub use error::{IdentityError, ParseError, ProxyError, TransportError};
pub use identity::{RelayIdentity, pin_of_certificate};
pub use passage_wire::{RelayAddress, RelayPin};
pub use quic::{QUIC_PREAMBLE, SERVER_UDP_SOCKET_BUFFER, UDP_SOCKET_BUFFER};
pub use rotation::{ENDORSEMENT_MAGIC, KeyRotation, MAX_OVERLAP_SECS};
pub use server::{Accepted, Listener, PeerAddr, ServerOptions, listen};
pub use socks::{MAX_SOCKS_HOST_LEN, Socks5Proxy};
pub use source_budget::{MAX_TRACKED_SOURCES, SourceBudget, SourceKey, SourceRate};
pub use stream::{BlockReceiver, BlockSender, BlockStream, QUIC_FINISH_LINGER, TransportKind};
pub use tls::{ALPN, CHANNEL_BINDING_LEN};
