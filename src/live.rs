//! The live snapshot: what a config reload replaces, assembled in one
//! place ([`Live::assemble`]) for the server at start and for the admin API
//! on reload. Per issuer a [`LiveIssuer`] (its config, principal sources,
//! shadow, principals' own rates), per route a [`LiveRoute`] (its metric
//! series and limiter), and what every request reads: the route table, the
//! validator with its keys (external issuers' swapped in here whenever they
//! change), the upstream groups and the request path's settings.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};

use crate::auth::keys;
use crate::auth::revocation::Revocations;
use crate::auth::validate::Validator;
use crate::config::{
    AuthSettings, Config, ForwardAuth, IpRules, Issuer, OutagePolicy, PathRules, Route,
};
use crate::dialect::shadow::{SetUpError, Shadow};
use crate::identity::Identity;
use crate::introspection::Introspector;
use crate::jwks::Registry;
use crate::limits::Limiter;
use crate::metrics::{Metrics, RouteSeries};
use crate::principals::{OpenError, UserStore};
use crate::resource_metadata::Documents;
use crate::routes::{Miss, RouteTable};
use crate::store::Secrets;
use crate::upstream::request_body::BodyRules;
use crate::upstream::{UpstreamError, UpstreamGroup};

/// An issuer's place in the config (`[issuers.NAME]` order): what a
/// verified token's `issuer` and a token route's `issuer` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IssuerId(pub usize);

/// A route's place in the config (`[[routes]]` order), as the route table
/// finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId(pub usize);

/// Swapped as one snapshot, so a request never sees routes of one config
/// with keys of another.
pub struct Live {
    pub routes: RouteTable,
    /// The protected routes' resource metadata documents (RFC 9728).
    pub resources: Documents,
    /// By [`RouteId`].
    route_state: Vec<LiveRoute>,
    /// By [`IssuerId`].
    issuers: Vec<LiveIssuer>,
    pub validator: Validator,
    /// The API keys this snapshot has admitted.
    pub api_keys: crate::api_keys::Check,
    pub auth: AuthSettings,
    /// In `config.upstreams` order, as routes index them.
    pub upstreams: Vec<Arc<UpstreamGroup>>,
    /// Client addresses every route admits (`server.allow_ips` / `deny_ips`).
    pub ips: IpRules,
    pub settings: Settings,
}

/// One issuer as the running gateway holds it: everything a per-issuer
/// feature reads at request time lives here.
pub struct LiveIssuer {
    pub id: IssuerId,
    pub config: Issuer,
    /// The SQL table its principals may also live in.
    pub user_store: Option<Arc<UserStore>>,
    /// Its accounts and their logins, where it has accounts.
    pub identity: Option<Arc<Identity>>,
    /// The legacy service its answers are compared with.
    pub shadow: Option<Arc<Shadow>>,
    /// `sub` → the principal's own `rate_limit`, for those that set one.
    pub principal_rates: HashMap<String, u32>,
    /// Its opaque tokens' introspection, with the answers kept (a reload
    /// that leaves its settings alone keeps them).
    pub introspector: Option<Arc<Introspector>>,
    /// portero signs people in here (`login_client_id`).
    pub login: Option<Arc<crate::session::provider::LoginProvider>>,
}

/// What the gateway holds for one route beside its config (which the route
/// table keeps).
pub struct LiveRoute {
    pub series: RouteSeries,
    /// Its limits; a reload keeps an unchanged route's counts.
    pub limiter: Arc<Limiter>,
    /// On a route that takes DPoP or publishes resource metadata: its
    /// refusals' challenges, by [`AuthError::index`](crate::auth::AuthError::index).
    challenges: Option<Box<[Box<[HeaderValue]>]>>,
}

impl LiveRoute {
    /// The route's own challenges for `reason`, if it has them (it takes
    /// DPoP or publishes resource metadata); else every route's (`respond`).
    pub fn challenge(&self, reason: crate::auth::AuthError) -> Option<&[HeaderValue]> {
        Some(&self.challenges.as_ref()?[reason.index()])
    }
}

/// What outlives a snapshot and every snapshot is assembled with.
pub struct Handles<'a> {
    /// Revocations outlive reloads: every snapshot's validator reads this one set.
    pub revocations: &'a Arc<Revocations>,
    /// Every API key's record, kept current by the store's channel.
    pub api_keys: &'a Arc<crate::api_keys::Index>,
    /// Where issuers' generated keys are kept.
    pub store: &'a dyn Secrets,
    pub external: &'a Registry,
    pub metrics: &'a Metrics,
    /// Where the built-in echo upstreams listen (bound at start; a reload
    /// keeps the running groups').
    pub echo: &'a [(String, SocketAddr)],
}

/// Why a config could not be assembled into a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    UserStore(OpenError),
    #[error(transparent)]
    Shadow(#[from] SetUpError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Introspection(#[from] crate::introspection::SetUpError),
    #[error("{0}")]
    Login(String),
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
    /// Their `Client-Cert` field is the client's certificate.
    pub client_cert_from_proxies: bool,
    /// `server.forward_auth_path` and its style.
    pub forward_auth: Option<ForwardAuth>,
    /// `server.trace_context`.
    pub trace_context: bool,
    /// `[sessions]`, when a route signs people in.
    pub sessions: Option<Arc<crate::config::Sessions>>,
    /// portero sets cookies of its own (sessions, sign-in pages): they are
    /// kept from upstreams.
    pub own_cookies: bool,
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
            client_cert_from_proxies: server.client_cert_from_proxies,
            forward_auth: server.forward_auth.clone(),
            trace_context: server.trace_context,
            sessions: config.sessions.clone().map(Arc::new),
            own_cookies: config.sessions.is_some()
                || config
                    .issuers
                    .iter()
                    .any(|i| i.oauth2.as_ref().is_some_and(|o| o.authorization_code)),
        }
    }

    /// Whether a connection from `ip` comes from one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// Each issuer's introspection: the running one where its settings are
/// unchanged (its kept answers with it), else a new one.
fn introspectors(
    config: &Config,
    previous: Option<&Live>,
    metrics: &Metrics,
) -> Result<Vec<Option<Arc<Introspector>>>, crate::introspection::SetUpError> {
    let mut out = Vec::with_capacity(config.issuers.len());
    for (index, issuer) in config.issuers.iter().enumerate() {
        let running = previous
            .and_then(|l| l.issuers.get(index))
            .and_then(|i| i.introspector.clone())
            .filter(|i| i.serves(index, issuer));
        let introspector = match running {
            Some(running) => Some(running),
            None if issuer.introspection.is_none() => None,
            None => Introspector::new(index, issuer, metrics.introspection_series(&issuer.name))?
                .map(Arc::new),
        };
        out.push(introspector);
    }
    Ok(out)
}

/// Each issuer's login provider, its client secret read now.
fn login_providers(
    config: &Config,
) -> Result<Vec<Option<Arc<crate::session::provider::LoginProvider>>>, AssembleError> {
    let provider = |(index, issuer): (usize, &Issuer)| {
        let client = issuer.login.clone()?;
        Some(crate::session::provider::LoginProvider::new(index, issuer, client).map(Arc::new))
    };
    config
        .issuers
        .iter()
        .enumerate()
        .map(|i| provider(i).transpose().map_err(AssembleError::Login))
        .collect()
}

impl Live {
    /// The snapshot of `config`: its upstream groups (unchanged ones taken
    /// over from `previous` with their connections and health), principal
    /// sources, shadows, keys and limiters (an unchanged route keeps its
    /// counts). Server start and admin reload both build theirs here.
    pub async fn assemble(
        config: &Config,
        handles: &Handles<'_>,
        previous: Option<&Live>,
    ) -> Result<Live, AssembleError> {
        let metrics = handles.metrics;
        let running = previous.map_or(&[][..], |l| &l.upstreams[..]);
        let upstreams = crate::upstream::groups(config, running, handles.echo, metrics).await?;
        let user_stores =
            crate::principals::open(config, handles.revocations, &metrics.legacy_hashes)
                .await
                .map_err(AssembleError::UserStore)?;
        let shadows = crate::dialect::shadow::for_issuers(config, &metrics.shadow_comparisons)?;
        let keys =
            crate::key_loading::load(config, handles.store, |name| handles.external.keys_of(name))
                .await?;
        let introspectors = introspectors(config, previous, metrics)?;
        let mut logins = login_providers(config)?.into_iter();
        let issuers = config
            .issuers
            .iter()
            .zip(user_stores.into_iter().zip(shadows))
            .zip(introspectors)
            .enumerate()
            .map(
                |(index, ((config, (user_store, shadow)), introspector))| LiveIssuer {
                    id: IssuerId(index),
                    principal_rates: principal_rates(config),
                    identity: Identity::new(config, user_store.clone(), metrics).map(Arc::new),
                    config: config.clone(),
                    user_store,
                    shadow,
                    introspector,
                    login: logins.next().flatten(),
                },
            )
            .collect();
        Ok(Live {
            route_state: live_routes(config, previous, metrics),
            resources: Documents::new(&config.routes),
            routes: RouteTable::new(config.routes.clone()),
            validator: Validator::new(
                keys,
                handles.revocations.clone(),
                config.auth.verified_cache_size,
                config.auth.leeway.as_secs(),
            ),
            api_keys: crate::api_keys::Check::new(
                handles.api_keys.clone(),
                config,
                config.auth.verified_cache_size,
            ),
            issuers,
            auth: config.auth.clone(),
            upstreams,
            ips: config.server.ips.clone(),
            settings: Settings::of(config),
        })
    }

    pub fn issuer(&self, id: IssuerId) -> &LiveIssuer {
        &self.issuers[id.0]
    }

    /// Every issuer, in [`IssuerId`] order.
    pub fn issuers(&self) -> &[LiveIssuer] {
        &self.issuers
    }

    pub fn route(&self, id: RouteId) -> &LiveRoute {
        &self.route_state[id.0]
    }

    /// The route's config.
    pub fn route_config(&self, id: RouteId) -> &Route {
        &self.routes.routes()[id.0]
    }

    /// The route for (host, path's routing key, method), or why there is none.
    pub fn find_route(
        &self,
        host: &str,
        key: &str,
        method: &Method,
    ) -> Result<(RouteId, &Route), Miss> {
        self.routes
            .find_key(host, key, method)
            .map(|(index, route)| (RouteId(index), route))
    }

    /// As [`Live::find_route`], for a path not yet reduced to its routing key.
    pub fn lookup_route(
        &self,
        host: &str,
        path: &str,
        method: &Method,
    ) -> Option<(RouteId, &Route)> {
        self.routes
            .lookup(host, path, method)
            .map(|(index, route)| (RouteId(index), route))
    }
}

/// Each route's series and limiter; a route unchanged since `previous`
/// keeps its limiter's counts.
fn live_routes(config: &Config, previous: Option<&Live>, metrics: &Metrics) -> Vec<LiveRoute> {
    let earlier: Vec<Arc<Limiter>> = previous.map_or_else(Vec::new, |live| {
        live.route_state.iter().map(|r| r.limiter.clone()).collect()
    });
    crate::limits::for_routes(&config.routes, &earlier, metrics)
        .into_iter()
        .zip(&config.routes)
        .map(|(limiter, route)| LiveRoute {
            series: metrics.route_series(route),
            limiter,
            challenges: crate::challenges::of_route(route),
        })
        .collect()
}

/// The principals whose entry sets their own `rate_limit`, by the `sub`
/// their tokens carry.
fn principal_rates(issuer: &Issuer) -> HashMap<String, u32> {
    let Some(accounts) = &issuer.accounts else {
        return HashMap::new();
    };
    accounts
        .principals
        .iter()
        .filter_map(|p| Some((accounts.subject_of(p), p.rate_limit?)))
        .collect()
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
            .map(|i| {
                let config = &i.config;
                config
                    .external
                    .as_ref()
                    .and_then(|_| external.keys_of(&config.name))
            })
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
