//! Response encoding (RFC 3501 §7, §9): strings as quoted strings when
//! they can be, literals otherwise; flag and parenthesised lists; mailbox
//! names in modified UTF-7 or, under UTF8=ACCEPT (RFC 6855), UTF-8.

use crate::imap::mutf7;

/// Appends `bytes` as an IMAP string: quoted when it is short 7-bit text
/// without CR, LF or NUL, a literal otherwise.
pub fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    quoted_or_literal(out, bytes, false);
}

/// Like [`string`], but UTF-8 text may be quoted too: for sessions that
/// enabled UTF8=ACCEPT (RFC 6855 §3).
pub fn utf8_string(out: &mut Vec<u8>, bytes: &[u8]) {
    quoted_or_literal(out, bytes, true);
}

fn quoted_or_literal(out: &mut Vec<u8>, bytes: &[u8], utf8: bool) {
    let quotable = bytes.len() <= 1024
        && bytes
            .iter()
            .all(|&b| b != 0 && b != b'\r' && b != b'\n' && (b < 0x80 || utf8))
        && (!utf8 || std::str::from_utf8(bytes).is_ok());
    if quotable {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, bytes);
    }
}

/// A `{n}` literal. RFC 3501 §4.3 forbids NUL in one, so a NUL in the
/// content (a BINARY-appended part) is sent as 0x80, as Dovecot's
/// istream-nonuls does; only [`literal8`] carries NULs.
pub fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
    let start = out.len();
    out.extend_from_slice(bytes);
    if memchr::memchr(0, bytes).is_some()
        && let Some(written) = out.get_mut(start..)
    {
        for b in written.iter_mut().filter(|b| **b == 0) {
            *b = 0x80;
        }
    }
}

/// A `~{n}` literal8 (RFC 3516 §4.2), for BINARY fetches only: any octet.
pub fn literal8(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("~{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// `NIL` or a string.
pub fn nstring(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => string(out, b),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// `(\Seen $Label)`.
pub fn flag_list(out: &mut Vec<u8>, flags: &[String]) {
    out.push(b'(');
    for (i, flag) in flags.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(flag.as_bytes());
    }
    out.push(b')');
}

/// A mailbox name (as the store spells it, UTF-8) in LIST/STATUS
/// responses: always a string (quoted when possible), so names with spaces
/// or `*` are safe. In modified UTF-7 unless the session enabled
/// UTF8=ACCEPT.
pub fn mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if utf8 {
        utf8_string(out, name.as_bytes());
    } else {
        string(out, mutf7::encode(name).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn strings() {
        assert_eq!(enc(|o| string(o, b"hello")), "\"hello\"");
        assert_eq!(enc(|o| string(o, b"a\"b\\c")), "\"a\\\"b\\\\c\"");
        assert_eq!(enc(|o| string(o, b"a\r\nb")), "{4}\r\na\r\nb");
        assert_eq!(enc(|o| string(o, "é".as_bytes())), "{2}\r\né");
        assert_eq!(enc(|o| nstring(o, None)), "NIL");
        assert_eq!(
            enc(|o| flag_list(o, &["\\Seen".into(), "$x".into()])),
            "(\\Seen $x)"
        );
        assert_eq!(enc(|o| flag_list(o, &[])), "()");
        assert_eq!(enc(|o| utf8_string(o, "é".as_bytes())), "\"é\"");
        assert_eq!(enc(|o| utf8_string(o, b"\xff")), "{1}\r\n\u{FFFD}");
        assert_eq!(enc(|o| utf8_string(o, "a\nü".as_bytes())), "{4}\r\na\nü");
    }

    #[test]
    fn mailbox_names() {
        let name = "~peter/mail/台北/日本語";
        assert_eq!(
            enc(|o| mailbox(o, name, false)),
            "\"~peter/mail/&U,BTFw-/&ZeVnLIqe-\""
        );
        assert_eq!(enc(|o| mailbox(o, name, true)), format!("\"{name}\""));
        assert_eq!(
            enc(|o| mailbox(o, "A & \"B\"", false)),
            "\"A &- \\\"B\\\"\""
        );
        assert_eq!(enc(|o| mailbox(o, "A & B", true)), "\"A & B\"");
    }
}
