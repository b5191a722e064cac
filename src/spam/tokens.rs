//! The classifier's view of a message: a bounded set of token hashes from
//! the subject, the sender's domain, the body text and the link domains
//! (SpamBayes-style: words of 3 to 24 characters, longer ones summarised
//! as `skip:` tokens). Hashes are FNV-1a, stable across runs, since the
//! tables are stored.

use std::collections::BTreeSet;

/// Distinct tokens taken from one message, at most.
pub const MAX_TOKENS: usize = 3000;

const MIN_WORD: usize = 3;
const MAX_WORD: usize = 24;

/// FNV-1a, 32 bits: a stable hash for stored tables. With 100,000 tokens
/// a collision or two is expected and harmless to a statistical filter.
pub fn hash(prefix: &str, word: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in prefix.bytes().chain([0u8]).chain(word.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Collects token hashes, sorted and distinct, up to [`MAX_TOKENS`].
#[derive(Default)]
pub struct Tokens {
    set: BTreeSet<u32>,
}

impl Tokens {
    pub fn add(&mut self, prefix: &str, word: &str) {
        if self.set.len() < MAX_TOKENS {
            self.set.insert(hash(prefix, word));
        }
    }

    /// The words of `text`, lower-cased, under `prefix`.
    pub fn add_text(&mut self, prefix: &str, text: &str) {
        for word in text.split(|c: char| !(c.is_alphanumeric() || "$'-!".contains(c))) {
            if self.set.len() >= MAX_TOKENS {
                return;
            }
            let word = word.trim_matches(|c| c == '\'' || c == '-');
            let chars = word.chars().count();
            if chars < MIN_WORD {
                continue;
            }
            if chars > MAX_WORD {
                // SpamBayes: a long word says little but its first letter
                // and rough length.
                let first = word.chars().next().unwrap_or('x').to_lowercase();
                self.add("skip", &format!("{first}{}", chars / 10 * 10));
                continue;
            }
            self.add(prefix, &word.to_lowercase());
        }
    }

    pub fn into_sorted(self) -> Vec<u32> {
        self.set.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_bounded_and_prefixed() {
        let mut t = Tokens::default();
        t.add_text("", "Cheap VIAGRA cheap, a b ok");
        t.add_text("s", "cheap");
        let long = "x".repeat(40);
        t.add_text("", &long);
        let got = t.into_sorted();
        assert!(got.contains(&hash("", "cheap")));
        assert!(got.contains(&hash("", "viagra")));
        assert!(got.contains(&hash("s", "cheap")));
        assert!(got.contains(&hash("skip", "x40")));
        assert!(!got.contains(&hash("", "ok")));
        assert_eq!(got.len(), 4);
        let mut many = Tokens::default();
        for n in 0..10_000 {
            many.add_text("", &format!("word{n}"));
        }
        assert_eq!(many.into_sorted().len(), MAX_TOKENS);
    }

    #[test]
    fn the_hash_is_stable() {
        assert_eq!(hash("", ""), 0x050c_5d1f);
    }
}
