//! One SMTP session: reads commands, applies policy, writes replies.
//!
//! Replies are queued while further pipelined commands are already
//! buffered and flushed before the session blocks on the socket (RFC 2920
//! §3.2 lets a server batch its replies).

use super::{Mode, SmtpService};
use crate::address::Address;
use crate::auth::{AuthError, base64_decode, decode_plain};
use crate::cleanup::{Client, Submission};
use crate::config::{BareLfPolicy, Config};
use crate::mailauth::{Disposition, Inbound, headers};
use crate::net::deadline::LoginDeadline;
use crate::net::listener::{Admitted, Refusal};
use crate::net::stream::MaybeTls;
use crate::queue::file::QueuedRecipient;
use crate::queue::qmgr::StoreAccounts;
use crate::rewrite::Route;
use crate::smtp::proto::command::{Command, MailFrom, RcptTo, Ret, parse_command};
use crate::smtp::proto::data::{BareLf, BdatDecoder, DataDecoder, DataError, DataProgress};
use crate::smtp::proto::line::{Line, LineReader};
use crate::smtp::proto::reply::Reply;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

mod greylisting;
mod milters;
mod rates;
mod restrict;
mod spam_check;

use crate::config::ScreenAction;
use crate::net::anvil::Event;
use crate::policy::postscreen::Screened;
use crate::policy::{MessageAction, PeerNames, Stage};

/// Commands that move no mail before the session counts as abusive
/// (Postfix's smtpd_junk_command_limit default).
const JUNK_COMMAND_LIMIT: u32 = 100;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// Entry point from the accept loop.
pub async fn serve_connection(
    svc: Arc<SmtpService>,
    tcp: TcpStream,
    admitted: Admitted,
    mode: Mode,
) {
    let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    let peer = admitted.peer;
    // Span names are the Postfix program names (see `logging`).
    let span = match mode {
        Mode::Mx => tracing::info_span!("smtpd", session = id, client = %peer.ip()),
        Mode::Submission {
            implicit_tls: false,
        } => tracing::info_span!("submission/smtpd", session = id, client = %peer.ip()),
        Mode::Submission { implicit_tls: true } => {
            tracing::info_span!("smtps/smtpd", session = id, client = %peer.ip())
        }
    };
    async move {
        let config = svc.config.get();
        let names = if config.restrictions.smtpd_peername_lookup {
            PeerNames::lookup(svc.policy.dns(), peer.ip(), config.dns.timeout.0).await
        } else {
            PeerNames::unknown()
        };
        drop(config);
        tracing::info!("connect from {}", names.describe(peer.ip()));
        let mut session = Session::new(svc, tcp, peer, mode, names);
        let end = session.run().await;
        session.milter_quit().await;
        tracing::info!(
            "disconnect from {} {} ({end})",
            session.client(),
            session.counters()
        );
        drop(admitted);
    }
    .instrument(span)
    .await
}

/// Answers a connection refused by the accept loop's limits.
pub async fn refuse(tcp: TcpStream, refusal: Refusal, hostname: String) {
    let text = match refusal {
        Refusal::TooManyConnections => "Error: too many connections, try again later",
        Refusal::TooManyFromClient => "Error: too many connections from your address",
    };
    let reply = Reply::new(421, "4.7.0", format!("{hostname} {text}"));
    let mut tcp = tcp;
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.write_all(&reply.to_bytes())).await;
}

/// How a session ended, for the disconnect log line.
#[derive(Debug)]
enum End {
    Quit,
    ClientClosed,
    Timeout,
    TooManyErrors,
    Shutdown,
    ProtocolViolation,
    /// A restriction answered 421 or 521 (access(5)): close after it.
    PolicyDisconnect,
    TlsFailed,
    Io(std::io::Error),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Quit => f.write_str("quit"),
            End::ClientClosed => f.write_str("lost connection"),
            End::Timeout => f.write_str("timeout"),
            End::TooManyErrors => f.write_str("too many errors"),
            End::Shutdown => f.write_str("shutdown"),
            End::ProtocolViolation => f.write_str("protocol violation"),
            End::PolicyDisconnect => f.write_str("disconnected by policy"),
            End::TlsFailed => f.write_str("TLS handshake failed"),
            End::Io(e) => write!(f, "{e}"),
        }
    }
}

/// The mail transaction between MAIL and the end of DATA/BDAT LAST.
struct Transaction {
    mail: MailFrom,
    sender: String,
    recipients: Vec<QueuedRecipient>,
    /// BDAT chunks received so far (RFC 3030).
    bdat: Option<BdatDecoder>,
    /// HOLD, PREPEND, REDIRECT, BCC... from the restrictions.
    actions: Vec<MessageAction>,
    /// A restriction said DISCARD: accept and drop.
    discard: Option<String>,
    /// Recipients whose greylisting waits for SPF/DKIM at end of DATA.
    greylist_later: Vec<String>,
}

/// A message after SPF, DKIM, ARC and DMARC.
struct Authenticated {
    /// With our Authentication-Results on top.
    message: Vec<u8>,
    /// DMARC says quarantine.
    junk: bool,
    /// `None` when nothing was checked (submission, mynetworks, `verify` off).
    results: Option<crate::mailauth::Results>,
}

struct Session {
    svc: Arc<SmtpService>,
    /// Config snapshot for this session: a reload applies to new sessions.
    config: Arc<Config>,
    stream: MaybeTls,
    reader: LineReader,
    out: Vec<u8>,
    peer: SocketAddr,
    trusted: bool,
    mode: Mode,
    /// The account logged in with AUTH (submission only).
    account: Option<String>,
    helo: Option<String>,
    esmtp: bool,
    tx: Option<Transaction>,
    errors: u32,
    /// NOOP, RSET, HELP, VRFY, ETRN so far.
    junk: u32,
    counts: Vec<(&'static str, u32)>,
    /// Until the first MAIL (port 25) or a successful AUTH (submission).
    login_deadline: LoginDeadline,
    /// The client's reverse and forward-confirmed names.
    names: PeerNames,
    /// MAIL or RCPT arrived pipelined without EHLO (PIPELINING was never
    /// offered): what reject_unauth_pipelining refuses.
    unauth_pipelining: bool,
    /// The size of the message being finished, for END-OF-MESSAGE checks.
    message_size: u64,
    /// smtpd_delay_reject = false: the client restrictions' refusal,
    /// given to every command that would start mail.
    connect_refusal: Option<Reply>,
    /// The session's milters (`[milter] smtpd_milters`), once connected.
    milters: Option<crate::milter::Milters>,
    /// What they said at connect (or their default action when down):
    /// applies to every MAIL.
    milter_session: crate::milter::Outcome,
    /// postscreen's DNS list verdict (`enforce`): every RCPT gets it.
    screen_refusal: Option<Reply>,
}

impl Session {
    fn new(
        svc: Arc<SmtpService>,
        tcp: TcpStream,
        peer: SocketAddr,
        mode: Mode,
        names: PeerNames,
    ) -> Self {
        let config = svc.config.get();
        let trusted = config.networks().iter().any(|n| n.contains(peer.ip()));
        let config_login_timeout = config.smtp.login_timeout.0;
        Session {
            // The limit counts the CRLF (RFC 5321 §4.5.3.1.4); the reader's does not.
            reader: LineReader::new(config.smtp.line_length_limit.saturating_sub(2)),
            config,
            svc,
            stream: MaybeTls::Plain(tcp),
            out: Vec::with_capacity(512),
            peer,
            trusted,
            mode,
            account: None,
            helo: None,
            esmtp: false,
            tx: None,
            errors: 0,
            junk: 0,
            counts: Vec::new(),
            login_deadline: LoginDeadline::start(config_login_timeout),
            names,
            unauth_pipelining: false,
            message_size: 0,
            connect_refusal: None,
            milters: None,
            milter_session: crate::milter::Outcome::default(),
            screen_refusal: None,
        }
    }

    /// `name[ip]` for the log.
    fn client(&self) -> String {
        self.names.describe(self.peer.ip())
    }

    fn hostname(&self) -> &str {
        &self.config.myhostname
    }

    fn counters(&self) -> String {
        self.counts
            .iter()
            .map(|(verb, n)| format!("{}={n}", verb.to_lowercase()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn count(&mut self, verb: &'static str) {
        match self.counts.iter_mut().find(|(v, _)| *v == verb) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((verb, 1)),
        }
    }

    async fn run(&mut self) -> End {
        if let Mode::Submission { implicit_tls: true } = self.mode {
            let acceptor = tokio_rustls::TlsAcceptor::from(self.svc.tls.get().as_ref().clone());
            let handshake = self.stream.upgrade(acceptor);
            match tokio::time::timeout(self.config.smtp.command_timeout.0, handshake).await {
                Ok(Ok(())) => {}
                _ => return End::TlsFailed,
            }
        } else if let Some(end) = self.postscreen().await {
            return end;
        }
        if let Some(reply) = self.rate_refusal(Event::Connection) {
            self.reply(reply);
            let _ = self.flush().await;
            return End::PolicyDisconnect;
        }
        self.milter_connect().await;
        let greeting = Reply::plain(220, self.config.smtp.banner.clone());
        self.reply(greeting);
        if !self.config.restrictions.smtpd_delay_reject {
            let outcome = self.restrict(Stage::Connect, None, false).await;
            self.connect_refusal = outcome.refusal;
        }
        loop {
            // Checked before every read, so errors of any kind (bad
            // commands, over-long lines) count.
            if self.errors >= self.config.smtp.max_errors {
                let text = format!("{} Error: too many errors", self.hostname());
                self.reply(Reply::new(421, "4.7.0", text));
                let _ = self.flush().await;
                return End::TooManyErrors;
            }
            let line = match self.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => continue, // an over-long line, already answered
                Err(end) => return end,
            };
            if let Err(end) = self.command(line).await {
                let _ = self.flush().await;
                return end;
            }
        }
    }

    /// postscreen(8) before the greeting, for clients outside mynetworks
    /// on port 25: the pregreet test (a client that talks before the 220
    /// is not a real MTA) and the DNS list score, run at the same time.
    async fn postscreen(&mut self) -> Option<End> {
        if self.trusted || self.mode != Mode::Mx {
            return None;
        }
        let policy = self.svc.policy.clone();
        let ip = self.peer.ip();
        if policy.rules().screen_allows(ip) {
            return None;
        }
        let config = self.config.clone();
        let screen = &config.postscreen;
        let who = format!("[{ip}]:{}", self.peer.port());
        let started = std::time::Instant::now();
        let greet_ttl = screen.postscreen_greet_ttl.0;
        let greeted = policy.screen_greeted(ip, greet_ttl);
        let wait = async {
            if greeted {
                Ok(None)
            } else {
                self.pregreet_wait().await
            }
        };
        let (dnsbl, early) = tokio::join!(policy.screen(screen, ip), wait);
        if matches!(early, Ok(None)) && !greeted && !self.config.smtp.greet_pause.0.is_zero() {
            policy.screen_remember_greeted(ip, screen.postscreen_cache_size);
        }
        // A negative allowlist threshold lets well-scored clients (DNS
        // allow lists) skip the pregreet test.
        let allow = screen.postscreen_dnsbl_allowlist_threshold;
        let allowlisted =
            allow < 0 && matches!(dnsbl, Screened::Pass { rank, .. } if rank <= allow);
        match early {
            Err(end) => return Some(end),
            Ok(Some(_)) if allowlisted => {
                tracing::info!("PASS OLD {who} (allowlisted by DNS list score)");
            }
            Ok(Some(bytes)) => {
                let shown: String = String::from_utf8_lossy(&bytes)
                    .chars()
                    .flat_map(char::escape_default)
                    .take(100)
                    .collect();
                tracing::warn!(
                    "PREGREET {} after {:.2} from {who}: {shown}",
                    bytes.len(),
                    started.elapsed().as_secs_f64()
                );
                match screen.postscreen_greet_action {
                    ScreenAction::Enforce => {
                        self.reply(Reply::new(
                            554,
                            "5.5.0",
                            "Error: SMTP protocol synchronization",
                        ));
                        let _ = self.flush().await;
                        return Some(End::ProtocolViolation);
                    }
                    ScreenAction::Drop => {
                        self.reply(Reply::new(521, "5.5.1", "Protocol error"));
                        let _ = self.flush().await;
                        return Some(End::ProtocolViolation);
                    }
                    ScreenAction::Ignore => {}
                }
            }
            Ok(None) => {}
        }
        match dnsbl {
            Screened::Listed { rank, sites } => {
                tracing::info!("DNSBL rank {rank} for {who}");
                let zone = sites.first().cloned().unwrap_or_default();
                let text = format!("Service unavailable; client [{ip}] blocked using {zone}");
                match screen.postscreen_dnsbl_action {
                    ScreenAction::Enforce => {
                        self.screen_refusal = Some(Reply::new(550, "5.7.1", text));
                    }
                    ScreenAction::Drop => {
                        self.reply(Reply::new(521, "5.7.1", text));
                        let _ = self.flush().await;
                        return Some(End::PolicyDisconnect);
                    }
                    ScreenAction::Ignore => {}
                }
            }
            Screened::Pass { cached, .. } if !screen.postscreen_dnsbl_sites.is_empty() => {
                tracing::info!("PASS {} {who}", if cached { "OLD" } else { "NEW" });
            }
            Screened::Pass { .. } => {}
        }
        None
    }

    /// Waits `greet_pause` for a client that talks first; what it sent.
    async fn pregreet_wait(&self) -> Result<Option<Vec<u8>>, End> {
        let pause = self.config.smtp.greet_pause.0;
        let MaybeTls::Plain(tcp) = &self.stream else {
            return Ok(None);
        };
        if pause.is_zero() {
            return Ok(None);
        }
        let mut probe = [0u8; 64];
        match tokio::time::timeout(pause, tcp.peek(&mut probe)).await {
            Err(_) => Ok(None), // quiet: a well-behaved client
            Ok(Ok(0)) => Err(End::ClientClosed),
            Ok(Ok(n)) => Ok(Some(probe.get(..n).unwrap_or_default().to_vec())),
            Ok(Err(e)) => Err(End::Io(e)),
        }
    }

    fn reply(&mut self, reply: Reply) {
        self.out.extend_from_slice(&reply.to_bytes());
    }

    /// Refuses mail as Postfix's smtpd does, with the `NOQUEUE: reject:`
    /// log line admins and their tools (pflogsumm, fail2ban) know:
    /// `NOQUEUE: reject: RCPT from name[ip]: 554 5.7.1 <x>: Relay access
    /// denied; from=<s> to=<x> proto=ESMTP helo=<h>`. A temporary refusal
    /// (4xx) is not a client error and does not count towards `max_errors`.
    fn reject(&mut self, stage: &str, sender: Option<&str>, rcpt: Option<&str>, reply: Reply) {
        let mut line = format!(
            "NOQUEUE: reject: {stage} from {}: {}",
            self.client(),
            reply.first_line()
        );
        if let Some(sender) = sender.or(self.tx.as_ref().map(|tx| tx.sender.as_str())) {
            line.push_str(&format!("; from=<{sender}>"));
        } else {
            line.push(';');
        }
        if let Some(rcpt) = rcpt {
            line.push_str(&format!(" to=<{rcpt}>"));
        }
        let proto = if self.esmtp { "ESMTP" } else { "SMTP" };
        line.push_str(&format!(
            " proto={proto} helo=<{}>",
            self.helo.as_deref().unwrap_or_default()
        ));
        tracing::info!("{line}");
        if reply.code >= 500 {
            self.error(reply);
        } else {
            self.reply(reply);
        }
    }

    /// A reply to a bad command: counts towards `max_errors`.
    fn error(&mut self, reply: Reply) {
        self.errors += 1;
        self.reply(reply);
    }

    async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let timeout = self.config.smtp.command_timeout.0;
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => {
                self.out.clear();
                Ok(())
            }
            Ok(Err(e)) => Err(End::Io(e)),
            Err(_) => Err(End::Timeout),
        }
    }

    /// Reads more bytes from the socket into `sink`, flushing replies first.
    /// Between commands (not inside DATA) a shutdown ends the session.
    async fn read_more(
        &mut self,
        timeout: Duration,
        between_commands: bool,
    ) -> Result<Vec<u8>, End> {
        self.flush().await?;
        let mut buf = vec![0u8; READ_CHUNK];
        let shutdown = self.svc.shutdown.clone();
        let (timeout, login) = self.login_deadline.limit(timeout);
        let read = tokio::time::timeout(timeout, self.stream.read(&mut buf));
        let n = tokio::select! {
            r = read => match r {
                Ok(Ok(0)) => return Err(End::ClientClosed),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(End::Io(e)),
                Err(_) => {
                    if login {
                        let what = if self.mode == Mode::Mx { "MAIL" } else { "AUTH" };
                        tracing::info!(
                            "timeout before {what} from {}: login_timeout exceeded",
                            self.client()
                        );
                    }
                    let text = format!("{} Error: timeout exceeded", self.hostname());
                    self.reply(Reply::new(421, "4.4.2", text));
                    let _ = self.flush().await;
                    return Err(End::Timeout);
                }
            },
            _ = shutdown.cancelled(), if between_commands && self.tx.is_none() => {
                let text = format!("{} Service shutting down, closing transmission channel", self.hostname());
                self.reply(Reply::new(421, "4.3.2", text));
                let _ = self.flush().await;
                return Err(End::Shutdown);
            }
        };
        buf.truncate(n);
        Ok(buf)
    }

    /// The next command line; `Ok(None)` after answering an over-long line.
    async fn next_line(&mut self) -> Result<Option<Line>, End> {
        loop {
            match self.reader.next_line() {
                Some(Ok(line)) => return Ok(Some(line)),
                Some(Err(e)) => {
                    self.error(e.reply());
                    return Ok(None);
                }
                None => {
                    let bytes = self
                        .read_more(self.config.smtp.command_timeout.0, true)
                        .await?;
                    self.reader.push(&bytes);
                }
            }
        }
    }

    /// RFC 2920 §3.1: these commands end a pipelined group; bytes after
    /// them before our reply mean the client did not wait (SMTP smuggling
    /// and spamware both do this). Postfix 3.9 refuses such clients.
    fn pipelining_violation(&mut self) -> bool {
        if self.reader.buffered().is_empty() {
            return false;
        }
        tracing::warn!("improper command pipelining from {}", self.client());
        self.reply(Reply::new(
            554,
            "5.5.0",
            "Error: SMTP protocol synchronization",
        ));
        true
    }

    async fn command(&mut self, line: Line) -> Result<(), End> {
        if line.bare_lf && self.config.smtp.bare_lf == BareLfPolicy::Reject {
            self.error(Reply::new(500, "5.5.2", "Error: bare <LF> received"));
            return Ok(());
        }
        let command = match parse_command(&line.bytes) {
            Ok(c) => c,
            Err(e) => {
                self.count("unknown");
                self.error(e.reply());
                return Ok(());
            }
        };
        self.count(command.verb());
        // Postfix's smtpd_junk_command_limit: commands that cost us work
        // but move no mail count, so a client cannot idle here for ever.
        if matches!(
            command,
            Command::Noop | Command::Rset | Command::Help | Command::Vrfy(_) | Command::Etrn(_)
        ) {
            self.junk += 1;
            if self.junk > JUNK_COMMAND_LIMIT {
                self.errors = self.config.smtp.max_errors;
            }
        }
        let ends_group = matches!(command, Command::Ehlo(_) | Command::Helo(_));
        if ends_group && self.pipelining_violation() {
            return Err(End::ProtocolViolation);
        }
        if !self.esmtp
            && matches!(command, Command::Mail(_) | Command::Rcpt(_))
            && !self.reader.buffered().is_empty()
        {
            self.unauth_pipelining = true;
        }
        match command {
            Command::Ehlo(name) => self.hello(name, true).await,
            Command::Helo(name) => self.hello(name, false).await,
            Command::Mail(mail) => self.mail(mail).await,
            Command::Rcpt(rcpt) => {
                let end = self.rcpt(rcpt).await;
                if end {
                    return Err(End::PolicyDisconnect);
                }
            }
            Command::Data => return self.data().await,
            Command::Bdat { size, last } => return self.bdat(size, last).await,
            Command::Rset => {
                self.tx = None;
                self.milter_abort().await;
                self.reply(Reply::ok());
            }
            Command::Noop => self.reply(Reply::ok()),
            Command::Quit => {
                self.reply(Reply::bye());
                return Err(End::Quit);
            }
            Command::Vrfy(arg) => self.vrfy(&arg),
            Command::Expn(_) => {
                self.error(Reply::new(502, "5.5.1", "Error: command not implemented"))
            }
            Command::Help => self.reply(Reply::help()),
            Command::Etrn(node) => self.etrn(&node),
            Command::StartTls => return self.starttls().await,
            Command::Auth {
                mechanism,
                initial_response,
            } => return self.auth(&mechanism, initial_response).await,
        }
        Ok(())
    }

    async fn hello(&mut self, name: String, esmtp: bool) {
        self.tx = None;
        if let Some(reply) = self.connect_refusal.clone() {
            self.reject("HELO", None, None, reply);
            return;
        }
        let previous = self.helo.replace(name);
        if !self.config.restrictions.smtpd_delay_reject {
            let outcome = self.restrict(Stage::Helo, None, false).await;
            if let Some(reply) = outcome.refusal {
                self.helo = previous;
                self.reject("HELO", None, None, reply);
                return;
            }
        }
        if let Some(name) = self.helo.clone()
            && let Some(reply) = self.milter_helo(&name).await
        {
            self.helo = previous;
            self.reject("HELO", None, None, reply);
            return;
        }
        self.esmtp = esmtp;
        if !esmtp {
            let reply = Reply::helo(self.hostname());
            self.reply(reply);
            return;
        }
        let mut keywords = vec![
            "PIPELINING".to_string(),
            format!("SIZE {}", self.config.smtp.message_size_limit.0),
        ];
        if self.config.smtp.enable_vrfy {
            keywords.push("VRFY".into());
        }
        keywords.push("ETRN".into());
        if !self.stream.is_tls() {
            keywords.push("STARTTLS".into());
        }
        if self.auth_allowed() && self.account.is_none() {
            keywords.push("AUTH PLAIN LOGIN".into());
        }
        for k in [
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ] {
            keywords.push(k.into());
        }
        let reply = Reply::ehlo(self.hostname(), keywords);
        self.reply(reply);
    }

    async fn mail(&mut self, mail: MailFrom) {
        if let Some(reply) = self.connect_refusal.clone() {
            self.reject("MAIL", Some(&sender_text(&mail)), None, reply);
            return;
        }
        if self.tx.is_none()
            && let Some(reply) = self.rate_refusal(Event::Message)
        {
            self.reject("MAIL", Some(&sender_text(&mail)), None, reply);
            return;
        }
        if self.config.restrictions.smtpd_helo_required && self.helo.is_none() {
            self.error(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
            return;
        }
        if matches!(self.mode, Mode::Submission { .. }) && self.account.is_none() {
            let sender = sender_text(&mail);
            let reply = Reply::new(530, "5.7.0", "Authentication required");
            self.reject("MAIL", Some(&sender), None, reply);
            return;
        }
        if self.tx.is_some() {
            self.error(Reply::new(503, "5.5.1", "Error: nested MAIL command"));
            return;
        }
        let limit = self.config.smtp.message_size_limit.0;
        if mail.size.is_some_and(|s| s > limit) {
            let reply = Reply::new(552, "5.3.4", "Message size exceeds fixed limit");
            self.reject("MAIL", Some(&sender_text(&mail)), None, reply);
            return;
        }
        let reserve = self.config.queue.minfree.0;
        if !crate::diskspace::has_room(&self.config.queue_dir(), reserve, mail.size.unwrap_or(0)) {
            tracing::warn!(
                "not enough free space in {} for new mail (queue.minfree = {reserve} bytes)",
                self.config.queue_dir().display()
            );
            let reply = Reply::new(452, "4.3.1", "Insufficient system storage");
            self.reject("MAIL", Some(&sender_text(&mail)), None, reply);
            return;
        }
        let resolver = self.svc.resolver.get();
        let sender = match &mail.sender {
            Some(a) => resolver.canonical(a.clone()).to_string(),
            None => String::new(),
        };
        if !mail.smtputf8 && !sender.is_ascii() {
            let reply = Reply::new(553, "5.6.7", "Must declare SMTPUTF8 to send UTF8 addresses");
            self.reject("MAIL", Some(&sender), None, reply);
            return;
        }
        if let Some(account) = &self.account
            && !self.owns(account, &sender)
        {
            let text = format!("<{sender}>: Sender address rejected: not owned by user {account}");
            let reply = Reply::new(553, "5.7.1", text);
            self.reject("MAIL", Some(&sender), None, reply);
            return;
        }
        self.tx = Some(Transaction {
            mail,
            sender: sender.clone(),
            recipients: Vec::new(),
            bdat: None,
            actions: Vec::new(),
            discard: None,
            greylist_later: Vec::new(),
        });
        if !self.config.restrictions.smtpd_delay_reject {
            let outcome = self.restrict(Stage::Mail, None, false).await;
            if let Some(reply) = self.keep_actions(outcome) {
                self.tx = None;
                self.reject("MAIL", Some(&sender), None, reply);
                return;
            }
        }
        if let Some(reply) = self.milter_mail().await {
            self.tx = None;
            self.reject("MAIL", Some(&sender), None, reply);
            return;
        }
        self.login_deadline.clear();
        self.reply(Reply::ok_sender());
    }

    /// RCPT TO; true when a restriction's 421/521 ends the session.
    async fn rcpt(&mut self, rcpt: RcptTo) -> bool {
        let Some(tx) = &self.tx else {
            self.error(Reply::new(503, "5.5.1", "Error: need MAIL command"));
            return false;
        };
        if tx.recipients.len() >= self.config.smtp.max_recipients {
            // Not an error: RFC 5321 §4.5.3.1.10 expects clients to send the
            // rest in another transaction.
            let rcpt = rcpt.recipient.to_string();
            let reply = Reply::new(452, "4.5.3", "Error: too many recipients");
            self.reject("RCPT", None, Some(&rcpt), reply);
            return false;
        }
        if tx.bdat.is_some() {
            self.error(Reply::new(503, "5.5.1", "Error: RCPT after BDAT"));
            return false;
        }
        if let Some(reply) = self.rate_refusal(Event::Recipient) {
            self.reject("RCPT", None, Some(&rcpt.recipient.to_string()), reply);
            return false;
        }
        let smtputf8 = tx.mail.smtputf8;
        let resolver = self.svc.resolver.get();
        let address = resolver.canonical(rcpt.recipient);
        if !smtputf8 && !address.to_string().is_ascii() {
            let reply = Reply::new(553, "5.6.7", "Must declare SMTPUTF8 to send UTF8 addresses");
            self.reject("RCPT", None, Some(&address.to_string()), reply);
            return false;
        }
        // A bounce to one of our SRS addresses goes back to the sender of
        // the forwarded message: a route of our own, not relaying.
        let srs = self
            .svc
            .mailauth
            .srs_reverse(address.local(), address.domain().unwrap_or(""));
        let text = address.to_string();
        if let Some(reply) = self.screen_refusal.clone() {
            self.reject("RCPT", None, Some(&text), reply);
            return false;
        }
        let local = srs.is_some() || resolver.is_local_domain(&address);
        let outcome = self.restrict(Stage::Rcpt, Some(&text), local).await;
        if let Some(reply) = outcome.refusal {
            let end = Self::disconnects(&reply);
            self.reject("RCPT", None, Some(&text), reply);
            return end;
        }
        let (address, original) = match srs {
            Some(Ok(target)) => match Address::parse(&target) {
                Ok(target) => (target, text.clone()),
                Err(_) => {
                    let reply =
                        Reply::new(550, "5.1.1", format!("<{address}>: invalid SRS address"));
                    self.reject("RCPT", None, Some(&text), reply);
                    return false;
                }
            },
            Some(Err(e)) => {
                let reply = Reply::new(
                    550,
                    "5.1.1",
                    format!("<{address}>: Recipient address rejected: {e}"),
                );
                self.reject("RCPT", None, Some(&text), reply);
                return false;
            }
            None => {
                if local && let Some(reply) = self.check_recipient(&address) {
                    self.reject("RCPT", None, Some(&text), reply);
                    return false;
                }
                (address, String::new())
            }
        };
        // Greylisting last, as postgrey behind smtpd_recipient_restrictions:
        // only a recipient that would otherwise be accepted starts a triplet.
        let sender = self
            .tx
            .as_ref()
            .map(|tx| tx.sender.clone())
            .unwrap_or_default();
        let greylist_later = match self.greylist_rcpt(&sender, &text, local) {
            greylisting::AtRcpt::Go => false,
            greylisting::AtRcpt::Later => true,
            greylisting::AtRcpt::Refuse(reply) => {
                self.reject("RCPT", None, Some(&text), reply);
                return false;
            }
        };
        if let Some(reply) = self.milter_rcpt(&text).await {
            self.reject("RCPT", None, Some(&text), reply);
            return false;
        }
        if greylist_later && let Some(tx) = &mut self.tx {
            tx.greylist_later.push(text.clone());
        }
        // Only an accepted recipient's actions count (Postfix keeps those
        // of every RCPT that was not refused).
        self.keep_actions(outcome);
        let notify = rcpt
            .notify
            .map(|list| crate::smtp::proto::command::notify_words(&list))
            .unwrap_or_default();
        let recipient = QueuedRecipient {
            address: address.to_string(),
            orcpt: rcpt.orcpt.unwrap_or_default(),
            notify,
            last_reply: String::new(),
            original,
        };
        if let Some(tx) = &mut self.tx {
            tx.recipients.push(recipient);
        }
        self.reply(Reply::ok_recipient());
        false
    }

    /// The local recipient table and quota (after the restrictions, as
    /// Postfix's smtpd_reject_unlisted_recipient); `None` accepts.
    fn check_recipient(&self, address: &Address) -> Option<Reply> {
        let resolver = self.svc.resolver.get();
        let accounts = StoreAccounts(self.svc.store.clone());
        if resolver.is_known(address, &accounts) {
            self.check_quota(address, &accounts)
        } else {
            Some(Reply::new(
                550,
                "5.1.1",
                format!(
                    "<{address}>: Recipient address rejected: User unknown in local recipient table"
                ),
            ))
        }
    }

    /// Over quota is found at RCPT, while the client can still be told
    /// (as Dovecot's `lmtp_rcpt_check_quota`): `452 4.2.2` when every
    /// mailbox the address leads to is full, or would be with the declared
    /// SIZE. Temporary, as quota may be freed; delivery checks again.
    fn check_quota(&self, address: &Address, accounts: &StoreAccounts) -> Option<Reply> {
        let size = self.tx.as_ref().and_then(|tx| tx.mail.size).unwrap_or(0);
        let resolver = self.svc.resolver.get();
        let mut full = 0;
        for route in resolver.expand(address, accounts) {
            let Ok(crate::rewrite::Route::Local { account, .. }) = route else {
                return None; // somewhere else to go: accept
            };
            match self.svc.store.account(&account) {
                Ok(Some(info))
                    if info.quota_bytes > 0
                        && info.used_bytes.saturating_add(size.max(1)) > info.quota_bytes =>
                {
                    full += 1
                }
                _ => return None,
            }
        }
        (full > 0).then(|| {
            Reply::new(
                452,
                "4.2.2",
                format!("<{address}>: Recipient address rejected: Mailbox full"),
            )
        })
    }

    fn vrfy(&mut self, arg: &str) {
        if !self.config.smtp.enable_vrfy {
            self.error(Reply::new(502, "5.5.1", "VRFY command is disabled"));
            return;
        }
        let text = arg.trim().trim_start_matches('<').trim_end_matches('>');
        let Ok(address) = Address::parse(text) else {
            self.error(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
            return;
        };
        let address = self.svc.resolver.get().canonical(address);
        match self.check_recipient(&address) {
            None => self.reply(Reply::new(252, "2.0.0", address.to_string())),
            Some(reply) => self.error(reply),
        }
    }

    fn etrn(&mut self, node: &str) {
        // A queue run costs every deferred file a write: only our own
        // networks may ask for one.
        if !self.trusted {
            self.error(Reply::new(
                458,
                "4.7.1",
                "Error: ETRN is not permitted from your address",
            ));
            return;
        }
        if self.tx.is_some() {
            self.error(Reply::new(
                503,
                "5.5.1",
                "Error: MAIL transaction in progress",
            ));
            return;
        }
        if node.trim().is_empty() {
            self.error(Reply::new(500, "5.5.4", "Syntax: ETRN domain"));
            return;
        }
        // Postfix's fast_flush is per site; we retry all deferred mail,
        // which includes that site's.
        self.svc.triggers.flush.notify_one();
        self.reply(Reply::plain(250, "Queuing started"));
    }

    async fn starttls(&mut self) -> Result<(), End> {
        if self.stream.is_tls() {
            self.error(Reply::new(554, "5.5.1", "Error: TLS already active"));
            return Ok(());
        }
        self.reply(Reply::ready_to_start_tls());
        self.flush().await?;
        // CVE-2011-0411: plaintext pipelined after STARTTLS must not be
        // read as if it came over TLS.
        self.reader.clear();
        let acceptor = tokio_rustls::TlsAcceptor::from(self.svc.tls.get().as_ref().clone());
        let handshake = tokio::time::timeout(
            self.config.smtp.command_timeout.0,
            self.stream.upgrade(acceptor),
        );
        match handshake.await {
            Ok(Ok(())) => {
                tracing::info!(
                    "STARTTLS with {}: {}",
                    self.client(),
                    self.stream.tls_summary().unwrap_or_default()
                );
                // RFC 3207 §4.2: forget everything learnt before TLS.
                self.helo = None;
                self.esmtp = false;
                self.tx = None;
                self.account = None;
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::info!("TLS handshake failed: {e}");
                Err(End::Io(e))
            }
            Err(_) => Err(End::Timeout),
        }
    }

    /// RFC 4954 on submission only, and only under TLS unless the client
    /// is loopback and that is allowed: never a password in plaintext.
    fn auth_allowed(&self) -> bool {
        matches!(self.mode, Mode::Submission { .. })
            && (self.stream.is_tls()
                || (self.peer.ip().is_loopback()
                    && self.config.submission.plaintext_auth_on_loopback))
    }

    /// AUTH PLAIN / LOGIN (RFC 4954, RFC 4616).
    async fn auth(&mut self, mechanism: &str, initial: Option<String>) -> Result<(), End> {
        if self.mode == Mode::Mx {
            self.error(Reply::new(
                503,
                "5.5.1",
                "Error: authentication not enabled",
            ));
            return Ok(());
        }
        if !self.auth_allowed() {
            self.error(Reply::new(
                530,
                "5.7.0",
                "Must issue a STARTTLS command first",
            ));
            return Ok(());
        }
        if self.account.is_some() {
            self.error(Reply::new(503, "5.5.1", "Error: already authenticated"));
            return Ok(());
        }
        if self.tx.is_some() {
            self.error(Reply::new(
                503,
                "5.5.1",
                "Error: MAIL transaction in progress",
            ));
            return Ok(());
        }
        let credentials = match mechanism {
            "PLAIN" => {
                let response = match initial {
                    Some(r) => Some(r),
                    None => self.sasl_response("").await?,
                };
                response.and_then(|r| decode_plain(&sasl_bytes(&r)?))
            }
            "LOGIN" => {
                let login = match initial {
                    Some(r) => Some(r),
                    None => self.sasl_response("VXNlcm5hbWU6").await?,
                };
                let login = login.and_then(|l| String::from_utf8(sasl_bytes(&l)?).ok());
                match login {
                    Some(login) => {
                        let password = self.sasl_response("UGFzc3dvcmQ6").await?;
                        password
                            .and_then(|p| String::from_utf8(sasl_bytes(&p)?).ok())
                            .map(|p| (login, p))
                    }
                    None => None,
                }
            }
            _ => {
                self.error(Reply::new(504, "5.5.4", "Unrecognized authentication type"));
                return Ok(());
            }
        };
        let Some((login, password)) = credentials else {
            self.error(Reply::new(501, "5.5.2", "Cannot decode response"));
            return Ok(());
        };
        match self.svc.auth.login(self.peer.ip(), &login, &password).await {
            Ok(account) => {
                tracing::info!("sasl_method={mechanism}, sasl_username={account}");
                self.account = Some(account);
                self.login_deadline.clear();
                self.reply(Reply::auth_succeeded());
            }
            Err(AuthError::Failed) => {
                // Postfix's wording, which fail2ban's postfix filter reads.
                tracing::warn!(
                    "{}: SASL {mechanism} authentication failed: authentication failure",
                    self.client()
                );
                self.error(Reply::new(
                    535,
                    "5.7.8",
                    "Authentication credentials invalid",
                ));
            }
            Err(AuthError::Temporary) => {
                self.error(Reply::new(454, "4.7.0", "Temporary authentication failure"));
            }
            Err(AuthError::TooMany) => {
                let reply = self.auth_rate_refusal();
                self.reply(reply);
                return Err(End::PolicyDisconnect);
            }
        }
        Ok(())
    }

    /// Sends a 334 challenge and reads the client's line; `None` when the
    /// client cancels with `*` (RFC 4954 §4).
    async fn sasl_response(&mut self, challenge: &str) -> Result<Option<String>, End> {
        self.reply(Reply::auth_challenge(challenge));
        let Some(line) = self.next_line().await? else {
            return Ok(None); // an over-long line, already answered
        };
        let text = String::from_utf8_lossy(&line.bytes).trim().to_string();
        Ok((text != "*").then_some(text))
    }

    /// Does `address` belong to `account` (the account itself, or an
    /// alias that delivers to it)?
    fn owns(&self, account: &str, address: &str) -> bool {
        let Ok(address) = Address::parse(address) else {
            return false;
        };
        let accounts = StoreAccounts(self.svc.store.clone());
        self.svc
            .resolver
            .get()
            .expand(&address, &accounts)
            .iter()
            .any(|route| matches!(route, Ok(Route::Local { account: a, .. }) if a == account))
    }

    /// The first From: address of `message` that `account` does not own.
    fn foreign_from(&self, account: &str, message: &[u8]) -> Option<String> {
        let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
        let from = parsed.from()?;
        from.iter()
            .filter_map(|a| a.address())
            .find(|a| !self.owns(account, a))
            .map(str::to_string)
    }

    /// Mail from other servers (port 25, not mynetworks): SPF, DKIM, ARC
    /// and DMARC, forged Authentication-Results with our authserv-id
    /// removed and ours prepended. `Ok((message, junk))`, or the reply
    /// that refuses (DMARC reject) or defers (DNS) the message.
    async fn authenticate(
        &mut self,
        sender: &str,
        message: Vec<u8>,
    ) -> Result<Authenticated, Reply> {
        let unchecked = |message| Authenticated {
            message,
            junk: false,
            results: None,
        };
        if self.mode != Mode::Mx || self.trusted || self.account.is_some() {
            return Ok(unchecked(message));
        }
        let mailauth = self.svc.mailauth.clone();
        let verdict = if self.config.mailauth.verify {
            let helo = self.helo.clone().unwrap_or_default();
            Some(
                mailauth
                    .verify(Inbound {
                        ip: self.peer.ip(),
                        helo: &helo,
                        sender,
                        message: &message,
                    })
                    .await,
            )
        } else {
            None
        };
        let authserv_id = mailauth.authserv_id();
        let message = headers::remove_our_results(&message, &authserv_id).unwrap_or(message);
        let Some(verdict) = verdict else {
            return Ok(unchecked(message));
        };
        tracing::info!("{}: {} from=<{sender}>", self.client(), verdict.summary);
        let junk = match verdict.disposition {
            Disposition::Deliver => false,
            Disposition::Junk => true,
            Disposition::Reject { code, status, text }
            | Disposition::Defer { code, status, text } => {
                return Err(Reply::new(code, status, text));
            }
        };
        let mut out = Vec::with_capacity(verdict.header.len() + message.len());
        out.extend_from_slice(verdict.header.as_bytes());
        out.extend_from_slice(&message);
        Ok(Authenticated {
            message: out,
            junk,
            results: Some(verdict.results),
        })
    }

    /// Checks common to DATA and BDAT; `Some(reply)` refuses.
    fn ready_for_content(&self) -> Option<Reply> {
        match &self.tx {
            None => Some(Reply::new(503, "5.5.1", "Error: need MAIL command")),
            Some(tx) if tx.recipients.is_empty() => {
                Some(Reply::new(554, "5.5.1", "Error: no valid recipients"))
            }
            Some(_) => None,
        }
    }

    fn bare_lf(&self) -> BareLf {
        match self.config.smtp.bare_lf {
            BareLfPolicy::Normalize => BareLf::Normalize,
            BareLfPolicy::Reject => BareLf::Reject,
        }
    }

    async fn data(&mut self) -> Result<(), End> {
        if let Some(reply) = self.ready_for_content() {
            self.error(reply);
            return Ok(());
        }
        if self.tx.as_ref().is_some_and(|tx| tx.bdat.is_some()) {
            self.error(Reply::new(503, "5.5.1", "Error: DATA after BDAT"));
            return Ok(());
        }
        if self.pipelining_violation() {
            return Err(End::ProtocolViolation);
        }
        let outcome = self.restrict(Stage::Data, None, false).await;
        if let Some(reply) = self.keep_actions(outcome) {
            let end = Self::disconnects(&reply);
            let sender = self.tx.as_ref().map(|tx| tx.sender.clone());
            self.reject("DATA", sender.as_deref(), None, reply);
            if end {
                return Err(End::PolicyDisconnect);
            }
            return Ok(());
        }
        self.reply(Reply::start_data());
        let mut decoder = DataDecoder::new(self.config.smtp.message_size_limit.0, self.bare_lf());
        self.consume_content(|input| decoder.feed(input)).await?;
        let result = decoder.finish();
        self.finish_message(result).await;
        Ok(())
    }

    async fn bdat(&mut self, size: u64, last: bool) -> Result<(), End> {
        let refusal = self.ready_for_content();
        let limit = self.config.smtp.message_size_limit.0;
        let bare_lf = self.bare_lf();
        let mut decoder = match self.tx.as_mut().and_then(|tx| tx.bdat.take()) {
            Some(d) => d,
            None => BdatDecoder::new(limit, bare_lf),
        };
        if refusal.is_some() && size > limit {
            // Reading that much for nothing would let a client hold us for
            // ever; without a transaction there is nothing to keep.
            self.error(DataError::TooBig.reply());
            return Err(End::ProtocolViolation);
        }
        // The chunk's octets follow the command whatever our answer is, so
        // they are always consumed (RFC 3030 §2).
        decoder.begin_chunk(size);
        self.consume_content(|input| decoder.feed(input)).await?;
        if let Some(reply) = refusal {
            // A refused chunk ends the transaction: what follows must not
            // be accepted as a whole message.
            self.tx = None;
            self.error(reply);
            return Ok(());
        }
        if last {
            let result = decoder.finish();
            self.finish_message(result).await;
        } else if decoder.size() > limit {
            self.tx = None;
            self.error(DataError::TooBig.reply());
        } else {
            self.reply(Reply::chunk_received(size));
            if let Some(tx) = self.tx.as_mut() {
                tx.bdat = Some(decoder);
            }
        }
        Ok(())
    }

    /// Feeds buffered and then socket bytes to a DATA or BDAT decoder until
    /// it is done; bytes after its end go back to the command reader
    /// (pipelining).
    async fn consume_content(
        &mut self,
        mut feed: impl FnMut(&[u8]) -> DataProgress,
    ) -> Result<(), End> {
        let mut pending = self.reader.take_buffered();
        loop {
            let progress = feed(&pending);
            if progress.done {
                let rest = pending.get(progress.consumed..).unwrap_or(&[]);
                self.reader.push(rest);
                return Ok(());
            }
            pending = self
                .read_more(self.config.smtp.data_timeout.0, false)
                .await?;
        }
    }

    /// Hands a complete message to cleanup; 250 only once it is durable.
    async fn finish_message(&mut self, result: Result<Vec<u8>, DataError>) {
        if let Ok(m) = &result {
            self.message_size = m.len() as u64;
        }
        let eod = match &result {
            Ok(_) => Some(self.restrict(Stage::EndOfData, None, false).await),
            Err(_) => None,
        };
        if let Some(outcome) = eod
            && let Some(reply) = self.keep_actions(outcome)
        {
            let sender = self.tx.take().map(|tx| tx.sender).unwrap_or_default();
            self.reject("END-OF-MESSAGE", Some(&sender), None, reply);
            return;
        }
        let Some(mut tx) = self.tx.take() else { return };
        let policy = self.bare_lf();
        let checked = result.and_then(|mut m| {
            crate::smtp::proto::data::bare_cr_in_header(&mut m, policy).map(|()| m)
        });
        let message = match checked {
            Ok(m) => m,
            Err(e) => {
                self.reject("END-OF-MESSAGE", Some(&tx.sender), None, e.reply());
                return;
            }
        };
        if let Some(account) = &self.account
            && let Some(from) = self.foreign_from(account, &message)
        {
            let text = format!("<{from}>: From: header address not owned by user {account}");
            let reply = Reply::new(553, "5.7.1", text);
            self.reject("END-OF-MESSAGE", Some(&tx.sender), None, reply);
            return;
        }
        let checked = match self.authenticate(&tx.sender, message).await {
            Ok(checked) => checked,
            Err(reply) => {
                self.reject("END-OF-MESSAGE", Some(&tx.sender), None, reply);
                return;
            }
        };
        if let Some(reply) =
            self.greylist_end_of_data(&tx.sender, &tx.greylist_later, checked.results.as_ref())
        {
            self.reject("END-OF-MESSAGE", Some(&tx.sender), None, reply);
            return;
        }
        let (mut message, quarantine, checked_results) =
            (checked.message, checked.junk, checked.results);
        // Only our own X-Spam-* fields may count (a filter's own added
        // after this stay).
        if self.spam_scored()
            && let Some(stripped) = crate::spam::strip_foreign_status(&message)
        {
            message = stripped;
        }
        let mut message = match self.milter_message(&mut tx, message).await {
            Ok(m) => m,
            Err(reply) => {
                self.reject("END-OF-MESSAGE", Some(&tx.sender), None, reply);
                return;
            }
        };
        if let Some(reason) = &tx.discard {
            // DISCARD: the client is told it was delivered (access(5)).
            tracing::info!(
                "discard: END-OF-MESSAGE from {}: {reason}; from=<{}>",
                self.client(),
                tx.sender
            );
            self.reply(Reply::new(250, "2.0.0", "Ok: discarded"));
            return;
        }
        let spam = match self
            .spam_verdicts(
                &message,
                &tx.sender,
                &tx.recipients,
                checked_results.as_ref(),
            )
            .await
        {
            Ok(marks) => marks,
            Err(reply) => {
                self.reject("END-OF-MESSAGE", Some(&tx.sender), None, reply);
                return;
            }
        };
        let hold = restrict::apply_actions(&tx.actions, &mut message, &mut tx.recipients);
        // RFC 3848 / RFC 6531 names for the Received: line.
        let base = match (tx.mail.smtputf8, self.esmtp) {
            (true, _) => "UTF8SMTP",
            (false, true) => "ESMTP",
            (false, false) => "SMTP",
        };
        let suffix = match (self.stream.is_tls(), self.account.is_some()) {
            (false, false) => "",
            (true, false) => "S",
            (false, true) => "A",
            (true, true) => "SA",
        };
        let protocol = format!("{base}{suffix}");
        let sender = tx.sender.clone();
        let submission = Submission {
            sender: sender.clone(),
            recipients: tx.recipients,
            message,
            client: Client {
                ip: Some(self.peer.ip()),
                name: Some(self.names.name.clone()),
                helo: self.helo.clone().unwrap_or_default(),
                uid: None,
            },
            protocol,
            envid: tx.mail.envid.unwrap_or_default(),
            ret: match tx.mail.ret {
                Some(Ret::Hdrs) => "HDRS".into(),
                Some(Ret::Full) => "FULL".into(),
                None => String::new(),
            },
            smtputf8: tx.mail.smtputf8,
            complete_headers: self.trusted || self.account.is_some(),
            quarantine,
            hold,
            content_checks: true,
            refusal_holds: false,
            spam,
        };
        match self.svc.cleanup.submit(submission).await {
            Ok(id) => {
                tracing::info!(queue_id = %id, "{id}: client={}", self.client());
                self.reply(Reply::queued(id.as_str()));
            }
            Err(crate::cleanup::CleanupError::Refused { code, status, text }) => {
                let reply = Reply::new(code, status, text);
                self.reject("END-OF-MESSAGE", Some(&sender), None, reply);
            }
            Err(e) => {
                tracing::error!("cannot queue message: {e}");
                self.reply(Reply::new(451, "4.3.0", "Error: queue file write error"));
            }
        }
    }
}

/// The MAIL FROM address as the log shows it (`<>` is the null sender).
fn sender_text(mail: &MailFrom) -> String {
    mail.sender
        .as_ref()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// A SASL response: `=` is the empty response (RFC 4954 §4), else base64.
fn sasl_bytes(text: &str) -> Option<Vec<u8>> {
    if text == "=" {
        Some(Vec::new())
    } else {
        base64_decode(text)
    }
}
