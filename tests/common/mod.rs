//! Shared integration-test harness: the real `portero` binary on port 0,
//! real upstream servers, real HTTP clients. No mocks. One file per concern:
//! `gateway` (the process), `upstream` (an echoing upstream), `tokens`
//! (signed independently of portero's code), `configs` (config text),
//! `endpoints` (requests to the token endpoints), `hashes` (password hashes
//! from the libraries that write them),
//! `redis` (a Redis to test against), `redis_cluster` (a Redis Cluster),
//! `shared_store` (what instances sharing a store agree on),
//! `websocket` (a WebSocket server and client),
//! `collector` (an OTLP trace receiver), `outside` (the outside programs
//! some tests need, and how a test skips without one), `chromium` (a
//! headless browser through WebDriver), `rp_idp` (a real OpenID provider
//! that signs a browser in, for the gateway's own sign-in).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod app;
pub mod chromium;
pub mod collector;
mod configs;
pub mod dns;
pub mod documents;
mod endpoints;
mod gateway;
mod hashes;
pub mod idp;
pub mod mcp;
mod outside;
pub mod redis;
pub mod redis_cluster;
pub mod rp_idp;
pub mod shared_store;
pub mod standard;
pub mod tls;
mod tokens;
mod upstream;
mod websocket;

// Each test file uses some of these.
#[allow(unused_imports)]
pub use {
    configs::*, endpoints::*, gateway::*, hashes::*, outside::*, tokens::*, upstream::*,
    websocket::*,
};

pub const HS_SECRET: &str = "integration-test-hs256-secret-0123456789";
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The gateway under test: this build's, or the one `PORTERO_TEST_BINARY`
/// names (`.ci/run` runs the request path's tests again on the release
/// build, whose optimisation the debug build does not share).
pub fn portero_binary() -> PathBuf {
    std::env::var_os("PORTERO_TEST_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_portero")))
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Reads `read` every 20 ms until `done` holds or `limit` has passed;
/// returns the last reading either way, for the caller's assertion.
pub async fn poll<T, F: std::future::Future<Output = T>>(
    limit: Duration,
    mut read: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let value = read().await;
        if done(&value) || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends raw bytes (no client library tidies them), reads until the
/// gateway closes: (status, whole response).
pub async fn raw_http(port: u16, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request).await.unwrap();
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

/// An HTTP/2 client (cleartext, prior knowledge) on a loopback port, its
/// connection driven in the background.
pub async fn h2_client(port: u16) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A loopback port that was free a moment ago: for a server that cannot bind
/// port 0 and say which it got (`redis-server`, `python3 -m http.server`),
/// or an address where nothing listens. Gateways bind port 0.
///
/// It is taken from below the kernel's ephemeral range: a port from inside it
/// can be handed to a client socket's `connect` or to another `bind(0)`
/// before the gateway binds it, which failed CI with "Address already in use".
pub fn free_port() -> u16 {
    const LOWEST: usize = 20_000;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or(32_768);
    if ephemeral_low <= LOWEST + 2_000 {
        return bind_any_port();
    }
    let span = ephemeral_low - LOWEST;
    // Test binaries in parallel (nextest) start from different places.
    let start = std::process::id() as usize * 7_919;
    for _ in 0..span {
        let port = LOWEST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        // A TLS test server listens on its port + 1000 too (`redis::tls_port`):
        // only ports of even thousands are handed out, so that that one
        // is never another server's, and it lies below the ephemeral range.
        if (port / 1000) % 2 == 1 || port + 1000 >= ephemeral_low {
            continue;
        }
        let free = |port: usize| std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok();
        if free(port) && free(port + 1000) {
            return port as u16;
        }
    }
    panic!("no free loopback port in {LOWEST}..{ephemeral_low}");
}

fn bind_any_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
