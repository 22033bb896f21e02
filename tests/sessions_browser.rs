//! Browser sessions in a real browser: headless Chromium (WebDriver) signs
//! in through portero at a real OpenID provider (oidc-provider, see
//! tests/common/rp_idp.rs) and at portero's own issuer, and comes back to
//! the page it first asked for, which the built-in echo upstream shows
//! with the identity headers and without portero's cookies; at portero's
//! own issuer a client named by its id alone signs in, and signing out
//! comes back to the app. The provider's
//! back-channel logout ends the session within a second; forged and
//! replayed logout tokens end nothing; a callback that names another
//! provider (`iss`) makes no session, nor does an ID token not valid yet
//! (`nbf`) or typed as another token (`typ`); a planted or altered session
//! cookie admits nobody, a sign-in ends the session the browser held
//! before, and the cookie of an ended session sends the browser to sign in
//! again.
//!
//! Start order in every test: the gateway (its port is the callback's),
//! then the provider with that callback, then the gateway's config again
//! with the provider's discovery URL (a reload).
//!
//! Needs Debian's `chromium` and `chromium-driver`, and Node.js with
//! tests/oidc's packages; without them the tests are skipped with a
//! message, unless `PORTERO_REQUIRE_BROWSER=1` / `PORTERO_REQUIRE_OIDC=1`,
//! where they fail. `--nocapture` shows each sign-in's steps.

use crate::common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::chromium::Driver;
use common::rp_idp::{
    confirm_logout_at_provider, sign_in_at_provider, RpIdp, RpIdpOptions, RP_CLIENT_SECRET,
};
use common::standard::query_of;
use common::*;
use fantoccini::cookies::Cookie;
use fantoccini::{Client, Locator};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The variable the gateway reads the provider's client secret from
/// (`login_client_secret_env`); the gateway inherits the test's environment.
const SECRET_ENV: &str = "PORTERO_TEST_LOGIN_CLIENT_SECRET";
const SESSION_COOKIE: &str = "portero-session";
const PENDING_COOKIE: &str = "portero-login";
/// How long a browser may take to reach a page.
const PAGE: Duration = Duration::from_secs(10);

/// What every account of the providers carries besides its own claims.
fn roles() -> Value {
    json!({ "roles": ["staff", "reader"] })
}

/// [`SECRET_ENV`] set in this process, before any gateway starts.
fn secret_in_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var(SECRET_ENV, RP_CLIENT_SECRET));
}

/// The config the gateway starts on, before any provider is known: the
/// echo upstream and a public route (a page of the gateway's own origin).
const BOOT: &str = r#"
[upstreams.echo]
builtin = "echo"

[[routes]]
name = "public"
path = "/public"
upstream = "echo"
public = true
"#;

/// Where a logout ends: a public page of the gateway.
const SIGNED_OUT: &str = "/public/signed-out";

/// `[sessions]`: after a logout, the public page.
fn sessions_table(public: &str) -> String {
    format!("\n[sessions]\npost_logout_redirect_uri = \"{public}{SIGNED_OUT}\"\n")
}

/// An issuer `name` found by the provider's discovery, with portero's
/// login client there.
fn provider_issuer(name: &str, idp: &RpIdp) -> String {
    format!(
        "\n[issuers.{name}]\ndiscovery_url = \"{}\"\nlogin_client_id = \"{}\"\n\
         login_client_secret_env = \"{SECRET_ENV}\"\nroles_claims = [\"roles\"]\n",
        idp.discovery_url(),
        idp.client_id
    )
}

/// A route under `path` that signs browsers in at `issuer`, for role
/// `staff`, with the identity headers.
fn login_route(name: &str, path: &str, issuer: &str) -> String {
    format!(
        "\n[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"echo\"\n\
         login = \"{issuer}\"\nroles = [\"staff\"]\n\n[routes.headers]\n\
         x-user-sub = \"sub\"\nx-user-email = \"email\"\nx-user-roles = \"roles\"\n"
    )
}

/// The gateway, access log on, on the config that knows no provider yet.
async fn boot() -> Gateway {
    secret_in_env();
    Gateway::start_with_server_settings("access_log = true", BOOT).await
}

/// `body` (after [`BOOT`]) as the gateway's config, its `public_url` its
/// own address; reloaded. Returns the public URL.
async fn serve(gw: &Gateway, body: &str) -> String {
    let public = format!("http://127.0.0.1:{}", gw.port);
    gw.rewrite_config_with_server(
        &format!("public_url = \"{public}\"\naccess_log = true"),
        &format!("{BOOT}{body}"),
    );
    let r = reqwest::Client::new()
        .post(gw.admin_url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 200, "reload: {}", r.text().await.unwrap());
    public
}

/// The provider's options for a gateway at `public`.
fn provider_options(public: &str, backchannel: bool) -> RpIdpOptions {
    RpIdpOptions {
        redirect_uri: format!("{public}/.portero/callback"),
        post_logout_redirect_uri: format!("{public}{SIGNED_OUT}"),
        backchannel_logout_uri: backchannel
            .then(|| format!("{public}/.portero/backchannel-logout")),
        extra_claims: roles(),
        ..RpIdpOptions::default()
    }
}

/// A gateway and one provider, issuer `idp`, routes under `/app` signing
/// in there; `None` when the test is skipped.
async fn gateway_and_provider(backchannel: bool) -> Option<(Gateway, RpIdp)> {
    let gw = boot().await;
    let public = format!("http://127.0.0.1:{}", gw.port);
    let idp = RpIdp::start(provider_options(&public, backchannel))?;
    let body = format!(
        "{}{}{}",
        sessions_table(&public),
        provider_issuer("idp", &idp),
        login_route("app", "/app", "idp")
    );
    serve(&gw, &body).await;
    Some((gw, idp))
}

/// The access-log lines of the gateway from line `from` on: `METHOD path
/// -> status`.
fn access_since(gw: &Gateway, from: usize) -> Vec<String> {
    gw.log()
        .lines()
        .skip(from)
        .filter(|l| l.contains("portero::access") && !l.contains("/favicon.ico"))
        .map(|l| {
            let field = |name: &str| {
                l.split(&format!(" {name}="))
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .unwrap_or("?")
                    .trim_matches('"')
                    .to_string()
            };
            format!(
                "{} {} -> {}",
                field("method"),
                field("path"),
                field("status")
            )
        })
        .collect()
}

fn log_lines(gw: &Gateway) -> usize {
    gw.log().lines().count()
}

/// The page's text as the JSON the echo upstream answered.
async fn shown_echo(browser: &Client) -> Value {
    let text = match browser.find(Locator::Css("pre")).await {
        Ok(pre) => pre.text().await.unwrap(),
        Err(_) => browser.source().await.unwrap_or_default(),
    };
    let at = browser.current_url().await.unwrap();
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not the echo's JSON ({e}) at {at}: {text}"))
}

/// Waits for the browser to be at `url`; panics with where it is.
async fn arrive(browser: &Client, url: &str) {
    let at = poll(
        PAGE,
        || async { browser.current_url().await.unwrap().to_string() },
        |at| at == url,
    )
    .await;
    assert_eq!(
        at,
        url,
        "the browser is not back at the page; it shows {}",
        browser.source().await.unwrap_or_default()
    );
}

/// Waits for the provider's sign-in page; its URL.
async fn at_provider_sign_in(browser: &Client, idp: &RpIdp) -> String {
    if let Err(e) = browser
        .wait()
        .at_most(PAGE)
        .for_element(Locator::Id("login"))
        .await
    {
        panic!(
            "not at the provider's sign-in page ({e}): at {}, showing {}",
            browser.current_url().await.unwrap(),
            browser.source().await.unwrap_or_default()
        );
    }
    let at = browser.current_url().await.unwrap().to_string();
    assert!(at.starts_with(&idp.issuer), "{at}");
    at
}

/// The browser's session cookie, if it holds one.
async fn session_cookie(browser: &Client) -> Option<String> {
    browser
        .get_named_cookie(SESSION_COOKIE)
        .await
        .ok()
        .map(|c| c.value().to_string())
}

/// The headers the echo upstream received.
fn identity(echo: &Value) -> Value {
    let h = &echo["headers"];
    json!({
        "x-user-sub": h["x-user-sub"],
        "x-user-email": h["x-user-email"],
        "x-user-roles": h["x-user-roles"],
    })
}

/// Every cookie the upstream received, as one text.
fn cookies_upstream(echo: &Value) -> String {
    match &echo["headers"]["cookie"] {
        Value::String(s) => s.clone(),
        Value::Array(list) => list
            .iter()
            .map(|v| v.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::new(),
    }
}

/// Navigates to `path` on the gateway, signs in at the provider as
/// `login`, and returns the echo of the page once the browser is back at
/// it. Each step is logged with `tag`.
async fn sign_in_through(
    browser: &Client,
    gw: &Gateway,
    idp: &RpIdp,
    path: &str,
    login: &str,
    tag: &str,
) -> Value {
    let url = gw.url(path);
    let from = log_lines(gw);
    eprintln!("[{tag}] 1 navigate:  {url}");
    browser.goto(&url).await.unwrap();
    let provider = at_provider_sign_in(browser, idp).await;
    eprintln!(
        "[{tag}] 2 provider:  {provider} (its sign-in page; the gateway: {})",
        access_since(gw, from).join(", ")
    );
    sign_in_at_provider(browser, login).await;
    arrive(browser, &url).await;
    let echo = shown_echo(browser).await;
    let callback = poll(
        Duration::from_secs(2),
        || async { access_since(gw, from) },
        |lines| lines.iter().any(|l| l.contains("/.portero/callback")),
    )
    .await;
    let callback: Vec<&String> = callback
        .iter()
        .skip_while(|l| !l.contains("/.portero/callback"))
        .collect();
    eprintln!("[{tag}] 3 callback:  {callback:?}");
    eprintln!(
        "[{tag}] 4 page:      {} shows {}",
        browser.current_url().await.unwrap(),
        identity(&echo)
    );
    echo
}

/// The status of `path` on the gateway asked with the session `id`, not
/// as a navigation (a 401, never a redirect, without a session).
async fn status_with(http: &reqwest::Client, gw: &Gateway, path: &str, id: &str) -> u16 {
    http.get(gw.url(path))
        .header("cookie", format!("{SESSION_COOKIE}={id}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `DELETE /admin/sessions?...`: how many sessions it ended.
async fn end_sessions(gw: &Gateway, query: &str) -> u64 {
    let r = reqwest::Client::new()
        .delete(gw.admin_url(&format!("/admin/sessions?{query}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["ended"].as_u64().unwrap()
}

/// A session id of the shape portero makes (43 characters, base64url).
fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A session cookie as portero would set it (WebDriver's default,
/// `SameSite=None` without `Secure`, is one Chromium refuses).
fn session(value: String) -> Cookie<'static> {
    Cookie::parse(format!(
        "{SESSION_COOKIE}={value}; Domain=127.0.0.1; Path=/; HttpOnly; SameSite=Lax"
    ))
    .unwrap()
}

#[tokio::test]
async fn chromium_signs_in_at_the_provider_and_comes_back_to_the_page_it_asked_for() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let Some((gw, idp)) = gateway_and_provider(false).await else {
        return;
    };
    // No page may run a script: signing in needs none.
    let browser = driver.browser(false).await;
    let path = "/app/reports/q3?year=2024&q=a%20b";
    let echo = sign_in_through(&browser, &gw, &idp, path, "ada", "sign-in").await;
    assert_eq!(
        identity(&echo),
        json!({
            "x-user-sub": "ada",
            "x-user-email": "ada@example.test",
            "x-user-roles": "staff,reader",
        }),
        "{echo}"
    );
    assert_eq!(
        (&echo["method"], &echo["path"], &echo["query"]),
        (
            &json!("GET"),
            &json!("/app/reports/q3"),
            &json!("year=2024&q=a%20b")
        ),
        "the very page first asked for"
    );
    let upstream_cookies = cookies_upstream(&echo);
    assert!(
        !upstream_cookies.contains("portero-"),
        "a portero cookie reached the upstream: {upstream_cookies}"
    );
    assert!(echo["headers"].get("authorization").is_none(), "{echo}");
    // The browser holds the session; its pending sign-in is gone.
    let id = session_cookie(&browser).await.expect("a session cookie");
    assert_eq!(id.len(), 43, "{id}");
    assert!(browser.get_named_cookie(PENDING_COOKIE).await.is_err());
    let cookie = browser.get_named_cookie(SESSION_COOKIE).await.unwrap();
    assert_eq!(
        (cookie.http_only(), cookie.path()),
        (Some(true), Some("/")),
        "{cookie:?}"
    );
    // Another page of the route: no trip to the provider.
    let from = log_lines(&gw);
    let other = gw.url("/app/other");
    browser.goto(&other).await.unwrap();
    arrive(&browser, &other).await;
    assert_eq!(shown_echo(&browser).await["headers"]["x-user-sub"], "ada");
    // The access log is written by a background thread.
    let lines = poll(
        Duration::from_secs(2),
        || async { access_since(&gw, from) },
        |lines| !lines.is_empty(),
    )
    .await;
    assert_eq!(lines, ["GET /app/other -> 200"], "{lines:?}");
    browser.close().await.unwrap();
}

#[tokio::test]
async fn chromium_signs_in_at_portero_own_issuer() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let gw = boot().await;
    let public = format!("http://127.0.0.1:{}", gw.port);
    let hash = portero::credentials::hash_fast("ada's password");
    let body = format!(
        "\n[issuers.own]\nkind = \"oauth2\"\ntoken_ttl = \"10m\"\nlogin_client_id = \"portero-web\"\n\n\
         [[issuers.own.users]]\nusername = \"ada\"\nsecret_hash = \"{hash}\"\nroles = [\"staff\"]\n\
         claims = {{ email = \"ada@example.test\" }}\n\n\
         [[issuers.own.clients]]\nclient_id = \"portero-web\"\n\
         redirect_uris = [\"{public}/.portero/callback\"]\n{}",
        login_route("app", "/app", "own")
    );
    serve(&gw, &body).await;
    let browser = driver.browser(false).await;
    let url = gw.url("/app/inbox?folder=unread");
    let from = log_lines(&gw);
    eprintln!("[own] 1 navigate:  {url}");
    browser.goto(&url).await.unwrap();
    let username = browser
        .wait()
        .at_most(PAGE)
        .for_element(Locator::Id("username"))
        .await
        .unwrap_or_else(|e| panic!("not at portero's sign-in page: {e}"));
    let page = browser.current_url().await.unwrap();
    eprintln!(
        "[own] 2 provider:  {page} (portero's sign-in page; the gateway: {})",
        access_since(&gw, from).join(", ")
    );
    assert_eq!(page.path(), "/oauth2/own/authorize");
    username.send_keys("ada").await.unwrap();
    let password = browser.find(Locator::Id("password")).await.unwrap();
    password.send_keys("ada's password").await.unwrap();
    browser
        .find(Locator::XPath("//button[normalize-space()='Sign in']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&browser, &url).await;
    let echo = shown_echo(&browser).await;
    let lines = poll(
        Duration::from_secs(2),
        || async { access_since(&gw, from) },
        |lines| lines.iter().any(|l| l.contains("/.portero/callback")),
    )
    .await;
    let lines: Vec<&String> = lines
        .iter()
        .skip_while(|l| !l.contains("/.portero/callback"))
        .collect();
    eprintln!("[own] 3 callback:  {lines:?}");
    eprintln!("[own] 4 page:      {url} shows {}", identity(&echo));
    assert_eq!(
        identity(&echo),
        json!({
            "x-user-sub": "ada",
            "x-user-email": "ada@example.test",
            "x-user-roles": "staff",
        }),
        "{echo}"
    );
    assert_eq!(
        (&echo["path"], &echo["query"]),
        (&json!("/app/inbox"), &json!("folder=unread"))
    );
    let upstream_cookies = cookies_upstream(&echo);
    assert!(
        !upstream_cookies.contains("portero-"),
        "a portero cookie reached the upstream: {upstream_cookies}"
    );
    assert!(session_cookie(&browser).await.is_some());
    browser.close().await.unwrap();
}

/// portero's own issuer as a web app's sign-in, as a new user writes it:
/// its client names only itself (no redirect URIs, no `[sessions]`): the
/// callback and the return after logging out are portero's own.
#[tokio::test]
async fn chromium_signs_in_and_out_at_portero_own_issuer_with_a_bare_client() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let gw = boot().await;
    let public = format!("http://127.0.0.1:{}", gw.port);
    let hash = portero::credentials::hash_fast("ada's password");
    let body = format!(
        "\n[issuers.own]\nkind = \"oauth2\"\nlogin_client_id = \"portero-web\"\n\n\
         [[issuers.own.users]]\nusername = \"ada\"\nsecret_hash = \"{hash}\"\nroles = [\"staff\"]\n\
         claims = {{ email = \"ada@example.test\" }}\n\n\
         [[issuers.own.clients]]\nclient_id = \"portero-web\"\n\n\
         [[routes]]\nname = \"home\"\npath = \"/\"\nupstream = \"echo\"\npublic = true\n{}",
        login_route("app", "/app", "own")
    );
    serve(&gw, &body).await;
    let browser = driver.browser(false).await;
    let url = gw.url("/app/inbox");
    browser.goto(&url).await.unwrap();
    let username = browser
        .wait()
        .at_most(PAGE)
        .for_element(Locator::Id("username"))
        .await
        .unwrap_or_else(|e| panic!("not at portero's sign-in page: {e}"));
    eprintln!(
        "[bare] 1 sign-in:   {}",
        browser.current_url().await.unwrap()
    );
    username.send_keys("ada").await.unwrap();
    let password = browser.find(Locator::Id("password")).await.unwrap();
    password.send_keys("ada's password").await.unwrap();
    browser
        .find(Locator::XPath("//button[normalize-space()='Sign in']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&browser, &url).await;
    let echo = shown_echo(&browser).await;
    eprintln!("[bare] 2 page:      {url} shows {}", identity(&echo));
    assert_eq!(
        identity(&echo),
        json!({
            "x-user-sub": "ada",
            "x-user-email": "ada@example.test",
            "x-user-roles": "staff",
        }),
        "the route (roles = [\"staff\"]) admits ada with her claims: {echo}"
    );
    let id = session_cookie(&browser).await.expect("a session cookie");
    // The return after logging out is no redirect URI: no code is sent there.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .get(gw.url("/oauth2/own/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "portero-web"),
            ("redirect_uri", &format!("{public}/")),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .header("cookie", format!("{SESSION_COOKIE}={id}"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("location").is_none(), "{r:?}");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("redirect_uri is not one the client registered"),
        "{page}"
    );

    // Signing out: portero's session, the issuer's, and back to the app.
    browser
        .execute(
            "const f = document.createElement('form');\
             f.method = 'post'; f.action = '/.portero/logout';\
             document.body.appendChild(f); f.submit();",
            vec![],
        )
        .await
        .unwrap();
    let home = format!("{public}/");
    arrive(&browser, &home).await;
    let echo = shown_echo(&browser).await;
    eprintln!(
        "[bare] 3 signed out: at {home}, the app's page {}",
        echo["path"]
    );
    assert_eq!(echo["path"], json!("/"));
    assert_eq!(
        session_cookie(&browser).await,
        None,
        "the cookie is cleared"
    );
    let http = reqwest::Client::new();
    assert_eq!(status_with(&http, &gw, "/app/inbox", &id).await, 401);
    // The issuer's sign-on session ended too: its sign-in page again.
    browser.goto(&url).await.unwrap();
    browser
        .wait()
        .at_most(PAGE)
        .for_element(Locator::Id("username"))
        .await
        .unwrap_or_else(|e| panic!("not at portero's sign-in page again: {e}"));
    browser.close().await.unwrap();
}

#[tokio::test]
async fn the_providers_back_channel_logout_ends_the_session_within_a_second() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let Some((gw, idp)) = gateway_and_provider(true).await else {
        return;
    };
    let http = reqwest::Client::new();
    let browser = driver.browser(true).await;
    sign_in_through(&browser, &gw, &idp, "/app/desk", "ada", "logout").await;
    let id = session_cookie(&browser).await.expect("a session cookie");
    assert_eq!(status_with(&http, &gw, "/app/desk", &id).await, 200);

    // A logout posted from another site's page is refused, and ends nothing.
    let r = http
        .post(gw.url("/.portero/logout"))
        .header("origin", "http://elsewhere.example")
        .header("cookie", format!("{SESSION_COOKIE}={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(status_with(&http, &gw, "/app/desk", &id).await, 200);

    // The browser signs out at the provider itself: only the provider's
    // back-channel logout can tell the gateway.
    let discovery: Value = http
        .get(idp.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let end_session = discovery["end_session_endpoint"].as_str().unwrap();
    eprintln!("[logout] 5 provider:  {end_session} (its sign-out page)");
    browser.goto(end_session).await.unwrap();
    let started = Instant::now();
    let watch = async {
        let (mut sent, mut ended) = (None, None);
        while started.elapsed() < Duration::from_secs(15) && (sent.is_none() || ended.is_none()) {
            if sent.is_none() && idp.log().contains("backchannel logout sent") {
                sent = Some(started.elapsed());
            }
            if ended.is_none() && status_with(&http, &gw, "/app/desk", &id).await == 401 {
                ended = Some((started.elapsed(), SystemTime::now()));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (sent, ended)
    };
    let ((), (sent, ended)) = tokio::join!(confirm_logout_at_provider(&browser), watch);
    let provider_log = idp.log();
    let sent = sent.unwrap_or_else(|| panic!("the provider sent no logout:\n{provider_log}"));
    let (ended, ended_at) = ended.unwrap_or_else(|| {
        panic!(
            "the session still opens the page:\n{provider_log}\n{}",
            gw.log()
        )
    });
    assert!(!provider_log.contains("failed"), "{provider_log}");
    let line = provider_log
        .lines()
        .find(|l| l.contains("backchannel logout sent"))
        .unwrap();
    let gateway_line = gw.log_with("back-channel logout").await;
    let gateway_line = gateway_line
        .lines()
        .find(|l| l.contains("back-channel logout"))
        .expect("the gateway logged the logout");
    assert!(gateway_line.contains("ended=1"), "{gateway_line}");
    eprintln!("[logout] 6 provider said: {line}");
    eprintln!("[logout]   gateway said:  {gateway_line}");
    // The gateway logs the logout once it has ended the sessions; the
    // refusal is seen by a request every few milliseconds.
    let after_post = time_of_day(ended_at) - time_of_day_logged(gateway_line);
    eprintln!(
        "[logout] 7 timing: confirmed at 0 ms; the provider logged the POST done at {} ms; \
         the session refused at {} ms: {} ms after the provider's line, {:.0} ms after the gateway's",
        sent.as_millis(),
        ended.as_millis(),
        ended.as_millis() as i128 - sent.as_millis() as i128,
        after_post * 1000.0,
    );
    assert!(
        ended <= sent + Duration::from_secs(1),
        "the session ended {ended:?} after the confirmation, the POST at {sent:?}"
    );
    assert!(
        after_post < 1.0,
        "the session ended {after_post} s after the POST"
    );

    // Signed in again (the ended session's cookie dropped: what a browser
    // that still holds it is answered is checked last), the browser logs
    // out at the gateway: a form posted from a page of the gateway's, then
    // the provider's confirmation, then the page after logout.
    browser.delete_cookie(SESSION_COOKIE).await.unwrap();
    browser.goto(&gw.url("/app/desk")).await.unwrap();
    at_provider_sign_in(&browser, &idp).await;
    sign_in_at_provider(&browser, "ada").await;
    arrive(&browser, &gw.url("/app/desk")).await;
    let second = session_cookie(&browser).await.expect("a new session");
    assert_ne!(second, id);
    assert_eq!(status_with(&http, &gw, "/app/desk", &second).await, 200);
    eprintln!(
        "[logout] 8 post:      {} from a page of the gateway",
        gw.url("/.portero/logout")
    );
    browser
        .execute(
            "const f = document.createElement('form');\
             f.method = 'post'; f.action = '/.portero/logout';\
             document.body.appendChild(f); f.submit();",
            vec![],
        )
        .await
        .unwrap();
    let end_session_page = poll(
        PAGE,
        || async { browser.current_url().await.unwrap().to_string() },
        |at| at.starts_with(end_session),
    )
    .await;
    assert!(
        end_session_page.starts_with(end_session),
        "{end_session_page}"
    );
    let q = query_of(&end_session_page);
    assert_eq!(
        (
            q["post_logout_redirect_uri"].as_str(),
            q["client_id"].as_str()
        ),
        (gw.url(SIGNED_OUT).as_str(), "portero-web"),
        "{end_session_page}"
    );
    let hint = q["id_token_hint"].clone();
    eprintln!(
        "[logout]   provider:  {}",
        end_session_page.replace(&hint, "<the session's ID token>")
    );
    confirm_logout_at_provider(&browser).await;
    let after = gw.url(SIGNED_OUT);
    arrive(&browser, &after).await;
    eprintln!("[logout] 9 page:      {after}");
    assert_eq!(status_with(&http, &gw, "/app/desk", &second).await, 401);
    assert_eq!(
        session_cookie(&browser).await,
        None,
        "the cookie is cleared"
    );

    // A browser that still holds the cookie of the session the provider
    // ended is sent to sign in again, as one without a session is.
    let (status, location, body) = navigate_with(&gw, "/app/desk", &id).await;
    assert_eq!(
        (status, location.starts_with(&idp.issuer)),
        (302, true),
        "a navigation with the ended session's cookie: {status} {location} {body}"
    );
    browser.add_cookie(session(id.clone())).await.unwrap();
    browser.goto(&gw.url("/app/desk")).await.unwrap();
    at_provider_sign_in(&browser, &idp).await;
    browser.close().await.unwrap();
}

/// Seconds since midnight (UTC) at `t`.
fn time_of_day(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() % 86_400.0
}

/// Seconds since midnight (UTC) a line of the gateway's log was written
/// at (`2026-11-26T17:55:11.763315Z  INFO ...`).
fn time_of_day_logged(line: &str) -> f64 {
    let time = line
        .split_once('T')
        .and_then(|(_, rest)| rest.split_once('Z'))
        .map(|(time, _)| time)
        .unwrap_or_else(|| panic!("no time in {line:?}"));
    time.split(':')
        .map(|part| part.parse::<f64>().unwrap())
        .fold(0.0, |total, part| total * 60.0 + part)
}

/// A browser's navigation to `path` with the session `id`, not followed:
/// status, `Location`, body.
async fn navigate_with(gw: &Gateway, path: &str, id: &str) -> (u16, String, String) {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(gw.url(path))
        .header("cookie", format!("{SESSION_COOKIE}={id}"))
        .header("sec-fetch-mode", "navigate")
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

/// A form post of `logout_token` to the back-channel endpoint: status and
/// body.
async fn post_logout_token(http: &reqwest::Client, gw: &Gateway, token: &str) -> (u16, Value) {
    let r = http
        .post(gw.url("/.portero/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    answer(r).await
}

async fn answer(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(json!(text)))
}

/// `claims` with a `jti` of its own.
fn fresh(mut claims: Value, jti: &str) -> Value {
    claims["jti"] = json!(format!("{jti}-{}", random_id()));
    claims
}

/// A JWT of `header` and `claims` with `signature` as it is.
fn jwt(header: &Value, claims: &Value, signature: &str) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", part(header), part(claims))
}

#[tokio::test]
async fn forged_and_replayed_logout_tokens_end_no_session() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let Some((gw, idp)) = gateway_and_provider(false).await else {
        return;
    };
    let http = reqwest::Client::new();
    let browser = driver.browser(true).await;
    sign_in_through(&browser, &gw, &idp, "/app/one", "ada", "tokens").await;
    let first = session_cookie(&browser).await.unwrap();

    // A logout token accepted: the session ends.
    let accepted = idp.sign_logout_token(&fresh(idp.logout_claims(Some("ada"), None), "accepted"));
    let (status, body) = post_logout_token(&http, &gw, &accepted).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(status_with(&http, &gw, "/app/one", &first).await, 401);

    // The provider still knows the browser: back with a new session, no
    // page (the ended session's cookie dropped first).
    browser.delete_cookie(SESSION_COOKIE).await.unwrap();
    let url = gw.url("/app/two");
    browser.goto(&url).await.unwrap();
    arrive(&browser, &url).await;
    let id = session_cookie(&browser).await.unwrap();
    assert_ne!(id, first);
    assert_eq!(status_with(&http, &gw, "/app/two", &id).await, 200);

    let valid = || fresh(idp.logout_claims(Some("ada"), None), "t");
    let header = |alg: &str| json!({ "alg": alg, "typ": "logout+jwt", "kid": idp.kid });
    let other_key = {
        let pem = std::fs::read(fixture("rsa_private.pem")).unwrap();
        let key = EncodingKey::from_rsa_pem(&pem).unwrap();
        let mut h = Header::new(Algorithm::RS256);
        h.typ = Some("logout+jwt".into());
        h.kid = Some(idp.kid.clone());
        jsonwebtoken::encode(&h, &valid(), &key).unwrap()
    };
    let mut other_audience = valid();
    other_audience["aud"] = json!("another-client");
    let mut with_nonce = valid();
    with_nonce["nonce"] = json!("n-123");
    let mut without_events = valid();
    without_events.as_object_mut().unwrap().remove("events");
    let mut old = valid();
    old["iat"] = json!(now() - 600);
    old["exp"] = json!(now() + 60);
    let mut other_issuer = valid();
    other_issuer["iss"] = json!("http://127.0.0.1:9");
    let forged = [
        ("a replay of an accepted token (same jti)", accepted.clone()),
        ("unsigned (alg none)", jwt(&header("none"), &valid(), "")),
        ("signed with another key", other_key),
        (
            "for another audience",
            idp.sign_logout_token(&other_audience),
        ),
        ("with a nonce", idp.sign_logout_token(&with_nonce)),
        (
            "without the events claim",
            idp.sign_logout_token(&without_events),
        ),
        ("issued 10 minutes ago", idp.sign_logout_token(&old)),
        (
            "naming neither sid nor sub",
            idp.sign_logout_token(&fresh(idp.logout_claims(None, None), "none")),
        ),
        (
            "of an issuer not configured",
            idp.sign_logout_token(&other_issuer),
        ),
    ];
    for (what, token) in &forged {
        let (status, body) = post_logout_token(&http, &gw, token).await;
        eprintln!("[tokens] {what}: {status} {body}");
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_request", "{what}: {body}");
        let why = body["error_description"].as_str().unwrap_or_default();
        if !what.starts_with("a replay") {
            assert!(
                !why.contains("jti"),
                "{what} refused for its jti only: {body}"
            );
        }
        assert_eq!(
            status_with(&http, &gw, "/app/two", &id).await,
            200,
            "{what} ended the session"
        );
    }
    // A well-signed token in a body that is not a form.
    let good = idp.sign_logout_token(&valid());
    let bodies = [
        (
            "application/json",
            json!({ "logout_token": good }).to_string(),
        ),
        ("text/plain", format!("logout_token={good}")),
    ];
    for (content_type, body) in bodies {
        let r = http
            .post(gw.url("/.portero/backchannel-logout"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, body) = answer(r).await;
        eprintln!("[tokens] a {content_type} body: {status} {body}");
        assert_eq!(status, 400, "{content_type}: {body}");
        assert_eq!(status_with(&http, &gw, "/app/two", &id).await, 200);
    }
    // The same token, as a form: the session ends.
    let (status, body) = post_logout_token(&http, &gw, &good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(status_with(&http, &gw, "/app/two", &id).await, 401);
    browser.close().await.unwrap();
}

#[tokio::test]
async fn a_callback_naming_another_provider_makes_no_session() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let gw = boot().await;
    let public = format!("http://127.0.0.1:{}", gw.port);
    let Some(a) = RpIdp::start(provider_options(&public, false)) else {
        return;
    };
    let Some(b) = RpIdp::start(provider_options(&public, false)) else {
        return;
    };
    let body = format!(
        "{}{}{}{}{}",
        sessions_table(&public),
        provider_issuer("idp_a", &a),
        provider_issuer("idp_b", &b),
        login_route("a", "/a", "idp_a"),
        login_route("b", "/b", "idp_b"),
    );
    serve(&gw, &body).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let browser = driver.browser(true).await;
    // A sign-in begun at A; its pending cookie taken from the browser, so
    // that the provider's redirect back reaches the gateway without it and
    // is refused before the code is redeemed: a real callback, unused.
    browser.goto(&gw.url("/a/page")).await.unwrap();
    at_provider_sign_in(&browser, &a).await;
    let pending = browser
        .get_named_cookie(PENDING_COOKIE)
        .await
        .expect("a pending sign-in")
        .value()
        .to_string();
    browser.delete_cookie(PENDING_COOKIE).await.unwrap();
    sign_in_at_provider(&browser, "ada").await;
    let callback = poll(
        PAGE,
        || async { browser.current_url().await.unwrap() },
        |u| u.path() == "/.portero/callback",
    )
    .await;
    assert_eq!(callback.path(), "/.portero/callback", "{callback}");
    let query: Vec<(String, String)> = callback.query_pairs().into_owned().collect();
    eprintln!("[mix-up] the callback from A: {callback}");
    assert!(
        query.iter().any(|(k, v)| k == "iss" && *v == a.issuer),
        "A names itself: {callback}"
    );
    let with_iss = |iss: &str| {
        let mut url = callback.clone();
        url.query_pairs_mut().clear().extend_pairs(
            query
                .iter()
                .map(|(k, v)| (k.as_str(), if k == "iss" { iss } else { v.as_str() })),
        );
        url.to_string()
    };
    let get = |url: String| {
        http.get(url)
            .header("cookie", format!("{PENDING_COOKIE}={pending}"))
            .send()
    };
    let r = get(with_iss(&b.issuer)).await.unwrap();
    let sets: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let (status, body) = answer(r).await;
    eprintln!("[mix-up] the same callback naming B: {status} {body}");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "sign_in_failed", "{body}");
    assert!(
        !sets
            .iter()
            .any(|c| c.starts_with(&format!("{SESSION_COOKIE}="))),
        "{sets:?}"
    );
    assert_eq!(end_sessions(&gw, "issuer=idp_a&sub=ada").await, 0);
    assert_eq!(end_sessions(&gw, "issuer=idp_b&sub=ada").await, 0);

    // The control: the callback as A sent it makes the session.
    let r = get(callback.to_string()).await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/a/page");
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")))
        .expect("a session");
    let id = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let r = http
        .get(gw.url("/a/page"))
        .header("cookie", format!("{SESSION_COOKIE}={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["headers"]["x-user-sub"], "ada");
    // A's session is no key to B's routes.
    assert_eq!(status_with(&http, &gw, "/b/page", &id).await, 401);
    browser.close().await.unwrap();
}

#[tokio::test]
async fn an_id_token_not_yet_valid_or_typed_as_another_token_makes_no_session() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let Some((gw, idp)) = gateway_and_provider(false).await else {
        return;
    };
    let browser = driver.browser(true).await;
    let now = now();
    // (what, the ID token's header and claims changed by, why it is refused)
    for (what, header, claims, refused) in [
        (
            "typed as a logout token",
            json!({ "typ": "logout+jwt" }),
            json!({}),
            Some("its typ is not an ID token's"),
        ),
        (
            "typed as an access token",
            json!({ "typ": "at+jwt" }),
            json!({}),
            Some("its typ is not an ID token's"),
        ),
        (
            "typed as an access token, in full",
            json!({ "typ": "application/at+jwt" }),
            json!({}),
            Some("its typ is not an ID token's"),
        ),
        (
            "valid an hour from now",
            json!({}),
            json!({ "nbf": now + 3600 }),
            Some("it is not valid yet (nbf)"),
        ),
        (
            "valid two minutes from now, past the leeway",
            json!({}),
            json!({ "nbf": now + 120 }),
            Some("it is not valid yet (nbf)"),
        ),
        (
            "typed JWT, valid within the leeway",
            json!({ "typ": "JWT" }),
            json!({ "nbf": now + 5 }),
            None,
        ),
    ] {
        browser.goto(&gw.url("/public/x")).await.unwrap();
        browser.delete_all_cookies().await.unwrap();
        idp.change_next_id_token(header, claims).await;
        let from = log_lines(&gw);
        let url = gw.url("/app/page");
        browser.goto(&url).await.unwrap();
        at_provider_sign_in(&browser, &idp).await;
        sign_in_at_provider(&browser, "ada").await;
        let Some(why) = refused else {
            arrive(&browser, &url).await;
            assert_eq!(shown_echo(&browser).await["headers"]["x-user-sub"], "ada");
            assert!(session_cookie(&browser).await.is_some(), "{what}");
            continue;
        };
        let at = poll(
            PAGE,
            || async { browser.current_url().await.unwrap() },
            |u| u.path() == "/.portero/callback",
        )
        .await;
        assert_eq!(at.path(), "/.portero/callback", "{what}: {at}");
        let shown = browser.source().await.unwrap();
        eprintln!("[id token] {what}: {shown}");
        assert!(shown.contains("sign_in_failed"), "{what}: {shown}");
        assert!(session_cookie(&browser).await.is_none(), "{what}");
        let log: String = gw.log().lines().skip(from).collect::<Vec<_>>().join("\n");
        assert!(
            log.lines()
                .any(|l| l.contains("an ID token was refused") && l.contains(why)),
            "{what}: no reason in the log:\n{log}\nthe provider's: {}",
            idp.log()
        );
        assert_eq!(end_sessions(&gw, "issuer=idp&sub=ada").await, 0, "{what}");
    }
    browser.close().await.unwrap();
}

#[tokio::test]
async fn planted_and_altered_session_cookies_admit_nobody() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let Some((gw, idp)) = gateway_and_provider(false).await else {
        return;
    };
    let http = reqwest::Client::new();
    let browser = driver.browser(true).await;
    let public_page = gw.url("/public/x");

    // A random session cookie planted on the gateway's origin: the browser
    // is sent to the provider.
    browser.goto(&public_page).await.unwrap();
    let planted = random_id();
    browser.add_cookie(session(planted.clone())).await.unwrap();
    let url = gw.url("/app/mine");
    eprintln!("[cookies] planted {SESSION_COOKIE}={planted}; navigate: {url}");
    browser.goto(&url).await.unwrap();
    let at = at_provider_sign_in(&browser, &idp).await;
    eprintln!("[cookies] provider: {at}");
    assert_eq!(status_with(&http, &gw, "/app/mine", &planted).await, 401);
    // Signed in, the browser holds a session of the gateway's making.
    sign_in_at_provider(&browser, "ada").await;
    arrive(&browser, &url).await;
    assert_eq!(shown_echo(&browser).await["headers"]["x-user-sub"], "ada");
    let real = session_cookie(&browser).await.unwrap();
    assert_ne!(real, planted);
    assert_eq!(status_with(&http, &gw, "/app/mine", &planted).await, 401);
    assert_eq!(status_with(&http, &gw, "/app/mine", &real).await, 200);

    // The real cookie altered by one character, in a browser the provider
    // no longer knows either: to the provider.
    let mut altered = real.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    browser.delete_all_cookies().await.unwrap();
    browser.add_cookie(session(altered.clone())).await.unwrap();
    browser.goto(&url).await.unwrap();
    let at = at_provider_sign_in(&browser, &idp).await;
    eprintln!("[cookies] altered {SESSION_COOKIE}={altered}: to {at}");
    assert_eq!(status_with(&http, &gw, "/app/mine", &altered).await, 401);
    assert_eq!(status_with(&http, &gw, "/app/mine", &real).await, 200);

    // Another user's real session planted in the browser, which then
    // signs in as ada: that session ends, ada's is new.
    browser.goto(&public_page).await.unwrap();
    browser.delete_all_cookies().await.unwrap();
    browser.goto(&url).await.unwrap();
    at_provider_sign_in(&browser, &idp).await;
    sign_in_at_provider(&browser, "mallory").await;
    arrive(&browser, &url).await;
    assert_eq!(
        shown_echo(&browser).await["headers"]["x-user-sub"],
        "mallory"
    );
    let mallory = session_cookie(&browser).await.unwrap();
    browser.delete_all_cookies().await.unwrap();
    browser.add_cookie(session(mallory.clone())).await.unwrap();
    let start = gw.url("/.portero/start?rd=/app/mine");
    browser.goto(&start).await.unwrap();
    at_provider_sign_in(&browser, &idp).await;
    sign_in_at_provider(&browser, "ada").await;
    arrive(&browser, &url).await;
    assert_eq!(shown_echo(&browser).await["headers"]["x-user-sub"], "ada");
    let ada = session_cookie(&browser).await.unwrap();
    assert_ne!(ada, mallory);
    let after = status_with(&http, &gw, "/app/mine", &mallory).await;
    eprintln!(
        "[cookies] mallory's session planted, then ada signed in: mallory's answered {after}"
    );
    assert_eq!(after, 401);
    assert_eq!(status_with(&http, &gw, "/app/mine", &ada).await, 200);

    // The ended session's cookie, in a browser the provider no longer
    // knows: to the provider, as without a session.
    let (status, location, body) = navigate_with(&gw, "/app/mine", &mallory).await;
    assert_eq!(
        (status, location.starts_with(&idp.issuer)),
        (302, true),
        "a navigation with the ended session's cookie: {status} {location} {body}"
    );
    browser.delete_all_cookies().await.unwrap();
    browser.add_cookie(session(mallory)).await.unwrap();
    browser.goto(&url).await.unwrap();
    at_provider_sign_in(&browser, &idp).await;
    browser.close().await.unwrap();
}
