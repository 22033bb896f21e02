//! Browser sessions in the config: an issuer's `login_*` keys, a route's
//! `login` and `login_pass_token`, and `[sessions]`. Each setting must be
//! read: a client no route signs in with, or `[sessions]` without a route
//! that signs in, is refused, as is a sign-in that could never complete.

use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::super::file::{FileConfig, FileIssuer, FileRoute, FileSessions};
use super::super::model::*;
use super::super::units::secs;
use super::{names, Checker};

/// The paths portero answers itself when nothing says otherwise.
const CALLBACK: &str = "/.portero/callback";
const LOGOUT: &str = "/.portero/logout";
const BACKCHANNEL: &str = "/.portero/backchannel-logout";
const START: &str = "/.portero/start";

impl Checker<'_> {
    /// Every issuer's login client, every route's `login`, and the
    /// `[sessions]` table they need; `None` when no route signs in.
    pub(super) fn sessions(
        &mut self,
        file: &FileConfig,
        issuers: &mut [Issuer],
        routes: &mut [Route],
        first_ordinary: usize,
        public_url: Option<&str>,
    ) -> Option<Sessions> {
        for (issuer, (name, i)) in issuers.iter_mut().zip(&file.issuers) {
            issuer.login = self.login_client(name, i, issuer).map(Arc::new);
        }
        self.one_login_client_per_provider(file, issuers);
        let mut used = vec![false; issuers.len()];
        for (index, r) in file.routes.iter().enumerate() {
            let route = &mut routes[first_ordinary + index];
            if let Some(provider) = self.route_login(index, r, route, issuers) {
                used[provider] = true;
            }
        }
        for ((issuer, used), (name, i)) in issuers.iter().zip(&used).zip(&file.issuers) {
            if let (Some(_), false, Some(id)) = (&issuer.login, used, i.login().client_id) {
                let message = "no route signs in with it: name this issuer in a route's login";
                self.problem(id, format!("issuers.{name}.login_client_id"), message);
            }
        }
        let table = file.sessions.as_ref();
        if !used.contains(&true) {
            if let Some(t) = table {
                let message = "no route signs people in (login): nothing reads it";
                self.problem(t, "sessions", message);
            }
            return None;
        }
        let Some(public_url) = public_url else {
            let message = "a route that signs people in needs server.public_url: the callback's URL is built on it";
            self.problem_no_span("server.public_url", message);
            return None;
        };
        let sessions = self.session_settings(table.map(Spanned::get_ref), public_url);
        self.login_routes_on_the_public_host(file, routes, first_ordinary, &sessions);
        self.own_login_clients(file, issuers, &used, &sessions);
        Some(sessions)
    }

    /// An issuer's `login_*` keys: on an external provider found by
    /// discovery, or on one of portero's issuers with the authorization endpoint.
    fn login_client(&mut self, name: &str, i: &FileIssuer, issuer: &Issuer) -> Option<LoginClient> {
        let key = |k: &str| format!("issuers.{name}.{k}");
        let i = i.login();
        let Some(id) = i.client_id else {
            let others = [
                (
                    i.client_secret_env.map(Spanned::span),
                    "login_client_secret_env",
                ),
                (i.scopes.map(Spanned::span), "login_scopes"),
                (i.userinfo.map(Spanned::span), "login_userinfo"),
            ];
            for (span, k) in others {
                if let Some(span) = span {
                    let message = "only an issuer with login_client_id has this";
                    self.problem(&Spanned::new(span, ()), key(k), message);
                }
            }
            return None;
        };
        let discovered = matches!(
            issuer.external.as_ref().map(|e| &e.location),
            Some(KeyLocation::Discovery(_))
        );
        let own = issuer.oauth2.as_ref().is_some_and(|o| o.authorization_code);
        if !discovered && !own {
            let message = "portero signs people in only at a provider found by discovery_url, \
                           or at one of its own issuers with the authorization endpoint";
            self.problem(id, key("login_client_id"), message);
        }
        // A sign-in at one of portero's own issuers gets a refresh token
        // (to keep a passed token fresh) only with `offline_access`, which
        // a login client that may refresh asks for.
        let refreshes = issuer
            .oauth2
            .as_ref()
            .and_then(|o| o.clients.get(id.get_ref()))
            .is_some_and(|c| c.client.may_use("refresh_token"));
        let scopes = match i.scopes {
            // portero's own issuers hold no `profile` or `email`: their
            // access tokens carry the user's claims.
            None if own && !discovered && refreshes => {
                vec!["openid".into(), "offline_access".into()]
            }
            None if own && !discovered => vec!["openid".into()],
            None => vec!["openid".into(), "profile".into(), "email".into()],
            Some(list) => {
                let bad = list
                    .get_ref()
                    .iter()
                    .find(|s| s.is_empty() || s.contains(char::is_whitespace));
                if let Some(s) = bad {
                    self.problem(list, key("login_scopes"), format!("{s:?} is not one scope"));
                }
                if !list.get_ref().iter().any(|s| s == "openid") {
                    let message = "must hold \"openid\": sign-in needs an ID token";
                    self.problem(list, key("login_scopes"), message);
                }
                list.get_ref().clone()
            }
        };
        let secret_env = i.client_secret_env.map(|s| s.get_ref().clone());
        if let Some(env) = i.client_secret_env {
            if env.get_ref().is_empty() {
                self.problem(env, key("login_client_secret_env"), "names no variable");
            }
        }
        if let (true, Some(v)) = (own && !discovered, i.userinfo) {
            let message = "portero's own issuers put the user's claims in their access tokens, which a session reads: there is no userinfo to add";
            self.problem(v, key("login_userinfo"), message);
        }
        Some(LoginClient {
            client_id: id.get_ref().clone(),
            secret_env,
            scopes,
            userinfo: i.userinfo.is_some_and(|v| *v.get_ref()),
        })
    }

    /// A route's `login`: the provider it names, which must have a login
    /// client; the route keeps bearer tokens only of the issuers it lists.
    fn route_login(
        &mut self,
        index: usize,
        r: &FileRoute,
        route: &mut Route,
        issuers: &[Issuer],
    ) -> Option<usize> {
        let key = |k: &str| format!("routes[{index}].{k}");
        let Some(name) = &r.login else {
            if let Some(pass) = &r.login_pass_token {
                self.problem(
                    pass,
                    key("login_pass_token"),
                    "only a route with login has this",
                );
            }
            return None;
        };
        let RouteAction::Proxy {
            policy: Some(policy),
            ..
        } = &mut route.action
        else {
            self.problem(name, key("login"), "a public route signs nobody in");
            return None;
        };
        let Some(provider) = issuers.iter().position(|i| &i.name == name.get_ref()) else {
            let known = issuers.iter().map(|i| i.name.as_str());
            self.problem(
                name,
                key("login"),
                names::not_found("issuer", name.get_ref(), known),
            );
            return None;
        };
        if issuers[provider].login.is_none() || provider >= 64 {
            let message = format!(
                "issuer {:?} has no login_client_id: portero cannot sign in there",
                name.get_ref()
            );
            self.problem(name, key("login"), message);
            return None;
        }
        if r.issuers.is_empty() {
            // Sessions only: no bearer token is read on this route.
            policy.issuer_mask = 0;
            policy.api_key_mask = 0;
            policy.introspect = None;
            self.bearer_keys_unread(index, r);
        }
        policy.login = Some(RouteLogin {
            provider,
            pass_token: r.login_pass_token.as_ref().is_some_and(|v| *v.get_ref()),
        });
        Some(provider)
    }

    /// A route that takes sessions only reads no token: its token keys
    /// would be ignored.
    fn bearer_keys_unread(&mut self, index: usize, r: &FileRoute) {
        let message = "the route takes sessions only (login, no issuers): no token is read; list its issuers to take tokens too";
        let span = |v: Option<std::ops::Range<usize>>| v.map(|s| Spanned::new(s, ()));
        let given = [
            (span(r.token_from.as_ref().map(Spanned::span)), "token_from"),
            (
                span(r.resource_metadata.as_ref().map(Spanned::span)),
                "resource_metadata",
            ),
        ];
        for (at, k) in given {
            if let Some(at) = at {
                self.problem(&at, format!("routes[{index}].{k}"), message);
            }
        }
        for (k, given) in [
            ("token_use", r.token_use.is_some()),
            ("audience", r.audience.is_some()),
        ] {
            if given {
                self.problem_no_span(format!("routes[{index}].{k}"), message);
            }
        }
    }

    /// `[sessions]` with its defaults; its paths are portero's own.
    fn session_settings(&mut self, t: Option<&FileSessions>, public_url: &str) -> Sessions {
        let default = FileSessions::default();
        let t = t.unwrap_or(&default);
        let public_url = public_url.trim_end_matches('/').to_string();
        let mut path = |v: &Option<Spanned<String>>, k: &str, default: &str| match v {
            None => default.to_string(),
            Some(p) => {
                let ok = p.get_ref().starts_with('/')
                    && !p.get_ref().contains(['?', '#', ' '])
                    && crate::path::routing_key(p.get_ref()) == p.get_ref().as_str();
                if !ok {
                    let message =
                        "must be a plain path starting with / (no query, no //, no . segments)";
                    self.problem(p, format!("sessions.{k}"), message);
                }
                p.get_ref().clone()
            }
        };
        let callback_path = path(&t.callback_path, "callback_path", CALLBACK);
        let logout_path = path(&t.logout_path, "logout_path", LOGOUT);
        let backchannel_logout_path = path(
            &t.backchannel_logout_path,
            "backchannel_logout_path",
            BACKCHANNEL,
        );
        let start_path = path(&t.start_path, "start_path", START);
        let mut all = [
            &callback_path,
            &logout_path,
            &backchannel_logout_path,
            &start_path,
        ];
        all.sort();
        if all.windows(2).any(|w| w[0] == w[1]) {
            self.problem_no_span("sessions", "its four paths must differ");
        }
        let idle_timeout = self.duration(&t.idle_timeout, "sessions.idle_timeout", secs(3600));
        let absolute_timeout = self.duration(
            &t.absolute_timeout,
            "sessions.absolute_timeout",
            secs(12 * 3600),
        );
        let refresh_before = self.duration(&t.refresh_before, "sessions.refresh_before", secs(60));
        for (d, k) in [
            (idle_timeout, "idle_timeout"),
            (absolute_timeout, "absolute_timeout"),
        ] {
            if d < Duration::from_secs(1) {
                self.problem_no_span(format!("sessions.{k}"), "must be at least 1s");
            }
        }
        if idle_timeout > absolute_timeout {
            self.problem_no_span(
                "sessions.idle_timeout",
                "is longer than absolute_timeout: it would never be reached",
            );
        }
        let post_logout_redirect_uri = match &t.post_logout_redirect_uri {
            None => format!("{public_url}/"),
            Some(u) => {
                if url::Url::parse(u.get_ref())
                    .map_or(true, |u| !matches!(u.scheme(), "https" | "http"))
                {
                    self.problem(
                        u,
                        "sessions.post_logout_redirect_uri",
                        "must be an absolute http(s) URL",
                    );
                }
                u.get_ref().clone()
            }
        };
        let secure = public_url.starts_with("https://");
        let prefix = if secure { "__Host-" } else { "" };
        Sessions {
            callback_path,
            logout_path,
            backchannel_logout_path,
            start_path,
            idle_timeout,
            absolute_timeout,
            refresh_before,
            post_logout_redirect_uri,
            public_url,
            cookie: format!("{prefix}portero-session"),
            login_cookie: format!("{prefix}portero-login"),
            secure,
        }
    }

    /// A session's cookies are `public_url`'s host's: a route that signs
    /// people in on another host could never see them.
    fn login_routes_on_the_public_host(
        &mut self,
        file: &FileConfig,
        routes: &[Route],
        first: usize,
        s: &Sessions,
    ) {
        let public_host = url::Url::parse(&s.public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        for (index, r) in file.routes.iter().enumerate() {
            let (Some(login), Some(route)) = (&r.login, routes.get(first + index)) else {
                continue;
            };
            if !super::issuer::host_serves(&route.host, &public_host) {
                let message = format!(
                    "the route is served on host {:?}, but sign-in cookies are server.public_url's host {public_host:?}: \
                     serve the route there, or set public_url to an origin on its host",
                    route.host
                );
                self.problem(login, format!("routes[{index}].login"), message);
            }
        }
    }

    /// Two issuers that sign people in at one provider (the same
    /// `discovery_url`) would share its back-channel logouts, which only
    /// one could take.
    fn one_login_client_per_provider(&mut self, file: &FileConfig, issuers: &[Issuer]) {
        let mut seen: Vec<String> = Vec::new();
        for (issuer, (name, i)) in issuers.iter().zip(&file.issuers) {
            let (Some(_), Some(url)) = (&issuer.login, i.discovery_url()) else {
                continue;
            };
            let normal = url::Url::parse(url.get_ref()).map_or_else(
                |_| url.get_ref().clone(),
                |u| {
                    format!(
                        "{}{}",
                        u.origin().ascii_serialization(),
                        u.path().replace("//", "/")
                    )
                },
            );
            if seen.contains(&normal) {
                let message = "another issuer signs people in at this provider already: one login client per provider";
                self.problem(url, format!("issuers.{name}.discovery_url"), message);
            }
            seen.push(normal);
        }
    }

    /// A provider that is one of portero's own issuers (named in `login`,
    /// or found by a `discovery_url` that is its document) signs people
    /// in only with a client it lists, that may use the code flow; that
    /// client takes portero's callback as a redirect URI and its
    /// `post_logout_redirect_uri` after logging out, written or not.
    fn own_login_clients(
        &mut self,
        file: &FileConfig,
        issuers: &mut [Issuer],
        used: &[bool],
        s: &Sessions,
    ) {
        let callback = s.redirect_uri();
        for (index, (name, i)) in file.issuers.iter().enumerate() {
            let (true, Some(login), Some(id)) =
                (used[index], &issuers[index].login, i.login().client_id)
            else {
                continue;
            };
            let login = login.clone();
            let Some(own) = own_provider(issuers, index) else {
                continue;
            };
            let Some(client) = own_client(&issuers[own], &login.client_id) else {
                let message = format!(
                    "{:?} is not one of issuer {:?}'s clients",
                    login.client_id, issuers[own].name
                );
                self.problem(id, format!("issuers.{name}.login_client_id"), message);
                continue;
            };
            let profile = client.client.clone();
            let lists_callback = profile.redirect_uris.contains(&callback);
            let takes_callback = issuers[own]
                .oauth2
                .as_ref()
                .is_some_and(|o| o.clients.get(&login.client_id).is_some());
            if !profile.may_use("authorization_code") || (!takes_callback && !lists_callback) {
                let message = format!(
                    "client {:?} of issuer {:?} must be able to use authorization_code{}",
                    login.client_id,
                    issuers[own].name,
                    if takes_callback {
                        String::new()
                    } else {
                        format!(" and list {callback:?} in its redirect_uris")
                    }
                );
                self.problem(id, format!("issuers.{name}.login_client_id"), message);
            }
            if own == index {
                // Its grants are called in process, by portero, which
                // holds the client's config: no secret is sent or read (a
                // standard issuer's table has no key for one).
                if let Some(env) = i.login().client_secret_env {
                    let message = "portero's own issuer is asked in process and reads no \
                                   secret for its login client (drop login_client_secret_env)";
                    self.problem(
                        env,
                        format!("issuers.{name}.login_client_secret_env"),
                        message,
                    );
                }
            } else if profile.public != login.secret_env.is_none() {
                let message = match profile.public {
                    true => "the client is public: it has no secret (drop login_client_secret_env)",
                    false => {
                        "the client has a secret: name its variable in login_client_secret_env"
                    }
                };
                self.problem(
                    id,
                    format!("issuers.{name}.login_client_secret_env"),
                    message,
                );
            }
            if let Some(problem) = crate::redirect_uri::redirect_uri_problem(&callback) {
                let message = format!(
                    "portero's callback is issuer {:?}'s redirect URI, and {problem}",
                    issuers[own].name
                );
                self.problem_no_span("server.public_url", message);
            }
            let Some(oauth2) = issuers[own].oauth2.as_mut() else {
                continue;
            };
            if !lists_callback {
                oauth2.clients.change(&login.client_id, |c| {
                    c.client.redirect_uris.push(callback.clone())
                });
            }
            oauth2
                .post_logout_redirect_uris
                .push((login.client_id.clone(), s.post_logout_redirect_uri.clone()));
        }
    }
}

/// The issuer of this config that issuer `index` signs people in at: itself
/// when it is portero's own, or the own issuer its `discovery_url` is the
/// document of; `None` for an outside provider.
fn own_provider(issuers: &[Issuer], index: usize) -> Option<usize> {
    let Some(external) = &issuers[index].external else {
        return Some(index);
    };
    let KeyLocation::Discovery(url) = &external.location else {
        return None;
    };
    issuers.iter().position(|i| {
        i.oauth2
            .as_ref()
            .is_some_and(|o| crate::config::publishes_metadata_at(&o.issuer_id, url))
    })
}

/// The client `id` of one of portero's issuers: a client dialect's
/// principal, or an OAuth 2.0 client listed for the issuer.
pub(crate) fn own_client<'i>(issuer: &'i Issuer, id: &str) -> Option<&'i Arc<Principal>> {
    let accounts = issuer.accounts.as_ref()?;
    let oauth2 = issuer.oauth2.as_ref()?;
    match accounts.form.has_clients() {
        true => accounts.principals.get(id),
        false => oauth2.clients.get(id),
    }
}
