//! `[server]`, `[[listen]]`, `[admin]`, `[store]`, `[auth]`, `[dns]` and
//! `[tracing]`: where portero listens and how it runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::IpRules;
pub use crate::path::PathRules;

/// Request spans sent to an OpenTelemetry collector over OTLP/HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanExport {
    /// The full URL spans are posted to (`.../v1/traces`).
    pub endpoint: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

/// How upstream server names are resolved, and how often again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Name servers to ask; empty: the system's (`/etc/resolv.conf`).
    /// `/etc/hosts` is read either way.
    pub servers: Vec<SocketAddr>,
    /// Bounds on an answer's TTL: a name is asked again when its answer
    /// expires, but never sooner than `min_ttl` nor later than `max_ttl`.
    pub min_ttl: Duration,
    pub max_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// The environment variable holding the admin API's bearer token.
    pub token_env: String,
    /// Open connections the admin listener serves at once.
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    pub on_outage: OutagePolicy,
}

#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// redb under `server.data_dir`: one instance.
    Embedded,
    /// GatewayState by every instance pointed at the same server and key prefix.
    Redis(Box<RedisSettings>),
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub target: RedisTarget,
    /// The environment variable holding the password, if the server wants one.
    pub password_env: Option<String>,
    /// TLS to the sentinels, the masters and replicas they name, and a
    /// cluster's nodes (a url says it by its scheme, `rediss://`).
    pub tls: bool,
    /// PEM roots to verify the servers' certificates by, instead of the
    /// web PKI's.
    pub ca_file: Option<PathBuf>,
    /// The certificate and key shown to servers that ask for one (Redis
    /// does by default: `tls-auth-clients yes`).
    pub client_cert: Option<TlsFiles>,
    /// Prefixes every key and the revocation channel, so deployments can share a server.
    pub key_prefix: String,
    /// The longest any one store operation may take before it counts as failed.
    pub timeout: Duration,
    /// Revocations outlive their token's `exp` by this much (the validation leeway).
    pub ttl_margin: Duration,
    /// Replicas that must confirm a revocation (`WAIT`) before it is
    /// acknowledged: 0 with `url`, 1 with `sentinels` or `cluster` unless set.
    pub wait_replicas: u32,
    /// How long a revocation waits for them.
    pub wait_timeout: Duration,
}

/// Where the Redis master is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `redis://` or `rediss://` (TLS); never with a password in it.
    Url(String),
    /// Found through any of these sentinels (`host:port`), by the master's
    /// name; found again after a failover.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        /// The environment variable holding the sentinels' password.
        password_env: Option<String>,
    },
    /// A Redis Cluster, its slot map read from any of these nodes (`host:port`).
    Cluster(Vec<String>),
}

impl std::fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Url(url) => write!(f, "store.url: {url}"),
            RedisTarget::Sentinel {
                sentinels, master, ..
            } => write!(
                f,
                "store.sentinels: {} (master {master:?})",
                sentinels.join(", ")
            ),
            RedisTarget::Cluster(nodes) => write!(f, "store.cluster: {}", nodes.join(", ")),
        }
    }
}

/// What protected routes do while the store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutagePolicy {
    /// Go on validating from the in-memory keys and revocations (default).
    FailStatic,
    /// Refuse protected requests with 503: a revocation made elsewhere
    /// during the outage cannot reach this instance.
    FailClosed,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub threads: usize,
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    pub data_dir: PathBuf,
    pub max_body_size: u64,
    /// One `portero::access` log line per request.
    pub access_log: bool,
    /// How every log line is written (set at start; a reload keeps it).
    pub log_format: LogFormat,
    /// `traceparent` and `X-Request-Id` sent upstream and logged.
    pub trace_context: bool,
    pub limits: ConnectionLimits,
    /// Peers whose `X-Forwarded-For`, `Forwarded` and `X-Real-IP` are kept,
    /// and whose `X-Forwarded-For` names the client address limits act on.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `client_cert_from_proxies`: a trusted proxy's `Client-Cert` field
    /// (RFC 9440) is the client's certificate; the proxy terminates TLS,
    /// verifies it, and removes any copy a client sent.
    pub client_cert_from_proxies: bool,
    /// Client addresses every route admits.
    pub ips: IpRules,
    /// Where proxies that route traffic themselves (nginx `auth_request`,
    /// Traefik `forwardAuth`, Envoy `ext_authz`) ask for a decision.
    pub forward_auth: Option<ForwardAuth>,
    pub paths: PathRules,
    /// A tunnel (WebSocket) with no byte either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// Where clients reach portero (scheme, host, port; no trailing `/`):
    /// the base of the OAuth 2.0 issuer identifiers.
    pub public_url: Option<String>,
    /// Where clients reach the mutual-TLS listener, if not at `public_url`:
    /// the base of the issuers' `mtls_endpoint_aliases` (RFC 8705 §5).
    pub mtls_public_url: Option<String>,
}

/// The forward-auth decision endpoint and the one proxy convention it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuth {
    /// Every path under it is a decision, never a routed request.
    pub path: String,
    pub style: ForwardAuthStyle,
}

/// How the asking proxy names the original request. Each style reads only
/// its own headers: a client header in another proxy's naming would
/// otherwise steer the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardAuthStyle {
    /// nginx `auth_request`: `X-Original-Method`, `X-Original-URI`, `X-Original-Host`.
    Nginx,
    /// Traefik `forwardAuth`: `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host`.
    Traefik,
    /// Envoy `ext_authz` (HTTP): the original path after the endpoint's, the method kept.
    Envoy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` text, for people.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`
    /// and the event's own fields, for log pipelines.
    Json,
}

/// What one client connection may hold of the gateway.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// From the connection's start, or the first byte of a request, to its
    /// complete head (HTTP/1 and HTTP/2 alike, protocol detection included).
    pub header_timeout: Duration,
    /// A connection with no request in flight and nothing arriving is closed.
    pub idle_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// From the request head to the end of its body (`408` past it).
    pub body_timeout: Duration,
    /// Open connections at once; `None`: derived from the file-descriptor limit.
    pub max_connections: Option<usize>,
    /// The request line and headers together (`431` past it).
    pub max_header_size: usize,
    /// Open connections from one client address (a trusted proxy's are not
    /// counted); `None`: a tenth of `max_connections`, at least 16.
    pub max_connections_per_ip: Option<usize>,
    /// Requests with a body in flight from one client address (as
    /// `trusted_proxies` make it out), on every listener (`503` beyond);
    /// `None`: a tenth of `max_connections`, at least 64.
    pub max_requests_per_ip: Option<usize>,
    /// Request bodies up to this size are read whole before an upstream
    /// connection is taken.
    pub request_buffer_size: usize,
    /// Bytes per second a request body must keep up after
    /// `min_body_rate_after` (`408` when it falls behind); 0: no minimum.
    pub min_body_rate: u64,
    pub min_body_rate_after: Duration,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// Every connection starts with a PROXY protocol header naming the
    /// client, from one of `server.trusted_proxies` (others are closed).
    pub proxy_protocol: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates asked for (mutual TLS, RFC 8705).
    pub clients: Option<ClientCertificates>,
}

/// The client certificates a TLS listener asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificates {
    /// PEM roots a client certificate is verified against.
    pub ca: Option<PathBuf>,
    /// The roots that file held when the config was read: a reload tells
    /// a file rewritten in place by them.
    pub roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub mode: CertificateMode,
}

/// `client_certificates`: what a handshake takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateMode {
    /// A certificate of the roots, or none.
    Optional,
    /// A certificate of the roots; none fails the handshake.
    Required,
    /// Any certificate whose key signs the handshake, or none: verified
    /// only where it chains to the roots.
    Any,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub leeway: Duration,
    pub verified_cache_size: usize,
    /// Lower-case exact names and prefixes (pattern without its trailing `*`).
    pub strip_exact: Vec<String>,
    pub strip_prefixes: Vec<String>,
}
