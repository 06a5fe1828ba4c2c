//! The relay's global and per-source limits, with the real `passage-relay` binary on
//! loopback: a flood of queue creations (and of handshakes) from one source address is
//! cut off while another address is still served; past a small total-bytes limit, or
//! below the disk's free-space watermark, `NEW` and `SEND` get `ERR FULL` while reads
//! and `ACK`s go on, and a restart finds the store intact; a relay listening beyond
//! loopback without a password or `open_relay` refuses to start. Every loop is bounded
//! in count and time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};

use passage_crypto::primitives::DhSecret;
use passage_transport::TransportMode;
use passage_wire::ErrorCode;
use rand::SeedableRng as _;

mod kit;

use kit::{Client, Relay, run_to_end, runtime};

fn loopback(last: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
}

/// Per source, over several connections: a reconnect does not reset the budget, and
/// another source keeps its own.
#[test]
fn a_flood_of_queue_creations_from_one_address_is_cut_off_while_another_creates_queues() {
    let relay = Relay::start(
        "limit_loopback_sources = true\nqueues_per_source_burst = 5\nqueues_per_source_per_hour = 1\n\
         max_queues_per_connection = 3\n",
    );
    runtime().block_on(async {
        let mut created = 0;
        let mut refused = Vec::new();
        // Four connections of three tries each from 127.0.0.2: more than its burst.
        for _ in 0..4 {
            let mut flood = Client::connect_from(&relay, TransportMode::Tcp, loopback(2)).await;
            for _ in 0..3 {
                match flood.create_queue(None).await {
                    Ok(_) => created += 1,
                    Err(code) => refused.push(code),
                }
            }
        }
        assert_eq!(created, 5, "the burst, then no more: {refused:?}");
        assert!(
            refused.iter().all(|c| *c == ErrorCode::RateLimit),
            "{refused:?}"
        );
        // Another address still creates queues, and so still does an unlimited one.
        let mut other = Client::connect_from(&relay, TransportMode::Tcp, loopback(3)).await;
        for _ in 0..3 {
            other.create_queue(None).await.unwrap();
        }
        let mut quic = Client::connect_from(&relay, TransportMode::Quic, loopback(4)).await;
        quic.create_queue(None).await.unwrap();
        // The flooder stays cut off, over TCP and QUIC alike.
        let mut again = Client::connect_from(&relay, TransportMode::Quic, loopback(2)).await;
        assert_eq!(
            again.create_queue(None).await.err(),
            Some(ErrorCode::RateLimit)
        );
    });
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");
    // Nothing in the log names a source.
    for address in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        assert!(!log.contains(address), "{log}");
    }
}

#[test]
fn a_flood_of_handshakes_from_one_address_is_cut_off_while_another_connects() {
    let relay = Relay::start(
        "limit_loopback_sources = true\nhandshakes_per_source_burst = 4\n\
         handshakes_per_source_per_minute = 1\n",
    );
    runtime().block_on(async {
        let mut connected = 0;
        for _ in 0..8 {
            if let Some(mut client) =
                Client::try_connect_from(&relay, TransportMode::Tcp, loopback(5)).await
                && client.ping().await
            {
                connected += 1;
            }
        }
        assert_eq!(connected, 4, "the burst, then no more");
        let mut other = Client::connect_from(&relay, TransportMode::Tcp, loopback(6)).await;
        assert!(other.ping().await);
    });
}

/// With room for about three messages: the fourth `SEND` and any `NEW` get `ERR FULL`;
/// `GET` and `ACK` keep working and free room; after a restart the store holds what
/// was acknowledged as stored, and nothing else.
#[test]
fn past_the_total_bytes_limit_sends_get_full_reads_and_acks_go_on_and_a_restart_finds_the_store_intact()
 {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB: 256 messages of 4 KiB less the queues' share.
    let config =
        "max_stored_mib = 1\nmax_queues = 2\ncommands_per_second = 5000\ncommand_burst = 5000\n";
    let relay = Relay::start_in(dir.path(), config, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let sender = DhSecret::generate(&mut rng);
    let (queue, stored) = runtime().block_on(async {
        let mut recipient = Client::connect(&relay, TransportMode::Tcp).await;
        let queue = recipient.create_queue(None).await.unwrap();
        let second = recipient.create_queue(None).await.unwrap();
        // The queue count is a limit too.
        assert_eq!(
            recipient.create_queue(None).await.err(),
            Some(ErrorCode::Full)
        );
        let mut sending = Client::connect(&relay, TransportMode::Tcp).await;
        let mut stored = 0u32;
        let mut full = None;
        for i in 0..300u32 {
            match sending
                .send(queue.sender_id, &sender, i == 0, i as u8)
                .await
            {
                Ok(()) => stored += 1,
                Err(code) => {
                    full = Some(code);
                    break;
                }
            }
        }
        assert_eq!(full, Some(ErrorCode::Full), "after {stored} messages");
        assert!(stored > 200 && stored < 256, "{stored}");
        // The other queue is refused too: the limit is the relay's, not the queue's.
        let other = DhSecret::generate(&mut rand::rngs::StdRng::seed_from_u64(8));
        assert_eq!(
            sending.send(second.sender_id, &other, true, 0).await.err(),
            Some(ErrorCode::Full)
        );
        // Reads and ACKs go on; an ACK makes room for one more.
        let first = recipient.get(&queue).await.unwrap().expect("a message");
        recipient.ack(&queue, first).await.unwrap();
        sending
            .send(queue.sender_id, &sender, false, 1)
            .await
            .unwrap();
        assert_eq!(
            sending.send(queue.sender_id, &sender, false, 2).await.err(),
            Some(ErrorCode::Full)
        );
        assert!(recipient.ping().await && sending.ping().await);
        (queue, stored)
    });
    let (status, log) = relay.stop();
    assert!(status.success(), "{log}");

    // The store opens; the queue holds every message answered OK, less the one acked.
    let relay = Relay::start_in(dir.path(), config, None);
    runtime().block_on(async {
        let mut recipient = Client::connect(&relay, TransportMode::Tcp).await;
        let mut drained = 0u32;
        while let Some(msg_id) = recipient.get(&queue).await.unwrap() {
            recipient.ack(&queue, msg_id).await.unwrap();
            drained += 1;
            assert!(drained <= stored, "more messages than were stored");
        }
        assert_eq!(drained, stored);
        // Drained: there is room again.
        let mut sending = Client::connect(&relay, TransportMode::Tcp).await;
        sending
            .send(queue.sender_id, &sender, false, 3)
            .await
            .unwrap();
    });
}

/// A free-space watermark above what the disk has: nothing new is stored, the relay
/// says why, and existing queues can still be read.
#[test]
fn below_the_disk_watermark_new_queues_and_sends_get_full() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start_in(dir.path(), "", None);
    let (queue, sender) = kit::queue_with_one_message(&relay, 9);
    relay.stop();
    // 16 TiB free is more than any test machine has.
    let relay = Relay::start_in(dir.path(), "min_free_disk_mib = 16777216\n", None);
    runtime().block_on(async {
        let mut client = Client::connect(&relay, TransportMode::Tcp).await;
        assert_eq!(client.create_queue(None).await.err(), Some(ErrorCode::Full));
        assert_eq!(
            client.send(queue.sender_id, &sender, false, 2).await.err(),
            Some(ErrorCode::Full)
        );
        let msg_id = client
            .get(&queue)
            .await
            .unwrap()
            .expect("the stored message");
        client.ack(&queue, msg_id).await.unwrap();
        assert_eq!(client.get(&queue).await.unwrap(), None);
    });
    let (status, log) = relay.stop();
    assert!(status.success());
    assert!(log.contains("min_free_disk_mib"), "{log}");
}

#[test]
fn a_public_listen_address_without_password_or_open_relay_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    // 127.0.0.1 is loopback; 192.0.2.1 (TEST-NET-1) is not, and is refused before any
    // bind is tried.
    let (status, log) = run_to_end(&[
        "serve",
        "--listen",
        "192.0.2.1:0",
        "--public-address",
        "relay.example.org",
        "--data",
        data,
    ]);
    assert!(!status.success());
    assert!(
        log.contains("password_file") && log.contains("--open-relay"),
        "{log}"
    );
    // Nothing was created.
    assert!(!std::path::Path::new(data).exists());
    // Named open relay: it gets past the check (and fails at bind, since 192.0.2.1 is
    // not this machine's).
    let (status, log) = run_to_end(&[
        "serve",
        "--listen",
        "192.0.2.1:0",
        "--public-address",
        "relay.example.org",
        "--open-relay",
        "--data",
        data,
    ]);
    assert!(!status.success());
    assert!(!log.contains("--open-relay"), "{log}");
    assert!(log.contains("cannot listen"), "{log}");
}
