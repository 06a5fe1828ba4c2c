//! Crash safety: a child process (this test binary, re-executed) commits numbered
//! records and prints each number once its commit has returned; the parent kills it
//! with SIGKILL at a random moment, reopens, and checks that every printed number is
//! there. The child also rewrites a large hot value and compacts every 16 records, and
//! every other kill is aimed at the start of a compaction (new segment, key-slot
//! rewrite, old segment removal).
//!
//! SIGKILL loses nothing the kernel already accepted, so this tests the vault's own
//! ordering (what is acknowledged when), not the disk's behaviour on power loss.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const CHILD_DIR: &str = "PASSAGE_VAULT_TEST_CRASH_DIR";
const CHILD_START: &str = "PASSAGE_VAULT_TEST_CRASH_START";
const ROUNDS: usize = 10;
/// Upper bound on one round, so a hung child cannot hang the suite.
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);

fn numbered(i: u64) -> Vec<u8> {
    i.to_be_bytes().repeat(1 + (i % 7) as usize)
}

/// The child's body; does nothing when run as an ordinary test.
#[test]
fn crash_child() {
    let (Ok(dir), Ok(start)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_START)) else {
        return;
    };
    let start: u64 = start.parse().unwrap();
    let mut vault = open(Path::new(&dir));
    for i in start.. {
        vault.put(format!("n/{i:010}"), numbered(i)).unwrap();
        println!("committed {i}");
        vault.put("hot", vec![(i % 251) as u8; 3000]).unwrap();
        if i % 16 == 15 {
            println!("compacting");
            vault.compact().unwrap();
        }
    }
}

#[test]
fn killed_writer_loses_nothing_it_acknowledged() {
    let dir = TempDir::new();
    create(dir.path()).close();
    let exe = std::env::current_exe().unwrap();
    let mut next = 0u64;
    let mut compactions_interrupted = 0;
    for round in 0..ROUNDS {
        let kill_after = 20 + u64::from(crate::vault::fsio::random_array::<1>().unwrap()[0]);
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "vault::tests::crash::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_START, next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let started = Instant::now();
        let mut acknowledged = Vec::new();
        let mut killed = false;
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("committed ") {
                acknowledged.push(n.parse::<u64>().unwrap());
            }
            // Odd rounds kill just after an explicit compaction starts, even rounds
            // after a number of commits (wherever the writer is then).
            let due =
                acknowledged.len() as u64 >= kill_after && (round % 2 == 0 || line == "compacting");
            if !killed && (due || started.elapsed() > ROUND_TIMEOUT) {
                child.kill().unwrap();
                killed = true;
            }
        }
        child.wait().unwrap();
        assert!(killed, "round {round}: the child stopped on its own");
        assert!(
            !acknowledged.is_empty(),
            "round {round}: the child committed nothing"
        );

        // More than the usual files: the kill came in the middle of a compaction.
        if snapshot(dir.path()).len() > FILE_COUNT {
            compactions_interrupted += 1;
        }
        let vault = open(dir.path());
        for &i in &acknowledged {
            assert_eq!(
                value(&vault, &format!("n/{i:010}")),
                Some(numbered(i)),
                "round {round}: {i} lost"
            );
        }
        // Nothing beyond the one commit that may have been in flight.
        let last = *acknowledged.last().unwrap();
        let present = vault.keys_with_prefix("n/").len() as u64;
        assert!(
            present == last + 1 || present == last + 2,
            "round {round}: {present} records after {last}"
        );
        assert!(vault.contains_key("hot"));
        next = present;
        vault.close();
        // Only the usual files (a leftover temp file would show here).
        assert_eq!(snapshot(dir.path()).len(), FILE_COUNT, "round {round}");
    }
    println!("{ROUNDS} kills, {next} records, {compactions_interrupted} kills mid-compaction");
}
