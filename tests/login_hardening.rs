//! Logins as an attacker reads them, over HTTP against the demo's
//! issuers: a client's lockout cannot be spent from one address for every
//! address, an unknown name costs what a known one does (whatever the
//! format of its hash), and one issuer's slow hashes hold up no other
//! issuer's logins.

use crate::common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use reqwest::StatusCode;

/// A client whose requests come from `from` (any 127.0.0.0/8 address is
/// this machine's loopback): portero counts budgets per client address.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn flat_login(gw: &Gateway, from: &str, secret: &str) -> StatusCode {
    client_from(from)
        .post(gw.url("/api/v1/auth"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"client_id":"{DEMO_CLIENT}","client_secret":"{secret}"}}"#
        ))
        .send()
        .await
        .unwrap()
        .status()
}

/// The login-refresh issuer's OAuth 2.0 application authenticating at its
/// token endpoint (a password grant for its user).
async fn app_login(gw: &Gateway, from: &str, id: &str, secret: &str) -> StatusCode {
    let basic = STANDARD.encode(format!("{id}:{secret}"));
    client_from(from)
        .post(gw.url("/oauth2/login-refresh/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Basic {basic}"))
        .body("grant_type=password&username=admin&password=abcd1234")
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn one_address_cannot_lock_a_client_out_for_everyone() {
    let gw = demo(|body| {
        body.replace(
            "companies = [\"becomedigital\"]",
            "companies = [\"becomedigital\"]\nmax_failures = 3\nclient_max_failures = 10",
        )
        .replace(
            "refresh_ttl = \"24h\"",
            "refresh_ttl = \"24h\"\nmax_failures = 3\nclient_max_failures = 10",
        )
    })
    .await;
    // Wrong secrets from one address lock the client there only...
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(flat_login(&gw, "127.0.0.2", "wrong").await);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        3,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| [401, 429].contains(&s.as_u16())));
    assert_eq!(flat_login(&gw, "127.0.0.2", DEMO_CLIENT_SECRET).await, 429);
    // ...its users elsewhere go on.
    assert_eq!(flat_login(&gw, "127.0.0.1", DEMO_CLIENT_SECRET).await, 200);
    for _ in 0..5 {
        assert_eq!(
            app_login(&gw, "127.0.0.3", DEMO_APP, "wrong")
                .await
                .as_u16()
                / 100,
            4
        );
    }
    assert_eq!(
        app_login(&gw, "127.0.0.3", DEMO_APP, DEMO_APP_SECRET).await,
        429
    );
    assert_eq!(
        app_login(&gw, "127.0.0.1", DEMO_APP, DEMO_APP_SECRET).await,
        200
    );

    // Failures from many addresses add up to the client-wide budget, which
    // then locks the client everywhere.
    for n in 4..8 {
        for _ in 0..3 {
            flat_login(&gw, &format!("127.0.0.{n}"), "wrong").await;
        }
    }
    assert_eq!(flat_login(&gw, "127.0.0.1", DEMO_CLIENT_SECRET).await, 429);
    assert_eq!(flat_login(&gw, "127.0.0.9", DEMO_CLIENT_SECRET).await, 429);
}

/// The median time of `attempt`, alternated with `other` so both see the
/// same machine.
async fn medians<A, B, FA, FB>(rounds: usize, a: A, b: B) -> (Duration, Duration)
where
    A: Fn() -> FA,
    B: Fn() -> FB,
    FA: std::future::Future<Output = StatusCode>,
    FB: std::future::Future<Output = StatusCode>,
{
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        assert_eq!(a().await.as_u16() / 100, 4);
        ta.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(b().await.as_u16() / 100, 4);
        tb.push(t.elapsed());
    }
    ta.sort();
    tb.sort();
    (ta[rounds / 2], tb[rounds / 2])
}

/// Whether two medians are within 20% of each other, or within 2 ms:
/// the fast hashes' round trips are a millisecond or less, which a loaded
/// machine moves by more than 20%, while the difference a leak makes (an
/// argon2id check or none) is tens of milliseconds.
fn alike(known: Duration, unknown: Duration) -> bool {
    let (k, u) = (known.as_secs_f64(), unknown.as_secs_f64());
    (k - u).abs() <= (0.2 * k.max(u)).max(0.002)
}

#[tokio::test]
async fn an_unknown_client_costs_what_a_known_one_costs() {
    let generous = "max_failures = 100000\nip_max_failures = 100000\nclient_max_failures = 100000";
    let gw = demo(|body| {
        body.replace(
            "companies = [\"becomedigital\"]",
            &format!("companies = [\"becomedigital\"]\n{generous}"),
        )
        .replace(
            "refresh_ttl = \"24h\"",
            &format!("refresh_ttl = \"24h\"\n{generous}"),
        )
    })
    .await;
    // A user dialect's OAuth 2.0 clients, whose secrets are fast hashes.
    let (known, unknown) = medians(
        61,
        || app_login(&gw, "127.0.0.1", DEMO_APP, "wrong"),
        || app_login(&gw, "127.0.0.1", "no_such_app", "wrong"),
    )
    .await;
    println!(
        "OAuth 2.0 client of a user dialect: known {known:?}, unknown {unknown:?} (medians of 61)"
    );
    assert!(
        alike(known, unknown),
        "known {known:?}, unknown {unknown:?}"
    );
    // A client dialect's own clients at its legacy endpoint.
    let flat = |id: &'static str| {
        let gw = &gw;
        move || async move {
            client_from("127.0.0.1")
                .post(gw.url("/api/v1/auth"))
                .header("content-type", "application/json")
                .body(format!(r#"{{"client_id":"{id}","client_secret":"wrong"}}"#))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let (known, unknown) = medians(61, flat(DEMO_CLIENT), flat("no_such_client")).await;
    println!("client-flat: known {known:?}, unknown {unknown:?} (medians of 61)");
    assert!(
        alike(known, unknown),
        "known {known:?}, unknown {unknown:?}"
    );
}

/// Hashes of no password the tests try: argon2id of 32 MiB and 2 passes,
/// a slow format few users have, and bcrypt of cost 5, the fast one most
/// have.
const RARE_SLOW_HASH: &str =
    "$argon2id$v=19$m=32768,t=2,p=1$c2FsdHNhbHRzYWx0$aGVhdnloZWF2eWhlYXZ5aGVhdnloZWF2eWhlYXZ5aGU";
const COMMON_FAST_HASH: &str = "$2b$05$sZLpJ0wPoV3TsDZ9oYPJY.zWVXUJOb29PPiDnhrokQb8HaZda4jFa";

#[tokio::test]
async fn a_user_of_any_format_costs_what_an_unknown_name_costs() {
    let users = [
        ("slow", RARE_SLOW_HASH),
        ("fast1", COMMON_FAST_HASH),
        ("fast2", COMMON_FAST_HASH),
        ("fast3", COMMON_FAST_HASH),
    ];
    let gw = demo(|body| {
        let mut body = format!(
            "{body}\n[issuers.mixed]\ndialect = \"session\"\npath = \"/mixed/GetToken\"\n\
             max_failures = 100000\nip_max_failures = 100000\n"
        );
        for (name, hash) in users {
            body += &format!(
                "\n[[issuers.mixed.principals]]\nusername = \"{name}\"\nsecret_hash = '{hash}'\n"
            );
        }
        body
    })
    .await;
    // In turns, so all three see the same machine.
    let names = ["slow", "fast1", "no_such_user"];
    let mut times = vec![Vec::new(); names.len()];
    for _ in 0..31 {
        for (name, times) in names.iter().zip(&mut times) {
            let started = Instant::now();
            let (status, body) = user_login(&gw, "/mixed/GetToken", name, "wrong").await;
            times.push(started.elapsed());
            assert_eq!(status.as_u16() / 100, 4, "{body}");
        }
    }
    let [slow, fast, unknown] = times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect::<Vec<_>>()[..]
    else {
        unreachable!()
    };
    println!(
        "argon2id user {slow:?}, bcrypt user {fast:?}, unknown name {unknown:?} (medians of 31)"
    );
    assert!(
        alike(slow, unknown),
        "argon2id {slow:?}, unknown {unknown:?}"
    );
    assert!(alike(fast, unknown), "bcrypt {fast:?}, unknown {unknown:?}");
}

/// An argon2id hash of 256 MiB and 16 passes (within the default limits):
/// seconds of one core per check. Its digest is random: no secret matches.
const HEAVY_HASH: &str =
    "$argon2id$v=19$m=262144,t=16,p=1$c2FsdHNhbHRzYWx0$aGVhdnloZWF2eWhlYXZ5aGVhdnloZWF2eWhlYXZ5aGU";

#[tokio::test]
async fn one_issuers_slow_hashes_hold_up_no_other_issuers_logins() {
    let gw = demo(|body| {
        format!(
            "{body}\n[issuers.heavy]\ndialect = \"session\"\npath = \"/heavy/GetToken\"\n\
             max_failures = 100\nip_max_failures = 100\n\n\
             [[issuers.heavy.principals]]\nusername = \"heavy\"\nsecret_hash = '{HEAVY_HASH}'\n"
        )
    })
    .await;
    // Four heavy checks queued on their issuer...
    let heavy: Vec<_> = (0..4)
        .map(|_| {
            let url = gw.url("/heavy/GetToken");
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/json")
                    .body(r#"{"username":"heavy","password":"guess"}"#)
                    .send()
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...while another issuer's argon2id login is answered as ever.
    let started = Instant::now();
    let (status, body) = user_login(&gw, "/api/Session/GetToken", "admin", "demo2024").await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{body}");
    println!("a session login while four heavy checks queue elsewhere: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(
        heavy.iter().any(|h| !h.is_finished()),
        "the heavy checks were not slow"
    );
    for h in heavy {
        h.abort();
    }
}
