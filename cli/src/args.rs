//! The command line's shape: every command and flag, with the help a newcomer reads.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
pub struct Cli {
    /// The data directory of the profile (any name; default: $PASSAGE_VAULT, else
    /// ~/.local/share/passage).
    #[arg(long, global = true, value_name = "DIR")]
    pub vault: Option<PathBuf>,
    /// Read the passphrase from the first line of FILE (for scripts).
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Print one JSON object per line instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Reach relays through a SOCKS5 proxy, e.g. Tor at 127.0.0.1:9050.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub socks5: Option<String>,
    /// Run the command on the decoy profile (the one the duress passphrase opens), with
    /// the real passphrase: give it contacts and history so that it looks lived in.
    #[arg(long, global = true)]
    pub decoy: bool,
    /// Use only this transport (default: QUIC, falling back to TLS over TCP).
    #[arg(long, global = true, value_name = "quic|tcp")]
    pub transport: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
    /// Mark a contact trusted: an SOS (`passage sos`) goes to every trusted contact.
    Trust {
        /// The contact.
        name: String,
        /// Stop trusting the contact with an SOS.
        #[arg(long)]
        off: bool,
    },
    /// Send an emergency message to every trusted contact at once, before anything
    /// else queued. They see it marked as an SOS.
    Sos {
        /// The text; without it, or with `-`, it is read from stdin.
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
