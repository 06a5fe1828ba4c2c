//! End-to-end tests live in `tests/tests/`; they start real `passage-relay`
//! processes and real clients on loopback once those exist.
#![forbid(unsafe_code)]
