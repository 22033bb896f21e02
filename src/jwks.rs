//! External issuers' keys, kept off the request path: one background task
//! per issuer fetches its JWKS at start, refreshes it as its `max-age` asks
//! (within the issuer's bounds), refetches once per `jwks_refetch_interval`
//! at most when tokens name a `kid` it does not hold, keeps the last good
//! keys through provider outages and bad documents, and drops them past
//! `jwks_max_stale`. Each change is announced; `live` swaps it into the
//! validator's key set.

mod fetch;
pub(crate) use fetch::{client as provider_client, error_chain, fetch_keys, get, FetchError};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::config::{Config, ExternalKeySource};
use crate::jwk::ExternalKeys;
use crate::metrics::JwksMetrics;

/// First retry after a failed fetch; doubled per failure up to the refetch interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Why an external issuer's fetching could not start: its HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("issuers.{issuer}: {error}")]
pub struct SyncError {
    issuer: String,
    error: crate::tls_roots::ClientError,
}

/// Every external issuer's keys, as their tasks last fetched them.
pub struct Registry {
    remotes: ArcSwap<Vec<Arc<Remote>>>,
    /// Bumped on every change of any issuer's keys.
    changed: watch::Sender<u64>,
    /// Held while a key set is swapped into the live snapshot, so two
    /// swaps never interleave and leave the older one in place.
    pub apply_lock: Mutex<()>,
    metrics: JwksMetrics,
}

/// One external issuer.
struct Remote {
    name: String,
    source: ExternalKeySource,
    keys: ArcSwapOption<ExternalKeys>,
    /// When `keys` were last fetched (or confirmed unchanged).
    fetched_at: Mutex<Option<Instant>>,
    created: Instant,
    /// A token named a kid this issuer does not have.
    refetch_wanted: AtomicBool,
    /// Wakes the issuer's task: a refetch is wanted, or the issuer is gone.
    wake: Arc<Notify>,
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

impl Registry {
    pub fn new(metrics: JwksMetrics) -> Arc<Registry> {
        Arc::new(Registry {
            remotes: ArcSwap::default(),
            changed: watch::Sender::new(0),
            apply_lock: Mutex::new(()),
            metrics,
        })
    }

    /// Starts a task for each external issuer of `config` that is new or
    /// changed, keeps those unchanged (with their keys), and lets the rest
    /// go. An issuer whose HTTPS roots cannot be loaded is an error.
    pub fn sync(self: &Arc<Self>, config: &Config) -> Result<(), SyncError> {
        let current = self.remotes.load();
        let mut next = Vec::new();
        for issuer in &config.issuers {
            let Some(source) = &issuer.external else {
                continue;
            };
            let kept = current
                .iter()
                .find(|r| r.name == issuer.name && &r.source == source);
            if let Some(remote) = kept {
                next.push(remote.clone());
                continue;
            }
            let client = fetch::client(source).map_err(|error| SyncError {
                issuer: issuer.name.clone(),
                error,
            })?;
            let remote = Arc::new(Remote {
                name: issuer.name.clone(),
                source: source.clone(),
                keys: ArcSwapOption::empty(),
                fetched_at: Mutex::new(None),
                created: Instant::now(),
                refetch_wanted: AtomicBool::new(false),
                wake: Arc::new(Notify::new()),
            });
            for result in fetch::RESULTS {
                self.metrics
                    .fetches
                    .with_label_values(&[&issuer.name, result]);
            }
            self.metrics.keys.with_label_values(&[&issuer.name]).set(0);
            let task = Task {
                remote: Arc::downgrade(&remote),
                wake: remote.wake.clone(),
                client,
                registry: Arc::downgrade(self),
            };
            tokio::spawn(task.run());
            next.push(remote);
        }
        for gone in current.iter() {
            if !config.issuers.iter().any(|i| i.name == gone.name) {
                let name = [gone.name.as_str()];
                let _ = self.metrics.keys.remove_label_values(&name);
                let _ = self.metrics.age.remove_label_values(&name);
                for result in fetch::RESULTS {
                    let _ = self
                        .metrics
                        .fetches
                        .remove_label_values(&[&gone.name, result]);
                }
            }
        }
        self.remotes.store(Arc::new(next));
        Ok(())
    }

    /// The keys held for issuer `name`, if it is external and has any.
    pub fn keys_of(&self, name: &str) -> Option<Arc<ExternalKeys>> {
        let remotes = self.remotes.load();
        remotes.iter().find(|r| r.name == name)?.keys.load_full()
    }

    /// A token named a kid no key has: if it claims an external issuer,
    /// that issuer refetches (once, however many such tokens come).
    pub fn unknown_kid(&self, token: &str) {
        let Some(iss) = crate::auth::validate::unverified_iss(token) else {
            return;
        };
        let remotes = self.remotes.load();
        let claimed = remotes.iter().find(|r| {
            let held = r.keys.load();
            held.as_ref().map(|k| k.iss.as_str()) == Some(iss.as_str())
                || r.source.expected_iss.as_deref() == Some(iss.as_str())
        });
        if let Some(remote) = claimed {
            if !remote.refetch_wanted.swap(true, Ordering::AcqRel) {
                remote.wake.notify_one();
            }
        }
    }

    /// Changes of any issuer's keys.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Ready once every external issuer has keys or its `jwks_ready_timeout`
    /// has passed (an unreachable provider fails its own tokens, not the
    /// gateway). With the number of keys each holds.
    pub fn readiness(&self) -> (bool, Vec<(String, usize)>) {
        let remotes = self.remotes.load();
        let ready = remotes
            .iter()
            .all(|r| r.keys.load().is_some() || r.created.elapsed() >= r.source.ready_timeout);
        let held = remotes
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    r.keys.load().as_ref().map_or(0, |k| k.keys.len()),
                )
            })
            .collect();
        (ready, held)
    }

    /// Sets each issuer's key-set age, for a scrape.
    pub fn refresh_gauges(&self) {
        for r in self.remotes.load().iter() {
            let since = r
                .fetched_at
                .lock()
                .expect("not poisoned")
                .unwrap_or(r.created);
            self.metrics
                .age
                .with_label_values(&[&r.name])
                .set(since.elapsed().as_secs_f64());
        }
    }

    fn publish(&self, remote: &Remote, keys: Option<Arc<ExternalKeys>>) {
        let count = keys.as_ref().map_or(0, |k| k.keys.len());
        remote.keys.store(keys);
        self.metrics
            .keys
            .with_label_values(&[&remote.name])
            .set(count as i64);
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The background task of one external issuer. It holds the issuer weakly
/// and ends once the issuer is gone from the config.
struct Task {
    remote: Weak<Remote>,
    wake: Arc<Notify>,
    client: reqwest::Client,
    registry: Weak<Registry>,
}

impl Task {
    async fn run(self) {
        let mut next_fetch = Instant::now();
        let mut last_attempt: Option<Instant> = None;
        let mut retry = FIRST_RETRY;
        loop {
            let (Some(remote), Some(registry)) = (self.remote.upgrade(), self.registry.upgrade())
            else {
                return;
            };
            let source = &remote.source;
            let now = Instant::now();
            let fetched_at = *remote.fetched_at.lock().expect("not poisoned");
            let stale_at = fetched_at
                .filter(|_| remote.keys.load().is_some())
                .map(|at| at + source.max_stale);
            if stale_at.is_some_and(|at| now >= at) {
                tracing::error!(
                    issuer = %remote.name,
                    max_stale = ?source.max_stale,
                    "external issuer: keys older than jwks_max_stale dropped; its tokens are refused until a fetch succeeds"
                );
                registry.publish(&remote, None);
                continue;
            }
            if remote.refetch_wanted.load(Ordering::Acquire) {
                let allowed = last_attempt.map_or(now, |at| at + source.refetch_interval);
                next_fetch = next_fetch.min(allowed);
            }
            if now >= next_fetch {
                remote.refetch_wanted.store(false, Ordering::Release);
                last_attempt = Some(now);
                next_fetch = match fetch::fetch(&self.client, source).await {
                    Ok(fetched) => {
                        retry = FIRST_RETRY;
                        self.fetched(&registry, &remote, fetched)
                    }
                    Err(e) => {
                        registry
                            .metrics
                            .fetches
                            .with_label_values(&[&remote.name, e.label()])
                            .inc();
                        tracing::warn!(
                            issuer = %remote.name,
                            error = %e,
                            retry_in = ?retry,
                            holding = remote.keys.load().as_ref().map_or(0, |k| k.keys.len()),
                            "external issuer: fetching keys failed; the keys held stay in use"
                        );
                        let at = Instant::now() + retry;
                        retry = (retry * 2).min(source.refetch_interval.max(FIRST_RETRY));
                        at
                    }
                };
                continue;
            }
            let wake_at = stale_at.map_or(next_fetch, |at| at.min(next_fetch));
            drop((remote, registry));
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Records a successful fetch; publishes the keys if they changed.
    /// When to fetch next.
    fn fetched(&self, registry: &Registry, remote: &Remote, fetched: fetch::Fetched) -> Instant {
        let source = &remote.source;
        registry
            .metrics
            .fetches
            .with_label_values(&[&remote.name, "ok"])
            .inc();
        let now = Instant::now();
        *remote.fetched_at.lock().expect("not poisoned") = Some(now);
        let unchanged = remote
            .keys
            .load()
            .as_ref()
            .is_some_and(|held| held.same_as(&fetched.keys));
        if !unchanged {
            let kids: Vec<&str> = fetched
                .keys
                .keys
                .iter()
                .map(|k| k.kid.as_deref().unwrap_or("-"))
                .collect();
            tracing::info!(
                issuer = %remote.name,
                iss = %fetched.keys.iss,
                kids = ?kids,
                left_out = ?fetched.skipped,
                "external issuer: keys loaded"
            );
            registry.publish(remote, Some(Arc::new(fetched.keys)));
        }
        let keep = fetched
            .max_age
            .unwrap_or(source.refresh_min)
            .clamp(source.refresh_min, source.refresh_max);
        now + keep
    }
}
