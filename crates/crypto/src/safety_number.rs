//! Safety numbers: what two people compare (in person, or reading it aloud on a
//! call) to know that no one sits between them.
//!
//! Each side's identity keys are hashed into 30 digits by iterated SHA-256 (5,200
//! rounds, as Signal does with SHA-512, to make searching for a key with a matching
//! number costly); the two 30-digit halves are ordered so that both sides compute the
//! same 60 digits, shown as twelve groups of five.

use subtle::ConstantTimeEq;

use crate::identity::IdentityPublic;
use crate::primitives::sha256;

pub(crate) const LABEL: &[u8] = b"passage/1 safety number";

/// Hash rounds per half; each round costs one SHA-256, so a brute-force search for a
/// look-alike key costs 5,200 times more per try.
pub const SAFETY_NUMBER_ROUNDS: u32 = 5200;

/// Number of digits in a safety number.
pub const SAFETY_NUMBER_DIGITS: usize = 60;

/// A safety number: 60 decimal digits, the same on both sides of a contact.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SafetyNumber(String);

impl SafetyNumber {
    /// The safety number of the contact between `a` and `b` (order does not matter).
    pub fn new(a: &IdentityPublic, b: &IdentityPublic) -> Self {
        let mut halves = [half(a), half(b)];
        halves.sort();
        Self(halves.concat())
    }

    /// The 60 digits without spaces.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// Whether `typed` (digits, with any spaces) is this safety number; constant time
    /// over the digits.
    pub fn matches(&self, typed: &str) -> bool {
        let digits: Vec<u8> = typed.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits.len() == self.0.len() && bool::from(digits.ct_eq(self.0.as_bytes()))
    }
}

impl core::fmt::Display for SafetyNumber {
    /// Twelve groups of five digits separated by spaces.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, group) in self.0.as_bytes().chunks(5).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(core::str::from_utf8(group).map_err(|_| core::fmt::Error)?)?;
        }
        Ok(())
    }
}

fn half(identity: &IdentityPublic) -> String {
    let key = identity.to_bytes();
    let mut digest = sha256(&[LABEL, &key]);
    for _ in 1..SAFETY_NUMBER_ROUNDS {
        digest = sha256(&[&digest, &key]);
    }
    // Six groups of five digits, each from 5 bytes (40 bits) reduced mod 100,000,
    // as Signal's displayable fingerprint does.
    let mut out = String::with_capacity(30);
    for chunk in digest.chunks(5).take(6) {
        let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        out.push_str(&format!("{:05}", value % 100_000));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn same_on_both_sides_and_shown_in_groups() {
        let mut rng = crate::invitation::tests::rng();
        let a = Identity::generate(&mut rng).public();
        let b = Identity::generate(&mut rng).public();
        let n = SafetyNumber::new(&a, &b);
        assert_eq!(n, SafetyNumber::new(&b, &a));
        assert_eq!(n.digits().len(), SAFETY_NUMBER_DIGITS);
        assert!(n.digits().bytes().all(|c| c.is_ascii_digit()));
        let shown = n.to_string();
        assert_eq!(shown.split(' ').count(), 12);
        assert!(n.matches(&shown));
        let c = Identity::generate(&mut rng).public();
        assert_ne!(n, SafetyNumber::new(&a, &c));
        assert!(!n.matches(&shown[..shown.len() - 1]));
    }
}
