//! `[issuers.NAME]`: whose tokens are accepted, the keys that check them,
//! the accounts portero issues tokens for, the routes it serves them on
//! and the legacy endpoints among those.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{
    ClientAuth, CorsPolicy, HashLimits, Principal, Principals, RouteLimits, SecondFactor,
    SignInPage,
};
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
    /// Who portero issues this issuer's tokens for: a dialect's principals
    /// or a standard issuer's users, with their lockout.
    pub accounts: Option<Accounts>,
    /// What every token route portero serves for this issuer shares (its
    /// legacy endpoint's and its OAuth 2.0 endpoints'); with `accounts`.
    pub token_routes: Option<TokenRoutes>,
    /// The legacy endpoint portero serves for this issuer, if it has a dialect.
    pub legacy: Option<LegacyEndpoint>,
    /// Accounts kept in a SQL table, beside `accounts`' own.
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
    /// `dpop_nonce = true`: DPoP proofs at the token endpoint carry a
    /// server nonce (RFC 9449 §8).
    pub dpop_nonce: bool,
    /// `require_pushed_authorization_requests`: the authorization endpoint
    /// takes pushed requests only (RFC 9126 §5).
    pub require_pushed_requests: bool,
    /// The issuer's endpoints on the mutual-TLS listener, where it is not
    /// at `public_url` (`server.mtls_public_url`, RFC 8705 §5).
    pub mtls_issuer_id: Option<String>,
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
    /// Clients named by the URL of their metadata document
    /// (draft-ietf-oauth-client-id-metadata-document); `None`: off.
    pub metadata_documents: Option<MetadataDocuments>,
    /// How long a user's consent to a client that described itself is
    /// remembered; `None`: never (asked every time).
    pub consent_ttl: Option<Duration>,
    /// Scope -> what it lets an application do, in the operator's words.
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
}

/// Where client metadata documents may be fetched from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataDocuments {
    /// Hosts (lower case) whose names may resolve to loopback, private or
    /// link-local addresses; every other host must resolve to public ones.
    pub private_hosts: Vec<String>,
    /// Roots trusted beside the system's.
    pub ca_file: Option<PathBuf>,
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

/// A legacy dialect's endpoint: where it is mounted and what its answers
/// say beyond the accounts (docs/dialects.md).
#[derive(Debug, Clone)]
pub struct LegacyEndpoint {
    pub dialect: Dialect,
    pub path: String,
    /// `login-refresh` only.
    pub refresh_path: Option<String>,
    /// Offset of the issuer's local time, for dates the dialects print.
    pub time_zone: chrono::FixedOffset,
    /// `project`: token lifetime without a query, and the most a client may ask for.
    pub default_years: u32,
    pub max_years: u32,
    /// `client-flat`: the companies that exist.
    pub companies: Vec<String>,
    /// `Deprecation` (RFC 9745) and `Sunset` (RFC 8594) header values for
    /// every answer of the dialect's endpoint, when it is being retired.
    pub deprecation: Option<String>,
    pub sunset: Option<String>,
}

/// What the token routes of an issuer portero issues for share, its legacy
/// endpoint's and its OAuth 2.0 endpoints' alike.
#[derive(Debug, Clone)]
pub struct TokenRoutes {
    pub host: String,
    pub max_body_size: u64,
    pub body_timeout: Duration,
    /// Browsers on these origins may call them.
    pub cors: Option<Arc<CorsPolicy>>,
    pub limits: RouteLimits,
    /// How long the refresh tokens they issue live.
    pub refresh_ttl: Duration,
}

/// The accounts of an issuer portero issues tokens for: who they are
/// (the config's; others are looked up in the store and the user store
/// with the same form), and the lockout their logins go through.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub form: AccountForm,
    /// What names an account in its tokens' `sub`: set by the form.
    pub subject: SubjectRule,
    pub principals: Principals,
    pub max_failures: u32,
    pub ip_max_failures: u32,
    /// A client's failures from all addresses together before it is locked
    /// for everyone; from one address, `max_failures` lock it there only.
    pub client_max_failures: u32,
    pub lockout: Duration,
    /// The costs a stored hash may name (`[hash_limits]`).
    pub hash_limits: HashLimits,
    /// People may hold second factors here: the issuer has a sign-in page
    /// (the authorization endpoint), the only place one is set up or used.
    pub sign_in_page: bool,
    /// What a person needs beside their password at the sign-in page.
    pub second_factor: SecondFactor,
    /// The endpoints that take a password alone (the legacy dialect's,
    /// the password grant) take it also from a person with a second
    /// factor, or where one is required (`legacy_password_only`).
    pub legacy_password_only: bool,
}

impl Accounts {
    /// The `sub` of the tokens minted for `p`.
    pub fn subject_of(&self, p: &Principal) -> String {
        self.subject.of(p)
    }
}

/// What names an account in its tokens' `sub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectRule {
    /// Its own login.
    Login,
    /// Its `id`, when a string or a number, else its login (the
    /// login-refresh dialect's tokens, docs/dialects.md).
    Id,
}

impl SubjectRule {
    pub fn of(self, p: &Principal) -> String {
        match (self, &p.id) {
            (SubjectRule::Id, Value::String(s)) => s.clone(),
            (SubjectRule::Id, Value::Number(n)) => n.to_string(),
            _ => p.login.clone(),
        }
    }
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

/// The five token-endpoint dialects (docs/dialects.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Session,
    LoginRefresh,
    Project,
    ClientEnvelope,
    ClientFlat,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::LoginRefresh => "login-refresh",
            Self::Project => "project",
            Self::ClientEnvelope => "client-envelope",
            Self::ClientFlat => "client-flat",
        }
    }

    pub fn default_path(self) -> &'static str {
        match self {
            Self::Session => "/api/Session/GetToken",
            Self::LoginRefresh | Self::ClientEnvelope => "/api/auth/token",
            Self::Project => "/auth",
            Self::ClientFlat => "/api/v1/auth",
        }
    }
}

/// Where a claim an account carries about itself takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileClaim {
    /// The principal's field of the claim's name, `null` when unset.
    Field,
    /// The principal's field of the claim's name, left out when unset.
    FieldIfSet,
    /// The scope granted.
    GrantedScope,
    /// A value of its own.
    Fixed(&'static str),
}

/// What an issuer's accounts are: the principals of a legacy dialect, with
/// the keys its endpoint reads, or a standard issuer's users (`username`,
/// `roles`, `claims`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountForm {
    Dialect(Dialect),
    Standard,
}

impl AccountForm {
    /// The claims an account of this form carries about itself beside
    /// `sub`, in order: a dialect's principal what the dialect's own
    /// tokens carry, so a route's claim rules read either kind of token
    /// alike. A standard account carries its own `claims` and `roles`
    /// instead (none here).
    pub fn profile(self) -> &'static [(&'static str, ProfileClaim)] {
        use ProfileClaim::{Field, FieldIfSet, Fixed, GrantedScope};
        match self {
            Self::Standard | Self::Dialect(Dialect::ClientEnvelope) => &[],
            Self::Dialect(Dialect::Session) => &[
                ("id", Field),
                ("username", Field),
                ("nombre", Field),
                ("role", FieldIfSet),
            ],
            Self::Dialect(Dialect::LoginRefresh) => &[
                ("token_use", Fixed("access")),
                ("username", Field),
                ("role", Field),
            ],
            Self::Dialect(Dialect::ClientFlat) => {
                &[("company", Field), ("permissions", GrantedScope)]
            }
            Self::Dialect(Dialect::Project) => &[("business", Field), ("proyecto", Field)],
        }
    }

    /// Whether an account logs in only while its `company` is one its
    /// endpoint knows (the client-flat dialect's step 5).
    pub fn needs_known_company(self) -> bool {
        self == Self::Dialect(Dialect::ClientFlat)
    }

    /// The dialect's name, or `oauth2`: what messages and metrics call it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dialect(d) => d.name(),
            Self::Standard => "oauth2",
        }
    }

    /// The dialect whose principals these are, if any.
    pub fn dialect(self) -> Option<Dialect> {
        match self {
            Self::Dialect(d) => Some(d),
            Self::Standard => None,
        }
    }

    /// What names an account of this form in its tokens' `sub`.
    pub fn subject_rule(self) -> SubjectRule {
        match self {
            Self::Dialect(Dialect::LoginRefresh) => SubjectRule::Id,
            _ => SubjectRule::Login,
        }
    }

    pub fn login_fields(self) -> &'static str {
        match self.dialect() {
            None | Some(Dialect::Session | Dialect::LoginRefresh) => "username",
            Some(Dialect::Project) => "business and proyecto",
            Some(Dialect::ClientEnvelope | Dialect::ClientFlat) => "client_id",
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
        match self.dialect() {
            None | Some(Dialect::Session | Dialect::LoginRefresh) => username.map(str::to_string),
            Some(Dialect::Project) => Some(project_login(business?, proyecto?)),
            Some(Dialect::ClientEnvelope | Dialect::ClientFlat) => client_id.map(str::to_string),
        }
    }

    /// The principal keys read beside `secret_hash`, `active`, `blocked`
    /// and `rate_limit`, which every form reads.
    pub fn principal_keys(self) -> &'static [&'static str] {
        match self.dialect() {
            Some(Dialect::Session) => &["username", "id", "nombre", "role"],
            Some(Dialect::LoginRefresh) => &["username", "id", "role"],
            Some(Dialect::Project) => &["business", "proyecto"],
            Some(Dialect::ClientEnvelope) => &["client_id"],
            Some(Dialect::ClientFlat) => &["client_id", "company", "permissions"],
            None => &["username", "roles", "claims"],
        }
    }

    /// Its principals are clients: they get tokens for themselves with
    /// the `client_credentials` grant.
    pub fn has_clients(self) -> bool {
        matches!(
            self.dialect(),
            Some(Dialect::Project | Dialect::ClientEnvelope | Dialect::ClientFlat)
        )
    }

    /// Client secrets are high-entropy: their dummy is the fast hash.
    pub fn fast_secrets(self) -> bool {
        matches!(
            self.dialect(),
            Some(Dialect::ClientEnvelope | Dialect::ClientFlat)
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: Value) -> Principal {
        Principal {
            id,
            username: Some("ana".into()),
            ..Principal::named("ana")
        }
    }

    #[test]
    fn a_login_refresh_account_is_named_by_its_id_every_other_by_its_login() {
        let id_rule = AccountForm::Dialect(Dialect::LoginRefresh).subject_rule();
        assert_eq!(id_rule.of(&with_id(Value::from(7))), "7");
        assert_eq!(id_rule.of(&with_id(Value::from("u-7"))), "u-7");
        assert_eq!(id_rule.of(&with_id(Value::Null)), "ana");
        for form in [
            AccountForm::Standard,
            AccountForm::Dialect(Dialect::Session),
            AccountForm::Dialect(Dialect::ClientFlat),
        ] {
            assert_eq!(form.subject_rule().of(&with_id(Value::from(7))), "ana");
        }
    }
}
