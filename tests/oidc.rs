//! Interop with a real OpenID provider: panva's `oidc-provider` (an
//! OpenID-certified implementation, run by Node.js from tests/oidc) issues
//! JWT access tokens with the client-credentials grant; portero finds its
//! keys by discovery and lets the service in, with the route's audience and
//! scope rules applied to the provider's tokens.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const RESOURCE: &str = "https://orders.example.test";
const CLIENT: &str = "orders-service";
const SECRET: &str = "orders-service-secret-0123456789";

/// The provider, signing access tokens with `alg`; killed when dropped.
struct Provider {
    child: Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PROVIDER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");

/// Node.js and the provider's package, or the test is skipped (fails
/// under `PORTERO_REQUIRE_OIDC=1`).
fn provider_installed() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let package = std::path::Path::new(PROVIDER_DIR).join("node_modules/oidc-provider");
    let missing = match (node, package.exists()) {
        (false, _) => Some("node (Node.js) is not installed".to_string()),
        (true, false) => Some("oidc-provider is not installed".into()),
        (true, true) => None,
    };
    outside_program(Outside::Oidc, missing)
}

impl Provider {
    fn start(alg: &str) -> Provider {
        Provider::start_with_claims(alg, &json!({}))
    }

    /// Its access tokens carry `claims` besides its own.
    fn start_with_claims(alg: &str, claims: &Value) -> Provider {
        Provider::spawn(alg, claims, "jwt")
    }

    /// Its access tokens are opaque: only its introspection endpoint reads them.
    fn start_opaque() -> Provider {
        Provider::spawn("RS256", &json!({}), "opaque")
    }

    fn spawn(alg: &str, claims: &Value, format: &str) -> Provider {
        let dir = PROVIDER_DIR;
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(dir)
            .env("ACCESS_TOKEN_FORMAT", format)
            .env("TOKEN_ALG", alg)
            .env("RESOURCE", RESOURCE)
            .env("EXTRA_CLAIMS", claims.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node (Node.js) runs the provider");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // The provider prints notices later: a closed pipe would end it.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let issuer = line.trim().to_string();
        assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer:?}");
        Provider { child, issuer }
    }

    /// An access token for `scope`, by the client-credentials grant.
    async fn token(&self, scope: &str) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// An access token for `scope` bound to a key of the client's (DPoP,
    /// RFC 9449), asked for by `dpop_token.mjs` with a proof of that key.
    fn dpop_token(&self, scope: &str) -> String {
        let out = Command::new("node")
            .arg("dpop_token.mjs")
            .current_dir(PROVIDER_DIR)
            .env("ISSUER", &self.issuer)
            .env("CLIENT_ID", CLIENT)
            .env("CLIENT_SECRET", SECRET)
            .env("SCOPE", scope)
            .output()
            .expect("node runs the DPoP client");
        let answer: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(answer["status"], 200, "{answer}");
        assert_eq!(answer["body"]["token_type"], "DPoP", "{answer}");
        answer["body"]["access_token"].as_str().unwrap().to_string()
    }
}

fn config(provider: &Provider, up: &Upstream) -> String {
    format!(
        "{}\n[issuers.provider]\ndiscovery_url = \"{}/.well-known/openid-configuration\"\n\n\
         [[routes]]\nname = \"read\"\npath = \"/orders\"\nmethods = [\"GET\"]\nupstream = \"api\"\n\
         issuers = [\"provider\"]\naudience = \"{RESOURCE}\"\nscopes = [\"orders:read\"]\n\n\
         [routes.headers]\nx-client = \"client_id\"\nx-scope = \"scope\"\n\n\
         [[routes]]\nname = \"write\"\npath = \"/orders\"\nmethods = [\"POST\"]\nupstream = \"api\"\n\
         issuers = [\"provider\"]\naudience = \"{RESOURCE}\"\nscopes = [\"orders:write\"]\n\n\
         [[routes]]\nname = \"elsewhere\"\npath = \"/billing\"\nupstream = \"api\"\n\
         issuers = [\"provider\"]\naudience = \"https://billing.example.test\"\n",
        upstream("api", &[up.addr], "health_check = \"none\""),
        provider.issuer
    )
}

#[tokio::test]
async fn access_tokens_from_a_real_openid_provider_are_accepted_by_discovery() {
    if !provider_installed() {
        return;
    }
    let up = Upstream::start("orders").await;
    for alg in ["RS256", "PS256", "ES256"] {
        let provider = Provider::start(alg);
        let gw = Gateway::start(&config(&provider, &up)).await;
        let client = reqwest::Client::new();
        let read_only = provider.token("orders:read").await;

        let r = client
            .get(gw.url("/orders"))
            .bearer_auth(&read_only)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{alg}: {}", gw.log());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["headers"]["x-client"], CLIENT, "{alg}");
        assert_eq!(body["headers"]["x-scope"], "orders:read", "{alg}");

        // The scope it was not granted, and an audience it was not issued for.
        let write = client.post(gw.url("/orders")).bearer_auth(&read_only);
        assert_eq!(write.send().await.unwrap().status(), StatusCode::FORBIDDEN);
        let billing = client.get(gw.url("/billing")).bearer_auth(&read_only);
        assert_eq!(
            billing.send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        // Granted both: both methods pass.
        let read_write = provider.token("orders:read orders:write").await;
        let write = client.post(gw.url("/orders")).bearer_auth(&read_write);
        assert_eq!(
            write.send().await.unwrap().status(),
            StatusCode::OK,
            "{alg}"
        );
        // The provider's token altered by one character of its payload.
        let mut parts: Vec<String> = read_only.split('.').map(str::to_string).collect();
        let flipped = if parts[1].ends_with('A') { 'B' } else { 'A' };
        parts[1].pop();
        parts[1].push(flipped);
        let forged = parts.join(".");
        let r = client.get(gw.url("/orders")).bearer_auth(&forged);
        assert_eq!(r.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
}

/// Keycloak-shaped roles in the provider's own access tokens, found by
/// discovery and checked with its JWKS: a realm role admits, a role of
/// another client does not, and a rule reads the nested claims too.
#[tokio::test]
async fn a_providers_nested_roles_and_a_rule_gate_routes() {
    if !provider_installed() {
        return;
    }
    let up = Upstream::start("orders").await;
    let provider = Provider::start_with_claims(
        "RS256",
        &json!({
            "realm_access": { "roles": ["auditor"] },
            "resource_access": { "billing": { "roles": ["admin"] } },
            "https://example.com/tenant": "acme",
        }),
    );
    let config = format!(
        "{}\n[issuers.provider]\ndiscovery_url = \"{}/.well-known/openid-configuration\"\n\
         roles_claims = [\"realm_access.roles\", 'resource_access.\"orders-api\".roles']\n\n\
         [[routes]]\nname = \"audit\"\npath = \"/audit\"\nupstream = \"api\"\n\
         roles = [\"auditor\"]\n\
         rule = 'claims[\"https://example.com/tenant\"] == \"acme\" && request.method == \"GET\"'\n\
         [routes.headers]\nx-tenant = '\"https://example.com/tenant\"'\n\n\
         [[routes]]\nname = \"admin\"\npath = \"/admin-area\"\nupstream = \"api\"\nroles = [\"admin\"]\n",
        upstream("api", &[up.addr], "health_check = \"none\""),
        provider.issuer
    );
    let gw = Gateway::start(&config).await;
    let token = provider.token("orders:read").await;
    let client = reqwest::Client::new();
    let r = client
        .get(gw.url("/audit/q3"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", gw.log());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["headers"]["x-tenant"], "acme");
    let post = client.post(gw.url("/audit/q3")).bearer_auth(&token);
    assert_eq!(post.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    // `admin` is the billing client's role, not one of the roles_claims.
    let admin = client.get(gw.url("/admin-area")).bearer_auth(&token);
    assert_eq!(admin.send().await.unwrap().status(), StatusCode::FORBIDDEN);
}

/// Routes that take the provider's opaque tokens, read by its
/// introspection endpoint (found by discovery), answers kept `ttl`.
fn introspecting(provider: &Provider, up: &Upstream, extra: &str) -> String {
    format!(
        "{}\n[issuers.provider]\ndiscovery_url = \"{}/.well-known/openid-configuration\"\n\
         client_id = \"portero-gateway\"\nclient_secret_env = \"TEST_INTROSPECTION_SECRET\"\n{extra}\n\n\
         [[routes]]\nname = \"read\"\npath = \"/orders\"\nmethods = [\"GET\"]\nupstream = \"api\"\n\
         issuers = [\"provider\"]\naudience = \"{RESOURCE}\"\nscopes = [\"orders:read\"]\n\n\
         [routes.headers]\nx-client = \"client_id\"\nx-scope = \"scope\"\n\n\
         [[routes]]\nname = \"write\"\npath = \"/orders\"\nmethods = [\"POST\"]\nupstream = \"api\"\n\
         issuers = [\"provider\"]\naudience = \"{RESOURCE}\"\nscopes = [\"orders:write\"]\n",
        upstream("api", &[up.addr], "health_check = \"none\""),
        provider.issuer
    )
}

async fn get_orders(gw: &Gateway, token: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .get(gw.url("/orders"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_introspected_once_and_the_answers_kept() {
    if !provider_installed() {
        return;
    }
    let up = Upstream::start("orders").await;
    let provider = Provider::start_opaque();
    let gw = Gateway::start(&introspecting(&provider, &up, "")).await;
    let token = provider.token("orders:read").await;
    assert_ne!(token.split('.').count(), 3, "an opaque token: {token}");

    let (status, echo) = get_orders(&gw, &token).await;
    assert_eq!(status, StatusCode::OK, "{echo} {}", gw.log());
    assert_eq!(echo["headers"]["x-client"], CLIENT);
    assert_eq!(echo["headers"]["x-scope"], "orders:read");
    // 1,000 requests with one token, eight at a time: one call.
    let client = reqwest::Client::new();
    for _ in 0..125 {
        let batch = (0..8).map(|_| client.get(gw.url("/orders")).bearer_auth(&token).send());
        for r in futures_util::future::join_all(batch).await {
            assert_eq!(r.unwrap().status(), StatusCode::OK);
        }
    }
    let calls = |result: &'static str| {
        let gw = &gw;
        async move {
            gw.metric(
                "portero_introspection_calls_total",
                &[("issuer", "provider"), ("result", result)],
            )
            .await
        }
    };
    assert_eq!(calls("active").await, 1.0, "{}", gw.metrics().await);
    let hits = gw
        .metric(
            "portero_introspection_cache_total",
            &[("issuer", "provider"), ("result", "hit")],
        )
        .await;
    assert_eq!(hits, 1000.0);
    eprintln!(
        "introspection calls for 1,001 requests with one token: {}",
        calls("active").await
    );

    // The route's scope and audience apply to what the provider said.
    let write = client
        .post(gw.url("/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::FORBIDDEN);
    // A token the provider does not know: 401, and asked about once.
    for _ in 0..3 {
        let (status, v) = get_orders(&gw, "not-a-token-the-provider-made").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v} {}", gw.log());
        assert_eq!(v["error_description"], "token not active");
    }
    assert_eq!(calls("inactive").await, 1.0);
    // portero's own API keys are never shown to the provider.
    let key = format!("prt_{}", "k".repeat(43));
    assert_eq!(get_orders(&gw, &key).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(calls("inactive").await + calls("active").await, 2.0);
    // The provider's own client secret is no bearer token, nor is its
    // refresh-less client's token for another resource.
    assert!(!gw.log().contains(&token), "a token reached the log");
}

/// A token the provider bound to its client's key (DPoP: `cnf.jkt` in the
/// JWT, or in the introspection answer about an opaque one) is refused
/// when it comes as a bearer token, with its reason counted: portero
/// checks no DPoP proof, and a stolen copy must not pass.
#[tokio::test]
async fn a_dpop_bound_token_of_a_real_provider_opens_nothing_as_a_bearer_token() {
    if !provider_installed() {
        return;
    }
    let up = Upstream::start("orders").await;
    let denied = [
        ("route", "read"),
        ("result", "deny"),
        ("reason", "sender_constrained"),
    ];
    let jwt_provider = Provider::start("RS256");
    let gw = Gateway::start(&config(&jwt_provider, &up)).await;
    let opaque_provider = Provider::start_opaque();
    let introspecting_gw = Gateway::start(&introspecting(&opaque_provider, &up, "")).await;
    for (provider, gw) in [(&jwt_provider, &gw), (&opaque_provider, &introspecting_gw)] {
        let bearer = provider.token("orders:read").await;
        assert_eq!(get_orders(gw, &bearer).await.0, StatusCode::OK);
        let bound = provider.dpop_token("orders:read");
        let jwt = std::ptr::eq(provider, &jwt_provider);
        assert_eq!(bound.split('.').count() == 3, jwt, "{bound}");
        for _ in 0..2 {
            let (status, v) = get_orders(gw, &bound).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{v} {}", gw.log());
            assert_eq!(v["error"], "invalid_token", "{v}");
        }
        let counted = gw.wait_metric("portero_auth_decisions_total", &denied, 2.0);
        assert_eq!(counted.await, 2.0, "{}", gw.metrics().await);
    }
    assert_eq!(
        up.requests(),
        2,
        "only the bearer tokens reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_down_leaves_kept_tokens_working_and_turns_new_ones_away() {
    if !provider_installed() {
        return;
    }
    let up = Upstream::start("orders").await;
    let provider = Provider::start_opaque();
    let ttl = "introspection_cache_ttl = \"2s\"\nintrospection_timeout = \"500ms\"";
    let gw = Gateway::start(&introspecting(&provider, &up, ttl)).await;
    let strict = Gateway::start(&introspecting(
        &provider,
        &up,
        &format!("{ttl}\nintrospection_on_failure = \"unauthorized\""),
    ))
    .await;
    let (kept, fresh, revoked) = (
        provider.token("orders:read").await,
        provider.token("orders:read").await,
        provider.token("orders:read").await,
    );
    assert_eq!(get_orders(&gw, &kept).await.0, StatusCode::OK);
    assert_eq!(get_orders(&gw, &revoked).await.0, StatusCode::OK);
    // Revoked at the provider: refused once the kept answer lapses.
    let r = reqwest::Client::new()
        .post(format!("{}/token/revocation", provider.issuer))
        .form(&[
            ("token", revoked.as_str()),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let lapsed = poll(
        std::time::Duration::from_secs(5),
        || get_orders(&gw, &revoked),
        |(status, _)| *status == StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(lapsed.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get_orders(&gw, &kept).await.0, StatusCode::OK);

    drop(provider);
    assert_eq!(
        get_orders(&gw, &kept).await.0,
        StatusCode::OK,
        "kept: still works"
    );
    let (status, v) = get_orders(&gw, &fresh).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"], "introspection_unavailable");
    let (status, _) = get_orders(&strict, &fresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        gw.metric(
            "portero_introspection_calls_total",
            &[("issuer", "provider"), ("result", "error")]
        )
        .await
            >= 1.0
    );
}

/// Two gateways sharing one Redis, in front of the provider: `/orders`
/// takes bearer and DPoP-bound tokens, `/vault` bound ones only, with
/// server nonces.
fn dpop_config(provider: &Provider, up: &Upstream, redis: &str, prefix: &str) -> String {
    format!(
        "[store]\nbackend = \"redis\"\nurl = \"{redis}\"\nkey_prefix = \"{prefix}\"\n\n{}\n\
         [[routes]]\nname = \"vault\"\npath = \"/vault\"\nupstream = \"api\"\n\
         issuers = [\"provider\"]\naudience = \"{RESOURCE}\"\n\
         token_binding = \"required\"\ndpop_nonce = true\ndpop_algs = [\"ES256\", \"EdDSA\"]\n",
        config(provider, up)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth4webapi_opens_routes_with_a_providers_dpop_token_and_each_proof_once_on_two_instances(
) {
    if !provider_installed() {
        return;
    }
    let Some(redis) = common::redis::shared() else {
        return;
    };
    let up = Upstream::start("orders").await;
    let provider = Provider::start("ES256");
    let prefix = shared_store::prefix();
    let a = Gateway::start(&dpop_config(&provider, &up, &redis, &prefix)).await;
    let b = Gateway::start(&dpop_config(&provider, &up, &redis, &prefix)).await;
    let out = Command::new("node")
        .arg("dpop_route.mjs")
        .current_dir(PROVIDER_DIR)
        .env("ISSUER", &provider.issuer)
        .env("CLIENT_ID", CLIENT)
        .env("CLIENT_SECRET", SECRET)
        .env("SCOPE", "orders:read")
        .env("A", a.url(""))
        .env("B", b.url(""))
        .output()
        .expect("node runs the DPoP client");
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            a.log(),
            b.log()
        )
    });
    let ok = json!({"first": "ok", "result": 200});
    assert_eq!(seen["token_type"], "dpop", "{seen}");
    assert_eq!(seen["orders_a"], ok, "{seen}\n{}", a.log());
    assert_eq!(seen["orders_b"], ok, "{seen}\n{}", b.log());
    // The route that asks for nonces: refused once with one, then taken.
    let retried = json!({"first": "use_dpop_nonce", "result": 200});
    assert_eq!(seen["vault_a"], retried, "{seen}\n{}", a.log());
    let refused = |name: &str, error: &str| {
        let answer = &seen[name];
        assert_eq!(answer["status"], 401, "{name}: {seen}");
        let challenge = answer["challenge"].as_str().unwrap_or_default();
        assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{name}: {challenge}"
        );
    };
    // One proof, taken once: again on A, and on B (one Redis between them).
    refused("replayed_on_a", "invalid_dpop_proof");
    refused("replayed_on_b", "invalid_dpop_proof");
    // A stolen copy without its key, sent as a bearer token (RFC 9449 §7.2).
    refused("as_bearer", "invalid_token");
    // A proof of another URI.
    refused("vault_proof_at_orders", "invalid_dpop_proof");
    for (gw, route, reason) in [
        (&a, "read", "replayed_proof"),
        (&b, "read", "replayed_proof"),
        (&a, "read", "sender_constrained"),
        (&a, "read", "bad_proof"),
        (&a, "vault", "nonce_required"),
    ] {
        let labels = [("route", route), ("result", "deny"), ("reason", reason)];
        let counted = gw.wait_metric("portero_auth_decisions_total", &labels, 1.0);
        assert!(counted.await >= 1.0, "{reason}: {seen}\n{}", gw.log());
    }
    assert_eq!(
        up.requests(),
        3,
        "only the proven requests reached the upstream"
    );
}
