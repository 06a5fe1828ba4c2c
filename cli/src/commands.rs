//! What each command does: open the profile, call the client core, print.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use passage_client::agent::Agent;
use passage_client::agent::{
    AgentError, AgentEvent, AgentOptions, DEFAULT_INVITATION_TTL, MessageStatus,
};
use passage_client::profile::{self, IdleLock, NewProfile, ProfileError};
use passage_client::vault::{Credentials, WriteError};
use passage_transport::{ConnectOptions, Socks5Proxy, TransportMode};
use passage_wire::RelayAddress;

use crate::args::{Cli, Command};
use crate::output::{self, Printer};
use crate::{secret, voice};

/// Runs the CLI; errors are one line on stderr.
pub fn main() -> ExitCode {
    secret::harden_process();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("passage: error: cannot start: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("passage: error: {}", one_line(&error));
            ExitCode::from(1)
        }
    }
}

fn one_line(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    if let Some(source) = error.chain().nth(1) {
        let source = source.to_string();
        if !text.contains(&source) {
            text = format!("{text}: {source}");
        }
    }
    if let Some(hint) = hint(error) {
        text.push_str("; ");
        text.push_str(hint);
    }
    text.replace('\n', " ")
}

/// What to run next, for the library's errors that a command of ours answers.
fn hint(error: &anyhow::Error) -> Option<&'static str> {
    error
        .chain()
        .find_map(|cause| match cause.downcast_ref::<AgentError>()? {
            AgentError::NoSuchContact => Some("`passage contacts` lists them"),
            AgentError::NotConnected => Some("run `passage receive` later"),
            AgentError::NoTrustedContacts => Some("`passage trust NAME` marks one"),
            _ => None,
        })
}

fn vault_dir(cli: &Cli) -> Result<PathBuf> {
    if let Some(dir) = &cli.vault {
        return Ok(dir.clone());
    }
    if let Some(dir) = std::env::var_os("PASSAGE_VAULT") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("no data directory: pass --vault DIR or set PASSAGE_VAULT"))?;
    Ok(PathBuf::from(home).join(".local/share/passage"))
}

fn options(cli: &Cli) -> Result<AgentOptions> {
    let mut connect = ConnectOptions::default();
    if let Some(proxy) = &cli.socks5 {
        let (host, port) = proxy
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .ok_or_else(|| anyhow!("--socks5 takes HOST:PORT, e.g. 127.0.0.1:9050"))?;
        connect.proxy = Some(Socks5Proxy::new(host, port));
    }
    match cli.transport.as_deref() {
        None => {}
        Some("quic") => connect.mode = TransportMode::Quic,
        Some("tcp") => connect.mode = TransportMode::Tcp,
        Some(_) => bail!("--transport takes quic or tcp"),
    }
    let mut options = AgentOptions::default();
    options.connect = connect;
    Ok(options)
}

fn parse_relay(text: &str) -> Result<RelayAddress> {
    text.trim()
        .parse()
        .map_err(|e| anyhow!("{e} (a relay address looks like passage://PIN@HOST:PORT)"))
}

/// Parses `30s`, `10m`, `2h`, `7d` (or a bare number of seconds).
fn parse_duration(text: &str) -> Result<u64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| anyhow!("durations look like 30s, 10m, 2h or 1d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("durations look like 30s, 10m, 2h or 1d"),
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| anyhow!("that duration is too long"))
}

/// The library's errors, with the command that helps where there is one.
fn profile_error(error: ProfileError) -> anyhow::Error {
    match error {
        ProfileError::NoProfile => {
            anyhow!(
                "no profile at that data directory; create one with `passage init --relay ADDR`"
            )
        }
        ProfileError::Busy => anyhow!(
            "the profile is open in another passage process (such as `passage run`); stop it first"
        ),
        ProfileError::WipeIncomplete(error) => {
            anyhow!("the wipe failed part way ({error}); run `passage panic` again")
        }
        ProfileError::Agent(error) => agent_error(error),
        other => anyhow::Error::new(other),
    }
}

fn agent_error(error: AgentError) -> anyhow::Error {
    match error {
        AgentError::Open(_) | AgentError::Create(_) | AgentError::Write(_) => {
            profile_error(error.into())
        }
        other => anyhow::Error::new(other),
    }
}

async fn open(cli: &Cli) -> Result<Agent> {
    let credentials = secret::credentials(cli.passphrase_file.as_deref(), false)?;
    open_with(cli, &credentials)
}

/// Opens the profile (or with `--decoy`, the decoy profile) with `credentials`.
fn open_with(cli: &Cli, credentials: &Credentials) -> Result<Agent> {
    let dir = vault_dir(cli)?;
    let options = options(cli)?;
    let opened = if cli.decoy {
        profile::open_decoy(&dir, credentials, options)
    } else {
        profile::open(&dir, credentials, options)
    };
    opened.map_err(|error| match error {
        // A directory that is there but holds no vault (wiped, or the wrong path).
        ProfileError::NoProfile if dir.exists() => {
            anyhow!("no vault in this directory: check the path, or create one")
        }
        other => profile_error(other),
    })
}

async fn run(cli: Cli) -> Result<()> {
    let mut out = Printer::new(cli.json);
    match &cli.command {
        Command::Init {
            relay,
            at_risk,
            duress,
            duress_passphrase_file,
            allow_weak_passphrase,
        } => {
            if cli.decoy {
                bail!("--decoy does not apply to init; use set-duress");
            }
            let relay = parse_relay(relay)?;
            let dir = vault_dir(&cli)?;
            let (credentials, warning) = secret::new_profile_credentials(
                cli.passphrase_file.as_deref(),
                *allow_weak_passphrase,
            )?;
            if let Some(warning) = warning {
                out.note(&warning);
            }
            let duress = secret::duress_credentials(duress_passphrase_file.as_deref(), *duress)?;
            let new = NewProfile::new(relay).at_risk(*at_risk);
            profile::create(&dir, &credentials, duress.as_ref(), &new, options(&cli)?)
                .map_err(profile_error)?;
            out.note(if duress.is_some() {
                "profile created, with a duress passphrase"
            } else {
                "profile created"
            });
        }
        Command::SetDuress {
            duress_passphrase_file,
        } => {
            if cli.decoy {
                bail!("--decoy does not apply to set-duress");
            }
            let credentials = secret::credentials(cli.passphrase_file.as_deref(), false)?;
            let duress = secret::duress_credentials(duress_passphrase_file.as_deref(), true)?
                .ok_or_else(|| anyhow!("no duress passphrase given"))?;
            profile::set_duress(vault_dir(&cli)?, &credentials, &duress, options(&cli)?)
                .map_err(profile_error)?;
            out.note("duress passphrase set; prepare the decoy with `passage --decoy …`");
        }
        Command::Panic => {
            profile::panic_wipe(vault_dir(&cli)?).map_err(profile_error)?;
            out.note("wiped");
        }
        Command::Invite {
            name,
            relay,
            qr,
            expires,
        } => {
            let relay = relay.as_deref().map(parse_relay).transpose()?;
            let ttl = match expires {
                Some(text) => Duration::from_secs(parse_duration(text)?),
                None => DEFAULT_INVITATION_TTL,
            };
            let mut agent = open(&cli).await?;
            let link = agent
                .invite(name, relay.as_ref(), ttl)
                .await
                .context("could not make the invitation")?;
            agent.close().await;
            if *qr {
                output::qr_to_stderr(&link);
            }
            out.link(&link);
        }
        Command::Accept { link, name } => {
            let mut agent = open(&cli).await?;
            let status = agent
                .accept(link, name)
                .await
                .context("could not accept the invitation")?;
            agent.close().await;
            if status == MessageStatus::Queued {
                out.note(
                    "no relay reachable: the acceptance is queued and goes out with the next `passage receive`",
                );
            } else {
                out.note("invitation accepted; connected once they run `passage receive`");
            }
        }
        Command::Contacts => {
            let agent = open(&cli).await?;
            for contact in agent.contacts() {
                out.contact(&contact);
            }
            agent.close().await;
        }
        Command::SafetyNumber { name } => {
            let agent = open(&cli).await?;
            let number = agent.safety_number(name)?;
            agent.close().await;
            out.safety_number(name, number.digits());
        }
        Command::Verify { name, number } => {
            let mut agent = open(&cli).await?;
            agent.verify(name, number.as_deref())?;
            agent.close().await;
            out.note("contact marked verified");
        }
        Command::Send { name, text } => {
            let text = match text.as_deref() {
                Some("-") | None => read_stdin_text()?,
                Some(text) => zeroize::Zeroizing::new(text.to_owned()),
            };
            let mut agent = open(&cli).await?;
            let report = agent.send_text(name, &text).await?;
            agent.close().await;
            out.sent(name, &report);
        }
        Command::Trust { name, off } => {
            let mut agent = open(&cli).await?;
            let result = agent.set_trusted(name, !*off);
            agent.close().await;
            result?;
            out.note(if *off {
                "contact no longer trusted with an SOS"
            } else {
                "contact trusted: `passage sos` reaches them"
            });
        }
        Command::Sos { text } => {
            let text = match text.as_deref() {
                Some("-") | None => read_stdin_text()?,
                Some(text) => zeroize::Zeroizing::new(text.to_owned()),
            };
            let mut agent = open(&cli).await?;
            let reports = agent.send_sos(&text).await;
            agent.close().await;
            for (name, report) in &reports? {
                out.sent(name, report);
            }
        }
        Command::SendVoice {
            name,
            file,
            bitrate,
        } => {
            let quality: passage_voice::Quality = bitrate
                .parse()
                .map_err(|_| anyhow!("--bitrate: choose 6k, 12k or 16k"))?;
            let note = voice::encode(file, quality)?;
            let mut agent = open(&cli).await?;
            let report = voice::send(&mut agent, &mut out, name, &note).await;
            agent.close().await;
            out.sent(name, &report?);
        }
        Command::RelayMoved { address } => {
            let address = parse_relay(address)?;
            let mut agent = open(&cli).await?;
            let changed = agent.relay_moved(&address);
            agent.close().await;
            if changed? == 0 {
                bail!(
                    "this profile uses no relay at that host and port with another key; check the address"
                );
            }
            out.note("the relay's address is updated; `passage receive` reconnects with it");
        }
        Command::SaveVoice {
            name,
            id,
            out: path,
        } => {
            let agent = open(&cli).await?;
            let saved = voice::save(&agent, name, id, path);
            agent.close().await;
            let (duration_ms, rate) = saved?;
            out.note(&format!(
                "voice message saved ({} s at {} Hz); delete the file when you no longer need it",
                duration_ms.div_ceil(1000),
                rate
            ));
        }
        Command::Receive { wait } => {
            let mut agent = open(&cli).await?;
            let report = agent.sync().await;
            if report.key_refused > 0 {
                out.note(&format!(
                    "{} relay(s) no longer have the key their address names: the relay changed its key (or the connection is intercepted). Ask its operator for its current address, then run `passage relay-moved ADDRESS`",
                    report.key_refused
                ));
            }
            if report.unreachable_relays > 0 {
                out.note(&format!(
                    "{} relay(s) could not be reached; {} message(s) stay queued",
                    report.unreachable_relays, report.queued
                ));
            }
            while let Some(event) = agent.next_event(Duration::from_secs(*wait)).await {
                out.event(&event);
            }
            agent.close().await;
        }
        Command::Run { lock_after } => {
            let lock_after = match lock_after.trim() {
                "off" => None,
                text => Some(Duration::from_secs(parse_duration(text)?.max(1))),
            };
            run_until_interrupted(&cli, &mut out, lock_after).await?;
        }
        Command::NoHistory { mode, contact } => {
            let mut agent = open(&cli).await?;
            agent.set_no_history(contact.as_deref(), mode == "on")?;
            agent.close().await;
            out.note(if mode == "on" {
                "no-history mode on"
            } else {
                "no-history mode off"
            });
        }
        Command::History { name } => {
            let agent = open(&cli).await?;
            let history = agent.history(name)?;
            agent.close().await;
            for entry in &history {
                out.history(name, entry);
            }
        }
        Command::Disappear { name, duration } => {
            let seconds = if duration.trim() == "off" {
                0
            } else {
                let seconds = parse_duration(duration)?;
                if seconds == 0 {
                    bail!("use `off` to turn disappearing messages off");
                }
                u32::try_from(seconds).map_err(|_| anyhow!("that duration is too long"))?
            };
            let mut agent = open(&cli).await?;
            agent.set_disappear_timer(name, seconds).await?;
            agent.close().await;
            out.note(if seconds == 0 {
                "disappearing messages off"
            } else {
                "disappearing messages on"
            });
        }
        Command::Passwd {
            new_passphrase_file,
            allow_weak_passphrase,
        } => {
            if cli.decoy {
                bail!("--decoy does not apply to passwd; set-duress sets a new duress passphrase");
            }
            let current = secret::credentials(cli.passphrase_file.as_deref(), false)?;
            let (new, warning) =
                secret::new_credentials(new_passphrase_file.as_deref(), *allow_weak_passphrase)?;
            if let Some(warning) = warning {
                out.note(&warning);
            }
            let dir = vault_dir(&cli)?;
            tokio::task::spawn_blocking(move || profile::change_passphrase(&dir, &current, &new))
                .await
                .context("the vault task failed")?
                .map_err(profile_error)?;
            out.note("passphrase changed");
        }
    }
    Ok(())
}

/// `passage run`: events until Ctrl-C; after `lock_after` without an incoming
/// event the profile is closed (keys dropped) and the passphrase asked for again.
async fn run_until_interrupted(
    cli: &Cli,
    out: &mut Printer,
    lock_after: Option<Duration>,
) -> Result<()> {
    loop {
        let mut agent = open(cli).await?;
        let report = agent.sync().await;
        if report.unreachable_relays > 0 {
            out.note("a relay could not be reached; retrying in the background");
        }
        let mut lock = IdleLock::new(lock_after, Instant::now());
        loop {
            let wait = lock.poll_timeout().map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                event = agent.next_event(wait) => match event {
                    Some(AgentEvent::Error(AgentError::Write(WriteError::Gone))) => {
                        // Wiped (`passage panic`) under us: stop, write nothing more.
                        return Err(anyhow!("the profile was wiped; stopping"));
                    }
                    Some(event) => {
                        lock.handle_activity(Instant::now());
                        out.event(&event);
                    }
                    None if lock.handle_timeout(Instant::now()) => break,
                    None => {}
                },
                _ = tokio::signal::ctrl_c() => {
                    agent.close().await;
                    return Ok(());
                }
            }
        }
        agent.close().await;
        out.locked();
    }
}

/// Reads a message from stdin (all of it, trailing newline removed).
fn read_stdin_text() -> Result<zeroize::Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        eprintln!("Type the message, then Ctrl-D:");
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .context("could not read the message from stdin")?;
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    if text.is_empty() {
        bail!("empty message; nothing sent");
    }
    Ok(text)
}
