//! Bearer-token validation through the real gateway: every accepted key type,
//! every rejection reason (with its metric), route requirements, identity
//! headers, and public routes.

use crate::common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn start() -> (Gateway, Upstream) {
    start_with_server_settings("").await
}

async fn start_with_server_settings(server: &str) -> (Gateway, Upstream) {
    let up = Upstream::start("orders").await;
    let config = format!(
        r#"{issuers}
{upstream}
[[routes]]
name = "public"
path = "/public"
upstream = "api"
public = true

[[routes]]
name = "admin"
path = "/admin-area"
upstream = "api"
issuers = ["test"]
roles = ["SUPERUSER"]

[[routes]]
name = "orders"
path = "/orders"
upstream = "api"
issuers = ["test"]
audience = "orders"

[routes.headers]
x-user-id = "sub"
x-user-role = "role"
x-tenants = "tenant"
"#,
        issuers = issuers(),
        upstream = upstream("api", &[up.addr], ""),
    );
    (
        Gateway::start_with_server_settings(server, &config).await,
        up,
    )
}

async fn get(gw: &Gateway, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(gw.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// Asserts a 401 `invalid_token` and that its reason was counted.
async fn assert_rejected(gw: &Gateway, token: &str, reason: &str) {
    let before = gw
        .metric(
            "portero_auth_decisions_total",
            &[("route", "orders"), ("reason", reason)],
        )
        .await;
    let r = get(gw, "/orders/1", Some(token)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "reason {reason}");
    let www = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(www.starts_with("Bearer "), "{www}");
    assert!(www.contains(r#"error="invalid_token""#), "{www}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    let after = gw
        .metric(
            "portero_auth_decisions_total",
            &[("route", "orders"), ("reason", reason)],
        )
        .await;
    assert_eq!(after, before + 1.0, "metric for {reason}");
}

#[tokio::test]
async fn no_token_is_401_without_error_attribute() {
    let (gw, _up) = start().await;
    let r = get(&gw, "/orders", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="portero""#);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(
        gw.metric(
            "portero_auth_decisions_total",
            &[("route", "orders"), ("reason", "missing_token")]
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn every_key_type_is_accepted_and_identity_is_injected() {
    let (gw, _up) = start().await;
    for signer in [Signer::Hs, Signer::Rs, Signer::Es, Signer::Ed] {
        let token = signer.sign(&claims("alice"));
        let r = reqwest::Client::new()
            .get(gw.url("/orders/42?x=1"))
            .bearer_auth(&token)
            // Spoofed identity: must never reach the upstream.
            .header("x-user-id", "mallory")
            .header("X-User-Role", "SUPERUSER")
            .header("x-auth-groups", "wheel")
            .header("x-forwarded-user", "root")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", signer.kid());
        let seen: Value = r.json().await.unwrap();
        let h = &seen["headers"];
        assert_eq!(seen["upstream"], "orders");
        assert_eq!(seen["path"], "/orders/42");
        assert_eq!(seen["query"], "x=1");
        assert_eq!(h["x-user-id"], "alice", "{}: {h}", signer.kid());
        assert_eq!(h["x-user-role"], "ADMIN");
        assert_eq!(h["x-tenants"], "acme,globex");
        assert!(h.get("x-auth-groups").is_none(), "{h}");
        assert!(h.get("x-forwarded-user").is_none(), "{h}");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
    }
    assert_eq!(
        gw.metric(
            "portero_auth_decisions_total",
            &[("route", "orders"), ("result", "allow")]
        )
        .await,
        4.0
    );
}

#[tokio::test]
async fn bad_tokens_are_401_with_their_reason_counted() {
    let (gw, _up) = start().await;
    let good = Signer::Hs.sign(&claims("alice"));

    // Tampered signature: last character of the signature changed.
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_rejected(&gw, &tampered, "bad_signature").await;

    // Tampered payload under the old signature.
    let parts: Vec<&str> = good.split('.').collect();
    let mut forged = claims("alice");
    forged["role"] = json!("SUPERUSER");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged.to_string()),
        parts[2]
    );
    assert_rejected(&gw, &forged, "bad_signature").await;

    // alg=none, naming a real kid.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"hs-1"}"#),
        URL_SAFE_NO_PAD.encode(claims("alice").to_string())
    );
    assert_rejected(&gw, &none, "bad_algorithm").await;

    // HS256 signed with the RSA public key, naming the RSA kid: the classic confusion.
    let public_pem = std::fs::read(fixture("rsa_public.pem")).unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some("rs-1".into());
    let confused = jsonwebtoken::encode(
        &h,
        &claims("alice"),
        &jsonwebtoken::EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    assert_rejected(&gw, &confused, "bad_algorithm").await;

    assert_rejected(
        &gw,
        &sign_with(Signer::Hs, Some("who-knows"), &claims("alice")),
        "unknown_kid",
    )
    .await;

    let mut c = claims("alice");
    c["exp"] = json!(now() - 120);
    assert_rejected(&gw, &Signer::Hs.sign(&c), "expired").await;

    let mut c = claims("alice");
    c["nbf"] = json!(now() + 600);
    assert_rejected(&gw, &Signer::Es.sign(&c), "not_yet_valid").await;

    // Signed by a key of issuer "test" but claiming another issuer.
    let mut c = claims("alice");
    c["iss"] = json!("other-issuer");
    assert_rejected(&gw, &Signer::Hs.sign(&c), "wrong_issuer").await;

    // A good token of an issuer this route does not accept.
    let mut c = claims("alice");
    c["iss"] = json!("other-issuer");
    assert_rejected(
        &gw,
        &sign_with(Signer::Hs, Some("other-1"), &c),
        "wrong_issuer",
    )
    .await;

    let mut c = claims("alice");
    c["aud"] = json!("billing");
    assert_rejected(&gw, &Signer::Rs.sign(&c), "wrong_audience").await;

    assert_rejected(&gw, "not-a-jwt", "malformed").await;

    // A critical header extension portero does not understand (RFC 7515
    // §4.1.11), under a good signature.
    // `crit` at all, even `null`, which a parser may read as absent.
    for header in [
        r#"{"alg":"HS256","kid":"hs-1","crit":["b64"],"b64":false}"#,
        r#"{"alg":"HS256","kid":"hs-1","crit":null}"#,
    ] {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims("alice").to_string())
        );
        let key = jsonwebtoken::EncodingKey::from_secret(HS_SECRET.as_bytes());
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap();
        assert_rejected(&gw, &format!("{message}.{signature}"), "critical_extension").await;
    }
}

/// A claim mapped to an identity header that no header can carry as it
/// is refuses the token: served without that header, the request would
/// reach the upstream as someone without the claim.
#[tokio::test]
async fn a_mapped_claim_no_header_can_carry_refuses_the_token() {
    let (gw, up) = start().await;
    let mut c = claims("alice\r\nx-user-role: SUPERUSER");
    assert_rejected(&gw, &Signer::Hs.sign(&c), "unsafe_claim").await;
    c = claims("alice");
    c["role"] = json!("ADMIN\u{0}");
    assert_rejected(&gw, &Signer::Hs.sign(&c), "unsafe_claim").await;
    // List items are joined with commas: an item holding one is ambiguous.
    c = claims("alice");
    c["tenant"] = json!(["acme,globex", "initech"]);
    assert_rejected(&gw, &Signer::Hs.sign(&c), "unsafe_claim").await;
    assert_eq!(up.requests(), 0);
    // An absent or null claim leaves its header out.
    c = claims("alice");
    c["role"] = json!(null);
    c.as_object_mut().unwrap().remove("tenant");
    let r = get(&gw, "/orders/1", Some(&Signer::Hs.sign(&c))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let seen: Value = r.json().await.unwrap();
    assert!(seen["headers"].get("x-user-role").is_none(), "{seen}");
    assert!(seen["headers"].get("x-tenants").is_none(), "{seen}");
}

#[tokio::test]
async fn revoked_jti_is_refused_on_the_next_request() {
    let (gw, _up) = start().await;
    let c = claims("bob");
    let token = Signer::Ed.sign(&c);
    assert_eq!(
        get(&gw, "/orders", Some(&token)).await.status(),
        StatusCode::OK
    );

    // The admin API wants its own token.
    let r = reqwest::Client::new()
        .post(gw.admin_url("/admin/revocations"))
        .json(&json!({"jti": c["jti"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let r = gw.revoke(json!({"jti": c["jti"]})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_rejected(&gw, &token, "revoked").await;

    // Revoking by token and by subject.
    let c2 = claims("carol");
    let t2 = Signer::Hs.sign(&c2);
    assert_eq!(
        gw.revoke(json!({"token": t2})).await.status(),
        StatusCode::OK
    );
    assert_rejected(&gw, &t2, "revoked").await;

    let t3 = Signer::Es.sign(&claims("dave"));
    assert_eq!(
        get(&gw, "/orders", Some(&t3)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        gw.revoke(json!({"sub": "dave", "issuer": "test"}))
            .await
            .status(),
        StatusCode::OK
    );
    assert_rejected(&gw, &t3, "revoked").await;

    // Garbage revocation requests are refused and change nothing.
    assert_eq!(
        gw.revoke(json!({"colour": "blue"})).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        gw.revoke(json!({"token": "junk"})).await.status(),
        StatusCode::BAD_REQUEST
    );
    let list = gw.revocations().await;
    assert_eq!(list.len(), 3, "{list:?}");
}

#[tokio::test]
async fn missing_role_is_403_insufficient_scope() {
    let (gw, _up) = start().await;
    let r = get(&gw, "/admin-area", Some(&Signer::Hs.sign(&claims("alice")))).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let www = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(www.contains(r#"error="insufficient_scope""#), "{www}");
    assert_eq!(
        gw.metric(
            "portero_auth_decisions_total",
            &[("route", "admin"), ("reason", "missing_role")]
        )
        .await,
        1.0
    );
    let mut c = claims("root");
    c["role"] = json!("SUPERUSER");
    assert_eq!(
        get(&gw, "/admin-area", Some(&Signer::Hs.sign(&c)))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn public_route_needs_no_token_but_still_strips_identity() {
    let (gw, _up) = start().await;
    let r = reqwest::Client::new()
        .get(gw.url("/public/info"))
        .header("x-user-id", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen: Value = r.json().await.unwrap();
    assert!(seen["headers"].get("x-user-id").is_none(), "{seen}");
}

#[tokio::test]
async fn unrouted_path_is_404_json() {
    let (gw, _up) = start().await;
    let r = get(&gw, "/nowhere", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    // One shape for every answer portero writes itself, as its 401s.
    assert_eq!(
        body,
        json!({"error": "not_found", "error_description": "no route"})
    );
}

#[tokio::test]
async fn jwks_publishes_asymmetric_signing_keys_only() {
    let up = Upstream::start("api").await;
    let f = |n: &str| fixture(n).display().to_string();
    let config = format!(
        r#"{issuers}
[issuers.signer]
[[issuers.signer.keys]]
kid = "sig-es"
alg = "ES256"
private_key_file = "{es_private}"
public_key_file = "{es_public}"

[[issuers.signer.keys]]
kid = "sig-rs-old"
alg = "RS256"
private_key_file = "{rs_private}"
public_key_file = "{rs_public}"
verify_only = true

{upstream}
[[routes]]
path = "/"
upstream = "api"
"#,
        issuers = issuers(),
        es_private = f("ec_private.pem"),
        es_public = f("ec_public.pem"),
        rs_private = f("rsa_private.pem"),
        rs_public = f("rsa_public.pem"),
        upstream = upstream("api", &[up.addr], ""),
    );
    let gw = Gateway::start(&config).await;
    let jwks: Value = reqwest::get(gw.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, ["sig-es", "sig-rs-old"], "{jwks}");
    assert!(
        !jwks.to_string().contains("\"oct\""),
        "no shared secret is ever published"
    );
    for k in keys {
        assert!(k.get("d").is_none(), "no private component: {k}");
    }
    // A verifier using only the published key accepts a token signed with the fixture key.
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(keys[0].clone()).unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let token = sign_with(Signer::Es, Some("sig-es"), &claims("alice"));
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["orders"]);
    jsonwebtoken::decode::<Value>(&token, &decoding, &v).unwrap();
}

#[tokio::test]
async fn the_access_log_names_the_path_never_the_query_or_the_token() {
    let (gw, _up) = start().await;
    let token = Signer::Hs.sign(&claims("lena"));
    let r = get(
        &gw,
        "/orders/77?access_token=query-secret-123",
        Some(&token),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let log = gw.log_with("path=\"/orders/77\"").await;
    let line = log
        .lines()
        .find(|l| l.contains("portero::access") && l.contains("path=\"/orders/77\""))
        .unwrap_or_else(|| panic!("no access line:\n{log}"));
    assert!(
        line.contains("status=200") && line.contains("route=\"orders\""),
        "{line}"
    );
    let signature = token.rsplit('.').next().unwrap();
    for secret in ["query-secret-123", &token, signature] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
    // A refused request's line names why, as the metric's reason does.
    let mut expired = claims("lena");
    expired["exp"] = json!(now() - 120);
    let r = get(&gw, "/orders/78", Some(&Signer::Hs.sign(&expired))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(&gw, "/nowhere", None).await.status(), 404);
    let log = gw.log_with("path=\"/nowhere\"").await;
    let line = |path: &str| {
        log.lines()
            .find(|l| l.contains("portero::access") && l.contains(path))
            .unwrap_or_else(|| panic!("no access line for {path}:\n{log}"))
            .to_string()
    };
    assert!(
        line("path=\"/orders/78\"").contains("error=\"expired\""),
        "{log}"
    );
    assert!(
        line("path=\"/nowhere\"").contains("error=\"not_found\""),
        "{log}"
    );
}

#[tokio::test]
async fn the_access_log_can_be_turned_off() {
    let (gw, _up) = start_with_server_settings("access_log = false").await;
    let r = get(&gw, "/orders/78", Some(&Signer::Hs.sign(&claims("lena")))).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A line that is coming would be there well within this.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!gw.log().contains("portero::access"), "{}", gw.log());
}

/// `sub` is a string or absent (RFC 7519 StringOrURI): a number or a list
/// would reach the upstream as a subject no revocation by subject names.
/// An `iat` beyond the leeway is refused: a token "from the future" would
/// outlive a revocation of its subject.
#[tokio::test]
async fn a_subject_that_is_not_a_string_or_a_future_iat_is_refused() {
    let (gw, _up) = start().await;
    for sub in [json!(12345), json!(["victim"]), json!({"id": "victim"})] {
        let mut c = claims("alice");
        c["sub"] = sub;
        assert_rejected(&gw, &Signer::Hs.sign(&c), "malformed").await;
    }
    // So is a `jti` that is not a string: no revocation could name it.
    for jti in [json!(5), json!(5.0), json!(["j-77"])] {
        let mut c = claims("alice");
        c["jti"] = jti;
        assert_rejected(&gw, &Signer::Hs.sign(&c), "malformed").await;
    }
    let mut c = claims("alice");
    c["iat"] = json!(4_070_908_800_i64); // 2099
    assert_rejected(&gw, &Signer::Hs.sign(&c), "issued_in_future").await;
    // Within the leeway (30 s), a clock a little ahead is tolerated.
    let mut c = claims("alice");
    c["iat"] = json!(now() + 10);
    let r = get(&gw, "/orders/1", Some(&Signer::Hs.sign(&c))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// A JWT without `jti` is revoked by the token itself, as an opaque token
/// is: its `sha256:` digest.
#[tokio::test]
async fn a_token_without_jti_can_be_revoked_by_the_token() {
    let (gw, _up) = start().await;
    let mut c = claims("erin");
    c.as_object_mut().unwrap().remove("jti");
    let token = Signer::Es.sign(&c);
    let other = {
        let mut c = claims("erin");
        c.as_object_mut().unwrap().remove("jti");
        c["iat"] = json!(now() - 7);
        Signer::Es.sign(&c)
    };
    assert_eq!(
        get(&gw, "/orders/1", Some(&token)).await.status(),
        StatusCode::OK
    );
    let r = gw.revoke(json!({ "token": token })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let jti = body["revoked"][0]["jti"].as_str().unwrap().to_string();
    assert!(jti.starts_with("sha256:"), "{body}");
    assert_rejected(&gw, &token, "revoked").await;
    // ECDSA's twin signature (s and n - s) verifies the same claims: the
    // twin is revoked with the token, as the digest is of what is signed.
    assert_rejected(&gw, &high_s_twin(&token), "revoked").await;
    // The subject's other tokens are not touched.
    assert_eq!(
        get(&gw, "/orders/1", Some(&other)).await.status(),
        StatusCode::OK
    );
}

/// `token` (ES256) with its signature's `s` replaced by `n - s`, which
/// verifies as well (P-256's order `n`).
fn high_s_twin(token: &str) -> String {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let (message, signature) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let s = &mut sig[32..];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = N[i] as i16 - s[i] as i16 - borrow;
        borrow = i16::from(d < 0);
        s[i] = (d + 256 * borrow) as u8;
    }
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(&sig))
}
