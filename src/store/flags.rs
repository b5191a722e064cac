//! Message flags as stored: system flags in their canonical RFC 3501
//! spelling, keywords as first given, no duplicates (flags compare
//! case-insensitively).

use super::FlagOp;

pub(crate) const SEEN: &str = "\\Seen";

/// The system flags a client may set. `\Recent` is per-session state that
/// the IMAP layer computes, so the store never keeps it.
const SYSTEM: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// Canonical spelling of a storable flag, or `None` for flags the store
/// does not keep (`\Recent`, unknown `\` flags, empty or malformed ones).
fn canonical(flag: &str) -> Option<&str> {
    if flag.starts_with('\\') {
        return SYSTEM.into_iter().find(|s| s.eq_ignore_ascii_case(flag));
    }
    let malformed = flag.is_empty()
        || flag
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "(){]\"%*\\".contains(c));
    (!malformed).then_some(flag)
}

fn contains(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

pub(crate) fn is_seen(flags: &[String]) -> bool {
    contains(flags, SEEN)
}

/// Canonical, de-duplicated copy of `flags`, in the order given.
pub(crate) fn normalize(flags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(flags.len());
    for flag in flags.iter().filter_map(|f| canonical(f)) {
        if !contains(&out, flag) {
            out.push(flag.to_owned());
        }
    }
    out
}

/// The flags a message has after `op` with `flags` (already normalized).
pub(crate) fn apply(current: &[String], op: FlagOp, flags: &[String]) -> Vec<String> {
    match op {
        FlagOp::Replace => flags.to_vec(),
        FlagOp::Add => {
            let mut out = current.to_vec();
            out.extend(flags.iter().filter(|f| !contains(current, f)).cloned());
            out
        }
        FlagOp::Remove => current
            .iter()
            .filter(|f| !contains(flags, f))
            .cloned()
            .collect(),
    }
}

/// Whether two normalized flag lists hold the same set.
pub(crate) fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|f| contains(b, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(flags: &[&str]) -> Vec<String> {
        flags.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalize_canonicalises_and_dedups() {
        let got = normalize(&v(&[
            "\\seen", "\\SEEN", "$Junk", "$junk", "\\Recent", "\\Bogus", "",
        ]));
        assert_eq!(got, v(&["\\Seen", "$Junk"]));
    }

    #[test]
    fn apply_ops() {
        let cur = v(&["\\Seen", "$A"]);
        assert_eq!(
            apply(&cur, FlagOp::Add, &v(&["$A", "\\Flagged"])),
            v(&["\\Seen", "$A", "\\Flagged"])
        );
        assert_eq!(apply(&cur, FlagOp::Remove, &v(&["\\Seen"])), v(&["$A"]));
        assert_eq!(apply(&cur, FlagOp::Replace, &v(&["$B"])), v(&["$B"]));
        assert!(same_set(&v(&["$a", "\\Seen"]), &v(&["\\Seen", "$A"])));
        assert!(!same_set(&v(&["$a"]), &v(&["$b"])));
        assert!(is_seen(&cur));
    }
}
