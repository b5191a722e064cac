//! One POP3 session (RFC 1939 §3): AUTHORIZATION, then TRANSACTION on a
//! snapshot of INBOX, then UPDATE on QUIT, driven over a plaintext or TLS
//! stream. Dovecot's pop3-login and pop3 processes in one task.
//!
//! Responses are queued while further pipelined commands are already
//! buffered and written before the session waits on the socket (RFC 2449
//! §6.6 PIPELINING), or as soon as a batch grows past [`FLUSH_AT`].

use super::Pop3Service;
use super::proto::{
    Code, Command, Reply, SaslResponse, parse_command, parse_sasl_response, top, write_end,
    write_line, write_stuffed,
};
use crate::config::Config;
use crate::net::listener::{Admitted, Refusal};
use crate::net::stream::MaybeTls;
use crate::smtp::proto::line::{Line, LineError, LineReader};
use crate::store::{FlagOp, INBOX, MailStore, MailboxId, StoreError, Uid};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Queued response bytes that are written out even while more pipelined
/// commands wait, so a client pipelining many RETRs cannot make us hold
/// its whole maildrop in memory.
const FLUSH_AT: usize = 64 * 1024;
/// Lines a client may send before it has logged in. A real client needs
/// a handful (CAPA, STLS, CAPA, AUTH or USER/PASS, a retry or two).
const MAX_COMMANDS_BEFORE_LOGIN: u32 = 20;
/// Failed logins in one session before it is closed; the Authenticator
/// additionally slows every failure down per client address.
const MAX_AUTH_FAILURES: u32 = 3;
/// Longest TLS handshake (STLS or implicit TLS), further capped by the
/// idle timeout.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a refused connection is given to read our one line.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(5);

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// Entry point from the accept loop.
pub async fn serve(svc: Arc<Pop3Service>, tcp: TcpStream, admitted: Admitted, implicit_tls: bool) {
    let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    let peer = admitted.peer;
    let span = tracing::info_span!("pop3d", session = id, client = %peer.ip());
    async move {
        tracing::info!(
            "connect from {peer}{}",
            if implicit_tls { " (TLS)" } else { "" }
        );
        let mut session = Session::new(svc, tcp, peer);
        let end = session.run(implicit_tls).await;
        session.log_logout(Some(&end));
        if session.maildrop().is_none()
            && let Some(line) =
                session
                    .failed_logins
                    .summary("pop3", peer.ip(), admitted.local.ip())
        {
            tracing::info!("{line}");
        }
        // Releases the maildrop lock before the line that says we are done.
        drop(session);
        tracing::info!("disconnect from {} ({end})", peer.ip());
        drop(admitted);
    }
    .instrument(span)
    .await
}

/// Answers a connection refused by the accept loop's limits. On the
/// implicit-TLS port the client expects a handshake and sees only a
/// closed connection.
pub async fn refuse(mut tcp: TcpStream, refusal: Refusal) {
    let text = match refusal {
        Refusal::TooManyConnections => "Too many connections, try again later",
        Refusal::TooManyFromClient => "Too many connections from your address",
    };
    let reply = Reply::err_code(Code::SysTemp, text).to_bytes();
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, tcp.write_all(&reply)).await;
}

/// How a session ended, for the disconnect log line.
#[derive(Debug)]
enum End {
    Quit,
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
            End::Quit => f.write_str("quit"),
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

/// RFC 1939 §3 states; UPDATE is the QUIT handler, after which the session
/// ends.
enum State {
    /// Before login; `user` is the name a USER command gave.
    Authorization {
        user: Option<String>,
    },
    Transaction(Box<Maildrop>),
}

/// The INBOX as it was at login: message numbers index `messages` and stay
/// stable for the session; new mail waits for the next one.
struct Maildrop {
    account: String,
    mailbox: MailboxId,
    uid_validity: u32,
    messages: Vec<Entry>,
    stats: Stats,
    read_ahead: Option<ReadAhead>,
    /// Held for the session; a second POP3 session of the account gets
    /// `[IN-USE]` until it is dropped.
    _lock: MaildropLock,
}

struct Entry {
    uid: Uid,
    /// Octets of the message as the store returns it, i.e. as RETR sends it
    /// before byte-stuffing: RFC 1939 §5 and §11 count sizes without the
    /// stuffing and the termination octet. (A message not ending in a line
    /// break gets one added by RETR; the store keeps messages CRLF-ended.)
    size: u64,
    deleted: bool,
    /// Sent whole by RETR, so marked `\Seen` at QUIT (as Dovecot does).
    retrieved: bool,
}

/// The message after the one just sent, being read from the store while
/// the client is busy with its predecessor. Messages never change, so an
/// unused read-ahead is merely wasted; an abandoned one finishes and is
/// dropped.
struct ReadAhead {
    number: u32,
    task: tokio::task::JoinHandle<Result<Vec<u8>, StoreError>>,
}

impl ReadAhead {
    fn start(store: &Arc<dyn MailStore>, number: u32, mailbox: MailboxId, uid: Uid) -> ReadAhead {
        let store = store.clone();
        ReadAhead {
            number,
            task: tokio::task::spawn_blocking(move || store.message(mailbox, uid)),
        }
    }

    async fn finish(self) -> Result<Vec<u8>, StoreError> {
        self.task.await.unwrap_or_else(|e| Err(task_failed(e)))
    }
}

/// What the session did, for the logout line (Dovecot's `retr=` `del=`).
#[derive(Default)]
struct Stats {
    retr: u32,
    retr_bytes: u64,
    top: u32,
    /// Messages actually removed in UPDATE.
    deleted: usize,
}

impl Maildrop {
    /// RFC 1939 §5: a message number that exists and is not marked deleted.
    fn entry(&self, number: u32) -> Result<&Entry, Reply> {
        let entry = usize::try_from(number)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.messages.get(i))
            .ok_or_else(|| Reply::err("No such message"))?;
        if entry.deleted {
            return Err(Reply::err(format!("Message {number} already deleted")));
        }
        Ok(entry)
    }

    fn entry_mut(&mut self, number: u32) -> Result<&mut Entry, Reply> {
        self.entry(number)?;
        usize::try_from(number)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.messages.get_mut(i))
            .ok_or_else(|| Reply::err("No such message"))
    }

    /// Live (not deleted) messages and their total size.
    fn totals(&self) -> (usize, u64) {
        self.messages
            .iter()
            .filter(|m| !m.deleted)
            .fold((0, 0), |(n, size), m| (n + 1, size + m.size))
    }

    /// RFC 1939 §7 / RFC 2449: unique and stable across sessions, and the
    /// same identity IMAP gives the message (UIDVALIDITY + UID), 16
    /// printable characters.
    fn uidl(&self, entry: &Entry) -> String {
        format!("{:08x}{:08x}", self.uid_validity, entry.uid.0)
    }
}

/// Maildrops held by POP3 sessions in this process: (store, account).
///
/// A process-wide set rather than a field of [`Pop3Service`], whose fields
/// are fixed by `app.rs`; process-wide is also the right scope, since one
/// process owns a store (redb locks it). The store's address tells two
/// stores apart (in-process tests); the guard keeps an `Arc` of the store,
/// so that address cannot be reused while the lock exists. IMAP does not
/// look at this set: IMAP access goes on while POP3 holds the lock.
static LOCKS: OnceLock<Mutex<HashSet<(usize, String)>>> = OnceLock::new();

struct MaildropLock {
    key: (usize, String),
    _store: Arc<dyn MailStore>,
}

impl MaildropLock {
    fn acquire(store: &Arc<dyn MailStore>, account: &str) -> Option<MaildropLock> {
        let address = Arc::as_ptr(store).cast::<()>() as usize;
        let key = (address, account.to_string());
        let mut set = LOCKS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !set.insert(key.clone()) {
            return None;
        }
        Some(MaildropLock {
            key,
            _store: store.clone(),
        })
    }
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        if let Some(locks) = LOCKS.get() {
            locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.key);
        }
    }
}

/// Runs a blocking store call off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(task_failed(e)))
}

fn task_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io(std::io::Error::other(format!("store task failed: {e}")))
}

struct Session {
    svc: Arc<Pop3Service>,
    /// Config snapshot for this session: a reload applies to new sessions.
    config: Arc<Config>,
    stream: MaybeTls,
    /// Splits what the client sends into bounded lines; what it holds past
    /// the current line is the client's pipelined commands.
    reader: LineReader,
    /// Socket read buffer, reused for every read.
    inbuf: Vec<u8>,
    /// Responses not yet written: flushed before waiting for the client,
    /// so pipelined commands get their answers in one write.
    out: Vec<u8>,
    peer: SocketAddr,
    state: State,
    /// Unknown, malformed or misplaced commands so far (`max_bad_commands`).
    bad_commands: u32,
    /// Lines received before login ([`MAX_COMMANDS_BEFORE_LOGIN`]).
    lines_before_login: u32,
    /// Refused logins in this session ([`MAX_AUTH_FAILURES`]).
    auth_failures: u32,
    /// For the disconnect line fail2ban reads.
    failed_logins: crate::auth::FailedLogins,
    /// Until a successful login.
    login_deadline: crate::net::deadline::LoginDeadline,
    /// This session's place in the (account, address) count.
    user_ip_slot: Option<crate::net::anvil::Slot<(String, std::net::IpAddr)>>,
}

impl Session {
    fn new(svc: Arc<Pop3Service>, tcp: TcpStream, peer: SocketAddr) -> Self {
        let config = svc.config.get();
        let login_timeout = config.pop3.login_timeout.0;
        Session {
            // The configured limit counts the CRLF; the reader's does not.
            reader: LineReader::new(config.pop3.line_length_limit.saturating_sub(2)),
            config,
            svc,
            stream: MaybeTls::Plain(tcp),
            inbuf: vec![0; READ_CHUNK],
            out: Vec::with_capacity(1024),
            peer,
            state: State::Authorization { user: None },
            bad_commands: 0,
            lines_before_login: 0,
            auth_failures: 0,
            failed_logins: Default::default(),
            login_deadline: crate::net::deadline::LoginDeadline::start(login_timeout),
            user_ip_slot: None,
        }
    }

    async fn run(&mut self, implicit_tls: bool) -> End {
        if implicit_tls && let Err(end) = self.handshake().await {
            return end;
        }
        self.reply(Reply::ok("Merpati POP3 server ready"));
        loop {
            let line = match self.next_line().await {
                Ok(line) => line,
                Err(end) => return end,
            };
            if let Err(end) = self.line(line).await {
                let _ = self.flush().await;
                return end;
            }
            if self.out.len() >= FLUSH_AT
                && let Err(end) = self.flush().await
            {
                return end;
            }
        }
    }

    fn idle_timeout(&self) -> Duration {
        self.config.pop3.idle_timeout.0
    }

    fn reply(&mut self, reply: Reply) {
        reply.write_to(&mut self.out);
    }

    /// Answers a bad command (unknown, malformed, wrong state, over-long);
    /// the one that reaches `max_bad_commands` closes the session.
    fn bad(&mut self, reply: Reply) -> Result<(), End> {
        self.bad_commands = self.bad_commands.saturating_add(1);
        if self.bad_commands >= self.config.pop3.max_bad_commands {
            self.reply(Reply::err("Too many bad commands, closing connection"));
            return Err(End::TooManyBadCommands);
        }
        self.reply(reply);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.config.pop3.idle_timeout.0, write).await {
            Ok(Ok(())) => {
                self.out.clear();
                // A big message leaves a big buffer behind: give it back
                // rather than keep it for the rest of the session.
                if self.out.capacity() > 4 * FLUSH_AT {
                    self.out = Vec::with_capacity(1024);
                }
                Ok(())
            }
            Ok(Err(e)) => Err(End::Io(e)),
            Err(_) => Err(End::Timeout),
        }
    }

    /// Writes the queued responses, then waits for more bytes from the
    /// client, for at most the idle timeout (RFC 1939 §3 autologout), and
    /// only until shutdown.
    async fn read_more(&mut self) -> Result<(), End> {
        self.flush().await?;
        let shutdown = self.svc.shutdown.clone();
        let (timeout, login) = self.login_deadline.limit(self.idle_timeout());
        let read = tokio::time::timeout(timeout, self.stream.read(&mut self.inbuf));
        let n = tokio::select! {
            r = read => match r {
                Ok(Ok(0)) => return Err(End::ClientClosed),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(End::Io(e)),
                Err(_) if login => {
                    tracing::info!("login_timeout exceeded before a login");
                    self.reply(Reply::err_code(Code::SysTemp, "Login timeout"));
                    let _ = self.flush().await;
                    return Err(End::Timeout);
                }
                Err(_) => {
                    self.reply(Reply::err("Autologout; idle for too long"));
                    let _ = self.flush().await;
                    return Err(End::Timeout);
                }
            },
            _ = shutdown.cancelled() => {
                self.reply(Reply::err_code(Code::SysTemp, "Server shutting down"));
                let _ = self.flush().await;
                return Err(End::Shutdown);
            }
        };
        self.reader.push(self.inbuf.get(..n).unwrap_or_default());
        Ok(())
    }

    async fn next_line(&mut self) -> Result<Result<Line, LineError>, End> {
        loop {
            if let Some(line) = self.reader.next_line() {
                return Ok(line);
            }
            self.read_more().await?;
        }
    }

    async fn line(&mut self, line: Result<Line, LineError>) -> Result<(), End> {
        if matches!(self.state, State::Authorization { .. }) {
            self.lines_before_login += 1;
            if self.lines_before_login > MAX_COMMANDS_BEFORE_LOGIN {
                self.reply(Reply::err("Too many commands before login"));
                return Err(End::TooManyCommandsBeforeLogin);
            }
        }
        let line = match line {
            Ok(line) => line,
            Err(LineError::TooLong) => return self.bad(Reply::err("Line too long")),
        };
        let command = match parse_command(&line.bytes) {
            Ok(command) => command,
            Err(e) => return self.bad(e.reply()),
        };
        match command {
            Command::Capa => self.capa(),
            Command::Quit => return self.quit().await,
            Command::Stls => return self.stls().await,
            Command::User(name) => return self.user(name),
            Command::Pass(password) => return self.pass(password).await,
            Command::Auth { mechanism, initial } => return self.auth(mechanism, initial).await,
            Command::Apop => {
                // RFC 1939 §7 APOP needs the plain password on the server to
                // compute the MD5 digest; we keep only Argon2id hashes.
                return self.bad(Reply::err("APOP is not supported, use USER/PASS or AUTH"));
            }
            Command::Stat => return self.stat(),
            Command::List(n) => return self.list(n),
            Command::Uidl(n) => return self.uidl(n),
            Command::Retr(n) => return self.retr(n, None).await,
            Command::Top(n, lines) => return self.retr(n, Some(lines)).await,
            Command::Dele(n) => return self.dele(n),
            Command::Noop => return self.noop(),
            Command::Rset => return self.rset(),
        }
        Ok(())
    }

    // ---- AUTHORIZATION ----------------------------------------------------

    /// Passwords may cross this connection: it is TLS, or loopback and the
    /// config allows it there (RFC 2595 §2.1: never in clear elsewhere).
    fn plaintext_ok(&self) -> bool {
        self.stream.is_tls()
            || (self.config.pop3.plaintext_auth_on_loopback
                && self.peer.ip().to_canonical().is_loopback())
    }

    fn in_authorization(&self) -> bool {
        matches!(self.state, State::Authorization { .. })
    }

    fn plaintext_refusal() -> Reply {
        Reply::err_code(
            Code::Auth,
            "Plaintext authentication disallowed on non-secure connections, use STLS",
        )
    }

    /// RFC 2449 §5. Only what works right now is listed: STLS before TLS,
    /// USER and SASL where a password may be sent, all three only before
    /// login.
    fn capa(&mut self) {
        self.reply(Reply::ok("Capability list follows"));
        let mut lines: Vec<&str> =
            vec!["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"];
        if self.in_authorization() {
            if self.plaintext_ok() {
                lines.push("USER");
                lines.push("SASL PLAIN LOGIN");
            }
            if !self.stream.is_tls() {
                lines.push("STLS");
            }
        }
        lines.push("IMPLEMENTATION Merpati");
        for line in lines {
            write_line(&mut self.out, line.as_bytes());
        }
        write_end(&mut self.out);
    }

    /// RFC 2595 §4: STLS, then the handshake; everything the client sent
    /// before it in plaintext is discarded and the session starts over.
    async fn stls(&mut self) -> Result<(), End> {
        if !self.in_authorization() {
            return self.bad(Reply::err("STLS is only valid before login"));
        }
        if self.stream.is_tls() {
            return self.bad(Reply::err("TLS already active"));
        }
        self.reply(Reply::ok("Begin TLS negotiation"));
        self.flush().await?;
        // Plaintext pipelined after STLS must not be read as if it had come
        // over TLS (the CVE-2011-0411 command injection).
        self.reader.clear();
        self.handshake().await?;
        self.state = State::Authorization { user: None };
        Ok(())
    }

    async fn handshake(&mut self) -> Result<(), End> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.svc.tls.get().as_ref().clone());
        let limit = HANDSHAKE_TIMEOUT.min(self.idle_timeout());
        match tokio::time::timeout(limit, self.stream.upgrade(acceptor)).await {
            Ok(Ok(())) => {
                tracing::info!("TLS: {}", self.stream.tls_summary().unwrap_or_default());
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::info!("TLS handshake failed: {e}");
                Err(End::Io(e))
            }
            Err(_) => Err(End::Timeout),
        }
    }

    fn user(&mut self, name: String) -> Result<(), End> {
        if !self.in_authorization() {
            return self.bad(Reply::err("Already logged in"));
        }
        if !self.plaintext_ok() {
            self.reply(Self::plaintext_refusal());
            return Ok(());
        }
        self.state = State::Authorization { user: Some(name) };
        self.reply(Reply::ok(""));
        Ok(())
    }

    async fn pass(&mut self, password: String) -> Result<(), End> {
        let user = match &mut self.state {
            State::Authorization { user } => user.take(),
            State::Transaction(_) => return self.bad(Reply::err("Already logged in")),
        };
        let Some(login) = user else {
            return self.bad(Reply::err("No username given, use USER first"));
        };
        if !self.plaintext_ok() {
            self.reply(Self::plaintext_refusal());
            return Ok(());
        }
        self.login(login, password, "USER").await
    }

    /// RFC 5034 AUTH with PLAIN (RFC 4616) or LOGIN, with or without an
    /// initial response; `*` cancels.
    async fn auth(
        &mut self,
        mechanism: Option<String>,
        initial: Option<String>,
    ) -> Result<(), End> {
        if !self.in_authorization() {
            return self.bad(Reply::err("Already logged in"));
        }
        let Some(mechanism) = mechanism else {
            // The pre-RFC 5034 listing some clients still probe with.
            self.reply(Reply::ok("Mechanisms follow"));
            if self.plaintext_ok() {
                write_line(&mut self.out, b"PLAIN");
                write_line(&mut self.out, b"LOGIN");
            }
            write_end(&mut self.out);
            return Ok(());
        };
        let Some(mut exchange) = crate::auth::SaslExchange::new(&mechanism) else {
            self.reply(Reply::err("Unsupported authentication mechanism"));
            return Ok(());
        };
        if !self.plaintext_ok() {
            self.reply(Self::plaintext_refusal());
            return Ok(());
        }
        self.state = State::Authorization { user: None };
        let initial = match initial
            .as_deref()
            .map(|i| parse_sasl_response(i.as_bytes()))
        {
            None => None,
            Some(Some(SaslResponse::Data(data))) => Some(data),
            Some(Some(SaslResponse::Cancel)) => {
                self.reply(Reply::err("Authentication cancelled"));
                return Ok(());
            }
            Some(None) => {
                self.reply(Reply::err("Invalid base64 data in initial response"));
                return Ok(());
            }
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

    /// Sends a challenge (base64-encoded here) and reads the client's
    /// response; `None` after answering a cancel or a malformed response.
    async fn sasl_step(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>, End> {
        self.out.extend_from_slice(b"+ ");
        self.out
            .extend_from_slice(crate::auth::base64_encode(challenge).as_bytes());
        self.out.extend_from_slice(b"\r\n");
        let line = match self.next_line().await? {
            Ok(line) => line,
            Err(LineError::TooLong) => {
                self.bad(Reply::err("Line too long"))?;
                return Ok(None);
            }
        };
        match parse_sasl_response(&line.bytes) {
            Some(SaslResponse::Data(data)) => Ok(Some(data)),
            Some(SaslResponse::Cancel) => {
                self.reply(Reply::err("Authentication cancelled"));
                Ok(None)
            }
            None => {
                self.reply(Reply::err("Invalid base64 data"));
                Ok(None)
            }
        }
    }

    /// `-ERR [AUTH]`; the session closes after [`MAX_AUTH_FAILURES`].
    fn auth_failed(&mut self) -> Result<(), End> {
        self.auth_failures += 1;
        self.reply(Reply::err_code(Code::Auth, "Authentication failed"));
        if self.auth_failures >= MAX_AUTH_FAILURES {
            return Err(End::TooManyAuthFailures);
        }
        Ok(())
    }

    /// Checks the password (the Authenticator slows failures down), locks
    /// the maildrop and takes its snapshot.
    async fn login(&mut self, login: String, password: String, method: &str) -> Result<(), End> {
        let account = match self.svc.auth.login(self.peer.ip(), &login, &password).await {
            Ok(account) => account,
            Err(crate::auth::AuthError::Failed) => {
                self.failed_logins.record(&login, method);
                return self.auth_failed();
            }
            Err(crate::auth::AuthError::Temporary) => {
                self.reply(Reply::err_code(
                    Code::SysTemp,
                    "Temporary authentication failure, try again later",
                ));
                return Ok(());
            }
            Err(crate::auth::AuthError::TooMany) => {
                tracing::warn!(
                    "AUTH failure rate limit exceeded: {} from [{}] for service pop3",
                    self.config.anvil.auth_failure_rate_limit,
                    self.peer.ip()
                );
                self.reply(Reply::err_code(
                    Code::SysTemp,
                    "Too many failed logins from your address, try again later",
                ));
                return Ok(());
            }
        };
        let Some(lock) = MaildropLock::acquire(&self.svc.store, &account) else {
            tracing::info!("login: user=<{account}>, method={method}: maildrop in use");
            self.reply(Reply::err_code(
                Code::InUse,
                "Mailbox is locked by another POP3 session",
            ));
            return Ok(());
        };
        let limit = self.config.pop3.max_userip_connections;
        let Some(slot) = self
            .svc
            .user_ip
            .take((account.clone(), self.peer.ip()), limit)
        else {
            tracing::warn!(
                "login refused: user=<{account}>, rip={}: more than {limit} sessions (pop3.max_userip_connections)",
                self.peer.ip()
            );
            self.reply(Reply::err_code(
                Code::InUse,
                "Maximum number of connections from user+IP exceeded",
            ));
            return Ok(());
        };
        self.user_ip_slot = Some(slot);
        let store = self.svc.store.clone();
        let name = account.clone();
        let snapshot = blocking(move || {
            let info = store
                .mailbox(&name, INBOX)?
                .ok_or(StoreError::NoSuchMailbox)?;
            let messages = store.messages(info.id)?;
            Ok((info, messages))
        })
        .await;
        let (info, messages) = match snapshot {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::warn!("login: user=<{account}>: cannot open INBOX: {e}");
                self.reply(Reply::err_code(
                    Code::SysTemp,
                    "Cannot open the mailbox, try again later",
                ));
                return Ok(());
            }
        };
        let maildrop = Maildrop {
            account,
            mailbox: info.id,
            uid_validity: info.uid_validity,
            messages: messages
                .into_iter()
                .map(|m| Entry {
                    uid: m.uid,
                    size: m.size,
                    deleted: false,
                    retrieved: false,
                })
                .collect(),
            stats: Stats::default(),
            read_ahead: None,
            _lock: lock,
        };
        let (count, size) = maildrop.totals();
        tracing::info!(
            "login: user=<{}>, method={method}, tls={}, messages={count}, size={size}",
            maildrop.account,
            if self.stream.is_tls() { "yes" } else { "no" },
        );
        self.state = State::Transaction(Box::new(maildrop));
        self.login_deadline.clear();
        self.reply(Reply::ok(format!(
            "Logged in, {count} messages ({size} octets)"
        )));
        Ok(())
    }

    // ---- TRANSACTION ------------------------------------------------------

    fn maildrop(&self) -> Option<&Maildrop> {
        match &self.state {
            State::Transaction(m) => Some(m),
            State::Authorization { .. } => None,
        }
    }

    fn maildrop_mut(&mut self) -> Option<&mut Maildrop> {
        match &mut self.state {
            State::Transaction(m) => Some(m),
            State::Authorization { .. } => None,
        }
    }

    fn not_logged_in(&mut self) -> Result<(), End> {
        self.bad(Reply::err("Not logged in"))
    }

    fn stat(&mut self) -> Result<(), End> {
        let Some(md) = self.maildrop() else {
            return self.not_logged_in();
        };
        // RFC 1939 §5: exactly "+OK nn mm".
        let (count, size) = md.totals();
        self.reply(Reply::ok(format!("{count} {size}")));
        Ok(())
    }

    fn list(&mut self, number: Option<u32>) -> Result<(), End> {
        let State::Transaction(md) = &self.state else {
            return self.not_logged_in();
        };
        if let Some(n) = number {
            let reply = match md.entry(n) {
                Ok(entry) => Reply::ok(format!("{n} {}", entry.size)),
                Err(reply) => reply,
            };
            self.reply(reply);
            return Ok(());
        }
        let (count, size) = md.totals();
        let out = &mut self.out;
        Reply::ok(format!("{count} messages ({size} octets)")).write_to(out);
        for (i, m) in md.messages.iter().enumerate() {
            if !m.deleted {
                write_line(out, format!("{} {}", i + 1, m.size).as_bytes());
            }
        }
        write_end(out);
        Ok(())
    }

    fn uidl(&mut self, number: Option<u32>) -> Result<(), End> {
        let State::Transaction(md) = &self.state else {
            return self.not_logged_in();
        };
        if let Some(n) = number {
            let reply = match md.entry(n) {
                Ok(entry) => Reply::ok(format!("{n} {}", md.uidl(entry))),
                Err(reply) => reply,
            };
            self.reply(reply);
            return Ok(());
        }
        let out = &mut self.out;
        Reply::ok("Unique-ID listing follows").write_to(out);
        for (i, m) in md.messages.iter().enumerate() {
            if !m.deleted {
                write_line(out, format!("{} {}", i + 1, md.uidl(m)).as_bytes());
            }
        }
        write_end(out);
        Ok(())
    }

    /// RETR (`lines` = None) and TOP. Clients download in order, so the
    /// next message is read ahead while this one travels.
    async fn retr(&mut self, number: u32, lines: Option<u32>) -> Result<(), End> {
        let State::Transaction(md) = &mut self.state else {
            return self.not_logged_in();
        };
        let (mailbox, uid) = match md.entry(number) {
            Ok(entry) => (md.mailbox, entry.uid),
            Err(reply) => {
                self.reply(reply);
                return Ok(());
            }
        };
        let ahead = md.read_ahead.take().filter(|r| r.number == number);
        if let Some(next) = number.checked_add(1)
            && let Ok(entry) = md.entry(next)
        {
            md.read_ahead = Some(ReadAhead::start(&self.svc.store, next, mailbox, entry.uid));
        }
        let message = match ahead {
            Some(ahead) => ahead.finish().await,
            None => {
                let store = self.svc.store.clone();
                blocking(move || store.message(mailbox, uid)).await
            }
        };
        let message = match message {
            Ok(message) => message,
            Err(StoreError::NoSuchMessage) => {
                self.reply(Reply::err(format!(
                    "Message {number} was removed by another session"
                )));
                return Ok(());
            }
            Err(e) => {
                tracing::warn!("cannot read message uid {}: {e}", uid.0);
                self.reply(Reply::err_code(
                    Code::SysTemp,
                    "Cannot read the message, try again later",
                ));
                return Ok(());
            }
        };
        match lines {
            None => {
                Reply::ok(format!("{} octets", message.len())).write_to(&mut self.out);
                write_stuffed(&mut self.out, &message);
            }
            Some(lines) => {
                Reply::ok("Top of message follows").write_to(&mut self.out);
                write_stuffed(&mut self.out, top(&message, lines));
            }
        }
        if let Some(md) = self.maildrop_mut() {
            if lines.is_none() {
                md.stats.retr += 1;
                md.stats.retr_bytes += message.len() as u64;
                if let Ok(entry) = md.entry_mut(number) {
                    entry.retrieved = true;
                }
            } else {
                md.stats.top += 1;
            }
        }
        Ok(())
    }

    fn dele(&mut self, number: u32) -> Result<(), End> {
        let Some(md) = self.maildrop_mut() else {
            return self.not_logged_in();
        };
        let reply = match md.entry_mut(number) {
            Ok(entry) => {
                entry.deleted = true;
                Reply::ok(format!("Message {number} deleted"))
            }
            Err(reply) => reply,
        };
        self.reply(reply);
        Ok(())
    }

    fn noop(&mut self) -> Result<(), End> {
        if self.maildrop().is_none() {
            return self.not_logged_in();
        }
        self.reply(Reply::ok(""));
        Ok(())
    }

    fn rset(&mut self) -> Result<(), End> {
        let Some(md) = self.maildrop_mut() else {
            return self.not_logged_in();
        };
        for m in &mut md.messages {
            m.deleted = false;
        }
        let (count, size) = md.totals();
        self.reply(Reply::ok(format!(
            "Maildrop has {count} messages ({size} octets)"
        )));
        Ok(())
    }

    // ---- UPDATE -----------------------------------------------------------

    /// RFC 1939 §6: QUIT in TRANSACTION removes the messages marked deleted
    /// (the store tells IMAP sessions, which see expunges) and marks the
    /// retrieved ones `\Seen`. Any other end of the session changes nothing.
    async fn quit(&mut self) -> Result<(), End> {
        let Some(md) = self.maildrop_mut() else {
            self.reply(Reply::ok("Merpati POP3 server signing off"));
            return Err(End::Quit);
        };
        let mailbox = md.mailbox;
        let deleted: Vec<Uid> = md
            .messages
            .iter()
            .filter(|m| m.deleted)
            .map(|m| m.uid)
            .collect();
        let seen: Vec<Uid> = md
            .messages
            .iter()
            .filter(|m| m.retrieved && !m.deleted)
            .map(|m| m.uid)
            .collect();
        let (left, _) = md.totals();
        let store = self.svc.store.clone();
        let result = blocking(move || {
            if !seen.is_empty() {
                // Best effort: a flag that fails to stick is no reason to
                // keep messages the user deleted.
                if let Err(e) =
                    store.store_flags(mailbox, &seen, FlagOp::Add, &["\\Seen".into()], None)
                {
                    tracing::warn!("cannot mark retrieved messages \\Seen: {e}");
                }
            }
            if deleted.is_empty() {
                return Ok(0);
            }
            store.expunge(mailbox, &deleted).map(|gone| gone.len())
        })
        .await;
        let reply = match result {
            Ok(removed) => {
                if let Some(md) = self.maildrop_mut() {
                    md.stats.deleted = removed;
                }
                Reply::ok(format!(
                    "Merpati POP3 server signing off ({left} messages left)"
                ))
            }
            Err(e) => {
                tracing::warn!("UPDATE failed, nothing deleted: {e}");
                Reply::err_code(Code::SysTemp, "Some deleted messages not removed")
            }
        };
        self.log_logout(None);
        // The maildrop (and its lock) goes before the client hears the
        // reply, so that it can log in again at once.
        self.state = State::Authorization { user: None };
        self.reply(reply);
        Err(End::Quit)
    }

    /// Dovecot-style summary of a logged-in session; `end` is `None`
    /// after QUIT, else why the session ended without UPDATE.
    fn log_logout(&self, end: Option<&End>) {
        let Some(md) = self.maildrop() else {
            return;
        };
        let s = &md.stats;
        tracing::info!(
            "logout: user=<{}>, retr={} dele={} top={} bytes={}{}",
            md.account,
            s.retr,
            s.deleted,
            s.top,
            s.retr_bytes,
            match end {
                None => String::new(),
                Some(end) => format!(" (no QUIT: {end}, nothing deleted)"),
            }
        );
    }
}
