//! The one pass over a message that content checks make.

use super::{
    Action, BODY_LINE_LIMIT, ContentChecks, Inspection, LineAction, first_match, interpret,
};
use crate::tables::Table;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Zone {
    Primary,
    Part,
    Nested,
}

struct Scanner<'a> {
    checks: &'a ContentChecks,
    message: &'a [u8],
    /// Offset of the next byte not yet copied or dropped.
    at: usize,
    /// The rewritten message, started at the first change.
    out: Option<Vec<u8>>,
    inspection: Inspection,
    stopped: bool,
}

pub(super) fn inspect(checks: &ContentChecks, message: &[u8]) -> Inspection {
    let mut s = Scanner {
        checks,
        message,
        at: 0,
        out: None,
        inspection: Inspection::default(),
        stopped: false,
    };
    let lines = split_lines(message);
    let mut boundaries: Vec<Vec<u8>> = Vec::new();
    let (mut i, _) = s.headers(&lines, 0, Zone::Primary, &mut boundaries);
    let mut part_bytes = 0usize;
    while i < lines.len() && !s.stopped {
        let (start, line) = lines[i];
        let text = trim_eol(line);
        if let Some((depth, closing)) = boundary(text, &boundaries) {
            s.keep(start, line);
            i += 1;
            part_bytes = 0;
            if closing {
                boundaries.truncate(depth);
                continue;
            }
            boundaries.truncate(depth + 1);
            let (next, rfc822) = s.headers(&lines, i, Zone::Part, &mut boundaries);
            i = next;
            if rfc822 {
                i = s.headers(&lines, i, Zone::Nested, &mut boundaries).0;
            }
            continue;
        }
        if part_bytes < s.checks.body_limit && !s.checks.body.is_empty() {
            let shown = String::from_utf8_lossy(clip(text, BODY_LINE_LIMIT)).into_owned();
            let body = s.checks.body.clone();
            s.apply(&body, &shown, "body", start, line, line.len());
        } else {
            s.keep(start, line);
        }
        part_bytes = part_bytes.saturating_add(line.len());
        i += 1;
    }
    if let Some(out) = s.out.as_mut() {
        out.extend_from_slice(message.get(s.at..).unwrap_or_default());
    }
    s.inspection.rewritten = s.out;
    s.inspection
}

impl Scanner<'_> {
    /// Reads one header section from line `i`; returns the index after its
    /// blank line and whether a part's Content-Type is message/rfc822.
    fn headers(
        &mut self,
        lines: &[(usize, &[u8])],
        mut i: usize,
        zone: Zone,
        boundaries: &mut Vec<Vec<u8>>,
    ) -> (usize, bool) {
        let mut rfc822 = false;
        while i < lines.len() && !self.stopped {
            let (start, first) = lines[i];
            if trim_eol(first).is_empty() {
                self.keep(start, first);
                return (i + 1, rfc822);
            }
            // The logical header: this line and its continuations.
            let mut end = i + 1;
            while end < lines.len()
                && lines[end]
                    .1
                    .first()
                    .is_some_and(|b| *b == b' ' || *b == b'\t')
            {
                end += 1;
            }
            let raw_end = lines
                .get(end)
                .map(|(s, _)| *s)
                .unwrap_or(self.message.len());
            let raw = self.message.get(start..raw_end).unwrap_or_default();
            let joined: Vec<u8> = lines[i..end]
                .iter()
                .flat_map(|(_, l)| {
                    let mut v = trim_eol(l).to_vec();
                    v.push(b'\n');
                    v
                })
                .collect();
            let joined = joined.strip_suffix(b"\n").unwrap_or(&joined);
            let text = String::from_utf8_lossy(clip(joined, self.checks.header_limit)).into_owned();
            let name = text
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if name == "content-type" {
                let lower = text.to_ascii_lowercase();
                if let Some(b) = boundary_param(&text).filter(|_| lower.contains("multipart/")) {
                    boundaries.push(b);
                }
                if zone == Zone::Part && lower.contains("message/rfc822") {
                    rfc822 = true;
                }
            }
            let mime = name.starts_with("content-") || name == "mime-version";
            let tables = match (zone, mime) {
                (_, true) => self.checks.mime.clone(),
                (Zone::Nested, false) => self.checks.nested.clone(),
                _ => self.checks.header.clone(),
            };
            self.apply(&tables, &text, "header", start, raw, raw.len());
            i = end;
        }
        (i, rfc822)
    }

    /// Matches `text` (the string form of the raw bytes at `start`) and
    /// acts on the result.
    fn apply(
        &mut self,
        tables: &[Arc<Table>],
        text: &str,
        what: &str,
        start: usize,
        raw: &[u8],
        len: usize,
    ) {
        let Some(result) = first_match(tables, text) else {
            self.keep(start, raw);
            return;
        };
        let action = match interpret(&result) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("content check result `{result}` for {what} `{text}`: {e}");
                self.keep(start, raw);
                return;
            }
        };
        match action {
            LineAction::Keep => self.keep(start, raw),
            LineAction::Ignore => self.drop(start, len),
            LineAction::Prepend(line) => {
                self.start_copy(start);
                if let Some(out) = self.out.as_mut() {
                    out.extend_from_slice(line.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                self.keep(start, raw);
            }
            LineAction::Message(action) => {
                let shown: String = text.chars().take(200).collect();
                self.inspection
                    .log
                    .push((format!("{what} {shown}"), describe(&action)));
                let last = matches!(
                    action,
                    Action::Reject(_) | Action::Defer(_) | Action::Discard(_)
                );
                self.inspection.actions.push(action);
                self.keep(start, raw);
                if last {
                    self.stopped = true;
                }
            }
        }
    }

    /// Begins the rewritten copy (everything before `start` unchanged).
    fn start_copy(&mut self, start: usize) {
        if self.out.is_none() {
            let mut out = Vec::with_capacity(self.message.len() + 256);
            out.extend_from_slice(self.message.get(..start).unwrap_or_default());
            self.out = Some(out);
            self.at = start;
        }
    }

    fn keep(&mut self, start: usize, raw: &[u8]) {
        if let Some(out) = self.out.as_mut() {
            out.extend_from_slice(
                self.message
                    .get(self.at.max(start)..start + raw.len())
                    .unwrap_or_default(),
            );
        }
        self.at = start + raw.len();
    }

    fn drop(&mut self, start: usize, len: usize) {
        self.start_copy(start);
        self.at = start + len;
    }
}

fn describe(action: &Action) -> String {
    match action {
        Action::Reject(t) => format!("reject: {t}"),
        Action::Defer(t) => format!("defer: {t}"),
        Action::Discard(t) => format!("discard: {t}"),
        Action::Hold(t) => format!("hold: {t}"),
        Action::Redirect(t) => format!("redirect: {t}"),
        Action::Bcc(t) => format!("bcc: {t}"),
        Action::Warn(t) => format!("warning: {t}"),
        Action::Info(t) => format!("info: {t}"),
    }
}

/// Lines with their start offsets, each with its line end.
fn split_lines(message: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', message) {
        out.push((start, &message[start..=i]));
        start = i + 1;
    }
    if start < message.len() {
        out.push((start, &message[start..]));
    }
    out
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn clip(bytes: &[u8], limit: usize) -> &[u8] {
    bytes.get(..limit).unwrap_or(bytes)
}

/// `--boundary` or `--boundary--` of an open part; the depth of the
/// boundary that matched.
fn boundary(text: &[u8], boundaries: &[Vec<u8>]) -> Option<(usize, bool)> {
    let rest = text.strip_prefix(b"--")?;
    boundaries.iter().enumerate().rev().find_map(|(depth, b)| {
        let after = rest.strip_prefix(b.as_slice())?;
        let after = trim_trailing_space(after);
        match after {
            b"" => Some((depth, false)),
            b"--" => Some((depth, true)),
            _ => None,
        }
    })
}

fn trim_trailing_space(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map(|p| p + 1)
        .unwrap_or(0);
    &bytes[..end]
}

/// The `boundary=` parameter of a Content-Type value.
fn boundary_param(text: &str) -> Option<Vec<u8>> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find("boundary=")? + "boundary=".len();
    let value = text.get(at..)?;
    let value = if let Some(quoted) = value.strip_prefix('"') {
        quoted.split('"').next()?
    } else {
        value
            .split(|c: char| c == ';' || c.is_whitespace())
            .next()?
    };
    (!value.is_empty() && value.len() <= 200).then(|| value.as_bytes().to_vec())
}
