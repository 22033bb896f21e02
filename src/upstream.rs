//! Upstream groups: round robin over the servers that pass their health
//! check, with the timeouts the config gives each group. A group's servers
//! are its `servers` entries resolved (`dns`), kept current by a task of its
//! own, and checked by another (`health`); both end when the group is
//! dropped, after a reload that removed or changed it.
//!
//! How a request reaches a server is split like a codec and a connection:
//! `codec` is HTTP/1.1 without I/O, `body` de-frames a response from its
//! connection, `pool` keeps idle connections, `conn` is a plain or TLS
//! connection (`tls` makes the latter), and `h1` runs one exchange over
//! them; `h2` sends to groups that speak HTTP/2 on hyper's client. `added`
//! holds the headers portero adds to the client's. Requests that keep
//! failing eject a server for a while (`UpstreamGroup::passive`). A group
//! whose every server is marked down still tries them (`pick`), as nginx
//! and Envoy do: a server that is back serves at once, not after its next
//! check.

mod added;
pub(crate) mod body;
pub mod codec;
pub(crate) mod conn;
mod dns;
pub(crate) mod h1;
mod h2;
mod health;
mod pool;
pub mod request_body;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::ServerName as TlsName;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use crate::config::{Config, ServerName, Upstream, UpstreamKind};
use crate::metrics::{Metrics, UpstreamSeries};
pub(crate) use added::{Added, X_FORWARDED_FOR};
pub use dns::Resolver;
use pool::IdleList;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream's response body as either client brings it: de-framed from
/// an HTTP/1.1 connection (`Left`), or an HTTP/2 stream, trailers and all
/// (`Right`).
pub type UpstreamBody = http_body_util::Either<body::ResponseBody, h2::StreamBody>;

/// Why a request got no response from the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No server is left to try, or every server is marked down and none
    /// tried took a connection.
    NoServer,
    /// No server accepted a connection.
    Connect,
    /// A connection could not be made within the connect timeout.
    ConnectTimeout,
    /// The upstream took longer than its timeouts to take or answer the request.
    Timeout,
    /// The client stopped sending its body.
    ClientTimeout,
    /// The client's body broke its own framing (a chunk size that is not
    /// hex or overflows, a bare LF for CRLF) or ended short: the client's
    /// fault, `400`, never counted against the server.
    BadBody,
    /// The body grew past the size limit while streaming.
    TooLarge,
    /// The upstream broke the connection or sent something that is not HTTP.
    Upstream,
    /// The connection closed before the response began (answered as `Upstream`).
    Closed,
    /// The TLS handshake failed (a certificate not trusted, or not given).
    Tls,
    /// The server had its limit of requests in flight for the whole queue timeout.
    Busy,
}

/// A response from the upstream, and whether it took the whole request
/// body (if not, the client's connection cannot carry another request).
pub struct Forwarded {
    pub response: http::Response<UpstreamBody>,
    pub body_read: bool,
}

pub struct UpstreamGroup {
    pub config: Upstream,
    pub series: UpstreamSeries,
    /// The servers requests go to now, replaced whole when a name resolves
    /// to other addresses (requests in flight keep theirs).
    servers: ArcSwap<Vec<Arc<Server>>>,
    /// What each of the config's `servers` entries resolves to, in order.
    resolved: Mutex<Vec<Vec<SocketAddr>>>,
    next: AtomicUsize,
    /// Until when (ms on [`clock_ms`]) no line is logged about trying
    /// servers marked down.
    down_noted: AtomicU64,
    resolver: Arc<Resolver>,
    /// With `tls`: how its connections are made secure.
    tls: Option<TlsConnector>,
}

/// One address of a group, with its health and connections.
pub struct Server {
    pub addr: SocketAddr,
    /// `name:port` as configured, for requests that name no host.
    authority: String,
    /// With `tls`: the name sent and verified (`None` if it is not one).
    tls_name: Option<TlsName<'static>>,
    /// Servers start healthy, so a group serves before its first check.
    healthy: AtomicBool,
    idle: Arc<IdleList>,
    /// One permit per request in flight to this server (`max_connections`):
    /// with the idle ones, a bound on the sockets open to it.
    slots: Arc<Semaphore>,
    /// With `protocol = "h2c"` or `"h2"`: the one connection to it.
    h2: tokio::sync::Mutex<Option<h2::Sender>>,
    /// Passive health: requests failed in a row, and until when (ms on
    /// [`clock_ms`]) it is left out after too many; 0 if never.
    failures: AtomicU32,
    ejected_until: AtomicU64,
}

impl Server {
    fn new(addr: SocketAddr, host: &str, config: &Upstream) -> Server {
        let authority = match addr {
            SocketAddr::V6(_) if host.contains(':') => format!("[{host}]:{}", addr.port()),
            _ => format!("{host}:{}", addr.port()),
        };
        Server {
            addr,
            authority,
            tls_name: config.tls.as_ref().and_then(|t| tls::server_name(t, host)),
            healthy: AtomicBool::new(true),
            idle: Arc::new(IdleList::new(
                config.max_idle_connections,
                config.idle_timeout,
            )),
            slots: Arc::new(Semaphore::new(config.max_connections)),
            h2: tokio::sync::Mutex::new(None),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
        }
    }

    /// Passes its active check and is not ejected for failing requests.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.ejected()
    }

    /// What a request answers when its connect to this server failed with
    /// `failure`: a server marked down was tried only because every one
    /// was, and a group with no healthy server answers `NoServer`, as it
    /// did before it tried them. Asked before the failure is counted: an
    /// ejection the failure brings about does not change the answer.
    fn failed_connect(&self, failure: Failure) -> Failure {
        match self.is_healthy() {
            true => failure,
            false => Failure::NoServer,
        }
    }

    fn ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        // The clock is read only for a server that was ever ejected.
        until != 0 && clock_ms() < until
    }
}

/// How often, at most, a group logs that it tries servers marked down.
const DOWN_NOTE_EVERY_MS: u64 = 60_000;

/// Milliseconds since the first call: a monotonic clock in an atomic.
fn clock_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// Why the upstream groups of a config could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstreams.{0}: the built-in echo upstream changes only with a restart")]
    EchoChanged(String),
    #[error("upstreams.{upstream}: TLS: {error}")]
    Tls { upstream: String, error: String },
}

/// The groups of `config`, in its order: a group whose config (and `[dns]`)
/// is unchanged from one in `previous` is that group, with its connections
/// and health; any other is new, its names resolved before it is returned
/// (a name that does not resolve leaves the group without those servers,
/// and its task keeps asking). `echo` holds each built-in echo upstream's
/// bound address, at start.
pub async fn groups(
    config: &Config,
    previous: &[Arc<UpstreamGroup>],
    echo: &[(String, SocketAddr)],
    metrics: &Metrics,
) -> Result<Vec<Arc<UpstreamGroup>>, UpstreamError> {
    let mut resolver = None;
    let mut groups = Vec::with_capacity(config.upstreams.len());
    for u in &config.upstreams {
        let kept = previous
            .iter()
            .find(|g| g.config == *u && *g.resolver.settings() == config.dns);
        if let Some(g) = kept {
            groups.push(g.clone());
            continue;
        }
        let entries = match &u.kind {
            UpstreamKind::Servers(names) => names.clone(),
            UpstreamKind::Echo { .. } => match echo.iter().find(|(name, _)| *name == u.name) {
                Some((_, addr)) => vec![ServerName::Addr(*addr)],
                None => return Err(UpstreamError::EchoChanged(u.name.clone())),
            },
        };
        let tls = match &u.tls {
            None => None,
            Some(t) => Some(
                tls::connector(t, u.protocol).map_err(|error| UpstreamError::Tls {
                    upstream: u.name.clone(),
                    error,
                })?,
            ),
        };
        let resolver = resolver
            .get_or_insert_with(|| Arc::new(Resolver::new(&config.dns)))
            .clone();
        let series = metrics.upstream_series(&u.name);
        groups.push(UpstreamGroup::start(u.clone(), entries, resolver, tls, series).await);
    }
    Ok(groups)
}

impl UpstreamGroup {
    /// A group of `entries`, names resolved once, with its tasks running.
    async fn start(
        config: Upstream,
        entries: Vec<ServerName>,
        resolver: Arc<Resolver>,
        tls: Option<TlsConnector>,
        series: UpstreamSeries,
    ) -> Arc<UpstreamGroup> {
        let group = Arc::new(UpstreamGroup {
            series,
            servers: ArcSwap::from_pointee(Vec::new()),
            resolved: Mutex::new(vec![Vec::new(); entries.len()]),
            next: AtomicUsize::new(0),
            down_noted: AtomicU64::new(0),
            resolver,
            tls,
            config,
        });
        let lookups = entries.into_iter().enumerate().map(|(i, entry)| {
            let group = group.clone();
            async move {
                match entry {
                    ServerName::Addr(addr) => group.apply(i, vec![addr]),
                    ServerName::Dns { host, port } => {
                        let wait = group.resolve(i, &host, port).await;
                        tokio::spawn(follow(Arc::downgrade(&group), i, host, port, wait));
                    }
                }
            }
        });
        futures_util::future::join_all(lookups).await;
        if let Some(checks) = health::checks(&group) {
            tokio::spawn(checks);
        }
        group
    }

    /// Resolves entry `i` and applies the answer; says when to ask again.
    /// A failure keeps the last good addresses.
    async fn resolve(&self, i: usize, host: &str, port: u16) -> Duration {
        match self.resolver.resolve(host, port).await {
            Ok(answer) => {
                self.series.resolved.inc();
                self.apply(i, answer.addrs);
                answer.ttl
            }
            Err(error) => {
                self.series.resolve_failed.inc();
                let kept = self.resolved.lock().expect("not poisoned")[i].len();
                tracing::warn!(
                    upstream = %self.config.name, name = %host, %error, kept,
                    "upstream name did not resolve; keeping its last addresses"
                );
                self.resolver.retry_after()
            }
        }
    }

    /// Entry `i` now resolves to `addrs`: the server set is rebuilt if that
    /// changed it, keeping the servers (pools, health) that stay.
    fn apply(&self, i: usize, addrs: Vec<SocketAddr>) {
        let mut resolved = self.resolved.lock().expect("not poisoned");
        if resolved[i] == addrs {
            return;
        }
        resolved[i] = addrs;
        let hosts = self.hosts();
        let old = self.servers.load();
        let mut set: Vec<Arc<Server>> = Vec::new();
        for (entry, addrs) in resolved.iter().enumerate() {
            for &addr in addrs {
                if set.iter().any(|s| s.addr == addr) {
                    continue;
                }
                let server = old.iter().find(|s| s.addr == addr).cloned();
                set.push(server.unwrap_or_else(|| {
                    Arc::new(Server::new(addr, &hosts(entry, addr), &self.config))
                }));
            }
        }
        let addrs: Vec<String> = set.iter().map(|s| s.addr.to_string()).collect();
        tracing::info!(upstream = %self.config.name, servers = ?addrs, "upstream servers");
        self.servers.store(Arc::new(set));
    }

    /// The host name of a server resolved from entry `entry`: the name
    /// it was resolved from, or its IP address.
    fn hosts(&self) -> impl Fn(usize, SocketAddr) -> String + '_ {
        move |entry, addr| match &self.config.kind {
            UpstreamKind::Servers(names) => match &names[entry] {
                ServerName::Dns { host, .. } => host.clone(),
                ServerName::Addr(_) => addr.ip().to_string(),
            },
            UpstreamKind::Echo { .. } => addr.ip().to_string(),
        }
    }

    /// The group's servers as they are now.
    pub fn servers(&self) -> Arc<Vec<Arc<Server>>> {
        self.servers.load_full()
    }

    /// The next healthy server in round-robin order that is not in `tried`;
    /// when every server is marked down, the next one not in `tried` all
    /// the same (`pick_down`).
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<Arc<Server>> {
        let servers = self.servers.load();
        let n = servers.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &servers[(start + i) % n])
            .find(|s| s.is_healthy() && !tried.contains(&s.addr))
            .cloned()
            .or_else(|| self.pick_down(&servers, start, tried))
    }

    /// With no healthy server left to try: if none of the group is healthy,
    /// the next server not in `tried`, counted and logged. Refusing would
    /// keep a server that is back out until its next check (whole
    /// intervals for one that flaps), and a group's only server out
    /// whenever it is marked down; so a request tries each in turn, as it
    /// would healthy ones. The marks stay the checks' and the ejections'.
    #[cold]
    fn pick_down(
        &self,
        servers: &[Arc<Server>],
        start: usize,
        tried: &[SocketAddr],
    ) -> Option<Arc<Server>> {
        if servers.iter().any(|s| s.is_healthy()) {
            return None;
        }
        let n = servers.len();
        let server = (0..n)
            .map(|i| &servers[(start + i) % n])
            .find(|s| !tried.contains(&s.addr))?
            .clone();
        self.series.down_tries.inc();
        let now = clock_ms();
        let quiet_until = self.down_noted.load(Ordering::Relaxed);
        if now >= quiet_until
            && self
                .down_noted
                .compare_exchange(
                    quiet_until,
                    now + DOWN_NOTE_EVERY_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            tracing::warn!(
                upstream = %self.config.name, servers = n,
                "every server of the upstream is marked down; trying them all the same"
            );
        }
        Some(server)
    }

    pub fn healthy_count(&self) -> usize {
        self.servers
            .load()
            .iter()
            .filter(|s| s.is_healthy())
            .count()
    }

    /// Passive health: counts a request's outcome on `server`, which is
    /// ejected for the cool-down once it has failed `after` times in a row.
    /// The client's own faults (a slow or oversized body), a full queue and
    /// a pooled connection found closed do not count.
    pub(crate) fn passive(&self, server: &Server, result: &Result<Forwarded, Failure>) {
        use Failure::*;
        let Some(ejection) = &self.config.ejection else {
            return;
        };
        let failed = match result {
            Ok(f) => ejection.on_5xx && f.response.status().is_server_error(),
            Err(Connect | ConnectTimeout | Timeout | Upstream | Tls) => true,
            Err(NoServer | Busy | ClientTimeout | BadBody | TooLarge | Closed) => return,
        };
        if !failed {
            if server.failures.load(Ordering::Relaxed) != 0 {
                server.failures.store(0, Ordering::Relaxed);
            }
            return;
        }
        if server.ejected() {
            // Out already: a failure of a request begun before, or of a try
            // while every server is down, neither ejects nor logs it again.
            return;
        }
        let streak = server.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if streak >= ejection.after {
            server.failures.store(0, Ordering::Relaxed);
            let until = clock_ms() + ejection.cool_down.as_millis() as u64;
            server.ejected_until.store(until, Ordering::Relaxed);
            self.series.ejections.inc();
            tracing::warn!(
                upstream = %self.config.name, server = %server.addr, failures = streak,
                cool_down = ?ejection.cool_down,
                "upstream server ejected after failing requests in a row"
            );
        }
    }
}

/// Keeps entry `i` (`host`) of a group resolved, asking again when each
/// answer expires, until the group is gone.
async fn follow(group: Weak<UpstreamGroup>, i: usize, host: String, port: u16, first: Duration) {
    let mut wait = first;
    loop {
        tokio::time::sleep(wait).await;
        let Some(group) = group.upgrade() else { return };
        wait = group.resolve(i, &host, port).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DnsSettings, HealthCheck};

    pub(super) fn config(servers: &[SocketAddr], health_check: HealthCheck) -> Upstream {
        Upstream {
            name: "test".into(),
            kind: UpstreamKind::Servers(servers.iter().map(|&a| ServerName::Addr(a)).collect()),
            connect_timeout: Duration::from_millis(200),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            max_idle_connections: 1,
            idle_timeout: Duration::from_secs(1),
            max_connections: 8,
            queue_timeout: Duration::from_secs(1),
            health_check,
            ejection: None,
            host: None,
            tls: None,
            protocol: crate::config::UpstreamProtocol::Http1,
            gates_readiness: false,
        }
    }

    pub(super) async fn group(
        servers: &[SocketAddr],
        health_check: HealthCheck,
    ) -> Arc<UpstreamGroup> {
        let config = config(servers, health_check);
        let entries = match &config.kind {
            UpstreamKind::Servers(s) => s.clone(),
            UpstreamKind::Echo { .. } => unreachable!(),
        };
        let resolver = Arc::new(Resolver::new(&DnsSettings {
            servers: Vec::new(),
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(1),
        }));
        UpstreamGroup::start(config, entries, resolver, None, UpstreamSeries::detached()).await
    }

    #[tokio::test]
    async fn round_robin_skips_tried_and_unhealthy_servers() {
        let servers: Vec<SocketAddr> = (1..=3)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let g = group(&servers, HealthCheck::None).await;
        let picks: Vec<_> = (0..6).map(|_| g.pick(&[]).unwrap().addr).collect();
        assert_eq!(picks[..3], servers[..]);
        assert_eq!(picks[3..], servers[..]);
        g.servers()[1].healthy.store(false, Ordering::Relaxed);
        assert_eq!(g.healthy_count(), 2);
        for _ in 0..6 {
            assert_ne!(g.pick(&[]).unwrap().addr, servers[1]);
        }
        assert!(g.pick(&[servers[0], servers[2]]).is_none());
    }

    #[tokio::test]
    async fn servers_all_marked_down_are_tried_each_in_turn_and_counted() {
        let servers: Vec<SocketAddr> = (1..=2)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let g = group(&servers, HealthCheck::None).await;
        g.servers()[0].healthy.store(false, Ordering::Relaxed);
        assert_eq!(g.pick(&[]).unwrap().addr, servers[1], "a healthy one first");
        assert!(g.pick(&[servers[1]]).is_none(), "not while one is healthy");
        assert_eq!(g.series.down_tries.get(), 0);

        g.servers()[1].healthy.store(false, Ordering::Relaxed);
        let first = g.pick(&[]).unwrap().addr;
        let second = g.pick(&[first]).unwrap().addr;
        assert_ne!(first, second, "each in turn");
        assert!(g.pick(&[first, second]).is_none(), "each once");
        assert_eq!(g.series.down_tries.get(), 2);
        assert!(!g.servers()[0].is_healthy(), "the marks stay");
        assert_eq!(
            g.servers()[0].failed_connect(Failure::Connect),
            Failure::NoServer
        );
    }

    #[tokio::test]
    async fn a_changed_answer_keeps_the_servers_that_stay() {
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        let b = SocketAddr::from(([127, 0, 0, 1], 2));
        let g = group(&[a], HealthCheck::None).await;
        let kept = g.servers()[0].clone();
        g.apply(0, vec![a, b]);
        let now = g.servers();
        assert_eq!(now.len(), 2);
        assert!(
            Arc::ptr_eq(&now[0], &kept),
            "the server that stays is the same"
        );
        g.apply(0, vec![b]);
        assert_eq!(g.servers().iter().map(|s| s.addr).collect::<Vec<_>>(), [b]);
    }
}
