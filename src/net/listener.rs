//! Binding listen addresses and the accept loop: a global connection limit
//! and a per-client limit, one span per connection, orderly stop on
//! shutdown.

use super::anvil::{Anvil, Slot};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Binds every address; an IPv6 wildcard is bound v6-only so that it can
/// sit beside `0.0.0.0`. A host without IPv6 skips `[::]` with a warning.
pub fn bind_all(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for addr in addrs {
        match bind(*addr) {
            Ok(l) => out.push(l),
            Err(e) if addr.is_ipv6() && addr.ip().is_unspecified() && addrs.len() > 1 => {
                tracing::warn!("not listening on {addr}: {e}");
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr}: {e}"),
                ));
            }
        }
    }
    Ok(out)
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// What a connection handler is given besides its stream.
pub struct Admitted {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    _permit: OwnedSemaphorePermit,
    _slot: Slot,
    _open: Open,
}

/// Counts the session in the metrics while it lasts.
struct Open(&'static str);

impl Open {
    fn new(service: &'static str) -> Open {
        crate::metrics::get().session_opened(service);
        Open(service)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        crate::metrics::get().session_closed(self.0);
    }
}

/// Refusal reasons, answered by the protocol in its own words.
pub enum Refusal {
    TooManyConnections,
    TooManyFromClient,
}

pub struct Limits {
    /// The service, for the log line of a refusal (`smtpd`, `imap`...).
    pub service: &'static str,
    pub total: Arc<Semaphore>,
    /// The size `total` was made with.
    pub total_limit: usize,
    pub per_client: usize,
    pub anvil: Arc<Anvil>,
}

impl Limits {
    /// A listener group's limits: `total` connections at once, `per_client`
    /// from one address.
    pub fn new(service: &'static str, total: usize, per_client: usize) -> Arc<Limits> {
        Arc::new(Limits {
            service,
            total: Arc::new(Semaphore::new(total)),
            total_limit: total,
            per_client,
            anvil: Arc::new(Anvil::default()),
        })
    }
}

/// Accepts until `shutdown`. `serve` runs each admitted connection;
/// `refuse` writes the protocol's "too busy" line on refused ones.
pub async fn accept_loop<S, SF, R, RF>(
    listener: TcpListener,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    serve: S,
    refuse: R,
) where
    S: Fn(TcpStream, Admitted) -> SF + Send + Sync + 'static,
    SF: Future<Output = ()> + Send + 'static,
    R: Fn(TcpStream, Refusal) -> RF + Send + Sync + 'static,
    RF: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        let Ok(permit) = limits.total.clone().try_acquire_owned() else {
            // As Postfix's anvil(8) and Dovecot's master log them.
            tracing::warn!(
                "Connection limit exceeded: {} connections, refused [{}] for service {} on {local}",
                limits.total_limit,
                peer.ip(),
                limits.service
            );
            crate::metrics::get().refused(limits.service);
            tracker.spawn(refuse(stream, Refusal::TooManyConnections));
            continue;
        };
        let Some(slot) = limits.anvil.take(peer.ip(), limits.per_client) else {
            tracing::warn!(
                "Connection concurrency limit exceeded: {} from [{}] for service {} on {local}",
                limits.per_client.saturating_add(1),
                peer.ip(),
                limits.service
            );
            crate::metrics::get().refused(limits.service);
            tracker.spawn(refuse(stream, Refusal::TooManyFromClient));
            continue;
        };
        let admitted = Admitted {
            peer,
            local,
            _permit: permit,
            _slot: slot,
            _open: Open::new(limits.service),
        };
        tracker.spawn(serve(stream, admitted));
    }
}
