//! The validated configuration: plain data that the rest of portero reads.
//! It is never deserialized (the file layer is `file.rs`) and imports nothing
//! of the runtime; behaviour on these types lives with the runtime modules
//! (token extraction and policy checks in `auth::policy`, secret checks in
//! `credentials`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderName, HeaderValue};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub server: ServerSettings,
    pub listeners: Vec<Listener>,
    pub admin: AdminSettings,
    pub store: StoreSettings,
    pub auth: AuthSettings,
    pub upstreams: Vec<Upstream>,
    pub dns: DnsSettings,
    pub issuers: Vec<Issuer>,
    pub routes: Vec<Route>,
    /// `[tracing]`: where request spans go, if anywhere.
    pub span_export: Option<SpanExport>,
}

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
    /// Shared by every instance pointed at the same server and key prefix.
    Redis(RedisSettings),
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` (TLS); never with a password in it.
    pub url: String,
    /// The environment variable holding the password, if the server wants one.
    pub password_env: Option<String>,
    /// Prefixes every key and the revocation channel, so deployments can share a server.
    pub key_prefix: String,
    /// The longest any one store operation may take before it counts as failed.
    pub timeout: Duration,
    /// Revocations outlive their token's `exp` by this much (the validation leeway).
    pub ttl_margin: Duration,
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
    /// Client addresses every route admits.
    pub ips: IpRules,
    /// Where proxies that route traffic themselves (nginx `auth_request`,
    /// Traefik `forwardAuth`, Envoy `ext_authz`) ask for a decision.
    pub forward_auth: Option<ForwardAuth>,
    pub paths: PathRules,
    /// A tunnel (WebSocket) with no byte either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
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
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub leeway: Duration,
    pub verified_cache_size: usize,
    /// Lower-case exact names and prefixes (pattern without its trailing `*`).
    pub strip_exact: Vec<String>,
    pub strip_prefixes: Vec<String>,
}

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

#[derive(Debug, Clone)]
pub struct Issuer {
    pub name: String,
    /// The `iss` claim this issuer's tokens carry.
    pub iss: String,
    pub token_ttl: Duration,
    pub allow_no_exp: bool,
    pub keys: Vec<KeyConfig>,
    /// The token endpoint portero serves for this issuer, if it has a dialect.
    pub endpoint: Option<TokenEndpoint>,
    /// An issuer run elsewhere (an identity provider): its keys are
    /// fetched from its JWKS, and it serves no token endpoint.
    pub external: Option<ExternalKeySource>,
}

/// Where an external issuer publishes its keys, and how portero keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalKeySource {
    pub location: KeyLocation,
    /// The `iss` its tokens carry: given, or (with discovery) learned from
    /// the metadata's `issuer`, which must then equal it when given.
    pub expected_iss: Option<String>,
    /// Roots for HTTPS to the provider; `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// Bounds on the refresh interval the JWKS's `Cache-Control: max-age` asks for.
    pub refresh_min: Duration,
    pub refresh_max: Duration,
    /// Refetches asked for by tokens with an unknown `kid`: at most one per interval.
    pub refetch_interval: Duration,
    /// Keys are used this long after the last successful fetch, then dropped.
    pub max_stale: Duration,
    /// For each request to the provider.
    pub timeout: Duration,
    /// How long `/readyz` waits for the first key set.
    pub ready_timeout: Duration,
}

/// Keys fetched over plain HTTP could be swapped by anyone on the path:
/// HTTPS, or plain HTTP to this host only.
pub fn check_key_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("{text:?} names no host")),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "{text:?}: keys over plain HTTP could be replaced on the way; use https"
        )),
        other => Err(format!("{text:?}: scheme {other:?} is not https")),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum KeyLocation {
    /// OpenID Connect discovery or RFC 8414 metadata naming `issuer` and `jwks_uri`.
    Discovery(String),
    Jwks(String),
}

#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    pub dialect: Dialect,
    pub host: String,
    pub path: String,
    /// `login-refresh` only.
    pub refresh_path: Option<String>,
    pub refresh_ttl: Duration,
    /// Offset of the issuer's local time, for dates the dialects print.
    pub time_zone: chrono::FixedOffset,
    /// `project`: token lifetime without a query, and the most a client may ask for.
    pub default_years: u32,
    pub max_years: u32,
    /// `client-flat`: the companies that exist.
    pub companies: Vec<String>,
    pub max_failures: u32,
    pub ip_max_failures: u32,
    pub lockout: Duration,
    pub max_body_size: u64,
    pub body_timeout: Duration,
    pub principals: Principals,
    /// Browsers on these origins may call the endpoint.
    pub cors: Option<Arc<CorsPolicy>>,
    pub limits: Limits,
}

#[derive(Debug, Clone)]
pub struct KeyConfig {
    pub kid: String,
    pub alg: jsonwebtoken::Algorithm,
    pub source: KeySource,
    pub verify_only: bool,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub host: String,
    pub path: String,
    pub methods: Vec<http::Method>,
    pub action: RouteAction,
    /// Browsers on these origins may call the route (`[cors.NAME]`).
    pub cors: Option<Arc<CorsPolicy>>,
    pub limits: Limits,
}

/// What one route admits: client addresses, a rate, requests in flight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub ips: IpRules,
    pub rate: Option<RateLimit>,
    /// Requests of the whole route in flight at once (`503` beyond).
    pub max_in_flight: Option<u32>,
    /// Requests of one key in flight at once (`503` beyond).
    pub concurrency: Option<Concurrency>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// CIDR lists a client address is checked against: a `deny` match is
/// refused; with an `allow` list, so is an address outside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRules {
    pub allow: Vec<ipnet::IpNet>,
    pub deny: Vec<ipnet::IpNet>,
}

/// `requests` per `per` for each key, with `burst` more at once after a
/// quiet spell: a token bucket of `requests + burst` refilled at
/// `requests / per`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
    pub burst: u32,
    pub by: LimitKey,
    pub scope: LimitScope,
    /// A claim of the verified token naming that token's own `requests`
    /// (a premium client's), the burst scaled with it.
    pub override_claim: Option<String>,
}

impl RateLimit {
    /// The most `requests` (and `burst`) a limit may name: the in-memory
    /// estimator counts a request in units of 2^30 / requests.
    pub const MAX_REQUESTS: u32 = 1_000_000_000;
}

/// Per-key requests in flight.
#[derive(Debug, Clone, PartialEq)]
pub struct Concurrency {
    pub max_in_flight: u32,
    pub by: LimitKey,
}

/// What a limit counts requests by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The verified token's `sub`.
    Subject,
    /// The client's address (through trusted proxies).
    ClientIp,
    /// A request header; a request without it counts by its address.
    Header(HeaderName),
    /// A claim of the verified token; a token without it counts by its `sub`.
    Claim(String),
}

impl LimitKey {
    pub fn parse(s: &str) -> Result<LimitKey, String> {
        match s.split_once(':') {
            None if s == "sub" => Ok(Self::Subject),
            None if s == "client_ip" => Ok(Self::ClientIp),
            Some(("header", name)) => HeaderName::from_bytes(name.trim().as_bytes())
                .map(Self::Header)
                .map_err(|_| format!("{name:?} is not a header name")),
            Some(("claim", name)) if !name.trim().is_empty() => {
                Ok(Self::Claim(name.trim().to_string()))
            }
            _ => Err(format!(
                "{s:?}: expected \"sub\", \"client_ip\", \"header:NAME\" or \"claim:NAME\""
            )),
        }
    }

    /// Known only once the token is verified.
    pub fn needs_token(&self) -> bool {
        matches!(self, Self::Subject | Self::Claim(_))
    }
}

/// Where a rate limit's counts live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// In this instance's memory: N instances admit up to N times the limit.
    Instance,
    /// In the Redis store, shared by every instance; this instance's own
    /// count while Redis cannot be reached.
    Cluster,
}

/// A `[cors.NAME]` table: which browser origins may call a route, and how.
/// The header values portero answers with are made once, here.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    pub name: String,
    pub origins: Vec<OriginPattern>,
    pub methods: Vec<http::Method>,
    /// `None`: any request header (`allow_headers = ["*"]`), echoed by name.
    pub allow_headers: Option<Vec<HeaderName>>,
    pub credentials: bool,
    /// `Access-Control-Allow-Methods`.
    pub methods_value: HeaderValue,
    /// `Access-Control-Expose-Headers`: the configured names and `WWW-Authenticate`.
    pub expose_value: HeaderValue,
    /// `Access-Control-Max-Age`, in seconds.
    pub max_age_value: Option<HeaderValue>,
}

/// An origin a CORS policy accepts, as a browser serialises it
/// (`scheme://host[:port]`, lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    Exact(String),
    /// `https://*.example.com`: `scheme` is `https://`, `suffix` `.example.com`;
    /// one or more labels stand before the suffix.
    Subdomains {
        scheme: String,
        suffix: String,
    },
    /// `*`: any origin; never together with credentials.
    Any,
}

// Routes are few and read in place on every request: boxing the large
// variant would add a pointer hop to save memory nobody misses.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Forward to an upstream; `policy` is `None` on a public route.
    Proxy {
        upstream: usize,
        strip_prefix: bool,
        policy: Option<Policy>,
        /// Protocols a client may switch to through the route (lower case,
        /// e.g. `websocket`), tunneled once the upstream agrees.
        upgrades: Vec<String>,
        /// Header names with `_` are forwarded (by default they are
        /// dropped: CGI, WSGI and Rack read `x_forwarded_for` as
        /// `X-Forwarded-For`).
        underscores_in_headers: bool,
    },
    /// Serve an issuer's token endpoint; never forwarded.
    Issue { issuer: usize, endpoint: Endpoint },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Refresh,
}

/// A protected route's requirements.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Bit `i` set: tokens of issuer `i` are accepted.
    pub issuer_mask: u64,
    /// Where the token may come from; it must come from exactly one.
    pub token_from: Vec<TokenSource>,
    pub token_use: Option<String>,
    pub audience: Option<String>,
    /// Any one of these roles (claim `role` or `roles`) is enough.
    pub roles: Vec<String>,
    /// Every one of these scopes (claim `scope`, space separated, or `scp`) is needed.
    pub scopes: Vec<String>,
    /// Claims that must have exactly these values.
    pub claims: Vec<(String, String)>,
    /// (header, claim name) pairs injected upstream.
    pub headers: Vec<(HeaderName, String)>,
    pub forward_token: bool,
}

impl Policy {
    /// Any valid bearer token of the issuers in `issuer_mask`, forwarded as
    /// it came, with no further requirement.
    pub fn bearer(issuer_mask: u64) -> Policy {
        Policy {
            issuer_mask,
            token_from: vec![TokenSource::Bearer],
            token_use: None,
            audience: None,
            roles: Vec::new(),
            scopes: Vec::new(),
            claims: Vec::new(),
            headers: Vec::new(),
            forward_token: true,
        }
    }
}

/// Where a route finds its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer,
    /// `Authorization: <token>`, as seed 002's clients send it; a `Bearer `
    /// prefix is tolerated.
    RawAuthorization,
    /// Any other header, e.g. `header:X-Api-Token`.
    Header(HeaderName),
    /// A cookie, e.g. `cookie:session`.
    Cookie(String),
    /// A query parameter, e.g. `query:access_token`, for clients that
    /// cannot set headers (a browser's WebSocket). Removed from the URL
    /// before it goes upstream.
    Query(String),
}

impl TokenSource {
    pub fn parse(s: &str) -> Result<TokenSource, String> {
        match s.split_once(':') {
            None if s == "bearer" => Ok(Self::Bearer),
            None if s == "authorization" => Ok(Self::RawAuthorization),
            Some(("header", name)) => HeaderName::from_bytes(name.trim().as_bytes())
                .map(Self::Header)
                .map_err(|_| format!("{name:?} is not a header name")),
            Some(("cookie", name)) if !name.trim().is_empty() => {
                Ok(Self::Cookie(name.trim().to_string()))
            }
            Some(("query", name)) if !name.trim().is_empty() => {
                Ok(Self::Query(name.trim().to_string()))
            }
            _ => Err(format!(
                "{s:?}: expected \"bearer\", \"authorization\", \"header:NAME\", \"cookie:NAME\" or \"query:NAME\""
            )),
        }
    }
}

/// Where a configured key's material comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// An HS256 secret in an environment variable.
    SecretEnv(String),
    /// An HS256 secret in a file (raw bytes; surrounding whitespace trimmed).
    SecretFile(PathBuf),
    /// PEM files for RS256/ES256/EdDSA; a key without `private` only verifies.
    Pem {
        private: Option<PathBuf>,
        public: Option<PathBuf>,
    },
}

/// The five token-endpoint dialects (docs/dialects.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Session,
    LoginRefresh,
    Project,
    ClientEnvelope,
    ClientFlat,
}

impl Dialect {
    pub fn parse(s: &str) -> Option<Dialect> {
        Some(match s {
            "session" => Self::Session,
            "login-refresh" => Self::LoginRefresh,
            "project" => Self::Project,
            "client-envelope" => Self::ClientEnvelope,
            "client-flat" => Self::ClientFlat,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::LoginRefresh => "login-refresh",
            Self::Project => "project",
            Self::ClientEnvelope => "client-envelope",
            Self::ClientFlat => "client-flat",
        }
    }

    pub fn default_path(self) -> &'static str {
        match self {
            Self::Session => "/api/Session/GetToken",
            Self::LoginRefresh | Self::ClientEnvelope => "/api/auth/token",
            Self::Project => "/auth",
            Self::ClientFlat => "/api/v1/auth",
        }
    }

    pub fn login_fields(self) -> &'static str {
        match self {
            Self::Session | Self::LoginRefresh => "username",
            Self::Project => "business and proyecto",
            Self::ClientEnvelope | Self::ClientFlat => "client_id",
        }
    }

    /// Client secrets are high-entropy: their dummy is the fast hash.
    pub fn fast_secrets(self) -> bool {
        matches!(self, Self::ClientEnvelope | Self::ClientFlat)
    }
}

/// The operator's choices on paths; both off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathRules {
    /// `//` becomes `/` in the forwarded path. Routing ignores empty
    /// segments either way.
    pub merge_slashes: bool,
    /// `%2F` passes through (still encoded) instead of a `400`. Risky: an
    /// upstream that decodes it before routing sees another path.
    pub allow_encoded_slashes: bool,
}

/// The prefix of portero's fast hash: `$portero-hmac-sha256$<salt>$<mac>`.
pub const FAST_PREFIX: &str = "$portero-hmac-sha256$";

#[derive(Debug, Clone)]
pub enum SecretHash {
    /// A PHC string, `$argon2id$v=19$m=...`.
    Argon2(String),
    Fast {
        salt: Vec<u8>,
        mac: Vec<u8>,
    },
}

impl SecretHash {
    pub fn parse(s: &str) -> Result<SecretHash, String> {
        if let Some(rest) = s.strip_prefix(FAST_PREFIX) {
            let (salt, mac) = rest.split_once('$').ok_or("malformed fast hash")?;
            let decode = |x: &str| {
                URL_SAFE_NO_PAD
                    .decode(x)
                    .map_err(|_| "malformed fast hash".to_string())
            };
            return Ok(SecretHash::Fast {
                salt: decode(salt)?,
                mac: decode(mac)?,
            });
        }
        let parsed = PasswordHash::new(s).map_err(|e| format!("not an argon2 PHC string: {e}"))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(format!(
                "{} hashes are not accepted; use argon2id",
                parsed.algorithm
            ));
        }
        Ok(SecretHash::Argon2(s.to_string()))
    }
}

/// Someone who can obtain tokens, with what the dialects return about them.
#[derive(Debug, Clone)]
pub struct Principal {
    /// What identifies them at login: username, client id, or `business/proyecto`.
    pub login: String,
    pub secret: SecretHash,
    pub id: Value,
    pub username: Option<String>,
    pub nombre: Option<String>,
    pub role: Option<String>,
    pub business: Option<String>,
    pub proyecto: Option<String>,
    pub client_id: Option<String>,
    pub company: Option<String>,
    pub permissions: Vec<String>,
    pub active: bool,
    pub blocked: bool,
    /// Replaces `requests` of the rate limits keyed by identity for this
    /// principal's tokens.
    pub rate_limit: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct Principals {
    by_login: HashMap<String, Principal>,
}

impl Principals {
    pub fn new(list: Vec<Principal>) -> Principals {
        Principals {
            by_login: list.into_iter().map(|p| (p.login.clone(), p)).collect(),
        }
    }

    pub fn get(&self, login: &str) -> Option<&Principal> {
        self.by_login.get(login)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Principal> {
        self.by_login.values()
    }
}

/// The login of a `project` principal.
pub fn project_login(business: &str, proyecto: &str) -> String {
    format!("{business}/{proyecto}")
}
