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
use crate::auth::revocation::Revocations;
use crate::clock;
use crate::config::{Config, ServerSettings, StoreBackend, UpstreamKind};
use crate::connections::{Connections, ListenerLimits};
use crate::jwks::SyncError;
use crate::limits::ClientShare;
use crate::listener::Serving;
pub use crate::listener::TlsError;
use crate::live::{AssembleError, Handles, Live};
use crate::metrics::Metrics;
use crate::proxy::{Gateway, GatewayState};
use crate::span_export::Spans;
use crate::store::{ApiKeyRecords, Feeds, Store, StoreError, Upkeep};
use crate::tls_roots::ClientError;

mod signals;

pub use signals::{handle_signals, Signals, Stop};

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
    /// The config's snapshot: upstreams, principal sources, shadows, keys.
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    #[error("signals: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    ExternalIssuer(#[from] SyncError),
    #[error("tracing.otlp_endpoint: {0}")]
    SpanExport(#[from] ClientError),
}

/// The gateway's sockets, bound before it runs (so a port in use fails the
/// start, and a test can bind port 0 and read the port back).
pub struct Listeners {
    /// In the order of the config's `[[listen]]` tables.
    pub public: Vec<TcpListener>,
    pub admin: TcpListener,
    /// Each built-in echo upstream's, in the order of `config.upstreams`.
    pub echo: Vec<TcpListener>,
    /// When they were bound (Unix seconds): from then a client may
    /// connect, and no earlier instance holds the ports.
    pub bound_at: i64,
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
            bound_at: crate::clock::unix_now(),
        })
    }
}

/// Runs the gateway on `listeners` until `signals.stop` says so (or every
/// sender of it is gone, as [`Stop::Now`]), reloading its config at each
/// `signals.reload`. Must not be called from inside a tokio runtime: it
/// builds its own.
pub fn run(config: Config, listeners: Listeners, signals: Signals) -> Result<(), ServerError> {
    let Signals { stop, reload } = signals;
    let Listeners {
        public: public_bound,
        admin: admin_listener,
        echo: echo_listeners,
        bound_at,
    } = listeners;
    // The side runtime serves the admin listener, the built-in upstreams and
    // the store's background work; start-up store calls run on it too.
    let side = runtime(1, "portero-side").map_err(runtime_error("admin"))?;
    let metrics = Metrics::new(&config);
    crate::access_log::count_drops_in(metrics.log_lines_dropped.clone());
    let limits = ConnectionLimits::of(&config, &metrics);
    let (store, revocations, api_keys, proofs) = open_store(&side, &config, &metrics, bound_at)?;
    let echo = start_echo_upstreams(&side, &config, echo_listeners)?;
    // External issuers' keys are fetched on the side runtime. Subscribed
    // before the first fetch can publish: keys that arrive while the
    // snapshot is assembled still reach it (an unchanged set is never
    // published again).
    let external = crate::jwks::Registry::new(metrics.jwks.clone());
    let external_changes = external.subscribe();
    side.block_on(async { external.sync(&config) })?;
    let handles = Handles {
        revocations: &revocations,
        api_keys: &api_keys,
        store: store.as_ref(),
        external: &external,
        metrics: &metrics,
        echo: &echo,
    };
    // Upstream groups' DNS and health tasks and the shadows' comparisons
    // run on the side runtime: assembled there.
    let live = side.block_on(Live::assemble(&config, &handles, None))?;
    {
        let feeds = Feeds {
            revocations: revocations.clone(),
            api_keys: api_keys.clone(),
        };
        let store = store.clone();
        side.spawn(async move { store.follow(feeds).await });
    }
    side.spawn(flush_api_key_uses(api_keys.clone(), store.clone()));
    if store.master().is_none() {
        side.spawn(keep_alive_claim(store.clone()));
    }
    let spans = match &config.span_export {
        Some(settings) => Some({
            let _on_side = side.enter();
            Spans::start(settings, metrics.trace_spans.clone())?
        }),
        None => None,
    };
    let client_share = ClientShare::new(limits.requests_per_ip, &metrics);
    let shared = Arc::new(GatewayState {
        live: ArcSwap::from_pointee(live),
        revocations: revocations.clone(),
        api_keys,
        store: store.clone(),
        metrics,
        client_share,
        clock: clock::Clock::system(),
        external,
        spans,
        sessions: Arc::new(crate::session::BrowserSessions::new(
            store.clone(),
            revocations.clone(),
        )),
        proofs,
    });
    side.spawn(follow_external_keys(shared.clone(), external_changes));
    let started = Arc::new(AtomicBool::new(false));
    let bound = (&public_bound[..], &admin_listener);
    let admin = Arc::new(admin(&config, bound, &shared, &started));
    side.spawn(reload_on_signal(admin.clone(), reload));
    tracing::info!(addr = %local_addr(&admin_listener), "admin listening");
    let admin_listener = on_runtime(&side, admin_listener, "admin.listen")?;
    let admin_serving = limits.serving(&config, limits.admin.clone(), None, false);
    side.spawn(crate::admin::serve(admin_listener, admin, admin_serving));
    side.spawn(purge_expired(revocations, store, config.auth.leeway));

    let public = public_listeners(&config, public_bound, &limits)?;
    let runtime =
        runtime(config.server.threads, "portero-worker").map_err(runtime_error("proxy"))?;
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

fn runtime_error(which: &'static str) -> impl Fn(std::io::Error) -> ServerError {
    move |source| ServerError::Runtime { which, source }
}

/// A runtime of `threads` workers (one: on the calling thread).
fn runtime(threads: usize, name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 1 && name == "portero-worker" {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.thread_name(name).enable_all().build()
}

/// The connection limits of the admin and public listeners, and the share
/// of requests with a body one client address may have in flight.
struct ConnectionLimits {
    admin: Arc<Connections>,
    public: Arc<Connections>,
    requests_per_ip: usize,
}

impl ConnectionLimits {
    fn of(config: &Config, metrics: &Metrics) -> ConnectionLimits {
        let limits = &config.server.limits;
        let listener_limits = |max_connections, max_per_ip| ListenerLimits {
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            max_connections,
            max_per_ip,
        };
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
        ConnectionLimits {
            admin: Connections::new(
                listener_limits(config.admin.max_connections, usize::MAX),
                metrics.connection_series("admin"),
            ),
            public: Connections::new(
                listener_limits(public_max, per_ip),
                metrics.connection_series("public"),
            ),
            requests_per_ip: limits
                .max_requests_per_ip
                .unwrap_or((public_max / 10).max(64)),
        }
    }

    /// How one listener serves its connections.
    fn serving(
        &self,
        config: &Config,
        connections: Arc<Connections>,
        tls: Option<crate::listener::ListenerTls>,
        proxy_protocol: bool,
    ) -> Arc<Serving> {
        let limits = &config.server.limits;
        Arc::new(Serving {
            connections,
            tls,
            tls_handshake_timeout: limits.tls_handshake_timeout,
            header_timeout: limits.header_timeout,
            max_header_size: limits.max_header_size,
            proxy_protocol,
        })
    }
}

/// The store, and every revocation in it, in memory before the first
/// request is served.
/// The store, the revocations and API keys read from it at start, and
/// DPoP's checking with the nonces' key it keeps.
type StoreHandles = (
    Arc<dyn Store>,
    Arc<Revocations>,
    Arc<crate::api_keys::Index>,
    Arc<crate::dpop::Proofs>,
);

/// The store and what is read from it at start; `started`, when this
/// instance's listeners were bound (DPoP proofs made before are refused).
fn open_store(
    side: &tokio::runtime::Runtime,
    config: &Config,
    metrics: &Metrics,
    started: i64,
) -> Result<StoreHandles, ServerError> {
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
        .block_on(crate::store::open(config, metrics.store.clone()))
        .map_err(store_error)?;
    let revocations = Arc::new(Revocations::default());
    for r in side.block_on(store.revocations()).map_err(store_error)? {
        revocations.apply(&r);
    }
    let api_keys = side
        .block_on(api_key_index(store.as_ref(), metrics))
        .map_err(store_error)?;
    let proofs = side
        .block_on(dpop_proofs(store.as_ref(), started))
        .map_err(store_error)?;
    Ok((store, revocations, api_keys, proofs))
}

/// Every API key's record, hashed with the key the store keeps for them
/// (made on first start, the same on every instance).
async fn api_key_index(
    store: &dyn Store,
    metrics: &Metrics,
) -> Result<Arc<crate::api_keys::Index>, StoreError> {
    let pepper = crate::store::api_key_pepper(store).await?;
    let records = store.api_keys().await?;
    Ok(Arc::new(crate::api_keys::Index::new(
        pepper,
        records,
        metrics.api_key_requests.clone(),
    )))
}

/// DPoP proofs' checking, with nonces under a key every instance shares
/// (a control character: no issuer is named so). A proof made before
/// `started` is refused: the replay cache did not see the proofs taken
/// before then. (Read when the listeners were bound, not later: a proof
/// made while the store opened was refused, though no request had been
/// served.) On a store of its own, an instance that finds an earlier
/// one's note that it runs ([`claim_alive`]) asks for its own nonce for
/// a while.
async fn dpop_proofs(
    store: &dyn Store,
    started: i64,
) -> Result<Arc<crate::dpop::Proofs>, StoreError> {
    let secret = crate::store::shared_secret(store, "\u{1}dpop-nonces", "dpop-nonces").await?;
    let shared = store.master().is_some();
    let after_another = !shared && claim_alive(store, clock::unix_now(), true).await?;
    Ok(Arc::new(crate::dpop::Proofs::new(
        &secret,
        started,
        shared,
        after_another,
    )))
}

/// An instance on a store of its own notes that it runs: it claims each
/// [`ALIVE_EVERY`] seconds' slot, held [`ALIVE_FOR`], never let go (a
/// crash at any moment leaves its last claim held). Held a minute: past
/// the DPoP proofs' [`crate::dpop::RESTART_WINDOW`] after its last claim
/// and its start-up.
const ALIVE_EVERY: i64 = 15;
const ALIVE_FOR: Duration = Duration::from_secs(60);

/// Claims the slot of `now`, and with `and_last_minute` the slots a claim
/// still held may have been made in: whether one of those was held, by
/// an earlier instance that may have taken DPoP proofs the next one
/// could be shown again.
async fn claim_alive(
    store: &dyn Store,
    now: i64,
    and_last_minute: bool,
) -> Result<bool, StoreError> {
    let slot = now.div_euclid(ALIVE_EVERY);
    let back = match and_last_minute {
        true => ALIVE_FOR.as_secs() as i64 / ALIVE_EVERY,
        false => 0,
    };
    let mut held = false;
    for slot in slot - back..=slot {
        let key = format!("\u{1}instance-alive\0{slot}");
        held |= !store.claim(&key, ALIVE_FOR).await?;
    }
    Ok(held)
}

/// Claims this slot every [`ALIVE_EVERY`] while the instance runs.
async fn keep_alive_claim(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(Duration::from_secs(ALIVE_EVERY as u64));
    loop {
        tick.tick().await;
        if let Err(e) = claim_alive(store.as_ref(), clock::unix_now(), false).await {
            tracing::warn!(error = %e, "could not note in the store that this instance runs");
        }
    }
}

/// Writes when API keys were last used to the store, once a minute: the
/// admin API's listing reads it, on every instance.
async fn flush_api_key_uses(api_keys: Arc<crate::api_keys::Index>, store: Arc<dyn ApiKeyRecords>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let uses = api_keys.take_uses();
        if uses.is_empty() {
            continue;
        }
        if let Err(e) = store.note_api_key_uses(&uses).await {
            tracing::warn!(error = %e, "could not note when API keys were last used");
        }
    }
}

/// Serves each built-in echo upstream on its bound listener; their names
/// and addresses.
fn start_echo_upstreams(
    side: &tokio::runtime::Runtime,
    config: &Config,
    listeners: Vec<TcpListener>,
) -> Result<Vec<(String, SocketAddr)>, ServerError> {
    let mut echo = Vec::new();
    let echo_upstreams = config
        .upstreams
        .iter()
        .filter(|u| matches!(u.kind, UpstreamKind::Echo { .. }));
    for (u, listener) in echo_upstreams.zip(listeners) {
        let addr = local_addr(&listener);
        let listener = on_runtime(side, listener, "upstreams")?;
        side.spawn(crate::echo::serve(listener));
        tracing::info!(upstream = %u.name, %addr, "built-in echo upstream listening");
        echo.push((u.name.clone(), addr));
    }
    Ok(echo)
}

/// Swaps external issuers' keys into the live snapshot as they change.
async fn follow_external_keys(shared: Arc<GatewayState>, mut changes: watch::Receiver<u64>) {
    while changes.changed().await.is_ok() {
        shared.live.load().refresh_external_keys(&shared.external);
    }
}

/// The admin API of the gateway started with `config`.
fn admin(
    config: &Config,
    (public, admin): (&[TcpListener], &TcpListener),
    shared: &Arc<GatewayState>,
    started: &Arc<AtomicBool>,
) -> Admin {
    let token = std::env::var(&config.admin.token_env)
        .ok()
        .filter(|t| !t.is_empty());
    if token.is_none() {
        tracing::warn!(
            "{} is not set: the admin API (/admin/...) will refuse every request with 503",
            config.admin.token_env
        );
    }
    // Keys a reload cannot apply are told by comparing with this: the
    // config as started, its listeners where they were bound (port 0 is
    // whatever port was given).
    let mut running = config.clone();
    for (l, listener) in running.listeners.iter_mut().zip(public) {
        l.addr = local_addr(listener);
    }
    running.admin.listen = local_addr(admin);
    Admin {
        shared: shared.clone(),
        started: started.clone(),
        token,
        token_env: config.admin.token_env.clone(),
        config_path: config.source.clone(),
        running,
    }
}

/// A reload for each SIGHUP.
async fn reload_on_signal(admin: Arc<Admin>, mut reload: mpsc::UnboundedReceiver<()>) {
    while reload.recv().await.is_some() {
        tracing::info!(target: "portero::admin", "SIGHUP: reloading the config");
        admin.reload().await;
    }
}

/// Each public listener with how it serves: its TLS, the shared limits.
fn public_listeners(
    config: &Config,
    bound: Vec<TcpListener>,
    limits: &ConnectionLimits,
) -> Result<Vec<(TcpListener, Arc<Serving>)>, ServerError> {
    let mut public = Vec::new();
    for (l, listener) in config.listeners.iter().zip(bound) {
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
        let serving = limits.serving(config, limits.public.clone(), tls, l.proxy_protocol);
        public.push((listener, serving));
    }
    Ok(public)
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
async fn purge_expired(revocations: Arc<Revocations>, store: Arc<dyn Upkeep>, leeway: Duration) {
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
