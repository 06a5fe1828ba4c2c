//! `passage`: the Passage client on the command line, for people and scripts.
//!
//! Thin: it reads arguments and the passphrase, calls the client library
//! ([`passage_client::agent`]) and prints what comes back. See `passage --help`.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
