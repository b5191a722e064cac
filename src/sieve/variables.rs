//! RFC 5229 variables: `${name}` and `${N}` expanded in strings at run
//! time, `set`'s modifiers, and (RFC 5232) flag lists kept in variables.
//! Bounded: a value is cut at [`MAX_VALUE`] octets and a run holds at most
//! [`MAX_VARIABLES`] names (Pigeonhole's defaults).

use super::Error;
use super::compile::Modifier;
use std::borrow::Cow;
use std::collections::HashMap;

/// The longest value a variable holds, in octets.
pub const MAX_VALUE: usize = 4096;
/// Variables one run may set.
pub const MAX_VARIABLES: usize = 255;

#[derive(Default)]
pub struct Variables {
    named: HashMap<String, String>,
    /// `${0}`..`${9}` from the last successful `:matches`.
    matched: Vec<String>,
}

impl Variables {
    pub fn get(&self, name: &str) -> &str {
        self.named.get(name).map_or("", String::as_str)
    }

    pub fn set(&mut self, name: &str, value: String) -> Result<(), Error> {
        if !self.named.contains_key(name) && self.named.len() >= MAX_VARIABLES {
            return Err(Error::runtime(format!(
                "more than {MAX_VARIABLES} variables"
            )));
        }
        self.named.insert(name.to_string(), truncate(value));
        Ok(())
    }

    pub fn set_matched(&mut self, values: Vec<String>) {
        self.matched = values.into_iter().take(10).map(truncate).collect();
    }

    /// `s` with every `${...}` that names a variable replaced by its value
    /// (unknown ones by nothing); anything else stays as written.
    pub fn expand<'s>(&self, s: &'s str) -> Cow<'s, str> {
        if !s.contains("${") {
            return Cow::Borrowed(s);
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(at) = rest.find("${") {
            out.push_str(rest.get(..at).unwrap_or_default());
            let after = rest.get(at + 2..).unwrap_or_default();
            match after.find('}') {
                Some(end) if is_reference(after.get(..end).unwrap_or_default()) => {
                    let name = after.get(..end).unwrap_or_default();
                    out.push_str(self.lookup(name));
                    rest = after.get(end + 1..).unwrap_or_default();
                }
                _ => {
                    out.push_str("${");
                    rest = after;
                }
            }
            if out.len() > 4 * MAX_VALUE {
                break;
            }
        }
        out.push_str(rest);
        Cow::Owned(out)
    }

    fn lookup(&self, name: &str) -> &str {
        if name.bytes().all(|b| b.is_ascii_digit()) {
            let n: usize = name.parse().unwrap_or(usize::MAX);
            return self.matched.get(n).map_or("", String::as_str);
        }
        self.get(&name.to_ascii_lowercase())
    }
}

/// `identifier` or `num-variable` (§3).
fn is_reference(name: &str) -> bool {
    (!name.is_empty() && name.len() <= 3 && name.bytes().all(|b| b.is_ascii_digit()))
        || super::compile::is_identifier(name)
}

fn truncate(mut value: String) -> String {
    if value.len() > MAX_VALUE {
        let mut end = MAX_VALUE;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    value
}

/// `set`'s modifiers, already in the order they apply (§4).
pub fn modify(mut value: String, modifiers: &[Modifier]) -> String {
    for m in modifiers {
        value = match m {
            Modifier::Lower => value.to_lowercase(),
            Modifier::Upper => value.to_uppercase(),
            Modifier::LowerFirst | Modifier::UpperFirst => {
                let mut chars = value.chars();
                match chars.next() {
                    Some(first) => {
                        let first: String = if *m == Modifier::LowerFirst {
                            first.to_lowercase().collect()
                        } else {
                            first.to_uppercase().collect()
                        };
                        first + chars.as_str()
                    }
                    None => value,
                }
            }
            Modifier::QuoteWildcard => {
                let mut out = String::with_capacity(value.len());
                for c in value.chars() {
                    if matches!(c, '*' | '?' | '\\') {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out
            }
            Modifier::Length => value.chars().count().to_string(),
            Modifier::EncodeUrl => super::notify::encode_url(&value),
        };
    }
    value
}

/// RFC 5232 §3: a flag list as a set, from strings that may each hold
/// several space-separated flags; system flags in their usual case, the
/// first spelling of a keyword kept.
pub fn flag_set<'a>(strings: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in strings {
        for flag in s.split_whitespace() {
            let flag = canonical_flag(flag);
            if !out.iter().any(|f| f.eq_ignore_ascii_case(&flag)) {
                out.push(flag);
            }
        }
    }
    out
}

fn canonical_flag(flag: &str) -> String {
    for system in ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"] {
        if flag.eq_ignore_ascii_case(system) {
            return system.to_string();
        }
    }
    flag.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let mut v = Variables::default();
        v.set("name", "World".into()).unwrap();
        v.set_matched(vec!["all".into(), "one".into()]);
        assert_eq!(v.expand("Hello ${Name}!"), "Hello World!");
        assert_eq!(v.expand("${1}/${2}/${0}"), "one//all");
        assert_eq!(v.expand("${unknown}x"), "x");
        assert_eq!(v.expand("${bad-name} ${ ${"), "${bad-name} ${ ${");
        assert_eq!(v.expand("$${name}"), "$World");
    }

    #[test]
    fn modifiers_and_flags() {
        let ms = [Modifier::Upper, Modifier::QuoteWildcard];
        assert_eq!(modify("a*b?".into(), &ms), "A\\*B\\?");
        assert_eq!(
            modify("juMBlEd".into(), &[Modifier::Lower, Modifier::UpperFirst]),
            "Jumbled"
        );
        assert_eq!(modify("héllo".into(), &[Modifier::Length]), "5");
        assert_eq!(
            flag_set(["\\seen \\Flagged", "$Label1 \\SEEN", "$label1"]),
            ["\\Seen", "\\Flagged", "$Label1"]
        );
    }
}
