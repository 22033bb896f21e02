//! `[issuers.*]`: keys, accounts, token routes, legacy endpoints, OAuth 2.0 and user stores (principals: `principal.rs`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::super::file::*;
use super::super::model::*;
use super::super::units::{parse_size, secs};
use super::principal::Readers;
use super::Checker;
use crate::claim_path::ClaimPath;

/// Whether a route on host `pattern` (`*`, `*.example.com` or a name, in
/// lower case) serves requests for `host`, as the route table matches them.
pub(super) fn host_serves(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
        None => pattern == host,
    }
}

impl Checker<'_> {
    /// An issuer, as its kind reads it (`FileIssuer`: the keys a kind
    /// never reads were refused as unknown where they are written).
    pub(super) fn issuer(
        &mut self,
        name: &str,
        i: &FileIssuer,
        cors: &[Arc<CorsPolicy>],
        public_url: Option<&str>,
    ) -> Issuer {
        if name.chars().any(char::is_control) {
            self.problem_no_span(
                format!("issuers.{name:?}"),
                "an issuer name holds no control characters",
            );
        }
        match i {
            FileIssuer::Dialect(i) => self.dialect_issuer(name, i, cors, public_url),
            FileIssuer::Provider(i) => self.provider_issuer(name, i),
            FileIssuer::Keys(i) => self.keys_issuer(name, i),
            FileIssuer::Standard(i) => self.standard_issuer(name, i, cors, public_url),
            FileIssuer::ApiKey(i) => self.api_key_issuer(name, i),
        }
    }

    /// An `api_key` issuer: its keys are the admin API's, so it has no
    /// signing keys, accounts or routes of its own; its keys' records say
    /// how long they last.
    fn api_key_issuer(&mut self, name: &str, i: &FileApiKeyIssuer) -> Issuer {
        let iss = i.iss.as_ref().map_or(name, |s| s.get_ref()).to_string();
        Issuer {
            kind: IssuerKind::ApiKey,
            ..self.verified(name, iss, &None, true)
        }
    }

    /// A `kind` other than `jwt` that still read as a `jwt` table: one
    /// portero does not know.
    fn jwt_kind(&mut self, name: &str, kind: Option<&Spanned<String>>) {
        if let Some(kind) = kind.filter(|k| k.get_ref() != "jwt") {
            let message = format!(
                "{:?} is not a kind of issuer: jwt (the default), oauth2 or api_key",
                kind.get_ref()
            );
            self.problem(kind, format!("issuers.{name}.kind"), message);
        }
    }

    /// An issuer of signed tokens portero only verifies: no keys,
    /// accounts, endpoints or provider yet.
    fn verified(
        &mut self,
        name: &str,
        iss: String,
        roles_claims: &Option<Spanned<Vec<String>>>,
        allow_no_exp: bool,
    ) -> Issuer {
        Issuer {
            name: name.to_string(),
            kind: IssuerKind::Jwt,
            iss,
            token_ttl: secs(3600),
            allow_no_exp,
            keys: Vec::new(),
            accounts: None,
            token_routes: None,
            legacy: None,
            user_store: None,
            shadow: None,
            external: None,
            oauth2: None,
            introspection: None,
            roles_claims: self.roles_claims(name, roles_claims),
            login: None,
        }
    }

    pub(super) fn token_ttl(
        &mut self,
        name: &str,
        written: &Option<Spanned<DurationText>>,
    ) -> Duration {
        self.lasting(written, &format!("issuers.{name}.token_ttl"), secs(3600))
    }

    /// A `jwt` issuer with keys written here and no endpoint.
    fn keys_issuer(&mut self, name: &str, i: &FileKeysIssuer) -> Issuer {
        self.jwt_kind(name, i.kind.as_ref());
        let iss = i.iss.as_ref().map_or(name, |s| s.get_ref()).to_string();
        let verified = self.verified(name, iss, &i.roles_claims, i.allow_no_exp);
        Issuer {
            keys: self.keys(name, &i.keys),
            token_ttl: self.token_ttl(name, &i.token_ttl),
            ..verified
        }
    }

    /// A `jwt` issuer whose keys or answers an outside provider holds.
    fn provider_issuer(&mut self, name: &str, i: &FileProviderIssuer) -> Issuer {
        self.jwt_kind(name, i.kind.as_ref());
        let external = self.external(name, i);
        let introspection = self.introspection(name, i);
        let iss = match (&i.iss, &external) {
            (Some(iss), _) => iss.get_ref().clone(),
            // Learned from the provider's metadata.
            (None, Some(_)) => String::new(),
            (None, None) => name.to_string(),
        };
        let allow_no_exp = i.allow_no_exp.as_ref().is_some_and(|v| *v.get_ref());
        if let (Some(written), None) = (&i.allow_no_exp, &external) {
            let message = "only a JWT's verification reads it (discovery_url or jwks_url): \
                           an introspected token is live or not as its provider answers";
            self.problem(written, format!("issuers.{name}.allow_no_exp"), message);
        }
        let verified = self.verified(name, iss, &i.roles_claims, allow_no_exp);
        Issuer {
            external,
            introspection,
            ..verified
        }
    }

    /// A `jwt` issuer with a dialect: its keys, accounts and legacy
    /// endpoint, and the OAuth 2.0 endpoints, user store and shadow
    /// comparison it may add.
    fn dialect_issuer(
        &mut self,
        name: &str,
        i: &FileDialectIssuer,
        cors: &[Arc<CorsPolicy>],
        public_url: Option<&str>,
    ) -> Issuer {
        self.jwt_kind(name, i.kind.as_ref());
        let iss = i.iss.as_ref().map_or(name, |s| s.get_ref()).to_string();
        let verified = self.verified(name, iss, &i.roles_claims, i.allow_no_exp);
        let keys = self.keys(name, &i.keys);
        let token_ttl = self.token_ttl(name, &i.token_ttl);
        let Some((mut accounts, token_routes, legacy)) = self.endpoint(name, i, cors) else {
            // A dialect portero does not speak is one problem, named once:
            // the tables that need a dialect are not checked against it.
            return Issuer {
                keys,
                token_ttl,
                ..verified
            };
        };
        let mut oauth2 = i
            .oauth2
            .as_ref()
            .and_then(|table| self.oauth2(name, table, (&accounts, &token_routes), public_url));
        let page = oauth2.as_ref().is_some_and(|o| o.authorization_code);
        let public_url = public_url.unwrap_or("");
        let sign_in = self.sign_in_page(name, i.sign_in.as_ref(), page, public_url, &mut accounts);
        if let Some(o) = oauth2.as_mut() {
            o.sign_in = sign_in;
        }
        if let (Some(o), Some(host)) = (&oauth2, &i.host) {
            self.oauth2_reachable(name, host, &o.public_url);
        }
        let refreshes = legacy.dialect == Dialect::LoginRefresh
            || oauth2
                .as_ref()
                .is_some_and(|o| o.authorization_code || o.password_grant);
        self.refresh_ttl_read(name, &i.refresh_ttl, refreshes);
        let user_store = i
            .user_store
            .as_ref()
            .and_then(|table| self.user_store(name, table));
        let shadow = i.shadow.as_ref().and_then(|table| self.shadow(name, table));
        Issuer {
            accounts: Some(accounts),
            token_routes: Some(token_routes),
            legacy: Some(legacy),
            user_store,
            shadow,
            oauth2,
            token_ttl,
            keys,
            ..verified
        }
    }

    /// `refresh_ttl` is read only where refresh tokens are issued: the
    /// login-refresh dialect, the authorization code flow, the password
    /// grant.
    pub(super) fn refresh_ttl_read(
        &mut self,
        name: &str,
        written: &Option<Spanned<DurationText>>,
        refreshes: bool,
    ) {
        if let (Some(ttl), false) = (written, refreshes) {
            let message = "no refresh token is issued here (the login-refresh dialect, \
                           authorization_code or the password grant issue them): nothing reads it";
            self.problem(ttl, format!("issuers.{name}.refresh_ttl"), message);
        }
    }

    /// `roles_claims`: claim paths, at least one.
    pub(super) fn roles_claims(
        &mut self,
        name: &str,
        written: &Option<Spanned<Vec<String>>>,
    ) -> Option<Arc<[ClaimPath]>> {
        let list = written.as_ref()?;
        let key = format!("issuers.{name}.roles_claims");
        if list.get_ref().is_empty() {
            self.problem(
                list,
                &key,
                "names no claim; leave it out to read `role` and `roles`",
            );
        }
        let mut paths = Vec::new();
        for text in list.get_ref() {
            match ClaimPath::parse(text) {
                Ok(path) => paths.push(path),
                Err(e) => self.problem(list, &key, e),
            }
        }
        Some(paths.into())
    }

    /// `[[issuers.NAME.keys]]`: each key's algorithm and where its
    /// material is; at most one of them signs.
    pub(super) fn keys(&mut self, name: &str, written: &[FileKey]) -> Vec<KeyConfig> {
        let keys: Vec<KeyConfig> = written
            .iter()
            .enumerate()
            .filter_map(|(n, k)| self.key(name, n, k))
            .collect();
        let signing = keys.iter().filter(|k| !k.verify_only).count();
        if signing > 1 {
            self.problem_no_span(
                format!("issuers.{name}.keys"),
                "at most one key may sign; mark the others verify_only = true",
            );
        }
        keys
    }

    /// One key, `keys[n]` of issuer `name`.
    fn key(&mut self, name: &str, n: usize, k: &FileKey) -> Option<KeyConfig> {
        let key = |f: &str| format!("issuers.{name}.keys[{n}].{f}");
        let alg = match k.alg.get_ref().as_str() {
            "HS256" => jsonwebtoken::Algorithm::HS256,
            "RS256" => jsonwebtoken::Algorithm::RS256,
            "ES256" => jsonwebtoken::Algorithm::ES256,
            "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
            other => {
                self.problem(
                    &k.alg,
                    key("alg"),
                    format!("unsupported algorithm {other:?} (HS256, RS256, ES256, EdDSA)"),
                );
                return None;
            }
        };
        let source = match (
            alg,
            &k.secret_env,
            &k.secret_file,
            &k.private_key_file,
            &k.public_key_file,
        ) {
            (jsonwebtoken::Algorithm::HS256, Some(env), None, None, None) => {
                KeySource::SecretEnv(env.clone())
            }
            (jsonwebtoken::Algorithm::HS256, None, Some(f), None, None) => {
                KeySource::SecretFile(self.resolve(f))
            }
            (jsonwebtoken::Algorithm::HS256, ..) => {
                self.problem(
                    &k.kid,
                    key("secret_env"),
                    "an HS256 key needs exactly one of secret_env, secret_file",
                );
                return None;
            }
            (_, None, None, private, public) if private.is_some() || public.is_some() => {
                KeySource::Pem {
                    private: private.as_deref().map(|f| self.resolve(f)),
                    public: public.as_deref().map(|f| self.resolve(f)),
                }
            }
            _ => {
                self.problem(
                    &k.kid,
                    key("public_key_file"),
                    format!(
                        "{} keys need public_key_file and/or private_key_file",
                        k.alg.get_ref()
                    ),
                );
                return None;
            }
        };
        let verify_only = k.verify_only || matches!(&source, KeySource::Pem { private: None, .. });
        Some(KeyConfig {
            kid: k.kid.get_ref().clone(),
            alg,
            source,
            verify_only,
        })
    }

    /// The accounts, token routes and legacy endpoint of an issuer with a
    /// dialect; `None` for a dialect portero does not speak.
    fn endpoint(
        &mut self,
        name: &str,
        i: &FileDialectIssuer,
        cors: &[Arc<CorsPolicy>],
    ) -> Option<(Accounts, TokenRoutes, LegacyEndpoint)> {
        let dialect = self.dialect(name, &i.dialect)?;
        let (accounts, routes) =
            self.issuing_for(name, i.issuing(), cors, AccountForm::Dialect(dialect));
        Some((accounts, routes, self.legacy(name, i, dialect)))
    }

    /// What an issuer portero issues for reads, for accounts of `form`:
    /// its accounts with their lockout, and its token routes' settings.
    pub(super) fn issuing_for(
        &mut self,
        name: &str,
        i: FileIssuing<'_>,
        cors: &[Arc<CorsPolicy>],
        form: AccountForm,
    ) -> (Accounts, TokenRoutes) {
        let key = |k: &str| format!("issuers.{name}.{k}");
        let principals = self.endpoint_principals(name, &i, form);
        let max_body_size = match i.max_body_size {
            None => 64 * 1024,
            Some(v) => match parse_size(v.get_ref()) {
                Ok(0) => {
                    self.problem(v, key("max_body_size"), "must be more than 0: no body fits");
                    0
                }
                Ok(size) => size,
                Err(e) => {
                    self.problem(v, key("max_body_size"), e);
                    0
                }
            },
        };
        let host = i
            .host
            .map_or("*".to_string(), |h| h.get_ref().to_ascii_lowercase());
        let refresh_ttl = self.lasting(i.refresh_ttl, &key("refresh_ttl"), secs(86_400));
        let accounts = Accounts {
            form,
            subject: form.subject_rule(),
            principals: Principals::new(principals),
            max_failures: i.max_failures.unwrap_or(5).max(1),
            ip_max_failures: i.ip_max_failures.unwrap_or(50).max(1),
            client_max_failures: i.client_max_failures.unwrap_or(1000).max(1),
            hash_limits: self.hash_limits,
            lockout: self.duration(i.lockout, &key("lockout"), secs(900)),
            sign_in_page: false,
            second_factor: SecondFactor::Off,
            legacy_password_only: false,
        };
        let routes = TokenRoutes {
            host,
            max_body_size,
            body_timeout: self.lasting(i.body_timeout, &key("body_timeout"), secs(10)),
            cors: self.cors_ref(i.cors, cors, &key("cors")),
            limits: self.route_limits(i.limits, &format!("issuers.{name}"), false),
            refresh_ttl,
        };
        (accounts, routes)
    }

    /// The principals written in the issuer's table and in its
    /// `principals_file`, each with the form's login fields.
    fn endpoint_principals(
        &mut self,
        name: &str,
        i: &FileIssuing<'_>,
        form: AccountForm,
    ) -> Vec<Principal> {
        let key = |k: &str| format!("issuers.{name}.{k}");
        // A standard issuer's are its users.
        let list = match form {
            AccountForm::Standard => "users",
            AccountForm::Dialect(_) => "principals",
        };
        let written = i.accounts;
        let mut file_principals = written.to_vec();
        if let Some(f) = i.principals_file {
            let p = self.resolve(f.get_ref());
            match std::fs::read_to_string(&p)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<FilePrincipals>(&t).map_err(|e| e.to_string()))
            {
                Ok(list) => file_principals.extend(list.principals),
                Err(e) => self.problem(f, key("principals_file"), format!("{}: {e}", p.display())),
            }
        }
        let readers = Readers {
            form,
            oauth2: i.has_oauth2,
        };
        let mut principals = Vec::new();
        for (n, p) in file_principals.iter().enumerate() {
            // A principals_file's positions are not the config's lines.
            self.spans_elsewhere = n >= written.len();
            if let Some(principal) = self.principal(&key(&format!("{list}[{n}]")), readers, p) {
                principals.push(principal);
            }
        }
        self.spans_elsewhere = false;
        self.distinct_logins(&principals, &key(list));
        principals
    }

    /// `[issuers.NAME.user_store]`: where the issuer's accounts live in SQL.
    pub(super) fn user_store(
        &mut self,
        name: &str,
        table: &Spanned<FileUserStore>,
    ) -> Option<UserStoreConfig> {
        let key = |k: &str| format!("issuers.{name}.user_store.{k}");
        let s = table.get_ref();
        let url = match (&s.url, &s.url_env) {
            (Some(u), None) => u.get_ref().clone(),
            (None, Some(var)) => match std::env::var(var.get_ref()) {
                Ok(u) => u,
                Err(_) => {
                    self.problem(
                        var,
                        key("url_env"),
                        format!("environment variable {} is not set", var.get_ref()),
                    );
                    return None;
                }
            },
            _ => {
                self.problem(table, key("url"), "needs exactly one of url, url_env");
                return None;
            }
        };
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("mysql://")
            || url.starts_with("mariadb://"))
        {
            // The URL may hold a password: its scheme only.
            let scheme = url.split("://").next().unwrap_or_default();
            let at = s.url.as_ref().or(s.url_env.as_ref()).expect("one of them");
            self.problem(
                at,
                key("url"),
                format!("scheme {scheme:?}: postgres:// or mysql:// (MariaDB too)"),
            );
            return None;
        }
        let rehash_update = match (&s.rehash, &s.update) {
            (None, None) => None,
            (Some(r), _) if r.get_ref() != "argon2id" => {
                self.problem(
                    r,
                    key("rehash"),
                    format!("{:?}: only \"argon2id\"", r.get_ref()),
                );
                None
            }
            (Some(_), Some(update)) => Some(update.get_ref().clone()),
            (Some(r), None) => {
                self.problem(
                    r,
                    key("update"),
                    "rehash needs the update that writes the new hash: it binds the new \
                     hash, the login, then the old hash (compare and swap)",
                );
                None
            }
            (None, Some(u)) => {
                self.problem(u, key("update"), "is used only with rehash = \"argon2id\"");
                None
            }
        };
        Some(UserStoreConfig {
            rehash_update,
            legacy_count: s.legacy_count.clone(),
            url: url.replacen("mariadb://", "mysql://", 1),
            query: s.query.get_ref().clone(),
            cache_ttl: self.duration(&s.cache_ttl, &key("cache_ttl"), secs(5)),
            timeout: self.duration(&s.timeout, &key("timeout"), secs(2)),
            max_connections: s.max_connections.unwrap_or(4).max(1),
        })
    }

    /// An issuer's legacy `iss` may not be an OAuth 2.0 issuer identifier
    /// (its own or another's): whose token it is, and whether it must say
    /// `typ: at+jwt`, is read from `iss`.
    pub(super) fn check_iss_apart(&mut self, issuers: &[Issuer]) {
        for i in issuers {
            if i.kind == IssuerKind::OAuth2 {
                continue;
            }
            let clash = issuers
                .iter()
                .find(|o| o.oauth2.as_ref().is_some_and(|o| o.issuer_id == i.iss));
            if let Some(other) = clash {
                self.problem_no_span(
                    format!("issuers.{}.iss", i.name),
                    format!(
                        "{:?} is issuer {:?}'s OAuth 2.0 identifier; name this issuer's tokens otherwise",
                        i.iss, other.name
                    ),
                );
            }
        }
    }

    pub(super) fn check_unique_kids(&mut self, issuers: &[Issuer]) {
        let mut seen = HashSet::new();
        for i in issuers {
            for k in &i.keys {
                if !seen.insert(k.kid.as_str()) {
                    self.problem_no_span(
                        format!("issuers.{}.keys", i.name),
                        format!("kid {:?} is used twice; kids must be unique", k.kid),
                    );
                }
            }
        }
    }
}
