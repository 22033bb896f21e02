//! `[[routes]]` and `[cors.NAME]`: what each route asks of a request and
//! does with it.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::claim_path::ClaimPath;
use crate::dpop::Algorithms;
use crate::rule::Rule;

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub host: String,
    pub path: String,
    pub methods: Vec<http::Method>,
    pub action: RouteAction,
    /// Browsers on these origins may call the route (`[cors.NAME]`).
    pub cors: Option<Arc<CorsPolicy>>,
    pub limits: RouteLimits,
}

impl Route {
    /// Whether the route reads a method-override header (`method_override`).
    pub fn takes_method_override(&self) -> bool {
        matches!(
            self.action,
            RouteAction::Proxy {
                method_override: true,
                ..
            }
        )
    }
}

/// What one route admits: client addresses, a rate, requests in flight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteLimits {
    pub ips: IpRules,
    pub rate: Option<RateLimit>,
    /// Requests of the whole route in flight at once (`503` beyond).
    pub max_in_flight: Option<u32>,
    /// Requests of one key in flight at once (`503` beyond).
    pub concurrency: Option<Concurrency>,
}

impl RouteLimits {
    pub fn is_empty(&self) -> bool {
        *self == RouteLimits::default()
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
    /// Names were configured: every response exposes them. Without,
    /// only a challenge (a `WWW-Authenticate` response) has one to expose.
    pub exposes_configured: bool,
    /// `Access-Control-Max-Age`, in seconds.
    pub max_age_value: Option<HeaderValue>,
}

impl CorsPolicy {
    /// Whether `origin` (as the browser sent it) is one the policy names.
    #[inline]
    pub fn allows_origin(&self, origin: &HeaderValue) -> bool {
        // An exact pattern is compared byte for byte (ASCII case aside): equal
        // bytes are the configured origin's printable ASCII, so no `to_str`.
        let bytes = origin.as_bytes();
        self.origins.iter().any(|pattern| match pattern {
            OriginPattern::Any => origin.to_str().is_ok(),
            // Browsers send it in lower case, as it is configured: the exact
            // comparison is the cheaper one.
            OriginPattern::Exact(exact) => {
                bytes == exact.as_bytes() || bytes.eq_ignore_ascii_case(exact.as_bytes())
            }
            OriginPattern::Subdomains { scheme, suffix } => origin
                .to_str()
                .is_ok_and(|origin| subdomain_of(origin, scheme, suffix).unwrap_or(false)),
        })
    }
}

/// `https://a.b.example.com` under `https://` + `.example.com`: one or more
/// DNS labels before the suffix, and nothing else (no port, no userinfo).
fn subdomain_of(origin: &str, scheme: &str, suffix: &str) -> Option<bool> {
    let rest = origin.get(..scheme.len())?;
    if !rest.eq_ignore_ascii_case(scheme) {
        return Some(false);
    }
    let host = &origin[scheme.len()..];
    let labels = host.len().checked_sub(suffix.len())?;
    if labels == 0 || !host.get(labels..)?.eq_ignore_ascii_case(suffix) {
        return Some(false);
    }
    let labels = &host[..labels];
    Some(
        !labels.starts_with('.')
            && labels
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'),
    )
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
        /// A POST's method-override header (`X-HTTP-Method-Override` and
        /// kin) is read: the route is chosen by the method it names, and
        /// the upstream gets that method without the header. Elsewhere
        /// one is refused with `400`.
        method_override: bool,
        /// `forward_client_cert`: the client's certificate goes upstream
        /// in `Client-Cert` and `Client-Cert-Chain` (RFC 9440).
        forward_client_cert: bool,
    },
    /// Serve an issuer's token endpoint; never forwarded.
    Issue { issuer: usize, endpoint: Endpoint },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Refresh,
    /// The standard OAuth 2.0 endpoints and metadata (`oauth2`).
    OAuth2,
}

/// A protected route's requirements.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Bit `i` set: tokens of issuer `i` are accepted.
    pub issuer_mask: u64,
    /// The bits of `issuer_mask` that are `api_key` issuers.
    pub api_key_mask: u64,
    /// The one accepted issuer whose opaque tokens are introspected.
    pub introspect: Option<usize>,
    /// Where the token may come from; it must come from exactly one.
    pub token_from: Vec<TokenSource>,
    pub token_use: Option<String>,
    pub audience: Option<String>,
    /// Any one of these roles is enough: in the claims `roles_from` names
    /// for the token's issuer.
    pub roles: Vec<String>,
    /// By issuer index: where its tokens carry roles (`roles_claims`);
    /// `None`, or an issuer past its end, reads `role` or `roles`.
    pub roles_from: Arc<[Option<Arc<[ClaimPath]>>]>,
    /// Every one of these scopes (claim `scope`, space separated, or `scp`) is needed.
    pub scopes: Vec<String>,
    /// Claims that must have exactly these values.
    pub claims: Vec<(ClaimPath, String)>,
    /// (header, claim) pairs injected upstream.
    pub headers: Vec<(HeaderName, ClaimPath)>,
    /// A rule the token and request must meet as well (`crate::rule`).
    pub rule: Option<Arc<Rule>>,
    /// A token that admitted the request reaches the upstream (default).
    pub forward_token: bool,
    /// An API key that admitted it does too: only when `forward_token =
    /// true` is set. A key is a long-lived secret the upstream has no use for.
    pub forward_api_key: bool,
    /// `resource_metadata = true`: the RFC 9728 metadata the route publishes.
    pub resource: Option<Arc<ProtectedResource>>,
    /// `login`: a browser session admits the request too.
    pub login: Option<super::RouteLogin>,
    /// What it asks of tokens bound to a key.
    pub sender: Sender,
}

/// What a route asks of tokens bound to a key (`cnf`): DPoP (RFC 9449).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    /// `token_binding = "required"`: a token bound to no key is refused.
    pub required: bool,
    /// `dpop_algs`: what a proof may be signed with.
    pub algorithms: Algorithms,
    /// `dpop_nonce = true`: proofs carry a server nonce (RFC 9449 §9).
    pub nonce: bool,
    /// The route reads `Authorization` (`token_from` has `bearer` or
    /// `authorization`), so a token may come as `DPoP`.
    pub dpop: bool,
}

impl Default for Sender {
    fn default() -> Sender {
        Sender {
            required: false,
            algorithms: Algorithms::ALL,
            nonce: false,
            dpop: true,
        }
    }
}

impl Policy {
    /// Any valid bearer token of the issuers in `issuer_mask`, forwarded as
    /// it came, with no further requirement.
    pub fn bearer(issuer_mask: u64) -> Policy {
        Policy {
            issuer_mask,
            api_key_mask: 0,
            introspect: None,
            token_from: vec![TokenSource::Bearer],
            token_use: None,
            audience: None,
            roles: Vec::new(),
            roles_from: Arc::from([]),
            scopes: Vec::new(),
            claims: Vec::new(),
            headers: Vec::new(),
            rule: None,
            forward_token: true,
            forward_api_key: false,
            resource: None,
            login: None,
            sender: Sender::default(),
        }
    }
}

/// A protected route as an OAuth 2.0 protected resource (RFC 9728): what
/// its metadata document says and where it is, all from the config, never
/// from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedResource {
    /// `<server.public_url><route path>` (no trailing `/` unless the path
    /// is `/`): the resource identifier, and the route's default `audience`.
    pub resource: String,
    /// `/.well-known/oauth-protected-resource<route path>` (RFC 9728 §3.1):
    /// where the document is served, on the route's host.
    pub document_path: String,
    /// `<server.public_url><document_path>`: the challenges' `resource_metadata`.
    pub document_url: String,
    /// The issuer identifiers of the route's issuers with OAuth 2.0 endpoints.
    pub authorization_servers: Vec<String>,
    /// The RFC 6750 methods the route reads a token by (`header`, `query`).
    pub bearer_methods: Vec<&'static str>,
}

impl ProtectedResource {
    /// The path RFC 9728 §3.1 puts a resource's metadata under.
    pub const WELL_KNOWN: &'static str = "/.well-known/oauth-protected-resource";
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
