//! A Redis Cluster of the test's own: three masters and a replica each,
//! `redis-server --cluster-enabled yes` processes joined by
//! `redis-cli --cluster create`, quick to fail over (a node is down after
//! 1 s).

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::redis::{info, tls_port, unavailable, RedisServer, Tls};

pub struct ClusterSetup {
    pub nodes: Vec<RedisServer>,
    /// Whether the nodes serve TLS too ([`tls_port`]).
    tls: bool,
    _dir: tempfile::TempDir,
}

impl ClusterSetup {
    pub fn start() -> Option<ClusterSetup> {
        Self::start_with(None)
    }

    /// With every node serving TLS too, on [`tls_port`], and the cluster
    /// bus and replication over TLS: the nodes name their TLS ports.
    pub fn start_tls(tls: Tls) -> Option<ClusterSetup> {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<Tls>) -> Option<ClusterSetup> {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for n in 0..6 {
            let path = |name: &str| dir.path().join(format!("{name}-{n}")).display().to_string();
            std::fs::create_dir(path("node")).unwrap();
            let port = free_port();
            let mut args: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &free_port().to_string(),
                "--cluster-config-file",
                &path("nodes.conf"),
                "--cluster-node-timeout",
                "1000",
                "--dir",
                &path("node"),
            ]
            .map(String::from)
            .into();
            if let Some(tls) = &tls {
                args.extend(tls.args(port));
                args.extend(["--tls-cluster", "yes"].map(String::from));
            }
            nodes.push(RedisServer::start_on(port, &args)?);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| match tls {
                Some(_) => format!("127.0.0.1:{}", tls_port(n.port)),
                None => n.addr().to_string(),
            })
            .collect();
        let tls_args = match &tls {
            Some(tls) => [
                "--tls", "--cacert", &tls.ca, "--cert", &tls.cert, "--key", &tls.key,
            ]
            .map(String::from)
            .into(),
            None => vec![],
        };
        let created = Command::new("redis-cli")
            .args(&tls_args)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match created {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => {
                unavailable(&format!("cannot run redis-cli: {e}"));
                return None;
            }
        }
        let setup = ClusterSetup {
            nodes,
            tls: tls.is_some(),
            _dir: dir,
        };
        setup.wait_until_ok();
        Some(setup)
    }

    /// Until every node reports the cluster ok and every master its replica online.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &self.nodes {
            while !(cluster_info(node.addr()).contains("cluster_state:ok")
                && self.replicated(node.addr()))
            {
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not settle: {}",
                    cluster_info(node.addr())
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn replicated(&self, addr: SocketAddr) -> bool {
        let replication = info(addr, "replication");
        !replication.contains("role:master") || replication.contains("state=online")
    }

    /// `host:port` of each node, as `store.cluster` takes them (the TLS
    /// ports, with TLS).
    pub fn addresses(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| match self.tls {
                true => format!("127.0.0.1:{}", tls_port(n.port)),
                false => n.addr().to_string(),
            })
            .collect()
    }

    /// The node serving `key`'s slot as master now.
    pub fn master_of(&self, key: &str) -> &RedisServer {
        let slot = redis_cli(self.nodes[0].addr(), &["CLUSTER", "KEYSLOT", key]);
        self.nodes
            .iter()
            .find(|n| owns(n.addr(), slot.trim()))
            .expect("a master serves every slot")
    }
}

/// Does the node at `addr` serve `slot` as master?
fn owns(addr: SocketAddr, slot: &str) -> bool {
    let slot: u16 = slot.parse().unwrap();
    let nodes = redis_cli(addr, &["CLUSTER", "NODES"]);
    let me = nodes.lines().find(|l| l.contains("myself")).unwrap_or("");
    me.split_whitespace().skip(8).any(|range| {
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        matches!((low.parse::<u16>(), high.parse::<u16>()), (Ok(l), Ok(h)) if (l..=h).contains(&slot))
    })
}

fn cluster_info(addr: SocketAddr) -> String {
    redis_cli(addr, &["CLUSTER", "INFO"])
}

/// One command through `redis-cli`; its output ("" if it cannot run).
pub fn redis_cli(addr: SocketAddr, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
