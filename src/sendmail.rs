//! `merpati sendmail` (and the binary symlinked as `sendmail`): the
//! sendmail(1) command line that cron, PHP's `mail()` and scripts use, as
//! Postfix's sendmail and postdrop do it.
//!
//! A message goes into `maildrop` when the caller may write there (root,
//! the `merpati` user), else to the daemon's postdrop socket
//! (`queue::postdrop`), which any local user may use; pickup or the socket
//! hand it to cleanup. Modes: deliver (default, `-bm`), verify addresses
//! without sending (`-bv`), SMTP on stdin/stdout (`-bs`), list the queue
//! (`-bp`), rebuild aliases (`-bi`), flush the queue (`-q`).

use crate::address::Address;
use crate::admin;
use crate::config::Config;
use crate::queue::file::{QueueFile, QueuedRecipient};
use crate::queue::spool::Spool;
use crate::queue::{self, postdrop};
use crate::rewrite::{Aliases, Resolver, Route};
use crate::rfc5322::{now_unix, scan_headers, to_crlf};
use crate::smtp::proto::command::{Command, Notify, parse_command};
use crate::smtp::proto::data::{BareLf, DataDecoder};
use crate::smtp::proto::reply::Reply;
use anyhow::{Context, anyhow, bail};
use std::io::{BufRead, Read, Write};

/// What the command line asks for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read a message from stdin and queue it (`-bm`, the default).
    #[default]
    Deliver,
    /// Say where each recipient would go; send nothing (`-bv`).
    Verify,
    /// Speak SMTP on stdin/stdout (`-bs`).
    Smtp,
    /// `mailq` (`-bp`).
    ListQueue,
    /// `newaliases` (`-bi`).
    Newaliases,
    /// Retry deferred mail now (`-q`, `-q1h`, `-qR...`).
    Flush,
}

/// Options of `sendmail`, as the classic sendmail(1) command line has them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SendmailArgs {
    pub mode: Mode,
    pub extract_recipients: bool,
    pub sender: Option<String>,
    /// `-F`: the sender's full name, for a From: header we add.
    pub full_name: Option<String>,
    pub ignore_dots: bool,
    /// `-N`: DSN NOTIFY for every recipient (`never`, `success,delay,failure`).
    pub notify: Option<String>,
    /// `-R`: DSN RET (`full` or `hdrs`).
    pub ret: Option<String>,
    /// `-V`: DSN ENVID.
    pub envid: Option<String>,
    pub recipients: Vec<String>,
}

/// Parses sendmail(1) flags; unknown `-o…` and `-B…` options are ignored
/// as Postfix does, so scripts written for other MTAs keep working.
pub fn parse_sendmail_args(args: &[String]) -> anyhow::Result<SendmailArgs> {
    let mut out = SendmailArgs::default();
    let mut iter = args.iter();
    // `-X value` or `-Xvalue`.
    let value = |flag: &str, arg: &str, iter: &mut std::slice::Iter<'_, String>| match arg
        .strip_prefix(flag)
        .filter(|v| !v.is_empty())
    {
        Some(v) => Ok(v.to_string()),
        None => iter
            .next()
            .cloned()
            .ok_or_else(|| anyhow!("{flag} needs a value")),
    };
    while let Some(arg) = iter.next() {
        let a = arg.as_str();
        match a {
            "-t" => out.extract_recipients = true,
            "-i" | "-oi" => out.ignore_dots = true,
            "-bm" => out.mode = Mode::Deliver,
            "-bv" => out.mode = Mode::Verify,
            "-bs" => out.mode = Mode::Smtp,
            "-bp" => out.mode = Mode::ListQueue,
            "-bi" => out.mode = Mode::Newaliases,
            "--" => out.recipients.extend(iter.by_ref().cloned()),
            _ if a.starts_with("-f") => out.sender = Some(value("-f", a, &mut iter)?),
            _ if a.starts_with("-r") => out.sender = Some(value("-r", a, &mut iter)?),
            _ if a.starts_with("-F") => out.full_name = Some(value("-F", a, &mut iter)?),
            _ if a.starts_with("-N") => out.notify = Some(value("-N", a, &mut iter)?),
            _ if a.starts_with("-R") => out.ret = Some(value("-R", a, &mut iter)?),
            _ if a.starts_with("-V") => out.envid = Some(value("-V", a, &mut iter)?),
            _ if a.starts_with("-q") => out.mode = Mode::Flush,
            // Options with a value that we accept and ignore.
            "-O" | "-L" | "-X" | "-C" | "-h" => {
                iter.next();
            }
            _ if a.starts_with('-') => {}
            _ => out.recipients.push(a.to_string()),
        }
    }
    if let Some(notify) = &out.notify {
        normalise_notify(notify)?;
    }
    if let Some(ret) = &out.ret
        && !ret.eq_ignore_ascii_case("full")
        && !ret.eq_ignore_ascii_case("hdrs")
    {
        bail!("-R takes full or hdrs, not {ret}");
    }
    Ok(out)
}

/// `-N` as the queue file stores NOTIFY: `NEVER` or a comma list.
fn normalise_notify(text: &str) -> anyhow::Result<String> {
    let mut words = Vec::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let word = word.to_ascii_uppercase();
        if !["NEVER", "SUCCESS", "FAILURE", "DELAY"].contains(&word.as_str()) {
            bail!("-N takes never or success,delay,failure, not {text}");
        }
        if !words.contains(&word) {
            words.push(word);
        }
    }
    if words.len() > 1 && words.iter().any(|w| w == "NEVER") {
        bail!("-N never cannot be combined with other values");
    }
    Ok(words.join(","))
}

/// Runs the mode the arguments ask for.
pub fn run(config: &Config, args: &SendmailArgs) -> anyhow::Result<()> {
    match args.mode {
        Mode::Deliver => deliver_stdin(config, args),
        Mode::Verify => verify(config, args),
        Mode::Smtp => smtp_on_stdio(config, args),
        Mode::ListQueue => admin::queue_list(config),
        Mode::Newaliases => admin::newaliases(config),
        Mode::Flush => admin::queue_flush(config),
    }
}

fn resolver(config: &Config) -> Resolver {
    Resolver::new(
        config,
        Aliases::load(&config.alias_path())
            .map(|(a, _)| a)
            .unwrap_or_default(),
    )
}

/// Reads the message from stdin and queues it.
fn deliver_stdin(config: &Config, args: &SendmailArgs) -> anyhow::Result<()> {
    let mut input = Vec::new();
    std::io::stdin()
        .take(config.smtp.message_size_limit.0 + 1)
        .read_to_end(&mut input)?;
    if input.len() as u64 > config.smtp.message_size_limit.0 {
        bail!(
            "message is larger than message_size_limit ({})",
            config.smtp.message_size_limit.0
        );
    }
    let mut message = to_crlf(&input, !args.ignore_dots);
    let mut recipients: Vec<String> = args.recipients.clone();
    if args.extract_recipients {
        let (found, without_bcc) = header_recipients(&message);
        recipients.extend(found);
        message = without_bcc;
    }
    let resolver = resolver(config);
    let sender = envelope_sender(&resolver, args)?;
    if let Some(name) = &args.full_name {
        message = with_from_header(message, name, &sender);
    }
    let notify = args
        .notify
        .as_deref()
        .map(normalise_notify)
        .transpose()?
        .unwrap_or_default();
    let mut queued = Vec::new();
    for r in split_recipients(&recipients) {
        let address = Address::parse(r).map_err(|e| anyhow!("{r}: {e}"))?;
        queued.push(QueuedRecipient {
            address: resolver.canonical(address).to_string(),
            notify: notify.clone(),
            ..Default::default()
        });
    }
    if queued.is_empty() {
        bail!("no recipients given (name them, or use -t)");
    }
    let file = QueueFile {
        arrival: now_unix(),
        sender,
        protocol: "local".into(),
        recipients: queued,
        body: message,
        envid: args.envid.clone().unwrap_or_default(),
        ret: args.ret.as_deref().unwrap_or_default().to_ascii_uppercase(),
        ..Default::default()
    };
    drop_message(config, &file).map(|_| ())
}

fn split_recipients(recipients: &[String]) -> impl Iterator<Item = &str> {
    recipients
        .iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
}

/// `-f` (any local user may set it, as with Postfix; the Received: line
/// and the log name the real uid), else the login name at `myorigin`.
fn envelope_sender(resolver: &Resolver, args: &SendmailArgs) -> anyhow::Result<String> {
    Ok(match &args.sender {
        Some(s) if s.is_empty() || s == "<>" => String::new(),
        Some(s) => resolver
            .canonical(Address::parse(s).map_err(|e| anyhow!("{s}: {e}"))?)
            .to_string(),
        None => resolver
            .canonical(Address::new_local(&login_name()))
            .to_string(),
    })
}

/// Queues a message. The owner of the queue (the `merpati` user, or root
/// outside systemd) writes into maildrop; everyone else, root included
/// when the queue is not root's, goes through the daemon's postdrop
/// socket, so every maildrop file can be read by the daemon. With the
/// daemon stopped, root still writes maildrop and hands the file to the
/// queue's owner. Returns the ID the message is known by.
fn drop_message(config: &Config, file: &QueueFile) -> anyhow::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let maildrop_dir = config.queue_dir().join("maildrop");
    // SAFETY: geteuid(2) has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let owner = std::fs::metadata(&maildrop_dir).map(|m| (m.uid(), m.gid()));
    let owns_queue = match &owner {
        Ok((uid, _)) => *uid == euid,
        // No queue yet: whoever creates it owns it.
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    if owns_queue {
        return write_maildrop(config, file, None);
    }
    let socket = postdrop::socket_path(config);
    let handed = postdrop::submit(&socket, file)
        .with_context(|| format!("cannot reach {}", socket.display()))?;
    match handed {
        Some(Ok(id)) => Ok(id),
        Some(Err(why)) => bail!("the mail system refused the message: {why}"),
        None if euid == 0 => write_maildrop(config, file, owner.ok()),
        None => bail!(
            "the queue belongs to another user and the merpati daemon is not running to take the message"
        ),
    }
}

/// Writes into maildrop (and, for root, gives the file to `owner`).
fn write_maildrop(
    config: &Config,
    file: &QueueFile,
    owner: Option<(u32, u32)>,
) -> anyhow::Result<String> {
    let spool = Spool::open(&config.queue_dir()).context("cannot open the queue")?;
    let id = queue::maildrop(&spool, file).context("cannot write to maildrop")?;
    if let Some((uid, gid)) = owner {
        let path = spool.path(crate::queue::spool::QueueName::Maildrop, &id);
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .with_context(|| format!("cannot give {} to the queue's owner", path.display()))?;
    }
    crate::app::signal_daemon(config, libc::SIGUSR1);
    Ok(id.to_string())
}

/// `-F name`: a From: header with the full name, when the message has none.
fn with_from_header(message: Vec<u8>, name: &str, sender: &str) -> Vec<u8> {
    let has_from = mail_parser::MessageParser::new()
        .parse_headers(&message)
        .is_some_and(|m| m.from().is_some());
    if has_from || sender.is_empty() {
        return message;
    }
    // A quoted display name; quotes, backslashes and line breaks removed.
    let clean: String = name
        .chars()
        .filter(|c| !matches!(c, '"' | '\\' | '\r' | '\n'))
        .collect();
    let mut out = format!("From: \"{clean}\" <{sender}>\r\n").into_bytes();
    out.extend_from_slice(&message);
    out
}

/// `-bv`: where each recipient would go, without sending anything.
fn verify(config: &Config, args: &SendmailArgs) -> anyhow::Result<()> {
    let resolver = resolver(config);
    let accounts = Accounts::load(config);
    let mut failed = false;
    for r in split_recipients(&args.recipients) {
        let Ok(address) = Address::parse(r) else {
            println!("{r}... bad address syntax");
            failed = true;
            continue;
        };
        for route in resolver.expand(&address, &accounts) {
            match route {
                Ok(Route::Local { account, address }) => {
                    println!("{address}... deliverable: local mailbox of {account}")
                }
                Ok(Route::Remote(address)) => {
                    let domain = address.domain().unwrap_or_default().to_string();
                    println!("{address}... deliverable: relay to {domain}")
                }
                Err(e) => {
                    println!("{r}... undeliverable: {e}");
                    failed = true;
                }
            }
        }
    }
    if failed {
        bail!("some addresses are not deliverable");
    }
    Ok(())
}

/// The account names, from the store (via the daemon when it runs).
struct Accounts(Option<Vec<String>>);

impl Accounts {
    fn load(config: &Config) -> Accounts {
        let listed = admin::run_store_op(config, &crate::control::StoreOp::ListUsers).ok();
        Accounts(listed.map(|out| {
            String::from_utf8_lossy(&out)
                .lines()
                .filter_map(|l| l.split('\t').next())
                .map(str::to_string)
                .collect()
        }))
    }
}

impl crate::rewrite::AccountDirectory for Accounts {
    fn account_exists(&self, account: &str) -> bool {
        // Without access to the store, say what the resolver knows.
        self.0
            .as_ref()
            .is_none_or(|list| list.iter().any(|a| a == account))
    }
}

/// `-bs`: an SMTP dialogue on stdin/stdout (as `sendmail -bs` under inetd
/// or from a program); every message is queued like one from stdin.
fn smtp_on_stdio(config: &Config, args: &SendmailArgs) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout().lock();
    let resolver = resolver(config);
    let host = config.myhostname.clone();
    let say = |out: &mut std::io::StdoutLock<'_>, reply: Reply| -> anyhow::Result<()> {
        out.write_all(&reply.to_bytes())?;
        out.flush()?;
        Ok(())
    };
    say(
        &mut out,
        Reply::plain(220, format!("{host} ESMTP Merpati (sendmail -bs)")),
    )?;
    let mut sender: Option<String> = None;
    let mut recipients: Vec<QueuedRecipient> = Vec::new();
    let max_line = config.smtp.line_length_limit;
    loop {
        let mut line = Vec::new();
        let n = (&mut input)
            .take(max_line as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > max_line {
            say(&mut out, Reply::new(500, "5.5.0", "Error: line too long"))?;
            // Skip the rest of the line.
            let mut rest = Vec::new();
            input.read_until(b'\n', &mut rest)?;
            continue;
        }
        let trimmed = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(&line);
        let reply = match parse_command(trimmed) {
            Ok(Command::Helo(_)) => Reply::plain(250, host.clone()),
            Ok(Command::Ehlo(_)) => Reply::ehlo(&host, ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN"]),
            Ok(Command::Mail(mail)) if sender.is_none() => {
                let address = mail.sender.map(|a| resolver.canonical(a).to_string());
                // Postfix's sendmail -bs takes MAIL FROM as given, as -f.
                sender = Some(address.unwrap_or_default());
                Reply::ok_sender()
            }
            Ok(Command::Mail(_)) => Reply::new(503, "5.5.1", "Error: nested MAIL command"),
            Ok(Command::Rcpt(_)) if sender.is_none() => {
                Reply::new(503, "5.5.1", "Error: need MAIL command")
            }
            Ok(Command::Rcpt(rcpt)) if recipients.len() >= config.smtp.max_recipients => {
                drop(rcpt);
                Reply::new(452, "4.5.3", "Error: too many recipients")
            }
            Ok(Command::Rcpt(rcpt)) => {
                recipients.push(QueuedRecipient {
                    address: resolver.canonical(rcpt.recipient).to_string(),
                    notify: notify_text(rcpt.notify.as_deref()),
                    orcpt: rcpt.orcpt.unwrap_or_default(),
                    ..Default::default()
                });
                Reply::ok_recipient()
            }
            Ok(Command::Data) if recipients.is_empty() => {
                Reply::new(554, "5.5.1", "Error: no valid recipients")
            }
            Ok(Command::Data) => {
                say(
                    &mut out,
                    Reply::plain(354, "End data with <CR><LF>.<CR><LF>"),
                )?;
                let message = read_data(&mut input, config)?;
                let file_sender = sender.take().unwrap_or_default();
                let file_recipients = std::mem::take(&mut recipients);
                match message {
                    Err(e) => Reply::new(552, "5.3.4", format!("Error: {e}")),
                    Ok(body) => {
                        let file = QueueFile {
                            arrival: now_unix(),
                            sender: file_sender,
                            protocol: "local".into(),
                            recipients: file_recipients,
                            body,
                            envid: args.envid.clone().unwrap_or_default(),
                            ..Default::default()
                        };
                        match drop_message(config, &file) {
                            Ok(id) => Reply::queued(&id),
                            Err(e) => Reply::new(451, "4.3.0", format!("Error: {e}")),
                        }
                    }
                }
            }
            Ok(Command::Rset) => {
                sender = None;
                recipients.clear();
                Reply::new(250, "2.0.0", "Ok")
            }
            Ok(Command::Noop) => Reply::new(250, "2.0.0", "Ok"),
            Ok(Command::Quit) => {
                say(&mut out, Reply::new(221, "2.0.0", "Bye"))?;
                return Ok(());
            }
            Ok(_) => Reply::new(502, "5.5.1", "Error: command not implemented"),
            Err(e) => Reply::new(501, "5.5.2", format!("Error: {e}")),
        };
        say(&mut out, reply)?;
    }
}

/// The DATA of `-bs`, up to `.`; a message over the size limit is read to
/// its end and refused.
fn read_data(
    input: &mut impl BufRead,
    config: &Config,
) -> anyhow::Result<Result<Vec<u8>, anyhow::Error>> {
    let mut decoder = DataDecoder::new(config.smtp.message_size_limit.0, BareLf::Normalize);
    loop {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            bail!("end of input inside DATA");
        }
        let progress = decoder.feed(buffer);
        input.consume(progress.consumed);
        if progress.done {
            return Ok(decoder.finish().map_err(|e| anyhow!("{e}")));
        }
    }
}

fn notify_text(notify: Option<&[Notify]>) -> String {
    notify
        .map(crate::smtp::proto::command::notify_words)
        .unwrap_or_default()
}

/// The invoking user's name from the password database (not `$USER`,
/// which any user can set), as Postfix's sendmail does.
fn login_name() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; we
    // copy the name out before any other call could overwrite it, and this
    // CLI path is single-threaded.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null()
            && !(*pw).pw_name.is_null()
            && let Ok(name) = std::ffi::CStr::from_ptr((*pw).pw_name).to_str()
        {
            return name.to_string();
        }
    }
    format!("uid{}", unsafe { libc::getuid() })
}

/// `-t`: addresses in To, Cc and Bcc; Bcc is removed from the message.
fn header_recipients(message: &[u8]) -> (Vec<String>, Vec<u8>) {
    let mut found = Vec::new();
    if let Some(parsed) = mail_parser::MessageParser::new().parse_headers(message) {
        for list in [parsed.to(), parsed.cc(), parsed.bcc()]
            .into_iter()
            .flatten()
        {
            for addr in list.iter() {
                if let Some(a) = addr.address() {
                    found.push(a.to_string());
                }
            }
        }
    }
    let end = scan_headers(message).end.min(message.len());
    let (head, body) = message.split_at(end);
    let mut kept = Vec::with_capacity(message.len());
    let mut skipping = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            skipping = line
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"bcc:"));
        }
        if !skipping {
            kept.extend_from_slice(line);
        }
    }
    kept.extend_from_slice(body);
    (found, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> SendmailArgs {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        parse_sendmail_args(&list).unwrap()
    }

    #[test]
    fn sendmail_flags() {
        let parsed = args(&[
            "-t",
            "-i",
            "-fme@x",
            "-oem",
            "bob",
            "-F",
            "Full Name",
            "carol@y",
        ]);
        assert!(parsed.extract_recipients && parsed.ignore_dots);
        assert_eq!(parsed.sender.as_deref(), Some("me@x"));
        assert_eq!(parsed.full_name.as_deref(), Some("Full Name"));
        assert_eq!(parsed.recipients, vec!["bob", "carol@y"]);
        let parsed = args(&[
            "-N",
            "success,failure",
            "-R",
            "hdrs",
            "-V",
            "env-1",
            "-oi",
            "a@b",
        ]);
        assert_eq!(parsed.notify.as_deref(), Some("success,failure"));
        assert_eq!(parsed.ret.as_deref(), Some("hdrs"));
        assert_eq!(parsed.envid.as_deref(), Some("env-1"));
        assert_eq!(args(&["-bv", "a@b"]).mode, Mode::Verify);
        assert_eq!(args(&["-bs"]).mode, Mode::Smtp);
        assert_eq!(args(&["-q"]).mode, Mode::Flush);
        assert_eq!(args(&["-q30m"]).mode, Mode::Flush);
        assert_eq!(args(&["-FJoe", "x@y"]).full_name.as_deref(), Some("Joe"));
        let bad: Vec<String> = ["-N", "sometimes"].iter().map(|s| s.to_string()).collect();
        assert!(parse_sendmail_args(&bad).is_err());
    }

    #[test]
    fn dots_and_line_ends() {
        assert_eq!(to_crlf(b"a\nb\r\n.\nc\n", true), b"a\r\nb\r\n");
        assert_eq!(to_crlf(b"a\n.\nc", false), b"a\r\n.\r\nc\r\n");
    }

    #[test]
    fn extracts_and_strips_bcc() {
        let msg = b"To: a@x, B <b@y>\r\nBcc: secret@z,\r\n  other@z\r\nSubject: s\r\n\r\nbody\r\n";
        let (found, kept) = header_recipients(msg);
        assert_eq!(found, vec!["a@x", "b@y", "secret@z", "other@z"]);
        assert_eq!(kept, b"To: a@x, B <b@y>\r\nSubject: s\r\n\r\nbody\r\n");
    }

    #[test]
    fn full_name_goes_into_a_missing_from() {
        let added = with_from_header(
            b"Subject: s\r\n\r\nx\r\n".to_vec(),
            "Joe \"J\" Doe",
            "joe@h",
        );
        assert!(added.starts_with(b"From: \"Joe J Doe\" <joe@h>\r\nSubject: s\r\n"));
        let kept = with_from_header(b"From: a@b\r\n\r\nx\r\n".to_vec(), "Joe", "joe@h");
        assert_eq!(kept, b"From: a@b\r\n\r\nx\r\n");
    }
}
