//! `server.log_format = "json"`: every line the gateway writes is one JSON
//! object with stable field names, the access line included, and no token.

use crate::common;

use common::*;
use std::time::Duration;

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
    assert!(
        err.contains("\"xml\": expected \"text\" or \"json\""),
        "{err}"
    );
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

/// A gateway with `server` settings and `tables`, every path public to the upstream `up`.
async fn open_gateway(server: &str, tables: &str, up: &Upstream) -> Gateway {
    let body = format!(
        "{}\n{tables}\n[[routes]]\nname = \"open\"\npath = \"/\"\nupstream = \"api\"\npublic = true\n",
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
    let gw = open_gateway("log_format = \"json\"", "", &up).await;
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
    let gw = open_gateway("trace_context = false", "", &up).await;
    let seen = echoed(&gw, "/x", &[("traceparent", INCOMING)]).await;
    // The client's header passes as it came; nothing is made.
    assert_eq!(seen["headers"]["traceparent"], INCOMING);
    assert!(seen["headers"].get("x-request-id").is_none(), "{seen}");
}

/// The hex of an id the collector received.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn spans_reach_an_otlp_collector_in_the_trace_the_upstream_saw() {
    let collector = collector::Collector::start().await;
    let up = Upstream::start("api").await;
    let tracing = format!(
        "[tracing]\notlp_endpoint = \"{}\"\nservice_name = \"edge\"\n",
        collector.url()
    );
    let gw = open_gateway("", &tracing, &up).await;
    let seen = echoed(&gw, "/continued?q=secret", &[("traceparent", INCOMING)]).await;
    let portero_span = seen["headers"]["traceparent"].as_str().unwrap()[36..52].to_string();
    let seen = echoed(&gw, "/new", &[]).await;
    let new_trace = seen["headers"]["traceparent"].as_str().unwrap()[3..35].to_string();
    // The client asked that this trace not be recorded (flags 00).
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    echoed(&gw, "/unsampled", &[("traceparent", unsampled)]).await;

    let spans = collector.wait_for(2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let continued = &spans[0];
    assert_eq!(continued.service, "edge");
    assert_eq!(
        hex(&continued.span.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        hex(&continued.span.span_id),
        portero_span,
        "the parent the upstream was told of"
    );
    assert_eq!(
        hex(&continued.span.parent_span_id),
        "00f067aa0ba902b7",
        "the client's span"
    );
    assert_eq!(continued.span.name, "GET open");
    assert_eq!(continued.span.kind, 2, "SERVER");
    assert_eq!(
        continued.attribute("url.path").as_deref(),
        Some("/continued")
    );
    assert_eq!(
        continued.attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        continued.attribute("http.request.method").as_deref(),
        Some("GET")
    );
    assert!(continued.span.end_time_unix_nano >= continued.span.start_time_unix_nano);
    let started = &spans[1];
    assert_eq!(hex(&started.span.trace_id), new_trace);
    assert!(
        started.span.parent_span_id.is_empty(),
        "portero began this trace"
    );
    assert!(
        !format!("{spans:?}").contains("secret"),
        "no query string in a span"
    );
    assert_eq!(
        gw.wait_metric("portero_trace_spans_total", &[("result", "exported")], 2.0)
            .await,
        2.0
    );
    // Past the batch delay, the unsampled request has still sent nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(collector.spans().len(), 2);

    // A collector that is gone costs the spans, never the requests.
    collector.stop();
    let seen = echoed(&gw, "/lost", &[]).await;
    assert_eq!(seen["path"], "/lost");
    assert_eq!(
        gw.wait_metric("portero_trace_spans_total", &[("result", "failed")], 1.0)
            .await,
        1.0
    );
    // The log's writer is a thread of its own: the line may follow the count.
    assert!(
        gw.log_with("spans not exported")
            .await
            .contains("spans not exported"),
        "{}",
        gw.log()
    );
}

#[test]
fn span_export_needs_a_url_and_trace_context() {
    let listen = "[[listen]]\naddr = \"127.0.0.1:0\"\n";
    let cases = [
        ("[tracing]\notlp_endpoint = \"collector:4318\"\n", "tracing.otlp_endpoint"),
        (
            "[server]\ntrace_context = false\n[tracing]\notlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\n",
            "server.trace_context is false",
        ),
        ("[tracing]\nsample = 0.5\n", "sample"),
        (
            "[tracing]\notlp_endpoint = \"https://me:key@otel.example.com/v1/traces\"\n",
            "credentials in the URL",
        ),
    ];
    for (config, expected) in cases {
        let (ok, err) = check(&format!("{config}{listen}"));
        assert!(!ok, "{config}");
        assert!(err.contains(expected), "{config}: {err}");
    }
    let (ok, err) = check(&format!(
        "[tracing]\notlp_endpoint = \"https://otel.example.com/v1/traces\"\n{listen}"
    ));
    assert!(ok, "{err}");
}

#[tokio::test]
async fn the_last_spans_are_sent_before_portero_exits() {
    let collector = collector::Collector::start().await;
    let up = Upstream::start("api").await;
    let tracing = format!("[tracing]\notlp_endpoint = \"{}\"\n", collector.url());
    let mut gw = open_gateway("", &tracing, &up).await;
    echoed(&gw, "/last", &[]).await;
    // Well inside the batch's one-second wait: only a flush at exit sends it.
    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(5)).await.is_some());
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].attribute("url.path").as_deref(), Some("/last"));
}

/// A form posted to one of the demo's OAuth 2.0 endpoints.
async fn oauth2_form(gw: &Gateway, path: &str, form: &str) -> u16 {
    reqwest::Client::new()
        .post(gw.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_refused_login_says_why_in_one_warn_line_without_the_secret() {
    // The project issuer locks a login after one failure.
    let body = demo_body().replace(
        "dialect = \"project\"",
        "dialect = \"project\"\nmax_failures = 1",
    );
    let gw = Gateway::start(&body).await;
    let secret = "Hunter2-typed-secret";
    let json = |pairs: &[(&str, &str)]| {
        let map: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        Value::Object(map).to_string()
    };
    // A login that tries to forge a second line of its own.
    let forged = "nobody\n2030-01-01T00:00:00Z  INFO portero: forged";
    for (path, host, body) in [
        (
            SESSION,
            None,
            json(&[("username", forged), ("password", secret)]),
        ),
        (
            SESSION,
            None,
            json(&[("username", "admin"), ("password", secret)]),
        ),
        (
            SESSION,
            None,
            json(&[("username", "bloqueado"), ("password", "demo2024")]),
        ),
        (
            "/api/v1/auth",
            None,
            json(&[
                ("client_id", "inactive_client_456"),
                ("client_secret", secret),
            ]),
        ),
        (
            "/api/v1/auth",
            None,
            json(&[
                ("client_id", "orphan_client_789"),
                ("client_secret", secret),
            ]),
        ),
        (
            "/api/auth/token",
            Some("maxpoint.localhost"),
            json(&[("clientId", "envelope-stranger"), ("clientSecret", secret)]),
        ),
        (
            "/auth",
            None,
            json(&[
                ("business", "5a2ac49cbbbce212f885529c"),
                ("proyecto", "upconta"),
                ("password", secret),
            ]),
        ),
        (
            "/auth",
            None,
            json(&[
                ("business", "5a2ac49cbbbce212f885529c"),
                ("proyecto", "upconta"),
                ("password", "1234"),
            ]),
        ),
    ] {
        let (status, answer) = post(&gw, path, host, &body).await;
        assert!(
            status != 200 || answer.contains("inactive"),
            "{body}: {answer}"
        );
    }
    // OAuth 2.0: a client unknown, a client's wrong secret, and a user's
    // wrong password under the right application.
    let flat = "/oauth2/client-flat/token";
    let users = "/oauth2/login-refresh/token";
    for (path, form) in [
        (
            flat,
            format!("grant_type=client_credentials&client_id=ghost-app&client_secret={secret}"),
        ),
        (
            flat,
            format!("grant_type=client_credentials&client_id={DEMO_CLIENT}&client_secret={secret}"),
        ),
        (
            users,
            format!(
                "grant_type=password&client_id={DEMO_APP}&client_secret={DEMO_APP_SECRET}\
                 &username=admin&password={secret}"
            ),
        ),
    ] {
        assert_ne!(oauth2_form(&gw, path, &form).await, 200, "{form}");
    }

    // The log's writer is a thread of its own: the lines may follow the answers.
    let log = poll(
        Duration::from_secs(2),
        || async { gw.log() },
        |log| log.matches("portero::login").count() >= 11,
    )
    .await;
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("portero::login"))
        .collect();
    for (issuer, who, reason) in [
        ("session", format!("login={forged:?}"), "unknown_principal"),
        ("session", "login=\"admin\"".to_string(), "wrong_secret"),
        ("session", "login=\"bloqueado\"".to_string(), "blocked"),
        (
            "client-flat",
            "login=\"inactive_client_456\"".to_string(),
            "inactive",
        ),
        (
            "client-flat",
            "login=\"orphan_client_789\"".to_string(),
            "no_company",
        ),
        (
            "client-envelope",
            "login=\"envelope-stranger\"".to_string(),
            "unknown_principal",
        ),
        (
            "project",
            "login=\"5a2ac49cbbbce212f885529c/upconta\"".to_string(),
            "wrong_secret",
        ),
        (
            "project",
            "login=\"5a2ac49cbbbce212f885529c/upconta\"".to_string(),
            "locked",
        ),
        (
            "client-flat",
            "client=\"ghost-app\"".to_string(),
            "unknown_client",
        ),
        (
            "client-flat",
            format!("client=\"{DEMO_CLIENT}\""),
            "wrong_secret",
        ),
        (
            "login-refresh",
            "login=\"admin\"".to_string(),
            "wrong_secret",
        ),
    ] {
        let matching: Vec<&&str> = refusals
            .iter()
            .filter(|l| {
                l.contains(" WARN ")
                    && l.contains(&format!("issuer={issuer} "))
                    && l.contains(&who)
                    && l.ends_with(&format!("reason={reason}"))
            })
            .collect();
        assert_eq!(matching.len(), 1, "{issuer} {who} {reason}:\n{log}");
    }
    assert_eq!(refusals.len(), 11, "{log}");
    assert!(!log.contains(secret), "{log}");
    assert!(!log.contains("demo2024"), "{log}");
    // The forged line stays inside its quotes.
    assert!(!log.lines().any(|l| l.starts_with("2030-")), "{log}");
}
