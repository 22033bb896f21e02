//! `[issuers.NAME]` as written, one table type per `kind` (and for `jwt`,
//! per what its keys come from): a key that shape never reads is an
//! unknown key of its type, refused at its line with the keys it takes.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::{yes, DurationText, FileConcurrency, FileLimits, FileRateLimit, SizeText};

/// An issuer's table, read by its `kind` and, for `jwt`, by what its
/// keys come from.
pub(in crate::config) enum FileIssuer {
    /// `jwt` with a `dialect`: keys written here and a legacy endpoint.
    Dialect(Box<FileDialectIssuer>),
    /// `jwt` whose keys an outside provider holds (`discovery_url`,
    /// `jwks_url`), or whose opaque tokens it introspects (`client_id`,
    /// `introspection_url`).
    Provider(Box<FileProviderIssuer>),
    /// `jwt` with keys written here and nothing served (`portero token`
    /// mints its tokens), or a kind portero does not know, which the
    /// checks refuse.
    Keys(FileKeysIssuer),
    /// `oauth2`: portero's own authorization server.
    Standard(Box<FileStandardIssuer>),
    /// `api_key`: keys made by the admin API or `portero import`.
    ApiKey(FileApiKeyIssuer),
}

#[derive(Clone, Copy)]
enum Shape {
    Dialect,
    Provider,
    Keys,
    Standard,
    ApiKey,
}

thread_local! {
    /// Each issuer's shape, read from the text before serde reads the
    /// file: serde meets a table's keys in the order they are written, and
    /// `kind` (or `dialect`, `jwks_url`, ...) may come last.
    static SHAPES: RefCell<HashMap<String, Shape>> = RefCell::default();
}

/// Runs `read` (serde over `text`) knowing the shape of each issuer's
/// table as written.
pub(super) fn with_shapes_of<T>(text: &str, read: impl FnOnce() -> T) -> T {
    let shapes = written_shapes(text);
    let before = SHAPES.with(|k| k.replace(shapes));
    let read = read();
    SHAPES.with(|k| k.replace(before));
    read
}

fn written_shapes(text: &str) -> HashMap<String, Shape> {
    let Ok(file) = toml::from_str::<toml::Table>(text) else {
        return HashMap::new();
    };
    let Some(toml::Value::Table(issuers)) = file.get("issuers") else {
        return HashMap::new();
    };
    let has = |table: &toml::Value, keys: &[&str]| keys.iter().any(|k| table.get(k).is_some());
    let shape = |table: &toml::Value| match table.get("kind").and_then(toml::Value::as_str) {
        Some("oauth2") => Shape::Standard,
        Some("api_key") => Shape::ApiKey,
        _ if has(table, &["dialect"]) => Shape::Dialect,
        _ if has(table, PROVIDER_KEYS) => Shape::Provider,
        _ => Shape::Keys,
    };
    issuers
        .iter()
        .map(|(name, table)| (name.clone(), shape(table)))
        .collect()
}

/// `[issuers]`: each table read as the type of its shape.
pub(super) fn by_kind<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, FileIssuer>, D::Error> {
    struct Issuers;
    impl<'de> Visitor<'de> for Issuers {
        type Value = BTreeMap<String, FileIssuer>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a table of issuers")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut issuers = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                let shape = SHAPES.with(|k| k.borrow().get(&name).copied());
                let issuer = match shape.unwrap_or(Shape::Keys) {
                    Shape::Dialect => FileIssuer::Dialect(map.next_value()?),
                    Shape::Provider => FileIssuer::Provider(map.next_value()?),
                    Shape::Keys => FileIssuer::Keys(map.next_value()?),
                    Shape::Standard => FileIssuer::Standard(map.next_value()?),
                    Shape::ApiKey => FileIssuer::ApiKey(map.next_value()?),
                };
                issuers.insert(name, issuer);
            }
            Ok(issuers)
        }
    }
    d.deserialize_map(Issuers)
}

/// `kind = "jwt"` with a `dialect`: portero serves the legacy token
/// endpoint, with the keys, principals and settings written here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileDialectIssuer {
    pub(in crate::config) kind: Option<Spanned<String>>,
    pub(in crate::config) iss: Option<Spanned<String>>,
    /// Where routes read this issuer's roles: claim paths.
    pub(in crate::config) roles_claims: Option<Spanned<Vec<String>>>,
    pub(in crate::config) dialect: Spanned<String>,
    pub(in crate::config) token_ttl: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(in crate::config) allow_no_exp: bool,
    #[serde(default)]
    pub(in crate::config) keys: Vec<FileKey>,
    // The token endpoint.
    pub(in crate::config) host: Option<Spanned<String>>,
    pub(in crate::config) path: Option<Spanned<String>>,
    pub(in crate::config) refresh_path: Option<Spanned<String>>,
    pub(in crate::config) refresh_ttl: Option<Spanned<DurationText>>,
    pub(in crate::config) time_zone: Option<Spanned<String>>,
    pub(in crate::config) default_years: Option<Spanned<u32>>,
    pub(in crate::config) max_years: Option<Spanned<u32>>,
    pub(in crate::config) companies: Option<Spanned<Vec<String>>>,
    pub(in crate::config) max_failures: Option<u32>,
    pub(in crate::config) ip_max_failures: Option<u32>,
    pub(in crate::config) client_max_failures: Option<u32>,
    pub(in crate::config) lockout: Option<Spanned<DurationText>>,
    pub(in crate::config) max_body_size: Option<Spanned<SizeText>>,
    pub(in crate::config) body_timeout: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(in crate::config) principals: Vec<FilePrincipal>,
    pub(in crate::config) sign_in: Option<FileSignIn>,
    pub(in crate::config) principals_file: Option<Spanned<String>>,
    pub(in crate::config) cors: Option<Spanned<String>>,
    /// Standard OAuth 2.0 endpoints beside the dialect's own.
    pub(in crate::config) oauth2: Option<Spanned<FileOAuth2>>,
    pub(in crate::config) user_store: Option<Spanned<FileUserStore>>,
    /// The legacy service the token endpoint's answers are compared with.
    pub(in crate::config) shadow: Option<Spanned<FileShadow>>,
    /// When the dialect's endpoint was deprecated and when it goes
    /// (RFC 3339), announced on its answers.
    pub(in crate::config) deprecation: Option<Spanned<String>>,
    pub(in crate::config) sunset: Option<Spanned<String>>,
    // portero signs people in at this issuer, as its OpenID Connect client.
    pub(in crate::config) login_client_id: Option<Spanned<String>>,
    pub(in crate::config) login_client_secret_env: Option<Spanned<String>>,
    pub(in crate::config) login_scopes: Option<Spanned<Vec<String>>>,
    pub(in crate::config) login_userinfo: Option<Spanned<bool>>,
    #[serde(default)]
    pub(in crate::config) allow_ips: Vec<Spanned<String>>,
    #[serde(default)]
    pub(in crate::config) deny_ips: Vec<Spanned<String>>,
    pub(in crate::config) rate_limit: Option<Spanned<FileRateLimit>>,
    pub(in crate::config) max_in_flight: Option<Spanned<u32>>,
    pub(in crate::config) concurrency: Option<Spanned<FileConcurrency>>,
}

/// The keys that make a `jwt` issuer an outside provider's.
const PROVIDER_KEYS: &[&str] = &[
    "discovery_url",
    "jwks_url",
    "client_id",
    "introspection_url",
];

/// `kind = "jwt"` whose tokens an outside provider signs (its keys found
/// by `discovery_url` or at `jwks_url`) or whose opaque tokens it
/// introspects (`client_id`); portero may sign people in at it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileProviderIssuer {
    pub(in crate::config) kind: Option<Spanned<String>>,
    pub(in crate::config) iss: Option<Spanned<String>>,
    /// Where routes read this issuer's roles: claim paths.
    pub(in crate::config) roles_claims: Option<Spanned<Vec<String>>>,
    /// Only a JWT's verification reads it (an introspected answer without
    /// `exp` is taken as the provider says).
    pub(in crate::config) allow_no_exp: Option<Spanned<bool>>,
    // Opaque tokens, read by the provider's introspection endpoint (RFC 7662).
    pub(in crate::config) introspection_url: Option<Spanned<String>>,
    pub(in crate::config) client_id: Option<Spanned<String>>,
    pub(in crate::config) client_secret_env: Option<Spanned<String>>,
    pub(in crate::config) introspection_auth: Option<Spanned<String>>,
    pub(in crate::config) introspection_cache_ttl: Option<Spanned<DurationText>>,
    pub(in crate::config) introspection_negative_ttl: Option<Spanned<DurationText>>,
    pub(in crate::config) introspection_cache_size: Option<Spanned<u64>>,
    pub(in crate::config) introspection_timeout: Option<Spanned<DurationText>>,
    pub(in crate::config) introspection_on_failure: Option<Spanned<String>>,
    pub(in crate::config) introspection_require_token_type: Option<Spanned<bool>>,
    // An external issuer: keys from a JWKS.
    pub(in crate::config) discovery_url: Option<Spanned<String>>,
    pub(in crate::config) jwks_url: Option<Spanned<String>>,
    pub(in crate::config) ca_file: Option<Spanned<String>>,
    pub(in crate::config) jwks_refresh_min: Option<Spanned<DurationText>>,
    pub(in crate::config) jwks_refresh_max: Option<Spanned<DurationText>>,
    pub(in crate::config) jwks_refetch_interval: Option<Spanned<DurationText>>,
    pub(in crate::config) jwks_max_stale: Option<Spanned<DurationText>>,
    pub(in crate::config) jwks_timeout: Option<Spanned<DurationText>>,
    pub(in crate::config) jwks_ready_timeout: Option<Spanned<DurationText>>,
    // portero signs people in at this issuer, as its OpenID Connect client.
    pub(in crate::config) login_client_id: Option<Spanned<String>>,
    pub(in crate::config) login_client_secret_env: Option<Spanned<String>>,
    pub(in crate::config) login_scopes: Option<Spanned<Vec<String>>>,
    pub(in crate::config) login_userinfo: Option<Spanned<bool>>,
}

/// `kind = "jwt"` with keys written here and no endpoint: its tokens are
/// minted by `portero token` or by a service that holds its key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileKeysIssuer {
    pub(in crate::config) kind: Option<Spanned<String>>,
    pub(in crate::config) iss: Option<Spanned<String>>,
    /// Where routes read this issuer's roles: claim paths.
    pub(in crate::config) roles_claims: Option<Spanned<Vec<String>>>,
    pub(in crate::config) token_ttl: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(in crate::config) allow_no_exp: bool,
    #[serde(default)]
    pub(in crate::config) keys: Vec<FileKey>,
}

/// `kind = "oauth2"`: portero's own authorization server, with users and
/// clients of its own and no legacy endpoint or provider. Its identifier
/// is built on `server.public_url`; portero signs people in at it with
/// its own client (no secret, no userinfo: its tokens carry the claims).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileStandardIssuer {
    pub(in crate::config) kind: Spanned<String>,
    pub(in crate::config) roles_claims: Option<Spanned<Vec<String>>>,
    pub(in crate::config) token_ttl: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(in crate::config) keys: Vec<FileKey>,
    #[serde(default)]
    pub(in crate::config) users: Vec<FilePrincipal>,
    #[serde(default)]
    pub(in crate::config) clients: Vec<FileOAuthClient>,
    pub(in crate::config) principals_file: Option<Spanned<String>>,
    pub(in crate::config) user_store: Option<Spanned<FileUserStore>>,
    pub(in crate::config) oauth2: Option<Spanned<FileOAuth2>>,
    pub(in crate::config) sign_in: Option<FileSignIn>,
    // Its endpoints' host, bodies, lockout and refresh tokens.
    pub(in crate::config) host: Option<Spanned<String>>,
    pub(in crate::config) refresh_ttl: Option<Spanned<DurationText>>,
    pub(in crate::config) max_failures: Option<u32>,
    pub(in crate::config) ip_max_failures: Option<u32>,
    pub(in crate::config) client_max_failures: Option<u32>,
    pub(in crate::config) lockout: Option<Spanned<DurationText>>,
    pub(in crate::config) max_body_size: Option<Spanned<SizeText>>,
    pub(in crate::config) body_timeout: Option<Spanned<DurationText>>,
    pub(in crate::config) cors: Option<Spanned<String>>,
    // portero signs people in at this issuer.
    pub(in crate::config) login_client_id: Option<Spanned<String>>,
    pub(in crate::config) login_scopes: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(in crate::config) allow_ips: Vec<Spanned<String>>,
    #[serde(default)]
    pub(in crate::config) deny_ips: Vec<Spanned<String>>,
    pub(in crate::config) rate_limit: Option<Spanned<FileRateLimit>>,
    pub(in crate::config) max_in_flight: Option<Spanned<u32>>,
    pub(in crate::config) concurrency: Option<Spanned<FileConcurrency>>,
}

/// `kind = "api_key"`: its keys are made by the admin API or `portero
/// import`; the table names only the `iss` its keys' identities carry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileApiKeyIssuer {
    /// Read before the table: it chose this type.
    #[serde(rename = "kind")]
    _kind: serde::de::IgnoredAny,
    pub(in crate::config) iss: Option<Spanned<String>>,
}

/// What the issuers portero issues tokens for share: the endpoints'
/// settings and the accounts' lockout, a dialect's principals or a
/// standard issuer's users.
pub(in crate::config) struct FileIssuing<'a> {
    pub(in crate::config) accounts: &'a [FilePrincipal],
    pub(in crate::config) principals_file: Option<&'a Spanned<String>>,
    pub(in crate::config) has_oauth2: bool,
    pub(in crate::config) host: Option<&'a Spanned<String>>,
    pub(in crate::config) refresh_ttl: &'a Option<Spanned<DurationText>>,
    pub(in crate::config) max_failures: Option<u32>,
    pub(in crate::config) ip_max_failures: Option<u32>,
    pub(in crate::config) client_max_failures: Option<u32>,
    pub(in crate::config) lockout: &'a Option<Spanned<DurationText>>,
    pub(in crate::config) max_body_size: Option<&'a Spanned<SizeText>>,
    pub(in crate::config) body_timeout: &'a Option<Spanned<DurationText>>,
    pub(in crate::config) cors: &'a Option<Spanned<String>>,
    pub(in crate::config) limits: FileLimits<'a>,
}

macro_rules! issuing_of {
    ($t:ty, $accounts:ident) => {
        impl $t {
            pub(in crate::config) fn issuing(&self) -> FileIssuing<'_> {
                FileIssuing {
                    accounts: &self.$accounts,
                    principals_file: self.principals_file.as_ref(),
                    has_oauth2: self.oauth2.is_some(),
                    host: self.host.as_ref(),
                    refresh_ttl: &self.refresh_ttl,
                    max_failures: self.max_failures,
                    ip_max_failures: self.ip_max_failures,
                    client_max_failures: self.client_max_failures,
                    lockout: &self.lockout,
                    max_body_size: self.max_body_size.as_ref(),
                    body_timeout: &self.body_timeout,
                    cors: &self.cors,
                    limits: self.limits(),
                }
            }
        }
    };
}
issuing_of!(FileDialectIssuer, principals);
issuing_of!(FileStandardIssuer, users);

/// The `login_*` keys: portero signs people in at this issuer.
#[derive(Default)]
pub(in crate::config) struct FileLogin<'a> {
    pub(in crate::config) client_id: Option<&'a Spanned<String>>,
    pub(in crate::config) client_secret_env: Option<&'a Spanned<String>>,
    pub(in crate::config) scopes: Option<&'a Spanned<Vec<String>>>,
    pub(in crate::config) userinfo: Option<&'a Spanned<bool>>,
}

impl FileIssuer {
    pub(in crate::config) fn login(&self) -> FileLogin<'_> {
        match self {
            FileIssuer::Dialect(i) => FileLogin {
                client_id: i.login_client_id.as_ref(),
                client_secret_env: i.login_client_secret_env.as_ref(),
                scopes: i.login_scopes.as_ref(),
                userinfo: i.login_userinfo.as_ref(),
            },
            FileIssuer::Provider(i) => FileLogin {
                client_id: i.login_client_id.as_ref(),
                client_secret_env: i.login_client_secret_env.as_ref(),
                scopes: i.login_scopes.as_ref(),
                userinfo: i.login_userinfo.as_ref(),
            },
            FileIssuer::Standard(i) => FileLogin {
                client_id: i.login_client_id.as_ref(),
                scopes: i.login_scopes.as_ref(),
                ..FileLogin::default()
            },
            FileIssuer::Keys(_) | FileIssuer::ApiKey(_) => FileLogin::default(),
        }
    }

    /// Where an outside provider's metadata is.
    pub(in crate::config) fn discovery_url(&self) -> Option<&Spanned<String>> {
        match self {
            FileIssuer::Provider(i) => i.discovery_url.as_ref(),
            _ => None,
        }
    }

    /// The rate limit of the issuer's endpoints.
    pub(in crate::config) fn rate_limit(&self) -> Option<&Spanned<FileRateLimit>> {
        match self {
            FileIssuer::Dialect(i) => i.rate_limit.as_ref(),
            FileIssuer::Standard(i) => i.rate_limit.as_ref(),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FilePrincipals {
    pub(in crate::config) principals: Vec<FilePrincipal>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FilePrincipal {
    // Where each key is written: a key its dialect never reads is named at its line.
    pub(in crate::config) username: Option<Spanned<String>>,
    pub(in crate::config) client_id: Option<Spanned<String>>,
    pub(in crate::config) business: Option<Spanned<String>>,
    pub(in crate::config) proyecto: Option<Spanned<String>>,
    pub(in crate::config) secret_hash: Spanned<String>,
    pub(in crate::config) id: Option<Spanned<toml::Value>>,
    pub(in crate::config) nombre: Option<Spanned<String>>,
    pub(in crate::config) role: Option<Spanned<String>>,
    pub(in crate::config) company: Option<Spanned<String>>,
    pub(in crate::config) permissions: Option<Spanned<Vec<String>>>,
    #[serde(default = "yes")]
    pub(in crate::config) active: bool,
    #[serde(default)]
    pub(in crate::config) blocked: bool,
    pub(in crate::config) rate_limit: Option<u32>,
    /// The one OAuth 2.0 client authentication method it may use.
    pub(in crate::config) auth_method: Option<Spanned<String>>,
    /// Its OAuth 2.0 introspection requests may ask about any token of the issuer.
    pub(in crate::config) introspect: Option<Spanned<bool>>,
    /// A standard issuer's user: the `roles` claim, and claims as written.
    pub(in crate::config) roles: Option<Spanned<Vec<String>>>,
    pub(in crate::config) claims: Option<Spanned<toml::Table>>,
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileOAuth2 {
    #[serde(default)]
    pub(in crate::config) password_grant: bool,
    /// DPoP proofs at the token endpoint carry a server nonce (RFC 9449 §8).
    #[serde(default)]
    pub(in crate::config) dpop_nonce: bool,
    /// Authorization requests come pushed (RFC 9126 §5), for every client.
    #[serde(default)]
    pub(in crate::config) require_pushed_authorization_requests: bool,
    #[serde(default)]
    pub(in crate::config) clients: Vec<FileOAuthClient>,
    /// The authorization endpoint and sign-in page (on by default for a
    /// `kind = "oauth2"` issuer).
    pub(in crate::config) authorization_code: Option<Spanned<bool>>,
    /// Resource indicators (RFC 8707) its tokens may be asked for.
    #[serde(default)]
    pub(in crate::config) resources: Vec<Spanned<String>>,
    /// `off` (the default), `open` or `token` (RFC 7591).
    pub(in crate::config) registration: Option<Spanned<String>>,
    pub(in crate::config) registration_token_env: Option<Spanned<String>>,
    /// Registrations a minute from one address (`open`).
    pub(in crate::config) registration_rate: Option<Spanned<u32>>,
    pub(in crate::config) registered_client_ttl: Option<Spanned<DurationText>>,
    pub(in crate::config) session_ttl: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(in crate::config) logout_revokes_tokens: bool,
    /// A `client_id` that is an https URL names the client's metadata
    /// document, fetched from there.
    pub(in crate::config) client_metadata_documents: Option<Spanned<bool>>,
    /// Hosts whose documents may be on loopback or private addresses.
    pub(in crate::config) client_metadata_private_hosts: Option<Spanned<Vec<String>>>,
    /// Roots trusted for those fetches beside the system's.
    pub(in crate::config) client_metadata_ca_file: Option<Spanned<String>>,
    /// How long a user's consent to a client that described itself is
    /// remembered.
    pub(in crate::config) consent_ttl: Option<Spanned<DurationText>>,
    /// What each scope lets an application do, as the sign-in page says it.
    pub(in crate::config) scope_descriptions:
        Option<Spanned<std::collections::BTreeMap<String, String>>>,
}

/// `[issuers.NAME.sign_in]`: the look of the issuer's sign-in page. (Not
/// under `oauth2`: toml cannot read a table nested in a spanned one.)
#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileSignIn {
    pub(in crate::config) title: Option<Spanned<String>>,
    pub(in crate::config) logo_url: Option<Spanned<String>>,
    pub(in crate::config) stylesheet_url: Option<Spanned<String>>,
    /// Passkeys (WebAuthn) on the sign-in and account pages.
    pub(in crate::config) passkeys: Option<Spanned<bool>>,
    /// Their relying party id: `public_url`'s host, or a domain it is under.
    pub(in crate::config) rp_id: Option<Spanned<String>>,
    /// "off", "optional" or "required".
    pub(in crate::config) second_factor: Option<Spanned<String>>,
    /// The endpoints that take a password alone still take it from a
    /// person with a second factor (a migration window).
    pub(in crate::config) legacy_password_only: Option<Spanned<bool>>,
    /// The pages' language, and their words in it.
    pub(in crate::config) lang: Option<Spanned<String>>,
    pub(in crate::config) text: Option<Spanned<std::collections::BTreeMap<String, String>>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileUserStore {
    pub(in crate::config) url: Option<Spanned<String>>,
    pub(in crate::config) url_env: Option<Spanned<String>>,
    pub(in crate::config) query: Spanned<String>,
    pub(in crate::config) cache_ttl: Option<Spanned<DurationText>>,
    pub(in crate::config) timeout: Option<Spanned<DurationText>>,
    pub(in crate::config) max_connections: Option<u32>,
    pub(in crate::config) rehash: Option<Spanned<String>>,
    pub(in crate::config) update: Option<Spanned<String>>,
    pub(in crate::config) legacy_count: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileShadow {
    pub(in crate::config) url: Spanned<String>,
    pub(in crate::config) primary: Option<Spanned<String>>,
    pub(in crate::config) sample: Option<Spanned<f64>>,
    pub(in crate::config) timeout: Option<Spanned<DurationText>>,
    pub(in crate::config) tolerance: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub(in crate::config) claims: Vec<String>,
    #[serde(default)]
    pub(in crate::config) fallback: bool,
    #[serde(default)]
    pub(in crate::config) compare_refresh: bool,
    pub(in crate::config) queue: Option<Spanned<u32>>,
    pub(in crate::config) ca_file: Option<Spanned<String>>,
}

/// A user dialect's OAuth 2.0 client.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileOAuthClient {
    pub(in crate::config) client_id: Spanned<String>,
    /// None: a public client (PKCE only).
    pub(in crate::config) secret_hash: Option<Spanned<String>>,
    pub(in crate::config) redirect_uris: Option<Spanned<Vec<String>>>,
    pub(in crate::config) grant_types: Option<Spanned<Vec<String>>>,
    /// A standard issuer's client: the `roles` of its own tokens.
    #[serde(default)]
    pub(in crate::config) roles: Vec<String>,
    /// The scopes its tokens may carry.
    #[serde(default)]
    pub(in crate::config) scopes: Vec<String>,
    pub(in crate::config) auth_method: Option<Spanned<String>>,
    #[serde(default)]
    pub(in crate::config) introspect: bool,
    /// Its public keys, a JWKS written as a table: it authenticates with
    /// assertions they verify (`private_key_jwt`).
    pub(in crate::config) jwks: Option<Spanned<toml::Table>>,
    /// Where its JWKS is published, instead of `jwks`.
    pub(in crate::config) jwks_uri: Option<Spanned<String>>,
    /// Outside identities it is: a token of that issuer about that
    /// subject authenticates it (federated workload identity).
    #[serde(default)]
    pub(in crate::config) federated: Vec<FileFederation>,
    /// It always sends a DPoP proof: a token request without one is
    /// refused (RFC 9449 §5.2).
    #[serde(default)]
    pub(in crate::config) dpop_bound_access_tokens: bool,
    /// Its authorization requests come pushed (RFC 9126 §6).
    #[serde(default)]
    pub(in crate::config) require_pushed_authorization_requests: bool,
    /// `tls_client_auth`'s one name (RFC 8705 §2.1.2).
    pub(in crate::config) tls_client_auth_subject_dn: Option<Spanned<String>>,
    pub(in crate::config) tls_client_auth_san_dns: Option<Spanned<String>>,
    pub(in crate::config) tls_client_auth_san_uri: Option<Spanned<String>>,
    pub(in crate::config) tls_client_auth_san_ip: Option<Spanned<String>>,
    pub(in crate::config) tls_client_auth_san_email: Option<Spanned<String>>,
    /// Its tokens are bound to its certificate (RFC 8705 §3).
    #[serde(default)]
    pub(in crate::config) tls_client_certificate_bound_access_tokens: bool,
}

/// A client's outside identity: `issuer` names one of the config's
/// provider issuers.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileFederation {
    pub(in crate::config) issuer: Spanned<String>,
    pub(in crate::config) subject: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct FileKey {
    pub(in crate::config) kid: Spanned<String>,
    pub(in crate::config) alg: Spanned<String>,
    pub(in crate::config) secret_env: Option<String>,
    pub(in crate::config) secret_file: Option<String>,
    pub(in crate::config) private_key_file: Option<String>,
    pub(in crate::config) public_key_file: Option<String>,
    #[serde(default)]
    pub(in crate::config) verify_only: bool,
}
