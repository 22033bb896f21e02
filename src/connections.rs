//! How much of the gateway one client connection may hold, on the public and
//! the admin listener alike: a cap on open connections, time to a complete
//! request head, and an idle timeout. hyper bounds none of these across
//! HTTP/1, protocol detection and HTTP/2, so every connection carries a
//! watchdog that looks at what the connection does (bytes read, requests
//! begun, requests in flight) a few times per timeout, off the request path.
//!
//! At the cap, the connection that has gone longest without beginning a
//! request makes room (if it has nothing in flight), so silent or trickling
//! clients cannot lock others out; when every connection is busy, the new
//! one is refused. An evicted connection counts until its socket is closed,
//! and while as many are closing as the cap, the accept loop leaves new
//! connections in the kernel's backlog: a flood that evicts faster than the
//! evicted connections' tasks run cannot run the gateway out of descriptors.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::ConnectionSeries;

/// The limits one listener enforces.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// From the connection's start, or from bytes arriving while no request
    /// is in flight, to a request beginning.
    pub header_timeout: Duration,
    /// Nothing in flight and nothing arriving for this long: closed.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Connections one client address may hold at once.
    pub max_per_ip: usize,
}

/// File descriptors kept back from the public listeners' share: the admin
/// listener, the store, listeners and log files.
const RESERVED_FDS: usize = 64;

/// The public listeners' default cap: what the file-descriptor limit allows
/// with room for each connection's upstream socket (and, for the built-in
/// echo upstream, its other end) and for as many evicted connections still
/// closing, at most 10,000.
pub fn default_max_connections(admin_connections: usize) -> usize {
    let reserve = RESERVED_FDS + admin_connections;
    match open_files_limit() {
        Some(limit) => (limit.saturating_sub(reserve as u64) / 4).clamp(16, 10_000) as usize,
        None => 10_000,
    }
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One listener's open connections.
pub struct Connections {
    limits: ListenerLimits,
    series: ConnectionSeries,
    open: Mutex<Open>,
    /// Told when an evicted connection has closed.
    closed: Notify,
    next_id: AtomicU64,
    epoch: Instant,
}

/// The connections holding a place, and how many of those were evicted and
/// are still closing; how many each counted client address holds.
#[derive(Default)]
struct Open {
    by_id: BTreeMap<u64, Arc<Activity>>,
    closing: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// What a connection has done, as its watchdog and the cap read it.
#[derive(Default)]
struct Activity {
    reads: AtomicU64,
    started: AtomicU64,
    in_flight: AtomicUsize,
    /// Milliseconds from `Connections::epoch` to the connection's start or
    /// the last request its watchdog saw begin.
    last_request: AtomicU64,
    /// Chosen to make room; set under the `Open` lock.
    evicted: AtomicBool,
    evict: Notify,
}

/// Why a connection's watchdog ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Bytes came, or the connection is new, and no request began in time.
    HeaderTimeout,
    Idle,
    /// It made room for a newer connection at the cap.
    Evicted,
}

impl Connections {
    pub fn new(limits: ListenerLimits, series: ConnectionSeries) -> Arc<Connections> {
        Arc::new(Connections {
            limits,
            series,
            open: Mutex::new(Open::default()),
            closed: Notify::new(),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    pub fn limits(&self) -> ListenerLimits {
        self.limits
    }

    /// Resolves once fewer evicted connections are still closing than the
    /// cap; the accept loop waits for it before taking another connection.
    pub async fn room(&self) {
        loop {
            let closed = self.closed.notified();
            let mut closed = std::pin::pin!(closed);
            // Registered before the check, so a close in between wakes it.
            closed.as_mut().enable();
            if self.open.lock().expect("not poisoned").closing < self.limits.max_connections {
                return;
            }
            closed.await;
        }
    }

    /// A place for a new connection from `ip` (`None`: a trusted proxy,
    /// whose connections carry many clients), or `None` (counted) when the
    /// address holds its share already, or the cap is reached and every
    /// open connection has a request in flight, or (with several listeners
    /// sharing the cap) is closing.
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<Slot> {
        let max = self.limits.max_connections;
        let mut open = self.open.lock().expect("not poisoned");
        if let Some(ip) = ip {
            let held = open.by_ip.entry(ip).or_default();
            if *held >= self.limits.max_per_ip {
                self.series.refused_per_ip.inc();
                return None;
            }
            *held += 1;
        }
        if open.by_id.len() - open.closing >= max {
            let quietest = (open.closing < max)
                .then(|| {
                    open.by_id
                        .values()
                        .filter(|a| !a.evicted.load(Relaxed) && a.in_flight.load(Relaxed) == 0)
                        .min_by_key(|a| a.last_request.load(Relaxed))
                })
                .flatten();
            let Some(quietest) = quietest else {
                self.series.refused.inc();
                if let Some(ip) = ip {
                    open.release(ip);
                }
                return None;
            };
            quietest.evicted.store(true, Relaxed);
            quietest.evict.notify_one();
            open.closing += 1;
            self.series.evicted.inc();
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let activity = Arc::new(Activity::default());
        activity
            .last_request
            .store(self.millis(Instant::now()), Relaxed);
        open.by_id.insert(id, activity.clone());
        self.series.open.inc();
        Some(Slot {
            connections: self.clone(),
            id,
            ip,
            activity,
            since: Instant::now(),
        })
    }

    fn millis(&self, at: Instant) -> u64 {
        at.duration_since(self.epoch).as_millis() as u64
    }
}

impl Open {
    fn release(&mut self, ip: IpAddr) {
        if let Some(held) = self.by_ip.get_mut(&ip) {
            *held -= 1;
            if *held == 0 {
                self.by_ip.remove(&ip);
            }
        }
    }
}

/// An admitted connection's place; dropping it frees the place.
pub struct Slot {
    connections: Arc<Connections>,
    id: u64,
    ip: Option<IpAddr>,
    activity: Arc<Activity>,
    since: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let connections = &self.connections;
        let mut open = connections.open.lock().expect("not poisoned");
        open.by_id.remove(&self.id);
        if let Some(ip) = self.ip {
            open.release(ip);
        }
        if self.activity.evicted.load(Relaxed) {
            open.closing -= 1;
            connections.closed.notify_waiters();
        }
        connections.series.open.dec();
    }
}

impl Slot {
    /// The connection's stream, its reads counted for the watchdog.
    pub fn watch<S>(&self, io: S) -> Watched<S> {
        Watched {
            io,
            activity: self.activity.clone(),
        }
    }

    /// Marks a request as begun; it is in flight until the guard (kept with
    /// its response body) is dropped.
    pub fn request(&self) -> InFlight {
        self.activity.started.fetch_add(1, Relaxed);
        self.activity.in_flight.fetch_add(1, Relaxed);
        InFlight(self.activity.clone())
    }

    /// Marks the connection busy (never chosen to make room) until the
    /// guard is dropped, without counting a request: for a tunnel.
    pub fn busy(&self) -> InFlight {
        self.activity.in_flight.fetch_add(1, Relaxed);
        InFlight(self.activity.clone())
    }

    /// Resolves when the connection is chosen to make room: for the time
    /// before its watchdog runs (a TLS handshake).
    pub async fn evicted(&self) {
        self.activity.evict.notified().await
    }

    /// Resolves when the connection must end, counting why.
    pub async fn expired(&self) -> Expiry {
        let expiry = self.watch_until_expired().await;
        let series = &self.connections.series;
        match expiry {
            Expiry::HeaderTimeout => series.header_timeouts.inc(),
            Expiry::Idle => series.idle_timeouts.inc(),
            // Counted when chosen.
            Expiry::Evicted => {}
        }
        expiry
    }

    async fn watch_until_expired(&self) -> Expiry {
        let limits = self.connections.limits;
        let tick =
            (limits.header_timeout.min(limits.idle_timeout) / 4).max(Duration::from_millis(10));
        let a = &self.activity;
        let mut seen = (0, 0);
        // A new connection owes a request head from its first moment.
        let mut head_since = Some(self.since);
        let mut quiet_since = self.since;
        // One wait for eviction and one timer for the connection's life,
        // the timer reset each round: a new pair each round cost each
        // wake-up 1,337 instructions, against 1,057 (callgrind.sh IDLE=1).
        let evicted = a.evict.notified();
        let wake = tokio::time::sleep_until(self.since + tick);
        tokio::pin!(evicted, wake);
        loop {
            let next = [
                head_since.map(|t| t + limits.header_timeout),
                Some(quiet_since + limits.idle_timeout),
            ]
            .into_iter()
            .flatten()
            .min()
            .map_or(Instant::now() + tick, |deadline| {
                deadline.min(Instant::now() + tick)
            });
            wake.as_mut().reset(next);
            tokio::select! {
                biased;
                () = &mut evicted => return Expiry::Evicted,
                () = &mut wake => {}
            }
            let now = Instant::now();
            let now_seen = (a.reads.load(Relaxed), a.started.load(Relaxed));
            if now_seen.1 != seen.1 {
                head_since = None;
                a.last_request.store(self.connections.millis(now), Relaxed);
            } else if now_seen.0 != seen.0 && head_since.is_none() {
                head_since = Some(now);
            }
            if now_seen != seen || a.in_flight.load(Relaxed) > 0 {
                quiet_since = now;
            }
            if a.in_flight.load(Relaxed) > 0 {
                head_since = None;
            }
            seen = now_seen;
            if head_since.is_some_and(|t| now >= t + limits.header_timeout) {
                return Expiry::HeaderTimeout;
            }
            if now >= quiet_since + limits.idle_timeout {
                return Expiry::Idle;
            }
        }
    }
}

/// A request in flight on its connection.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// A response body that keeps its request in flight until it is done.
pub struct Counted<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> Counted<B> {
    pub fn new(body: B, in_flight: InFlight) -> Counted<B> {
        Counted {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's stream with its reads counted.
pub struct Watched<S> {
    io: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.reads.fetch_add(1, Relaxed);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ConnectionSeries;

    fn connections(max: usize) -> Arc<Connections> {
        let limits = ListenerLimits {
            header_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(400),
            max_connections: max,
            max_per_ip: 2,
        };
        Connections::new(limits, ConnectionSeries::detached())
    }

    #[tokio::test]
    async fn one_address_holds_at_most_its_share() {
        let c = connections(8);
        let (a, b) = ("192.0.2.1".parse().ok(), "192.0.2.2".parse().ok());
        let first = c.admit(a).unwrap();
        let _second = c.admit(a).unwrap();
        assert!(c.admit(a).is_none(), "a third from one address");
        assert!(c.admit(b).is_some(), "another address is not held back");
        assert!(c.admit(None).is_some(), "a trusted proxy is not counted");
        drop(first);
        assert!(c.admit(a).is_some(), "a closed connection frees its share");
        // A refusal at the cap gives the share back.
        let full = connections(1);
        let held = full.admit(None).unwrap();
        let _busy = held.request();
        assert!(full.admit(a).is_none());
        assert_eq!(full.open.lock().unwrap().by_ip.get(&a.unwrap()), None);
    }

    #[tokio::test]
    async fn at_the_cap_the_quietest_idle_connection_makes_room() {
        let c = connections(2);
        let first = c.admit(None).unwrap();
        let second = c.admit(None).unwrap();
        let busy = first.request();
        // `second` has nothing in flight: it goes.
        let third = c.admit(None).unwrap();
        assert_eq!(second.expired().await, Expiry::Evicted);
        drop(second);
        // Every connection busy: the newcomer is refused.
        let _busy_too = third.request();
        assert!(c.admit(None).is_none());
        drop(busy);
        assert!(c.admit(None).is_some());
    }

    #[tokio::test]
    async fn evicted_connections_hold_their_place_until_they_have_closed() {
        let c = connections(4);
        // A flood whose evicted connections' tasks have not run yet: each
        // newcomer evicts one, until as many are closing as the cap.
        let mut slots: Vec<Slot> = (0..8).map(|_| c.admit(None).unwrap()).collect();
        assert_eq!(c.open.lock().unwrap().by_id.len(), 8);
        let no_room = tokio::time::timeout(Duration::from_millis(50), c.room()).await;
        assert!(
            no_room.is_err(),
            "room while as many are closing as the cap"
        );
        assert!(c.admit(None).is_none(), "descriptors beyond twice the cap");
        // One evicted connection closes: room for one newcomer.
        let waiting = tokio::spawn({
            let c = c.clone();
            async move { c.room().await }
        });
        slots.remove(0);
        waiting.await.unwrap();
        assert!(c.admit(None).is_some());
        // Closing ones free their count when gone.
        drop(slots);
        let open = c.open.lock().unwrap();
        assert_eq!((open.by_id.len(), open.closing), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_gets_the_header_timeout() {
        let c = connections(8);
        let slot = c.admit(None).unwrap();
        let started = Instant::now();
        assert_eq!(slot.expired().await, Expiry::HeaderTimeout);
        assert!(started.elapsed() <= Duration::from_millis(260));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_served_a_request_gets_the_idle_timeout() {
        let c = connections(8);
        let slot = c.admit(None).unwrap();
        drop(slot.request());
        let started = Instant::now();
        assert_eq!(slot.expired().await, Expiry::Idle);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(400) && waited <= Duration::from_millis(560));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_timed_out() {
        let c = connections(8);
        let slot = c.admit(None).unwrap();
        let in_flight = slot.request();
        let expired = tokio::time::timeout(Duration::from_secs(5), slot.expired()).await;
        assert!(expired.is_err(), "expired with a request in flight");
        drop(in_flight);
    }
}
