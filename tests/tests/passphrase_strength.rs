//! `init` and `passwd` refuse a passphrase that an offline search of a copied phone
//! finds quickly, say what to choose instead, and take it only when asked to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client, ok, one_line_error};
use passage_e2e::{CLI_LIMIT, run_limited};

/// No relay is contacted by `init`: any well-formed address does.
const RELAY: &str = "passage://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@127.0.0.1:9";

#[test]
fn a_pin_is_refused_unless_asked_for_and_a_strong_passphrase_is_taken_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let pin = client(&dir.path().join("pin"), "482915");
    let out = pin.run(&["init", "--relay", RELAY]).unwrap();
    one_line_error(&out, "too easy to guess");
    one_line_error(&out, "--allow-weak-passphrase");
    one_line_error(&out, "random words");
    assert!(!pin.vault().exists(), "nothing was created");

    let out = ok(&pin, &["init", "--relay", RELAY, "--allow-weak-passphrase"]);
    assert!(
        out.stderr
            .contains("warning: this passphrase could be guessed"),
        "{}",
        out.stderr
    );
    ok(&pin, &["contacts"]);

    let strong = client(&dir.path().join("strong"), "lanternfish quarry hollow 6620");
    let out = ok(&strong, &["init", "--relay", RELAY]);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);

    // passwd: a weak new passphrase is refused and the old one still opens.
    let weak = dir.path().join("weak.txt");
    std::fs::write(&weak, "password1\n").unwrap();
    let weak = weak.to_str().unwrap();
    let out = strong
        .run(&["passwd", "--new-passphrase-file", weak])
        .unwrap();
    one_line_error(&out, "too easy to guess");
    ok(&strong, &["contacts"]);
    let mut command = strong.bare_command(&["contacts"]);
    command.env("PASSAGE_PASSPHRASE", "password1");
    assert!(!run_limited(command, CLI_LIMIT).unwrap().success());
    ok(
        &strong,
        &[
            "passwd",
            "--new-passphrase-file",
            weak,
            "--allow-weak-passphrase",
        ],
    );
    let mut command = strong.bare_command(&["contacts"]);
    command.env("PASSAGE_PASSPHRASE", "password1");
    assert!(run_limited(command, CLI_LIMIT).unwrap().success());
}
