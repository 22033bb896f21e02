//! `server.log_format = "json"`: every line the gateway writes is one JSON
//! object with stable field names, the access line included, and no token.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn json_logs_parse_and_name_their_fields_without_tokens() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start_with_server_settings(
        "log_format = \"json\"",
        &format!(
            "{}\n{}\n[[routes]]\nname = \"orders\"\npath = \"/\"\nupstream = \"api\"\n",
            issuers(),
            upstream("api", &[up.addr], "")
        ),
    )
    .await;
    let token = Signer::Hs.sign(&claims("alice"));
    let r = reqwest::Client::new()
        .get(gw.url("/orders/7?access_token=in-the-query"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let access = gw.log_with("portero::access").await;

    let log = gw.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        for key in ["timestamp", "level", "target"] {
            assert!(line.get(key).is_some(), "no {key}: {line}");
        }
    }
    let access: Value = access
        .lines()
        .find(|l| l.contains("portero::access"))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    assert_eq!(access["target"], "portero::access");
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["path"], "/orders/7");
    assert_eq!(access["status"], 200);
    assert_eq!(access["route"], "orders");
    assert_eq!(access["client"], "127.0.0.1");
    assert!(access["micros"].is_u64(), "{access}");
    // Neither the token nor the query string, which may carry one.
    assert!(!log.contains(&token));
    assert!(!log.contains(token.split('.').nth(2).unwrap()));
    assert!(!log.contains("in-the-query"));
}

#[test]
fn an_unknown_log_format_is_refused() {
    let (ok, err) = check("[server]\nlog_format = \"xml\"\n[[listen]]\naddr = \"127.0.0.1:0\"\n");
    assert!(!ok);
    assert!(err.contains("server.log_format"), "{err}");
}

/// The access lines of `log`, as JSON.
fn access_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| l.contains("portero::access"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A traceparent a client sent, as the W3C specification's example writes it.
const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A gateway with `server` settings, every path public to the upstream `up`.
async fn open_gateway(server: &str, up: &Upstream) -> Gateway {
    let body = format!(
        "{}\n[[routes]]\nname = \"open\"\npath = \"/\"\nupstream = \"api\"\npublic = true\n",
        upstream("api", &[up.addr], "")
    );
    Gateway::start_with_server_settings(server, &body).await
}

/// What the echoing upstream received for `path` sent with `headers`.
async fn echoed(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Value {
    let mut req = reqwest::Client::new().get(gw.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn trace_context_and_request_ids_reach_the_upstream_and_the_log() {
    let up = Upstream::start("api").await;
    let gw = open_gateway("log_format = \"json\"", &up).await;
    let seen = echoed(
        &gw,
        "/continued",
        &[("traceparent", INCOMING), ("tracestate", "vendor=x")],
    )
    .await;
    let sent = seen["headers"]["traceparent"].as_str().unwrap();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
    assert_ne!(parts[2], "00f067aa0ba902b7", "portero's span is the parent");
    assert_eq!(parts[3], "01");
    assert_eq!(seen["headers"]["tracestate"], "vendor=x");
    let made_id = seen["headers"]["x-request-id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(made_id.len(), 32, "{made_id}");

    let seen = echoed(&gw, "/new", &[("x-request-id", "client-chose-this")]).await;
    let sent = seen["headers"]["traceparent"].as_str().unwrap();
    let new_trace = sent.split('-').nth(1).unwrap().to_string();
    assert_eq!(new_trace.len(), 32);
    assert_ne!(new_trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(seen["headers"]["x-request-id"], "client-chose-this");

    let log = gw.log_with("/new").await;
    let lines = access_lines(&log);
    let by_path = |p: &str| lines.iter().find(|l| l["path"] == p).unwrap().clone();
    let first = by_path("/continued");
    assert_eq!(first["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(first["request_id"], made_id.as_str());
    let second = by_path("/new");
    assert_eq!(second["trace_id"], new_trace.as_str());
    assert_eq!(second["request_id"], "client-chose-this");
}

#[tokio::test]
async fn trace_context_off_sends_no_ids() {
    let up = Upstream::start("api").await;
    let gw = open_gateway("trace_context = false", &up).await;
    let seen = echoed(&gw, "/x", &[("traceparent", INCOMING)]).await;
    // The client's header passes as it came; nothing is made.
    assert_eq!(seen["headers"]["traceparent"], INCOMING);
    assert!(seen["headers"].get("x-request-id").is_none(), "{seen}");
}
