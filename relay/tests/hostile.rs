//! Hostile clients against the real `passage-relay` binary on loopback: bytes that are
//! not TLS, random blocks, malformed and oversized framing, a connection cut mid-frame,
//! a command flood, and a crowd of half-open connections. Each offender is cut off;
//! meanwhile a well-behaved client keeps being served, and the relay's memory stays
//! bounded. Every loop is bounded in count and time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use passage_transport::{ConnectOptions, TransportMode, connect_address};
use passage_wire::{Block, Command as Cmd, CorrId, ErrorCode, FrameEncoder};
use rand::SeedableRng as _;
use rand_core::Rng as _;

mod kit;

use kit::{Client, Relay, WAIT, runtime};

#[test]
fn garbage_framing_and_floods_are_cut_off_while_good_clients_are_served() {
    let relay =
        Relay::start("commands_per_second = 100\ncommand_burst = 200\nmax_rate_violations = 50\n");
    runtime().block_on(async {
        let mut good_tcp = Client::connect(&relay, TransportMode::Tcp).await;
        let mut good_quic = Client::connect(&relay, TransportMode::Quic).await;
        assert!(good_tcp.ping().await && good_quic.ping().await);
        let rss_before = relay.rss_kib();

        // 1. Bytes that are not TLS at all, on a plain TCP socket: dropped.
        for _ in 0..20 {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", relay.port())).unwrap();
            let _ = s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x00, 0x42, 0x13]);
            let _ = s.write_all(&[0x5a; 3000]);
        }

        // 2. Random blocks after the hello: a framing error closes the connection.
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for mode in [TransportMode::Tcp, TransportMode::Quic] {
            for _ in 0..5 {
                let mut bad = Client::connect(&relay, mode).await;
                let mut bytes = [0u8; 4096];
                rng.fill_bytes(&mut bytes);
                bytes[..2].copy_from_slice(&[0xff, 0xff]); // content length beyond the block
                let _ = bad
                    .stream
                    .send_block(&Block::from_slice(&bytes).unwrap())
                    .await;
                bad.until_closed().await;
            }
        }

        // 3. Oversized length: segment lengths claiming more than the block holds, and a
        //    frame that grows past the frame limit through middle segments.
        let mut bad = Client::connect(&relay, TransportMode::Tcp).await;
        let mut block = [0u8; 4096];
        block[..2].copy_from_slice(&4094u16.to_be_bytes());
        block[2] = 1; // a complete segment…
        block[3..5].copy_from_slice(&u16::MAX.to_be_bytes()); // …of 65,535 bytes
        let _ = bad
            .stream
            .send_block(&Block::from_slice(&block).unwrap())
            .await;
        bad.until_closed().await;
        let mut bad = Client::connect(&relay, TransportMode::Tcp).await;
        let mut enc = FrameEncoder::new();
        enc.push_frame(&vec![0u8; passage_wire::MAX_FRAME_LEN])
            .unwrap();
        let blocks: Vec<_> = std::iter::from_fn(|| enc.poll_block()).collect();
        // Repeat the middle blocks so the frame never ends within the limit.
        for block in blocks
            .iter()
            .take(2)
            .chain(std::iter::repeat_n(&blocks[1], 30))
        {
            if bad.stream.send_block(block).await.is_err() {
                break;
            }
        }
        bad.until_closed().await;

        // 4. A connection cut in the middle of a frame (first segment only).
        let mut bad = Client::connect(&relay, TransportMode::Tcp).await;
        let _ = bad.stream.send_block(&blocks[0]).await;
        drop(bad);

        // 5. Malformed commands: answered with errors, then cut off.
        let mut bad = Client::connect(&relay, TransportMode::Quic).await;
        for _ in 0..=passage_relay::session::MAX_MALFORMED_COMMANDS {
            bad.send_frame(&[0xee; 64]).await;
        }
        let codes = bad.until_closed().await;
        assert!(
            codes.contains(&ErrorCode::Syntax) || codes.contains(&ErrorCode::Cmd),
            "{codes:?}"
        );

        // 6. A flood of commands, never reading the answers: rate-limited, then cut off.
        let mut flood = Client::connect(&relay, TransportMode::Tcp).await;
        let mut sent = 0u64;
        let started = Instant::now();
        while started.elapsed() < WAIT && sent < 50_000 {
            let frame = Cmd::Ping
                .encode(CorrId::from_bytes(sent.to_be_bytes()), None)
                .unwrap();
            flood.enc.push_frame(&frame).unwrap();
            sent += 1;
            let mut failed = false;
            while let Some(block) = flood.enc.poll_block() {
                let sent = tokio::time::timeout(WAIT, flood.stream.send_block(&block)).await;
                if !matches!(sent, Ok(Ok(()))) {
                    failed = true;
                }
            }
            if failed {
                break;
            }
            if sent.is_multiple_of(100) {
                // The good clients are served meanwhile.
                assert!(good_tcp.ping().await);
            }
        }
        let codes = flood.until_closed().await;
        assert!(
            codes.contains(&ErrorCode::RateLimit),
            "flood of {sent} got {codes:?}"
        );

        // Through all of it, the well-behaved clients kept working.
        assert!(good_tcp.ping().await && good_quic.ping().await);
        assert!(good_tcp.new_queue().await && good_quic.new_queue().await);
        let rss_after = relay.rss_kib();
        eprintln!("relay RSS {rss_before} KiB before, {rss_after} KiB after the hostile clients");
        assert!(
            rss_after < rss_before + 64 * 1024,
            "memory grew from {rss_before} to {rss_after} KiB"
        );
    });
}

#[test]
fn silent_connections_are_cut_at_the_idle_timeout_and_active_ones_are_not() {
    let relay = Relay::start("idle_timeout_secs = 2\n");
    runtime().block_on(async {
        let mut silent = Client::connect(&relay, TransportMode::Tcp).await;
        let mut active = Client::connect(&relay, TransportMode::Tcp).await;
        // Each command moves the active client's deadline later: over twice the idle
        // timeout, it is never cut.
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(4_500) {
            assert!(active.ping().await, "an active connection was cut");
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        // The silent one, past its deadline, is gone (its close is already queued).
        let codes = silent.until_closed().await;
        assert!(
            codes.is_empty(),
            "an idle cut is no protocol error: {codes:?}"
        );
        assert!(active.ping().await);
    });
}

#[test]
fn half_open_connections_time_out_and_do_not_starve_others() {
    let relay = Relay::start("handshake_timeout_secs = 2\n");
    runtime().block_on(async {
        let mut good = Client::connect(&relay, TransportMode::Tcp).await;
        let rss_before = relay.rss_kib();
        // More half-open TCP connections (connected, never a TLS hello) than the relay
        // takes handshakes at once.
        let crowd: Vec<_> = (0..400)
            .map(|_| std::net::TcpStream::connect(("127.0.0.1", relay.port())).unwrap())
            .collect();
        // An established client is not affected.
        assert!(good.ping().await);
        // A new client gets in at the latest once the half-open ones time out.
        let started = Instant::now();
        let mut newcomer = loop {
            let mut options = ConnectOptions::default();
            options.mode = TransportMode::Tcp;
            options.handshake_timeout = Duration::from_secs(3);
            if let Ok(Ok(stream)) = tokio::time::timeout(
                Duration::from_secs(4),
                connect_address(&relay.address, &options),
            )
            .await
            {
                break stream;
            }
            assert!(
                started.elapsed() < WAIT,
                "no new connection accepted while half-open ones linger"
            );
        };
        assert!(
            newcomer.recv_block().await.unwrap().is_some(),
            "the relay's hello"
        );
        // The half-open connections were closed by the relay.
        let mut closed = 0;
        for mut s in crowd {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 1];
            if matches!(std::io::Read::read(&mut s, &mut buf), Ok(0) | Err(_)) {
                closed += 1;
            }
        }
        assert_eq!(closed, 400);
        let rss_after = relay.rss_kib();
        eprintln!(
            "relay RSS {rss_before} KiB before, {rss_after} KiB after 400 half-open connections"
        );
        assert!(rss_after < rss_before + 64 * 1024);
    });
}

#[test]
fn running_out_of_file_descriptors_does_not_stop_accepting() {
    // 64 descriptors: the relay's own files and sockets take some; a crowd of clients
    // takes the rest, and accept() fails with EMFILE for the others.
    let relay = Relay::start_with_fd_limit("", Some(64));
    runtime().block_on(async {
        let mut good = Client::connect(&relay, TransportMode::Tcp).await;
        let crowd: Vec<_> = (0..100)
            .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", relay.port())).ok())
            .collect();
        assert!(crowd.len() > 64, "the crowd must exceed the limit");
        // The relay is alive and serves the client it already has, with every
        // descriptor it may open in use.
        assert!(good.ping().await);
        let fds = || {
            std::fs::read_dir(format!("/proc/{}/fd", relay.pid()))
                .unwrap()
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while fds() < 62 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            fds() >= 62,
            "the relay never ran out of descriptors ({} open)",
            fds()
        );
        assert!(good.ping().await);
        drop(crowd);
        // Once descriptors are free again, new clients are accepted.
        let started = Instant::now();
        loop {
            let mut options = ConnectOptions::default();
            options.mode = TransportMode::Tcp;
            options.handshake_timeout = Duration::from_secs(3);
            let attempt = tokio::time::timeout(
                Duration::from_secs(4),
                connect_address(&relay.address, &options),
            )
            .await;
            if let Ok(Ok(mut stream)) = attempt {
                assert!(
                    stream.recv_block().await.unwrap().is_some(),
                    "the relay's hello"
                );
                break;
            }
            assert!(
                started.elapsed() < WAIT,
                "the relay stopped accepting after EMFILE"
            );
        }
        assert!(good.ping().await);
    });
}
