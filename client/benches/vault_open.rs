//! Vault timings with the format's real Argon2id cost: open with the real, the duress
//! and a wrong passphrase (they must not be told apart by time), the panic wipe, and
//! the compaction that makes expired messages unrecoverable.
//!
//! `cargo bench -p passage-client --bench vault_open` (a plain `main`, no harness).
//! Set `PASSAGE_BENCH_DIR` to measure on another file system (default: the system's
//! temporary directory). Every figure is over a bounded number of runs; the vaults
//! are copied from one template before each run, outside the timed part.

// A benchmark stops at the first failure: there is no caller to hand an error to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use passage_client::vault::{Credentials, Vault};

const REAL: &str = "bench real passphrase";
const DURESS: &str = "bench duress passphrase";
const WRONG: &str = "bench wrong passphrase";
/// Runs per kind of open.
const OPEN_RUNS: usize = 10;
/// Runs of the panic wipe and of the compaction.
const OTHER_RUNS: usize = 5;
/// Messages in the disappearing-messages figure.
const MESSAGES: u32 = 3000;

fn creds(passphrase: &str) -> Credentials {
    Credentials::new(passphrase)
}

/// A directory removed on drop.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn new(base: &Path, name: &str) -> Self {
        let path = base.join(format!("passage-vault-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the bench directory");
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the template") {
        let entry = entry.expect("read the template");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy the template");
    }
    // The copy's bytes reach the disk before the timed part, not during it.
    for entry in std::fs::read_dir(to).expect("read the copy") {
        std::fs::File::open(entry.expect("read the copy").path())
            .and_then(|f| f.sync_all())
            .expect("sync the copy");
    }
}

#[derive(Debug)]
struct Stats {
    mean: f64,
    sd: f64,
    min: f64,
    max: f64,
}

fn stats(samples: &[Duration]) -> Stats {
    let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let n = ms.len() as f64;
    let mean = ms.iter().sum::<f64>() / n;
    let var = ms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Stats {
        mean,
        sd: var.sqrt(),
        min: ms.iter().copied().fold(f64::INFINITY, f64::min),
        max: ms.iter().copied().fold(0.0, f64::max),
    }
}

fn print_row(label: &str, samples: &[Duration], reference: Option<f64>) -> f64 {
    let s = stats(samples);
    let ratio = reference.map_or(String::new(), |r| format!("  ×{:.3}", s.mean / r));
    println!(
        "{label:<34} n={:<3} mean {:>8.1} ms  sd {:>6.1}  min {:>8.1}  max {:>8.1}{ratio}",
        samples.len(),
        s.mean,
        s.sd,
        s.min,
        s.max
    );
    s.mean
}

/// A lived-in vault: real history, a duress passphrase, a decoy with history of its own.
fn template(dir: &Path) {
    let mut vault = Vault::create(dir, &creds(REAL)).expect("create");
    for i in 0..300u32 {
        vault
            .put(format!("message/{i:06}"), vec![b'r'; 400])
            .expect("put");
    }
    vault.set_duress(&creds(DURESS)).expect("set_duress");
    vault.close();
    let mut decoy = Vault::open_decoy(dir, &creds(REAL)).expect("open_decoy");
    for i in 0..300u32 {
        decoy
            .put(format!("message/{i:06}"), vec![b'd'; 400])
            .expect("put");
    }
    decoy.close();
}

fn main() {
    let base = std::env::var_os("PASSAGE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    println!("vault bench in {}", base.display());
    let tpl = Scratch::new(&base, "template");
    template(&tpl.0);
    let work = Scratch::new(&base, "work");
    let run_dir = work.0.join("vault");

    // Opens, interleaved round by round so that drift hits every kind alike.
    let (mut real, mut duress, mut decoy_after, mut wrong) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..OPEN_RUNS {
        copy_dir(&tpl.0, &run_dir);
        let t = Instant::now();
        let vault = Vault::open(&run_dir, &creds(REAL)).expect("real open");
        real.push(t.elapsed());
        vault.close();

        let t = Instant::now();
        let result = Vault::open(&run_dir, &creds(WRONG));
        wrong.push(t.elapsed());
        assert!(result.is_err(), "a wrong passphrase opened the vault");

        let t = Instant::now();
        let vault = Vault::open(&run_dir, &creds(DURESS)).expect("duress open");
        duress.push(t.elapsed());
        vault.close();

        let t = Instant::now();
        let vault = Vault::open(&run_dir, &creds(DURESS)).expect("decoy open");
        decoy_after.push(t.elapsed());
        vault.close();
        assert!(
            Vault::open(&run_dir, &creds(REAL)).is_err(),
            "the real profile survived the duress open"
        );
    }
    println!("Vault::open, real Argon2id cost, 300 records per profile:");
    let reference = print_row("real passphrase", &real, None);
    print_row("duress passphrase (the switch)", &duress, Some(reference));
    print_row(
        "duress passphrase, later opens",
        &decoy_after,
        Some(reference),
    );
    print_row("wrong passphrase", &wrong, Some(reference));

    // The panic wipe of the same vault, and of one with a 4 MiB-plus history.
    let mut small = Vec::new();
    let mut large = Vec::new();
    let big = Scratch::new(&base, "big");
    {
        copy_dir(&tpl.0, &big.0);
        let mut vault = Vault::open(&big.0, &creds(REAL)).expect("open");
        for i in 0..2000u32 {
            vault
                .put(format!("voice/{i:06}"), vec![b'v'; 2000])
                .expect("put");
        }
        vault.close();
    }
    for _ in 0..OTHER_RUNS {
        copy_dir(&tpl.0, &run_dir);
        let t = Instant::now();
        Vault::panic(&run_dir).expect("panic");
        small.push(t.elapsed());
        copy_dir(&big.0, &run_dir);
        let t = Instant::now();
        Vault::panic(&run_dir).expect("panic");
        large.push(t.elapsed());
        assert!(!run_dir.exists());
    }
    println!("Vault::panic (no passphrase):");
    print_row("600 records", &small, None);
    print_row("+ 2000 × 2 KB values", &large, None);

    // Disappearing messages: the agent deletes what expired, then compacts.
    let msgs = Scratch::new(&base, "messages");
    {
        let mut vault = Vault::create(&msgs.0, &creds(REAL)).expect("create");
        for i in 0..MESSAGES {
            vault
                .put(format!("message/{i:06}"), vec![b'm'; 300])
                .expect("put");
        }
        vault.close();
    }
    let mut compactions = Vec::new();
    let mut deletes = Vec::new();
    for _ in 0..OTHER_RUNS {
        copy_dir(&msgs.0, &run_dir);
        let mut vault = Vault::open(&run_dir, &creds(REAL)).expect("open");
        let t = Instant::now();
        vault
            .transaction(|tx| {
                for i in 0..MESSAGES / 10 {
                    tx.delete(format!("message/{i:06}"))?;
                }
                Ok::<_, passage_client::vault::WriteError>(())
            })
            .expect("delete");
        deletes.push(t.elapsed());
        let t = Instant::now();
        vault.compact().expect("compact");
        compactions.push(t.elapsed());
        vault.close();
    }
    println!("Disappearing messages ({MESSAGES} messages of 300 bytes, 10 % expired):");
    print_row("delete the expired (1 transaction)", &deletes, None);
    print_row("compact", &compactions, None);
    let _ = std::fs::remove_dir_all(&run_dir);
}
