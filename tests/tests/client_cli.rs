//! End-to-end tests of the `passage` CLI: real `passage-relay` processes on loopback and
//! real client vaults, driven through the binary as a script would drive it.
//!
//! Waiting is by event, never by a sleep: `passage receive --json` is run again (a
//! bounded number of times) until what a step expects has been printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client, ok, one_line_error, start};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use passage_crypto::Invitation;
use passage_e2e::{CLI_LIMIT, CliClient, CliOutput, TestRelay, run_limited};
use passage_wire::{QueueAddress, RelayAddress};
use serde_json::Value;

/// `passage receive` runs a step may take before the test gives up on what it waits for.
const RECEIVE_ROUNDS: usize = 6;

/// `--wait` of each `passage receive`: how long it waits for something new.
const RECEIVE_WAIT: &str = "2";

/// The `--json` objects of a run; every stdout line must be one.
fn objects(out: &CliOutput) -> Vec<Value> {
    out.json_lines()
        .into_iter()
        .map(|line| line.unwrap_or_else(|l| panic!("not a JSON line on stdout: {l:?}")))
        .collect()
}

/// Runs `passage receive --json` until `done` holds for the objects printed so far
/// (by this call), at most [`RECEIVE_ROUNDS`] times. Returns every object printed.
fn receive_until(client: &CliClient, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    for _ in 0..RECEIVE_ROUNDS {
        let out = ok(client, &["receive", "--wait", RECEIVE_WAIT, "--json"]);
        seen.extend(objects(&out));
        if done(&seen) {
            return seen;
        }
    }
    panic!("never received {what}; got {seen:?}");
}

fn has(objects: &[Value], kind: &str, contact: &str, id: Option<&str>) -> bool {
    objects
        .iter()
        .any(|o| o["type"] == kind && o["contact"] == contact && id.is_none_or(|id| o["id"] == id))
}

/// `passage send NAME TEXT --json`: the new message's id and status.
fn send(client: &CliClient, name: &str, text: &str) -> (String, String, CliOutput) {
    let out = ok(client, &["send", name, text, "--json"]);
    let objects = objects(&out);
    assert_eq!(objects.len(), 1, "{objects:?}");
    let sent = &objects[0];
    assert_eq!(sent["type"], "sent");
    assert_eq!(sent["contact"], name);
    let id = sent["id"].as_str().expect("an id").to_owned();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let status = sent["status"].as_str().expect("a status").to_owned();
    (id, status, out)
}

fn contacts(client: &CliClient) -> BTreeMap<String, Value> {
    let out = ok(client, &["contacts", "--json"]);
    objects(&out)
        .into_iter()
        .map(|c| {
            assert_eq!(c["type"], "contact");
            (c["contact"].as_str().expect("a name").to_owned(), c)
        })
        .collect()
}

fn history(client: &CliClient, name: &str) -> Vec<Value> {
    objects(&ok(client, &["history", name, "--json"]))
}

/// The history entry with `id`; exactly one must exist.
fn entry<'a>(history: &'a [Value], id: &str) -> &'a Value {
    let found: Vec<&Value> = history.iter().filter(|e| e["id"] == id).collect();
    assert_eq!(found.len(), 1, "{id} appears {} times", found.len());
    found[0]
}

/// Checks a `message` object printed by `receive --json`.
fn check_message(object: &Value, contact: &str, id: &str, text: &str) {
    assert_eq!(object["type"], "message");
    assert_eq!(object["contact"], contact);
    assert_eq!(object["id"], id);
    assert_eq!(object["text"], text);
    let sent_at = object["sent_at"].as_u64().expect("sent_at, unix seconds");
    let received_at = object["received_at"].as_u64().expect("received_at");
    // Both clocks are this machine's: a message is received after it was written.
    assert!(
        sent_at > 1_600_000_000 && received_at >= sent_at,
        "{object}"
    );
}

fn find<'a>(objects: &'a [Value], kind: &str, id: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["type"] == kind && o["id"] == id)
        .unwrap_or_else(|| panic!("no {kind} {id} in {objects:?}"))
}

/// The relay an invitation link's queue is on.
fn invitation_relay(link: &str) -> RelayAddress {
    let invitation = Invitation::from_link(link).expect("an invitation link");
    QueueAddress::decode(invitation.queue())
        .expect("a queue address")
        .relay
}

/// Alice (on relay R1) invites Bob (on relay R2): connected both ways, messages and
/// receipts both ways with every JSON field checked, statuses in the history, safety
/// numbers and verification, and a relay killed: the sender's message waits in its
/// vault and goes out after the relay restarts, while the other direction, on the
/// other relay, carries on.
#[test]
fn two_people_talk_through_the_cli_across_two_relays() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = start();
    let mut r2 = TestRelay::start_restartable(None).unwrap_or_else(|e| panic!("{e}"));
    let alice = client(&dir.path().join("alice"), "alice's passphrase");
    let bob = client(&dir.path().join("bob"), "bob's passphrase");
    ok(&alice, &["init", "--relay", &r1.address().to_string()]);
    ok(&bob, &["init", "--relay", &r2.address().to_string()]);

    // invite prints the link alone on stdout; the queue it names is on Alice's relay.
    let invite = ok(&alice, &["invite", "--name", "bob"]);
    let link = invite.stdout.trim_end_matches('\n');
    assert_eq!(
        invite.stdout,
        format!("{link}\n"),
        "stdout is the link alone"
    );
    assert!(link.starts_with("passage:i1."), "{link}");
    assert_eq!(&invitation_relay(link), r1.address());
    assert_eq!(contacts(&alice)["bob"]["status"], "invited");

    ok(&bob, &["accept", link, "--name", "alice"]);
    assert_eq!(contacts(&bob)["alice"]["status"], "accepted");
    receive_until(&alice, "bob connected", |o| {
        has(o, "connected", "bob", None)
    });
    receive_until(&bob, "alice connected", |o| {
        has(o, "connected", "alice", None)
    });
    for (who, name) in [(&alice, "bob"), (&bob, "alice")] {
        let contacts = contacts(who);
        assert_eq!(contacts.len(), 1);
        assert_eq!(contacts[name]["status"], "connected");
        assert_eq!(contacts[name]["verified"], false);
    }

    // Safety numbers: the same on both sides; verify flips `verified` on one side only.
    let number_alice = ok(&alice, &["safety-number", "bob"]).stdout;
    let number_bob = ok(&bob, &["safety-number", "alice"]).stdout;
    assert_eq!(number_alice, number_bob);
    let digits = objects(&ok(&alice, &["safety-number", "bob", "--json"]))[0]["digits"]
        .as_str()
        .expect("digits")
        .to_owned();
    assert!(digits.len() >= 30 && digits.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        objects(&ok(&bob, &["safety-number", "alice", "--json"]))[0]["digits"],
        digits.as_str()
    );
    ok(&alice, &["verify", "bob"]);
    assert_eq!(contacts(&alice)["bob"]["verified"], true);
    assert_eq!(contacts(&bob)["alice"]["verified"], false);
    // A wrong number typed in is refused and changes nothing.
    let wrong = bob
        .run(&["verify", "alice", "--number", &"1".repeat(digits.len())])
        .unwrap();
    one_line_error(&wrong, "does not match");
    ok(&bob, &["verify", "alice", "--number", &digits]);
    assert_eq!(contacts(&bob)["alice"]["verified"], true);

    // Messages both ways, written while the other side is not running.
    let (a1, status, _) = send(&alice, "bob", "Hello Bob, it is Alice");
    assert_eq!(status, "sent");
    let (b1, status, _) = send(&bob, "alice", "Hello Alice, Bob here");
    assert_eq!(status, "sent");
    let got = receive_until(&bob, "Alice's message", |o| {
        has(o, "message", "alice", Some(&a1))
    });
    check_message(
        find(&got, "message", &a1),
        "alice",
        &a1,
        "Hello Bob, it is Alice",
    );
    let got = receive_until(&alice, "Bob's message and the receipt", |o| {
        has(o, "message", "bob", Some(&b1)) && has(o, "receipt", "bob", Some(&a1))
    });
    check_message(
        find(&got, "message", &b1),
        "bob",
        &b1,
        "Hello Alice, Bob here",
    );
    assert_eq!(find(&got, "receipt", &a1)["status"], "delivered");
    let got = receive_until(&bob, "the receipt", |o| {
        has(o, "receipt", "alice", Some(&b1))
    });
    assert_eq!(find(&got, "receipt", &b1)["contact"], "alice");

    let history_alice = history(&alice, "bob");
    assert_eq!(history_alice.len(), 2, "{history_alice:?}");
    let out = entry(&history_alice, &a1);
    assert_eq!(
        (&out["direction"], &out["status"], &out["text"]),
        (
            &"out".into(),
            &"delivered".into(),
            &"Hello Bob, it is Alice".into()
        )
    );
    let inc = entry(&history_alice, &b1);
    assert_eq!(
        (&inc["direction"], &inc["status"], &inc["text"]),
        (
            &"in".into(),
            &"received".into(),
            &"Hello Alice, Bob here".into()
        )
    );
    assert_eq!(entry(&history(&bob, "alice"), &b1)["status"], "delivered");

    // R2 holds Bob's queue only. With R2 down, Alice's message to Bob stays queued
    // (exit 0, said on stderr); Bob's to Alice goes through R1 as before.
    r2.process.kill().unwrap();
    let (a2, status, queued) = send(&alice, "bob", "Written while the relay was down");
    assert_eq!(status, "queued");
    assert!(queued.stderr.contains("queued"), "{}", queued.stderr);
    assert_eq!(entry(&history(&alice, "bob"), &a2)["status"], "queued");
    let (b2, status, _) = send(&bob, "alice", "R1 still carries this");
    assert_eq!(status, "sent");

    // R2 back on its port: Alice's next receive sends what waited.
    r2.process.restart_same_port().unwrap();
    let got = receive_until(&alice, "Bob's second message", |o| {
        has(o, "message", "bob", Some(&b2))
    });
    check_message(
        find(&got, "message", &b2),
        "bob",
        &b2,
        "R1 still carries this",
    );
    assert_ne!(entry(&history(&alice, "bob"), &a2)["status"], "queued");
    let got = receive_until(&bob, "the queued message", |o| {
        has(o, "message", "alice", Some(&a2))
    });
    check_message(
        find(&got, "message", &a2),
        "alice",
        &a2,
        "Written while the relay was down",
    );
    receive_until(&alice, "the receipt of the queued message", |o| {
        has(o, "receipt", "bob", Some(&a2))
    });

    // In the end: every message once on each side, every outgoing one delivered.
    let history_alice = history(&alice, "bob");
    let history_bob = history(&bob, "alice");
    assert_eq!(history_alice.len(), 4, "{history_alice:?}");
    assert_eq!(history_bob.len(), 4, "{history_bob:?}");
    for id in [&a1, &a2] {
        assert_eq!(entry(&history_alice, id)["status"], "delivered");
        assert_eq!(entry(&history_bob, id)["status"], "received");
    }
    for id in [&b1, &b2] {
        assert_eq!(entry(&history_bob, id)["status"], "delivered");
        assert_eq!(entry(&history_alice, id)["status"], "received");
    }
}

/// Snapshot of every file under `dir`: path → bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            path.is_file(),
            "the vault holds only files: {}",
            path.display()
        );
        files.insert(path.display().to_string(), std::fs::read(&path).unwrap());
    }
    files
}

/// The errors a person or a script meets: an invitation used by someone else, a
/// wrong passphrase (nothing changes on disk), no passphrase and no terminal (an
/// error at once, no waiting for input), and `passwd`.
#[test]
fn used_invitation_wrong_passphrase_no_terminal_and_passwd() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start();
    let address = relay.address().to_string();
    let alice = client(&dir.path().join("alice"), "alice's passphrase");
    let bob = client(&dir.path().join("bob"), "bob's passphrase");
    let mallory = client(&dir.path().join("mallory"), "mallory's passphrase");
    for who in [&alice, &bob, &mallory] {
        ok(who, &["init", "--relay", &address]);
    }
    let link = ok(&alice, &["invite", "--name", "bob"]).stdout;
    let link = link.trim();
    ok(&bob, &["accept", link, "--name", "alice"]);

    // A third vault accepting the used link: refused by Alice's relay, one line,
    // non-zero, and no contact left behind.
    let again = mallory.run(&["accept", link, "--name", "alice"]).unwrap();
    one_line_error(&again, "used already");
    assert!(contacts(&mallory).is_empty());
    // Bob's own second accept: refused before anything is sent.
    let twice = bob.run(&["accept", link, "--name", "alice2"]).unwrap();
    one_line_error(&twice, "used already");
    assert_eq!(contacts(&bob).len(), 1);
    // Bob and Alice are not disturbed by either.
    receive_until(&alice, "bob connected", |o| {
        has(o, "connected", "bob", None)
    });
    receive_until(&bob, "alice connected", |o| {
        has(o, "connected", "alice", None)
    });

    // A wrong passphrase, from the environment or a file: a clear error, and not a
    // byte of the vault changes.
    let before = snapshot(&alice.vault());
    assert!(!before.is_empty());
    let mut command = alice.bare_command(&["contacts"]);
    command.env("PASSAGE_PASSPHRASE", "not alice's passphrase");
    one_line_error(
        &run_limited(command, CLI_LIMIT).unwrap(),
        "wrong passphrase",
    );
    let wrong_file = dir.path().join("wrong.txt");
    std::fs::write(&wrong_file, "bob's passphrase\n").unwrap();
    let mut command = alice.bare_command(&["send", "bob", "never sent"]);
    command.arg("--passphrase-file").arg(&wrong_file);
    one_line_error(
        &run_limited(command, CLI_LIMIT).unwrap(),
        "wrong passphrase",
    );
    assert_eq!(
        snapshot(&alice.vault()),
        before,
        "a wrong passphrase changed the vault"
    );

    // No passphrase anywhere and no terminal: an error at once, whether stdin is
    // closed or a pipe that stays open (a prompt would wait on it for ever; the
    // harness would kill it at CLI_LIMIT and the test would fail).
    let no_passphrase = run_limited(alice.bare_command(&["contacts"]), CLI_LIMIT).unwrap();
    one_line_error(&no_passphrase, "no passphrase");
    assert!(no_passphrase.stderr.contains("--passphrase-file"));
    let mut open_stdin = alice.bare_command(&["receive"]);
    open_stdin.stdin(Stdio::piped());
    one_line_error(
        &run_limited(open_stdin, CLI_LIMIT).unwrap(),
        "no passphrase",
    );
    assert_eq!(snapshot(&alice.vault()), before);

    // passwd: afterwards the old passphrase fails and the new one opens everything.
    let new_file = dir.path().join("new.txt");
    std::fs::write(&new_file, "alice's new passphrase\n").unwrap();
    let new_file = new_file.to_str().unwrap();
    ok(&alice, &["passwd", "--new-passphrase-file", new_file]);
    one_line_error(&alice.run(&["contacts"]).unwrap(), "wrong passphrase");
    let mut command = alice.bare_command(&["contacts", "--json"]);
    command.env("PASSAGE_PASSPHRASE", "alice's new passphrase");
    let out = run_limited(command, CLI_LIMIT).unwrap();
    assert!(out.success(), "{}", out.stderr);
    let listed = objects(&out);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["contact"], "bob");
    assert_eq!(listed[0]["status"], "connected");
    // And the new passphrase works for messaging too.
    let mut command = alice.bare_command(&["send", "bob", "after passwd", "--json"]);
    command.arg("--passphrase-file").arg(new_file);
    let out = run_limited(command, CLI_LIMIT).unwrap();
    assert!(out.success(), "{}", out.stderr);
    let id = objects(&out)[0]["id"].as_str().unwrap().to_owned();
    let got = receive_until(&bob, "the message after passwd", |o| {
        has(o, "message", "alice", Some(&id))
    });
    check_message(find(&got, "message", &id), "alice", &id, "after passwd");
}
