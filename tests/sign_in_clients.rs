//! A user signs in to a `kind = "oauth2"` issuer through clients no one
//! here wrote, run by Node.js from tests/oidc: panva's `oauth4webapi` for
//! the authorization code flow with PKCE, the ID token (its signature
//! checked by `jose` against the issuer's JWKS) and RFC 9207's `iss`
//! (tests/oidc/sign_in.mjs); and the MCP TypeScript SDK's client, which
//! finds its way from portero's 401 in front of an MCP server (the PyPI
//! `mcp` package, tests/mcp_server.py) through the protected resource
//! metadata, registration and the sign-in page to a tool's result
//! (tests/oidc/mcp_client.mjs), or named by its client ID metadata
//! document instead of registering, and stepping up from `mcp:read` to
//! `mcp:write`; and the Python SDK's client named by its document
//! (tests/mcp_client.py). Each script prints `ok <check>` per check
//! made; the tests name every check they expect, so a check that silently
//! stops running fails here. Without Node.js, the npm packages or `mcp`
//! the tests skip, and fail instead under `PORTERO_REQUIRE_OAUTH2_CLIENTS=1`.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::mcp::McpServer;
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

/// The standard issuer (`oauth2`: its settings), and `/mcp` in front of
/// the MCP server: a protected resource (RFC 9728) that a token of `app`
/// for it, with the scope its 401 names, may use, told who the user is.
fn mcp_body(server: &McpServer, oauth2: &str) -> String {
    mcp_body_asking(server, oauth2, "\"mcp:tools\"")
}

/// [`mcp_body`] with the route asking for `scopes` (TOML list items).
fn mcp_body_asking(server: &McpServer, oauth2: &str, scopes: &str) -> String {
    format!(
        r#"{}
{}
[[routes]]
name = "mcp"
path = "/mcp"
upstream = "mcp"
resource_metadata = true
scopes = [{scopes}]

[routes.headers]
x-user-sub = "sub"
"#,
        standard_body(oauth2),
        upstream("mcp", &[([127, 0, 0, 1], server.port).into()], ""),
    )
}

#[tokio::test]
async fn the_mcp_sdk_finds_signs_in_registers_and_calls_a_tool_behind_portero() {
    if !node_with(&["@modelcontextprotocol/sdk"]) {
        return;
    }
    let Some(server) = McpServer::start() else {
        return;
    };
    let body = mcp_body(&server, "registration = \"open\"");
    let gw = Gateway::start(&body).await;
    let out = mcp_client(&gw, &body, None).await;
    assert_eq!(
        lines_of(&out, "ok "),
        mcp_checks("registered (RFC 7591) as a public client"),
        "{out}"
    );
    mcp_steps(&out, Some("POST /oauth2/app/register 201"));
    mcp_server_reached(&server, &out);
}

/// MCP 2025-11-25's first choice: the SDK's `clientMetadataUrl`, a
/// document the test serves over HTTPS, and no registration at all.
/// (Two threads: the script blocks one while the documents are served.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_sdk_signs_in_named_by_its_client_id_metadata_document() {
    if !node_with(&["@modelcontextprotocol/sdk"]) {
        return;
    }
    let Some(server) = McpServer::start() else {
        return;
    };
    let (body, documents, client) = documented(
        &server,
        "/mcp-client.json",
        "portero MCP test client",
        "http://127.0.0.1:8976/callback",
    )
    .await;
    let gw = Gateway::start(&body).await;
    let out = mcp_client(&gw, &body, Some(&client)).await;
    assert_eq!(
        lines_of(&out, "ok "),
        mcp_checks("named by its client ID metadata document, without registering"),
        "{out}"
    );
    mcp_steps(&out, None);
    assert!(!out.contains("/register"), "{out}");
    assert_eq!(documents.fetches("/mcp-client.json"), 1);
    mcp_server_reached(&server, &out);
}

/// The MCP server behind the standard issuer taking metadata documents,
/// and a public client's document at `path` (named `name`, back to
/// `redirect_uri`) served over HTTPS: the gateway's config, the document
/// server, and the client's id.
async fn documented(
    server: &McpServer,
    path: &str,
    name: &str,
    redirect_uri: &str,
) -> (String, common::documents::DocumentServer, String) {
    let documents = common::documents::DocumentServer::start().await;
    let client = documents.url(path);
    let document = serde_json::json!({
        "client_id": client,
        "client_name": name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    documents.set(path, common::documents::Answer::json(document.to_string()));
    let settings = format!(
        "client_metadata_documents = true\nclient_metadata_private_hosts = [\"localhost\"]\n\
         client_metadata_ca_file = \"{}\"\n",
        documents.ca.cert_file.display()
    );
    (mcp_body(server, &settings), documents, client)
}

/// Runs the SDK's client against `gw` (its public_url made its own).
async fn mcp_client(gw: &Gateway, body: &str, metadata_url: Option<&str>) -> String {
    let base = gw.public_url(body).await;
    let mut env = vec![
        ("PORTERO_URL", base),
        ("ISSUER", "app".to_string()),
        ("USERNAME", USER.to_string()),
        ("PASSWORD", USER_PASSWORD.to_string()),
    ];
    if let Some(url) = metadata_url {
        env.push(("CLIENT_METADATA_URL", url.to_string()));
    }
    let out = node("mcp_client.mjs", &env);
    println!("{out}");
    out
}

/// The checks the script makes, `named` saying how the client got its id.
fn mcp_checks(named: &str) -> Vec<String> {
    [
        "portero refused the first request; the SDK went to authorize",
        named,
        "authorization request with PKCE S256 and the MCP server as resource (RFC 8707)",
        "signed in on the page; the callback has the code, state and iss",
        "code redeemed for a token of the MCP server",
        "connected; tools listed",
        "tool called: add(2, 3) = 5",
        "the server's event stream (GET) passes through portero",
        "the session ended with DELETE",
        "a stale token refreshed without signing in again",
    ]
    .map(str::to_string)
    .to_vec()
}

/// The way there, request by request, in order (other requests may come
/// between): refused, the resource's metadata, its authorization
/// server's, its registration (`registered`), the page, the form, the
/// token, the server, the session's end.
fn mcp_steps(out: &str, registered: Option<&str>) {
    let log = lines_of(out, "log ");
    let discovery = [
        "POST /mcp 401",
        "GET /.well-known/oauth-protected-resource/mcp 200",
        "GET /.well-known/oauth-authorization-server/oauth2/app 200",
    ];
    let rest = [
        "GET /oauth2/app/authorize 200",
        "POST /oauth2/app/sign-in 303",
        "POST /oauth2/app/token 200",
        "POST /mcp 200",
        "DELETE /mcp 200",
    ];
    let steps = discovery.into_iter().chain(registered).chain(rest);
    let mut at = 0;
    for step in steps {
        match log[at..].iter().position(|l| l == step) {
            Some(i) => at += i + 1,
            None => panic!("{step:?} not found after line {at} of the log:\n{out}"),
        }
    }
    let result = lines_of(out, "result ");
    assert_eq!(result.first().map(String::as_str), Some("5"), "{out}");
}

/// Only what portero let through reached the server, each for the user.
fn mcp_server_reached(server: &McpServer, out: &str) {
    let reached = server.requests();
    assert!(
        reached.iter().any(|r| r.starts_with("POST /mcp ")),
        "{reached:?}\n{out}"
    );
    assert!(
        reached.iter().all(|r| r.ends_with(&format!(" sub={USER}"))),
        "{reached:?}"
    );
}

/// A step up (MCP's scope step-up): the SDK signs in for `mcp:read`; the
/// route then asks for `mcp:write` too (a reload); its 403 names both, the
/// SDK asks for both, the page asks the user only for `mcp:write`, and
/// the token holds both. (Two threads: the test reads the script while the
/// gateway and the MCP server go on.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_sdk_steps_up_from_mcp_read_to_mcp_write() {
    use std::io::{BufRead, Write};
    if !node_with(&["@modelcontextprotocol/sdk"]) {
        return;
    }
    let Some(server) = McpServer::start() else {
        return;
    };
    // Words for each scope the route asks for, as the operator would write them.
    let oauth2 = |write: bool| {
        let mut words = r#"scope_descriptions = { "mcp:read" = "Read your notes""#.to_string();
        if write {
            words += r#", "mcp:write" = "Change your notes""#;
        }
        format!("registration = \"open\"\nconsent_ttl = \"1h\"\n{words} }}\n")
    };
    let body = mcp_body_asking(&server, &oauth2(false), "\"mcp:read\"");
    let gw = Gateway::start(&body).await;
    let base = gw.public_url(&body).await;
    let mut script = std::process::Command::new("node")
        .arg("mcp_client.mjs")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc"))
        .env("PORTERO_URL", &base)
        .env("ISSUER", "app")
        .env("USERNAME", USER)
        .env("PASSWORD", USER_PASSWORD)
        .env("STEP_UP", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(script.stdout.take().unwrap()).lines();
    let mut out = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        out += &format!("{line}\n");
        if line == "waiting for a step up" {
            break;
        }
    }
    assert!(out.contains("waiting for a step up"), "{out}");
    // The same config (the users' hashes too: a new one would end the
    // sign-on) but the route's scopes and their words.
    let wider = body.replace(&oauth2(false), &oauth2(true)).replace(
        r#"scopes = ["mcp:read"]"#,
        r#"scopes = ["mcp:read", "mcp:write"]"#,
    );
    gw.rewrite_config_with_server(&format!("public_url = \"{base}\""), &wider);
    let r = reqwest::Client::new()
        .post(gw.admin_url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    writeln!(script.stdin.take().unwrap(), "go").unwrap();
    for line in lines {
        out += &format!("{}\n", line.unwrap());
    }
    let status = script.wait().unwrap();
    println!("{out}");
    assert!(status.success(), "{out}");
    let checks = lines_of(&out, "ok ");
    assert_eq!(
        checks[checks.len() - 2..],
        [
            "403 insufficient_scope; the page asked only for mcp:write",
            "stepped up: the token holds mcp:read and mcp:write, and the tool is called",
        ],
        "{out}"
    );
}

/// The Python SDK's client (`mcp`) too: `client_metadata_url`, a document
/// served over HTTPS, no registration. (Two threads, as above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_mcp_sdk_signs_in_named_by_its_client_id_metadata_document() {
    let Some(server) = McpServer::start() else {
        return;
    };
    let (body, documents, client) = documented(
        &server,
        "/python-client.json",
        "portero Python MCP test client",
        "http://127.0.0.1:8977/callback",
    )
    .await;
    let gw = Gateway::start(&body).await;
    let base = gw.public_url(&body).await;
    let out = tokio::task::block_in_place(|| {
        Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py"))
            .env("PORTERO_URL", &base)
            .env("CLIENT_METADATA_URL", &client)
            .env("USERNAME", USER)
            .env("PASSWORD", USER_PASSWORD)
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines_of(&stdout, "ok "),
        [
            "signed in named by its client ID metadata document",
            "tool called: add(20, 22) = 42",
        ]
    );
    assert_eq!(documents.fetches("/python-client.json"), 1);
    mcp_server_reached(&server, &stdout);
}
