//! Sans-IO pieces of the SMTP client: the reply parser (RFC 5321 §4.2,
//! enhanced status codes RFC 2034 / RFC 3463), the EHLO keyword list
//! (RFC 5321 §4.1.1.1), dot-stuffing (RFC 5321 §4.5.2) and the encodings
//! of DSN parameters (RFC 3461 §4, RFC 6533 §3).
//!
//! Nothing here does I/O: the driver in [`super`] feeds bytes in and
//! writes bytes out, so every piece is tested with plain byte strings.

use crate::smtp::proto::reply::Reply;

/// Longest reply line accepted, line terminator included. RFC 5321
/// §4.5.3.1.5 allows 512; real servers send longer EHLO lines.
pub const MAX_LINE: usize = 4096;
/// Most lines in one reply (a long EHLO list has about 20).
pub const MAX_LINES: usize = 100;

/// Why the bytes from the server are not an SMTP reply.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("reply with more than {MAX_LINES} lines")]
    TooManyLines,
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    #[error("reply code changed from {first} to {then} within one reply")]
    CodeMismatch { first: u16, then: u16 },
}

/// Incremental parser of (multi-line) replies.
///
/// Feed it whatever the socket returned; it keeps at most one partial line
/// ([`MAX_LINE`]) and the lines of the reply in progress ([`MAX_LINES`]).
/// Lines end in CRLF; a bare LF is accepted as well (lenient in what we
/// accept: a reply split at a bare LF is still unambiguous).
#[derive(Debug, Default)]
pub struct ReplyParser {
    /// The partial line not yet terminated.
    partial: Vec<u8>,
    /// The code of the reply in progress (set by its first line).
    code: Option<u16>,
    /// Texts of the lines of the reply in progress.
    lines: Vec<String>,
}

impl ReplyParser {
    pub fn new() -> Self {
        ReplyParser::default()
    }

    /// Consumes bytes of `input` up to the end of the first reply that
    /// completes. Returns how many bytes were consumed and that reply; the
    /// bytes after it (pipelined replies) are left for the next call.
    /// Without a complete reply all of `input` is consumed and kept.
    ///
    /// After an error the parser is reset; the connection should be
    /// dropped, since the reply boundaries are lost.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Reply>), ReplyError> {
        let result = self.feed_inner(input);
        if result.is_err() {
            *self = ReplyParser::default();
        }
        result
    }

    /// True when part of a reply has been received but not its end.
    pub fn in_progress(&self) -> bool {
        !self.partial.is_empty() || self.code.is_some()
    }

    fn feed_inner(&mut self, input: &[u8]) -> Result<(usize, Option<Reply>), ReplyError> {
        let mut consumed = 0;
        loop {
            let rest = input.get(consumed..).unwrap_or_default();
            let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
                if self.partial.len() + rest.len() > MAX_LINE {
                    return Err(ReplyError::LineTooLong);
                }
                self.partial.extend_from_slice(rest);
                return Ok((input.len(), None));
            };
            let line_end = newline + 1;
            if self.partial.len() + line_end > MAX_LINE {
                return Err(ReplyError::LineTooLong);
            }
            self.partial
                .extend_from_slice(rest.get(..line_end).unwrap_or_default());
            consumed += line_end;
            let line = std::mem::take(&mut self.partial);
            if let Some(reply) = self.line(&line)? {
                return Ok((consumed, Some(reply)));
            }
        }
    }

    /// One complete line, terminator included; a reply when it was last.
    fn line(&mut self, raw: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let body = raw.strip_suffix(b"\n").unwrap_or(raw);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let malformed = || ReplyError::Malformed(String::from_utf8_lossy(body).into_owned());
        let (digits, rest) = match (body.get(..3), body.get(3..)) {
            (Some(d), Some(r)) => (d, r),
            _ => return Err(malformed()),
        };
        // RFC 5321 §4.2: the first digit is 2 to 5 (1yz is unused).
        let code = match digits {
            [a @ b'2'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9'] => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(malformed()),
        };
        let (last, text) = match rest.split_first() {
            None => (true, &[][..]),
            Some((b' ', text)) => (true, text),
            Some((b'-', text)) => (false, text),
            Some(_) => return Err(malformed()),
        };
        match self.code {
            Some(first) if first != code => {
                return Err(ReplyError::CodeMismatch { first, then: code });
            }
            _ => self.code = Some(code),
        }
        if self.lines.len() >= MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
        self.lines.push(clean_text(text));
        if !last {
            return Ok(None);
        }
        self.code = None;
        let lines = std::mem::take(&mut self.lines);
        Ok(Some(with_enhanced(code, lines)))
    }
}

/// Text of a reply line for logs and queue files: lossy UTF-8, control
/// characters (which a hostile server could use against a terminal or a
/// log parser) replaced by spaces, trailing blanks trimmed.
fn clean_text(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// Splits off the RFC 3463 enhanced code when the first line starts with
/// one whose class matches the reply code (RFC 2034 §3); it is removed
/// from every line that repeats it.
fn with_enhanced(code: u16, mut lines: Vec<String>) -> Reply {
    let enhanced = lines
        .first()
        .and_then(|first| leading_enhanced(first))
        .filter(|(class, _, _)| u16::from(*class) == code / 100);
    if enhanced.is_some() {
        for line in &mut lines {
            if let Some((token, rest)) = split_token(line)
                && leading_enhanced(token) == enhanced
            {
                *line = rest.to_string();
            }
        }
    }
    Reply {
        code,
        enhanced,
        lines,
    }
}

/// `"5.1.1 rest"` -> `("5.1.1", "rest")`; `"5.1.1"` -> `("5.1.1", "")`.
fn split_token(line: &str) -> Option<(&str, &str)> {
    match line.split_once(' ') {
        Some((token, rest)) => Some((token, rest)),
        None if !line.is_empty() => Some((line, "")),
        None => None,
    }
}

/// The enhanced code at the start of `text` (`class.subject.detail`, class
/// 2, 4 or 5, subject and detail 1 to 3 digits).
fn leading_enhanced(text: &str) -> Option<(u8, u16, u16)> {
    let (token, _) = split_token(text)?;
    let mut parts = token.split('.');
    let class: u8 = digits(parts.next()?, 1)?;
    let subject: u16 = digits(parts.next()?, 3)?;
    let detail: u16 = digits(parts.next()?, 3)?;
    if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
        return None;
    }
    Some((class, subject, detail))
}

fn digits<T: std::str::FromStr>(text: &str, max: usize) -> Option<T> {
    if text.is_empty() || text.len() > max || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// What the server said it supports in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// EHLO was accepted (false after a fallback to HELO: no extensions).
    pub esmtp: bool,
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 3207.
    pub starttls: bool,
    /// RFC 6152.
    pub eight_bit_mime: bool,
    /// RFC 6531.
    pub smtputf8: bool,
    /// RFC 3461.
    pub dsn: bool,
    /// RFC 1870: `Some(0)` when SIZE is offered without a fixed limit.
    pub size: Option<u64>,
    /// RFC 4954 mechanisms, upper case.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Reads the keyword lines of an EHLO reply (every line after the
    /// first, which is the server's name). Unknown keywords are ignored;
    /// keywords are case-insensitive (RFC 5321 §2.4).
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut caps = Capabilities {
            esmtp: true,
            ..Capabilities::default()
        };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "STARTTLS" => caps.starttls = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "DSN" => caps.dsn = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "AUTH" => caps.add_auth(words),
                // Pre-RFC 2554 servers (old Outlook) announce "AUTH=LOGIN".
                _ => {
                    if let Some(first) = keyword.strip_prefix("AUTH=") {
                        caps.add_auth(std::iter::once(first).chain(words));
                    }
                }
            }
        }
        caps
    }

    /// The peer's fixed message size limit, if it announced one.
    pub fn size_limit(&self) -> Option<u64> {
        self.size.filter(|&limit| limit > 0)
    }

    fn add_auth<'a>(&mut self, mechanisms: impl Iterator<Item = &'a str>) {
        for mechanism in mechanisms {
            let mechanism = mechanism.to_ascii_uppercase();
            if !self.auth.contains(&mechanism) {
                self.auth.push(mechanism);
            }
        }
    }
}

/// Dot-stuffing of the message for DATA (RFC 5321 §4.5.2), incremental so
/// a large message is sent in pieces.
///
/// Also repairs line endings on the way, as Postfix's smtp(8) does: a bare
/// LF becomes CRLF (RFC 5321 §2.3.8 forbids bare LF), and a message that
/// does not end with CRLF gets one before the terminating `.`.
#[derive(Debug)]
pub struct DotStuffer {
    line_start: bool,
    last_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            line_start: true,
            last_cr: false,
        }
    }
}

impl DotStuffer {
    pub fn new() -> Self {
        DotStuffer::default()
    }

    /// Appends the encoding of `input` to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64 + 2);
        for &b in input {
            if self.line_start && b == b'.' {
                out.push(b'.');
            }
            if b == b'\n' && !self.last_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_cr = b == b'\r';
            self.line_start = b == b'\n';
        }
    }

    /// Ends the data: the last line's CRLF if missing, then `.` CRLF.
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.line_start {
            if self.last_cr {
                out.push(b'\n');
            } else {
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// RFC 3461 §4 xtext: `!` to `~` except `+` and `=` as themselves, every
/// other byte as `+XX` (upper-case hex).
pub fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The `ORCPT=` value for a stored `addr-type;address` (address decoded):
/// `rfc822;` + xtext for ASCII addresses, `utf-8;` + utf-8-addr-xtext
/// (RFC 6533 §3) for addresses with non-ASCII characters, which xtext
/// cannot carry. `None` when the stored value is unusable (the parameter
/// is optional, so it is left out).
pub fn orcpt_param(orcpt: &str) -> Option<String> {
    let (kind, address) = orcpt.split_once(';')?;
    let atom = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if !atom(kind) || address.is_empty() {
        return None;
    }
    if address.is_ascii() {
        return Some(format!("{kind};{}", xtext(address)));
    }
    let mut out = String::from("utf-8;");
    for c in address.chars() {
        // QCHAR: %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e.
        if matches!(c, '!'..='~') && !matches!(c, '+' | '=' | '\\') {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
        }
    }
    Some(out)
}

/// The `NOTIFY=` value (RFC 3461 §4.1): a comma list of SUCCESS, FAILURE,
/// DELAY, or NEVER alone. `None` for empty or invalid input.
pub fn notify_param(notify: &str) -> Option<String> {
    let upper = notify.trim().to_ascii_uppercase();
    let items: Vec<&str> = upper.split(',').map(str::trim).collect();
    let valid = items
        .iter()
        .all(|i| matches!(*i, "SUCCESS" | "FAILURE" | "DELAY"))
        || items == ["NEVER"];
    (!upper.is_empty() && valid).then(|| items.join(","))
}

/// The `RET=` value (RFC 3461 §4.3): FULL or HDRS, else `None`.
pub fn ret_param(ret: &str) -> Option<&'static str> {
    if ret.eq_ignore_ascii_case("FULL") {
        Some("FULL")
    } else if ret.eq_ignore_ascii_case("HDRS") {
        Some("HDRS")
    } else {
        None
    }
}

/// True when `address` can go between `<` and `>` on a command line: no
/// control characters (CR or LF would inject commands) and no angle
/// brackets.
pub fn safe_path(address: &str) -> bool {
    !address
        .chars()
        .any(|c| c.is_control() || c == '<' || c == '>')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, enhanced: Option<(u8, u16, u16)>, lines: &[&str]) -> Reply {
        Reply {
            code,
            enhanced,
            lines: lines.iter().map(|l| l.to_string()).collect(),
        }
    }

    /// Parses a whole input; every reply it holds, or the first error.
    fn parse_all(input: &[u8], chunk: usize) -> Result<Vec<Reply>, ReplyError> {
        let mut parser = ReplyParser::new();
        let mut replies = Vec::new();
        for piece in input.chunks(chunk) {
            let mut offset = 0;
            while offset < piece.len() {
                let (n, reply) = parser.feed(&piece[offset..])?;
                offset += n;
                replies.extend(reply);
            }
        }
        assert!(!parser.in_progress(), "left over in parser: {parser:?}");
        Ok(replies)
    }

    #[test]
    fn parses_replies() {
        type Case = (&'static [u8], Result<Vec<Reply>, ReplyError>);
        let cases: Vec<Case> = vec![
            (
                b"220 mx.example ESMTP\r\n",
                Ok(vec![reply(220, None, &["mx.example ESMTP"])]),
            ),
            (
                b"250 2.1.0 Ok\r\n",
                Ok(vec![reply(250, Some((2, 1, 0)), &["Ok"])]),
            ),
            (b"250\r\n", Ok(vec![reply(250, None, &[""])])),
            (b"250 \r\n", Ok(vec![reply(250, None, &[""])])),
            (b"354 go ahead\n", Ok(vec![reply(354, None, &["go ahead"])])),
            (
                b"550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n",
                Ok(vec![reply(
                    550,
                    Some((5, 1, 1)),
                    &["first", "second", "third"],
                )]),
            ),
            // Enhanced code only on the first line.
            (
                b"550-5.7.1 first\r\n550 see https://x\r\n",
                Ok(vec![reply(
                    550,
                    Some((5, 7, 1)),
                    &["first", "see https://x"],
                )]),
            ),
            // Class must match the reply code.
            (
                b"250 5.1.1 odd\r\n",
                Ok(vec![reply(250, None, &["5.1.1 odd"])]),
            ),
            (
                b"451 4.3.0\r\n",
                Ok(vec![reply(451, Some((4, 3, 0)), &[""])]),
            ),
            (b"250 2.1\r\n", Ok(vec![reply(250, None, &["2.1"])])),
            (
                b"250 2.1.0.1 x\r\n",
                Ok(vec![reply(250, None, &["2.1.0.1 x"])]),
            ),
            (
                b"250-mx\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n",
                Ok(vec![reply(
                    250,
                    None,
                    &["mx", "PIPELINING", "SIZE 1000", "8BITMIME"],
                )]),
            ),
            // Pipelined replies in one buffer.
            (
                b"250 2.1.0 Ok\r\n550 5.1.1 no\r\n354 go\r\n",
                Ok(vec![
                    reply(250, Some((2, 1, 0)), &["Ok"]),
                    reply(550, Some((5, 1, 1)), &["no"]),
                    reply(354, None, &["go"]),
                ]),
            ),
            // Control characters are neutralised.
            (
                b"250 a\tb\x1b[31m\r\n",
                Ok(vec![reply(250, None, &["a b [31m"])]),
            ),
            (
                b"250 caf\xc3\xa9 \xff\r\n",
                Ok(vec![reply(250, None, &["caf\u{e9} \u{fffd}"])]),
            ),
            (
                b"25 short\r\n",
                Err(ReplyError::Malformed("25 short".into())),
            ),
            (b"25\r\n", Err(ReplyError::Malformed("25".into()))),
            (b"\r\n", Err(ReplyError::Malformed("".into()))),
            (
                b"abc hello\r\n",
                Err(ReplyError::Malformed("abc hello".into())),
            ),
            (b"150 old\r\n", Err(ReplyError::Malformed("150 old".into()))),
            (b"650 no\r\n", Err(ReplyError::Malformed("650 no".into()))),
            (b"2500 x\r\n", Err(ReplyError::Malformed("2500 x".into()))),
            (b"250_x\r\n", Err(ReplyError::Malformed("250_x".into()))),
            (
                b"250-a\r\n251 b\r\n",
                Err(ReplyError::CodeMismatch {
                    first: 250,
                    then: 251,
                }),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_all(input, input.len().max(1)),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn bounds_line_length_and_line_count() {
        let mut long = b"250 ".to_vec();
        long.resize(MAX_LINE - 2, b'x');
        long.extend_from_slice(b"\r\n");
        assert_eq!(parse_all(&long, 7).map(|r| r.len()), Ok(1));
        let mut too_long = b"250 ".to_vec();
        too_long.resize(MAX_LINE - 1, b'x');
        too_long.extend_from_slice(b"\r\n");
        assert_eq!(parse_all(&too_long, 7), Err(ReplyError::LineTooLong));
        // Without any line end, the partial line is bounded too.
        let endless = vec![b'x'; MAX_LINE + 1];
        assert_eq!(parse_all(&endless, 100), Err(ReplyError::LineTooLong));
        let mut parser = ReplyParser::new();
        assert_eq!(parser.feed(&endless), Err(ReplyError::LineTooLong));
        assert!(!parser.in_progress());

        let many = |n: usize| {
            let mut text = "250-x\r\n".repeat(n - 1);
            text.push_str("250 end\r\n");
            text.into_bytes()
        };
        assert_eq!(parse_all(&many(MAX_LINES), 64).map(|r| r.len()), Ok(1));
        assert_eq!(
            parse_all(&many(MAX_LINES + 1), 64),
            Err(ReplyError::TooManyLines)
        );
    }

    #[test]
    fn chunk_size_sweep() {
        let script: &[u8] = b"220-mx.example ESMTP\r\n220 hello\r\n\
            250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 DSN\r\n\
            250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550-5.1.1 <nobody@x>: Recipient address rejected:\r\n550 5.1.1 User unknown\r\n\
            450 4.2.0 try later\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4F2A\r\n221 2.0.0 Bye\r\n";
        let expected = parse_all(script, script.len()).unwrap();
        assert_eq!(expected.len(), 9);
        assert_eq!(
            expected[4].lines,
            ["<nobody@x>: Recipient address rejected:", "User unknown"]
        );
        for chunk in 1..=512 {
            assert_eq!(
                parse_all(script, chunk).as_ref(),
                Ok(&expected),
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn reads_capabilities() {
        let ehlo = reply(
            250,
            None,
            &[
                "mx.example Hello",
                "pipelining",
                "SIZE 10240000",
                "STARTTLS",
                "AUTH PLAIN LOGIN",
                "AUTH=LOGIN CRAM-MD5",
                "8BITMIME",
                "DSN",
                "SMTPUTF8",
                "X-UNKNOWN 1 2",
                "",
            ],
        );
        let caps = Capabilities::from_ehlo(&ehlo);
        assert_eq!(
            caps,
            Capabilities {
                esmtp: true,
                pipelining: true,
                starttls: true,
                eight_bit_mime: true,
                smtputf8: true,
                dsn: true,
                size: Some(10_240_000),
                auth: vec!["PLAIN".into(), "LOGIN".into(), "CRAM-MD5".into()],
            }
        );
        assert_eq!(caps.size_limit(), Some(10_240_000));
        // The first line is the server name, never a keyword.
        let bare = Capabilities::from_ehlo(&reply(250, None, &["PIPELINING"]));
        assert!(!bare.pipelining && bare.esmtp);
        let no_limit = Capabilities::from_ehlo(&reply(250, None, &["mx", "SIZE"]));
        assert_eq!((no_limit.size, no_limit.size_limit()), (Some(0), None));
        let junk = Capabilities::from_ehlo(&reply(250, None, &["mx", "SIZE lots"]));
        assert_eq!(junk.size, Some(0));
    }

    fn stuffed(message: &[u8], chunk: usize) -> Vec<u8> {
        let mut stuffer = DotStuffer::new();
        let mut out = Vec::new();
        for piece in message.chunks(chunk.max(1)) {
            stuffer.push(piece, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    #[test]
    fn dot_stuffing() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b"a\r", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b".a\r\n..b\r\nc.\r\n.", b"..a\r\n...b\r\nc.\r\n..\r\n.\r\n"),
            (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"a\n.b\nc", b"a\r\n..b\r\nc\r\n.\r\n"),
            (b"a\r.b\r\n", b"a\r.b\r\n.\r\n"),
            (b"\r\n\r\n", b"\r\n\r\n.\r\n"),
            (b"8bit \xc3\xa9\r\n", b"8bit \xc3\xa9\r\n.\r\n"),
        ];
        for (input, expected) in cases {
            for chunk in 1..=input.len().max(1) {
                assert_eq!(
                    stuffed(input, chunk),
                    *expected,
                    "{:?} in chunks of {chunk}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn dot_stuffing_chunk_sweep() {
        let message = b"Subject: t\r\n\r\n.leading\r\n..two\r\nbare\nlf\n.\r\nend".repeat(5);
        let expected = stuffed(&message, message.len());
        for chunk in 1..=512 {
            assert_eq!(stuffed(&message, chunk), expected, "chunk {chunk}");
        }
    }

    #[test]
    fn dsn_parameters() {
        assert_eq!(xtext("abc-123"), "abc-123");
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext("\u{e9}"), "+C3+A9");
        assert_eq!(
            orcpt_param("rfc822;a@b.example").as_deref(),
            Some("rfc822;a@b.example")
        );
        assert_eq!(
            orcpt_param("rfc822;a+x@b").as_deref(),
            Some("rfc822;a+2Bx@b")
        );
        assert_eq!(
            orcpt_param("rfc822;j\u{f6}rg@b").as_deref(),
            Some("utf-8;j\\x{F6}rg@b")
        );
        assert_eq!(
            orcpt_param("utf-8;\u{e9}+=\\@b").as_deref(),
            Some("utf-8;\\x{E9}\\x{2B}\\x{3D}\\x{5C}@b")
        );
        assert_eq!(orcpt_param(""), None);
        assert_eq!(orcpt_param("a@b"), None);
        assert_eq!(orcpt_param("rfc822;"), None);
        assert_eq!(orcpt_param("rfc 822;a@b"), None);
        assert_eq!(
            notify_param("success,failure").as_deref(),
            Some("SUCCESS,FAILURE")
        );
        assert_eq!(notify_param("NEVER").as_deref(), Some("NEVER"));
        assert_eq!(notify_param("DELAY"), Some("DELAY".into()));
        assert_eq!(notify_param("NEVER,SUCCESS"), None);
        assert_eq!(notify_param(""), None);
        assert_eq!(notify_param("SUCCESS\r\nRSET"), None);
        assert_eq!(ret_param("hdrs"), Some("HDRS"));
        assert_eq!(ret_param("FULL"), Some("FULL"));
        assert_eq!(ret_param(""), None);
        assert_eq!(ret_param("ALL"), None);
    }

    #[test]
    fn safe_paths() {
        for ok in ["", "a@b", "\"a b\"@c", "j\u{f6}rg@b"] {
            assert!(safe_path(ok), "{ok:?}");
        }
        for bad in ["a@b>\r\nRSET", "a\n@b", "a<@b", "a>@b", "a\0@b"] {
            assert!(!safe_path(bad), "{bad:?}");
        }
    }
}
