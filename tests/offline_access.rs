//! OpenID Connect's `offline_access` (Core §11) at a `kind = "oauth2"`
//! issuer: advertised, granted to a client that may refresh, and deciding
//! whether a sign-in that asks for `openid` gets a refresh token; a plain
//! OAuth 2.0 sign-in gets one as before. And a confidential client that
//! sends no secret is refused as an unknown one is, its log naming why.

use crate::common;

use common::standard::*;
use common::*;
use serde_json::Value;

/// A public client that may not refresh (its grant types the code's only).
const NO_REFRESH: &str = "no-refresh";

async fn gateway() -> Gateway {
    let body = format!(
        "{}\n[[issuers.app.clients]]\nclient_id = \"{NO_REFRESH}\"\n\
         redirect_uris = [\"{CALLBACK}\"]\ngrant_types = [\"authorization_code\"]\n",
        standard_body("")
    );
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    gw
}

/// The tokens a fresh browser's sign-in asking `scope` for `client` gets.
async fn tokens_for(gw: &Gateway, client: &str, scope: &str) -> Value {
    let (verifier, challenge) = pkce();
    let url = authorize_url_for(
        gw,
        client,
        CALLBACK,
        scope,
        &format!("&code_challenge={challenge}"),
    );
    let code = sign_in_at(gw, &mut Browser::default(), &url).await;
    let (status, tokens) = redeem_for(gw, client, CALLBACK, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

#[tokio::test]
async fn offline_access_decides_whether_a_sign_in_with_openid_gets_a_refresh_token() {
    let gw = gateway().await;
    let metadata: Value = reqwest::get(gw.url("/.well-known/openid-configuration/oauth2/app"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let supported = metadata["scopes_supported"].as_array().unwrap();
    assert!(supported.contains(&"offline_access".into()), "{metadata}");

    // OpenID Connect without offline_access: no refresh token...
    let tokens = tokens_for(&gw, APP, "openid notes:read").await;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert!(tokens["id_token"].is_string());
    // ...with it, one, which refreshes, keeping the scope granted.
    let tokens = tokens_for(&gw, APP, "openid offline_access notes:read").await;
    assert_eq!(
        tokens["scope"], "openid offline_access notes:read",
        "{tokens}"
    );
    let (status, refreshed) = refresh(&gw, tokens["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(status, 200, "{refreshed}");
    assert!(refreshed["refresh_token"].is_string(), "{refreshed}");
    // A plain OAuth 2.0 sign-in gets one as before.
    let tokens = tokens_for(&gw, APP, "notes:read").await;
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    assert!(tokens.get("id_token").is_none());

    // A client that may not refresh is not granted offline_access: sent
    // back with invalid_scope before any page.
    let (_, challenge) = pkce();
    let url = authorize_url_for(
        &gw,
        NO_REFRESH,
        CALLBACK,
        "openid offline_access",
        &format!("&code_challenge={challenge}"),
    );
    let (status, location, _) = Browser::default().get(&url).await;
    assert!((300..400).contains(&status), "{status}");
    let q = query_of(&location.unwrap());
    assert_eq!(q["error"], "invalid_scope", "{q:?}");
    assert_eq!(q["state"], "s-123");
    // The same client signs in with openid, and gets no refresh token.
    let tokens = tokens_for(&gw, NO_REFRESH, "openid").await;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
}

#[tokio::test]
async fn a_confidential_client_without_its_secret_is_refused_and_the_log_says_why() {
    let gw = gateway().await;
    let token = |client: &'static str| {
        let gw = &gw;
        async move {
            let r = reqwest::Client::new()
                .post(gw.url("/oauth2/app/token"))
                .form(&[("grant_type", "client_credentials"), ("client_id", client)])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // The same answer for a known confidential client and an unknown one...
    let (known, unknown) = (token(SERVICE).await, token("nobody").await);
    assert_eq!(known.0, 401, "{:?}", known.1);
    assert_eq!(known, unknown);
    assert_eq!(known.1["error"], "invalid_client");
    // ...and a log line that tells them apart, naming neither secret.
    let log = gw.log_with("reason=unknown_client").await;
    let line = |client: &str| {
        log.lines()
            .find(|l| {
                l.contains("client authentication refused")
                    && l.contains(&format!("client=\"{client}\""))
            })
            .unwrap_or_else(|| panic!("no refusal of {client:?} in:\n{log}"))
            .to_string()
    };
    assert!(line(SERVICE).contains("reason=auth_method"), "{log}");
    assert!(line("nobody").contains("reason=unknown_client"), "{log}");
}
