//! `/metrics` is valid Prometheus text: checked with `promtool` when it is
//! installed (CI installs it), and always with a strict line check here.

use crate::common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

#[tokio::test]
async fn metrics_parse_and_carry_the_portero_series() {
    let up = Upstream::start("api").await;
    let config = format!(
        "{}\n[issuers.flat]\ndialect = \"client-flat\"\n\n{}\n[[routes]]\nname = \"orders\"\npath = \"/\"\nupstream = \"api\"\n",
        issuers(),
        upstream("api", &[up.addr], "")
    );
    let gw = Gateway::start(&config).await;
    let client = reqwest::Client::new();
    client.get(gw.url("/a")).send().await.unwrap();
    client
        .get(gw.url("/a"))
        .bearer_auth(Signer::Hs.sign(&claims("alice")))
        .send()
        .await
        .unwrap();

    let ok = [("route", "orders"), ("status", "200")];
    assert_eq!(
        gw.wait_metric("portero_http_requests_total", &ok, 1.0)
            .await,
        1.0
    );
    let upstream_ok = [("upstream", "api"), ("outcome", "ok")];
    assert_eq!(
        gw.wait_metric("portero_upstream_requests_total", &upstream_ok, 1.0)
            .await,
        1.0
    );
    // The series looked up once per route and per upstream count each request.
    let allowed = [("route", "orders"), ("result", "allow"), ("reason", "ok")];
    assert_eq!(
        gw.wait_metric("portero_auth_decisions_total", &allowed, 1.0)
            .await,
        1.0
    );
    let route = [("route", "orders")];
    assert_eq!(
        gw.wait_metric("portero_http_request_duration_seconds_count", &route, 2.0)
            .await,
        2.0
    );
    let upstream = [("upstream", "api")];
    assert_eq!(
        gw.wait_metric("portero_upstream_duration_seconds_count", &upstream, 1.0)
            .await,
        1.0
    );
    let text = gw.metrics().await;
    for name in [
        "portero_http_requests_total",
        "portero_http_request_duration_seconds_bucket",
        "portero_auth_decisions_total",
        "portero_tokens_issued_total",
        "portero_upstream_requests_total",
        "portero_upstream_duration_seconds_bucket",
        "portero_upstream_healthy_servers",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let denied = [("route", "orders"), ("status", "401")];
    assert_eq!(
        gw.wait_metric("portero_http_requests_total", &denied, 1.0)
            .await,
        1.0
    );
    assert_eq!(
        gw.metric("portero_upstream_healthy_servers", &[("upstream", "api")])
            .await,
        1.0
    );
    // Never a subject in a label.
    assert!(!text.contains("alice"));
    // Series that count failures are there, at 0, before the first one.
    assert_exported(
        &text,
        &[
            "portero_store_errors_total{op=\"get_refresh\"} 0",
            "portero_store_errors_total{op=\"signing_key\"} 0",
            "portero_config_reloads_total{result=\"error\"} 0",
            "portero_config_restart_required 0",
        ],
    );

    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix('#') {
            assert!(
                rest.starts_with(" HELP ") || rest.starts_with(" TYPE "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(value.parse::<f64>().is_ok(), "bad value: {line}");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels: {line}");
        }
    }

    if let Ok(mut promtool) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = promtool.wait_with_output().unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool check metrics:\n{report}");
    } else {
        skipped(
            Outside::Promtool,
            "promtool is not installed, so only the built-in format check ran",
        );
    }
}

/// Every metric the alert rules (`deploy/prometheus/portero.rules.yml`) and
/// the dashboard (`deploy/grafana/portero.json`) read is one a running
/// gateway exports: a renamed metric would leave an alert that never fires
/// and a panel that stays empty. The gateway has what brings each family
/// out: a route, an upstream, a token endpoint asked once, an external
/// issuer, span export, a shadow comparison, and a Redis store it loses
/// for a moment.
#[tokio::test]
async fn the_alert_rules_and_the_dashboard_read_only_metrics_portero_exports() {
    let Some(url) = common::redis::shared() else {
        return;
    };
    let relay =
        common::redis::Relay::start(url.strip_prefix("redis://").unwrap().parse().unwrap()).await;
    let idp = common::idp::Idp::start("https://sso.example").await;
    idp.publish(vec![common::idp::IdpKey::rsa(
        "k1",
        jsonwebtoken::Algorithm::RS256,
    )
    .jwk()]);
    let up = Upstream::start("api").await;
    let collector = common::collector::Collector::start().await;
    let config = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"portero-metrics-{}:\"\ntimeout = \"300ms\"\n\n\
         [tracing]\notlp_endpoint = \"{}\"\n\n\
         {}\n[issuers.flat]\ndialect = \"client-flat\"\n\n[issuers.flat.oauth2]\n\n[issuers.flat.shadow]\nurl = \"http://127.0.0.1:9\"\n\n[issuers.sso]\njwks_url = \"{}\"\niss = \"https://sso.example\"\n\n\
         {}\n[[routes]]\nname = \"orders\"\npath = \"/\"\nupstream = \"api\"\n",
        relay.url(),
        std::process::id(),
        collector.url(),
        issuers(),
        idp.jwks_url(),
        upstream("api", &[up.addr], "")
    );
    let gw = Gateway::start(&config).await;
    // A login while Redis is away: a token-endpoint answer and a failed
    // store operation.
    relay.cut();
    let login = reqwest::Client::new()
        .post(gw.url("/api/v1/auth"))
        .header("content-type", "application/json")
        .body(r#"{"client_id":"nobody","client_secret":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    relay.restore().await;

    let exported = gw.metrics().await;
    let file = |path: &str| {
        std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let rules = file("deploy/prometheus/portero.rules.yml");
    let dashboard: serde_json::Value =
        serde_json::from_str(&file("deploy/grafana/portero.json")).unwrap();
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(queries.len() >= 16, "{queries:?}");
    let sources = [
        ("the rules", rules, 13),
        ("the dashboard", queries.join("\n"), 17),
    ];
    for (what, text, at_least) in sources {
        let read = metric_names(&text);
        assert!(read.len() >= at_least, "{what}: {read:?}");
        for name in &read {
            let exported_here = exported
                .lines()
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")));
            assert!(
                exported_here,
                "{what} read {name}, which /metrics lacks:\n{exported}"
            );
        }
    }
    check_promql(&queries);
}

/// The `portero_*` metric names in `text` (a histogram's `_bucket` as written).
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in text.match_indices("portero_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The dashboard's queries are PromQL `promtool` accepts, with Grafana's
/// variables given values (as recording rules, the one form it checks).
fn check_promql(queries: &[String]) {
    let Ok(version) = Command::new("promtool").arg("--version").output() else {
        skipped(
            Outside::Promtool,
            "promtool is not installed, so the dashboard's PromQL is not parsed",
        );
        return;
    };
    assert!(version.status.success());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        let q = q
            .replace("$__rate_interval", "5m")
            .replace("$__range", "1h")
            .replace("$instance", ".*");
        let expr = serde_json::to_string(&q).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard_query_{i}\n        expr: {expr}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard.rules.yml");
    std::fs::write(&path, rules).unwrap();
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn series_whose_labels_are_known_are_exported_at_0_from_the_start() {
    let gw = common::demo(|body| body).await;
    assert_exported(
        &gw.metrics().await,
        &[
            "portero_refresh_tokens_total{issuer=\"login-refresh\",result=\"refused\"} 0",
            "portero_tunnels_open{route=\"websocket\"} 0",
            "portero_tunnels_closed_total{reason=\"token_expired\",route=\"websocket\"} 0",
            "portero_store_errors_total{op=\"put_refresh\"} 0",
            "portero_upstream_down_tries_total{upstream=\"echo\"} 0",
        ],
    );
}

/// Each of `samples` is a line of the exposition `text`, exactly.
fn assert_exported(text: &str, samples: &[&str]) {
    for sample in samples {
        assert!(
            text.lines().any(|l| l == *sample),
            "{sample} missing:\n{text}"
        );
    }
}

/// A token-endpoint answer says why beside its status: each refusal by
/// what was wrong, never who asked.
#[tokio::test]
async fn token_endpoint_answers_are_counted_by_reason() {
    let gw = common::demo(|body| body).await;
    let login = |path: &'static str, body: &'static str| {
        let gw = &gw;
        async move { post(gw, path, None, body).await.0 }
    };
    assert_eq!(
        login(SESSION, r#"{"username":"admin","password":"wrong"}"#).await,
        401
    );
    assert_eq!(
        login(SESSION, r#"{"username":"nobody","password":"wrong"}"#).await,
        401
    );
    assert_eq!(login(SESSION, r#"{"username":"admin"}"#).await, 400);
    let flat = |id: &str| format!(r#"{{"client_id":"{id}","client_secret":"x"}}"#);
    for id in ["inactive_client_456", "orphan_client_789"] {
        post(&gw, "/api/v1/auth", None, &flat(id)).await;
    }
    let oauth2 = |form: &'static str| {
        reqwest::Client::new()
            .post(gw.url("/oauth2/client-flat/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    let ok = format!(
        "grant_type=client_credentials&client_id={DEMO_CLIENT}&client_secret={DEMO_CLIENT_SECRET}"
    );
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/client-flat/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(ok.replace("client_credentials", "password"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = oauth2("grant_type=client_credentials&client_id=ghost&client_secret=x")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let legacy = |issuer, status, reason| {
        let gw = &gw;
        async move {
            let labels = [("issuer", issuer), ("status", status), ("reason", reason)];
            gw.metric("portero_token_requests_total", &labels).await
        }
    };
    assert_eq!(legacy("session", "401", "wrong_secret").await, 1.0);
    assert_eq!(legacy("session", "401", "unknown_principal").await, 1.0);
    assert_eq!(legacy("session", "400", "malformed_request").await, 1.0);
    assert_eq!(legacy("client-flat", "200", "inactive").await, 1.0);
    assert_eq!(legacy("client-flat", "404", "no_company").await, 1.0);
    let standard = |status, reason| {
        let gw = &gw;
        async move {
            let labels = [
                ("issuer", "client-flat"),
                ("endpoint", "token"),
                ("status", status),
                ("reason", reason),
            ];
            gw.metric("portero_oauth2_requests_total", &labels).await
        }
    };
    assert_eq!(standard("400", "unsupported_grant").await, 1.0);
    assert_eq!(standard("401", "unknown_client").await, 1.0);
    // No login or client id is a label.
    let exported = gw.metrics().await;
    assert!(!exported.contains("nobody") && !exported.contains("ghost"));
}
