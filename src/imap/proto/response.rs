//! Response encoding (RFC 3501 §7, §9): strings as quoted strings when
//! they can be, literals otherwise; flag and parenthesised lists.

/// Appends `bytes` as an IMAP string: quoted when it is short 7-bit text
/// without CR, LF or NUL, a literal otherwise.
pub fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    let quotable = bytes.len() <= 1024
        && bytes
            .iter()
            .all(|&b| b != 0 && b != b'\r' && b != b'\n' && b < 0x80);
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

pub fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
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

/// A mailbox name in LIST/STATUS responses: always a string (quoted when
/// possible), so names with spaces or `*` are safe.
pub fn mailbox(out: &mut Vec<u8>, name: &str) {
    string(out, name.as_bytes());
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
    }
}
