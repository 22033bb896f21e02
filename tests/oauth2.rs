//! Standard OAuth 2.0 for the demo's client-flat clients, over HTTP: the
//! metadata (RFC 8414), the token endpoint's `client_credentials` grant
//! and client authentication (RFC 6749), revocation (RFC 7009) and
//! introspection (RFC 7662). Each test names the requirement it pins.

use crate::common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const CLIENT: &str = DEMO_CLIENT;
const SECRET: &str = DEMO_CLIENT_SECRET;
const ISSUER_PATH: &str = "/oauth2/client-flat";
/// The demo's user dialect with OAuth 2.0: its application and user.
const USERS_PATH: &str = "/oauth2/login-refresh";
const APP: &str = DEMO_APP;
const APP_SECRET: &str = DEMO_APP_SECRET;
const OTHER_APP: &str = "other_app";

/// A second client of the same company: it may introspect every token,
/// and its secret has every character Basic credentials must encode.
const AUDITOR: &str = "auditor";
const AUDITOR_SECRET: &str = "a+b%c:d e/f";

fn body() -> String {
    let other_app = format!(
        "[[issuers.login-refresh.oauth2.clients]]\nclient_id = \"{OTHER_APP}\"\nsecret_hash = \"{}\"\n\n",
        portero::credentials::hash_fast(APP_SECRET)
    );
    let auditor = "introspect = true\nauth_method = \"client_secret_basic\"";
    with_flat_client(demo_body(), AUDITOR, AUDITOR_SECRET, auditor).replace(
        "[[issuers.login-refresh.principals]]",
        &format!("{other_app}[[issuers.login-refresh.principals]]"),
    )
}

/// `application/x-www-form-urlencoded`, as RFC 6749 Appendix B encodes.
fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn basic(id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", form_encode(id), form_encode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    json: Value,
}

async fn post_form(gw: &Gateway, endpoint: &str, authorization: Option<&str>, form: &str) -> Reply {
    post_to(
        gw,
        &format!("{ISSUER_PATH}/{endpoint}"),
        authorization,
        form,
    )
    .await
}

async fn post_to(gw: &Gateway, path: &str, authorization: Option<&str>, form: &str) -> Reply {
    let mut req = reqwest::Client::new()
        .post(gw.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    reply(req.send().await.unwrap()).await
}

async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Reply {
        status,
        headers,
        json: serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}")),
    }
}

async fn token(gw: &Gateway, form: &str) -> String {
    let r = post_form(gw, "token", Some(&basic(CLIENT, SECRET)), form).await;
    assert_eq!(r.status, 200, "{}", r.json);
    r.json["access_token"].as_str().unwrap().to_string()
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

/// RFC 6749 §5.1: every answer, error or not, is `no-store` and `no-cache`.
fn assert_uncached(r: &Reply) {
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["pragma"], "no-cache");
    assert_eq!(r.headers["content-type"], "application/json");
}

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.json);
    assert_eq!(r.json["error"], code, "{}", r.json);
    assert!(r.json["error_description"].is_string(), "{}", r.json);
    assert_uncached(r);
}

#[tokio::test]
async fn metadata_names_the_issuer_and_only_what_is_served() {
    let body = body();
    let gw = Gateway::start(&body).await;
    let base = gw.public_url(&body).await;
    let issuer = format!("{base}{ISSUER_PATH}");
    // RFC 8414 §3.1: the well-known part inserted before the issuer's path;
    // and the OpenID-style location after it.
    for path in [
        format!("/.well-known/oauth-authorization-server{ISSUER_PATH}"),
        format!("{ISSUER_PATH}/.well-known/openid-configuration"),
    ] {
        let r = reply(reqwest::get(gw.url(&path)).await.unwrap()).await;
        assert_eq!(r.status, 200, "{path}");
        assert_uncached(&r);
        let m = &r.json;
        // §3.3: `issuer` identical to the identifier the client started from.
        assert_eq!(m["issuer"], issuer.as_str());
        assert_eq!(m["token_endpoint"], format!("{issuer}/token"));
        assert_eq!(m["revocation_endpoint"], format!("{issuer}/revoke"));
        assert_eq!(m["introspection_endpoint"], format!("{issuer}/introspect"));
        assert_eq!(
            m["grant_types_supported"],
            serde_json::json!([
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ])
        );
        assert_eq!(
            m["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post"])
        );
        // The demo signs with HS256: there are no public keys to point at.
        assert!(m.get("jwks_uri").is_none(), "{m}");
        assert_eq!(
            m["scopes_supported"],
            serde_json::json!(["documents:read", "documents:write"])
        );
    }
    // A user dialect's issuer serves its users' grants.
    let path = format!("/.well-known/oauth-authorization-server{USERS_PATH}");
    let m = reply(reqwest::get(gw.url(&path)).await.unwrap()).await.json;
    assert_eq!(m["issuer"], format!("{base}{USERS_PATH}"));
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!([
            "password",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(
        m["scopes_supported"],
        serde_json::json!(["orders", "profile"])
    );
    // The metadata is read with GET; the endpoints take POST.
    let r = reply(
        reqwest::get(gw.url(&format!("{ISSUER_PATH}/token")))
            .await
            .unwrap(),
    )
    .await;
    assert_error(&r, 405, "invalid_request");
    // A path below the issuer's that names no endpoint is an ordinary
    // path: the demo's catch-all route wants a token.
    let r = post_form(&gw, "nowhere", None, "").await;
    assert_eq!(r.status, 401, "{}", r.json);
}

#[tokio::test]
async fn client_credentials_tokens_are_rfc_9068_and_open_the_routes() {
    let body = body();
    let gw = Gateway::start(&body).await;
    let base = gw.public_url(&body).await;
    let r = post_form(
        &gw,
        "token",
        Some(&basic(CLIENT, SECRET)),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_uncached(&r);
    // RFC 6749 §5.1.
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 3600);
    assert_eq!(r.json["scope"], "documents:read documents:write");
    let access = r.json["access_token"].as_str().unwrap();
    // RFC 9068 §2.1 and §2.2.
    assert_eq!(header_of(access)["typ"], "at+jwt");
    let claims = claims_of(access);
    assert_eq!(claims["iss"], format!("{base}{ISSUER_PATH}"));
    assert_eq!(claims["sub"], CLIENT);
    assert_eq!(claims["client_id"], CLIENT);
    assert_eq!(claims["scope"], "documents:read documents:write");
    assert!(claims["jti"].is_string() && claims["iat"].is_i64());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    // The dialect's own claims, so a route's requirements read the same.
    assert_eq!(claims["company"], "becomedigital");
    let proxied = proxied(&gw, &format!("Bearer {access}")).await;
    assert_eq!(
        proxied.status(),
        200,
        "a route accepting the issuer accepts it"
    );

    // client_secret_post (§2.3.1) gives the same kind of token; a narrower
    // scope (§3.3) narrows the permissions it carries.
    let form = format!(
        "grant_type=client_credentials&client_id={CLIENT}&client_secret={SECRET}&scope=documents%3Aread"
    );
    let r = post_form(&gw, "token", None, &form).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["scope"], "documents:read");
    let claims = claims_of(r.json["access_token"].as_str().unwrap());
    assert_eq!(claims["permissions"], serde_json::json!(["documents:read"]));

    // A scope the client does not hold (§5.2 `invalid_scope`).
    let r = post_form(
        &gw,
        "token",
        Some(&basic(CLIENT, SECRET)),
        "grant_type=client_credentials&scope=documents%3Aread%20admin",
    )
    .await;
    assert_error(&r, 400, "invalid_scope");
    assert_eq!(
        gw.metric(
            "portero_tokens_issued_total",
            &[("issuer", "client-flat"), ("dialect", "oauth2")]
        )
        .await,
        2.0
    );
}

#[tokio::test]
async fn bad_requests_get_rfc_6749_errors() {
    let gw = Gateway::start(&body()).await;
    let credentials = basic(CLIENT, SECRET);
    let auth = Some(credentials.as_str());
    // §5.2 invalid_request: no grant, a repeated parameter, not a form.
    let r = post_form(&gw, "token", auth, "scope=documents%3Aread").await;
    assert_error(&r, 400, "invalid_request");
    let r = post_form(
        &gw,
        "token",
        auth,
        "grant_type=client_credentials&grant_type=client_credentials",
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    let json = reqwest::Client::new()
        .post(gw.url(&format!("{ISSUER_PATH}/token")))
        .header("authorization", &credentials)
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap();
    assert_error(&reply(json).await, 400, "invalid_request");
    // §5.2 unsupported_grant_type.
    let r = post_form(&gw, "token", auth, "grant_type=authorization_code&code=x").await;
    assert_error(&r, 400, "unsupported_grant_type");
    // §2.3: one authentication method per request.
    let r = post_form(
        &gw,
        "token",
        auth,
        &format!("grant_type=client_credentials&client_secret={SECRET}"),
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    // A body over the issuer's size, in the same error form.
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(70 * 1024)
    );
    let r = post_form(&gw, "token", auth, &big).await;
    assert_error(&r, 413, "invalid_request");
}

#[tokio::test]
async fn client_authentication_failures_are_invalid_client() {
    let gw = Gateway::start(&body()).await;
    // §5.2: a client that tried Basic gets 401 and a Basic challenge.
    let r = post_form(
        &gw,
        "token",
        Some(&basic(CLIENT, "wrong")),
        "grant_type=client_credentials",
    )
    .await;
    assert_error(&r, 401, "invalid_client");
    assert!(r.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    // Through the form: 401, no challenge.
    let r = post_form(
        &gw,
        "token",
        None,
        &format!("grant_type=client_credentials&client_id={CLIENT}&client_secret=wrong"),
    )
    .await;
    assert_error(&r, 401, "invalid_client");
    assert!(r.headers.get("www-authenticate").is_none());
    // No credentials at all, an unknown client, an inactive one and one
    // whose company is gone all answer alike.
    let r = post_form(&gw, "token", None, "grant_type=client_credentials").await;
    assert_error(&r, 401, "invalid_client");
    for (id, secret) in [
        ("nobody", "whatever"),
        ("inactive_client_456", "inactive_secret_789_ABCDEFGH"),
        ("orphan_client_789", "orphan_secret_000_ABCDEFGH"),
    ] {
        let r = post_form(
            &gw,
            "token",
            Some(&basic(id, secret)),
            "grant_type=client_credentials",
        )
        .await;
        assert_error(&r, 401, "invalid_client");
    }
    // A client restricted to Basic may not use the form.
    let r = post_form(
        &gw,
        "token",
        None,
        &format!(
            "grant_type=client_credentials&client_id={AUDITOR}&client_secret={}",
            form_encode(AUDITOR_SECRET)
        ),
    )
    .await;
    assert_error(&r, 401, "invalid_client");
    // Basic credentials are form-url-encoded before base64 (§2.3.1); a
    // client that sends them as they are is understood too.
    for raw in [false, true] {
        let pair = match raw {
            false => format!("{AUDITOR}:{}", form_encode(AUDITOR_SECRET)),
            true => format!("{AUDITOR}:{AUDITOR_SECRET}"),
        };
        let auth = format!("Basic {}", STANDARD.encode(pair));
        let r = post_form(&gw, "token", Some(&auth), "grant_type=client_credentials").await;
        assert_eq!(r.status, 200, "raw={raw}: {}", r.json);
    }
}

#[tokio::test]
async fn failures_lock_the_client_out_on_both_doors() {
    let gw = Gateway::start(&body().replace(
        "companies = [\"becomedigital\"]",
        "companies = [\"becomedigital\"]\nmax_failures = 3",
    ))
    .await;
    // Two failures at the legacy endpoint, one at the OAuth 2.0 one...
    for _ in 0..2 {
        let (status, _) = post(
            &gw,
            "/api/v1/auth",
            None,
            &format!(r#"{{"client_id":"{CLIENT}","client_secret":"wrong"}}"#),
        )
        .await;
        assert_eq!(status, 401);
    }
    let r = post_form(
        &gw,
        "token",
        Some(&basic(CLIENT, "wrong")),
        "grant_type=client_credentials",
    )
    .await;
    assert_error(&r, 401, "invalid_client");
    // ...and the right secret is refused at both.
    let r = post_form(
        &gw,
        "token",
        Some(&basic(CLIENT, SECRET)),
        "grant_type=client_credentials",
    )
    .await;
    assert_error(&r, 429, "invalid_client");
    let (status, _) = post(
        &gw,
        "/api/v1/auth",
        None,
        &format!(r#"{{"client_id":"{CLIENT}","client_secret":"{SECRET}"}}"#),
    )
    .await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn introspection_tells_each_client_only_its_own() {
    let gw = Gateway::start(&body()).await;
    let own = token(&gw, "grant_type=client_credentials").await;
    let client = basic(CLIENT, SECRET);
    let auditor = basic(AUDITOR, AUDITOR_SECRET);
    let introspect = |auth: String, token: String| {
        let gw = &gw;
        async move {
            let r = post_form(gw, "introspect", Some(&auth), &format!("token={token}")).await;
            assert_eq!(r.status, 200, "{}", r.json);
            assert_uncached(&r);
            r.json
        }
    };
    // RFC 7662 §2.2: a live token, with its claims.
    let answer = introspect(client.clone(), own.clone()).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["client_id"], CLIENT);
    assert_eq!(answer["sub"], CLIENT);
    assert_eq!(answer["scope"], "documents:read documents:write");
    assert!(answer["exp"].is_i64() && answer["jti"].is_string());
    // The legacy endpoint's tokens of the same issuer introspect too.
    let (_, legacy) = post(
        &gw,
        "/api/v1/auth",
        None,
        &format!(r#"{{"client_id":"{CLIENT}","client_secret":"{SECRET}"}}"#),
    )
    .await;
    let legacy = parse(&legacy)["access_token"].as_str().unwrap().to_string();
    assert_eq!(introspect(client.clone(), legacy).await["active"], true);
    // The auditor's token is not the demo client's to see; the auditor
    // (`introspect = true`) may see every token of the issuer.
    let auditors = {
        let r = post_form(
            &gw,
            "token",
            Some(&auditor),
            "grant_type=client_credentials",
        )
        .await;
        r.json["access_token"].as_str().unwrap().to_string()
    };
    assert_eq!(
        introspect(client.clone(), auditors).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        introspect(auditor.clone(), own.clone()).await["active"],
        true
    );
    // §2.2: unknown and forged tokens are just inactive.
    let (signed, signature) = own.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{signed}.{flipped}{}", &signature[1..]);
    for token in ["not-a-token".to_string(), forged] {
        assert_eq!(
            introspect(client.clone(), token).await,
            serde_json::json!({"active": false})
        );
    }
    // §2.1: the request is authenticated, and names its token.
    let r = post_form(&gw, "introspect", None, &format!("token={own}")).await;
    assert_error(&r, 401, "invalid_client");
    let r = post_form(&gw, "introspect", Some(&client), "").await;
    assert_error(&r, 400, "invalid_request");
}

/// A user dialect's tokens are no client's by their subject: a client
/// whose id is a user's subject (login-refresh's subject is the user's
/// id) neither sees nor revokes that user's tokens.
#[tokio::test]
async fn a_client_named_as_a_users_subject_owns_none_of_the_users_tokens() {
    let user_id = "b331336a-46f4-4fe4-a850-3208bfc2c398";
    let namesake = format!(
        "[[issuers.login-refresh.oauth2.clients]]\nclient_id = \"{user_id}\"\nsecret_hash = \"{}\"\n\n",
        portero::credentials::hash_fast(APP_SECRET)
    );
    let body = demo_body().replace(
        "[[issuers.login-refresh.principals]]",
        &format!("{namesake}[[issuers.login-refresh.principals]]"),
    );
    let gw = Gateway::start(&body).await;
    let (_, login) = user_login(&gw, "/api/auth/token", "admin", "abcd1234").await;
    let access = parse(&login)["accessToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(claims_of(&access)["sub"], user_id);
    let namesake = basic(user_id, APP_SECRET);
    let form = format!("token={access}");
    let r = post_to(
        &gw,
        &format!("{USERS_PATH}/introspect"),
        Some(&namesake),
        &form,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json, serde_json::json!({ "active": false }));
    let r = post_to(&gw, &format!("{USERS_PATH}/revoke"), Some(&namesake), &form).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        proxied(&gw, &format!("Bearer {access}")).await.status(),
        200,
        "the user's token stays live"
    );
}

#[tokio::test]
async fn revocation_stops_the_token_everywhere_and_says_nothing_of_others() {
    let gw = Gateway::start(&body()).await;
    let client = basic(CLIENT, SECRET);
    let own = token(&gw, "grant_type=client_credentials").await;
    assert_eq!(proxied(&gw, &format!("Bearer {own}")).await.status(), 200);
    // Someone else's token: 200, and it still works (RFC 7009 §2.2).
    let auditors = {
        let r = post_form(
            &gw,
            "token",
            Some(&basic(AUDITOR, AUDITOR_SECRET)),
            "grant_type=client_credentials",
        )
        .await;
        r.json["access_token"].as_str().unwrap().to_string()
    };
    let r = post_form(&gw, "revoke", Some(&client), &format!("token={auditors}")).await;
    assert_eq!(r.status, 200);
    assert_uncached(&r);
    assert_eq!(
        proxied(&gw, &format!("Bearer {auditors}")).await.status(),
        200
    );
    // Unknown tokens and any hint: 200 (§2.2, §2.1 "only a hint").
    let r = post_form(
        &gw,
        "revoke",
        Some(&client),
        "token=nothing-like-a-token&token_type_hint=refresh_token",
    )
    .await;
    assert_eq!(r.status, 200);
    // Its own token: revoked, refused by every route from now on.
    let r = post_form(
        &gw,
        "revoke",
        Some(&client),
        &format!("token={own}&token_type_hint=access_token"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(proxied(&gw, &format!("Bearer {own}")).await.status(), 401);
    let r = post_form(&gw, "introspect", Some(&client), &format!("token={own}")).await;
    assert_eq!(r.json, serde_json::json!({"active": false}));
    // Listed with the admin API's revocations.
    let jti = claims_of(&own)["jti"].clone();
    assert!(gw.revocations().await.iter().any(|r| r["jti"] == jti));
    // Unauthenticated revocation is refused.
    let r = post_form(&gw, "revoke", None, &format!("token={auditors}")).await;
    assert_error(&r, 401, "invalid_client");
}

/// The demo application's request to the login-refresh issuer's endpoints.
async fn app(gw: &Gateway, endpoint: &str, form: &str) -> Reply {
    let auth = basic(APP, APP_SECRET);
    post_to(gw, &format!("{USERS_PATH}/{endpoint}"), Some(&auth), form).await
}

const ADMIN_LOGIN: &str = "grant_type=password&username=admin&password=abcd1234";

#[tokio::test]
async fn password_and_refresh_grants_rotate_and_reuse_revokes_the_family() {
    let gw = Gateway::start(&body()).await;
    // RFC 6749 §4.3: the user's login, through the application.
    let first = app(&gw, "token", ADMIN_LOGIN).await;
    assert_eq!(first.status, 200, "{}", first.json);
    assert_uncached(&first);
    assert_eq!(first.json["scope"], "profile orders");
    let access = first.json["access_token"].as_str().unwrap().to_string();
    let refresh1 = first.json["refresh_token"].as_str().unwrap().to_string();
    let claims = claims_of(&access);
    // The same subject as the legacy endpoint gives the same user.
    assert_eq!(claims["sub"], "b331336a-46f4-4fe4-a850-3208bfc2c398");
    assert_eq!(claims["client_id"], APP);
    assert_eq!(claims["role"], "ADMIN");
    assert_eq!(header_of(&access)["typ"], "at+jwt");
    assert_eq!(
        proxied(&gw, &format!("Bearer {access}")).await.status(),
        200
    );
    // A wrong password is the grant's fault (§5.2 invalid_grant), not the client's.
    let r = app(
        &gw,
        "token",
        "grant_type=password&username=admin&password=nope",
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
    // §6: a new access token and a new refresh token; the scope can narrow.
    let second = app(
        &gw,
        "token",
        &format!("grant_type=refresh_token&refresh_token={refresh1}&scope=orders"),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.json);
    assert_eq!(second.json["scope"], "orders");
    let refresh2 = second.json["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(refresh1, refresh2, "rotated");
    let access2 = second.json["access_token"].as_str().unwrap().to_string();
    // Not wider than first granted.
    let r = app(
        &gw,
        "token",
        &format!("grant_type=refresh_token&refresh_token={refresh2}&scope=admin"),
    )
    .await;
    assert_error(&r, 400, "invalid_scope");
    // Another client cannot use it (§6: bound to the client it was issued to).
    let other = basic(OTHER_APP, APP_SECRET);
    let r = post_to(
        &gw,
        &format!("{USERS_PATH}/token"),
        Some(&other),
        &format!("grant_type=refresh_token&refresh_token={refresh2}"),
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
    // The replaced token again: refused, and its whole family is revoked
    // (RFC 9700 §4.14.2): the newest refresh token and every access token.
    let r = app(
        &gw,
        "token",
        &format!("grant_type=refresh_token&refresh_token={refresh1}"),
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
    let r = app(
        &gw,
        "token",
        &format!("grant_type=refresh_token&refresh_token={refresh2}"),
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
    for token in [&access, &access2] {
        assert_eq!(proxied(&gw, &format!("Bearer {token}")).await.status(), 401);
    }
    gw.log_with("its family is revoked").await;
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let gw = Gateway::start(&body()).await;
    let first = app(&gw, "token", ADMIN_LOGIN).await;
    let access = first.json["access_token"].as_str().unwrap().to_string();
    let refresh = first.json["refresh_token"].as_str().unwrap().to_string();
    // Another client's revocation of it changes nothing (RFC 7009 §2.1).
    let other = basic(OTHER_APP, APP_SECRET);
    let r = post_to(
        &gw,
        &format!("{USERS_PATH}/revoke"),
        Some(&other),
        &format!("token={refresh}"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        proxied(&gw, &format!("Bearer {access}")).await.status(),
        200
    );
    // Its own client's revokes what the refresh token was issued with.
    let r = app(
        &gw,
        "revoke",
        &format!("token={refresh}&token_type_hint=refresh_token"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        proxied(&gw, &format!("Bearer {access}")).await.status(),
        401
    );
    let r = app(
        &gw,
        "token",
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
}

#[tokio::test]
async fn grants_are_served_only_where_they_belong() {
    let gw = Gateway::start(&body()).await;
    // A user dialect serves no client_credentials; a client dialect no password grant.
    let r = app(&gw, "token", "grant_type=client_credentials").await;
    assert_error(&r, 400, "unsupported_grant_type");
    let r = post_form(
        &gw,
        "token",
        Some(&basic(CLIENT, SECRET)),
        "grant_type=password&username=admin&password=abcd1234",
    )
    .await;
    assert_error(&r, 400, "unsupported_grant_type");
    // Users are not clients: the user's own login does not authenticate a client.
    let r = post_to(
        &gw,
        &format!("{USERS_PATH}/token"),
        Some(&basic("admin", "abcd1234")),
        ADMIN_LOGIN,
    )
    .await;
    assert_error(&r, 401, "invalid_client");
    // Without password_grant the grant is not served at all.
    let body = body().replace("password_grant = true", "password_grant = false");
    let gw = Gateway::start(&body).await;
    let r = app(&gw, "token", ADMIN_LOGIN).await;
    assert_error(&r, 400, "unsupported_grant_type");
}

const EXCHANGE: &str = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";
const JWT_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt";
const REFRESH_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Arefresh_token";

#[tokio::test]
async fn legacy_tokens_are_exchanged_for_standard_ones_with_the_same_subject() {
    let gw = Gateway::start(&body()).await;
    // The legacy login-refresh endpoint's tokens...
    let (status, legacy) = post(
        &gw,
        "/api/auth/token",
        None,
        r#"{"username":"admin","password":"abcd1234"}"#,
    )
    .await;
    assert_eq!(status, 200, "{legacy}");
    let legacy = parse(&legacy);
    let legacy_access = legacy["accessToken"]["token"].as_str().unwrap();
    let legacy_refresh = legacy["refreshToken"]["token"].as_str().unwrap();
    // ...traded by the application (RFC 8693 §2.1) for standard ones.
    for (token, kind) in [(legacy_access, JWT_TYPE), (legacy_refresh, REFRESH_TYPE)] {
        let r = app(
            &gw,
            "token",
            &format!("{EXCHANGE}&subject_token={token}&subject_token_type={kind}"),
        )
        .await;
        assert_eq!(r.status, 200, "{kind}: {}", r.json);
        // §2.2.1: issued_token_type is always there.
        assert_eq!(
            r.json["issued_token_type"],
            "urn:ietf:params:oauth:token-type:access_token"
        );
        assert_eq!(r.json["token_type"], "Bearer");
        let standard = r.json["access_token"].as_str().unwrap();
        let claims = claims_of(standard);
        assert_eq!(claims["sub"], claims_of(legacy_access)["sub"], "{kind}");
        assert_eq!(claims["client_id"], APP);
        assert!(claims["iss"].as_str().unwrap().ends_with(USERS_PATH));
        assert_eq!(
            proxied(&gw, &format!("Bearer {standard}")).await.status(),
            200
        );
    }
    // The scope can only narrow: the legacy access token holds none.
    let r = app(
        &gw,
        "token",
        &format!(
            "{EXCHANGE}&subject_token={legacy_access}&subject_token_type={JWT_TYPE}&scope=orders"
        ),
    )
    .await;
    assert_error(&r, 400, "invalid_scope");
    // Dead, forged or foreign subject tokens are invalid_grant; a type not taken is invalid_request.
    let r = app(
        &gw,
        "token",
        &format!("{EXCHANGE}&subject_token=x.y.z&subject_token_type={JWT_TYPE}"),
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
    let r = app(
        &gw,
        "token",
        &format!("{EXCHANGE}&subject_token={legacy_access}&subject_token_type=urn%3Ax"),
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    let r = app(
        &gw,
        "token",
        &format!("{EXCHANGE}&subject_token_type={JWT_TYPE}"),
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    // A standard token issued to one application is not another's to trade.
    let apps = app(&gw, "token", ADMIN_LOGIN).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post_to(
        &gw,
        &format!("{USERS_PATH}/token"),
        Some(&basic(OTHER_APP, APP_SECRET)),
        &format!("{EXCHANGE}&subject_token={apps}&subject_token_type={JWT_TYPE}"),
    )
    .await;
    assert_error(&r, 400, "invalid_grant");

    // A client dialect's client trades its own legacy token, narrowing its
    // permissions; never another client's.
    let (_, own) = post(
        &gw,
        "/api/v1/auth",
        None,
        &format!(r#"{{"client_id":"{CLIENT}","client_secret":"{SECRET}"}}"#),
    )
    .await;
    let own = parse(&own)["access_token"].as_str().unwrap().to_string();
    let client = basic(CLIENT, SECRET);
    let r = post_form(
        &gw,
        "token",
        Some(&client),
        &format!(
            "{EXCHANGE}&subject_token={own}&subject_token_type={JWT_TYPE}&scope=documents%3Aread"
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let claims = claims_of(r.json["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], CLIENT);
    assert_eq!(claims["permissions"], serde_json::json!(["documents:read"]));
    let r = post_form(
        &gw,
        "token",
        Some(&basic(AUDITOR, AUDITOR_SECRET)),
        &format!("{EXCHANGE}&subject_token={own}&subject_token_type={JWT_TYPE}"),
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
}

#[tokio::test]
async fn the_old_door_counts_its_callers_and_announces_its_end() {
    let gw = Gateway::start(&body().replace(
        "companies = [\"becomedigital\"]",
        "companies = [\"becomedigital\"]\ndeprecation = \"2027-01-01T00:00:00Z\"\n\
         sunset = \"2027-06-30T00:00:00+00:00\"",
    ))
    .await;
    let legacy = |client: &str, secret: &str| {
        let body = format!(r#"{{"client_id":"{client}","client_secret":"{secret}"}}"#);
        let url = gw.url("/api/v1/auth");
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    // RFC 9745 (a structured date) and RFC 8594 (an HTTP date), on every answer.
    for (client, secret, status) in [(CLIENT, SECRET, 200), ("stranger", "x", 401)] {
        let r = legacy(client, secret).await;
        assert_eq!(r.status(), status);
        assert_eq!(r.headers()["deprecation"], "@1798761600");
        assert_eq!(r.headers()["sunset"], "Wed, 30 Jun 2027 00:00:00 GMT");
    }
    // Who still uses it: configured principals by name, anyone else as unknown.
    let count = |client: &'static str| {
        let gw = &gw;
        async move {
            gw.metric(
                "portero_legacy_requests_total",
                &[("issuer", "client-flat"), ("client", client)],
            )
            .await
        }
    };
    assert_eq!(count(CLIENT).await, 1.0);
    assert_eq!(count("unknown").await, 1.0);
    // The new door has its own count, and no retirement notice.
    let r = post_form(
        &gw,
        "token",
        Some(&basic(CLIENT, SECRET)),
        "grant_type=client_credentials",
    )
    .await;
    assert!(r.headers.get("deprecation").is_none());
    let labels = [
        ("issuer", "client-flat"),
        ("endpoint", "token"),
        ("status", "200"),
    ];
    assert_eq!(
        gw.metric("portero_oauth2_requests_total", &labels).await,
        1.0
    );
    assert_eq!(count(CLIENT).await, 1.0);
}

#[tokio::test]
async fn both_doors_share_the_rate_limit_and_a_slow_body_is_refused() {
    let gw = Gateway::start(&body().replace(
        "companies = [\"becomedigital\"]",
        "companies = [\"becomedigital\"]\nbody_timeout = \"1s\"\n\
         rate_limit = { requests = 2, per = \"1m\", by = \"client_ip\" }",
    ))
    .await;
    // Two requests at the legacy endpoint use up the address's allowance...
    for _ in 0..2 {
        let (status, _) = post(
            &gw,
            "/api/v1/auth",
            None,
            &format!(r#"{{"client_id":"{CLIENT}","client_secret":"{SECRET}"}}"#),
        )
        .await;
        assert_eq!(status, 200);
    }
    // ...and the standard door refuses the third, before any secret is
    // checked, in RFC 6749's shape.
    let r = post_form(
        &gw,
        "token",
        Some(&basic(CLIENT, SECRET)),
        "grant_type=client_credentials",
    )
    .await;
    assert_error(&r, 429, "invalid_request");

    // A body that stops arriving: 408 within the issuer's body_timeout.
    let gw = Gateway::start(&body().replace(
        "companies = [\"becomedigital\"]",
        "companies = [\"becomedigital\"]\nbody_timeout = \"1s\"",
    ))
    .await;
    let started = std::time::Instant::now();
    let (status, text) = raw_http(
        gw.port,
        b"POST /oauth2/client-flat/token HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type",
    )
    .await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("\"error\":\"invalid_request\""), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

/// The demo with its store in the machine's Redis, under a key prefix of
/// its own; `None` (the test skipped with a message) without one.
fn on_redis() -> Option<String> {
    let url = common::redis::shared()?;
    let prefix = format!(
        "portero-test-oauth2-{}-{:08x}:",
        std::process::id(),
        rand::random::<u32>()
    );
    Some(format!(
        "[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n\n{}",
        body()
    ))
}

/// The application's exchange of `subject` (a JWT) for a standard token.
async fn exchanged(gw: &Gateway, subject: &str) -> Reply {
    app(
        gw,
        "token",
        &format!("{EXCHANGE}&subject_token={subject}&subject_token_type={JWT_TYPE}"),
    )
    .await
}

fn exp_of(token: &str) -> i64 {
    claims_of(token)["exp"].as_i64().unwrap()
}

/// Waits (briefly: a shared store announces revocations over a channel)
/// until every route refuses `token`.
async fn refused(gw: &Gateway, token: &str) -> bool {
    let bearer = format!("Bearer {token}");
    let status = poll(
        std::time::Duration::from_secs(2),
        || proxied(gw, &bearer),
        |r| r.status() == 401,
    )
    .await
    .status();
    status == 401
}

#[tokio::test]
async fn an_exchanged_token_never_outlives_its_subject_token() {
    let gw = Gateway::start(&body()).await;
    let subject = app(&gw, "token", ADMIN_LOGIN).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Traded a second later, and that one again a second after: each
    // expires with the token it came from, never later (RFC 8693 §2.1
    // lets the server pick the lifetime; a later one would renew forever).
    let mut previous = subject.clone();
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let r = exchanged(&gw, &previous).await;
        assert_eq!(r.status, 200, "{}", r.json);
        let token = r.json["access_token"].as_str().unwrap().to_string();
        assert!(
            exp_of(&token) <= exp_of(&subject),
            "exchanged exp {} after the subject's {}",
            exp_of(&token),
            exp_of(&subject)
        );
        // expires_in says the same as the token (RFC 6749 §5.1).
        let claims = claims_of(&token);
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(r.json["expires_in"].as_i64().unwrap(), lifetime);
        previous = token;
    }
}

async fn revoking_the_subject_jti_revokes_what_it_was_traded_for(body: &str) {
    let gw = Gateway::start(body).await;
    let subject = app(&gw, "token", ADMIN_LOGIN).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let first = exchanged(&gw, &subject).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let second = exchanged(&gw, &first).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        proxied(&gw, &format!("Bearer {second}")).await.status(),
        200
    );
    let jti = claims_of(&subject)["jti"].clone();
    let r = gw.revoke(serde_json::json!({ "jti": jti })).await;
    assert_eq!(r.status(), 200);
    for token in [&subject, &first, &second] {
        assert!(
            refused(&gw, token).await,
            "a token of the lineage still works"
        );
    }
    let r = exchanged(&gw, &second).await;
    assert_error(&r, 400, "invalid_grant");
}

#[tokio::test]
async fn revoking_a_subject_token_revokes_the_tokens_traded_for_it() {
    revoking_the_subject_jti_revokes_what_it_was_traded_for(&body()).await;
}

#[tokio::test]
async fn revoking_a_subject_token_revokes_the_tokens_traded_for_it_on_redis() {
    if let Some(body) = on_redis() {
        revoking_the_subject_jti_revokes_what_it_was_traded_for(&body).await;
    }
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_tokens_traded_from_its_family() {
    let gw = Gateway::start(&body()).await;
    let first = app(&gw, "token", ADMIN_LOGIN).await;
    let refresh1 = first.json["refresh_token"].as_str().unwrap().to_string();
    let second = app(
        &gw,
        "token",
        &format!("grant_type=refresh_token&refresh_token={refresh1}"),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.json);
    let access2 = second.json["access_token"].as_str().unwrap().to_string();
    let traded = exchanged(&gw, &access2).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        proxied(&gw, &format!("Bearer {traded}")).await.status(),
        200
    );
    // The replaced refresh token again: the family goes (RFC 9700
    // §4.14.2), and what was traded from it with it.
    let r = app(
        &gw,
        "token",
        &format!("grant_type=refresh_token&refresh_token={refresh1}"),
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
    for token in [&access2, &traded] {
        assert!(
            refused(&gw, token).await,
            "a token of the family still works"
        );
    }
    let r = exchanged(&gw, &traded).await;
    assert_error(&r, 400, "invalid_grant");
}

#[tokio::test]
async fn a_principal_gone_from_the_config_gets_nothing_by_exchange() {
    let body = body();
    let gw = Gateway::start(&body).await;
    let subject = app(&gw, "token", ADMIN_LOGIN).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(exchanged(&gw, &subject).await.status, 200);
    // The login-refresh issuer's admin removed (its block renamed away).
    let users = body.find("[[issuers.login-refresh.principals]]").unwrap();
    let (head, tail) = body.split_at(users);
    let without = format!(
        "{head}{}",
        tail.replacen("username = \"admin\"", "username = \"someone-else\"", 1)
    );
    gw.rewrite_config(&without);
    let reloaded = reqwest::Client::new()
        .post(gw.admin_url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reloaded.status(), 200);
    let r = exchanged(&gw, &subject).await;
    assert_error(&r, 400, "invalid_grant");
}

async fn one_refresh_token_used_at_once_by_eight(body: &str) {
    let gw = Gateway::start(body).await;
    for round in 0..5 {
        let login = app(&gw, "token", ADMIN_LOGIN).await;
        let refresh = login.json["refresh_token"].as_str().unwrap().to_string();
        let form = format!("grant_type=refresh_token&refresh_token={refresh}");
        let replies =
            futures_util::future::join_all((0..8).map(|_| app(&gw, "token", &form))).await;
        let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
        assert_eq!(winners.len(), 1, "round {round}: one use wins");
        for r in replies.iter().filter(|r| r.status != 200) {
            assert_error(r, 400, "invalid_grant");
        }
        // Every other use was of a token already replaced: a reuse, and
        // the family ends, the winner's new tokens with it.
        let won = &winners[0].json;
        let next = won["refresh_token"].as_str().unwrap();
        let r = app(
            &gw,
            "token",
            &format!("grant_type=refresh_token&refresh_token={next}"),
        )
        .await;
        assert_error(&r, 400, "invalid_grant");
        let access = won["access_token"].as_str().unwrap();
        assert!(refused(&gw, access).await, "round {round}");
        let access = login.json["access_token"].as_str().unwrap();
        assert!(refused(&gw, access).await, "round {round}");
    }
}

#[tokio::test]
async fn concurrent_uses_of_one_refresh_token_revoke_its_family() {
    one_refresh_token_used_at_once_by_eight(&body()).await;
}

#[tokio::test]
async fn concurrent_uses_of_one_refresh_token_revoke_its_family_on_redis() {
    if let Some(body) = on_redis() {
        one_refresh_token_used_at_once_by_eight(&body).await;
    }
}

#[tokio::test]
async fn a_parameter_sent_twice_is_refused_even_when_one_copy_is_empty() {
    let gw = Gateway::start(&body()).await;
    let client = basic(CLIENT, SECRET);
    let auth = Some(client.as_str());
    // RFC 6749 §3.2: parameters MUST NOT be included more than once; an
    // empty copy is a copy, whichever comes first.
    for form in [
        "grant_type=client_credentials&grant_type=",
        "grant_type=&grant_type=client_credentials",
        "grant_type=client_credentials&scope=documents%3Aread&scope=",
    ] {
        let r = post_form(&gw, "token", auth, form).await;
        assert_error(&r, 400, "invalid_request");
    }
    let own = token(&gw, "grant_type=client_credentials").await;
    let r = post_form(&gw, "introspect", auth, &format!("token={own}&token=")).await;
    assert_error(&r, 400, "invalid_request");
    let r = post_form(&gw, "revoke", auth, &format!("token=&token={own}")).await;
    assert_error(&r, 400, "invalid_request");
    assert_eq!(
        proxied(&gw, &format!("Bearer {own}")).await.status(),
        200,
        "a refused revocation revoked nothing"
    );
}

#[tokio::test]
async fn basic_credentials_beside_an_empty_form_secret_are_two_methods() {
    let gw = Gateway::start(&body()).await;
    // RFC 6749 §2.3: one method a request; an empty copy is still sent.
    for form in [
        "grant_type=client_credentials&client_secret=",
        "client_secret=&grant_type=client_credentials",
    ] {
        let r = post_form(&gw, "token", Some(&basic(CLIENT, SECRET)), form).await;
        assert_error(&r, 400, "invalid_request");
    }
    let r = post_form(
        &gw,
        "token",
        Some(&basic(CLIENT, SECRET)),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
}

/// Another gateway takes this one's tokens by asking its introspection
/// endpoint (it holds none of its keys): the answer is kept, and a token
/// revoked here is refused there once the kept answer lapses.
#[tokio::test]
async fn another_gateway_takes_these_tokens_by_introspection() {
    let secret = "portero-introspects-0123456789";
    let extra = "introspect = true\nauth_method = \"client_secret_basic\"";
    let body = with_flat_client(demo_body(), "gateway-b", secret, extra);
    let idp = Gateway::start(&body).await;
    let base = idp.public_url(&body).await;
    let r = post_form(
        &idp,
        "token",
        Some(&basic(CLIENT, SECRET)),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let access = r.json["access_token"].as_str().unwrap().to_string();

    let app = Upstream::start("app").await;
    let gateway_b = format!(
        "{}\n[issuers.upstream-portero]\niss = \"{base}{ISSUER_PATH}\"\n\
         introspection_url = \"{base}{ISSUER_PATH}/introspect\"\nclient_id = \"gateway-b\"\n\
         client_secret_env = \"TEST_INTROSPECTION_SECRET\"\nintrospection_cache_ttl = \"1s\"\n\n\
         [[routes]]\nname = \"api\"\npath = \"/api\"\nupstream = \"app\"\nissuers = [\"upstream-portero\"]\n\n\
         [routes.headers]\nx-sub = \"sub\"\n",
        upstream("app", &[app.addr], "")
    );
    let b = Gateway::start(&gateway_b).await;
    let call = |token: String| {
        let url = b.url("/api/x");
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, echo) = call(access.clone()).await;
    assert_eq!(status, StatusCode::OK, "{echo} {}", b.log());
    assert_eq!(echo["headers"]["x-sub"], CLIENT);
    let forged = format!("{}x", access);
    assert_eq!(call(forged).await.0, StatusCode::UNAUTHORIZED);

    let revoked = post_form(
        &idp,
        "revoke",
        Some(&basic(CLIENT, SECRET)),
        &format!("token={access}"),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    let refused = poll(
        std::time::Duration::from_secs(4),
        || call(access.clone()),
        |(status, _)| *status == StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        refused.0,
        StatusCode::UNAUTHORIZED,
        "revoked at the provider"
    );
}

/// The legacy login-refresh path's answer to `refresh`.
async fn legacy_refresh(gw: &Gateway, refresh: &str) -> u16 {
    let body = serde_json::json!({ "refreshToken": refresh }).to_string();
    let (status, _) = post(gw, "/api/auth/refreshtoken", None, &body).await;
    status.as_u16()
}

/// A family one rotation old: the replaced refresh token, the one that
/// replaced it, and the access token minted with that.
struct Rotated {
    replaced: String,
    refresh: String,
    access: String,
}

/// The demo application's user logged in, and the refresh token used once.
async fn rotated_once(gw: &Gateway) -> Rotated {
    let first = app(gw, "token", ADMIN_LOGIN).await;
    let replaced = first.json["refresh_token"].as_str().unwrap().to_string();
    let form = format!("grant_type=refresh_token&refresh_token={replaced}");
    let second = app(gw, "token", &form).await;
    assert_eq!(second.status, 200, "{}", second.json);
    let field = |name: &str| second.json[name].as_str().unwrap().to_string();
    Rotated {
        refresh: field("refresh_token"),
        access: field("access_token"),
        replaced,
    }
}

/// Asserts that the family of `rotated` has ended: its newest refresh
/// token refused, its access token revoked.
async fn assert_family_ended(gw: &Gateway, rotated: &Rotated) {
    let form = format!("grant_type=refresh_token&refresh_token={}", rotated.refresh);
    assert_error(&app(gw, "token", &form).await, 400, "invalid_grant");
    let bearer = format!("Bearer {}", rotated.access);
    assert_eq!(proxied(gw, &bearer).await.status(), 401);
}

#[tokio::test]
async fn an_oauth2_refresh_token_is_used_only_at_the_token_endpoint() {
    let gw = Gateway::start(&body()).await;
    let first = app(&gw, "token", ADMIN_LOGIN).await;
    let live = first.json["refresh_token"].as_str().unwrap();
    // A live OAuth 2.0 refresh token at the legacy path: refused there,
    // without client authentication, and still its client's.
    assert_eq!(legacy_refresh(&gw, live).await, 401);
    let form = format!("grant_type=refresh_token&refresh_token={live}");
    assert_eq!(app(&gw, "token", &form).await.status, 200);
    // A replaced one at the legacy path is a reuse: refused, and the
    // family (the newest refresh token, its access token) ends with it.
    let rotated = rotated_once(&gw).await;
    assert_eq!(legacy_refresh(&gw, &rotated.replaced).await, 401);
    assert_eq!(legacy_refresh(&gw, &rotated.replaced).await, 401);
    assert_family_ended(&gw, &rotated).await;
    gw.log_with("its family is revoked").await;
}

#[tokio::test]
async fn a_replaced_refresh_token_presented_by_another_client_ends_its_family() {
    let gw = Gateway::start(&body()).await;
    let rotated = rotated_once(&gw).await;
    let other = basic(OTHER_APP, APP_SECRET);
    let form = format!(
        "grant_type=refresh_token&refresh_token={}",
        rotated.replaced
    );
    let r = post_to(&gw, &format!("{USERS_PATH}/token"), Some(&other), &form).await;
    assert_error(&r, 400, "invalid_grant");
    assert_family_ended(&gw, &rotated).await;
}

/// A token exchange's subject: the refresh token `rotated` replaced.
fn replaced_subject(rotated: &Rotated) -> String {
    format!(
        "subject_token={}&subject_token_type={REFRESH_TYPE}",
        rotated.replaced
    )
}

#[tokio::test]
async fn a_replaced_refresh_token_traded_by_exchange_ends_its_family() {
    let gw = Gateway::start(&body()).await;
    let rotated = rotated_once(&gw).await;
    let subject = replaced_subject(&rotated);
    let r = app(&gw, "token", &format!("{EXCHANGE}&{subject}")).await;
    assert_error(&r, 400, "invalid_grant");
    assert_family_ended(&gw, &rotated).await;
}

/// A replaced refresh token leaked: traded by another issuer's token
/// exchange (client-flat serves no refresh grant), the family ends too.
#[tokio::test]
async fn a_replaced_refresh_token_at_another_issuers_door_ends_its_family() {
    let gw = Gateway::start(&body()).await;
    let rotated = rotated_once(&gw).await;
    let subject = replaced_subject(&rotated);
    let client = basic(CLIENT, SECRET);
    let r = post_form(
        &gw,
        "token",
        Some(&client),
        &format!("{EXCHANGE}&{subject}"),
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
    assert_family_ended(&gw, &rotated).await;
}

/// RFC 7662 §2.2: a live refresh token introspects to its own client (and
/// one with `introspect = true`) as `token_type` `refresh_token`, with what
/// the store knows of it; introspection changes nothing (no rotation, no
/// reuse detection), and a replaced token is inactive.
#[tokio::test]
async fn a_live_refresh_token_introspects_to_its_client_and_stays_as_it_was() {
    let seer = format!(
        "[[issuers.login-refresh.oauth2.clients]]\nclient_id = \"seer\"\nsecret_hash = \"{}\"\n\
         introspect = true\n\n[[issuers.login-refresh.principals]]",
        portero::credentials::hash_fast(APP_SECRET)
    );
    let body = body().replacen("[[issuers.login-refresh.principals]]", &seer, 1);
    let gw = Gateway::start(&body).await;
    let first = app(&gw, "token", ADMIN_LOGIN).await;
    let access = claims_of(first.json["access_token"].as_str().unwrap());
    let refresh = first.json["refresh_token"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let r = app(&gw, "introspect", &format!("token={refresh}")).await;
        assert_eq!(r.status, 200, "{}", r.json);
        assert_uncached(&r);
        let a = &r.json;
        assert_eq!(a["active"], true, "{a}");
        assert_eq!(a["token_type"], "refresh_token", "{a}");
        assert_eq!(a["client_id"], APP, "{a}");
        assert_eq!(a["sub"], access["sub"], "{a}");
        assert_eq!(a["scope"], "profile orders", "{a}");
        assert_eq!(a["iss"], access["iss"], "{a}");
        let (iat, exp) = (a["iat"].as_i64().unwrap(), a["exp"].as_i64().unwrap());
        assert!(iat <= access["iat"].as_i64().unwrap() && exp > iat, "{a}");
    }
    // Another client learns nothing.
    let other = basic(OTHER_APP, APP_SECRET);
    let path = format!("{USERS_PATH}/introspect");
    let r = post_to(&gw, &path, Some(&other), &format!("token={refresh}")).await;
    assert_eq!(r.json, serde_json::json!({ "active": false }));
    // A client that may introspect every token of the issuer sees it.
    let seer = basic("seer", APP_SECRET);
    let r = post_to(&gw, &path, Some(&seer), &format!("token={refresh}")).await;
    assert_eq!(r.json["client_id"], APP, "{}", r.json);
    // Introspected four times, it still refreshes once, as any live token.
    let form = format!("grant_type=refresh_token&refresh_token={refresh}");
    let second = app(&gw, "token", &form).await;
    assert_eq!(second.status, 200, "{}", second.json);
    let newer = second.json["refresh_token"].as_str().unwrap().to_string();
    // The replaced one is inactive, and asking about it ends no family.
    let r = app(&gw, "introspect", &format!("token={refresh}")).await;
    assert_eq!(r.json, serde_json::json!({ "active": false }));
    let r = app(&gw, "introspect", &format!("token={newer}")).await;
    assert_eq!(r.json["active"], true, "{}", r.json);
    let form = format!("grant_type=refresh_token&refresh_token={newer}");
    assert_eq!(app(&gw, "token", &form).await.status, 200);
    // An unknown one is inactive.
    let r = app(&gw, "introspect", "token=not-a-refresh-token").await;
    assert_eq!(r.json, serde_json::json!({ "active": false }));
}
