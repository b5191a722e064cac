//! A connection that starts in plaintext and may switch to TLS (STARTTLS),
//! or starts in TLS (implicit TLS ports).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Transitional state while a handshake owns the socket.
    Gone,
}

impl MaybeTls {
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// Performs the server side of a TLS handshake on a plaintext stream.
    pub async fn upgrade(&mut self, acceptor: tokio_rustls::TlsAcceptor) -> io::Result<()> {
        match std::mem::replace(self, MaybeTls::Gone) {
            MaybeTls::Plain(tcp) => {
                let tls = acceptor.accept(tcp).await;
                crate::metrics::get().tls_handshake(tls.is_ok());
                *self = MaybeTls::Tls(Box::new(tls?));
                Ok(())
            }
            other => {
                *self = other;
                Err(io::Error::other("TLS already active"))
            }
        }
    }

    /// Asks the kernel to acknowledge what arrives next at once (Linux
    /// TCP_QUICKACK; it falls back to delayed ACKs by itself). A client
    /// that writes a literal and its closing CRLF in two sends under Nagle
    /// holds the CRLF until its literal is acknowledged; with delayed ACKs
    /// every APPEND then waited ~40 ms for nothing.
    pub fn quick_ack(&self) {
        use std::os::fd::AsRawFd;
        let fd = match self {
            MaybeTls::Plain(tcp) => tcp.as_raw_fd(),
            MaybeTls::Tls(tls) => tls.get_ref().0.as_raw_fd(),
            MaybeTls::Gone => return,
        };
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads `one` for its size; `fd` is this open
        // socket. A failure only leaves delayed ACKs on.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    /// The negotiated protocol and cipher, for the log.
    pub fn tls_summary(&self) -> Option<String> {
        let MaybeTls::Tls(tls) = self else {
            return None;
        };
        let (_, conn) = tls.get_ref();
        Some(format!(
            "{:?} {:?}",
            conn.protocol_version()?,
            conn.negotiated_cipher_suite()?.suite()
        ))
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "stream lost in TLS handshake")
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }
}
