//! `kind = "oauth2"`: portero's own authorization server, with its users
//! and clients and no legacy endpoint; and the OAuth 2.0 settings every
//! issuer with endpoints under `/oauth2/NAME` shares (clients, the
//! authorization endpoint, resources, registration, the sign-in page).

use std::sync::Arc;

use super::super::file::*;
use super::super::model::*;
use super::super::units::secs;
use super::Checker;

/// The grants a client may be given, by their registered names.
const GRANTS: [&str; 5] = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    "urn:ietf:params:oauth:grant-type:token-exchange",
];

use crate::redirect_uri::redirect_uri_problem;

impl Checker<'_> {
    /// A `kind = "oauth2"` issuer: keys as any issuer of its own, users as
    /// principals with no dialect, clients, and the endpoints under
    /// `<server.public_url>/oauth2/NAME`, its identifier and tokens' `iss`.
    pub(super) fn standard_issuer(
        &mut self,
        name: &str,
        i: &FileStandardIssuer,
        cors: &[Arc<CorsPolicy>],
        public_url: Option<&str>,
    ) -> Issuer {
        let key = |k: &str| format!("issuers.{name}.{k}");
        let keys = self.keys(name, &i.keys);
        let (mut accounts, routes) =
            self.issuing_for(name, i.issuing(), cors, AccountForm::Standard);
        let settings = i
            .oauth2
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_default();
        if let Some(table) = &i.oauth2 {
            if !settings.clients.is_empty() || settings.password_grant {
                self.problem(
                    table,
                    key("oauth2"),
                    "an oauth2 issuer's clients are [[issuers.NAME.clients]], and OAuth 2.1 has \
                     no password grant",
                );
            }
        }
        let login_client = i.login_client_id.as_ref().map(|id| id.get_ref().as_str());
        let clients = self.oauth_clients(
            name,
            &i.clients,
            &key("clients"),
            &accounts,
            &settings,
            login_client,
        );
        let cors = routes.cors.as_deref();
        let origin = public_url.unwrap_or("");
        self.browser_clients_reach_the_token_endpoint(&key("clients"), &i.clients, cors, origin);
        if public_url.is_none() {
            self.problem(
                &i.kind,
                key("kind"),
                "an oauth2 issuer needs server.public_url: its issuer identifier is built on it",
            );
        }
        let mut oauth2 =
            self.oauth2_settings(name, &settings, public_url.unwrap_or(""), clients, true);
        oauth2.sign_in = self.sign_in_page(
            name,
            i.sign_in.as_ref(),
            oauth2.authorization_code,
            public_url.unwrap_or(""),
            &mut accounts,
        );
        self.refresh_ttl_read(name, &i.refresh_ttl, oauth2.authorization_code);
        if let (Some(host), Some(_)) = (&i.host, public_url) {
            self.oauth2_reachable(name, host, &oauth2.public_url);
        }
        let user_store = i
            .user_store
            .as_ref()
            .and_then(|table| self.user_store(name, table));
        let users_exist = accounts.principals.iter().next().is_some() || user_store.is_some();
        if users_exist && !oauth2.authorization_code {
            self.problem_no_span(
                key("oauth2.authorization_code"),
                "the issuer's users can never sign in with the authorization endpoint off",
            );
        }
        let a_client_signs_in = oauth2.registration != Registration::Off
            || oauth2.clients.iter().any(|c| {
                (!c.client.redirect_uris.is_empty() || Some(c.login.as_str()) == login_client)
                    && c.client.may_use("authorization_code")
            });
        if users_exist && oauth2.authorization_code && !a_client_signs_in {
            self.problem_no_span(
                key("users"),
                "no client can sign these users in: give one redirect_uris (and authorization_code), or open registration",
            );
        }
        Issuer {
            name: name.to_string(),
            kind: IssuerKind::OAuth2,
            iss: oauth2.issuer_id.clone(),
            token_ttl: self.token_ttl(name, &i.token_ttl),
            allow_no_exp: false,
            keys,
            accounts: Some(accounts),
            token_routes: Some(routes),
            legacy: None,
            user_store,
            shadow: None,
            external: None,
            oauth2: Some(oauth2),
            introspection: None,
            roles_claims: self.roles_claims(name, &i.roles_claims),
            login: None,
        }
    }

    /// The OAuth 2.0 clients written for an issuer, as principals;
    /// `login_client` is the one portero signs people in with, whose
    /// redirect URI is portero's own callback (added with `[sessions]`).
    pub(super) fn oauth_clients(
        &mut self,
        issuer: &str,
        list: &[FileOAuthClient],
        key: &str,
        accounts: &Accounts,
        settings: &FileOAuth2,
        login_client: Option<&str>,
    ) -> Principals {
        let code_flow = match accounts.form {
            AccountForm::Standard => settings
                .authorization_code
                .as_ref()
                .is_none_or(|v| *v.get_ref()),
            AccountForm::Dialect(_) => settings
                .authorization_code
                .as_ref()
                .is_some_and(|v| *v.get_ref()),
        };
        let mut clients = Vec::new();
        for (n, c) in list.iter().enumerate() {
            let client_key = format!("{key}[{n}]");
            self.not_a_user(issuer, &c.client_id, accounts, &client_key);
            if c.client_id.get_ref() == "portero:account" {
                self.problem(
                    &c.client_id,
                    format!("{client_key}.client_id"),
                    "portero:account is the account page's own client: name this one otherwise",
                );
            }
            let portero_signs_in =
                code_flow && Some(c.client_id.get_ref().as_str()) == login_client;
            let client =
                self.oauth_client(&client_key, c, accounts.form, code_flow, portero_signs_in);
            if let Some(client) = client {
                clients.push(client);
            }
        }
        self.distinct_logins(&clients, key);
        self.federations_apart(&clients, key);
        Principals::new(clients)
    }

    fn oauth_client(
        &mut self,
        key: &str,
        c: &FileOAuthClient,
        form: AccountForm,
        code_flow: bool,
        portero_signs_in: bool,
    ) -> Option<Principal> {
        let secret = match &c.secret_hash {
            Some(h) => Some(self.stored_hash(h, &format!("{key}.secret_hash"))?),
            None => None,
        };
        for scope in &c.scopes {
            if scope.is_empty()
                || scope.contains(|ch: char| ch.is_whitespace() || ch == '"' || ch == '\\')
            {
                self.problem(
                    &c.client_id,
                    format!("{key}.scopes"),
                    format!("{scope:?}: a scope is one word (RFC 6749 §3.3), no quotes"),
                );
            }
        }
        let redirect_uris = self.redirect_uris(key, c, code_flow);
        let credentials = self.client_credentials(key, c);
        let public = secret.is_none() && !credentials.asserts();
        // portero's own callback is the sign-in client's redirect URI.
        let redirects = !redirect_uris.is_empty() || portero_signs_in;
        let grant_types = self.grant_types(key, c, form, public, redirects);
        if public && !redirects {
            self.problem(
                &c.client_id,
                key,
                "a client without secret_hash (a public client) signs users in with \
                 redirect_uris and the authorization endpoint; it has neither",
            );
        }
        self.grants_usable(key, c, &grant_types, public, redirects);
        if !form.has_clients() && !c.roles.is_empty() && form != AccountForm::Standard {
            self.problem(
                &c.client_id,
                format!("{key}.roles"),
                "only an oauth2 issuer's clients get tokens of their own",
            );
        }
        let client_id = c.client_id.get_ref();
        Some(Principal {
            login: client_id.clone(),
            // A public client has no secret to check: it is never asked.
            secret: secret.unwrap_or_else(SecretHash::unusable),
            id: serde_json::Value::Null,
            username: None,
            nombre: None,
            role: None,
            business: None,
            proyecto: None,
            client_id: Some(client_id.clone()),
            company: None,
            permissions: c.scopes.clone(),
            active: true,
            blocked: false,
            rate_limit: None,
            stored_hash: None,
            auth_method: credentials.auth_method,
            introspect: c.introspect,
            roles: c.roles.clone(),
            claims: serde_json::Map::new(),
            client: ClientProfile {
                public,
                redirect_uris,
                grant_types,
                registered: false,
                name: None,
                metadata_document: false,
                keys: credentials.keys,
                federated: credentials.federated,
                tls: credentials.tls,
                certificate_bound_access_tokens: c.tls_client_certificate_bound_access_tokens,
                dpop_bound_access_tokens: c.dpop_bound_access_tokens,
                require_pushed_requests: c.require_pushed_authorization_requests,
            },
        })
    }

    /// A client's grants must get it a token: a public client needs the
    /// code, redirect URIs need the code to be sent with, and a refresh
    /// token comes only from a code (or a password).
    fn grants_usable(
        &mut self,
        key: &str,
        c: &FileOAuthClient,
        grants: &[String],
        public: bool,
        redirects: bool,
    ) {
        let Some(written) = &c.grant_types else {
            return;
        };
        let key = format!("{key}.grant_types");
        let has = |g: &str| grants.iter().any(|x| x == g);
        let problem = if grants.is_empty() {
            "names no grant: leave it out for the client's defaults"
        } else if public && !has("authorization_code") {
            "a public client gets tokens only with authorization_code"
        } else if redirects && !has("authorization_code") {
            "without authorization_code the client's redirect_uris are never used"
        } else if has("refresh_token") && !has("authorization_code") && !has("password") {
            "refresh_token without authorization_code or password: no refresh token is ever issued"
        } else {
            return;
        };
        self.problem(written, key, problem);
    }

    /// A client's `redirect_uris`, each one portero may send a code to.
    fn redirect_uris(&mut self, key: &str, c: &FileOAuthClient, code_flow: bool) -> Vec<String> {
        let Some(written) = &c.redirect_uris else {
            if c.require_pushed_authorization_requests {
                self.problem(
                    &c.client_id,
                    format!("{key}.require_pushed_authorization_requests"),
                    "the client makes no authorization requests: it has no redirect_uris",
                );
            }
            return Vec::new();
        };
        let key = format!("{key}.redirect_uris");
        if !code_flow {
            self.problem(
                written,
                &key,
                "never used: the issuer's authorization endpoint is off (oauth2.authorization_code)",
            );
        }
        for uri in written.get_ref() {
            if let Some(problem) = redirect_uri_problem(uri) {
                self.problem(written, &key, problem);
            }
        }
        written.get_ref().clone()
    }

    /// The grants a client may use: as written, each one it can use; by
    /// default, what its kind of client can do. Empty for a dialect's
    /// client that names none: every grant its issuer serves.
    fn grant_types(
        &mut self,
        key: &str,
        c: &FileOAuthClient,
        form: AccountForm,
        public: bool,
        redirects: bool,
    ) -> Vec<String> {
        let key = format!("{key}.grant_types");
        let Some(written) = &c.grant_types else {
            if form != AccountForm::Standard {
                return Vec::new();
            }
            let mut defaults = Vec::new();
            if redirects {
                defaults.extend(["authorization_code", "refresh_token"]);
            }
            if !public {
                defaults.extend(["client_credentials", GRANTS[4]]);
            }
            return defaults.into_iter().map(str::to_string).collect();
        };
        for grant in written.get_ref() {
            let problem = match grant.as_str() {
                g if !GRANTS.contains(&g) => Some(format!(
                    "{g:?} is not a grant portero serves ({})",
                    GRANTS.join(", ")
                )),
                "authorization_code" if !redirects => {
                    Some("authorization_code needs redirect_uris".to_string())
                }
                "client_credentials" if form != AccountForm::Standard => Some(
                    "client_credentials is for an oauth2 issuer's clients (a client dialect's \
                     principals have it always)"
                        .to_string(),
                ),
                "password" if form == AccountForm::Standard => {
                    Some("OAuth 2.1 has no password grant".to_string())
                }
                g if public && g != "authorization_code" && g != "refresh_token" => Some(format!(
                    "{g} needs a client secret: a public client has authorization_code and \
                     refresh_token only"
                )),
                _ => None,
            };
            if let Some(problem) = problem {
                self.problem(written, &key, problem);
            }
        }
        written.get_ref().clone()
    }

    /// The settings of the endpoints under `<public_url>/oauth2/NAME`.
    pub(super) fn oauth2_settings(
        &mut self,
        name: &str,
        s: &FileOAuth2,
        public_url: &str,
        clients: Principals,
        standard: bool,
    ) -> OAuth2 {
        let key = |k: &str| format!("issuers.{name}.oauth2.{k}");
        let authorization_code = match &s.authorization_code {
            Some(v) => *v.get_ref(),
            None => standard,
        };
        let mut resources = Vec::new();
        for r in &s.resources {
            match url::Url::parse(r.get_ref()) {
                Ok(u) if u.fragment().is_none() && matches!(u.scheme(), "https" | "http") => {
                    resources.push(r.get_ref().clone())
                }
                _ => self.problem(
                    r,
                    key("resources"),
                    format!(
                        "{:?} is not an absolute http(s) URL without a fragment (RFC 8707 §2)",
                        r.get_ref()
                    ),
                ),
            }
        }
        let registration = self.registration(name, s, authorization_code);
        self.settings_read(name, s, authorization_code, &registration);
        let metadata_documents = self.metadata_documents(name, s, authorization_code);
        let self_described = registration != Registration::Off || metadata_documents.is_some();
        let consent_ttl = self.consent_ttl(name, s, self_described);
        let scope_descriptions = self.scope_descriptions(name, s, authorization_code);
        OAuth2 {
            issuer_id: format!("{public_url}/oauth2/{name}"),
            public_url: public_url.to_string(),
            password_grant: s.password_grant,
            dpop_nonce: s.dpop_nonce,
            require_pushed_requests: s.require_pushed_authorization_requests,
            // Once the listeners are known (`client_certificates_read`).
            mtls_issuer_id: None,
            clients,
            authorization_code,
            resources,
            resource_scopes: Vec::new(),
            registration,
            registered_client_ttl: self.duration(
                &s.registered_client_ttl,
                &key("registered_client_ttl"),
                secs(30 * 86_400),
            ),
            session_ttl: self.duration(&s.session_ttl, &key("session_ttl"), secs(8 * 3600)),
            logout_revokes_tokens: s.logout_revokes_tokens,
            sign_in: SignInPage::default(),
            post_logout_redirect_uris: Vec::new(),
            metadata_documents,
            consent_ttl,
            scope_descriptions,
        }
    }

    /// Settings only the authorization endpoint or registration read.
    fn settings_read(&mut self, name: &str, s: &FileOAuth2, code_flow: bool, r: &Registration) {
        let key = |k: &str| format!("issuers.{name}.oauth2.{k}");
        if let (Some(ttl), Registration::Off) = (&s.registered_client_ttl, r) {
            self.problem(
                ttl,
                key("registered_client_ttl"),
                "read only with registration on",
            );
        }
        if let (Some(ttl), false) = (&s.session_ttl, code_flow) {
            self.problem(
                ttl,
                key("session_ttl"),
                "read only with authorization_code on",
            );
        }
        if s.logout_revokes_tokens && !code_flow {
            self.problem_no_span(
                key("logout_revokes_tokens"),
                "read only with authorization_code on",
            );
        }
        if s.require_pushed_authorization_requests && !code_flow {
            self.problem_no_span(
                key("require_pushed_authorization_requests"),
                "read only with authorization_code on",
            );
        }
        if let Some(rate) = s.registration_rate.as_ref().filter(|r| *r.get_ref() == 0) {
            self.problem(
                rate,
                key("registration_rate"),
                "at least 1 a minute; turn registration off instead",
            );
        }
        let password_used = s.clients.iter().any(|c| {
            c.grant_types
                .as_ref()
                .is_none_or(|g| g.get_ref().iter().any(|g| g == "password"))
        });
        if s.password_grant && !password_used {
            self.problem_no_span(
                key("password_grant"),
                "no client may use the password grant (grant_types)",
            );
        }
    }

    fn registration(&mut self, name: &str, s: &FileOAuth2, code_flow: bool) -> Registration {
        let key = |k: &str| format!("issuers.{name}.oauth2.{k}");
        let mode = s.registration.as_ref().map(|m| (m, m.get_ref().as_str()));
        let registration = match mode {
            None | Some((_, "off")) => Registration::Off,
            Some((_, "open")) => Registration::Open {
                per_minute: s
                    .registration_rate
                    .as_ref()
                    .map_or(10, |r| *r.get_ref())
                    .max(1),
            },
            Some((m, "token")) => match &s.registration_token_env {
                Some(env) => Registration::Token {
                    env: env.get_ref().clone(),
                },
                None => {
                    self.problem(
                        m,
                        key("registration"),
                        "\"token\" needs registration_token_env: the variable holding the \
                         initial access token",
                    );
                    Registration::Off
                }
            },
            Some((m, other)) => {
                self.problem(
                    m,
                    key("registration"),
                    format!("{other:?}: off, open or token"),
                );
                Registration::Off
            }
        };
        if let (Some(env), false) = (
            &s.registration_token_env,
            matches!(registration, Registration::Token { .. }),
        ) {
            self.problem(
                env,
                key("registration_token_env"),
                "read only with registration = \"token\"",
            );
        }
        if let (Some(rate), false) = (
            &s.registration_rate,
            matches!(registration, Registration::Open { .. }),
        ) {
            self.problem(
                rate,
                key("registration_rate"),
                "read only with registration = \"open\"",
            );
        }
        if registration != Registration::Off && !code_flow {
            self.problem_no_span(
                key("registration"),
                "registered clients sign users in: turn authorization_code on, or registration off",
            );
        }
        registration
    }
}
