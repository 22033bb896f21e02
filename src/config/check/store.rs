//! `[store]`: the embedded store, or Redis by `url` or through its
//! sentinels.

use std::time::Duration;

use toml::Spanned;

use super::super::file::FileStore;
use super::super::model::{OutagePolicy, RedisSettings, RedisTarget, StoreBackend, StoreSettings};
use super::Checker;

impl Checker<'_> {
    pub(super) fn store(&mut self, s: &FileStore, leeway: Duration) -> StoreSettings {
        let on_outage = match &s.on_outage {
            None => OutagePolicy::FailStatic,
            Some(v) => match v.get_ref().as_str() {
                "fail-static" => OutagePolicy::FailStatic,
                "fail-closed" => OutagePolicy::FailClosed,
                other => {
                    self.problem(
                        v,
                        "store.on_outage",
                        format!("{other:?}: expected \"fail-static\" or \"fail-closed\""),
                    );
                    OutagePolicy::FailStatic
                }
            },
        };
        let backend = s
            .backend
            .as_ref()
            .map_or("embedded", |b| b.get_ref().as_str());
        let backend = match backend {
            "embedded" => {
                if let Some(url) = &s.url {
                    self.problem(url, "store.url", "only the redis backend takes a url");
                }
                if let Some(first) = s.sentinels.first() {
                    self.problem(
                        first,
                        "store.sentinels",
                        "only the redis backend takes sentinels",
                    );
                }
                StoreBackend::Embedded
            }
            "redis" => {
                let target = self.redis_target(s);
                let sentinels = matches!(target, RedisTarget::Sentinel { .. });
                StoreBackend::Redis(RedisSettings {
                    target,
                    password_env: s.password_env.clone(),
                    key_prefix: s.key_prefix.clone().unwrap_or_else(|| "portero:".into()),
                    timeout: self.duration(&s.timeout, "store.timeout", Duration::from_millis(500)),
                    ttl_margin: leeway,
                    wait_replicas: s.wait_replicas.unwrap_or(u32::from(sentinels)),
                    wait_timeout: self.duration(
                        &s.wait_timeout,
                        "store.wait_timeout",
                        Duration::from_millis(100),
                    ),
                })
            }
            other => {
                let at = s
                    .backend
                    .as_ref()
                    .expect("a non-default backend was written");
                self.problem(
                    at,
                    "store.backend",
                    format!("{other:?}: expected \"embedded\" or \"redis\""),
                );
                StoreBackend::Embedded
            }
        };
        StoreSettings { backend, on_outage }
    }

    /// `url`, or `sentinels` with `sentinel_master`: exactly one.
    fn redis_target(&mut self, s: &FileStore) -> RedisTarget {
        match (&s.url, s.sentinels.first()) {
            (Some(url), None) => {
                if let Some(m) = &s.sentinel_master {
                    self.problem(
                        m,
                        "store.sentinel_master",
                        "is for store.sentinels, not store.url",
                    );
                }
                RedisTarget::Url(self.redis_url(url))
            }
            (None, Some(_)) => self.sentinels(s),
            (Some(url), Some(_)) => {
                self.problem(
                    url,
                    "store.url",
                    "give either url or sentinels (with sentinel_master), not both",
                );
                RedisTarget::Url(url.get_ref().clone())
            }
            (None, None) => {
                self.problem_no_span(
                    "store.url",
                    "the redis backend needs a url (redis://host:port) or sentinels \
                     (with sentinel_master)",
                );
                RedisTarget::Url(String::new())
            }
        }
    }

    fn sentinels(&mut self, s: &FileStore) -> RedisTarget {
        for sentinel in &s.sentinels {
            let text = sentinel.get_ref();
            let port = text.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(p)) if p > 0) || text.contains('/') {
                self.problem(
                    sentinel,
                    "store.sentinels",
                    format!("{text:?}: expected host:port"),
                );
            }
        }
        let master = match &s.sentinel_master {
            Some(m) if !m.get_ref().is_empty() => m.get_ref().clone(),
            _ => {
                self.problem_no_span(
                    "store.sentinel_master",
                    "sentinels need the name of the master they watch",
                );
                String::new()
            }
        };
        RedisTarget::Sentinel {
            sentinels: s.sentinels.iter().map(|x| x.get_ref().clone()).collect(),
            master,
            password_env: s.sentinel_password_env.clone(),
        }
    }

    fn redis_url(&mut self, url: &Spanned<String>) -> String {
        let text = url.get_ref();
        let Some(rest) = text
            .strip_prefix("redis://")
            .or_else(|| text.strip_prefix("rediss://"))
        else {
            self.problem(url, "store.url", "expected a redis:// or rediss:// url");
            return text.clone();
        };
        // A password in the file would end up in backups and diffs.
        let userinfo = rest.split('/').next().unwrap_or("").rsplit_once('@');
        if userinfo.is_some_and(|(user, _)| user.contains(':')) {
            self.problem(
                url,
                "store.url",
                "holds a password: name an environment variable in store.password_env instead",
            );
        }
        if text.contains("#insecure") {
            self.problem(
                url,
                "store.url",
                "TLS certificate checks cannot be turned off",
            );
        }
        text.clone()
    }
}
