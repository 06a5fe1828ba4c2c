//! The real `passage-relay` binary: start, address line, `address`, `stats`, a client
//! handshake against the printed pin, SIGTERM/SIGINT, restart with the same key, and
//! errors that stop it before it does any work. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use passage_testkit::{RelayOptions, RelayProcess, StopSignal};
use passage_transport::{ConnectOptions, RelayAddress, connect};
use passage_wire::Host;

const BIN: &str = env!("CARGO_BIN_EXE_passage-relay");
/// A running `serve` through the shared launcher (`passage_testkit::RelayProcess`),
/// killed if the test fails before stopping it.
struct Relay {
    process: RelayProcess,
    address: RelayAddress,
    line: String,
}

impl Relay {
    fn start(data: &Path) -> Relay {
        let options = RelayOptions {
            binary: Some(BIN.into()),
            log_level: Some("info".to_owned()),
            ..RelayOptions::default()
        };
        let process =
            RelayProcess::launch(data, options).unwrap_or_else(|e| panic!("no address line: {e}"));
        let line = process.address_line().to_owned();
        assert!(line.starts_with("passage://"), "bad line {line:?}");
        Relay {
            address: process.address().clone(),
            line,
            process,
        }
    }

    fn signal(&self, signal: StopSignal) {
        self.process.signal(signal).unwrap();
    }

    /// Waits for the process to exit; returns its status and stderr.
    fn wait(mut self) -> (ExitStatus, String) {
        let status = self.process.wait().unwrap();
        // Anything more on stdout is a bug: exactly one line is printed.
        assert_eq!(self.process.later_lines(), Vec::<String>::new());
        (status, self.process.log())
    }
}

fn run(args: &[&str], data: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A TLS/QUIC handshake that succeeds only if the relay's key matches the printed pin.
fn handshake(address: &RelayAddress) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            connect(
                "127.0.0.1",
                address.port(),
                address.pin(),
                &ConnectOptions::default(),
            ),
        )
        .await
        .expect("handshake timed out")
        .expect("handshake with the printed pin failed");
        let _ = stream.close().await;
    });
}

#[test]
fn serve_prints_its_address_answers_address_and_stats_and_stops_on_signals() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    let relay = Relay::start(&data);
    // The real port, not 0, on the listen host.
    assert_eq!(
        relay.address.host(),
        &Host::Ipv4(std::net::Ipv4Addr::LOCALHOST)
    );
    assert_ne!(relay.address.port(), 0);
    assert!(
        relay.line.starts_with("passage://")
            && relay
                .line
                .ends_with(&format!("@127.0.0.1:{}", relay.address.port()))
    );
    handshake(&relay.address);

    // The data directory and every file in it are private.
    assert_eq!(mode(&data), 0o700);
    for name in ["identity.der", "store.redb", "address", "stats.json"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }

    // `address` prints exactly the address, while the relay runs.
    assert_eq!(
        stdout(&run(&["address"], &data)),
        format!("{}\n", relay.line)
    );

    // `stats` reads the running relay's counts.
    let text = stdout(&run(&["stats"], &data));
    assert!(text.starts_with("relay running"), "{text}");
    assert!(text.contains("connections"), "{text}");
    let json = stdout(&run(&["stats", "--json"], &data));
    assert_eq!(json.lines().count(), 1, "{json}");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["running"], true);
    assert_eq!(value["source"], "relay");
    assert!(value["errors"]["AUTH"].is_u64(), "{json}");

    // A second relay on the same data directory is refused, with what to do.
    let second = run(&["serve", "--listen", "127.0.0.1:0"], &data);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("in use") && err.contains("another --data DIR"),
        "{err}"
    );
    assert!(second.stdout.is_empty());

    relay.signal(StopSignal::Term);
    let pin = *relay.address.pin();
    let (status, log) = relay.wait();
    assert!(status.success(), "exit {status:?}; stderr:\n{log}");
    assert!(log.contains("SIGTERM: shutting down, "), "{log}");
    assert!(log.contains("relay stopped"), "{log}");
    // No address of any kind in the log.
    assert!(
        !log.contains("127.0.0.1") && !log.contains("passage://"),
        "{log}"
    );

    // Stopped: `stats` reads the store itself, and says so.
    let text = stdout(&run(&["stats"], &data));
    assert!(text.starts_with("relay not running"), "{text}");

    // A restart reuses the key: same pin; SIGINT stops it cleanly too.
    let again = Relay::start(&data);
    assert_eq!(*again.address.pin(), pin);
    handshake(&again.address);
    again.signal(StopSignal::Interrupt);
    let (status, log) = again.wait();
    assert!(status.success(), "exit {status:?}; stderr:\n{log}");
    assert!(log.contains("loaded the relay key"), "{log}");
}

#[test]
fn bad_settings_stop_it_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    let out = run(&["serve", "--listen", "0.0.0.0:0"], &data);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--public-address"), "{err}");
    assert!(
        !data.exists(),
        "the data directory was created before the settings were checked"
    );

    let config = tmp.path().join("relay.toml");
    std::fs::write(&config, "queue_quota = 10\nretention_dayz = 3\n").unwrap();
    let out = run(&["serve", "--config", config.to_str().unwrap()], &data);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("retention_dayz"),
        "{err}"
    );

    std::fs::write(&config, "metrics_listen = \"0.0.0.0:9223\"\n").unwrap();
    let out = run(&["serve", "--config", config.to_str().unwrap()], &data);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));

    std::fs::write(&config, "password = \"\"\n").unwrap();
    let out = run(&["serve", "--config", config.to_str().unwrap()], &data);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));
    assert!(!data.exists());

    // `address` and `stats` on a directory no relay used.
    let out = run(&["address"], &data);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("passage-relay serve"));
    let out = run(&["stats"], &data);
    assert!(!out.status.success());

    // An unwritable data directory names the path and what to do.
    let blocked = tmp.path().join("file");
    std::fs::write(&blocked, "").unwrap();
    let out = run(&["serve", "--listen", "127.0.0.1:0"], &blocked.join("data"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot create data directory") && err.contains("--data DIR"),
        "{err}"
    );

    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("passage-relay {}\n", env!("CARGO_PKG_VERSION"))
    );
}
