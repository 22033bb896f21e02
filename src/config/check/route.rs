//! `[[routes]]`, and the routes each token endpoint adds.

use std::sync::Arc;

use toml::Spanned;

use super::super::file::*;
use super::super::model::*;
use super::{names, Checker, RESERVED_HEADERS};
use crate::claim_path::ClaimPath;
use crate::rule::Rule;

impl Checker<'_> {
    pub(super) fn route(
        &mut self,
        index: usize,
        r: &FileRoute,
        upstreams: &[Upstream],
        issuers: &[Issuer],
        cors: &[Arc<CorsPolicy>],
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
                let known = upstreams.iter().map(|u| u.name.as_str());
                let message = names::not_found("upstream", r.upstream.get_ref(), known);
                self.problem(&r.upstream, key("upstream"), message);
                0
            });
        let methods = self.methods(r, &key("methods"));
        let method_override = self.method_override(r, &methods, &key("method_override"));
        let headers = self.injected_headers(r, &key("headers"), strip_all);
        let policy = if r.public {
            if !r.issuers.is_empty()
                || !r.roles.is_empty()
                || !r.scopes.is_empty()
                || !r.claims.is_empty()
                || !headers.is_empty()
                || r.rule.is_some()
            {
                self.problem(
                    &r.path,
                    key("public"),
                    "a public route takes no issuers, roles, scopes, claims, headers or rule",
                );
            }
            self.sender(index, r, None);
            None
        } else {
            Some(self.policy(index, r, issuers, headers))
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
                upgrades: self.upgrades(&r.upgrades, &key("upgrades")),
                underscores_in_headers: r.underscores_in_headers,
                method_override,
                forward_client_cert: r.forward_client_cert.as_ref().is_some_and(|s| *s.get_ref()),
            },
            cors: self.cors_ref(&r.cors, cors, &key("cors")),
            limits: self.route_limits(r.limits(), &format!("routes[{index}]"), !r.public),
        }
    }

    fn methods(&mut self, r: &FileRoute, key: &str) -> Vec<http::Method> {
        let mut methods = Vec::new();
        for m in &r.methods {
            match m.get_ref().to_ascii_uppercase().parse::<http::Method>() {
                Ok(method) => methods.push(method),
                Err(_) => self.problem(m, key, format!("{:?} is not a method", m.get_ref())),
            }
        }
        methods
    }

    /// `method_override`: refused where no override could ever choose
    /// the route (its `methods` are all ones an override may not name).
    fn method_override(&mut self, r: &FileRoute, methods: &[http::Method], key: &str) -> bool {
        let Some(set) = &r.method_override else {
            return false;
        };
        let nameable = |m: &http::Method| *m != http::Method::HEAD && *m != http::Method::CONNECT;
        if *set.get_ref() && !methods.is_empty() && !methods.iter().any(nameable) {
            self.problem(
                set,
                key,
                "no method of the route can be named by an override (HEAD and CONNECT cannot)",
            );
        }
        *set.get_ref()
    }

    /// The claim-to-header injections; every injected name is also stripped
    /// from client requests.
    fn injected_headers(
        &mut self,
        r: &FileRoute,
        key: &str,
        strip_all: &mut Vec<String>,
    ) -> Vec<(http::HeaderName, ClaimPath)> {
        let mut headers = Vec::new();
        for (name, claim) in &r.headers {
            let lower = name.to_ascii_lowercase();
            let header = match http::HeaderName::from_bytes(lower.as_bytes()) {
                Ok(h) if !RESERVED_HEADERS.contains(&lower.as_str()) => h,
                _ => {
                    self.problem(
                        claim,
                        format!("{key}.{name}"),
                        "not a header name portero may set",
                    );
                    continue;
                }
            };
            // Client names are compared with `_` read as `-`.
            strip_all.push(lower.replace('_', "-"));
            match ClaimPath::parse(claim.get_ref()) {
                Ok(path) => headers.push((header, path)),
                Err(e) => self.problem(claim, format!("{key}.{name}"), e),
            }
        }
        headers
    }

    /// A protected route's requirements.
    fn policy(
        &mut self,
        index: usize,
        r: &FileRoute,
        issuers: &[Issuer],
        headers: Vec<(http::HeaderName, ClaimPath)>,
    ) -> Policy {
        let key = |k: &str| format!("routes[{index}].{k}");
        if issuers.is_empty() {
            self.problem(
                &r.path,
                key("public"),
                "a protected route needs at least one [issuers] table",
            );
        }
        if issuers.len() > 64 {
            self.problem_no_span("issuers", "at most 64 issuers are supported");
        }
        let token_from = self.token_sources(&r.token_from, &key("token_from"));
        let issuer_mask = self.issuer_mask(r, issuers, &key("issuers"));
        let introspected: Vec<usize> = (0..issuers.len().min(64))
            .filter(|i| issuer_mask & (1 << i) != 0 && issuers[*i].introspection.is_some())
            .collect();
        if introspected.len() > 1 {
            // Which provider would be asked? Each would see the others' tokens.
            self.problem(
                &r.path,
                key("issuers"),
                "at most one issuer of a route may introspect tokens: name the route's issuers",
            );
        }
        let sender = self.sender(index, r, Some(&token_from));
        Policy {
            introspect: introspected.first().copied(),
            issuer_mask,
            api_key_mask: (0..issuers.len().min(64))
                .filter(|i| issuers[*i].kind == IssuerKind::ApiKey)
                .fold(0, |mask, i| mask | 1 << i)
                & issuer_mask,
            token_from,
            token_use: r.token_use.clone(),
            audience: r.audience.clone(),
            roles: r.roles.clone(),
            roles_from: issuers.iter().map(|i| i.roles_claims.clone()).collect(),
            scopes: r.scopes.clone(),
            claims: self.required_claims(r, &key("claims")),
            headers,
            rule: r.rule.as_ref().and_then(|text| {
                Rule::compile(text.get_ref())
                    .map_err(|e| self.problem(text, key("rule"), e))
                    .ok()
                    .map(Arc::new)
            }),
            forward_token: r.forward_token.unwrap_or(true),
            forward_api_key: r.forward_token == Some(true),
            // `resource_metadata`, once the route is made (`protected_resource`).
            resource: None,
            // `login`, once the issuers' login clients are known (`route_login`).
            login: None,
            sender,
        }
    }

    /// `claims`: each key a claim path, each value what it must be.
    fn required_claims(&mut self, r: &FileRoute, key: &str) -> Vec<(ClaimPath, String)> {
        let mut claims = Vec::new();
        for (name, want) in &r.claims {
            match ClaimPath::parse(name) {
                Ok(path) => claims.push((path, want.get_ref().clone())),
                Err(e) => self.problem(want, format!("{key}.{name:?}"), e),
            }
        }
        claims
    }

    /// `token_from`: one source or a list; none names the `Authorization`
    /// header twice (`bearer` and `authorization` read the same header).
    fn token_sources(&mut self, v: &Option<Spanned<toml::Value>>, key: &str) -> Vec<TokenSource> {
        let Some(v) = v else {
            return vec![TokenSource::Bearer];
        };
        let texts: Vec<Option<&str>> = match v.get_ref() {
            toml::Value::String(s) => vec![Some(s.as_str())],
            toml::Value::Array(list) if !list.is_empty() => {
                list.iter().map(|x| x.as_str()).collect()
            }
            _ => vec![None],
        };
        let mut sources = Vec::new();
        for text in texts {
            let Some(text) = text else {
                self.problem(v, key, "expected a source or a list of sources, e.g. [\"bearer\", \"query:access_token\"]");
                continue;
            };
            match super::parse::token_source(text) {
                Ok(s) if sources.contains(&s) => {
                    self.problem(v, key, format!("{text:?} is listed twice"));
                }
                Ok(s) => sources.push(s),
                Err(e) => self.problem(v, key, e),
            }
        }
        let authorization =
            |s: &TokenSource| matches!(s, TokenSource::Bearer | TokenSource::RawAuthorization);
        if sources.iter().filter(|s| authorization(s)).count() > 1 {
            self.problem(
                v,
                key,
                "\"bearer\" and \"authorization\" both read the Authorization header: list one",
            );
        }
        if sources.is_empty() {
            sources.push(TokenSource::Bearer);
        }
        sources
    }

    /// `upgrades`: the protocols a route tunnels; `websocket` by default,
    /// and the only one portero tunnels: it reads WebSocket frames to end a
    /// tunnel cleanly with its token. `h2c` never: a client would speak
    /// HTTP/2 to the upstream through the tunnel, past every route but this one.
    fn upgrades(&mut self, v: &Option<Vec<Spanned<String>>>, key: &str) -> Vec<String> {
        let Some(list) = v else {
            return vec!["websocket".to_string()];
        };
        let mut out = Vec::new();
        for p in list {
            let name = p.get_ref().trim().to_ascii_lowercase();
            if name == "h2c" || name.starts_with("h2c/") || name.starts_with("http/") {
                self.problem(
                    p,
                    key,
                    format!("{name:?} cannot be tunneled: requests inside it would bypass routing"),
                );
            } else if name != "websocket" {
                self.problem(
                    p,
                    key,
                    format!(
                        "{:?} cannot be tunneled: portero tunnels \"websocket\" only",
                        p.get_ref()
                    ),
                );
            } else {
                out.push(name);
            }
        }
        out
    }

    /// Bit `i` set for each issuer the route accepts; no list means every
    /// token issuer. An `api_key` issuer only where it is named: adding
    /// one must not open the routes that take any valid token to its keys.
    fn issuer_mask(&mut self, r: &FileRoute, issuers: &[Issuer], key: &str) -> u64 {
        if r.issuers.is_empty() {
            return (0..issuers.len().min(64))
                .filter(|i| issuers[*i].kind != IssuerKind::ApiKey)
                .fold(0, |mask, i| mask | 1 << i);
        }
        let mut mask = 0u64;
        for name in &r.issuers {
            match issuers.iter().position(|x| &x.name == name.get_ref()) {
                Some(i) if i < 64 => mask |= 1 << i,
                Some(_) => {}
                None => {
                    let known = issuers.iter().map(|x| x.name.as_str());
                    let message = names::not_found("issuer", name.get_ref(), known);
                    self.problem(name, key, message);
                }
            }
        }
        mask
    }
}

/// One POST route per legacy endpoint, and one per OAuth 2.0 endpoint, each
/// named `issue:<issuer>`. Each serves its exact path only (`routes`): the
/// paths below them are the ordinary routes'.
pub(super) fn token_endpoint_routes(issuers: &[Issuer]) -> Vec<Route> {
    let mut routes = Vec::new();
    for (index, issuer) in issuers.iter().enumerate() {
        let Some(shared) = &issuer.token_routes else {
            continue;
        };
        let mut mounts = Vec::new();
        if let Some(e) = &issuer.legacy {
            mounts.push((e.path.clone(), Endpoint::Token, vec![http::Method::POST]));
            mounts.extend(
                e.refresh_path
                    .iter()
                    .map(|p| (p.clone(), Endpoint::Refresh, vec![http::Method::POST])),
            );
        }
        if issuer.oauth2.is_some() {
            // The endpoints under the issuer identifier's path, and its
            // metadata where RFC 8414 §3.1 inserts the well-known part.
            // Both methods reach `oauth2`, which answers a wrong one in
            // OAuth 2.0's own words.
            let under = format!("/oauth2/{}", issuer.name);
            let both = vec![http::Method::GET, http::Method::POST];
            let paths = OAUTH2_ENDPOINTS
                .iter()
                .map(|end| format!("{under}{end}"))
                .chain([
                    format!("/.well-known/oauth-authorization-server{under}"),
                    format!("/.well-known/openid-configuration{under}"),
                ]);
            mounts.extend(paths.map(|p| (p, Endpoint::OAuth2, both.clone())));
        }
        for (path, endpoint, methods) in mounts {
            routes.push(Route {
                name: format!("issue:{}", issuer.name),
                host: shared.host.clone(),
                path,
                methods,
                action: RouteAction::Issue {
                    issuer: index,
                    endpoint,
                },
                cors: shared.cors.clone(),
                limits: shared.limits.clone(),
            });
        }
    }
    routes
}

impl Checker<'_> {
    /// Two token endpoints on one path of one host: the first mounted
    /// would take every request, and the other's accounts could never log
    /// in there. (On another host, the more specific one takes its own:
    /// the demo's two dialects at `/api/auth/token`.) Named at the legacy
    /// endpoint's path (what can move), else at the later issuer.
    pub(super) fn token_endpoints_apart(
        &mut self,
        file: &FileConfig,
        issuers: &[Issuer],
        routes: &[Route],
    ) {
        for (n, later) in routes.iter().enumerate() {
            let Some(earlier) = routes[..n]
                .iter()
                .find(|r| r.path == later.path && r.host == later.host)
            else {
                continue;
            };
            let (
                &RouteAction::Issue {
                    issuer: a,
                    endpoint: a_end,
                },
                &RouteAction::Issue {
                    issuer: b,
                    endpoint: b_end,
                },
            ) = (&earlier.action, &later.action)
            else {
                continue;
            };
            let blamed = if b_end == Endpoint::OAuth2 && a_end != Endpoint::OAuth2 {
                (a, a_end)
            } else {
                (b, b_end)
            };
            let other = if blamed.0 == a { b } else { a };
            let name = &issuers[blamed.0].name;
            let message = format!(
                "{:?} is also issuer {:?}'s endpoint on this host: only one of them would ever \
                 answer there",
                later.path, issuers[other].name
            );
            // Where the path is written, or what gives it (a dialect's
            // default path, a standard issuer's name).
            let written = match (file.issuers.get(name), blamed.1) {
                (Some(FileIssuer::Dialect(d)), Endpoint::Token) => {
                    d.path.as_ref().or(Some(&d.dialect))
                }
                (Some(FileIssuer::Dialect(d)), Endpoint::Refresh) => {
                    d.refresh_path.as_ref().or(Some(&d.dialect))
                }
                (Some(FileIssuer::Standard(s)), _) => Some(&s.kind),
                _ => None,
            };
            let key = match blamed.1 {
                Endpoint::Refresh => format!("issuers.{name}.refresh_path"),
                Endpoint::Token => format!("issuers.{name}.path"),
                _ => format!("issuers.{name}"),
            };
            match written {
                Some(at) => self.problem(at, key, message),
                None => self.problem_no_span(key, message),
            }
        }
    }
}

/// The OAuth 2.0 endpoints below an issuer identifier's path
/// (docs/oauth2.md); `oauth2::which` tells them apart.
const OAUTH2_ENDPOINTS: [&str; 11] = [
    "/token",
    "/par",
    "/revoke",
    "/introspect",
    "/.well-known/openid-configuration",
    "/authorize",
    "/sign-in",
    "/userinfo",
    "/end_session",
    "/register",
    "/account",
];
