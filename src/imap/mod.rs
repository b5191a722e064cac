//! IMAP server (RFC 3501 IMAP4rev1 with IDLE, UIDPLUS, MOVE, NAMESPACE,
//! ID, ENABLE, UNSELECT, LITERAL+, SASL-IR, CHILDREN, SPECIAL-USE,
//! CONDSTORE, STATUS=SIZE, AUTH=LOGIN, ESEARCH, SEARCHRES, WITHIN,
//! LIST-EXTENDED, LIST-STATUS, MULTIAPPEND, QUOTA, BINARY, UTF8=ACCEPT,
//! CREATE-SPECIAL-USE, SORT with SORT=DISPLAY, THREAD=ORDEREDSUBJECT and
//! THREAD=REFERENCES, QRESYNC, and IMAP4rev2): Merpati's analogue of
//! Dovecot's imap process, over the shared [`MailStore`].
//!
//! * [`proto`]: sans-IO framing, parser and response encoding;
//! * [`mutf7`]: modified UTF-7 mailbox names (RFC 3501 §5.1.3); the store
//!   keeps UTF-8, sessions without UTF8=ACCEPT convert at the edge;
//! * `session`: connection states, the async driver, error mapping;
//! * `selected`: the selected mailbox's view and change notifications;
//! * `mailbox`, `fetch`, `search`, `store`, `idle`: command families
//!   (`search` also runs SORT and THREAD);
//! * `sort`, `thread`: sans-IO SORT keys and ordering, and the threading
//!   algorithms (RFC 5256);
//! * `message`: MIME structure for FETCH and SEARCH.

mod compress;
mod fetch;
mod idle;
pub(crate) mod learn;
mod mailbox;
mod message;
pub mod mutf7;
pub mod proto;
mod search;
mod selected;
mod session;
mod sort;
mod store;
mod thread;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::live::Live;
use crate::net::listener::{Admitted, Refusal};
use crate::store::MailStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What every IMAP session shares.
pub struct ImapService {
    pub config: Arc<Live<Config>>,
    pub store: Arc<dyn MailStore>,
    pub auth: Arc<Authenticator>,
    pub tls: Arc<Live<Arc<rustls::ServerConfig>>>,
    /// Cancelled on SIGTERM.
    pub shutdown: CancellationToken,
    /// Logged-in sessions per (account, client address).
    pub user_ip: Arc<crate::net::anvil::Anvil<(String, std::net::IpAddr)>>,
    /// Learns from messages moved into and out of Junk.
    pub spam: Arc<crate::spam::SpamFilter>,
}

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// Serves one connection; `implicit_tls` for the RFC 8314 port.
pub async fn serve_connection(
    svc: Arc<ImapService>,
    tcp: TcpStream,
    admitted: Admitted,
    implicit_tls: bool,
) {
    let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    let peer = admitted.peer;
    let span = tracing::info_span!("imapd", session = id, client = %peer.ip());
    async move {
        tracing::info!(
            "connect from {peer}{}",
            if implicit_tls { " (TLS)" } else { "" }
        );
        let stream = match session::open_stream(&svc, tcp, implicit_tls).await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!("TLS handshake failed: {e}");
                return;
            }
        };
        let mut session = session::Session::new(svc, stream, peer);
        let end = session.run().await;
        if session.account.is_none()
            && let Some(line) =
                session
                    .failed_logins
                    .summary("imap", peer.ip(), admitted.local.ip())
        {
            tracing::info!("{line}");
        }
        tracing::info!("disconnect from {peer} ({end})");
        drop(admitted);
    }
    .instrument(span)
    .await
}

/// Answers a connection refused by the accept loop's limits.
pub async fn refuse(tcp: TcpStream, refusal: Refusal) {
    let text: &[u8] = match refusal {
        Refusal::TooManyConnections => b"* BYE [UNAVAILABLE] Too many connections, try later\r\n",
        Refusal::TooManyFromClient => {
            b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
        }
    };
    let mut tcp = tcp;
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.write_all(text)).await;
}
