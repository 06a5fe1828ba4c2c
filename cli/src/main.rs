//! `passage`: the Passage client on the command line, for people and scripts.
//!
//! Thin: it reads arguments and the passphrase, calls the client core
//! ([`passage_client::profile`], [`passage_client::agent`]) and prints what comes back.
//! See `passage --help`.
//!
//! ```text
//!   args (clap) ─▶ commands ─▶ passage_client::profile / agent ─▶ relays, vault
//!                     │
//!   secret (passphrase prompt, process hardening)   output (text or --json, QR)
//! ```
#![forbid(unsafe_code)]

mod args;
mod commands;
mod output;
mod secret;
mod voice;

fn main() -> std::process::ExitCode {
    commands::main()
}
