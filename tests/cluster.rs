//! Three gateway instances sharing one real Redis: tokens, refresh tokens,
//! lockouts and revocations are one truth; revocations reach every instance
//! within 100 ms; a Redis outage leaves protected traffic flowing from the
//! in-memory caches, and everything recovers without restarting anything.
//!
//! Redis: see `common/redis.rs` (skipped with a message when none can be
//! had, failing instead under `PORTERO_REQUIRE_REDIS=1`).

use crate::common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::redis::{self, RedisServer, Relay};
use common::shared_store::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The shared store config of an instance on the Redis at `url`.
fn node(url: &str, prefix: &str, extra: &str) -> String {
    common::shared_store::node(&format!("url = \"{url}\""), prefix, extra)
}

/// Three instances started at once on the same store: they race to create
/// each generated key, and must all end up with the winner's.
async fn cluster(urls: [&str; 3], prefix: &str) -> [Gateway; 3] {
    let configs = urls.map(|u| node(u, prefix, ""));
    let (a, b, c) = futures_util::join!(
        Gateway::start(&configs[0]),
        Gateway::start(&configs[1]),
        Gateway::start(&configs[2])
    );
    [a, b, c]
}

/// Runs an instance that must refuse to start, saying each of `needles`.
fn refuses_to_start(config: &str, needles: &[&str]) {
    let (ok, stderr) = run_to_exit(config);
    assert!(!ok, "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    }
}

/// Waits for a readiness status on every instance.
async fn all_report(nodes: &[&Gateway], status: &str) {
    for gw in nodes {
        assert_eq!(gw.wait_readiness(status).await.1, status, "{}", gw.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_refresh_tokens_and_lockouts_are_shared() {
    let Some(url) = redis::shared() else { return };
    let p = prefix();
    let [n1, n2, n3] = cluster([&url, &url, &url], &p).await;
    check_tokens_refresh_tokens_and_lockouts([&n1, &n2, &n3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_every_instance_within_100ms() {
    let Some(url) = redis::shared() else { return };
    let p = prefix();
    let [n1, n2, n3] = cluster([&url, &url, &url], &p).await;
    check_a_revocation_reaches_all([&n1, &n2, &n3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_from_redis_catches_up_when_it_returns() {
    let Some(url) = redis::shared() else { return };
    let target = url
        .strip_prefix("redis://")
        .unwrap()
        .parse()
        .expect("a host:port url");
    let relay = Relay::start(target).await;
    let p = prefix();
    let [n1, n2, n3] = cluster([&relay.url(), &url, &url], &p).await;
    let (kept, revoked) = (login(&n2).await, login(&n2).await);

    relay.cut();
    all_report(&[&n1], "degraded").await;
    assert_eq!(n1.readiness().await.0, 200, "fail-static stays in rotation");
    assert_eq!(
        n1.metric("portero_store_up", &[]).await,
        0.0,
        "{}",
        n1.metrics().await
    );
    // Revoked on 2 while 1 cannot hear it: 3 refuses at once; 1, running
    // from its cache (fail-static), still accepts until it is back.
    assert_eq!(
        n2.revoke(json!({ "token": revoked })).await.status(),
        StatusCode::OK
    );
    until_refused(&n3, &revoked, Duration::from_millis(100)).await;
    assert_eq!(get(&n1, &kept).await, StatusCode::OK);
    assert_eq!(get(&n1, &revoked).await, StatusCode::OK);
    // Its token endpoint needs the store: the dialect's server-error shape.
    let (status, v) = post_json(&n1, CLIENT_FLAT, CLIENT_LOGIN).await;
    assert_eq!(
        (status, v),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"msg": "Service unavailable"})
        )
    );

    relay.restore().await;
    all_report(&[&n1], "ready").await;
    assert_eq!(get(&n1, &revoked).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&n1, &kept).await, StatusCode::OK);
    assert_eq!(get(&n1, &login(&n1).await).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_traffic_flows_from_caches_and_recovers_by_itself() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let p = prefix();
    let [n1, n2, n3] = cluster([&url, &url, &url], &p).await;
    let valid = login(&n1).await;
    let revoked = login(&n1).await;
    assert_eq!(
        n2.revoke(json!({ "token": revoked })).await.status(),
        StatusCode::OK
    );

    server.stop();
    all_report(&[&n1, &n2, &n3], "degraded").await;
    for gw in [&n1, &n2, &n3] {
        assert_eq!(gw.readiness().await.0, 200);
        assert_eq!(get(gw, &valid).await, StatusCode::OK);
        assert_eq!(get(gw, &revoked).await, StatusCode::UNAUTHORIZED);
    }
    // Token endpoints answer their own server-error shapes.
    let (status, v) = post_json(&n1, CLIENT_FLAT, CLIENT_LOGIN).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v, json!({"msg": "Service unavailable"}));
    let (status, v) = post_json(
        &n2,
        "/api/Session/GetToken",
        r#"{"username":"admin","password":"demo2024"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert_eq!(v, json!({"error": 3, "message": "Error del servidor"}));
    let (status, v) = post_json(
        &n3,
        "/api/auth/token",
        r#"{"username":"admin","password":"abcd1234"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"], "Service Unavailable");
    // A revocation cannot be promised to the other instances: refused.
    assert_eq!(
        n3.revoke(json!({ "sub": "nobody", "issuer": "test" }))
            .await
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(n1.metric_sum("portero_store_errors_total").await > 0.0);
    // A reload keeps the generated keys this instance already holds.
    let reload = reqwest::Client::new()
        .post(n1.admin_url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        reload.status(),
        StatusCode::OK,
        "{}",
        reload.text().await.unwrap()
    );
    assert_eq!(get(&n1, &valid).await, StatusCode::OK);

    // A new, empty Redis on the same port: the instances reconnect, write
    // back the revocations and keys it lost, and carry on.
    server.restart();
    all_report(&[&n1, &n2, &n3], "ready").await;
    for gw in [&n1, &n2, &n3] {
        assert_eq!(get(gw, &valid).await, StatusCode::OK);
        assert_eq!(get(gw, &revoked).await, StatusCode::UNAUTHORIZED);
    }
    let fresh = login(&n2).await;
    assert_eq!(get(&n3, &fresh).await, StatusCode::OK);
    assert_eq!(
        n1.revoke(json!({ "token": fresh })).await.status(),
        StatusCode::OK
    );
    for gw in [&n2, &n3] {
        until_refused(gw, &fresh, Duration::from_millis(100)).await;
    }
    // A fourth instance started now learns the written-back revocation.
    let n4 = Gateway::start(&node(&url, &p, "")).await;
    assert_eq!(get(&n4, &revoked).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&n4, &valid).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_protected_routes_while_redis_is_away() {
    let Some(url) = redis::shared() else { return };
    let relay = Relay::start(url.strip_prefix("redis://").unwrap().parse().unwrap()).await;
    let gw = Gateway::start(&node(
        &relay.url(),
        &prefix(),
        "on_outage = \"fail-closed\"",
    ))
    .await;
    let token = login(&gw).await;
    relay.cut();
    assert_eq!(
        gw.wait_readiness("not_ready").await,
        (503, "not_ready".into())
    );
    let r = reqwest::Client::new()
        .get(gw.url("/orders/7"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "store_unavailable");
    let public = reqwest::get(gw.url("/public")).await.unwrap();
    assert_eq!(
        public.status(),
        StatusCode::OK,
        "public routes need no store"
    );

    relay.restore().await;
    assert_eq!(gw.wait_readiness("ready").await.0, 200);
    assert_eq!(get(&gw, &token).await, StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_redis_at_start_is_a_clear_error() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    refuses_to_start(
        &node(&url, "x:", ""),
        &[&format!("store.url: {url}"), "unreachable"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_password_comes_from_the_environment() {
    let Some(server) = RedisServer::start_with_password() else {
        return;
    };
    let url = server.url();
    let gw = Gateway::start(&node(
        &url,
        &prefix(),
        "password_env = \"TEST_REDIS_PASSWORD\"",
    ))
    .await;
    assert_eq!(get(&gw, &login(&gw).await).await, StatusCode::OK);
    assert!(
        !gw.log().contains(redis::PASSWORD),
        "the password is never logged"
    );

    refuses_to_start(
        &node(&url, &prefix(), ""),
        &[&format!("store.url: {url}: "), "Authentication required"],
    );
}

/// Propagation lag over 1,000 revocations, for BENCHMARKS.md:
/// `cargo test --release --test integration -- --ignored --nocapture cluster::propagation`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run it by name"]
async fn propagation_lag_over_1000_revocations() {
    let Some(url) = redis::shared() else { return };
    let p = prefix();
    let [n1, n2, n3] = cluster([&url, &url, &url], &p).await;
    let lags = propagation_lags([&n1, &n2, &n3], 1000).await;
    println!("1000 revocations on node 2, until refused by nodes 1 and 3 (from the ack): {lags}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_rate_holds_across_three_instances_and_each_counts_alone_while_redis_is_cut() {
    let Some(url) = redis::shared() else { return };
    let relay = Relay::start(url.strip_prefix("redis://").unwrap().parse().unwrap()).await;
    let p = prefix();
    // A cut closes the relay's connections, so it is seen at once; the
    // store's own timeout is only how long a busy machine's Redis may take
    // (300 ms, the shared default, once failed the login on a loaded CI).
    let patient = |store: String| {
        let config = limited_node(&store, &p);
        assert!(
            config.contains("timeout = \"300ms\""),
            "the shared timeout moved"
        );
        config.replace("timeout = \"300ms\"", "timeout = \"3s\"")
    };
    let (through_relay, direct) = (
        patient(format!("url = \"{}\"", relay.url())),
        patient(format!("url = \"{url}\"")),
    );
    let (n1, n2, n3) = futures_util::join!(
        Gateway::start(&through_relay),
        Gateway::start(&direct),
        Gateway::start(&direct)
    );
    let token = login(&n1).await;
    check_a_shared_rate([&n1, &n2, &n3], &token).await;
    let spent = std::time::Instant::now();

    // Redis cut from instance 1: it counts on its own (a cluster of N
    // admits up to N times the limit then), the others keep the shared count.
    relay.cut();
    let mut alone = 0;
    for _ in 0..15 {
        if limited(&n1, &token).await == StatusCode::OK {
            alone += 1;
        }
    }
    assert_eq!(alone, 10, "instance 1's own count");
    assert!(
        n1.metric(
            "portero_rate_limit_fallbacks_total",
            &[("route", "limited")]
        )
        .await
            >= 15.0
    );
    // The shared count is spent: instance 2 takes only what came back
    // since (a token a second; a loaded machine takes seconds here).
    let mut taken = 0;
    while taken < 10 && limited(&n2, &token).await == StatusCode::OK {
        taken += 1;
    }
    let back = spent.elapsed().as_secs() + 1;
    assert!(
        taken < 10 && taken <= back,
        "instance 2 took {taken} in {back} s"
    );
    assert_eq!(
        n2.metric(
            "portero_rate_limit_fallbacks_total",
            &[("route", "limited")]
        )
        .await,
        0.0
    );

    // Back on Redis, instance 1 follows the shared count again.
    relay.restore().await;
    all_report(&[&n1], "ready").await;
    let before = n1
        .metric(
            "portero_rate_limit_fallbacks_total",
            &[("route", "limited")],
        )
        .await;
    limited(&n1, &token).await;
    assert_eq!(
        n1.metric(
            "portero_rate_limit_fallbacks_total",
            &[("route", "limited")]
        )
        .await,
        before
    );
}

/// An OAuth 2.0 request (form body, HTTP Basic) to one of the demo's
/// standard endpoints on `gw`.
async fn oauth2(gw: &Gateway, path: &str, basic: (&str, &str), form: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(gw.url(path))
        .basic_auth(basic.0, Some(basic.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_tokens_revoke_across_instances_like_legacy_ones() {
    let Some(url) = redis::shared() else { return };
    let p = prefix();
    let [n1, n2, n3] = cluster([&url, &url, &url], &p).await;
    let client = ("demo_client_123", "demo_secret_456_ABCDEFGH");
    // A client_credentials token from 1, revoked (RFC 7009) on 2: refused
    // by 1 and 3 within the legacy tokens' bound.
    let (status, v) = oauth2(
        &n1,
        "/oauth2/client-flat/token",
        client,
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let token = v["access_token"].as_str().unwrap().to_string();
    for gw in [&n1, &n2, &n3] {
        assert_eq!(get(gw, &token).await, StatusCode::OK);
    }
    let (status, _) = oauth2(
        &n2,
        "/oauth2/client-flat/revoke",
        client,
        &format!("token={token}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for gw in [&n1, &n3] {
        until_refused(gw, &token, Duration::from_millis(100)).await;
    }
    // A refresh token from 1, used on 2, then its replaced self again on
    // 3: the family is revoked, and 1 refuses what it minted.
    let app = ("demo_app", "demo_app_secret_7f3c9a2b");
    let (status, first) = oauth2(
        &n1,
        "/oauth2/login-refresh/token",
        app,
        "grant_type=password&username=admin&password=abcd1234",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let refresh = first["refresh_token"].as_str().unwrap();
    let (status, second) = oauth2(
        &n2,
        "/oauth2/login-refresh/token",
        app,
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(get(&n1, access).await, StatusCode::OK);
    let (status, v) = oauth2(
        &n3,
        "/oauth2/login-refresh/token",
        app,
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    until_refused(&n1, access, Duration::from_millis(100)).await;
}

/// A write is acknowledged only if a replica confirms it on the connection
/// that made it: `WAIT` counts the writes of its own connection, so one
/// asked on a connection made again after the write would confirm nothing
/// and pass. Here the replica is frozen (nothing can be confirmed) while
/// the master drops the gateway's connections every few milliseconds:
/// every revocation is refused, none acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_confirmed_only_on_the_connection_that_made_it() {
    // The replica's full sync writes an RDB file: into the test's own directory.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    let Some(master) = RedisServer::start_with(&["--dir", dir]) else {
        return;
    };
    let port = master.addr().port().to_string();
    let replica =
        RedisServer::start_with(&["--dir", dir, "--replicaof", "127.0.0.1", &port]).unwrap();
    let online = poll(
        Duration::from_secs(10),
        || async { redis::info(master.addr(), "replication") },
        |info| info.contains("state=online"),
    )
    .await;
    assert!(online.contains("state=online"), "{online}");
    let gw = Gateway::start(&node(
        &master.url(),
        &prefix(),
        "wait_replicas = 1\nwait_timeout = \"20ms\"",
    ))
    .await;
    // A loaded machine's replica may miss 20 ms now and then (503): the
    // first login is only the token the revocations below name.
    let first = poll(
        Duration::from_secs(5),
        || post_json(&gw, CLIENT_FLAT, CLIENT_LOGIN),
        |(status, _)| *status == StatusCode::OK,
    )
    .await;
    let token = first.1["access_token"].as_str().unwrap().to_string();

    replica.freeze(true);
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (stop, addr) = (stop.clone(), master.addr());
        std::thread::spawn(move || {
            let mut kills = 0;
            while !stop.load(Ordering::SeqCst) {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(b"CLIENT KILL TYPE normal SKIPME yes\r\n")
                    .unwrap();
                let mut reply = [0u8; 64];
                kills += usize::from(s.read(&mut reply).unwrap() > 0);
                std::thread::sleep(Duration::from_millis(2));
            }
            kills
        })
    };
    let revokers = (0..8).map(|_| {
        let (gw, token) = (&gw, &token);
        async move {
            let mut answers = vec![];
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                answers.push(gw.revoke(json!({ "token": token })).await.status());
            }
            answers
        }
    });
    let answers: Vec<StatusCode> = futures_util::future::join_all(revokers)
        .await
        .into_iter()
        .flatten()
        .collect();
    stop.store(true, Ordering::SeqCst);
    let kills = killer.join().unwrap();
    replica.freeze(false);

    let acknowledged = answers.iter().filter(|&&s| s == StatusCode::OK).count();
    assert!(kills > 100, "{kills} kills");
    assert_eq!(
        acknowledged,
        0,
        "{acknowledged} of {} revocations acknowledged with the replica frozen ({kills} kills)",
        answers.len()
    );
    assert!(
        answers
            .iter()
            .all(|&s| s == StatusCode::SERVICE_UNAVAILABLE),
        "{answers:?}"
    );
}
