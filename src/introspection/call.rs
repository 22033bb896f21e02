//! One introspection call: the form `POST` to the provider's endpoint with
//! the client's credentials, a timeout, no redirects and a cap on the
//! answer. The endpoint is the configured one, or the metadata's
//! `introspection_endpoint` (read once, on first use).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::config::{check_key_url, ClientAuth, Introspection, IntrospectionEndpoint};
use crate::jwks::error_chain;
use crate::tls_roots::ClientError;

/// Largest answer or metadata document read.
const MAX_BODY: usize = 64 * 1024;

/// Where to ask, and the `iss` answers are held to.
pub struct Endpoint {
    pub url: String,
    pub iss: String,
}

/// The HTTP client for one issuer's introspection: its roots and timeout.
pub fn client(config: &Introspection) -> Result<reqwest::Client, ClientError> {
    let alpn: [&[u8]; 2] = [b"h2", b"http/1.1"];
    Ok(
        crate::tls_roots::http_client(config.ca_file.as_deref(), &alpn, config.timeout)?
            .user_agent(concat!("portero/", env!("CARGO_PKG_VERSION")))
            .build()?,
    )
}

#[derive(serde::Deserialize)]
struct Metadata {
    issuer: String,
    introspection_endpoint: Option<String>,
}

/// The endpoint to ask: configured, or named by the provider's metadata
/// (whose `issuer` must then be `iss`, when that is known).
pub async fn endpoint(
    client: &reqwest::Client,
    config: &Introspection,
    iss: &str,
) -> Result<Endpoint, String> {
    let discovery = match &config.endpoint {
        IntrospectionEndpoint::Url(url) => {
            return Ok(Endpoint {
                url: url.clone(),
                iss: iss.to_string(),
            })
        }
        IntrospectionEndpoint::Discovery(url) => url,
    };
    let response = client
        .get(discovery)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("{discovery}: {}", error_chain(&e)))?;
    let body = read(response, discovery).await?;
    let meta: Metadata = serde_json::from_slice(&body)
        .map_err(|e| format!("{discovery}: not provider metadata: {e}"))?;
    if meta.issuer.is_empty() {
        return Err(format!("{discovery}: the metadata's issuer is empty"));
    }
    if !iss.is_empty() && meta.issuer != iss {
        return Err(format!(
            "{discovery}: issuer {:?} is not iss {iss:?}",
            meta.issuer
        ));
    }
    let url = meta
        .introspection_endpoint
        .ok_or_else(|| format!("{discovery}: the metadata names no introspection_endpoint"))?;
    check_key_url(&url).map_err(|e| format!("{discovery}: introspection_endpoint {e}"))?;
    Ok(Endpoint {
        url,
        iss: meta.issuer,
    })
}

/// Asks about `token`; the `200` answer's body.
pub async fn introspect(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    config: &Introspection,
    secret: &str,
    token: &str,
) -> Result<Vec<u8>, String> {
    let mut request = client
        .post(&endpoint.url)
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
    if config.auth == ClientAuth::Basic {
        // RFC 6749 §2.3.1: each part form-url-encoded, then Basic.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(&config.client_id), encode(secret));
        request = request.header(
            http::header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(pair)),
        );
    }
    let body = form(config, secret, token);
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{}: {}", endpoint.url, error_chain(&e)))?;
    read(response, &endpoint.url).await
}

/// The form: the token, a hint, and with `client_secret_post` the client's credentials.
fn form(config: &Introspection, secret: &str, token: &str) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token)
        .append_pair("token_type_hint", "access_token");
    if config.auth == ClientAuth::Post {
        form.append_pair("client_id", &config.client_id)
            .append_pair("client_secret", secret);
    }
    form.finish()
}

/// A `200` body within `MAX_BODY`.
async fn read(mut response: reqwest::Response, url: &str) -> Result<Vec<u8>, String> {
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("{url}: HTTP {}", response.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("{url}: answer over {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
