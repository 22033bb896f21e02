//! Browser sessions at one of portero's own issuers: routes with `login`
//! send a browser to the issuer's sign-in page, take it back at the
//! callback and keep a server-side session behind a cookie. No browser:
//! a plain HTTP client follows the redirects and posts the sign-in form as
//! a browser without JavaScript would, so every cookie and redirect is
//! seen as sent.

use crate::common;

use std::time::Duration;

use common::standard::{form_of, query_of};
use common::*;
use serde_json::{json, Value};

const ADA_PASSWORD: &str = "ada's long passphrase";
const BOB_PASSWORD: &str = "bob's long passphrase";
/// A confidential client of the issuer, for bearer tokens beside sessions.
const SERVICE: &str = "svc";
const SERVICE_SECRET: &str = "svc-secret-0123456789abcdef0123";

/// The issuer `app` signs people in for the client `portal`, whose
/// redirect URI is this gateway's callback. Routes: `/portal` (sessions
/// only, role `admin`), `/page` (sessions only, any user), `/mixed`
/// (sessions and the issuer's bearer tokens), `/pass` (the issuer's access
/// token goes upstream), and `/` (sessions only), each on the echo upstream.
fn body(origin: &str, sessions: &str) -> String {
    let ada = portero::credentials::hash_fast(ADA_PASSWORD);
    let bob = portero::credentials::hash_fast(BOB_PASSWORD);
    let svc = portero::credentials::hash_fast(SERVICE_SECRET);
    format!(
        r#"
{sessions}

[upstreams.echo]
builtin = "echo"

[issuers.app]
kind = "oauth2"
login_client_id = "portal"

[[issuers.app.users]]
username = "ada"
secret_hash = "{ada}"
roles = ["admin"]

[[issuers.app.users]]
username = "bob"
secret_hash = "{bob}"

[[issuers.app.clients]]
client_id = "portal"
redirect_uris = ["{origin}/.portero/callback"]

[[issuers.app.clients]]
client_id = "{SERVICE}"
secret_hash = "{svc}"
roles = ["admin"]

[[routes]]
name = "portal"
path = "/portal"
upstream = "echo"
login = "app"
roles = ["admin"]

[routes.headers]
x-user-sub = "sub"
x-user-roles = "roles"

[[routes]]
name = "page"
path = "/page"
upstream = "echo"
login = "app"

[routes.headers]
x-user-sub = "sub"

[[routes]]
name = "mixed"
path = "/mixed"
upstream = "echo"
login = "app"
issuers = ["app"]

[routes.headers]
x-user-sub = "sub"

[[routes]]
name = "pass"
path = "/pass"
upstream = "echo"
login = "app"
login_pass_token = true

[[routes]]
name = "home"
path = "/"
upstream = "echo"
login = "app"
"#
    )
}

/// A running gateway whose `public_url` is its own address.
struct Site {
    gw: Gateway,
    origin: String,
}

impl Site {
    async fn start() -> Site {
        Site::with_sessions("").await
    }

    /// With `sessions` (a `[sessions]` table, or nothing) in the config.
    async fn with_sessions(sessions: &str) -> Site {
        Site::with_config(|origin| body(origin, sessions)).await
    }

    /// On the config `config` writes for the gateway's origin.
    async fn with_config(config: impl FnOnce(&str) -> String) -> Site {
        // The client's redirect URI names the gateway's port, known only
        // once it runs: it starts with nothing to sign in to, then reloads.
        let gw = Gateway::start("[upstreams.echo]\nbuiltin = \"echo\"\n").await;
        let origin = format!("http://127.0.0.1:{}", gw.port);
        gw.rewrite_config_with_server(&format!("public_url = \"{origin}\""), &config(&origin));
        let r = reqwest::Client::new()
            .post(gw.admin_url("/admin/reload"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "reload: {}", r.text().await.unwrap());
        Site { gw, origin }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Follows a navigation to `path` through the issuer's sign-in (the
    /// page, or its sign-on session) up to the callback URL it sends the
    /// browser to, not yet fetched.
    async fn to_callback(&self, v: &mut Visitor, path: &str, user: &str) -> String {
        let a = v.navigate(&self.url(path)).await;
        assert_eq!(a.status, 302, "{path}: {}", a.body);
        let authorize = a.location.unwrap();
        assert!(
            authorize.starts_with(&self.url("/oauth2/app/authorize?")),
            "{authorize}"
        );
        self.through_issuer(v, &authorize, user).await
    }

    /// From the issuer's authorization URL `authorize` to the callback URL
    /// it sends the browser back to: its sign-in page posted as `user`, or
    /// its sign-on session.
    async fn through_issuer(&self, v: &mut Visitor, authorize: &str, user: &str) -> String {
        let a = v.send(v.http.get(authorize)).await;
        let callback = match a.status {
            // Signed in at the issuer already: straight back with a code.
            303 => a.location.unwrap(),
            200 => {
                let (action, mut fields) = form_of(&a.body);
                let action = url::Url::parse(authorize)
                    .unwrap()
                    .join(&action)
                    .unwrap()
                    .to_string();
                let password = match user {
                    "ada" => ADA_PASSWORD,
                    _ => BOB_PASSWORD,
                };
                fields.push(("username".into(), user.into()));
                fields.push(("password".into(), password.into()));
                let a = v
                    .send(
                        v.http
                            .post(&action)
                            .header("origin", &self.origin)
                            .form(&fields),
                    )
                    .await;
                assert_eq!(a.status, 303, "sign-in form: {}", a.body);
                a.location.unwrap()
            }
            other => panic!("authorize answered {other}: {}", a.body),
        };
        assert!(
            callback.starts_with(&self.url("/.portero/callback?")),
            "{callback}"
        );
        callback
    }

    /// The whole sign-in from a navigation to `path`: the callback's answer
    /// (a `303` with the session's cookie, checked).
    async fn sign_in(&self, v: &mut Visitor, path: &str, user: &str) -> Answer {
        let callback = self.to_callback(v, path, user).await;
        let a = v.send(v.http.get(&callback)).await;
        assert_eq!(a.status, 303, "callback: {}", a.body);
        assert!(v.session().is_some(), "no session cookie: {:?}", a.cookies);
        a
    }

    /// A signed-in visitor of `user`.
    async fn visitor(&self, user: &str) -> Visitor {
        let mut v = Visitor::default();
        self.sign_in(&mut v, "/page", user).await;
        v
    }

    /// `POST /.portero/logout` with `headers`, with the visitor's cookies.
    async fn log_out(&self, v: &mut Visitor, headers: &[(&str, &str)]) -> Answer {
        let mut req = v.http.post(self.url("/.portero/logout"));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        v.send(req).await
    }

    /// `DELETE /admin/sessions?<query>`: (status, body).
    async fn end_sessions(&self, query: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .delete(self.gw.admin_url(&format!("/admin/sessions?{query}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A client_credentials token of the confidential client.
    async fn service_token(&self) -> String {
        let r = reqwest::Client::new()
            .post(self.url("/oauth2/app/token"))
            .basic_auth(SERVICE, Some(SERVICE_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }
}

/// What the gateway answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    location: Option<String>,
    /// Every `Set-Cookie`, whole.
    cookies: Vec<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `Set-Cookie` of cookie `name`, if one was sent.
    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(String::as_str)
    }

    /// Whether a session was handed out: a `portero-session` with a value.
    fn set_a_session(&self) -> bool {
        self.cookie("portero-session")
            .is_some_and(|c| !c.starts_with("portero-session=;"))
    }
}

/// A browser without JavaScript: it keeps cookies, follows nothing itself.
struct Visitor {
    http: reqwest::Client,
    jar: Vec<(String, String)>,
}

impl Default for Visitor {
    fn default() -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Vec::new(),
        }
    }
}

impl Visitor {
    fn cookie(&self, name: &str) -> Option<String> {
        self.jar
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn session(&self) -> Option<String> {
        self.cookie("portero-session")
    }

    fn set(&mut self, name: &str, value: &str) {
        self.jar.retain(|(n, _)| n != name);
        self.jar.push((name.into(), value.into()));
    }

    /// Sends `req` with the jar's cookies; keeps what the answer sets.
    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let req = match self.jar.is_empty() {
            true => req,
            false => {
                let pairs: Vec<String> = self.jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
                req.header("cookie", pairs.join("; "))
            }
        };
        let r = req.send().await.unwrap();
        let cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect();
        for c in &cookies {
            let (name, value) = c.split(';').next().unwrap().split_once('=').unwrap();
            self.jar.retain(|(n, _)| n != name);
            if !value.is_empty() && !c.contains("Max-Age=0") {
                self.jar.push((name.to_string(), value.to_string()));
            }
        }
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        Answer {
            status,
            location,
            cookies,
            body: r.text().await.unwrap(),
        }
    }

    /// A browser's navigation to `url`.
    async fn navigate(&mut self, url: &str) -> Answer {
        let req = self
            .http
            .get(url)
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .header("sec-fetch-mode", "navigate");
        self.send(req).await
    }

    /// A script's (or an API client's) request for JSON.
    async fn api(&mut self, url: &str) -> Answer {
        let req = self.http.get(url).header("accept", "application/json");
        self.send(req).await
    }

    /// What the echo upstream received for a request of `url` with
    /// `headers`; panics unless it got there.
    async fn echoed(&mut self, url: &str, headers: &[(&str, &str)]) -> Value {
        let mut req = self.http.get(url).header("accept", "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let a = self.send(req).await;
        assert_eq!(a.status, 200, "{url}: {}", a.body);
        a.json()
    }
}

/// A GET of `url` carrying exactly `cookie` (or no cookie at all).
async fn get_with_cookie(url: &str, cookie: Option<&str>, navigate: bool) -> Answer {
    let mut v = Visitor::default();
    if let Some(cookie) = cookie {
        for pair in cookie.split("; ") {
            let (n, val) = pair.split_once('=').unwrap();
            v.jar.push((n.into(), val.into()));
        }
    }
    match navigate {
        true => v.navigate(url).await,
        false => v.api(url).await,
    }
}

/// The attributes of a `Set-Cookie` after its name and value, as written.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_string())
        .collect()
}

/// Asserts the session `id` opens nothing: an API call gets `401`, a
/// navigation is refused or sent to sign in, and no session is handed out.
async fn assert_no_access(site: &Site, id: &str, why: &str) {
    let cookie = format!("portero-session={id}");
    let api = get_with_cookie(&site.url("/page/x"), Some(&cookie), false).await;
    assert_eq!(api.status, 401, "{why}: API {}", api.body);
    assert!(!api.set_a_session(), "{why}");
    let nav = get_with_cookie(&site.url("/page/x"), Some(&cookie), true).await;
    assert!(
        matches!(nav.status, 302 | 401),
        "{why}: navigation {} {}",
        nav.status,
        nav.body
    );
    assert!(!nav.set_a_session(), "{why}");
}

/// Asserts the session `id` opens nothing, and a navigation with it is
/// sent to sign in at the issuer (as one without a cookie is).
async fn assert_sent_to_sign_in(site: &Site, id: &str, why: &str) {
    assert_no_access(site, id, why).await;
    let cookie = format!("portero-session={id}");
    let nav = get_with_cookie(&site.url("/page/x"), Some(&cookie), true).await;
    assert_eq!(nav.status, 302, "{why}: navigation {}", nav.body);
    let location = nav.location.clone().unwrap_or_default();
    assert!(
        location.starts_with(&site.url("/oauth2/app/authorize?")),
        "{why}: {location}"
    );
    assert!(nav.cookie("portero-login").is_some(), "{why}");
}

/// Asserts the session `id` opens `/page`.
async fn assert_access(site: &Site, id: &str, why: &str) {
    let cookie = format!("portero-session={id}");
    let api = get_with_cookie(&site.url("/page/x"), Some(&cookie), false).await;
    assert_eq!(api.status, 200, "{why}: {}", api.body);
}

#[tokio::test]
async fn a_navigation_without_a_session_goes_to_the_issuer_and_an_api_call_gets_401() {
    let site = Site::start().await;
    let mut v = Visitor::default();
    let a = v.navigate(&site.url("/portal/x?y=1")).await;
    assert_eq!(a.status, 302, "{}", a.body);
    let location = a.location.clone().unwrap();
    assert!(
        location.starts_with(&site.url("/oauth2/app/authorize?")),
        "{location}"
    );
    let q = query_of(&location);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "portal");
    assert_eq!(q["redirect_uri"], site.url("/.portero/callback"));
    assert!(q["scope"].split(' ').any(|s| s == "openid"), "{q:?}");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43, "{q:?}");
    assert!(q["state"].len() >= 22 && q["nonce"].len() >= 22, "{q:?}");
    assert_ne!(q["state"], q["nonce"]);
    // The pending sign-in's cookie: out of scripts' reach, sent on the
    // provider's top-level redirect back, for the whole site; no session yet.
    let pending = a.cookie("portero-login").expect("a portero-login cookie");
    let attrs = attributes(pending);
    for want in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want}: {pending}");
    }
    assert!(!a.set_a_session(), "{:?}", a.cookies);
    // Every sign-in has its own state and nonce.
    let again = Visitor::default().navigate(&site.url("/portal/x")).await;
    let q2 = query_of(&again.location.unwrap());
    assert_ne!(q["state"], q2["state"]);
    assert_ne!(q["nonce"], q2["nonce"]);
    assert_ne!(q["code_challenge"], q2["code_challenge"]);

    // Anything but a navigation: 401 JSON, never a redirect.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = site.url("/portal/x");
    for (what, req) in [
        (
            "Accept: application/json",
            http.get(&url).header("accept", "application/json"),
        ),
        ("no Accept", http.get(&url)),
        (
            "a script's fetch of HTML",
            http.get(&url)
                .header("accept", "text/html")
                .header("sec-fetch-mode", "cors"),
        ),
        (
            "a POST",
            http.post(&url)
                .header("accept", "text/html")
                .header("sec-fetch-mode", "navigate")
                .body("x=1"),
        ),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        assert!(r.headers().get("location").is_none(), "{what}");
        assert!(r.headers().get("set-cookie").is_none(), "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": "unauthorized", "error_description": "no token"}),
            "{what}"
        );
    }
}

#[tokio::test]
async fn a_sign_in_lands_on_the_first_page_and_the_upstream_sees_the_identity_only() {
    let site = Site::start().await;
    let mut v = Visitor::default();
    let first = "/portal/x?y=1&z=%20a";
    let done = site.sign_in(&mut v, first, "ada").await;
    // Back where it began, path and query, on this origin.
    assert_eq!(done.location.as_deref(), Some(first));
    let session = done.cookie("portero-session").unwrap();
    let id = v.session().unwrap();
    assert_eq!(id.len(), 43, "{session}");
    let attrs = attributes(session);
    for want in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want}: {session}");
    }
    assert!(attrs.iter().any(|a| a.starts_with("Max-Age=")), "{session}");
    // The pending sign-in is over: its cookie is cleared.
    let cleared = done.cookie("portero-login").expect("portero-login cleared");
    assert!(
        attributes(cleared).iter().any(|a| a == "Max-Age=0"),
        "{cleared}"
    );
    assert!(v.cookie("portero-login").is_none());
    // The issuer's own sign-on cookie is in the jar, to be kept from the upstream.
    assert!(
        v.jar.iter().any(|(n, _)| n.starts_with("portero-sso")),
        "{:?}",
        v.jar
    );

    // The page, with the browser's other cookies and a forged identity.
    v.set("theme", "dark");
    v.set("portero-login", "left-over");
    let seen = v
        .echoed(
            &site.url(first),
            &[("x-user-sub", "mallory"), ("x-user-roles", "root")],
        )
        .await;
    assert_eq!(seen["path"], "/portal/x");
    assert_eq!(seen["query"], "y=1&z=%20a");
    let headers = &seen["headers"];
    assert_eq!(headers["x-user-sub"], "ada", "{seen}");
    assert_eq!(headers["x-user-roles"], "admin", "{seen}");
    let cookie = headers["cookie"].as_str().unwrap_or_default();
    assert!(cookie.contains("theme=dark"), "{seen}");
    assert!(!cookie.contains("portero"), "{seen}");
    assert!(!cookie.contains(&id), "{seen}");

    // A user without the route's role is refused, with a session.
    let mut bob = site.visitor("bob").await;
    let a = bob.api(&site.url("/portal/x")).await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = bob.navigate(&site.url("/portal/x")).await;
    assert_eq!(a.status, 403, "signed in: not sent to sign in again");
    let seen = bob.echoed(&site.url("/page/x"), &[]).await;
    assert_eq!(seen["headers"]["x-user-sub"], "bob");
}

#[tokio::test]
async fn a_callback_that_is_not_this_browsers_sign_in_is_refused() {
    let site = Site::start().await;
    let mut v = Visitor::default();
    let callback = site.to_callback(&mut v, "/page/x", "ada").await;
    let pending = v.cookie("portero-login").unwrap();
    let with = |value: &str| format!("portero-login={value}");
    let q = query_of(&callback);
    let changed = |s: &str| -> String {
        // One character of `s`, in its middle, made another.
        let mut chars: Vec<char> = s.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect()
    };
    let (body, mac) = pending.split_once('.').unwrap();
    let cb = |pairs: &[(&str, &str)]| {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        site.url(&format!("/.portero/callback?{query}"))
    };
    let (code, state, iss) = (q["code"].as_str(), q["state"].as_str(), q["iss"].as_str());
    let other_state = cb(&[("code", code), ("state", &changed(state)), ("iss", iss)]);
    let no_state = cb(&[("code", code), ("iss", iss)]);
    let other_iss = cb(&[
        ("code", code),
        ("state", state),
        ("iss", "http://evil.example/oauth2/app"),
    ]);
    let no_iss = cb(&[("code", code), ("state", state)]);
    let denied = cb(&[("error", "access_denied"), ("state", state), ("iss", iss)]);
    let state_twice = cb(&[
        ("code", code),
        ("state", state),
        ("state", state),
        ("iss", iss),
    ]);
    // Another browser's sign-in under way: its cookie is not this callback's.
    let mut other = Visitor::default();
    other.navigate(&site.url("/page/y")).await;
    let others = other.cookie("portero-login").unwrap();
    let twice = format!("{}; {}", with(&pending), with(&pending));
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("no pending cookie", callback.clone(), None),
        (
            "a state not the cookie's",
            other_state,
            Some(with(&pending)),
        ),
        ("no state", no_state, Some(with(&pending))),
        ("the state twice", state_twice, Some(with(&pending))),
        (
            "the cookie's body changed",
            callback.clone(),
            Some(with(&format!("{}.{mac}", changed(body)))),
        ),
        (
            "the cookie's MAC changed",
            callback.clone(),
            Some(with(&format!("{body}.{}", changed(mac)))),
        ),
        ("the cookie twice", callback.clone(), Some(twice)),
        ("iss of another issuer", other_iss, Some(with(&pending))),
        ("iss left out", no_iss, Some(with(&pending))),
        ("error=access_denied", denied, Some(with(&pending))),
        ("another browser's", callback.clone(), Some(with(&others))),
    ];
    // Those with this browser's cookie first: were one let through, the
    // code (unspent) would make it a session.
    for (what, url, cookie) in cases {
        let a = get_with_cookie(&url, cookie.as_deref(), true).await;
        assert_eq!(a.status, 400, "{what}: {url} {}", a.body);
        assert_eq!(a.json()["error"], "sign_in_failed", "{what}");
        assert!(a.location.is_none(), "{what}");
        assert!(!a.set_a_session(), "{what}: {:?}", a.cookies);
    }
    // None of those spent the code: the browser's own callback goes through.
    let a = v.send(v.http.get(&callback)).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some("/page/x"));
    assert!(a.set_a_session());
}

/// The provider's `error` and `error_description` at the callback are
/// said back as text: in JSON no browser reads as a page (`nosniff`),
/// with everything that could be markup HTML-escaped.
#[tokio::test]
async fn a_providers_error_at_the_callback_is_said_as_text() {
    let site = Site::start().await;
    let mut v = Visitor::default();
    let callback = site.to_callback(&mut v, "/page/x", "ada").await;
    let pending = v.cookie("portero-login").unwrap();
    let q = query_of(&callback);
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("error", "<script>alert(1)</script>"),
            (
                "error_description",
                "<img src=x onerror=alert(2)> & \"more\"",
            ),
            ("state", q["state"].as_str()),
            ("iss", q["iss"].as_str()),
        ])
        .finish();
    let r = reqwest::Client::new()
        .get(site.url(&format!("/.portero/callback?{query}")))
        .header("cookie", format!("portero-login={pending}"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let body = r.text().await.unwrap();
    assert!(!body.contains('<') && !body.contains('>'), "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["error"], "sign_in_failed");
    let said = answer["error_description"].as_str().unwrap();
    assert!(
        said.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{said}"
    );
    assert!(
        said.contains("&lt;img src=x onerror=alert(2)&gt; &amp; &quot;more&quot;"),
        "{said}"
    );
}

#[tokio::test]
async fn a_callback_replayed_after_success_is_refused() {
    let site = Site::start().await;
    let mut v = Visitor::default();
    let callback = site.to_callback(&mut v, "/page/x", "ada").await;
    let pending = format!("portero-login={}", v.cookie("portero-login").unwrap());
    let a = v.send(v.http.get(&callback)).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let id = v.session().unwrap();
    // The same URL with the same pending cookie: the code is spent.
    let replay = get_with_cookie(&callback, Some(&pending), true).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert_eq!(replay.json()["error"], "sign_in_failed");
    assert!(!replay.set_a_session(), "{:?}", replay.cookies);
    // And in the browser that signed in (its pending cookie gone).
    let replay = v.send(v.http.get(&callback)).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(!replay.set_a_session());
    assert_eq!(v.session(), Some(id));
}

#[tokio::test]
async fn only_a_path_on_this_origin_is_returned_to() {
    let site = Site::start().await;
    let callback_location = |a: &Answer| a.location.clone().unwrap();
    let on_this_origin = |location: &str, what: &str| {
        assert!(location.starts_with('/'), "{what}: {location}");
        assert!(
            !location.starts_with("//") && !location.contains('\\'),
            "{what}: {location}"
        );
    };
    // Paths a browser would read as another origin: the gateway may refuse
    // them, or sign in and come back to a path of its own, never there.
    for path in [
        "//evil.example/x",
        "//evil.example",
        "/%2F%2Fevil.example/x",
    ] {
        let mut v = Visitor::default();
        let a = v.navigate(&site.url(path)).await;
        if a.status != 302 {
            assert!((400..500).contains(&a.status), "{path}: {a:?}");
            continue;
        }
        let location = a.location.unwrap();
        assert!(
            location.starts_with(&site.url("/oauth2/app/authorize?")),
            "{path}: {location}"
        );
        let callback = site.through_issuer(&mut v, &location, "ada").await;
        let done = v.send(v.http.get(&callback)).await;
        assert_eq!(done.status, 303, "{path}: {}", done.body);
        on_this_origin(&callback_location(&done), path);
    }
    // A backslash, which a URL library would turn into a slash: sent raw.
    for target in [
        "/\\evil.example",
        "/\\/evil.example/x",
        "http://evil.example/x",
    ] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/html\r\nSec-Fetch-Mode: navigate\r\nConnection: close\r\n\r\n",
            site.gw.port
        );
        let (status, text) = raw_http(site.gw.port, request.as_bytes()).await;
        if status != 302 {
            assert!((400..500).contains(&status), "{target}: {text}");
            continue;
        }
        let head = text.split("\r\n\r\n").next().unwrap();
        let header = |name: &str| -> Option<String> {
            head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let location = header("location").unwrap();
        assert!(
            location.starts_with(&site.url("/oauth2/app/authorize?")),
            "{target}: {location}"
        );
        let pending = header("set-cookie").unwrap();
        let (name, value) = pending.split(';').next().unwrap().split_once('=').unwrap();
        assert_eq!(name, "portero-login");
        let mut v = Visitor::default();
        v.set(name, value);
        let callback = site.through_issuer(&mut v, &location, "ada").await;
        let done = v.send(v.http.get(&callback)).await;
        assert_eq!(done.status, 303, "{target}: {}", done.body);
        on_this_origin(&callback_location(&done), target);
    }
    // The start of a sign-in for a forward-auth proxy: rd is a path here.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for rd in [
        "//evil.example/x",
        "/\\evil.example",
        "/\\/evil.example",
        "https://evil.example/",
        "evil.example",
    ] {
        let r = http
            .get(site.url(&format!(
                "/.portero/start?rd={}",
                form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "rd={rd}");
        assert!(r.headers().get("location").is_none(), "rd={rd}");
    }
    let r = http
        .get(site.url("/.portero/start?rd=%2Fpage%2Fok%3Fa%3D1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&site.url("/oauth2/app/authorize?")));
}

#[tokio::test]
async fn a_forged_or_repeated_session_cookie_opens_nothing() {
    let site = Site::start().await;
    let v = site.visitor("ada").await;
    let id = v.session().unwrap();
    assert_access(&site, &id, "the real id").await;
    // 43 characters as a real id has, never handed out.
    let random: String = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    };
    assert_eq!(random.len(), 43);
    assert_sent_to_sign_in(&site, &random, "a random id").await;
    // The real id with one character changed, at either end and inside.
    for i in [0, 21, 42] {
        let mut forged: Vec<char> = id.chars().collect();
        forged[i] = if forged[i] == 'a' { 'b' } else { 'a' };
        let forged: String = forged.into_iter().collect();
        assert_sent_to_sign_in(&site, &forged, &format!("changed at {i}")).await;
    }
    // The real id shortened or lengthened.
    assert_sent_to_sign_in(&site, &id[..42], "shortened").await;
    assert_sent_to_sign_in(&site, &format!("{id}A"), "lengthened").await;
    // The id twice, in one Cookie header or two, beside another, or in
    // another spelling an upstream reads as the same: refused as any
    // credential sent twice is (400 invalid_request), never admitted.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let twice_in_one = format!("portero-session={id}; portero-session={id}");
    let url = site.url("/page/x");
    for (what, req) in [
        (
            "twice in one header",
            http.get(&url).header("cookie", &twice_in_one),
        ),
        (
            "in two headers",
            http.get(&url)
                .header("cookie", format!("portero-session={id}"))
                .header("cookie", format!("portero-session={id}")),
        ),
        (
            "beside another",
            http.get(&url).header(
                "cookie",
                format!("portero-session={random}; portero-session={id}"),
            ),
        ),
        (
            "beside another spelling",
            http.get(&url).header(
                "cookie",
                format!("portero-session={id}; PORTERO-SESSION={random}"),
            ),
        ),
        (
            "twice, as a navigation",
            http.get(&url)
                .header("cookie", &twice_in_one)
                .header("accept", "text/html")
                .header("sec-fetch-mode", "navigate"),
        ),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 400, "{what}");
        assert!(r.headers().get("location").is_none(), "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{what}");
    }
    assert_access(&site, &id, "the real id, still").await;
}

#[tokio::test]
async fn signing_in_again_hands_out_a_new_id_and_ends_the_old_one() {
    let site = Site::start().await;
    let mut v = site.visitor("ada").await;
    let old = v.session().unwrap();
    // A sign-in begun with the session still held (as a forward-auth
    // proxy's start does): the issuer's sign-on session answers at once.
    let a = v
        .send(v.http.get(site.url("/.portero/start?rd=%2Fpage%2Fagain")))
        .await;
    assert_eq!(a.status, 302, "{}", a.body);
    let a = v.send(v.http.get(a.location.unwrap())).await;
    assert_eq!(a.status, 303, "signed in at the issuer: {}", a.body);
    let done = v.send(v.http.get(a.location.unwrap())).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/page/again"));
    let new = v.session().unwrap();
    assert_ne!(new, old);
    assert_no_access(&site, &old, "the id before the sign-in").await;
    assert_access(&site, &new, "the new id").await;
    // Likewise through a navigation's own redirect.
    let mut w = site.visitor("bob").await;
    let before = w.session().unwrap();
    w.jar.retain(|(n, _)| n != "portero-session");
    let callback = site.to_callback(&mut w, "/page/z", "bob").await;
    w.set("portero-session", &before);
    let done = w.send(w.http.get(&callback)).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let after = w.session().unwrap();
    assert_ne!(after, before);
    assert_no_access(&site, &before, "bob's id before the sign-in").await;
    assert_access(&site, &after, "bob's new id").await;
}

#[tokio::test]
async fn a_logout_is_taken_from_this_sites_pages_only_and_ends_the_session() {
    let site = Site::start().await;
    let mut v = site.visitor("ada").await;
    let id = v.session().unwrap();
    for (what, headers) in [
        ("no Origin, no Sec-Fetch-Site", vec![]),
        ("a foreign Origin", vec![("origin", "http://evil.example")]),
        ("Origin null", vec![("origin", "null")]),
        (
            "this host on another port",
            vec![("origin", "http://127.0.0.1:1")],
        ),
        (
            "no Origin, a cross-site fetch",
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            "a foreign Origin that says same-origin",
            vec![
                ("origin", "http://evil.example"),
                ("sec-fetch-site", "same-origin"),
            ],
        ),
    ] {
        let a = site.log_out(&mut v, &headers).await;
        assert_eq!(a.status, 403, "{what}: {}", a.body);
        assert!(a.cookie("portero-session").is_none(), "{what}");
        assert_access(&site, &id, what).await;
    }
    let r = reqwest::Client::new()
        .get(site.url("/.portero/logout"))
        .header("cookie", format!("portero-session={id}"))
        .header("origin", &site.origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    assert_access(&site, &id, "after a GET").await;

    let a = site.log_out(&mut v, &[("origin", &site.origin)]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let location = a.location.clone().unwrap();
    assert!(
        location.starts_with(&site.url("/oauth2/app/end_session?")),
        "{location}"
    );
    let q = query_of(&location);
    let hint = claims_of(&q["id_token_hint"]);
    assert_eq!(hint["sub"], "ada");
    assert_eq!(hint["aud"], "portal");
    assert_eq!(q["post_logout_redirect_uri"], site.url("/"));
    assert_eq!(q["client_id"], "portal");
    let cleared = a.cookie("portero-session").expect("the cookie cleared");
    assert!(cleared.starts_with("portero-session=;"), "{cleared}");
    assert!(
        attributes(cleared).iter().any(|a| a == "Max-Age=0"),
        "{cleared}"
    );
    assert!(v.session().is_none());
    // The old cookie, replayed, opens nothing.
    assert_no_access(&site, &id, "after logout").await;

    // A same-origin post without Origin (Sec-Fetch-Site) is this site's too.
    let mut w = site.visitor("bob").await;
    let bobs = w.session().unwrap();
    let a = site
        .log_out(&mut w, &[("sec-fetch-site", "same-origin")])
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_no_access(&site, &bobs, "bob after logout").await;
}

#[tokio::test]
async fn a_logout_ends_every_session_any_copy_of_the_cookie_names() {
    let site = Site::start().await;
    let random = || {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    };
    // (what, the Cookie header around the live ids `{A}` and `{B}`)
    for (what, cookie) in [
        (
            "beside another spelling",
            "portero-session={A}; PORTERO-SESSION=x",
        ),
        ("the same twice", "portero-session={A}; portero-session={A}"),
        ("two live ones", "portero-session={A}; portero-session={B}"),
        (
            "one forged beside it",
            "portero-session={R}; portero-session={A}",
        ),
        ("only in another spelling", "Portero_Session={A}"),
        (
            "read by a lenient parser inside another value",
            "portero-session={R}; a=b portero-session={B}",
        ),
    ] {
        let ada = site.visitor("ada").await.session().unwrap();
        let bob = site.visitor("bob").await.session().unwrap();
        let cookie = cookie
            .replace("{A}", &ada)
            .replace("{B}", &bob)
            .replace("{R}", &random());
        let mut v = Visitor::default();
        let req = v
            .http
            .post(site.url("/.portero/logout"))
            .header("cookie", &cookie)
            .header("origin", &site.origin);
        let a = v.send(req).await;
        assert_eq!(a.status, 303, "{what}: {}", a.body);
        // Sent on to the issuer's own logout, as for one session.
        let location = a.location.clone().unwrap();
        assert!(
            location.starts_with(&site.url("/oauth2/app/end_session?")),
            "{what}: {location}"
        );
        let hint = claims_of(&query_of(&location)["id_token_hint"]);
        assert!(
            hint["sub"] == "ada" || hint["sub"] == "bob",
            "{what}: {hint}"
        );
        for (who, id) in [("ada", &ada), ("bob", &bob)] {
            if cookie.contains(id.as_str()) {
                assert_no_access(&site, id, &format!("{what}: {who}")).await;
            } else {
                assert_access(&site, id, &format!("{what}: {who}, not named")).await;
            }
        }
    }
    // More ids than a logout looks up: refused whole, nothing ended.
    let ada = site.visitor("ada").await.session().unwrap();
    let many: Vec<String> = (0..8)
        .map(|_| format!("portero-session={}", random()))
        .collect();
    let cookie = format!("portero-session={ada}; {}", many.join("; "));
    let mut v = Visitor::default();
    let req = v
        .http
        .post(site.url("/.portero/logout"))
        .header("cookie", &cookie)
        .header("origin", &site.origin);
    let a = v.send(req).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["error"], "invalid_request");
    assert!(a.cookie("portero-session").is_none());
    assert_access(&site, &ada, "more than a logout looks up").await;
}

#[tokio::test]
async fn a_session_ends_once_left_idle_for_its_idle_timeout() {
    let site = Site::with_sessions("[sessions]\nidle_timeout = \"2s\"").await;
    let used = site.visitor("ada").await.session().unwrap();
    let left = site.visitor("bob").await.session().unwrap();
    assert_access(&site, &used, "just signed in").await;
    assert_access(&site, &left, "just signed in").await;
    // Used more often than the idle timeout, a session lives past it...
    for step in 0..3 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_access(&site, &used, &format!("used again ({step})")).await;
    }
    // ...one left alone as long does not.
    assert_no_access(&site, &left, "unused for 2.4 s").await;
    // Left unused past it, the first ends too.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_no_access(&site, &used, "idle for 2.3 s").await;
}

#[tokio::test]
async fn a_session_in_use_ends_at_its_absolute_timeout() {
    let site =
        Site::with_sessions("[sessions]\nidle_timeout = \"3s\"\nabsolute_timeout = \"3s\"\n").await;
    let mut v = Visitor::default();
    let done = site.sign_in(&mut v, "/page", "ada").await;
    let cookie = done.cookie("portero-session").unwrap();
    assert!(
        attributes(cookie).iter().any(|a| a == "Max-Age=3"),
        "{cookie}"
    );
    let id = v.session().unwrap();
    let started = std::time::Instant::now();
    // In use all along (never idle), up to its end.
    while started.elapsed() < Duration::from_millis(1800) {
        assert_access(&site, &id, "in use").await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    tokio::time::sleep(Duration::from_millis(3200) - started.elapsed()).await;
    assert_no_access(&site, &id, "past its absolute timeout").await;
}

#[tokio::test]
async fn the_admin_api_ends_a_users_sessions() {
    let site = Site::start().await;
    let ada = site.visitor("ada").await.session().unwrap();
    let bob = site.visitor("bob").await.session().unwrap();
    // The admin token is needed.
    let r = reqwest::Client::new()
        .delete(site.gw.admin_url("/admin/sessions?issuer=app&sub=ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_access(&site, &ada, "without the admin token").await;
    // Queries that name no one.
    for (query, status) in [
        ("", 400),
        ("issuer=app", 400),
        ("sub=ada", 400),
        ("issuer=app&sub=ada&sid=x", 400),
        ("issuer=app&sub=ada&sub=bob", 400),
        ("issuer=nope&sub=ada", 404),
    ] {
        let (got, body) = site.end_sessions(query).await;
        assert_eq!(got, status, "?{query}: {body}");
    }
    assert_access(&site, &ada, "after bad queries").await;
    let (status, body) = site.end_sessions("issuer=app&sub=ada").await;
    assert_eq!((status, body), (200, json!({"ended": 1})));
    assert_no_access(&site, &ada, "ended by the admin API").await;
    assert_access(&site, &bob, "another user's").await;
    let (status, body) = site.end_sessions("issuer=app&sub=ada").await;
    assert_eq!((status, body), (200, json!({"ended": 0})));
}

#[tokio::test]
async fn a_subject_revocation_ends_the_sessions_signed_in_before_it() {
    let site = Site::start().await;
    let ada = site.visitor("ada").await.session().unwrap();
    let bob = site.visitor("bob").await.session().unwrap();
    let r = site.gw.revoke(json!({"sub": "ada", "issuer": "app"})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_no_access(&site, &ada, "ada revoked").await;
    assert_access(&site, &bob, "bob not").await;
    // Signed in after it, ada is in again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = site.visitor("ada").await.session().unwrap();
    assert_access(&site, &again, "signed in after the revocation").await;
}

#[tokio::test]
async fn login_pass_token_sends_the_issuers_access_token_upstream() {
    let site = Site::start().await;
    let mut v = Visitor::default();
    site.sign_in(&mut v, "/pass/x", "ada").await;
    let seen = v
        .echoed(&site.url("/pass/x"), &[("authorization", "Bearer forged")])
        .await;
    let authorization = seen["headers"]["authorization"]
        .as_str()
        .unwrap_or_else(|| panic!("one Authorization: {seen}"));
    let token = authorization.strip_prefix("Bearer ").unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let claims = claims_of(token);
    assert_eq!(claims["sub"], "ada");
    assert_eq!(claims["iss"], site.url("/oauth2/app"));
    assert_eq!(claims["client_id"], "portal");
    // It is the issuer's own, good for its bearer routes.
    let r = reqwest::Client::new()
        .get(site.url("/mixed/x"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-user-sub"], "ada");
    // Without a client Authorization, the same.
    let seen = v.echoed(&site.url("/pass/y"), &[]).await;
    assert_eq!(seen["headers"]["authorization"], authorization);
}

/// The confidential login client's secret, which only its own issuer holds
/// (as a hash): portero calls that issuer in process and sends none.
const PORTAL_SECRET: &str = "portal-secret-0123456789abcdef012";

/// The login client may be a confidential one. portero asks its own
/// issuer for the code grant at the callback and for the refresh grant
/// before the access token it passes upstream expires (5 s tokens,
/// refreshed with 4 s left), both in process, so a lockout of the client
/// at the public token endpoint does not stop them; each grant is
/// counted as the token endpoint's.
#[tokio::test]
async fn a_confidential_login_client_signs_in_and_refreshes_the_passed_token() {
    let hash = portero::credentials::hash_fast(PORTAL_SECRET);
    let site = Site::with_config(|origin| {
        body(origin, "[sessions]\nrefresh_before = \"4s\"\n")
            .replace(
                "login_client_id = \"portal\"\n",
                "login_client_id = \"portal\"\ntoken_ttl = \"5s\"\n",
            )
            .replace(
                "[[issuers.app.clients]]\nclient_id = \"portal\"\n",
                &format!(
                    "[[issuers.app.clients]]\nclient_id = \"portal\"\nsecret_hash = \"{hash}\"\n"
                ),
            )
    })
    .await;
    // Someone guesses the client's secret at the public token endpoint
    // until the client is locked there, even with the right secret.
    let http = reqwest::Client::new();
    let attempt = |secret: &'static str| {
        http.post(site.url("/oauth2/app/token"))
            .basic_auth("portal", Some(secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
            .send()
    };
    let mut guesses = 0;
    while attempt("a-wrong-guess").await.unwrap().status() != 429 {
        guesses += 1;
        assert!(
            guesses < 40,
            "the client was never locked at the token endpoint"
        );
    }
    assert_eq!(attempt(PORTAL_SECRET).await.unwrap().status(), 429);
    let refused = |status: &'static str| {
        let labels = [("issuer", "app"), ("endpoint", "token"), ("status", status)];
        let gw = &site.gw;
        async move { gw.metric("portero_oauth2_requests_total", &labels).await }
    };
    let refused_before = (refused("401").await, refused("429").await);
    // portero's own sign-ins, in process, are not locked out with it.
    let mut v = Visitor::default();
    site.sign_in(&mut v, "/pass/x", "ada").await;
    let passed = |seen: Value| {
        let authorization = seen["headers"]["authorization"]
            .as_str()
            .unwrap_or_default();
        authorization
            .strip_prefix("Bearer ")
            .unwrap_or_default()
            .to_string()
    };
    let first = passed(v.echoed(&site.url("/pass/x"), &[]).await);
    let claims = claims_of(&first);
    assert_eq!(claims["sub"], "ada");
    assert_eq!(claims["client_id"], "portal");
    // Due a second after it was granted; a request then has it refreshed
    // off the request, and one soon after passes the new token.
    let mut refreshed = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let token = passed(v.echoed(&site.url("/pass/x"), &[]).await);
        if token != first {
            refreshed = Some(token);
            break;
        }
    }
    let refreshed = refreshed.expect("the passed token was never refreshed");
    let claims = claims_of(&refreshed);
    assert_eq!(claims["sub"], "ada");
    assert_eq!(claims["client_id"], "portal");
    // The code grant and at least one refresh; none refused in process.
    assert!(refused("200").await >= 2.0);
    assert_eq!((refused("401").await, refused("429").await), refused_before);
    for status in ["400", "503"] {
        assert_eq!(refused(status).await, 0.0, "{status}");
    }
}

#[tokio::test]
async fn a_session_passes_no_client_sent_authorization_upstream() {
    let site = Site::start().await;
    let mut v = site.visitor("ada").await;
    let service = site.service_token().await;
    for path in ["/portal/x", "/page/x", "/mixed/x", "/x"] {
        for sent in [
            "Bearer forged".to_string(),
            format!("Bearer {service}"),
            "Basic YWRhOnNlY3JldA==".to_string(),
        ] {
            let seen = v.echoed(&site.url(path), &[("authorization", &sent)]).await;
            assert!(
                seen["headers"].get("authorization").is_none(),
                "{path} {sent}: {seen}"
            );
            if path != "/x" {
                assert_eq!(seen["headers"]["x-user-sub"], "ada", "{path}: {seen}");
            }
        }
    }
}

#[tokio::test]
async fn a_route_with_issuers_takes_bearer_tokens_beside_sessions() {
    let site = Site::start().await;
    let token = site.service_token().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // login + issuers: the issuer's token is enough.
    let r = http
        .get(site.url("/mixed/x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-user-sub"], SERVICE);
    // A bad token there is refused, not sent to sign in.
    let r = http
        .get(site.url("/mixed/x"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Nothing at all: a navigation signs in, an API call gets 401.
    let a = Visitor::default().navigate(&site.url("/mixed/x")).await;
    assert_eq!(a.status, 302);
    let a = Visitor::default().api(&site.url("/mixed/x")).await;
    assert_eq!(a.status, 401);
    // login only: the same token is no credential (the client has the
    // route's role, so this is not a 403).
    for path in ["/portal/x", "/page/x"] {
        let r = http
            .get(site.url(path))
            .header("accept", "application/json")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_description"], "no token", "{path}");
        let r = http
            .get(site.url(path))
            .header("accept", "text/html")
            .header("sec-fetch-mode", "navigate")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{path}: a navigation signs in");
    }
}

#[tokio::test]
async fn a_browser_whose_session_was_ended_elsewhere_is_sent_to_sign_in_again() {
    let site = Site::start().await;
    // Ended by the admin API: the browser still holds its cookie.
    let mut ada = site.visitor("ada").await;
    let ended = ada.session().unwrap();
    let (status, body) = site.end_sessions("issuer=app&sub=ada").await;
    assert_eq!((status, body), (200, json!({"ended": 1})));
    assert_sent_to_sign_in(&site, &ended, "ended by the admin API").await;
    // Its sign-in replaces the cookie with a session that works.
    let done = site.sign_in(&mut ada, "/page/back", "ada").await;
    assert_eq!(done.location.as_deref(), Some("/page/back"));
    assert_access(&site, &ada.session().unwrap(), "signed in again").await;
    // Ended by a revocation of its subject.
    let bob = site.visitor("bob").await.session().unwrap();
    let r = site.gw.revoke(json!({"sub": "bob", "issuer": "app"})).await;
    assert_eq!(r.status(), 200);
    assert_sent_to_sign_in(&site, &bob, "bob revoked").await;
}

/// An upstream beside the login routes that plants cookies of portero's
/// own names, as a compromised or careless application could.
const PLANTING: &[(&str, &str)] = &[
    (
        "set-cookie",
        "portero-session=planted0123456789planted0123456789planted01; Path=/",
    ),
    ("set-cookie", "Portero_Login=planted; Path=/"),
    (
        "set-cookie",
        "__Host-portero-session=planted; Path=/; Secure",
    ),
    ("set-cookie", "theme=dark; Path=/"),
];

/// A site whose public `/blog` is served by `blog`, beside the login routes.
async fn site_with_blog(blog: &Upstream) -> Site {
    let extra = format!(
        "[upstreams.blog]\nservers = [\"{}\"]\n\n[[routes]]\nname = \"blog\"\npath = \"/blog\"\nupstream = \"blog\"\npublic = true\n",
        blog.addr
    );
    Site::with_sessions(&extra).await
}

#[tokio::test]
async fn an_upstream_plants_no_session_and_sees_none_whatever_bytes_the_cookies_hold() {
    let blog = Upstream::start_with_headers("blog", PLANTING).await;
    let site = site_with_blog(&blog).await;
    let mut v = site.visitor("ada").await;
    let id = v.session().unwrap();
    // The upstream's own cookie reaches the browser; portero's names never.
    let a = v.api(&site.url("/blog/post")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.cookies,
        vec!["theme=dark; Path=/".to_string()],
        "{:?}",
        a.cookies
    );
    assert_eq!(
        v.session().as_deref(),
        Some(id.as_str()),
        "the session is the browser's own"
    );
    assert_eq!(v.cookie("portero-login"), None);
    // A cookie of the site whose value is not UTF-8 hides none of portero's,
    // nor does a name some upstream reads as one of portero's: PHP's `.`
    // and `[` for `_`, Python's Unicode whitespace, `SimpleCookie`'s pairs
    // inside a value.
    let cookie = [
        format!("portero-session={id}; pref=caf").as_bytes(),
        &[0xc3, 0xa9],
        "; PORTERO_SSO_APP=x; portero.login=x; portero[form=x; \u{a0}portero-sso-b=x; a=b portero-sso-c=x"
            .as_bytes(),
    ]
    .concat();
    for path in ["/blog/post", "/page/x"] {
        let r = reqwest::Client::new()
            .get(site.url(path))
            .header("accept", "application/json")
            .header(
                "cookie",
                reqwest::header::HeaderValue::from_bytes(&cookie).unwrap(),
            )
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(
            status, 200,
            "{path}: the session is read whatever else the header holds: {text}"
        );
        let seen: Value = serde_json::from_str(&text).unwrap();
        let sent = seen["headers"]["cookie"].to_string();
        assert!(sent.contains("pref=caf"), "{path}: {sent}");
        assert!(
            !sent.to_ascii_lowercase().contains("portero"),
            "{path}: {sent}"
        );
        assert!(!sent.contains(&id), "{path}: {sent}");
    }
    // The session's cookie alone takes its header with it; beside a second
    // `Cookie` header of portero's names, or with a space about it, the
    // header is read as above.
    let alone = format!("portero-session={id}");
    let spaced = format!(" portero-session={id}");
    let shapes: [&[&str]; 3] = [
        &[&alone],
        &[&spaced],
        &[&alone, "portero-login=x; pref=tea"],
    ];
    for values in shapes {
        let mut request = reqwest::Client::new()
            .get(site.url("/page/x"))
            .header("accept", "application/json");
        for value in values {
            request = request.header("cookie", *value);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200, "{values:?}");
        let seen: Value = r.json().await.unwrap();
        let sent = &seen["headers"]["cookie"];
        match values.len() {
            1 => assert!(sent.is_null(), "{values:?}: {sent}"),
            _ => assert_eq!(sent, "pref=tea", "{values:?}"),
        }
    }
    // The session's own cookie in another spelling some upstream reads
    // as its name is a second copy: no session is read from the two.
    let r = reqwest::Client::new()
        .get(site.url("/page/x"))
        .header("accept", "application/json")
        .header(
            "cookie",
            format!("portero-session={id}; portero.session={id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn a_session_passes_on_no_credential_of_a_route_that_reads_its_tokens_elsewhere() {
    let extra =
        "[[routes]]\nname = \"tok\"\npath = \"/tok\"\nupstream = \"echo\"\nlogin = \"app\"\n\
                 issuers = [\"app\"]\ntoken_from = [\"header:x-api-token\", \"cookie:apitok\"]\n";
    let site = Site::with_sessions(extra).await;
    let mut v = site.visitor("ada").await;
    v.set("apitok", "forged-cookie-token");
    v.set("theme", "dark");
    let seen = v
        .echoed(
            &site.url("/tok/x"),
            &[
                ("authorization", "Bearer forged"),
                ("x-api-token", "forged-header-token"),
            ],
        )
        .await;
    let headers = &seen["headers"];
    assert!(headers.get("authorization").is_none(), "{seen}");
    assert!(headers.get("x-api-token").is_none(), "{seen}");
    let cookie = headers["cookie"].as_str().unwrap_or_default();
    assert_eq!(cookie, "theme=dark", "{seen}");
}
