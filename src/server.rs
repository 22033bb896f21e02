//! Assembles a gateway from a validated config and runs it: the key and
//! revocation caches, the upstream groups, the public listeners on their own
//! runtime (`server.threads` workers), and a side runtime for the admin
//! listener, the health checks and the built-in echo upstream. Stops on
//! SIGTERM (gracefully) or SIGINT (at once).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::admin::Admin;
use crate::auth::revocation::Revocations;
use crate::config::{Config, ServerSettings, StoreBackend, UpstreamKind};
use crate::connections::{Connections, Limits};
use crate::listener::Serving;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::proxy::{Gateway, Shared};
use crate::store::Store;
use crate::upstream::UpstreamGroup;

/// Runs the gateway until SIGTERM or SIGINT. Must not be called from inside
/// a tokio runtime: it builds its own.
pub fn run(config: Config) -> anyhow::Result<()> {
    // The side runtime serves the admin listener, the built-in upstreams and
    // the store's background work; start-up store calls run on it too.
    let side = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portero-side")
        .enable_all()
        .build()
        .context("cannot start the admin runtime")?;
    let metrics = Metrics::new(&config);
    let limits = &config.server.limits;
    let serving = |connections, tls, trusted_proxies| {
        Arc::new(Serving {
            connections,
            tls,
            tls_handshake_timeout: limits.tls_handshake_timeout,
            max_header_size: limits.max_header_size,
            trusted_proxies,
        })
    };
    let connection_limits = |max_connections| Limits {
        header_timeout: limits.header_timeout,
        idle_timeout: limits.idle_timeout,
        max_connections,
    };
    let admin_connections = Connections::new(
        connection_limits(config.admin.max_connections),
        metrics.connection_series("admin"),
    );
    let public_max = limits.max_connections.unwrap_or_else(|| {
        crate::connections::default_max_connections(config.admin.max_connections)
    });
    tracing::info!(max_connections = public_max, "public connection limit");
    let public_connections = Connections::new(
        connection_limits(public_max),
        metrics.connection_series("public"),
    );
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
    let live = side.block_on(Live::build(&config, &revocations, store.as_ref(), &metrics))?;
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
        body_timeout: config.server.limits.body_timeout,
        access_log: config.server.access_log,
        paths: config.server.paths,
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
    side.spawn(crate::admin::serve(
        admin_listener,
        admin,
        serving(admin_connections, None, Vec::new()),
    ));
    side.spawn(purge_expired(revocations, store, config.auth.leeway));

    // Bound now, like the admin listener, so a port in use fails the start.
    let mut public = Vec::new();
    for l in &config.listeners {
        let listener = std::net::TcpListener::bind(l.addr)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .with_context(|| format!("listen: cannot listen on {}", l.addr))?;
        let tls = match &l.tls {
            None => None,
            Some(files) => Some(
                crate::listener::tls_acceptor(files)
                    .with_context(|| format!("listen {}: TLS", l.addr))?,
            ),
        };
        tracing::info!(addr = %l.addr, tls = tls.is_some(), "public listener");
        let trusted = config.server.trusted_proxies.clone();
        public.push((listener, serving(public_connections.clone(), tls, trusted)));
    }

    let threads = config.server.threads;
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    }
    .thread_name("portero-worker")
    .enable_all()
    .build()
    .context("cannot start the proxy runtime")?;
    let gateway = Arc::new(Gateway::new(shared));
    let result = runtime.block_on(serve(public, gateway, started, &config.server));
    // The side runtime may not block this thread's exit.
    side.shutdown_background();
    runtime.shutdown_background();
    result
}

/// Serves the public listeners until a signal: SIGINT stops at once; SIGTERM
/// reports not ready, keeps serving for the grace period (so load balancers
/// notice), then stops accepting and gives open requests the shutdown
/// timeout to finish.
async fn serve(
    public: Vec<(std::net::TcpListener, Arc<Serving>)>,
    gateway: Arc<Gateway>,
    ready: Arc<AtomicBool>,
    settings: &ServerSettings,
) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (stop, stopped) = watch::channel(false);
    for (listener, serving) in public {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(crate::listener::accept(
            listener,
            serving,
            gateway.clone(),
            stopped.clone(),
        ));
    }
    drop(stopped);
    ready.store(true, Ordering::Release);

    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => return Ok(()),
    }
    ready.store(false, Ordering::Release);
    tracing::info!(grace_period = ?settings.grace_period, "SIGTERM: not ready; draining");
    tokio::select! {
        () = tokio::time::sleep(settings.grace_period) => {}
        _ = interrupt.recv() => return Ok(()),
    }
    let _ = stop.send(true);
    tokio::select! {
        () = stop.closed() => tracing::info!("every connection finished; stopping"),
        () = tokio::time::sleep(settings.shutdown_timeout) => {
            tracing::warn!(shutdown_timeout = ?settings.shutdown_timeout, "connections still open at the shutdown timeout; stopping");
        }
        _ = interrupt.recv() => {}
    }
    Ok(())
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

/// Drops jti revocations once the tokens they name would have expired
/// anyway, and lockout counters past their time.
async fn purge_expired(revocations: Arc<Revocations>, store: Arc<dyn Store>, leeway: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let cutoff = now - leeway.as_secs() as i64;
        revocations.purge_expired(cutoff);
        if let Err(e) = store.purge_expired(cutoff).await {
            tracing::warn!(error = %e, "could not purge expired revocations and lockout counters from the store");
        }
    }
}
