//! Helpers shared by the CLI end-to-end tests (`mod common;` in each test file). Test
//! code: a failure panics with what happened.
#![allow(dead_code)] // each test file uses some of them

use std::path::Path;

use passage_e2e::{CliClient, CliOutput, TestRelay};
use serde_json::Value;

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

/// Asserts a failed run with one line `passage: error: …` on stderr containing `needle`.
pub fn one_line_error(out: &CliOutput, needle: &str) {
    assert!(!out.success(), "expected a failure, got: {}", out.stdout);
    let stderr = out.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("passage: error: "), "{stderr:?}");
    assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
}

/// `passage receive` runs a step may take before the test gives up on what it waits for.
pub const RECEIVE_ROUNDS: usize = 8;

/// `--wait` of each `passage receive`.
pub const RECEIVE_WAIT: &str = "1";

/// The `--json` objects of a run; every stdout line must be one.
pub fn objects(out: &CliOutput) -> Vec<Value> {
    out.json_lines()
        .into_iter()
        .map(|line| line.unwrap_or_else(|l| panic!("not a JSON line on stdout: {l:?}")))
        .collect()
}

/// Runs `passage receive --json` until `done` holds for the objects printed so far,
/// at most [`RECEIVE_ROUNDS`] times. Returns every object printed.
pub fn receive_until(
    client: &CliClient,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    receive_until_with(client, &[], what, done)
}

/// [`receive_until`] with extra global arguments (`--decoy`).
pub fn receive_until_with(
    client: &CliClient,
    extra: &[&str],
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut args = extra.to_vec();
    args.extend(["receive", "--wait", RECEIVE_WAIT, "--json"]);
    let mut seen = Vec::new();
    for _ in 0..RECEIVE_ROUNDS {
        seen.extend(objects(&ok(client, &args)));
        if done(&seen) {
            return seen;
        }
    }
    panic!("never received {what}; got {seen:?}");
}

pub fn has(objects: &[Value], kind: &str, contact: &str) -> bool {
    objects
        .iter()
        .any(|o| o["type"] == kind && o["contact"] == contact)
}

pub fn has_text(objects: &[Value], contact: &str, text: &str) -> bool {
    objects
        .iter()
        .any(|o| o["type"] == "message" && o["contact"] == contact && o["text"] == text)
}

/// `inviter` invites `invitee` (named `invitee_name` by the inviter, `inviter_name`
/// by the invitee); both receive until connected. `extra` goes before the inviter's
/// commands (`--decoy`).
pub fn connect(
    inviter: &CliClient,
    extra: &[&str],
    invitee_name: &str,
    invitee: &CliClient,
    inviter_name: &str,
) {
    let mut args = extra.to_vec();
    args.extend(["invite", "--name", invitee_name]);
    let link = ok(inviter, &args).stdout;
    ok(invitee, &["accept", link.trim(), "--name", inviter_name]);
    receive_until_with(inviter, extra, "the connection", |o| {
        has(o, "connected", invitee_name)
    });
    receive_until(invitee, "the connection", |o| {
        has(o, "connected", inviter_name)
    });
}

/// `passage send NAME TEXT --json`; returns the message id.
pub fn send(client: &CliClient, extra: &[&str], name: &str, text: &str) -> String {
    let mut args = extra.to_vec();
    args.extend(["send", name, text, "--json"]);
    let sent = objects(&ok(client, &args));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["type"], "sent");
    sent[0]["id"].as_str().expect("an id").to_owned()
}
