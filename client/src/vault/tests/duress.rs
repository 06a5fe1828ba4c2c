//! The duress passphrase and the decoy profile: what the duress open does, what the
//! owner can do with the decoy, and what the disk shows before and after the switch.

use super::disk::entropy;
use super::*;
use crate::vault::format::{KEYSLOT_FILE_LEN, SALT_BLOCK_LEN, SLOT_COUNT, SLOT_LEN, pair_mask};
use crate::vault::kdf::derive_kek;
use crate::vault::keyslot::{self, KeySlotFile};
use crate::vault::{ChangePassphraseError, SetDuressError};

const DURESS: &str = "duress: the name of my first dog";
const REAL_MARKER: &str = "REALMARKER-c0ffee-safehouse-address";

fn open_decoy(dir: &Path) -> Result<Vault, OpenError> {
    open_decoy_with(dir, PASSPHRASE)
}

/// `Vault::open_decoy`, with `Busy` retried (see [`retry_busy`]).
fn open_decoy_with(dir: &Path, passphrase: &str) -> Result<Vault, OpenError> {
    retry_busy(|| Vault::open_decoy_with_cost(dir, &creds(passphrase), KdfCost::TestOnly))
}

fn position_range(index: usize) -> std::ops::Range<usize> {
    let start = SALT_BLOCK_LEN + index * SLOT_LEN;
    start..start + SLOT_LEN
}

fn keyslot_file(dir: &Path) -> Vec<u8> {
    std::fs::read(keyslot_path(dir)).unwrap()
}

/// The positions of `keyslot` that `passphrase` opens.
fn live_positions(keyslot: &[u8], passphrase: &str) -> Vec<usize> {
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&keyslot[..32]);
    let kek = derive_kek(KdfCost::TestOnly, &creds(passphrase), &salt).unwrap();
    (0..SLOT_COUNT)
        .filter(|&i| keyslot::try_position(&kek, &salt, i, &keyslot[position_range(i)]).is_some())
        .collect()
}

/// A vault with real content, a duress passphrase, and a decoy the owner filled.
fn with_decoy(dir: &Path) {
    let mut vault = create(dir);
    for i in 0..50u32 {
        vault
            .put(format!("message/{i}"), format!("{REAL_MARKER} {i}"))
            .unwrap();
    }
    vault.put("contact/real", REAL_MARKER).unwrap();
    vault.set_duress(&creds(DURESS)).unwrap();
    vault.put("after-duress", b"real").unwrap();
    vault.close();
    let mut decoy = open_decoy(dir).unwrap();
    fill_like_the_decoy(&mut decoy);
    decoy.close();
}

/// The content the owner gives the decoy in [`with_decoy`].
fn fill_like_the_decoy(vault: &mut Vault) {
    vault.put("contact/mum", b"Mum").unwrap();
    for i in 0..20u32 {
        vault
            .put(format!("message/{i}"), format!("see you at dinner {i}"))
            .unwrap();
    }
}

fn assert_decoy_content(vault: &Vault) {
    assert_eq!(value(vault, "contact/mum").as_deref(), Some(&b"Mum"[..]));
    assert_eq!(vault.keys_with_prefix("message/").len(), 20);
    assert_eq!(vault.get("contact/real").unwrap(), None);
    assert_eq!(vault.get("after-duress").unwrap(), None);
}

fn assert_wrong(dir: &Path, passphrase: &str) {
    let err = open_with(dir, &creds(passphrase)).unwrap_err();
    assert!(matches!(err, OpenError::WrongPassphrase), "{err:?}");
}

#[test]
fn duress_open_shows_the_decoy_and_destroys_the_real_profile() {
    let dir = TempDir::new();
    with_decoy(dir.path());
    let real = open(dir.path());
    let real_debug = format!("{real:?}");
    real.close();
    let before = snapshot(dir.path());
    let keyslot_before = keyslot_file(dir.path());
    let real_positions = live_positions(&keyslot_before, PASSPHRASE);
    assert_eq!(real_positions.len(), 1);

    // The duress passphrase opens the decoy like any vault: same type, same Debug.
    let decoy = open_with(dir.path(), &creds(DURESS)).unwrap();
    assert_decoy_content(&decoy);
    assert_eq!(format!("{decoy:?}"), real_debug);
    decoy.close();

    // The real passphrase is now just a wrong one: same error, same text.
    let err = open_with(dir.path(), &creds(PASSPHRASE)).unwrap_err();
    let wrong = open_with(dir.path(), &creds("not a passphrase")).unwrap_err();
    assert!(matches!(err, OpenError::WrongPassphrase), "{err:?}");
    assert_eq!(err.to_string(), wrong.to_string());
    assert!(matches!(
        open_decoy(dir.path()),
        Err(OpenError::WrongPassphrase)
    ));

    // On disk: the same files with the same sizes; the data files are untouched (the
    // real segment stays, unreadable); the key-slot file keeps its salt and size, and
    // the real profile's positions hold other bytes.
    let after = snapshot(dir.path());
    let names = |files: &[(String, Vec<u8>)]| {
        files
            .iter()
            .map(|(name, bytes)| (name.clone(), bytes.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&after), names(&before));
    assert_eq!(after.len(), FILE_COUNT);
    assert_eq!(data_files(&after), data_files(&before));
    let keyslot_after = keyslot_file(dir.path());
    assert_eq!(keyslot_after.len(), KEYSLOT_FILE_LEN);
    assert_eq!(
        keyslot_after[..SALT_BLOCK_LEN],
        keyslot_before[..SALT_BLOCK_LEN]
    );
    for i in (0..SLOT_COUNT).filter(|&i| pair_mask(real_positions[0]) & (1 << i) != 0) {
        assert!(keyslot_after[position_range(i)] != keyslot_before[position_range(i)]);
    }
    assert!(live_positions(&keyslot_after, PASSPHRASE).is_empty());
    assert_eq!(live_positions(&keyslot_after, DURESS).len(), 1);
    // Every file still looks random, block by block.
    for (name, bytes) in &after {
        for (i, block) in bytes.chunks(4096).enumerate() {
            assert!(entropy(block) > 7.85, "{name} block {i}");
        }
    }

    // Later duress opens are ordinary opens of what is now the only profile.
    let decoy = open_with(dir.path(), &creds(DURESS)).unwrap();
    assert_decoy_content(&decoy);
    assert!(!decoy.has_companion_for_tests());
}

#[test]
fn wrong_passphrase_changes_nothing_with_a_decoy() {
    let dir = TempDir::new();
    with_decoy(dir.path());
    let before = snapshot(dir.path());
    for wrong in ["", "duress", "correct horse battery stapl", &DURESS[1..]] {
        assert_wrong(dir.path(), wrong);
        let err = open_decoy_with(dir.path(), wrong).unwrap_err();
        assert!(matches!(err, OpenError::WrongPassphrase), "{err:?}");
    }
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a failed open wrote something"
    );
    // Both profiles are intact.
    assert_eq!(
        value(&open(dir.path()), "contact/real").as_deref(),
        Some(REAL_MARKER.as_bytes())
    );
    assert_decoy_content(&open_decoy(dir.path()).unwrap());
}

#[test]
fn owner_writes_to_the_decoy_are_seen_after_the_switch() {
    let dir = TempDir::new();
    with_decoy(dir.path());
    // The owner keeps the decoy lived in, compactions included, and uses the real
    // profile in between: neither disturbs the other.
    for round in 0..3u32 {
        let mut decoy = open_decoy(dir.path()).unwrap();
        for i in 0..30u32 {
            decoy
                .put(format!("history/{round}/{i}"), vec![b'h'; 700])
                .unwrap();
        }
        decoy.delete(format!("history/{round}/0")).unwrap();
        decoy.compact().unwrap();
        decoy.close();
        let mut real = open(dir.path());
        real.put(format!("real/{round}"), b"x").unwrap();
        real.compact().unwrap();
        assert_eq!(
            value(&real, "contact/real").as_deref(),
            Some(REAL_MARKER.as_bytes())
        );
        real.close();
        assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);
    }
    let keyslot = keyslot_file(dir.path());
    let (real, decoy) = (
        live_positions(&keyslot, PASSPHRASE),
        live_positions(&keyslot, DURESS),
    );
    assert_eq!((real.len(), decoy.len()), (1, 1));
    assert_ne!(
        pair_mask(real[0]),
        pair_mask(decoy[0]),
        "profiles share a pair"
    );

    let decoy = open_with(dir.path(), &creds(DURESS)).unwrap();
    assert_decoy_content(&decoy);
    assert_eq!(decoy.keys_with_prefix("history/").len(), 3 * 29);
    assert_eq!(decoy.get("history/1/0").unwrap(), None);
    decoy.close();
    assert_wrong(dir.path(), PASSPHRASE);
}

#[test]
fn the_decoy_lives_on_after_the_switch_without_bringing_back_the_real_profile() {
    let dir = TempDir::new();
    with_decoy(dir.path());
    let real_segment = segment_path(dir.path());
    let orphan = std::fs::read(&real_segment).unwrap();
    let mut decoy = open_with(dir.path(), &creds(DURESS)).unwrap();
    for i in 0..200u32 {
        decoy.put("hot", vec![i as u8; 3000]).unwrap();
    }
    decoy.compact().unwrap();
    decoy
        .change_passphrase(&creds(DURESS), &creds("new decoy passphrase"))
        .unwrap();
    // The decoy is now an ordinary profile: it may even get a duress passphrase.
    decoy.set_duress(&creds("another duress")).unwrap();
    decoy.close();
    assert_wrong(dir.path(), PASSPHRASE);
    assert_wrong(dir.path(), DURESS);
    let decoy = open_with(dir.path(), &creds("new decoy passphrase")).unwrap();
    assert_decoy_content(&decoy);
    assert!(value(&decoy, "hot").is_some());
    decoy.close();
    // The real segment stayed as it was until the decoy's own set_duress took its
    // place (the number of files never changed); nothing opens it.
    assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);
    assert!(!real_segment.exists() || std::fs::read(&real_segment).unwrap() == orphan);
    assert_wrong(dir.path(), PASSPHRASE);
}

#[test]
fn setting_duress_again_replaces_the_decoy() {
    let dir = TempDir::new();
    with_decoy(dir.path());
    let mut real = open(dir.path());
    real.set_duress(&creds("second duress")).unwrap();
    real.close();
    assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);
    // The old duress passphrase is an ordinary wrong one now: it erases nothing.
    assert_wrong(dir.path(), DURESS);
    assert_eq!(
        value(&open(dir.path()), "contact/real").as_deref(),
        Some(REAL_MARKER.as_bytes())
    );
    // The new decoy starts empty; the old one's content is gone.
    let mut decoy = open_decoy(dir.path()).unwrap();
    assert!(decoy.is_empty());
    decoy.put("contact/new", b"new").unwrap();
    decoy.close();
    let keyslot = keyslot_file(dir.path());
    assert_eq!(live_positions(&keyslot, PASSPHRASE).len(), 1);
    assert_eq!(live_positions(&keyslot, "second duress").len(), 1);
    assert!(live_positions(&keyslot, DURESS).is_empty());

    let decoy = open_with(dir.path(), &creds("second duress")).unwrap();
    assert_eq!(value(&decoy, "contact/new").as_deref(), Some(&b"new"[..]));
    assert_eq!(decoy.get("contact/mum").unwrap(), None);
    decoy.close();
    assert_wrong(dir.path(), PASSPHRASE);
    assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);
}

#[test]
fn the_number_of_files_does_not_say_whether_a_decoy_exists() {
    let plain = TempDir::new();
    create(plain.path()).close();
    let with = TempDir::new();
    with_decoy(with.path());
    let sizes = |dir: &Path| {
        let mut sizes: Vec<usize> = snapshot(dir).iter().map(|(_, b)| b.len()).collect();
        sizes.sort();
        sizes
    };
    assert_eq!(snapshot(plain.path()).len(), FILE_COUNT);
    assert_eq!(snapshot(with.path()).len(), FILE_COUNT);
    // A small decoy and a fresh vault's reserve take the same room.
    let fresh = TempDir::new();
    let mut vault = create(fresh.path());
    vault.set_duress(&creds(DURESS)).unwrap();
    vault.close();
    assert_eq!(sizes(fresh.path()), sizes(plain.path()));
}

#[test]
fn duress_refusals_change_nothing() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    vault.put("k", b"v").unwrap();
    let before = snapshot(dir.path());
    let err = vault.set_duress(&creds(PASSPHRASE)).unwrap_err();
    assert!(matches!(err, SetDuressError::SameAsPassphrase), "{err:?}");
    assert_eq!(snapshot(dir.path()), before);
    assert!(matches!(
        Vault::open_decoy_with_cost(dir.path(), &creds(PASSPHRASE), KdfCost::TestOnly),
        Err(OpenError::Busy)
    ));
    vault.set_duress(&creds(DURESS)).unwrap();
    let err = vault
        .change_passphrase(&creds(PASSPHRASE), &creds(DURESS))
        .unwrap_err();
    assert!(
        matches!(err, ChangePassphraseError::SameAsDuress),
        "{err:?}"
    );
    vault.close();

    // The decoy, opened by the owner, has no duress passphrase or passphrase of its own.
    let mut decoy = open_decoy(dir.path()).unwrap();
    assert!(matches!(
        decoy.set_duress(&creds("x")),
        Err(SetDuressError::OpenedAsDecoy)
    ));
    assert!(matches!(
        decoy.change_passphrase(&creds(DURESS), &creds("y")),
        Err(ChangePassphraseError::OpenedAsDecoy)
    ));
    decoy.close();
    assert_eq!(value(&open(dir.path()), "k").as_deref(), Some(&b"v"[..]));
}

#[test]
fn open_decoy_without_a_decoy_and_with_the_duress_passphrase() {
    let dir = TempDir::new();
    create(dir.path()).close();
    assert!(matches!(open_decoy(dir.path()), Err(OpenError::NoDecoy)));
    // Given the duress passphrase, open_decoy switches like open, then finds no decoy
    // in what is now the only profile.
    let dir = TempDir::new();
    with_decoy(dir.path());
    let err = open_decoy_with(dir.path(), DURESS).unwrap_err();
    assert!(matches!(err, OpenError::NoDecoy), "{err:?}");
    assert_wrong(dir.path(), PASSPHRASE);
    assert_decoy_content(&open_with(dir.path(), &creds(DURESS)).unwrap());
}

/// A crash in the middle of the duress switch: whichever of its writes reached the
/// disk, the next duress open still destroys the real profile.
#[test]
fn an_interrupted_switch_is_finished_by_the_next_duress_open() {
    // Only the erase reached the disk.
    let dir = TempDir::new();
    with_decoy(dir.path());
    let mut keyslot = keyslot_file(dir.path());
    let real = live_positions(&keyslot, PASSPHRASE)[0];
    let mut noise = vec![0u8; SLOT_LEN];
    crate::vault::fsio::random_bytes(&mut noise).unwrap();
    keyslot[position_range(real)].copy_from_slice(&noise);
    std::fs::write(keyslot_path(dir.path()), &keyslot).unwrap();
    assert_decoy_content(&open_with(dir.path(), &creds(DURESS)).unwrap());
    assert_wrong(dir.path(), PASSPHRASE);

    // Only the decoy's new copy reached the disk: the real profile and the old copy of
    // the decoy are both still there.
    let dir = TempDir::new();
    with_decoy(dir.path());
    {
        let (file, positions) =
            retry_busy(|| KeySlotFile::open_named(dir.path(), &keyslot_name(dir.path()))).unwrap();
        let kek = derive_kek(KdfCost::TestOnly, &creds(DURESS), file.salt()).unwrap();
        let duress = keyslot::unlock(&kek, file.salt(), &positions, 0)
            .unwrap()
            .unwrap();
        let partner = duress.position ^ 1;
        file.write_payload(&kek, partner, &duress.payload.next_generation())
            .unwrap();
    }
    let keyslot = keyslot_file(dir.path());
    assert_eq!(live_positions(&keyslot, PASSPHRASE).len(), 1);
    assert_eq!(live_positions(&keyslot, DURESS).len(), 2);
    assert_decoy_content(&open_with(dir.path(), &creds(DURESS)).unwrap());
    assert_wrong(dir.path(), PASSPHRASE);
    let keyslot = keyslot_file(dir.path());
    assert_eq!(live_positions(&keyslot, DURESS).len(), 1);
}

#[test]
fn the_platform_secret_guards_the_decoy_too() {
    use crate::vault::PlatformSecret;
    let with_secret = |passphrase: &str| {
        Credentials::new(passphrase).with_platform_secret(PlatformSecret::from_bytes(vec![7; 32]))
    };
    let dir = TempDir::new();
    let mut vault =
        Vault::create_with_cost(dir.path(), &with_secret(PASSPHRASE), KdfCost::TestOnly).unwrap();
    vault.put("k", b"v").unwrap();
    vault.set_duress(&with_secret(DURESS)).unwrap();
    vault.close();
    // Without the device's secret the duress passphrase is just wrong: nothing erased.
    assert_wrong(dir.path(), DURESS);
    let real = open_with(dir.path(), &with_secret(PASSPHRASE)).unwrap();
    assert_eq!(value(&real, "k").as_deref(), Some(&b"v"[..]));
    real.close();
    let decoy = open_with(dir.path(), &with_secret(DURESS)).unwrap();
    assert!(decoy.is_empty());
    decoy.close();
    assert!(matches!(
        open_with(dir.path(), &with_secret(PASSPHRASE)),
        Err(OpenError::WrongPassphrase)
    ));
}

/// The duress switch on a vault made by [`with_decoy`]: afterwards only the decoy, now
/// an ordinary profile, is left.
fn switched(dir: &Path) {
    with_decoy(dir);
    let decoy = open_with(dir, &creds(DURESS)).unwrap();
    assert_decoy_content(&decoy);
    decoy.close();
    assert_wrong(dir, PASSPHRASE);
}

/// The error an open with credentials that open nothing gets, and its text.
fn wrong_text(dir: &Path) -> String {
    let err = open_with(dir, &creds("not any passphrase")).unwrap_err();
    assert!(matches!(err, OpenError::WrongPassphrase), "{err:?}");
    err.to_string()
}

#[test]
fn after_the_switch_the_passphrase_changes_like_any_profiles() {
    let dir = TempDir::new();
    switched(dir.path());
    let mut vault = open_with(dir.path(), &creds(DURESS)).unwrap();
    let err = vault
        .change_passphrase(&creds(PASSPHRASE), &creds("new one"))
        .unwrap_err();
    assert!(
        matches!(err, ChangePassphraseError::WrongPassphrase),
        "{err:?}"
    );
    vault
        .change_passphrase(&creds(DURESS), &creds("new one"))
        .unwrap();
    vault.put("after-change", b"kept").unwrap();
    vault.close();
    assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);

    // The old duress passphrase is an ordinary wrong one now: the same error and text
    // as any other, and nothing written (it erases nothing).
    let before = snapshot(dir.path());
    let err = open_with(dir.path(), &creds(DURESS)).unwrap_err();
    assert!(matches!(err, OpenError::WrongPassphrase), "{err:?}");
    assert_eq!(err.to_string(), wrong_text(dir.path()));
    let err = open_decoy_with(dir.path(), DURESS).unwrap_err();
    assert!(matches!(err, OpenError::WrongPassphrase), "{err:?}");
    assert_wrong(dir.path(), PASSPHRASE);
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a failed open wrote something"
    );

    // The new passphrase opens the same content, in the one live position.
    let keyslot = keyslot_file(dir.path());
    assert!(live_positions(&keyslot, DURESS).is_empty());
    assert!(live_positions(&keyslot, PASSPHRASE).is_empty());
    assert_eq!(live_positions(&keyslot, "new one").len(), 1);
    let vault = open_with(dir.path(), &creds("new one")).unwrap();
    assert_decoy_content(&vault);
    assert_eq!(value(&vault, "after-change").as_deref(), Some(&b"kept"[..]));
}

#[test]
fn after_the_switch_the_decoy_sets_a_duress_passphrase_of_its_own() {
    const SECOND_DURESS: &str = "second duress: the street I grew up on";
    let dir = TempDir::new();
    with_decoy(dir.path());
    let real_segment = segment_path(dir.path());
    let mut former = open_with(dir.path(), &creds(DURESS)).unwrap();
    assert!(real_segment.exists(), "the switch removed a file");
    former.put("after-switch", b"former decoy").unwrap();
    former.set_duress(&creds(SECOND_DURESS)).unwrap();
    former.close();

    // Its own decoy, in the pair it does not use (the one the real profile's erased
    // positions left free or the one it came from, as for any profile); its segment
    // took the place of the third file, the real profile's old segment.
    let keyslot = keyslot_file(dir.path());
    let (own, decoy) = (
        live_positions(&keyslot, DURESS),
        live_positions(&keyslot, SECOND_DURESS),
    );
    assert_eq!((own.len(), decoy.len()), (1, 1));
    assert_ne!(
        pair_mask(own[0]),
        pair_mask(decoy[0]),
        "profiles share a pair"
    );
    assert!(live_positions(&keyslot, PASSPHRASE).is_empty());
    assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);
    assert!(!real_segment.exists());

    // The former decoy's owner prepares the new decoy with the former duress passphrase.
    let mut decoy = open_decoy_with(dir.path(), DURESS).unwrap();
    assert!(decoy.is_empty());
    decoy.put("contact/neighbour", b"Neighbour").unwrap();
    decoy.close();

    // The second duress passphrase erases the former decoy and opens the new one.
    let vault = open_with(dir.path(), &creds(SECOND_DURESS)).unwrap();
    assert_eq!(
        value(&vault, "contact/neighbour").as_deref(),
        Some(&b"Neighbour"[..])
    );
    assert_eq!(vault.len(), 1);
    vault.close();
    assert_eq!(
        open_with(dir.path(), &creds(DURESS))
            .unwrap_err()
            .to_string(),
        wrong_text(dir.path())
    );
    assert_wrong(dir.path(), PASSPHRASE);
    let keyslot = keyslot_file(dir.path());
    assert!(live_positions(&keyslot, DURESS).is_empty());
    assert!(live_positions(&keyslot, PASSPHRASE).is_empty());
    assert_eq!(live_positions(&keyslot, SECOND_DURESS).len(), 1);
    assert_eq!(snapshot(dir.path()).len(), FILE_COUNT);
    let vault = open_with(dir.path(), &creds(SECOND_DURESS)).unwrap();
    assert_eq!(vault.get("after-switch").unwrap(), None);
    assert_eq!(vault.get("contact/mum").unwrap(), None);
    assert_eq!(vault.get("contact/real").unwrap(), None);
}

/// What can be seen of a vault from outside: how many files, their sizes (sorted, since
/// names are random), whether every block looks random, and how many key-slot
/// positions `passphrase` opens.
fn outside_view(dir: &Path, passphrase: &str) -> (usize, Vec<usize>, usize) {
    let files = snapshot(dir);
    for (name, bytes) in &files {
        for (i, block) in bytes.chunks(4096).enumerate() {
            assert!(entropy(block) > 7.85, "{name} block {i}");
        }
    }
    let mut sizes: Vec<usize> = files.iter().map(|(_, bytes)| bytes.len()).collect();
    sizes.sort();
    let live = live_positions(&keyslot_file(dir), passphrase).len();
    (files.len(), sizes, live)
}

/// An ordinary profile's life, from outside: every error text and the outside view
/// after each step. Two vaults that give the same answers cannot be told apart by
/// anything this does.
fn lifecycle(dir: &Path, passphrase: &str) -> Vec<String> {
    const SECOND: &str = "lifecycle second passphrase";
    const SECOND_DURESS: &str = "lifecycle duress passphrase";
    let mut seen = vec![format!("{:?}", outside_view(dir, passphrase))];
    let mut note = |step: &str, what: String| seen.push(format!("{step}: {what}"));

    // `--decoy` on a profile that has no decoy.
    note(
        "open_decoy",
        open_decoy_with(dir, passphrase).unwrap_err().to_string(),
    );
    // Ordinary use: writes, deletes, a compaction, refusals.
    let mut vault = open_with(dir, &creds(passphrase)).unwrap();
    note("debug", format!("{vault:?}"));
    note("payload", payload_shape(&vault));
    for i in 0..40u32 {
        vault.put(format!("history/{i}"), vec![b'h'; 500]).unwrap();
    }
    vault.delete("history/0").unwrap();
    vault.compact().unwrap();
    let err = vault
        .change_passphrase(&creds("not it"), &creds("x"))
        .unwrap_err();
    note("change, wrong current", err.to_string());
    let err = vault.set_duress(&creds(passphrase)).unwrap_err();
    note("duress = passphrase", err.to_string());
    vault
        .change_passphrase(&creds(passphrase), &creds(SECOND))
        .unwrap();
    vault.close();
    note("changed", format!("{:?}", outside_view(dir, SECOND)));
    note(
        "old passphrase",
        open_with(dir, &creds(passphrase)).unwrap_err().to_string(),
    );

    // Its own duress passphrase and decoy.
    let mut vault = open_with(dir, &creds(SECOND)).unwrap();
    vault.set_duress(&creds(SECOND_DURESS)).unwrap();
    let err = vault
        .change_passphrase(&creds(SECOND), &creds(SECOND_DURESS))
        .unwrap_err();
    note("passphrase = duress", err.to_string());
    vault.close();
    note("duress set", format!("{:?}", outside_view(dir, SECOND)));
    let mut decoy = open_decoy_with(dir, SECOND).unwrap();
    note("decoy len", decoy.len().to_string());
    decoy.put("contact/aunt", b"Aunt").unwrap();
    decoy.close();
    note("decoy filled", format!("{:?}", outside_view(dir, SECOND)));

    // Its duress switch.
    let decoy = open_with(dir, &creds(SECOND_DURESS)).unwrap();
    note("switched len", decoy.len().to_string());
    note("payload", payload_shape(&decoy));
    decoy.close();
    note(
        "switched",
        format!("{:?}", outside_view(dir, SECOND_DURESS)),
    );
    note(
        "erased passphrase",
        open_with(dir, &creds(SECOND)).unwrap_err().to_string(),
    );
    note(
        "erased passphrase, --decoy",
        open_decoy_with(dir, SECOND).unwrap_err().to_string(),
    );
    seen
}

/// Whether the open vault knows of a second profile (not its keys or counters).
fn payload_shape(vault: &Vault) -> String {
    format!("companion {}", vault.has_companion_for_tests())
}

#[test]
fn after_the_switch_nothing_tells_the_vault_from_one_that_never_had_a_decoy() {
    // The switched vault, and a vault that never had a decoy, holding the same content.
    let switched_dir = TempDir::new();
    switched(switched_dir.path());
    let plain_dir = TempDir::new();
    let mut plain =
        Vault::create_with_cost(plain_dir.path(), &creds(DURESS), KdfCost::TestOnly).unwrap();
    fill_like_the_decoy(&mut plain);
    plain.close();
    let plain = open_with(plain_dir.path(), &creds(DURESS)).unwrap();
    assert_decoy_content(&plain);
    plain.close();

    // On disk: as many files, the same sizes, random bytes, one live position.
    let view = outside_view(switched_dir.path(), DURESS);
    assert_eq!(view, outside_view(plain_dir.path(), DURESS));
    assert_eq!(view.0, FILE_COUNT);
    assert_eq!(view.2, 1);
    assert!(live_positions(&keyslot_file(switched_dir.path()), PASSPHRASE).is_empty());

    // In use: the same errors, the same file effects, down to its own duress switch.
    let switched_life = lifecycle(switched_dir.path(), DURESS);
    let plain_life = lifecycle(plain_dir.path(), DURESS);
    assert_eq!(switched_life, plain_life);
    for line in &switched_life {
        assert!(!line.contains("decoy profile"), "{line}");
    }
    assert_wrong(switched_dir.path(), PASSPHRASE);
    assert_wrong(switched_dir.path(), DURESS);
}
