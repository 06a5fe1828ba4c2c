//! What a hostile relay can send a client: any blocks after a valid hello, while the
//! client has commands in flight (NEW, SUB, GET, SEND, PING). The client's relay
//! session must never panic; it either hands out outputs or fails with a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passage_client::relay::{
    AwaitingHello, HelloProgress, QueueCredentials, RelayClientSession, SenderCredentials,
};
use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::DhSecret;
use passage_wire::{
    BLOCK_LEN, Block, ChannelBinding, FrameEncoder, RecipientId, RelayHello, SenderId,
};
use passage_wire_fuzz::FixedRng;

fn hello_block() -> Block {
    let hello = RelayHello {
        versions: passage_wire::version::VersionRange::new(1, 1).unwrap(),
        session_key: DhSecret::from_bytes([5; 32]).public_key(),
    };
    let mut encoder = FrameEncoder::new();
    encoder.push_frame(&hello.encode()).unwrap();
    encoder.flush();
    encoder.poll_block().unwrap()
}

fn session() -> Box<RelayClientSession> {
    let stage = AwaitingHello::new(ChannelBinding::from_bytes([9; 32]));
    match stage.handle_block(&hello_block()).unwrap() {
        HelloProgress::Ready(session) => session,
        _ => panic!("the hello is one block"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut rng = FixedRng(1);
    let mut session = session();
    let queue = QueueCredentials::from_parts(
        RecipientId::from_bytes([1; 24]),
        SenderId::from_bytes([2; 24]),
        DhSecret::from_bytes([3; 32]),
        DhSecret::from_bytes([4; 32]),
        DhSecret::from_bytes([6; 32]).public_key(),
    )
    .unwrap();
    let _ = session.create_queue(&mut rng, None);
    let _ = session.subscribe(&mut rng, &queue);
    let _ = session.get(&mut rng, &queue);
    let sender = SenderCredentials::from_secret(DhSecret::from_bytes([8; 32]), true);
    let _ = session.send(&mut rng, SenderId::from_bytes([2; 24]), &sender, &[0; ENVELOPE_LEN]);
    let _ = session.ping(&mut rng);
    while session.poll_block().is_some() {}
    for chunk in data.chunks(BLOCK_LEN) {
        let mut bytes = Box::new([0u8; BLOCK_LEN]);
        bytes[..chunk.len()].copy_from_slice(chunk);
        let failed = session.handle_block(&Block::from_bytes(bytes)).is_err();
        while session.poll_output().is_some() {}
        while session.poll_block().is_some() {}
        if failed {
            break;
        }
    }
});
