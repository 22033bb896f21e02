//! The admin listener (loopback by default): `/metrics`, `/healthz`,
//! `/readyz`, the revocation API and the API-key API (`api_keys`). Everything under `/admin/` needs
//! `Authorization: Bearer <admin token>`, the token taken from the
//! environment variable the config names.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod api_keys;
mod consents;
mod factors;
mod oauth2_clients;
mod sessions;

use crate::auth::revocation::Revocation;
use crate::config::{Config, OutagePolicy};
use crate::listener::{Handler, Peer, Serving};
use crate::live::{Handles, Live};
use crate::proxy::GatewayState;
use crate::respond::{
    admin_error_response, admin_reply, AdminError, ReloadError, RevocationRefused,
};
use crate::upstream::h1::take_head;

/// Largest admin request body read.
const MAX_ADMIN_BODY: usize = 64 * 1024;

pub struct Admin {
    pub shared: Arc<GatewayState>,
    /// True once every public listener is up; false again when shutting down.
    pub started: Arc<AtomicBool>,
    /// `None`: the admin API refuses with 503 (the variable was unset at start).
    pub token: Option<String>,
    pub token_env: String,
    /// Reloads read this file again.
    pub config_path: PathBuf,
    /// The config the process started with, its listeners at the addresses
    /// they were bound to: what keys that need a restart are compared to.
    pub running: Config,
}

type Reply = Response<Full<Bytes>>;

/// Serves the admin listener for the life of the process, within its own
/// connection limits, so a flood on the public listeners leaves it answering.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, serving: Arc<Serving>) {
    // The admin listener is not drained at shutdown: it never stops.
    let (_never, stop) = watch::channel(false);
    crate::listener::accept(listener, serving, admin, stop).await;
}

impl Handler for Admin {
    type Body = Full<Bytes>;

    async fn respond(&self, parts: &mut Parts, body: Incoming, _peer: &Peer) -> Reply {
        self.handle(Request::from_parts(take_head(parts), body))
            .await
    }
}

fn json_reply(status: StatusCode, body: serde_json::Value) -> Reply {
    admin_reply(status, "application/json", body.to_string())
}

/// The methods the admin listener serves on `path`, or `None` for a path it does not serve.
fn methods(path: &str) -> Option<&'static [Method]> {
    match path {
        "/metrics" | "/healthz" | "/readyz" => Some(&[Method::GET]),
        "/admin/revocations" | "/admin/api-keys" => Some(&[Method::GET, Method::POST]),
        "/admin/reload" => Some(&[Method::POST]),
        "/admin/oauth2-clients" => Some(&[Method::GET]),
        "/admin/sessions" => Some(&[Method::DELETE]),
        _ if oauth2_clients::client_path(path).is_some() => Some(&[Method::DELETE]),
        _ if consents::user_path(path).is_some() => Some(&[Method::GET, Method::DELETE]),
        _ if factors::factors_path(path).is_some() => Some(&[Method::DELETE]),
        _ => match api_keys::KeyPath::of(path)? {
            api_keys::KeyPath::Key(_) => Some(&[Method::DELETE]),
            api_keys::KeyPath::Rotate(_) => Some(&[Method::POST]),
        },
    }
}

/// A JSON admin request body, within `MAX_ADMIN_BODY`.
async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, AdminError> {
    let body = Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
        .map_err(|_| AdminError::BodyTooLarge)?
        .to_bytes();
    serde_json::from_slice(&body).map_err(AdminError::InvalidJson)
}

/// The body of `POST /admin/revocations`: exactly one way of naming what to revoke.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    jti: Option<String>,
    /// With `jti`: when the token expires (Unix seconds), so the entry can be dropped then.
    expires_at: Option<i64>,
    token: Option<String>,
    sub: Option<String>,
    issuer: Option<String>,
}

impl RevokeRequest {
    /// The metric label of this request.
    fn kind(&self) -> &'static str {
        match (&self.jti, &self.token, &self.sub) {
            (Some(_), _, _) => "jti",
            (_, Some(t), _) if !t.contains('.') => "refresh_token",
            (_, Some(_), _) => "token",
            _ => "subject",
        }
    }
}

impl Admin {
    async fn handle(&self, req: Request<Incoming>) -> Reply {
        match self.answer(req).await {
            Ok(reply) => reply,
            Err(e) => admin_error_response(&e),
        }
    }

    async fn answer(&self, req: Request<Incoming>) -> Result<Reply, AdminError> {
        let path = req.uri().path();
        // Everything under /admin/ is the admin's, even the paths that do not exist.
        if path.starts_with("/admin/") {
            self.require_admin_token(&req)?;
        }
        let allowed = methods(path).ok_or(AdminError::NoSuchEndpoint)?;
        Ok(match (req.method(), path) {
            (&Method::GET, "/metrics") => {
                self.refresh_gauges();
                admin_reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.shared.metrics.render(),
                )
            }
            (&Method::GET, "/healthz") => json_reply(StatusCode::OK, json!({"status": "ok"})),
            (&Method::GET, "/readyz") => self.readyz(),
            (&Method::GET, "/admin/revocations") => json_reply(
                StatusCode::OK,
                json!({ "revocations": self.shared.revocations.list() }),
            ),
            (&Method::POST, "/admin/revocations") => self.revoke(req).await?,
            (&Method::POST, "/admin/reload") => self.reload().await,
            (&Method::GET, "/admin/api-keys") => {
                let query = req.uri().query().map(str::to_string);
                self.list_api_keys(query.as_deref()).await?
            }
            (&Method::POST, "/admin/api-keys") => self.make_api_key(req).await?,
            (&Method::GET, "/admin/oauth2-clients") => {
                let query = req.uri().query().map(str::to_string);
                self.list_oauth2_clients(query.as_deref()).await?
            }
            (&Method::DELETE, "/admin/sessions") => {
                let query = req.uri().query().map(str::to_string);
                self.end_sessions(query.as_deref()).await?
            }
            (&Method::GET, path) if consents::user_path(path).is_some() => {
                let (issuer, login) = consents::user_path(path).expect("matched");
                self.list_consents(&issuer, &login).await?
            }
            (&Method::DELETE, path) if consents::user_path(path).is_some() => {
                let (issuer, login) = consents::user_path(path).expect("matched");
                let query = req.uri().query().map(str::to_string);
                self.delete_consents(&issuer, &login, query.as_deref())
                    .await?
            }
            (&Method::DELETE, path) if factors::factors_path(path).is_some() => {
                let (issuer, login) = factors::factors_path(path).expect("matched");
                self.reset_factors(&issuer, &login).await?
            }
            (&Method::DELETE, path) if oauth2_clients::client_path(path).is_some() => {
                let (issuer, id) = oauth2_clients::client_path(path).expect("matched");
                self.delete_oauth2_client(&issuer, &id).await?
            }
            (method, path) => match (method, api_keys::KeyPath::of(path)) {
                (&Method::DELETE, Some(api_keys::KeyPath::Key(id))) => {
                    let id = id.to_string();
                    self.revoke_api_key(&id).await?
                }
                (&Method::POST, Some(api_keys::KeyPath::Rotate(id))) => {
                    let id = id.to_string();
                    self.rotate_api_key(&id, req).await?
                }
                _ => return Err(AdminError::MethodNotAllowed(allowed)),
            },
        })
    }

    fn refresh_gauges(&self) {
        self.shared.external.refresh_gauges();
        let metrics = &self.shared.metrics;
        for g in &self.shared.live.load().upstreams {
            let name = [g.config.name.as_str()];
            metrics
                .upstream_healthy
                .with_label_values(&name)
                .set(g.healthy_count() as i64);
            metrics
                .upstream_servers
                .with_label_values(&name)
                .set(g.servers().len() as i64);
        }
    }

    /// Ready when the listeners are up, the store is reachable (or
    /// fail-static), every external issuer has keys (or has had its time
    /// to get them) and every upstream that `gates_readiness` has a
    /// healthy server; degraded while the store, a user store or another
    /// upstream is down. An upstream's health is its routes' business:
    /// one dead upstream must not take every instance out at once.
    fn readyz(&self) -> Reply {
        let started = self.started.load(Ordering::Acquire);
        let live = self.shared.live.load();
        let upstreams: serde_json::Map<String, serde_json::Value> = live
            .upstreams
            .iter()
            .map(|g| (g.config.name.clone(), json!(g.healthy_count())))
            .collect();
        let gates_healthy = live
            .upstreams
            .iter()
            .filter(|g| g.config.gates_readiness)
            .all(|g| g.healthy_count() > 0);
        let all_healthy = live.upstreams.iter().all(|g| g.healthy_count() > 0);
        let (keys_ready, keys_held) = self.shared.external.readiness();
        let keys_held: serde_json::Map<String, serde_json::Value> = keys_held
            .into_iter()
            .map(|(name, n)| (name, json!(n)))
            .collect();
        let store_reachable = self.shared.store.reachable();
        // Fail-static keeps serving through a store outage: taking every
        // instance out of the load balancer would turn it into a full outage.
        let serving = store_reachable || live.settings.on_outage == OutagePolicy::FailStatic;
        let ready = started && gates_healthy && serving && keys_ready;
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        // A user store down stops logins, not the tokens already issued.
        let user_stores: serde_json::Map<String, serde_json::Value> = live
            .issuers()
            .iter()
            .filter_map(|i| Some((i.config.name.clone(), i.user_store.as_ref()?.reachable())))
            .map(|(name, up)| (name, json!(if up { "reachable" } else { "unreachable" })))
            .collect();
        let users_reachable = user_stores.values().all(|v| v == "reachable");
        let state = match (ready, store_reachable && users_reachable && all_healthy) {
            (false, _) => "not_ready",
            (true, false) => "degraded",
            (true, true) => "ready",
        };
        let mut body = json!({
            "status": state,
            "ready": ready,
            "listening": started,
            "store": if store_reachable { "reachable" } else { "unreachable" },
            "healthy_servers": upstreams,
            "external_issuer_keys": keys_held,
            "user_stores": user_stores,
        });
        if let Some(master) = self.shared.store.master() {
            body["store_master"] = json!(master);
        }
        json_reply(status, body)
    }

    fn require_admin_token(&self, req: &Request<Incoming>) -> Result<(), AdminError> {
        let Some(expected) = &self.token else {
            return Err(AdminError::Disabled {
                token_env: self.token_env.clone(),
            });
        };
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        match bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            true => Ok(()),
            false => Err(AdminError::Unauthorized),
        }
    }

    async fn revoke(&self, req: Request<Incoming>) -> Result<Reply, AdminError> {
        let request: RevokeRequest = read_json(req).await?;
        let kind = request.kind();
        let revoked = match &request.token {
            // Not a JWT: a refresh token. It goes, and so does every token minted with it.
            Some(t) if !t.contains('.') => self.refresh_revocations(t).await?,
            _ => vec![self.revocation_for(request)?],
        };
        // Durable first: a revocation is acknowledged only once it survives a crash.
        self.shared.store.add_revocations(&revoked).await?;
        for r in &revoked {
            self.shared.revocations.apply(r);
        }
        self.shared
            .metrics
            .revocations
            .with_label_values(&[kind])
            .inc();
        tracing::info!(target: "portero::admin", kind, count = revoked.len(), "revoked");
        Ok(json_reply(StatusCode::OK, json!({ "revoked": revoked })))
    }

    /// Deletes a refresh token and names the access and content tokens minted with it.
    async fn refresh_revocations(&self, token: &str) -> Result<Vec<Revocation>, AdminError> {
        let hash = crate::tokens::sha256_base64url(token);
        match self.shared.store.delete_refresh(&hash).await {
            Ok(Some(record)) => Ok(record
                .tokens
                .into_iter()
                .map(|(jti, exp)| Revocation::Jti {
                    jti,
                    expires_at: Some(exp),
                })
                .collect()),
            Ok(None) => Err(RevocationRefused::NoSuchRefreshToken.into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Re-reads the config file and swaps in its routes, strip rules, keys,
    /// upstream groups and request-path settings at once: unchanged groups
    /// keep their connections and health, and requests in flight finish on
    /// the groups they began on. Keys that only a restart applies are named
    /// in the answer, a WARN line and `portero_config_restart_required`. A
    /// config that does not load leaves the running one untouched. Asked by
    /// `POST /admin/reload` and by SIGHUP; counted and logged either way.
    pub async fn reload(&self) -> Reply {
        let result = self.apply_config().await;
        let label = if result.is_ok() { "ok" } else { "error" };
        let metrics = &self.shared.metrics;
        metrics.config_reloads.with_label_values(&[label]).inc();
        let path = self.config_path.display();
        match result {
            Ok((routes, restart_required)) => {
                tracing::info!(target: "portero::admin", %path, routes, "config reloaded");
                metrics
                    .config_restart_required
                    .set(i64::from(!restart_required.is_empty()));
                if !restart_required.is_empty() {
                    let keys = restart_required.join(", ");
                    tracing::warn!(target: "portero::admin", %path, %keys, "these keys take effect only after a restart");
                }
                json_reply(
                    StatusCode::OK,
                    json!({ "reloaded": true, "routes": routes, "restart_required": restart_required }),
                )
            }
            Err(e) => {
                tracing::warn!(target: "portero::admin", %path, error = %e, "config not reloaded; the running one stays");
                admin_error_response(&AdminError::Reload(e))
            }
        }
    }

    /// Loads the config file and swaps it in; the number of routes and the
    /// keys that need a restart, or the status and message of why not.
    async fn apply_config(&self) -> Result<(usize, Vec<String>), ReloadError> {
        // Off the side runtime: a long file must not hold up the admin
        // API and the built-in upstreams while it is checked.
        let path = self.config_path.clone();
        let config = tokio::task::spawn_blocking(move || crate::config::load(&path))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        let running = self.shared.live.load_full();
        let metrics = &self.shared.metrics;
        let external = &self.shared.external;
        let handles = Handles {
            revocations: &self.shared.revocations,
            api_keys: &self.shared.api_keys,
            store: self.shared.store.as_ref(),
            external,
            metrics,
            echo: &[],
        };
        let live = Live::assemble(&config, &handles, Some(&running)).await?;
        // Only once nothing else can refuse the config: the running
        // snapshot's issuers stay with the registry until then.
        external.sync(&config)?;
        for gone in &running.upstreams {
            if !config.upstreams.iter().any(|u| u.name == gone.config.name) {
                let name = [gone.config.name.as_str()];
                let _ = metrics.upstream_healthy.remove_label_values(&name);
                let _ = metrics.upstream_servers.remove_label_values(&name);
            }
        }
        self.shared.live.store(Arc::new(live));
        // The registry's keys now: none yet for a new or changed issuer,
        // and any fetched while the snapshot was built.
        self.shared.live.load().refresh_external_keys(external);
        Ok((
            config.routes.len(),
            crate::config::restart_required(&self.running, &config),
        ))
    }

    fn revocation_for(&self, r: RevokeRequest) -> Result<Revocation, RevocationRefused> {
        match r {
            RevokeRequest {
                jti: Some(jti),
                token: None,
                sub: None,
                issuer: None,
                expires_at,
            } => {
                if jti.is_empty() {
                    return Err(RevocationRefused::EmptyJti);
                }
                Ok(Revocation::Jti { jti, expires_at })
            }
            RevokeRequest {
                token: Some(token),
                jti: None,
                sub: None,
                issuer: None,
                expires_at: None,
            } => {
                let verified = self
                    .shared
                    .live
                    .load()
                    .validator
                    .verify(&token)
                    .map_err(RevocationRefused::NotAccepted)?;
                let jti = verified.revocation_id().ok_or(RevocationRefused::NoJti)?;
                Ok(Revocation::Jti {
                    jti: jti.to_string(),
                    expires_at: verified.exp,
                })
            }
            RevokeRequest {
                sub: Some(sub),
                issuer: Some(issuer),
                jti: None,
                token: None,
                expires_at: None,
            } => {
                let live = self.shared.live.load();
                let keys = live.validator.keys();
                let index = keys
                    .issuer_index(&issuer)
                    .ok_or(RevocationRefused::NoSuchIssuer(issuer))?;
                // Tokens issued within the current second are revoked too.
                let now = self.shared.clock.unix();
                Ok(Revocation::Subject {
                    iss: keys.issuers[index].iss.clone(),
                    sub,
                    before: now + 1,
                })
            }
            _ => Err(RevocationRefused::Ambiguous),
        }
    }
}
