//! The statistical classifier: per-token spam and ham counts, Robinson's
//! token probabilities and Fisher's chi-square combining (as SpamBayes
//! and SpamAssassin's Bayes do). A table is a sorted vector of 12-octet
//! entries, so 100,000 tokens take 1.2 MB on disk and in memory, and it
//! remembers the digests of recently learnt messages so that learning the
//! same message twice counts once, and re-learning it as the other kind
//! moves it.

use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    hash: u32,
    spam: u32,
    ham: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenTable {
    pub spam_learned: u32,
    pub ham_learned: u32,
    entries: Vec<Entry>,
    /// (message digest, learnt as spam), oldest first.
    seen: VecDeque<(u64, bool)>,
}

/// Learnt messages remembered for de-duplication.
const MAX_SEEN: usize = 10_000;
/// Robinson's strength of the prior and the prior itself.
const STRENGTH: f64 = 1.0;
const PRIOR: f64 = 0.5;
/// Tokens nearer 0.5 than this say nothing and are left out.
const MIN_STRENGTH: f64 = 0.1;
/// The most telling tokens of a message that are combined.
const MAX_DISCRIMINATORS: usize = 150;
const MAGIC: &[u8; 8] = b"MRPBAYS1";

/// What learning a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learnt {
    New,
    /// It had been learnt as the other kind: moved.
    Relearnt,
    /// Already learnt as this kind: nothing changed.
    Already,
}

impl TokenTable {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Learns `tokens` (sorted, distinct) of the message `digest`.
    pub fn learn(&mut self, tokens: &[u32], digest: u64, spam: bool, max_tokens: usize) -> Learnt {
        let earlier = self.seen.iter().position(|(d, _)| *d == digest);
        let mut outcome = Learnt::New;
        if let Some(at) = earlier {
            let was_spam = self.seen.get(at).map(|(_, s)| *s).unwrap_or(spam);
            if was_spam == spam {
                return Learnt::Already;
            }
            self.unlearn(tokens, was_spam);
            self.seen.remove(at);
            outcome = Learnt::Relearnt;
        }
        self.merge(tokens, spam);
        if spam {
            self.spam_learned = self.spam_learned.saturating_add(1);
        } else {
            self.ham_learned = self.ham_learned.saturating_add(1);
        }
        self.seen.push_back((digest, spam));
        while self.seen.len() > MAX_SEEN {
            self.seen.pop_front();
        }
        if self.entries.len() > max_tokens {
            self.prune(max_tokens);
        }
        outcome
    }

    fn unlearn(&mut self, tokens: &[u32], spam: bool) {
        for t in tokens {
            if let Ok(i) = self.entries.binary_search_by_key(t, |e| e.hash)
                && let Some(e) = self.entries.get_mut(i)
            {
                if spam {
                    e.spam = e.spam.saturating_sub(1);
                } else {
                    e.ham = e.ham.saturating_sub(1);
                }
            }
        }
        self.entries.retain(|e| e.spam > 0 || e.ham > 0);
        if spam {
            self.spam_learned = self.spam_learned.saturating_sub(1);
        } else {
            self.ham_learned = self.ham_learned.saturating_sub(1);
        }
    }

    /// Adds one to every token's count: a merge of two sorted lists.
    fn merge(&mut self, tokens: &[u32], spam: bool) {
        let mut out = Vec::with_capacity(self.entries.len() + tokens.len());
        let (mut a, mut b) = (self.entries.iter().peekable(), tokens.iter().peekable());
        let fresh = |hash: u32| Entry {
            hash,
            spam: u32::from(spam),
            ham: u32::from(!spam),
        };
        loop {
            match (a.peek(), b.peek()) {
                (Some(e), Some(&&t)) if e.hash == t => {
                    let mut e = **e;
                    if spam {
                        e.spam = e.spam.saturating_add(1);
                    } else {
                        e.ham = e.ham.saturating_add(1);
                    }
                    out.push(e);
                    a.next();
                    b.next();
                }
                (Some(e), Some(&&t)) if e.hash < t => {
                    out.push(**e);
                    a.next();
                }
                (_, Some(&&t)) => {
                    out.push(fresh(t));
                    b.next();
                }
                (Some(e), None) => {
                    out.push(**e);
                    a.next();
                }
                (None, None) => break,
            }
        }
        self.entries = out;
    }

    /// Forgets the least seen tokens until a tenth of the room is free.
    fn prune(&mut self, max_tokens: usize) {
        let keep = max_tokens - max_tokens / 10;
        let mut totals: Vec<u64> = self
            .entries
            .iter()
            .map(|e| u64::from(e.spam) + u64::from(e.ham))
            .collect();
        let cut = self.entries.len().saturating_sub(keep);
        if cut == 0 {
            return;
        }
        let (_, nth, _) = totals.select_nth_unstable(cut - 1);
        let threshold = *nth;
        let mut dropped = 0;
        self.entries.retain(|e| {
            let total = u64::from(e.spam) + u64::from(e.ham);
            if total <= threshold && dropped < cut {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }

    /// Whether this table has learnt enough of both kinds to judge.
    pub fn ready(&self, min_learns: u32) -> bool {
        self.spam_learned >= min_learns && self.ham_learned >= min_learns
    }

    /// The probability (0..1) that a message with `tokens` is spam.
    pub fn classify(&self, tokens: &[u32]) -> f64 {
        let (ns, nh) = (
            f64::from(self.spam_learned.max(1)),
            f64::from(self.ham_learned.max(1)),
        );
        let mut probs: Vec<f64> = Vec::new();
        for t in tokens {
            let Ok(i) = self.entries.binary_search_by_key(t, |e| e.hash) else {
                continue;
            };
            let Some(e) = self.entries.get(i) else {
                continue;
            };
            let (s, h) = (f64::from(e.spam), f64::from(e.ham));
            let ps = (s / ns).min(1.0);
            let ph = (h / nh).min(1.0);
            if ps + ph == 0.0 {
                continue;
            }
            let p = ps / (ps + ph);
            let n = s + h;
            let f = (STRENGTH * PRIOR + n * p) / (STRENGTH + n);
            if (f - 0.5).abs() >= MIN_STRENGTH {
                probs.push(f.clamp(0.001, 0.999));
            }
        }
        if probs.is_empty() {
            return 0.5;
        }
        if probs.len() > MAX_DISCRIMINATORS {
            // Only the most telling ones; their order does not matter.
            probs.select_nth_unstable_by(MAX_DISCRIMINATORS - 1, |a, b| {
                (b - 0.5)
                    .abs()
                    .partial_cmp(&(a - 0.5).abs())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            probs.truncate(MAX_DISCRIMINATORS);
        }
        let n = probs.len() as f64;
        let ln_ham = ln_product(probs.iter().copied());
        let ln_spam = ln_product(probs.iter().map(|p| 1.0 - p));
        let h = chi2q(-2.0 * ln_ham, 2.0 * n);
        let s = chi2q(-2.0 * ln_spam, 2.0 * n);
        ((1.0 + h - s) / 2.0).clamp(0.0, 1.0)
    }

    /// The stored form: magic, counts, entries, learnt digests.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.entries.len() * 12 + self.seen.len() * 9);
        out.extend_from_slice(MAGIC);
        for n in [
            self.spam_learned,
            self.ham_learned,
            self.entries.len() as u32,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for e in &self.entries {
            for n in [e.hash, e.spam, e.ham] {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        out.extend_from_slice(&(self.seen.len() as u32).to_le_bytes());
        for (digest, spam) in &self.seen {
            out.extend_from_slice(&digest.to_le_bytes());
            out.push(u8::from(*spam));
        }
        out
    }

    /// Reads what [`Self::encode`] wrote; `None` for anything else (the
    /// caller starts a fresh table rather than trusting damaged counts).
    pub fn decode(bytes: &[u8]) -> Option<TokenTable> {
        let mut r = Reader(bytes);
        if r.take(8)? != MAGIC {
            return None;
        }
        let spam_learned = r.u32()?;
        let ham_learned = r.u32()?;
        let count = r.u32()? as usize;
        if count > r.0.len() / 12 {
            return None;
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let e = Entry {
                hash: r.u32()?,
                spam: r.u32()?,
                ham: r.u32()?,
            };
            if entries.last().is_some_and(|l: &Entry| l.hash >= e.hash) {
                return None; // not sorted: not ours
            }
            entries.push(e);
        }
        let seen_count = (r.u32()? as usize).min(MAX_SEEN);
        let mut seen = VecDeque::with_capacity(seen_count);
        for _ in 0..seen_count {
            let digest = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
            let spam = *r.take(1)?.first()? == 1;
            seen.push_back((digest, spam));
        }
        Some(TokenTable {
            spam_learned,
            ham_learned,
            entries,
            seen,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// ln of the product of `factors` (each in 0.001..1), by multiplying and
/// rescaling instead of taking a logarithm per factor (SpamBayes' trick).
fn ln_product(factors: impl Iterator<Item = f64>) -> f64 {
    const SCALE: f64 = 1e100;
    let mut mantissa = 1.0f64;
    let mut scaled = 0i32;
    for f in factors {
        mantissa *= f;
        if mantissa < 1e-100 {
            mantissa *= SCALE;
            scaled += 1;
        }
    }
    mantissa.ln() - f64::from(scaled) * SCALE.ln()
}

/// The chi-square survival function for even degrees of freedom `v`
/// (SpamBayes' chi2Q): the probability of a value at least `x2`.
fn chi2q(x2: f64, v: f64) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    let half = (v / 2.0) as usize;
    for i in 1..half {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(words: &[&str]) -> Vec<u32> {
        let mut t = crate::spam::tokens::Tokens::default();
        for w in words {
            t.add("", w);
        }
        t.into_sorted()
    }

    fn trained() -> TokenTable {
        let mut table = TokenTable::default();
        for n in 0..20u64 {
            let spam = tokens(&["viagra", "cheap", "winner", &format!("s{n}")]);
            let ham = tokens(&["meeting", "agenda", "thanks", &format!("h{n}")]);
            table.learn(&spam, n * 2, true, 10_000);
            table.learn(&ham, n * 2 + 1, false, 10_000);
        }
        table
    }

    #[test]
    fn learns_and_tells_spam_from_ham() {
        let table = trained();
        assert!(table.ready(10));
        let spam = table.classify(&tokens(&["cheap", "viagra", "now"]));
        let ham = table.classify(&tokens(&["agenda", "for", "meeting"]));
        let unknown = table.classify(&tokens(&["zebra"]));
        assert!(spam > 0.95, "{spam}");
        assert!(ham < 0.05, "{ham}");
        assert!((unknown - 0.5).abs() < 1e-9, "{unknown}");
    }

    #[test]
    fn the_product_of_logs_matches_the_sum() {
        let factors: Vec<f64> = (1..400).map(|i| 0.001 + (i as f64 % 7.0) / 8.0).collect();
        let direct: f64 = factors.iter().map(|f| f.ln()).sum();
        assert!((ln_product(factors.into_iter()) - direct).abs() < 1e-6);
    }

    #[test]
    fn the_same_message_counts_once_and_can_be_relearnt() {
        let mut table = TokenTable::default();
        let t = tokens(&["alpha", "beta"]);
        assert_eq!(table.learn(&t, 7, true, 1000), Learnt::New);
        assert_eq!(table.learn(&t, 7, true, 1000), Learnt::Already);
        assert_eq!(table.spam_learned, 1);
        assert_eq!(table.learn(&t, 7, false, 1000), Learnt::Relearnt);
        assert_eq!((table.spam_learned, table.ham_learned), (0, 1));
        assert!(table.entries.iter().all(|e| e.spam == 0 && e.ham == 1));
    }

    #[test]
    fn the_table_is_bounded_and_round_trips() {
        let mut table = TokenTable::default();
        for n in 0..50u32 {
            let words: Vec<String> = (0..100).map(|i| format!("w{n}x{i}")).collect();
            let refs: Vec<&str> = words.iter().map(String::as_str).collect();
            table.learn(&tokens(&refs), u64::from(n), n % 2 == 0, 1000);
            assert!(table.len() <= 1000, "{}", table.len());
        }
        let bytes = table.encode();
        assert_eq!(TokenTable::decode(&bytes), Some(table.clone()));
        // Damage is refused, not trusted.
        assert_eq!(TokenTable::decode(&bytes[..bytes.len() / 2]), None);
        assert_eq!(TokenTable::decode(b"garbage"), None);
        let mut lying = bytes.clone();
        lying[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(TokenTable::decode(&lying), None);
    }
}
