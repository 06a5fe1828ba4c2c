//! The whole `passage` command, as someone watching the screen would time it: opening
//! the profile with the real, the duress and a wrong passphrase (`passage contacts`)
//! must not be told apart, and `passage panic` must finish well under a second.
//!
//! `cargo bench -p passage-cli --bench unlock` (a plain `main`, no harness). Each
//! run starts from a fresh copy of one template vault (the duress passphrase destroys
//! the real profile), copied outside the timed part; kinds are interleaved so that a
//! change of machine load hits them alike. Bounded: `RUNS` runs per kind.

// A benchmark stops at the first failure: there is no caller to hand an error to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REAL: &str = "unlock bench real passphrase";
const DURESS: &str = "unlock bench duress passphrase";
const WRONG: &str = "unlock bench wrong passphrase";
const RELAY: &str = "passage://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@127.0.0.1:9";
const RUNS: usize = 10;

fn passage() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_passage"));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn time_contacts(dir: &Path, passphrase: &str) -> (Duration, bool) {
    let start = Instant::now();
    let status = passage()
        .arg("--vault")
        .arg(dir)
        .arg("contacts")
        .env("PASSAGE_PASSPHRASE", passphrase)
        .status()
        .unwrap();
    (start.elapsed(), status.success())
}

fn stats(samples: &[Duration]) -> (f64, f64) {
    let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let var = ms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (ms.len() as f64 - 1.0);
    (mean, var.sqrt())
}

fn main() {
    let base: PathBuf = std::env::var_os("PASSAGE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("passage-unlock-bench-{}", std::process::id()));
    let template = base.join("template");
    let work = base.join("work");
    std::fs::create_dir_all(&base).unwrap();
    let created = passage()
        .args(["--vault"])
        .arg(&template)
        .args(["init", "--relay", RELAY])
        .env("PASSAGE_PASSPHRASE", REAL)
        .env("PASSAGE_DURESS_PASSPHRASE", DURESS)
        .status()
        .unwrap();
    assert!(created.success(), "passage init failed");

    let kinds = [
        ("real", REAL, true),
        ("duress", DURESS, true),
        ("wrong", WRONG, false),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for _ in 0..RUNS {
        for (i, (name, passphrase, should_open)) in kinds.iter().enumerate() {
            copy_dir(&template, &work);
            let (elapsed, opened) = time_contacts(&work, passphrase);
            assert_eq!(opened, *should_open, "{name} passphrase");
            samples[i].push(elapsed);
        }
    }
    let (real_mean, _) = stats(&samples[0]);
    println!("passage contacts, whole command, {RUNS} runs each (mean ± sd, ratio to real):");
    for ((name, _, _), runs) in kinds.iter().zip(&samples) {
        let (mean, sd) = stats(runs);
        println!(
            "  {name:<7} {mean:8.1} ms ± {sd:6.1}   {:.3}",
            mean / real_mean
        );
    }

    let mut wipes = Vec::new();
    for _ in 0..RUNS {
        copy_dir(&template, &work);
        let start = Instant::now();
        let status = passage()
            .arg("--vault")
            .arg(&work)
            .arg("panic")
            .status()
            .unwrap();
        wipes.push(start.elapsed());
        assert!(status.success() && !work.exists(), "panic left the vault");
    }
    let (mean, sd) = stats(&wipes);
    println!("passage panic, whole command, {RUNS} runs: {mean:.1} ms ± {sd:.1}");
    let _ = std::fs::remove_dir_all(&base);
}
