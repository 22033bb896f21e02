//! `gateway.toml` as written → the validated model, one function per table.
//! Every problem is collected with its line and key; nothing panics.

mod browser_clients;
mod client_keys;
mod cors;
mod dialect_oauth2;
mod external;
mod hash_limits;
mod introspection;
mod issuer;
mod legacy;
mod limits;
mod listen;
mod metadata_documents;
pub(super) mod names;
pub(super) mod parse;
mod principal;
mod resource;
mod route;
pub(super) mod secret_hash;
mod sender;
mod session;
mod shadow;
mod sign_in;
mod standard;
mod store;
mod tls_client;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use toml::Spanned;

use super::file::*;
use super::model::*;
use super::units::{parse_duration, parse_size, secs};
use super::Problem;
use route::token_endpoint_routes;

/// Claim-to-header injection never uses these names: they carry the request itself.
const RESERVED_HEADERS: &[&str] = &["host", "content-length", "transfer-encoding", "connection"];

/// Headers stripped from every client request unless the file says otherwise
/// (`*` ends a prefix pattern). Injected header names are always added.
const DEFAULT_STRIP: &[&str] = &["x-portero-*", "x-auth-*", "x-user-*", "x-forwarded-user"];

/// Checks a parsed file; the config is complete only if no problem came up.
pub(super) fn check(text: &str, file: FileConfig, path: &Path) -> (Config, Vec<Problem>) {
    let mut checker = Checker {
        text,
        base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        problems: Vec::new(),
        hash_limits: HashLimits::default(),
        spans_elsewhere: false,
        key_providers: client_keys::key_providers(&file),
    };
    let config = checker.build(file, path);
    (config, checker.problems)
}

struct Checker<'a> {
    text: &'a str,
    base: PathBuf,
    problems: Vec<Problem>,
    /// `[hash_limits]`, read before the principals whose hashes it bounds.
    hash_limits: HashLimits,
    /// The spans being checked are another file's (a `principals_file`):
    /// its problems are named by key, with no line of the config.
    spans_elsewhere: bool,
    /// The provider issuers a client may be federated with.
    key_providers: std::collections::HashMap<String, String>,
}

impl Checker<'_> {
    fn problem<T>(&mut self, at: &Spanned<T>, key: impl Into<String>, message: impl Into<String>) {
        let line = if self.spans_elsewhere || (at.span().is_empty() && at.span().start == 0) {
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

    /// A duration something must last: zero is refused, as nothing could
    /// use it (a token expired when made, a body never read in time).
    fn lasting(
        &mut self,
        v: &Option<Spanned<DurationText>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let d = self.duration(v, key, default);
        match v {
            Some(s) if d.is_zero() => {
                self.problem(s, key, "must be more than 0s");
                default
            }
            _ => d,
        }
    }

    fn duration(
        &mut self,
        v: &Option<Spanned<DurationText>>,
        key: &str,
        default: Duration,
    ) -> Duration {
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

    /// One of a few words: `options[0]`'s value when absent or unknown (the
    /// latter a problem naming them all).
    fn choice<T: Copy, const N: usize>(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        options: [(&str, T); N],
    ) -> T {
        let Some(written) = v else {
            return options[0].1;
        };
        match options.iter().find(|(word, _)| word == written.get_ref()) {
            Some((_, value)) => *value,
            None => {
                let words: Vec<String> = options.iter().map(|(w, _)| format!("{w:?}")).collect();
                let (last, rest) = words.split_last().expect("at least one option");
                self.problem(
                    written,
                    key,
                    format!(
                        "{:?}: expected {} or {last}",
                        written.get_ref(),
                        rest.join(", ")
                    ),
                );
                options[0].1
            }
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

    /// `client_cert_file` and `client_key_file` (under `section`, as
    /// `upstreams.NAME.`), given together; both files read here, so a
    /// missing one or one without a certificate or key is named with its
    /// line before anything starts.
    pub(super) fn client_certificate(
        &mut self,
        section: &str,
        cert: &Option<Spanned<String>>,
        key: &Option<Spanned<String>>,
    ) -> Option<TlsFiles> {
        let (cert_key, key_key) = (
            format!("{section}client_cert_file"),
            format!("{section}client_key_file"),
        );
        match (cert, key) {
            (None, None) => None,
            (Some(cert), Some(private)) => {
                let cert_path = self.resolve(cert.get_ref());
                let key_path = self.resolve(private.get_ref());
                if let Err(e) = super::pem_certificates(&cert_path) {
                    self.problem(cert, &cert_key, e);
                }
                if let Err(e) = PrivateKeyDer::from_pem_file(&key_path) {
                    let message = format!("{}: no private key: {e}", key_path.display());
                    self.problem(private, &key_key, message);
                }
                Some(TlsFiles {
                    cert: cert_path,
                    key: key_path,
                    clients: None,
                })
            }
            (Some(s), None) | (None, Some(s)) => {
                self.problem(
                    s,
                    &cert_key,
                    "client_cert_file and client_key_file go together",
                );
                None
            }
        }
    }

    pub(super) fn resolve(&self, file: &str) -> PathBuf {
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
        for (i, l) in listeners.iter().enumerate() {
            if l.proxy_protocol && server.trusted_proxies.is_empty() {
                self.problem_no_span(
                    format!("listen[{i}].proxy_protocol"),
                    "headers are believed only from server.trusted_proxies, which is empty: every connection would be closed",
                );
            }
        }
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
                &file.admin.max_connections,
                "admin.max_connections",
                64,
            ),
        };
        let upstreams: Vec<Upstream> = file
            .upstreams
            .iter()
            .map(|(name, u)| self.upstream(name, u))
            .collect();
        let dns = self.dns(&file.dns);
        self.hash_limits = self.hash_limits(&file.hash_limits);
        let cors: Vec<_> = file
            .cors
            .iter()
            .map(|(name, c)| self.cors(name, c))
            .collect();
        let mut issuers: Vec<Issuer> = file
            .issuers
            .iter()
            .map(|(name, i)| self.issuer(name, i, &cors, server.public_url.as_deref()))
            .collect();
        self.check_unique_kids(&issuers);
        self.check_iss_apart(&issuers);
        let mut strip_all: Vec<String> = Vec::new();
        let mut routes: Vec<Route> = token_endpoint_routes(&issuers);
        self.token_endpoints_apart(&file, &issuers, &routes);
        let first_ordinary = routes.len();
        for (i, r) in file.routes.iter().enumerate() {
            let mut route = self.route(i, r, &upstreams, &issuers, &cors, &mut strip_all);
            let public_url = server.public_url.as_deref();
            self.protected_resource(i, r, &mut route, &issuers, public_url);
            routes.push(route);
        }
        self.client_certificates_read(&file, &listeners, &server, &mut issuers);
        self.one_document_each(&file.routes, &routes[first_ordinary..]);
        resource::served_resources(&mut issuers, &routes);
        self.scope_descriptions_used(&issuers);
        let public_url = server.public_url.as_deref();
        let sessions = self.sessions(&file, &mut issuers, &mut routes, first_ordinary, public_url);
        let auth = self.auth(&file.auth, strip_all);
        let store = self.store(&file.store, auth.leeway);
        self.check_cluster_limits(&file, &store);
        let span_export = self.span_export(&file.tracing, server.trace_context);
        Config {
            source: path.to_path_buf(),
            server,
            listeners,
            admin,
            store,
            auth,
            upstreams,
            dns,
            issuers,
            routes,
            span_export,
            sessions,
        }
    }

    /// Refuses two principals of one issuer whose logins are one under
    /// [`login_key`]: a case- or space-insensitive database would make them one.
    fn distinct_logins(&mut self, principals: &[Principal], key: &str) {
        let mut seen = std::collections::HashMap::new();
        for p in principals {
            if let Some(first) = seen.insert(login_key(&p.login), &p.login) {
                self.problem_no_span(
                    key,
                    format!(
                        "{:?} and {:?} differ only in case, spacing or Unicode form: \
                         one login would reach both",
                        first, p.login
                    ),
                );
            }
        }
    }

    fn span_export(&mut self, t: &FileTracing, trace_context: bool) -> Option<SpanExport> {
        let endpoint = t.otlp_endpoint.as_ref()?;
        let key = "tracing.otlp_endpoint";
        match url::Url::parse(endpoint.get_ref()) {
            Ok(url) if !url.username().is_empty() || url.password().is_some() => self.problem(
                endpoint,
                key,
                "credentials in the URL would reach the logs; run a local collector that adds them",
            ),
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => self.problem(
                endpoint,
                key,
                format!(
                    "{:?}: expected an http or https URL, e.g. \"http://127.0.0.1:4318/v1/traces\"",
                    endpoint.get_ref()
                ),
            ),
        }
        if !trace_context {
            self.problem(
                endpoint,
                key,
                "spans need trace ids: server.trace_context is false",
            );
        }
        let service_name = match &t.service_name {
            Some(name) if name.get_ref().is_empty() => {
                self.problem(name, "tracing.service_name", "is empty");
                String::new()
            }
            Some(name) => name.get_ref().clone(),
            None => "portero".to_string(),
        };
        Some(SpanExport {
            endpoint: endpoint.get_ref().clone(),
            service_name,
        })
    }

    fn server(&mut self, s: &FileServer) -> ServerSettings {
        let threads = self.at_least_one(&s.threads, "server.threads", 2);
        let max_body_size = self.size(&s.max_body_size, "server.max_body_size", 1024 * 1024);
        ServerSettings {
            threads,
            grace_period: self.duration(&s.grace_period, "server.grace_period", secs(2)),
            shutdown_timeout: self.duration(
                &s.shutdown_timeout,
                "server.shutdown_timeout",
                secs(3),
            ),
            data_dir: self.resolve(s.data_dir.as_deref().unwrap_or(".portero")),
            max_body_size,
            access_log: s.access_log.unwrap_or(true),
            trace_context: s.trace_context.unwrap_or(true),
            log_format: self.choice(
                &s.log_format,
                "server.log_format",
                [("text", LogFormat::Text), ("json", LogFormat::Json)],
            ),
            limits: self.limits(s),
            trusted_proxies: self.ip_nets(
                s.trusted_proxies.as_deref().unwrap_or_default(),
                "server.trusted_proxies",
            ),
            client_cert_from_proxies: self.client_cert_from_proxies(s),
            ips: self.ip_rules(&s.allow_ips, &s.deny_ips, "server"),
            forward_auth: self.forward_auth(s),
            paths: PathRules {
                merge_slashes: s.merge_slashes.unwrap_or(false),
                allow_encoded_slashes: s.allow_encoded_slashes.unwrap_or(false),
            },
            tunnel_idle_timeout: self.duration(
                &s.tunnel_idle_timeout,
                "server.tunnel_idle_timeout",
                secs(300),
            ),
            public_url: s
                .public_url
                .as_ref()
                .and_then(|u| self.public_url(u, "server.public_url")),
            mtls_public_url: s
                .mtls_public_url
                .as_ref()
                .and_then(|u| self.public_url(u, "server.mtls_public_url")),
        }
    }

    /// `server.public_url`: an http(s) origin, kept without a trailing `/`
    /// (issuer identifiers are built on it).
    fn public_url(&mut self, written: &Spanned<String>, key: &str) -> Option<String> {
        let text = written.get_ref().trim_end_matches('/');
        let problem = match url::Url::parse(text) {
            Err(e) => format!("{text:?} is not a URL: {e}"),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                format!("{text:?}: the scheme must be http or https")
            }
            Ok(u) if u.host().is_none() => format!("{text:?} names no host"),
            Ok(u) if u.path() != "/" || u.query().is_some() || u.fragment().is_some() => format!(
                "{text:?}: only scheme, host and port (portero serves /oauth2/... and \
                 /.well-known/... at its root)"
            ),
            Ok(_) => return Some(text.to_string()),
        };
        self.problem(written, key, problem);
        None
    }

    /// `forward_auth_path` with the `forward_auth_style` it must name.
    fn forward_auth(&mut self, s: &FileServer) -> Option<ForwardAuth> {
        use ForwardAuthStyle::*;
        let style = |c: &mut Self, written| {
            c.choice(
                written,
                "server.forward_auth_style",
                [("nginx", Nginx), ("traefik", Traefik), ("envoy", Envoy)],
            )
        };
        let Some(p) = &s.forward_auth_path else {
            if let Some(written) = &s.forward_auth_style {
                self.problem(
                    written,
                    "server.forward_auth_style",
                    "needs server.forward_auth_path",
                );
            }
            return None;
        };
        let path = p.get_ref().trim_end_matches('/');
        if !path.starts_with('/') {
            self.problem(
                p,
                "server.forward_auth_path",
                "must start with / and name more than the root",
            );
        }
        if s.forward_auth_style.is_none() {
            self.problem(
                p,
                "server.forward_auth_style",
                "missing: name the proxy that asks, \"nginx\", \"traefik\" or \"envoy\" \
                 (each reads only its own headers)",
            );
        }
        Some(ForwardAuth {
            path: path.to_string(),
            style: style(self, &s.forward_auth_style),
        })
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
                .as_ref()
                .map(|_| self.at_least_one(&s.max_connections, "server.max_connections", 1)),
            max_header_size,
            max_connections_per_ip: s.max_connections_per_ip.as_ref().map(|_| {
                self.at_least_one(
                    &s.max_connections_per_ip,
                    "server.max_connections_per_ip",
                    1,
                )
            }),
            max_requests_per_ip: s.max_requests_per_ip.as_ref().map(|_| {
                self.at_least_one(&s.max_requests_per_ip, "server.max_requests_per_ip", 1)
            }),
            request_buffer_size: self.size(
                &s.request_buffer_size,
                "server.request_buffer_size",
                64 * 1024,
            ) as usize,
            min_body_rate: self.size(&s.min_body_rate, "server.min_body_rate", 1024),
            min_body_rate_after: self.duration(
                &s.min_body_rate_after,
                "server.min_body_rate_after",
                secs(10),
            ),
        }
    }

    /// A size such as `"64KiB"`, or `default`.
    fn size(&mut self, v: &Option<Spanned<SizeText>>, key: &str, default: u64) -> u64 {
        let Some(v) = v else {
            return default;
        };
        parse_size(v.get_ref()).unwrap_or_else(|e| {
            self.problem(v, key, e);
            default
        })
    }

    fn at_least_one(&mut self, v: &Option<Spanned<usize>>, key: &str, default: usize) -> usize {
        match v {
            Some(n) if *n.get_ref() == 0 => {
                self.problem(n, key, "must be at least 1");
                default
            }
            Some(n) => *n.get_ref(),
            None => default,
        }
    }

    fn auth(&mut self, a: &FileAuth, injected: Vec<String>) -> AuthSettings {
        let mut strip_exact: Vec<String> = injected;
        let mut strip_prefixes = Vec::new();
        let patterns: Vec<String> = match &a.strip_headers {
            Some(list) => {
                for s in list {
                    if let Some(message) = strip_pattern_problem(s.get_ref()) {
                        self.problem(s, "auth.strip_headers", message);
                    }
                }
                // Names are compared as CGI reads them, `_` as `-`.
                list.iter()
                    .map(|s| s.get_ref().to_ascii_lowercase().replace('_', "-"))
                    .collect()
            }
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
}

/// What is wrong with a `strip_headers` entry, if anything: one header
/// name, or a prefix of one ending in `*`.
fn strip_pattern_problem(text: &str) -> Option<&'static str> {
    let name = text.strip_suffix('*').unwrap_or(text);
    if name.contains('*') {
        Some("a name, or a prefix ending in '*' (e.g. \"x-internal-*\"); '*' matches nowhere else")
    } else if name.is_empty() {
        Some("\"*\" alone would strip every header (Content-Type and Authorization among them)")
    } else if http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err() {
        Some("not a header name: no spaces, commas, ':' or non-ASCII letters, one name a string")
    } else {
        None
    }
}
