//! Shared integration-test harness: the real `portero` binary on free
//! loopback ports, real upstream servers, real HTTP clients. No mocks.
#![allow(dead_code)]

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::task::AbortHandle;

pub mod redis;

pub const HS_SECRET: &str = "integration-test-hs256-secret-0123456789";
pub const ADMIN_TOKEN: &str = "test-admin-token";

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
    if ephemeral_low <= LOWEST + 1_000 {
        return bind_any_port();
    }
    let span = ephemeral_low - LOWEST;
    // Test binaries in parallel (nextest) start from different places.
    let start = std::process::id() as usize * 7_919;
    for _ in 0..span {
        let port = (LOWEST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
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

// ---------------------------------------------------------------------------
// Upstream servers
// ---------------------------------------------------------------------------

/// A real HTTP upstream that answers with the request it received, plus its name.
pub struct Upstream {
    pub addr: SocketAddr,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    open: Arc<AtomicUsize>,
}

impl Upstream {
    pub async fn start(name: &'static str) -> Upstream {
        Self::start_with_delay(name, Duration::ZERO).await
    }

    pub async fn start_with_delay(name: &'static str, delay: Duration) -> Upstream {
        Self::start_at(name, delay, "127.0.0.1:0".parse().unwrap()).await
    }

    /// On a given address: a killed upstream started again where it was.
    pub async fn start_at(name: &'static str, delay: Duration, addr: SocketAddr) -> Upstream {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let open: Arc<AtomicUsize> = Arc::default();
        let conns = tasks.clone();
        let counter = open.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                let conn = tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<Incoming>| async move {
                            tokio::time::sleep(delay).await;
                            let (parts, body) = req.into_parts();
                            // Read the whole body, as a real server would.
                            let received = http_body_util::BodyExt::collect(body)
                                .await
                                .map(|b| b.to_bytes().len());
                            let mut body = portero::echo::describe(&parts);
                            body["upstream"] = json!(name);
                            body["body_bytes"] = json!(received.ok());
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body.to_string())))
                                    .unwrap(),
                            )
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    counter.fetch_sub(1, Ordering::SeqCst);
                });
                conns.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Upstream { addr, tasks, open }
    }

    /// Connections the gateway holds open to this upstream now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every open connection, like a killed process.
    pub fn kill(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// The gateway process
// ---------------------------------------------------------------------------

pub struct Gateway {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    /// Every public listener's port, and whether it speaks TLS.
    public_ports: Vec<(u16, bool)>,
    pub dir: tempfile::TempDir,
    log: PathBuf,
    /// The `[server]`, `[[listen]]` and `[admin]` tables the harness wrote.
    preamble: String,
    /// `ulimit -n` for the process, if the test sets one.
    fd_limit: Option<u32>,
}

impl Gateway {
    /// Starts `portero` on `body`, a config without `[[listen]]` or `[admin]`
    /// tables (the harness adds them, on port 0), and waits until ready.
    pub async fn start(body: &str) -> Gateway {
        Self::start_with_admin_token(body, Some(ADMIN_TOKEN)).await
    }

    /// As [`Gateway::start`], with `PORTERO_ADMIN_TOKEN` set to `admin_token`, or unset.
    pub async fn start_with_admin_token(body: &str, admin_token: Option<&str>) -> Gateway {
        Self::launch("", body, admin_token, None).await
    }

    /// As [`Gateway::start`], with `server` lines added to the `[server]` table.
    pub async fn start_with_server_settings(server: &str, body: &str) -> Gateway {
        Self::launch(server, body, Some(ADMIN_TOKEN), None).await
    }

    /// As [`Gateway::start_with_server_settings`], the process limited to
    /// `fd_limit` open files (`ulimit -n`).
    pub async fn start_with_fd_limit(server: &str, body: &str, fd_limit: u32) -> Gateway {
        Self::launch(server, body, Some(ADMIN_TOKEN), Some(fd_limit)).await
    }

    async fn launch(
        server: &str,
        body: &str,
        admin_token: Option<&str>,
        fd_limit: Option<u32>,
    ) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        // Quick shutdowns for tests, unless `server` sets its own.
        let defaults: String = [
            ("threads", "1"),
            ("grace_period", "\"0s\""),
            ("shutdown_timeout", "\"1s\""),
        ]
        .iter()
        .filter(|(key, _)| !server.lines().any(|l| l.trim_start().starts_with(key)))
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
        // Port 0: the gateway binds what the kernel gives and logs it.
        let data = dir.path().join("data");
        let preamble = |port: u16, admin_port: u16| {
            format!(
                "[server]\n{defaults}data_dir = \"{data}\"\n{server}\n\n\
                 [[listen]]\naddr = \"127.0.0.1:{port}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n",
                data = data.display(),
            )
        };
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, format!("{}{body}", preamble(0, 0))).unwrap();
        let log = dir.path().join("portero.log");
        let child = spawn(&path, &log, admin_token, fd_limit);
        let mut gw = Gateway {
            child,
            port: 0,
            admin_port: 0,
            public_ports: Vec::new(),
            dir,
            log,
            preamble: String::new(),
            fd_limit,
        };
        gw.wait_bound(1 + body.matches("[[listen]]").count()).await;
        // A restart binds the same ports again.
        gw.preamble = preamble(gw.port, gw.admin_port);
        gw.rewrite_config(body);
        gw.wait_ready().await;
        gw
    }

    /// Reads the addresses the gateway logged: the admin listener's and the
    /// `listeners` public ones', in config order.
    async fn wait_bound(&mut self, listeners: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("portero exited with {status}:\n{}", self.log());
            }
            let log = self.log();
            let port_after = |line: &str| -> u16 {
                let addr = line
                    .split("addr=")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap();
                addr.rsplit(':').next().unwrap().parse().unwrap()
            };
            let public: Vec<(u16, bool)> = log
                .lines()
                .filter(|l| l.contains("public listener addr="))
                .map(|l| (port_after(l), l.contains("tls=true")))
                .collect();
            let admin = log.lines().find(|l| l.contains("admin listening addr="));
            if let (Some(admin), true) = (admin, public.len() >= listeners) {
                self.admin_port = port_after(admin);
                self.port = public[0].0;
                self.public_ports = public;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("portero did not log its listeners:\n{}", self.log());
    }

    /// The port of the first TLS listener the config's body added.
    pub fn tls_port(&self) -> u16 {
        let tls = self.public_ports.iter().find(|(_, tls)| *tls);
        tls.expect("a TLS listener").0
    }

    /// `kill -9`, then the same config, ports and data directory again.
    pub async fn kill9_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.respawn().await;
    }

    /// SIGTERM, a wait for the drain to end, then the same config again.
    pub async fn terminate_and_restart(&mut self) {
        self.signal("TERM");
        if self.wait_exit(Duration::from_secs(15)).await.is_none() {
            panic!("portero did not stop on SIGTERM:\n{}", self.log());
        }
        self.respawn().await;
    }

    /// The process id, for reading its memory use.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn respawn(&mut self) {
        self.child = spawn(
            &self.dir.path().join("gateway.toml"),
            &self.log,
            Some(ADMIN_TOKEN),
            self.fd_limit,
        );
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("http://127.0.0.1:{}/readyz", self.admin_port);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("portero exited with {status}:\n{}", self.log());
            }
            if let Ok(r) = reqwest::get(&url).await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("portero did not become ready:\n{}", self.log());
    }

    /// Sends the gateway process a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Replaces the config body on disk (same listeners), for reload tests.
    pub fn rewrite_config(&self, body: &str) {
        let path = self.dir.path().join("gateway.toml");
        std::fs::write(path, format!("{}{body}", self.preamble)).unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one metric series, matched by name and every given label.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .find(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits (up to 2 s) for a series to reach `want`: a series may be
    /// recorded just after the client has its response.
    pub async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) -> f64 {
        poll(
            Duration::from_secs(2),
            || self.metric(name, labels),
            |v| *v == want,
        )
        .await
    }

    /// `GET /readyz`: its status code and the `status` it reports.
    pub async fn readiness(&self) -> (u16, String) {
        let r = reqwest::get(self.admin_url("/readyz")).await.unwrap();
        let code = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        (code, v["status"].as_str().unwrap_or_default().to_string())
    }

    /// Waits (up to 5 s) until `/readyz` reports `status`; returns what it last said.
    pub async fn wait_readiness(&self, status: &str) -> (u16, String) {
        poll(
            Duration::from_secs(5),
            || self.readiness(),
            |r| r.1 == status,
        )
        .await
    }

    /// The log so far, once it holds `needle` (lines are written by a
    /// background thread), or after 2 s.
    pub async fn log_with(&self, needle: &str) -> String {
        poll(
            Duration::from_secs(2),
            || async { self.log() },
            |log| log.contains(needle),
        )
        .await
    }

    /// `GET /admin/revocations`: the revocations the gateway holds.
    pub async fn revocations(&self) -> Vec<Value> {
        let list: Value = reqwest::Client::new()
            .get(self.admin_url("/admin/revocations"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["revocations"].as_array().unwrap().clone()
    }

    pub async fn revoke(&self, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.admin_url("/admin/revocations"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

fn spawn(config: &Path, log: &Path, admin_token: Option<&str>, fd_limit: Option<u32>) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let binary = env!("CARGO_BIN_EXE_portero");
    let mut cmd = match fd_limit {
        None => Command::new(binary),
        Some(n) => {
            // The shell sets the limit, then becomes portero.
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(binary);
            sh
        }
    };
    match admin_token {
        Some(t) => cmd.env("PORTERO_ADMIN_TOKEN", t),
        None => cmd.env_remove("PORTERO_ADMIN_TOKEN"),
    };
    cmd.arg("--config")
        .arg(config)
        .env("TEST_HS_SECRET", HS_SECRET)
        .env("TEST_REDIS_PASSWORD", redis::PASSWORD)
        .env("PORTERO_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the gateway on config text (with listeners on port 0) and
/// expects it to exit within 10 s: returns (success, stderr).
pub fn run_to_exit(body: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\ndata_dir = \"{}\"\n\n[[listen]]\naddr = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n{body}",
        dir.path().join("data").display(),
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("portero.log");
    let mut child = spawn(&path, &log, Some(ADMIN_TOKEN), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("portero kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), std::fs::read_to_string(log).unwrap())
}

/// Runs `portero check` on config text and returns (success, stderr).
pub fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portero"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------
// Tokens, signed here with the fixture keys, independently of portero's code
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub enum Signer {
    Hs,
    Rs,
    Es,
    Ed,
}

impl Signer {
    pub fn kid(self) -> &'static str {
        match self {
            Signer::Hs => "hs-1",
            Signer::Rs => "rs-1",
            Signer::Es => "es-1",
            Signer::Ed => "ed-1",
        }
    }

    pub fn sign(self, claims: &Value) -> String {
        sign_with(self, Some(self.kid()), claims)
    }
}

pub fn sign_with(signer: Signer, kid: Option<&str>, claims: &Value) -> String {
    let pem = |f: &str| std::fs::read(fixture(f)).unwrap();
    let (alg, key) = match signer {
        Signer::Hs => (
            Algorithm::HS256,
            EncodingKey::from_secret(HS_SECRET.as_bytes()),
        ),
        Signer::Rs => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap(),
        ),
        Signer::Es => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&pem("ec_private.pem")).unwrap(),
        ),
        Signer::Ed => (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&pem("ed_private.pem")).unwrap(),
        ),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Claims of a good token from issuer `test-issuer`.
pub fn claims(sub: &str) -> Value {
    json!({
        "iss": "test-issuer",
        "sub": sub,
        "aud": "orders",
        "iat": now() - 5,
        "exp": now() + 300,
        "jti": format!("jti-{sub}-{}", now()),
        "role": "ADMIN",
        "tenant": ["acme", "globex"],
    })
}

/// Issuer tables for the four key types, on the fixture keys.
pub fn issuers() -> String {
    let f = |n: &str| fixture(n).display().to_string();
    format!(
        r#"
[issuers.test]
iss = "test-issuer"

[[issuers.test.keys]]
kid = "hs-1"
alg = "HS256"
secret_env = "TEST_HS_SECRET"

[[issuers.test.keys]]
kid = "rs-1"
alg = "RS256"
public_key_file = "{rs}"

[[issuers.test.keys]]
kid = "es-1"
alg = "ES256"
public_key_file = "{es}"

[[issuers.test.keys]]
kid = "ed-1"
alg = "EdDSA"
public_key_file = "{ed}"

[issuers.other]
iss = "other-issuer"

[[issuers.other.keys]]
kid = "other-1"
alg = "HS256"
secret_env = "TEST_HS_SECRET"
"#,
        rs = f("rsa_public.pem"),
        es = f("ec_public.pem"),
        ed = f("ed_public.pem"),
    )
}

/// The demo config's issuers and routes (every seed's token endpoint),
/// in front of its built-in echo upstream.
pub fn demo_body() -> String {
    let demo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml")).unwrap();
    let from = demo
        .find("# One issuer per token-endpoint dialect")
        .unwrap();
    format!("[upstreams.echo]\nbuiltin = \"echo\"\n\n{}", &demo[from..])
}

/// An upstream table pointing at the given servers.
pub fn upstream(name: &str, servers: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[upstreams.{name}]\nservers = [{}]\n{extra}\n",
        list.join(", ")
    )
}
