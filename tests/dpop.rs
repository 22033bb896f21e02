//! DPoP (RFC 9449) against the real gateway, with proofs made here by a
//! key of the test's own: portero's issuer binds what it mints to the key
//! a token request proves, and a route (directly, and as forward auth
//! decides) takes a bound token only with a proof of that key and of the
//! request it came with.

use crate::common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::standard::*;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A client's DPoP key pair.
struct Key {
    jwk: Value,
    signing: EncodingKey,
}

impl Key {
    fn new() -> Key {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let point = secret.public_key().to_encoded_point(false);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        Key {
            jwk: json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
            }),
            signing: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        }
    }

    /// Its RFC 7638 thumbprint.
    fn jkt(&self) -> String {
        let j = &self.jwk;
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            j["x"].as_str().unwrap(),
            j["y"].as_str().unwrap()
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A proof with `header` members over the usual ones and `claims`.
    fn signed(&self, header: Value, claims: Value) -> String {
        let mut h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        for (k, v) in header.as_object().unwrap() {
            h[k] = v.clone();
        }
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.signing, Algorithm::ES256)
                .unwrap();
        format!("{message}.{signature}")
    }

    /// A proof of `method` `url`, for `token` when one goes with it.
    fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        self.signed(json!({}), claims_of(method, url, token))
    }
}

fn claims_of(method: &str, url: &str, token: Option<&str>) -> Value {
    let mut claims = json!({
        "jti": URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        "htm": method,
        "htu": url,
        "iat": chrono::Utc::now().timestamp(),
    });
    if let Some(token) = token {
        claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
    }
    claims
}

/// A token request to `app`'s token endpoint, with `proof` as its `DPoP` header.
async fn token_request(gw: &Gateway, form: &[(&str, &str)], proof: Option<&str>) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/token"))
        .form(form);
    if let Some(proof) = proof {
        r = r.header("dpop", proof);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The confidential client's own token, bound to `key` when it proves one.
async fn service_token(gw: &Gateway, key: Option<&Key>) -> (u16, Value) {
    let endpoint = gw.url("/oauth2/app/token");
    let proof = key.map(|k| k.proof("POST", &endpoint, None));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", SERVICE),
        ("client_secret", SERVICE_SECRET),
    ];
    token_request(gw, &form, proof.as_deref()).await
}

/// `GET path` with these `Authorization` and `DPoP` values: its status and
/// `WWW-Authenticate` values.
async fn get(gw: &Gateway, path: &str, authorization: &str, proofs: &[&str]) -> (u16, String) {
    let mut r = reqwest::Client::new()
        .get(gw.url(path))
        .header("authorization", authorization);
    for proof in proofs {
        r = r.header("dpop", *proof);
    }
    let r = r.send().await.unwrap();
    let challenges: Vec<&str> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    (r.status().as_u16(), challenges.join(" | "))
}

#[tokio::test]
async fn a_route_holds_a_bound_token_to_its_key_and_its_proof_to_the_request() {
    let body = standard_body("");
    let gw = Gateway::start(&body).await;
    let forward_auth = "forward_auth_path = \"/.portero/auth\"\nforward_auth_style = \"traefik\"";
    let public_url = gw.url("");
    gw.rewrite_config_with_server(
        &format!("public_url = \"{public_url}\"\n{forward_auth}"),
        &body,
    );
    gw.reload().await;
    let (key, other) = (Key::new(), Key::new());
    let (status, answer) = service_token(&gw, Some(&key)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_type"], "DPoP", "{answer}");
    let token = answer["access_token"].as_str().unwrap();
    let url = gw.url("/notes");
    let dpop = format!("DPoP {token}");
    let proof = key.proof("GET", &url, Some(token));
    assert_eq!(get(&gw, "/notes", &dpop, &[&proof]).await.0, 200);
    // Once only.
    let (status, challenge) = get(&gw, "/notes", &dpop, &[&proof]).await;
    assert_eq!(status, 401);
    assert!(challenge.contains(r#"DPoP realm="portero", error="invalid_dpop_proof", error_description="DPoP proof replayed""#), "{challenge}");
    // A stolen copy without its key.
    let (status, challenge) = get(&gw, "/notes", &format!("Bearer {token}"), &[&proof]).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("sender-constrained token"),
        "{challenge}"
    );
    let refused = [
        ("another key", other.proof("GET", &url, Some(token))),
        ("another method", key.proof("POST", &url, Some(token))),
        ("another path", key.proof("GET", &gw.url("/other"), Some(token)), ),
        ("another scheme", key.proof("GET", &url.replace("http:", "https:"), Some(token))),
        ("another token", key.proof("GET", &url, Some("another token"))),
        ("no ath", key.proof("GET", &url, None)),
        ("old", key.signed(json!({}), {
            let mut c = claims_of("GET", &url, Some(token));
            c["iat"] = json!(chrono::Utc::now().timestamp() - 120);
            c
        })),
        ("typ JWT", key.signed(json!({"typ": "JWT"}), claims_of("GET", &url, Some(token)))),
        ("a private key", key.signed(
            json!({"jwk": {"d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI", "kty": "EC", "crv": "P-256",
                "x": key.jwk["x"], "y": key.jwk["y"]}}),
            claims_of("GET", &url, Some(token)),
        )),
    ];
    for (what, proof) in refused {
        let (status, challenge) = get(&gw, "/notes", &dpop, &[&proof]).await;
        assert_eq!(status, 401, "{what}");
        assert!(
            challenge.contains("invalid_dpop_proof"),
            "{what}: {challenge}"
        );
    }
    let (a, b) = (
        key.proof("GET", &url, Some(token)),
        key.proof("GET", &url, Some(token)),
    );
    assert_eq!(
        get(&gw, "/notes", &dpop, &[&a, &b]).await.0,
        401,
        "two proofs"
    );
    assert_eq!(get(&gw, "/notes", &dpop, &[]).await.0, 401, "no proof");
    // An unbound token sent as DPoP, with a proof of some key.
    let (_, unbound) = service_token(&gw, None).await;
    let unbound = unbound["access_token"].as_str().unwrap();
    let proof = key.proof("GET", &url, Some(unbound));
    let (status, challenge) = get(&gw, "/notes", &format!("DPoP {unbound}"), &[&proof]).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("token not bound to a key"),
        "{challenge}"
    );
    // Forward auth: the proof of the original request, not of the decision's.
    let original = "http://api.example/notes";
    let decide = |proof: String| {
        reqwest::Client::new()
            .get(gw.url("/.portero/auth"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-host", "api.example")
            .header("x-forwarded-uri", "/notes")
            .header("authorization", &dpop)
            .header("dpop", proof)
            .send()
    };
    let decided = decide(key.proof("GET", original, Some(token)))
        .await
        .unwrap();
    assert_eq!(decided.status(), 200);
    let of_decision = key.proof("GET", &gw.url("/.portero/auth"), Some(token));
    assert_eq!(decide(of_decision).await.unwrap().status(), 401);
    for reason in [
        "replayed_proof",
        "sender_constrained",
        "bad_proof",
        "unbound_token",
    ] {
        let labels = [("route", "default"), ("result", "deny"), ("reason", reason)];
        let counted = gw.metric("portero_auth_decisions_total", &labels).await;
        assert!(counted >= 1.0, "{reason}: {}", gw.metrics().await);
    }
}

/// One instance restarted on its own store: a proof dated ahead (as a
/// client's fast clock dates it) and taken before the restart is not
/// taken after it. The restarted instance asks for a nonce of its own,
/// which no proof made before it started can carry.
#[tokio::test]
async fn a_proof_taken_before_a_restart_is_not_taken_after_it() {
    let body = standard_body("");
    let mut gw = Gateway::start(&body).await;
    let public_url = gw.url("");
    gw.rewrite_config_with_server(&format!("public_url = \"{public_url}\""), &body);
    gw.reload().await;
    let key = Key::new();
    let (status, answer) = service_token(&gw, Some(&key)).await;
    assert_eq!(status, 200, "{answer}");
    let token = answer["access_token"].as_str().unwrap().to_string();
    let (url, dpop) = (gw.url("/notes"), format!("DPoP {token}"));
    let dated = |ahead: i64, nonce: Option<&str>| {
        let mut claims = claims_of("GET", &url, Some(&token));
        claims["iat"] = json!(chrono::Utc::now().timestamp() + ahead);
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        key.signed(json!({}), claims)
    };
    let ahead = dated(10, None);
    assert_eq!(get(&gw, "/notes", &dpop, &[&ahead]).await.0, 200);
    gw.kill9_and_restart().await;
    let refused = reqwest::Client::new()
        .get(&url)
        .header("authorization", &dpop)
        .header("dpop", &ahead)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="use_dpop_nonce""#),
        "{challenge}"
    );
    let nonce = refused.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&gw, "/notes", &dpop, &[&dated(10, None)]).await.0, 401);
    assert_eq!(
        get(&gw, "/notes", &dpop, &[&dated(0, Some(&nonce))])
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn the_issuer_binds_codes_refresh_tokens_and_exchanges_to_the_key() {
    let gw = started_with_public_url(&standard_body("")).await;
    let (key, other) = (Key::new(), Key::new());
    let endpoint = gw.url("/oauth2/app/token");
    let bound_code = |verifier_challenge: &(String, String)| {
        let url = authorize_url(
            &gw,
            &verifier_challenge.1,
            &format!("&dpop_jkt={}", key.jkt()),
        );
        let gw = &gw;
        async move { sign_in_at(gw, &mut Browser::default(), &url).await }
    };
    let redeem_with = |code: String, verifier: String, proof: Option<String>| {
        let gw = &gw;
        async move { token_request(gw, &code_form(&code, &verifier), proof.as_deref()).await }
    };
    // A code bound with dpop_jkt: no proof, or a proof of another key, redeems nothing.
    for proof in [None, Some(other.proof("POST", &endpoint, None))] {
        let pkce = common::standard::pkce();
        let code = bound_code(&pkce).await;
        let (status, answer) = redeem_with(code, pkce.0.clone(), proof).await;
        assert_eq!(
            (status, &answer["error"]),
            (400, &json!("invalid_grant")),
            "{answer}"
        );
    }
    let pkce = common::standard::pkce();
    let code = bound_code(&pkce).await;
    let proof = key.proof("POST", &endpoint, None);
    let (status, answer) = redeem_with(code, pkce.0.clone(), Some(proof)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_type"], "DPoP");
    let refresh_token = answer["refresh_token"].as_str().unwrap().to_string();
    // The public client's refresh token is bound to the key too.
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", APP),
    ];
    for proof in [None, Some(other.proof("POST", &endpoint, None))] {
        let (status, answer) = token_request(&gw, &refresh_form, proof.as_deref()).await;
        assert_eq!(
            (status, &answer["error"]),
            (400, &json!("invalid_grant")),
            "{answer}"
        );
    }
    let proof = key.proof("POST", &endpoint, None);
    let (status, answer) = token_request(&gw, &refresh_form, Some(&proof)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_type"], "DPoP");
    // A family begun unbound is bound from its first proof on (RFC 9449 §5).
    let pkce = common::standard::pkce();
    let code = sign_in_at(
        &gw,
        &mut Browser::default(),
        &authorize_url(&gw, &pkce.1, ""),
    )
    .await;
    let (status, answer) = redeem_with(code, pkce.0.clone(), None).await;
    assert_eq!(
        (status, &answer["token_type"]),
        (200, &json!("Bearer")),
        "{answer}"
    );
    let unbound_refresh = answer["refresh_token"].as_str().unwrap().to_string();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", unbound_refresh.as_str()),
        ("client_id", APP),
    ];
    let proof = key.proof("POST", &endpoint, None);
    let (status, answer) = token_request(&gw, &form, Some(&proof)).await;
    assert_eq!(
        (status, &answer["token_type"]),
        (200, &json!("DPoP")),
        "{answer}"
    );
    let now_bound = answer["refresh_token"].as_str().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", now_bound),
        ("client_id", APP),
    ];
    let (status, answer) = token_request(&gw, &form, None).await;
    assert_eq!(
        (status, &answer["error"]),
        (400, &json!("invalid_grant")),
        "{answer}"
    );
    // The token endpoint in another spelling is the token endpoint: its
    // proof is checked, and what it mints is bound.
    let proof = key.proof("POST", &endpoint, None);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", SERVICE),
        ("client_secret", SERVICE_SECRET),
    ];
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/token;x"))
        .header("dpop", proof)
        .form(&form)
        .send()
        .await
        .unwrap();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["token_type"], "DPoP", "{answer}");
    // A proof of another endpoint is no token request's.
    let (status, answer) =
        service_token_with_proof(&gw, &key.proof("POST", &gw.url("/oauth2/app/revoke"), None))
            .await;
    assert_eq!(
        (status, &answer["error"]),
        (400, &json!("invalid_dpop_proof")),
        "{answer}"
    );
    // A bound subject token is exchanged only with a proof of its key,
    // and what it is exchanged for is bound to that key again.
    let (_, answer) = service_token(&gw, Some(&key)).await;
    let subject = answer["access_token"].as_str().unwrap().to_string();
    let exchange = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("client_id", SERVICE),
        ("client_secret", SERVICE_SECRET),
        ("subject_token", subject.as_str()),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
    ];
    for proof in [None, Some(other.proof("POST", &endpoint, None))] {
        let (status, answer) = token_request(&gw, &exchange, proof.as_deref()).await;
        assert_eq!(
            (status, &answer["error"]),
            (400, &json!("invalid_grant")),
            "{answer}"
        );
    }
    let proof = key.proof("POST", &endpoint, None);
    let (status, answer) = token_request(&gw, &exchange, Some(&proof)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_type"], "DPoP");
    let exchanged = answer["access_token"].as_str().unwrap();
    let payload = exchanged.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["cnf"], json!({"jkt": key.jkt()}), "{claims}");
}

async fn service_token_with_proof(gw: &Gateway, proof: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", SERVICE),
        ("client_secret", SERVICE_SECRET),
    ];
    token_request(gw, &form, Some(proof)).await
}

#[tokio::test]
async fn oauth4webapi_pushes_an_authorization_request_bound_to_its_dpop_key() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");
    let installed = std::path::Path::new(dir)
        .join("node_modules/oauth4webapi")
        .exists();
    let missing = (!installed).then(|| "oauth4webapi is not installed".to_string());
    if !outside_program(Outside::OAuth2ClientsJs, missing) {
        return;
    }
    let gw = started_with_public_url(&standard_body("")).await;
    let mut node = Command::new("node")
        .arg("par_dpop.mjs")
        .current_dir(dir)
        .env("PORTERO_URL", gw.url(""))
        .env("CLIENT_ID", APP)
        .env("REDIRECT_URI", CALLBACK)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(node.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let pushed: Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}\n{}", gw.log()));
    assert_eq!(pushed["endpoint"], gw.url("/oauth2/app/par"), "{pushed}");
    assert_eq!(pushed["expires_in"], 60);
    let request_uri = pushed["request_uri"].as_str().unwrap();
    assert!(
        request_uri.starts_with("urn:ietf:params:oauth:request_uri:"),
        "{request_uri}"
    );
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let authorize = gw.url(&format!(
        "/oauth2/app/authorize?client_id={APP}&request_uri={}",
        enc(request_uri)
    ));
    // The page, and the code it gives, are the pushed request's.
    let mut browser = Browser::default();
    let (status, _, page) = browser.get(&authorize).await;
    assert_eq!(status, 200, "{page}");
    let (action, mut fields) = form_of(&page);
    assert!(fields
        .iter()
        .any(|(n, v)| n == "request_uri" && v == request_uri));
    assert!(
        !fields.iter().any(|(n, _)| n == "code_challenge"),
        "{fields:?}"
    );
    fields.push(("username".into(), USER.into()));
    fields.push(("password".into(), USER_PASSWORD.into()));
    let (status, location, body) = browser.post_form(&on(&gw, &action), &fields).await;
    assert_eq!(status, 303, "{body}");
    let callback = location.unwrap();
    let stdin = node.stdin.as_mut().unwrap();
    writeln!(stdin, "{callback}").unwrap();
    let mut text = String::new();
    out.read_line(&mut text).unwrap();
    let finished = node.wait().unwrap();
    let result: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|_| panic!("{text} ({finished})\n{}", gw.log()));
    assert_eq!(
        result,
        json!({"token_type": "dpop", "refresh_token": true, "api": 200})
    );
    // One code per pushed request: the same request_uri again gives none.
    let (status, location, body) = browser.get(&authorize).await;
    assert_eq!(status, 303, "{body}");
    let again = query_of(&location.unwrap());
    assert_eq!(again["error"], "invalid_request", "{again:?}");
    // Changed, or sent by another client: not one the issuer made.
    let forged = authorize.replace("request_uri%3A", "request_uri%3AA");
    assert_eq!(Browser::default().get(&forged).await.0, 400);
    let other_client =
        authorize.replace(&format!("client_id={APP}"), &format!("client_id={SERVICE}"));
    assert_eq!(Browser::default().get(&other_client).await.0, 400);
}

#[tokio::test]
async fn an_issuer_that_takes_pushed_requests_only_refuses_others() {
    let gw = started_with_public_url(&standard_body(
        "require_pushed_authorization_requests = true",
    ))
    .await;
    let (_, challenge) = pkce();
    let (status, _, page) = Browser::default()
        .get(&authorize_url(&gw, &challenge, ""))
        .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("pushed authorization requests only"),
        "{page}"
    );
    let metadata = metadata(&gw).await;
    assert_eq!(metadata["require_pushed_authorization_requests"], true);
    // Pushed, it signs in.
    let form = [
        ("client_id", APP),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", "notes:read"),
        ("state", "s-123"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/par"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let pushed: Value = r.json().await.unwrap();
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let url = gw.url(&format!(
        "/oauth2/app/authorize?client_id={APP}&request_uri={}",
        enc(pushed["request_uri"].as_str().unwrap())
    ));
    let code = sign_in_at(&gw, &mut Browser::default(), &url).await;
    assert!(!code.is_empty());
    // A request_uri is not itself pushed; nor is a request another client's.
    let mut nested = form.to_vec();
    nested.push(("request_uri", "urn:ietf:params:oauth:request_uri:x"));
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/par"))
        .form(&nested)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/par"))
        .basic_auth(SERVICE, Some(SERVICE_SECRET))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
}

/// userinfo is a resource too (RFC 9449 §7): a DPoP-bound token is taken
/// there only as `DPoP`, with a fresh proof of its key and of the
/// request, once; an unbound token only as `Bearer`.
#[tokio::test]
async fn userinfo_takes_a_bound_token_only_with_its_proof() {
    let gw = started_with_public_url(&standard_body("")).await;
    let (key, other) = (Key::new(), Key::new());
    let endpoint = gw.url("/oauth2/app/token");
    let userinfo = gw.url("/oauth2/app/userinfo");
    let tokens = |proof: Option<String>| {
        let gw = &gw;
        async move {
            let (verifier, challenge) = common::standard::pkce();
            let url = authorize_url(gw, &challenge, "");
            let code = sign_in_at(gw, &mut Browser::default(), &url).await;
            token_request(gw, &code_form(&code, &verifier), proof.as_deref()).await
        }
    };
    let (status, answer) = tokens(Some(key.proof("POST", &endpoint, None))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_type"], "DPoP");
    let token = answer["access_token"].as_str().unwrap();
    let (bearer, dpop) = (format!("Bearer {token}"), format!("DPoP {token}"));
    let refused = [
        (&bearer, None),
        (&bearer, Some(key.proof("GET", &userinfo, Some(token)))),
        (&dpop, None),
        (&dpop, Some(other.proof("GET", &userinfo, Some(token)))),
        (&dpop, Some(key.proof("POST", &userinfo, Some(token)))),
        (&dpop, Some(key.proof("GET", &endpoint, Some(token)))),
        (&dpop, Some(key.proof("GET", &userinfo, None))),
    ];
    for (i, (authorization, proof)) in refused.iter().enumerate() {
        let proofs: Vec<&str> = proof.iter().map(String::as_str).collect();
        let (status, challenge) = get(&gw, "/oauth2/app/userinfo", authorization, &proofs).await;
        assert_eq!(status, 401, "case {i}: {challenge}");
    }
    let proof = key.proof("GET", &userinfo, Some(token));
    let (status, challenge) = get(&gw, "/oauth2/app/userinfo", &dpop, &[&proof]).await;
    assert_eq!(status, 200, "{challenge}");
    let (status, challenge) = get(&gw, "/oauth2/app/userinfo", &dpop, &[&proof]).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("DPoP error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    // An unbound token: Bearer's, never taken as DPoP.
    let (status, answer) = tokens(None).await;
    assert_eq!((status, &answer["token_type"]), (200, &json!("Bearer")));
    let token = answer["access_token"].as_str().unwrap();
    let proof = key.proof("GET", &userinfo, Some(token));
    let (status, _) = get(
        &gw,
        "/oauth2/app/userinfo",
        &format!("DPoP {token}"),
        &[&proof],
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = get(&gw, "/oauth2/app/userinfo", &format!("Bearer {token}"), &[]).await;
    assert_eq!(status, 200);
}
