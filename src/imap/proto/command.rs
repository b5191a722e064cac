//! Command parser (RFC 3501 §6 and §9, with the extensions Merpati
//! implements). Input is one whole command from
//! [`CommandReader`](super::reader::CommandReader): literals inline, final
//! CRLF removed. Parse, don't validate: the result is typed, and anything
//! malformed is a [`ParseError`] whose text goes into the `BAD` reply.

use super::date::{parse_date, parse_date_time};
use super::sequence::SeqSet;
use crate::store::FlagOp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub kind: CommandKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    Capability,
    Noop,
    Logout,
    StartTls,
    Id,
    Enable(Vec<String>),
    Authenticate {
        mechanism: String,
        /// SASL-IR (RFC 4959); `=` means an empty response.
        initial: Option<String>,
    },
    Login {
        user: String,
        password: String,
    },
    Select {
        mailbox: String,
        read_only: bool,
        condstore: bool,
        /// The QRESYNC parameter (RFC 7162 §3.2.5).
        qresync: Option<Qresync>,
    },
    /// CREATE, with the special uses asked for by CREATE-SPECIAL-USE
    /// (RFC 6154 §3: `CREATE name (USE (\Archive))`), as sent.
    Create {
        mailbox: String,
        special_use: Vec<String>,
    },
    Delete(String),
    Rename(String, String),
    Subscribe(String),
    Unsubscribe(String),
    /// LIST and LSUB; LIST-EXTENDED (RFC 5258) options and LIST-STATUS
    /// (RFC 5819) in `options`.
    List {
        reference: String,
        patterns: Vec<String>,
        subscribed_only: bool,
        options: ListOptions,
    },
    Namespace,
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    /// APPEND, with several messages under MULTIAPPEND (RFC 3502).
    Append {
        mailbox: String,
        messages: Vec<AppendMessage>,
    },
    /// REPLACE and UID REPLACE (RFC 8508): append `message` to `mailbox`
    /// and expunge the selected mailbox's message `target`.
    Replace {
        uid: bool,
        target: u32,
        mailbox: String,
        message: AppendMessage,
    },
    /// QUOTA (RFC 9208).
    GetQuota(String),
    GetQuotaRoot(String),
    SetQuota(String),
    Idle,
    /// COMPRESS mechanism (RFC 4978); only DEFLATE exists.
    Compress(String),
    Check,
    Close,
    Unselect,
    Expunge {
        /// UID EXPUNGE (RFC 4315).
        uids: Option<SeqSet>,
    },
    Search {
        uid: bool,
        key: SearchKey,
        /// ESEARCH return options (RFC 4731, SEARCHRES RFC 5182); `None`
        /// for a plain RFC 3501 SEARCH. `RETURN ()` means `ALL`.
        ret: Option<Vec<SearchReturn>>,
    },
    /// SORT and UID SORT (RFC 5256 §3; DISPLAYFROM/DISPLAYTO, RFC 5957).
    Sort {
        uid: bool,
        criteria: Vec<SortCriterion>,
        /// Upper-cased; only UTF-8 and US-ASCII get this far.
        charset: String,
        keys: SearchKey,
        /// ESORT return options (RFC 5267 §3.2; PARTIAL, RFC 9394):
        /// the answer is an ESEARCH in sort order.
        ret: Option<Vec<SearchReturn>>,
    },
    /// THREAD and UID THREAD (RFC 5256 §4).
    Thread {
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: String,
        keys: SearchKey,
    },
    Fetch {
        uid: bool,
        set: SeqSet,
        items: Vec<FetchAtt>,
        changed_since: Option<u64>,
        /// The VANISHED modifier of UID FETCH (RFC 7162 §3.2.6).
        vanished: bool,
    },
    Store {
        uid: bool,
        set: SeqSet,
        op: FlagOp,
        silent: bool,
        flags: Vec<String>,
        unchanged_since: Option<u64>,
    },
    Copy {
        uid: bool,
        set: SeqSet,
        mailbox: String,
        /// MOVE (RFC 6851) rather than COPY.
        remove: bool,
    },
}

/// SELECT's `QRESYNC (uidvalidity modseq [known-uids [seq-match]])`: what
/// the client had cached when it last saw the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uid_validity: u32,
    pub modseq: u64,
    pub known_uids: Option<SeqSet>,
    /// (known sequence numbers, their UIDs): only a hint for servers
    /// without a full expunge history; Merpati keeps one, so it is parsed
    /// and not needed.
    pub seq_match: Option<(SeqSet, SeqSet)>,
}

/// One message of an APPEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<String>,
    pub date: Option<i64>,
    pub message: Vec<u8>,
    /// Sent as a `~{n}` literal8 (BINARY, RFC 3516) or UTF8 (RFC 6855).
    pub binary: bool,
}

/// LIST-EXTENDED selection and return options (RFC 5258 §3, RFC 6154,
/// RFC 5819).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOptions {
    /// Extended syntax was used (selection options or RETURN): RFC 5258
    /// response rules apply.
    pub extended: bool,
    pub sel_subscribed: bool,
    pub sel_special_use: bool,
    pub recursive_match: bool,
    pub ret_subscribed: bool,
    pub ret_children: bool,
    pub ret_special_use: bool,
    pub ret_status: Option<Vec<StatusItem>>,
}

/// ESEARCH return options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    /// SEARCHRES: keep the result for `$`.
    Save,
    /// RFC 9394 PARTIAL: the `from`-th to `to`-th results (1-based; both
    /// negative counts from the end, -1 being the last), in the order the
    /// client gave them (`5:1` is `1:5`).
    Partial {
        from: i64,
        to: i64,
    },
}

/// One SORT criterion: a key, ascending unless `reverse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

/// SORT keys (RFC 5256 §3, RFC 5957 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

/// Threading algorithms (RFC 5256 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    HighestModSeq,
    Size,
    /// Messages with `\Deleted` (IMAP4rev2, RFC 9051 §6.3.11).
    Deleted,
    /// RFC 8474 MAILBOXID.
    MailboxId,
}

impl StatusItem {
    pub fn name(&self) -> &'static str {
        match self {
            StatusItem::Messages => "MESSAGES",
            StatusItem::Recent => "RECENT",
            StatusItem::UidNext => "UIDNEXT",
            StatusItem::UidValidity => "UIDVALIDITY",
            StatusItem::Unseen => "UNSEEN",
            StatusItem::HighestModSeq => "HIGHESTMODSEQ",
            StatusItem::Size => "SIZE",
            StatusItem::Deleted => "DELETED",
            StatusItem::MailboxId => "MAILBOXID",
        }
    }
}

/// RFC 8474 object IDs, as we spell them: `M<mailbox id>` and
/// `E<content id in hex>` (objectid: letters, digits, `-`, `_`).
pub fn mailbox_object_id(id: u64) -> String {
    format!("M{id}")
}

pub fn email_object_id(id: u64) -> String {
    format!("E{id:x}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAtt {
    Envelope,
    Flags,
    InternalDate,
    Rfc822,
    Rfc822Header,
    Rfc822Size,
    Rfc822Text,
    /// BODY without a section: the non-extensible structure.
    Body,
    /// BINARY[path]<partial> and BINARY.PEEK (RFC 3516): the part's
    /// content with its transfer encoding undone.
    Binary {
        peek: bool,
        path: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    /// BINARY.SIZE[path].
    BinarySize(Vec<u32>),
    BodyStructure,
    Uid,
    ModSeq,
    /// PREVIEW, with or without the LAZY modifier (RFC 8970).
    Preview,
    /// RFC 8474 EMAILID and THREADID.
    EmailId,
    ThreadId,
    /// RFC 8514 SAVEDATE.
    SaveDate,
    Section {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    /// Part numbers, e.g. `1.2` (empty: the whole message).
    pub path: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    HeaderFields { not: bool, fields: Vec<String> },
    Text,
    Mime,
}

impl Section {
    /// The section spec as echoed in the FETCH response (`1.HEADER.FIELDS (FROM)`).
    pub fn spec(&self) -> String {
        let mut out: Vec<String> = self.path.iter().map(u32::to_string).collect();
        match &self.text {
            None => {}
            Some(SectionText::Header) => out.push("HEADER".into()),
            Some(SectionText::Text) => out.push("TEXT".into()),
            Some(SectionText::Mime) => out.push("MIME".into()),
            Some(SectionText::HeaderFields { not, fields }) => {
                let name = if *not {
                    "HEADER.FIELDS.NOT"
                } else {
                    "HEADER.FIELDS"
                };
                out.push(format!("{name} ({})", fields.join(" ")));
            }
        }
        out.join(".")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    /// A flag the message has (`\Seen`, keyword...).
    Flag(String),
    /// A flag the message lacks.
    NoFlag(String),
    New,
    Old,
    Recent,
    /// Internal date, in days since the epoch.
    Before(i64),
    On(i64),
    Since(i64),
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Larger(u64),
    Smaller(u64),
    /// A header field containing a string (empty: the field exists).
    Header(String, String),
    Body(String),
    Text(String),
    Uid(SeqSet),
    Seq(SeqSet),
    ModSeq(u64),
    /// RFC 8474: the message with this EMAILID / in this thread.
    EmailId(String),
    ThreadId(String),
    /// RFC 8514: the save date, in days since the epoch; and whether the
    /// mailbox keeps save dates (ours always do).
    SavedBefore(i64),
    SavedOn(i64),
    SavedSince(i64),
    SaveDateSupported,
    /// WITHIN (RFC 5032): internal date more than / at most n seconds ago.
    Older(u64),
    Younger(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    pub tag: Option<String>,
    pub reason: String,
}

/// Parses one command. The error carries the tag when there was one.
pub fn parse_command(input: &[u8]) -> Result<Command, ParseError> {
    let mut p = Parser { buf: input, pos: 0 };
    let tag = p.tag().map_err(|reason| ParseError { tag: None, reason })?;
    let result = p.sp().and_then(|()| p.command());
    match result {
        Ok(kind) => Ok(Command { tag, kind }),
        Err(reason) => Err(ParseError {
            tag: Some(tag),
            reason,
        }),
    }
}

type Res<T> = Result<T, String>;

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !b"(){%*\"\\]".contains(&b)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Res<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected '{}'", char::from(b)))
        }
    }

    fn sp(&mut self) -> Res<()> {
        if self.eat(b' ') {
            Ok(())
        } else {
            Err("expected a space".into())
        }
    }

    fn end(&self) -> Res<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err("unexpected characters at end of command".into())
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.buf.get(start..self.pos).unwrap_or_default()
    }

    fn tag(&mut self) -> Res<String> {
        let tag = self.take_while(|b| is_atom_char(b) && b != b'+');
        if tag.is_empty() {
            return Err("missing or invalid tag".into());
        }
        Ok(String::from_utf8_lossy(tag).into_owned())
    }

    /// An atom, upper-cased (command names, keywords).
    fn keyword(&mut self) -> Res<String> {
        let atom = self.take_while(|b| is_atom_char(b) && b != b'[');
        if atom.is_empty() {
            return Err("expected a keyword".into());
        }
        Ok(String::from_utf8_lossy(atom).to_ascii_uppercase())
    }

    fn atom_text(&mut self) -> Res<&'a str> {
        let atom = self.take_while(is_atom_char);
        if atom.is_empty() {
            return Err("expected an atom".into());
        }
        std::str::from_utf8(atom).map_err(|_| "invalid atom".into())
    }

    fn number(&mut self) -> Res<u64> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.len() <= 19)
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| "expected a number".into())
    }

    fn number32(&mut self) -> Res<u32> {
        u32::try_from(self.number()?).map_err(|_| "number too large".into())
    }

    fn quoted(&mut self) -> Res<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return Err("unterminated string".into()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return Err("invalid escape in string".into()),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Res<Vec<u8>> {
        self.expect(b'{')?;
        let n = usize::try_from(self.number()?).map_err(|_| "literal too large")?;
        self.eat(b'+');
        self.expect(b'}')?;
        if !(self.eat(b'\r') && self.eat(b'\n')) {
            return Err("literal must end its line".into());
        }
        let end = self.pos.checked_add(n).ok_or("literal too large")?;
        let bytes = self.buf.get(self.pos..end).ok_or("truncated literal")?;
        self.pos = end;
        Ok(bytes.to_vec())
    }

    fn string(&mut self) -> Res<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => Err("expected a string".into()),
        }
    }

    fn astring(&mut self) -> Res<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let atom = self.take_while(|b| is_atom_char(b) || b == b']');
                if atom.is_empty() {
                    return Err("expected a string".into());
                }
                Ok(atom.to_vec())
            }
        }
    }

    fn astring_utf8(&mut self) -> Res<String> {
        String::from_utf8(self.astring()?).map_err(|_| "string is not UTF-8".into())
    }

    fn mailbox(&mut self) -> Res<String> {
        let name = self.astring_utf8()?;
        Ok(normalize_mailbox(name))
    }

    /// LIST patterns may also use `%` and `*` unquoted.
    fn list_mailbox(&mut self) -> Res<String> {
        match self.peek() {
            Some(b'"' | b'{') => self.astring_utf8(),
            _ => {
                let atom = self.take_while(|b| is_atom_char(b) || b"]%*".contains(&b));
                if atom.is_empty() {
                    return Err("expected a mailbox pattern".into());
                }
                String::from_utf8(atom.to_vec()).map_err(|_| "pattern is not UTF-8".into())
            }
        }
    }

    fn flag(&mut self) -> Res<String> {
        let backslash = self.eat(b'\\');
        if backslash && self.eat(b'*') {
            return Ok("\\*".into());
        }
        let atom = self.atom_text()?;
        Ok(if backslash {
            format!("\\{atom}")
        } else {
            atom.to_string()
        })
    }

    fn flag_list(&mut self) -> Res<Vec<String>> {
        self.expect(b'(')?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.eat(b')') {
                return Ok(flags);
            }
            self.sp()?;
        }
    }

    fn seq_set(&mut self) -> Res<SeqSet> {
        // SEARCHRES (RFC 5182): `$` is the saved search result.
        if self.eat(b'$') {
            return Ok(SeqSet::saved());
        }
        let text = self.take_while(|b| b.is_ascii_digit() || b":,*".contains(&b));
        std::str::from_utf8(text)
            .ok()
            .and_then(SeqSet::parse)
            .ok_or_else(|| "invalid sequence set".into())
    }

    fn command(&mut self) -> Res<CommandKind> {
        let name = self.keyword()?;
        let kind = match name.as_str() {
            "CAPABILITY" => CommandKind::Capability,
            "NOOP" => CommandKind::Noop,
            "LOGOUT" => CommandKind::Logout,
            "STARTTLS" => CommandKind::StartTls,
            "CHECK" => CommandKind::Check,
            "CLOSE" => CommandKind::Close,
            "UNSELECT" => CommandKind::Unselect,
            "EXPUNGE" => CommandKind::Expunge { uids: None },
            "IDLE" => CommandKind::Idle,
            "COMPRESS" => {
                self.sp()?;
                CommandKind::Compress(self.keyword()?)
            }
            "NAMESPACE" => CommandKind::Namespace,
            "ID" => {
                self.sp()?;
                self.id_params()?;
                CommandKind::Id
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while self.eat(b' ') {
                    caps.push(self.keyword()?);
                }
                if caps.is_empty() {
                    return Err("ENABLE needs a capability".into());
                }
                CommandKind::Enable(caps)
            }
            "AUTHENTICATE" => {
                self.sp()?;
                let mechanism = self.keyword()?;
                let initial = if self.eat(b' ') {
                    let text =
                        self.take_while(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
                    Some(String::from_utf8_lossy(text).into_owned())
                } else {
                    None
                };
                CommandKind::Authenticate { mechanism, initial }
            }
            "LOGIN" => {
                self.sp()?;
                let user = self.astring_utf8()?;
                self.sp()?;
                let password = self.astring_utf8()?;
                CommandKind::Login { user, password }
            }
            "SELECT" | "EXAMINE" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                let mut condstore = false;
                let mut qresync = None;
                if self.eat(b' ') {
                    self.expect(b'(')?;
                    loop {
                        match self.keyword()?.as_str() {
                            "CONDSTORE" => condstore = true,
                            "QRESYNC" => {
                                self.sp()?;
                                qresync = Some(self.qresync()?);
                            }
                            _ => return Err("unknown SELECT parameter".into()),
                        }
                        if self.eat(b')') {
                            break;
                        }
                        self.sp()?;
                    }
                }
                CommandKind::Select {
                    mailbox,
                    read_only: name == "EXAMINE",
                    condstore,
                    qresync,
                }
            }
            "CREATE" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                let special_use = self.create_params()?;
                CommandKind::Create {
                    mailbox,
                    special_use,
                }
            }
            "DELETE" => {
                self.sp()?;
                CommandKind::Delete(self.mailbox()?)
            }
            "RENAME" => {
                self.sp()?;
                let from = self.mailbox()?;
                self.sp()?;
                let to = self.mailbox()?;
                CommandKind::Rename(from, to)
            }
            "SUBSCRIBE" => {
                self.sp()?;
                CommandKind::Subscribe(self.mailbox()?)
            }
            "UNSUBSCRIBE" => {
                self.sp()?;
                CommandKind::Unsubscribe(self.mailbox()?)
            }
            "LSUB" => {
                self.sp()?;
                let reference = self.astring_utf8()?;
                self.sp()?;
                let pattern = self.list_mailbox()?;
                CommandKind::List {
                    reference,
                    patterns: vec![pattern],
                    subscribed_only: true,
                    options: ListOptions::default(),
                }
            }
            "LIST" => self.list()?,
            "STATUS" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                self.sp()?;
                let items = self.status_items()?;
                CommandKind::Status { mailbox, items }
            }
            "APPEND" => self.append()?,
            "REPLACE" => self.replace(false)?,
            "GETQUOTA" => {
                self.sp()?;
                CommandKind::GetQuota(self.astring_utf8()?)
            }
            "GETQUOTAROOT" => {
                self.sp()?;
                CommandKind::GetQuotaRoot(self.mailbox()?)
            }
            "SETQUOTA" => {
                self.sp()?;
                let root = self.astring_utf8()?;
                self.sp()?;
                self.expect(b'(')?;
                while !self.eat(b')') {
                    self.eat(b' ');
                    self.keyword()?;
                    self.sp()?;
                    self.number()?;
                }
                CommandKind::SetQuota(root)
            }
            "SEARCH" => self.search(false)?,
            "SORT" => self.sort(false)?,
            "THREAD" => self.thread(false)?,
            "FETCH" => self.fetch(false)?,
            "STORE" => self.store(false)?,
            "COPY" => self.copy(false, false)?,
            "MOVE" => self.copy(false, true)?,
            "UID" => {
                self.sp()?;
                match self.keyword()?.as_str() {
                    "SEARCH" => self.search(true)?,
                    "SORT" => self.sort(true)?,
                    "THREAD" => self.thread(true)?,
                    "FETCH" => self.fetch(true)?,
                    "STORE" => self.store(true)?,
                    "COPY" => self.copy(true, false)?,
                    "MOVE" => self.copy(true, true)?,
                    "REPLACE" => self.replace(true)?,
                    "EXPUNGE" => {
                        self.sp()?;
                        CommandKind::Expunge {
                            uids: Some(self.seq_set()?),
                        }
                    }
                    _ => return Err("unknown UID command".into()),
                }
            }
            _ => return Err("unknown command".into()),
        };
        self.end()?;
        Ok(kind)
    }

    /// RFC 2971: `NIL` or a list of string pairs; the values are only
    /// logged by nobody, so they are checked and dropped.
    fn id_params(&mut self) -> Res<()> {
        if self.eat(b'(') {
            if self.eat(b')') {
                return Ok(());
            }
            loop {
                self.string()?;
                self.sp()?;
                self.nstring()?;
                if self.eat(b')') {
                    return Ok(());
                }
                self.sp()?;
            }
        }
        match self.keyword()?.as_str() {
            "NIL" => Ok(()),
            _ => Err("expected NIL or a list".into()),
        }
    }

    /// RFC 8474 `objectid`: 1*255 letters, digits, `-` and `_`.
    fn object_id(&mut self) -> Res<String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.pos += 1;
        }
        let id = self.buf.get(start..self.pos).unwrap_or_default();
        if id.is_empty() || id.len() > 255 {
            return Err("expected an object ID".into());
        }
        Ok(String::from_utf8_lossy(id).into_owned())
    }

    fn nstring(&mut self) -> Res<Option<Vec<u8>>> {
        match self.peek() {
            Some(b'"' | b'{') => Ok(Some(self.string()?)),
            _ => match self.keyword()?.as_str() {
                "NIL" => Ok(None),
                _ => Err("expected a string or NIL".into()),
            },
        }
    }

    /// `[SP "(" create-param *(SP create-param) ")"]` (RFC 4466 §2.2);
    /// the one parameter known is `USE (flags)` (RFC 6154 §3).
    fn create_params(&mut self) -> Res<Vec<String>> {
        let mut uses = Vec::new();
        if !self.eat(b' ') {
            return Ok(uses);
        }
        self.expect(b'(')?;
        loop {
            match self.keyword()?.as_str() {
                "USE" => {
                    self.sp()?;
                    uses.extend(self.flag_list()?);
                }
                _ => return Err("unknown CREATE parameter".into()),
            }
            if self.eat(b')') {
                return Ok(uses);
            }
            self.sp()?;
        }
    }

    fn status_items(&mut self) -> Res<Vec<StatusItem>> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        loop {
            items.push(match self.keyword()?.as_str() {
                "MESSAGES" => StatusItem::Messages,
                "RECENT" => StatusItem::Recent,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                "SIZE" => StatusItem::Size,
                "DELETED" => StatusItem::Deleted,
                "MAILBOXID" => StatusItem::MailboxId,
                _ => return Err("unknown STATUS item".into()),
            });
            if self.eat(b')') {
                return Ok(items);
            }
            self.sp()?;
        }
    }

    /// `LIST [(selection)] reference (pattern | (patterns)) [RETURN (...)]`
    /// (RFC 5258 §3).
    fn list(&mut self) -> Res<CommandKind> {
        self.sp()?;
        let mut options = ListOptions::default();
        if self.eat(b'(') {
            options.extended = true;
            while !self.eat(b')') {
                self.eat(b' ');
                match self.keyword()?.as_str() {
                    "SUBSCRIBED" => options.sel_subscribed = true,
                    "REMOTE" => {}
                    "RECURSIVEMATCH" => options.recursive_match = true,
                    "SPECIAL-USE" => options.sel_special_use = true,
                    _ => return Err("unknown LIST selection option".into()),
                }
            }
            self.sp()?;
            // RFC 5258 §3: RECURSIVEMATCH alone is an error.
            if options.recursive_match && !options.sel_subscribed && !options.sel_special_use {
                return Err("RECURSIVEMATCH needs another selection option".into());
            }
        }
        let reference = self.astring_utf8()?;
        self.sp()?;
        let mut patterns = Vec::new();
        if self.eat(b'(') {
            options.extended = true;
            loop {
                patterns.push(self.list_mailbox()?);
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        } else {
            patterns.push(self.list_mailbox()?);
        }
        if self.eat(b' ') {
            if self.keyword()? != "RETURN" {
                return Err("expected RETURN".into());
            }
            options.extended = true;
            self.sp()?;
            self.expect(b'(')?;
            while !self.eat(b')') {
                self.eat(b' ');
                match self.keyword()?.as_str() {
                    "SUBSCRIBED" => options.ret_subscribed = true,
                    "CHILDREN" => options.ret_children = true,
                    "SPECIAL-USE" => options.ret_special_use = true,
                    "STATUS" => {
                        self.sp()?;
                        options.ret_status = Some(self.status_items()?);
                    }
                    _ => return Err("unknown LIST return option".into()),
                }
            }
        }
        Ok(CommandKind::List {
            reference,
            patterns,
            subscribed_only: false,
            options,
        })
    }

    /// APPEND with one or more messages (MULTIAPPEND, RFC 3502), each
    /// `[flags] [date] literal`, the literal possibly a `~{n}` literal8
    /// (RFC 3516) or `UTF8 (~{n})` (RFC 6855 §4).
    /// `REPLACE n mailbox [flags] [date] literal` (RFC 8508 §6).
    fn replace(&mut self, uid: bool) -> Res<CommandKind> {
        self.sp()?;
        let target = self.number32()?;
        if target == 0 {
            return Err("REPLACE needs a message number".into());
        }
        let CommandKind::Append {
            mailbox,
            mut messages,
        } = self.append()?
        else {
            return Err("REPLACE needs a mailbox and a message".into());
        };
        let Some(message) = messages.pop().filter(|_| messages.is_empty()) else {
            return Err("REPLACE takes exactly one message".into());
        };
        Ok(CommandKind::Replace {
            uid,
            target,
            mailbox,
            message,
        })
    }

    fn append(&mut self) -> Res<CommandKind> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        let mut messages = Vec::new();
        while self.eat(b' ') {
            let mut flags = Vec::new();
            if self.peek() == Some(b'(') {
                flags = self.flag_list()?;
                self.sp()?;
            }
            let mut date = None;
            if self.peek() == Some(b'"') {
                let text = self.quoted()?;
                let text = std::str::from_utf8(&text).map_err(|_| "invalid date-time")?;
                date = Some(parse_date_time(text).ok_or("invalid date-time")?);
                self.sp()?;
            }
            let (message, binary) = match self.peek() {
                Some(b'~') => {
                    self.pos += 1;
                    (self.literal()?, true)
                }
                Some(b'U' | b'u') => {
                    if self.keyword()? != "UTF8" {
                        return Err("expected a message literal".into());
                    }
                    self.sp()?;
                    self.expect(b'(')?;
                    self.expect(b'~')?;
                    let message = self.literal()?;
                    self.expect(b')')?;
                    (message, true)
                }
                _ => (self.literal()?, false),
            };
            messages.push(AppendMessage {
                flags,
                date,
                message,
                binary,
            });
        }
        if messages.is_empty() {
            return Err("APPEND needs a message".into());
        }
        Ok(CommandKind::Append { mailbox, messages })
    }

    fn store(&mut self, uid: bool) -> Res<CommandKind> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mut unchanged_since = None;
        if self.eat(b'(') {
            if self.keyword()? != "UNCHANGEDSINCE" {
                return Err("unknown STORE modifier".into());
            }
            self.sp()?;
            unchanged_since = Some(self.number()?);
            self.expect(b')')?;
            self.sp()?;
        }
        let item = self.keyword()?;
        let (op, rest) = match item.as_bytes().first() {
            Some(b'+') => (FlagOp::Add, item.get(1..).unwrap_or_default()),
            Some(b'-') => (FlagOp::Remove, item.get(1..).unwrap_or_default()),
            _ => (FlagOp::Replace, item.as_str()),
        };
        let silent = match rest {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return Err("expected FLAGS, +FLAGS or -FLAGS".into()),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut flags = vec![self.flag()?];
            while self.eat(b' ') {
                flags.push(self.flag()?);
            }
            flags
        };
        Ok(CommandKind::Store {
            uid,
            set,
            op,
            silent,
            flags,
            unchanged_since,
        })
    }

    fn copy(&mut self, uid: bool, remove: bool) -> Res<CommandKind> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mailbox = self.mailbox()?;
        Ok(CommandKind::Copy {
            uid,
            set,
            mailbox,
            remove,
        })
    }

    fn fetch(&mut self, uid: bool) -> Res<CommandKind> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mut items = Vec::new();
        if self.eat(b'(') {
            loop {
                items.push(self.fetch_att()?);
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        } else {
            let start = self.pos;
            let word = self.keyword()?;
            match word.as_str() {
                "ALL" => items.extend([
                    FetchAtt::Flags,
                    FetchAtt::InternalDate,
                    FetchAtt::Rfc822Size,
                    FetchAtt::Envelope,
                ]),
                "FAST" => items.extend([
                    FetchAtt::Flags,
                    FetchAtt::InternalDate,
                    FetchAtt::Rfc822Size,
                ]),
                "FULL" => items.extend([
                    FetchAtt::Flags,
                    FetchAtt::InternalDate,
                    FetchAtt::Rfc822Size,
                    FetchAtt::Envelope,
                    FetchAtt::Body,
                ]),
                _ => {
                    self.pos = start;
                    items.push(self.fetch_att()?);
                }
            }
        }
        let mut changed_since = None;
        let mut vanished = false;
        if self.eat(b' ') {
            self.expect(b'(')?;
            loop {
                match self.keyword()?.as_str() {
                    "CHANGEDSINCE" => {
                        self.sp()?;
                        changed_since = Some(self.number()?);
                    }
                    "VANISHED" => vanished = true,
                    _ => return Err("unknown FETCH modifier".into()),
                }
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        }
        // RFC 7162 §3.2.6: VANISHED only with UID FETCH and CHANGEDSINCE.
        if vanished && !(uid && changed_since.is_some()) {
            return Err("VANISHED needs UID FETCH with CHANGEDSINCE".into());
        }
        Ok(CommandKind::Fetch {
            uid,
            set,
            items,
            changed_since,
            vanished,
        })
    }

    /// `(uidvalidity modseq [known-uids] [(known-seqs known-uids)])`.
    fn qresync(&mut self) -> Res<Qresync> {
        self.expect(b'(')?;
        let uid_validity = self.number32()?;
        self.sp()?;
        let modseq = self.number()?;
        let mut known_uids = None;
        let mut seq_match = None;
        while self.eat(b' ') {
            if self.eat(b'(') {
                let seqs = self.seq_set()?;
                self.sp()?;
                let uids = self.seq_set()?;
                self.expect(b')')?;
                seq_match = Some((seqs, uids));
            } else if known_uids.is_none() && seq_match.is_none() {
                known_uids = Some(self.seq_set()?);
            } else {
                return Err("malformed QRESYNC parameter".into());
            }
        }
        self.expect(b')')?;
        if uid_validity == 0 || modseq == 0 {
            return Err("QRESYNC needs a non-zero UIDVALIDITY and modseq".into());
        }
        Ok(Qresync {
            uid_validity,
            modseq,
            known_uids,
            seq_match,
        })
    }

    fn fetch_att(&mut self) -> Res<FetchAtt> {
        let word = self.keyword()?;
        Ok(match word.as_str() {
            "ENVELOPE" => FetchAtt::Envelope,
            "FLAGS" => FetchAtt::Flags,
            "INTERNALDATE" => FetchAtt::InternalDate,
            "RFC822" => FetchAtt::Rfc822,
            "RFC822.HEADER" => FetchAtt::Rfc822Header,
            "RFC822.SIZE" => FetchAtt::Rfc822Size,
            "RFC822.TEXT" => FetchAtt::Rfc822Text,
            "BODYSTRUCTURE" => FetchAtt::BodyStructure,
            "UID" => FetchAtt::Uid,
            "MODSEQ" => FetchAtt::ModSeq,
            "EMAILID" => FetchAtt::EmailId,
            "SAVEDATE" => FetchAtt::SaveDate,
            "THREADID" => FetchAtt::ThreadId,
            "PREVIEW" => {
                // RFC 8970 §3: `PREVIEW (LAZY)`; we always have a preview
                // at hand, so LAZY changes nothing.
                let rest = self.buf.get(self.pos..).unwrap_or_default();
                if rest
                    .get(..7)
                    .is_some_and(|r| r.eq_ignore_ascii_case(b" (LAZY)"))
                {
                    self.pos += 7;
                }
                FetchAtt::Preview
            }
            "BINARY" | "BINARY.PEEK" | "BINARY.SIZE" => {
                self.expect(b'[')?;
                let mut path = Vec::new();
                while !self.eat(b']') {
                    if !path.is_empty() {
                        self.expect(b'.')?;
                    }
                    let n = self.number32()?;
                    if n == 0 {
                        return Err("section numbers start at 1".into());
                    }
                    path.push(n);
                }
                if word == "BINARY.SIZE" {
                    return Ok(FetchAtt::BinarySize(path));
                }
                let partial = self.partial()?;
                FetchAtt::Binary {
                    peek: word == "BINARY.PEEK",
                    path,
                    partial,
                }
            }
            "BODY" | "BODY.PEEK" => {
                if self.peek() != Some(b'[') {
                    if word == "BODY" {
                        return Ok(FetchAtt::Body);
                    }
                    return Err("BODY.PEEK needs a section".into());
                }
                self.pos += 1;
                let section = self.section()?;
                self.expect(b']')?;
                let partial = self.partial()?;
                FetchAtt::Section {
                    peek: word == "BODY.PEEK",
                    section,
                    partial,
                }
            }
            _ => return Err(format!("unknown FETCH item {word}")),
        })
    }

    fn partial(&mut self) -> Res<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let offset = self.number32()?;
        self.expect(b'.')?;
        let len = self.number32()?;
        if len == 0 {
            return Err("partial length must be above 0".into());
        }
        self.expect(b'>')?;
        Ok(Some((offset, len)))
    }

    fn section(&mut self) -> Res<Section> {
        let mut section = Section::default();
        if self.peek() == Some(b']') {
            return Ok(section);
        }
        loop {
            if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                let n = self.number32()?;
                if n == 0 {
                    return Err("section numbers start at 1".into());
                }
                section.path.push(n);
                if self.eat(b'.') {
                    continue;
                }
                return Ok(section);
            }
            break;
        }
        let word = self.take_while(|b| b.is_ascii_alphabetic() || b == b'.');
        let word = String::from_utf8_lossy(word).to_ascii_uppercase();
        section.text = Some(match word.as_str() {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" if !section.path.is_empty() => SectionText::Mime,
            "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                self.sp()?;
                self.expect(b'(')?;
                let mut fields = Vec::new();
                loop {
                    fields.push(self.astring_utf8()?);
                    if self.eat(b')') {
                        break;
                    }
                    self.sp()?;
                }
                SectionText::HeaderFields {
                    not: word == "HEADER.FIELDS.NOT",
                    fields,
                }
            }
            _ => return Err("invalid section".into()),
        });
        Ok(section)
    }
}

/// `INBOX` is case-insensitive (RFC 3501 §5.1), also as a parent.
pub fn normalize_mailbox(name: String) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        return "INBOX".into();
    }
    match name.split_at_checked(6) {
        Some((head, _)) if head.eq_ignore_ascii_case("INBOX/") => {
            format!("INBOX/{}", name.get(6..).unwrap_or_default())
        }
        _ => name,
    }
}

mod search;
#[cfg(test)]
mod tests;
