//! The message as filters see it (header fields, then the body) and the
//! changes they ask for, applied: headers added, inserted, changed or
//! deleted (by the index libmilter counts: the Nth field of that name),
//! the body replaced, recipients added or removed, the sender changed.

use super::client::Change;

/// One header field: its name and its value as it follows the colon
/// (folding kept, line ends as LF, the leading space dropped), and the
/// octets it arrived as, kept while no filter touches it (so fields
/// nobody changed stay byte for byte, and their DKIM signatures hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
    raw: Option<Vec<u8>>,
}

impl Field {
    fn new(name: &str, value: &str) -> Field {
        Field {
            name: name.to_string(),
            value: value.to_string(),
            raw: None,
        }
    }
}

/// Splits `message` into header fields and body.
pub fn split(message: &[u8]) -> (Vec<Field>, &[u8]) {
    let end = crate::rfc5322::scan_headers(message).end;
    let header = message.get(..end).unwrap_or(message);
    let mut body = message.get(end..).unwrap_or_default();
    // The empty separator line belongs to neither.
    if let Some(rest) = body.strip_prefix(b"\r\n") {
        body = rest;
    } else if let Some(rest) = body.strip_prefix(b"\n") {
        body = rest;
    }
    let mut fields: Vec<Field> = Vec::new();
    for line in header.split_inclusive(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if let Some(last) = fields.last_mut() {
                last.value.push('\n');
                last.value.push_str(text);
                if let Some(raw) = last.raw.as_mut() {
                    raw.extend_from_slice(line);
                }
            }
            continue;
        }
        if let Some((name, value)) = text.split_once(':') {
            fields.push(Field {
                name: name.trim_end().to_string(),
                value: value.strip_prefix(' ').unwrap_or(value).to_string(),
                raw: Some(line.to_vec()),
            });
        }
    }
    (fields, body)
}

/// Joins fields and body again: untouched fields as they came, changed
/// ones with CRLF line ends.
pub fn join(fields: &[Field], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + fields.len() * 64);
    for f in fields {
        match &f.raw {
            Some(raw) => {
                out.extend_from_slice(raw);
                if !raw.ends_with(b"\n") {
                    out.extend_from_slice(b"\r\n");
                }
            }
            None => {
                out.extend_from_slice(f.name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(folded(&f.value).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A filter's value with CRLF line ends, where every line after the first
/// starts with white space (a line that does not would start a new field,
/// or an empty one would end the header: both are injections), and no
/// bare CR.
fn folded(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for (i, line) in text.split('\n').enumerate() {
        let line = line.trim_end_matches('\r').replace('\r', " ");
        if i > 0 {
            if line.trim().is_empty() {
                continue;
            }
            out.push_str("\r\n");
            if !line.starts_with([' ', '\t']) {
                out.push('\t');
            }
        }
        out.push_str(&line);
    }
    out
}

/// A field name a filter may add: printable ASCII without `:` or space.
fn valid_name(name: &str) -> bool {
    crate::rfc5322::is_field_name(name, 256)
}

/// The envelope a filter may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub sender: String,
    pub recipients: Vec<String>,
    /// SMFIR_QUARANTINE: the message goes to the hold queue, for this.
    pub quarantine: Option<String>,
}

/// Applies one filter's `changes` to `message` and `envelope`; the new
/// message. Changes that make no sense (a field name with a colon, an
/// address that does not parse, a new body over `max_size`) are logged
/// and left out.
pub fn apply(
    message: &[u8],
    changes: &[Change],
    envelope: &mut Envelope,
    max_size: usize,
) -> Vec<u8> {
    let (mut fields, body) = split(message);
    let mut new_body: Option<Vec<u8>> = None;
    let mut body_too_big = false;
    for change in changes {
        match change {
            Change::AddHeader { name, .. }
            | Change::InsertHeader { name, .. }
            | Change::ChangeHeader { name, .. }
                if !valid_name(name) =>
            {
                tracing::warn!("milter: ignored a header change with the bad name {name:?}");
            }
            Change::AddHeader { name, value } => fields.push(Field::new(name, value)),
            Change::InsertHeader { index, name, value } => {
                let at = (*index as usize).min(fields.len());
                fields.insert(at, Field::new(name, value));
            }
            Change::ChangeHeader { index, name, value } => {
                change_header(&mut fields, *index, name, value);
            }
            Change::ReplaceBody(chunk) => {
                let b = new_body.get_or_insert_with(Vec::new);
                if b.len() + chunk.len() > max_size {
                    body_too_big = true;
                } else {
                    b.extend_from_slice(chunk);
                }
            }
            Change::AddRcpt(r) => match address(r) {
                Some(r) if !r.is_empty() => {
                    if !envelope
                        .recipients
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(&r))
                    {
                        envelope.recipients.push(r);
                    }
                }
                _ => tracing::warn!("milter: ignored the recipient {r:?}"),
            },
            Change::DeleteRcpt(r) => {
                let r = bare(r);
                envelope.recipients.retain(|x| !x.eq_ignore_ascii_case(&r));
            }
            Change::ChangeFrom(f) => match address(f) {
                Some(f) => envelope.sender = f,
                None => tracing::warn!("milter: ignored the sender {f:?}"),
            },
            Change::Quarantine(reason) => {
                envelope.quarantine = Some(if reason.is_empty() {
                    "milter quarantine".into()
                } else {
                    reason
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(200)
                        .collect()
                });
            }
            // Verdicts are not changes; the client never passes them on.
            _ => {}
        }
    }
    if body_too_big {
        tracing::warn!("milter: ignored a replacement body over {max_size} octets");
        new_body = None;
    }
    let body = match &new_body {
        Some(b) => normalise_body(b),
        None => body.to_vec(),
    };
    join(&fields, &body)
}

/// The `index`th (1-based) field called `name`: replaced, or removed when
/// `value` is empty. An index past the last adds the field (libmilter).
fn change_header(fields: &mut Vec<Field>, index: u32, name: &str, value: &str) {
    let index = index.max(1) as usize;
    let position = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name.eq_ignore_ascii_case(name))
        .nth(index - 1)
        .map(|(i, _)| i);
    match (position, value.is_empty()) {
        (Some(i), true) => {
            fields.remove(i);
        }
        (Some(i), false) => {
            if let Some(f) = fields.get_mut(i) {
                *f = Field::new(&f.name.clone(), value);
            }
        }
        (None, false) => fields.push(Field::new(name, value)),
        (None, true) => {}
    }
}

/// A replaced body with CRLF line ends (filters may send bare LF).
fn normalise_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 40);
    let mut previous = 0u8;
    for &b in body {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    out
}

/// `<a@b>` -> `a@b`.
fn bare(address: &str) -> String {
    let a = address.trim();
    a.strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(a)
        .to_string()
}

/// An envelope address a filter gave: `""` (the null sender) or one that
/// parses.
fn address(text: &str) -> Option<String> {
    let a = bare(text);
    if a.is_empty() {
        return Some(a);
    }
    crate::address::Address::parse(&a)
        .ok()
        .map(|p| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] =
        b"Subject: hi\r\nX-A: one\r\nX-A: two\r\n\tfolded\r\nFrom: a@b\r\n\r\nbody\r\n";

    #[test]
    fn splits_and_joins_unchanged() {
        let (fields, body) = split(MESSAGE);
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[2].value, "two\n\tfolded");
        assert_eq!(body, b"body\r\n");
        assert_eq!(join(&fields, body), MESSAGE);
    }

    #[test]
    fn bad_changes_are_left_out_and_values_cannot_inject() {
        let mut env = Envelope {
            sender: "a@b".into(),
            recipients: vec!["r1@x".into()],
            quarantine: None,
        };
        let changes = [
            Change::AddHeader {
                name: "X-Bad: name".into(),
                value: "v".into(),
            },
            Change::AddHeader {
                name: "X-Inject".into(),
                value: "one\n\nBody-Now: yes\nX-Evil: 1\rx".into(),
            },
            Change::AddRcpt("<>".into()),
            Change::AddRcpt("not an address".into()),
            Change::ReplaceBody(vec![b'x'; 100]),
        ];
        let out = String::from_utf8(apply(MESSAGE, &changes, &mut env, 50)).unwrap();
        assert!(!out.contains("X-Bad"), "{out}");
        assert!(
            out.contains("X-Inject: one\r\n\tBody-Now: yes\r\n\tX-Evil: 1 x\r\n\r\nbody\r\n"),
            "{out}"
        );
        assert_eq!(env.recipients, ["r1@x"]);
    }

    #[test]
    fn header_body_and_envelope_changes() {
        let mut env = Envelope {
            sender: "a@b".into(),
            recipients: vec!["r1@x".into(), "r2@x".into()],
            quarantine: None,
        };
        let changes = [
            Change::AddHeader {
                name: "X-Added".into(),
                value: "yes".into(),
            },
            Change::InsertHeader {
                index: 0,
                name: "X-Top".into(),
                value: "1".into(),
            },
            Change::ChangeHeader {
                index: 2,
                name: "x-a".into(),
                value: String::new(),
            },
            Change::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: "[SPAM] hi".into(),
            },
            Change::ReplaceBody(b"new\nbody\n".to_vec()),
            Change::AddRcpt("<r3@x>".into()),
            Change::DeleteRcpt("<R1@x>".into()),
            Change::ChangeFrom("<bounce@b>".into()),
            Change::Quarantine("held by filter".into()),
        ];
        let out = apply(MESSAGE, &changes, &mut env, 1 << 20);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "X-Top: 1\r\nSubject: [SPAM] hi\r\nX-A: one\r\nFrom: a@b\r\nX-Added: yes\r\n\r\nnew\r\nbody\r\n"
        );
        assert_eq!(env.recipients, ["r2@x", "r3@x"]);
        assert_eq!(env.sender, "bounce@b");
        assert_eq!(env.quarantine.as_deref(), Some("held by filter"));
    }
}
