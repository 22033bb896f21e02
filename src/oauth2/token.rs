//! The token endpoint (RFC 6749 §3.2): the client authenticated, the
//! grant named and permitted, then served by its own module:
//! `authorization_code` (`code.rs`), `client_credentials` (§4.4),
//! `password` (§4.3, when enabled), `refresh_token` (§6) and token
//! exchange (RFC 8693). Access tokens are as RFC 9068 describes, signed by
//! the issuer's own key, so every route that accepts the issuer accepts
//! them.

mod client_credentials;
mod exchange;
mod password;
mod refresh_token;

use http::StatusCode;

use super::client::authenticate;
use super::code::{redeem, CodeGrant};
use super::form::Form;
use super::mint::Cnf;
use super::{Answer, Endpoints, Error, Request};
use crate::config::{AccountForm, Principal};
pub(super) use refresh_token::refresh_grant;
pub use refresh_token::RefreshGrant;

pub const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The grants portero knows, each by its registered name: a request is
/// dispatched by name, so a grant added here is served only once its own
/// arm says how (no grant falls through to another's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    AuthorizationCode,
    ClientCredentials,
    Password,
    RefreshToken,
    TokenExchange,
}

impl Grant {
    const ALL: [Grant; 5] = [
        Grant::AuthorizationCode,
        Grant::ClientCredentials,
        Grant::Password,
        Grant::RefreshToken,
        Grant::TokenExchange,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "authorization_code",
            Grant::ClientCredentials => "client_credentials",
            Grant::Password => "password",
            Grant::RefreshToken => "refresh_token",
            Grant::TokenExchange => EXCHANGE,
        }
    }

    /// The grant `name` names; `None` for one portero does not know.
    fn named(name: &str) -> Option<Grant> {
        Grant::ALL.into_iter().find(|g| g.name() == name)
    }
}

/// The grants the issuer serves, as its metadata lists them.
pub fn grants(ctx: &Endpoints<'_>) -> Vec<Grant> {
    let form = ctx.issuer.accounts.form;
    let mut grants = Vec::new();
    if ctx.settings.authorization_code {
        grants.push(Grant::AuthorizationCode);
    }
    if form.has_clients() || form == AccountForm::Standard {
        grants.push(Grant::ClientCredentials);
    } else if ctx.settings.password_grant {
        grants.push(Grant::Password);
    }
    if ctx.settings.authorization_code || ctx.settings.password_grant {
        grants.push(Grant::RefreshToken);
    }
    grants.push(Grant::TokenExchange);
    grants
}

pub async fn handle(ctx: &Endpoints<'_>, req: &Request<'_>) -> Result<Answer, Error> {
    let form = Form::parse(req.body, req.form)?;
    let name = form.required("grant_type")?;
    let client = authenticate(ctx, req, &form).await?;
    let client: &Principal = &client;
    // RFC 6749 §5.2: a grant unknown here is as one not served here.
    let Some(grant) = Grant::named(name) else {
        return Err(not_served(name));
    };
    permitted(ctx, client, grant)?;
    let bound = bound_to(req, client)?;
    match grant {
        Grant::AuthorizationCode => {
            let mut asked = CodeGrant::of(&form)?;
            asked.bound = bound;
            let issued = redeem(ctx, req.now, &asked, client).await?;
            Ok(issued.answer(req.now))
        }
        Grant::ClientCredentials => client_credentials::grant(ctx, req, &form, client, bound),
        Grant::Password => password::grant(ctx, req, &form, client, bound).await,
        Grant::RefreshToken => {
            let mut asked = RefreshGrant::of(&form)?;
            asked.bound = bound;
            let issued = refresh_grant(ctx, req.now, &asked, client).await?;
            Ok(issued.answer(req.now))
        }
        Grant::TokenExchange => exchange::grant(ctx, req, &form, client, bound).await,
    }
}

/// What the request's tokens are bound to: the DPoP key it proved (RFC
/// 9449 §5), else the client certificate it authenticated with, or asked
/// its tokens be bound to (RFC 8705 §3). A client that must bind and
/// proved nothing gets no token.
fn bound_to<'r>(req: &Request<'r>, client: &Principal) -> Result<Option<Cnf<'r>>, Error> {
    if let Some(jkt) = req.dpop_key {
        return Ok(Some(Cnf::Dpop(jkt)));
    }
    // RFC 9449 §5.2: a client that always binds its tokens sends a proof.
    if client.client.dpop_bound_access_tokens {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            "this client's token requests carry a DPoP proof",
        ));
    }
    let by_certificate = client.auth_method.is_some_and(|m| m.is_mutual_tls())
        || client.client.certificate_bound_access_tokens;
    match (by_certificate, req.client_cert) {
        (false, _) => Ok(None),
        (true, Some(cert)) => Ok(Some(Cnf::Certificate(&cert.thumbprint))),
        (true, None) => Err(Error::invalid_request(
            "this client's tokens are bound to its certificate: send the request over mutual TLS",
        )),
    }
}

/// Whether `client` may have `grant` here: the issuer serves it (RFC
/// 6749 §5.2 `unsupported_grant_type`) and the client may use it
/// (`unauthorized_client`). Asked of every grant, by either door.
pub(super) fn permitted(
    ctx: &Endpoints<'_>,
    client: &Principal,
    grant: Grant,
) -> Result<(), Error> {
    if !grants(ctx).contains(&grant) {
        return Err(not_served(grant.name()));
    }
    if !client.client.may_use(grant.name()) {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            format!("this client may not use {:?}", grant.name()),
        ));
    }
    Ok(())
}

fn not_served(name: &str) -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
        format!("{name:?} is not a grant this issuer serves"),
    )
}

#[cfg(test)]
mod tests {
    use super::super::mint::narrowed;
    use super::*;

    #[test]
    fn every_grant_is_dispatched_by_its_own_name() {
        for grant in Grant::ALL {
            assert_eq!(Grant::named(grant.name()), Some(grant));
        }
        assert_eq!(
            Grant::named("urn:ietf:params:oauth:grant-type:token-exchange"),
            Some(Grant::TokenExchange)
        );
        // A grant portero does not know is none of those it knows.
        for unknown in [
            "implicit",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:token-exchange ",
            "Password",
            "",
        ] {
            assert_eq!(Grant::named(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn scope_can_only_narrow() {
        let held = vec!["read".to_string(), "write".to_string()];
        assert_eq!(narrowed(None, &held).unwrap(), held);
        assert_eq!(narrowed(Some("read"), &held).unwrap(), vec!["read"]);
        assert_eq!(
            narrowed(Some("write read write"), &held).unwrap(),
            vec!["write", "read"]
        );
        let e = narrowed(Some("read admin"), &held).unwrap_err();
        assert_eq!(e.code, "invalid_scope");
        assert_eq!(narrowed(Some("x"), &[]).unwrap_err().code, "invalid_scope");
    }
}
