//! The SMTP server (Postfix's smtpd): one task per connection. The protocol
//! bytes are parsed by the sans-IO [`proto`](super::proto) layer; this
//! module holds the I/O driver and the policy (relay control, recipient
//! checks, limits), and hands accepted messages to cleanup.

mod session;

pub use session::{refuse, serve_connection};

/// Which service a listener offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Port 25: mail from other servers; no AUTH; relay only for mynetworks.
    Mx,
    /// Ports 587/465 (RFC 6409, RFC 8314): AUTH required before MAIL, then
    /// any destination, with the sender limited to the user's addresses.
    Submission { implicit_tls: bool },
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Mx => "port 25 service",
            Mode::Submission {
                implicit_tls: false,
            } => "submission, STARTTLS",
            Mode::Submission { implicit_tls: true } => "submission, implicit TLS",
        })
    }
}

use crate::cleanup::Cleanup;
use crate::config::Config;
use crate::live::Live;
use crate::queue::qmgr::Triggers;
use crate::rewrite::Resolver;
use crate::store::MailStore;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What every SMTP session shares.
pub struct SmtpService {
    pub config: Arc<Live<Config>>,
    pub resolver: Arc<Live<Resolver>>,
    pub store: Arc<dyn MailStore>,
    pub cleanup: Arc<Cleanup>,
    pub tls: Arc<Live<Arc<rustls::ServerConfig>>>,
    pub triggers: Arc<Triggers>,
    pub auth: Arc<crate::auth::Authenticator>,
    /// SPF/DKIM/DMARC/ARC checks of mail from other servers.
    pub mailauth: Arc<crate::mailauth::MailAuth>,
    /// The restriction lists (smtpd_*_restrictions) and the client's DNS.
    pub policy: Arc<crate::policy::Policy>,
    /// anvil's rate counters, shared with IMAP and POP3 (failed logins).
    pub rates: Arc<crate::net::anvil::Rates>,
    /// The spam filter (scores mail from other servers).
    pub spam: Arc<crate::spam::SpamFilter>,
    /// Cancelled on SIGTERM: idle sessions answer 421 and close; sessions
    /// in a transaction finish it first.
    pub shutdown: CancellationToken,
}
