//! What a reload cannot apply: the keys whose values are built into the
//! running process (bound sockets, the store's connection, the runtime's
//! threads, the log's format, the span exporter, connection-level limits).
//! Everything else is in the snapshot a reload swaps.

use super::model::{Config, Listener, StoreBackend};

/// The keys of `new` that differ from `running` (the config the process
/// started with, its listeners at the addresses they were bound to) and
/// take effect only after a restart, as `gateway.toml` names them.
pub fn restart_required(running: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut differs = |key: &str, differ: bool| {
        if differ {
            keys.push(key.to_string());
        }
    };
    if running.listeners.len() != new.listeners.len() {
        differs("listen", true);
    }
    for (i, (r, n)) in running.listeners.iter().zip(&new.listeners).enumerate() {
        for key in listener_changes(r, n) {
            differs(&format!("listen[{i}].{key}"), true);
        }
    }
    let (r, n) = (&running.admin, &new.admin);
    differs("admin.listen", r.listen != n.listen);
    differs("admin.token_env", r.token_env != n.token_env);
    differs(
        "admin.max_connections",
        r.max_connections != n.max_connections,
    );

    let (r, n) = (&running.server, &new.server);
    differs("server.threads", r.threads != n.threads);
    differs("server.data_dir", r.data_dir != n.data_dir);
    differs("server.log_format", r.log_format != n.log_format);
    differs("server.grace_period", r.grace_period != n.grace_period);
    differs(
        "server.shutdown_timeout",
        r.shutdown_timeout != n.shutdown_timeout,
    );
    let (r, n) = (&r.limits, &n.limits);
    differs(
        "server.header_timeout",
        r.header_timeout != n.header_timeout,
    );
    differs("server.idle_timeout", r.idle_timeout != n.idle_timeout);
    differs(
        "server.tls_handshake_timeout",
        r.tls_handshake_timeout != n.tls_handshake_timeout,
    );
    differs(
        "server.max_connections",
        r.max_connections != n.max_connections,
    );
    differs(
        "server.max_connections_per_ip",
        r.max_connections_per_ip != n.max_connections_per_ip,
    );
    differs(
        "server.max_requests_per_ip",
        r.max_requests_per_ip != n.max_requests_per_ip,
    );
    differs(
        "server.max_header_size",
        r.max_header_size != n.max_header_size,
    );

    match (&running.store.backend, &new.store.backend) {
        (StoreBackend::Embedded, StoreBackend::Embedded) => {}
        (StoreBackend::Redis(r), StoreBackend::Redis(n)) => {
            differs(
                "store.url / store.sentinels / store.cluster",
                r.target != n.target,
            );
            differs("store.wait_replicas", r.wait_replicas != n.wait_replicas);
            differs("store.wait_timeout", r.wait_timeout != n.wait_timeout);
            differs("store.password_env", r.password_env != n.password_env);
            differs("store.tls", r.tls != n.tls);
            differs("store.ca_file", r.ca_file != n.ca_file);
            differs("store.client_cert_file", r.client_cert != n.client_cert);
            differs("store.key_prefix", r.key_prefix != n.key_prefix);
            differs("store.timeout", r.timeout != n.timeout);
        }
        _ => differs("store.backend", true),
    }
    differs("tracing", running.span_export != new.span_export);
    keys
}

/// The keys of a listener that differ: every one, as the socket, its TLS
/// acceptor and the handshake's verifier are built once, at start.
fn listener_changes(r: &Listener, n: &Listener) -> Vec<&'static str> {
    let (r_tls, n_tls) = (r.tls.as_ref(), n.tls.as_ref());
    let (r_clients, n_clients) = (
        r_tls.and_then(|t| t.clients.as_ref()),
        n_tls.and_then(|t| t.clients.as_ref()),
    );
    [
        ("addr", r.addr != n.addr),
        ("tls_cert", r_tls.map(|t| &t.cert) != n_tls.map(|t| &t.cert)),
        ("tls_key", r_tls.map(|t| &t.key) != n_tls.map(|t| &t.key)),
        // The file named, or the roots it holds (rewritten in place).
        (
            "client_ca_file",
            r_clients.map(|c| (&c.ca, &c.roots)) != n_clients.map(|c| (&c.ca, &c.roots)),
        ),
        (
            "client_certificates",
            r_clients.map(|c| c.mode) != n_clients.map(|c| c.mode),
        ),
        ("proxy_protocol", r.proxy_protocol != n.proxy_protocol),
    ]
    .into_iter()
    .filter_map(|(key, differ)| differ.then_some(key))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::MINIMAL;
    use std::path::Path;

    /// `config::tests::MINIMAL` with two threads.
    fn base() -> String {
        format!("[server]\nthreads = 2\n{MINIMAL}")
    }

    fn config(text: &str) -> Config {
        crate::config::parse(text, Path::new("gateway.toml")).expect("a valid config")
    }

    #[test]
    fn settings_of_the_request_path_need_no_restart() {
        let running = config(&base());
        let new = config(&base().replace(
            "threads = 2\n",
            "threads = 2\nmax_body_size = \"1KiB\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n\
             trace_context = false\nbody_timeout = \"5s\"\n",
        ));
        assert_eq!(restart_required(&running, &new), Vec::<String>::new());
    }

    #[test]
    fn listeners_threads_log_format_store_and_tracing_are_named() {
        let running = config(&base());
        let new = config(
            &base()
                .replace(
                    "threads = 2\n",
                    "threads = 3\nlog_format = \"json\"\nheader_timeout = \"3s\"\n",
                )
                .replace("8080", "8081"),
        );
        assert_eq!(
            restart_required(&running, &new),
            [
                "listen[0].addr",
                "server.threads",
                "server.log_format",
                "server.header_timeout"
            ]
        );
        let more = config(&format!(
            "{}\n[[listen]]\naddr = \"127.0.0.1:8443\"\n\n\
             [store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\n\
             [tracing]\notlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\n",
            base()
        ));
        assert_eq!(
            restart_required(&running, &more),
            ["listen", "store.backend", "tracing"]
        );
    }

    #[test]
    fn a_listeners_client_certificate_roots_and_mode_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let key = rcgen::KeyPair::generate().unwrap();
            let path = dir.path().join(name);
            std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
            path
        };
        let (ca1, ca2) = (ca("ca1.pem"), ca("ca2.pem"));
        let fixture = |name: &str| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name)
        };
        let tls = |ca: &Path, mode: &str| {
            config(&base().replace(
                "addr = \"127.0.0.1:8080\"\n",
                &format!(
                    "addr = \"127.0.0.1:8080\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
                     client_ca_file = \"{}\"\nclient_certificates = \"{mode}\"\n",
                    fixture("tls_cert.pem").display(),
                    fixture("tls_key.pem").display(),
                    ca.display()
                ),
            ))
        };
        let running = tls(&ca1, "required");
        let none = Vec::<String>::new();
        assert_eq!(restart_required(&running, &tls(&ca1, "required")), none);
        assert_eq!(
            restart_required(&running, &tls(&ca2, "required")),
            ["listen[0].client_ca_file"]
        );
        assert_eq!(
            restart_required(&running, &tls(&ca1, "optional")),
            ["listen[0].client_certificates"]
        );
        assert_eq!(
            restart_required(&running, &config(&base())),
            [
                "listen[0].tls_cert",
                "listen[0].tls_key",
                "listen[0].client_ca_file",
                "listen[0].client_certificates"
            ]
        );
        // The same file, its roots rewritten in place.
        std::fs::copy(&ca2, &ca1).unwrap();
        assert_eq!(
            restart_required(&running, &tls(&ca1, "required")),
            ["listen[0].client_ca_file"]
        );
    }
}
