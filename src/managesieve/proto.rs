//! ManageSieve's wire format (RFC 5804 §4), sans-IO: a reader that cuts
//! what the client sends into commands (an atom, then quoted strings,
//! literals and numbers, up to CRLF), and the writers for responses.
//!
//! Every part is bounded: the command line outside literals, each quoted
//! string (1,024 octets, §4), and each literal (the caller's limit, which
//! grows after login to the script size bound). A literal over the limit
//! is read and thrown away, and the command is answered with an error
//! instead of ending the session, so a client can go on after a script
//! that was too large.

/// One argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A quoted string or a literal.
    String(Vec<u8>),
    /// A bare word: a number, or a SASL mechanism some clients send
    /// unquoted.
    Atom(String),
}

impl Arg {
    /// The argument as text, if it is a string (or atom) in UTF-8.
    pub fn text(&self) -> Option<&str> {
        match self {
            Arg::String(b) => std::str::from_utf8(b).ok(),
            Arg::Atom(a) => Some(a),
        }
    }

    pub fn number(&self) -> Option<u64> {
        match self {
            Arg::Atom(a) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => {
                a.parse().ok()
            }
            _ => None,
        }
    }
}

/// One command: its name (upper-cased) and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub args: Vec<Arg>,
}

/// Why the bytes of a command were not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// The line (outside literals) passed its bound.
    LineTooLong,
    /// A literal passed the caller's bound; it has been skipped.
    LiteralTooLarge(u64),
    /// Anything else; the text says what.
    Syntax(&'static str),
}

/// The longest quoted string (RFC 5804 §4: `quoted` is at most 1,024
/// octets; longer strings are sent as literals).
pub const MAX_QUOTED: usize = 1024;
/// Arguments in one command; no command has more than three.
const MAX_ARGS: usize = 8;

/// Cuts the client's bytes into commands.
pub struct Reader {
    buf: Vec<u8>,
    /// Bytes of `buf` known to be needed before a parse can succeed (a
    /// literal's announced length): saves reparsing a large literal for
    /// every chunk that arrives.
    need: usize,
    /// Buffered bytes a parse found incomplete for want of more line (and
    /// how many of them are literal data): a command ends with CRLF, so
    /// no parse is tried again until one arrives past them — a client
    /// trickling the line after a large literal does not make us parse
    /// (and copy) the literal again for every octet.
    scanned: usize,
    scanned_literal: usize,
    /// Literal bytes still to be thrown away, and then the rest of that
    /// command's line.
    skipping: Option<u64>,
    skipped_literal: u64,
    max_line: usize,
    max_literal: u64,
}

enum Parse {
    Done(Command, usize),
    /// Not all here: the buffer length a parse needs (0: unknown), and
    /// how many buffered bytes are literal data (not line).
    Incomplete(usize, usize),
    Bad(Malformed, usize),
    /// A literal too large: skip `len` bytes from `at`.
    Oversize {
        at: usize,
        len: u64,
    },
}

impl Reader {
    pub fn new(max_line: usize, max_literal: u64) -> Reader {
        Reader {
            buf: Vec::new(),
            need: 0,
            scanned: 0,
            scanned_literal: 0,
            skipping: None,
            skipped_literal: 0,
            max_line,
            max_literal,
        }
    }

    pub fn set_max_literal(&mut self, max_literal: u64) {
        self.max_literal = max_literal;
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Forgets what is buffered (what a client pipelined before STARTTLS
    /// must not be read as if it came over TLS).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.need = 0;
        self.scanned = 0;
        self.skipping = None;
    }

    /// The next command, if a whole one is buffered.
    pub fn next_command(&mut self) -> Option<Result<Command, Malformed>> {
        self.next_with(parse)
    }

    /// The client's answer to a SASL challenge: one string, if buffered
    /// (in the returned command's only argument).
    pub fn next_response(&mut self) -> Option<Result<Command, Malformed>> {
        self.next_with(|buf, _, max_literal| parse_response(buf, max_literal))
    }

    fn next_with(
        &mut self,
        parse: fn(&[u8], usize, u64) -> Parse,
    ) -> Option<Result<Command, Malformed>> {
        if let Some(left) = self.skipping {
            let n = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            self.buf.drain(..n);
            let left = left - n as u64;
            if left > 0 {
                self.skipping = Some(left);
                return None;
            }
            // Then the rest of the line after the literal (`Some(0)`
            // until its CRLF is here).
            self.skipping = Some(0);
            let Some(end) = find_crlf(&self.buf) else {
                if self.buf.len() > self.max_line {
                    // Keep a final CR: it may start the CRLF.
                    let keep = usize::from(self.buf.last() == Some(&b'\r'));
                    self.buf.drain(..self.buf.len() - keep);
                }
                return None;
            };
            self.skipping = None;
            self.buf.drain(..end + 2);
            return Some(Err(Malformed::LiteralTooLarge(self.skipped_literal)));
        }
        if self.buf.len() < self.need {
            return None;
        }
        if self.scanned > 0 {
            let new = self.buf.get(self.scanned - 1..).unwrap_or_default();
            if find_crlf(new).is_none() {
                if self.buf.len().saturating_sub(self.scanned_literal) > self.max_line {
                    self.scanned = 0;
                    self.discard_line();
                    return Some(Err(Malformed::LineTooLong));
                }
                return None;
            }
        }
        self.scanned = 0;
        match parse(&self.buf, self.max_line, self.max_literal) {
            Parse::Done(command, used) => {
                self.buf.drain(..used);
                self.need = 0;
                Some(Ok(command))
            }
            Parse::Incomplete(need, literal) => {
                self.need = need;
                if need == 0 {
                    self.scanned = self.buf.len();
                    self.scanned_literal = literal;
                }
                if self.buf.len().saturating_sub(literal) > self.max_line {
                    self.scanned = 0;
                    self.discard_line();
                    return Some(Err(Malformed::LineTooLong));
                }
                None
            }
            Parse::Bad(why, used) => {
                self.buf.drain(..used);
                self.need = 0;
                Some(Err(why))
            }
            Parse::Oversize { at, len } => {
                self.buf.drain(..at);
                self.need = 0;
                self.skipping = Some(len);
                self.skipped_literal = len;
                self.next_with(parse)
            }
        }
    }

    /// After an over-long line: drop it, up to its CRLF if buffered
    /// (else everything, and the rest of the line arrives as garbage the
    /// next parse refuses).
    fn discard_line(&mut self) {
        match find_crlf(&self.buf) {
            Some(end) => {
                self.buf.drain(..end + 2);
            }
            None => self.buf.clear(),
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Parses one command from the start of `buf`.
fn parse(buf: &[u8], max_line: usize, max_literal: u64) -> Parse {
    let mut at = 0;
    while let Some(&b) = buf.get(at) {
        if b.is_ascii_alphabetic() {
            at += 1;
        } else {
            break;
        }
    }
    if at == buf.len() {
        return Parse::Incomplete(0, 0);
    }
    if at == 0 {
        return bad("expected a command name", buf, at);
    }
    let name = String::from_utf8_lossy(buf.get(..at).unwrap_or_default()).to_ascii_uppercase();
    let mut args = Vec::new();
    // Octets of literal data so far: they do not count against the line.
    let mut literal = 0usize;
    loop {
        if at - literal > max_line {
            return Parse::Bad(Malformed::LineTooLong, line_end(buf, 0));
        }
        match buf.get(at..).unwrap_or_default() {
            [] | [b'\r'] => return Parse::Incomplete(0, literal),
            [b'\r', b'\n', ..] => return Parse::Done(Command { name, args }, at + 2),
            [b' ', ..] => {
                if args.len() >= MAX_ARGS {
                    return bad("too many arguments", buf, at);
                }
                match parse_arg(buf, at + 1, max_literal, literal) {
                    ArgParse::Got(arg, end, lit) => {
                        args.push(arg);
                        at = end;
                        literal = lit;
                    }
                    ArgParse::Stop(parse) => return parse,
                }
            }
            _ => return bad("expected a space or the end of the line", buf, at),
        }
    }
}

/// Parses a SASL response (RFC 5804 §2.1): one string and CRLF.
fn parse_response(buf: &[u8], max_literal: u64) -> Parse {
    match parse_arg(buf, 0, max_literal, 0) {
        ArgParse::Got(arg, end, literal) => match buf.get(end..).unwrap_or_default() {
            [] | [b'\r'] => Parse::Incomplete(0, literal),
            [b'\r', b'\n', ..] => Parse::Done(
                Command {
                    name: String::new(),
                    args: vec![arg],
                },
                end + 2,
            ),
            _ => bad("expected the end of the line", buf, end),
        },
        ArgParse::Stop(parse) => parse,
    }
}

fn line_end(buf: &[u8], from: usize) -> usize {
    find_crlf(buf.get(from..).unwrap_or_default()).map_or(buf.len(), |e| from + e + 2)
}

fn bad(why: &'static str, buf: &[u8], at: usize) -> Parse {
    Parse::Bad(Malformed::Syntax(why), line_end(buf, at))
}

enum ArgParse {
    /// The argument, where it ends, and the literal octets so far.
    Got(Arg, usize, usize),
    Stop(Parse),
}

/// One argument at `at`: a quoted string, a literal or an atom.
fn parse_arg(buf: &[u8], at: usize, max_literal: u64, literal: usize) -> ArgParse {
    let stop = ArgParse::Stop;
    match buf.get(at) {
        None => stop(Parse::Incomplete(0, literal)),
        Some(b'"') => match quoted(buf, at) {
            Ok(Some((s, end))) => ArgParse::Got(Arg::String(s), end, literal),
            Ok(None) => stop(Parse::Incomplete(0, literal)),
            Err(why) => stop(bad(why, buf, at)),
        },
        Some(b'{') => match literal_header(buf, at) {
            Ok(Some((len, body))) => {
                let end = usize::try_from(len).ok().and_then(|l| body.checked_add(l));
                match end {
                    // The bound is on all literals of the command together.
                    Some(end) if (literal as u64).saturating_add(len) <= max_literal => match buf
                        .get(body..end)
                    {
                        Some(bytes) => {
                            ArgParse::Got(Arg::String(bytes.to_vec()), end, literal + end - body)
                        }
                        None => stop(Parse::Incomplete(end, buf.len() - body + literal)),
                    },
                    _ => stop(Parse::Oversize { at: body, len }),
                }
            }
            Ok(None) => stop(Parse::Incomplete(0, literal)),
            Err(why) => stop(bad(why, buf, at)),
        },
        Some(_) => {
            let mut end = at;
            while let Some(&b) = buf.get(end) {
                if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                    end += 1;
                } else {
                    break;
                }
            }
            if end == at {
                return stop(bad("unexpected character", buf, at));
            }
            let atom = String::from_utf8_lossy(buf.get(at..end).unwrap_or_default()).into_owned();
            ArgParse::Got(Arg::Atom(atom), end, literal)
        }
    }
}

/// A quoted string starting at `buf[at] == '"'`: its contents and where
/// it ends; `None` if not all here yet.
fn quoted(buf: &[u8], at: usize) -> Result<Option<(Vec<u8>, usize)>, &'static str> {
    let mut out = Vec::new();
    let mut i = at + 1;
    loop {
        match buf.get(i) {
            None => return Ok(None),
            Some(b'"') => return Ok(Some((out, i + 1))),
            Some(b'\\') => match buf.get(i + 1) {
                None => return Ok(None),
                Some(&c @ (b'"' | b'\\')) => {
                    out.push(c);
                    i += 2;
                }
                Some(_) => return Err("bad escape in a quoted string"),
            },
            Some(b'\r' | b'\n' | 0) => return Err("CR, LF or NUL in a quoted string"),
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
        if out.len() > MAX_QUOTED {
            return Err("quoted string longer than 1024 octets; send a literal");
        }
    }
}

/// `{n+}CRLF` or `{n}CRLF` at `buf[at] == '{'`: the length and where the
/// literal's bytes start. The synchronising form is accepted too, without
/// a continuation (ManageSieve has none), as Pigeonhole does.
fn literal_header(buf: &[u8], at: usize) -> Result<Option<(u64, usize)>, &'static str> {
    let mut i = at + 1;
    let mut len: u64 = 0;
    let mut digits = 0;
    while let Some(&b) = buf.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        len = len
            .checked_mul(10)
            .and_then(|l| l.checked_add(u64::from(b - b'0')))
            .ok_or("literal length out of range")?;
        digits += 1;
        if digits > 12 {
            return Err("literal length out of range");
        }
        i += 1;
    }
    if buf.get(i).is_none() {
        return Ok(None);
    }
    if digits == 0 {
        return Err("bad literal");
    }
    if buf.get(i) == Some(&b'+') {
        i += 1;
    }
    let tail = [b'}', b'\r', b'\n'];
    for (k, want) in tail.iter().enumerate() {
        match buf.get(i + k) {
            None => return Ok(None),
            Some(b) if b == want => {}
            Some(_) => return Err("bad literal"),
        }
    }
    Ok(Some((len, i + 3)))
}

/// Appends a string as ManageSieve sends it: quoted when short and safe,
/// else a literal.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    let safe = s.len() <= MAX_QUOTED && !s.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0);
    if safe {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
}

/// The three responses (RFC 5804 §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bye,
}

/// `OK`/`NO`/`BYE`, an optional response code (its text as sent, e.g.
/// `QUOTA/MAXSIZE`), and a human-readable string.
pub fn write_response(out: &mut Vec<u8>, status: Status, code: Option<&str>, text: &str) {
    out.extend_from_slice(match status {
        Status::Ok => b"OK",
        Status::No => b"NO",
        Status::Bye => b"BYE",
    });
    if let Some(code) = code {
        out.extend_from_slice(b" (");
        out.extend_from_slice(code.as_bytes());
        out.push(b')');
    }
    if !text.is_empty() {
        out.push(b' ');
        write_string(out, text.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], max_literal: u64) -> Vec<Result<Command, Malformed>> {
        let mut r = Reader::new(100, max_literal);
        let mut out = Vec::new();
        // Byte by byte: every split point must work.
        for b in input {
            r.push(std::slice::from_ref(b));
            while let Some(c) = r.next_command() {
                out.push(c);
            }
        }
        out
    }

    fn s(b: &str) -> Arg {
        Arg::String(b.as_bytes().to_vec())
    }

    #[test]
    fn commands_with_strings_literals_and_numbers() {
        let got = all(
            b"capability\r\nPUTSCRIPT \"a \\\"b\\\"\" {5+}\r\nkeep;\r\nHAVESPACE \"x\" 123\r\nAUTHENTICATE PLAIN {3}\r\nabc\r\n",
            100,
        );
        assert_eq!(
            got,
            vec![
                Ok(Command {
                    name: "CAPABILITY".into(),
                    args: vec![]
                }),
                Ok(Command {
                    name: "PUTSCRIPT".into(),
                    args: vec![s("a \"b\""), s("keep;")]
                }),
                Ok(Command {
                    name: "HAVESPACE".into(),
                    args: vec![s("x"), Arg::Atom("123".into())]
                }),
                Ok(Command {
                    name: "AUTHENTICATE".into(),
                    args: vec![Arg::Atom("PLAIN".into()), s("abc")]
                }),
            ]
        );
    }

    #[test]
    fn an_oversize_literal_is_skipped_and_the_next_command_read() {
        let got = all(
            b"PUTSCRIPT \"a\" {20+}\r\n01234567890123456789\r\nNOOP\r\n",
            10,
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Err(Malformed::LiteralTooLarge(20)));
        assert_eq!(got[1].as_ref().map(|c| c.name.as_str()), Ok("NOOP"));
    }

    #[test]
    fn the_literal_bound_is_on_the_whole_command() {
        // Each literal fits in 10 octets; together they do not.
        let got = all(b"PUTSCRIPT {6+}\r\nabcdef {6+}\r\nghijkl\r\nNOOP\r\n", 10);
        assert_eq!(got.first(), Some(&Err(Malformed::LiteralTooLarge(6))));
        assert_eq!(got.last().map(|c| c.is_ok()), Some(true));
        // A line trickled after a literal still ends at its bound.
        let long = [
            b"PUTSCRIPT {3+}\r\nabc ".as_slice(),
            &[b'a'; 300],
            b"\r\nNOOP\r\n",
        ]
        .concat();
        let got = all(&long, 10);
        assert!(got.contains(&Err(Malformed::LineTooLong)), "{got:?}");
        assert_eq!(got.last().map(|c| c.is_ok()), Some(true));
    }

    #[test]
    fn bad_input_is_refused_and_reading_goes_on() {
        let got = all(b"\"x\r\nNOOP \"a\rb\"\r\nNOOP {x}\r\nNOOP\r\n", 10);
        assert!(matches!(got[0], Err(Malformed::Syntax(_))));
        assert_eq!(got.last().map(|c| c.is_ok()), Some(true));
        let long = [b"NOOP \"".as_slice(), &[b'a'; 300], b"\"\r\nNOOP\r\n"].concat();
        let got = all(&long, 10);
        assert!(
            got.iter().any(|c| c == &Err(Malformed::LineTooLong)),
            "{got:?}"
        );
        assert_eq!(got.last().map(|c| c.is_ok()), Some(true));
    }

    #[test]
    fn strings_are_quoted_or_sent_as_literals() {
        let mut out = Vec::new();
        write_response(&mut out, Status::No, Some("QUOTA/MAXSIZE"), "too \"big\"");
        assert_eq!(out, b"NO (QUOTA/MAXSIZE) \"too \\\"big\\\"\"\r\n");
        out.clear();
        write_string(&mut out, b"a\r\nb");
        assert_eq!(out, b"{4}\r\na\r\nb");
    }
}
