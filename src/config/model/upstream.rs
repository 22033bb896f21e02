//! `[upstreams.NAME]`: where requests go, and how the servers are checked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::TlsFiles;

#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub name: String,
    pub kind: UpstreamKind,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// Idle pooled connections kept per server; more are closed as they come back.
    pub max_idle_connections: usize,
    /// How long a pooled connection may sit idle before it is closed.
    pub idle_timeout: Duration,
    /// Requests in flight to one server at once; more wait their turn.
    pub max_connections: usize,
    /// How long a request waits for its turn before a `503`.
    pub queue_timeout: Duration,
    pub health_check: HealthCheck,
    /// `None`: requests that fail never take a server out.
    pub ejection: Option<Ejection>,
    pub host: Option<String>,
    /// `Some`: the servers speak TLS, their certificates always verified.
    pub tls: Option<UpstreamTls>,
    pub protocol: UpstreamProtocol,
    /// `/readyz` answers not ready while it has no healthy server. Off by
    /// default: one dead upstream must not take every instance, and every
    /// healthy route, out of a load balancer at once.
    pub gates_readiness: bool,
}

/// What the servers speak (over TLS when `tls` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2 in cleartext, with prior knowledge.
    H2c,
    /// HTTP/2 over TLS, agreed by ALPN.
    H2,
}

impl UpstreamProtocol {
    pub fn is_http2(self) -> bool {
        self != UpstreamProtocol::Http1
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The name sent (SNI) and verified; `None`: each server's own name
    /// (the host of its `servers` entry, or its IP address).
    pub sni: Option<String>,
    /// PEM roots to verify against; `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// Presented when the server asks for a client certificate (mTLS).
    pub client_cert: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamKind {
    Servers(Vec<ServerName>),
    /// The built-in echo server, bound by portero itself on `listen`.
    Echo {
        listen: SocketAddr,
    },
}

/// One entry of an upstream's `servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerName {
    Addr(SocketAddr),
    /// A DNS name: every address it resolves to is a server.
    Dns {
        host: String,
        port: u16,
    },
}

impl std::fmt::Display for ServerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerName::Addr(a) => a.fmt(f),
            ServerName::Dns { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    None,
    /// A TCP connect within the connect timeout, every `interval`.
    Tcp {
        interval: Duration,
    },
    Http(HttpCheck),
}

/// `GET path` over the group's protocol and TLS, every `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub path: String,
    /// Statuses that count as healthy.
    pub expect: Vec<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Checks in a row that bring a down server back, or take an up one out.
    pub healthy_after: u32,
    pub unhealthy_after: u32,
}

/// Passive health: a server whose requests fail `after` times in a row is
/// left out for `cool_down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    pub after: u32,
    pub cool_down: Duration,
    /// `5xx` responses count as failures, beside connect errors and timeouts.
    pub on_5xx: bool,
}
