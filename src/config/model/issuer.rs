//! `[issuers.NAME]`: whose tokens are accepted, the keys that check them,
//! the token endpoints and their principals.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{CorsPolicy, RouteLimits};
use crate::claim_path::ClaimPath;

/// What an issuer's consumers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerKind {
    /// Signed tokens (JWTs): its own, or an identity provider's.
    Jwt,
    /// API keys the admin API makes (`crate::api_keys`).
    ApiKey,
    /// portero's own OAuth 2.1 authorization server: its users and
    /// clients, no legacy endpoint (`crate::oauth2`).
    OAuth2,
}

#[derive(Debug, Clone)]
pub struct Issuer {
    pub name: String,
    pub kind: IssuerKind,
    /// The `iss` claim this issuer's tokens carry.
    pub iss: String,
    pub token_ttl: Duration,
    pub allow_no_exp: bool,
    pub keys: Vec<KeyConfig>,
    /// The token endpoint portero serves for this issuer, if it has a dialect.
    pub endpoint: Option<TokenEndpoint>,
    /// Principals kept in a SQL table, for the endpoint's dialect.
    pub user_store: Option<UserStoreConfig>,
    /// The legacy service this issuer replaces, its answers compared
    /// with the endpoint's.
    pub shadow: Option<ShadowConfig>,
    /// An issuer run elsewhere (an identity provider): its keys are
    /// fetched from its JWKS, and it serves no token endpoint.
    pub external: Option<ExternalKeySource>,
    /// Standard OAuth 2.0 endpoints for the token endpoint's principals.
    pub oauth2: Option<OAuth2>,
    /// Opaque tokens of this issuer, read by its introspection endpoint.
    pub introspection: Option<Introspection>,
    /// Where a route's `roles` are read in this issuer's tokens: each a
    /// list of role names. `None`: the `role` or `roles` claim, a name or
    /// a list.
    pub roles_claims: Option<Arc<[ClaimPath]>>,
    /// portero signs people in at this issuer (`login_client_id`).
    pub login: Option<Arc<super::LoginClient>>,
}

/// How portero asks an identity provider about its opaque tokens
/// (RFC 7662, as a client).
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection {
    pub endpoint: IntrospectionEndpoint,
    pub client_id: String,
    /// The variable holding the client's secret (read when the config is applied).
    pub client_secret_env: String,
    pub auth: ClientAuth,
    /// Active answers are kept until the sooner of their `exp` and this.
    pub cache_ttl: Duration,
    /// Inactive answers are kept this long.
    pub negative_ttl: Duration,
    pub cache_size: usize,
    pub timeout: Duration,
    pub on_failure: IntrospectionFailure,
    /// An active answer must say it is about an access token
    /// (`token_type`, `token_use` or `typ`); off: an answer naming no type
    /// is taken (one naming another type never is).
    pub require_token_type: bool,
    /// Roots for HTTPS to the provider; `None`: the system's.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IntrospectionEndpoint {
    Url(String),
    /// The `introspection_endpoint` of the metadata at this URL.
    Discovery(String),
}

/// What a new token gets while the provider fails or does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionFailure {
    /// `503`: the client may retry.
    Unavailable,
    /// `401 invalid_token`.
    Unauthorized,
}

/// `[issuers.NAME.oauth2]`: the issuer's standard OAuth 2.0 endpoints,
/// under its issuer identifier.
#[derive(Debug, Clone)]
pub struct OAuth2 {
    /// `<server.public_url>/oauth2/NAME`: the metadata's `issuer`, and the
    /// `iss` of the tokens these endpoints issue.
    pub issuer_id: String,
    /// `server.public_url`, without a trailing `/`.
    pub public_url: String,
    /// The password grant (RFC 6749 §4.3) for a user dialect's principals;
    /// off unless enabled.
    pub password_grant: bool,
    /// A user dialect's OAuth 2.0 clients: the applications that get
    /// tokens for its users (`permissions`: the scopes they may ask for).
    /// A client dialect's clients are its principals.
    pub clients: Principals,
    /// The authorization endpoint, with its sign-in page (authorization
    /// code with PKCE): on by default for a `kind = "oauth2"` issuer.
    pub authorization_code: bool,
    /// The resource indicators (RFC 8707) tokens may be asked for: the
    /// issuer's `resources`, and the resource identifiers of the routes
    /// that publish metadata for it.
    pub resources: Vec<String>,
    /// The scopes those routes ask for: a registered client may hold them
    /// (the scope their 401s tell it to ask for).
    pub resource_scopes: Vec<String>,
    /// Dynamic client registration (RFC 7591).
    pub registration: Registration,
    /// A registered client unused this long is forgotten.
    pub registered_client_ttl: Duration,
    /// How long a sign-on session lets its user in without typing again.
    pub session_ttl: Duration,
    /// Logging out (`end_session`) revokes the refresh tokens its session began.
    pub logout_revokes_tokens: bool,
    pub sign_in: SignInPage,
    /// Where `end_session` may send a client back besides its
    /// `redirect_uris`: (client id, URL) pairs, the post-logout URL of the
    /// client portero itself signs people in with (its `[sessions]`).
    pub post_logout_redirect_uris: Vec<(String, String)>,
}

/// Who may register a client (RFC 7591).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Off,
    /// Anyone: public clients with loopback or https redirect URIs, at a
    /// limited rate per address.
    Open {
        per_minute: u32,
    },
    /// Whoever holds the initial access token in this variable.
    Token {
        env: String,
    },
}

/// `[issuers.NAME.oauth2.sign_in]`: how the sign-in page looks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInPage {
    pub title: Option<String>,
    /// An https (or same-origin path) URL of an image shown above the form.
    pub logo_url: Option<String>,
    /// A stylesheet linked after portero's own.
    pub stylesheet_url: Option<String>,
}

/// What an OAuth 2.0 client may do beyond authenticating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientProfile {
    /// It has no secret: it proves itself with PKCE only.
    pub public: bool,
    /// Where the authorization endpoint may send its codes; compared
    /// exactly (a loopback one on any port, RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    /// The grants it may use (`grant_type` names); empty: those its
    /// issuer's dialect always allowed (password, refresh, exchange).
    pub grant_types: Vec<String>,
    /// The client was registered at the registration endpoint.
    pub registered: bool,
    /// The name it registered with (`client_name`), unverified.
    pub name: Option<String>,
}

impl ClientProfile {
    /// Whether the client may use the grant named `grant`: a public client
    /// only the authorization code and its refresh tokens.
    pub fn may_use(&self, grant: &str) -> bool {
        if self.public && !matches!(grant, "authorization_code" | "refresh_token") {
            return false;
        }
        self.grant_types.is_empty() || self.grant_types.iter().any(|g| g == grant)
    }
}

/// How an OAuth 2.0 client proves who it is (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic`, id and secret form-url-encoded.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

impl ClientAuth {
    pub fn name(self) -> &'static str {
        match self {
            Self::Basic => "client_secret_basic",
            Self::Post => "client_secret_post",
        }
    }
}

/// Where an external issuer publishes its keys, and how portero keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalKeySource {
    pub location: KeyLocation,
    /// The `iss` its tokens carry: given, or (with discovery) learned from
    /// the metadata's `issuer`, which must then equal it when given.
    pub expected_iss: Option<String>,
    /// Roots for HTTPS to the provider; `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// Bounds on the refresh interval the JWKS's `Cache-Control: max-age` asks for.
    pub refresh_min: Duration,
    pub refresh_max: Duration,
    /// Refetches asked for by tokens with an unknown `kid`: at most one per interval.
    pub refetch_interval: Duration,
    /// Keys are used this long after the last successful fetch, then dropped.
    pub max_stale: Duration,
    /// For each request to the provider.
    pub timeout: Duration,
    /// How long `/readyz` waits for the first key set.
    pub ready_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KeyLocation {
    /// OpenID Connect discovery or RFC 8414 metadata naming `issuer` and `jwks_uri`.
    Discovery(String),
    Jwks(String),
}

#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    pub dialect: Dialect,
    pub host: String,
    pub path: String,
    /// `login-refresh` only.
    pub refresh_path: Option<String>,
    pub refresh_ttl: Duration,
    /// Offset of the issuer's local time, for dates the dialects print.
    pub time_zone: chrono::FixedOffset,
    /// `project`: token lifetime without a query, and the most a client may ask for.
    pub default_years: u32,
    pub max_years: u32,
    /// `client-flat`: the companies that exist.
    pub companies: Vec<String>,
    pub max_failures: u32,
    pub ip_max_failures: u32,
    /// A client's failures from all addresses together before it is locked
    /// for everyone; from one address, `max_failures` lock it there only.
    pub client_max_failures: u32,
    pub lockout: Duration,
    /// The costs a stored hash may name (`[hash_limits]`).
    pub hash_limits: HashLimits,
    pub max_body_size: u64,
    pub body_timeout: Duration,
    pub principals: Principals,
    /// Browsers on these origins may call the endpoint.
    pub cors: Option<Arc<CorsPolicy>>,
    pub limits: RouteLimits,
    /// `Deprecation` (RFC 9745) and `Sunset` (RFC 8594) header values for
    /// every answer of the dialect's endpoint, when it is being retired.
    pub deprecation: Option<String>,
    pub sunset: Option<String>,
}

#[derive(Debug, Clone)]
pub struct KeyConfig {
    pub kid: String,
    pub alg: jsonwebtoken::Algorithm,
    pub source: KeySource,
    pub verify_only: bool,
}

/// Where a configured key's material comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// An HS256 secret in an environment variable.
    SecretEnv(String),
    /// An HS256 secret in a file (raw bytes; surrounding whitespace trimmed).
    SecretFile(PathBuf),
    /// PEM files for RS256/ES256/EdDSA; a key without `private` only verifies.
    Pem {
        private: Option<PathBuf>,
        public: Option<PathBuf>,
    },
}

/// The five token-endpoint dialects (docs/dialects.md), and the standard
/// issuer's users, who have no legacy endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Session,
    LoginRefresh,
    Project,
    ClientEnvelope,
    ClientFlat,
    /// A `kind = "oauth2"` issuer's users: `username`, `roles`, `claims`.
    Standard,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::LoginRefresh => "login-refresh",
            Self::Project => "project",
            Self::ClientEnvelope => "client-envelope",
            Self::ClientFlat => "client-flat",
            Self::Standard => "oauth2",
        }
    }

    /// It has a legacy endpoint of its own to mount.
    pub fn has_legacy_endpoint(self) -> bool {
        self != Self::Standard
    }

    pub fn default_path(self) -> &'static str {
        match self {
            Self::Session => "/api/Session/GetToken",
            Self::LoginRefresh | Self::ClientEnvelope => "/api/auth/token",
            Self::Project => "/auth",
            Self::ClientFlat => "/api/v1/auth",
            Self::Standard => "",
        }
    }

    pub fn login_fields(self) -> &'static str {
        match self {
            Self::Session | Self::LoginRefresh | Self::Standard => "username",
            Self::Project => "business and proyecto",
            Self::ClientEnvelope | Self::ClientFlat => "client_id",
        }
    }

    /// The login of a principal with these keys: its username, its client
    /// id, or `business/proyecto`; `None` without the ones it needs.
    pub fn login_of(
        self,
        username: Option<&str>,
        client_id: Option<&str>,
        business: Option<&str>,
        proyecto: Option<&str>,
    ) -> Option<String> {
        match self {
            Self::Session | Self::LoginRefresh | Self::Standard => username.map(str::to_string),
            Self::Project => Some(project_login(business?, proyecto?)),
            Self::ClientEnvelope | Self::ClientFlat => client_id.map(str::to_string),
        }
    }

    /// The principal keys its endpoint reads beside `secret_hash`,
    /// `active`, `blocked` and `rate_limit`, which every dialect reads.
    pub fn principal_keys(self) -> &'static [&'static str] {
        match self {
            Self::Session => &["username", "id", "nombre", "role"],
            Self::LoginRefresh => &["username", "id", "role"],
            Self::Project => &["business", "proyecto"],
            Self::ClientEnvelope => &["client_id"],
            Self::ClientFlat => &["client_id", "company", "permissions"],
            Self::Standard => &["username", "roles", "claims"],
        }
    }

    /// Its principals are clients: they get tokens for themselves with
    /// the `client_credentials` grant.
    pub fn has_clients(self) -> bool {
        matches!(
            self,
            Self::Project | Self::ClientEnvelope | Self::ClientFlat
        )
    }

    /// Client secrets are high-entropy: their dummy is the fast hash.
    pub fn fast_secrets(self) -> bool {
        matches!(self, Self::ClientEnvelope | Self::ClientFlat)
    }
}

/// Claims portero sets itself on a standard issuer's tokens, or that
/// routes read as scopes and roles (`scp`, `role`) or as the token's use,
/// or userinfo reads as the login, or that would bind the token to a key
/// (`cnf`, which no route admits): a user's own `claims` (in the config,
/// a user store's row, an imported record) may not name them (a `scp`
/// claim would outlive the scope a client was granted).
pub const RESERVED_CLAIMS: [&str; 22] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "scp",
    "roles",
    "role",
    "permissions",
    "token_use",
    "username",
    "auth_time",
    "nonce",
    "sid",
    "azp",
    "at_hash",
    "typ",
    "cnf",
];

/// The first of `claims` a user may not set, if any.
pub fn reserved_claim(claims: &serde_json::Map<String, Value>) -> Option<&str> {
    claims
        .keys()
        .map(String::as_str)
        .find(|name| RESERVED_CLAIMS.contains(name))
}

/// The prefix of portero's fast hash: `$portero-hmac-sha256$<salt>$<mac>`.
pub const FAST_PREFIX: &str = "$portero-hmac-sha256$";

/// A stored secret, in any format portero can check. It writes only
/// argon2id and its fast hash; the others are what the services it
/// replaces kept over the years.
#[derive(Debug, Clone)]
pub enum SecretHash {
    /// A PHC string: argon2id (`$argon2id$v=19$m=...`, what portero
    /// writes), argon2i, argon2d, pbkdf2-sha256, pbkdf2-sha512, scrypt.
    Phc(String),
    /// bcrypt, `$2a$`, `$2b$` or `$2y$`.
    Bcrypt(String),
    /// PBKDF2 written by Django (`pbkdf2_sha256$...`, `pbkdf2_sha1$...`)
    /// or passlib (`$pbkdf2-sha256$29000$...`).
    Pbkdf2 {
        digest: Pbkdf2Digest,
        rounds: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Fast {
        salt: Vec<u8>,
        mac: Vec<u8>,
    },
}

impl SecretHash {
    /// The secret of a public client, which has none: a fast hash with a
    /// random salt and digest, so that no secret ever matches it.
    pub fn unusable() -> SecretHash {
        use rand::RngCore;
        let random = |n: usize| {
            let mut b = vec![0u8; n];
            rand::thread_rng().fill_bytes(&mut b);
            b
        };
        SecretHash::Fast {
            salt: random(16),
            mac: random(32),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pbkdf2Digest {
    Sha1,
    Sha256,
    Sha512,
}

/// The form of a login under which its lockout is counted, and two
/// principals of one issuer may not share: Unicode's compatibility caseless
/// form (NFKC, full case folding: `ß` and `ss` are one, so are `Σ`, `σ`
/// and `ς`), trimmed. A database's collation (MariaDB's default is case-
/// and trailing-space-insensitive) may select one row for many spellings;
/// they all count against one budget. The identity itself is the
/// principal's own login, never the spelling typed.
pub fn login_key(login: &str) -> String {
    use caseless::Caseless;
    use unicode_normalization::UnicodeNormalization;
    // Unicode 3.13, D146: NFKD(fold(NFKD(fold(NFD(x))))), composed at the end.
    let key: String = login
        .nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkc()
        .collect();
    key.trim().to_string()
}

/// Bounds on the cost a stored hash may name (`[hash_limits]`): a hash
/// past them is refused by `portero check` and `portero import` and fails
/// its login without being computed, so one row cannot pin a core or
/// exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    pub pbkdf2_rounds: u32,
    pub bcrypt_cost: u32,
    /// Bytes an argon2 (`m`) or scrypt (128 · N · r) check may take.
    pub memory: u64,
    /// argon2's `t`.
    pub argon2_passes: u32,
    /// argon2's `p` and scrypt's `p`.
    pub parallelism: u32,
    /// scrypt's log2 N.
    pub scrypt_log_n: u8,
}

impl Default for HashLimits {
    fn default() -> HashLimits {
        HashLimits {
            pbkdf2_rounds: 10_000_000,
            bcrypt_cost: 16,
            memory: 256 << 20,
            argon2_passes: 16,
            parallelism: 16,
            scrypt_log_n: 20,
        }
    }
}

/// Someone who can obtain tokens, with what the dialects return about them.
#[derive(Debug, Clone)]
pub struct Principal {
    /// What identifies them at login: username, client id, or `business/proyecto`.
    pub login: String,
    pub secret: SecretHash,
    pub id: Value,
    pub username: Option<String>,
    pub nombre: Option<String>,
    pub role: Option<String>,
    pub business: Option<String>,
    pub proyecto: Option<String>,
    pub client_id: Option<String>,
    pub company: Option<String>,
    pub permissions: Vec<String>,
    pub active: bool,
    pub blocked: bool,
    /// Replaces `requests` of the rate limits keyed by identity for this
    /// principal's tokens.
    pub rate_limit: Option<u32>,
    /// The hash as a user store's row holds it, for a compare-and-swap
    /// rehash; `None` for the config's principals.
    pub stored_hash: Option<String>,
    /// As an OAuth 2.0 client, it may authenticate only this way.
    pub auth_method: Option<ClientAuth>,
    /// As an OAuth 2.0 client, it may introspect any token of the issuer,
    /// not only its own.
    pub introspect: bool,
    /// A standard issuer's user or client: its `roles` claim.
    pub roles: Vec<String>,
    /// A standard issuer's user: claims its tokens carry as written.
    pub claims: serde_json::Map<String, Value>,
    /// As an OAuth 2.0 client: public or not, redirect URIs, grants.
    pub client: ClientProfile,
}

#[derive(Debug, Clone, Default)]
pub struct Principals {
    by_login: HashMap<String, Arc<Principal>>,
    /// The same, by [`login_key`] (one principal a key: `portero check`
    /// refuses two).
    by_key: HashMap<String, Arc<Principal>>,
    /// What `credentials` makes of their hashes when first needed (their
    /// cost classes, counted and timed: what an unknown login is checked
    /// against, and what a refusal costs). Kept here, built there: the
    /// model names no runtime type.
    pub derived: Arc<std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>>,
}

impl Principals {
    pub fn new(list: Vec<Principal>) -> Principals {
        let list: Vec<Arc<Principal>> = list.into_iter().map(Arc::new).collect();
        Principals {
            by_login: list.iter().map(|p| (p.login.clone(), p.clone())).collect(),
            by_key: list
                .iter()
                .map(|p| (login_key(&p.login), p.clone()))
                .collect(),
            derived: Arc::default(),
        }
    }

    pub fn get(&self, login: &str) -> Option<&Arc<Principal>> {
        self.by_login.get(login)
    }

    /// The principal whose login is one with `login` under [`login_key`].
    pub fn get_by_key(&self, login: &str) -> Option<&Arc<Principal>> {
        self.by_key.get(&login_key(login))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Principal> {
        self.by_login.values().map(|p| &**p)
    }

    /// `login`'s principal, changed by `change` (in both its lookups).
    pub fn change(&mut self, login: &str, change: impl FnOnce(&mut Principal)) {
        let Some(old) = self.by_login.get(login) else {
            return;
        };
        let mut changed = Principal::clone(old);
        change(&mut changed);
        let changed = Arc::new(changed);
        self.by_key.insert(login_key(login), changed.clone());
        self.by_login.insert(login.to_string(), changed);
    }
}

/// `[issuers.NAME.user_store]`: principals read from a SQL table, beside
/// those written in the config (which win on a name clash).
#[derive(Debug, Clone, PartialEq)]
pub struct UserStoreConfig {
    /// `postgres://...` or `mysql://...`; from `url_env` when given so.
    pub url: String,
    /// One row for a login: `$1` (PostgreSQL) or `?` (MySQL); the project
    /// dialect binds business, then proyecto. Columns are named as the
    /// dialect's principal keys.
    pub query: String,
    /// A row read is used this long before it is read again.
    pub cache_ttl: Duration,
    /// For each query, and for a connection from the pool.
    pub timeout: Duration,
    pub max_connections: u32,
    /// `rehash = "argon2id"`: after a login with any other hash (or a
    /// weaker argon2id), this compare-and-swap update writes the new one:
    /// binds the new hash, the login (project: business, proyecto), then
    /// the hash the row held.
    pub rehash_update: Option<String>,
    /// Counts the rows whose hash is not argon2id yet, for
    /// `portero_legacy_hashes`; run once a minute.
    pub legacy_count: Option<String>,
}

/// `[issuers.NAME.shadow]`: the legacy token service the endpoint
/// replaces. Each token request is answered by one side (`primary`) and
/// sent to the other in the background; the two answers are compared by
/// meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowConfig {
    /// The legacy service's base URL: a request's path and query are
    /// appended to it.
    pub url: String,
    /// Who answers the client.
    pub primary: ShadowPrimary,
    /// The share of requests compared, 0 to 1.
    pub sample: f64,
    /// For the legacy service's answer.
    pub timeout: Duration,
    /// Times (expiries) are compared as lifetimes within this much.
    pub tolerance: Duration,
    /// JWT claims compared by value.
    pub claims: Vec<String>,
    /// With the legacy service primary: a failing one gets portero's
    /// own answer to the client.
    pub fallback: bool,
    /// Refresh requests are compared too (off: each side knows only the
    /// refresh tokens it minted, and a copy could rotate a legacy family).
    pub compare_refresh: bool,
    /// Comparisons waiting or under way; past it they are dropped.
    pub queue: usize,
    /// Roots for an `https` legacy service (default: the system's).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowPrimary {
    Portero,
    Legacy,
}

/// The login of a `project` principal.
pub fn project_login(business: &str, proyecto: &str) -> String {
    format!("{business}/{proyecto}")
}

/// Whether `url` is where issuer `issuer`'s metadata is published: after
/// its identifier (OpenID Connect), or with the well-known part between
/// its host and its path (RFC 8414 §3.1).
pub fn publishes_metadata_at(issuer: &str, url: &str) -> bool {
    let issuer = issuer.trim_end_matches('/');
    if url == format!("{issuer}/.well-known/openid-configuration") {
        return true;
    }
    let Ok(parsed) = url::Url::parse(issuer) else {
        return false;
    };
    let (origin, path) = (
        parsed.origin().ascii_serialization(),
        parsed.path().trim_end_matches('/'),
    );
    ["openid-configuration", "oauth-authorization-server"]
        .iter()
        .any(|known| url == format!("{origin}/.well-known/{known}{path}"))
}
