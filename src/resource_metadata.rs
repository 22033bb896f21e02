//! OAuth 2.0 Protected Resource Metadata (RFC 9728) for the routes that
//! publish it (`resource_metadata = true`): the documents, served on each
//! route's host at `/.well-known/oauth-protected-resource<path>`, and the
//! `WWW-Authenticate` challenges that point a refused client at them. Both
//! made once per config from the config alone (`config::ProtectedResource`),
//! never from a request: a request only chooses among them.

use std::collections::HashMap;

use bytes::Bytes;
use http::HeaderValue;
use serde_json::{json, Map, Value};

use crate::config::{Policy, ProtectedResource, Route, RouteAction};

/// Every metadata document of a config, by the path it is served at.
#[derive(Default)]
pub struct Documents {
    by_path: HashMap<String, Vec<Document>>,
}

/// One route's document: the host pattern it is served on, and its JSON.
struct Document {
    host: String,
    body: Bytes,
}

impl Documents {
    pub fn new(routes: &[Route]) -> Documents {
        let mut by_path: HashMap<String, Vec<Document>> = HashMap::new();
        for route in routes {
            let Some((policy, resource)) = published(route) else {
                continue;
            };
            by_path
                .entry(resource.document_path.clone())
                .or_default()
                .push(Document {
                    host: route.host.clone(),
                    body: document(resource, policy),
                });
        }
        Documents { by_path }
    }

    /// The document `key` (a path's routing key) names on `host`, if any:
    /// that of the route on the host as the route table ranks hosts (exact,
    /// then the longest `*.` suffix, then `*`). Only a config with
    /// documents looks further than one comparison.
    #[inline]
    pub fn find(&self, host: Option<&HeaderValue>, key: &str) -> Option<&Bytes> {
        if self.by_path.is_empty() || !key.starts_with(ProtectedResource::WELL_KNOWN) {
            return None;
        }
        self.find_on_host(host, key)
    }

    #[cold]
    fn find_on_host(&self, host: Option<&HeaderValue>, key: &str) -> Option<&Bytes> {
        let documents = self.by_path.get(key)?;
        let host = host.and_then(|h| h.to_str().ok()).unwrap_or("");
        let host = crate::routes::host_key(host);
        documents
            .iter()
            .filter_map(|d| Some((rank(&d.host, &host)?, &d.body)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, body)| body)
    }
}

/// How closely a route's host `pattern` names `host`: `None` not at all,
/// else higher for closer (a name over any suffix, a longer suffix over a
/// shorter one, `*` last).
fn rank(pattern: &str, host: &str) -> Option<usize> {
    match pattern.strip_prefix('*') {
        Some("") => Some(0),
        Some(suffix) => {
            (host.ends_with(suffix) && host.len() > suffix.len()).then_some(suffix.len())
        }
        None => (pattern == host).then_some(usize::MAX),
    }
}

/// The route's policy and the metadata it publishes, if it does.
fn published(route: &Route) -> Option<(&Policy, &ProtectedResource)> {
    match &route.action {
        RouteAction::Proxy {
            policy: Some(policy),
            ..
        } => Some((policy, policy.resource.as_deref()?)),
        _ => None,
    }
}

/// The metadata document (RFC 9728 §2): `resource`, `authorization_servers`,
/// `scopes_supported` (the scopes the route requires, when it requires
/// any), `bearer_methods_supported`, and DPoP's: the algorithms a proof
/// may use, and whether only bound tokens are taken.
fn document(resource: &ProtectedResource, policy: &Policy) -> Bytes {
    let scopes = &policy.scopes;
    let mut doc = Map::new();
    doc.insert("resource".into(), json!(resource.resource));
    let servers = json!(resource.authorization_servers);
    doc.insert("authorization_servers".into(), servers);
    if !scopes.is_empty() {
        doc.insert("scopes_supported".into(), json!(scopes));
    }
    let methods = json!(resource.bearer_methods);
    doc.insert("bearer_methods_supported".into(), methods);
    if policy.sender.dpop {
        let algs = json!(policy.sender.algorithms.list());
        doc.insert("dpop_signing_alg_values_supported".into(), algs);
    }
    if policy.sender.required {
        doc.insert("dpop_bound_access_tokens_required".into(), json!(true));
    }
    Value::Object(doc).to_string().into()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;

    pub(crate) fn route(host: &str, path: &str, scopes: &[&str]) -> Route {
        let mut policy = Policy::bearer(1);
        policy.scopes = scopes.iter().map(|s| s.to_string()).collect();
        let path_part = path.trim_end_matches('/');
        policy.resource = Some(Arc::new(ProtectedResource {
            resource: format!("https://api.test{path}"),
            document_path: format!("{}{path_part}", ProtectedResource::WELL_KNOWN),
            document_url: format!(
                "https://api.test{}{path_part}",
                ProtectedResource::WELL_KNOWN
            ),
            authorization_servers: vec!["https://api.test/oauth2/as".into()],
            bearer_methods: vec!["header"],
        }));
        Route {
            name: format!("{host}{path}"),
            host: host.into(),
            path: path.into(),
            methods: vec![],
            action: RouteAction::Proxy {
                upstream: 0,
                strip_prefix: false,
                policy: Some(policy),
                upgrades: vec![],
                underscores_in_headers: false,
                method_override: false,
                forward_client_cert: false,
            },
            cors: None,
            limits: Default::default(),
        }
    }

    fn find<'d>(docs: &'d Documents, host: &str, key: &str) -> Option<&'d Bytes> {
        docs.find(Some(&HeaderValue::from_str(host).unwrap()), key)
    }

    fn resource_of(docs: &Documents, host: &str, key: &str) -> Option<String> {
        let body: Value = serde_json::from_slice(find(docs, host, key)?).unwrap();
        Some(body["resource"].as_str().unwrap().to_string())
    }

    #[test]
    fn a_document_is_found_by_its_exact_path_on_the_routes_host() {
        let mut exact = route("api.test", "/mcp", &[]);
        if let RouteAction::Proxy {
            policy: Some(p), ..
        } = &mut exact.action
        {
            let mut r = (**p.resource.as_ref().unwrap()).clone();
            r.resource = "https://api.test/mcp#exact".into();
            p.resource = Some(Arc::new(r));
        }
        let docs = Documents::new(&[route("*", "/mcp", &[]), exact, route("*.test", "/", &[])]);
        let key = "/.well-known/oauth-protected-resource/mcp";
        let exact = Some("https://api.test/mcp#exact".to_string());
        assert_eq!(resource_of(&docs, "API.test:8443", key), exact);
        assert_eq!(resource_of(&docs, "api.test.", key), exact);
        assert_eq!(
            resource_of(&docs, "other.example", key).as_deref(),
            Some("https://api.test/mcp")
        );
        let root = "/.well-known/oauth-protected-resource";
        assert_eq!(
            resource_of(&docs, "x.test", root).as_deref(),
            Some("https://api.test/")
        );
        assert_eq!(resource_of(&docs, "other.example", root), None);
        for key in [
            "/.well-known/oauth-protected-resource/mcp/",
            "/.well-known/oauth-protected-resource/mcp/x",
            "/.well-known/oauth-protected-resource/mc",
            "/.well-known/oauth-protected-resourcex",
            "/mcp",
        ] {
            assert_eq!(resource_of(&docs, "api.test", key), None, "{key}");
        }
        assert!(find(&Documents::new(&[]), "api.test", key).is_none());
        assert!(
            docs.find(None, key).is_some(),
            "a host of * answers without Host"
        );
    }

    #[test]
    fn the_document_names_what_the_config_says() {
        let docs = Documents::new(&[route("*", "/mcp", &["mcp:read", "mcp:write"])]);
        let body = find(
            &docs,
            "evil.example",
            "/.well-known/oauth-protected-resource/mcp",
        )
        .unwrap();
        let body: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            body,
            json!({
                "resource": "https://api.test/mcp",
                "authorization_servers": ["https://api.test/oauth2/as"],
                "scopes_supported": ["mcp:read", "mcp:write"],
                "bearer_methods_supported": ["header"],
                "dpop_signing_alg_values_supported": crate::dpop::ALGORITHMS,
            })
        );
        let docs = Documents::new(&[route("*", "/mcp", &[])]);
        let body = find(&docs, "x", "/.well-known/oauth-protected-resource/mcp").unwrap();
        let body: Value = serde_json::from_slice(body).unwrap();
        assert!(body.get("scopes_supported").is_none(), "{body}");
    }
}
