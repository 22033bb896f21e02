//! The five token endpoints, against the real gateway running the demo
//! config's issuers and principals: every seed example replayed with its
//! whole response compared (keys, order, types, formats, status), every error
//! the seeds name, and DESIGN.md's choices where they are silent.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The demo's issuers and routes, in front of its built-in echo upstream,
/// with `edit` applied (e.g. shorter limits).
async fn demo(edit: impl Fn(String) -> String) -> Gateway {
    Gateway::start(&edit(demo_body())).await
}

async fn post(gw: &Gateway, path: &str, host: Option<&str>, body: &str) -> (StatusCode, String) {
    let mut req = reqwest::Client::new()
        .post(gw.url(path))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    assert_eq!(r.headers()["content-type"], "application/json", "{path}");
    (status, r.text().await.unwrap())
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The keys of a JSON object, in the order they were sent.
fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A proxied request with `authorization` exactly as given.
async fn proxied(gw: &Gateway, authorization: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(gw.url("/orders/7"))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
}

fn is_plain_datetime(s: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
}

fn is_iso_millis_z(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

// ---------------------------------------------------------------------------
// Seed 000: session
// ---------------------------------------------------------------------------

const SESSION: &str = "/api/Session/GetToken";

#[tokio::test]
async fn session_example_and_errors() {
    let gw = demo(|c| c).await;
    let (status, body) = post(
        &gw,
        SESSION,
        None,
        r#"{"username": "admin", "password": "demo2024"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = parse(&body);
    assert_eq!(keys(&v), ["tokenValido", "vencimiento", "usuario"]);
    assert_eq!(
        v["usuario"],
        json!({"id": 1, "username": "admin", "nombre": "Administrador"})
    );
    assert_eq!(keys(&v["usuario"]), ["id", "username", "nombre"]);
    let token = v["tokenValido"].as_str().unwrap();
    let vencimiento = v["vencimiento"].as_str().unwrap();
    assert!(is_plain_datetime(vencimiento), "{vencimiento}");
    let c = claims_of(token);
    let exp = chrono::DateTime::from_timestamp(c["exp"].as_i64().unwrap(), 0).unwrap();
    assert_eq!(
        exp.format("%Y-%m-%d %H:%M:%S").to_string(),
        vencimiento,
        "UTC by default"
    );
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        86_400
    );
    assert_eq!(c["sub"], "admin");
    assert_eq!(c["nombre"], "Administrador");
    assert!(c["jti"].is_string());

    // The token opens the proxied API, with its identity injected.
    let r = proxied(&gw, &format!("Bearer {token}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-user-sub"], "admin");

    let cases: &[(&str, u16, Value)] = &[
        (
            r#"{"username":"admin","password":"wrong"}"#,
            401,
            json!({"error": 1, "message": "Credenciales inválidas"}),
        ),
        (
            r#"{"username":"nobody","password":"demo2024"}"#,
            401,
            json!({"error": 1, "message": "Credenciales inválidas"}),
        ),
        (
            r#"{"username":"bloqueado","password":"demo2024"}"#,
            403,
            json!({"error": 2, "message": "Usuario bloqueado"}),
        ),
        (
            "username=admin",
            400,
            json!({"error": 1, "message": "El cuerpo de la solicitud no es JSON válido"}),
        ),
        (
            r#"["admin"]"#,
            400,
            json!({"error": 1, "message": "El cuerpo de la solicitud debe ser un objeto JSON"}),
        ),
        (
            r#"{"password":"demo2024"}"#,
            400,
            json!({"error": 1, "message": "El campo 'username' es requerido"}),
        ),
        (
            r#"{"username":"admin","password":""}"#,
            400,
            json!({"error": 1, "message": "El campo 'password' no puede estar vacío"}),
        ),
        (
            r#"{"username":42,"password":"x"}"#,
            400,
            json!({"error": 1, "message": "El campo 'username' debe ser una cadena"}),
        ),
    ];
    for (body, status, want) in cases {
        let (got_status, got) = post(&gw, SESSION, None, body).await;
        assert_eq!(got_status.as_u16(), *status, "{body}: {got}");
        assert_eq!(parse(&got), *want, "{body}");
        assert_eq!(keys(&parse(&got)), ["error", "message"]);
    }
    // Invalid UTF-8 is not JSON.
    let r = reqwest::Client::new()
        .post(gw.url(SESSION))
        .body(vec![b'{', 0xff, b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], 1);
}

// ---------------------------------------------------------------------------
// Seed 001: login-refresh
// ---------------------------------------------------------------------------

#[tokio::test]
async fn login_refresh_example_refresh_flow_and_errors() {
    let gw = demo(|c| c).await;
    let (status, body) = post(
        &gw,
        "/api/auth/token",
        None,
        r#"{"username": "admin", "password": "abcd1234"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = parse(&body);
    assert_eq!(
        keys(&v),
        [
            "id",
            "username",
            "role",
            "accessToken",
            "contentToken",
            "refreshToken"
        ]
    );
    assert_eq!(v["id"], "b331336a-46f4-4fe4-a850-3208bfc2c398");
    assert_eq!(v["username"], "admin");
    assert_eq!(v["role"], "ADMIN");
    for (name, ttl) in [
        ("accessToken", 3600),
        ("contentToken", 3600),
        ("refreshToken", 86_400),
    ] {
        assert_eq!(keys(&v[name]), ["token", "expiresIn"], "{name}");
        assert_eq!(
            v[name]["expiresIn"],
            json!(ttl),
            "{name} expiresIn is an integer of seconds"
        );
    }
    let access = v["accessToken"]["token"].as_str().unwrap();
    assert_eq!(claims_of(access)["token_use"], "access");
    assert_eq!(
        claims_of(v["contentToken"]["token"].as_str().unwrap())["token_use"],
        "content"
    );
    let refresh = v["refreshToken"]["token"].as_str().unwrap();
    assert!(!refresh.contains('.'), "the refresh token is opaque");
    assert!(
        URL_SAFE_NO_PAD.decode(refresh).unwrap().len() >= 32,
        "256 bits or more"
    );
    assert_eq!(
        proxied(&gw, &format!("Bearer {access}")).await.status(),
        StatusCode::OK
    );

    // Refresh: a new access and content token, nothing else.
    let (status, body) = post(
        &gw,
        "/api/auth/refreshtoken",
        None,
        &json!({"refreshToken": refresh}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = parse(&body);
    assert_eq!(keys(&r), ["accessToken", "contentToken"]);
    let access2 = r["accessToken"]["token"].as_str().unwrap();
    assert_ne!(access2, access);
    assert_eq!(
        proxied(&gw, &format!("Bearer {access2}")).await.status(),
        StatusCode::OK
    );

    // Spring-style errors.
    let spring = |body: &str, status: u16, path: &str| {
        let v = parse(body);
        assert_eq!(
            keys(&v),
            ["timestamp", "status", "error", "message", "path"],
            "{body}"
        );
        assert_eq!(v["status"], status);
        assert_eq!(v["path"], path);
        assert!(chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).is_ok());
        v
    };
    let (s, b) = post(
        &gw,
        "/api/auth/refreshtoken",
        None,
        r#"{"refreshToken":"not-a-real-one"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        spring(&b, 401, "/api/auth/refreshtoken")["error"],
        "Unauthorized"
    );
    let (s, b) = post(
        &gw,
        "/api/auth/token",
        None,
        r#"{"username":"admin","password":"nope"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    spring(&b, 401, "/api/auth/token");
    let (s, b) = post(&gw, "/api/auth/token", None, "{").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(spring(&b, 400, "/api/auth/token")["error"], "Bad Request");
    let (s, b) = post(
        &gw,
        "/api/auth/refreshtoken",
        None,
        r#"{"refreshToken": 5}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    spring(&b, 400, "/api/auth/refreshtoken");

    // Revoking the refresh token revokes it and every token minted with it.
    let r = gw.revoke(json!({"token": refresh})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = post(
        &gw,
        "/api/auth/refreshtoken",
        None,
        &json!({"refreshToken": refresh}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        proxied(&gw, &format!("Bearer {access}")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        proxied(&gw, &format!("Bearer {access2}")).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Revoking the subject also stops refresh tokens issued before.
    let (_, body) = post(
        &gw,
        "/api/auth/token",
        None,
        r#"{"username":"admin","password":"abcd1234"}"#,
    )
    .await;
    let refresh = parse(&body)["refreshToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = gw
        .revoke(json!({"sub": "b331336a-46f4-4fe4-a850-3208bfc2c398", "issuer": "login-refresh"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = post(
        &gw,
        "/api/auth/refreshtoken",
        None,
        &json!({"refreshToken": refresh}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------
// Seed 002: project
// ---------------------------------------------------------------------------

const PROJECT_LOGIN: &str =
    r#"{"business": "5a2ac49cbbbce212f885529c", "proyecto": "upconta", "password": "1234"}"#;

#[tokio::test]
async fn project_expiration_query_and_raw_authorization() {
    let gw = demo(|c| c).await;
    let token_for = |query: &'static str| {
        let gw = &gw;
        async move {
            let (status, body) = post(gw, &format!("/auth{query}"), None, PROJECT_LOGIN).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            assert!(
                body.starts_with('"') && body.ends_with('"'),
                "a JSON string: {body}"
            );
            parse(&body).as_str().unwrap().to_string()
        }
    };
    let years_between = |c: &Value| {
        let created =
            chrono::DateTime::parse_from_rfc3339(c["creacion"].as_str().unwrap()).unwrap();
        let until =
            chrono::DateTime::parse_from_rfc3339(c["expiracion"].as_str().unwrap()).unwrap();
        (until.format("%m-%d %H:%M:%S%.3f").to_string()
            == created.format("%m-%d %H:%M:%S%.3f").to_string())
        .then(|| chrono::Datelike::year(&until) - chrono::Datelike::year(&created))
    };

    // No query: 2 years.
    let t = token_for("").await;
    let c = claims_of(&t);
    assert_eq!(c["business"], "5a2ac49cbbbce212f885529c");
    assert_eq!(c["proyecto"], "upconta");
    assert!(is_iso_millis_z(c["creacion"].as_str().unwrap()), "{c}");
    assert!(is_iso_millis_z(c["expiracion"].as_str().unwrap()), "{c}");
    assert_eq!(years_between(&c), Some(2));
    assert_eq!(
        c["exp"].as_i64().unwrap(),
        chrono::DateTime::parse_from_rfc3339(c["expiracion"].as_str().unwrap())
            .unwrap()
            .timestamp()
    );
    // Seed 002's clients send the token raw, without `Bearer`.
    let r = proxied(&gw, &t).await;
    assert_eq!(r.status(), StatusCode::OK);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(
        seen["headers"]["x-user-business"],
        "5a2ac49cbbbce212f885529c"
    );
    assert_eq!(seen["headers"]["x-user-proyecto"], "upconta");

    let c = claims_of(&token_for("?withoutExpiration=4").await);
    assert_eq!(years_between(&c), Some(4));

    let t = token_for("?withoutExpiration=true").await;
    let c = claims_of(&t);
    assert!(
        c.get("exp").is_none() && c.get("expiracion").is_none(),
        "{c}"
    );
    assert!(c["creacion"].is_string());
    assert_eq!(proxied(&gw, &t).await.status(), StatusCode::OK);

    for bad in [
        "?withoutExpiration=abc",
        "?withoutExpiration=0",
        "?withoutExpiration=11",
        "?withoutExpiration=",
    ] {
        let (status, body) = post(&gw, &format!("/auth{bad}"), None, PROJECT_LOGIN).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(keys(&parse(&body)), ["error"]);
    }
    let (status, body) = post(
        &gw,
        "/auth",
        None,
        r#"{"business":"5a2ac49cbbbce212f885529c","proyecto":"upconta","password":"x"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(parse(&body), json!({"error": "Credenciales inválidas"}));
    let (status, body) = post(
        &gw,
        "/auth",
        None,
        r#"{"business":"5a2ac49cbbbce212f885529c","password":"1234"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        parse(&body),
        json!({"error": "El campo 'proyecto' es requerido"})
    );
}

#[tokio::test]
async fn project_tokens_without_expiration_can_be_forbidden() {
    let gw = demo(|c| c.replace("allow_no_exp = true", "allow_no_exp = false")).await;
    let (status, body) = post(&gw, "/auth?withoutExpiration=true", None, PROJECT_LOGIN).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(parse(&body)["error"]
        .as_str()
        .unwrap()
        .contains("deshabilitados"));
}

// ---------------------------------------------------------------------------
// Seed 003: client-envelope, on its own host
// ---------------------------------------------------------------------------

#[tokio::test]
async fn client_envelope_example_and_errors() {
    let gw = demo(|c| c).await;
    let host = Some("maxpoint.localhost");
    let login = r#"{"clientId": "f2ffebd1-77eb-49d2-a623-99824b1f485d", "clientSecret": "c0f2afed-edc3-4cec-8af0-ef58fcb50062"}"#;
    let (status, body) = post(&gw, "/api/auth/token", host, login).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = parse(&body);
    assert_eq!(keys(&v), ["code", "status", "message", "data"]);
    assert_eq!(v["code"], 200);
    assert_eq!(v["status"], "success");
    assert_eq!(v["message"], "Token generado exitosamente");
    assert_eq!(keys(&v["data"]), ["token", "expire_in"]);
    let token = v["data"]["token"].as_str().unwrap();
    let expire_in = v["data"]["expire_in"].as_str().unwrap();
    let exp =
        chrono::DateTime::from_timestamp(claims_of(token)["exp"].as_i64().unwrap(), 0).unwrap();
    assert_eq!(exp.format("%Y-%m-%d %H:%M:%S").to_string(), expire_in);
    assert_eq!(
        proxied(&gw, &format!("Bearer {token}")).await.status(),
        StatusCode::OK
    );

    let (status, body) = post(&gw, "/api/auth/token", host, "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        parse(&body),
        json!({
            "code": 400, "status": "error", "message": "Error en la validación de datos",
            "errors": ["El campo 'clientId' es requerido", "El campo 'clientSecret' es requerido"]
        })
    );
    let (status, body) = post(
        &gw,
        "/api/auth/token",
        host,
        r#"{"clientId":"f2ffebd1-77eb-49d2-a623-99824b1f485d","clientSecret":"wrong"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        parse(&body),
        json!({"code": 401, "status": "error", "message": "Credenciales inválidas"})
    );
    let (status, body) = post(&gw, "/api/auth/token", host, "not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(parse(&body)["code"], 400);

    // The same path on the default host is seed 001's endpoint.
    let (status, body) = post(&gw, "/api/auth/token", None, login).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "login-refresh wants username/password: {body}"
    );
    assert!(parse(&body).get("timestamp").is_some());
}

// ---------------------------------------------------------------------------
// Seed 004: client-flat, its seven steps
// ---------------------------------------------------------------------------

#[tokio::test]
async fn client_flat_seven_steps() {
    let gw = demo(|c| c).await;
    let p = "/api/v1/auth";
    let (status, body) = post(
        &gw,
        p,
        None,
        r#"{"client_id": "demo_client_123", "client_secret": "demo_secret_456_ABCDEFGH"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = parse(&body);
    assert_eq!(keys(&v), ["access_token", "exp", "iat"]);
    assert!(v["exp"].is_i64() && v["iat"].is_i64(), "Unix seconds: {v}");
    let token = v["access_token"].as_str().unwrap();
    let c = claims_of(token);
    assert_eq!(c["exp"], v["exp"]);
    assert_eq!(c["iat"], v["iat"]);
    assert_eq!(c["company"], "becomedigital");
    assert_eq!(
        c["permissions"],
        json!(["documents:read", "documents:write"])
    );
    assert_eq!(
        proxied(&gw, &format!("Bearer {token}")).await.status(),
        StatusCode::OK
    );

    let steps: &[(&str, u16, Value)] = &[
        // 1. not JSON
        (
            "client_id=demo_client_123",
            400,
            json!({"msg": "Missing JSON in request"}),
        ),
        // 2. parameters
        (
            r#"{"client_secret":"x"}"#,
            400,
            json!({"msg": "Missing client_id parameter"}),
        ),
        (
            r#"{"client_id":"demo_client_123"}"#,
            400,
            json!({"msg": "Missing client_secret parameter"}),
        ),
        // 3. unknown client
        (
            r#"{"client_id":"ghost","client_secret":"x"}"#,
            401,
            json!({"msg": "Invalid login details"}),
        ),
        // 4. inactive: 200, before the secret is even looked at
        (
            r#"{"client_id":"inactive_client_456","client_secret":"wrong"}"#,
            200,
            json!({"msg": "credential inactive"}),
        ),
        // 5. company missing: before the secret
        (
            r#"{"client_id":"orphan_client_789","client_secret":"wrong"}"#,
            404,
            json!({"error": "Not Found"}),
        ),
        // 6. wrong secret
        (
            r#"{"client_id":"demo_client_123","client_secret":"wrong"}"#,
            401,
            json!({"msg": "Invalid login details"}),
        ),
    ];
    for (body, status, want) in steps {
        let (got_status, got) = post(&gw, p, None, body).await;
        assert_eq!(got_status.as_u16(), *status, "{body}: {got}");
        assert_eq!(parse(&got), *want, "{body}");
    }
}

// ---------------------------------------------------------------------------
// Shared behaviour: limits, lockout, persistence, metrics
// ---------------------------------------------------------------------------

#[tokio::test]
async fn oversized_and_slow_bodies_get_the_dialects_own_errors() {
    let gw = demo(|c| {
        c.replace(
            "dialect = \"session\"",
            "dialect = \"session\"\nbody_timeout = \"300ms\"",
        )
    })
    .await;
    let big = format!(
        r#"{{"username":"admin","password":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, body) = post(&gw, SESSION, None, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(parse(&body)["error"], 1);
    let (status, body) = post(
        &gw,
        "/api/v1/auth",
        None,
        &big.replace("username", "client_id"),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(parse(&body)["msg"].is_string());

    // A body that never finishes: the dialect's 408, then the gateway is fine.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    s.write_all(format!("POST {SESSION} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"user").as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":1"#), "{answer}");
    let (status, _) = post(
        &gw,
        SESSION,
        None,
        r#"{"username":"admin","password":"demo2024"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn lockout_after_repeated_failures_and_its_end() {
    let gw = demo(|c| {
        c.replace(
            "dialect = \"session\"",
            "dialect = \"session\"\nmax_failures = 3\nlockout = \"2s\"",
        )
    })
    .await;
    let good = r#"{"username":"admin","password":"demo2024"}"#;
    for _ in 0..3 {
        let (status, _) = post(
            &gw,
            SESSION,
            None,
            r#"{"username":"admin","password":"bad"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Locked: even the right password gets "Usuario bloqueado".
    let (status, body) = post(&gw, SESSION, None, good).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        parse(&body),
        json!({"error": 2, "message": "Usuario bloqueado"})
    );
    assert_eq!(
        gw.metric("portero_lockouts_total", &[("issuer", "session")])
            .await,
        1.0
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = post(&gw, SESSION, None, good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn keys_and_refresh_tokens_survive_kill_9() {
    let mut gw = demo(|c| c).await;
    let (_, body) = post(
        &gw,
        SESSION,
        None,
        r#"{"username":"admin","password":"demo2024"}"#,
    )
    .await;
    let session_token = parse(&body)["tokenValido"].as_str().unwrap().to_string();
    let (_, body) = post(
        &gw,
        "/api/auth/token",
        None,
        r#"{"username":"admin","password":"abcd1234"}"#,
    )
    .await;
    let refresh = parse(&body)["refreshToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        gw.wait_metric(
            "portero_tokens_issued_total",
            &[("issuer", "session"), ("dialect", "session")],
            1.0
        )
        .await,
        1.0
    );

    gw.kill9_and_restart().await;
    assert_eq!(
        proxied(&gw, &format!("Bearer {session_token}"))
            .await
            .status(),
        StatusCode::OK,
        "same key"
    );
    let (status, body) = post(
        &gw,
        "/api/auth/refreshtoken",
        None,
        &json!({"refreshToken": refresh}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A body the way a cross-site form can send it (`text/plain`, no
/// preflight), or one that names a key twice: each dialect refuses it with
/// its own malformed-body answer, and no token comes back.
#[tokio::test]
async fn only_json_bodies_with_unique_keys_are_logins() {
    let gw = demo(|c| c).await;
    let cases: [(&str, Option<&str>, &str, &str, Value); 5] = [
        (
            "/api/Session/GetToken",
            None,
            r#"{"username":"admin","password":"demo2024"}"#,
            r#"{"username":"bloqueado","password":"demo2024","username":"admin"}"#,
            json!({"error": 1}),
        ),
        (
            "/api/auth/token",
            None,
            r#"{"username":"admin","password":"abcd1234"}"#,
            r#"{"username":"nobody","password":"abcd1234","username":"admin"}"#,
            json!({"status": 400, "message": "Malformed JSON request"}),
        ),
        (
            "/auth",
            None,
            r#"{"business":"5a2ac49cbbbce212f885529c","proyecto":"upconta","password":"1234"}"#,
            r#"{"business":"5a2ac49cbbbce212f885529c","proyecto":"x","password":"1234","proyecto":"upconta"}"#,
            json!({"error": "El cuerpo de la solicitud no es JSON válido"}),
        ),
        (
            "/api/auth/token",
            Some("maxpoint.localhost"),
            r#"{"clientId":"f2ffebd1-77eb-49d2-a623-99824b1f485d","clientSecret":"c0f2afed-edc3-4cec-8af0-ef58fcb50062"}"#,
            r#"{"clientId":"f2ffebd1-77eb-49d2-a623-99824b1f485d","clientSecret":"x","clientSecret":"c0f2afed-edc3-4cec-8af0-ef58fcb50062"}"#,
            json!({"code": 400, "message": "Error en la validación de datos"}),
        ),
        (
            "/api/v1/auth",
            None,
            r#"{"client_id":"demo_client_123","client_secret":"demo_secret_456_ABCDEFGH"}"#,
            r#"{"client_id":"demo_client_123","client_secret":"x","client_secret":"demo_secret_456_ABCDEFGH"}"#,
            json!({"msg": "Missing JSON in request"}),
        ),
    ];
    let client = reqwest::Client::new();
    for (path, host, good, repeated, shape) in cases {
        let send = |content_type: &'static str, body: &'static str| {
            let mut req = client
                .post(gw.url(path))
                .header("content-type", content_type)
                .body(body);
            if let Some(h) = host {
                req = req.header("host", h);
            }
            async move {
                let r = req.send().await.unwrap();
                (r.status(), parse(&r.text().await.unwrap()))
            }
        };
        // The same login as JSON works...
        assert_eq!(
            send("application/json", good).await.0,
            StatusCode::OK,
            "{path}"
        );
        // ...as text/plain, a form, or with a key twice, it does not.
        for (content_type, body) in [
            ("text/plain", good),
            ("application/x-www-form-urlencoded", good),
            ("application/json", repeated),
        ] {
            let (status, v) = send(content_type, body).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{path} {content_type}: {v}"
            );
            for (k, want) in shape.as_object().unwrap() {
                assert_eq!(&v[k], want, "{path} {content_type}: {v}");
            }
        }
    }
}

/// Seed 003's only field message is "es requerido": an empty or non-string
/// field is a missing one there.
#[tokio::test]
async fn client_envelope_names_empty_fields_as_its_document_does() {
    let gw = demo(|c| c).await;
    let host = Some("maxpoint.localhost");
    let (status, body) = post(
        &gw,
        "/api/auth/token",
        host,
        r#"{"clientId":"","clientSecret":7}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        parse(&body)["errors"],
        json!([
            "El campo 'clientId' es requerido",
            "El campo 'clientSecret' es requerido"
        ])
    );
}
