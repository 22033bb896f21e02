//! Floods of slow request bodies from one address, under a low
//! file-descriptor limit, while a legitimate client on another address
//! keeps being served within a second: HTTP/2 streams trickling bodies at
//! a capped upstream, and HTTP/1.1 connections stalled in a token
//! endpoint's body. The attacker is 127.0.0.2, the client 127.0.0.1.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

const ATTACKER: &str = "127.0.0.2";

async fn connect_from(ip: &str, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{ip}:0").parse().unwrap())?;
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.connect(to).await
}

/// Latencies of a legitimate client's requests, sorted.
struct Served(Vec<Duration>);

impl Served {
    fn median(&self) -> Duration {
        self.0[self.0.len() / 2]
    }
    fn max(&self) -> Duration {
        *self.0.last().unwrap()
    }
}

/// For `how_long`: an authenticated GET and a small authenticated POST at
/// a time through the gateway, each 200 within a second.
async fn legitimate_client(gw: &Gateway, token: &str, how_long: Duration) -> Served {
    let client = reqwest::Client::builder()
        .local_address(Some("127.0.0.1".parse().unwrap()))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut took = Vec::new();
    let mut n = 0;
    while started.elapsed() < how_long {
        let request = if n % 2 == 0 {
            client.get(gw.url(&format!("/orders/{n}")))
        } else {
            client.post(gw.url("/orders")).body(r#"{"item":7}"#)
        };
        let sent = Instant::now();
        let r = request.bearer_auth(token).send().await.unwrap();
        let elapsed = sent.elapsed();
        assert_eq!(r.status(), StatusCode::OK, "request {n} during the flood");
        assert!(
            elapsed < Duration::from_secs(1),
            "request {n} took {elapsed:?}"
        );
        took.push(elapsed);
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    took.sort();
    Served(took)
}

fn protected_orders(up: &Upstream, extra: &str) -> String {
    format!(
        "{}\n{}\n[[routes]]\npath = \"/orders\"\nupstream = \"api\"\n",
        upstream("api", &[up.addr], extra),
        issuers()
    )
}

/// Six HTTP/2 connections × 200 streams, each posting a 100 kB body one
/// byte at a time: buffered bodies hold no upstream connection, one address
/// holds only its share of requests, and a body behind the minimum rate
/// is refused once the grace has passed.
#[tokio::test]
async fn trickled_http2_bodies_take_no_upstream_connection() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start_with_fd_limit(
        "min_body_rate_after = \"2s\"",
        &protected_orders(&up, "max_connections = 4\nqueue_timeout = \"500ms\""),
        512,
    )
    .await;
    let token = Signer::Hs.sign(&claims("alice"));
    let auth = format!("Bearer {token}");

    let mut streams = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..6 {
        let tcp = connect_from(ATTACKER, gw.port).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        for _ in 0..200 {
            let Ok(mut ready) = client.clone().ready().await else {
                break;
            };
            let request = http::Request::post(format!("http://gw.test:{}/orders", gw.port))
                .header("authorization", &auth)
                .header("content-length", "100000")
                .body(())
                .unwrap();
            let Ok((answer, mut body)) = ready.send_request(request, false) else {
                break;
            };
            let _ = body.send_data(Bytes::from_static(b"{"), false);
            streams.push(body);
            answers.push(answer);
        }
    }
    assert!(streams.len() >= 1000, "{} streams opened", streams.len());
    let flooding = Instant::now();

    let served = legitimate_client(&gw, &token, Duration::from_secs(4)).await;
    eprintln!(
        "h2 flood ({} streams): {} requests served, median {:?}, max {:?}",
        streams.len(),
        served.0.len(),
        served.median(),
        served.max()
    );
    // Only the legitimate client's requests reached the upstream.
    assert_eq!(up.requests(), served.0.len());

    // Every trickled stream was answered: 503 past the address's share,
    // 408 for the rest once the grace had passed.
    let mut statuses = std::collections::BTreeMap::new();
    for answer in answers {
        let status = match tokio::time::timeout(Duration::from_secs(5), answer).await {
            Ok(Ok(r)) => r.status().as_u16(),
            Ok(Err(_)) => 0,
            Err(_) => 1,
        };
        *statuses.entry(status).or_insert(0) += 1;
    }
    eprintln!(
        "trickled streams answered: {statuses:?} within {:?}",
        flooding.elapsed()
    );
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [408, 503],
        "{statuses:?}"
    );
    let limited = gw
        .metric(
            "portero_limited_requests_total",
            &[("route", "none"), ("limit", "client_in_flight")],
        )
        .await;
    assert_eq!(limited, statuses[&503] as f64);
    drop(streams);
}

/// Hundreds of HTTP/1.1 connections from one address, each stalled in a
/// token endpoint's body: the address gets its share of connections and
/// no more, and a client elsewhere logs in and is served.
#[tokio::test]
async fn stalled_login_bodies_cannot_fill_the_listener() {
    let gw = Gateway::start_with_fd_limit("", &demo_body(), 256).await;
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let Ok(mut s) = connect_from(ATTACKER, gw.port).await else {
            continue;
        };
        let head = "POST /api/Session/GetToken HTTP/1.1\r\nHost: x\r\n\
                    Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
        if s.write_all(head.as_bytes()).await.is_ok() {
            stalled.push(s);
        }
    }
    let client = reqwest::Client::builder()
        .local_address(Some("127.0.0.1".parse().unwrap()))
        .build()
        .unwrap();
    let sent = Instant::now();
    let login = client
        .post(gw.url("/api/Session/GetToken"))
        .header("content-type", "application/json")
        .body(r#"{"username":"admin","password":"demo2024"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    let token = login.json::<serde_json::Value>().await.unwrap()["tokenValido"]
        .as_str()
        .unwrap()
        .to_string();
    let served = legitimate_client(&gw, &token, Duration::from_secs(3)).await;
    eprintln!(
        "{} stalled logins: {} requests served, median {:?}, max {:?}",
        stalled.len(),
        served.0.len(),
        served.median(),
        served.max()
    );
    let refused = gw
        .metric(
            "portero_connections_closed_total",
            &[("listener", "public"), ("reason", "refused_per_ip")],
        )
        .await;
    assert!(
        refused >= 250.0,
        "{refused} refused for the address's share"
    );
}
