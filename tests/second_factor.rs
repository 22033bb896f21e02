//! A second factor at the sign-in page of a `kind = "oauth2"` issuer: a
//! one-time code enrolled where one is required (its codes computed by
//! pyotp, not by portero), asked after the password, taken once, its
//! wrong guesses locked out like wrong passwords; recovery codes each used
//! once; `amr` and `acr` in the tokens; and the endpoints that take a
//! password alone refused where a second factor is needed.

use crate::common;

use common::standard::*;
use common::*;
use serde_json::{json, Value};

/// The standard issuer with `sign_in`, and a route only a sign-in with
/// two factors opens (a rule on `amr`).
fn body(sign_in: &str) -> String {
    format!(
        "{}\n[[routes]]\nname = \"mfa\"\npath = \"/mfa\"\nupstream = \"echo\"\n\
         rule = '\"mfa\" in claims.amr'\n\n[issuers.app.sign_in]\n{sign_in}\n",
        standard_body("")
    )
}

async fn gateway(sign_in: &str) -> Gateway {
    started_with_public_url(&body(sign_in)).await
}

/// The text of the first element `<tag ...id="id">` of `html`.
fn text_of(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\">")).expect(id) + id.len() + 6;
    html[start..].split('<').next().unwrap().to_string()
}

/// The page's form posted with `extra` fields: (status, location, body).
async fn post_page(
    gw: &Gateway,
    browser: &mut Browser,
    page: &str,
    extra: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let (action, mut fields) = form_of(page);
    fields.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    browser.post_form(&on(gw, &action), &fields).await
}

/// The password typed on a new authorization request's page: the page after it.
async fn password(gw: &Gateway, browser: &mut Browser, challenge: &str) -> (u16, String) {
    password_at(gw, browser, &authorize_url(gw, challenge, "")).await
}

/// The password typed on the page of the authorization request `url`.
async fn password_at(gw: &Gateway, browser: &mut Browser, url: &str) -> (u16, String) {
    let (status, _, page) = browser.get(url).await;
    assert_eq!(status, 200, "{page}");
    let (status, _, next) = post_page(
        gw,
        browser,
        &page,
        &[("username", USER), ("password", USER_PASSWORD)],
    )
    .await;
    (status, next)
}

/// Enrols `USER`'s one-time code where one is required: its secret and
/// the recovery codes shown, and the code the sign-in then gave.
async fn enrol(
    gw: &Gateway,
    browser: &mut Browser,
    challenge: &str,
) -> (String, Vec<String>, String) {
    let (status, page) = password(gw, browser, challenge).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Set up two-step verification"), "{page}");
    assert!(page.contains("<svg"), "the QR code, drawn in the page");
    assert!(page.contains("autocomplete=\"one-time-code\""));
    assert!(
        !browser
            .cookies
            .iter()
            .any(|(n, _)| n.starts_with("portero-sso")),
        "nobody is signed in before the second factor"
    );
    let secret = text_of(&page, "secret");
    // A wrong first code enrols nothing.
    let (status, _, again) = post_page(gw, browser, &page, &[("code", "000000")]).await;
    assert_eq!(status, 401, "{again}");
    assert!(again.contains("That code is not right"));
    let (status, _, shown) = post_page(gw, browser, &again, &[("code", &pyotp(&secret, 0))]).await;
    assert_eq!(status, 200, "{shown}");
    assert!(shown.contains("Save your recovery codes"), "{shown}");
    let codes: Vec<String> = shown
        .split("<li><code>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    let (status, location, body) = post_page(gw, browser, &shown, &[("continue", "1")]).await;
    assert_eq!(status, 303, "{body}");
    let q = query_of(&location.unwrap());
    (secret, codes, q["code"].clone())
}

#[tokio::test]
async fn a_required_one_time_code_is_enrolled_then_asked_and_each_code_taken_once() {
    let gw = gateway("second_factor = \"required\"").await;
    let (verifier, challenge) = pkce();
    let (secret, _, code) = enrol(&gw, &mut Browser::default(), &challenge).await;
    let (status, tokens) = redeem(&gw, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(access["acr"], "urn:portero:acr:mfa");
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!((&id["amr"], &id["acr"]), (&access["amr"], &access["acr"]));
    assert_eq!(
        status_with(&gw, "/mfa", tokens["access_token"].as_str().unwrap()).await,
        200
    );
    // The refreshed token says it again.
    let (status, refreshed) = refresh(&gw, tokens["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(
        claims_of(refreshed["access_token"].as_str().unwrap())["amr"],
        access["amr"]
    );

    // Next time: the password, then the code (the next step's: the one
    // enrolment took is spent).
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let (status, asked) = password(&gw, &mut browser, &challenge).await;
    assert_eq!(status, 200, "{asked}");
    assert!(asked.contains("Two-step verification"), "{asked}");
    let spent = pyotp(&secret, 0);
    let (status, _, refused) = post_page(&gw, &mut browser, &asked, &[("code", &spent)]).await;
    assert_eq!(status, 401, "a code already taken: {refused}");
    let next = pyotp(&secret, 1);
    let (status, location, body) = post_page(&gw, &mut browser, &refused, &[("code", &next)]).await;
    assert_eq!(status, 303, "{body}");
    let code = query_of(&location.unwrap())["code"].clone();
    assert_eq!(redeem(&gw, &code, &verifier).await.0, 200);
    // The same code again, in another browser: taken once.
    let mut other = Browser::default();
    let (_, asked) = password(&gw, &mut other, &pkce().1).await;
    let (status, _, _) = post_page(&gw, &mut other, &asked, &[("code", &next)]).await;
    assert_eq!(status, 401);
    let log = gw.log_with("wrong_code").await;
    assert!(!log.contains(&next) && !log.contains(&secret), "{log}");
}

#[tokio::test]
async fn wrong_codes_spend_the_lockout_budget_and_a_recovery_code_works_once() {
    let gw = gateway("second_factor = \"required\"").await;
    let (_, challenge) = pkce();
    let (secret, codes, _) = enrol(&gw, &mut Browser::default(), &challenge).await;

    // A recovery code in place of the one-time code: how many are left.
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let (_, asked) = password(&gw, &mut browser, &challenge).await;
    let sloppy = codes[0].to_lowercase().replace('-', " ");
    let (status, _, used) = post_page(&gw, &mut browser, &asked, &[("code", &sloppy)]).await;
    assert_eq!(status, 200, "{used}");
    assert!(used.contains("You have 9 recovery codes left."), "{used}");
    let (status, location, _) = post_page(&gw, &mut browser, &used, &[("continue", "1")]).await;
    assert_eq!(status, 303);
    // Its Continue goes on once, and for that request only.
    let (_, finished) = form_of(&used);
    let finished = finished
        .iter()
        .find(|(n, _)| n == "finished")
        .unwrap()
        .1
        .clone();
    let (_, _, other) = browser
        .get(&authorize_url(&gw, &pkce().1, "&prompt=login"))
        .await;
    let (status, _, again) = post_page(
        &gw,
        &mut browser,
        &other,
        &[("continue", "1"), ("finished", &finished)],
    )
    .await;
    assert_eq!(status, 401, "another request, prompt=login: {again}");
    let code = query_of(&location.unwrap())["code"].clone();
    let (_, tokens) = redeem(&gw, &code, &verifier).await;
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["acr"],
        "urn:portero:acr:mfa"
    );
    // Used once.
    let mut browser = Browser::default();
    let (_, asked) = password(&gw, &mut browser, &pkce().1).await;
    let (status, _, again) = post_page(&gw, &mut browser, &asked, &[("code", &codes[0])]).await;
    assert_eq!(status, 401, "{again}");

    // Wrong codes (one-time and recovery alike) spend the budget of three
    // the issuer gives (max_failures = 3): two more and it is locked.
    let (status, _, again) = post_page(&gw, &mut browser, &again, &[("code", "123456")]).await;
    assert_eq!(status, 401);
    let (status, _, locked) = post_page(
        &gw,
        &mut browser,
        &again,
        &[("code", "ZZZZ-ZZZZ-ZZZZ-ZZZZ")],
    )
    .await;
    assert_eq!(status, 401, "{locked}");
    let (status, _, locked) =
        post_page(&gw, &mut browser, &locked, &[("code", &pyotp(&secret, 1))]).await;
    assert_eq!(
        status, 429,
        "locked: even the right code is refused: {locked}"
    );
    assert!(locked.contains("Too many failed attempts"));
    // And the password is refused as well, from anywhere: one budget.
    let (status, page) = password(&gw, &mut Browser::default(), &pkce().1).await;
    assert_eq!(status, 429, "{page}");
}

#[tokio::test]
async fn a_pending_sign_in_is_bound_to_its_browser_and_signs_nobody_in() {
    let gw = gateway("second_factor = \"required\"").await;
    let (secret, _, _) = enrol(&gw, &mut Browser::default(), &pkce().1).await;
    let mut browser = Browser::default();
    let (_, asked) = password(&gw, &mut browser, &pkce().1).await;
    // Another browser (its own form cookie) posting the first one's page.
    let mut thief = Browser::default();
    let (_, _, page) = thief.get(&authorize_url(&gw, &pkce().1, "")).await;
    let (_, fields) = form_of(&page);
    let csrf = fields.iter().find(|(n, _)| n == "csrf").unwrap().1.clone();
    let (action, mut stolen) = form_of(&asked);
    stolen.retain(|(n, _)| n != "csrf");
    stolen.push(("csrf".into(), csrf));
    stolen.push(("code".into(), pyotp(&secret, 1)));
    let (status, _, body) = thief.post_form(&on(&gw, &action), &stolen).await;
    assert_ne!(status, 303, "{body}");
    // A changed ticket opens as nothing.
    let (action, mut fields) = form_of(&asked);
    for (name, value) in fields.iter_mut() {
        if name == "pending" {
            value.replace_range(10..11, if &value[10..11] == "A" { "B" } else { "A" });
        }
    }
    fields.push(("code".into(), pyotp(&secret, 1)));
    let (status, _, body) = browser.post_form(&on(&gw, &action), &fields).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Sign in again"), "{body}");
}

/// The demo's login-refresh issuer, its sign-in page on, with `sign_in`.
fn legacy_body(sign_in: &str) -> String {
    demo_body()
        .replace(
            "client_id = \"demo_app\"\n",
            "client_id = \"demo_app\"\nredirect_uris = [\"http://127.0.0.1/callback\"]\n",
        )
        .replace(
            "[issuers.login-refresh.oauth2]\npassword_grant = true\n",
            &format!(
            "[issuers.login-refresh.oauth2]\npassword_grant = true\nauthorization_code = true\n\n\
             [issuers.login-refresh.sign_in]\n{sign_in}\n"
        ),
        )
}

/// The legacy endpoint's and the password grant's statuses, and the
/// grant's access token's `amr`.
async fn legacy_logins(gw: &Gateway) -> (u16, u16, Value) {
    let (legacy, _) = user_login(gw, "/api/auth/token", "admin", "abcd1234").await;
    let grant = reqwest::Client::new()
        .post(gw.url("/oauth2/login-refresh/token"))
        .basic_auth(DEMO_APP, Some(DEMO_APP_SECRET))
        .form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "abcd1234"),
        ])
        .send()
        .await
        .unwrap();
    let status = grant.status().as_u16();
    let body: Value = grant.json().await.unwrap();
    let amr = body["access_token"]
        .as_str()
        .map_or(Value::Null, |t| claims_of(t)["amr"].clone());
    (legacy.as_u16(), status, amr)
}

#[tokio::test]
async fn a_password_alone_is_refused_where_a_second_factor_is_required_unless_legacy_password_only()
{
    let body = legacy_body("second_factor = \"required\"");
    assert!(body.contains("[issuers.login-refresh.sign_in]"));
    let gw = Gateway::start(&body).await;
    assert_eq!(legacy_logins(&gw).await, (401, 400, Value::Null));
    let log = gw.log_with("password_alone").await;
    assert!(
        log.contains("reason=password_alone") || log.contains("\"password_alone\""),
        "{log}"
    );
    assert!(!log.contains("abcd1234"));

    let gw = Gateway::start(&legacy_body(
        "second_factor = \"required\"\nlegacy_password_only = true",
    ))
    .await;
    assert_eq!(legacy_logins(&gw).await, (200, 200, json!(["pwd"])));
}

#[tokio::test]
async fn acr_values_asking_for_two_factors_steps_a_password_session_up() {
    let gw = gateway("second_factor = \"optional\"").await;
    // bob has no factor: optional asks nothing of him.
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let (_, _, page) = browser.get(&authorize_url(&gw, &challenge, "")).await;
    let (status, location, _) = post_page(
        &gw,
        &mut browser,
        &page,
        &[("username", "bob"), ("password", "bob's password")],
    )
    .await;
    assert_eq!(status, 303);
    let code = query_of(&location.unwrap())["code"].clone();
    let (_, tokens) = redeem(&gw, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access)["amr"], json!(["pwd"]));
    assert_eq!(
        status_with(&gw, "/mfa", access).await,
        403,
        "a password alone"
    );
    // His session does not meet acr_values=mfa: the form again, not a code.
    let url = authorize_url(&gw, &pkce().1, "&acr_values=urn%3Aportero%3Aacr%3Amfa");
    let (status, _, page) = browser.get(&url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"acr_values\""), "carried: {page}");
    // Metadata says which levels there are.
    let meta: Value = reqwest::get(gw.url("/.well-known/openid-configuration/oauth2/app"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["acr_values_supported"],
        json!([
            "urn:portero:acr:pwd",
            "urn:portero:acr:mfa",
            "urn:portero:acr:phr"
        ])
    );
    assert!(meta["claims_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("amr")));
}

#[tokio::test]
async fn the_admin_api_resets_a_persons_factors_and_ends_their_sessions() {
    let gw = gateway("second_factor = \"required\"").await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let (_, _, code) = enrol(&gw, &mut browser, &challenge).await;
    let (_, tokens) = redeem(&gw, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let reset = |path: &'static str| {
        let gw = &gw;
        async move {
            reqwest::Client::new()
                .delete(gw.admin_url(path))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
        }
    };
    // A code made before the reset (the session signs in at once).
    let (early_verifier, early_challenge) = pkce();
    let (status, location, _) = browser.get(&authorize_url(&gw, &early_challenge, "")).await;
    assert_eq!(status, 303);
    let early = query_of(&location.unwrap())["code"].clone();
    let r = reset("/admin/users/app/ada/factors").await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = redeem(&gw, &early, &early_verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert_eq!(r.json::<Value>().await.unwrap()["deleted"], true);
    let r = reset("/admin/users/nope/ada/factors").await;
    assert_eq!(r.status(), 404, "an issuer that signs nobody in");
    // Their token and sign-on session are gone; their next sign-in enrols again.
    let status = reqwest::Client::new()
        .get(gw.url("/anything"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, page) = browser.get(&authorize_url(&gw, &pkce().1, "")).await;
    assert_eq!(status, 200, "the form, not a code: {page}");
    let (status, page) = password(&gw, &mut browser, &pkce().1).await;
    assert_eq!(status, 200);
    assert!(page.contains("Set up two-step verification"), "{page}");
}

#[tokio::test]
async fn authlib_checks_the_acr_of_a_sign_in_with_a_one_time_code() {
    let gw = gateway("second_factor = \"required\"").await;
    let out = tokio::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/second_factor.py"
        ))
        .env("PORTERO_URL", gw.url(""))
        .env("CLIENT_ID", APP)
        .env("CALLBACK", CALLBACK)
        .env("USERNAME", USER)
        .env("PASSWORD", USER_PASSWORD)
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checks: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .collect();
    assert_eq!(
        checks,
        [
            "signed in with pyotp's code",
            "authlib validated the ID token with acr among urn:portero:acr:mfa urn:portero:acr:phr",
            "authlib refused it where a passkey is required",
        ]
    );
}

#[tokio::test]
async fn a_password_alone_neither_clears_wrong_codes_nor_changes_factors_nor_outlives_required() {
    // ada enrols where a factor is required; then the issuer turns it off.
    let gw = gateway("second_factor = \"required\"").await;
    let (secret, _, _) = enrol(&gw, &mut Browser::default(), &pkce().1).await;
    gw.public_url(&body("second_factor = \"off\"")).await;
    let mfa = "&acr_values=urn%3Aportero%3Aacr%3Amfa";
    // Wrong codes (asked for by acr_values) between password-alone
    // sign-ins: the sign-ins clear none of them (max_failures = 3).
    for round in 0..2 {
        let mut browser = Browser::default();
        let (_, asked) = password_at(&gw, &mut browser, &authorize_url(&gw, &pkce().1, mfa)).await;
        assert!(asked.contains("Two-step verification"), "{asked}");
        let (status, _, _) = post_page(&gw, &mut browser, &asked, &[("code", "000000")]).await;
        assert_eq!(status, 401, "round {round}");
        let (status, _) = password(&gw, &mut Browser::default(), &pkce().1).await;
        assert_eq!(status, 303, "a password alone, where none is asked for");
    }
    let mut browser = Browser::default();
    let (_, asked) = password_at(&gw, &mut browser, &authorize_url(&gw, &pkce().1, mfa)).await;
    let (status, _, asked) = post_page(&gw, &mut browser, &asked, &[("code", "000000")]).await;
    assert_eq!(status, 401);
    let (status, _, _) =
        post_page(&gw, &mut browser, &asked, &[("code", &pyotp(&secret, 1))]).await;
    assert_eq!(
        status, 429,
        "the third wrong code locked the person: the sign-ins between cleared nothing"
    );

    // bob's lockout is his own; ada's password-alone session (after the
    // cool-down is not needed: bob) cannot change factors on the account page.
    let gw = gateway("second_factor = \"required\"").await;
    enrol(&gw, &mut Browser::default(), &pkce().1).await;
    gw.public_url(&body("second_factor = \"off\"")).await;
    let mut browser = Browser::default();
    let (status, _) = password(&gw, &mut browser, &pkce().1).await;
    assert_eq!(status, 303);
    let (status, location, _) = browser.get(&gw.url("/oauth2/app/account")).await;
    assert_eq!(status, 303);
    assert!(
        location
            .unwrap()
            .contains("acr_values=urn%3Aportero%3Aacr%3Amfa"),
        "a factor asked for first"
    );
    // The issuer requires a factor again: that session answers no request.
    gw.public_url(&body("second_factor = \"required\"")).await;
    let (status, _, page) = browser.get(&authorize_url(&gw, &pkce().1, "")).await;
    assert_eq!(status, 200, "the form, not a code: {page}");
}

/// The demo's login-refresh issuer's sign-in page, for its application.
fn legacy_authorize(gw: &Gateway, challenge: &str) -> String {
    authorize_url_for(
        gw,
        DEMO_APP,
        CALLBACK,
        "profile",
        &format!("&code_challenge={challenge}"),
    )
    .replace("/oauth2/app/", "/oauth2/login-refresh/")
}

#[tokio::test]
async fn legacy_logins_clear_no_wrong_codes_in_the_migration_window() {
    let body = legacy_body("second_factor = \"required\"\nlegacy_password_only = true");
    let gw = started_with_public_url(&body).await;
    let mut browser = Browser::default();
    let (_, _, page) = browser.get(&legacy_authorize(&gw, &pkce().1)).await;
    let admin = [("username", "admin"), ("password", "abcd1234")];
    let (status, _, enrol) = post_page(&gw, &mut browser, &page, &admin).await;
    assert_eq!(status, 200, "{enrol}");
    let secret = text_of(&enrol, "secret");
    let (status, _, _) =
        post_page(&gw, &mut browser, &enrol, &[("code", &pyotp(&secret, 0))]).await;
    assert_eq!(status, 200);
    // Wrong codes, a legacy login (open in the window) after each: the
    // logins clear none, so the person is locked within their budget.
    let mut locked = false;
    for _ in 0..6 {
        let mut browser = Browser::default();
        let (_, _, page) = browser.get(&legacy_authorize(&gw, &pkce().1)).await;
        let (_, _, asked) = post_page(&gw, &mut browser, &page, &admin).await;
        let (status, _, _) = post_page(&gw, &mut browser, &asked, &[("code", "000000")]).await;
        assert_eq!(status, 401);
        match legacy_logins(&gw).await.0 {
            429 => {
                locked = true;
                break;
            }
            status => assert_eq!(status, 200, "open in the window"),
        }
    }
    assert!(locked, "{}", gw.log());
    let mut browser = Browser::default();
    let (_, _, page) = browser.get(&legacy_authorize(&gw, &pkce().1)).await;
    let (status, _, _) = post_page(&gw, &mut browser, &page, &admin).await;
    assert_eq!(status, 429, "locked by the wrong codes");
}

#[tokio::test]
async fn the_pages_speak_the_operators_language() {
    let words = "lang = \"de\"\nsecond_factor = \"required\"\n\n[issuers.app.sign_in.text]\n\
                 \"Sign in\" = \"Anmelden\"\n\"Username\" = \"Benutzername\"\n\
                 \"to continue to {client} at {host}\" = \"weiter zu {client} auf {host}\"\n\
                 \"Set up two-step verification\" = \"Zweistufige Anmeldung einrichten\"\n";
    let gw = gateway(words).await;
    let mut browser = Browser::default();
    let (_, _, page) = browser.get(&authorize_url(&gw, &pkce().1, "")).await;
    assert!(page.contains("<html lang=\"de\">"), "{page}");
    assert!(page.contains("<title>Anmelden</title>") && page.contains(">Benutzername</label>"));
    assert!(
        page.contains("weiter zu <strong>notes-cli</strong> auf <strong>127.0.0.1</strong>"),
        "{page}"
    );
    assert!(
        page.contains(">Password</label>"),
        "what is not translated stays English"
    );
    let (_, _, enrol) = post_page(
        &gw,
        &mut browser,
        &page,
        &[("username", USER), ("password", USER_PASSWORD)],
    )
    .await;
    assert!(
        enrol.contains("<h1>Zweistufige Anmeldung einrichten</h1>"),
        "{enrol}"
    );
}
