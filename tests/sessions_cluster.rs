//! Browser sessions (routes with `login`) on two instances sharing one
//! real Redis: a session made on one instance is honoured on the other, a
//! logout on one ends it on both, a back-channel logout token posted to
//! one ends it on both within a second (the time it took is printed), a
//! logout token is taken once across the instances (its `jti` is the
//! store's), and a session's access token passed upstream
//! (`login_pass_token`) is refreshed by one instance while both keep
//! passing a valid one.
//!
//! No browser: a client that keeps cookies and follows redirects by hand
//! ([`Visitor`]). Both instances share `server.public_url` (a load
//! balancer's name, as in tests/sign_in_cluster.rs): the redirects name
//! it, and the test sends each request to the instance it chooses
//! ([`on`]). The provider is either the external test provider
//! (`common/rp_idp.rs`, oidc-provider on Node.js: skipped without it,
//! failing instead under `PORTERO_REQUIRE_OIDC=1`) or portero's own
//! `kind = "oauth2"` issuer.
//!
//! Redis: see `common/redis.rs` (skipped with a message when none can be
//! had, failing instead under `PORTERO_REQUIRE_REDIS=1`).

use crate::common;

use std::sync::Once;
use std::time::{Duration, Instant};

use common::redis;
use common::rp_idp::{RpIdp, RpIdpOptions, RP_CLIENT_SECRET};
use common::shared_store::prefix;
use common::standard::{form_of, on, USER, USER_PASSWORD};
use common::*;
use serde_json::{json, Value};

/// The name both instances share, for the external provider's sessions.
const PUBLIC: &str = "http://gateway.test";
/// The variable the gateways read the provider's client secret from.
const SECRET_ENV: &str = "PORTERO_TEST_RP_CLIENT_SECRET";
/// The page the tests sign in for.
const PAGE: &str = "/app/page?x=1";

/// The provider's client secret in the environment the gateways inherit.
fn secret_in_env() {
    static SET: Once = Once::new();
    SET.call_once(|| std::env::set_var(SECRET_ENV, RP_CLIENT_SECRET));
}

/// What a response said.
#[derive(Debug)]
struct Answer {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

/// A browser without JavaScript, driven by hand: it keeps the gateway's
/// cookies (one site, whichever instance answers) apart from the
/// provider's, and follows no redirect by itself.
struct Visitor {
    http: reqwest::Client,
    /// The external provider's origin: its cookies are its own.
    provider: Option<String>,
    gateway_cookies: Vec<(String, String)>,
    provider_cookies: Vec<(String, String)>,
}

impl Visitor {
    fn new(provider: Option<&str>) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            provider: provider.map(str::to_string),
            gateway_cookies: Vec::new(),
            provider_cookies: Vec::new(),
        }
    }

    fn at_provider(&self, url: &str) -> bool {
        self.provider.as_ref().is_some_and(|p| url.starts_with(p))
    }

    fn jar(&mut self, url: &str) -> &mut Vec<(String, String)> {
        match self.at_provider(url) {
            true => &mut self.provider_cookies,
            false => &mut self.gateway_cookies,
        }
    }

    async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        form: Option<&[(String, String)]>,
    ) -> Answer {
        let cookie = header_of(self.jar(url));
        let mut req = self.http.request(method, url).header("cookie", cookie);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(form) = form {
            let body: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let r = req.send().await.unwrap();
        let set_cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let jar = self.jar(url);
        for line in &set_cookies {
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let name = name.trim();
            jar.retain(|(n, _)| n != name);
            let gone = line.contains("Max-Age=0") || line.contains("1970");
            if !value.is_empty() && !gone {
                jar.push((name.to_string(), value.to_string()));
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
            set_cookies,
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&mut self, url: &str) -> Answer {
        self.send(reqwest::Method::GET, url, &[], None).await
    }

    /// A browser's navigation to a page (it may be sent to sign in).
    async fn navigate(&mut self, url: &str) -> Answer {
        let headers = [("accept", "text/html"), ("sec-fetch-mode", "navigate")];
        self.send(reqwest::Method::GET, url, &headers, None).await
    }

    async fn post_form(&mut self, url: &str, fields: &[(String, String)]) -> Answer {
        self.send(reqwest::Method::POST, url, &[], Some(fields))
            .await
    }

    /// The gateway's cookie `name` (or its `__Host-` twin).
    fn cookie(&self, name: &str) -> Option<(String, String)> {
        let host = format!("__Host-{name}");
        self.gateway_cookies
            .iter()
            .find(|(n, _)| *n == name || *n == host)
            .cloned()
    }

    /// The session cookie, which the visitor must hold.
    fn session(&self) -> (String, String) {
        self.cookie("portero-session")
            .unwrap_or_else(|| panic!("no session cookie: {:?}", self.gateway_cookies))
    }
}

fn header_of(cookies: &[(String, String)]) -> String {
    cookies
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `location` read against `base`.
fn join(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

/// `path` on `gw` with only the session cookie `session`, as a script's
/// request (refused with `401`, never sent to sign in): the status and
/// what the echo upstream received.
async fn with_session(gw: &Gateway, path: &str, session: &(String, String)) -> (u16, Value) {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(gw.url(path))
        .header("cookie", format!("{}={}", session.0, session.1))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The page with the session, which must be on: what the upstream saw.
async fn seen(gw: &Gateway, path: &str, session: &(String, String)) -> Value {
    let (status, seen) = with_session(gw, path, session).await;
    assert_eq!(status, 200, "{seen}");
    seen
}

/// Asks `gw` for the page with `session` every 20 ms until it is refused
/// (`401`); how long that took. Fails if it is still served after `limit`.
async fn until_refused(gw: &Gateway, session: &(String, String), limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, seen) = with_session(gw, PAGE, session).await;
        if status == 401 {
            return start.elapsed();
        }
        assert_eq!(status, 200, "{seen}");
        assert!(
            start.elapsed() < limit,
            "the session is still served after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two instances of `body` on the Redis at `url`, under keys of their
/// own, with `server` lines in their `[server]` tables.
async fn pair(url: &str, server: &str, body: &str) -> (Gateway, Gateway) {
    let config = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{}\"\ntimeout = \"300ms\"\n\n{body}",
        prefix()
    );
    futures_util::join!(
        Gateway::start_with_server_settings(server, &config),
        Gateway::start_with_server_settings(server, &config)
    )
}

/// The external provider, sending browsers back to the shared name.
fn provider() -> Option<RpIdp> {
    RpIdp::start(RpIdpOptions {
        redirect_uri: format!("{PUBLIC}/.portero/callback"),
        post_logout_redirect_uri: format!("{PUBLIC}/"),
        ..RpIdpOptions::default()
    })
}

/// `/app` signs people in at the external provider `rp`.
fn external_body(rp: &RpIdp) -> String {
    format!(
        r#"
[upstreams.echo]
builtin = "echo"

[issuers.idp]
discovery_url = "{discovery}"
login_client_id = "{client}"
login_client_secret_env = "{SECRET_ENV}"

[[routes]]
name = "app"
path = "/app"
upstream = "echo"
login = "idp"

[routes.headers]
x-user-sub = "sub"
x-user-sid = "sid"
x-user-email = "email"

[sessions]
idle_timeout = "10m"
"#,
        discovery = rp.discovery_url(),
        client = rp.client_id,
    )
}

/// Signs `login` in at the external provider, starting from [`PAGE`] on
/// `gw` and coming back to `back` (the callback): the visitor holds the
/// session cookie after.
async fn sign_in_at_provider(v: &mut Visitor, gw: &Gateway, back: &Gateway, login: &str) {
    let first = v.navigate(&gw.url(PAGE)).await;
    assert_eq!(first.status, 302, "{first:?}");
    assert!(v.cookie("portero-login").is_some(), "{first:?}");
    let mut url = first.location.unwrap();
    assert!(v.at_provider(&url), "{url}");
    for _ in 0..10 {
        if !v.at_provider(&url) {
            break;
        }
        let a = v.get(&url).await;
        url = match a.status {
            302 | 303 => join(&url, a.location.as_deref().unwrap()),
            200 if a.body.contains("id=\"login-form\"") => {
                let (action, _) = form_of(&a.body);
                let fields = [("login", login), ("password", "any password")]
                    .map(|(k, v)| (k.to_string(), v.to_string()));
                let posted = v.post_form(&join(&url, &action), &fields).await;
                assert!(matches!(posted.status, 302 | 303), "{posted:?}");
                join(&url, posted.location.as_deref().unwrap())
            }
            _ => panic!("at {url}: {a:?}"),
        };
    }
    assert!(
        url.starts_with(&format!("{PUBLIC}/.portero/callback?")),
        "{url}"
    );
    let done = v.get(&on(back, &url)).await;
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(done.location.as_deref(), Some(PAGE));
    let (name, id) = v.session();
    assert_eq!((name.as_str(), id.len()), ("portero-session", 43));
    assert!(
        v.cookie("portero-login").is_none(),
        "the pending cookie is cleared"
    );
}

/// A logout token for `rp`'s client naming `sub` and/or `sid`, with a
/// `jti` of its own.
fn logout_token(rp: &RpIdp, sub: Option<&str>, sid: Option<&str>) -> String {
    let mut claims = rp.logout_claims(sub, sid);
    claims["jti"] = json!(format!("jti-{:016x}", rand::random::<u64>()));
    rp.sign_logout_token(&claims)
}

/// A logout token posted to `gw`'s back-channel endpoint.
async fn back_channel(gw: &Gateway, token: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(gw.url("/.portero/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

fn header<'v>(seen: &'v Value, name: &str) -> &'v str {
    seen["headers"][name].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_instance_is_honoured_on_the_other_and_a_logout_on_it_ends_it_there()
{
    let Some(url) = redis::shared() else { return };
    let Some(rp) = provider() else { return };
    secret_in_env();
    let (a, b) = pair(&url, "", &external_body(&rp)).await;

    let mut v = Visitor::new(Some(&rp.issuer));
    sign_in_at_provider(&mut v, &a, &a, "alice").await;
    let session = v.session();
    for gw in [&a, &b] {
        let seen = seen(gw, PAGE, &session).await;
        assert_eq!(seen["path"], "/app/page");
        assert_eq!(header(&seen, "x-user-sub"), "alice", "{seen}");
        assert_eq!(header(&seen, "x-user-email"), "alice@example.test");
        assert!(!header(&seen, "x-user-sid").is_empty(), "{seen}");
        // The session cookie is portero's: never the upstream's.
        assert!(seen["headers"].get("cookie").is_none(), "{seen}");
    }
    // A navigation with the cookie goes through too (no sign-in).
    let again = v.navigate(&b.url(PAGE)).await;
    assert_eq!(again.status, 200, "{again:?}");

    // The logout, posted to A from the site's own page.
    let out = v
        .send(
            reqwest::Method::POST,
            &a.url("/.portero/logout"),
            &[("origin", PUBLIC)],
            None,
        )
        .await;
    assert_eq!(out.status, 303, "{out:?}");
    let location = out.location.clone().unwrap();
    assert!(
        location.starts_with(&rp.url("/session/end?")),
        "to the provider's end_session: {location}"
    );
    let q = common::standard::query_of(&location);
    assert_eq!(q["post_logout_redirect_uri"], format!("{PUBLIC}/"));
    assert_eq!(q["client_id"], rp.client_id);
    assert!(!q["id_token_hint"].is_empty());
    assert!(
        out.set_cookies
            .iter()
            .any(|c| c.starts_with("portero-session=;") && c.contains("Max-Age=0")),
        "{out:?}"
    );
    // B had the session in memory: it ends there too.
    let took = until_refused(&b, &session, Duration::from_secs(1)).await;
    eprintln!("logout on A: the session was refused on B after {took:?}");
    assert_eq!(with_session(&a, PAGE, &session).await.0, 401);
    // Signed out, the browser is sent to sign in again, through either.
    for gw in [&a, &b] {
        let back = v.navigate(&gw.url(PAGE)).await;
        assert_eq!(back.status, 302, "{back:?}");
        assert!(back.location.unwrap().starts_with(&rp.issuer));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_logout_posted_to_one_instance_ends_the_session_on_both() {
    let Some(url) = redis::shared() else { return };
    let Some(rp) = provider() else { return };
    secret_in_env();
    let (a, b) = pair(&url, "", &external_body(&rp)).await;

    // Alice signs in through A, Carol through B; both instances serve
    // (and so hold) both sessions.
    let mut alice = Visitor::new(Some(&rp.issuer));
    sign_in_at_provider(&mut alice, &a, &a, "alice").await;
    let mut carol = Visitor::new(Some(&rp.issuer));
    sign_in_at_provider(&mut carol, &b, &b, "carol").await;
    let (alice_session, carol_session) = (alice.session(), carol.session());
    let mut sids = Vec::new();
    for session in [&alice_session, &carol_session] {
        for gw in [&a, &b] {
            let seen = seen(gw, PAGE, session).await;
            sids.push(header(&seen, "x-user-sid").to_string());
        }
    }
    let (alice_sid, carol_sid) = (sids[0].clone(), sids[2].clone());
    assert!(!alice_sid.is_empty() && alice_sid != carol_sid, "{sids:?}");

    // A token naming Carol's sid but Alice as its sub ends nothing.
    let (status, body) =
        back_channel(&a, &logout_token(&rp, Some("alice"), Some(&carol_sid))).await;
    assert_eq!(status, 200, "{body}");
    for gw in [&a, &b] {
        for session in [&alice_session, &carol_session] {
            seen(gw, PAGE, session).await;
        }
    }

    // Alice's sid, posted to A: her session ends on A at once and on B
    // within a second.
    let (status, body) = back_channel(&a, &logout_token(&rp, None, Some(&alice_sid))).await;
    assert_eq!((status, body.as_str()), (200, ""));
    let on_b = until_refused(&b, &alice_session, Duration::from_secs(1)).await;
    let on_a = until_refused(&a, &alice_session, Duration::from_millis(100)).await;
    eprintln!(
        "back-channel logout (sid) posted to A: refused on B after {on_b:?} (polled every 20 ms from A's 200), then on A at once ({on_a:?})"
    );
    for gw in [&a, &b] {
        seen(gw, PAGE, &carol_session).await;
    }

    // By sub: Alice signs in again (through B this time, in a browser
    // that has let go of the ended session's cookie: see
    // `a_browser_whose_session_ended_elsewhere_is_sent_to_sign_in_again`),
    // and a token naming only her sub, posted to A, ends it on both.
    alice.gateway_cookies.clear();
    sign_in_at_provider(&mut alice, &b, &b, "alice").await;
    let alice_again = alice.session();
    assert_ne!(alice_again, alice_session);
    for gw in [&a, &b] {
        assert_eq!(
            header(&seen(gw, PAGE, &alice_again).await, "x-user-sub"),
            "alice"
        );
    }
    let (status, body) = back_channel(&a, &logout_token(&rp, Some("alice"), None)).await;
    assert_eq!((status, body.as_str()), (200, ""));
    let on_b = until_refused(&b, &alice_again, Duration::from_secs(1)).await;
    let on_a = until_refused(&a, &alice_again, Duration::from_millis(100)).await;
    eprintln!(
        "back-channel logout (sub) posted to A: refused on B after {on_b:?} (polled every 20 ms from A's 200), then on A at once ({on_a:?})"
    );
    // Carol's session is another's: on, on both.
    for gw in [&a, &b] {
        assert_eq!(
            header(&seen(gw, PAGE, &carol_session).await, "x-user-sub"),
            "carol"
        );
    }
}

/// A session ended by the provider (back-channel) leaves its cookie in the
/// browser: its next navigation is a browser without a session, sent to
/// sign in again, on whichever instance it reaches: those that held the
/// session in memory as the one that never saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_whose_session_ended_elsewhere_is_sent_to_sign_in_again() {
    let Some(url) = redis::shared() else { return };
    let Some(rp) = provider() else { return };
    secret_in_env();
    let (a, b) = pair(&url, "", &external_body(&rp)).await;
    let mut v = Visitor::new(Some(&rp.issuer));
    sign_in_at_provider(&mut v, &a, &a, "erin").await;
    let session = v.session();
    for gw in [&a, &b] {
        seen(gw, PAGE, &session).await;
    }
    let (status, body) = back_channel(&a, &logout_token(&rp, Some("erin"), None)).await;
    assert_eq!((status, body.as_str()), (200, ""));
    until_refused(&b, &session, Duration::from_secs(1)).await;
    // A third instance, which never held the session.
    let config = a.dir.path().join("gateway.toml");
    let body = std::fs::read_to_string(config).unwrap();
    let store = body
        .split("\n\n")
        .find(|t| t.starts_with("[store]"))
        .unwrap();
    let c = Gateway::start(&format!("{store}\n\n{}", external_body(&rp))).await;
    let mut answers = Vec::new();
    for (name, gw) in [("A", &a), ("B", &b), ("C", &c)] {
        let back = v.navigate(&gw.url(PAGE)).await;
        answers.push(format!(
            "{name}: {} {:?} {}",
            back.status, back.location, back.body
        ));
    }
    let refused: Vec<&String> = answers
        .iter()
        .filter(|a| !a.contains(&format!(" 302 Some(\"{}/auth?", rp.issuer)))
        .collect();
    assert!(refused.is_empty(), "not sent to sign in: {refused:#?}");
    // Then in again, through B, with the old cookie still held.
    sign_in_at_provider(&mut v, &b, &b, "erin").await;
    assert_ne!(v.session(), session);
    seen(&a, PAGE, &v.session()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_token_taken_on_one_instance_is_a_replay_on_the_other() {
    let Some(url) = redis::shared() else { return };
    let Some(rp) = provider() else { return };
    secret_in_env();
    let (a, b) = pair(&url, "", &external_body(&rp)).await;
    let mut v = Visitor::new(Some(&rp.issuer));
    sign_in_at_provider(&mut v, &a, &a, "dora").await;
    let session = v.session();
    seen(&b, PAGE, &session).await;

    let token = logout_token(&rp, Some("dora"), None);
    let (status, body) = back_channel(&a, &token).await;
    assert_eq!((status, body.as_str()), (200, ""));
    until_refused(&b, &session, Duration::from_secs(1)).await;
    // The same token (same jti), to B and to A again: refused.
    for gw in [&b, &a] {
        let (status, body) = back_channel(gw, &token).await;
        assert_eq!(status, 400, "{body}");
        let refused: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(refused["error"], "invalid_request", "{refused}");
        assert!(
            refused["error_description"]
                .as_str()
                .unwrap()
                .contains("jti"),
            "{refused}"
        );
    }
    // A new token (another jti) is taken by B.
    let (status, body) = back_channel(&b, &logout_token(&rp, Some("dora"), None)).await;
    assert_eq!((status, body.as_str()), (200, ""));
}

/// portero's own issuer signs people in for `/api`, whose upstream gets the
/// access token (`login_pass_token`); the tokens live 5 s and are refreshed
/// when they have 4 s left. `/bearer` takes the issuer's bearer tokens.
fn own_body() -> String {
    let hash = portero::credentials::hash_fast(USER_PASSWORD);
    format!(
        r#"
[upstreams.echo]
builtin = "echo"

[issuers.app]
kind = "oauth2"
token_ttl = "5s"
login_client_id = "portal"

[[issuers.app.users]]
username = "{USER}"
secret_hash = "{hash}"
roles = ["admin"]

[[issuers.app.clients]]
client_id = "portal"
redirect_uris = ["{OWN_PUBLIC}/.portero/callback"]

[[routes]]
name = "api"
path = "/api"
upstream = "echo"
login = "app"
login_pass_token = true
roles = ["admin"]

[routes.headers]
x-user-sub = "sub"

[[routes]]
name = "bearer"
path = "/bearer"
upstream = "echo"
issuers = ["app"]

[sessions]
refresh_before = "4s"
"#
    )
}

/// The shared name of the own issuer's pair: https, as its clients'
/// redirect URIs must be (or loopback).
const OWN_PUBLIC: &str = "https://gateway.test";

/// Signs [`USER`] in at portero's own issuer, starting from `page` on `gw`.
async fn sign_in_at_own(v: &mut Visitor, gw: &Gateway, page: &str) {
    let first = v.navigate(&gw.url(page)).await;
    assert_eq!(first.status, 302, "{first:?}");
    let authorize = first.location.unwrap();
    assert!(
        authorize.starts_with(&format!("{OWN_PUBLIC}/oauth2/app/authorize?")),
        "{authorize}"
    );
    let form = v.get(&on(gw, &authorize)).await;
    assert_eq!(form.status, 200, "{form:?}");
    let (action, mut fields) = form_of(&form.body);
    fields.push(("username".into(), USER.into()));
    fields.push(("password".into(), USER_PASSWORD.into()));
    let posted = v.post_form(&on(gw, &action), &fields).await;
    assert_eq!(posted.status, 303, "{posted:?}");
    let callback = posted.location.unwrap();
    assert!(
        callback.starts_with(&format!("{OWN_PUBLIC}/.portero/callback?")),
        "{callback}"
    );
    let done = v.get(&on(gw, &callback)).await;
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(done.location.as_deref(), Some(page));
    assert_eq!(v.session().0, "__Host-portero-session");
}

/// The access token the upstream was handed.
fn passed_token(seen: &Value) -> String {
    header(seen, "authorization")
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("no bearer token upstream: {seen}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_token_passed_upstream_is_refreshed_once_for_both_instances() {
    let Some(url) = redis::shared() else { return };
    let server = format!("public_url = \"{OWN_PUBLIC}\"");
    let (a, b) = pair(&url, &server, &own_body()).await;
    let mut v = Visitor::new(None);
    sign_in_at_own(&mut v, &a, "/api/x").await;
    let session = v.session();

    let first = passed_token(&seen(&a, "/api/x", &session).await);
    let claims = claims_of(&first);
    assert_eq!(claims["sub"], USER);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        5
    );

    // Eight seconds of requests, each instance in turn: every one is
    // served with a token that has not expired, and new ones come.
    let mut tokens: Vec<String> = vec![first.clone()];
    let mut last = [first.clone(), first.clone()];
    let start = Instant::now();
    let mut turn = 0;
    while start.elapsed() < Duration::from_secs(8) {
        let gw = [&a, &b][turn % 2];
        let seen = seen(gw, "/api/x", &session).await;
        assert_eq!(header(&seen, "x-user-sub"), USER);
        let token = passed_token(&seen);
        let exp = claims_of(&token)["exp"].as_i64().unwrap();
        assert!(now() < exp, "an expired token went upstream: exp {exp}");
        if !tokens.contains(&token) {
            tokens.push(token.clone());
        }
        last[turn % 2] = token;
        turn += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let issued = a
        .metric("portero_tokens_issued_total", &[("issuer", "app")])
        .await
        + b.metric("portero_tokens_issued_total", &[("issuer", "app")])
            .await;
    eprintln!(
        "{} access tokens passed upstream in 8 s over {turn} requests; the issuer minted {issued}",
        tokens.len()
    );
    // A new token every round (about one a second), not one per instance.
    assert!(tokens.len() >= 4, "{} tokens", tokens.len());
    assert!(
        issued <= tokens.len() as f64 + 1.0,
        "{issued} minted for {} passed: more than one refresh a round",
        tokens.len()
    );
    // Both instances end up passing a fresh token, which the issuer
    // still honours as a bearer token on both.
    for (n, token) in last.iter().enumerate() {
        assert_ne!(*token, first, "instance {n} still passes the first token");
        for gw in [&a, &b] {
            let r = reqwest::Client::new()
                .get(gw.url("/bearer"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    }
}
