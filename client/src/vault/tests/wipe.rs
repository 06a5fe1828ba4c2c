//! The panic wipe: afterwards nothing opens, and nothing readable is left.

use super::super::WriteError;
use super::disk::{encodings, entropy};
use super::*;

const DURESS: &str = "duress passphrase for the wipe";
const MARKERS: [&str; 3] = [
    "WIPEMARKER-contact-Amira",
    "WIPEMARKER-message-meet-at-the-bridge",
    "WIPEMARKER-decoy-history",
];

/// A vault with a decoy, markers in both profiles.
fn populated(dir: &Path) {
    let mut vault = create(dir);
    for i in 0..100u32 {
        vault
            .put(format!("message/{i}"), format!("{} {i}", MARKERS[1]))
            .unwrap();
    }
    vault.put(MARKERS[0], MARKERS[1]).unwrap();
    vault.set_duress(&creds(DURESS)).unwrap();
    vault.close();
    // Nothing else has this vault open, but a child process another test forks may
    // hold its lock for an instant (see `retry_busy`).
    let mut decoy =
        retry_busy(|| Vault::open_decoy_with_cost(dir, &creds(PASSPHRASE), KdfCost::TestOnly))
            .unwrap();
    decoy.put("history", MARKERS[2]).unwrap();
    decoy.close();
}

fn nothing_opens(dir: &Path) {
    for passphrase in [PASSPHRASE, DURESS, ""] {
        let err = open_with(dir, &creds(passphrase)).unwrap_err();
        assert!(
            matches!(err, OpenError::NoVault | OpenError::WrongPassphrase),
            "{err:?}"
        );
    }
}

#[test]
fn panic_removes_the_vault_and_its_empty_directory() {
    let parent = TempDir::new();
    let dir = parent.path().join("data");
    populated(&dir);
    Vault::panic(&dir).unwrap();
    assert!(!dir.exists(), "the emptied directory was left behind");
    nothing_opens(&dir);
    // A second wipe (a double tap on the button) is harmless.
    Vault::panic(&dir).unwrap();
}

#[test]
fn panic_touches_nothing_but_the_vault_files() {
    let dir = TempDir::new();
    populated(dir.path());
    std::fs::write(dir.path().join("notes.txt"), b"shopping list").unwrap();
    std::fs::write(dir.path().join("0123456789abcdef"), b"not a vault name").unwrap();
    Vault::panic(dir.path()).unwrap();
    let left: Vec<String> = snapshot(dir.path()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(left, ["0123456789abcdef", "notes.txt"]);
    nothing_opens(dir.path());
}

/// What the flash may still hold after the wipe: the blocks of the unlinked files. Hard
/// links taken before the wipe keep them readable here; the key-slot file is
/// overwritten in place, so its blocks are random, and the rest is ciphertext whose
/// keys are gone: no passphrase opens it, and no marker shows in any encoding.
#[test]
fn what_the_storage_keeps_after_panic_is_random_bytes() {
    let dir = TempDir::new();
    populated(dir.path());
    let image = TempDir::new();
    let names: Vec<String> = snapshot(dir.path()).into_iter().map(|(n, _)| n).collect();
    for name in &names {
        std::fs::hard_link(dir.path().join(name), image.path().join(name)).unwrap();
    }
    let keyslot_before = std::fs::read(keyslot_path(dir.path())).unwrap();
    Vault::panic(dir.path()).unwrap();
    assert!(!dir.path().exists());

    let kept = snapshot(image.path());
    assert_eq!(kept.len(), names.len());
    let keyslot = &kept.iter().find(|file| is_keyslot(file)).unwrap().1;
    assert_eq!(keyslot.len(), keyslot_before.len());
    // Every 4 KiB sector differs: salt and every position were overwritten.
    for (old, new) in keyslot_before.chunks(4096).zip(keyslot.chunks(4096)) {
        assert!(old != new);
    }
    for (name, bytes) in &kept {
        for (i, block) in bytes.chunks(4096).enumerate() {
            assert!(entropy(block) > 7.85, "{name} block {i}");
        }
        for marker in MARKERS.iter().chain(&[PASSPHRASE, DURESS]) {
            for encoding in encodings(marker) {
                assert!(
                    !bytes.windows(encoding.len()).any(|w| w == encoding),
                    "{marker} in {name}"
                );
            }
        }
    }
    nothing_opens(image.path());
}

#[test]
fn panic_works_while_the_vault_is_open() {
    // From another handle (another process holding the lock).
    let dir = TempDir::new();
    populated(dir.path());
    let mut vault = open(dir.path());
    // Another file in the directory keeps it from being removed.
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    Vault::panic(dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // The vault still open in "the other process" writes nothing more, and above all
    // creates no new file in the wiped directory.
    assert!(matches!(vault.put("later", b"x"), Err(WriteError::Gone)));
    assert!(matches!(vault.compact(), Err(WriteError::Gone)));
    assert!(matches!(vault.put("later", b"x"), Err(WriteError::Gone)));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    drop(vault);
    std::fs::remove_file(dir.path().join("notes.txt")).unwrap();
    nothing_opens(dir.path());

    // From the open vault itself (a mobile app's panic button).
    let dir = TempDir::new();
    populated(dir.path());
    let mut vault = open(dir.path());
    vault.put("last", MARKERS[1]).unwrap();
    vault.panic_wipe().unwrap();
    assert!(!dir.path().exists());
    nothing_opens(dir.path());
}
