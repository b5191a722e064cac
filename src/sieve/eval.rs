//! Running a compiled script against one message for one recipient
//! (RFC 5228 §2.10): the tests read the message's header fields (decoded)
//! and the envelope; the actions collect, with the implicit keep that
//! `fileinto`, `redirect` and `discard` cancel and `keep` restores.
//! Bounded by [`Limits`]: tests and commands per run, actions, redirects.

use super::Error;
use super::compile::{
    BodyTransform, Cmd, Cond, Fcc, FlagOp, Location, Matcher, Notify, Part, Program, Vacation,
};
use super::matching::{addresses, judge};
use super::variables::{Variables, flag_set, modify};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Includes one run may make (Pigeonhole's `sieve_include_max_includes`).
const MAX_INCLUDES: usize = 255;

/// What a run may ask of the place it runs in: the defaults are those of
/// a run detached from any store (tests, benchmarks).
pub trait Context {
    /// The script `include` names (RFC 6609).
    fn load(&self, _location: Location, _name: &str) -> Option<Arc<Program>> {
        None
    }
    /// RFC 5490 `mailboxexists`.
    fn mailbox_exists(&self, _name: &str) -> bool {
        false
    }
    /// RFC 8579: the name of the user's mailbox with this special use.
    fn special_use(&self, _attribute: &str) -> Option<String> {
        None
    }
    /// RFC 8579 `specialuse_exists` with a mailbox: whether it has them.
    fn has_special_use(&self, _mailbox: &str, _attribute: &str) -> bool {
        false
    }
    /// The spam filter's score and threshold for this recipient, if the
    /// message was tested (RFC 5235 `spamtest`).
    fn spam(&self) -> Option<(f64, f64)> {
        None
    }
    /// RFC 5183 `environment` items beyond the fixed ones.
    fn environment(&self, _name: &str) -> Option<String> {
        None
    }
    /// RFC 7352 `duplicate`: whether `id` was seen under `handle` within
    /// `seconds` (0: the configured default); records it now (with
    /// `last`, a seen one's time moves on too). An error (the records
    /// cannot be read) fails the run, so that the message is kept rather
    /// than discarded as a duplicate.
    fn duplicate(
        &self,
        _handle: &str,
        _id: &str,
        _seconds: u64,
        _last: bool,
    ) -> Result<bool, String> {
        Ok(false)
    }
    /// Seconds since the epoch (`currentdate`).
    fn now(&self) -> i64 {
        crate::rfc5322::now_unix()
    }
}

/// A run with nothing around it: no includes, no mailboxes.
pub struct Detached;

impl Context for Detached {}

/// What one run may do, at most.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_redirects: usize,
    pub max_actions: usize,
    /// Tests and commands evaluated.
    pub max_steps: usize,
    /// Scripts included within each other, at most.
    pub max_include_depth: usize,
    /// `addheader`/`deleteheader` commands one run may carry out.
    pub max_header_edits: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_redirects: 4,
            max_actions: 32,
            max_steps: 100_000,
            max_include_depth: 10,
            max_header_edits: 64,
        }
    }
}

/// What the script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Into the mailbox the message goes to without a script, with these
    /// IMAP flags (RFC 5232).
    Keep {
        flags: Vec<String>,
    },
    FileInto {
        mailbox: String,
        create: bool,
        flags: Vec<String>,
    },
    Redirect(String),
    Discard,
    /// RFC 5429: refused; the sender gets a notice with this reason.
    Reject(String),
    /// RFC 5230: an auto-reply, if the delivery side finds it due (its
    /// strings expanded).
    Vacation(Box<Vacation>),
    /// RFC 5435: a notification (its strings expanded, the method a
    /// valid `mailto:` URI).
    Notify(Box<Notify>),
}

impl Action {
    /// A plain `keep`.
    pub fn keep() -> Action {
        Action::Keep { flags: Vec::new() }
    }

    /// Whether two actions deliver to the same place (then the later one's
    /// flags win, and it is done once).
    fn same_target(&self, other: &Action) -> bool {
        match (self, other) {
            (Action::Keep { .. }, Action::Keep { .. }) => true,
            (Action::FileInto { mailbox: a, .. }, Action::FileInto { mailbox: b, .. }) => a == b,
            _ => self == other,
        }
    }
}

/// What a run decided: the actions, and the message as the script
/// edited it (`editheader`), if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub actions: Vec<Action>,
    pub edited: Option<Vec<u8>>,
}

/// A message's header fields, read once: decoded values, and where each
/// field starts (for `editheader`).
pub struct Fields {
    pub headers: Vec<(String, String)>,
    pub starts: Vec<usize>,
}

impl Fields {
    pub fn of(message: &[u8]) -> Fields {
        let (headers, starts) = Input::fields_of(message);
        Fields { headers, starts }
    }
}

/// The message and its envelope, as the tests see them.
pub struct Input<'a> {
    /// Header fields in order: name and decoded, unfolded value.
    pub headers: &'a [(String, String)],
    /// Where each of `headers` starts in `message`.
    pub starts: &'a [usize],
    pub envelope_from: &'a str,
    pub envelope_to: &'a str,
    /// The address extension separator (`+`) for :user and :detail.
    pub delimiter: &'a str,
    /// The whole message, for `body`.
    pub message: &'a [u8],
}

impl Input<'_> {
    /// The body as sent (after the header section), for `body :raw`.
    fn raw_body(&self) -> String {
        let end = crate::rfc5322::scan_headers(self.message).end;
        let body = self.message.get(end..).unwrap_or_default();
        String::from_utf8_lossy(body.get(..body.len().min(1 << 20)).unwrap_or(body)).into_owned()
    }

    /// The header section of `message`, decoded by mail-parser (RFC 2047
    /// encoded words, folding), and where each field starts.
    pub fn fields_of(message: &[u8]) -> (Vec<(String, String)>, Vec<usize>) {
        let end = crate::rfc5322::scan_headers(message).end;
        let header = message.get(..end).unwrap_or(message);
        let Some(parsed) = mail_parser::MessageParser::new().parse_headers(header) else {
            return (Vec::new(), Vec::new());
        };
        let starts = parsed
            .headers()
            .iter()
            .map(|h| h.offset_field as usize)
            .collect();
        let headers = parsed
            .headers()
            .iter()
            .map(|h| {
                let raw = header
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let value = match &h.value {
                    mail_parser::HeaderValue::Text(t) => t.to_string(),
                    _ => unfold(&raw),
                };
                (h.name.as_str().to_string(), value)
            })
            .collect();
        (headers, starts)
    }
}

fn unfold(raw: &str) -> String {
    raw.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

struct Run<'a> {
    input: &'a Input<'a>,
    context: &'a dyn Context,
    /// What the script being run required.
    variables_on: bool,
    imap4flags_on: bool,
    /// Some script of the run required imap4flags (for the implicit keep).
    imap4flags_any: bool,
    limits: Limits,
    actions: Vec<Action>,
    implicit_keep: bool,
    steps: usize,
    /// The body in the forms `body` tests read, each made on first use.
    bodies: Bodies,
    redirects: usize,
    /// The current script's variables...
    variables: Variables,
    /// ...the names it declared `global`...
    declared: HashSet<String>,
    /// ...and the values of global variables (RFC 6609 §3.3).
    globals: HashMap<String, String>,
    /// Scripts being included, innermost last (loops are errors).
    stack: Vec<(Location, String)>,
    /// Scripts included so far (`:once`).
    included: HashSet<(Location, String)>,
    includes: usize,
    /// RFC 5232's internal flag variable.
    flags: Vec<String>,
    /// The header fields once a script edited them (RFC 5293).
    fields: Option<Vec<super::editheader::Field>>,
    header_edits: usize,
}

enum Flow {
    Next,
    Stop,
    /// RFC 6609 `return`: ends the current script only.
    Return,
}

/// Runs `program`; the actions to carry out. An error (a bound hit) means
/// the caller keeps the message, as RFC 5228 §2.10.6 asks.
pub fn run(program: &Program, input: &Input<'_>, limits: Limits) -> Result<Vec<Action>, Error> {
    run_all(&[program], input, limits, &Detached).map(|o| o.actions)
}

/// Runs `programs` one after the other as one execution (an admin's
/// scripts before and after the user's, as Pigeonhole's `sieve_before`
/// and `sieve_after`): the actions add up, the implicit keep is shared,
/// and `stop` in any of them ends the run.
pub fn run_all(
    programs: &[&Program],
    input: &Input<'_>,
    limits: Limits,
    context: &dyn Context,
) -> Result<Outcome, Error> {
    let mut r = Run {
        input,
        context,
        variables_on: false,
        imap4flags_on: false,
        imap4flags_any: false,
        limits,
        actions: Vec::new(),
        implicit_keep: true,
        steps: 0,
        bodies: Bodies::default(),
        redirects: 0,
        variables: Variables::default(),
        declared: HashSet::new(),
        globals: HashMap::new(),
        stack: Vec::new(),
        included: HashSet::new(),
        includes: 0,
        flags: Vec::new(),
        fields: None,
        header_edits: 0,
    };
    for program in programs {
        if let Flow::Stop = r.enter(program)? {
            break;
        }
    }
    r.finish()
}

impl Run<'_> {
    /// The implicit keep and the rules on combining actions.
    fn finish(mut self) -> Result<Outcome, Error> {
        let r = &mut self;
        if r.implicit_keep && !r.actions.iter().any(|a| matches!(a, Action::Keep { .. })) {
            // RFC 5232 §5: the implicit keep takes the internal flags too.
            let flags = if r.imap4flags_any {
                r.flags.clone()
            } else {
                Vec::new()
            };
            r.actions.push(Action::Keep { flags });
        }
        // `discard` only cancels the implicit keep; with other actions it
        // is no action of its own.
        if r.actions.len() > 1 {
            r.actions.retain(|a| *a != Action::Discard);
        }
        // RFC 5429 §2.1: reject does not go with delivering the message.
        let rejects = r.actions.iter().any(|a| matches!(a, Action::Reject(_)));
        let delivers = r
            .actions
            .iter()
            .any(|a| matches!(a, Action::Keep { .. } | Action::FileInto { .. }));
        if rejects && delivers {
            return Err(Error::runtime("reject together with keep or fileinto"));
        }
        // RFC 5230 §4.7: a vacation reply does not go with a reject.
        if rejects && r.actions.iter().any(|a| matches!(a, Action::Vacation(_))) {
            return Err(Error::runtime("vacation together with reject"));
        }
        let edited = self.fields.as_ref().map(|fields| {
            let end = crate::rfc5322::scan_headers(self.input.message).end;
            super::editheader::rebuild(self.input.message, fields, end)
        });
        Ok(Outcome {
            actions: self.actions,
            edited,
        })
    }

    /// The header fields, to edit: the message's own until now.
    fn fields_mut(&mut self) -> Result<&mut Vec<super::editheader::Field>, Error> {
        self.header_edits += 1;
        if self.header_edits > self.limits.max_header_edits {
            return Err(Error::runtime(format!(
                "more than {} header edits",
                self.limits.max_header_edits
            )));
        }
        let input = self.input;
        Ok(self.fields.get_or_insert_with(|| {
            let end = crate::rfc5322::scan_headers(input.message).end;
            super::editheader::fields(input.headers, input.starts, end)
        }))
    }

    /// Runs one script in its own scope of variables (RFC 6609 §3.3:
    /// only those it declares `global` are shared); `return` ends it.
    fn enter(&mut self, program: &Program) -> Result<Flow, Error> {
        let saved = (
            std::mem::take(&mut self.variables),
            std::mem::take(&mut self.declared),
            self.variables_on,
            self.imap4flags_on,
        );
        self.variables_on = program.variables;
        self.imap4flags_on = program.imap4flags;
        self.imap4flags_any |= program.imap4flags;
        let flow = self.block(&program.cmds);
        (
            self.variables,
            self.declared,
            self.variables_on,
            self.imap4flags_on,
        ) = saved;
        // Globals the includer declared may have changed meanwhile.
        for name in self.declared.clone() {
            let value = self.globals.get(&name).cloned().unwrap_or_default();
            self.variables.set(&name, value)?;
        }
        Ok(match flow? {
            Flow::Stop => Flow::Stop,
            Flow::Next | Flow::Return => Flow::Next,
        })
    }

    fn include(
        &mut self,
        location: Location,
        once: bool,
        optional: bool,
        name: &str,
    ) -> Result<Flow, Error> {
        let key = (location, name.to_string());
        if once && self.included.contains(&key) {
            return Ok(Flow::Next);
        }
        if self.stack.contains(&key) {
            return Err(Error::runtime(format!("\"{name}\" includes itself")));
        }
        if self.stack.len() >= self.limits.max_include_depth {
            return Err(Error::runtime(format!(
                "includes nested deeper than {}",
                self.limits.max_include_depth
            )));
        }
        self.includes += 1;
        if self.includes > MAX_INCLUDES {
            return Err(Error::runtime(format!("more than {MAX_INCLUDES} includes")));
        }
        let Some(program) = self.context.load(location, name) else {
            if optional {
                return Ok(Flow::Next);
            }
            return Err(Error::runtime(format!(
                "the included script \"{name}\" does not exist"
            )));
        };
        self.included.insert(key.clone());
        self.stack.push(key);
        let flow = self.enter(&program);
        self.stack.pop();
        flow
    }

    /// Sets a variable, in the shared store too when it is global here.
    fn set_var(&mut self, name: &str, value: String) -> Result<(), Error> {
        if self.declared.contains(name) {
            self.globals.insert(name.to_string(), value.clone());
        }
        self.variables.set(name, value)
    }
}

impl Run<'_> {
    fn step(&mut self) -> Result<(), Error> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(Error::runtime("the script ran too long"));
        }
        Ok(())
    }

    fn add(&mut self, action: Action) -> Result<(), Error> {
        if let Some(existing) = self.actions.iter_mut().find(|a| a.same_target(&action)) {
            *existing = action;
            return Ok(());
        }
        if self.actions.len() >= self.limits.max_actions {
            return Err(Error::runtime(format!(
                "more than {} actions",
                self.limits.max_actions
            )));
        }
        self.actions.push(action);
        Ok(())
    }

    /// A string of the script as the run sees it: expanded when the
    /// script uses variables.
    fn ex<'s>(&self, s: &'s str) -> Cow<'s, str> {
        if self.variables_on {
            self.variables.expand(s)
        } else {
            Cow::Borrowed(s)
        }
    }

    fn ex_fcc(&self, fcc: &Option<Fcc>) -> Option<Fcc> {
        fcc.as_ref().map(|f| Fcc {
            mailbox: self.ex(&f.mailbox).into_owned(),
            create: f.create,
            flags: f
                .flags
                .as_ref()
                .map(|list| flag_set(self.ex_all(list).iter().map(|s| s.as_ref()))),
            special_use: f.special_use.as_deref().map(|s| self.ex(s).into_owned()),
        })
    }

    fn ex_all<'s>(&self, list: &'s [String]) -> Vec<Cow<'s, str>> {
        list.iter().map(|s| self.ex(s)).collect()
    }

    /// The flags an action takes: its `:flags`, else the internal ones.
    fn action_flags(&self, explicit: &Option<Vec<String>>) -> Vec<String> {
        match explicit {
            Some(list) => flag_set(self.ex_all(list).iter().map(|s| s.as_ref())),
            None if self.imap4flags_on => self.flags.clone(),
            None => Vec::new(),
        }
    }

    fn block(&mut self, commands: &[Cmd]) -> Result<Flow, Error> {
        for cmd in commands {
            self.step()?;
            match self.command(cmd)? {
                Flow::Next => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Next)
    }

    fn command(&mut self, cmd: &Cmd) -> Result<Flow, Error> {
        match cmd {
            Cmd::If(branches) => {
                for (cond, body) in branches {
                    let taken = match cond {
                        Some(c) => self.test(c)?,
                        None => true,
                    };
                    if taken {
                        return self.block(body);
                    }
                }
            }
            Cmd::Stop => return Ok(Flow::Stop),
            Cmd::Keep { flags } => {
                let flags = self.action_flags(flags);
                self.add(Action::Keep { flags })?;
                self.implicit_keep = false;
            }
            Cmd::Discard => {
                self.add(Action::Discard)?;
                self.implicit_keep = false;
            }
            Cmd::Reject(reason) => {
                let reason = self.ex(reason).into_owned();
                self.add(Action::Reject(reason))?;
                self.implicit_keep = false;
            }
            Cmd::FileInto {
                mailbox,
                copy,
                create,
                flags,
                special_use,
            } => {
                let flags = self.action_flags(flags);
                // RFC 8579 §4: the mailbox with that use wins over the name.
                let by_use = special_use
                    .as_deref()
                    .and_then(|u| self.context.special_use(&self.ex(u)));
                let mailbox = by_use.unwrap_or_else(|| self.ex(mailbox).into_owned());
                self.add(Action::FileInto {
                    mailbox,
                    create: *create,
                    flags,
                })?;
                if !copy {
                    self.implicit_keep = false;
                }
            }
            Cmd::Redirect { address, copy } => {
                self.redirects += 1;
                if self.redirects > self.limits.max_redirects {
                    return Err(Error::runtime(format!(
                        "more than {} redirects",
                        self.limits.max_redirects
                    )));
                }
                let address = self.ex(address).into_owned();
                if crate::address::Address::parse(&address).is_err() {
                    return Err(Error::runtime(format!(
                        "redirect: \"{address}\" is not an address"
                    )));
                }
                self.add(Action::Redirect(address))?;
                if !copy {
                    self.implicit_keep = false;
                }
            }
            Cmd::Set {
                name,
                value,
                modifiers,
            } => {
                let value = modify(self.ex(value).into_owned(), modifiers);
                self.set_var(name, value)?;
            }
            Cmd::Flags {
                op,
                variable,
                flags,
            } => {
                let given = flag_set(self.ex_all(flags).iter().map(|s| s.as_ref()));
                let current = match variable {
                    Some(name) => flag_set([self.variables.get(name)]),
                    None => self.flags.clone(),
                };
                let new = match op {
                    FlagOp::Set => given,
                    FlagOp::Add => flag_set(current.iter().chain(&given).map(String::as_str)),
                    FlagOp::Remove => current
                        .into_iter()
                        .filter(|f| !given.iter().any(|g| g.eq_ignore_ascii_case(f)))
                        .collect(),
                };
                match variable {
                    Some(name) => self.set_var(name, new.join(" "))?,
                    None => self.flags = new,
                }
            }
            Cmd::Notify(n) => {
                let method = self.ex(&n.method).into_owned();
                if let Err(e) = super::notify::Mailto::parse(&method) {
                    return Err(Error::runtime(format!("notify: {e}")));
                }
                let expanded = Notify {
                    method,
                    from: n.from.as_deref().map(|s| self.ex(s).into_owned()),
                    importance: n.importance.clone(),
                    options: self
                        .ex_all(&n.options)
                        .into_iter()
                        .map(Cow::into_owned)
                        .collect(),
                    message: n.message.as_deref().map(|s| self.ex(s).into_owned()),
                    fcc: self.ex_fcc(&n.fcc),
                };
                self.add(Action::Notify(Box::new(expanded)))?;
            }
            Cmd::Include {
                location,
                once,
                optional,
                name,
            } => return self.include(*location, *once, *optional, name),
            Cmd::Return => return Ok(Flow::Return),
            Cmd::Error(message) => {
                return Err(Error::runtime(format!(
                    "the script ended with an error: {}",
                    self.ex(message)
                )));
            }
            Cmd::AddHeader { last, name, value } => {
                if super::editheader::is_protected(name) {
                    return Ok(Flow::Next);
                }
                let field = super::editheader::added(name, &self.ex(value))?;
                let fields = self.fields_mut()?;
                if *last {
                    fields.push(field);
                } else {
                    fields.insert(0, field);
                }
            }
            Cmd::DeleteHeader {
                index,
                name,
                matcher,
            } => {
                if super::editheader::is_protected(name) {
                    return Ok(Flow::Next);
                }
                let name = self.ex(name).into_owned();
                let keys: Option<Vec<String>> = matcher.as_ref().map(|m| {
                    self.ex_all(&m.keys)
                        .into_iter()
                        .map(Cow::into_owned)
                        .collect()
                });
                let fields = self.fields_mut()?;
                let positions: Vec<usize> = fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.name.eq_ignore_ascii_case(&name))
                    .map(|(i, _)| i)
                    .collect();
                let chosen: Vec<usize> = match index {
                    None => positions,
                    Some((n, from_end)) => {
                        let n = usize::try_from(*n).unwrap_or(usize::MAX);
                        let at = if *from_end {
                            positions.len().checked_sub(n)
                        } else {
                            n.checked_sub(1)
                        };
                        at.and_then(|i| positions.get(i).copied())
                            .into_iter()
                            .collect()
                    }
                };
                let doomed: Vec<usize> = chosen
                    .into_iter()
                    .filter(|&i| match (matcher, &keys, fields.get(i)) {
                        (Some(m), Some(keys), Some(f)) => keys.iter().any(|k| {
                            super::matching::matches(m.match_type, m.comparator, &f.value, k)
                        }),
                        _ => true,
                    })
                    .collect();
                for i in doomed.into_iter().rev() {
                    fields.remove(i);
                }
            }
            Cmd::Global(names) => {
                for name in names {
                    self.declared.insert(name.clone());
                    let value = self.globals.get(name).cloned().unwrap_or_default();
                    self.variables.set(name, value)?;
                }
            }
            Cmd::Vacation(v) => {
                if self
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::Vacation(_)))
                {
                    return Err(Error::runtime("more than one vacation"));
                }
                let expanded = Vacation {
                    period: v.period,
                    subject: v.subject.as_deref().map(|s| self.ex(s).into_owned()),
                    from: v.from.as_deref().map(|s| self.ex(s).into_owned()),
                    addresses: self
                        .ex_all(&v.addresses)
                        .into_iter()
                        .map(Cow::into_owned)
                        .collect(),
                    mime: v.mime,
                    // The default is made before expansion (see there).
                    handle: Some(match &v.handle {
                        Some(h) => self.ex(h).into_owned(),
                        None => v.default_handle(),
                    }),
                    reason: self.ex(&v.reason).into_owned(),
                    fcc: self.ex_fcc(&v.fcc),
                };
                self.add(Action::Vacation(Box::new(expanded)))?;
            }
        }
        Ok(Flow::Next)
    }

    fn test(&mut self, cond: &Cond) -> Result<bool, Error> {
        self.step()?;
        Ok(match cond {
            Cond::True => true,
            Cond::False => false,
            Cond::Not(inner) => !self.test(inner)?,
            Cond::AllOf(list) => {
                for c in list {
                    if !self.test(c)? {
                        return Ok(false);
                    }
                }
                true
            }
            Cond::AnyOf(list) => {
                for c in list {
                    if self.test(c)? {
                        return Ok(true);
                    }
                }
                false
            }
            Cond::Exists(names) => {
                let names = self.ex_all(names);
                names.iter().all(|n| self.values(n).next().is_some())
            }
            Cond::SizeOver(n) => self.input.message.len() as u64 > *n,
            Cond::SizeUnder(n) => (self.input.message.len() as u64) < *n,
            Cond::Header {
                names,
                matcher,
                index,
            } => {
                let values = self.field_values(names, *index);
                self.judge(matcher, &values)
            }
            Cond::Address {
                part,
                names,
                matcher,
                index,
            } => {
                let found: Vec<String> = self
                    .field_values(names, *index)
                    .iter()
                    .flat_map(|v| addresses(v))
                    .collect();
                let values: Vec<String> = found
                    .iter()
                    .filter_map(|a| self.part_of(*part, a))
                    .map(str::to_string)
                    .collect();
                self.judge(matcher, &values)
            }
            Cond::Envelope {
                part,
                names,
                matcher,
            } => {
                let values: Vec<String> = names
                    .iter()
                    .filter_map(|n| match n.to_ascii_lowercase().as_str() {
                        "from" => Some(self.input.envelope_from),
                        "to" => Some(self.input.envelope_to),
                        _ => None,
                    })
                    .filter_map(|a| self.part_of(*part, a))
                    .map(str::to_string)
                    .collect();
                self.judge(matcher, &values)
            }
            Cond::Body { transform, matcher } => {
                // Out of `self` while judged (which borrows it mutably);
                // each form is made once per run however many tests use it.
                let mut bodies = std::mem::take(&mut self.bodies);
                let message = self.input.message;
                let values: Vec<&str> = match transform {
                    BodyTransform::Raw => {
                        vec![bodies.raw.get_or_insert_with(|| self.input.raw_body())]
                    }
                    BodyTransform::Text => {
                        vec![bodies.text.get_or_insert_with(|| text_of(message))]
                    }
                    BodyTransform::Content(types) => bodies
                        .parts
                        .get_or_insert_with(|| leaf_parts(message))
                        .iter()
                        .filter(|leaf| leaf.wanted(types))
                        .map(|leaf| leaf.text.as_str())
                        .collect(),
                };
                let hit = self.judge(matcher, &values);
                self.bodies = bodies;
                hit
            }
            Cond::String { sources, matcher } => {
                let values: Vec<String> = self
                    .ex_all(sources)
                    .into_iter()
                    .map(Cow::into_owned)
                    .collect();
                // RFC 5229 §5: :count counts the non-empty strings.
                if matches!(matcher.match_type, super::compile::MatchType::Count(_)) {
                    let non_empty: Vec<String> =
                        values.into_iter().filter(|v| !v.is_empty()).collect();
                    return Ok(self.judge(matcher, &non_empty));
                }
                self.judge(matcher, &values)
            }
            Cond::Date {
                zone,
                name,
                part,
                matcher,
                index,
            } => {
                // §4.1: a field that holds no date fails the test.
                let dates: Vec<String> = self
                    .field_values(std::slice::from_ref(name), *index)
                    .iter()
                    .filter_map(|v| super::date::parse(v))
                    .map(|d| super::date::part(&d, *zone, *part))
                    .collect();
                if dates.is_empty() {
                    return Ok(false);
                }
                self.judge(matcher, &dates)
            }
            Cond::CurrentDate {
                zone,
                part,
                matcher,
            } => {
                let now = super::date::from_timestamp(self.context.now());
                let value = super::date::part(&now, *zone, *part);
                self.judge(matcher, &[value])
            }
            Cond::Duplicate {
                handle,
                header,
                unique_id,
                seconds,
                last,
            } => {
                // §3: the ID is the Message-ID unless told otherwise; a
                // message without one is never a duplicate.
                let id = match (unique_id, header) {
                    (Some(u), _) => Some(self.ex(u).into_owned()),
                    (None, h) => {
                        let name = h.as_deref().unwrap_or("message-id");
                        let name = self.ex(name).into_owned();
                        self.values(&name).next().map(|v| v.trim().to_string())
                    }
                };
                match id.filter(|i| !i.is_empty()) {
                    Some(id) => self
                        .context
                        .duplicate(&self.ex(handle), &id, seconds.unwrap_or(0), *last)
                        .map_err(|e| Error::runtime(format!("duplicate: {e}")))?,
                    None => false,
                }
            }
            Cond::ValidNotifyMethod(uris) => self
                .ex_all(uris)
                .iter()
                .all(|u| super::notify::Mailto::parse(u).is_ok()),
            Cond::NotifyMethodCapability {
                uri,
                capability,
                matcher,
            } => {
                // RFC 5436 §2.4: whether a mailto recipient is online is
                // never known.
                if super::notify::Mailto::parse(&self.ex(uri)).is_err() || capability != "online" {
                    return Ok(false);
                }
                self.judge(matcher, &["maybe".to_string()])
            }
            Cond::MailboxExists(names) => self
                .ex_all(names)
                .iter()
                .all(|n| self.context.mailbox_exists(n)),
            Cond::SpecialUseExists { mailbox, uses } => {
                let uses = self.ex_all(uses);
                match mailbox {
                    Some(m) => {
                        let m = self.ex(m);
                        uses.iter().all(|u| self.context.has_special_use(&m, u))
                    }
                    None => uses.iter().all(|u| self.context.special_use(u).is_some()),
                }
            }
            Cond::Environment { name, matcher } => match self.environment(name) {
                Some(value) => self.judge(matcher, &[value]),
                None => false,
            },
            Cond::SpamTest { percent, matcher } => match self.context.spam() {
                // RFC 5235 §3.3: untested gives no value with :percent
                // (`:count "eq" "0"` finds it), "0" without.
                None if *percent => self.judge::<&str>(matcher, &[]),
                spam => {
                    let value = spamtest_value(spam, *percent);
                    self.judge(matcher, &[value])
                }
            },
            Cond::HasFlag { variables, matcher } => {
                let flags = if variables.is_empty() {
                    self.flags.clone()
                } else {
                    flag_set(variables.iter().map(|v| self.variables.get(v)))
                };
                self.judge(matcher, &flags)
            }
        })
    }

    /// Values against the matcher's keys; a successful `:matches` sets
    /// the match variables when the script uses variables.
    fn judge<S: AsRef<str>>(&mut self, matcher: &Matcher, values: &[S]) -> bool {
        let keys = self.ex_all(&matcher.keys);
        let values: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
        if !self.variables_on {
            return judge(matcher, &keys, &values, None);
        }
        let mut captured = Vec::new();
        let keys: Vec<Cow<'_, str>> = keys
            .into_iter()
            .map(|k| Cow::Owned(k.into_owned()))
            .collect();
        let hit = judge(matcher, &keys, &values, Some(&mut captured));
        if hit && !captured.is_empty() {
            self.variables.set_matched(captured);
        }
        hit
    }

    /// The values of the fields `names` (expanded), in order; with
    /// RFC 5260 `:index`, only the nth (from the end with `:last`).
    fn field_values(&self, names: &[String], index: Option<(u64, bool)>) -> Vec<String> {
        let names = self.ex_all(names);
        let all: Vec<String> = names
            .iter()
            .flat_map(|n| self.values(n))
            .map(str::to_string)
            .collect();
        match index {
            None => all,
            Some((n, last)) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                let at = if last {
                    all.len().checked_sub(n)
                } else {
                    n.checked_sub(1)
                };
                at.and_then(|i| all.get(i).cloned()).into_iter().collect()
            }
        }
    }

    /// RFC 5183 §4's items: the fixed ones, then the context's.
    fn environment(&self, name: &str) -> Option<String> {
        Some(match name {
            "location" => "MDA".into(),
            "phase" => "during".into(),
            "name" => "Merpati".into(),
            "version" => env!("CARGO_PKG_VERSION").into(),
            _ => return self.context.environment(name),
        })
    }

    fn values<'s>(&'s self, name: &'s str) -> Box<dyn Iterator<Item = &'s str> + 's> {
        match &self.fields {
            // RFC 5293 §5: tests after an edit see the edited header.
            Some(fields) => Box::new(
                fields
                    .iter()
                    .filter(move |f| f.name.eq_ignore_ascii_case(name))
                    .map(|f| f.value.as_str()),
            ),
            None => Box::new(
                self.input
                    .headers
                    .iter()
                    .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str()),
            ),
        }
    }

    /// The part of `address` a test looks at; `None` when it has none
    /// (RFC 5233 §4: no detail, no match).
    fn part_of<'s>(&self, part: Part, address: &'s str) -> Option<&'s str> {
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let sep = self.input.delimiter.chars().next();
        Some(match part {
            Part::All => address,
            Part::LocalPart => local,
            Part::Domain => domain,
            Part::User => match sep {
                Some(s) => local.split(s).next().unwrap_or(local),
                None => local,
            },
            Part::Detail => sep.and_then(|s| local.split_once(s))?.1,
        })
    }
}

/// The text of the text parts (HTML reduced to its text), for `body`.
fn text_of(message: &[u8]) -> String {
    let scanned = message.get(..message.len().min(1 << 20)).unwrap_or(message);
    let Some(parsed) = mail_parser::MessageParser::new().parse(scanned) else {
        return String::new();
    };
    let mut out = String::new();
    for part in &parsed.parts {
        match &part.body {
            mail_parser::PartType::Text(t) => out.push_str(t),
            mail_parser::PartType::Html(h) => out.push_str(&crate::html::text(h, false)),
            _ => continue,
        }
        out.push('\n');
    }
    out
}

/// RFC 5235 §3.2: `0` for a message not tested, else `1` (surely not
/// spam) to `10` (surely spam); RFC 5235 spamtestplus `:percent` 0–100.
/// Our filter's scores run from well below its threshold to well above:
/// the scale maps 0 to 1 (or 0 %) and twice the threshold or more to 10
/// (or 100 %), so the threshold itself is 5 (50 %).
fn spamtest_value(spam: Option<(f64, f64)>, percent: bool) -> String {
    let Some((score, threshold)) = spam else {
        return "0".into();
    };
    let ratio = if threshold > 0.0 {
        (score / (2.0 * threshold)).clamp(0.0, 1.0)
    } else if score > 0.0 {
        1.0
    } else {
        0.0
    };
    if percent {
        format!("{}", (ratio * 100.0).round() as u32)
    } else {
        format!("{}", 1 + (ratio * 9.0).floor() as u32)
    }
}

/// The forms of the body `body` tests read, made once per run.
#[derive(Default)]
struct Bodies {
    raw: Option<String>,
    text: Option<String>,
    parts: Option<Vec<Leaf>>,
}

/// One decoded leaf part of the message, with its media type.
struct Leaf {
    ctype: String,
    subtype: String,
    text: String,
}

impl Leaf {
    /// RFC 5173 §5.3 `:content`: a bare type matches its subtypes, `""`
    /// everything.
    fn wanted(&self, types: &[String]) -> bool {
        types.iter().any(|t| match t.split_once('/') {
            _ if t.is_empty() => true,
            Some((ty, sub)) => {
                ty.eq_ignore_ascii_case(&self.ctype) && sub.eq_ignore_ascii_case(&self.subtype)
            }
            None => t.eq_ignore_ascii_case(&self.ctype),
        })
    }
}

/// The decoded leaf parts of the message (multiparts and attached
/// messages are not leaves; their parts are).
fn leaf_parts(message: &[u8]) -> Vec<Leaf> {
    use mail_parser::MimeHeaders;
    let scanned = message.get(..message.len().min(1 << 20)).unwrap_or(message);
    let Some(parsed) = mail_parser::MessageParser::new().parse(scanned) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in &parsed.parts {
        let (ctype, subtype) = part
            .content_type()
            .map(|c| (c.ctype().to_string(), c.subtype().unwrap_or("").to_string()))
            .unwrap_or_else(|| ("text".to_string(), "plain".to_string()));
        let text = match &part.body {
            mail_parser::PartType::Text(t) | mail_parser::PartType::Html(t) => t.to_string(),
            mail_parser::PartType::Binary(b) | mail_parser::PartType::InlineBinary(b) => {
                String::from_utf8_lossy(b).into_owned()
            }
            _ => continue,
        };
        out.push(Leaf {
            ctype,
            subtype,
            text,
        });
    }
    out
}
