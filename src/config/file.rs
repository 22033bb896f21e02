//! `gateway.toml` as written: the only serde types of the file. Every table
//! refuses unknown keys; values keep their spans so problems name a line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

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
    #[serde(default)]
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
limits_of!(FileIssuer);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListener {
    pub(super) addr: Spanned<String>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
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
pub(super) struct FileIssuer {
    /// `jwt` (the default) or `api_key`.
    pub(super) kind: Option<Spanned<String>>,
    pub(super) iss: Option<Spanned<String>>,
    /// Where routes read this issuer's roles: claim paths.
    pub(super) roles_claims: Option<Spanned<Vec<String>>>,
    pub(super) dialect: Option<Spanned<String>>,
    pub(super) token_ttl: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(super) allow_no_exp: bool,
    #[serde(default)]
    pub(super) keys: Vec<FileKey>,
    // The token endpoint, for issuers with a dialect.
    pub(super) host: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) refresh_path: Option<Spanned<String>>,
    pub(super) refresh_ttl: Option<Spanned<DurationText>>,
    pub(super) time_zone: Option<Spanned<String>>,
    pub(super) default_years: Option<u32>,
    pub(super) max_years: Option<u32>,
    #[serde(default)]
    pub(super) companies: Vec<String>,
    pub(super) max_failures: Option<u32>,
    pub(super) ip_max_failures: Option<u32>,
    pub(super) client_max_failures: Option<u32>,
    pub(super) lockout: Option<Spanned<DurationText>>,
    pub(super) max_body_size: Option<Spanned<SizeText>>,
    pub(super) body_timeout: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(super) principals: Vec<FilePrincipal>,
    /// A `kind = "oauth2"` issuer's users and clients.
    #[serde(default)]
    pub(super) users: Vec<FilePrincipal>,
    #[serde(default)]
    pub(super) clients: Vec<FileOAuthClient>,
    pub(super) sign_in: Option<FileSignIn>,
    pub(super) principals_file: Option<Spanned<String>>,
    pub(super) cors: Option<Spanned<String>>,
    /// Standard OAuth 2.0 endpoints beside the dialect's own.
    pub(super) oauth2: Option<Spanned<FileOAuth2>>,
    pub(super) user_store: Option<Spanned<FileUserStore>>,
    /// The legacy service the token endpoint's answers are compared with.
    pub(super) shadow: Option<Spanned<FileShadow>>,
    /// When the dialect's endpoint was deprecated and when it goes
    /// (RFC 3339), announced on its answers.
    pub(super) deprecation: Option<Spanned<String>>,
    pub(super) sunset: Option<Spanned<String>>,
    // Opaque tokens, read by the provider's introspection endpoint (RFC 7662).
    pub(super) introspection_url: Option<Spanned<String>>,
    pub(super) client_id: Option<Spanned<String>>,
    pub(super) client_secret_env: Option<Spanned<String>>,
    pub(super) introspection_auth: Option<Spanned<String>>,
    pub(super) introspection_cache_ttl: Option<Spanned<DurationText>>,
    pub(super) introspection_negative_ttl: Option<Spanned<DurationText>>,
    pub(super) introspection_cache_size: Option<Spanned<u64>>,
    pub(super) introspection_timeout: Option<Spanned<DurationText>>,
    pub(super) introspection_on_failure: Option<Spanned<String>>,
    pub(super) introspection_require_token_type: Option<Spanned<bool>>,
    // An external issuer: keys from a JWKS.
    pub(super) discovery_url: Option<Spanned<String>>,
    pub(super) jwks_url: Option<Spanned<String>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) jwks_refresh_min: Option<Spanned<DurationText>>,
    pub(super) jwks_refresh_max: Option<Spanned<DurationText>>,
    pub(super) jwks_refetch_interval: Option<Spanned<DurationText>>,
    pub(super) jwks_max_stale: Option<Spanned<DurationText>>,
    pub(super) jwks_timeout: Option<Spanned<DurationText>>,
    pub(super) jwks_ready_timeout: Option<Spanned<DurationText>>,
    // portero signs people in at this issuer, as its OpenID Connect client.
    pub(super) login_client_id: Option<Spanned<String>>,
    pub(super) login_client_secret_env: Option<Spanned<String>>,
    pub(super) login_scopes: Option<Spanned<Vec<String>>>,
    pub(super) login_userinfo: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) allow_ips: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) deny_ips: Vec<Spanned<String>>,
    pub(super) rate_limit: Option<Spanned<FileRateLimit>>,
    pub(super) max_in_flight: Option<Spanned<u32>>,
    pub(super) concurrency: Option<Spanned<FileConcurrency>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePrincipals {
    pub(super) principals: Vec<FilePrincipal>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePrincipal {
    // Where each key is written: a key its dialect never reads is named at its line.
    pub(super) username: Option<Spanned<String>>,
    pub(super) client_id: Option<Spanned<String>>,
    pub(super) business: Option<Spanned<String>>,
    pub(super) proyecto: Option<Spanned<String>>,
    pub(super) secret_hash: Spanned<String>,
    pub(super) id: Option<Spanned<toml::Value>>,
    pub(super) nombre: Option<Spanned<String>>,
    pub(super) role: Option<Spanned<String>>,
    pub(super) company: Option<Spanned<String>>,
    pub(super) permissions: Option<Spanned<Vec<String>>>,
    #[serde(default = "yes")]
    pub(super) active: bool,
    #[serde(default)]
    pub(super) blocked: bool,
    pub(super) rate_limit: Option<u32>,
    /// The one OAuth 2.0 client authentication method it may use.
    pub(super) auth_method: Option<Spanned<String>>,
    /// Its OAuth 2.0 introspection requests may ask about any token of the issuer.
    pub(super) introspect: Option<Spanned<bool>>,
    /// A standard issuer's user: the `roles` claim, and claims as written.
    pub(super) roles: Option<Spanned<Vec<String>>>,
    pub(super) claims: Option<Spanned<toml::Table>>,
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileOAuth2 {
    #[serde(default)]
    pub(super) password_grant: bool,
    #[serde(default)]
    pub(super) clients: Vec<FileOAuthClient>,
    /// The authorization endpoint and sign-in page (on by default for a
    /// `kind = "oauth2"` issuer).
    pub(super) authorization_code: Option<Spanned<bool>>,
    /// Resource indicators (RFC 8707) its tokens may be asked for.
    #[serde(default)]
    pub(super) resources: Vec<Spanned<String>>,
    /// `off` (the default), `open` or `token` (RFC 7591).
    pub(super) registration: Option<Spanned<String>>,
    pub(super) registration_token_env: Option<Spanned<String>>,
    /// Registrations a minute from one address (`open`).
    pub(super) registration_rate: Option<Spanned<u32>>,
    pub(super) registered_client_ttl: Option<Spanned<DurationText>>,
    pub(super) session_ttl: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(super) logout_revokes_tokens: bool,
}

/// `[issuers.NAME.sign_in]`: the look of the issuer's sign-in page. (Not
/// under `oauth2`: toml cannot read a table nested in a spanned one.)
#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSignIn {
    pub(super) title: Option<Spanned<String>>,
    pub(super) logo_url: Option<Spanned<String>>,
    pub(super) stylesheet_url: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUserStore {
    pub(super) url: Option<Spanned<String>>,
    pub(super) url_env: Option<Spanned<String>>,
    pub(super) query: Spanned<String>,
    pub(super) cache_ttl: Option<Spanned<DurationText>>,
    pub(super) timeout: Option<Spanned<DurationText>>,
    pub(super) max_connections: Option<u32>,
    pub(super) rehash: Option<Spanned<String>>,
    pub(super) update: Option<Spanned<String>>,
    pub(super) legacy_count: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct FileShadow {
    pub(super) url: Spanned<String>,
    pub(super) primary: Option<Spanned<String>>,
    pub(super) sample: Option<Spanned<f64>>,
    pub(super) timeout: Option<Spanned<DurationText>>,
    pub(super) tolerance: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(super) claims: Vec<String>,
    #[serde(default)]
    pub(super) fallback: bool,
    #[serde(default)]
    pub(super) compare_refresh: bool,
    pub(super) queue: Option<Spanned<u32>>,
    pub(super) ca_file: Option<Spanned<String>>,
}

/// A user dialect's OAuth 2.0 client.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct FileOAuthClient {
    pub(super) client_id: Spanned<String>,
    /// None: a public client (PKCE only).
    pub(super) secret_hash: Option<Spanned<String>>,
    pub(super) redirect_uris: Option<Spanned<Vec<String>>>,
    pub(super) grant_types: Option<Spanned<Vec<String>>>,
    /// A standard issuer's client: the `roles` of its own tokens.
    #[serde(default)]
    pub(super) roles: Vec<String>,
    /// The scopes its tokens may carry.
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    pub(super) auth_method: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) introspect: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileKey {
    pub(super) kid: Spanned<String>,
    pub(super) alg: Spanned<String>,
    pub(super) secret_env: Option<String>,
    pub(super) secret_file: Option<String>,
    pub(super) private_key_file: Option<String>,
    pub(super) public_key_file: Option<String>,
    #[serde(default)]
    pub(super) verify_only: bool,
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
    pub(super) cors: Option<Spanned<String>>,
    pub(super) upgrades: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) underscores_in_headers: bool,
    /// Routed by the method a POST's override header names (`target::method`).
    pub(super) method_override: Option<Spanned<bool>>,
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
