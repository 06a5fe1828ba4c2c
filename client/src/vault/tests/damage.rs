//! Damaged and torn files: what is detected, what is ignored, and that a refused open
//! writes nothing.

use std::os::unix::fs::FileExt as _;

use super::*;
use crate::vault::ReadError;

/// A vault with three one-record commits at offsets 0, 256 and 512.
fn three_records(dir: &Path) -> PathBuf {
    let mut vault = create(dir);
    vault.put("first", b"1").unwrap();
    vault.put("second", b"2").unwrap();
    vault.put("third", b"3").unwrap();
    assert_eq!(vault.log_end(), 768);
    vault.close();
    segment_path(dir)
}

fn flip(path: &Path, offset: u64) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 0x01], offset).unwrap();
}

#[test]
fn damaged_committed_record_fails_the_open_and_leaves_the_data_alone() {
    for offset in [3u64, 30, 100, 255, 256 + 44, 256 + 200] {
        let dir = TempDir::new();
        let segment = three_records(dir.path());
        flip(&segment, offset);
        let before = snapshot(dir.path());
        let err = open_with(dir.path(), &creds(PASSPHRASE)).unwrap_err();
        assert!(
            matches!(err, OpenError::Corrupted),
            "byte {offset}: {err:?}"
        );
        // Only the key slot changed: every open that finds its slot re-seals it (same
        // keys) before it reads the log, so that a duress open never leaves the real
        // profile behind, whatever the decoy's log holds.
        assert_eq!(data_files(&snapshot(dir.path())), data_files(&before));
        assert!(matches!(
            open_with(dir.path(), &creds(PASSPHRASE)),
            Err(OpenError::Corrupted)
        ));
    }
}

/// Damage to the last record cannot be told from a torn write: that commit is dropped,
/// the rest opens, and the next commit overwrites it. (Documented limit.)
#[test]
fn damaged_last_record_is_taken_for_a_torn_write() {
    let dir = TempDir::new();
    let segment = three_records(dir.path());
    flip(&segment, 512 + 100);
    let mut vault = open(dir.path());
    assert_eq!(value(&vault, "second").as_deref(), Some(&b"2"[..]));
    assert_eq!(value(&vault, "third"), None);
    assert_eq!(vault.log_end(), 512);
    vault.put("fourth", b"4").unwrap();
    vault.close();
    let vault = open(dir.path());
    assert_eq!(value(&vault, "fourth").as_deref(), Some(&b"4"[..]));
    assert_eq!(vault.len(), 3);
}

#[test]
fn torn_appends_are_ignored() {
    // The tail of the last record never reached the disk (random bytes there instead).
    let dir = TempDir::new();
    let segment = three_records(dir.path());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.write_all_at(
        &crate::vault::fsio::random_array::<128>().unwrap(),
        512 + 128,
    )
    .unwrap();
    drop(file);
    let vault = open(dir.path());
    assert_eq!(vault.len(), 2);
    vault.close();

    // The file's growth never reached the disk: a header points past the end.
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    vault.put("small", b"s").unwrap();
    vault.put("large", vec![7u8; 100_000]).unwrap();
    vault.close();
    let segment = segment_path(dir.path());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(64 * 1024).unwrap();
    drop(file);
    let vault = open(dir.path());
    assert_eq!(value(&vault, "small").as_deref(), Some(&b"s"[..]));
    assert_eq!(value(&vault, "large"), None);
}

#[test]
fn damage_while_open_is_a_read_error() {
    let dir = TempDir::new();
    let segment = three_records(dir.path());
    let vault = open(dir.path());
    flip(&segment, 256 + 100);
    assert!(matches!(vault.get("second"), Err(ReadError::Corrupted)));
    assert_eq!(value(&vault, "first").as_deref(), Some(&b"1"[..]));
}

#[test]
fn missing_segment_or_damaged_key_slot() {
    let dir = TempDir::new();
    let segment = three_records(dir.path());
    std::fs::remove_file(&segment).unwrap();
    assert!(matches!(
        open_with(dir.path(), &creds(PASSPHRASE)),
        Err(OpenError::Corrupted)
    ));

    // A damaged key slot is indistinguishable from a wrong passphrase: every position
    // is random bytes to a key that does not open it.
    let dir = TempDir::new();
    three_records(dir.path());
    let keyslot = keyslot_path(dir.path());
    let before = std::fs::read(&keyslot).unwrap();
    let positions = crate::vault::format::SLOT_COUNT as u64;
    for i in 0..positions {
        flip(&keyslot, 4096 * (i + 1) + 1000);
    }
    assert!(matches!(
        open_with(dir.path(), &creds(PASSPHRASE)),
        Err(OpenError::WrongPassphrase)
    ));
    std::fs::write(&keyslot, &before).unwrap();
    assert_eq!(open(dir.path()).len(), 3);
}
