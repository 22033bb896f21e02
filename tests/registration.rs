//! Dynamic client registration (RFC 7591) at a standard issuer: what a
//! registered client may be, how many one address may register, the
//! initial access token, and the admin API that lists and deletes them.

use crate::common;

use common::standard::*;
use common::*;
use serde_json::{json, Value};

async fn gateway(settings: &str) -> Gateway {
    let body = standard_body(settings);
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    gw
}

async fn register(gw: &Gateway, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/oauth2/app/register"))
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_registered_client_is_public_and_limited() {
    let gw = gateway("registration = \"open\"\nregistration_rate = 100").await;
    let (status, client) = register(
        &gw,
        &json!({"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "agent", "grant_types": ["authorization_code", "refresh_token"]}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{client}");
    assert!(client["client_id"].as_str().unwrap().starts_with("reg-"));
    assert_eq!(client["token_endpoint_auth_method"], "none");
    assert!(client.get("client_secret").is_none());
    for (bad, error) in [
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb#x"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["com.example.app:/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": [format!("https://a.example/{}", "x".repeat(600))]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        // No grant at all would read as every grant.
        (
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": []}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": 5}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": ["client_secret_post"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "client_name": "a\u{7}b"}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ] {
        let (status, answer) = register(&gw, &bad, None).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn open_registration_is_limited_per_address() {
    let gw = gateway("registration = \"open\"\nregistration_rate = 3").await;
    let body = json!({"redirect_uris": ["https://a.example/cb"]});
    for _ in 0..3 {
        assert_eq!(register(&gw, &body, None).await.0, 201);
    }
    let (status, answer) = register(&gw, &body, None).await;
    assert_eq!(status, 429, "{answer}");
}

#[tokio::test]
async fn token_registration_needs_the_initial_access_token() {
    // The harness's environment names the variable: ADMIN_TOKEN's value is
    // in PORTERO_ADMIN_TOKEN, which serves as the initial access token here.
    let gw =
        gateway("registration = \"token\"\nregistration_token_env = \"PORTERO_ADMIN_TOKEN\"").await;
    let body = json!({"redirect_uris": ["https://a.example/cb"]});
    assert_eq!(register(&gw, &body, None).await.0, 401);
    assert_eq!(register(&gw, &body, Some("wrong")).await.0, 401);
    assert_eq!(register(&gw, &body, Some(ADMIN_TOKEN)).await.0, 201);
}

#[tokio::test]
async fn the_admin_api_lists_and_deletes_registered_clients() {
    let gw = gateway("registration = \"open\"").await;
    let (_, client) = register(
        &gw,
        &json!({"redirect_uris": [CALLBACK], "client_name": "agent"}),
        None,
    )
    .await;
    let id = client["client_id"].as_str().unwrap().to_string();
    let admin = reqwest::Client::new();
    let list: Value = admin
        .get(gw.admin_url("/admin/oauth2-clients?issuer=app"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["clients"][0]["client_id"], id.as_str());
    assert_eq!(list["clients"][0]["client_name"], "agent");
    assert_eq!(list["clients"][0]["registered_from"], "127.0.0.1");
    let unauthorized = admin
        .get(gw.admin_url("/admin/oauth2-clients"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    // A listed (config) client is not the registry's to delete.
    let r = admin
        .delete(gw.admin_url(&format!("/admin/oauth2-clients/app/{APP}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = admin
        .delete(gw.admin_url(&format!("/admin/oauth2-clients/app/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Deleted, it signs no one in: the page says so, never redirecting.
    let (_, challenge) = pkce();
    let url = authorize_url(&gw, &challenge, "")
        .replace(&format!("client_id={APP}"), &format!("client_id={id}"));
    let mut browser = Browser::default();
    let (status, location, _) = browser.get(&url).await;
    assert_eq!((status, location), (400, None));
}

#[tokio::test]
async fn a_registered_client_holds_only_the_scopes_the_issuers_resources_ask_for() {
    let mcp = "\n[[routes]]\nname = \"mcp\"\npath = \"/mcp\"\nupstream = \"echo\"\nresource_metadata = true\nscopes = [\"mcp:tools\"]\n";
    let body = format!("{}{mcp}", standard_body("registration = \"open\""));
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    let (status, client) = register(
        &gw,
        &json!({"redirect_uris": [CALLBACK], "scope": "mcp:tools notes:read admin"}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{client}");
    assert_eq!(client["scope"], "mcp:tools");
}

/// RFC 7591 §2: a client registered without `grant_types` uses
/// `authorization_code` only, and its code gives no refresh token; one
/// that asks for `refresh_token` too gets one.
#[tokio::test]
async fn a_registered_client_gets_refresh_tokens_only_when_it_asks_for_them() {
    let gw = gateway("registration = \"open\"\nregistration_rate = 100").await;
    for (asked, refresh) in [
        (json!(null), false),
        (json!(["authorization_code", "refresh_token"]), true),
    ] {
        // offline_access is kept for a client that registers the refresh
        // grant; a scope no resource asks for is left out.
        let mut body = json!({"redirect_uris": [CALLBACK], "scope": "offline_access junk"});
        if !asked.is_null() {
            body["grant_types"] = asked.clone();
        }
        let (status, client) = register(&gw, &body, None).await;
        assert_eq!(status, 201, "{client}");
        let id = client["client_id"].as_str().unwrap().to_string();
        let expected = match refresh {
            true => json!(["authorization_code", "refresh_token"]),
            false => json!(["authorization_code"]),
        };
        assert_eq!(client["grant_types"], expected, "{client}");
        let scope = match refresh {
            true => json!("offline_access"),
            false => Value::Null,
        };
        assert_eq!(client["scope"], scope, "{client}");
        let (verifier, challenge) = pkce();
        // A registered client holds no scope the issuer's resources do not
        // ask for; an OpenID sign-in gets a refresh token with offline_access.
        let asked_scope = match refresh {
            true => "openid offline_access",
            false => "openid",
        };
        let url = authorize_url_for(
            &gw,
            &id,
            CALLBACK,
            asked_scope,
            &format!("&code_challenge={challenge}"),
        );
        let mut browser = Browser::default();
        let (status, _, page) = browser.get(&url).await;
        assert_eq!(status, 200, "{page}");
        let (action, mut fields) = form_of(&page);
        fields.push(("username".into(), USER.into()));
        fields.push(("password".into(), USER_PASSWORD.into()));
        let (status, location, page) = browser.post_form(&on(&gw, &action), &fields).await;
        assert_eq!(status, 303, "{page}");
        let code = query_of(&location.unwrap())["code"].clone();
        let (status, tokens) = redeem_for(&gw, &id, CALLBACK, &code, &verifier).await;
        assert_eq!(status, 200, "{tokens}");
        assert_eq!(
            tokens["refresh_token"].is_string(),
            refresh,
            "{asked}: {tokens}"
        );
    }
}

/// A registered client may ask, as a configured one may, that its token
/// requests carry a DPoP proof (RFC 9449 §5.2) and that its authorization
/// requests be pushed first (RFC 9126 §6); each is held, and a client
/// that did not ask is held to neither.
#[tokio::test]
async fn a_registered_client_may_ask_for_dpop_and_pushed_requests() {
    let gw = gateway("registration = \"open\"\nregistration_rate = 100").await;
    let asks = json!({"redirect_uris": [CALLBACK], "dpop_bound_access_tokens": true,
                      "require_pushed_authorization_requests": true});
    let (status, bound) = register(&gw, &asks, None).await;
    assert_eq!(status, 201, "{bound}");
    assert_eq!(bound["dpop_bound_access_tokens"], json!(true), "{bound}");
    assert_eq!(bound["require_pushed_authorization_requests"], json!(true));
    let (status, plain) = register(&gw, &json!({"redirect_uris": [CALLBACK]}), None).await;
    assert_eq!(status, 201, "{plain}");
    assert!(plain.get("dpop_bound_access_tokens").is_none(), "{plain}");
    // Without a proof, the bound client is refused before its code is read.
    for (client, error) in [(&bound, "invalid_dpop_proof"), (&plain, "invalid_grant")] {
        let id = client["client_id"].as_str().unwrap();
        let verifier = "v".repeat(43);
        let (status, answer) = redeem_for(&gw, id, CALLBACK, "no-such-code", &verifier).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{answer}"
        );
    }
    // An authorization request sent to the page, not pushed first.
    let (_, challenge) = pkce();
    for (client, pushed_only) in [(&bound, true), (&plain, false)] {
        let id = client["client_id"].as_str().unwrap();
        let url = authorize_url_for(
            &gw,
            id,
            CALLBACK,
            "openid",
            &format!("&code_challenge={challenge}"),
        );
        let (status, location, page) = Browser::default().get(&url).await;
        let refusal = format!("{}{page}", location.unwrap_or_default());
        assert_eq!(
            refusal.contains("pushed"),
            pushed_only,
            "{status} {refusal}"
        );
        assert_eq!(status == 200, !pushed_only, "{status} {refusal}");
    }
    for wrong in [json!("yes"), json!(1), json!([true])] {
        let body = json!({"redirect_uris": [CALLBACK], "dpop_bound_access_tokens": wrong});
        let (status, answer) = register(&gw, &body, None).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{wrong}"
        );
    }
    // A member twice, in any spelling: which copy counts is the parser's.
    for twice in [
        r#"{"redirect_uris":["http://127.0.0.1/cb"],"dpop_bound_access_tokens":true,"dpop_bound_access_tokens":false}"#,
        r#"{"redirect_uris":["http://127.0.0.1/cb"],"dpop_bound_access_tokens":"x","\u0064pop_bound_access_tokens":true}"#,
    ] {
        let r = reqwest::Client::new()
            .post(gw.url("/oauth2/app/register"))
            .header("content-type", "application/json")
            .body(twice)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{twice}"
        );
    }
}
