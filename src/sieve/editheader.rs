//! RFC 5293 `editheader`: the header section as a script edits it. The
//! fields start as the message's own (decoded for tests, raw for
//! delivery); `addheader` puts a new one first or last, `deleteheader`
//! removes matching ones. Later tests see the edits, and the delivered
//! copy is rebuilt from the raw fields. `Received` and `Auto-Submitted`
//! are protected (§6: a script cannot hide where mail came from or make
//! automatic mail look personal): edits to them are ignored.

use super::Error;

/// Fields no script may add or delete.
const PROTECTED: [&str; 2] = ["received", "auto-submitted"];
/// The longest field `addheader` may make, in octets (RFC 5322's line
/// limit, less room for the name).
pub const MAX_FIELD: usize = 998;

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    /// Decoded and unfolded, for tests.
    pub value: String,
    raw: Raw,
}

#[derive(Debug, Clone)]
enum Raw {
    /// `message[start..end]`, as received.
    Original(usize, usize),
    Added(Vec<u8>),
}

pub fn is_protected(name: &str) -> bool {
    PROTECTED.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// RFC 5322 §3.6.8 field name: printable ASCII but `:`.
pub fn valid_name(name: &str) -> bool {
    crate::rfc5322::is_field_name(name, 128)
}

/// The message's fields: `headers` decoded, `starts` where each begins in
/// `message`, `end` where the header section ends.
pub fn fields(headers: &[(String, String)], starts: &[usize], end: usize) -> Vec<Field> {
    headers
        .iter()
        .enumerate()
        .map(|(i, (name, value))| {
            let start = starts.get(i).copied().unwrap_or(end).min(end);
            let stop = starts.get(i + 1).copied().unwrap_or(end).clamp(start, end);
            Field {
                name: name.clone(),
                value: value.clone(),
                raw: Raw::Original(start, stop),
            }
        })
        .collect()
}

/// A new field; its value is one line, RFC 2047-encoded if not ASCII.
pub fn added(name: &str, value: &str) -> Result<Field, Error> {
    let clean = crate::rfc5322::one_line(value, usize::MAX);
    let encoded = crate::rfc5322::encode_word(&clean);
    let line = format!("{name}: {encoded}\r\n");
    if line.len() > MAX_FIELD + 2 {
        return Err(Error::runtime(format!(
            "addheader: the field would be longer than {MAX_FIELD} octets"
        )));
    }
    Ok(Field {
        name: name.to_string(),
        value: clean,
        raw: Raw::Added(line.into_bytes()),
    })
}

/// The message with the edited header section (the body as received).
pub fn rebuild(message: &[u8], fields: &[Field], end: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 256);
    for f in fields {
        match &f.raw {
            Raw::Original(start, stop) => {
                out.extend_from_slice(message.get(*start..*stop).unwrap_or_default());
            }
            Raw::Added(bytes) => out.extend_from_slice(bytes),
        }
    }
    out.extend_from_slice(message.get(end..).unwrap_or_default());
    out
}
