//! Configuration: one TOML file, strict (unknown keys are errors), with
//! `impl Default` as the single source of defaults. `config/merpati.toml` is
//! the annotated copy of these defaults, and a test keeps the two equal.
//!
//! Values may refer to `$myhostname` and `$mydomain` as in Postfix's
//! main.cf; [`Config::load`] expands them once, so the rest of the server
//! only sees final values.

pub mod acme;
mod anvil;
pub mod auth;
mod checks;
mod greylist;
pub mod http;
mod mailauth;
mod milter;
pub mod net;
mod parse;
mod postscreen;
mod restrictions;
mod sieve;
mod spam;
mod units;
pub mod webmail;

pub use acme::Acme;
pub use anvil::Anvil;
pub use auth::Auth;
pub use checks::Checks;
pub use greylist::Greylist;
pub use http::Http;
pub use mailauth::{DmarcPolicy, MailAuth, SpfFail, Temperror};
pub use milter::{DefaultAction as MilterDefaultAction, Milter};
pub use net::Cidr;
pub use postscreen::{Postscreen, ScreenAction};
pub use restrictions::Restrictions;
pub use sieve::{ManageSieve, Sieve};
pub use spam::Spam;
pub use units::{Bytes, Span};
pub use webmail::Webmail;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a packaged install looks for its config when `--config` is absent
/// and the file exists; otherwise the built-in defaults apply.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/merpati/merpati.toml";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// All state lives under here: queue, mailbox store, generated keys.
    pub data_dir: PathBuf,
    /// Fully qualified host name; empty means "ask the system".
    pub myhostname: String,
    /// Parent domain; empty means `myhostname` without its first label.
    pub mydomain: String,
    /// Domain appended to bare addresses (`fauzan` -> `fauzan@$myorigin`).
    pub myorigin: String,
    /// Domains delivered to local accounts (Postfix `mydestination`).
    pub mydestination: Vec<String>,
    /// Further domains whose accounts are full addresses (`alice@example.net`).
    pub virtual_mailbox_domains: Vec<String>,
    /// Clients that may relay to any domain.
    pub mynetworks: Vec<String>,
    /// Separator of address extensions: `alice+news@` goes to `alice`.
    pub recipient_delimiter: String,
    /// aliases(5) file; empty means `<data_dir>/aliases`. A missing file is empty.
    pub alias_file: String,
    /// Longest time SIGTERM waits for transactions in flight.
    pub shutdown_timeout: Span,
    pub virtual_alias: VirtualAlias,
    pub tls: Tls,
    pub acme: Acme,
    pub smtp: Smtp,
    pub submission: Submission,
    pub imap: Imap,
    pub pop3: Pop3,
    pub queue: Queue,
    pub relay: Relay,
    pub dns: Dns,
    pub mailauth: MailAuth,
    pub restrictions: Restrictions,
    pub checks: Checks,
    pub postscreen: Postscreen,
    pub greylist: Greylist,
    pub anvil: Anvil,
    pub auth: Auth,
    pub spam: Spam,
    pub milter: Milter,
    pub sieve: Sieve,
    pub managesieve: ManageSieve,
    pub http: Http,
    pub webmail: Webmail,
    pub store: Store,
    pub log: Log,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct VirtualAlias {
    /// Domains that exist only as aliases (Postfix `virtual_alias_domains`).
    pub domains: Vec<String>,
    /// `"info@example.net" = ["alice@localhost"]`; `"@example.net"` is a catch-all.
    pub map: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain; empty means a self-signed one under `<data_dir>/tls`.
    pub cert: String,
    /// PEM private key; empty means the generated one.
    pub key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareLfPolicy {
    /// Accept a bare LF as a line end (stored as CRLF); DATA still ends only at CRLF.CRLF.
    Normalize,
    /// Refuse the message.
    Reject,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smtp {
    pub listen: Vec<String>,
    pub banner: String,
    pub message_size_limit: Bytes,
    pub max_recipients: usize,
    pub line_length_limit: usize,
    pub command_timeout: Span,
    pub data_timeout: Span,
    pub max_errors: u32,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub bare_lf: BareLfPolicy,
    /// Clients outside `mynetworks` that talk within this time before the
    /// greeting are refused (`554 5.5.0`), as Postfix's postscreen does.
    pub greet_pause: Span,
    pub enable_vrfy: bool,
    /// Time from connect to the first MAIL (port 25) or to a successful
    /// AUTH (submission); "0s" for none.
    pub login_timeout: Span,
}

/// Message submission (RFC 6409) for mail clients: AUTH required, then
/// relaying anywhere. Other SMTP limits come from `[smtp]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Submission {
    /// Plaintext ports: STARTTLS must come before AUTH.
    pub listen: Vec<String>,
    /// Implicit-TLS ports (RFC 8314).
    pub tls_listen: Vec<String>,
    /// Allow AUTH without TLS from loopback clients.
    pub plaintext_auth_on_loopback: bool,
}

impl Default for Submission {
    fn default() -> Self {
        Submission {
            listen: vec!["0.0.0.0:587".into(), "[::]:587".into()],
            tls_listen: vec!["0.0.0.0:465".into(), "[::]:465".into()],
            plaintext_auth_on_loopback: true,
        }
    }
}

/// Defaults that differ between the mailbox-access services.
pub trait Protocol {
    const PLAIN_PORT: u16;
    const TLS_PORT: u16;
    const IDLE_TIMEOUT: Span;
    const MAX_BAD_COMMANDS: u32;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImapProtocol {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pop3Protocol {}

impl Protocol for ImapProtocol {
    const PLAIN_PORT: u16 = 143;
    const TLS_PORT: u16 = 993;
    // RFC 9051 §5.4: an idle timer of at least 30 minutes.
    const IDLE_TIMEOUT: Span = Span::secs(30 * 60);
    const MAX_BAD_COMMANDS: u32 = 20;
}

impl Protocol for Pop3Protocol {
    const PLAIN_PORT: u16 = 110;
    const TLS_PORT: u16 = 995;
    // RFC 1939 §3: the autologout timer is at least 10 minutes.
    const IDLE_TIMEOUT: Span = Span::secs(10 * 60);
    const MAX_BAD_COMMANDS: u32 = 10;
}

/// A mailbox-access service (`[imap]`, `[pop3]`): the same keys, with
/// defaults per protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, bound = "")]
pub struct Service<P: Protocol> {
    /// Plaintext ports, with STARTTLS/STLS.
    pub listen: Vec<String>,
    /// Implicit-TLS ports (RFC 8314).
    pub tls_listen: Vec<String>,
    /// Allow passwords without TLS from loopback clients (local scripts,
    /// webmail on the same host). Never from anywhere else.
    pub plaintext_auth_on_loopback: bool,
    pub max_connections: usize,
    /// Connections from one address before login (NAT gateways carry
    /// many users: keep it high; the per-user bound is below).
    pub max_connections_per_client: usize,
    /// Logged-in sessions of one account from one address (Dovecot's
    /// `mail_max_userip_connections`).
    pub max_userip_connections: usize,
    /// Idle time before the server closes the session.
    pub idle_timeout: Span,
    /// Time from connect to a successful login; "0s" for none.
    pub login_timeout: Span,
    /// Longest command line, in octets.
    pub line_length_limit: usize,
    /// Bad commands before the session is closed.
    pub max_bad_commands: u32,
    #[serde(skip)]
    protocol: std::marker::PhantomData<P>,
}

impl<P: Protocol> Default for Service<P> {
    fn default() -> Self {
        Service {
            listen: vec![
                format!("0.0.0.0:{}", P::PLAIN_PORT),
                format!("[::]:{}", P::PLAIN_PORT),
            ],
            tls_listen: vec![
                format!("0.0.0.0:{}", P::TLS_PORT),
                format!("[::]:{}", P::TLS_PORT),
            ],
            plaintext_auth_on_loopback: true,
            max_connections: 10_000,
            max_connections_per_client: 200,
            max_userip_connections: 10,
            idle_timeout: P::IDLE_TIMEOUT,
            login_timeout: Span::secs(120),
            line_length_limit: 8192,
            max_bad_commands: P::MAX_BAD_COMMANDS,
            protocol: std::marker::PhantomData,
        }
    }
}

pub type Imap = Service<ImapProtocol>;
pub type Pop3 = Service<Pop3Protocol>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    pub min_backoff: Span,
    pub max_backoff: Span,
    pub max_lifetime: Span,
    /// Tell the sender once when mail is still queued after this long;
    /// "0s" (Postfix's default) never warns.
    pub delay_warning: Span,
    pub scan_interval: Span,
    pub pickup_interval: Span,
    pub active_limit: usize,
    pub local_concurrency: usize,
    pub delivery_batch: usize,
    /// Free space kept on the queue's and the store's filesystems
    /// (Postfix's `queue_minfree`): below it (plus 1.5 × a declared SIZE)
    /// MAIL gets `452 4.3.1` and IMAP APPEND `NO [UNAVAILABLE]`.
    pub minfree: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsLevel {
    /// Plaintext only.
    None,
    /// STARTTLS when the peer offers it, certificate not verified
    /// (Postfix's `may`: opportunistic TLS).
    May,
    /// STARTTLS required.
    Encrypt,
}

/// Delivery to other domains (Postfix's smtp(8) client and qmgr's
/// per-destination scheduling).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Relay {
    /// TCP port of MX hosts (Postfix `smtp_tcp_port`).
    pub port: u16,
    /// Send all remote mail through this host (`host` or `host:port`),
    /// without MX lookups; "" delivers by MX.
    pub relayhost: String,
    /// Credentials for the relayhost (AUTH PLAIN/LOGIN, only over TLS).
    pub relayhost_username: String,
    pub relayhost_password: String,
    /// Refuse to talk to the relayhost without TLS.
    pub relayhost_require_tls: bool,
    /// TLS towards MX hosts.
    pub tls: TlsLevel,
    /// Per-domain next hops (`"example.org" = "mail.example.org:2525"`),
    /// like Postfix's transport_maps; they win over relayhost and MX.
    pub transports: BTreeMap<String, String>,
    pub connect_timeout: Span,
    pub command_timeout: Span,
    pub data_timeout: Span,
    /// Recipients per SMTP transaction.
    pub max_recipients: usize,
    /// Parallel connections per destination: the start, and the limit
    /// reached while deliveries succeed.
    pub initial_destination_concurrency: usize,
    pub destination_concurrency_limit: usize,
    /// A destination whose hosts all fail to connect is not tried again
    /// for this long; its mail is deferred meanwhile.
    pub dead_time: Span,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            port: 25,
            relayhost: String::new(),
            relayhost_username: String::new(),
            relayhost_password: String::new(),
            relayhost_require_tls: false,
            tls: TlsLevel::May,
            transports: BTreeMap::new(),
            connect_timeout: Span::secs(30),
            command_timeout: Span::secs(300),
            data_timeout: Span::secs(600),
            max_recipients: 50,
            initial_destination_concurrency: 5,
            destination_concurrency_limit: 20,
            dead_time: Span::secs(300),
        }
    }
}

/// Name resolution: MX and address lookups for delivery, and the
/// SPF/DKIM/DMARC/ARC lookups of `[mailauth]` (one resolver, one cache).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// Nameservers (`"127.0.0.1:53"`); empty uses /etc/resolv.conf.
    pub nameservers: Vec<String>,
    pub timeout: Span,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            nameservers: Vec::new(),
            timeout: Span::secs(5),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// Quota given to new accounts; 0 means unlimited.
    pub default_quota: Bytes,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// error, warn, info, debug or trace.
    pub level: String,
    pub format: LogFormat,
}

/// The shape of log lines (see `logging`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// tracing's lines, with span and fields.
    #[default]
    Default,
    /// syslog lines as Postfix and Dovecot write them.
    Postfix,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/merpati"),
            myhostname: String::new(),
            mydomain: String::new(),
            myorigin: "$myhostname".into(),
            mydestination: vec![
                "$myhostname".into(),
                "localhost.$mydomain".into(),
                "localhost".into(),
            ],
            virtual_mailbox_domains: Vec::new(),
            mynetworks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            recipient_delimiter: "+".into(),
            alias_file: String::new(),
            shutdown_timeout: Span::secs(30),
            virtual_alias: VirtualAlias::default(),
            tls: Tls::default(),
            acme: Acme::default(),
            smtp: Smtp::default(),
            submission: Submission::default(),
            imap: Imap::default(),
            pop3: Pop3::default(),
            queue: Queue::default(),
            relay: Relay::default(),
            dns: Dns::default(),
            mailauth: MailAuth::default(),
            restrictions: Restrictions::default(),
            checks: Checks::default(),
            postscreen: Postscreen::default(),
            greylist: Greylist::default(),
            anvil: Anvil::default(),
            auth: Auth::default(),
            spam: Spam::default(),
            milter: Milter::default(),
            sieve: Sieve::default(),
            managesieve: ManageSieve::default(),
            http: Http::default(),
            webmail: Webmail::default(),
            store: Store::default(),
            log: Log::default(),
        }
    }
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            listen: vec!["0.0.0.0:25".into(), "[::]:25".into()],
            banner: "$myhostname ESMTP Merpati".into(),
            message_size_limit: Bytes(10_240_000),
            max_recipients: 1000,
            line_length_limit: 2048,
            command_timeout: Span::secs(300),
            data_timeout: Span::secs(300),
            max_errors: 20,
            max_connections: 1000,
            max_connections_per_client: 50,
            bare_lf: BareLfPolicy::Normalize,
            greet_pause: Span::millis(300),
            enable_vrfy: false,
            login_timeout: Span::secs(120),
        }
    }
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            min_backoff: Span::secs(300),
            max_backoff: Span::secs(4000),
            max_lifetime: Span::secs(5 * 86_400),
            delay_warning: Span::secs(0),
            scan_interval: Span::secs(60),
            pickup_interval: Span::secs(1),
            active_limit: 20_000,
            local_concurrency: 8,
            delivery_batch: 64,
            minfree: Bytes(16 * 1024 * 1024),
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Store {
            default_quota: Bytes(0),
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            format: LogFormat::Default,
        }
    }
}

/// One thing wrong with a config file, naming the key and, where the file
/// sets it, its place: `merpati.toml:12:18: smtp.max_errors: ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
    /// Line and column (from 1) in the file.
    pub at: Option<(usize, usize)>,
    /// The file, once known.
    pub file: Option<String>,
}

impl Problem {
    pub fn new(key: &str, message: impl Into<String>) -> Problem {
        Problem {
            key: key.to_string(),
            message: message.into(),
            at: None,
            file: None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.at) {
            (Some(file), Some((line, col))) => write!(f, "{file}:{line}:{col}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            (None, Some((line, col))) => write!(f, "{line}:{col}: ")?,
            (None, None) => {}
        }
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl Config {
    /// Reads `path` (or the defaults when `None`), reports every problem at
    /// once, each located in the file, and expands `$myhostname`/`$mydomain`.
    pub fn load(path: Option<&Path>) -> Result<Config, Vec<Problem>> {
        Config::load_with(path, false)
    }

    /// [`Config::load`] plus [`Config::check_files`]: what `check-config`,
    /// the start of the daemon and a reload require.
    pub fn load_checked(path: Option<&Path>) -> Result<Config, Vec<Problem>> {
        Config::load_with(path, true)
    }

    fn load_with(path: Option<&Path>, files: bool) -> Result<Config, Vec<Problem>> {
        let Some(path) = path else {
            let mut config = Config::default();
            config.expand();
            let mut problems = config.validate();
            if files {
                problems.extend(config.check_files());
            }
            return if problems.is_empty() {
                Ok(config)
            } else {
                Err(problems)
            };
        };
        let file = path.display().to_string();
        let with_file = |mut problems: Vec<Problem>| {
            for p in &mut problems {
                p.file = Some(file.clone());
            }
            problems
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| with_file(vec![Problem::new("(file)", format!("cannot read: {e}"))]))?;
        let (mut config, positions) = parse::parse(&text).map_err(with_file)?;
        config.expand();
        let mut problems = config.validate();
        if files {
            problems.extend(config.check_files());
        }
        for p in &mut problems {
            p.at = positions.locate(&p.key);
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(with_file(problems))
        }
    }

    /// Parses TOML text without expanding variables; every problem of the
    /// text (syntax, unknown keys, types) is reported together, located.
    pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
        parse::parse(text).map(|(config, _)| config)
    }

    /// Fills in host names from the system and expands `$variables`.
    pub fn expand(&mut self) {
        if self.myhostname.is_empty() {
            self.myhostname = system_hostname();
        }
        if self.mydomain.is_empty() {
            self.mydomain = match self.myhostname.split_once('.') {
                Some((_, parent)) if parent.contains('.') || !parent.is_empty() => parent.into(),
                _ => "localdomain".into(),
            };
        }
        let host = self.myhostname.clone();
        let domain = self.mydomain.clone();
        let expand = |s: &str| {
            s.replace("$myhostname", &host)
                .replace("$mydomain", &domain)
                .to_lowercase()
        };
        self.myorigin = expand(&self.myorigin);
        self.mydestination = self.mydestination.iter().map(|d| expand(d)).collect();
        self.smtp.banner = self
            .smtp
            .banner
            .replace("$myhostname", &host)
            .replace("$mydomain", &domain);
        self.mydestination.dedup();
    }

    /// Semantic checks that serde cannot make; returns every problem found.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| problems.push(Problem::new(key, message));
        if self.data_dir.as_os_str().is_empty() {
            bad("data_dir", "must not be empty".into());
        }
        for (key, list) in [
            ("mynetworks", &self.mynetworks),
            ("http.metrics_allow", &self.http.metrics_allow),
        ] {
            for net in list {
                if let Err(e) = net.parse::<Cidr>() {
                    bad(key, e);
                }
            }
        }
        for net in &self.anvil.smtpd_client_event_limit_exceptions {
            if let Err(e) = net.parse::<Cidr>() {
                bad("anvil.smtpd_client_event_limit_exceptions", e);
            }
        }
        for (key, sites) in [
            ("spam.dnsbl_sites", &self.spam.dnsbl_sites),
            ("spam.uribl_sites", &self.spam.uribl_sites),
        ] {
            if let Err(e) = crate::policy::dnsbl::Site::parse_all(sites) {
                bad(key, e);
            }
        }
        for endpoint in &self.milter.smtpd_milters {
            if let Err(e) = crate::milter::client::check_endpoint(endpoint) {
                bad("milter.smtpd_milters", e);
            }
        }
        if self.sieve.max_script_size.0 == 0
            || self.sieve.max_script_size.0 > crate::sieve::MAX_SCRIPT as u64
        {
            bad(
                "sieve.max_script_size",
                format!("must be between 1 and {} octets", crate::sieve::MAX_SCRIPT),
            );
        }
        if self.spam.required_score <= 0.0 {
            bad("spam.required_score", "must be above 0".into());
        }
        if self.spam.reject_score != 0.0 && self.spam.reject_score < self.spam.required_score {
            bad(
                "spam.reject_score",
                "must be 0 (off) or at least required_score".into(),
            );
        }
        if self.spam.max_tokens < 1000 {
            bad("spam.max_tokens", "must be at least 1000".into());
        }
        if self.spam.cache_users == 0 {
            bad("spam.cache_users", "must be above 0".into());
        }
        if self.anvil.anvil_rate_time_unit.0.is_zero() {
            bad("anvil.anvil_rate_time_unit", "must be above 0".into());
        }
        for net in &self.greylist.allow_clients {
            if let Err(e) = net.parse::<Cidr>() {
                bad("greylist.allow_clients", e);
            }
        }
        if !(8..=32).contains(&self.greylist.ipv4_prefix) {
            bad("greylist.ipv4_prefix", "must be between 8 and 32".into());
        }
        if !(16..=128).contains(&self.greylist.ipv6_prefix) {
            bad("greylist.ipv6_prefix", "must be between 16 and 128".into());
        }
        let g = &self.greylist;
        if g.delay.0 >= g.retry_window.0 {
            // Every retry would come too late and start over: mail would
            // wait until the sender gives up.
            bad(
                "greylist.retry_window",
                "must be longer than greylist.delay".into(),
            );
        }
        if g.retry_window.0 > g.max_age.0 {
            bad(
                "greylist.max_age",
                "must be at least greylist.retry_window".into(),
            );
        }
        if self.greylist.max_entries == 0 {
            bad("greylist.max_entries", "must be above 0".into());
        }
        if self.greylist.save_interval.0.is_zero() {
            bad("greylist.save_interval", "must be above 0".into());
        }
        let listens = [
            ("smtp.listen", &self.smtp.listen),
            ("submission.listen", &self.submission.listen),
            ("submission.tls_listen", &self.submission.tls_listen),
            ("imap.listen", &self.imap.listen),
            ("imap.tls_listen", &self.imap.tls_listen),
            ("pop3.listen", &self.pop3.listen),
            ("pop3.tls_listen", &self.pop3.tls_listen),
            ("managesieve.listen", &self.managesieve.listen),
            ("http.listen", &self.http.listen),
            ("http.tls_listen", &self.http.tls_listen),
        ];
        for (key, addrs) in listens {
            for addr in addrs {
                if parse_listen(addr).is_none() {
                    bad(key, format!("`{addr}` is not host:port"));
                }
            }
        }
        for (key, message) in self.acme.problems(self) {
            bad(key, message);
        }
        if !(1..=50).contains(&self.mailauth.max_dkim_signatures) {
            bad(
                "mailauth.max_dkim_signatures",
                "must be between 1 and 50".into(),
            );
        }
        if self.mailauth.dns_budget.0.is_zero() {
            bad("mailauth.dns_budget", "must be above 0".into());
        }
        if self.mailauth.srs_max_age.0 < std::time::Duration::from_secs(86_400) {
            bad("mailauth.srs_max_age", "must be at least 1d".into());
        }
        if self.smtp.message_size_limit.0 == 0 {
            bad("smtp.message_size_limit", "must be above 0".into());
        }
        if self.smtp.max_recipients == 0 {
            bad("smtp.max_recipients", "must be above 0".into());
        }
        if self.smtp.line_length_limit < 512 {
            bad(
                "smtp.line_length_limit",
                "must be at least 512 (RFC 5321 §4.5.3.1.4)".into(),
            );
        }
        if self.smtp.max_connections == 0 {
            bad("smtp.max_connections", "must be above 0".into());
        }
        if self.smtp.max_connections_per_client == 0 {
            bad("smtp.max_connections_per_client", "must be above 0".into());
        }
        if let Err(e) = net::check_hostname(&self.myhostname) {
            bad("myhostname", e);
        }
        if !self.mydomain.is_empty()
            && let Err(e) = net::check_hostname(&self.mydomain)
        {
            bad("mydomain", e);
        }
        if self.queue.min_backoff > self.queue.max_backoff {
            bad(
                "queue.min_backoff",
                "must not be greater than queue.max_backoff".into(),
            );
        }
        if self.queue.active_limit == 0 {
            bad("queue.active_limit", "must be above 0".into());
        }
        if self.queue.local_concurrency == 0 {
            bad("queue.local_concurrency", "must be above 0".into());
        }
        for (key, value) in [
            ("imap.max_connections", self.imap.max_connections),
            (
                "imap.max_connections_per_client",
                self.imap.max_connections_per_client,
            ),
            (
                "imap.max_userip_connections",
                self.imap.max_userip_connections,
            ),
            ("pop3.max_connections", self.pop3.max_connections),
            (
                "pop3.max_connections_per_client",
                self.pop3.max_connections_per_client,
            ),
            (
                "pop3.max_userip_connections",
                self.pop3.max_userip_connections,
            ),
            (
                "managesieve.max_connections",
                self.managesieve.max_connections,
            ),
            (
                "managesieve.max_connections_per_client",
                self.managesieve.max_connections_per_client,
            ),
            (
                "managesieve.max_userip_connections",
                self.managesieve.max_userip_connections,
            ),
            ("http.max_connections", self.http.max_connections),
            (
                "http.max_connections_per_client",
                self.http.max_connections_per_client,
            ),
        ] {
            if value == 0 {
                bad(key, "must be above 0".into());
            }
        }
        if self.queue.delivery_batch == 0 {
            bad("queue.delivery_batch", "must be above 0".into());
        }
        for ns in &self.dns.nameservers {
            if parse_listen(ns).is_none() {
                bad("dns.nameservers", format!("`{ns}` is not ip:port"));
            }
        }
        if self.relay.max_recipients == 0 {
            bad("relay.max_recipients", "must be above 0".into());
        }
        if self.relay.initial_destination_concurrency == 0 {
            bad(
                "relay.initial_destination_concurrency",
                "must be above 0".into(),
            );
        }
        if self.relay.destination_concurrency_limit < self.relay.initial_destination_concurrency {
            bad(
                "relay.destination_concurrency_limit",
                "must be at least relay.initial_destination_concurrency".into(),
            );
        }
        if !self.relay.relayhost.is_empty()
            && let Err(e) = net::check_next_hop(&self.relay.relayhost)
        {
            bad("relay.relayhost", e);
        }
        for (domain, hop) in &self.relay.transports {
            if let Err(e) = net::check_next_hop(hop) {
                bad(&format!("relay.transports.\"{domain}\""), e);
            }
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log.level.as_str()) {
            bad(
                "log.level",
                format!(
                    "`{}` is not error, warn, info, debug or trace",
                    self.log.level
                ),
            );
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            bad("tls.cert", "tls.cert and tls.key go together".into());
        }
        for (key, targets) in &self.virtual_alias.map {
            if targets.is_empty() {
                bad(
                    &format!("virtual_alias.map.\"{key}\""),
                    "has no targets".into(),
                );
            }
        }
        problems
    }

    /// Checks the files the config names: they must exist and be readable
    /// (`check-config`, start and reload; not every admin command, which
    /// may run without the right to read the key).
    pub fn check_files(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut must_read = |key: &str, path: &str| {
            if let Err(e) = std::fs::File::open(path) {
                problems.push(Problem::new(key, format!("cannot read {path}: {e}")));
            }
        };
        if !self.tls.cert.is_empty() {
            must_read("tls.cert", &self.tls.cert);
            must_read("tls.key", &self.tls.key);
        }
        if !self.alias_file.is_empty() && std::path::Path::new(&self.alias_file).exists() {
            must_read("alias_file", &self.alias_file);
        }
        // The restriction lists and the tables they name (read now, as
        // the daemon will).
        if let Err(p) = crate::policy::Rules::from_config(self) {
            problems.extend(p);
        }
        if let Err(p) = crate::checks::ContentChecks::from_config(self) {
            problems.extend(p);
        }
        problems
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.data_dir.join("queue")
    }

    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.data_dir.join("run")
    }

    pub fn alias_path(&self) -> PathBuf {
        if self.alias_file.is_empty() {
            self.data_dir.join("aliases")
        } else {
            PathBuf::from(&self.alias_file)
        }
    }

    pub fn networks(&self) -> Vec<Cidr> {
        self.mynetworks
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect()
    }
}

/// `host:port` or `[v6]:port`.
pub fn parse_listen(text: &str) -> Option<std::net::SocketAddr> {
    text.parse().ok()
}

fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates, and we stop at the first NUL either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Ok(name) = std::str::from_utf8(&buf[..end])
            && !name.is_empty()
        {
            return name.to_lowercase();
        }
    }
    "localhost".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_equals_defaults() {
        let text = include_str!("../../config/merpati.toml");
        let parsed = Config::parse(text).expect("shipped config parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn bogus_key_in_each_table_is_named() {
        let text = include_str!("../../config/merpati.toml");
        let tables = [
            "",
            "virtual_alias",
            "tls",
            "smtp",
            "submission",
            "imap",
            "pop3",
            "queue",
            "relay",
            "dns",
            "store",
            "log",
        ];
        for table in tables {
            let bogus = if table.is_empty() {
                format!("bogus_key = 1\n{text}")
            } else {
                text.replace(
                    &format!("[{table}]\n"),
                    &format!("[{table}]\nbogus_key = 1\n"),
                )
            };
            let problems = Config::parse(&bogus).expect_err(table);
            let expected = if table.is_empty() {
                "bogus_key".to_string()
            } else {
                format!("{table}.bogus_key")
            };
            assert!(
                problems.iter().any(|p| p.key == expected),
                "{table}: {problems:?}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "nope = 1\n[smtp]\nalso_nope = 2\n[queue]\nwhat = 3\n";
        let problems = Config::parse(text).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let text = "[smtp]\nmax_recipients = \"many\"\n[queue]\nmin_backoff = \"soon\"\n";
        let problems = Config::parse(text).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        let mut config = Config {
            myhostname: "mail.example.org".into(),
            mynetworks: vec!["300.1.1.1/8".into()],
            ..Config::default()
        };
        config.log.level = "loud".into();
        assert_eq!(config.validate().len(), 2);
    }

    #[test]
    fn expansion_follows_postfix() {
        let mut config = Config {
            myhostname: "mail.example.org".into(),
            ..Config::default()
        };
        config.expand();
        assert_eq!(config.mydomain, "example.org");
        assert_eq!(config.myorigin, "mail.example.org");
        assert_eq!(
            config.mydestination,
            vec!["mail.example.org", "localhost.example.org", "localhost"]
        );
        assert_eq!(config.smtp.banner, "mail.example.org ESMTP Merpati");
    }
}
