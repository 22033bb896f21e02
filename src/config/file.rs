//! `gateway.toml` as written: the only serde types of the file. Every table
//! refuses unknown keys; values keep their spans so problems name a line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

mod issuer;
pub(super) use issuer::*;

/// Reads `text` as the config file's tables, each issuer's by its `kind`.
pub(super) fn read(text: &str) -> Result<FileConfig, toml::de::Error> {
    issuer::with_shapes_of(text, || toml::from_str(text))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub(super) server: FileServer,
    #[serde(default)]
    pub(super) listen: Vec<FileListener>,
    #[serde(default)]
    pub(super) admin: FileAdmin,
    #[serde(default)]
    pub(super) store: FileStore,
    #[serde(default)]
    pub(super) auth: FileAuth,
    #[serde(default)]
    pub(super) upstreams: BTreeMap<String, FileUpstream>,
    #[serde(default)]
    pub(super) dns: FileDns,
    #[serde(default, deserialize_with = "issuer::by_kind")]
    pub(super) issuers: BTreeMap<String, FileIssuer>,
    #[serde(default)]
    pub(super) routes: Vec<FileRoute>,
    #[serde(default)]
    pub(super) cors: BTreeMap<String, FileCors>,
    #[serde(default)]
    pub(super) tracing: FileTracing,
    #[serde(default)]
    pub(super) hash_limits: FileHashLimits,
    pub(super) sessions: Option<Spanned<FileSessions>>,
}

/// `[sessions]`: portero's own session endpoints and lifetimes.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSessions {
    pub(super) callback_path: Option<Spanned<String>>,
    pub(super) logout_path: Option<Spanned<String>>,
    pub(super) backchannel_logout_path: Option<Spanned<String>>,
    pub(super) start_path: Option<Spanned<String>>,
    pub(super) idle_timeout: Option<Spanned<DurationText>>,
    pub(super) absolute_timeout: Option<Spanned<DurationText>>,
    pub(super) refresh_before: Option<Spanned<DurationText>>,
    pub(super) post_logout_redirect_uri: Option<Spanned<String>>,
}

/// `[hash_limits]`: the most a stored hash may cost to check.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHashLimits {
    pub(super) pbkdf2_rounds: Option<u32>,
    pub(super) bcrypt_cost: Option<Spanned<u32>>,
    pub(super) memory: Option<Spanned<SizeText>>,
    pub(super) argon2_passes: Option<u32>,
    pub(super) parallelism: Option<u32>,
    pub(super) scrypt_log_n: Option<Spanned<u8>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTracing {
    pub(super) otlp_endpoint: Option<Spanned<String>>,
    pub(super) service_name: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCors {
    pub(super) allow_origins: Vec<Spanned<String>>,
    pub(super) allow_methods: Option<Vec<Spanned<String>>>,
    pub(super) allow_headers: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) expose_headers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) allow_credentials: bool,
    pub(super) max_age: Option<Spanned<DurationText>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileServer {
    pub(super) threads: Option<Spanned<usize>>,
    pub(super) grace_period: Option<Spanned<DurationText>>,
    pub(super) shutdown_timeout: Option<Spanned<DurationText>>,
    pub(super) data_dir: Option<String>,
    pub(super) max_body_size: Option<Spanned<SizeText>>,
    pub(super) access_log: Option<bool>,
    pub(super) log_format: Option<Spanned<String>>,
    pub(super) trace_context: Option<bool>,
    pub(super) header_timeout: Option<Spanned<DurationText>>,
    pub(super) idle_timeout: Option<Spanned<DurationText>>,
    pub(super) tls_handshake_timeout: Option<Spanned<DurationText>>,
    pub(super) body_timeout: Option<Spanned<DurationText>>,
    pub(super) max_connections: Option<Spanned<usize>>,
    pub(super) max_connections_per_ip: Option<Spanned<usize>>,
    pub(super) max_requests_per_ip: Option<Spanned<usize>>,
    pub(super) request_buffer_size: Option<Spanned<SizeText>>,
    pub(super) min_body_rate: Option<Spanned<SizeText>>,
    pub(super) min_body_rate_after: Option<Spanned<DurationText>>,
    pub(super) max_header_size: Option<Spanned<SizeText>>,
    pub(super) trusted_proxies: Option<Vec<Spanned<String>>>,
    /// The trusted proxies set `Client-Cert` (RFC 9440) themselves.
    pub(super) client_cert_from_proxies: Option<Spanned<bool>>,
    pub(super) merge_slashes: Option<bool>,
    pub(super) allow_encoded_slashes: Option<bool>,
    pub(super) tunnel_idle_timeout: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(super) allow_ips: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) deny_ips: Vec<Spanned<String>>,
    pub(super) forward_auth_path: Option<Spanned<String>>,
    pub(super) forward_auth_style: Option<Spanned<String>>,
    /// Where clients reach portero: the base of the OAuth 2.0 issuer identifiers.
    pub(super) public_url: Option<Spanned<String>>,
    /// Where clients reach the listener that asks for client certificates,
    /// when it is not at `public_url` (RFC 8705 §5 endpoint aliases).
    pub(super) mtls_public_url: Option<Spanned<String>>,
}

/// `rate_limit = { requests = 100, per = "1s", by = "sub", burst = 20 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRateLimit {
    pub(super) requests: Spanned<u32>,
    pub(super) per: Spanned<DurationText>,
    pub(super) by: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) burst: u32,
    pub(super) scope: Option<Spanned<String>>,
    pub(super) override_claim: Option<String>,
}

/// `concurrency = { max_in_flight = 4, by = "sub" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConcurrency {
    pub(super) max_in_flight: Spanned<u32>,
    pub(super) by: Option<Spanned<String>>,
}

/// The limit keys a route and a token endpoint share (written out in
/// both: serde's `flatten` would let unknown keys through).
pub(super) struct FileLimits<'a> {
    pub(super) allow_ips: &'a [Spanned<String>],
    pub(super) deny_ips: &'a [Spanned<String>],
    pub(super) rate_limit: Option<&'a Spanned<FileRateLimit>>,
    pub(super) max_in_flight: Option<&'a Spanned<u32>>,
    pub(super) concurrency: Option<&'a Spanned<FileConcurrency>>,
}

macro_rules! limits_of {
    ($t:ty) => {
        impl $t {
            pub(super) fn limits(&self) -> FileLimits<'_> {
                FileLimits {
                    allow_ips: &self.allow_ips,
                    deny_ips: &self.deny_ips,
                    rate_limit: self.rate_limit.as_ref(),
                    max_in_flight: self.max_in_flight.as_ref(),
                    concurrency: self.concurrency.as_ref(),
                }
            }
        }
    };
}
limits_of!(FileRoute);
limits_of!(FileDialectIssuer);
limits_of!(FileStandardIssuer);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListener {
    pub(super) addr: Spanned<String>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
    /// Roots client certificates are verified against (mutual TLS).
    pub(super) client_ca_file: Option<Spanned<String>>,
    /// `"optional"` (the default) or `"required"`.
    pub(super) client_certificates: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) proxy_protocol: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAdmin {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) token_env: Option<String>,
    pub(super) max_connections: Option<Spanned<usize>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileStore {
    pub(super) backend: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) password_env: Option<String>,
    #[serde(default)]
    pub(super) sentinels: Vec<Spanned<String>>,
    pub(super) sentinel_master: Option<Spanned<String>>,
    pub(super) sentinel_password_env: Option<String>,
    #[serde(default)]
    pub(super) cluster: Vec<Spanned<String>>,
    pub(super) tls: Option<Spanned<bool>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) client_cert_file: Option<Spanned<String>>,
    pub(super) client_key_file: Option<Spanned<String>>,
    pub(super) wait_replicas: Option<u32>,
    pub(super) wait_timeout: Option<Spanned<DurationText>>,
    pub(super) key_prefix: Option<String>,
    pub(super) timeout: Option<Spanned<DurationText>>,
    pub(super) on_outage: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuth {
    pub(super) leeway: Option<Spanned<DurationText>>,
    pub(super) verified_cache_size: Option<usize>,
    pub(super) strip_headers: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDns {
    pub(super) servers: Option<Vec<Spanned<String>>>,
    pub(super) min_ttl: Option<Spanned<DurationText>>,
    pub(super) max_ttl: Option<Spanned<DurationText>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUpstream {
    pub(super) builtin: Option<Spanned<String>>,
    pub(super) listen: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) servers: Vec<Spanned<String>>,
    pub(super) connect_timeout: Option<Spanned<DurationText>>,
    pub(super) read_timeout: Option<Spanned<DurationText>>,
    pub(super) write_timeout: Option<Spanned<DurationText>>,
    pub(super) max_idle_connections: Option<usize>,
    pub(super) idle_timeout: Option<Spanned<DurationText>>,
    pub(super) max_connections: Option<Spanned<usize>>,
    pub(super) queue_timeout: Option<Spanned<DurationText>>,
    /// `"tcp"`, `"none"`, or a [`FileHttpCheck`] table.
    pub(super) health_check: Option<Spanned<toml::Value>>,
    pub(super) health_check_interval: Option<Spanned<DurationText>>,
    pub(super) eject_after: Option<Spanned<u32>>,
    pub(super) eject_for: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(super) eject_on_5xx: bool,
    pub(super) host: Option<String>,
    pub(super) tls: Option<Spanned<bool>>,
    pub(super) sni: Option<Spanned<String>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) client_cert_file: Option<Spanned<String>>,
    pub(super) client_key_file: Option<Spanned<String>>,
    pub(super) protocol: Option<Spanned<String>>,
    /// `/readyz` is not ready while this upstream has no healthy server.
    #[serde(default)]
    pub(super) gates_readiness: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHttpCheck {
    pub(super) path: String,
    pub(super) expect: Option<Vec<u16>>,
    pub(super) interval: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) healthy_after: Option<u32>,
    pub(super) unhealthy_after: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRoute {
    pub(super) name: Option<String>,
    #[serde(default = "any_host")]
    pub(super) host: Spanned<String>,
    pub(super) path: Spanned<String>,
    #[serde(default)]
    pub(super) methods: Vec<Spanned<String>>,
    pub(super) upstream: Spanned<String>,
    #[serde(default)]
    pub(super) strip_prefix: bool,
    #[serde(default)]
    pub(super) public: bool,
    #[serde(default)]
    pub(super) issuers: Vec<Spanned<String>>,
    /// A source, or a list of them: `"bearer"` or `["bearer", "query:access_token"]`.
    pub(super) token_from: Option<Spanned<toml::Value>>,
    pub(super) token_use: Option<String>,
    pub(super) audience: Option<String>,
    #[serde(default)]
    pub(super) roles: Vec<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    #[serde(default)]
    pub(super) claims: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Spanned<String>>,
    /// A rule in CEL over `claims` and `request` (`crate::rule`).
    pub(super) rule: Option<Spanned<String>>,
    pub(super) forward_token: Option<bool>,
    /// `"allowed"` (bearer and bound tokens) or `"required"` (bound only).
    pub(super) token_binding: Option<Spanned<String>>,
    /// The algorithms a DPoP proof may be signed with.
    pub(super) dpop_algs: Option<Spanned<Vec<String>>>,
    /// DPoP proofs must carry a server nonce.
    pub(super) dpop_nonce: Option<Spanned<bool>>,
    pub(super) cors: Option<Spanned<String>>,
    pub(super) upgrades: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) underscores_in_headers: bool,
    /// Routed by the method a POST's override header names (`target::method`).
    pub(super) method_override: Option<Spanned<bool>>,
    /// The client's certificate goes upstream (RFC 9440 fields).
    pub(super) forward_client_cert: Option<Spanned<bool>>,
    /// Publishes RFC 9728 protected resource metadata for the route.
    pub(super) resource_metadata: Option<Spanned<bool>>,
    /// Browsers sign in at this issuer; a session admits them.
    pub(super) login: Option<Spanned<String>>,
    pub(super) login_pass_token: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) allow_ips: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) deny_ips: Vec<Spanned<String>>,
    pub(super) rate_limit: Option<Spanned<FileRateLimit>>,
    pub(super) max_in_flight: Option<Spanned<u32>>,
    pub(super) concurrency: Option<Spanned<FileConcurrency>>,
}

/// Text the checks read as a duration or a size: a type of its own, so
/// that a value of another type is refused saying what was expected
/// ("expected a duration such as "5s"", not "expected a string").
macro_rules! unit_text {
    ($name:ident, $expected:literal) => {
        #[derive(Clone, Debug)]
        pub(super) struct $name(String);

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Text;
                impl serde::de::Visitor<'_> for Text {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expected)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        Ok($name(s.to_string()))
                    }
                }
                d.deserialize_str(Text)
            }
        }
    };
}
unit_text!(DurationText, "a duration such as \"5s\"");
unit_text!(SizeText, "a size such as \"64KiB\"");

fn any_host() -> Spanned<String> {
    Spanned::new(0..0, "*".to_string())
}

fn yes() -> bool {
    true
}
