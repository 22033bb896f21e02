//! One fetch of an external issuer's keys: its metadata (with discovery),
//! then its JWKS. HTTPS with the issuer's roots, a timeout per request, no
//! redirects, and a cap on every body.

use std::time::Duration;

use crate::config::{check_key_url, ExternalKeySource, KeyLocation};
use crate::jwk::{parse_jwks, ExternalKeys};
use crate::tls_roots::ClientError;

/// Largest discovery document or JWKS read.
const MAX_BODY: usize = 512 * 1024;

/// Why a fetch failed; `label` is the metric's `result`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: HTTP {status}")]
    BadStatus { url: String, status: u16 },
    #[error("{url}: {reason}")]
    Invalid { url: String, reason: String },
}

/// Every `result` label of a fetch: `ok` and each error's.
pub const RESULTS: [&str; 4] = ["ok", "unreachable", "bad_status", "invalid"];

impl FetchError {
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::Unreachable { .. } => "unreachable",
            FetchError::BadStatus { .. } => "bad_status",
            FetchError::Invalid { .. } => "invalid",
        }
    }
}

/// A key set, and how long the provider says it may be kept.
pub struct Fetched {
    pub keys: ExternalKeys,
    pub max_age: Option<Duration>,
    /// Keys of the JWKS left out, and why.
    pub skipped: Vec<String>,
}

/// The HTTP client for one issuer: its roots, its timeout, no redirects.
pub fn client(source: &ExternalKeySource) -> Result<reqwest::Client, ClientError> {
    let alpn: [&[u8]; 2] = [b"h2", b"http/1.1"];
    Ok(
        crate::tls_roots::http_client(source.ca_file.as_deref(), &alpn, source.timeout)?
            .user_agent(concat!("portero/", env!("CARGO_PKG_VERSION")))
            .build()?,
    )
}

#[derive(serde::Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

pub async fn fetch(
    client: &reqwest::Client,
    source: &ExternalKeySource,
) -> Result<Fetched, FetchError> {
    let (iss, jwks_url) = match &source.location {
        KeyLocation::Jwks(url) => (source.expected_iss.clone().unwrap_or_default(), url.clone()),
        KeyLocation::Discovery(url) => {
            let (body, _) = get(client, url, MAX_BODY).await?;
            let invalid = |reason: String| FetchError::Invalid {
                url: url.clone(),
                reason,
            };
            let meta: Metadata = serde_json::from_slice(&body)
                .map_err(|e| invalid(format!("not provider metadata: {e}")))?;
            if let Some(expected) = &source.expected_iss {
                if &meta.issuer != expected {
                    let reason = format!("issuer {:?} is not iss {expected:?}", meta.issuer);
                    return Err(invalid(reason));
                }
            }
            if meta.issuer.is_empty() {
                return Err(invalid("issuer is empty".into()));
            }
            check_key_url(&meta.jwks_uri).map_err(|e| invalid(format!("jwks_uri {e}")))?;
            (meta.issuer, meta.jwks_uri)
        }
    };
    let (body, max_age) = get(client, &jwks_url, MAX_BODY).await?;
    let (keys, skipped) = parse_jwks(&body).map_err(|reason| FetchError::Invalid {
        url: jwks_url.clone(),
        reason,
    })?;
    if keys.is_empty() {
        return Err(FetchError::Invalid {
            url: jwks_url,
            reason: format!("no key to verify with (left out: {})", skipped.join("; ")),
        });
    }
    Ok(Fetched {
        keys: ExternalKeys { iss, keys },
        max_age,
        skipped,
    })
}

/// The keys of the JWKS at `url` (HTTPS with the system's roots, or
/// HTTP on loopback), with how long its answer says to keep them: a
/// client's `jwks_uri`.
pub async fn fetch_keys(
    url: &str,
    timeout: Duration,
) -> Result<(Vec<crate::jwk::ExternalKey>, Option<Duration>), FetchError> {
    let invalid = |reason: String| FetchError::Invalid {
        url: url.to_string(),
        reason,
    };
    let alpn: [&[u8]; 2] = [b"h2", b"http/1.1"];
    let client = crate::tls_roots::http_client(None, &alpn, timeout)
        .and_then(|b| {
            Ok(b.user_agent(concat!("portero/", env!("CARGO_PKG_VERSION")))
                .build()?)
        })
        .map_err(|e| invalid(e.to_string()))?;
    let (body, max_age) = get(&client, url, MAX_BODY).await?;
    let (keys, skipped) = parse_jwks(&body).map_err(invalid)?;
    if keys.is_empty() {
        return Err(invalid(format!(
            "no key to verify with (left out: {})",
            skipped.join("; ")
        )));
    }
    Ok((keys, max_age))
}

/// A `200` JSON body of at most `max_body` bytes, with its `max-age`.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &str,
    max_body: usize,
) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
    let unreachable = |e: reqwest::Error| FetchError::Unreachable {
        url: url.to_string(),
        reason: error_chain(&e),
    };
    let mut response = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(unreachable)?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(FetchError::BadStatus {
            url: url.to_string(),
            status: response.status().as_u16(),
        });
    }
    let max_age = response
        .headers()
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > max_body {
            return Err(FetchError::Invalid {
                url: url.to_string(),
                reason: format!("body over {max_body} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

/// `max-age` of a `Cache-Control` value; `no-cache`/`no-store` mean none.
fn max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        match name.to_ascii_lowercase().as_str() {
            "no-cache" | "no-store" => return Some(Duration::ZERO),
            "max-age" => age = arg.trim_matches('"').parse().ok().map(Duration::from_secs),
            _ => {}
        }
    }
    age
}

/// reqwest's error with its causes (the TLS or connect reason is a cause).
pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_and_no_cache_means_none() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            max_age("max-age=\"60\", must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age("no-cache"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
