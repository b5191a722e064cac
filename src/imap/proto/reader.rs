//! Framing of IMAP commands (RFC 3501 §2.2, §4.3; RFC 7888 LITERAL+).
//!
//! A command is one or more lines glued by literals: a line ending in
//! `{n}` (synchronising: the client waits for our `+` continuation) or
//! `{n+}` (non-synchronising) is followed by exactly `n` octets, then the
//! rest of the command. [`CommandReader`] assembles the raw bytes of a
//! whole command (literals kept inline, final CRLF removed) for the parser,
//! and tells the session when to send a continuation request.
//!
//! Memory is bounded: every line by `line_limit`, every literal by
//! `literal_limit`, and a whole command by their sum plus a few lines. An
//! over-long line is reported once and skipped up to its LF without being
//! stored.

/// What the reader produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete command: its raw bytes, literals inline, without the
    /// final line terminator.
    Command(Vec<u8>),
    /// The command has a synchronising literal: send `+ ...` and keep
    /// reading.
    Continue,
    /// A bound was exceeded.
    Error(FrameError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("line too long")]
    LineTooLong { tag: Option<String> },
    /// A literal above the limit. A synchronising one was never sent (the
    /// client waits for our answer), so the session can carry on; a
    /// non-synchronising one is on its way and cannot be skipped safely.
    #[error("literal too large")]
    LiteralTooLarge {
        tag: Option<String>,
        synchronizing: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Line,
    Literal(usize),
    /// Skipping the rest of an over-long line.
    Discard,
}

/// The longest ID command line (RFC 2971's maximum with quoting to spare).
pub const ID_LINE_LIMIT: usize = 40 * 1024;

/// Lines of one command beyond the first allowed besides the literals.
const EXTRA_LINES: usize = 8;

#[derive(Debug, Clone)]
pub struct CommandReader {
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
    /// The command assembled so far.
    cmd: Vec<u8>,
    state: State,
    line_limit: usize,
    literal_limit: usize,
}

impl CommandReader {
    pub fn new(line_limit: usize, literal_limit: usize) -> Self {
        CommandReader {
            buf: Vec::new(),
            start: 0,
            cmd: Vec::new(),
            state: State::Line,
            line_limit,
            literal_limit,
        }
    }

    /// Raises (or lowers) the literal limit, e.g. after login.
    pub fn set_literal_limit(&mut self, limit: usize) {
        self.literal_limit = limit;
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Whether unread input is waiting.
    pub fn has_buffered(&self) -> bool {
        self.start < self.buf.len()
    }

    /// Forgets everything buffered (after STARTTLS: RFC 3501 §6.2.1,
    /// plaintext sent before the handshake must not be executed).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.cmd.clear();
        self.state = State::Line;
    }

    /// After [`Frame::Continue`]: the command so far (its verb decides)
    /// and the size of the literal the client waits to send.
    pub fn pending_literal(&self) -> Option<(&[u8], usize)> {
        match self.state {
            State::Literal(n) => Some((&self.cmd, n)),
            _ => None,
        }
    }

    /// Refuses the synchronising literal announced by the last
    /// [`Frame::Continue`]: the client has not sent it (it waits for `+`),
    /// so the command is dropped and the next line starts a new one.
    /// Returns the dropped command's tag.
    pub fn refuse_literal(&mut self) -> Option<String> {
        let tag = tag_of(&self.cmd);
        self.cmd.clear();
        self.state = State::Line;
        tag
    }

    /// Takes every byte read but not yet framed (COMPRESS: what the client
    /// sent after the command is already compressed).
    pub fn take_unread(&mut self) -> Vec<u8> {
        let rest = self.unread().to_vec();
        self.buf.clear();
        self.start = 0;
        rest
    }

    fn unread(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// One raw line without its terminator (IDLE's DONE, SASL responses);
    /// `None` until a whole line is buffered.
    pub fn take_line(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        loop {
            let unread = self.unread();
            let Some(lf) = unread.iter().position(|&b| b == b'\n') else {
                if self.state == State::Discard {
                    self.start = self.buf.len();
                    return None;
                }
                if without_cr(unread).len() > self.line_limit {
                    self.start = self.buf.len();
                    self.state = State::Discard;
                    return Some(Err(FrameError::LineTooLong { tag: None }));
                }
                return None;
            };
            let line = strip_cr(unread.get(..lf).unwrap_or_default()).to_vec();
            self.start += lf + 1;
            if self.state == State::Discard {
                self.state = State::Line;
                continue;
            }
            if line.len() > self.line_limit {
                return Some(Err(FrameError::LineTooLong { tag: None }));
            }
            return Some(Ok(line));
        }
    }

    /// The next frame, or `None` when more input is needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.state {
                State::Literal(remaining) => {
                    let unread = self.buf.get(self.start..).unwrap_or_default();
                    let n = remaining.min(unread.len());
                    self.cmd
                        .extend_from_slice(unread.get(..n).unwrap_or_default());
                    self.start += n;
                    if n < remaining {
                        self.state = State::Literal(remaining - n);
                        return None;
                    }
                    self.state = State::Line;
                }
                State::Discard => {
                    let unread = self.unread();
                    match unread.iter().position(|&b| b == b'\n') {
                        Some(lf) => {
                            self.start += lf + 1;
                            self.state = State::Line;
                        }
                        None => {
                            self.start = self.buf.len();
                            return None;
                        }
                    }
                }
                State::Line => {
                    let unread = self.unread();
                    let limit = self.limit_for(unread);
                    let Some(lf) = unread.iter().position(|&b| b == b'\n') else {
                        // A CR at the end may be half of a CRLF split
                        // across reads: it does not count against the limit.
                        if without_cr(unread).len() > limit {
                            let tag = self.long_line_tag(unread);
                            self.start = self.buf.len();
                            self.state = State::Discard;
                            return Some(self.line_too_long(tag));
                        }
                        return None;
                    };
                    let line = strip_cr(unread.get(..lf).unwrap_or_default()).to_vec();
                    self.start += lf + 1;
                    if line.len() > limit {
                        let tag = self.long_line_tag(&line);
                        return Some(self.line_too_long(tag));
                    }
                    self.cmd.extend_from_slice(&line);
                    match literal_suffix(&line) {
                        None => {
                            return Some(Frame::Command(std::mem::take(&mut self.cmd)));
                        }
                        Some((n, synchronizing)) => {
                            let budget = self
                                .literal_limit
                                .saturating_add(self.line_limit.saturating_mul(EXTRA_LINES));
                            if n > self.literal_limit || self.cmd.len().saturating_add(n) > budget {
                                let tag = tag_of(&self.cmd);
                                self.cmd.clear();
                                return Some(Frame::Error(FrameError::LiteralTooLarge {
                                    tag,
                                    synchronizing,
                                }));
                            }
                            self.cmd.extend_from_slice(b"\r\n");
                            self.state = State::Literal(n);
                            if synchronizing {
                                return Some(Frame::Continue);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The line limit for the line at the start of `unread`: an ID
    /// command gets [`ID_LINE_LIMIT`] (RFC 2971 §3.3 allows 30 fields of
    /// 1,024-octet values, about 32 KiB on one line), every other the
    /// configured limit. Only the first words decide, so the answer does
    /// not depend on how TCP split the line.
    fn limit_for(&self, unread: &[u8]) -> usize {
        let head = if self.cmd.is_empty() {
            unread
        } else {
            &self.cmd
        };
        let mut words = head.splitn(3, |&b| b == b' ');
        let _tag = words.next();
        match words.next() {
            Some(verb) if verb.eq_ignore_ascii_case(b"ID") => self.line_limit.max(ID_LINE_LIMIT),
            _ => self.line_limit,
        }
    }

    /// The tag of an over-long line, read from its first `line_limit`
    /// octets only and only when a space ends it there: the line may be
    /// found too long after any number of octets (depending on how TCP
    /// split it), and the answer must not depend on that.
    fn long_line_tag(&self, line: &[u8]) -> Option<String> {
        let head = line.get(..self.line_limit.min(line.len()))?;
        let space = head.iter().position(|&b| b == b' ')?;
        tag_of(head.get(..=space)?)
    }

    /// The error for an over-long line; the tag is that of the command
    /// being assembled (a line after a literal), else of the line itself.
    fn line_too_long(&mut self, line_tag: Option<String>) -> Frame {
        let tag = tag_of(&self.cmd).or(line_tag);
        self.cmd.clear();
        Frame::Error(FrameError::LineTooLong { tag })
    }
}

/// `bytes` without one trailing CR.
fn without_cr(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `{123}` or `{123+}` at the end of a line.
fn literal_suffix(line: &[u8]) -> Option<(usize, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let inner = inner.get(open + 1..)?;
    let (digits, synchronizing) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, synchronizing))
}

/// The tag of a (partial) command, for error replies.
pub fn tag_of(cmd: &[u8]) -> Option<String> {
    let end = cmd
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(cmd.len());
    let tag = cmd.get(..end)?;
    let valid = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .iter()
            .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b));
    valid.then(|| String::from_utf8_lossy(tag).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(reader: &mut CommandReader, input: &[u8]) -> Vec<Frame> {
        reader.push(input);
        std::iter::from_fn(|| reader.next_frame()).collect()
    }

    /// Found by the imap_stream fuzz target (session 2): the tag of a line
    /// found too long depended on how many of its octets had arrived.
    #[test]
    fn too_long_line_tag_does_not_depend_on_the_reads() {
        for line in [&b"d0++}"[..], b"abcdef ghi", b"ab cdefghi"] {
            let whole = {
                let mut reader = CommandReader::new(3, 100);
                frames(&mut reader, line)
            };
            let mut reader = CommandReader::new(3, 100);
            let mut split = Vec::new();
            for chunk in line.chunks(2) {
                split.extend(frames(&mut reader, chunk));
            }
            assert_eq!(whole, split, "{line:?}");
        }
        // The tag counts only when a space ends it within the limit.
        let mut reader = CommandReader::new(3, 100);
        assert_eq!(
            frames(&mut reader, b"ab cdefghi"),
            [Frame::Error(FrameError::LineTooLong {
                tag: Some("ab".into())
            })]
        );
    }

    /// Found by the imap_stream fuzz target: the error named the tag of an
    /// earlier command in the same read.
    #[test]
    fn too_long_line_gets_its_own_tag() {
        let mut reader = CommandReader::new(20, 100);
        let got = frames(
            &mut reader,
            b"a1 NOOP\r\nc3 XXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\r\n",
        );
        assert_eq!(got.first(), Some(&Frame::Command(b"a1 NOOP".to_vec())));
        assert_eq!(
            got.get(1),
            Some(&Frame::Error(FrameError::LineTooLong {
                tag: Some("c3".into())
            }))
        );
    }

    /// Found by the fuzzer: a line of exactly the limit whose CRLF was split
    /// across reads was refused.
    #[test]
    fn split_crlf_does_not_count_against_the_limit() {
        let line = b"a1 LOGIN user passwd\r\n";
        let mut whole = CommandReader::new(20, 100);
        let expected = frames(&mut whole, line);
        let mut split = CommandReader::new(20, 100);
        let mut got = frames(&mut split, &line[..21]);
        got.extend(frames(&mut split, &line[21..]));
        assert_eq!(got, expected);
        assert_eq!(
            expected,
            vec![Frame::Command(b"a1 LOGIN user passwd".to_vec())]
        );
    }

    const SCRIPT: &[u8] = b"a1 CAPABILITY\r\n\
a2 LOGIN {6}\r\nfauzan {7+}\r\nrahasia\r\n\
a3 SELECT INBOX\n\
a4 APPEND INBOX (\\Seen) {12}\r\nHello\r\nWorld\r\n\
a5 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)])\r\n\
a6 LOGOUT\r\n";

    fn expected() -> Vec<Frame> {
        vec![
            Frame::Command(b"a1 CAPABILITY".to_vec()),
            Frame::Continue,
            Frame::Command(b"a2 LOGIN {6}\r\nfauzan {7+}\r\nrahasia".to_vec()),
            Frame::Command(b"a3 SELECT INBOX".to_vec()),
            Frame::Continue,
            Frame::Command(b"a4 APPEND INBOX (\\Seen) {12}\r\nHello\r\nWorld".to_vec()),
            Frame::Command(b"a5 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)])".to_vec()),
            Frame::Command(b"a6 LOGOUT".to_vec()),
        ]
    }

    #[test]
    fn whole_script() {
        let mut r = CommandReader::new(1000, 1000);
        assert_eq!(frames(&mut r, SCRIPT), expected());
        assert!(!r.has_buffered());
    }

    #[test]
    fn every_chunk_size() {
        for size in 1..=512 {
            let mut r = CommandReader::new(1000, 1000);
            let mut got = Vec::new();
            for chunk in SCRIPT.chunks(size) {
                got.extend(frames(&mut r, chunk));
            }
            assert_eq!(got, expected(), "chunk size {size}");
        }
    }

    #[test]
    fn long_line_is_reported_once_and_skipped() {
        let mut r = CommandReader::new(16, 100);
        let mut input = b"t1 NOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 40));
        input.extend_from_slice(b"\r\nt2 NOOP\r\n");
        for size in [1, 3, 7, 64] {
            let mut r2 = r.clone();
            let mut got = Vec::new();
            for chunk in input.chunks(size) {
                got.extend(frames(&mut r2, chunk));
            }
            assert_eq!(
                got,
                vec![
                    Frame::Error(FrameError::LineTooLong {
                        tag: Some("t1".into())
                    }),
                    Frame::Command(b"t2 NOOP".to_vec())
                ],
                "chunk size {size}"
            );
        }
        r.clear();
    }

    #[test]
    fn a_refused_literal_drops_the_command() {
        let mut r = CommandReader::new(100, 100);
        r.push(b"a1 APPEND INBOX {10}\r\n");
        assert_eq!(r.next_frame(), Some(Frame::Continue));
        let (cmd, n) = r.pending_literal().unwrap();
        assert!(cmd.starts_with(b"a1 APPEND"));
        assert_eq!(n, 10);
        assert_eq!(r.refuse_literal().as_deref(), Some("a1"));
        r.push(b"a2 NOOP\r\n");
        assert_eq!(r.next_frame(), Some(Frame::Command(b"a2 NOOP".to_vec())));
    }

    #[test]
    fn literal_limits() {
        let mut r = CommandReader::new(100, 10);
        assert_eq!(
            frames(&mut r, b"x LOGIN {11}\r\n"),
            vec![Frame::Error(FrameError::LiteralTooLarge {
                tag: Some("x".into()),
                synchronizing: true
            })]
        );
        assert_eq!(
            frames(&mut r, b"y NOOP\r\n"),
            vec![Frame::Command(b"y NOOP".to_vec())]
        );
        assert_eq!(
            frames(&mut r, b"z LOGIN {99999999999999999999+}\r\n"),
            vec![Frame::Command(b"z LOGIN {99999999999999999999+}".to_vec())],
            "not a literal (too many digits): the parser rejects it"
        );
        r.set_literal_limit(1000);
        assert_eq!(
            frames(&mut r, b"w APPEND a {11+}\r\nhello world\r\n"),
            vec![Frame::Command(b"w APPEND a {11+}\r\nhello world".to_vec())]
        );
    }

    #[test]
    fn take_line_and_literal_suffix() {
        let mut r = CommandReader::new(10, 10);
        r.push(b"DONE\r\nAAAAAAAAAAAAAAAAAAAA\r\nok\n");
        assert_eq!(r.take_line(), Some(Ok(b"DONE".to_vec())));
        assert!(matches!(r.take_line(), Some(Err(_))));
        assert_eq!(r.take_line(), Some(Ok(b"ok".to_vec())));
        assert_eq!(r.take_line(), None);
        assert_eq!(literal_suffix(b"a {5}"), Some((5, true)));
        assert_eq!(literal_suffix(b"a {5+}"), Some((5, false)));
        assert_eq!(literal_suffix(b"a {}"), None);
        assert_eq!(literal_suffix(b"a {x}"), None);
        assert_eq!(tag_of(b"a1 NOOP"), Some("a1".into()));
        assert_eq!(tag_of(b"+ NOOP"), None);
    }
}
