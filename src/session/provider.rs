//! A provider portero signs people in at, as its OpenID Connect client:
//! where its endpoints are (from its discovery document, or portero's own
//! issuer's), and the requests portero makes there (the code and refresh
//! grants, userinfo); an own issuer's grants are asked in process
//! ([`OwnIssuer`]). Off the request path: only sign-ins and refreshes
//! come here.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{publishes_metadata_at, Issuer, KeyLocation, LoginClient};

/// A discovery document is read again after this long.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);
/// A discovery document that could not be read is not asked for again
/// sooner than this.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
/// The most of a provider's answer portero reads.
const MAX_ANSWER: usize = 256 * 1024;

/// What went wrong at the provider, said without its secrets.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the provider refused: {0}")]
    Refused(String),
    #[error("the provider's answer is unusable: {0}")]
    Invalid(String),
}

/// Where a provider's endpoints are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Endpoints {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// RFC 9207: every authorization response names the provider (`iss`).
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// What a grant gives: a token endpoint's answer, or an own issuer's.
#[derive(Debug, Clone, Deserialize)]
pub struct Granted {
    pub access_token: String,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// portero's own issuers, whose grants a sign-in asks for in process: an
/// own provider's `public_url` need not be reachable from the gateway
/// itself, and nothing is written out as a request to be read back.
#[async_trait]
pub trait OwnIssuer: Send + Sync {
    /// Issuer `issuer`'s `authorization_code` grant.
    async fn redeem_code(
        &self,
        issuer: usize,
        grant: CodeGrant<'_>,
    ) -> Result<Granted, GrantRefused>;

    /// Issuer `issuer`'s `refresh_token` grant.
    async fn refresh(
        &self,
        issuer: usize,
        grant: RefreshGrant<'_>,
    ) -> Result<Granted, GrantRefused>;
}

/// A code to redeem, by the client it was issued to, with the redirect
/// URI and PKCE verifier of its authorization request.
#[derive(Clone, Copy)]
pub struct CodeGrant<'a> {
    pub client_id: &'a str,
    pub code: &'a str,
    pub code_verifier: &'a str,
    pub redirect_uri: &'a str,
}

/// A refresh token to use, by the client it was issued to.
#[derive(Clone, Copy)]
pub struct RefreshGrant<'a> {
    pub client_id: &'a str,
    pub refresh_token: &'a str,
}

/// A grant the issuer refused: its error code (RFC 6749 §5.2), as its
/// token endpoint would have answered it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct GrantRefused {
    pub error: &'static str,
}

impl From<GrantRefused> for ProviderError {
    fn from(refused: GrantRefused) -> ProviderError {
        ProviderError::Refused(refused.error.to_string())
    }
}

pub struct LoginProvider {
    /// Its issuer's index: the one whose keys check its ID tokens.
    pub index: usize,
    pub name: String,
    pub client: Arc<LoginClient>,
    /// The client's secret, which authenticates it at an external
    /// provider's token endpoint; an own issuer, asked in process, needs
    /// none.
    secret: Option<String>,
    place: Place,
}

enum Place {
    External {
        discovery_url: String,
        expected_iss: Option<String>,
        http: reqwest::Client,
        found: Mutex<Option<(Instant, Arc<Endpoints>)>>,
        /// When reading the discovery document last failed: not read again
        /// for [`RETRY_AFTER_FAILURE`], whatever asks (a logout token
        /// anyone may post names any issuer).
        failed: Mutex<Option<Instant>>,
    },
    Own(Arc<Endpoints>),
}

impl LoginProvider {
    /// The provider of issuer `index`, its client secret read from its
    /// variable now; an error names what is missing.
    pub fn new(
        index: usize,
        issuer: &Issuer,
        client: Arc<LoginClient>,
    ) -> Result<LoginProvider, String> {
        let name = &issuer.name;
        let secret = match &client.secret_env {
            None => None,
            Some(var) => Some(
                std::env::var(var)
                    .ok()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        format!("issuers.{name}.login_client_secret_env: {var} is not set")
                    })?,
            ),
        };
        let place = match (&issuer.external, &issuer.oauth2) {
            (Some(source), _) => {
                let KeyLocation::Discovery(url) = &source.location else {
                    return Err(format!("issuers.{name}: signing in needs discovery_url"));
                };
                Place::External {
                    discovery_url: url.clone(),
                    expected_iss: source.expected_iss.clone(),
                    http: crate::jwks::provider_client(source)
                        .map_err(|e| format!("issuers.{name}: {e}"))?,
                    found: Mutex::new(None),
                    failed: Mutex::new(None),
                }
            }
            (None, Some(oauth2)) => {
                let under = &oauth2.issuer_id;
                Place::Own(Arc::new(Endpoints {
                    issuer: under.clone(),
                    authorization_endpoint: format!("{under}/authorize"),
                    token_endpoint: format!("{under}/token"),
                    userinfo_endpoint: None,
                    end_session_endpoint: Some(format!("{under}/end_session")),
                    authorization_response_iss_parameter_supported: true,
                }))
            }
            (None, None) => return Err(format!("issuers.{name}: no provider to sign in at")),
        };
        Ok(LoginProvider {
            index,
            name: name.clone(),
            client,
            secret,
            place,
        })
    }

    /// portero's own issuer: its access tokens are its own JWTs.
    pub fn is_own(&self) -> bool {
        matches!(self.place, Place::Own(_))
    }

    /// Its endpoints: an own issuer's, or its discovery document's, read
    /// again once it is [`DISCOVERY_TTL`] old.
    pub async fn endpoints(&self) -> Result<Arc<Endpoints>, ProviderError> {
        let Place::External {
            discovery_url,
            expected_iss,
            http,
            found,
            failed,
        } = &self.place
        else {
            let Place::Own(endpoints) = &self.place else {
                unreachable!()
            };
            return Ok(endpoints.clone());
        };
        if let Some((at, endpoints)) = &*found.lock().expect("not poisoned") {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(endpoints.clone());
            }
        }
        if let Some(at) = *failed.lock().expect("not poisoned") {
            if at.elapsed() < RETRY_AFTER_FAILURE {
                return Err(ProviderError::Unreachable(
                    "its discovery document failed just now".into(),
                ));
            }
        }
        let read = discover(http, discovery_url, expected_iss.as_deref()).await;
        *failed.lock().expect("not poisoned") = read.is_err().then(Instant::now);
        let endpoints = read?;
        let endpoints = Arc::new(endpoints);
        *found.lock().expect("not poisoned") = Some((Instant::now(), endpoints.clone()));
        Ok(endpoints)
    }

    /// Redeems the code of a callback (RFC 6749 §4.1.3) with the PKCE
    /// verifier of its sign-in: asked of an own issuer in process, else
    /// of the provider's token endpoint.
    pub async fn redeem_code(
        &self,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
        own: &dyn OwnIssuer,
    ) -> Result<Granted, ProviderError> {
        let Place::External { http, .. } = &self.place else {
            let grant = CodeGrant {
                client_id: &self.client.client_id,
                code,
                code_verifier,
                redirect_uri,
            };
            return Ok(own.redeem_code(self.index, grant).await?);
        };
        self.token_request(
            http,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", code_verifier),
            ],
        )
        .await
    }

    /// New tokens for `refresh_token` (RFC 6749 §6): asked of an own
    /// issuer in process, else of the provider's token endpoint.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        own: &dyn OwnIssuer,
    ) -> Result<Granted, ProviderError> {
        let Place::External { http, .. } = &self.place else {
            let grant = RefreshGrant {
                client_id: &self.client.client_id,
                refresh_token,
            };
            return Ok(own.refresh(self.index, grant).await?);
        };
        self.token_request(
            http,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// A request to an external provider's token endpoint (`grant_type`
    /// and its parameters), authenticated as the client (HTTP Basic, RFC
    /// 6749 §2.3.1) or, for a public one, naming it.
    async fn token_request(
        &self,
        http: &reqwest::Client,
        params: &[(&str, &str)],
    ) -> Result<Granted, ProviderError> {
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.extend_pairs(params);
            if self.secret.is_none() {
                form.append_pair("client_id", &self.client.client_id);
            }
            form.finish()
        };
        let endpoints = self.endpoints().await?;
        let mut request = http
            .post(&endpoints.token_endpoint)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        if let Some(secret) = &self.secret {
            let encode =
                |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", encode(&self.client.client_id), encode(secret));
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            request = request.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
        }
        let (status, body) = read(request).await?;
        if status != 200 {
            let error = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("status {status}"));
            return Err(ProviderError::Refused(error));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Invalid(format!("token answer: {e}")))
    }

    /// The userinfo endpoint's claims for `access_token`.
    pub async fn userinfo(&self, access_token: &str) -> Result<Map<String, Value>, ProviderError> {
        let Place::External { http, .. } = &self.place else {
            return Ok(Map::new());
        };
        let endpoints = self.endpoints().await?;
        let Some(url) = &endpoints.userinfo_endpoint else {
            return Err(ProviderError::Invalid(
                "the provider has no userinfo endpoint".into(),
            ));
        };
        let (status, body) = read(http.get(url).bearer_auth(access_token)).await?;
        if status != 200 {
            return Err(ProviderError::Refused(format!("userinfo: status {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| ProviderError::Invalid(format!("userinfo: {e}")))
    }
}

/// The provider's discovery document at `url`: its issuer must be the
/// one that URL is the document of (OpenID Connect Discovery §4.3, RFC
/// 8414 §3.3), else one provider could name itself another and have that
/// one's codes sent to it (mix-up); and `expected_iss` where set.
async fn discover(
    http: &reqwest::Client,
    url: &str,
    expected_iss: Option<&str>,
) -> Result<Endpoints, ProviderError> {
    let body = read(http.get(url)).await?.1;
    let endpoints: Endpoints = serde_json::from_slice(&body)
        .map_err(|e| ProviderError::Invalid(format!("discovery document: {e}")))?;
    if expected_iss.is_some_and(|iss| iss != endpoints.issuer)
        || !publishes_metadata_at(&endpoints.issuer, url)
    {
        return Err(ProviderError::Invalid(
            "discovery names another issuer".into(),
        ));
    }
    for url in [
        Some(&endpoints.authorization_endpoint),
        Some(&endpoints.token_endpoint),
        endpoints.userinfo_endpoint.as_ref(),
        endpoints.end_session_endpoint.as_ref(),
    ] {
        if let Some(url) = url.filter(|u| crate::config::check_key_url(u).is_err()) {
            return Err(ProviderError::Invalid(format!(
                "endpoint {url:?} is not https"
            )));
        }
    }
    Ok(endpoints)
}

/// The status and body (at most [`MAX_ANSWER`] bytes) of a request.
async fn read(request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), ProviderError> {
    let unreachable = |e: reqwest::Error| ProviderError::Unreachable(crate::jwks::error_chain(&e));
    let mut response = request.send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(ProviderError::Invalid(format!(
                "answer over {MAX_ANSWER} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_discovery_document_is_its_own_issuers_only() {
        use crate::config::publishes_metadata_at;
        let at = "https://idp.example/realms/a/.well-known/openid-configuration";
        assert!(publishes_metadata_at("https://idp.example/realms/a", at));
        assert!(publishes_metadata_at("https://idp.example/realms/a/", at));
        assert!(!publishes_metadata_at("https://idp.example/realms/b", at));
        assert!(!publishes_metadata_at("https://other.example/realms/a", at));
        let rfc8414 = "https://idp.example/.well-known/oauth-authorization-server/realms/a";
        assert!(publishes_metadata_at(
            "https://idp.example/realms/a",
            rfc8414
        ));
        assert!(!publishes_metadata_at(
            "https://idp.example/realms",
            rfc8414
        ));
    }
}
