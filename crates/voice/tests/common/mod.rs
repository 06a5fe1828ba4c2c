//! The test signals and measures live in the crate (`passage_voice::signal`), shared
//! with the end-to-end tests and the benchmark.
#![allow(unused_imports)]

pub use passage_voice::signal::*;
