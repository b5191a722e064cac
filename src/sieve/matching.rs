//! Comparing values with keys (RFC 5228 §2.7, RFC 4790 comparators,
//! RFC 5231 relations), with the match variables of RFC 5229 §3.2, and
//! pulling addresses out of header fields.

use super::compile::{Comparator, MatchType, Matcher};

/// The addresses in a header value: `Name <a@b>, c@d` → `a@b`, `c@d`.
pub fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth_quote = false;
    let mut current = String::new();
    for c in value.chars() {
        match c {
            '"' => depth_quote = !depth_quote,
            ',' | ';' if !depth_quote => {
                out.extend(address_of(&current));
                current.clear();
            }
            _ => current.push(c),
        }
    }
    out.extend(address_of(&current));
    out
}

fn address_of(item: &str) -> Option<String> {
    let item = item.trim();
    let item = item.rsplit_once(':').map_or(item, |(_, rest)| rest); // group: a@b
    let address = match (item.find('<'), item.rfind('>')) {
        (Some(start), Some(end)) if start < end => item.get(start + 1..end)?,
        _ => item.split_whitespace().find(|w| w.contains('@'))?,
    };
    let address = address.trim();
    (!address.is_empty()).then(|| address.to_string())
}

/// A test's values against its (expanded) keys: `:count` compares how
/// many values there are (numerically, RFC 5231 §4.2), every other match
/// type each value with each key. With `captures`, a successful
/// `:matches` leaves the match variables there (RFC 5229 §3.2: `${0}` the
/// whole value, then what each wildcard matched).
pub fn judge(
    matcher: &Matcher,
    keys: &[std::borrow::Cow<'_, str>],
    values: &[&str],
    captures: Option<&mut Vec<String>>,
) -> bool {
    if let MatchType::Count(relation) = matcher.match_type {
        let n = Some(values.len() as u128);
        return keys
            .iter()
            .any(|k| relation.holds(numeric_order(n, numeric(k))));
    }
    if let (Some(out), MatchType::Matches | MatchType::Regex, false) = (
        captures,
        matcher.match_type,
        matcher.comparator == Comparator::AsciiNumeric,
    ) {
        let fold = matcher.comparator == Comparator::AsciiCasemap;
        let regex = matcher.match_type == MatchType::Regex;
        for v in values {
            for key in keys {
                let found = if regex {
                    regex_captures(v, key, fold)
                } else {
                    glob_captures(v, key, fold)
                };
                if let Some(found) = found {
                    *out = found;
                    return true;
                }
            }
        }
        return false;
    }
    values.iter().any(|v| {
        keys.iter()
            .any(|key| matches(matcher.match_type, matcher.comparator, v, key))
    })
}

/// i;ascii-numeric's order: a value without digits is positive infinity.
fn numeric_order(a: Option<u128>, b: Option<u128>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// One value against one key (RFC 5228 §2.7.1, RFC 4790).
pub fn matches(match_type: MatchType, comparator: Comparator, value: &str, key: &str) -> bool {
    if match_type == MatchType::Regex {
        return regex(key, comparator == Comparator::AsciiCasemap)
            .is_some_and(|re| re.is_match(value));
    }
    match comparator {
        Comparator::AsciiNumeric => match match_type {
            MatchType::Is => numeric(value) == numeric(key),
            MatchType::Value(r) => r.holds(numeric_order(numeric(value), numeric(key))),
            // Substrings are not defined for numbers (RFC 4790 §9.1).
            _ => false,
        },
        Comparator::Octet => compare(match_type, value, key),
        Comparator::AsciiCasemap => compare(
            match_type,
            &value.to_ascii_lowercase(),
            &key.to_ascii_lowercase(),
        ),
    }
}

fn numeric(s: &str) -> Option<u128> {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    // Longer than u128 holds: compare as the largest (still equal to
    // itself, which is all :is needs).
    Some(digits.parse().unwrap_or(u128::MAX))
}

fn compare(match_type: MatchType, value: &str, key: &str) -> bool {
    match match_type {
        MatchType::Is => value == key,
        MatchType::Contains => value.contains(key),
        MatchType::Matches => glob(value, key),
        MatchType::Value(r) => r.holds(value.cmp(key)),
        // Counted in `judge`, never per value.
        MatchType::Count(_) => false,
        // Matched in `matches`, before any case folding.
        MatchType::Regex => false,
    }
}

/// The longest regular expression, compiled (the regex crate's own
/// bound; matching is linear in the value whatever the pattern).
const REGEX_SIZE: usize = 1 << 20;
/// Compiled expressions kept per thread (delivery threads reuse them
/// across messages).
const REGEX_CACHE: usize = 64;

thread_local! {
    static REGEXES: std::cell::RefCell<std::collections::HashMap<(String, bool), Option<regex::Regex>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// `key` compiled (case-insensitive for `i;ascii-casemap`); `None` if it
/// is not a valid expression.
pub fn regex(key: &str, fold: bool) -> Option<regex::Regex> {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(re) = cache.get(&(key.to_string(), fold)) {
            return re.clone();
        }
        let re = regex::RegexBuilder::new(key)
            .case_insensitive(fold)
            .size_limit(REGEX_SIZE)
            .dfa_size_limit(REGEX_SIZE)
            .build()
            .ok();
        if cache.len() >= REGEX_CACHE {
            cache.clear();
        }
        cache.insert((key.to_string(), fold), re.clone());
        re
    })
}

/// `:regex` with the match variables: `${0}` the whole match, then the
/// groups (an unmatched group is empty).
fn regex_captures(value: &str, key: &str, fold: bool) -> Option<Vec<String>> {
    let re = regex(key, fold)?;
    let caps = re.captures(value)?;
    Some(
        caps.iter()
            .take(10)
            .map(|m| m.map_or(String::new(), |m| m.as_str().to_string()))
            .collect(),
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Glob {
    Lit(char),
    One,
    Star,
}

/// `*` (any run) and `?` (one character) with `\` escaping, matched
/// without backtracking blow-up: O(value × key) at worst.
fn glob(value: &str, key: &str) -> bool {
    glob_run(value, key, false, None)
}

/// `:matches` that also gives what matched: `${0}` and one string per
/// wildcard, each `*` as short as the match allows from the left.
fn glob_captures(value: &str, key: &str, fold: bool) -> Option<Vec<String>> {
    let mut spans = Vec::new();
    if !glob_run(value, key, fold, Some(&mut spans)) {
        return None;
    }
    let chars: Vec<char> = value.chars().collect();
    let mut out = vec![value.to_string()];
    for (start, end) in spans {
        out.push(chars.get(start..end).unwrap_or_default().iter().collect());
    }
    Some(out)
}

fn glob_run(value: &str, key: &str, fold: bool, spans: Option<&mut Vec<(usize, usize)>>) -> bool {
    let mut pattern = Vec::with_capacity(key.len());
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        pattern.push(match c {
            '\\' => match chars.next() {
                Some(next) => Glob::Lit(next),
                None => break,
            },
            '*' => Glob::Star,
            '?' => Glob::One,
            c => Glob::Lit(c),
        });
    }
    let lower = |c: char| if fold { c.to_ascii_lowercase() } else { c };
    let value: Vec<char> = value.chars().collect();
    // Where each pattern token started matching, on the path taken.
    let mut starts = vec![0usize; pattern.len()];
    let (mut v, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(Glob::Star) => {
                if let Some(s) = starts.get_mut(p) {
                    *s = v;
                }
                star = Some((p, v));
                p += 1;
                continue;
            }
            Some(Glob::One) => {
                if let Some(s) = starts.get_mut(p) {
                    *s = v;
                }
                v += 1;
                p += 1;
                continue;
            }
            Some(Glob::Lit(c)) if value.get(v).map(|&x| lower(x)) == Some(lower(*c)) => {
                if let Some(s) = starts.get_mut(p) {
                    *s = v;
                }
                v += 1;
                p += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, sv)) => {
                p = sp + 1;
                v = sv + 1;
                star = Some((sp, sv + 1));
            }
            None => return false,
        }
    }
    let rest_stars = pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|t| *t == Glob::Star);
    if rest_stars && let Some(spans) = spans {
        for s in starts.iter_mut().skip(p) {
            *s = value.len();
        }
        for (i, token) in pattern.iter().enumerate() {
            if *token == Glob::Star || *token == Glob::One {
                let start = starts.get(i).copied().unwrap_or(0);
                let end = starts.get(i + 1).copied().unwrap_or(value.len());
                let end = if *token == Glob::One { start + 1 } else { end };
                spans.push((start, end.max(start)));
            }
        }
    }
    rest_stars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching() {
        assert!(glob("hello world", "hello*"));
        assert!(glob("hello world", "*o w*"));
        assert!(glob("abc", "a?c"));
        assert!(!glob("abc", "a?d"));
        assert!(glob("a*c", "a\\*c"));
        assert!(!glob("abc", "a\\*c"));
        assert!(glob("été", "?t?"));
        assert!(glob("", "*"));
        assert!(!glob("x", ""));
        // No exponential blow-up.
        let value = "a".repeat(5000);
        assert!(!glob(&value, "*a*a*a*a*a*a*a*a*b"));
    }

    #[test]
    fn match_captures() {
        let got = glob_captures("[acme-users] [fwd] version 1.0 is out", "[*] *", false);
        assert_eq!(
            got.unwrap(),
            [
                "[acme-users] [fwd] version 1.0 is out",
                "acme-users",
                "[fwd] version 1.0 is out"
            ]
        );
        let got = glob_captures("Boss <boss@WORK.example>", "*<*@work.*>", true).unwrap();
        assert_eq!(got[1..], ["Boss ", "boss", "example"]);
        let got = glob_captures("abc", "?*?", false).unwrap();
        assert_eq!(got[1..], ["a", "b", "c"]);
        let got = glob_captures("ab", "a**", false).unwrap();
        assert_eq!(got[1..], ["", "b"]);
        assert_eq!(glob_captures("abc", "x*", false), None);
    }

    #[test]
    fn comparators() {
        assert!(matches(
            MatchType::Is,
            Comparator::AsciiCasemap,
            "Hello",
            "hELLO"
        ));
        assert!(!matches(MatchType::Is, Comparator::Octet, "Hello", "hello"));
        assert!(matches(
            MatchType::Is,
            Comparator::AsciiNumeric,
            "042 apples",
            "42"
        ));
        assert!(!matches(MatchType::Is, Comparator::AsciiNumeric, "x", "42"));
        assert!(matches(
            MatchType::Contains,
            Comparator::AsciiCasemap,
            "Buy VIAGRA now",
            "viagra"
        ));
    }

    #[test]
    fn header_addresses() {
        assert_eq!(
            addresses("\"Doe, J\" <j@x.test>, k@y.test, team: a@z.test, b@z.test;"),
            ["j@x.test", "k@y.test", "a@z.test", "b@z.test"]
        );
    }
}
