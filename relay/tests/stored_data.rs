//! What the real `passage-relay` leaves on disk: a dump of its store file (every byte,
//! live and freed pages alike) holds no queue creation time and no time finer than the
//! documented granularity (an hour, SECURITY.md "What the relay stores").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use passage_crypto::primitives::DhSecret;
use passage_transport::TransportMode;
use rand::SeedableRng as _;

mod kit;

use kit::{Client, Relay, runtime};

const HOUR: u64 = 3600;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every 8-byte window of `bytes`, read both ways round, that falls within a day of
/// `[from, to]`. (Random bytes, keys and bodies, land in that range with odds of about
/// 1 in 10^14 per window; 4-byte windows would hit by chance, so a time is sought as
/// the store writes it, a u64.)
fn times_near(bytes: &[u8], from: u64, to: u64) -> Vec<u64> {
    let range = from.saturating_sub(86_400)..=to + 86_400;
    let mut found = Vec::new();
    for at in 0..bytes.len() {
        if let Some(w) = bytes.get(at..at + 8) {
            let w: [u8; 8] = w.try_into().unwrap();
            found.extend([u64::from_be_bytes(w), u64::from_le_bytes(w)]);
        }
    }
    found.retain(|t| range.contains(t));
    found
}

#[test]
fn the_store_file_holds_no_creation_time_and_no_time_finer_than_an_hour() {
    // Not on an hour boundary, so that a time to the second cannot pass for a coarse one.
    while unix_now().is_multiple_of(HOUR) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start_in(dir.path(), "", None);
    let from = unix_now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    runtime().block_on(async {
        let mut recipient = Client::connect(&relay, TransportMode::Tcp).await;
        let mut sending = Client::connect(&relay, TransportMode::Tcp).await;
        for _ in 0..3 {
            let queue = recipient.create_queue(None).await.unwrap();
            let sender = DhSecret::generate(&mut rng);
            for i in 0..4u8 {
                sending
                    .send(queue.sender_id, &sender, i == 0, i)
                    .await
                    .unwrap();
            }
            // One read and acknowledged, the others left waiting on disk.
            let first = recipient.get(&queue).await.unwrap().unwrap();
            recipient.ack(&queue, first).await.unwrap();
        }
    });
    let to = unix_now();
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");

    let bytes = std::fs::read(dir.path().join("data").join("store.redb")).unwrap();
    let times = times_near(&bytes, from, to);
    let fine: Vec<u64> = times
        .iter()
        .copied()
        .filter(|t| !t.is_multiple_of(HOUR))
        .collect();
    assert!(
        fine.is_empty(),
        "times finer than an hour in the store file: {fine:?} (relay ran from {from} to {to})"
    );
    // The scan does see the stored times: the messages' hour is there.
    let hour = from - from % HOUR;
    assert!(times.contains(&hour), "{times:?}");
}
