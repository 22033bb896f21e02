//! portero's OAuth 2.0 endpoints judged by strict clients no one here
//! wrote, against the real gateway: panva's `oauth4webapi` (npm, run by
//! Node.js from tests/oidc/oauth2_clients.mjs) and the PyPI `authlib` and
//! `requests-oauthlib` clients (tests/oauth2_clients.py). Each script
//! prints `ok <check>` per check made; the test names every check it
//! expects, so a check that silently stops running fails here.

use crate::common;

use std::process::Command;

use common::*;

const CLIENT: &str = DEMO_CLIENT;
const SECRET: &str = DEMO_CLIENT_SECRET;
const APP: &str = DEMO_APP;
const APP_SECRET: &str = DEMO_APP_SECRET;
/// A client-flat client whose secret has every character Basic
/// credentials must form-encode.
const ODD: &str = "odd_client";
const ODD_SECRET: &str = "s+e%c:r e/t";

fn body() -> String {
    with_flat_client(demo_body(), ODD, ODD_SECRET, "").replace(
        "[issuers.client-flat.oauth2]\n",
        "[issuers.client-flat.oauth2]\ndpop_nonce = true\n",
    )
}

/// The gateway with its real public_url, and the environment the scripts read.
async fn gateway() -> (Gateway, Vec<(&'static str, String)>) {
    let body = body();
    let gw = Gateway::start(&body).await;
    let base = gw.public_url(&body).await;
    let (status, legacy) = post(
        &gw,
        "/api/auth/token",
        None,
        r#"{"username":"admin","password":"abcd1234"}"#,
    )
    .await;
    assert_eq!(status, 200, "{legacy}");
    let legacy = parse(&legacy)["accessToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let env = vec![
        ("PORTERO_URL", base),
        ("CLIENT_ID", CLIENT.into()),
        ("CLIENT_SECRET", SECRET.into()),
        ("ODD_ID", ODD.into()),
        ("ODD_SECRET", ODD_SECRET.into()),
        ("APP_ID", APP.into()),
        ("APP_SECRET", APP_SECRET.into()),
        ("USERNAME", "admin".into()),
        ("PASSWORD", "abcd1234".into()),
        ("LEGACY_TOKEN", legacy),
    ];
    (gw, env)
}

/// Runs a client script; returns the checks it reported, failing the test
/// with its output if it failed.
fn run(mut command: Command, env: &[(&str, String)]) -> Vec<String> {
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{command:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .map(str::to_string)
        .collect()
}

const NODE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");

#[tokio::test]
async fn oauth4webapi_discovers_gets_introspects_revokes_refreshes_and_exchanges() {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let package = std::path::Path::new(NODE_DIR).join("node_modules/oauth4webapi");
    let missing = match (node, package.exists()) {
        (false, _) => Some("node (Node.js) is not installed".to_string()),
        (true, false) => Some("oauth4webapi is not installed".into()),
        (true, true) => None,
    };
    if !outside_program(Outside::OAuth2ClientsJs, missing) {
        return;
    }
    let (_gw, env) = gateway().await;
    let mut node = Command::new("node");
    node.arg("oauth2_clients.mjs").current_dir(NODE_DIR);
    let checks = run(node, &env);
    assert_eq!(
        checks,
        [
            "discovery oauth2 (RFC 8414 path insertion), issuer checked",
            "discovery oidc-style, issuer checked",
            "client_credentials with client_secret_basic",
            "client_credentials with client_secret_post",
            "a wrong secret is invalid_client",
            "introspection of a live token",
            "revocation",
            "introspection of a revoked token",
            "password grant",
            "refresh_token grant, rotated",
            "token exchange of a legacy token",
            "DPoP-bound client_credentials after the nonce retry, cnf.jkt introspected",
            "the bound token opens a route with its proof, not as a bearer token",
        ]
    );
}

#[tokio::test]
async fn authlib_and_requests_oauthlib_get_tokens_and_use_them() {
    let installed = Command::new("python3")
        .args(["-c", "import authlib, requests_oauthlib"])
        .output()
        .is_ok_and(|o| o.status.success());
    let missing =
        (!installed).then(|| "authlib and requests-oauthlib are not installed".to_string());
    if !outside_program(Outside::OAuth2ClientsPython, missing) {
        return;
    }
    let (_gw, env) = gateway().await;
    let mut python = Command::new("python3");
    python
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/oauth2_clients.py"
        ))
        // requests-oauthlib refuses plain HTTP otherwise; the gateway is on loopback.
        .env("OAUTHLIB_INSECURE_TRANSPORT", "1");
    let checks = run(python, &env);
    assert_eq!(
        checks,
        [
            "authlib client_credentials with client_secret_basic",
            "authlib client_credentials with client_secret_post",
            "authlib introspection",
            "authlib revocation",
            "authlib password grant",
            "authlib refresh_token grant, rotated",
            "authlib Basic with an odd secret",
            "requests-oauthlib Basic (not form-encoded) with an odd secret",
            "requests-oauthlib client_credentials, then a protected route",
        ]
    );
}
