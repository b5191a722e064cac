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

pub use routes::router;

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
    /// The certificate's config with ALPN for h2, made once per
    /// certificate (the base it was made from, and it).
    pub alpn: std::sync::Mutex<Option<TlsPair>>,
    /// ACME validation answers (HTTP-01 tokens, TLS-ALPN-01 certificates).
    pub acme: Arc<crate::acme::Challenges>,
    /// The webmail, mounted on the HTTPS listener when enabled.
    pub webmail: Option<Arc<crate::webmail::Webmail>>,
}

/// A TLS config and the same with HTTP's ALPN protocols.
pub type TlsPair = (Arc<rustls::ServerConfig>, Arc<rustls::ServerConfig>);

/// The client's address, on every request of its connection.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::IpAddr);

impl HttpService {
    /// The server config for HTTPS: the daemon's, with ALPN `h2` and
    /// `http/1.1`; made again only when the certificate changes.
    fn alpn_config(&self) -> Arc<rustls::ServerConfig> {
        let base: Arc<rustls::ServerConfig> = self.tls.get().as_ref().clone();
        let mut cached = self.alpn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((from, with_alpn)) = cached.as_ref()
            && Arc::ptr_eq(from, &base)
        {
            return with_alpn.clone();
        }
        let mut config = rustls::ServerConfig::clone(&base);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let config = Arc::new(config);
        *cached = Some((base, config.clone()));
        config
    }
}

/// Serves one connection with `router` (one per listener, made at start).
pub async fn serve_connection(
    svc: Arc<HttpService>,
    router: axum::Router,
    tcp: TcpStream,
    admitted: Admitted,
    tls: bool,
) {
    use tower::ServiceExt;
    let config = svc.config.get();
    let limits = &config.http;
    let peer = Peer(admitted.peer.ip());
    let router = router.map_request(
        move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(peer);
            request
        },
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
        let handshake = tokio::time::timeout(limits.header_timeout.0, handshake(&svc, tcp)).await;
        if let Ok(r) = &handshake {
            crate::metrics::get().tls_handshake(r.is_ok());
        }
        let stream = match handshake {
            Ok(Ok(Some(stream))) => stream,
            // A TLS-ALPN-01 validation: the handshake was all it wanted.
            Ok(Ok(None)) => return,
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

/// The TLS handshake of the HTTPS port: ALPN offers h2 besides HTTP/1.1
/// (on this port only), and a ClientHello asking for `acme-tls/1` gets the
/// TLS-ALPN-01 validation certificate while an order is open (`None`:
/// nothing more to serve on that connection).
async fn handshake(
    svc: &HttpService,
    tcp: TcpStream,
) -> std::io::Result<Option<tokio_rustls::server::TlsStream<TcpStream>>> {
    let start =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
    let hello = start.client_hello();
    let wants_acme = hello.alpn().is_some_and(|mut protocols| {
        protocols.any(|p| p == crate::acme::challenges::ACME_TLS_ALPN)
    });
    if wants_acme {
        let config = svc.acme.tls_alpn_config(hello.server_name());
        return match config {
            Some(config) => {
                let mut stream = start.into_stream(config).await?;
                let _ = stream.shutdown().await;
                Ok(None)
            }
            None => Err(std::io::Error::other("acme-tls/1 with no order open")),
        };
    }
    start.into_stream(svc.alpn_config()).await.map(Some)
}

/// Answers a connection refused by the accept loop's limits.
pub async fn refuse(mut tcp: TcpStream, _refusal: Refusal) {
    let reply = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 5\r\n\r\n";
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.write_all(reply)).await;
}
