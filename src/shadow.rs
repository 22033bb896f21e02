//! Proof before a cut-over: an issuer's token requests answered by one
//! side and compared, in the background, with the other's answer to the
//! same request. With portero primary the client gets portero's answer and
//! a copy goes to the legacy service; with the legacy service primary the
//! client gets the legacy answer and portero's own is worked out after.
//! Comparisons wait in a bounded queue (past it they are dropped and
//! counted), so neither a slow legacy service nor a flood delays a client.
//!
//! Results are counted in `portero_shadow_comparisons_total{issuer,
//! result}`; each kind of difference at each field path is logged at most
//! once a minute, by the values' types or fixed strings (`compare`).

mod compare;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use http::header::{HeaderName, ACCEPT, ACCEPT_LANGUAGE, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};
use prometheus::{IntCounter, IntCounterVec};
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use compare::Answer;
use compare::{Difference, Rules};

use crate::config::{Config, Endpoint, ShadowConfig, ShadowPrimary};

/// By issuer index: the comparison of each issuer that has a `shadow`.
/// Called on the runtime comparisons are to run on.
pub fn for_issuers(
    config: &Config,
    counted: &IntCounterVec,
) -> Result<Vec<Option<Arc<Shadow>>>, String> {
    config
        .issuers
        .iter()
        .map(|i| {
            i.shadow
                .as_ref()
                .map(|s| Shadow::new(&i.name, s, counted).map(Arc::new))
                .transpose()
                .map_err(|e| format!("issuers.{}.shadow: {e}", i.name))
        })
        .collect()
}

/// The largest legacy answer read; a bigger one is an error.
const MAX_ANSWER: usize = 1 << 20;
/// A difference already logged is not logged again for this long.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// (kind, field path) pairs remembered for `LOG_EVERY`; a legacy service
/// answering ever new fields cannot grow the memory past it.
const MAX_REMEMBERED: usize = 1000;
/// The request headers the copy carries: what a token endpoint reads.
const COPIED: [HeaderName; 5] = [
    CONTENT_TYPE,
    ACCEPT,
    ACCEPT_LANGUAGE,
    AUTHORIZATION,
    USER_AGENT,
];
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// One issuer's comparison with its legacy service.
pub struct Shadow {
    issuer: String,
    config: ShadowConfig,
    client: reqwest::Client,
    /// Comparisons waiting or under way: the bounded queue.
    slots: Arc<Semaphore>,
    /// Where comparisons run: the runtime it was made on (the side one,
    /// with the admin listener), never the proxy's workers.
    runtime: Handle,
    results: Results,
    /// When each (kind, field path) was last logged; a legacy service
    /// that gave no answer is ("error", "").
    logged: Mutex<HashMap<(&'static str, String), Instant>>,
}

/// A comparison's place in the queue, given back when it ends.
pub struct Place {
    _held: OwnedSemaphorePermit,
}

struct Results {
    same: IntCounter,
    different: IntCounter,
    error: IntCounter,
    dropped: IntCounter,
}

/// A token request as the other side gets it: the client's method, path,
/// query, body and the headers a token endpoint reads, with the client's
/// address in `X-Forwarded-For`.
pub struct Copy {
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Copy {
    pub fn of(parts: &Parts, body: &Bytes, client: IpAddr) -> Copy {
        let mut headers = HeaderMap::new();
        for name in COPIED {
            if let Some(v) = parts.headers.get(&name) {
                headers.insert(name, v.clone());
            }
        }
        if let Ok(v) = client.to_canonical().to_string().parse() {
            headers.insert(X_FORWARDED_FOR, v);
        }
        Copy {
            method: parts.method.clone(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_string()),
            headers,
            body: body.clone(),
        }
    }
}

impl Shadow {
    pub fn new(
        issuer: &str,
        config: &ShadowConfig,
        counted: &IntCounterVec,
    ) -> Result<Shadow, String> {
        let roots = crate::tls_roots::roots(config.ca_file.as_deref())?;
        let tls = crate::tls_roots::client_builder(roots)?.with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let result = |r: &str| counted.with_label_values(&[issuer, r]);
        Ok(Shadow {
            issuer: issuer.to_string(),
            config: config.clone(),
            client,
            slots: Arc::new(Semaphore::new(config.queue)),
            runtime: Handle::current(),
            results: Results {
                same: result("same"),
                different: result("different"),
                error: result("error"),
                dropped: result("dropped"),
            },
            logged: Mutex::new(HashMap::new()),
        })
    }

    pub fn primary(&self) -> ShadowPrimary {
        self.config.primary
    }

    /// With the legacy service primary and failing: answer with portero's own.
    pub fn fallback(&self) -> bool {
        self.config.fallback
    }

    /// A place in the comparison queue if this request is compared
    /// (sampled, and a refresh only when asked for); `None` if it is not,
    /// or if the queue is full (dropped and counted). With the legacy
    /// service primary every request goes to it: this says only whether
    /// portero works out its own answer too.
    pub fn place(&self, endpoint: Endpoint) -> Option<Place> {
        let compared = (endpoint != Endpoint::Refresh || self.config.compare_refresh)
            && (self.config.sample >= 1.0 || rand::random::<f64>() < self.config.sample);
        if !compared {
            return None;
        }
        let place = self
            .slots
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|held| Place { _held: held });
        if place.is_none() {
            self.results.dropped.inc();
        }
        place
    }

    /// The legacy service's answer to `copy`.
    pub async fn ask_legacy(&self, copy: &Copy) -> Result<Answer, String> {
        let url = format!("{}{}", self.config.url, copy.path_and_query);
        let mut response = self
            .client
            .request(copy.method.clone(), url)
            .headers(copy.headers.clone())
            .body(copy.body.clone())
            .send()
            .await
            .map_err(describe_failure)?;
        let status = StatusCode::from_u16(response.status().as_u16()).map_err(|e| e.to_string())?;
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(describe_failure)? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(format!("an answer over {MAX_ANSWER} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            body: body.freeze(),
            at: Utc::now(),
        })
    }

    /// Portero answered the client: the legacy service's answer to the same
    /// request is compared with it in the background.
    pub fn compare_with_legacy(self: &Arc<Self>, place: Place, copy: Copy, portero: Answer) {
        let shadow = self.clone();
        self.runtime.spawn(async move {
            let legacy = shadow.ask_legacy(&copy).await;
            shadow.record(&copy.body, legacy.map(|legacy| (portero, legacy)));
            drop(place);
        });
    }

    /// The legacy service answered the client: portero's own answer, from
    /// `portero` (`None`: not to be compared), is worked out and compared
    /// in the background.
    pub fn compare_with_portero(
        self: &Arc<Self>,
        place: Place,
        request_body: Bytes,
        legacy: Answer,
        portero: impl Future<Output = Option<Answer>> + Send + 'static,
    ) {
        let shadow = self.clone();
        self.runtime.spawn(async move {
            if let Some(portero) = portero.await {
                shadow.record(&request_body, Ok((portero, legacy)));
            }
            drop(place);
        });
    }

    /// A failing legacy service that answered the client nothing it could
    /// compare: counted as an error, logged.
    pub fn legacy_failed(&self, why: &str) {
        self.record(b"", Err(why.to_string()));
    }

    fn record(&self, request_body: &[u8], answers: Result<(Answer, Answer), String>) {
        let (portero, legacy) = match answers {
            Ok(answers) => answers,
            Err(why) => {
                self.results.error.inc();
                self.log_once("error", "", || {
                    tracing::warn!(issuer = %self.issuer, error = %why, "shadow: the legacy service gave no answer to compare");
                });
                return;
            }
        };
        let rules = Rules {
            claims: &self.config.claims,
            tolerance: self.config.tolerance,
        };
        let differences = compare::compare(&rules, &portero, &legacy);
        if differences.is_empty() {
            self.results.same.inc();
            return;
        }
        self.results.different.inc();
        for d in differences {
            let Difference { kind, path, .. } = &d;
            self.log_once(kind.name(), path, || {
                tracing::warn!(
                    issuer = %self.issuer,
                    kind = %kind.name(),
                    field = %path,
                    portero = %redact(&d.portero, request_body),
                    legacy = %redact(&d.legacy, request_body),
                    "shadow: the legacy service answered differently"
                );
            });
        }
    }

    /// Runs `log` unless this (kind, path) was logged within `LOG_EVERY`.
    fn log_once(&self, kind: &'static str, path: &str, log: impl FnOnce()) {
        let now = Instant::now();
        let mut logged = self.logged.lock().expect("not poisoned");
        if logged.len() >= MAX_REMEMBERED {
            logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
        }
        let key = (kind, path.to_string());
        if logged
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < LOG_EVERY)
        {
            return;
        }
        if logged.len() < MAX_REMEMBERED {
            logged.insert(key, now);
        }
        drop(logged);
        log();
    }
}

/// A description that quotes something the client sent (a name, a
/// password a legacy service echoes) says so instead.
fn redact(description: &str, request_body: &[u8]) -> String {
    let inner = description.trim_matches('"');
    let sent = inner.len() >= 3
        && request_body
            .windows(inner.len())
            .any(|w| w == inner.as_bytes());
    if sent {
        "a value the client sent".into()
    } else {
        description.to_string()
    }
}

/// Why the legacy service gave no answer, without its URL (it may carry a
/// password).
fn describe_failure(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.without_url().to_string()
    }
}
