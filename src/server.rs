//! Assembles a gateway from a validated config and its bound listeners, and
//! runs it: the key and revocation caches, the upstream groups, the public
//! listeners on their own runtime (`server.threads` workers), and a side
//! runtime for the admin listener, the health checks and the built-in echo
//! upstream, until it is told to [`Stop`].

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};

use crate::admin::Admin;
use crate::auth::keys::KeyError;
use crate::auth::revocation::Revocations;
use crate::clock;
use crate::config::{Config, ServerSettings, StoreBackend, UpstreamKind};
use crate::connections::{Connections, ListenerLimits};
use crate::limits::ClientShare;
use crate::listener::Serving;
pub use crate::listener::TlsError;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::proxy::{Gateway, GatewayState};
use crate::span_export::Spans;
use crate::store::{Store, StoreError};

/// Why the gateway could not start or run. Where there is an underlying
/// error it is the `source`, not repeated in the message: the command
/// prints the whole chain once.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{key}: cannot listen on {addr}")]
    Bind {
        key: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("listen {addr}: TLS")]
    Tls { addr: SocketAddr, source: TlsError },
    #[error("cannot start the {which} runtime")]
    Runtime {
        which: &'static str,
        source: std::io::Error,
    },
    #[error("{target}")]
    Store { target: String, source: StoreError },
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
    #[error("signals: {0}")]
    Signals(std::io::Error),
    #[error("{0}")]
    ExternalIssuer(String),
    #[error("tracing.otlp_endpoint: {0}")]
    SpanExport(String),
    #[error("{0}")]
    UserStore(crate::principals::OpenError),
    #[error("{0}")]
    Shadow(String),
}

/// The gateway's sockets, bound before it runs (so a port in use fails the
/// start, and a test can bind port 0 and read the port back).
pub struct Listeners {
    /// In the order of the config's `[[listen]]` tables.
    pub public: Vec<TcpListener>,
    pub admin: TcpListener,
    /// Each built-in echo upstream's, in the order of `config.upstreams`.
    pub echo: Vec<TcpListener>,
}

impl Listeners {
    /// Binds every address the config names.
    pub fn bind(config: &Config) -> Result<Listeners, ServerError> {
        let bind = |key: String, addr: SocketAddr| {
            TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| ServerError::Bind { key, addr, source })
        };
        let public = config
            .listeners
            .iter()
            .map(|l| bind("listen".into(), l.addr))
            .collect::<Result<_, _>>()?;
        let admin = bind("admin.listen".into(), config.admin.listen)?;
        let mut echo = Vec::new();
        for u in &config.upstreams {
            if let UpstreamKind::Echo { listen } = &u.kind {
                echo.push(bind(format!("upstreams.{}", u.name), *listen)?);
            }
        }
        Ok(Listeners {
            public,
            admin,
            echo,
        })
    }
}

/// How a running gateway is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Report not ready, keep serving for the grace period (so load
    /// balancers notice), then stop accepting and give open requests the
    /// shutdown timeout to finish.
    Drain,
    /// Stop at once, also in the middle of a drain.
    Now,
}

/// What the process's signals ask of a running gateway.
pub struct Signals {
    pub stop: mpsc::UnboundedReceiver<Stop>,
    /// One message per SIGHUP: reload the config (as `POST /admin/reload`).
    pub reload: mpsc::UnboundedReceiver<()>,
}

/// SIGTERM as [`Stop::Drain`], SIGINT as [`Stop::Now`], SIGHUP as a reload,
/// forwarded by a thread of their own; the handlers are in place when this
/// returns (so a SIGHUP during start-up is a reload, not the end).
pub fn handle_signals() -> Result<Signals, ServerError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = mpsc::unbounded_channel();
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let (registered, result) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("portero-signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return drop(registered.send(Err(e))),
            };
            runtime.block_on(async move {
                let handlers = signal(SignalKind::terminate()).and_then(|t| {
                    Ok((
                        t,
                        signal(SignalKind::interrupt())?,
                        signal(SignalKind::hangup())?,
                    ))
                });
                let (mut terminate, mut interrupt, mut hangup) = match handlers {
                    Ok(h) => h,
                    Err(e) => return drop(registered.send(Err(e))),
                };
                let _ = registered.send(Ok(()));
                loop {
                    let stop = tokio::select! {
                        _ = terminate.recv() => Stop::Drain,
                        _ = interrupt.recv() => Stop::Now,
                        _ = hangup.recv() => {
                            let _ = reload_tx.send(());
                            continue;
                        }
                    };
                    if tx.send(stop).is_err() {
                        return;
                    }
                }
            })
        })
        .map_err(ServerError::Signals)?;
    match result.recv() {
        Ok(Ok(())) => Ok(Signals {
            stop: rx,
            reload: reload_rx,
        }),
        Ok(Err(e)) => Err(ServerError::Signals(e)),
        Err(_) => Err(ServerError::Signals(std::io::Error::other(
            "signal thread ended",
        ))),
    }
}

/// Runs the gateway on `listeners` until `signals.stop` says so (or every
/// sender of it is gone, as [`Stop::Now`]), reloading its config at each
/// `signals.reload`. Must not be called from inside a tokio runtime: it
/// builds its own.
pub fn run(config: Config, listeners: Listeners, signals: Signals) -> Result<(), ServerError> {
    let Signals { stop, mut reload } = signals;
    let runtime_error = |which| move |source| ServerError::Runtime { which, source };
    // The side runtime serves the admin listener, the built-in upstreams and
    // the store's background work; start-up store calls run on it too.
    let side = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portero-side")
        .enable_all()
        .build()
        .map_err(runtime_error("admin"))?;
    let metrics = Metrics::new(&config);
    let limits = &config.server.limits;
    let serving = |connections, tls, proxy_protocol| {
        Arc::new(Serving {
            connections,
            tls,
            tls_handshake_timeout: limits.tls_handshake_timeout,
            header_timeout: limits.header_timeout,
            max_header_size: limits.max_header_size,
            proxy_protocol,
        })
    };
    let connection_limits = |max_connections, max_per_ip| ListenerLimits {
        header_timeout: limits.header_timeout,
        idle_timeout: limits.idle_timeout,
        max_connections,
        max_per_ip,
    };
    let admin_connections = Connections::new(
        connection_limits(config.admin.max_connections, usize::MAX),
        metrics.connection_series("admin"),
    );
    let public_max = limits.max_connections.unwrap_or_else(|| {
        crate::connections::default_max_connections(config.admin.max_connections)
    });
    let per_ip = limits
        .max_connections_per_ip
        .unwrap_or((public_max / 10).max(16));
    tracing::info!(
        max_connections = public_max,
        max_connections_per_ip = per_ip,
        "public connection limit"
    );
    let public_connections = Connections::new(
        connection_limits(public_max, per_ip),
        metrics.connection_series("public"),
    );
    let store_error = |source| ServerError::Store {
        target: match &config.store.backend {
            StoreBackend::Embedded => {
                format!("server.data_dir: {}", config.server.data_dir.display())
            }
            StoreBackend::Redis(r) => r.target.to_string(),
        },
        source,
    };
    let store = side
        .block_on(crate::store::open(&config, metrics.store.clone()))
        .map_err(store_error)?;
    // Every revocation is in memory before the first request is served.
    let revocations = Arc::new(Revocations::default());
    for r in side.block_on(store.revocations()).map_err(store_error)? {
        revocations.apply(&r);
    }
    let mut echo = Vec::new();
    let echo_upstreams = config
        .upstreams
        .iter()
        .filter(|u| matches!(u.kind, UpstreamKind::Echo { .. }));
    for (u, listener) in echo_upstreams.zip(listeners.echo) {
        let addr = local_addr(&listener);
        let listener = on_runtime(&side, listener, "upstreams")?;
        side.spawn(crate::echo::serve(listener));
        tracing::info!(upstream = %u.name, %addr, "built-in echo upstream listening");
        echo.push((u.name.clone(), addr));
    }
    // Upstream groups are built on the side runtime: their DNS and health
    // tasks run there.
    let upstreams = side.block_on(crate::upstream::groups(&config, &[], &echo, &metrics))?;
    // External issuers' keys are fetched on the side runtime too.
    let external = crate::jwks::Registry::new(metrics.jwks.clone());
    // Subscribed before the first fetch can publish: keys that arrive while
    // the snapshot is built still reach it (an unchanged set is never
    // published again).
    let mut external_changes = external.subscribe();
    side.block_on(async { external.sync(&config) })
        .map_err(ServerError::ExternalIssuer)?;
    let user_stores = side
        .block_on(crate::principals::open(
            &config,
            &revocations,
            &metrics.legacy_hashes,
        ))
        .map_err(ServerError::UserStore)?;
    // Comparisons with a legacy service run on the side runtime.
    let shadows = {
        let _on_side = side.enter();
        crate::shadow::for_issuers(&config, &metrics.shadow_comparisons)
            .map_err(ServerError::Shadow)?
    };
    let live = side.block_on(Live::build(
        &config,
        upstreams,
        user_stores,
        shadows,
        &revocations,
        store.as_ref(),
        &external,
        &metrics,
        None,
    ))?;
    {
        let (store, revocations) = (store.clone(), revocations.clone());
        side.spawn(async move { store.follow_revocations(revocations).await });
    }

    let spans = match &config.span_export {
        Some(settings) => Some({
            let _on_side = side.enter();
            Spans::start(settings, metrics.trace_spans.clone()).map_err(ServerError::SpanExport)?
        }),
        None => None,
    };
    let client_share = ClientShare::new(
        limits
            .max_requests_per_ip
            .unwrap_or((public_max / 10).max(64)),
        &metrics,
    );
    let shared = Arc::new(GatewayState {
        live: ArcSwap::from_pointee(live),
        revocations: revocations.clone(),
        store: store.clone(),
        metrics,
        client_share,
        clock: clock::Clock::system(),
        external,
        spans,
    });
    {
        let shared = shared.clone();
        side.spawn(async move {
            while external_changes.changed().await.is_ok() {
                shared.live.load().refresh_external_keys(&shared.external);
            }
        });
    }

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
    // Keys a reload cannot apply are told by comparing with this: the
    // config as started, its listeners where they were bound (port 0 is
    // whatever port was given).
    let mut running = config.clone();
    for (l, listener) in running.listeners.iter_mut().zip(&listeners.public) {
        l.addr = local_addr(listener);
    }
    running.admin.listen = local_addr(&listeners.admin);
    let admin = Arc::new(Admin {
        shared: shared.clone(),
        started: started.clone(),
        token: admin_token,
        token_env: config.admin.token_env.clone(),
        config_path: config.source.clone(),
        running,
    });
    {
        let admin = admin.clone();
        side.spawn(async move {
            while reload.recv().await.is_some() {
                tracing::info!(target: "portero::admin", "SIGHUP: reloading the config");
                admin.reload().await;
            }
        });
    }
    tracing::info!(addr = %local_addr(&listeners.admin), "admin listening");
    let admin_listener = on_runtime(&side, listeners.admin, "admin.listen")?;
    side.spawn(crate::admin::serve(
        admin_listener,
        admin,
        serving(admin_connections, None, false),
    ));
    side.spawn(purge_expired(revocations, store, config.auth.leeway));

    let mut public = Vec::new();
    for (l, listener) in config.listeners.iter().zip(listeners.public) {
        let tls =
            match &l.tls {
                None => None,
                Some(files) => Some(crate::listener::tls_acceptor(files).map_err(|source| {
                    ServerError::Tls {
                        addr: l.addr,
                        source,
                    }
                })?),
            };
        tracing::info!(addr = %local_addr(&listener), tls = tls.is_some(), "public listener");
        let serving = serving(public_connections.clone(), tls, l.proxy_protocol);
        public.push((listener, serving));
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
    .map_err(runtime_error("proxy"))?;
    let spans = shared.spans.clone();
    let gateway = Arc::new(Gateway::new(shared));
    let result = runtime.block_on(serve(public, gateway, started, &config.server, stop));
    if let Some(spans) = spans {
        // The last requests' spans, unless the collector is slow to take them.
        side.block_on(spans.flush(Duration::from_secs(1)));
    }
    // The side runtime may not block this thread's exit.
    side.shutdown_background();
    runtime.shutdown_background();
    result
}

/// Serves the public listeners until told to stop.
async fn serve(
    public: Vec<(TcpListener, Arc<Serving>)>,
    gateway: Arc<Gateway>,
    ready: Arc<AtomicBool>,
    settings: &ServerSettings,
    mut stop: mpsc::UnboundedReceiver<Stop>,
) -> Result<(), ServerError> {
    let (drain, draining) = watch::channel(false);
    for (listener, serving) in public {
        let addr = local_addr(&listener);
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| ServerError::Bind {
                key: "listen".into(),
                addr,
                source,
            })?;
        tokio::spawn(crate::listener::accept(
            listener,
            serving,
            gateway.clone(),
            draining.clone(),
        ));
    }
    drop(draining);
    ready.store(true, Ordering::Release);

    if stop.recv().await != Some(Stop::Drain) {
        return Ok(());
    }
    ready.store(false, Ordering::Release);
    tracing::info!(grace_period = ?settings.grace_period, "draining: not ready");
    tokio::select! {
        () = tokio::time::sleep(settings.grace_period) => {}
        _ = stop.recv() => return Ok(()),
    }
    let _ = drain.send(true);
    tokio::select! {
        () = drain.closed() => tracing::info!("every connection finished; stopping"),
        () = tokio::time::sleep(settings.shutdown_timeout) => {
            tracing::warn!(shutdown_timeout = ?settings.shutdown_timeout, "connections still open at the shutdown timeout; stopping");
        }
        _ = stop.recv() => {}
    }
    Ok(())
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// A bound listener, registered with `rt`'s reactor.
fn on_runtime(
    rt: &tokio::runtime::Runtime,
    listener: TcpListener,
    key: &str,
) -> Result<tokio::net::TcpListener, ServerError> {
    let addr = local_addr(&listener);
    let _guard = rt.enter();
    tokio::net::TcpListener::from_std(listener).map_err(|source| ServerError::Bind {
        key: key.into(),
        addr,
        source,
    })
}

/// Drops jti revocations once the tokens they name would have expired
/// anyway, and lockout counters past their time.
async fn purge_expired(revocations: Arc<Revocations>, store: Arc<dyn Store>, leeway: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let cutoff = clock::unix_now() - leeway.as_secs() as i64;
        revocations.purge_expired(cutoff);
        if let Err(e) = store.purge_expired(cutoff).await {
            tracing::warn!(error = %e, "could not purge expired revocations and lockout counters from the store");
        }
    }
}
