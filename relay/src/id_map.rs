//! Maps and sets keyed by what the relay made itself: queue ids (random, from its
//! CSPRNG at `NEW`), sequence numbers and write tokens (counters). They hash with
//! FxHash instead of the standard library's SipHash.
//!
//! SipHash's random key protects a map against keys chosen to collide. No key here is
//! chosen by a client: a queue id enters a map only once the relay created it (at
//! `NEW`, or a `SUB` authenticated for an existing queue), and a client can only look
//! keys up, which inserts nothing and cannot lengthen anyone else's probe (the stored
//! keys are secret random bytes, so their hashes are spread whatever the hash function).
//! On such keys FxHash spreads as well and costs a fraction: SipHash was about 3 % of
//! the relay's CPU per message. A map whose keys a client picks must not use these.

use std::collections::{HashMap, HashSet};

use rustc_hash::FxBuildHasher;

/// A map keyed by relay-made ids (see the module documentation).
pub type IdMap<K, V> = HashMap<K, V, FxBuildHasher>;

/// A set of relay-made ids (see the module documentation).
pub type IdSet<K> = HashSet<K, FxBuildHasher>;
