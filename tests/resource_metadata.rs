//! OAuth 2.0 Protected Resource Metadata (RFC 9728) on a protected route,
//! as an MCP client meets it: a `401` whose `WWW-Authenticate` names the
//! metadata, the document at `/.well-known/oauth-protected-resource<path>`
//! naming the authorization server, a `403` naming the scopes to ask for,
//! and tokens held to the resource as their audience (RFC 8707). What
//! `portero check` refuses comes last.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// On the harness's `server.public_url`, `http://gateway.test`.
const RESOURCE: &str = "http://gateway.test/mcp";
const DOCUMENT_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
const DOCUMENT_URL: &str = "http://gateway.test/.well-known/oauth-protected-resource/mcp";
/// The issuer identifier of `agents` (`<public_url>/oauth2/agents`).
const AUTHORIZATION_SERVER: &str = "http://gateway.test/oauth2/agents";

/// `mcp` publishes its metadata; `plain` has the same requirements and
/// does not; `tools` publishes its own on `gateway.test` only.
async fn start() -> (Gateway, Upstream) {
    let up = Upstream::start("mcp").await;
    (Gateway::start(&config(&up)).await, up)
}

fn config(up: &Upstream) -> String {
    format!(
        r#"
[issuers.agents]
dialect = "client-flat"
companies = ["acme"]

[[issuers.agents.keys]]
kid = "hs-1"
alg = "HS256"
secret_env = "TEST_HS_SECRET"

[issuers.agents.oauth2]

{upstream}
[[routes]]
name = "mcp"
path = "/mcp"
upstream = "api"
scopes = ["mcp:read", "mcp:write"]
token_from = ["bearer", "query:access_token", "cookie:session"]
resource_metadata = true

[[routes]]
name = "plain"
path = "/plain"
upstream = "api"
scopes = ["mcp:read", "mcp:write"]

[[routes]]
name = "tools"
host = "gateway.test"
path = "/tools/"
upstream = "api"
resource_metadata = true
"#,
        upstream = upstream("api", &[up.addr], ""),
    )
}

/// A token of `agents` for `aud` (a name, a list, or none: `null`) holding `scope`.
fn token(aud: Value, scope: &str) -> String {
    let mut claims = json!({
        "iss": AUTHORIZATION_SERVER,
        "sub": "agent-7",
        "client_id": "agent-7",
        "scope": scope,
        "iat": now() - 5,
        "exp": now() + 300,
        "jti": format!("jti-{}-{}", scope.len(), now()),
    });
    if !aud.is_null() {
        claims["aud"] = aud;
    }
    // An access token of `agents`' OAuth 2.0 endpoints says so (RFC 9068).
    sign_typed(Signer::Hs, Some(Signer::Hs.kid()), Some("at+jwt"), &claims)
}

async fn get(gw: &Gateway, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(gw.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

fn challenge(r: &reqwest::Response) -> String {
    r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string()
}

/// The header's value in a raw response, as sent.
fn header_in<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn the_document_names_the_resource_its_server_scopes_and_methods() {
    let (gw, up) = start().await;
    let r = get(&gw, DOCUMENT_PATH, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let headers = r.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "max-age=300");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let body: Value = r.json().await.unwrap();
    // A cookie is no RFC 6750 method: the route reads one, and says nothing of it.
    assert_eq!(
        body,
        json!({
            "resource": RESOURCE,
            "authorization_servers": [AUTHORIZATION_SERVER],
            "scopes_supported": ["mcp:read", "mcp:write"],
            "bearer_methods_supported": ["header", "query"],
            // RFC 9728 §2: what DPoP proofs may be signed with.
            "dpop_signing_alg_values_supported":
                ["ES256", "ES384", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
        })
    );
    // As routing reads the path: empty segments and parameters ignored.
    let r = get(&gw, "//.well-known/oauth-protected-resource;x//mcp", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let same: Value = r.json().await.unwrap();
    assert_eq!(same, body);
    // A route at `/tools/` is the resource `/tools`, served on its host only.
    let (status, raw) = raw_http(
        gw.port,
        b"GET /.well-known/oauth-protected-resource/tools HTTP/1.1\r\n\
          Host: gateway.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{raw}");
    let body: Value = serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        body,
        json!({
            "resource": "http://gateway.test/tools",
            "authorization_servers": [AUTHORIZATION_SERVER],
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": portero::dpop::ALGORITHMS,
        })
    );
    assert_eq!(up.requests(), 0, "the gateway answers it itself");
}

#[tokio::test]
async fn the_document_is_read_with_get_only() {
    let (gw, up) = start().await;
    let client = reqwest::Client::new();
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::HEAD,
    ] {
        let r = client
            .request(method.clone(), gw.url(DOCUMENT_PATH))
            .bearer_auth(token(json!(RESOURCE), "mcp:read mcp:write"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(r.headers()["allow"], "GET", "{method}");
    }
    assert_eq!(up.requests(), 0, "never passed to a route");
}

#[tokio::test]
async fn a_path_naming_no_such_route_is_routed_as_ever() {
    let (gw, up) = start().await;
    for path in [
        "/.well-known/oauth-protected-resource/plain",
        "/.well-known/oauth-protected-resource/mcp/",
        "/.well-known/oauth-protected-resource/mcp/x",
        "/.well-known/oauth-protected-resource/Mcp",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resourcex/mcp",
        // `tools` is served on gateway.test, and this is 127.0.0.1.
        "/.well-known/oauth-protected-resource/tools",
    ] {
        let r = get(&gw, path, None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
    }
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn every_401_names_the_metadata_and_the_scopes() {
    let (gw, _up) = start().await;
    let r = get(&gw, "/mcp", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&r),
        format!(
            r#"Bearer realm="portero", scope="mcp:read mcp:write", resource_metadata="{DOCUMENT_URL}""#
        )
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let forged = format!("{}x", token(json!(RESOURCE), "mcp:read mcp:write"));
    let r = get(&gw, "/mcp/tools/list", Some(&forged)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&r),
        format!(
            r#"Bearer realm="portero", error="invalid_token", error_description="bad signature", scope="mcp:read mcp:write", resource_metadata="{DOCUMENT_URL}""#
        )
    );
    assert_eq!(
        gw.metric(
            "portero_auth_decisions_total",
            &[("route", "mcp"), ("reason", "bad_signature")]
        )
        .await,
        1.0
    );
    // A route without the key answers as every route does.
    let r = get(&gw, "/plain", None).await;
    assert_eq!(challenge(&r), r#"Bearer realm="portero""#);
    let r = get(&gw, "/plain", Some(&forged)).await;
    assert_eq!(
        challenge(&r),
        r#"Bearer realm="portero", error="invalid_token", error_description="bad signature""#
    );
}

#[tokio::test]
async fn a_missing_scope_is_403_naming_the_scopes_to_ask_for() {
    let (gw, up) = start().await;
    let r = get(&gw, "/mcp", Some(&token(json!(RESOURCE), "mcp:read"))).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&r),
        format!(
            r#"Bearer realm="portero", error="insufficient_scope", error_description="required scope missing", scope="mcp:read mcp:write", resource_metadata="{DOCUMENT_URL}""#
        )
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    let r = get(&gw, "/plain", Some(&token(Value::Null, "mcp:read"))).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        !challenge(&r).contains("resource_metadata"),
        "{}",
        challenge(&r)
    );
    let r = get(
        &gw,
        "/mcp",
        Some(&token(json!(RESOURCE), "mcp:read mcp:write")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["upstream"], "mcp");
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn the_audience_defaults_to_the_resource() {
    let (gw, up) = start().await;
    let scope = "mcp:read mcp:write";
    for aud in [
        Value::Null,
        json!("http://gateway.test/plain"),
        json!("http://gateway.test/mcp/"),
        json!("http://evil.example/mcp"),
        json!(["mcp", "http://gateway.test"]),
    ] {
        let r = get(&gw, "/mcp", Some(&token(aud.clone(), scope))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{aud:?}");
        let expected = format!(
            r#"Bearer realm="portero", error="invalid_token", error_description="audience not accepted", scope="{scope}", resource_metadata="{DOCUMENT_URL}""#
        );
        assert_eq!(challenge(&r), expected, "{aud:?}");
    }
    assert_eq!(
        gw.metric(
            "portero_auth_decisions_total",
            &[("route", "mcp"), ("reason", "wrong_audience")]
        )
        .await,
        5.0
    );
    assert_eq!(up.requests(), 0);
    // One of several audiences is enough, as everywhere.
    let both = token(json!(["http://gateway.test/plain", RESOURCE]), scope);
    let r = get(&gw, "/mcp", Some(&both)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The route without the key takes a token for any audience, as before.
    let r = get(&gw, "/plain", Some(&token(Value::Null, scope))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_spoofed_host_changes_neither_the_document_nor_the_challenge() {
    let (gw, _up) = start().await;
    let request = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: evil.example:8443\r\nX-Forwarded-Host: evil.example\r\n\
             X-Forwarded-Proto: https\r\nForwarded: host=evil.example;proto=https\r\n\
             Connection: close\r\n\r\n"
        )
    };
    let (status, raw) = raw_http(gw.port, request(DOCUMENT_PATH).as_bytes()).await;
    assert_eq!(status, 200, "{raw}");
    let body: Value = serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["resource"], RESOURCE);
    assert_eq!(body["authorization_servers"], json!([AUTHORIZATION_SERVER]));
    assert!(!raw.contains("evil"), "{raw}");
    let (status, raw) = raw_http(gw.port, request("/mcp").as_bytes()).await;
    assert_eq!(status, 401, "{raw}");
    let www = header_in(&raw, "www-authenticate").unwrap();
    assert!(
        www.ends_with(&format!(r#"resource_metadata="{DOCUMENT_URL}""#)),
        "{www}"
    );
    assert!(!raw.contains("evil"), "{raw}");
    // The document of a route on another host is not had by naming that host's path.
    let (status, _) = raw_http(
        gw.port,
        request("/.well-known/oauth-protected-resource/tools").as_bytes(),
    )
    .await;
    assert_eq!(status, 404);
}

/// A reload that takes the key away takes the document and the challenge
/// with it, and the audience it defaulted to.
#[tokio::test]
async fn a_reload_without_the_key_withdraws_the_document() {
    let (gw, up) = start().await;
    assert_eq!(get(&gw, DOCUMENT_PATH, None).await.status(), StatusCode::OK);
    gw.rewrite_config(&config(&up).replace("resource_metadata = true\n", ""));
    let r = reqwest::Client::new()
        .post(gw.admin_url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        get(&gw, DOCUMENT_PATH, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let r = get(&gw, "/mcp", None).await;
    assert_eq!(challenge(&r), r#"Bearer realm="portero""#);
    let any = token(Value::Null, "mcp:read mcp:write");
    assert_eq!(get(&gw, "/mcp", Some(&any)).await.status(), StatusCode::OK);
}

#[test]
fn check_refuses_metadata_it_could_not_serve_truthfully() {
    let base = |server: &str, route: &str, more: &str| {
        format!(
            "[server]\n{server}\n\n[[listen]]\naddr = \"127.0.0.1:8080\"\n\n\
             [upstreams.echo]\nbuiltin = \"echo\"\n\n\
             [issuers.agents]\ndialect = \"client-flat\"\n\n[issuers.agents.oauth2]\n\n\
             [issuers.partners]\niss = \"partners\"\n\n\
             [[routes]]\npath = \"/mcp\"\nupstream = \"echo\"\n{route}resource_metadata = true\n{more}"
        )
    };
    let url = "public_url = \"https://mcp.example\"";
    let (ok, err) = check(&base(url, "", ""));
    assert!(ok, "{err}");
    let (ok, err) = check(&base(url, "scopes = [\"mcp:read\", \"a/b!\"]\n", ""));
    assert!(ok, "{err}");
    let refused = |config: &str, at: &str, message: &str| {
        let (ok, err) = check(config);
        let line = 1 + config
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("resource_metadata"))
            .nth(at.starts_with("routes[1]") as usize)
            .unwrap()
            .0;
        let want = format!("gateway.toml:{line}: {at}: {message}");
        assert!(!ok && err.contains(&want), "want {want:?} in:\n{err}");
    };
    let key = "routes[0].resource_metadata";
    refused(
        &base(url, "public = true\n", ""),
        key,
        "a public route takes no token: it is no protected resource",
    );
    refused(
        &base("", "", ""),
        key,
        "needs server.public_url: the resource identifier is built on it",
    );
    refused(
        &base(url, "issuers = [\"partners\"]\n", ""),
        key,
        "none of the route's issuers has OAuth 2.0 endpoints",
    );
    refused(
        &base(url, "host = \"api.example\"\n", ""),
        key,
        "the route is served on host \"api.example\", but its resource identifier names \
         server.public_url's host \"mcp.example\"",
    );
    refused(
        &base(url, "scopes = [\"mcp read\"]\n", ""),
        key,
        "scope \"mcp read\" cannot be named in a challenge",
    );
    let spaced = base(url, "", "").replace("path = \"/mcp\"", "path = \"/mcp tools\"");
    refused(
        &spaced,
        key,
        "the route's path \"/mcp tools\" is not a URL path as written",
    );
    let twice = "[[routes]]\npath = \"/mcp/\"\nupstream = \"echo\"\nresource_metadata = true\n";
    refused(
        &base(url, "", &format!("\n{twice}")),
        "routes[1].resource_metadata",
        "routes[0] already publishes the metadata of \"https://mcp.example/mcp\"",
    );
    // False, the key asks nothing of the route.
    let off = base(url, "public = true\n", "");
    let (ok, err) = check(&off.replace("resource_metadata = true", "resource_metadata = false"));
    assert!(ok, "{err}");
}
