//! The seized-device test: two people talk through the `passage` CLI using distinctive
//! marker strings — in their messages, their contacts' names, their passphrases and
//! the host names of their relays — then every byte the clients wrote is searched for
//! those markers as someone imaging the phone would ([`passage_e2e::scan`]): plain
//! text (as written, lower and upper case), UTF-16 (LE and BE), hex (lower and upper
//! case) and base64 (standard and URL-safe alphabets, all three alignments). Files
//! must also look random: byte entropy of at least 7.9 bits per byte (for files of
//! 4 KiB or more), no known file signature at their start, no telling file names; and
//! nothing may be written outside the data directory (the child's `HOME` and `TMPDIR`
//! stay empty).
//!
//! # Relay host names
//!
//! The markers must be in the relay addresses the clients store, so the relays are
//! reached by marker host names (`*.example`), which no resolver here knows and which
//! a `*.localhost` trick cannot be relied on for (glibc's resolver does not map
//! `*.localhost` to loopback; systemd-resolved does, and CI may have either). Instead
//! the clients use `--socks5` with a small SOCKS5 proxy in this test that connects
//! every requested name to 127.0.0.1 on the requested port: the client hands the host
//! name to the proxy unresolved (SOCKS5 address type 3, as it does for Tor), so this
//! works on any machine, and the proxy records which names were asked for, proving
//! the marker hosts were used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::ok;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use passage_e2e::scan::{base64, files_under, needles, scan};
use passage_e2e::{CliClient, TestRelay};

// ---------------------------------------------------------------------------
// Markers

const HOST_ALICE: &str = "quillmarsh-relay-4471.example";
const HOST_BOB: &str = "thornbury-relay-9283.example";
const PASSPHRASE_ALICE: &str = "marigold-trampoline-5519";
const PASSPHRASE_BOB: &str = "buttercup-saxophone-7730";
/// Alice's name for Bob, Bob's for Alice, and an invitation nobody accepts.
const NAME_BOB: &str = "Ximena Castellanos-Ruiz";
const NAME_ALICE: &str = "Father Bartholomew Okonkwo";
const NAME_PENDING: &str = "Yusuf Ravensworth-Adeyemi";
const TEXT_1: &str = "Meet at the old mill at four: ZEBRAFINCH-8841";
const TEXT_2: &str = "The papers are with Señora Ölberg-Quintana";
const TEXT_3: &str = "Understood, KESTREL-PINEAPPLE-2207 confirmed";

/// Every marker and the distinctive parts of each (10 bytes or more), so that a
/// marker split or re-encoded in part is still caught.
fn markers() -> Vec<String> {
    [
        HOST_ALICE,
        "quillmarsh",
        HOST_BOB,
        "thornbury-relay",
        PASSPHRASE_ALICE,
        PASSPHRASE_BOB,
        NAME_BOB,
        "Castellanos",
        NAME_ALICE,
        "Bartholomew",
        NAME_PENDING,
        "Ravensworth",
        TEXT_1,
        "ZEBRAFINCH",
        TEXT_2,
        "Ölberg-Quintana",
        TEXT_3,
        "KESTREL-PINEAPPLE",
    ]
    .map(str::to_owned)
    .to_vec()
}

// ---------------------------------------------------------------------------
// A SOCKS5 proxy that connects every name to loopback

/// Accepts SOCKS5 `CONNECT`s (no authentication) and connects each to 127.0.0.1 on
/// the requested port, whatever the name; records the names. Stops when dropped.
struct LoopbackSocks5 {
    port: u16,
    names: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackSocks5 {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let names = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (names, stop) = (names.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let names = names.clone();
                            std::thread::spawn(move || {
                                let _ = serve_socks5(client, &names);
                            });
                        }
                        // Nothing to accept: look at `stop` again shortly.
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Self {
            port,
            names,
            stop,
            thread: Some(thread),
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn names(&self) -> Vec<String> {
        self.names.lock().unwrap().clone()
    }
}

impl Drop for LoopbackSocks5 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One SOCKS5 session (RFC 1928): greeting, `CONNECT` by name, then bytes both ways.
fn serve_socks5(mut client: TcpStream, names: &Mutex<Vec<String>>) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = [0u8; 2];
    client.read_exact(&mut head)?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods)?;
    if head[0] != 5 || !methods.contains(&0) {
        return client.write_all(&[5, 0xff]);
    }
    client.write_all(&[5, 0])?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request)?;
    let name = match request[3] {
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len)?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip)?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        _ => return client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    names.lock().unwrap().push(name);
    if request[1] != 1 {
        return client.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", u16::from_be_bytes(port))) else {
        return client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
    };
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
    client.set_read_timeout(None)?;
    let (mut client_read, mut upstream_write) = (client.try_clone()?, upstream.try_clone()?);
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut upstream_write);
        let _ = upstream_write.shutdown(Shutdown::Write);
    });
    let (mut upstream_read, mut client_write) = (upstream, client);
    let _ = std::io::copy(&mut upstream_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = forward.join();
    Ok(())
}

// ---------------------------------------------------------------------------
// The test

/// Runs `passage receive` (bounded) until its output, over the runs, contains `what`.
fn receive_until(client: &CliClient, what: &[&str]) {
    let mut seen = String::new();
    for _ in 0..6 {
        seen.push_str(&ok(client, &["receive", "--wait", "2", "--json"]).stdout);
        if what.iter().all(|w| seen.contains(w)) {
            return;
        }
    }
    panic!("never received {what:?}; got {seen}");
}

/// The relay's printed address with its host replaced by `host`.
fn address_with_host(relay: &TestRelay, host: &str) -> String {
    let address = relay.address();
    let text = address.to_string();
    let at = text.rfind('@').unwrap();
    format!("{}@{host}:{}", &text[..at], address.port())
}

#[test]
fn a_seized_device_holds_no_marker_and_nothing_but_random_looking_files() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = TestRelay::start(None).unwrap_or_else(|e| panic!("{e}"));
    let r2 = TestRelay::start(None).unwrap_or_else(|e| panic!("{e}"));
    let proxy = LoopbackSocks5::start();
    let mut alice = CliClient::new(&dir.path().join("a"), PASSPHRASE_ALICE).unwrap();
    let mut bob = CliClient::new(&dir.path().join("b"), PASSPHRASE_BOB).unwrap();
    alice.set_socks5(&proxy.address());
    bob.set_socks5(&proxy.address());

    ok(
        &alice,
        &["init", "--relay", &address_with_host(&r1, HOST_ALICE)],
    );
    ok(
        &bob,
        &["init", "--relay", &address_with_host(&r2, HOST_BOB)],
    );
    let link = ok(&alice, &["invite", "--name", NAME_BOB]).stdout;
    ok(&alice, &["invite", "--name", NAME_PENDING]);
    ok(&bob, &["accept", link.trim(), "--name", NAME_ALICE]);
    receive_until(&alice, &[r#""type":"connected""#]);
    receive_until(&bob, &[r#""type":"connected""#]);
    ok(&alice, &["send", NAME_BOB, TEXT_1]);
    ok(&alice, &["send", NAME_BOB, TEXT_2]);
    receive_until(&bob, &["ZEBRAFINCH", "Quintana"]);
    ok(&bob, &["send", NAME_ALICE, TEXT_3]);
    receive_until(&alice, &["KESTREL", r#""type":"receipt""#]);
    receive_until(&bob, &[r#""type":"receipt""#]);

    // The markers are in the vaults (encrypted): both histories show them.
    let history = ok(&alice, &["history", NAME_BOB]).stdout;
    assert!(history.contains(TEXT_1) && history.contains(TEXT_2) && history.contains(TEXT_3));
    let history = ok(&bob, &["history", NAME_ALICE]).stdout;
    assert!(history.contains(TEXT_1) && history.contains(TEXT_2) && history.contains(TEXT_3));
    assert!(ok(&alice, &["contacts"]).stdout.contains(NAME_PENDING));
    // And the relays were reached by the marker names, through the proxy only.
    let names = proxy.names();
    assert!(names.iter().any(|n| n == HOST_ALICE), "{names:?}");
    assert!(names.iter().any(|n| n == HOST_BOB), "{names:?}");
    assert!(
        names.iter().all(|n| n == HOST_ALICE || n == HOST_BOB),
        "{names:?}"
    );

    let markers = markers();
    for client in [&alice, &bob] {
        let (findings, scanned) = scan(&client.vault(), &markers).unwrap();
        assert!(findings.is_empty(), "{findings:#?}");
        assert!(
            scanned >= 2,
            "the vault should hold a key-slot file and a segment"
        );
        for outside in [client.home(), client.tmp()] {
            let written = files_under(&outside).unwrap();
            assert!(
                written.is_empty(),
                "the client wrote outside its data directory: {written:?}"
            );
        }
    }
}

/// The scanner itself: it finds each encoding of a marker planted in random bytes, and
/// random bytes pass.
#[test]
fn the_scanner_finds_every_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut random = vec![0u8; 64 * 1024];
    getrandom::fill(&mut random).unwrap();
    std::fs::write(dir.path().join("0123456789abcdef0123456789abcdef"), &random).unwrap();
    assert_eq!(scan(dir.path(), &markers()).unwrap(), (Vec::new(), 1));

    for (form, needle) in needles(TEXT_2) {
        for offset in [0, 1, 2, 5000] {
            let planted = tempfile::tempdir().unwrap();
            let mut bytes = random.clone();
            bytes[offset + 7..offset + 7 + needle.len()].copy_from_slice(&needle);
            std::fs::write(planted.path().join("f"), &bytes).unwrap();
            let (findings, _) = scan(planted.path(), &markers()).unwrap();
            assert!(!findings.is_empty(), "{form} at {offset} not caught");
        }
    }
    // A real base64 encoder's output of text around the marker, at each alignment.
    for prefix in ["", "a", "ab"] {
        let planted = tempfile::tempdir().unwrap();
        let text = format!("{prefix}{TEXT_1} and more");
        let mut padded = text.into_bytes();
        padded.resize(padded.len().div_ceil(3) * 3, b' ');
        let mut bytes = random.clone();
        bytes.extend_from_slice(base64(&padded, false).as_bytes());
        std::fs::write(planted.path().join("f"), &bytes).unwrap();
        assert!(!scan(planted.path(), &markers()).unwrap().0.is_empty());
    }
    // Low entropy and a signature are caught too.
    for bytes in [
        vec![b'a'; 8192],
        [b"SQLite format 3\0".as_slice(), &random].concat(),
    ] {
        let planted = tempfile::tempdir().unwrap();
        std::fs::write(planted.path().join("f"), &bytes).unwrap();
        assert!(!scan(planted.path(), &markers()).unwrap().0.is_empty());
    }
}
