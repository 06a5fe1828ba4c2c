//! Where the binaries under test come from: `passage-relay` and the `passage` CLI.
//!
//! Cargo only tells a crate's own tests where that crate's binaries are
//! (`CARGO_BIN_EXE_<name>`), so [`relay_binary`] looks for `passage-relay` next to the
//! running executable (`target/<profile>/`: the parent of a test's `deps/` directory,
//! or the directory of a binary such as the bench). If it is missing, or older than any
//! source file it is built from (`relay/`, `crates/`, `Cargo.lock`), it runs `cargo
//! build -p passage-relay --bin passage-relay` for that profile and target directory,
//! once per process, so a test never runs a stale relay. `cargo test --workspace`
//! builds the binary itself (the relay crate has integration tests), so in CI the build
//! step is skipped; after an edit to the relay, the first test waits for that build.
//! `PASSAGE_RELAY_BIN=/path/to/binary` skips all of this and uses that binary.
//!
//! The `passage` CLI comes the same way from [`client_binary`] (`cargo build -p
//! passage-cli --bin passage`, or `PASSAGE_CLIENT_BIN`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::HarnessError;

/// The `passage-relay` binary: `PASSAGE_RELAY_BIN` if set, else the one next to the
/// running executable, built (or brought up to date) once per process.
pub fn relay_binary() -> Result<PathBuf, HarnessError> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(path) = std::env::var_os("PASSAGE_RELAY_BIN") {
        return Ok(PathBuf::from(path));
    }
    BINARY
        .get_or_init(|| {
            build_binary("passage-relay", "passage-relay", &["relay"]).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(HarnessError::Build)
}

/// The `passage` CLI binary: `PASSAGE_CLIENT_BIN` if set, else the one next to the
/// test executable, built (or brought up to date) once per test process, like
/// [`relay_binary`].
pub fn client_binary() -> Result<PathBuf, HarnessError> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(path) = std::env::var_os("PASSAGE_CLIENT_BIN") {
        return Ok(PathBuf::from(path));
    }
    BINARY
        .get_or_init(|| {
            build_binary("passage-cli", "passage", &["client", "cli"]).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(HarnessError::Build)
}

/// `target/<profile>` of the running executable: the parent of `deps/` for a test,
/// the executable's own directory for a binary.
fn profile_dir() -> Result<PathBuf, HarnessError> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| HarnessError::Build("the executable has no directory".into()))?;
    let dir = if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent()
            .ok_or_else(|| HarnessError::Build("deps/ has no parent".into()))?
    } else {
        dir
    };
    Ok(dir.to_owned())
}

/// Builds `bin` of `package` next to the running executable unless it is newer than
/// every file under `crate_dirs`, `crates/`, `Cargo.lock` and `Cargo.toml`.
fn build_binary(package: &str, bin: &str, crate_dirs: &[&str]) -> Result<PathBuf, HarnessError> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let profile_dir = profile_dir()?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| HarnessError::Build("the profile directory has no parent".into()))?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let binary = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    let built_at = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let sources: Vec<PathBuf> = crate_dirs
        .iter()
        .chain(&["crates", "Cargo.lock", "Cargo.toml"])
        .map(|p| workspace.join(p))
        .collect();
    if built_at.is_some_and(|built| newest_change(&sources).is_some_and(|newest| newest <= built)) {
        return Ok(binary);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = workspace.join("Cargo.toml");
    let output = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .arg("--profile")
        .arg(&profile)
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .output()?;
    if !output.status.success() {
        return Err(HarnessError::Build(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    if !binary.exists() {
        return Err(HarnessError::Build(format!(
            "cargo built no binary at {}",
            binary.display()
        )));
    }
    Ok(binary)
}

/// Deepest directory level searched by [`newest_change`]; the sources are far shallower.
const MAX_SOURCE_DEPTH: usize = 8;

/// The latest modification time of the files under `paths` (skipping `target`
/// directories and hidden entries), or `None` if one cannot be read.
fn newest_change(paths: &[PathBuf]) -> Option<std::time::SystemTime> {
    let mut newest = std::time::UNIX_EPOCH;
    let mut stack: Vec<(PathBuf, usize)> = paths.iter().map(|p| (p.clone(), 0)).collect();
    while let Some((path, depth)) = stack.pop() {
        let metadata = std::fs::metadata(&path).ok()?;
        if metadata.is_dir() {
            if depth >= MAX_SOURCE_DEPTH {
                continue;
            }
            for entry in std::fs::read_dir(&path).ok()? {
                let entry = entry.ok()?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') || name == "target" {
                    continue;
                }
                stack.push((entry.path(), depth + 1));
            }
        } else {
            newest = newest.max(metadata.modified().ok()?);
        }
    }
    Some(newest)
}
