//! What every token endpoint shares, against the real gateway on the demo
//! config: body size and time limits in each dialect's own error shape,
//! lockout and its end, keys and refresh tokens across `kill -9`, and which
//! bodies count as logins at all.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

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
    let refresh = admin_refresh_token(&gw).await;
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
