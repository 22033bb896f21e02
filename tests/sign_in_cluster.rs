//! Two instances of a `kind = "oauth2"` issuer on one real Redis: the
//! sign-on session, authorization codes, registered clients and the
//! logout are the store's, so whichever instance a browser reaches next
//! knows them. Both instances have the same `server.public_url` (the
//! harness's `http://gateway.test`, as a load balancer's name would be):
//! one issuer identifier, and their pages' forms name it; the tests post
//! them to one instance or the other ([`on`]).
//!
//! Redis: see `common/redis.rs` (skipped with a message when none can be
//! had, failing instead under `PORTERO_REQUIRE_REDIS=1`).

use crate::common;

use std::time::Duration;

use common::redis;
use common::shared_store::{get, prefix, until_refused};
use common::standard::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The issuer identifier both instances share.
const ISS: &str = "http://gateway.test/oauth2/app";

/// Two instances of the standard issuer (with `extra` in its `oauth2`
/// table) on the Redis at `url`, under keys of their own.
async fn pair(url: &str, extra: &str) -> (Gateway, Gateway) {
    let config = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{}\"\ntimeout = \"300ms\"\n\n{}",
        prefix(),
        standard_body(extra)
    );
    futures_util::join!(Gateway::start(&config), Gateway::start(&config))
}

/// The query of a `303`'s `Location`.
fn redirected(
    (status, location, body): (u16, Option<String>, String),
) -> std::collections::HashMap<String, String> {
    assert_eq!(status, 303, "{body}");
    query_of(&location.expect("a Location"))
}

async fn refresh(gw: &Gateway, client: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_on_one_instance_is_a_session_on_the_other() {
    let Some(url) = redis::shared() else { return };
    let (a, b) = pair(&url, "").await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    sign_in(&a, &mut browser, &challenge).await;
    // B has never seen this browser: a code at once, under the one issuer.
    let q = redirected(browser.get(&authorize_url(&b, &challenge, "")).await);
    assert_eq!((q["state"].as_str(), q["iss"].as_str()), ("s-123", ISS));
    let (status, tokens) = redeem(&b, &q["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["sub"],
        USER
    );
    // Without the cookie, B shows the page.
    let (status, _, page) = Browser::default()
        .get(&authorize_url(&b, &challenge, ""))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("<label for=\"password\">"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_from_one_instance_is_redeemed_on_the_other_and_its_replay_revokes_everywhere() {
    let Some(url) = redis::shared() else { return };
    let (a, b) = pair(&url, "").await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let code = sign_in(&a, &mut browser, &challenge).await;
    let (status, tokens) = redeem(&b, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access)["iss"], ISS);
    for gw in [&a, &b] {
        assert_eq!(get(gw, access).await, StatusCode::OK);
    }
    // Used once, on B: the replay on A is refused...
    let (status, again) = redeem(&a, &code, &verifier).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant")),
        "{again}"
    );
    // ...and what the first use gave is revoked on both.
    for gw in [&a, &b] {
        until_refused(gw, access, Duration::from_secs(1)).await;
    }
    let (status, body) = refresh(&b, APP, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "the refresh family too: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_registered_on_one_instance_signs_in_on_the_other_and_always_asks() {
    let Some(url) = redis::shared() else { return };
    let (a, b) = pair(&url, "registration = \"open\"").await;
    let r = reqwest::Client::new()
        .post(a.url("/oauth2/app/register"))
        .json(&json!({ "redirect_uris": ["http://127.0.0.1/cb"], "client_name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let registered: Value = r.json().await.unwrap();
    let client_id = registered["client_id"].as_str().unwrap().to_string();
    let (verifier, challenge) = pkce();
    let start = |gw: &Gateway, extra: &str| {
        authorize_url_for(
            gw,
            &client_id,
            "http://127.0.0.1/cb",
            "openid",
            &format!("&code_challenge={challenge}{extra}"),
        )
    };
    // B knows it: a stranger gets the sign-in form.
    let (status, _, page) = Browser::default().get(&start(&b, "")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<label for=\"password\">"), "{page}");
    // Signed in on A: B still shows the page, offering to go on.
    let mut browser = Browser::default();
    sign_in(&a, &mut browser, &pkce().1).await;
    let (status, _, page) = browser.get(&start(&b, "")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("You are signed in as <strong>{USER}</strong>")),
        "{page}"
    );
    assert!(page.contains(">Allow</button>"), "{page}");
    assert!(!page.contains("type=\"password\""), "{page}");
    // Without the page, it may not go on: consent_required, said on the
    // page (its redirect URI is anyone's choice: no automatic redirect).
    let (status, location, shown) = browser.get(&start(&b, "&prompt=none")).await;
    assert_eq!((status, location), (400, None), "{shown}");
    assert!(
        shown.contains("the user must confirm this client"),
        "{shown}"
    );
    // "Allow" on B's page, posted to A: the code, redeemed on B.
    let (action, mut fields) = form_of(&page);
    fields.push(("continue".into(), "1".into()));
    let q = redirected(browser.post_form(&on(&a, &action), &fields).await);
    assert_eq!((q["state"].as_str(), q["iss"].as_str()), ("s-123", ISS));
    let (status, tokens) =
        redeem_for(&b, &client_id, "http://127.0.0.1/cb", &q["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        (access["sub"].as_str(), access["client_id"].as_str()),
        (Some(USER), Some(client_id.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_on_one_instance_ends_the_session_on_the_other() {
    let Some(url) = redis::shared() else { return };
    let (a, b) = pair(&url, "logout_revokes_tokens = true").await;
    let end_session =
        |gw: &Gateway, query: &str| gw.url(&format!("/oauth2/app/end_session{query}"));
    let with_cookies = |cookies: &[(String, String)]| Browser {
        cookies: cookies.to_vec(),
        ..Browser::default()
    };

    // With an ID token hint (the token from B, the logout on A).
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let code = sign_in(&a, &mut browser, &challenge).await;
    let (status, tokens) = redeem(&b, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    // Until then the session holds on B, and its refresh token is good on A.
    let q = redirected(browser.get(&authorize_url(&b, &challenge, "")).await);
    assert!(q.contains_key("code"), "{q:?}");
    let (status, rotated) = refresh(&a, APP, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{rotated}");
    let kept = browser.cookies.clone();
    let hint = tokens["id_token"].as_str().unwrap();
    let (status, _, page) = browser
        .get(&end_session(&a, &format!("?id_token_hint={hint}")))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You are signed out."), "{page}");
    // The old cookie on B: no session, the page.
    let (status, _, page) = with_cookies(&kept)
        .get(&authorize_url(&b, &challenge, ""))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<label for=\"password\">"), "{page}");
    // And the tokens of the session are revoked (logout_revokes_tokens).
    let (status, body) = refresh(&b, APP, rotated["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "{body}");

    // Confirmed on the page: asked on B, confirmed on A.
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    sign_in(&b, &mut browser, &challenge).await;
    let kept = browser.cookies.clone();
    let (status, _, page) = browser.get(&end_session(&b, "")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Sign out of this site?"), "{page}");
    let (action, fields) = form_of(&page);
    let (status, _, page) = browser.post_form(&on(&a, &action), &fields).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You are signed out."), "{page}");
    assert!(
        !browser.cookies.iter().any(|(n, _)| n == "portero-sso-app"),
        "the cookie is removed: {:?}",
        browser.cookies
    );
    let (status, _, page) = with_cookies(&kept)
        .get(&authorize_url(&b, &challenge, ""))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<label for=\"password\">"), "{page}");
}
