//! Account and mailbox names: validation and the canonical spelling the
//! store keys its tables by.

use super::StoreError;

/// The one mailbox every account has; its name is case-insensitive.
pub const INBOX: &str = "INBOX";

/// Mailbox hierarchy separator.
pub const SEPARATOR: char = '/';

/// Longest account or mailbox name, in bytes.
const MAX_NAME_LEN: usize = 255;

/// The key an account is stored under: lower-cased, validated.
pub(crate) fn account_key(name: &str) -> Result<String, StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(name.to_lowercase())
    } else {
        Err(StoreError::InvalidName)
    }
}

pub(crate) fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case(INBOX)
}

/// The key a mailbox is stored under: `INBOX` in any case becomes `INBOX`,
/// other names are kept as given (case-sensitive), in UTF-8: IMAP converts
/// to and from modified UTF-7 for clients without UTF8=ACCEPT.
///
/// Rejects what would make the name unusable over IMAP: empty names, more
/// than 255 bytes, control characters (C0, DEL, C1) and the line and
/// paragraph separators U+2028/U+2029 (RFC 6855 §3), empty hierarchy levels
/// (`a//b`, `/a`, `a/`) and the LIST wildcards `*` and `%`.
pub(crate) fn mailbox_key(name: &str) -> Result<String, StoreError> {
    if is_inbox(name) {
        return Ok(INBOX.to_owned());
    }
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '*' | '%' | '\u{2028}' | '\u{2029}'))
        && !name.split(SEPARATOR).any(str::is_empty);
    if ok {
        Ok(name.to_owned())
    } else {
        Err(StoreError::InvalidName)
    }
}

/// The name `child` gets when its ancestor `from` is renamed to `to`, or
/// `None` if `child` is not below `from`.
pub(crate) fn renamed_child(child: &str, from: &str, to: &str) -> Option<String> {
    let rest = child.strip_prefix(from)?.strip_prefix(SEPARATOR)?;
    Some(format!("{to}{SEPARATOR}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_folded_and_validated() {
        assert_eq!(
            account_key("Alice@Example.ORG").unwrap(),
            "alice@example.org"
        );
        assert!(account_key("").is_err());
        assert!(account_key("a b").is_err());
        assert!(account_key("a\nb").is_err());
        assert!(account_key(&"x".repeat(256)).is_err());
    }

    #[test]
    fn inbox_is_case_insensitive_others_are_not() {
        assert_eq!(mailbox_key("inbox").unwrap(), "INBOX");
        assert_eq!(mailbox_key("InBoX").unwrap(), "INBOX");
        assert_eq!(mailbox_key("Sent").unwrap(), "Sent");
        assert_eq!(mailbox_key("sent").unwrap(), "sent");
        assert_eq!(mailbox_key("inbox/x").unwrap(), "inbox/x");
    }

    #[test]
    fn bad_mailbox_names_are_rejected() {
        for bad in [
            "",
            "a//b",
            "/a",
            "a/",
            "a\x01",
            "a\x7f",
            "a\u{85}",
            "a\u{2028}b",
            "a\u{2029}",
            "a*",
            "b%",
            &"x".repeat(256),
        ] {
            assert!(mailbox_key(bad).is_err(), "{bad:?}");
        }
        assert!(mailbox_key("Projekte/2024/Ärger").is_ok());
        assert_eq!(mailbox_key("台北/日本語/😀").unwrap(), "台北/日本語/😀");
        assert_eq!(mailbox_key("A & B").unwrap(), "A & B");
    }

    #[test]
    fn children_follow_a_rename() {
        assert_eq!(renamed_child("a/b/c", "a", "z").as_deref(), Some("z/b/c"));
        assert_eq!(renamed_child("ab/c", "a", "z"), None);
        assert_eq!(renamed_child("a", "a", "z"), None);
    }
}
