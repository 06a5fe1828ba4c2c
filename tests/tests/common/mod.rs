//! Helpers shared by the CLI end-to-end tests (`mod common;` in each test file). Test
//! code: a failure panics with what happened.
#![allow(dead_code)] // each test file uses some of them

use std::path::Path;

use passage_e2e::{CliClient, CliOutput, TestRelay};

/// A relay process with the default settings.
pub fn start() -> TestRelay {
    TestRelay::start(None).unwrap_or_else(|e| panic!("{e}"))
}

/// A CLI profile rooted at `root` with `passphrase`.
pub fn client(root: &Path, passphrase: &str) -> CliClient {
    CliClient::new(root, passphrase).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `passage ARGS` and insists on success.
pub fn ok(client: &CliClient, args: &[&str]) -> CliOutput {
    let out = client.run(args).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.success(),
        "`passage {}` failed ({}): {}",
        args.join(" "),
        out.status,
        out.stderr
    );
    out
}
