//! Clients that hold no secret: a `kind = "oauth2"` issuer's clients
//! authenticating with signed assertions (RFC 7523 §2.2). One signs its
//! own with a key of its `jwks` (`private_key_jwt`, by authlib, a client
//! no one here wrote), one with a key behind its `jwks_uri`, and a
//! workload presents the token its platform gave it: a Kubernetes-shaped
//! service-account token from a stand-in cluster issuer (`federated`).
//! Each assertion is taken once, on every instance sharing the store.

use crate::common;

use std::process::Command;

use common::idp::{Idp, IdpKey};
use common::*;
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The issuer identifier (the harness's `public_url`) and token endpoint.
const ISSUER: &str = "http://gateway.test/oauth2/ops";
const TOKEN_PATH: &str = "/oauth2/ops/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The stand-in cluster's issuer, and the workload's service account.
const CLUSTER: &str = "https://kubernetes.default.svc.cluster.local";
const WORKLOAD: &str = "system:serviceaccount:jobs:reporter";

/// A JWK as a TOML inline table.
fn toml_jwk(jwk: &Value) -> String {
    let fields: Vec<String> = jwk
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

/// What a test holds: the cluster, the client keys, the config.
struct Setup {
    cluster: Idp,
    cluster_key: IdpKey,
    /// Serves `reporter-uri`'s keys.
    _published: Idp,
    own_key: IdpKey,
    uri_key: IdpKey,
    body: String,
}

async fn setup(store: &str) -> Setup {
    let cluster = Idp::start(CLUSTER).await;
    let cluster_key = IdpKey::ec("cluster-key");
    cluster.publish(vec![cluster_key.jwk()]);
    let own_key = IdpKey::rsa("reporter-key", Algorithm::RS256);
    let uri_key = IdpKey::ec("uri-key");
    let published = Idp::start("https://keys.example").await;
    published.publish(vec![uri_key.jwk()]);
    let secret_hash = portero::credentials::hash_fast("billing-secret-0123456789");
    let body = format!(
        r#"{store}
[upstreams.echo]
builtin = "echo"

[issuers.k8s]
discovery_url = "{discovery}"

[issuers.ops]
kind = "oauth2"
token_ttl = "10m"

[[issuers.ops.clients]]
client_id = "reporter-keys"
jwks = {{ keys = [{own}] }}
roles = ["reporter"]
scopes = ["reports:write"]

[[issuers.ops.clients]]
client_id = "reporter-uri"
jwks_uri = "{jwks_uri}"

[[issuers.ops.clients]]
client_id = "reporter"
federated = [{{ issuer = "k8s", subject = "{WORKLOAD}" }}]
roles = ["reporter"]

[[issuers.ops.clients]]
client_id = "billing"
secret_hash = "{secret_hash}"

[[routes]]
name = "reports"
path = "/reports"
upstream = "echo"
issuers = ["ops"]

[routes.headers]
x-client = "sub"
"#,
        discovery = cluster.discovery_url(),
        own = toml_jwk(&own_key.jwk()),
        jwks_uri = published.jwks_url(),
    );
    Setup {
        cluster,
        cluster_key,
        _published: published,
        own_key,
        uri_key,
        body,
    }
}

/// A service-account token as a cluster projects it for portero
/// (`audience: <issuer identifier>`), with `changes` written over it.
fn service_account_claims(changes: Value) -> Value {
    let now = now();
    let mut claims = json!({
        "iss": CLUSTER,
        "sub": WORKLOAD,
        "aud": [ISSUER],
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": format!("sa-{}", rand_id()),
        "kubernetes.io": {
            "namespace": "jobs",
            "serviceaccount": {"name": "reporter", "uid": "0d4ab7c8-0b3f-4b4c-9d36-1b2a3c4d5e6f"},
            "pod": {"name": "reporter-7c9f", "uid": "5f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"}
        }
    });
    merge(&mut claims, changes);
    claims
}

/// An assertion `client` signs about itself, as OpenID Connect Core §9 says.
fn own_claims(client: &str, changes: Value) -> Value {
    let now = now();
    let mut claims = json!({
        "iss": client,
        "sub": client,
        "aud": format!("{ISSUER}/token"),
        "exp": now + 60,
        "iat": now,
        "jti": rand_id(),
    });
    merge(&mut claims, changes);
    claims
}

fn merge(claims: &mut Value, changes: Value) {
    for (k, v) in changes.as_object().unwrap() {
        match v {
            Value::Null => claims.as_object_mut().unwrap().remove(k),
            v => claims.as_object_mut().unwrap().insert(k.clone(), v.clone()),
        };
    }
}

fn rand_id() -> String {
    use rand::RngCore;
    format!("{:016x}", rand::thread_rng().next_u64())
}

/// `client_credentials` with `assertion`, and `extra` form fields.
async fn token_with(gw: &Gateway, assertion: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    let r = reqwest::Client::new()
        .post(gw.url(TOKEN_PATH))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// The client the token's `sub` names, as the route's upstream is told.
async fn client_seen_upstream(gw: &Gateway, token: &Value) -> String {
    let r = reqwest::Client::new()
        .get(gw.url("/reports"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed: Value = r.json().await.unwrap();
    echoed["headers"]["x-client"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn refused(answer: &(StatusCode, Value), case: &str) {
    assert_eq!(answer.0, 401, "{case}: {}", answer.1);
    assert_eq!(answer.1["error"], "invalid_client", "{case}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_token_is_the_workloads_credential_once_on_every_instance() {
    let Some(url) = common::redis::shared() else {
        return;
    };
    let store = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{}\"\ntimeout = \"300ms\"\n",
        common::shared_store::prefix()
    );
    let s = setup(&store).await;
    let (a, b) = futures_util::join!(Gateway::start(&s.body), Gateway::start(&s.body));
    let assertion = s.cluster_key.sign(&service_account_claims(json!({})));
    let (status, token) = token_with(&a, &assertion, &[]).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(client_seen_upstream(&a, &token).await, "reporter");
    // The same token again, at the other instance and at this one: a replay.
    refused(&token_with(&b, &assertion, &[]).await, "replayed on b");
    refused(&token_with(&a, &assertion, &[]).await, "replayed on a");
    assert!(b
        .log_with("reason=replayed")
        .await
        .contains("client=\"reporter\""));
    // A fresh one from the cluster is taken at b, naming the client too.
    let fresh = s.cluster_key.sign(&service_account_claims(json!({})));
    let (status, token) = token_with(&b, &fresh, &[("client_id", "reporter")]).await;
    assert_eq!(status, 200, "{token}");
    drop(s.cluster);
}

#[tokio::test]
async fn a_client_signs_its_own_assertion_with_its_written_or_published_keys() {
    let s = setup("").await;
    let gw = Gateway::start(&s.body).await;
    let metadata: Value =
        reqwest::get(gw.url("/.well-known/oauth-authorization-server/oauth2/ops"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let methods = &metadata["token_endpoint_auth_methods_supported"];
    assert!(
        methods
            .as_array()
            .unwrap()
            .contains(&json!("private_key_jwt")),
        "{metadata}"
    );
    assert!(metadata["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("RS256")));

    let own = s.own_key.sign(&own_claims("reporter-keys", json!({})));
    let (status, token) = token_with(&gw, &own, &[]).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["scope"], "reports:write");
    assert_eq!(client_seen_upstream(&gw, &token).await, "reporter-keys");
    refused(&token_with(&gw, &own, &[]).await, "the same jti twice");
    // A long assertion (a certificate chain's worth) is read whole.
    let long = own_claims("reporter-keys", json!({"padding": "x".repeat(9000)}));
    let (status, token) = token_with(&gw, &s.own_key.sign(&long), &[]).await;
    assert_eq!(status, 200, "{token}");

    // The issuer identifier alone is an audience too; keys from jwks_uri.
    let claims = own_claims("reporter-uri", json!({"aud": ISSUER}));
    let (status, token) = token_with(&gw, &s.uri_key.sign(&claims), &[]).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(client_seen_upstream(&gw, &token).await, "reporter-uri");
}

#[tokio::test]
async fn assertions_not_made_for_this_issuer_now_are_refused() {
    let s = setup("").await;
    let gw = Gateway::start(&s.body).await;
    let own = |changes: Value| s.own_key.sign(&own_claims("reporter-keys", changes));
    let workload = |changes: Value| s.cluster_key.sign(&service_account_claims(changes));
    let now = now();
    let cases: Vec<(&str, String)> = vec![
        (
            "another audience",
            own(json!({"aud": "https://elsewhere.example/token"})),
        ),
        (
            "an audience beside ours",
            workload(json!({"aud": [ISSUER, "https://vault.example"]})),
        ),
        ("an empty audience list", workload(json!({"aud": []}))),
        ("expired", own(json!({"exp": now - 120}))),
        ("lapsing in two days", own(json!({"exp": now + 2 * 86_400}))),
        ("not yet valid", workload(json!({"nbf": now + 600}))),
        ("issued in the future", own(json!({"iat": now + 600}))),
        ("no jti", own(json!({"jti": null}))),
        ("no exp", own(json!({"exp": null}))),
        (
            "another service account",
            workload(json!({"sub": "system:serviceaccount:jobs:other"})),
        ),
        (
            "the client's key, another client",
            s.own_key.sign(&own_claims("reporter-uri", json!({}))),
        ),
        (
            "the cluster's key as the client's own",
            s.cluster_key.sign(&own_claims("reporter-keys", json!({}))),
        ),
        (
            "a key the client lacks, its kid",
            s.uri_key
                .sign_as("reporter-key", &own_claims("reporter-keys", json!({}))),
        ),
        (
            "signed by the client about the workload",
            s.own_key.sign(&service_account_claims(json!({}))),
        ),
        (
            "a client with a secret",
            s.own_key.sign(&own_claims("billing", json!({}))),
        ),
        (
            "an unknown client",
            s.own_key.sign(&own_claims("nobody", json!({}))),
        ),
        ("not a JWT", "not.a.jwt".to_string()),
        (
            "alg none",
            unsigned(&own_claims("reporter-keys", json!({}))),
        ),
    ];
    for (case, assertion) in &cases {
        refused(&token_with(&gw, assertion, &[]).await, case);
    }
    // HS256 keyed with the client's public key text: the key's own
    // algorithm decides, never the header's.
    let public = s.own_key.jwk()["n"].as_str().unwrap().to_string();
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &own_claims("reporter-keys", json!({})),
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    refused(
        &token_with(&gw, &forged, &[]).await,
        "HS256 with the public key",
    );

    // A good assertion naming another client, or beside a second method.
    let good = own(json!({}));
    refused(
        &token_with(&gw, &good, &[("client_id", "reporter-uri")]).await,
        "client_id differs",
    );
    let (status, answer) = token_with(&gw, &good, &[("client_secret", "x")]).await;
    assert_eq!(
        (status.as_u16(), answer["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let r = reqwest::Client::new()
        .post(gw.url(TOKEN_PATH))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:example:saml"),
            ("client_assertion", good.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // None of them spent the good one's jti, which the log never shows.
    let (status, token) = token_with(&gw, &good, &[]).await;
    assert_eq!(status, 200, "{token}");
    assert!(!gw.log().contains(&good));
    // A client that must use assertions is refused a secret.
    let r = reqwest::Client::new()
        .post(gw.url(TOKEN_PATH))
        .basic_auth("reporter-keys", Some("guess"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let log = gw.log_with("reason=bad_assertion").await;
    assert!(log.contains("client=\"reporter-keys\""), "{log}");
}

/// An assertion with `alg: none` and no signature.
fn unsigned(claims: &Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", part(&json!({"alg": "none"})), part(claims))
}

#[tokio::test]
async fn authlib_signs_private_key_jwt_and_gets_a_token() {
    let installed = Command::new("python3")
        .args(["-c", "import authlib"])
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = (!installed).then(|| "authlib is not installed".to_string());
    if !outside_program(Outside::OAuth2ClientsPython, missing) {
        return;
    }
    let s = setup("").await;
    let gw = Gateway::start(&s.body).await;
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/client_assertions.py"
        ))
        .env("TOKEN_ENDPOINT", gw.url(TOKEN_PATH))
        .env("AUDIENCE", format!("{ISSUER}/token"))
        .env("ROUTE", gw.url("/reports"))
        .env("CLIENT_ID", "reporter-keys")
        .env("KEY_FILE", fixture("rsa_private.pem"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checks: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .collect();
    assert_eq!(
        checks,
        [
            "authlib private_key_jwt client_credentials",
            "the token opens the route as the client",
            "a second assertion, a second token",
        ]
    );
}
