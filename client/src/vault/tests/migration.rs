//! Vaults written by format version 1 (fixtures made by that version's code, in
//! `client/tests/fixtures/vault-v1`) open, keep everything, and are rewritten in
//! version 2 by their first open; and what a version-2 slot shows to someone holding
//! the duress passphrase.

use super::*;
use crate::vault::format::{
    FORMAT_VERSION, KEYSLOT_FILE_LEN, LEGACY_KEYSLOT_FILE_NAME, SALT_BLOCK_LEN, SLOT_COUNT,
    SLOT_LEN, SLOT_PLAINTEXT_LEN, open_slot,
};
use crate::vault::kdf::derive_kek;

const V1_DURESS: &str = "duress: the name of my first dog";

/// A copy of fixture `name` in a fresh directory (an open rewrites what it opens).
fn fixture(name: &str) -> TempDir {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vault-v1")
        .join(name);
    let dir = TempDir::new();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// The decrypted payloads (plaintext bytes) that `passphrase` opens in `dir`'s key-slot
/// file, by position: what an examiner's own tool, following the format's
/// documentation, reads with that passphrase.
fn opened_slots(dir: &Path, passphrase: &str) -> Vec<(usize, Vec<u8>)> {
    let keyslot = std::fs::read(keyslot_path(dir)).unwrap();
    assert_eq!(keyslot.len(), KEYSLOT_FILE_LEN);
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&keyslot[..32]);
    let kek = derive_kek(KdfCost::TestOnly, &creds(passphrase), &salt).unwrap();
    (0..SLOT_COUNT)
        .filter_map(|i| {
            let start = SALT_BLOCK_LEN + i * SLOT_LEN;
            open_slot(
                &kek.slot_key(&salt, i),
                i,
                &salt,
                &keyslot[start..start + SLOT_LEN],
            )
            .map(|plain| (i, plain.to_vec()))
        })
        .collect()
}

#[test]
fn a_version_1_vault_opens_and_is_rewritten_in_version_2() {
    let dir = fixture("plain");
    assert!(dir.path().join(LEGACY_KEYSLOT_FILE_NAME).exists());
    assert!(
        opened_slots(dir.path(), PASSPHRASE)
            .iter()
            .all(|(_, p)| p[0] == 1)
    );

    let vault = open(dir.path());
    assert_eq!(value(&vault, "contact/one").as_deref(), Some(&b"One"[..]));
    assert_eq!(vault.keys_with_prefix("message/").len(), 10);
    assert_eq!(value(&vault, "message/3").as_deref(), Some(&b"plain 3"[..]));
    vault.close();

    // Renamed to a random name, every used position in version 2, still three files.
    assert!(!dir.path().join(LEGACY_KEYSLOT_FILE_NAME).exists());
    assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);
    let slots = opened_slots(dir.path(), PASSPHRASE);
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].1[0], FORMAT_VERSION);
    let vault = open(dir.path());
    assert_eq!(vault.len(), 11);
}

#[test]
fn a_version_1_vault_with_a_decoy_keeps_both_profiles() {
    let dir = fixture("duress");
    let real = open(dir.path());
    assert_eq!(value(&real, "contact/real").as_deref(), Some(&b"Real"[..]));
    assert_eq!(real.keys_with_prefix("message/").len(), 10);
    assert!(real.has_companion_for_tests());
    real.close();
    // The real open re-sealed the decoy too: both in version 2 now.
    for passphrase in [PASSPHRASE, V1_DURESS] {
        let slots = opened_slots(dir.path(), passphrase);
        assert_eq!(slots.len(), 1, "{passphrase}");
        assert_eq!(slots[0].1[0], FORMAT_VERSION);
    }
    let decoy = retry_busy(|| {
        Vault::open_decoy_with_cost(dir.path(), &creds(PASSPHRASE), KdfCost::TestOnly)
    })
    .unwrap();
    assert_eq!(value(&decoy, "contact/mum").as_deref(), Some(&b"Mum"[..]));
    decoy.close();

    // The duress passphrase still destroys the real profile, once migrated...
    let decoy = open_with(dir.path(), &creds(V1_DURESS)).unwrap();
    assert_eq!(value(&decoy, "contact/mum").as_deref(), Some(&b"Mum"[..]));
    assert_eq!(decoy.get("contact/real").unwrap(), None);
    decoy.close();
    assert!(matches!(
        open_with(dir.path(), &creds(PASSPHRASE)),
        Err(OpenError::WrongPassphrase)
    ));

    // ...and straight from a version-1 file (its duress slot read as a plain profile).
    let dir = fixture("duress");
    let decoy = open_with(dir.path(), &creds(V1_DURESS)).unwrap();
    assert_eq!(value(&decoy, "contact/mum").as_deref(), Some(&b"Mum"[..]));
    decoy.close();
    assert!(matches!(
        open_with(dir.path(), &creds(PASSPHRASE)),
        Err(OpenError::WrongPassphrase)
    ));
    assert_eq!(opened_slots(dir.path(), V1_DURESS)[0].1[0], FORMAT_VERSION);
}

/// The examiner holding the duress passphrase decrypts every position with it: the
/// decoy's payload has exactly the shape of a profile that never had a decoy, and its
/// linked-KEK field opens nothing (as in a plain profile: random bytes).
#[test]
fn the_duress_passphrase_reveals_no_role_and_no_other_position() {
    const DURESS: &str = "duress: my first dog";
    let with = TempDir::new();
    let mut real = create(with.path());
    real.put("contact/real", b"x").unwrap();
    real.set_duress(&creds(DURESS)).unwrap();
    real.close();
    open(with.path()).close();
    let plain = TempDir::new();
    Vault::create_with_cost(plain.path(), &creds(DURESS), KdfCost::TestOnly)
        .unwrap()
        .close();
    open_with(plain.path(), &creds(DURESS)).unwrap().close();

    // Layout, from the format's documentation: version (1) ‖ generation (8) ‖ id (16)
    // ‖ data key (32) ‖ epoch (8) ‖ segment secret (32) ‖ linked KEK (32) ‖ zeros.
    const LINKED: std::ops::Range<usize> = 97..129;
    for dir in [with.path(), plain.path()] {
        let slots = opened_slots(dir, DURESS);
        assert_eq!(slots.len(), 1, "one position opens");
        let (_, payload) = &slots[0];
        assert_eq!(payload.len(), SLOT_PLAINTEXT_LEN);
        assert_eq!(payload[0], FORMAT_VERSION);
        assert!(payload[LINKED.end..].iter().all(|&b| b == 0));
        // Tried as a KEK, the linked field opens no position of the file.
        let keyslot = std::fs::read(keyslot_path(dir)).unwrap();
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&keyslot[..32]);
        let mut linked = [0u8; 32];
        linked.copy_from_slice(&payload[LINKED]);
        let kek = crate::vault::kdf::Kek::from_secret(
            passage_crypto::primitives::Secret32::from_bytes(linked),
        );
        for i in 0..SLOT_COUNT {
            let start = SALT_BLOCK_LEN + i * SLOT_LEN;
            assert!(
                open_slot(
                    &kek.slot_key(&salt, i),
                    i,
                    &salt,
                    &keyslot[start..start + SLOT_LEN]
                )
                .is_none()
            );
        }
    }
    // The real profile's link opens the decoy: only the real passphrase shows it.
    assert_eq!(opened_slots(with.path(), PASSPHRASE).len(), 1);
}
