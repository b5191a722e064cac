//! The POP3 server (RFC 1939) on 110 with STLS (RFC 2595) and on 995 with
//! implicit TLS (RFC 8314): what Dovecot's pop3-login and pop3 do, over the
//! same mail store IMAP serves.
//!
//! - [`proto`]: sans-IO command parser and response builders.
//! - [`session`]: the AUTHORIZATION -> TRANSACTION -> UPDATE state machine
//!   and its async driver.
//!
//! The maildrop is INBOX, snapshot at login: message numbers are stable
//! for the session, DELE takes effect at QUIT only, and one POP3 session
//! per account holds it at a time (`[IN-USE]` for the next). UIDL values
//! are UIDVALIDITY and UID in hex, the identity IMAP gives the message.
//! APOP is not offered: it needs the plain password on the server, and we
//! keep only Argon2id hashes.

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

/// What every POP3 session shares.
pub struct Pop3Service {
    pub config: Arc<Live<Config>>,
    pub store: Arc<dyn MailStore>,
    pub auth: Arc<Authenticator>,
    pub tls: Arc<Live<Arc<rustls::ServerConfig>>>,
    /// Cancelled on SIGTERM.
    pub shutdown: CancellationToken,
    /// Logged-in sessions per (account, client address).
    pub user_ip: Arc<crate::net::anvil::Anvil<(String, std::net::IpAddr)>>,
}

/// Serves one connection; `implicit_tls` for the RFC 8314 port.
pub async fn serve_connection(
    svc: Arc<Pop3Service>,
    tcp: TcpStream,
    admitted: Admitted,
    implicit_tls: bool,
) {
    session::serve(svc, tcp, admitted, implicit_tls).await;
}

/// Answers a connection refused by the accept loop's limits.
pub async fn refuse(tcp: TcpStream, refusal: Refusal) {
    session::refuse(tcp, refusal).await;
}
