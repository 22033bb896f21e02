//! What one route admits beyond a valid token: client addresses (`allow_ips`
//! / `deny_ips`), a rate per key (`rate_limit`), requests in flight for the
//! route (`max_in_flight`) and per key (`concurrency`).
//!
//! Counts per key live in fixed-size count-min sketches (`count_min`, for
//! rates, over clock-aligned windows in `sliding`; pingora-limits'
//! `Inflight` for requests in flight): memory stays the same whatever the
//! number of keys, and a key shares a count with others only when every
//! one of its hashed slots is shared, which can make it look busier than
//! it is, never quieter.
//! A `scope = "cluster"` rate is counted in the Redis store instead (GCRA),
//! and here again while Redis does not answer.
//!
//! A limiter outlives a reload that leaves its route's limits as they were,
//! so a reload never hands every client a fresh quota.

mod count_min;
mod sliding;
mod window;

use std::borrow::Cow;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora_limits::inflight::{Guard, Inflight};
use prometheus::{IntCounter, IntGauge};
use sha2::{Digest, Sha256};

use crate::auth::validate::Verified;
use crate::config::{IpRules, LimitKey, LimitScope, RateLimit, Route, RouteAction, RouteLimits};
use crate::metrics::Metrics;
use crate::store::SharedRates;
use sliding::SlidingCounts;
use window::Bucket;

/// Rows and slots of each rate estimator: 4 × 4096 counters per window,
/// two windows, 256 KiB per rate-limited route.
const HASHES: usize = 4;
const SLOTS: usize = 4096;

/// One route's limits with their counts.
pub struct Limiter {
    limits: RouteLimits,
    /// The route's name as a structured-field string, naming its policy
    /// in the `RateLimit-Policy` and `RateLimit` headers.
    policy_name: String,
    /// `RateLimit`'s value up to its remaining count: `"name";r=`.
    state_prefix: Box<[u8]>,
    rate: Option<RateCounts>,
    in_flight: Arc<AtomicU32>,
    per_key: Option<Inflight>,
    hasher: foldhash::fast::RandomState,
    series: Series,
}

struct RateCounts {
    limit: RateLimit,
    bucket: Bucket,
    counts: SlidingCounts<HASHES, SLOTS>,
    /// `RateLimit-Policy` at the limit's own quota, made once.
    policy: HeaderValue,
}

struct Series {
    ip: IntCounter,
    rate: IntCounter,
    max_in_flight: IntCounter,
    concurrency: IntCounter,
    fallbacks: IntCounter,
    in_flight: IntGauge,
}

/// Which kind of limit turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `allow_ips` / `deny_ips`: `403`.
    Address,
    /// Over the rate: `429`.
    Rate,
    /// `max_in_flight` or `concurrency`: `503`.
    Busy,
}

/// A request turned away, with the rate's report if the rate did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub limit: Limit,
    pub report: Option<RateReport>,
}

impl Refusal {
    fn of(limit: Limit) -> Refusal {
        Refusal {
            limit,
            report: None,
        }
    }
}

/// What one decision found, in the figures of its `RateLimit-Policy`,
/// `RateLimit` and (refused) `Retry-After` headers, which
/// `Limiter::report` writes onto the response. Figures, not header
/// values: the request carries a report from its admission to its
/// response, and a few words move for less than three values would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateReport {
    /// The caller's own quota.
    own: u32,
    remaining: u64,
    /// Seconds until the key's bucket is full again, rounded up.
    reset: u64,
    /// Seconds until a refused request would be admitted, at least one.
    retry_after: Option<NonZeroU64>,
}

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Which limits a check covers: those keyed by what the request says, or
/// (after its token is verified) those keyed by who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Request,
    Token,
}

impl Phase {
    /// Whether a limit counted by `key` is checked at this phase.
    fn keys(self, key: &LimitKey) -> bool {
        key.needs_token() == (self == Phase::Token)
    }
}

/// Who is asking, as far as limits need to know.
pub struct Caller<'a> {
    pub ip: IpAddr,
    pub headers: &'a HeaderMap,
    pub token: Option<&'a Verified>,
    /// The principal's own `rate_limit`, if its entry sets one.
    pub principal_rate: Option<u32>,
    /// When the request arrived: the time its rate is counted at.
    pub arrived: Instant,
}

/// What a request holds of its route's limits, and of its client
/// address's share, until its response ends.
#[derive(Default)]
pub struct Held {
    route: Option<(Arc<AtomicU32>, IntGauge)>,
    key: Option<Guard>,
    client: Option<Guard>,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.route.is_none() && self.key.is_none() && self.client.is_none()
    }
}

/// Requests with a body in flight per client address, across routes and
/// listeners: one address trickling bodies cannot hold every request the
/// gateway can carry.
pub struct ClientShare {
    max: isize,
    counts: Inflight,
    refused: IntCounter,
}

impl ClientShare {
    pub fn new(max: usize, metrics: &Metrics) -> ClientShare {
        ClientShare {
            max: isize::try_from(max).unwrap_or(isize::MAX),
            counts: Inflight::new(),
            refused: metrics
                .limited
                .with_label_values(&["none", "client_in_flight"]),
        }
    }

    /// Counts the request under `ip` until `held` is dropped; `503` past the share.
    pub fn enter(&self, ip: IpAddr, held: &mut Held) -> Result<(), Refusal> {
        let (guard, count) = self.counts.incr(Key::Address(ip), 1);
        held.client = Some(guard);
        if count > self.max {
            self.refused.inc();
            return Err(Refusal::of(Limit::Busy));
        }
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((count, gauge)) = self.route.take() {
            count.fetch_sub(1, Ordering::Relaxed);
            gauge.dec();
        }
    }
}

/// The key a limit counts a request under.
#[derive(Hash)]
enum Key<'a> {
    Address(IpAddr),
    Header(&'a [u8]),
    /// A token's subject or claim, under its issuer: two issuers' `sub`s
    /// are different people.
    Identity(usize, Cow<'a, str>),
}

impl Key<'_> {
    /// A name for the shared store that no instance spells differently,
    /// and that carries no address or subject in the clear.
    fn digest(&self) -> String {
        let mut h = Sha256::new();
        match self {
            Key::Address(ip) => h.update(format!("a\0{ip}")),
            Key::Header(v) => {
                h.update(b"h\0");
                h.update(v);
            }
            Key::Identity(issuer, text) => h.update(format!("i\0{issuer}\0{text}")),
        }
        let hex: String = h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        hex
    }
}

impl Limiter {
    pub fn new(route: &Route, metrics: &Metrics) -> Limiter {
        let limits = route.limits.clone();
        let series = |limit: &str| metrics.limited.with_label_values(&[&route.name, limit]);
        let policy_name = sf_string(&route.name);
        let state_prefix = format!("{policy_name};r=").into_bytes().into_boxed_slice();
        Limiter {
            rate: limits.rate.as_ref().map(|limit| {
                let bucket = Bucket::new(limit);
                RateCounts {
                    limit: limit.clone(),
                    bucket,
                    counts: SlidingCounts::new(bucket.window),
                    policy: policy_header(&policy_name, limit, limit.requests),
                }
            }),
            in_flight: Arc::new(AtomicU32::new(0)),
            per_key: limits.concurrency.as_ref().map(|_| Inflight::new()),
            hasher: foldhash::fast::RandomState::default(),
            series: Series {
                ip: series("ip"),
                rate: series("rate"),
                max_in_flight: series("max_in_flight"),
                concurrency: series("concurrency"),
                fallbacks: metrics
                    .rate_limit_fallbacks
                    .with_label_values(&[&route.name]),
                in_flight: metrics.in_flight.with_label_values(&[&route.name]),
            },
            limits,
            policy_name,
            state_prefix,
        }
    }

    /// Whether any limit is keyed by what is known at `phase`.
    pub fn keys_at(&self, phase: Phase) -> bool {
        self.limits.rate.as_ref().is_some_and(|r| phase.keys(&r.by))
            || self
                .limits
                .concurrency
                .as_ref()
                .is_some_and(|c| phase.keys(&c.by))
    }

    /// The address rules, then the route's slot: checked before anything
    /// else is spent on the request.
    pub fn enter(&self, ip: IpAddr, held: &mut Held) -> Result<(), Refusal> {
        if !admits(&self.limits.ips, ip) {
            self.series.ip.inc();
            return Err(Refusal::of(Limit::Address));
        }
        let gauge = self.series.in_flight.clone();
        gauge.inc();
        let count = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        held.route = Some((self.in_flight.clone(), gauge));
        if self.limits.max_in_flight.is_some_and(|max| count > max) {
            self.series.max_in_flight.inc();
            return Err(Refusal::of(Limit::Busy));
        }
        Ok(())
    }

    /// Whether a rate keyed at `phase` is counted in the shared store:
    /// `admit` then, which awaits it; `admit_here` otherwise.
    pub fn shares_at(&self, phase: Phase) -> bool {
        self.rate_at(phase)
            .is_some_and(|r| r.limit.scope == LimitScope::Cluster)
    }

    /// The limits keyed at `phase`, counted on this instance alone (see
    /// `shares_at`): requests in flight per key, then the rate. A refusal
    /// reports the rate's headers; an admission returns them.
    pub fn admit_here(
        &self,
        phase: Phase,
        caller: &Caller<'_>,
        held: &mut Held,
    ) -> Result<Option<RateReport>, Refusal> {
        let Some((rate, own, key)) = self.rated(phase, caller, held)? else {
            return Ok(None);
        };
        let verdict = self.count_here(rate, &key, own, caller.arrived);
        self.decide(own, &verdict).map(Some)
    }

    /// `admit_here`, with a cluster-wide rate asked of the store (counted
    /// here while the store does not answer).
    pub async fn admit(
        &self,
        phase: Phase,
        caller: &Caller<'_>,
        store: &dyn SharedRates,
        held: &mut Held,
    ) -> Result<Option<RateReport>, Refusal> {
        if !self.shares_at(phase) {
            return self.admit_here(phase, caller, held);
        }
        let Some((rate, own, key)) = self.rated(phase, caller, held)? else {
            return Ok(None);
        };
        let verdict = match self.count_shared(rate, &key, own, store).await {
            Some(verdict) => verdict,
            None => {
                self.series.fallbacks.inc();
                self.count_here(rate, &key, own, caller.arrived)
            }
        };
        self.decide(own, &verdict).map(Some)
    }

    /// Requests in flight per key entered, then the rate keyed at `phase`
    /// (if one is) with the caller's own quota and key.
    fn rated<'x>(
        &'x self,
        phase: Phase,
        caller: &Caller<'x>,
        held: &mut Held,
    ) -> Result<Option<(&'x RateCounts, u32, Key<'x>)>, Refusal> {
        self.enter_key(phase, caller, held)?;
        let Some(rate) = self.rate_at(phase) else {
            return Ok(None);
        };
        let own = own_requests(&rate.limit, caller);
        Ok(Some((rate, own, key(&rate.limit.by, caller))))
    }

    /// The rate, if one is keyed at `phase`.
    fn rate_at(&self, phase: Phase) -> Option<&RateCounts> {
        self.rate.as_ref().filter(|r| phase.keys(&r.limit.by))
    }

    /// Requests in flight per key, if that limit is keyed at `phase`.
    fn enter_key(&self, phase: Phase, caller: &Caller<'_>, held: &mut Held) -> Result<(), Refusal> {
        if let (Some(c), Some(counts)) = (&self.limits.concurrency, &self.per_key) {
            if phase.keys(&c.by) {
                let (guard, count) = counts.incr(key(&c.by, caller), 1);
                if count > c.max_in_flight as isize {
                    self.series.concurrency.inc();
                    return Err(Refusal::of(Limit::Busy));
                }
                held.key = Some(guard);
            }
        }
        Ok(())
    }

    /// The verdict with its report: admitted, or refused and counted.
    fn decide(&self, own: u32, verdict: &window::Verdict) -> Result<RateReport, Refusal> {
        let report = RateReport {
            own,
            remaining: verdict.remaining,
            reset: ceil_secs(verdict.reset),
            retry_after: None,
        };
        if verdict.admitted {
            return Ok(report);
        }
        self.series.rate.inc();
        let after = NonZeroU64::new(ceil_secs(verdict.retry_after)).unwrap_or(NonZeroU64::MIN);
        Err(Refusal {
            limit: Limit::Rate,
            report: Some(RateReport {
                retry_after: Some(after),
                ..report
            }),
        })
    }

    /// This instance's estimate: the request counted, and taken back if refused.
    fn count_here(
        &self,
        rate: &RateCounts,
        key: &Key<'_>,
        own: u32,
        now: Instant,
    ) -> window::Verdict {
        let cost = rate.bucket.cost(own);
        // Hashed once here rather than by each of the estimator's rows.
        let key = self.hasher.hash_one(key);
        let seen = rate.counts.add(key, cost, now);
        let verdict = rate
            .bucket
            .judge(seen.previous, seen.current, seen.elapsed, cost);
        if !verdict.admitted {
            rate.counts.take_back(key, cost, &seen);
        }
        verdict
    }

    /// The count every instance shares; `None` when the store cannot answer.
    async fn count_shared(
        &self,
        rate: &RateCounts,
        key: &Key<'_>,
        own: u32,
        store: &dyn SharedRates,
    ) -> Option<window::Verdict> {
        let (emission, capacity) = rate.bucket.emission(&rate.limit, own);
        let name = format!("{}:{}", self.policy_name.trim_matches('"'), key.digest());
        match store.take_rate(&name, emission, capacity).await {
            Ok(Some(shared)) => Some(window::Verdict {
                admitted: shared.admitted,
                remaining: shared.remaining,
                reset: shared.reset,
                retry_after: shared.retry_after,
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "rate limit counted on this instance only");
                None
            }
        }
    }

    /// `report`'s headers onto a response, in place of any the upstream sent.
    pub fn report(&self, report: RateReport, headers: &mut HeaderMap) {
        let Some(rate) = &self.rate else {
            return;
        };
        let policy = match report.own == rate.limit.requests {
            true => rate.policy.clone(),
            false => policy_header(&self.policy_name, &rate.limit, report.own),
        };
        headers.insert(RATELIMIT_POLICY, policy);
        headers.insert(RATELIMIT, self.state(&report));
        if let Some(after) = report.retry_after {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(after.get()));
        }
    }

    /// `"name";r=<remaining>;t=<reset>`. Every response of a limited route
    /// carries it: no `format!` machinery, and made at its size (`Bytes`
    /// from a `Vec` with room to spare allocates again).
    fn state(&self, report: &RateReport) -> HeaderValue {
        let (mut r, mut t) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (r, t) = (r.format(report.remaining), t.format(report.reset));
        let prefix: &[u8] = &self.state_prefix;
        let mut state = Vec::with_capacity(prefix.len() + 3 + r.len() + t.len());
        for part in [prefix, r.as_bytes(), b";t=", t.as_bytes()] {
            state.extend_from_slice(part);
        }
        HeaderValue::from_maybe_shared(bytes::Bytes::from(state)).expect("ASCII by construction")
    }
}

/// Whether the address rules admit `ip`.
pub fn admits(rules: &IpRules, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    !rules.deny.iter().any(|n| n.contains(&ip))
        && (rules.allow.is_empty() || rules.allow.iter().any(|n| n.contains(&ip)))
}

/// The key `by` names for this caller. A missing header counts by address;
/// a token without the claim, by its subject.
fn key<'a>(by: &'a LimitKey, caller: &Caller<'a>) -> Key<'a> {
    let identity = |claim: &str| {
        let token = caller.token?;
        let value = match token.claims.get(claim)? {
            crate::claims::Claim::Str(s) => Cow::Borrowed(s),
            crate::claims::Claim::Number(n) => Cow::Owned(n.to_string()),
            crate::claims::Claim::Json(v) => Cow::Owned(v.to_string()),
        };
        Some(Key::Identity(token.issuer, value))
    };
    match by {
        LimitKey::ClientIp => Key::Address(caller.ip),
        LimitKey::Header(name) => match caller.headers.get(name) {
            Some(v) => Key::Header(v.as_bytes()),
            None => Key::Address(caller.ip),
        },
        LimitKey::Subject => identity("sub").unwrap_or(Key::Address(caller.ip)),
        LimitKey::Claim(name) => identity(name)
            .or_else(|| identity("sub"))
            .unwrap_or(Key::Address(caller.ip)),
    }
}

/// The caller's own `requests`: its token's override claim, its principal's
/// entry, or the limit's.
fn own_requests(limit: &RateLimit, caller: &Caller<'_>) -> u32 {
    let claim = || {
        let token = caller.token?;
        let value = token.claims.get(limit.override_claim.as_deref()?)?;
        let n = match value {
            crate::claims::Claim::Number(n) => n.as_u64()?,
            crate::claims::Claim::Str(s) => s.parse().ok()?,
            crate::claims::Claim::Json(_) => return None,
        };
        (n > 0).then(|| u32::try_from(n).unwrap_or(u32::MAX))
    };
    claim()
        .or(caller.principal_rate.filter(|_| limit.by.needs_token()))
        .unwrap_or(limit.requests)
}

/// `"name";q=<quota>;w=<window in seconds>`.
fn policy_header(name: &str, limit: &RateLimit, own: u32) -> HeaderValue {
    let text = format!("{name};q={own};w={}", ceil_secs(limit.per));
    HeaderValue::try_from(text).expect("ASCII by construction")
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `text` as an RFC 8941 string: printable ASCII, `"` and `\` escaped,
/// anything else replaced.
fn sf_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
    out
}

/// The limiters of `routes`, keeping each earlier one whose route kept its
/// name and limits (its counts go on). An issuer's endpoints, legacy and
/// OAuth 2.0 alike, share one limiter: a client is counted once however
/// it asks for tokens.
pub fn for_routes(
    routes: &[Route],
    earlier: &[Arc<Limiter>],
    metrics: &Metrics,
) -> Vec<Arc<Limiter>> {
    let mut built: Vec<Arc<Limiter>> = Vec::with_capacity(routes.len());
    for (i, r) in routes.iter().enumerate() {
        let issuer = |r: &Route| match r.action {
            RouteAction::Issue { issuer, .. } => Some(issuer),
            RouteAction::Proxy { .. } => None,
        };
        let sibling = issuer(r).and_then(|me| {
            (0..i)
                .find(|&j| issuer(&routes[j]) == Some(me) && routes[j].limits == r.limits)
                .map(|j| built[j].clone())
        });
        let limiter = sibling.unwrap_or_else(|| {
            earlier
                .iter()
                .find(|l| l.limits == r.limits && l.policy_name == sf_string(&r.name))
                .cloned()
                .unwrap_or_else(|| Arc::new(Limiter::new(r, metrics)))
        });
        built.push(limiter);
    }
    built
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_rules() {
        let net = |s: &str| s.parse::<ipnet::IpNet>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let open = IpRules::default();
        assert!(admits(&open, ip("203.0.113.9")));
        let rules = IpRules {
            allow: vec![net("10.0.0.0/8"), net("2001:db8::/32")],
            deny: vec![net("10.6.6.0/24")],
        };
        assert!(admits(&rules, ip("10.1.2.3")));
        assert!(admits(&rules, ip("2001:db8::1")));
        assert!(!admits(&rules, ip("10.6.6.6")), "deny wins over allow");
        assert!(!admits(&rules, ip("192.0.2.1")), "outside the allow list");
        // An IPv4 client on a dual-stack socket is still itself.
        assert!(admits(&rules, ip("::ffff:10.1.2.3")));
        assert!(!admits(&rules, ip("::ffff:10.6.6.1")));
    }

    #[test]
    fn policy_names_are_structured_field_strings() {
        assert_eq!(sf_string("api"), "\"api\"");
        assert_eq!(sf_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(sf_string("ñ"), "\"_\"");
    }
}
