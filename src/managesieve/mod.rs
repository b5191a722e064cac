//! The ManageSieve server (RFC 5804) on 4190: where mail clients upload,
//! list, activate and delete their Sieve scripts. Pigeonhole's
//! managesieve-login and managesieve in one task per connection, over
//! the scripts `crate::sieve::scripts` keeps with the account.
//!
//! - [`proto`]: sans-IO command reader and response writers.
//! - `session`: the non-authenticated -> authenticated states and the
//!   async driver (STARTTLS, SASL PLAIN/LOGIN, the script commands).

pub mod proto;
mod session;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::live::Live;
use crate::net::listener::{Admitted, Refusal};
use crate::store::MailStore;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// What every ManageSieve session shares.
pub struct ManageSieveService {
    pub config: Arc<Live<Config>>,
    pub store: Arc<dyn MailStore>,
    pub auth: Arc<Authenticator>,
    pub tls: Arc<Live<Arc<rustls::ServerConfig>>>,
    /// Cancelled on SIGTERM.
    pub shutdown: CancellationToken,
    /// Logged-in sessions per (account, client address).
    pub user_ip: Arc<crate::net::anvil::Anvil<(String, std::net::IpAddr)>>,
}

pub async fn serve_connection(svc: Arc<ManageSieveService>, tcp: TcpStream, admitted: Admitted) {
    session::serve(svc, tcp, admitted).await;
}

/// Answers a connection refused by the accept loop's limits.
pub async fn refuse(tcp: TcpStream, refusal: Refusal) {
    session::refuse(tcp, refusal).await;
}
