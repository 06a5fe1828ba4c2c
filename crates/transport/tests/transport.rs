//! Loopback tests of both transports: round trips, many blocks, pin
//! mismatch, channel binding, fallback, SOCKS5, idle timeout, clean close.
//! Every test is bounded by `LIMIT`; every loop by a count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use passage_transport::{
    BLOCK_LEN, Block, BlockStream, ConnectOptions, Listener, RelayAddress, RelayIdentity, RelayPin,
    ServerOptions, Socks5Proxy, TransportError, TransportKind, TransportMode, connect,
    connect_address, listen,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for any single test.
const LIMIT: Duration = Duration::from_secs(20);

const LOCALHOST: &str = "127.0.0.1";

/// A block whose every 4-byte word is `seed` followed by its index, so
/// reordered or mixed-up bytes are caught.
fn block(seed: u32) -> Block {
    let mut bytes = Box::new([0u8; BLOCK_LEN]);
    for (i, word) in bytes.chunks_exact_mut(8).enumerate() {
        word[..4].copy_from_slice(&seed.to_be_bytes());
        word[4..].copy_from_slice(&(i as u32).to_be_bytes());
    }
    Block::from_bytes(bytes)
}

fn options(mode: TransportMode) -> ConnectOptions {
    let mut o = ConnectOptions::default();
    o.mode = mode;
    o.handshake_timeout = Duration::from_secs(5);
    o
}

async fn start(options: ServerOptions) -> (Listener, RelayIdentity) {
    let identity = RelayIdentity::generate().unwrap();
    let listener = listen("127.0.0.1:0".parse().unwrap(), &identity, options)
        .await
        .unwrap();
    (listener, identity)
}

/// Connects `mode` and returns the client and server ends.
async fn pair(
    listener: &mut Listener,
    pin: &RelayPin,
    opts: &ConnectOptions,
) -> (BlockStream, BlockStream) {
    let port = listener.local_addr().port();
    let (client, accepted) = tokio::join!(connect(LOCALHOST, port, pin, opts), listener.accept());
    (client.unwrap(), accepted.unwrap().stream)
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test took too long")
}

async fn round_trip(mode: TransportMode, expected: TransportKind) {
    let (mut listener, id) = start(ServerOptions::default()).await;
    let (mut client, mut server) = pair(&mut listener, &id.pin(), &options(mode)).await;
    assert_eq!(client.transport(), expected);
    assert_eq!(server.transport(), expected);

    client.send_block(&block(1)).await.unwrap();
    assert_eq!(server.recv_block().await.unwrap(), Some(block(1)));
    server.send_block(&block(2)).await.unwrap();
    assert_eq!(client.recv_block().await.unwrap(), Some(block(2)));

    // Clean close at a block boundary reads as None on the other side.
    client.close().await.unwrap();
    assert_eq!(server.recv_block().await.unwrap(), None);
}

#[tokio::test]
async fn tcp_round_trip_both_ways() {
    bounded(round_trip(TransportMode::Tcp, TransportKind::Tcp)).await;
}

#[tokio::test]
async fn quic_round_trip_both_ways() {
    bounded(round_trip(TransportMode::Quic, TransportKind::Quic)).await;
}

#[tokio::test]
async fn auto_prefers_quic_when_udp_works() {
    bounded(round_trip(TransportMode::Auto, TransportKind::Quic)).await;
}

/// The relay may speak first: over QUIC the stream exists before the
/// client sends any block.
#[tokio::test]
async fn server_can_send_first() {
    bounded(async {
        let (mut listener, id) = start(ServerOptions::default()).await;
        for mode in [TransportMode::Quic, TransportMode::Tcp] {
            let (mut client, mut server) = pair(&mut listener, &id.pin(), &options(mode)).await;
            server.send_block(&block(9)).await.unwrap();
            assert_eq!(client.recv_block().await.unwrap(), Some(block(9)));
        }
    })
    .await;
}

/// 300 blocks (1.2 MiB) each way at the same time, from split halves.
async fn many_blocks(mode: TransportMode) {
    const COUNT: u32 = 300;
    let (mut listener, id) = start(ServerOptions::default()).await;
    let (client, server) = pair(&mut listener, &id.pin(), &options(mode)).await;
    let (mut c_tx, mut c_rx) = client.split();
    let (mut s_tx, mut s_rx) = server.split();

    let up = tokio::spawn(async move {
        for i in 0..COUNT {
            c_tx.send_block(&block(i)).await.unwrap();
        }
        c_tx.finish().await.unwrap();
    });
    // Down the other way in runs of several blocks (`send_blocks`), of sizes on both
    // sides of the TCP write run (16 blocks).
    let down = tokio::spawn(async move {
        let mut i = 0;
        for run in [1u32, 3, 16, 17, 40].into_iter().cycle() {
            let end = (i + run).min(COUNT);
            let blocks: Vec<_> = (i..end).map(|n| block(1_000_000 + n)).collect();
            s_tx.send_blocks(&blocks).await.unwrap();
            i = end;
            if i == COUNT {
                break;
            }
        }
        s_tx.finish().await.unwrap();
    });
    for i in 0..COUNT {
        assert_eq!(s_rx.recv_block().await.unwrap(), Some(block(i)), "up {i}");
    }
    assert_eq!(s_rx.recv_block().await.unwrap(), None);
    // Lent blocks (one reused buffer) mixed with owned ones: the same bytes.
    for i in 0..COUNT {
        if i % 3 == 0 {
            let got = c_rx.recv_block().await.unwrap();
            assert_eq!(got, Some(block(1_000_000 + i)), "down {i}");
        } else {
            let got = c_rx.recv_block_ref().await.unwrap();
            assert_eq!(got, Some(&block(1_000_000 + i)), "down {i}");
        }
    }
    assert_eq!(c_rx.recv_block_ref().await.unwrap(), None);
    up.await.unwrap();
    down.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_many_blocks_in_a_row() {
    bounded(many_blocks(TransportMode::Tcp)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_many_blocks_in_a_row() {
    bounded(many_blocks(TransportMode::Quic)).await;
}

#[tokio::test]
async fn wrong_pin_fails_with_pin_mismatch_on_every_mode() {
    bounded(async {
        let (listener, _id) = start(ServerOptions::default()).await;
        let port = listener.local_addr().port();
        let wrong = RelayIdentity::generate().unwrap().pin();
        for mode in [TransportMode::Tcp, TransportMode::Quic, TransportMode::Auto] {
            let err = connect(LOCALHOST, port, &wrong, &options(mode))
                .await
                .unwrap_err();
            assert!(
                matches!(err, TransportError::PinMismatch),
                "{mode:?}: {err:?}"
            );
            // The message names neither host nor address.
            let text = err.to_string();
            assert!(!text.contains("127.0.0.1") && !text.contains(&port.to_string()));
        }
    })
    .await;
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// During a key rotation the relay presents its new key endorsed by the old one: a
/// client holding the new pin connects as usual; one holding the old pin connects too
/// and is told the new pin, over TCP and QUIC; a third key's pin is still refused; and
/// an endorsement whose overlap has ended is refused like any other key.
#[tokio::test]
async fn an_old_pin_is_moved_to_the_new_key_during_the_overlap_and_refused_after() {
    bounded(async {
        let old = RelayIdentity::generate().unwrap();
        let until = unix_now() + 3600;
        let new = RelayIdentity::generate()
            .unwrap()
            .endorsed_by(&old, until)
            .unwrap();
        assert!(new.is_endorsed());
        let mut listener = listen(
            "127.0.0.1:0".parse().unwrap(),
            &new,
            ServerOptions::default(),
        )
        .await
        .unwrap();
        for mode in [TransportMode::Tcp, TransportMode::Quic] {
            let (mut client, mut server) = pair(&mut listener, &new.pin(), &options(mode)).await;
            assert_eq!(client.key_rotation(), None, "{mode:?}");
            client.send_block(&block(1)).await.unwrap();
            assert_eq!(server.recv_block().await.unwrap(), Some(block(1)));

            let (mut client, mut server) = pair(&mut listener, &old.pin(), &options(mode)).await;
            let rotation = client.key_rotation().expect("the rotation notice");
            assert_eq!(rotation.new_pin, new.pin(), "{mode:?}");
            assert_eq!(rotation.old_pin_until, until);
            assert_eq!(server.key_rotation(), None);
            // The connection works as any other (and its binding agrees).
            assert_eq!(client.channel_binding(), server.channel_binding());
            server.send_block(&block(2)).await.unwrap();
            assert_eq!(client.recv_block().await.unwrap(), Some(block(2)));

            let stranger = RelayIdentity::generate().unwrap().pin();
            let port = listener.local_addr().port();
            let err = connect(LOCALHOST, port, &stranger, &options(mode))
                .await
                .unwrap_err();
            assert!(matches!(err, TransportError::PinMismatch), "{err:?}");
        }
        drop(listener);

        // An overlap that has ended: the old pin no longer reaches the new key.
        let ended = RelayIdentity::from_pkcs8_der(&new.to_pkcs8_der())
            .unwrap()
            .endorsed_by(&old, unix_now() - 1)
            .unwrap();
        let listener = listen(
            "127.0.0.1:0".parse().unwrap(),
            &ended,
            ServerOptions::default(),
        )
        .await
        .unwrap();
        let port = listener.local_addr().port();
        for mode in [TransportMode::Tcp, TransportMode::Quic] {
            let err = connect(LOCALHOST, port, &old.pin(), &options(mode))
                .await
                .unwrap_err();
            assert!(
                matches!(err, TransportError::PinMismatch),
                "{mode:?}: {err:?}"
            );
            assert!(err.to_string().contains("current address"), "{err}");
        }
    })
    .await;
}

#[tokio::test]
async fn channel_binding_matches_per_connection_and_differs_between_connections() {
    bounded(async {
        let (mut listener, id) = start(ServerOptions::default()).await;
        let mut seen = Vec::new();
        for mode in [
            TransportMode::Tcp,
            TransportMode::Tcp,
            TransportMode::Quic,
            TransportMode::Quic,
        ] {
            let (client, server) = pair(&mut listener, &id.pin(), &options(mode)).await;
            assert_eq!(
                client.channel_binding(),
                server.channel_binding(),
                "{mode:?}"
            );
            assert_ne!(client.channel_binding(), [0u8; 32]);
            let (tx, rx) = client.split();
            assert_eq!(tx.channel_binding(), rx.channel_binding());
            seen.push(server.channel_binding());
        }
        for (i, a) in seen.iter().enumerate() {
            for b in &seen[i + 1..] {
                assert_ne!(a, b);
            }
        }
    })
    .await;
}

/// UDP is "blocked": a socket on the relay's UDP port swallows every
/// datagram. Auto mode must settle on TCP soon after the head start.
#[tokio::test]
async fn auto_falls_back_to_tcp_when_udp_is_black_holed() {
    bounded(async {
        let black_hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = black_hole.local_addr().unwrap().port();
        let mut server_opts = ServerOptions::default();
        server_opts.serve_quic = false;
        let identity = RelayIdentity::generate().unwrap();
        let bind: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, port).into();
        let mut listener = listen(bind, &identity, server_opts).await.unwrap();
        assert_eq!(listener.local_addr().port(), port);

        let started = Instant::now();
        let (mut client, mut server) = pair(
            &mut listener,
            &identity.pin(),
            &options(TransportMode::Auto),
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(client.transport(), TransportKind::Tcp);
        assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");

        client.send_block(&block(3)).await.unwrap();
        assert_eq!(server.recv_block().await.unwrap(), Some(block(3)));
        drop(black_hole);
    })
    .await;
}

/// The pin as it appears in a relay address: unpadded base64url.
fn address_pin_text(identity: &RelayIdentity) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = identity.pin().as_bytes().to_vec();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    assert_eq!(out.len(), 43);
    out
}

/// A one-connection SOCKS5 server (no auth, CONNECT only) that records the
/// address type and host it was asked for, then relays bytes.
async fn socks5_server(listener: TcpListener) -> (u8, String) {
    let (mut inbound, _) = listener.accept().await.unwrap();
    let mut greeting = [0u8; 3];
    inbound.read_exact(&mut greeting).await.unwrap();
    assert_eq!(greeting, [5, 1, 0]);
    inbound.write_all(&[5, 0]).await.unwrap();
    let mut head = [0u8; 4];
    inbound.read_exact(&mut head).await.unwrap();
    assert_eq!(head[..3], [5, 1, 0]);
    let atyp = head[3];
    let host = match atyp {
        3 => {
            let len = inbound.read_u8().await.unwrap();
            let mut name = vec![0u8; usize::from(len)];
            inbound.read_exact(&mut name).await.unwrap();
            String::from_utf8(name).unwrap()
        }
        1 => {
            let mut ip = [0u8; 4];
            inbound.read_exact(&mut ip).await.unwrap();
            std::net::Ipv4Addr::from(ip).to_string()
        }
        other => panic!("unexpected address type {other}"),
    };
    let port = inbound.read_u16().await.unwrap();
    // Resolve as a proxy would; tests only ever ask for loopback.
    let target = if host == "localhost" {
        LOCALHOST
    } else {
        &host
    };
    let mut outbound = TcpStream::connect((target, port)).await.unwrap();
    inbound
        .write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    });
    (atyp, host)
}

#[tokio::test]
async fn socks5_carries_tls_and_sends_the_host_name_to_the_proxy() {
    bounded(async {
        let (mut listener, id) = start(ServerOptions::default()).await;
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_url = format!("socks5://{}", proxy.local_addr().unwrap());
        let proxy_task = tokio::spawn(socks5_server(proxy));

        let mut opts = options(TransportMode::Auto);
        opts.proxy = Some(Socks5Proxy::parse(&proxy_url).unwrap());
        let port = listener.local_addr().port();
        let pin = id.pin();
        let (client, accepted) =
            tokio::join!(connect("localhost", port, &pin, &opts), listener.accept());
        let (mut client, mut server) = (client.unwrap(), accepted.unwrap().stream);
        assert_eq!(proxy_task.await.unwrap(), (3, "localhost".to_string()));
        assert_eq!(client.transport(), TransportKind::Tcp);
        assert_eq!(client.channel_binding(), server.channel_binding());

        client.send_block(&block(5)).await.unwrap();
        assert_eq!(server.recv_block().await.unwrap(), Some(block(5)));
        server.send_block(&block(6)).await.unwrap();
        assert_eq!(client.recv_block().await.unwrap(), Some(block(6)));

        // QUIC cannot go through SOCKS5: rejected before any work.
        opts.mode = TransportMode::Quic;
        let err = connect("localhost", port, &id.pin(), &opts)
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::ProxyRequiresTcp), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn socks5_refusal_is_a_typed_error() {
    bounded(async {
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut opts = options(TransportMode::Tcp);
        opts.proxy = Some(Socks5Proxy::new(
            LOCALHOST,
            proxy.local_addr().unwrap().port(),
        ));
        tokio::spawn(async move {
            let (mut s, _) = proxy.accept().await.unwrap();
            let mut buf = [0u8; 3];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&[5, 0]).await.unwrap();
            let mut req = [0u8; 4 + 1 + 9 + 2];
            s.read_exact(&mut req).await.unwrap();
            // Reply 5: connection refused.
            s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
        });
        let pin = RelayPin::from_bytes([1; 32]);
        let err = connect("relay.tld", 443, &pin, &opts).await.unwrap_err();
        assert!(
            matches!(
                err,
                TransportError::Proxy(passage_transport::ProxyError::Refused { reply: 5 })
            ),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn tcp_idle_timeout_closes_an_idle_connection() {
    bounded(async {
        let mut server_opts = ServerOptions::default();
        server_opts.tcp_idle_timeout = Some(Duration::from_millis(300));
        let (mut listener, id) = start(server_opts).await;
        let (_client, mut server) =
            pair(&mut listener, &id.pin(), &options(TransportMode::Tcp)).await;
        let started = Instant::now();
        let err = server.recv_block().await.unwrap_err();
        assert!(matches!(err, TransportError::IdleTimeout), "{err:?}");
        assert!(started.elapsed() >= Duration::from_millis(250));
    })
    .await;
}

#[tokio::test]
async fn quic_idle_timeout_closes_an_idle_connection() {
    bounded(async {
        let mut server_opts = ServerOptions::default();
        server_opts.quic_idle_timeout = Duration::from_millis(300);
        let (mut listener, id) = start(server_opts).await;
        let mut opts = options(TransportMode::Quic);
        opts.keep_alive = None;
        let (mut client, mut server) = pair(&mut listener, &id.pin(), &opts).await;
        let started = Instant::now();
        let err = server.recv_block().await.unwrap_err();
        assert!(matches!(err, TransportError::IdleTimeout), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let err = client.recv_block().await.unwrap_err();
        assert!(matches!(err, TransportError::IdleTimeout), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn quic_keep_alive_holds_an_idle_connection_open() {
    bounded(async {
        let mut server_opts = ServerOptions::default();
        server_opts.quic_idle_timeout = Duration::from_millis(300);
        let (mut listener, id) = start(server_opts).await;
        let mut opts = options(TransportMode::Quic);
        opts.keep_alive = Some(Duration::from_millis(50));
        let (mut client, mut server) = pair(&mut listener, &id.pin(), &opts).await;
        tokio::time::sleep(Duration::from_millis(900)).await;
        client.send_block(&block(8)).await.unwrap();
        assert_eq!(server.recv_block().await.unwrap(), Some(block(8)));
    })
    .await;
}

#[tokio::test]
async fn nothing_listening_fails_fast_and_cleanly() {
    bounded(async {
        // Bind and drop to get a port with (very likely) nothing on it.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pin = RelayPin::from_bytes([2; 32]);
        let mut opts = options(TransportMode::Auto);
        opts.handshake_timeout = Duration::from_secs(2);
        let err = connect(LOCALHOST, port, &pin, &opts).await.unwrap_err();
        assert!(matches!(err, TransportError::Connect(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("127.0.0.1"));
    })
    .await;
}

#[tokio::test]
async fn identity_survives_a_restart() {
    bounded(async {
        let identity = RelayIdentity::generate().unwrap();
        let saved = identity.to_pkcs8_der();
        drop(identity);
        let restored = RelayIdentity::from_pkcs8_der(&saved).unwrap();
        let mut listener = listen(
            "127.0.0.1:0".parse().unwrap(),
            &restored,
            ServerOptions::default(),
        )
        .await
        .unwrap();
        // The client knows the relay only from its printed address.
        let text = format!(
            "passage://{}@127.0.0.1:{}",
            &address_pin_text(&restored),
            listener.local_addr().port()
        );
        let address: RelayAddress = text.parse().unwrap();
        let opts = options(TransportMode::Auto);
        let (client, accepted) = tokio::join!(connect_address(&address, &opts), listener.accept());
        let (mut client, mut server) = (client.unwrap(), accepted.unwrap().stream);
        client.send_block(&block(4)).await.unwrap();
        assert_eq!(server.recv_block().await.unwrap(), Some(block(4)));
    })
    .await;
}

#[tokio::test]
async fn ipv6_loopback_works_on_both_transports() {
    bounded(async {
        let identity = RelayIdentity::generate().unwrap();
        let Ok(mut listener) = listen(
            "[::1]:0".parse().unwrap(),
            &identity,
            ServerOptions::default(),
        )
        .await
        else {
            eprintln!("no IPv6 loopback here; skipping");
            return;
        };
        let port = listener.local_addr().port();
        let pin = identity.pin();
        for mode in [TransportMode::Tcp, TransportMode::Quic] {
            let opts = options(mode);
            let (client, accepted) =
                tokio::join!(connect("[::1]", port, &pin, &opts), listener.accept());
            let accepted = accepted.unwrap();
            assert!(accepted.peer.ip().is_ipv6());
            assert_eq!(format!("{:?}", accepted.peer), "PeerAddr(..)");
            let (mut client, mut server) = (client.unwrap(), accepted.stream);
            client.send_block(&block(7)).await.unwrap();
            assert_eq!(server.recv_block().await.unwrap(), Some(block(7)));
        }
    })
    .await;
}

/// `recv_block` raced in `select!` against a future that is ready on its
/// second poll: reads are cancelled mid-block again and again, and no block
/// may be lost or torn.
#[tokio::test]
async fn recv_block_is_cancel_safe() {
    const COUNT: u32 = 100;
    bounded(async {
        let (mut listener, id) = start(ServerOptions::default()).await;
        for mode in [TransportMode::Tcp, TransportMode::Quic] {
            let (client, mut server) = pair(&mut listener, &id.pin(), &options(mode)).await;
            let (mut tx, _rx) = client.split();
            // Pauses between some blocks make sure the receiver waits (and is cancelled)
            // now and then, whatever the scheduling.
            let sender = tokio::spawn(async move {
                for i in 0..COUNT {
                    tx.send_block(&block(i)).await.unwrap();
                    if i % 10 == 0 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                tx
            });
            let mut got = 0;
            let mut cancelled = 0u32;
            for _ in 0..1_000_000 {
                tokio::select! {
                    r = server.recv_block() => {
                        assert_eq!(r.unwrap(), Some(block(got)), "{mode:?} block {got}");
                        got += 1;
                        if got == COUNT {
                            break;
                        }
                    }
                    () = tokio::task::yield_now() => cancelled += 1,
                }
            }
            assert_eq!(got, COUNT);
            assert!(cancelled > 0);
            drop(sender.await.unwrap());
        }
    })
    .await;
}

/// The relay polls `recv_block_ref` once with a waker that does nothing (its
/// `ready_now`) and only awaits when that finds nothing. Over TCP, bytes read
/// ahead under TLS (several blocks per socket read) must survive those
/// abandoned polls: no block lost, torn or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_blocks_survive_single_polls_with_a_noop_waker() {
    const COUNT: u32 = 400;
    bounded(async {
        let (mut listener, id) = start(ServerOptions::default()).await;
        let opts = options(TransportMode::Tcp);
        let (client, mut server) = pair(&mut listener, &id.pin(), &opts).await;
        let (mut tx, _rx) = client.split();
        let sender = tokio::spawn(async move {
            let mut i = 0;
            for run in [1u32, 2, 5, 7, 16, 33].into_iter().cycle() {
                let end = (i + run).min(COUNT);
                let blocks: Vec<_> = (i..end).map(block).collect();
                tx.send_blocks(&blocks).await.unwrap();
                i = end;
                if i == COUNT {
                    break;
                }
                tokio::task::yield_now().await;
            }
            tx
        });
        let (mut now, mut waited) = (0u32, 0u32);
        for i in 0..COUNT {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let polled = std::pin::pin!(server.recv_block_ref()).poll(&mut cx);
            let got = match polled {
                std::task::Poll::Ready(r) => {
                    now += 1;
                    r.unwrap().cloned()
                }
                std::task::Poll::Pending => {
                    waited += 1;
                    server.recv_block_ref().await.unwrap().cloned()
                }
            };
            assert_eq!(got, Some(block(i)), "block {i}");
        }
        assert_eq!(now + waited, COUNT);
        // Runs of several blocks come in one socket read: most are ready at once.
        assert!(now > 0);
        drop(sender.await.unwrap());
    })
    .await;
}

/// With room for one pending handshake, a silent connection takes it, the
/// next one is turned away, and after the silent one times out there is
/// room again.
#[tokio::test]
async fn pending_handshake_limit_refuses_the_one_past_it() {
    bounded(async {
        let mut server_opts = ServerOptions::default();
        server_opts.max_pending_handshakes = 1;
        server_opts.handshake_timeout = Duration::from_millis(400);
        server_opts.serve_quic = false;
        let (mut listener, id) = start(server_opts).await;
        let port = listener.local_addr().port();

        let silent = TcpStream::connect((LOCALHOST, port)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let turned_away = connect(LOCALHOST, port, &id.pin(), &options(TransportMode::Tcp)).await;
        assert!(turned_away.is_err());

        for _ in 0..100 {
            if listener.failed_handshakes() >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(listener.failed_handshakes(), 1);
        let (mut client, mut server) =
            pair(&mut listener, &id.pin(), &options(TransportMode::Tcp)).await;
        client.send_block(&block(1)).await.unwrap();
        assert_eq!(server.recv_block().await.unwrap(), Some(block(1)));
        drop(silent);
    })
    .await;
}

#[tokio::test]
async fn dropped_listener_accepts_nothing() {
    bounded(async {
        let (listener, id) = start(ServerOptions::default()).await;
        let port = listener.local_addr().port();
        drop(listener);
        for mode in [TransportMode::Tcp, TransportMode::Quic] {
            let mut opts = options(mode);
            opts.handshake_timeout = Duration::from_secs(1);
            assert!(connect(LOCALHOST, port, &id.pin(), &opts).await.is_err());
        }
    })
    .await;
}

/// Dropping a stream without `close` is not a clean close: the peer gets an
/// error, not `None` (over TCP there is no close_notify; over QUIC no FIN).
#[tokio::test]
async fn drop_without_close_is_a_loss_not_a_clean_end() {
    bounded(async {
        let (mut listener, id) = start(ServerOptions::default()).await;
        for mode in [TransportMode::Tcp, TransportMode::Quic] {
            let (mut client, mut server) = pair(&mut listener, &id.pin(), &options(mode)).await;
            client.send_block(&block(1)).await.unwrap();
            assert_eq!(server.recv_block().await.unwrap(), Some(block(1)));
            drop(client);
            let err = server.recv_block().await.unwrap_err();
            assert!(
                matches!(err, TransportError::ConnectionLost),
                "{mode:?}: {err:?}"
            );
        }
    })
    .await;
}

/// The QUIC socket, shared by every QUIC connection, gets the large buffer it asks for, or
/// as much as the kernel allows (Linux caps it at `net.core.rmem_max` and reports twice
/// what it grants).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_quic_socket_gets_large_buffers_up_to_the_kernel_cap() {
    let (listener, _identity) = start(ServerOptions::default()).await;
    let (recv, send) = listener.udp_buffer_sizes().unwrap();
    let cap = |name: &str| -> usize {
        std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let want = passage_transport::SERVER_UDP_SOCKET_BUFFER;
    assert!(recv / 2 >= want.min(cap("rmem_max")), "{recv}");
    assert!(send / 2 >= want.min(cap("wmem_max")), "{send}");
}
