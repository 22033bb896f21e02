//! Limits per consumer through the real gateway: a rate per subject with
//! the RateLimit headers, burst, a principal's and a claim's own quota,
//! requests in flight per route and per key against a slow upstream, a
//! rate per address on a token endpoint that stops a credential-stuffing
//! loop before any password is hashed, and address rules with and without
//! trusted proxies.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Issuers `test` and `other`, the demo's token endpoints, and `routes`
/// in front of the upstream at `upstream`.
fn config(upstream_addr: std::net::SocketAddr, routes: &str) -> String {
    format!(
        "{}\n{}\n{routes}",
        issuers(),
        upstream("api", &[upstream_addr], "")
    )
}

fn token(sub: &str) -> String {
    Signer::Hs.sign(&claims(sub))
}

async fn get(gw: &Gateway, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(gw.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header: {:?}", r.headers()))
        .to_str()
        .unwrap()
}

/// How many of `n` requests, sent one after another, got each status.
async fn statuses(gw: &Gateway, path: &str, token: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(gw, path, token).await.status().as_u16());
    }
    out
}

fn count(list: &[u16], status: u16) -> usize {
    list.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn a_subject_over_its_rate_gets_429_while_another_is_untouched_until_the_window_passes() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start(&config(
        up.addr,
        r#"
[[routes]]
name = "orders"
path = "/orders"
upstream = "api"
rate_limit = { requests = 3, per = "2s" }
"#,
    ))
    .await;
    let (alice, bob) = (token("alice"), token("bob"));

    for left in [2, 1, 0] {
        let r = get(&gw, "/orders", &alice).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "ratelimit-policy"), "\"orders\";q=3;w=2");
        let state = header(&r, "ratelimit");
        assert!(
            state.starts_with(&format!("\"orders\";r={left};t=")),
            "{state}"
        );
        assert!(r.headers().get("retry-after").is_none());
    }
    let refused = get(&gw, "/orders", &alice).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "ratelimit-policy"), "\"orders\";q=3;w=2");
    assert!(header(&refused, "ratelimit").starts_with("\"orders\";r=0;t="));
    let retry: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=4).contains(&retry), "Retry-After: {retry}");
    assert_eq!(header(&refused, "content-type"), "application/json");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    let served_before = up.requests();

    // Another subject has its own count.
    assert_eq!(count(&statuses(&gw, "/orders", &bob, 3).await, 200), 3);
    // Refused requests never reached the upstream, nor counted against alice.
    assert_eq!(up.requests(), served_before + 3);
    assert_eq!(
        get(&gw, "/orders", &alice).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // A reload that leaves the limit as it was keeps the counts: nobody
    // gets a fresh quota from it.
    let reloaded = reqwest::Client::new()
        .post(gw.admin_url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reloaded.status(), StatusCode::OK);
    assert_eq!(
        get(&gw, "/orders", &alice).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // After Retry-After, alice is served again.
    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(50)).await;
    assert_eq!(get(&gw, "/orders", &alice).await.status(), StatusCode::OK);

    // Counted by route and limit, never by subject.
    let limited = gw
        .metric(
            "portero_limited_requests_total",
            &[("route", "orders"), ("limit", "rate")],
        )
        .await;
    assert_eq!(limited, 3.0);
    let metrics = gw.metrics().await;
    assert!(!metrics.contains("alice") && !metrics.contains("bob"));
}

#[tokio::test]
async fn burst_lets_a_quiet_subject_send_more_at_once_then_holds_it_to_the_rate() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start(&config(
        up.addr,
        r#"
[[routes]]
name = "bursty"
path = "/bursty"
upstream = "api"
rate_limit = { requests = 2, per = "1s", burst = 3 }

[[routes]]
name = "steady"
path = "/steady"
upstream = "api"
rate_limit = { requests = 2, per = "1s" }
"#,
    ))
    .await;
    let alice = token("alice");
    let first = statuses(&gw, "/bursty", &alice, 8).await;
    assert_eq!(first[..5], [200; 5], "{first:?}");
    assert_eq!(count(&first, 200), 5, "{first:?}");
    assert_eq!(count(&statuses(&gw, "/steady", &alice, 8).await, 200), 2);

    // The quota it states is the sustained one; Retry-After says when
    // the bucket has room again, and it does.
    let refused = get(&gw, "/bursty", &alice).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "ratelimit-policy"), "\"bursty\";q=2;w=1");
    let retry: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=6).contains(&retry), "Retry-After: {retry}");
    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(50)).await;
    assert_eq!(get(&gw, "/bursty", &alice).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_principal_or_a_claim_may_carry_its_own_quota() {
    let up = Upstream::start("api").await;
    let body = demo_body().replace(
        "client_id = \"demo_client_123\"",
        "client_id = \"demo_client_123\"\nrate_limit = 6",
    );
    let gw = Gateway::start(
        &format!("{}\n{}\n{body}", issuers(), upstream("api", &[up.addr], "")).replace(
            "[[routes]]\nname = \"public\"",
            r#"[[routes]]
name = "reports"
path = "/reports"
upstream = "api"
rate_limit = { requests = 2, per = "10s", override_claim = "rate" }

[[routes]]
name = "public""#,
        ),
    )
    .await;
    let (status, login) = post(
        &gw,
        "/api/v1/auth",
        None,
        r#"{"client_id":"demo_client_123","client_secret":"demo_secret_456_ABCDEFGH"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let premium = parse(&login)["access_token"].as_str().unwrap().to_string();
    let got = statuses(&gw, "/reports", &premium, 9).await;
    assert_eq!(count(&got, 200), 6, "the principal's own 6: {got:?}");
    let r = get(&gw, "/reports", &premium).await;
    assert_eq!(header(&r, "ratelimit-policy"), "\"reports\";q=6;w=10");

    let mut c = claims("carol");
    c["rate"] = json!(4);
    let with_claim = Signer::Hs.sign(&c);
    assert_eq!(
        count(&statuses(&gw, "/reports", &with_claim, 8).await, 200),
        4
    );
    let plain = token("dave");
    assert_eq!(count(&statuses(&gw, "/reports", &plain, 8).await, 200), 2);
}

#[tokio::test]
async fn requests_in_flight_are_capped_per_route_and_per_key_with_a_slow_upstream() {
    let up = Upstream::start_with_delay("slow", Duration::from_millis(600)).await;
    let gw = Gateway::start(&config(
        up.addr,
        r#"
[[routes]]
name = "route-cap"
path = "/capped"
upstream = "api"
max_in_flight = 2

[[routes]]
name = "key-cap"
path = "/per-key"
upstream = "api"
concurrency = { max_in_flight = 1, by = "sub" }
"#,
    ))
    .await;
    let alice = token("alice");
    let bob = token("bob");
    let burst = |path: &'static str, tokens: Vec<String>| {
        let gw = &gw;
        async move {
            let sends = tokens.iter().map(|t| async move {
                let r = get(gw, path, t).await;
                let retry = r.headers().get("retry-after").cloned();
                (r.status().as_u16(), retry)
            });
            futures_util::future::join_all(sends).await
        }
    };
    let route = burst("/capped", vec![alice.clone(); 4]).await;
    let codes: Vec<u16> = route.iter().map(|(s, _)| *s).collect();
    assert_eq!(count(&codes, 200), 2, "{codes:?}");
    assert_eq!(count(&codes, 503), 2, "{codes:?}");
    assert!(route
        .iter()
        .filter(|(s, _)| *s == 503)
        .all(|(_, retry)| retry.as_ref().is_some_and(|v| v == "1")));
    // The slots come back with the responses.
    assert_eq!(get(&gw, "/capped", &alice).await.status(), StatusCode::OK);

    let keyed = burst("/per-key", vec![alice.clone(), alice.clone(), bob.clone()]).await;
    let codes: Vec<u16> = keyed.iter().map(|(s, _)| *s).collect();
    assert_eq!(count(&codes[..2], 200), 1, "one of alice's two: {codes:?}");
    assert_eq!(codes[2], 200, "bob is not alice: {codes:?}");
    assert_eq!(
        gw.metric(
            "portero_limited_requests_total",
            &[("route", "key-cap"), ("limit", "concurrency")]
        )
        .await,
        1.0
    );
    assert_eq!(
        gw.metric("portero_requests_in_flight", &[("route", "key-cap")])
            .await,
        0.0
    );
}

#[tokio::test]
async fn a_rate_per_address_on_a_token_endpoint_stops_credential_stuffing_before_any_hashing() {
    let gw = demo(|body| {
        body.replace(
            "dialect = \"session\"",
            "dialect = \"session\"\nrate_limit = { requests = 3, per = \"60s\", by = \"client_ip\" }",
        )
    })
    .await;
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..20 {
        let body = format!(r#"{{"username":"user{i}","password":"guess-{i}"}}"#);
        answers.push(post(&gw, SESSION, None, &body).await);
    }
    let elapsed = started.elapsed();
    let unauthorized = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED);
    assert_eq!(unauthorized.count(), 3, "{answers:?}");
    let limited: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(limited.len(), 17, "{answers:?}");
    // In the session dialect's own shape.
    let body = parse(&limited[0].1);
    assert_eq!(keys(&body), ["error", "message"]);
    assert_eq!(body["error"], 1);
    assert_eq!(body["message"], "Demasiadas solicitudes, intente más tarde");
    // Only three logins reached the dialect (and its password hashing).
    let checked = gw
        .metric(
            "portero_token_requests_total",
            &[("issuer", "session"), ("status", "401")],
        )
        .await;
    assert_eq!(checked, 3.0);
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[tokio::test]
async fn address_rules_read_forwarded_for_only_from_trusted_proxies() {
    let up = Upstream::start("api").await;
    let routes = r#"
[[routes]]
name = "partners"
path = "/partners"
upstream = "api"
public = true
allow_ips = ["203.0.113.0/24", "2001:db8::/32"]
deny_ips = ["203.0.113.66"]

[[routes]]
name = "open"
path = "/open"
upstream = "api"
public = true
"#;
    let send = |gw: &Gateway, path: &str, xff: Option<&str>| {
        let mut req = reqwest::Client::new().get(gw.url(path));
        if let Some(v) = xff {
            req = req.header("x-forwarded-for", v);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };

    // Loopback is a trusted proxy: its X-Forwarded-For names the client.
    let behind = Gateway::start_with_server_settings(
        "trusted_proxies = [\"127.0.0.1/32\"]",
        &format!(
            "{}\n[[routes]]\npath = \"/\"\nupstream = \"api\"\npublic = true\n{routes}",
            upstream("api", &[up.addr], "")
        ),
    )
    .await;
    assert_eq!(send(&behind, "/partners", Some("203.0.113.5")).await, 200);
    assert_eq!(send(&behind, "/partners", Some("2001:db8::7")).await, 200);
    assert_eq!(send(&behind, "/partners", Some("198.51.100.1")).await, 403);
    assert_eq!(
        send(&behind, "/partners", Some("203.0.113.66")).await,
        403,
        "denied inside the allowed range"
    );
    // A client's own forged entry sits left of what the proxy appended.
    assert_eq!(
        send(&behind, "/partners", Some("203.0.113.5, 198.51.100.1")).await,
        403
    );
    assert_eq!(
        send(&behind, "/partners", None).await,
        403,
        "the proxy itself is not a partner"
    );
    assert_eq!(send(&behind, "/open", Some("198.51.100.1")).await, 200);

    // Without trusted proxies the same header is the client's word: ignored.
    let direct = Gateway::start(&format!("{}\n{routes}", upstream("api", &[up.addr], ""))).await;
    assert_eq!(send(&direct, "/partners", Some("203.0.113.5")).await, 403);
    assert_eq!(send(&direct, "/open", Some("203.0.113.5")).await, 200);
    let r = reqwest::Client::new()
        .get(direct.url("/partners"))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
    assert_eq!(
        direct
            .metric(
                "portero_limited_requests_total",
                &[("route", "partners"), ("limit", "ip")]
            )
            .await,
        2.0
    );

    // A gateway-wide deny list applies before any route.
    let denied = Gateway::start_with_server_settings(
        "deny_ips = [\"127.0.0.0/8\", \"::1\"]",
        &format!("{}\n{routes}", upstream("api", &[up.addr], "")),
    )
    .await;
    assert_eq!(send(&denied, "/open", None).await, 403);
    assert_eq!(send(&denied, "/no-such-route", None).await, 403);
}

/// Sends `prefix` and then a request for `path` on a raw connection; the
/// status, or `None` when the gateway closed the connection instead.
async fn raw_status(port: u16, prefix: &[u8], path: &str) -> Option<u16> {
    raw_status_with(port, prefix, path, "").await
}

/// As `raw_status`, with `fields` (whole lines) in the request.
async fn raw_status_with(port: u16, prefix: &[u8], path: &str, fields: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{fields}Connection: close\r\n\r\n");
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(request.as_bytes());
    // The gateway may close before taking it all: that is an answer too.
    let _ = s.write_all(&bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    let head = String::from_utf8_lossy(&answer);
    head.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_proxy_protocol_header_names_the_client_only_from_a_trusted_proxy() {
    let up = Upstream::start("api").await;
    let body = format!(
        "[[listen]]\naddr = \"127.0.0.1:0\"\nproxy_protocol = true\n\n{}\n\
         [[routes]]\nname = \"partners\"\npath = \"/partners\"\nupstream = \"api\"\n\
         public = true\nallow_ips = [\"203.0.113.0/24\"]\n",
        upstream("api", &[up.addr], "")
    );
    let v1 = |ip: &str| format!("PROXY TCP4 {ip} 127.0.0.1 50000 80\r\n").into_bytes();

    let behind =
        Gateway::start_with_server_settings("trusted_proxies = [\"127.0.0.1\"]", &body).await;
    let port = behind.public_port(1);
    assert_eq!(
        raw_status(port, &v1("203.0.113.7"), "/partners").await,
        Some(200)
    );
    assert_eq!(
        raw_status(port, &v1("198.51.100.1"), "/partners").await,
        Some(403)
    );
    // The balancer's own health check names nobody: the socket's peer stands.
    assert_eq!(
        raw_status(port, b"PROXY UNKNOWN\r\n", "/partners").await,
        Some(403)
    );
    // A proxy the header names is trusted as itself: the client it names.
    let named = "X-Forwarded-For: 203.0.113.7\r\n";
    assert_eq!(
        raw_status_with(port, &v1("127.0.0.1"), "/partners", named).await,
        Some(200)
    );
    // A header naming nobody leaves an unknown client, whose own
    // X-Forwarded-For no proxy vouches for: v1 UNKNOWN, v2 LOCAL, and v2
    // PROXY of the unspecified and the Unix family.
    let v2 = |command: u8, family: u8, addresses: &[u8]| {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.extend([command, family]);
        h.extend((addresses.len() as u16).to_be_bytes());
        h.extend(addresses);
        h
    };
    for header in [
        b"PROXY UNKNOWN\r\n".to_vec(),
        b"PROXY UNKNOWN 203.0.113.7 127.0.0.1 50000 80\r\n".to_vec(),
        v2(0x20, 0x00, b""),
        v2(0x21, 0x00, b""),
        v2(0x21, 0x31, &[0; 216]),
    ] {
        assert_eq!(
            raw_status_with(port, &header, "/partners", named).await,
            Some(403),
            "{header:?}"
        );
    }
    // A connection without the header is closed unanswered.
    assert_eq!(raw_status(port, b"", "/partners").await, None);
    // The plain listener beside it reads no header.
    assert_eq!(raw_status(behind.port, b"", "/partners").await, Some(403));

    // From a peer that is not a trusted proxy, a header is not believed.
    let direct =
        Gateway::start_with_server_settings("trusted_proxies = [\"10.0.0.0/8\"]", &body).await;
    let port = direct.public_port(1);
    assert_eq!(
        raw_status(port, &v1("203.0.113.7"), "/partners").await,
        None
    );
}
