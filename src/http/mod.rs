//! The web listener: HTTP/1.1 and HTTP/2 (over TLS, by ALPN) on hyper,
//! routed by axum, served from our own accept loop so the connection
//! limits, the certificate and shutdown are the other listeners' own.
//!
//! - [`autoconfig`]: the client-setup documents (sans-IO).
//! - `routes`: which path answers what.
//!
//! The plain port answers the autoconfig and autodiscover paths and
//! `/healthz` (clients and load balancers ask there before any
//! certificate is trusted) and redirects everything else to HTTPS.

pub mod autoconfig;
mod routes;

use crate::config::Config;
use crate::live::Live;
use crate::net::listener::{Admitted, Refusal};
use crate::rewrite::Resolver;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// What every HTTP connection shares.
pub struct HttpService {
    pub config: Arc<Live<Config>>,
    pub resolver: Arc<Live<Resolver>>,
    pub tls: Arc<Live<Arc<rustls::ServerConfig>>>,
    pub shutdown: CancellationToken,
    /// For `/metrics`: the store's size.
    pub store: Arc<dyn crate::store::MailStore>,
}

/// Serves one connection; `tls` for the HTTPS port.
pub async fn serve_connection(
    svc: Arc<HttpService>,
    tcp: TcpStream,
    admitted: Admitted,
    tls: bool,
) {
    let config = svc.config.get();
    let limits = &config.http;
    let router = routes::router(
        svc.clone(),
        tls,
        limits.max_body.0 as usize,
        admitted.peer.ip(),
    );
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout.0)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(32)
        .max_header_list_size(64 * 1024);
    let lifetime = limits.connection_timeout.0;
    let shutdown = svc.shutdown.clone();
    let peer = admitted.peer;
    let result = if tls {
        // ALPN offers h2 besides HTTP/1.1 on this port only.
        let mut server_config = rustls::ServerConfig::clone(&svc.tls.get());
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let handshake = tokio::time::timeout(limits.header_timeout.0, acceptor.accept(tcp)).await;
        if let Ok(r) = &handshake {
            crate::metrics::get().tls_handshake(r.is_ok());
        }
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!("http: TLS handshake with {peer} failed: {e}");
                return;
            }
            Err(_) => return,
        };
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::select! {
            r = tokio::time::timeout(lifetime, conn) => r.ok().and_then(|r| r.err()),
            _ = shutdown.cancelled() => None,
        }
    } else {
        let conn = builder.serve_connection(TokioIo::new(tcp), service);
        tokio::select! {
            r = tokio::time::timeout(lifetime, conn) => r.ok().and_then(|r| r.err()),
            _ = shutdown.cancelled() => None,
        }
    };
    if let Some(e) = result {
        tracing::debug!("http: connection from {peer}: {e}");
    }
    drop(admitted);
}

/// Answers a connection refused by the accept loop's limits.
pub async fn refuse(mut tcp: TcpStream, _refusal: Refusal) {
    let reply = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 5\r\n\r\n";
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.write_all(reply)).await;
}
