//! `passage`: not built yet (see the client issue).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    eprintln!(
        "passage {}: the client is not built yet; this binary only reserves its name.",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(2)
}
