//! Bad links, measured: two people through the link-fault proxy in front of a real
//! `passage-relay` process, with the real `passage` CLI, on a clean loopback link and
//! on (a) QUIC with 30 % loss each way and a 1 s round trip, (b) TLS/TCP with a 1 s
//! round trip and every connection cut 2–6 s after it opened, (c) a link dark for 20 s
//! in the middle of the messages. For each: the time to connect two people, to deliver
//! 20 messages each way, the bytes on the wire per message and the reconnections.
//! Then the bytes of one envelope (a text message or a receipt: both are one padded
//! envelope) over an established link, per transport.
//!
//! `cargo bench -p passage-e2e --bench bad_links` (add `-- clean quic` to run only the
//! links whose names contain those words). Every phase is bounded by [`PHASE_LIMIT`]:
//! a link that does not get through is reported as failed, with why, not waited for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use passage_client::relay::{Event, SenderCredentials};
use passage_crypto::ENVELOPE_LEN;
use passage_e2e::conversation::{ConversationPlan, Phase, converse};
use passage_e2e::proxy::CutRange;
use passage_e2e::{CliClient, LinkCounters, LinkFaults, LinkProxy, TestRelay};
use passage_transport::TransportMode;

/// Messages each way.
const MESSAGES: usize = 20;

/// Longest time for one phase; past it the phase is reported as failed.
const PHASE_LIMIT: Duration = Duration::from_secs(180);

/// Envelopes sent in the per-envelope measurement.
const ENVELOPES: usize = 20;

struct Link {
    name: &'static str,
    key: &'static str,
    faults: LinkFaults,
    transport: Option<&'static str>,
    bob_runs: bool,
    dark: Option<Duration>,
}

fn links() -> Vec<Link> {
    let rtt = Duration::from_secs(1);
    let mut lossy = LinkFaults::with_rtt(rtt);
    lossy.up.loss = 0.3;
    lossy.down.loss = 0.3;
    lossy.seed = 1;
    let mut cut = LinkFaults::with_rtt(rtt);
    cut.cut_after = Some(CutRange {
        min: Duration::from_secs(2),
        max: Duration::from_secs(6),
    });
    cut.seed = 2;
    vec![
        Link {
            name: "clean loopback (auto)",
            key: "clean",
            faults: LinkFaults::clean(),
            transport: None,
            bob_runs: false,
            dark: None,
        },
        Link {
            name: "(a) QUIC, 30% loss each way, 1 s RTT",
            key: "quic",
            faults: lossy,
            transport: Some("quic"),
            bob_runs: false,
            dark: None,
        },
        Link {
            name: "(b) TLS, 1 s RTT, cut after 2-6 s, `run`",
            key: "tls",
            faults: cut,
            transport: Some("tcp"),
            bob_runs: true,
            dark: None,
        },
        Link {
            name: "(c) TLS, dark 20 s mid-run, `run`",
            key: "dark",
            faults: LinkFaults::clean(),
            transport: Some("tcp"),
            bob_runs: true,
            dark: Some(Duration::from_secs(20)),
        },
    ]
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!(
        "bad links: {MESSAGES} messages each way through the link-fault proxy, real relay and CLI"
    );
    println!(
        "(each CLI command opens its own connection and unlocks the vault: ~0.5 s of Argon2id)"
    );
    println!();
    println!(
        "{:<42} {:>10} {:>12} {:>12} {:>11} {:>11} {:>7}",
        "link", "connect", "20 to Bob", "20 to Alice", "B/message", "reconnects", "cuts"
    );
    for link in links() {
        if !filters.is_empty() && !filters.iter().any(|f| link.key.contains(f.as_str())) {
            continue;
        }
        run_link(&link);
    }
    if filters.is_empty() || filters.iter().any(|f| f == "envelope") {
        println!();
        envelope_bytes();
    }
}

fn seconds(phase: &Phase) -> String {
    match &phase.outcome {
        Some(Ok(took)) => format!("{:.1} s", took.as_secs_f64()),
        Some(Err(_)) => "FAILED".to_owned(),
        None => "-".to_owned(),
    }
}

fn run_link(link: &Link) {
    let relay = TestRelay::start(None).unwrap();
    let proxy = LinkProxy::in_front_of(relay.address(), link.faults).unwrap();
    let address = proxy.address(relay.address()).to_string();
    let root = tempfile::tempdir().unwrap();
    let alice = CliClient::new(&root.path().join("alice"), "alice's passphrase").unwrap();
    let bob = CliClient::new(&root.path().join("bob"), "bob's passphrase").unwrap();
    for who in [&alice, &bob] {
        let out = who.run(&["init", "--relay", &address]).unwrap();
        assert!(out.success(), "init: {}", out.stderr);
    }
    let plan = ConversationPlan {
        messages: MESSAGES,
        bob_runs: link.bob_runs,
        phase_limit: PHASE_LIMIT,
        global: link
            .transport
            .map(|t| vec!["--transport".to_owned(), t.to_owned()])
            .unwrap_or_default(),
        midway: link.dark.map(|period| {
            let proxy = &proxy;
            Box::new(move || proxy.go_dark_for(period)) as Box<dyn FnOnce()>
        }),
        counters: Some(Box::new(|| proxy.counters())),
    };
    let started = Instant::now();
    let report = converse(&alice, &bob, plan);
    let messaging = [&report.to_bob, &report.to_alice];
    let delivered: usize = messaging.iter().map(|p| p.received.len()).sum();
    let bytes: u64 = messaging.iter().map(|p| p.link.bytes()).sum();
    let per_message = if delivered > 0 {
        format!("{}", bytes / delivered as u64)
    } else {
        "-".to_owned()
    };
    let phases = [&report.connect, &report.to_bob, &report.to_alice];
    let reconnects: u64 = phases.iter().map(|p| p.reconnects()).sum();
    let cuts: u64 = phases.iter().map(|p| p.link.connections_cut).sum();
    println!(
        "{:<42} {:>10} {:>12} {:>12} {:>11} {:>11} {:>7}",
        link.name,
        seconds(&report.connect),
        seconds(&report.to_bob),
        seconds(&report.to_alice),
        per_message,
        reconnects,
        cuts
    );
    for (name, phase) in [
        ("connect", &report.connect),
        ("to Bob", &report.to_bob),
        ("to Alice", &report.to_alice),
    ] {
        if let Some(Err(why)) = &phase.outcome {
            let why = why.lines().next().unwrap_or_default();
            println!("    {name} failed: {why}");
        }
    }
    let total: LinkCounters = phases
        .iter()
        .fold(LinkCounters::default(), |sum, p| add(sum, &p.link));
    println!(
        "    {delivered} of {} delivered in {:.0} s; {} CLI runs; wire: {} B up, {} B down, {} datagrams dropped, {} TCP connections, {} UDP flows",
        2 * MESSAGES,
        started.elapsed().as_secs_f64(),
        phases.iter().map(|p| p.invocations).sum::<u64>(),
        total.up.bytes(),
        total.down.bytes(),
        total.up.dropped + total.down.dropped,
        total.connections,
        total.udp_flows,
    );
}

fn add(sum: LinkCounters, more: &LinkCounters) -> LinkCounters {
    let mut sum = sum;
    sum.up.udp_bytes += more.up.udp_bytes;
    sum.up.tcp_bytes += more.up.tcp_bytes;
    sum.up.dropped += more.up.dropped;
    sum.down.udp_bytes += more.down.udp_bytes;
    sum.down.tcp_bytes += more.down.tcp_bytes;
    sum.down.dropped += more.down.dropped;
    sum.connections += more.connections;
    sum.udp_flows += more.udp_flows;
    sum.connections_cut += more.connections_cut;
    sum
}

/// Bytes on the wire of one envelope over an established link (clean loopback
/// through the proxy, TLS and QUIC overhead included; IP/UDP/TCP headers not): the
/// sender's `SEND` and the relay's `OK`, then the delivery (`MSG`) and the recipient's
/// `ACK`. A receipt is an envelope like a text, so it costs the same.
fn envelope_bytes() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("one envelope (a text or a receipt) over an established link, {ENVELOPES} sent:");
    println!(
        "{:<6} {:>12} {:>14} {:>16}",
        "", "connect", "SEND + OK", "MSG + ACK"
    );
    for (name, mode) in [("TLS", TransportMode::Tcp), ("QUIC", TransportMode::Quic)] {
        let relay = TestRelay::start(None).unwrap();
        let proxy = LinkProxy::in_front_of(relay.address(), LinkFaults::clean()).unwrap();
        let address = proxy.address(relay.address());
        runtime.block_on(async {
            let mut rng = passage_e2e::rng();
            let before = proxy.counters();
            let mut recipient = passage_e2e::connect(&address, mode).await.unwrap();
            let connect = proxy.counters().minus(&before).bytes();
            let queue = recipient.create_queue(None).await.unwrap();
            let sender = passage_e2e::connect(&address, mode).await.unwrap();
            let mut credentials = SenderCredentials::generate(&mut rng);
            // The first SEND names the sender key; the measured ones do not.
            let body = [0x42; ENVELOPE_LEN];
            sender
                .send(queue.sender_id(), &credentials, &body)
                .await
                .unwrap();
            credentials.mark_key_fixed();
            let before = proxy.counters();
            for _ in 0..ENVELOPES {
                sender
                    .send(queue.sender_id(), &credentials, &body)
                    .await
                    .unwrap();
            }
            let sends = proxy.counters().minus(&before).bytes();
            recipient.subscribe(&queue).await.unwrap();
            let before = proxy.counters();
            let mut got = 0;
            while got < ENVELOPES + 1 {
                let event = tokio::time::timeout(Duration::from_secs(30), recipient.next_event())
                    .await
                    .expect("a delivery in time");
                if let Some(Event::Message { msg_id, .. }) = event {
                    recipient.ack(&queue, msg_id).await.unwrap();
                    got += 1;
                }
            }
            let deliveries = proxy.counters().minus(&before).bytes();
            println!(
                "{:<6} {:>10} B {:>12} B {:>14} B",
                name,
                connect,
                sends / ENVELOPES as u64,
                deliveries / (ENVELOPES as u64 + 1),
            );
        });
    }
    println!(
        "(a {ENVELOPE_LEN}-byte envelope travels in one 4096-byte block; a connection costs the handshake plus the hellos)"
    );
}
