//! The route table: (host, path, method) → route. Compiled once per config
//! and read without locks; lookups cost one hash probe per path segment,
//! whatever the number of routes.
//!
//! An ordinary route serves its path and every path below it. A token
//! endpoint (legacy or OAuth 2.0) serves its exact path only: the paths
//! below it are ordinary paths, left to whatever ordinary route covers
//! them, so a forward-auth decision never opens an application's routes
//! that happen to sit below a token endpoint's path.

use std::collections::HashMap as StdHashMap;

use http::Method;

use crate::config::{Route, RouteAction};

/// Why a request has no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    NoRoute,
    /// The path is exactly a token endpoint's (this route), which takes
    /// other methods only: a token endpoint's path is its own, never left
    /// to a route beneath.
    Method(usize),
    /// Routes take the path, with other methods only: these, each once,
    /// the longest path's routes first (RFC 9110 §15.5.6 `Allow`).
    Methods(Vec<Method>),
}

/// foldhash, not SipHash: the keys are the configuration's and lookups
/// never insert, so a request's host or path cannot flood a bucket; it
/// only pays for the hash, on every request.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct HostRoutes {
    /// Route path → the routes mounted there, in config order.
    by_path: HashMap<String, Vec<Mounted>>,
}

#[derive(Clone, Copy)]
struct Mounted {
    index: usize,
    /// A token endpoint's: it serves its exact path only.
    exact: bool,
}

pub struct RouteTable {
    routes: Vec<Route>,
    exact: HashMap<String, HostRoutes>,
    /// `*.example.com` routes, keyed by `.example.com`, longest suffix first.
    suffixes: Vec<(String, HostRoutes)>,
    any: HostRoutes,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> RouteTable {
        let mut exact: HashMap<String, HostRoutes> = HashMap::default();
        let mut suffixes: Vec<(String, HostRoutes)> = Vec::new();
        let mut any = HostRoutes::default();
        for (i, r) in routes.iter().enumerate() {
            let table = if r.host == "*" {
                &mut any
            } else if let Some(suffix) = r.host.strip_prefix('*') {
                match suffixes.iter().position(|(s, _)| s == suffix) {
                    Some(p) => &mut suffixes[p].1,
                    None => {
                        suffixes.push((suffix.to_string(), HostRoutes::default()));
                        &mut suffixes.last_mut().expect("just pushed").1
                    }
                }
            } else {
                exact.entry(r.host.clone()).or_default()
            };
            let exact = matches!(r.action, RouteAction::Issue { .. });
            table
                .by_path
                .entry(r.path.clone())
                .or_default()
                .push(Mounted { index: i, exact });
        }
        suffixes.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        RouteTable {
            routes,
            exact,
            suffixes,
            any,
        }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for a request: exact host first, then the longest `*.` suffix,
    /// then `*`; within a host, the longest matching path prefix whose methods
    /// allow the request (a token endpoint's path matches only as a whole).
    /// `path` is normalised (`path::normalize`); empty segments and `;`
    /// parameters do not count here (`path::routing_key`), so `//auth` and
    /// `/auth;x` are the token endpoint at `/auth`, while `/auth/`, `/auth/x`
    /// and `/Auth` are ordinary paths.
    pub fn lookup(&self, host: &str, path: &str, method: &Method) -> Option<(usize, &Route)> {
        self.find(host, path, method).ok()
    }

    /// As [`RouteTable::lookup`], saying why there is no route.
    pub fn find(&self, host: &str, path: &str, method: &Method) -> Result<(usize, &Route), Miss> {
        self.find_key(host, &crate::path::routing_key(path), method)
    }

    /// As [`RouteTable::find`], for a path already made its routing key
    /// (`path::routing_key`), by a caller that compares it too.
    pub fn find_key(
        &self,
        host: &str,
        path: &str,
        method: &Method,
    ) -> Result<(usize, &Route), Miss> {
        let host = strip_port(host);
        let host = host.strip_suffix('.').unwrap_or(host);
        let lowered;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            &lowered
        } else {
            host
        };
        for table in self.tables(host) {
            if let Some(i) = self.lookup_path(table, path, method)? {
                return Ok((i, &self.routes[i]));
            }
        }
        // Off the common path: only a request no route takes gets here.
        match self.methods_at(host, path) {
            methods if methods.is_empty() => Err(Miss::NoRoute),
            methods => Err(Miss::Methods(methods)),
        }
    }

    /// The tables a host (without port or trailing dot, lower case) is
    /// looked up in, in order: its own, its `*.` suffixes, then `*`.
    fn tables<'t>(&'t self, host: &'t str) -> impl Iterator<Item = &'t HostRoutes> {
        self.exact
            .get(host)
            .into_iter()
            .chain(
                self.suffixes
                    .iter()
                    .filter(move |(s, _)| host.ends_with(s.as_str()) && host.len() > s.len())
                    .map(|(_, t)| t),
            )
            .chain(std::iter::once(&self.any))
    }

    /// Every method named by the routes that would take (host, path)
    /// whatever its method, each once.
    fn methods_at(&self, host: &str, path: &str) -> Vec<Method> {
        let mut methods: Vec<Method> = Vec::new();
        for table in self.tables(host) {
            for prefix in prefixes(path) {
                let whole = prefix.len() == path.len();
                let mounted = table.by_path.get(prefix).into_iter().flatten();
                for m in mounted.filter(|m| whole || !m.exact) {
                    for method in &self.routes[m.index].methods {
                        if !methods.contains(method) {
                            methods.push(method.clone());
                        }
                    }
                }
            }
        }
        methods
    }

    fn lookup_path(
        &self,
        table: &HostRoutes,
        path: &str,
        method: &Method,
    ) -> Result<Option<usize>, Miss> {
        if table.by_path.is_empty() {
            return Ok(None);
        }
        for prefix in prefixes(path) {
            let Some(mounted) = table.by_path.get(prefix) else {
                continue;
            };
            // The first prefix is the whole path; a token endpoint is
            // skipped at every other. One comparison per mounted route.
            let whole = prefix.len() == path.len();
            let allows = |m: &&Mounted| {
                let methods = &self.routes[m.index].methods;
                (whole || !m.exact) && (methods.is_empty() || methods.contains(method))
            };
            if let Some(m) = mounted.iter().find(allows) {
                return Ok(Some(m.index));
            }
            if let Some(m) = mounted.iter().find(|m| whole && m.exact) {
                return Err(Miss::Method(m.index));
            }
        }
        Ok(None)
    }
}

/// A request's `Host` as routes are matched by it: without its port or
/// trailing dot, in lower case.
pub fn host_key(host: &str) -> std::borrow::Cow<'_, str> {
    let host = strip_port(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        host.to_ascii_lowercase().into()
    } else {
        host.into()
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Segment-aware prefixes of `path`, longest first: `/a/b` yields `/a/b`,
/// `/a/`, `/a`, `/`. So a route at `/api` serves `/api` and `/api/x`, never `/apix`.
fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    let full = std::iter::once(path);
    let at_slashes = path
        .char_indices()
        .rev()
        .filter(|&(_, c)| c == '/')
        .flat_map(move |(i, _)| {
            let with_slash = &path[..=i];
            let without = (i > 0).then(|| &path[..i]);
            [Some(with_slash), without].into_iter().flatten()
        })
        .filter(move |p| p.len() < path.len());
    full.chain(at_slashes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: &str, path: &str, methods: &[Method]) -> Route {
        Route {
            name: format!("{host}{path}"),
            host: host.into(),
            path: path.into(),
            methods: methods.to_vec(),
            action: crate::config::RouteAction::Proxy {
                upstream: 0,
                strip_prefix: false,
                policy: None,
                upgrades: vec![],
                underscores_in_headers: false,
                method_override: false,
                forward_client_cert: false,
            },
            cors: None,
            limits: Default::default(),
        }
    }

    fn name<'a>(t: &'a RouteTable, host: &str, path: &str, m: Method) -> Option<&'a str> {
        t.lookup(host, path, &m).map(|(_, r)| r.name.as_str())
    }

    #[test]
    fn prefixes_are_segment_aware() {
        let p: Vec<&str> = prefixes("/a/b/c").collect();
        assert_eq!(p, ["/a/b/c", "/a/b/", "/a/b", "/a/", "/a", "/"]);
        let p: Vec<&str> = prefixes("/a/").collect();
        assert_eq!(p, ["/a/", "/a", "/"]);
    }

    #[test]
    fn longest_prefix_host_and_method() {
        let t = RouteTable::new(vec![
            route("*", "/", &[]),
            route("*", "/api", &[]),
            route("*", "/api/admin", &[Method::POST]),
            route("maxpoint.localhost", "/api/auth/token", &[]),
            route("*.example.com", "/", &[]),
        ]);
        assert_eq!(name(&t, "x", "/api/users", Method::GET), Some("*/api"));
        assert_eq!(name(&t, "x", "/apix", Method::GET), Some("*/"));
        assert_eq!(
            name(&t, "x", "/api/admin/x", Method::POST),
            Some("*/api/admin")
        );
        assert_eq!(name(&t, "x", "/api/admin/x", Method::GET), Some("*/api"));
        assert_eq!(
            name(
                &t,
                "MaxPoint.localhost:8080",
                "/api/auth/token",
                Method::POST
            ),
            Some("maxpoint.localhost/api/auth/token")
        );
        assert_eq!(
            name(&t, "maxpoint.localhost", "/other", Method::GET),
            Some("*/")
        );
        assert_eq!(
            name(&t, "a.example.com", "/z", Method::GET),
            Some("*.example.com/")
        );
        assert_eq!(name(&t, "example.com", "/z", Method::GET), Some("*/"));
        // A fully qualified name with its trailing dot is the same host.
        assert_eq!(
            name(&t, "maxpoint.localhost.", "/api/auth/token", Method::POST),
            Some("maxpoint.localhost/api/auth/token")
        );
    }

    #[test]
    fn empty_segments_and_parameters_do_not_escape_a_route() {
        let t = RouteTable::new(vec![route("*", "/", &[]), route("*", "/admin", &[])]);
        for path in ["/admin", "//admin", "/admin;x", "//admin//x", "/admin;x/y"] {
            assert_eq!(name(&t, "x", path, Method::GET), Some("*/admin"), "{path}");
        }
        assert_eq!(name(&t, "x", "/Admin", Method::GET), Some("*/"));
    }

    fn endpoint(path: &str, methods: &[Method]) -> Route {
        Route {
            name: format!("issue:{path}"),
            action: crate::config::RouteAction::Issue {
                issuer: 0,
                endpoint: crate::config::Endpoint::Token,
            },
            ..route("*", path, methods)
        }
    }

    /// A token endpoint serves its exact path (as routing reads it: empty
    /// segments and `;` parameters ignored, case kept); every other path
    /// below it is an ordinary path, and only the exact path is `405`.
    #[test]
    fn token_endpoints_match_their_exact_path_only() {
        let t = RouteTable::new(vec![
            endpoint("/auth", &[Method::POST]),
            endpoint("/oauth2/cf/token", &[Method::GET, Method::POST]),
            route("*", "/", &[]),
        ]);
        let find = |path: &str, m: Method| t.find("x", path, &m).map(|(_, r)| r.name.as_str());
        for path in ["/auth", "//auth", "/auth;x", "/auth//", "/auth;x/"] {
            let want = if path.ends_with('/') {
                Ok("*/")
            } else {
                Ok("issue:/auth")
            };
            assert_eq!(find(path, Method::POST), want, "{path}");
        }
        assert_eq!(find("/auth", Method::GET), Err(Miss::Method(0)));
        assert_eq!(find("//auth;x", Method::GET), Err(Miss::Method(0)));
        for path in ["/auth/", "/auth/x", "/auth/admin/users", "/Auth", "/authx"] {
            assert_eq!(find(path, Method::POST), Ok("*/"), "{path}");
            assert_eq!(find(path, Method::GET), Ok("*/"), "{path}");
        }
        assert_eq!(
            find("/oauth2/cf/token", Method::POST),
            Ok("issue:/oauth2/cf/token")
        );
        assert_eq!(find("/oauth2/cf/token/x", Method::POST), Ok("*/"));
        assert_eq!(find("/oauth2/cf", Method::POST), Ok("*/"));
        // Without a catch-all, a path below a token endpoint has no route.
        let t = RouteTable::new(vec![endpoint("/auth", &[Method::POST])]);
        assert_eq!(
            t.find("x", "/auth/admin/users", &Method::POST).map(|_| ()),
            Err(Miss::NoRoute)
        );
        assert_eq!(
            t.find("x", "/auth/x", &Method::GET).map(|_| ()),
            Err(Miss::NoRoute)
        );
    }

    /// A path whose routes take other methods only is told apart from a
    /// path no route takes, with those methods.
    #[test]
    fn a_path_routed_for_other_methods_names_them() {
        let t = RouteTable::new(vec![
            route("*", "/items", &[Method::GET, Method::HEAD]),
            route("*", "/items/admin", &[Method::DELETE, Method::GET]),
            route("api.example", "/items", &[Method::PUT]),
            endpoint("/items/token", &[Method::POST]),
        ]);
        let find = |host: &str, path: &str, m: Method| t.find(host, path, &m).map(|_| ());
        assert_eq!(
            find("x", "/items/1", Method::POST),
            Err(Miss::Methods(vec![Method::GET, Method::HEAD]))
        );
        assert_eq!(
            find("x", "/items/admin/1", Method::POST),
            Err(Miss::Methods(vec![
                Method::DELETE,
                Method::GET,
                Method::HEAD
            ]))
        );
        assert_eq!(
            find("API.example:8080", "/items", Method::POST),
            Err(Miss::Methods(vec![Method::PUT, Method::GET, Method::HEAD]))
        );
        // A token endpoint's methods count at its exact path only.
        assert_eq!(
            find("x", "/items/token/x", Method::POST),
            Err(Miss::Methods(vec![Method::GET, Method::HEAD]))
        );
        assert_eq!(find("x", "/other", Method::POST), Err(Miss::NoRoute));
    }

    #[test]
    fn no_route_is_none() {
        let t = RouteTable::new(vec![route("*", "/api", &[])]);
        assert_eq!(name(&t, "x", "/other", Method::GET), None);
    }
}
