//! Forwarding through the real gateway: round robin, failover when a server
//! dies, JSON errors for a dead or slow upstream, body limits, TLS and HTTP/2.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

/// A config forwarding every path, without a token, to upstream `api`.
fn public_route(upstream_table: &str) -> String {
    format!("{upstream_table}\n[[routes]]\npath = \"/\"\nupstream = \"api\"\npublic = true\n")
}

#[tokio::test]
async fn round_robin_then_no_failed_request_when_one_server_dies() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let config = public_route(&upstream(
        "api",
        &[a.addr, b.addr],
        "health_check_interval = \"200ms\"\nconnect_timeout = \"500ms\"",
    ));
    let gw = Gateway::start(&config).await;
    let client = reqwest::Client::new();

    let mut seen = HashSet::new();
    for _ in 0..6 {
        let r: Value = client
            .get(gw.url("/x"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.insert(r["upstream"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "both servers get traffic: {seen:?}");

    a.kill();
    // Right after the kill, before any health check notices: every request still succeeds.
    for i in 0..40 {
        let r = client
            .get(gw.url(&format!("/after-kill/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "request {i} after the kill:\n{}",
            gw.log()
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["upstream"], "b");
    }
    // The health check (every 200 ms) then takes the dead server out.
    let healthy = poll(
        Duration::from_secs(3),
        || gw.metric("portero_upstream_healthy_servers", &[("upstream", "api")]),
        |n| *n == 1.0,
    )
    .await;
    assert_eq!(healthy, 1.0, "the killed server is marked down");
}

#[tokio::test]
async fn upstream_down_is_502_json() {
    // A port with nothing listening.
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = public_route(&upstream("api", &[dead], "health_check = \"none\""));
    let gw = Gateway::start(&config).await;
    let r = reqwest::get(gw.url("/x")).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "bad_gateway");
}

#[tokio::test]
async fn slow_upstream_is_504_json() {
    let slow = Upstream::start_with_delay("slow", Duration::from_secs(3)).await;
    let config = public_route(&upstream("api", &[slow.addr], "read_timeout = \"300ms\""));
    let gw = Gateway::start(&config).await;
    let started = std::time::Instant::now();
    let r = reqwest::get(gw.url("/x")).await.unwrap();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at the timeout, not after the upstream"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "gateway_timeout");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let up = Upstream::start("api").await;
    // The harness keeps the default limit of 1 MiB.
    let gw = Gateway::start(&public_route(&upstream("api", &[up.addr], ""))).await;
    let client = reqwest::Client::new();
    let small: Value = client
        .post(gw.url("/x"))
        .body(vec![b'a'; 1000])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(small["body_bytes"], 1000);

    // Announced too large: refused before a byte is read.
    let big = client
        .post(gw.url("/x"))
        .body(vec![b'a'; 2 * 1024 * 1024])
        .send()
        .await;
    match big {
        Ok(r) => assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE),
        // The gateway may close the connection while the client is still sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }

    // Chunked, no length announced: cut off once past the limit.
    let chunks = (0..40).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 64 * 1024]));
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = client.post(gw.url("/x")).body(stream).send().await;
    match r {
        Ok(r) => assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }

    // The gateway is fine afterwards.
    let ok = client.get(gw.url("/x")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn strip_prefix_and_host_override() {
    let up = Upstream::start("api").await;
    let config = format!(
        "{}\n[[routes]]\npath = \"/svc\"\nupstream = \"api\"\npublic = true\nstrip_prefix = true\n",
        upstream("api", &[up.addr], "host = \"internal.api\"")
    );
    let gw = Gateway::start(&config).await;
    let r: Value = reqwest::get(gw.url("/svc/users?id=7"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["path"], "/users");
    assert_eq!(r["query"], "id=7");
    assert_eq!(r["headers"]["host"], "internal.api");
    assert_eq!(
        r["headers"]["x-forwarded-host"],
        format!("127.0.0.1:{}", gw.port)
    );
}

#[tokio::test]
async fn tls_listener_speaks_http2_and_http1() {
    let up = Upstream::start("api").await;
    let config = format!(
        "[[listen]]\naddr = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n{}\n[[routes]]\npath = \"/\"\nupstream = \"api\"\npublic = true\n",
        fixture("tls_cert.pem").display(),
        fixture("tls_key.pem").display(),
        upstream("api", &[up.addr], ""),
    );
    let gw = Gateway::start(&config).await;
    let tls_port = gw.tls_port();
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(fixture("tls_cert.pem")).unwrap()).unwrap();
    let url = format!("https://localhost:{tls_port}/secure");

    let h2 = reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .build()
        .unwrap();
    let r = h2.get(&url).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["path"], "/secure");
    assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    // HTTP/2 names the host in the request line; HTTP/1.1 upstreams need the header.
    assert_eq!(body["headers"]["host"], format!("localhost:{tls_port}"));
    assert_eq!(
        body["headers"]["x-forwarded-host"],
        format!("localhost:{tls_port}")
    );

    let h1 = reqwest::Client::builder()
        .add_root_certificate(ca)
        .http1_only()
        .build()
        .unwrap();
    let r = h1.get(&url).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), StatusCode::OK);
    drop(gw);
}

#[tokio::test]
async fn a_client_that_stalls_its_body_gets_408_and_the_gateway_moves_on() {
    let up = Upstream::start("api").await;
    let config = public_route(&upstream("api", &[up.addr], "write_timeout = \"300ms\""));
    // A body being buffered falls behind the minimum rate; one past the
    // buffer size, streaming, outlasts the upstream's write timeout.
    let buffered = "min_body_rate_after = \"300ms\"";
    stalled_body_gets_408(&Gateway::start_with_server_settings(buffered, &config).await).await;
    assert_eq!(up.requests(), 1, "the buffered stall reached the upstream");
    let streamed = "request_buffer_size = \"64B\"";
    stalled_body_gets_408(&Gateway::start_with_server_settings(streamed, &config).await).await;
}

/// One chunk, then nothing for five seconds: `408` within two, and the
/// gateway serves the next request.
async fn stalled_body_gets_408(gw: &Gateway) {
    let chunks = futures_util::stream::once(async { Ok::<_, std::io::Error>(vec![b'a'; 100]) })
        .chain(futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(vec![b'b'; 100])
        }));
    let started = std::time::Instant::now();
    let r = reqwest::Client::new()
        .post(gw.url("/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at the timeout"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "request_timeout");
    let ok = reqwest::get(gw.url("/x")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_upstream_that_stalls_mid_body_is_cut_off_not_passed_as_complete() {
    // Promises 100 bytes, sends 5, then says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello")
                    .await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let config = public_route(&upstream(
        "api",
        &[addr],
        "read_timeout = \"300ms\"\nhealth_check = \"none\"",
    ));
    let gw = Gateway::start(&config).await;
    let started = std::time::Instant::now();
    let r = reqwest::get(gw.url("/x")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.is_err(), "a truncated body is an error");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cut at the timeout"
    );
}

#[tokio::test]
async fn hop_by_hop_headers_do_not_cross_the_gateway() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start(&public_route(&upstream("api", &[up.addr], ""))).await;
    let r: Value = reqwest::Client::new()
        .get(gw.url("/x"))
        .header("connection", "keep-alive, x-private-hop")
        .header("x-private-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("x-kept", "1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let headers = r["headers"].as_object().unwrap();
    for hop in ["x-private-hop", "keep-alive", "te"] {
        assert!(!headers.contains_key(hop), "{hop} forwarded: {headers:?}");
    }
    assert_eq!(headers["x-kept"], "1");
}

#[tokio::test]
async fn an_answer_before_the_body_is_read_closes_the_connection() {
    let up = Upstream::start("api").await;
    let config = format!(
        "{}\n[[routes]]\npath = \"/\"\nupstream = \"api\"\n\n[issuers.test]\niss = \"test\"\n\n\
         [[issuers.test.keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret_env = \"TEST_HS_SECRET\"\n",
        upstream("api", &[up.addr], "")
    );
    let gw = Gateway::start(&config).await;
    let client = reqwest::Client::new();
    // Denied before the body is read: the client may not send another
    // request on this connection, so it is told so.
    let denied = client
        .post(gw.url("/x"))
        .body(vec![b'a'; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(denied.headers()["connection"], "close");
    // Nothing was left unread: the connection stays open.
    let denied = client.get(gw.url("/x")).send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert!(denied.headers().get("connection").is_none());
}

#[tokio::test]
async fn idle_upstream_connections_are_capped_per_server() {
    let slow = Upstream::start_with_delay("slow", Duration::from_millis(300)).await;
    let config = public_route(&upstream(
        "api",
        &[slow.addr],
        "max_idle_connections = 1\nhealth_check = \"none\"",
    ));
    let gw = Gateway::start(&config).await;
    // (No health check: its probes would count as connections.)
    // Four at once need four connections; only one may stay once they are answered.
    let client = reqwest::Client::new();
    let answers =
        futures_util::future::join_all((0..4).map(|_| client.get(gw.url("/x")).send())).await;
    for r in answers {
        assert_eq!(r.unwrap().status(), StatusCode::OK);
    }
    let open = poll(
        Duration::from_secs(3),
        || async { slow.open_connections() },
        |n| *n == 1,
    )
    .await;
    assert_eq!(open, 1, "idle connections kept beyond max_idle_connections");
    // The one kept is reused.
    let r = client.get(gw.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(slow.open_connections(), 1);
}

#[tokio::test]
async fn idle_upstream_connections_close_after_idle_timeout() {
    let api = Upstream::start("api").await;
    let config = public_route(&upstream(
        "api",
        &[api.addr],
        "idle_timeout = \"200ms\"\nhealth_check = \"none\"",
    ));
    let gw = Gateway::start(&config).await;
    let r = reqwest::get(gw.url("/x")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let open = poll(
        Duration::from_secs(3),
        || async { api.open_connections() },
        |n| *n == 0,
    )
    .await;
    assert_eq!(open, 0, "an idle pooled connection outlived idle_timeout");
}

/// Which upstreams answer `n` requests to `path`.
async fn answering(gw: &Gateway, n: usize) -> HashSet<String> {
    let client = reqwest::Client::new();
    let mut seen = HashSet::new();
    for i in 0..n {
        let r = client.get(gw.url(&format!("/n/{i}"))).send().await.unwrap();
        let body: Value = r.json().await.unwrap();
        seen.insert(body["upstream"].as_str().unwrap().to_string());
    }
    seen
}

#[tokio::test]
async fn an_http_health_check_takes_a_503_server_out_and_brings_it_back() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let check = "health_check = { path = \"/healthz\", expect = [200, 204], interval = \"100ms\", \
                 timeout = \"500ms\", healthy_after = 2, unhealthy_after = 2 }";
    let gw = Gateway::start(&public_route(&upstream("api", &[a.addr, b.addr], check))).await;
    let healthy = || gw.metric("portero_upstream_healthy_servers", &[("upstream", "api")]);
    assert_eq!(answering(&gw, 4).await.len(), 2);

    // `a` says it is unwell: out after two checks in a row, and only `b` serves.
    a.set_health(503);
    let down = poll(Duration::from_secs(5), healthy, |n| *n == 1.0).await;
    assert_eq!(down, 1.0, "{}", gw.log());
    let before = a.requests();
    assert_eq!(answering(&gw, 6).await, HashSet::from(["b".to_string()]));
    assert_eq!(a.requests(), before, "a down server gets no requests");
    assert!(gw
        .log_with("upstream server health changed")
        .await
        .contains("upstream server health changed"));

    // Well again: back after two good checks.
    a.set_health(204);
    let up = poll(Duration::from_secs(5), healthy, |n| *n == 2.0).await;
    assert_eq!(up, 2.0, "{}", gw.log());
    assert_eq!(answering(&gw, 4).await.len(), 2);
}

#[tokio::test]
async fn a_server_failing_requests_in_a_row_is_ejected_for_its_cool_down() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let passive =
        "health_check = \"none\"\neject_after = 3\neject_for = \"1s\"\neject_on_5xx = true";
    let gw = Gateway::start(&public_route(&upstream("api", &[a.addr, b.addr], passive))).await;
    let client = reqwest::Client::new();

    a.set_status(500);
    // Round robin sends `a` every other request until its third 500 in a row.
    let mut errors = 0;
    for i in 0..20 {
        let r = client.get(gw.url(&format!("/e/{i}"))).send().await.unwrap();
        if r.status() == StatusCode::INTERNAL_SERVER_ERROR {
            errors += 1;
        }
    }
    assert_eq!(errors, 3, "ejected after three failures in a row");
    let ejections = gw
        .metric("portero_upstream_ejections_total", &[("upstream", "api")])
        .await;
    assert_eq!(ejections, 1.0);
    assert!(gw
        .log()
        .contains("upstream server ejected after failing requests in a row"));

    // After the cool-down it is asked again (and, well now, stays in).
    a.set_status(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(answering(&gw, 4).await.len(), 2);
}

/// Keep-alive POSTs with bodies, from a few clients at once, through the
/// built-in echo upstream over pooled connections: every one is answered
/// by the upstream, none `502`. Bounded in count and time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keep_alive_posts_through_the_echo_upstream_never_get_502() {
    const CLIENTS: usize = 4;
    const POSTS: usize = 20_000;
    let gw = Gateway::start(&public_route("[upstreams.api]\nbuiltin = \"echo\"\n")).await;
    let url = gw.url("/orders");
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients = (0..CLIENTS).map(|c| {
        let (url, next) = (url.clone(), next.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut statuses: Vec<u16> = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= POSTS || std::time::Instant::now() > until {
                    return statuses;
                }
                // Bodies from a few bytes to past one TCP segment.
                let body = "x".repeat(1 + (i * 7919 + c) % 3000);
                let r = client.post(&url).body(body).send().await.unwrap();
                let status = r.status().as_u16();
                let _ = r.bytes().await;
                statuses.push(status);
            }
        })
    });
    let mut done = 0;
    let mut failed = 0;
    for client in clients {
        for status in client.await.unwrap() {
            done += 1;
            if status != 200 {
                failed += 1;
                eprintln!("status {status}");
            }
        }
    }
    eprintln!("{done} POSTs, {failed} not 200");
    assert!(done >= 2_000, "only {done} POSTs within the time");
    assert_eq!(failed, 0, "{failed} of {done} POSTs were not answered 200");
}

/// An HTTP/2 (h2c) upstream of the test's own: answers each request, once
/// its body has ended, with the bytes it got and the trailers that came
/// with them, and counts the requests it answered.
struct H2Upstream {
    addr: std::net::SocketAddr,
    answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl H2Upstream {
    async fn start() -> H2Upstream {
        H2Upstream::start_at("127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_at(addr: std::net::SocketAddr) -> H2Upstream {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = answered.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let counter = counter.clone();
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let counter = counter.clone();
                        async move {
                            let collected = req.into_body().collect().await?;
                            let trailers: Vec<String> = collected
                                .trailers()
                                .map(|t| t.keys().map(|k| k.to_string()).collect())
                                .unwrap_or_default();
                            let body = serde_json::json!({
                                "bytes": collected.to_bytes().len(),
                                "trailers": trailers,
                            });
                            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(body.to_string()),
                            )))
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        H2Upstream { addr, answered }
    }

    fn answered(&self) -> usize {
        self.answered.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Sends `request`, says it has nothing more to send, and reads the answer.
async fn half_closed(port: u16, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A config forwarding every path to the h2c upstream at `addr`, one
/// failure enough to eject it, with bodies past 1 KiB streamed.
async fn gateway_before_h2c(addr: std::net::SocketAddr) -> Gateway {
    let table = upstream(
        "api",
        &[addr],
        "protocol = \"h2c\"\neject_after = 1\neject_for = \"60s\"\nhealth_check = \"none\"",
    );
    Gateway::start_with_server_settings("request_buffer_size = \"1KiB\"", &public_route(&table))
        .await
}

/// A client body that breaks its framing or ends short after the part read
/// before the upstream is asked (so it streams to the HTTP/2 upstream) is
/// the client's fault: `400`, and the one server is not ejected for it.
#[tokio::test]
async fn a_broken_client_body_to_an_http2_upstream_is_400_and_no_ejection() {
    let up = H2Upstream::start().await;
    let gw = gateway_before_h2c(up.addr).await;
    let big = format!("800\r\n{}\r\n", "b".repeat(0x800));
    let chunked = "POST /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (case, request, half_close) in [
        (
            "bare LF",
            format!("{chunked}{big}5\nhello\r\n0\r\n\r\n"),
            false,
        ),
        (
            "non-hex size",
            format!("{chunked}{big}zz\r\nhello\r\n0\r\n\r\n"),
            false,
        ),
        ("no last chunk", format!("{chunked}{big}"), true),
        (
            "shorter than its length",
            format!(
                "POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 200000\r\n\r\n{}",
                "c".repeat(70_000)
            ),
            true,
        ),
    ] {
        let (status, text) = match half_close {
            true => half_closed(gw.port, request.as_bytes()).await,
            false => raw_http(gw.port, request.as_bytes()).await,
        };
        assert_eq!(status, 400, "{case}: {text}");
        assert!(text.contains("bad_request"), "{case}: {text}");
    }
    // Not ejected (a group's only server is asked even when it is, so the
    // count says it): a whole body still reaches the one server.
    let r = reqwest::Client::new()
        .post(gw.url("/x"))
        .body("d".repeat(5000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["bytes"], 5000);
    assert_eq!(up.answered(), 1);
    let api = [("upstream", "api")];
    assert_eq!(
        gw.metric("portero_upstream_ejections_total", &api).await,
        0.0
    );
    assert_eq!(
        gw.metric("portero_upstream_down_tries_total", &api).await,
        0.0
    );
}

/// Trailers a client writes after its chunked body (where an identity
/// header could hide) never reach an HTTP/2 upstream, whether the body was
/// read whole first or streamed; the body itself arrives whole.
#[tokio::test]
async fn request_trailers_never_reach_an_http2_upstream() {
    let up = H2Upstream::start().await;
    let gw = gateway_before_h2c(up.addr).await;
    let trailers = "x-user-sub: mallory\r\nx-user-role: ADMIN\r\n\r\n";
    let big = format!("800\r\n{}\r\n", "b".repeat(0x800));
    for (body, bytes) in [
        (format!("5\r\nhello\r\n0\r\n{trailers}"), 5),
        (format!("{big}5\r\nhello\r\n0\r\n{trailers}"), 0x800 + 5),
    ] {
        let request = format!(
            "POST /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n{body}"
        );
        let (status, text) = raw_http(gw.port, request.as_bytes()).await;
        assert_eq!(status, 200, "{text}");
        let seen: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(seen["bytes"], bytes, "{text}");
        assert_eq!(seen["trailers"], serde_json::json!([]), "{text}");
    }
}

/// Readiness is the gateway's own: one upstream with no healthy server
/// leaves the instance ready (degraded, named in the body) and its other
/// routes served, unless that upstream `gates_readiness`.
#[tokio::test]
async fn a_dead_upstream_degrades_readiness_only_where_it_gates_it() {
    let alive = Upstream::start("alive").await;
    let doomed = Upstream::start("doomed").await;
    let tables = |gate: &str| {
        let check = format!("health_check_interval = \"100ms\"\n{gate}");
        format!(
            "{}{}[[routes]]\npath = \"/\"\nupstream = \"api\"\npublic = true\n\n[[routes]]\npath = \"/doomed\"\nupstream = \"doomed\"\npublic = true\n",
            upstream("api", &[alive.addr], ""),
            upstream("doomed", &[doomed.addr], &check),
        )
    };
    let plain = Gateway::start(&tables("")).await;
    let gated = Gateway::start(&tables("gates_readiness = true")).await;
    doomed.kill();
    let (code, state) = plain.wait_readiness("degraded").await;
    assert_eq!((code, state.as_str()), (200, "degraded"));
    let body: Value = reqwest::get(plain.admin_url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["healthy_servers"]["doomed"], 0, "{body}");
    let r = reqwest::get(plain.url("/x")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (code, state) = gated.wait_readiness("not_ready").await;
    assert_eq!((code, state.as_str()), (503, "not_ready"));
}

/// `n` requests to `path`: each one's status and which upstream answered.
async fn statuses(gw: &Gateway, path: &str, n: usize) -> Vec<(u16, String)> {
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    for i in 0..n {
        let r = client
            .get(gw.url(&format!("{path}/{i}")))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        let by = body["upstream"].as_str().or(body["error"].as_str());
        seen.push((status, by.unwrap_or_default().to_string()));
    }
    seen
}

/// A group's only server, marked down by its check, is still tried: while
/// nothing listens the answer is the 503 it always was, and once the server
/// listens the next request is served, long before the next check, which
/// still decides when it counts as up.
#[tokio::test]
async fn a_group_whose_only_server_is_marked_down_still_tries_it() {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = public_route(&upstream(
        "api",
        &[addr],
        "health_check_interval = \"60s\"\nconnect_timeout = \"500ms\"",
    ));
    let gw = Gateway::start(&config).await;
    let healthy = || gw.metric("portero_upstream_healthy_servers", &[("upstream", "api")]);
    let tries = [("upstream", "api")];
    assert_eq!(
        poll(Duration::from_secs(5), healthy, |n| *n == 0.0).await,
        0.0
    );

    let r = reqwest::get(gw.url("/x")).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_description"], "no healthy upstream server");
    assert_eq!(
        gw.wait_metric("portero_upstream_down_tries_total", &tries, 1.0)
            .await,
        1.0,
        "the try is counted"
    );

    let _up = Upstream::start_at("api", Duration::ZERO, addr).await;
    let served = statuses(&gw, "/back", 3).await;
    assert_eq!(served, vec![(200, "api".to_string()); 3], "{}", gw.log());
    assert_eq!(
        gw.wait_metric("portero_upstream_down_tries_total", &tries, 4.0)
            .await,
        4.0
    );
    assert_eq!(
        healthy().await,
        0.0,
        "the check, not a request, marks it up"
    );
    let log = gw
        .log_with("every server of the upstream is marked down")
        .await;
    assert_eq!(
        log.matches("every server of the upstream is marked down")
            .count(),
        1,
        "one line while it lasts, not one per request:\n{log}"
    );
}

/// With every server of a group marked down, a request tries them in turn:
/// the one that is back serves every request at once.
#[tokio::test]
async fn a_group_whose_servers_are_all_marked_down_tries_each_in_turn() {
    let a: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let b: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = public_route(&upstream(
        "api",
        &[a, b],
        "health_check_interval = \"60s\"\nconnect_timeout = \"500ms\"",
    ));
    let gw = Gateway::start(&config).await;
    let healthy = || gw.metric("portero_upstream_healthy_servers", &[("upstream", "api")]);
    assert_eq!(
        poll(Duration::from_secs(5), healthy, |n| *n == 0.0).await,
        0.0
    );
    assert_eq!(
        statuses(&gw, "/none", 2).await,
        vec![(503, "service_unavailable".to_string()); 2]
    );

    let _b = Upstream::start_at("b", Duration::ZERO, b).await;
    let served = statuses(&gw, "/back", 4).await;
    assert_eq!(served, vec![(200, "b".to_string()); 4], "{}", gw.log());
}

/// A server ejected for failing requests is the group's only one: it is
/// still asked, so once it answers well again the next request is served,
/// and failures while it is out do not eject it again (nor log it again).
#[tokio::test]
async fn a_group_whose_only_server_is_ejected_still_asks_it() {
    let up = Upstream::start("api").await;
    let passive =
        "health_check = \"none\"\neject_after = 1\neject_for = \"60s\"\neject_on_5xx = true";
    let gw = Gateway::start(&public_route(&upstream("api", &[up.addr], passive))).await;
    let ejections = [("upstream", "api")];

    up.set_status(500);
    assert_eq!(statuses(&gw, "/fail", 3).await[0].0, 500);
    assert_eq!(
        gw.wait_metric("portero_upstream_ejections_total", &ejections, 1.0)
            .await,
        1.0,
        "ejected once, not again while it is out"
    );
    up.set_status(200);
    let served = statuses(&gw, "/back", 2).await;
    assert_eq!(served, vec![(200, "api".to_string()); 2], "{}", gw.log());
    assert_eq!(
        gw.metric("portero_upstream_down_tries_total", &ejections)
            .await,
        4.0,
        "every request after the ejection was a try of a server marked down"
    );
}

/// The same over HTTP/2: an h2c group's only server, marked down, is
/// still tried, and serves once it listens.
#[tokio::test]
async fn an_http2_group_whose_only_server_is_marked_down_still_tries_it() {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let table = upstream(
        "api",
        &[addr],
        "protocol = \"h2c\"\nhealth_check_interval = \"60s\"",
    );
    let gw = Gateway::start(&public_route(&table)).await;
    let healthy = || gw.metric("portero_upstream_healthy_servers", &[("upstream", "api")]);
    assert_eq!(
        poll(Duration::from_secs(5), healthy, |n| *n == 0.0).await,
        0.0
    );
    let r = reqwest::get(gw.url("/x")).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    let up = H2Upstream::start_at(addr).await;
    let r = reqwest::get(gw.url("/x")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", gw.log());
    assert_eq!(up.answered(), 1);
    let tries = [("upstream", "api")];
    assert_eq!(
        gw.wait_metric("portero_upstream_down_tries_total", &tries, 2.0)
            .await,
        2.0
    );
}
