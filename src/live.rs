//! The live snapshot: what a config reload replaces (routes with their
//! metric series, strip rules, keys with a fresh verified-token cache, the
//! upstream groups the routes name, the request path's settings), built
//! here for the server at start and for the admin API on reload; external
//! issuers' keys are swapped in here whenever they change.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::keys;
use crate::auth::revocation::Revocations;
use crate::auth::validate::Validator;
use crate::config::{AuthSettings, Config, ForwardAuth, IpRules, Issuer, OutagePolicy, PathRules};
use crate::jwks::Registry;
use crate::limits::Limiter;
use crate::metrics::{Metrics, RouteSeries};
use crate::principals::UserStore;
use crate::routes::RouteTable;
use crate::shadow::Shadow;
use crate::store::Store;
use crate::upstream::request_body::BodyRules;
use crate::upstream::UpstreamGroup;

/// Swapped as one snapshot, so a request never sees routes of one config
/// with keys of another.
pub struct Live {
    pub routes: RouteTable,
    /// In `routes.routes()` order.
    pub route_series: Vec<RouteSeries>,
    pub validator: Validator,
    pub auth: AuthSettings,
    pub issuers: Vec<Issuer>,
    /// In `config.upstreams` order, as routes index them.
    pub upstreams: Vec<Arc<UpstreamGroup>>,
    /// In `routes.routes()` order.
    pub limiters: Vec<Arc<Limiter>>,
    /// Client addresses every route admits (`server.allow_ips` / `deny_ips`).
    pub ips: IpRules,
    /// Issuer → `sub` → the principal's own `rate_limit`.
    pub principal_rates: HashMap<usize, HashMap<String, u32>>,
    /// By issuer index: the SQL table its principals may also live in.
    pub user_stores: Vec<Option<Arc<UserStore>>>,
    /// By issuer index: the legacy service its answers are compared with.
    pub shadows: Vec<Option<Arc<Shadow>>>,
    pub settings: Settings,
}

/// The `[server]` and `[store]` settings a request reads: swapped with the
/// rest of the snapshot, so a reload applies them to the next request.
/// (What cannot change without a restart is named by
/// `config::restart_required`.)
pub struct Settings {
    /// What protected routes do while the store is unreachable.
    pub on_outage: OutagePolicy,
    pub max_body_size: u64,
    /// From the request head to the end of its body.
    pub body_timeout: Duration,
    /// How request bodies must arrive: buffered up to a size, at a pace.
    pub body_rules: BodyRules,
    pub access_log: bool,
    pub paths: PathRules,
    pub tunnel_idle_timeout: Duration,
    /// Peers whose `X-Forwarded-For` names the client (`server.trusted_proxies`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `server.forward_auth_path` and its style.
    pub forward_auth: Option<ForwardAuth>,
    /// `server.trace_context`.
    pub trace_context: bool,
}

impl Settings {
    pub fn of(config: &Config) -> Settings {
        let server = &config.server;
        let limits = &server.limits;
        Settings {
            on_outage: config.store.on_outage,
            max_body_size: server.max_body_size,
            body_timeout: limits.body_timeout,
            body_rules: BodyRules {
                buffer_size: limits.request_buffer_size,
                max_size: server.max_body_size,
                min_rate: limits.min_body_rate,
                grace: limits.min_body_rate_after,
            },
            access_log: server.access_log,
            paths: server.paths,
            tunnel_idle_timeout: server.tunnel_idle_timeout,
            trusted_proxies: server.trusted_proxies.clone(),
            forward_auth: server.forward_auth.clone(),
            trace_context: server.trace_context,
        }
    }

    /// Whether a connection from `ip` comes from one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

impl Live {
    /// The snapshot of `config` with its upstream groups; revocations
    /// outlive reloads, so every snapshot's validator reads the one shared set.
    #[allow(clippy::too_many_arguments)]
    pub async fn build(
        config: &Config,
        upstreams: Vec<Arc<UpstreamGroup>>,
        user_stores: Vec<Option<Arc<UserStore>>>,
        shadows: Vec<Option<Arc<Shadow>>>,
        revocations: &Arc<Revocations>,
        store: &dyn Store,
        external: &Registry,
        metrics: &Metrics,
        earlier: Option<&Live>,
    ) -> Result<Live, keys::KeyError> {
        let earlier_limiters = earlier.map_or(&[][..], |l| &l.limiters[..]);
        Ok(Live {
            limiters: crate::limits::for_routes(&config.routes, earlier_limiters, metrics),
            ips: config.server.ips.clone(),
            principal_rates: principal_rates(config),
            user_stores,
            shadows,
            routes: RouteTable::new(config.routes.clone()),
            route_series: config
                .routes
                .iter()
                .map(|r| metrics.route_series(r))
                .collect(),
            validator: Validator::new(
                crate::key_loading::load(config, store, |name| external.keys_of(name)).await?,
                revocations.clone(),
                config.auth.verified_cache_size,
                config.auth.leeway.as_secs(),
            ),
            auth: config.auth.clone(),
            issuers: config.issuers.clone(),
            upstreams,
            settings: Settings::of(config),
        })
    }
}

/// The principals whose entry sets their own `rate_limit`, by the `sub`
/// their tokens carry.
fn principal_rates(config: &Config) -> HashMap<usize, HashMap<String, u32>> {
    let mut rates = HashMap::new();
    for (index, issuer) in config.issuers.iter().enumerate() {
        let Some(endpoint) = &issuer.endpoint else {
            continue;
        };
        for p in endpoint.principals.iter() {
            if let Some(rate) = p.rate_limit {
                let sub = crate::issue::subject(endpoint.dialect, p);
                rates
                    .entry(index)
                    .or_insert_with(HashMap::new)
                    .insert(sub, rate);
            }
        }
    }
    rates
}

impl Live {
    /// Swaps the external issuers' current keys into the validator, if
    /// they differ from those it holds.
    pub fn refresh_external_keys(&self, external: &Registry) {
        let _one_at_a_time = external.apply_lock.lock().expect("not poisoned");
        let keys = self.validator.keys();
        let fresh: Vec<_> = self
            .issuers
            .iter()
            .map(|i| i.external.as_ref().and_then(|_| external.keys_of(&i.name)))
            .collect();
        let same = |a: &Option<Arc<_>>, b: &Option<Arc<_>>| match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if keys.external().iter().zip(&fresh).all(|(a, b)| same(a, b)) {
            return;
        }
        self.validator.replace_keys(keys.with_external(fresh));
    }
}
