//! What the disk shows without the passphrase: random bytes under random-looking names.

use base64::Engine as _;

use super::*;
use crate::vault::format::NAME_HEX_LEN;

/// Shannon entropy of the byte histogram, in bits per byte.
pub(super) fn entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// A vault with low-entropy content (repeated text, zeros), overwritten, deleted and
/// compacted, so every kind of record and padding is on disk.
fn populated(dir: &Path, marker_key: &str, marker_value: &str) -> Vault {
    let mut vault = create(dir);
    for i in 0..300u32 {
        vault
            .put(
                format!("message/{i:05}"),
                format!("{marker_value} hello hello hello {i}").repeat(5),
            )
            .unwrap();
    }
    vault.put(marker_key, marker_value).unwrap();
    vault.put("zeros", vec![0u8; 20_000]).unwrap();
    for i in 0..100u32 {
        vault.delete(format!("message/{i:05}")).unwrap();
    }
    vault.compact().unwrap();
    vault
        .put(format!("{marker_key}/after"), vec![b'a'; 5000])
        .unwrap();
    vault
}

#[test]
fn every_file_looks_random() {
    let dir = TempDir::new();
    let vault = populated(dir.path(), "contact/someone", "plain text");
    let files = snapshot(dir.path());
    assert_eq!(files.len(), FILE_COUNT, "key-slot file, segment, reserve");
    let mut all = Vec::new();
    for (name, bytes) in &files {
        // Names: 32 lower-case hex digits, no extension, no word.
        assert_eq!(name.len(), NAME_HEX_LEN, "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{name}"
        );
        // No known file signature at the start.
        for signature in [
            &b"SQLite format 3"[..],
            b"\x7fELF",
            b"PK\x03\x04",
            b"\x1f\x8b",
            b"\x89PNG",
            // JSON and XML, by two bytes: one byte alone would match a random file's
            // first byte one time in 256 (a flaky test, not a finding).
            b"{\"",
            b"[{",
            b"[\"",
            b"<?",
            b"<!",
            b"%PDF",
            b"age-encryption",
            b"-----BEGIN",
            b"passage",
            b"PASSAGE",
            b"vault",
            b"\0\0\0\0",
        ] {
            assert!(
                !bytes.starts_with(signature),
                "{name} starts with {signature:?}"
            );
        }
        // Every 4 KiB block of every file looks random on its own (no zero-filled hole,
        // no plaintext padding).
        for (i, block) in bytes.chunks(4096).enumerate() {
            assert!(
                entropy(block) > 7.85,
                "{name} block {i}: {}",
                entropy(block)
            );
        }
        all.extend_from_slice(bytes);
    }
    let e = entropy(&all);
    println!("entropy over {} bytes: {e:.4} bits/byte", all.len());
    assert!(e > 7.99, "{e}");
    // Sizes come from the fixed schedule, not from the content.
    for (_, bytes) in &files {
        let len = bytes.len() as u64;
        assert!(
            len == crate::vault::format::KEYSLOT_FILE_LEN as u64
                || len == crate::vault::segment::segment_len_for(len)
        );
    }
    vault.close();
}

/// All the ways a marker could show up in a file: as is, UTF-16LE, hex, base64 (at each
/// of the three alignments, the part that does not depend on neighbouring bytes).
pub(super) fn encodings(marker: &str) -> Vec<Vec<u8>> {
    let bytes = marker.as_bytes();
    let mut out = vec![bytes.to_vec()];
    out.push(bytes.iter().flat_map(|&b| [b, 0]).collect());
    out.push(crate::vault::format::hex(bytes).into_bytes());
    out.push(crate::vault::format::hex(bytes).to_uppercase().into_bytes());
    for shift in 0..3 {
        let mut padded = vec![0u8; shift];
        padded.extend_from_slice(bytes);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&padded);
        // Drop the characters that mix in the padding bytes or the end.
        let start = (shift * 4).div_ceil(3) + 1;
        let stable = &encoded.as_bytes()[start..encoded.len() - 4];
        // Too short a fragment would match random bytes by chance.
        if stable.len() >= 8 {
            out.push(stable.to_vec());
        }
    }
    out
}

#[test]
fn markers_in_keys_and_values_appear_in_no_file() {
    let dir = TempDir::new();
    let key_marker = "KEYMARKER-7c1d-contact-name";
    let value_marker = "VALUEMARKER-41ab-message-text";
    let mut vault = populated(dir.path(), key_marker, value_marker);
    vault
        .change_passphrase(&creds(PASSPHRASE), &creds("PASSMARKER-new-passphrase"))
        .unwrap();
    vault.close();
    for marker in [
        key_marker,
        value_marker,
        PASSPHRASE,
        "PASSMARKER-new-passphrase",
        "passage",
        "vault",
        "message/",
    ] {
        for encoding in encodings(marker) {
            for (name, bytes) in snapshot(dir.path()) {
                assert!(
                    !bytes
                        .windows(encoding.len())
                        .any(|w| w == encoding.as_slice()),
                    "{marker} found in {name} as {:?}",
                    String::from_utf8_lossy(&encoding)
                );
                assert!(!name.contains(marker));
            }
        }
    }
}

#[test]
fn sizes_move_in_coarse_steps() {
    let dir = TempDir::new();
    let mut vault = create(dir.path());
    let segment = segment_path(dir.path());
    let empty = std::fs::metadata(&segment).unwrap().len();
    assert_eq!(empty, crate::vault::segment::SEGMENT_MIN_LEN);
    // A one-byte value and a 190-byte value take the same room.
    vault.put("a", [1]).unwrap();
    let one = vault.log_end();
    vault.put("b", [2; 180]).unwrap();
    assert_eq!(vault.log_end() - one, one);
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), empty);
    // Past the first size the file doubles, filled with random bytes.
    for i in 0..20 {
        vault.put(format!("c{i}"), [3; 3000]).unwrap();
    }
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), 2 * empty);
    vault.close();
}

#[test]
fn nothing_is_written_outside_the_directory() {
    let parent = TempDir::new();
    let dir = parent.path().join("data");
    let mut vault = create(&dir);
    for i in 0..100u32 {
        vault.put(format!("k{i}"), [7u8; 2000]).unwrap();
    }
    vault.compact().unwrap();
    vault
        .change_passphrase(&creds(PASSPHRASE), &creds("another"))
        .unwrap();
    vault.close();
    let entries: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["data"]);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for (name, _) in snapshot(&dir) {
        let mode = std::fs::metadata(dir.join(&name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
}
