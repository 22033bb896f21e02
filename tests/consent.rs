//! The page where a person decides on an application: what it asks for,
//! in words, and Allow beside Deny. Deny goes back to the application as
//! `access_denied`, with `state` and `iss`, and no code; only this page's
//! own form can say it.

use crate::common;

use common::standard::*;
use common::*;

async fn gateway() -> Gateway {
    let body = standard_body("");
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    gw
}

/// The query of the redirect a post of `fields` (plus `extra`) answers.
async fn posted(
    gw: &Gateway,
    browser: &mut Browser,
    page: &str,
    extra: &[(&str, &str)],
) -> (u16, Option<String>) {
    let (action, mut fields) = form_of(page);
    fields.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let (status, location, _) = browser.post_form(&on(gw, &action), &fields).await;
    (status, location)
}

#[tokio::test]
async fn deny_goes_back_as_access_denied_and_allow_lists_what_is_asked() {
    let gw = gateway().await;
    // Not signed in: the sign-in form names the scopes and offers Deny.
    let (_, challenge) = pkce();
    let mut browser = Browser::default();
    let (status, _, page) = browser.get(&authorize_url(&gw, &challenge, "")).await;
    assert_eq!(status, 200, "{page}");
    for words in [
        "know who you are",
        "keep access while you are away (a refresh token)",
        "use \u{201c}notes:read\u{201d}",
        "name=\"deny\"",
    ] {
        assert!(page.contains(words), "{words:?} not on:\n{page}");
    }
    let (status, location) = posted(&gw, &mut browser, &page, &[("deny", "1")]).await;
    assert_eq!(status, 303);
    let q = query_of(&location.unwrap());
    assert_eq!(q["error"], "access_denied", "{q:?}");
    assert_eq!(q["state"], "s-123");
    assert_eq!(q["iss"], gw.url("/oauth2/app"));
    assert!(!q.contains_key("code"));

    // Signed in, asked again (prompt=consent): Allow and Deny.
    sign_in(&gw, &mut browser, &challenge).await;
    let (_, _, page) = browser
        .get(&authorize_url(&gw, &challenge, "&prompt=consent"))
        .await;
    assert!(page.contains(">Allow</button>"), "{page}");
    assert!(page.contains(">Deny</button>"), "{page}");
    assert!(!page.contains("type=\"password\""), "{page}");
    let (status, location) = posted(&gw, &mut browser, &page, &[("deny", "1")]).await;
    assert_eq!(status, 303);
    let q = query_of(&location.unwrap());
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "s-123")
    );
    // Deny wins over Allow sent beside it.
    let (_, location) = posted(
        &gw,
        &mut browser,
        &page,
        &[("deny", "1"), ("continue", "1")],
    )
    .await;
    assert_eq!(query_of(&location.unwrap())["error"], "access_denied");
    // Allow: a code.
    let (_, location) = posted(&gw, &mut browser, &page, &[("continue", "1")]).await;
    assert!(query_of(&location.unwrap()).contains_key("code"));

    // A deny that is not this page's (another browser, no binding
    // cookie) is shown an error, never sent to the application; nor is
    // one that also asks what the request may not (its error would go
    // back as the page's own).
    for extra in [
        &[("deny", "1")][..],
        &[("deny", "1"), ("resource", "https://elsewhere.example")][..],
    ] {
        let (status, location) = posted(&gw, &mut Browser::default(), &page, extra).await;
        assert_eq!((status, location), (400, None), "{extra:?}");
    }
    let (status, location) = posted(
        &gw,
        &mut browser,
        &page,
        &[("deny", "1"), ("resource", "https://elsewhere.example")],
    )
    .await;
    assert_eq!(
        (status, location),
        (400, None),
        "a field the page did not carry"
    );
}

/// The issuer with open registration, remembered consents and the
/// operator's words for its MCP scopes; `/mcp` asks for them.
async fn remembering_gateway() -> Gateway {
    let mcp = "\n[[routes]]\nname = \"mcp\"\npath = \"/mcp\"\nupstream = \"echo\"\n\
               resource_metadata = true\nscopes = [\"mcp:read\", \"mcp:write\"]\n";
    let settings = "registration = \"open\"\nconsent_ttl = \"1h\"\n\
                    scope_descriptions = { \"mcp:read\" = \"Read your notes\", \"mcp:write\" = \"Change your notes\" }\n";
    let body = format!("{}{mcp}", standard_body(settings));
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    gw
}

/// A registered client: its id.
async fn registered(gw: &Gateway) -> String {
    let metadata = serde_json::json!({
        "redirect_uris": [CALLBACK],
        "scope": "mcp:read mcp:write",
        "client_name": "Agent",
    });
    register_client(gw, metadata).await
}

fn asking(gw: &Gateway, client: &str, scope: &str) -> String {
    let (_, challenge) = pkce();
    authorize_url_for(
        gw,
        client,
        CALLBACK,
        scope,
        &format!("&code_challenge={challenge}"),
    )
}

async fn admin(method: reqwest::Method, gw: &Gateway, path: &str) -> serde_json::Value {
    let r = reqwest::Client::new()
        .request(method, gw.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_remembered_consent_is_asked_once_then_only_for_what_is_new_and_forgotten_by_the_admin_api(
) {
    let gw = remembering_gateway().await;
    let client = registered(&gw).await;
    let mut browser = Browser::default();
    // First: the page, in the operator's words; signing in is allowing.
    let (_, _, page) = browser.get(&asking(&gw, &client, "mcp:read")).await;
    assert!(page.contains("<li>Read your notes</li>"), "{page}");
    // With the resource asked for, the page names it.
    let resource = gw.url("/mcp");
    let with_resource = format!(
        "{}&resource={}",
        asking(&gw, &client, "mcp:read"),
        resource.replace(':', "%3A").replace('/', "%2F")
    );
    let (_, _, page) = browser.get(&with_resource).await;
    assert!(
        page.contains(&format!("for its use of <strong>{resource}</strong>")),
        "{page}"
    );
    let code = sign_in_at(&gw, &mut browser, &asking(&gw, &client, "mcp:read")).await;
    assert!(!code.is_empty());
    // Again for the same: a code at once.
    let (status, location, _) = browser.get(&asking(&gw, &client, "mcp:read")).await;
    assert_eq!(status, 303);
    assert!(query_of(&location.unwrap()).contains_key("code"));
    // More (a step up): the page, naming only what is new as asked.
    let (status, _, page) = browser
        .get(&asking(&gw, &client, "mcp:read mcp:write"))
        .await;
    assert_eq!(status, 200, "{page}");
    let asks = page.split("You allowed it before to:").collect::<Vec<_>>();
    assert_eq!(asks.len(), 2, "{page}");
    assert!(asks[0].contains("Change your notes") && !asks[0].contains("Read your notes"));
    assert!(asks[1].contains("Read your notes"));
    let (status, location) = posted(&gw, &mut browser, &page, &[("continue", "1")]).await;
    assert_eq!(status, 303);
    assert!(query_of(&location.unwrap()).contains_key("code"));
    // Both remembered now, and listed; forgotten, the page again.
    let path = format!("/admin/consents/app/{USER}");
    let listed = admin(reqwest::Method::GET, &gw, &path).await;
    assert_eq!(
        listed["consents"][0]["client_id"],
        client.as_str(),
        "{listed}"
    );
    assert_eq!(listed["consents"][0]["scope"], "mcp:read mcp:write");
    let (status, _, _) = browser
        .get(&asking(&gw, &client, "mcp:read mcp:write"))
        .await;
    assert_eq!(status, 303);
    let forgotten = admin(
        reqwest::Method::DELETE,
        &gw,
        &format!("{path}?client_id={client}"),
    )
    .await;
    assert_eq!(forgotten["deleted"], 1);
    let (status, _, _) = browser.get(&asking(&gw, &client, "mcp:read")).await;
    assert_eq!(status, 200, "asked again");
    // A configured client's consent is the operator's: nothing to list.
    let r = reqwest::Client::new()
        .get(gw.admin_url("/admin/consents/nowhere/ada"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn not_you_forgets_the_signed_in_user_and_asks_who_is_there() {
    let gw = remembering_gateway().await;
    let client = registered(&gw).await;
    let mut browser = Browser::default();
    sign_in_at(&gw, &mut browser, &asking(&gw, &client, "mcp:read")).await;
    let _ = admin(
        reqwest::Method::DELETE,
        &gw,
        &format!("/admin/consents/app/{USER}"),
    )
    .await;
    let (status, _, page) = browser.get(&asking(&gw, &client, "mcp:read")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("signed in as <strong>{USER}</strong>")),
        "{page}"
    );
    assert!(page.contains("Not you?"), "{page}");
    let (action, mut fields) = form_of(&page);
    fields.push(("switch".into(), "1".into()));
    let (status, _, switched) = browser.post_form(&on(&gw, &action), &fields).await;
    assert_eq!(status, 200, "{switched}");
    assert!(switched.contains("type=\"password\""), "{switched}");
    // Signed in as bob: the code is bob's.
    let (action, mut fields) = form_of(&switched);
    fields.push(("username".into(), "bob".into()));
    fields.push(("password".into(), "bob's password".into()));
    let (status, location, _) = browser.post_form(&on(&gw, &action), &fields).await;
    assert_eq!(status, 303);
    assert!(query_of(&location.unwrap()).contains_key("code"));
    let page = browser.get(&asking(&gw, &client, "mcp:write")).await.2;
    assert!(page.contains("signed in as <strong>bob</strong>"), "{page}");
}

/// A client that registered itself and asks for no scope at all is asked
/// about like any other: never a code for a signed-in user without the
/// page, with or without remembered consents.
#[tokio::test]
async fn a_registered_client_asking_for_nothing_still_asks() {
    for remembering in [true, false] {
        let gw = match remembering {
            true => remembering_gateway().await,
            false => {
                let body = standard_body("registration = \"open\"");
                let gw = Gateway::start(&body).await;
                gw.public_url(&body).await;
                gw
            }
        };
        let client = register_client(&gw, serde_json::json!({"redirect_uris": [CALLBACK]})).await;
        let mut browser = Browser::default();
        sign_in(&gw, &mut browser, &pkce().1).await;
        let (_, challenge) = pkce();
        let bare = |extra: &str| {
            gw.url(&format!(
                "/oauth2/app/authorize?response_type=code&client_id={client}&redirect_uri={}\
                 &state=s-1&code_challenge_method=S256&code_challenge={challenge}{extra}",
                CALLBACK.replace(':', "%3A").replace('/', "%2F")
            ))
        };
        for extra in ["", "&scope=", "&prompt=none"] {
            let (status, location, page) = browser.get(&bare(extra)).await;
            assert!(location.is_none(), "{remembering} {extra:?}: {location:?}");
            let expected = if extra == "&prompt=none" { 400 } else { 200 };
            assert_eq!(status, expected, "{remembering} {extra:?}: {page}");
        }
    }
}
