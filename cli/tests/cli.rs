#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `passage` binary's own surface: help that names every command, and the errors a
//! script meets first. (Being an integration test of this package also makes
//! `cargo test` build the binary before the end-to-end tests in `tests/` run it.)

use std::process::{Command, Stdio};

fn passage(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_passage"))
        .args(args)
        .env_remove("PASSAGE_PASSPHRASE")
        .env_remove("PASSAGE_VAULT")
        .stdin(Stdio::null())
        .output()
        .expect("the passage binary runs")
}

#[test]
fn help_names_every_command() {
    let out = passage(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in [
        "init",
        "invite",
        "accept",
        "contacts",
        "safety-number",
        "verify",
        "send",
        "receive",
        "history",
        "run",
        "disappear",
        "no-history",
        "passwd",
        "set-duress",
        "panic",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "`passage --help` does not list {command}"
        );
    }
}

#[test]
fn without_a_passphrase_or_terminal_it_stops_with_one_line() {
    let dir = std::env::temp_dir().join(format!("passage-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = passage(&[
        "--vault",
        dir.to_str().unwrap(),
        "init",
        "--relay",
        "passage://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@127.0.0.1:9",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("PASSAGE_PASSPHRASE"), "{stderr}");
}

#[test]
fn a_bad_relay_address_says_what_one_looks_like() {
    let out = passage(&["--vault", "/nonexistent", "init", "--relay", "example.org"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("passage://PIN@HOST:PORT"), "{stderr}");
}
