//! Shadow comparison against a legacy token service: stand-ins for two
//! dialect families written here (session, seed 000; client-flat, seed
//! 004), answering as their documents say, with planted differences, in
//! front of the real gateway on the demo config.

use crate::common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::AbortHandle;

const SESSION_LOGIN: &str = r#"{"username": "admin", "password": "demo2024"}"#;
const SESSION_WRONG: &str = r#"{"username": "admin", "password": "not-the-password-41"}"#;
const FLAT_LOGIN: &str =
    r#"{"client_id": "demo_client_123", "client_secret": "demo_secret_456_ABCDEFGH"}"#;
const FLAT_WRONG: &str =
    r#"{"client_id": "demo_client_123", "client_secret": "wrong_secret_0000_XYZ"}"#;
const FLAT_PATH: &str = "/api/v1/auth";

/// What the stand-in changes in its next answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Plant {
    Nothing,
    ChangedMessage,
    MissingField,
    OtherType,
    OtherStatus,
}

/// A legacy token service answering one dialect as its seed document
/// says, with `plant` applied; it counts the requests it saw and keeps
/// every token it minted (to look for in portero's log).
struct Legacy {
    addr: SocketAddr,
    plant: Arc<Mutex<Plant>>,
    delay_ms: Arc<AtomicU64>,
    seen: Arc<AtomicUsize>,
    minted: Arc<Mutex<Vec<String>>>,
    /// The accept loop and every connection.
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

type Dialect = fn(&Value, Plant, &mut Vec<String>) -> (u16, Value);

impl Legacy {
    async fn start(dialect: Dialect) -> Legacy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let plant = Arc::new(Mutex::new(Plant::Nothing));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(AtomicUsize::new(0));
        let minted: Arc<Mutex<Vec<String>>> = Arc::default();
        let state = (
            plant.clone(),
            delay_ms.clone(),
            seen.clone(),
            minted.clone(),
        );
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let conns = tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (plant, delay_ms, seen, minted) = state.clone();
                let conn = tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (plant, delay_ms, seen, minted) = (
                            plant.clone(),
                            delay_ms.clone(),
                            seen.clone(),
                            minted.clone(),
                        );
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            seen.fetch_add(1, Ordering::SeqCst);
                            let delay = delay_ms.load(Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                            let request: Value =
                                serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let plant = *plant.lock().unwrap();
                            let (status, answer) =
                                dialect(&request, plant, &mut minted.lock().unwrap());
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(answer.to_string())))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                conns.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Legacy {
            addr,
            plant,
            delay_ms,
            seen,
            minted,
            tasks,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn plant(&self, plant: Plant) {
        *self.plant.lock().unwrap() = plant;
    }

    fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// Closes every connection and stops accepting: later requests find
    /// nobody listening.
    fn kill(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// A JWT of the legacy service's own (its own key: only its shape matters).
fn legacy_jwt(claims: Value, minted: &mut Vec<String>) -> String {
    let token = Signer::Hs.sign(&claims);
    minted.push(token.clone());
    token
}

/// Seed 000, the session dialect.
fn session(request: &Value, plant: Plant, minted: &mut Vec<String>) -> (u16, Value) {
    let good = request["username"] == "admin" && request["password"] == "demo2024";
    if !good {
        let message = match plant {
            Plant::ChangedMessage => "Credenciales incorrectas",
            _ => "Credenciales inválidas",
        };
        let status = if plant == Plant::OtherStatus {
            400
        } else {
            401
        };
        return (status, json!({"error": 1, "message": message}));
    }
    let exp = chrono::Utc::now() + chrono::Duration::hours(24);
    let mut answer = json!({
        "tokenValido": legacy_jwt(json!({"username": "admin", "iat": now(), "exp": exp.timestamp()}), minted),
        "vencimiento": exp.format("%Y-%m-%d %H:%M:%S").to_string(),
        "usuario": {"id": 1, "username": "admin", "nombre": "Administrador"},
    });
    match plant {
        Plant::MissingField => {
            answer.as_object_mut().unwrap().remove("vencimiento");
        }
        Plant::OtherType => answer["usuario"]["id"] = json!("1"),
        _ => {}
    }
    (200, answer)
}

/// Seed 004, the client-flat dialect.
fn client_flat(request: &Value, plant: Plant, minted: &mut Vec<String>) -> (u16, Value) {
    let good = request["client_id"] == "demo_client_123"
        && request["client_secret"] == "demo_secret_456_ABCDEFGH";
    if !good {
        let msg = match plant {
            Plant::ChangedMessage => "Bad login details",
            _ => "Invalid login details",
        };
        let status = if plant == Plant::OtherStatus {
            403
        } else {
            401
        };
        return (status, json!({"msg": msg}));
    }
    let (iat, exp) = (now(), now() + 3600);
    let token = legacy_jwt(
        json!({"client_id": "demo_client_123", "iat": iat, "exp": exp}),
        minted,
    );
    let mut answer = json!({"access_token": token, "exp": exp, "iat": iat});
    match plant {
        Plant::MissingField => {
            answer.as_object_mut().unwrap().remove("iat");
        }
        Plant::OtherType => answer["exp"] = json!(exp.to_string()),
        _ => {}
    }
    (200, answer)
}

fn shadow_table(issuer: &str, legacy: &Legacy, extra: &str) -> String {
    format!(
        "\n[issuers.{issuer}.shadow]\nurl = \"{}\"\nclaims = [\"client_id\"]\n{extra}",
        legacy.url()
    )
}

async fn comparisons(gw: &Gateway, issuer: &str, result: &str) -> f64 {
    gw.metric(
        "portero_shadow_comparisons_total",
        &[("issuer", issuer), ("result", result)],
    )
    .await
}

/// Waits for one more comparison than `before` (same, different and error).
async fn next_comparison(gw: &Gateway, issuer: &str, before: f64) {
    let total = || async {
        let mut n = 0.0;
        for result in ["same", "different", "error"] {
            n += comparisons(gw, issuer, result).await;
        }
        n
    };
    let got = poll(Duration::from_secs(10), total, |n| *n > before).await;
    assert!(got > before, "no comparison for {issuer}");
}

/// The WARN lines the comparison logged, as (kind, field, portero, legacy).
fn differences_logged(gw: &Gateway, issuer: &str) -> Vec<(String, String, String, String)> {
    gw.log()
        .lines()
        .map(as_text)
        .filter(|l| l.contains("shadow: the legacy service answered differently"))
        .filter(|l| l.contains(&format!("issuer={issuer}")))
        .map(|l| {
            // Each value runs to the next of these keys.
            let keys = [" issuer=", " kind=", " field=", " portero=", " legacy="];
            let field = |name: &str| {
                let Some(start) = l.find(&format!(" {name}=")).map(|i| i + name.len() + 2) else {
                    return String::new();
                };
                let end = keys
                    .iter()
                    .filter_map(|k| l[start..].find(k).map(|i| start + i))
                    .min()
                    .unwrap_or(l.len());
                l[start..end].trim_matches('"').to_string()
            };
            (
                field("kind"),
                field("field"),
                field("portero"),
                field("legacy"),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_planted_difference_is_found_and_nothing_on_identical_answers() {
    let session_legacy = Legacy::start(session).await;
    let flat_legacy = Legacy::start(client_flat).await;
    let gw = demo(|demo| {
        demo + &shadow_table("session", &session_legacy, "")
            + &shadow_table("client-flat", &flat_legacy, "")
    })
    .await;
    let cases = [
        (Plant::Nothing, true, None),
        (Plant::Nothing, false, None),
        (Plant::ChangedMessage, false, Some("value")),
        (Plant::MissingField, true, Some("missing")),
        (Plant::OtherType, true, Some("type")),
        (Plant::OtherStatus, false, Some("status")),
    ];
    let families: [(&str, &str, &Legacy, &str, &str); 2] = [
        (
            "session",
            SESSION,
            &session_legacy,
            SESSION_LOGIN,
            SESSION_WRONG,
        ),
        (
            "client-flat",
            FLAT_PATH,
            &flat_legacy,
            FLAT_LOGIN,
            FLAT_WRONG,
        ),
    ];
    let mut table = vec![];
    let mut tokens_seen = vec![];
    for (issuer, path, legacy, good, wrong) in families {
        for (plant, login, expected_kind) in cases {
            legacy.plant(plant);
            let differences_before = differences_logged(&gw, issuer).len();
            let (same, different) = (
                comparisons(&gw, issuer, "same").await,
                comparisons(&gw, issuer, "different").await,
            );
            let seen = legacy.seen();
            let (status, body) = post(&gw, path, None, if login { good } else { wrong }).await;
            assert_eq!(status.is_success(), login, "{issuer} {plant:?}: {body}");
            if login {
                tokens_seen.push(body.clone());
            }
            next_comparison(&gw, issuer, same + different).await;
            assert_eq!(
                legacy.seen(),
                seen + 1,
                "the legacy service sees each attempt once"
            );
            let new: Vec<_> = differences_logged(&gw, issuer)[differences_before..].to_vec();
            match expected_kind {
                None => {
                    assert_eq!(
                        comparisons(&gw, issuer, "same").await,
                        same + 1.0,
                        "{issuer} {plant:?}"
                    );
                    assert!(new.is_empty(), "{issuer} {plant:?}: {new:?}");
                }
                Some(kind) => {
                    assert_eq!(
                        comparisons(&gw, issuer, "different").await,
                        different + 1.0,
                        "{issuer} {plant:?}"
                    );
                    let found = poll(
                        Duration::from_secs(2),
                        || async { differences_logged(&gw, issuer)[differences_before..].to_vec() },
                        |lines| lines.iter().any(|l| l.0 == kind),
                    )
                    .await;
                    assert!(
                        found.iter().any(|l| l.0 == kind),
                        "{issuer} {plant:?}: {found:?}"
                    );
                    table.extend(found.into_iter().map(|l| (issuer, plant, l)));
                }
            }
        }
    }
    println!("| issuer | planted | kind | field | portero | legacy |\n|---|---|---|---|---|---|");
    for (issuer, plant, (kind, field, p, l)) in &table {
        println!("| {issuer} | {plant:?} | {kind} | {field} | {p} | {l} |");
    }
    let log = gw.log();
    let secrets = [
        "demo2024",
        "not-the-password-41",
        "demo_secret_456_ABCDEFGH",
        "wrong_secret_0000_XYZ",
    ];
    for secret in secrets {
        assert!(!log.contains(secret), "a secret in the log: {secret}");
    }
    let minted = session_legacy.minted.lock().unwrap().clone();
    for token in minted
        .iter()
        .chain(&flat_legacy.minted.lock().unwrap().clone())
    {
        assert!(
            !log.contains(&token[token.len() - 20..]),
            "a legacy token in the log"
        );
    }
    for answer in tokens_seen {
        let v = parse(&answer);
        let token = v["tokenValido"]
            .as_str()
            .or(v["access_token"].as_str())
            .unwrap();
        assert!(
            !log.contains(&token[token.len() - 20..]),
            "portero's token in the log"
        );
    }
}

/// Client latency for `n` sequential logins to client-flat: (median, p99).
async fn latencies(gw: &Gateway, n: usize) -> (Duration, Duration) {
    let client = reqwest::Client::new();
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let r = client
            .post(gw.url(FLAT_PATH))
            .header("content-type", "application/json")
            .body(FLAT_LOGIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap();
        took.push(start.elapsed());
    }
    took.sort();
    (took[n / 2], took[n * 99 / 100])
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_slow_legacy_service_never_slows_the_client_and_a_dead_one_is_an_error() {
    let mut legacy = Legacy::start(client_flat).await;
    legacy.delay_ms.store(2000, Ordering::SeqCst);
    let plain = demo(|demo| demo).await;
    let shadowed = demo(|demo| demo + &shadow_table("client-flat", &legacy, "queue = 16\n")).await;
    let rss_before = rss_kib(shadowed.pid());
    // Interleaved, so the machine's noise falls on both alike.
    let mut without = vec![];
    let mut with = vec![];
    for _ in 0..3 {
        without.push(latencies(&plain, 100).await);
        with.push(latencies(&shadowed, 100).await);
    }
    let rss_full = rss_kib(shadowed.pid());
    let dropped = comparisons(&shadowed, "client-flat", "dropped").await;
    println!("client latency without a shadow (median, p99 of 100): {without:?}");
    println!("client latency with a 2 s legacy service: {with:?}");
    println!(
        "RSS before {rss_before} KiB, with the queue of 16 full {rss_full} KiB; {dropped} dropped"
    );
    for ((_, p99_without), (_, p99_with)) in without.iter().zip(&with) {
        // A client held by the 2 s legacy service would show it here.
        assert!(
            *p99_with < *p99_without + Duration::from_millis(500),
            "p99 {p99_with:?} with a slow shadow, {p99_without:?} without"
        );
    }
    assert!(
        dropped > 0.0,
        "a queue of 16 under 300 logins in well under 2 s drops"
    );

    // The slow comparisons finish; then the legacy service dies.
    poll(
        Duration::from_secs(10),
        || comparisons(&shadowed, "client-flat", "same"),
        |n| *n >= 16.0,
    )
    .await;
    legacy.kill();
    let errors = comparisons(&shadowed, "client-flat", "error").await;
    let (status, _) = post(&shadowed, FLAT_PATH, None, FLAT_LOGIN).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "portero answers whatever the legacy service does"
    );
    let got = poll(
        Duration::from_secs(10),
        || comparisons(&shadowed, "client-flat", "error"),
        |n| *n > errors,
    )
    .await;
    assert_eq!(got, errors + 1.0);
    assert!(shadowed
        .log()
        .contains("shadow: the legacy service gave no answer to compare"));
}

#[tokio::test]
async fn with_the_legacy_service_primary_the_client_gets_its_answer() {
    let mut legacy = Legacy::start(session).await;
    let primary = "primary = \"legacy\"\n";
    let gw = demo(|demo| demo + &shadow_table("session", &legacy, primary)).await;
    let fallback = demo(|demo| {
        demo + &shadow_table("session", &legacy, &format!("{primary}fallback = true\n"))
    })
    .await;

    // The legacy's answer, planted difference and all, is the client's;
    // portero's own is worked out after, and compared.
    legacy.plant(Plant::ChangedMessage);
    let (status, body) = post(&gw, SESSION, None, SESSION_WRONG).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(parse(&body)["message"], "Credenciales incorrectas");
    next_comparison(&gw, "session", 0.0).await;
    assert_eq!(comparisons(&gw, "session", "different").await, 1.0);
    let logged = differences_logged(&gw, "session");
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(
        (logged[0].0.as_str(), logged[0].1.as_str()),
        ("value", "$.message")
    );
    legacy.plant(Plant::Nothing);
    let (status, body) = post(&gw, SESSION, None, SESSION_LOGIN).await;
    assert_eq!(status, StatusCode::OK);
    let token = parse(&body)["tokenValido"].as_str().unwrap().to_string();
    assert!(
        legacy.minted.lock().unwrap().contains(&token),
        "the legacy's token"
    );
    next_comparison(&gw, "session", 1.0).await;
    assert_eq!(comparisons(&gw, "session", "same").await, 1.0);

    // A dead legacy service: the dialect's own server error, or with
    // `fallback` portero's own answer.
    legacy.kill();
    let (status, body) = post(&gw, SESSION, None, SESSION_LOGIN).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        parse(&body),
        json!({"error": 3, "message": "Error del servidor"})
    );
    assert_eq!(comparisons(&gw, "session", "error").await, 1.0);
    let (status, body) = post(&fallback, SESSION, None, SESSION_LOGIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = parse(&body)["tokenValido"].as_str().unwrap().to_string();
    assert!(
        !legacy.minted.lock().unwrap().contains(&token),
        "portero's own token"
    );
    assert_eq!(comparisons(&fallback, "session", "error").await, 1.0);
}

#[test]
fn a_shadow_table_is_checked() {
    let (ok, out) = check(
        "[issuers.s]\ndialect = \"session\"\n\n[issuers.s.shadow]\nurl = \"ftp://legacy\"\nsample = 2.0\nfallback = true\nqueue = 0\nmirror = true\n",
    );
    assert!(!ok);
    assert!(out.contains("mirror"), "{out}");
    let (ok, out) = check(
        "[issuers.s]\ndialect = \"session\"\n\n[issuers.s.shadow]\nurl = \"ftp://legacy\"\nsample = 2.0\nfallback = true\nqueue = 0\n",
    );
    assert!(!ok);
    for key in [
        "shadow.url",
        "shadow.sample",
        "shadow.fallback",
        "shadow.queue",
    ] {
        assert!(out.contains(key), "{key}: {out}");
    }
}

#[tokio::test]
async fn refresh_requests_reach_the_legacy_service_only_when_asked_for() {
    let legacy = Legacy::start(session).await;
    let refresh = r#"{"refreshToken": "not-one-portero-minted"}"#;
    let gw = demo(|demo| demo + &shadow_table("login-refresh", &legacy, "")).await;
    let (status, _) = post(&gw, "/api/auth/refreshtoken", None, refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(&gw, "/api/auth/token", None, SESSION_WRONG).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    next_comparison(&gw, "login-refresh", 0.0).await;
    assert_eq!(
        legacy.seen(),
        1,
        "the login only: a refresh could rotate a legacy family"
    );

    let asked = "compare_refresh = true\n";
    let gw = demo(|demo| demo + &shadow_table("login-refresh", &legacy, asked)).await;
    post(&gw, "/api/auth/refreshtoken", None, refresh).await;
    next_comparison(&gw, "login-refresh", 0.0).await;
    assert_eq!(legacy.seen(), 2);
}

/// The secret of `request` (whichever field holds it), decoded.
fn sent_secret(request: &Value) -> String {
    ["password", "clientSecret", "client_secret"]
        .iter()
        .find_map(|f| request[*f].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Legacy stand-ins that answer every login 401 in their dialect's error
/// shape, with the message made of the secret the client sent.
fn echo_in_session(request: &Value, _: Plant, _: &mut Vec<String>) -> (u16, Value) {
    let message = format!("La clave {} no corresponde", sent_secret(request));
    (401, json!({"error": 1, "message": message}))
}

fn echo_in_project(request: &Value, _: Plant, _: &mut Vec<String>) -> (u16, Value) {
    (401, json!({"error": sent_secret(request)}))
}

fn echo_in_envelope(request: &Value, _: Plant, _: &mut Vec<String>) -> (u16, Value) {
    let message = format!("clientSecret {} rechazado", sent_secret(request));
    (
        401,
        json!({"code": 401, "status": "error", "message": message}),
    )
}

fn echo_in_flat(request: &Value, _: Plant, _: &mut Vec<String>) -> (u16, Value) {
    (401, json!({"msg": sent_secret(request)}))
}

/// Answers as portero does, with another of the dialect's own messages.
fn fixed_in_login_refresh(_: &Value, _: Plant, _: &mut Vec<String>) -> (u16, Value) {
    (
        401,
        json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            "status": 401,
            "error": "Unauthorized",
            "message": "Invalid refresh token",
            "path": "/api/auth/token",
        }),
    )
}

#[tokio::test]
async fn a_legacy_service_that_echoes_the_password_never_gets_it_into_the_log() {
    let session_legacy = Legacy::start(echo_in_session).await;
    let project_legacy = Legacy::start(echo_in_project).await;
    let envelope_legacy = Legacy::start(echo_in_envelope).await;
    let flat_legacy = Legacy::start(echo_in_flat).await;
    let refresh_legacy = Legacy::start(fixed_in_login_refresh).await;
    let gw = demo(|demo| {
        demo + &shadow_table("session", &session_legacy, "")
            + &shadow_table("project", &project_legacy, "")
            + &shadow_table("client-envelope", &envelope_legacy, "")
            + &shadow_table("client-flat", &flat_legacy, "")
            + &shadow_table("login-refresh", &refresh_legacy, "")
    })
    .await;
    // Every secret holds "Zorro", and the log must hold it in no form.
    let logins: [(&str, &str, Option<&str>, &str); 5] = [
        // JSON-escaped `ñ`, echoed decoded inside a longer message.
        (
            "session",
            SESSION,
            None,
            r#"{"username": "admin", "password": "Zorro\u00f1o-41"}"#,
        ),
        // JSON-escaped `/`, echoed decoded as the whole message.
        (
            "project",
            "/auth",
            None,
            r#"{"business": "5a2ac49cbbbce212f885529c", "proyecto": "upconta", "password": "Zorro\/barra-42"}"#,
        ),
        // Plain, inside a longer message.
        (
            "client-envelope",
            "/api/auth/token",
            Some("maxpoint.localhost"),
            r#"{"clientId": "f2ffebd1-77eb-49d2-a623-99824b1f485d", "clientSecret": "Zorro-envelope-43"}"#,
        ),
        // Plain, as the whole message.
        (
            "client-flat",
            FLAT_PATH,
            None,
            r#"{"client_id": "demo_client_123", "client_secret": "Zorro_flat_secret_44"}"#,
        ),
        (
            "login-refresh",
            "/api/auth/token",
            None,
            r#"{"username": "admin", "password": "Zorro-lr-45"}"#,
        ),
    ];
    for (issuer, path, host, body) in logins {
        let before = comparisons(&gw, issuer, "different").await;
        let (status, answer) = post(&gw, path, host, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{issuer}: {answer}");
        let got = poll(
            Duration::from_secs(10),
            || comparisons(&gw, issuer, "different"),
            |n| *n > before,
        )
        .await;
        assert_eq!(got, before + 1.0, "{issuer}: the echo is a difference");
        let logged = poll(
            Duration::from_secs(2),
            || async { differences_logged(&gw, issuer) },
            |l| !l.is_empty(),
        )
        .await;
        assert!(!logged.is_empty(), "{issuer}: no difference logged");
    }

    let log = gw.log();
    for form in [
        "zorro",
        "u00f1",
        "barra",
        "envelope-43",
        "secret_44",
        "lr-45",
    ] {
        assert!(
            !log.to_lowercase().contains(form),
            "the password, as {form:?}, in the log:\n{log}"
        );
    }
    // A string of unknown meaning is shown by its type and length.
    let session = differences_logged(&gw, "session");
    let message = session.iter().find(|l| l.1 == "$.message").unwrap();
    assert_eq!(message.2, "Credenciales inválidas", "{session:?}");
    assert_eq!(message.3, "a string of 34 characters", "{session:?}");
    // One of the dialect's own fixed messages is shown as it is.
    let refresh = differences_logged(&gw, "login-refresh");
    assert_eq!(
        refresh,
        [(
            "value".to_string(),
            "$.message".to_string(),
            "Bad credentials".to_string(),
            "Invalid refresh token".to_string()
        )]
    );
}

/// A legacy service over raw TCP: every request gets the bytes in
/// `answer`, then the connection closes; so it can send what a
/// well-behaved server would not.
struct RawLegacy {
    addr: SocketAddr,
    answer: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawLegacy {
    async fn start() -> RawLegacy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer: Arc<Mutex<Vec<u8>>> = Arc::default();
        let bytes = answer.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let bytes = bytes.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    // The head, then as much body as it announces.
                    loop {
                        let Ok(n) = stream.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request).to_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length: usize = text[..end]
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse().unwrap());
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    let answer = bytes.lock().unwrap().clone();
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        RawLegacy { addr, answer, task }
    }

    fn answer(&self, bytes: &str) {
        *self.answer.lock().unwrap() = bytes.as_bytes().to_vec();
    }
}

impl Drop for RawLegacy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request on an open connection and its response, read by its
/// `Content-Length`: (status, body).
async fn exchange(stream: &mut tokio::net::TcpStream, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the gateway closed the connection: {got:?}");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            let head = text[..end].to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, text[end + 4..end + 4 + length].to_string());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a whole response")
}

#[tokio::test]
async fn with_the_legacy_service_primary_a_status_outside_the_dialect_is_its_server_error() {
    let legacy = RawLegacy::start().await;
    let table = format!(
        "\n[issuers.session.shadow]\nurl = \"http://{}\"\nprimary = \"legacy\"\n",
        legacy.addr
    );
    let gw = demo(|demo| demo + &table).await;
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", gw.public_port(0)))
        .await
        .unwrap();
    let request = format!(
        "POST {SESSION} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{SESSION_WRONG}",
        SESSION_WRONG.len()
    );
    let server_error = json!({"error": 3, "message": "Error del servidor"});
    let outside = [
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nbody-secret-101 after the switch",
        "HTTP/1.1 204 No Content\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n{\"m\": \"body-secret-204 here\"}",
        "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.test/\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n{\"m\": \"body-secret-302 here\"}",
    ];
    for (n, answer) in outside.iter().enumerate() {
        legacy.answer(answer);
        let (status, body) = exchange(&mut client, &request).await;
        assert_eq!(status, 500, "{answer}: {body}");
        assert_eq!(parse(&body), server_error, "{answer}");
        let counted = gw
            .wait_metric(
                "portero_shadow_comparisons_total",
                &[("issuer", "session"), ("result", "different")],
                (n + 1) as f64,
            )
            .await;
        assert_eq!(counted, (n + 1) as f64, "{answer}: counted as a difference");
    }
    // The same connection carries the next answer, from the contract.
    let wrong = r#"{"error": 1, "message": "Credenciales inválidas"}"#;
    legacy.answer(&format!(
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{wrong}",
        wrong.len()
    ));
    let (status, body) = exchange(&mut client, &request).await;
    assert_eq!((status, parse(&body)), (401, parse(wrong)));

    // With `fallback`, portero's own answer instead.
    let fallback = demo(|demo| demo + &table + "fallback = true\n").await;
    legacy.answer(outside[2]);
    let (status, body) = post(&fallback, SESSION, None, SESSION_LOGIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(parse(&body)["tokenValido"].is_string(), "{body}");
    assert_eq!(
        comparisons(&fallback, "session", "different").await,
        1.0,
        "counted as a difference"
    );

    // By the class alone: the legacy's own status may carry the client's digits.
    let log = gw.log_with("status=3xx").await;
    for status in ["1xx", "2xx", "3xx"] {
        assert!(
            log.contains(&format!("status={status}")),
            "{status} logged:\n{log}"
        );
    }
    assert!(
        !log.contains("body-secret"),
        "a legacy body in the log:\n{log}"
    );
}

/// A session principal with a numeric password, the kind a legacy service
/// could hide in its numbers. Its hash is of `LIFETIME_PIN`.
const PIN_PRINCIPAL: &str = r#"
[[issuers.session.principals]]
username = "pin"
# 1234567
secret_hash = "$argon2id$v=19$m=19456,t=2,p=1$zma33UVy0atLJtBd+NXT3Q$GlpVjHJBCx97OGxCscpwlamaKeW9aCVkWJW9UTu0fo4"
id = 7
nombre = "Pin"
"#;
/// Split across a JWT's lifetime (`1234` s), `vencimiento` (`567` s
/// away) and the JWT's `id` claim.
const LIFETIME_PIN: &str = "1234567";
/// Split across the status (`555`) and the error code (`91`).
const STATUS_PIN: &str = "5559123";
/// Leading zeros dropped: the error code `71234`.
const ZERO_PIN: &str = "0071234";
/// Answered with the dialect's own numbers only: they are shown.
const FIXED_PIN: &str = "2403";
/// Inside the project dialect's numbered message, as its number (`9876`).
const MESSAGE_PIN: &str = "9876543";
/// The project dialect's numbered message with the demo's `max_years`.
const MAX_YEARS_PIN: &str = "10";
/// The status of a legacy answer the dialect never uses (`543`).
const OUTSIDE_PIN: &str = "5438765";

/// Seed 000 answers that hide the client's numeric password in numbers.
fn numbers_in_session(request: &Value, _: Plant, minted: &mut Vec<String>) -> (u16, Value) {
    let pin = sent_secret(request);
    let number = |digits: &str| digits.parse::<i64>().unwrap();
    let wrong = |code: Value, message: &str| json!({"error": code, "message": message});
    match pin.as_str() {
        LIFETIME_PIN => {
            let iat = now();
            let token = legacy_jwt(
                json!({"username": "pin", "id": number(&pin), "iat": iat, "exp": iat + number(&pin[..4])}),
                minted,
            );
            let vencimiento = chrono::Utc::now() + chrono::Duration::seconds(number(&pin[4..]));
            (
                200,
                json!({
                    "tokenValido": token,
                    "vencimiento": vencimiento.format("%Y-%m-%d %H:%M:%S").to_string(),
                    "usuario": {"id": 7, "username": "pin", "nombre": "Pin"},
                }),
            )
        }
        STATUS_PIN => (
            number(&pin[..3]) as u16,
            wrong(json!(number(&pin[3..5])), "Credenciales inválidas"),
        ),
        ZERO_PIN => (401, wrong(json!(number(&pin)), "Credenciales inválidas")),
        _ => (403, wrong(json!(2), "Usuario bloqueado")),
    }
}

/// Seed 002 answers that hide the client's numeric password in numbers.
fn numbers_in_project(request: &Value, _: Plant, _: &mut Vec<String>) -> (u16, Value) {
    let pin = sent_secret(request);
    let numbered = |n: &str| json!({"error": format!("withoutExpiration debe ser true o un número de años entre 1 y {n}")});
    match pin.as_str() {
        MESSAGE_PIN => (401, numbered(&pin[..4])),
        OUTSIDE_PIN => (pin[..3].parse().unwrap(), json!({"error": "x"})),
        _ => (400, numbered(&pin)),
    }
}

/// Every run of three digits or more in `secret`.
fn digit_runs(secret: &str) -> Vec<&str> {
    let mut runs = vec![];
    for run in secret.split(|c: char| !c.is_ascii_digit()) {
        for start in 0..run.len() {
            for end in start + 3..=run.len() {
                runs.push(&run[start..end]);
            }
        }
    }
    runs
}

/// Asserts no WARN line of `gw`'s shadow comparison holds a run of three
/// digits or more of `secret` (the lines from their message on: a
/// timestamp's digits are not the comparison's).
fn assert_no_digits_of(gw: &Gateway, secret: &str) {
    let runs = digit_runs(secret);
    assert!(!runs.is_empty());
    for line in gw.log().lines().map(as_text) {
        let Some(at) = line.find("shadow: the legacy service") else {
            continue;
        };
        let line = &line[at..];
        for run in &runs {
            assert!(!line.contains(run), "{run:?} of {secret:?} in: {line}");
        }
    }
}

/// The gateway on the demo config with `issuer`'s shadow at `legacy`,
/// after one request of `body` to `path` was compared (or, with the legacy
/// service primary, refused) and its differences logged.
async fn compared_once(
    legacy: &Legacy,
    issuer: &str,
    extra: &str,
    path: &str,
    body: &str,
) -> Gateway {
    let table = format!(
        "{PIN_PRINCIPAL}\n[issuers.{issuer}.shadow]\nurl = \"{}\"\nclaims = [\"username\", \"id\"]\n{extra}",
        legacy.url()
    );
    let gw = demo(|demo| demo + &table).await;
    post(&gw, path, None, body).await;
    next_comparison(&gw, issuer, 0.0).await;
    gw.log_with("shadow: the legacy service").await;
    // The rest of the comparison's lines, written by the same background
    // thread a moment later.
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw
}

fn login(username: &str, password: &str) -> String {
    json!({"username": username, "password": password}).to_string()
}

fn project_login(password: &str) -> String {
    json!({"business": "5a2ac49cbbbce212f885529c", "proyecto": "upconta", "password": password})
        .to_string()
}

/// Finds the logged difference at `field`.
fn at_field(logged: &[(String, String, String, String)], field: &str) -> (String, String) {
    let l = logged
        .iter()
        .find(|l| l.1 == field)
        .unwrap_or_else(|| panic!("nothing at {field}: {logged:?}"));
    (l.2.clone(), l.3.clone())
}

#[tokio::test]
async fn legacy_lifetimes_and_claims_are_shown_relative_to_portero_never_as_numbers() {
    let legacy = Legacy::start(numbers_in_session).await;
    let gw = compared_once(&legacy, "session", "", SESSION, &login("pin", LIFETIME_PIN)).await;
    let logged = differences_logged(&gw, "session");
    assert_no_digits_of(&gw, LIFETIME_PIN);
    // portero's 24 h (a second either side) against the legacy's 1234 s
    // and 567 s.
    for field in ["$.tokenValido#exp", "$.vencimiento"] {
        let (portero, legacy) = at_field(&logged, field);
        assert!(portero.starts_with("lifetime 86"), "{field}: {portero}");
        assert_eq!(legacy, "shorter by hours", "{field}");
    }
    // A listed claim's number, of no meaning the dialect gives it.
    assert_eq!(
        at_field(&logged, "$.tokenValido#id"),
        ("7".into(), "a number of 7 digits".into())
    );
}

#[tokio::test]
async fn a_legacy_status_or_code_the_dialect_never_writes_is_shown_by_class_and_size() {
    let legacy = Legacy::start(numbers_in_session).await;
    let login = |pin| login("pin", pin);

    let gw = compared_once(&legacy, "session", "", SESSION, &login(STATUS_PIN)).await;
    let logged = differences_logged(&gw, "session");
    assert_no_digits_of(&gw, STATUS_PIN);
    assert_eq!(
        at_field(&logged, "$"),
        ("401".into(), "a 5xx status outside the contract".into())
    );
    assert_eq!(
        at_field(&logged, "$.error"),
        ("1".into(), "a number of 2 digits".into())
    );

    let gw = compared_once(&legacy, "session", "", SESSION, &login(ZERO_PIN)).await;
    let logged = differences_logged(&gw, "session");
    assert_no_digits_of(&gw, ZERO_PIN);
    assert_eq!(
        at_field(&logged, "$.error"),
        ("1".into(), "a number of 5 digits".into())
    );

    // The dialect's own status, code and message are shown as they are.
    let gw = compared_once(&legacy, "session", "", SESSION, &login(FIXED_PIN)).await;
    let logged = differences_logged(&gw, "session");
    assert_eq!(at_field(&logged, "$"), ("401".into(), "403".into()));
    assert_eq!(at_field(&logged, "$.error"), ("1".into(), "2".into()));
    assert_eq!(
        at_field(&logged, "$.message"),
        ("Credenciales inválidas".into(), "Usuario bloqueado".into())
    );
}

#[tokio::test]
async fn a_numbered_message_is_shown_with_its_number_only_when_the_config_sets_it() {
    let legacy = Legacy::start(numbers_in_project).await;
    let gw = compared_once(&legacy, "project", "", "/auth", &project_login(MESSAGE_PIN)).await;
    let logged = differences_logged(&gw, "project");
    assert_no_digits_of(&gw, MESSAGE_PIN);
    assert_eq!(
        at_field(&logged, "$.error").1,
        "withoutExpiration debe ser true o un número de años entre 1 y <a number of 4 digits>"
    );

    // The demo's max_years: the message as the dialect writes it.
    let gw = compared_once(
        &legacy,
        "project",
        "",
        "/auth",
        &project_login(MAX_YEARS_PIN),
    )
    .await;
    let logged = differences_logged(&gw, "project");
    assert_eq!(
        at_field(&logged, "$.error").1,
        "withoutExpiration debe ser true o un número de años entre 1 y 10"
    );
}

#[tokio::test]
async fn with_the_legacy_service_primary_a_status_outside_the_contract_is_logged_by_its_class() {
    let legacy = Legacy::start(numbers_in_project).await;
    let gw = compared_once(
        &legacy,
        "project",
        "primary = \"legacy\"\n",
        "/auth",
        &project_login(OUTSIDE_PIN),
    )
    .await;
    assert_no_digits_of(&gw, OUTSIDE_PIN);
    let log = gw.log();
    assert!(log.contains("status=5xx"), "{log}");
}
