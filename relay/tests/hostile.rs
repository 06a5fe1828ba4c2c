//! Hostile clients against the real `passage-relay` binary on loopback: bytes that are
//! not TLS, random blocks, malformed and oversized framing, a connection cut mid-frame,
//! a command flood, and a crowd of half-open connections. Each offender is cut off;
//! meanwhile a well-behaved client keeps being served, and the relay's memory stays
//! bounded. Every loop is bounded in count and time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use passage_crypto::primitives::DhSecret;
use passage_transport::{
    BlockStream, ConnectOptions, RelayAddress, TransportMode, connect_address,
};
use passage_wire::{
    AuthKey, AuthRole, Block, ChannelBinding, ClientHello, Command as Cmd, CorrId, ErrorCode,
    FrameDecoder, FrameEncoder, NewQueue, RelayHello, Reply, SUPPORTED_VERSIONS,
};
use rand::SeedableRng as _;
use rand_core::Rng as _;

const BIN: &str = env!("CARGO_BIN_EXE_passage-relay");
const WAIT: Duration = Duration::from_secs(20);

struct Relay {
    child: Child,
    address: RelayAddress,
    _dir: tempfile::TempDir,
}

impl Relay {
    fn start(config: &str) -> Relay {
        Self::start_with_fd_limit(config, None)
    }

    /// Starts the relay under a hard file-descriptor limit (set by the shell before
    /// `exec`, so the relay cannot raise it).
    fn start_with_fd_limit(config: &str, fd_limit: Option<u32>) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("relay.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut command = match fd_limit {
            None => Command::new(BIN),
            Some(limit) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(BIN);
                c
            }
        };
        let mut child = command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-level",
                "warn",
                "--config",
            ])
            .arg(&config_path)
            .arg("--data")
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(BufReader::new(stdout).lines().next());
        });
        let line = match rx.recv_timeout(WAIT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                panic!("relay did not start: {other:?}");
            }
        };
        let address = line
            .strip_prefix("relay address: ")
            .unwrap()
            .parse()
            .unwrap();
        Relay {
            child,
            address,
            _dir: dir,
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    fn port(&self) -> u16 {
        self.address.port()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal well-behaved client speaking the wire protocol directly.
struct Client {
    stream: BlockStream,
    enc: FrameEncoder,
    dec: FrameDecoder,
    relay_key: passage_crypto::primitives::DhPublic,
    binding: [u8; 32],
    corr: u64,
}

impl Client {
    async fn connect(relay: &Relay, mode: TransportMode) -> Client {
        let mut options = ConnectOptions::default();
        options.mode = mode;
        let stream = tokio::time::timeout(WAIT, connect_address(&relay.address, &options))
            .await
            .expect("connect in time")
            .expect("connect");
        let binding = stream.channel_binding();
        let mut client = Client {
            stream,
            enc: FrameEncoder::new(),
            dec: FrameDecoder::new(),
            relay_key: passage_crypto::primitives::DhPublic::from_bytes([0; 32]),
            binding,
            corr: 0,
        };
        let hello = RelayHello::decode(&client.frame().await.expect("hello")).unwrap();
        client.relay_key = hello.session_key;
        let version = hello.negotiate(SUPPORTED_VERSIONS).unwrap();
        client.send_frame(&ClientHello::new(version).encode()).await;
        client
    }

    async fn send_frame(&mut self, frame: &[u8]) {
        self.enc.push_frame(frame).unwrap();
        self.enc.flush();
        while let Some(block) = self.enc.poll_block() {
            self.stream.send_block(&block).await.unwrap();
        }
    }

    /// The next frame from the relay, or `None` when it closed the connection.
    async fn frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(frame) = self.dec.poll_frame() {
                return Some(frame);
            }
            match tokio::time::timeout(WAIT, self.stream.recv_block())
                .await
                .expect("relay answers in time")
            {
                Ok(Some(block)) => self.dec.handle_block(&block).unwrap(),
                _ => return None,
            }
        }
    }

    async fn ping(&mut self) -> bool {
        self.corr += 1;
        let corr = CorrId::from_bytes(self.corr.to_be_bytes());
        self.send_frame(&Cmd::Ping.encode(corr, None).unwrap())
            .await;
        loop {
            match self.frame().await.map(|f| Reply::decode(&f).unwrap()) {
                Some(Reply::Pong { corr_id }) if corr_id == corr => return true,
                Some(_) => {}
                None => return false,
            }
        }
    }

    async fn new_queue(&mut self) -> bool {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.corr);
        let auth = DhSecret::generate(&mut rng);
        let new = Cmd::New(NewQueue {
            recipient_auth_key: auth.public_key(),
            recipient_dh_key: DhSecret::generate(&mut rng).public_key(),
            password: None,
        });
        let key = AuthKey::derive(
            AuthRole::Recipient,
            &auth,
            &self.relay_key,
            &ChannelBinding::from_bytes(self.binding),
        )
        .unwrap();
        self.corr += 1;
        self.send_frame(
            &new.encode(CorrId::from_bytes(self.corr.to_be_bytes()), Some(&key))
                .unwrap(),
        )
        .await;
        matches!(
            self.frame().await.map(|f| Reply::decode(&f).unwrap()),
            Some(Reply::Ids { .. })
        )
    }

    /// Waits for the relay to close the connection, draining what it sends; returns
    /// the error codes seen on the way.
    async fn until_closed(&mut self) -> Vec<ErrorCode> {
        let mut codes = Vec::new();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match tokio::time::timeout(WAIT, self.stream.recv_block()).await {
                Ok(Ok(Some(block))) => {
                    if self.dec.handle_block(&block).is_err() {
                        break;
                    }
                    while let Some(frame) = self.dec.poll_frame() {
                        if let Ok(Reply::Err { code, .. }) = Reply::decode(&frame) {
                            codes.push(code);
                        }
                    }
                }
                _ => return codes,
            }
        }
        panic!("the relay did not close the offending connection in time");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

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
            std::fs::read_dir(format!("/proc/{}/fd", relay.child.id()))
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
