//! The `passage` command line: argument parsing, passphrases, output. Everything that
//! is not terminal handling lives in the library.

mod output;
mod secret;
mod voice;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use passage_client::agent::Agent;
use passage_client::agent::{
    AgentError, AgentEvent, AgentOptions, DEFAULT_INVITATION_TTL, MessageStatus,
};
use passage_client::vault::{Credentials, OpenError, Vault, WriteError};
use passage_transport::{ConnectOptions, Socks5Proxy, TransportMode};
use passage_wire::RelayAddress;

use output::Printer;

/// Passage: end-to-end encrypted messages through relays that learn as little as
/// possible, with nothing readable left on this device.
///
/// Start with `passage init --relay ADDR`, then `passage invite --name NAME` (give the
/// link to the person in person or through someone you trust) or `passage accept LINK
/// --name NAME`. `passage receive` fetches messages; `passage send NAME` writes.
///
/// The passphrase comes from --passphrase-file (first line), else the
/// PASSAGE_PASSPHRASE variable, else a prompt on the terminal.
#[derive(Parser, Debug)]
#[command(name = "passage", version, max_term_width = 100)]
struct Cli {
    /// The data directory of the profile (any name; default: $PASSAGE_VAULT, else
    /// ~/.local/share/passage).
    #[arg(long, global = true, value_name = "DIR")]
    vault: Option<PathBuf>,
    /// Read the passphrase from the first line of FILE (for scripts).
    #[arg(long, global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Print one JSON object per line instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Reach relays through a SOCKS5 proxy, e.g. Tor at 127.0.0.1:9050.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    socks5: Option<String>,
    /// Run the command on the decoy profile (the one the duress passphrase opens), with
    /// the real passphrase: give it contacts and history so that it looks lived in.
    #[arg(long, global = true)]
    decoy: bool,
    /// Use only this transport (default: QUIC, falling back to TLS over TCP).
    #[arg(long, global = true, value_name = "quic|tcp")]
    transport: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new profile (an encrypted vault) in the data directory.
    Init {
        /// The relay your invitations point to: a `passage://PIN@HOST:PORT` address
        /// from whoever runs it.
        #[arg(long, value_name = "ADDR")]
        relay: String,
        /// Turn on disappearing messages (1 day) for every new contact.
        #[arg(long)]
        at_risk: bool,
        /// Also set a duress passphrase, asked for at the terminal (see `set-duress`).
        #[arg(long)]
        duress: bool,
        /// Also set a duress passphrase, read from the first line of FILE (for scripts;
        /// or set PASSAGE_DURESS_PASSPHRASE).
        #[arg(long, value_name = "FILE")]
        duress_passphrase_file: Option<PathBuf>,
        /// Accept a passphrase that is easy to guess (a PIN, a common word). Anyone who
        /// copies the phone can then find it offline; say yes only if you know this.
        #[arg(long)]
        allow_weak_passphrase: bool,
    },
    /// Set (or replace) the duress passphrase. Entered instead of the passphrase,
    /// anywhere, it silently destroys this profile and opens a decoy profile instead.
    /// Prepare the decoy with `passage --decoy COMMAND`. Replacing it starts a new,
    /// empty decoy.
    SetDuress {
        /// Read the duress passphrase from the first line of FILE (for scripts; or set
        /// PASSAGE_DURESS_PASSPHRASE); otherwise it is asked for at the terminal.
        #[arg(long, value_name = "FILE")]
        duress_passphrase_file: Option<PathBuf>,
    },
    /// Destroy the profile at once: every key slot is overwritten and the files are
    /// removed. No passphrase needed, nothing asked. Cannot be undone.
    Panic,
    /// Make a one-time invitation link for a new contact; prints the link alone on
    /// stdout. Give it in person or through someone you trust.
    Invite {
        /// Your name for whoever accepts it (stays on this device, encrypted).
        #[arg(long)]
        name: String,
        /// Put the contact's queue on this relay instead of your default one.
        #[arg(long, value_name = "ADDR")]
        relay: Option<String>,
        /// Also draw the link as a QR code on stderr.
        #[arg(long)]
        qr: bool,
        /// How long the invitation stays valid, e.g. 30m, 12h, 7d (default 7d).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Accept an invitation link; the contact is connected once they run `receive`.
    Accept {
        /// The `passage:i1.…` link.
        link: String,
        /// Your name for the person who invited you (stays on this device, encrypted).
        #[arg(long)]
        name: String,
    },
    /// List contacts with their status.
    Contacts,
    /// Show the safety number to compare with a contact, in person or by voice.
    SafetyNumber {
        /// The contact.
        name: String,
    },
    /// Mark a contact verified after you compared safety numbers.
    Verify {
        /// The contact.
        name: String,
        /// The number the contact read to you; refused if it does not match.
        #[arg(long, value_name = "DIGITS")]
        number: Option<String>,
    },
    /// Send a text. Returns once the relay has it; without a relay it stays queued.
    Send {
        /// The contact.
        name: String,
        /// The text; without it, or with `-`, it is read from stdin. Text on the
        /// command line is visible to other local processes: prefer stdin.
        text: Option<String>,
    },
    /// Send a voice message from a WAV file (any rate, mono or stereo; at most 5
    /// minutes), encoded with Opus for speech. Shows progress; what the relay does not
    /// take yet stays queued and goes with the next `send`, `receive` or `run`.
    SendVoice {
        /// The contact.
        name: String,
        /// The recording.
        file: PathBuf,
        /// Opus bit rate: 12k (the default, wideband), 16k, or 6k (low-data mode,
        /// narrowband: half the bytes, still clear speech).
        #[arg(long, default_value = "12k", value_name = "6k|12k|16k")]
        bitrate: String,
    },
    /// A relay changed its key and this profile missed the weeks in which it moved
    /// by itself: give the relay's current address, from its operator, and every
    /// address of the relay at that host and port moves to it.
    RelayMoved {
        /// The current `passage://PIN@HOST:PORT` address.
        address: String,
    },
    /// Write a received (or sent) voice message to a WAV file (16 or 8 kHz mono). The
    /// only way decoded audio reaches the disk: choose where it goes, and delete it.
    SaveVoice {
        /// The contact.
        name: String,
        /// The message id, or its first 8 or more hex digits (as `receive` and
        /// `history` show it).
        id: String,
        /// Where to write the WAV file; an existing file is not overwritten.
        out: PathBuf,
    },
    /// Send what is queued, fetch and show new messages, then exit after SECONDS
    /// without anything new.
    Receive {
        /// Seconds to wait for something new before exiting.
        #[arg(long, default_value_t = 5, value_name = "SECONDS")]
        wait: u64,
    },
    /// Show the conversation with a contact.
    History {
        /// The contact.
        name: String,
    },
    /// Stay connected and show messages and events as they arrive, until interrupted.
    /// Locks itself (drops every key from memory) after a while without activity and
    /// asks for the passphrase again.
    Run {
        /// Time without an incoming message before locking (30s, 15m, 1h); `off`
        /// never locks.
        #[arg(long, default_value = "15m", value_name = "DURATION")]
        lock_after: String,
    },
    /// Keep no history: received messages are shown once and not stored, sent ones are
    /// deleted when the contact confirms delivery. For one contact, or (without
    /// --contact) for the whole profile.
    NoHistory {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        mode: String,
        /// Only this contact.
        #[arg(long, value_name = "NAME")]
        contact: Option<String>,
    },
    /// Set a contact's disappearing-message timer: 30s, 10m, 2h, 1d, or off.
    Disappear {
        /// The contact.
        name: String,
        /// How long messages live after they are sent or read, or `off`.
        duration: String,
    },
    /// Change the passphrase (the new one from --new-passphrase-file,
    /// PASSAGE_NEW_PASSPHRASE or the terminal).
    Passwd {
        /// Read the new passphrase from the first line of FILE.
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
        /// Accept a new passphrase that is easy to guess (see `init`).
        #[arg(long)]
        allow_weak_passphrase: bool,
    },
}

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
    text.replace('\n', " ")
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

fn open_error(error: OpenError) -> anyhow::Error {
    match error {
        OpenError::WrongPassphrase => {
            anyhow!("wrong passphrase (or no profile here); nothing was changed")
        }
        OpenError::Busy => anyhow!(
            "the profile is open in another passage process (such as `passage run`); stop it first"
        ),
        other => anyhow::Error::new(other),
    }
}

fn agent_error(error: AgentError) -> anyhow::Error {
    match error {
        AgentError::Open(error) => open_error(error),
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
    if !dir.exists() {
        bail!("no profile at that data directory; create one with `passage init --relay ADDR`");
    }
    let options = options(cli)?;
    if cli.decoy {
        let vault = Vault::open_decoy(&dir, credentials).map_err(open_error)?;
        return Agent::from_vault(vault, options).map_err(agent_error);
    }
    Agent::open(dir, credentials, options).map_err(agent_error)
}

/// Sets `duress` on the real profile in `dir` and gives the new decoy a profile with
/// the same relay and settings, so that it opens like any other.
async fn set_duress(
    cli: &Cli,
    credentials: &Credentials,
    duress: &Credentials,
    mut vault: Vault,
    relay: &RelayAddress,
    at_risk: bool,
) -> Result<()> {
    vault
        .set_duress(duress)
        .context("could not set the duress passphrase")?;
    vault.close();
    let dir = vault_dir(cli)?;
    let decoy = Vault::open_decoy(&dir, credentials).map_err(open_error)?;
    let agent = Agent::create_in_vault(decoy, relay, at_risk, options(cli)?)?;
    agent.close().await;
    Ok(())
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
            let vault = Vault::create(&dir, &credentials)?;
            let agent = Agent::create_in_vault(vault, &relay, *at_risk, options(&cli)?)?;
            let vault = agent.into_vault().await;
            match duress {
                Some(duress) => {
                    set_duress(&cli, &credentials, &duress, vault, &relay, *at_risk).await?;
                    out.note("profile created, with a duress passphrase");
                }
                None => {
                    vault.close();
                    out.note("profile created");
                }
            }
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
            let agent = open_with(&cli, &credentials)?;
            let relay = agent.default_relay()?;
            let at_risk = agent.default_disappear_timer() > 0;
            let vault = agent.into_vault().await;
            set_duress(&cli, &credentials, &duress, vault, &relay, at_risk).await?;
            out.note("duress passphrase set; prepare the decoy with `passage --decoy …`");
        }
        Command::Panic => {
            let dir = vault_dir(&cli)?;
            Vault::panic(&dir).context("the wipe failed part way; run `passage panic` again")?;
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
            tokio::task::spawn_blocking(move || -> Result<()> {
                let mut vault = Vault::open(&dir, &current).map_err(open_error)?;
                vault.change_passphrase(&current, &new)?;
                vault.close();
                Ok(())
            })
            .await
            .context("the vault task failed")??;
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
    let idle = lock_after.unwrap_or(Duration::from_secs(3600));
    loop {
        let mut agent = open(cli).await?;
        let report = agent.sync().await;
        if report.unreachable_relays > 0 {
            out.note("a relay could not be reached; retrying in the background");
        }
        loop {
            tokio::select! {
                event = agent.next_event(idle) => match event {
                    Some(AgentEvent::Error(AgentError::Write(WriteError::Gone))) => {
                        // Wiped (`passage panic`) under us: stop, write nothing more.
                        return Err(anyhow!("the profile was wiped; stopping"));
                    }
                    Some(event) => out.event(&event),
                    None if lock_after.is_some() => break,
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
