//! The live snapshot: what a config reload replaces (routes with their
//! metric series, strip rules, keys with a fresh verified-token cache, the
//! upstream groups the routes name), built here for the server at start and
//! for the admin API on reload.

use std::sync::Arc;

use crate::auth::keys;
use crate::auth::revocation::Revocations;
use crate::auth::validate::Validator;
use crate::config::{AuthSettings, Config, Issuer};
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
                keys::load(config, store).await?,
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
