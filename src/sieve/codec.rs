//! The compiled form, as stored with the account: a compact binary
//! encoding of the program, so delivery never parses Sieve text. Decoding
//! is bounded (depth, counts against the octets left) and refuses what it
//! did not write.

use super::compile::{Cmd, Comparator, Cond, MatchType, Matcher, Part, Relation};

const MAGIC: &[u8; 8] = b"MSIEVE1\0";

/// Match types as one octet: 0..2 the plain ones, 3..8 `:value`, 9..14
/// `:count` (by relation, in `Relation::ALL` order).
fn match_byte(m: MatchType) -> u8 {
    let rel = |r: Relation| Relation::ALL.iter().position(|x| *x == r).unwrap_or(0) as u8;
    match m {
        MatchType::Is => 0,
        MatchType::Contains => 1,
        MatchType::Matches => 2,
        MatchType::Value(r) => 3 + rel(r),
        MatchType::Count(r) => 9 + rel(r),
    }
}

fn match_of(b: u8) -> Option<MatchType> {
    let rel = |i: u8| Relation::ALL.get(usize::from(i)).copied();
    Some(match b {
        0 => MatchType::Is,
        1 => MatchType::Contains,
        2 => MatchType::Matches,
        3..=8 => MatchType::Value(rel(b - 3)?),
        9..=14 => MatchType::Count(rel(b - 9)?),
        _ => return None,
    })
}
const MAX_DEPTH: usize = 64;

pub fn encode(program: &[Cmd]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    block(&mut out, program);
    out
}

pub fn decode(bytes: &[u8]) -> Option<Vec<Cmd>> {
    let mut r = Reader(bytes.strip_prefix(MAGIC.as_slice())?);
    let program = r.block(0)?;
    r.0.is_empty().then_some(program)
}

fn u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn string(out: &mut Vec<u8>, s: &str) {
    u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn strings(out: &mut Vec<u8>, list: &[String]) {
    u32(out, list.len());
    list.iter().for_each(|s| string(out, s));
}

fn block(out: &mut Vec<u8>, cmds: &[Cmd]) {
    u32(out, cmds.len());
    for c in cmds {
        match c {
            Cmd::If(branches) => {
                out.push(0);
                u32(out, branches.len());
                for (cond, body) in branches {
                    match cond {
                        Some(c) => {
                            out.push(1);
                            test(out, c);
                        }
                        None => out.push(0),
                    }
                    block(out, body);
                }
            }
            Cmd::Stop => out.push(1),
            Cmd::Keep => out.push(2),
            Cmd::Discard => out.push(3),
            Cmd::FileInto {
                mailbox,
                copy,
                create,
            } => {
                out.push(4);
                string(out, mailbox);
                out.push(u8::from(*copy));
                out.push(u8::from(*create));
            }
            Cmd::Redirect { address, copy } => {
                out.push(5);
                string(out, address);
                out.push(u8::from(*copy));
            }
            Cmd::Reject(reason) => {
                out.push(6);
                string(out, reason);
            }
        }
    }
}

fn matcher(out: &mut Vec<u8>, m: &Matcher) {
    out.push(match_byte(m.match_type));
    out.push(m.comparator as u8);
    strings(out, &m.keys);
}

fn test(out: &mut Vec<u8>, c: &Cond) {
    match c {
        Cond::True => out.push(0),
        Cond::False => out.push(1),
        Cond::Not(inner) => {
            out.push(2);
            test(out, inner);
        }
        Cond::AllOf(list) | Cond::AnyOf(list) => {
            out.push(if matches!(c, Cond::AllOf(_)) { 3 } else { 4 });
            u32(out, list.len());
            list.iter().for_each(|t| test(out, t));
        }
        Cond::Exists(names) => {
            out.push(5);
            strings(out, names);
        }
        Cond::Header { names, matcher: m } => {
            out.push(6);
            strings(out, names);
            matcher(out, m);
        }
        Cond::Address {
            part,
            names,
            matcher: m,
        }
        | Cond::Envelope {
            part,
            names,
            matcher: m,
        } => {
            out.push(if matches!(c, Cond::Address { .. }) {
                7
            } else {
                8
            });
            out.push(*part as u8);
            strings(out, names);
            matcher(out, m);
        }
        Cond::SizeOver(n) | Cond::SizeUnder(n) => {
            out.push(if matches!(c, Cond::SizeOver(_)) {
                9
            } else {
                10
            });
            out.extend_from_slice(&n.to_le_bytes());
        }
        Cond::Body { raw, matcher: m } => {
            out.push(11);
            out.push(u8::from(*raw));
            matcher(out, m);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn flag(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    /// A count, no larger than the octets left could hold.
    fn count(&mut self) -> Option<usize> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        (n <= self.0.len()).then_some(n)
    }

    fn string(&mut self) -> Option<String> {
        let n = self.count()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.count()?;
        (0..n).map(|_| self.string()).collect()
    }

    fn block(&mut self, depth: usize) -> Option<Vec<Cmd>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(match self.byte()? {
                0 => {
                    let branches = self.count()?;
                    let mut list = Vec::with_capacity(branches);
                    for _ in 0..branches {
                        let cond = match self.flag()? {
                            true => Some(self.test(depth + 1)?),
                            false => None,
                        };
                        list.push((cond, self.block(depth + 1)?));
                    }
                    Cmd::If(list)
                }
                1 => Cmd::Stop,
                2 => Cmd::Keep,
                3 => Cmd::Discard,
                4 => Cmd::FileInto {
                    mailbox: self.string()?,
                    copy: self.flag()?,
                    create: self.flag()?,
                },
                5 => Cmd::Redirect {
                    address: self.string()?,
                    copy: self.flag()?,
                },
                6 => Cmd::Reject(self.string()?),
                _ => return None,
            });
        }
        Some(out)
    }

    fn matcher(&mut self) -> Option<Matcher> {
        let match_type = match_of(self.byte()?)?;
        let comparator = match self.byte()? {
            0 => Comparator::Octet,
            1 => Comparator::AsciiCasemap,
            2 => Comparator::AsciiNumeric,
            _ => return None,
        };
        Some(Matcher {
            match_type,
            comparator,
            keys: self.strings()?,
        })
    }

    fn part(&mut self) -> Option<Part> {
        Some(match self.byte()? {
            0 => Part::All,
            1 => Part::LocalPart,
            2 => Part::Domain,
            3 => Part::User,
            4 => Part::Detail,
            _ => return None,
        })
    }

    fn test(&mut self, depth: usize) -> Option<Cond> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match self.byte()? {
            0 => Cond::True,
            1 => Cond::False,
            2 => Cond::Not(Box::new(self.test(depth + 1)?)),
            tag @ (3 | 4) => {
                let n = self.count()?;
                let list = (0..n)
                    .map(|_| self.test(depth + 1))
                    .collect::<Option<Vec<_>>>()?;
                if tag == 3 {
                    Cond::AllOf(list)
                } else {
                    Cond::AnyOf(list)
                }
            }
            5 => Cond::Exists(self.strings()?),
            6 => Cond::Header {
                names: self.strings()?,
                matcher: self.matcher()?,
            },
            tag @ (7 | 8) => {
                let part = self.part()?;
                let names = self.strings()?;
                let matcher = self.matcher()?;
                if tag == 7 {
                    Cond::Address {
                        part,
                        names,
                        matcher,
                    }
                } else {
                    Cond::Envelope {
                        part,
                        names,
                        matcher,
                    }
                }
            }
            tag @ (9 | 10) => {
                let n = u64::from_le_bytes(self.take(8)?.try_into().ok()?);
                if tag == 9 {
                    Cond::SizeOver(n)
                } else {
                    Cond::SizeUnder(n)
                }
            }
            11 => Cond::Body {
                raw: self.flag()?,
                matcher: self.matcher()?,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let script = r#"require ["fileinto", "envelope", "subaddress", "copy", "comparator-i;ascii-numeric", "relational", "body", "reject"];
            if anyof (header :count "ge" :comparator "i;ascii-numeric" "received" "3",
                      header :value "lt" "x-priority" "3", body :raw :contains "x") { reject "no"; }
            if allof (not exists "x-a", anyof (size :over 1K, size :under 10),
                      header :matches :comparator "i;octet" ["subject"] ["*a*", "b"],
                      address :user "from" "me", envelope :domain :contains "to" "ex",
                      header :is :comparator "i;ascii-numeric" "x-n" "5") {
                fileinto :copy :create "A/B"; redirect "x@y.example"; stop;
            } elsif false { discard; } else { keep; }"#;
        let program = crate::sieve::compile(script).unwrap();
        let bytes = encode(&program);
        assert_eq!(decode(&bytes), Some(program));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        assert_eq!(decode(b"MSIEVE1\0\xff\xff\xff\xff"), None);
    }
}
