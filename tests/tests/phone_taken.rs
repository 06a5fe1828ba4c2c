//! When the phone is taken: the duress passphrase and its decoy profile, the panic
//! wipe, disappearing messages, no-history mode, `passage run`'s idle lock and the
//! `--at-risk` default, all through the real `passage` binary against real relay
//! processes, each followed by the seized-device scan ([`passage_e2e::scan`]) of what
//! the client left on disk.
//!
//! Where "gone" must mean "unrecoverable even with the passphrase", the test also
//! opens the vault through the library ([`Vault::open`], which replays the log but,
//! unlike the CLI, deletes nothing) and looks for the markers in every live key and
//! value.
//!
//! Waiting is bounded: `passage receive --json` is run again a bounded number of
//! times until what a step expects was printed; a running `passage run` is read line
//! by line with a time limit per line; the few waits for a disappearing message's
//! expiry wait for the wall clock to pass the expiry the client itself reported.
//! Nothing asserts how long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    RECEIVE_WAIT, client, connect, has, has_text, objects, ok, receive_until, receive_until_with,
    send, start,
};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use passage_client::vault::{Credentials, OpenError, Vault};
use passage_e2e::scan::{contains, files_under, needles, scan, snapshot};
use passage_e2e::{CLI_LIMIT, CliClient, CliOutput, run_limited};
use serde_json::Value;

/// How long to wait for one line from a running `passage run` that should print one
/// (a hang guard, not a timing expectation).
const LINE_LIMIT: Duration = Duration::from_secs(60);

/// How often, and how many times, a test looks at a data directory while waiting for
/// a running client to compact it (60 s in all: a hang guard).
const POLL: Duration = Duration::from_millis(100);
const POLL_ROUNDS: usize = 600;

/// The disappearing-message timer used in tests, in seconds.
const TIMER_SECS: u64 = 3;

// ---------------------------------------------------------------------------
// Helpers

/// Runs `passage ARGS` and insists on a failure with one `passage: error: …` line.
fn fails(client: &CliClient, args: &[&str]) -> CliOutput {
    let out = client.run(args).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !out.success(),
        "`passage {}` should have failed; stdout: {}",
        args.join(" "),
        out.stdout
    );
    let stderr = out.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("passage: error: "), "{stderr:?}");
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    out
}

fn contacts(client: &CliClient, extra: &[&str]) -> BTreeMap<String, Value> {
    let mut args = extra.to_vec();
    args.extend(["contacts", "--json"]);
    objects(&ok(client, &args))
        .into_iter()
        .map(|c| (c["contact"].as_str().expect("a name").to_owned(), c))
        .collect()
}

fn history(client: &CliClient, extra: &[&str], name: &str) -> Vec<Value> {
    let mut args = extra.to_vec();
    args.extend(["history", name, "--json"]);
    objects(&ok(client, &args))
}

/// The texts in a history, in order.
fn texts(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| e["text"].as_str().expect("a text").to_owned())
        .collect()
}

/// The markers and their distinctive parts, as the scan takes them.
fn marker_list(markers: &[&str]) -> Vec<String> {
    markers.iter().map(|m| (*m).to_owned()).collect()
}

/// Scans `client`'s data directory, `HOME` and `TMPDIR` for `markers`; asserts
/// nothing is found and that nothing was written outside the data directory.
/// Returns the number of files in the data directory.
fn assert_scan_clean(client: &CliClient, markers: &[&str]) -> usize {
    let (findings, scanned) = scan(&client.vault(), &marker_list(markers)).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    for outside in [client.home(), client.tmp()] {
        let written = files_under(&outside).unwrap();
        assert!(
            written.is_empty(),
            "the client wrote outside its data directory: {written:?}"
        );
    }
    scanned
}

/// Opens the vault in `dir` through the library (which deletes nothing, unlike the
/// CLI) and lists every live key or value holding a marker, in any encoding.
fn live_values_holding(dir: &Path, passphrase: &str, markers: &[&str]) -> Vec<String> {
    let vault = Vault::open(dir, &Credentials::new(passphrase))
        .unwrap_or_else(|e| panic!("the library cannot open {}: {e}", dir.display()));
    let needles: Vec<(&str, String, Vec<u8>)> = markers
        .iter()
        .flat_map(|m| needles(m).into_iter().map(move |(f, n)| (*m, f, n)))
        .collect();
    let mut found = Vec::new();
    let keys = vault.keys_with_prefix("");
    assert!(!keys.is_empty(), "an empty vault proves nothing");
    for key in keys {
        let value = vault
            .get(&*key)
            .unwrap_or_else(|e| panic!("a value cannot be read: {e}"))
            .expect("a listed key has a value");
        for (marker, form, needle) in &needles {
            if contains(&key, needle) || contains(&value, needle) {
                found.push(format!(
                    "{} holds {marker:?} ({form})",
                    String::from_utf8_lossy(&key)
                ));
            }
        }
    }
    vault.close();
    found
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// Waits (bounded) until the wall clock, in whole unix seconds as the client counts
/// them, has passed `at`.
fn wait_until_past(at: u64) {
    let mut rounds = 0;
    while unix_now() <= at {
        rounds += 1;
        assert!(
            rounds < POLL_ROUNDS,
            "the clock never passed {at}: it is {}",
            unix_now()
        );
        std::thread::sleep(POLL);
    }
}

/// The files of `before` that hold data: those that changed since `at_init` (the
/// snapshot right after `passage init`). A file that never changed since the profile
/// was created (a reserve of random bytes) never held a message.
fn data_files(
    before: &BTreeMap<String, Vec<u8>>,
    at_init: &BTreeMap<String, Vec<u8>>,
) -> BTreeSet<String> {
    before
        .iter()
        .filter(|(name, bytes)| at_init.get(*name) != Some(*bytes))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Asserts that every file in `data` is gone from `now` or rewritten, and at least
/// one is gone (the compacted segment: a new one has a new name).
fn assert_gone_or_rewritten(
    data: &BTreeSet<String>,
    before: &BTreeMap<String, Vec<u8>>,
    now: &BTreeMap<String, Vec<u8>>,
    whose: &str,
) {
    assert!(!data.is_empty(), "{whose}: no file held data");
    for name in data {
        if let Some(bytes) = now.get(name) {
            assert_ne!(
                Some(bytes),
                before.get(name),
                "{whose}: {name} held the expired messages and is still there unchanged"
            );
        }
    }
    assert!(
        data.iter().any(|name| !now.contains_key(name)),
        "{whose}: no data file was replaced (no compaction): before {:?}, now {:?}",
        before.keys().collect::<Vec<_>>(),
        now.keys().collect::<Vec<_>>()
    );
}

/// (exit code, stderr) of a run, for comparing two failures.
fn failure(out: &CliOutput) -> (Option<i32>, String) {
    (out.status.code(), out.stderr.clone())
}

// ---------------------------------------------------------------------------
// 1. Duress passphrase and decoy profile

const DURESS_REAL: &str = "lanternfish-quarry-6620";
const DURESS_DURESS: &str = "seashell-picnic-4812";
const DURESS_WRONG: &str = "seashell-picnic-4813";
/// The real conversation: Alice's name for Bob and two texts.
const REAL_NAME: &str = "Ximena Castellanos-Ruiz";
const REAL_TEXT_1: &str = "The printing press moves tonight: MAGPIE-QUARTZ-5531";
const REAL_TEXT_2: &str = "Understood, the safe flat is Ölberg-Quintana 12";
/// The decoy's conversation with a cousin.
const DECOY_NAME: &str = "Cousin Mira";
const DECOY_ALICE: &str = "Auntie Rosa";
const DECOY_TEXTS: [&str; 4] = [
    "Did you get home safely?",
    "Yes, the bus was late but fine. Say hi to everyone",
    "Grandma asks if you are coming on Sunday",
    "Of course, I will bring the cake",
];

fn real_markers() -> Vec<&'static str> {
    vec![
        REAL_NAME,
        "Castellanos",
        REAL_TEXT_1,
        "MAGPIE-QUARTZ",
        REAL_TEXT_2,
        "Ölberg-Quintana",
    ]
}

/// Alice has a real conversation with Bob and a decoy conversation (prepared with
/// `--decoy`) with Carol. Opened with the duress passphrase, the profile shows only the
/// decoy's contact and history; afterwards the real passphrase fails exactly like a
/// passphrase that never opened anything; the files keep their number and sizes and
/// look random; nothing of the real conversation is left, even through the library;
/// and the switched profile goes on working: it receives and sends in the decoy
/// conversation.
#[test]
fn the_duress_passphrase_opens_only_the_decoy_and_destroys_the_real_profile() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start();
    let address = relay.address().to_string();
    let alice = client(&dir.path().join("alice"), DURESS_REAL);
    let duress = alice.with_passphrase("duress.txt", DURESS_DURESS).unwrap();
    let wrong = alice.with_passphrase("wrong.txt", DURESS_WRONG).unwrap();
    let bob = client(&dir.path().join("bob"), "bob's passphrase");
    let carol = client(&dir.path().join("carol"), "carol's passphrase");
    let duress_file = duress.passphrase_file().to_str().unwrap().to_owned();
    ok(
        &alice,
        &[
            "init",
            "--relay",
            &address,
            "--duress-passphrase-file",
            &duress_file,
        ],
    );
    ok(&bob, &["init", "--relay", &address]);
    ok(&carol, &["init", "--relay", &address]);

    // The real conversation.
    connect(&alice, &[], REAL_NAME, &bob, "Alice");
    send(&alice, &[], REAL_NAME, REAL_TEXT_1);
    receive_until(&bob, "the first real text", |o| {
        has_text(o, "Alice", REAL_TEXT_1)
    });
    send(&bob, &[], "Alice", REAL_TEXT_2);
    receive_until(&alice, "the second real text", |o| {
        has_text(o, REAL_NAME, REAL_TEXT_2)
    });

    // The decoy, prepared with the real passphrase and --decoy.
    let decoy = ["--decoy"];
    connect(&alice, &decoy, DECOY_NAME, &carol, DECOY_ALICE);
    send(&carol, &[], DECOY_ALICE, DECOY_TEXTS[0]);
    receive_until_with(&alice, &decoy, "the cousin's text", |o| {
        has_text(o, DECOY_NAME, DECOY_TEXTS[0])
    });
    send(&alice, &decoy, DECOY_NAME, DECOY_TEXTS[1]);
    receive_until(&carol, "the decoy's answer", |o| {
        has_text(o, DECOY_ALICE, DECOY_TEXTS[1])
    });

    // The two profiles are separate.
    let real = contacts(&alice, &[]);
    assert_eq!(real.keys().collect::<Vec<_>>(), [REAL_NAME]);
    let real_history = texts(&history(&alice, &[], REAL_NAME));
    assert_eq!(real_history, [REAL_TEXT_1, REAL_TEXT_2]);
    assert_eq!(
        contacts(&alice, &decoy).keys().collect::<Vec<_>>(),
        [DECOY_NAME]
    );
    // The real profile's data is in the vault, readable with the real passphrase.
    assert!(!live_values_holding(&alice.vault(), DURESS_REAL, &[REAL_TEXT_1]).is_empty());

    // A passphrase that never opened anything, before the switch.
    let never_used = failure(&fails(&wrong, &["contacts"]));
    assert!(never_used.1.contains("wrong passphrase"), "{never_used:?}");
    let before = snapshot(&alice.vault()).unwrap();

    // Forced to unlock: the duress passphrase shows the decoy, and only the decoy.
    let shown = contacts(&duress, &[]);
    assert_eq!(shown.keys().collect::<Vec<_>>(), [DECOY_NAME]);
    assert_eq!(shown[DECOY_NAME]["status"], "connected");
    let shown = history(&duress, &[], DECOY_NAME);
    assert_eq!(texts(&shown), &DECOY_TEXTS[..2]);
    for entry in &shown {
        for marker in real_markers() {
            assert!(!entry.to_string().contains(marker), "{entry}");
        }
    }
    fails(&duress, &["history", REAL_NAME]);

    // Afterwards the real passphrase is refused exactly like the never-used one, with
    // or without --decoy.
    assert_eq!(failure(&fails(&alice, &["contacts"])), never_used);
    assert_eq!(
        failure(&fails(&alice, &["--decoy", "contacts"])),
        never_used
    );
    assert!(matches!(
        Vault::open(alice.vault(), &Credentials::new(DURESS_REAL)),
        Err(OpenError::WrongPassphrase)
    ));

    // The files: as many, the same sizes, still random-looking; no real marker in
    // any encoding, and none in the vault the duress passphrase opens.
    let after = snapshot(&alice.vault()).unwrap();
    let sizes = |files: &BTreeMap<String, Vec<u8>>| {
        let mut sizes: Vec<usize> = files.values().map(Vec::len).collect();
        sizes.sort_unstable();
        sizes
    };
    assert_eq!(after.len(), before.len());
    assert_eq!(sizes(&after), sizes(&before));
    assert_eq!(assert_scan_clean(&alice, &real_markers()), before.len());
    let leaked = live_values_holding(&alice.vault(), DURESS_DURESS, &real_markers());
    assert!(leaked.is_empty(), "{leaked:#?}");
    // (The check can see: the decoy's texts are there.)
    assert!(!live_values_holding(&alice.vault(), DURESS_DURESS, &[DECOY_TEXTS[1]]).is_empty());

    // The switched-to profile is a normal one: it receives and sends.
    send(&carol, &[], DECOY_ALICE, DECOY_TEXTS[2]);
    receive_until(&duress, "the cousin's next text", |o| {
        has_text(o, DECOY_NAME, DECOY_TEXTS[2])
    });
    send(&duress, &[], DECOY_NAME, DECOY_TEXTS[3]);
    receive_until(&carol, "the answer after the switch", |o| {
        has_text(o, DECOY_ALICE, DECOY_TEXTS[3])
    });
    assert_eq!(texts(&history(&duress, &[], DECOY_NAME)), DECOY_TEXTS);
    assert_scan_clean(&alice, &real_markers());
}

// ---------------------------------------------------------------------------
// 2. Panic

const PANIC_ALICE: &str = "heliotrope-ferry-2291";
const PANIC_DURESS: &str = "cardamom-lighthouse-0357";
const PANIC_BOB: &str = "obsidian-wheelbarrow-8846";
const PANIC_NAME_BOB: &str = "Thaddeus Wrenfield-Amadi";
const PANIC_NAME_ALICE: &str = "Ingeborg Salcedo-Varga";
const PANIC_TEXT_1: &str = "Documents are behind the boiler: PELICAN-GARNET-1946";
const PANIC_TEXT_2: &str = "Got it, moving them to CORMORANT-VELVET-7310";
/// Sent to Bob's running client after his profile was wiped.
const PANIC_TEXT_3: &str = "Are you still there? HALIBUT-SAFFRON-5523";
const PANIC_TEXT_4: &str = "Answer me please: MARZIPAN-BASALT-0671";
/// A file of Bob's own in his data directory, which the wipe must leave alone.
const NOTES: &str = "buy bread, milk and stamps\n";

fn panic_markers() -> Vec<&'static str> {
    vec![
        PANIC_NAME_BOB,
        "Wrenfield",
        PANIC_NAME_ALICE,
        "Salcedo-Varga",
        PANIC_TEXT_1,
        "PELICAN-GARNET",
        PANIC_TEXT_2,
        "CORMORANT-VELVET",
        PANIC_TEXT_3,
        "HALIBUT-SAFFRON",
        PANIC_TEXT_4,
        "MARZIPAN-BASALT",
    ]
}

/// `passage panic` with no passphrase anywhere and stdin closed.
fn panic_wipe(client: &CliClient) -> CliOutput {
    let out = run_limited(client.bare_command(&["panic"]), CLI_LIMIT).unwrap();
    assert!(out.success(), "panic failed: {}", out.stderr);
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    out
}

/// Reads a running client's stdout until a line holds `needle`; returns it as JSON.
fn printed(run: &passage_e2e::CliProcess, needle: &str) -> Value {
    let mut skipped = Vec::new();
    let line = run
        .line_where(LINE_LIMIT, &mut skipped, |l| l.contains(needle))
        .unwrap_or_else(|| panic!("the run never printed {needle:?}; it printed {skipped:?}"));
    serde_json::from_str(&line).unwrap()
}

/// After a conversation, `passage panic` wipes a profile (real and duress passphrase
/// alike) without any passphrase or input, and leaves no marker behind.
///
/// Bob wipes his profile while his `passage run` has it open (and locked): the wipe
/// still succeeds at once, leaving only a file of his own in the directory. The
/// running client notices at its next write (a delivery): it writes nothing, creates
/// no file, and stops with an error; no passphrase opens anything and nothing on disk
/// holds a marker.
#[test]
fn panic_wipes_everything_without_a_passphrase_even_while_run_has_the_profile_open() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start();
    let address = relay.address().to_string();
    let alice = client(&dir.path().join("alice"), PANIC_ALICE);
    let duress = alice.with_passphrase("duress.txt", PANIC_DURESS).unwrap();
    let bob = client(&dir.path().join("bob"), PANIC_BOB);
    let duress_file = duress.passphrase_file().to_str().unwrap().to_owned();
    ok(
        &alice,
        &[
            "init",
            "--relay",
            &address,
            "--duress-passphrase-file",
            &duress_file,
        ],
    );
    ok(&bob, &["init", "--relay", &address]);
    let notes = bob.vault().join("notes.txt");
    std::fs::write(&notes, NOTES).unwrap();
    connect(&alice, &[], PANIC_NAME_BOB, &bob, PANIC_NAME_ALICE);
    send(&alice, &[], PANIC_NAME_BOB, PANIC_TEXT_1);
    receive_until(&bob, "the first text", |o| {
        has_text(o, PANIC_NAME_ALICE, PANIC_TEXT_1)
    });
    ok(
        &bob,
        &["disappear", PANIC_NAME_ALICE, &format!("{TIMER_SECS}s")],
    );

    // Bob's client runs: it has his profile open once it printed Alice's second text.
    let mut run = bob
        .spawn(&["run", "--json", "--lock-after", "off"])
        .unwrap();
    send(&alice, &[], PANIC_NAME_BOB, PANIC_TEXT_2);
    printed(&run, "CORMORANT");
    let busy = fails(&bob, &["contacts"]);
    assert!(busy.stderr.contains("stop it first"), "{}", busy.stderr);

    // Bob's panic while the run has the profile open: it still wipes, and touches
    // nothing but the vault's files.
    panic_wipe(&bob);
    assert_eq!(
        files_under(&bob.vault()).unwrap(),
        std::slice::from_ref(&notes)
    );
    assert!(
        run.is_running(),
        "the wipe does not stop the running client"
    );
    // The running client notices at its next write (the next delivery): it writes
    // nothing, stops with an error, and leaves the message at the relay.
    send(&alice, &[], PANIC_NAME_BOB, PANIC_TEXT_3);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while run.is_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!run.is_running(), "the run stops once the profile is wiped");
    assert!(
        run.next_line(Duration::from_millis(200))
            .is_none_or(|line| !line.contains("HALIBUT")),
        "the wiped client shows nothing new"
    );
    let stderr = run.kill().unwrap();
    assert!(stderr.contains("wiped"), "{stderr}");
    // Nothing was written: the directory holds the owner's file only; nothing opens
    // and nothing holds a marker.
    assert_eq!(
        files_under(&bob.vault()).unwrap(),
        std::slice::from_ref(&notes)
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), NOTES);
    let gone = fails(&bob, &["contacts"]);
    assert!(gone.stderr.contains("no vault"), "{}", gone.stderr);
    assert!(Vault::open(bob.vault(), &Credentials::new(PANIC_BOB)).is_err());
    assert_scan_clean(&bob, &panic_markers());

    // Alice: a conversation in her history, then panic with no passphrase anywhere.
    assert_eq!(
        texts(&history(&alice, &[], PANIC_NAME_BOB)),
        [PANIC_TEXT_1, PANIC_TEXT_2, PANIC_TEXT_3]
    );
    panic_wipe(&alice);
    // Nothing opens: the real and the duress passphrase get the same clear error.
    let real = fails(&alice, &["contacts"]);
    assert!(real.stderr.contains("no profile"), "{}", real.stderr);
    assert_eq!(failure(&fails(&duress, &["contacts"])), failure(&real));
    assert_eq!(
        failure(&fails(&alice, &["--decoy", "contacts"])),
        failure(&real)
    );
    // Whatever is left holds no marker: here nothing is, not even the directory.
    assert_eq!(assert_scan_clean(&alice, &panic_markers()), 0);
    assert!(
        !alice.vault().exists(),
        "an empty data directory is removed"
    );
    // A second panic on the wiped directory is harmless.
    panic_wipe(&alice);
}

// ---------------------------------------------------------------------------
// 3. Disappearing messages

const GONE_ALICE: &str = "tamarind-glacier-3904";
const GONE_BOB: &str = "periwinkle-anvil-6158";
const GONE_NAME_BOB: &str = "Leopoldine Achterberg";
const GONE_NAME_ALICE: &str = "Oluwaseun Brightwater";
const GONE_TEXT_BOB: &str = "The lawyer comes at dawn, ask for OSPREY-LANTERN-7702";
const GONE_TEXT_ALICE: &str = "Key under the blue pot: HERONSWIFT-3318";

/// A profile in `dir/name`, made with `init --relay address` and the `extra` options.
fn profile(dir: &Path, name: &str, passphrase: &str, address: &str, extra: &[&str]) -> CliClient {
    let client = client(&dir.join(name), passphrase);
    let mut args = vec!["init", "--relay", address];
    args.extend_from_slice(extra);
    ok(&client, &args);
    client
}

/// Alice sets a short timer on Bob; Bob's client adopts it. A message each way. Bob's
/// copies expire while his `passage run` is running; Alice's while no client runs,
/// and her next open deletes them. On both sides: no text left in the history, no
/// marker on disk, no marker in any live value even with the passphrase, and the
/// files that held the messages are gone or rewritten (compaction).
#[test]
fn disappearing_messages_are_gone_on_both_sides_even_with_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start();
    let address = relay.address().to_string();
    let alice = profile(dir.path(), "alice", GONE_ALICE, &address, &[]);
    let bob = profile(dir.path(), "bob", GONE_BOB, &address, &[]);
    let alice_init = snapshot(&alice.vault()).unwrap();
    let bob_init = snapshot(&bob.vault()).unwrap();
    connect(&alice, &[], GONE_NAME_BOB, &bob, GONE_NAME_ALICE);
    let markers = [
        GONE_TEXT_BOB,
        "OSPREY-LANTERN",
        GONE_TEXT_ALICE,
        "HERONSWIFT",
    ];

    // The timer: set by Alice, announced to Bob, shown in both histories.
    let timer = format!("{TIMER_SECS}s");
    ok(&alice, &["disappear", GONE_NAME_BOB, &timer]);
    assert_eq!(
        contacts(&alice, &[])[GONE_NAME_BOB]["disappear_after_secs"],
        TIMER_SECS
    );
    let seen = receive_until(&bob, "the timer", |o| has(o, "timer", GONE_NAME_ALICE));
    let event = seen.iter().find(|o| o["type"] == "timer").unwrap();
    assert_eq!(event["seconds"], TIMER_SECS, "{event}");
    assert_eq!(
        contacts(&bob, &[])[GONE_NAME_ALICE]["disappear_after_secs"],
        TIMER_SECS
    );
    let timer_entry = |h: &[Value]| {
        h.iter()
            .any(|e| e["type"] == "timer" && e["seconds"] == TIMER_SECS)
    };
    assert!(timer_entry(&history(&bob, &[], GONE_NAME_ALICE)));

    // Bob writes; Alice receives; Alice writes.
    send(&bob, &[], GONE_NAME_ALICE, GONE_TEXT_BOB);
    let seen = receive_until(&alice, "bob's text", |o| {
        has_text(o, GONE_NAME_BOB, GONE_TEXT_BOB)
    });
    let bob_sent_at = seen
        .iter()
        .find(|o| o["text"] == GONE_TEXT_BOB)
        .and_then(|o| o["sent_at"].as_u64())
        .expect("sent_at");
    send(&alice, &[], GONE_NAME_BOB, GONE_TEXT_ALICE);

    // Bob's own copy expires at bob_sent_at + timer: let his next open delete it, so
    // that the only expiry left when his run holds Alice's text is that text's.
    wait_until_past(bob_sent_at + TIMER_SECS);
    let run = bob
        .spawn(&["run", "--json", "--lock-after", "off"])
        .unwrap();
    let mut skipped = Vec::new();
    let line = run
        .line_where(LINE_LIMIT, &mut skipped, |l| l.contains("HERONSWIFT"))
        .unwrap_or_else(|| panic!("bob's run never printed alice's text; before: {skipped:?}"));
    let message: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(message["text"], GONE_TEXT_ALICE);
    let received_at = message["received_at"].as_u64().expect("received_at");

    // Bob's running client holds the text and must delete it, and compact, at
    // received_at + timer: wait for the file that holds it to be replaced.
    let bob_before = snapshot(&bob.vault()).unwrap();
    let bob_data = data_files(&bob_before, &bob_init);
    let mut compacted = false;
    for _ in 0..POLL_ROUNDS {
        let now = snapshot(&bob.vault()).unwrap();
        if bob_data.iter().any(|name| !now.contains_key(name)) {
            compacted = true;
            break;
        }
        std::thread::sleep(POLL);
    }
    assert!(
        compacted,
        "bob's running client never compacted (text received at {received_at}, now {})",
        unix_now()
    );
    assert!(
        unix_now() >= received_at + TIMER_SECS,
        "compacted before the text expired"
    );
    let stderr = run.kill().unwrap();
    // Killed without a chance to clean up: what is on disk is what the running
    // client left.
    let bob_after = snapshot(&bob.vault()).unwrap();
    assert_gone_or_rewritten(&bob_data, &bob_before, &bob_after, "bob");
    assert_scan_clean(&bob, &markers);
    let leaked = live_values_holding(&bob.vault(), GONE_BOB, &markers);
    assert!(leaked.is_empty(), "{leaked:#?}; run stderr: {stderr}");

    // Alice's copies expired while no client of hers ran. They are still in her
    // vault (the library deletes nothing) ...
    wait_until_past(received_at + TIMER_SECS);
    // (Her copy of Bob's text may have gone already, at the open of her `send`.)
    let held = live_values_holding(&alice.vault(), GONE_ALICE, &markers);
    assert!(held.iter().any(|f| f.contains("HERON")), "{held:#?}");
    let alice_before = snapshot(&alice.vault()).unwrap();
    let alice_data = data_files(&alice_before, &alice_init);
    // ... until the next open of the client, which deletes them and compacts.
    let alice_history = history(&alice, &[], GONE_NAME_BOB);
    assert!(texts(&alice_history).is_empty(), "{alice_history:?}");
    assert!(timer_entry(&alice_history), "{alice_history:?}");
    let alice_after = snapshot(&alice.vault()).unwrap();
    assert_gone_or_rewritten(&alice_data, &alice_before, &alice_after, "alice");
    assert_scan_clean(&alice, &markers);
    let leaked = live_values_holding(&alice.vault(), GONE_ALICE, &markers);
    assert!(leaked.is_empty(), "{leaked:#?}");

    // Bob's history too; both keep the timer.
    let bob_history = history(&bob, &[], GONE_NAME_ALICE);
    assert!(texts(&bob_history).is_empty(), "{bob_history:?}");
    assert!(timer_entry(&bob_history), "{bob_history:?}");
    assert_eq!(
        contacts(&bob, &[])[GONE_NAME_ALICE]["disappear_after_secs"],
        TIMER_SECS
    );
}

// ---------------------------------------------------------------------------
// 4. No-history mode

const QUIET_ALICE: &str = "juniper-abacus-5077";
const QUIET_BOB: &str = "marmalade-sextant-9412";
const QUIET_TEXT_IN: &str = "Shown once, never kept: WOMBAT-CINNABAR-4420";
const QUIET_TEXT_OUT: &str = "Kept until delivered: NARWHAL-TOPAZ-8183";

/// Bob turns no-history mode on. Alice's text is shown once by his `receive` and
/// never stored; his own text stays in his history only until Alice's receipt arrives.
/// Alice, not in no-history mode, keeps her history.
#[test]
fn no_history_mode_shows_once_and_keeps_only_what_delivery_needs() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start();
    let address = relay.address().to_string();
    let alice = profile(dir.path(), "alice", QUIET_ALICE, &address, &[]);
    let bob = profile(dir.path(), "bob", QUIET_BOB, &address, &[]);
    connect(&alice, &[], "bob", &bob, "alice");
    ok(&bob, &["no-history", "on"]);

    // Received: printed once, not in the history, not in the vault.
    let id = send(&alice, &[], "bob", QUIET_TEXT_IN);
    receive_until(&bob, "alice's text", |o| {
        has_text(o, "alice", QUIET_TEXT_IN)
    });
    let bob_history = history(&bob, &[], "alice");
    assert!(texts(&bob_history).is_empty(), "{bob_history:?}");
    let again = ok(&bob, &["receive", "--wait", RECEIVE_WAIT, "--json"]);
    assert!(
        !again.stdout.contains("WOMBAT"),
        "shown twice: {}",
        again.stdout
    );

    // Sent: in the history while it waits for the receipt, gone once delivered.
    let out_id = send(&bob, &[], "alice", QUIET_TEXT_OUT);
    let waiting = history(&bob, &[], "alice");
    assert!(
        waiting.iter().any(|e| e["id"] == out_id.as_str()),
        "{waiting:?}"
    );
    receive_until(&alice, "bob's text and receipt", |o| {
        has_text(o, "bob", QUIET_TEXT_OUT)
            && o.iter()
                .any(|o| o["type"] == "receipt" && o["id"] == id.as_str())
    });
    receive_until(&bob, "alice's receipt", |o| {
        o.iter()
            .any(|o| o["type"] == "receipt" && o["id"] == out_id.as_str())
    });
    let bob_history = history(&bob, &[], "alice");
    assert!(texts(&bob_history).is_empty(), "{bob_history:?}");
    let markers = [
        QUIET_TEXT_IN,
        "WOMBAT-CINNABAR",
        QUIET_TEXT_OUT,
        "NARWHAL-TOPAZ",
    ];
    let leaked = live_values_holding(&bob.vault(), QUIET_BOB, &markers);
    assert!(leaked.is_empty(), "{leaked:#?}");
    assert_scan_clean(&bob, &markers);

    // Alice keeps both texts, hers delivered.
    let alice_history = history(&alice, &[], "bob");
    assert_eq!(texts(&alice_history), [QUIET_TEXT_IN, QUIET_TEXT_OUT]);
    let mine = alice_history
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap();
    assert_eq!(mine["status"], "delivered");
}

// ---------------------------------------------------------------------------
// 5. The idle lock of `passage run`

/// `passage run --lock-after 2s --json` prints `{"type":"locked"}` after a while
/// without messages and keeps running: it reopens the profile with the passphrase
/// file, receives and prints a message, and locks again.
#[test]
fn run_locks_after_idle_and_reopens_with_the_passphrase_file() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start();
    let address = relay.address().to_string();
    let alice = profile(
        dir.path(),
        "alice",
        "alice's lock passphrase",
        &address,
        &[],
    );
    let bob = profile(dir.path(), "bob", "bob's lock passphrase", &address, &[]);
    connect(&alice, &[], "bob", &bob, "alice");

    let mut run = alice
        .spawn(&["run", "--json", "--lock-after", "2s"])
        .unwrap();
    let is_locked = |line: &str| {
        serde_json::from_str::<Value>(line)
            .is_ok_and(|v| v == serde_json::json!({"type": "locked"}))
    };
    let mut skipped = Vec::new();
    run.line_where(LINE_LIMIT, &mut skipped, is_locked)
        .unwrap_or_else(|| panic!("never locked; printed {skipped:?}"));
    assert!(run.is_running(), "run ended at the lock");

    // Unlocked again from the file: a message sent now is received and printed.
    send(&bob, &[], "alice", "after the lock");
    let line = run
        .line_where(LINE_LIMIT, &mut skipped, |l| l.contains("after the lock"))
        .unwrap_or_else(|| panic!("nothing received after the lock; printed {skipped:?}"));
    let message: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["contact"], "bob");
    run.line_where(LINE_LIMIT, &mut skipped, is_locked)
        .unwrap_or_else(|| panic!("never locked again; printed {skipped:?}"));
    assert!(run.is_running(), "run ended at the second lock");
    let stderr = run.kill().unwrap();
    assert!(
        !stderr.contains("error"),
        "the run reported an error: {stderr}"
    );
    for line in &skipped {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|_| panic!("not a JSON line on stdout: {line:?}"));
        assert_ne!(value["type"], "error", "{value}");
    }
}

// ---------------------------------------------------------------------------
// 6. --at-risk

const ONE_DAY: u64 = 86_400;

/// A profile made with `init --at-risk` gives every new contact a one-day timer, as
/// inviter (from the invitation on) and as acceptor; its texts carry the timer to the
/// other side. A profile made without it gives none.
#[test]
fn at_risk_profiles_give_new_contacts_a_one_day_timer() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start();
    let address = relay.address().to_string();
    let alice = profile(
        dir.path(),
        "alice",
        "alice's risky passphrase",
        &address,
        &["--at-risk"],
    );
    let bob = profile(dir.path(), "bob", "bob's plain passphrase", &address, &[]);
    let carol = profile(
        dir.path(),
        "carol",
        "carol's risky passphrase",
        &address,
        &["--at-risk"],
    );

    // Alice (at risk) invites Bob: the timer is there from the invitation on.
    let link = ok(&alice, &["invite", "--name", "bob"]).stdout;
    let invited = &contacts(&alice, &[])["bob"];
    assert_eq!(invited["status"], "invited");
    assert_eq!(invited["disappear_after_secs"], ONE_DAY);
    ok(&bob, &["accept", link.trim(), "--name", "alice"]);
    receive_until(&alice, "bob connected", |o| has(o, "connected", "bob"));
    assert_eq!(
        contacts(&alice, &[])["bob"]["disappear_after_secs"],
        ONE_DAY
    );

    // Carol (at risk) accepts Bob's invitation: her new contact gets the timer; Bob's
    // (not at risk) does not.
    let link = ok(&bob, &["invite", "--name", "carol"]).stdout;
    assert_eq!(contacts(&bob, &[])["carol"]["disappear_after_secs"], 0);
    ok(&carol, &["accept", link.trim(), "--name", "bob"]);
    assert_eq!(
        contacts(&carol, &[])["bob"]["disappear_after_secs"],
        ONE_DAY
    );

    // Alice's text carries her timer: it expires a day after it arrives at Bob's.
    send(&alice, &[], "bob", "a text from an at-risk profile");
    let seen = receive_until(&bob, "alice's text", |o| {
        has_text(o, "alice", "a text from an at-risk profile")
    });
    let received_at = seen
        .iter()
        .find(|o| o["type"] == "message")
        .and_then(|o| o["received_at"].as_u64())
        .unwrap();
    let entry = history(&bob, &[], "alice")
        .into_iter()
        .find(|e| e["type"] == "message")
        .unwrap();
    assert_eq!(entry["expires_at"], received_at + ONE_DAY, "{entry}");
}

/// The contact of an at-risk profile adopts its one-day timer, as it adopts one set
/// with `passage disappear`: otherwise the contact's own replies stay on the
/// contact's phone for good while the at-risk person believes the conversation
/// disappears.
#[test]
fn the_contact_of_an_at_risk_profile_adopts_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start();
    let address = relay.address().to_string();
    let alice = profile(
        dir.path(),
        "alice",
        "alice's risky passphrase",
        &address,
        &["--at-risk"],
    );
    let bob = profile(dir.path(), "bob", "bob's plain passphrase", &address, &[]);
    connect(&alice, &[], "bob", &bob, "alice");
    // Whatever announces it has had its chance to arrive.
    receive_until(&bob, "a round trip", |_| true);

    assert_eq!(
        contacts(&alice, &[])["bob"]["disappear_after_secs"],
        ONE_DAY
    );
    let bob_side = &contacts(&bob, &[])["alice"];
    assert_eq!(
        bob_side["disappear_after_secs"], ONE_DAY,
        "bob's client did not adopt the at-risk profile's timer: {bob_side}"
    );
    send(&bob, &[], "alice", "a reply that should disappear too");
    let entry = history(&bob, &[], "alice")
        .into_iter()
        .find(|e| e["type"] == "message")
        .unwrap();
    assert!(entry["expires_at"].is_u64(), "{entry}");
}
