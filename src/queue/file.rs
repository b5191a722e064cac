//! The queue file format: a versioned text envelope, then the message.
//!
//! ```text
//! MERPATI-QUEUE 1
//! arrival 1782113650
//! sender afau@localhost
//! rcpt fauzan@localhost<TAB>orcpt<TAB>notify<TAB>last reply
//! ...
//! body 1234
//! <1234 octets of message, CRLF line ends>
//! ```
//!
//! Values are percent-escaped (`%`, CR, LF, TAB), so one line is one field.
//! The `body` length lets a reader tell a complete file from a truncated
//! one; anything unexpected is an error (the file goes to `corrupt`), never
//! a panic. The same format serves `maildrop` files written by `sendmail`.

use std::fmt::Write as _;

const MAGIC: &str = "MERPATI-QUEUE 1";
/// An envelope larger than this is not one we wrote.
const MAX_ENVELOPE: usize = 4 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct QueueFile {
    /// Unix seconds when cleanup accepted the message.
    pub arrival: i64,
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    pub client: String,
    pub helo: String,
    pub protocol: String,
    /// RFC 3461 ENVID and RET.
    pub envid: String,
    pub ret: String,
    pub smtputf8: bool,
    pub attempts: u32,
    /// A delay warning was sent (at most one per message, as Postfix).
    pub warned: bool,
    /// Deliver into the recipients' Junk mailboxes (DMARC quarantine).
    pub quarantine: bool,
    /// The spam filter's verdict per recipient (mail from other servers).
    pub spam: Vec<SpamMark>,
    /// Put on hold at arrival (a HOLD action) and why: the queue manager
    /// moves it to `hold`, keeping the reason in `held`.
    pub hold: String,
    /// Why the message is (or was) on hold, for `queue list`.
    pub held: String,
    pub recipients: Vec<QueuedRecipient>,
    pub body: Vec<u8>,
}

/// The spam filter's verdict for one recipient, for local delivery: the
/// `X-Spam-*` fields it adds and whether it files into Junk.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SpamMark {
    /// The recipient as queued (`rcpt` address).
    pub recipient: String,
    /// `7.3`
    pub score: String,
    /// `Yes, score=7.3 required=5.0 tests=...`
    pub status: String,
}

impl SpamMark {
    pub fn is_spam(&self) -> bool {
        self.status.starts_with("Yes")
    }

    /// The score and the threshold (`required=`) it was judged against.
    pub fn score_and_threshold(&self) -> Option<(f64, f64)> {
        let score = self.score.trim().parse().ok()?;
        let required = self
            .status
            .split([' ', ','])
            .find_map(|w| w.strip_prefix("required="))?
            .parse()
            .ok()?;
        Some((score, required))
    }

    /// The status folded after commas and spaces so that no line of the
    /// `X-Spam-Status:` field passes 78 characters (RFC 5322 §2.1.1).
    pub fn folded_status(&self) -> String {
        let mut out = String::new();
        let mut line = "X-Spam-Status: ".len();
        for piece in self.status.split_inclusive([',', ' ']) {
            if line + piece.len() > 78 && line > 1 {
                out.push_str("\r\n\t");
                line = 1;
            }
            out.push_str(piece);
            line += piece.len();
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct QueuedRecipient {
    pub address: String,
    /// RFC 3461 ORCPT as given (e.g. `rfc822;alice@example.org`).
    pub orcpt: String,
    /// RFC 3461 NOTIFY (`SUCCESS,FAILURE`, `NEVER`); empty = default.
    pub notify: String,
    /// Last temporary failure, shown by `merpati queue list`.
    pub last_reply: String,
    /// The recipient as the client gave it, when `address` is what an
    /// alias turned it into (for X-Original-To and the log); empty if same.
    pub original: String,
}

impl QueuedRecipient {
    /// The address the message was first sent to.
    pub fn original(&self) -> &str {
        if self.original.is_empty() {
            &self.address
        } else {
            &self.original
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("not a Merpati queue file")]
    Magic,
    #[error("envelope is not terminated or too large")]
    Envelope,
    #[error("bad line in envelope: {0}")]
    Line(String),
    #[error("message is truncated ({have} of {want} octets)")]
    Truncated { have: usize, want: usize },
    #[error("no recipients")]
    NoRecipients,
}

impl QueueFile {
    pub fn encode(&self) -> Vec<u8> {
        let mut head = String::with_capacity(256 + 64 * self.recipients.len());
        head.push_str(MAGIC);
        head.push('\n');
        let _ = writeln!(head, "arrival {}", self.arrival);
        let fields = [
            ("sender", &self.sender),
            ("client", &self.client),
            ("helo", &self.helo),
            ("protocol", &self.protocol),
            ("envid", &self.envid),
            ("ret", &self.ret),
        ];
        let optional = [("hold", &self.hold), ("held", &self.held)];
        for (key, value) in fields {
            let _ = writeln!(head, "{key} {}", escape(value));
        }
        if self.smtputf8 {
            head.push_str("smtputf8 1\n");
        }
        if self.warned {
            head.push_str("warned 1\n");
        }
        if self.quarantine {
            head.push_str("quarantine 1\n");
        }
        for (key, value) in optional {
            if !value.is_empty() {
                let _ = writeln!(head, "{key} {}", escape(value));
            }
        }
        for m in &self.spam {
            let _ = writeln!(
                head,
                "spam {}\t{}\t{}",
                escape(&m.recipient),
                escape(&m.score),
                escape(&m.status)
            );
        }
        let _ = writeln!(head, "attempts {}", self.attempts);
        for r in &self.recipients {
            let _ = writeln!(
                head,
                "rcpt {}\t{}\t{}\t{}\t{}",
                escape(&r.address),
                escape(&r.orcpt),
                escape(&r.notify),
                escape(&r.last_reply),
                escape(&r.original)
            );
        }
        let _ = writeln!(head, "body {}", self.body.len());
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// Parses a whole file. `require_recipients` is off for maildrop files
    /// written by `sendmail -t`, whose recipients come from the headers.
    pub fn decode(bytes: &[u8], require_recipients: bool) -> Result<QueueFile, FormatError> {
        let mut qf = QueueFile::default();
        let mut rest = bytes;
        let first = take_line(&mut rest).ok_or(FormatError::Magic)?;
        if first != MAGIC.as_bytes() {
            return Err(FormatError::Magic);
        }
        loop {
            if bytes.len() - rest.len() > MAX_ENVELOPE {
                return Err(FormatError::Envelope);
            }
            let line = take_line(&mut rest).ok_or(FormatError::Envelope)?;
            let line =
                std::str::from_utf8(line).map_err(|_| FormatError::Line("not UTF-8".into()))?;
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let bad = || FormatError::Line(key.chars().take(40).collect());
            match key {
                "arrival" => qf.arrival = value.parse().map_err(|_| bad())?,
                "attempts" => qf.attempts = value.parse().map_err(|_| bad())?,
                "sender" => qf.sender = crate::escape::percent_decode(value).ok_or_else(bad)?,
                "client" => qf.client = crate::escape::percent_decode(value).ok_or_else(bad)?,
                "helo" => qf.helo = crate::escape::percent_decode(value).ok_or_else(bad)?,
                "protocol" => qf.protocol = crate::escape::percent_decode(value).ok_or_else(bad)?,
                "envid" => qf.envid = crate::escape::percent_decode(value).ok_or_else(bad)?,
                "ret" => qf.ret = crate::escape::percent_decode(value).ok_or_else(bad)?,
                "smtputf8" => qf.smtputf8 = value == "1",
                "warned" => qf.warned = value == "1",
                "quarantine" => qf.quarantine = value == "1",
                "hold" => qf.hold = crate::escape::percent_decode(value).ok_or_else(bad)?,
                "held" => qf.held = crate::escape::percent_decode(value).ok_or_else(bad)?,
                "rcpt" => qf.recipients.push(parse_recipient(value).ok_or_else(bad)?),
                "spam" => qf.spam.push(parse_spam(value).ok_or_else(bad)?),
                "body" => {
                    let want: usize = value.parse().map_err(|_| bad())?;
                    if rest.len() < want {
                        return Err(FormatError::Truncated {
                            have: rest.len(),
                            want,
                        });
                    }
                    if rest.len() > want {
                        return Err(FormatError::Line("trailing data".into()));
                    }
                    qf.body = rest.to_vec();
                    break;
                }
                _ => return Err(bad()),
            }
        }
        if require_recipients && qf.recipients.is_empty() {
            return Err(FormatError::NoRecipients);
        }
        Ok(qf)
    }

    pub fn size(&self) -> usize {
        self.body.len()
    }
}

fn parse_recipient(value: &str) -> Option<QueuedRecipient> {
    let mut parts = value.split('\t');
    let address = crate::escape::percent_decode(parts.next()?)?;
    if address.is_empty() {
        return None;
    }
    Some(QueuedRecipient {
        address,
        orcpt: crate::escape::percent_decode(parts.next().unwrap_or(""))?,
        notify: crate::escape::percent_decode(parts.next().unwrap_or(""))?,
        last_reply: crate::escape::percent_decode(parts.next().unwrap_or(""))?,
        original: crate::escape::percent_decode(parts.next().unwrap_or(""))?,
    })
}

fn parse_spam(value: &str) -> Option<SpamMark> {
    let mut parts = value.split('\t');
    Some(SpamMark {
        recipient: crate::escape::percent_decode(parts.next()?)?,
        score: crate::escape::percent_decode(parts.next()?)?,
        status: crate::escape::percent_decode(parts.next()?)?,
    })
}

impl QueueFile {
    /// The spam verdict for the queued recipient `address`.
    pub fn spam_mark(&self, address: &str) -> Option<&SpamMark> {
        self.spam
            .iter()
            .find(|m| m.recipient.eq_ignore_ascii_case(address))
    }
}

fn take_line<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let pos = rest.iter().position(|&b| b == b'\n')?;
    let (line, tail) = rest.split_at(pos);
    *rest = tail.get(1..).unwrap_or(&[]);
    Some(line)
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            '\t' => out.push_str("%09"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QueueFile {
        QueueFile {
            arrival: 1_782_113_650,
            sender: "afau@localhost".into(),
            client: "localhost[127.0.0.1]".into(),
            helo: "localhost".into(),
            protocol: "ESMTP".into(),
            envid: "a b%c".into(),
            quarantine: true,
            spam: vec![SpamMark {
                recipient: "fauzan@localhost".into(),
                score: "7.5".into(),
                status: "Yes, score=7.5 required=5.0 tests=BAYES_99,GTUBE".into(),
            }],
            hold: "HOLD it: a\tb".into(),
            held: "held once".into(),
            ret: "HDRS".into(),
            smtputf8: true,
            attempts: 2,
            warned: true,
            recipients: vec![
                QueuedRecipient {
                    address: "fauzan@localhost".into(),
                    orcpt: "rfc822;fauzan@localhost".into(),
                    notify: "SUCCESS,FAILURE".into(),
                    last_reply: "4.2.2 over\tquota\r\n".into(),
                    original: "info@localhost".into(),
                },
                QueuedRecipient {
                    address: "b@x".into(),
                    ..Default::default()
                },
            ],
            body: b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
        }
    }

    #[test]
    fn long_spam_status_is_folded() {
        let tests: Vec<String> = (0..12).map(|n| format!("SOME_TEST_{n}")).collect();
        let mark = SpamMark {
            recipient: "a@b".into(),
            score: "9.0".into(),
            status: format!("Yes, score=9.0 required=5.0 tests={}", tests.join(",")),
        };
        let field = format!("X-Spam-Status: {}", mark.folded_status());
        assert!(field.lines().count() > 1, "{field}");
        assert!(field.lines().all(|l| l.len() <= 78), "{field}");
        assert_eq!(
            field.replace("\r\n\t", ""),
            format!("X-Spam-Status: {}", mark.status)
        );
    }

    #[test]
    fn round_trip() {
        let qf = sample();
        assert_eq!(QueueFile::decode(&qf.encode(), true), Ok(qf));
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(
                QueueFile::decode(&bytes[..cut], true).is_err(),
                "cut at {cut}"
            );
        }
        assert_eq!(QueueFile::decode(b"garbage", true), Err(FormatError::Magic));
        let bad_escape = b"MERPATI-QUEUE 1\nsender %G1\nbody 0\n";
        assert!(QueueFile::decode(bad_escape, true).is_err());
        let no_rcpt = b"MERPATI-QUEUE 1\nbody 0\n";
        assert_eq!(
            QueueFile::decode(no_rcpt, true),
            Err(FormatError::NoRecipients)
        );
        assert!(QueueFile::decode(no_rcpt, false).is_ok());
        let mut noise = bytes.clone();
        for i in (0..noise.len()).step_by(7) {
            noise[i] = noise[i].wrapping_mul(31).wrapping_add(7);
            let _ = QueueFile::decode(&noise, true);
        }
    }
}
