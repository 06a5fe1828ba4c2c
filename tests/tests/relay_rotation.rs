//! A relay rotates its key while two people talk through it: their clients, holding
//! the old pin, are told the new one (endorsed by the old key) and move every address
//! they keep; both keep talking through the overlap and after it, when the old key is
//! gone; invitations made afterwards carry the new pin. A third client, offline for the
//! whole overlap, gets an error that says what to do, and with the address the operator
//! gives it (`passage relay-moved`) talks again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{client, connect, has_text, objects, ok, receive_until, send};
use passage_crypto::Invitation;
use passage_e2e::{CLI_LIMIT, CliClient, TestRelay, relay_binary, run_limited};
use passage_wire::{QueueAddress, RelayAddress};

fn says(client: &CliClient, from: &str, text: &str) {
    receive_until(client, text, |o| has_text(o, from, text));
}

/// The pin a new invitation of `client` carries.
fn invitation_pin(client: &CliClient) -> passage_wire::RelayPin {
    let link = ok(client, &["invite", "--name", "Later"]).stdout;
    let invitation = Invitation::from_link(link.trim()).unwrap();
    let queue = QueueAddress::decode(invitation.queue()).unwrap();
    *queue.relay.pin()
}

#[test]
fn clients_follow_a_relay_key_rotation_and_a_late_one_is_told_what_to_do() {
    let mut relay = TestRelay::start_restartable(None).unwrap();
    let old: RelayAddress = relay.address().clone();
    let dir = tempfile::tempdir().unwrap();
    let amal = client(&dir.path().join("amal"), "heliotrope ferry anchor 2291");
    let yusuf = client(&dir.path().join("yusuf"), "obsidian wheelbarrow gale 8846");
    let rosa = client(&dir.path().join("rosa"), "cardamom lighthouse pebble 0357");
    for who in [&amal, &yusuf, &rosa] {
        ok(who, &["init", "--relay", &old.to_string()]);
    }
    connect(&amal, &[], "Yusuf", &yusuf, "Amal");
    connect(&amal, &[], "Rosa", &rosa, "Amal");
    receive_until(&amal, "nothing", |_| true);

    // The operator rotates the key and restarts the relay (same host and port).
    let data = relay.process.data_dir().to_owned();
    let out = run_limited(
        {
            let mut command = Command::new(relay_binary().unwrap());
            command.arg("rotate-key").arg("--data").arg(&data);
            command
        },
        CLI_LIMIT,
    )
    .unwrap();
    assert!(out.success(), "{}", out.stderr);
    relay.process.restart_same_port().unwrap();
    let new = relay.address().clone();
    assert_ne!(new.pin(), old.pin());

    // During the overlap: Amal and Yusuf talk, and move to the new pin as they do.
    send(&amal, &[], "Yusuf", "during the overlap");
    let got = receive_until(&yusuf, "the message", |o| {
        has_text(o, "Amal", "during the overlap")
    });
    assert!(got.iter().any(|o| o["type"] == "relay_moved"), "{got:?}");
    send(&yusuf, &[], "Amal", "heard you");
    says(&amal, "Yusuf", "heard you");
    assert_eq!(invitation_pin(&amal), *new.pin());
    assert_eq!(invitation_pin(&yusuf), *new.pin());

    // The overlap ends: the old key is destroyed at the next start.
    relay.process.kill().unwrap();
    std::fs::write(data.join("rotation"), "until 1\n").unwrap();
    relay.process.restart_same_port().unwrap();
    assert!(!data.join("identity.retired.der").exists());
    send(&amal, &[], "Yusuf", "after the overlap");
    says(&yusuf, "Amal", "after the overlap");
    send(&yusuf, &[], "Amal", "still here");
    says(&amal, "Yusuf", "still here");

    // Rosa slept through it all: a clear error, then the operator's address fixes it.
    let out = ok(&rosa, &["receive", "--wait", "1"]);
    assert!(
        out.stderr
            .contains("ask its operator for its current address")
            || out
                .stderr
                .contains("Ask its operator for its current address"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("passage relay-moved"), "{}", out.stderr);
    ok(&rosa, &["relay-moved", &new.to_string()]);
    send(&amal, &[], "Rosa", "welcome back");
    says(&rosa, "Amal", "welcome back");
    send(&rosa, &[], "Amal", "thank you");
    says(&amal, "Rosa", "thank you");
    assert_eq!(objects(&ok(&rosa, &["contacts", "--json"])).len(), 1);
}
