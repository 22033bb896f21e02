//! The sign-in page of a `kind = "oauth2"` issuer in a real browser:
//! headless Chromium, driven through WebDriver (chromedriver), types the
//! credentials into the labelled inputs and presses the button; the
//! browser follows the redirects to the client's callback, a small HTTP
//! server on a loopback port of its own that records what arrives. A
//! wrong password, the lockout, the page's accessibility basics and that
//! it needs no JavaScript, that no other site can frame it, the next
//! client's sign-in without typing, and a single-page app on another
//! origin redeeming its code from the page.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the
//! tests are skipped with a message, unless `PORTERO_REQUIRE_BROWSER=1`,
//! where they fail.

use crate::common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::chromium::Driver;
use common::standard::*;
use common::*;
use fantoccini::{Client, Locator};
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

/// A small HTTP server on a loopback port of its own: it answers every
/// request with `html` and records each request's path and query.
struct Site {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Site {
    async fn start(pages: Vec<(&'static str, String)>) -> Site {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let pages = Arc::new(pages);
        let recorder = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (pages, recorder) = (pages.clone(), recorder.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<_>| {
                        let target = req.uri().to_string();
                        recorder.lock().unwrap().push(target.clone());
                        let html = pages
                            .iter()
                            .find(|(path, _)| req.uri().path() == *path)
                            .map(|(_, html)| html.clone())
                            .unwrap_or_else(|| {
                                "<!doctype html><title>back</title><p id=\"arrived\">back at the client</p>"
                                    .to_string()
                            });
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("content-type", "text/html; charset=utf-8")
                                    .body(Full::new(Bytes::from(html)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Site { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests that arrived at `path`, as path and query.
    fn arrived_at(&self, path: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.split('?').next() == Some(path))
            .cloned()
            .collect()
    }
}

/// A second listed client, for signing in to without typing.
const PHOTOS: &str = "photos";

/// The standard issuer with a second public client, its `public_url` the
/// gateway's own (the form posts there, and `iss` names it).
async fn gateway() -> Gateway {
    let body = format!(
        "{}\n[[issuers.app.clients]]\nclient_id = \"{PHOTOS}\"\n\
         redirect_uris = [\"http://127.0.0.1/photos\"]\nscopes = [\"photos:read\"]\n",
        standard_body("")
    );
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    gw
}

/// The authorization request of the notes client, back to `callback`.
fn notes_authorize(gw: &Gateway, callback: &str, challenge: &str) -> String {
    authorize_url_for(
        gw,
        APP,
        callback,
        "openid offline_access notes:read",
        &format!("&nonce=n-456&code_challenge={challenge}"),
    )
}

/// The input the label reading `text` is for.
async fn labelled(browser: &Client, text: &str) -> fantoccini::elements::Element {
    let label = browser
        .find(Locator::XPath(&format!(
            "//label[normalize-space()='{text}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("no label {text:?}: {e}"));
    let id = label
        .attr("for")
        .await
        .unwrap()
        .expect("the label names its input");
    browser
        .find(Locator::Id(&id))
        .await
        .unwrap_or_else(|e| panic!("no input #{id} for the label {text:?}: {e}"))
}

/// Types the credentials into the page's inputs and presses the button.
async fn type_and_submit(browser: &Client, username: &str, password: &str) {
    let user = labelled(browser, "Username").await;
    user.clear().await.unwrap();
    user.send_keys(username).await.unwrap();
    labelled(browser, "Password")
        .await
        .send_keys(password)
        .await
        .unwrap();
    let button = browser
        .find(Locator::XPath("//button[normalize-space()='Sign in']"))
        .await
        .unwrap();
    button.click().await.unwrap();
    // The answer is a new page: until the old one is gone, its alert and
    // inputs are still there to be found (and then go stale mid-read).
    for _ in 0..200 {
        if button.is_displayed().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the page did not change within 10 s of signing in");
}

/// The text of the page's alert, once the page has one.
async fn alert(browser: &Client) -> String {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[role=alert]"))
        .await
        .unwrap_or_else(|e| {
            panic!("no alert on the page: {e}");
        })
        .text()
        .await
        .unwrap()
}

/// A script's value in the current page.
async fn script(browser: &Client, js: &str) -> Value {
    browser.execute(js, vec![]).await.unwrap()
}

/// Waits for the browser to arrive at `path` on `site`: the query it brought.
async fn arrival(
    browser: &Client,
    site: &Site,
    path: &str,
) -> std::collections::HashMap<String, String> {
    let arrived = poll(
        Duration::from_secs(10),
        || async { site.arrived_at(path) },
        |a| !a.is_empty(),
    )
    .await;
    if arrived.is_empty() {
        let at = browser.current_url().await.unwrap();
        let said = match browser.find(Locator::Css("[role=alert]")).await {
            Ok(alert) => alert.text().await.unwrap(),
            Err(_) => browser.source().await.unwrap(),
        };
        panic!("nothing arrived at {path}; the browser is at {at}, saying: {said}");
    }
    assert_eq!(arrived.len(), 1, "at {path}: {arrived:?}");
    let url = site.url(&arrived[0]);
    let shown = poll(
        Duration::from_secs(10),
        || async { browser.current_url().await.unwrap().to_string() },
        |u| *u == url,
    )
    .await;
    assert_eq!(shown, url, "the browser ends at the client's redirect URI");
    query_of(&url)
}

/// The browser's session cookie's name for the issuer `app` on plain http.
const SSO_COOKIE: &str = "portero-sso-app";

#[tokio::test]
async fn typed_credentials_bring_the_browser_back_to_the_client_and_the_next_client_needs_no_typing(
) {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let gw = gateway().await;
    let client = Site::start(vec![]).await;
    let callback = client.url("/callback");
    // No page may run a script: the page must work without one.
    let browser = driver.browser(false).await;
    let (verifier, challenge) = pkce();
    browser
        .goto(&notes_authorize(&gw, &callback, &challenge))
        .await
        .unwrap();
    type_and_submit(&browser, USER, USER_PASSWORD).await;
    let q = arrival(&browser, &client, "/callback").await;
    assert_eq!(q["state"], "s-123");
    assert_eq!(q["iss"], gw.url("/oauth2/app"));
    let (status, tokens) = redeem_for(&gw, APP, &callback, &q["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        (access["sub"].as_str(), access["client_id"].as_str()),
        (Some(USER), Some(APP))
    );
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-456");
    assert!(tokens["refresh_token"].as_str().is_some(), "{tokens}");

    // Another client of the issuer: straight back with a code, no page.
    let photos = client.url("/photos");
    let (verifier, challenge) = pkce();
    browser
        .goto(&authorize_url_for(
            &gw,
            PHOTOS,
            &photos,
            "openid photos:read",
            &format!("&code_challenge={challenge}"),
        ))
        .await
        .unwrap();
    let q = arrival(&browser, &client, "/photos").await;
    assert_eq!(q["iss"], gw.url("/oauth2/app"));
    let (status, tokens) = redeem_for(&gw, PHOTOS, &photos, &q["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        (access["sub"].as_str(), access["client_id"].as_str()),
        (Some(USER), Some(PHOTOS))
    );
    let second = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(second["sid"], id["sid"], "the same sign-on session");
    browser.close().await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_shows_the_page_again_with_an_alert_and_the_username_kept() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let gw = gateway().await;
    let client = Site::start(vec![]).await;
    let browser = driver.browser(true).await;
    let (_, challenge) = pkce();
    browser
        .goto(&notes_authorize(&gw, &client.url("/callback"), &challenge))
        .await
        .unwrap();
    type_and_submit(&browser, USER, "not the password").await;
    assert_eq!(alert(&browser).await, "Wrong username or password.");
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/oauth2/app/sign-in",
        "the page again, where the form posted"
    );
    let kept = labelled(&browser, "Username").await;
    assert_eq!(kept.prop("value").await.unwrap().as_deref(), Some(USER));
    let password = labelled(&browser, "Password").await;
    assert_eq!(password.prop("value").await.unwrap().as_deref(), Some(""));
    assert_eq!(
        script(&browser, "return document.activeElement.id").await,
        "password",
        "the focus is where the user types next"
    );
    assert!(client.arrived_at("/callback").is_empty());
    browser.close().await.unwrap();
}

#[tokio::test]
async fn after_three_wrong_passwords_even_the_right_one_is_refused() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let gw = gateway().await;
    let client = Site::start(vec![]).await;
    let browser = driver.browser(true).await;
    let (_, challenge) = pkce();
    browser
        .goto(&notes_authorize(&gw, &client.url("/callback"), &challenge))
        .await
        .unwrap();
    // `max_failures = 3`: each wrong password on the page it brought back.
    for attempt in 1..=3 {
        type_and_submit(&browser, USER, &format!("wrong {attempt}")).await;
        assert_eq!(
            alert(&browser).await,
            "Wrong username or password.",
            "attempt {attempt}"
        );
    }
    type_and_submit(&browser, USER, USER_PASSWORD).await;
    assert_eq!(
        alert(&browser).await,
        "Too many failed attempts. Try again later."
    );
    assert!(client.arrived_at("/callback").is_empty());
    // The lock is the user's: another user signs in on the same page.
    type_and_submit(&browser, "bob", "bob's password").await;
    arrival(&browser, &client, "/callback").await;
    browser.close().await.unwrap();
}

#[tokio::test]
async fn the_page_is_labelled_focused_and_needs_no_javascript() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let gw = gateway().await;
    let browser = driver.browser(false).await;
    let (_, challenge) = pkce();
    let url = notes_authorize(&gw, "http://127.0.0.1:9/callback", &challenge);
    browser.goto(&url).await.unwrap();
    assert_eq!(
        script(&browser, "return document.documentElement.lang").await,
        "en"
    );
    assert_ne!(browser.title().await.unwrap(), "");
    // Every input a user sees has a label that names it, with text.
    let inputs = script(
        &browser,
        "return [...document.querySelectorAll('input:not([type=hidden])')].map(i => {\
           const label = i.id ? document.querySelector(`label[for=\"${i.id}\"]`) : null;\
           return { id: i.id, label: label ? label.textContent.trim() : null };\
         })",
    )
    .await;
    assert_eq!(
        inputs,
        json!([
            { "id": "username", "label": "Username" },
            { "id": "password", "label": "Password" },
        ])
    );
    labelled(&browser, "Username").await;
    labelled(&browser, "Password").await;
    let focused = poll(
        Duration::from_secs(5),
        || {
            script(
                &browser,
                "return document.activeElement && document.activeElement.id",
            )
        },
        |id| id == "username",
    )
    .await;
    assert_eq!(focused, "username", "the first focus is on the username");
    // Nothing to run: no script, no handler; a plain form that posts.
    let scripted = script(
        &browser,
        "return { scripts: document.scripts.length,\
                  handlers: [...document.querySelectorAll('*')].flatMap(e =>\
                    [...e.attributes].map(a => a.name).filter(n => n.startsWith('on'))),\
                  form: [document.forms.length, document.forms[0].method, document.forms[0].action],\
                  submit: document.querySelector('button[type=submit]').textContent }",
    )
    .await;
    assert_eq!(
        scripted,
        json!({
            "scripts": 0,
            "handlers": [],
            "form": [1, "post", gw.url("/oauth2/app/sign-in")],
            "submit": "Sign in",
        })
    );
    // And the policy would stop one: scripts fall under default-src 'none'.
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    browser.close().await.unwrap();
}

#[tokio::test]
async fn another_site_cannot_frame_the_page() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let gw = gateway().await;
    let (_, challenge) = pkce();
    let url = notes_authorize(&gw, "http://127.0.0.1:9/callback", &challenge);
    // The control: a page of a third origin with the same input, which
    // may be framed, must be seen through the frame.
    let control = Site::start(vec![(
        "/form",
        "<!doctype html><html lang=\"en\"><title>control</title>\
         <label for=\"username\">Username</label><input id=\"username\"></html>"
            .to_string(),
    )])
    .await;
    let framing = Site::start(vec![(
        "/",
        format!(
            "<!doctype html><html lang=\"en\"><title>framing</title>\
             <iframe id=\"signin\" src=\"{}\" onload=\"window.signinLoaded = true\"></iframe>\
             <iframe id=\"control\" src=\"{}\" onload=\"window.controlLoaded = true\"></iframe></html>",
            url.replace('&', "&amp;"),
            control.url("/form"),
        ),
    )])
    .await;
    let browser = driver.browser(true).await;
    browser.goto(&framing.url("/")).await.unwrap();
    let loaded = poll(
        Duration::from_secs(10),
        || {
            script(
                &browser,
                "return [!!window.signinLoaded, !!window.controlLoaded]",
            )
        },
        |v| *v == json!([true, true]),
    )
    .await;
    assert_eq!(loaded, json!([true, true]));
    // The gateway did answer the frame's request with the page...
    let labels = [
        ("issuer", "app"),
        ("endpoint", "authorize"),
        ("status", "200"),
    ];
    assert_eq!(
        gw.metric("portero_oauth2_requests_total", &labels).await,
        1.0
    );
    // ...which the browser would not show in it.
    browser
        .find(Locator::Id("control"))
        .await
        .unwrap()
        .enter_frame()
        .await
        .unwrap();
    browser
        .find(Locator::Id("username"))
        .await
        .expect("the control frame shows its form");
    browser.enter_parent_frame().await.unwrap();
    browser
        .find(Locator::Id("signin"))
        .await
        .unwrap()
        .enter_frame()
        .await
        .unwrap();
    let inside = browser.source().await.unwrap_or_default();
    assert!(
        browser.find(Locator::Id("username")).await.is_err(),
        "the sign-in form rendered in another site's frame: {inside}"
    );
    browser.enter_parent_frame().await.unwrap();
    // What stops it, in both forms browsers know.
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    browser.close().await.unwrap();
}

#[tokio::test]
async fn a_sign_on_session_takes_the_browser_to_the_next_client_without_the_page() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let gw = gateway().await;
    let client = Site::start(vec![]).await;
    let photos = client.url("/photos");
    let (verifier, challenge) = pkce();
    let photos_authorize = authorize_url_for(
        &gw,
        PHOTOS,
        &photos,
        "openid photos:read",
        &format!("&code_challenge={challenge}"),
    );
    let browser = driver.browser(true).await;
    // Not signed in: the page.
    browser.goto(&photos_authorize).await.unwrap();
    labelled(&browser, "Username").await;
    assert!(client.arrived_at("/photos").is_empty());
    // Signed in to the notes client by its form, posted without a browser
    // (a post from Chromium is refused, see the ignored tests); the
    // session's cookie is then the browser's.
    let mut signed_in = Browser::default();
    sign_in(&gw, &mut signed_in, &pkce().1).await;
    let (name, value) = signed_in
        .cookies
        .iter()
        .find(|(n, _)| n == SSO_COOKIE)
        .expect("a sign-on session cookie")
        .clone();
    browser.goto(&gw.url("/public")).await.unwrap();
    browser
        .execute(
            "document.cookie = arguments[0]",
            vec![json!(format!("{name}={value}; path=/; samesite=lax"))],
        )
        .await
        .unwrap();
    browser.goto(&photos_authorize).await.unwrap();
    let q = arrival(&browser, &client, "/photos").await;
    assert_eq!(q["state"], "s-123");
    assert_eq!(q["iss"], gw.url("/oauth2/app"));
    let (status, tokens) = redeem_for(&gw, PHOTOS, &photos, &q["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        (access["sub"].as_str(), access["client_id"].as_str()),
        (Some(USER), Some(PHOTOS))
    );
    browser.close().await.unwrap();
}

/// A single-page app's callback: it redeems the code from the page, as a
/// browser app does (the verifier kept in `sessionStorage` by `/start`),
/// then asks userinfo with the access token (a preflighted request), and
/// shows what it got in `#out`.
const SPA_CALLBACK: &str = r#"<!doctype html><title>spa</title><pre id="out">waiting</pre>
<script>
(async () => {
  const out = document.getElementById("out");
  const c = JSON.parse(sessionStorage.getItem("spa"));
  const code = new URLSearchParams(location.search).get("code");
  try {
    const r = await fetch(c.token, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code", code, redirect_uri: c.redirect_uri,
        client_id: c.client_id, code_verifier: c.verifier,
      }),
    });
    const tokens = await r.json();
    const u = await fetch(c.userinfo, { headers: { authorization: "Bearer " + tokens.access_token } });
    out.textContent = JSON.stringify({ status: r.status, userinfo: await u.json(), code });
  } catch (e) {
    out.textContent = JSON.stringify({ error: String(e), code });
  }
})();
</script>"#;

/// What the single-page app at `site` shows once it has signed in at `gw`
/// (typing the credentials when the page asks) and tried its code.
async fn spa_sign_in(browser: &Client, gw: &Gateway, site: &Site, typing: bool) -> (Value, String) {
    let (verifier, challenge) = pkce();
    let callback = site.url("/callback");
    browser.goto(&site.url("/start")).await.unwrap();
    let settings = json!({
        "token": gw.url("/oauth2/app/token"),
        "userinfo": gw.url("/oauth2/app/userinfo"),
        "redirect_uri": callback,
        "client_id": APP,
        "verifier": verifier,
    });
    let set = format!("sessionStorage.setItem('spa', JSON.stringify({settings}));");
    script(browser, &set).await;
    browser
        .goto(&notes_authorize(gw, &callback, &challenge))
        .await
        .unwrap();
    if typing {
        type_and_submit(browser, USER, USER_PASSWORD).await;
    }
    let shown = poll(
        Duration::from_secs(10),
        || async {
            let read = "const o = document.getElementById('out'); return o ? o.textContent : '';";
            browser
                .execute(read, vec![])
                .await
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        },
        |text| text.starts_with('{'),
    )
    .await;
    let shown: Value = serde_json::from_str(&shown)
        .unwrap_or_else(|e| panic!("the page shows no answer ({e}): {shown:?}"));
    (shown, verifier)
}

#[tokio::test]
async fn a_page_on_another_origin_redeems_its_code_where_the_issuers_cors_allows_it() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let pages = || vec![("/callback", SPA_CALLBACK.to_string())];
    let (allowed, refused) = (Site::start(pages()).await, Site::start(pages()).await);
    let body = standard_body_with_cors(&allowed.url(""));
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    let browser = driver.browser(true).await;
    // A page on an origin the issuer's cors does not name: the browser
    // would never show it the answer, so the code is not spent.
    let (shown, verifier) = spa_sign_in(&browser, &gw, &refused, true).await;
    assert!(shown["error"].is_string(), "{shown}");
    let code = shown["code"].as_str().unwrap();
    let callback = refused.url("/callback");
    let (status, tokens) = redeem_for(&gw, APP, &callback, code, &verifier).await;
    assert_eq!(
        status, 200,
        "the code was spent by a request the page never saw: {tokens}"
    );
    // On the origin it names, the page redeems its code and reads userinfo
    // (the sign-on session brings it straight back).
    let (shown, _) = spa_sign_in(&browser, &gw, &allowed, false).await;
    assert_eq!(shown["status"], 200, "{shown}");
    assert_eq!(shown["userinfo"]["sub"], USER, "{shown}");
    assert_eq!(shown["userinfo"]["team"], "core", "{shown}");
    browser.close().await.unwrap();
}

/// Saves the page's screenshot as `name` in `PORTERO_SCREENSHOTS`, where
/// that names a directory (to look at the pages); nothing otherwise.
async fn screenshot(browser: &Client, name: &str) {
    let Ok(dir) = std::env::var("PORTERO_SCREENSHOTS") else {
        return;
    };
    let png = browser.screenshot().await.unwrap();
    std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
}

/// Opens `url`, saves its screenshot as `shot`, and returns its text.
async fn shown(browser: &Client, url: &str, shot: &str) -> String {
    browser.goto(url).await.unwrap();
    screenshot(browser, shot).await;
    let body = browser.find(Locator::Css("body")).await.unwrap();
    body.text().await.unwrap()
}

/// Presses the page's button named `name` (`continue`, `deny`, `switch`)
/// and waits for the page to go.
async fn press(browser: &Client, name: &str) {
    let button = browser
        .find(Locator::Css(&format!("button[name={name}]")))
        .await
        .unwrap_or_else(|e| panic!("no {name} button: {e}"));
    button.click().await.unwrap();
    for _ in 0..200 {
        if button.is_displayed().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the page did not change within 10 s of pressing {name}");
}

#[tokio::test]
async fn the_consent_page_allows_denies_and_signs_in_someone_else() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let documents = common::documents::DocumentServer::start().await;
    let mcp = "\n[[routes]]\nname = \"mcp\"\npath = \"/mcp\"\nupstream = \"echo\"\n\
               resource_metadata = true\nscopes = [\"mcp:read\", \"mcp:write\"]\n";
    let settings = format!(
        "registration = \"open\"\nconsent_ttl = \"1h\"\n\
         scope_descriptions = {{ \"mcp:read\" = \"Read your notes\", \"mcp:write\" = \"Change and delete your notes\" }}\n\
         client_metadata_documents = true\nclient_metadata_private_hosts = [\"localhost\"]\n\
         client_metadata_ca_file = \"{}\"\n",
        documents.ca.cert_file.display()
    );
    let body = format!("{}{mcp}", standard_body(&settings));
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    let site = Site::start(vec![]).await;
    let callback = site.url("/callback");
    let metadata = json!({"redirect_uris": [callback], "client_name": "Notes Agent"});
    let agent = register_client(&gw, metadata).await;
    let asking = |client: &str, scope: &str| {
        let (_, challenge) = pkce();
        authorize_url_for(
            &gw,
            client,
            &callback,
            scope,
            &format!("&code_challenge={challenge}"),
        )
    };
    let browser = driver.browser(false).await;

    // Signing in on the page is allowing what it lists.
    let text = shown(&browser, &asking(&agent, "mcp:read"), "consent-sign-in.png").await;
    assert!(text.contains("Read your notes"), "{text}");
    type_and_submit(&browser, USER, USER_PASSWORD).await;
    assert!(arrival(&browser, &site, "/callback")
        .await
        .contains_key("code"));

    // A step up: only what is new is asked; Deny goes back as access_denied.
    let text = shown(
        &browser,
        &asking(&agent, "mcp:read mcp:write"),
        "consent-step-up.png",
    )
    .await;
    let (asked, before) = text.split_once("You allowed it before to:").expect(&text);
    assert!(asked.contains("Change and delete your notes") && !asked.contains("Read your notes"));
    assert!(before.contains("Read your notes"), "{text}");
    press(&browser, "deny").await;
    let q = poll(
        Duration::from_secs(10),
        || async { site.arrived_at("/callback") },
        |a| a.len() == 2,
    )
    .await;
    let denied = query_of(&site.url(&q[1]));
    assert_eq!(denied["error"], "access_denied", "{denied:?}");
    assert_eq!(denied["state"], "s-123");
    assert!(!denied.contains_key("code"));
    assert_eq!(denied["iss"], gw.url("/oauth2/app"));

    // Not you? The page asks who is there; bob signs in, and the code is his.
    browser.goto(&asking(&agent, "mcp:write")).await.unwrap();
    press(&browser, "switch").await;
    screenshot(&browser, "consent-not-you.png").await;
    let (verifier, challenge) = pkce();
    let url = authorize_url_for(
        &gw,
        &agent,
        &callback,
        "mcp:write",
        &format!("&code_challenge={challenge}"),
    );
    browser.goto(&url).await.unwrap();
    type_and_submit(&browser, "bob", "bob's password").await;
    let q = poll(
        Duration::from_secs(10),
        || async { site.arrived_at("/callback") },
        |a| a.len() == 3,
    )
    .await;
    let code = query_of(&site.url(&q[2]))["code"].clone();
    let (status, tokens) = redeem_for(&gw, &agent, &callback, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["sub"],
        "bob"
    );

    // A client named by its metadata document: its host first, its name its own claim.
    let document_client = documents.url("/notes-agent.json");
    let document = json!({
        "client_id": document_client,
        "client_name": "Notes Agent",
        "redirect_uris": [callback],
    });
    documents.set(
        "/notes-agent.json",
        common::documents::Answer::json(document.to_string()),
    );
    let text = shown(
        &browser,
        &asking(&document_client, "mcp:read"),
        "consent-metadata-document.png",
    )
    .await;
    assert!(
        text.contains(&format!(
            "An application published by localhost:{}",
            documents.addr.port()
        )),
        "{text}"
    );
    assert!(
        text.contains("\"Notes Agent\" (the name the application gives itself)"),
        "{text}"
    );
    browser.close().await.unwrap();
}
