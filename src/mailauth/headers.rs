//! Header-field surgery for mail authentication: finding whole fields
//! (with their folded continuation lines) and removing the
//! Authentication-Results fields that claim to be ours (RFC 8601 §5).

/// One header field: its bytes are `message[start..end]`, continuation
/// lines and line end included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpan {
    pub start: usize,
    pub end: usize,
    /// Where the field name ends (the colon).
    pub colon: usize,
}

/// The fields of the header section, in order. Stops at the empty line or
/// at the first line that is neither a field nor a continuation.
pub fn fields(message: &[u8]) -> Vec<FieldSpan> {
    let mut out: Vec<FieldSpan> = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let rest = message.get(pos..).unwrap_or(&[]);
        let line_len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = rest.get(..line_len).unwrap_or(rest);
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            break;
        }
        if matches!(content.first(), Some(b' ' | b'\t')) {
            match out.last_mut() {
                Some(last) => last.end = pos + line_len,
                None => break,
            }
        } else {
            let Some(colon) = content.iter().position(|&b| b == b':') else {
                break;
            };
            let name = content.get(..colon).unwrap_or(&[]);
            if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic()) {
                break;
            }
            out.push(FieldSpan {
                start: pos,
                end: pos + line_len,
                colon: pos + colon,
            });
        }
        pos += line_len;
    }
    out
}

impl FieldSpan {
    pub fn name<'a>(&self, message: &'a [u8]) -> &'a [u8] {
        message.get(self.start..self.colon).unwrap_or(&[])
    }

    pub fn value<'a>(&self, message: &'a [u8]) -> &'a [u8] {
        message.get(self.colon + 1..self.end).unwrap_or(&[])
    }
}

/// The authserv-id of an Authentication-Results value (RFC 8601 §2.2):
/// the first token, after comments and white space, before `;` or a
/// version number.
pub fn authserv_id(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut depth = 0u32;
    let mut id = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            ';' => break,
            c if c.is_whitespace() => {
                if !id.is_empty() {
                    break;
                }
            }
            '"' => {}
            c => id.push(c),
        }
    }
    id
}

/// The Authentication-Results fields whose authserv-id is `ours`
/// (case-insensitively).
fn our_results(message: &[u8], ours: &str) -> Vec<FieldSpan> {
    fields(message)
        .into_iter()
        .filter(|f| {
            f.name(message)
                .eq_ignore_ascii_case(b"authentication-results")
                && authserv_id(f.value(message)).eq_ignore_ascii_case(ours)
        })
        .collect()
}

/// Whether we checked this message on its way in (it carries our
/// Authentication-Results).
pub fn has_our_results(message: &[u8], ours: &str) -> bool {
    !our_results(message, ours).is_empty()
}

/// Removes every Authentication-Results field whose authserv-id is ours:
/// such a field from outside is a forgery, and readers would trust it
/// (RFC 8601 §5). `None` when there is none.
pub fn remove_our_results(message: &[u8], ours: &str) -> Option<Vec<u8>> {
    let forged = our_results(message, ours);
    if forged.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(message.len());
    let mut at = 0;
    for f in forged {
        out.extend_from_slice(message.get(at..f.start).unwrap_or(&[]));
        at = f.end;
    }
    out.extend_from_slice(message.get(at..).unwrap_or(&[]));
    Some(out)
}

/// The domain of the (first) From: address, lower-cased; empty if none.
pub fn from_domain(message: &[u8]) -> String {
    let Some(field) = fields(message)
        .into_iter()
        .find(|f| f.name(message).eq_ignore_ascii_case(b"from"))
    else {
        return String::new();
    };
    let value = String::from_utf8_lossy(field.value(message)).into_owned();
    let address = match (value.rfind('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => value.get(open + 1..close).unwrap_or(""),
        _ => value.trim(),
    };
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim().trim_end_matches(['>', ',', ';']).to_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_include_continuations() {
        let m = b"A: 1\r\n\tmore\r\nB: 2\r\n\r\nbody\r\nC: 3\r\n";
        let f = fields(m);
        assert_eq!(f.len(), 2);
        assert_eq!(&m[f[0].start..f[0].end], b"A: 1\r\n\tmore\r\n");
        assert_eq!(f[1].name(m), b"B");
        assert_eq!(f[1].value(m), b" 2\r\n");
    }

    #[test]
    fn authserv_ids() {
        let cases: &[(&[u8], &str)] = &[
            (b" mx.example.org; spf=pass", "mx.example.org"),
            (b" (comment) mx.example.org 1; none", "mx.example.org"),
            (b"\r\n\tMX.Example.Org;\r\n dkim=pass", "MX.Example.Org"),
            (b" example.net", "example.net"),
            (b" \"quoted.example\"; none", "quoted.example"),
            (b"", ""),
        ];
        for (value, id) in cases {
            assert_eq!(
                authserv_id(value),
                *id,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn only_fields_claiming_our_id_are_removed() {
        let m = b"Authentication-Results: mx.ours.test; dkim=pass\r\n\
Authentication-Results: other.test; spf=pass\r\n\
authentication-results: (x) MX.OURS.TEST;\r\n\tdmarc=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.ours.test; body\r\n";
        let out = remove_our_results(m, "mx.ours.test").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Authentication-Results: other.test; spf=pass\r\nSubject: hi\r\n\r\nAuthentication-Results: mx.ours.test; body\r\n"
        );
        assert!(remove_our_results(b"Subject: x\r\n\r\n", "mx.ours.test").is_none());
    }

    #[test]
    fn from_domains() {
        let cases: &[(&[u8], &str)] = &[
            (b"From: Alice <alice@Example.ORG>\r\n\r\n", "example.org"),
            (b"From: bob@b.test\r\n\r\n", "b.test"),
            (b"Subject: none\r\n\r\n", ""),
            (b"From: \"x@y\" <c@c.test>\r\n\r\n", "c.test"),
        ];
        for (m, d) in cases {
            assert_eq!(from_domain(m), *d);
        }
    }
}
