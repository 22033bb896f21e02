//! State under concurrency, on the embedded store and across three
//! instances sharing Redis: a burst of wrong secrets for one principal gets
//! no more credential checks than `max_failures` allows (and a correct
//! secret inside the burst is refused too); a burst of refreshes of one
//! refresh token loses none of the tokens it minted, so revoking the
//! refresh token revokes every one of them; a flood of slow logins waits
//! in a bounded queue while the proxy keeps serving.

use crate::common;

use common::{demo_body, issuers, redis, Gateway};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const CLIENT_FLAT: &str = "/api/v1/auth";
const GOOD: &str = r#"{"client_id":"demo_client_123","client_secret":"demo_secret_456_ABCDEFGH"}"#;
const WRONG: &str = r#"{"client_id":"demo_client_123","client_secret":"wrong-secret-0000000000"}"#;

async fn post(gw: &Gateway, path: &str, body: impl Into<String>) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(gw.url(path))
        .header("content-type", "application/json")
        .body(body.into())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Whether an answer says the secret was checked (and found wrong).
type Checked = fn(&(StatusCode, Value)) -> bool;

/// `n` wrong logins at once, spread over `gateways`, and the right one sent
/// as soon as `limit` of them have been checked, while the rest are still
/// in flight: the answers to the wrong ones, and the right one's. (Sent any
/// earlier, a slow machine may let it in before the budget is spent, and a
/// good login rightly clears the count.)
async fn burst(
    gateways: &[&Gateway],
    path: &str,
    (wrong, right): (&'static str, &'static str),
    n: usize,
    (limit, checked): (usize, Checked),
) -> (Vec<(StatusCode, Value)>, (StatusCode, Value)) {
    // (wrong secrets checked, wrong logins answered)
    let (tally, mut seen) = tokio::sync::watch::channel((0, 0));
    let wrongs = (0..n).map(|i| {
        let tally = &tally;
        async move {
            let answer = post(gateways[i % gateways.len()], path, wrong).await;
            let was_checked = checked(&answer);
            tally.send_modify(|(c, a)| {
                *c += usize::from(was_checked);
                *a += 1;
            });
            answer
        }
    });
    let right = async {
        seen.wait_for(|&(c, a)| c >= limit || a == n).await.unwrap();
        post(gateways[0], path, right).await
    };
    tokio::join!(join_all(wrongs), right)
}

fn unauthorized(answer: &(StatusCode, Value)) -> bool {
    answer.0 == StatusCode::UNAUTHORIZED
}

fn session_code_1(answer: &(StatusCode, Value)) -> bool {
    answer.1["error"] == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_good_logins_of_one_principal_all_succeed() {
    // Checks in flight count against the failure budget, so these queue
    // behind each other rather than being refused.
    let gw = Gateway::start_with_server_settings("threads = 2", &demo_body()).await;
    let logins = (0..30).map(|_| post(&gw, CLIENT_FLAT, GOOD));
    for (status, v) in join_all(logins).await {
        assert_eq!(status, StatusCode::OK, "{v}");
    }
}

/// Clients that send a login and hang up while its password is being
/// checked: each check's place in the budget is given back, so they cannot
/// lock the principal out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_abandoned_mid_check_do_not_take_the_budget() {
    use tokio::io::AsyncWriteExt;
    let gw = Gateway::start_with_server_settings("threads = 2", &demo_body()).await;
    let body = r#"{"username":"admin","password":"demo2024"}"#;
    for _ in 0..12 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
            .await
            .unwrap();
        let request = format!(
            "POST /api/Session/GetToken HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).await.unwrap();
        // Gone before the argon2 check (tens of milliseconds) is done.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        drop(s);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, v) = post(&gw, "/api/Session/GetToken", body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_wrong_secrets_gets_at_most_max_failures_checks() {
    let gw = Gateway::start_with_server_settings("threads = 2", &demo_body()).await;

    // client-flat: 401 for a checked secret, 429 once the budget is spent.
    let (wrongs, right) = burst(&[&gw], CLIENT_FLAT, (WRONG, GOOD), 40, (5, unauthorized)).await;
    let checked = wrongs.iter().filter(|a| unauthorized(a)).count();
    assert!(checked <= 5, "{checked} wrong secrets were checked");
    assert!(wrongs
        .iter()
        .all(|(s, _)| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(right.0, StatusCode::TOO_MANY_REQUESTS, "{}", right.1);

    // session (argon2, checks that take tens of milliseconds each): code 1
    // for a checked password, code 2 (locked) for the rest.
    let wrong = r#"{"username":"admin","password":"wrong-password"}"#;
    let good = r#"{"username":"admin","password":"demo2024"}"#;
    let (wrongs, right) = burst(
        &[&gw],
        "/api/Session/GetToken",
        (wrong, good),
        40,
        (5, session_code_1),
    )
    .await;
    let checked = wrongs.iter().filter(|a| session_code_1(a)).count();
    assert!(checked <= 5, "{checked} wrong passwords were checked");
    assert!(wrongs
        .iter()
        .all(|(_, v)| v["error"] == 1 || v["error"] == 2));
    assert_eq!(right.1["error"], 2, "{}", right.1);
}

/// Three instances of the demo on one Redis, client-flat locking at 3.
async fn redis_cluster(url: &str, name: &str) -> (Gateway, Gateway, Gateway) {
    let prefix = format!("portero-test-{name}-{}:", std::process::id());
    let config = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n\n{}\n{}",
        issuers(),
        demo_body().replace(
            "dialect = \"client-flat\"",
            "dialect = \"client-flat\"\nmax_failures = 3\nlockout = \"60s\"",
        )
    );
    tokio::join!(
        Gateway::start_with_server_settings("threads = 2", &config),
        Gateway::start_with_server_settings("threads = 2", &config),
        Gateway::start_with_server_settings("threads = 2", &config)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_spread_over_three_instances_shares_one_budget() {
    let Some(url) = redis::shared() else { return };
    let (a, b, c) = redis_cluster(&url, "lockout").await;
    let (wrongs, right) = burst(
        &[&a, &b, &c],
        CLIENT_FLAT,
        (WRONG, GOOD),
        60,
        (3, unauthorized),
    )
    .await;
    let checked = wrongs.iter().filter(|a| unauthorized(a)).count();
    assert!(checked <= 3, "{checked} wrong secrets were checked");
    assert_eq!(right.0, StatusCode::TOO_MANY_REQUESTS, "{}", right.1);
    // Locked on every instance.
    for gw in [&a, &b, &c] {
        assert_eq!(
            post(gw, CLIENT_FLAT, GOOD).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

/// Logs in on the login-refresh endpoint, refreshes `n` times at once
/// across `gateways`, then revokes the refresh token: every access token
/// those refreshes handed out is refused everywhere.
async fn refresh_burst_then_revoke(gateways: &[&Gateway], n: usize) {
    let login = r#"{"username":"admin","password":"abcd1234"}"#;
    let (status, v) = post(gateways[0], "/api/auth/token", login).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let refresh = v["refreshToken"]["token"].as_str().unwrap().to_string();
    let body = json!({ "refreshToken": refresh }).to_string();
    let refreshes = (0..n).map(|i| {
        post(
            gateways[i % gateways.len()],
            "/api/auth/refreshtoken",
            body.clone(),
        )
    });
    let minted: Vec<String> = join_all(refreshes)
        .await
        .into_iter()
        .map(|(status, v)| {
            assert_eq!(status, StatusCode::OK, "{v}");
            v["accessToken"]["token"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(minted.len(), n);
    let client = reqwest::Client::new();
    let opens = |token: String| {
        let (client, url) = (client.clone(), gateways[0].url("/orders"));
        async move {
            let r = client.get(url).header("authorization", token).send().await;
            r.unwrap().status()
        }
    };
    for status in join_all(minted.iter().cloned().map(opens)).await {
        assert_eq!(status, StatusCode::OK, "a minted token does not work");
    }

    let revoked = gateways[1 % gateways.len()]
        .revoke(json!({ "token": refresh }))
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let listed: Value = revoked.json().await.unwrap();
    // Two tokens (access, content) per refresh, and the login's two.
    assert_eq!(
        listed["revoked"].as_array().unwrap().len(),
        2 * n + 2,
        "{listed}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    for gw in gateways {
        for token in &minted {
            let r = client
                .get(gw.url("/orders"))
                .header("authorization", token.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "a minted token survived"
            );
        }
    }
    // The refresh token itself is gone.
    let (status, _) = post(gateways[0], "/api/auth/refreshtoken", body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_lose_no_lineage() {
    let gw = Gateway::start_with_server_settings("threads = 2", &demo_body()).await;
    refresh_burst_then_revoke(&[&gw], 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_across_instances_lose_no_lineage() {
    let Some(url) = redis::shared() else { return };
    let (a, b, c) = redis_cluster(&url, "lineage").await;
    refresh_burst_then_revoke(&[&a, &b, &c], 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_waits_in_a_bounded_queue_and_the_proxy_keeps_serving() {
    // Enough room per address that only the slow-check queue bounds the flood.
    let server =
        "max_connections = 4000\nmax_connections_per_ip = 2000\nmax_requests_per_ip = 2000";
    let body = demo_body().replace(
        "dialect = \"session\"",
        "dialect = \"session\"\nip_max_failures = 100000",
    );
    let gw = Gateway::start_with_server_settings(server, &body).await;
    let (status, admin) = post(
        &gw,
        "/api/Session/GetToken",
        r#"{"username":"admin","password":"demo2024"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{admin}");
    let token = admin["tokenValido"].as_str().unwrap().to_string();
    // 400 argon2 checks at once (unknown users cost a dummy check), each
    // with a failure to write: a few hash and one writes at a time, at
    // most 256 wait to hash, the rest are refused at once in the dialect's
    // shape, and the proxy's thread is left to the proxy.
    let logins = (0..400).map(|n| {
        let gw = &gw;
        async move {
            let login = json!({ "username": format!("nobody-{n}"), "password": "x" });
            post(gw, "/api/Session/GetToken", login.to_string()).await
        }
    });
    let proxied = async {
        // Meanwhile a protected route answers, and quickly.
        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            let started = std::time::Instant::now();
            let r = reqwest::Client::new()
                .get(gw.url("/orders/1"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slowest
    };
    let (answers, slowest) = futures_util::join!(join_all(logins), proxied);
    let refused = answers
        .iter()
        .filter(|(s, v)| *s == StatusCode::INTERNAL_SERVER_ERROR && v["error"] == 3)
        .count();
    let checked = answers.iter().filter(|a| session_code_1(a)).count();
    assert_eq!(refused + checked, 400, "only checks and refusals");
    eprintln!("{refused} refused, {checked} checked, slowest proxied {slowest:?}");
    // Not all 400 arrive before the first checks end; of those that find
    // 256 waiting, each is refused (seen here: 139 and 143).
    assert!(refused > 0 && refused <= 400 - 256, "{refused} refused");
    assert!(checked >= 1);
    assert!(
        slowest < Duration::from_secs(1),
        "the proxy waited {slowest:?}"
    );
    gw.log_with("slow credential checks queued to the limit")
        .await;
}
