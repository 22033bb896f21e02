//! The only serde types in portero: `gateway.toml` as written (the file layer)
//! and the checks that turn it into the validated [`Config`] the gateway runs on.
//!
//! Every problem is reported with the file, line and key it comes from, and
//! loading collects all of them instead of stopping at the first.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::auth::keys::KeySource;
use crate::auth::policy::{Policy, TokenSource};
use crate::credentials::{Principal, Principals, SecretHash};
use crate::issue::Dialect;
use crate::path::PathRules;

/// Claim-to-header injection never uses these names: they carry the request itself.
const RESERVED_HEADERS: &[&str] = &["host", "content-length", "transfer-encoding", "connection"];

/// Headers stripped from every client request unless the file says otherwise
/// (`*` ends a prefix pattern). Injected header names are always added.
const DEFAULT_STRIP: &[&str] = &["x-portero-*", "x-auth-*", "x-user-*", "x-forwarded-user"];

// ---------------------------------------------------------------------------
// The file layer: exactly what `gateway.toml` may contain.
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    listen: Vec<FileListener>,
    #[serde(default)]
    admin: FileAdmin,
    #[serde(default)]
    store: FileStore,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    upstreams: BTreeMap<String, FileUpstream>,
    #[serde(default)]
    issuers: BTreeMap<String, FileIssuer>,
    #[serde(default)]
    routes: Vec<FileRoute>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileServer {
    threads: Option<usize>,
    grace_period: Option<Spanned<String>>,
    shutdown_timeout: Option<Spanned<String>>,
    data_dir: Option<String>,
    max_body_size: Option<Spanned<String>>,
    access_log: Option<bool>,
    header_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    tls_handshake_timeout: Option<Spanned<String>>,
    body_timeout: Option<Spanned<String>>,
    max_connections: Option<usize>,
    max_header_size: Option<Spanned<String>>,
    trusted_proxies: Option<Vec<Spanned<String>>>,
    merge_slashes: Option<bool>,
    allow_encoded_slashes: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListener {
    addr: Spanned<String>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileAdmin {
    listen: Option<Spanned<String>>,
    token_env: Option<String>,
    max_connections: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileStore {
    backend: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    password_env: Option<String>,
    key_prefix: Option<String>,
    timeout: Option<Spanned<String>>,
    on_outage: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    leeway: Option<Spanned<String>>,
    verified_cache_size: Option<usize>,
    strip_headers: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUpstream {
    builtin: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    #[serde(default)]
    servers: Vec<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    read_timeout: Option<Spanned<String>>,
    write_timeout: Option<Spanned<String>>,
    max_idle_connections: Option<usize>,
    idle_timeout: Option<Spanned<String>>,
    max_connections: Option<usize>,
    queue_timeout: Option<Spanned<String>>,
    health_check: Option<Spanned<String>>,
    health_check_interval: Option<Spanned<String>>,
    host: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIssuer {
    iss: Option<String>,
    dialect: Option<Spanned<String>>,
    token_ttl: Option<Spanned<String>>,
    #[serde(default)]
    allow_no_exp: bool,
    #[serde(default)]
    keys: Vec<FileKey>,
    // The token endpoint, for issuers with a dialect.
    host: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    refresh_path: Option<Spanned<String>>,
    refresh_ttl: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    default_years: Option<u32>,
    max_years: Option<u32>,
    #[serde(default)]
    companies: Vec<String>,
    max_failures: Option<u32>,
    ip_max_failures: Option<u32>,
    lockout: Option<Spanned<String>>,
    max_body_size: Option<Spanned<String>>,
    body_timeout: Option<Spanned<String>>,
    #[serde(default)]
    principals: Vec<FilePrincipal>,
    principals_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrincipals {
    principals: Vec<FilePrincipal>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct FilePrincipal {
    username: Option<String>,
    client_id: Option<String>,
    business: Option<String>,
    proyecto: Option<String>,
    secret_hash: Spanned<String>,
    id: Option<toml::Value>,
    nombre: Option<String>,
    role: Option<String>,
    company: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    blocked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    kid: Spanned<String>,
    alg: Spanned<String>,
    secret_env: Option<String>,
    secret_file: Option<String>,
    private_key_file: Option<String>,
    public_key_file: Option<String>,
    #[serde(default)]
    verify_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    name: Option<String>,
    #[serde(default = "any_host")]
    host: Spanned<String>,
    path: Spanned<String>,
    #[serde(default)]
    methods: Vec<Spanned<String>>,
    upstream: Spanned<String>,
    #[serde(default)]
    strip_prefix: bool,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    issuers: Vec<Spanned<String>>,
    token_from: Option<Spanned<String>>,
    token_use: Option<String>,
    audience: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    claims: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    #[serde(default = "yes")]
    forward_token: bool,
}

fn any_host() -> Spanned<String> {
    Spanned::new(0..0, "*".to_string())
}

fn yes() -> bool {
    true
}

// ---------------------------------------------------------------------------
// The validated model: what the rest of portero reads. Never deserialized.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub server: ServerSettings,
    pub listeners: Vec<Listener>,
    pub admin: AdminSettings,
    pub store: StoreSettings,
    pub auth: AuthSettings,
    pub upstreams: Vec<Upstream>,
    pub issuers: Vec<Issuer>,
    pub routes: Vec<Route>,
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
    pub limits: ConnectionLimits,
    /// Peers whose `X-Forwarded-For`, `Forwarded` and `X-Real-IP` are kept.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub paths: PathRules,
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
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone)]
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
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamKind {
    Servers(Vec<SocketAddr>),
    /// The built-in echo server, bound by portero itself on `listen`.
    Echo {
        listen: SocketAddr,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    None,
    Tcp { interval: Duration },
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
}

#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Forward to an upstream; `policy` is `None` on a public route.
    Proxy {
        upstream: usize,
        strip_prefix: bool,
        policy: Option<Policy>,
    },
    /// Serve an issuer's token endpoint; never forwarded.
    Issue { issuer: usize, endpoint: Endpoint },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Refresh,
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// One problem in a config file, named by file, line and key.
#[derive(Debug, Clone)]
pub struct Problem {
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &str, problems: &[Problem]) -> String {
    let mut out = format!("{path}: {} problem(s)", problems.len());
    for p in problems {
        match p.line {
            Some(line) => out.push_str(&format!("\n  {path}:{line}: {}: {}", p.key, p.message)),
            None => out.push_str(&format!("\n  {path}: {}: {}", p.key, p.message)),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, path)
}

/// Validates config text; `path` is used for messages and to resolve relative files.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: shown.clone(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut checker = Checker {
        text,
        base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        problems: Vec::new(),
    };
    let config = checker.build(file, path);
    if checker.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            path: shown,
            problems: checker.problems,
        })
    }
}

struct Checker<'a> {
    text: &'a str,
    base: PathBuf,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem<T>(&mut self, at: &Spanned<T>, key: impl Into<String>, message: impl Into<String>) {
        let line = if at.span().is_empty() && at.span().start == 0 {
            None
        } else {
            Some(self.text[..at.span().start].matches('\n').count() + 1)
        };
        self.problems.push(Problem {
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    fn problem_no_span(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: None,
            key: key.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, v: &Option<Spanned<String>>, key: &str, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match parse_duration(s.get_ref()) {
                Ok(d) => d,
                Err(e) => {
                    self.problem(s, key, e);
                    default
                }
            },
        }
    }

    fn addr(&mut self, v: &Spanned<String>, key: &str) -> SocketAddr {
        v.get_ref().parse().unwrap_or_else(|_| {
            self.problem(
                v,
                key,
                format!("{:?} is not an ip:port address", v.get_ref()),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    fn resolve(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn build(&mut self, file: FileConfig, path: &Path) -> Config {
        let server = self.server(&file.server);
        let listeners = self.listeners(&file.listen);
        let admin = AdminSettings {
            listen: match &file.admin.listen {
                Some(a) => self.addr(a, "admin.listen"),
                None => SocketAddr::from(([127, 0, 0, 1], 9901)),
            },
            token_env: file
                .admin
                .token_env
                .clone()
                .unwrap_or_else(|| "PORTERO_ADMIN_TOKEN".to_string()),
            max_connections: self.at_least_one(
                file.admin.max_connections,
                "admin.max_connections",
                64,
            ),
        };
        let upstreams: Vec<Upstream> = file
            .upstreams
            .iter()
            .map(|(name, u)| self.upstream(name, u))
            .collect();
        let issuers: Vec<Issuer> = file
            .issuers
            .iter()
            .map(|(name, i)| self.issuer(name, i))
            .collect();
        self.check_unique_kids(&issuers);
        let mut strip_all: Vec<String> = Vec::new();
        let mut routes: Vec<Route> = token_endpoint_routes(&issuers);
        routes.extend(
            file.routes
                .iter()
                .enumerate()
                .map(|(i, r)| self.route(i, r, &upstreams, &issuers, &mut strip_all)),
        );
        let auth = self.auth(&file.auth, strip_all);
        let store = self.store(&file.store, auth.leeway);
        Config {
            source: path.to_path_buf(),
            server,
            listeners,
            admin,
            store,
            auth,
            upstreams,
            issuers,
            routes,
        }
    }

    fn server(&mut self, s: &FileServer) -> ServerSettings {
        let threads = s.threads.unwrap_or(2);
        if threads == 0 {
            self.problem_no_span("server.threads", "must be at least 1");
        }
        let max_body_size = match &s.max_body_size {
            None => 1024 * 1024,
            Some(v) => parse_size(v.get_ref()).unwrap_or_else(|e| {
                self.problem(v, "server.max_body_size", e);
                0
            }),
        };
        ServerSettings {
            threads: threads.max(1),
            grace_period: self.duration(&s.grace_period, "server.grace_period", secs(2)),
            shutdown_timeout: self.duration(
                &s.shutdown_timeout,
                "server.shutdown_timeout",
                secs(3),
            ),
            data_dir: self.resolve(s.data_dir.as_deref().unwrap_or(".portero")),
            max_body_size,
            access_log: s.access_log.unwrap_or(true),
            limits: self.limits(s),
            trusted_proxies: self.trusted_proxies(s),
            paths: PathRules {
                merge_slashes: s.merge_slashes.unwrap_or(false),
                allow_encoded_slashes: s.allow_encoded_slashes.unwrap_or(false),
            },
        }
    }

    fn limits(&mut self, s: &FileServer) -> ConnectionLimits {
        let max_header_size = match &s.max_header_size {
            None => 64 * 1024,
            Some(v) => match parse_size(v.get_ref()) {
                // hyper's smallest read buffer.
                Ok(n) if n >= 8192 => n as usize,
                Ok(_) => {
                    self.problem(v, "server.max_header_size", "must be at least 8KiB");
                    8192
                }
                Err(e) => {
                    self.problem(v, "server.max_header_size", e);
                    8192
                }
            },
        };
        ConnectionLimits {
            header_timeout: self.duration(&s.header_timeout, "server.header_timeout", secs(10)),
            idle_timeout: self.duration(&s.idle_timeout, "server.idle_timeout", secs(30)),
            tls_handshake_timeout: self.duration(
                &s.tls_handshake_timeout,
                "server.tls_handshake_timeout",
                secs(10),
            ),
            body_timeout: self.duration(&s.body_timeout, "server.body_timeout", secs(60)),
            max_connections: s
                .max_connections
                .map(|n| self.at_least_one(Some(n), "server.max_connections", 1)),
            max_header_size,
        }
    }

    fn trusted_proxies(&mut self, s: &FileServer) -> Vec<ipnet::IpNet> {
        let mut nets = Vec::new();
        for (i, v) in s.trusted_proxies.iter().flatten().enumerate() {
            let text = v.get_ref();
            let net = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match net {
                Ok(n) => nets.push(n),
                Err(_) => self.problem(
                    v,
                    format!("server.trusted_proxies[{i}]"),
                    format!("{text:?} is not an IP address or CIDR network"),
                ),
            }
        }
        nets
    }

    fn at_least_one(&mut self, v: Option<usize>, key: &str, default: usize) -> usize {
        match v {
            Some(0) => {
                self.problem_no_span(key, "must be at least 1");
                default
            }
            Some(n) => n,
            None => default,
        }
    }

    fn store(&mut self, s: &FileStore, leeway: Duration) -> StoreSettings {
        let on_outage = match &s.on_outage {
            None => OutagePolicy::FailStatic,
            Some(v) => match v.get_ref().as_str() {
                "fail-static" => OutagePolicy::FailStatic,
                "fail-closed" => OutagePolicy::FailClosed,
                other => {
                    self.problem(
                        v,
                        "store.on_outage",
                        format!("{other:?}: expected \"fail-static\" or \"fail-closed\""),
                    );
                    OutagePolicy::FailStatic
                }
            },
        };
        let backend = s
            .backend
            .as_ref()
            .map_or("embedded", |b| b.get_ref().as_str());
        let backend = match backend {
            "embedded" => {
                if let Some(url) = &s.url {
                    self.problem(url, "store.url", "only the redis backend takes a url");
                }
                StoreBackend::Embedded
            }
            "redis" => StoreBackend::Redis(RedisSettings {
                url: self.redis_url(s),
                password_env: s.password_env.clone(),
                key_prefix: s.key_prefix.clone().unwrap_or_else(|| "portero:".into()),
                timeout: self.duration(&s.timeout, "store.timeout", Duration::from_millis(500)),
                ttl_margin: leeway,
            }),
            other => {
                let at = s
                    .backend
                    .as_ref()
                    .expect("a non-default backend was written");
                self.problem(
                    at,
                    "store.backend",
                    format!("{other:?}: expected \"embedded\" or \"redis\""),
                );
                StoreBackend::Embedded
            }
        };
        StoreSettings { backend, on_outage }
    }

    fn redis_url(&mut self, s: &FileStore) -> String {
        let Some(url) = &s.url else {
            self.problem_no_span(
                "store.url",
                "the redis backend needs a url (redis://host:port)",
            );
            return String::new();
        };
        let text = url.get_ref();
        let Some(rest) = text
            .strip_prefix("redis://")
            .or_else(|| text.strip_prefix("rediss://"))
        else {
            self.problem(url, "store.url", "expected a redis:// or rediss:// url");
            return text.clone();
        };
        // A password in the file would end up in backups and diffs.
        let userinfo = rest.split('/').next().unwrap_or("").rsplit_once('@');
        if userinfo.is_some_and(|(user, _)| user.contains(':')) {
            self.problem(
                url,
                "store.url",
                "holds a password: name an environment variable in store.password_env instead",
            );
        }
        if text.contains("#insecure") {
            self.problem(
                url,
                "store.url",
                "TLS certificate checks cannot be turned off",
            );
        }
        text.clone()
    }

    fn listeners(&mut self, list: &[FileListener]) -> Vec<Listener> {
        if list.is_empty() {
            self.problem_no_span("listen", "at least one [[listen]] table is required");
        }
        list.iter()
            .enumerate()
            .map(|(i, l)| {
                let addr = self.addr(&l.addr, &format!("listen[{i}].addr"));
                let tls = match (&l.tls_cert, &l.tls_key) {
                    (None, None) => None,
                    (Some(cert), Some(key)) => {
                        let (cert_path, key_path) =
                            (self.resolve(cert.get_ref()), self.resolve(key.get_ref()));
                        for (p, s, k) in
                            [(&cert_path, cert, "tls_cert"), (&key_path, key, "tls_key")]
                        {
                            if !p.is_file() {
                                self.problem(
                                    s,
                                    format!("listen[{i}].{k}"),
                                    format!("no such file: {}", p.display()),
                                );
                            }
                        }
                        Some(TlsFiles {
                            cert: cert_path,
                            key: key_path,
                        })
                    }
                    (Some(s), None) | (None, Some(s)) => {
                        self.problem(
                            s,
                            format!("listen[{i}]"),
                            "tls_cert and tls_key go together",
                        );
                        None
                    }
                };
                Listener { addr, tls }
            })
            .collect()
    }

    fn auth(&mut self, a: &FileAuth, injected: Vec<String>) -> AuthSettings {
        let mut strip_exact: Vec<String> = injected;
        let mut strip_prefixes = Vec::new();
        let patterns: Vec<String> = match &a.strip_headers {
            Some(list) => list
                .iter()
                .map(|s| s.get_ref().to_ascii_lowercase())
                .collect(),
            None => DEFAULT_STRIP.iter().map(|s| s.to_string()).collect(),
        };
        for p in patterns {
            match p.strip_suffix('*') {
                Some(prefix) => strip_prefixes.push(prefix.to_string()),
                None => strip_exact.push(p),
            }
        }
        strip_exact.sort();
        strip_exact.dedup();
        AuthSettings {
            leeway: self.duration(&a.leeway, "auth.leeway", secs(30)),
            verified_cache_size: a.verified_cache_size.unwrap_or(65_536),
            strip_exact,
            strip_prefixes,
        }
    }

    fn upstream(&mut self, name: &str, u: &FileUpstream) -> Upstream {
        let key = |k: &str| format!("upstreams.{name}.{k}");
        let kind = match (&u.builtin, u.servers.is_empty()) {
            (Some(b), true) => {
                if b.get_ref() != "echo" {
                    self.problem(
                        b,
                        key("builtin"),
                        format!("unknown builtin {:?} (known: \"echo\")", b.get_ref()),
                    );
                }
                let listen = match &u.listen {
                    Some(l) => self.addr(l, &key("listen")),
                    None => SocketAddr::from(([127, 0, 0, 1], 0)),
                };
                if !listen.ip().is_loopback() {
                    self.problem_no_span(
                        key("listen"),
                        "the echo upstream listens on loopback only",
                    );
                }
                UpstreamKind::Echo { listen }
            }
            (None, false) => {
                let servers = u
                    .servers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| self.addr(s, &key(&format!("servers[{i}]"))))
                    .collect();
                UpstreamKind::Servers(servers)
            }
            (Some(b), false) => {
                self.problem(
                    b,
                    key("builtin"),
                    "give either builtin or servers, not both",
                );
                UpstreamKind::Servers(Vec::new())
            }
            (None, true) => {
                self.problem_no_span(format!("upstreams.{name}"), "needs servers or builtin");
                UpstreamKind::Servers(Vec::new())
            }
        };
        let interval = self.duration(
            &u.health_check_interval,
            &key("health_check_interval"),
            secs(2),
        );
        let health_check = match u.health_check.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "tcp")) => HealthCheck::Tcp { interval },
            Some((_, "none")) => HealthCheck::None,
            Some((s, other)) => {
                self.problem(
                    s,
                    key("health_check"),
                    format!("unknown health check {other:?} (known: \"tcp\", \"none\")"),
                );
                HealthCheck::None
            }
        };
        Upstream {
            name: name.to_string(),
            kind,
            connect_timeout: self.duration(&u.connect_timeout, &key("connect_timeout"), secs(2)),
            read_timeout: self.duration(&u.read_timeout, &key("read_timeout"), secs(30)),
            write_timeout: self.duration(&u.write_timeout, &key("write_timeout"), secs(30)),
            max_idle_connections: u.max_idle_connections.unwrap_or(256),
            idle_timeout: self.duration(&u.idle_timeout, &key("idle_timeout"), secs(60)),
            max_connections: self.at_least_one(u.max_connections, &key("max_connections"), 1024),
            queue_timeout: self.duration(&u.queue_timeout, &key("queue_timeout"), secs(2)),
            health_check,
            host: u.host.clone(),
        }
    }

    fn issuer(&mut self, name: &str, i: &FileIssuer) -> Issuer {
        let mut keys = Vec::new();
        for (n, k) in i.keys.iter().enumerate() {
            let key = |f: &str| format!("issuers.{name}.keys[{n}].{f}");
            let alg = match k.alg.get_ref().as_str() {
                "HS256" => jsonwebtoken::Algorithm::HS256,
                "RS256" => jsonwebtoken::Algorithm::RS256,
                "ES256" => jsonwebtoken::Algorithm::ES256,
                "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
                other => {
                    self.problem(
                        &k.alg,
                        key("alg"),
                        format!("unsupported algorithm {other:?} (HS256, RS256, ES256, EdDSA)"),
                    );
                    continue;
                }
            };
            let source = match (
                alg,
                &k.secret_env,
                &k.secret_file,
                &k.private_key_file,
                &k.public_key_file,
            ) {
                (jsonwebtoken::Algorithm::HS256, Some(env), None, None, None) => {
                    KeySource::SecretEnv(env.clone())
                }
                (jsonwebtoken::Algorithm::HS256, None, Some(f), None, None) => {
                    KeySource::SecretFile(self.resolve(f))
                }
                (jsonwebtoken::Algorithm::HS256, ..) => {
                    self.problem(
                        &k.kid,
                        key("secret_env"),
                        "an HS256 key needs exactly one of secret_env, secret_file",
                    );
                    continue;
                }
                (_, None, None, private, public) if private.is_some() || public.is_some() => {
                    KeySource::Pem {
                        private: private.as_deref().map(|f| self.resolve(f)),
                        public: public.as_deref().map(|f| self.resolve(f)),
                    }
                }
                _ => {
                    self.problem(
                        &k.kid,
                        key("public_key_file"),
                        format!(
                            "{} keys need public_key_file and/or private_key_file",
                            k.alg.get_ref()
                        ),
                    );
                    continue;
                }
            };
            let verify_only =
                k.verify_only || matches!(&source, KeySource::Pem { private: None, .. });
            keys.push(KeyConfig {
                kid: k.kid.get_ref().clone(),
                alg,
                source,
                verify_only,
            });
        }
        let signing = keys.iter().filter(|k| !k.verify_only).count();
        if signing > 1 {
            self.problem_no_span(
                format!("issuers.{name}.keys"),
                "at most one key may sign; mark the others verify_only = true",
            );
        }
        Issuer {
            name: name.to_string(),
            iss: i.iss.clone().unwrap_or_else(|| name.to_string()),
            endpoint: self.endpoint(name, i),
            token_ttl: self.duration(
                &i.token_ttl,
                &format!("issuers.{name}.token_ttl"),
                secs(3600),
            ),
            allow_no_exp: i.allow_no_exp,
            keys,
        }
    }

    fn endpoint(&mut self, name: &str, i: &FileIssuer) -> Option<TokenEndpoint> {
        let key = |k: &str| format!("issuers.{name}.{k}");
        let d = i.dialect.as_ref()?;
        let Some(dialect) = Dialect::parse(d.get_ref()) else {
            self.problem(
                d,
                key("dialect"),
                format!(
                    "unknown dialect {:?} (session, login-refresh, project, client-envelope, client-flat)",
                    d.get_ref()
                ),
            );
            return None;
        };
        let path = |c: &mut Self, v: &Option<Spanned<String>>, k: &str, default: &str| match v {
            Some(p) if !p.get_ref().starts_with('/') => {
                c.problem(p, key(k), "must start with /");
                default.to_string()
            }
            Some(p) => p.get_ref().clone(),
            None => default.to_string(),
        };
        let main_path = path(self, &i.path, "path", dialect.default_path());
        let refresh_path = match (dialect, &i.refresh_path) {
            (Dialect::LoginRefresh, v) => {
                Some(path(self, v, "refresh_path", "/api/auth/refreshtoken"))
            }
            (_, Some(v)) => {
                self.problem(
                    v,
                    key("refresh_path"),
                    "only the login-refresh dialect has a refresh endpoint",
                );
                None
            }
            (_, None) => None,
        };
        let time_zone = match &i.time_zone {
            None => chrono::FixedOffset::east_opt(0).expect("zero offset"),
            Some(tz) => parse_offset(tz.get_ref()).unwrap_or_else(|e| {
                self.problem(tz, key("time_zone"), e);
                chrono::FixedOffset::east_opt(0).expect("zero offset")
            }),
        };
        let mut file_principals = i.principals.clone();
        if let Some(f) = &i.principals_file {
            let p = self.resolve(f.get_ref());
            match std::fs::read_to_string(&p)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<FilePrincipals>(&t).map_err(|e| e.to_string()))
            {
                Ok(list) => file_principals.extend(list.principals),
                Err(e) => self.problem(f, key("principals_file"), format!("{}: {e}", p.display())),
            }
        }
        let mut principals = Vec::new();
        for (n, p) in file_principals.iter().enumerate() {
            if let Some(principal) = self.principal(&key(&format!("principals[{n}]")), dialect, p) {
                principals.push(principal);
            }
        }
        let max_body_size = match &i.max_body_size {
            None => 64 * 1024,
            Some(v) => parse_size(v.get_ref()).unwrap_or_else(|e| {
                self.problem(v, key("max_body_size"), e);
                0
            }),
        };
        let max_years = i.max_years.unwrap_or(10);
        let default_years = i.default_years.unwrap_or(2);
        if default_years == 0 || default_years > max_years {
            self.problem_no_span(
                key("default_years"),
                format!("must be between 1 and max_years ({max_years})"),
            );
        }
        Some(TokenEndpoint {
            dialect,
            host: i
                .host
                .as_ref()
                .map_or("*".to_string(), |h| h.get_ref().to_ascii_lowercase()),
            path: main_path,
            refresh_path,
            refresh_ttl: self.duration(&i.refresh_ttl, &key("refresh_ttl"), secs(86_400)),
            time_zone,
            default_years,
            max_years,
            companies: i.companies.clone(),
            max_failures: i.max_failures.unwrap_or(5).max(1),
            ip_max_failures: i.ip_max_failures.unwrap_or(50).max(1),
            lockout: self.duration(&i.lockout, &key("lockout"), secs(900)),
            max_body_size,
            body_timeout: self.duration(&i.body_timeout, &key("body_timeout"), secs(10)),
            principals: Principals::new(principals),
        })
    }

    fn principal(&mut self, key: &str, dialect: Dialect, p: &FilePrincipal) -> Option<Principal> {
        let secret = match SecretHash::parse(p.secret_hash.get_ref()) {
            Ok(h) => h,
            Err(e) => {
                self.problem(
                    &p.secret_hash,
                    format!("{key}.secret_hash"),
                    format!("{e} (make one with `portero hash-secret`)"),
                );
                return None;
            }
        };
        let login = match dialect {
            Dialect::Session | Dialect::LoginRefresh => p.username.clone(),
            Dialect::Project => match (&p.business, &p.proyecto) {
                (Some(b), Some(pr)) => Some(project_login(b, pr)),
                _ => None,
            },
            Dialect::ClientEnvelope | Dialect::ClientFlat => p.client_id.clone(),
        };
        let Some(login) = login else {
            self.problem(
                &p.secret_hash,
                key,
                format!(
                    "the {} dialect needs {}",
                    dialect.name(),
                    dialect.login_fields()
                ),
            );
            return None;
        };
        let id = match &p.id {
            None => serde_json::Value::Null,
            Some(v) => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
        };
        Some(Principal {
            login,
            secret,
            id,
            username: p.username.clone(),
            nombre: p.nombre.clone(),
            role: p.role.clone(),
            business: p.business.clone(),
            proyecto: p.proyecto.clone(),
            client_id: p.client_id.clone(),
            company: p.company.clone(),
            permissions: p.permissions.clone(),
            active: p.active,
            blocked: p.blocked,
        })
    }

    fn check_unique_kids(&mut self, issuers: &[Issuer]) {
        let mut seen = HashSet::new();
        for i in issuers {
            for k in &i.keys {
                if !seen.insert(k.kid.as_str()) {
                    self.problem_no_span(
                        format!("issuers.{}.keys", i.name),
                        format!("kid {:?} is used twice; kids must be unique", k.kid),
                    );
                }
            }
        }
    }

    fn route(
        &mut self,
        index: usize,
        r: &FileRoute,
        upstreams: &[Upstream],
        issuers: &[Issuer],
        strip_all: &mut Vec<String>,
    ) -> Route {
        let key = |k: &str| format!("routes[{index}].{k}");
        if !r.path.get_ref().starts_with('/') {
            self.problem(&r.path, key("path"), "must start with /");
        }
        let host = r.host.get_ref().to_ascii_lowercase();
        if host != "*" && host.contains('*') && !host.starts_with("*.") {
            self.problem(
                &r.host,
                key("host"),
                "wildcards are \"*\" or a leading \"*.\"",
            );
        }
        let upstream = upstreams
            .iter()
            .position(|u| &u.name == r.upstream.get_ref())
            .unwrap_or_else(|| {
                self.problem(
                    &r.upstream,
                    key("upstream"),
                    format!("no upstream named {:?}", r.upstream.get_ref()),
                );
                0
            });
        let methods = r
            .methods
            .iter()
            .filter_map(
                |m| match m.get_ref().to_ascii_uppercase().parse::<http::Method>() {
                    Ok(m) => Some(m),
                    Err(_) => {
                        self.problem(
                            m,
                            key("methods"),
                            format!("{:?} is not a method", m.get_ref()),
                        );
                        None
                    }
                },
            )
            .collect();
        let mut headers = Vec::new();
        for (name, claim) in &r.headers {
            let lower = name.to_ascii_lowercase();
            let header = match http::HeaderName::from_bytes(lower.as_bytes()) {
                Ok(h) if !RESERVED_HEADERS.contains(&lower.as_str()) => h,
                _ => {
                    self.problem(
                        claim,
                        key(&format!("headers.{name}")),
                        "not a header name portero may set",
                    );
                    continue;
                }
            };
            strip_all.push(lower);
            headers.push((header, claim.get_ref().clone()));
        }
        let policy = if r.public {
            if !r.issuers.is_empty()
                || !r.roles.is_empty()
                || !r.scopes.is_empty()
                || !headers.is_empty()
            {
                self.problem(
                    &r.path,
                    key("public"),
                    "a public route takes no issuers, roles, scopes or headers",
                );
            }
            None
        } else {
            let accepted: Vec<usize> = if r.issuers.is_empty() {
                (0..issuers.len()).collect()
            } else {
                r.issuers
                    .iter()
                    .filter_map(|i| {
                        let found = issuers.iter().position(|x| &x.name == i.get_ref());
                        if found.is_none() {
                            self.problem(
                                i,
                                key("issuers"),
                                format!("no issuer named {:?}", i.get_ref()),
                            );
                        }
                        found
                    })
                    .collect()
            };
            if issuers.is_empty() {
                self.problem(
                    &r.path,
                    key("public"),
                    "a protected route needs at least one [issuers] table",
                );
            }
            let token_from = match &r.token_from {
                None => TokenSource::Bearer,
                Some(s) => TokenSource::parse(s.get_ref()).unwrap_or_else(|e| {
                    self.problem(s, key("token_from"), e);
                    TokenSource::Bearer
                }),
            };
            let mut issuer_mask = 0u64;
            for i in &accepted {
                if *i < 64 {
                    issuer_mask |= 1 << i;
                }
            }
            if issuers.len() > 64 {
                self.problem_no_span("issuers", "at most 64 issuers are supported");
            }
            Some(Policy {
                issuer_mask,
                token_from,
                token_use: r.token_use.clone(),
                audience: r.audience.clone(),
                roles: r.roles.clone(),
                scopes: r.scopes.clone(),
                claims: r
                    .claims
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                headers,
                forward_token: r.forward_token,
            })
        };
        Route {
            name: r.name.clone().unwrap_or_else(|| format!("routes[{index}]")),
            host,
            path: r.path.get_ref().clone(),
            methods,
            action: RouteAction::Proxy {
                upstream,
                strip_prefix: r.strip_prefix,
                policy,
            },
        }
    }
}

/// One POST route per token endpoint, named `issue:<issuer>`.
fn token_endpoint_routes(issuers: &[Issuer]) -> Vec<Route> {
    let mut routes = Vec::new();
    for (index, issuer) in issuers.iter().enumerate() {
        let Some(e) = &issuer.endpoint else { continue };
        let mounts = std::iter::once((&e.path, Endpoint::Token))
            .chain(e.refresh_path.iter().map(|p| (p, Endpoint::Refresh)));
        for (path, endpoint) in mounts {
            routes.push(Route {
                name: format!("issue:{}", issuer.name),
                host: e.host.clone(),
                path: path.clone(),
                methods: vec![http::Method::POST],
                action: RouteAction::Issue {
                    issuer: index,
                    endpoint,
                },
            });
        }
    }
    routes
}

/// The login of a `project` principal.
pub fn project_login(business: &str, proyecto: &str) -> String {
    format!("{business}/{proyecto}")
}

/// `Z`, `UTC`, `+02:00`, `-05:00`.
fn parse_offset(s: &str) -> Result<chrono::FixedOffset, String> {
    if s == "Z" || s.eq_ignore_ascii_case("utc") {
        return Ok(chrono::FixedOffset::east_opt(0).expect("zero offset"));
    }
    let err = || format!("{s:?} is not an offset like \"+02:00\" or \"UTC\"");
    let (sign, rest) = match s.split_at_checked(1).ok_or_else(err)? {
        ("+", r) => (1, r),
        ("-", r) => (-1, r),
        _ => return Err(err()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(err)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(err)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Parses `500ms`, `30s`, `15m`, `24h`, `7d`, `2w`, `2y` (a year is 365 days).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} needs a unit (ms, s, m, h, d, w, y)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 15m, 24h, 2y"))?;
    let unit_secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (ms, s, m, h, d, w, y)"
            ))
        }
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Parses `65536`, `64KiB`, `1MiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 64KiB"))?;
    let mult = match unit {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (B, KiB, MiB)")),
    };
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[listen]]
addr = "127.0.0.1:8080"

[upstreams.echo]
builtin = "echo"

[issuers.demo]
[[issuers.demo.keys]]
kid = "k1"
alg = "HS256"
secret_env = "DEMO_SECRET"

[[routes]]
path = "/"
upstream = "echo"
"#;

    fn check(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("test.toml"))
    }

    #[test]
    fn minimal_config_loads() {
        let c = check(MINIMAL).unwrap();
        assert_eq!(c.routes.len(), 1);
        assert!(matches!(
            c.routes[0].action,
            RouteAction::Proxy {
                policy: Some(_),
                ..
            }
        ));
        assert_eq!(c.issuers[0].iss, "demo");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = MINIMAL.replace(
            "builtin = \"echo\"",
            "builtin = \"echo\"\ncolour = \"blue\"",
        );
        let err = check(&text).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        assert!(err.contains("line 7"), "{err}");
    }

    #[test]
    fn missing_upstream_reference_names_line_and_key() {
        let text = MINIMAL.replace("upstream = \"echo\"", "upstream = \"billing\"");
        let err = check(&text).unwrap_err().to_string();
        assert!(
            err.contains("test.toml:16: routes[0].upstream: no upstream named \"billing\""),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let text = MINIMAL
            .replace(
                "upstream = \"echo\"",
                "upstream = \"billing\"\ntoken_from = \"carrier-pigeon\"",
            )
            .replace("alg = \"HS256\"", "alg = \"none\"");
        let err = check(&text).unwrap_err().to_string();
        assert!(err.contains("3 problem(s)"), "{err}");
        assert!(err.contains("unsupported algorithm \"none\""), "{err}");
        assert!(err.contains("token_from"), "{err}");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(
            parse_duration("2y").unwrap(),
            Duration::from_secs(2 * 365 * 86_400)
        );
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("3 fortnights").is_err());
        assert_eq!(parse_size("64KiB").unwrap(), 65_536);
        assert!(parse_size("64KB").is_err());
    }
}
