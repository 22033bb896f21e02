//! A user signs in to a `kind = "oauth2"` issuer through a client no one
//! here wrote, run by Node.js from tests/oidc: panva's `oauth4webapi` for
//! the authorization code flow with PKCE, the ID token (its signature
//! checked by `jose` against the issuer's JWKS) and RFC 9207's `iss`
//! (tests/oidc/sign_in.mjs). The script prints `ok <check>` per check
//! made; the test names every check it expects, so a check that silently
//! stops running fails here. Without Node.js or the npm packages the test
//! skips, and fails instead under `PORTERO_REQUIRE_OAUTH2_CLIENTS=1`.

mod common;

use std::path::Path;
use std::process::Command;

use common::standard::*;
use common::*;

const NODE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");

/// Whether Node.js and the npm `packages` are here; skips (or fails) if not.
fn node_with(packages: &[&str]) -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let absent: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !Path::new(NODE_DIR).join("node_modules").join(p).exists())
        .collect();
    let missing = match node {
        false => Some("node (Node.js) is not installed".to_string()),
        true if !absent.is_empty() => Some(format!("{} not installed", absent.join(", "))),
        true => None,
    };
    outside_program(Outside::OAuth2ClientsJs, missing)
}

/// Runs `script` with `env`; its whole output, failing the test with it
/// if the script failed.
fn node(script: &str, env: &[(&str, String)]) -> String {
    let mut command = Command::new("node");
    command.arg(script).current_dir(NODE_DIR);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The lines of `output` that start with `prefix`, without it.
fn lines_of(output: &str, prefix: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn oauth4webapi_signs_in_with_pkce_and_validates_iss_and_the_id_token() {
    if !node_with(&["oauth4webapi", "jose"]) {
        return;
    }
    // No keys configured: the issuer signs with a generated ES256 key.
    let body = standard_body("");
    let gw = Gateway::start(&body).await;
    let base = gw.public_url(&body).await;
    let env = [
        ("PORTERO_URL", base),
        ("ISSUER", "app".to_string()),
        ("CLIENT_ID", APP.to_string()),
        ("REDIRECT_URI", CALLBACK.to_string()),
        ("USERNAME", USER.to_string()),
        ("PASSWORD", USER_PASSWORD.to_string()),
    ];
    let out = node("sign_in.mjs", &env);
    assert_eq!(
        lines_of(&out, "ok "),
        [
            "discovery, issuer checked",
            "ES256 ID tokens, the JWKS named",
            "authorization URL with PKCE S256, state and nonce",
            "signed in on the page, 303 to the callback",
            "a callback whose iss was changed or dropped is rejected",
            "validateAuthResponse: iss and state checked",
            "code redeemed with the verifier, ID token claims validated with the nonce",
            "ID token signature verified against the JWKS (ES256)",
            "userinfo for the ID token subject",
            "refresh_token grant, rotated",
            "the sign-on session answers at once; an ID token with another nonce is rejected",
        ],
        "{out}"
    );
}
