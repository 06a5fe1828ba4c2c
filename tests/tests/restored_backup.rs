//! A profile restored from a backup (or copied to a second phone) sends from ratchet
//! positions it used before. Through a real relay and the real CLI: every envelope the
//! relay is asked to store is recorded, and no two of them may share a body key and
//! nonce — which, for two ciphertexts of the same length, shows as equal bytes at the
//! same places (their zero padding encrypted under the same keystream). The receiver
//! reads the messages from before the restore, and reports each one the restored copy
//! sent as coming from a restored or copied profile instead of misreading it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{client, connect, ok, receive_until, send};
use passage_e2e::InProcessRelay;
use passage_e2e::recording::RecordingStore;
use passage_relay::Limits;

fn copy_dir(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Bytes equal at equal offsets: about 1 in 256 for independent ciphertexts, the
/// whole padding for a repeated keystream.
fn equal_bytes(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

#[test]
fn a_restored_backup_never_repeats_a_body_key_and_nonce_on_the_wire() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut recorded = None;
    let relay = runtime
        .block_on(InProcessRelay::start_with_store(
            Limits::default(),
            |store| {
                let (recording, seen) = RecordingStore::new(store);
                recorded = Some(seen);
                std::sync::Arc::new(recording)
            },
        ))
        .unwrap();
    let recorded = recorded.unwrap();
    let address = relay.address().to_string();

    let dir = tempfile::tempdir().unwrap();
    let amal = client(&dir.path().join("amal"), "heliotrope ferry 2291 anchor");
    let yusuf = client(&dir.path().join("yusuf"), "obsidian wheelbarrow 8846 gale");
    ok(&amal, &["init", "--relay", &address]);
    ok(&yusuf, &["init", "--relay", &address]);
    connect(&amal, &[], "Yusuf", &yusuf, "Amal");
    receive_until(&amal, "nothing more", |_| true);

    // The backup, then three messages, then the backup restored and three more.
    let backup = dir.path().join("backup");
    copy_dir(&amal.vault(), &backup);
    let before = recorded.lock().unwrap().len();
    for text in ["one", "two", "three"] {
        send(&amal, &[], "Yusuf", text);
    }
    copy_dir(&backup, &amal.vault());
    for text in ["uno", "dos", "tres"] {
        send(&amal, &[], "Yusuf", text);
    }

    let envelopes = recorded.lock().unwrap()[before..].to_vec();
    assert_eq!(envelopes.len(), 6, "six SENDs reached the store");
    let mut worst = 0;
    for (i, a) in envelopes.iter().enumerate() {
        for b in &envelopes[..i] {
            worst = worst.max(equal_bytes(&a[..], &b[..]));
        }
    }
    // 3,904 bytes: about 15 equal bytes by chance; a repeated keystream makes the
    // padding (over 3,800 bytes of a short text) equal.
    assert!(worst < 100, "{worst} bytes equal between two envelopes");

    // Yusuf reads the three from before the restore; the three from the restored copy
    // are reported, not misread.
    let got = receive_until(&yusuf, "six envelopes", |o| {
        o.iter().filter(|o| o["type"] == "message").count() == 3
            && o.iter().filter(|o| o["reason"] == "forked").count() == 3
    });
    let texts: Vec<&str> = got
        .iter()
        .filter(|o| o["type"] == "message")
        .map(|o| o["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
    assert!(
        got.iter()
            .filter(|o| o["type"] == "dropped")
            .all(|o| o["reason"] == "forked" && o["contact"] == "Amal"),
        "{got:?}"
    );
    runtime.block_on(relay.stop());
}
