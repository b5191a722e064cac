//! Mail addresses as the envelope carries them, parsed once.
//!
//! An [`Address`] is `local@domain` with the domain lower-cased and the local
//! part kept as written (RFC 5321 §2.4: local parts may be case-sensitive;
//! lookups fold case themselves). A bare local part (`fauzan`) is allowed
//! here; trivial-rewrite appends `myorigin` to it.

use std::fmt;

/// Longest address we accept (RFC 5321 §4.5.3.1.3: path 256 octets).
pub const MAX_ADDRESS_LEN: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    /// `None` for a bare local part such as `fauzan`.
    domain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address is longer than {MAX_ADDRESS_LEN} octets")]
    TooLong,
    #[error("address contains a forbidden character")]
    BadCharacter,
    #[error("address has an empty local part or domain")]
    EmptyPart,
}

impl Address {
    /// Parses `local@domain` or a bare `local`. Angle brackets must already
    /// be stripped. A quoted local part (`"a b"@x`) is accepted as written.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if text.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong);
        }
        if text
            .chars()
            .any(|c| c.is_control() || c == '<' || c == '>' || c == ',')
        {
            return Err(AddressError::BadCharacter);
        }
        // The domain follows the last '@' outside a quoted local part.
        let split = if text.starts_with('"') {
            text.rfind("\"@").map(|i| i + 1)
        } else {
            text.rfind('@')
        };
        match split {
            None => {
                if text.contains(' ') && !text.starts_with('"') {
                    return Err(AddressError::BadCharacter);
                }
                Ok(Address {
                    local: text.to_string(),
                    domain: None,
                })
            }
            Some(at) => {
                let (local, domain) = (&text[..at], &text[at + 1..]);
                if local.is_empty() || domain.is_empty() {
                    return Err(AddressError::EmptyPart);
                }
                if domain.contains(['@', ' ', '"'])
                    || (!local.starts_with('"') && local.contains(' '))
                {
                    return Err(AddressError::BadCharacter);
                }
                Ok(Address {
                    local: local.to_string(),
                    domain: Some(domain.trim_end_matches('.').to_lowercase()),
                })
            }
        }
    }

    pub fn new(local: &str, domain: &str) -> Self {
        Address {
            local: local.to_string(),
            domain: Some(domain.to_lowercase()),
        }
    }

    /// A bare local part (a login name), to be given a domain by rewriting.
    pub fn new_local(local: &str) -> Self {
        Address {
            local: local.to_string(),
            domain: None,
        }
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Returns this address with `domain` appended when it has none
    /// (Postfix's `append_at_myorigin`).
    pub fn with_default_domain(self, domain: &str) -> Self {
        match self.domain {
            Some(_) => self,
            None => Address {
                local: self.local,
                domain: Some(domain.to_lowercase()),
            },
        }
    }

    /// The local part without a `+extension` (recipient delimiter).
    pub fn local_base(&self, delimiter: &str) -> &str {
        if delimiter.is_empty() {
            return &self.local;
        }
        match self.local.find(delimiter) {
            Some(0) | None => &self.local,
            Some(i) => &self.local[..i],
        }
    }

    /// Lower-cased form used as a lookup key.
    pub fn key(&self) -> String {
        self.to_string().to_lowercase()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.domain {
            Some(d) => write!(f, "{}@{}", self.local, d),
            None => f.write_str(&self.local),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_bare() {
        let a = Address::parse("Afau@LocalHost").unwrap();
        assert_eq!(a.local(), "Afau");
        assert_eq!(a.domain(), Some("localhost"));
        let b = Address::parse("fauzan").unwrap();
        assert_eq!(b.domain(), None);
        assert_eq!(
            b.with_default_domain("Example.ORG").to_string(),
            "fauzan@example.org"
        );
    }

    #[test]
    fn quoted_local_part_keeps_its_at() {
        let a = Address::parse("\"a@b c\"@example.org").unwrap();
        assert_eq!(a.local(), "\"a@b c\"");
        assert_eq!(a.domain(), Some("example.org"));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(Address::parse(""), Err(AddressError::Empty));
        assert_eq!(Address::parse("@x"), Err(AddressError::EmptyPart));
        assert_eq!(Address::parse("a@"), Err(AddressError::EmptyPart));
        assert!(Address::parse("a\r@x").is_err());
        assert!(Address::parse(&"a".repeat(300)).is_err());
    }

    #[test]
    fn extension_is_stripped() {
        let a = Address::parse("alice+news@x").unwrap();
        assert_eq!(a.local_base("+"), "alice");
        assert_eq!(Address::parse("+x@y").unwrap().local_base("+"), "+x");
    }
}
