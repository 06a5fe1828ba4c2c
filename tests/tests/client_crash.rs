//! Crash safety of the client: `passage send` and `passage receive` killed with
//! SIGKILL at arbitrary moments (while Argon2id runs, while committing, while talking
//! to the relay), then the vault reopened: it opens, nothing acknowledged is lost,
//! nothing is duplicated, and everything eventually arrives exactly once.
//!
//! Kill moments are spread over the length of an uninterrupted run, measured first,
//! with random jitter; the checks do not depend on which moments were hit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::ok;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use passage_client::agent::{Agent, AgentOptions, MessageStatus};
use passage_client::vault::{Credentials, Passphrase};
use passage_e2e::{CliClient, CliOutput, TestRelay};
use serde_json::Value;

/// How long to wait for one line of a `passage receive` that should print one (a hang
/// guard, not a timing expectation).
const LINE_LIMIT: Duration = Duration::from_secs(60);

const PASSPHRASE: &str = "crash test passphrase";

fn objects(out: &CliOutput) -> Vec<Value> {
    out.json_lines()
        .into_iter()
        .map(|line| line.unwrap_or_else(|l| panic!("not JSON: {l:?}")))
        .collect()
}

/// A random number below `bound`.
fn random_below(bound: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes) % bound.max(1)
}

/// Alice and Bob on one relay, connected through the CLI.
fn connected_pair(dir: &Path, relay: &TestRelay) -> (CliClient, CliClient) {
    let alice = CliClient::new(&dir.join("alice"), PASSPHRASE).unwrap();
    let bob = CliClient::new(&dir.join("bob"), PASSPHRASE).unwrap();
    let address = relay.address().to_string();
    ok(&alice, &["init", "--relay", &address]);
    ok(&bob, &["init", "--relay", &address]);
    let link = ok(&alice, &["invite", "--name", "bob"]).stdout;
    ok(&bob, &["accept", link.trim(), "--name", "alice"]);
    for (who, name) in [(&alice, "bob"), (&bob, "alice")] {
        let connected = (0..6).any(|_| {
            let out = ok(who, &["receive", "--wait", "2", "--json"]);
            objects(&out)
                .iter()
                .any(|o| o["type"] == "connected" && o["contact"] == name)
        });
        assert!(connected, "{name} never connected");
    }
    (alice, bob)
}

/// A history as (id, direction, text, status), in order.
fn history(client: &CliClient, name: &str) -> Vec<(String, String, String, String)> {
    objects(&ok(client, &["history", name, "--json"]))
        .into_iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (
                field("id"),
                field("direction"),
                field("text"),
                field("status"),
            )
        })
        .collect()
}

/// Asserts that no id and no text appears twice.
fn assert_no_duplicates(history: &[(String, String, String, String)], whose: &str) {
    let ids: BTreeSet<_> = history.iter().map(|e| &e.0).collect();
    assert_eq!(ids.len(), history.len(), "{whose} history repeats an id");
    let texts: BTreeSet<_> = history.iter().map(|e| (&e.1, &e.2)).collect();
    assert_eq!(texts.len(), history.len(), "{whose} history repeats a text");
}

/// Runs `receive` (bounded) until `done` holds for the history of `name`.
fn receive_until(
    client: &CliClient,
    name: &str,
    what: &str,
    done: impl Fn(&[(String, String, String, String)]) -> bool,
) {
    for _ in 0..8 {
        ok(client, &["receive", "--wait", "2"]);
        if done(&history(client, name)) {
            return;
        }
    }
    panic!(
        "never reached: {what}; history: {:?}",
        history(client, name)
    );
}

/// Waits for a killed (or finished) child; `Some(stdout)` if it exited 0 on its own,
/// `None` if our SIGKILL ended it. Any other end fails the test.
fn reap(mut child: Child) -> Option<String> {
    let stdout = passage_e2e::read_to_end_in_thread(child.stdout.take());
    let stderr = passage_e2e::read_to_end_in_thread(child.stderr.take());
    let status = child.wait().unwrap();
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    if status.success() {
        return Some(stdout);
    }
    assert_eq!(
        status.signal(),
        Some(9),
        "the client failed on its own ({status}): {stderr}"
    );
    None
}

/// `passage send` killed at moments spread over an uninterrupted send's duration:
/// the vault always opens again; every send that exited 0 is in the history once and
/// reaches Bob once; whatever a killed send had committed goes out with the next run
/// and also arrives once; nothing is duplicated on either side.
#[test]
fn killed_during_sends_nothing_acknowledged_is_lost_or_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(None).unwrap_or_else(|e| panic!("{e}"));
    let (alice, bob) = connected_pair(dir.path(), &relay);

    // How long a send takes here, uninterrupted.
    let started = Instant::now();
    let first = objects(&ok(
        &alice,
        &["send", "bob", "before the crashes", "--json"],
    ));
    let full = started.elapsed();
    let mut acknowledged = vec![(
        first[0]["id"].as_str().unwrap().to_owned(),
        "before the crashes".to_owned(),
    )];

    const ROUNDS: u64 = 15;
    // Moments from 0 to twice a full send (runs in parallel with other tests are
    // slower), one slice per round, random within it.
    let slice = (full.as_millis() as u64 * 2) / ROUNDS;
    let mut killed = 0;
    for round in 0..ROUNDS {
        let text = format!("crash round {round:02}");
        let mut command = alice.command(&["send", "bob", &text, "--json"]);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(round * slice + random_below(slice)));
        let _ = child.kill();
        match reap(child) {
            Some(stdout) => {
                let sent: Value = serde_json::from_str(stdout.trim()).unwrap();
                assert_eq!(sent["status"], "sent");
                acknowledged.push((sent["id"].as_str().unwrap().to_owned(), text));
            }
            None => killed += 1,
        }
    }
    assert!(killed > 0, "no send was killed");

    // The vault opens and works; this send also sends what killed ones left queued.
    let last = objects(&ok(&alice, &["send", "bob", "after the crashes", "--json"]));
    acknowledged.push((
        last[0]["id"].as_str().unwrap().to_owned(),
        "after the crashes".to_owned(),
    ));

    // Alice's history: every acknowledged send once, nothing twice.
    let alice_history = history(&alice, "bob");
    assert_no_duplicates(&alice_history, "Alice's");
    for (id, text) in &acknowledged {
        let found: Vec<_> = alice_history.iter().filter(|e| &e.0 == id).collect();
        assert_eq!(
            found.len(),
            1,
            "acknowledged send {text:?} not once in history"
        );
        assert_eq!((&found[0].1, &found[0].2), (&"out".to_owned(), text));
    }
    // Whatever Alice has (acknowledged or committed by a killed run) reaches Bob once.
    eprintln!(
        "{killed} of {ROUNDS} sends killed, {} of them after their commit",
        alice_history.len() - acknowledged.len()
    );
    let outgoing: BTreeMap<String, String> = alice_history
        .iter()
        .map(|e| (e.0.clone(), e.2.clone()))
        .collect();
    receive_until(&bob, "alice", "every message at Bob", |h| {
        outgoing.keys().all(|id| h.iter().any(|e| &e.0 == id))
    });
    let bob_history = history(&bob, "alice");
    assert_no_duplicates(&bob_history, "Bob's");
    let incoming: BTreeMap<String, String> = bob_history
        .iter()
        .map(|e| {
            assert_eq!(e.1, "in");
            (e.0.clone(), e.2.clone())
        })
        .collect();
    assert_eq!(
        incoming, outgoing,
        "Bob got other messages than Alice wrote"
    );
    // And every receipt comes back: all delivered, still nothing twice.
    receive_until(&alice, "bob", "every message delivered", |h| {
        h.iter().all(|e| e.3 == "delivered")
    });
    let alice_after = history(&alice, "bob");
    assert_no_duplicates(&alice_after, "Alice's");
    assert_eq!(alice_after.len(), alice_history.len());
}

const BURST: usize = 60;

/// Bob's `passage receive` killed while 60 messages pour in — after a given number of
/// them has been printed, and at random moments — then run again: Bob ends with every
/// message once, in order, and Alice sees every one delivered.
#[test]
fn killed_during_receives_every_message_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(None).unwrap_or_else(|e| panic!("{e}"));
    let (alice, bob) = connected_pair(dir.path(), &relay);

    // Alice writes the burst through the library (60 CLI runs would cost 60 Argon2s).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sent: Vec<(String, String)> = runtime.block_on(async {
        let credentials = Credentials::new(Passphrase::from_bytes(PASSPHRASE.as_bytes().to_vec()));
        let mut agent = Agent::open(alice.vault(), &credentials, AgentOptions::default()).unwrap();
        let mut sent = Vec::new();
        for i in 0..BURST {
            let text = format!("burst {i:02}");
            let report = agent.send_text("bob", &text).await.unwrap();
            assert_eq!(report.status, MessageStatus::Sent);
            sent.push((report.id.to_hex(), text));
        }
        agent.close().await;
        sent
    });

    // A receive killed as it prints its first message; another at a random moment
    // between its start and then (open, connect, subscribe, first commits).
    let started = Instant::now();
    let mut command = bob.command(&["receive", "--wait", "30", "--json"]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let first_line = {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        started.elapsed()
    };
    let _ = child.kill();
    assert!(reap(child).is_none(), "receive --wait 30 ended by itself");
    let mut command = bob.command(&["receive", "--wait", "30", "--json"]);
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(random_below(
        first_line.as_millis() as u64 + 200,
    )));
    let _ = child.kill();
    assert!(reap(child).is_none(), "receive --wait 30 ended by itself");

    // Receives killed after 1, 5, 12 and 20 messages printed.
    for after in [1, 5, 12, 20] {
        // Relays deliver a window of messages at once, so the earlier kills may have
        // let Bob commit many: a round waits only for what is left.
        let left = BURST - history(&bob, "alice").len();
        let after = after.min(left);
        if after == 0 {
            break;
        }
        let mut command = bob.command(&["receive", "--wait", "30", "--json"]);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines, seen) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut messages = 0;
        while messages < after {
            let line = seen
                .recv_timeout(LINE_LIMIT)
                .unwrap_or_else(|_| panic!("receive printed no more after {messages}"));
            let object: Value = serde_json::from_str(&line).unwrap();
            if object["type"] == "message" {
                messages += 1;
            }
        }
        let _ = child.kill();
        drop(seen);
        assert!(reap(child).is_none(), "receive --wait 30 ended by itself");
        let _ = reader.join();
    }

    // The vault opens; the rest comes; every message once, in order.
    receive_until(&bob, "alice", "the whole burst at Bob", |h| {
        h.len() >= BURST
    });
    let bob_history = history(&bob, "alice");
    assert_no_duplicates(&bob_history, "Bob's");
    let got: Vec<(String, String)> = bob_history
        .iter()
        .map(|e| (e.0.clone(), e.2.clone()))
        .collect();
    assert!(
        got == sent,
        "Bob's history is not the burst, once and in order"
    );
    assert!(bob_history.iter().all(|e| e.3 == "received"));
    // Every receipt (some sent by runs that were killed) reaches Alice.
    receive_until(&alice, "bob", "the whole burst delivered", |h| {
        h.len() == BURST && h.iter().all(|e| e.3 == "delivered")
    });
}
