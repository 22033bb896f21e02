//! `resource_metadata = true` on a route: the route as an OAuth 2.0
//! protected resource (RFC 9728), its identifier and metadata made here
//! from the config alone.

use std::collections::HashMap;
use std::sync::Arc;

use toml::Spanned;

use super::super::file::FileRoute;
use super::super::model::*;
use super::issuer::host_serves;
use super::Checker;

impl Checker<'_> {
    /// A protected route's metadata, when `resource_metadata = true`:
    /// refused on a public route, without `server.public_url`, without an
    /// accepted issuer with OAuth 2.0 endpoints to name, on a host
    /// `public_url` does not name, and for a path or scope a URL or a
    /// challenge cannot carry as written. The route's `audience`, when not
    /// set, becomes the resource identifier.
    pub(super) fn protected_resource(
        &mut self,
        index: usize,
        r: &FileRoute,
        route: &mut Route,
        issuers: &[Issuer],
        public_url: Option<&str>,
    ) {
        let Some(set) = r.resource_metadata.as_ref().filter(|s| *s.get_ref()) else {
            return;
        };
        let key = format!("routes[{index}].resource_metadata");
        let RouteAction::Proxy {
            policy: Some(policy),
            ..
        } = &mut route.action
        else {
            let message = "a public route takes no token: it is no protected resource";
            return self.problem(set, key, message);
        };
        let Some(public_url) = public_url else {
            let message = "needs server.public_url: the resource identifier is built on it";
            return self.problem(set, key, message);
        };
        let authorization_servers: Vec<String> = issuers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 64 && policy.issuer_mask & (1 << i) != 0)
            .filter_map(|(_, issuer)| Some(issuer.oauth2.as_ref()?.issuer_id.clone()))
            .collect();
        if authorization_servers.is_empty() {
            let message = "none of the route's issuers has OAuth 2.0 endpoints \
                           ([issuers.NAME.oauth2]) to name as its authorization server";
            self.problem(set, &key, message);
        }
        self.resource_host(set, &key, &route.host, public_url);
        let path = route.path.trim_end_matches('/');
        let resource = format!("{public_url}{}", if path.is_empty() { "/" } else { path });
        self.resource_path(set, &key, &resource, path);
        self.scope_tokens(set, &key, &policy.scopes);
        let document_path = format!("{}{path}", ProtectedResource::WELL_KNOWN);
        self.audience_is_resource(set, &key, policy.audience.as_deref(), &resource);
        self.issuers_can_name(set, &key, policy.issuer_mask, issuers);
        policy.audience.get_or_insert_with(|| resource.clone());
        policy.resource = Some(Arc::new(ProtectedResource {
            document_url: format!("{public_url}{document_path}"),
            document_path,
            resource,
            authorization_servers,
            bearer_methods: bearer_methods(&policy.token_from),
        }));
    }

    /// An `audience` written beside `resource_metadata` must be the
    /// resource: a token issued for the resource the document names would
    /// be refused otherwise.
    fn audience_is_resource(
        &mut self,
        at: &Spanned<bool>,
        key: &str,
        audience: Option<&str>,
        resource: &str,
    ) {
        if let Some(audience) = audience.filter(|a| *a != resource) {
            let message = format!(
                "audience {audience:?} is not the resource identifier {resource:?} the metadata names: a token for it would be refused; leave audience out"
            );
            self.problem(at, key, message);
        }
    }

    /// Every issuer the route takes must be able to issue a token for the
    /// resource: a dialect without OAuth 2.0 endpoints and an API-key
    /// issuer never set `aud`. (An identity provider's tokens may.)
    fn issuers_can_name(&mut self, at: &Spanned<bool>, key: &str, mask: u64, issuers: &[Issuer]) {
        for (i, issuer) in issuers.iter().enumerate().take(64) {
            let own = issuer.accounts.is_some() || issuer.kind == IssuerKind::ApiKey;
            if mask & (1 << i) != 0 && own && issuer.oauth2.is_none() {
                let message = format!(
                    "issuer {:?} has no OAuth 2.0 endpoints: its tokens never name this resource (aud); take it off the route, or give it [issuers.{}.oauth2]",
                    issuer.name, issuer.name
                );
                self.problem(at, key, message);
            }
        }
    }

    /// The resource identifier names `server.public_url`'s host: the route
    /// must be served there, or a client that follows the metadata's
    /// `resource` (and its challenges' `resource_metadata`) reaches another.
    fn resource_host(&mut self, at: &Spanned<bool>, key: &str, pattern: &str, public_url: &str) {
        let public_host = url::Url::parse(public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        if !host_serves(pattern, &public_host) {
            let message = format!(
                "the route is served on host {pattern:?}, but its resource identifier names \
                 server.public_url's host {public_host:?}: set server.public_url to an origin \
                 on {pattern:?}, or serve the route there"
            );
            self.problem(at, key, message);
        }
    }

    /// The route's path is a URL's path as written (no character a URL
    /// would escape): the identifier is compared by clients as a string.
    fn resource_path(&mut self, at: &Spanned<bool>, key: &str, resource: &str, path: &str) {
        let written = if path.is_empty() { "/" } else { path };
        let parsed = url::Url::parse(resource).ok();
        if parsed.as_ref().map(url::Url::path) != Some(written) {
            let message = format!(
                "the route's path {written:?} is not a URL path as written (a URL would escape \
                 some of it): the resource identifier must be"
            );
            self.problem(at, key, message);
        }
    }

    /// Each scope can be named in a challenge's `scope` (RFC 6749 §3.3's
    /// scope-token: printable ASCII but space, `"` and `\`).
    fn scope_tokens(&mut self, at: &Spanned<bool>, key: &str, scopes: &[String]) {
        let nqchar = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
        for scope in scopes {
            if scope.is_empty() || !scope.bytes().all(nqchar) {
                let message = format!(
                    "scope {scope:?} cannot be named in a challenge: a scope is printable ASCII \
                     without spaces, '\"' or '\\' (RFC 6749 §3.3)"
                );
                self.problem(at, key, message);
            }
        }
    }

    /// One metadata document per resource: two routes on one host and
    /// path that both publish one would answer for one identifier with
    /// two documents.
    pub(super) fn one_document_each(&mut self, files: &[FileRoute], routes: &[Route]) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (index, (r, route)) in files.iter().zip(routes).enumerate() {
            let (Some(set), Some(resource)) = (&r.resource_metadata, published(route)) else {
                continue;
            };
            // One identifier, one route: on two hosts, a token for it
            // would open both.
            let place = resource.resource.as_str();
            if let Some(first) = seen.insert(place, index) {
                let message = format!(
                    "routes[{first}] already publishes the metadata of {:?}",
                    resource.resource
                );
                self.problem(set, format!("routes[{index}].resource_metadata"), message);
            }
        }
    }
}

/// The metadata a route publishes, if it does.
fn published(route: &Route) -> Option<&ProtectedResource> {
    match &route.action {
        RouteAction::Proxy {
            policy: Some(policy),
            ..
        } => policy.resource.as_deref(),
        _ => None,
    }
}

/// RFC 6750's methods among the route's token sources: `header` for the
/// `Authorization` header, `query` for the `access_token` parameter (§2.3
/// names it; a parameter of another name is no method a client knows). A
/// cookie or another header is none of them.
fn bearer_methods(sources: &[TokenSource]) -> Vec<&'static str> {
    let header = sources
        .iter()
        .any(|s| matches!(s, TokenSource::Bearer | TokenSource::RawAuthorization));
    let query = sources
        .iter()
        .any(|s| matches!(s, TokenSource::Query(name) if name == "access_token"));
    [(header, "header"), (query, "query")]
        .into_iter()
        .filter_map(|(read, method)| read.then_some(method))
        .collect()
}

/// Each protected resource a route publishes is one its OAuth 2.0
/// issuers serve (RFC 8707): tokens may be asked for it by name, and a
/// registered client may hold the scopes it asks for.
pub(super) fn served_resources(issuers: &mut [Issuer], routes: &[Route]) {
    for route in routes {
        let RouteAction::Proxy {
            policy: Some(policy),
            ..
        } = &route.action
        else {
            continue;
        };
        let Some(resource) = &policy.resource else {
            continue;
        };
        for (i, issuer) in issuers.iter_mut().enumerate().take(64) {
            let Some(oauth2) = issuer.oauth2.as_mut() else {
                continue;
            };
            if policy.issuer_mask & (1 << i) == 0 {
                continue;
            }
            if !oauth2.resources.contains(&resource.resource) {
                oauth2.resources.push(resource.resource.clone());
            }
            for scope in &policy.scopes {
                if !oauth2.resource_scopes.contains(scope) {
                    oauth2.resource_scopes.push(scope.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rfc_6750_methods_are_advertised() {
        use TokenSource::*;
        let header = || Header(http::HeaderName::from_static("x-token"));
        let cases: [(Vec<TokenSource>, &[&str]); 6] = [
            (vec![Bearer], &["header"]),
            (vec![RawAuthorization], &["header"]),
            (
                vec![Bearer, Query("access_token".into())],
                &["header", "query"],
            ),
            (vec![Query("token".into())], &[]),
            (vec![Cookie("session".into()), header()], &[]),
            (
                vec![Query("access_token".into()), Cookie("s".into())],
                &["query"],
            ),
        ];
        for (sources, want) in cases {
            assert_eq!(bearer_methods(&sources), want, "{sources:?}");
        }
    }
}
