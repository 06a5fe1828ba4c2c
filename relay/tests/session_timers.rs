//! The session's connection deadlines on a virtual clock (no sleeping): the hello must
//! come within the handshake timeout, a silent connection is closed at the idle
//! timeout, every block received moves that deadline, and the driver's early timer
//! firings change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use passage_crypto::primitives::DhPublic;
use passage_relay::limits::Limits;
use passage_relay::metrics::Metrics;
use passage_relay::session::{Action, CloseReason, Now, ServiceConfig, Session};
use passage_relay::store::MemoryStore;
use passage_wire::{
    ChannelBinding, ClientHello, Command, CorrId, FrameEncoder, RelayHello, SUPPORTED_VERSIONS,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const HELLO_MS: u64 = 30_000;
const IDLE_MS: u64 = 600_000;

fn at(mono_ms: u64) -> Now {
    Now {
        unix_secs: 1_800_000_000 + mono_ms / 1000,
        mono_ms,
    }
}

/// A session started at `start` ms, with the timeouts above.
fn session(start: u64, rng: &mut StdRng) -> Session {
    let config = Arc::new(ServiceConfig {
        limits: Limits {
            handshake_timeout: Duration::from_millis(HELLO_MS),
            idle_timeout: Duration::from_millis(IDLE_MS),
            ..Limits::default()
        },
        ..ServiceConfig::default()
    });
    let mut session = Session::new(
        config,
        Arc::new(Metrics::default()),
        ChannelBinding::from_bytes([7; 32]),
        at(start),
        rng,
    );
    while session.poll_block().is_some() {}
    session
}

/// The close reason among the session's queued actions, if any.
fn closed(session: &mut Session) -> Option<CloseReason> {
    let mut reason = None;
    while let Some(action) = session.poll_action() {
        if let Action::Close(r) = action {
            reason = Some(r);
        }
    }
    reason
}

/// Feeds `frame` to the session at `now`.
fn send(session: &mut Session, frame: &[u8], now: Now, rng: &mut StdRng) {
    let store = MemoryStore::new();
    let mut encoder = FrameEncoder::new();
    encoder.push_frame(frame).unwrap();
    encoder.flush();
    while let Some(block) = encoder.poll_block() {
        session.handle_block(&block, &store, now, rng);
    }
    while session.poll_block().is_some() {}
}

fn client_hello() -> Vec<u8> {
    let version = RelayHello {
        versions: SUPPORTED_VERSIONS,
        session_key: DhPublic::from_bytes([9; 32]),
    }
    .negotiate(SUPPORTED_VERSIONS)
    .unwrap();
    ClientHello::new(version).encode()
}

#[test]
fn a_connection_without_a_hello_is_closed_at_the_handshake_timeout_and_not_before() {
    let mut rng = StdRng::seed_from_u64(1);
    let start = 5_000;
    let mut session = session(start, &mut rng);
    assert_eq!(session.poll_timeout(), Some(start + HELLO_MS));
    // Early firings (a driver's coarse timer) change nothing.
    for early in [start, start + 1, start + HELLO_MS - 1] {
        session.handle_timeout(at(early));
        assert_eq!(closed(&mut session), None);
        assert_eq!(session.poll_timeout(), Some(start + HELLO_MS));
    }
    session.handle_timeout(at(start + HELLO_MS));
    assert_eq!(closed(&mut session), Some(CloseReason::HelloTimeout));
    assert!(session.is_closed());
    assert_eq!(session.poll_timeout(), None);
    // Closed once: no second Close.
    session.handle_timeout(at(start + 2 * HELLO_MS));
    assert_eq!(closed(&mut session), None);
}

#[test]
fn after_the_hello_only_the_idle_deadline_counts_and_every_block_moves_it() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut session = session(0, &mut rng);
    send(&mut session, &client_hello(), at(1_000), &mut rng);
    assert!(session.is_ready());
    assert_eq!(closed(&mut session), None);
    assert_eq!(session.poll_timeout(), Some(1_000 + IDLE_MS));
    // Past the hello deadline: nothing happens to a ready connection.
    session.handle_timeout(at(HELLO_MS + 1));
    assert_eq!(closed(&mut session), None);
    // A PING at 400 s moves the idle deadline; the timer armed for the old one fires
    // early and does nothing.
    let ping = Command::Ping
        .encode(CorrId::from_bytes([0, 0, 0, 0, 0, 0, 0, 1]), None)
        .unwrap();
    send(&mut session, &ping, at(400_000), &mut rng);
    closed(&mut session);
    session.handle_timeout(at(1_000 + IDLE_MS));
    assert_eq!(closed(&mut session), None);
    assert_eq!(session.poll_timeout(), Some(400_000 + IDLE_MS));
    session.handle_timeout(at(400_000 + IDLE_MS - 1));
    assert_eq!(closed(&mut session), None);
    session.handle_timeout(at(400_000 + IDLE_MS));
    assert_eq!(closed(&mut session), Some(CloseReason::IdleTimeout));
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn a_clock_that_reads_earlier_than_the_last_block_does_not_move_the_deadline_back() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut session = session(0, &mut rng);
    send(&mut session, &client_hello(), at(50_000), &mut rng);
    let ping = Command::Ping
        .encode(CorrId::from_bytes([0, 0, 0, 0, 0, 0, 0, 2]), None)
        .unwrap();
    send(&mut session, &ping, at(10_000), &mut rng);
    assert_eq!(session.poll_timeout(), Some(50_000 + IDLE_MS));
}
