//! Upstream groups: round robin over the servers that pass their health
//! check, with the timeouts the config gives each group. Plain tokio, no
//! proxy engine: the health checks run as a task on the side runtime.
//!
//! How a request reaches a server is split like a codec and a connection:
//! `codec` is HTTP/1.1 without I/O, `body` de-frames a response from its
//! connection, `pool` keeps idle connections, and `client` runs one exchange
//! over them. Upstream TLS, HTTP/2 and upgrades plug in at `client` (a
//! connection other than a pooled `TcpStream`) and `codec` (101 is refused
//! there today).

pub(crate) mod body;
pub(crate) mod client;
pub mod codec;
mod pool;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::{HealthCheck, Upstream};

pub struct UpstreamGroup {
    pub config: Upstream,
    pub servers: Vec<SocketAddr>,
    /// One flag per server, in `servers` order. Servers start healthy, so a
    /// group serves before its first check.
    healthy: Arc<[AtomicBool]>,
    next: AtomicUsize,
}

impl UpstreamGroup {
    pub fn new(config: Upstream, servers: Vec<SocketAddr>) -> UpstreamGroup {
        let healthy = servers.iter().map(|_| AtomicBool::new(true)).collect();
        UpstreamGroup {
            config,
            servers,
            healthy,
            next: AtomicUsize::new(0),
        }
    }

    /// The next healthy server in round-robin order that is not in `tried`.
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let n = self.servers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| self.healthy[i].load(Ordering::Relaxed) && !tried.contains(&self.servers[i]))
            .map(|i| self.servers[i])
    }

    pub fn healthy_count(&self) -> usize {
        self.healthy
            .iter()
            .filter(|h| h.load(Ordering::Relaxed))
            .count()
    }

    /// The group's health checks, to be spawned: every `interval`, a TCP
    /// connect to each server within the group's connect timeout marks it up
    /// or down. `None` when the group is not checked.
    pub fn health_checks(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let HealthCheck::Tcp { interval } = self.config.health_check else {
            return None;
        };
        let servers = self.servers.clone();
        let healthy = self.healthy.clone();
        let timeout = self.config.connect_timeout;
        let name = self.config.name.clone();
        Some(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let checks = servers.iter().map(|addr| accepts(*addr, timeout));
                let results = futures_util::future::join_all(checks).await;
                for ((addr, flag), up) in servers.iter().zip(healthy.iter()).zip(results) {
                    if flag.swap(up, Ordering::Relaxed) != up {
                        tracing::warn!(upstream = %name, server = %addr, up, "upstream server health changed");
                    }
                }
            }
        })
    }
}

/// Does `addr` accept a TCP connection within `timeout`?
async fn accepts(addr: SocketAddr, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamKind;

    fn group(servers: &[SocketAddr], health_check: HealthCheck) -> UpstreamGroup {
        let config = Upstream {
            name: "test".into(),
            kind: UpstreamKind::Servers(servers.to_vec()),
            connect_timeout: Duration::from_millis(200),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            max_idle_connections: 1,
            idle_timeout: Duration::from_secs(1),
            max_connections: 8,
            queue_timeout: Duration::from_secs(1),
            health_check,
            host: None,
        };
        UpstreamGroup::new(config, servers.to_vec())
    }

    #[test]
    fn round_robin_skips_tried_and_unhealthy_servers() {
        let servers: Vec<SocketAddr> = (1..=3)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let g = group(&servers, HealthCheck::None);
        let picks: Vec<_> = (0..6).map(|_| g.pick(&[]).unwrap()).collect();
        assert_eq!(picks[..3], servers[..]);
        assert_eq!(picks[3..], servers[..]);
        g.healthy[1].store(false, Ordering::Relaxed);
        assert_eq!(g.healthy_count(), 2);
        for _ in 0..6 {
            assert_ne!(g.pick(&[]), Some(servers[1]));
        }
        assert_eq!(g.pick(&[servers[0], servers[2]]), None);
    }

    #[tokio::test]
    async fn health_checks_mark_a_closed_port_down_and_an_open_one_up() {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let g = group(
            &[open.local_addr().unwrap(), closed],
            HealthCheck::Tcp {
                interval: Duration::from_millis(20),
            },
        );
        let checks = tokio::spawn(g.health_checks().unwrap());
        for _ in 0..100 {
            if g.healthy_count() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        checks.abort();
        assert!(g.healthy[0].load(Ordering::Relaxed), "listening port is up");
        assert!(!g.healthy[1].load(Ordering::Relaxed), "closed port is down");
        assert!(group(&[closed], HealthCheck::None)
            .health_checks()
            .is_none());
    }
}
