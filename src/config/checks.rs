//! `[checks]`: Postfix's content checks (header_checks(5), body_checks),
//! each a table in Postfix's `regexp:`/`pcre:` syntax, or a list of them.

use super::units::Bytes;
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checks {
    /// Every header of the message (and non-MIME headers of its parts).
    #[serde(deserialize_with = "one_or_many")]
    pub header_checks: Vec<String>,
    /// MIME headers (Content-*, MIME-Version) of the message and its
    /// parts; empty = `header_checks`.
    #[serde(deserialize_with = "one_or_many")]
    pub mime_header_checks: Vec<String>,
    /// Headers of attached messages (message/rfc822); empty =
    /// `header_checks`.
    #[serde(deserialize_with = "one_or_many")]
    pub nested_header_checks: Vec<String>,
    /// Each line of the body (and of each MIME part's body).
    #[serde(deserialize_with = "one_or_many")]
    pub body_checks: Vec<String>,
    /// A longer header is matched on its first this many bytes.
    pub header_size_limit: Bytes,
    /// Body lines past this many bytes of a part are not inspected.
    pub body_checks_size_limit: Bytes,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            header_checks: Vec::new(),
            mime_header_checks: Vec::new(),
            nested_header_checks: Vec::new(),
            body_checks: Vec::new(),
            header_size_limit: Bytes(102_400),
            body_checks_size_limit: Bytes(51_200),
        }
    }
}

/// `"pcre:/etc/postfix/header_checks"` or a list of such.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) if s.is_empty() => Vec::new(),
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}
