//! The limits a route or a token endpoint sets: `allow_ips` / `deny_ips`,
//! `rate_limit`, `max_in_flight`, `concurrency`.

use std::time::Duration;

use toml::Spanned;

use super::super::file::*;
use super::super::model::*;
use super::super::units::parse_duration;
use super::Checker;

const MAX_REQUESTS: u32 = RateLimit::MAX_REQUESTS;

/// A window longer than a day is a quota, not a rate: the in-memory
/// estimator would hold a key's count that long.
const LONGEST_WINDOW: Duration = Duration::from_secs(86_400);

impl Checker<'_> {
    /// `prefix` names the table (`routes[2]`, `issuers.shop`); `token` says
    /// whether a token is verified before the limits that need one.
    pub(super) fn route_limits(
        &mut self,
        f: FileLimits<'_>,
        prefix: &str,
        token: bool,
    ) -> RouteLimits {
        let key = |k: &str| format!("{prefix}.{k}");
        let max_in_flight = f.max_in_flight.map(|n| {
            if *n.get_ref() == 0 {
                self.problem(n, key("max_in_flight"), "must be at least 1");
            }
            (*n.get_ref()).max(1)
        });
        let concurrency = f.concurrency.map(|c| {
            let table = c.get_ref();
            if *table.max_in_flight.get_ref() == 0 {
                self.problem(
                    &table.max_in_flight,
                    key("concurrency.max_in_flight"),
                    "must be at least 1",
                );
            }
            Concurrency {
                max_in_flight: (*table.max_in_flight.get_ref()).max(1),
                by: self.limit_key(&table.by, &key("concurrency.by"), token),
            }
        });
        RouteLimits {
            ips: self.ip_rules(f.allow_ips, f.deny_ips, prefix),
            rate: f
                .rate_limit
                .map(|r| self.rate_limit(r, &key("rate_limit"), token)),
            max_in_flight,
            concurrency,
        }
    }

    fn rate_limit(&mut self, r: &Spanned<FileRateLimit>, key: &str, token: bool) -> RateLimit {
        let table = r.get_ref();
        let requests = *table.requests.get_ref();
        if requests == 0 || requests > MAX_REQUESTS {
            self.problem(
                &table.requests,
                format!("{key}.requests"),
                format!("must be from 1 to {MAX_REQUESTS}"),
            );
        }
        if table.burst > MAX_REQUESTS {
            self.problem(
                r,
                format!("{key}.burst"),
                format!("must be at most {MAX_REQUESTS}"),
            );
        }
        let per = match parse_duration(table.per.get_ref()) {
            Ok(d) if d < Duration::from_millis(100) => {
                self.problem(
                    &table.per,
                    format!("{key}.per"),
                    "must be at least 100ms (write 10 per 1s rather than 1 per 10ms)",
                );
                Duration::from_secs(1)
            }
            Ok(d) if d > LONGEST_WINDOW => {
                self.problem(&table.per, format!("{key}.per"), "must be at most 24h");
                LONGEST_WINDOW
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(&table.per, format!("{key}.per"), e);
                Duration::from_secs(1)
            }
        };
        let scope = self.choice(
            &table.scope,
            &format!("{key}.scope"),
            [
                ("instance", LimitScope::Instance),
                ("cluster", LimitScope::Cluster),
            ],
        );
        if table.override_claim.is_some() && !token {
            self.problem(
                r,
                format!("{key}.override_claim"),
                "needs a verified token: not on a public route or a token endpoint",
            );
        }
        RateLimit {
            requests: requests.clamp(1, MAX_REQUESTS),
            per,
            burst: table.burst.min(MAX_REQUESTS),
            by: self.limit_key(&table.by, &format!("{key}.by"), token),
            scope,
            override_claim: table.override_claim.clone(),
        }
    }

    /// `by`: `sub` by default where a token is verified, else `client_ip`.
    fn limit_key(&mut self, by: &Option<Spanned<String>>, key: &str, token: bool) -> LimitKey {
        let Some(by) = by else {
            return if token {
                LimitKey::Subject
            } else {
                LimitKey::ClientIp
            };
        };
        match super::parse::limit_key(by.get_ref()) {
            Ok(k) if k.needs_token() && !token => {
                self.problem(
                    by,
                    key,
                    format!(
                        "{:?} needs a verified token: a public route or a token endpoint counts by \"client_ip\" or \"header:NAME\"",
                        by.get_ref()
                    ),
                );
                LimitKey::ClientIp
            }
            Ok(k) => k,
            Err(e) => {
                self.problem(by, key, e);
                LimitKey::ClientIp
            }
        }
    }

    /// `allow_ips` and `deny_ips` of the table `prefix` names; a deny list
    /// of every address is refused, as nothing could ever reach what it
    /// guards.
    pub(super) fn ip_rules(
        &mut self,
        allow: &[Spanned<String>],
        deny: &[Spanned<String>],
        prefix: &str,
    ) -> IpRules {
        let ips = IpRules {
            allow: self.ip_nets(allow, &format!("{prefix}.allow_ips")),
            deny: self.ip_nets(deny, &format!("{prefix}.deny_ips")),
        };
        let every = |v4: bool| {
            ips.deny
                .iter()
                .any(|n| n.prefix_len() == 0 && n.addr().is_ipv4() == v4)
        };
        if let (true, true, Some(first)) = (every(true), every(false), deny.first()) {
            let message = "denies every address, IPv4 and IPv6: nothing could ever reach it";
            self.problem(first, format!("{prefix}.deny_ips"), message);
        }
        ips
    }

    /// A list of addresses or CIDR networks.
    pub(super) fn ip_nets(&mut self, list: &[Spanned<String>], key: &str) -> Vec<ipnet::IpNet> {
        let mut nets = Vec::new();
        for (i, v) in list.iter().enumerate() {
            let text = v.get_ref().trim();
            let net = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match net {
                Ok(n) => nets.push(n.trunc()),
                Err(_) => self.problem(
                    v,
                    format!("{key}[{i}]"),
                    format!("{text:?} is not an IP address or CIDR network"),
                ),
            }
        }
        nets
    }

    /// `scope = "cluster"` counts in Redis: there must be one. Named where
    /// the file writes it (a token endpoint's routes share their issuer's).
    pub(super) fn check_cluster_limits(&mut self, file: &FileConfig, store: &StoreSettings) {
        if matches!(store.backend, StoreBackend::Redis(_)) {
            return;
        }
        let routes = file
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("routes[{i}]"), &r.rate_limit));
        let issuers = file
            .issuers
            .iter()
            .map(|(name, i)| (format!("issuers.{name}"), i.rate_limit()));
        let routes = routes.map(|(table, rate)| (table, rate.as_ref()));
        for (table, rate) in routes.chain(issuers) {
            let scope = rate.and_then(|r| r.get_ref().scope.as_ref());
            if let Some(scope) = scope.filter(|s| s.get_ref() == "cluster") {
                self.problem(
                    scope,
                    format!("{table}.rate_limit.scope"),
                    "\"cluster\" shares counts through the Redis store: set store.backend = \"redis\"",
                );
            }
        }
    }
}
