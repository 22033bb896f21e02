//! A `kind = "oauth2"` issuer for the sign-in tests: its config, and the
//! authorization code flow driven over plain HTTP (the page's form read
//! and posted back, as a browser without JavaScript would).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::Gateway;

pub const USER: &str = "ada";
pub const USER_PASSWORD: &str = "correct horse battery staple";
/// A public client (PKCE only) and a confidential one.
pub const APP: &str = "notes-cli";
pub const SERVICE: &str = "billing";
pub const SERVICE_SECRET: &str = "billing-secret-0123456789abcdef";
pub const CALLBACK: &str = "http://127.0.0.1/callback";

/// The issuer `app`, its users and clients, and routes: `/public`, `/admin`
/// (role `admin`), everything else any token of it.
pub fn standard_body(extra_oauth2: &str) -> String {
    let user_hash = portero::credentials::hash_fast(USER_PASSWORD);
    let bob_hash = portero::credentials::hash_fast("bob's password");
    let service_hash = portero::credentials::hash_fast(SERVICE_SECRET);
    format!(
        r#"
[upstreams.echo]
builtin = "echo"

[issuers.app]
kind = "oauth2"
token_ttl = "10m"
max_failures = 3

[issuers.app.oauth2]
{extra_oauth2}

[[issuers.app.users]]
username = "{USER}"
secret_hash = "{user_hash}"
roles = ["admin"]
claims = {{ team = "core" }}

[[issuers.app.users]]
username = "bob"
secret_hash = "{bob_hash}"

[[issuers.app.clients]]
client_id = "{APP}"
redirect_uris = ["{CALLBACK}"]
scopes = ["notes:read"]

[[issuers.app.clients]]
client_id = "{SERVICE}"
secret_hash = "{service_hash}"
roles = ["service"]
scopes = ["invoices"]

[[routes]]
name = "public"
path = "/public"
upstream = "echo"
public = true

[[routes]]
name = "admin"
path = "/admin-area"
upstream = "echo"
roles = ["admin"]

[[routes]]
name = "default"
path = "/"
upstream = "echo"

[routes.headers]
x-user-sub = "sub"
"#
    )
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_bytes() -> [u8; 32] {
    rand::random()
}

/// A browser without JavaScript: it keeps cookies and does not follow redirects.
pub struct Browser {
    pub http: reqwest::Client,
    pub cookies: Vec<(String, String)>,
}

impl Default for Browser {
    fn default() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, r: &reqwest::Response) {
        for set in r.headers().get_all("set-cookie") {
            let text = set.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() && !text.contains("Max-Age=0") {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
    }

    pub async fn get(&mut self, url: &str) -> (u16, Option<String>, String) {
        let r = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(r).await
    }

    pub async fn post_form(
        &mut self,
        url: &str,
        fields: &[(String, String)],
    ) -> (u16, Option<String>, String) {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let r = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.finish(r).await
    }

    async fn finish(&mut self, r: reqwest::Response) -> (u16, Option<String>, String) {
        self.keep(&r);
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (status, location, r.text().await.unwrap())
    }
}

/// The hidden fields and action of the page's form.
pub fn form_of(html: &str) -> (String, Vec<(String, String)>) {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(unescape(&tag[start..end]))
    };
    let form_tag = html
        .split("<form")
        .nth(1)
        .expect("a form")
        .split('>')
        .next()
        .unwrap();
    let action = attr(form_tag, "action").unwrap();
    let fields = html
        .split("<input")
        .skip(1)
        .map(|t| t.split('>').next().unwrap())
        .filter(|t| t.contains("type=\"hidden\""))
        .map(|t| {
            (
                attr(t, "name").unwrap(),
                attr(t, "value").unwrap_or_default(),
            )
        })
        .collect();
    (action, fields)
}

/// The query parameters of a URL.
pub fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// `/oauth2/app/authorize?...` for the public client.
pub fn authorize_url(gw: &Gateway, challenge: &str, extra: &str) -> String {
    authorize_url_for(
        gw,
        APP,
        CALLBACK,
        "openid offline_access notes:read",
        &format!("&nonce=n-456&code_challenge={challenge}{extra}"),
    )
}

/// `/oauth2/app/authorize?...` on `gw` for `client`, back to `redirect_uri`,
/// with `state=s-123`, S256 and `extra` (which carries the challenge).
pub fn authorize_url_for(
    gw: &Gateway,
    client: &str,
    redirect_uri: &str,
    scope: &str,
    extra: &str,
) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    gw.url(&format!(
        "/oauth2/app/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=s-123&code_challenge_method=S256{extra}",
        enc(client),
        enc(redirect_uri),
        enc(scope).replace('+', "%20"),
    ))
}

/// `url` with the origin of `gw`: the page's form names the issuer's
/// `public_url`, which instances sharing one name but listening on ports
/// of their own do not answer at. The same URL where it is the gateway's.
pub fn on(gw: &Gateway, url: &str) -> String {
    let parsed = url::Url::parse(url).unwrap();
    let mut path = parsed.path().to_string();
    if let Some(q) = parsed.query() {
        path = format!("{path}?{q}");
    }
    gw.url(&path)
}

/// Signs `USER` in on the page and returns the code the redirect carries.
pub async fn sign_in(gw: &Gateway, browser: &mut Browser, challenge: &str) -> String {
    sign_in_at(gw, browser, &authorize_url(gw, challenge, "")).await
}

/// Signs `USER` in on the page of the authorization request `url` and
/// returns the code the redirect carries.
pub async fn sign_in_at(gw: &Gateway, browser: &mut Browser, url: &str) -> String {
    let (status, _, page) = browser.get(url).await;
    assert_eq!(status, 200, "{page}");
    let (action, mut fields) = form_of(&page);
    fields.push(("username".into(), USER.into()));
    fields.push(("password".into(), USER_PASSWORD.into()));
    let (status, location, body) = browser.post_form(&on(gw, &action), &fields).await;
    assert_eq!(status, 303, "{body}");
    let q = query_of(&location.unwrap());
    assert_eq!(q["state"], "s-123");
    q["code"].clone()
}

/// The token endpoint's answer to a code and verifier.
pub async fn redeem(gw: &Gateway, code: &str, verifier: &str) -> (u16, serde_json::Value) {
    redeem_for(gw, APP, CALLBACK, code, verifier).await
}

/// The token endpoint's answer to a code of `client`'s, sent to `redirect_uri`.
pub async fn redeem_for(
    gw: &Gateway,
    client: &str,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The token endpoint's answer to the public client's refresh token, with
/// `extra` parameters.
pub async fn refresh(
    gw: &Gateway,
    token: &str,
    extra: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", APP),
    ];
    form.extend_from_slice(extra);
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// [`standard_body`] with the issuer's `cors` allowing `origin`: a page
/// there may call its endpoints.
pub fn standard_body_with_cors(origin: &str) -> String {
    let body =
        standard_body("").replace("max_failures = 3\n", "max_failures = 3\ncors = \"spa\"\n");
    format!("{body}\n[cors.spa]\nallow_origins = [\"{origin}\"]\n")
}

/// Registers a client at `gw`'s issuer `app` with `metadata` (RFC 7591):
/// its id.
pub async fn register_client(gw: &Gateway, metadata: serde_json::Value) -> String {
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/register"))
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let client: serde_json::Value = r.json().await.unwrap();
    client["client_id"].as_str().unwrap().to_string()
}

/// The one-time code pyotp (not portero) computes for `secret` (base32),
/// `ahead` 30-second steps from now.
pub fn pyotp(secret: &str, ahead: i64) -> String {
    let script = format!(
        "import pyotp, time; print(pyotp.TOTP('{secret}').at(time.time() + {}))",
        ahead * 30
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyotp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A gateway on `body` whose `server.public_url` is its own address.
pub async fn started_with_public_url(body: &str) -> Gateway {
    let gw = Gateway::start(body).await;
    gw.public_url(body).await;
    gw
}

/// The issuer `app`'s metadata (RFC 8414).
pub async fn metadata(gw: &Gateway) -> serde_json::Value {
    reqwest::get(gw.url("/.well-known/oauth-authorization-server/oauth2/app"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The form that redeems `code` of the public client with `verifier`.
pub fn code_form<'a>(code: &'a str, verifier: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("client_id", APP),
        ("code_verifier", verifier),
    ]
}

/// The status of `GET path` with `token` as a bearer token.
pub async fn status_with(gw: &Gateway, path: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(gw.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
