//! What three instances sharing one store must agree on, whatever the
//! Redis behind it (one server, or a Redis Cluster): the checks and the
//! propagation measurement both kinds of test run.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{claims, demo_body, issuers, proxied, Gateway, Signer, ADMIN_TOKEN};

pub const CLIENT_FLAT: &str = "/api/v1/auth";
pub const CLIENT_LOGIN: &str =
    r#"{"client_id":"demo_client_123","client_secret":"demo_secret_456_ABCDEFGH"}"#;

/// Keys of one test apart from every other test's on a shared server.
pub fn prefix() -> String {
    use rand::RngCore;
    format!(
        "portero-test-{}-{:08x}:",
        std::process::id(),
        rand::thread_rng().next_u32()
    )
}

/// The demo issuers and routes, the test issuers, and a Redis store
/// (`store`: its `url = ...`, `sentinels = ...` or `cluster = ...` line).
pub fn node(store: &str, prefix: &str, extra: &str) -> String {
    format!(
        "[store]\nbackend = \"redis\"\n{store}\nkey_prefix = \"{prefix}\"\ntimeout = \"300ms\"\n{extra}\n\n{}\n{}",
        issuers(),
        demo_body()
            .replace(
                "dialect = \"client-flat\"",
                "dialect = \"client-flat\"\nmax_failures = 3\nlockout = \"60s\"",
            )
    )
}

pub async fn post_json(gw: &Gateway, path: &str, body: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(gw.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

/// A fresh client-flat token from `gw`.
pub async fn login(gw: &Gateway) -> String {
    let (status, v) = post_json(gw, CLIENT_FLAT, CLIENT_LOGIN).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

pub async fn get(gw: &Gateway, token: &str) -> StatusCode {
    proxied(gw, &format!("Bearer {token}")).await.status()
}

/// Requests `token` on `gw` until it is refused; the time that took.
pub async fn until_refused(gw: &Gateway, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if get(gw, token).await == StatusCode::UNAUTHORIZED {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still accepted after {limit:?}; the gateway's log:\n{}",
            gw.log()
        );
    }
}

/// The demo behind a Redis store with one route whose rate every instance shares.
pub fn limited_node(store: &str, prefix: &str) -> String {
    node(store, prefix, "").replace(
        "[[routes]]\nname = \"default\"",
        "[[routes]]\nname = \"limited\"\npath = \"/limited\"\nupstream = \"echo\"\n\
         token_from = \"authorization\"\n\
         rate_limit = { requests = 10, per = \"10s\", scope = \"cluster\" }\n\n\
         [[routes]]\nname = \"default\"",
    )
}

pub async fn limited(gw: &Gateway, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(gw.url("/limited"))
        .header("authorization", token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Tokens, refresh tokens and lockouts are one truth across three instances.
pub async fn check_tokens_refresh_tokens_and_lockouts([n1, n2, n3]: [&Gateway; 3]) {
    // A token minted on 1 with the generated (shared) key opens 2 and 3.
    let token = login(n1).await;
    for gw in [n1, n2, n3] {
        assert_eq!(get(gw, &token).await, StatusCode::OK);
    }

    // A refresh token issued on 1 is usable on 3; what it mints works on 2.
    let (status, v) = post_json(
        n1,
        "/api/auth/token",
        r#"{"username":"admin","password":"abcd1234"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let refresh = v["refreshToken"]["token"].as_str().unwrap();
    let (status, v) = post_json(
        n3,
        "/api/auth/refreshtoken",
        &json!({ "refreshToken": refresh }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let access = v["accessToken"]["token"].as_str().unwrap();
    assert_eq!(get(n2, access).await, StatusCode::OK);

    // Revoking the refresh token on 2 stops it, and what it minted, everywhere.
    assert_eq!(
        n2.revoke(json!({ "token": refresh })).await.status(),
        StatusCode::OK
    );
    let (status, _) = post_json(
        n1,
        "/api/auth/refreshtoken",
        &json!({ "refreshToken": refresh }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    until_refused(n3, access, Duration::from_millis(100)).await;

    // Lockout: three failures, one per instance, lock the client everywhere.
    let bad = r#"{"client_id":"demo_client_123","client_secret":"wrong-secret-0000000000"}"#;
    for gw in [n1, n2, n3] {
        assert_eq!(
            post_json(gw, CLIENT_FLAT, bad).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, v) = post_json(n1, CLIENT_FLAT, CLIENT_LOGIN).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(
        post_json(n3, CLIENT_FLAT, CLIENT_LOGIN).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A revocation on 2 is refused by 1 and 3 within 100 ms, a token's and a subject's.
pub async fn check_a_revocation_reaches_all([n1, n2, n3]: [&Gateway; 3]) {
    let tokens = [login(n1).await, Signer::Hs.sign(&claims("ivan"))];
    for t in &tokens {
        for gw in [n1, n2, n3] {
            assert_eq!(get(gw, t).await, StatusCode::OK);
        }
    }
    let mut lags = Vec::new();
    for (t, how) in tokens.iter().zip([
        json!({ "token": tokens[0] }),
        json!({ "sub": "ivan", "issuer": "test" }),
    ]) {
        assert_eq!(n2.revoke(how).await.status(), StatusCode::OK);
        // Measured from the acknowledgement on 2 to the first refusal.
        for gw in [n1, n3] {
            lags.push(until_refused(gw, t, Duration::from_millis(100)).await);
        }
    }
    eprintln!("revocation on node 2 refused by nodes 1 and 3 after {lags:?}");
    assert!(
        n1.metric("portero_revocation_propagation_seconds_count", &[])
            .await
            >= 2.0,
        "{}",
        n1.metrics().await
    );
}

/// 30 requests round three instances sharing a rate of 10 a 10 s.
pub async fn check_a_shared_rate([n1, n2, n3]: [&Gateway; 3], token: &str) {
    // One more may get in while the burst runs (a token comes back each second).
    let mut admitted = 0;
    for i in 0..30 {
        let gw = [n1, n2, n3][i % 3];
        match limited(gw, token).await {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("request {i}: {other}"),
        }
    }
    assert!((10..=11).contains(&admitted), "admitted {admitted} of 30");
}

/// From a revocation's acknowledgement on 2 until 1 and 3 both refuse it,
/// beside the floor measured in the same run (one accepted request to
/// each of 1 and 3), and node 1's own lag metric.
pub struct Lags {
    lags: Vec<Duration>,
    floor: Vec<Duration>,
    metric_mean: Duration,
    metric_count: f64,
}

impl Lags {
    /// Both runs' lags (node 1's metric is the later run's: it counts on).
    pub fn and(mut self, later: Lags) -> Lags {
        self.lags.extend(later.lags);
        self.floor.extend(later.floor);
        self.lags.sort();
        self.floor.sort();
        Lags {
            metric_mean: later.metric_mean,
            metric_count: later.metric_count,
            ..self
        }
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

impl std::fmt::Display for Lags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:?}, p99 {:?}, max {:?}; floor (one accepted request to 1 and 3): p50 {:?}, p99 {:?}; \
             node 1's own lag metric: mean {:?} over {}",
            quantile(&self.lags, 0.50),
            quantile(&self.lags, 0.99),
            quantile(&self.lags, 1.0),
            quantile(&self.floor, 0.50),
            quantile(&self.floor, 0.99),
            self.metric_mean,
            self.metric_count
        )
    }
}

/// `count` revocations of fresh tokens on 2, each waited for on 1 and 3.
pub async fn propagation_lags([n1, n2, n3]: [&Gateway; 3], count: usize) -> Lags {
    let client = reqwest::Client::new();
    let mut lags = Vec::new();
    for _ in 0..count {
        let mut c = claims("lag");
        c["jti"] = json!(format!("lag-{:016x}", rand::random::<u64>()));
        let token = Signer::Hs.sign(&c);
        let ack = client
            .post(n2.admin_url("/admin/revocations"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "jti": c["jti"], "expires_at": c["exp"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(ack.status(), StatusCode::OK);
        let acked = Instant::now();
        for gw in [n1, n3] {
            until_refused(gw, &token, Duration::from_secs(1)).await;
        }
        lags.push(acked.elapsed());
    }
    let valid = Signer::Hs.sign(&claims("floor"));
    let mut floor = Vec::new();
    for _ in 0..count {
        let start = Instant::now();
        for gw in [n1, n3] {
            assert_eq!(get(gw, &valid).await, StatusCode::OK);
        }
        floor.push(start.elapsed());
    }
    floor.sort();
    lags.sort();
    let sum = n1
        .metric("portero_revocation_propagation_seconds_sum", &[])
        .await;
    let metric_count = n1
        .metric("portero_revocation_propagation_seconds_count", &[])
        .await;
    Lags {
        lags,
        floor,
        metric_mean: Duration::from_secs_f64(sum / metric_count.max(1.0)),
        metric_count,
    }
}
