//! Passkeys in a real browser: headless Chromium with a WebDriver virtual
//! authenticator registers a passkey on the account page of one instance,
//! signs out, and signs in with the passkey alone (no username typed) at
//! the other instance sharing Redis, through one name as a load balancer
//! gives it (a forwarder in front of both, switched between them). A copy
//! of the authenticator (its key, with an older sign count) is refused and
//! logged as a possible clone.
//!
//! Needs Debian's `chromium` and `chromium-driver`, and Redis (see
//! `common/redis.rs`); skipped with a message without them, unless
//! `PORTERO_REQUIRE_BROWSER=1` / `PORTERO_REQUIRE_REDIS=1`.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::chromium::{virtual_authenticator, Driver, SessionCall};
use common::redis;
use common::shared_store::prefix;
use common::standard::*;
use common::*;
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

/// One name in front of two instances: new connections go to the port it
/// is switched to, and switching ends the connections already open.
struct Forwarder {
    port: u16,
    target: Arc<Mutex<u16>>,
    open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Forwarder {
    async fn start(target: u16) -> Forwarder {
        // Both loopbacks: a browser may try `localhost` at ::1 first.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let v6 = tokio::net::TcpListener::bind(("::1", port)).await.ok();
        let target = Arc::new(Mutex::new(target));
        let open = Arc::new(Mutex::new(Vec::new()));
        for listener in std::iter::once(listener).chain(v6) {
            let (to, handles) = (target.clone(), open.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let port = *to.lock().unwrap();
                    let handle = tokio::spawn(async move {
                        let outbound = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
                        if let Ok(mut outbound) = outbound {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    handles.lock().unwrap().push(handle);
                }
            });
        }
        Forwarder { port, target, open }
    }

    fn switch(&self, port: u16) {
        *self.target.lock().unwrap() = port;
        for handle in self.open.lock().unwrap().drain(..) {
            handle.abort();
        }
    }
}

async fn screenshot(browser: &Client, name: &str) {
    let Ok(dir) = std::env::var("PORTERO_SCREENSHOTS") else {
        return;
    };
    let png = browser.screenshot().await.unwrap();
    std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
}

/// The page's text; empty while a page is being replaced.
async fn text(browser: &Client) -> String {
    match browser.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until the page's text has `needle`; the text.
async fn until_text(browser: &Client, needle: &str) -> String {
    for _ in 0..100 {
        let shown = text(browser).await;
        if shown.contains(needle) {
            return shown;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {needle:?} in:\n{}", text(browser).await);
}

async fn call(browser: &Client, method: http::Method, path: String, body: Option<Value>) -> Value {
    browser
        .issue_cmd(SessionCall { method, path, body })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_registered_on_one_instance_signs_in_alone_on_the_other() {
    let Some(url) = redis::shared() else { return };
    let Some(driver) = Driver::start().await else {
        return;
    };
    let front = Forwarder::start(0).await;
    let public = format!("http://localhost:{}", front.port);
    let config = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{}\"\ntimeout = \"300ms\"\n\n{}\n\
         [issuers.app.sign_in]\npasskeys = true\nsecond_factor = \"optional\"\ntitle = \"Notes\"\n",
        prefix(),
        standard_body("")
    );
    let server = format!("public_url = \"{public}\"");
    let (a, b) = futures_util::join!(
        Gateway::start_with_server_settings(&server, &config),
        Gateway::start_with_server_settings(&server, &config)
    );
    front.switch(a.port);
    let browser = driver.browser(true).await;
    let authenticator = virtual_authenticator(&browser).await;

    // On A: the account page asks for a sign-in first, then offers passkeys.
    browser
        .goto(&format!("{public}/oauth2/app/account"))
        .await
        .unwrap();
    let page = until_text(&browser, "Username").await;
    assert!(page.contains("Sign in with a passkey"), "{page}");
    type_into(&browser, "username", USER).await;
    type_into(&browser, "password", USER_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    let page = until_text(&browser, "Your account").await;
    assert!(page.contains("You have no passkeys."), "{page}");
    screenshot(&browser, "account-before.png").await;
    browser
        .find(Locator::Id("name"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    type_into(&browser, "name", "Laptop").await;
    click(&browser, "button[data-webauthn=create]").await;
    let page = until_text(&browser, "was added").await;
    assert!(page.contains("Laptop, added"), "{page}");
    screenshot(&browser, "account-passkey-added.png").await;
    let held = call(
        &browser,
        http::Method::GET,
        format!("webauthn/authenticator/{authenticator}/credentials"),
        None,
    )
    .await;
    let credential = held[0].clone();
    assert_eq!(
        credential["isResidentCredential"], true,
        "discoverable: {held}"
    );
    assert_eq!(credential["rpId"], "localhost");

    // Signed out; the next request reaches B. A client's sign-in there, by
    // the passkey alone.
    browser.delete_all_cookies().await.unwrap();
    front.switch(b.port);
    let (verifier, challenge) = pkce();
    let authorize = authorize_url(&b, &challenge, "").replace(&b.url(""), &public);
    browser.goto(&authorize).await.unwrap();
    until_text(&browser, "Sign in with a passkey").await;
    screenshot(&browser, "sign-in-passkey.png").await;
    click(&browser, "button[data-webauthn=get]").await;
    let q = until_called_back(&browser).await;
    let (status, tokens) = redeem(&b, &q["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["sub"], USER);
    assert_eq!(access["amr"], json!(["hwk", "mfa"]));
    assert_eq!(access["acr"], "urn:portero:acr:phr");

    // A password first: the passkey is then the second step, and, with
    // no authenticator app, the step asks for no code.
    browser.goto(&format!("{public}/public")).await.unwrap();
    browser.delete_all_cookies().await.unwrap();
    let (verifier, challenge) = pkce();
    let second = authorize_url(&b, &challenge, "").replace(&b.url(""), &public);
    browser.goto(&second).await.unwrap();
    until_text(&browser, "Username").await;
    type_into(&browser, "username", USER).await;
    type_into(&browser, "password", USER_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    let page = until_text(&browser, "Use your passkey").await;
    assert!(!page.contains("Code from your authenticator app"), "{page}");
    screenshot(&browser, "ask-passkey.png").await;
    click(&browser, "button[data-webauthn=get]").await;
    let q = until_called_back(&browser).await;
    let (status, tokens) = redeem(&b, &q["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["amr"],
        json!(["hwk", "mfa"])
    );
    // Signed in with the passkey, the account page changes it: renamed.
    browser
        .goto(&format!("{public}/oauth2/app/account"))
        .await
        .unwrap();
    until_text(&browser, "Your account").await;
    browser
        .find(Locator::Id("rename-0"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    type_into(&browser, "rename-0", "Work laptop").await;
    click(&browser, "#rename-0 + button").await;
    let page = until_text(&browser, "was renamed").await;
    assert!(page.contains("Work laptop, added"), "{page}");

    // A copy of the authenticator: the same key and credential, an older
    // sign count. Its assertion is refused, and said.
    call(
        &browser,
        http::Method::DELETE,
        format!("webauthn/authenticator/{authenticator}"),
        None,
    )
    .await;
    let copy = virtual_authenticator(&browser).await;
    let mut cloned = credential.clone();
    cloned["signCount"] = json!(0);
    call(
        &browser,
        http::Method::POST,
        format!("webauthn/authenticator/{copy}/credential"),
        Some(cloned),
    )
    .await;
    // Signed out again (cookies are deleted for the page's own site).
    browser.goto(&format!("{public}/public")).await.unwrap();
    browser.delete_all_cookies().await.unwrap();
    browser.goto(&authorize).await.unwrap();
    until_text(&browser, "Sign in with a passkey").await;
    click(&browser, "button[data-webauthn=get]").await;
    let page = until_text(&browser, "could not sign you in").await;
    assert!(page.contains("Username"), "the form again: {page}");
    let log = b.log_with("passkey sign-in refused").await;
    assert!(log.contains("cloned"), "{log}");
    let _ = browser.close().await;
}

/// Clicks the element `css`.
async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Types `text` into the element with `id`.
async fn type_into(browser: &Client, id: &str, text: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// Waits until the browser is sent to the client's callback; its query.
async fn until_called_back(browser: &Client) -> std::collections::HashMap<String, String> {
    for _ in 0..100 {
        let at = browser.current_url().await.unwrap().to_string();
        if at.starts_with(CALLBACK) {
            return query_of(&at);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never sent back: {}", text(browser).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sets_up_a_one_time_code_in_the_browser_and_signs_in_with_it() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let front = Forwarder::start(0).await;
    let public = format!("http://localhost:{}", front.port);
    let config = format!(
        "{}\n[issuers.app.sign_in]\nsecond_factor = \"required\"\ntitle = \"Notes\"\n",
        standard_body("")
    );
    let gw =
        Gateway::start_with_server_settings(&format!("public_url = \"{public}\""), &config).await;
    front.switch(gw.port);
    let browser = driver.browser(true).await;
    let (verifier, challenge) = pkce();
    let authorize = authorize_url(&gw, &challenge, "").replace(&gw.url(""), &public);
    browser.goto(&authorize).await.unwrap();
    until_text(&browser, "Username").await;
    type_into(&browser, "username", USER).await;
    type_into(&browser, "password", USER_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    let page = until_text(&browser, "Set up two-step verification").await;
    screenshot(&browser, "enrol.png").await;
    let secret = browser
        .find(Locator::Id("secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&secret));
    type_into(&browser, "code", &pyotp(&secret, 0)).await;
    click(&browser, "button[type=submit]").await;
    let page = until_text(&browser, "Save your recovery codes").await;
    screenshot(&browser, "recovery-codes.png").await;
    let codes = page
        .lines()
        .filter(|l| l.len() == 19 && l.matches('-').count() == 3)
        .count();
    assert_eq!(codes, 10, "ten codes of four groups: {page}");
    click(&browser, "button[name=continue]").await;
    let q = until_called_back(&browser).await;
    let (status, tokens) = redeem(&gw, &q["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        claims_of(tokens["id_token"].as_str().unwrap())["acr"],
        "urn:portero:acr:mfa"
    );

    // A fresh sign-in asked for: the password, then a code from the app.
    browser
        .goto(&format!("{authorize}&prompt=login"))
        .await
        .unwrap();
    until_text(&browser, "Username").await;
    type_into(&browser, "username", USER).await;
    type_into(&browser, "password", USER_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    until_text(&browser, "Two-step verification").await;
    screenshot(&browser, "ask.png").await;
    type_into(&browser, "code", &pyotp(&secret, 1)).await;
    click(&browser, "button[type=submit]").await;
    let q = until_called_back(&browser).await;
    assert!(q.contains_key("code"));
    let _ = browser.close().await;
}
