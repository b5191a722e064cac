//! A message's MIME structure as IMAP sees it (RFC 3501 §6.4.5, §7.4.2):
//! byte ranges of every part's header and body, so that
//! `BODY[1.2.MIME]` and friends return the exact octets stored, plus the
//! renderers for BODYSTRUCTURE, BODY and ENVELOPE.
//!
//! The tree is our own (offsets must be exact and must never panic on
//! malformed input); mail-parser parses address lists for ENVELOPE and
//! decodes text for SEARCH.

use super::proto::response::{nstring, string};
use super::proto::{Section, SectionText};
use std::ops::Range;

/// Deepest MIME nesting we descend into; deeper parts are leaves.
const MAX_DEPTH: usize = 32;

/// One MIME entity (the whole message is one too).
#[derive(Debug, Clone, Default)]
pub struct Part {
    /// Header section including the empty line that ends it.
    pub header: Range<usize>,
    pub body: Range<usize>,
    /// Lower-cased.
    pub media_type: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
    pub id: Option<String>,
    pub description: Option<String>,
    pub encoding: Option<String>,
    pub md5: Option<String>,
    pub disposition: Option<(String, Vec<(String, String)>)>,
    pub language: Option<String>,
    pub location: Option<String>,
    pub children: Vec<Part>,
    /// The encapsulated message of a message/rfc822 part.
    pub message: Option<Box<Part>>,
}

/// Parses the whole message.
pub fn parse(raw: &[u8]) -> Part {
    parse_entity(raw, 0..raw.len(), false, 0)
}

fn parse_entity(raw: &[u8], range: Range<usize>, digest: bool, depth: usize) -> Part {
    let bytes = raw.get(range.clone()).unwrap_or_default();
    let header_len = header_length(bytes);
    let header = range.start..range.start + header_len;
    let body = range.start + header_len..range.end;
    let fields = header_fields(raw.get(header.clone()).unwrap_or_default());
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let (media_type, subtype, params) = match field("Content-Type") {
        Some(ct) => parse_content_type(&ct),
        None => default_type(digest),
    };
    let mut params = params;
    if media_type == "text" && !params.iter().any(|(k, _)| k == "charset") {
        // RFC 2045 §5.2 default, shown as servers usually do.
        params.push(("charset".into(), "us-ascii".into()));
    }
    let mut part = Part {
        header,
        body: body.clone(),
        media_type,
        subtype,
        params,
        id: field("Content-ID"),
        description: field("Content-Description"),
        encoding: field("Content-Transfer-Encoding"),
        md5: field("Content-MD5"),
        disposition: field("Content-Disposition").map(|d| {
            let (value, params) = split_params(&d);
            (value.to_ascii_lowercase(), params)
        }),
        language: field("Content-Language"),
        location: field("Content-Location"),
        children: Vec::new(),
        message: None,
    };
    if depth >= MAX_DEPTH {
        return part;
    }
    if part.media_type == "multipart" {
        let boundary = part
            .params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone());
        let digest = part.subtype == "digest";
        if let Some(boundary) = boundary.filter(|b| !b.is_empty()) {
            for child in split_multipart(raw, body, boundary.as_bytes()) {
                part.children
                    .push(parse_entity(raw, child, digest, depth + 1));
            }
        }
        if part.children.is_empty() {
            // IMAP needs at least one body part; show it as plain text.
            let (t, s, p) = default_type(false);
            (part.media_type, part.subtype, part.params) = (t, s, p);
        }
    } else if part.media_type == "message" && part.subtype == "rfc822" {
        part.message = Some(Box::new(parse_entity(raw, body, false, depth + 1)));
    }
    part
}

fn default_type(digest: bool) -> (String, String, Vec<(String, String)>) {
    if digest {
        ("message".into(), "rfc822".into(), Vec::new())
    } else {
        (
            "text".into(),
            "plain".into(),
            vec![("charset".into(), "us-ascii".into())],
        )
    }
}

/// Length of the header section including its terminating empty line (the
/// whole entity when there is none).
fn header_length(bytes: &[u8]) -> usize {
    if bytes.starts_with(b"\r\n") {
        return 2;
    }
    if bytes.starts_with(b"\n") {
        return 1;
    }
    let mut pos = 0;
    while let Some(lf) = bytes
        .get(pos..)
        .and_then(|b| b.iter().position(|&c| c == b'\n'))
    {
        let next = pos + lf + 1;
        match bytes.get(next..) {
            Some(rest) if rest.starts_with(b"\r\n") => return next + 2,
            Some(rest) if rest.starts_with(b"\n") => return next + 1,
            _ => pos = next,
        }
    }
    bytes.len()
}

/// The message's header section, the empty line that ends it included.
pub fn header_section(raw: &[u8]) -> &[u8] {
    raw.get(..header_length(raw)).unwrap_or(raw)
}

/// Unfolded (name, value) pairs of a header section.
pub fn header_fields(header: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in header_lines(header) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(text.trim_start());
            }
        } else if let Some((name, value)) = text.split_once(':') {
            out.push((name.trim().to_string(), value.trim_start().to_string()));
        }
    }
    out
}

/// The physical lines of a header section, terminators included.
fn header_lines(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    header
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| *l != b"\r\n" && *l != b"\n")
}

/// Whole fields (name line plus continuation lines) of a header section.
fn header_field_blocks(header: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in header_lines(header) {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if let Some((_, block)) = out.last_mut() {
                block.extend_from_slice(line);
            }
            continue;
        }
        let name = line
            .iter()
            .position(|&b| b == b':')
            .and_then(|i| line.get(..i))
            .map(|n| String::from_utf8_lossy(n).trim().to_string())
            .unwrap_or_default();
        out.push((name, line.to_vec()));
    }
    out
}

fn parse_content_type(value: &str) -> (String, String, Vec<(String, String)>) {
    let (kind, params) = split_params(value);
    let (t, s) = kind.split_once('/').unwrap_or((kind.as_str(), ""));
    let (t, s) = (t.trim().to_ascii_lowercase(), s.trim().to_ascii_lowercase());
    if t.is_empty() || s.is_empty() {
        let (t, s, p) = default_type(false);
        return (t, s, p);
    }
    (t, s, params)
}

/// `value; a=b; c="d; e"` into the value and lower-cased parameter names.
fn split_params(text: &str) -> (String, Vec<(String, String)>) {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            current.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => items.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    items.push(current);
    let mut iter = items.into_iter();
    let value = iter.next().unwrap_or_default().trim().to_string();
    let params = iter
        .filter_map(|item| {
            let (k, v) = item.split_once('=')?;
            let k = k.trim().to_ascii_lowercase();
            (!k.is_empty()).then(|| (k, v.trim().to_string()))
        })
        .collect();
    (value, params)
}

/// The byte ranges of the body parts between `--boundary` lines.
fn split_multipart(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let bytes = raw.get(body.clone()).unwrap_or_default();
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let mut parts = Vec::new();
    // Start of the current part's content, once the first delimiter is seen.
    let mut open: Option<usize> = None;
    let mut line_start = 0;
    while line_start < bytes.len() {
        let line_end = bytes
            .get(line_start..)
            .and_then(|b| b.iter().position(|&c| c == b'\n'))
            .map_or(bytes.len(), |i| line_start + i + 1);
        let line = bytes.get(line_start..line_end).unwrap_or_default();
        if let Some(rest) = line.strip_prefix(delimiter.as_slice()) {
            let closing = rest.starts_with(b"--");
            let rest = if closing {
                rest.get(2..).unwrap_or_default()
            } else {
                rest
            };
            if rest.iter().all(|b| b.is_ascii_whitespace()) {
                if let Some(start) = open {
                    // The line break before the delimiter belongs to it.
                    let mut end = line_start;
                    if end > start && bytes.get(end - 1) == Some(&b'\n') {
                        end -= 1;
                        if end > start && bytes.get(end - 1) == Some(&b'\r') {
                            end -= 1;
                        }
                    }
                    parts.push(body.start + start..body.start + end.max(start));
                }
                if closing {
                    return parts;
                }
                open = Some(line_end);
            }
        }
        line_start = line_end;
    }
    if let Some(start) = open {
        parts.push(body.start + start..body.end);
    }
    parts
}

fn count_lines(bytes: &[u8]) -> usize {
    let lf = bytes.iter().filter(|&&b| b == b'\n').count();
    if bytes.last().is_some_and(|&b| b != b'\n') {
        lf + 1
    } else {
        lf
    }
}

impl Part {
    fn is_multipart(&self) -> bool {
        !self.children.is_empty()
    }

    /// The part a section path names (RFC 3501 §6.4.5): numbers index the
    /// children of a multipart; in a non-multipart, `1` is the entity
    /// itself; after a message/rfc822 part, numbering continues inside
    /// the encapsulated message.
    pub fn find(&self, path: &[u32]) -> Option<&Part> {
        let mut cur = self;
        for (i, &n) in path.iter().enumerate() {
            if i > 0
                && let Some(inner) = &cur.message
            {
                cur = inner;
            }
            let index = usize::try_from(n).ok()?.checked_sub(1)?;
            if cur.is_multipart() {
                cur = cur.children.get(index)?;
            } else if index != 0 {
                return None;
            }
        }
        Some(cur)
    }

    /// The octets of a body section, or `None` if the section does not
    /// exist (the caller then returns an empty string, as servers do).
    pub fn section(&self, raw: &[u8], section: &Section) -> Option<Vec<u8>> {
        let part = self.find(&section.path)?;
        let slice = |r: &Range<usize>| raw.get(r.clone()).map(<[u8]>::to_vec);
        // HEADER, TEXT and HEADER.FIELDS address a message: the root, or
        // the encapsulated message of a message/rfc822 part.
        let message = || -> Option<&Part> {
            if section.path.is_empty() {
                Some(self)
            } else {
                part.message.as_deref()
            }
        };
        match &section.text {
            // BODY[] is the whole message.
            None if section.path.is_empty() => Some(raw.to_vec()),
            None => slice(&part.body),
            Some(SectionText::Mime) => slice(&part.header),
            Some(SectionText::Header) => slice(&message()?.header),
            Some(SectionText::Text) => slice(&message()?.body),
            Some(SectionText::HeaderFields { not, fields }) => {
                let header = raw.get(message()?.header.clone())?;
                let mut out = Vec::new();
                for (name, block) in header_field_blocks(header) {
                    let listed = fields.iter().any(|f| f.eq_ignore_ascii_case(&name));
                    if listed != *not {
                        out.extend_from_slice(&block);
                        if !block.ends_with(b"\n") {
                            out.extend_from_slice(b"\r\n");
                        }
                    }
                }
                out.extend_from_slice(b"\r\n");
                Some(out)
            }
        }
    }

    /// BODYSTRUCTURE (`extended`) or BODY.
    pub fn write_structure(&self, raw: &[u8], out: &mut Vec<u8>, extended: bool) {
        out.push(b'(');
        if self.is_multipart() {
            for child in &self.children {
                child.write_structure(raw, out, extended);
            }
            out.push(b' ');
            string(out, self.subtype.as_bytes());
            if extended {
                out.push(b' ');
                write_params(out, &self.params);
                out.push(b' ');
                self.write_extensions(out);
            }
        } else {
            string(out, self.media_type.as_bytes());
            out.push(b' ');
            string(out, self.subtype.as_bytes());
            out.push(b' ');
            write_params(out, &self.params);
            out.push(b' ');
            nstring(out, self.id.as_deref().map(str::as_bytes));
            out.push(b' ');
            nstring(out, self.description.as_deref().map(str::as_bytes));
            out.push(b' ');
            let encoding = self.encoding.as_deref().unwrap_or("7bit");
            string(out, encoding.as_bytes());
            let body = raw.get(self.body.clone()).unwrap_or_default();
            out.extend_from_slice(format!(" {}", body.len()).as_bytes());
            if let Some(inner) = &self.message {
                out.push(b' ');
                write_envelope(raw.get(inner.header.clone()).unwrap_or_default(), out);
                out.push(b' ');
                inner.write_structure(raw, out, extended);
                out.extend_from_slice(format!(" {}", count_lines(body)).as_bytes());
            } else if self.media_type == "text" {
                out.extend_from_slice(format!(" {}", count_lines(body)).as_bytes());
            }
            if extended {
                out.push(b' ');
                nstring(out, self.md5.as_deref().map(str::as_bytes));
                out.push(b' ');
                self.write_extensions(out);
            }
        }
        out.push(b')');
    }

    /// body-fld-dsp SP body-fld-lang SP body-fld-loc
    fn write_extensions(&self, out: &mut Vec<u8>) {
        match &self.disposition {
            Some((kind, params)) if !kind.is_empty() => {
                out.push(b'(');
                string(out, kind.as_bytes());
                out.push(b' ');
                write_params(out, params);
                out.push(b')');
            }
            _ => out.extend_from_slice(b"NIL"),
        }
        out.push(b' ');
        let languages: Vec<&str> = self
            .language
            .as_deref()
            .map(|l| {
                l.split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        match languages.as_slice() {
            [] => out.extend_from_slice(b"NIL"),
            [one] => string(out, one.as_bytes()),
            many => {
                out.push(b'(');
                for (i, l) in many.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    string(out, l.as_bytes());
                }
                out.push(b')');
            }
        }
        out.push(b' ');
        nstring(out, self.location.as_deref().map(str::as_bytes));
    }
}

fn write_params(out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.as_bytes());
        out.push(b' ');
        string(out, v.as_bytes());
    }
    out.push(b')');
}

/// RFC 8970 PREVIEW: up to 200 characters of the message's first text
/// part (HTML reduced to its text), decoded, with runs of white space as
/// one space; empty when there is no text. (The RFC allows 256; clients
/// show less.)
pub fn preview(raw: &[u8]) -> String {
    const CHARS: usize = 200;
    let Some(parsed) = mail_parser::MessageParser::new().parse(raw) else {
        return String::new();
    };
    let text = parsed
        .body_text(0)
        .or_else(|| {
            parsed
                .body_html(0)
                .map(|h| crate::html::text(&h, false).into())
        })
        .unwrap_or_default();
    let mut out = String::new();
    let (mut count, mut space) = (0, false);
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            space = count > 0;
            continue;
        }
        let needed = if space { 2 } else { 1 };
        if count + needed > CHARS {
            break;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
        count += needed;
    }
    out
}

/// ENVELOPE of a message given its header section (RFC 3501 §7.4.2).
pub fn write_envelope(header: &[u8], out: &mut Vec<u8>) {
    let fields = header_fields(header);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let parsed = mail_parser::MessageParser::new().parse_headers(header);
    let addresses = |name: &str| -> Option<Vec<EnvelopeAddress>> {
        let msg = parsed.as_ref()?;
        let value = msg.header(name)?.as_address()?;
        let list = envelope_addresses(value);
        (!list.is_empty()).then_some(list)
    };
    out.push(b'(');
    nstring(out, field("Date").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, field("Subject").as_deref().map(str::as_bytes));
    let from = addresses("From");
    let sender = addresses("Sender").or_else(|| from.clone());
    let reply_to = addresses("Reply-To").or_else(|| from.clone());
    for list in [
        from,
        sender,
        reply_to,
        addresses("To"),
        addresses("Cc"),
        addresses("Bcc"),
    ] {
        out.push(b' ');
        write_address_list(out, list.as_deref());
    }
    out.push(b' ');
    nstring(out, field("In-Reply-To").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, field("Message-ID").as_deref().map(str::as_bytes));
    out.push(b')');
}

#[derive(Clone, Debug)]
enum EnvelopeAddress {
    Mailbox {
        name: Option<String>,
        /// The source route (`@a,@b`), RFC 3501's `addr-adl`.
        adl: Option<String>,
        local: Option<String>,
        host: Option<String>,
    },
    GroupStart(String),
    GroupEnd,
}

fn envelope_addresses(value: &mail_parser::Address<'_>) -> Vec<EnvelopeAddress> {
    let mailbox = |a: &mail_parser::Addr<'_>| {
        // `<@route1,@route2:user@domain>` (RFC 5322 §4.4 obs-route): the
        // route goes into the adl field, not into the local part.
        let (adl, addr) = match a.address.as_deref() {
            Some(addr) if addr.starts_with('@') => match addr.split_once(':') {
                Some((route, rest)) => (Some(route.to_string()), Some(rest)),
                None => (None, Some(addr)),
            },
            other => (None, other),
        };
        let (local, host) = match addr {
            Some(addr) => match addr.rsplit_once('@') {
                Some((l, h)) => (Some(l.to_string()), Some(h.to_string())),
                None => (Some(addr.to_string()), None),
            },
            None => (None, None),
        };
        EnvelopeAddress::Mailbox {
            name: a.name.as_deref().map(encode_word),
            adl,
            local,
            host,
        }
    };
    match value {
        mail_parser::Address::List(list) => list.iter().map(mailbox).collect(),
        mail_parser::Address::Group(groups) => {
            let mut out = Vec::new();
            for g in groups {
                match &g.name {
                    Some(name) => {
                        out.push(EnvelopeAddress::GroupStart(encode_word(name)));
                        // A comment inside a group (`group: (foo) ;`) is
                        // parsed as a name without an address: not a member.
                        out.extend(
                            g.addresses
                                .iter()
                                .filter(|a| a.address.is_some())
                                .map(mailbox),
                        );
                        out.push(EnvelopeAddress::GroupEnd);
                    }
                    None => out.extend(g.addresses.iter().map(mailbox)),
                }
            }
            out
        }
    }
}

// mail-parser decodes encoded words; ENVELOPE strings are 7-bit, so
// non-ASCII names go back into an RFC 2047 encoded word.
use crate::rfc5322::encode_word;

fn write_address_list(out: &mut Vec<u8>, list: Option<&[EnvelopeAddress]>) {
    let Some(list) = list else {
        out.extend_from_slice(b"NIL");
        return;
    };
    out.push(b'(');
    for a in list {
        let (name, adl, local, host) = match a {
            EnvelopeAddress::Mailbox {
                name,
                adl,
                local,
                host,
            } => (
                name.as_deref(),
                adl.as_deref(),
                local.as_deref(),
                host.as_deref(),
            ),
            EnvelopeAddress::GroupStart(name) => (None, None, Some(name.as_str()), None),
            EnvelopeAddress::GroupEnd => (None, None, None, None),
        };
        out.push(b'(');
        nstring(out, name.map(str::as_bytes));
        out.push(b' ');
        nstring(out, adl.map(str::as_bytes));
        out.push(b' ');
        nstring(out, local.map(str::as_bytes));
        out.push(b' ');
        nstring(out, host.map(str::as_bytes));
        out.push(b')');
    }
    out.push(b')');
}

/// Decoded text of a message for SEARCH TEXT/BODY: `(headers, body)`,
/// lower-cased. Bodies of text parts are decoded from their transfer
/// encoding and charset by mail-parser.
/// True when no part of `raw` is transfer-encoded (base64, quoted-
/// printable) and no header uses RFC 2047 encoded words, so for an ASCII
/// needle the raw bytes search like the decoded text (charsets keep ASCII
/// as is; UTF-16 mail is not sent over SMTP).
pub fn is_plain(raw: &[u8]) -> bool {
    let lower = raw.to_ascii_lowercase();
    memchr::memmem::find(&lower, b"=?").is_none()
        && memchr::memmem::find(&lower, b"base64").is_none()
        && memchr::memmem::find(&lower, b"quoted-printable").is_none()
}

/// ASCII case-insensitive substring test.
pub fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    let haystack = haystack.to_ascii_lowercase();
    memchr::memmem::find(&haystack, &needle.to_ascii_lowercase()).is_some()
}

pub fn search_text(raw: &[u8]) -> (String, String) {
    let Some(msg) = mail_parser::MessageParser::new().parse(raw) else {
        return (String::from_utf8_lossy(raw).to_lowercase(), String::new());
    };
    let mut headers = String::new();
    let mut body = String::new();
    collect_text(&msg, &mut headers, &mut body, 0);
    (headers.to_lowercase(), body.to_lowercase())
}

fn collect_text(
    msg: &mail_parser::Message<'_>,
    headers: &mut String,
    body: &mut String,
    depth: usize,
) {
    let header_end = msg
        .root_part()
        .raw_body_offset()
        .try_into()
        .unwrap_or(usize::MAX);
    let raw_header = msg
        .raw_message()
        .get(..header_end)
        .unwrap_or(msg.raw_message());
    headers.push_str(&String::from_utf8_lossy(raw_header));
    if let Some(subject) = msg.subject() {
        headers.push('\n');
        headers.push_str(subject);
    }
    for addr in [msg.from(), msg.to(), msg.cc()].into_iter().flatten() {
        for a in addr.iter() {
            if let Some(name) = &a.name {
                headers.push('\n');
                headers.push_str(name);
            }
        }
    }
    for part in &msg.parts {
        match &part.body {
            mail_parser::PartType::Text(t) | mail_parser::PartType::Html(t) => {
                body.push_str(t);
                body.push('\n');
            }
            mail_parser::PartType::Message(inner) if depth < MAX_DEPTH => {
                // An encapsulated message, headers included, is body text
                // of the outer one.
                let (mut h, mut b) = (String::new(), String::new());
                collect_text(inner, &mut h, &mut b, depth + 1);
                body.push_str(&h);
                body.push_str(&b);
            }
            _ => {}
        }
    }
}

/// Unfolded value of every header field named `name` (raw, and decoded
/// for the common address and subject fields).
pub fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let header = raw.get(..header_length(raw)).unwrap_or_default();
    let mut values: Vec<String> = header_fields(header)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect();
    if !values.is_empty()
        && let Some(msg) = mail_parser::MessageParser::new().parse_headers(header)
        && let Some(value) = msg.header(name)
    {
        if let Some(text) = value.as_text() {
            values.push(text.to_string());
        }
        if let Some(addr) = value.as_address() {
            for a in addr.iter() {
                values.push(format!(
                    "{} <{}>",
                    a.name.as_deref().unwrap_or_default(),
                    a.address.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    values
}

/// The Date: header as days since the epoch (its own calendar day).
pub fn sent_day(raw: &[u8]) -> Option<i64> {
    let header = raw.get(..header_length(raw))?;
    let msg = mail_parser::MessageParser::new().parse_headers(header)?;
    let date = msg.date()?;
    Some(super::proto::date::days_from_civil(
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_prefilter() {
        assert!(contains_ignore_ascii_case(b"Hello Zanzibar!", b"zanZIBAR"));
        assert!(!contains_ignore_ascii_case(b"Hello", b"hello!"));
        assert!(contains_ignore_ascii_case(b"x", b""));
        assert!(is_plain(b"Subject: hi\r\n\r\nplain body\r\n"));
        assert!(!is_plain(b"Subject: =?utf-8?q?hi?=\r\n\r\nx\r\n"));
        assert!(!is_plain(
            b"Content-Transfer-Encoding: BASE64\r\n\r\naGk=\r\n"
        ));
    }

    const NESTED: &str = "From: Alice <alice@example.com>\r\n\
To: bob@example.com, \"Carol C\" <carol@example.com>\r\n\
Subject: nested\r\n\
Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
Message-ID: <m1@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
hello\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: dave@example.com\r\n\
Subject: inner\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain\r\n\
\r\n\
inner text\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>inner</p>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"a b.bin\"\r\n\
\r\n\
AAEC\r\n\
--outer--\r\n\
epilogue\r\n";

    fn section(path: &[u32], text: Option<SectionText>) -> Section {
        Section {
            path: path.to_vec(),
            text,
        }
    }

    fn get(raw: &[u8], path: &[u32], text: Option<SectionText>) -> String {
        let tree = parse(raw);
        String::from_utf8(tree.section(raw, &section(path, text)).unwrap()).unwrap()
    }

    #[test]
    fn sections_of_a_nested_message() {
        let raw = NESTED.as_bytes();
        assert_eq!(get(raw, &[1], None), "hello");
        assert_eq!(
            get(raw, &[1], Some(SectionText::Mime)),
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        );
        assert!(get(raw, &[2], None).starts_with("From: dave@example.com\r\n"));
        assert!(get(raw, &[2], None).ends_with("--inner--"));
        assert_eq!(
            get(raw, &[2], Some(SectionText::Header)),
            "From: dave@example.com\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
        );
        assert_eq!(get(raw, &[2, 1], None), "inner text");
        assert_eq!(get(raw, &[2, 2], None), "<p>inner</p>");
        assert_eq!(get(raw, &[3], None), "AAEC");
        assert_eq!(
            get(
                raw,
                &[],
                Some(SectionText::HeaderFields {
                    not: false,
                    fields: vec!["subject".into(), "FROM".into()]
                })
            ),
            "From: Alice <alice@example.com>\r\nSubject: nested\r\n\r\n"
        );
        assert!(get(raw, &[], Some(SectionText::Text)).starts_with("preamble\r\n--outer"));
        let tree = parse(raw);
        assert!(tree.section(raw, &section(&[4], None)).is_none());
        assert!(tree.section(raw, &section(&[1, 2], None)).is_none());
    }

    #[test]
    fn bodystructure_of_a_nested_message() {
        let raw = NESTED.as_bytes();
        let mut out = Vec::new();
        parse(raw).write_structure(raw, &mut out, true);
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" "),
            "{s}"
        );
        assert!(s.contains("((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 1 NIL NIL NIL NIL)(\"text\" \"html\""), "{s}");
        assert!(
            s.contains("\"alternative\" (\"boundary\" \"inner\") NIL NIL NIL)"),
            "{s}"
        );
        assert!(s.contains("(\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 4 NIL (\"attachment\" (\"filename\" \"a b.bin\")) NIL NIL)"), "{s}");
        assert!(
            s.ends_with(" \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)"),
            "{s}"
        );
        let mut body = Vec::new();
        parse(raw).write_structure(raw, &mut body, false);
        let b = String::from_utf8(body).unwrap();
        assert!(b.ends_with("\"base64\" 4) \"mixed\")"), "{b}");
    }

    #[test]
    fn envelope() {
        let raw = NESTED.as_bytes();
        let tree = parse(raw);
        let mut out = Vec::new();
        write_envelope(raw.get(tree.header.clone()).unwrap(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "(\"Mon, 1 Jan 2024 10:00:00 +0000\" \"nested\" ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) ((NIL NIL \"bob\" \"example.com\")(\"Carol C\" NIL \"carol\" \"example.com\")) NIL NIL NIL \"<m1@example.com>\")"
        );
    }

    #[test]
    fn previews_are_short_plain_text() {
        let p = preview(b"Subject: s\r\n\r\nHello   there,\r\n\r\n  second\tline\r\n");
        assert_eq!(p, "Hello there, second line");
        let long = format!("Subject: s\r\n\r\n{}\r\n", "word ".repeat(100));
        let cut = preview(long.as_bytes());
        assert!(
            cut.chars().count() <= 200 && cut.chars().count() >= 195,
            "{cut}"
        );
        let html = b"Content-Type: text/html\r\n\r\n<p>Hi <b>you</b></p>\r\n";
        assert_eq!(preview(html), "Hi you");
        assert_eq!(preview(b""), "");
    }

    #[test]
    fn envelope_routes_and_group_comments() {
        let mut out = Vec::new();
        write_envelope(
            b"From: <@route:user@domain>\r\nTo: group2: (foo) ;, a@x\r\n\r\n",
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("((NIL \"@route\" \"user\" \"domain\"))"),
            "{text}"
        );
        assert!(
            text.contains("((NIL NIL \"group2\" NIL)(NIL NIL NIL NIL)(NIL NIL \"a\" \"x\"))"),
            "{text}"
        );
    }

    #[test]
    fn simple_and_malformed_messages_never_panic() {
        let simple = b"Subject: hi\r\n\r\nline1\r\nline2\r\n";
        let tree = parse(simple);
        let mut out = Vec::new();
        tree.write_structure(simple, &mut out, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2)"
        );
        assert_eq!(get(simple, &[1], None), "line1\r\nline2\r\n");
        for raw in [
            &b""[..],
            b"\r\n",
            b"no header end",
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n",
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\nnothing",
            b"Content-Type: message/rfc822\r\n\r\n",
            b"Content-Type: /\r\n\r\n",
            b"Content-Type: multipart/mixed; boundary=\"\r\n\r\n",
        ] {
            let tree = parse(raw);
            let mut out = Vec::new();
            tree.write_structure(raw, &mut out, true);
            write_envelope(raw, &mut out);
            let _ = tree.section(raw, &section(&[1, 1, 1], Some(SectionText::Header)));
        }
        let (h, b) = search_text(NESTED.as_bytes());
        assert!(h.contains("nested") && b.contains("inner text") && b.contains("hello"));
        assert_eq!(
            sent_day(NESTED.as_bytes()),
            Some(super::super::proto::date::days_from_civil(2024, 1, 1))
        );
        assert!(
            header_values(NESTED.as_bytes(), "to")
                .iter()
                .any(|v| v.contains("Carol C"))
        );
    }
}
