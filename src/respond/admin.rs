//! The admin API's refusals, each a type, and the one place they become
//! responses: `{"error": "<message>"}` with the status the variant names
//! (docs/operations.md, "Admin API errors").

use bytes::Bytes;
use http::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::auth::AuthError;
use crate::config::ConfigError;
use crate::jwks::SyncError;
use crate::live::AssembleError;
use crate::store::StoreError;
use crate::upstream::UpstreamError;

/// Why the admin listener answers a request with an error.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The admin token's variable was not set at start: the API is off.
    #[error("the admin API is disabled: set {token_env} before starting portero")]
    Disabled { token_env: String },
    #[error("admin token required")]
    Unauthorized,
    #[error("no such endpoint")]
    NoSuchEndpoint,
    /// The methods the path is served with.
    #[error("method not allowed here")]
    MethodNotAllowed(&'static [Method]),
    #[error("body too large")]
    BodyTooLarge,
    #[error("invalid JSON: {0}")]
    InvalidJson(serde_json::Error),
    #[error(transparent)]
    Revocation(#[from] RevocationRefused),
    #[error(transparent)]
    ApiKey(#[from] ApiKeyRefused),
    #[error(transparent)]
    Client(#[from] ClientRefused),
    #[error(transparent)]
    Session(#[from] SessionRefused),
    /// The store could not keep or read what was asked.
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Reload(#[from] ReloadError),
}

/// A revocation request that names nothing this gateway can revoke.
#[derive(Debug, thiserror::Error)]
pub enum RevocationRefused {
    #[error("jti is empty")]
    EmptyJti,
    #[error("not a token this gateway accepts: {0}")]
    NotAccepted(AuthError),
    #[error("the token names nothing a revocation can hold; revoke its subject instead")]
    NoJti,
    #[error("no issuer named {0:?}")]
    NoSuchIssuer(String),
    #[error("not a token this gateway accepts, nor a live refresh token")]
    NoSuchRefreshToken,
    #[error("give exactly one of {{\"jti\"}}, {{\"token\"}} or {{\"sub\", \"issuer\"}}")]
    Ambiguous,
}

/// An API-key request the admin API cannot carry out.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyRefused {
    #[error("no api_key issuer named {0:?}")]
    NoSuchIssuer(String),
    #[error("{0}")]
    Grant(String),
    #[error("expires: {0}")]
    Expires(String),
    #[error("grace: {0}")]
    Grace(String),
    #[error("no API key {0:?}")]
    NoSuchKey(String),
    /// Rotated or revoked elsewhere since it was read: nothing was written.
    #[error("API key {0:?} changed meanwhile; read it again")]
    Changed(String),
}

/// A registered-client request the admin API cannot carry out.
#[derive(Debug, thiserror::Error)]
pub enum ClientRefused {
    #[error("no issuer named {0:?} takes registrations")]
    NoSuchIssuer(String),
    #[error("no registered client {0:?}")]
    NoSuchClient(String),
    #[error("no issuer named {0:?} has OAuth 2.0 endpoints")]
    NotAnAuthorizationServer(String),
}

/// A request to end browser sessions that names none.
#[derive(Debug, thiserror::Error)]
pub enum SessionRefused {
    #[error("no issuer named {0:?} signs people in")]
    NoSuchProvider(String),
    #[error("name the issuer and one of sub or sid: ?issuer=NAME&sub=SUB")]
    NoOwner,
}

/// Why a config was not reloaded (the running one stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}; nothing was reloaded")]
    Upstream(UpstreamError),
    #[error(transparent)]
    Assemble(AssembleError),
    #[error(transparent)]
    ExternalIssuer(#[from] SyncError),
}

impl From<AssembleError> for ReloadError {
    fn from(e: AssembleError) -> ReloadError {
        match e {
            AssembleError::Upstream(e) => ReloadError::Upstream(e),
            other => ReloadError::Assemble(other),
        }
    }
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Disabled { .. } | AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::NoSuchEndpoint => StatusCode::NOT_FOUND,
            AdminError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::ApiKey(ApiKeyRefused::NoSuchKey(_))
            | AdminError::Client(_)
            | AdminError::Session(SessionRefused::NoSuchProvider(_)) => StatusCode::NOT_FOUND,
            AdminError::Session(SessionRefused::NoOwner) => StatusCode::BAD_REQUEST,
            AdminError::ApiKey(ApiKeyRefused::Changed(_)) => StatusCode::CONFLICT,
            AdminError::InvalidJson(_) | AdminError::Revocation(_) | AdminError::ApiKey(_) => {
                StatusCode::BAD_REQUEST
            }
            AdminError::Reload(ReloadError::Upstream(UpstreamError::EchoChanged(_))) => {
                StatusCode::CONFLICT
            }
            AdminError::Reload(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// An admin answer: JSON (or the metrics' text), never stored by a cache
/// nor read by a browser as another type.
pub fn admin_reply(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, super::nosniff());
    response
}

/// The response for `err`: its status, `{"error": "<message>"}`, and the
/// headers the status asks for (RFC 9110 `Allow`, RFC 6750 `WWW-Authenticate`).
pub fn admin_error_response(err: &AdminError) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": err.to_string() }).to_string();
    let mut response = admin_reply(err.status(), "application/json", body);
    let headers = response.headers_mut();
    match err {
        AdminError::Unauthorized => {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="portero-admin""#),
            );
        }
        AdminError::MethodNotAllowed(allowed) => {
            let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            if let Ok(v) = HeaderValue::try_from(list.join(", ")) {
                headers.insert(ALLOW, v);
            }
        }
        _ => {}
    }
    response
}
