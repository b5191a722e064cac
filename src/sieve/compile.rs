//! From the syntax tree to a program: every command and test checked
//! against what it is (RFC 5228 §2.6 tagged, then positional arguments),
//! every extension it uses `require`d, `elsif`/`else` attached to their
//! `if`. What is left to the interpreter cannot fail to be understood.

use super::Error;
use super::parser::{Arg, Command, Test};
use serde::{Deserialize, Serialize};

/// The extensions this engine implements (RFC 5228 `require` names).
pub const EXTENSIONS: &[&str] = &[
    "fileinto",
    "copy",
    "envelope",
    "subaddress",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "comparator-i;ascii-numeric",
    "relational",
    "body",
    "reject",
    "ereject",
    "variables",
    "imap4flags",
    "vacation",
    "vacation-seconds",
    "encoded-character",
    "include",
    "editheader",
    "mailbox",
    "special-use",
    "environment",
    "spamtest",
    "spamtestplus",
    "ihave",
    "regex",
    "date",
    "index",
    "duplicate",
    "enotify",
    "fcc",
];

/// RFC 6609 §3.2: where an included script is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Location {
    /// The user's own scripts.
    Personal,
    /// The administrator's (`sieve.global_dir`).
    Global,
}

/// RFC 5260 `:index n [:last]` (`true`: counted from the end) and the
/// test's other arguments.
type Indexed = (Option<(u64, bool)>, Vec<Arg>);

/// `:fcc` and its companions as read, before they are checked together.
#[derive(Default)]
struct FccTags {
    mailbox: Option<String>,
    create: bool,
    flags: Option<Vec<String>>,
    special_use: Option<String>,
}

impl FccTags {
    /// RFC 8580 §3: `:create`, `:flags` and `:specialuse` only with `:fcc`.
    fn finish(self, args: &Args<'_>) -> Result<Option<Fcc>, Error> {
        match self.mailbox {
            Some(mailbox) => Ok(Some(Fcc {
                mailbox,
                create: self.create,
                flags: self.flags,
                special_use: self.special_use,
            })),
            None if self.create || self.flags.is_some() || self.special_use.is_some() => {
                Err(args.error(":create, :flags and :specialuse need :fcc here"))
            }
            None => Ok(None),
        }
    }
}

/// A compiled script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    pub cmds: Vec<Cmd>,
    /// RFC 5229 `variables` was required: strings expand `${...}` at run
    /// time and `:matches` sets the match variables.
    pub variables: bool,
    /// RFC 5232 `imap4flags` was required: `keep` and `fileinto` without
    /// `:flags` take the internal flag variable.
    pub imap4flags: bool,
}

/// RFC 5173 §5: what of the body a `body` test sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyTransform {
    /// `:raw`: the body as sent.
    Raw,
    /// `:text` (the default): the text parts, decoded.
    Text,
    /// `:content`: the decoded leaf parts whose media type matches one of
    /// these (`"text"`, `"text/html"`; `""` for all).
    Content(Vec<String>),
}

/// RFC 5229 §4 modifiers of `set`, in the order they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Modifier {
    Lower,
    Upper,
    LowerFirst,
    UpperFirst,
    QuoteWildcard,
    Length,
    /// RFC 5435 §6 `:encodeurl` (with enotify): percent-encoding for a URI.
    EncodeUrl,
}

impl Modifier {
    /// §4: higher precedence applies first; two of one precedence are an
    /// error.
    fn precedence(self) -> u8 {
        match self {
            Modifier::Lower | Modifier::Upper => 40,
            Modifier::LowerFirst | Modifier::UpperFirst => 30,
            Modifier::QuoteWildcard | Modifier::EncodeUrl => 15,
            Modifier::Length => 10,
        }
    }
}

/// RFC 5232's three flag commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlagOp {
    Set,
    Add,
    Remove,
}

/// RFC 5230 `vacation`'s arguments (RFC 6131 `:seconds` as a period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vacation {
    /// `:days` × 86,400 or `:seconds`; `None`: the configured default.
    pub period: Option<u64>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub addresses: Vec<String>,
    pub mime: bool,
    pub handle: Option<String>,
    pub reason: String,
    /// RFC 8580 `:fcc`: a copy of the reply into this mailbox.
    pub fcc: Option<Fcc>,
}

impl Vacation {
    /// RFC 5230 §4.2: without `:handle` the reply's own arguments identify
    /// it, as written (unexpanded), so one rule answers a sender once
    /// whatever the subject of the mail was.
    pub fn default_handle(&self) -> String {
        format!(
            "{}\0{}\0{}\0{}",
            self.reason,
            self.subject.as_deref().unwrap_or(""),
            self.from.as_deref().unwrap_or(""),
            self.mime
        )
    }
}

/// RFC 8580 `:fcc` and the tags that go with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fcc {
    pub mailbox: String,
    pub create: bool,
    pub flags: Option<Vec<String>>,
    pub special_use: Option<String>,
}

/// RFC 5435 `notify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    pub method: String,
    pub from: Option<String>,
    pub importance: Option<String>,
    pub options: Vec<String>,
    pub message: Option<String>,
    pub fcc: Option<Fcc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmd {
    /// `if` / `elsif`... / `else`: the first branch whose test holds runs.
    If(Vec<(Option<Cond>, Vec<Cmd>)>),
    Stop,
    /// `keep`, with RFC 5232 `:flags` if given.
    Keep {
        flags: Option<Vec<String>>,
    },
    Discard,
    /// RFC 5429 `reject` / `ereject`: refused, with this reason.
    Reject(String),
    FileInto {
        mailbox: String,
        copy: bool,
        create: bool,
        flags: Option<Vec<String>>,
        /// RFC 8579 `:specialuse`: the mailbox with this attribute, if
        /// the user has one, else `mailbox`.
        special_use: Option<String>,
    },
    Redirect {
        address: String,
        copy: bool,
    },
    /// RFC 5229 `set`.
    Set {
        name: String,
        value: String,
        modifiers: Vec<Modifier>,
    },
    /// RFC 5232 `setflag`/`addflag`/`removeflag`, on the internal
    /// variable or a named one.
    Flags {
        op: FlagOp,
        variable: Option<String>,
        flags: Vec<String>,
    },
    Vacation(Box<Vacation>),
    Notify(Box<Notify>),
    /// RFC 6609 `include`.
    Include {
        location: Location,
        once: bool,
        optional: bool,
        name: String,
    },
    /// RFC 6609 `return`: back to the including script.
    Return,
    /// RFC 6609 `global`: these variables are shared with other scripts.
    Global(Vec<String>),
    /// RFC 5463 `error`: ends the run with this message.
    Error(String),
    /// RFC 5293 `addheader`.
    AddHeader {
        last: bool,
        name: String,
        value: String,
    },
    /// RFC 5293 `deleteheader`: fields named `name` (the `index`th, from
    /// the end if `last`) whose value matches (all of them without keys).
    DeleteHeader {
        index: Option<(u64, bool)>,
        name: String,
        matcher: Option<Matcher>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchType {
    Is,
    Contains,
    Matches,
    /// RFC 5231 `:value "op"`: each value against the keys by ordering.
    Value(Relation),
    /// RFC 5231 `:count "op"`: the number of values against the keys.
    Count(Relation),
    /// draft-ietf-sieve-regex `:regex`: POSIX-style extended expressions
    /// (the regex crate's syntax, linear-time).
    Regex,
}

/// RFC 5231's relational operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relation {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Relation {
    pub const ALL: [Relation; 6] = [
        Relation::Gt,
        Relation::Ge,
        Relation::Lt,
        Relation::Le,
        Relation::Eq,
        Relation::Ne,
    ];

    fn parse(text: &str) -> Option<Relation> {
        Some(match text.to_ascii_lowercase().as_str() {
            "gt" => Relation::Gt,
            "ge" => Relation::Ge,
            "lt" => Relation::Lt,
            "le" => Relation::Le,
            "eq" => Relation::Eq,
            "ne" => Relation::Ne,
            _ => return None,
        })
    }

    /// Whether `ordering` (value against key) satisfies the relation.
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Relation::Gt => ordering == Greater,
            Relation::Ge => ordering != Less,
            Relation::Lt => ordering == Less,
            Relation::Le => ordering != Greater,
            Relation::Eq => ordering == Equal,
            Relation::Ne => ordering != Equal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    Octet,
    AsciiCasemap,
    AsciiNumeric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Part {
    All,
    LocalPart,
    Domain,
    /// RFC 5233: the local part before the separator...
    User,
    /// ...and after it.
    Detail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    pub match_type: MatchType,
    pub comparator: Comparator,
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cond {
    True,
    False,
    Not(Box<Cond>),
    AllOf(Vec<Cond>),
    AnyOf(Vec<Cond>),
    Exists(Vec<String>),
    Header {
        names: Vec<String>,
        matcher: Matcher,
        /// RFC 5260 `:index n [:last]`: only that field.
        index: Option<(u64, bool)>,
    },
    Address {
        part: Part,
        names: Vec<String>,
        matcher: Matcher,
        index: Option<(u64, bool)>,
    },
    /// RFC 5260 `date`: a header field's date, in a zone, one part.
    Date {
        zone: super::date::Zone,
        name: String,
        part: super::date::DatePart,
        matcher: Matcher,
        index: Option<(u64, bool)>,
    },
    /// RFC 7352 `duplicate`: whether this message's ID (a header field's
    /// value, or `uniqueid`) was seen before under `handle`.
    Duplicate {
        handle: String,
        header: Option<String>,
        unique_id: Option<String>,
        seconds: Option<u64>,
        last: bool,
    },
    /// RFC 5260 `currentdate`.
    CurrentDate {
        zone: super::date::Zone,
        part: super::date::DatePart,
        matcher: Matcher,
    },
    Envelope {
        part: Part,
        names: Vec<String>,
        matcher: Matcher,
    },
    SizeOver(u64),
    SizeUnder(u64),
    /// RFC 5173 `body`.
    Body {
        transform: BodyTransform,
        matcher: Matcher,
    },
    /// RFC 5229 `string`: the (expanded) sources against the keys.
    String {
        sources: Vec<String>,
        matcher: Matcher,
    },
    /// RFC 5232 `hasflag`: the flags held by the named variables (none:
    /// the internal one) against the keys.
    HasFlag {
        variables: Vec<String>,
        matcher: Matcher,
    },
    /// RFC 5435 `valid_notify_method`.
    ValidNotifyMethod(Vec<String>),
    /// RFC 5435 `notify_method_capability`.
    NotifyMethodCapability {
        uri: String,
        capability: String,
        matcher: Matcher,
    },
    /// RFC 5490 `mailboxexists`.
    MailboxExists(Vec<String>),
    /// RFC 8579 `specialuse_exists`: a mailbox (or any) with these uses.
    SpecialUseExists {
        mailbox: Option<String>,
        uses: Vec<String>,
    },
    /// RFC 5183 `environment`.
    Environment {
        name: String,
        matcher: Matcher,
    },
    /// RFC 5235 `spamtest` (`percent`: RFC 5235 spamtestplus).
    SpamTest {
        percent: bool,
        matcher: Matcher,
    },
}

struct Compiler {
    required: Vec<String>,
    /// Commands compiled so far, at most (a bound on script complexity).
    budget: usize,
}

/// Commands and tests a script may hold, at most.
const MAX_NODES: usize = 10_000;

pub fn compile(tree: &[Command]) -> Result<Program, Error> {
    let mut c = Compiler {
        required: Vec::new(),
        budget: MAX_NODES,
    };
    let cmds = if super::encoded::required(tree) {
        let mut decoded = tree.to_vec();
        super::encoded::decode_tree(&mut decoded)?;
        c.block(&decoded, true)?
    } else {
        c.block(tree, true)?
    };
    Ok(Program {
        cmds,
        variables: c.has("variables"),
        imap4flags: c.has("imap4flags"),
    })
}

/// RFC 5229 §3 `identifier`: a letter or `_`, then letters, digits, `_`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

fn err(line: u32, column: u32, message: impl Into<String>) -> Error {
    Error::at(line, column, message)
}

/// The arguments of a command or test, tags taken one by one.
struct Args<'a> {
    args: &'a [Arg],
    at: usize,
    line: u32,
    column: u32,
    what: &'a str,
}

impl<'a> Args<'a> {
    fn new(what: &'a str, args: &'a [Arg], line: u32, column: u32) -> Self {
        Args {
            args,
            at: 0,
            line,
            column,
            what,
        }
    }

    fn error(&self, message: impl Into<String>) -> Error {
        err(
            self.line,
            self.column,
            format!("{}: {}", self.what, message.into()),
        )
    }

    /// The next tag, if the next argument is one.
    fn tag(&mut self) -> Option<&'a str> {
        match self.args.get(self.at) {
            Some(Arg::Tag(t)) => {
                self.at += 1;
                Some(t.as_str())
            }
            _ => None,
        }
    }

    fn strings(&mut self) -> Result<Vec<String>, Error> {
        match self.args.get(self.at) {
            Some(Arg::Strings(s)) => {
                self.at += 1;
                Ok(s.clone())
            }
            _ => Err(self.error("expected a string or a string list")),
        }
    }

    fn string(&mut self) -> Result<String, Error> {
        let mut list = self.strings()?;
        if list.len() != 1 {
            return Err(self.error("expected a single string"));
        }
        Ok(list.remove(0))
    }

    fn number(&mut self) -> Result<u64, Error> {
        match self.args.get(self.at) {
            Some(Arg::Number(n)) => {
                self.at += 1;
                Ok(*n)
            }
            _ => Err(self.error("expected a number")),
        }
    }

    fn done(&self) -> Result<(), Error> {
        if self.at < self.args.len() {
            return Err(self.error("too many arguments"));
        }
        Ok(())
    }
}

impl Compiler {
    fn spend(&mut self, line: u32, column: u32) -> Result<(), Error> {
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or_else(|| err(line, column, "script too complex"))?;
        Ok(())
    }

    fn has(&self, extension: &str) -> bool {
        self.required.iter().any(|r| r == extension)
    }

    fn needs(&self, extension: &str, line: u32, column: u32) -> Result<(), Error> {
        if self.has(extension) {
            Ok(())
        } else {
            Err(err(
                line,
                column,
                format!("missing require \"{extension}\""),
            ))
        }
    }

    fn block(&mut self, commands: &[Command], top: bool) -> Result<Vec<Cmd>, Error> {
        let mut out: Vec<Cmd> = Vec::new();
        let mut requires_allowed = top;
        for command in commands {
            self.spend(command.line, command.column)?;
            let (line, column) = (command.line, command.column);
            if command.name == "require" {
                if !requires_allowed {
                    return Err(err(line, column, "require must come before other commands"));
                }
                self.require(command)?;
                continue;
            }
            requires_allowed = false;
            match command.name.as_str() {
                "if" => {
                    let cond = self.single_test(command)?;
                    let body = self.guarded_block(command, &cond)?;
                    if command.block.is_none() {
                        return Err(err(line, column, "if needs a block"));
                    }
                    out.push(Cmd::If(vec![(Some(cond), body)]));
                }
                "elsif" | "else" => {
                    let Some(Cmd::If(branches)) = out.last_mut() else {
                        return Err(err(line, column, format!("{} without if", command.name)));
                    };
                    if branches.last().is_some_and(|(c, _)| c.is_none()) {
                        return Err(err(line, column, format!("{} after else", command.name)));
                    }
                    let Some(block) = &command.block else {
                        return Err(err(line, column, format!("{} needs a block", command.name)));
                    };
                    let cond = if command.name == "elsif" {
                        Some(self.single_test(command)?)
                    } else {
                        if !command.args.is_empty() || !command.tests.is_empty() {
                            return Err(err(line, column, "else takes no test"));
                        }
                        None
                    };
                    let body = match &cond {
                        Some(c) => self.guarded_block(command, c)?,
                        None => self.block(block, false)?,
                    };
                    if let Some(Cmd::If(branches)) = out.last_mut() {
                        branches.push((cond, body));
                    }
                }
                _ => {
                    if command.block.is_some() {
                        return Err(err(
                            line,
                            column,
                            format!("{} takes no block", command.name),
                        ));
                    }
                    if !command.tests.is_empty() {
                        return Err(err(line, column, format!("{} takes no test", command.name)));
                    }
                    out.push(self.action(command)?);
                }
            }
        }
        Ok(out)
    }

    /// The block of an `if`/`elsif`. Under `ihave` (RFC 5463 §3) the
    /// extensions tested are known here: present, they may be used in the
    /// block; absent, the block is never run and is not compiled (it may
    /// use what we do not have).
    fn guarded_block(&mut self, command: &Command, cond: &Cond) -> Result<Vec<Cmd>, Error> {
        let block = command.block.as_deref().unwrap_or_default();
        if let (Cond::False, [test]) = (cond, command.tests.as_slice())
            && test.name == "ihave"
        {
            return Ok(Vec::new());
        }
        if let [test] = command.tests.as_slice()
            && test.name == "ihave"
        {
            for a in &test.args {
                if let Arg::Strings(names) = a {
                    self.required
                        .extend(names.iter().map(|n| n.to_ascii_lowercase()));
                }
            }
        }
        self.block(block, false)
    }

    fn require(&mut self, command: &Command) -> Result<(), Error> {
        let mut args = Args::new("require", &command.args, command.line, command.column);
        let names = args.strings()?;
        args.done()?;
        for name in names {
            let name = name.to_ascii_lowercase();
            if !EXTENSIONS.contains(&name.as_str()) {
                return Err(err(
                    command.line,
                    command.column,
                    format!("unsupported extension \"{name}\""),
                ));
            }
            self.required.push(name);
        }
        Ok(())
    }

    fn single_test(&mut self, command: &Command) -> Result<Cond, Error> {
        match command.tests.as_slice() {
            [test] if command.args.is_empty() => self.test(test),
            _ => Err(err(
                command.line,
                command.column,
                format!("{} needs exactly one test", command.name),
            )),
        }
    }

    fn action(&mut self, command: &Command) -> Result<Cmd, Error> {
        let (line, column) = (command.line, command.column);
        let mut args = Args::new(&command.name, &command.args, line, column);
        let cmd = match command.name.as_str() {
            "stop" => Cmd::Stop,
            "keep" => {
                let mut flags = None;
                while let Some(tag) = args.tag() {
                    match tag {
                        "flags" => {
                            self.needs("imap4flags", line, column)?;
                            flags = Some(args.strings()?);
                        }
                        other => return Err(args.error(format!("unknown tag :{other}"))),
                    }
                }
                Cmd::Keep { flags }
            }
            "discard" => Cmd::Discard,
            "reject" | "ereject" => {
                self.needs(&command.name, line, column)?;
                Cmd::Reject(args.string()?)
            }
            "fileinto" => {
                self.needs("fileinto", line, column)?;
                let (mut copy, mut create, mut flags, mut special_use) = (false, false, None, None);
                while let Some(tag) = args.tag() {
                    match tag {
                        "copy" => {
                            self.needs("copy", line, column)?;
                            copy = true;
                        }
                        // RFC 5490's :create, accepted as part of fileinto.
                        "create" => create = true,
                        "flags" => {
                            self.needs("imap4flags", line, column)?;
                            flags = Some(args.strings()?);
                        }
                        "specialuse" => {
                            self.needs("special-use", line, column)?;
                            special_use = Some(args.string()?);
                        }
                        other => return Err(args.error(format!("unknown tag :{other}"))),
                    }
                }
                let mailbox = args.string()?;
                Cmd::FileInto {
                    mailbox,
                    copy,
                    create,
                    flags,
                    special_use,
                }
            }
            "redirect" => {
                let mut copy = false;
                while let Some(tag) = args.tag() {
                    match tag {
                        "copy" => {
                            self.needs("copy", line, column)?;
                            copy = true;
                        }
                        other => return Err(args.error(format!("unknown tag :{other}"))),
                    }
                }
                let address = args.string()?;
                // With variables the address is known only at run time
                // (and checked then).
                let expands = self.has("variables") && address.contains("${");
                if !expands && crate::address::Address::parse(&address).is_err() {
                    return Err(args.error(format!("\"{address}\" is not an address")));
                }
                Cmd::Redirect { address, copy }
            }
            "set" => {
                self.needs("variables", line, column)?;
                let mut modifiers: Vec<Modifier> = Vec::new();
                while let Some(tag) = args.tag() {
                    let m = match tag {
                        "lower" => Modifier::Lower,
                        "upper" => Modifier::Upper,
                        "lowerfirst" => Modifier::LowerFirst,
                        "upperfirst" => Modifier::UpperFirst,
                        "quotewildcard" => Modifier::QuoteWildcard,
                        "length" => Modifier::Length,
                        "encodeurl" => {
                            self.needs("enotify", line, column)?;
                            Modifier::EncodeUrl
                        }
                        other => return Err(args.error(format!("unknown modifier :{other}"))),
                    };
                    if modifiers.iter().any(|o| o.precedence() == m.precedence()) {
                        return Err(
                            args.error(format!("two modifiers of the same precedence (:{tag})"))
                        );
                    }
                    modifiers.push(m);
                }
                modifiers.sort_by_key(|m| std::cmp::Reverse(m.precedence()));
                let name = args.string()?;
                if !is_identifier(&name) {
                    return Err(args.error(format!("\"{name}\" is not a variable name")));
                }
                let value = args.string()?;
                Cmd::Set {
                    name: name.to_ascii_lowercase(),
                    value,
                    modifiers,
                }
            }
            "setflag" | "addflag" | "removeflag" => {
                self.needs("imap4flags", line, column)?;
                let op = match command.name.as_str() {
                    "setflag" => FlagOp::Set,
                    "addflag" => FlagOp::Add,
                    _ => FlagOp::Remove,
                };
                let first = args.strings()?;
                let (variable, flags) = if args.at < args.args.len() {
                    let flags = args.strings()?;
                    match first.as_slice() {
                        [name] if is_identifier(name) => (Some(name.to_ascii_lowercase()), flags),
                        _ => return Err(args.error("the variable name must be one identifier")),
                    }
                } else {
                    (None, first)
                };
                Cmd::Flags {
                    op,
                    variable,
                    flags,
                }
            }
            "vacation" => {
                self.needs("vacation", line, column)?;
                let mut v = Vacation {
                    period: None,
                    subject: None,
                    from: None,
                    addresses: Vec::new(),
                    mime: false,
                    handle: None,
                    reason: String::new(),
                    fcc: None,
                };
                let mut fcc = FccTags::default();
                while let Some(tag) = args.tag() {
                    if self.fcc_tag(tag, &mut args, &mut fcc)? {
                        continue;
                    }
                    match tag {
                        "days" if v.period.is_none() => {
                            v.period = Some(args.number()?.saturating_mul(86_400));
                        }
                        "seconds" if v.period.is_none() => {
                            self.needs("vacation-seconds", line, column)?;
                            v.period = Some(args.number()?);
                        }
                        "subject" => v.subject = Some(args.string()?),
                        "from" => v.from = Some(args.string()?),
                        "addresses" => v.addresses = args.strings()?,
                        "mime" => v.mime = true,
                        "handle" => v.handle = Some(args.string()?),
                        other => return Err(args.error(format!("unexpected tag :{other}"))),
                    }
                }
                v.reason = args.string()?;
                v.fcc = fcc.finish(&args)?;
                Cmd::Vacation(Box::new(v))
            }
            "notify" => {
                self.needs("enotify", line, column)?;
                let mut n = Notify {
                    method: String::new(),
                    from: None,
                    importance: None,
                    options: Vec::new(),
                    message: None,
                    fcc: None,
                };
                let mut fcc = FccTags::default();
                while let Some(tag) = args.tag() {
                    if self.fcc_tag(tag, &mut args, &mut fcc)? {
                        continue;
                    }
                    match tag {
                        "from" => n.from = Some(args.string()?),
                        "importance" => {
                            let i = args.string()?;
                            if !["1", "2", "3"].contains(&i.as_str()) {
                                return Err(args.error(":importance is \"1\", \"2\" or \"3\""));
                            }
                            n.importance = Some(i);
                        }
                        "options" => n.options = args.strings()?,
                        "message" => n.message = Some(args.string()?),
                        other => return Err(args.error(format!("unexpected tag :{other}"))),
                    }
                }
                n.method = args.string()?;
                let expands = self.has("variables") && n.method.contains("${");
                if !expands && super::notify::Mailto::parse(&n.method).is_err() {
                    return Err(args.error(format!(
                        "\"{}\" is not a notification method we support (mailto:)",
                        n.method
                    )));
                }
                n.fcc = fcc.finish(&args)?;
                Cmd::Notify(Box::new(n))
            }
            "error" => {
                self.needs("ihave", line, column)?;
                Cmd::Error(args.string()?)
            }
            "addheader" => {
                self.needs("editheader", line, column)?;
                let last = match args.tag() {
                    Some("last") => true,
                    Some(other) => return Err(args.error(format!("unexpected tag :{other}"))),
                    None => false,
                };
                let name = args.string()?;
                if !super::editheader::valid_name(&name) {
                    return Err(args.error(format!("\"{name}\" is not a header field name")));
                }
                let value = args.string()?;
                Cmd::AddHeader { last, name, value }
            }
            "deleteheader" => {
                self.needs("editheader", line, column)?;
                // RFC 5293 §5 has its own :index n [:last] (without
                // requiring "index").
                let (index, rest) = self.take_index(&command.args, "editheader", line, column)?;
                let mut args = Args::new("deleteheader", &rest, line, column);
                let (_, (match_type, comparator)) = self.tags(&mut args, false)?;
                let name = args.string()?;
                if !super::editheader::valid_name(&name) {
                    return Err(args.error(format!("\"{name}\" is not a header field name")));
                }
                let matcher = if args.at < args.args.len() {
                    Some(Matcher {
                        match_type,
                        comparator,
                        keys: args.strings()?,
                    })
                } else {
                    None
                };
                args.done()?;
                return Ok(Cmd::DeleteHeader {
                    index,
                    name,
                    matcher,
                });
            }
            "include" => {
                self.needs("include", line, column)?;
                let (mut location, mut once, mut optional) = (None, false, false);
                while let Some(tag) = args.tag() {
                    match tag {
                        "personal" if location.is_none() => location = Some(Location::Personal),
                        "global" if location.is_none() => location = Some(Location::Global),
                        "once" => once = true,
                        "optional" => optional = true,
                        other => return Err(args.error(format!("unexpected tag :{other}"))),
                    }
                }
                let name = args.string()?;
                super::scripts::check_name(&name).map_err(|e| args.error(e.message))?;
                Cmd::Include {
                    location: location.unwrap_or(Location::Personal),
                    once,
                    optional,
                    name,
                }
            }
            "return" => {
                self.needs("include", line, column)?;
                Cmd::Return
            }
            "global" => {
                self.needs("include", line, column)?;
                self.needs("variables", line, column)?;
                let names = args.strings()?;
                if let Some(bad) = names.iter().find(|n| !is_identifier(n)) {
                    return Err(args.error(format!("\"{bad}\" is not a variable name")));
                }
                Cmd::Global(names.iter().map(|n| n.to_ascii_lowercase()).collect())
            }
            other => return Err(err(line, column, format!("unknown command \"{other}\""))),
        };
        args.done()?;
        Ok(cmd)
    }

    /// A test, with its `:regex` keys checked (the ones that are not
    /// built from variables at run time).
    fn test(&mut self, test: &Test) -> Result<Cond, Error> {
        let cond = self.test_inner(test)?;
        let matcher = match &cond {
            Cond::Header { matcher, .. }
            | Cond::Address { matcher, .. }
            | Cond::Envelope { matcher, .. }
            | Cond::Body { matcher, .. }
            | Cond::String { matcher, .. }
            | Cond::HasFlag { matcher, .. }
            | Cond::Environment { matcher, .. }
            | Cond::SpamTest { matcher, .. }
            | Cond::Date { matcher, .. }
            | Cond::CurrentDate { matcher, .. } => Some(matcher),
            _ => None,
        };
        if let Some(m) = matcher
            && m.match_type == MatchType::Regex
        {
            let fold = m.comparator == Comparator::AsciiCasemap;
            for key in &m.keys {
                let dynamic = self.has("variables") && key.contains("${");
                if !dynamic && super::matching::regex(key, fold).is_none() {
                    return Err(err(
                        test.line,
                        test.column,
                        format!("\"{key}\" is not a valid regular expression"),
                    ));
                }
            }
        }
        Ok(cond)
    }

    fn test_inner(&mut self, test: &Test) -> Result<Cond, Error> {
        self.spend(test.line, test.column)?;
        let (line, column) = (test.line, test.column);
        let no_tests = |what: &str| {
            if test.tests.is_empty() {
                Ok(())
            } else {
                Err(err(line, column, format!("{what} takes no nested test")))
            }
        };
        let mut args = Args::new(&test.name, &test.args, line, column);
        let cond = match test.name.as_str() {
            "true" => Cond::True,
            "false" => Cond::False,
            "not" => match test.tests.as_slice() {
                [inner] => Cond::Not(Box::new(self.test(inner)?)),
                _ => return Err(err(line, column, "not needs one test")),
            },
            "allof" | "anyof" => {
                if test.tests.is_empty() {
                    return Err(err(line, column, format!("{} needs tests", test.name)));
                }
                let inner = test
                    .tests
                    .iter()
                    .map(|t| self.test(t))
                    .collect::<Result<Vec<_>, _>>()?;
                if test.name == "allof" {
                    Cond::AllOf(inner)
                } else {
                    Cond::AnyOf(inner)
                }
            }
            "exists" => {
                no_tests("exists")?;
                Cond::Exists(args.strings()?)
            }
            "size" => {
                no_tests("size")?;
                let cond = match args.tag() {
                    Some("over") => Cond::SizeOver(args.number()?),
                    Some("under") => Cond::SizeUnder(args.number()?),
                    _ => return Err(args.error("needs :over or :under")),
                };
                args.done()?;
                return Ok(cond);
            }
            "header" | "address" | "envelope" => {
                no_tests(&test.name)?;
                if test.name == "envelope" {
                    self.needs("envelope", line, column)?;
                }
                let (index, rest) = if test.name == "envelope" {
                    (None, test.args.clone())
                } else {
                    self.take_index(&test.args, "index", line, column)?
                };
                let mut args = Args::new(&test.name, &rest, line, column);
                let (part, matcher_tags) = self.tags(&mut args, test.name != "header")?;
                let names = args.strings()?;
                let keys = args.strings()?;
                let matcher = Matcher {
                    match_type: matcher_tags.0,
                    comparator: matcher_tags.1,
                    keys,
                };
                args.done()?;
                return Ok(match test.name.as_str() {
                    "header" => Cond::Header {
                        names,
                        matcher,
                        index,
                    },
                    "address" => Cond::Address {
                        part,
                        names,
                        matcher,
                        index,
                    },
                    _ => Cond::Envelope {
                        part,
                        names,
                        matcher,
                    },
                });
            }
            "duplicate" => {
                no_tests("duplicate")?;
                self.needs("duplicate", line, column)?;
                let (mut handle, mut header, mut unique_id, mut seconds, mut last) =
                    (String::new(), None, None, None, false);
                while let Some(tag) = args.tag() {
                    match tag {
                        "handle" => handle = args.string()?,
                        "header" if unique_id.is_none() => header = Some(args.string()?),
                        "uniqueid" if header.is_none() => unique_id = Some(args.string()?),
                        "seconds" => seconds = Some(args.number()?),
                        "last" => last = true,
                        other => return Err(args.error(format!("unexpected tag :{other}"))),
                    }
                }
                Cond::Duplicate {
                    handle,
                    header,
                    unique_id,
                    seconds,
                    last,
                }
            }
            "date" | "currentdate" => {
                no_tests(&test.name)?;
                self.needs("date", line, column)?;
                let (index, rest) = if test.name == "date" {
                    self.take_index(&test.args, "index", line, column)?
                } else {
                    (None, test.args.clone())
                };
                // :zone / :originalzone among the match tags, taken first.
                let mut zone = super::date::Zone::Local;
                let mut others: Vec<Arg> = Vec::new();
                let mut i = 0;
                while let Some(a) = rest.get(i) {
                    match a {
                        Arg::Tag(t) if t == "zone" => {
                            let Some(Arg::Strings(z)) = rest.get(i + 1) else {
                                return Err(err(line, column, ":zone needs \"+hhmm\""));
                            };
                            zone = z
                                .first()
                                .filter(|_| z.len() == 1)
                                .and_then(|z| super::date::Zone::parse(z))
                                .ok_or_else(|| err(line, column, ":zone needs \"+hhmm\""))?;
                            i += 2;
                            continue;
                        }
                        Arg::Tag(t) if t == "originalzone" && test.name == "date" => {
                            zone = super::date::Zone::Original;
                        }
                        other => others.push(other.clone()),
                    }
                    i += 1;
                }
                let mut args = Args::new(&test.name, &others, line, column);
                let (_, (match_type, comparator)) = self.tags(&mut args, false)?;
                let name = if test.name == "date" {
                    Some(args.string()?)
                } else {
                    None
                };
                let part_name = args.string()?;
                let part = super::date::DatePart::parse(&part_name)
                    .ok_or_else(|| args.error(format!("\"{part_name}\" is not a date part")))?;
                let keys = args.strings()?;
                args.done()?;
                let matcher = Matcher {
                    match_type,
                    comparator,
                    keys,
                };
                return Ok(match name {
                    Some(name) => Cond::Date {
                        zone,
                        name,
                        part,
                        matcher,
                        index,
                    },
                    None => Cond::CurrentDate {
                        zone,
                        part,
                        matcher,
                    },
                });
            }
            "body" => {
                no_tests("body")?;
                self.needs("body", line, column)?;
                let mut transform = BodyTransform::Text;
                // The transform is a tag among the others (RFC 5173 §5):
                // taken out first, then comparator and match type read.
                let mut rest: Vec<Arg> = Vec::new();
                let mut i = 0;
                while let Some(a) = test.args.get(i) {
                    match a {
                        Arg::Tag(t) if t == "raw" => transform = BodyTransform::Raw,
                        Arg::Tag(t) if t == "text" => transform = BodyTransform::Text,
                        Arg::Tag(t) if t == "content" => {
                            let Some(Arg::Strings(types)) = test.args.get(i + 1) else {
                                return Err(err(line, column, ":content needs content types"));
                            };
                            transform = BodyTransform::Content(
                                types.iter().map(|t| t.to_ascii_lowercase()).collect(),
                            );
                            i += 2;
                            continue;
                        }
                        other => rest.push(other.clone()),
                    }
                    i += 1;
                }
                let mut args = Args::new("body", &rest, line, column);
                let (_, (match_type, comparator)) = self.tags(&mut args, false)?;
                let keys = args.strings()?;
                args.done()?;
                return Ok(Cond::Body {
                    transform,
                    matcher: Matcher {
                        match_type,
                        comparator,
                        keys,
                    },
                });
            }
            "string" => {
                no_tests("string")?;
                self.needs("variables", line, column)?;
                let (_, (match_type, comparator)) = self.tags(&mut args, false)?;
                let sources = args.strings()?;
                let keys = args.strings()?;
                Cond::String {
                    sources,
                    matcher: Matcher {
                        match_type,
                        comparator,
                        keys,
                    },
                }
            }
            "ihave" => {
                no_tests("ihave")?;
                self.needs("ihave", line, column)?;
                let names = args.strings()?;
                let all = names
                    .iter()
                    .all(|n| EXTENSIONS.contains(&n.to_ascii_lowercase().as_str()));
                if all { Cond::True } else { Cond::False }
            }
            "valid_notify_method" => {
                no_tests("valid_notify_method")?;
                self.needs("enotify", line, column)?;
                Cond::ValidNotifyMethod(args.strings()?)
            }
            "notify_method_capability" => {
                no_tests("notify_method_capability")?;
                self.needs("enotify", line, column)?;
                let (_, (match_type, comparator)) = self.tags(&mut args, false)?;
                let uri = args.string()?;
                let capability = args.string()?.to_ascii_lowercase();
                let keys = args.strings()?;
                Cond::NotifyMethodCapability {
                    uri,
                    capability,
                    matcher: Matcher {
                        match_type,
                        comparator,
                        keys,
                    },
                }
            }
            "mailboxexists" => {
                no_tests("mailboxexists")?;
                self.needs("mailbox", line, column)?;
                Cond::MailboxExists(args.strings()?)
            }
            "specialuse_exists" => {
                no_tests("specialuse_exists")?;
                self.needs("special-use", line, column)?;
                let first = args.strings()?;
                if args.at < args.args.len() {
                    let uses = args.strings()?;
                    let [mailbox] = first.as_slice() else {
                        return Err(args.error("expected one mailbox name"));
                    };
                    Cond::SpecialUseExists {
                        mailbox: Some(mailbox.clone()),
                        uses,
                    }
                } else {
                    Cond::SpecialUseExists {
                        mailbox: None,
                        uses: first,
                    }
                }
            }
            "environment" => {
                no_tests("environment")?;
                self.needs("environment", line, column)?;
                let (_, (match_type, comparator)) = self.tags(&mut args, false)?;
                let name = args.string()?.to_ascii_lowercase();
                let keys = args.strings()?;
                Cond::Environment {
                    name,
                    matcher: Matcher {
                        match_type,
                        comparator,
                        keys,
                    },
                }
            }
            "spamtest" => {
                no_tests("spamtest")?;
                if !self.has("spamtest") && !self.has("spamtestplus") {
                    self.needs("spamtest", line, column)?;
                }
                let mut percent = false;
                let mut rest: Vec<Arg> = Vec::new();
                for a in &test.args {
                    match a {
                        Arg::Tag(t) if t == "percent" => {
                            self.needs("spamtestplus", line, column)?;
                            percent = true;
                        }
                        other => rest.push(other.clone()),
                    }
                }
                let mut args = Args::new("spamtest", &rest, line, column);
                let (_, (match_type, comparator)) = self.tags(&mut args, false)?;
                let keys = args.strings()?;
                args.done()?;
                return Ok(Cond::SpamTest {
                    percent,
                    matcher: Matcher {
                        match_type,
                        comparator,
                        keys,
                    },
                });
            }
            "hasflag" => {
                no_tests("hasflag")?;
                self.needs("imap4flags", line, column)?;
                let (_, (match_type, comparator)) = self.tags(&mut args, false)?;
                let first = args.strings()?;
                let (variables, keys) = if args.at < args.args.len() {
                    let keys = args.strings()?;
                    if let Some(bad) = first.iter().find(|n| !is_identifier(n)) {
                        return Err(args.error(format!("\"{bad}\" is not a variable name")));
                    }
                    (first.iter().map(|n| n.to_ascii_lowercase()).collect(), keys)
                } else {
                    (Vec::new(), first)
                };
                Cond::HasFlag {
                    variables,
                    matcher: Matcher {
                        match_type,
                        comparator,
                        keys,
                    },
                }
            }
            other => return Err(err(line, column, format!("unknown test \"{other}\""))),
        };
        args.done()?;
        Ok(cond)
    }

    /// RFC 8580's tags on `vacation` and `notify`; true if `tag` was one.
    fn fcc_tag(&self, tag: &str, args: &mut Args<'_>, fcc: &mut FccTags) -> Result<bool, Error> {
        let (line, column) = (args.line, args.column);
        match tag {
            "fcc" => {
                self.needs("fcc", line, column)?;
                fcc.mailbox = Some(args.string()?);
            }
            "create" => fcc.create = true,
            "flags" => {
                self.needs("imap4flags", line, column)?;
                fcc.flags = Some(args.strings()?);
            }
            "specialuse" => {
                self.needs("special-use", line, column)?;
                fcc.special_use = Some(args.string()?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `:index n [:last]` (RFC 5260 §6, RFC 5293 §5), taken out of the
    /// arguments; `extension` is the one that must be required for it.
    fn take_index(
        &self,
        args: &[Arg],
        extension: &str,
        line: u32,
        column: u32,
    ) -> Result<Indexed, Error> {
        let (mut index, mut last) = (None, false);
        let mut rest = Vec::new();
        let mut i = 0;
        while let Some(a) = args.get(i) {
            match a {
                Arg::Tag(t) if t == "index" => {
                    self.needs(extension, line, column)?;
                    let Some(Arg::Number(n)) = args.get(i + 1) else {
                        return Err(err(line, column, ":index needs a number"));
                    };
                    if *n == 0 {
                        return Err(err(line, column, ":index counts from 1"));
                    }
                    index = Some(*n);
                    i += 2;
                    continue;
                }
                Arg::Tag(t) if t == "last" => {
                    self.needs(extension, line, column)?;
                    last = true;
                }
                other => rest.push(other.clone()),
            }
            i += 1;
        }
        if last && index.is_none() {
            return Err(err(line, column, ":last needs :index"));
        }
        Ok((index.map(|n| (n, last)), rest))
    }

    /// Match type, comparator and (for address tests) address part, in
    /// any order (§2.7).
    fn tags(
        &self,
        args: &mut Args<'_>,
        address: bool,
    ) -> Result<(Part, (MatchType, Comparator)), Error> {
        let (mut part, mut match_type, mut comparator) = (None, None, None);
        let (line, column) = (args.line, args.column);
        while let Some(tag) = args.tag() {
            match tag {
                "value" | "count" if match_type.is_none() => {
                    self.needs("relational", line, column)?;
                    let op = args.string()?;
                    let relation = Relation::parse(&op).ok_or_else(|| {
                        args.error(format!("\"{op}\" is not a relational operator"))
                    })?;
                    match_type = Some(if tag == "value" {
                        MatchType::Value(relation)
                    } else {
                        MatchType::Count(relation)
                    });
                }
                "regex" if match_type.is_none() => {
                    self.needs("regex", line, column)?;
                    match_type = Some(MatchType::Regex);
                }
                "is" | "contains" | "matches" if match_type.is_none() => {
                    match_type = Some(match tag {
                        "is" => MatchType::Is,
                        "contains" => MatchType::Contains,
                        _ => MatchType::Matches,
                    });
                }
                "comparator" if comparator.is_none() => {
                    let name = args.string()?.to_ascii_lowercase();
                    comparator = Some(match name.as_str() {
                        "i;octet" => Comparator::Octet,
                        "i;ascii-casemap" => Comparator::AsciiCasemap,
                        "i;ascii-numeric" => {
                            self.needs("comparator-i;ascii-numeric", line, column)?;
                            Comparator::AsciiNumeric
                        }
                        other => {
                            return Err(args.error(format!("unknown comparator \"{other}\"")));
                        }
                    });
                }
                "all" | "localpart" | "domain" | "user" | "detail" if address && part.is_none() => {
                    if matches!(tag, "user" | "detail") {
                        self.needs("subaddress", line, column)?;
                    }
                    part = Some(match tag {
                        "all" => Part::All,
                        "localpart" => Part::LocalPart,
                        "domain" => Part::Domain,
                        "user" => Part::User,
                        _ => Part::Detail,
                    });
                }
                other => return Err(args.error(format!("unexpected tag :{other}"))),
            }
        }
        Ok((
            part.unwrap_or(Part::All),
            (
                match_type.unwrap_or(MatchType::Is),
                comparator.unwrap_or(Comparator::AsciiCasemap),
            ),
        ))
    }
}
