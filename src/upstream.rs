//! Upstream groups: round robin over the servers that pass their health
//! check, with the timeouts the config gives each group.

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::lb::health_check::TcpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, LoadBalancer};
use pingora::services::background::{background_service, GenBackgroundService};

use crate::config::{HealthCheck, Upstream};

pub struct UpstreamGroup {
    pub config: Upstream,
    pub servers: Vec<SocketAddr>,
    pub balancer: Arc<LoadBalancer<RoundRobin>>,
}

impl UpstreamGroup {
    /// Builds a group and, when it is health checked, the background service
    /// that runs the checks (the caller adds it to the server).
    pub fn new(
        config: Upstream,
        servers: Vec<SocketAddr>,
    ) -> std::io::Result<(
        UpstreamGroup,
        Option<GenBackgroundService<LoadBalancer<RoundRobin>>>,
    )> {
        let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(servers.iter().copied())?;
        let (balancer, service) = match config.health_check {
            HealthCheck::None => (Arc::new(lb), None),
            HealthCheck::Tcp { interval } => {
                lb.set_health_check(TcpHealthCheck::new());
                lb.health_check_frequency = Some(interval);
                lb.parallel_health_check = true;
                let service = background_service(&format!("health check {}", config.name), lb);
                (service.task(), Some(service))
            }
        };
        Ok((
            UpstreamGroup {
                config,
                servers,
                balancer,
            },
            service,
        ))
    }

    /// The next healthy server in round-robin order that is not in `tried`.
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let backend = self
            .balancer
            .select_with(b"", 256, |b: &Backend, healthy| {
                healthy && !b.addr.as_inet().is_some_and(|a| tried.contains(a))
            })?;
        backend.addr.as_inet().copied()
    }

    pub fn healthy_count(&self) -> usize {
        let backends = self.balancer.backends();
        backends
            .get_backend()
            .iter()
            .filter(|b| backends.ready(b))
            .count()
    }
}
