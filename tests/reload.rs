//! `POST /admin/reload`: a good config swaps routes, keys and upstreams at
//! once; a bad one leaves the running config untouched.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

fn body(up: &Upstream, roles: &str) -> String {
    format!(
        "{}\n{}\n[[routes]]\nname = \"orders\"\npath = \"/orders\"\nupstream = \"api\"\nroles = [{roles}]\n",
        issuers(),
        upstream("api", &[up.addr], "")
    )
}

async fn reload(gw: &Gateway, token: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(gw.admin_url("/admin/reload"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn status(gw: &Gateway, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(gw.url("/orders"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn reload_swaps_routes_and_keeps_the_old_config_on_errors() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start(&body(&up, "\"ADMIN\"")).await;
    let token = Signer::Hs.sign(&claims("alice"));
    assert_eq!(status(&gw, &token).await, StatusCode::OK);

    // Needs the admin token.
    assert_eq!(reload(&gw, "wrong").await.0, StatusCode::UNAUTHORIZED);

    // A stricter route: the same token is now short of a role.
    gw.rewrite_config(&body(&up, "\"SUPERUSER\""));
    let (code, answer) = reload(&gw, ADMIN_TOKEN).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(status(&gw, &token).await, StatusCode::FORBIDDEN);

    // A broken config is refused, naming the problem; the running one stays.
    gw.rewrite_config(
        &body(&up, "\"ADMIN\"").replace("upstream = \"api\"\nroles", "upstream = \"nope\"\nroles"),
    );
    let (code, answer) = reload(&gw, ADMIN_TOKEN).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no upstream named \"nope\""),
        "{answer}"
    );
    assert_eq!(status(&gw, &token).await, StatusCode::FORBIDDEN);

    // Another server for the upstream: requests go there from now on.
    let other = Upstream::start("other").await;
    gw.rewrite_config(&body(&other, "\"ADMIN\""));
    let (code, answer) = reload(&gw, ADMIN_TOKEN).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    let r: Value = reqwest::Client::new()
        .get(gw.url("/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["upstream"], "other");

    // A renamed route is counted under its new name.
    gw.rewrite_config(&body(&up, "\"ADMIN\"").replace("\"orders\"", "\"orders-v2\""));
    let (code, answer) = reload(&gw, ADMIN_TOKEN).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(status(&gw, &token).await, StatusCode::OK);
    let allowed = [("route", "orders-v2"), ("result", "allow")];
    assert_eq!(
        gw.wait_metric("portero_auth_decisions_total", &allowed, 1.0)
            .await,
        1.0
    );
    let route = [("route", "orders-v2")];
    assert_eq!(
        gw.wait_metric("portero_http_request_duration_seconds_count", &route, 1.0)
            .await,
        1.0
    );
}

#[tokio::test]
async fn admin_api_refuses_with_503_when_its_token_is_unset() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start_with_admin_token(&body(&up, "\"ADMIN\""), None).await;
    for token in [ADMIN_TOKEN, ""] {
        let (code, answer) = reload(&gw, token).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("PORTERO_ADMIN_TOKEN"),
            "{answer}"
        );
    }
    assert!(
        gw.log().contains("PORTERO_ADMIN_TOKEN is not set"),
        "said at start-up:\n{}",
        gw.log()
    );
    // Health and metrics stay open.
    assert_eq!(
        reqwest::get(gw.admin_url("/healthz"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

async fn reloads(gw: &Gateway, result: &str) -> f64 {
    gw.metric("portero_config_reloads_total", &[("result", result)])
        .await
}

#[tokio::test]
async fn sighup_reloads_like_the_admin_api_and_a_bad_file_keeps_the_running_config() {
    let up = Upstream::start("api").await;
    let mut gw = Gateway::start(&body(&up, "\"ADMIN\"")).await;
    let token = Signer::Hs.sign(&claims("alice"));
    assert_eq!(status(&gw, &token).await, StatusCode::OK);

    // A stricter route by SIGHUP: the process lives on, the token is now short.
    gw.rewrite_config(&body(&up, "\"SUPERUSER\""));
    gw.signal("HUP");
    let forbidden = poll(
        std::time::Duration::from_secs(5),
        || status(&gw, &token),
        |s| *s == StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(forbidden, StatusCode::FORBIDDEN, "{}", gw.log());
    assert_eq!(reloads(&gw, "ok").await, 1.0);

    // A file that does not load: logged, counted, and the running config stays.
    gw.rewrite_config("[[routes]]\npath = 3\n");
    gw.signal("HUP");
    gw.wait_metric("portero_config_reloads_total", &[("result", "error")], 1.0)
        .await;
    assert_eq!(reloads(&gw, "error").await, 1.0);
    assert!(gw
        .log_with("config not reloaded; the running one stays")
        .await
        .contains("gateway.toml"));
    assert_eq!(status(&gw, &token).await, StatusCode::FORBIDDEN);
    assert!(
        gw.wait_exit(std::time::Duration::from_millis(200))
            .await
            .is_none(),
        "SIGHUP does not stop the gateway"
    );
}

/// A reload by the admin API that applies everything the file changed.
async fn reloaded_needing_no_restart(gw: &Gateway) {
    let (code, answer) = reload(gw, ADMIN_TOKEN).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["restart_required"],
        serde_json::json!([]),
        "{answer}"
    );
}

/// A public route to `up` at `/`.
fn public_body(up: &Upstream) -> String {
    format!(
        "{}\n[[routes]]\nname = \"open\"\npath = \"/\"\nupstream = \"api\"\npublic = true\n",
        upstream("api", &[up.addr], "")
    )
}

/// A request sent as written, closing the connection; the status and, for
/// an answer from the upstream, what it received.
async fn sent(gw: &Gateway, head: &str, body: &str) -> (u16, Value) {
    let request = format!("{head}Host: gw.test\r\nConnection: close\r\n\r\n{body}");
    let (status, text) = raw_http(gw.port, request.as_bytes()).await;
    let echoed = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, echoed)
}

async fn post_of(gw: &Gateway, size: usize) -> u16 {
    let head = format!("POST /upload HTTP/1.1\r\nContent-Length: {size}\r\n");
    sent(gw, &head, &"x".repeat(size)).await.0
}

#[tokio::test]
async fn a_reload_applies_the_request_path_settings_to_the_next_request() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start_with_server_settings("access_log = false", &public_body(&up)).await;
    let forged = "GET /a//b HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n";
    let auth = "GET /.auth HTTP/1.1\r\nX-Original-URI: /x\r\nX-Original-Method: GET\r\n";

    // As started: a 5 KB body passes, the client's X-Forwarded-For is
    // replaced, `//` is kept, trace context goes upstream, `/.auth` is
    // routed, no access line is written.
    assert_eq!(post_of(&gw, 5_000).await, 200);
    let (status, seen) = sent(&gw, forged, "").await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["path"], "/a//b");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert!(seen["headers"].get("traceparent").is_some(), "{seen}");
    assert_eq!(sent(&gw, auth, "").await.1["upstream"], "api");
    assert!(!gw.log().contains("portero::access"), "{}", gw.log());

    // Every class of request-path setting changed at once, by the admin API.
    let server = "max_body_size = \"1KiB\"\nmerge_slashes = true\n\
                  trusted_proxies = [\"127.0.0.0/8\"]\ntrace_context = false\n\
                  access_log = true\nforward_auth_path = \"/.auth\"\nforward_auth_style = \"nginx\"\n\
                  body_timeout = \"1s\"\ntunnel_idle_timeout = \"5s\"\n";
    gw.rewrite_config_with_server(server, &public_body(&up));
    reloaded_needing_no_restart(&gw).await;

    assert_eq!(post_of(&gw, 5_000).await, 413);
    assert_eq!(post_of(&gw, 500).await, 200);
    let (status, seen) = sent(&gw, forged, "").await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["path"], "/a/b");
    assert_eq!(
        seen["headers"]["x-forwarded-for"], "6.6.6.6, 127.0.0.1",
        "{seen}"
    );
    assert!(seen["headers"].get("traceparent").is_none(), "{seen}");
    assert!(gw
        .log_with("portero::access")
        .await
        .contains("portero::access"));
    // A body that stops coming is cut at the new body timeout.
    let stalled = "POST /upload HTTP/1.1\r\nContent-Length: 100\r\n";
    let started = std::time::Instant::now();
    assert_eq!(sent(&gw, stalled, "x").await.0, 408);
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    // A forward-auth decision now: the public route allows, and the
    // upstream never sees it.
    let (status, seen) = sent(&gw, auth, "").await;
    assert_eq!((status, seen), (200, Value::Null));

    // Back by SIGHUP, through the same reload.
    gw.rewrite_config(&public_body(&up));
    gw.signal("HUP");
    let accepted = poll(
        std::time::Duration::from_secs(5),
        || post_of(&gw, 5_000),
        |s| *s == 200,
    )
    .await;
    assert_eq!(accepted, 200, "{}", gw.log());
}

#[tokio::test]
async fn a_reload_names_the_keys_only_a_restart_applies() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start(&public_body(&up)).await;
    let restart_required = || gw.metric("portero_config_restart_required", &[]);
    assert_eq!(restart_required().await, 0.0);

    gw.rewrite_config_with_server(
        "threads = 2\nheader_timeout = \"7s\"\nmax_body_size = \"1KiB\"",
        &public_body(&up),
    );
    let (code, answer) = reload(&gw, ADMIN_TOKEN).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["restart_required"],
        serde_json::json!(["server.threads", "server.header_timeout"]),
        "{answer}"
    );
    assert_eq!(restart_required().await, 1.0);
    assert!(gw
        .log_with("take effect only after a restart")
        .await
        .contains("server.threads, server.header_timeout"));
    // What a reload can apply, it did.
    assert_eq!(post_of(&gw, 5_000).await, 413);

    // The file as started again: nothing waits for a restart.
    gw.rewrite_config(&public_body(&up));
    reloaded_needing_no_restart(&gw).await;
    assert_eq!(restart_required().await, 0.0);
}

/// Reads one response of `stream` (a `Content-Length` body): its status and
/// what the upstream said it received.
async fn response_of(stream: &mut tokio::net::TcpStream) -> (u16, Value) {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        seen.push(byte[0]);
    }
    let head = String::from_utf8(seen).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .expect("a Content-Length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_proxy_dropped_from_trusted_proxies_is_not_trusted_on_its_open_connection() {
    use tokio::io::AsyncWriteExt;
    let up = Upstream::start("api").await;
    let trusting = "trusted_proxies = [\"127.0.0.0/8\"]";
    let gw = Gateway::start_with_server_settings(trusting, &public_body(&up)).await;
    let forged = b"GET /x HTTP/1.1\r\nHost: gw.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    conn.write_all(forged).await.unwrap();
    let (status, seen) = response_of(&mut conn).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["headers"]["x-forwarded-for"], "6.6.6.6, 127.0.0.1");

    gw.rewrite_config_with_server("", &public_body(&up));
    let (code, answer) = reload(&gw, ADMIN_TOKEN).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    // The same connection, kept alive across the reload: its next request
    // is a stranger's.
    conn.write_all(forged).await.unwrap();
    let (status, seen) = response_of(&mut conn).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1", "{seen}");
}
