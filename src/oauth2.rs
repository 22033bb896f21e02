//! portero's OAuth 2.1 authorization server, under the issuer identifier
//! `<server.public_url>/oauth2/NAME`: a `kind = "oauth2"` issuer's users
//! and clients, or a legacy dialect's principals beside its own endpoint.
//! Metadata and OpenID discovery (`metadata`), the authorization endpoint
//! with its sign-in page (`authorize`, `sign_in`, `page`, the sign-on
//! session `sso`), the token endpoint (RFC 6749, RFC 8693; `token`, the
//! authorization code grant `code`), OpenID Connect (`oidc`), dynamic
//! registration (RFC 7591; `registration`), revocation (RFC 7009) and
//! introspection (RFC 7662; `inspect`). The same principals, keys, lockout
//! and revocations as the legacy endpoint; tokens as RFC 9068 describes.
//! Nothing here speaks HTTP: `proxy` reads the body and writes the
//! [`Answer`]. portero's own sign-ins ask the code and refresh grants of
//! the same functions in process (`in_process`), with no request at all.
//! docs/oauth2.md is the contract.

mod account;
mod auth_request;
mod authorize;
mod client;
mod client_keys;
mod code;
mod consent;
mod csrf;
mod documents;
mod factor_pages;
mod form;
mod in_process;
mod inspect;
mod metadata;
mod mint;
pub(crate) mod oidc;
mod page;
mod par;
mod passkey;
mod passkey_sign_in;
mod registration;
mod second_factor;
mod sign_in;
mod sign_in_post;
mod sso;
mod ticket;
mod token;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::auth::validate::{Validator, Verified};
use std::sync::Arc;

use crate::config::{OAuth2, Principal, Principals};
use crate::identity::{Attempt, Denied, Reason};
use crate::issuer::{IssuerContext, Transport};
use crate::store::StoreError;

pub use code::CodeGrant;
pub use form::is_form;
pub use in_process::{grant_in_process, InProcessGrant};
pub use token::RefreshGrant;

/// A complete answer, never cached (RFC 6749 §5.1): a JSON body, a page,
/// or a redirect.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
    /// `WWW-Authenticate: Basic` goes with it: the client tried, or
    /// should try, HTTP Basic authentication (RFC 6749 §5.2).
    pub basic_challenge: bool,
    /// With a `405`: the one methods the endpoint takes (RFC 9110 §15.5.6).
    pub allow: Option<&'static str>,
    pub shape: Shape,
    /// `Set-Cookie` values.
    pub cookies: Vec<String>,
    /// A `WWW-Authenticate: Bearer ...` value (userinfo, RFC 6750 §3).
    pub bearer_challenge: Option<String>,
    /// A document others may fetch from a browser (metadata, the JWKS).
    pub public: bool,
    /// A page's `Content-Security-Policy`.
    pub csp: Option<String>,
    /// An error sent back to the client in its redirect: what it is
    /// counted as.
    pub refused: Option<Reason>,
    /// A DPoP nonce for the client's next proofs (`DPoP-Nonce`).
    pub dpop_nonce: Option<std::sync::Arc<str>>,
}

/// What an [`Answer`]'s body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Json,
    /// An HTML page, sent with a strict CSP and never framed.
    Page,
    /// A `303` to this URL, with no body.
    Redirect(String),
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer::json(StatusCode::OK, body)
    }

    fn json(status: StatusCode, body: Value) -> Answer {
        Answer {
            status,
            body: body.to_string(),
            basic_challenge: false,
            allow: None,
            shape: Shape::Json,
            cookies: Vec::new(),
            bearer_challenge: None,
            public: false,
            csp: None,
            refused: None,
            dpop_nonce: None,
        }
    }

    fn page(status: StatusCode, html: String) -> Answer {
        Answer {
            body: html,
            shape: Shape::Page,
            ..Answer::json(status, Value::Null)
        }
    }

    fn redirect(location: String) -> Answer {
        Answer {
            body: String::new(),
            shape: Shape::Redirect(location),
            ..Answer::json(StatusCode::SEE_OTHER, Value::Null)
        }
    }

    fn with_cookie(mut self, cookie: Option<String>) -> Answer {
        self.cookies.extend(cookie);
        self
    }
}

/// An error in the form of RFC 6749 §5.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub status: StatusCode,
    /// One of the registered codes: `invalid_request`, `invalid_client`, ...
    pub code: &'static str,
    pub description: String,
    pub basic_challenge: bool,
}

impl Error {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Error {
        Error {
            status,
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// What the error is counted as, where no refusal was noted.
    fn reason(&self) -> Reason {
        match self.code {
            "unsupported_grant_type" => Reason::UnsupportedGrant,
            "invalid_grant" => Reason::InvalidGrant,
            "invalid_scope" => Reason::InvalidScope,
            "temporarily_unavailable" => Reason::Unavailable,
            // The user's own answer at the sign-in page, carried out.
            "access_denied" => Reason::Ok,
            // Missing or malformed client credentials, a bad form.
            _ => Reason::MalformedRequest,
        }
    }

    fn unavailable() -> Error {
        Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the service is unavailable; try again later",
        )
    }

    fn invalid_grant() -> Error {
        Error::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the grant is invalid, expired or revoked",
        )
    }
}

/// A DPoP proof refused (RFC 9449 §5.1, §8): with the nonce to use
/// (`use_dpop_nonce`), or as invalid (`invalid_dpop_proof`); `None` when
/// the store could not say whether it was taken before. A token endpoint
/// answers `400`; a resource (userinfo, §7.1) `401` with a `DPoP`
/// challenge.
pub fn proof_refused(refusal: Option<Option<Arc<str>>>, resource: bool) -> Answer {
    let (error, nonce) = match refusal {
        None => (Error::unavailable(), None),
        Some(Some(nonce)) => (
            Error::new(
                StatusCode::BAD_REQUEST,
                "use_dpop_nonce",
                "DPoP proofs here carry the server's nonce",
            ),
            Some(nonce),
        ),
        Some(None) => (
            Error::new(
                StatusCode::BAD_REQUEST,
                "invalid_dpop_proof",
                "the DPoP proof is not one of this request, or was used before",
            ),
            None,
        ),
    };
    let challenge =
        (resource && error.status == StatusCode::BAD_REQUEST).then(|| dpop_challenge(error.code));
    let status = match challenge {
        Some(_) => StatusCode::UNAUTHORIZED,
        None => error.status,
    };
    Answer {
        status,
        dpop_nonce: nonce,
        bearer_challenge: challenge,
        ..Answer::from(error)
    }
}

/// A resource's `WWW-Authenticate: DPoP` value for `error` (RFC 9449 §7.1).
fn dpop_challenge(error: &str) -> String {
    let algs = crate::dpop::Algorithms::ALL.names();
    format!("DPoP error=\"{error}\", algs=\"{algs}\"")
}

/// The store out of reach: the client may try again.
impl From<StoreError> for Error {
    fn from(_: StoreError) -> Error {
        Error::unavailable()
    }
}

impl From<Error> for Answer {
    fn from(e: Error) -> Answer {
        let body = json!({ "error": e.code, "error_description": e.description });
        Answer {
            basic_challenge: e.basic_challenge,
            ..Answer::json(e.status, body)
        }
    }
}

/// What the endpoints see of a request.
pub struct Request<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub authorization: Option<&'a [u8]>,
    /// The request said `Content-Type: application/x-www-form-urlencoded`.
    pub form: bool,
    pub body: &'a [u8],
    pub client: Option<std::net::IpAddr>,
    pub now: i64,
    pub query: Option<&'a str>,
    /// Every `Cookie` header's value.
    pub cookies: &'a [&'a [u8]],
    /// The `Origin` header, where a browser sent one.
    pub origin: Option<&'a [u8]>,
    /// The DPoP key (its RFC 7638 thumbprint) the request proved it holds
    /// (RFC 9449 §5), its proof checked before: tokens are bound to it.
    pub dpop_key: Option<&'a str>,
    /// The client certificate of a mutual-TLS request (RFC 8705).
    pub client_cert: Option<&'a crate::client_cert::ClientCert>,
}

/// One issuer's OAuth 2.0 endpoints: the issuer at work, with what they need beyond it.
pub struct Endpoints<'a> {
    pub issuer: IssuerContext<'a>,
    pub settings: &'a OAuth2,
    pub validator: &'a Validator,
}

impl Endpoints<'_> {
    /// The clients named in the config: a client dialect's principals, or
    /// a user dialect's `clients`.
    fn clients(&self) -> &Principals {
        match self.issuer.accounts.form.has_clients() {
            true => &self.issuer.accounts.principals,
            false => &self.settings.clients,
        }
    }

    /// The client `id` names: a client dialect's principal (from the config
    /// or its user store, its own id's budget reserved in `attempt` too),
    /// or a user dialect's configured client.
    async fn client(
        &self,
        attempt: &mut Attempt,
        id: &str,
        now: i64,
    ) -> Result<Option<Arc<Principal>>, Denied> {
        match self.issuer.accounts.form.has_clients() {
            true => self.issuer.logins.principal_claimed(attempt, id, now).await,
            false => Ok(self.settings.clients.get(id).cloned()),
        }
    }
}

/// The client a token of the issuer was issued to, the one rule of
/// ownership for introspection, revocation and exchange: its `client_id`;
/// a client dialect's legacy token (which carries none) is its subject's,
/// the client itself. A user dialect's token without `client_id` is no
/// client's: its subject is a user, whatever client shares the name.
fn issued_to<'v>(ctx: &Endpoints<'_>, v: &'v Verified) -> Option<&'v str> {
    match ctx.issuer.accounts.form.has_clients() {
        true => v.claims.str("client_id").or(v.sub()),
        false => v.claims.str("client_id"),
    }
}

/// Which endpoint a path names, once the route has matched the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Metadata,
    Token,
    Revoke,
    Introspect,
    Authorize,
    SignIn,
    UserInfo,
    EndSession,
    Register,
    Account,
    PushedRequest,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Metadata => "metadata",
            Which::Token => "token",
            Which::Revoke => "revoke",
            Which::Introspect => "introspect",
            Which::Authorize => "authorize",
            Which::SignIn => "sign_in",
            Which::UserInfo => "userinfo",
            Which::EndSession => "end_session",
            Which::Register => "register",
            Which::Account => "account",
            Which::PushedRequest => "par",
        }
    }
}

fn which(name: &str, path: &str) -> Option<Which> {
    let under = format!("/oauth2/{name}");
    if path == format!("/.well-known/oauth-authorization-server{under}")
        || path == format!("/.well-known/openid-configuration{under}")
    {
        return Some(Which::Metadata);
    }
    match path.strip_prefix(&under)? {
        "/.well-known/openid-configuration" => Some(Which::Metadata),
        "/token" => Some(Which::Token),
        "/revoke" => Some(Which::Revoke),
        "/introspect" => Some(Which::Introspect),
        "/authorize" => Some(Which::Authorize),
        "/sign-in" => Some(Which::SignIn),
        "/userinfo" => Some(Which::UserInfo),
        "/end_session" => Some(Which::EndSession),
        "/register" => Some(Which::Register),
        "/account" => Some(Which::Account),
        "/par" => Some(Which::PushedRequest),
        _ => None,
    }
}

/// The answer of the endpoint at `path` to a method it does not take
/// (`405` with its `Allow`); `None` when it takes `method`. A forward-auth
/// decision about the endpoint's path answers as the endpoint would.
pub fn wrong_method(issuer: &str, path: &str, method: &Method) -> Option<Answer> {
    refuse_method(which(issuer, path)?, method)
}

fn refuse_method(which: Which, method: &Method) -> Option<Answer> {
    let allow = match which {
        Which::Metadata => "GET",
        // OpenID Connect Core §3.1.2.1, §5.3.1; RP-initiated logout §2.
        Which::Authorize | Which::UserInfo | Which::EndSession | Which::Account => "GET, POST",
        _ => "POST",
    };
    if allow.split(", ").any(|m| m == method.as_str()) {
        return None;
    }
    let mut answer = Answer::from(Error::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        format!("this endpoint takes {allow} only"),
    ));
    answer.allow = Some(allow);
    Some(answer)
}

/// Which endpoints an issuer serves: the authorization endpoint and what
/// goes with it only where it is on, registration only where it is open.
fn serves(ctx: &Endpoints<'_>, which: Which) -> bool {
    match which {
        Which::Authorize
        | Which::SignIn
        | Which::UserInfo
        | Which::EndSession
        | Which::Account
        | Which::PushedRequest => ctx.settings.authorization_code,
        Which::Register => ctx.settings.registration != crate::config::Registration::Off,
        _ => true,
    }
}

/// Serves one request to the issuer's OAuth 2.0 endpoints.
pub async fn handle(ctx: &Endpoints<'_>, req: &Request<'_>) -> Answer {
    let Some(which) = which(&ctx.issuer.config.name, req.path).filter(|w| serves(ctx, *w)) else {
        return Error::new(StatusCode::NOT_FOUND, "invalid_request", "no such endpoint").into();
    };
    if let Some(refused) = refuse_method(which, req.method) {
        return refused;
    }
    let answered = match which {
        Which::Metadata => Ok(metadata::answer(ctx)),
        Which::Token if !answer_readable(ctx, req) => Err(origin_refused(ctx, req)),
        Which::Token => token::handle(ctx, req).await,
        Which::Revoke => inspect::revoke(ctx, req).await,
        Which::Introspect => inspect::introspect(ctx, req).await,
        Which::Authorize => Ok(authorize::handle(ctx, req).await),
        Which::SignIn => Ok(sign_in_post::handle(ctx, req).await),
        Which::UserInfo => Ok(oidc::userinfo(ctx, req).await),
        Which::EndSession => Ok(oidc::end_session(ctx, req).await),
        Which::Register => registration::handle(ctx, req).await,
        Which::Account => Ok(account::handle(ctx, req).await),
        Which::PushedRequest => par::handle(ctx, req).await,
    };
    // A refused client or user was noted where it was refused, also
    // where the answer is a page (the sign-in form again, with a 401).
    let reason = match &answered {
        Ok(answer) => ctx
            .issuer
            .logins
            .noted()
            .or(answer.refused)
            .unwrap_or_else(|| Reason::of_status(answer.status)),
        Err(e) => ctx.issuer.logins.noted().unwrap_or_else(|| e.reason()),
    };
    let answer = answered.unwrap_or_else(Answer::from);
    count(ctx, which, answer.status, reason);
    answer
}

/// One answer of the endpoint `which`, in `portero_oauth2_requests_total`.
fn count(ctx: &Endpoints<'_>, which: Which, status: StatusCode, reason: Reason) {
    ctx.issuer
        .metrics
        .oauth2_requests
        .with_label_values(&[
            &ctx.issuer.config.name,
            which.name(),
            crate::metrics::status_class(status),
            reason.label(),
        ])
        .inc();
}

/// Whether the browser that sent the request will show its answer to the
/// page: no `Origin` (no page asked), the issuer's own origin, or one its
/// `cors` allows. The token endpoint redeems nothing for a page that could
/// never read what it gives: a code would be spent, a refresh token
/// replaced by one nobody sees.
fn answer_readable(ctx: &Endpoints<'_>, req: &Request<'_>) -> bool {
    if csrf::same_origin(ctx, req) {
        return true;
    }
    let origin = req
        .origin
        .and_then(|o| http::HeaderValue::from_bytes(o).ok());
    match (&ctx.issuer.routes.cors, origin) {
        (Some(policy), Some(origin)) => crate::cors::allows_origin(policy, &origin),
        _ => false,
    }
}

fn origin_refused(ctx: &Endpoints<'_>, req: &Request<'_>) -> Error {
    tracing::warn!(
        target: "portero::oauth2",
        issuer = %ctx.issuer.config.name,
        origin = ?String::from_utf8_lossy(req.origin.unwrap_or_default()),
        "token request refused: its origin is neither the issuer's nor one its cors allows, \
         so the browser would never show the answer"
    );
    Error::new(
        StatusCode::FORBIDDEN,
        "invalid_request",
        "this origin may not call the token endpoint: the issuer's cors does not allow it",
    )
}

/// The answer to a body that could not be read.
pub fn transport_error(e: Transport) -> Answer {
    let (status, description) = match e {
        Transport::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        ),
        Transport::Timeout => (
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        ),
        Transport::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "too many requests"),
        Transport::Unavailable => {
            return Error::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the service is unavailable",
            )
            .into()
        }
    };
    Error::new(status, "invalid_request", description).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_endpoints() {
        let w = |p| which("cf", p);
        assert_eq!(
            w("/.well-known/oauth-authorization-server/oauth2/cf"),
            Some(Which::Metadata)
        );
        assert_eq!(
            w("/oauth2/cf/.well-known/openid-configuration"),
            Some(Which::Metadata)
        );
        assert_eq!(w("/oauth2/cf/token"), Some(Which::Token));
        assert_eq!(w("/oauth2/cf/revoke"), Some(Which::Revoke));
        assert_eq!(w("/oauth2/cf/introspect"), Some(Which::Introspect));
        assert_eq!(w("/oauth2/cf/token/x"), None);
        assert_eq!(w("/oauth2/cf"), None);
        assert_eq!(w("/oauth2/cfx/token"), None);
    }
}
