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
