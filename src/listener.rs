//! The listeners: accepting connections within their limits
//! (`connections`), TLS with ALPN, HTTP/1.1 and HTTP/2 through hyper, and
//! draining open connections at shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::config::{CertificateMode, TlsFiles};
use crate::connections::{Connections, Counted, Expiry, InFlight, Slot};
use crate::executor::BoxingExecutor;
use rustls::server::danger::ClientCertVerifier;

/// Why a listener's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls_cert {path}: {source}")]
    Cert {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("tls_key {path}: {source}")]
    Key {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("tls_key {path} does not fit tls_cert: {source}")]
    Mismatch { path: String, source: rustls::Error },
    #[error("{0}")]
    Setup(rustls::Error),
    #[error("client_ca_file {path}: {why}")]
    ClientCa { path: String, why: String },
}

/// A TLS listener: its acceptor, and how it tells a verified client
/// certificate from one it took unverified.
pub struct ListenerTls {
    pub acceptor: TlsAcceptor,
    pub clients: ClientCheck,
}

/// Whether a client certificate a handshake took chains to the listener's
/// roots: every one does where the handshake verified it; with
/// `client_certificates = "any"`, those the roots verify after it.
#[derive(Clone, Default)]
pub struct ClientCheck {
    in_handshake: bool,
    roots: Option<Arc<dyn ClientCertVerifier>>,
}

impl ClientCheck {
    fn verifies(&self, leaf: &CertificateDer<'_>, chain: &[CertificateDer<'_>]) -> bool {
        self.in_handshake
            || self.roots.as_ref().is_some_and(|roots| {
                roots
                    .verify_client_cert(leaf, chain, rustls::pki_types::UnixTime::now())
                    .is_ok()
            })
    }
}

/// The TLS setup of a listener: its certificate chain and key, TLS 1.2 and
/// 1.3 with rustls' safe defaults, and ALPN offering HTTP/2 first.
pub fn tls_acceptor(files: &TlsFiles) -> Result<ListenerTls, TlsError> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Cert {
            path: files.cert.display().to_string(),
            source,
        })?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Key {
        path: files.key.display().to_string(),
        source,
    })?;
    let mismatch = |source| TlsError::Mismatch {
        path: files.key.display().to_string(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?;
    let (builder, clients) = match &files.clients {
        None => (builder.with_no_client_auth(), ClientCheck::default()),
        Some(clients) => {
            let roots = match &clients.ca {
                Some(ca) => Some(client_verifier(
                    ca,
                    &clients.roots,
                    clients.mode,
                    provider.clone(),
                )?),
                None => None,
            };
            match clients.mode {
                CertificateMode::Any => {
                    let any = Arc::new(AnyCertificate { provider });
                    let check = ClientCheck {
                        in_handshake: false,
                        roots,
                    };
                    (builder.with_client_cert_verifier(any), check)
                }
                _ => {
                    let roots = roots.expect("the check asks roots of every other mode");
                    let check = ClientCheck {
                        in_handshake: true,
                        roots: None,
                    };
                    (builder.with_client_cert_verifier(roots), check)
                }
            }
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(mismatch)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(ListenerTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        clients,
    })
}

/// `client_certificates = "any"`: any client certificate whose key signs
/// the handshake, chained to nothing (a self-signed one of
/// `self_signed_tls_client_auth`, one a token is bound to); whether it
/// also chains to the listener's roots is asked after (`ClientCheck`).
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for AnyCertificate {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client certificates verified against the roots of `clients.ca`, as
/// the config read them (what a reload compares), required or optional
/// (mutual TLS, RFC 8705).
fn client_verifier(
    ca: &std::path::Path,
    certs: &[CertificateDer<'static>],
    mode: CertificateMode,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let failed = |why: String| TlsError::ClientCa {
        path: ca.display().to_string(),
        why,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert.clone()).map_err(|e| failed(e.to_string()))?;
    }
    let builder =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = match mode {
        CertificateMode::Required => builder,
        _ => builder.allow_unauthenticated(),
    };
    builder.build().map_err(|e| failed(e.to_string()))
}

/// The connection a request came in on.
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
    /// The client's address as `X-Forwarded-For` text, made once per
    /// connection rather than formatted for every request.
    pub forwarded_for: HeaderValue,
    /// A configured proxy: what it says in `X-Forwarded-For`, `Forwarded`
    /// and `X-Real-IP` about its own clients is kept.
    pub trusted: bool,
    /// A proxy whose PROXY header named no client: its address stands,
    /// but it vouches for nothing said on this connection, whatever
    /// `trusted_proxies` says.
    pub unnamed: bool,
    /// The certificate the client showed in the TLS handshake.
    pub client_cert: Option<Arc<crate::client_cert::ClientCert>>,
}

impl Peer {
    pub fn new(addr: SocketAddr, tls: bool, trusted: bool) -> Peer {
        let forwarded_for = HeaderValue::try_from(addr.ip().to_string())
            .expect("an IP address is valid header text");
        Peer {
            addr,
            tls,
            forwarded_for,
            trusted,
            unnamed: false,
            client_cert: None,
        }
    }
}

/// How a listener serves its connections.
pub struct Serving {
    pub connections: Arc<Connections>,
    pub tls: Option<ListenerTls>,
    pub tls_handshake_timeout: Duration,
    /// A request head (HTTP/1) or header list (HTTP/2) larger than this is
    /// refused (`431`, or a stream reset).
    pub max_header_size: usize,
    /// Connections start with a PROXY protocol header (from trusted proxies only).
    pub proxy_protocol: bool,
    /// How long that header may take.
    pub header_timeout: Duration,
}

/// What an upgrade request carries (as a request extension) so that a
/// tunnel made of its connection keeps the connection's place, counted as
/// busy, and hears of shutdown. Only requests that may upgrade get one.
#[derive(Clone)]
pub struct Hold(Arc<Holding>);

struct Holding {
    _slot: Arc<Slot>,
    _busy: InFlight,
    stop: watch::Receiver<bool>,
}

impl Hold {
    /// Turns true when the gateway stops.
    pub fn stop(&self) -> watch::Receiver<bool> {
        self.0.stop.clone()
    }
}

/// What answers a listener's requests: the gateway, or the admin API.
pub trait Handler: Send + Sync + 'static {
    type Body: Body<Data = Bytes> + Unpin + Send + 'static;

    /// The request's head is lent, not given (its body is the handler's):
    /// a future keeps what it is given twice over, and is copied whole each
    /// time it moves, so the head stays with the connection's task.
    fn respond<'a>(
        &'a self,
        parts: &'a mut http::request::Parts,
        body: Incoming,
        peer: &'a Peer,
    ) -> impl Future<Output = Response<Self::Body>> + Send + 'a;

    /// Whether a connection from `ip` comes from one of the proxies the
    /// running configuration trusts (`server.trusted_proxies`).
    fn trusts(&self, _ip: IpAddr) -> bool {
        false
    }
}

/// Ends a task when its owner is done with it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Once a connection's time is up, how long it may take to close politely
/// (an HTTP/2 `GOAWAY`) before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Accepts connections until `stop` turns true, serving each on its own
/// task with `handler`; every task holds a clone of `stop`, so the sender's
/// `closed()` tells when the last connection is done.
pub async fn accept<H: Handler>(
    listener: TcpListener,
    serving: Arc<Serving>,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
) where
    <H::Body as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let accepted = tokio::select! {
            accepted = async {
                serving.connections.room().await;
                listener.accept().await
            } => accepted,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A trusted proxy's connections carry many clients: not counted
        // against one address's share.
        let peer = Peer::new(addr, serving.tls.is_some(), handler.trusts(addr.ip()));
        let Some(slot) = serving
            .connections
            .admit((!peer.trusted).then(|| addr.ip().to_canonical()))
        else {
            tracing::debug!(client = %addr, "connection limit reached; refused");
            if serving.tls.is_none() {
                refuse(stream);
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut peer = peer;
        let (serving, handler, stop) = (serving.clone(), handler.clone(), stop.clone());
        tokio::spawn(async move {
            let mut stream = stream;
            if serving.proxy_protocol {
                match proxied_peer(&mut stream, peer, &serving, &*handler, &slot).await {
                    Some(client) => peer = client,
                    None => return,
                }
            }
            match &serving.tls {
                None => serve(stream, slot, &serving, peer, handler, stop).await,
                Some(tls) => {
                    let handshake = tls.acceptor.accept(stream);
                    let handshake = tokio::time::timeout(serving.tls_handshake_timeout, handshake);
                    let handshake = tokio::select! {
                        done = handshake => done,
                        // A handshake that has not finished is as quiet as a
                        // connection gets: its place is wanted now.
                        () = slot.evicted() => return,
                    };
                    match handshake {
                        Ok(Ok(stream)) => {
                            peer.client_cert = shown_certificate(&stream, &tls.clients);
                            serve(stream, slot, &serving, peer, handler, stop).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(client = %addr, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(client = %addr, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// The certificate a client showed in the handshake, verified by then.
fn shown_certificate(
    stream: &tokio_rustls::server::TlsStream<TcpStream>,
    check: &ClientCheck,
) -> Option<Arc<crate::client_cert::ClientCert>> {
    let (leaf, chain) = stream.get_ref().1.peer_certificates()?.split_first()?;
    let verified = check.verifies(leaf, chain);
    let chain = chain.iter().map(|c| c.to_vec()).collect();
    Some(Arc::new(crate::client_cert::ClientCert::new(
        leaf.to_vec(),
        chain,
        verified,
    )))
}

/// The client a trusted proxy's PROXY header names; for a header that
/// names none (v1 `UNKNOWN`, v2 `LOCAL`, or a family with no address),
/// the proxy's own address, no longer trusted: what comes next may be an
/// unknown client's, whose `Client-Cert` or `X-Forwarded-For` no proxy
/// vouches for. `None`, and the connection closed, for a peer that is not
/// a trusted proxy or a header that is missing, bad or slow.
async fn proxied_peer(
    stream: &mut TcpStream,
    peer: Peer,
    serving: &Serving,
    handler: &impl Handler,
    slot: &Slot,
) -> Option<Peer> {
    if !peer.trusted {
        // Anyone else could name any address.
        tracing::debug!(client = %peer.addr, "PROXY header from a peer not in trusted_proxies");
        return None;
    }
    let header = tokio::time::timeout(
        serving.header_timeout,
        crate::proxy_protocol::read_header(stream),
    );
    let read = tokio::select! {
        read = header => read,
        () = slot.evicted() => return None,
    };
    match read {
        Ok(Ok(Some(client))) => Some(Peer::new(
            client,
            serving.tls.is_some(),
            handler.trusts(client.ip()),
        )),
        Ok(Ok(None)) => Some(Peer {
            trusted: false,
            unnamed: true,
            ..peer
        }),
        Ok(Err(why)) => {
            tracing::debug!(client = %peer.addr, %why, "connection closed");
            None
        }
        Err(_) => {
            tracing::debug!(client = %peer.addr, "PROXY header timed out");
            None
        }
    }
}

/// A `503` for a connection turned away at the cap, written if the socket
/// takes it at once (an HTTP/2 client reads a protocol error, as it would
/// from a closed connection); the socket is closed on return, so a flood of
/// refusals holds no descriptors.
fn refuse(stream: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\
        connection: close\r\nretry-after: 1\r\nx-content-type-options: nosniff\r\n\r\n";
    let _ = stream.try_write(BUSY);
}

/// Serves one connection (HTTP/1.1, or HTTP/2 by ALPN or preface) until the
/// client closes it, its watchdog ends it, or `stop` asks it to finish its
/// requests and close.
async fn serve<S, H: Handler>(
    stream: S,
    slot: Slot,
    serving: &Serving,
    peer: Peer,
    handler: Arc<H>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    <H::Body as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let addr = peer.addr;
    let slot = Arc::new(slot);
    let io = TokioIo::new(slot.watch(stream));
    let requests = slot.clone();
    let tunnel_stop = stop.clone();
    let service = service_fn(move |mut req: Request<Incoming>| {
        let in_flight = requests.request();
        hold_if_upgrading(&mut req, &requests, &tunnel_stop);
        let (handler, peer) = (handler.clone(), peer.clone());
        let (mut parts, body) = req.into_parts();
        async move {
            let response = handler.respond(&mut parts, body, &peer).await;
            Ok::<_, Infallible>(response.map(|b| Counted::new(b, in_flight)))
        }
    });
    // An upgraded connection leaves hyper (and this task) for its tunnel.
    let builder = connection_builder(serving);
    let conn = builder.serve_connection_with_upgrades(io, service);
    let mut conn = std::pin::pin!(conn);
    let (mut ending, _abort_watchdog) = start_watchdog(&slot, &stop);
    let expiry = tokio::select! {
        biased;
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(client = %addr, error = %e, "connection ended with an error");
            }
            return;
        }
        Ok(end) = &mut ending => end,
    };
    match expiry {
        // Its place is wanted now, and it has nothing in flight.
        Some(Expiry::Evicted) => {}
        Some(why) => {
            tracing::debug!(client = %addr, ?why, "closing connection");
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
        }
        // Shutting down: the server's shutdown timeout bounds the rest.
        None => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Gives a request that may upgrade a `Hold` on its connection. hyper
/// attaches `OnUpgrade` to an HTTP/1.1 request with an `Upgrade` header
/// (or a CONNECT): an empty-map check on every other request, where
/// looking the header up would hash its name.
fn hold_if_upgrading(req: &mut Request<Incoming>, slot: &Arc<Slot>, stop: &watch::Receiver<bool>) {
    if req
        .extensions()
        .get::<hyper::upgrade::OnUpgrade>()
        .is_some()
    {
        req.extensions_mut().insert(Hold(Arc::new(Holding {
            _slot: slot.clone(),
            _busy: slot.busy(),
            stop: stop.clone(),
        })));
    }
}

/// hyper's settings for one client connection, HTTP/1.1 and HTTP/2.
fn connection_builder(serving: &Serving) -> auto::Builder<BoxingExecutor> {
    let limits = serving.connections.limits();
    let mut builder = auto::Builder::new(BoxingExecutor);
    builder
        .http1()
        // The watchdog times heads and idle connections, off the request
        // path; hyper's own head timer would set and clear a timer entry
        // for every request.
        .header_read_timeout(None)
        .max_buf_size(serving.max_header_size)
        // One copy into one buffer and a plain write is cheaper here than
        // the kernel's vectored path for API-sized messages (BENCHMARKS.md).
        .writev(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(serving.max_header_size).unwrap_or(u32::MAX))
        // Pings find peers that vanished while a long request is in flight.
        .keep_alive_interval(limits.idle_timeout)
        .keep_alive_timeout(limits.header_timeout);
    builder
}

/// The watchdog, and the wait for shutdown, run as a task of their own, so
/// the connection's wake-ups (several per request) poll one cheap channel
/// rather than timers. What ended the connection's time comes on the
/// channel (`None` asks for a graceful shutdown); the task ends with the
/// guard.
fn start_watchdog(
    slot: &Arc<Slot>,
    stop: &watch::Receiver<bool>,
) -> (oneshot::Receiver<Option<Expiry>>, AbortOnDrop) {
    let (ended, ending) = oneshot::channel();
    let slot = slot.clone();
    // `stop` itself stays with the connection: the server waits for
    // every clone of it to be dropped before it exits.
    let mut stop = stop.clone();
    let watchdog = tokio::spawn(async move {
        let end = tokio::select! {
            biased;
            why = slot.expired() => Some(why),
            _ = stop.wait_for(|s| *s) => None,
        };
        let _ = ended.send(end);
    });
    (ending, AbortOnDrop(watchdog))
}
