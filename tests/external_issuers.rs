//! Issuers run elsewhere: keys from a provider's JWKS (found by OIDC
//! discovery or named directly), fetched off the request path. Rotation
//! without a restart, one refetch per interval however many unknown kids
//! arrive, held keys through an outage and past `jwks_max_stale` only that
//! issuer failing, broken documents keeping the previous keys, and keys
//! that must never verify anything (a published secret, an encryption
//! key, HS256 made with the provider's public key).

use crate::common;

use std::time::{Duration, Instant};

use common::idp::{idp_claims, Idp, IdpKey, Mode};
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

const AUD: &str = "https://orders.example.test";

/// Routes `/` to `up` for tokens of `issuers` with audience `AUD`, the
/// subject and scope injected; `issuer_tables` defines the issuers.
fn config(up: &Upstream, issuer_tables: &str, issuers: &[&str]) -> String {
    let names: Vec<String> = issuers.iter().map(|i| format!("\"{i}\"")).collect();
    format!(
        "{}\n{issuer_tables}\n[[routes]]\npath = \"/\"\nupstream = \"api\"\n\
         issuers = [{}]\naudience = \"{AUD}\"\n\n[routes.headers]\n\
         x-user-sub = \"sub\"\nx-user-scope = \"scope\"\n",
        upstream("api", &[up.addr], "health_check = \"none\""),
        names.join(", ")
    )
}

/// An external issuer table found by discovery, with `extra` keys.
fn discovered(name: &str, idp: &Idp, extra: &str) -> String {
    format!(
        "[issuers.{name}]\ndiscovery_url = \"{}\"\n{extra}\n",
        idp.discovery_url()
    )
}

async fn call(gw: &Gateway, token: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .get(gw.url("/orders"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits (up to 5 s) for a counter to reach at least `min`; its value.
async fn counted(gw: &Gateway, name: &str, labels: &[(&str, &str)], min: f64) -> f64 {
    let start = Instant::now();
    loop {
        let value = gw.metric(name, labels).await;
        if value >= min {
            return value;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{name}{labels:?} is {value}, not yet {min}\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/readyz` in full.
async fn readyz(gw: &Gateway) -> (StatusCode, Value) {
    let r = reqwest::get(gw.admin_url("/readyz")).await.unwrap();
    (r.status(), r.json().await.unwrap())
}

/// Calls until `want` comes back or `limit` passes; how long it took.
async fn until(gw: &Gateway, token: &str, want: StatusCode, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = call(gw, token).await;
        if status == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still {status} after {limit:?}: {body}\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rs256_es256_and_ps256_tokens_from_a_discovered_jwks_are_accepted() {
    let idp = Idp::start("https://idp.example.test/realms/shop").await;
    let rs = IdpKey::rsa("rs-main", Algorithm::RS256);
    let ps = IdpKey::rsa("ps-main", Algorithm::PS256);
    let es = IdpKey::ec("es-main");
    idp.publish(vec![rs.jwk(), ps.jwk(), es.jwk()]);
    let up = Upstream::start("orders").await;
    let gw = Gateway::start(&config(&up, &discovered("shop", &idp, ""), &["shop"])).await;

    for key in [&rs, &ps, &es] {
        let token = key.sign(&idp_claims(&idp.iss, "svc-billing", AUD));
        let (status, body) = call(&gw, &token).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", key.kid);
        assert_eq!(body["headers"]["x-user-sub"], "svc-billing");
        assert_eq!(body["headers"]["x-user-scope"], "orders:read");
    }
    // The provider's tokens still meet the route's rules.
    let other_audience = rs.sign(&idp_claims(&idp.iss, "svc-billing", "https://else"));
    assert_eq!(call(&gw, &other_audience).await.0, StatusCode::UNAUTHORIZED);
    let other_issuer = rs.sign(&idp_claims("https://evil.example", "svc", AUD));
    assert_eq!(call(&gw, &other_issuer).await.0, StatusCode::UNAUTHORIZED);

    let (status, ready) = readyz(&gw).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["external_issuer_keys"]["shop"], 3, "{ready}");
    assert_eq!(
        gw.metric("portero_jwks_keys", &[("issuer", "shop")]).await,
        3.0
    );
}

/// The first fetch may land while the snapshot is being built: every start
/// serves the provider's tokens as soon as it is ready. The provider answers
/// a little later each time, so some fetch lands in that window.
#[tokio::test]
async fn every_start_serves_the_keys_it_reports_ready() {
    let idp = Idp::start("https://idp.example.test").await;
    let key = IdpKey::ec("es-start");
    idp.publish(vec![key.jwk()]);
    let up = Upstream::start("orders").await;
    let config = config(&up, &discovered("shop", &idp, ""), &["shop"]);
    let token = key.sign(&idp_claims(&idp.iss, "svc-billing", AUD));
    for start in 0..24 {
        idp.set_jwks_delay(start);
        let gw = Gateway::start(&config).await;
        let (status, ready) = readyz(&gw).await;
        assert_eq!(status, StatusCode::OK, "start {start}: {ready}");
        let (status, body) = call(&gw, &token).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "start {start}: {body}\n{}",
            gw.log()
        );
    }
}

#[tokio::test]
async fn published_secrets_encryption_keys_and_hs256_with_the_public_key_verify_nothing() {
    let idp = Idp::start("https://idp.example.test").await;
    let rs = IdpKey::rsa("rs-main", Algorithm::RS256);
    let secret = b"a-secret-the-provider-should-never-have-published";
    let oct = json!({"kty": "oct", "kid": "oct-1", "alg": "HS256",
        "k": base64_url(secret)});
    let mut enc = IdpKey::rsa("enc-1", Algorithm::RS256).jwk();
    enc["use"] = json!("enc");
    idp.publish(vec![rs.jwk(), oct, enc]);
    let up = Upstream::start("orders").await;
    let tables = format!(
        "[issuers.shop]\njwks_url = \"{}\"\niss = \"{}\"\n",
        idp.jwks_url(),
        idp.iss
    );
    let gw = Gateway::start(&config(&up, &tables, &["shop"])).await;
    let claims = idp_claims(&idp.iss, "mallory", AUD);
    assert_eq!(call(&gw, &rs.sign(&claims)).await.0, StatusCode::OK);

    // HS256 with the published secret.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("oct-1".into());
    let with_oct =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
    // RS256 with the encryption key's private half.
    let with_enc = rs.sign_as("enc-1", &claims);
    // HS256 keyed with the RSA public key as published (PEM and JWK `n`):
    // the classic algorithm-confusion forgery.
    header.kid = Some("rs-main".into());
    let public_pem = std::fs::read(fixture("rsa_public.pem")).unwrap();
    let n = rs.jwk()["n"].as_str().unwrap().to_string();
    let confused: Vec<String> = [public_pem, n.into_bytes()]
        .iter()
        .map(|k| jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(k)).unwrap())
        .collect();
    for forged in [&with_oct, &with_enc, &confused[0], &confused[1]] {
        let (status, body) = call(&gw, forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_token", "{body}");
    }
    let loaded = gw.log_with("external issuer: keys loaded").await;
    assert!(
        loaded.contains("oct") && loaded.contains("use = enc"),
        "{loaded}"
    );
}

/// A token bound to a key (`cnf`: DPoP's `jkt`, RFC 9449, as Keycloak
/// issues them; a certificate's `x5t#S256`, RFC 8705) proves nothing sent
/// as a bearer token without its proof: whoever holds a copy must not get
/// in with it, through the proxy over HTTP/1.1 or HTTP/2, nor through a
/// forward-auth decision.
#[tokio::test]
async fn a_sender_constrained_token_opens_nothing_as_a_bearer_token() {
    let idp = Idp::start("https://idp.example.test/realms/shop").await;
    let key = IdpKey::rsa("rs-main", Algorithm::RS256);
    idp.publish(vec![key.jwk()]);
    let up = Upstream::start("orders").await;
    let gw = Gateway::start_with_server_settings(
        "forward_auth_path = \"/.portero/auth\"\nforward_auth_style = \"traefik\"",
        &config(&up, &discovered("shop", &idp, ""), &["shop"]),
    )
    .await;
    let unbound = key.sign(&idp_claims(&idp.iss, "svc-billing", AUD));
    assert_eq!(call(&gw, &unbound).await.0, StatusCode::OK);

    // A DPoP-bound token sent as Bearer; a certificate-bound one over a
    // connection without its certificate.
    let bindings = [
        (
            json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
            "sender_constrained",
        ),
        (
            json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
            "wrong_certificate",
        ),
    ];
    let mut refused = Vec::new();
    for (cnf, reason) in bindings {
        let mut claims = idp_claims(&idp.iss, "svc-billing", AUD);
        claims["cnf"] = cnf.clone();
        let bound = key.sign(&claims);

        let r = reqwest::Client::new()
            .get(gw.url("/orders"))
            .bearer_auth(&bound)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{cnf}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{cnf}: {body}");

        let mut h2 = h2_client(gw.port).await;
        let request = http::Request::get(format!("http://gw.test:{}/orders", gw.port))
            .header("authorization", format!("Bearer {bound}"))
            .body(())
            .unwrap();
        let (response, _) = h2.send_request(request, true).unwrap();
        assert_eq!(response.await.unwrap().status(), 401, "{cnf} over HTTP/2");

        let decided = reqwest::Client::new()
            .get(gw.url("/.portero/auth"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", "/orders")
            .bearer_auth(&bound)
            .send()
            .await
            .unwrap();
        assert_eq!(decided.status(), StatusCode::UNAUTHORIZED, "{cnf} decided");

        refused.push(bound);
        let labels = [("result", "deny"), ("reason", reason)];
        assert_eq!(
            gw.wait_metric("portero_auth_decisions_total", &labels, 3.0)
                .await,
            3.0,
            "{cnf}\n{}",
            gw.metrics().await
        );
    }
    assert_eq!(
        up.requests(),
        1,
        "only the unbound token reached the upstream"
    );
    // The access log says why, and holds no token.
    let log = gw.log_with("error=\"sender_constrained\"").await;
    assert!(log.contains("error=\"sender_constrained\""), "{log}");
    for token in [&unbound].into_iter().chain(&refused) {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "{log}");
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_rotated_key_is_taken_within_the_refetch_interval_and_a_removed_one_refused() {
    let idp = Idp::start("https://idp.example.test").await;
    let old = IdpKey::ec("2026-10");
    let new = IdpKey::ec("2026-11");
    idp.publish(vec![old.jwk()]);
    let up = Upstream::start("orders").await;
    // Scheduled refreshes far apart: only unknown kids make it refetch.
    let extra = "jwks_refetch_interval = \"1s\"\njwks_refresh_min = \"1h\"";
    let gw = Gateway::start(&config(&up, &discovered("shop", &idp, extra), &["shop"])).await;
    let claims = idp_claims(&idp.iss, "svc", AUD);
    let old_token = old.sign(&claims);
    assert_eq!(call(&gw, &old_token).await.0, StatusCode::OK);

    // Rotation: the new key is published, then used. Its first token is
    // refused at once; one refetch later it is accepted, with no restart.
    idp.publish(vec![old.jwk(), new.jwk()]);
    let new_token = new.sign(&claims);
    assert_eq!(call(&gw, &new_token).await.0, StatusCode::UNAUTHORIZED);
    let took = until(&gw, &new_token, StatusCode::OK, Duration::from_secs(5)).await;
    assert!(took < Duration::from_millis(2500), "took {took:?}");

    // The old key is withdrawn: refused after the next fetch, even though
    // its token was verified (and cached) before.
    idp.publish(vec![new.jwk()]);
    assert_eq!(
        call(&gw, &old_token).await.0,
        StatusCode::OK,
        "held until then"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let unknown = new.sign_as("2026-12", &claims);
    assert_eq!(call(&gw, &unknown).await.0, StatusCode::UNAUTHORIZED);
    until(
        &gw,
        &old_token,
        StatusCode::UNAUTHORIZED,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(call(&gw, &new_token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_thousand_unknown_kids_cost_the_provider_one_fetch_per_interval() {
    let idp = Idp::start("https://idp.example.test").await;
    let key = IdpKey::ec("real");
    idp.publish(vec![key.jwk()]);
    let up = Upstream::start("orders").await;
    let extra = "jwks_refetch_interval = \"2s\"\njwks_refresh_min = \"1h\"";
    let gw = Gateway::start(&config(&up, &discovered("shop", &idp, extra), &["shop"])).await;
    assert_eq!(idp.jwks_fetches(), 1, "the fetch at start");

    let claims = idp_claims(&idp.iss, "svc", AUD);
    let client = reqwest::Client::new();
    let start = Instant::now();
    for batch in 0..20 {
        let calls = (0..50).map(|i| {
            let token = key.sign_as(&format!("invented-{batch}-{i}"), &claims);
            let request = client.get(gw.url("/orders")).bearer_auth(token).send();
            async move { request.await.unwrap().status() }
        });
        for status in futures_util::future::join_all(calls).await {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    let flood = start.elapsed();
    // Whatever refetch the last of them asked for has had its turn.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let refetches = idp.jwks_fetches() - 1;
    let allowed = (start.elapsed().as_secs_f64() / 2.0).ceil() as usize;
    assert!(
        (1..=allowed).contains(&refetches),
        "{refetches} refetches for 1,000 unknown kids over {flood:?} (at most {allowed})"
    );
}

#[tokio::test]
async fn an_outage_keeps_held_keys_until_max_stale_and_fails_that_issuer_only() {
    let down_idp = Idp::start("https://down.example.test").await;
    let steady_idp = Idp::start("https://steady.example.test").await;
    let (down_key, steady_key) = (IdpKey::ec("d1"), IdpKey::ec("s1"));
    down_idp.publish(vec![down_key.jwk()]);
    steady_idp.publish(vec![steady_key.jwk()]);
    down_idp.set_max_age(1);
    let up = Upstream::start("orders").await;
    let tables = format!(
        "{}{}{}",
        discovered(
            "down",
            &down_idp,
            "jwks_refresh_min = \"1s\"\njwks_refetch_interval = \"1s\"\njwks_max_stale = \"3s\""
        ),
        discovered("steady", &steady_idp, ""),
        issuers()
    );
    let gw = Gateway::start(&config(&up, &tables, &["down", "steady", "test"])).await;
    let down_token = down_key.sign(&idp_claims(&down_idp.iss, "a", AUD));
    let steady_token = steady_key.sign(&idp_claims(&steady_idp.iss, "b", AUD));
    let mut own_claims = claims("c");
    own_claims["aud"] = json!(AUD);
    let own_token = Signer::Hs.sign(&own_claims);
    for t in [&down_token, &steady_token, &own_token] {
        assert_eq!(call(&gw, t).await.0, StatusCode::OK);
    }

    down_idp.set_mode(Mode::Down);
    let outage = Instant::now();
    // Fetches fail (logged, counted); the held keys serve on.
    let failed = [("issuer", "down"), ("result", "bad_status")];
    counted(&gw, "portero_jwks_fetches_total", &failed, 1.0).await;
    assert!(outage.elapsed() < Duration::from_secs(3));
    assert_eq!(call(&gw, &down_token).await.0, StatusCode::OK);
    gw.log_with("external issuer: fetching keys failed").await;

    // Past jwks_max_stale: that issuer's tokens are refused, no one else's.
    until(
        &gw,
        &down_token,
        StatusCode::UNAUTHORIZED,
        Duration::from_secs(6),
    )
    .await;
    assert!(
        outage.elapsed() >= Duration::from_secs(2),
        "{:?}",
        outage.elapsed()
    );
    gw.log_with("keys older than jwks_max_stale dropped").await;
    assert_eq!(
        gw.metric("portero_jwks_keys", &[("issuer", "down")]).await,
        0.0
    );
    assert_eq!(call(&gw, &steady_token).await.0, StatusCode::OK);
    assert_eq!(call(&gw, &own_token).await.0, StatusCode::OK);

    // The provider comes back: its tokens are accepted again.
    down_idp.set_mode(Mode::Serving);
    until(&gw, &down_token, StatusCode::OK, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn broken_documents_keep_the_previous_keys() {
    let idp = Idp::start("https://idp.example.test").await;
    let key = IdpKey::ec("k1");
    idp.publish(vec![key.jwk()]);
    idp.set_max_age(1);
    let up = Upstream::start("orders").await;
    let extra = "jwks_refresh_min = \"1s\"\njwks_refetch_interval = \"1s\"";
    let gw = Gateway::start(&config(&up, &discovered("shop", &idp, extra), &["shop"])).await;
    let token = key.sign(&idp_claims(&idp.iss, "svc", AUD));
    assert_eq!(call(&gw, &token).await.0, StatusCode::OK);

    let invalid = [("issuer", "shop"), ("result", "invalid")];
    let broken = |mode| {
        idp.set_mode(mode);
        async {
            let before = gw.metric("portero_jwks_fetches_total", &invalid).await;
            counted(&gw, "portero_jwks_fetches_total", &invalid, before + 1.0).await;
            assert_eq!(call(&gw, &token).await.0, StatusCode::OK);
        }
    };
    broken(Mode::BrokenJwks).await;
    broken(Mode::BrokenDiscovery).await;
    // An empty key list is as good as a broken one.
    idp.publish(vec![]);
    broken(Mode::Serving).await;
    assert_eq!(
        gw.metric("portero_jwks_keys", &[("issuer", "shop")]).await,
        1.0
    );
}

#[tokio::test]
async fn an_issuer_added_by_reload_holds_readiness_until_its_keys_arrive_over_https() {
    let ca = tls::Ca::new("idp-ca");
    let leaf = ca.leaf("idp", &["localhost"]);
    let idp = Idp::start_tls("https://idp.example.test", &leaf).await;
    let key = IdpKey::rsa("r1", Algorithm::RS256);
    idp.publish(vec![key.jwk()]);
    idp.set_mode(Mode::Down);
    let up = Upstream::start("orders").await;
    let gw = Gateway::start(&config(&up, &issuers(), &["test"])).await;

    // Added by reload while its provider is down: not ready, and saying why.
    let extra = format!(
        "ca_file = \"{}\"\njwks_refetch_interval = \"1s\"\njwks_ready_timeout = \"1m\"",
        ca.cert_file.display()
    );
    let tables = format!("{}{}", issuers(), discovered("shop", &idp, &extra));
    gw.rewrite_config(&config(&up, &tables, &["test", "shop"]));
    let reload = reqwest::Client::new()
        .post(gw.admin_url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), StatusCode::OK);
    let (status, body) = readyz(&gw).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["external_issuer_keys"]["shop"], 0, "{body}");

    idp.set_mode(Mode::Serving);
    assert_eq!(gw.wait_readiness("ready").await.0, 200, "{}", gw.log());
    let token = key.sign(&idp_claims(&idp.iss, "svc", AUD));
    assert_eq!(call(&gw, &token).await.0, StatusCode::OK);
}
