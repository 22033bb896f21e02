//! An upgraded connection (WebSocket, or another `Upgrade` a route allows)
//! tunneled between the client and the upstream once the upstream has
//! answered `101`: bytes relayed both ways as they come, each direction
//! reading no more than the other side has taken (back-pressure), until
//! both sides have closed.
//!
//! A tunnel outlives neither its token nor the gateway's wish to stop: when
//! the token expires (as validation would refuse it: `exp` plus the
//! leeway), when it is revoked (here, or on another instance through the
//! store's feed), after `tunnel_idle_timeout` without a byte either way, or
//! at shutdown, the tunnel ends within a second. A WebSocket gets a close
//! frame each way first, put between two frames (`frames`), never inside
//! one: 1008 (policy violation) for the token, 1001 (going away) otherwise.

mod frames;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, UPGRADE};
use http::request::Parts;
use http::Method;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use prometheus::IntGauge;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::auth::revocation::Revocations;
use crate::auth::validate::Verified;
use crate::listener::Hold;
use crate::metrics::Metrics;
use crate::upstream::conn::Conn;
use frames::{close_frame, Frames};

/// The protocol a request asks to switch to, if its route tunnels it: an
/// HTTP/1.1 `GET` without a body, `Connection: upgrade`, and one protocol
/// in `Upgrade` (RFC 9110 §7.8). Any other `Upgrade` is dropped on the way
/// upstream like every hop-by-hop header.
pub fn requested(parts: &Parts, bodiless: bool, allowed: &[String]) -> Option<HeaderValue> {
    // The listener marks requests with an `Upgrade` header: most have none.
    parts.extensions.get::<Hold>()?;
    protocol_asked(parts, bodiless, allowed)
}

/// `requested`, for any request head.
fn protocol_asked(parts: &Parts, bodiless: bool, allowed: &[String]) -> Option<HeaderValue> {
    if parts.method != Method::GET || parts.version != http::Version::HTTP_11 || !bodiless {
        return None;
    }
    let connection_upgrade = parts
        .headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let mut upgrade = parts.headers.get_all(UPGRADE).iter();
    let (Some(protocol), None) = (upgrade.next(), upgrade.next()) else {
        return None;
    };
    let name = protocol.to_str().ok()?.split('/').next()?.trim();
    let allowed = allowed.iter().any(|a| a.eq_ignore_ascii_case(name));
    (connection_upgrade && allowed && !name.contains(',')).then(|| protocol.clone())
}

/// Why a tunnel ended; the label of `portero_tunnels_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed, or one failed.
    Closed,
    TokenExpired,
    TokenRevoked,
    IdleTimeout,
    Shutdown,
}

impl End {
    pub fn label(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::TokenExpired => "token_expired",
            End::TokenRevoked => "token_revoked",
            End::IdleTimeout => "idle_timeout",
            End::Shutdown => "shutdown",
        }
    }

    /// The WebSocket close code and reason portero sends for this end.
    fn close(self) -> (u16, &'static str) {
        match self {
            End::TokenExpired => (1008, "token expired"),
            End::TokenRevoked => (1008, "token revoked"),
            End::IdleTimeout => (1001, "idle timeout"),
            End::Shutdown | End::Closed => (1001, "gateway shutting down"),
        }
    }
}

/// The token a tunnel was opened with, and where to hear of its revocation.
pub struct Token {
    pub verified: Arc<Verified>,
    /// Unix time from which validation refuses it (`exp` + leeway).
    pub refused_from: Option<i64>,
    /// The `iss` its issuer's subject revocations name (a token from the
    /// issuer's OAuth 2.0 endpoints claims another).
    pub issuer_iss: Box<str>,
    pub revocations: Arc<Revocations>,
    /// For an API key, the records it is checked against: the tunnel
    /// ends once the key is revoked or rotated out (here or elsewhere).
    pub api_keys: Option<Arc<crate::api_keys::Index>>,
}

/// Everything a tunnel needs once the upstream has switched protocols.
pub struct Tunnel {
    /// The client's side, handed over by hyper once the `101` is written.
    pub client: OnUpgrade,
    pub upstream: Conn,
    /// What the upstream sent after its `101` head, before the tunnel began.
    pub upstream_early: Bytes,
    /// The upstream connection's place among its server's connections.
    pub upstream_slot: OwnedSemaphorePermit,
    /// Keeps the client connection counted (and never evicted) while open.
    pub hold: Hold,
    pub websocket: bool,
    /// `None` on a public route.
    pub token: Option<Token>,
    pub idle_timeout: Duration,
    pub route: String,
}

/// How long the two directions get to finish their frames and send their
/// close frames once the tunnel must end.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// How much one read may take from either side.
const CHUNK: usize = 16 * 1024;

impl Tunnel {
    /// Relays until the tunnel ends, then counts why.
    pub async fn run(self, metrics: &Metrics) {
        let open = metrics.tunnels_open.with_label_values(&[&self.route]);
        let _gauge = GaugeGuard::inc(open);
        let route = self.route.clone();
        let end = self.relay().await;
        tracing::debug!(route = %route, end = end.label(), "tunnel ended");
        metrics
            .tunnels_closed
            .with_label_values(&[&route, end.label()])
            .inc();
    }

    async fn relay(self) -> End {
        let Tunnel {
            client,
            upstream,
            upstream_early,
            upstream_slot: _upstream_slot,
            hold,
            websocket,
            token,
            idle_timeout,
            route: _,
        } = self;
        let Ok(client) = client.await else {
            return End::Closed;
        };
        let (client_read, client_write) = tokio::io::split(TokioIo::new(client));
        let (upstream_read, upstream_write) = tokio::io::split(upstream);
        let (ending, end_seen) = watch::channel(None);
        let started = Instant::now();
        let last_active = AtomicU64::new(0);
        let frames = || websocket.then(Frames::default);
        let to_client = Direction {
            frames: frames(),
            // Server-to-client frames are never masked (RFC 6455 §5.1).
            mask: None,
            end: end_seen.clone(),
            started,
            last_active: &last_active,
        }
        .pump(upstream_read, client_write, upstream_early);
        let to_upstream = Direction {
            frames: frames(),
            mask: Some(rand::random()),
            end: end_seen,
            started,
            last_active: &last_active,
        }
        .pump(client_read, upstream_write, Bytes::new());
        let mut to_client = std::pin::pin!(to_client);
        let mut to_upstream = std::pin::pin!(to_upstream);
        let mut stop = hold.stop();
        let lifetime = lifetime(token, idle_timeout, started, &last_active, &mut stop);
        let mut lifetime = std::pin::pin!(lifetime);
        let (mut client_done, mut upstream_done) = (false, false);
        let end = loop {
            tokio::select! {
                r = &mut to_client, if !client_done => {
                    client_done = true;
                    if r.is_err() || upstream_done {
                        break End::Closed;
                    }
                }
                r = &mut to_upstream, if !upstream_done => {
                    upstream_done = true;
                    if r.is_err() || client_done {
                        break End::Closed;
                    }
                }
                end = &mut lifetime => break end,
            }
        };
        if end != End::Closed {
            let _ = ending.send(Some(end));
            let finish = async {
                if !client_done {
                    let _ = (&mut to_client).await;
                }
                if !upstream_done {
                    let _ = (&mut to_upstream).await;
                }
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, finish).await;
        }
        end
    }
}

/// Resolves when the tunnel must end for a reason of its own: the token
/// runs out or is revoked, nothing moved for `idle_timeout`, or the
/// gateway stops.
async fn lifetime(
    token: Option<Token>,
    idle_timeout: Duration,
    started: Instant,
    last_active: &AtomicU64,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let (mut revoked, expiry) = match &token {
        Some(t) => (
            Some(t.revocations.subscribe()),
            t.refused_from.map(instant_of_unix),
        ),
        None => (None, None),
    };
    let tick = (idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        // A revocation that came in before the subscription is caught here.
        if let Some(t) = &token {
            let v = &t.verified;
            if t.revocations
                .is_revoked(&t.issuer_iss, v.sub(), v.jti(), v.iat)
            {
                return End::TokenRevoked;
            }
            let key_gone = |keys: &crate::api_keys::Index| match keys.find(v.credential()) {
                Err(_) => true,
                Ok((_, until)) => until.is_some_and(|t| crate::clock::Clock::system().unix() >= t),
            };
            if t.api_keys.as_deref().is_some_and(key_gone) {
                return End::TokenRevoked;
            }
        }
        let idle_since = started + Duration::from_millis(last_active.load(Relaxed));
        if Instant::now() >= idle_since + idle_timeout {
            return End::IdleTimeout;
        }
        tokio::select! {
            () = sleep_until(expiry) => return End::TokenExpired,
            _ = changed(&mut revoked) => {}
            () = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|s| *s) => return End::Shutdown,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits for the next revocation anywhere; never, on a public route (or
/// once the revocation set is gone).
async fn changed(rx: &mut Option<watch::Receiver<u64>>) {
    let gone = match rx {
        Some(rx) => rx.changed().await.is_err(),
        None => true,
    };
    if gone {
        std::future::pending::<()>().await;
    }
}

/// The monotonic instant at which the wall clock reads `unix` seconds.
fn instant_of_unix(unix: i64) -> Instant {
    let at = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    match at.duration_since(SystemTime::now()) {
        Ok(ahead) => Instant::now() + ahead,
        Err(_) => Instant::now(),
    }
}

/// One direction of a tunnel.
struct Direction<'a> {
    /// `Some` for a WebSocket: where its frames end.
    frames: Option<Frames>,
    /// How this direction's close frame is masked (client to server only).
    mask: Option<[u8; 4]>,
    end: watch::Receiver<Option<End>>,
    started: Instant,
    last_active: &'a AtomicU64,
}

impl Direction<'_> {
    /// Relays `from` to `to` (after `early`) until `from` closes, then
    /// closes `to` for writing. Once the tunnel is ending, a WebSocket
    /// direction finishes the frame under way, sends its close frame and
    /// stops; anything else stops at once.
    async fn pump<R, W>(mut self, mut from: R, mut to: W, early: Bytes) -> std::io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if !early.is_empty() {
            self.track(&early);
            to.write_all(&early).await?;
        }
        let mut buf = vec![0u8; CHUNK];
        loop {
            let ending = *self.end.borrow();
            let mut limit = CHUNK;
            if let Some(end) = ending {
                match &self.frames {
                    Some(f) if f.closed() => break,
                    Some(f) if f.at_boundary() => {
                        let (code, reason) = end.close();
                        to.write_all(&close_frame(code, reason, self.mask)).await?;
                        break;
                    }
                    Some(f) => limit = f.to_boundary().min(CHUNK as u64) as usize,
                    None => break,
                }
            }
            let n = tokio::select! {
                read = from.read(&mut buf[..limit]) => read?,
                _ = self.end.changed(), if ending.is_none() => continue,
            };
            if n == 0 {
                break;
            }
            self.track(&buf[..n]);
            to.write_all(&buf[..n]).await?;
        }
        to.shutdown().await
    }

    fn track(&mut self, bytes: &[u8]) {
        if let Some(f) = &mut self.frames {
            f.advance(bytes);
        }
        let elapsed = self.started.elapsed().as_millis() as u64;
        self.last_active.fetch_max(elapsed, Relaxed);
    }
}

/// Counts a tunnel as open for as long as it lives.
struct GaugeGuard(IntGauge);

impl GaugeGuard {
    fn inc(gauge: IntGauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[test]
    fn every_end_is_exported_from_the_start() {
        let ends = [
            End::Closed,
            End::TokenExpired,
            End::TokenRevoked,
            End::IdleTimeout,
            End::Shutdown,
        ];
        let labels: Vec<&str> = ends.iter().map(|e| e.label()).collect();
        assert_eq!(labels, crate::metrics::TUNNEL_ENDS);
    }

    #[test]
    fn an_upgrade_is_one_allowed_protocol_on_a_bodiless_http11_get() {
        let head = |method: &str, connection: &str, upgrade: &[&str]| {
            let mut b = http::Request::builder()
                .method(method)
                .uri("/ws")
                .header(CONNECTION, connection);
            for u in upgrade {
                b = b.header(UPGRADE, *u);
            }
            b.body(()).unwrap().into_parts().0
        };
        let allowed = ["websocket".to_string()];
        let asked = |p: &Parts, bodiless| protocol_asked(p, bodiless, &allowed);
        let ws = head("GET", "keep-alive, Upgrade", &["WebSocket"]);
        assert_eq!(asked(&ws, true).unwrap(), "WebSocket");
        assert_eq!(asked(&ws, false), None, "a body");
        assert_eq!(asked(&head("POST", "upgrade", &["websocket"]), true), None);
        assert_eq!(asked(&head("GET", "close", &["websocket"]), true), None);
        assert_eq!(
            asked(&head("GET", "upgrade", &["h2c"]), true),
            None,
            "not allowed"
        );
        let two = head("GET", "upgrade", &["websocket", "websocket"]);
        assert_eq!(asked(&two, true), None, "two Upgrade headers");
        let listed = head("GET", "upgrade", &["websocket, h2c"]);
        assert_eq!(asked(&listed, true), None, "two protocols in one");
        // Without the listener's mark, nothing is asked.
        assert_eq!(requested(&ws, true, &allowed), None);
    }

    /// A pump from `from` to `to`, on its own task, told to end through the sender.
    fn spawn_pump(
        websocket: bool,
        mask: Option<[u8; 4]>,
        from: tokio::io::DuplexStream,
        to: tokio::io::DuplexStream,
    ) -> (
        watch::Sender<Option<End>>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let (ending, end) = watch::channel(None);
        let pump = tokio::spawn(async move {
            let last_active = AtomicU64::new(0);
            Direction {
                frames: websocket.then(Frames::default),
                mask,
                end,
                started: Instant::now(),
                last_active: &last_active,
            }
            .pump(from, to, Bytes::new())
            .await
        });
        (ending, pump)
    }

    /// An unmasked binary frame with a 2-byte length.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x82, 126];
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[tokio::test]
    async fn an_end_mid_frame_waits_for_the_frame_then_closes() {
        let (mut upstream, from) = duplex(1 << 16);
        let (to, mut client) = duplex(1 << 16);
        let (ending, pump) = spawn_pump(true, None, from, to);
        let whole = frame(&[7u8; 1000]);
        upstream.write_all(&whole[..300]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        ending.send(Some(End::TokenRevoked)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The rest of the frame, and the start of one that must not pass.
        upstream.write_all(&whole[300..]).await.unwrap();
        upstream.write_all(&frame(b"next")).await.unwrap();
        pump.await.unwrap().unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        let mut expected = whole.clone();
        expected.extend(close_frame(1008, "token revoked", None));
        assert_eq!(received, expected);
    }

    #[tokio::test]
    async fn an_end_between_frames_closes_at_once_and_a_raw_tunnel_just_stops() {
        for websocket in [true, false] {
            let (mut upstream, from) = duplex(1 << 16);
            let (to, mut client) = duplex(1 << 16);
            let (ending, pump) = spawn_pump(websocket, Some([1, 2, 3, 4]), from, to);
            upstream.write_all(&frame(b"whole")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            ending.send(Some(End::Shutdown)).unwrap();
            tokio::time::timeout(Duration::from_secs(1), pump)
                .await
                .expect("ends without more input")
                .unwrap()
                .unwrap();
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.unwrap();
            let mut expected = frame(b"whole");
            if websocket {
                expected.extend(close_frame(
                    1001,
                    "gateway shutting down",
                    Some([1, 2, 3, 4]),
                ));
            }
            assert_eq!(received, expected);
        }
    }
}
