//! Assembles a gateway from a validated config and runs it: the key and
//! revocation caches, the upstream groups, the Pingora proxy services, and a
//! side runtime for the admin listener, the health checks and the built-in
//! echo upstream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};

use crate::admin::Admin;
use crate::auth::keys;
use crate::auth::revocation::Revocations;
use crate::auth::validate::Validator;
use crate::config::{Config, StoreBackend, UpstreamKind};
use crate::metrics::Metrics;
use crate::proxy::{Gateway, Live, Shared};
use crate::routes::RouteTable;
use crate::store::Store;
use crate::upstream::UpstreamGroup;

/// Runs the gateway until `shutdown` fires. Must not be called from inside a
/// tokio runtime: Pingora builds its own.
pub fn run(config: Config, shutdown: Box<dyn ShutdownSignalWatch>) -> anyhow::Result<()> {
    // The side runtime serves the admin listener, the built-in upstreams and
    // the store's background work; start-up store calls run on it too.
    let side = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portero-side")
        .enable_all()
        .build()
        .context("cannot start the admin runtime")?;
    let metrics = Metrics::new(&config);
    let store = side
        .block_on(crate::store::open(&config, metrics.store.clone()))
        .with_context(|| match &config.store.backend {
            StoreBackend::Embedded => {
                format!("server.data_dir: {}", config.server.data_dir.display())
            }
            StoreBackend::Redis(r) => format!("store.url: {}", r.url),
        })?;
    // Every revocation is in memory before the first request is served.
    let revocations = Arc::new(Revocations::default());
    for r in side.block_on(store.revocations())? {
        revocations.apply(&r);
    }
    let live = side.block_on(build_live(&config, &revocations, store.as_ref()))?;
    {
        let (store, revocations) = (store.clone(), revocations.clone());
        side.spawn(async move { store.follow_revocations(revocations).await });
    }

    // Built-in upstreams and the admin listener are bound now, so a port in
    // use fails the start instead of a later request.
    let mut upstreams = Vec::new();
    for u in &config.upstreams {
        let servers = match &u.kind {
            UpstreamKind::Servers(list) => list.clone(),
            UpstreamKind::Echo { listen } => {
                let listener = bind(&side, *listen)
                    .with_context(|| format!("upstreams.{}: cannot listen on {listen}", u.name))?;
                let addr = listener.local_addr()?;
                side.spawn(crate::echo::serve(listener));
                tracing::info!(upstream = %u.name, %addr, "built-in echo upstream listening");
                vec![addr]
            }
        };
        let group = UpstreamGroup::new(u.clone(), servers);
        if let Some(checks) = group.health_checks() {
            side.spawn(checks);
        }
        upstreams.push(group);
    }

    let shared = Arc::new(Shared {
        live: ArcSwap::from_pointee(live),
        revocations: revocations.clone(),
        store: store.clone(),
        on_outage: config.store.on_outage,
        upstreams,
        metrics,
        max_body_size: config.server.max_body_size,
        access_log: config.server.access_log,
    });

    let started = Arc::new(AtomicBool::new(false));
    let admin_token = std::env::var(&config.admin.token_env)
        .ok()
        .filter(|t| !t.is_empty());
    if admin_token.is_none() {
        tracing::warn!(
            "{} is not set: the admin API (/admin/...) will refuse every request with 503",
            config.admin.token_env
        );
    }
    let admin = Arc::new(Admin {
        shared: shared.clone(),
        started: started.clone(),
        token: admin_token,
        token_env: config.admin.token_env.clone(),
        config_path: config.source.clone(),
        upstreams: config.upstreams.clone(),
    });
    let admin_listener = bind(&side, config.admin.listen)
        .with_context(|| format!("admin.listen: cannot listen on {}", config.admin.listen))?;
    tracing::info!(addr = %admin_listener.local_addr()?, "admin listening");
    side.spawn(crate::admin::serve(admin_listener, admin));
    side.spawn(purge_revocations(revocations, store, config.auth.leeway));

    let mut server = Server::new_with_opt_and_conf(None, server_conf(&config));
    server.bootstrap();
    let mut proxy_handles = Vec::new();
    for tls in [false, true] {
        let listeners: Vec<_> = config
            .listeners
            .iter()
            .filter(|l| l.tls.is_some() == tls)
            .collect();
        if listeners.is_empty() {
            continue;
        }
        let gateway = Gateway {
            shared: shared.clone(),
            tls,
        };
        let name = if tls { "portero https" } else { "portero http" };
        let mut service =
            pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, name);
        for l in listeners {
            let addr = l.addr.to_string();
            match &l.tls {
                None => service.add_tcp(&addr),
                Some(files) => {
                    let mut settings = TlsSettings::intermediate(
                        &files.cert.to_string_lossy(),
                        &files.key.to_string_lossy(),
                    )
                    .map_err(|e| anyhow::anyhow!("listen {addr}: TLS: {e}"))?;
                    settings.enable_h2();
                    service.add_tls_with_settings(&addr, None, settings);
                }
            }
            tracing::info!(%addr, tls, "public listener");
        }
        proxy_handles.push(server.add_service(service));
    }
    let ready = server.add_service(background_service("readiness", ReadyFlag(started)));
    ready.add_dependencies(&proxy_handles);

    server.run(RunArgs {
        shutdown_signal: shutdown,
    });
    // Pingora has stopped; the side runtime may not block this thread's exit.
    side.shutdown_background();
    Ok(())
}

/// The parts of a config that a reload replaces: routes, strip rules, keys
/// (with a fresh verified-token cache).
pub async fn build_live(
    config: &Config,
    revocations: &Arc<Revocations>,
    store: &dyn Store,
) -> Result<Live, keys::KeyError> {
    Ok(Live {
        routes: RouteTable::new(config.routes.clone()),
        validator: Validator::new(
            keys::load(config, store).await?,
            revocations.clone(),
            config.auth.verified_cache_size,
            config.auth.leeway.as_secs(),
        ),
        auth: config.auth.clone(),
        issuers: config.issuers.clone(),
    })
}

fn server_conf(config: &Config) -> ServerConf {
    let s = &config.server;
    // Each instance gets its own pid file and upgrade socket, so several can
    // run on one machine.
    let run_dir = s.data_dir.join("run");
    let _ = std::fs::create_dir_all(&run_dir);
    ServerConf {
        threads: s.threads,
        grace_period_seconds: Some(s.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(s.shutdown_timeout.as_secs()),
        pid_file: run_dir.join("portero.pid").to_string_lossy().into_owned(),
        upgrade_sock: run_dir.join("upgrade.sock").to_string_lossy().into_owned(),
        ..ServerConf::default()
    }
}

fn bind(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
) -> std::io::Result<tokio::net::TcpListener> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let _guard = rt.enter();
    tokio::net::TcpListener::from_std(std_listener)
}

/// Drops jti revocations once the tokens they name would have expired anyway.
async fn purge_revocations(revocations: Arc<Revocations>, store: Arc<dyn Store>, leeway: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let cutoff = now - leeway.as_secs() as i64;
        revocations.purge_expired(cutoff);
        if let Err(e) = store.purge_revocations(cutoff).await {
            tracing::warn!(error = %e, "could not purge expired revocations from the store");
        }
    }
}

/// Started by Pingora after the proxy services (so after every listener is
/// bound); marks the gateway ready until shutdown begins.
struct ReadyFlag(Arc<AtomicBool>);

#[async_trait]
impl BackgroundService for ReadyFlag {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.0.store(true, Ordering::Release);
        let _ = shutdown.changed().await;
        self.0.store(false, Ordering::Release);
    }
}
