//! The API: round trips, transactions, reopen, errors, passphrase changes, destroy.

use super::*;
use crate::vault::{
    ChangePassphraseError, CreateError, MAX_KEY_LEN, MAX_TRANSACTION_LEN, PlatformSecret,
    WriteError,
};

#[test]
fn put_get_delete_round_trip() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    assert!(vault.is_empty());
    vault.put("contact/1", b"alice").unwrap();
    vault.put("contact/2", b"bob").unwrap();
    vault.put("contact/1", b"alice v2").unwrap();
    assert_eq!(
        value(&vault, "contact/1").as_deref(),
        Some(&b"alice v2"[..])
    );
    assert_eq!(value(&vault, "contact/2").as_deref(), Some(&b"bob"[..]));
    assert_eq!(value(&vault, "contact/3"), None);
    assert_eq!(vault.len(), 2);
    vault.delete("contact/2").unwrap();
    vault.delete("never/there").unwrap();
    assert_eq!(value(&vault, "contact/2"), None);
    assert!(!vault.contains_key("contact/2"));
    // Empty keys and values are values like any other.
    vault.put("", b"").unwrap();
    assert_eq!(value(&vault, "").as_deref(), Some(&b""[..]));
}

#[test]
fn reopen_sees_every_commit() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    for i in 0..200u32 {
        vault
            .put(
                format!("message/{i:04}"),
                i.to_be_bytes().repeat(i as usize % 50),
            )
            .unwrap();
    }
    vault.delete("message/0007").unwrap();
    vault.close();
    let vault = open(dir.path());
    assert_eq!(vault.len(), 199);
    for i in 0..200u32 {
        let expected = (i != 7).then(|| i.to_be_bytes().repeat(i as usize % 50));
        assert_eq!(
            value(&vault, &format!("message/{i:04}")),
            expected,
            "message {i}"
        );
    }
}

#[test]
fn transactions_are_all_or_nothing() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    vault.put("a", b"1").unwrap();
    // A closure that fails commits nothing.
    let failed: Result<(), WriteError> = vault.transaction(|tx| {
        tx.put("b", b"2")?;
        tx.delete("a")?;
        assert_eq!(
            tx.get("b").unwrap().as_deref().map(Vec::as_slice),
            Some(&b"2"[..])
        );
        assert_eq!(tx.get("a").unwrap(), None);
        Err(WriteError::Poisoned)
    });
    assert!(failed.is_err());
    // A dropped transaction commits nothing.
    let mut tx = vault.begin();
    tx.put("c", b"3").unwrap();
    drop(tx);
    assert_eq!(value(&vault, "a").as_deref(), Some(&b"1"[..]));
    assert!(!vault.contains_key("b") && !vault.contains_key("c"));
    // A committed one lands whole, in one record.
    let end = vault.log_end();
    vault
        .transaction(|tx| {
            tx.put("b", b"2")?;
            tx.put("c", b"3")?;
            tx.delete("a")
        })
        .unwrap();
    assert_eq!(vault.log_end() - end, 256);
    vault.close();
    let vault = open(dir.path());
    assert_eq!(vault.keys_with_prefix("").len(), 2);
    assert_eq!(value(&vault, "a"), None);
}

#[test]
fn keys_with_prefix_lists_in_byte_order() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    for key in [
        "contact/b",
        "contact/a",
        "contacts",
        "contact0",
        "message/1",
        "contact/",
    ] {
        vault.put(key, b"x").unwrap();
    }
    let keys: Vec<Vec<u8>> = vault
        .keys_with_prefix("contact/")
        .into_iter()
        .map(|k| k.to_vec())
        .collect();
    assert_eq!(keys, [&b"contact/"[..], b"contact/a", b"contact/b"]);
    assert!(vault.keys_with_prefix("zzz").is_empty());
    assert_eq!(vault.keys_with_prefix("").len(), 6);
}

#[test]
fn wrong_passphrase_is_typed_and_writes_nothing() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    vault.put("k", b"v").unwrap();
    vault.close();
    let before = snapshot(dir.path());
    for wrong in [
        "",
        "correct horse battery stapl",
        "Correct horse battery staple",
    ] {
        let err = open_with(dir.path(), &creds(wrong)).unwrap_err();
        assert!(matches!(err, OpenError::WrongPassphrase), "{err:?}");
        assert_eq!(
            err.to_string(),
            "wrong passphrase, or not a vault: check the passphrase (and the device, if one is paired)"
        );
    }
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a failed open changed the directory"
    );
}

#[test]
fn platform_secret_is_needed_when_given() {
    let dir = TempDir::new();
    let with_secret =
        || creds(PASSPHRASE).with_platform_secret(PlatformSecret::from_bytes(vec![7; 32]));
    let mut vault = Vault::create_with_cost(dir.path(), &with_secret(), KdfCost::TestOnly).unwrap();
    vault.put("k", b"v").unwrap();
    vault.close();
    assert!(matches!(
        open_with(dir.path(), &creds(PASSPHRASE)),
        Err(OpenError::WrongPassphrase)
    ));
    let other = creds(PASSPHRASE).with_platform_secret(PlatformSecret::from_bytes(vec![8; 32]));
    assert!(matches!(
        open_with(dir.path(), &other),
        Err(OpenError::WrongPassphrase)
    ));
    let vault = open_with(dir.path(), &with_secret()).unwrap();
    assert_eq!(value(&vault, "k").as_deref(), Some(&b"v"[..]));
}

#[test]
fn open_and_create_say_what_is_wrong() {
    let dir = TempDir::new();
    assert!(matches!(
        open_with(dir.path(), &creds(PASSPHRASE)),
        Err(OpenError::NoVault)
    ));
    let vault = create(dir.path());
    // A second process (or handle) cannot open it while it is open.
    assert!(matches!(
        Vault::open_with_cost(dir.path(), &creds(PASSPHRASE), KdfCost::TestOnly),
        Err(OpenError::Busy)
    ));
    assert!(matches!(
        Vault::create_with_cost(dir.path(), &creds("x"), KdfCost::TestOnly),
        Err(CreateError::AlreadyExists)
    ));
    vault.close();
    open(dir.path()).close();
    // Vault-named files of other sizes only: "no vault here".
    let other = TempDir::new();
    std::fs::write(
        other.path().join("0123456789abcdef0123456789abcdef"),
        b"hello",
    )
    .unwrap();
    assert!(matches!(
        open_with(other.path(), &creds(PASSPHRASE)),
        Err(OpenError::NoVault)
    ));
    // A file of the key-slot size that is not one: the same as a wrong passphrase.
    std::fs::write(
        other.path().join("fedcba9876543210fedcba9876543210"),
        vec![7u8; crate::vault::format::KEYSLOT_FILE_LEN],
    )
    .unwrap();
    assert!(matches!(
        open_with(other.path(), &creds(PASSPHRASE)),
        Err(OpenError::WrongPassphrase)
    ));
}

#[test]
fn change_passphrase_rewraps_the_key_slot_only() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    vault.put("identity", b"secret identity").unwrap();
    let segment = segment_path(dir.path());
    let segment_before = std::fs::read(&segment).unwrap();
    let err = vault
        .change_passphrase(&creds("not it"), &creds("new passphrase"))
        .unwrap_err();
    assert!(matches!(err, ChangePassphraseError::WrongPassphrase));
    vault
        .change_passphrase(&creds(PASSPHRASE), &creds("new passphrase"))
        .unwrap();
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        segment_before,
        "segment changed"
    );
    // Writes go on under the new key slot.
    vault.put("after", b"change").unwrap();
    vault.close();
    assert!(matches!(
        open_with(dir.path(), &creds(PASSPHRASE)),
        Err(OpenError::WrongPassphrase)
    ));
    let vault = open_with(dir.path(), &creds("new passphrase")).unwrap();
    assert_eq!(
        value(&vault, "identity").as_deref(),
        Some(&b"secret identity"[..])
    );
    assert_eq!(value(&vault, "after").as_deref(), Some(&b"change"[..]));
    assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);
}

#[test]
fn destroy_shreds_the_profile() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    vault.put("k", b"v").unwrap();
    vault.destroy().unwrap();
    let files = snapshot(dir.path());
    assert_eq!(
        files.len(),
        FILE_COUNT - 1,
        "the key-slot file and the reserve stay"
    );
    let keyslot = &files.iter().find(|file| is_keyslot(file)).unwrap().1;
    assert_eq!(keyslot.len(), crate::vault::format::KEYSLOT_FILE_LEN);
    assert!(matches!(
        open_with(dir.path(), &creds(PASSPHRASE)),
        Err(OpenError::WrongPassphrase)
    ));
}

#[test]
fn limits_sit_at_the_edge() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    let key = vec![b'k'; MAX_KEY_LEN];
    vault.put(&key, b"at the limit").unwrap();
    let err = vault
        .put(vec![b'k'; MAX_KEY_LEN + 1], b"one past")
        .unwrap_err();
    assert!(
        matches!(err, WriteError::KeyTooLong { len, max } if len == MAX_KEY_LEN + 1 && max == MAX_KEY_LEN)
    );
    // One put costs 4 (count) + 1 + 2 + key + 4 + value bytes.
    let fits = MAX_TRANSACTION_LEN - 4 - 1 - 2 - 3 - 4;
    vault.put("big", vec![0x5a; fits]).unwrap();
    let err = vault.put("big", vec![0x5a; fits + 1]).unwrap_err();
    assert!(
        matches!(err, WriteError::TransactionTooLarge { .. }),
        "{err:?}"
    );
    vault.close();
    let vault = open(dir.path());
    assert_eq!(value(&vault, "big").map(|v| v.len()), Some(fits));
    assert_eq!(
        value(&vault, std::str::from_utf8(&key).unwrap()).as_deref(),
        Some(&b"at the limit"[..])
    );
}

#[test]
fn compaction_keeps_content_and_drops_garbage() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    for i in 0..50u32 {
        vault.put(format!("keep/{i}"), vec![i as u8; 300]).unwrap();
    }
    for round in 0..20u32 {
        for i in 0..10u32 {
            vault
                .put(format!("churn/{i}"), vec![round as u8; 1000])
                .unwrap();
        }
    }
    for i in 0..5u32 {
        vault.delete(format!("churn/{i}")).unwrap();
    }
    let garbage = vault.garbage_bytes();
    let end = vault.log_end();
    assert!(garbage > 100_000, "garbage {garbage}");
    let old_segment = segment_path(dir.path());
    vault.compact().unwrap();
    assert_eq!(vault.garbage_bytes(), 0);
    assert!(vault.log_end() < end / 4, "{} of {end}", vault.log_end());
    assert!(!old_segment.exists(), "the old segment was not removed");
    assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);
    let check = |vault: &Vault| {
        assert_eq!(
            vault.keys_with_prefix("keep/").len() + vault.keys_with_prefix("churn/").len(),
            55
        );
        for i in 0..50u32 {
            assert_eq!(value(vault, &format!("keep/{i}")), Some(vec![i as u8; 300]));
        }
        for i in 5..10u32 {
            assert_eq!(value(vault, &format!("churn/{i}")), Some(vec![19; 1000]));
        }
        assert_eq!(value(vault, "churn/0"), None);
    };
    check(&vault);
    vault.put("after", b"compaction").unwrap();
    vault.close();
    let vault = open(dir.path());
    check(&vault);
    assert_eq!(value(&vault, "after").as_deref(), Some(&b"compaction"[..]));
}

#[test]
fn compaction_runs_on_its_own() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    let mut compactions = 0;
    let mut last_end = 0;
    for i in 0..400u32 {
        vault.put("hot", vec![i as u8; 3000]).unwrap();
        if vault.log_end() < last_end {
            compactions += 1;
        }
        last_end = vault.log_end();
    }
    assert!(compactions >= 2, "{compactions} compactions");
    assert!(vault.log_end() < 2 * crate::vault::COMPACT_MIN_GARBAGE + 8192);
    assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);
    vault.close();
    assert_eq!(value(&open(dir.path()), "hot"), Some(vec![143; 3000]));
}

#[test]
fn debug_and_errors_show_no_secret() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    vault.put("contact/SECRETKEY", b"SECRETVALUE").unwrap();
    let credentials = creds("SECRETPASS")
        .with_platform_secret(PlatformSecret::from_bytes(b"SECRETPLATFORM".to_vec()));
    let mut tx = vault.begin();
    tx.put("SECRETKEY2", b"SECRETVALUE2").unwrap();
    let texts = [
        format!("{tx:?}"),
        format!("{credentials:?}"),
        format!("{:?}", crate::vault::Passphrase::from("SECRETPASS")),
    ];
    drop(tx);
    let more = [
        format!("{vault:?}"),
        format!("{:?}", vault.keys_with_prefix("contact/").len()),
        format!("{:?}", open_with(dir.path(), &credentials).unwrap_err()),
        format!(
            "{}",
            vault.put(vec![b'S'; MAX_KEY_LEN + 1], b"x").unwrap_err()
        ),
    ];
    for text in texts.iter().chain(more.iter()) {
        assert!(!text.contains("SECRET"), "{text}");
        assert!(!text.contains("83, 69, 67"), "{text}"); // "SEC" as a byte list
    }
}

/// The format's real Argon2id cost, end to end: create and open with it, and print the
/// open time (`cargo test -p passage-client open_time -- --nocapture`).
#[test]
fn open_time_with_the_real_cost() {
    let dir = TempDir::new();
    let credentials = creds(PASSPHRASE);
    let mut vault = Vault::create(dir.path(), &credentials).unwrap();
    vault.put("k", b"v").unwrap();
    vault.close();
    let start = std::time::Instant::now();
    let vault = Vault::open(dir.path(), &credentials).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(value(&vault, "k").as_deref(), Some(&b"v"[..]));
    vault.close();
    let start = std::time::Instant::now();
    assert!(matches!(
        Vault::open(dir.path(), &creds("wrong")),
        Err(OpenError::WrongPassphrase)
    ));
    println!(
        "Vault::open with the real cost: right passphrase {elapsed:?}, wrong {:?}",
        start.elapsed()
    );
}
