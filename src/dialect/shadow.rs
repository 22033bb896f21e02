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
//! once a minute, by the values' types and sizes or the values the dialect
//! itself writes (`compare`, `catalogue`), and never with a value the
//! client sent. With the legacy service primary, an answer whose status
//! the dialect never uses (`101`, `204`, a redirect) is not relayed: the
//! client gets the dialect's server error, as when the legacy service
//! fails; it is logged by its class (`1xx`).

mod catalogue;
mod compare;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use http::header::{HeaderName, ACCEPT, ACCEPT_LANGUAGE, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};
use prometheus::{IntCounter, IntCounterVec};
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use catalogue::Catalogue;
pub use compare::Answer;
use compare::{Difference, Rules};

use crate::config::{Config, Dialect, Endpoint, LegacyEndpoint, ShadowConfig, ShadowPrimary};
use crate::tls_roots::ClientError;

/// By issuer index: the comparison of each issuer that has a `shadow`.
/// Called on the runtime comparisons are to run on.
pub fn for_issuers(
    config: &Config,
    counted: &IntCounterVec,
) -> Result<Vec<Option<Arc<Shadow>>>, SetUpError> {
    config
        .issuers
        .iter()
        .map(|i| {
            i.shadow
                .as_ref()
                .zip(i.legacy.as_ref())
                .map(|(s, endpoint)| Shadow::new(&i.name, endpoint, s, counted).map(Arc::new))
                .transpose()
                .map_err(|error| SetUpError {
                    issuer: i.name.clone(),
                    error,
                })
        })
        .collect()
}

/// Why an issuer's shadow could not be set up: its HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("issuers.{issuer}.shadow: {error}")]
pub struct SetUpError {
    issuer: String,
    error: ClientError,
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
    /// What the issuer's dialect answers: the statuses relayed, the
    /// strings shown.
    catalogue: &'static Catalogue,
    /// The numbers the config has the dialect write in a numbered message.
    configured: Vec<u64>,
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
        endpoint: &LegacyEndpoint,
        config: &ShadowConfig,
        counted: &IntCounterVec,
    ) -> Result<Shadow, ClientError> {
        let client = crate::tls_roots::http_client(config.ca_file.as_deref(), &[], config.timeout)?
            .build()?;
        let result = |r: &str| counted.with_label_values(&[issuer, r]);
        Ok(Shadow {
            issuer: issuer.to_string(),
            config: config.clone(),
            catalogue: Catalogue::of(endpoint.dialect),
            configured: match endpoint.dialect {
                Dialect::Project => vec![endpoint.max_years.into()],
                _ => Vec::new(),
            },
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

    /// Whether a legacy answer with `status` may go to the client: the
    /// dialect answers with it. Any other (an upgrade nobody asked for, a
    /// `204` without its body, a redirect) is `outside_contract`.
    pub fn relays(&self, status: StatusCode) -> bool {
        self.catalogue.uses(status.as_u16())
    }

    /// A legacy answer with a status the dialect never uses, kept from the
    /// client: counted as a difference, logged by its status's class alone
    /// (the status is the legacy's choice: it may carry the client's
    /// digits).
    pub fn outside_contract(&self, status: StatusCode) {
        self.results.different.inc();
        let class = self.catalogue.show_status(status.as_u16());
        self.log_once("outside contract", &class, || {
            tracing::warn!(
                target: "portero::shadow",
                issuer = %self.issuer,
                status = %class,
                "shadow: the legacy service answered with a status its dialect never uses; not relayed"
            );
        });
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
            shadow.record(&copy, legacy.map(|legacy| (portero, legacy)));
            drop(place);
        });
    }

    /// The legacy service answered the client's `copy`: portero's own
    /// answer, from `portero` (`None`: not to be compared), is worked out
    /// and compared in the background.
    pub fn compare_with_portero(
        self: &Arc<Self>,
        place: Place,
        copy: Copy,
        legacy: Answer,
        portero: impl Future<Output = Option<Answer>> + Send + 'static,
    ) {
        let shadow = self.clone();
        self.runtime.spawn(async move {
            if let Some(portero) = portero.await {
                shadow.record(&copy, Ok((portero, legacy)));
            }
            drop(place);
        });
    }

    /// A failing legacy service that answered the client nothing it could
    /// compare: counted as an error, logged.
    pub fn legacy_failed(&self, why: &str) {
        self.results.error.inc();
        self.log_once("error", "", || {
            tracing::warn!(target: "portero::shadow", issuer = %self.issuer, error = %why, "shadow: the legacy service gave no answer to compare");
        });
    }

    fn record(&self, copy: &Copy, answers: Result<(Answer, Answer), String>) {
        let (portero, legacy) = match answers {
            Ok(answers) => answers,
            Err(why) => return self.legacy_failed(&why),
        };
        let rules = Rules {
            claims: &self.config.claims,
            tolerance: self.config.tolerance,
            catalogue: self.catalogue,
            configured: &self.configured,
        };
        let differences = compare::compare(&rules, &portero, &legacy);
        if differences.is_empty() {
            self.results.same.inc();
            return;
        }
        self.results.different.inc();
        let sent = sent_values(copy);
        for d in differences {
            let Difference { kind, path, .. } = &d;
            self.log_once(kind.name(), path, || {
                tracing::warn!(
                    target: "portero::shadow",
                    issuer = %self.issuer,
                    kind = %kind.name(),
                    field = %path,
                    portero = %redact(&d.portero, &sent),
                    legacy = %redact(&d.legacy, &sent),
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

/// Every value the client sent, decoded as the legacy service reads it:
/// the body's JSON strings and numbers at any depth (escapes such as
/// `\u00f1` and `\/` undone) or, not JSON, its form fields; the query's
/// values; the `Authorization` header's credentials (Basic's user and
/// password decoded, RFC 7617 §2).
fn sent_values(copy: &Copy) -> Vec<String> {
    let mut sent = Vec::new();
    match serde_json::from_slice::<serde_json::Value>(&copy.body) {
        Ok(json) => json_values(&json, &mut sent),
        Err(_) => sent.extend(url::form_urlencoded::parse(&copy.body).map(|(_, v)| v.into_owned())),
    }
    if let Some((_, query)) = copy.path_and_query.split_once('?') {
        sent.extend(url::form_urlencoded::parse(query.as_bytes()).map(|(_, v)| v.into_owned()));
    }
    if let Some(credentials) = copy
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, value) = credentials
            .trim()
            .split_once(' ')
            .unwrap_or(("", credentials));
        let value = value.trim();
        sent.push(value.to_string());
        if scheme.eq_ignore_ascii_case("basic") {
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value) {
                let decoded = String::from_utf8_lossy(&decoded).into_owned();
                if let Some((user, password)) = decoded.split_once(':') {
                    sent.extend([user.to_string(), password.to_string()]);
                }
                sent.push(decoded);
            }
        }
    }
    sent.retain(|v| !v.is_empty());
    sent
}

fn json_values(v: &serde_json::Value, into: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => into.push(s.clone()),
        serde_json::Value::Number(n) => into.push(n.to_string()),
        serde_json::Value::Array(items) => items.iter().for_each(|i| json_values(i, into)),
        serde_json::Value::Object(fields) => fields.values().for_each(|f| json_values(f, into)),
        _ => {}
    }
}

/// A description that holds a value the client sent (a fixed message that
/// happens to be a password, a number a legacy service echoes) says so
/// instead. Values under three characters count only when they are the
/// whole description: shorter ones are in too many words to tell anything.
fn redact(description: &str, sent: &[String]) -> String {
    let inner = description.trim_matches('"').to_lowercase();
    let holds = |value: &String| {
        let value = value.to_lowercase();
        inner == value || (value.chars().count() >= 3 && inner.contains(&value))
    };
    if sent.iter().any(holds) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(path_and_query: &str, authorization: Option<&str>, body: &str) -> Copy {
        let mut headers = HeaderMap::new();
        if let Some(a) = authorization {
            headers.insert(AUTHORIZATION, a.parse().unwrap());
        }
        Copy {
            method: Method::POST,
            path_and_query: path_and_query.into(),
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn what_the_client_sent_is_read_decoded() {
        let json = copy(
            "/auth?withoutExpiration=3",
            None,
            r#"{"username": "ana", "password": "Zorro\u00f1o\/41", "n": {"pin": 1234}}"#,
        );
        assert_eq!(
            sent_values(&json),
            ["ana", "Zorroño/41", "1234", "3"].map(String::from)
        );
        let form = copy("/", None, "client_id=c1&client_secret=Zorro%C3%B1o+%2F41");
        assert_eq!(sent_values(&form), ["c1", "Zorroño /41"].map(String::from));
        // "ana:Zorroño" in Basic.
        let basic = copy("/", Some("Basic YW5hOlpvcnJvw7Fv"), "");
        let sent = sent_values(&basic);
        assert!(sent.contains(&"ana".to_string()) && sent.contains(&"Zorroño".to_string()));
    }

    #[test]
    fn a_description_holding_a_value_the_client_sent_is_redacted() {
        let sent = ["Usuario bloqueado", "ZORRO-41", "7"].map(String::from);
        let redacted = "a value the client sent";
        assert_eq!(redact("\"Usuario bloqueado\"", &sent), redacted);
        assert_eq!(redact("\"La clave zorro-41 no\"", &sent), redacted);
        assert_eq!(redact("7", &sent), redacted);
        // A short value only as the whole description.
        assert_eq!(redact("\"Error 7\"", &sent), "\"Error 7\"");
        assert_eq!(
            redact("\"Credenciales inválidas\"", &sent),
            "\"Credenciales inválidas\""
        );
    }
}
