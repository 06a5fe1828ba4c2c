//! Key rotation with the real `passage-relay` binary: `rotate-key` makes a new key; the
//! restarted relay serves it, and a client holding the old address still connects
//! during the overlap, is told the new pin, and its queues keep working over both
//! addresses; a second rotation during the overlap is refused; after the overlap the
//! old key is destroyed and the old address fails with an error that says what to do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU16;

use passage_transport::{
    ConnectOptions, RelayAddress, TransportError, TransportMode, connect_address,
};

mod kit;

use kit::{Client, Relay, run_to_end, runtime};

/// The address a client kept from before the rotation, pointed at where the relay
/// listens now (the tests' relays listen on port 0, a new one at each start).
fn old_address_now(old: &RelayAddress, relay: &Relay) -> RelayAddress {
    RelayAddress::new(
        *old.pin(),
        old.host().clone(),
        NonZeroU16::new(relay.port()).unwrap(),
    )
}

#[test]
fn rotate_key_moves_old_addresses_during_the_overlap_and_destroys_the_old_key_after() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let relay = Relay::start_in(dir.path(), "", None);
    let old = relay.address.clone();
    let (queue, sender) = kit::queue_with_one_message(&relay, 5);
    // Rotating while the relay runs: it goes on with the old key until restarted.
    let (status, log) = run_to_end(&["rotate-key", "--data", data.to_str().unwrap()]);
    assert!(status.success(), "{log}");
    assert!(log.contains("restart the relay"), "{log}");
    let (status, _) = relay.stop();
    assert!(status.success());
    assert!(data.join("identity.retired.der").exists());
    // A second rotation during the overlap is refused, and says until when.
    let (status, log) = run_to_end(&["rotate-key", "--data", data.to_str().unwrap()]);
    assert!(!status.success());
    assert!(log.contains("already under way"), "{log}");

    let relay = Relay::start_in(dir.path(), "", None);
    let new = relay.address.clone();
    assert_ne!(new.pin(), old.pin(), "the address line shows the new pin");
    runtime().block_on(async {
        // The old address: connected, told the new pin; the queue works.
        let mut options = ConnectOptions::default();
        options.mode = TransportMode::Tcp;
        for mode in [TransportMode::Tcp, TransportMode::Quic] {
            options.mode = mode;
            let stream = connect_address(&old_address_now(&old, &relay), &options)
                .await
                .unwrap();
            let rotation = stream.key_rotation().expect("the rotation notice");
            assert_eq!(&rotation.new_pin, new.pin(), "{mode:?}");
        }
        let mut by_old = Client::connect_to(&old_address_now(&old, &relay), TransportMode::Tcp)
            .await
            .unwrap();
        by_old
            .send(queue.sender_id, &sender, false, 2)
            .await
            .unwrap();
        // The new address: no notice; the recipient reads both messages.
        let mut by_new = Client::connect(&relay, TransportMode::Tcp).await;
        assert!(by_new.stream.key_rotation().is_none());
        for _ in 0..2 {
            let msg = by_new.get(&queue).await.unwrap().expect("a message");
            by_new.ack(&queue, msg).await.unwrap();
        }
    });
    let (status, _) = relay.stop();
    assert!(status.success());

    // The overlap ends (here: its end moved into the past) and the relay starts again.
    std::fs::write(data.join("rotation"), "until 1\n").unwrap();
    let relay = Relay::start_in(dir.path(), "", None);
    assert!(
        !data.join("identity.retired.der").exists(),
        "the old key is destroyed"
    );
    assert!(!data.join("rotation").exists());
    assert_eq!(relay.address.pin(), new.pin());
    runtime().block_on(async {
        let mut options = ConnectOptions::default();
        options.mode = TransportMode::Tcp;
        let err = connect_address(&old_address_now(&old, &relay), &options)
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::PinMismatch), "{err:?}");
        assert!(
            err.to_string()
                .contains("ask its operator for its current address"),
            "{err}"
        );
        let mut client = Client::connect(&relay, TransportMode::Tcp).await;
        client
            .send(queue.sender_id, &sender, false, 3)
            .await
            .unwrap();
        assert!(client.get(&queue).await.unwrap().is_some());
    });
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    // A new rotation is possible again.
    let (status, log) = run_to_end(&["rotate-key", "--data", data.to_str().unwrap()]);
    assert!(status.success(), "{log}");
}
