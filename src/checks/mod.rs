//! Content checks (Postfix's header_checks(5) and body_checks): every
//! header and body line of a message is matched against `[checks]` tables
//! in Postfix's `regexp:`/`pcre:` syntax; the first match decides what
//! happens to the line or the message. Run by cleanup for mail that
//! arrives over SMTP, before it is queued, so that REJECT and DEFER can
//! still be the SMTP reply.
//!
//! The scanner walks the message once, line by line, following MIME
//! boundaries: primary headers, part headers (MIME headers go to
//! `mime_header_checks`), the headers of attached messages
//! (`nested_header_checks`), and body lines (`body_checks`, at most
//! `body_checks_size_limit` bytes per part). Work is linear in the
//! message size, and each matched string is bounded.

mod scan;

use crate::config::{Config, Problem};
use crate::tables::Table;
use std::sync::Arc;

/// Longest body line matched (Postfix's line_length_limit).
const BODY_LINE_LIMIT: usize = 2048;

/// What a matching line asks for (header_checks(5) actions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Reject(String),
    Defer(String),
    Discard(String),
    Hold(String),
    Redirect(String),
    Bcc(String),
    Warn(String),
    Info(String),
}

/// The verdict on a message, and the message as the checks left it.
#[derive(Debug, Default)]
pub struct Inspection {
    /// The message with IGNOREd lines removed and PREPENDed lines added;
    /// `None` when nothing changed.
    pub rewritten: Option<Vec<u8>>,
    /// Message actions in the order they fired. REJECT, DEFER or DISCARD,
    /// if present, is the last (inspection stops there).
    pub actions: Vec<Action>,
    /// What matched, for the log (`header Subject: x`, `body ...`).
    pub log: Vec<(String, String)>,
}

impl Inspection {
    /// The REJECT, DEFER or DISCARD that ended the inspection, if any.
    pub fn final_action(&self) -> Option<&Action> {
        self.actions
            .last()
            .filter(|a| matches!(a, Action::Reject(_) | Action::Defer(_) | Action::Discard(_)))
    }

    pub fn hold(&self) -> Option<&str> {
        self.actions.iter().find_map(|a| match a {
            Action::Hold(r) => Some(r.as_str()),
            _ => None,
        })
    }
}

/// The loaded tables of `[checks]`.
#[derive(Debug, Default)]
pub struct ContentChecks {
    header: Vec<Arc<Table>>,
    mime: Vec<Arc<Table>>,
    nested: Vec<Arc<Table>>,
    body: Vec<Arc<Table>>,
    header_limit: usize,
    body_limit: usize,
}

impl ContentChecks {
    pub fn from_config(config: &Config) -> Result<ContentChecks, Vec<Problem>> {
        let c = &config.checks;
        let mut problems = Vec::new();
        let mut load = |key: &str, specs: &[String]| -> Vec<Arc<Table>> {
            specs
                .iter()
                .filter_map(|spec| {
                    // A bare path is a regexp: table, as most Postfix
                    // set-ups write it.
                    let spec = if spec.contains(':') {
                        spec.clone()
                    } else {
                        format!("regexp:{spec}")
                    };
                    match Table::load(&spec) {
                        Ok(Table::Regexp(t)) => Some(Arc::new(Table::Regexp(t))),
                        Ok(_) => {
                            problems.push(Problem::new(
                                &format!("checks.{key}"),
                                format!("`{spec}`: content checks need a regexp: or pcre: table"),
                            ));
                            None
                        }
                        Err(e) => {
                            problems.push(Problem::new(&format!("checks.{key}"), e));
                            None
                        }
                    }
                })
                .collect()
        };
        let header = load("header_checks", &c.header_checks);
        let mime = load("mime_header_checks", &c.mime_header_checks);
        let nested = load("nested_header_checks", &c.nested_header_checks);
        let body = load("body_checks", &c.body_checks);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ContentChecks {
            // Postfix: mime_ and nested_header_checks default to
            // $header_checks.
            mime: if mime.is_empty() {
                header.clone()
            } else {
                mime
            },
            nested: if nested.is_empty() {
                header.clone()
            } else {
                nested
            },
            header,
            body,
            header_limit: usize::try_from(c.header_size_limit.0)
                .unwrap_or(usize::MAX)
                .max(1),
            body_limit: usize::try_from(c.body_checks_size_limit.0).unwrap_or(usize::MAX),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.header.is_empty()
            && self.mime.is_empty()
            && self.nested.is_empty()
            && self.body.is_empty()
    }

    /// Inspects `message` (CRLF line ends).
    pub fn inspect(&self, message: &[u8]) -> Inspection {
        scan::inspect(self, message)
    }
}

/// What one table result means for the line.
enum LineAction {
    Keep,
    Ignore,
    Prepend(String),
    Message(Action),
}

fn interpret(result: &str) -> Result<LineAction, String> {
    let result = result.trim();
    let (word, text) = match result.find(char::is_whitespace) {
        Some(i) => (&result[..i], result[i..].trim()),
        None => (result, ""),
    };
    let text = text.to_string();
    let or = |default: &str| {
        if text.is_empty() {
            default.to_string()
        } else {
            text.clone()
        }
    };
    Ok(match word.to_ascii_uppercase().as_str() {
        "DUNNO" | "OK" => LineAction::Keep,
        "IGNORE" => LineAction::Ignore,
        "PREPEND" => {
            if text.is_empty() {
                return Err("PREPEND needs text".into());
            }
            LineAction::Prepend(text)
        }
        "REJECT" => LineAction::Message(Action::Reject(or("message content rejected"))),
        "DEFER" => LineAction::Message(Action::Defer(or("message content deferred"))),
        "DISCARD" => LineAction::Message(Action::Discard(or("message content discarded"))),
        "HOLD" => LineAction::Message(Action::Hold(or("message content held"))),
        "REDIRECT" | "BCC" => {
            if !text.contains('@') || text.contains(char::is_whitespace) {
                return Err(format!("{word} needs user@domain"));
            }
            LineAction::Message(if word.eq_ignore_ascii_case("REDIRECT") {
                Action::Redirect(text)
            } else {
                Action::Bcc(text)
            })
        }
        "WARN" => LineAction::Message(Action::Warn(text)),
        "INFO" => LineAction::Message(Action::Info(text)),
        other => {
            return Err(format!(
                "action `{other}` is not supported in content checks"
            ));
        }
    })
}

/// The first result of `tables` for `line` (a DUNNO also ends the search).
fn first_match(tables: &[Arc<Table>], line: &str) -> Option<String> {
    tables.iter().find_map(|t| t.get(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(
        header: &str,
        mime: &str,
        nested: &str,
        body: &str,
    ) -> (tempfile::TempDir, ContentChecks) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        for (name, text, list) in [
            ("header", header, &mut config.checks.header_checks),
            ("mime", mime, &mut config.checks.mime_header_checks),
            ("nested", nested, &mut config.checks.nested_header_checks),
            ("body", body, &mut config.checks.body_checks),
        ] {
            if !text.is_empty() {
                let path = dir.path().join(name);
                std::fs::write(&path, text).expect("write");
                list.push(format!("pcre:{}", path.display()));
            }
        }
        config.checks.body_checks_size_limit = crate::config::Bytes(200);
        let checks = ContentChecks::from_config(&config).expect("checks");
        (dir, checks)
    }

    const MESSAGE: &str = "From: a@b.test\r\nSubject: cheap pills\r\nX-Junk: remove me\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello there\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner secret\r\n\r\ninner body\r\n--XX--\r\nepilogue\r\n";

    #[test]
    fn headers_are_matched_and_rewritten() {
        let (_d, c) = checks(
            "/^Subject: .*pills/ HOLD pills\n/^X-Junk:/ IGNORE\n/^From:/ PREPEND X-Seen: yes\n",
            "",
            "",
            "",
        );
        let i = c.inspect(MESSAGE.as_bytes());
        assert_eq!(i.hold(), Some("pills"));
        assert!(i.final_action().is_none());
        let out = String::from_utf8(i.rewritten.expect("changed")).expect("utf-8");
        assert!(
            out.starts_with(
                "X-Seen: yes\r\nFrom: a@b.test\r\nSubject: cheap pills\r\nContent-Type"
            ),
            "{out}"
        );
        assert!(!out.contains("X-Junk"));
        assert!(out.ends_with("--XX--\r\nepilogue\r\n"));
        assert_eq!(
            out.len(),
            MESSAGE.len() - "X-Junk: remove me\r\n".len() + "X-Seen: yes\r\n".len()
        );
    }

    #[test]
    fn mime_nested_and_body_lines_have_their_own_tables() {
        let (_d, c) = checks(
            "",
            "/^Content-Type: message\\/rfc822/ WARN attached message\n",
            "/^Subject: inner/ REJECT no inner secrets\n",
            "",
        );
        let i = c.inspect(MESSAGE.as_bytes());
        assert!(matches!(i.final_action(), Some(Action::Reject(t)) if t == "no inner secrets"));
        assert!(matches!(i.actions.first(), Some(Action::Warn(_))));
        assert!(i.rewritten.is_none());
        let (_d, c) = checks("", "", "", "/^hello there$/ DISCARD\n/^preamble/ DUNNO\n");
        let i = c.inspect(MESSAGE.as_bytes());
        assert!(matches!(i.final_action(), Some(Action::Discard(_))));
        // Body lines of a part past body_checks_size_limit are not looked at.
        let long = format!(
            "Subject: x\r\n\r\n{}needle\r\n",
            "filler line\r\n".repeat(30)
        );
        let (_d, c) = checks("", "", "", "/needle/ REJECT\n");
        assert!(c.inspect(long.as_bytes()).final_action().is_none());
        assert!(
            c.inspect(b"Subject: x\r\n\r\nneedle\r\n")
                .final_action()
                .is_some()
        );
    }

    #[test]
    fn broken_mime_and_garbage_get_a_verdict() {
        let (_d, c) = checks("/^Subject:/ DUNNO\n", "", "", "/zzz/ REJECT\n");
        for input in [
            &b""[..],
            b"no header at all",
            b"Subject: x\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
            b"\xff\xfe\x00binary\r\n\r\n\x00\x01zzz",
            b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n--a\r\n--a--\r\n--a--\r\n",
        ] {
            let _ = c.inspect(input);
        }
        assert!(
            c.inspect(b"\xff\xfe\x00binary\r\n\r\n\x00\x01zzz")
                .final_action()
                .is_some()
        );
    }
}
