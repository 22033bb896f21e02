//! `[upstreams.*]` and `[dns]`: where requests go, how those servers are
//! found and reached, and how they are checked.

use std::net::{IpAddr, SocketAddr};

use toml::Spanned;

use super::super::file::{FileDns, FileHttpCheck, FileUpstream};
use super::super::model::{
    DnsSettings, Ejection, HealthCheck, HttpCheck, ServerName, Upstream, UpstreamKind,
    UpstreamProtocol, UpstreamTls,
};
use super::super::pem_certificates;
use super::super::units::{parse_duration, secs};
use super::Checker;

impl Checker<'_> {
    pub(super) fn upstream(&mut self, name: &str, u: &FileUpstream) -> Upstream {
        let key = |k: &str| format!("upstreams.{name}.{k}");
        let kind = match (&u.builtin, u.servers.is_empty()) {
            (Some(b), true) => {
                if b.get_ref() != "echo" {
                    self.problem(
                        b,
                        key("builtin"),
                        format!("unknown builtin {:?} (known: \"echo\")", b.get_ref()),
                    );
                }
                let listen = match &u.listen {
                    Some(l) => self.addr(l, &key("listen")),
                    None => SocketAddr::from(([127, 0, 0, 1], 0)),
                };
                if !listen.ip().is_loopback() {
                    self.problem_no_span(
                        key("listen"),
                        "the echo upstream listens on loopback only",
                    );
                }
                UpstreamKind::Echo { listen }
            }
            (None, false) => {
                let servers = u
                    .servers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| self.server_name(s, &key(&format!("servers[{i}]"))))
                    .collect();
                UpstreamKind::Servers(servers)
            }
            (Some(b), false) => {
                self.problem(
                    b,
                    key("builtin"),
                    "give either builtin or servers, not both",
                );
                UpstreamKind::Servers(Vec::new())
            }
            (None, true) => {
                self.problem_no_span(format!("upstreams.{name}"), "needs servers or builtin");
                UpstreamKind::Servers(Vec::new())
            }
        };
        let health_check = self.health_check(name, u);
        let ejection = u.eject_after.as_ref().map(|after| {
            if *after.get_ref() == 0 {
                self.problem(after, key("eject_after"), "must be at least 1");
            }
            Ejection {
                after: *after.get_ref(),
                cool_down: self.duration(&u.eject_for, &key("eject_for"), secs(30)),
                on_5xx: u.eject_on_5xx,
            }
        });
        Upstream {
            name: name.to_string(),
            kind,
            connect_timeout: self.duration(&u.connect_timeout, &key("connect_timeout"), secs(2)),
            read_timeout: self.duration(&u.read_timeout, &key("read_timeout"), secs(30)),
            write_timeout: self.duration(&u.write_timeout, &key("write_timeout"), secs(30)),
            max_idle_connections: u.max_idle_connections.unwrap_or(256),
            idle_timeout: self.duration(&u.idle_timeout, &key("idle_timeout"), secs(60)),
            max_connections: self.at_least_one(&u.max_connections, &key("max_connections"), 1024),
            queue_timeout: self.duration(&u.queue_timeout, &key("queue_timeout"), secs(2)),
            health_check,
            ejection,
            host: u.host.clone(),
            tls: self.upstream_tls(name, u),
            protocol: self.protocol(name, u),
            gates_readiness: u.gates_readiness,
        }
    }

    /// `"tcp"` (the default), `"none"`, or an HTTP check's table.
    fn health_check(&mut self, name: &str, u: &FileUpstream) -> HealthCheck {
        let key = format!("upstreams.{name}.health_check");
        let interval = self.duration(
            &u.health_check_interval,
            &format!("upstreams.{name}.health_check_interval"),
            secs(2),
        );
        let Some(check) = &u.health_check else {
            return HealthCheck::Tcp { interval };
        };
        let table = match check.get_ref() {
            toml::Value::String(s) if s == "tcp" => return HealthCheck::Tcp { interval },
            toml::Value::String(s) if s == "none" => return HealthCheck::None,
            toml::Value::Table(_) => check.get_ref().clone().try_into::<FileHttpCheck>(),
            other => {
                let message = format!(
                    "unknown health check {other} (known: \"tcp\", \"none\", or {{ path = \"/healthz\", ... }})"
                );
                self.problem(check, key, message);
                return HealthCheck::None;
            }
        };
        let table = match table {
            Ok(t) => t,
            Err(e) => {
                self.problem(check, key, e.message().to_string());
                return HealthCheck::None;
            }
        };
        if !table.path.starts_with('/') {
            self.problem(check, &key, "path must start with /");
        }
        let mut duration = |v: &Option<String>, what: &str, default| match v {
            None => default,
            Some(text) => parse_duration(text).unwrap_or_else(|e| {
                self.problem(check, format!("{key}.{what}"), e);
                default
            }),
        };
        let interval = duration(&table.interval, "interval", secs(2));
        let timeout = duration(&table.timeout, "timeout", secs(1));
        let at_least_one = |n: Option<u32>, default: u32| n.unwrap_or(default).max(1);
        HealthCheck::Http(HttpCheck {
            path: table.path,
            expect: table.expect.unwrap_or_else(|| vec![200]),
            interval,
            timeout,
            healthy_after: at_least_one(table.healthy_after, 2),
            unhealthy_after: at_least_one(table.unhealthy_after, 3),
        })
    }

    fn protocol(&mut self, name: &str, u: &FileUpstream) -> UpstreamProtocol {
        let key = format!("upstreams.{name}.protocol");
        let tls = u.tls.as_ref().is_some_and(|t| *t.get_ref());
        let Some(p) = &u.protocol else {
            return UpstreamProtocol::Http1;
        };
        match (p.get_ref().as_str(), tls) {
            ("http1", _) => UpstreamProtocol::Http1,
            ("h2c", false) => UpstreamProtocol::H2c,
            ("h2", true) => UpstreamProtocol::H2,
            ("h2c", true) => {
                self.problem(p, key, "h2c is cleartext: with tls = true, use \"h2\"");
                UpstreamProtocol::H2
            }
            ("h2", false) => {
                self.problem(p, key, "h2 needs tls = true (cleartext HTTP/2 is \"h2c\")");
                UpstreamProtocol::H2c
            }
            (other, _) => {
                let message =
                    format!("unknown protocol {other:?} (known: \"http1\", \"h2c\", \"h2\")");
                self.problem(p, key, message);
                UpstreamProtocol::Http1
            }
        }
    }

    /// `tls = true` and what goes with it; every file is read here, so a
    /// missing or empty one is named with its line before anything starts.
    fn upstream_tls(&mut self, name: &str, u: &FileUpstream) -> Option<UpstreamTls> {
        let key = |k: &str| format!("upstreams.{name}.{k}");
        let on = u.tls.as_ref().is_some_and(|t| *t.get_ref());
        if !on {
            let given = [
                (&u.sni, "sni"),
                (&u.ca_file, "ca_file"),
                (&u.client_cert_file, "client_cert_file"),
                (&u.client_key_file, "client_key_file"),
            ];
            for (value, k) in given {
                if let Some(v) = value {
                    self.problem(v, key(k), "needs tls = true");
                }
            }
            return None;
        }
        if let Some(sni) = &u.sni {
            if !is_dns_name(sni.get_ref()) && sni.get_ref().parse::<IpAddr>().is_err() {
                self.problem(sni, key("sni"), "not a host name or IP address");
            }
        }
        let ca_file = u.ca_file.as_ref().map(|f| {
            let path = self.resolve(f.get_ref());
            if let Err(e) = pem_certificates(&path) {
                self.problem(f, key("ca_file"), e);
            }
            path
        });
        let client_cert = self.client_certificate(
            &format!("upstreams.{name}."),
            &u.client_cert_file,
            &u.client_key_file,
        );
        Some(UpstreamTls {
            sni: u.sni.as_ref().map(|s| s.get_ref().clone()),
            ca_file,
            client_cert,
        })
    }

    /// `ip:port`, `[v6]:port` or `name:port`.
    fn server_name(&mut self, v: &Spanned<String>, key: &str) -> ServerName {
        let text = v.get_ref();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return ServerName::Addr(addr);
        }
        let named = text.rsplit_once(':').and_then(|(host, port)| {
            let port = port.parse::<u16>().ok().filter(|&p| p != 0)?;
            is_dns_name(host).then(|| ServerName::Dns {
                host: host.trim_end_matches('.').to_ascii_lowercase(),
                port,
            })
        });
        named.unwrap_or_else(|| {
            self.problem(v, key, format!("{text:?} is neither ip:port nor name:port"));
            ServerName::Addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        })
    }

    pub(super) fn dns(&mut self, d: &FileDns) -> DnsSettings {
        let servers = d
            .servers
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| {
                let key = format!("dns.servers[{i}]");
                match s.get_ref().parse::<std::net::IpAddr>() {
                    Ok(ip) => SocketAddr::new(ip, 53),
                    Err(_) => self.addr(s, &key),
                }
            })
            .collect();
        let min_ttl = self.duration(&d.min_ttl, "dns.min_ttl", secs(1));
        let max_ttl = self.duration(&d.max_ttl, "dns.max_ttl", secs(300));
        if min_ttl.is_zero() || min_ttl > max_ttl {
            let at = d.min_ttl.as_ref().or(d.max_ttl.as_ref());
            let message = "min_ttl must be above zero and at most max_ttl";
            match at {
                Some(at) => self.problem(at, "dns.min_ttl", message),
                None => self.problem_no_span("dns.min_ttl", message),
            }
        }
        DnsSettings {
            servers,
            min_ttl,
            max_ttl,
        }
    }
}

/// Letters, digits, hyphens and dots, in labels of 1 to 63 characters; not
/// all digits and dots (that would be a mistyped IPv4 address).
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::is_dns_name;

    #[test]
    fn dns_names_are_told_from_typos() {
        for good in [
            "orders",
            "orders.default.svc",
            "a-b.example.",
            "x_y.internal",
        ] {
            assert!(is_dns_name(good), "{good}");
        }
        for bad in [
            "", "10.0.0", "a..b", "-a", "a-", "a b", "a/b", "[::1]", "a:b",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }
}
