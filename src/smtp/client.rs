//! Outbound SMTP client (Postfix's smtp(8)): sessions with one server, a
//! reply for every recipient.
//!
//! [`SmtpConnection::open`] sets a session up; [`SmtpConnection::deliver`]
//! sends one message on it, and may be called again for the next message
//! while [`SmtpConnection::reusable`] says so (a reused connection is
//! checked with RSET first, as Postfix's connection cache does);
//! [`SmtpConnection::quit`] ends it.
//!
//! [`send`] connects, reads the greeting, says EHLO (HELO when EHLO is
//! refused), upgrades with STARTTLS per [`TlsPolicy`], authenticates when
//! asked (only under TLS), then runs the mail transaction: MAIL FROM with
//! the parameters the peer supports, one RCPT TO per recipient, DATA with
//! the dot-stuffed message, and QUIT. With PIPELINING (RFC 2920) MAIL, all
//! RCPTs and DATA go out in one write while the replies are read
//! concurrently, so a long recipient list cannot deadlock the two sides.
//!
//! A refused recipient does not stop the others (client crates such as
//! lettre abort on the first). More than `max_recipients` recipients are
//! sent as several transactions, one after the other, on the same
//! connection (RSET between them when the previous one did not end with
//! the final DATA reply).
//!
//! Errors come in two shapes:
//! - `Err(ClientError)`: the session failed before the peer said anything
//!   about any recipient (connect, greeting, EHLO, TLS, AUTH, MAIL FROM of
//!   the first transaction, or our own SIZE / SMTPUTF8 checks). The same
//!   outcome applies to every recipient; [`ClientError::try_next_host`]
//!   says whether the next MX host is worth a try.
//! - `Ok(Transcript)`: one [`RecipientResult`] per recipient. When the
//!   session broke half-way (lost connection, timeout, 421), recipients
//!   without a final answer get a 4xx reply made up here, marked with
//!   `from_peer == false`, worded as Postfix does ("lost connection with
//!   mx[192.0.2.1]:25 while sending end of data -- message may be sent
//!   more than once").
//!
//! Every read is bounded (see [`wire::MAX_LINE`], [`wire::MAX_LINES`]) and
//! every step has a timeout. The sans-IO parts (reply parser, EHLO
//! keywords, dot-stuffing, DSN parameter encodings) live in [`wire`].

pub mod wire;

use crate::auth::base64_encode;
use crate::smtp::proto::reply::Reply;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, ProtocolVersion, RootCertStore, SignatureScheme,
};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use wire::{Capabilities, DotStuffer, ReplyParser};

/// QUIT is a courtesy; it never holds a delivery up for long.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of the message dot-stuffed and written per write call.
const BODY_CHUNK: usize = 64 * 1024;
/// Size of the read buffer (the parser keeps partial lines itself).
const READ_BUFFER: usize = 8192;

/// Where a conversation was when it failed, in Postfix's words.
const GREETING: &str = "receiving the initial server greeting";
const EHLO: &str = "performing the EHLO handshake";
const HELO: &str = "performing the HELO handshake";
const STARTTLS: &str = "sending STARTTLS";
const HANDSHAKE: &str = "performing the TLS handshake";
const AUTH: &str = "performing SASL authentication";
const MAIL: &str = "sending MAIL FROM";
const RCPT: &str = "sending RCPT TO";
const DATA: &str = "sending DATA command";
const BODY: &str = "sending message body";
const END_OF_DATA: &str = "sending end of data -- message may be sent more than once";
const RSET: &str = "sending RSET";
const QUIT: &str = "sending QUIT";

/// When to use STARTTLS (Postfix's `smtp_tls_security_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    /// Never, even when offered.
    None,
    /// When offered, without checking the certificate (Postfix `may`).
    /// If the handshake fails, the delivery is retried once in plaintext
    /// on a new connection, as Postfix does. The outcome is logged.
    #[default]
    May,
    /// Required: no STARTTLS offered, STARTTLS refused or a failed
    /// handshake is a [`ClientError::Tls`]. The certificate is checked
    /// only with `verify_certificates` (Postfix `encrypt` vs `secure`).
    Encrypt,
}

/// Settings of the client, one set per transport (MX delivery, relayhost).
#[derive(Clone)]
pub struct ClientOptions {
    /// Our name in EHLO/HELO (`myhostname`).
    pub helo_name: String,
    pub tls: TlsPolicy,
    /// With [`TlsPolicy::Encrypt`] only: check the certificate chain and
    /// that it names `server_name`. Ignored with `May` (opportunistic TLS
    /// protects against passive eavesdropping only, RFC 7435).
    pub verify_certificates: bool,
    /// Trust anchors for `verify_certificates` (Postfix `smtp_tls_CAfile`,
    /// see [`load_trust_anchors`]); `None` = the system CA bundle
    /// (`$SSL_CERT_FILE` or the distribution's bundle file).
    pub trust_anchors: Option<Arc<RootCertStore>>,
    /// TCP connect (Postfix `smtp_connect_timeout`, 30 s).
    pub connect_timeout: Duration,
    /// Each reply, each command write and the TLS handshake (Postfix
    /// `smtp_helo_timeout`, `smtp_mail_timeout`..., 300 s).
    pub command_timeout: Duration,
    /// Each write of the message body, and the reply to the final `.`
    /// (Postfix `smtp_data_xfer_timeout` / `smtp_data_done_timeout`).
    pub data_timeout: Duration,
    /// Login and password (AUTH PLAIN, else LOGIN). Only ever sent over
    /// TLS: without TLS the session fails with [`ClientError::Auth`].
    pub auth: Option<(String, String)>,
    /// Most recipients per transaction (Postfix
    /// `smtp_destination_recipient_limit`, 50); 0 = no limit.
    pub max_recipients: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            helo_name: "localhost".into(),
            tls: TlsPolicy::May,
            verify_certificates: false,
            trust_anchors: None,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            auth: None,
            max_recipients: 50,
        }
    }
}

impl fmt::Debug for ClientOptions {
    /// Never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("helo_name", &self.helo_name)
            .field("tls", &self.tls)
            .field("verify_certificates", &self.verify_certificates)
            .field(
                "trust_anchors",
                &self.trust_anchors.as_ref().map(|r| r.len()),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("data_timeout", &self.data_timeout)
            .field(
                "auth",
                &self.auth.as_ref().map(|(user, _)| (user, "<redacted>")),
            )
            .field("max_recipients", &self.max_recipients)
            .finish()
    }
}

/// One envelope recipient and its DSN parameters (RFC 3461 §4), as kept
/// in the queue file (decoded; encoded here for the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    /// `"SUCCESS,FAILURE"` style, or `""`.
    pub notify: String,
    /// `"rfc822;a@b"`, or `""`.
    pub orcpt: String,
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// `""` is the null sender `<>`.
    pub sender: &'a str,
    pub recipients: &'a [Recipient],
    /// DSN `ENVID` (decoded), or `""`.
    pub envid: &'a str,
    /// DSN `RET` (`FULL` / `HDRS`), or `""`.
    pub ret: &'a str,
    /// The message was received with SMTPUTF8 (RFC 6531). Non-ASCII
    /// envelope addresses require it as well.
    pub smtputf8: bool,
    /// The message with CRLF line ends, not dot-stuffed.
    pub message: &'a [u8],
}

/// The answer for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientResult {
    /// A refused RCPT's reply; for an accepted RCPT, the reply to DATA or
    /// to the final `.`. 2xx = delivered, 4xx = defer, 5xx = bounce.
    pub reply: Reply,
    /// False when the reply was made up here: the session broke (lost
    /// connection, timeout, bad reply) before the peer answered for this
    /// recipient, or its address could not be sent at all. Such 4xx
    /// recipients may be tried at the next MX host right away, as Postfix
    /// does.
    pub from_peer: bool,
}

/// How a session went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// `mx.example.org[192.0.2.1]:25`, for the log's `relay=`.
    pub remote: String,
    /// `"TLSv1.3 TLS13_AES_256_GCM_SHA384 unverified"`, or `None` for
    /// plaintext.
    pub tls: Option<String>,
    /// The peer offered DSN (RFC 3461): when false, a NOTIFY=SUCCESS
    /// recipient gets a "relayed" DSN (RFC 3461 §5.2.2).
    pub peer_dsn: bool,
    /// One per envelope recipient, in the same order.
    pub results: Vec<RecipientResult>,
}

/// A session that failed as a whole (see the module docs).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// No TCP connection (refused, unreachable, timed out).
    #[error("{0}")]
    Connect(String),
    /// The greeting, EHLO or HELO was refused.
    #[error("host refused to talk to us: {0}")]
    Greeting(Reply),
    /// The peer's replies made no sense (malformed, too long, out of
    /// sequence), or our own settings are unusable.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// TLS was required but not available, or the handshake failed.
    #[error("{0}")]
    Tls(String),
    /// SASL authentication failed or was impossible (soft bounce, as
    /// Postfix's `smtp_sasl_auth_soft_bounce`).
    #[error("SASL authentication failed: {0}")]
    Auth(String),
    /// MAIL FROM refused, or the message refused before sending (SIZE,
    /// SMTPUTF8): applies to all recipients.
    #[error("{0}")]
    Transaction(Reply),
    /// The connection failed; the text says where.
    #[error("lost connection while {0}")]
    Io(String),
    /// A step timed out.
    #[error("conversation timed out while {0}")]
    Timeout(&'static str),
}

impl ClientError {
    /// Bounce (true) or defer (false). Only a 5xx reply is permanent:
    /// greetings refused with 5xx, a 5xx MAIL FROM, and the SIZE and
    /// SMTPUTF8 refusals. Everything else is temporary (unclassified =
    /// temporary).
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Greeting(reply) | ClientError::Transaction(reply) => reply.is_permanent(),
            ClientError::Connect(_)
            | ClientError::Protocol(_)
            | ClientError::Tls(_)
            | ClientError::Auth(_)
            | ClientError::Io(_)
            | ClientError::Timeout(_) => false,
        }
    }

    /// Whether another MX host (or address) of the same destination may do
    /// better. Postfix moves on after connection failures, refused
    /// greetings (also 5xx: `smtp_skip_5xx_greeting`) and broken sessions;
    /// a permanent refusal of the transaction is final.
    pub fn try_next_host(&self) -> bool {
        !matches!(self, ClientError::Transaction(reply) if reply.is_permanent())
    }

    /// The enhanced status code and text for a DSN or the queue's
    /// `last_reply`: the peer's reply where there is one, else a made-up
    /// 4.4.x reply (RFC 3463: 4.4.1 no answer, 4.4.2 bad connection).
    pub fn reply(&self, remote: &str) -> Reply {
        match self {
            ClientError::Greeting(reply) | ClientError::Transaction(reply) => reply.clone(),
            ClientError::Connect(why) => Reply::new(451, "4.4.1", why.clone()),
            ClientError::Tls(why) => Reply::new(451, "4.7.5", format!("{remote}: {why}")),
            ClientError::Auth(why) => Reply::new(451, "4.7.0", format!("{remote}: {why}")),
            other => synthesized(other, remote),
        }
    }
}

/// Loads trust anchors from a PEM file (Postfix `smtp_tls_CAfile`).
pub fn load_trust_anchors(path: &Path) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{}: no usable CA certificate", path.display()));
    }
    Ok(store)
}

/// Delivers `env` to the server at `addr`, known as `server_name` (the MX
/// host name: for the log, SNI and certificate checks): [`SmtpConnection::open`],
/// one [`SmtpConnection::deliver`], [`SmtpConnection::quit`].
///
/// An envelope without recipients returns an empty transcript without
/// connecting.
pub async fn send(
    addr: SocketAddr,
    server_name: &str,
    opts: &ClientOptions,
    env: &Envelope<'_>,
) -> Result<Transcript, ClientError> {
    if env.recipients.is_empty() {
        return Ok(Transcript {
            remote: remote_name(server_name, addr),
            tls: None,
            peer_dsn: false,
            results: Vec::new(),
        });
    }
    let mut connection = SmtpConnection::open(addr, server_name, opts).await?;
    let result = connection.deliver(env).await;
    connection.quit().await;
    result
}

/// `mx.example.org[192.0.2.1]:25`.
fn remote_name(server_name: &str, addr: SocketAddr) -> String {
    format!("{server_name}[{}]:{}", addr.ip(), addr.port())
}

/// Whom a session talks to.
struct Target<'a> {
    addr: SocketAddr,
    server_name: &'a str,
    remote: &'a str,
}

/// Returns early with `error`, saying QUIT first when the conversation is
/// still in step.
macro_rules! or_abort {
    ($conn:ident, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(error) => return Err($conn.abort(error).await),
        }
    };
}

/// Where a connection stands between transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The last transaction ended with its final reply (or none ran yet):
    /// ready for another.
    Clean,
    /// In step, but the server may still have a transaction open, or the
    /// last one did not go well: QUIT, do not reuse.
    Dirty,
    /// I/O error, timeout, garbled reply, or the peer said 421: close
    /// without QUIT.
    Broken,
}

/// An open SMTP session (greeting, EHLO, STARTTLS and AUTH done) that can
/// carry several messages one after the other (Postfix's connection
/// cache, `smtp_connection_cache_on_demand`).
pub struct SmtpConnection {
    conn: Conn,
    remote: String,
    tls: Option<String>,
    caps: Capabilities,
    opts: ClientOptions,
    state: State,
    /// Calls of [`SmtpConnection::deliver`] that reached the peer.
    uses: usize,
}

impl fmt::Debug for SmtpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConnection")
            .field("remote", &self.remote)
            .field("tls", &self.tls)
            .field("state", &self.state)
            .field("uses", &self.uses)
            .finish()
    }
}

/// The longest wait for the reply to the RSET that checks a reused
/// connection (Postfix `smtp_rset_timeout`, 20 s).
const RSET_PROBE_TIMEOUT: Duration = Duration::from_secs(20);

impl SmtpConnection {
    /// Connects to `addr`, known as `server_name` (the MX host name: for
    /// the log, SNI and certificate checks), reads the greeting, says
    /// EHLO/HELO, upgrades with STARTTLS per `opts.tls` and authenticates
    /// when asked. With [`TlsPolicy::May`], a failed TLS handshake is
    /// retried once in plaintext on a new connection.
    pub async fn open(
        addr: SocketAddr,
        server_name: &str,
        opts: &ClientOptions,
    ) -> Result<SmtpConnection, ClientError> {
        if !valid_helo(&opts.helo_name) {
            return Err(ClientError::Protocol(format!(
                "unusable helo_name {:?}",
                opts.helo_name
            )));
        }
        let remote = remote_name(server_name, addr);
        let target = Target {
            addr,
            server_name,
            remote: &remote,
        };
        let opened = match handshake(&target, opts, opts.tls).await {
            Err(e @ (ClientError::Tls(_) | ClientError::Timeout(HANDSHAKE)))
                if opts.tls == TlsPolicy::May =>
            {
                tracing::info!("{remote}: {e}; trying again in plaintext (opportunistic TLS)");
                handshake(&target, opts, TlsPolicy::None).await
            }
            other => other,
        };
        let (conn, caps, tls) = opened?;
        Ok(SmtpConnection {
            conn,
            remote,
            tls,
            caps,
            opts: opts.clone(),
            state: State::Clean,
            uses: 0,
        })
    }

    /// `mx.example.org[192.0.2.1]:25`.
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// Deliveries made on this connection so far (Postfix
    /// `smtp_connection_reuse_count_limit` counts these).
    pub fn uses(&self) -> usize {
        self.uses
    }

    /// Whether another message may be sent: the connection is in step,
    /// the last transaction ended with its final reply, and the peer has
    /// not said anything unasked.
    pub fn reusable(&self) -> bool {
        self.state == State::Clean && !self.conn.input.pending()
    }

    /// Runs the transactions for `env` (see the module docs for the two
    /// shapes of errors). A connection used before is checked with RSET
    /// first; if that fails, the error is an `Io`, `Timeout` or `Protocol`
    /// error and nothing was sent for any recipient.
    pub async fn deliver(&mut self, env: &Envelope<'_>) -> Result<Transcript, ClientError> {
        let remote = self.remote.clone();
        if env.recipients.is_empty() {
            return Ok(Transcript {
                remote,
                tls: self.tls.clone(),
                peer_dsn: self.caps.dsn,
                results: Vec::new(),
            });
        }
        if self.state == State::Broken {
            return Err(ClientError::Io(format!(
                "{RSET} (the connection to {remote} is no longer usable)"
            )));
        }
        if self.uses > 0 || self.state == State::Dirty {
            self.probe().await?;
        }
        if let Some(refusal) = preflight(env, &self.caps, &remote) {
            return Err(ClientError::Transaction(refusal));
        }
        self.uses += 1;
        let mut delivery = Delivery {
            conn: &mut self.conn,
            caps: &self.caps,
            env,
            opts: &self.opts,
            smtputf8: needs_smtputf8(env),
            results: vec![None; env.recipients.len()],
            heard: false,
        };
        let end = delivery.run().await;
        let Delivery { results, heard, .. } = delivery;
        let filler = match end {
            SessionEnd::Complete { dirty } => {
                self.state = if dirty { State::Dirty } else { State::Clean };
                None
            }
            SessionEnd::Closing(reply) => {
                self.state = State::Broken;
                Some((reply, true))
            }
            SessionEnd::Failed(error) => {
                self.state = if in_step(&error) {
                    State::Dirty
                } else {
                    State::Broken
                };
                if !heard {
                    return Err(error);
                }
                Some((synthesized(&error, &remote), false))
            }
        };
        let results = results
            .into_iter()
            .map(|result| match (result, &filler) {
                (Some(result), _) => result,
                (None, Some((reply, from_peer))) => RecipientResult {
                    reply: reply.clone(),
                    from_peer: *from_peer,
                },
                // Every path that leaves a recipient open ends with an
                // error or a 421; should one not, the recipient is
                // deferred rather than lost.
                (None, None) => RecipientResult {
                    reply: Reply::new(451, "4.3.0", format!("no reply from {remote}")),
                    from_peer: false,
                },
            })
            .collect();
        Ok(Transcript {
            remote,
            tls: self.tls.clone(),
            peer_dsn: self.caps.dsn,
            results,
        })
    }

    /// RSET before reusing the connection: finds a connection the peer
    /// closed meanwhile, and ends whatever transaction may be open.
    async fn probe(&mut self) -> Result<(), ClientError> {
        let limit = self.opts.command_timeout.min(RSET_PROBE_TIMEOUT);
        let checked = async {
            self.conn.write(b"RSET\r\n", limit, RSET).await?;
            self.conn.read_within(limit, RSET).await
        };
        match checked.await {
            Ok(reply) if is_positive_completion(&reply) => {
                self.state = State::Clean;
                Ok(())
            }
            Ok(reply) => {
                self.state = State::Broken;
                Err(ClientError::Protocol(format!(
                    "{} refused RSET: {reply}",
                    self.remote
                )))
            }
            Err(error) => {
                self.state = State::Broken;
                Err(error)
            }
        }
    }

    /// Ends the session: QUIT while the conversation is in step, else
    /// just close. Best effort and brief.
    pub async fn quit(self) {
        if self.state != State::Broken {
            self.conn.quit().await;
        }
    }
}

/// Errors after which the conversation is still in step (QUIT may be
/// said); after the others the connection is only closed.
fn in_step(error: &ClientError) -> bool {
    !matches!(
        error,
        ClientError::Io(_) | ClientError::Timeout(_) | ClientError::Protocol(_)
    )
}

/// Connect, greeting, EHLO, STARTTLS and AUTH: an open connection, the
/// peer's capabilities and the TLS summary.
async fn handshake(
    target: &Target<'_>,
    opts: &ClientOptions,
    policy: TlsPolicy,
) -> Result<(Conn, Capabilities, Option<String>), ClientError> {
    let remote = target.remote;
    let tcp = match timeout(opts.connect_timeout, TcpStream::connect(target.addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(ClientError::Connect(format!("connect to {remote}: {e}"))),
        Err(_) => {
            return Err(ClientError::Connect(format!(
                "connect to {remote}: timed out after {:?}",
                opts.connect_timeout
            )));
        }
    };
    // Replies are waited for one command at a time without PIPELINING;
    // Nagle would only add latency.
    let _ = tcp.set_nodelay(true);
    let mut conn = Conn::new(Box::new(tcp), opts.command_timeout);

    let greeting = conn.read(GREETING).await?;
    if !is_positive_completion(&greeting) {
        return Err(conn.abort(ClientError::Greeting(greeting)).await);
    }
    let mut caps = or_abort!(conn, hello(&mut conn, &opts.helo_name).await);

    let mut tls = None;
    if policy != TlsPolicy::None {
        if caps.starttls {
            let reply = or_abort!(conn, conn.command("STARTTLS\r\n", STARTTLS).await);
            if reply.code == 220 {
                let verify = policy == TlsPolicy::Encrypt && opts.verify_certificates;
                let config = or_abort!(conn, tls_config(verify, opts.trust_anchors.as_ref()));
                let name = tls_name(target.server_name, target.addr);
                let (upgraded, summary) = conn.start_tls(config, name, verify, remote).await?;
                conn = upgraded;
                tracing::info!(
                    "{} TLS connection established to {remote}: {summary}",
                    if verify { "Verified" } else { "Untrusted" }
                );
                tls = Some(summary);
                // RFC 3207 §4.2: forget what was learnt before TLS.
                caps = or_abort!(conn, hello(&mut conn, &opts.helo_name).await);
            } else if policy == TlsPolicy::Encrypt {
                let error = ClientError::Tls(format!("STARTTLS refused by {remote}: {reply}"));
                return Err(conn.abort(error).await);
            } else {
                tracing::info!("{remote} refused STARTTLS ({reply}); continuing in plaintext");
            }
        } else if policy == TlsPolicy::Encrypt {
            let error = ClientError::Tls(format!(
                "TLS is required, but was not offered by host {remote}"
            ));
            return Err(conn.abort(error).await);
        }
    }

    if let Some((user, password)) = &opts.auth {
        if tls.is_none() {
            let error =
                ClientError::Auth(format!("not sending credentials to {remote} without TLS"));
            return Err(conn.abort(error).await);
        }
        or_abort!(conn, authenticate(&mut conn, &caps, user, password).await);
    }
    Ok((conn, caps, tls))
}

/// EHLO, or HELO when EHLO is refused with 5xx (RFC 5321 §4.1.4: a server
/// that does not know EHLO answers 500 or 502).
async fn hello(conn: &mut Conn, helo_name: &str) -> Result<Capabilities, ClientError> {
    let reply = conn.command(&format!("EHLO {helo_name}\r\n"), EHLO).await?;
    if is_positive_completion(&reply) {
        return Ok(Capabilities::from_ehlo(&reply));
    }
    if !reply.is_permanent() {
        return Err(ClientError::Greeting(reply));
    }
    let reply = conn.command(&format!("HELO {helo_name}\r\n"), HELO).await?;
    if is_positive_completion(&reply) {
        Ok(Capabilities::default())
    } else {
        Err(ClientError::Greeting(reply))
    }
}

/// AUTH PLAIN with an initial response (RFC 4954 §4, RFC 4616), or AUTH
/// LOGIN when PLAIN is not offered. Credentials never appear in logs.
async fn authenticate(
    conn: &mut Conn,
    caps: &Capabilities,
    user: &str,
    password: &str,
) -> Result<(), ClientError> {
    let offered = |m: &str| caps.auth.iter().any(|a| a == m);
    let reply = if offered("PLAIN") {
        let token = base64_encode(format!("\0{user}\0{password}").as_bytes());
        conn.command(&format!("AUTH PLAIN {token}\r\n"), AUTH)
            .await?
    } else if offered("LOGIN") {
        let reply = conn.command("AUTH LOGIN\r\n", AUTH).await?;
        if reply.code != 334 {
            return Err(ClientError::Auth(reply.to_string()));
        }
        let reply = conn
            .command(&format!("{}\r\n", base64_encode(user.as_bytes())), AUTH)
            .await?;
        if reply.code != 334 {
            return Err(ClientError::Auth(reply.to_string()));
        }
        conn.command(&format!("{}\r\n", base64_encode(password.as_bytes())), AUTH)
            .await?
    } else {
        return Err(ClientError::Auth(format!(
            "no supported mechanism (PLAIN, LOGIN) among those offered: {:?}",
            caps.auth
        )));
    };
    if reply.code == 235 {
        Ok(())
    } else {
        Err(ClientError::Auth(reply.to_string()))
    }
}

/// Refusals decided before any MAIL FROM, for the whole message.
fn preflight(env: &Envelope<'_>, caps: &Capabilities, remote: &str) -> Option<Reply> {
    if !wire::safe_path(env.sender) {
        return Some(Reply::new(501, "5.1.7", "Bad sender address syntax"));
    }
    // RFC 6531 §3.2: without SMTPUTF8 at the peer, a message that needs
    // it cannot be relayed (we do not downgrade); it bounces.
    if needs_smtputf8(env) && !caps.smtputf8 {
        return Some(Reply::new(
            550,
            "5.6.7",
            format!("SMTPUTF8 is required, but was not offered by host {remote}"),
        ));
    }
    // RFC 1870 §6: a message larger than the peer's fixed limit is not
    // sent at all.
    let size = env.message.len() as u64;
    if let Some(limit) = caps.size_limit()
        && size > limit
    {
        return Some(Reply::new(
            552,
            "5.3.4",
            format!("message size {size} exceeds size limit {limit} of server {remote}"),
        ));
    }
    None
}

/// Non-ASCII envelope addresses need SMTPUTF8 even if the client that
/// submitted the message did not ask for it.
fn needs_smtputf8(env: &Envelope<'_>) -> bool {
    env.smtputf8 || !env.sender.is_ascii() || env.recipients.iter().any(|r| !r.address.is_ascii())
}

/// How the transactions of a session ended.
enum SessionEnd {
    /// Every recipient has its result. `dirty`: the last transaction
    /// did not end with its final reply (the server may still have one
    /// open).
    Complete { dirty: bool },
    /// The peer said 421 (RFC 5321 §3.8): it closes; open recipients get
    /// that reply.
    Closing(Reply),
    /// The connection broke or the replies made no sense.
    Failed(ClientError),
}

/// How one transaction ended.
enum TxEnd {
    /// Results are in. `dirty`: the server may still have a transaction
    /// open (DATA refused, no recipient accepted), so RSET before the next.
    Done { dirty: bool },
    /// MAIL FROM refused: no recipient was tried.
    MailRefused(Reply),
    /// A 421: results are in where the peer answered.
    Closing(Reply),
}

/// The transactions of one session.
struct Delivery<'s, 'e> {
    conn: &'s mut Conn,
    caps: &'s Capabilities,
    env: &'s Envelope<'e>,
    opts: &'s ClientOptions,
    smtputf8: bool,
    /// One per envelope recipient; `None` until the peer or we decided.
    results: Vec<Option<RecipientResult>>,
    /// The peer answered an RCPT: from here on a failure is reported per
    /// recipient, no longer as an `Err` for the whole session.
    heard: bool,
}

impl Delivery<'_, '_> {
    async fn run(&mut self) -> SessionEnd {
        let total = self.env.recipients.len();
        let per_transaction = match self.opts.max_recipients {
            0 => total,
            n => n,
        };
        let mut start = 0;
        let mut dirty = false;
        while start < total {
            let end = start.saturating_add(per_transaction).min(total);
            if dirty {
                match self.conn.command("RSET\r\n", RSET).await {
                    Ok(reply) if is_positive_completion(&reply) => {}
                    Ok(reply) if reply.code == 421 => return SessionEnd::Closing(reply),
                    Ok(reply) => {
                        return SessionEnd::Failed(ClientError::Protocol(format!(
                            "RSET refused: {reply}"
                        )));
                    }
                    Err(error) => return SessionEnd::Failed(error),
                }
            }
            let outcome = if self.caps.pipelining {
                self.pipelined(start..end).await
            } else {
                self.lockstep(start..end).await
            };
            match outcome {
                Ok(TxEnd::Done { dirty: d }) => dirty = d,
                Ok(TxEnd::MailRefused(reply)) if !self.heard || reply.code == 421 => {
                    // First transaction: the whole session failed (the
                    // caller sees `Err(Transaction)`). Later: as a 421.
                    return if self.heard {
                        SessionEnd::Closing(reply)
                    } else {
                        SessionEnd::Failed(ClientError::Transaction(reply))
                    };
                }
                Ok(TxEnd::MailRefused(reply)) => {
                    for i in start..end {
                        self.decide(i, reply.clone(), true);
                    }
                    dirty = true;
                }
                Ok(TxEnd::Closing(reply)) => return SessionEnd::Closing(reply),
                Err(error) => return SessionEnd::Failed(error),
            }
            start = end;
        }
        SessionEnd::Complete { dirty }
    }

    /// RFC 2920: MAIL, every RCPT and DATA in one write; the replies are
    /// read in order while writing.
    async fn pipelined(&mut self, range: Range<usize>) -> Result<TxEnd, ClientError> {
        let mut batch = self.mail_command().into_bytes();
        let mut stages = vec![MAIL];
        let sendable = self.sendable(range);
        for &i in &sendable {
            batch.extend_from_slice(self.rcpt_command(i).as_bytes());
            stages.push(RCPT);
        }
        let with_data = !sendable.is_empty();
        if with_data {
            batch.extend_from_slice(b"DATA\r\n");
            stages.push(DATA);
        }
        let (replies, error) = self.conn.pipeline(&batch, &stages).await;
        let mut replies = replies.into_iter();
        let Some(mail) = replies.next() else {
            return Err(error.unwrap_or_else(|| ClientError::Protocol("no reply to MAIL".into())));
        };
        if !is_positive_completion(&mail) {
            // The RCPT and DATA replies (503 "need MAIL") were read to
            // stay in step. Should DATA have been accepted anyway, end
            // it with an empty message as Postfix does.
            let data = if with_data {
                replies.nth(sendable.len())
            } else {
                None
            };
            if error.is_none() && data.is_some_and(|d| d.code == 354) {
                self.conn
                    .write(b".\r\n", self.opts.data_timeout, END_OF_DATA)
                    .await?;
                self.conn
                    .read_within(self.opts.data_timeout, END_OF_DATA)
                    .await?;
            }
            return Ok(TxEnd::MailRefused(mail));
        }
        let mut accepted = Vec::new();
        let mut closing = None;
        for &i in &sendable {
            let Some(reply) = replies.next() else {
                break;
            };
            self.heard = true;
            if reply.code == 421 {
                closing.get_or_insert_with(|| reply.clone());
            }
            if is_positive_completion(&reply) {
                accepted.push(i);
            } else {
                self.decide(i, reply, true);
            }
        }
        if let Some(reply) = closing {
            return Ok(TxEnd::Closing(reply));
        }
        let data = match (with_data, replies.next(), error) {
            (false, _, None) => return Ok(TxEnd::Done { dirty: true }),
            (_, _, Some(error)) => return Err(error),
            (true, Some(data), None) => data,
            (true, None, None) => return Err(ClientError::Protocol("no reply to DATA".into())),
        };
        self.data(data, &accepted).await
    }

    /// One command, one reply (no PIPELINING).
    async fn lockstep(&mut self, range: Range<usize>) -> Result<TxEnd, ClientError> {
        let mail = self.conn.command(&self.mail_command(), MAIL).await?;
        if !is_positive_completion(&mail) {
            return Ok(TxEnd::MailRefused(mail));
        }
        let mut accepted = Vec::new();
        for i in self.sendable(range) {
            let reply = self.conn.command(&self.rcpt_command(i), RCPT).await?;
            self.heard = true;
            if is_positive_completion(&reply) {
                accepted.push(i);
            } else if reply.code == 421 {
                self.decide(i, reply.clone(), true);
                return Ok(TxEnd::Closing(reply));
            } else {
                self.decide(i, reply, true);
            }
        }
        if accepted.is_empty() {
            // No DATA without a recipient: reset the transaction.
            let reply = self.conn.command("RSET\r\n", RSET).await?;
            return Ok(TxEnd::Done {
                dirty: !is_positive_completion(&reply),
            });
        }
        let data = self.conn.command("DATA\r\n", DATA).await?;
        self.data(data, &accepted).await
    }

    /// After the reply to DATA: the message, and the final reply for every
    /// accepted recipient (RFC 5321 §4.1.1.4).
    async fn data(&mut self, data: Reply, accepted: &[usize]) -> Result<TxEnd, ClientError> {
        if data.code != 354 {
            // RFC 2920 §3.1: with no valid recipient DATA fails (503/554);
            // otherwise the refusal applies to every accepted recipient.
            for &i in accepted {
                self.decide(i, data.clone(), true);
            }
            if data.code == 421 {
                return Ok(TxEnd::Closing(data));
            }
            return Ok(TxEnd::Done { dirty: true });
        }
        if accepted.is_empty() {
            // DATA accepted although every RCPT failed (a server that
            // breaks RFC 2920 §3.1): send an empty message and ignore it.
            self.conn
                .write(b".\r\n", self.opts.data_timeout, END_OF_DATA)
                .await?;
            self.conn
                .read_within(self.opts.data_timeout, END_OF_DATA)
                .await?;
            return Ok(TxEnd::Done { dirty: false });
        }
        let limit = self.opts.data_timeout;
        let mut stuffer = DotStuffer::new();
        let mut out = Vec::with_capacity(BODY_CHUNK + BODY_CHUNK / 16);
        for piece in self.env.message.chunks(BODY_CHUNK) {
            out.clear();
            stuffer.push(piece, &mut out);
            self.conn.write(&out, limit, BODY).await?;
        }
        out.clear();
        stuffer.finish(&mut out);
        self.conn.write(&out, limit, END_OF_DATA).await?;
        let reply = self.conn.read_within(limit, END_OF_DATA).await?;
        for &i in accepted {
            self.decide(i, reply.clone(), true);
        }
        if reply.code == 421 {
            return Ok(TxEnd::Closing(reply));
        }
        Ok(TxEnd::Done { dirty: false })
    }

    /// Indices in `range` whose address can be sent; the others are
    /// refused here (an address with CR/LF would inject commands).
    fn sendable(&mut self, range: Range<usize>) -> Vec<usize> {
        let mut sendable = Vec::with_capacity(range.len());
        for i in range {
            let ok = self
                .env
                .recipients
                .get(i)
                .is_some_and(|r| !r.address.is_empty() && wire::safe_path(&r.address));
            if ok {
                sendable.push(i);
            } else {
                let reply = Reply::new(501, "5.1.3", "Bad recipient address syntax");
                self.decide(i, reply, false);
            }
        }
        sendable
    }

    /// `MAIL FROM:<sender>` with the parameters the peer supports.
    fn mail_command(&self) -> String {
        let env = self.env;
        let caps = self.caps;
        let mut cmd = format!("MAIL FROM:<{}>", env.sender);
        if caps.size.is_some() {
            cmd.push_str(&format!(" SIZE={}", env.message.len()));
        }
        // RFC 6152 §3 wants 8-bit content converted (or bounced) for a
        // peer without 8BITMIME; like Postfix we send it unchanged, which
        // today's servers all accept.
        if caps.eight_bit_mime && env.message.iter().any(|&b| b >= 0x80) {
            cmd.push_str(" BODY=8BITMIME");
        }
        // preflight() bounced the message when SMTPUTF8 is needed but
        // missing, so here the peer offers it.
        if self.smtputf8 && caps.smtputf8 {
            cmd.push_str(" SMTPUTF8");
        }
        // RFC 3461 §4: DSN parameters only to a peer that offers DSN.
        if caps.dsn {
            if let Some(ret) = wire::ret_param(env.ret) {
                cmd.push_str(&format!(" RET={ret}"));
            }
            if !env.envid.is_empty() {
                cmd.push_str(&format!(" ENVID={}", wire::xtext(env.envid)));
            }
        }
        cmd.push_str("\r\n");
        cmd
    }

    /// `RCPT TO:<address>`, with NOTIFY and ORCPT when the peer has DSN.
    fn rcpt_command(&self, i: usize) -> String {
        let Some(recipient) = self.env.recipients.get(i) else {
            return String::new();
        };
        let mut cmd = format!("RCPT TO:<{}>", recipient.address);
        if self.caps.dsn {
            if let Some(notify) = wire::notify_param(&recipient.notify) {
                cmd.push_str(&format!(" NOTIFY={notify}"));
            }
            if let Some(orcpt) = wire::orcpt_param(&recipient.orcpt) {
                cmd.push_str(&format!(" ORCPT={orcpt}"));
            }
        }
        cmd.push_str("\r\n");
        cmd
    }

    fn decide(&mut self, i: usize, reply: Reply, from_peer: bool) {
        if let Some(slot) = self.results.get_mut(i) {
            *slot = Some(RecipientResult { reply, from_peer });
        }
    }
}

/// The reply given to recipients left open by a failed session, as
/// Postfix words it (RFC 3463 4.4.2: bad connection).
fn synthesized(error: &ClientError, remote: &str) -> Reply {
    match error {
        ClientError::Timeout(stage) => Reply::new(
            451,
            "4.4.2",
            format!("conversation with {remote} timed out while {stage}"),
        ),
        ClientError::Io(what) => Reply::new(
            451,
            "4.4.2",
            format!("lost connection with {remote} while {what}"),
        ),
        ClientError::Greeting(reply) | ClientError::Transaction(reply) => reply.clone(),
        other => Reply::new(451, "4.5.0", format!("conversation with {remote}: {other}")),
    }
}

fn is_positive_completion(reply: &Reply) -> bool {
    (200..300).contains(&reply.code)
}

/// A usable EHLO argument: a domain or address literal, no spaces or
/// control characters.
fn valid_helo(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.bytes().all(|b| b.is_ascii_graphic())
}

/// The stream under a connection: TCP, or TLS over TCP after STARTTLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Buffered input: the bytes read but not parsed yet, and the parser.
struct Input {
    buffer: Vec<u8>,
    /// `buffer[start..end]` is unparsed; `start <= end <= buffer.len()`.
    start: usize,
    end: usize,
    parser: ReplyParser,
}

impl Input {
    fn new() -> Self {
        Input {
            buffer: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            parser: ReplyParser::new(),
        }
    }

    /// Bytes of a reply that nobody asked for yet.
    fn pending(&self) -> bool {
        self.start < self.end || self.parser.in_progress()
    }

    /// The next whole reply, within `limit`.
    async fn reply<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        reader: &mut R,
        limit: Duration,
        stage: &'static str,
    ) -> Result<Reply, ClientError> {
        let deadline = Instant::now() + limit;
        loop {
            if self.start < self.end {
                let window = self.buffer.get(self.start..self.end).unwrap_or_default();
                let (used, reply) = self
                    .parser
                    .feed(window)
                    .map_err(|e| ClientError::Protocol(format!("{e} while {stage}")))?;
                self.start += used;
                if let Some(reply) = reply {
                    return Ok(reply);
                }
            }
            self.start = 0;
            self.end = 0;
            let read = timeout_at(deadline, reader.read(&mut self.buffer)).await;
            self.end = match read {
                Ok(Ok(0)) => {
                    return Err(ClientError::Io(format!(
                        "{stage} (connection closed by the server)"
                    )));
                }
                Ok(Ok(n)) => n.min(self.buffer.len()),
                Ok(Err(e)) => return Err(ClientError::Io(format!("{stage}: {e}"))),
                Err(_) => return Err(ClientError::Timeout(stage)),
            };
        }
    }
}

/// A connection with its input buffer.
struct Conn {
    stream: Box<dyn Io>,
    input: Input,
    command_timeout: Duration,
}

impl Conn {
    fn new(stream: Box<dyn Io>, command_timeout: Duration) -> Self {
        Conn {
            stream,
            input: Input::new(),
            command_timeout,
        }
    }

    async fn write(
        &mut self,
        bytes: &[u8],
        limit: Duration,
        stage: &'static str,
    ) -> Result<(), ClientError> {
        let stream = &mut self.stream;
        let written = timeout(limit, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ClientError::Io(format!("{stage}: {e}"))),
            Err(_) => Err(ClientError::Timeout(stage)),
        }
    }

    async fn read(&mut self, stage: &'static str) -> Result<Reply, ClientError> {
        self.read_within(self.command_timeout, stage).await
    }

    async fn read_within(
        &mut self,
        limit: Duration,
        stage: &'static str,
    ) -> Result<Reply, ClientError> {
        self.input.reply(&mut self.stream, limit, stage).await
    }

    /// Sends one command line and reads its reply.
    async fn command(&mut self, line: &str, stage: &'static str) -> Result<Reply, ClientError> {
        self.write(line.as_bytes(), self.command_timeout, stage)
            .await?;
        self.read(stage).await
    }

    /// Writes `batch` while reading one reply per entry of `stages`, so
    /// neither side can block the other (RFC 2920 §3.1). Returns the
    /// replies read, and the error that stopped it early.
    async fn pipeline(
        &mut self,
        batch: &[u8],
        stages: &[&'static str],
    ) -> (Vec<Reply>, Option<ClientError>) {
        let limit = self.command_timeout;
        let first_stage = stages.first().copied().unwrap_or(MAIL);
        let input = &mut self.input;
        let (mut reader, mut writer) = tokio::io::split(&mut self.stream);
        let write = async {
            let written = timeout(limit, async {
                writer.write_all(batch).await?;
                writer.flush().await
            })
            .await;
            match written {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(ClientError::Io(format!("{first_stage}: {e}"))),
                Err(_) => Some(ClientError::Timeout(first_stage)),
            }
        };
        let read = async {
            let mut replies = Vec::with_capacity(stages.len());
            for &stage in stages {
                match input.reply(&mut reader, limit, stage).await {
                    Ok(reply) => replies.push(reply),
                    Err(error) => return (replies, Some(error)),
                }
            }
            (replies, None)
        };
        let (write_error, (replies, read_error)) = tokio::join!(write, read);
        let error = match read_error {
            Some(error) => Some(error),
            None if replies.len() < stages.len() => write_error,
            None => None,
        };
        (replies, error)
    }

    /// The TLS handshake after `220` to STARTTLS.
    async fn start_tls(
        self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        verified: bool,
        remote: &str,
    ) -> Result<(Conn, String), ClientError> {
        // Anything the server sent after its 220 arrived in plaintext and
        // must not be taken as coming through TLS (the client side of
        // CVE-2011-0411, response injection).
        if self.input.pending() {
            return Err(ClientError::Tls(format!(
                "{remote} sent plaintext after its STARTTLS reply"
            )));
        }
        let connector = tokio_rustls::TlsConnector::from(config);
        let handshake = timeout(self.command_timeout, connector.connect(name, self.stream)).await;
        let tls = match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                return Err(ClientError::Tls(format!(
                    "TLS handshake with {remote} failed: {e}"
                )));
            }
            Err(_) => return Err(ClientError::Timeout(HANDSHAKE)),
        };
        let summary = describe_tls(tls.get_ref().1, verified);
        Ok((Conn::new(Box::new(tls), self.command_timeout), summary))
    }

    /// QUIT and close, best effort and briefly.
    async fn quit(mut self) {
        let _ = timeout(QUIT_TIMEOUT, async {
            if self.stream.write_all(b"QUIT\r\n").await.is_ok() && self.stream.flush().await.is_ok()
            {
                let _ = self.input.reply(&mut self.stream, QUIT_TIMEOUT, QUIT).await;
            }
            let _ = self.stream.shutdown().await;
        })
        .await;
    }

    /// Ends the session after `error`: QUIT while the conversation is in
    /// step, just close after I/O errors, timeouts and garbled replies.
    async fn abort(self, error: ClientError) -> ClientError {
        if !matches!(
            error,
            ClientError::Io(_) | ClientError::Timeout(_) | ClientError::Protocol(_)
        ) {
            self.quit().await;
        }
        error
    }
}

/// `"TLSv1.3 TLS13_AES_256_GCM_SHA384 unverified"`.
fn describe_tls(session: &rustls::ClientConnection, verified: bool) -> String {
    let version = match session.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "TLS".to_string(),
    };
    let suite = session
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let trust = if verified { "verified" } else { "unverified" };
    format!("{version} {suite} {trust}")
}

/// The name to check the certificate against (and to send as SNI): the
/// host name without a trailing dot, else the address.
fn tls_name(server_name: &str, addr: SocketAddr) -> ServerName<'static> {
    let name = server_name.trim_end_matches('.').to_string();
    ServerName::try_from(name).unwrap_or_else(|_| ServerName::IpAddress(addr.ip().into()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client config: unverified (shared), verified against the system
/// bundle (shared), or verified against the caller's anchors.
fn tls_config(
    verify: bool,
    anchors: Option<&Arc<RootCertStore>>,
) -> Result<Arc<ClientConfig>, ClientError> {
    static UNVERIFIED: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    static SYSTEM: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let built = match (verify, anchors) {
        (false, _) => UNVERIFIED.get_or_init(build_unverified).clone(),
        (true, Some(anchors)) => build_verified(anchors.clone()),
        (true, None) => SYSTEM
            .get_or_init(|| build_verified(Arc::new(system_trust_anchors())))
            .clone(),
    };
    built.map_err(ClientError::Tls)
}

/// TLS 1.2 and 1.3 only, with the ring provider.
fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS set-up: {e}"))
}

fn build_unverified() -> Result<Arc<ClientConfig>, String> {
    let config = builder()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn build_verified(anchors: Arc<RootCertStore>) -> Result<Arc<ClientConfig>, String> {
    let config = builder()?
        .with_root_certificates(anchors)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The system CA bundle: `$SSL_CERT_FILE`, else the first bundle file
/// found at the usual places. Empty when there is none, so verification
/// fails (and says so) instead of passing.
fn system_trust_anchors() -> RootCertStore {
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let candidates = from_env
        .into_iter()
        .chain(BUNDLES.iter().map(std::path::PathBuf::from));
    for path in candidates {
        if let Ok(store) = load_trust_anchors(&path) {
            return store;
        }
    }
    tracing::warn!("no CA bundle found; certificate verification will fail");
    RootCertStore::empty()
}

/// Accepts any certificate (opportunistic TLS, RFC 7435), but still checks
/// that the handshake is signed by the key of the certificate presented,
/// with the ring provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
