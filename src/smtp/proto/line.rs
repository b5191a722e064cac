//! Bounded line reader for the SMTP command phase (RFC 5321 §2.3.8,
//! §4.5.3.1.4).
//!
//! The session reads from the socket into [`LineReader::push`] and then
//! drains [`LineReader::next_line`] until it returns `None`. Lines come out
//! without their terminator; [`Line::bare_lf`] says whether it was a lone
//! LF, so the session can apply its bare-newline policy (Postfix 3.9
//! `smtpd_forbid_bare_newline`) to commands as well as to message content.
//!
//! Memory is bounded: a line longer than `max_line` is reported once as
//! [`LineError::TooLong`] and then skipped up to and including its LF
//! without being stored, so the session can answer `500 5.5.2` and carry
//! on. Provided the caller drains `next_line` after every `push`, the
//! buffer never holds more than `max_line + 1` bytes plus one read chunk.
//!
//! The unread bytes stay available through [`LineReader::buffered`] so the
//! session can detect pipelining before a synchronisation point (RFC 2920
//! §3.1), hand them to the DATA/BDAT decoders, or drop them after
//! STARTTLS (RFC 3207 §4.2, the CVE-2011-0411 command injection).

use super::reply::Reply;

/// One command line, terminator removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub bytes: Vec<u8>,
    /// The line ended in LF without a preceding CR.
    pub bare_lf: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("line too long")]
    TooLong,
}

impl LineError {
    /// `500 5.5.2 Error: line too long` (RFC 5321 §4.5.3.1.4 lists 500 for
    /// "line too long").
    pub fn reply(&self) -> Reply {
        match self {
            LineError::TooLong => Reply::new(500, "5.5.2", "Error: line too long"),
        }
    }
}

/// Splits an incoming byte stream into lines of at most `max_line` bytes.
#[derive(Debug, Clone)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`; everything before is consumed
    /// and dropped on the next `push`.
    start: usize,
    /// How many unread bytes are already known to contain no LF, so a line
    /// trickling in byte by byte is not rescanned from its start each time.
    scanned: usize,
    max_line: usize,
    /// Skipping the rest of an over-long line up to its LF.
    discarding: bool,
}

impl LineReader {
    /// `max_line` is the longest accepted line in bytes, terminator
    /// excluded (RFC 5321's 512 includes the CRLF, so pass 510 for the
    /// strict limit; Postfix uses 2048).
    pub fn new(max_line: usize) -> Self {
        LineReader {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_line,
            discarding: false,
        }
    }

    /// Appends bytes read from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        let bytes = if self.discarding {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(lf) => {
                    self.discarding = false;
                    bytes.get(lf + 1..).unwrap_or_default()
                }
                None => return,
            }
        } else {
            bytes
        };
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, `Some(Err(TooLong))` once per over-long
    /// line, or `None` when more input is needed.
    pub fn next_line(&mut self) -> Option<Result<Line, LineError>> {
        let unread = self.buf.get(self.start..).unwrap_or_default();
        let unscanned = unread.get(self.scanned..).unwrap_or_default();
        match unscanned.iter().position(|&b| b == b'\n') {
            Some(offset) => Some(self.take_line(self.scanned + offset)),
            None => self.check_partial(),
        }
    }

    /// Consumes the unread bytes up to and including the LF at `lf`
    /// (relative to `start`).
    fn take_line(&mut self, lf: usize) -> Result<Line, LineError> {
        let unread = self.buf.get(self.start..).unwrap_or_default();
        let raw = unread.get(..lf).unwrap_or_default();
        let (content, bare_lf) = match raw.strip_suffix(b"\r") {
            Some(content) => (content, false),
            None => (raw, true),
        };
        let result = if content.len() > self.max_line {
            Err(LineError::TooLong)
        } else {
            Ok(Line {
                bytes: content.to_vec(),
                bare_lf,
            })
        };
        self.start += lf + 1;
        self.scanned = 0;
        result
    }

    /// No LF yet: give up on the line once it can no longer fit. A trailing
    /// CR does not count, it may be the first half of the CRLF. Comparing
    /// the same length as `take_line` keeps the verdict independent of how
    /// the line was split across reads.
    fn check_partial(&mut self) -> Option<Result<Line, LineError>> {
        let unread = self.buf.get(self.start..).unwrap_or_default();
        self.scanned = unread.len();
        let pending = unread.len() - usize::from(unread.ends_with(b"\r"));
        if pending <= self.max_line {
            return None;
        }
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        self.discarding = true;
        Some(Err(LineError::TooLong))
    }

    /// The bytes received but not yet returned as lines.
    pub fn buffered(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// Removes and returns the unread bytes, e.g. for the DATA decoder.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let rest = self.buffered().to_vec();
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        rest
    }

    /// Forgets everything, including a pending over-long line: after
    /// STARTTLS nothing sent in plaintext may be acted upon.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        self.discarding = false;
    }

    /// Drops consumed bytes so the buffer only holds unread ones.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start.min(self.buf.len()));
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Item = Result<(String, bool), LineError>;

    /// Feeds `input` in `chunk`-byte pieces, draining after every push, and
    /// also checks the memory bound on the way.
    fn run(input: &[u8], max_line: usize, chunk: usize) -> (Vec<Item>, Vec<u8>) {
        let mut reader = LineReader::new(max_line);
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            reader.push(piece);
            assert!(reader.buf.len() <= max_line + 1 + chunk, "buffer grew");
            while let Some(item) = reader.next_line() {
                out.push(item.map(|l| (String::from_utf8_lossy(&l.bytes).into_owned(), l.bare_lf)));
            }
        }
        let rest = reader.buffered().to_vec();
        (out, rest)
    }

    fn ok(text: &str, bare_lf: bool) -> Item {
        Ok((text.to_string(), bare_lf))
    }

    #[test]
    fn splits_lines() {
        let cases: Vec<(&[u8], Vec<Item>, &[u8])> = vec![
            (b"", vec![], b""),
            (b"EHLO x\r\n", vec![ok("EHLO x", false)], b""),
            (b"a\r\nb\nc", vec![ok("a", false), ok("b", true)], b"c"),
            (b"\r\n\n", vec![ok("", false), ok("", true)], b""),
            // Only the CR right before the LF is part of the terminator.
            (b"a\r\r\n", vec![ok("a\r", false)], b""),
            (b"a\rb\r\n", vec![ok("a\rb", false)], b""),
            (b"0123456789\r\n", vec![ok("0123456789", false)], b""),
            (b"0123456789\n", vec![ok("0123456789", true)], b""),
            (
                b"0123456789X\r\nok\r\n",
                vec![Err(LineError::TooLong), ok("ok", false)],
                b"",
            ),
            // A full-length line whose LF has not arrived yet is kept.
            (b"0123456789\r", vec![], b"0123456789\r"),
            (b"0123456789X", vec![Err(LineError::TooLong)], b""),
        ];
        for (input, want, rest) in cases {
            let (got, left) = run(input, 10, input.len().max(1));
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(left, rest, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn too_long_is_reported_once_and_resyncs() {
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\r\nQUIT\r\n");
        for chunk in [1, 7, 64, 512, 4096, 10000] {
            let (got, rest) = run(&input, 100, chunk);
            assert_eq!(
                got,
                vec![Err(LineError::TooLong), ok("QUIT", false)],
                "chunk {chunk}"
            );
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn too_long_line_split_before_its_lf_does_not_leak_tail() {
        let mut reader = LineReader::new(4);
        reader.push(b"abcdefgh");
        assert_eq!(reader.next_line(), Some(Err(LineError::TooLong)));
        assert_eq!(reader.next_line(), None);
        reader.push(b"ijkl");
        assert_eq!(reader.next_line(), None);
        assert!(reader.buffered().is_empty());
        reader.push(b"mn\r\nRSET\r\n");
        assert_eq!(
            reader.next_line(),
            Some(Ok(Line {
                bytes: b"RSET".to_vec(),
                bare_lf: false
            }))
        );
        assert_eq!(reader.next_line(), None);
    }

    #[test]
    fn buffered_take_and_clear() {
        let mut reader = LineReader::new(100);
        reader.push(b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
        assert_eq!(reader.next_line().unwrap().unwrap().bytes, b"DATA");
        assert_eq!(reader.buffered(), b"Subject: x\r\n\r\nbody\r\n.\r\n");
        assert_eq!(reader.take_buffered(), b"Subject: x\r\n\r\nbody\r\n.\r\n");
        assert!(reader.buffered().is_empty());
        assert_eq!(reader.next_line(), None);

        // STARTTLS injection: the pipelined plaintext must vanish.
        reader.push(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n");
        assert_eq!(reader.next_line().unwrap().unwrap().bytes, b"STARTTLS");
        reader.clear();
        assert_eq!(reader.next_line(), None);
        reader.push(b"EHLO tls\r\n");
        assert_eq!(reader.next_line().unwrap().unwrap().bytes, b"EHLO tls");
    }

    #[test]
    fn clear_cancels_discarding() {
        let mut reader = LineReader::new(3);
        reader.push(b"toolong");
        assert_eq!(reader.next_line(), Some(Err(LineError::TooLong)));
        reader.clear();
        reader.push(b"ok\r\n");
        assert_eq!(reader.next_line().unwrap().unwrap().bytes, b"ok");
    }

    #[test]
    fn chunk_size_sweep() {
        let mut script = b"EHLO client.example\r\n\
            MAIL FROM:<a@b>\n\
            \r\n\
            RCPT TO:<c@d>\r\r\n"
            .to_vec();
        script.extend_from_slice(&[b'A'; 300]);
        script.extend_from_slice(b"\r\n");
        script.extend_from_slice(&[b'B'; 200]);
        script.extend_from_slice(b"\n");
        script.extend_from_slice(&[b'C'; 199]);
        script.extend_from_slice(b"\r\nDATA\r\npartial");
        let (whole, whole_rest) = run(&script, 200, script.len());
        assert_eq!(whole.len(), 8);
        assert_eq!(whole[3], ok("RCPT TO:<c@d>\r", false));
        assert_eq!(whole[4], Err(LineError::TooLong));
        assert_eq!(whole[5], ok(&"B".repeat(200), true));
        assert_eq!(whole_rest, b"partial");
        for chunk in 1..=512 {
            assert_eq!(
                run(&script, 200, chunk),
                (whole.clone(), whole_rest.clone()),
                "chunk {chunk}"
            );
        }
    }
}
