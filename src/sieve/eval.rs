//! Running a compiled script against one message for one recipient
//! (RFC 5228 §2.10): the tests read the message's header fields (decoded)
//! and the envelope; the actions collect, with the implicit keep that
//! `fileinto`, `redirect` and `discard` cancel and `keep` restores.
//! Bounded: at most `MAX_STEPS` tests and commands per run, and
//! `max_redirects` redirects.

use super::Error;
use super::compile::{Cmd, Comparator, Cond, MatchType, Matcher, Part};

/// Tests and commands evaluated in one run, at most.
const MAX_STEPS: usize = 100_000;

/// What the script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Keep,
    FileInto {
        mailbox: String,
        create: bool,
    },
    Redirect(String),
    Discard,
    /// RFC 5429: refused; the sender gets a notice with this reason.
    Reject(String),
}

/// The message and its envelope, as the tests see them.
pub struct Input<'a> {
    /// Header fields in order: name and decoded, unfolded value.
    pub headers: Vec<(String, String)>,
    pub size: u64,
    pub envelope_from: &'a str,
    pub envelope_to: &'a str,
    /// The address extension separator (`+`) for :user and :detail.
    pub delimiter: &'a str,
    /// The whole message, for `body`.
    pub message: &'a [u8],
}

impl Input<'_> {
    /// The body as sent (after the header section), for `body :raw`.
    fn raw_body(&self) -> String {
        let end = crate::rfc5322::scan_headers(self.message).end;
        let body = self.message.get(end..).unwrap_or_default();
        String::from_utf8_lossy(body.get(..body.len().min(1 << 20)).unwrap_or(body)).into_owned()
    }
}

impl Input<'_> {
    /// The header section of `message`, decoded by mail-parser (RFC 2047
    /// encoded words, folding).
    pub fn headers_of(message: &[u8]) -> Vec<(String, String)> {
        let end = crate::rfc5322::scan_headers(message).end;
        let header = message.get(..end).unwrap_or(message);
        let Some(parsed) = mail_parser::MessageParser::new().parse_headers(header) else {
            return Vec::new();
        };
        parsed
            .headers()
            .iter()
            .map(|h| {
                let raw = header
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let value = match &h.value {
                    mail_parser::HeaderValue::Text(t) => t.to_string(),
                    _ => unfold(&raw),
                };
                (h.name.as_str().to_string(), value)
            })
            .collect()
    }
}

fn unfold(raw: &str) -> String {
    raw.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

struct Run<'a> {
    input: &'a Input<'a>,
    actions: Vec<Action>,
    implicit_keep: bool,
    steps: usize,
    /// The decoded body text, once a `body` test needed it.
    text: Option<String>,
    redirects: usize,
    max_redirects: usize,
}

enum Flow {
    Next,
    Stop,
}

/// Runs `program`; the actions to carry out. An error (a bound hit) means
/// the caller keeps the message, as RFC 5228 §2.10.6 asks.
pub fn run(program: &[Cmd], input: &Input<'_>, max_redirects: usize) -> Result<Vec<Action>, Error> {
    let mut r = Run {
        input,
        actions: Vec::new(),
        implicit_keep: true,
        steps: 0,
        text: None,
        redirects: 0,
        max_redirects,
    };
    r.block(program)?;
    if r.implicit_keep && !r.actions.contains(&Action::Keep) {
        r.actions.push(Action::Keep);
    }
    // `discard` only cancels the implicit keep; with other actions it is
    // no action of its own.
    if r.actions.len() > 1 {
        r.actions.retain(|a| *a != Action::Discard);
    }
    // RFC 5429 §2.1: reject does not go with delivering the message.
    let rejects = r.actions.iter().any(|a| matches!(a, Action::Reject(_)));
    let delivers = r
        .actions
        .iter()
        .any(|a| matches!(a, Action::Keep | Action::FileInto { .. }));
    if rejects && delivers {
        return Err(Error::runtime("reject together with keep or fileinto"));
    }
    Ok(r.actions)
}

impl Run<'_> {
    fn step(&mut self) -> Result<(), Error> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(Error::runtime("the script ran too long"));
        }
        Ok(())
    }

    fn add(&mut self, action: Action) {
        if !self.actions.contains(&action) {
            self.actions.push(action);
        }
    }

    fn block(&mut self, commands: &[Cmd]) -> Result<Flow, Error> {
        for cmd in commands {
            self.step()?;
            match cmd {
                Cmd::If(branches) => {
                    for (cond, body) in branches {
                        let taken = match cond {
                            Some(c) => self.test(c)?,
                            None => true,
                        };
                        if taken {
                            if let Flow::Stop = self.block(body)? {
                                return Ok(Flow::Stop);
                            }
                            break;
                        }
                    }
                }
                Cmd::Stop => return Ok(Flow::Stop),
                Cmd::Keep => {
                    self.add(Action::Keep);
                    self.implicit_keep = false;
                }
                Cmd::Discard => {
                    self.add(Action::Discard);
                    self.implicit_keep = false;
                }
                Cmd::Reject(reason) => {
                    self.add(Action::Reject(reason.clone()));
                    self.implicit_keep = false;
                }
                Cmd::FileInto {
                    mailbox,
                    copy,
                    create,
                } => {
                    self.add(Action::FileInto {
                        mailbox: mailbox.clone(),
                        create: *create,
                    });
                    if !copy {
                        self.implicit_keep = false;
                    }
                }
                Cmd::Redirect { address, copy } => {
                    self.redirects += 1;
                    if self.redirects > self.max_redirects {
                        return Err(Error::runtime(format!(
                            "more than {} redirects",
                            self.max_redirects
                        )));
                    }
                    self.add(Action::Redirect(address.clone()));
                    if !copy {
                        self.implicit_keep = false;
                    }
                }
            }
        }
        Ok(Flow::Next)
    }

    fn test(&mut self, cond: &Cond) -> Result<bool, Error> {
        self.step()?;
        Ok(match cond {
            Cond::True => true,
            Cond::False => false,
            Cond::Not(inner) => !self.test(inner)?,
            Cond::AllOf(list) => {
                for c in list {
                    if !self.test(c)? {
                        return Ok(false);
                    }
                }
                true
            }
            Cond::AnyOf(list) => {
                for c in list {
                    if self.test(c)? {
                        return Ok(true);
                    }
                }
                false
            }
            Cond::Exists(names) => names.iter().all(|n| self.values(n).next().is_some()),
            Cond::SizeOver(n) => self.input.size > *n,
            Cond::SizeUnder(n) => self.input.size < *n,
            Cond::Header { names, matcher } => {
                let values: Vec<&str> = names.iter().flat_map(|n| self.values(n)).collect();
                judge(matcher, &values)
            }
            Cond::Address {
                part,
                names,
                matcher,
            } => {
                let found: Vec<String> = names
                    .iter()
                    .flat_map(|n| self.values(n))
                    .flat_map(addresses)
                    .collect();
                let values: Vec<&str> = found
                    .iter()
                    .filter_map(|a| self.part_of(*part, a))
                    .collect();
                judge(matcher, &values)
            }
            Cond::Envelope {
                part,
                names,
                matcher,
            } => {
                let values: Vec<&str> = names
                    .iter()
                    .filter_map(|n| match n.to_ascii_lowercase().as_str() {
                        "from" => Some(self.input.envelope_from),
                        "to" => Some(self.input.envelope_to),
                        _ => None,
                    })
                    .filter_map(|a| self.part_of(*part, a))
                    .collect();
                judge(matcher, &values)
            }
            Cond::Body { raw, matcher } => {
                let text = if *raw {
                    self.input.raw_body()
                } else {
                    self.text_body()
                };
                judge(matcher, &[text.as_str()])
            }
        })
    }

    /// The decoded text of the message's text parts, made on first use.
    fn text_body(&mut self) -> String {
        self.text
            .get_or_insert_with(|| text_of(self.input.message))
            .clone()
    }

    fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.input
            .headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The part of `address` a test looks at; `None` when it has none
    /// (RFC 5233 §4: no detail, no match).
    fn part_of<'s>(&self, part: Part, address: &'s str) -> Option<&'s str> {
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let sep = self.input.delimiter.chars().next();
        Some(match part {
            Part::All => address,
            Part::LocalPart => local,
            Part::Domain => domain,
            Part::User => match sep {
                Some(s) => local.split(s).next().unwrap_or(local),
                None => local,
            },
            Part::Detail => sep.and_then(|s| local.split_once(s))?.1,
        })
    }
}

/// The addresses in a header value: `Name <a@b>, c@d` → `a@b`, `c@d`.
fn addresses(value: &str) -> Vec<String> {
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

/// A test's values against its keys: `:count` compares how many values
/// there are (numerically, RFC 5231 §4.2), every other match type each
/// value with each key.
fn judge(matcher: &Matcher, values: &[&str]) -> bool {
    if let MatchType::Count(relation) = matcher.match_type {
        let n = Some(values.len() as u128);
        return matcher
            .keys
            .iter()
            .any(|k| relation.holds(numeric_order(n, numeric(k))));
    }
    values.iter().any(|v| {
        matcher
            .keys
            .iter()
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

/// The text of the text parts (HTML reduced to its text), for `body`.
fn text_of(message: &[u8]) -> String {
    let scanned = message.get(..message.len().min(1 << 20)).unwrap_or(message);
    let Some(parsed) = mail_parser::MessageParser::new().parse(scanned) else {
        return String::new();
    };
    let mut out = String::new();
    for part in &parsed.parts {
        match &part.body {
            mail_parser::PartType::Text(t) => out.push_str(t),
            mail_parser::PartType::Html(h) => out.push_str(&crate::html::text(h, false)),
            _ => continue,
        }
        out.push('\n');
    }
    out
}

/// One value against one key (RFC 5228 §2.7.1, RFC 4790).
pub fn matches(match_type: MatchType, comparator: Comparator, value: &str, key: &str) -> bool {
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
    }
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
    let value: Vec<char> = value.chars().collect();
    let (mut v, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(Glob::Star) => {
                star = Some((p, v));
                p += 1;
                continue;
            }
            Some(Glob::One) => {
                v += 1;
                p += 1;
                continue;
            }
            Some(Glob::Lit(c)) if value.get(v) == Some(c) => {
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
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|t| *t == Glob::Star)
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
