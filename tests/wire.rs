//! What crosses the wire between portero and an upstream: request bodies in
//! framing portero chose, response bodies de-framed as RFC 9112 says, pooled
//! connections reused only when that is safe, and upstreams that misbehave.
//! The upstreams here are scripted over raw TCP so each can send bytes a
//! well-behaved server would not.

use crate::common;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// An upstream that runs `script` on every connection it accepts, and
/// counts the connections.
struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    async fn start<F, Fut>(script: F) -> Scripted
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(script(stream));
            }
        });
        Scripted {
            addr,
            accepted,
            task,
        }
    }

    /// An upstream that answers every request on a connection with `reply`.
    async fn replying(reply: &'static [u8]) -> Scripted {
        Scripted::start(move |mut s| async move {
            let mut buf = Vec::new();
            while read_head(&mut s, &mut buf).await.is_some() {
                if s.write_all(reply).await.is_err() {
                    return;
                }
            }
        })
        .await
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head (and nothing after it); `None` once the peer closes.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            return Some(String::from_utf8(head).unwrap());
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn gateway_for(scripted: &Scripted) -> Gateway {
    gateway_with(scripted, "").await
}

async fn gateway_with(scripted: &Scripted, server: &str) -> Gateway {
    let table = upstream(
        "api",
        &[scripted.addr],
        "health_check = \"none\"\nread_timeout = \"2s\"",
    );
    let config = format!("{table}\n[[routes]]\npath = \"/\"\nupstream = \"api\"\npublic = true\n");
    Gateway::start_with_server_settings(server, &config).await
}

#[tokio::test]
async fn chunked_responses_are_relayed_and_the_connection_reused() {
    // A chunk extension and a trailer, which the client does not get.
    let up = Scripted::replying(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6;note=x\r\n world\r\n0\r\nx-trailer: t\r\n\r\n",
    )
    .await;
    let gw = gateway_for(&up).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client.get(gw.url("/x")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), "hello world");
    }
    assert_eq!(
        up.accepted(),
        1,
        "a cleanly ended chunked response leaves a reusable connection"
    );
}

/// portero answers in its own version (RFC 9110 §6.2): an HTTP/1.1
/// client hears HTTP/1.1 from an upstream that spoke HTTP/1.0.
#[tokio::test]
async fn an_http_1_0_upstream_is_answered_in_http_1_1() {
    let up = Scripted::replying(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let gw = gateway_for(&up).await;
    let (status, text) = raw_http(
        gw.port,
        b"GET /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("ok"), "{text}");
}

#[tokio::test]
async fn hop_by_hop_headers_of_a_response_stay_with_the_upstream() {
    let up = Scripted::replying(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Upstream-Hop\r\n\
          X-Upstream-Hop: secret\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\n\
          X-Kept: 1\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    let gw = gateway_for(&up).await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let r = client.get(gw.url("/x")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        for hop in ["x-upstream-hop", "keep-alive", "upgrade"] {
            assert!(
                !r.headers().contains_key(hop),
                "{hop} relayed: {:?}",
                r.headers()
            );
        }
        assert_eq!(r.headers()["x-kept"], "1");
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    assert_eq!(
        up.accepted(),
        1,
        "a keep-alive response's connection is reused"
    );
}

#[tokio::test]
async fn a_response_without_length_runs_to_the_close() {
    let up = Scripted::start(|mut s| async move {
        let mut buf = Vec::new();
        if read_head(&mut s, &mut buf).await.is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil ").await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = s.write_all(b"the close").await;
        }
    })
    .await;
    let gw = gateway_for(&up).await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let r = client.get(gw.url("/x")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "until the close");
    }
    assert_eq!(
        up.accepted(),
        2,
        "a close-delimited response's connection is not reused"
    );
}

#[tokio::test]
async fn a_length_beside_chunked_is_not_trusted() {
    // RFC 9112 §6.3: chunked frames the body, and the connection is closed
    // after it, so bytes hidden behind a wrong length never become a response.
    let up = Scripted::replying(
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n\
          6\r\nchunks\r\n0\r\n\r\n",
    )
    .await;
    let gw = gateway_for(&up).await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let r = client.get(gw.url("/x")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "chunks");
    }
    assert_eq!(
        up.accepted(),
        2,
        "the connection was reused after a conflicting head"
    );
}

#[tokio::test]
async fn conflicting_lengths_and_garbage_from_the_upstream_are_502() {
    for reply in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    ] {
        let up = Scripted::start(move |mut s| async move {
            let mut buf = Vec::new();
            if read_head(&mut s, &mut buf).await.is_some() {
                let _ = s.write_all(reply).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
        .await;
        let gw = gateway_for(&up).await;
        let r = reqwest::get(gw.url("/x")).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY, "{reply:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "bad_gateway");
    }
}

#[tokio::test]
async fn request_bodies_reach_the_upstream_in_portero_framing() {
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let up = Scripted::start(move |mut s| {
        let tx = tx.clone();
        async move {
            let mut buf = Vec::new();
            while let Some(head) = read_head(&mut s, &mut buf).await {
                let lower = head.to_ascii_lowercase();
                // Read the body as its framing says: a length, or chunks up to the last.
                let done = |b: &[u8]| match lower.split("content-length: ").nth(1) {
                    Some(rest) => b.len() >= rest.split("\r\n").next().unwrap().parse().unwrap(),
                    None => !lower.contains("chunked") || b.ends_with(b"0\r\n\r\n"),
                };
                while !done(&buf) {
                    let mut chunk = [0u8; 65536];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                tx.send((lower, std::mem::take(&mut buf))).unwrap();
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
        }
    })
    .await;
    let gw = gateway_for(&up).await;
    let client = reqwest::Client::new();

    // A length from the client: the same length upstream, no transfer coding.
    let r = client
        .post(gw.url("/a"))
        .body(vec![b'x'; 3000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (head, body) = rx.recv().await.unwrap();
    assert!(head.starts_with("post /a http/1.1\r\n"), "{head}");
    assert!(head.contains("content-length: 3000\r\n"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(body, vec![b'x'; 3000]);

    // Streamed without a length: chunked upstream, chunks intact.
    let chunks = futures_util::stream::iter(["ab", "cde", "f"].map(Ok::<_, std::io::Error>));
    let r = client
        .post(gw.url("/b"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (head, body) = rx.recv().await.unwrap();
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert_eq!(dechunk(&body), b"abcdef");

    // An empty POST says so.
    let r = client.post(gw.url("/c")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (head, body) = rx.recv().await.unwrap();
    assert!(head.contains("content-length: 0\r\n"), "{head}");
    assert!(body.is_empty());
    assert_eq!(up.accepted(), 1, "one connection carried all three");
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line]).unwrap(), 16).unwrap();
        body = &body[line + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        assert_eq!(&body[size..size + 2], b"\r\n");
        body = &body[size + 2..];
    }
}

#[tokio::test]
async fn an_upstream_that_closes_idle_connections_costs_no_request() {
    // Answers one request per connection, keep-alive by the book, then hangs up.
    let up = Scripted::start(|mut s| async move {
        let mut buf = Vec::new();
        if let Some(head) = read_head(&mut s, &mut buf).await {
            if head.contains("content-length: 4") {
                let mut body = [0u8; 4];
                let _ = s.read_exact(&mut body[buf.len()..]).await;
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
        }
    })
    .await;
    let gw = gateway_for(&up).await;
    let client = reqwest::Client::new();
    for i in 0..4 {
        // POST is never asked twice: the closed connection must be noticed
        // before the request goes out on it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = client.post(gw.url("/x")).body("data").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "request {i}");
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    assert_eq!(up.accepted(), 4);
}

#[tokio::test]
async fn an_upstream_that_answers_before_the_body_gets_no_more_of_it() {
    let up = Scripted::start(|mut s| async move {
        let mut buf = Vec::new();
        if read_head(&mut s, &mut buf).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    })
    .await;
    // A body past the buffer size streams: the upstream sees the head first.
    let gw = gateway_with(&up, "request_buffer_size = \"64B\"").await;
    let chunks = futures_util::stream::once(async { Ok::<_, std::io::Error>(vec![b'a'; 100]) })
        .chain(futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(vec![b'b'; 100])
        }));
    let started = std::time::Instant::now();
    let r = reqwest::Client::new()
        .post(gw.url("/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the answer waited for the body: {:?}",
        started.elapsed()
    );
    // The rest of the body is still coming: the client is told to go.
    assert_eq!(r.headers()["connection"], "close");
}

/// A client's chunked body that breaks its own framing (a bare LF for
/// CRLF, a chunk size past u64, a size that is not hex) is the client's
/// fault: `400`, on a protected route with a good token, whether it breaks
/// within the part read before the upstream is asked or in the part
/// streamed after; and the upstream server is not blamed for it.
#[tokio::test]
async fn a_malformed_chunked_request_body_is_400() {
    let up = Upstream::start("api").await;
    let config = format!(
        "{}{}\n[[routes]]\npath = \"/\"\nupstream = \"api\"\n",
        issuers(),
        upstream(
            "api",
            &[up.addr],
            "eject_after = 1\neject_for = \"60s\"\nhealth_check = \"none\""
        )
    );
    let gw = Gateway::start_with_server_settings("request_buffer_size = \"1KiB\"", &config).await;
    let token = Signer::Hs.sign(&claims("alice"));
    let big = format!("800\r\n{}\r\n", "b".repeat(0x800));
    let mut sent = 0;
    for (case, body) in [
        ("bare LF", "5\nhello\n0\n\n".to_string()),
        (
            "bare LF after the size",
            "5\r\nhello\n0\r\n\r\n".to_string(),
        ),
        (
            "overflowing size",
            "1FFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n".to_string(),
        ),
        ("non-hex size", "zz\r\nhello\r\n0\r\n\r\n".to_string()),
        ("streamed, then bare LF", format!("{big}5\nhello\n0\n\n")),
        (
            "streamed, then overflowing",
            format!("{big}FFFFFFFFFFFFFFFFFF\r\nx\r\n"),
        ),
        (
            "streamed, then non-hex",
            format!("{big}-1\r\nx\r\n0\r\n\r\n"),
        ),
    ] {
        let request = format!(
            "POST /orders HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}"
        );
        let (status, text) = raw_http(gw.port, request.as_bytes()).await;
        assert_eq!(status, 400, "{case}: {text}");
        assert!(text.contains("bad_request"), "{case}: {text}");
        sent += 1;
    }
    assert_eq!(sent, 7);
    // Not ejected (a group's only server is asked even when it is, so the
    // count says it): a well-formed request still reaches the server.
    let r = reqwest::Client::new()
        .post(gw.url("/orders"))
        .bearer_auth(&token)
        .body("fine")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
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
