//! The OpenAPI documents in `deploy/openapi/`, checked against a real
//! gateway on the demo config by schemathesis (PyPI): every operation gets
//! generated good and bad inputs, and every answer must be one the
//! document describes, with no `5xx`. Skipped with a message when
//! `schemathesis` is not installed, failing instead under
//! `PORTERO_REQUIRE_SCHEMATHESIS=1` (as in CI).

use crate::common;

use std::process::Command;

use common::*;
use reqwest::StatusCode;

/// What every run checks. Left out, and why:
/// `positive_data_acceptance` wants a 2xx for any well-formed body, but a
/// made-up password must get 401; `unsupported_method` (public document
/// only) wants 405, but portero sends a method no token endpoint serves to
/// the route that matches it, whose upstream decides; the stateful checks
/// need links between operations, which these documents do not have.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
     response_headers_conformance,response_schema_conformance,negative_data_rejection,\
     missing_required_header,ignored_auth";

/// The admin listener does answer a wrong method with 405 and `Allow`.
const ADMIN_CHECKS: &str = "unsupported_method,allow_header_conformance";

fn document(name: &str) -> String {
    format!("{}/deploy/openapi/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Whether `schemathesis` runs here; `false` means skip (with a message).
fn schemathesis_present() -> bool {
    let found = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = (!found).then(|| "schemathesis is not installed".to_string());
    outside_program(Outside::Schemathesis, missing)
}

/// Runs schemathesis on `document` against `url`; panics with its report
/// when it finds an answer the document does not describe, or tested
/// fewer than the document's `operations`.
async fn schemathesis(
    document: String,
    operations: usize,
    url: String,
    checks: String,
    args: Vec<String>,
) {
    // It keeps the cases that failed in `.schemathesis/` under its working
    // directory, to replay them first: not between runs of this test.
    let scratch = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("schemathesis");
        cmd.current_dir(scratch.path());
        cmd.args(["run", &document, "--url", &url, "--checks", &checks])
            // Reproducible: the same cases every run.
            .args(["--seed", "20261123", "--max-examples", "40"])
            .args(["--workers", "1", "--request-timeout", "10"])
            .env("NO_COLOR", "1");
        cmd.args(&args);
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "schemathesis failed:\n{report}");
    eprintln!("{report}");
    // A run that tested nothing would pass too.
    assert!(
        report.contains(&format!("Tested: {operations}\n")),
        "schemathesis did not test all {operations} operations:\n{report}"
    );
}

/// A token from the demo's `session` issuer, for the protected path.
async fn demo_token(gw: &Gateway) -> String {
    let (status, body) = post(
        gw,
        SESSION,
        None,
        r#"{"username":"admin","password":"demo2024"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    parse(&body)["tokenValido"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_public_document_describes_every_answer_of_the_demo_gateway() {
    if !schemathesis_present() {
        return;
    }
    let gw = demo(|body| body).await;
    let bearer = format!("Authorization: Bearer {}", demo_token(&gw).await);
    // The OAuth 2.0 endpoints authenticate clients themselves: they run
    // apart, without the bearer token, and first (their clients share the
    // legacy endpoint's lockout, which the legacy runs' bad secrets reach).
    schemathesis(
        document("public.yaml"),
        5,
        gw.url(""),
        CHECKS.to_string(),
        vec!["--include-tag".into(), "oauth2".into()],
    )
    .await;
    // `/api/auth/token` is `login-refresh` on any host and
    // `client-envelope` on maxpoint.localhost: one run on each.
    for host in [None, Some("Host: maxpoint.localhost")] {
        let mut args = vec!["--exclude-tag", "oauth2", "--header", &bearer];
        args.extend(host.iter().flat_map(|h| ["--header", *h]));
        schemathesis(
            document("public.yaml"),
            7,
            gw.url(""),
            CHECKS.to_string(),
            args.into_iter().map(String::from).collect(),
        )
        .await;
    }
    // The documents' examples are the demo's credentials: every dialect
    // answered 200 at least once, so its success body was checked too.
    for issuer in [
        "session",
        "login-refresh",
        "project",
        "client-envelope",
        "client-flat",
    ] {
        let ok = gw
            .metric(
                "portero_token_requests_total",
                &[("issuer", issuer), ("status", "200")],
            )
            .await;
        assert!(ok >= 1.0, "{issuer} never answered 200");
    }
    for endpoint in ["metadata", "token", "revoke", "introspect"] {
        let labels = [
            ("issuer", "client-flat"),
            ("endpoint", endpoint),
            ("status", "200"),
        ];
        let ok = gw.metric("portero_oauth2_requests_total", &labels).await;
        assert!(
            ok >= 1.0,
            "the OAuth 2.0 {endpoint} endpoint never answered 200"
        );
    }
}

#[tokio::test]
async fn the_admin_document_describes_every_answer_of_the_admin_api() {
    if !schemathesis_present() {
        return;
    }
    let gw = demo(|body| body).await;
    schemathesis(
        document("admin.yaml"),
        10,
        gw.admin_url(""),
        format!("{CHECKS},{ADMIN_CHECKS}"),
        vec![
            "--header".into(),
            format!("Authorization: Bearer {ADMIN_TOKEN}"),
        ],
    )
    .await;
}

/// Each OAuth 2.0 endpoint answers a method it does not take with `405`,
/// in OAuth 2.0's words, and the `Allow` of that endpoint: `POST` for the
/// token, revocation and introspection endpoints, `GET` for the metadata
/// documents; token or not.
#[tokio::test]
async fn oauth2_endpoints_answer_another_method_with_405_and_their_allow() {
    let gw = demo(|body| body).await;
    let token = demo_token(&gw).await;
    let client = reqwest::Client::new();
    let metadata = [
        "/.well-known/oauth-authorization-server/oauth2/client-flat",
        "/oauth2/client-flat/.well-known/openid-configuration",
    ];
    let mut cases: Vec<(&str, &str, &str)> = Vec::new();
    for end in ["token", "revoke", "introspect"] {
        let path: &'static str = format!("/oauth2/client-flat/{end}").leak();
        cases.extend([
            ("GET", path, "POST"),
            ("DELETE", path, "POST"),
            ("PUT", path, "POST"),
        ]);
    }
    for path in metadata {
        cases.extend([
            ("POST", path, "GET"),
            ("DELETE", path, "GET"),
            ("PATCH", path, "GET"),
        ]);
    }
    for (method, path, allow) in cases {
        for auth in [None, Some(&token)] {
            let mut req = client.request(method.parse().unwrap(), gw.url(path));
            if let Some(t) = auth {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(r.headers()["allow"], allow, "{method} {path}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], "invalid_request", "{method} {path}: {body}");
        }
    }
    for path in metadata {
        let r = client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn admin_paths_answer_another_method_with_405_and_allow() {
    let gw = demo(|body| body).await;
    let client = reqwest::Client::new();
    let cases = [
        ("DELETE", "/metrics", "GET"),
        ("POST", "/readyz", "GET"),
        ("PUT", "/admin/revocations", "GET, POST"),
        ("GET", "/admin/reload", "POST"),
        ("PUT", "/admin/api-keys", "GET, POST"),
        ("GET", "/admin/api-keys/ak_1", "DELETE"),
        ("GET", "/admin/api-keys/ak_1/rotate", "POST"),
        ("PUT", "/admin/consents/app/ada", "GET, DELETE"),
    ];
    for (method, path, allow) in cases {
        let r = client
            .request(method.parse().unwrap(), gw.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
    }
    // Under /admin/ the token comes first: without it, 401 whatever the method.
    let r = client
        .get(gw.admin_url("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client.get(gw.admin_url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// The JWKS document is the gateway's own: read with GET or HEAD, any
/// other method `405` with `Allow`, token or not, never the route beneath
/// it; schemathesis's `unsupported_method` agrees (TRACE among others).
#[tokio::test]
async fn the_jwks_document_answers_another_method_with_405_and_allow() {
    let gw = demo(|body| body).await;
    let token = demo_token(&gw).await;
    let client = reqwest::Client::new();
    for method in ["GET", "HEAD"] {
        let r = client
            .request(method.parse().unwrap(), gw.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{method}");
    }
    for method in ["TRACE", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for auth in [None, Some(&token)] {
            let mut req = client.request(method.parse().unwrap(), gw.url("/.well-known/jwks.json"));
            if let Some(t) = auth {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(r.headers()["allow"], "GET, HEAD", "{method}");
        }
    }
    // Every spelling routing reads as the document's path is the document.
    for path in [
        "/.well-known/jwks.json;x",
        "//.well-known/jwks.json",
        "/.well-known//jwks.json",
        "/;x/.well-known/jwks.json",
    ] {
        let get = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
        let (status, text) = raw_http(gw.port, get.as_bytes()).await;
        assert_eq!(status, 200, "GET {path}: {text}");
        assert!(text.contains("\"keys\""), "GET {path}: {text}");
        let delete = format!(
            "DELETE {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\n\r\n"
        );
        let (status, text) = raw_http(gw.port, delete.as_bytes()).await;
        assert_eq!(status, 405, "DELETE {path}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("allow: get, head"),
            "{text}"
        );
    }
    if !schemathesis_present() {
        return;
    }
    schemathesis(
        document("public.yaml"),
        1,
        gw.url(""),
        format!("{CHECKS},unsupported_method"),
        vec!["--include-tag".into(), "keys".into()],
    )
    .await;
}
