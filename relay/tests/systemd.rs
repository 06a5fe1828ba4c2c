//! The systemd unit in `relay/systemd/`: its hardening keys are there with the values
//! README promises, its command line is one the real binary takes, and, where
//! `systemd-analyze` is installed, the unit verifies and its offline security exposure
//! stays low.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::process::Command;

const UNIT: &str = include_str!("../systemd/passage-relay.service");
const BIN: &str = env!("CARGO_BIN_EXE_passage-relay");

/// Highest `systemd-analyze security --offline` exposure accepted (0 best, 10 worst;
/// the unit scores about 1.2, "OK").
const MAX_EXPOSURE: f64 = 2.0;

/// The unit's keys by section; a key given several times keeps every value.
fn parse(unit: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = None;
    for (n, line) in unit.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_owned());
            sections.entry(name.to_owned()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not KEY=VALUE: {line}", n + 1));
        let section = current
            .as_ref()
            .unwrap_or_else(|| panic!("line {}: outside a section", n + 1));
        sections
            .get_mut(section)
            .unwrap()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    sections
}

#[test]
fn the_unit_has_its_hardening_keys() {
    let sections = parse(UNIT);
    let service = &sections["Service"];
    let one = |key: &str| -> &str {
        let values = service
            .get(key)
            .unwrap_or_else(|| panic!("[Service] has no {key}="));
        values.last().unwrap()
    };
    // A dedicated user, never root.
    assert_eq!(one("DynamicUser"), "yes");
    assert!(!service.contains_key("User") || one("User") != "root");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("ProtectHome"), "yes");
    assert_eq!(one("PrivateTmp"), "yes");
    assert_eq!(one("CapabilityBoundingSet"), "");
    assert_eq!(one("UMask"), "0077");
    // The state directory, private to the service, is the relay's data directory.
    assert_eq!(one("StateDirectory"), "passage-relay");
    assert_eq!(one("StateDirectoryMode"), "0700");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("KillSignal"), "SIGTERM");
    // Enough descriptors for the default max_connections (10,000) and the relay's spares.
    let nofile: u64 = one("LimitNOFILE").parse().unwrap();
    assert!(nofile >= 10_000 + 64, "{nofile}");
    assert!(one("SystemCallFilter").len() > 1);
    assert!(
        one("RestrictAddressFamilies")
            .split_whitespace()
            .all(|f| f == "AF_INET" || f == "AF_INET6")
    );

    let exec = one("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args[..2], ["/usr/local/bin/passage-relay", "serve"]);
    let flag = |name: &str| {
        args.iter()
            .position(|a| *a == name)
            .map(|i| args[i + 1])
            .unwrap_or_else(|| panic!("ExecStart has no {name}"))
    };
    assert_eq!(flag("--data"), "/var/lib/passage-relay");
    assert_eq!(flag("--config"), "/etc/passage-relay/relay.toml");
    // The password reaches the service as a credential, where the unit's comment says.
    assert_eq!(
        one("LoadCredential"),
        "password:/etc/passage-relay/password"
    );
    assert!(UNIT.contains("password_file = \"/run/credentials/passage-relay.service/password\""));
    assert_eq!(sections["Install"]["WantedBy"], ["multi-user.target"]);

    // The real binary takes those flags.
    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for name in ["--data", "--config"] {
        assert!(help.contains(name), "{help}");
    }
}

/// `systemd-analyze verify` and `security --offline`, on the unit with the test's own
/// binary in `ExecStart` (verify checks that the program exists).
#[test]
fn systemd_analyze_verifies_the_unit_where_installed() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: only the parsed checks ran");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("passage-relay.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/passage-relay", BIN)).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("passage-relay.service"),
        "warnings about the unit: {stderr}"
    );

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = out
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for passage-relay.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {out}"));
    assert!(exposure <= MAX_EXPOSURE, "exposure {exposure}: {out}");
}
