//! Active health checks: a task per group that marks each of its servers
//! up or down, every `interval`, until the group is dropped. A TCP check
//! decides at once; an HTTP check asks `GET path` over the group's own
//! protocol and TLS and needs `healthy_after` / `unhealthy_after` answers
//! in a row to change its mind.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http::Request;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::h2::RequestBody;
use super::Failure;
use super::{Server, UpstreamGroup};
use crate::config::{HealthCheck, HttpCheck};

/// The group's health checks, to be spawned; `None` when it is not checked.
pub fn checks(group: &Arc<UpstreamGroup>) -> Option<impl Future<Output = ()> + Send + 'static> {
    let weak: Weak<UpstreamGroup> = Arc::downgrade(group);
    let (interval, check) = match &group.config.health_check {
        HealthCheck::None => return None,
        HealthCheck::Tcp { interval } => (*interval, None),
        HealthCheck::Http(check) => (check.interval, Some(check.clone())),
    };
    Some(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Answers in a row, per server: (passed, failed).
        let mut streaks: HashMap<SocketAddr, (u32, u32)> = HashMap::new();
        loop {
            tick.tick().await;
            let Some(group) = weak.upgrade() else { return };
            let servers = group.servers();
            let results = match &check {
                None => {
                    let timeout = group.config.connect_timeout;
                    let probes = servers.iter().map(|s| accepts(s.addr, timeout));
                    futures_util::future::join_all(probes).await
                }
                Some(check) => {
                    let probes = servers.iter().map(|s| group.probe(s, check));
                    futures_util::future::join_all(probes).await
                }
            };
            streaks.retain(|addr, _| servers.iter().any(|s| s.addr == *addr));
            for (server, passed) in servers.iter().zip(results) {
                let streak = streaks.entry(server.addr).or_default();
                *streak = if passed {
                    (streak.0 + 1, 0)
                } else {
                    (0, streak.1 + 1)
                };
                let (up_after, down_after) = check
                    .as_ref()
                    .map_or((1, 1), |c| (c.healthy_after, c.unhealthy_after));
                let was_up = server.healthy.load(Ordering::Relaxed);
                let up = if was_up {
                    streak.1 < down_after
                } else {
                    streak.0 >= up_after
                };
                if up != was_up {
                    server.healthy.store(up, Ordering::Relaxed);
                    tracing::warn!(upstream = %group.config.name, server = %server.addr, up, "upstream server health changed");
                }
            }
        }
    })
}

impl UpstreamGroup {
    /// One HTTP check of `server`: does `GET path` answer an expected
    /// status within the timeout? Why not is logged at debug level.
    async fn probe(&self, server: &Server, check: &HttpCheck) -> bool {
        let status = tokio::time::timeout(check.timeout, self.ask(server, &check.path)).await;
        match status {
            Ok(Ok(status)) if check.expect.contains(&status) => true,
            Ok(Ok(status)) => {
                tracing::debug!(upstream = %self.config.name, server = %server.addr, status, "health check: unexpected status");
                false
            }
            Ok(Err(error)) => {
                tracing::debug!(upstream = %self.config.name, server = %server.addr, %error, "health check failed");
                false
            }
            Err(_) => {
                tracing::debug!(upstream = %self.config.name, server = %server.addr, "health check timed out");
                false
            }
        }
    }

    /// The status `GET path` gets from `server`: on its HTTP/2 connection,
    /// or on a new HTTP/1.1 connection of its own (never a pooled one).
    async fn ask(&self, server: &Server, path: &str) -> Result<u16, String> {
        let failed = |f: Failure| format!("{f:?}");
        if self.config.protocol.is_http2() {
            let mut sender = self.sender(server).await.map_err(failed)?;
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            let request = Request::get(format!("{scheme}://{}{path}", server.authority))
                .header(USER_AGENT, "portero-health-check")
                .body(RequestBody::empty())
                .map_err(|e| e.to_string())?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(response.status().as_u16());
        }
        let conn = self.connect(server).await.map_err(failed)?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(conn))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header(HOST, server.authority.as_str())
            .header(USER_AGENT, "portero-health-check")
            .header(CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(response.status().as_u16())
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
    use super::super::tests::group;
    use super::*;

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
        )
        .await;
        for _ in 0..100 {
            if g.healthy_count() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let servers = g.servers();
        assert!(servers[0].is_healthy(), "listening port is up");
        assert!(!servers[1].is_healthy(), "closed port is down");
    }
}
