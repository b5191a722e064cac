//! One ManageSieve session (RFC 5804 §1.4): capabilities, then commands
//! in the non-authenticated state (STARTTLS, AUTHENTICATE) and, after a
//! login, the script commands on that account's scripts.

use super::ManageSieveService;
use super::proto::{Arg, Command, Malformed, Reader, Status, write_response, write_string};
use crate::config::Config;
use crate::net::listener::{Admitted, Refusal};
use crate::net::stream::MaybeTls;
use crate::sieve::scripts::{self, ErrorKind, ScriptError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

const READ_CHUNK: usize = 16 * 1024;
/// Commands a client may send before it has logged in (CAPABILITY,
/// STARTTLS, CAPABILITY, AUTHENTICATE and a retry or two).
const MAX_COMMANDS_BEFORE_LOGIN: u32 = 20;
/// Failed logins in one session before it is closed; the Authenticator
/// additionally slows every failure down per client address.
const MAX_AUTH_FAILURES: u32 = 3;
/// Largest literal before login: SASL responses are short.
const MAX_LITERAL_BEFORE_LOGIN: u64 = 8 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
const REFUSE_TIMEOUT: Duration = Duration::from_secs(5);

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

pub async fn serve(svc: Arc<ManageSieveService>, tcp: TcpStream, admitted: Admitted) {
    let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    let peer = admitted.peer;
    let span = tracing::info_span!("managesieve", session = id, client = %peer.ip());
    async move {
        tracing::info!("connect from {peer}");
        let mut session = Session::new(svc, tcp, peer);
        let end = session.run().await;
        if session.account.is_none()
            && let Some(line) =
                session
                    .failed_logins
                    .summary("managesieve", peer.ip(), admitted.local.ip())
        {
            tracing::info!("{line}");
        }
        tracing::info!("disconnect from {} ({end})", peer.ip());
        drop(admitted);
    }
    .instrument(span)
    .await
}

pub async fn refuse(mut tcp: TcpStream, refusal: Refusal) {
    let text = match refusal {
        Refusal::TooManyConnections => "Too many connections, try again later",
        Refusal::TooManyFromClient => "Too many connections from your address",
    };
    let mut out = Vec::new();
    write_response(&mut out, Status::Bye, Some("TRYLATER"), text);
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, tcp.write_all(&out)).await;
}

#[derive(Debug)]
enum End {
    Logout,
    ClientClosed,
    Timeout,
    TooManyBadCommands,
    TooManyCommandsBeforeLogin,
    TooManyAuthFailures,
    Shutdown,
    Io(std::io::Error),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Logout => f.write_str("logout"),
            End::ClientClosed => f.write_str("lost connection"),
            End::Timeout => f.write_str("timeout"),
            End::TooManyBadCommands => f.write_str("too many bad commands"),
            End::TooManyCommandsBeforeLogin => f.write_str("too many commands before login"),
            End::TooManyAuthFailures => f.write_str("too many authentication failures"),
            End::Shutdown => f.write_str("shutdown"),
            End::Io(e) => write!(f, "{e}"),
        }
    }
}

struct Session {
    svc: Arc<ManageSieveService>,
    /// Config snapshot: a reload applies to new sessions.
    config: Arc<Config>,
    stream: MaybeTls,
    reader: Reader,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    peer: SocketAddr,
    /// The logged-in account.
    account: Option<String>,
    bad_commands: u32,
    lines_before_login: u32,
    auth_failures: u32,
    failed_logins: crate::auth::FailedLogins,
    login_deadline: crate::net::deadline::LoginDeadline,
    user_ip_slot: Option<crate::net::anvil::Slot<(String, std::net::IpAddr)>>,
}

/// A response with its optional code.
struct Reply {
    status: Status,
    code: Option<&'static str>,
    text: String,
}

fn ok(text: impl Into<String>) -> Reply {
    Reply {
        status: Status::Ok,
        code: None,
        text: text.into(),
    }
}

fn no(text: impl Into<String>) -> Reply {
    Reply {
        status: Status::No,
        code: None,
        text: text.into(),
    }
}

fn no_code(code: &'static str, text: impl Into<String>) -> Reply {
    Reply {
        status: Status::No,
        code: Some(code),
        text: text.into(),
    }
}

/// A script refusal as its response code (RFC 5804 §1.3).
fn script_refusal(e: ScriptError) -> Reply {
    let code = match e.kind {
        ErrorKind::Invalid => None,
        ErrorKind::NonExistent => Some("NONEXISTENT"),
        ErrorKind::AlreadyExists => Some("ALREADYEXISTS"),
        ErrorKind::Active => Some("ACTIVE"),
        ErrorKind::TooLarge => Some("QUOTA/MAXSIZE"),
        ErrorKind::TooMany => Some("QUOTA/MAXSCRIPTS"),
        ErrorKind::Store => {
            tracing::warn!("store error: {}", e.message);
            return no_code("TRYLATER", "Temporary server failure, try again later");
        }
    };
    Reply {
        status: Status::No,
        code,
        text: e.message,
    }
}

/// The arguments of a command, checked against what it takes.
fn strings(args: &[Arg], min: usize, max: usize) -> Option<Vec<&str>> {
    if args.len() < min || args.len() > max {
        return None;
    }
    args.iter()
        .map(|a| match a {
            Arg::String(_) => a.text(),
            Arg::Atom(_) => None,
        })
        .collect()
}

impl Session {
    fn new(svc: Arc<ManageSieveService>, tcp: TcpStream, peer: SocketAddr) -> Self {
        let config = svc.config.get();
        let settings = &config.managesieve;
        Session {
            reader: Reader::new(settings.line_length_limit, MAX_LITERAL_BEFORE_LOGIN),
            login_deadline: crate::net::deadline::LoginDeadline::start(settings.login_timeout.0),
            config,
            svc,
            stream: MaybeTls::Plain(tcp),
            inbuf: vec![0; READ_CHUNK],
            out: Vec::with_capacity(1024),
            peer,
            account: None,
            bad_commands: 0,
            lines_before_login: 0,
            auth_failures: 0,
            failed_logins: Default::default(),
            user_ip_slot: None,
        }
    }

    async fn run(&mut self) -> End {
        self.capabilities();
        self.reply(ok("Merpati ManageSieve ready"));
        loop {
            let command = match self.next(false).await {
                Ok(command) => command,
                Err(end) => return end,
            };
            if let Err(end) = self.command(command).await {
                let _ = self.flush().await;
                return end;
            }
        }
    }

    fn reply(&mut self, reply: Reply) {
        write_response(&mut self.out, reply.status, reply.code, &reply.text);
    }

    fn bad(&mut self, reply: Reply) -> Result<(), End> {
        self.bad_commands = self.bad_commands.saturating_add(1);
        if self.bad_commands >= self.config.managesieve.max_bad_commands {
            self.bye("Too many bad commands");
            return Err(End::TooManyBadCommands);
        }
        self.reply(reply);
        Ok(())
    }

    fn bye(&mut self, text: &str) {
        write_response(&mut self.out, Status::Bye, None, text);
    }

    async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.config.managesieve.idle_timeout.0, write).await {
            Ok(Ok(())) => {
                self.out.clear();
                if self.out.capacity() > 1 << 20 {
                    self.out = Vec::with_capacity(1024);
                }
                Ok(())
            }
            Ok(Err(e)) => Err(End::Io(e)),
            Err(_) => Err(End::Timeout),
        }
    }

    async fn read_more(&mut self) -> Result<(), End> {
        self.flush().await?;
        let shutdown = self.svc.shutdown.clone();
        let (timeout, login) = self
            .login_deadline
            .limit(self.config.managesieve.idle_timeout.0);
        let read = tokio::time::timeout(timeout, self.stream.read(&mut self.inbuf));
        let n = tokio::select! {
            r = read => match r {
                Ok(Ok(0)) => return Err(End::ClientClosed),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(End::Io(e)),
                Err(_) => {
                    if login {
                        tracing::info!("login_timeout exceeded before a login");
                    }
                    self.bye("Disconnected for inactivity");
                    let _ = self.flush().await;
                    return Err(End::Timeout);
                }
            },
            _ = shutdown.cancelled() => {
                self.bye("Server shutting down");
                let _ = self.flush().await;
                return Err(End::Shutdown);
            }
        };
        self.reader.push(self.inbuf.get(..n).unwrap_or_default());
        Ok(())
    }

    /// The next command (or, with `response`, the next SASL response).
    async fn next(&mut self, response: bool) -> Result<Result<Command, Malformed>, End> {
        loop {
            let got = if response {
                self.reader.next_response()
            } else {
                self.reader.next_command()
            };
            if let Some(got) = got {
                return Ok(got);
            }
            self.read_more().await?;
        }
    }

    async fn command(&mut self, command: Result<Command, Malformed>) -> Result<(), End> {
        if self.account.is_none() {
            self.lines_before_login += 1;
            if self.lines_before_login > MAX_COMMANDS_BEFORE_LOGIN {
                self.bye("Too many commands before login");
                return Err(End::TooManyCommandsBeforeLogin);
            }
        }
        let command = match command {
            Ok(command) => command,
            Err(Malformed::LineTooLong) => return self.bad(no("Line too long")),
            Err(Malformed::LiteralTooLarge(n)) => {
                let reply = if self.account.is_some() {
                    no_code(
                        "QUOTA/MAXSIZE",
                        format!(
                            "A literal of {n} octets is larger than sieve.max_script_size ({})",
                            self.config.sieve.max_script_size.0
                        ),
                    )
                } else {
                    no(format!("A literal of {n} octets is too large before login"))
                };
                return self.bad(reply);
            }
            Err(Malformed::Syntax(why)) => return self.bad(no(format!("Syntax error: {why}"))),
        };
        let args = command.args.as_slice();
        match command.name.as_str() {
            "CAPABILITY" if args.is_empty() => {
                self.capabilities();
                self.reply(ok("Capability completed"));
            }
            "LOGOUT" if args.is_empty() => {
                self.reply(ok("Logout completed"));
                return Err(End::Logout);
            }
            "NOOP" => match strings(args, 0, 1) {
                // RFC 5804 §2.15: the tag comes back.
                Some(tag) => {
                    write_response_tagged(&mut self.out, tag.first().copied());
                }
                None => return self.bad(no("Syntax: NOOP [tag]")),
            },
            "STARTTLS" if args.is_empty() => return self.starttls().await,
            "AUTHENTICATE" => return self.authenticate(args).await,
            "UNAUTHENTICATE" if args.is_empty() => {
                if self.account.take().is_none() {
                    return self.bad(no("Not authenticated"));
                }
                self.user_ip_slot = None;
                self.reader.set_max_literal(MAX_LITERAL_BEFORE_LOGIN);
                self.reply(ok("Unauthenticated"));
            }
            "HAVESPACE" | "PUTSCRIPT" | "LISTSCRIPTS" | "SETACTIVE" | "GETSCRIPT"
            | "DELETESCRIPT" | "RENAMESCRIPT" | "CHECKSCRIPT" => {
                let Some(account) = self.account.clone() else {
                    return self.bad(no("Authenticate first"));
                };
                return self.script_command(&account, &command).await;
            }
            "CAPABILITY" | "LOGOUT" | "STARTTLS" | "UNAUTHENTICATE" => {
                return self.bad(no(format!("{} takes no arguments", command.name)));
            }
            _ => return self.bad(no("Unknown command")),
        }
        Ok(())
    }

    fn plaintext_ok(&self) -> bool {
        self.stream.is_tls()
            || (self.config.managesieve.plaintext_auth_on_loopback
                && self.peer.ip().to_canonical().is_loopback())
    }

    /// RFC 5804 §1.7: only what works right now is listed.
    fn capabilities(&mut self) {
        let extensions = crate::sieve::compile::EXTENSIONS.join(" ");
        let mut lines: Vec<(&str, String)> =
            vec![("IMPLEMENTATION", "Merpati".into()), ("SIEVE", extensions)];
        if self.account.is_none() {
            let sasl = if self.plaintext_ok() {
                "PLAIN LOGIN"
            } else {
                ""
            };
            lines.push(("SASL", sasl.into()));
            if !self.stream.is_tls() {
                lines.push(("STARTTLS", String::new()));
            }
        } else if let Some(account) = &self.account {
            lines.push(("OWNER", account.clone()));
        }
        // RFC 5804 §1.7: the enotify methods we have.
        lines.push(("NOTIFY", "mailto".into()));
        lines.push(("MAXREDIRECTS", self.config.sieve.max_redirects.to_string()));
        lines.push(("UNAUTHENTICATE", String::new()));
        lines.push(("VERSION", "1.0".into()));
        for (name, value) in lines {
            write_string(&mut self.out, name.as_bytes());
            if !value.is_empty() || name == "SASL" {
                self.out.push(b' ');
                write_string(&mut self.out, value.as_bytes());
            }
            self.out.extend_from_slice(b"\r\n");
        }
    }

    /// RFC 5804 §2.2: after the handshake the capabilities are sent again.
    async fn starttls(&mut self) -> Result<(), End> {
        if self.stream.is_tls() {
            return self.bad(no("TLS is already active"));
        }
        if self.account.is_some() {
            return self.bad(no("STARTTLS is only valid before login"));
        }
        self.reply(ok("Begin TLS negotiation now"));
        self.flush().await?;
        // What was pipelined in plaintext must not count as sent over TLS.
        self.reader.clear();
        let acceptor = tokio_rustls::TlsAcceptor::from(self.svc.tls.get().as_ref().clone());
        let limit = HANDSHAKE_TIMEOUT.min(self.config.managesieve.idle_timeout.0);
        match tokio::time::timeout(limit, self.stream.upgrade(acceptor)).await {
            Ok(Ok(())) => {
                tracing::info!("TLS: {}", self.stream.tls_summary().unwrap_or_default());
            }
            Ok(Err(e)) => {
                tracing::info!("TLS handshake failed: {e}");
                return Err(End::Io(e));
            }
            Err(_) => return Err(End::Timeout),
        }
        self.capabilities();
        self.reply(ok("TLS negotiation successful"));
        Ok(())
    }

    /// RFC 5804 §2.1 with PLAIN (RFC 4616) or LOGIN; `"*"` cancels.
    async fn authenticate(&mut self, args: &[Arg]) -> Result<(), End> {
        if self.account.is_some() {
            return self.bad(no("Already authenticated"));
        }
        let usage = "Syntax: AUTHENTICATE mechanism [initial-response]";
        let (Some(mechanism), true) = (args.first().and_then(Arg::text), args.len() <= 2) else {
            return self.bad(no(usage));
        };
        let Some(mut exchange) = crate::auth::SaslExchange::new(mechanism) else {
            self.reply(no("Unsupported authentication mechanism"));
            return Ok(());
        };
        if !self.plaintext_ok() {
            self.reply(no_code(
                "ENCRYPT-NEEDED",
                "Plaintext authentication disallowed without TLS, use STARTTLS",
            ));
            return Ok(());
        }
        // The initial response, base64 in a string (not an atom).
        let initial = match args.get(1) {
            None => None,
            Some(arg) => match arg.text().and_then(crate::auth::base64_decode) {
                Some(data) => Some(data),
                None => {
                    self.reply(no("Invalid base64 data in the initial response"));
                    return Ok(());
                }
            },
        };
        let mut step = exchange.start(initial);
        loop {
            match step {
                crate::auth::SaslStep::Credentials { login, password } => {
                    return self.login(login, password, exchange.method()).await;
                }
                crate::auth::SaslStep::Failed => return self.auth_failed(),
                crate::auth::SaslStep::Challenge(challenge) => {
                    let Some(data) = self.sasl_step(challenge).await? else {
                        return Ok(());
                    };
                    step = exchange.respond(data);
                }
            }
        }
    }

    /// Sends a challenge (base64 in a string) and reads the response;
    /// `None` after answering a cancel or a malformed response.
    async fn sasl_step(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>, End> {
        let encoded = crate::auth::base64_encode(challenge);
        write_string(&mut self.out, encoded.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        let response = match self.next(true).await? {
            Ok(command) => command.args.into_iter().next(),
            Err(_) => None,
        };
        let Some(response) = response else {
            self.bad(no("Malformed SASL response"))?;
            return Ok(None);
        };
        match response.text() {
            Some("*") => {
                self.reply(no("Authentication cancelled"));
                Ok(None)
            }
            Some(text) => match crate::auth::base64_decode(text) {
                Some(data) => Ok(Some(data)),
                None => {
                    self.reply(no("Invalid base64 data"));
                    Ok(None)
                }
            },
            None => {
                self.reply(no("Invalid base64 data"));
                Ok(None)
            }
        }
    }

    fn auth_failed(&mut self) -> Result<(), End> {
        self.auth_failures += 1;
        if self.auth_failures >= MAX_AUTH_FAILURES {
            self.bye("Too many authentication failures");
            return Err(End::TooManyAuthFailures);
        }
        self.reply(no("Authentication failed"));
        Ok(())
    }

    async fn login(&mut self, login: String, password: String, method: &str) -> Result<(), End> {
        let account = match self.svc.auth.login(self.peer.ip(), &login, &password).await {
            Ok(account) => account,
            Err(crate::auth::AuthError::Failed) => {
                self.failed_logins.record(&login, method);
                return self.auth_failed();
            }
            Err(crate::auth::AuthError::Temporary) => {
                self.reply(no_code(
                    "TRYLATER",
                    "Temporary authentication failure, try again later",
                ));
                return Ok(());
            }
            Err(crate::auth::AuthError::TooMany) => {
                tracing::warn!(
                    "AUTH failure rate limit exceeded: {} from [{}] for service managesieve",
                    self.config.anvil.auth_failure_rate_limit,
                    self.peer.ip()
                );
                self.reply(no_code(
                    "TRYLATER",
                    "Too many failed logins from your address, try again later",
                ));
                return Ok(());
            }
        };
        let limit = self.config.managesieve.max_userip_connections;
        let Some(slot) = self
            .svc
            .user_ip
            .take((account.clone(), self.peer.ip()), limit)
        else {
            tracing::warn!(
                "login refused: user=<{account}>, rip={}: more than {limit} sessions (managesieve.max_userip_connections)",
                self.peer.ip()
            );
            self.reply(no_code(
                "TRYLATER",
                "Maximum number of connections from user+IP exceeded",
            ));
            return Ok(());
        };
        tracing::info!(
            "login: user=<{account}>, method={method}, tls={}",
            if self.stream.is_tls() { "yes" } else { "no" },
        );
        self.user_ip_slot = Some(slot);
        self.account = Some(account);
        self.login_deadline.clear();
        // Literals may now carry scripts (with room for the command).
        self.reader
            .set_max_literal(self.config.sieve.max_script_size.0.saturating_add(1024));
        self.reply(ok("Logged in"));
        Ok(())
    }

    /// The commands of the authenticated state (RFC 5804 §2.5–2.12).
    async fn script_command(&mut self, account: &str, command: &Command) -> Result<(), End> {
        let args = command.args.as_slice();
        let syntax = |usage: &str| no(format!("Syntax: {usage}"));
        let op = match command.name.as_str() {
            "HAVESPACE" => match (args.first().and_then(Arg::text), args.get(1)) {
                (Some(name), Some(size)) if args.len() == 2 => match size.number() {
                    Some(size) => Op::HaveSpace(name.into(), size),
                    None => return self.bad(syntax("HAVESPACE name size")),
                },
                _ => return self.bad(syntax("HAVESPACE name size")),
            },
            "PUTSCRIPT" => match strings(args, 2, 2).as_deref() {
                Some([name, text]) => Op::Put(name.to_string(), text.to_string()),
                _ => return self.bad(syntax("PUTSCRIPT name script (the script in UTF-8)")),
            },
            "CHECKSCRIPT" => match strings(args, 1, 1).as_deref() {
                Some([text]) => Op::Check(text.to_string()),
                _ => return self.bad(syntax("CHECKSCRIPT script (in UTF-8)")),
            },
            "LISTSCRIPTS" if args.is_empty() => Op::List,
            "SETACTIVE" => match strings(args, 1, 1).as_deref() {
                Some([name]) => Op::SetActive(name.to_string()),
                _ => return self.bad(syntax("SETACTIVE name")),
            },
            "GETSCRIPT" => match strings(args, 1, 1).as_deref() {
                Some([name]) => Op::Get(name.to_string()),
                _ => return self.bad(syntax("GETSCRIPT name")),
            },
            "DELETESCRIPT" => match strings(args, 1, 1).as_deref() {
                Some([name]) => Op::Delete(name.to_string()),
                _ => return self.bad(syntax("DELETESCRIPT name")),
            },
            "RENAMESCRIPT" => match strings(args, 2, 2).as_deref() {
                Some([old, new]) => Op::Rename(old.to_string(), new.to_string()),
                _ => return self.bad(syntax("RENAMESCRIPT oldname newname")),
            },
            _ => return self.bad(syntax("LISTSCRIPTS")),
        };
        let store = self.svc.store.clone();
        let settings = self.config.sieve.clone();
        let account = account.to_string();
        let done = tokio::task::spawn_blocking(move || op.run(store.as_ref(), &settings, &account))
            .await
            .unwrap_or_else(|e| {
                Err(ScriptError {
                    kind: ErrorKind::Store,
                    message: format!("store task failed: {e}"),
                })
            });
        match done {
            Ok(data) => {
                self.out.extend_from_slice(&data);
                self.reply(ok(format!(
                    "{} completed",
                    command.name.to_ascii_lowercase()
                )));
            }
            Err(e) => self.reply(script_refusal(e)),
        }
        Ok(())
    }
}

/// `OK (TAG "x") "Done"` for NOOP.
fn write_response_tagged(out: &mut Vec<u8>, tag: Option<&str>) {
    match tag {
        Some(tag) => {
            out.extend_from_slice(b"OK (TAG ");
            write_string(out, tag.as_bytes());
            out.extend_from_slice(b") \"Done\"\r\n");
        }
        None => out.extend_from_slice(b"OK \"Done\"\r\n"),
    }
}

/// A script command, run on the store off the async threads; what it
/// returns goes before the `OK`.
enum Op {
    HaveSpace(String, u64),
    Put(String, String),
    Check(String),
    List,
    SetActive(String),
    Get(String),
    Delete(String),
    Rename(String, String),
}

impl Op {
    fn run(
        self,
        store: &dyn crate::store::MailStore,
        settings: &crate::config::Sieve,
        account: &str,
    ) -> Result<Vec<u8>, ScriptError> {
        let mut out = Vec::new();
        match self {
            Op::HaveSpace(name, size) => {
                scripts::have_space(store, settings, account, &name, size)?;
            }
            Op::Put(name, text) => scripts::put(store, settings, account, &name, &text)?,
            Op::Check(text) => {
                scripts::check(&text)?;
            }
            Op::List => {
                let (names, active) = scripts::list(store, account)?;
                for name in names {
                    write_string(&mut out, name.as_bytes());
                    if active.as_deref() == Some(name.as_str()) {
                        out.extend_from_slice(b" ACTIVE");
                    }
                    out.extend_from_slice(b"\r\n");
                }
            }
            // RFC 5804 §2.8: the empty name deactivates.
            Op::SetActive(name) if name.is_empty() => scripts::activate(store, account, None)?,
            Op::SetActive(name) => scripts::activate(store, account, Some(&name))?,
            Op::Get(name) => {
                let text = scripts::get(store, account, &name)?;
                // Always a literal: scripts are multi-line (§2.9).
                out.extend_from_slice(format!("{{{}}}\r\n", text.len()).as_bytes());
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Op::Delete(name) => scripts::delete(store, account, &name)?,
            Op::Rename(old, new) => scripts::rename(store, account, &old, &new)?,
        }
        Ok(out)
    }
}
