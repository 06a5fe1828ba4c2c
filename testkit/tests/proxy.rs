//! The link-fault proxy with real loopback sockets: losses near their rate and every
//! datagram accounted for, duplicates and reordering, delays (checked as lower bounds
//! only: a slow machine can only make them longer), the dark switch, TCP cuts,
//! bandwidth pacing and blocked transports. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use passage_testkit::proxy::{CutRange, DirectionFaults, LinkCounters, Transports};
use passage_testkit::{LinkFaults, LinkProxy};

/// Longest a test waits for anything.
const WAIT: Duration = Duration::from_secs(30);

/// How often a wait checks again.
const POLL: Duration = Duration::from_millis(10);

/// Waits (bounded) until `done` holds for the proxy's counters; returns them.
fn counters_until(proxy: &LinkProxy, done: impl Fn(&LinkCounters) -> bool) -> LinkCounters {
    let deadline = Instant::now() + WAIT;
    loop {
        let counters = proxy.counters();
        if done(&counters) {
            return counters;
        }
        assert!(Instant::now() < deadline, "never reached: {counters:?}");
        std::thread::sleep(POLL);
    }
}

/// Waits (bounded) until `done` holds.
fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(POLL);
    }
}

/// A UDP sink on loopback: records every datagram (its first 4 bytes, a sequence
/// number) with its arrival time, on a thread that stops when dropped.
struct UdpSink {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<(u32, Instant)>>>,
    stop: Arc<AtomicBool>,
}

impl UdpSink {
    fn start() -> UdpSink {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (record, stopped) = (Arc::clone(&got), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let deadline = Instant::now() + WAIT * 4;
            while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok((len, _)) = socket.recv_from(&mut buf)
                    && len >= 4
                {
                    let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
                    record.lock().unwrap().push((seq, Instant::now()));
                }
            }
        });
        UdpSink { addr, got, stop }
    }

    fn seqs(&self) -> Vec<u32> {
        self.got.lock().unwrap().iter().map(|(s, _)| *s).collect()
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A client socket sending to the proxy.
fn udp_client(proxy: &LinkProxy) -> UdpSocket {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket.connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap();
    socket
}

/// Sends datagrams `range` (each 100 bytes, its number first), in batches that the
/// proxy has read before the next, so that no socket buffer overflows.
fn send_numbered(client: &UdpSocket, proxy: &LinkProxy, range: std::ops::Range<u32>) {
    let start = proxy.counters().up.datagrams;
    let mut sent = 0u64;
    for seq in range {
        let mut datagram = [0u8; 100];
        datagram[..4].copy_from_slice(&seq.to_be_bytes());
        client.send(&datagram).unwrap();
        sent += 1;
        if sent.is_multiple_of(50) {
            counters_until(proxy, |c| c.up.datagrams >= start + sent);
        }
    }
    counters_until(proxy, |c| c.up.datagrams >= start + sent);
}

#[test]
fn udp_loss_comes_near_its_rate_and_every_datagram_is_accounted_for() {
    const SENT: u32 = 2000;
    let sink = UdpSink::start();
    let mut faults = LinkFaults::clean();
    faults.up.loss = 0.3;
    faults.seed = 42;
    let proxy = LinkProxy::start(sink.addr, faults).unwrap();
    let client = udp_client(&proxy);
    send_numbered(&client, &proxy, 0..SENT);
    let counters = proxy.counters();
    // Delivered + dropped = sent, each datagram exactly once.
    until("every datagram delivered or dropped", || {
        sink.seqs().len() as u64 + counters.up.dropped == u64::from(SENT)
    });
    let mut seqs = sink.seqs();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len() as u64 + counters.up.dropped, u64::from(SENT));
    let rate = counters.up.dropped as f64 / f64::from(SENT);
    // σ ≈ 1 point at 2,000 datagrams: ±5 points never fails by chance.
    assert!((0.25..0.35).contains(&rate), "loss {rate}");
    assert_eq!(counters.up.datagrams, u64::from(SENT));
    assert_eq!(counters.up.udp_bytes, u64::from(SENT) * 100);
    assert_eq!(counters.up.duplicated, 0);
    assert_eq!(counters.udp_flows, 1);
}

#[test]
fn udp_duplicates_arrive_twice_and_jitter_reorders() {
    const SENT: u32 = 200;
    let sink = UdpSink::start();
    let mut faults = LinkFaults::clean();
    faults.up = DirectionFaults {
        duplicate: 0.5,
        jitter: Duration::from_millis(100),
        ..DirectionFaults::default()
    };
    let proxy = LinkProxy::start(sink.addr, faults).unwrap();
    let client = udp_client(&proxy);
    send_numbered(&client, &proxy, 0..SENT);
    let duplicated = proxy.counters().up.duplicated;
    assert!(
        duplicated > 0 && duplicated < u64::from(SENT),
        "{duplicated}"
    );
    until("every copy delivered", || {
        sink.seqs().len() as u64 == u64::from(SENT) + duplicated
    });
    let seqs = sink.seqs();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_ne!(
        seqs, sorted,
        "200 datagrams sent at once, 100 ms of jitter: reordered"
    );
    sorted.dedup();
    assert_eq!(sorted, (0..SENT).collect::<Vec<_>>());
}

#[test]
fn udp_delay_holds_each_datagram_at_least_as_long() {
    let sink = UdpSink::start();
    let delay = Duration::from_millis(300);
    let faults = LinkFaults::symmetric(DirectionFaults::delayed(delay));
    let proxy = LinkProxy::start(sink.addr, faults).unwrap();
    let client = udp_client(&proxy);
    let sent_at = Instant::now();
    client.send(&[0u8; 8]).unwrap();
    until("the datagram delivered", || !sink.seqs().is_empty());
    let arrived = sink.got.lock().unwrap()[0].1;
    assert!(arrived.duration_since(sent_at) >= delay);
}

#[test]
fn a_dark_link_drops_every_datagram_until_it_is_light_again() {
    let sink = UdpSink::start();
    let proxy = LinkProxy::start(sink.addr, LinkFaults::clean()).unwrap();
    let client = udp_client(&proxy);
    proxy.set_dark(true);
    assert!(proxy.is_dark());
    send_numbered(&client, &proxy, 0..50);
    assert_eq!(proxy.counters().up.dropped, 50);
    proxy.set_dark(false);
    send_numbered(&client, &proxy, 50..100);
    until("the light half delivered", || sink.seqs().len() == 50);
    assert!(sink.seqs().iter().all(|s| (50..100).contains(s)));
    assert_eq!(proxy.counters().up.dropped, 50);
}

/// A TCP sink: accepts connections, reads each to its end, records the bytes.
struct TcpSink {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<u8>>>,
}

impl TcpSink {
    fn start() -> TcpSink {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming().take(64) {
                let Ok(mut stream) = stream else { break };
                let record = Arc::clone(&record);
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(WAIT)).unwrap();
                    let mut buf = [0u8; 4096];
                    while let Ok(len) = stream.read(&mut buf) {
                        if len == 0 {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..len]);
                    }
                });
            }
        });
        TcpSink { addr, got }
    }

    fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

fn tcp_client(proxy: &LinkProxy) -> TcpStream {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

#[test]
fn tcp_is_delayed_and_paced_to_its_bandwidth() {
    const LEN: usize = 50 * 1024;
    let sink = TcpSink::start();
    let mut faults = LinkFaults::clean();
    faults.up.delay = Duration::from_millis(200);
    faults.up.bytes_per_second = std::num::NonZeroU64::new(100_000);
    let proxy = LinkProxy::start(sink.addr, faults).unwrap();
    let mut client = tcp_client(&proxy);
    let bytes: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    client.write_all(&bytes).unwrap();
    until("everything delivered", || sink.len() == LEN);
    // The delay, then all but the last chunk at 100 kB/s: a lower bound.
    let least = Duration::from_millis(200)
        + Duration::from_secs_f64((LEN - passage_testkit::proxy::TCP_CHUNK) as f64 / 100_000.0);
    assert!(started.elapsed() >= least, "{:?}", started.elapsed());
    assert_eq!(*sink.got.lock().unwrap(), bytes);
    assert_eq!(proxy.counters().up.tcp_bytes, LEN as u64);
}

#[test]
fn a_dark_link_holds_tcp_bytes_until_it_is_light_again() {
    let sink = TcpSink::start();
    let proxy = LinkProxy::start(sink.addr, LinkFaults::clean()).unwrap();
    let mut client = tcp_client(&proxy);
    proxy.set_dark(true);
    client.write_all(b"held").unwrap();
    counters_until(&proxy, |c| c.up.tcp_bytes == 4);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(sink.len(), 0, "bytes crossed a dark link");
    proxy.set_dark(false);
    until("the held bytes delivered", || sink.len() == 4);
    // `go_dark_for` turns light again by itself.
    proxy.go_dark_for(Duration::from_millis(100));
    assert!(proxy.is_dark());
    client.write_all(b"later").unwrap();
    until("the bytes after the dark period", || sink.len() == 9);
    assert!(!proxy.is_dark());
}

#[test]
fn every_tcp_connection_is_cut_within_its_range() {
    let sink = TcpSink::start();
    let mut faults = LinkFaults::clean();
    let range = CutRange {
        min: Duration::from_millis(100),
        max: Duration::from_millis(300),
    };
    faults.cut_after = Some(range);
    faults.seed = 9;
    let proxy = LinkProxy::start(sink.addr, faults).unwrap();
    for n in 1..=5 {
        let mut client = tcp_client(&proxy);
        let opened = Instant::now();
        client.write_all(b"x").unwrap();
        let mut buf = [0u8; 16];
        // The sink never answers: the read ends only by the cut (a reset).
        let read = client.read(&mut buf);
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{read:?}"
        );
        assert!(opened.elapsed() >= range.min);
        assert_eq!(proxy.counters().connections_cut, n);
    }
    assert_eq!(proxy.counters().connections, 5);
}

#[test]
fn a_blocked_transport_is_refused() {
    let sink = TcpSink::start();
    let mut faults = LinkFaults::clean();
    faults.transports = Transports {
        udp: true,
        tcp: false,
    };
    let proxy = LinkProxy::start(sink.addr, faults).unwrap();
    let refused = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    let udp_sink = UdpSink::start();
    let mut faults = LinkFaults::clean();
    faults.transports.udp = false;
    let proxy = LinkProxy::start(udp_sink.addr, faults).unwrap();
    let client = udp_client(&proxy);
    send_numbered(&client, &proxy, 0..10);
    assert_eq!(proxy.counters().up.dropped, 10);
}

#[test]
fn only_loopback_targets_and_sane_settings_are_accepted() {
    let far = SocketAddr::from(([192, 0, 2, 1], 5223));
    assert!(matches!(
        LinkProxy::start(far, LinkFaults::clean()),
        Err(passage_testkit::ProxyError::NotLoopback)
    ));
    let mut faults = LinkFaults::clean();
    faults.up.loss = -0.1;
    let near = SocketAddr::from((Ipv4Addr::LOCALHOST, 5223));
    assert!(matches!(
        LinkProxy::start(near, faults),
        Err(passage_testkit::ProxyError::Settings(_))
    ));
}
