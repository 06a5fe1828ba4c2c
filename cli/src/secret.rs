//! Passphrases for the CLI, and process hardening.
//!
//! Order: `--passphrase-file FILE` (first line), else `PASSAGE_PASSPHRASE`, else a
//! prompt on the terminal. Without any of them and without a terminal: an error at
//! once, never a process blocked on input nobody will give.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use passage_client::vault::Credentials;
use zeroize::Zeroizing;

/// No core dumps: a crash must not write the keys in memory to disk. On Linux the
/// process is also made non-dumpable, which keeps other processes of the same user
/// from attaching a debugger or reading its memory through /proc.
pub fn harden_process() {
    let _ = rlimit::setrlimit(rlimit::Resource::CORE, 0, 0);
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}

fn first_line(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(bytes.len());
    let mut line = &bytes[..end];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    Zeroizing::new(line.to_vec())
}

fn from_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(std::fs::read(path).context("could not read the passphrase file")?);
    let line = first_line(&bytes);
    if line.is_empty() {
        bail!("the passphrase file's first line is empty");
    }
    Ok(line)
}

fn from_env(name: &str) -> Option<Zeroizing<Vec<u8>>> {
    let value = std::env::var_os(name)?;
    let bytes = Zeroizing::new(value.into_encoded_bytes());
    (!bytes.is_empty()).then_some(bytes)
}

fn can_prompt() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn prompt(question: &str) -> Result<Zeroizing<Vec<u8>>> {
    let answer = Zeroizing::new(
        rpassword::prompt_password(question).context("could not read the passphrase")?,
    );
    Ok(Zeroizing::new(answer.as_bytes().to_vec()))
}

fn obtain(
    file: Option<&Path>,
    (flag, env): (&str, &str),
    confirm: bool,
    what: &str,
) -> Result<Zeroizing<Vec<u8>>> {
    if let Some(path) = file {
        return from_file(path);
    }
    if let Some(bytes) = from_env(env) {
        return Ok(bytes);
    }
    if !can_prompt() {
        return Err(anyhow!(
            "no {what}: give {flag} FILE or set {env}, or run in a terminal"
        ));
    }
    let first = prompt(&format!("{}: ", capitalize(what)))?;
    if first.is_empty() {
        bail!("empty {what}");
    }
    if confirm {
        let second = prompt(&format!("Repeat the {what}: "))?;
        if first != second {
            bail!("the two entries differ; nothing was changed");
        }
    }
    Ok(first)
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The profile's passphrase; `confirm` asks twice at a prompt (for a new profile).
pub fn credentials(file: Option<&Path>, confirm: bool) -> Result<Credentials> {
    let bytes = obtain(
        file,
        ("--passphrase-file", "PASSAGE_PASSPHRASE"),
        confirm,
        "passphrase",
    )?;
    Ok(Credentials::new(
        passage_client::vault::Passphrase::from_bytes(bytes.to_vec()),
    ))
}

/// The passphrase of a new profile (`init`), asked twice at a prompt and checked for
/// strength (see [`check_strength`]). Returns it and a warning to show, if any.
pub fn new_profile_credentials(
    file: Option<&Path>,
    allow_weak: bool,
) -> Result<(Credentials, Option<String>)> {
    checked_new(
        file,
        ("--passphrase-file", "PASSAGE_PASSPHRASE"),
        "passphrase",
        allow_weak,
    )
}

/// A new passphrase for `passwd`, checked for strength like `init`'s.
pub fn new_credentials(
    file: Option<&Path>,
    allow_weak: bool,
) -> Result<(Credentials, Option<String>)> {
    checked_new(
        file,
        ("--new-passphrase-file", "PASSAGE_NEW_PASSPHRASE"),
        "new passphrase",
        allow_weak,
    )
}

/// A new passphrase from `source`, asked twice at a prompt, checked for strength.
fn checked_new(
    file: Option<&Path>,
    source: (&str, &str),
    what: &str,
    allow_weak: bool,
) -> Result<(Credentials, Option<String>)> {
    let bytes = obtain(file, source, true, what)?;
    let warning = check_strength(&bytes, allow_weak)?;
    Ok((
        Credentials::new(passage_client::vault::Passphrase::from_bytes(
            bytes.to_vec(),
        )),
        warning,
    ))
}

/// Refuses a passphrase that an offline search finds quickly, unless `allow_weak`
/// (then it, and a merely weak one, get a warning back to show).
fn check_strength(bytes: &[u8], allow_weak: bool) -> Result<Option<String>> {
    use passage_client::passphrase::{Strength, assess};
    let assessment = assess(bytes, &["passage"]);
    match assessment.strength() {
        Strength::TooWeak if !allow_weak => bail!(
            "this passphrase is too easy to guess: anyone with a copy of the phone could find it. {} Nothing was changed. To use it anyway, add --allow-weak-passphrase",
            assessment.advice()
        ),
        Strength::Strong => Ok(None),
        _ => Ok(Some(format!(
            "warning: this passphrase could be guessed by someone with a copy of the phone and time. {}",
            assessment.advice()
        ))),
    }
}

/// The duress passphrase for `init` / `set-duress`: from `file`, else
/// `PASSAGE_DURESS_PASSPHRASE`, else (if `ask`) the terminal; `None` if none is given
/// and `ask` is false.
pub fn duress_credentials(file: Option<&Path>, ask: bool) -> Result<Option<Credentials>> {
    if file.is_none() && !ask && from_env("PASSAGE_DURESS_PASSPHRASE").is_none() {
        return Ok(None);
    }
    let bytes = obtain(
        file,
        ("--duress-passphrase-file", "PASSAGE_DURESS_PASSPHRASE"),
        true,
        "duress passphrase",
    )?;
    Ok(Some(Credentials::new(
        passage_client::vault::Passphrase::from_bytes(bytes.to_vec()),
    )))
}
