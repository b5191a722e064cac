//! The message as filters see it (header fields, then the body) and the
//! changes they ask for, applied: headers added, inserted, changed or
//! deleted (by the index libmilter counts: the Nth field of that name),
//! the body replaced, recipients added or removed, the sender changed.

use super::client::Change;

/// One header field: its name and its value as it follows the colon
/// (folding kept, line ends as LF, the leading space dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
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
    let text = String::from_utf8_lossy(header);
    let mut fields: Vec<Field> = Vec::new();
    for line in text.split_inclusive('\n') {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.value.push('\n');
                last.value.push_str(line);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push(Field {
                name: name.trim_end().to_string(),
                value: value.strip_prefix(' ').unwrap_or(value).to_string(),
            });
        }
    }
    (fields, body)
}

/// Joins fields and body again, CRLF line ends throughout.
pub fn join(fields: &[Field], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + fields.len() * 64);
    for f in fields {
        out.extend_from_slice(f.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(crlf(&f.value).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// LF (or CRLF) line ends as CRLF.
fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// The envelope a filter may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub sender: String,
    pub recipients: Vec<String>,
    /// SMFIR_QUARANTINE: the message goes to the hold queue, for this.
    pub quarantine: Option<String>,
}

/// Applies `changes` to `message` and `envelope`; the new message.
/// `max_size` bounds a replaced body (a larger one is ignored: the
/// original stays, and the caller logs it).
pub fn apply(
    message: &[u8],
    changes: &[Change],
    envelope: &mut Envelope,
    max_size: usize,
) -> Vec<u8> {
    let (mut fields, body) = split(message);
    let mut new_body: Option<Vec<u8>> = None;
    for change in changes {
        match change {
            Change::AddHeader { name, value } => fields.push(Field {
                name: name.clone(),
                value: value.clone(),
            }),
            Change::InsertHeader { index, name, value } => {
                let at = (*index as usize).min(fields.len());
                fields.insert(
                    at,
                    Field {
                        name: name.clone(),
                        value: value.clone(),
                    },
                );
            }
            Change::ChangeHeader { index, name, value } => {
                change_header(&mut fields, *index, name, value);
            }
            Change::ReplaceBody(chunk) => {
                let b = new_body.get_or_insert_with(Vec::new);
                if b.len() + chunk.len() <= max_size {
                    b.extend_from_slice(chunk);
                }
            }
            Change::AddRcpt(r) => {
                let r = bare(r);
                if !envelope
                    .recipients
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(&r))
                {
                    envelope.recipients.push(r);
                }
            }
            Change::DeleteRcpt(r) => {
                let r = bare(r);
                envelope.recipients.retain(|x| !x.eq_ignore_ascii_case(&r));
            }
            Change::ChangeFrom(f) => envelope.sender = bare(f),
            Change::Quarantine(reason) => {
                envelope.quarantine = Some(if reason.is_empty() {
                    "milter quarantine".into()
                } else {
                    reason.clone()
                });
            }
            // Verdicts are not changes; the client never passes them on.
            _ => {}
        }
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
                f.value = value.to_string();
            }
        }
        (None, false) => fields.push(Field {
            name: name.to_string(),
            value: value.to_string(),
        }),
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
