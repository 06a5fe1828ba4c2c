//! The few file-system steps the vault takes, each with its durability rule. Nothing
//! here writes outside the vault's directory; every file is created private (0600).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Bytes written per call when filling with random bytes: large enough to be quick,
/// small enough to stay off the heap's large-allocation path on a phone.
const FILL_CHUNK: usize = 64 * 1024;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    getrandom::fill(buf).map_err(io::Error::other)
}

/// `N` random bytes.
pub(crate) fn random_array<const N: usize>() -> io::Result<[u8; N]> {
    let mut out = [0u8; N];
    random_bytes(&mut out)?;
    Ok(out)
}

/// Makes a directory's entries (a create, rename or unlink in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `path`, failing if it exists; readable and writable by the owner only.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Creates or truncates `path` (a temporary file of ours), owner-only.
pub(crate) fn create_truncate(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Opens an existing file for reading and writing.
pub(crate) fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// Writes random bytes over `[from, to)` of `file` (extending it if needed). Never
/// `set_len`: a hole reads back as zeros, which would not look random.
pub(crate) fn fill_random(file: &File, from: u64, to: u64) -> io::Result<()> {
    let mut chunk = vec![0u8; FILL_CHUNK];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(FILL_CHUNK, |left| left.min(FILL_CHUNK));
        random_bytes(&mut chunk[..n])?;
        file.write_all_at(&chunk[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Removes a file of ours if it is there.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
