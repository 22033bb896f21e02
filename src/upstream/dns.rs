//! Upstream server names to addresses: hickory's resolver (the system's
//! name servers and `/etc/hosts`, or those `[dns]` names), with each
//! answer's TTL clamped to `[dns] min_ttl..max_ttl` so a name is asked
//! again neither in a storm nor never.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

use crate::config::DnsSettings;

pub struct Resolver {
    /// `Err`: why no resolver could be made (every lookup fails with it).
    inner: Result<TokioResolver, String>,
    settings: DnsSettings,
}

/// The addresses a name resolved to, sorted, and when to ask again.
pub struct Answer {
    pub addrs: Vec<SocketAddr>,
    pub ttl: Duration,
}

impl Resolver {
    pub fn new(settings: &DnsSettings) -> Resolver {
        let builder = if settings.servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("system DNS configuration: {e}"))
        } else {
            let mut group = NameServerConfigGroup::new();
            for &addr in &settings.servers {
                group.push(NameServerConfig::new(addr, Protocol::Udp));
                group.push(NameServerConfig::new(addr, Protocol::Tcp));
            }
            let config = ResolverConfig::from_parts(None, Vec::new(), group);
            Ok(TokioResolver::builder_with_config(
                config,
                TokioConnectionProvider::default(),
            ))
        };
        let inner = builder.map(|mut b| {
            let opts: &mut ResolverOpts = b.options_mut();
            // Every address is a server: both families, not the first that answers.
            opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            opts.positive_min_ttl = Some(settings.min_ttl);
            opts.positive_max_ttl = Some(settings.max_ttl);
            // A failure is asked again soon, not remembered.
            opts.negative_max_ttl = Some(settings.min_ttl);
            b.build()
        });
        Resolver {
            inner,
            settings: settings.clone(),
        }
    }

    pub fn settings(&self) -> &DnsSettings {
        &self.settings
    }

    /// Every address of `host`, with `port`.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Answer, String> {
        let resolver = self.inner.as_ref().map_err(Clone::clone)?;
        // Search domains apply as in the system's resolver (`ndots`), so
        // `orders.default.svc` resolves inside a Kubernetes pod.
        let lookup = resolver.lookup_ip(host).await.map_err(|e| e.to_string())?;
        let mut addrs: Vec<SocketAddr> =
            lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        addrs.sort_unstable();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(format!("{host} has no addresses"));
        }
        let ttl = lookup
            .valid_until()
            .saturating_duration_since(std::time::Instant::now())
            .clamp(self.settings.min_ttl, self.settings.max_ttl);
        Ok(Answer { addrs, ttl })
    }

    /// How long to wait after a failed lookup.
    pub fn retry_after(&self) -> Duration {
        self.settings.min_ttl
    }
}
