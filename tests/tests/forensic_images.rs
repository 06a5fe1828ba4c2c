//! The examiner with two images: police copy the phone's storage at one checkpoint and
//! again at the next, before they ever ask for a passphrase. Comparing the two copies
//! must not tell whether a duress passphrase is set.
//!
//! Two profiles live through the same history, one with a duress passphrase (and a
//! decoy its owner filled), one without. Each vault directory is imaged (every byte of
//! every file) before and after each of several ordinary opens with the real
//! passphrase. From each pair of images the test computes the **change shape**:
//!
//! - the number of files, and the sorted list of file sizes, in both images;
//! - for the key-slot file (the one file of 20,480 bytes), which of its five 4 KiB
//!   blocks (salt block, four slot positions) changed;
//! - for every other file, its size and the sorted list of the indices of its 4 KiB
//!   blocks that changed (or that it appeared or disappeared).
//!
//! The shapes of the two profiles must be equal for every pair of images. A block
//! counts as changed if any byte of it differs, which is strict: the format version 1
//! re-sealed only the real profile's own pair of slot positions when a decoy existed
//! (two blocks) and every position without one (four blocks), and this test fails on
//! it. It also checks that the two installs share no file name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use passage_client::vault::{Credentials, Vault};

const REAL: &str = "correct horse battery staple, seven";
const DURESS: &str = "the name of my first dog, Biscuit";
/// The key-slot file's size (salt block and four 4 KiB positions), from the format's
/// documentation.
const KEYSLOT_LEN: usize = 20_480;
const BLOCK: usize = 4096;
const OPENS: usize = 3;

type Image = BTreeMap<String, Vec<u8>>;

fn image(dir: &Path) -> Image {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().into_string().unwrap(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
struct ChangeShape {
    files_before: usize,
    files_after: usize,
    sizes_before: Vec<usize>,
    sizes_after: Vec<usize>,
    keyslot_blocks_changed: BTreeSet<usize>,
    /// (size before or 0, size after or 0, changed block indices), sorted.
    other_files: Vec<(usize, usize, Vec<usize>)>,
}

fn changed_blocks(before: &[u8], after: &[u8]) -> Vec<usize> {
    let blocks = before.len().max(after.len()).div_ceil(BLOCK);
    (0..blocks)
        .filter(|&b| {
            let range = |bytes: &[u8]| {
                let start = (b * BLOCK).min(bytes.len());
                let end = ((b + 1) * BLOCK).min(bytes.len());
                bytes[start..end].to_vec()
            };
            range(before) != range(after)
        })
        .collect()
}

fn shape(before: &Image, after: &Image) -> ChangeShape {
    let sizes = |image: &Image| {
        let mut sizes: Vec<usize> = image.values().map(Vec::len).collect();
        sizes.sort_unstable();
        sizes
    };
    let keyslot = |image: &Image| {
        let found: Vec<&String> = image
            .iter()
            .filter(|(_, bytes)| bytes.len() == KEYSLOT_LEN)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(found.len(), 1, "exactly one key-slot-sized file");
        found[0].clone()
    };
    let (ks_before, ks_after) = (keyslot(before), keyslot(after));
    let keyslot_blocks_changed = changed_blocks(&before[&ks_before], &after[&ks_after])
        .into_iter()
        .collect();
    let names: BTreeSet<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|name| **name != ks_before && **name != ks_after)
        .collect();
    let mut other_files: Vec<(usize, usize, Vec<usize>)> = names
        .into_iter()
        .map(|name| {
            let empty = Vec::new();
            let b = before.get(name).unwrap_or(&empty);
            let a = after.get(name).unwrap_or(&empty);
            (b.len(), a.len(), changed_blocks(b, a))
        })
        .collect();
    other_files.sort();
    ChangeShape {
        files_before: before.len(),
        files_after: after.len(),
        sizes_before: sizes(before),
        sizes_after: sizes(after),
        keyslot_blocks_changed,
        other_files,
    }
}

/// The same history for both profiles: a few records written at each open.
fn live_a_day(vault: &mut Vault, day: usize) {
    for i in 0..5 {
        vault
            .put(
                format!("message/{day}/{i}"),
                format!("day {day}, message {i}: we are fine"),
            )
            .unwrap();
    }
}

/// Creates a profile in `dir` with the common history; with `duress`, sets a duress
/// passphrase and fills the decoy as its owner would. Returns the images taken before
/// and after each of [`OPENS`] ordinary opens.
fn lifetime(dir: &Path, duress: bool) -> Vec<Image> {
    let real = Credentials::new(REAL);
    let mut vault = Vault::create(dir, &real).unwrap();
    live_a_day(&mut vault, 0);
    if duress {
        vault.set_duress(&Credentials::new(DURESS)).unwrap();
        vault.close();
        let mut decoy = Vault::open_decoy(dir, &real).unwrap();
        decoy.put("contact/cousin", b"Cousin").unwrap();
        decoy.close();
    } else {
        vault.close();
    }
    let mut images = vec![image(dir)];
    for day in 1..=OPENS {
        let mut vault = Vault::open(dir, &real).unwrap();
        live_a_day(&mut vault, day);
        vault.close();
        images.push(image(dir));
    }
    images
}

#[test]
fn two_images_do_not_show_whether_a_duress_passphrase_is_set() {
    let without = tempfile::tempdir().unwrap();
    let with = tempfile::tempdir().unwrap();
    let plain = lifetime(without.path(), false);
    let duress = lifetime(with.path(), true);

    for later in 1..plain.len() {
        for earlier in 0..later {
            let a = shape(&plain[earlier], &plain[later]);
            let b = shape(&duress[earlier], &duress[later]);
            assert_eq!(
                a, b,
                "images {earlier} and {later}: the change shape differs with a duress passphrase"
            );
        }
    }
    // Every open re-seals every slot position, so all four change and the salt stays.
    let once = shape(&duress[0], &duress[1]);
    assert_eq!(
        once.keyslot_blocks_changed,
        (1..=4).collect::<BTreeSet<usize>>()
    );
}

#[test]
fn no_file_name_is_common_to_two_installs() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    for dir in [first.path(), second.path()] {
        Vault::create(dir, &Credentials::new(REAL)).unwrap().close();
    }
    let names = |dir: &Path| -> BTreeSet<String> { image(dir).into_keys().collect() };
    let (a, b) = (names(first.path()), names(second.path()));
    assert_eq!(a.len(), 3);
    assert!(
        a.is_disjoint(&b),
        "two installs share a file name: {:?}",
        a.intersection(&b).collect::<Vec<_>>()
    );
}
