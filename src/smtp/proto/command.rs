//! SMTP command parser (RFC 5321 §4.1.1, §4.1.2) with the ESMTP parameters
//! Merpati understands:
//!
//! * `SIZE` (RFC 1870), `BODY` (RFC 6152 8BITMIME, RFC 3030 BINARYMIME),
//!   `SMTPUTF8` (RFC 6531), `RET`/`ENVID`/`NOTIFY`/`ORCPT` (RFC 3461 DSN),
//!   `AUTH=` (RFC 4954 §5);
//! * `BDAT` (RFC 3030), `STARTTLS` (RFC 3207), `AUTH` (RFC 4954),
//!   `ETRN` (RFC 1985).
//!
//! The parser is deliberately forgiving about what humans type in telnet,
//! the way Postfix is with `strict_rfc821_envelopes = no`: verbs and
//! keywords are case-insensitive, angle brackets around paths are optional,
//! whitespace may follow the colon, and trailing whitespace is ignored.
//! It is strict about anything that could be mis-read downstream: control
//! characters, invalid UTF-8, malformed xtext and duplicate parameters are
//! errors. Nothing here can panic on network input.
//!
//! Whether a command is allowed *now* (sequence, EHLO-only parameters,
//! SMTPUTF8 addresses) is the session's business, not the parser's.

use crate::address::{Address, AddressError};

use super::reply::Reply;

/// One parsed SMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELO <domain>`; the argument as given.
    Helo(String),
    /// `EHLO <domain>`; the argument as given.
    Ehlo(String),
    Mail(MailFrom),
    Rcpt(RcptTo),
    Data,
    /// `BDAT <size> [LAST]` (RFC 3030 §2).
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    /// `NOOP [string]`; the argument is ignored (RFC 5321 §4.1.1.9).
    Noop,
    Quit,
    /// `VRFY <string>`; the argument as given (brackets kept).
    Vrfy(String),
    /// `EXPN <string>`; the argument as given.
    Expn(String),
    /// `HELP [string]`; the argument is ignored.
    Help,
    /// `ETRN <node>`; the argument as given (`example.org`, `@example.org`,
    /// `#queue`).
    Etrn(String),
    StartTls,
    /// `AUTH <mechanism> [initial-response]` (RFC 4954 §4). The mechanism
    /// is upper-cased; the initial response is passed on untouched,
    /// including the `=` that stands for an empty response.
    Auth {
        mechanism: String,
        initial_response: Option<String>,
    },
}

impl Command {
    /// The verb, upper-case, for logs and sequence errors.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Helo(_) => "HELO",
            Command::Ehlo(_) => "EHLO",
            Command::Mail(_) => "MAIL",
            Command::Rcpt(_) => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help => "HELP",
            Command::Etrn(_) => "ETRN",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }
}

/// `MAIL FROM:<reverse-path> [parameters]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailFrom {
    /// `None` is the null sender `<>` (bounces, RFC 5321 §4.5.5).
    pub sender: Option<Address>,
    /// `SIZE=`; absurdly large values saturate at `u64::MAX` so the session
    /// answers "too big" rather than "syntax error".
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// `ENVID=`, xtext-decoded.
    pub envid: Option<String>,
    /// `AUTH=`, xtext-decoded (`<>` when the client does not know).
    pub auth: Option<String>,
}

/// `RCPT TO:<forward-path> [parameters]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTo {
    pub recipient: Address,
    /// `NOTIFY=`: either `[Never]` or a non-empty, duplicate-free subset of
    /// `Success`, `Failure`, `Delay` in the order given.
    pub notify: Option<Vec<Notify>>,
    /// `ORCPT=` as `addr-type;address` with the address xtext-decoded,
    /// e.g. `rfc822;a@b`.
    pub orcpt: Option<String>,
}

/// `BODY=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// `RET=` values (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// `NOTIFY=` values (RFC 3461 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    Never,
    Success,
    Failure,
    Delay,
}

/// NOTIFY as the queue file stores it: `SUCCESS,FAILURE`, `NEVER`.
pub fn notify_words(list: &[Notify]) -> String {
    list.iter()
        .map(|n| match n {
            Notify::Never => "NEVER",
            Notify::Success => "SUCCESS",
            Notify::Failure => "FAILURE",
            Notify::Delay => "DELAY",
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Why a command line was refused; [`CommandError::reply`] maps each case
/// to its SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("command not recognized")]
    Unrecognized,
    /// The text is the human-readable part of the 501 reply.
    #[error("{0}")]
    Syntax(&'static str),
    #[error("bad sender address syntax: {0}")]
    BadSender(AddressError),
    #[error("bad recipient address syntax: {0}")]
    BadRecipient(AddressError),
    /// An ESMTP parameter keyword we do not implement, as the client wrote it.
    #[error("unsupported option: {0}")]
    UnknownParameter(String),
    #[error("command arguments are not valid UTF-8")]
    NotUtf8,
}

impl CommandError {
    /// The SMTP reply for this error: the one place the mapping lives.
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::Unrecognized => Reply::new(500, "5.5.2", "Error: command not recognized"),
            CommandError::Syntax(text) => Reply::new(501, "5.5.4", *text),
            CommandError::BadSender(e) => {
                Reply::new(501, "5.1.7", format!("Bad sender address syntax: {e}"))
            }
            CommandError::BadRecipient(e) => {
                Reply::new(501, "5.1.3", format!("Bad recipient address syntax: {e}"))
            }
            // RFC 5321 §4.2.3: 555 is "MAIL FROM/RCPT TO parameters not
            // recognized or not implemented".
            CommandError::UnknownParameter(p) => {
                Reply::new(555, "5.5.4", format!("Unsupported option: {p}"))
            }
            CommandError::NotUtf8 => Reply::new(501, "5.5.4", "Syntax error: invalid UTF-8"),
        }
    }
}

/// Parses one command line given WITHOUT its trailing CRLF (or LF).
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let (verb, rest) = split_verb(line);
    let verb = Verb::parse(verb).ok_or(CommandError::Unrecognized)?;
    let args = std::str::from_utf8(rest).map_err(|_| CommandError::NotUtf8)?;
    // A NUL, bare CR or escape in an argument would end up in logs,
    // Received headers or queue files; refuse them all up front.
    if args.chars().any(|c| c.is_control() && c != '\t') {
        return Err(CommandError::Syntax(
            "Syntax error: control character in command",
        ));
    }
    verb.parse_args(args.trim_matches(is_wsp))
}

/// The verbs we know; parsing the verb first means garbage after an unknown
/// verb is reported as "unrecognized" rather than as bad UTF-8.
#[derive(Debug, Clone, Copy)]
enum Verb {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    Etrn,
    StartTls,
    Auth,
}

impl Verb {
    fn parse(word: &[u8]) -> Option<Verb> {
        const VERBS: &[(&[u8], Verb)] = &[
            (b"HELO", Verb::Helo),
            (b"EHLO", Verb::Ehlo),
            (b"MAIL", Verb::Mail),
            (b"RCPT", Verb::Rcpt),
            (b"DATA", Verb::Data),
            (b"BDAT", Verb::Bdat),
            (b"RSET", Verb::Rset),
            (b"NOOP", Verb::Noop),
            (b"QUIT", Verb::Quit),
            (b"VRFY", Verb::Vrfy),
            (b"EXPN", Verb::Expn),
            (b"HELP", Verb::Help),
            (b"ETRN", Verb::Etrn),
            (b"STARTTLS", Verb::StartTls),
            (b"AUTH", Verb::Auth),
        ];
        VERBS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|&(_, verb)| verb)
    }

    fn parse_args(self, args: &str) -> Result<Command, CommandError> {
        match self {
            Verb::Helo => required(args, "Syntax: HELO hostname").map(Command::Helo),
            Verb::Ehlo => required(args, "Syntax: EHLO hostname").map(Command::Ehlo),
            Verb::Mail => parse_mail(args).map(Command::Mail),
            Verb::Rcpt => parse_rcpt(args).map(Command::Rcpt),
            Verb::Data => no_args(args, "Syntax: DATA", Command::Data),
            Verb::Bdat => parse_bdat(args),
            Verb::Rset => no_args(args, "Syntax: RSET", Command::Rset),
            Verb::Noop => Ok(Command::Noop),
            Verb::Quit => no_args(args, "Syntax: QUIT", Command::Quit),
            Verb::Vrfy => required(args, "Syntax: VRFY address").map(Command::Vrfy),
            Verb::Expn => required(args, "Syntax: EXPN address").map(Command::Expn),
            Verb::Help => Ok(Command::Help),
            Verb::Etrn => required(args, "Syntax: ETRN domain").map(Command::Etrn),
            Verb::StartTls => no_args(args, "Syntax: STARTTLS", Command::StartTls),
            Verb::Auth => parse_auth(args),
        }
    }
}

/// SP / HTAB: what separates words on a command line. Tabs are accepted
/// because telnet users and some scripts produce them.
fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits off the verb (leading whitespace tolerated) from the rest.
fn split_verb(line: &[u8]) -> (&[u8], &[u8]) {
    let start = line
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(line.len());
    let line = line.get(start..).unwrap_or_default();
    let end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    line.split_at_checked(end).unwrap_or((line, &[]))
}

fn required(args: &str, usage: &'static str) -> Result<String, CommandError> {
    if args.is_empty() {
        return Err(CommandError::Syntax(usage));
    }
    Ok(args.to_string())
}

fn no_args(args: &str, usage: &'static str, command: Command) -> Result<Command, CommandError> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(CommandError::Syntax(usage))
    }
}

/// `BDAT <chunk-size> [LAST]`. The size must be exact: it decides where the
/// next command starts, so an overflowing size is a syntax error here.
fn parse_bdat(args: &str) -> Result<Command, CommandError> {
    const USAGE: &str = "Syntax: BDAT size [LAST]";
    let mut words = args.split(is_wsp).filter(|w| !w.is_empty());
    let size = words
        .next()
        .and_then(parse_decimal)
        .ok_or(CommandError::Syntax(USAGE))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::Syntax(USAGE)),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax(USAGE));
    }
    Ok(Command::Bdat { size, last })
}

/// `AUTH <mechanism> [initial-response]`.
fn parse_auth(args: &str) -> Result<Command, CommandError> {
    const USAGE: &str = "Syntax: AUTH mechanism [initial-response]";
    let mut words = args.split(is_wsp).filter(|w| !w.is_empty());
    let mechanism = words.next().ok_or(CommandError::Syntax(USAGE))?;
    // RFC 4422 §3.1: 1 to 20 characters from [A-Z0-9-_].
    let valid = mechanism.len() <= 20
        && mechanism
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(CommandError::Syntax("Syntax: bad SASL mechanism name"));
    }
    let initial_response = words.next().map(str::to_string);
    if words.next().is_some() {
        return Err(CommandError::Syntax(USAGE));
    }
    Ok(Command::Auth {
        mechanism: mechanism.to_ascii_uppercase(),
        initial_response,
    })
}

/// Digits only (no sign, no spaces); `None` on overflow.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A path as it appeared on the line, before address parsing.
struct RawPath<'a> {
    /// The text between the brackets (or the bare token), route included.
    path: &'a str,
    /// Everything after the path: the ESMTP parameters.
    params: &'a str,
}

/// Strips `FROM:` / `TO:` (case-insensitive; whitespace tolerated around
/// the colon) and splits the remainder into path and parameters.
fn split_path<'a>(
    args: &'a str,
    keyword: &str,
    usage: &'static str,
) -> Result<RawPath<'a>, CommandError> {
    let syntax = || CommandError::Syntax(usage);
    let head = args.get(..keyword.len()).ok_or_else(syntax)?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(syntax());
    }
    let rest = args.get(keyword.len()..).ok_or_else(syntax)?;
    let rest = rest
        .trim_start_matches(is_wsp)
        .strip_prefix(':')
        .ok_or_else(syntax)?;
    let rest = rest.trim_start_matches(is_wsp);
    if let Some(inner) = rest.strip_prefix('<') {
        let (path, after) = inner.split_once('>').ok_or_else(syntax)?;
        // `<a@b>SIZE=1` is not two words; insist on a separator.
        if !after.is_empty() && !after.starts_with(is_wsp) {
            return Err(syntax());
        }
        return Ok(RawPath {
            path: path.trim_matches(is_wsp),
            params: after,
        });
    }
    // No brackets, as typed in telnet: the path is the first word.
    let (path, params) = rest.split_once(is_wsp).unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(syntax());
    }
    Ok(RawPath { path, params })
}

/// Removes an RFC 5321 §4.1.2 source route (`@a,@b:user@c` → `user@c`);
/// RFC 5321 §C says to accept and ignore it.
fn strip_source_route(path: &str) -> Result<&str, CommandError> {
    if !path.starts_with('@') {
        return Ok(path);
    }
    path.split_once(':')
        .map(|(_, mailbox)| mailbox)
        .ok_or(CommandError::Syntax("Syntax: bad source route"))
}

/// `MAIL FROM:<reverse-path> [SP mail-parameters]`.
fn parse_mail(args: &str) -> Result<MailFrom, CommandError> {
    let raw = split_path(args, "FROM", "Syntax: MAIL FROM:<address>")?;
    // Only a literally empty path is the null sender; `<@a:>` is a route
    // to nowhere and reported as an empty address.
    let sender = if raw.path.is_empty() {
        None
    } else {
        let mailbox = strip_source_route(raw.path)?;
        Some(Address::parse(mailbox).map_err(CommandError::BadSender)?)
    };
    let mut mail = MailFrom {
        sender,
        ..MailFrom::default()
    };
    for param in parameters(raw.params) {
        apply_mail_param(&mut mail, param?)?;
    }
    Ok(mail)
}

/// `RCPT TO:<forward-path> [SP rcpt-parameters]`.
fn parse_rcpt(args: &str) -> Result<RcptTo, CommandError> {
    let raw = split_path(args, "TO", "Syntax: RCPT TO:<address>")?;
    let mailbox = strip_source_route(raw.path)?;
    let recipient = Address::parse(mailbox).map_err(CommandError::BadRecipient)?;
    let mut rcpt = RcptTo {
        recipient,
        notify: None,
        orcpt: None,
    };
    for param in parameters(raw.params) {
        apply_rcpt_param(&mut rcpt, param?)?;
    }
    Ok(rcpt)
}

/// One `keyword[=value]` from the parameter list.
struct Param<'a> {
    keyword: &'a str,
    value: Option<&'a str>,
}

impl Param<'_> {
    fn is(&self, keyword: &str) -> bool {
        self.keyword.eq_ignore_ascii_case(keyword)
    }

    fn value(&self, error: &'static str) -> Result<&str, CommandError> {
        self.value.ok_or(CommandError::Syntax(error))
    }
}

/// Splits `mail-parameters` / `rcpt-parameters` (RFC 5321 §4.1.2) into
/// checked `keyword[=value]` pairs.
fn parameters(text: &str) -> impl Iterator<Item = Result<Param<'_>, CommandError>> {
    text.split(is_wsp)
        .filter(|w| !w.is_empty())
        .map(parse_param)
}

fn parse_param(word: &str) -> Result<Param<'_>, CommandError> {
    let (keyword, value) = match word.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (word, None),
    };
    // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
    let keyword_ok = keyword
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && keyword
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !keyword_ok {
        return Err(CommandError::Syntax("Syntax: bad parameter keyword"));
    }
    if value == Some("") {
        return Err(CommandError::Syntax("Syntax: empty parameter value"));
    }
    Ok(Param { keyword, value })
}

/// Rejects a second occurrence of the same parameter.
fn once<T>(slot: &Option<T>) -> Result<(), CommandError> {
    match slot {
        Some(_) => Err(CommandError::Syntax("Syntax: duplicate parameter")),
        None => Ok(()),
    }
}

fn apply_mail_param(mail: &mut MailFrom, p: Param<'_>) -> Result<(), CommandError> {
    if p.is("SIZE") {
        once(&mail.size)?;
        mail.size = Some(parse_size(p.value("Bad SIZE parameter syntax")?)?);
    } else if p.is("BODY") {
        once(&mail.body)?;
        mail.body = Some(parse_body(p.value("Bad BODY parameter syntax")?)?);
    } else if p.is("SMTPUTF8") {
        if mail.smtputf8 {
            return Err(CommandError::Syntax("Syntax: duplicate parameter"));
        }
        if p.value.is_some() {
            return Err(CommandError::Syntax("Bad SMTPUTF8 parameter syntax"));
        }
        mail.smtputf8 = true;
    } else if p.is("RET") {
        once(&mail.ret)?;
        mail.ret = Some(parse_ret(p.value("Bad RET parameter syntax")?)?);
    } else if p.is("ENVID") {
        once(&mail.envid)?;
        let raw = p.value("Bad ENVID parameter syntax")?;
        // RFC 3461 §4.4: the decoded ENVID is printable US-ASCII.
        let envid = xtext_decode(raw)
            .filter(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)))
            .ok_or(CommandError::Syntax("Bad ENVID parameter syntax"))?;
        mail.envid = Some(envid);
    } else if p.is("AUTH") {
        once(&mail.auth)?;
        let raw = p.value("Bad AUTH parameter syntax")?;
        let auth = xtext_decode(raw).ok_or(CommandError::Syntax("Bad AUTH parameter syntax"))?;
        mail.auth = Some(auth);
    } else {
        return Err(CommandError::UnknownParameter(p.keyword.to_string()));
    }
    Ok(())
}

fn apply_rcpt_param(rcpt: &mut RcptTo, p: Param<'_>) -> Result<(), CommandError> {
    if p.is("NOTIFY") {
        once(&rcpt.notify)?;
        rcpt.notify = Some(parse_notify(p.value("Bad NOTIFY parameter syntax")?)?);
    } else if p.is("ORCPT") {
        once(&rcpt.orcpt)?;
        rcpt.orcpt = Some(parse_orcpt(p.value("Bad ORCPT parameter syntax")?)?);
    } else {
        return Err(CommandError::UnknownParameter(p.keyword.to_string()));
    }
    Ok(())
}

/// RFC 1870 §3: `SIZE=<digits>`. Values beyond `u64` saturate; they are
/// "too big", not malformed.
fn parse_size(value: &str) -> Result<u64, CommandError> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax("Bad SIZE parameter syntax"));
    }
    Ok(value.parse().unwrap_or(u64::MAX))
}

fn parse_body(value: &str) -> Result<Body, CommandError> {
    match value.to_ascii_uppercase().as_str() {
        "7BIT" => Ok(Body::SevenBit),
        "8BITMIME" => Ok(Body::EightBitMime),
        "BINARYMIME" => Ok(Body::BinaryMime),
        _ => Err(CommandError::Syntax("Bad BODY parameter syntax")),
    }
}

fn parse_ret(value: &str) -> Result<Ret, CommandError> {
    match value.to_ascii_uppercase().as_str() {
        "FULL" => Ok(Ret::Full),
        "HDRS" => Ok(Ret::Hdrs),
        _ => Err(CommandError::Syntax("Bad RET parameter syntax")),
    }
}

/// RFC 3461 §4.1: `NEVER`, or a comma list of `SUCCESS`, `FAILURE`,
/// `DELAY`. NEVER mixed with anything else is an error; a repeated value
/// is harmless and dropped.
fn parse_notify(value: &str) -> Result<Vec<Notify>, CommandError> {
    const BAD: CommandError = CommandError::Syntax("Bad NOTIFY parameter syntax");
    let mut list = Vec::new();
    for word in value.split(',') {
        let notify = match word.to_ascii_uppercase().as_str() {
            "NEVER" => Notify::Never,
            "SUCCESS" => Notify::Success,
            "FAILURE" => Notify::Failure,
            "DELAY" => Notify::Delay,
            _ => return Err(BAD),
        };
        if !list.contains(&notify) {
            list.push(notify);
        }
    }
    if list.contains(&Notify::Never) && list.len() > 1 {
        return Err(BAD);
    }
    Ok(list)
}

/// RFC 3461 §4.2: `ORCPT=addr-type;xtext`. The address type is an atom
/// (`rfc822`, `utf-8`); the address is xtext-decoded and must be UTF-8
/// without control characters.
fn parse_orcpt(value: &str) -> Result<String, CommandError> {
    const BAD: CommandError = CommandError::Syntax("Bad ORCPT parameter syntax");
    let (addr_type, encoded) = value.split_once(';').ok_or(BAD)?;
    let type_ok = !addr_type.is_empty()
        && addr_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !type_ok {
        return Err(BAD);
    }
    let address = xtext_decode(encoded)
        .filter(|a| !a.is_empty() && !a.chars().any(char::is_control))
        .ok_or(BAD)?;
    Ok(format!("{addr_type};{address}"))
}

/// Decodes RFC 3461 §4 xtext: `+XX` is a hex-encoded octet, other
/// characters stand for themselves. `+` and `=` must be encoded; lower-case
/// hex is tolerated. Non-ASCII UTF-8 passes through (RFC 6533 utf-8-xtext
/// under SMTPUTF8). Returns `None` if malformed or if the decoded octets
/// are not UTF-8.
fn xtext_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => {
                let hi = hex_value(bytes.next()?)?;
                let lo = hex_value(bytes.next()?)?;
                out.push((hi << 4) | lo);
            }
            b'=' | 0..=0x20 | 0x7f => return None,
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::proto::line::LineReader;

    fn addr(text: &str) -> Address {
        Address::parse(text).unwrap()
    }

    fn mail(sender: Option<&str>) -> MailFrom {
        MailFrom {
            sender: sender.map(addr),
            ..MailFrom::default()
        }
    }

    fn rcpt(recipient: &str) -> RcptTo {
        RcptTo {
            recipient: addr(recipient),
            notify: None,
            orcpt: None,
        }
    }

    fn syntax(line: &str) -> bool {
        matches!(parse_command(line.as_bytes()), Err(CommandError::Syntax(_)))
    }

    #[test]
    fn parses_simple_commands() {
        let cases: &[(&str, Command)] = &[
            ("HELO mx.example", Command::Helo("mx.example".into())),
            ("helo  mx.example  ", Command::Helo("mx.example".into())),
            ("ehlo localhost", Command::Ehlo("localhost".into())),
            ("EHLO [192.0.2.1]", Command::Ehlo("[192.0.2.1]".into())),
            ("DATA", Command::Data),
            ("Data", Command::Data),
            ("data   ", Command::Data),
            ("RSET", Command::Rset),
            ("NOOP", Command::Noop),
            ("noop whatever you like", Command::Noop),
            ("QUIT", Command::Quit),
            ("quit", Command::Quit),
            ("  QUIT", Command::Quit),
            ("VRFY user", Command::Vrfy("user".into())),
            (
                "VRFY <user@example.org>",
                Command::Vrfy("<user@example.org>".into()),
            ),
            ("EXPN staff", Command::Expn("staff".into())),
            ("HELP", Command::Help),
            ("help mail", Command::Help),
            ("ETRN example.org", Command::Etrn("example.org".into())),
            ("etrn @example.org", Command::Etrn("@example.org".into())),
            ("STARTTLS", Command::StartTls),
            ("StartTLS", Command::StartTls),
            (
                "BDAT 100 LAST",
                Command::Bdat {
                    size: 100,
                    last: true,
                },
            ),
            (
                "bdat 0 last",
                Command::Bdat {
                    size: 0,
                    last: true,
                },
            ),
            (
                "BDAT 4096",
                Command::Bdat {
                    size: 4096,
                    last: false,
                },
            ),
            (
                "AUTH PLAIN dGVzdA==",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial_response: Some("dGVzdA==".into()),
                },
            ),
            (
                "auth login",
                Command::Auth {
                    mechanism: "LOGIN".into(),
                    initial_response: None,
                },
            ),
            (
                "AUTH PLAIN =",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial_response: Some("=".into()),
                },
            ),
            (
                "AUTH SCRAM-SHA-256",
                Command::Auth {
                    mechanism: "SCRAM-SHA-256".into(),
                    initial_response: None,
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(
                parse_command(line.as_bytes()).as_ref(),
                Ok(expected),
                "{line:?}"
            );
        }
    }

    #[test]
    fn parses_mail_from() {
        let full = MailFrom {
            sender: Some(addr("a@b")),
            size: Some(123),
            body: Some(Body::EightBitMime),
            smtputf8: true,
            ret: Some(Ret::Hdrs),
            envid: Some("x+y".into()),
            auth: None,
        };
        let cases: &[(&str, MailFrom)] = &[
            ("MAIL FROM:<a@b>", mail(Some("a@b"))),
            ("mail from:afau@localhost", mail(Some("afau@localhost"))),
            ("MAIL FROM: <a@b>", mail(Some("a@b"))),
            ("MAIL FROM:<a@b>   ", mail(Some("a@b"))),
            ("MAIL FROM : <a@b>", mail(Some("a@b"))),
            ("Mail From:<A@B.Example>", mail(Some("A@b.example"))),
            ("MAIL FROM:<>", mail(None)),
            ("MAIL FROM: <>", mail(None)),
            ("MAIL FROM:<@a,@b:user@c>", mail(Some("user@c"))),
            ("MAIL FROM:<fauzan>", mail(Some("fauzan"))),
            ("MAIL FROM:<\"a b\"@x>", mail(Some("\"a b\"@x"))),
            (
                "MAIL FROM:<a@b> SIZE=123 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By",
                full.clone(),
            ),
            (
                "mail from:<a@b> size=123 body=8bitmime smtputf8 ret=hdrs envid=x+2By",
                full,
            ),
            (
                "MAIL FROM:a@b SIZE=99",
                MailFrom {
                    size: Some(99),
                    ..mail(Some("a@b"))
                },
            ),
            (
                "MAIL FROM:<a@b>\tBODY=7BIT",
                MailFrom {
                    body: Some(Body::SevenBit),
                    ..mail(Some("a@b"))
                },
            ),
            (
                "MAIL FROM:<> BODY=BINARYMIME RET=FULL",
                MailFrom {
                    body: Some(Body::BinaryMime),
                    ret: Some(Ret::Full),
                    ..mail(None)
                },
            ),
            (
                "MAIL FROM:<a@b> SIZE=99999999999999999999999",
                MailFrom {
                    size: Some(u64::MAX),
                    ..mail(Some("a@b"))
                },
            ),
            (
                "MAIL FROM:<a@b> AUTH=<>",
                MailFrom {
                    auth: Some("<>".into()),
                    ..mail(Some("a@b"))
                },
            ),
            (
                "MAIL FROM:<a@b> AUTH=e+2Bx@b",
                MailFrom {
                    auth: Some("e+x@b".into()),
                    ..mail(Some("a@b"))
                },
            ),
            (
                "MAIL FROM:<jörg@bücher.example> SMTPUTF8",
                MailFrom {
                    smtputf8: true,
                    ..mail(Some("jörg@bücher.example"))
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(
                parse_command(line.as_bytes()),
                Ok(Command::Mail(expected.clone())),
                "{line:?}"
            );
        }
    }

    #[test]
    fn parses_rcpt_to() {
        let cases: &[(&str, RcptTo)] = &[
            ("RCPT TO:<a@b>", rcpt("a@b")),
            ("rcpt to:fauzan@localhost", rcpt("fauzan@localhost")),
            ("RCPT TO: <a@b>", rcpt("a@b")),
            ("RCPT TO:<postmaster>", rcpt("postmaster")),
            ("RCPT TO:<Postmaster>  ", rcpt("Postmaster")),
            ("RCPT TO:<@relay.example:u@c>", rcpt("u@c")),
            (
                "RCPT TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b",
                RcptTo {
                    notify: Some(vec![Notify::Success, Notify::Failure]),
                    orcpt: Some("rfc822;a@b".into()),
                    ..rcpt("a@b")
                },
            ),
            (
                "RCPT TO:<a@b> notify=never",
                RcptTo {
                    notify: Some(vec![Notify::Never]),
                    ..rcpt("a@b")
                },
            ),
            (
                "RCPT TO:<a@b> NOTIFY=delay,FAILURE,delay",
                RcptTo {
                    notify: Some(vec![Notify::Delay, Notify::Failure]),
                    ..rcpt("a@b")
                },
            ),
            (
                "RCPT TO:<a@b> ORCPT=rfc822;x+2By+3Dz@b",
                RcptTo {
                    orcpt: Some("rfc822;x+y=z@b".into()),
                    ..rcpt("a@b")
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(
                parse_command(line.as_bytes()),
                Ok(Command::Rcpt(expected.clone())),
                "{line:?}"
            );
        }
    }

    #[test]
    fn rejects_malformed_commands() {
        let syntax_errors = [
            "HELO",
            "HELO   ",
            "EHLO",
            "DATA now",
            "RSET x",
            "QUIT please",
            "STARTTLS x",
            "VRFY",
            "EXPN",
            "ETRN",
            "BDAT",
            "BDAT x",
            "BDAT -1",
            "BDAT +1",
            "BDAT 10 FIRST",
            "BDAT 10 LAST x",
            "BDAT 99999999999999999999999",
            "AUTH",
            "AUTH PLAIN a b",
            "AUTH PL/AIN",
            "AUTH THIS-NAME-IS-LONGER-THAN-TWENTY",
            "MAIL",
            "MAIL TO:<a@b>",
            "MAIL FROM",
            "MAIL FROM:",
            "MAIL FROM:   ",
            "MAIL FROMAGE:<a@b>",
            "MAIL FROM:<a@b",
            "MAIL FROM:<a@b>SIZE=1",
            "MAIL FROM:<@a,@b>",
            "MAIL FROM:<a@b> SIZE=",
            "MAIL FROM:<a@b> SIZE",
            "MAIL FROM:<a@b> SIZE=12k",
            "MAIL FROM:<a@b> SIZE=1 SIZE=2",
            "MAIL FROM:<a@b> size=1 SIZE=1",
            "MAIL FROM:<a@b> BODY=9BIT",
            "MAIL FROM:<a@b> BODY=8BITMIME BODY=7BIT",
            "MAIL FROM:<a@b> SMTPUTF8 SMTPUTF8",
            "MAIL FROM:<a@b> SMTPUTF8=yes",
            "MAIL FROM:<a@b> RET=ALL",
            "MAIL FROM:<a@b> ENVID=a+2",
            "MAIL FROM:<a@b> ENVID=a+ZZ",
            "MAIL FROM:<a@b> ENVID=a+0D",
            "MAIL FROM:<a@b> ENVID=a=b",
            "MAIL FROM:<a@b> AUTH=+FF",
            "MAIL FROM:<a@b> -BAD=1",
            "MAIL FROM:<a@b> B_AD=1",
            "MAIL FROM:<a@b> =1",
            "RCPT",
            "RCPT TO",
            "RCPT FROM:<a@b>",
            "RCPT TO:",
            "RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS",
            "RCPT TO:<a@b> NOTIFY=SOMETIMES",
            "RCPT TO:<a@b> NOTIFY=",
            "RCPT TO:<a@b> NOTIFY=SUCCESS NOTIFY=DELAY",
            "RCPT TO:<a@b> ORCPT=a@b",
            "RCPT TO:<a@b> ORCPT=;a@b",
            "RCPT TO:<a@b> ORCPT=rfc822;",
            "RCPT TO:<a@b> ORCPT=rfc822;a+00b",
            "HELO a\0b",
            "HELO a\rb",
            "MAIL FROM:<a@b>\r",
        ];
        for line in syntax_errors {
            assert!(
                syntax(line),
                "{line:?}: {:?}",
                parse_command(line.as_bytes())
            );
        }
    }

    #[test]
    fn classifies_errors() {
        let cases: &[(&[u8], CommandError)] = &[
            (b"", CommandError::Unrecognized),
            (b"   ", CommandError::Unrecognized),
            (b"FOO", CommandError::Unrecognized),
            (b"MAILX FROM:<a@b>", CommandError::Unrecognized),
            (b"\xff\xfe", CommandError::Unrecognized),
            (b"GET / HTTP/1.1", CommandError::Unrecognized),
            (b"HELO \xff", CommandError::NotUtf8),
            (b"MAIL FROM:<a\xc3@b>", CommandError::NotUtf8),
            (
                b"MAIL FROM:<a@b> FOO=1",
                CommandError::UnknownParameter("FOO".into()),
            ),
            (
                b"MAIL FROM:<a@b> x-Custom",
                CommandError::UnknownParameter("x-Custom".into()),
            ),
            (
                b"MAIL FROM:<a@b> NOTIFY=NEVER",
                CommandError::UnknownParameter("NOTIFY".into()),
            ),
            (
                b"RCPT TO:<a@b> SIZE=1",
                CommandError::UnknownParameter("SIZE".into()),
            ),
            (
                b"MAIL FROM:<@x>",
                CommandError::Syntax("Syntax: bad source route"),
            ),
            (
                b"MAIL FROM:<a@>",
                CommandError::BadSender(AddressError::EmptyPart),
            ),
            (
                b"MAIL FROM:<a,b@c>",
                CommandError::BadSender(AddressError::BadCharacter),
            ),
            (
                b"MAIL FROM:<@a:>",
                CommandError::BadSender(AddressError::Empty),
            ),
            (
                b"RCPT TO:<>",
                CommandError::BadRecipient(AddressError::Empty),
            ),
            (
                b"RCPT TO:<@x>",
                CommandError::Syntax("Syntax: bad source route"),
            ),
            (
                b"RCPT TO:<@a:@b>",
                CommandError::BadRecipient(AddressError::EmptyPart),
            ),
            (
                b"RCPT TO:<a b@c>",
                CommandError::BadRecipient(AddressError::BadCharacter),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(
                parse_command(line).as_ref(),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let long = format!("MAIL FROM:<{}@b>", "a".repeat(300));
        assert_eq!(
            parse_command(long.as_bytes()),
            Err(CommandError::BadSender(AddressError::TooLong))
        );
    }

    #[test]
    fn maps_errors_to_replies() {
        let cases: &[(CommandError, &str)] = &[
            (
                CommandError::Unrecognized,
                "500 5.5.2 Error: command not recognized\r\n",
            ),
            (
                CommandError::Syntax("Syntax: HELO hostname"),
                "501 5.5.4 Syntax: HELO hostname\r\n",
            ),
            (
                CommandError::BadSender(AddressError::EmptyPart),
                "501 5.1.7 Bad sender address syntax: address has an empty local part or domain\r\n",
            ),
            (
                CommandError::BadRecipient(AddressError::Empty),
                "501 5.1.3 Bad recipient address syntax: address is empty\r\n",
            ),
            (
                CommandError::UnknownParameter("FOO".into()),
                "555 5.5.4 Unsupported option: FOO\r\n",
            ),
            (
                CommandError::NotUtf8,
                "501 5.5.4 Syntax error: invalid UTF-8\r\n",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(
                String::from_utf8(error.reply().to_bytes()).unwrap(),
                *expected
            );
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A cheap deterministic fuzz: every prefix of a set of nasty lines,
        // and every single byte value after each verb.
        let seeds: &[&[u8]] = &[
            b"MAIL FROM:<@a,@b:user@c> SIZE=1 BODY=8BITMIME ENVID=+4+ AUTH=+",
            b"RCPT TO:<a@b> NOTIFY=SUCCESS,,FAILURE ORCPT=rfc822;+F",
            b"BDAT 18446744073709551616 LAST",
            b"AUTH PLAIN \xc3\x28",
            b"mail from:\xe2\x82",
        ];
        for seed in seeds {
            for end in 0..=seed.len() {
                let _ = parse_command(&seed[..end]);
            }
        }
        for verb in ["MAIL FROM:", "RCPT TO:", "HELO ", "BDAT ", "AUTH "] {
            for b in 0..=255u8 {
                let mut line = verb.as_bytes().to_vec();
                line.push(b);
                let _ = parse_command(&line);
            }
        }
    }

    /// What a human types in telnet during a classic Postfix lab, fed
    /// through the line reader in every chunk size: the parsed commands
    /// must not depend on how TCP split the bytes.
    #[test]
    fn telnet_session_chunk_sweep() {
        let script: &[u8] = b"ehlo localhost\r\n\
            mail from:afau@localhost\r\n\
            rcpt to:fauzan@localhost\n\
            RCPT TO:<postmaster>  \r\n\
            Data\r\n\
            MAIL FROM:<a@b> SIZE=123 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By\r\n\
            RCPT TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b\r\n\
            BDAT 100 LAST\r\n\
            HELO\r\n\
            bogus\r\n\
            quit\r\n";
        let parse_all = |chunk: usize| {
            let mut reader = LineReader::new(512);
            let mut out = Vec::new();
            for piece in script.chunks(chunk) {
                reader.push(piece);
                while let Some(line) = reader.next_line() {
                    let line = line.unwrap();
                    out.push((parse_command(&line.bytes), line.bare_lf));
                }
            }
            out
        };
        let whole = parse_all(script.len());
        assert_eq!(whole.len(), 11);
        assert_eq!(whole[0].0, Ok(Command::Ehlo("localhost".into())));
        assert_eq!(
            whole[2],
            (Ok(Command::Rcpt(rcpt("fauzan@localhost"))), true)
        );
        assert_eq!(whole[4].0, Ok(Command::Data));
        assert!(matches!(whole[8].0, Err(CommandError::Syntax(_))));
        assert_eq!(whole[9].0, Err(CommandError::Unrecognized));
        assert_eq!(whole[10].0, Ok(Command::Quit));
        for chunk in 1..=512 {
            assert_eq!(parse_all(chunk), whole, "chunk size {chunk}");
        }
    }

    #[test]
    fn verb_names() {
        assert_eq!(parse_command(b"starttls").unwrap().verb(), "STARTTLS");
        assert_eq!(parse_command(b"bdat 1").unwrap().verb(), "BDAT");
        assert_eq!(parse_command(b"mail from:<>").unwrap().verb(), "MAIL");
    }
}
