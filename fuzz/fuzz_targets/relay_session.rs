//! The relay's command handling (its sans-IO session) fed by a hostile client: raw
//! blocks, and well-framed but arbitrary frames after a valid hello, with every write
//! applied to an in-memory store. Nothing may panic, and whatever the session sends
//! back must be well-formed blocks of well-formed replies.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use passage_relay::metrics::Metrics;
use passage_relay::session::{Action, Now, ServiceConfig, Session};
use passage_relay::store::{MemoryStore, Store};
use passage_wire::{
    Block, ChannelBinding, ClientHello, FrameDecoder, FrameEncoder, RelayHello, Reply,
    SUPPORTED_VERSIONS,
};
use passage_wire_fuzz::FixedRng;

const NOW: Now = Now {
    unix_secs: 1_800_000_000,
    mono_ms: 0,
};

fn config() -> Arc<ServiceConfig> {
    static CONFIG: OnceLock<Arc<ServiceConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| Arc::new(ServiceConfig::default())))
}

fn drive(session: &mut Session, store: &dyn Store, out: &mut FrameDecoder) {
    while let Some(action) = session.poll_action() {
        if let Action::Write { token, op } = action {
            let result = store.commit(vec![*op]).pop().unwrap();
            session.handle_write(token, result, store, NOW);
        }
    }
    while let Some(block) = session.poll_block() {
        out.handle_block(&block)
            .expect("the relay writes valid blocks");
    }
    while let Some(frame) = out.poll_frame() {
        if RelayHello::decode(&frame).is_err() {
            Reply::decode(&frame).expect("the relay writes valid replies");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let store = MemoryStore::new();
    let mut rng = FixedRng(7);
    let binding = || ChannelBinding::from_bytes([3; 32]);
    // 1. Raw blocks from the first byte on.
    let mut session = Session::new(
        config(),
        Arc::new(Metrics::default()),
        binding(),
        NOW,
        &mut rng,
    );
    let mut out = FrameDecoder::new();
    for chunk in data.chunks(4096) {
        let mut bytes = [0u8; 4096];
        bytes[..chunk.len()].copy_from_slice(chunk);
        session.handle_block(&Block::from_slice(&bytes).unwrap(), &store, NOW, &mut rng);
        drive(&mut session, &store, &mut out);
    }
    // 2. A valid hello, then the input cut into frames (two-byte length prefixes).
    let mut session = Session::new(
        config(),
        Arc::new(Metrics::default()),
        binding(),
        NOW,
        &mut rng,
    );
    let mut out = FrameDecoder::new();
    let mut enc = FrameEncoder::new();
    let version = RelayHello {
        versions: SUPPORTED_VERSIONS,
        session_key: passage_crypto::primitives::DhPublic::from_bytes([9; 32]),
    }
    .negotiate(SUPPORTED_VERSIONS)
    .unwrap();
    enc.push_frame(&ClientHello::new(version).encode()).unwrap();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 4100;
        rest = &rest[2..];
        let take = len.min(rest.len());
        if take > 0 {
            enc.push_frame(&rest[..take]).unwrap();
        }
        rest = &rest[take..];
    }
    enc.flush();
    while let Some(block) = enc.poll_block() {
        session.handle_block(&block, &store, NOW, &mut rng);
        drive(&mut session, &store, &mut out);
    }
});
