//! Compaction: every point at which a crash can interrupt it recovers, and what it
//! removes cannot be read back from old copies of the segment, passphrase or not.

use super::*;
use crate::vault::format::{
    SALT_BLOCK_LEN, SLOT_COUNT, SLOT_LEN, SegmentKeys, name_key, temp_name,
};
use crate::vault::kdf::derive_kek;
use crate::vault::keyslot::{self, KeySlotFile};
use crate::vault::segment::Segment;

/// The files before and after one compaction of a vault where "k" went from "old" to
/// "new" and "gone" was deleted.
struct Compacted {
    dir: TempDir,
    before: Vec<(String, Vec<u8>)>,
    /// The key-slot file just before `compact` (the open before it rewrote it).
    keyslot_at_compaction: Vec<u8>,
    after: Vec<(String, Vec<u8>)>,
}

fn compacted() -> Compacted {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    vault.put("k", b"old").unwrap();
    vault.put("gone", b"DELETED-SECRET").unwrap();
    vault.close();
    let before = snapshot(dir.path());
    let mut vault = open(dir.path());
    vault.put("k", b"new").unwrap();
    vault.delete("gone").unwrap();
    let keyslot_at_compaction = std::fs::read(keyslot_path(dir.path())).unwrap();
    vault.compact().unwrap();
    vault.close();
    let after = snapshot(dir.path());
    Compacted {
        dir,
        before,
        keyslot_at_compaction,
        after,
    }
}

fn keyslot_bytes(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    files
        .iter()
        .find(|file| is_keyslot(file))
        .map(|(_, bytes)| bytes.clone())
        .unwrap()
}

fn segment_file(files: &[(String, Vec<u8>)]) -> (String, Vec<u8>) {
    let name = segment_name_in(&keyslot_bytes(files));
    files.iter().find(|(n, _)| *n == name).cloned().unwrap()
}

fn position_range(index: usize) -> std::ops::Range<usize> {
    let start = SALT_BLOCK_LEN + index * SLOT_LEN;
    start..start + SLOT_LEN
}

fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn opens_with(dir: &Path, expected: &[u8]) {
    let vault = open(dir);
    assert_eq!(value(&vault, "k").as_deref(), Some(expected));
    assert_eq!(value(&vault, "gone").is_some(), expected == b"old");
    vault.close();
    assert_eq!(
        snapshot(dir).len(),
        FILE_COUNT,
        "leftovers were not cleaned up"
    );
}

#[test]
fn crash_while_writing_the_new_segment() {
    let c = compacted();
    let dir = c.dir.path();
    for (name, _) in &c.after {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    write_files(dir, &c.before);
    // A half-written temporary segment of the next epoch.
    let vault = open(dir);
    let temp = temp_name(&name_key(&vault.payload_for_tests().data_key), 1);
    vault.close();
    std::fs::write(
        dir.join(&temp),
        crate::vault::fsio::random_array::<5000>().unwrap(),
    )
    .unwrap();
    opens_with(dir, b"old");
    assert!(!dir.join(temp).exists());
}

#[test]
fn crash_after_the_rename_before_the_key_slot() {
    let c = compacted();
    write_files(c.dir.path(), &c.before);
    assert_eq!(snapshot(c.dir.path()).len(), FILE_COUNT + 1);
    opens_with(c.dir.path(), b"old");
    assert_eq!(data_files(&snapshot(c.dir.path())), data_files(&c.before));
}

/// The position of `keyslot` that the test passphrase opens.
fn live_position(keyslot: &[u8]) -> usize {
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&keyslot[..32]);
    let kek = derive_kek(KdfCost::TestOnly, &creds(PASSPHRASE), &salt).unwrap();
    let live: Vec<usize> = (0..SLOT_COUNT)
        .filter(|&i| {
            keyslot::try_position(&kek, &salt, i, &keyslot[position_range(i)])
                .is_some_and(|p| p.is_ok())
        })
        .collect();
    assert_eq!(live.len(), 1);
    live[0]
}

#[test]
fn crash_between_sealing_the_spare_and_erasing_the_old_position() {
    let c = compacted();
    let dir = c.dir.path();
    let (old, new) = (c.keyslot_at_compaction.clone(), keyslot_bytes(&c.after));
    let (p, q) = (live_position(&old), live_position(&new));
    assert_ne!(p, q, "the rewrite went to a spare position");
    // Both copies on disk, and both segments.
    let mut crashed = new.clone();
    crashed[position_range(p)].copy_from_slice(&old[position_range(p)]);
    std::fs::write(keyslot_path(dir), &crashed).unwrap();
    write_files(dir, &[segment_file(&c.before)]);
    // The higher generation wins; the old copy is erased (the open's own rewrite moves
    // the slot on and leaves one live position) and the old segment removed.
    opens_with(dir, b"new");
    let healed = std::fs::read(keyslot_path(dir)).unwrap();
    assert!(healed[position_range(p)] != old[position_range(p)]);
    assert!(healed[position_range(q)] != new[position_range(q)]);
    live_position(&healed);
}

#[test]
fn crash_before_the_old_segment_is_removed() {
    let c = compacted();
    write_files(c.dir.path(), &[segment_file(&c.before)]);
    assert_eq!(snapshot(c.dir.path()).len(), FILE_COUNT + 1);
    opens_with(c.dir.path(), b"new");
    assert_eq!(data_files(&snapshot(c.dir.path())), data_files(&c.after));
}

/// Someone with the passphrase and an old image of the flash (the segment before the
/// compaction, the key-slot file after): no key reachable from the passphrase opens a
/// record of the old segment.
#[test]
fn compaction_makes_deletion_final_even_with_the_passphrase() {
    let c = compacted();
    let dir = c.dir.path();
    let (old_name, old_segment) = segment_file(&c.before);
    let image = TempDir::new();
    std::fs::write(image.path().join(&old_name), &old_segment).unwrap();

    let (keyslot, positions) =
        retry_busy(|| KeySlotFile::open_named(dir, &keyslot_name(dir))).unwrap();
    let kek = derive_kek(KdfCost::TestOnly, &creds(PASSPHRASE), keyslot.salt()).unwrap();
    let mut reachable = Vec::new();
    for (index, position) in positions.iter().enumerate() {
        if let Some(Ok(payload)) = keyslot::try_position(&kek, keyslot.salt(), index, position) {
            reachable.push(payload);
        }
    }
    assert_eq!(reachable.len(), 1, "only the current payload opens");
    let payload = &reachable[0];
    for epoch in 0..=payload.epoch + 1 {
        let keys = SegmentKeys::derive(&payload.data_key, &payload.segment_secret, epoch);
        let mut records = 0;
        Segment::open(&image.path().join(&old_name), keys, |_, _| {
            records += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(
            records, 0,
            "epoch {epoch} opened a record of the old segment"
        );
    }
    // Whereas the old key slot (the image before the compaction) still opens it: the
    // secret in the key slot is what made the difference.
    drop(keyslot);
    let old_dir = TempDir::new();
    write_files(old_dir.path(), &c.before);
    let vault = open(old_dir.path());
    assert_eq!(
        value(&vault, "gone").as_deref(),
        Some(&b"DELETED-SECRET"[..])
    );
}
