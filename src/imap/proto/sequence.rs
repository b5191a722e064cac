//! Sequence sets (RFC 3501 §9 `sequence-set`): message sequence numbers
//! or UIDs, with `*` meaning the largest one in use.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    Value(u32),
    /// `*`: the largest number in use.
    Star,
}

impl SeqNum {
    fn resolve(self, star: u32) -> u32 {
        match self {
            SeqNum::Value(n) => n,
            SeqNum::Star => star,
        }
    }
}

/// A non-empty list of ranges (a single number is a range of one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqSet(pub Vec<(SeqNum, SeqNum)>);

impl SeqSet {
    /// SEARCHRES's `$` (RFC 5182): the saved search result, resolved by
    /// the session. Represented as the empty set, which `parse` never
    /// produces.
    pub fn saved() -> SeqSet {
        SeqSet(Vec::new())
    }

    pub fn is_saved(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `1,3:5,7:*`; `None` when malformed (0 is not a valid number).
    pub fn parse(text: &str) -> Option<SeqSet> {
        let mut ranges = Vec::new();
        for item in text.split(',') {
            let (a, b) = match item.split_once(':') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let n = num(item)?;
                    (n, n)
                }
            };
            ranges.push((a, b));
        }
        (!ranges.is_empty()).then_some(SeqSet(ranges))
    }

    /// Whether `n` is in the set, `*` standing for `star`. `3:1` equals
    /// `1:3` (RFC 3501 §9).
    pub fn contains(&self, n: u32, star: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let (a, b) = (a.resolve(star), b.resolve(star));
            a.min(b) <= n && n <= a.max(b)
        })
    }

    /// The set in compact `a:b,c` form from a sorted list of numbers.
    pub fn compact(numbers: &[u32]) -> String {
        let mut out = String::new();
        let mut iter = numbers.iter().copied().peekable();
        while let Some(first) = iter.next() {
            let mut last = first;
            while iter.peek() == Some(&last.wrapping_add(1)) {
                last = last.wrapping_add(1);
                iter.next();
            }
            if !out.is_empty() {
                out.push(',');
            }
            if first == last {
                out.push_str(&first.to_string());
            } else {
                out.push_str(&format!("{first}:{last}"));
            }
        }
        out
    }
}

fn num(text: &str) -> Option<SeqNum> {
    if text == "*" {
        return Some(SeqNum::Star);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match text.parse::<u32>().ok()? {
        0 => None,
        n => Some(SeqNum::Value(n)),
    }
}

impl fmt::Display for SeqSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let show = |n: &SeqNum| match n {
                SeqNum::Value(v) => v.to_string(),
                SeqNum::Star => "*".into(),
            };
            if a == b {
                f.write_str(&show(a))?;
            } else {
                write!(f, "{}:{}", show(a), show(b))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contains() {
        let s = SeqSet::parse("1,3:5,9:*").unwrap();
        let inside: Vec<u32> = (1..=12).filter(|&n| s.contains(n, 12)).collect();
        assert_eq!(inside, vec![1, 3, 4, 5, 9, 10, 11, 12]);
        let rev = SeqSet::parse("5:3").unwrap();
        assert!(rev.contains(4, 10));
        // n:* with n above the largest still names the largest (RFC 3501 §6.4.8).
        assert!(SeqSet::parse("20:*").unwrap().contains(7, 7));
        for bad in ["", "0", "1,", "a", "1:", ":2", "1::2", "-1", "99999999999"] {
            assert_eq!(SeqSet::parse(bad), None, "{bad}");
        }
        assert_eq!(s.to_string(), "1,3:5,9:*");
    }

    #[test]
    fn compact_ranges() {
        assert_eq!(SeqSet::compact(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(SeqSet::compact(&[]), "");
        assert_eq!(SeqSet::compact(&[u32::MAX]), u32::MAX.to_string());
    }
}
