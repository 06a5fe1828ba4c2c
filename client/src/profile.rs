//! The life of a profile on this device, for every front end (the CLI, an app):
//! create it (with or without a duress passphrase and its decoy), open it, prepare its
//! decoy, change its passphrase, lock it after idle time, and wipe it.
//!
//! ```text
//!   create ──▶ vault + profile record ──(duress)──▶ decoy vault + its own profile
//!   open(passphrase)        ──▶ Agent of the real profile
//!   open(duress passphrase) ──▶ Agent of the decoy (the real one is destroyed first)
//!   open_decoy(passphrase)  ──▶ Agent of the decoy, to make it look lived in
//!   panic_wipe(dir)         ──▶ nothing opens, with any passphrase
//! ```
//!
//! Every function here blocks (Argon2id takes about a second): call it off a user
//! interface's thread, as [`Messenger`](crate::messenger::Messenger) does.
//!
//! ```no_run
//! # fn main() -> Result<(), passage_client::profile::ProfileError> {
//! use passage_client::profile::{self, NewProfile};
//! use passage_client::vault::{Credentials, Passphrase};
//! let relay = "passage://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@127.0.0.1:5223"
//!     .parse()
//!     .map_err(|_| profile::ProfileError::NoProfile)?;
//! let real = Credentials::new(Passphrase::from_bytes(b"correct horse battery".to_vec()));
//! let duress = Credentials::new(Passphrase::from_bytes(b"staple tuesday".to_vec()));
//! profile::create("/tmp/p", &real, Some(&duress), &NewProfile::new(relay), Default::default())?;
//! let agent = profile::open("/tmp/p", &real, Default::default())?;
//! # drop(agent);
//! # Ok(()) }
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use passage_wire::RelayAddress;

use crate::agent::{Agent, AgentError, AgentOptions};
use crate::vault::{
    ChangePassphraseError, CreateError, Credentials, OpenError, SetDuressError, Vault, WriteError,
};

/// What a new profile starts with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewProfile {
    /// The relay its invitations point to (new receiving queues go there).
    pub relay: RelayAddress,
    /// The at-risk default: disappearing messages (1 day) for every new contact.
    pub at_risk: bool,
}

impl NewProfile {
    /// A profile on `relay`, without the at-risk default.
    pub fn new(relay: RelayAddress) -> Self {
        Self {
            relay,
            at_risk: false,
        }
    }

    /// With the at-risk default on or off.
    pub fn at_risk(mut self, on: bool) -> Self {
        self.at_risk = on;
        self
    }
}

/// What can go wrong with a profile as a whole. Messages say what happened; none names
/// a contact, a key or a path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Nothing was ever created in this directory.
    #[error("no profile in this directory")]
    NoProfile,
    /// The directory holds a profile already.
    #[error("a profile exists in this directory already; choose another directory")]
    AlreadyExists,
    /// No profile opens with this passphrase (the vault cannot tell a wrong passphrase
    /// from no profile at all). Nothing was changed.
    #[error("wrong passphrase (or no profile here); nothing was changed")]
    WrongPassphrase,
    /// Another process (or another handle) has the profile open.
    #[error("the profile is open elsewhere; close it there first")]
    Busy,
    /// [`open_decoy`]: this profile has no duress passphrase, so no decoy.
    #[error("this profile has no decoy: set a duress passphrase first")]
    NoDecoy,
    /// The profile was wiped while it was open (a panic wipe from elsewhere).
    #[error("the profile was wiped")]
    Wiped,
    /// A panic wipe could not finish (the file system refused): what it did is
    /// done; wipe again.
    #[error("the wipe did not finish ({0}); wipe again")]
    WipeIncomplete(std::io::Error),
    /// Opening failed for another reason (damaged data, out of memory, I/O).
    #[error(transparent)]
    Open(OpenError),
    /// Creating the vault failed.
    #[error(transparent)]
    Create(CreateError),
    /// Writing the vault failed; nothing of the operation was kept.
    #[error(transparent)]
    Write(WriteError),
    /// The duress passphrase could not be set (the same as the passphrase, I/O).
    #[error(transparent)]
    SetDuress(#[from] SetDuressError),
    /// The passphrase could not be changed (the current one is wrong, the new one is
    /// the duress passphrase, I/O).
    #[error(transparent)]
    ChangePassphrase(#[from] ChangePassphraseError),
    /// The profile's records failed (see [`AgentError`]).
    #[error(transparent)]
    Agent(AgentError),
}

impl From<OpenError> for ProfileError {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::NoVault => ProfileError::NoProfile,
            OpenError::WrongPassphrase => ProfileError::WrongPassphrase,
            OpenError::Busy => ProfileError::Busy,
            OpenError::NoDecoy => ProfileError::NoDecoy,
            other => ProfileError::Open(other),
        }
    }
}

impl From<CreateError> for ProfileError {
    fn from(error: CreateError) -> Self {
        match error {
            CreateError::AlreadyExists => ProfileError::AlreadyExists,
            other => ProfileError::Create(other),
        }
    }
}

impl From<WriteError> for ProfileError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Gone => ProfileError::Wiped,
            other => ProfileError::Write(other),
        }
    }
}

impl From<AgentError> for ProfileError {
    fn from(error: AgentError) -> Self {
        match error {
            AgentError::Open(error) => error.into(),
            AgentError::Create(error) => error.into(),
            AgentError::Write(error) => error.into(),
            other => ProfileError::Agent(other),
        }
    }
}

/// Whether `dir` looks like it holds a profile (it exists and is not empty). Says
/// nothing about which passphrase opens it, or whether it has a decoy.
pub fn exists(dir: impl AsRef<Path>) -> bool {
    std::fs::read_dir(dir.as_ref()).is_ok_and(|mut entries| entries.next().is_some())
}

/// Creates a profile in `dir` (absent or empty). With `duress`, also the duress
/// passphrase and its decoy: a profile of its own with the same relay and settings, so
/// that it opens like any other (prepare it with [`open_decoy`]).
pub fn create(
    dir: impl AsRef<Path>,
    credentials: &Credentials,
    duress: Option<&Credentials>,
    new: &NewProfile,
    options: AgentOptions,
) -> Result<(), ProfileError> {
    let dir = dir.as_ref();
    let vault = Vault::create(dir, credentials)?;
    let agent = Agent::create_in_vault(vault, &new.relay, new.at_risk, options.clone())?;
    let vault = agent.into_vault_unconnected();
    match duress {
        Some(duress) => set_duress_on(dir, credentials, duress, vault, new, options),
        None => {
            vault.close();
            Ok(())
        }
    }
}

/// Sets (or replaces) the duress passphrase of the profile that `credentials` opens.
/// Replacing it starts a new, empty decoy with the profile's relay and settings.
pub fn set_duress(
    dir: impl AsRef<Path>,
    credentials: &Credentials,
    duress: &Credentials,
    options: AgentOptions,
) -> Result<(), ProfileError> {
    let dir = dir.as_ref();
    let agent = Agent::open(dir, credentials, options.clone())?;
    let new = NewProfile::new(agent.default_relay()?).at_risk(agent.default_disappear_timer() > 0);
    let vault = agent.into_vault_unconnected();
    set_duress_on(dir, credentials, duress, vault, &new, options)
}

fn set_duress_on(
    dir: &Path,
    credentials: &Credentials,
    duress: &Credentials,
    mut vault: Vault,
    new: &NewProfile,
    options: AgentOptions,
) -> Result<(), ProfileError> {
    vault.set_duress(duress)?;
    vault.close();
    let decoy = Vault::open_decoy(dir, credentials)?;
    let agent = Agent::create_in_vault(decoy, &new.relay, new.at_risk, options)?;
    agent.into_vault_unconnected().close();
    Ok(())
}

/// Opens the profile in `dir`. With the duress passphrase this is the decoy's ordinary
/// open: the real profile is destroyed first, and nothing tells the two apart.
/// Messages whose timer ran out while it was closed are gone before this returns.
pub fn open(
    dir: impl AsRef<Path>,
    credentials: &Credentials,
    options: AgentOptions,
) -> Result<Agent, ProfileError> {
    Ok(Agent::open(existing(dir.as_ref())?, credentials, options)?)
}

/// `dir`, if it exists (a vault would create nothing in a missing one, but say so).
fn existing(dir: &Path) -> Result<&Path, ProfileError> {
    if dir.exists() {
        Ok(dir)
    } else {
        Err(ProfileError::NoProfile)
    }
}

/// Opens the decoy profile with the real passphrase, to give it contacts and history
/// so that it looks lived in.
pub fn open_decoy(
    dir: impl AsRef<Path>,
    credentials: &Credentials,
    options: AgentOptions,
) -> Result<Agent, ProfileError> {
    let vault = Vault::open_decoy(existing(dir.as_ref())?, credentials)?;
    Ok(Agent::from_vault(vault, options)?)
}

/// Changes the passphrase of the profile in `dir` (closed: another process holding it
/// open gets [`ProfileError::Busy`]).
pub fn change_passphrase(
    dir: impl AsRef<Path>,
    current: &Credentials,
    new: &Credentials,
) -> Result<(), ProfileError> {
    let mut vault = Vault::open(dir.as_ref(), current)?;
    vault.change_passphrase(current, new)?;
    vault.close();
    Ok(())
}

/// The panic wipe of a profile that is not open here: every key slot is overwritten
/// and the files removed. No passphrase needed; nothing opens afterwards. For an open
/// profile, [`Agent::panic_wipe`] (or the messenger's) also drops the connections.
pub fn panic_wipe(dir: impl AsRef<Path>) -> Result<(), ProfileError> {
    Vault::panic(dir.as_ref()).map_err(ProfileError::WipeIncomplete)
}

/// When an open profile locks itself: after `after` without activity (an incoming
/// message, a command of its user). Sans-IO: the caller passes the time in and asks
/// when to wake, so the policy is tested on a virtual clock.
#[derive(Debug, Clone)]
pub struct IdleLock {
    after: Option<Duration>,
    last_activity: Instant,
}

impl IdleLock {
    /// A lock that closes the profile after `after` idle (`None`: never), counting
    /// from `now`.
    pub fn new(after: Option<Duration>, now: Instant) -> Self {
        Self {
            after,
            last_activity: now,
        }
    }

    /// The idle time that locks, if any.
    pub fn after(&self) -> Option<Duration> {
        self.after
    }

    /// Changes the idle time; counting restarts at `now`.
    pub fn set_after(&mut self, after: Option<Duration>, now: Instant) {
        self.after = after;
        self.last_activity = now;
    }

    /// Something happened that counts as use.
    pub fn handle_activity(&mut self, now: Instant) {
        self.last_activity = self.last_activity.max(now);
    }

    /// When to lock if nothing happens before.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.after.map(|after| self.last_activity + after)
    }

    /// Whether the profile must lock at `now`.
    pub fn handle_timeout(&self, now: Instant) -> bool {
        self.poll_timeout().is_some_and(|at| now >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_lock_fires_after_idle_and_activity_pushes_it_back() {
        let start = Instant::now();
        let mut lock = IdleLock::new(Some(Duration::from_secs(60)), start);
        assert_eq!(lock.poll_timeout(), Some(start + Duration::from_secs(60)));
        assert!(!lock.handle_timeout(start + Duration::from_secs(59)));
        lock.handle_activity(start + Duration::from_secs(30));
        assert!(!lock.handle_timeout(start + Duration::from_secs(60)));
        assert!(lock.handle_timeout(start + Duration::from_secs(90)));
        // Activity reported late (an older instant) does not move it back.
        lock.handle_activity(start);
        assert!(lock.handle_timeout(start + Duration::from_secs(90)));
    }

    #[test]
    fn idle_lock_off_never_fires() {
        let start = Instant::now();
        let mut lock = IdleLock::new(None, start);
        assert_eq!(lock.poll_timeout(), None);
        assert!(!lock.handle_timeout(start + Duration::from_secs(1 << 30)));
        lock.set_after(Some(Duration::from_secs(1)), start);
        assert!(lock.handle_timeout(start + Duration::from_secs(1)));
    }
}
