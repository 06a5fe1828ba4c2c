//! The seized-device scan: what someone imaging a phone would look for in the files a
//! client left, shared by `seized_device.rs` and `phone_taken.rs`.
//!
//! Each marker (a message text, a contact's name, a passphrase) is searched for as
//! plain text (as written, lower and upper case), UTF-16 (LE and BE), hex (lower and
//! upper case) and base64 (standard and URL-safe alphabets, all three alignments).
//! Files must also look random: byte entropy of at least [`MIN_ENTROPY`] bits per byte
//! for files of [`ENTROPY_MIN_LEN`] bytes or more, no known file signature at their
//! start ([`SIGNATURES`]), no telling file names.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// The least byte entropy, in bits per byte, of a file that looks random.
pub const MIN_ENTROPY: f64 = 7.9;

/// Files shorter than this are not held to [`MIN_ENTROPY`] (too few bytes for the
/// histogram to mean much).
pub const ENTROPY_MIN_LEN: usize = 4096;

/// Deepest directory level [`files_under`] descends to.
const MAX_DEPTH: usize = 16;

/// `bytes` in base64 (`url_safe`: the `-_` alphabet), whole 3-byte groups only: a
/// needle must not depend on the bytes around the marker.
pub fn base64(bytes: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    bytes
        .chunks_exact(3)
        .flat_map(|c| {
            let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
            [18, 12, 6, 0].map(|shift| char::from(alphabet[((n >> shift) & 63) as usize]))
        })
        .collect()
}

/// The byte strings that would give `marker` away, each with the name of its encoding.
///
/// # Panics
///
/// If `marker` is too short (under 8 bytes) for its base64 forms to be distinctive.
pub fn needles(marker: &str) -> Vec<(String, Vec<u8>)> {
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for (form, text) in [
        ("as written", marker.to_owned()),
        ("lower case", marker.to_lowercase()),
        ("upper case", marker.to_uppercase()),
    ] {
        needles.push((format!("UTF-8 {form}"), text.clone().into_bytes()));
        let le = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        needles.push((format!("UTF-16LE {form}"), le));
        needles.push((format!("UTF-16BE {form}"), be));
    }
    let bytes = marker.as_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    needles.push(("hex".to_owned(), hex.clone().into_bytes()));
    needles.push(("HEX".to_owned(), hex.to_uppercase().into_bytes()));
    // A marker at any position in a base64 stream: its bytes from the first group
    // boundary on are encoded the same way, whatever came before.
    for skip in 0..3 {
        for url_safe in [false, true] {
            let encoded = base64(&bytes[skip..], url_safe);
            // 8 characters (48 bits) at least: no chance hit in random files.
            assert!(encoded.len() >= 8, "marker too short for base64: {marker}");
            needles.push((
                format!("base64 (alignment {skip}, url-safe {url_safe})"),
                encoded.into_bytes(),
            ));
        }
    }
    needles
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Shannon entropy of the byte histogram, in bits per byte.
pub fn entropy(bytes: &[u8]) -> f64 {
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

/// Signatures at offset 0 of common formats (and our own name).
pub const SIGNATURES: &[(&str, &[u8])] = &[
    ("SQLite", b"SQLite format 3\0"),
    ("gzip", &[0x1f, 0x8b]),
    ("zip", b"PK\x03\x04"),
    ("PNG", &[0x89, b'P', b'N', b'G']),
    ("PDF", b"%PDF"),
    ("ELF", &[0x7f, b'E', b'L', b'F']),
    ("bzip2", b"BZh"),
    ("xz", &[0xfd, b'7', b'z', b'X', b'Z', 0]),
    ("zstd", &[0x28, 0xb5, 0x2f, 0xfd]),
    ("7z", &[b'7', b'z', 0xbc, 0xaf]),
    ("JPEG", &[0xff, 0xd8, 0xff]),
    ("redb", b"redb"),
];

/// Every file (anything that is not a directory) under `root`, depth-first; empty if
/// `root` does not exist. An error if a directory cannot be read or the tree is
/// deeper than 16 levels.
pub fn files_under(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if !root.exists() {
        return Ok(files);
    }
    let mut stack = vec![(root.to_owned(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        if depth >= MAX_DEPTH {
            return Err(io::Error::other(format!(
                "directories nested too deep under {}",
                root.display()
            )));
        }
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if std::fs::symlink_metadata(&path)?.file_type().is_dir() {
                stack.push((path, depth + 1));
            } else {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// Every file under `root` by its path relative to `root`, with its bytes; empty if
/// `root` does not exist.
pub fn snapshot(root: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    files_under(root)?
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path)?;
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            Ok((relative, bytes))
        })
        .collect()
}

/// Everything under `root` that would give the markers or the app away, one finding
/// a line, and the number of files scanned. A missing `root` has no findings and no
/// files; a file that cannot be read is an error.
///
/// # Panics
///
/// As [`needles`], for a marker that is too short.
pub fn scan(root: &Path, markers: &[String]) -> io::Result<(Vec<String>, usize)> {
    let needles: Vec<(String, String, Vec<u8>)> = markers
        .iter()
        .flat_map(|m| needles(m).into_iter().map(move |(f, n)| (m.clone(), f, n)))
        .collect();
    let files = snapshot(root)?;
    let mut findings = Vec::new();
    for (relative, bytes) in &files {
        let relative = relative.to_lowercase();
        if relative.contains("passage") {
            findings.push(format!("a file name says passage: {relative}"));
        }
        for marker in markers {
            if relative.contains(&marker.to_lowercase()) {
                findings.push(format!("a file name holds a marker: {relative}"));
            }
        }
        for (marker, form, needle) in &needles {
            if contains(bytes, needle) {
                findings.push(format!("{relative} holds {marker:?} ({form})"));
            }
        }
        for (format, signature) in SIGNATURES {
            if bytes.starts_with(signature) {
                findings.push(format!("{relative} starts like a {format} file"));
            }
        }
        if bytes
            .get(..7)
            .is_some_and(|b| b.eq_ignore_ascii_case(b"passage"))
        {
            findings.push(format!("{relative} starts with passage"));
        }
        if bytes.len() >= ENTROPY_MIN_LEN {
            let bits = entropy(bytes);
            if bits < MIN_ENTROPY {
                findings.push(format!(
                    "{relative}: {bits:.3} bits per byte does not look random"
                ));
            }
        }
    }
    Ok((findings, files.len()))
}
