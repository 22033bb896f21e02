//! `[store]`: the embedded store, or Redis by `url`, through its
//! sentinels, or as a Redis Cluster.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::super::file::FileStore;
use super::super::model::{
    OutagePolicy, RedisSettings, RedisTarget, StoreBackend, StoreSettings, TlsFiles,
};
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
                if let Some(first) = s.cluster.first() {
                    self.problem(
                        first,
                        "store.cluster",
                        "only the redis backend takes cluster",
                    );
                }
                StoreBackend::Embedded
            }
            "redis" => {
                let target = self.redis_target(s);
                let replicated = !matches!(target, RedisTarget::Url(_));
                let key_prefix = s.key_prefix.clone().unwrap_or_else(|| "portero:".into());
                if matches!(target, RedisTarget::Cluster(_)) && key_prefix.contains(['{', '}']) {
                    // A brace would become the hash tag of every key.
                    self.problem_no_span(
                        "store.key_prefix",
                        format!(
                            "{key_prefix:?}: braces are Redis Cluster hash tags; leave them out"
                        ),
                    );
                }
                let (tls, ca_file, client_cert) = self.redis_tls(s, &target);
                StoreBackend::Redis(Box::new(RedisSettings {
                    target,
                    password_env: s.password_env.clone(),
                    tls,
                    ca_file,
                    client_cert,
                    key_prefix,
                    timeout: self.duration(&s.timeout, "store.timeout", Duration::from_millis(500)),
                    ttl_margin: leeway,
                    wait_replicas: s.wait_replicas.unwrap_or(u32::from(replicated)),
                    wait_timeout: self.duration(
                        &s.wait_timeout,
                        "store.wait_timeout",
                        Duration::from_millis(100),
                    ),
                }))
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

    /// `url`, `sentinels` with `sentinel_master`, or `cluster`: exactly one.
    fn redis_target(&mut self, s: &FileStore) -> RedisTarget {
        if s.sentinels.is_empty() {
            if let Some(m) = &s.sentinel_master {
                self.problem(m, "store.sentinel_master", "is for store.sentinels only");
            }
        }
        let given = [
            s.url.as_ref().map(|u| (u, "url")),
            s.sentinels.first().map(|x| (x, "sentinels")),
            s.cluster.first().map(|x| (x, "cluster")),
        ];
        let mut given = given.into_iter().flatten();
        let first = given.next();
        if let Some((at, _)) = given.next() {
            self.problem(
                at,
                "store",
                "give one of url, sentinels (with sentinel_master) or cluster, not several",
            );
        }
        match first {
            Some((url, "url")) => RedisTarget::Url(self.redis_url(url)),
            Some((_, "sentinels")) => self.sentinels(s),
            Some(_) => RedisTarget::Cluster(self.addresses(&s.cluster, "store.cluster")),
            None => {
                self.problem_no_span(
                    "store.url",
                    "the redis backend needs a url (redis://host:port), sentinels \
                     (with sentinel_master) or cluster",
                );
                RedisTarget::Url(String::new())
            }
        }
    }

    /// `tls` (sentinels and cluster nodes; a url has its scheme), and
    /// `ca_file` and the client certificate, with TLS only.
    fn redis_tls(
        &mut self,
        s: &FileStore,
        target: &RedisTarget,
    ) -> (bool, Option<PathBuf>, Option<TlsFiles>) {
        let tls = match (&s.tls, target) {
            (Some(t), RedisTarget::Url(_)) => {
                self.problem(t, "store.tls", "with url, the scheme says it: rediss://");
                false
            }
            (Some(t), _) => *t.get_ref(),
            (None, _) => false,
        };
        let url_tls = matches!(target, RedisTarget::Url(u) if u.starts_with("rediss://"));
        let given = [
            (&s.ca_file, "store.ca_file"),
            (&s.client_cert_file, "store.client_cert_file"),
            (&s.client_key_file, "store.client_key_file"),
        ];
        for (value, key) in given {
            if let (Some(v), false) = (value, tls || url_tls) {
                self.problem(v, key, "is for TLS: tls = true, or a rediss:// url");
            }
        }
        let ca_file = s.ca_file.as_ref().map(|f| {
            let path = self.resolve(f.get_ref());
            if let Err(e) = crate::config::pem_certificates(&path) {
                self.problem(f, "store.ca_file", e);
            }
            path
        });
        let client_cert =
            self.client_certificate("store.", &s.client_cert_file, &s.client_key_file);
        (tls, ca_file, client_cert)
    }

    /// `host:port` each.
    fn addresses(&mut self, list: &[Spanned<String>], what: &str) -> Vec<String> {
        for address in list {
            let text = address.get_ref();
            let port = text.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(p)) if p > 0) || text.contains('/') {
                self.problem(address, what, format!("{text:?}: expected host:port"));
            }
        }
        list.iter().map(|x| x.get_ref().clone()).collect()
    }

    fn sentinels(&mut self, s: &FileStore) -> RedisTarget {
        let sentinels = self.addresses(&s.sentinels, "store.sentinels");
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
            sentinels,
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
