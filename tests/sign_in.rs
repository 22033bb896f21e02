//! A `kind = "oauth2"` issuer: client_credentials with no dialect, the
//! authorization code flow with PKCE through the sign-in page, the code's
//! single use, the sign-on session, OpenID Connect's ID token and
//! userinfo, and the errors that must never be redirected.

use crate::common;

use common::standard::*;
use common::*;
use serde_json::Value;

async fn gateway() -> Gateway {
    started_with_public_url(&standard_body("")).await
}

async fn get_with(gw: &Gateway, path: &str, token: &str) -> u16 {
    status_with(gw, path, token).await
}

#[tokio::test]
async fn a_confidential_client_gets_a_token_with_no_dialect() {
    let gw = gateway().await;
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/token"))
        .basic_auth(SERVICE, Some(SERVICE_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["sub"], SERVICE);
    assert_eq!(claims["roles"], serde_json::json!(["service"]));
    assert_eq!(
        claims["iss"],
        format!("http://127.0.0.1:{}/oauth2/app", gw.port)
    );
    assert_eq!(get_with(&gw, "/anything", token).await, 200);
    assert_eq!(get_with(&gw, "/admin-area", token).await, 403);
    // No legacy endpoint was mounted for the issuer.
    let legacy = reqwest::Client::new()
        .post(gw.url("/api/v1/auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        legacy.status(),
        401,
        "the default route, not a token endpoint"
    );
    // A public client has no client_credentials.
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", APP)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
}

#[tokio::test]
async fn a_user_signs_in_with_a_code_and_pkce() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    // The page itself: labelled inputs, a language, never framed.
    let (status, _, page) = browser.get(&authorize_url(&gw, &challenge, "")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<html lang=\"en\">"));
    assert!(page.contains("<label for=\"username\">"));
    let code = sign_in(&gw, &mut browser, &challenge).await;
    let (status, tokens) = redeem(&gw, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let claims = claims_of(access);
    assert_eq!(claims["sub"], USER);
    assert_eq!(claims["client_id"], APP);
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));
    assert_eq!(claims["team"], "core");
    assert_eq!(get_with(&gw, "/admin-area", access).await, 200);
    // OpenID Connect: the ID token for the client, with the nonce.
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], APP);
    assert_eq!(id["sub"], USER);
    assert_eq!(id["nonce"], "n-456");
    assert!(id["auth_time"].as_i64().is_some() && id["sid"].as_str().is_some());
    let info: Value = reqwest::Client::new()
        .get(gw.url("/oauth2/app/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], USER);
    assert_eq!(info["team"], "core");
    // The refresh token rotates, for the same client.
    let (status, rotated) = refresh(&gw, tokens["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(status, 200, "{rotated}");
}

#[tokio::test]
async fn a_code_is_used_once_and_its_replay_revokes_what_it_gave() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let code = sign_in(&gw, &mut browser, &challenge).await;
    let (_, tokens) = redeem(&gw, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(get_with(&gw, "/anything", access).await, 200);
    let (status, again) = redeem(&gw, &code, &verifier).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        get_with(&gw, "/anything", access).await,
        401,
        "the first use's token is revoked"
    );
    let (status, _) = refresh(&gw, tokens["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(status, 400, "and its refresh family");
}

#[tokio::test]
async fn a_code_is_bound_to_its_verifier_and_redirect_uri() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    let code = sign_in(&gw, &mut browser, &challenge).await;
    let (other_verifier, _) = pkce();
    let (status, body) = redeem(&gw, &code, &other_verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn a_refused_code_is_logged_with_its_reason_never_the_code() {
    let gw = gateway().await;
    let refused = |reason: &'static str| {
        let gw = &gw;
        async move {
            let log = gw.log_with(reason).await;
            assert!(
                log.lines()
                    .any(|l| l.contains("an authorization code was refused")
                        && l.contains(reason)
                        && l.contains(APP)),
                "{reason}\n{log}"
            );
        }
    };
    let invalid_grant = |(status, body): (u16, Value)| {
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    };
    // One no one made, as one past its 60 s reads: the store forgets it.
    let (verifier, challenge) = pkce();
    invalid_grant(redeem(&gw, "not-a-code-portero-made", &verifier).await);
    refused("unknown or expired").await;

    let code = sign_in(&gw, &mut Browser::default(), &challenge).await;
    let (other_verifier, _) = pkce();
    invalid_grant(redeem(&gw, &code, &other_verifier).await);
    refused("code_verifier does not match").await;
    invalid_grant(redeem(&gw, &code, &verifier).await);
    refused("already used").await;

    let (verifier, challenge) = pkce();
    let second = sign_in(&gw, &mut Browser::default(), &challenge).await;
    invalid_grant(redeem_for(&gw, APP, "https://notes.example/cb", &second, &verifier).await);
    refused("another redirect_uri").await;

    let log = gw.log();
    assert!(!log.contains(&code) && !log.contains(&second), "{log}");
}

#[tokio::test]
async fn the_sign_on_session_lets_the_next_request_through_and_prompt_is_honoured() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    sign_in(&gw, &mut browser, &challenge).await;
    // Signed in: a code at once.
    let (status, location, _) = browser.get(&authorize_url(&gw, &challenge, "")).await;
    assert_eq!(status, 303);
    let q = query_of(&location.unwrap());
    assert!(q.contains_key("code"));
    assert_eq!(q["iss"], format!("http://127.0.0.1:{}/oauth2/app", gw.port));
    assert_eq!(redeem(&gw, &q["code"], &verifier).await.0, 200);
    // prompt=login shows the page again.
    let (status, _, _) = browser
        .get(&authorize_url(&gw, &challenge, "&prompt=login"))
        .await;
    assert_eq!(status, 200);
    // A browser without the session: prompt=none is login_required.
    let mut stranger = Browser::default();
    let (status, location, _) = stranger
        .get(&authorize_url(&gw, &challenge, "&prompt=none"))
        .await;
    assert_eq!(status, 303);
    assert_eq!(query_of(&location.unwrap())["error"], "login_required");
}

#[tokio::test]
async fn errors_before_the_client_is_known_are_shown_never_redirected() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    for bad in [
        authorize_url(&gw, &challenge, "").replace(&format!("client_id={APP}"), "client_id=nobody"),
        authorize_url(&gw, &challenge, "")
            .replace("127.0.0.1%2Fcallback", "evil.example%2Fcallback"),
        authorize_url(&gw, &challenge, "").replace("%2Fcallback", "%2Fcallback%2Fmore"),
    ] {
        let (status, location, page) = browser.get(&bad).await;
        assert_eq!((status, location), (400, None), "{bad}");
        assert!(page.contains("cannot go on"));
    }
    // Once they are known, errors go back with state and iss.
    let plain = authorize_url(&gw, &challenge, "")
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let (status, location, _) = browser.get(&plain).await;
    assert_eq!(status, 303);
    let q = query_of(&location.unwrap());
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("invalid_request", "s-123")
    );
}

#[tokio::test]
async fn the_form_needs_its_cookie_and_its_own_fields() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    let (_, _, page) = browser.get(&authorize_url(&gw, &challenge, "")).await;
    let (action, fields) = form_of(&page);
    let mut with_password = fields.clone();
    with_password.push(("username".into(), USER.into()));
    with_password.push(("password".into(), USER_PASSWORD.into()));
    // Another browser (no binding cookie) posting this page's form.
    let mut other = Browser::default();
    let (status, location, _) = other.post_form(&action, &with_password).await;
    assert_eq!((status, location), (400, None));
    // The same browser, with a field changed.
    let tampered: Vec<_> = with_password
        .iter()
        .map(|(n, v)| match n.as_str() {
            "scope" => (n.clone(), "openid notes:read notes:write".to_string()),
            _ => (n.clone(), v.clone()),
        })
        .collect();
    let (status, location, _) = browser.post_form(&action, &tampered).await;
    assert_eq!(
        (status, location),
        (400, None),
        "the form is checked first: a changed field goes nowhere, not even back with an error"
    );
    // A wrong password: the page again, 401.
    let mut wrong = fields.clone();
    wrong.push(("username".into(), USER.into()));
    wrong.push(("password".into(), "nope".into()));
    let (status, _, page) = browser.post_form(&action, &wrong).await;
    assert_eq!(status, 401);
    assert!(page.contains("Wrong username or password"));
}

#[tokio::test]
async fn an_id_token_opens_no_route_and_is_traded_for_nothing() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let code = sign_in(&gw, &mut browser, &challenge).await;
    let (_, tokens) = redeem(&gw, &code, &verifier).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(get_with(&gw, "/anything", id_token).await, 401);
    // Nor does another client trade it for a token of its own.
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/token"))
        .basic_auth(SERVICE, Some(SERVICE_SECRET))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", id_token),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // It still names the session when logging out.
    let (status, _, _) = browser
        .get(&gw.url(&format!("/oauth2/app/end_session?id_token_hint={id_token}")))
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = browser.get(&authorize_url(&gw, &challenge, "")).await;
    assert_eq!(status, 200, "signed out: the page again");
}

#[tokio::test]
async fn the_forms_token_covers_each_field_apart() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    // A page for nonce "n\0prompt=login": its token must not pass for
    // nonce "n" and prompt "login".
    let (_, _, page) = browser
        .get(&authorize_url(&gw, &challenge, "").replace("nonce=n-456", "nonce=n%00prompt%3Dlogin"))
        .await;
    let (action, fields) = form_of(&page);
    let mut shifted: Vec<(String, String)> = fields
        .into_iter()
        .map(|(n, v)| match n.as_str() {
            "nonce" => (n, "n".to_string()),
            _ => (n, v),
        })
        .collect();
    shifted.push(("prompt".into(), "login".into()));
    shifted.push(("username".into(), USER.into()));
    shifted.push(("password".into(), USER_PASSWORD.into()));
    let (status, location, _) = browser.post_form(&action, &shifted).await;
    assert_eq!((status, location), (400, None));
}

#[tokio::test]
async fn prompt_consent_asks_even_with_a_session() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    sign_in(&gw, &mut browser, &challenge).await;
    let (status, _, page) = browser
        .get(&authorize_url(&gw, &challenge, "&prompt=consent"))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"continue\""), "{page}");
}

#[tokio::test]
async fn logging_out_takes_the_pages_own_origin() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    sign_in(&gw, &mut browser, &challenge).await;
    let (status, _, page) = browser.get(&gw.url("/oauth2/app/end_session")).await;
    assert_eq!(status, 200);
    let (action, fields) = form_of(&page);
    // The confirmation posted from another site signs no one out.
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    let cookies: String = browser
        .cookies
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let r = browser
        .http
        .post(&action)
        .header("cookie", cookies)
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("Sign out of this site?"));
    let (status, _, _) = browser.get(&authorize_url(&gw, &challenge, "")).await;
    assert_eq!(status, 303, "still signed in");
    // From the page itself, it does.
    let (status, _, _) = browser.post_form(&action, &fields).await;
    assert_eq!(status, 200);
    let (status, _, _) = browser.get(&authorize_url(&gw, &challenge, "")).await;
    assert_eq!(status, 200, "signed out");
}

#[tokio::test]
async fn a_token_for_a_resource_carries_it_as_its_audience() {
    let mcp = "\n[[routes]]\nname = \"mcp\"\npath = \"/mcp\"\nupstream = \"echo\"\nresource_metadata = true\n";
    let body = format!("{}{mcp}", standard_body(""));
    let gw = Gateway::start(&body).await;
    let public = gw.public_url(&body).await;
    let resource = format!("{public}/mcp");
    let encoded: String = form_urlencoded::byte_serialize(resource.as_bytes()).collect();
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    // Signed in once, then asked for the resource.
    sign_in(&gw, &mut browser, &challenge).await;
    let (status, location, _) = browser
        .get(&authorize_url(
            &gw,
            &challenge,
            &format!("&resource={encoded}"),
        ))
        .await;
    assert_eq!(status, 303);
    let code = query_of(&location.unwrap())["code"].clone();
    let (status, tokens) = redeem(&gw, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access)["aud"], resource);
    assert_eq!(get_with(&gw, "/mcp", access).await, 200);
    // A token for no resource is not this one's.
    let (status, location, _) = browser.get(&authorize_url(&gw, &challenge, "")).await;
    assert_eq!(status, 303);
    let code = query_of(&location.unwrap())["code"].clone();
    let (_, plain) = redeem(&gw, &code, &verifier).await;
    assert_eq!(
        get_with(&gw, "/mcp", plain["access_token"].as_str().unwrap()).await,
        401
    );
    // A resource the issuer does not serve: invalid_target, back to the client.
    let (status, location, _) = browser
        .get(&authorize_url(
            &gw,
            &challenge,
            "&resource=https%3A%2F%2Felsewhere.example%2Fapi",
        ))
        .await;
    assert_eq!(status, 303);
    assert_eq!(query_of(&location.unwrap())["error"], "invalid_target");
    // The route's 401 names its metadata, which names the issuer.
    let r = reqwest::Client::new()
        .get(gw.url("/mcp"))
        .send()
        .await
        .unwrap();
    let challenge_header = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge_header.contains("resource_metadata="),
        "{challenge_header}"
    );
    let doc: Value = reqwest::get(gw.url("/.well-known/oauth-protected-resource/mcp"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], resource);
    assert_eq!(
        doc["authorization_servers"],
        serde_json::json!([format!("{public}/oauth2/app")])
    );
}

#[tokio::test]
async fn the_operator_sets_the_pages_look() {
    let look = "\n[issuers.app.sign_in]\ntitle = \"Acme <Cloud>\"\nlogo_url = \"https://cdn.acme.test/logo.png\"\nstylesheet_url = \"/static/acme.css\"\n";
    let body = format!("{}{look}", standard_body(""));
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    let (_, challenge) = pkce();
    let r = reqwest::get(authorize_url(&gw, &challenge, ""))
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let page = r.text().await.unwrap();
    assert!(page.contains("<title>Acme &lt;Cloud&gt;</title>"), "{page}");
    assert!(page.contains("<img src=\"https://cdn.acme.test/logo.png\""));
    assert!(page.contains("<link rel=\"stylesheet\" href=\"/static/acme.css\">"));
    assert!(
        csp.contains("img-src 'self' https://cdn.acme.test;"),
        "{csp}"
    );
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
}

#[tokio::test]
async fn a_session_ends_with_its_users_revocation_or_credential() {
    let body = standard_body("");
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    sign_in(&gw, &mut browser, &challenge).await;
    let quiet = authorize_url(&gw, &challenge, "&prompt=none");
    assert_eq!(browser.get(&quiet).await.0, 303);
    // Revoked by subject: the session opens nothing more.
    let r = reqwest::Client::new()
        .post(gw.admin_url("/admin/revocations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"sub": USER, "issuer": "app"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, location, _) = browser.get(&quiet).await;
    assert_eq!(query_of(&location.unwrap())["error"], "login_required");
    // Signed in again (after the revocation's second), then the password
    // changes by a reload: that session ends too.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    sign_in(&gw, &mut browser, &challenge).await;
    let (_, location, _) = browser.get(&quiet).await;
    assert!(query_of(&location.unwrap()).contains_key("code"));
    let old_hash = body
        .lines()
        .skip_while(|l| !l.contains(&format!("username = \"{USER}\"")))
        .nth(1)
        .unwrap()
        .to_string();
    let new_hash = format!(
        "secret_hash = \"{}\"",
        portero::credentials::hash_fast("a new one")
    );
    gw.public_url(&body.replacen(&old_hash, &new_hash, 1)).await;
    let (_, location, _) = browser.get(&quiet).await;
    assert_eq!(query_of(&location.unwrap())["error"], "login_required");
}

#[tokio::test]
async fn a_tokens_resource_holds_through_refresh_exchange_and_introspection() {
    let mcp = "\n[[routes]]\nname = \"mcp\"\npath = \"/mcp\"\nupstream = \"echo\"\nresource_metadata = true\n";
    let body = format!("{}{mcp}", standard_body(""));
    let gw = Gateway::start(&body).await;
    let public = gw.public_url(&body).await;
    let resource = format!("{public}/mcp");
    let http = reqwest::Client::new();
    let token = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = gw.url("/oauth2/app/token");
        async move {
            let r = http
                .post(url)
                .basic_auth(SERVICE, Some(SERVICE_SECRET))
                .form(&form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, own) = token(vec![
        ("grant_type", "client_credentials".into()),
        ("resource", resource.clone()),
    ])
    .await;
    assert_eq!(status, 200, "{own}");
    let access = own["access_token"].as_str().unwrap().to_string();
    assert_eq!(claims_of(&access)["aud"], resource);
    assert_eq!(get_with(&gw, "/mcp", &access).await, 200);
    // Traded, it keeps its audience.
    let (status, traded) = token(vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange".into(),
        ),
        ("subject_token", access.clone()),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token".into(),
        ),
    ])
    .await;
    assert_eq!(status, 200, "{traded}");
    assert_eq!(
        claims_of(traded["access_token"].as_str().unwrap())["aud"],
        resource
    );
    // Introspection says whom it is for.
    let answer: Value = http
        .post(gw.url("/oauth2/app/introspect"))
        .basic_auth(SERVICE, Some(SERVICE_SECRET))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["aud"], resource);
    // A refresh naming another resource than its own is refused.
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let encoded: String = form_urlencoded::byte_serialize(resource.as_bytes()).collect();
    sign_in(&gw, &mut browser, &challenge).await;
    let (_, location, _) = browser
        .get(&authorize_url(
            &gw,
            &challenge,
            &format!("&resource={encoded}"),
        ))
        .await;
    let (_, tokens) = redeem(&gw, &query_of(&location.unwrap())["code"], &verifier).await;
    let elsewhere = [("resource", "https://elsewhere.example/api")];
    let (status, refused) =
        refresh(&gw, tokens["refresh_token"].as_str().unwrap(), &elsewhere).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_target"))
    );
}

/// What the sign-in page did is what its metric says: a wrong password is
/// `wrong_secret` with the page's `401`, a user signed in and sent on
/// with a code `ok` with its `303`, the page shown `ok` with `200`.
#[tokio::test]
async fn the_sign_in_pages_outcomes_are_counted_as_they_happened() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (_, challenge) = pkce();
    let (status, _, page) = browser.get(&authorize_url(&gw, &challenge, "")).await;
    assert_eq!(status, 200, "{page}");
    let (action, mut fields) = form_of(&page);
    fields.push(("username".into(), USER.into()));
    fields.push(("password".into(), "not the password".into()));
    let (status, _, page) = browser.post_form(&on(&gw, &action), &fields).await;
    assert_eq!(status, 401, "{page}");
    sign_in(&gw, &mut browser, &challenge).await;
    let counted = |endpoint, status, reason| {
        let gw = &gw;
        async move {
            let labels = [
                ("issuer", "app"),
                ("endpoint", endpoint),
                ("status", status),
                ("reason", reason),
            ];
            gw.metric("portero_oauth2_requests_total", &labels).await
        }
    };
    assert_eq!(counted("sign_in", "401", "wrong_secret").await, 1.0);
    assert_eq!(counted("sign_in", "303", "ok").await, 1.0);
    assert_eq!(counted("authorize", "200", "ok").await, 2.0);
    assert_eq!(counted("sign_in", "401", "ok").await, 0.0);
    assert_eq!(counted("sign_in", "other", "ok").await, 0.0);
}

/// OpenID Connect Discovery §3: `claims_supported` names every claim the
/// ID token and userinfo carry, the users' own claims (`team`) included.
#[tokio::test]
async fn discovery_names_every_claim_the_id_token_and_userinfo_carry() {
    let gw = gateway().await;
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let code = sign_in(&gw, &mut browser, &challenge).await;
    let (status, tokens) = redeem(&gw, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let http = reqwest::Client::new();
    let metadata: Value = http
        .get(gw.url("/.well-known/openid-configuration/oauth2/app"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let supported = metadata["claims_supported"].as_array().unwrap().clone();
    let info: Value = http
        .get(gw.url("/oauth2/app/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["team"], "core", "{info}");
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    for (what, claims) in [("ID token", &id), ("userinfo", &info)] {
        for name in claims.as_object().unwrap().keys() {
            assert!(
                supported.contains(&Value::String(name.clone())),
                "the {what}'s {name:?} is not in claims_supported {supported:?}"
            );
        }
    }
}

/// A browser app on another origin: the issuer's `cors` answers the
/// preflights of the token, userinfo and revocation endpoints, and a token
/// request from an origin it does not allow (whose answer the browser
/// would never show) is refused before the code is redeemed.
#[tokio::test]
async fn the_issuers_cors_answers_preflights_and_a_refused_origin_spends_no_code() {
    let app_origin = "https://spa.example";
    let body = standard_body_with_cors(app_origin);
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    let http = reqwest::Client::new();
    for (endpoint, method, headers) in [
        ("token", "POST", "content-type"),
        ("userinfo", "GET", "authorization"),
        ("revoke", "POST", "content-type"),
    ] {
        let r = http
            .request(
                reqwest::Method::OPTIONS,
                gw.url(&format!("/oauth2/app/{endpoint}")),
            )
            .header("origin", app_origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{endpoint}");
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            app_origin,
            "{endpoint}"
        );
    }
    let mut browser = Browser::default();
    let (verifier, challenge) = pkce();
    let code = sign_in(&gw, &mut browser, &challenge).await;
    let form = code_form(&code, &verifier);
    let refused = http
        .post(gw.url("/oauth2/app/token"))
        .header("origin", "https://elsewhere.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let said: Value = refused.json().await.unwrap();
    assert_eq!(said["error"], "invalid_request", "{said}");
    let logged = "its origin is neither the issuer's nor one its cors allows";
    assert!(gw.log_with(logged).await.contains(logged));
    // The code is still whole: the allowed page redeems it, and reads the answer.
    let r = http
        .post(gw.url("/oauth2/app/token"))
        .header("origin", app_origin)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], app_origin);
}
