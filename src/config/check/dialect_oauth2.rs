//! A legacy dialect's `[issuers.NAME.oauth2]`: its principals over
//! standard OAuth 2.0 (a client dialect's are its clients; a user
//! dialect names its clients), on the endpoint's host.

use toml::Spanned;

use super::super::file::*;
use super::super::model::*;
use super::issuer::host_serves;
use super::Checker;

impl Checker<'_> {
    /// `[issuers.NAME.oauth2]`, under `<server.public_url>/oauth2/NAME`:
    /// a client dialect's principals are its clients; a user dialect names
    /// its clients, and may enable the password grant for its users.
    pub(super) fn oauth2(
        &mut self,
        name: &str,
        table: &Spanned<FileOAuth2>,
        (accounts, routes): (&Accounts, &TokenRoutes),
        public_url: Option<&str>,
    ) -> Option<OAuth2> {
        let key = format!("issuers.{name}.oauth2");
        let settings = table.get_ref();
        let form = accounts.form;
        if form.has_clients() && (settings.password_grant || !settings.clients.is_empty()) {
            self.problem(
                table,
                &key,
                format!(
                    "the {} dialect's principals are its clients (client_credentials); \
                     password_grant and clients are for user dialects",
                    form.name()
                ),
            );
        }
        if !form.has_clients() && settings.clients.is_empty() {
            self.problem(
                table,
                format!("{key}.clients"),
                format!(
                    "the {} dialect's principals are users: name the applications that \
                     ask for their tokens",
                    form.name()
                ),
            );
        }
        self.code_flow_has_users_and_callbacks(&key, form, settings);
        let clients = self.oauth_clients(
            name,
            &settings.clients,
            &format!("{key}.clients"),
            accounts,
            settings,
            None,
        );
        let Some(public_url) = public_url else {
            self.problem(
                table,
                key,
                "needs server.public_url: the issuer identifier is built on it",
            );
            return None;
        };
        self.browser_clients_reach_the_token_endpoint(
            &format!("{key}.clients"),
            &settings.clients,
            routes.cors.as_deref(),
            public_url,
        );
        Some(self.oauth2_settings(name, settings, public_url, clients, false))
    }

    /// A dialect's authorization endpoint needs users to sign in and a
    /// client with somewhere to send them back.
    fn code_flow_has_users_and_callbacks(&mut self, key: &str, form: AccountForm, s: &FileOAuth2) {
        let Some(on) = s.authorization_code.as_ref().filter(|v| *v.get_ref()) else {
            return;
        };
        let problem = if form.has_clients() {
            format!(
                "the {} dialect's principals are clients: it has no users to sign in",
                form.name()
            )
        } else if !s.clients.iter().any(|c| c.redirect_uris.is_some()) {
            "no client has redirect_uris: no one could ever be sent back with a code".to_string()
        } else {
            return;
        };
        self.problem(on, format!("{key}.authorization_code"), problem);
    }

    /// A user dialect's client may not share its id with a user of the
    /// issuer (as spelled, or as a case-insensitive table would match it):
    /// whose a token is would read one way to an operator and another way
    /// to portero.
    pub(super) fn not_a_user(
        &mut self,
        issuer: &str,
        client_id: &Spanned<String>,
        accounts: &Accounts,
        client_key: &str,
    ) {
        let id = client_id.get_ref();
        if let Some(user) = accounts.principals.get_by_key(id) {
            self.problem(
                client_id,
                format!("{client_key}.client_id"),
                format!(
                    "{id:?} is also a user of issuer {issuer:?} ({:?}): name the client \
                     otherwise",
                    user.login
                ),
            );
        }
    }

    /// The OAuth 2.0 endpoints are mounted on the dialect's `host`, while
    /// the metadata names them under `server.public_url`: a client that
    /// follows the metadata must reach that host.
    pub(super) fn oauth2_reachable(
        &mut self,
        name: &str,
        host: &Spanned<String>,
        public_url: &str,
    ) {
        let pattern = host.get_ref().to_ascii_lowercase();
        let public_host = url::Url::parse(public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        if host_serves(&pattern, &public_host) {
            return;
        }
        self.problem(
            host,
            format!("issuers.{name}.host"),
            format!(
                "the OAuth 2.0 endpoints are served on host {pattern:?}, but the metadata sends \
                 clients to server.public_url's host {public_host:?}: set server.public_url to \
                 an origin on {pattern:?}, or leave host out (any host)"
            ),
        );
    }
}
