//! Talking to the token endpoints of a gateway on the demo config.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;

use super::{demo_body, Gateway};

/// The session dialect's endpoint in the demo config.
pub const SESSION: &str = "/api/Session/GetToken";

/// The demo's client-flat client, an OAuth 2.0 client too.
pub const DEMO_CLIENT: &str = "demo_client_123";
pub const DEMO_CLIENT_SECRET: &str = "demo_secret_456_ABCDEFGH";
/// The demo login-refresh issuer's OAuth 2.0 application.
pub const DEMO_APP: &str = "demo_app";
pub const DEMO_APP_SECRET: &str = "demo_app_secret_7f3c9a2b";

/// The demo's issuers and routes, in front of its built-in echo upstream,
/// with `edit` applied (e.g. shorter limits).
pub async fn demo(edit: impl Fn(String) -> String) -> Gateway {
    Gateway::start(&edit(demo_body())).await
}

pub async fn post(
    gw: &Gateway,
    path: &str,
    host: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut req = reqwest::Client::new()
        .post(gw.url(path))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    assert_eq!(r.headers()["content-type"], "application/json", "{path}");
    (status, r.text().await.unwrap())
}

pub fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The keys of a JSON object, in the order they were sent.
pub fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A login to a user dialect's endpoint at `path` (session or login-refresh).
pub async fn user_login(
    gw: &Gateway,
    path: &str,
    username: &str,
    password: &str,
) -> (StatusCode, String) {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    post(gw, path, None, &body).await
}

/// A proxied request with `authorization` exactly as given.
pub async fn proxied(gw: &Gateway, authorization: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(gw.url("/orders/7"))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
}

pub fn is_plain_datetime(s: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
}

pub fn is_iso_millis_z(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// A refresh token from the login-refresh dialect for the demo's `admin`.
pub async fn admin_refresh_token(gw: &Gateway) -> String {
    let (_, body) = post(
        gw,
        "/api/auth/token",
        None,
        r#"{"username":"admin","password":"abcd1234"}"#,
    )
    .await;
    parse(&body)["refreshToken"]["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The demo body with a client-flat client `id` added (a fast-hash
/// secret, the demo's company) and `extra` TOML lines in its table.
pub fn with_flat_client(body: String, id: &str, secret: &str, extra: &str) -> String {
    let client = format!(
        "[[issuers.client-flat.principals]]\nclient_id = \"{id}\"\nsecret_hash = \"{}\"\n\
         company = \"becomedigital\"\n{extra}\n",
        portero::credentials::hash_fast(secret)
    );
    let first = "[[issuers.client-flat.principals]]\nclient_id = \"demo_client_123\"";
    body.replace(first, &format!("{client}{first}"))
}
