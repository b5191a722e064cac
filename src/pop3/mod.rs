//! POP3 server (work in progress: being written now).

use crate::auth::Authenticator;
use crate::config::Config;
use crate::live::Live;
use crate::net::listener::{Admitted, Refusal};
use crate::store::MailStore;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// What every POP3 session shares.
pub struct Pop3Service {
    pub config: Arc<Live<Config>>,
    pub store: Arc<dyn MailStore>,
    pub auth: Arc<Authenticator>,
    pub tls: Arc<Live<Arc<rustls::ServerConfig>>>,
    /// Cancelled on SIGTERM.
    pub shutdown: CancellationToken,
}

/// Serves one connection; `implicit_tls` for the RFC 8314 port.
pub async fn serve_connection(
    svc: Arc<Pop3Service>,
    tcp: TcpStream,
    admitted: Admitted,
    implicit_tls: bool,
) {
    let _ = (svc, tcp, admitted, implicit_tls);
}

/// Answers a connection refused by the accept loop's limits.
pub async fn refuse(tcp: TcpStream, refusal: Refusal) {
    let _ = (tcp, refusal);
}
