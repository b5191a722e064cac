//! Message content decoders: DATA (RFC 5321 §4.1.1.4, §4.5.2) and BDAT
//! (RFC 3030 §2), hardened against SMTP smuggling with the semantics of
//! Postfix 3.9 `smtpd_forbid_bare_newline`.
//!
//! SMTP smuggling (CVE-2023-51764 and friends) works when two servers
//! disagree about where a message ends: a sender hides `<LF>.<LF>` (or a
//! similar near-miss) in one message, the outbound server passes it on, and
//! a lenient inbound server sees the end of data plus a second, forged
//! message. The defence has two halves, both here:
//!
//! * the data ends ONLY at `<CR><LF>.<CR><LF>`: the CRLF before the dot
//!   ends the previous line (or the dot is the very first byte of the
//!   data). `<LF>.<LF>`, `<CR>.<CR>`, `<LF>.<CR><LF>`, `<CR><LF>.<LF>`
//!   are content;
//! * what we store is CRLF-normalised, so a bare LF can never reach a
//!   downstream server: [`BareLf::Normalize`] turns it into CRLF,
//!   [`BareLf::Reject`] fails the message (after reading it to the end, so
//!   the session stays in sync).
//!
//! A line is anything terminated by LF (with or without CR); a leading dot
//! on a line is removed (dot-unstuffing, RFC 5321 §4.5.2). A line that is a
//! lone dot but fails the end-marker test above is therefore stored as an
//! empty line. A bare CR is neither a line end nor an error, and is stored
//! as is: it is harmless downstream because the end marker needs an LF.
//!
//! Both decoders are sans-IO and incremental: they accept input split at
//! any byte boundary and report how many bytes they consumed, so bytes
//! after the end belong to the next (pipelined) command. Memory is bounded
//! by `max_size`: once the decoded message exceeds it, storage is freed
//! and the rest is only counted.

use super::reply::Reply;

/// What to do with a line ending in LF without CR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLf {
    /// Store it as CRLF (Postfix 3.9 `smtpd_forbid_bare_newline = normalize`).
    Normalize,
    /// Fail the message with [`DataError::BareLf`]
    /// (`smtpd_forbid_bare_newline = reject`).
    Reject,
}

/// Result of one [`DataDecoder::feed`] or [`BdatDecoder::feed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataProgress {
    /// Input bytes that belonged to the message (or chunk); the rest of the
    /// input is the next command.
    pub consumed: usize,
    /// The end of data (or of the BDAT chunk) was reached.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("message exceeds the size limit")]
    TooBig,
    #[error("bare <LF> received")]
    BareLf,
    #[error("bare <CR> received in the header")]
    BareCrInHeader,
    /// `finish` was called before the end of the data.
    #[error("message data is incomplete")]
    Incomplete,
}

impl DataError {
    pub fn reply(&self) -> Reply {
        match self {
            // RFC 1870 §6.3 / RFC 3463: 552 5.3.4 "message too big".
            DataError::TooBig => Reply::new(552, "5.3.4", "Error: message file too big"),
            // Postfix's smtpd_forbid_bare_newline_reject_code defaults to
            // 550; 5.5.2 is "syntax error" (RFC 3463).
            DataError::BareLf => Reply::new(550, "5.5.2", "Error: bare <LF> received"),
            DataError::BareCrInHeader => Reply::new(
                550,
                "5.5.2",
                "Error: bare <CR> received in the message header",
            ),
            // A session bug rather than a client error: ask for a retry.
            DataError::Incomplete => Reply::new(451, "4.3.0", "Error: incomplete message data"),
        }
    }
}

/// A bare CR (not followed by LF) in the header section: some readers and
/// servers take it for a line end, so `Subject: a<CR>X-Injected: yes`
/// would become two header fields downstream. Under [`BareLf::Normalize`]
/// it becomes a space (never a line break: that would do the injection
/// for the sender); under [`BareLf::Reject`] the message is refused. The
/// body is left as it is (a bare CR there cannot forge a header field).
pub fn bare_cr_in_header(message: &mut [u8], policy: BareLf) -> Result<(), DataError> {
    let end = memchr::memmem::find(message, b"\r\n\r\n").map_or(message.len(), |i| i + 2);
    let header = message.get_mut(..end).unwrap_or_default();
    let bare: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\r' && header.get(i + 1) != Some(&b'\n'))
        .map(|(i, _)| i)
        .collect();
    if bare.is_empty() {
        return Ok(());
    }
    match policy {
        BareLf::Reject => Err(DataError::BareCrInHeader),
        BareLf::Normalize => {
            for i in bare {
                if let Some(b) = header.get_mut(i) {
                    *b = b' ';
                }
            }
            Ok(())
        }
    }
}

/// Collects decoded bytes under the size cap and remembers policy
/// violations; shared by both decoders so they agree on limits and errors.
#[derive(Debug)]
struct Sink {
    out: Vec<u8>,
    /// Decoded size so far, counted even after storage stopped.
    size: u64,
    max_size: u64,
    bare_lf: BareLf,
    too_big: bool,
    saw_bare_lf: bool,
}

impl Sink {
    fn new(max_size: u64, bare_lf: BareLf) -> Self {
        Sink {
            out: Vec::new(),
            size: 0,
            max_size,
            bare_lf,
            too_big: false,
            saw_bare_lf: false,
        }
    }

    /// True once the message is doomed and nothing more needs storing.
    fn failed(&self) -> bool {
        self.too_big || self.saw_bare_lf
    }

    fn push(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.failed() {
            return;
        }
        if self.size > self.max_size {
            self.too_big = true;
            self.out = Vec::new();
            return;
        }
        // Grow by doubling but never past max_size, so even the capacity
        // respects the cap (plain `extend` could reserve up to twice it).
        let needed = self.out.len() + bytes.len();
        if needed > self.out.capacity() {
            let cap = usize::try_from(self.max_size).unwrap_or(usize::MAX);
            let target = needed.max(self.out.capacity().saturating_mul(2)).min(cap);
            self.out.reserve_exact(target - self.out.len());
        }
        self.out.extend_from_slice(bytes);
    }

    /// A line ended in a lone LF.
    fn bare_lf(&mut self) {
        match self.bare_lf {
            BareLf::Normalize => self.push(b"\r\n"),
            BareLf::Reject => {
                self.saw_bare_lf = true;
                self.out = Vec::new();
            }
        }
    }

    /// A bare-LF rejection wins over "too big": it is the protocol
    /// violation Postfix would have disconnected for.
    fn finish(self) -> Result<Vec<u8>, DataError> {
        if self.saw_bare_lf {
            Err(DataError::BareLf)
        } else if self.too_big {
            Err(DataError::TooBig)
        } else {
            Ok(self.out)
        }
    }
}

/// Where the DATA decoder is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line. `after_crlf` is false when the previous line
    /// ended in a bare LF, so this line cannot be the end marker.
    LineStart { after_crlf: bool },
    /// Saw `.` at the start of a line that may be the end marker.
    Dot,
    /// Saw `.<CR>` at the start of such a line.
    DotCr,
    /// Inside a line.
    InLine,
    /// Saw a CR inside a line; an LF next makes it a CRLF.
    Cr,
    /// Consumed the end marker.
    Done,
}

/// Decodes a DATA body up to `<CR><LF>.<CR><LF>`.
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    sink: Sink,
}

impl DataDecoder {
    /// `max_size` caps the decoded message in bytes (use `u64::MAX` for no
    /// limit).
    pub fn new(max_size: u64, bare_lf: BareLf) -> Self {
        DataDecoder {
            // The DATA command line ended in CRLF, so `.<CR><LF>` right away
            // is an empty message.
            state: State::LineStart { after_crlf: true },
            sink: Sink::new(max_size, bare_lf),
        }
    }

    /// Consumes input up to and including the end marker.
    pub fn feed(&mut self, input: &[u8]) -> DataProgress {
        let mut consumed = 0;
        while self.state != State::Done {
            let rest = input.get(consumed..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            consumed += self.step(rest);
        }
        DataProgress {
            consumed,
            done: self.is_done(),
        }
    }

    /// Consumes at least one byte of `rest` (which is not empty).
    fn step(&mut self, rest: &[u8]) -> usize {
        // Fast path: copy a run of ordinary bytes in one go. It only emits
        // bytes and does not change state, so it cannot make the result
        // depend on how the input was split.
        if self.state == State::InLine {
            let run = rest
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .unwrap_or(rest.len());
            if run > 0 {
                self.sink.push(rest.get(..run).unwrap_or_default());
                return run;
            }
        }
        if let Some(&b) = rest.first() {
            self.state = self.byte(b);
        }
        1
    }

    fn byte(&mut self, b: u8) -> State {
        match self.state {
            // Dot-unstuff; after a bare LF the line can never be the end.
            State::LineStart { after_crlf } if b == b'.' => {
                if after_crlf {
                    State::Dot
                } else {
                    State::InLine
                }
            }
            State::LineStart { .. } | State::InLine => self.in_line(b),
            State::Dot if b == b'\r' => State::DotCr,
            // `.x` or `.<LF>`: the dot was stuffing, the rest is content.
            State::Dot => self.in_line(b),
            State::DotCr if b == b'\n' => State::Done,
            // `.<CR>x`: the dot was stuffing, the CR is a bare CR.
            State::DotCr | State::Cr => self.cr_then(b),
            State::Done => State::Done,
        }
    }

    /// After a pending CR: LF completes a CRLF, anything else leaves the CR
    /// bare and is processed normally.
    fn cr_then(&mut self, b: u8) -> State {
        if b == b'\n' {
            self.sink.push(b"\r\n");
            return State::LineStart { after_crlf: true };
        }
        self.sink.push(b"\r");
        self.in_line(b)
    }

    fn in_line(&mut self, b: u8) -> State {
        match b {
            b'\r' => State::Cr,
            b'\n' => {
                self.sink.bare_lf();
                State::LineStart { after_crlf: false }
            }
            _ => {
                self.sink.push(&[b]);
                State::InLine
            }
        }
    }

    /// The end marker has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded bytes so far (still counted after the size cap is hit).
    pub fn size(&self) -> u64 {
        self.sink.size
    }

    /// The message, CRLF-normalised and dot-unstuffed, ending in CRLF
    /// unless empty.
    pub fn finish(self) -> Result<Vec<u8>, DataError> {
        if !self.is_done() {
            return Err(DataError::Incomplete);
        }
        self.sink.finish()
    }
}

/// How BDAT content is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BdatMode {
    /// Line endings treated like DATA's.
    Text,
    /// `BODY=BINARYMIME` (RFC 3030 §3): octets are stored untouched.
    Binary,
}

/// Decodes the chunks of one BDAT message (RFC 3030 §2): exactly `size`
/// raw octets per chunk, no dot-unstuffing, no end marker.
///
/// One decoder spans all chunks of a message, so a CRLF split across two
/// chunks is still a CRLF and `max_size` covers the whole message.
#[derive(Debug)]
pub struct BdatDecoder {
    sink: Sink,
    mode: BdatMode,
    /// Octets of the current chunk still to read.
    remaining: u64,
    /// The last stored octet was a CR that may yet pair with an LF.
    pending_cr: bool,
}

impl BdatDecoder {
    /// A decoder for 7BIT/8BITMIME content: bare LFs are normalised or
    /// rejected exactly as in DATA.
    pub fn new(max_size: u64, bare_lf: BareLf) -> Self {
        Self::with_mode(max_size, bare_lf, BdatMode::Text)
    }

    /// A decoder for `BODY=BINARYMIME`, where a lone LF is data, not a line
    /// ending, and must not be altered.
    pub fn binary(max_size: u64) -> Self {
        Self::with_mode(max_size, BareLf::Normalize, BdatMode::Binary)
    }

    fn with_mode(max_size: u64, bare_lf: BareLf, mode: BdatMode) -> Self {
        BdatDecoder {
            sink: Sink::new(max_size, bare_lf),
            mode,
            remaining: 0,
            pending_cr: false,
        }
    }

    /// Starts the chunk announced by `BDAT <size>`.
    pub fn begin_chunk(&mut self, size: u64) {
        self.remaining = self.remaining.saturating_add(size);
    }

    /// Octets of the current chunk not yet received.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Decoded bytes so far, over all chunks.
    pub fn size(&self) -> u64 {
        self.sink.size
    }

    /// Consumes input up to the end of the current chunk; `done` means the
    /// chunk is complete (a zero-size chunk is complete at once).
    pub fn feed(&mut self, input: &[u8]) -> DataProgress {
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        let chunk = input.get(..take).unwrap_or_default();
        match self.mode {
            BdatMode::Binary => self.sink.push(chunk),
            BdatMode::Text => self.normalize(chunk),
        }
        self.remaining -= take as u64;
        DataProgress {
            consumed: take,
            done: self.remaining == 0,
        }
    }

    /// Stores `chunk` with DATA's line-ending rules, carrying a trailing CR
    /// over to the next call.
    fn normalize(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let run = chunk
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .unwrap_or(chunk.len());
            if run > 0 {
                self.flush_cr();
                self.sink.push(chunk.get(..run).unwrap_or_default());
            }
            match chunk.get(run) {
                Some(b'\r') => {
                    self.flush_cr();
                    self.pending_cr = true;
                }
                Some(_) if self.pending_cr => {
                    self.pending_cr = false;
                    self.sink.push(b"\r\n");
                }
                Some(_) => self.sink.bare_lf(),
                None => {}
            }
            chunk = chunk.get(run + 1..).unwrap_or_default();
        }
    }

    /// A pending CR not followed by LF is a bare CR: store it as is.
    fn flush_cr(&mut self) {
        if self.pending_cr {
            self.pending_cr = false;
            self.sink.push(b"\r");
        }
    }

    /// The message after the `LAST` chunk has been read completely.
    pub fn finish(mut self) -> Result<Vec<u8>, DataError> {
        if self.remaining > 0 {
            return Err(DataError::Incomplete);
        }
        self.flush_cr();
        self.sink.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_cr_in_the_header_becomes_a_space_or_is_refused() {
        let mut m = b"Subject: a\rX-Injected: yes\r\nFrom: x\r\n\r\nbody\rcr\r\n".to_vec();
        bare_cr_in_header(&mut m, BareLf::Normalize).unwrap();
        assert_eq!(
            m,
            b"Subject: a X-Injected: yes\r\nFrom: x\r\n\r\nbody\rcr\r\n"
        );
        let mut m = b"Subject: a\rb\r\n\r\n".to_vec();
        assert_eq!(
            bare_cr_in_header(&mut m, BareLf::Reject),
            Err(DataError::BareCrInHeader)
        );
        let mut clean = b"Subject: ok\r\n\r\nbody\r\n".to_vec();
        assert!(bare_cr_in_header(&mut clean, BareLf::Reject).is_ok());
    }

    /// Feeds `input` in `chunk`-byte pieces; returns the decoded message
    /// and the bytes left for the next command.
    fn decode(
        input: &[u8],
        chunk: usize,
        max: u64,
        policy: BareLf,
    ) -> (Result<Vec<u8>, DataError>, Vec<u8>) {
        let mut dec = DataDecoder::new(max, policy);
        let mut rest = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            if dec.is_done() {
                rest.extend_from_slice(piece);
                continue;
            }
            let p = dec.feed(piece);
            assert!(p.consumed <= piece.len());
            assert_eq!(p.done, dec.is_done());
            if !p.done {
                assert_eq!(p.consumed, piece.len(), "must consume all until done");
            }
            rest.extend_from_slice(&piece[p.consumed..]);
        }
        (dec.finish(), rest)
    }

    /// Input, expected message, bytes left for the next command.
    type Case = (
        &'static [u8],
        Result<&'static [u8], DataError>,
        &'static [u8],
    );

    fn text(input: &[u8], policy: BareLf) -> (Result<Vec<u8>, DataError>, Vec<u8>) {
        decode(input, input.len(), u64::MAX, policy)
    }

    #[test]
    fn decodes_table() {
        let cases: &[Case] = &[
            (b".\r\n", Ok(b""), b""),
            (b".\r\nQUIT\r\n", Ok(b""), b"QUIT\r\n"),
            (b"a\r\n.\r\n", Ok(b"a\r\n"), b""),
            (b"a\r\nb\r\n.\r\nMAIL", Ok(b"a\r\nb\r\n"), b"MAIL"),
            // Dot-unstuffing.
            (b"..\r\n.\r\n", Ok(b".\r\n"), b""),
            (b"..x\r\n.\r\n", Ok(b".x\r\n"), b""),
            (b"a\r\n.b\r\n.\r\n", Ok(b"a\r\nb\r\n"), b""),
            (b"a\r\n...\r\n.\r\n", Ok(b"a\r\n..\r\n"), b""),
            (b"a.b\r\n.\r\n", Ok(b"a.b\r\n"), b""),
            // Bare CR is content and never a line end.
            (b"a\rb\r\n.\r\n", Ok(b"a\rb\r\n"), b""),
            (b"a\r.\r\r\n.\r\n", Ok(b"a\r.\r\r\n"), b""),
            (b"a\r\r\n.\r\n", Ok(b"a\r\r\n"), b""),
            // `.<CR>x`: stuffing dot removed, CR kept.
            (b".\rx\r\n.\r\n", Ok(b"\rx\r\n"), b""),
            (b".\r\r\n.\r\n", Ok(b"\r\r\n"), b""),
            // Smuggling near-misses are content (normalised).
            (b"a\n.\nb\r\n.\r\n", Ok(b"a\r\n\r\nb\r\n"), b""),
            (b"a\r\n.\nb\r\n.\r\n", Ok(b"a\r\n\r\nb\r\n"), b""),
            (b"a\n.\r\nb\r\n.\r\n", Ok(b"a\r\n\r\nb\r\n"), b""),
            (b"a\r.\rb\r\n.\r\n", Ok(b"a\r.\rb\r\n"), b""),
            (b"a\n.\n", Err(DataError::Incomplete), b""),
            (b"a\r\n.\n", Err(DataError::Incomplete), b""),
            (b"a\n.\r\n", Err(DataError::Incomplete), b""),
            (b"\n.\r\n", Err(DataError::Incomplete), b""),
            // Bare LF normalised.
            (b"a\nb\n\r\n.\r\n", Ok(b"a\r\nb\r\n\r\n"), b""),
        ];
        for (input, want, rest) in cases {
            let (got, left) = text(input, BareLf::Normalize);
            assert_eq!(
                got.as_deref(),
                want.as_deref(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(&left, rest, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn reject_policy() {
        let cases: &[Case] = &[
            (b"a\r\nb\r\n.\r\nQUIT\r\n", Ok(b"a\r\nb\r\n"), b"QUIT\r\n"),
            (
                b"a\nb\r\n.\r\nQUIT\r\n",
                Err(DataError::BareLf),
                b"QUIT\r\n",
            ),
            // Rejected, but still read up to the real end marker.
            (
                b"a\r\n.\nb\r\n.\r\nRSET\r\n",
                Err(DataError::BareLf),
                b"RSET\r\n",
            ),
            (b"a\rb\r\n.\r\n", Ok(b"a\rb\r\n"), b""),
        ];
        for (input, want, rest) in cases {
            let (got, left) = text(input, BareLf::Reject);
            assert_eq!(
                got.as_deref(),
                want.as_deref(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(&left, rest);
        }
    }

    #[test]
    fn size_cap() {
        let msg = b"0123456789\r\n.\r\nQUIT\r\n";
        // Decoded message is 12 bytes.
        let cases: &[(u64, Result<&[u8], DataError>)] = &[
            (12, Ok(b"0123456789\r\n")),
            (100, Ok(b"0123456789\r\n")),
            (11, Err(DataError::TooBig)),
            (0, Err(DataError::TooBig)),
        ];
        for &(max, want) in cases {
            for chunk in 1..=msg.len() {
                let (got, rest) = decode(msg, chunk, max, BareLf::Normalize);
                assert_eq!(got.as_deref(), want.as_deref(), "max {max} chunk {chunk}");
                assert_eq!(rest, b"QUIT\r\n", "max {max} chunk {chunk}");
            }
        }
        assert_eq!(decode(b".\r\n", 3, 0, BareLf::Normalize).0, Ok(vec![]));
        // Bare-LF rejection wins over "too big".
        let (got, _) = decode(b"aaaa\nbbbb\r\n.\r\n", 100, 2, BareLf::Reject);
        assert_eq!(got, Err(DataError::BareLf));
    }

    #[test]
    fn size_cap_bounds_memory() {
        let mut dec = DataDecoder::new(1000, BareLf::Normalize);
        let line = [b'x'; 998];
        for _ in 0..100 {
            dec.feed(&line);
            dec.feed(b"\r\n");
            assert!(dec.sink.out.capacity() <= 1000);
        }
        assert_eq!(dec.size(), 100 * 1000);
        assert_eq!(
            dec.feed(b".\r\n"),
            DataProgress {
                consumed: 3,
                done: true
            }
        );
        assert_eq!(dec.finish(), Err(DataError::TooBig));
    }

    #[test]
    fn feed_after_done_consumes_nothing() {
        let mut dec = DataDecoder::new(100, BareLf::Normalize);
        assert_eq!(
            dec.feed(b"x\r\n.\r\nNOOP"),
            DataProgress {
                consumed: 6,
                done: true
            }
        );
        assert_eq!(
            dec.feed(b"more"),
            DataProgress {
                consumed: 0,
                done: true
            }
        );
        assert_eq!(
            dec.feed(b""),
            DataProgress {
                consumed: 0,
                done: true
            }
        );
        assert_eq!(dec.finish(), Ok(b"x\r\n".to_vec()));
        let mut dec = DataDecoder::new(100, BareLf::Normalize);
        assert_eq!(
            dec.feed(b""),
            DataProgress {
                consumed: 0,
                done: false
            }
        );
    }

    #[test]
    fn errors_map_to_replies() {
        let cases = [
            (
                DataError::TooBig,
                "552 5.3.4 Error: message file too big\r\n",
            ),
            (DataError::BareLf, "550 5.5.2 Error: bare <LF> received\r\n"),
            (
                DataError::Incomplete,
                "451 4.3.0 Error: incomplete message data\r\n",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(String::from_utf8(e.reply().to_bytes()).unwrap(), want);
        }
    }

    /// The smuggling script: every near-miss of the end marker, dots, bare
    /// LFs and CRs, the real end, then pipelined commands. Every split of
    /// the input must decode identically.
    const SCRIPT: &[u8] = b"From: a@b\r\n\
        Subject: smuggle\n\
        \r\n\
        line one\r\n\
        ..stuffed\r\n\
        .\n\
        MAIL FROM:<evil@x>\r\n\
        \n.\n\
        \r.\r\n\
        \n.\r\n\
        \r\n.\n\
        a\rb\r\r\n\
        .\rx\r\n\
        last\r\n\
        .\r\n\
        MAIL FROM:<next@x>\r\nRCPT TO:<y@z>\r\nDATA\r\n";

    #[test]
    fn chunk_size_sweep_normalize() {
        let expected_body: &[u8] = b"From: a@b\r\n\
            Subject: smuggle\r\n\
            \r\n\
            line one\r\n\
            .stuffed\r\n\
            \r\n\
            MAIL FROM:<evil@x>\r\n\
            \r\n\r\n\
            \r.\r\n\
            \r\n\r\n\
            \r\n\r\n\
            a\rb\r\r\n\
            \rx\r\n\
            last\r\n";
        let tail: &[u8] = b"MAIL FROM:<next@x>\r\nRCPT TO:<y@z>\r\nDATA\r\n";
        let whole = decode(SCRIPT, SCRIPT.len(), u64::MAX, BareLf::Normalize);
        assert_eq!(whole.0.as_deref(), Ok(expected_body));
        assert_eq!(whole.1, tail);
        for chunk in 1..=512 {
            assert_eq!(
                decode(SCRIPT, chunk, u64::MAX, BareLf::Normalize),
                whole,
                "chunk {chunk}"
            );
            assert_eq!(
                decode(SCRIPT, chunk, u64::MAX, BareLf::Reject),
                (Err(DataError::BareLf), tail.to_vec()),
                "chunk {chunk}"
            );
            assert_eq!(
                decode(SCRIPT, chunk, 50, BareLf::Normalize),
                (Err(DataError::TooBig), tail.to_vec()),
                "chunk {chunk}"
            );
        }
    }

    /// Feeds a BDAT exchange: each `(size, bytes)` chunk split into
    /// `piece`-byte reads; trailing bytes after each chunk are collected.
    fn bdat(
        mut dec: BdatDecoder,
        chunks: &[&[u8]],
        piece: usize,
    ) -> (Result<Vec<u8>, DataError>, Vec<u8>) {
        let mut leftover = Vec::new();
        for chunk in chunks {
            dec.begin_chunk(chunk.len() as u64);
            let mut wire = chunk.to_vec();
            wire.extend_from_slice(b"NEXT");
            let mut done = chunk.is_empty();
            if done {
                assert!(dec.feed(&[]).done);
            }
            for read in wire.chunks(piece.max(1)) {
                if done {
                    leftover.extend_from_slice(read);
                    continue;
                }
                let p = dec.feed(read);
                done = p.done;
                leftover.extend_from_slice(&read[p.consumed..]);
            }
            assert!(done);
            assert_eq!(dec.remaining(), 0);
        }
        (dec.finish(), leftover)
    }

    #[test]
    fn bdat_table() {
        let n = || BdatDecoder::new(u64::MAX, BareLf::Normalize);
        let r = || BdatDecoder::new(u64::MAX, BareLf::Reject);
        type Case = (
            BdatDecoder,
            &'static [&'static [u8]],
            Result<&'static [u8], DataError>,
        );
        let cases: Vec<Case> = vec![
            (n(), &[b""], Ok(b"")),
            (n(), &[b"a\r\n.\r\n"], Ok(b"a\r\n.\r\n")),
            (n(), &[b"a\r", b"\nb"], Ok(b"a\r\nb")),
            (n(), &[b"a\r", b"b\r"], Ok(b"a\rb\r")),
            (n(), &[b"a\nb\n"], Ok(b"a\r\nb\r\n")),
            (n(), &[b"a\r\r\n"], Ok(b"a\r\r\n")),
            (n(), &[b"..x\r\n", b"", b"y"], Ok(b"..x\r\ny")),
            (r(), &[b"a\r", b"\nb"], Ok(b"a\r\nb")),
            (r(), &[b"a\r\n", b"\n"], Err(DataError::BareLf)),
            (
                BdatDecoder::binary(u64::MAX),
                &[b"a\nb\r", b"\n\r"],
                Ok(b"a\nb\r\n\r"),
            ),
            (
                BdatDecoder::new(3, BareLf::Normalize),
                &[b"ab", b"\n"],
                Err(DataError::TooBig),
            ),
            (
                BdatDecoder::new(4, BareLf::Normalize),
                &[b"ab", b"\n"],
                Ok(b"ab\r\n"),
            ),
            (
                BdatDecoder::binary(3),
                &[b"ab", b"cd"],
                Err(DataError::TooBig),
            ),
        ];
        for (i, (dec, chunks, want)) in cases.into_iter().enumerate() {
            let (got, leftover) = bdat(dec, chunks, 4096);
            assert_eq!(got.as_deref(), want.as_deref(), "case {i}");
            assert_eq!(leftover, b"NEXT".repeat(chunks.len()), "case {i}");
        }
    }

    #[test]
    fn bdat_incomplete() {
        let mut dec = BdatDecoder::new(100, BareLf::Normalize);
        dec.begin_chunk(10);
        assert_eq!(
            dec.feed(b"abc"),
            DataProgress {
                consumed: 3,
                done: false
            }
        );
        assert_eq!(dec.remaining(), 7);
        assert_eq!(dec.finish(), Err(DataError::Incomplete));
    }

    #[test]
    fn bdat_chunk_size_sweep() {
        let chunks: &[&[u8]] = &[
            b"From: a@b\r\nSubject: x\n\r",
            b"\n.\r\n..\r\nbody\r",
            b"",
            b"\rmore\n",
            SCRIPT,
        ];
        let whole = bdat(
            BdatDecoder::new(u64::MAX, BareLf::Normalize),
            chunks,
            100_000,
        );
        let body = whole.0.clone().unwrap();
        assert!(body.starts_with(b"From: a@b\r\nSubject: x\r\n\r\n.\r\n..\r\nbody\r\rmore\r\n"));
        assert!(!body.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
        for piece in 1..=512 {
            assert_eq!(
                bdat(BdatDecoder::new(u64::MAX, BareLf::Normalize), chunks, piece),
                whole,
                "piece {piece}"
            );
            assert_eq!(
                bdat(BdatDecoder::new(u64::MAX, BareLf::Reject), chunks, piece).0,
                Err(DataError::BareLf),
                "piece {piece}"
            );
        }
    }
}
