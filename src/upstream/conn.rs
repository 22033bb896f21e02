//! A connection to an upstream server: plain TCP, or TLS over it, dialled
//! within the connect timeout once the server has a place for the request.
//! Plain reads keep their readiness fast path (`body`); everything else
//! reads and writes through tokio's I/O traits.

use std::io::{self, ErrorKind};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::{Failure, Server, UpstreamGroup};

pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// The TCP socket under it.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }
}

impl UpstreamGroup {
    /// A place among the server's requests in flight, waited for up to the
    /// queue timeout.
    pub(super) async fn slot(&self, server: &Server) -> Result<OwnedSemaphorePermit, Failure> {
        match server.slots.clone().try_acquire_owned() {
            Ok(slot) => Ok(slot),
            Err(_) => self.queued_slot(server).await,
        }
    }

    /// A place among the server's requests in flight once one is free,
    /// waited for up to the queue timeout.
    pub(super) async fn queued_slot(
        &self,
        server: &Server,
    ) -> Result<OwnedSemaphorePermit, Failure> {
        let wait = server.slots.clone().acquire_owned();
        match tokio::time::timeout(self.config.queue_timeout, wait).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(Failure::Busy),
        }
    }

    /// A new connection to `server`, its TLS handshake done if the group
    /// has one, all within the connect timeout.
    pub(super) async fn connect(&self, server: &Server) -> Result<Conn, Failure> {
        let timeout = self.config.connect_timeout;
        let deadline = Instant::now() + timeout;
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(server.addr)).await
        {
            Err(_) => return Err(Failure::ConnectTimeout),
            Ok(Err(e)) if e.kind() == ErrorKind::TimedOut => return Err(Failure::ConnectTimeout),
            Ok(Err(_)) => return Err(Failure::Connect),
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Conn::Plain(stream));
        };
        let Some(name) = server.tls_name.clone() else {
            tracing::warn!(upstream = %self.config.name, server = %server.addr, "no name to verify the upstream's certificate against; set sni");
            return Err(Failure::Tls);
        };
        match tokio::time::timeout_at(deadline, tls.connect(name, stream)).await {
            Err(_) => Err(Failure::ConnectTimeout),
            Ok(Ok(stream)) => Ok(Conn::Tls(Box::new(stream))),
            Ok(Err(error)) => {
                // Why matters to the operator: an untrusted certificate, a
                // wrong name, a client certificate the server refused.
                tracing::warn!(upstream = %self.config.name, server = %server.addr, %error, "upstream TLS handshake failed");
                Err(Failure::Tls)
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
