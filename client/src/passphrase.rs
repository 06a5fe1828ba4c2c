//! How hard a new passphrase is to guess, before it is made to protect a vault.
//!
//! ```text
//!  new passphrase ──zxcvbn (dictionaries, names, dates, keyboard walks, repeats)──►
//!      estimated guesses ──► Strength::{TooWeak, Weak, Strong}
//! ```
//!
//! Whoever holds a copy of the key-slot file can try passphrases offline, at the cost of
//! one Argon2id run (128 MiB) each. That cost buys a few hundred guesses per second per
//! machine, not billions: it helps a passphrase that is already hard to guess, and
//! cannot save one that is easy. A 6-digit PIN (10^6 guesses) falls in hours on one
//! machine; four random words from a large list (about 10^17) do not fall at all. A PIN
//! is only safe together with a platform secret that a hardware keystore holds and rate
//! limits (see [`crate::vault::PlatformSecret`]), which the CLI does not have.
//!
//! ## Quick start
//!
//! ```
//! use passage_client::passphrase::{Strength, assess};
//!
//! assert_eq!(assess(b"123456", &[]).strength(), Strength::TooWeak);
//! assert_eq!(
//!     assess(b"marigold trampoline gutter asleep", &[]).strength(),
//!     Strength::Strong
//! );
//! ```
//!
//! The estimator copies parts of the passphrase into its own buffers, which are freed
//! without being wiped; assess in a short-lived process (the CLI) or accept that the
//! heap of the process that chose the passphrase may hold fragments of it until reused.

use zeroize::Zeroizing;

/// What the estimator concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strength {
    /// Falls to an offline search in well under a day even at Argon2id's cost (zxcvbn
    /// score 0–1: under 10^6 guesses). Refused unless the user insists.
    TooWeak,
    /// Guessable with effort (score 2: under 10^8 guesses): accepted with a warning.
    Weak,
    /// Score 3 or 4.
    Strong,
}

/// The estimate for one passphrase. Holds no part of the passphrase.
#[derive(Debug, Clone)]
pub struct Assessment {
    score: u8,
    guesses_log10: f64,
    warning: Option<String>,
    suggestions: Vec<String>,
}

impl Assessment {
    /// The verdict (see [`Strength`]).
    pub fn strength(&self) -> Strength {
        match self.score {
            0 | 1 => Strength::TooWeak,
            2 => Strength::Weak,
            _ => Strength::Strong,
        }
    }

    /// zxcvbn's score, 0 (trivial) to 4 (very hard).
    pub fn score(&self) -> u8 {
        self.score
    }

    /// log10 of the estimated number of guesses.
    pub fn guesses_log10(&self) -> f64 {
        self.guesses_log10
    }

    /// Why it is weak, if the estimator says (e.g. "This is a top-10 common password").
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// How to do better.
    pub fn suggestions(&self) -> &[String] {
        &self.suggestions
    }

    /// One sentence for a person: what is wrong and what to choose instead.
    pub fn advice(&self) -> String {
        let mut out = match (&self.warning, self.strength()) {
            (Some(warning), _) => format!("{warning}."),
            (None, Strength::Strong) => String::from("It is hard to guess."),
            (None, _) => String::from("It is easy to guess."),
        };
        out.push_str(
            " Four or more random words, or a long sentence only you would write, are both \
             easy to remember and hard to guess.",
        );
        out
    }
}

/// Estimates how hard `passphrase` is to guess. `context` lists words an attacker
/// would try first (a contact's name, the relay's host): matches with them count as
/// guessable. Only the first 100 characters are looked at (the estimator's own bound).
pub fn assess(passphrase: &[u8], context: &[&str]) -> Assessment {
    let text = Zeroizing::new(String::from_utf8_lossy(passphrase).into_owned());
    let entropy = zxcvbn::zxcvbn(&text, context);
    let feedback = entropy.feedback();
    Assessment {
        score: u8::from(entropy.score()),
        guesses_log10: entropy.guesses_log10(),
        warning: feedback
            .and_then(|f| f.warning())
            .map(|w| w.to_string().trim_end_matches('.').to_owned()),
        suggestions: feedback
            .map(|f| f.suggestions().iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_common_passwords_are_too_weak() {
        for weak in [
            "123456",
            "000000",
            "482915",
            "password",
            "passw0rd",
            "qwertyuiop",
            "letmein1",
        ] {
            assert_eq!(
                assess(weak.as_bytes(), &[]).strength(),
                Strength::TooWeak,
                "{weak}"
            );
        }
    }

    #[test]
    fn random_words_are_strong() {
        for strong in [
            "marigold trampoline gutter asleep",
            "marigold-trampoline-5519",
            "correct horse battery staple, seven",
        ] {
            assert_eq!(
                assess(strong.as_bytes(), &[]).strength(),
                Strength::Strong,
                "{strong}"
            );
        }
    }

    #[test]
    fn context_words_count_as_guessable() {
        let alone = assess(b"yusufamal", &[]);
        let known = assess(b"yusufamal", &["yusuf", "amal"]);
        assert!(known.guesses_log10() < alone.guesses_log10());
    }

    #[test]
    fn advice_says_what_to_choose() {
        let advice = assess(b"password", &[]).advice();
        assert!(advice.contains("random words"), "{advice}");
    }
}
