//! The classifier's view of a message: a bounded set of token hashes from
//! the subject, the sender's domain, the body text and the link domains
//! (SpamBayes-style: words of 3 to 24 characters, longer ones summarised
//! as `skip:` tokens). Hashes are FNV-1a, stable across runs, since the
//! tables are stored.

/// Distinct tokens taken from one message, at most.
pub const MAX_TOKENS: usize = 3000;

const MIN_WORD: usize = 3;
const MAX_WORD: usize = 24;

/// FNV-1a, 32 bits: a stable hash for stored tables. With 100,000 tokens
/// a collision or two is expected and harmless to a statistical filter.
pub fn hash(prefix: &str, word: &str) -> u32 {
    let mut h = Fnv::new(prefix);
    word.bytes().for_each(|b| h.byte(b));
    h.0
}

struct Fnv(u32);

impl Fnv {
    fn new(prefix: &str) -> Fnv {
        let mut h = Fnv(0x811c_9dc5);
        prefix.bytes().for_each(|b| h.byte(b));
        h.byte(0);
        h
    }

    fn byte(&mut self, b: u8) {
        self.0 ^= u32::from(b);
        self.0 = self.0.wrapping_mul(0x0100_0193);
    }
}

/// The hash of `word` lower-cased, without making the lower-case string
/// (the tokenizer's hot path: one per word of every message).
fn hash_lower(prefix: &str, word: &str) -> u32 {
    let mut h = Fnv::new(prefix);
    let mut buf = [0u8; 4];
    for c in word.chars() {
        if c.is_ascii() {
            h.byte(c.to_ascii_lowercase() as u8);
        } else {
            for l in c.to_lowercase() {
                l.encode_utf8(&mut buf).bytes().for_each(|b| h.byte(b));
            }
        }
    }
    h.0
}

/// Collects token hashes, sorted and distinct, up to [`MAX_TOKENS`].
#[derive(Default)]
pub struct Tokens {
    hashes: Vec<u32>,
    /// [`MAX_TOKENS`] distinct hashes are in: the rest is not read.
    saturated: bool,
}

impl Tokens {
    pub fn add(&mut self, prefix: &str, word: &str) {
        self.push(hash(prefix, word));
    }

    fn push(&mut self, h: u32) {
        if self.saturated {
            return;
        }
        self.hashes.push(h);
        // Dedup now and then, so a long message stays within bounds.
        if self.hashes.len() >= 4 * MAX_TOKENS {
            self.hashes.sort_unstable();
            self.hashes.dedup();
            self.saturated = self.hashes.len() >= MAX_TOKENS;
        }
    }

    /// The words of `text`, lower-cased, under `prefix`.
    pub fn add_text(&mut self, prefix: &str, text: &str) {
        for word in text.split(|c: char| !(c.is_alphanumeric() || "$'-!".contains(c))) {
            if self.saturated {
                return;
            }
            let word = word.trim_matches(|c| c == '\'' || c == '-');
            if word.len() < MIN_WORD {
                continue;
            }
            let chars = word.chars().count();
            if chars < MIN_WORD {
                continue;
            }
            if chars > MAX_WORD {
                // SpamBayes: a long word says little but its first letter
                // and rough length.
                let first = word.chars().next().unwrap_or('x');
                let mut summary = String::with_capacity(8);
                summary.extend(first.to_lowercase());
                summary.push_str(&(chars / 10 * 10).to_string());
                self.push(hash("skip", &summary));
            } else {
                self.push(hash_lower(prefix, word));
            }
        }
    }

    /// The distinct hashes, sorted; at most [`MAX_TOKENS`] of them.
    pub fn into_sorted(mut self) -> Vec<u32> {
        self.hashes.sort_unstable();
        self.hashes.dedup();
        self.hashes.truncate(MAX_TOKENS);
        self.hashes
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
        assert_eq!(hash_lower("", "ChEaP"), hash("", "cheap"));
        assert_eq!(hash_lower("", "ÉTÉ"), hash("", "été"));
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
