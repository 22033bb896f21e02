//! The live snapshot: what a config reload replaces (routes with their
//! metric series, strip rules, keys with a fresh verified-token cache, the
//! upstream groups the routes name), built here for the server at start and
//! for the admin API on reload; external issuers' keys are swapped in here
//! whenever they change.

use std::sync::Arc;

use crate::auth::keys;
use crate::auth::revocation::Revocations;
use crate::auth::validate::Validator;
use crate::config::{AuthSettings, Config, Issuer};
use crate::jwks::Registry;
use crate::metrics::{Metrics, RouteSeries};
use crate::routes::RouteTable;
use crate::store::Store;
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
}

impl Live {
    /// The snapshot of `config` with its upstream groups; revocations
    /// outlive reloads, so every snapshot's validator reads the one shared set.
    pub async fn build(
        config: &Config,
        upstreams: Vec<Arc<UpstreamGroup>>,
        revocations: &Arc<Revocations>,
        store: &dyn Store,
        external: &Registry,
        metrics: &Metrics,
    ) -> Result<Live, keys::KeyError> {
        Ok(Live {
            routes: RouteTable::new(config.routes.clone()),
            route_series: config
                .routes
                .iter()
                .map(|r| metrics.route_series(r))
                .collect(),
            validator: Validator::new(
                keys::load(config, store, |name| external.keys_of(name)).await?,
                revocations.clone(),
                config.auth.verified_cache_size,
                config.auth.leeway.as_secs(),
            ),
            auth: config.auth.clone(),
            issuers: config.issuers.clone(),
            upstreams,
        })
    }
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
