//! The five token endpoints, against the real gateway running the demo
//! config's issuers and principals: every seed example replayed with its
//! whole response compared (keys, order, types, formats, status), every error
//! the seeds name, and portero's choices where they are silent
//! (docs/dialects.md).

use crate::common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Seed 000: session
// ---------------------------------------------------------------------------

/// A token endpoint's path takes POST; any other method is `405` with
/// `Allow: POST`, with a token or without, and never reaches the route
/// beneath it. A CORS preflight is answered as before.
#[tokio::test]
async fn token_endpoint_paths_answer_other_methods_405() {
    let gw = demo(|c| c).await;
    let (_, body) = post(
        &gw,
        SESSION,
        None,
        r#"{"username": "admin", "password": "demo2024"}"#,
    )
    .await;
    let token = parse(&body)["tokenValido"].as_str().unwrap().to_string();
    let client = reqwest::Client::new();
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        for auth in [None, Some(&token)] {
            let mut req = client.request(method.clone(), gw.url(SESSION));
            if let Some(t) = auth {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(r.headers()["allow"], "POST");
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["error"], "method_not_allowed", "{v}");
        }
    }
    // The echo upstream never heard of them: the catch-all route's
    // requests are counted under its name.
    let forwarded = gw
        .metric(
            "portero_http_requests_total",
            &[("route", "default"), ("method", "GET"), ("status", "200")],
        )
        .await;
    assert_eq!(forwarded, 0.0);
    let preflight = client
        .request(reqwest::Method::OPTIONS, gw.url(SESSION))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
}

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
    let refresh = admin_refresh_token(&gw).await;
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
