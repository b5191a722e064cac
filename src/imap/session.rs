//! One IMAP session: the connection states of RFC 3501 §3
//! (not authenticated -> authenticated -> selected -> logout), the async
//! driver that reads commands (sending continuation requests for
//! synchronising literals), and the one place where command outcomes and
//! store errors become tagged responses.
//!
//! The command families live beside this file (`mailbox`, `fetch`,
//! `search` with SORT and THREAD, `store`, `idle`) as further
//! `impl Session` blocks.

use super::ImapService;
use super::proto::{Command, CommandKind, CommandReader, Frame, FrameError, parse_command};
use super::selected::Selected;
use crate::config::Config;
use crate::net::stream::MaybeTls;
use crate::store::{MailStore, StoreError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Commands a client may send before it has logged in (CAPABILITY,
/// STARTTLS, ID, a few failed logins...): an unauthenticated client gets
/// no more than this.
const MAX_PREAUTH_COMMANDS: u32 = 30;
/// Pending output above which a long FETCH is flushed mid-command.
pub(super) const FLUSH_AT: usize = 256 * 1024;
/// Time allowed for writes (a client that stops reading is gone).
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// How a session ended, for the disconnect log line.
#[derive(Debug)]
pub(super) enum End {
    Logout,
    ClientClosed,
    Timeout,
    TooManyErrors,
    Shutdown,
    ProtocolViolation,
    Io(std::io::Error),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Logout => f.write_str("logout"),
            End::ClientClosed => f.write_str("lost connection"),
            End::Timeout => f.write_str("idle timeout"),
            End::TooManyErrors => f.write_str("too many errors"),
            End::Shutdown => f.write_str("shutdown"),
            End::ProtocolViolation => f.write_str("protocol violation"),
            End::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A command's successful completion: the tagged OK's code and text.
pub(super) struct Done {
    pub code: Option<String>,
    pub text: String,
    /// The tagged response was already written (STARTTLS).
    pub sent: bool,
}

impl Done {
    pub fn ok(text: impl Into<String>) -> Done {
        Done {
            code: None,
            text: text.into(),
            sent: false,
        }
    }

    pub fn already_sent() -> Done {
        Done {
            code: None,
            text: String::new(),
            sent: true,
        }
    }

    pub fn with_code(code: impl Into<String>, text: impl Into<String>) -> Done {
        Done {
            code: Some(code.into()),
            text: text.into(),
            sent: false,
        }
    }
}

/// Why a command failed. Mapped to the wire only in [`Session::respond`].
pub(super) enum CmdError {
    /// Protocol error (`BAD`): counts towards `max_bad_commands`.
    Bad(String),
    /// Operational failure (`NO`), with an optional response code.
    No(Option<&'static str>, String),
    Store(StoreError),
    /// The session must end (the reason was already written, if any).
    End(End),
}

impl CmdError {
    pub fn no(text: impl Into<String>) -> CmdError {
        CmdError::No(None, text.into())
    }

    pub fn bad(text: impl Into<String>) -> CmdError {
        CmdError::Bad(text.into())
    }
}

impl From<StoreError> for CmdError {
    fn from(e: StoreError) -> Self {
        CmdError::Store(e)
    }
}

pub(super) type CmdResult = Result<Done, CmdError>;

pub(super) struct Session {
    pub svc: Arc<ImapService>,
    /// Config snapshot for this session: a reload applies to new sessions.
    pub config: Arc<Config>,
    pub stream: MaybeTls,
    pub reader: CommandReader,
    /// Responses not yet written.
    pub out: Vec<u8>,
    pub peer: SocketAddr,
    /// The logged-in account (authenticated and selected states).
    pub account: Option<String>,
    /// Failed LOGIN/AUTHENTICATE attempts, for the disconnect line.
    pub failed_logins: crate::auth::FailedLogins,
    /// Until a successful login.
    login_deadline: crate::net::deadline::LoginDeadline,
    /// COMPRESS=DEFLATE once the client asked for it (RFC 4978).
    compress: Option<Box<super::compress::Deflate>>,
    /// This session's place in the (account, address) count.
    user_ip_slot: Option<crate::net::anvil::Slot<(String, std::net::IpAddr)>>,
    pub selected: Option<Selected>,
    /// CONDSTORE enabled (RFC 7162 §3.1): MODSEQ in unsolicited FETCH.
    pub condstore: bool,
    /// QRESYNC enabled (RFC 7162 §3.2.3): VANISHED instead of EXPUNGE.
    pub qresync: bool,
    /// IMAP4rev2 enabled (RFC 9051): no `\Recent`, ESEARCH replies.
    pub rev2: bool,
    /// UTF8=ACCEPT enabled (RFC 6855 §3): mailbox names are UTF-8 both
    /// ways instead of modified UTF-7.
    pub utf8: bool,
    bad_commands: u32,
    preauth_commands: u32,
}

impl Session {
    pub fn new(svc: Arc<ImapService>, stream: MaybeTls, peer: SocketAddr) -> Self {
        let config = svc.config.get();
        let login_timeout = config.imap.login_timeout.0;
        // Before login, literals are bounded by the line limit (a pre-auth
        // unbounded buffer was CVE-2025-61600).
        let line = config.imap.line_length_limit;
        Session {
            reader: CommandReader::new(line, line),
            config,
            svc,
            stream,
            out: Vec::new(),
            peer,
            account: None,
            failed_logins: Default::default(),
            login_deadline: crate::net::deadline::LoginDeadline::start(login_timeout),
            user_ip_slot: None,
            compress: None,
            selected: None,
            condstore: false,
            qresync: false,
            rev2: false,
            utf8: false,
            bad_commands: 0,
            preauth_commands: 0,
        }
    }

    pub async fn run(&mut self) -> End {
        let greeting = format!(
            "* OK [CAPABILITY {}] Merpati IMAP4rev1 ready\r\n",
            self.capabilities()
        );
        self.out.extend_from_slice(greeting.as_bytes());
        loop {
            let bytes = match self.next_command().await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                Err(end) => return end,
            };
            if self.account.is_none() {
                self.preauth_commands += 1;
                if self.preauth_commands > MAX_PREAUTH_COMMANDS {
                    self.untagged("BYE Too many commands before login");
                    let _ = self.flush().await;
                    return End::TooManyErrors;
                }
            }
            let command = match parse_command(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    let tag = e.tag.unwrap_or_else(|| "*".into());
                    let result = if e.reason == "BADCHARSET" && self.utf8 {
                        // RFC 6855 §3 (erratum 4029): after ENABLE
                        // UTF8=ACCEPT strings are UTF-8; another charset
                        // label conflicts.
                        Err(CmdError::bad(
                            "Only UTF-8 strings after ENABLE UTF8=ACCEPT; omit CHARSET",
                        ))
                    } else if e.reason == "BADCHARSET" {
                        Err(CmdError::No(
                            Some("BADCHARSET (UTF-8 US-ASCII)"),
                            "Unsupported charset".into(),
                        ))
                    } else {
                        Err(CmdError::Bad(e.reason))
                    };
                    if let Err(end) = self.respond(&tag, result).await {
                        return end;
                    }
                    continue;
                }
            };
            let Command { tag, kind } = command;
            tracing::debug!(command = kind_name(&kind), "command {tag}");
            let result = self.dispatch(&tag, kind).await;
            if let Err(end) = self.respond(&tag, result).await {
                return end;
            }
        }
    }

    /// Writes the tagged response (the one place outcomes become replies)
    /// and enforces `max_bad_commands`.
    async fn respond(&mut self, tag: &str, result: CmdResult) -> Result<(), End> {
        match result {
            Ok(done) if done.sent => {}
            Ok(done) => {
                let code = done.code.map(|c| format!("[{c}] ")).unwrap_or_default();
                self.line(&format!("{tag} OK {code}{}", done.text));
            }
            Err(CmdError::Bad(reason)) => {
                self.bad_commands += 1;
                self.line(&format!("{tag} BAD {reason}"));
                if self.bad_commands >= self.config.imap.max_bad_commands {
                    self.untagged("BYE Too many invalid commands");
                    let _ = self.flush().await;
                    return Err(End::TooManyErrors);
                }
            }
            Err(CmdError::No(code, text)) => {
                let code = code.map(|c| format!("[{c}] ")).unwrap_or_default();
                self.line(&format!("{tag} NO {code}{text}"));
            }
            Err(CmdError::Store(e)) => {
                let (code, text) = store_error(&e);
                self.line(&format!("{tag} NO [{code}] {text}"));
            }
            Err(CmdError::End(end)) => {
                let _ = self.flush().await;
                return Err(end);
            }
        }
        Ok(())
    }

    async fn dispatch(&mut self, tag: &str, kind: CommandKind) -> CmdResult {
        // Commands valid in every state (RFC 3501 §6.1).
        match kind {
            CommandKind::Capability => {
                let caps = self.capabilities();
                self.untagged(&format!("CAPABILITY {caps}"));
                return Ok(Done::ok("CAPABILITY completed"));
            }
            CommandKind::Noop => {
                self.sync(true).await?;
                return Ok(Done::ok("NOOP completed"));
            }
            CommandKind::Logout => {
                self.untagged("BYE Logging out");
                self.line(&format!("{tag} OK LOGOUT completed"));
                return Err(CmdError::End(End::Logout));
            }
            CommandKind::Id => {
                self.untagged(&format!(
                    "ID (\"name\" \"Merpati\" \"version\" \"{}\")",
                    env!("CARGO_PKG_VERSION")
                ));
                return Ok(Done::ok("ID completed"));
            }
            _ => {}
        }
        if self.account.is_none() {
            return match kind {
                CommandKind::StartTls => self.starttls(tag).await,
                CommandKind::Login { user, password } => self.login(&user, &password).await,
                CommandKind::Authenticate { mechanism, initial } => {
                    self.authenticate(&mechanism, initial).await
                }
                _ => Err(CmdError::bad("Log in first")),
            };
        }
        self.authenticated(tag, kind).await
    }

    /// Commands of the authenticated and selected states.
    async fn authenticated(&mut self, tag: &str, kind: CommandKind) -> CmdResult {
        // Mailbox names from here on are the store's (UTF-8).
        let kind = self.decode_names(kind)?;
        match kind {
            CommandKind::StartTls
            | CommandKind::Login { .. }
            | CommandKind::Authenticate { .. } => Err(CmdError::bad("Already logged in")),
            CommandKind::Enable(caps) => {
                let mut enabled = Vec::new();
                for cap in caps {
                    match cap.as_str() {
                        "CONDSTORE" => self.enable_condstore(),
                        // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
                        "QRESYNC" => {
                            self.enable_condstore();
                            self.qresync = true;
                        }
                        // RFC 9051 §5.1: IMAP4rev2 names mailboxes in UTF-8;
                        // modified UTF-7 is for IMAP4rev1 clients only.
                        "IMAP4REV2" => {
                            self.rev2 = true;
                            self.utf8 = true;
                            if let Some(sel) = self.selected.as_mut() {
                                sel.track_recent = false;
                                sel.recent.clear();
                            }
                        }
                        "UTF8=ACCEPT" => self.utf8 = true,
                        _ => continue,
                    }
                    let name = if cap == "IMAP4REV2" {
                        "IMAP4rev2".to_string()
                    } else {
                        cap
                    };
                    if !enabled.contains(&name) {
                        enabled.push(name);
                    }
                }
                self.untagged(format!("ENABLED {}", enabled.join(" ")).trim_end());
                Ok(Done::ok("ENABLE completed"))
            }
            CommandKind::Namespace => {
                self.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
                Ok(Done::ok("NAMESPACE completed"))
            }
            CommandKind::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => self.select(&mailbox, read_only, condstore, qresync).await,
            CommandKind::Create {
                mailbox,
                special_use,
            } => self.create(&mailbox, &special_use).await,
            CommandKind::Delete(name) => self.delete(&name).await,
            CommandKind::Rename(from, to) => self.rename(&from, &to).await,
            CommandKind::Subscribe(name) => self.subscribe(&name, true).await,
            CommandKind::Unsubscribe(name) => self.subscribe(&name, false).await,
            CommandKind::List {
                reference,
                patterns,
                subscribed_only,
                options,
            } => {
                self.list(&reference, &patterns, subscribed_only, &options)
                    .await
            }
            CommandKind::GetQuota(root) => self.get_quota(&root).await,
            CommandKind::GetQuotaRoot(mailbox) => self.get_quota_root(&mailbox).await,
            CommandKind::SetQuota(_) => Err(CmdError::No(
                Some("NOPERM"),
                "Quotas are set by the administrator".into(),
            )),
            CommandKind::Status { mailbox, items } => self.status(&mailbox, &items).await,
            CommandKind::Append { mailbox, messages } => {
                let done = self.append(&mailbox, messages).await?;
                self.sync(true).await?;
                Ok(done)
            }
            CommandKind::Idle => self.idle(tag).await,
            CommandKind::Compress(mechanism) => self.start_compression(tag, &mechanism).await,
            // Selected state only from here on.
            _ if self.selected.is_none() => Err(CmdError::bad("No mailbox selected")),
            CommandKind::Replace {
                uid,
                target,
                mailbox,
                message,
            } => self.replace(uid, target, &mailbox, message).await,
            CommandKind::Check => {
                self.sync(true).await?;
                Ok(Done::ok("CHECK completed"))
            }
            CommandKind::Close => {
                self.close(true).await?;
                Ok(Done::ok("CLOSE completed"))
            }
            CommandKind::Unselect => {
                self.close(false).await?;
                Ok(Done::ok("UNSELECT completed"))
            }
            CommandKind::Expunge { uids } => {
                let done = self.expunge(uids.as_ref()).await?;
                self.sync(true).await?;
                Ok(done)
            }
            CommandKind::Search { uid, key, ret } => {
                let done = self.search(tag, uid, &key, ret.as_deref()).await?;
                self.sync(uid).await?;
                Ok(done)
            }
            // SORT and THREAD follow SEARCH's rule for EXPUNGE.
            CommandKind::Sort {
                uid,
                criteria,
                charset: _,
                keys,
                ret,
            } => {
                let done = self
                    .sort(tag, uid, &criteria, &keys, ret.as_deref())
                    .await?;
                self.sync(uid).await?;
                Ok(done)
            }
            CommandKind::Thread {
                uid,
                algorithm,
                charset: _,
                keys,
            } => {
                let done = self.thread(uid, algorithm, &keys).await?;
                self.sync(uid).await?;
                Ok(done)
            }
            CommandKind::Fetch {
                uid,
                set,
                items,
                changed_since,
                vanished,
            } => {
                if vanished && !self.qresync {
                    return Err(CmdError::bad("ENABLE QRESYNC first"));
                }
                let done = self
                    .fetch(uid, &set, items, changed_since, vanished)
                    .await?;
                self.sync(uid).await?;
                Ok(done)
            }
            CommandKind::Store {
                uid,
                set,
                op,
                silent,
                flags,
                unchanged_since,
            } => {
                let done = self
                    .store(uid, &set, op, silent, &flags, unchanged_since)
                    .await?;
                self.sync(uid).await?;
                Ok(done)
            }
            CommandKind::Copy {
                uid,
                set,
                mailbox,
                remove,
            } => {
                let done = self.copy(uid, &set, &mailbox, remove).await?;
                self.sync(true).await?;
                Ok(done)
            }
            CommandKind::Capability | CommandKind::Noop | CommandKind::Logout | CommandKind::Id => {
                Err(CmdError::bad("unreachable"))
            }
        }
    }

    // ---- Authentication -------------------------------------------------

    /// Passwords only under TLS, or from loopback when configured
    /// (RFC 3501 §6.2.3 LOGINDISABLED).
    fn auth_allowed(&self) -> bool {
        self.stream.is_tls()
            || (self.peer.ip().is_loopback() && self.config.imap.plaintext_auth_on_loopback)
    }

    pub fn capabilities(&self) -> String {
        let mut caps = vec![
            "IMAP4rev1",
            "IMAP4rev2",
            "LITERAL+",
            "SASL-IR",
            "ID",
            "ENABLE",
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "CHILDREN",
            "SPECIAL-USE",
            "UIDPLUS",
            "MOVE",
            "CONDSTORE",
            "QRESYNC",
            "STATUS=SIZE",
            "ESEARCH",
            "SEARCHRES",
            "WITHIN",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "MULTIAPPEND",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "BINARY",
            "UTF8=ACCEPT",
            "CREATE-SPECIAL-USE",
            "SORT",
            "SORT=DISPLAY",
            "ESORT",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "PREVIEW",
            "OBJECTID",
            "PARTIAL",
            "REPLACE",
            "SAVEDATE",
        ];
        if self.account.is_none() {
            if !self.stream.is_tls() {
                caps.push("STARTTLS");
            }
            if self.auth_allowed() {
                caps.push("AUTH=PLAIN");
                caps.push("AUTH=LOGIN");
            } else {
                caps.push("LOGINDISABLED");
            }
        }
        if self.account.is_some() && self.compress.is_none() {
            caps.push("COMPRESS=DEFLATE");
        }
        // RFC 7889: one limit for every mailbox, the SMTP message size
        // limit (APPEND above it: `NO [TOOBIG]` before the literal).
        let mut text = caps.join(" ");
        text.push_str(&format!(
            " APPENDLIMIT={}",
            self.config.smtp.message_size_limit.0
        ));
        text
    }

    async fn starttls(&mut self, tag: &str) -> CmdResult {
        if self.stream.is_tls() {
            return Err(CmdError::bad("TLS is already active"));
        }
        self.line(&format!("{tag} OK Begin TLS negotiation now"));
        self.flush().await.map_err(CmdError::End)?;
        // RFC 3501 §6.2.1: anything the client pipelined after STARTTLS was
        // sent in the clear and must not be executed.
        self.reader.clear();
        let acceptor = tokio_rustls::TlsAcceptor::from((*self.svc.tls.get()).clone());
        let handshake =
            tokio::time::timeout(Duration::from_secs(60), self.stream.upgrade(acceptor));
        match handshake.await {
            Ok(Ok(())) => {
                tracing::info!(
                    "STARTTLS: {}",
                    self.stream.tls_summary().unwrap_or_default()
                );
                // The tagged OK was already sent; nothing more to say.
                Ok(Done::already_sent())
            }
            Ok(Err(e)) => Err(CmdError::End(End::Io(e))),
            Err(_) => Err(CmdError::End(End::Timeout)),
        }
    }

    async fn login(&mut self, user: &str, password: &str) -> CmdResult {
        if !self.auth_allowed() {
            return Err(CmdError::No(
                Some("PRIVACYREQUIRED"),
                "Use STARTTLS or the TLS port first".into(),
            ));
        }
        self.log_in(user, password, "PLAIN").await
    }

    async fn authenticate(&mut self, mechanism: &str, initial: Option<String>) -> CmdResult {
        if mechanism != "PLAIN" && mechanism != "LOGIN" {
            return Err(CmdError::no("Unsupported authentication mechanism"));
        }
        if !self.auth_allowed() {
            return Err(CmdError::No(
                Some("PRIVACYREQUIRED"),
                "Use STARTTLS or the TLS port first".into(),
            ));
        }
        let response = match initial {
            // RFC 4959: `=` is an empty initial response.
            Some(text) if text == "=" => String::new(),
            Some(text) => text,
            // LOGIN (draft-murchison-sasl-login): "Username:" challenge.
            None if mechanism == "LOGIN" => self.sasl_challenge("VXNlcm5hbWU6").await?,
            None => self.sasl_challenge("").await?,
        };
        if mechanism == "LOGIN" {
            let Some(user) = decode_text(&response) else {
                return Err(CmdError::bad("Invalid SASL LOGIN response"));
            };
            // "Password:"
            let response = self.sasl_challenge("UGFzc3dvcmQ6").await?;
            let Some(password) = decode_text(&response) else {
                return Err(CmdError::bad("Invalid SASL LOGIN response"));
            };
            return self.log_in(&user, &password, "LOGIN").await;
        }
        let Some((user, password)) =
            crate::auth::base64_decode(&response).and_then(|d| crate::auth::decode_plain(&d))
        else {
            return Err(CmdError::bad("Invalid SASL PLAIN response"));
        };
        self.log_in(&user, &password, "PLAIN").await
    }

    /// Sends `+ challenge` and reads the client's response line; `*`
    /// cancels (RFC 3501 §6.2.2).
    async fn sasl_challenge(&mut self, challenge: &str) -> Result<String, CmdError> {
        self.line(&format!("+ {challenge}"));
        let line = self.read_line().await.map_err(CmdError::End)?;
        let response = String::from_utf8_lossy(&line).trim().to_string();
        if response == "*" {
            return Err(CmdError::bad("Authentication cancelled"));
        }
        Ok(response)
    }

    async fn log_in(&mut self, user: &str, password: &str, method: &str) -> CmdResult {
        match self.svc.auth.login(self.peer.ip(), user, password).await {
            Ok(account) => {
                let limit = self.config.imap.max_userip_connections;
                let key = (account.clone(), self.peer.ip());
                let Some(slot) = self.svc.user_ip.take(key, limit) else {
                    tracing::warn!(
                        "login refused: user=<{account}>, rip={}: more than {limit} sessions (imap.max_userip_connections)",
                        self.peer.ip()
                    );
                    return Err(CmdError::No(
                        Some("LIMIT"),
                        format!(
                            "Maximum number of connections from user+IP exceeded (max_userip_connections={limit})"
                        ),
                    ));
                };
                self.user_ip_slot = Some(slot);
                tracing::info!("login: {account}");
                self.account = Some(account);
                self.login_deadline.clear();
                let limit =
                    usize::try_from(self.config.smtp.message_size_limit.0).unwrap_or(usize::MAX);
                self.reader.set_literal_limit(limit);
                Ok(Done::with_code(
                    format!("CAPABILITY {}", self.capabilities()),
                    "Logged in",
                ))
            }
            Err(crate::auth::AuthError::Failed) => {
                self.failed_logins.record(user, method);
                Err(CmdError::No(
                    Some("AUTHENTICATIONFAILED"),
                    "Authentication failed".into(),
                ))
            }
            Err(crate::auth::AuthError::Temporary) => Err(CmdError::No(
                Some("UNAVAILABLE"),
                "Temporary authentication failure".into(),
            )),
            Err(crate::auth::AuthError::TooMany) => {
                tracing::warn!(
                    "AUTH failure rate limit exceeded: {} from [{}] for service imap",
                    self.config.anvil.auth_failure_rate_limit,
                    self.peer.ip()
                );
                Err(CmdError::No(
                    Some("UNAVAILABLE"),
                    "Too many failed logins from your address, try again later".into(),
                ))
            }
        }
    }

    /// RFC 7162 §3.1: the first CONDSTORE-enabling command (ENABLE, FETCH
    /// MODSEQ, SEARCH MODSEQ, STORE UNCHANGEDSINCE...) issued with a mailbox
    /// selected is followed by the mailbox's HIGHESTMODSEQ, so the client
    /// has a starting point.
    pub(super) fn enable_condstore(&mut self) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        if let Some(modseq) = self.selected.as_ref().map(|s| s.known_modseq()) {
            self.untagged(&format!("OK [HIGHESTMODSEQ {modseq}] Highest"));
        }
    }

    // ---- Output ----------------------------------------------------------

    /// Appends one response line (CRLF added).
    pub fn line(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// `* text`.
    pub fn untagged(&mut self, text: &str) {
        self.out.extend_from_slice(b"* ");
        self.line(text);
    }

    pub async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let compressed = match self.compress.as_mut() {
            Some(deflate) => Some(deflate.deflate(&self.out).map_err(End::Io)?),
            None => None,
        };
        let data: &[u8] = compressed.as_deref().unwrap_or(&self.out);
        let stream = &mut self.stream;
        let write = async {
            stream.write_all(data).await?;
            stream.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {
                self.out.clear();
                // Idle sessions should not keep a large FETCH's buffer.
                if self.out.capacity() > 16 * 1024 {
                    self.out = Vec::new();
                }
                Ok(())
            }
            Ok(Err(e)) => Err(End::Io(e)),
            Err(_) => Err(End::Timeout),
        }
    }

    // ---- Input -----------------------------------------------------------

    /// Reads more bytes into the reader, flushing output first. Ends the
    /// session on idle timeout (`* BYE`, RFC 3501 §5.4) or shutdown.
    pub async fn read_more(&mut self) -> Result<(), End> {
        self.flush().await?;
        if self.inflate_pending()? {
            return Ok(());
        }
        let mut buf = vec![0u8; READ_CHUNK];
        let (timeout, login) = self.login_deadline.limit(self.config.imap.idle_timeout.0);
        let shutdown = self.svc.shutdown.clone();
        let n = tokio::select! {
            r = tokio::time::timeout(timeout, self.stream.read(&mut buf)) => match r {
                Ok(Ok(0)) => return Err(End::ClientClosed),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(End::Io(e)),
                Err(_) if login => {
                    tracing::info!("login_timeout exceeded before a login");
                    self.untagged("BYE [UNAVAILABLE] Login timeout");
                    let _ = self.flush().await;
                    return Err(End::Timeout);
                }
                Err(_) => {
                    self.untagged("BYE Autologout; idle for too long");
                    let _ = self.flush().await;
                    return Err(End::Timeout);
                }
            },
            _ = shutdown.cancelled() => {
                self.untagged("BYE Server shutting down");
                let _ = self.flush().await;
                return Err(End::Shutdown);
            }
        };
        // Waiting for the rest of a literal: acknowledge at once.
        if self.reader.pending_literal().is_some() {
            self.stream.quick_ack();
        }
        self.received(buf.get(..n).unwrap_or_default())
    }

    /// Bytes from the network into the command reader, inflated first
    /// under COMPRESS.
    pub fn received(&mut self, bytes: &[u8]) -> Result<(), End> {
        match self.compress.as_mut() {
            None => self.reader.push(bytes),
            Some(deflate) => {
                deflate.feed(bytes);
                let plain = deflate.inflate().map_err(End::Io)?;
                self.reader.push(&plain);
            }
        }
        Ok(())
    }

    /// Inflates more of what the client already sent; true if it did.
    pub fn inflate_pending(&mut self) -> Result<bool, End> {
        match self.compress.as_mut() {
            Some(deflate) if deflate.has_pending() => {
                let plain = deflate.inflate().map_err(End::Io)?;
                self.reader.push(&plain);
                // No progress: the rest needs more input from the socket.
                Ok(!plain.is_empty())
            }
            _ => Ok(false),
        }
    }

    /// COMPRESS DEFLATE (RFC 4978 §3): the tagged OK goes out
    /// uncompressed, everything after it in both directions compressed.
    async fn start_compression(&mut self, tag: &str, mechanism: &str) -> CmdResult {
        if self.compress.is_some() {
            return Err(CmdError::No(
                Some("COMPRESSIONACTIVE"),
                "DEFLATE is already active".into(),
            ));
        }
        if !mechanism.eq_ignore_ascii_case("DEFLATE") {
            return Err(CmdError::bad("Unknown compression mechanism"));
        }
        self.line(&format!("{tag} OK DEFLATE active"));
        self.flush().await.map_err(CmdError::End)?;
        let mut deflate = Box::<super::compress::Deflate>::default();
        deflate.feed(&self.reader.take_unread());
        self.compress = Some(deflate);
        Ok(Done::already_sent())
    }

    /// The next command's bytes; `Ok(None)` after answering a framing error.
    async fn next_command(&mut self) -> Result<Option<Vec<u8>>, End> {
        loop {
            match self.reader.next_frame() {
                Some(Frame::Command(bytes)) => return Ok(Some(bytes)),
                Some(Frame::Continue) => {
                    if let Some(tag) = self.refuse_append_without_room() {
                        let result = Err(CmdError::No(
                            Some("UNAVAILABLE"),
                            "Not enough free disk space, try again later".into(),
                        ));
                        self.respond(&tag, result).await?;
                        return Ok(None);
                    }
                    self.line("+ Ready for literal data");
                    self.flush().await?;
                }
                Some(Frame::Error(FrameError::LineTooLong { tag })) => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    self.respond(&tag, Err(CmdError::bad("Line too long")))
                        .await?;
                    return Ok(None);
                }
                Some(Frame::Error(FrameError::LiteralTooLarge {
                    tag,
                    synchronizing: true,
                })) => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    let result = if self.account.is_some() {
                        Err(CmdError::No(Some("TOOBIG"), "Literal too large".into()))
                    } else {
                        Err(CmdError::bad("Literal too large before login"))
                    };
                    self.respond(&tag, result).await?;
                    return Ok(None);
                }
                Some(Frame::Error(FrameError::LiteralTooLarge {
                    synchronizing: false,
                    ..
                })) => {
                    // RFC 7888 §4: the octets are already on their way.
                    self.untagged("BYE [TOOBIG] Literal too large");
                    let _ = self.flush().await;
                    return Err(End::ProtocolViolation);
                }
                None => self.read_more().await?,
            }
        }
    }

    /// RFC 5530 UNAVAILABLE before an APPEND literal is read, when the
    /// store's disk is below `queue.minfree` plus the literal: returns the
    /// refused command's tag. (A non-synchronising literal is already on
    /// its way; the store's own write reports that case.)
    fn refuse_append_without_room(&mut self) -> Option<String> {
        self.account.as_ref()?;
        let (cmd, size) = self.reader.pending_literal()?;
        let mut words = cmd.split(|&b| b == b' ').skip(1);
        let mut verb = words.next()?;
        if verb.eq_ignore_ascii_case(b"UID") {
            verb = words.next()?;
        }
        if !verb.eq_ignore_ascii_case(b"APPEND") && !verb.eq_ignore_ascii_case(b"REPLACE") {
            return None;
        }
        let reserve = self.config.queue.minfree.0;
        if crate::diskspace::has_room(&self.config.store_dir(), reserve, size as u64) {
            return None;
        }
        tracing::warn!(
            "APPEND refused: not enough free space in {}",
            self.config.store_dir().display()
        );
        Some(self.reader.refuse_literal().unwrap_or_else(|| "*".into()))
    }

    /// One raw line (SASL response, IDLE's DONE).
    pub async fn read_line(&mut self) -> Result<Vec<u8>, End> {
        loop {
            match self.reader.take_line() {
                Some(Ok(line)) => return Ok(line),
                Some(Err(_)) => {
                    self.untagged("BYE Line too long");
                    let _ = self.flush().await;
                    return Err(End::ProtocolViolation);
                }
                None => self.read_more().await?,
            }
        }
    }

    // ---- Store access ----------------------------------------------------

    /// Runs a blocking store operation off the async threads.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn MailStore) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.svc.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
    }

    pub fn account(&self) -> Result<String, CmdError> {
        self.account
            .clone()
            .ok_or_else(|| CmdError::bad("Log in first"))
    }
}

/// A base64 SASL response holding UTF-8 text.
fn decode_text(response: &str) -> Option<String> {
    String::from_utf8(crate::auth::base64_decode(response)?).ok()
}

/// Response code and text for a store error; internal errors are logged
/// in detail and reported generically.
fn store_error(e: &StoreError) -> (&'static str, &'static str) {
    match e {
        StoreError::NoSuchMailbox => ("NONEXISTENT", "No such mailbox"),
        StoreError::NoSuchAccount => ("NONEXISTENT", "No such account"),
        StoreError::NoSuchMessage => ("NONEXISTENT", "No such message"),
        StoreError::MailboxExists => ("ALREADYEXISTS", "Mailbox already exists"),
        StoreError::OverQuota => ("OVERQUOTA", "Quota exceeded"),
        StoreError::InvalidName => ("CANNOT", "Invalid mailbox name or operation"),
        StoreError::AccountExists => ("CANNOT", "Account exists"),
        StoreError::Io(_) | StoreError::Db(_) | StoreError::Corrupt(_) | StoreError::Locked => {
            tracing::error!("mail store error: {e}");
            ("SERVERBUG", "Internal error, try again later")
        }
    }
}

fn kind_name(kind: &CommandKind) -> &'static str {
    match kind {
        CommandKind::Capability => "CAPABILITY",
        CommandKind::Noop => "NOOP",
        CommandKind::Logout => "LOGOUT",
        CommandKind::StartTls => "STARTTLS",
        CommandKind::Id => "ID",
        CommandKind::Enable(_) => "ENABLE",
        CommandKind::Authenticate { .. } => "AUTHENTICATE",
        CommandKind::Login { .. } => "LOGIN",
        CommandKind::Select { .. } => "SELECT",
        CommandKind::Create { .. } => "CREATE",
        CommandKind::Delete(_) => "DELETE",
        CommandKind::Rename(..) => "RENAME",
        CommandKind::Subscribe(_) => "SUBSCRIBE",
        CommandKind::Unsubscribe(_) => "UNSUBSCRIBE",
        CommandKind::List { .. } => "LIST",
        CommandKind::Namespace => "NAMESPACE",
        CommandKind::Status { .. } => "STATUS",
        CommandKind::Append { .. } => "APPEND",
        CommandKind::Replace { .. } => "REPLACE",
        CommandKind::GetQuota(_) => "GETQUOTA",
        CommandKind::GetQuotaRoot(_) => "GETQUOTAROOT",
        CommandKind::SetQuota(_) => "SETQUOTA",
        CommandKind::Idle => "IDLE",
        CommandKind::Compress(_) => "COMPRESS",
        CommandKind::Check => "CHECK",
        CommandKind::Close => "CLOSE",
        CommandKind::Unselect => "UNSELECT",
        CommandKind::Expunge { .. } => "EXPUNGE",
        CommandKind::Search { .. } => "SEARCH",
        CommandKind::Sort { .. } => "SORT",
        CommandKind::Thread { .. } => "THREAD",
        CommandKind::Fetch { .. } => "FETCH",
        CommandKind::Store { .. } => "STORE",
        CommandKind::Copy { .. } => "COPY",
    }
}

/// Wraps a fresh TCP connection (implicit TLS: handshake first).
pub(super) async fn open_stream(
    svc: &ImapService,
    tcp: TcpStream,
    implicit_tls: bool,
) -> std::io::Result<MaybeTls> {
    let mut stream = MaybeTls::Plain(tcp);
    if implicit_tls {
        let acceptor = tokio_rustls::TlsAcceptor::from((*svc.tls.get()).clone());
        tokio::time::timeout(Duration::from_secs(60), stream.upgrade(acceptor))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))??;
    }
    Ok(stream)
}
