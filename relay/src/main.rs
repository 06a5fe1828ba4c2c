//! `passage-relay`: not built yet (see the relay issue).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    eprintln!(
        "passage-relay {}: the relay service is not built yet; this binary only reserves its name.",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(2)
}
