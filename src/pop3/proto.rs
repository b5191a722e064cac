//! POP3 wire format, sans I/O: the command parser (RFC 1939 §3, RFC 2449,
//! RFC 5034, RFC 2595) and the builders for single-line and multi-line
//! responses, including byte-stuffing (RFC 1939 §3) and the TOP cut.
//!
//! Lines are split by [`crate::smtp::proto::line::LineReader`] (the same
//! bounded reader SMTP uses); [`parse_command`] turns one line, terminator
//! removed, into a [`Command`]. Nothing here panics on any input: there is
//! no indexing or unwrapping of client bytes.

use std::borrow::Cow;

/// One client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// RFC 1939 §7: the login (the rest of the line).
    User(String),
    /// RFC 1939 §7: the password, everything after `PASS ` verbatim (a
    /// password may contain spaces, as §7 allows).
    Pass(String),
    /// RFC 5034: `AUTH [mechanism [initial-response]]`. Without a
    /// mechanism, the mechanisms are listed (the pre-RFC 5034 form some
    /// clients still probe with).
    Auth {
        mechanism: Option<String>,
        initial: Option<String>,
    },
    /// RFC 2595 §4.
    Stls,
    /// RFC 2449 §5.
    Capa,
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
    /// RFC 1939 §7: message number and number of body lines.
    Top(u32, u32),
    Uidl(Option<u32>),
    /// RFC 1939 §7; refused (we keep only Argon2id hashes, so the shared
    /// secret that APOP's MD5 digest needs does not exist).
    Apop,
}

impl Command {
    /// The keyword, for counters and logs.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Auth { .. } => "AUTH",
            Command::Stls => "STLS",
            Command::Capa => "CAPA",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Retr(_) => "RETR",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Quit => "QUIT",
            Command::Top(..) => "TOP",
            Command::Uidl(_) => "UIDL",
            Command::Apop => "APOP",
        }
    }
}

/// Why a line is not a command we can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Unknown command")]
    Unknown,
    #[error("Empty command")]
    Empty,
    #[error("Invalid message number")]
    BadNumber,
    #[error("Invalid number of lines")]
    BadLines,
    #[error("Too many arguments")]
    TooManyArguments,
    #[error("Missing argument")]
    MissingArgument,
    #[error("Command is not valid UTF-8")]
    NotUtf8,
    #[error("Invalid characters in command")]
    BadCharacters,
}

impl ParseError {
    /// The `-ERR` reply for this error (the one place it is mapped).
    pub fn reply(&self) -> Reply {
        Reply::err(self.to_string())
    }
}

/// Most digits accepted in a number; more cannot be a valid u32 anyway,
/// and the bound keeps parsing cheap whatever the line length limit is.
const MAX_DIGITS: usize = 10;

/// Parses one command line (terminator removed).
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    // Keywords and arguments are printable ASCII (RFC 1939 §3), but a
    // password or a UTF-8 login (RFC 6856) may carry more, so only control
    // characters are refused outright; a CR inside a line is one of them.
    if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(ParseError::BadCharacters);
    }
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => (
            line.get(..sp).unwrap_or_default(),
            line.get(sp + 1..).unwrap_or_default(),
        ),
        None => (line, &[][..]),
    };
    if keyword.is_empty() {
        return Err(if line.iter().all(|&b| b == b' ') {
            ParseError::Empty
        } else {
            ParseError::Unknown
        });
    }
    if keyword.len() > 4 {
        return Err(ParseError::Unknown);
    }
    let mut upper = [0u8; 4];
    for (slot, b) in upper.iter_mut().zip(keyword) {
        *slot = b.to_ascii_uppercase();
    }
    let keyword = upper.get(..keyword.len()).unwrap_or_default();
    match keyword {
        b"USER" => text_argument(rest).map(Command::User),
        b"PASS" => {
            // Everything after the single space, spaces included.
            let password = std::str::from_utf8(rest).map_err(|_| ParseError::NotUtf8)?;
            if password.is_empty() {
                return Err(ParseError::MissingArgument);
            }
            Ok(Command::Pass(password.to_string()))
        }
        b"AUTH" => {
            let args = arguments::<2>(rest)?;
            let [mechanism, initial] = args.map(|a| a.map(ascii_string).transpose());
            Ok(Command::Auth {
                mechanism: mechanism?.map(|m| m.to_ascii_uppercase()),
                initial: initial?,
            })
        }
        b"APOP" => Ok(Command::Apop),
        b"STLS" => no_arguments(rest).map(|()| Command::Stls),
        b"CAPA" => no_arguments(rest).map(|()| Command::Capa),
        b"STAT" => no_arguments(rest).map(|()| Command::Stat),
        b"NOOP" => no_arguments(rest).map(|()| Command::Noop),
        b"RSET" => no_arguments(rest).map(|()| Command::Rset),
        b"QUIT" => no_arguments(rest).map(|()| Command::Quit),
        b"LIST" => optional_number(rest).map(Command::List),
        b"UIDL" => optional_number(rest).map(Command::Uidl),
        b"RETR" => required_number(rest).map(Command::Retr),
        b"DELE" => required_number(rest).map(Command::Dele),
        b"TOP" => {
            let [msg, lines] = arguments::<2>(rest)?;
            let msg = message_number(msg.ok_or(ParseError::MissingArgument)?)?;
            let lines = lines.ok_or(ParseError::MissingArgument)?;
            let lines = number(lines).ok_or(ParseError::BadLines)?;
            Ok(Command::Top(msg, lines))
        }
        _ => Err(ParseError::Unknown),
    }
}

/// Splits the arguments on spaces (runs of spaces and trailing spaces are
/// tolerated, as many servers do); at most `N`.
fn arguments<const N: usize>(rest: &[u8]) -> Result<[Option<&[u8]>; N], ParseError> {
    let mut out = [None; N];
    let mut words = rest.split(|&b| b == b' ').filter(|w| !w.is_empty());
    for slot in out.iter_mut() {
        *slot = words.next();
    }
    if words.next().is_some() {
        return Err(ParseError::TooManyArguments);
    }
    Ok(out)
}

fn no_arguments(rest: &[u8]) -> Result<(), ParseError> {
    arguments::<0>(rest).map(|_| ())
}

fn optional_number(rest: &[u8]) -> Result<Option<u32>, ParseError> {
    let [arg] = arguments::<1>(rest)?;
    arg.map(message_number).transpose()
}

fn required_number(rest: &[u8]) -> Result<u32, ParseError> {
    let [arg] = arguments::<1>(rest)?;
    message_number(arg.ok_or(ParseError::MissingArgument)?)
}

/// A message number: decimal digits only, 1 or more (RFC 1939 §5).
fn message_number(arg: &[u8]) -> Result<u32, ParseError> {
    match number(arg) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(ParseError::BadNumber),
    }
}

/// Decimal digits only (no sign, no spaces), fitting a u32.
fn number(arg: &[u8]) -> Option<u32> {
    if arg.is_empty() || arg.len() > MAX_DIGITS || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(arg).ok()?.parse().ok()
}

fn ascii_string(arg: &[u8]) -> Result<String, ParseError> {
    if !arg.is_ascii() {
        return Err(ParseError::BadCharacters);
    }
    std::str::from_utf8(arg)
        .map(str::to_string)
        .map_err(|_| ParseError::NotUtf8)
}

/// The rest of the line as one argument, surrounding spaces trimmed.
fn text_argument(rest: &[u8]) -> Result<String, ParseError> {
    let text = std::str::from_utf8(rest).map_err(|_| ParseError::NotUtf8)?;
    let text = text.trim_matches(' ');
    if text.is_empty() {
        return Err(ParseError::MissingArgument);
    }
    Ok(text.to_string())
}

/// The client's answer to a SASL challenge (RFC 5034 §4): base64, or `*`
/// to cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslResponse {
    Data(Vec<u8>),
    Cancel,
}

/// Parses a SASL response line; `None` if it is not valid base64. An
/// initial response of `=` stands for an empty one (RFC 5034 §4).
pub fn parse_sasl_response(line: &[u8]) -> Option<SaslResponse> {
    let text = std::str::from_utf8(line).ok()?.trim_matches(' ');
    if text == "*" {
        return Some(SaslResponse::Cancel);
    }
    crate::auth::base64_decode(text).map(SaslResponse::Data)
}

/// RFC 2449 §8 / RFC 3206 extended response codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// RFC 3206 §4: the credentials were refused.
    Auth,
    /// RFC 2449 §8.1.1: the maildrop is locked by another session.
    InUse,
    /// RFC 3206 §5: a temporary system problem; try again later.
    SysTemp,
    /// RFC 3206 §5: a permanent system problem.
    SysPerm,
}

impl Code {
    fn as_str(&self) -> &'static str {
        match self {
            Code::Auth => "AUTH",
            Code::InUse => "IN-USE",
            Code::SysTemp => "SYS/TEMP",
            Code::SysPerm => "SYS/PERM",
        }
    }
}

/// A single-line status response: `+OK text` or `-ERR [CODE] text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    ok: bool,
    code: Option<Code>,
    text: Cow<'static, str>,
}

impl Reply {
    pub fn ok(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            ok: true,
            code: None,
            text: text.into(),
        }
    }

    pub fn err(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            ok: false,
            code: None,
            text: text.into(),
        }
    }

    pub fn err_code(code: Code, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            ok: false,
            code: Some(code),
            text: text.into(),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.ok
    }

    /// Appends the response line. CR and LF in the text (never expected)
    /// are replaced so that a reply is always exactly one line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.ok { b"+OK" } else { b"-ERR" });
        if let Some(code) = self.code {
            out.extend_from_slice(b" [");
            out.extend_from_slice(code.as_str().as_bytes());
            out.push(b']');
        }
        if !self.text.is_empty() {
            out.push(b' ');
            out.extend(
                self.text
                    .bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        }
        out.extend_from_slice(b"\r\n");
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 16);
        self.write_to(&mut out);
        out
    }
}

/// Appends one line of a multi-line response, byte-stuffed (RFC 1939 §3:
/// a line starting with `.` gets another `.`).
pub fn write_line(out: &mut Vec<u8>, line: &[u8]) {
    if line.first() == Some(&b'.') {
        out.push(b'.');
    }
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
}

/// Appends the terminator of a multi-line response.
pub fn write_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b".\r\n");
}

/// Appends a message as the body of a multi-line response: byte-stuffed,
/// completed with a CRLF if it does not end in a line break, and
/// terminated by `.CRLF`. Messages are stored with CRLF line ends, so the
/// lines are copied as they are.
pub fn write_stuffed(out: &mut Vec<u8>, message: &[u8]) {
    // One extra octet per stuffed line; a small margin avoids a regrowth
    // for the usual handful.
    out.reserve(message.len() + message.len() / 512 + 8);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    // The terminator must follow a CRLF (RFC 1939 §3): a message ending
    // in a bare LF, or in no line break at all, gets one.
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    write_end(out);
}

/// The part of `message` that `TOP msg lines` sends (RFC 1939 §7): the
/// header, the empty line separating it from the body, and the first
/// `lines` lines of the body. A message without a body is sent whole.
pub fn top(message: &[u8], lines: u32) -> &[u8] {
    let mut offset = 0;
    let mut in_header = true;
    let mut body_lines = 0u32;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if in_header {
            offset += line.len();
            if line == b"\r\n" || line == b"\n" {
                in_header = false;
            }
            continue;
        }
        if body_lines >= lines {
            break;
        }
        offset += line.len();
        body_lines += 1;
    }
    message.get(..offset).unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::proto::line::LineReader;

    /// Found while writing the pop3_command fuzz target: a message ending
    /// in a bare LF was sent without CRLF before the terminating dot.
    #[test]
    fn terminator_follows_a_crlf_even_after_a_bare_lf() {
        let mut out = Vec::new();
        write_stuffed(&mut out, b"Subject: x\r\n\r\nhello\n");
        assert!(
            out.ends_with(b"\r\n.\r\n"),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn commands() {
        use Command::*;
        let cases: Vec<(&str, Result<Command, ParseError>)> = vec![
            ("USER fauzan", Ok(User("fauzan".into()))),
            (
                "user fauzan@localhost ",
                Ok(User("fauzan@localhost".into())),
            ),
            ("USER", Err(ParseError::MissingArgument)),
            ("USER ", Err(ParseError::MissingArgument)),
            ("PASS rahasia", Ok(Pass("rahasia".into()))),
            ("PASS  two words ", Ok(Pass(" two words ".into()))),
            ("PASS", Err(ParseError::MissingArgument)),
            ("pass ", Err(ParseError::MissingArgument)),
            (
                "AUTH",
                Ok(Auth {
                    mechanism: None,
                    initial: None,
                }),
            ),
            (
                "auth plain",
                Ok(Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: None,
                }),
            ),
            (
                "AUTH PLAIN AGZhdXphbgByYWhhc2lh",
                Ok(Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: Some("AGZhdXphbgByYWhhc2lh".into()),
                }),
            ),
            ("AUTH PLAIN a b", Err(ParseError::TooManyArguments)),
            ("AUTH PL\u{e9}IN", Err(ParseError::BadCharacters)),
            ("APOP mrose c4c9334bac560ecc979e58001b3e22fb", Ok(Apop)),
            ("STLS", Ok(Stls)),
            ("STLS now", Err(ParseError::TooManyArguments)),
            ("CAPA", Ok(Capa)),
            ("capa", Ok(Capa)),
            ("Stat", Ok(Stat)),
            ("STAT ", Ok(Stat)),
            ("NOOP", Ok(Noop)),
            ("RSET", Ok(Rset)),
            ("QUIT", Ok(Quit)),
            ("LIST", Ok(List(None))),
            ("LIST 1", Ok(List(Some(1)))),
            ("LIST  007", Ok(List(Some(7)))),
            ("LIST 0", Err(ParseError::BadNumber)),
            ("LIST -1", Err(ParseError::BadNumber)),
            ("LIST +1", Err(ParseError::BadNumber)),
            ("LIST 1 2", Err(ParseError::TooManyArguments)),
            ("LIST 4294967295", Ok(List(Some(u32::MAX)))),
            ("LIST 4294967296", Err(ParseError::BadNumber)),
            ("LIST 00000000001", Err(ParseError::BadNumber)),
            ("UIDL", Ok(Uidl(None))),
            ("UIDL 3", Ok(Uidl(Some(3)))),
            ("UIDL x", Err(ParseError::BadNumber)),
            ("RETR 1", Ok(Retr(1))),
            ("RETR", Err(ParseError::MissingArgument)),
            ("RETR one", Err(ParseError::BadNumber)),
            ("DELE 12", Ok(Dele(12))),
            ("DELE 0", Err(ParseError::BadNumber)),
            ("TOP 1 0", Ok(Top(1, 0))),
            ("top 2 10", Ok(Top(2, 10))),
            ("TOP 1", Err(ParseError::MissingArgument)),
            ("TOP 1 -1", Err(ParseError::BadLines)),
            ("TOP 0 1", Err(ParseError::BadNumber)),
            ("TOP 1 2 3", Err(ParseError::TooManyArguments)),
            ("", Err(ParseError::Empty)),
            ("   ", Err(ParseError::Empty)),
            (" STAT", Err(ParseError::Unknown)),
            ("HELO x", Err(ParseError::Unknown)),
            ("STATISTICS", Err(ParseError::Unknown)),
            ("ST", Err(ParseError::Unknown)),
            ("STAT\r", Err(ParseError::BadCharacters)),
            ("RETR 1\0", Err(ParseError::BadCharacters)),
        ];
        for (line, want) in cases {
            assert_eq!(parse_command(line.as_bytes()), want, "{line:?}");
        }
        assert_eq!(
            parse_command(b"USER \xff\xfe"),
            Err(ParseError::NotUtf8),
            "invalid UTF-8"
        );
        assert_eq!(
            parse_command("USER fauzan@b\u{fc}ro.example".as_bytes()),
            Ok(User("fauzan@b\u{fc}ro.example".into()))
        );
    }

    #[test]
    fn sasl_responses() {
        assert_eq!(parse_sasl_response(b"*"), Some(SaslResponse::Cancel));
        assert_eq!(
            parse_sasl_response(b"Zm9v"),
            Some(SaslResponse::Data(b"foo".to_vec()))
        );
        assert_eq!(
            parse_sasl_response(b"="),
            Some(SaslResponse::Data(Vec::new()))
        );
        assert_eq!(parse_sasl_response(b"Zm9v!"), None);
        assert_eq!(parse_sasl_response(b"\xff"), None);
    }

    #[test]
    fn replies() {
        assert_eq!(Reply::ok("2 320").to_bytes(), b"+OK 2 320\r\n");
        assert_eq!(Reply::ok("").to_bytes(), b"+OK\r\n");
        assert_eq!(
            Reply::err("no such message").to_bytes(),
            b"-ERR no such message\r\n"
        );
        assert_eq!(
            Reply::err_code(Code::InUse, "locked").to_bytes(),
            b"-ERR [IN-USE] locked\r\n"
        );
        assert_eq!(
            Reply::err_code(Code::SysTemp, "x\r\ny").to_bytes(),
            b"-ERR [SYS/TEMP] x  y\r\n"
        );
        assert_eq!(
            ParseError::Unknown.reply().to_bytes(),
            b"-ERR Unknown command\r\n"
        );
    }

    #[test]
    fn byte_stuffing() {
        let cases: Vec<(&[u8], &[u8])> = vec![
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b"a\r\n.b\r\n..c\r\n", b"a\r\n..b\r\n...c\r\n.\r\n"),
            (b"no final newline", b"no final newline\r\n.\r\n"),
            (b"x\r\n.", b"x\r\n..\r\n.\r\n"),
            (b"a.b\r\n", b"a.b\r\n.\r\n"),
        ];
        for (message, want) in cases {
            let mut out = Vec::new();
            write_stuffed(&mut out, message);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(want),
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
        let mut out = Vec::new();
        write_line(&mut out, b"1 abc");
        write_line(&mut out, b".hidden");
        write_end(&mut out);
        assert_eq!(out, b"1 abc\r\n..hidden\r\n.\r\n");
    }

    #[test]
    fn top_cuts() {
        let m: &[u8] = b"From: a\r\nSubject: s\r\n\r\nline1\r\nline2\r\nline3\r\n";
        let cases: Vec<(u32, &[u8])> = vec![
            (0, b"From: a\r\nSubject: s\r\n\r\n"),
            (1, b"From: a\r\nSubject: s\r\n\r\nline1\r\n"),
            (2, b"From: a\r\nSubject: s\r\n\r\nline1\r\nline2\r\n"),
            (3, m),
            (100, m),
            (u32::MAX, m),
        ];
        for (n, want) in cases {
            assert_eq!(top(m, n), want, "TOP {n}");
        }
        // Header only, no separating line: the whole message.
        assert_eq!(top(b"From: a\r\n", 0), b"From: a\r\n");
        // Body lines without a final newline.
        assert_eq!(top(b"H: v\r\n\r\nlast", 0), b"H: v\r\n\r\n");
        assert_eq!(top(b"H: v\r\n\r\nlast", 1), b"H: v\r\n\r\nlast");
        // Empty body lines are lines.
        assert_eq!(
            top(b"H: v\r\n\r\n\r\n\r\nx\r\n", 2),
            b"H: v\r\n\r\n\r\n\r\n"
        );
        assert_eq!(top(b"", 5), b"");
    }

    /// What a command stream turns into: one entry per line.
    fn replay(script: &[u8], chunk: usize) -> (Vec<String>, Vec<u8>) {
        let mut reader = LineReader::new(64);
        let mut out = Vec::new();
        for piece in script.chunks(chunk) {
            reader.push(piece);
            while let Some(line) = reader.next_line() {
                out.push(match line {
                    Ok(line) => format!("{:?}", parse_command(&line.bytes)),
                    Err(e) => format!("line error {e}"),
                });
            }
        }
        (out, reader.buffered().to_vec())
    }

    #[test]
    fn chunk_size_sweep() {
        let mut script = b"CAPA\r\nUSER fauzan\r\nPASS se cret \r\nSTAT\nLIST\r\nLIST 2\r\n\
            UIDL\r\nTOP 1 0\r\nRETR 1\r\nDELE 1\r\nRSET\r\nNOOP\r\nbogus\r\n\r\n\
            AUTH PLAIN AGZhdXphbgByYWhhc2lh\r\n*\r\nRETR 1\r\r\n"
            .to_vec();
        script.extend_from_slice(&[b'X'; 100]);
        script.extend_from_slice(b"\r\nQUIT\r\nSTAT");
        let (whole, rest) = replay(&script, script.len());
        assert_eq!(whole.len(), 19, "{whole:#?}");
        assert_eq!(
            whole[2],
            format!(
                "{:?}",
                Ok::<_, ParseError>(Command::Pass("se cret ".into()))
            )
        );
        assert_eq!(whole[17], "line error line too long");
        assert_eq!(rest, b"STAT");
        for chunk in 1..=512 {
            assert_eq!(
                replay(&script, chunk),
                (whole.clone(), rest.clone()),
                "chunk {chunk}"
            );
        }
    }

    /// A cheap stand-in for a fuzz target: mutated command lines must never
    /// panic the parser, the SASL decoder, the TOP cut or the stuffer.
    #[test]
    fn random_lines_never_panic() {
        let seeds: [&[u8]; 6] = [
            b"TOP 1 10",
            b"LIST 4294967295",
            b"AUTH PLAIN =",
            b"PASS x y",
            b"UIDL 1",
            b"USER a@b",
        ];
        let mut rng = fastrand::Rng::with_seed(0x9093);
        for _ in 0..20_000 {
            let mut line = rng.choice(seeds).unwrap_or(&b""[..]).to_vec();
            for _ in 0..rng.usize(0..4) {
                match rng.u8(0..3) {
                    0 if !line.is_empty() => {
                        let i = rng.usize(0..line.len());
                        line[i] = rng.u8(..);
                    }
                    1 => line.push(rng.u8(..)),
                    _ if !line.is_empty() => {
                        line.truncate(rng.usize(0..line.len()));
                    }
                    _ => {}
                }
            }
            let _ = parse_command(&line);
            let _ = parse_sasl_response(&line);
            let _ = top(&line, rng.u32(0..4));
            let mut out = Vec::new();
            write_stuffed(&mut out, &line);
            assert!(out.ends_with(b".\r\n"));
        }
    }
}
