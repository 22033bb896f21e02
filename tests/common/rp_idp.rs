//! A real OpenID provider for a gateway that signs browsers in: panva's
//! `oidc-provider` run by Node.js from tests/oidc/rp_provider.mjs (see its
//! header for the client, the pages and the accounts). One confidential
//! client, the authorization code grant with PKCE S256, refresh tokens,
//! RP-initiated logout and Back-Channel Logout 1.0 to the client. A
//! browser signs in with [`sign_in_at_provider`] (any login, which becomes
//! `sub`) and confirms a logout with [`confirm_logout_at_provider`]; a test
//! signs its own logout tokens with the provider's key by
//! [`RpIdp::sign_logout_token`], and has the next ID token changed by
//! [`RpIdp::change_next_id_token`].

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::{Client, Locator};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::{now, outside_program, poll, Outside};

const PROVIDER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");

/// The client's secret (the provider's client authenticates by
/// client_secret_basic).
pub const RP_CLIENT_SECRET: &str = "portero-web-secret-0123456789abcdef";

/// What the provider is started with.
pub struct RpIdpOptions {
    /// The gateway's callback, the client's one redirect URI.
    pub redirect_uri: String,
    /// Where end_session may send the browser back to.
    pub post_logout_redirect_uri: String,
    /// The client's `backchannel_logout_uri` (with
    /// `backchannel_logout_session_required`), if any.
    pub backchannel_logout_uri: Option<String>,
    /// The ID and logout tokens' algorithm: RS256, PS256, ES256, EdDSA...
    pub alg: String,
    /// The access tokens' lifetime, seconds.
    pub access_token_ttl: u64,
    /// A JSON object every account's ID token and userinfo carry (roles...).
    pub extra_claims: Value,
}

impl Default for RpIdpOptions {
    /// RS256, 300 s, no extra claims, no back-channel logout; the URIs
    /// empty (the provider needs a redirect URI).
    fn default() -> RpIdpOptions {
        RpIdpOptions {
            redirect_uri: String::new(),
            post_logout_redirect_uri: String::new(),
            backchannel_logout_uri: None,
            alg: "RS256".into(),
            access_token_ttl: 300,
            extra_claims: json!({}),
        }
    }
}

/// The provider on a loopback port of its own, killed when dropped.
pub struct RpIdp {
    /// `http://127.0.0.1:PORT`, also its discovery's base.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Its signing key, PKCS#8 PEM.
    pub private_pem: String,
    /// The same key as a private JWK (with `kid`, `alg`, `use`).
    pub private_jwk: Value,
    pub kid: String,
    pub alg: String,
    child: Child,
    /// What it wrote to stderr: its notices, each back-channel logout's
    /// outcome, its errors.
    log: Arc<Mutex<String>>,
}

impl Drop for RpIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Node.js and the provider's package, or the test is skipped (fails
/// under `PORTERO_REQUIRE_OIDC=1`).
fn provider_installed() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let package = std::path::Path::new(PROVIDER_DIR).join("node_modules/oidc-provider");
    let missing = match (node, package.exists()) {
        (false, _) => Some("node (Node.js) is not installed".to_string()),
        (true, false) => Some("oidc-provider is not installed".into()),
        (true, true) => None,
    };
    outside_program(Outside::Oidc, missing)
}

impl RpIdp {
    /// The provider, ready; `None` when the test is skipped for want of
    /// Node.js or oidc-provider.
    pub fn start(options: RpIdpOptions) -> Option<RpIdp> {
        if !provider_installed() {
            return None;
        }
        let client_id = "portero-web".to_string();
        let mut command = Command::new("node");
        command
            .arg("rp_provider.mjs")
            .current_dir(PROVIDER_DIR)
            .env("REDIRECT_URI", &options.redirect_uri)
            .env(
                "POST_LOGOUT_REDIRECT_URI",
                &options.post_logout_redirect_uri,
            )
            .env("CLIENT_ID", &client_id)
            .env("CLIENT_SECRET", RP_CLIENT_SECRET)
            .env("TOKEN_ALG", &options.alg)
            .env("ACCESS_TOKEN_TTL", options.access_token_ttl.to_string())
            .env("EXTRA_CLAIMS", options.extra_claims.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &options.backchannel_logout_uri {
            Some(uri) => command.env("BACKCHANNEL_LOGOUT_URI", uri),
            None => command.env_remove("BACKCHANNEL_LOGOUT_URI"),
        };
        let mut child = command.spawn().expect("node (Node.js) runs the provider");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let written = log.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut chunk) {
                written
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // Nothing more is written there, but a closed pipe would end it.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let _ = child.wait();
            // The rest of its stderr.
            std::thread::sleep(Duration::from_millis(200));
            panic!(
                "the provider did not start: {line:?}\n{}",
                log.lock().unwrap()
            )
        });
        let issuer = ready["issuer"].as_str().unwrap().to_string();
        assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer:?}");
        let jwk = ready["private_jwk"].clone();
        Some(RpIdp {
            issuer,
            client_id,
            client_secret: RP_CLIENT_SECRET.to_string(),
            private_pem: ready["private_pem"].as_str().unwrap().to_string(),
            kid: jwk["kid"].as_str().unwrap().to_string(),
            alg: jwk["alg"].as_str().unwrap().to_string(),
            private_jwk: jwk,
            child,
            log,
        })
    }

    /// A URL of the provider's: `path` on the issuer.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    pub fn discovery_url(&self) -> String {
        self.url("/.well-known/openid-configuration")
    }

    /// What the provider wrote to stderr so far (each back-channel
    /// logout's outcome among it), for a failing test's message.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The next ID token the provider's token endpoint issues has `header`
    /// merged into its JOSE header and `claims` into its claims, and is
    /// signed again with the provider's key: a provider gone wrong.
    pub async fn change_next_id_token(&self, header: Value, claims: Value) {
        let r = reqwest::Client::new()
            .post(self.url("/test/next-id-token"))
            .json(&json!({ "header": header, "claims": claims }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    }

    /// A logout token's claims as the provider would write them (`iss`,
    /// `aud`, `iat`, `exp`, `jti`, the back-channel logout event), with
    /// `sub` and `sid` when given: for [`RpIdp::sign_logout_token`], changed
    /// first to make a bad one.
    pub fn logout_claims(&self, sub: Option<&str>, sid: Option<&str>) -> Value {
        let iat = now();
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": iat,
            "exp": iat + 120,
            "jti": format!("test-logout-{iat}-{}", std::process::id()),
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        if let Some(sub) = sub {
            claims["sub"] = json!(sub);
        }
        if let Some(sid) = sid {
            claims["sid"] = json!(sid);
        }
        claims
    }

    /// `claims` signed with the provider's own key: header `typ:
    /// logout+jwt`, its `kid` and `alg`.
    pub fn sign_logout_token(&self, claims: &Value) -> String {
        let alg: Algorithm = self.alg.parse().expect("an algorithm jsonwebtoken knows");
        let pem = self.private_pem.as_bytes();
        let key = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => EncodingKey::from_rsa_pem(pem),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            other => panic!("the provider signs with no {other:?} key"),
        }
        .expect("the provider's key");
        let mut header = Header::new(alg);
        header.typ = Some("logout+jwt".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

/// How long a browser may take to reach a page.
const PAGE: Duration = Duration::from_secs(10);

/// The path of the browser's current URL.
async fn path_of(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_string()
}

/// With the browser on the provider's sign-in page: types `login` and a
/// password (any is taken) and submits; consent needs no page. Returns once
/// the browser has left the provider's sign-in pages (on its way to the
/// client's redirect URI).
pub async fn sign_in_at_provider(client: &Client, login: &str) {
    let field = match client
        .wait()
        .at_most(PAGE)
        .for_element(Locator::Id("login"))
        .await
    {
        Ok(field) => field,
        Err(e) => panic!(
            "not on the provider's sign-in page ({e}): at {}, showing {}",
            client.current_url().await.unwrap(),
            client.source().await.unwrap_or_default()
        ),
    };
    field.clear().await.unwrap();
    field.send_keys(login).await.unwrap();
    let password = client.find(Locator::Id("password")).await.unwrap();
    password.send_keys("any password").await.unwrap();
    client
        .find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let at = poll(
        PAGE,
        || path_of(client),
        |p| !p.starts_with("/interaction/"),
    )
    .await;
    assert!(
        !at.starts_with("/interaction/"),
        "the browser stayed on the provider's sign-in page: {}",
        client.source().await.unwrap_or_default()
    );
}

/// With the browser on the provider's end_session page: presses "Yes, sign
/// me out" (which sends the back-channel logout), or, with no session to
/// end there, the page's form is posted (by its own script, or its button
/// when scripts are off). Returns once the browser has left end_session.
pub async fn confirm_logout_at_provider(client: &Client) {
    let confirm = Locator::Css("#logout-yes, form[action$='/session/end/confirm'] button");
    let ending = |path: &str| path.starts_with("/session/end") && path != "/session/end/success";
    let pressed = poll(
        PAGE,
        || async {
            match client.find(confirm).await {
                Ok(button) => button.click().await.is_ok(),
                Err(_) => !ending(&path_of(client).await),
            }
        },
        |done| *done,
    )
    .await;
    assert!(
        pressed,
        "no logout to confirm: at {}, showing {}",
        client.current_url().await.unwrap(),
        client.source().await.unwrap_or_default()
    );
    let at = poll(PAGE, || path_of(client), |p| !ending(p)).await;
    assert!(!ending(&at), "the browser stayed at the provider's {at}");
}
