//! The SMTP server (Postfix's smtpd): one task per connection. The protocol
//! bytes are parsed by the sans-IO [`proto`](super::proto) layer; this
//! module holds the I/O driver and the policy (relay control, recipient
//! checks, limits), and hands accepted messages to cleanup.

mod session;

pub use session::{refuse, serve_connection};

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
    /// Cancelled on SIGTERM: idle sessions answer 421 and close; sessions
    /// in a transaction finish it first.
    pub shutdown: CancellationToken,
}
