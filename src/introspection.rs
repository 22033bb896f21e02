//! Opaque tokens, read by their provider's introspection endpoint (RFC
//! 7662, portero as the client). Answers are kept by a keyed 128-bit hash
//! of the token (never the token): an active one until the sooner of its
//! `exp` and `introspection_cache_ttl`, an inactive one for
//! `introspection_negative_ttl`, so a repeated bad token is asked about
//! once a while. One call per token is in flight at a time (the others
//! asking wait for its answer), and at most `MAX_CALLS_IN_FLIGHT` in all.
//! A provider that fails leaves the tokens it answered for working, and
//! turns new ones away.

mod answer;
mod call;

use std::sync::Arc;
use std::time::Instant;

use std::hash::Hasher;

use dashmap::DashMap;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::auth::validate::{Validator, Verified};
use crate::auth::AuthError;
use crate::claims::Claims;
use crate::config::{Introspection, IntrospectionFailure, Issuer, Policy};
use crate::metrics::IntrospectionSeries;
use crate::tls_roots::ClientError;

pub use answer::Read;

/// Why a token was not admitted by introspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAdmitted {
    Denied(AuthError),
    /// The provider failed or did not answer, and the issuer answers 503.
    Unavailable,
}

/// Calls to one provider at a time, at most: past it a token without a
/// kept answer is turned away as if the provider failed, so a flood of
/// distinct tokens cannot become a flood of calls.
const MAX_CALLS_IN_FLIGHT: usize = 64;

/// One issuer's introspection: its client, its kept answers, its calls in
/// flight, its counters.
pub struct Introspector(Arc<Inner>);

struct Inner {
    /// The issuer's place in the config it was made for, and its name.
    issuer: usize,
    name: String,
    config: Introspection,
    secret: String,
    /// The `iss` its tokens carry (with discovery: learned with the endpoint).
    iss: String,
    client: reqwest::Client,
    endpoint: tokio::sync::OnceCell<call::Endpoint>,
    answers: quick_cache::sync::Cache<u128, Answer>,
    /// One call per token: the requests carrying it await the same one,
    /// which runs on its own task, so a client leaving does not end it.
    in_flight: DashMap<u128, Flight>,
    calls: tokio::sync::Semaphore,
    /// Random per process: the cache's keys tell nothing of the tokens.
    keys: (u64, u64),
    series: IntrospectionSeries,
    /// The reasons an active answer was refused that were logged already.
    refusals_told: std::sync::Mutex<std::collections::HashSet<&'static str>>,
}

type Flight = Shared<BoxFuture<'static, Answer>>;

/// What the provider said about a token, and until when it is kept.
#[derive(Clone)]
enum Answer {
    Active {
        verified: Arc<Verified>,
        until: i64,
    },
    /// Not admitted, for `reason`.
    Inactive {
        until: i64,
        reason: AuthError,
    },
    /// The call failed: kept a second, so the callers waiting on it and
    /// the next ones do not each wait out a failing provider.
    Failed {
        until: i64,
    },
}

impl Answer {
    fn until(&self) -> i64 {
        match self {
            Answer::Active { until, .. }
            | Answer::Inactive { until, .. }
            | Answer::Failed { until } => *until,
        }
    }
}

/// Why an issuer's introspection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetUpError {
    #[error("issuers.{issuer}: client_secret_env: {var} is not set")]
    MissingSecret { issuer: String, var: String },
    #[error("issuers.{issuer}: introspection client: {source}")]
    Client { issuer: String, source: ClientError },
}

impl Introspector {
    pub fn new(
        index: usize,
        issuer: &Issuer,
        series: IntrospectionSeries,
    ) -> Result<Option<Introspector>, SetUpError> {
        let Some(config) = &issuer.introspection else {
            return Ok(None);
        };
        let secret =
            std::env::var(&config.client_secret_env).map_err(|_| SetUpError::MissingSecret {
                issuer: issuer.name.clone(),
                var: config.client_secret_env.clone(),
            })?;
        let client = call::client(config).map_err(|source| SetUpError::Client {
            issuer: issuer.name.clone(),
            source,
        })?;
        use rand::RngCore;
        let mut rng = rand::thread_rng();
        Ok(Some(Introspector(Arc::new(Inner {
            issuer: index,
            name: issuer.name.clone(),
            config: config.clone(),
            secret: secret.trim().to_string(),
            iss: issuer.iss.clone(),
            client,
            endpoint: tokio::sync::OnceCell::new(),
            answers: quick_cache::sync::Cache::new(config.cache_size),
            in_flight: DashMap::new(),
            calls: tokio::sync::Semaphore::new(MAX_CALLS_IN_FLIGHT),
            keys: (rng.next_u64(), rng.next_u64()),
            series,
            refusals_told: Default::default(),
        }))))
    }

    /// Whether this one, made for `issuer` at `index`, serves it as it is
    /// now: a reload keeps its cache then.
    pub fn serves(&self, index: usize, issuer: &Issuer) -> bool {
        self.0.issuer == index && issuer.introspection.as_ref() == Some(&self.0.config)
    }

    /// `token` against the route's `policy` at Unix time `now`, from the
    /// kept answer or the provider's.
    pub async fn validate(
        &self,
        token: &str,
        policy: &Policy,
        now: i64,
        validator: &Validator,
    ) -> Result<Arc<Verified>, NotAdmitted> {
        let inner = &self.0;
        // portero's own API keys are never shown to a provider.
        if token.starts_with(crate::api_keys::KEY_PREFIX) {
            return Err(NotAdmitted::Denied(AuthError::Inactive));
        }
        let key = inner.key_of(token);
        let answer = match inner.answers.get(&key) {
            Some(answer) if answer.until() > now => {
                inner.series.hits.inc();
                answer
            }
            _ => {
                inner.series.misses.inc();
                self.ask_once(key, token, now).await
            }
        };
        let verified = match answer {
            Answer::Active { verified, .. } => verified,
            Answer::Inactive { reason, .. } => return Err(NotAdmitted::Denied(reason)),
            Answer::Failed { .. } => {
                return Err(match inner.config.on_failure {
                    IntrospectionFailure::Unavailable => NotAdmitted::Unavailable,
                    IntrospectionFailure::Unauthorized => NotAdmitted::Denied(AuthError::Inactive),
                })
            }
        };
        // Without `exp` it lives as long as its answer is kept; `nbf` holds.
        match verified.exp {
            Some(_) => validator.check_time(&verified, now),
            None => validator.check_not_before(&verified, now),
        }
        .map_err(NotAdmitted::Denied)?;
        validator
            .admit_in_time(verified, policy)
            .map_err(NotAdmitted::Denied)
    }

    /// The provider's answer about `token`, asked once however many
    /// requests carry it at the same time; kept when it comes.
    async fn ask_once(&self, key: u128, token: &str, now: i64) -> Answer {
        let flight = match self.0.in_flight.entry(key) {
            dashmap::Entry::Occupied(flight) => flight.get().clone(),
            dashmap::Entry::Vacant(slot) => {
                let (inner, token) = (self.0.clone(), token.to_string());
                let call = tokio::spawn(async move {
                    let answer = inner.ask(&token, now).await;
                    inner.answers.insert(key, answer.clone());
                    inner.in_flight.remove(&key);
                    answer
                });
                let flight = async move { call.await.unwrap_or(Answer::Failed { until: now + 1 }) }
                    .boxed()
                    .shared();
                slot.insert(flight.clone());
                flight
            }
        };
        flight.await
    }
}

impl Inner {
    async fn ask(&self, token: &str, now: i64) -> Answer {
        let Ok(_turn) = self.calls.try_acquire() else {
            return self.failed(now, "too many calls to the provider in flight");
        };
        let started = Instant::now();
        let result = self.call(token).await;
        self.series
            .duration
            .observe(started.elapsed().as_secs_f64());
        let typed = self.config.require_token_type;
        let result = result.and_then(|(body, iss)| answer::read(&body, token, &iss, typed));
        match result {
            Ok(Read::Active { claims, exp }) => {
                let ttl = self.config.cache_ttl.as_secs() as i64;
                let until = exp.unwrap_or(i64::MAX).min(now + ttl);
                // The token itself is never kept: only the key it is cached by.
                let verified = Claims::parse(claims)
                    .map_err(|e| e.to_string())
                    .map(|c| Verified::introspected(self.issuer, c));
                match verified {
                    Ok(Err(AuthError::SenderConstrained)) => {
                        self.inactive(now, "sender-constrained", AuthError::SenderConstrained)
                    }
                    Ok(verified) => self.active(now, until, verified),
                    Err(e) => self.failed(now, &e),
                }
            }
            Ok(Read::Refused(why)) => self.inactive(now, why, AuthError::Inactive),
            Ok(Read::SenderConstrained) => {
                self.inactive(now, "sender-constrained", AuthError::SenderConstrained)
            }
            Err(e) => self.failed(now, &e),
        }
    }

    /// An active answer's claims read, kept until `until`.
    fn active(&self, now: i64, until: i64, verified: Result<Verified, AuthError>) -> Answer {
        match verified {
            Ok(v) if until > now => {
                self.series.active.inc();
                Answer::Active {
                    verified: Arc::new(v),
                    until,
                }
            }
            Ok(_) => self.inactive(now, "expired", AuthError::Inactive),
            Err(e) => self.failed(now, &e.to_string()),
        }
    }

    fn inactive(&self, now: i64, why: &'static str, reason: AuthError) -> Answer {
        self.series.inactive.inc();
        // An active answer refused says how the provider and portero
        // disagree: said once per reason, the rest at debug.
        let first = why != "inactive"
            && self
                .refusals_told
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(why);
        match first {
            true => {
                tracing::warn!(issuer = %self.name, why, "introspection: an active answer was not taken (said once per reason)")
            }
            false => tracing::debug!(issuer = %self.name, why, "introspection: token not admitted"),
        }
        Answer::Inactive {
            until: now + self.config.negative_ttl.as_secs() as i64,
            reason,
        }
    }

    fn failed(&self, now: i64, error: &str) -> Answer {
        self.series.errors.inc();
        tracing::warn!(issuer = %self.name, %error, "introspection failed");
        Answer::Failed { until: now + 1 }
    }

    /// The provider's `200` body, and the `iss` to hold it to.
    async fn call(&self, token: &str) -> Result<(Vec<u8>, String), String> {
        let endpoint = self
            .endpoint
            .get_or_try_init(|| call::endpoint(&self.client, &self.config, &self.iss))
            .await?;
        let body =
            call::introspect(&self.client, endpoint, &self.config, &self.secret, token).await?;
        Ok((body, endpoint.iss.clone()))
    }

    /// The cache's key for `token`: SipHash-1-3, 128 bits, under this
    /// process's random key.
    fn key_of(&self, token: &str) -> u128 {
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        h.write(token.as_bytes());
        h.finish128().as_u128()
    }
}
