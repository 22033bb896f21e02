//! What one client, or one faulty upstream, may take from the gateway:
//! silent and half-open connections under a low file-descriptor limit, a
//! trickled request body, a cap on upstream connections, and an upstream
//! that sends bytes after its response ended.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{upstream, Gateway, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn public_route(upstream_name: &str) -> String {
    format!("[[routes]]\npath = \"/\"\nupstream = \"{upstream_name}\"\npublic = true\n")
}

/// The HTTP/2 connection preface, then a SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// A HEADERS frame on stream 1 without END_HEADERS (a header block that
/// never ends): flags END_STREAM only, one HPACK byte (`:method: GET`).
const OPEN_HEADER_BLOCK: &[u8] = b"\x00\x00\x01\x01\x01\x00\x00\x00\x01\x82";

/// Opens a connection that sends `prefix` and then nothing.
async fn half_open(port: u16, prefix: &[u8]) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    if !prefix.is_empty() {
        s.write_all(prefix).await.ok()?;
    }
    Some(s)
}

/// The most descriptors a process had open at once, sampled every
/// millisecond on a thread of its own.
struct DescriptorWatch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<usize>,
}

impl DescriptorWatch {
    fn start(pid: u32) -> DescriptorWatch {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let sampler = std::thread::spawn(move || {
            let dir = format!("/proc/{pid}/fd");
            let mut most = 0;
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    most = most.max(entries.count());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            most
        });
        DescriptorWatch { stop, sampler }
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.join().expect("sampler thread")
    }
}

/// Whether the gateway has closed `s` (reads end, or fail).
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A refusal's 503, a GOAWAY, or an HTTP/2 SETTINGS: read on.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn silent_and_half_open_connections_cannot_starve_a_low_fd_limit() {
    let up = Upstream::start("app").await;
    let body = format!(
        "{}\n{}",
        upstream("app", &[up.addr], ""),
        public_route("app")
    );
    // 256 descriptors: portero's own default cap is derived from that. The
    // attackers share the client's address here, so its share is lifted:
    // eviction is what keeps the client served.
    let gw = Gateway::start_with_fd_limit(
        "header_timeout = \"1s\"\nidle_timeout = \"2s\"\nmax_connections_per_ip = 10000",
        &body,
        256,
    )
    .await;
    let descriptors = DescriptorWatch::start(gw.pid());

    let mut attackers = Vec::new();
    for i in 0..400 {
        let prefix: Vec<u8> = match i % 5 {
            0 | 1 => Vec::new(),
            2 => H2_PREFACE[..10].to_vec(),
            3 => b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec(),
            _ => [H2_PREFACE, OPEN_HEADER_BLOCK].concat(),
        };
        if let Some(s) = half_open(gw.port, &prefix).await {
            attackers.push(s);
        }
    }
    assert!(
        attackers.len() > 300,
        "only {} connections opened",
        attackers.len()
    );

    // Real clients keep being served meanwhile, and so does the admin listener.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let r = client.get(gw.url("/hello")).send().await.unwrap();
        assert_eq!(r.status(), 200, "a real client was turned away");
        // A new wave of silent connections between requests.
        for _ in 0..20 {
            if let Some(s) = half_open(gw.port, b"").await {
                attackers.push(s);
            }
        }
        served += 1;
    }
    assert!(served >= 10, "{served} requests served");
    let ready = client.get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // Every one of them is cut: at once for room, or at the header timeout.
    let mut open = 0;
    for s in &mut attackers {
        if !closed_within(s, Duration::from_secs(4)).await {
            open += 1;
        }
    }
    assert_eq!(open, 0, "{open} of {} still open", attackers.len());
    let log = gw.log();
    assert!(!log.contains("Too many open files"), "{log}");
    // The 64 kept back for the admin listener and the store stay free.
    let most = descriptors.stop();
    assert!(most <= 256 - 64, "{most} descriptors open at once");
    let timed_out = gw
        .metric(
            "portero_connections_closed_total",
            &[("listener", "public"), ("reason", "header_timeout")],
        )
        .await;
    let evicted = gw
        .metric(
            "portero_connections_closed_total",
            &[("listener", "public"), ("reason", "evicted")],
        )
        .await;
    assert!(timed_out > 0.0 && evicted > 0.0, "{timed_out} {evicted}");
}

/// A head sent a byte every 50 ms: the connection is closed (at the header
/// timeout of 500 ms) well before the 4 s the whole head would take.
async fn trickled_head_is_cut(stream: &mut TcpStream) {
    let trickle = Instant::now();
    let mut cut = false;
    for b in b"GET /a HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if stream.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cut || closed_within(stream, Duration::from_secs(2)).await);
    assert!(trickle.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn idle_connections_close_and_the_admin_listener_times_heads_too() {
    let up = Upstream::start("app").await;
    let body = format!(
        "{}\n{}",
        upstream("app", &[up.addr], ""),
        public_route("app")
    );
    let gw = Gateway::start_with_server_settings(
        "header_timeout = \"500ms\"\nidle_timeout = \"1s\"",
        &body,
    )
    .await;
    // A keep-alive connection that served one request, then went quiet.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let quiet = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    assert!(
        quiet.elapsed() >= Duration::from_millis(900),
        "{:?}",
        quiet.elapsed()
    );

    // A head sent a byte at a time is cut at the header timeout, not served.
    let mut slow = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    trickled_head_is_cut(&mut slow).await;

    // So is the second head of a kept-alive connection (hyper's own head
    // timer is off: the watchdog alone times heads).
    let mut kept = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    kept.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = kept.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    trickled_head_is_cut(&mut kept).await;

    let mut admin = TcpStream::connect(("127.0.0.1", gw.admin_port))
        .await
        .unwrap();
    assert!(closed_within(&mut admin, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn a_trickled_request_body_is_cut_at_the_body_timeout() {
    let up = Upstream::start("app").await;
    let body = format!(
        "{}\n{}",
        upstream("app", &[up.addr], "write_timeout = \"30s\""),
        public_route("app")
    );
    let gw = Gateway::start_with_server_settings("body_timeout = \"1s\"", &body).await;
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    // One byte every 200 ms: never a pause long enough for the write timeout.
    while started.elapsed() < Duration::from_secs(5) {
        if s.write_all(b"1\r\na\r\n").await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                response.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn upstream_connections_are_capped_per_server_with_a_queue() {
    let up = Upstream::start_with_delay("slow", Duration::from_millis(400)).await;
    let peak = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let peak = peak.clone();
        let open = Arc::new(up);
        let o = open.clone();
        let task = tokio::spawn(async move {
            loop {
                peak.fetch_max(o.open_connections(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        (open, task)
    };
    let addr = watcher.0.addr;
    let body = format!(
        "{}\n{}",
        upstream(
            "slow",
            &[addr],
            "max_connections = 2\nqueue_timeout = \"5s\"\nmax_idle_connections = 2"
        ),
        public_route("slow")
    );
    let gw = Gateway::start(&body).await;
    let client = reqwest::Client::new();
    let requests = (0..8).map(|i| client.get(gw.url(&format!("/r{i}"))).send());
    let started = Instant::now();
    for r in futures_util::future::join_all(requests).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    // Eight requests, two at a time, 400 ms each: four rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "{} upstream connections",
        peak.load(Ordering::SeqCst)
    );

    // A queue that does not move within its timeout: 503.
    let body = format!(
        "{}\n{}",
        upstream(
            "slow",
            &[addr],
            "max_connections = 1\nqueue_timeout = \"100ms\""
        ),
        public_route("slow")
    );
    let gw = Gateway::start(&body).await;
    let requests = (0..3).map(|i| client.get(gw.url(&format!("/q{i}"))).send());
    let mut statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 503, 503]);
    watcher.1.abort();
}

/// A request that queued for an upstream's only connection has its whole
/// `read_timeout` once it is sent, not what is left of it from before the
/// wait: a pooled connection's timers start when the request goes out.
#[tokio::test]
async fn a_queued_request_gets_its_whole_read_timeout() {
    let up = Upstream::start_with_delay("slow", Duration::from_millis(1000)).await;
    let body = format!(
        "{}
{}",
        upstream(
            "slow",
            &[up.addr],
            "max_connections = 1\nqueue_timeout = \"5s\"\nread_timeout = \"1500ms\"\nmax_idle_connections = 1"
        ),
        public_route("slow")
    );
    let gw = Gateway::start(&body).await;
    let client = reqwest::Client::new();
    // The first dials; the second waits a second for its connection,
    // then is answered a second after it went out.
    let first = client.get(gw.url("/first")).send();
    let second = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.get(gw.url("/second")).send().await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.unwrap().status(), 200);
    assert_eq!(
        second.unwrap().status(),
        200,
        "504: the wait counted against it"
    );
}

/// An upstream that answers some requests wrongly: after a `204` it sends a
/// whole extra response, a little later, on the same connection; `HEAD`
/// likewise sends the body it announced. Every other path is answered
/// with itself as the body.
async fn faulty_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut pending = Vec::new();
                loop {
                    let mut buf = [0u8; 4096];
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                        pending.drain(..end + 4);
                        let mut words = head.split(' ');
                        let (method, path) = (words.next().unwrap(), words.next().unwrap());
                        let smuggled = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled";
                        match (method, path) {
                            (_, "/no-content") => {
                                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
                                tokio::time::sleep(Duration::from_millis(30)).await;
                                let _ = s.write_all(smuggled).await;
                            }
                            (_, "/no-content-announced") => {
                                let _ = s
                                    .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 8\r\n\r\nsmuggled")
                                    .await;
                            }
                            ("HEAD", _) => {
                                let _ = s
                                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n")
                                    .await;
                                tokio::time::sleep(Duration::from_millis(30)).await;
                                let _ = s.write_all(b"smuggled").await;
                            }
                            _ => {
                                let reply = format!(
                                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}",
                                    path.len()
                                );
                                let _ = s.write_all(reply.as_bytes()).await;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn bytes_after_a_response_never_reach_the_next_client() {
    let addr = faulty_upstream().await;
    let body = format!(
        "{}\n{}",
        upstream("faulty", &[addr], "max_idle_connections = 1"),
        public_route("faulty")
    );
    let gw = Gateway::start(&body).await;
    for (method, bad) in [
        ("GET", "/no-content"),
        ("GET", "/no-content-announced"),
        ("HEAD", "/head"),
    ] {
        for round in 0..3 {
            // Each request on a fresh client connection: only portero's
            // upstream pool is shared between them.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let r = client.request(method, gw.url(bad)).send().await.unwrap();
            assert!(r.status().is_success(), "{bad}: {}", r.status());
            tokio::time::sleep(Duration::from_millis(100)).await;
            let next = format!("/next-{round}");
            let r = client.get(gw.url(&next)).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.text().await.unwrap(), next, "after {bad}");
        }
    }
}
