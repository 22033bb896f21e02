//! A real Redis for the cluster tests: `PORTERO_TEST_REDIS_URL`, else the
//! machine's 127.0.0.1:6379, else a `redis-server` started here on a free
//! port. With none, the tests are skipped with a message, unless
//! `PORTERO_REQUIRE_REDIS=1` (set by `.ci/run`), where they fail.
//!
//! Outages are real too: [`RedisServer::start`] runs a server this test
//! owns, to stop and start again; [`Relay`] is a TCP relay in front of a
//! server, to cut one gateway off while the others stay connected.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

use super::tls::Leaf;
use super::{free_port, skipped, Outside};

/// No Redis for this test: skipped, or failed under `PORTERO_REQUIRE_REDIS=1`.
pub(super) fn unavailable(why: &str) {
    skipped(Outside::Redis, &format!("no Redis available ({why})"));
}

/// Does a Redis server answer PING at `addr`?
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    // A server that wants a password answers "-NOAUTH ...": up all the same.
    s.write_all(b"PING\r\n").is_ok()
        && s.read_exact(&mut reply).is_ok()
        && (&reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH"))
}

/// The host:port of a `redis://host:port[/db]` url.
fn addr_of(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("redis://")?;
    let hostport = rest.split('/').next()?.rsplit('@').next()?;
    hostport.to_socket_addrs().ok()?.next()
}

/// A Redis to share (the tests keep apart by key prefix).
pub fn shared() -> Option<String> {
    if let Ok(url) = std::env::var("PORTERO_TEST_REDIS_URL") {
        return match addr_of(&url) {
            Some(a) if answers(a) => Some(url),
            _ => {
                unavailable(&format!("PORTERO_TEST_REDIS_URL={url} does not answer"));
                None
            }
        };
    }
    let local: SocketAddr = "127.0.0.1:6379".parse().unwrap();
    if answers(local) {
        return Some(format!("redis://{local}"));
    }
    match RedisServer::start() {
        Some(server) => {
            let url = server.url();
            // Lives as long as the test process: it is this run's Redis.
            std::mem::forget(server);
            Some(url)
        }
        None => None,
    }
}

/// A `redis-server` process of this test's own, without persistence (as on
/// these machines): stopping it loses everything it held.
pub struct RedisServer {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

/// The password of [`RedisServer::start_with_password`]; the harness puts it
/// in the gateways' environment as `TEST_REDIS_PASSWORD`.
pub const PASSWORD: &str = "redis-test-password";

impl RedisServer {
    pub fn start() -> Option<RedisServer> {
        Self::start_with(&[])
    }

    /// A server that wants [`PASSWORD`].
    pub fn start_with_password() -> Option<RedisServer> {
        Self::start_with(&["--requirepass", PASSWORD])
    }

    /// With extra `redis-server` arguments (`--replicaof host port`, say).
    pub fn start_with(args: &[&str]) -> Option<RedisServer> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Self::start_on(free_port(), &args)
    }

    /// On `port`, with extra arguments.
    pub fn start_on(port: u16, args: &[String]) -> Option<RedisServer> {
        let mut server = RedisServer {
            port,
            args: args.to_vec(),
            child: None,
        };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(why) => {
                unavailable(&why);
                None
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &self.port.to_string()])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if answers(self.addr()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("redis-server on port {} did not answer", self.port))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    /// `kill -9`: everything it held is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the server (`SIGSTOP`), or lets it go on (`SIGCONT`): frozen,
    /// its connections stay open but nothing is answered.
    pub fn freeze(&self, frozen: bool) {
        freeze(self.child.as_ref().expect("running"), frozen);
    }

    /// A new, empty server on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn().expect("redis-server restarts");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A master, a replica and three sentinels (`redis-server --sentinel`)
/// watching it as `portero-master`, each on a free port; quick to fail
/// over (down after 2 s: at 1 s, the sentinels' ping period, they now and
/// then find a master they have just switched to down before its first
/// answer, and fail over again, to the old master restarted empty).
pub struct SentinelSetup {
    pub master: RedisServer,
    pub replica: RedisServer,
    sentinels: Vec<(u16, Child)>,
    /// Whether the servers and sentinels serve TLS too ([`tls_port`]).
    tls: bool,
    _dir: tempfile::TempDir,
}

/// The TLS port of a server or sentinel of [`SentinelSetup::start_tls`]
/// (`free_port` keeps it free for it).
pub fn tls_port(port: u16) -> u16 {
    port + 1000
}

/// The certificate files a TLS setup serves.
pub struct Tls {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

impl Tls {
    pub fn new(ca: &Path, leaf: &Leaf) -> Tls {
        Tls {
            ca: ca.display().to_string(),
            cert: leaf.cert_file.display().to_string(),
            key: leaf.key_file.display().to_string(),
        }
    }

    /// [`Tls::config`] as `redis-server` arguments.
    pub fn args(&self, port: u16) -> Vec<String> {
        let mut args = vec![];
        for line in self.config(port).lines() {
            let (name, value) = line.split_once(' ').unwrap();
            args.extend([format!("--{name}"), value.to_string()]);
        }
        args
    }

    /// Config lines (`name value`) for a server or sentinel on `port`.
    fn config(&self, port: u16) -> String {
        format!(
            "tls-port {}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
             tls-auth-clients yes\ntls-replication yes\n",
            tls_port(port),
            self.cert,
            self.key,
            self.ca
        )
    }
}

pub const SENTINEL_MASTER: &str = "portero-master";

impl SentinelSetup {
    pub fn start() -> Option<SentinelSetup> {
        Self::start_with(None)
    }

    /// With every server and sentinel serving TLS too, on [`tls_port`]
    /// (its plain port + 1000), with `leaf` (for 127.0.0.1, signed by
    /// `ca`), to clients with a certificate `ca` signed (Redis's default);
    /// replication and the sentinels' own links over TLS. The sentinels
    /// name the TLS ports; the test's helpers read the plain ones.
    pub fn start_tls(ca: &Path, leaf: &Leaf) -> Option<SentinelSetup> {
        Self::start_with(Some(Tls::new(ca, leaf)))
    }

    fn start_with(tls: Option<Tls>) -> Option<SentinelSetup> {
        // A full sync writes an RDB file: into the test's own directory.
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = dir.path().to_str().unwrap();
        let server_args = |port: u16| -> Vec<String> {
            let mut args = vec!["--dir".to_string(), dir_arg.to_string()];
            if let Some(tls) = &tls {
                args.extend(tls.args(port));
            }
            args
        };
        let master_port = free_port();
        let master = RedisServer::start_on(master_port, &server_args(master_port))?;
        // The port the sentinels and the replica reach the master on.
        let monitored = match tls {
            Some(_) => tls_port(master_port),
            None => master_port,
        }
        .to_string();
        let replica_port = free_port();
        let mut replica_args = server_args(replica_port);
        replica_args.extend(["--replicaof", "127.0.0.1", &monitored].map(String::from));
        let replica = RedisServer::start_on(replica_port, &replica_args)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !info(master.addr(), "replication").contains("state=online") {
            assert!(Instant::now() < deadline, "the replica did not sync");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut sentinels = Vec::new();
        for n in 0..3 {
            let sentinel_port = free_port();
            let conf = dir.path().join(format!("sentinel-{n}.conf"));
            let tls_lines = tls
                .as_ref()
                .map(|t| t.config(sentinel_port))
                .unwrap_or_default();
            std::fs::write(
                &conf,
                format!(
                    "port {sentinel_port}\nbind 127.0.0.1\ndir {dir}\n{tls_lines}\
                     sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {monitored} 2\n\
                     sentinel down-after-milliseconds {SENTINEL_MASTER} 2000\n\
                     sentinel failover-timeout {SENTINEL_MASTER} 5000\n\
                     sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
                    dir = dir.path().display()
                ),
            )
            .unwrap();
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| unavailable(&format!("cannot run redis-server --sentinel: {e}")))
                .ok()?;
            sentinels.push((sentinel_port, child));
        }
        for (port, _) in &sentinels {
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            let deadline = Instant::now() + Duration::from_secs(5);
            while !answers(addr) {
                assert!(
                    Instant::now() < deadline,
                    "sentinel on {port} did not answer"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(SentinelSetup {
            master,
            replica,
            sentinels,
            tls: tls.is_some(),
            _dir: dir,
        })
    }

    /// `host:port` of each sentinel, as `store.sentinels` takes them (the
    /// TLS ports, with TLS).
    pub fn addresses(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|&(port, _)| match self.tls {
                true => format!("127.0.0.1:{}", tls_port(port)),
                false => format!("127.0.0.1:{port}"),
            })
            .collect()
    }

    /// Freezes the sentinels (`SIGSTOP`), or lets them go on (`SIGCONT`):
    /// while frozen they can be neither asked nor act. Keep it under 2 s,
    /// or they wake up in TILT mode and do nothing for 30 s.
    pub fn freeze_sentinels(&self, frozen: bool) {
        for (_, child) in &self.sentinels {
            freeze(child, frozen);
        }
    }

    /// The address the sentinels name as master now.
    pub fn master_named(&self) -> Option<SocketAddr> {
        let (port, _) = &self.sentinels[0];
        let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], *port))).ok()?;
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let ask = format!("SENTINEL get-master-addr-by-name {SENTINEL_MASTER}\r\n");
        s.write_all(ask.as_bytes()).ok()?;
        let mut reply = [0u8; 256];
        let n = s.read(&mut reply).ok()?;
        // *2 $9 127.0.0.1 $5 6379
        let text = String::from_utf8_lossy(&reply[..n]);
        let parts: Vec<&str> = text.split("\r\n").collect();
        format!("{}:{}", parts.get(2)?, parts.get(4)?).parse().ok()
    }
}

fn freeze(process: &Child, frozen: bool) {
    let signal = if frozen { "-STOP" } else { "-CONT" };
    let status = Command::new("kill")
        .arg(signal)
        .arg(process.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal}");
}

/// An `INFO section` answer, as text ("" if the server does not answer).
pub fn info(addr: SocketAddr, section: &str) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(format!("INFO {section}\r\n").as_bytes())
        .is_err()
    {
        return String::new();
    }
    let mut reply = vec![0u8; 4096];
    let n = s.read(&mut reply).unwrap_or(0);
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A TCP relay: one gateway connects to Redis through it, and `cut` drops
/// its connections and refuses new ones until `restore`.
pub struct Relay {
    pub addr: SocketAddr,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            target,
            tasks: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (target, tasks) = (self.target, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    pub fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    pub async fn restore(&self) {
        // The aborted accept task lets go of the port on its next poll.
        let deadline = Instant::now() + Duration::from_secs(2);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() > deadline => panic!("relay cannot rebind: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        self.serve(listener);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}
